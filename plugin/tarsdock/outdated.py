"""Which running services were started with older files than the disk holds now.

apply plans by comparing the files it renders with the disk, so a file that `tarsdock
generate` (or a hand edit) already wrote looks unchanged to it, while the service still runs
with what it read at its start (tester's D2: a changed `env` never reached the container). So
apply also compares, per service, when its instance started with when its own files last
changed: the run file and Tars config, and the program (supervisord) or unit (systemd).

When it started: the mtime of `<state dir>/App.Server.starts`, which tarsdock-run rewrites at
every start (temp file + rename, after it has read its run file) and nothing else writes
(tarsdock.state). That is the robust source: it is stamped by the kernel's clock, the one that
stamps the files, in nanoseconds; tarsdock writes a file only when its content changes (temp file
+ rename), so a newer mtime means new content (or a hand edit, which deserves the restart too);
and it costs one stat per service, with no question to the supervisor on an apply where nothing
is newer. supervisord's `start` is whole seconds (a file written in the second of a start is
ambiguous) and, like systemd's ActiveEnterTimestamp, means asking the supervisor about every
service at every apply. A file stamped in the same clock tick as the start counts as older.

Only the services this finds are asked about (`running`): a stopped one is left alone (the
operator stopped it; its next start reads the new files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tarsdock.state import starts_path

# the reasons apply gives; the second is the one supervisors.Supervisord gives a program it had
# to swap at the reload (a program restarted after `generate` changed it: supervisord still
# holds the old section)
OUTSIDE = "started before its files changed"
PROGRAM_OUTSIDE = "program changed outside apply"
# the file that tells the supervisor how to run the service, by format (apply.file_owners)
SUPERVISOR_FILE = {"supervisord": "program", "systemd": "unit"}


@dataclass(frozen=True)
class Instance:
    """One service as the disk shows it: when its instance last started (the starts file's
    mtime, ns; None when no start is recorded) and the mtime (ns) of each of its own files that
    apply leaves as they are, by what the file is to it ("run file", "config", ...)."""

    started: int | None
    files: Mapping[str, int]


@dataclass(frozen=True)
class Suspects:
    """The services to ask the supervisor about (see `suspects`)."""

    # name -> what changed since its start; () for a unit changed since apply's last
    # daemon-reload only (systemd may hold the old one even if the service started since)
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # never started, with a program or unit apply has not had the supervisor load (added by a
    # `generate`): new, if the supervisor does not run it
    unstarted: set[str] = field(default_factory=set)

    def names(self) -> list[str]:
        return sorted({*self.changed, *self.unstarted})


def mtime_ns(path: str | Path) -> int | None:
    """A file's mtime in ns, None when it is missing or cannot be looked at."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def instances(owners: Mapping[Path, tuple[str, str]], mtimes: Mapping[str, int],
              state_dir: str) -> dict[str, Instance]:
    """Each service with at least one file in `mtimes` (path -> mtime ns: the files apply leaves
    as they are), with its starts file's mtime: one stat per service."""
    files: dict[str, dict[str, int]] = {}
    for path, (name, what) in owners.items():
        at = mtimes.get(os.fspath(path))
        if at is not None:
            files.setdefault(name, {})[what] = at
    return {name: Instance(mtime_ns(starts_path(Path(state_dir), name)), kinds)
            for name, kinds in files.items()}


def suspects(fmt: str, found: Mapping[str, Instance], loaded_at: int | None) -> Suspects:
    """The services whose instance may run with older files than the disk's.

    `loaded_at`: the mtime (ns) of apply's record of its last reload (None: none yet); a program
    or unit newer than that was written by something else."""
    own = SUPERVISOR_FILE[fmt]
    result = Suspects()
    for name, instance in found.items():
        mine = instance.files.get(own)
        after_reload = mine is not None and (loaded_at is None or mine > loaded_at)
        if instance.started is None:
            if after_reload:
                result.unstarted.add(name)
            continue
        newer = tuple(what for what, at in instance.files.items() if at > instance.started)
        if newer or (fmt == "systemd" and after_reload):
            result.changed[name] = newer
    return result


def verdict(found: Suspects, running: Mapping[str, bool]
            ) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """(name -> apply's reasons to restart it, names to start as new), given the suspects the
    supervisor runs (name -> whether it holds an older definition than the file: systemd's
    NeedDaemonReload). A program changed outside apply is its own reason: apply then swaps it
    as it swaps a program it writes (stopped first)."""
    restart: dict[str, tuple[str, ...]] = {}
    for name, changed in found.changed.items():
        if name not in running:
            continue      # stopped by the operator, or failed: its next start reads the files
        why = [PROGRAM_OUTSIDE] if "program" in changed else []
        if any(what != "program" for what in changed) or running[name]:
            why.append(OUTSIDE)
        if why:
            restart[name] = tuple(why)
    return restart, {name for name in found.unstarted if name not in running}

