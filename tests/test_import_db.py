"""`tarsdock import` against a real MariaDB loaded with TarsFramework's schema and rows.

Each test uses node names of its own, so they share one server and one db_tars. The expected
configs are written out by hand from tarsnode's rules, not from tarsdock's output:
- tarsregistry (CDbHandle::getServers, getProfileTemplate): resolve(T) = T over resolve(parent),
  private profile over that; set division NAME.AREA.GROUP when enable_set is Y; asyncthread is
  max(async_thread_num, 3) (0 for tars_nodejs) unless the profile's <client> sets it.
- tarsnode (CommandLoad::updateConfigFile): one <server> domain per adapter, inserted from the last
  adapter name to the first, keys in name order (a std::map), endpoints as TC_Endpoint::toString
  writes them; the templates are merged over those; macros: enableset y/n, setdivision or NULL,
  basepath <data>/App.Server/bin/, datapath .../data/, logpath the node's app_log.
- Merge (TC_Config::joinConfig): a key the higher side repeats moves to the end.
- tarsnode puts `node=tars.tarsnode.ServerObj@<its ServerAdapter>` first in <server>; tarsdock's
  node object listens on 127.0.0.1:19386, and only Tars services get the line (not not_tars).
Differences that are tarsdock's on purpose (README): `local` is a port in tarsnode's range
30000..44999 that tarsdock picks (read here from the config: tarsnode's is random too), and a
not_tars service gets none; container endpoints keep their host on host networking (tarsnode
writes 0.0.0.0, needed only with a bridge).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import harness
from mariadb import MariaDB, load_tars, start, tools_missing
from shared_templates import SHARED_TEMPLATES

from tarsdock.cli import main

USER, PASSWORD = "tarsimport", "import-pw"
TARS = "/usr/local/app/tars"
DATA = f"{TARS}/tarsnode/data"
LOCATOR = "tars.tarsregistry.QueryObj@tcp -h localip.tars.com -p 17890 -t 60000"
SHARED_CHAIN = {"tars.default": "tars.default", "tars.cpp.default": "tars.default",
                "tars.tarsjava.default": "tars.default", "tars.springboot": "tars.tarsjava.default",
                "tars.nodejs.default": "tars.default"}


@pytest.fixture(scope="session")
def tars_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """One MariaDB for the session, db_tars loaded, the real templates inserted."""
    missing = tools_missing()
    harness.require(not missing, f"MariaDB is missing ({', '.join(missing)}): "
                    "apt-get install mariadb-server (tests/env/setup.sh)")
    server = start(tmp_path_factory.mktemp("mariadb"))
    try:
        load_tars(server, USER, PASSWORD)
        for name, parent in SHARED_CHAIN.items():
            add_template(server, name, parent, (SHARED_TEMPLATES / name).read_text())
        yield server
    finally:
        server.stop()


def insert(db: MariaDB, table: str, sql_mode: str | None = None, **columns: Any) -> int:
    names = ", ".join(f"`{name}`" for name in columns)
    marks = ", ".join(["%s"] * len(columns))
    db.sql(f"insert into {table} ({names}) values ({marks})", tuple(columns.values()),
           sql_mode=sql_mode)
    return int(db.sql("select max(id) as id from " + table)[0]["id"])


def add_template(db: MariaDB, name: str, parent: str, text: str) -> int:
    return insert(db, "t_profile_template", template_name=name, parents_name=parent,
                  profile=text)


def add_node(db: MariaDB, node: str, data_dir: str = DATA) -> None:
    insert(db, "t_node_info", node_name=node, node_obj=f"tars.tarsnode.NodeObj@tcp -h {node} "
           "-p 19385 -t 60000", endpoint_ip=node, endpoint_port=19385, data_dir=data_dir)


def add_server(db: MariaDB, node: str, name: str, sql_mode: str | None = None,
               **columns: Any) -> int:
    app, server = name.split(".")
    values = {"server_type": "tars_cpp", "template_name": "tars.default",
              "setting_state": "active", **columns}
    return insert(db, "t_server_conf", sql_mode, application=app, server_name=server,
                  node_name=node, **values)


def add_adapter(db: MariaDB, node: str, name: str, adapter: str, endpoint: str,
                **columns: Any) -> int:
    app, server = name.split(".")
    values = {"thread_num": 1, "max_connections": 1000, "queuecap": 10000,
              "queuetimeout": 60000, "servant": f"{name}.{adapter[:-len('Adapter')]}",
              **columns}
    return insert(db, "t_adapter_conf", application=app, server_name=server, node_name=node,
                  adapter_name=f"{name}.{adapter}", endpoint=endpoint, **values)


def run(db: MariaDB, node: str, out: Path, *extra: str,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    password = out.parent / "db-password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    code = main(["import", "--tars-db", f"mysql://{USER}@127.0.0.1:{db.port}/db_tars",
                 "--node", node, "--out", str(out), "--password-file", str(password), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def config_of(out: Path, service: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--config-dir", str(out), "config", service]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


NODE_LINE = "node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000"


def local_line(port: int | None) -> str:
    return f"local=tcp -h 127.0.0.1 -p {port} -t 10000" if port else "local"


def local_port_of(text: str) -> int:
    """The admin port tarsdock chose, checked to be in tarsnode's range."""
    match = re.search(r"^      local=tcp -h 127\.0\.0\.1 -p (\d+) -t 10000$", text, re.M)
    assert match and 30000 <= int(match[1]) <= 44999, text
    return int(match[1])


