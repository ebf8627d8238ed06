"""The local admin port: pinned, read back from the existing config, else drawn (tarsnode's way)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tarsdock import localports
from tarsdock.errors import InputErrors, Origin
from tarsdock.model import AdapterSpec, Manifest, NodeSettings, ServiceSpec
from tarsdock.resolve import load_node

REAL_PROBE = localports.listening          # a connect per port
REAL_IN_USE = localports.in_use_probe      # tests/conftest.py replaces it for unit tests
NODE = NodeSettings(name="n", localip="127.0.0.1", tars_path="/srv/tars",
                    locator="tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890")


def spec(name: str, type: str = "tars_cpp", local_port: int = 0,
         adapter_port: int = 0) -> ServiceSpec:
    app, server = name.split(".")
    adapters = (AdapterSpec("A", f"{name}.Obj", f"tcp -h 127.0.0.1 -p {adapter_port}"),) \
        if adapter_port else ()
    return ServiceSpec(app=app, server=server, type=type, template="tars.default",  # type: ignore[arg-type]
                       run="native", origin=Origin("node.toml", 1), local_port=local_port,
                       adapters=adapters)


def manifest(*specs: ServiceSpec) -> Manifest:
    return Manifest(NODE, services={s.name: s for s in specs})


def never(port: int) -> bool:
    return False


def first_draw(name: str) -> int:
    return localports._draw(name, set(), never)


@pytest.mark.parametrize(("specs", "existing", "busy", "expected"), [
    # a pinned port is kept; not_tars gets none unless pinned
    ([spec("A.B", local_port=20000), spec("A.C", type="not_tars")], {}, set(),
     {"A.B": 20000}),
    # read back from the existing config
    ([spec("A.B")], {"A.B": 31000}, set(), {"A.B": 31000}),
    # read back, but now another service's adapter listens there: drawn again
    ([spec("A.B"), spec("A.C", adapter_port=31000)], {"A.B": 31000}, set(),
     {"A.B": first_draw("A.B"), "A.C": first_draw("A.C")}),
    # two services read back the same port (a copied config): the first by name keeps it
    ([spec("A.B"), spec("A.C")], {"A.B": 31000, "A.C": 31000}, set(),
     {"A.B": 31000, "A.C": first_draw("A.C")}),
    # something listens on the first candidate: the next one
    ([spec("A.B")], {}, {first_draw("A.B")}, {"A.B": first_draw("A.B") + 1}),
    # the node object's port is never drawn (it is 19386, outside the range, but pinned ones
    # and adapters inside the range are skipped too)
    ([spec("A.B"), spec("A.C", adapter_port=first_draw("A.B"))], {}, set(),
     {"A.B": first_draw("A.B") + 1, "A.C": first_draw("A.C")}),
])
def test_allocate(specs: list[ServiceSpec], existing: dict[str, int], busy: set[int],
                  expected: dict[str, int]) -> None:
    assert localports.allocate(manifest(*specs), existing, busy.__contains__) == expected


def test_draws_stay_in_tarsnodes_range_and_differ_per_service() -> None:
    names = [f"App.S{i}" for i in range(200)]
    got = localports.allocate(manifest(*(spec(n) for n in names)), {}, never)
    assert all(30000 <= p <= 44999 for p in got.values())
    assert len(set(got.values())) == len(names)


def test_a_draw_past_the_range_end_goes_on_from_its_start() -> None:
    # every port from the name's first draw to the end is answered: the walk wraps to 30000
    first = first_draw("A.B")
    busy = set(range(first, 45000))
    assert localports.allocate(manifest(spec("A.B")), {}, busy.__contains__) == {"A.B": 30000}
    busy |= {30000, 30001}
    assert localports.allocate(manifest(spec("A.B")), {}, busy.__contains__) == {"A.B": 30002}


def test_range_exhausted_is_an_error_at_each_service_left_naming_the_key_to_set() -> None:
    # every port answers: each service without a port is an error at its table, with the key
    # to add there; the pinned one is none; all of them together (tryout14c O5)
    pinned = ServiceSpec(app="A", server="P", type="tars_cpp", template="tars.default",
                         run="native", origin=Origin("node.toml", 9), local_port=30000)
    other = ServiceSpec(app="A", server="C", type="tars_cpp", template="tars.default",
                        run="native", origin=Origin("services.d/c.toml", 3))
    with pytest.raises(InputErrors) as raised:
        localports.allocate(manifest(spec("A.B"), pinned, other), {}, lambda port: True)
    assert str(raised.value).splitlines() == [
        "node.toml:1: key 'local_port': no free port in 30000..44999 to give the admin "
        "endpoint: set one that no other endpoint uses",
        "services.d/c.toml:3: key 'local_port': no free port in 30000..44999 to give the admin "
        "endpoint: set one that no other endpoint uses"]


def test_local_port_read_from_server_domain_only() -> None:
    text = ("<tars>\n  <application>\n    <client>\n      local=tcp -h 127.0.0.1 -p 1 -t 1\n"
            "    </client>\n    <server>\n      local=tcp -h 127.0.0.1 -p 31234 -t 10000\n"
            "    </server>\n  </application>\n</tars>\n")
    assert localports.local_port_in(text) == 31234
    assert localports.local_port_in(text.replace("-p 31234", "-p x")) == 0
    assert localports.local_port_in("<tars>\n</tars>\n") == 0


def test_read_back_reads_each_written_config_as_open_would(tmp_path: Path) -> None:
    node = NodeSettings(name="n", localip="127.0.0.1", tars_path=str(tmp_path),
                        locator="tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890")
    names = ["A.Crlf", "A.Cr", "A.Bad", "A.Gone", "A.Dir", "A.Nolocal"]
    given = Manifest(node, services={name: spec(name) for name in names})
    assert localports.read_back(given) == {}          # nothing generated yet: no data dir
    text = ("<tars>\n<application>\n<server>\nlocal=tcp -h 127.0.0.1 -p {port} -t 10000\n"
            "</server>\n</application>\n</tars>\n")
    contents = {"A.Crlf": text.format(port=31001).replace("\n", "\r\n").encode(),
                "A.Cr": text.format(port=31002).replace("\n", "\r").encode(),
                # a byte that is not UTF-8 is replaced, the rest still read
                "A.Bad": text.format(port=31003).replace("<tars>", "<tars>\xff").encode(
                    "latin-1"),
                "A.Nolocal": b"<tars>\n</tars>\n"}
    for name in names:
        conf = Path(node.data_dir) / name / "conf"
        if name == "A.Gone":
            continue                  # never generated: no directory of its own
        conf.mkdir(parents=True)
        if name == "A.Dir":
            (conf / f"{name}.config.conf").mkdir()      # not a file: nothing read back
        else:
            (conf / f"{name}.config.conf").write_bytes(contents[name])
    assert localports.read_back(given) == {"A.Crlf": 31001, "A.Cr": 31002, "A.Bad": 31003}


def test_listening_probe_sees_a_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert REAL_PROBE(port)
    assert not REAL_PROBE(port)


@pytest.mark.parametrize(("family", "host"), [
    (socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")])
def test_the_socket_tables_see_what_a_connect_to_loopback_reaches(family: int,
                                                                  host: str) -> None:
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        port = server.getsockname()[1]
        assert REAL_PROBE(port)
        assert REAL_IN_USE()(port)
    assert not REAL_PROBE(port)
    assert not REAL_IN_USE()(port)


def test_sock_diag_sees_what_the_socket_tables_see() -> None:
    # real sockets: reached from 127.0.0.1 (listening on it, on 0.0.0.0, on [::]) or not (on
    # 127.0.0.2 or [::1], a UDP one, a connected one that does not listen)
    with socket.socket() as low, socket.socket() as wild, socket.socket(socket.AF_INET6) as any6, \
            socket.socket() as other, socket.socket(socket.AF_INET6) as loop6, \
            socket.socket(type=socket.SOCK_DGRAM) as udp, socket.socket() as client:
        for sock, host in ((low, "127.0.0.1"), (wild, "0.0.0.0"), (any6, "::"),
                           (other, "127.0.0.2"), (loop6, "::1")):
            sock.bind((host, 0))
            sock.listen()
        udp.bind(("127.0.0.1", 0))
        client.connect(low.getsockname()[:2])
        port = {name: sock.getsockname()[1] for name, sock in (
            ("low", low), ("wild", wild), ("any6", any6), ("other", other), ("loop6", loop6),
            ("udp", udp), ("client", client))}
        diag, proc = localports.diag_listening(), localports.proc_listening()
        assert diag is not None and proc is not None
        for name in ("low", "wild", "any6"):
            assert port[name] in diag and port[name] in proc, name
        for name in ("other", "loop6", "udp", "client"):
            assert port[name] not in diag and port[name] not in proc, name


def test_a_listener_on_another_address_or_not_listening_is_not_in_use(tmp_path: Path) -> None:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
    (tmp_path / "tcp").write_text(head + "".join(
        f"   {n}: {address}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000\n"
        for n, (address, port, state) in enumerate([
            ("0100007F", 31000, "0A"),       # 127.0.0.1, listening
            ("00000000", 31001, "0A"),       # 0.0.0.0
            ("0200007F", 31002, "0A"),       # 127.0.0.2: a connect to 127.0.0.1 fails
            ("0100007F", 31003, "01"),       # established, not listening
        ])))
    (tmp_path / "tcp6").write_text(head + "".join(
        f"   {n}: {address}:{port:04X} {'0' * 32}:0000 0A 00000000:00000000 00:00000000\n"
        for n, (address, port) in enumerate([
            ("0" * 32, 31004),                                  # [::]
            ("0000000000000000FFFF00000100007F", 31005),        # [::ffff:127.0.0.1]
            ("00000000000000000000000001000000", 31006),        # [::1]: IPv6 only
        ])))
    tables = (str(tmp_path / "tcp"), str(tmp_path / "tcp6"))
    assert localports.proc_listening(tables) == {31000, 31001, 31004, 31005}
    assert localports.proc_listening((str(tmp_path / "tcp"), str(tmp_path / "none6"))) == {
        31000, 31001}
    assert localports.proc_listening((str(tmp_path / "none"),)) is None


NODE_TOML = """[node]
name = "n"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"

