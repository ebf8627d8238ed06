"""Adapters that make supervisord (over XML-RPC) or systemd (over systemctl) act on services.

Both give `apply` the same verbs: stop, reload (read the written files), start, restart, and wait
(for the started services to run, or say why they did not). They take an injected RPC proxy or
command runner, so unit tests drive them with fakes.
"""

from __future__ import annotations

import functools
import subprocess
import time
import xmlrpc.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tarsdock.errors import EnvironmentFault, TarsdockError

GROUP = "tars"
# supervisor.xmlrpc.Faults, without importing supervisor on every apply
BAD_NAME, ALREADY_STARTED, NOT_RUNNING, UNKNOWN_METHOD = 10, 60, 70, 1
STILL_RUNNING = 91
RUNNING_STATES = ("RUNNING",)
# a process that runs, or will again without anyone starting it (apply restarts it when it was
# started with older files: outdated.py)
LIVE_STATES = ("RUNNING", "STARTING", "BACKOFF")
LIVE_UNITS = ("active", "activating", "reloading")
FAILED_STATES = ("BACKOFF", "FATAL", "EXITED")
POLL = 0.2            # seconds between state checks while waiting
# systemd: a started unit that is still active and has not restarted after this long has started
# (as supervisord's startsecs = 3 for the generated programs)
SETTLE = 3.0
# longer than any program's stopwaitsecs (a 60 s window + 10 s), after which supervisord kills
STOP_TIMEOUT = 90.0
# A file's mtime comes from the kernel's coarse clock, up to a tick (1/HZ: 4-10 ms) behind
# time.time_ns(): a starts file written right after apply asked may look older by that much.
# Another start of the same program this close before apply's own is not possible: apply stops
# it first.
CLOCK_SLACK_NS = 20_000_000
LOG_TAIL = 400        # bytes of a failed program's log quoted as its reason


class ControlError(TarsdockError):
    """The supervisor refused or could not be reached."""


class Supervisor(Protocol):
    """What `apply` asks of a process supervisor; names are service names (App.Server)."""

    def stop(self, names: Sequence[str]) -> None: ...
    def reload(self) -> dict[str, str]: ...
    def start(self, names: Sequence[str]) -> None: ...
    def restart(self, names: Sequence[str]) -> None: ...
    def wait(self, names: Sequence[str], timeout: float) -> dict[str, str]: ...
    def running(self, names: Sequence[str]) -> dict[str, bool]: ...


def telling_line(log: str) -> str:
    """The line of a log tail that best says why a start failed: the last naming an error."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]


# ---- supervisord ------------------------------------------------------------------------------

def supervisord_proxy(url: str) -> Any:
    """An XML-RPC proxy for supervisord at `unix:///path.sock` or `http://host:port`."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, url)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


