"""systemd output: `tars-App.Server.service` per service, `tars.target` to start them all, and
the `tars-punish@` timer that gives a service that hit its start limit another try later."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from tarsdock.argv import (
    PULL_TIMEOUT,
    docker_run_argv,
    executable_source,
    node_server_command,
    service_command,
    service_env,
    speaks_admin,
    wrapper_settings,
)
from tarsdock.errors import InputError, each_or_errors
from tarsdock.model import NodeSettings, Service, ServiceSpec
from tarsdock.output import (
    Context,
    Lines,
    OutputFile,
    Quote,
    check_ini,
    fixed_lines,
    header,
    ini_text,
    service_headers,
)
from tarsdock.quoting import (
    SYSTEMD_EXEC_PREFIXES,
    EnvAssignment,
    Value,
    check_text,
    remembering,
    systemd,
)
from tarsdock.records import Record

FORMAT = "systemd"
TARGET = "tars.target"
# systemd waits this much longer than Docker's stop window, so `docker stop` always finishes.
STOP_MARGIN = 10
# Tars: at most 10 starts in 60 s.
START_LIMIT_INTERVAL = 60
START_LIMIT_BURST = 10
RESTART_SEC = 3
# Tars "punish" interval: once a service has hit its start limit, tarsnode tries it again every
# 600 s for ever. systemd 252 (bookworm) has no RestartSteps=/RestartMaxDelaySec= (254), so a
# failed unit arms the punish timer through OnFailure=, and its oneshot starts the unit again.
PUNISH_INTERVAL = 600
PUNISH = "tars-punish"
SYSTEMCTL = "/usr/bin/systemctl"
# 128+SIGTERM: `docker run` after `docker stop`, or a JVM on SIGTERM. A clean stop, so that
# `systemctl stop` never leaves a failed unit whose OnFailure= arms the punish timer.
SIGTERM_EXIT = 143
# A start waits this long for an absent Docker daemon before it fails (and Restart= tries
# again): at most one start a minute during an outage, never the 10 in 60 s of the start limit.
DOCKER_WAIT = 60
SYNC_UNIT = "tarsdock-images-sync"
NODE_UNIT = "tarsdock-node"
# seconds AdminF.shutdown may take to answer: a hung service (restarted for its heartbeats) must
# not hold its stop up for long
SHUTDOWN_ANSWER = 1     # the node object (heartbeats): tarsdock.nodeserver
SYNC_TIMEOUT = 1800


class IgnoreFailure(Record):
    """An Exec command whose failure systemd ignores (its `-` prefix)."""

    __slots__ = _fields = ("argv",)
    argv: Final[list[str]]

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv


class Specifiers(Record):
    """A fixed value whose `%` specifiers systemd is meant to expand (written as is)."""

    __slots__ = _fields = ("text",)
    text: Final[str]

    def __init__(self, text: str) -> None:
        self.text = text


Rows = list[tuple[str, Value | IgnoreFailure | Specifiers] | Lines]
# the unit's own punish timer (%n: the unit's name)
PUNISH_TIMER = Specifiers(f"{PUNISH}@%n.timer")


def _systemd_filter(value: Value | IgnoreFailure | Specifiers, what: str) -> str:
    if isinstance(value, IgnoreFailure):
        return "-" + systemd(value.argv, what)
    if isinstance(value, Specifiers):
        return check_text(value.text, what)
    return systemd(value, what)


# Rows every service's unit has, quoted once here rather than in each of a node's units.
_START_LIMIT = [
    # Only the failed state starts it: on systemd 252 the start limit hit, never a clean
    # `systemctl stop` (from 254 on, without RestartMode=direct, every crash goes through it).
    ("OnFailure", PUNISH_TIMER),
    # Stopping the unit (or tars.target, which stops it) disarms its timer, failed or not.
    ("PropagatesStopTo", PUNISH_TIMER),
    ("StartLimitIntervalSec", str(START_LIMIT_INTERVAL)),
    ("StartLimitBurst", str(START_LIMIT_BURST)),
]
NATIVE_UNIT = fixed_lines([("PartOf", TARGET), *_START_LIMIT], _systemd_filter)
CONTAINER_UNIT = fixed_lines([("PartOf", TARGET),
                              ("After", "docker.service network-online.target"),
                              ("Wants", "network-online.target"), *_START_LIMIT], _systemd_filter)
STOP_AND_RESTART = fixed_lines([
    # SIGTERM to the main process only (the service, or tarsdock-run, which asks Docker to
    # stop the container), SIGKILL to whatever is left after the window.
    ("KillMode", "mixed"),
    ("SuccessExitStatus", str(SIGTERM_EXIT)),
    ("Restart", "always"),
    ("RestartSec", str(RESTART_SEC)),
], _systemd_filter)


def unit_name(service: Service | ServiceSpec) -> str:
    """The unit of a service: tars-App.Server.service."""
    return f"tars-{service.name}.service"


def _unit_rows(service: Service) -> Rows:
    mode = service.spec.run
    return [("Description", f"Tars service {service.name} ({mode})"),
            CONTAINER_UNIT if mode == "container" else NATIVE_UNIT]


def wrapper_argv(service: Service, ctx: Context, settings: list[tuple[str, str]],
                 args: list[str] | None = None) -> list[str]:
    """tarsdock-run with its settings inline (`NAME - K=V... [-- ARG...]`), as a unit runs it."""
    argv = [f"{ctx.scripts_dir}/tarsdock-run", service.name, "-"]
    argv += [f"{key}={value}" for key, value in settings]
    if args is not None:
        argv.append("--")
        argv += args
    return argv


def _container_rows(service: Service, ctx: Context, args: list[str] | None) -> Rows:
    name, node = service.name, service.node
    runner, pull_head, pull_tail, reaping = _node_words(ctx.scripts_dir, str(ctx.config_dir),
                                                        ctx.docker, node.instance)
    environment: Rows = [("Environment", EnvAssignment("DOCKER_HOST", node.docker_host))] \
        if node.docker_host else []
    # signals=cgroup: `systemctl kill -s HUP` signals every process of the unit, the docker
    # client too, whose own proxy then delivers it; the wrapper must not deliver it again.
    settings = wrapper_settings(service, ctx.docker, "cgroup", f"{ctx.scripts_dir}/tarsdock")
    if args is None:
        args = docker_run_argv(service, ctx.docker)[1:]
    run = wrapper_argv(service, ctx, settings, args)
    image = service.spec.image
    # wrapper_argv(service, ctx, _wait_settings(...), pull) and (..., reap settings), of words
    # made once per node
    wait = [runner, name, "-", *_wait_words(ctx.docker, image.ref if image and
                                            image.pull != "always" else None),
            "--", *pull_head, name, *pull_tail]
    reap = [runner, name, "-", *reaping]
    return [
        *environment,
        # A Docker outage is waited out here, in one start that stays "activating", instead
        # of failing starts that burn the start limit into the punish timer (README); then a
        # missing image is pulled. One step: a present image costs one `docker image inspect`,
        # not a Python start per unit (100 units starting at once spent most of a node's start
        # in `images sync`, issue 14).
        ("ExecStartPre", IgnoreFailure(wait)),
        # tarsdock-run removes a leftover of this instance itself and stops the container on
        # SIGTERM (KillMode=mixed sends it to the wrapper alone), after AdminF.shutdown for a
        # service with an admin port: no ExecStop=, no `docker rm` by name that could hit
        # another instance's container.
        ("ExecStart", run),
        ("ExecStopPost", IgnoreFailure(reap)),
        ("TimeoutStartSec", str(DOCKER_WAIT + PULL_TIMEOUT + STOP_MARGIN)),
        ("TimeoutStopSec", str(_stop_windows(service) * service.stop_timeout + STOP_MARGIN)),
    ]


# The words of a unit's commands that every unit of a node has, made once rather than in each
# unit: tarsdock-run's path, the head and tail of `images sync --only NAME`, the reap settings.
@functools.lru_cache(maxsize=8)
def _node_words(scripts_dir: str, config_dir: str, docker: str, instance: str
                ) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    pull_head = (f"{scripts_dir}/tarsdock", "--config-dir", config_dir, "images", "sync",
                 "--only")
    reap = ("mode=reap", f"docker={docker}", f"instance={instance}")
    return f"{scripts_dir}/tarsdock-run", pull_head, ("--timeout", str(PULL_TIMEOUT), "--quiet"), \
        reap


@functools.lru_cache(maxsize=64)
def _wait_words(docker: str, image: str | None) -> tuple[str, ...]:
    """The wait step's settings as words; `image` lets a present image skip the pull (None: a
    service without one, or with pull = "always")."""
    settings = [("mode", "wait"), ("docker", docker), ("wait", str(DOCKER_WAIT))]
    if image is not None:
        settings.append(("image", image))
    return tuple(f"{key}={value}" for key, value in settings)


def _speaks_admin(service: Service) -> bool:
    return speaks_admin(service)


def _stop_windows(service: Service) -> int:
    """Stop windows a stop may take: AdminF.shutdown's wait, then Docker's or systemd's own."""
    return 2 if _speaks_admin(service) else 1


