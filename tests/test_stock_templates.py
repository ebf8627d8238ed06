"""The stock templates: both Tars Java forms start, `template list` and `template show` work
without a config dir of templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bad_manifests import NODE

from tarsdock.argv import service_command
from tarsdock.cli import main
from tarsdock.resolve import load_node
from tarsdock.templates import STOCK_DIR

DATA = "/usr/local/app/tars/tarsnode/data"


def java_node(tmp_path: Path, template: str, extra: str = "") -> Path:
    (tmp_path / "node.toml").write_text(
        NODE + f'[services."Hello.JServer"]\ntype = "tars_java"\ntemplate = "{template}"\n'
        'image = "busybox:1"\n' + extra)
    return tmp_path


def test_springboot_stock_template_starts_a_jar(tmp_path: Path) -> None:
    # packageFormat=jar: `java -Dconfig=CONF JVMPARAMS MAINCLASS`, no -cp (CommandStart.cpp)
    service = load_node(java_node(tmp_path, "tars.springboot")).services[0]
    command = service_command(service)
    assert command[0] == "java"
    assert command[-2:] == ["-jar", f"{DATA}/Hello.JServer/bin/Hello.JServer.jar"]
    assert "-cp" not in command
    assert "-Xmx512m" in command   # jvmparams from its stock parent, tars.tarsjava.default


def test_tarsjava_stock_template_starts_a_class_path(tmp_path: Path) -> None:
    service = load_node(java_node(tmp_path, "tars.tarsjava.default")).services[0]
    command = service_command(service)
    assert command[-3:] == ["-cp", f"{DATA}/Hello.JServer/bin//conf:{DATA}/Hello.JServer/bin//"
                            f"WEB-INF/classes:{DATA}/Hello.JServer/bin//WEB-INF/lib/*",
                            "com.qq.tars.server.startup.Main"]


def test_a_parent_in_node_toml_overrides_the_stock_parent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "node.toml").write_text(NODE + '[templates."tars.springboot"]\n'
                                        'parent = "tars.default"\n')
    assert main(["--config-dir", str(tmp_path), "template", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("tars.springboot "))
    assert row.split()[1] == "tars.default"
    assert row.endswith(", parent from node.toml:6")


def test_template_list_names_parent_and_source(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "mine").write_text("<tars>\n</tars>\n")
    assert main(["template", "list", "--config-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PARENT", "FROM"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert rows["mine"] == ["tars.default", "templates/mine"]
    assert rows["tars.springboot"] == ["tars.tarsjava.default",
                                       f"stock ({STOCK_DIR}/tars.springboot)"]
    assert set(rows) >= {"tars.default", "tars.cpp.default", "tars.tarsjava.default"}


def test_template_show_springboot_works_as_the_readme_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-dir", str(tmp_path / "none"), "template", "show",
                 "tars.springboot"]) == 0
    out = capsys.readouterr().out
    assert "packageFormat=jar" in out
    assert "mainclass=-jar ${basepath}${app}.${server}.jar" in out
    assert "jvmparams=" in out   # from tars.tarsjava.default


def test_bridge_binds_local_inside_the_container_on_every_address(tmp_path: Path) -> None:
    # tarsnode's bridge build sets local's host to 0.0.0.0 (CommandLoad::updateConfigFile): the
    # port is published on the host's 127.0.0.1, so the service must listen on the container's
    (tmp_path / "node.toml").write_text(
        NODE + 'network = "bridge"\n[services."Hello.BServer"]\ntype = "tars_cpp"\n'
        'image = "busybox:1"\nlocal_port = 19390\n')
    service = load_node(tmp_path).services[0]
    assert service.config.get("/tars/application/server<local>") == \
        "tcp -h 0.0.0.0 -p 19390 -t 10000"
