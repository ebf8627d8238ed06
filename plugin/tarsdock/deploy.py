"""`tarsdock deploy`: unpack a Tars release package into a service's bin dir, atomically."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tarsdock.errors import EnvironmentFault, InputError, Origin, TarsdockError, did_you_mean
from tarsdock.options import EXIT_OK, EXIT_USAGE, complete_names, config_dir

if TYPE_CHECKING:
    from tarsdock.model import NodeSettings

Supervisor = Literal["supervisord", "systemd"]
Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]

RELEASES = "releases"
UNPACK_PREFIX = ".unpack-"


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner: run argv, capture its output, never raise on a non-zero exit."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


# --- pure checks on the archive -----------------------------------------------------------------


def member_parts(name: str) -> tuple[str, ...]:
    """The path components of a member name without '.' and empty parts (absolute names kept)."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    return ("/", *parts) if name.startswith("/") else parts


def release_root(
    members: Sequence[tarfile.TarInfo], server: str, server_type: str
) -> tuple[str, ...]:
    """The archive dir whose contents become bin/, as tarsnode's CommandPatch picks it."""
    twice = (server, server)
    # @tars/deploy packs Node.js services as Server/Server/{src,tars_nodejs}; tarsnode copies the
    # inner dir into bin/ for tars_nodejs only (for tars_cpp, Server/Server is the executable).
    nested = server_type == "tars_nodejs" and any(
        member_parts(m.name)[:2] == twice and (m.isdir() or len(member_parts(m.name)) > 2)
        for m in members
    )
    return twice if nested else (server,)


def check_members(
    members: Sequence[tarfile.TarInfo], root: tuple[str, ...], origin: Origin
) -> None:
    """Refuse a package with a member that could escape the release dir or is not a plain file."""
    has_root = False
    for member in members:
        parts = member_parts(member.name)
        problem = _member_problem(member, parts, root)
        if problem:
            raise InputError(origin, f"member '{member.name}' {problem}; package refused")
        has_root = has_root or parts[: len(root)] == root
    if not has_root:
        raise InputError(origin, f"no top directory '{'/'.join(root)}/' (a Tars release package "
                         "holds one directory named after the server)")


def _member_problem(member: tarfile.TarInfo, parts: tuple[str, ...], root: tuple[str, ...]) -> str:
    """Why a member cannot be unpacked, or an empty string."""
    if parts[:1] == ("/",):
        return "has an absolute path"
    if ".." in parts:
        return "has '..' in its path"
    if not parts or parts == root[: len(parts)]:
        return "" if member.isdir() else "replaces the release directory with a non-directory"
    if parts[: len(root)] != root:
        return f"is outside the top directory '{'/'.join(root)}/'"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "is a device, fifo or other special file"
    if member.issym():
        return _link_problem(parts[len(root):], member.linkname, "symlink")
    if member.islnk():
        target = member_parts(member.linkname)
        if target[:1] == ("/",) or ".." in target or target[: len(root)] != root:
            return f"is a hard link to '{member.linkname}' outside the release"
    return ""


def _link_problem(inside: tuple[str, ...], linkname: str, kind: str) -> str:
    """Why a link at `inside` (relative to the release dir) escapes it, or an empty string."""
    if linkname.startswith("/"):
        return f"is a {kind} to the absolute path '{linkname}'"
    target = posixpath.normpath(posixpath.join(*inside[:-1], linkname) if inside[:-1] else linkname)
    if target == ".." or target.startswith("../"):
        return f"is a {kind} to '{linkname}', outside the release"
    return ""


# --- the service dir: releases/<id>, bin -> releases/<id>, bin.previous -> releases/<id> ---------