def _shutdown_rows(service: Service, ctx: Context) -> Rows:
    """Graceful stop as tarsnode's CommandStop: AdminF.shutdown first, then wait the window.

    Failure is ignored (`-`): a service that does not answer is stopped the usual way next.
    """
    if not _speaks_admin(service):
        return []
    return [("ExecStop", IgnoreFailure([
        f"{ctx.scripts_dir}/tarsdock", "notify", "--shutdown", service.name,
        "--port", str(service.spec.local_port), "--wait", str(service.stop_timeout),
        "--timeout", str(SHUTDOWN_ANSWER)]))]


def _native_command(service: Service) -> list[str]:
    """The service's argv for ExecStart=; InputError, at the line the executable comes from,
    when systemd would read its first character as a prefix (quoting.systemd_argv refuses it
    too, but knows no line)."""
    argv = service_command(service)
    if not argv[0] or argv[0][0] in SYSTEMD_EXEC_PREFIXES:
        origin, key = executable_source(service)
        raise InputError(origin, f"executable {argv[0]!r} would be read as a systemd prefix "
                         f"({SYSTEMD_EXEC_PREFIXES}) of ExecStart=: give its absolute path",
                         key)
    return argv


def _native_rows(service: Service, ctx: Context) -> Rows:
    env: Rows = [("Environment", EnvAssignment(k, v)) for k, v in service_env(service)]
    return [("ExecStart", _native_command(service)), *env, *_shutdown_rows(service, ctx),
            ("TimeoutStopSec", str(service.stop_timeout))]


