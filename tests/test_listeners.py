"""Endpoints only a template or profile names are checked for clashes like the manifest's
(tarsdock.listeners): against pinned admin ports, manifest adapters, node_port and each other,
at the line that writes them, by validate and generate alike, nothing written (tryout14c O2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarsdock.cli import main
from tarsdock.endpoint import parse_endpoint
from tarsdock.errors import ErrorCollector, Origin
from tarsdock.listeners import Listener, check_listeners, clash, may_clash
from tarsdock.shards import JOBS_VARIABLE

NODE = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"
node_port = 19500

[services."App1.S1"]
type = "tars_cpp"
local_port = 41001
[[services."App1.S1".adapters]]
servant = "App1.S1.Obj"
endpoint = "tcp -h 10.0.0.5 -p 21001"
"""
# node.toml lines: node_port 5, local_port 9, the adapter's endpoint 12

# a profile adapter of App2.S2; its endpoint is at line PROFILE_LINE of node.toml
PROFILE = '''
[services."App2.S2"]
type = "tars_cpp"
local_port = 41002
profile = """
<tars>
  <application>
    <server>
      <App2.S2.FooAdapter>
        endpoint = {endpoint}
        servant = App2.S2.FooObj
        allow =
        threads = 1
      </App2.S2.FooAdapter>
    </server>
  </application>
</tars>
"""
'''
PROFILE_LINE = 22


def run(root: Path, *argv: str) -> int:
    return main(["--config-dir", str(root / "cfg"), *argv])


def node(root: Path, endpoint: str, more: str = "") -> None:
    (root / "cfg").mkdir()
    (root / "cfg" / "node.toml").write_text(NODE.format(tars=root / "tars")
                                           + PROFILE.format(endpoint=endpoint) + more)


def listener(text: str, label: str = "x", line: int = 1) -> Listener:
    return (parse_endpoint(text), Origin("f", line), label, "endpoint")


@pytest.fixture(params=["1", "3"], ids=["one process", "three processes"])
def jobs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # a node rendered in shards finds the clash there and is loaded again with lines
    monkeypatch.setenv(JOBS_VARIABLE, request.param)


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize(("endpoint", "first"), [
    ("tcp -h 127.0.0.1 -p 41001 -t 60000", "App1.S1 admin at node.toml:9"),
    ("tcp -h 10.0.0.5 -p 21001 -t 60000", "App1.S1 adapter ObjAdapter at node.toml:12"),
    ("tcp -h 127.0.0.1 -p 19500 -t 60000", "tarsdock's node object at node.toml:5"),
    # bind semantics: the wildcard takes the port on every address
    ("tcp -h 0.0.0.0 -p 21001 -t 60000", "App1.S1 adapter ObjAdapter at node.toml:12"),
    ("ssl -h * -p 41001 -t 60000", "App1.S1 admin at node.toml:9"),
], ids=["pinned local_port", "manifest adapter", "node_port", "0.0.0.0", "ssl *"])
def test_a_profile_endpoint_on_a_port_of_the_manifest_is_an_error_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, first: str) -> None:
    node(tmp_path, endpoint)
    host_port = " ".join(endpoint.split()[2:5:2]).replace(" ", ":")
    expected = (f"node.toml:{PROFILE_LINE}: key 'endpoint': App2.S2 adapter FooAdapter listens "
                f"on {host_port}, already used by {first}")
    assert run(tmp_path, "validate") == 1
    assert expected in capsys.readouterr().err
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "systemd", "--out", str(out)) == 1
    assert expected in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "tars").exists()


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("endpoint", [
    "udp -h 10.0.0.5 -p 21001 -t 60000",        # udp has ports of its own
    "tcp -h 10.0.0.6 -p 21001 -t 60000",        # another address
    "tcp -h 127.0.0.1 -p 21002 -t 60000",       # another port
], ids=["udp", "other address", "other port"])
def test_a_profile_endpoint_that_clashes_with_nothing_is_ok(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str) -> None:
    node(tmp_path, endpoint)
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("jobs")
def test_two_template_endpoints_clash_and_every_error_comes_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a template two services use declares one adapter: the second service cannot bind it;
    # a profile hard-codes an admin endpoint on node_port; a manifest error besides
    template = ("<tars>\n  <application>\n    <server>\n      <Shared>\n"
                "        endpoint = tcp -h 0.0.0.0 -p 23000\n"
                "        servant = ${modulename}.SharedObj\n        allow =\n        threads = 1\n"
                "      </Shared>\n"
                "    </server>\n  </application>\n</tars>\n")
    more = ('[services."App3.S3"]\ntype = "tars_cpp"\ntemplate = "t.shared"\n'
            '[services."App3.S4"]\ntype = "tars_cpp"\ntemplate = "t.shared"\n'
            'profile = """\n<tars>\n<application>\n<server>\n'
            'local = tcp -h 127.0.0.1 -p 19500\n</server>\n</application>\n</tars>\n"""\n'
            '[services."App3.S5"]\ntype = "tars_cpp"\nthreads = 1\n')
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", more)
    (tmp_path / "cfg" / "templates").mkdir()
    (tmp_path / "cfg" / "templates" / "t.shared").write_text(template)
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    shared = ("templates/t.shared:5: key 'endpoint': App3.S4 adapter Shared listens on "
              "0.0.0.0:23000, already used by App3.S3 adapter Shared at templates/t.shared:5")
    admin = ("node.toml:41: key 'local': App3.S4 admin listens on 127.0.0.1:19500, already used "
             "by tarsdock's node object at node.toml:5")
    assert shared in err and admin in err and "key 'threads'" in err
    assert run(tmp_path, "generate", "--format", "supervisord", "--out",
               str(tmp_path / "out")) == 1
    assert capsys.readouterr().err == err
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("jobs")
def test_a_host_name_on_a_port_of_an_address_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # TC_Socket::parseAddr resolves a name when the service binds: localhost is 127.0.0.1 on
    # nearly every host, but not certainly
    node(tmp_path, "tcp -h localhost -p 41001 -t 60000")
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == (
        f"warning: node.toml:{PROFILE_LINE}: key 'endpoint': App2.S2 adapter FooAdapter listens "
        "on localhost:41001, and App1.S1 admin on 127.0.0.1:41001 at node.toml:9: one of them "
        "cannot bind if 'localhost' resolves to 127.0.0.1 (a service resolves a host name when "
        "it binds); write the address\n")


