"""The manifest as read from node.toml and the resolved services built from it (frozen).

Small records are NamedTuples. Classes with cached properties (a NamedTuple has no __dict__ to
keep them in), or that `records.replace` copies, are records (see tarsdock.records: no dataclass,
whose import and class creation cost every run's start-up some 12 ms).
"""

from __future__ import annotations

import functools
import posixpath
from typing import TYPE_CHECKING, Final, Literal

from tarsdock.errors import Origin
from tarsdock.records import Cached, Record

if TYPE_CHECKING:
    from tarsdock.errors import InputError, InputWarning
    from tarsdock.listeners import Listener
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
NODE_TOML = Origin("node.toml")


class NodeSettings(Record):
    """The [node] table: this host."""

    _fields = ("name", "localip", "tars_path", "locator", "docker_socket", "host_path", "network",
               "supervisor", "supervisor_url", "output_dir", "origin", "instance_setting",
               "config_dir", "node_port", "heartbeat_timeout")
    name: Final[str]
    localip: Final[str]
    tars_path: Final[str]
    locator: Final[str]
    docker_socket: Final[str]
    host_path: Final[str]
    network: Final[Network]
    supervisor: Final[SupervisorKind]
    supervisor_url: Final[str]    # supervisord's XML-RPC, as supervisorctl's -s
    output_dir: Final[str]        # "": DEFAULT_OUTPUT_DIRS[supervisor]
    origin: Final[Origin]
    instance_setting: Final[str]  # [node] instance as written; "" derives it (see `instance`)
    config_dir: Final[str]        # realpath of the config dir the manifest was read from
    node_port: Final[int]         # tarsdock's node object (ServerF), as tarsnode's ServerAdapter
    heartbeat_timeout: Final[int]  # ms: a service's default <server> hearttimeout (tarsnode's)

    def __init__(self, name: str, localip: str, tars_path: str, locator: str,
                 docker_socket: str = DEFAULT_DOCKER_SOCKET, host_path: str = "",
                 network: Network = "host", supervisor: SupervisorKind = "supervisord",
                 supervisor_url: str = DEFAULT_SUPERVISOR_URL, output_dir: str = "",
                 origin: Origin = NODE_TOML, instance_setting: str = "", config_dir: str = "",
                 node_port: int = 19386, heartbeat_timeout: int = 45000) -> None:
        self.name = name
        self.localip = localip
        self.tars_path = tars_path
        self.locator = locator
        self.docker_socket = docker_socket
        self.host_path = host_path
        self.network = network
        self.supervisor = supervisor
        self.supervisor_url = supervisor_url
        self.output_dir = output_dir
        self.origin = origin
        self.instance_setting = instance_setting
        self.config_dir = config_dir
        self.node_port = node_port
        self.heartbeat_timeout = heartbeat_timeout

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


class Registry(Record):
    """A [registries.ID] table; the password stays in its file and is read only when pulling."""

    __slots__ = _fields = ("id", "url", "username", "password_file", "origin")
    id: Final[str]
    url: Final[str]
    username: Final[str]
    password_file: Final[str]
    origin: Final[Origin]

    def __init__(self, id: str, url: str = "docker.io", username: str = "",
                 password_file: str = "", origin: Origin = NODE_TOML) -> None:
        self.id = id
        self.url = url
        self.username = username
        self.password_file = password_file
        self.origin = origin


class Image(Record):
    """A base image: an [images.ID] table, or a literal reference given by a service."""

    __slots__ = _fields = ("ref", "id", "registry", "pull", "restart_on_update", "origin")
    ref: Final[str]               # normalized: always carries a tag or a digest
    id: Final[str]                # empty for a literal reference
    registry: Final[Registry | None]
    pull: Final[PullPolicy]
    restart_on_update: Final[bool]
    origin: Final[Origin]

    def __init__(self, ref: str, id: str = "", registry: Registry | None = None,
                 pull: PullPolicy = "missing", restart_on_update: bool = False,
                 origin: Origin = NODE_TOML) -> None:
        self.ref = ref
        self.id = id
        self.registry = registry
        self.pull = pull
        self.restart_on_update = restart_on_update
        self.origin = origin


class AdapterSpec(Record):
    """One [[services."App.Server".adapters]] entry; becomes a domain under <server>."""

    __slots__ = _fields = ("name", "servant", "endpoint", "threads", "maxconns", "queuecap",
                           "queuetimeout", "protocol", "allow", "origin")
    name: Final[str]
    servant: Final[str]
    endpoint: Final[str]
    threads: Final[int]
    maxconns: Final[int]
    queuecap: Final[int]
    queuetimeout: Final[int]
    protocol: Final[str]
    allow: Final[str]
    origin: Final[Origin]

    def __init__(self, name: str, servant: str, endpoint: str, threads: int = 1,
                 maxconns: int = 10000, queuecap: int = 10000, queuetimeout: int = 60000,
                 protocol: str = "tars", allow: str = "", origin: Origin = NODE_TOML) -> None:
        self.name = name
        self.servant = servant
        self.endpoint = endpoint
        self.threads = threads
        self.maxconns = maxconns
        self.queuecap = queuecap
        self.queuetimeout = queuetimeout
        self.protocol = protocol
        self.allow = allow
        self.origin = origin


