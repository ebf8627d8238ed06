"""The stamp of a generate: when nothing it read or wrote has changed, the next one is a no-op.

As make or ninja decide, by file metadata. A generate that wrote (or found unchanged) every file
records, in `$TARSDOCK_CACHE_DIR` (default `$XDG_CACHE_HOME/tarsdock`, else `~/.cache/tarsdock`;
none is written when it cannot be made) under a name hashed from the format and output dir:
- a key: tarsdock's version and the size and mtime of each of its own files (code, stock
  templates), the format, the output dir, the docker CLI and scripts dir it rendered with, and the
  config dir;
- the signature (inode, size, mtime and ctime in ns, mode) of every entry under the config dir
  (symlinks followed) and of every file the manifest names outside it (profile and password files);
- the signature of every output file (taken as the writer read it, or once it renamed it), the
  names in the output dir (a stale file shows there), and the directories the writer makes that
  nothing else recorded lies in (a file or directory found there is one in each above it): each
  must still be a directory (whichever: the writer only makes a missing one), so one removed or
  replaced by a file makes a full run;
- the warnings it printed and how many files it manages.
A later generate with the same key that finds every signature unchanged prints the same warnings
and summary and returns without loading or rendering anything.

A full run, and no stamp written, when: a service is tars_nodejs (how it starts depends on the
release deployed in its bin dir), --dry-run or --diff is given, or an input changed less than
RACY_NS before the run began. File systems stamp mtimes with a coarse clock, so an edit in the same
tick as our read would leave the mtime as it was (git's "racy clean" entries); such a run is
correct, its stamp would not be.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Iterable, Mapping
from stat import S_ISDIR
from typing import Final

from tarsdock.records import Record

VERSION = 2
RACY_NS = 2_000_000_000
SKIPPED_DIRS = ("__pycache__",)

Signature = list[int]


class Replay(Record):
    """What an unchanged generate prints again."""

    __slots__ = _fields = ("warnings", "counts")
    warnings: Final[list[str]]
    counts: Final[dict[str, int]]

    def __init__(self, warnings: list[str], counts: dict[str, int]) -> None:
        self.warnings = warnings
        self.counts = counts


def cache_dir() -> str:
    """Where stamps are kept: never in the output dir, where supervisors and tests look."""
    explicit = os.environ.get("TARSDOCK_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "tarsdock")


def stamp_path(out_dir: str, fmt: str) -> str:
    """The stamp of generating `fmt` into out_dir."""
    # a CRC, not hashlib (whose import loads OpenSSL: 2 ms of an unchanged run's ~80): the
    # stamp holds its key, format and out dir included, so two names that clash cost only a
    # full run
    digest = zlib.crc32(f"{fmt}\0{out_dir}".encode())
    return os.path.join(cache_dir(), f"generate-{digest:08x}.json")


def signature(info: os.stat_result) -> Signature:
    """What a stamp keeps of a stat: inode, size, mtime and ctime in ns, mode."""
    return [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_mode]


def tree(root: str) -> dict[str, Signature]:
    """The signature of root and of every entry below it, symlinks followed, each dir once."""
    found: dict[str, Signature] = {}
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        found[folder] = signature(info)
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    entry_info = entry.stat()
                except FileNotFoundError:      # a dangling symlink: the load reports it
                    found[entry.path] = []
                    continue
                if entry.is_dir() and entry.name not in SKIPPED_DIRS:
                    pending.append(entry.path)
                elif not entry.is_dir():
                    found[entry.path] = signature(entry_info)
    return found


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def code_fingerprint(package: str = PACKAGE_DIR) -> list[list[object]]:
    """Size and mtime of every file of this tarsdock installation, stock templates included; a
    dangling symlink (tree() gives it no signature) is there by name only."""
    return sorted([path[len(package):], *sig[1:3]] for path, sig in tree(package).items()
                  if path != package)


def signatures(paths: Iterable[str]) -> dict[str, Signature]:
    """Each path's signature; [] for a path that does not exist."""
    found: dict[str, Signature] = {}
    for path in paths:
        try:
            found[path] = signature(os.stat(path))
        except FileNotFoundError:
            found[path] = []
    return found