def default_server(name: str, port: int | None, tars: bool = True) -> list[str]:
    """tars.default's <server> keys with tarsnode's macros, in the template's order (after
    `node`, which tarsnode inserts before merging the templates)."""
    return [NODE_LINE] * tars + [
            f"app={name.split('.')[0]}", f"server={name.split('.')[1]}", "nodename=10.0.0.5",
            "localip=10.0.0.5", local_line(port),
            f"basepath={DATA}/{name}/bin/", f"datapath={DATA}/{name}/data/",
            f"logpath={TARS}/app_log", "logsize=10M", "lognum=10", "logLevel=DEBUG",
            "config=tars.tarsconfig.ConfigObj", "notify=tars.tarsnotify.NotifyObj",
            "log=tars.tarslog.LogObj", "deactivating-timeout=3000", "activating-timeout=60000"]


def default_client(name: str, asyncthread: int) -> list[str]:
    return [f"locator={LOCATOR}", "sync-invoke-timeout=3000", "async-invoke-timeout=5000",
            "refresh-endpoint-interval=60000", "stat=tars.tarsstat.StatObj",
            "property=tars.tarsproperty.PropertyObj", "report-interval=60000",
            f"asyncthread={asyncthread}", f"modulename={name}"]


def adapter(name: str, **keys: str) -> list[str]:
    """An adapter domain: keys in name order, as tarsnode's std::map puts them; empty: bare."""
    body = [f"  {k}={v}" if v else f"  {k}" for k, v in sorted(keys.items())]
    return [f"<{name}>", *body, f"</{name}>"]


def config(app_keys: list[str], server: list[str], client: list[str]) -> str:
    lines = ["<tars>", "  <application>", *(f"    {k}" for k in app_keys), "    <server>",
             *(f"      {k}" for k in server), "    </server>", "    <client>",
             *(f"      {k}" for k in client), "    </client>", "  </application>", "</tars>"]
    return "\n".join(lines) + "\n"


CPP_PROFILE = "<tars>\n  <application>\n    <server>\n      logLevel=INFO\n    </server>\n" \
              "  </application>\n</tars>\n"
JAVA_PROFILE = "<tars>\n<application>\n<client>\nasyncthread=8\n</client>\n</application>\n</tars>"
JVM = ("-Dcom.sun.management.jmxremote.ssl\\=false -Dcom.sun.management.jmxremote.authenticate"
       "\\=false -Xms2000m -Xmx2000m -Xmn1000m -Xss1000k -XX:CMSInitiatingOccupancyFraction\\=60 "
       "-XX:+CMSParallelRemarkEnabled -XX:+CMSScavengeBeforeRemark -verbosegc "
       "-XX:+PrintGCDetails -XX:ErrorFile\\=" + TARS + "/app_log/Hello/JavaServer/jvm_error.log")