[services."Hello.Cpp"]
type = "tars_cpp"

[services."Hello.Pinned"]
type = "tars_cpp"
local_port = 20001

[services."Hello.Plain"]
type = "not_tars"
command = ["/bin/true"]
"""


def test_a_written_config_keeps_its_port_on_the_next_load(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars"))
    first = {s.name: s for s in load_node(tmp_path).services}
    port = first["Hello.Cpp"].spec.local_port
    assert port == first_draw("Hello.Cpp")
    assert f"local=tcp -h 127.0.0.1 -p {port} -t 10000" in first["Hello.Cpp"].config_text
    assert "node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000" \
        in first["Hello.Cpp"].config_text
    assert first["Hello.Pinned"].spec.local_port == 20001
    assert first["Hello.Plain"].spec.local_port == 0
    assert "node=" not in first["Hello.Plain"].config_text
    # as generate would leave it, with a port the walk would not choose
    conf = Path(first["Hello.Cpp"].conf_path)
    conf.parent.mkdir(parents=True)
    conf.write_text(first["Hello.Cpp"].config_text.replace(f"-p {port} ", "-p 44444 "))
    again = {s.name: s for s in load_node(tmp_path).services}
    assert again["Hello.Cpp"].spec.local_port == 44444


def test_node_port_clashing_with_an_adapter_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(NODE_TOML.format(tars=tmp_path) + """
[[services."Hello.Cpp".adapters]]
name = "Obj"
servant = "Hello.Cpp.Obj"
endpoint = "tcp -h 127.0.0.1 -p 19386"
""")
    with pytest.raises(Exception, match="already used by tarsdock's node object"):
        load_node(tmp_path)


PROFILE_ADAPTER = '''
profile = """
<tars>
  <application>
    <server>
      <Hello.Other.FooAdapter>
        endpoint = tcp -h 127.0.0.1 -p {port} -t 60000
        servant = Hello.Other.FooObj
        allow =
        threads = 1
      </Hello.Other.FooAdapter>
    </server>
  </application>
