"""tarsdock.outdated: which services run with older files than the disk's, by table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tarsdock.outdated import (
    OUTSIDE,
    PROGRAM_OUTSIDE,
    Instance,
    Suspects,
    instances,
    suspects,
    verdict,
)

S = 10**9   # one second, in ns


@pytest.mark.parametrize(("fmt", "instance", "loaded_at", "changed", "unstarted"), [
    # nothing newer than the start
    ("supervisord", Instance(10 * S, {"program": 5 * S, "run file": 9 * S}), 8 * S, {}, set()),
    # a file stamped in the start's clock tick counts as older
    ("supervisord", Instance(10 * S, {"config": 10 * S}), 8 * S, {}, set()),
    # what changed since, in the order of the files
    ("supervisord", Instance(10 * S, {"program": 11 * S, "run file": 9 * S, "config": 12 * S}),
     8 * S, {"A": ("program", "config")}, set()),
    ("systemd", Instance(10 * S, {"unit": 11 * S}), 12 * S, {"A": ("unit",)}, set()),
    # a unit written after apply's last daemon-reload, the service started since: systemd may
    # still hold the old one; a program so written is swapped at the reload (supervisors)
    ("systemd", Instance(10 * S, {"unit": 9 * S}), 8 * S, {"A": ()}, set()),
    ("systemd", Instance(10 * S, {"unit": 9 * S}), None, {"A": ()}, set()),
    ("supervisord", Instance(10 * S, {"program": 9 * S}), 8 * S, {}, set()),
    # never started: new if apply never had its program loaded
    ("supervisord", Instance(None, {"program": 9 * S}), 8 * S, {}, {"A"}),
    ("supervisord", Instance(None, {"program": 9 * S}), None, {}, {"A"}),
    ("systemd", Instance(None, {"unit": 7 * S}), 8 * S, {}, set()),
    # its program changes anyway (not left as it is): apply sees that itself
    ("supervisord", Instance(None, {"config": 9 * S}), 8 * S, {}, set()),
])
def test_suspects(fmt: str, instance: Instance, loaded_at: int | None,
                  changed: dict[str, tuple[str, ...]], unstarted: set[str]) -> None:
    found = suspects(fmt, {"A": instance}, loaded_at)
    assert (found.changed, found.unstarted) == (changed, unstarted)


@pytest.mark.parametrize(("changed", "running", "restart"), [
    (("run file",), {"A": False}, {"A": (OUTSIDE,)}),
    (("config", "run file"), {"A": False}, {"A": (OUTSIDE,)}),
    (("program",), {"A": False}, {"A": (PROGRAM_OUTSIDE,)}),
    (("program", "config"), {"A": False}, {"A": (PROGRAM_OUTSIDE, OUTSIDE)}),
    (("unit",), {"A": False}, {"A": (OUTSIDE,)}),
    # only the unit after the last reload: what systemd says decides
    ((), {"A": True}, {"A": (OUTSIDE,)}),
    ((), {"A": False}, {}),
    # stopped (by the operator, or failed): its next start reads the files
    (("run file",), {}, {}),
])
def test_verdict_restarts_running_suspects_only(changed: tuple[str, ...], running: dict[str, bool],
                                                restart: dict[str, tuple[str, ...]]) -> None:
    assert verdict(Suspects(changed={"A": changed}), running) == (restart, set())


def test_verdict_starts_a_never_started_service_the_supervisor_does_not_run() -> None:
    found = Suspects(unstarted={"A", "B"})
    assert verdict(found, {"B": False}) == ({}, {"A"})


def test_instances_stat_each_starts_file_and_keep_the_files_given(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "App.A.starts").write_text("1\n")
    os.utime(state / "App.A.starts", ns=(7 * S, 7 * S))
    owners = {Path("/out/App.A.run"): ("App.A", "run file"),
              Path("/out/App.A.conf"): ("App.A", "program"),
              Path("/out/App.B.run"): ("App.B", "run file"),
              Path("/out/App.C.run"): ("App.C", "run file")}
    mtimes = {"/out/App.A.run": 5 * S, "/out/App.B.run": 6 * S}   # App.A.conf changes
    assert instances(owners, mtimes, str(state)) == {
        "App.A": Instance(7 * S, {"run file": 5 * S}), "App.B": Instance(None, {"run file": 6 * S})}
