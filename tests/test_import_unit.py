"""`tarsdock import` without a database: URL parsing, the mapping rules, the TOML it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import make_service

from tarsdock import systemd
from tarsdock.errors import InputErrors, Origin
from tarsdock.importcmd import validate
from tarsdock.importmap import exe_dir, import_node, strto_int
from tarsdock.importtoml import render, toml_string, toml_text
from tarsdock.records import replace
from tarsdock.tarsdb import (
    DatabaseError,
    DbUrl,
    TarsRows,
    fetch,
    parse_url,
    read_password,
    read_tars_db,
)

NODE = "10.0.0.5"
NODE_INFO = {"id": 1, "node_name": NODE, "endpoint_ip": NODE,
             "data_dir": "/usr/local/app/tars/tarsnode/data"}
LOCATOR = {"id": 1, "servant": "tars.tarsregistry.QueryObj",
           "endpoint": "tcp -h 10.0.0.1 -t 60000 -p 17890"}
DEFAULT = {"id": 1, "template_name": "tars.default", "parents_name": "",
           "profile": "<tars>\n</tars>\n"}


def server(id: int = 1, name: str = "Hello.HelloServer", **columns: Any) -> dict[str, Any]:
    app, srv = name.split(".")
    return {"id": id, "application": app, "server_name": srv, "node_name": NODE,
            "server_type": "tars_cpp", "template_name": "tars.default", "profile": None,
            "exe_path": "", "run_type": "", "base_image_id": 0, "enable_set": "N",
            "set_name": None, "set_area": None, "set_group": None, "async_thread_num": 3,
            "setting_state": "active", "start_script_path": None, "stop_script_path": None,
            "monitor_script_path": None, "base_path": "", "config_center_port": 0, **columns}


def rows(*servers: dict[str, Any], **tables: Any) -> TarsRows:
    base: dict[str, Any] = {"node_info": [NODE_INFO], "templates": [DEFAULT],
                            "locators": [LOCATOR]}
    return TarsRows(NODE, servers=list(servers), **{**base, **tables})


@pytest.mark.parametrize(("url", "expected"), [
    ("mysql://tars@db.example.com:3307/db_tars", DbUrl("tars", "db.example.com", 3307, "db_tars")),
    ("mysql://tars@127.0.0.1/db_tars", DbUrl("tars", "127.0.0.1", 3306, "db_tars")),
    ("mariadb://a%40b@h/db", DbUrl("a@b", "h", 3306, "db")),
])
def test_url(url: str, expected: DbUrl) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(("url", "problem"), [
    ("mysql://tars:secret@h/db_tars", "put the password in --password-file"),
    ("postgres://tars@h/db_tars", "expected mysql://"),
    ("mysql://h/db_tars", "expected mysql://"),
    ("mysql://tars@h/", "expected mysql://"),
    ("mysql://tars@h:port/db", "the port is not a number"),
])
def test_bad_url(url: str, problem: str) -> None:
    with pytest.raises(DatabaseError, match=problem):
        parse_url(url)


def test_fetch_asks_for_the_node_and_the_registry_servant() -> None:
    asked: list[tuple[str, tuple[Any, ...]]] = []

    def query(sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        asked.append((sql, args))
        return []

    fetch(query, NODE)
    assert any("from t_server_conf where node_name = %s" in sql and args == (NODE,)
               for sql, args in asked)
    assert any(args == ("tars.tarsregistry.QueryObj",) for _, args in asked)
    assert any("from t_profile_template order by id" in sql and not args for sql, args in asked)
    assert any(sql == "select node_name from t_node_info order by node_name" and not args
               for sql, args in asked)


def test_a_node_not_in_the_database_gets_a_did_you_mean() -> None:
    nodes = [{"node_name": "10.0.0.5"}, {"node_name": "10.1.7.9"}]
    with pytest.raises(InputErrors, match=r"^t_node_info: column 'node_name': no row for node "
                       r"'10\.0\.0\.55', did you mean '10\.0\.0\.5'\?$"):
        import_node(TarsRows("10.0.0.55", servers=[], node_info=[], nodes=nodes,
                             templates=[DEFAULT], locators=[LOCATOR]))


@pytest.mark.parametrize(("kind", "column", "profile", "expected"), [
    ("tars_cpp", 1, None, 3),           # max(column, 3)
    ("tars_cpp", 7, None, 7),
    ("tars_nodejs", 0, None, 0),        # tars_nodejs defaults to 0
    ("tars_nodejs", None, None, 0),     # NULL reads as 0
    ("tars_cpp", 7, "<tars>\n<application>\n<client>\nasyncthread=2\n</client>\n"
     "</application>\n</tars>\n", 2),   # the profile wins
])
def test_async_thread(kind: str, column: int | None, profile: str | None, expected: int) -> None:
    node = import_node(rows(server(server_type=kind, async_thread_num=column, profile=profile)))
    assert node.services[0].async_thread == expected


def test_strto_int_is_tarscpps() -> None:
    assert [strto_int(v) for v in ("12", " 7x", "x", "-3", "")] == [12, 7, 0, -3, 0]


def test_exe_dir_as_tarsnode() -> None:
    d = "/t/tarsnode/data/A.B"
    assert exe_dir(d, "", "tars_cpp") == f"{d}/bin"
    assert exe_dir(d, "sub/B", "tars_cpp") == f"{d}/bin/sub"
    assert exe_dir(d, "/opt/x/B", "tars_cpp") == "/opt/x"
    assert exe_dir(d, "/opt/java/bin/java", "tars_java") == f"{d}/bin"


def test_locator_from_registry_adapters_or_option() -> None:
    assert import_node(rows(server())).locator == \
        "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890 -t 60000"
    assert import_node(rows(server()), locator="X.Y.Z@tcp -h 1.2.3.4 -p 1").locator == \
        "X.Y.Z@tcp -h 1.2.3.4 -p 1"
    with pytest.raises(InputErrors, match="give the node's locator with --locator"):
        import_node(rows(server(), locators=[]))


def test_registry_password_without_user_is_a_warning() -> None:
    node = import_node(rows(server(base_image_id=4),
                            images=[{"id": 4, "image": "busybox", "registryId": 2}],
                            registries=[{"id": 2, "registry": "docker.io", "username": "",
                                         "password": "x"}]))
    assert node.registries == {"registry-2": ("docker.io", "", "")}
    assert node.images == {"image-4": ("busybox", "registry-2")}
    assert any("t_docker_registry id 2: column 'password'" in w for w in node.warnings)


def test_errors_sort_by_table_then_numeric_id() -> None:
    bad = [server(id=i, name=f"A.S{i}", server_type="") for i in (10, 9, 2)]
    with pytest.raises(InputErrors) as caught:
        import_node(rows(*bad))
    assert [line.split(":")[0] for line in str(caught.value).splitlines()] == [
        "t_server_conf id 2 (A.S2)", "t_server_conf id 9 (A.S9)", "t_server_conf id 10 (A.S10)"]


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_toml_text_round_trips(value: str) -> None:
    assert tomllib.loads(f"v = {toml_text(value)}\n")["v"] == value
    assert tomllib.loads(f"v = {toml_string(value)}\n")["v"] == value


def test_disabled_service_not_wanted_by_tars_target() -> None:
    on, off = make_service("A.On"), make_service("A.Off")
    off = replace(off, spec=replace(off.spec, enabled=False))
    wants = dict(systemd.target_rows([on.spec, off.spec])[0][1])["Wants"]
    assert "tars-A.On.service" in str(wants) and "tars-A.Off.service" not in str(wants)


@pytest.mark.parametrize(("registry", "image", "url"), [
    ("https://index.docker.io/v1/", "tarscloud/tars.cppbase:v3", "docker.io"),
    ("hub.docker.com", "busybox", "docker.io"),
    ("http://127.0.0.1:5000/", "127.0.0.1:5000/base:1", "127.0.0.1:5000"),
])
def test_registry_urls(registry: str, image: str, url: str) -> None:
    node = import_node(rows(server(base_image_id=4),
                            images=[{"id": 4, "image": image, "registryId": 2}],
                            registries=[{"id": 2, "registry": registry, "username": "u",
                                         "password": "p"}]))
    assert node.registries == {"registry-2": (url, "u", "p")}


def test_registry_for_another_host_is_an_error() -> None:
    with pytest.raises(InputErrors, match=r"t_base_image id 4: column 'registryId': "
                       r"t_docker_registry id 2 is for r.example.com, but this image is pulled "
                       r"from docker.io"):
        import_node(rows(server(base_image_id=4),
                         images=[{"id": 4, "image": "busybox", "registryId": 2}],
                         registries=[{"id": 2, "registry": "r.example.com", "username": "u",
                                      "password": "p"}]))


WORDS = st.sampled_from([
    "", "x", "a b", "a.b", "*", "1", "-1", "/abs/path", "rel/p", "..", "\n", "é", "'''", "a'",
    "tars", "not_tars", "container", "native", "Y", "n", "inactive", "tars_java", "tars_nodejs",
    "tars_go", "not_tars", "tars.default", "tcp -h 1.2.3.4 -p 80 -t 10", "udp -h x -p 9",
    "<tars>\n</tars>", "k=\\q", "<tars>\n<application>\n<client>\nasyncthread=x\n</client>\n"
    "</application>\n</tars>", "A.B.C", "Hello.HelloServer.Obj", "Hello.HelloServer.XAdapter"])
INTS = st.one_of(st.none(), st.integers(-2, 70000))


def column(default: str) -> st.SearchStrategy[str]:
    """Mostly the valid default, else a word that is often wrong for the column."""
    return st.one_of(st.just(default), WORDS)


SERVER_COLUMNS = {"server_type": "tars_cpp", "template_name": "tars.default", "profile": "",
                  "exe_path": "", "run_type": "", "enable_set": "N", "set_name": "sz",
                  "set_area": "a", "set_group": "1", "start_script_path": "",
                  "setting_state": "active"}
ADAPTER_COLUMNS = {"endpoint": "tcp -h 10.0.0.5 -p 20000", "servant": "Hello.HelloServer.Obj",
                   "adapter_name": "Hello.HelloServer.ObjAdapter", "protocol": "tars",
                   "allow_ip": "", "handlegroup": ""}


# derandomized: a rule added to validation that import does not mirror fails every run
@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.fixed_dictionaries({k: column(v) for k, v in SERVER_COLUMNS.items()}),
       st.fixed_dictionaries({k: column(v) for k, v in ADAPTER_COLUMNS.items()}),
       st.fixed_dictionaries({k: INTS for k in ("thread_num", "max_connections", "queuecap",
                                                "queuetimeout", "async_thread_num")}))
def test_rows_either_fail_by_row_or_validate(server_columns: dict[str, str],
                                             adapter_columns: dict[str, str],
                                             numbers: dict[str, int | None]) -> None:
    """Whatever the rows hold: row errors, or a config dir that validates (never a crash)."""
    adapter = {"id": 5, "application": "Hello", "server_name": "HelloServer", "node_name": NODE,
               **adapter_columns, **{k: v for k, v in numbers.items() if k != "async_thread_num"}}
    try:
        node = import_node(rows(server(**server_columns,
                                       async_thread_num=numbers["async_thread_num"]),
                                adapters=[adapter]))
    except InputErrors as errors:
        assert all(str(e).startswith("t_") for e in errors.errors)
        return
    out = Path("/nonexistent/out")
    assert validate(render(node, "test", out), out) == 1


def test_only_files_import_wrote_become_stale(tmp_path: Path) -> None:
    from tarsdock.importcmd import plan_files

    services = tmp_path / "services.d"
    services.mkdir()
    node = import_node(rows(server(name="Now.HereServer")))
    gone = import_node(rows(server(name="Gone.AwayServer")))
    (services / "Gone.AwayServer.toml").write_text(render(gone, "t", tmp_path)[1].content)
    (services / "Mine.OwnServer.toml").write_text('[services."Mine.OwnServer"]\n')
    kinds = {c.path.name: c.kind for c in plan_files(render(node, "t", tmp_path), tmp_path)}
    assert kinds["Gone.AwayServer.toml"] == "stale"
    assert kinds["Now.HereServer.toml"] == "new"
    assert "Mine.OwnServer.toml" not in kinds


MY_BASE = {"id": 2, "template_name": "my.base", "parents_name": "tars.default",
           "profile": "<tars>\n</tars>\n"}


def write_import(node: Any, out: Path) -> None:
    """What `tarsdock import` writes, written."""
    for file in render(node, "t", out):
        file.path.parent.mkdir(parents=True, exist_ok=True)
        file.path.write_text(file.content)


def test_a_template_of_the_users_own_is_never_replaced(tmp_path: Path) -> None:
    """Template files carry no header: templates/.imported tells import's own from the user's."""
    from tarsdock.importcmd import import_into

    write_import(import_node(rows(server())), tmp_path)
    assert (tmp_path / "templates" / ".imported").read_text().splitlines()[1:] == ["tars.default"]
    (tmp_path / "templates" / "my.base").write_text("<tars>\n<mine/>\n</tars>\n")
    grown = rows(server(template_name="my.base"), templates=[DEFAULT, MY_BASE])
    with pytest.raises(InputErrors) as raised:
        import_into(grown, "", tmp_path)
    [error] = raised.value.errors
    assert error.origin.path == str(tmp_path / "templates" / "my.base")
    assert "import did not write this template" in error.message
    assert "t_profile_template 'my.base'" in error.message
    (tmp_path / "templates" / "my.base").unlink()
    node, _ = import_into(grown, "", tmp_path)   # gone: import may write it
    assert sorted(node.templates) == ["my.base", "tars.default"]


def test_without_a_record_same_named_templates_are_imports_own(tmp_path: Path) -> None:
    """An import by a tarsdock before the record wrote templates without one: still replaced."""
    from tarsdock.importcmd import import_into

    write_import(import_node(rows(server())), tmp_path)
    (tmp_path / "templates" / ".imported").unlink()
    (tmp_path / "templates" / "my.base").write_text("<tars>\n</tars>\n")
    node, _ = import_into(rows(server(template_name="my.base"), templates=[DEFAULT, MY_BASE]),
                          "", tmp_path)
    assert "my.base" in node.templates


def test_templates_gone_from_the_database_are_removed_the_users_kept(tmp_path: Path) -> None:
    from tarsdock.importcmd import kept_files, plan_files

    write_import(import_node(rows(server(template_name="my.base"),
                                  templates=[DEFAULT, MY_BASE])), tmp_path)
    (tmp_path / "templates" / "mine").write_text("<tars>\n</tars>\n")
    files = render(import_node(rows(server())), "t", tmp_path)
    kinds = {c.path.name: c.kind for c in plan_files(files, tmp_path)}
    assert kinds["my.base"] == "stale" and kinds["tars.default"] == "unchanged"
    assert kinds[".imported"] == "changed" and "mine" not in kinds
    kept = kept_files(files, tmp_path)
    assert tmp_path / "templates" / "mine" in kept
    assert tmp_path / "templates" / "my.base" not in kept


def test_java_without_mainclass_is_a_row_error() -> None:
    java = {"id": 2, "template_name": "java.base", "parents_name": "tars.default",
            "profile": "<tars>\n<application>\n<server>\nmainclass=a.B\n</server>\n"
                       "</application>\n</tars>\n"}
    ok = import_node(rows(server(server_type="tars_java", template_name="java.base"),
                          templates=[DEFAULT, java]))
    assert ok.services[0].type == "tars_java"
    unset = "<tars>\n<application>\n<server>\nmainclass=\n</server>\n</application>\n</tars>\n"
    with pytest.raises(InputErrors, match=r"t_server_conf id 1 \(Hello.HelloServer\): column "
                       r"'template_name': a tars_java service needs server<mainclass>"):
        import_node(rows(server(server_type="tars_java", template_name="java.base",
                                profile=unset), templates=[DEFAULT, java]))


def test_profile_with_a_byte_order_mark_is_one_row_error() -> None:
    """TC_Config::parse (TarsCpp util/src/tc_config.cpp) trims only blanks and line ends: a BOM
    turns `<tars>` into a parameter line and the closing tag then throws. One error that says so,
    not the two parse errors it causes."""
    bom = {"id": 2, "template_name": "my.base", "parents_name": "tars.default",
           "profile": "\ufeff<tars>\n<application>\n</application>\n</tars>\n"}
    with pytest.raises(InputErrors) as raised:
        import_node(rows(server(template_name="my.base"), templates=[DEFAULT, bom]))
    assert [str(e) for e in raised.value.errors] == [
        "t_profile_template id 2 (my.base): column 'profile': line 1: starts with a UTF-8 "
        "byte-order mark (U+FEFF); TarsCpp's TC_Config reads it as part of the first line and "
        "cannot parse the profile: remove it"]


@pytest.mark.parametrize(("text", "line", "problem"), [
    (b'[node]\nname = "a"\nname = "b"\n', 3, "key 'name': written twice in [node]"),
    (b'[node]\nname = "a\n', 2, "TOML syntax error"),
    (b"\xef\xbb\xbf[node]\n", 1, "byte-order mark"),
    (b'[node]\nname = "\xff"\n', 2, "not UTF-8"),
])
def test_former_node_toml_that_does_not_parse_is_an_error(tmp_path: Path, text: bytes, line: int,
                                                         problem: str) -> None:
    """Its settings the database does not hold (supervisor, network, ...) would be dropped."""
    from tarsdock.errors import InputError
    from tarsdock.importcmd import former_node

    assert former_node(tmp_path) == {}   # no node.toml yet: nothing to keep
    (tmp_path / "file").write_text("")
    assert former_node(tmp_path / "file") == {}   # --out a file: writing will say so
    (tmp_path / "node.toml").write_bytes(text)
    with pytest.raises(InputError) as raised:
        former_node(tmp_path)
    assert raised.value.origin == Origin(str(tmp_path / "node.toml"), line)
    assert problem in raised.value.message and "nothing was written" in raised.value.message


def test_own_services_files_are_never_replaced_or_duplicated(tmp_path: Path) -> None:
    """And the problems of --out come with those of the rows, all together."""
    from tarsdock.importcmd import import_into

    good = rows(server(name="Hello.HelloServer"), server(id=2, name="Own.Server"),
                server(id=3, name="Twice.Server"))
    services = tmp_path / "services.d"
    services.mkdir()
    for file in render(import_node(good), "t", tmp_path)[1:]:   # import's own: to replace
        if file.path.parent == services:
            file.path.write_text(file.content)
    (services / "Own.Server.toml").write_text('[services."Own.Server"]\ntype = "tars_cpp"\n')
    (services / "mine.toml").write_text('[services."Twice.Server"]\n[services."Mine.Other"]\n')
    (tmp_path / "node.toml").write_text("[node\n")
    with pytest.raises(InputErrors) as raised:
        import_into(good, "", tmp_path)
    assert [(e.origin, e.message.split(",")[0].split(":")[0]) for e in raised.value.errors] == [
        (Origin(str(tmp_path / "node.toml"), 1), "TOML syntax error"),
        (Origin(str(services / "Own.Server.toml"), 0), "import did not write this file"),
        (Origin(str(services / "mine.toml"), 0), "declares service 'Twice.Server'"),   # only it
    ]
    bad = rows(server(name="Hello.HelloServer", server_type="tars_x"))
    with pytest.raises(InputErrors) as raised:
        import_into(bad, "", tmp_path)
    assert [e.origin.path for e in raised.value.errors] == [
        str(tmp_path / "node.toml"), "t_server_conf"]   # the row's error too
    (tmp_path / "node.toml").unlink()
    (services / "Own.Server.toml").unlink()
    (services / "mine.toml").unlink()
    node, former = import_into(good, "", tmp_path)
    assert (len(node.services), former) == (3, {})


def test_names_match_as_mysql_compares_them() -> None:
    """tarsregistry joins t_adapter_conf to t_server_conf and finds templates in SQL, where
    db_tars's utf8_general_ci ignores case and trailing blanks (CDbHandle::getServers,
    getProfileTemplate): tarsnode gets this adapter and these templates, so import does too."""
    leaf = {"id": 2, "template_name": "my.leaf", "parents_name": "TARS.default ",
            "profile": "<tars>\n</tars>\n"}
    adapter = {"id": 5, "application": "hello", "server_name": "HELLOSERVER ",
               "node_name": NODE, "adapter_name": "Hello.HelloServer.ObjAdapter",
               "endpoint": "tcp -h 10.0.0.5 -p 20001 -t 60000", "servant": "Hello.HelloServer.Obj",
               "thread_num": 1, "max_connections": 10, "queuecap": 1, "queuetimeout": 1,
               "protocol": "tars", "allow_ip": "", "handlegroup": ""}
    node = import_node(rows(server(template_name="My.Leaf "), adapters=[adapter],
                            templates=[DEFAULT, leaf]))
    service = node.services[0]
    assert (service.template, [a.name for a in service.adapters]) == ("my.leaf", ["ObjAdapter"])
    assert node.templates["my.leaf"][0] == "tars.default"
    assert set(node.templates) == {"my.leaf", "tars.default"}
    out = Path("/nonexistent/out")
    assert validate(render(node, "test", out), out) == 1


@pytest.mark.parametrize("password", ["pw\n", "pw\r\n", "pw\r"])
def test_registry_password_ending_in_a_line_break_is_a_row_error(password: str) -> None:
    """The password file is read without its last line break (images.read_auth): this password
    would reach the registry changed."""
    with pytest.raises(InputErrors, match=r"^t_docker_registry id 2: column 'password': ends "
                       r"with a line break"):
        import_node(rows(server(base_image_id=4),
                         images=[{"id": 4, "image": "busybox", "registryId": 2}],
                         registries=[{"id": 2, "registry": "docker.io", "username": "u",
                                      "password": password}]))
    inner = import_node(rows(server(base_image_id=4),
                             images=[{"id": 4, "image": "busybox", "registryId": 2}],
                             registries=[{"id": 2, "registry": "docker.io", "username": "u",
                                          "password": "p\nw"}]))
    assert inner.registries == {"registry-2": ("docker.io", "u", "p\nw")}


def test_validate_sees_what_import_keeps_of_the_out_dir(tmp_path: Path) -> None:
    """The config dir after the import: the user's own service (with its own template and
    profile_file) validates beside the imported ones, and an imported adapter that now takes the
    user's port is refused before anything is written."""
    from tarsdock.importcmd import kept_files

    adapter = {"id": 5, "application": "Hello", "server_name": "HelloServer", "node_name": NODE,
               "adapter_name": "Hello.HelloServer.ObjAdapter", "endpoint":
               "tcp -h 10.0.0.5 -p 20001 -t 60000", "servant": "Hello.HelloServer.Obj",
               "thread_num": 1, "max_connections": 10, "queuecap": 1, "queuetimeout": 1,
               "protocol": "tars", "allow_ip": "", "handlegroup": ""}
    before = import_node(rows(server(), server(id=2, name="Gone.Server")))
    for file in render(before, "t", tmp_path):
        file.path.parent.mkdir(parents=True, exist_ok=True)
        file.path.write_text(file.content)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p").write_text("<tars>\n</tars>\n")
    (tmp_path / "templates" / "my.own").write_text("<tars>\n</tars>\n")
    own = ('[services."My.Own"]\ntype = "tars_cpp"\ntemplate = "my.own"\nprofile_file = '
           '"profiles/p"\n\n[[services."My.Own".adapters]]\nname = "ObjAdapter"\nservant = '
           '"My.Own.Obj"\nendpoint = "tcp -h 10.0.0.5 -p 20001 -t 60000"\n')
    (tmp_path / "services.d" / "mine.toml").write_text(own)
    files = render(import_node(rows(server())), "t", tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in kept_files(files, tmp_path)] == [
        "profiles", "services.d/mine.toml", "templates/my.own"]   # not Gone.Server's file
    assert validate(files, tmp_path) == 2
    clash = render(import_node(rows(server(), adapters=[adapter])), "t", tmp_path)
    with pytest.raises(InputErrors, match=r"services.d/mine.toml:9: key 'endpoint': My.Own "
                       r"adapter ObjAdapter listens on 10.0.0.5:20001, already used by "
                       r"Hello.HelloServer"):
        validate(clash, tmp_path)


