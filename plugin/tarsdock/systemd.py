"""systemd output: `tars-App.Server.service` per service and `tars.target` to start them all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tarsdock.argv import docker_run_argv, service_command, service_env
from tarsdock.model import NodeSettings, Service
from tarsdock.output import Context, OutputFile, header, template_env
from tarsdock.quoting import EnvAssignment, Value, systemd

FORMAT = "systemd"
TARGET = "tars.target"
# systemd waits this much longer than Docker's stop window, so `docker stop` always finishes.
STOP_MARGIN = 10
# Tars: at most 10 starts in 60 s.
START_LIMIT_INTERVAL = 60
START_LIMIT_BURST = 10
RESTART_SEC = 3



@dataclass(frozen=True)
class IgnoreFailure:
    """An Exec command whose failure systemd ignores (its `-` prefix)."""

    argv: list[str]


Rows = list[tuple[str, Value | IgnoreFailure]]


def unit_name(service: Service) -> str:
    """The unit of a service: tars-App.Server.service."""
    return f"tars-{service.name}.service"


def _unit_rows(service: Service) -> Rows:
    mode = service.spec.run
    rows: Rows = [
        ("Description", f"Tars service {service.name} ({mode})"),
        ("PartOf", TARGET),
        ("StartLimitIntervalSec", str(START_LIMIT_INTERVAL)),
        ("StartLimitBurst", str(START_LIMIT_BURST)),
    ]
    if mode == "container":
        rows[2:2] = [("After", "docker.service network-online.target"),
                     ("Wants", "network-online.target")]
    return rows


def _container_rows(service: Service, ctx: Context) -> Rows:
    name, timeout = service.name, service.stop_timeout
    return [
        ("ExecStartPre", IgnoreFailure([ctx.docker, "rm", "-f", name])),
        ("ExecStart", docker_run_argv(service, ctx.docker)),
        ("ExecStop", [ctx.docker, "stop", "-t", str(timeout), name]),
        ("ExecStopPost", IgnoreFailure([ctx.docker, "rm", "-f", name])),
        ("TimeoutStopSec", str(timeout + STOP_MARGIN)),
    ]


def _native_rows(service: Service) -> Rows:
    env: Rows = [("Environment", EnvAssignment(k, v)) for k, v in service_env(service)]
    return [("ExecStart", service_command(service)), *env,
            ("TimeoutStopSec", str(service.stop_timeout))]


def service_rows(service: Service, ctx: Context) -> list[tuple[str, Rows]]:
    """The sections of a service's unit, in file order."""
    body = _container_rows(service, ctx) if service.spec.run == "container" \
        else _native_rows(service)
    return [
        ("Unit", _unit_rows(service)),
        ("Service", [
            ("Type", "simple"),
            *body,
            ("WorkingDirectory", str(service.bin_dir)),
            # SIGTERM to the main process only (the service, or the docker client after
            # `docker stop`), SIGKILL to whatever is left once the window is over.
            ("KillMode", "mixed"),
            ("Restart", "always"),
            ("RestartSec", str(RESTART_SEC)),
            ("SyslogIdentifier", service.name),
        ]),
        ("Install", [("WantedBy", TARGET)]),
    ]


def target_rows(services: Sequence[Service]) -> list[tuple[str, Rows]]:
    """tars.target: wants every service, so `systemctl start tars.target` starts them all."""
    units = " ".join(unit_name(service) for service in services)
    unit: Rows = [("Description", "Tars services managed by tarsdock")]
    if units:
        unit.append(("Wants", units))
    return [("Unit", unit), ("Install", [("WantedBy", "multi-user.target")])]


def _render(sections: list[tuple[str, Rows]], head: str, what: str) -> str:
    env = template_env({"systemd": _systemd_filter}, {})
    return env.get_template("systemd/unit.j2").render(header=head, sections=sections, what=what)


def _systemd_filter(value: Value | IgnoreFailure, what: str) -> str:
    if isinstance(value, IgnoreFailure):
        return "-" + systemd(value.argv, what)
    return systemd(value, what)


def render(services: Sequence[Service], node: NodeSettings, ctx: Context,
           out_dir: Path) -> list[OutputFile]:
    """Every systemd unit for these services, plus tars.target."""
    files = []
    for service in services:
        head = header(FORMAT, ctx.config_dir, [service.spec.origin.path,
                                               f"template {service.spec.template}"])
        files.append(OutputFile(out_dir / unit_name(service),
                                _render(service_rows(service, ctx), head, service.name)))
    head = header(FORMAT, ctx.config_dir, [f"node {node.name}", f"{len(services)} services"])
    files.append(OutputFile(out_dir / TARGET, _render(target_rows(services), head, TARGET)))
    return files