class ServiceSpec(Record):
    """A [services."App.Server"] table as written in the manifest, validated but not resolved."""

    _fields = ("app", "server", "type", "template", "run", "origin", "profile", "profile_origin",
               "image", "exe", "command", "local_port", "set_division", "async_thread",
               "main_class", "adapters", "enabled", "key_origins")
    app: Final[str]
    server: Final[str]
    type: Final[ServerType]
    template: Final[str]
    run: Final[RunMode]
    origin: Final[Origin]
    profile: Final[str]           # private template text, merged last
    profile_origin: Final[Origin]  # line of the profile's first text line
    image: Final[Image | None]
    exe: Final[str]
    command: Final[tuple[str, ...]]  # not_tars only
    local_port: Final[int]
    set_division: Final[str]
    async_thread: Final[int]
    main_class: Final[str]
    adapters: Final[tuple[AdapterSpec, ...]]
    enabled: Final[bool]          # false: not started by supervisord/tars.target (Tars inactive)
    # where the keys that errors found after the manifest (a missing template, an executable
    # only rendering refuses) name are written: (key, origin) for those given (see origin_of)
    key_origins: Final[tuple[tuple[str, Origin], ...]]

    def __init__(self, app: str, server: str, type: ServerType, template: str, run: RunMode,
                 origin: Origin, profile: str = "", profile_origin: Origin = NODE_TOML,
                 image: Image | None = None, exe: str = "", command: tuple[str, ...] = (),
                 local_port: int = 0, set_division: str = "", async_thread: int = 3,
                 main_class: str = "", adapters: tuple[AdapterSpec, ...] = (),
                 enabled: bool = True,
                 key_origins: tuple[tuple[str, Origin], ...] = ()) -> None:
        self.app = app
        self.server = server
        self.type = type
        self.template = template
        self.run = run
        self.origin = origin
        self.profile = profile
        self.profile_origin = profile_origin
        self.image = image
        self.exe = exe
        self.command = command
        self.local_port = local_port
        self.set_division = set_division
        self.async_thread = async_thread
        self.main_class = main_class
        self.adapters = adapters
        self.enabled = enabled
        self.key_origins = key_origins

    @functools.cached_property
    def name(self) -> str:
        # once per service: rendering its files reads it some ten times
        return f"{self.app}.{self.server}"

    def origin_of(self, key: str) -> Origin:
        """Where the table writes `key` (one of key_origins'), else the table's own line."""
        for name, origin in self.key_origins:
            if name == key:
                return origin
        return self.origin


class Manifest(Record):
    """Everything the config dir's TOML files say, validated."""

    __slots__ = _fields = ("node", "registries", "images", "template_parents", "services",
                           "unread_files", "listeners", "notes", "clashing")
    node: Final[NodeSettings]
    registries: Final[dict[str, Registry]]
    images: Final[dict[str, Image]]
    template_parents: Final[dict[str, tuple[str, Origin]]]
    services: Final[dict[str, ServiceSpec]]
    unread_files: Final[tuple[str, ...]]     # services.d files not named *.toml (not hidden)
    # the endpoints its tables say the node listens on (tarsdock.listeners.Listener), and the
    # warnings of those that clash if a host name resolves so (check_listeners)
    listeners: Final[tuple[Listener, ...]]
    notes: Final[tuple[InputWarning, ...]]
    # whether two of `listeners` clash: the errors wait for the services to be resolved, whose
    # final configs may not have one of them (resolve.check_manifest_listeners)
    clashing: Final[bool]

    def __init__(self, node: NodeSettings, registries: dict[str, Registry] | None = None,
                 images: dict[str, Image] | None = None,
                 template_parents: dict[str, tuple[str, Origin]] | None = None,
                 services: dict[str, ServiceSpec] | None = None,
                 unread_files: tuple[str, ...] = (), listeners: tuple[Listener, ...] = (),
                 notes: tuple[InputWarning, ...] = (), clashing: bool = False) -> None:
        self.node = node
        self.registries = {} if registries is None else registries
        self.images = {} if images is None else images
        self.template_parents = {} if template_parents is None else template_parents
        self.services = {} if services is None else services
        self.unread_files = unread_files
        self.listeners = listeners
        self.notes = notes
        self.clashing = clashing


