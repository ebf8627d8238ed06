"""The Docker adapter: image presence, pulls with credentials, tarsdock's labelled containers.

Everything that talks to the Docker Engine is here, behind the `Engine` protocol, so the sync
planner and the listener run against a fake in unit tests.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote, urlencode

from tarsdock.errors import TarsdockError
from tarsdock.records import Record

if TYPE_CHECKING:
    import docker

LABEL_MANAGED = "tarsdock.managed"
LABEL_SERVICE = "tarsdock.service"
LABEL_NODE = "tarsdock.node"
LABEL_INSTANCE = "tarsdock.instance"   # NodeSettings.instance: which tarsdock owns the container

Progress = Callable[[int, int], None]   # (bytes done, bytes total) over all layers so far

# HTTP statuses that no retry can fix: bad reference, credentials refused, no such image
PERMANENT_STATUSES = frozenset({400, 401, 403, 404})
AUTH_STATUSES = frozenset({401, 403})


class Auth(Record):
    """Credentials for one registry; the password never shows in a repr or a log line."""

    __slots__ = _fields = ("registry", "username", "password")
    registry: Final[str]
    username: Final[str]
    password: Final[str]

    def __init__(self, registry: str, username: str, password: str) -> None:
        self.registry = registry
        self.username = username
        self.password = password

    def __repr__(self) -> str:
        return f"Auth(registry={self.registry!r}, username={self.username!r})"

    def config(self) -> dict[str, str]:
        """The SDK's auth_config: sent to the daemon in a header, never on a command line."""
        return {"username": self.username, "password": self.password,
                "serveraddress": self.registry}


class PullError(TarsdockError):
    """A pull failed; `permanent` errors (not found, refused) are not worth a retry."""

    def __init__(self, ref: str, reason: str, *, permanent: bool) -> None:
        self.ref = ref
        self.reason = reason
        self.permanent = permanent
        super().__init__(f"{ref}: {reason}")


class DockerUnreachable(TarsdockError):
    """The daemon does not answer (no socket, permission denied, restarting): an environmental
    fault, reported as one line and never as a traceback."""

    def __init__(self, socket_path: str, cause: str) -> None:
        self.socket_path = socket_path
        self.cause = cause
        super().__init__(f"Docker unreachable at {socket_path}: {cause}")


class Container(Record):
    """A container that carries tarsdock's labels."""

    __slots__ = _fields = ("id", "name", "service", "node", "state", "instance", "image",
                           "image_id")
    id: Final[str]
    name: Final[str]
    service: Final[str]
    node: Final[str]
    state: Final[str]
    instance: Final[str]          # its tarsdock.instance label ("" for containers from before it)
    image: Final[str]             # the reference it was run with
    image_id: Final[str]          # sha256:... of that image

    def __init__(self, id: str, name: str, service: str, node: str, state: str, instance: str = "",
                 image: str = "", image_id: str = "") -> None:
        self.id = id
        self.name = name
        self.service = service
        self.node = node
        self.state = state
        self.instance = instance
        self.image = image
        self.image_id = image_id


class Engine(Protocol):
    """What tarsdock needs from a container engine."""

    def image_id(self, ref: str) -> str | None:
        """The local image ID for a reference, or None if it is not present."""

    def pull(self, ref: str, auth: Auth | None, timeout: float, progress: Progress) -> str:
        """Pull a reference and return its image ID; raise PullError."""

    def containers(self, node: str, service: str | None = None, *,
                   instance: str | None = None) -> list[Container]:
        """tarsdock's containers on this node, all states; only one service's or one
        instance's (NodeSettings.instance) if given."""

    def created(self, container_id: str) -> float | None:
        """A container's creation time (epoch seconds), or None if it is gone."""

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """A container's inspect document, or None if it is gone."""

    def ping(self) -> None:
        """Return if the daemon answers; raise DockerUnreachable if not."""

    def remove(self, container_id: str) -> None:
        """Remove a container, running or not; a container already gone is fine."""


