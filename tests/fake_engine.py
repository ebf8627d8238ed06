"""Fakes for the listener and sync unit tests: a Docker engine, supervisord's RPC, a lane."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tarsdock.engine import Auth, Container, DockerUnreachable, Progress, PullError


@dataclass
class FakeEngine:
    """Images by ref; scripted pull outcomes (an image ID or a PullError) consumed in order."""

    images: dict[str, str] = field(default_factory=dict)
    script: dict[str, list[str | PullError]] = field(default_factory=dict)
    pulls: list[tuple[str, Auth | None]] = field(default_factory=list)
    stored: list[tuple[Container, float]] = field(default_factory=list)   # (container, created)
    removed: list[str] = field(default_factory=list)
    answers: bool = True                       # False: every call raises DockerUnreachable
    limits: dict[str, int] = field(default_factory=dict)   # container id -> HostConfig.Memory

    def _check(self) -> None:
        if not self.answers:
            raise DockerUnreachable("/fake.sock", "No such file or directory")

    def ping(self) -> None:
        self._check()

    def image_id(self, ref: str) -> str | None:
        self._check()
        return self.images.get(ref)

    def pull(self, ref: str, auth: Auth | None, timeout: float, progress: Progress) -> str:
        self.pulls.append((ref, auth))
        outcomes = self.script.get(ref) or [f"sha256:{ref}"]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, PullError):
            raise outcome
        progress(50, 100)
        self.images[ref] = outcome
        return outcome

    def add_container(self, service: str, created: float, node: str = "10.0.0.5",
                      cid: str = "", instance: str = "10.0.0.5@test") -> Container:
        container = Container(cid or f"id-{service}-{created}", service, service, node, "running",
                              instance)
        self.stored.append((container, created))
        return container

    def containers(self, node: str, service: str | None = None, *,
                   instance: str | None = None) -> list[Container]:
        self._check()
        return [c for c, _ in self.stored
                if c.node == node and service in (None, c.service) and c.id not in self.removed
                and instance in (None, c.instance)]

    def created(self, container_id: str) -> float | None:
        self._check()
        return next((t for c, t in self.stored
                     if c.id == container_id and c.id not in self.removed), None)

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        self._check()
        if container_id not in self.limits:
            return None
        return {"Id": container_id, "HostConfig": {"Memory": self.limits[container_id]}}

    def repo_digests(self, image_id: str) -> list[str]:
        self._check()
        return []

    def remove(self, container_id: str) -> None:
        self._check()
        self.removed.append(container_id)


@dataclass
class FakeSupervisor:
    """supervisord's `supervisor.*` XML-RPC namespace over a dict of program states."""

    states: dict[str, str] = field(default_factory=dict)   # "tars:App.Server" -> statename
    starts: dict[str, float] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    exitstatus: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)    # absent: 0, not running

    def _info(self, program: str) -> dict[str, Any]:
        group, _, name = program.partition(":")
        return {"name": name, "group": group, "statename": self.states[program],
                "start": self.starts.get(program, 0), "spawnerr": "",
                "exitstatus": self.exitstatus.get(program, 0), "pid": self.pids.get(program, 0)}

    def getProcessInfo(self, name: str) -> dict[str, Any]:
        if name not in self.states:
            raise xmlrpc.client.Fault(10, f"BAD_NAME: {name}")
        return self._info(name)

    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        return [self._info(p) for p in sorted(self.states)]

    def startProcess(self, name: str, wait: bool = True) -> bool:
        self.calls.append(("start", name))
        if self.states.get(name) == "RUNNING":
            raise xmlrpc.client.Fault(60, f"ALREADY_STARTED: {name}")
        self.states[name] = "STARTING"
        return True

    def stopProcess(self, name: str, wait: bool = True) -> bool:
        self.calls.append(("stop", name))
        self.states[name] = "STOPPED"
        return True


@dataclass
class FakeLane:
    """A scheduler that runs nothing until told, on a fake clock; same coalescing as Lane."""

    clock: Callable[[], float]
    tasks: list[tuple[float, str | None, Callable[[], None]]] = field(default_factory=list)

    def submit(self, fn: Callable[[], None], *, delay: float = 0.0,
               key: str | None = None) -> None:
        due = self.clock() + delay
        for i, (when, other, _) in enumerate(self.tasks):
            if key is not None and other == key:
                if when <= due:
                    return
                del self.tasks[i]
                break
        self.tasks.append((due, key, fn))

    def keys(self) -> list[str | None]:
        return [key for _, key, _ in self.tasks]

    def run_due(self) -> int:
        """Run every task due now (and those they queue that are due now); return how many."""
        ran = 0
        while due := [t for t in self.tasks if t[0] <= self.clock()]:
            task = min(due, key=lambda t: t[0])
            self.tasks.remove(task)
            task[2]()
            ran += 1
        return ran