def test_node_is_named_as_its_row() -> None:
    """--node finds t_node_info and t_server_conf rows as MySQL compares names (case and trailing
    blanks ignored); the node keeps the name tarsnode registered with, the row's."""
    info = {**NODE_INFO, "node_name": "Node-A.example", "endpoint_ip": "10.0.0.5"}
    node = import_node(TarsRows("node-a.example ", servers=[server()], node_info=[info],
                                templates=[DEFAULT], locators=[LOCATOR]))
    assert node.name == "Node-A.example"
    out = Path("/nonexistent/out")
    assert 'name = "Node-A.example"' in render(node, "t", out)[0].content
    assert validate(render(node, "t", out), out) == 1


def test_not_tars_script_gets_the_server_id_and_a_warning() -> None:
    """Activator::doScript (TarsFramework NodeServer/Activator.cpp) runs
    `sh -c "SCRIPT App.Server &"`: the id is the script's argument; tarsdock runs it in the
    foreground as the service, which the warning says."""
    node = import_node(rows(server(server_type="not_tars", start_script_path="run.sh")))
    script = "/usr/local/app/tars/tarsnode/data/Hello.HelloServer/bin/run.sh"
    assert node.services[0].command == (script, "Hello.HelloServer")
    assert node.warnings == (
        "t_server_conf id 1 (Hello.HelloServer): column 'start_script_path': tarsnode runs "
        f"'{script} Hello.HelloServer &' and looks for the process it leaves; tarsdock runs the "
        "script as the service itself: it must be executable and stay in the foreground (exec "
        "the program)",)