@dataclass(frozen=True)
class ReleaseDirs:
    """A service's releases; bin and bin.previous are relative symlinks into releases/."""

    service_dir: Path

    @property
    def bin(self) -> Path:
        return self.service_dir / "bin"

    @property
    def previous(self) -> Path:
        return self.service_dir / "bin.previous"

    @property
    def releases(self) -> Path:
        return self.service_dir / RELEASES

    def release_of(self, link: Path) -> str | None:
        """The release id a link points at, None when the link is absent."""
        if not link.is_symlink():
            return None
        target = Path(os.readlink(link))
        if target.parent != Path(RELEASES) or not target.name:
            raise TarsdockError(f"{link} points at '{target}', not at a release in {RELEASES}/; "
                                "move it away to deploy with tarsdock")
        return target.name


@contextlib.contextmanager
def locked(dirs: ReleaseDirs) -> Iterator[None]:
    """Serialize deploys and rollbacks of one service (a stale unpack dir is then safe to drop)."""
    dirs.releases.mkdir(parents=True, exist_ok=True)
    with open(dirs.service_dir / ".deploy.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def release_id(package: Path, now: datetime, taken: set[str]) -> str:
    """A new release id: UTC time and the package's digest, unique among `taken`."""
    digest = hashlib.sha256()
    with package.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    base = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:12]}"
    candidates = (base if n == 1 else f"{base}-{n}" for n in range(1, len(taken) + 2))
    return next(c for c in candidates if c not in taken)


def unpack(package: Path, dirs: ReleaseDirs, server: str, server_type: str, now: datetime) -> str:
    """Unpack a checked package into releases/<id> by way of a sibling temp dir; return the id."""
    origin = Origin(str(package))
    if not package.is_file():
        raise InputError(origin, "no such package file")
    try:
        with tarfile.open(package, "r:*") as archive:
            members = archive.getmembers()
            root = release_root(members, server, server_type)
            check_members(members, root, origin)
            staging = Path(tempfile.mkdtemp(prefix=UNPACK_PREFIX, dir=dirs.releases))
            try:
                _extract(archive, staging, origin)
                return _keep(staging.joinpath(*root), package, dirs, now, origin)
            finally:
                shutil.rmtree(staging)
    except (tarfile.ReadError, tarfile.CompressionError, EOFError) as error:
        raise InputError(origin, f"not a readable tgz package: {_tar_problem(error)}") from error


def _tar_problem(error: Exception) -> str:
    """tarfile's reason on one line: with "r:*" it lists every method it tried, one a line."""
    lines = str(error).splitlines()
    if len(lines) > 1:
        return "neither a tar archive nor one compressed with gzip, bzip2 or xz"
    return lines[0] if lines else type(error).__name__


def _keep(target: Path, package: Path, dirs: ReleaseDirs, now: datetime, origin: Origin) -> str:
    """Move the unpacked release dir into releases/ under a new id."""
    if not target.is_dir() or target.is_symlink():
        raise InputError(origin, f"'{target.name}' in the package is not a directory")
    new_id = release_id(package, now, {p.name for p in dirs.releases.iterdir()})
    target.rename(dirs.releases / new_id)
    return new_id


def _extract(archive: tarfile.TarFile, dest: Path, origin: Origin) -> None:
    """Extract with Python's 'data' filter as a second guard behind check_members."""
    try:
        archive.extractall(dest, filter="data")
    except tarfile.FilterError as error:
        name = error.tarinfo.name if error.tarinfo else "?"
        raise InputError(origin, f"member '{name}' refused: {error}; package refused") from error
    except OSError as error:
        if error.errno is not None:
            # the disk, not the package (full, read-only, permission denied): exit status 5
            raise EnvironmentFault.of(error, dest) from error
        raise InputError(origin, f"cannot unpack: {error}") from error
    except (EOFError, tarfile.TarError) as error:
        raise InputError(origin, f"cannot unpack: {error}") from error


def point(link: Path, release: str) -> None:
    """Atomically make `link` a relative symlink to releases/<release> (symlink, then rename)."""
    temp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    os.symlink(f"{RELEASES}/{release}", temp)
    os.replace(temp, link)


