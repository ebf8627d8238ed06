"""The manifest as read from node.toml and the resolved services built from it (frozen).

Small records are NamedTuples: a frozen dataclass compiles six methods when its class is made
(0.5-1 ms a class on a slow machine: eleven of them were 7 ms of every run's start-up), a
NamedTuple one. Classes with cached properties (a NamedTuple has no __dict__ to keep them in),
or that `dataclasses.replace` copies, stay frozen dataclasses.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from tarsdock.errors import Origin

if TYPE_CHECKING:
    from tarsdock.tcconfig import Config

RunMode = Literal["container", "native"]
ServerType = Literal["tars_cpp", "tars_go", "tars_java", "tars_nodejs", "tars_php", "not_tars"]
PullPolicy = Literal["missing", "always", "never"]
Network = Literal["host", "bridge"]
SupervisorKind = Literal["supervisord", "systemd"]

SERVER_TYPES: tuple[ServerType, ...] = (
    "tars_cpp", "tars_go", "tars_java", "tars_nodejs", "tars_php", "not_tars",
)


DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_SUPERVISOR_URL = "unix:///var/run/supervisor.sock"
# where `apply` writes programs or units when [node] output_dir is not set
DEFAULT_OUTPUT_DIRS: dict[str, str] = {
    "supervisord": "/etc/supervisor/conf.d/tarsdock",
    "systemd": "/etc/systemd/system",
}


@dataclass(frozen=True)
class NodeSettings:
    """The [node] table: this host."""

    name: str
    localip: str
    tars_path: str
    locator: str
    docker_socket: str = DEFAULT_DOCKER_SOCKET
    host_path: str = ""
    network: Network = "host"
    supervisor: SupervisorKind = "supervisord"
    supervisor_url: str = DEFAULT_SUPERVISOR_URL   # supervisord's XML-RPC, as supervisorctl's -s
    output_dir: str = ""          # "": DEFAULT_OUTPUT_DIRS[supervisor]
    origin: Origin = Origin("node.toml")
    instance_setting: str = ""    # [node] instance as written; "" derives it (see `instance`)
    config_dir: str = ""          # realpath of the config dir the manifest was read from
    node_port: int = 19386        # tarsdock's node object (ServerF), as tarsnode's ServerAdapter
    heartbeat_timeout: int = 45000   # ms: a service's default <server> hearttimeout (tarsnode's)

    @functools.cached_property
    def instance(self) -> str:
        """This tarsdock instance's id: `[node] instance`, else `NAME@` + 8 hex of the config dir.

        Every container tarsdock starts carries it as label `tarsdock.instance`; nothing of
        tarsdock stops or removes a container with another value (DESIGN §11). Derived from the
        config dir's real path, so two config dirs with the same node name on one engine differ.
        """
        if self.instance_setting:
            return self.instance_setting
        # imported here: `config` and `completion --list` need no instance
        import hashlib

        digest = hashlib.sha256(self.config_dir.encode()).hexdigest()[:8]
        return f"{self.name}@{digest}"

    @property
    def node_object(self) -> str:
        """The proxy every Tars service's config names as `node` (its heartbeats go there)."""
        return f"tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p {self.node_port} -t 60000"

    @functools.cached_property
    def state_dir(self) -> str:
        """Where tarsdock-run keeps each service's failures and starts (see tarsdock.state)."""
        return posixpath.join(self.tars_path, "tarsdock", "state")

    @property
    def units_dir(self) -> str:
        """Where `apply` writes the supervisor's files: output_dir, else its default."""
        return self.output_dir or DEFAULT_OUTPUT_DIRS[self.supervisor]

    @property
    def docker_host(self) -> str | None:
        """DOCKER_HOST for the docker CLI, when the socket is not the CLI's default."""
        return None if self.docker_socket == DEFAULT_DOCKER_SOCKET else f"unix://{self.docker_socket}"

    @functools.cached_property
    def data_dir(self) -> str:
        return posixpath.join(self.tars_path, "tarsnode", "data")

    @functools.cached_property
    def log_dir(self) -> str:
        return posixpath.join(self.tars_path, "app_log")


class Registry(NamedTuple):
    """A [registries.ID] table; the password stays in its file and is read only when pulling."""

    id: str
    url: str = "docker.io"
    username: str = ""
    password_file: str = ""
    origin: Origin = Origin("node.toml")