class DockerEngine:
    """The Docker Engine over its unix socket, through the `docker` SDK (imported lazily)."""

    def __init__(self, socket_path: str = "/var/run/docker.sock", api_timeout: float = 30.0,
                 stall_timeout: float = 60.0) -> None:
        # imported here, as base64 and datetime below: generate and validate, which ask the
        # engine only through other_instances, need none of them
        import threading

        self.socket_path = socket_path
        self.api_timeout = api_timeout
        self.stall_timeout = stall_timeout
        self._local = threading.local()   # requests sessions are not thread-safe

    def _api(self, timeout: float | None = None) -> docker.APIClient:
        """A per-thread SDK client (or a fresh one with its own read timeout)."""
        if timeout is not None:
            return _client(self.socket_path, timeout)
        api: docker.APIClient | None = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = _client(self.socket_path, self.api_timeout)
        return api

    def image_id(self, ref: str) -> str | None:
        return local_image_id(self.socket_path, ref, self.api_timeout)

    def running_images(self, node: str, instance: str) -> dict[str, str]:
        """Service -> image ID of the instance's running containers (standard library)."""
        labels = [f"{LABEL_MANAGED}=true", f"{LABEL_NODE}={node}", f"{LABEL_INSTANCE}={instance}"]
        found = _list_containers(self.socket_path, self.api_timeout,
                                 {"label": labels, "status": ["running"]})
        return {(entry.get("Labels") or {}).get(LABEL_SERVICE, ""): entry["ImageID"]
                for entry in found}

    def pull(self, ref: str, auth: Auth | None, timeout: float, progress: Progress) -> str:
        import docker.errors
        import requests.exceptions
        import urllib3.exceptions

        deadline = time.monotonic() + timeout
        try:
            with self._answering():
                api = self._api(min(self.stall_timeout, timeout))
        except DockerUnreachable as error:
            raise PullError(ref, str(error), permanent=False) from None
        try:
            stream = api.pull(ref, stream=True, decode=True,
                              auth_config=auth.config() if auth else None)
            _follow(ref, stream, deadline, progress)
        except docker.errors.APIError as error:
            raise self._classify(ref, error, auth) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                OSError) as error:
            raise PullError(ref, f"no answer in time or connection lost ({type(error).__name__})",
                            permanent=False) from None
        finally:
            api.close()
        image_id = self.image_id(ref)
        if image_id is None:
            raise PullError(ref, "pull ended but the image is not present", permanent=False)
        return image_id

    def _classify(self, ref: str, error: Any, auth: Auth | None) -> PullError:
        """Turn an SDK error into a PullError by HTTP status, never by message text."""
        status: int | None = error.status_code
        explanation = str(error.explanation or error)
        if status in AUTH_STATUSES:
            return PullError(ref, _refused(auth, ref), permanent=True)
        if status == 404:
            return PullError(ref, f"not found: {explanation}", permanent=True)
        # the daemon reports a registry's 401 as a generic 500 (on /auth too): ask the registry
        if registry_status(ref, auth, self.api_timeout) in AUTH_STATUSES:
            return PullError(ref, _refused(auth, ref), permanent=True)
        return PullError(ref, explanation, permanent=status in PERMANENT_STATUSES)

    def containers(self, node: str, service: str | None = None, *,
                   instance: str | None = None) -> list[Container]:
        labels = [f"{LABEL_MANAGED}=true", f"{LABEL_NODE}={node}"]
        if service is not None:
            labels.append(f"{LABEL_SERVICE}={service}")
        if instance is not None:
            labels.append(f"{LABEL_INSTANCE}={instance}")
        with self._answering():
            found = self._api().containers(all=True, filters={"label": labels})
        return [_container(entry) for entry in found]

    def created(self, container_id: str) -> float | None:
        info = self.inspect(container_id)
        return None if info is None else parse_docker_time(info["Created"])

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """A container's inspect document, or None if it is gone; raise DockerUnreachable."""
        import docker.errors

        try:
            with self._answering():
                info: dict[str, Any] = self._api().inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        return info

    def repo_digests(self, image_id: str) -> list[str]:
        """An image's registry digests (`repo@sha256:...`); none for a local-only image."""
        import docker.errors

        try:
            with self._answering():
                digests: list[str] = self._api().inspect_image(image_id).get("RepoDigests") or []
        except docker.errors.NotFound:
            return []
        return digests

    def ping(self) -> None:
        """Return if the daemon answers; raise DockerUnreachable if not."""
        with self._answering():
            self._api().ping()

    def events(self, filters: dict[str, list[str]],
               since: float | None = None) -> Iterator[dict[str, Any]]:
        """Docker's event stream (decoded), from `since` (epoch seconds) or now, until the
        daemon closes it.

        Raises DockerUnreachable when it cannot connect, and from the iteration when the
        connection breaks.
        """
        with self._answering():
            # a client of its own without a read timeout: the stream is quiet for hours
            api = _client(self.socket_path, self.api_timeout)
            stream = api.events(decode=True, filters=filters,
                                since=None if since is None else int(since))
        return self._follow_events(api, stream)

    def _follow_events(self, api: docker.APIClient, stream: Any) -> Iterator[dict[str, Any]]:
        try:
            with self._answering():
                yield from stream
        finally:
            api.close()

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Turn "the daemon did not answer" into DockerUnreachable; API errors pass."""
        import docker.errors
        import requests.exceptions
        import urllib3.exceptions

        try:
            yield
        except docker.errors.APIError:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                urllib3.exceptions.HTTPError, OSError) as error:
            self._local.api = None   # a fresh client (and API version check) next time
            raise DockerUnreachable(self.socket_path, _cause(error)) from None

    def remove(self, container_id: str) -> None:
        import docker.errors

        try:
            with self._answering():
                self._api().remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass   # already gone: the goal is reached
        except docker.errors.APIError as error:
            if error.status_code != 409:   # 409: removal already in progress
                raise


def other_instances(socket_path: str, node: str, instance: str,
                    timeout: float = 2.0) -> dict[str, list[str]]:
    """Running containers labelled with node name `node` but another instance: instance -> names.

    The standard library over the socket, not the SDK: `validate` calls it on every run.
    Raises TarsdockError when the engine does not answer.
    """
    found: dict[str, list[str]] = {}
    for entry in _list_containers(socket_path, timeout,
                                  {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_NODE}={node}"]}):
        container = _container(entry)
        if container.instance != instance:
            found.setdefault(container.instance, []).append(container.name)
    return {owner: sorted(names) for owner, names in sorted(found.items())}


def local_image_id(socket_path: str, ref: str, timeout: float) -> str | None:
    """The local image ID for a reference, or None if the engine does not have it.

    The standard library, not the SDK: `images sync` with everything present must start and
    finish in a blink (it runs before every service start), and validate asks it too.
    Raises DockerUnreachable when the engine does not answer, TarsdockError for an odd answer.
    """
    try:
        status, body = _engine_get(socket_path, timeout, f"/images/{quote(ref, safe='/:@')}/json")
    except OSError as error:
        raise DockerUnreachable(socket_path, _cause(error)) from None
    if status == 404:
        return None
    if status != 200:
        raise TarsdockError(f"docker engine: inspect {ref}: HTTP {status}")
    image = _json_body(body, socket_path)
    found = image.get("Id") if isinstance(image, dict) else None
    if not isinstance(found, str):
        raise TarsdockError(f"docker engine: inspect {ref}: no image id in the answer")
    return found


def has_image(socket_path: str, ref: str, timeout: float = 2.0) -> bool:
    """Whether the engine has an image for `ref` (validate's and generate's question, which unit
    tests answer themselves: tests/conftest.py). Raises TarsdockError as local_image_id."""
    return local_image_id(socket_path, ref, timeout) is not None


def _engine_get(socket_path: str, timeout: float, path: str) -> tuple[int, bytes]:
    """GET `path` from the engine's API over its unix socket: (HTTP status, body).

    The standard library, not the SDK: importing the SDK costs more than the whole call, and
    these calls run at every service start and every validate. Nor http.client: importing it
    (and the email parser it needs) also cost more than the call. Nor the socket module: its
    import (enums for every constant, selectors) costs 2.4 ms, `_socket` (the C module under
    it, the same calls) 0.3. HTTP/1.0, read to the end of the stream: the daemon closes it
    after the answer, and a 1.0 answer has no chunked body.
    Raises OSError when the daemon does not answer, or not in HTTP.
    """
    with contextlib.closing(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if not head.startswith(b"HTTP/") or not status or not status[0].isdigit():
        raise OSError(errno.EPROTO, f"not an HTTP answer: {head[:40]!r}")
    return int(status[0]), body


def _list_containers(socket_path: str, timeout: float,
                     filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The engine's `GET /containers/json` entries matching `filters` (running ones only unless
    a `status` filter says otherwise). Raises TarsdockError when the engine does not answer."""
    query = urlencode({"filters": json.dumps(filters)})
    try:
        status, body = _engine_get(socket_path, timeout, f"/containers/json?{query}")
    except OSError as error:
        raise TarsdockError(f"docker engine at {socket_path}: {error}") from error
    if status != 200:
        raise TarsdockError(f"docker engine: list containers: HTTP {status}")
    entries = _json_body(body, socket_path)
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise TarsdockError("docker engine: list containers: not a list of containers")
    return entries


