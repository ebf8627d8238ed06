"""argv building, and `tarsdock generate` through the CLI on a real config dir."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from shared_templates import SHARED_TEMPLATES
from unit_helpers import NODE, make_service

from tarsdock import argv as argv_module
from tarsdock import systemd
from tarsdock.argv import (
    docker_run_argv,
    mount_problems,
    mounts,
    service_command,
    service_env,
)
from tarsdock.cli import main
from tarsdock.errors import InputError, Origin
from tarsdock.model import ContainerOptions, PackageFacts, Service, Volume
from tarsdock.output import Context
from tarsdock.records import replace

SHARED = SHARED_TEMPLATES
BIN = "/usr/local/app/tars/tarsnode/data/Hello.NodeServer/bin"
CONF = "/usr/local/app/tars/tarsnode/data/Hello.NodeServer/conf/Hello.NodeServer.config.conf"
LIBS = ("LD_LIBRARY_PATH", f"{BIN}/:/usr/local/app/tars/tarsnode/data/lib/")


def test_nodejs_without_node_agent_runs_the_entry_with_tars_config() -> None:
    service = make_service("Hello.NodeServer", type="tars_nodejs",
                           package=PackageFacts(node_agent=False, entry="src/server.js"))
    assert service_command(service) == ["node", f"{BIN}/src/server.js"]
    assert service_env(service) == [LIBS, ("TARS_CONFIG", CONF)]


def test_nodejs_node_agent_with_an_app_dir() -> None:
    service = make_service("Hello.NodeServer", type="tars_nodejs",
                           package=PackageFacts(node_agent=True, entry="src"))
    assert service_command(service) == [
        "node", f"{BIN}/tars_nodejs/node-agent/bin/node-agent", f"{BIN}/src", "-c", CONF]


def test_a_template_env_tars_config_wins() -> None:
    service = make_service("Hello.NodeServer", type="tars_nodejs", env=(("TARS_CONFIG", "/x"),))
    assert service_env(service) == [("TARS_CONFIG", "/x"), LIBS]


def test_ld_library_path_is_bin_then_lib_after_the_templates_own() -> None:
    # tarsnode: export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:<exe path>:<data dir>/lib/, after the
    # template's exports (CommandStart::prepareScript; lib path from CommandLoad::execute)
    service = make_service("Hello.NodeServer", type="tars_cpp",
                           env=(("LD_LIBRARY_PATH", "/opt/x"), ("A", "1")))
    assert service_env(service) == [("LD_LIBRARY_PATH", f"/opt/x:{LIBS[1]}"), ("A", "1")]


def test_ld_library_path_follows_an_exe_path_outside_bin() -> None:
    service = make_service("Hello.NodeServer", type="tars_go", exe="/opt/go/srv")
    assert service_env(service) == [
        ("LD_LIBRARY_PATH", "/opt/go/:/usr/local/app/tars/tarsnode/data/lib/")]


def test_not_tars_gets_no_ld_library_path_nor_lib_mount() -> None:
    service = make_service("Hello.NodeServer", type="not_tars", command=("/bin/true",))
    assert service_env(service) == []
    assert all("/data/lib" not in source for source, _, _ in mounts(service))


def test_the_lib_dir_is_mounted_read_only() -> None:
    lib = "/usr/local/app/tars/tarsnode/data/lib"
    assert (lib, lib, "ro") in mounts(make_service("Hello.NodeServer"))


def test_absolute_exe_is_used_as_is() -> None:
    assert service_command(make_service(exe="/opt/bin/hello"))[0] == "/opt/bin/hello"


def test_container_without_image_is_an_input_error() -> None:
    with pytest.raises(InputError, match="needs an image"):
        docker_run_argv(make_service(image=None))


def test_not_tars_without_command_is_an_input_error() -> None:
    with pytest.raises(InputError, match="needs a command"):
        service_command(make_service(type="not_tars"))


def test_host_path_rewrites_only_sources_under_tars_path() -> None:
    node = replace(NODE, host_path="/host")
    volumes = (Volume("/usr/local/app/tarsX", "/x", Origin("t", 1)),)
    service = make_service(node=node, container=ContainerOptions(volumes=volumes))
    sources = [source for source, _, _ in mounts(service)]
    assert sources[0] == "/host/tarsnode/data/Hello.HelloServer"
    assert "/usr/local/app/tarsX" in sources   # a sibling prefix is not under tars_path


@pytest.mark.parametrize(("mode", "mounted"), [("", "ro"), ("ro", "ro"), ("rw", "rw")])
def test_a_line_repeating_an_automatic_mount_keeps_its_own_mode(mode: str, mounted: str) -> None:
    # tarsnode hands `/etc/localtime=/etc/localtime:rw` to Docker's binds: rw, as written (it
    # was mounted once, read-only, without a word); without a suffix tarsdock's :ro stays
    volumes = (Volume("/etc/localtime", "/etc/localtime", Origin("t", 1), mode),)
    found = [m for m in mounts(make_service(container=ContainerOptions(volumes=volumes)))
             if m[1] == "/etc/localtime"]
    assert found == [("/etc/localtime", "/etc/localtime", mounted)]


def test_volume_over_the_service_dir_is_refused_at_its_line() -> None:
    target = "/usr/local/app/tars/tarsnode/data/Hello.HelloServer"
    volumes = (Volume("/srv/x", target, Origin("templates/t", 9)),)
    with pytest.raises(InputError, match="templates/t:9"):
        mounts(make_service(container=ContainerOptions(volumes=volumes)))


def test_the_mount_plan_is_made_once_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # resolve checks the mounts and each format's argv mounts them: one plan, kept in the
    # service; each caller gets a list of its own
    made: list[object] = []
    plan = argv_module._plan_mounts
    monkeypatch.setattr(argv_module, "_plan_mounts", lambda s: made.append(s) or plan(s))
    service, other = make_service(), make_service()
    assert mount_problems(service) == []
    mounts(service).clear()
    assert docker_run_argv(service) == docker_run_argv(other)
    assert made == [service, other]


def _wrapped(service: Service, ctx: Context, settings: list[tuple[str, str]],
             args: list[str] | None = None) -> list[str]:
    return systemd.wrapper_argv(service, ctx, settings, args)


def test_unit_wait_and_reap_steps_are_wrapper_argvs() -> None:
    # _container_rows builds them of words made once per node (and image): they must be what
    # wrapper_argv makes of each service's settings, whatever node, image or ctx comes next
    other_node = replace(NODE, name="10.0.0.6", instance_setting="other")
    services = [make_service("A.B"), make_service("C.D", image="x/y:2"),
                make_service("E.F", image=None, run="native"),
                make_service("A.B", node=other_node),
                make_service("G.H", image="x/y:2", node=other_node)]
    services.append(replace(services[1], spec=replace(services[1].spec, image=replace(
        services[1].spec.image, pull="always"))))
    contexts = [Context(Path("/etc/tarsdock"), "/usr/bin"),
                Context(Path("/srv/cfg dir"), "/opt/bin", "/usr/local/bin/docker")]
    for ctx in contexts:
        for service in services:
            if service.spec.run != "container":
                continue
            rows = dict(row for row in systemd.service_rows(service, ctx)[1][1]
                        if isinstance(row, tuple))
            image = service.spec.image
            wait = [("mode", "wait"), ("docker", ctx.docker), ("wait", "60")]
            if image is not None and image.pull != "always":
                wait.append(("image", image.ref))
            pull = [f"{ctx.scripts_dir}/tarsdock", "--config-dir", str(ctx.config_dir), "images",
                    "sync", "--only", service.name, "--timeout", "60", "--quiet"]
            reap = [("mode", "reap"), ("docker", ctx.docker), ("instance", service.node.instance)]
            assert rows["ExecStartPre"] == systemd.IgnoreFailure(_wrapped(service, ctx, wait, pull))
            assert rows["ExecStopPost"] == systemd.IgnoreFailure(_wrapped(service, ctx, reap))


@pytest.mark.parametrize("tars_path", ["/usr/local/app/tars", "/", "//srv", "rel/tars", "/a//b/",
                                       "/a/./b", "/a/../b", "."])
def test_a_config_file_is_at_the_services_conf_path(tars_path: str) -> None:
    # config_files builds the path from the data dir, parsed once: it must be Path(conf_path)
    from tarsdock.generate import config_files

    node = replace(NODE, tars_path=tars_path)
    services = [make_service("A.B", node=node), make_service("C.D", node=node),
                make_service("E.F")]
    paths = [file.path for file in config_files(services, Context(Path("/etc/tarsdock"), "/b"))]
    assert paths == [Path(service.conf_path) for service in services]
    assert [str(path) for path in paths] == [str(Path(service.conf_path)) for service in services]


def test_labels_are_the_contract() -> None:
    argv = docker_run_argv(make_service())
    labels = [argv[i + 1] for i, word in enumerate(argv) if word == "--label"]
    assert labels == ["tarsdock.managed=true", "tarsdock.service=Hello.HelloServer",
                      "tarsdock.node=10.0.0.5", f"tarsdock.instance={NODE.instance}"]


# --- the command, on a config dir whose tars_path is a temp dir --------------------------------

NODE_TOML = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[services."Hello.HelloServer"]
type = "tars_cpp"
image = "tarsdock-test/busybox:1"

[services."Hello.NativeServer"]
type = "not_tars"
run = "native"
command = ["{true}"]
"""


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    (config / "templates").mkdir(parents=True)
    shutil.copy(SHARED / "tars.default", config / "templates" / "tars.default")
    (config / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars",
                                                       true=shutil.which("true")))
    return config