def test_a_template_rewriting_a_manifest_adapter_does_not_clash_with_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # App1.S1's profile moves its own adapter from 10.0.0.5 to every address of that port
    profile = ('profile = "<tars>\\n<application>\\n<server>\\n<App1.S1.ObjAdapter>\\n'
               'endpoint = tcp -h 0.0.0.0 -p 21001\\n</App1.S1.ObjAdapter>\\n</server>\\n'
               '</application>\\n</tars>\\n"\n')
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "node.toml").write_text(NODE.format(tars=tmp_path / "tars").replace(
        "local_port = 41001\n", "local_port = 41001\n" + profile))
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


def test_clash_is_bind_semantics() -> None:
    assert clash(parse_endpoint("tcp -h 0.0.0.0 -p 1"), parse_endpoint("tcp -h 10.0.0.5 -p 1"))
    assert clash(parse_endpoint("tcp -h 10.0.0.5 -p 1"), parse_endpoint("ssl -h * -p 1"))
    assert clash(parse_endpoint("tcp -h LocalHost -p 1"), parse_endpoint("tcp -h localhost -p 1"))
    assert clash(parse_endpoint("udp -h 0.0.0.0 -p 1"), parse_endpoint("udp -h 10.0.0.5 -p 1"))
    assert not clash(parse_endpoint("udp -h 0.0.0.0 -p 1"), parse_endpoint("tcp -h 0.0.0.0 -p 1"))
    assert not clash(parse_endpoint("tcp -h 10.0.0.6 -p 1"), parse_endpoint("tcp -h 10.0.0.5 -p 1"))
    assert not clash(parse_endpoint("tcp -h 10.0.0.5 -p 2"), parse_endpoint("tcp -h 10.0.0.5 -p 1"))
    assert may_clash(parse_endpoint("tcp -h localhost -p 1"),
                     parse_endpoint("tcp -h 127.0.0.1 -p 1"))
    assert may_clash(parse_endpoint("tcp -h a -p 1"), parse_endpoint("tcp -h b -p 1"))
    assert not may_clash(parse_endpoint("tcp -h 127.0.0.2 -p 1"),
                         parse_endpoint("tcp -h 127.0.0.1 -p 1"))
    assert not may_clash(parse_endpoint("udp -h localhost -p 1"),
                         parse_endpoint("tcp -h 127.0.0.1 -p 1"))
    # not an address inet_pton takes: gethostbyname_r may read it as one, or not
    assert may_clash(parse_endpoint("tcp -h 127.1 -p 1"), parse_endpoint("tcp -h 127.0.0.1 -p 1"))


