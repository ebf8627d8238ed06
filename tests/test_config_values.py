"""Manifest values written into a service's Tars config: each is carried exactly, or refused at
its line and key.

TarsCpp util/src/tc_config.cpp: TC_ConfigDomain::reverse_parse (tostr() writes every value with
it) throws on '<' and '>'; TC_ConfigDomain::setParamValue (TC_Config::parse reads each line with
it) trims the name and the value with " \\r\\n\\t" before parse() unescapes them. tcconfig.parse
is the reader that reads a config as TarsCpp does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tarsdock import tcconfig
from tarsdock.cli import main
from tarsdock.errors import InputErrors, Origin
from tarsdock.keys import ADAPTER_KEYS, IMAGE_KEYS, NODE_KEYS, SERVICE_KEYS, KeyRule
from tarsdock.resolve import MACRO_NAMES, load_node, macros
from tarsdock.tcconfig import Config

SERVICE = "Hello.HelloServer"
SERVER = "/tars/application/server"
# a template that writes every macro, so a value that reaches the config through one is seen
PROBE = "".join(["<tars>\n<application>\n<server>\n",
                 *(f"m_{name}=${{{name}}}\n" for name in sorted(MACRO_NAMES)),
                 "</server>\n</application>\n</tars>\n"])

# table -> key -> a value validate takes (a string key with in_config=True in keys.py)
VALID: dict[str, dict[str, str]] = {
    "node": {"name": "10.0.0.5", "localip": "10.0.0.6", "tars_path": "/usr/local/app/tars",
             "locator": "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"},
    "images": {"ref": "registry.example.com:5000/tars/cppbase:3"},
    "service": {"image": "base", "exe": "HelloServer", "set_division": "a.b.c",
                "main_class": "com.qq.hello.HelloServer"},
    "adapter": {"name": "HelloObjAdapter", "servant": f"{SERVICE}.HelloObj",
                "endpoint": "tcp -h 10.0.0.5 -p 20001 -t 60000", "protocol": "tars",
                "allow": "10.0.0.1"},
}
TABLES: dict[str, dict[str, KeyRule]] = {
    "node": NODE_KEYS, "images": IMAGE_KEYS, "service": SERVICE_KEYS, "adapter": ADAPTER_KEYS}
# what each table's line starts the table with
HEADERS = {"node": "[node]", "images": "[images.base]", "service": f'[services."{SERVICE}"]',
           "adapter": f'[[services."{SERVICE}".adapters]]'}
# the macro a key's value reaches the config through, where it is that value exactly
MACRO_OF = {("node", "name"): "nodename", ("node", "localip"): "localip",
            ("node", "locator"): "locator", ("service", "exe"): "exe",
            ("service", "set_division"): "setdivision", ("service", "main_class"): "mainclass"}
EMPTY_SHOWN = {("node", "localip"): VALID["node"]["name"], ("service", "set_division"): "NULL"}
CASES = [(table, key) for table, keys in VALID.items() for key in keys]


def basic(text: str) -> str:
    """A TOML basic string; json escapes all but DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def node_toml(table: str, key: str, value: str) -> tuple[str, int]:
    """A node.toml with `value` at the table's key (every other key valid), and that line."""
    lines: list[str] = []
    where = 0
    for name, values in VALID.items():
        lines.append(HEADERS[name])
        if name == "service":
            lines += ['type = "tars_cpp"', 'template = "probe"', "local_port = 30001"]
        for k, v in values.items():
            if (name, k) == (table, key):
                where = len(lines) + 1
                v = value
            lines.append(f"{k} = {basic(v)}")
    return "\n".join(lines) + "\n", where


def write_node(root: Path, table: str, key: str, value: str) -> int:
    """The config dir with `value` at the key; the key's line in node.toml."""
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "probe").write_text(PROBE, encoding="utf-8")
    text, line = node_toml(table, key, value)
    (root / "node.toml").write_text(text, encoding="utf-8")
    return line


def values(config: Config, path: str = "") -> dict[str, str]:
    """Every parameter of a tree by its path, `/a/b<key>`."""
    found = {f"{path}<{key}>": param.value for key, param in config.params.items()}
    for name, sub in config.domains.items():
        found |= values(sub, f"{path}/{name}")
    return found


def check_value(root: Path, table: str, key: str, value: str) -> None:
    """The property: validate refuses the value at its line and key, or the config written
    reads back (as TarsCpp reads it) to the tree tarsdock made, holding the value exactly."""
    line = write_node(root, table, key, value)
    try:
        node = load_node(root)
    except InputErrors as refused:
        assert any(e.origin == Origin("node.toml", line) and e.key == key
                   for e in refused.errors), str(refused)
        return
    (service,) = node.services
    written = tcconfig.serialize(service.config)
    back = tcconfig.parse(written, "written")
    assert values(back) == values(service.config), written
    if table == "adapter":
        name = value if key == "name" else VALID["adapter"]["name"]
        domain = back.domain(f"{SERVER}/{SERVICE}.{name}")
        assert domain is not None, written
        if key != "name":
            # allow's ${macros} are filled in (adapter_config), as tarsnode does
            expected = tcconfig.fill(value, macros(service.spec, service.node), MACRO_NAMES)
            assert domain.params[key].value == (expected if key == "allow" else value), written
    elif (table, key) in MACRO_OF:
        # an empty value stands for a default: localip is the name then, a set "NULL"
        shown = value or EMPTY_SHOWN.get((table, key), "")
        assert back.get(f"{SERVER}<m_{MACRO_OF[table, key]}>") == shown, written


