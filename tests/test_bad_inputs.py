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