def generate(config: Path, out: Path, *extra: str) -> int:
    return main(["--config-dir", str(config), "generate", "--format", "systemd", "--out",
                 str(out), "--docker", shutil.which("true") or "/bin/true", *extra])


def test_generate_writes_units_configs_and_dirs(node_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert generate(node_dir, out) == 0
    assert capsys.readouterr().out == "11 written, 0 unchanged, 0 removed\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "tars-Hello.HelloServer.service", "tars-Hello.NativeServer.service",
        "tars-punish@.service", "tars-punish@.timer", "tars.target",
        "tarsdock-images-sync.service", "tarsdock-images-sync.timer",
        "tarsdock-node.service", "tarsdock-node.socket"]
    service_dir = tmp_path / "tars" / "tarsnode" / "data" / "Hello.HelloServer"
    conf = (service_dir / "conf" / "Hello.HelloServer.config.conf").read_text()
    assert conf.startswith("# Generated by tarsdock (tars-config)") and "<tars>" in conf
    assert (service_dir / "bin").is_dir() and (service_dir / "data").is_dir()
    assert (tmp_path / "tars" / "app_log" / "Hello" / "HelloServer").is_dir()
    assert generate(node_dir, out) == 0
    assert capsys.readouterr().out == "0 written, 11 unchanged, 0 removed\n"