</tars>
"""
'''


def test_an_endpoint_only_a_profile_names_is_never_given_out(tmp_path: Path) -> None:
    # the adapter is not in the manifest's tables: the first allocation gave its port to
    # Hello.Cpp's admin endpoint and validate said ok; now the node is allocated around it
    taken = first_draw("Hello.Cpp")
    (tmp_path / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars") + f'''
[services."Hello.Other"]
type = "tars_cpp"
local_port = 20002
{PROFILE_ADAPTER.format(port=taken)}''')
    services = {s.name: s for s in load_node(tmp_path).services}
    assert services["Hello.Cpp"].spec.local_port == taken + 1
    # a port read back that such an endpoint now takes is drawn again, as for manifest adapters
    conf = Path(services["Hello.Cpp"].conf_path)
    conf.parent.mkdir(parents=True)
    conf.write_text(services["Hello.Cpp"].config_text.replace(f"-p {taken + 1} ", f"-p {taken} "))
    again = {s.name: s for s in load_node(tmp_path).services}
    assert again["Hello.Cpp"].spec.local_port == taken + 1


def test_a_bridge_published_host_port_is_never_given_out(tmp_path: Path) -> None:
    # with bridge networking a <ports> line publishes its host port; the admin endpoint of
    # another service was drawn on it and both containers asked Docker for 127.0.0.1:PORT
    taken = first_draw("Hello.Cpp")
    (tmp_path / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars").replace(
        'locator =', 'network = "bridge"\nlocator =') + f'''
[services."Hello.Web"]
type = "tars_cpp"
run = "container"
image = "busybox:1"
profile = """
<tars>
  <application>
    <container>
      <ports>
        9000/tcp=127.0.0.1:{taken}
      </ports>
    </container>
  </application>
</tars>
"""
''')
    services = {s.name: s for s in load_node(tmp_path).services}
    assert services["Hello.Cpp"].spec.local_port == taken + 1


def test_local_port_zero_written_out_is_the_documented_default(tmp_path: Path) -> None:
    # found by hand: docs/node-toml.md gives 0 as local_port's default ("0: a Tars service keeps
    # the port its written config names, else gets one"), but writing it was "0 is not in 1..65535"
    text = NODE_TOML.format(tars=tmp_path / "tars").replace(
        'type = "tars_cpp"\n\n[services."Hello.Pinned"]',
        'type = "tars_cpp"\nlocal_port = 0\n\n[services."Hello.Pinned"]')
    assert "local_port = 0" in text
    (tmp_path / "node.toml").write_text(text)
    services = {s.name: s for s in load_node(tmp_path).services}
    assert services["Hello.Cpp"].spec.local_port == first_draw("Hello.Cpp")