def test_former_tables_import_wrote_go_with_their_rows_the_operators_stay() -> None:
    from tarsdock.importtoml import local_settings, node_toml, unkept

    former: dict[str, Any] = {
        "node": {"name": NODE, "supervisor": "systemd", "labels": ["x"]},
        "images": {"image-9": {"ref": "gone:1"}, "mine": {"ref": "own:1", "pull": "always"}},
        "registries": {"registry-4": {"url": "r.example"}, "corp": {"url": "c.example"}},
        "templates": {"old.one": {"parent": "tars.default"}, "my.base": {"parent": "x"}},
        "services": {"A.B": {"type": "tars_cpp"}}, "stray": 1}
    assert unkept(former) == [("node", "labels"), ("services", "A.B"), ("stray",)]
    record = {"tars.default", "old.one"}   # old.one: import wrote it, the database dropped it
    text = node_toml(import_node(rows(server())), "t", local_settings(former, record), record)
    written = tomllib.loads(text)
    assert written["node"]["supervisor"] == "systemd" and "labels" not in written["node"]
    assert written["images"] == {"mine": {"ref": "own:1", "pull": "always"}}
    assert written["registries"] == {"corp": {"url": "c.example"}}
    assert written["templates"] == {"tars.default": {"parent": "tars.default"},
                                    "my.base": {"parent": "x"}}


