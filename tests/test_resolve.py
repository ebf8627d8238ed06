"""Resolution of the example node and of the template chain, through the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shared_templates import SHARED_TEMPLATES

from tarsdock import tcconfig
from tarsdock.cli import main
from tarsdock.resolve import MACRO_NAMES, load_node, macros

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "node"
SHARED = SHARED_TEMPLATES

NODE = """\
[node]
name = "10.0.0.5"
tars_path = "/usr/local/app/tars"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[images.base]
ref = "tarsdock-test/python:1"

[services."App.Server"]
type = "tars_cpp"
template = "t.app"
image = "base"
[[services."App.Server".adapters]]
name = "ObjAdapter"
servant = "App.Server.Obj"
endpoint = "tcp -h 10.0.0.5 -p 20001 -t 60000"
"""


def config_dir(tmp_path: Path, template: str, node: str = NODE) -> Path:
    (tmp_path / "templates").mkdir()
    (tmp_path / "node.toml").write_text(node)
    (tmp_path / "templates" / "t.app").write_text(template)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_example_node_validates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config-dir", str(EXAMPLE), "validate")
    assert (code, err) == (0, "")
    assert "3 services" in out


def test_example_service_final_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--config-dir", str(EXAMPLE), "config", "Demo.HelloServer")
    assert code == 0
    config = tcconfig.parse(out, "out")
    server = "/tars/application/server"
    adapter = f"{server}/Demo.HelloServer.HelloObjAdapter"
    assert config.get(f"{adapter}<endpoint>") == "tcp -h 127.0.0.1 -p 19411 -t 60000"
    assert config.get(f"{adapter}<servant>") == "Demo.HelloServer.HelloObj"
    assert config.get(f"{adapter}<threads>") == "2"
    assert config.get(f"{server}<app>") == "Demo"
    assert config.get(f"{server}<basepath>") == \
        "/usr/local/app/tars/tarsnode/data/Demo.HelloServer/bin/"
    assert config.get(f"{server}<local>") == "tcp -h 127.0.0.1 -p 19401 -t 10000"
    assert config.get(f"{server}<logLevel>") == "INFO"           # the private profile wins
    assert config.get(f"{server}<opencoroutine>") == "0"         # from stock tars.cpp.default
    assert config.get("/tars/application/client<modulename>") == "Demo.HelloServer"
    assert "${" not in out


def test_example_service_container_parts() -> None:
    service = {s.name: s for s in load_node(EXAMPLE).services}["Demo.HelloServer"]
    assert service.env == (("DEMO_GREETING", "hello from tarsdock"), ("TZ", "UTC"))
    assert service.stop_timeout == 5
    assert ("memory", "256m") in service.container.options
    assert [(v.host, v.container) for v in service.container.volumes] == \
        [("/usr/local/app/tars/tarsdock-shared", "/shared")]
    assert str(service.conf_path) == \
        "/usr/local/app/tars/tarsnode/data/Demo.HelloServer/conf/Demo.HelloServer.config.conf"


def test_unknown_service_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config-dir", str(EXAMPLE), "config", "Demo.HelloServr")
    assert code == 1 and out == ""
    assert "did you mean 'Demo.HelloServer'?" in err


def shared_chain_dir(tmp_path: Path) -> Path:
    (tmp_path / "templates").mkdir()
    for name in ("tars.default", "tars.tarsjava.default", "tars.springboot"):
        shutil.copy(SHARED / name, tmp_path / "templates" / name)
    (tmp_path / "node.toml").write_text(
        NODE.replace("[images.base]", '[templates."tars.springboot"]\n'
                     'parent = "tars.tarsjava.default"\n\n[images.base]')
        .replace('template = "t.app"', 'template = "tars.default"'))
    return tmp_path


def test_template_show_prints_what_join_config_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_chain_dir(tmp_path)
    code, out, err = run(capsys, "--config-dir", str(root), "template", "show", "tars.springboot")
    assert (code, err) == (0, "")
    # joinConfig, literally: serialize each side, concatenate, parse, serialize
    text = ""
    for name in ("tars.default", "tars.tarsjava.default", "tars.springboot"):
        side = tcconfig.serialize(tcconfig.parse((SHARED / name).read_text(), name))
        text = tcconfig.serialize(tcconfig.parse(text + side, "join"))
    assert out == text


def test_template_show_with_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_chain_dir(tmp_path)
    profile = tmp_path / "profile"
    profile.write_text("<tars>\n<application>\n<server>\nlogsize=1G\n</server>\n"
                       "</application>\n</tars>\n")
    code, out, _ = run(capsys, "--config-dir", str(root), "template", "show", "tars.springboot",
                       "--profile", str(profile))
    assert code == 0
    assert tcconfig.parse(out, "o").get("/tars/application/server<logsize>") == "1G"


def test_template_show_of_a_broken_template(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = shared_chain_dir(tmp_path)
    (root / "templates" / "tars.bad").write_text("<tars>\n  <a>\n  path=C:\\data\n</tars>\n")
    code, out, err = run(capsys, "--config-dir", str(root), "template", "show", "tars.bad")
    assert (code, out) == (1, "")
    assert "templates/tars.bad:3: key 'path': bad escape '\\d'" in err


BAD_TEMPLATES = [
    ("<tars>\n<application>\n<container>\n<volumes>\ndata=/data\n</volumes>\n</container>\n"
     "</application>\n</tars>\n", "templates/t.app:5: key 'data': host path 'data'"),
    ("<tars>\n<application>\n<container>\n<volumes>\n/a/../etc=/data\n</volumes>\n</container>\n"
     "</application>\n</tars>\n", "templates/t.app:5: key '/a/../etc': host path"),
    ("<tars>\n<application>\n<container>\n<volumes>\n/data=rel\n</volumes>\n</container>\n"
     "</application>\n</tars>\n", "templates/t.app:5: key '/data': container path 'rel'"),
    ("<tars>\n<application>\n<container>\n<volumes>\n/data\n</volumes>\n</container>\n"
     "</application>\n</tars>\n", "a <volumes> line must be host=container"),
    ("<tars>\n<application>\n<container>\n<ports>\n80=1.2.3.4:80\n</ports>\n</container>\n"
     "</application>\n</tars>\n", "templates/t.app:5: key '80': bad <ports> line"),
    ("<tars>\n<application>\n<container>\n<ports>\n80/tcp=1.2.3:80\n</ports>\n</container>\n"
     "</application>\n</tars>\n", "bad <ports> line '80/tcp=1.2.3:80'"),
    ("<tars>\n<application>\n<container>\nmemroy=1g\n</container>\n</application>\n</tars>\n",
     "templates/t.app:4: key 'memroy': unknown <container> key, did you mean 'memory'?"),
    ("<tars>\n<application>\n<container>\nprivileged=maybe\n</container>\n</application>\n"
     "</tars>\n", "key 'privileged': bad value 'maybe'"),
    ("<tars>\n<application>\n<container>\n<volume>\n</volume>\n</container>\n</application>\n"
     "</tars>\n", "templates/t.app:4: unknown <container> domain <volume>, did you mean"),
    ("<tars>\n<application>\n<server>\nenv=A=1;B-C=2\n</server>\n</application>\n</tars>\n",
     "templates/t.app:4: key 'env': bad environment item 'B-C=2'"),
    ("<tars>\n<application>\n<server>\ndeactivating-timeout=3s\n</server>\n</application>\n"
     "</tars>\n", "templates/t.app:4: key 'deactivating-timeout': bad value '3s'"),
    # read by the node object (found by hand: '8s' silently meant the node's 45000 ms)
    ("<tars>\n<application>\n<server>\nhearttimeout=8s\n</server>\n</application>\n"
     "</tars>\n", "templates/t.app:4: key 'hearttimeout': bad value '8s': milliseconds expected"),
    ("<tars>\n<application>\n<server>\nactivating-timeout=-5\n</server>\n</application>\n"
     "</tars>\n", "templates/t.app:4: key 'activating-timeout': bad value '-5': milliseconds"),
]


@pytest.mark.parametrize(("template", "message"), BAD_TEMPLATES, ids=[m for _, m in BAD_TEMPLATES])
def test_bad_template_content(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              template: str, message: str) -> None:
    code, out, err = run(capsys, "--config-dir", str(config_dir(tmp_path, template)), "validate")
    assert (code, out) == (1, "")
    assert message in err


def test_template_cycle_without_a_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = NODE.replace("[images.base]", '[templates."t.app"]\nparent = "t.other"\n'
                        '[templates."t.other"]\nparent = "t.app"\n\n[images.base]')
    root = config_dir(tmp_path, "<tars>\n</tars>\n", node)
    (root / "templates" / "t.other").write_text("<tars>\n</tars>\n")
    code, _, err = run(capsys, "--config-dir", str(root), "validate")
    assert code == 1
    # at the `parent` line that closes the loop, naming the key (house rule: file, line and key)
    cycle = "key 'parent': template cycle without a root:"
    assert err.splitlines()[:2] == [
        f"error: node.toml:7: {cycle} t.other -> t.app -> t.other",
        f"error: node.toml:9: {cycle} t.app -> t.other -> t.app"]
    assert len(err.splitlines()) == len(set(err.splitlines())), err   # each error once


def test_missing_template_and_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = NODE.replace("[images.base]", '[templates."t.app"]\nparent = "t.gone"\n\n[images.base]')
    root = config_dir(tmp_path, "<tars>\n</tars>\n", node)
    code, _, err = run(capsys, "--config-dir", str(root), "validate")
    assert code == 1
    assert "error: node.toml:7: key 'parent': template 't.gone' does not exist" in err, err


def test_all_errors_of_a_run_are_reported_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = BAD_TEMPLATES[0][0].replace("</container>", "memroy=1\n</container>")
    root = config_dir(tmp_path, template)
    (root / "templates" / "t.broken").write_text("<a>\n")
    code, _, err = run(capsys, "--config-dir", str(root), "validate")
    lines = err.splitlines()
    assert code == 1 and len(lines) == 3, err
    assert all(line.startswith("error: templates/") for line in lines)


def test_macro_names_are_the_macros_given_values() -> None:
    node = load_node(EXAMPLE)
    for service in node.services:
        assert set(macros(service.spec, service.node)) == MACRO_NAMES


def test_an_env_value_read_again_reports_its_problems_at_each_line() -> None:
    # read_env keeps what it made of a value (every service of a template has the same one):
    # the problems found the first time must still name the line of each later config
    from tarsdock.containerspec import read_env
    from tarsdock.errors import ErrorCollector

    text = ("<tars>\n<application>\n<server>\n{}env=A=1;B-C=2;D=x\n</server>\n</application>\n"
            "</tars>\n")
    errors = ErrorCollector()
    first = read_env(tcconfig.parse(text.format(""), "templates/a"), errors)
    second = read_env(tcconfig.parse(text.format("\n\n"), "templates/b"), errors)
    assert first == second == (("A", "1"), ("D", "x"))
    assert [str(error) for error in errors.errors] == [
        f"templates/{name}: key 'env': bad environment item 'B-C=2': expected NAME=VALUE, NAME "
        "of letters, digits and _" for name in ("a:4", "b:6")]


def test_a_volumes_line_read_again_reports_its_problem_at_each_line() -> None:
    # read_container keeps what it made of a <volumes> line (each service of a template has
    # the template's lines): a problem found the first time names each later config's line
    from tarsdock.containerspec import read_container
    from tarsdock.errors import ErrorCollector

    text = ("<tars>\n<application>\n{}<container>\n<volumes>\n/a=/b:rx\n/c=/d:ro\n</volumes>\n"
            "</container>\n</application>\n</tars>\n")
    errors = ErrorCollector()
    first = read_container(tcconfig.parse(text.format(""), "templates/a"), errors)
    second = read_container(tcconfig.parse(text.format("\n"), "templates/b"), errors)
    assert [(v.host, v.container, v.mode, str(v.origin)) for v in first.volumes] == [
        ("/c", "/d", "ro", "templates/a:6")]
    assert [str(v.origin) for v in second.volumes] == ["templates/b:7"]
    assert [str(error) for error in errors.errors] == [
        f"templates/{name}: key '/a': unknown mount option ':rx' in '/b:rx': only :ro and :rw"
        for name in ("a:5", "b:6")]
