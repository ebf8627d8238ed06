"""`tarsdock status`: one row per service, from the supervisor, Docker and the state dir.

    manifest ─┐
    supervisor (supervisord XML-RPC | systemctl show) ─┤
    Docker (this instance's containers) ─┼─ rows() ─▶ table (people) | JSON (scripts)
    state dir (.starts, .failures, listener.json) ─┘

Every source is read through an adapter (`SupervisorSource`, the Engine, `read_state`); `rows`
and the renderers are pure. To add a column (a heartbeat helper: "last heartbeat age", "Tars
version"): add a field to `Row`, fill it in `rows`, and add one line to `COLUMNS`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tarsdock import keys, portowner, records
from tarsdock.engine import Container, DockerUnreachable
from tarsdock.errors import EnvironmentFault, TarsdockError
from tarsdock.model import Manifest, NodeSettings
from tarsdock.state import (
    OOM,
    Failure,
    failures_path,
    heartbeat_path,
    pid_path,
    read_failures,
    read_pids,
    read_starts,
    starts_path,
)
from tarsdock.supervision import LISTENER_FILE, REVIVABLE
from tarsdock.supervisors import NODE_UNITS, supervisord_proxy, supervisord_silent

EXIT_ALL_RUNNING, EXIT_NOT_ALL_RUNNING = 0, 3
# a program or unit that is not running and did not fail: supervisord's, systemd's ActiveState/Sub
STOPPED_STATES = ("STOPPED", "inactive/dead")
GROUP = "tars"
HOUR = 3600.0
OOM_NEAR = 10   # seconds: an OOM line this close to the last failure explains it
Runner = Callable[[Sequence[str]], str]   # argv -> stdout; raises TarsdockError


@dataclass(frozen=True)
class Supervised:
    """What the supervisor says of one service."""

    state: str                     # its own words: RUNNING, FATAL, ... / active/running, ...
    running: bool
    pid: int | None = None
    started: float | None = None   # epoch of the current (or last) run's start
    restarts: int | None = None    # the supervisor's own counter, if it keeps one
    retry_at: float | None = None  # when the supervisor itself tries it again (systemd timer)


@dataclass(frozen=True)
class Row:
    """One service's line; times are epoch seconds, None when unknown."""

    service: str
    state: str
    running: bool
    run: str
    pid: int | None = None
    container: str = ""
    image: str = ""
    digest: str = ""
    started: float | None = None
    uptime: float | None = None
    restarts_1h: int | None = None
    last_failure: dict[str, Any] | None = None   # {"when", "code", "text"}
    punished_until: float | None = None
    listener: str = ""             # the listener's phase (punished, waiting-docker, ...)
    heartbeat: float | None = None  # the last keepAlive of the current run (node object)
    tars_version: str = ""         # what the service's runtime sent in reportVersion
    notes: list[str] = field(default_factory=list)


# (Row field, header) in table order
COLUMNS: list[tuple[str, str]] = [
    ("service", "SERVICE"), ("state", "STATE"), ("run", "RUN"), ("container", "CONTAINER"),
    ("image", "IMAGE"), ("digest", "DIGEST"), ("uptime", "UPTIME"),
    ("restarts_1h", "RESTARTS/1H"), ("heartbeat", "HEARTBEAT"), ("tars_version", "VERSION"),
    ("last_failure", "LAST FAILURE"), ("punished_until", "PUNISHED UNTIL"),
]


class SupervisorSource(Protocol):
    """Reads the state of the node's services from its supervisor."""

    def read(self, services: Sequence[str]) -> dict[str, Supervised]: ...


# --- supervisord ---------------------------------------------------------------------------


class Supervisord:
    """supervisord's XML-RPC interface (as supervisorctl reaches it: unix:// or http://)."""

    def __init__(self, url: str, proxy: Any = None) -> None:
        self.url = url
        self.proxy = proxy

    def _rpc(self) -> Any:
        if self.proxy is None:
            self.proxy = supervisord_proxy(self.url)
        return self.proxy.supervisor

    def read(self, services: Sequence[str]) -> dict[str, Supervised]:
        try:
            infos = self._rpc().getAllProcessInfo()
        except (OSError, xmlrpc.client.Error) as error:
            raise supervisord_silent(self.url, error, " (the URL is --supervisor-url, "
                                     "$SUPERVISOR_SERVER_URL or [node] supervisor_url)") from None
        found = {}
        for info in infos:
            if info["group"] != GROUP:
                continue
            running = info["statename"] == "RUNNING"
            found[info["name"]] = Supervised(
                info["statename"], running, info["pid"] or None,
                float(info["start"]) if info["start"] else None)
        return found