def test_registry_user_with_an_empty_password_is_a_row_error() -> None:
    """tarsnode logs in with the empty password (DockerPullThread::doPull, setAuthentication);
    a password file cannot be empty (manifest): the row is named, not a temp file of import's."""
    with pytest.raises(InputErrors, match=r"^t_docker_registry id 2: column 'password': empty, "
                       r"but username 'hub' is set"):
        import_node(rows(server(base_image_id=4),
                         images=[{"id": 4, "image": "busybox", "registryId": 2}],
                         registries=[{"id": 2, "registry": "docker.io", "username": "hub",
                                      "password": ""}]))


def test_validate_errors_name_the_out_dir_not_the_staging_dir(tmp_path: Path) -> None:
    """What validate finds in the staged copy is reported at the paths import would write."""
    node = import_node(rows(server(base_image_id=4),
                            images=[{"id": 4, "image": "busybox", "registryId": 2}],
                            registries=[{"id": 2, "registry": "docker.io", "username": "u",
                                         "password": "pw"}]))
    files = [f if f.path.name != "registry-2" else replace(f, content="")
             for f in render(node, "t", tmp_path)]
    with pytest.raises(InputErrors) as caught:
        validate(files, tmp_path)
    message = str(caught.value)
    assert f"password file '{tmp_path}/secrets/registry-2' is empty" in message, message
    assert "tarsdock-import." not in message