def test_check_listeners_reports_the_later_against_known_and_its_own() -> None:
    errors = ErrorCollector()
    known = [listener("tcp -h 10.0.0.5 -p 1", "manifest", 1),
             listener("tcp -h 10.0.0.5 -p 9", "elsewhere", 2)]
    notes = check_listeners([listener("tcp -h 0.0.0.0 -p 1", "a", 10),
                             listener("tcp -h 10.0.0.6 -p 2", "b", 11),
                             listener("tcp -h 10.0.0.6 -p 2", "c", 12),
                             listener("tcp -h name -p 3", "d", 13),
                             listener("tcp -h 10.0.0.7 -p 3", "e", 14)], errors, known)
    assert [str(e) for e in errors.errors] == [
        "f:10: key 'endpoint': a listens on 0.0.0.0:1, already used by manifest at f:1",
        "f:12: key 'endpoint': c listens on 10.0.0.6:2, already used by b at f:11"]
    assert [str(n) for n in notes] == [
        "f:14: key 'endpoint': e listens on 10.0.0.7:3, and d on name:3 at f:13: one of them "
        "cannot bind if 'name' resolves to 10.0.0.7 (a service resolves a host name when it "
        "binds); write the address"]
    # nothing to check: the known ones are not looked at (they were checked as they were read)
    assert check_listeners([], errors, known) == [] and len(errors.errors) == 2


def test_an_admin_endpoint_a_profile_writes_is_never_given_out(tmp_path: Path) -> None:
    # App2.S2's profile writes its own local on the port the walk gives App3.S3 first: the
    # draw goes around it, as around a template's adapter (ports_in_use)
    from test_localports import first_draw

    from tarsdock.resolve import load_node

    taken = first_draw("App3.S3")
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", '[services."App3.S3"]\ntype = "tars_cpp"\n')
    text = (tmp_path / "cfg" / "node.toml").read_text().replace(
        "    <server>\n", f"    <server>\n      local = tcp -h 127.0.0.1 -p {taken}\n", 1)
    (tmp_path / "cfg" / "node.toml").write_text(text)
    services = {s.name: s for s in load_node(tmp_path / "cfg").services}
    assert f"local=tcp -h 127.0.0.1 -p {taken}\n" in services["App2.S2"].config_text
    assert services["App3.S3"].spec.local_port == taken + 1


@pytest.mark.usefixtures("jobs")
def test_an_admin_endpoint_a_template_writes_is_checked_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000",
         '[services."App3.S3"]\ntype = "tars_cpp"\ntemplate = "t.admin"\n')
    (tmp_path / "cfg" / "templates").mkdir()
    (tmp_path / "cfg" / "templates" / "t.admin").write_text(
        "<tars>\n<application>\n<server>\nlocal = tcp -h 127.0.0.1 -p 41001 -t 10000\n"
        "</server>\n</application>\n</tars>\n")
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        "error: templates/t.admin:4: key 'local': App3.S3 admin listens on 127.0.0.1:41001, "
        "already used by App1.S1 admin at node.toml:9\n")


@pytest.mark.usefixtures("jobs")
def test_manifest_endpoints_on_a_host_name_and_an_address_are_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    more = ('[services."App3.S3"]\ntype = "tars_cpp"\n[[services."App3.S3".adapters]]\n'
            'servant = "App3.S3.Obj"\nendpoint = "tcp -h Node5 -p 21001"\n')
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", more)
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == (
        "warning: node.toml:35: key 'endpoint': App3.S3 adapter ObjAdapter listens on "
        "Node5:21001, and App1.S1 adapter ObjAdapter on 10.0.0.5:21001 at node.toml:12: one of "
        "them cannot bind if 'Node5' resolves to 10.0.0.5 (a service resolves a host name when "
        "it binds); write the address\n")