def service_rows(service: Service, ctx: Context,
                 args: list[str] | None = None) -> list[tuple[str, Rows]]:
    """The sections of a service's unit, in file order; `args`: a container service's docker
    arguments when the caller has them (docker_run_argv without the docker path)."""
    body = _container_rows(service, ctx, args) if service.spec.run == "container" \
        else _native_rows(service, ctx)
    # A disabled service (Tars setting_state inactive) has no [Install]: tars.target does not
    # want it, so it starts only by `systemctl start`; PartOf= still stops it with the target.
    install: list[tuple[str, Rows]] = [("Install", [("WantedBy", TARGET)])] \
        if service.spec.enabled else []
    return [
        ("Unit", _unit_rows(service)),
        ("Service", [
            ("Type", "simple"),
            *body,
            ("WorkingDirectory", str(service.bin_dir)),
            STOP_AND_RESTART,
            ("SyslogIdentifier", service.name),
        ]),
        *install,
    ]


def sync_rows(ctx: Context) -> list[tuple[str, Rows]]:
    """The oneshot that pulls every base image; credentials stay in the password files."""
    sync = [f"{ctx.scripts_dir}/tarsdock", "--config-dir", str(ctx.config_dir), "images", "sync",
            "--quiet", "--timeout", str(SYNC_TIMEOUT)]
    return [
        ("Unit", [("Description", "tarsdock: pull the base images of Tars container services"),
                  ("Wants", "network-online.target"),
                  ("After", "network-online.target docker.service")]),
        # exit status 3 (an image is still missing) is logged; the next timer run tries again
        ("Service", [("Type", "oneshot"), ("ExecStart", sync),
                     ("TimeoutStartSec", str(SYNC_TIMEOUT + STOP_MARGIN)),
                     ("Nice", "10"), ("IOSchedulingClass", "idle")]),
    ]


def timer_rows() -> list[tuple[str, Rows]]:
    """Runs the image sync at boot and then hourly."""
    return [
        ("Unit", [("Description", "tarsdock: pull the base images of Tars services, hourly")]),
        ("Timer", [("OnBootSec", "1min"), ("OnUnitActiveSec", "1h"),
                   ("RandomizedDelaySec", "5min"), ("Persistent", "true")]),
        ("Install", [("WantedBy", "timers.target")]),
    ]


def punish_timer_rows() -> list[tuple[str, Rows]]:
    """tars-punish@UNIT.timer: armed when UNIT fails, fires once after the punish interval."""
    return [
        # PartOf=tars.target: stopping the target disarms every timer directly; the stop job of
        # a unit that is already failed is dropped, and PropagatesStopTo= with it.
        ("Unit", [("Description", Specifiers("Tars punish interval of %i")),
                  ("PartOf", TARGET)]),
        # RemainAfterElapse=no: inactive once fired, so the unit's next failure arms it again.
        ("Timer", [("OnActiveSec", str(PUNISH_INTERVAL)), ("AccuracySec", "1s"),
                   ("RemainAfterElapse", "no")]),
    ]


