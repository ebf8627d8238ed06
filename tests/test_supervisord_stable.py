"""Program sections stay byte-identical when a service's config changes: only its run file does.

supervisord replaces a changed group whole, so a changed `[program:...]` file would make
`supervisorctl update` restart every program of group `tars`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shared_templates import SHARED_TEMPLATES

from tarsdock.cli import main

SERVICE = "Hello.HelloServer"
BASE = {"run": "container", "image": "tarsdock-test/busybox:1", "env": "LANG=C.UTF-8",
        "volume": "/srv/a=/a", "timeout": "3000", "memory": "512m"}
NODE_TOML = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[services."{service}"]
type = "tars_cpp"
run = "{run}"
image = "{image}"
profile = \"\"\"
<tars>
  <application>
    <server>
      env = {env}
      deactivating-timeout = {timeout}
    </server>
    <container>
      memory = {memory}
      <volumes>
        {volume}
      </volumes>
    </container>
  </application>
</tars>
\"\"\"

[services."Hello.OtherServer"]
type = "tars_cpp"
image = "tarsdock-test/busybox:1"
"""


def generate(config: Path, out: Path, tars: Path, **settings: str) -> dict[str, bytes]:
    """Write node.toml with BASE updated by settings, generate for supervisord; the out dir."""
    values = {**BASE, **settings, "tars": str(tars), "service": SERVICE}
    (config / "node.toml").write_text(NODE_TOML.format(**values))
    argv = ["--config-dir", str(config), "generate", "--format", "supervisord", "--out", str(out),
            "--docker", "/usr/bin/docker"]
    assert main(argv) == 0
    return {path.name: path.read_bytes() for path in out.iterdir()}


@pytest.mark.parametrize("change", [
    {"run": "native"}, {"image": "tarsdock-test/python:1"}, {"env": "LANG=C;TZ=UTC"},
    {"volume": "/srv/b=/b"}, {"memory": "1g"}])
