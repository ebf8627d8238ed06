"""supervisord output: per service a stable `[program:App.Server]` file and a run file.

supervisord replaces a changed group whole, so a program section that changed would make
`supervisorctl update` restart every program of group `tars`. Everything that may change with a
service's config (run mode, image, argv, env, mounts, options) therefore lives in `App.Server.run`,
which tarsdock-run sources at each start; the program section depends only on the service's name
and paths, and a changed service needs only `supervisorctl restart tars:App.Server`.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from tarsdock.argv import (
    PULL_TIMEOUT,
    docker_run_argv,
    node_server_command,
    service_command,
    service_env,
    speaks_admin,
    wrapper_settings,
)
from tarsdock.errors import each_or_errors
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
    QuotingError,
    Value,
    check_text,
    remembering,
    sh_assignments,
    sh_words,
    supervisor,
)
from tarsdock.state import node_ready_path

FORMAT = "supervisord"
GROUP = "tars"
RUN_SUFFIX = ".run"
# supervisord waits this much longer than the largest Docker stop window, so `docker stop` always
# finishes (and removes the container) before supervisord would SIGKILL the wrapper. One constant
# for every service: a window that depended on the template would change the program section.
STOP_MARGIN = 10
# Tars allows 10 starts in 60 s. supervisord gives up after startretries+1 failed starts, waiting
# 1, 2, ... s between them: 10 starts take about 45 s.
START_RETRIES = 9
START_SECS = 3
LISTENER_EVENTS = "PROCESS_STATE,SUPERVISOR_STATE_CHANGE,TICK_60"
LISTENER_BUFFER = 10000   # events queued per listener; a storm of restarts must not overflow it

Rows = list[tuple[str, Value] | Lines]


def _sources(service: Service) -> list[str]:
    return [service.spec.origin.path, f"template {service.spec.template}"]


@functools.lru_cache(maxsize=8)
def _ready_file(state_dir: str) -> str:
    # once per node, not per service: Path arithmetic is slow in bulk
    return str(node_ready_path(Path(state_dir)))


def run_path(service: Service, out_dir: Path) -> Path:
    """Where the service's run file goes: beside its program file."""
    # Never in the service dir: the container mounts it read-write, and the host sources this.
    return out_dir / f"{service.name}{RUN_SUFFIX}"


def run_argv(service: Service, ctx: Context, args: list[str] | None = None) -> list[str]:
    """The positional parameters of the run file: `docker`'s arguments (`args` when the caller
    has them: docker_run_argv without the docker path), or env(1) and the argv."""
    if service.spec.run == "container":
        return args if args is not None else docker_run_argv(service, ctx.docker)[1:]
    # env(1): the service's environment without a shell's quoting rules in between.
    assignments = [f"{key}={value}" for key, value in service_env(service)]
    command = service_command(service)
    if "=" in command[0]:
        # env(1) takes every leading word with a '=' for an assignment, a program path too
        # (/srv/a=b/bin/Server): sh runs such a path as given, "$0", with the arguments
        command = ["/bin/sh", "-c", 'exec "$0" "$@"', *command]
    return ["/usr/bin/env", "--", *assignments, *command]


def _sh(word: str, what: str) -> str:
    return shlex.quote(check_text(word, what))


