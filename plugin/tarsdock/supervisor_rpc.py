"""An RPC interface that supervisord loads: change one program of a group without the others.

supervisord's own `update` (and the XML-RPC calls behind it) replaces a changed group whole: to
add or remove one program of group `tars`, every program of the group is stopped and started
again (`removeProcessGroup` refuses while any of them runs). `tarsdock.updateGroup(name)` brings a
running group in line with the config that `supervisor.reloadConfig()` has just read: programs
that are new get a process (supervisord autostarts it), programs that are gone or whose section
changed must be stopped first and are dropped or replaced (a replaced one that was stopped stays
so: the caller starts it, or it stays as the operator left it), and all others keep their
process, untouched. The group's config becomes the new one, so the next `reloadConfig` reports no
change.

Loaded by supervisord itself, from a section in its config (units/tarsdock-supervisord.conf):

    [rpcinterface:tarsdock]
    supervisor.rpcinterface_factory = tarsdock.supervisor_rpc:make_interface

It runs inside supervisord's process: it imports nothing of tarsdock's, and never blocks.
"""

from __future__ import annotations

from typing import Any

from supervisor.options import ProcessGroupConfig
from supervisor.states import (
    STOPPED_STATES,
    ProcessStates,
    SupervisorStates,
    getProcessStateDescription,
)
from supervisor.xmlrpc import Faults, RPCError

API_VERSION = "1"


class TarsdockRPCInterface:
    """The `tarsdock.*` namespace of supervisord's XML-RPC interface (supervisord's camelCase)."""

    def __init__(self, supervisord: Any) -> None:
        self.supervisord = supervisord

    def getAPIVersion(self) -> str:
        """The version of this namespace: `apply` checks it is there."""
        return API_VERSION

    def getStates(self, name: str) -> dict[str, str]:
        """Each program of a running group -> its state's name (RUNNING, STOPPED, ...): what
        `apply` asks about many programs at once, without getAllProcessInfo's dozen fields each
        (about 0.5 s for 1,000 programs). Raises RPCError BAD_NAME (no such group running)."""
        group = self.supervisord.process_groups.get(name)
        if group is None:
            raise RPCError(Faults.BAD_NAME, name)
        return {process_name: getProcessStateDescription(process.get_state())
                for process_name, process in group.processes.items()}

    def updateGroup(self, name: str) -> list[list[str]]:
        """Update a running group to its reread config; return [added, replaced, removed] names.

        Raises RPCError BAD_NAME (no such group, running or configured), STILL_RUNNING (a program
        to drop or replace is not stopped; its names in the message), SHUTDOWN_STATE.
        """
        if self.supervisord.options.mood < SupervisorStates.RUNNING:
            raise RPCError(Faults.SHUTDOWN_STATE)
        group = self.supervisord.process_groups.get(name)
        new = next((config for config in self.supervisord.options.process_group_configs
                    if config.name == name), None)
        # an event listener pool has more to it than its processes: not for this call
        if group is None or not isinstance(new, ProcessGroupConfig) \
                or type(group.config) is not ProcessGroupConfig:
            raise RPCError(Faults.BAD_NAME, name)
        old = {config.name: config for config in group.config.process_configs}
        wanted = {config.name: config for config in new.process_configs}
        removed = sorted(set(old) - set(wanted))
        replaced = sorted(n for n in set(old) & set(wanted) if old[n] != wanted[n])
        busy = [n for n in [*removed, *replaced]
                if group.processes[n].get_state() not in STOPPED_STATES]
        if busy:
            raise RPCError(Faults.STILL_RUNNING, ", ".join(busy))
        for process_name in removed:
            del group.processes[process_name]
        added = sorted(set(wanted) - set(old))
        for process_name in [*added, *replaced]:
            config = wanted[process_name]
            config.create_autochildlogs()
            process = config.make_process(group)
            before = group.processes.get(process_name)
            if before is not None and before.get_state() == ProcessStates.STOPPED:
                # supervisord autostarts a STOPPED process that never started (Subprocess.
                # transition: `not self.laststart`): a replaced one that had been stopped keeps
                # its stop (the operator's, or apply's, which starts it again itself); one
                # EXITED or FATAL is started, as before
                process.laststart = before.laststart
            group.processes[process_name] = process
        group.config = new
        return [added, replaced, removed]


def make_interface(supervisord: Any, **config: Any) -> TarsdockRPCInterface:
    """supervisord's rpcinterface factory."""
    return TarsdockRPCInterface(supervisord)
