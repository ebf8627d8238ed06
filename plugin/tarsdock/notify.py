"""`tarsdock notify`: Tars admin commands (AdminF) to a service's `local` admin endpoint.

AdminF (TarsCpp servant/AdminF.tars) is served as `AdminObj` on the `local` endpoint, the way
tarsnode calls it (TarsFramework NodeServer/CommandNotify.cpp: `AdminObj@<local endpoint>`):
`string notify(string command)` runs `tars.setloglevel INFO`, `tars.viewstatus`, ...;
`void shutdown()` asks the service to exit (tarsnode's CommandStop does it before killing).

`notify --shutdown` is the first step of a graceful stop: call shutdown, then wait up to the
stop window until nothing answers on the admin endpoint any more. It needs no config dir when
given `--port`, so a stop never depends on the config dir being loadable at that moment.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tarsdock import tarsproto as tp
from tarsdock.errors import TarsdockError
from tarsdock.options import bounded_number

ADMIN_SERVANT = "AdminObj"
DEFAULT_TIMEOUT = 5.0            # seconds for one call
EXIT_NOT_ANSWERED = 3            # --all: some running service did not answer; --shutdown: still up
_request_ids = itertools.count(1)


class NotifyError(TarsdockError):
    """The service could not be reached or refused the call."""


class NotRunning(NotifyError):
    """Nothing listens on the admin endpoint."""


@dataclass(frozen=True)
class AdminEndpoint:
    """Where a service's AdminObj answers."""

    service: str
    host: str
    port: int