def test_every_key_written_into_a_config_has_a_case() -> None:
    """A string key marked in_config in keys.py is probed below (a new one needs a case)."""
    marked = {(table, key) for table, rules in TABLES.items() for key, rule in rules.items()
              if rule.in_config and rule.kind == "str"}
    assert marked == set(CASES)


def test_the_docs_name_every_key_written_into_a_config() -> None:
    """docs/node-toml.md and README.md list the keys the rule applies to."""
    root = Path(__file__).resolve().parents[1]
    for doc in (root / "docs" / "node-toml.md", root / "README.md"):
        text = " ".join(doc.read_text(encoding="utf-8").split())
        start = text.index("lands in every service's Tars config")
        listed = text[start:text.index(")", start)]
        for table, key in CASES:
            assert f"`{key}`" in listed or f"{key}`" in listed, (doc.name, table, key)


def test_the_valid_node_is_carried(tmp_path: Path) -> None:
    for table, key in CASES:
        root = tmp_path / f"{table}-{key}"
        check_value(root, table, key, VALID[table][key])
        load_node(root)   # not refused: the property above was met by reading it back


# characters the config treats specially: TarsCpp's escapes, its trimmed set, '<' '>', macros
SPECIAL = " \t\r\n\\=<>#${}\x0b\xa0a."
EDGE = st.text(alphabet=SPECIAL, max_size=3)


@pytest.mark.parametrize(("table", "key"), CASES)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_is_carried_exactly_or_refused_at_its_key(
        tmp_path: Path, table: str, key: str, data: st.DataObject) -> None:
    valid = VALID[table][key]
    value = data.draw(st.one_of(
        st.builds(lambda before, after: before + valid + after, EDGE, EDGE),
        st.builds(lambda cut, inside: valid[:cut] + inside + valid[cut:],
                  st.integers(0, len(valid)), EDGE),
        st.text(max_size=12)))
    check_value(tmp_path / "cfg", table, key, value)


@pytest.mark.parametrize(("table", "key", "value", "problem"), [
    ("adapter", "allow", "a<b", "'<' cannot be written into a Tars config"),
    ("adapter", "allow", "10.0.0.1>", "'>' cannot be written into a Tars config"),
    ("adapter", "endpoint", "tcp -h 10.0.0.5 -p 20001 ", "a blank at either end is lost"),
    ("adapter", "endpoint", " tcp -h 10.0.0.5 -p 20001", "a blank at either end is lost"),
    ("node", "locator", "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890 ",
     "a blank at either end is lost"),
    ("service", "main_class", "com.<qq>.Hello", "'<' cannot be written into a Tars config"),
])
def test_a_value_the_config_cannot_carry_is_refused_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, key: str, value: str,
        problem: str) -> None:
    line = write_node(tmp_path, table, key, value)
    assert main(["--config-dir", str(tmp_path), "validate"]) == 1
    err = capsys.readouterr().err
    assert f"error: node.toml:{line}: key '{key}': {basic(value)}: {problem}" in err


@pytest.mark.parametrize(("table", "key", "value", "kept"), [
    # escaped by tostr() and read back by parse(): carried as they are
    ("adapter", "allow", "a=b\\c", "a=b\\c"),
    ("adapter", "endpoint", "\ttcp -h 10.0.0.5 -p 20001", "\ttcp -h 10.0.0.5 -p 20001"),
    ("adapter", "allow", "${localip}", "10.0.0.6"),   # allow's macros are filled, as tarsnode
    ("service", "main_class", "com.qq.$Hello", "com.qq.$Hello"),
])
def test_escaped_values_are_carried(tmp_path: Path, table: str, key: str, value: str,
                                    kept: str) -> None:
    write_node(tmp_path, table, key, value)
    (service,) = load_node(tmp_path).services
    back = tcconfig.parse(tcconfig.serialize(service.config), "written")
    path = (f"{SERVER}/{SERVICE}.HelloObjAdapter<{key}>" if table == "adapter"
            else f"{SERVER}<m_mainclass>")
    assert back.get(path) == kept


def test_every_error_is_reported_together_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, tars = tmp_path / "cfg", tmp_path / "tars"
    write_node(cfg, "adapter", "allow", "a<b")
    text = (cfg / "node.toml").read_text(encoding="utf-8")
    node = VALID["node"]
    text = text.replace(basic(node["locator"]), basic(node["locator"] + " ")).replace(
        basic(node["tars_path"]), basic(str(tars)))
    (cfg / "node.toml").write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    for fmt in ("systemd", "supervisord"):
        assert main(["--config-dir", str(cfg), "generate", "--format", fmt,
                     "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "node.toml:5: key 'locator'" in err and "key 'allow': \"a<b\"" in err
        assert not out.exists() and not tars.exists()
