"""Bad input that is not a manifest key: bytes, follow-on errors, mounts, ports, registries.

Each row is a config dir and a message that validate must report (error or warning), at its
file:line; test_one_pipeline checks that generate reports the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bad_manifests import NODE, SVC, Content, write_config

from tarsdock.cli import main

BOM = b"\xef\xbb\xbf"
TEMPLATE = "<tars>\n  <application>\n  </application>\n</tars>\n"
USES_T = SVC + 'template = "t"\n'          # lines 5-7
ADAPTER_AT = """\
[[services."Hello.Server".adapters]]
servant = "Hello.Server.HelloObj"
endpoint = "tcp -h {host} -p 20001"
"""
REGISTRY = """\
[registries.harbor]
url = "harbor.example.com"
username = "deploy"
password_file = "pw"
"""
SECRET = ("secret\n", 0o600)
PORTS = "<tars>\n<application>\n<container>\n<ports>\n{lines}\n</ports>\n</container>\n" \
    "</application>\n</tars>\n"
BRIDGE_T = NODE + 'network = "bridge"\n' + USES_T + ADAPTER_AT.format(host="127.0.0.1")
VOLUME = "<tars>\n<application>\n<container>\n<volumes>\n{line}\n</volumes>\n</container>\n" \
    "</application>\n</tars>\n"

# (id, files, message, kind): kind "error" (exit 1) or "warning" (exit 0)
BAD_INPUTS: list[tuple[str, dict[str, Content], str, str]] = [
    ("BOM in node.toml", {"node.toml": BOM + NODE.encode()},
     "node.toml:1: the file starts with a UTF-8 byte-order mark (U+FEFF", "error"),
    ("BOM in a services.d file", {"node.toml": NODE, "services.d/a.toml": BOM + SVC.encode()},
     "services.d/a.toml:1: the file starts with a UTF-8 byte-order mark", "error"),
    ("BOM in a template", {"node.toml": NODE + USES_T, "templates/t": BOM + TEMPLATE.encode()},
     "templates/t:1: the file starts with a UTF-8 byte-order mark", "error"),
    ("BOM in a profile file", {"node.toml": NODE + SVC + 'profile_file = "p.conf"\n',
                               "p.conf": BOM + TEMPLATE.encode()},
     "p.conf:1: the file starts with a UTF-8 byte-order mark", "error"),
    ("bad byte in a template", {"node.toml": NODE + USES_T,
                                "templates/t": b"<tars>\n  <app\xe9>\n</tars>\n"},
     "templates/t:2: not UTF-8 text: byte 0xe9 at column 7", "error"),
    # UTF-8 byte for byte, but not text: TarsCpp would keep these in a key or value
    ("a UTF-16 template", {"node.toml": NODE + USES_T,
                           "templates/t": TEMPLATE.encode("utf-16-le")},
     "templates/t:1: control character U+0000 at column 2 (a UTF-16 file? save it as UTF-8)",
     "error"),
    ("a control character in a template value", {
        "node.toml": NODE + USES_T,
        "templates/t": "<tars>\n  <application>\n    k = v\x07\n  </application>\n</tars>\n"},
     "templates/t:3: control character U+0007 at column 10", "error"),
    ("a control character in a profile file", {"node.toml": NODE + SVC + 'profile_file = "p"\n',
                                                "p": "<tars>\n\x1b[0m\n</tars>\n"},
     "p:2: control character U+001B at column 1", "error"),
    ("a NUL in node.toml", {"node.toml": NODE + "# \x00\n"},
     "node.toml:5: control character U+0000 at column 3", "error"),
    ("bad byte in node.toml", {"node.toml": NODE.encode() + b'# caf\xe9\n'},
     "node.toml:5: not UTF-8 text: byte 0xe9 at column 6", "error"),
    ("bridge endpoint on a host name",
     {"node.toml": NODE + 'network = "bridge"\n' + SVC + 'image = "busybox:1"\n'
      + ADAPTER_AT.format(host="localhost")},
     "node.toml:9: key 'endpoint': with network = \"bridge\" the endpoint is published on its "
     "host, and 'localhost' is not an IPv4 address", "error"),
    ("comma in a mount path",
     {"node.toml": NODE + USES_T, "templates/t": VOLUME.format(line="/srv/a,b=/data")},
     "templates/t:5: key '/srv/a,b': host path '/srv/a,b' must be an absolute, normalized path",
     "error"),
    ("colon in a mount target", {"node.toml": NODE + USES_T,
                                 "templates/t": VOLUME.format(line="/srv/a=/da:ta")},
     "templates/t:5: key '/srv/a': unknown mount option ':ta' in '/da:ta': only :ro and :rw",
     "error"),
    # Docker creates such a container and then fails to start it ("port is already allocated")
    ("two <ports> lines on one host port", {"node.toml": BRIDGE_T, "templates/t": PORTS.format(
        lines="80/tcp=127.0.0.1:30000\n81/tcp=127.0.0.1:30000")},
     "templates/t:6: key '81/tcp': publishes 127.0.0.1:30000/tcp, already published by the "
     "line at templates/t:5", "error"),
    ("a <ports> line on an adapter's published port", {"node.toml": BRIDGE_T,
                                                       "templates/t": PORTS.format(
                                                           lines="80/tcp=127.0.0.1:20001")},
     "templates/t:5: key '80/tcp': publishes 127.0.0.1:20001/tcp, already published by the "
     "line at node.toml:", "error"),
    ("a <ports> line beside a 0.0.0.0 one", {"node.toml": BRIDGE_T, "templates/t": PORTS.format(
        lines="80/tcp=0.0.0.0:30000\n81/tcp=127.0.0.1:30000")},
     "templates/t:6: key '81/tcp': publishes 127.0.0.1:30000/tcp", "error"),
    # the registry would get these as part of the password: validate reads it as a pull does
    ("BOM in a password file", {"node.toml": NODE + REGISTRY + SVC
                                + 'image = "harbor.example.com/t/a:1"\n',
                                "pw": ("\ufeffsecret\r\n", 0o600)},
     "node.toml:8: key 'password_file': password file '{dir}/pw' starts with a UTF-8 "
     "byte-order mark", "error"),
    ("a password file of two lines", {"node.toml": NODE + REGISTRY + SVC
                                      + 'image = "harbor.example.com/t/a:1"\n',
                                      "pw": ("secret\nmore\n", 0o600)},
     "node.toml:8: key 'password_file': password file '{dir}/pw' holds the control character "
     "U+000A", "error"),
    ("an empty password file", {"node.toml": NODE + REGISTRY + SVC
                                + 'image = "harbor.example.com/t/a:1"\n', "pw": ("\n", 0o600)},
     "node.toml:8: key 'password_file': password file '{dir}/pw' is empty", "error"),
    ("<Container> spelt with a capital", {
        "node.toml": NODE + USES_T,
        "templates/t": "<tars>\n<application>\n<Container>\nmemory = 1g\n</Container>\n"
                       "</application>\n</tars>\n"},
     "templates/t:3: <Container> in /tars/application is not read by tarsdock", "warning"),
    ("a volume onto the container's root", {"node.toml": NODE + USES_T,
                                             "templates/t": VOLUME.format(line="/srv/a=/")},
     "templates/t:5: key '/srv/a': container path '/' is the container's root", "error"),
    ("a volume target given twice", {"node.toml": NODE + USES_T, "templates/t": VOLUME.format(
        line="/srv/a=/data\n/srv/b=/data")},
     "templates/t:6: key '/srv/b': container path '/data' is already the target of the line "
     "at templates/t:5", "error"),
    # TC_Config keeps the later of two lines with one key: the earlier mount or port is lost
    ("a volume host path given twice", {"node.toml": NODE + USES_T, "templates/t": VOLUME.format(
        line="/srv/a=/data\n/srv/a=/data2:ro")},
     "templates/t:5: key '/srv/a': given again at templates/t:6 (=/data2:ro): TC_Config keeps "
     "only the later line, as tarsnode does, so this mount is not made", "warning"),
    ("a container port given twice", {"node.toml": BRIDGE_T, "templates/t": PORTS.format(
        lines="80/tcp=127.0.0.1:30000\n80/tcp=127.0.0.1:30001")},
     "templates/t:5: key '80/tcp': given again at templates/t:6 (=127.0.0.1:30001): TC_Config "
     "keeps only the later line, as tarsnode does, so this published port is not made",
     "warning"),
    ("registry no image uses",
     {"node.toml": NODE + REGISTRY + SVC + 'image = "busybox:1"\n', "pw": SECRET},
     "node.toml:5: key 'url': no image is pulled from harbor.example.com (image hosts: "
     "docker.io), so these credentials are never used", "warning"),
    ("image whose host has no credentials",
     {"node.toml": NODE + REGISTRY + SVC + 'image = "harbor.example.org/t/a:1"\n', "pw": SECRET},
     "node.toml:11: key 'image': harbor.example.org/t/a:1: no [registries] table has url = "
     "\"harbor.example.org\", so it is pulled anonymously, did you mean 'harbor.example.com'?",
     "warning"),
    ("services.d file not named .toml", {"node.toml": NODE, "services.d/a.tml": SVC},
     "services.d/a.tml: not read: only services.d/*.toml files declare services", "warning"),
    # every generated file's header names the file a service comes from (tryout14c O5: the
    # error named neither file nor line: "sources: '...' contains a line break")
    ("a line break in a services.d file's name", {"node.toml": NODE, "services.d/a\nb.toml": SVC},
     "services.d/a\\nb.toml: the file's name holds a line break, which the header of every "
     "file generated from it would carry, and supervisord and systemd files cannot: rename the "
     "file", "error"),
    # at the key that names it, not the service's table line
    ("a template that does not exist", {"node.toml": NODE + SVC + 'template = "t.nope"\n',
                                        "templates/t.no": TEMPLATE},
     "node.toml:7: key 'template': template 't.nope' does not exist, did you mean 't.no'?",
     "error"),
    # a value unescaped from \n, quoted raw in the message, made one error two lines
    ("a line break in a <container> value", {
        "node.toml": NODE + USES_T + 'image = "busybox:1"\n',
        "templates/t": "<tars>\n<application>\n<container>\nmemory = 1g\\nx\n</container>\n"
                       "</application>\n</tars>\n"},
     "templates/t:4: key 'memory': bad value '1g\\nx' for a size option", "error"),
]


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["--config-dir", str(tmp_path), "validate"])
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(("files", "message", "kind"), [r[1:] for r in BAD_INPUTS],
                         ids=[r[0] for r in BAD_INPUTS])
def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Content],
                   message: str, kind: str) -> None:
    write_config(tmp_path, files)
    code, lines = validate(tmp_path, capsys)
    assert code == (1 if kind == "error" else 0), lines
    message = message.replace("{dir}", str(tmp_path))
    assert any(line.startswith(f"{kind}: {message}") for line in lines), "\n".join(lines)


def test_a_toml_syntax_error_makes_no_errors_in_other_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # node.toml cannot be read, so its [images] are unknown: the services.d file's image id is
    # not an error of its own
    write_config(tmp_path, {"node.toml": NODE + "x = \n[images.base]\nref = \"busybox:1\"\n",
                            "services.d/a.toml": SVC + 'image = "base"\n'})
    code, lines = validate(tmp_path, capsys)
    assert (code, lines) == (1, ["error: node.toml:5: TOML syntax error: invalid value"])


def test_a_broken_template_is_reported_where_it_is_broken_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, {"node.toml": NODE + USES_T + '[templates.child]\nparent = "t"\n',
                            "templates/t": "<tars>\n", "templates/child": TEMPLATE})
    code, lines = validate(tmp_path, capsys)
    assert (code, lines) == (1, ["error: templates/t:1: <tars> is never closed"])


def test_errors_come_in_file_and_line_order(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_config(tmp_path, {"node.toml": NODE + USES_T + 'exe = 5\n',
                            "services.d/b.toml": '[services."B.C"]\ntype = "tars_go"\nexe = 6\n',
                            "templates/t": b"<tars>\n\xff\n"})
    code, lines = validate(tmp_path, capsys)
    assert code == 1
    assert [line.split(":")[1:3] for line in lines] == [
        [" node.toml", "8"], [" services.d/b.toml", "3"], [" templates/t", "2"]], lines


def test_an_image_that_is_never_pulled_is_not_warned_as_pulled_anonymously(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pull = "never" only uses a local image (found by hand: a node imported with a private
    registry warned at every validate and apply that its locally built image was pulled
    anonymously); the same image pulled as it is missing is still warned."""
    local = '[images.local]\nref = "harbor.example.org/t/a:1"\npull = "never"\n'
    write_config(tmp_path, {"node.toml": NODE + REGISTRY + local + SVC
                            + 'image = "local"\n[images.pulled]\nref = "busybox:1"\n'
                            + '[services."Hello.Other"]\ntype = "tars_cpp"\nimage = "pulled"\n',
                            "pw": SECRET})
    code, lines = validate(tmp_path, capsys)
    assert code == 0, lines
    anonymous = [line for line in lines if "pulled anonymously" in line]
    assert len(anonymous) == 1 and "busybox:1" in anonymous[0], lines