@dataclass
class Supervisord:
    """supervisord over XML-RPC; programs are `tars:App.Server`."""

    rpc: Any                                   # ServerProxy: .supervisor.*, .tarsdock.*, .system.*
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # services restarted by the reload, with why: a group replaced whole (no tarsdock.updateGroup),
    # or a running program whose section changed outside apply
    replaced: dict[str, str] = field(default_factory=dict)
    output_dir: str = ""                       # where the programs are, for error messages
    # the node's state dir, where tarsdock-run records each start (`App.Server.starts`); with
    # it, wait() counts a program started only once its start is recorded (see wait)
    state_dir: str = ""
    asked: dict[str, int] = field(default_factory=dict)   # name -> when start() asked (ns)

    def _call(self, what: str, fn: Callable[[], Any], ok: tuple[int, ...] = (),
              raw: tuple[int, ...] = ()) -> Any:
        """fn(); faults in `ok` give None, those in `raw` are raised as they are, any other is
        a ControlError naming `what`."""
        try:
            return fn()
        except xmlrpc.client.Fault as fault:
            if fault.faultCode in ok:
                return None
            if fault.faultCode in raw:
                raise
            raise ControlError(f"supervisord: {what}: {fault.faultString}") from None
        except OSError as error:
            raise ControlError(f"supervisord: {what}: {error}") from None

    def _states(self) -> dict[str, dict[str, Any]]:
        infos = self._call("getAllProcessInfo", self.rpc.supervisor.getAllProcessInfo)
        return {info["name"]: info for info in infos if info["group"] == GROUP}

    def running(self, names: Sequence[str]) -> dict[str, bool]:
        """Those of `names` whose process runs or will again (RUNNING, STARTING, BACKOFF), each
        with False: a program section supervisord holds older than the file is found at the
        reload instead (_update_group). Raises ControlError."""
        states = self._state_names()
        return {name: False for name in names if states.get(name) in LIVE_STATES}

    def _state_names(self) -> dict[str, str]:
        """Each program of group tars -> its state's name: tarsdock.getStates, or (a
        supervisord that loaded an older tarsdock, or none) getAllProcessInfo, 10x the cost."""
        try:
            states = self._call("tarsdock.getStates",
                                functools.partial(self.rpc.tarsdock.getStates, GROUP),
                                ok=(BAD_NAME,), raw=(UNKNOWN_METHOD,))
        except xmlrpc.client.Fault:
            return {name: info["statename"] for name, info in self._states().items()}
        return dict(states or {})

    def stop(self, names: Sequence[str]) -> None:
        """Stop programs, all at once, and wait until none is stopping; programs unknown or not
        running are fine. Raises ControlError if one is still stopping after STOP_TIMEOUT s."""
        for name in names:
            program = f"{GROUP}:{name}"
            self._call(f"stop {program}", functools.partial(
                self.rpc.supervisor.stopProcess, program, False), ok=(BAD_NAME, NOT_RUNNING))
        deadline = self.clock() + STOP_TIMEOUT
        while names:
            states = self._states()
            busy = [n for n in names if states.get(n, {}).get("statename") == "STOPPING"]
            if not busy:
                return
            if self.clock() >= deadline:
                raise ControlError(f"supervisord: still stopping after {STOP_TIMEOUT:g} s: "
                                   f"{', '.join(busy)}")
            self.sleep(POLL)

    def start(self, names: Sequence[str]) -> None:
        """Start programs without waiting; one already started (autostart) is fine. Raises
        ControlError on a refusal; one for a program supervisord does not know after the
        reload says how to make it read the output dir."""
        for name in names:
            program = f"{GROUP}:{name}"
            self.asked[name] = time.time_ns() - CLOCK_SLACK_NS
            try:
                self._call(f"start {program}", functools.partial(
                    self.rpc.supervisor.startProcess, program, False), ok=(ALREADY_STARTED,),
                    raw=(BAD_NAME,))
            except xmlrpc.client.Fault as fault:
                # the usual cause: the output dir is listed only in an included file's own
                # [include], which supervisord ignores (it reads [include] in its main config)
                out = self.output_dir or "the output dir"
                raise ControlError(
                    f"supervisord: start {program}: {fault.faultString}: supervisord has not "
                    f"loaded {out}/{name}.conf: the [include] files of its main config must "
                    f"list {out}/*.conf (an included file cannot include others)") from None

    def restart(self, names: Sequence[str]) -> None:
        self.stop(names)
        self.start(names)

    def has_update_group(self) -> bool:
        """Whether supervisord loaded tarsdock's RPC interface (tarsdock.updateGroup)."""
        try:
            self.rpc.tarsdock.getAPIVersion()
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == UNKNOWN_METHOD:
                return False
            raise ControlError(f"supervisord: tarsdock.getAPIVersion: {fault.faultString}") \
                from None
        return True

    def reload(self) -> dict[str, str]:
        """reloadConfig, then add, update or remove each changed group; the names restarted, each
        with why.

        Group `tars` is updated in place by tarsdock.updateGroup (the others keep running).
        Without that interface, and for the listener's group, a changed group is replaced whole,
        as `supervisorctl update` does: then every program of it restarts.
        """
        result = self._call("reloadConfig", self.rpc.supervisor.reloadConfig)
        added, changed, removed = result[0]
        for group in removed:
            self._replace(group, add=False)
        for group in changed:
            if group == GROUP and self.has_update_group():
                self._update_group(group)
            else:
                self._replace(group, add=True)
        for group in added:
            self._call(f"addProcessGroup {group}",
                       functools.partial(self.rpc.supervisor.addProcessGroup, group))
        return dict(self.replaced)

    def _update_group(self, group: str) -> None:
        """tarsdock.updateGroup; the running programs it refuses to swap are stopped, swapped
        and started again (added to `replaced`, "program changed outside apply"); those it
        removes stay stopped.

        apply stops a program before its section changes, but one that `tarsdock generate`
        changed on disk looks unchanged to apply, so it is still running at the update (which
        names it after the fault code, `STILL_RUNNING: A, B`: supervisor_rpc.updateGroup).
        Raises ControlError if the update still fails.
        """
        what = f"tarsdock.updateGroup {group}"
        update = functools.partial(self.rpc.tarsdock.updateGroup, group)
        try:
            self._call(what, update, raw=(STILL_RUNNING,))
            return
        except xmlrpc.client.Fault as fault:
            busy = [name.strip() for name in fault.faultString.partition(":")[2].split(",")
                    if name.strip()]
        self.stop(busy)
        _, swapped, _ = self._call(what, update)
        # a program removed outside apply stays stopped: the listener removes its container
        again = [name for name in busy if name in swapped]
        self.replaced.update(dict.fromkeys(again, "program changed outside apply"))
        self.start(again)

    def _replace(self, group: str, add: bool) -> None:
        if group == GROUP:
            self.replaced.update(dict.fromkeys(
                (name for name, info in self._states().items()
                 if info["statename"] in RUNNING_STATES), "group replaced"))
        self._call(f"stopProcessGroup {group}",
                   lambda: self.rpc.supervisor.stopProcessGroup(group, True), ok=(BAD_NAME,))
        self._call(f"removeProcessGroup {group}",
                   lambda: self.rpc.supervisor.removeProcessGroup(group), ok=(BAD_NAME,))
        if add:
            self._call(f"addProcessGroup {group}",
                       lambda: self.rpc.supervisor.addProcessGroup(group))

    def wait(self, names: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait until each program runs or fails; name -> reason ('' when it runs).

        RUNNING is not enough for a program this adapter started: supervisord says so once it
        has run `startsecs` (3 s), while tarsdock-run may still be pulling its image (up to
        60 s) and fail after. It runs once tarsdock-run has recorded the start (its starts
        file, rewritten as `docker run` or the native service starts) since start() asked.
        """
        deadline = self.clock() + timeout
        pending = set(names)
        outcome: dict[str, str] = {}
        while pending:
            states = self._states()
            for name in sorted(pending):
                info = states.get(name)
                if info is None:
                    outcome[name] = "not known to supervisord"
                elif info["statename"] in RUNNING_STATES and self._recorded(name):
                    outcome[name] = ""
                elif info["statename"] in FAILED_STATES:
                    outcome[name] = self._reason(info)
            pending -= set(outcome)
            if pending and self.clock() >= deadline:
                for name in pending:
                    outcome[name] = self._late(name, states.get(name), timeout)
                break
            if pending:
                self.sleep(POLL)
        return outcome

    def _recorded(self, name: str) -> bool:
        """Whether tarsdock-run recorded a start of `name` since start() asked (True for a
        program this adapter did not start, or without a state dir: nothing to compare)."""
        asked = self.asked.get(name)
        if asked is None or not self.state_dir:
            return True
        from tarsdock.outdated import mtime_ns
        from tarsdock.state import starts_path

        recorded = mtime_ns(starts_path(Path(self.state_dir), name))
        return recorded is not None and recorded >= asked

    def _late(self, name: str, info: dict[str, Any] | None, timeout: float) -> str:
        if info is None:
            return "not known to supervisord"
        if info["statename"] in RUNNING_STATES:
            return (f"RUNNING after {timeout:g} s, but its start has not reached `docker run` "
                    "(still pulling its image?)")
        return f"still {info['statename']} after {timeout:g} s"

    def _reason(self, info: dict[str, Any]) -> str:
        why = info.get("spawnerr") or info.get("description") or ""
        name = f"{GROUP}:{info['name']}"
        tail = self._call(f"tail {name}", lambda: self.rpc.supervisor.tailProcessStdoutLog(
            name, 0, LOG_TAIL), ok=(BAD_NAME,))
        line = telling_line(tail[0] if tail else "")
        return f"{info['statename']}: {why}" + (f"; log: {line}" if line else "")


# ---- systemd ------------------------------------------------------------------------------------

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output (the default runner)."""
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def unit(name: str) -> str:
    return f"tars-{name}.service"


NODE_UNITS = ("tarsdock-node.socket", "tarsdock-node.service")   # tarsdock.systemd.NODE_UNIT


def supervisord_silent(url: str, error: Exception, hint: str = "") -> EnvironmentFault:
    """supervisord that does not answer at `url` (no socket, refused, not XML-RPC): the
    environment's fault (exit 5), one line, worded alike by apply and status."""
    cause = error.strerror if isinstance(error, OSError) and error.strerror else error
    return EnvironmentFault(url, f"supervisord does not answer ({cause}); is it running?{hint}")


def _units(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show` of tars-*.service units: service name -> property -> value."""
    found: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if values.get("Id", "").startswith("tars-"):
            found[values["Id"].removeprefix("tars-").removesuffix(".service")] = values
    return found


@dataclass
class Systemd:
    """systemd over systemctl; units are tars-App.Server.service."""

    run: Runner = run_command
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    started: dict[str, tuple[float, int]] = field(default_factory=dict)   # name -> (at, restarts)

    def _systemctl(self, *args: str, check: bool = True) -> str:
        proc = self.run(["systemctl", "--no-pager", *args])
        if check and proc.returncode != 0:
            raise ControlError(f"systemctl {' '.join(args)}: {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def stop(self, names: Sequence[str]) -> None:
        if names:
            self._systemctl("stop", *map(unit, names), check=False)

    def reload(self) -> dict[str, str]:
        """daemon-reload, then the node object listens before any service starts: its socket is
        started (only tars.target wants it), and restarted with its server when either unit
        changed (a socket keeps the port it was started with, the server its settings)."""
        changed = self._need_reload(NODE_UNITS)
        self._systemctl("daemon-reload")
        if changed:
            self._systemctl("stop", *reversed(NODE_UNITS), check=False)
        self._systemctl("start", NODE_UNITS[0], check=False)
        return {}

    def _need_reload(self, units: Sequence[str]) -> bool:
        """Whether any of these units' files changed since systemd loaded them."""
        text = self._systemctl("show", "-p", "Id,NeedDaemonReload", *units, check=False)
        return "NeedDaemonReload=yes" in text.split()

    def running(self, names: Sequence[str]) -> dict[str, bool]:
        """Those of `names` whose unit is active or activating (auto-restart included), each
        with whether systemd holds an older unit than its file (NeedDaemonReload: a unit
        written since systemd last loaded it, whatever the start time says)."""
        if not names:
            return {}
        text = self._systemctl("show", "-p", "Id,ActiveState,NeedDaemonReload",
                               *map(unit, names), check=False)
        return {name: values.get("NeedDaemonReload") == "yes"
                for name, values in _units(text).items()
                if values.get("ActiveState") in LIVE_UNITS}

    def _begin(self, verb: str, names: Sequence[str]) -> None:
        if not names:
            return
        # a start that fails at once is reported by wait(), with the unit's own reason
        self._systemctl(verb, *map(unit, names), check=False)
        now = self.clock()
        # the count after the start: a manual start may reset it
        after = self._show(names)
        for name in names:
            self.started[name] = (now, int(after.get(name, {}).get("NRestarts") or 0))

    def start(self, names: Sequence[str]) -> None:
        self._begin("start", names)

    def restart(self, names: Sequence[str]) -> None:
        self._begin("restart", names)

    def _show(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        props = "Id,ActiveState,SubState,Result,NRestarts,ExecMainStatus"
        return _units(self._systemctl("show", "-p", props, *map(unit, names), check=False))

    def wait(self, names: Sequence[str], timeout: float) -> dict[str, str]:
        """Wait until each started unit has stayed active SETTLE s, or failed; name -> reason."""
        deadline = self.clock() + timeout
        pending = set(names)
        outcome: dict[str, str] = {}
        while pending:
            states = self._show(sorted(pending))
            now = self.clock()
            for name in sorted(pending):
                at, restarts = self.started.get(name, (now, 0))
                info = states.get(name, {})
                if self._failed(info, restarts):
                    outcome[name] = self._reason(name, info)
                elif info.get("ActiveState") == "active" and now - at >= SETTLE:
                    outcome[name] = ""
            pending -= set(outcome)
            if pending and now >= deadline:
                for name in pending:
                    outcome[name] = f"still {states.get(name, {}).get('ActiveState', 'unknown')} " \
                                    f"after {timeout:g} s"
                break
            if pending:
                self.sleep(POLL)
        return outcome

    @staticmethod
    def _failed(info: dict[str, str], restarts: int) -> bool:
        return (info.get("ActiveState") in ("failed", "inactive")
                or info.get("SubState") == "auto-restart"
                or int(info.get("NRestarts") or 0) > restarts)

    def _reason(self, name: str, info: dict[str, str]) -> str:
        journal = self.run(["journalctl", "--no-pager", "-o", "cat", "-n", "3", "-u", unit(name)])
        line = telling_line(journal.stdout)
        why = (f"{info.get('ActiveState', 'unknown')}/{info.get('SubState', '')}: result "
               f"{info.get('Result', '')}, exit status {info.get('ExecMainStatus', '')}")
        return why + (f"; journal: {line}" if line else "")