def _json_body(body: bytes, socket_path: str) -> Any:
    """An answer's JSON body. One cut short (the daemon went away mid-answer: a restart) or not
    JSON at all (something else answers on the socket) is DockerUnreachable, as no answer is:
    one line for the user, never a traceback (validate asks on every run).
    Raises DockerUnreachable."""
    try:
        return json.loads(body)
    except ValueError as error:       # JSONDecodeError, UnicodeDecodeError
        raise DockerUnreachable(socket_path, f"an answer that is not JSON ({error})") from None


def registry_status(ref: str, auth: Auth | None, timeout: float) -> int | None:
    """The HTTP status a registry gives these credentials for pulling `ref` (None: no answer).

    The distribution API: GET /v2/ answers 401 with a challenge; `Basic` means retry /v2/ with
    the credentials, `Bearer realm=...` means ask the realm for a pull token with them.
    Plain HTTP only where Docker allows it without configuration (127.0.0.0/8, localhost).
    """
    import base64

    from tarsdock.imageref import parse_image_ref

    parsed = parse_image_ref(ref)
    host = parsed.domain or "registry-1.docker.io"
    path = parsed.path if parsed.domain or "/" in parsed.path else f"library/{parsed.path}"
    hostname = host.rsplit(":", 1)[0]
    local = hostname == "localhost" or hostname.startswith("127.")
    basic = None if auth is None else "Basic " + base64.b64encode(
        f"{auth.username}:{auth.password}".encode()).decode()
    for scheme in ["https", "http"] if local else ["https"]:
        challenge = _http_status(f"{scheme}://{host}/v2/", None, timeout)
        if challenge is None:
            continue
        status, header = challenge
        if status != 401:
            return status
        kind, _, params = header.partition(" ")
        if kind.lower() == "bearer":   # anonymous tokens are fine for public images
            fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
            query = urlencode({"service": fields.get("service", ""),
                               "scope": f"repository:{path}:pull"})
            answer = _http_status(f"{fields.get('realm', '')}?{query}", basic, timeout)
        elif basic is None:
            return status
        else:
            answer = _http_status(f"{scheme}://{host}/v2/", basic, timeout)
        return answer[0] if answer else None
    return None