class Image(NamedTuple):
    """A base image: an [images.ID] table, or a literal reference given by a service."""

    ref: str                      # normalized: always carries a tag or a digest
    id: str = ""                  # empty for a literal reference
    registry: Registry | None = None
    pull: PullPolicy = "missing"
    restart_on_update: bool = False
    origin: Origin = Origin("node.toml")


class AdapterSpec(NamedTuple):
    """One [[services."App.Server".adapters]] entry; becomes a domain under <server>."""

    name: str
    servant: str
    endpoint: str
    threads: int = 1
    maxconns: int = 10000
    queuecap: int = 10000
    queuetimeout: int = 60000
    protocol: str = "tars"
    allow: str = ""
    origin: Origin = Origin("node.toml")


@dataclass(frozen=True)
class ServiceSpec:
    """A [services."App.Server"] table as written in the manifest, validated but not resolved."""

    app: str
    server: str
    type: ServerType
    template: str
    run: RunMode
    origin: Origin
    profile: str = ""             # private template text, merged last
    profile_origin: Origin = Origin("node.toml")   # line of the profile's first text line
    image: Image | None = None
    exe: str = ""
    command: tuple[str, ...] = ()  # not_tars only
    local_port: int = 0
    set_division: str = ""
    async_thread: int = 3
    main_class: str = ""
    adapters: tuple[AdapterSpec, ...] = ()
    enabled: bool = True          # false: not started by supervisord/tars.target (Tars inactive)

    @functools.cached_property
    def name(self) -> str:
        # once per service: rendering its files reads it some ten times
        return f"{self.app}.{self.server}"


@dataclass(frozen=True)
class Manifest:
    """Everything the config dir's TOML files say, validated."""

    node: NodeSettings
    registries: dict[str, Registry] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)
    template_parents: dict[str, tuple[str, Origin]] = field(default_factory=dict)
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    unread_files: tuple[str, ...] = ()     # services.d files not named *.toml (not hidden)


class Volume(NamedTuple):
    """A <volumes> line host=container[:ro|:rw], both absolute."""

    host: str
    container: str
    origin: Origin
    mode: str = ""                # "ro", "rw" or "" (Docker's default, rw)


class PortMapping(NamedTuple):
    """A <ports> line like 80/tcp=192.168.0.1:80."""

    port: int
    proto: Literal["tcp", "udp"]
    host_ip: str
    host_port: int
    origin: Origin


class ContainerOptions(NamedTuple):
    """The validated <tars><application><container> domain."""

    volumes: tuple[Volume, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    options: tuple[tuple[str, str], ...] = ()   # (key from keys.CONTAINER_OPTIONS, value)

    @property
    def privileged(self) -> bool:
        return ("privileged", "true") in self.options


class PackageFacts(NamedTuple):
    """What the release deployed in the bin dir says about starting it (read by an adapter)."""

    node_agent: bool = True       # bin/tars_nodejs/node-agent present, or nothing deployed yet
    entry: str = ""               # tars_nodejs without node-agent: entry point relative to bin/


@dataclass(frozen=True)
class Service:
    """A service fully resolved: final Tars config, environment, container options, paths."""

    spec: ServiceSpec
    node: NodeSettings
    config: Config
    env: tuple[tuple[str, str], ...] = ()
    container: ContainerOptions = ContainerOptions()
    stop_timeout: int = 3         # seconds: deactivating-timeout clamped to 2..60
    package: PackageFacts = PackageFacts()

    @functools.cached_property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def config_text(self) -> str:
        """The final config as written to conf_path (serialized on first use: validate skips it)."""
        from tarsdock.tcconfig import serialize

        return serialize(self.config)

    # Paths are str, joined with "/": the node's dirs are normalized and end in a name, and
    # App and Server are names; PurePosixPath arithmetic cost a tenth of a large node's load.
    @functools.cached_property
    def service_dir(self) -> str:
        return f"{self.node.data_dir}/{self.name}"

    @functools.cached_property
    def bin_dir(self) -> str:
        return f"{self.service_dir}/bin"

    @functools.cached_property
    def conf_dir(self) -> str:
        return f"{self.service_dir}/conf"

    @functools.cached_property
    def data_path(self) -> str:
        return f"{self.service_dir}/data"

    @functools.cached_property
    def conf_path(self) -> str:
        return f"{self.conf_dir}/{self.name}.config.conf"

    @functools.cached_property
    def log_dir(self) -> str:
        return f"{self.node.log_dir}/{self.spec.app}/{self.spec.server}"
