"""tarsdock notify: AdminF calls against a stand-in AdminObj on loopback (a test double)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarsdock import notify as nt
from tarsdock import tarsproto as tp
from tarsdock.cli import main


class AdminDouble:
    """Answers AdminF on 127.0.0.1: notify echoes, `fail` answers iRet -99, `hang` never
    answers; shutdown answers and closes the listener."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.calls: list[tuple[str, str, bytes]] = []
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self.answer(conn)

    def answer(self, conn: socket.socket) -> None:
        buffer = bytearray()
        while chunk := conn.recv(4096):
            buffer += chunk
            for body in tp.split_frames(buffer):
                request = tp.decode_packet(tp.RequestPacket, body)
                self.calls.append((request.sServantName, request.sFuncName, request.sBuffer))
                command = tp.decode_params(request.sBuffer, {1: tp.STRING})[1]
                if command == "hang":
                    continue
                ret = -99 if command == "fail" else 0
                result = tp.encode_params([(tp.STRING, f"done: {command}")], first_tag=0)
                conn.sendall(tp.encode_packet(tp.ResponsePacket(
                    iRequestId=request.iRequestId, iRet=ret, sBuffer=result,
                    sResultDesc="boom" if ret else "")))
                if request.sFuncName == "shutdown":
                    self.server.close()
                    return


@pytest.fixture
def admin() -> Iterator[AdminDouble]:
    double = AdminDouble()
    yield double
    double.server.close()


def endpoint(port: int) -> nt.AdminEndpoint:
    return nt.AdminEndpoint("Hello.S", "127.0.0.1", port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_notify_gets_the_answer(admin: AdminDouble) -> None:
    assert nt.notify(endpoint(admin.port), "tars.setloglevel INFO") == \
        "done: tars.setloglevel INFO"
    servant, function, args = admin.calls[0]
    assert (servant, function) == ("AdminObj", "notify")
    assert tp.decode_params(args, {1: tp.STRING}) == {1: "tars.setloglevel INFO"}


def test_errors_say_what_went_wrong(admin: AdminDouble) -> None:
    with pytest.raises(nt.NotifyError, match="notify failed with Tars error -99: boom"):
        nt.notify(endpoint(admin.port), "fail")
    with pytest.raises(nt.NotifyError, match=r"no answer within 0\.3 s"):
        nt.notify(endpoint(admin.port), "hang", timeout=0.3)
    with pytest.raises(nt.NotRunning, match=r"Hello\.S: 127\.0\.0\.1:\d+: nothing answers on "
                       r"its admin endpoint \(the service is not running, or its runtime"):
        nt.notify(endpoint(free_port()), "x")


def test_an_endpoint_that_does_not_speak_tars_is_named_so() -> None:
    # found by hand: a program of another protocol on the port gave 'bad frame length 1416788270'
    with socket.create_server(("127.0.0.1", 0)) as server:
        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"Try.EchoServer is here\n")
        threading.Thread(target=answer, daemon=True).start()
        with pytest.raises(nt.NotifyError, match=r"the answer is not the Tars protocol \(bad "
                           r"frame length \d+\): another program holds the admin port\?"):
            nt.notify(endpoint(server.getsockname()[1]), "x", timeout=5)


def test_shutdown_waits_for_the_endpoint_to_close(admin: AdminDouble) -> None:
    assert nt.shutdown(endpoint(admin.port), wait=5)
    assert admin.calls[-1][1] == "shutdown"


NODE = """[node]
name = "n"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"

[services."Hello.S"]
type = "tars_cpp"
local_port = {port}

[services."Hello.Down"]
type = "tars_cpp"
local_port = {down}

[services."Hello.Plain"]
type = "not_tars"
command = ["/bin/true"]
"""


def write_node(tmp_path: Path, port: int, down: int) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "node.toml").write_text(NODE.format(tars=tmp_path / "tars", port=port, down=down))
    assert main(["--config-dir", str(config), "generate", "--format", "supervisord",
                 "--out", str(tmp_path / "out")]) == 0
    return config