@pytest.fixture(scope="module")
def node_rows(tars_db: MariaDB) -> dict[str, int]:
    """Node 10.0.0.5: C++ (container, set, two adapters), Java (3-level chain, native),
    Node.js (container), not_tars (native, inactive, start script); a registry and an image."""
    db, node = tars_db, "10.0.0.5"
    add_node(db, node)
    registry = insert(db, "t_docker_registry", registry="https://registry.example.com:5000",
                      username="deploy", password="s3cret'pw")
    image = insert(db, "t_base_image", image="registry.example.com:5000/tars/cppbase:3.0.15",
                   registryId=registry)
    ids = {"registry": registry, "image": image}
    ids["cpp"] = add_server(db, node, "Hello.CppServer", template_name="tars.cpp.default",
                            run_type="container", base_image_id=image, enable_set="Y",
                            set_name="sz", set_area="a", set_group="1", async_thread_num=5,
                            profile=CPP_PROFILE)
    add_adapter(db, node, "Hello.CppServer", "AObjAdapter", "tcp -h 10.0.0.5 -t 60000 -p 20001",
                thread_num=5)
    add_adapter(db, node, "Hello.CppServer", "ZObjAdapter", "tcp -h 10.0.0.5 -p 20002 -t 3000",
                thread_num=2, protocol="not_tars", allow_ip="10.0.0.1;10.0.0.2",
                max_connections=200, queuecap=500, queuetimeout=1000)
    ids["java"] = add_server(db, node, "Hello.JavaServer", server_type="tars_java",
                             template_name="tars.springboot", async_thread_num=2,
                             profile=JAVA_PROFILE)
    add_adapter(db, node, "Hello.JavaServer", "JObjAdapter", "tcp -h 10.0.0.5 -p 20003 -t 60000",
                thread_num=3, max_connections=100000, queuecap=100000)
    ids["node"] = add_server(db, node, "Hello.NodeServer", server_type="tars_nodejs",
                             template_name="tars.nodejs.default", run_type="container",
                             base_image_id=image, async_thread_num=0)
    add_adapter(db, node, "Hello.NodeServer", "NObjAdapter", "tcp -h 10.0.0.5 -p 20004 -t 60000")
    ids["script"] = add_server(db, node, "Hello.ScriptServer", server_type="not_tars",
                               setting_state="inactive", start_script_path="start.sh")
    return ids