def _http_status(url: str, authorization: str | None, timeout: float) -> tuple[int, str] | None:
    """(status, WWW-Authenticate) of a GET, or None when nothing answers."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("WWW-Authenticate", "")
    except (OSError, ValueError):
        return None


def _client(socket_path: str, timeout: float) -> docker.APIClient:
    return _client_class()(base_url=f"unix://{socket_path}", timeout=timeout, version="auto")


@functools.cache
def _client_class() -> type[docker.APIClient]:
    """The SDK's client, except that a pull keeps the client's read timeout."""
    import docker

    class TimedClient(docker.APIClient):   # type: ignore[misc]
        def post(self, url: str, *args: Any, **kwargs: Any) -> Any:
            # the SDK passes timeout=None for pulls: a stalled pull would wait forever
            if "timeout" in kwargs and kwargs["timeout"] is None:
                kwargs["timeout"] = self.timeout
            return super().post(url, *args, **kwargs)

    return TimedClient


def _follow(ref: str, stream: Any, deadline: float, progress: Progress) -> None:
    """Consume a pull's JSON progress stream; report bytes; stop at the deadline or an error."""
    layers: dict[str, tuple[int, int]] = {}
    for message in stream:
        if "error" in message:
            # errors inside a 200 stream come from transfers (a broken blob download)
            raise PullError(ref, str(message["error"]), permanent=False)
        detail = message.get("progressDetail") or {}
        if "total" in detail and "id" in message:
            layers[message["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
            progress(sum(c for c, _ in layers.values()), sum(t for _, t in layers.values()))
        if time.monotonic() > deadline:
            raise PullError(ref, "timed out", permanent=False)


def _cause(error: BaseException) -> str:
    """The root of a connection failure in a few words (`No such file or directory`)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        pending += [a for a in current.args if isinstance(a, BaseException)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    text = str(error)
    if "Connection refused" in text:
        return "Connection refused"
    return type(error).__name__


def _refused(auth: Auth | None, ref: str) -> str:
    if auth is None:
        return (f"the registry of {ref} asks for credentials and none are configured "
                "(a [registries] entry with username and password_file)")
    return f"authentication refused by registry {auth.registry} for user {auth.username!r}"


def _container(entry: dict[str, Any]) -> Container:
    labels = entry.get("Labels") or {}
    names = entry.get("Names") or [""]
    return Container(id=entry["Id"], name=names[0].lstrip("/"),
                     service=labels.get(LABEL_SERVICE, ""), node=labels.get(LABEL_NODE, ""),
                     state=entry.get("State", ""), instance=labels.get(LABEL_INSTANCE, ""),
                     image=entry.get("Image", ""), image_id=entry.get("ImageID", ""))


def parse_docker_time(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds, as epoch seconds (microsecond precision)."""
    from datetime import datetime

    stamp, _, digits = text.removesuffix("Z").partition(".")
    base = datetime.fromisoformat(stamp + "+00:00").timestamp()
    return base + (int(digits[:6].ljust(6, "0")) / 1e6 if digits else 0.0)