def call(endpoint: AdminEndpoint, function: str, args: bytes, timeout: float,
         connect: Callable[..., socket.socket] = socket.create_connection) -> bytes:
    """One AdminF call; its result buffer. Raises NotRunning, NotifyError (timeout, error)."""
    where = f"{endpoint.service}: {endpoint.host}:{endpoint.port}"
    request = tp.RequestPacket(iRequestId=next(_request_ids), sServantName=ADMIN_SERVANT,
                               sFuncName=function, sBuffer=args, iTimeout=int(timeout * 1000))
    try:
        with connect((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(tp.encode_packet(request))
            response = _read_response(sock, request.iRequestId)
    except ConnectionRefusedError:
        # notify asks no supervisor: what it knows is that nothing listens there
        raise NotRunning(f"{where}: nothing answers on its admin endpoint (the service is not "
                         "running, or its runtime serves no AdminObj)") from None
    except TimeoutError:
        raise NotifyError(f"{where}: no answer within {timeout:g} s") from None
    except tp.DecodeError as error:
        raise NotifyError(f"{where}: the answer is not the Tars protocol ({error}): another "
                          "program holds the admin port?") from None
    except OSError as error:
        raise NotifyError(f"{where}: {error}") from None
    if response.iRet != tp.SERVER_SUCCESS:
        desc = f": {response.sResultDesc}" if response.sResultDesc else ""
        raise NotifyError(f"{where}: {function} failed with Tars error {response.iRet}{desc}")
    return bytes(response.sBuffer)


def _read_response(sock: socket.socket, request_id: int) -> tp.ResponsePacket:
    buffer = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise tp.DecodeError("connection closed before the answer")
        buffer += chunk
        for body in tp.split_frames(buffer):
            response: tp.ResponsePacket = tp.decode_packet(tp.ResponsePacket, body)
            if response.iRequestId == request_id:
                return response


def notify(endpoint: AdminEndpoint, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """AdminF.notify(command): the service's answer."""
    result = call(endpoint, "notify", tp.encode_params([(tp.STRING, command)]), timeout)
    answer: str = tp.decode_params(result, {0: tp.STRING})[0]
    return answer


def shutdown(endpoint: AdminEndpoint, wait: float, timeout: float = DEFAULT_TIMEOUT,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> bool:
    """AdminF.shutdown, then wait up to `wait` s until the endpoint stops answering.

    True when it stopped answering in time. Raises NotRunning / NotifyError when the call
    itself fails (the caller then stops the service its own way).
    """
    try:
        call(endpoint, "shutdown", b"", timeout)
    except NotifyError as error:
        # a service may close its connections before it answers a shutdown: that is a yes
        if isinstance(error, NotRunning) or "closed before the answer" not in str(error):
            raise
    deadline = clock() + wait
    while clock() < deadline:
        if not answers(endpoint):
            return True
        sleep(0.1)
    return not answers(endpoint)


def answers(endpoint: AdminEndpoint) -> bool:
    """Whether anything accepts a connection on the endpoint."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=0.5):
            return True
    except OSError:
        return False


# --- the command ---------------------------------------------------------------------------


def admin_endpoints(config_dir: Path) -> dict[str, AdminEndpoint | None]:
    """Each service's admin endpoint as its written config file says (None: it has none)."""
    from tarsdock.endpoint import EndpointError, parse_endpoint
    from tarsdock.localports import local_endpoint_in
    from tarsdock.manifest import load_manifest_located

    manifest = load_manifest_located(config_dir)
    found: dict[str, AdminEndpoint | None] = {}
    for name in manifest.services:
        path = Path(manifest.node.data_dir) / name / "conf" / f"{name}.config.conf"
        try:
            text = local_endpoint_in(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            text = ""
        try:
            point = parse_endpoint(text)
        except EndpointError:   # none (not_tars without local_port), or a hand-edited file
            found[name] = None
            continue
        host = "127.0.0.1" if point.host in ("0.0.0.0", "*") else point.host
        found[name] = AdminEndpoint(name, host, point.port)
    return found


# a socket timeout of 0 means non-blocking (the connect fails with EINPROGRESS) and a negative one
# is refused by Python with a traceback: both are usage errors, as is a port past 65535
_SECONDS = bounded_number(float, 0.001, 86400.0, "in 0.001..86400 seconds")
_WAIT = bounded_number(float, 0.0, 86400.0, "in 0..86400 seconds")
_PORT = bounded_number(int, 1, 65535, "a port in 1..65535")


def register(p: argparse.ArgumentParser) -> None:
    """The options of `notify`."""
    from tarsdock.options import complete_names

    complete_names(p.add_argument("service", metavar="App.Server", nargs="?",
                                  help="the service (not with --all)"), "services")
    p.add_argument("command", nargs="*", metavar="COMMAND",
                   help="the admin command, e.g. tars.setloglevel INFO (quoted or not: its words "
                        "are joined with one blank)")
    p.add_argument("--all", action="store_true", help="every running Tars service of the node")
    p.add_argument("--shutdown", action="store_true",
                   help="call AdminF.shutdown and wait for the service to leave (graceful stop)")
    p.add_argument("--wait", type=_WAIT, default=3.0,
                   help="--shutdown: seconds to wait for the service to leave (its stop window)")
    p.add_argument("--port", type=_PORT, default=0,
                   help="the admin port on 127.0.0.1 (no config dir read)")
    p.add_argument("--timeout", type=_SECONDS, default=DEFAULT_TIMEOUT,
                   help="seconds to wait for an answer")
    p.set_defaults(func=cmd_notify)


def cmd_notify(args: argparse.Namespace) -> int:
    """Send the command; print the answer (or, with --all, one block per service)."""
    from tarsdock.options import EXIT_OK, EXIT_USAGE

    words = list(args.command)
    if args.all and args.service:
        args.service, words = None, [args.service, *words]   # `--all CMD...`: all words are CMD
    # `notify App.Server tars.setloglevel INFO` without quotes means what it says
    args.command = " ".join(words)
    if args.all == bool(args.service) or (not args.shutdown and not words) \
            or (args.shutdown and (args.all or words)):
        print("usage: tarsdock notify App.Server COMMAND... | --all COMMAND... | "
              "--shutdown App.Server", file=sys.stderr)
        return EXIT_USAGE
    if not args.shutdown and not args.command.strip():
        print("error: the command is empty (e.g. tars.viewstatus)", file=sys.stderr)
        return EXIT_USAGE
    if args.all:
        return notify_all(args)
    endpoint = one_endpoint(args)
    if args.shutdown:
        gone = shutdown(endpoint, args.wait, args.timeout)
        print(f"{endpoint.service}: AdminF.shutdown: "
              + ("left" if gone else f"still answering after {args.wait:g} s"), file=sys.stderr)
        return EXIT_OK if gone else EXIT_NOT_ANSWERED
    print(notify(endpoint, args.command, args.timeout))
    return EXIT_OK


def one_endpoint(args: argparse.Namespace) -> AdminEndpoint:
    from tarsdock.errors import did_you_mean
    from tarsdock.options import config_dir

    if args.port:
        return AdminEndpoint(args.service, "127.0.0.1", args.port)
    endpoints = admin_endpoints(config_dir(args))
    if args.service not in endpoints:
        raise NotifyError(f"no service '{args.service}' in the manifest"
                          f"{did_you_mean(args.service, endpoints)}")
    endpoint = endpoints[args.service]
    if endpoint is None:
        raise NotifyError(f"{args.service}: has no admin endpoint (a not_tars service without "
                          "local_port, or no config written yet: run `tarsdock generate`)")
    return endpoint


def notify_all(args: argparse.Namespace) -> int:
    from tarsdock.options import EXIT_OK, config_dir

    status = EXIT_OK
    for name, endpoint in sorted(admin_endpoints(config_dir(args)).items()):
        if endpoint is None:
            continue
        try:
            answer = notify(endpoint, args.command, args.timeout)
        except NotRunning:
            print(f"{name}: nothing answers on its admin endpoint, skipped", file=sys.stderr)
            continue
        except NotifyError as error:
            print(f"error: {error}", file=sys.stderr)
            status = EXIT_NOT_ANSWERED
            continue
        print(f"== {name}\n{answer.rstrip()}")
    return status