@pytest.fixture
def imported(tars_db: MariaDB, node_rows: dict[str, int], tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "etc-tarsdock"
    code, stdout, stderr = run(tars_db, "10.0.0.5", out, capsys=capsys)
    assert code == 0, stderr
    assert "imported 4 services, 5 templates, 1 images" in stdout
    return out


def test_cpp_container_with_set_is_tarsnodes_config(imported: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    text = config_of(imported, "Hello.CppServer", capsys)
    server = default_server("Hello.CppServer", local_port_of(text))
    server.remove("logLevel=DEBUG")   # the private profile's logLevel moves to the end
    server += ["opencoroutine=0", "coroutinememsize=1G", "coroutinestack=128K", "closecout=0",
               "netthread=1", "logLevel=INFO"]
    server += adapter(
        "Hello.CppServer.ZObjAdapter", allow="10.0.0.1;10.0.0.2",
        endpoint="tcp -h 10.0.0.5 -p 20002 -t 3000", maxconns="200", protocol="not_tars",
        queuecap="500", queuetimeout="1000", servant="Hello.CppServer.ZObj", threads="2")
    server += adapter(
        "Hello.CppServer.AObjAdapter", allow="", endpoint="tcp -h 10.0.0.5 -p 20001 -t 60000",
        maxconns="1000", protocol="tars", queuecap="10000", queuetimeout="60000",
        servant="Hello.CppServer.AObj", threads="5")
    expected = config(["enableset=y", "setdivision=sz.a.1"], server,
                      default_client("Hello.CppServer", 5))
    assert text == expected


def test_java_three_level_chain_is_tarsnodes_config(imported: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bin_dir = f"{DATA}/Hello.JavaServer/bin/"
    text = config_of(imported, "Hello.JavaServer", capsys)
    # tars.tarsjava.default over tars.default: the keys it repeats move to the end, in its order;
    # tars.springboot adds packageFormat and moves mainclass to the end
    server = [NODE_LINE, "nodename=10.0.0.5", "lognum=10", "logLevel=DEBUG",
              "deactivating-timeout=3000",
              "activating-timeout=60000", "app=Hello", "server=JavaServer", "localip=10.0.0.5",
              local_line(local_port_of(text)), f"basepath={bin_dir}",
              f"datapath={DATA}/Hello.JavaServer/data/", f"logpath={TARS}/app_log",
              "loglevel=DEBUG", "logsize=15M", "log=tars.tarslog.LogObj",
              "config=tars.tarsconfig.ConfigObj", "notify=tars.tarsnotify.NotifyObj",
              f"classpath={bin_dir}/conf:{bin_dir}/WEB-INF/classes:{bin_dir}/WEB-INF/lib",
              f"jvmparams={JVM}", "sessiontimeout=120000", "sessioncheckinterval=60000",
              "tcpnodelay=true", "udpbuffersize=8192", "charsetname=UTF-8", "backupfiles=conf",
              "packageFormat=jar", f"mainclass=-jar {bin_dir}/Hello.JavaServer.jar"]
    server += adapter(
        "Hello.JavaServer.JObjAdapter", allow="", endpoint="tcp -h 10.0.0.5 -p 20003 -t 60000",
        maxconns="100000", protocol="tars", queuecap="100000", queuetimeout="60000",
        servant="Hello.JavaServer.JObj", threads="3")
    client = [f"locator={LOCATOR}", "sync-invoke-timeout=20000", "async-invoke-timeout=20000",
              "refresh-endpoint-interval=60000", "stat=tars.tarsstat.StatObj",
              "property=tars.tarsproperty.PropertyObj", "report-interval=60000",
              "modulename=Hello.JavaServer", "asyncthread=8"]
    expected = config(["enableset=n", "setdivision=NULL"], server, client)
    assert text == expected


def test_nodejs_and_not_tars_are_tarsnodes_config(imported: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = config_of(imported, "Hello.NodeServer", capsys)
    server = default_server("Hello.NodeServer", local_port_of(text))
    server += adapter(
        "Hello.NodeServer.NObjAdapter", allow="", endpoint="tcp -h 10.0.0.5 -p 20004 -t 60000",
        maxconns="1000", protocol="tars", queuecap="10000", queuetimeout="60000",
        servant="Hello.NodeServer.NObj", threads="1")
    # tars_nodejs: tarsregistry's default asyncthread is 0, and the column says 0
    expected = config(["enableset=n", "setdivision=NULL"], server,
                      default_client("Hello.NodeServer", 0))
    assert text == expected
    expected = config(["enableset=n", "setdivision=NULL"],
                      default_server("Hello.ScriptServer", None, tars=False),
                      default_client("Hello.ScriptServer", 3))
    assert config_of(imported, "Hello.ScriptServer", capsys) == expected


def test_manifest_run_modes_images_and_secrets(imported: Path, node_rows: dict[str, int],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-dir", str(imported), "validate"]) == 0, capsys.readouterr().err
    node = tomllib.loads((imported / "node.toml").read_text())
    rid, iid = f"registry-{node_rows['registry']}", f"image-{node_rows['image']}"
    assert node["node"] == {"name": "10.0.0.5", "localip": "10.0.0.5", "tars_path": TARS,
                            "locator": LOCATOR}
    assert node["registries"] == {rid: {"url": "registry.example.com:5000",
                                        "username": "deploy", "password_file": f"secrets/{rid}"}}
    assert node["images"] == {iid: {"ref": "registry.example.com:5000/tars/cppbase:3.0.15",
                                    "registry": rid}}
    assert node["templates"]["tars.springboot"] == {"parent": "tars.tarsjava.default"}
    assert node["templates"]["tars.default"] == {"parent": "tars.default"}
    secret = imported / "secrets" / rid
    assert secret.read_text() == "s3cret'pw"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "s3cret" not in (imported / "node.toml").read_text()
    services = {}
    for path in (imported / "services.d").glob("*.toml"):
        services.update(tomllib.loads(path.read_text())["services"])
    assert (services["Hello.CppServer"]["run"], services["Hello.CppServer"]["image"]) == \
        ("container", iid)
    assert services["Hello.JavaServer"]["run"] == "native"
    assert services["Hello.NodeServer"]["async_thread"] == 0
    script = services["Hello.ScriptServer"]
    assert (script["enabled"], script["command"]) == \
        (False, [f"{DATA}/Hello.ScriptServer/bin/start.sh", "Hello.ScriptServer"])
    assert all(s["enabled"] for n, s in services.items() if n != "Hello.ScriptServer")
    for name in SHARED_CHAIN:   # every template exactly as stored
        assert (imported / "templates" / name).read_text() == \
            (SHARED_TEMPLATES / name).read_text()


def test_second_import_writes_nothing_and_diff_shows_changes(
        tars_db: MariaDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node, out = "10.0.1.1", tmp_path / "conf"
    add_node(tars_db, node)
    add_server(tars_db, node, "Idem.OneServer")
    gone = add_server(tars_db, node, "Idem.TwoServer")
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code, stdout, _ = run(tars_db, node, out, capsys=capsys)
    assert code == 0 and "0 written" in stdout and "0 removed" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before

    tars_db.sql("delete from t_server_conf where id = %s", (gone,))
    tars_db.sql("update t_server_conf set setting_state = 'inactive' where node_name = %s",
                (node,))
    code, stdout, _ = run(tars_db, node, out, "--dry-run", capsys=capsys)
    assert code == 0
    assert f"changed   {out}/services.d/Idem.OneServer.toml" in stdout
    assert f"stale     {out}/services.d/Idem.TwoServer.toml" in stdout
    code, stdout, _ = run(tars_db, node, out, "--diff", capsys=capsys)
    assert "-enabled = true\n+enabled = false\n" in stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    code, stdout, _ = run(tars_db, node, out, capsys=capsys)
    assert "1 written" in stdout and "1 removed" in stdout
    assert not (out / "services.d" / "Idem.TwoServer.toml").exists()


def test_admin_port_tarsnode_gave_is_kept(tars_db: MariaDB, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Moving a node on the same host: the `local` port in tarsnode's config file stays."""
    node, out, data = "10.0.1.2", tmp_path / "conf", tmp_path / "tars" / "tarsnode" / "data"
    add_node(tars_db, node, data_dir=str(data))
    add_server(tars_db, node, "Port.AServer")
    conf = data / "Port.AServer" / "conf" / "Port.AServer.config.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("<tars>\n<application>\n<server>\nlocal=tcp -h 127.0.0.1 -p 31234 -t 10000\n"
                    "</server>\n</application>\n</tars>\n")
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    table = tomllib.loads((out / "services.d" / "Port.AServer.toml").read_text())
    assert "local_port" not in table["services"]["Port.AServer"]
    assert "local=tcp -h 127.0.0.1 -p 31234 -t 10000\n" in config_of(out, "Port.AServer", capsys)


def test_bad_rows_reported_together_and_nothing_written(
        tars_db: MariaDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, node, out = tars_db, "10.0.2.1", tmp_path / "conf"
    add_node(db, node)
    orphan_template = add_template(db, "bad.orphan", "bad.nowhere", "<tars>\n</tars>\n")
    loop_a = add_template(db, "bad.loop.a", "bad.loop.b", "<tars>\n</tars>\n")
    add_template(db, "bad.loop.b", "bad.loop.a", "<tars>\n</tars>\n")
    broken = add_template(db, "bad.broken", "tars.default", "<tars>\n<a>\n</b>\n</tars>\n")
    # an enum value MariaDB does not know is stored as '' when the session is not strict
    kind = add_server(db, node, "Bad.KindServer", server_type="tars_rust", sql_mode="")
    missing = add_server(db, node, "Bad.MissingServer", template_name="bad.absent")
    orphan = add_server(db, node, "Bad.OrphanServer", template_name="bad.orphan")
    add_server(db, node, "Bad.LoopServer", template_name="bad.loop.a")
    add_server(db, node, "Bad.BrokenServer", template_name="bad.broken")
    image = add_server(db, node, "Bad.ImageServer", run_type="container", base_image_id=999999)
    ep = add_server(db, node, "Bad.EndpointServer")
    bad_ep = add_adapter(db, node, "Bad.EndpointServer", "EObjAdapter", "tcp -h 10.0.2.1 -p x")
    text = add_server(db, node, "Bad.TextServer", enable_set="Y", set_name="s.z", set_area="a",
                      set_group="1", exe_path="bin/my server", profile="<tars>\nk=\\q\n</tars>")
    bad_protocol = add_adapter(db, node, "Bad.TextServer", "TObjAdapter",
                               "tcp -h 10.0.2.1 -p 20900", protocol="http")
    code, stdout, stderr = run(db, node, out, capsys=capsys)
    assert code == 1 and stdout == ""
    expected = [
        f"t_server_conf id {kind} (Bad.KindServer): column 'server_type': '' is not one of",
        f"t_server_conf id {missing} (Bad.MissingServer): column 'template_name': template "
        "'bad.absent' is not in t_profile_template",
        f"t_profile_template id {orphan_template} (bad.orphan): column 'parents_name': "
        "template 'bad.nowhere' is not in t_profile_template",
        f"t_profile_template id {loop_a} (bad.loop.a): column 'parents_name': template cycle: "
        "bad.loop.a -> bad.loop.b -> bad.loop.a",
        f"t_profile_template id {broken} (bad.broken): column 'profile': line 3:",
        f"t_server_conf id {image} (Bad.ImageServer): column 'base_image_id': no t_base_image "
        "row with id 999999",
        f"t_adapter_conf id {bad_ep} (Bad.EndpointServer): column 'endpoint': "
        "'tcp -h 10.0.2.1 -p x': -p needs an integer",
        f"t_server_conf id {text} (Bad.TextServer): column 'set_name': 's.z' is not a set part",
        f"t_server_conf id {text} (Bad.TextServer): column 'exe_path': \"bin/my server\" may "
        "hold only",
        f"t_server_conf id {text} (Bad.TextServer): column 'profile': line 2:",
        f"t_adapter_conf id {bad_protocol} (Bad.TextServer): column 'protocol': 'http' is not "
        "tars or not_tars",
    ]
    for line in expected:
        assert line in stderr, f"missing {line!r} in:\n{stderr}"
    assert f"id {orphan} (Bad.OrphanServer)" not in stderr   # the bad row is the template's
    assert f"id {ep} (Bad.EndpointServer)" not in stderr     # its own row is fine
    assert not out.exists()


def test_unsupported_columns_warn_naming_the_row(tars_db: MariaDB, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    node, out = "10.0.3.1", tmp_path / "conf"
    add_node(tars_db, node)
    row = add_server(tars_db, node, "Warn.ScriptServer", start_script_path="/opt/start.sh",
                     stop_script_path="stop.sh", base_path="/opt/warn",
                     monitor_script_path="monitor.sh", config_center_port=9000,
                     exe_path="sub/WarnBin")
    adapter_row = add_adapter(tars_db, node, "Warn.ScriptServer", "WObjAdapter",
                              "tcp -h 10.0.3.1 -p 20950", handlegroup="g1", queuecap=None)
    code, _, stderr = run(tars_db, node, out, capsys=capsys)
    assert code == 0, stderr
    at = f"warning: t_server_conf id {row} (Warn.ScriptServer): column"
    assert f"{at} 'start_script_path': '/opt/start.sh' is ignored" in stderr
    assert f"{at} 'stop_script_path': 'stop.sh' is ignored" in stderr
    assert f"{at} 'base_path': '/opt/warn' is ignored" in stderr
    assert f"{at} 'monitor_script_path': 'monitor.sh' is ignored" in stderr
    assert f"{at} 'config_center_port': 9000 is ignored" in stderr
    # exe_path relative to the bin dir is the manifest's exe; tarsnode's ${basepath} would be the
    # dir of that file (CommandLoad::execute)
    assert f"{at} 'exe_path': tarsnode's ${{basepath}} would be " \
        f"{DATA}/Warn.ScriptServer/bin/sub/; tarsdock's is {DATA}/Warn.ScriptServer/bin/" in stderr
    table = tomllib.loads((out / "services.d" / "Warn.ScriptServer.toml").read_text())
    assert table["services"]["Warn.ScriptServer"]["exe"] == "sub/WarnBin"
    at = f"warning: t_adapter_conf id {adapter_row} (Warn.ScriptServer): column"
    assert f"{at} 'handlegroup': 'g1' is ignored" in stderr
    assert f"{at} 'queuecap': NULL (tarsnode would write 0 or nothing); tarsdock's default " \
        "10000 is used" in stderr


def test_database_errors_are_clear(tars_db: MariaDB, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conf"
    assert main(["import", "--tars-db", f"mysql://{USER}:pw@127.0.0.1:{tars_db.port}/db_tars",
                 "--node", "x", "--out", str(out)]) == 1
    assert "put the password in --password-file" in capsys.readouterr().err
    assert main(["import", "--tars-db", f"mysql://{USER}@127.0.0.1:{tars_db.port}/db_tars",
                 "--node", "x", "--out", str(out)]) == 1
    assert f"cannot connect to mysql://{USER}@127.0.0.1:{tars_db.port}/db_tars: Access denied" \
        in capsys.readouterr().err
    code, _, stderr = run(tars_db, "no.such.node", out, capsys=capsys)
    assert code == 1 and "t_node_info: column 'node_name': no row for node 'no.such.node'" \
        in stderr
    assert not out.exists()


def test_mariadb_listens_on_loopback_only(tars_db: MariaDB) -> None:
    assert tars_db.sql("select @@bind_address as a", database=None)[0]["a"] == "127.0.0.1"
    assert os.path.exists(tars_db.socket)


def test_adapters_on_one_port_are_row_errors(tars_db: MariaDB, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    node, out = "10.0.4.1", tmp_path / "conf"
    add_node(tars_db, node)
    add_server(tars_db, node, "Clash.AServer")
    add_server(tars_db, node, "Clash.BServer")
    first = add_adapter(tars_db, node, "Clash.AServer", "AObjAdapter", "tcp -h 0.0.0.0 -p 20960")
    second = add_adapter(tars_db, node, "Clash.BServer", "BObjAdapter",
                         "tcp -h 10.0.4.1 -p 20960")
    code, _, stderr = run(tars_db, node, out, capsys=capsys)
    assert code == 1
    assert (f"t_adapter_conf id {second} (Clash.BServer): column 'endpoint': 10.0.4.1:20960 is "
            f"already used by t_adapter_conf id {first} (Clash.AServer.AObjAdapter)") in stderr
    assert not out.exists()


def test_config_that_does_not_validate_writes_nothing(tars_db: MariaDB, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    node, out = "10.0.4.2", tmp_path / "conf"
    add_node(tars_db, node)
    add_template(tars_db, "bad.container", "tars.default",
                 "<tars>\n<application>\n<container>\nmemroy=1g\n</container>\n</application>\n"
                 "</tars>\n")
    add_server(tars_db, node, "Invalid.OneServer", template_name="bad.container")
    code, _, stderr = run(tars_db, node, out, capsys=capsys)
    assert code == 1
    assert f"the config import would write to {out} does not validate; nothing was written" \
        in stderr
    assert "templates/bad.container:4: key 'memroy'" in stderr
    assert not out.exists()


def test_framework_rows_of_tars_servers_sql(tars_db: MariaDB, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The installer's own rows (node localip.tars.com): five C++ services, absolute exe paths."""
    # the installer's parent of tars.tarsregistry is tars.framework-db (DB credentials; not in
    # ../shared): tars.default stands in
    add_template(tars_db, "tars.tarsregistry", "tars.default",
                 (SHARED_TEMPLATES / "tars.tarsregistry").read_text())
    for name in ("tars.tarsqueryproperty", "tars.tarsconfig", "tars.tarsnotify",
                 "tars.tarsquerystat"):
        add_template(tars_db, name, "", "<tars>\n</tars>\n")   # no parent: a root of its own
    out = tmp_path / "conf"
    code, stdout, stderr = run(tars_db, "localip.tars.com", out, capsys=capsys)
    assert code == 0, stderr
    assert "imported 5 services" in stdout
    assert (f"t_server_conf id 1 (tars.tarsregistry): column 'exe_path': tarsnode's "
            f"${{basepath}} would be {TARS}/tarsregistry/bin/") in stderr
    text = config_of(out, "tars.tarsregistry", capsys)
    # adapters from the last name to the first, as tarsnode inserts them
    assert text.index("<tars.tarsregistry.RegistryObjAdapter>") < \
        text.index("<tars.tarsregistry.QueryObjAdapter>")
    assert "endpoint=tcp -h localip.tars.com -p 17890 -t 60000\n" in text
    assert "<container>\n    socket=/var/run/docker.sock\n    timeout=300\n  </container>" in text
    assert tomllib.loads((out / "node.toml").read_text())["templates"]["tars.tarsconfig"] == \
        {"parent": "tars.tarsconfig"}
    # an empty parents_name makes a root (tarsregistry's getProfileTemplate): no tars.default
    assert config_of(out, "tars.tarsconfig", capsys) == "\n".join([
        "<tars>", "  <application>", "    <server>", f"      {NODE_LINE}",
        *(f"      {line}" for line in adapter(
            "tars.tarsconfig.ConfigObjAdapter", allow="",
            endpoint="tcp -h localip.tars.com -p 18193 -t 60000", maxconns="200000",
            protocol="tars", queuecap="100000", queuetimeout="60000",
            servant="tars.tarsconfig.ConfigObj", threads="10")),
        "    </server>", "  </application>", "</tars>", ""])


def test_reimport_keeps_node_settings_the_database_does_not_hold(
        tars_db: MariaDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node, out = "10.0.5.1", tmp_path / "conf"
    add_node(tars_db, node)
    image = insert(tars_db, "t_base_image", image="busybox:1")
    add_server(tars_db, node, "Keep.OneServer", run_type="container", base_image_id=image)
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    text = (out / "node.toml").read_text()
    text = text.replace('locator = ', 'supervisor = "systemd"\nnetwork = "bridge"\nlocator = ')
    text = text.replace('ref = "busybox:1"', 'ref = "busybox:1"\npull = "always"')
    (out / "node.toml").write_text(text)
    tars_db.sql("update t_node_info set endpoint_ip = '10.0.5.9' where node_name = %s", (node,))
    code, _, stderr = run(tars_db, node, out, capsys=capsys)
    assert code == 0, stderr
    settings = tomllib.loads((out / "node.toml").read_text())
    assert settings["node"]["localip"] == "10.0.5.9"     # the database's, updated
    assert (settings["node"]["supervisor"], settings["node"]["network"]) == ("systemd", "bridge")
    assert settings["images"][f"image-{image}"] == {"ref": "busybox:1", "pull": "always"}


def test_reimport_keeps_the_operators_own_tables_and_refuses_to_drop_the_rest(
        tars_db: MariaDB, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tables of the operator's own in node.toml are written back; what cannot be (a services
    table, a list) is an error at its line, and nothing is written."""
    node, out = "10.0.5.2", tmp_path / "conf"
    add_node(tars_db, node)
    image = insert(tars_db, "t_base_image", image="busybox:1")
    add_server(tars_db, node, "Own.OneServer", run_type="container", base_image_id=image)
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    own = ('\n[images.mine]\nref = "busybox:2"\npull = "always"\n'
           '\n[templates."my.base"]\nparent = "tars.default"\n')
    (out / "node.toml").write_text((out / "node.toml").read_text() + own)
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    settings = tomllib.loads((out / "node.toml").read_text())
    assert settings["images"]["mine"] == {"ref": "busybox:2", "pull": "always"}
    assert settings["templates"]["my.base"] == {"parent": "tars.default"}
    assert settings["images"][f"image-{image}"] == {"ref": "busybox:1"}

    before = (out / "node.toml").read_text()
    extra = '\n[services."Hand.MadeServer"]\ntype = "tars_cpp"\n'
    (out / "node.toml").write_text(before + extra)
    line = len((before + "\n").splitlines()) + 1
    code, _, stderr = run(tars_db, node, out, capsys=capsys)
    assert code != 0
    assert f"{out / 'node.toml'}:{line}: " in stderr and 'services."Hand.MadeServer"' in stderr
    assert "would be dropped; move it to a services.d file" in stderr
    assert (out / "node.toml").read_text() == before + extra   # nothing written


def test_a_password_file_goes_with_its_registry(tars_db: MariaDB, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Once no image of the node names the registry, its password leaves the host; the diff
    that says so never shows it."""
    node, out = "10.0.5.3", tmp_path / "conf"
    add_node(tars_db, node)
    registry = insert(tars_db, "t_docker_registry", registry="https://reg.example.com:5000",
                      username="deploy", password="gone-pw-1")
    image = insert(tars_db, "t_base_image", image="reg.example.com:5000/a:1", registryId=registry)
    add_server(tars_db, node, "Pw.OneServer", run_type="container", base_image_id=image)
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    secret = out / "secrets" / f"registry-{registry}"
    assert secret.read_text() == "gone-pw-1"
    tars_db.sql("update t_base_image set image = 'busybox:1', registryId = 0 where id = %s",
                (image,))
    code, shown, _ = run(tars_db, node, out, "--diff", capsys=capsys)
    assert code == 0 and "gone-pw-1" not in shown
    assert f"password file {secret}: stale (content not shown)" in shown
    assert secret.exists()   # --diff writes nothing
    assert run(tars_db, node, out, capsys=capsys)[0] == 0
    assert not secret.exists()
    assert "registries" not in tomllib.loads((out / "node.toml").read_text())


def test_out_that_is_a_file_is_the_environments_fault(tars_db: MariaDB, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """As for generate: one line, exit 5 (README, exit statuses), nothing read or written."""
    out = tmp_path / "conf"
    out.write_text("not a dir\n")
    code, stdout, stderr = run(tars_db, "10.0.0.5", out, capsys=capsys)
    assert (code, stdout, stderr) == (5, "", f"error: {out}: --out is not a directory\n")
    assert out.read_text() == "not a dir\n"