def _all_dirs(dirs: Iterable[str]) -> bool:
    """Whether every path is a directory."""
    try:
        return all(S_ISDIR(os.stat(path).st_mode) for path in dirs)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _innermost(dirs: Iterable[str], files: Iterable[str]) -> list[str]:
    """The dirs that hold none of the other dirs or files: if those are found, so are the rest
    (only direct parents are dropped: enough for a node's dirs, and no walk up from each), in
    the order given."""
    # 7,000 paths on a 1,000-service node: rpartition, not os.path.dirname (5x the time; for
    # these absolute, normalised paths they differ only below the root, "/" never a recorded
    # dir), and the order given: stable, with no sort of long paths sharing a long prefix
    unique = dict.fromkeys(dirs)
    holders = {path.rpartition("/")[0] for path in unique}
    holders.update([path.rpartition("/")[0] for path in files])
    return [path for path in unique if path not in holders]


def make_key(fmt: str, out_dir: str, docker: str, scripts_dir: str,
             config_dir: str) -> list[object]:
    """What else the output depends on: tarsdock itself and how it was run."""
    from tarsdock import __version__

    return [VERSION, __version__, code_fingerprint(), fmt, out_dir, docker, scripts_dir,
            config_dir]


def _listing(out_dir: str) -> list[str]:
    """The names in the output dir (a stale file shows up here)."""
    return sorted(os.listdir(out_dir))


def check(path: str, key: list[object]) -> Replay | None:
    """The replay of the stamp at path if it holds for this run, else None."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return None
    try:
        holds = (data["key"] == json.loads(json.dumps(key))
                 and tree(data["config_dir"]) == data["tree"]
                 and signatures(data["outside"]) == data["outside"]
                 and signatures(data["files"]) == data["files"]
                 and _listing(data["out_dir"]) == data["listing"]
                 and _all_dirs(data["dirs"]))
    except (KeyError, TypeError, AttributeError, OSError):
        return None
    return Replay(list(data["warnings"]), dict(data["counts"])) if holds else None


def forget(path: str) -> None:
    """Remove the stamp (before a full run writes anything)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def record(path: str, key: list[object], config_dir: str, out_dir: str, outside: Iterable[str],
           outputs: Iterable[str], dirs: Iterable[str], warnings: list[str],
           started_ns: int, stats: Mapping[str, Signature]) -> bool:
    """Write the stamp of a finished run; False when an input is too new or there is no cache.

    `stats` holds the signature of each output, taken by the writer (os.stat for any missing)."""
    inputs, extra = tree(config_dir), signatures(outside)
    for signature in (*inputs.values(), *extra.values()):
        if signature and max(signature[2], signature[3]) > started_ns - RACY_NS:
            return False
    files = [str(output) for output in outputs]
    data = {"key": key, "config_dir": config_dir, "tree": inputs, "outside": extra,
            "files": {output: stats[output] if output in stats
                      else signatures([output])[output] for output in files},
            "out_dir": out_dir, "listing": _listing(out_dir),
            "dirs": _innermost(dirs, files), "warnings": warnings,
            "counts": {"new": 0, "changed": 0, "unchanged": len(files), "stale": 0}}
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as stream:
            # dumps, not dump: only a one-shot encoding uses the C encoder; no check for
            # cycles (data and the key are made of new lists, 2,000 of them on a 1,000-service
            # node) and no spaces: 1.7 -> 1.5 ms of the run's serial end
            stream.write(json.dumps(data, check_circular=False, separators=(",", ":")))
    except OSError:       # no cache dir to be had: every run is a full one
        return False
    # no fsync: a stamp lost in a crash costs one full run, and a torn one reads as none
    os.replace(temp, path)
    return True