def test_an_error_in_one_service_table_hides_no_error_of_the_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo in one service's table stopped the run before any template or config was
    resolved: the other service's $VAR in an env item and its bad volume line came only after
    the typo was fixed, a round each (found by hand). Now they come together; the service with
    the typo is left out of the resolution (its values would give follow-on errors only)."""
    template = ("<tars>\n<application>\n<server>\nenv=PATH=$PATH:/x\n</server>\n<container>\n"
                "<volumes>\n/srv/a b=/data\n</volumes>\n</container>\n</application>\n</tars>\n")
    write_config(tmp_path, {"node.toml": NODE + USES_T,
                            "services.d/b.toml": '[services."B.C"]\ntype = "tars_cpp"\n'
                                                 'template = "t"\nasyn_thread = 3\n',
                            "templates/t": template})
    code, lines = validate(tmp_path, capsys)
    assert code == 1
    assert [line.split(":")[1:3] for line in lines] == [
        [" services.d/b.toml", "4"], [" templates/t", "4"], [" templates/t", "8"]], lines


def test_a_services_d_file_not_named_toml_is_warned_about(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped extension took a service off the node without a word: validate said ok and
    apply --check would remove it (found by a fresh user). Hidden files stay unread silently."""
    write_config(tmp_path, {"node.toml": NODE, "services.d/Hello.Server.tml": SVC,
                            "services.d/.Hello.Old.toml.swp": "x", "services.d/B.C.toml":
                            '[services."B.C"]\ntype = "tars_cpp"\n'})
    code, lines = validate(tmp_path, capsys)
    assert code == 0, lines
    assert [line for line in lines if line.startswith("warning")] == [
        "warning: services.d/Hello.Server.tml: not read: only services.d/*.toml files declare "
        "services, so what this one declares is not on the node (rename it to .toml, or start "
        "its name with '.' to keep it unread without this warning)"], lines