def moved_by_profile(adapter: str, endpoint: str) -> str:
    """A service's profile key giving its manifest adapter `adapter` (App.Server.Name) another
    endpoint."""
    return (f'profile = "<tars>\\n<application>\\n<server>\\n<{adapter}>\\n'
            f'endpoint = {endpoint}\\n</{adapter}>\\n</server>\\n</application>\\n'
            '</tars>\\n"\n')


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("moved", ["App1.S1", "App3.S3"], ids=["the address", "the name"])
@pytest.mark.parametrize("command", ["validate", "generate"])
def test_a_manifest_listener_a_template_moved_is_in_no_may_clash_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], moved: str, command: str) -> None:
    # the pair of test_manifest_endpoints_on_a_host_name_and_an_address_are_a_warning, with one
    # of the two adapters moved to another port by its service's profile: the final configs
    # bind no two endpoints on one port, as the errors already said (check_manifest_listeners)
    more = ('[services."App3.S3"]\ntype = "tars_cpp"\n[[services."App3.S3".adapters]]\n'
            'servant = "App3.S3.Obj"\nendpoint = "tcp -h Node5 -p 21001"\n')
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", more)
    toml = tmp_path / "cfg" / "node.toml"
    host = "10.0.0.5" if moved == "App1.S1" else "Node5"
    toml.write_text(toml.read_text().replace(
        f'[services."{moved}"]\ntype = "tars_cpp"\n', f'[services."{moved}"]\ntype = "tars_cpp"\n'
        + moved_by_profile(f"{moved}.ObjAdapter", f"tcp -h {host} -p 21009"), 1))
    argv = ["generate", "--format", "systemd", "--out", str(tmp_path / "out")] \
        if command == "generate" else ["validate"]
    assert run(tmp_path, *argv) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("host", "address"), [
    ("10.0.0.5", True), ("0.0.0.0", True), ("255.255.255.255", True),
    ("256.0.0.1", False), ("10.0.0", False), ("10.0.0.5.1", False), ("010.0.0.5", False),
    ("10..0.5", False), ("localhost", False), ("1e1.0.0.1", False), ("\u0661.0.0.1", False),
])
def test_is_ipv4_is_what_inet_pton_takes(host: str, address: bool) -> None:
    import socket

    from tarsdock.listeners import is_ipv4

    try:
        socket.inet_pton(socket.AF_INET, host)
        taken = True
    except OSError:
        taken = False
    assert is_ipv4(host) is address is taken


# --- endpoints as TarsCpp reads them (TC_Endpoint::parse), and what it cannot bind -----------

@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize(("endpoint", "problem"), [
    ("tcp -h 10.0.0.5 -p 99999", "-p must be an integer in 0..65535, not '99999'"),
    ("tcp -h 10.0.0.5 -p 80x", "-p must be an integer in 0..65535, not '80x'"),
    ("tcp -h 10.0.0.5 -p", "-p must be an integer in 0..65535, not ''"),
    ("tcp -h -p 21009", "-h has no value"),
    ("TCP -h 10.0.0.5 -p 21009", "it must start with tcp, udp or ssl, not 'TCP'"),
    ("tcp -h 10.0.0.5 -p 21009 60000", "'60000' is not an option (-x)"),
    ("tcp -h 10.0.0.5 -p 21009 -t", "-t must be an integer, not ''"),
    ("tcp -h 10.0.0.5 -p 21009 -e 2", "-e must be 0 or 1, not '2'"),
    ("tcp -h [::1] -p 21009", "host '[::1]' has a ':', so TarsCpp binds it as IPv6 "
                              "(TC_Socket::addressIsIPv6), and it is no IPv6 address"),
], ids=["port out of range", "port not a number", "port without value", "host without value",
        "unknown transport", "stray word", "timeout without value", "bad -e", "bracketed v6"])
def test_an_endpoint_tarscpp_cannot_bind_is_an_error_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, problem: str) -> None:
    # TC_Endpoint::parse throws, or TC_Socket::parseAddr: Application::main catches it and exits
    node(tmp_path, endpoint)
    expected = (f"error: node.toml:{PROFILE_LINE}: key 'endpoint': TarsCpp cannot bind"
                f" endpoint '{endpoint}': {problem}\n")
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == expected
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "supervisord", "--out", str(out)) == 1
    assert capsys.readouterr().err == expected
    assert not out.exists() and not (tmp_path / "tars").exists()