def adopt_plain_bin(dirs: ReleaseDirs, now: datetime) -> str | None:
    """Move a bin dir not made by tarsdock (tarsnode's, or hand-made) into releases/; its id."""
    if dirs.bin.is_symlink() or not dirs.bin.exists():
        return None
    if not dirs.bin.is_dir():
        raise EnvironmentFault(str(dirs.bin), "a file, not a directory; move it away to deploy")
    if not any(dirs.bin.iterdir()):
        # `generate` makes an empty bin before anything is deployed: nothing to keep.
        dirs.bin.rmdir()
        return None
    adopted = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-adopted"
    dirs.bin.rename(dirs.releases / adopted)
    return adopted


def activate(dirs: ReleaseDirs, new: str, now: datetime) -> str | None:
    """Make `new` the current release, keep the current one as previous; return that one."""
    current = adopt_plain_bin(dirs, now) or dirs.release_of(dirs.bin)
    if current:
        point(dirs.previous, current)
    point(dirs.bin, new)
    prune(dirs)
    return current


def rollback(dirs: ReleaseDirs) -> str:
    """Swap the current and the previous release; return the release now current."""
    previous = dirs.release_of(dirs.previous)
    if previous is None or not (dirs.releases / previous).is_dir():
        raise TarsdockError(f"no previous release in {dirs.service_dir} to roll back to")
    current = dirs.release_of(dirs.bin)
    point(dirs.bin, previous)
    if current:
        point(dirs.previous, current)
    return previous


def prune(dirs: ReleaseDirs) -> None:
    """Remove releases neither bin nor bin.previous points at, and unpack dirs left by a crash."""
    keep = {dirs.release_of(dirs.bin), dirs.release_of(dirs.previous)}
    for entry in dirs.releases.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def deploy(package: Path, dirs: ReleaseDirs, server: str, server_type: str,
           now: datetime) -> tuple[str, str | None]:
    """Unpack and activate a package under the service's lock; return (new, previous) ids."""
    if server_type == "tars_java":
        raise TarsdockError("tars_java releases are war/jar files; deploy unpacks tgz packages")
    with locked(dirs):
        new = unpack(package, dirs, server, server_type, now)
        return new, activate(dirs, new, now)


# --- restart through the node's supervisor -------------------------------------------------------


def restart_argv(supervisor: Supervisor, service: str, supervisorctl_config: str = "",
                 server_url: str = "") -> list[str]:
    """The command that restarts one service under the given supervisor: supervisorctl reaches
    supervisord through `-c` (a config naming its serverurl) when given, else at `server_url`
    ([node] supervisor_url, as apply and status reach it)."""
    if supervisor == "systemd":
        return ["systemctl", "restart", f"tars-{service}.service"]
    reach = (["-c", supervisorctl_config] if supervisorctl_config
             else ["-s", server_url] if server_url else [])
    return ["supervisorctl", *reach, "restart", f"tars:{service}"]


def detect_supervisor(service: str, runner: Runner, systemd_booted: bool) -> Supervisor:
    """systemd when it runs this host and has the service's unit, else supervisord."""
    if not systemd_booted:
        return "supervisord"
    try:
        found = runner(["systemctl", "cat", f"tars-{service}.service"]).returncode == 0
    except FileNotFoundError:
        found = False
    return "systemd" if found else "supervisord"


# supervisorctl's exit statuses when supervisord does not answer (supervisorctl.py, upcheck:
# ECONNREFUSED -> INSUFFICIENT_PRIVILEGES 4, ENOENT -> NOT_RUNNING 7), with its line "URL WHY"
SUPERVISORCTL_NO_ANSWER = {4: "refused connection", 7: "no such file"}
# what systemctl says when there is no systemd to talk to (a container, a chroot)
SYSTEMD_ABSENT = ("has not been booted with systemd", "Failed to connect to bus")


