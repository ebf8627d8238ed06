"""Bad manifests: each reports its problem at file:line with the key."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tarsdock.cli import main
from tarsdock.errors import InputErrors
from tarsdock.manifest import load_manifest

# lines 1-4 of every node.toml below
NODE = """\
[node]
name = "10.0.0.5"
tars_path = "/usr/local/app/tars"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"
"""
# lines 5-6
SVC = """\
[services."Hello.Server"]
type = "tars_cpp"
"""
ADAPTER = """\
[[services."Hello.Server".adapters]]
servant = "Hello.Server.HelloObj"
endpoint = "tcp -h 10.0.0.5 -p 20001"
"""
REGISTRY = """\
[registries.main]
url = "localhost:5000"
"""
IMAGES = """\
[images.cppbase]
ref = "localhost:5000/tars/cppbase"
"""

# a file's content: text, raw bytes, (text, mode), or None for a directory of that name
Content = str | bytes | tuple[str | bytes, int] | None

CASES: list[tuple[str, dict[str, Content], str]] = [
    ("unknown key", {"node.toml": NODE + 'colour = "red"\n'},
     "node.toml:5: key 'colour': unknown key in [node]"),
    ("misspelt key", {"node.toml": NODE + 'netwrok = "host"\n'},
     "node.toml:5: key 'netwrok': unknown key in [node], did you mean 'network'?"),
    ("misspelt service key", {"node.toml": NODE + SVC + 'imgae = "x:1"\n'},
     "node.toml:7: key 'imgae': unknown key in [services.\"Hello.Server\"], did you mean 'image'?"),
    ("misspelt adapter key", {"node.toml": NODE + SVC + ADAPTER + "thread = 4\n"},
     "node.toml:10: key 'thread': unknown key in [[services.\"Hello.Server\".adapters]] #1, "
     "did you mean 'threads'?"),
    ("unknown table", {"node.toml": NODE + "[imgaes.x]\n"},
     "node.toml:5: key 'imgaes': unknown table, did you mean 'images'?"),
    ("string for int", {"node.toml": NODE + SVC + 'local_port = "80"\n'},
     "node.toml:7: key 'local_port': expected an integer, got \"80\""),
    ("bool for int", {"node.toml": NODE + SVC + ADAPTER + "threads = true\n"},
     "node.toml:10: key 'threads': expected an integer, got true"),
    ("int for string", {"node.toml": NODE + SVC + "exe = 5\n"},
     "node.toml:7: key 'exe': expected a string, got 5"),
    ("int for bool", {"node.toml": NODE + IMAGES + "restart_on_update = 1\n"},
     "node.toml:7: key 'restart_on_update': expected true or false, got 1"),
    ("service table not a table", {"node.toml": NODE + '[services]\n"Hello.Server" = 3\n'},
     "node.toml:6: [services.\"Hello.Server\"] must be a table, got 3"),
    ("missing node table", {"node.toml": SVC}, "node.toml: missing the [node] table"),
    ("missing node.toml", {"services.d/a.toml": SVC}, "node.toml: missing: "),
    ("missing required key", {"node.toml": '[node]\nname = "n"\ntars_path = "/t"\n'},
     "node.toml:1: key 'locator': [node] needs this key"),
    ("missing type", {"node.toml": NODE + '[services."Hello.Server"]\nexe = "x"\n'},
     "node.toml:5: key 'type': [services.\"Hello.Server\"] needs this key"),
    ("service in two files",
     {"node.toml": NODE + SVC, "services.d/hello.toml": "\n" + SVC},
     "services.d/hello.toml:2: key 'Hello.Server': service is defined twice: also at node.toml:5"),
    ("service twice in one file", {"node.toml": NODE + SVC + "\n" + SVC},
     "node.toml:8: [services.\"Hello.Server\"] is declared twice (first at node.toml:5)"),
    # the first tester's L2 (30 Nov): "TOML syntax error: cannot overwrite a value", no key
    ("key written twice", {"node.toml": NODE + SVC + 'exe = "a"\nexe = "b"\n'},
     "node.toml:8: key 'exe': written twice in [services.\"Hello.Server\"] (first at "
     "node.toml:7)"),
    ("node key written twice in services.d",
     {"node.toml": NODE, "services.d/a.toml": SVC + 'exe = "a"\n\nexe = "b"\n'},
     "services.d/a.toml:5: key 'exe': written twice in [services.\"Hello.Server\"] (first at "
     "services.d/a.toml:3)"),
    ("unknown image id", {"node.toml": NODE + IMAGES + SVC + 'image = "cppbse"\n'},
     "node.toml:9: key 'image': no image id \"cppbse\", did you mean 'cppbase'?"),
    ("unknown image id, no near miss", {"node.toml": NODE + SVC + 'image = "zzz"\n'},
     "node.toml:7: key 'image': no image id \"zzz\" in [images]"),
    ("bad literal image reference", {"node.toml": NODE + SVC + 'image = "repo/Upper:1"\n'},
     "node.toml:7: key 'image': 'repo/Upper:1' is not a valid image reference"),
    ("bad image ref", {"node.toml": NODE + '[images.a]\nref = "a b:1"\n'},
     "node.toml:6: key 'ref': 'a b:1' is not a valid image reference"),
    ("bad digest", {"node.toml": NODE + '[images.a]\nref = "a@sha256:abc"\n'},
     "node.toml:6: key 'ref': 'a@sha256:abc' is not a valid image reference"),
    ("image without ref", {"node.toml": NODE + '[images.a]\npull = "never"\n'},
     "node.toml:5: key 'ref': [images.a] needs this key"),
    ("container without image", {"node.toml": NODE + SVC + 'run = "container"\n'},
     "node.toml:7: key 'run': run = \"container\" needs an image"),
    ("bad run mode", {"node.toml": NODE + SVC + 'run = "docker"\n'},
     "node.toml:7: key 'run': \"docker\" is not one of container, native"),
    ("unknown server type", {"node.toml": NODE + '[services."A.B"]\ntype = "tars_rust"\n'},
     "node.toml:6: key 'type': \"tars_rust\" is not one of tars_cpp, tars_go, tars_java, "
     "tars_nodejs, tars_php, not_tars"),
    ("shell metacharacters in name", {"node.toml": NODE + '[services."Hello;rm -rf.Server"]\n'},
     "node.toml:5: key 'Hello;rm -rf.Server': a service name is App.Server"),
    ("path separator in name", {"node.toml": NODE + '[services."../etc.Server"]\n'},
     "node.toml:5: key '../etc.Server': a service name is App.Server"),
    ("three-part name", {"node.toml": NODE + '[services."A.B.C"]\ntype = "tars_go"\n'},
     "node.toml:5: key 'A.B.C': a service name is App.Server"),
    ("name starting with a digit", {"node.toml": NODE + '[services."1A.B"]\ntype = "tars_go"\n'},
     "node.toml:5: key '1A.B': a service name is App.Server"),
    ("missing profile_file", {"node.toml": NODE + SVC + 'profile_file = "nope.conf"\n'},
     "node.toml:7: key 'profile_file': cannot read nope.conf: No such file or directory"),
    ("profile and profile_file",
     {"node.toml": NODE + SVC + 'profile = "<a>"\nprofile_file = "p"\n', "p": "<tars>\n"},
     "node.toml:8: key 'profile_file': give profile or profile_file, not both"),
    ("profile_file with bad UTF-8", {"node.toml": NODE + SVC + 'profile_file = "p"\n',
                                     "p": b"<tars>\n\xff\n"},
     "p:2: not UTF-8 text: byte 0xff at column 1"),
    ("directory named x.toml", {"node.toml": NODE, "services.d/x.toml": None},
     "services.d/x.toml: cannot read services.d/x.toml: Is a directory"),
    ("bad UTF-8", {"node.toml": NODE, "services.d/bad.toml": b"# ok\n# \xff\n"},
     "services.d/bad.toml:2: not UTF-8 text: byte 0xff at column 3"),
    ("endpoint garbage", {"node.toml": NODE + SVC + ADAPTER.replace("-p 20001", "-x 1")},
     "node.toml:9: key 'endpoint': \"tcp -h 10.0.0.5 -x 1\": unknown option '-x'"),
    ("endpoint without port", {"node.toml": NODE + SVC + ADAPTER.replace(" -p 20001", "")},
     "node.toml:9: key 'endpoint': \"tcp -h 10.0.0.5\": endpoint needs both -h HOST and -p PORT"),
    ("endpoint not tcp", {"node.toml": NODE + SVC + ADAPTER.replace("tcp", "http")},
     "endpoint must start with tcp, udp or ssl, not 'http'"),
    ("duplicate adapter names",
     {"node.toml": NODE + SVC + ADAPTER + ADAPTER.replace("20001", "20002")},
     "node.toml:10: key 'name': adapter 'HelloObjAdapter' is defined twice: also at node.toml:7"),
    ("servant of another service",
     {"node.toml": NODE + SVC + ADAPTER.replace("Hello.Server.HelloObj", "Other.Server.Obj")},
     "node.toml:8: key 'servant': servant must start with 'Hello.Server.'"),
    ("servant with two parts",
     {"node.toml": NODE + SVC + ADAPTER.replace("Hello.Server.HelloObj", "Hello.HelloObj")},
     "node.toml:8: key 'servant': 'Hello.HelloObj' is not a servant name App.Server.Obj"),
    ("unknown protocol", {"node.toml": NODE + SVC + ADAPTER + 'protocol = "tras"\n'},
     "node.toml:10: key 'protocol': \"tras\" is not one of tars, not_tars, did you mean 'tars'?"),
    ("zero threads", {"node.toml": NODE + SVC + ADAPTER + "threads = 0\n"},
     "node.toml:10: key 'threads': 0 is not in 1.."),
    ("adapters not tables", {"node.toml": NODE + SVC + "adapters = [1]\n"},
     "node.toml:7: key 'adapters': expected an array of tables, got [1]"),
    ("bad pull policy", {"node.toml": NODE + IMAGES + 'pull = "sometimes"\n'},
     "node.toml:7: key 'pull': \"sometimes\" is not one of missing, always, never"),
    ("misspelt pull policy", {"node.toml": NODE + IMAGES + 'pull = "alway"\n'},
     "node.toml:7: key 'pull': \"alway\" is not one of missing, always, never, "
     "did you mean 'always'?"),
    ("unknown registry", {"node.toml": NODE + REGISTRY + IMAGES
                          + 'registry = "mian"\n'},
     "node.toml:9: key 'registry': no [registries.mian] table, did you mean 'main'?"),
    ("username without password", {"node.toml": NODE + REGISTRY + 'username = "u"\n'},
     "node.toml:7: key 'username': needs password_file as well"),
    ("password file mode 0644",
     {"node.toml": NODE + REGISTRY + 'username = "u"\npassword_file = "pw"\n',
      "pw": ("secret\n", 0o644)},
     "node.toml:8: key 'password_file': password file '{dir}/pw' has mode 0644; it must be "
     "0600 or stricter"),
    ("password file missing",
     {"node.toml": NODE + REGISTRY + 'username = "u"\npassword_file = "pw"\n'},
     "node.toml:8: key 'password_file': password file '{dir}/pw': No such file or directory"),
    ("password file a directory",
     {"node.toml": NODE + REGISTRY + 'username = "u"\npassword_file = "pw"\n',
      "pw/x": "x"},
     "node.toml:8: key 'password_file': password file '{dir}/pw' is not a regular file"),
    # a URL where the host is meant (as `docker login` and TarsFramework's registry column take)
    ("registry url with a scheme", {"node.toml": NODE + '[registries.harbor]\n'
                                    'url = "https://harbor.example.com/"\n'},
     "node.toml:6: key 'url': \"https://harbor.example.com/\" is not a registry host[:port]: "
     "write the host alone, did you mean 'harbor.example.com'?"),
    ("registry url with a path", {"node.toml": NODE + '[registries.harbor]\n'
                                  'url = "harbor.example.com:8443/project"\n'},
     "node.toml:6: key 'url': \"harbor.example.com:8443/project\" is not a registry host[:port]: "
     "write the host alone, did you mean 'harbor.example.com:8443'?"),
    ("registry without url", {"node.toml": NODE + '[registries.harbor]\nusername = "u"\n'
                              'password_file = "pw"\n', "pw": ("secret\n", 0o600)},
     "node.toml:5: key 'url': [registries.harbor] needs this key"),
    ("registry of another host", {"node.toml": NODE + REGISTRY + '[images.hub]\n'
                                  'ref = "busybox:1"\nregistry = "main"\n'},
     "node.toml:9: key 'registry': [registries.main] is for localhost:5000, but this image is "
     "pulled from docker.io"),
    ("relative tars_path", {"node.toml": NODE.replace('"/usr/local', '"usr/local')},
     "node.toml:3: key 'tars_path': \"usr/local/app/tars\" is not an absolute path"),
    ("tars_path with ..", {"node.toml": NODE.replace("/app/tars", "/../tars")},
     "node.toml:3: key 'tars_path': \"/usr/local/../tars\" must not contain '..'"),
    ("tars_path with a blank", {"node.toml": NODE.replace("/app/tars", "/my app")},
     "node.toml:3: key 'tars_path': \"/usr/local/my app\" may hold only letters, digits"),
    ("tars_path not normalized", {"node.toml": NODE.replace("/app/tars", "//app/tars/")},
     "node.toml:3: key 'tars_path': \"/usr/local//app/tars/\" is not normalized "
     "(write \"/usr/local/app/tars\")"),
    ("bad locator", {"node.toml": NODE.replace("tars.tarsregistry.QueryObj@", "")},
     "node.toml:4: key 'locator': \"tcp -h 10.0.0.1 -p 17890\": a proxy needs '@'"),
    ("locator with a bad servant", {"node.toml": NODE.replace("tars.tarsregistry.", "")},
     "node.toml:4: key 'locator': \"QueryObj@tcp -h 10.0.0.1 -p 17890\": 'QueryObj' is not a "
     "servant name App.Server.Obj"),
    ("bad network", {"node.toml": NODE + 'network = "overlay"\n'},
     "node.toml:5: key 'network': \"overlay\" is not one of host, bridge"),
    ("relative host_path", {"node.toml": NODE + 'host_path = "srv"\n'},
     "node.toml:5: key 'host_path': \"srv\" is not an absolute path"),
    ("NUL in a string", {"node.toml": NODE + 'localip = "a\\u0000b"\n'},
     "node.toml:5: key 'localip': \"a\\u0000b\" must not contain NUL or line breaks"),
    ("newline in exe", {"node.toml": NODE + SVC + 'exe = "a\\nb"\n'},
     "node.toml:7: key 'exe': \"a\\nb\" must not contain NUL or line breaks"),
    ("exe with ..", {"node.toml": NODE + SVC + 'exe = "../../bin/sh"\n'},
     "node.toml:7: key 'exe': \"../../bin/sh\" must not contain '..'"),
    ("exe with shell characters", {"node.toml": NODE + SVC + 'exe = "srv;reboot"\n'},
     "node.toml:7: key 'exe': \"srv;reboot\" may hold only letters, digits and . _ / -"),
    ("command for tars_cpp", {"node.toml": NODE + SVC + 'command = ["x"]\n'},
     "node.toml:7: key 'command': only not_tars services take a command (this one is tars_cpp"),
    ("not_tars without command", {"node.toml": NODE + '[services."A.B"]\ntype = "not_tars"\n'},
     "node.toml:5: key 'command': a not_tars service needs a command"),
    ("empty command", {"node.toml": NODE + '[services."A.B"]\ntype = "not_tars"\ncommand = []\n'},
     "node.toml:7: key 'command': must be a non-empty array of non-empty strings"),
    ("newline in command", {"node.toml": NODE + '[services."A.B"]\ntype = "not_tars"\n'
                            'command = ["sh", "-c\\nx"]\n'},
     "node.toml:7: key 'command': \"-c\\nx\" must not contain NUL or line breaks"),
    ("port out of range", {"node.toml": NODE + SVC + "local_port = 70000\n"},
     "node.toml:7: key 'local_port': 70000 is not in 0..65535"),
    ("async_thread negative", {"node.toml": NODE + SVC + "async_thread = -1\n"},
     "node.toml:7: key 'async_thread': -1 is not in 0.."),
    ("bad set division", {"node.toml": NODE + SVC + 'set_division = "a.b"\n'},
     "node.toml:7: key 'set_division': \"a.b\" is not a set name.area.group"),
    ("bad template name", {"node.toml": NODE + '[templates."a b"]\nparent = "x"\n'},
     "node.toml:5: key 'a b': 'a b' is not a valid templates name"),
    ("bad template parent", {"node.toml": NODE + '[templates.x]\nparent = "a/b"\n'},
     "node.toml:6: key 'parent': \"a/b\" is not a template name"),
    ("template named ..", {"node.toml": NODE + SVC + 'template = ".."\n'},
     "node.toml:7: key 'template': \"..\" is not a template name"),
    ("bad template of a service", {"node.toml": NODE + SVC + 'template = "../x"\n'},
     "node.toml:7: key 'template': \"../x\" is not a template name"),
    ("node table in services.d",
     {"node.toml": NODE, "services.d/x.toml": '[node]\nname = "y"\n'},
     "services.d/x.toml:1: key 'node': a services.d file may hold only "
     "[services.\"App.Server\"] tables"),
    ("images table in services.d", {"node.toml": NODE, "services.d/x.toml": IMAGES},
     "services.d/x.toml:1: key 'images': a services.d file may hold only"),
    ("TOML syntax error", {"node.toml": NODE + "x = \n"},
     "node.toml:5: TOML syntax error: invalid value"),
    ("TOML syntax error in services.d", {"node.toml": NODE, "services.d/a.toml": '\n\n[a\n'},
     "services.d/a.toml:3: TOML syntax error"),
    ("unterminated string", {"node.toml": NODE + 'x = """abc\n'},
     "node.toml:6: TOML syntax error: unterminated string"),
]