def test_a_database_that_does_not_answer_is_the_environments_fault(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 5 and one line, as apply when supervisord does not answer; what the server answers
    (access denied, no such database) stays an input error (exit 1)."""
    import socket

    import pymysql

    from tarsdock.cli import main
    from tarsdock.errors import EnvironmentFault
    from tarsdock.tarsdb import db_failure

    with socket.socket() as sock:   # a port of 127.0.0.1 that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"mysql://tars@127.0.0.1:{port}/db_tars"
    assert main(["import", "--tars-db", url, "--node", NODE, "--out", str(tmp_path / "o")]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url}: the database does not answer (Can't connect to MySQL "
                          "server on '127.0.0.1'") and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()
    db = DbUrl("tars", "::1", 3306, "db_tars")
    assert str(db) == "mysql://tars@[::1]:3306/db_tars"
    gone = db_failure(db, pymysql.err.OperationalError(2013, "Lost connection"), "reading")
    assert isinstance(gone, EnvironmentFault)
    denied = db_failure(db, pymysql.err.OperationalError(1045, "Access denied for 'tars'"), "x")
    assert isinstance(denied, DatabaseError) and str(denied) == "x: Access denied for 'tars'"


@pytest.mark.parametrize("given", ["foo", "tars.tarsregistry.QueryObj@tcp -h 1.2.3.4 -p x"])
def test_a_bad_locator_option_is_a_usage_error(given: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Named as the option, before the database is read (it was reported at a line of the
    node.toml import would have written)."""
    from tarsdock.cli import main

    code = main(["import", "--tars-db", "mysql://u@127.0.0.1:1/db_tars", "--node", NODE,
                 "--out", str(tmp_path / "o"), "--locator", given])
    err = capsys.readouterr().err
    assert code == 2 and f"argument --locator: {given!r}: " in err, err


def test_a_node_name_that_is_no_host_name_is_a_row_error() -> None:
    """node.toml's name must be a host name or IP: said of the row, not of a node.toml line."""
    info = {**NODE_INFO, "node_name": "node 1", "endpoint_ip": ""}
    with pytest.raises(InputErrors, match=r"^t_node_info id 1 \(node 1\): column 'node_name': "
                       r"'node 1' is not a host name or IP$"):
        import_node(TarsRows("node 1", servers=[server(node_name="node 1")], node_info=[info],
                             templates=[DEFAULT], locators=[LOCATOR]))
    with pytest.raises(InputErrors, match=r"^t_node_info id 1: column 'node_name': empty"):
        import_node(TarsRows("", servers=[server(node_name="")], templates=[DEFAULT],
                             node_info=[{**NODE_INFO, "node_name": "", "endpoint_ip": ""}],
                             locators=[LOCATOR]))
    info = {**NODE_INFO, "node_name": "Node-A", "endpoint_ip": ""}
    node = import_node(TarsRows("node-a ", servers=[server()], node_info=[info],
                                templates=[DEFAULT], locators=[LOCATOR]))
    assert (node.name, node.localip) == ("Node-A", "Node-A")   # the row's spelling, both


NODE_WORDS = st.sampled_from([
    "", "10.0.0.5", "node 1", "Node-A.example", "/usr/local/app/tars/tarsnode/data",
    "/usr/local/app/tars/tarsnode/data/", "/tarsnode/data", "rel/tarsnode/data", "a\nb", "é",
    "docker.io", "https://index.docker.io/v1/", "http://127.0.0.1:5000", "r.example.com:5000/x/y",
    "u", "u v", "p", "p w\n", "busybox", "Busybox:1", "r.example.com:5000/a:1", "a@b", "x:y:z"])


def node_column(default: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(default), NODE_WORDS)


NODE_COLUMNS = {"node_name": NODE, "endpoint_ip": NODE,
                "data_dir": "/usr/local/app/tars/tarsnode/data"}
REGISTRY_COLUMNS = {"registry": "r.example.com:5000", "username": "u", "password": "p"}


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.fixed_dictionaries({k: node_column(v) for k, v in NODE_COLUMNS.items()}),
       st.fixed_dictionaries({k: node_column(v) for k, v in REGISTRY_COLUMNS.items()}),
       node_column("r.example.com:5000/tars/cppbase:1"), st.sampled_from([0, 2, 3]))