def _pull_settings(service: Service, ctx: Context,
                   settings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What tarsdock-run needs to pull a container's image at its start, as a systemd unit's
    ExecStartPre does (`images sync --only NAME`); none with pull = "never"."""
    image = service.spec.image
    if image is None or image.pull == "never":
        return []
    pull = [("pull", image.pull), ("config", str(ctx.config_dir)),
            ("pulltimeout", str(PULL_TIMEOUT))]
    if not any(key == "tarsdock" for key, _ in settings):
        # a service without an admin port has no `tarsdock` for the stop
        pull.append(("tarsdock", f"{ctx.scripts_dir}/tarsdock"))
    return pull


def run_lines(service: Service, ctx: Context, args: list[str] | None = None) -> list[str]:
    """The sh lines of the run file: its variables, then `set -- ARGV` (`args`: see run_argv)."""
    what = f"{service.name}: command"
    argv = run_argv(service, ctx, args)
    if not argv:
        raise QuotingError(f"{what}: empty command")
    if service.spec.run == "container":
        settings = wrapper_settings(service, ctx.docker, "forward", f"{ctx.scripts_dir}/tarsdock")
        settings += _pull_settings(service, ctx, settings)
    else:
        settings = [("mode", "native"), ("state", str(service.node.state_dir))]
        if speaks_admin(service):
            # supervisord has no stop command: the wrapper stays the service's parent and
            # stops it as tarsnode's CommandStop (AdminF.shutdown first); without an admin
            # port it execs the service and costs nothing
            settings += [("timeout", str(service.stop_timeout)),
                         ("admin", str(service.spec.local_port)),
                         ("tarsdock", f"{ctx.scripts_dir}/tarsdock")]
    if service.spec.type != "not_tars":
        # supervisord starts tarsdock-node first (priority) but does not wait for it to listen;
        # the wrapper waits for its ready file, as tarsnode runs before its services (systemd's
        # socket unit needs no such wait)
        settings.append(("node", _ready_file(service.node.state_dir)))
    lines = sh_assignments(settings, what)
    if service.spec.run == "container" and service.node.docker_host:
        lines.append(f"export DOCKER_HOST={_sh(service.node.docker_host, 'docker_host')}")
    lines.append(f"set -- {sh_words(argv, what)}")
    return lines


def render_run(service: Service, ctx: Context, head: str | None = None) -> str:
    """`App.Server.run`: sourced by tarsdock-run at every start of the program; `head` is the
    service's header when the caller has it already."""
    head = head or header(FORMAT, ctx.config_dir, _sources(service))
    note = f"# Sourced by tarsdock-run for program {GROUP}:{service.name}; never executed.\n"
    return "".join([head, note, "\n".join(run_lines(service, ctx)), "\n"])


def program_command(service: Service, ctx: Context, out_dir: Path) -> list[str]:
    """The argv supervisord runs: tarsdock-run with the service's name and run file."""
    # str(run_path(...)) without building the Path
    return [f"{ctx.scripts_dir}/tarsdock-run", service.name,
            os.path.join(out_dir, f"{service.name}{RUN_SUFFIX}")]


# Rows every program section has, quoted once here rather than in each of a node's sections.
RESTARTS = fixed_lines([("autorestart", "true"), ("startsecs", str(START_SECS)),
                        ("startretries", str(START_RETRIES)), ("stopsignal", "TERM")], supervisor)
# SIGTERM goes to the wrapper alone (it asks Docker to stop); SIGKILL, if it comes to that, to
# the whole group so no docker client is left behind.
KILL_AND_LOG = fixed_lines([("stopasgroup", "false"), ("killasgroup", "true"),
                            ("redirect_stderr", "true")], supervisor)
LOG_ROTATION = fixed_lines([("stdout_logfile_maxbytes", "10MB"),
                            ("stdout_logfile_backups", "10")], supervisor)


def program_rows(service: Service, ctx: Context, out_dir: Path) -> Rows:
    """The keys of `[program:App.Server]`, in file order; of the config only the stop window."""
    return [
        ("command", program_command(service, ctx, out_dir)),
        ("directory", str(service.bin_dir)),
        # a disabled service (Tars setting_state inactive) starts only by hand
        ("autostart", "true" if service.spec.enabled else "false"),
        RESTARTS,
        # the service's window (deactivating-timeout) + a margin, in both run modes: a hung
        # native service is killed on Tars' time, and a mode switch leaves the section alone
        ("stopwaitsecs", str(service.stop_timeout + STOP_MARGIN)),
        KILL_AND_LOG,
        ("stdout_logfile", f"{service.log_dir}/{service.name}.stdout.log"),
        LOG_ROTATION,
    ]


def listener_log_dir(node: NodeSettings) -> Path:
    """The directory the listener logs into; it must exist before supervisord starts it."""
    return Path(node.log_dir) / "tarsdock"


def listener_rows(node: NodeSettings, ctx: Context) -> Rows:
    """The keys of `[eventlistener:tarsdock]`."""
    command = [f"{ctx.scripts_dir}/tarsdock", "--config-dir", str(ctx.config_dir), "listener"]
    return [
        ("command", command),
        ("events", LISTENER_EVENTS),
        ("buffer_size", str(LISTENER_BUFFER)),
        ("autostart", "true"),
        ("autorestart", "true"),
        ("stdout_logfile", "NONE"),
        ("stderr_logfile", str(listener_log_dir(node) / "listener.log")),
        ("stderr_logfile_maxbytes", "10MB"),
        ("stderr_logfile_backups", "5"),
    ]


def node_rows(node: NodeSettings, ctx: Context) -> Rows:
    """The keys of `[program:tarsdock-node]`: the Tars node object (tarsdock.nodeserver).

    A group of its own, not in `tars`: adding it or changing it restarts none of the services.
    """
    return [
        ("command", node_server_command(node, ctx.scripts_dir, str(ctx.config_dir))),
        # before the services (999), so their first keepAlive finds it
        ("priority", "500"),
        ("autostart", "true"),
        ("autorestart", "true"),
        ("startsecs", "1"),
        ("stdout_logfile", "NONE"),
        ("stderr_logfile", str(listener_log_dir(node) / "node.log")),
        ("stderr_logfile_maxbytes", "10MB"),
        ("stderr_logfile_backups", "5"),
    ]


def _render(sections: list[tuple[str, Rows]], head: str, what: str,
            quote: Quote = supervisor) -> str:
    return ini_text(head, sections, quote, what)


def render(services: Sequence[Service], node: NodeSettings, ctx: Context,
           out_dir: Path) -> list[OutputFile]:
    """Every supervisord file for these services."""
    return [*render_services(services, ctx, out_dir),
            *render_node([service.spec for service in services], node, ctx, out_dir)]


def render_services(services: Sequence[Service], ctx: Context, out_dir: Path) -> list[OutputFile]:
    """Each service's program file and run file; the input errors of every service raised
    together."""
    quote = remembering(supervisor)
    heads = service_headers(FORMAT, ctx.config_dir)

    def program(service: Service) -> tuple[OutputFile, OutputFile]:
        sections = [(f"program:{service.name}", program_rows(service, ctx, out_dir))]
        head = heads(service.spec.origin.path, service.spec.template)
        return (OutputFile(out_dir / f"{service.name}.conf",
                           _render(sections, head, service.name, quote)),
                OutputFile(run_path(service, out_dir), render_run(service, ctx, head)))

    return [file for pair in each_or_errors(services, program) for file in pair]


def check_services(services: Sequence[Service], ctx: Context, out_dir: Path,
                   run_args: Sequence[list[str] | None]) -> None:
    """Raise what render_services raises for these services, making no text (validate);
    `run_args`: each service's docker arguments (see run_argv), or None."""
    quote = remembering(supervisor)
    heads = service_headers(FORMAT, ctx.config_dir)

    def check(service_args: tuple[Service, list[str] | None]) -> None:
        service, args = service_args
        heads(service.spec.origin.path, service.spec.template)
        check_ini([(f"program:{service.name}", program_rows(service, ctx, out_dir))], quote,
                  service.name)
        run_lines(service, ctx, args)

    each_or_errors(zip(services, run_args, strict=True), check)


def render_node(specs: Sequence[ServiceSpec], node: NodeSettings, ctx: Context,
                out_dir: Path) -> list[OutputFile]:
    """tars.conf: the group of the services of `specs`, the event listener, the node server."""
    group: list[tuple[str, Rows]] = []
    if specs:
        group = [(f"group:{GROUP}", [("programs", ",".join(s.name for s in specs))])]
    sections = [*group, ("eventlistener:tarsdock", listener_rows(node, ctx)),
                ("program:tarsdock-node", node_rows(node, ctx))]
    head = header(FORMAT, ctx.config_dir, ["node.toml", f"{len(specs)} services"])
    return [OutputFile(out_dir / "tars.conf", _render(sections, head, "tars.conf"))]