def write_config(root: Path, files: dict[str, Content]) -> None:
    """Write a config dir; see Content for what each value means."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, tuple):
            if isinstance(content[0], bytes):
                path.write_bytes(content[0])
            else:
                path.write_text(content[0])
            os.chmod(path, content[1])
        else:
            path.write_text(content)


def errors_of(root: Path) -> list[str]:
    with pytest.raises(InputErrors) as caught:
        load_manifest(root)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifest(tmp_path: Path, files: dict[str, Content], expected: str) -> None:
    write_config(tmp_path, files)
    expected = expected.replace("{dir}", str(tmp_path))
    found = errors_of(tmp_path)
    assert any(expected in error for error in found), "\n".join(found)


@pytest.mark.parametrize(("files", "expected"), [
    ({"node.toml": NODE + SVC + ADAPTER + '[services."Other.Server"]\ntype = "tars_go"\n'
      + ADAPTER.replace("Hello", "Other")},
     "node.toml:14: key 'endpoint': Other.Server adapter OtherObjAdapter listens on "
     "10.0.0.5:20001, already used by Hello.Server adapter HelloObjAdapter at node.toml:9"),
    ({"node.toml": NODE + SVC + "local_port = 20001\n" + ADAPTER.replace("10.0.0.5", "0.0.0.0")},
     "node.toml:10: key 'endpoint': Hello.Server adapter HelloObjAdapter listens on "
     "0.0.0.0:20001, already used by Hello.Server admin at node.toml:7"),
], ids=["duplicate endpoints", "endpoint on the admin port"])
def test_manifest_endpoints_on_one_port_are_an_error_of_the_node(
        tmp_path: Path, files: dict[str, Content], expected: str) -> None:
    # reported once the services are resolved (a template or profile may move one of them:
    # test_listeners), by validate and generate; the manifest alone says it is `clashing`
    from tarsdock.resolve import load_node

    write_config(tmp_path, files)
    assert load_manifest(tmp_path).clashing
    with pytest.raises(InputErrors) as caught:
        load_node(tmp_path)
    assert expected in [str(error) for error in caught.value.errors]


def test_all_errors_of_a_file_are_reported(tmp_path: Path) -> None:
    text = NODE + SVC + 'imgae = "x:1"\nlocal_port = "80"\n' + ADAPTER.replace("-p", "-P")
    write_config(tmp_path, {"node.toml": text})
    found = errors_of(tmp_path)
    assert [e.split(":")[1] for e in found] == ["7", "8", "11"], found
    assert "key 'imgae'" in found[0]
    assert "key 'local_port'" in found[1]
    assert "key 'endpoint'" in found[2]


def test_errors_of_several_files_are_reported_together(tmp_path: Path) -> None:
    write_config(tmp_path, {
        "node.toml": NODE + 'netwrok = "host"\n',
        "services.d/a.toml": SVC + 'exe = 5\n',
        "services.d/b.toml": "[a\n",
    })
    found = errors_of(tmp_path)
    assert len(found) == 3, found
    assert found[0].startswith("node.toml:5: key 'netwrok'")
    assert found[1].startswith("services.d/a.toml:3: key 'exe'")
    assert found[2].startswith("services.d/b.toml:1: TOML syntax error")


@pytest.mark.parametrize(("extra", "expected"), [
    ('type = "not_tars"\ncommand = "ls"\n',
     ["node.toml:7: key 'command': expected an array of strings, got \"ls\""]),
    ('run = "container"\nimage = 5\n', ["node.toml:8: key 'image': expected a string, got 5"]),
])
def test_a_bad_value_is_not_also_called_missing(tmp_path: Path, extra: str,
                                                expected: list[str]) -> None:
    service = '[services."Hello.Server"]\n' + ("" if "type" in extra else 'type = "tars_cpp"\n')
    write_config(tmp_path, {"node.toml": NODE + service + extra})
    assert errors_of(tmp_path) == expected


def test_a_broken_image_is_reported_once(tmp_path: Path) -> None:
    write_config(tmp_path, {"node.toml": NODE + '[images.base]\nref = "Bad Ref"\n' + SVC
                            + 'image = "base"\n'})
    assert errors_of(tmp_path) == [
        "node.toml:6: key 'ref': 'Bad Ref' is not a valid image reference "
        "([host[:port]/]path[:tag][@sha256:digest], path in lowercase)"]



@pytest.mark.parametrize("name", ["services.d/f.toml", "templates/f", "p.conf"])
def test_a_fifo_is_refused_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    name: str) -> None:
    # opening a FIFO blocks until a writer comes: validate hung for ever on one in services.d
    write_config(tmp_path, {"node.toml": NODE + SVC + 'profile_file = "p.conf"\n',
                            "p.conf": "<tars>\n</tars>\n", "templates/t": "<tars>\n</tars>\n"})
    (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / name).parent.mkdir(exist_ok=True)
    os.mkfifo(tmp_path / name)
    writer = threading.Timer(20, (tmp_path / name).write_text, [""])   # ends a regression's hang
    writer.start()
    try:
        assert main(["--config-dir", str(tmp_path), "validate"]) == 5
    finally:
        writer.cancel()
    assert f"cannot read {name}: not a regular file" in capsys.readouterr().err