@pytest.mark.usefixtures("jobs")
def test_a_bad_endpoint_is_reported_with_every_other_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a template's bad admin endpoint, a profile's bad adapter endpoint, a clash, a manifest error
    node(tmp_path, "tcp -h 10.0.0.5 -p 70000",
         '[services."App3.S3"]\ntype = "tars_cpp"\ntemplate = "t.bad"\n'
         '[services."App3.S4"]\ntype = "tars_cpp"\nthreads = 1\n'
         '[services."App3.S5"]\ntype = "tars_cpp"\nprofile = "<tars>\\n<application>\\n'
         '<server>\\nlocal = tcp -h 127.0.0.1 -p 19500\\n</server>\\n</application>\\n'
         '</tars>\\n"\n')
    (tmp_path / "cfg" / "templates").mkdir()
    (tmp_path / "cfg" / "templates" / "t.bad").write_text(
        "<tars>\n<application>\n<server>\nlocal = udp -h 127.0.0.1 -p 1 -q x\n"
        "</server>\n</application>\n</tars>\n")
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: node.toml:{PROFILE_LINE}: key 'endpoint': TarsCpp cannot bind"
        " endpoint 'tcp -h 10.0.0.5 -p 70000': -p must be an integer in 0..65535, "
        "not '70000'",
        "error: node.toml:36: key 'threads': unknown key in [services.\"App3.S4\"], did you mean "
        "'async_thread'?",
        "error: node.toml:42: key 'local': App3.S5 admin listens on 127.0.0.1:19500, already "
        "used by tarsdock's node object at node.toml:5",
        "error: templates/t.bad:4: key 'local': TarsCpp cannot bind endpoint "
        "'udp -h 127.0.0.1 -p 1 -q x': -q must be an integer, not 'x'"]
    assert run(tmp_path, "generate", "--format", "systemd", "--out", str(tmp_path / "o")) == 1
    assert capsys.readouterr().err == err
    assert not (tmp_path / "o").exists()


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize(("endpoint", "host"), [
    ("tcp -p 21001 -t 60000", "0.0.0.0"),                  # no -h: TC_Endpoint's 0.0.0.0
    ("tcp -h :: -p 21001", "::"),                          # dual-stack: every IPv4 address too
    ("tcp -h ::ffff:10.0.0.5 -p 21001", "::ffff:10.0.0.5"),  # 10.0.0.5 as IPv6 sees it
    ("tcp -p 1 -h 10.0.0.5 -p 21001 -P 3", "10.0.0.5"),   # later -p wins, -P is ignored
], ids=["no -h", "::", "v4-mapped", "odd but read"])
def test_endpoints_tarscpp_reads_are_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, host: str) -> None:
    node(tmp_path, endpoint)
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        f"error: node.toml:{PROFILE_LINE}: key 'endpoint': App2.S2 adapter FooAdapter listens "
        f"on {host}:21001, already used by App1.S1 adapter ObjAdapter at node.toml:12\n")


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("endpoint", [
    "tcp -h ::1 -p 41001",                 # IPv6 loopback is not 127.0.0.1
    "tcp -h fe80::1 -p 21001",
    "tcp -h /run/app2.sock -p 0",          # a unix-domain socket (TC_Endpoint::isUnixLocal)
    "tcp -h 10.0.0.6 -p 21001 -x 7 -t 1",  # TarsCpp ignores an unknown option
], ids=["::1", "other v6", "unix socket", "unknown option"])
def test_endpoints_tarscpp_reads_that_clash_with_nothing_are_ok(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str) -> None:
    node(tmp_path, endpoint)
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("jobs")
def test_an_endpoint_without_a_port_is_a_unix_socket_and_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, "tcp -h 10.0.0.5 -t 60000")
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == (
        f"warning: node.toml:{PROFILE_LINE}: key 'endpoint': 'tcp -h 10.0.0.5 -t 60000' "
        "has no -p (or -p 0): TarsCpp binds a unix-domain socket "
        "at the path '10.0.0.5' (TC_Endpoint::isUnixLocal), no TCP or UDP port\n")


