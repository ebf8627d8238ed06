"""Tars heartbeats: what a service's keepAlive, keepActiving and reportVersion calls mean (pure).

The rules follow tarsnode (TarsFramework NodeServer/ServerObject.cpp):
- `ServerObject::keepAlive` notes the time for the adapter named in ServerInfo, or for every
  adapter when the name is empty (`setLastKeepAliveTime`); the overall time is noted either way.
- `ServerObject::checkServer` restarts an Active service when `isTimeOut` says the overall time
  or the time of any adapter registered from its config (its adapters and `AdminAdapter`) is
  older than the service's `<server> hearttimeout` (else the node's default).
- A service is Active only once it has sent keepAlive; before that (Activating) heartbeats are
  not judged, and `activating-timeout` after a start is grace.
Differences, on purpose: tarsnode compares `hearttimeout` (milliseconds) with seconds (`TNOW`), so
its 45000 means 12.5 hours; here all times are milliseconds. A service that never sent keepAlive
in its current run (not a Tars runtime, or one without an admin endpoint) is never judged, and
after a restart judging waits for the new run's first keepAlive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

ADMIN_ADAPTER = "AdminAdapter"   # TarsCpp's adapter of the `local` endpoint

Verdict = Literal["unjudged", "grace", "alive", "hung"]


@dataclass(frozen=True)
class Rules:
    """How a service is judged, from its final config (all times in milliseconds)."""

    timeout: int                          # <server> hearttimeout, else [node] heartbeat_timeout
    grace: int                            # <server> activating-timeout
    adapters: tuple[str, ...] = ()        # adapters that must each keep reporting


@dataclass(frozen=True)
class Run:
    """What the node object knows of a service's current run (times in epoch milliseconds)."""

    pid: int = 0
    first: int = 0                        # first keepAlive of this run; 0: none yet
    last: int = 0                         # last keepAlive or keepActiving, any adapter
    adapters: Mapping[str, int] = field(default_factory=dict)   # adapter -> last keepAlive
    activing: int = 0                     # last keepActiving
    version: str = ""                     # last reportVersion


def shifted(run: Run, by: int) -> Run:
    """The run with every time moved by `by` ms (a time of 0, none yet, stays 0)."""
    def at(moment: int) -> int:
        return moment + by if moment else 0
    return replace(run, first=at(run.first), last=at(run.last), activing=at(run.activing),
                   adapters={name: at(when) for name, when in run.adapters.items()})


def keep_alive(run: Run, rules: Rules, pid: int, adapter: str, now: int) -> Run:
    """A keepAlive: a new pid starts a new run; the first beat of a run arms every adapter."""
    if pid != run.pid:
        run = Run(pid=pid, version=run.version)
    adapters = dict(run.adapters)
    if not run.first:
        # tarsnode's setServerDescriptor: every registered adapter starts from "now"
        adapters = dict.fromkeys(rules.adapters, now)
    if adapter:
        adapters[adapter] = now
    else:
        adapters = dict.fromkeys([*rules.adapters, *adapters], now)
    return replace(run, first=run.first or now, last=now, adapters=adapters)


def keep_activing(run: Run, rules: Rules, pid: int, now: int) -> Run:
    """A keepActiving (a service still starting): not a heartbeat that arms judging, but once
    armed it refreshes every adapter, as tarsnode's `ServerObject::keepActiving` calls
    `setLastKeepAliveTime(now)` with no adapter name."""
    if pid != run.pid:
        run = Run(pid=pid, version=run.version)
    adapters = dict.fromkeys([*rules.adapters, *run.adapters], now) if run.first \
        else dict(run.adapters)
    return replace(run, last=now, activing=now, adapters=adapters)


def report_version(run: Run, version: str) -> Run:
    return replace(run, version=version)


def judge(run: Run, rules: Rules, now: int) -> tuple[Verdict, str]:
    """(verdict, reason): `hung` with "no keepAlive for N s" when a restart is due."""
    if not run.first:
        return "unjudged", ""
    if now - run.first < rules.grace:
        return "grace", ""
    # the timeout ran out inside the grace: judged only from its end, so the silence is longer
    held = f", judged from the end of activating-timeout {rules.grace} ms" \
        if run.last + rules.timeout < run.first + rules.grace else ""
    limit = f"(hearttimeout {rules.timeout} ms{held})"
    if now - run.last > rules.timeout:
        return "hung", f"no keepAlive for {(now - run.last) // 1000} s {limit}"
    stale = sorted((run.adapters.get(name, run.first), name) for name in rules.adapters)
    if stale and now - stale[0][0] > rules.timeout:
        since, name = stale[0]
        return "hung", f"no keepAlive from {name} for {(now - since) // 1000} s {limit}"
    return "alive", ""
