"""The shipped supervisord snippet, read by supervisord's own config parser on a host laid out
as Debian's `supervisor` package lays it out (/etc/supervisor/supervisord.conf including
conf.d/*.conf), set up as the snippet's own comments say."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from supervisor.options import ServerOptions

from tarsdock.cli import main

REPO = Path(__file__).resolve().parents[1]
SNIPPET = REPO / "units" / "tarsdock-supervisord.conf"
ETC = "/etc/supervisor"
# Debian's /etc/supervisor/supervisord.conf, the parts that matter (its [include] last)
DEBIAN_MAIN = """[unix_http_server]
file={run}/supervisor.sock
[supervisord]
logfile={run}/supervisord.log
pidfile={run}/supervisord.pid
childlogdir={run}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{run}/supervisor.sock
[include]
files = {etc}/conf.d/*.conf
"""


def documented_include() -> str | None:
    """The `files = ...` line the snippet tells the operator to put in the main [include]."""
    found = re.findall(r"^;\s+(files = .*)$", SNIPPET.read_text(), re.M)
    assert len(found) <= 1, f"the snippet must show one [include] files line: {found}"
    return found[0] if found else None


def host(tmp_path: Path) -> tuple[Path, Path]:
    """A Debian-style supervisord config tree under tmp_path, set up as the snippet says, and
    tarsdock's default output dir in it with one generated service."""
    etc = tmp_path / "etc" / "supervisor"
    out = etc / "conf.d" / "tarsdock"
    out.mkdir(parents=True)
    shutil.copy(SNIPPET, etc / "conf.d" / SNIPPET.name)
    main_text = DEBIAN_MAIN.format(run=tmp_path, etc=etc)
    include = documented_include()
    if include is not None:
        main_text = main_text.replace(f"files = {etc}/conf.d/*.conf\n",
                                      include.replace(ETC, str(etc)) + "\n")
    (etc / "supervisord.conf").write_text(main_text)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "node.toml").write_text(
        f'[node]\nname = "127.0.0.1"\ntars_path = "{tmp_path}/tars"\n'
        'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n'
        '[services."Hello.A"]\ntype = "not_tars"\nrun = "native"\ncommand = ["/bin/true"]\n')
    assert main(["--config-dir", str(cfg), "generate", "--format", "supervisord",
                 "--out", str(out)]) == 0
    return etc / "supervisord.conf", out


def read_as_supervisord(conf: Path) -> ServerOptions:
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    return options


def test_supervisord_set_up_as_the_snippet_says_loads_the_programs_and_the_interface(
        tmp_path: Path) -> None:
    # supervisord reads [include] in its main config only ("Included files *cannot* include
    # files themselves", Debian's supervisord.conf; supervisor/options.py read_config): the
    # snippet cannot include the output dir for the operator, the main [include] must list it
    conf, _ = host(tmp_path)
    options = read_as_supervisord(conf)
    section = options.configroot.supervisord
    programs = {(group.name, process.name) for group in section.process_group_configs
                for process in group.process_configs}
    assert ("tars", "Hello.A") in programs, programs
    assert ("tarsdock", "tarsdock") in programs, "the event listener"
    assert "tarsdock" in [name for name, _, _ in section.rpcinterface_factories]


def test_the_snippet_includes_nothing_itself() -> None:
    # an [include] in it would be ignored by supervisord and only mislead the reader
    assert not re.search(r"^\[include\]", SNIPPET.read_text(), re.M)
