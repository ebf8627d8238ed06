"""The Engine API's GETs over a unix socket (image_id, running_images, other_instances), against a
fake daemon that answers one canned HTTP/1.0 response per connection and records the request."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tarsdock import engine
from tarsdock.engine import DockerEngine, DockerUnreachable
from tarsdock.errors import TarsdockError

OTHER_INSTANCES = engine.other_instances   # tests/conftest.py replaces it for unit tests


class FakeDaemon:
    """Answers each connection with the next canned bytes, then closes it (as Docker does)."""

    def __init__(self, path: Path, answers: list[bytes]) -> None:
        self.path, self.answers, self.requests = str(path), answers, []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        for answer in self.answers:
            conn, _ = self.server.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                self.requests.append(request.decode())
                conn.sendall(answer)


def http(status: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "docker.sock"


def test_image_id_present_and_missing(sock_path: Path) -> None:
    daemon = FakeDaemon(sock_path, [http("200 OK", {"Id": "sha256:abc"}),
                                    http("404 Not Found", {"message": "no such image"})])
    api = DockerEngine(str(sock_path), api_timeout=5)
    assert api.image_id("reg:5000/a/b:1") == "sha256:abc"
    assert api.image_id("nope:1") is None
    assert daemon.requests[0].startswith("GET /images/reg:5000/a/b:1/json HTTP/1.0\r\n")


def test_other_instances_groups_running_containers_by_owner(sock_path: Path) -> None:
    def entry(name: str, instance: str) -> dict[str, object]:
        return {"Id": name, "Names": [f"/{name}"], "Image": "img", "ImageID": "sha256:1",
                "State": "running", "Created": 0,
                "Labels": {"tarsdock.managed": "true", "tarsdock.node": "n",
                           "tarsdock.service": name, "tarsdock.instance": instance}}
    daemon = FakeDaemon(sock_path, [http("200 OK", [entry("A.B", "me"), entry("A.C", "other"),
                                                    entry("A.D", "other")])])
    assert OTHER_INSTANCES(str(sock_path), "n", "me") == {"other": ["A.C", "A.D"]}
    assert "filters=" in daemon.requests[0].split(" ")[1]


def test_an_answer_that_is_not_http_or_an_error_status_is_an_error(sock_path: Path) -> None:
    FakeDaemon(sock_path, [b"garbage", b"", http("500 Internal Server Error", {})])
    api = DockerEngine(str(sock_path), api_timeout=5)
    with pytest.raises(DockerUnreachable, match="not an HTTP answer"):
        api.image_id("a:1")
    with pytest.raises(DockerUnreachable):   # closed without a word
        api.image_id("a:1")
    with pytest.raises(TarsdockError, match="HTTP 500"):
        api.image_id("a:1")


def test_no_daemon_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DockerUnreachable):
        DockerEngine(str(tmp_path / "none.sock"), api_timeout=1).image_id("a:1")
    with pytest.raises(TarsdockError, match="docker engine at"):
        OTHER_INSTANCES(str(tmp_path / "none.sock"), "n", "me")


def test_an_answer_cut_short_or_not_json_is_an_error_not_a_crash(sock_path: Path) -> None:
    # a daemon that goes away mid-answer (a restart) leaves a 200 with half a body; anything
    # else on the socket may answer HTTP with no JSON: validate and generate ask the engine
    # for other instances on every run, and must report one line, never a traceback
    listing = http("200 OK", [{"Id": "a", "Names": ["/a"], "Labels": {}}])
    FakeDaemon(sock_path, [listing[:-5], b"HTTP/1.0 200 OK\r\n\r\n\xff<html>",
                           http("200 OK", {"message": "page not found"}),
                           http("200 OK", ["a"]),
                           http("200 OK", {"Id": "sha256:abc"})[:-3],
                           http("200 OK", {"Id": 5})])
    for _ in range(2):
        with pytest.raises(DockerUnreachable, match="not JSON"):
            OTHER_INSTANCES(str(sock_path), "n", "me")
    for _ in range(2):
        with pytest.raises(TarsdockError, match="list containers: not a list of containers"):
            OTHER_INSTANCES(str(sock_path), "n", "me")
    api = DockerEngine(str(sock_path), api_timeout=5)
    with pytest.raises(DockerUnreachable, match="not JSON"):
        api.image_id("a:1")
    with pytest.raises(TarsdockError, match="inspect a:1: no image id"):
        api.image_id("a:1")