def test_node_image_and_registry_rows_either_fail_by_row_or_validate(
        node_columns: dict[str, str], registry_columns: dict[str, str], image: str,
        registry: int) -> None:
    """The same for t_node_info, t_base_image and t_docker_registry (an empty password and a node
    name with a blank once failed validation at a line of node.toml instead)."""
    info = {"id": 1, **node_columns}
    try:
        node = import_node(TarsRows(
            NODE, servers=[server(run_type="container", base_image_id=4)], node_info=[info],
            templates=[DEFAULT], locators=[LOCATOR],
            images=[{"id": 4, "image": image, "registryId": registry}],
            registries=[{"id": 2, **registry_columns}]))
    except InputErrors as errors:
        assert all(str(e).startswith("t_") for e in errors.errors), str(errors)
        return
    out = Path("/nonexistent/out")
    assert validate(render(node, "test", out), out) == 1


@pytest.mark.parametrize(("raw", "problem"), [
    (b"\xef\xbb\xbfpw\n", "starts with a UTF-8 byte-order mark"),
    (b"p\xe4ss\n", "not UTF-8 text: byte 0xe4"),
    (b"pw\nsecond\n", "control character U+000A"),
])
def test_a_database_password_file_a_server_would_misread_is_one_line(
        raw: bytes, problem: str, tmp_path: Path) -> None:
    """Found by hand: a password file saved by Notepad (BOM) ended import in PyMySQL's traceback
    ('latin-1' codec can't encode '\\ufeff'); the registry password files' rules apply."""
    path = tmp_path / "db-password"
    path.write_bytes(raw)
    path.chmod(0o600)
    with pytest.raises(DatabaseError) as refused:
        read_password(path)
    message = str(refused.value)
    assert message.startswith(f"--password-file {path} ") and problem in message, message
    assert "registry" not in message, message


