"""supervisord output: one `[program:App.Server]` file per service, plus `tars.conf`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tarsdock.argv import docker_run_argv, service_command, service_env
from tarsdock.model import NodeSettings, Service
from tarsdock.output import Context, OutputFile, header, render_template
from tarsdock.quoting import Value, supervisor

FORMAT = "supervisord"
GROUP = "tars"
# supervisord waits this much longer than Docker's stop window, so `docker stop` always finishes
# (and removes the container) before supervisord would SIGKILL the wrapper.
STOP_MARGIN = 10
# Tars allows 10 starts in 60 s. supervisord gives up after startretries+1 failed starts, waiting
# 1, 2, ... s between them: 10 starts take about 45 s.
START_RETRIES = 9
START_SECS = 3
LISTENER_EVENTS = "PROCESS_STATE,SUPERVISOR_STATE_CHANGE,TICK_60"
LISTENER_BUFFER = 10000   # events queued per listener; a storm of restarts must not overflow it

Rows = list[tuple[str, Value]]


def _sources(service: Service) -> list[str]:
    return [service.spec.origin.path, f"template {service.spec.template}"]


def program_command(service: Service, ctx: Context) -> list[str]:
    """The argv supervisord runs: tarsdock-run around `docker run`, or env(1) around the command."""
    if service.spec.run == "container":
        wrapper = [f"{ctx.scripts_dir}/tarsdock-run", service.name, str(service.stop_timeout)]
        return wrapper + docker_run_argv(service, ctx.docker)
    # env(1) instead of supervisord's environment=, whose quoting rules are its own.
    assignments = [f"{key}={value}" for key, value in service_env(service)]
    return ["/usr/bin/env", "--", *assignments, *service_command(service)]


def program_rows(service: Service, ctx: Context) -> Rows:
    """The keys of `[program:App.Server]`, in file order."""
    container = service.spec.run == "container"
    stop_wait = service.stop_timeout + STOP_MARGIN if container else service.stop_timeout
    docker_host = service.node.docker_host if container else None
    environment: Rows = [("environment", f'DOCKER_HOST="{docker_host}"')] if docker_host else []
    return [
        ("command", program_command(service, ctx)),
        *environment,
        ("directory", str(service.bin_dir)),
        ("autostart", "true"),
        ("autorestart", "true"),
        ("startsecs", str(START_SECS)),
        ("startretries", str(START_RETRIES)),
        ("stopsignal", "TERM"),
        ("stopwaitsecs", str(stop_wait)),
        # SIGTERM goes to the wrapper alone (it asks Docker to stop); SIGKILL, if it comes to
        # that, to the whole group so no docker client is left behind.
        ("stopasgroup", "false"),
        ("killasgroup", "true"),
        ("redirect_stderr", "true"),
        ("stdout_logfile", str(service.log_dir / f"{service.name}.stdout.log")),
        ("stdout_logfile_maxbytes", "10MB"),
        ("stdout_logfile_backups", "10"),
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


def _render(sections: list[tuple[str, Rows]], head: str, what: str) -> str:
    return render_template("supervisord/file.conf.j2", {"supervisor": supervisor},
                           header=head, sections=sections, what=what)


def render(services: Sequence[Service], node: NodeSettings, ctx: Context,
           out_dir: Path) -> list[OutputFile]:
    """Every supervisord file for these services."""
    files = []
    for service in services:
        sections = [(f"program:{service.name}", program_rows(service, ctx))]
        head = header(FORMAT, ctx.config_dir, _sources(service))
        files.append(OutputFile(out_dir / f"{service.name}.conf",
                                _render(sections, head, service.name)))
    group: list[tuple[str, Rows]] = []
    if services:
        group = [(f"group:{GROUP}", [("programs", ",".join(s.name for s in services))])]
    sections = [*group, ("eventlistener:tarsdock", listener_rows(node, ctx))]
    head = header(FORMAT, ctx.config_dir, ["node.toml", f"{len(services)} services"])
    files.append(OutputFile(out_dir / "tars.conf", _render(sections, head, "tars.conf")))
    return files