def tree(root: Path) -> list[str]:
    """Every path under root, relative, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    return code, capsys.readouterr().err.splitlines()


PREFIX = ("would be read as a systemd prefix (@-:+!|) of ExecStart=: give its absolute path")
NOT_TARS = '[services."A.{name}"]\ntype = "not_tars"\ncommand = ["{argv0}", "x"]\n'
SERVER_T = "<tars>\n<application>\n<server>\n{line}\n</server>\n</application>\n</tars>\n"
PROFILE = ('profile = """\n<tars>\n<application>\n<server>\n{line}\n</server>\n</application>\n'
           '</tars>\n"""\n')

# (id, files, the errors validate and generate --format systemd report, in this order)
PREFIX_ROWS: list[tuple[str, dict[str, Content], list[str]]] = [
    ("not_tars command", {"node.toml": NODE + NOT_TARS.format(name="S", argv0="-oops")},
     [f"node.toml:7: key 'command': executable '-oops' {PREFIX}"]),
    ("not_tars command in services.d", {
        "node.toml": NODE, "services.d/s.toml": "# x\n" + NOT_TARS.format(name="S", argv0="@x")},
     [f"services.d/s.toml:4: key 'command': executable '@x' {PREFIX}"]),
    ("tars_java's java in a template", {
        "node.toml": NODE + SVC.replace("tars_cpp", "tars_java") + 'template = "t"\n',
        "templates/t": SERVER_T.format(line="java = -jdk\nmainclass = a.B")},
     [f"templates/t:4: key 'java': executable '-jdk' {PREFIX}"]),
    ("tars_php's php in a profile", {
        "node.toml": NODE + SVC.replace("tars_cpp", "tars_php") + PROFILE.format(line="php = +p")},
     [f"node.toml:11: key 'php': executable '+p' {PREFIX}"]),
    ("tars_nodejs's nodejs in a template", {
        "node.toml": NODE + SVC.replace("tars_cpp", "tars_nodejs") + 'template = "t"\n',
        "templates/t": SERVER_T.format(line="nodejs = !node")},
     [f"templates/t:4: key 'nodejs': executable '!node' {PREFIX}"]),
    # every service's error in one report, in file and line order
    ("three services", {
        "node.toml": NODE + NOT_TARS.format(name="B", argv0=":b")
        + NOT_TARS.format(name="A", argv0="|a"),
        "services.d/c.toml": NOT_TARS.format(name="C", argv0="-c")},
     [f"node.toml:7: key 'command': executable ':b' {PREFIX}",
      f"node.toml:10: key 'command': executable '|a' {PREFIX}",
      f"services.d/c.toml:3: key 'command': executable '-c' {PREFIX}"]),
]