def punish_service_rows() -> list[tuple[str, Rows]]:
    """tars-punish@UNIT.service: clear UNIT's failed state and start limit, then start it."""
    # %i, not %I: the instance is the unit name as is (%I would unescape its `-` to `/`).
    only_if_failed = f"{SYSTEMCTL} is-failed --quiet %i"
    return [
        ("Unit", [("Description", Specifiers("Tars punish: start %i again"))]),
        ("Service", [("Type", "oneshot"),
                     # A unit started by hand since it failed is left alone.
                     ("ExecCondition", Specifiers(only_if_failed)),
                     ("ExecStart", Specifiers(f"{SYSTEMCTL} reset-failed %i")),
                     ("ExecStart", Specifiers(f"{SYSTEMCTL} --no-block start %i"))]),
    ]


def node_socket_rows(node: NodeSettings) -> list[tuple[str, Rows]]:
    """tarsdock-node.socket: the node object's port, open before any service starts."""
    return [
        ("Unit", [("Description", "tarsdock: Tars node object (heartbeats), socket"),
                  ("PartOf", TARGET)]),
        ("Socket", [("ListenStream", f"127.0.0.1:{node.node_port}")]),
        ("Install", [("WantedBy", "sockets.target")]),
    ]


def node_service_rows(node: NodeSettings, ctx: Context) -> list[tuple[str, Rows]]:
    """tarsdock-node.service: started by its socket; restarts services whose heartbeats stop."""
    return [
        ("Unit", [("Description", "tarsdock: Tars node object (heartbeats)"),
                  ("Requires", f"{NODE_UNIT}.socket"), ("After", f"{NODE_UNIT}.socket")]),
        ("Service", [("Type", "simple"),
                     ("ExecStart", node_server_command(node, ctx.scripts_dir, str(ctx.config_dir))),
                     ("Restart", "always"), ("RestartSec", "1")]),
    ]


def target_rows(specs: Sequence[ServiceSpec]) -> list[tuple[str, Rows]]:
    """tars.target: wants every service, so `systemctl start tars.target` starts them all."""
    units = " ".join([f"{SYNC_UNIT}.timer", f"{NODE_UNIT}.socket",
                      *(unit_name(spec) for spec in specs if spec.enabled)])
    unit: Rows = [("Description", "Tars services managed by tarsdock"), ("Wants", units)]
    return [("Unit", unit), ("Install", [("WantedBy", "multi-user.target")])]


def _render(sections: list[tuple[str, Rows]], head: str, what: str,
            quote: Quote = _systemd_filter) -> str:
    return ini_text(head, sections, quote, what)


def render(services: Sequence[Service], node: NodeSettings, ctx: Context,
           out_dir: Path) -> list[OutputFile]:
    """Every systemd unit for these services, plus tars.target and the shared units."""
    return [*render_services(services, ctx, out_dir),
            *render_node([service.spec for service in services], node, ctx, out_dir)]


def render_services(services: Sequence[Service], ctx: Context, out_dir: Path) -> list[OutputFile]:
    """The unit of each service; the input errors of every service raised together."""
    quote = remembering(_systemd_filter)
    heads = service_headers(FORMAT, ctx.config_dir)

    def unit(service: Service) -> OutputFile:
        head = heads(service.spec.origin.path, service.spec.template)
        return OutputFile(out_dir / unit_name(service),
                          _render(service_rows(service, ctx), head, service.name, quote))

    return each_or_errors(services, unit)


def check_services(services: Sequence[Service], ctx: Context,
                   run_args: Sequence[list[str] | None]) -> None:
    """Raise what render_services raises for these services, making no text (validate);
    `run_args`: each service's docker arguments (see service_rows), or None."""
    quote = remembering(_systemd_filter)
    heads = service_headers(FORMAT, ctx.config_dir)

    def check(service_args: tuple[Service, list[str] | None]) -> None:
        service, args = service_args
        heads(service.spec.origin.path, service.spec.template)
        check_ini(service_rows(service, ctx, args), quote, service.name)

    each_or_errors(zip(services, run_args, strict=True), check)


def render_node(specs: Sequence[ServiceSpec], node: NodeSettings, ctx: Context,
                out_dir: Path) -> list[OutputFile]:
    """tars.target (wanting the services of `specs`) and the shared units."""
    head = header(FORMAT, ctx.config_dir, [f"node {node.name}", f"{len(specs)} services"])
    files = [OutputFile(out_dir / TARGET, _render(target_rows(specs), head, TARGET))]
    head = header(FORMAT, ctx.config_dir, [f"node {node.name}"])
    for name, sections in ((f"{SYNC_UNIT}.service", sync_rows(ctx)),
                           (f"{SYNC_UNIT}.timer", timer_rows()),
                           (f"{PUNISH}@.timer", punish_timer_rows()),
                           (f"{PUNISH}@.service", punish_service_rows()),
                           (f"{NODE_UNIT}.socket", node_socket_rows(node)),
                           (f"{NODE_UNIT}.service", node_service_rows(node, ctx))):
        files.append(OutputFile(out_dir / name, _render(sections, head, name)))
    return files
