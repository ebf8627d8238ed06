"""Generated files: the header that marks them, INI rendering, and the atomic writer.

Durability of `write` (what a crash, a power cut included, can leave behind):
- Each file is written to a new temp file beside its target, then rename(2)d over it. A rename
  within one filesystem replaces the name atomically: the target names the old inode or the new
  one, never neither; on a journaling filesystem (ext4, xfs) the rename is one journal
  transaction, so this also holds after a crash.
- A rename may reach the disk before the data of the file it names. ext4 (data=ordered, the
  default) writes a file's data blocks before the journal commit that allocates them, but with
  delayed allocation the blocks are allocated only at writeback: a rename committed first leaves
  a zero-length file after a crash. ext4's auto_da_alloc starts writeback when a rename replaces
  an existing file, but not for a new name, and other filesystems promise nothing.
- So, in order: make the directories, stage every temp file, syncfs(2) each filesystem involved,
  rename every file, remove stale ones, syncfs again. syncfs writes back and waits for every dirty
  inode (data and metadata) of the filesystem holding the descriptor, then calls the
  filesystem's sync_fs, which for ext4 commits the running journal transaction, waits for it and
  flushes the device's write cache (sync_filesystem() in fs/sync.c, ext4_sync_fs()); from Linux
  5.8 on it also returns writeback errors met since the descriptor was opened. After the first
  call every temp file's data is durable, so no target can ever be empty or partial, even if the
  crash comes during the renames; after the second, every new name and removal is durable before
  generate returns. The old per-file scheme (fsync each temp file, then each directory) gave the
  same guarantees with two to three thousand journal commits for 1,000 services; this is two per
  filesystem. os.sync() would be the same on this filesystem but would also flush every other
  filesystem. On a tmpfs syncfs has nothing to do.
- Which filesystems: those of the directories made and of the files staged, renamed or removed,
  found with no stat of its own. make_dirs learns each directory's st_dev as it goes: one that
  exists is stat'ed anyway (to refuse a file in the way); one it makes is on the filesystem of
  the directory it was made in, because a directory just made is empty and not a mount point
  (mount(2) needs an existing directory, and only a mount can put another filesystem below a
  path), so the parent's st_dev, found by make_dirs or stat'ed once, is its own. A mount point
  in the way is an existing directory, stat'ed, so the filesystem mounted there is the one
  found; stat follows symlinks as open(2) and rename(2) do through them. Every file written lies
  in a directory make_dirs was given; a stale file's directory is stat'ed once. Each process of
  a sharded write reports the filesystems it touched (st_dev -> a directory on it), and this
  process opens one directory per filesystem for syncfs (the call acts on the descriptor's
  superblock, whichever directory it names).
- A run that changes nothing calls neither (nothing it could make more durable was written by it).
- A large node is written by several processes (tarsdock.shards): `write(..., jobs=N)` forks
  its own, and `tarsdock generate` has the processes that rendered the node write the files they
  keep (tarsdock.generate.run_node); both are driven by `drive`, and the order above still holds
  for the run as a whole, because the processes move in lockstep: only once the node is rendered
  and compared with the disk without error anywhere does any process make a directory; each
  makes its share of the directories and stages its share of the files, then waits; once every
  process has staged all of its share, this process calls syncfs once per filesystem (syncfs
  covers every dirty inode of the filesystem, whichever process wrote it) and only then tells
  them to rename; stale files are removed and the second syncfs made here once every rename is
  done. If a process fails to stage or rename, every process removes its temp files (a
  generator's `finally`) and the whole write is done again in this one process (generate
  renders the files again here first: they stayed in the workers), so the error reported is the
  one a single process meets (every process reports the directories it made, removed when the
  write fails: see below). A process killed from outside runs no `finally`: its temp files,
  whose names its pid makes, are removed here once it is reaped; if it was killed once the
  renames began, some files may be new and others old, so this process writes them all again
  (rendered again, for generate) before it reports the failure: every file is then new, not a
  mix. SIGTERM raises Terminated in this process and in the writing processes, as Ctrl-C raises
  KeyboardInterrupt here (the others ignore SIGINT): either way every `finally` removes its temp
  files and every process is reaped before the error is reported; a second SIGTERM or Ctrl-C
  meanwhile is ignored, so that it cannot cut that clean-up short (_Interrupts).
- What no `finally` covers: the whole run killed at once (SIGKILL of its process group, as the
  OOM killer may send; a power cut) leaves the temp files it had staged. The targets are whole
  all the same (old or new, by the rename's atomicity above). Temp files in the output dir are
  stale files of the next run there; those beside the service configs are swept by the next
  write of the node through the marker of an unfinished write (tarsdock.unfinished: a file in
  `<tars_path>/tarsdock` naming the pids and directories of the temp files, made durable,
  with its directory entry, by fsync(2) before the first temp file exists, and removed once the
  write is over; the next write that can take the node's lock exclusively, which no live
  writer of the node lets it, lists those directories, removes the temp names of those pids,
  and goes on). A run that stages nothing makes no marker. A crash before the marker's fsync
  has returned leaves no temp file (none is made before it) but perhaps the marker, empty or
  torn: it is removed with nothing else.
- A write that fails before any rename (an error, Ctrl-C, SIGTERM) removes the directories it
  made that are still empty, deepest first, when no other write of the node holds the lock
  (rmdir(2) removes only an empty directory: what another process put in one meanwhile stays,
  and a directory that existed before the run is never touched). The directories a shard made
  are known here from its answer to the staging step (drive), so Ctrl-C and SIGTERM are held
  in this process until every answer is in (_interrupts_held); a worker killed from outside
  takes the list of the directories it made with it: those stay. Once the renames have begun,
  the directories the new files need stay.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import (
    Callable,
    Collection,
    Container,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from functools import partial
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from tarsdock.errors import InputError, Origin, Terminated
from tarsdock.quoting import FORBIDDEN, check_text
from tarsdock.records import Record
from tarsdock.unfinished import Unfinished, temp_pid

if TYPE_CHECKING:
    from tarsdock.shards import Lockstep, Tickets

MARK = "# Generated by tarsdock"
HEADER_BYTES = 512
READ_CHUNK = 1 << 16

ChangeKind = Literal["new", "changed", "unchanged", "stale"]


class Context(Record):
    """Host facts a rendering needs, passed in so output depends only on its inputs."""

    __slots__ = _fields = ("config_dir", "scripts_dir", "docker")
    config_dir: Final[Path]
    scripts_dir: Final[str]       # where the tarsdock and tarsdock-run console scripts live
    docker: Final[str]

    def __init__(self, config_dir: Path, scripts_dir: str, docker: str = "/usr/bin/docker") -> None:
        self.config_dir = config_dir
        self.scripts_dir = scripts_dir
        self.docker = docker


class OutputFile(Record):
    """A file to write: where, what, and its mode."""

    __slots__ = _fields = ("path", "content", "mode")
    path: Final[Path]
    content: Final[str]
    mode: Final[int]

    def __init__(self, path: Path, content: str, mode: int = 0o644) -> None:
        self.path = path
        self.content = content
        self.mode = mode

    def __reduce__(self) -> tuple[Callable[[str, str, int], OutputFile], tuple[str, str, int]]:
        # pickled with its path as text: a Path pickles as its parts and is built from them
        # again, 4x the time (a large node's files come over a pipe from tarsdock.shards)
        return _output_file, (os.fspath(self.path), self.content, self.mode)


def _output_file(path: str, content: str, mode: int) -> OutputFile:
    return OutputFile(Path(path), content, mode)


class Change(Record):
    """What writing one file would do; `old` is the content on disk, if any."""

    __slots__ = _fields = ("kind", "path", "file", "old")
    kind: Final[ChangeKind]
    path: Final[Path]
    file: Final[OutputFile | None]
    old: Final[str | None]

    def __init__(self, kind: ChangeKind, path: Path, file: OutputFile | None = None,
                 old: str | None = None) -> None:
        self.kind = kind
        self.path = path
        self.file = file
        self.old = old


def header(kind: str, config_dir: Path, sources: Sequence[str]) -> str:
    """The comment block every generated file starts with; `kind` tags its generator."""
    where = check_text(str(config_dir), "config dir")
    what = check_text(", ".join(sources), "sources")
    return (f"{MARK} ({kind}) from {where}: {what}.\n"
            "# Do not edit: change the config dir and run `tarsdock generate` again.\n")


def service_headers(kind: str, config_dir: Path) -> Callable[[str, str], str]:
    """header(kind, config_dir, [FILE, "template T"]) of a service's file from (FILE, T), each
    text made once per call of this: a node's 1,000 services come from a few files and
    templates. Not kept beyond what this returns. InputError for a FILE whose name holds a
    line break."""
    made: dict[tuple[str, str], str] = {}

    def head(source: str, template: str) -> str:
        text = made.get((source, template))
        if text is None:
            if FORBIDDEN.search(source):
                # a services.d file's name (a template's is a checked name): the file itself
                # is the fault, not a line of it
                raise InputError(Origin(source), "the file's name holds a line break, which "
                                 "the header of every file generated from it would carry, and "
                                 "supervisord and systemd files cannot: rename the file")
            text = header(kind, config_dir, [source, f"template {template}"])
            made[source, template] = text
        return text

    return head


def generated_kind(path: Path) -> str | None:
    """The generator tag of a file tarsdock wrote, or None for any other file."""
    try:
        with path.open("rb") as stream:
            first = stream.read(HEADER_BYTES).split(b"\n", 1)[0].decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith(MARK + " ("):
        return None
    return first[len(MARK) + 2:].split(")", 1)[0]


class Lines(Record):
    """Rows already quoted (`key=value` lines), written as they are.

    For runs of rows with the same value in every file (KillMode=mixed, autorestart=true):
    quoted once, at import, instead of in each of a node's 1,000 files (fixed_lines).
    """

    __slots__ = _fields = ("text",)
    text: Final[str]

    def __init__(self, text: str) -> None:
        self.text = text


Rows = Sequence[tuple[str, Any] | Lines]


Quote = Callable[[Any, str], str]


def fixed_lines(rows: Sequence[tuple[str, Any]], quote: Quote) -> Lines:
    """Constant rows, quoted now by `quote` (each names its key if refused)."""
    return Lines("".join([f"{key}={quote(value, key)}\n" for key, value in rows]))


def ini_text(head: str, sections: Sequence[tuple[str, Rows]], quote: Quote, what: str) -> str:
    """An INI file (a systemd unit, a supervisord config): the header, a blank line, then each
    `[section]` with its `key=value` rows, values quoted by `quote(value, what)` (Lines as they
    are), sections apart by a blank line. Plain code, not a template engine: 2,000 files a run,
    and Jinja2's import alone cost more than rendering them all."""
    if not sections:
        return head + "\n"
    # one flat list joined once: no string per row or per section on the way (21,000 rows)
    parts = [head]
    for name, rows in sections:
        parts.append(f"\n[{name}]\n")
        for row in rows:
            if isinstance(row, Lines):
                parts.append(row.text)
            else:
                key, value = row
                parts += (key, "=", quote(value, what), "\n")
    return "".join(parts)


