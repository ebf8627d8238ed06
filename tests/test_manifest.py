"""Good manifests load into the model; the TOML line locator finds every key."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarsdock.errors import Origin
from tarsdock.imageref import normalize_image_ref
from tarsdock.manifest import load_manifest
from tarsdock.model import AdapterSpec, Manifest
from tarsdock.tomlpos import KeyPath, locate

FULL = Path(__file__).parent / "manifests" / "full"


@pytest.fixture
def full(tmp_path: Path) -> tuple[Path, Manifest]:
    """The full example, copied so its password file can be given mode 0600 (git keeps 0644)."""
    root = tmp_path / "etc"
    shutil.copytree(FULL, root)
    os.chmod(root / "secrets" / "main", 0o600)
    return root, load_manifest(root)


def test_node(full: tuple[Path, Manifest]) -> None:
    node = full[1].node
    assert node.name == node.localip == "10.0.0.5"
    assert node.tars_path == "/usr/local/app/tars"
    assert node.locator.endswith("-p 17890:tcp -h 10.0.0.2 -p 17890")
    assert (node.docker_socket, node.host_path, node.network) == ("/var/run/docker.sock", "",
                                                                    "bridge")
    assert node.origin == Origin("node.toml", 2)


def test_registries_and_password_file(full: tuple[Path, Manifest]) -> None:
    root, manifest = full
    main = manifest.registries["main"]
    assert (main.url, main.username) == ("registry.example.com:5000", "deploy")
    assert main.password_file == str(root / "secrets" / "main")
    assert manifest.registries["local"].password_file == ""
    assert main.origin == Origin("node.toml", 13)


def test_images(full: tuple[Path, Manifest]) -> None:
    images = full[1].images
    assert images["cppbase"].ref == "registry.example.com:5000/tars/cppbase:latest"
    assert images["cppbase"].registry is full[1].registries["main"]
    assert (images["cppbase"].pull, images["cppbase"].restart_on_update) == ("missing", False)
    pinned = images["pinned"]
    assert pinned.ref.startswith("localhost:5000/tars/java@sha256:0123")
    assert ":latest" not in pinned.ref
    assert (pinned.pull, pinned.restart_on_update) == ("never", True)
    # no `registry` key: the registry whose url is the reference's host
    assert pinned.registry is full[1].registries["local"]


def test_template_parents(full: tuple[Path, Manifest]) -> None:
    assert full[1].template_parents == {
        "tars.springboot": ("tars.tarsjava.default", Origin("node.toml", 9)),
        "my-cpp": ("tars.default", Origin("node.toml", 11)),
    }


def test_container_service(full: tuple[Path, Manifest]) -> None:
    hello = full[1].services["Hello.HelloServer"]
    assert (hello.app, hello.server, hello.type, hello.run) == (
        "Hello", "HelloServer", "tars_cpp", "container")
    assert hello.image is full[1].images["cppbase"]
    assert (hello.template, hello.exe, hello.local_port) == ("tars.cpp.default", "HelloServer",
                                                             19387)
    assert (hello.set_division, hello.async_thread, hello.command) == ("sz.a.1", 6, ())
    assert hello.origin == Origin("node.toml", 30)
    assert hello.profile.startswith("<tars>\n  <application>\n")
    # line 1 of the profile text is the line after `profile = """`
    assert hello.profile_origin == Origin("node.toml", 34)
    manifest_lines = (FULL / "node.toml").read_text().splitlines()
    first = hello.profile_origin.line
    for n, text in enumerate(hello.profile.splitlines(), start=1):
        assert manifest_lines[first + n - 2] == text


def test_adapters(full: tuple[Path, Manifest]) -> None:
    first, second = full[1].services["Hello.HelloServer"].adapters
    assert first == AdapterSpec(
        "HelloObjAdapter", "Hello.HelloServer.HelloObj", "tcp -h 10.0.0.5 -p 20001 -t 60000",
        5, 200, 100, 5000, "tars", "10.0.0.1;10.0.0.2", Origin("node.toml", 48))
    # the name defaults to the servant's object name + Adapter; udp may share a tcp port
    assert second == AdapterSpec("RawObjAdapter", "Hello.HelloServer.RawObj",
                                 "udp -h 10.0.0.5 -p 20001", protocol="not_tars",
                                 origin=Origin("node.toml", 58))


def test_native_service_with_one_line_profile(full: tuple[Path, Manifest]) -> None:
    native = full[1].services["Hello.Native"]
    assert (native.run, native.image, native.template) == ("native", None, "tars.default")
    assert native.profile == "<tars>\n</tars>\n"
    assert native.profile_origin == Origin("node.toml", 65)


def test_services_d(full: tuple[Path, Manifest]) -> None:
    services = full[1].services
    assert list(services) == sorted(services)
    web = services["Web.Nginx"]
    assert web.origin == Origin("services.d/10-web.toml", 2)
    assert (web.type, web.run, web.command) == ("not_tars", "container",
                                                ("nginx", "-g", "daemon off;"))
    assert web.image is not None
    assert (web.image.ref, web.image.id) == ("localhost:5000/nginx:latest", "")
    assert web.image.registry is full[1].registries["local"]
    assert web.image.origin == Origin("services.d/10-web.toml", 4)


def test_profile_file_and_explicit_native(full: tuple[Path, Manifest]) -> None:
    java = full[1].services["Java.Spring"]
    assert (java.run, java.main_class) == ("native", "com.example.Main")
    assert java.image is full[1].images["pinned"]
    assert java.profile == (FULL / "profiles" / "Java.Spring.conf").read_text()
    assert java.profile_origin == Origin("profiles/Java.Spring.conf", 1)


def test_minimal_node(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(
        '[node]\nname = "n1"\nlocalip = "127.0.0.1"\ntars_path = "/t"\n'
        'locator = "a.b.C@tcp -h 127.0.0.1 -p 1"\n')
    manifest = load_manifest(tmp_path)
    assert (manifest.node.name, manifest.node.localip) == ("n1", "127.0.0.1")
    assert (manifest.services, manifest.images, manifest.registries) == ({}, {}, {})
    assert (manifest.node.supervisor, manifest.node.supervisor_url) == (
        "supervisord", "unix:///var/run/supervisor.sock")


MINIMAL_NODE = ('[node]\nname = "n1"\ntars_path = "/t"\nlocator = "a.b.C@tcp -h 127.0.0.1 -p 1"\n')


@pytest.mark.parametrize(("line", "localip"), [
    ("", "n1"), ('localip = ""\n', "n1"), ('localip = "10.0.0.5"\n', "10.0.0.5")])
def test_localip_empty_or_left_out_is_the_node_name(tmp_path: Path, line: str,
                                                      localip: str) -> None:
    (tmp_path / "node.toml").write_text(MINIMAL_NODE + line)
    assert load_manifest(tmp_path).node.localip == localip


def test_localip_of_spaces_is_refused(tmp_path: Path) -> None:
    from tarsdock.errors import InputErrors

    (tmp_path / "node.toml").write_text(MINIMAL_NODE + 'localip = " "\n')
    with pytest.raises(InputErrors) as caught:
        load_manifest(tmp_path)
    assert "node.toml:5: key 'localip': \" \" is not a host name or IP address" in str(caught.value)


@pytest.mark.parametrize(("lines", "supervisor", "url"), [
    ('supervisor = "systemd"\n', "systemd", "unix:///var/run/supervisor.sock"),
    ('supervisor_url = "unix:///run/sv.sock"\n', "supervisord", "unix:///run/sv.sock"),
    ('supervisor_url = "http://127.0.0.1:9001"\n', "supervisord", "http://127.0.0.1:9001"),
])
def test_supervisor_keys(tmp_path: Path, lines: str, supervisor: str, url: str) -> None:
    (tmp_path / "node.toml").write_text(MINIMAL_NODE + lines)
    node = load_manifest(tmp_path).node
    assert (node.supervisor, node.supervisor_url) == (supervisor, url)


@pytest.mark.parametrize(("line", "problem"), [
    ('supervisor = "upstart"', "key 'supervisor': \"upstart\" is not one of supervisord, systemd"),
    ('supervisor_url = "unix://run/sv.sock"', "key 'supervisor_url': \"run/sv.sock\" is not an"),
    ('supervisor_url = "ftp://x"', "key 'supervisor_url': \"ftp://x\" is not unix:///PATH"),
])
def test_supervisor_keys_refused(tmp_path: Path, line: str, problem: str) -> None:
    from tarsdock.errors import InputErrors

    (tmp_path / "node.toml").write_text(MINIMAL_NODE + line + "\n")
    with pytest.raises(InputErrors) as caught:
        load_manifest(tmp_path)
    assert f"node.toml:5: {problem}" in str(caught.value)


@pytest.mark.parametrize(("ref", "normal"), [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("localhost:5000/foo", "localhost:5000/foo:latest"),
    ("registry.example.com:5000/tars/cppbase", "registry.example.com:5000/tars/cppbase:latest"),
    ("registry.example.com:5000/tars/cpp:3.0.15", "registry.example.com:5000/tars/cpp:3.0.15"),
    ("a/b@sha256:" + "0" * 64, "a/b@sha256:" + "0" * 64),
    ("a/b:v1@sha256:" + "0" * 64, "a/b:v1@sha256:" + "0" * 64),
])
def test_latest_is_added_after_the_repository(ref: str, normal: str) -> None:
    assert normalize_image_ref(ref) == normal


# --- the TOML line locator ---------------------------------------------------------------

KEY_TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
# strings whose lines look like TOML, so a scanner that misreads strings would find keys in them
TOMLISH = st.lists(st.sampled_from(["[a]", "b = 1", "[[c]]", '"""', "'''", "x = '", "#", "]"])
                   | st.text(max_size=5), max_size=4).map("\n".join)
SCALARS = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.text(max_size=20), TOMLISH)
ARRAYS = st.lists(SCALARS, max_size=4).map(lambda v: [x for x in v if type(x) is type(v[0])])


def tables(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Random TOML documents: scalars, arrays, sub-tables and arrays of tables."""
    leaf = st.one_of(SCALARS, ARRAYS)
    if depth == 0:
        return st.dictionaries(KEY_TEXT, leaf, max_size=4)
    sub = tables(depth - 1)
    return st.dictionaries(KEY_TEXT, st.one_of(leaf, sub, st.lists(sub, min_size=1, max_size=3)),
                           max_size=4)


def basic(text: str) -> str:
    """A TOML basic string; json escapes all but DEL, which TOML wants escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def key(text: str, style: int) -> str:
    bare = text and all(c.isascii() and (c.isalnum() or c in "_-") for c in text)
    if bare and style % 3:
        return text
    if style % 2 and "'" not in text and all(c >= " " and c != "\x7f" for c in text):
        return f"'{text}'"
    return basic(text)


class Writer:
    """Writes a document in varied TOML styles and records the line of each key it writes."""

    def __init__(self, styles: st.DataObject) -> None:
        self.styles = styles
        self.lines: list[str] = []
        self.expected: dict[KeyPath, int] = {}
        self.value_lines: dict[KeyPath, int] = {}

    def style(self) -> int:
        return self.styles.draw(st.integers(0, 5))

    def add(self, text: str) -> int:
        if self.style() == 0:
            self.lines.append("  # a comment = [")
        self.lines.extend(text.split("\n"))
        return len(self.lines) - text.count("\n")

    def value(self, v: Any, style: int) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            if style == 1 and all(c >= " " and c not in "'\x7f" for c in v.replace("\n", "")):
                return f"'''\n{v}'''"   # a line break right after ''' is not part of the value
            return basic(v)
        inner = [self.value(x, 0) for x in v]
        if style == 2 and inner:
            return "[\n  " + ",\n  ".join(inner) + ",\n]"
        return "[" + ", ".join(inner) + "]"

    def table(self, path: KeyPath, doc: dict[str, Any]) -> None:
        later = []
        for k, v in doc.items():
            if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)):
                later.append((k, v))
                continue
            style = self.style()
            line = self.add(f"{key(k, style)} = {self.value(v, style)}")
            self.expected[(*path, k)] = line
            if style == 1 and isinstance(v, str) and self.value(v, 1).startswith("'''"):
                self.value_lines[(*path, k)] = line + 1
        for k, v in later:
            names = ".".join(key(p, self.style()) for p in (*path, k) if isinstance(p, str))
            if isinstance(v, dict):
                self.expected[(*path, k)] = self.add(f"[{names}]")
                self.table((*path, k), v)
                continue
            for i, element in enumerate(v):
                self.expected[(*path, k, i)] = self.add(f"[[ {names} ]]")
                self.table((*path, k, i), element)


def key_paths(node: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Every key path tomllib reports, with an index per array-of-tables element."""
    found: list[KeyPath] = []
    if isinstance(node, dict):
        for k, v in node.items():
            found.append((*path, k))
            found += key_paths(v, (*path, k))
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for i, element in enumerate(node):
            found.append((*path, i))
            found += key_paths(element, (*path, i))
    return found


@settings(max_examples=300, deadline=None)
@given(doc=tables(2), styles=st.data())
def test_locator_finds_every_key(doc: dict[str, Any], styles: st.DataObject) -> None:
    writer = Writer(styles)
    writer.table((), doc)
    text = "\n".join(writer.lines) + "\n"
    assert tomllib.loads(text) == doc, text
    located = locate(text)
    for path, line in writer.expected.items():
        assert located.keys.get(path) == line, (path, text)
    for path, line in writer.value_lines.items():
        assert located.value_line(path) == line, (path, text)
    for path in key_paths(doc):
        assert 1 <= located.line(path) <= len(writer.lines), (path, text)


@given(st.text())
def test_locator_never_raises(text: str) -> None:
    located = locate(text)
    assert all(1 <= line <= text.count("\n") + 1 for line in located.keys.values())


def test_locator_handles_dotted_and_quoted_keys_and_inline_tables() -> None:
    text = (
        '[a."b.c"]\n'             # 1
        'x.y = 1   # x.z = 2\n'   # 2
        '"q=r" = { k = 1 }\n'     # 3
        "s = '''\n"               # 4
        "[not.a.table]\n"         # 5
        "'''\n"                   # 6
        "[[t]]\n"                 # 7
        "[[t]]\n"                 # 8
        "[t.u]\n"                 # 9
        "v = [\n"                 # 10
        " '[w]',\n"               # 11
        "]\n"                     # 12
    )
    located = locate(text)
    assert located.keys[("a", "b.c")] == 1
    assert located.keys[("a", "b.c", "x")] == located.keys[("a", "b.c", "x", "y")] == 2
    assert ("a", "b.c", "x", "z") not in located.keys
    assert located.line(("a", "b.c", "q=r", "k")) == 3
    assert located.value_line(("a", "b.c", "s")) == 5
    assert ("not",) not in located.keys
    assert (located.keys[("t", 0)], located.keys[("t", 1)]) == (7, 8)
    assert located.keys[("t", 1, "u")] == 9
    assert located.keys[("t", 1, "u", "v")] == 10
    assert ("w",) not in located.keys


@pytest.mark.parametrize(("url", "ref"), [
    ("docker.io", "index.docker.io/library/busybox:1"),
    ("index.docker.io", "busybox:1"),
    ("index.docker.io", "index.docker.io/library/busybox:1"),
])
def test_docker_hubs_legacy_name_is_docker_hub(tmp_path: Path, url: str, ref: str) -> None:
    # Docker's reference package rewrites index.docker.io to docker.io (distribution/reference,
    # normalize.go, splitDockerDomain): one registry, so its credentials go to the image
    (tmp_path / "pw").write_text("secret")
    os.chmod(tmp_path / "pw", 0o600)
    (tmp_path / "node.toml").write_text(
        '[node]\nname = "10.0.0.5"\ntars_path = "/usr/local/app/tars"\n'
        'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n'
        f'[registries.hub]\nurl = "{url}"\nusername = "u"\npassword_file = "pw"\n'
        f'[images.a]\nref = "{ref}"\n[images.b]\nref = "{ref}"\nregistry = "hub"\n')
    manifest = load_manifest(tmp_path)
    assert manifest.registries["hub"].url == "docker.io"
    assert manifest.images["a"].registry is manifest.images["b"].registry is \
        manifest.registries["hub"]


def test_an_unreadable_services_d_is_the_environment_not_an_empty_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Path.glob listed a directory this user cannot read as empty: its services were left
    # out and validate said ok (found by hand as another user; root reads it, hence the fake)
    from tarsdock.cli import main

    (tmp_path / "node.toml").write_text(MINIMAL_NODE)
    (tmp_path / "services.d").mkdir()
    (tmp_path / "services.d" / "a.toml").write_text('[services."A.S"]\ntype = "tars_cpp"\n')
    listdir = os.listdir

    def denied(path: object) -> list[str]:
        if str(path).endswith("services.d"):
            raise PermissionError(13, "Permission denied", str(path))
        return listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "listdir", denied)
    assert main(["--config-dir", str(tmp_path), "validate"]) == 5
    assert capsys.readouterr().err == (
        f"error: services.d: cannot list {tmp_path}/services.d: Permission denied\n")


def test_a_password_file_this_user_cannot_read_is_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tarsdock.cli import main

    (tmp_path / "pw").write_text("secret\n")
    os.chmod(tmp_path / "pw", 0o600)
    (tmp_path / "node.toml").write_text(
        MINIMAL_NODE + '[registries.h]\nurl = "h.example.com"\nusername = "u"\n'
        'password_file = "pw"\n[images.x]\nref = "h.example.com/a:1"\n')
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (
        False if str(path).endswith("/pw") else access(path, mode)))
    assert main(["--config-dir", str(tmp_path), "validate"]) == 5
    assert capsys.readouterr().err == (
        f"error: node.toml:8: key 'password_file': password file '{tmp_path}/pw' is not readable "
        "by this user (Permission denied)\n")