def test_supervisord_warns_that_update_restarts_the_whole_group(
        node_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["--config-dir", str(node_dir), "generate", "--format", "supervisord", "--out", str(out)]
    assert main(argv) == 0
    assert "group tars changed" not in capsys.readouterr().err    # first generate: nothing runs
    assert main(argv) == 0
    assert "group tars changed" not in capsys.readouterr().err    # nothing changed
    text = (node_dir / "node.toml").read_text()
    (node_dir / "node.toml").write_text(text[:text.index('[services."Hello.NativeServer"]')])
    assert main(argv) == 0
    assert "warning: group tars changed: `supervisorctl update` will restart every program" \
        in capsys.readouterr().err


def test_removed_service_unit_is_removed(node_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    generate(node_dir, out)
    text = (node_dir / "node.toml").read_text()
    (node_dir / "node.toml").write_text(text[:text.index('[services."Hello.NativeServer"]')])
    generate(node_dir, out)
    # tars.target loses the service; the image sync, punish and node object units do not
    # depend on it
    assert capsys.readouterr().out.endswith("1 written, 8 unchanged, 1 removed\n")
    assert not (out / "tars-Hello.NativeServer.service").exists()


@pytest.mark.parametrize("flag", ["--dry-run", "--diff"])
def test_dry_run_and_diff_write_nothing(node_dir: Path, tmp_path: Path, flag: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(node_dir, tmp_path / "out", flag) == 0
    shown = capsys.readouterr().out
    assert "tars-Hello.HelloServer.service" in shown
    assert not (tmp_path / "out").exists() and not (tmp_path / "tars").exists()


def test_a_failing_render_writes_nothing(node_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    text = (node_dir / "node.toml").read_text()
    (node_dir / "node.toml").write_text(text.replace(f'command = ["{shutil.which("true")}"]',
                                                     'command = ["-oops"]'))
    assert generate(node_dir, tmp_path / "out") == 1
    assert "prefix" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "tars").exists()


def systemd_analyze() -> str:
    """The systemd-analyze binary; missing, it fails the test under CI and skips it elsewhere."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing (tests/env/setup.sh installs it)")
        pytest.skip("systemd-analyze is not installed")
    return tool


def test_systemd_analyze_verify_accepts_the_units(node_dir: Path, tmp_path: Path) -> None:
    tool = systemd_analyze()
    out = tmp_path / "out"
    assert generate(node_dir, out) == 0
    units = sorted(str(p) for p in out.iterdir())
    result = subprocess.run([tool, "verify", "--man=no", *units], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    # verify only warns for some problems; none may appear for our units
    ours = [line for line in result.stderr.splitlines() if str(out) in line]
    assert not ours, result.stderr


def test_unit_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    tool = systemd_analyze()
    broken = tmp_path / "tars-broken.service"
    broken.write_text("[Service]\nExecStart=relative path\n")
    result = subprocess.run([tool, "verify", "--man=no", str(broken)], capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0 or str(broken) in result.stderr


def test_unit_names() -> None:
    assert systemd.unit_name(make_service()) == "tars-Hello.HelloServer.service"
    assert Context(Path("/c"), "/s").docker == "/usr/bin/docker"