def check_ini(sections: Sequence[tuple[str, Rows]], quote: Quote, what: str) -> None:
    """Raise what ini_text raises for these sections (a value `quote` refuses), making no text:
    validate needs only to know that every file renders."""
    for _, rows in sections:
        for row in rows:
            if not isinstance(row, Lines):
                quote(row[1], what)


Devices = dict[int, str]     # st_dev -> a directory on that filesystem (to open for syncfs)
# a file -> the signature (tarsdock.stamp.signature) of its stat as read or once renamed, for the
# stamp: five ints, not the stat_result, which pickles at 8x the cost (a worker sends 1,000)
Stats = dict[str, list[int]]


def _read(path: Path) -> tuple[str | None, os.stat_result | None]:
    """A file's content and fstat, or (None, None) when it does not exist.
    Raises OSError naming `path` (a directory in the file's place: IsADirectoryError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    try:
        info = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, READ_CHUNK):
            chunks.append(chunk)
    except OSError as error:
        # open(2) of a directory succeeds; read(2) fails with EISDIR, and os.read's error
        # names no file: without this the run's one line would be "error: ?: Is a directory"
        error.filename = os.fspath(path)
        raise
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape"), info


class Listing:
    """The names in a few directories (`roots`: the output dir, the node's data dir), each listed
    once, when first needed: which paths cannot exist, so that a plan opens no file there (a new
    node's 2,000 files were 2,000 failing opens, 9 ms of CPU).

    A path is missing when a root it lies below lacks the path's first name after the root (a
    root that does not exist lacks every name): resolving the path, open(2) would fail there
    with ENOENT, so "missing" is what the open would have said. Anything else is not known
    missing and the file is opened as before, for its content or its error: a root that cannot
    be listed (mode 0111, a file in its place), a name present whatever it is (a symlink, a file
    where a directory should be), a first name "." or "..", a path below no root. A directory
    made after its root was listed counts as missing, as a plan made a moment earlier would have
    seen it. Asked nothing until armed (plan arms it once an open finds a file missing): a node
    written before lists nothing and asks nothing more than before."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        # as Path prints them ("//" and "/." gone): the files' paths are Paths
        self._roots = [(root, root if root.endswith("/") else root + "/")
                       for root in dict.fromkeys(os.fspath(Path(root)) for root in roots)]
        self._names: dict[str, Collection[str] | None] = {}
        self.armed = False

    def arm(self) -> None:
        """Answer `missing` from now on (a file was found missing: part of the node is new)."""
        self.armed = True

    def names(self, root: str) -> Collection[str] | None:
        """The names in `root` (none when it does not exist); None if it cannot be listed."""
        if root not in self._names:
            try:
                self._names[root] = set(os.listdir(root))
            except FileNotFoundError:
                self._names[root] = ()
            except OSError:
                self._names[root] = None
        return self._names[root]

    def missing(self, path: str) -> bool:
        """Whether nothing can be at `path` (as a Path prints it); False until armed."""
        if not self.armed:
            return False
        for root, prefix in self._roots:
            if path.startswith(prefix):
                name = path[len(prefix):].partition("/")[0]
                names = self.names(root)
                if names is not None and name not in names and name not in ("", ".", ".."):
                    return True
        return False


def plan(files: Iterable[OutputFile], out_dir: Path | None = None,
         kind: str | None = None, stats: Stats | None = None,
         listing: Listing | None = None) -> list[Change]:
    """Compare files with the disk; with out_dir, also list its stale generated files of kind.
    With `stats`, the signature of each unchanged file (as read) goes into it. With `listing`,
    once a file is found missing, one it knows missing is new without an open (and out_dir is
    listed once, there)."""
    if stats is not None:
        # imported here: only generate keeps stats, and has the stamp loaded
        from tarsdock.stamp import signature
    changes: list[Change] = []
    wanted = set()
    for file in files:
        wanted.add(file.path)
        if listing is not None and listing.armed and listing.missing(str(file.path)):
            changes.append(Change("new", file.path, file))
            continue
        old, info = _read(file.path)
        if old is None or info is None:
            changes.append(Change("new", file.path, file))
            if listing is not None:
                listing.arm()
        elif old != file.content or info.st_mode & 0o7777 != file.mode:
            changes.append(Change("changed", file.path, file, old))
        else:
            changes.append(Change("unchanged", file.path, file, old))
            if stats is not None:
                stats[os.fspath(file.path)] = signature(info)
    if out_dir is not None:
        names = None if listing is None else listing.names(os.fspath(out_dir))
        changes += stale(out_dir, {os.fspath(path) for path in wanted}, kind, names)
    return changes


# The names a format writes into its out dir, by suffix: what its supervisor reads (systemd's
# units; supervisord's `files = *.conf` include and tarsdock-run's run files). A file with our
# header under any other name is an operator's copy (`cp tars-App.Server.service{,.bak}` in
# /etc/systemd/system, which neither supervisor reads): never stale. A kind not here: any name.
OUT_SUFFIXES: Final[dict[str | None, tuple[str, ...]]] = {
    "systemd": (".service", ".socket", ".target", ".timer"),
    "supervisord": (".conf", ".run"),
}


def stale(out_dir: Path, wanted: Container[str], kind: str | None,
          names: Collection[str] | None = None) -> list[Change]:
    """The generated files of `kind` in out_dir that are not `wanted` (paths), to remove:
    those with a name of the kind (OUT_SUFFIXES) and the temp files of writers gone;
    `names`: out_dir's, as a Listing has them (listed here when None)."""
    if names is None:
        if not out_dir.is_dir():
            return []
        names = os.listdir(out_dir)
    # names first, a Path only for one not wanted: a node's 1,000 units are (a Path each, and
    # a sort of Paths, took 3 ms of the main process); sorted names sort as their Paths do.
    # Each name as its Path would print it: Path(".") / "a" is "a"
    prefix = os.path.join(out_dir, "") if out_dir.parts else ""
    suffixes = OUT_SUFFIXES.get(kind, ("",))
    others = [out_dir / name for name in sorted(names) if prefix + name not in wanted
              and (name.endswith(suffixes) or temp_pid(name) is not None)]
    return [Change("stale", path, None, _read(path)[0]) for path in others
            if path.is_file() and not path.is_symlink() and not _staged_by_a_live_writer(path.name)
            and generated_kind(path) == kind]


def _staged_by_a_live_writer(name: str) -> bool:
    """Whether `name` is a temp file (see _temp_path) of a process still running: another
    generate writing into the same out dir now. Removed as stale, its rename would fail and that
    run with it; one of a process gone (killed before it could clean up) is stale."""
    pid = temp_pid(name)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)          # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:           # it exists, under another user
        return True
    return True