@pytest.mark.parametrize(("a", "b", "clashes"), [
    ("tcp -h :: -p 1", "tcp -h 10.0.0.5 -p 1", True),
    ("tcp -h :: -p 1", "tcp -h ::1 -p 1", True),
    ("tcp -h :: -p 1", "tcp -h name -p 1", True),
    ("udp -h :: -p 1", "udp -h 0.0.0.0 -p 1", True),
    ("tcp -h ::1 -p 1", "tcp -h 0:0:0:0:0:0:0:1 -p 1", True),
    ("tcp -h ::ffff:127.0.0.1 -p 1", "tcp -h 127.0.0.1 -p 1", True),
    ("tcp -h ::ffff:127.0.0.1 -p 1", "tcp -h 0.0.0.0 -p 1", True),
    # ::ffff:0.0.0.0 is IPv4's wildcard as IPv6 sees it: every IPv4 address, no IPv6 one
    ("tcp -h ::ffff:0.0.0.0 -p 1", "tcp -h 127.0.0.1 -p 1", True),
    ("tcp -h ::ffff:0.0.0.0 -p 1", "tcp -h ::ffff:127.0.0.1 -p 1", True),
    ("tcp -h ::ffff:0.0.0.0 -p 1", "tcp -h 0.0.0.0 -p 1", True),
    ("tcp -h ::ffff:0.0.0.0 -p 1", "tcp -h :: -p 1", True),
    ("tcp -h ::ffff:0.0.0.0 -p 1", "tcp -h ::1 -p 1", False),
    ("tcp -p 1", "tcp -h 127.0.0.1 -p 1", True),
    ("tcp -h ::1 -p 1", "tcp -h 127.0.0.1 -p 1", False),
    ("tcp -h ::1 -p 1", "tcp -h 0.0.0.0 -p 1", False),
    ("tcp -h ::1 -p 1", "tcp -h ::2 -p 1", False),
    ("tcp -h :: -p 1", "udp -h :: -p 1", False),
    ("tcp -h :: -p 1", "tcp -h :: -p 2", False),
])
def test_clash_with_ipv6_is_linux_dual_stack(a: str, b: str, clashes: bool) -> None:
    from tarsdock.endpoint import parse_bind

    here, there = parse_bind(a), parse_bind(b)
    assert clash(here, there) is clashes and clash(there, here) is clashes
    # a host name is looked up as IPv4 (gethostbyname_r): never an IPv6 address
    assert not may_clash(parse_bind("tcp -h name -p 1"), parse_bind("tcp -h ::1 -p 1"))


def test_a_template_moving_a_manifest_adapter_frees_the_manifest_port(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # App1.S1's profile moves its adapter to 21005 and its admin endpoint off the pinned 41001;
    # App2.S2 takes both freed ports, and a third service clashes with where they went
    profile = ('profile = "<tars>\\n<application>\\n<server>\\nlocal = tcp -h 127.0.0.1 -p 41005'
               '\\n<App1.S1.ObjAdapter>\\nendpoint = tcp -h 10.0.0.5 -p 21005\\n'
               '</App1.S1.ObjAdapter>\\n</server>\\n</application>\\n</tars>\\n"\n')
    node(tmp_path, "tcp -h 10.0.0.5 -p 21001", '[services."App3.S3"]\ntype = "tars_cpp"\n'
         'profile = "<tars>\\n<application>\\n<server>\\n<App3.S3.A>\\n'
         'endpoint = tcp -h 0.0.0.0 -p 21005\\nservant = App3.S3.AObj\\nallow =\\nthreads = 1\\n'
         '</App3.S3.A>\\n</server>\\n</application>\\n'
         '</tars>\\n"\n')
    text = (tmp_path / "cfg" / "node.toml").read_text()
    text = text.replace("local_port = 41001\n", "local_port = 41001\n" + profile).replace(
        "    <server>\n", "    <server>\n      local = tcp -h 127.0.0.1 -p 41001\n", 1)
    (tmp_path / "cfg" / "node.toml").write_text(text)
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert "App2.S2" not in err
    assert err == ("error: node.toml:39: key 'endpoint': App3.S3 adapter A listens on "
                   "0.0.0.0:21005, already used by App1.S1 adapter ObjAdapter at node.toml:15\n")


FRAMEWORK = ("tars.tarsnode", "tars.tarsregistry")


def test_the_shared_templates_give_an_ordinary_node_no_error_nor_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from shared_templates import SHARED_TEMPLATES

    # a business service's templates: tars.tarsnode and tars.tarsregistry are the framework's
    # own (with a <container> of tarsnode's, which tarsdock warns it does not read)
    names = sorted(p.name for p in SHARED_TEMPLATES.iterdir()
                   if p.name.startswith("tars.") and p.name not in FRAMEWORK)
    assert len(names) == 5
    (tmp_path / "cfg" / "templates").mkdir(parents=True)
    more = ""
    for i, name in enumerate(names):
        (tmp_path / "cfg" / "templates" / name).write_text((SHARED_TEMPLATES / name).read_text())
        more += (f'[services."Shared{i}.S"]\ntype = "tars_cpp"\ntemplate = "{name}"\n'
                 f'local_port = {42000 + i}\n[[services."Shared{i}.S".adapters]]\n'
                 f'servant = "Shared{i}.S.Obj"\nendpoint = "tcp -h 10.0.0.5 -p {22000 + i}"\n')
    (tmp_path / "cfg" / "node.toml").write_text(NODE.format(tars=tmp_path / "tars") + more)
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == ""


# an option and a value TarsCpp reads, in the text written for it (any sign, leading zeros)
OPTION_VALUES = {
    "h": st.sampled_from(["10.0.0.5", "0.0.0.0", "*", "::", "::1", "name.example", "/run/a.sock"]),
    "p": st.integers(0, 65535), "t": st.integers(0, 2**31 - 1), "g": st.integers(0, 9),
    "q": st.integers(0, 63), "w": st.integers(0, 100), "v": st.integers(0, 2),
    "e": st.integers(0, 1), "z": st.integers(0, 9)}
SPACE = st.text(" \t", min_size=1, max_size=2)


@st.composite
def written(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """An endpoint text TarsCpp reads, and what it reads in it (the last of a repeated
    option; an unknown one such as -z ignored)."""
    transport = draw(st.sampled_from(["tcp", "udp", "ssl"]))
    options = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=6))
    words, read = [transport], {}
    for letter in options:
        value = draw(OPTION_VALUES[letter])
        text = str(value)
        if isinstance(value, int):
            text = draw(st.sampled_from(["", "+", "0"])) + text
        words += [f"-{letter}", text]
        read[letter] = value
    gaps = [draw(SPACE) for _ in words]
    return draw(SPACE) + "".join(w + g for w, g in zip(words, gaps, strict=True)), {
        "transport": transport, **read}