def test_program_files_stay_byte_identical_and_only_the_run_file_changes(
        change: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    before = generate(config, out, tars)
    capsys.readouterr()
    after = generate(config, out, tars, **change)
    assert sorted(before) == sorted(after)
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == [f"{SERVICE}.run"]
    assert "group tars changed" not in capsys.readouterr().err


def test_a_new_stop_window_changes_the_program_and_warns_of_the_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # stopwaitsecs follows deactivating-timeout: supervisord must not SIGKILL before Tars would
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    generate(config, out, tars)
    capsys.readouterr()
    after = generate(config, out, tars, timeout="60000")
    assert b"stopwaitsecs=70\n" in after[f"{SERVICE}.conf"]
    assert "group tars changed" in capsys.readouterr().err


def test_a_removed_service_loses_its_run_file_and_warns_of_the_group(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    generate(config, out, tars, run="native")
    assert "group tars changed" not in capsys.readouterr().err     # first generate
    generate(config, out, tars)
    assert "group tars changed" not in capsys.readouterr().err     # a run file alone changed
    text = (config / "node.toml").read_text()
    (config / "node.toml").write_text(text[:text.index('[services."Hello.OtherServer"]')])
    assert main(["--config-dir", str(config), "generate", "--format", "supervisord",
                 "--out", str(out)]) == 0
    assert "warning: group tars changed" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == [
        f"{SERVICE}.conf", f"{SERVICE}.run", "tars.conf"]


def run_settings(run_file: bytes) -> dict[str, str]:
    """The NAME=VALUE lines of a run file (not `set --`, not comments)."""
    lines = run_file.decode().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[:1].isalpha()
                and not line.startswith("set "))


@pytest.mark.parametrize("kind", ["tars_cpp", "not_tars"])
def test_a_native_tars_service_gets_the_graceful_stop_and_a_not_tars_one_is_execd(
        kind: str, tmp_path: Path) -> None:
    # supervisord has no stop command: tarsdock-run stays the parent of a native Tars service
    # to call AdminF.shutdown first (tarsnode's CommandStop); a not_tars service is exec'd
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    generate(config, out, tars, run="native")
    toml = (config / "node.toml").read_text()
    service = 'type = "not_tars"\ncommand = ["/srv/bin/plain", "--flag"]\nrun' \
        if kind == "not_tars" else 'type = "tars_cpp"\nrun'
    (config / "node.toml").write_text(toml.replace('type = "tars_cpp"\nrun', service, 1))
    argv = ["--config-dir", str(config), "generate", "--format", "supervisord", "--out", str(out),
            "--docker", "/usr/bin/docker"]
    assert main(argv) == 0
    found = run_settings((out / f"{SERVICE}.run").read_bytes())
    assert found["mode"] == "native"
    stop = {key: found.get(key) for key in ("timeout", "admin", "tarsdock")}
    if kind == "not_tars":
        assert stop == {"timeout": None, "admin": None, "tarsdock": None}
    else:
        assert stop["timeout"] == "3" and stop["admin"] and stop["admin"].isdigit()
        assert stop["tarsdock"] and stop["tarsdock"].endswith("/tarsdock")


@pytest.mark.parametrize("jobs", ["1", "2"])   # 2: the changes come from a worker (Planned)
def test_a_program_file_chmod_by_hand_is_put_right_without_the_group_warning(
        jobs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # supervisord reads a program's text, not its mode: `update` restarts nothing for this
    monkeypatch.setenv("TARSDOCK_JOBS", jobs)
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    before = generate(config, out, tars)
    (out / f"{SERVICE}.conf").chmod(0o600)
    capsys.readouterr()
    assert generate(config, out, tars) == before
    assert (out / f"{SERVICE}.conf").stat().st_mode & 0o777 == 0o644
    assert "group tars changed" not in capsys.readouterr().err


IMAGES_TOML = """
[images.base]
ref = "tarsdock-test/busybox:1"
pull = "{pull}"
"""


@pytest.mark.parametrize("pull", ["missing", "always", "never"])
def test_the_pull_policy_is_in_the_run_file_and_the_program_stays(
        pull: str, tmp_path: Path) -> None:
    # tarsdock-run pulls an absent image at the start (issue D3), with what a unit's ExecStartPre
    # runs (`images sync --only NAME` of this config dir, 60 s); pull = "never" gives it nothing
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    before = generate(config, out, tars)
    toml = (config / "node.toml").read_text().replace(
        'image = "tarsdock-test/busybox:1"', 'image = "base"', 1)
    (config / "node.toml").write_text(toml + IMAGES_TOML.format(pull=pull))
    argv = ["--config-dir", str(config), "generate", "--format", "supervisord", "--out", str(out),
            "--docker", "/usr/bin/docker"]
    assert main(argv) == 0
    found = run_settings((out / f"{SERVICE}.run").read_bytes())
    wanted = {"pull": pull, "config": str(config), "pulltimeout": "60"} \
        if pull != "never" else {"pull": None, "config": None, "pulltimeout": None}
    assert {key: found.get(key) for key in wanted} == wanted
    assert found["image"] == "tarsdock-test/busybox:1"
    assert (out / f"{SERVICE}.conf").read_bytes() == before[f"{SERVICE}.conf"]


def test_a_container_service_without_an_admin_port_gets_tarsdock_for_the_pull(
        tmp_path: Path) -> None:
    config, out, tars = tmp_path / "config", tmp_path / "out", tmp_path / "tars"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED_TEMPLATES / "tars.default", config / "templates" / "tars.default")
    shutil.copy(SHARED_TEMPLATES / "tars.cpp.default", config / "templates" / "tars.cpp.default")
    generate(config, out, tars)
    toml = (config / "node.toml").read_text().replace(
        '[services."Hello.OtherServer"]\ntype = "tars_cpp"',
        '[services."Hello.OtherServer"]\ntype = "not_tars"\ncommand = ["/bin/sleep", "9"]', 1)
    (config / "node.toml").write_text(toml)
    argv = ["--config-dir", str(config), "generate", "--format", "supervisord", "--out", str(out),
            "--docker", "/usr/bin/docker"]
    assert main(argv) == 0
    found = run_settings((out / "Hello.OtherServer.run").read_bytes())
    assert found["mode"] == "container" and "admin" not in found   # no stop through tarsdock
    assert found["tarsdock"].endswith("/bin/tarsdock") and found["pull"] == "missing"