# --- systemd -------------------------------------------------------------------------------

SYSTEMD_PROPERTIES = ("Id", "ActiveState", "SubState", "MainPID", "NRestarts",
                      "ExecMainStartTimestamp", "NextElapseUSecRealtime",
                      "NextElapseUSecMonotonic")
# The units of a time span as `systemctl show` prints one (systemd's format_timespan), in s.
TIMESPAN_UNITS = {"y": 31557600.0, "month": 2629800.0, "w": 604800.0, "d": 86400.0,
                  "h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "μs": 1e-6}
TIMESPAN_PART = re.compile(r"(\d+(?:\.\d+)?)(y|month|w|d|h|min|ms|s|us|μs)")
Clocks = Callable[[], tuple[float, float]]   # () -> (epoch seconds, CLOCK_MONOTONIC seconds)


def systemctl(argv: Sequence[str]) -> str:
    """Run systemctl; its stdout. Raises EnvironmentFault (a TarsdockError, exit 5): no
    systemctl, no systemd to answer it, or a failure of its own."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              check=False)
    except OSError as error:
        raise EnvironmentFault(argv[0], f"systemd does not answer ({error.strerror or error})"
                               ) from None
    except subprocess.TimeoutExpired:
        raise EnvironmentFault(argv[0], "systemd does not answer (no answer in 30 s)") from None
    if done.returncode != 0:
        cause = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no answer"]
        raise EnvironmentFault(argv[0], f"{' '.join(argv[1:3])}: {cause[0]}")
    return done.stdout


def clocks() -> tuple[float, float]:
    """The wall clock and CLOCK_MONOTONIC (systemd's clock for OnActiveSec=), read together."""
    return time.time(), time.monotonic()


class Systemd:
    """`systemctl show` of each tars-App.Server.service and its punish timer, in one call."""

    def __init__(self, runner: Runner = systemctl, now: Clocks = clocks) -> None:
        self.runner = runner
        self.now = now

    def read(self, services: Sequence[str]) -> dict[str, Supervised]:
        if not services:
            return {}
        units = [f"tars-{s}.service" for s in services]
        timers = [f"tars-punish@{u}.timer" for u in units]
        out = self.runner(["systemctl", "show", "--timestamp=unix",
                           "-p", ",".join(SYSTEMD_PROPERTIES), *units, *timers])
        blocks = {b.get("Id", ""): b for b in parse_show(out)}
        found = {}
        for service, unit, timer in zip(services, units, timers, strict=True):
            block = blocks.get(unit, {})
            active, sub = block.get("ActiveState", "unknown"), block.get("SubState", "unknown")
            pid = int(block.get("MainPID") or 0)
            running = (active, sub) == ("active", "running")
            found[service] = Supervised(
                f"{active}/{sub}", running, pid or None,
                unix_time(block.get("ExecMainStartTimestamp", "")),
                int(block["NRestarts"]) if block.get("NRestarts", "").isdigit() else None,
                # a timer armed by a stop that counted as a failure (a heartbeat restart's
                # SIGKILL) while systemd started the unit again: its ExecCondition will find
                # the unit running and do nothing, so it punishes nothing
                None if running else self._elapse(blocks.get(timer, {})))
        return found

    def _elapse(self, timer: Mapping[str, str]) -> float | None:
        """When an armed timer elapses, as epoch seconds. The punish timer's OnActiveSec= is a
        monotonic trigger: systemd leaves NextElapseUSecRealtime empty for it and gives
        NextElapseUSecMonotonic, a CLOCK_MONOTONIC time printed as a time span."""
        realtime = unix_time(timer.get("NextElapseUSecRealtime", ""))
        monotonic = timespan(timer.get("NextElapseUSecMonotonic", ""))
        if realtime is not None or monotonic is None:
            return realtime
        wall, mono = self.now()
        return wall + (monotonic - mono)


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show` output of several units: one dict per blank-line separated block."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append({})
            continue
        key, _, value = line.partition("=")
        blocks[-1][key] = value
    return [b for b in blocks if b]


def unix_time(value: str) -> float | None:
    """A `--timestamp=unix` value (`@1700000000`) as epoch seconds; empty or n/a: None."""
    value = value.strip()
    if value.startswith("@") and value[1:].replace(".", "", 1).isdigit():
        stamp = float(value[1:])
        return stamp or None
    return None


def timespan(value: str) -> float | None:
    """A time span as `systemctl show` prints it (`3h 20min 12.345678s`), in seconds; empty,
    0, infinity or anything else: None."""
    total = 0.0
    for part in value.split():
        match = TIMESPAN_PART.fullmatch(part)
        if match is None:
            return None
        total += float(match[1]) * TIMESPAN_UNITS[match[2]]
    return total or None


# --- the state dir -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What the wrapper and the listener recorded for one service."""

    starts: list[int] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    listener: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: Mapping[str, Any] = field(default_factory=dict)   # node-server's JSON record
    wrapped: tuple[int, int] | None = None   # (wrapper pid, service pid): tarsdock-run's pid file


def read_heartbeat(path: Path) -> dict[str, Any]:
    """The node object's record of a service (tarsdock.nodeserver); {} when none or unreadable."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def read_state(state_dir: Path, services: Sequence[str]) -> dict[str, Recorded]:
    """The state dir's records per service; unreadable files count as empty."""
    try:
        document = json.loads((state_dir / LISTENER_FILE).read_text(encoding="utf-8"))
        programs = document.get("programs", {}) if isinstance(document, dict) else {}
    except (OSError, ValueError):
        programs = {}
    found = {}
    for service in services:
        try:
            starts = read_starts(starts_path(state_dir, service))
            failures = read_failures(failures_path(state_dir, service))
        except OSError:
            starts, failures = [], []
        found[service] = Recorded(starts, failures, programs.get(service) or {},
                                  read_heartbeat(heartbeat_path(state_dir, service)),
                                  read_pids(pid_path(state_dir, service)))
    return found


def restarts_within(starts: Sequence[int], now: float, window: float = HOUR) -> int:
    """Starts within the window that followed an earlier start (a first start is none)."""
    return sum(1 for i, t in enumerate(starts) if i > 0 and t > now - window)


def last_failure(failures: Sequence[Failure]) -> Failure | None:
    """The latest failure; an OOM recorded within OOM_NEAR s of it is the better reason."""
    if not failures:
        return None
    last = failures[-1]
    near = [f for f in failures if f.code == OOM and abs(f.when - last.when) <= OOM_NEAR]
    return near[-1] if near else last


# --- the pure part -------------------------------------------------------------------------


def rows(manifest: Manifest, supervised: Mapping[str, Supervised],
         containers: Mapping[str, Container] | None, digests: Mapping[str, str],
         recorded: Mapping[str, Recorded], now: float) -> list[Row]:
    """One row per service in the manifest, sorted by name; `containers` None: Docker away."""
    out = []
    for name in sorted(manifest.services):
        spec = manifest.services[name]
        sup = supervised.get(name, Supervised("not loaded", False))
        rec = recorded.get(name, Recorded())
        container = (containers or {}).get(name)
        failure = last_failure(rec.failures)
        phase = str(rec.listener.get("phase", ""))
        # the listener tries a FATAL program again too (every punish interval, or as soon as
        # Docker or its image is back): when, as for a punished one and a systemd punish timer
        until = rec.listener.get("until") if phase in REVIVABLE else sup.retry_at
        restarts = (restarts_within(rec.starts, now) if rec.starts else sup.restarts)
        out.append(Row(
            service=name, state=sup.state, running=sup.running, run=spec.run,
            pid=service_pid(spec.run, sup.pid, rec.wrapped),
            container=container.id[:12] if container else ("?" if containers is None else ""),
            image=container.image if container else (spec.image.ref if spec.image else ""),
            digest=digests.get(container.image_id, "") if container else "",
            started=sup.started,
            uptime=now - sup.started if sup.running and sup.started else None,
            restarts_1h=restarts,
            last_failure=records.asdict(failure) if failure else None,
            punished_until=float(until) if isinstance(until, int | float) else None,
            listener=phase, heartbeat=_last_beat(rec.heartbeat),
            tars_version=str(rec.heartbeat.get("version", ""))))
    return out


def service_pid(run: str, supervised: int | None, wrapped: tuple[int, int] | None) -> int | None:
    """The pid to show: supervisord reports tarsdock-run's for a native Tars service (it stays
    its parent), and the wrapper records the service's beside its own at each start; the
    service's is the one an operator signals and its heartbeats carry. A record of another run
    (another wrapper pid) is ignored."""
    if run == "native" and wrapped is not None and supervised == wrapped[0]:
        return wrapped[1]
    return supervised


def _last_beat(record: Mapping[str, Any]) -> float | None:
    # epoch milliseconds in the record; 0 after a restart, until the new run's first keepAlive
    last = record.get("last")
    return last / 1000 if isinstance(last, int | float) and last > 0 else None


def ago(seconds: float) -> str:
    """A duration in its two largest units: 3d4h, 5m12s, 9s."""
    left = int(max(0, seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts[:2])


def clock_time(epoch: float, now: float) -> str:
    """A local time; with the date when it is not within the next or last 12 hours."""
    layout = "%H:%M:%S" if abs(epoch - now) < 12 * HOUR else "%Y-%m-%d %H:%M"
    return time.strftime(layout, time.localtime(epoch))


def cell(row: Row, key: str, now: float) -> str:
    """A row's column as table text."""
    value = getattr(row, key)
    if key == "uptime":
        return ago(value) if value is not None else "-"
    if key == "heartbeat":
        return f"{ago(now - value)} ago" if value else "-"
    if key == "last_failure":
        return f"{value['text']} ({ago(now - value['when'])} ago)" if value else "-"
    if key == "punished_until":
        return clock_time(value, now) if value else "-"
    if key == "digest":
        return value.rpartition("@")[2].removeprefix("sha256:")[:12] if value else "-"
    if key == "restarts_1h":
        return "-" if value is None else str(value)
    return str(value) if value not in ("", None) else "-"


COLOURS = {"good": "\033[32m", "bad": "\033[31m", "other": "\033[33m"}
RESET = "\033[0m"


def state_colour(row: Row) -> str:
    if row.running:
        return COLOURS["good"]
    stopped = row.state in STOPPED_STATES and not row.last_failure
    return COLOURS["other"] if stopped else COLOURS["bad"]


def table(found: Sequence[Row], now: float, colour: bool = False) -> str:
    """Aligned columns for people; the state coloured when `colour`."""
    grid = [[header for _, header in COLUMNS]]
    grid += [[cell(row, key, now) for key, _ in COLUMNS] for row in found]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    state_col = [key for key, _ in COLUMNS].index("state")
    lines = []
    for r, line in enumerate(grid):
        cells = [text.ljust(widths[i]) for i, text in enumerate(line)]
        if colour and r > 0:
            cells[state_col] = state_colour(found[r - 1]) + cells[state_col] + RESET
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def document(manifest: Manifest, supervisor: str, found: Sequence[Row],
             now: float, node_problem: str = "") -> dict[str, Any]:
    """The --json document."""
    return {"node": manifest.node.name, "instance": manifest.node.instance,
            "supervisor": supervisor, "time": round(now, 3),
            "node_object_problem": node_problem,
            "services": [asdict(row) for row in found]}


def pid_alive(pid: int) -> bool:
    """Whether a process of that pid exists (a signal 0 reaches it, or it is another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


NODE_SOCKET = NODE_UNITS[0]


def node_object_problem(node: NodeSettings, alive: Callable[[int], bool] = pid_alive,
                        runner: Runner = systemctl,
                        holders: Callable[[int], str] = portowner.held_by) -> str:
    """Why the node object (`tarsdock node-server`) is not serving, or "" when nothing says so.

    From the state dir (tarsdock.state): a ready file with a live pid is a serving node server;
    else its error file says why it could not listen (a node_port another process holds).
    Under systemd the node server starts at its socket's first connection, so no ready file
    is no problem there: systemd listens, and its socket unit fails when it cannot (`runner`
    asks systemctl; `holders` says who holds the port, from /proc).
    """
    from tarsdock.state import node_error_path, node_ready_path

    state_dir = Path(node.state_dir)
    text = _first_line(node_ready_path(state_dir))
    if text.isdigit() and alive(int(text)):
        return ""
    if error := _first_line(node_error_path(state_dir)):
        return f"the node server (tarsdock node-server) is not serving: {error}"
    if node.supervisor == "systemd":
        return socket_problem(node, runner, holders)
    return ("the node server (tarsdock node-server) is not serving: no live node server in "
            f"{node_ready_path(state_dir)} "
            "(supervisorctl status tarsdock-node; its log: "
            f"{node.log_dir}/tarsdock/node.log); Tars services wait 10 s at each start")


def socket_problem(node: NodeSettings, runner: Runner, holders: Callable[[int], str]) -> str:
    """Under systemd: the node object's socket unit failed to listen on node_port, or ""."""
    try:
        shown = parse_show(runner(["systemctl", "show", "-p", "ActiveState,Result", NODE_SOCKET]))
    except TarsdockError:
        return ""      # no systemd to ask: the rows say so
    block = shown[0] if shown else {}
    if block.get("ActiveState") != "failed":
        return ""
    port = node.node_port
    who = holders(port)
    return (f"{NODE_SOCKET} failed ({block.get('Result', 'unknown')}): systemd could not listen "
            f"on 127.0.0.1:{port} ([node] node_port){': ' + who if who else ''} "
            f"(systemctl status {NODE_SOCKET})")


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").partition("\n")[0].strip()
    except OSError:
        return ""


# --- the command ---------------------------------------------------------------------------


def collect(manifest: Manifest, source: SupervisorSource, engine: Any,
            now: float) -> tuple[list[Row], list[str]]:
    """Read every source; the rows and warnings (Docker away). Raises TarsdockError."""
    names = sorted(manifest.services)
    supervised = source.read(names)
    warnings = []
    containers: dict[str, Container] | None
    digests: dict[str, str] = {}
    try:
        found = engine.containers(manifest.node.name, instance=manifest.node.instance)
        containers = {c.service: c for c in found if c.state == "running"}
        for c in found:
            containers.setdefault(c.service, c)
        for image_id in {c.image_id for c in containers.values() if c.image_id}:
            repo = engine.repo_digests(image_id)
            digests[image_id] = repo[0] if repo else image_id
    except DockerUnreachable as error:
        containers = None
        warnings.append(f"{error}: containers and images unknown")
    recorded = read_state(Path(manifest.node.state_dir), names)
    return rows(manifest, supervised, containers, digests, recorded, now), warnings


def supervisor_url(args: argparse.Namespace, manifest: Manifest) -> str:
    """--supervisor-url, else $SUPERVISOR_SERVER_URL (as supervisorctl), else the manifest's.

    Raises TarsdockError for an environment value supervisor's transport cannot take (it raised
    a ValueError, shown as a traceback); --supervisor-url is checked by the parser.
    """
    from_env = os.environ.get("SUPERVISOR_SERVER_URL")
    if not args.supervisor_url and from_env:
        problem = keys.supervisor_url(from_env)
        if problem:
            raise TarsdockError(f"$SUPERVISOR_SERVER_URL: {problem}")
    return args.supervisor_url or from_env or manifest.node.supervisor_url


def _url_option(text: str) -> str:
    """--supervisor-url as [node] supervisor_url takes it: a usage error otherwise."""
    problem = keys.supervisor_url(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def cmd_status(args: argparse.Namespace) -> int:
    """Print one row per service; 0 if all run (or are disabled and stopped), 3 if not."""
    from tarsdock.engine import DockerEngine
    from tarsdock.manifest import load_manifest
    from tarsdock.options import config_dir

    manifest = load_manifest(config_dir(args))
    kind = manifest.node.supervisor
    source: SupervisorSource = (Systemd() if kind == "systemd"
                                else Supervisord(supervisor_url(args, manifest)))
    now = time.time()
    # first: it is the likelier cause of a supervisor's trouble, and needs no supervisor
    node_problem = node_object_problem(manifest.node)
    if node_problem:
        print(f"warning: {node_problem}", file=sys.stderr)
    found, warnings = collect(manifest, source, DockerEngine(manifest.node.docker_socket), now)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        json.dump(document(manifest, kind, found, now, node_problem), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(table(found, now, colour))
    return exit_status(found, manifest)


def exit_status(found: Sequence[Row], manifest: Manifest) -> int:
    """0 when every service is as configured: running, or stopped with `enabled = false` (never
    started: Tars' inactive); 3 otherwise (one started by hand that failed counts, too)."""
    def as_configured(row: Row) -> bool:
        spec = manifest.services.get(row.service)
        return row.running or (spec is not None and not spec.enabled
                               and row.state in STOPPED_STATES)

    return EXIT_ALL_RUNNING if all(map(as_configured, found)) else EXIT_NOT_ALL_RUNNING


def register(p: argparse.ArgumentParser) -> None:
    """The options of `status`."""
    p.add_argument("--json", action="store_true", help="a JSON document for scripts")
    p.add_argument("--supervisor-url", type=_url_option, help="supervisord's XML-RPC URL (default: "
                   "$SUPERVISOR_SERVER_URL, else [node] supervisor_url)")
    p.set_defaults(func=cmd_status)