@given(written())
def test_any_endpoint_tarscpp_reads_is_read_as_it_reads_it(
        case: tuple[str, dict[str, object]]) -> None:
    from tarsdock.endpoint import parse_bind

    text, read = case
    endpoint = parse_bind(text)
    assert endpoint.transport == read["transport"]
    # TC_Endpoint() starts at 0.0.0.0, port 0, timeout 3000 (TC_Endpoint's constructor)
    assert endpoint.host == read.get("h", "0.0.0.0")
    assert endpoint.port == read.get("p", 0)
    assert endpoint.timeout == read.get("t", 3000)


@given(written(), st.sampled_from(["x", "-p", "-t 1x", "-pp 1", "-é 1", "-e 3", "-p 65536",
                                   "-h", "-v +-1", "-t 2147483648"]))
def test_an_endpoint_with_a_word_tarscpp_refuses_is_refused(
        case: tuple[str, dict[str, object]], bad: str) -> None:
    from tarsdock.endpoint import EndpointError, parse_bind

    with pytest.raises(EndpointError):
        parse_bind(f"{case[0]} {bad}")


@pytest.mark.usefixtures("jobs")
def test_a_bad_endpoint_in_a_template_is_one_error_however_many_services_use_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", "".join(
        f'[services."App3.S{i}"]\ntype = "tars_cpp"\ntemplate = "t.bad"\n' for i in range(3)))
    (tmp_path / "cfg" / "templates").mkdir()
    (tmp_path / "cfg" / "templates" / "t.bad").write_text(
        "<tars>\n<application>\n<server>\n<${modulename}.A>\nendpoint = tcp -h ${localip} -p 0x50\n"
        "servant = ${modulename}.AObj\nallow =\nthreads = 1\n</${modulename}.A>\n</server>\n"
        "</application>\n</tars>\n")
    assert run(tmp_path, "validate") == 1
    assert capsys.readouterr().err == (
        "error: templates/t.bad:5: key 'endpoint': TarsCpp cannot bind endpoint "
        "'tcp -h 10.0.0.5 -p 0x50': -p must be an integer in 0..65535, not '0x50'\n")


@pytest.mark.parametrize(("endpoint", "err"), [
    ("tcp -h 0.0.0.0 -p 21001", ""),   # bound in the container's own network: no clash
    ("tcp -h 0.0.0.0 -p 99999", f"error: node.toml:{PROFILE_LINE + 2}: key 'endpoint': TarsCpp "
                                "cannot bind endpoint 'tcp -h 0.0.0.0 -p 99999': -p must be an "
                                "integer in 0..65535, not '99999'\n"),
], ids=["clash", "bad"])
def test_a_bridged_container_binds_in_its_own_network_but_a_bad_endpoint_stops_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, err: str) -> None:
    node(tmp_path, endpoint)
    text = (tmp_path / "cfg" / "node.toml").read_text().replace(
        'node_port = 19500\n', 'node_port = 19500\nnetwork = "bridge"\n').replace(
        'local_port = 41002\n', 'local_port = 41002\nimage = "tarsdock-test/busybox:1"\n')
    (tmp_path / "cfg" / "node.toml").write_text(text)
    assert run(tmp_path, "validate") == (1 if err else 0)
    assert capsys.readouterr().err == err


