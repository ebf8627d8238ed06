"""An image with pull = "never" that the engine lacks is a warning at its line, in validate,
generate and apply: every start of its services would fail with image-missing, and nothing in
tarsdock pulls it (the tester's L3: a typo in such a ref validated fine). The engine is a fake
here; tests/e2e/test_missing_image_e2e.py asks the real one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tarsdock import engine
from tarsdock.cli import main
from tarsdock.errors import TarsdockError

HEAD = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[images.base]
ref = "reg.example:5000/tars/base:1"
pull = "{pull}"
"""
SERVICE = """
[services."App.S{index}"]
type = "not_tars"
image = "{image}"
command = ["/bin/sleep", "600"]
{extra}"""
MISSING = ("image 'reg.example:5000/tars/base:1' is not in the engine and its pull is \"never\": "
           "{count} service(s) ({names}) will not start (image-missing) until it is loaded "
           "(`docker load`, `docker pull`) or pull allows tarsdock to pull it")


def node(tmp_path: Path, services: list[tuple[str, str]], pull: str = "never") -> Path:
    """node.toml with [images.base] and one service per (image, extra lines)."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    text = HEAD.format(tars=tmp_path / "tars", pull=pull) + "".join(
        SERVICE.format(index=i, image=image, extra=extra) for i, (image, extra) in
        enumerate(services))
    (cfg / "node.toml").write_text(text)
    return cfg


class Engine:
    """has_image's stand-in: the refs it has, and every question asked."""

    def __init__(self, has: set[str], fails: bool = False) -> None:
        self.has, self.fails, self.asked = has, fails, []

    def __call__(self, socket_path: str, ref: str, timeout: float = 2.0) -> bool:
        self.asked.append(ref)
        if self.fails:
            raise TarsdockError("docker engine at /var/run/docker.sock: refused")
        return ref in self.has


def warnings(cfg: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    assert main(["--config-dir", str(cfg), *(argv or ("validate",))]) == 0
    return [line for line in capsys.readouterr().err.splitlines() if "not in the engine" in line]


def test_an_absent_image_never_pulled_is_one_warning_at_its_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = Engine(set())
    monkeypatch.setattr(engine, "has_image", fake)
    cfg = node(tmp_path, [("base", "")] * 7)
    names = "App.S0, App.S1, App.S2, App.S3, App.S4, ..."
    expected = [f"warning: node.toml:6: {MISSING.format(count=7, names=names)}"]
    assert warnings(cfg, capsys) == expected
    assert fake.asked == ["reg.example:5000/tars/base:1"]       # once per image, not per service
    out = tmp_path / "out"
    assert warnings(cfg, capsys, "generate", "--format", "systemd", "--out", str(out)) == expected


def test_a_literal_ref_is_warned_at_the_services_image_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engine, "has_image", Engine(set()))
    cfg = node(tmp_path, [("base", ""), ("tarsdock-test/pythn:1", "")], pull="missing")
    # a literal ref is pulled when missing (its pull is the default): no warning
    assert warnings(cfg, capsys) == []


@pytest.mark.parametrize("pull", ["missing", "always"])
def test_an_image_tarsdock_pulls_is_not_asked_about(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        pull: str) -> None:
    fake = Engine(set())
    monkeypatch.setattr(engine, "has_image", fake)
    assert warnings(node(tmp_path, [("base", "")], pull=pull), capsys) == []
    assert fake.asked == []


@pytest.mark.parametrize("extra", ['run = "native"\nexe = "/bin/sleep"\n', "enabled = false\n"])
def test_a_service_that_never_runs_the_image_is_not_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        extra: str) -> None:
    monkeypatch.setattr(engine, "has_image", Engine(set()))
    cfg = node(tmp_path, [("base", extra), ("base", "")])
    assert warnings(cfg, capsys) == [
        f"warning: node.toml:6: {MISSING.format(count=1, names='App.S1')}"]


def test_a_present_image_or_an_engine_that_does_not_answer_says_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = node(tmp_path, [("base", "")])
    monkeypatch.setattr(engine, "has_image", Engine({"reg.example:5000/tars/base:1"}))
    assert warnings(cfg, capsys) == []
    down = Engine(set(), fails=True)
    monkeypatch.setattr(engine, "has_image", down)
    assert warnings(cfg, capsys) == [] and down.asked == ["reg.example:5000/tars/base:1"]


def test_apply_check_warns_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(engine, "has_image", Engine(set()))
    cfg = node(tmp_path, [("base", "")])
    assert warnings(cfg, capsys, "apply", "--check") == [
        f"warning: node.toml:6: {MISSING.format(count=1, names='App.S0')}"]