@pytest.mark.parametrize(("files", "errors"), [r[1:] for r in PREFIX_ROWS],
                         ids=[r[0] for r in PREFIX_ROWS])
def test_an_executable_systemd_reads_as_a_prefix_is_an_error_at_its_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, Content],
        errors: list[str]) -> None:
    """Only systemd's ExecStart= reads a leading -@:+!| as a prefix: the error named the service
    alone (tryout14c O5, "A.S: command: executable '-oops' ..."), found only by rendering.
    validate and generate --format systemd report it at its line; supervisord takes it."""
    root = tmp_path / "tars"
    files = {name: text.replace("/usr/local/app/tars", str(root)) if isinstance(text, str)
             else text for name, text in files.items()}
    write_config(tmp_path / "cfg", files)
    base = ["--config-dir", str(tmp_path / "cfg")]
    expected = (1, [f"error: {error}" for error in errors])
    assert run([*base, "validate"], capsys) == expected
    for show in (["--dry-run"], []):
        out = ["--format", "systemd", "--out", str(tmp_path / "out")]
        assert run([*base, "generate", *out, *show], capsys) == expected
    assert not root.exists() and not (tmp_path / "out").exists()
    code, _ = run([*base, "generate", "--format", "supervisord", "--out", str(tmp_path / "sv")],
                  capsys)
    assert code == 0