def make_dirs(paths: Iterable[str | Path], found: dict[str, int] | None = None,
              exists: Iterable[str] = (), made: list[str] | None = None) -> list[str]:
    """Create every missing directory (mode 0755, parents too); return those made, in order
    (each parent before its children). With `made`, each is also appended to it as it is
    made: the caller knows what a failing call made before it raised (Unfinished.made).

    `found` gets the filesystem (st_dev) of each directory in `paths`, and of those met above
    them, at the cost of no stat more than making them takes (see the module docstring).
    `exists`: directories known to exist (each holds a file just read): they and their parents
    are neither made nor stat'ed, and their filesystems are not found (see _stage); the others
    most likely exist too (the node was written before), so each is stat'ed before any mkdir."""
    found = {} if found is None else found
    made = [] if made is None else made
    first = len(made)
    known = _with_parents(exists)
    # in the order given, each once: callers list a parent before its children (service_dirs),
    # so there is one mkdir each and no walk up from every leaf (a child given first costs one
    # mkdir refused, its parent made then); a sort of a node's 5,000 long paths cost 0.8 ms.
    # On a new node mkdir first and a stat only when it exists (6,000 dirs: no stat each), on
    # one written before a stat first (5,000 dirs: no mkdir refused each)
    likely = bool(known)
    ordered = dict.fromkeys([os.fspath(p) for p in paths])
    try:
        for path in ordered:
            if path not in known and path not in found:
                _make_dir(path, found, made, likely)
    except OSError:
        # the error is the one a pass in name order meets first, as it was when the paths were
        # sorted: which path a failure names does not depend on the order callers list them in
        # (only a failing run pays for the sort)
        for path in sorted(ordered):
            if path not in known and path not in found:
                _make_dir(path, found, made, likely)
        raise
    return made[first:]


