"""Following Docker's event stream for the listener: reconnects, faults as lines, OOM reasons.

`DockerWatch` runs in a thread of its own. It connects to the event stream, tells the listener
when the daemon answers and when it stops answering, and hands on the events that matter:
images appearing (pull, tag, load, import) and OOM kills of this instance's containers. While
the daemon is away it retries with back-off; `FaultLog` keeps that to a bounded number of lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tarsdock.engine import LABEL_INSTANCE, LABEL_SERVICE, DockerUnreachable
from tarsdock.state import append_line, failure_line, failures_path

log = logging.getLogger("tarsdock.listener")

IMAGE_ACTIONS = ("pull", "tag", "load", "import")
# one stream for both kinds: a label filter would also drop the image events
EVENT_FILTERS: dict[str, list[str]] = {"type": ["image", "container"],
                                       "event": [*IMAGE_ACTIONS, "oom"]}


class EventSource(Protocol):
    """The part of the Docker adapter the watch uses."""

    def events(self, filters: dict[str, list[str]],
               since: float | None = None) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class ImageEvent:
    """An image appeared or got a new name."""

    action: str
    name: str


@dataclass(frozen=True)
class OomEvent:
    """The kernel killed a process of one of this instance's containers for memory."""

    container_id: str
    service: str


def classify(event: dict[str, Any], instance: str) -> ImageEvent | OomEvent | None:
    """What a raw Docker event means to this instance's listener (None: nothing)."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = event.get("Action") or event.get("status") or ""
    if event.get("Type") == "image" and action in IMAGE_ACTIONS:
        return ImageEvent(action, attributes.get("name") or actor.get("ID", ""))
    if (event.get("Type") == "container" and action == "oom"
            and attributes.get(LABEL_INSTANCE) == instance):
        return OomEvent(actor.get("ID", ""), attributes.get(LABEL_SERVICE, ""))
    return None


def size_text(size: int) -> str:
    """Bytes as Docker's --memory takes them, in the largest exact unit (33554432 -> 32m)."""
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}b"


def oom_text(memory: int) -> str:
    """The reason line of an OOM kill, with the container's memory limit (HostConfig.Memory)."""
    if memory == 0:
        return "killed for memory (no container limit: the host ran out)"
    return f"killed for memory (limit {size_text(memory)})"


def append_failure(state_dir: Path, service: str, code: str, text: str, when: float) -> None:
    """Add one line to a service's failures file (tarsdock.state's format and lock), `when` in
    epoch seconds. Raises OSError."""
    append_line(failures_path(state_dir, service), failure_line(when, code, text))


class FaultLog:
    """One line per fault, then repeats only at growing intervals (30 s doubling to 10 min)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, first: float = 30.0,
                 longest: float = 600.0) -> None:
        self.clock = clock
        self.first = first
        self.longest = longest
        self.active: dict[str, tuple[float, float, float, int]] = {}   # since, next, gap, muted
        self.lock = threading.Lock()

    def report(self, key: str, text: str) -> None:
        """Log `text` for the fault `key`, unless it was logged recently."""
        now = self.clock()
        with self.lock:
            if key not in self.active:
                self.active[key] = (now, now + self.first, self.first, 0)
                log.error("%s", text)
                return
            since, due, gap, muted = self.active[key]
            if now < due:
                self.active[key] = (since, due, gap, muted + 1)
                return
            gap = min(self.longest, gap * 2)
            self.active[key] = (since, now + gap, gap, 0)
        log.error("%s (for %.0f s; %d similar lines left out)", text, now - since, muted)

    def clear(self, key: str) -> float | None:
        """The fault is over: how long it lasted (seconds), or None if it was not active."""
        with self.lock:
            entry = self.active.pop(key, None)
        return None if entry is None else self.clock() - entry[0]


class DockerWatch:
    """Follows the event stream; reconnects with back-off (1 s doubling to `retry_max`)."""

    def __init__(self, engine: EventSource, *, answered: Callable[[], None],
                 gone: Callable[[DockerUnreachable], None],
                 event: Callable[[dict[str, Any]], None], retry_initial: float = 1.0,
                 retry_max: float = 8.0, sleep: Callable[[float], None] = time.sleep,
                 since: float | None = None) -> None:
        self.engine = engine
        # replayed on connect: what happened since the listener started, or since the last
        # event seen before a lost connection (Docker keeps recent events in memory)
        self.since = since
        self.answered = answered
        self.gone = gone
        self.event = event
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.sleep = sleep

    def start(self) -> threading.Thread:
        """Run `follow` for ever in a daemon thread."""
        thread = threading.Thread(target=self.follow, name="docker-events", daemon=True)
        thread.start()
        return thread

    def follow(self, rounds: int | None = None) -> None:
        """Connect, hand on events, and reconnect when the stream ends (`rounds`: for tests)."""
        delay = self.retry_initial
        while rounds is None or rounds > 0:
            rounds = None if rounds is None else rounds - 1
            if self._once():
                delay = self.retry_initial
            self.sleep(delay)
            delay = min(self.retry_max, delay * 2)

    def _once(self) -> bool:
        """One connection: True if the daemon answered before the stream ended."""
        try:
            stream = self.engine.events(EVENT_FILTERS, self.since)
        except DockerUnreachable as error:
            self.gone(error)
            return False
        self.answered()
        try:
            for raw in stream:
                if raw.get("time"):
                    self.since = float(raw["time"])
                self.event(raw)
        except DockerUnreachable as error:
            self.gone(error)
        else:
            self.gone(DockerUnreachable(getattr(self.engine, "socket_path", "docker"),
                                        "the event stream ended"))
        return True