def _no_answer(command: str, code: int, answer: str) -> EnvironmentFault | None:
    """The supervisor did not answer a restart: the environment (exit 5), not the input."""
    line = answer.splitlines()[-1] if answer else ""
    why = SUPERVISORCTL_NO_ANSWER.get(code, "")
    if command == "supervisorctl" and why and line.endswith(f" {why}"):
        return EnvironmentFault(line.removesuffix(f" {why}"), f"supervisord does not answer "
                                f"({why}); is it running? The release is deployed: restart the "
                                "service when it is")
    if command == "systemctl" and code != 0 and any(s in answer for s in SYSTEMD_ABSENT):
        return EnvironmentFault("systemctl", f"systemd does not answer ({line}); the release is "
                                "deployed: restart the service when it answers")
    return None


def restart(argv: Sequence[str], runner: Runner) -> None:
    """Run a restart command; a failure is an error that quotes the supervisor's answer."""
    try:
        result = runner(argv)
    except FileNotFoundError as error:
        raise EnvironmentFault(argv[0], "not found; cannot restart (is it installed and on "
                               "PATH?)") from error
    answer = (result.stdout + result.stderr).strip()
    silent = _no_answer(os.path.basename(argv[0]), result.returncode, answer)
    if silent is not None:
        raise silent
    # supervisorctl 4 may exit 0 after printing "ERROR (...)" for a failed start.
    if result.returncode != 0 or "ERROR" in result.stdout:
        raise TarsdockError(f"'{' '.join(argv)}' failed (exit {result.returncode}): {answer}")


# --- the command ---------------------------------------------------------------------------------


def cmd_deploy(args: argparse.Namespace, runner: Runner = run_command) -> int:
    """Deploy a release package (or roll back), then restart the service if asked."""
    if bool(args.package) == bool(args.rollback):
        print("tarsdock deploy: error: give either PACKAGE or --rollback", file=sys.stderr)
        return EXIT_USAGE

    server_type, dirs, node = _service_location(config_dir(args), args.service)
    now = datetime.now(UTC)
    if args.rollback:
        with locked(dirs):
            print(f"{args.service}: rolled back to release {rollback(dirs)}")
    else:
        server = args.service.split(".", 1)[1]
        new, previous = deploy(Path(args.package), dirs, server, server_type, now)
        print(f"{args.service}: release {new} deployed into {dirs.bin}"
              + (f" (previous: {previous})" if previous else ""))
    if args.restart:
        supervisor: Supervisor = args.supervisor if args.supervisor != "auto" else \
            detect_supervisor(args.service, runner, Path("/run/systemd/system").is_dir())
        restart(restart_argv(supervisor, args.service, args.supervisorctl_config or "",
                             node.supervisor_url), runner)
        print(f"{args.service}: restarted under {supervisor}")
    return EXIT_OK


def _service_location(config_dir: Path, service: str) -> tuple[str, ReleaseDirs, NodeSettings]:
    """The service's type and release dirs, and the node's settings, from the manifest."""
    from tarsdock.manifest import load_manifest

    manifest = load_manifest(config_dir)
    spec = manifest.services.get(service)
    if spec is None:
        raise InputError(Origin(str(config_dir / "node.toml")), f"no service '{service}' in the "
                         f"manifest{did_you_mean(service, manifest.services)}")
    return spec.type, ReleaseDirs(Path(manifest.node.data_dir, service)), manifest.node


def register(parser: argparse.ArgumentParser) -> None:
    """The deploy subcommand's arguments."""
    complete_names(parser.add_argument("service", metavar="App.Server"), "services")
    parser.add_argument("package", nargs="?", metavar="PACKAGE.tgz",
                        help="Tars release package: a tgz with a directory named after the server")
    parser.add_argument("--rollback", action="store_true",
                        help="make the previous release current again instead of deploying")
    parser.add_argument("--restart", action="store_true", help="restart the service afterwards")
    parser.add_argument("--supervisor", choices=("auto", "supervisord", "systemd"), default="auto",
                        help="which supervisor restarts it (auto: systemd if it has the unit)")
    parser.add_argument("--supervisorctl-config", metavar="FILE",
                        help="supervisord config for supervisorctl -c (default: supervisorctl -s "
                             "[node] supervisor_url)")
    parser.set_defaults(func=cmd_deploy)