def test_no_admin_port_left_is_an_error_at_each_service_naming_local_port(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every port of 30000..44999 answers: each service that wants a port given out is an
    error at its table, naming the key to set there (tryout14c O5: no key); a pinned one is
    not; nothing written."""
    from tarsdock import localports

    monkeypatch.setattr(localports, "in_use_probe", lambda: lambda port: True)
    write_config(tmp_path / "cfg", {
        "node.toml": NODE.replace("/usr/local/app/tars", str(tmp_path / "tars")) + SVC
        + '[services."Hello.Pinned"]\ntype = "tars_cpp"\nlocal_port = 30001\n',
        "services.d/b.toml": '# b\n[services."B.C"]\ntype = "tars_go"\n',
        # the other errors of the run come in the same report
        "services.d/c.toml": '[services."B.D"]\ntype = "tars_go"\nexe = 5\n'})
    message = ("key 'local_port': no free port in 30000..44999 to give the admin endpoint: set "
               "one that no other endpoint uses")
    base = ["--config-dir", str(tmp_path / "cfg")]
    expected = (1, [f"error: node.toml:5: {message}", f"error: services.d/b.toml:2: {message}",
                    "error: services.d/c.toml:3: key 'exe': expected a string, got 5"])
    assert run([*base, "validate"], capsys) == expected
    assert run([*base, "generate", "--format", "systemd", "--out", str(tmp_path / "out")],
               capsys) == expected
    assert tree(tmp_path) == sorted(["cfg", "cfg/node.toml", "cfg/services.d",
                                     "cfg/services.d/b.toml", "cfg/services.d/c.toml"])


def test_the_package_json_of_every_release_is_reported_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tars_nodejs release's package.json is input too: each error at its file, line and key,
    all of them in one report (the first one stopped the run), nothing written."""
    nodejs = '[services."A.{name}"]\ntype = "tars_nodejs"\n'
    write_config(tmp_path / "cfg", {"node.toml": NODE.replace(
        "/usr/local/app/tars", str(tmp_path / "tars")) + "".join(
        nodejs.format(name=name) for name in "STUV")})
    data = tmp_path / "tars" / "tarsnode" / "data"
    for name, text in (("S", '{"main": "a\\nb.js"}'), ("T", '{\n"main": "../x.js"\n}\n'),
                       ("U", '{\n"main":\n}\n'), ("V", '{"main": "ok.js"}')):
        (data / f"A.{name}" / "bin").mkdir(parents=True)
        (data / f"A.{name}" / "bin" / "package.json").write_text(text)
    before = tree(tmp_path)
    expected = (1, [
        f"error: {data}/A.S/bin/package.json:1: key 'main': entry point 'a\\nb.js' holds a line "
        "break, which no supervisord or systemd file can carry",
        f"error: {data}/A.T/bin/package.json:2: key 'main': entry point '../x.js' leaves the "
        "package",
        f"error: {data}/A.U/bin/package.json:3: cannot read package.json: Expecting value"])
    base = ["--config-dir", str(tmp_path / "cfg")]
    assert run([*base, "validate"], capsys) == expected
    for fmt in ("systemd", "supervisord"):
        assert run([*base, "generate", "--format", fmt, "--out", str(tmp_path / "out")],
                   capsys) == expected
    assert tree(tmp_path) == before


def test_errors_of_every_step_are_reported_together_in_file_and_line_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An error in one service's template, another's package.json and a third's executable
    (which only rendering systemd's unit finds) came a run each: the load stopped the run
    before the rendering. Now one report, sorted; nothing written."""
    root = tmp_path / "tars"
    write_config(tmp_path / "cfg", {
        "node.toml": NODE.replace("/usr/local/app/tars", str(root))
        + NOT_TARS.format(name="Prefixed", argv0="-oops")
        + '[services."A.Env"]\ntype = "tars_cpp"\ntemplate = "t"\n'
        + '[services."A.Js"]\ntype = "tars_nodejs"\n',
        "templates/t": SERVER_T.format(line="env = X=`date`")})
    (root / "tarsnode" / "data" / "A.Js" / "bin").mkdir(parents=True)
    (root / "tarsnode" / "data" / "A.Js" / "bin" / "package.json").write_text('{"main": "/x"}')
    before = tree(tmp_path)
    base = ["--config-dir", str(tmp_path / "cfg")]
    code, lines = run([*base, "validate"], capsys)
    assert code == 1
    assert [line.split(": ", 2)[1] for line in lines] == [
        f"{root}/tarsnode/data/A.Js/bin/package.json:1", "node.toml:7", "templates/t:4"], lines
    assert "executable '-oops' would be read as a systemd prefix" in lines[1]
    systemd = run([*base, "generate", "--format", "systemd", "--out", str(tmp_path / "o")], capsys)
    assert systemd == (code, lines)
    # supervisord takes the executable: the two other errors
    assert run([*base, "generate", "--format", "supervisord", "--out", str(tmp_path / "o")],
               capsys) == (1, [lines[0], lines[2]])
    assert tree(tmp_path) == before