MOVED = ('profile = "<tars>\\n<application>\\n<server>\\n<App1.S1.ObjAdapter>\\n'
         'endpoint = tcp -h 10.0.0.5 -p 21005\\n</App1.S1.ObjAdapter>\\n</server>\\n'
         '</application>\\n</tars>\\n"\n')


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize(("takers", "err"), [
    (1, ""),
    (2, "error: node.toml:41: key 'endpoint': App3.S4 adapter ObjAdapter listens on "
        "10.0.0.5:21001, already used by App3.S3 adapter ObjAdapter at node.toml:36\n"),
], ids=["one manifest adapter takes the freed port", "two do"])
def test_a_manifest_adapter_may_take_the_port_a_template_moved_another_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], takers: int, err: str) -> None:
    more = "".join(f'[services."App3.S{3 + i}"]\ntype = "tars_cpp"\n'
                   f'[[services."App3.S{3 + i}".adapters]]\nservant = "App3.S{3 + i}.Obj"\n'
                   'endpoint = "tcp -h 10.0.0.5 -p 21001"\n' for i in range(takers))
    node(tmp_path, "tcp -h 10.0.0.5 -p 22000", more)
    text = (tmp_path / "cfg" / "node.toml").read_text()
    (tmp_path / "cfg" / "node.toml").write_text(
        text.replace("local_port = 41001\n", "local_port = 41001\n" + MOVED))
    assert run(tmp_path, "validate") == (1 if err else 0)
    assert capsys.readouterr().err == err
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "systemd", "--out", str(out)) == (
        1 if err else 0)
    assert capsys.readouterr().err == err
    assert out.exists() is not err


def java_node(root: Path, endpoint: str) -> None:
    """node() with App2.S2 a tars_java service (its profile writes the adapter and the class)."""
    node(root, endpoint)
    toml = root / "cfg" / "node.toml"
    text = toml.read_text()
    text = text.replace('[services."App2.S2"]\ntype = "tars_cpp"\n',
                        '[services."App2.S2"]\ntype = "tars_java"\n', 1)
    # the class java starts: a line above the adapter's endpoint
    toml.write_text(text.replace("    <server>\n", "    <server>\n      mainclass = a.B\n", 1))


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize(("endpoint", "problem"), [
    ("TCP -h 10.0.0.5 -p 21001", "it must start with tcp, udp or ssl, not 'TCP'"),
    ("tcp -h 10.0.0.5 -p 21001 60000", "'60000' is not an option (-x)"),
    ("tcp -p 21001", "no -h"),
    ("tcp -h 10.0.0.5 -t 60000", "no port"),
], ids=["transport in capitals", "stray word", "no host", "no port"])
def test_an_endpoint_of_another_runtime_tarscpp_rules_cannot_read_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, problem: str) -> None:
    # a tester's finding: TarsJava's Endpoint.parseString (TarsCloud/TarsJava,
    # core/src/main/java/com/qq/tars/common/support/Endpoint.java) takes the transport in any
    # case, skips a stray word and makes no endpoint without -h; TarsCpp's rules made these
    # errors of a Java service.
    # Each would clash with App1.S1's adapter on 21001 as TarsCpp reads it: not checked here.
    java_node(tmp_path, endpoint)
    expected = (f"warning: node.toml:{PROFILE_LINE + 1}: key 'endpoint': endpoint '{endpoint}' "
                f"of a tars_java service is not checked for port clashes: tarsdock reads "
                f"endpoints as TarsCpp does ({problem}), and tars_java's runtime reads them "
                "its own way\n")
    assert run(tmp_path, "validate") == 0
    assert capsys.readouterr().err == expected
    out = tmp_path / "out"
    assert run(tmp_path, "generate", "--format", "supervisord", "--out", str(out)) == 0
    assert capsys.readouterr().err.startswith(expected)


@pytest.mark.usefixtures("jobs")
def test_an_endpoint_of_another_runtime_that_tarscpp_rules_read_is_still_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    java_node(tmp_path, "tcp -h 10.0.0.5 -p 21001 -t 60000")
    assert run(tmp_path, "validate") == 1
    err = capsys.readouterr().err
    assert f"error: node.toml:{PROFILE_LINE + 1}: key 'endpoint'" in err, err
    assert "App1.S1 adapter ObjAdapter at node.toml:12" in err, err