def test_a_database_password_file_that_cannot_be_read_names_the_cause(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError) as refused:
        read_password(tmp_path / "missing")
    assert str(refused.value) == (f"--password-file {tmp_path}/missing: cannot read it "
                                  "(No such file or directory)")


def test_a_database_password_beyond_latin_1_reaches_the_server_as_utf8(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyMySQL encodes a str password as Latin-1 (a traceback for '€'); the mariadb client sends
    the UTF-8 bytes, which is what the server hashed at `identified by` over a utf8mb4 link."""
    import pymysql

    path = tmp_path / "db-password"
    path.write_text("pä€ss\n", encoding="utf-8")
    path.chmod(0o600)
    given: dict[str, Any] = {}

    def refuse(**kwargs: Any) -> None:
        given.update(kwargs)
        raise pymysql.err.OperationalError(1045, "Access denied")

    monkeypatch.setattr(pymysql, "connect", refuse)
    with pytest.raises(DatabaseError, match="Access denied"):
        read_tars_db(parse_url("mysql://tars@127.0.0.1/db_tars"), read_password(path), NODE)
    assert given["password"] == "pä€ss".encode()


def test_an_error_in_an_imported_file_names_the_row_to_correct(tmp_path: Path) -> None:
    """A profile's $PATH env item was reported at services.d/Hello.HelloServer.toml:N, a file
    import never wrote and would overwrite (found by a fresh user): the row is named too."""
    from tarsdock.importcmd import import_sources

    profile = "<tars>\n<application>\n<server>\nenv=PATH=$PATH:/x\n</server>\n</application>\n" \
        "</tars>\n"
    node = import_node(rows(server(id=9, profile=profile)))
    with pytest.raises(InputErrors) as caught:
        validate(render(node, "t", tmp_path), tmp_path, import_sources(node))
    message = str(caught.value)
    assert "services.d/Hello.HelloServer.toml:" in message, message
    assert "key 'env'" in message and "(imported from t_server_conf id 9 (Hello.HelloServer): " \
        "correct the row and import again)" in message, message


@pytest.mark.parametrize(("allow", "problem"), [
    ("10.0.0.1<", "'10.0.0.1<': '<' cannot be written into a Tars config (TarsCpp throws)"),
    ("10.0.0.1 10.0.0.2", "'10.0.0.1 10.0.0.2' must not contain blanks"),
])
def test_an_allow_ip_the_config_cannot_carry_is_a_row_error(allow: str, problem: str) -> None:
    """tarsnode would write it into the service's config, where TarsCpp's reverse_parse throws
    on '<' and '>' (tc_config.cpp): refused at its row, as the manifest's `allow` is."""
    adapter = {"id": 5, "application": "Hello", "server_name": "HelloServer", "node_name": NODE,
               "adapter_name": "Hello.HelloServer.ObjAdapter", "endpoint":
               "tcp -h 10.0.0.5 -p 20001 -t 60000", "servant": "Hello.HelloServer.Obj",
               "thread_num": 1, "max_connections": 10, "queuecap": 1, "queuetimeout": 1,
               "protocol": "tars", "allow_ip": allow, "handlegroup": ""}
    with pytest.raises(InputErrors) as refused:
        import_node(rows(server(), adapters=[adapter]))
    assert str(refused.value) == ("t_adapter_conf id 5 (Hello.HelloServer): column 'allow_ip': "
                                  + problem)