class Volume(Record):
    """A <volumes> line host=container[:ro|:rw], both absolute."""

    __slots__ = _fields = ("host", "container", "origin", "mode")
    host: Final[str]
    container: Final[str]
    origin: Final[Origin]
    mode: Final[str]              # "ro", "rw" or "" (Docker's default, rw)

    def __init__(self, host: str, container: str, origin: Origin, mode: str = "") -> None:
        self.host = host
        self.container = container
        self.origin = origin
        self.mode = mode


class PortMapping(Record):
    """A <ports> line like 80/tcp=192.168.0.1:80."""

    __slots__ = _fields = ("port", "proto", "host_ip", "host_port", "origin")
    port: Final[int]
    proto: Final[Literal["tcp", "udp"]]
    host_ip: Final[str]
    host_port: Final[int]
    origin: Final[Origin]

    def __init__(self, port: int, proto: Literal["tcp", "udp"], host_ip: str, host_port: int,
                 origin: Origin) -> None:
        self.port = port
        self.proto = proto
        self.host_ip = host_ip
        self.host_port = host_port
        self.origin = origin


class ContainerOptions(Record):
    """The validated <tars><application><container> domain."""

    __slots__ = _fields = ("volumes", "ports", "options")
    volumes: Final[tuple[Volume, ...]]
    ports: Final[tuple[PortMapping, ...]]
    options: Final[tuple[tuple[str, str], ...]]  # (key from keys.CONTAINER_OPTIONS, value)

    def __init__(self, volumes: tuple[Volume, ...] = (), ports: tuple[PortMapping, ...] = (),
                 options: tuple[tuple[str, str], ...] = ()) -> None:
        self.volumes = volumes
        self.ports = ports
        self.options = options

    @property
    def privileged(self) -> bool:
        return ("privileged", "true") in self.options


class PackageFacts(Record):
    """What the release deployed in the bin dir says about starting it (read by an adapter)."""

    __slots__ = _fields = ("node_agent", "entry")
    node_agent: Final[bool]       # bin/tars_nodejs/node-agent present, or nothing deployed yet
    entry: Final[str]             # tars_nodejs without node-agent: entry point relative to bin/

    def __init__(self, node_agent: bool = True, entry: str = "") -> None:
        self.node_agent = node_agent
        self.entry = entry


# a service's bind mounts (source as the Docker daemon sees it, target, options), in order, and
# the <volumes> lines that cannot be honoured (tarsdock.argv)
MountPlan = tuple[tuple[tuple[str, str, str], ...], tuple["InputError", ...]]

NO_CONTAINER_OPTIONS = ContainerOptions()
NO_PACKAGE_FACTS = PackageFacts()


class Service(Record):
    """A service fully resolved: final Tars config, environment, container options, paths."""

    _fields = ("spec", "node", "config", "env", "container", "stop_timeout", "package")
    spec: Final[ServiceSpec]
    node: Final[NodeSettings]
    config: Final[Config]
    env: Final[tuple[tuple[str, str], ...]]
    container: Final[ContainerOptions]
    stop_timeout: Final[int]      # seconds: deactivating-timeout clamped to 2..60
    package: Final[PackageFacts]

    def __init__(self, spec: ServiceSpec, node: NodeSettings, config: Config,
                 env: tuple[tuple[str, str], ...] = (),
                 container: ContainerOptions = NO_CONTAINER_OPTIONS, stop_timeout: int = 3,
                 package: PackageFacts = NO_PACKAGE_FACTS) -> None:
        self.spec = spec
        self.node = node
        self.config = config
        self.env = env
        self.container = container
        self.stop_timeout = stop_timeout
        self.package = package
        # tarsdock.argv's mount plan, kept there on first use: resolve checks it, and each
        # format's `docker run` mounts it
        self.mount_plan: MountPlan | None = None

    @Cached
    def name(self) -> str:
        return self.spec.name

    @Cached
    def config_text(self) -> str:
        """The final config as written to conf_path (serialized on first use: validate skips it)."""
        from tarsdock.tcconfig import serialize

        return serialize(self.config)

    # Paths are str, joined with "/": the node's dirs are normalized and end in a name, and
    # App and Server are names; PurePosixPath arithmetic cost a tenth of a large node's load.
    @Cached
    def service_dir(self) -> str:
        return f"{self.node.data_dir}/{self.name}"

    @Cached
    def bin_dir(self) -> str:
        return f"{self.service_dir}/bin"

    @Cached
    def conf_dir(self) -> str:
        return f"{self.service_dir}/conf"

    @Cached
    def data_path(self) -> str:
        return f"{self.service_dir}/data"

    @Cached
    def conf_path(self) -> str:
        return f"{self.conf_dir}/{self.name}.config.conf"

    @Cached
    def log_dir(self) -> str:
        return f"{self.node.log_dir}/{self.spec.app}/{self.spec.server}"