def _with_parents(dirs: Iterable[str]) -> set[str]:
    """The dirs and every directory above them."""
    known: set[str] = set()
    for path in dirs:
        while path not in known:
            known.add(path)
            path = _parent(path)
    return known


def _make_dir(path: str, found: dict[str, int], made: list[str], likely: bool = False) -> None:
    """mkdir path (its missing parents first), noting each directory's filesystem in found;
    `likely` to exist, a stat first (anything but a directory found: as if not asked)."""
    if path in found:
        return
    if likely and (device := _directory_device(path)) is not None:
        found[path] = device
        return
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if (device := _directory_device(path)) is None:
            raise
        found[path] = device
        return
    except FileNotFoundError:
        parent = _parent(path)
        if parent == path or parent in found:   # no root, or its parent gone meanwhile
            raise
        _make_dir(parent, found, made)
        # once more, the parent there: another process writing the node may make it meanwhile
        _make_dir(path, found, made)
        return
    # a directory just made is no mount point: it is on its parent's filesystem
    found[path] = _device(_parent(path), found)
    made.append(path)


def _directory_device(path: str) -> int | None:
    """The filesystem of the directory at path; None when there is none (nothing, or a file)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev if S_ISDIR(info.st_mode) else None


def _parent(path: str) -> str:
    """os.path.dirname of a path as a Path gives it (no "//" but at its start), at a third of
    the cost: 9,000 calls a write of a 1,000-service node. "//x" gives "/" (dirname: "//",
    the same directory on Linux)."""
    head, slash, _ = path.rpartition("/")
    return head or slash


def _device(directory: str, found: dict[str, int]) -> int:
    """The filesystem of an existing directory: found's, else stat'ed once and kept there."""
    if directory not in found:
        found[directory] = os.stat(directory).st_dev
    return found[directory]


def _temp_path(path: str, pid: int) -> tuple[str, str]:
    """The temp file of `path` that process `pid` stages, and its directory (the file's: "."
    is "" for a relative name, whose temp file is relative too)."""
    # rpartition, not os.path.split (a third of the cost, 2,000 files a run)
    head, slash, name = path.rpartition("/")
    return f"{head}{slash}.{name}.{pid}.tmp", head or slash


NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
Staged = list[tuple[str, str]]    # (temp file, its target) of each file staged, in order


def _stage(file: OutputFile, umask: int, pid: int, staged: Staged,
           found: dict[str, int]) -> None:
    """Write a file's content to a new temp file beside it (named by `pid`, this process's id,
    asked once per batch), added to `staged` (temp, path); its directory's filesystem goes into
    `found` if not there (make_dirs skipped a directory known to exist)."""
    # str(), not os.fspath(): Path.__fspath__ calls str() (a third of the cost, 2,000 files)
    path = str(file.path)
    temp, head = _temp_path(path, pid)
    # named before it is made: a Ctrl-C that comes after the open has made it, before this
    # returns, leaves it in the caller's list, whose `finally` removes it
    staged.append((temp, path))
    try:
        fd = os.open(temp, NEW_FILE, file.mode)
    except FileExistsError:       # left by a crashed run that had our pid
        os.unlink(temp)
        fd = os.open(temp, NEW_FILE, file.mode)
    try:
        if head not in found:   # the temp file is on its directory's filesystem: fstat says
            found[head] = os.fstat(fd).st_dev
        data = file.content.encode("utf-8")
        written = os.write(fd, data)
        while written < len(data):   # a short write (a signal caught meanwhile): the rest
            written += os.write(fd, memoryview(data)[written:])
        if file.mode & umask:     # the umask took bits the file must have
            os.fchmod(fd, file.mode)
    except BaseException as error:
        os.close(fd)
        os.unlink(temp)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = path   # a full disk names no file: say which one
        raise
    os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _syncfs_fd(fd: int) -> None:
    """syncfs(2) of the filesystem holding fd."""
    # imported here: only a run that writes something pays for it (generate's first process
    # imports it earlier, while the others render: generate._work)
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"syncfs: {os.strerror(error)}")


def syncfs(devices: Devices) -> int:
    """syncfs(2) once per filesystem (device -> a directory on it); return how many."""
    for directory in devices.values():
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _syncfs_fd(fd)
        except OSError as error:
            error.filename = directory
            raise
        finally:
            os.close(fd)
    return len(devices)


def _on(found: dict[str, int], directories: Iterable[str]) -> Devices:
    """The filesystems of directories whose device make_dirs found."""
    devices: Devices = {}
    for directory in directories:
        devices.setdefault(found[directory], directory)
    return devices


def _rename(staged: Staged, stats: Stats | None) -> Iterator[None]:
    """Rename each staged temp file over its target, one a step (the caller counts them); with
    `stats`, stat each target once renamed (a rename changes the inode's ctime)."""
    if stats is not None:
        from tarsdock.stamp import signature  # as in plan
    for temp, path in staged:
        os.replace(temp, path)
        if stats is not None:
            stats[path] = signature(os.stat(path))
        yield


def _replace_all(files: Sequence[OutputFile], parents: Iterable[str], found: dict[str, int],
                 stats: Stats | None = None, unfinished: Unfinished | None = None) -> None:
    """Stage every file as a temp file, sync them, then rename each over its target (`parents`:
    the files' directories; `found`: the filesystem of each, from make_dirs; `unfinished`: told
    when the renames begin).

    A failure before the renames leaves every target as it was, and no temp file behind.
    """
    umask, pid = _current_umask(), os.getpid()
    staged: Staged = []
    renamed = 0
    try:
        for file in files:
            _stage(file, umask, pid, staged, found)
        # every temp file's data is on disk before any name points at it
        syncfs(_on(found, parents))
        if unfinished is not None:
            unfinished.renaming = True
        for _ in _rename(staged, stats):
            renamed += 1
    finally:
        for temp, _ in staged[renamed:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def write_atomic(files: Sequence[OutputFile], dirs: Iterable[str | Path] = (),
                 marks: str | None = None) -> None:
    """Make dirs and the files' parents, replace every file, and sync once they all are
    (`marks`: see write)."""
    write([Change("new", file.path, file) for file in files], dirs, marks=marks)


def write(changes: Iterable[Change], dirs: Iterable[str | Path] = (),
          jobs: int = 1, stats: Stats | None = None, marks: str | None = None) -> dict[str, int]:
    """Apply a plan: make dirs, write new and changed files, remove stale ones; count each kind.

    With `jobs` > 1 the dirs and files are split over that many processes (see the module
    docstring). With `stats`, each file written is stat'ed once renamed, its signature into it
    (see Stats). With `marks` (the node's dir, see tarsdock.unfinished): first the temp files
    of writers of the node that were killed are swept; a marker names the temp files this one
    may leave while it stages and renames them; a failure before the renames removes the dirs
    it made that are empty. Everything is
    on disk when this returns. SIGTERM meanwhile raises Terminated (the temp files removed, the
    worker processes reaped; files already renamed stay new).
    """
    with sigterm_raises(), Unfinished(marks) as unfinished:
        return _write(list(changes), dirs, jobs, stats, unfinished)


def _write(changes: list[Change], dirs: Iterable[str | Path], jobs: int,
           stats: Stats | None, unfinished: Unfinished) -> dict[str, int]:
    counts = count_kinds(changes)
    files = to_write(changes)
    stale = [c.path for c in changes if c.kind == "stale"]
    wanted = [os.fspath(d) for d in dirs]
    touched = (_replace_in_shards(files, wanted, jobs, stats, unfinished) if jobs > 1
               else replace_here(files, wanted, stats, unfinished))
    finish(stale, touched)
    return counts


class _Kinded(Protocol):
    @property
    def kind(self) -> ChangeKind: ...


def count_kinds(changes: Iterable[_Kinded]) -> dict[str, int]:
    """How many changes of each kind (new, changed, unchanged, stale)."""
    counts = {"new": 0, "changed": 0, "unchanged": 0, "stale": 0}
    for change in changes:
        counts[change.kind] += 1
    return counts


def to_write(changes: Iterable[Change]) -> list[OutputFile]:
    """The files of the new and changed ones."""
    return [c.file for c in changes if c.file is not None and c.kind in ("new", "changed")]


def batch(dirs: Sequence[str], changes: Sequence[Change]) -> Batch:
    """What one process writes of `changes`: `dirs` to make, the files to write, and the
    directories known to exist (those of the files found: make_dirs need not ask, where a
    template edit that rewrites every file would cost 2,000 refused mkdirs and 2,000 stats)."""
    return dirs, to_write(changes), {os.path.dirname(c.path) for c in changes if c.kind != "new"}


def finish(stale: Iterable[Path], touched: Devices) -> None:
    """Once the new files are in place: remove the stale ones, then syncfs every filesystem
    touched (`touched`, with the stale files')."""
    found: dict[str, int] = {}
    for path in stale:
        path.unlink(missing_ok=True)
        parent = os.path.dirname(path)
        touched.setdefault(_device(parent, found), parent)
    if touched:
        syncfs(touched)


class _Interrupts:
    """The handler of SIGTERM, and of SIGINT when Python's own raises KeyboardInterrupt for it,
    while files are written (sigterm_raises): the first raises Terminated (KeyboardInterrupt)
    in this process's main thread, where Python runs every handler; any later one is ignored,
    so that the clean-up it started (every `finally` removing temp files, the marker, the dirs
    made; the reaping of the workers) is not cut short by a second one, as `kill` twice or
    Ctrl-C pressed twice would (cut, the temp files after it stayed, never swept: the marker
    went all the same). Inside `_interrupts_held` the first is noted, then raised as the block
    is left.

    The hold is this flag, not the thread's signal mask: pthread_sigmask(3) holds a signal for
    the calling thread only, and one sent to the process then goes to any other thread that
    does not block it (signal(7)); its C handler there has CPython run this one in the main
    thread all the same, at its next instruction (as in a pytest-xdist worker, whose execnet
    threads took the SIGTERMs of test_shards' SIGTERM test, which then left a temp file now and
    then)."""

    def __init__(self) -> None:
        self.holding = 0              # nesting depth of _interrupts_held
        self.pending: int | None = None
        self.raised = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.raised:
            return
        if self.holding:
            self.pending = self.pending or signum
            return
        self.raise_for(signum)

    def raise_for(self, signum: int) -> None:
        """Raise what `signum` raises in a write, once: Terminated or KeyboardInterrupt."""
        import signal

        self.raised = True
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises Terminated in this (worker) process, which leaves after (once:
    see _Interrupts)."""
    import signal

    signal.signal(signal.SIGTERM, _Interrupts())


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held back until the block is left, then raised there (inside
    sigterm_raises, in the main thread; elsewhere no handler of Python's runs meanwhile).

    For the staging step of a sharded write (drive): the directories each process makes reach
    Unfinished only with its answer to the step, so an interrupt in the middle (KeyboardInterrupt
    raised inside this process's own shard, or while it reads another's answer) would lose them
    and leave them, empty (the tester's D2 at 1ed4081). Held, it comes once every answer is in:
    a step's staging, tens of ms."""
    import signal

    handler = signal.getsignal(signal.SIGTERM)
    if not isinstance(handler, _Interrupts):
        yield
        return
    handler.holding += 1
    try:
        yield
    finally:
        handler.holding -= 1
        if not handler.holding and handler.pending is not None and not handler.raised:
            handler.raise_for(handler.pending)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated inside the block, in this process and in the worker processes
    forked in it (they inherit the handler); Ctrl-C raises KeyboardInterrupt as before. Either,
    once raised, is the only one: see _Interrupts."""
    import signal

    interrupts = _Interrupts()
    try:
        previous = signal.signal(signal.SIGTERM, interrupts)
    except ValueError:   # not the main thread, which alone receives signals in Python
        yield
        return
    # only where Ctrl-C raises KeyboardInterrupt: ignored (a background job's), it stays so
    ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ctrl_c:
        signal.signal(signal.SIGINT, interrupts)
    try:
        yield
    finally:
        if ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def replace_here(files: Sequence[OutputFile], dirs: Sequence[str],
                 stats: Stats | None, unfinished: Unfinished | None = None) -> Devices:
    """Make the dirs and the files' parents, then replace the files; the filesystems of the
    dirs made and of the files. `unfinished`: marked before anything is made, told of each dir
    made and of the renames."""
    found: dict[str, int] = {}
    parents = {_parent(str(file.path)) for file in files}
    if unfinished is None:
        made = make_dirs([*dirs, *parents], found)
    else:
        if files:
            unfinished.mark([os.getpid()], parents)
        made = make_dirs([*dirs, *parents], found, made=unfinished.made)
    if files:
        _replace_all(files, parents, found, stats, unfinished)
    return {**_on(found, made), **_on(found, parents)}


def _replace_in_shards(files: Sequence[OutputFile], dirs: Sequence[str], jobs: int,
                       stats: Stats | None, unfinished: Unfinished) -> Devices:
    """replace_here in `jobs` processes: each makes the dirs and stages the files of the chunks
    it takes; once all are staged, one syncfs per filesystem here; then each renames its own
    (see drive). The filesystems of the dirs made and the files."""
    from tarsdock.shards import Lockstep, Tickets, chunks, split

    by_files = chunks(files, jobs)
    shares: list[Batch] = [(dirs, files, ()) for dirs, files in
                           zip(split(dirs, len(by_files)), by_files, strict=True)]
    with Tickets(jobs, len(shares)) as tickets, Lockstep(
            [partial(_write_shard, shares, tickets, i, stats is not None) for i in range(jobs)]
    ) as lockstep:
        paths = [os.fspath(file.path) for file in files]
        if files:
            unfinished.mark([os.getpid(), *lockstep.pids], {_parent(path) for path in paths})
        return drive(lockstep, lockstep.first, paths,
                     partial(replace_here, files, dirs, stats, unfinished), stats, unfinished)


def drive(lockstep: Lockstep, stage: Callable[[], list[Any]], written: Sequence[str],
          again: Callable[[], Devices], stats: Stats | None,
          unfinished: Unfinished | None = None) -> Devices:
    """Drive the shards of a write, each a `staging`: `stage()` has each make its dirs and stage
    its files; once all have, one syncfs per filesystem here; then each renames its own. The
    lockstep is finished (every shard ended) before this returns, and closed (every process
    reaped) unless every file was written: the caller closes it then, once it has done what it
    can while they leave. The filesystems of the dirs made and the files.

    A shard that fails to stage or rename: every process's temp files are removed (their
    `finally`, as the lockstep closes) and again() does the whole write in this process, which
    raises the error one process meets (or, the fault gone, succeeds). A shard that dies
    (ShardFailed): its temp files (of the paths `written`, named by its pid) are removed here
    once it is reaped; if the renames had begun, again() writes every file (synced) before the
    failure is raised, so the failed run leaves every file new, not a mix of old and new.
    `unfinished` (the caller has marked it with every process's pid) is told of the dirs each
    process made and of the renames."""
    from tarsdock.shards import ShardFailed

    pids = list(lockstep.pids)
    renaming = written_all = False
    try:
        try:
            with _interrupts_held():
                staged = stage()
                if unfinished is not None:
                    for _, _, _, made in staged:
                        unfinished.made += made
            if all(ok for ok, _, _, _ in staged):
                syncfs({dev: path for _, _, on, _ in staged for dev, path in on.items()})
                renaming = True
                if unfinished is not None:
                    unfinished.renaming = True
                renamed = lockstep.send(True)
                if all(done is not None for done in renamed):
                    for done in renamed:
                        if stats is not None and done is not None:
                            stats.update(done)
                    # every process has answered its last step: it only leaves now (its exit,
                    # unmapping its memory, takes milliseconds), reaped by the caller's close
                    # once this process has done what it can meanwhile
                    lockstep.finish()
                    written_all = True
                    return {dev: path for _, made, on, _ in staged
                            for dev, path in (*made.items(), *on.items())}
        finally:
            if not written_all:
                lockstep.close()
    except ShardFailed:
        # a process killed by another hand ran no `finally`: its temp files are removed here
        for pid in pids:
            for path in written:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_temp_path(path, pid)[0])
        if renaming:
            # some processes may have renamed their files and others not (one found dead
            # before it was told to, and those after it): all are written again here
            syncfs(again())
        raise
    return again()


# (all staged, filesystems of the dirs made, of the files staged, the dirs made), then the stats
WriteStep = tuple[bool, Devices, Devices, list[str]] | Stats | None
# dirs to make, files to write, dirs known to exist (see make_dirs)
Batch = tuple[Sequence[str], Sequence[OutputFile], Collection[str]]


def _write_shard(shares: Sequence[Batch], tickets: Tickets, process: int,
                 stat: bool) -> Generator[WriteStep, object, None]:
    """One process's part of a write: the chunks it takes (see staging)."""
    yield from staging((shares[index] for index in tickets.taken(process)), stat, {})


def staging(batches: Iterable[Batch], stat: bool,
            stats: Stats) -> Generator[WriteStep, object, None]:
    """One process's part of a write: make the dirs and stage the files of each batch, yield
    (all staged, filesystems of the dirs made, of the files staged, the dirs made: even on a
    failure, for Unfinished); when sent on, rename them
    and yield `stats` with each one's stat once renamed (with `stat`; else as given). A failure
    yields False or None (the caller does it all again in one process, for its error); closed
    early, its temp files are removed."""
    staged: Staged = []
    renamed = 0
    try:
        found: dict[str, int] = {}
        made: list[str] = []
        parents: set[str] = set()     # of the files staged
        try:
            umask, pid = _current_umask(), os.getpid()
            for dirs, files, exists in batches:
                held = {_parent(str(file.path)) for file in files}
                make_dirs([*dirs, *held], found, exists, made)
                parents |= held
                for file in files:
                    _stage(file, umask, pid, staged, found)
        except OSError:
            yield False, {}, {}, made
            return
        yield True, _on(found, made), _on(found, parents), made
        try:
            for _ in _rename(staged, stats if stat else None):
                renamed += 1
        except OSError:
            yield None
            return
        yield stats
    finally:
        for temp, _ in staged[renamed:]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def describe(changes: Iterable[Change]) -> str:
    """The plan as lines `new PATH`, one per file, for --dry-run."""
    return "".join(f"{change.kind:9} {change.path}\n" for change in changes)


def diff(changes: Iterable[Change]) -> str:
    """Unified diffs of every file that would change, for --diff."""
    # imported here: only --diff pays for it
    import difflib

    out: list[str] = []
    for change in changes:
        if change.kind == "unchanged":
            continue
        old = (change.old or "").splitlines(keepends=True)
        new = change.file.content.splitlines(keepends=True) if change.file else []
        source = f"a{change.path}" if change.kind != "new" else "/dev/null"
        target = f"b{change.path}" if change.kind != "stale" else "/dev/null"
        lines = list(difflib.unified_diff(old, new, source, target))
        if not lines and change.file is not None and change.kind == "changed":
            lines = [f"mode of {change.path} changes to {oct(change.file.mode)}\n"]
        out.extend(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
    return "".join(out)