def test_cli_notify_one_and_all(admin: AdminDouble, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    config = write_node(tmp_path, admin.port, free_port())
    capsys.readouterr()
    assert main(["--config-dir", str(config), "notify", "Hello.S", "tars.viewstatus"]) == 0
    assert capsys.readouterr().out == "done: tars.viewstatus\n"
    assert main(["--config-dir", str(config), "notify", "--all", "tars.viewstatus"]) == 0
    out, err = capsys.readouterr()
    assert out == "== Hello.S\ndone: tars.viewstatus\n"
    assert "Hello.Down: nothing answers on its admin endpoint, skipped" in err
    assert main(["--config-dir", str(config), "notify", "Hello.Plain", "x"]) == 1
    assert "Hello.Plain: has no admin endpoint" in capsys.readouterr().err
    assert main(["--config-dir", str(config), "notify", "Hello.Down", "x"]) == 1
    assert "nothing answers on its admin endpoint (the service is not running" \
        in capsys.readouterr().err
    assert main(["--config-dir", str(config), "notify", "Hello.Nope", "x"]) == 1
    assert "no service 'Hello.Nope'" in capsys.readouterr().err


def test_cli_an_unquoted_command_is_its_words_joined(admin: AdminDouble, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # found by hand: `notify App.Server tars.setloglevel INFO` (no quotes) was "unrecognized
    # arguments: INFO", and `notify --all tars.setloglevel DEBUG` a bare usage line
    config = write_node(tmp_path, admin.port, free_port())
    capsys.readouterr()
    assert main(["--config-dir", str(config), "notify", "Hello.S", "tars.setloglevel",
                 "INFO"]) == 0
    assert capsys.readouterr().out == "done: tars.setloglevel INFO\n"
    assert main(["--config-dir", str(config), "notify", "--all", "tars.setloglevel",
                 "DEBUG"]) == 0
    assert capsys.readouterr().out == "== Hello.S\ndone: tars.setloglevel DEBUG\n"
    assert [call[2] for call in admin.calls] == [
        tp.encode_params([(tp.STRING, "tars.setloglevel INFO")]),
        tp.encode_params([(tp.STRING, "tars.setloglevel DEBUG")])]


def test_a_bad_node_toml_is_reported_at_its_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # notify read node.toml without lines: every error said `node.toml:1`
    (tmp_path / "node.toml").write_text(
        '[node]\nname = "n1"\ntars_path = "/tmp/t"\n'
        'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n\nnodeport = 1\n')
    assert main(["--config-dir", str(tmp_path), "notify", "Hello.S", "tars.viewstatus"]) == 1
    assert "node.toml:6: key 'nodeport'" in capsys.readouterr().err


def test_cli_shutdown_by_port_needs_no_config(admin: AdminDouble) -> None:
    assert main(["--config-dir", "/nonexistent", "notify", "--shutdown", "Hello.S", "--port",
                 str(admin.port), "--wait", "5"]) == 0


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify"]) == 2
    assert main(["notify", "--all"]) == 2
    assert main(["notify", "--shutdown", "--all"]) == 2
    assert main(["notify", "--shutdown", "Hello.S", "tars.viewstatus"]) == 2
    capsys.readouterr()
    assert main(["notify", "Hello.S", ""]) == 2
    assert "the command is empty" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--timeout", "0"], ["--timeout", "-1"], ["--timeout", "nan"],
                                    ["--timeout", "x"], ["--wait", "-1"], ["--port", "70000"],
                                    ["--port", "0"]])
def test_cli_out_of_range_options_are_usage_errors(option: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # --timeout 0 made the socket non-blocking ("Operation now in progress"), -1 a traceback,
    # --port 70000 "not running": each is a usage error naming the option
    assert main(["notify", "Hello.S", "x", "--port", "19999", *option]) == 2
    assert option[0] in capsys.readouterr().err
