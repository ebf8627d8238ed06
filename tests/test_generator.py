"""The systemd generator: units into systemd's dir, the boot link, and the last good units kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tarsdock import generator
from tarsdock.cli import main

NODE = """[node]
name = "10.0.0.5"
tars_path = "{root}/tars"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"
supervisor = "{supervisor}"
"""
SERVICE = """[services."App.{server}"]
type = "not_tars"
run = "native"
command = ["/bin/sleep", "{seconds}"]
"""


def config(root: Path, servers: dict[str, int], supervisor: str = "systemd") -> Path:
    cfg = root / "cfg"
    cfg.mkdir(exist_ok=True)
    text = NODE.format(root=root, supervisor=supervisor)
    text += "".join(SERVICE.format(server=s, seconds=n) for s, n in servers.items())
    (cfg / "node.toml").write_text(text)
    return cfg


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, priority: int, message: str) -> None:
        self.lines.append((priority, message))

    def errors(self) -> str:
        return "\n".join(m for p, m in self.lines if p == generator.ERR)


def run_generator(root: Path, cfg: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Log]:
    out = root / "run" / f"gen{len(list((root).glob('run/gen*')))}"
    out.mkdir(parents=True)
    monkeypatch.setenv("TARSDOCK_CONFIG_DIR", str(cfg))
    monkeypatch.setenv("TARSDOCK_GENERATOR_STATE", str(root / "state"))
    log = Log()
    assert generator.main([str(out), str(root / "early"), str(root / "late")], log) == 0
    return out, log


def test_units_configs_and_the_boot_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, {"One": 1, "Two": 2})
    out, log = run_generator(tmp_path, cfg, monkeypatch)
    assert (out / "tars-App.One.service").is_file() and (out / "tars.target").is_file()
    assert "/bin/sleep 2" in (out / "tars-App.Two.service").read_text()
    link = out / "multi-user.target.wants" / "tars.target"
    assert link.is_symlink() and link.resolve() == (out / "tars.target").resolve()
    conf = tmp_path / "tars/tarsnode/data/App.One/conf/App.One.config.conf"
    assert conf.is_file()
    assert log.errors() == ""
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == sorted(
        p.name for p in out.iterdir() if p.is_file())


def test_bad_input_keeps_the_last_good_units_and_logs_every_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, {"One": 1, "Two": 2})
    good, _ = run_generator(tmp_path, cfg, monkeypatch)
    conf = tmp_path / "tars/tarsnode/data/App.One/conf/App.One.config.conf"
    before = conf.read_text()
    text = (cfg / "node.toml").read_text().replace('run = "native"', 'run = "natve"', 1)
    (cfg / "node.toml").write_text(text + "bogus = 1\n")
    out, log = run_generator(tmp_path, cfg, monkeypatch)
    assert "node.toml:8: key 'run'" in log.errors()
    assert "bogus" in log.errors()
    assert "kept the last good units" in log.errors()
    assert {p.name: p.read_text() for p in out.iterdir() if p.is_file()} == \
        {p.name: p.read_text() for p in good.iterdir() if p.is_file()}
    assert (out / "multi-user.target.wants" / "tars.target").is_symlink()
    assert conf.read_text() == before


def test_bad_input_with_no_last_good_run_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, {"One": 1})
    (cfg / "node.toml").write_text("[node]\n")
    out, log = run_generator(tmp_path, cfg, monkeypatch)
    assert list(out.iterdir()) == [] and "needs this key" in log.errors()


def test_a_supervisord_node_gets_no_units(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out, log = run_generator(tmp_path, config(tmp_path, {"One": 1}, "supervisord"), monkeypatch)
    assert list(out.iterdir()) == []
    assert "not \"systemd\"" in log.lines[0][1]


def test_log_without_journal_goes_to_kmsg_else_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kmsg, no_socket = tmp_path / "kmsg", str(tmp_path / "no-dev-log")
    generator.system_log(no_socket, str(kmsg))(generator.ERR, "one\ntwo")
    assert kmsg.read_text().splitlines()[1].startswith("<3>tarsdock-generator[")
    generator.system_log(no_socket, str(tmp_path / "no" / "kmsg"))(generator.ERR, "three")
    assert capsys.readouterr().err == "tarsdock-generator: three\n"


def test_log_uses_the_journal_socket_when_there_is_one(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert generator.system_log(str(path), str(tmp_path / "kmsg")) is generator._syslog


def test_install_generator_writes_a_script_that_runs_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, {"One": 1})
    gens = tmp_path / "system-generators"
    assert main(["--config-dir", str(cfg), "install-generator", "--dir", str(gens),
                 "--docker", "/usr/bin/docker"]) == 0
    script = gens / "tarsdock"
    assert script.stat().st_mode & 0o777 == 0o755
    out = tmp_path / "normal"
    out.mkdir()
    env = {"PATH": "/usr/bin:/bin", "TARSDOCK_GENERATOR_STATE": str(tmp_path / "state")}
    proc = subprocess.run([str(script), str(out), str(tmp_path), str(tmp_path)], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (out / "tars-App.One.service").is_file()
    assert main(["--config-dir", str(cfg), "install-generator", "--dir", str(gens),
                 "--remove"]) == 0
    assert not script.exists()
