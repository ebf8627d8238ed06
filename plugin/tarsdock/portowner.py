"""Who holds a TCP port on 127.0.0.1, as /proc tells: for messages about a port that is taken.

Two tarsdock nodes on one host that share `[node] node_port` (two config dirs, a test run beside
the demo) meet here: the second node server cannot listen. The kernel's answer is only "Address
already in use"; /proc says which process holds the port (`/proc/net/tcp{,6}` gives the
listening socket's inode, `/proc/PID/fd/*` the process holding it, `/proc/PID/cmdline` what it
is). Reading another user's fds needs root: what /proc does not show is left out, never guessed.

`listening_inodes`, `holders_in` and `node_server_config_dir` are pure; `port_holders` reads /proc
(its root injectable for tests) and never raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from tarsdock.errors import one_line
from tarsdock.records import Record

LISTEN = "0A"   # st column of /proc/net/tcp: TCP_LISTEN (include/net/tcp_states.h)
# Local addresses whose listener keeps 127.0.0.1:PORT from being bound (hex as /proc shows them:
# each 32-bit word in host byte order, little-endian here): 0.0.0.0, 127.0.0.1, and in tcp6 the
# wildcard :: (dual-stack) and ::ffff:127.0.0.1.
BLOCKING = {"tcp": {"00000000", "0100007F"},
            "tcp6": {"0" * 32, "0000000000000000FFFF00000100007F"}}


class Holder(Record):
    """A process holding a listening socket: its pid, argv and working directory."""

    __slots__ = _fields = ("pid", "argv", "cwd")
    pid: Final[int]
    argv: Final[tuple[str, ...]]
    cwd: Final[str]

    def __init__(self, pid: int, argv: tuple[str, ...], cwd: str = "") -> None:
        self.pid = pid
        self.argv = argv
        self.cwd = cwd

    def __str__(self) -> str:
        return f"pid {self.pid} ({shown_argv(self.argv)})"


def listening_inodes(table: str, port: int, blocking: Iterable[str]) -> set[str]:
    """Inodes of the sockets in a /proc/net/tcp{,6} text that listen on `port` at an address
    that blocks a bind of 127.0.0.1:`port`."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, _, hex_port = fields[1].partition(":")
        if int(hex_port, 16) == port and address.upper() in blocking:
            found.add(fields[9])
    return found


def holders_in(fd_links: Mapping[int, Iterable[str]], inodes: set[str]) -> list[int]:
    """The pids whose fd links (`socket:[INODE]`) name one of `inodes`, in pid order."""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    return sorted(pid for pid, links in fd_links.items() if wanted & set(links))


def node_server_config_dir(holder: Holder) -> str | None:
    """The real path of the config dir a `tarsdock ... node-server` process serves, else None.

    Reads the argv the generated program/unit runs (`tarsdock --config-dir DIR node-server`);
    without --config-dir it is $TARSDOCK_CONFIG_DIR or /etc/tarsdock, which /proc does not
    give us for sure: "" then (a node server of an unknown config dir).
    """
    argv = list(holder.argv)
    if "node-server" not in argv or not any(Path(w).name.startswith("tarsdock") for w in argv[:3]):
        return None
    for word, value in zip(argv, [*argv[1:], ""], strict=True):
        if word.startswith("--config-dir="):
            word, value = "--config-dir", word.removeprefix("--config-dir=")
        if word == "--config-dir" and value:
            return os.path.realpath(os.path.join(holder.cwd or "/", value))
    return ""


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _fd_links(proc: Path, pids: Iterable[int] | None = None) -> dict[int, list[str]]:
    """Each process's fd link targets: of `pids`, else of every process."""
    if pids is not None:
        entries = [proc / str(pid) for pid in pids]
    else:
        entries = list(proc.iterdir()) if proc.is_dir() else []
    links: dict[int, list[str]] = {}
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            names = os.listdir(entry / "fd")
        except OSError:
            continue       # gone, or another user's (not root): /proc does not tell
        found = []
        for name in names:
            try:
                found.append(os.readlink(entry / "fd" / name))
            except OSError:
                continue
        links[int(entry.name)] = found
    return links


def port_holders(port: int, proc: Path = Path("/proc"), first: Iterable[int] = ()) -> list[Holder]:
    """The processes holding a listener that keeps 127.0.0.1:`port` from being bound.

    Empty when nothing listens there or /proc does not show who does (no permission). The
    pids `first` are looked at alone first: when they hold it, the rest of /proc is not
    walked (a walk of every process's fds takes ~0.1 s on a busy host).
    """
    inodes = set()
    for table, blocking in BLOCKING.items():
        inodes |= listening_inodes(_read(proc / "net" / table), port, blocking)
    inodes.discard("0")
    if not inodes:
        return []
    pids = holders_in(_fd_links(proc, first), inodes) or holders_in(_fd_links(proc), inodes)
    holders = []
    for pid in pids:
        argv = tuple(word for word in _read(proc / str(pid) / "cmdline").split("\0") if word)
        try:
            cwd = os.readlink(proc / str(pid) / "cwd")
        except OSError:
            cwd = ""
        holders.append(Holder(pid, argv, cwd))
    return holders


def held_by(port: int) -> str:
    """`held by pid N (ARGV)...` for the processes /proc shows listening on the port, or ""."""
    return describe(port_holders(port))


# characters of a holder's command line a message shows: a `python3 -c "..."` holder's script
# can run to kilobytes
ARGV_SHOWN = 200


def shown_argv(argv: tuple[str, ...]) -> str:
    """A command line for a one-line message: escaped (its words may hold line breaks) and cut
    to ARGV_SHOWN characters, `...` marking the cut; `?` for none."""
    text = one_line(" ".join(argv)) or "?"
    return text if len(text) <= ARGV_SHOWN else text[:ARGV_SHOWN - 3] + "..."


def describe(holders: Iterable[Holder]) -> str:
    """`held by pid N (ARGV)[, the node server of config dir DIR]; ...`, or "" for none."""
    parts = []
    for holder in holders:
        config_dir = node_server_config_dir(holder)
        shown = one_line(config_dir or "")
        whose = ("" if config_dir is None else
                 f", the tarsdock node server of config dir {shown}" if config_dir else
                 ", a tarsdock node server")
        parts.append(f"{holder}{whose}")
    return f"held by {'; '.join(parts)}" if parts else ""
