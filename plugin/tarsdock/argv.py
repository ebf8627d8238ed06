"""The command a service runs, as Tars builds it, and the `docker run` argv around it.

The service command follows tarsnode's CommandLoad::execute (which binary) and
CommandStart::prepareScript (which arguments), TarsFramework NodeServer/. Differences, on purpose:
- tarsnode writes a `tars_start.sh` and runs it with `sh`; we exec the argv itself, so the
  service is PID 1's child (docker --init) and gets SIGTERM directly. The texts sh would read
  (env items, java, jvmparams, classpath, mainclass, php's entrance) get sh's word rules here
  (shwords); what needs a shell at run time is refused at its line.
- tarsnode reads `server<nodejs>`/`server<php>` with parseFile(profile text), which always fails and
  falls back to `node`/`php`; we read those keys from the final config as intended.
- tarsnode adds `export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:<exe path>:<lib path>` after the
  template's env (CommandStart::prepareScript), the lib path being `<data dir>/lib/`
  (CommandLoad::execute). We set the same, after the template's own LD_LIBRARY_PATH when it has
  one, in both run modes, and mount the lib dir read-only into containers (tarsnode does not).
  What tarsnode's or the image's environment held before is not prepended: no shell runs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from tarsdock import shwords
from tarsdock.containerspec import SERVER_PATH
from tarsdock.endpoint import EndpointError, parse_endpoint
from tarsdock.errors import InputError, Origin
from tarsdock.keys import CONTAINER_OPTIONS
from tarsdock.model import MountPlan, NodeSettings, Service

# tarsnode: CommandLoad reads these keys for the interpreter, defaulting to the bare name.
INTERPRETERS = {"tars_java": "java", "tars_nodejs": "nodejs", "tars_php": "php"}
INTERPRETER_DEFAULTS = {"tars_java": "java", "tars_nodejs": "node", "tars_php": "php"}
# managed, service, node, instance: the last says which tarsdock owns it (NodeSettings.instance)
LABELS = ("tarsdock.managed", "tarsdock.service", "tarsdock.node", "tarsdock.instance")
LOCALTIME = "/etc/localtime"
# A start pulls its image first if it is missing, for at most this long (a systemd unit's
# ExecStartPre, tarsdock-run's own pull under supervisord); `docker run` itself never pulls
# (--pull=never), so a start never waits on a registry longer than this.
PULL_TIMEOUT = 60
IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")


def _get(service: Service, key: str, default: str = "") -> str:
    value = service.config.get(f"{SERVER_PATH}<{key}>")
    return default if value is None else value


def _words(text: str) -> list[str]:
    # TC_Common::sepstr(s, " \t") without empty items.
    return text.replace("\t", " ").split()


# The keys whose text tarsnode writes into tars_start.sh's command line, per server type; the
# ones marked True must stay one word (an executable or a file, not a list of arguments).
SH_KEYS: dict[str, tuple[tuple[str, bool], ...]] = {
    "tars_java": (("java", True), ("jvmparams", False), ("classpath", False),
                  ("mainclass", False)),
    "tars_nodejs": (("nodejs", True),),
    "tars_php": (("php", True), ("entrance", True)),
}


def _sh_error(service: Service, key: str, value: str, reason: str) -> InputError:
    param = service.config.param(f"{SERVER_PATH}<{key}>")
    origin = param.origin if param is not None else service.spec.origin
    return InputError(origin, f"{value!r}: {reason}", key)


def _sh_word(service: Service, key: str, default: str) -> str:
    """A one-word key (an interpreter, a file) as sh reads it; InputError at its line."""
    value = _get(service, key, default)
    try:
        return shwords.one_word(value) or default
    except shwords.ShellNeeded as reason:
        raise _sh_error(service, key, value, str(reason)) from None


def start_problems(service: Service) -> list[InputError]:
    """Every problem of the texts sh would read to start the service, each at its line."""
    problems = []
    for key, single in SH_KEYS.get(service.spec.type, ()):
        value = _get(service, key)
        reason = shwords.problem(value, one_word=single)
        if reason == shwords.BLANK:
            # tarsnode writes it as one program or file name: the rest would be arguments,
            # and its exe check (CommandStart::canExecute) looks for a file of the whole text
            reason += (f", and {key} names one program or file; quote it if the blank is part "
                       "of the path")
        if reason:
            problems.append(_sh_error(service, key, value, reason))
    if service.spec.type == "tars_java" and not _get(service, "mainclass").strip():
        problems.append(InputError(
            service.spec.origin, "a tars_java service needs server<mainclass> (a class, or "
            "`-jar PATH` with packageFormat=jar) from its template chain or profile, or "
            "main_class for ${mainclass}: without it java starts with no class", "mainclass"))
    return problems


def executable(service: Service) -> str:
    """The binary tarsnode starts: exe_path when set, else the server binary or interpreter."""
    exe = service.spec.exe
    if exe:
        return exe if posixpath.isabs(exe) else posixpath.normpath(f"{service.bin_dir}/{exe}")
    kind = service.spec.type
    if kind in INTERPRETERS:
        return _sh_word(service, INTERPRETERS[kind], INTERPRETER_DEFAULTS[kind])
    return f"{service.bin_dir}/{service.spec.server}"


def executable_source(service: Service) -> tuple[Origin, str | None]:
    """Where executable()'s text is written, and its key: not_tars's `command`, the template or
    profile line of java, nodejs or php (the service's table when the default is used), or the
    service's table for `exe` and the server binary (paths tarsdock makes absolute)."""
    spec = service.spec
    if spec.type == "not_tars":
        return spec.origin_of("command"), "command"
    if spec.exe or spec.type not in INTERPRETERS:
        return spec.origin, "exe" if spec.exe else None
    key = INTERPRETERS[spec.type]
    param = service.config.param(f"{SERVER_PATH}<{key}>")
    return (param.origin if param is not None else spec.origin), key


def exe_dir(service: Service) -> str:
    """tarsnode's exe path (CommandLoad::execute): bin/, or the directory of exe_path."""
    if service.spec.exe and service.spec.type != "tars_java":
        return posixpath.dirname(executable(service)) + "/"
    return f"{service.bin_dir}/"


def lib_dir(service: Service) -> str:
    """tarsnode's lib path, shared by the node's services: `<data dir>/lib` (CommandLoad)."""
    return f"{service.node.data_dir}/lib"


def _java_args(service: Service, conf: str) -> list[str]:
    jvm, main = _get(service, "jvmparams"), _get(service, "mainclass")
    if _get(service, "packageFormat") == "jar":
        # main class is then `-jar <path>` (tars.springboot); no class path.
        rest = f"{jvm} {main}"
    else:
        rest = f"{jvm} -cp {_get(service, 'classpath')}/* {main}"
    # tarsnode splits at blanks, joins with one blank and writes the line for sh to read
    try:
        words = shwords.split(" ".join(_words(rest)))
    except shwords.ShellNeeded as reason:
        raise _sh_error(service, "jvmparams", rest, str(reason)) from None
    return [f"-Dconfig={conf}", *words]


def _nodejs_args(service: Service, conf: str) -> list[str]:
    bin_dir = str(service.bin_dir)
    if service.package.node_agent:
        agent = f"{bin_dir}/tars_nodejs/node-agent/bin/node-agent"
        app = posixpath.normpath(f"{bin_dir}/{service.package.entry or '.'}")
        return [agent, app, "-c", conf]
    return [posixpath.normpath(f"{bin_dir}/{service.package.entry or 'index.js'}")]


def service_command(service: Service) -> list[str]:
    """The service's argv exactly as Tars builds it (DESIGN §5)."""
    kind, conf = service.spec.type, str(service.conf_path)
    if kind == "not_tars":
        if not service.spec.command:
            raise InputError(service.spec.origin, "a not_tars service needs a command", "command")
        return list(service.spec.command)
    if kind == "tars_java":
        args = _java_args(service, conf)
    elif kind == "tars_nodejs":
        args = _nodejs_args(service, conf)
    elif kind == "tars_php":
        entrance = _sh_word(service, "entrance", f"{service.bin_dir}/src/index.php")
        args = [entrance, f"--config={conf}"]
    else:
        args = [f"--config={conf}"]
    return [executable(service), *args]


def service_env(service: Service) -> list[tuple[str, str]]:
    """The environment: the template's server<env>, LD_LIBRARY_PATH as tarsnode sets it, and
    TARS_CONFIG for tars_nodejs."""
    env = list(service.env)
    if service.spec.type == "not_tars":
        return env   # tarsnode runs a not_tars service's own start script, adding nothing
    libraries = f"{exe_dir(service)}:{lib_dir(service)}/"
    given = [i for i, (key, _) in enumerate(env) if key == "LD_LIBRARY_PATH"]
    if given:
        # tarsnode exports the template's value, then LD_LIBRARY_PATH=$LD_LIBRARY_PATH:...
        env[given[-1]] = ("LD_LIBRARY_PATH", f"{env[given[-1]][1]}:{libraries}")
    else:
        env.append(("LD_LIBRARY_PATH", libraries))
    if service.spec.type == "tars_nodejs" and "TARS_CONFIG" not in dict(env):
        env.append(("TARS_CONFIG", str(service.conf_path)))
    return env


def _host_source(service: Service, path: str) -> str:
    """A mount source as the Docker daemon sees it: under host_path when tarsdock is contained."""
    node = service.node
    prefix = node.tars_path.rstrip("/")
    if node.host_path and (path == prefix or path.startswith(prefix + "/")):
        return node.host_path.rstrip("/") + path[len(prefix):]
    return path


Mount = tuple[str, str, str]   # source (as the Docker daemon sees it), target, options


def _mount_plan(service: Service) -> MountPlan:
    """Every bind mount, in order, and the <volumes> lines that cannot be honoured; worked out
    once per service (resolve checks them, then each format mounts them) and kept in it."""
    if service.mount_plan is None:
        service.mount_plan = _plan_mounts(service)
    return service.mount_plan


def _plan_mounts(service: Service) -> MountPlan:
    entries = [(service.service_dir, service.service_dir, ""),
               (service.log_dir, service.log_dir, "")]
    if service.spec.type != "not_tars":
        lib = lib_dir(service)
        entries.append((lib, lib, "ro"))   # LD_LIBRARY_PATH points at it
    entries.append((LOCALTIME, LOCALTIME, "ro"))
    # target -> (source, the <volumes> line that mounts it; None: one of tarsdock's own)
    owner: dict[str, tuple[str, Origin | None]] = {target: (source, None)
                                                   for source, target, _ in entries}
    problems = []
    for volume in service.container.volumes:
        known = owner.get(volume.container)
        if known is not None and known[0] == volume.host:
            # the same mount written twice (/etc/localtime=/etc/localtime): one is enough, with
            # the line's :ro or :rw if it gives one (tarsnode hands the line to Docker's binds)
            if volume.mode:
                at = next(i for i, entry in enumerate(entries) if entry[1] == volume.container)
                entries[at] = (entries[at][0], volume.container, volume.mode)
            continue
        if known is not None:
            mounted = "a tarsdock mount" if known[1] is None else \
                f"the target of the line at {known[1]}"
            problems.append(InputError(
                volume.origin, f"container path '{volume.container}' is already {mounted} "
                f"from '{known[0]}'; two sources cannot share one target", volume.host))
            continue
        owner[volume.container] = (volume.host, volume.origin)
        entries.append((volume.host, volume.container, volume.mode))
    result = [(_host_source(service, source), target, opts) for source, target, opts in entries] \
        if service.node.host_path else entries
    for host, target, _ in result:
        if ":" in host or ":" in target or "," in host:
            problems.append(InputError(service.node.origin, f"mount '{host}:{target}' has ':' "
                                       "or ',', which docker -v cannot express", "host_path"))
    return tuple(result), tuple(problems)


def mount_problems(service: Service) -> list[InputError]:
    """The <volumes> lines of a service that cannot be mounted, each at its line."""
    return list(_mount_plan(service)[1])


def mounts(service: Service) -> list[Mount]:
    """(source, target, options) for every bind mount, in order; raises the first problem."""
    result, problems = _mount_plan(service)
    if problems:
        raise problems[0]
    return list(result)


def _option_args(service: Service) -> Iterator[str]:
    for key, value in service.container.options:
        flag, kind = CONTAINER_OPTIONS[key]
        if kind == "bool":
            if value == "true":
                yield flag
        elif kind == "words":
            for word in value.split():
                yield from (flag, word)
        else:
            yield from (flag, value)


def _endpoint_port(text: str) -> tuple[str, int, str]:
    endpoint = parse_endpoint(text)
    return endpoint.host, endpoint.port, "udp" if endpoint.transport == "udp" else "tcp"


Published = tuple[str, int, Origin, str]   # host ip, host port, where it is said, key


def _host_clashes(ports: dict[tuple[int, str], Published]) -> list[InputError]:
    """Two published ports on one host address and port: Docker creates the container, then
    fails to start it ("port is already allocated", or "address already in use" beside a
    0.0.0.0 binding)."""
    problems: list[InputError] = []
    seen: dict[tuple[int, str], list[tuple[str, Origin]]] = {}
    for (_, proto), (ip, host_port, origin, key) in ports.items():
        earlier = seen.setdefault((host_port, proto), [])
        other = next((o for i, o in earlier if "0.0.0.0" in (i, ip) or i == ip), None)
        if other is not None:
            problems.append(InputError(origin, f"publishes {ip}:{host_port}/{proto}, already "
                                       f"published by the line at {other}", key))
        earlier.append((ip, origin))
    return problems


def _published(service: Service) -> tuple[list[str], list[InputError]]:
    """`-p HOST:PORT:PORT/PROTO` for every adapter endpoint (on the endpoint's host) and the
    admin `local` endpoint (on 127.0.0.1), template <ports> lines overriding the same container
    port; as tarsnode's bridge build adds one port per adapter plus local
    (CommandLoad::updateConfigFile, `addPort`)."""
    ports: dict[tuple[int, str], Published] = {}
    problems: list[InputError] = []
    for adapter in service.spec.adapters:
        host, port, proto = _endpoint_port(adapter.endpoint)
        host = "0.0.0.0" if host == "*" else host
        if not IPV4.fullmatch(host):
            problems.append(InputError(adapter.origin, f"with network = \"bridge\" the endpoint "
                                       f"is published on its host, and '{host}' is not an IPv4 "
                                       "address", "endpoint"))
        ports[(port, proto)] = (host, port, adapter.origin, "endpoint")
    local = service.config.param(f"{SERVER_PATH}<local>")
    if local is not None and local.value.strip():
        try:
            _, port, proto = _endpoint_port(local.value)
        except EndpointError as error:
            problems.append(InputError(local.origin, f"{local.value!r}: {error}", "local"))
        else:
            ports[(port, proto)] = ("127.0.0.1", port, local.origin, "local")
    for mapping in service.container.ports:
        ports[(mapping.port, mapping.proto)] = (mapping.host_ip, mapping.host_port,
                                                mapping.origin, f"{mapping.port}/{mapping.proto}")
    published = [f"{ip}:{host_port}:{port}/{proto}"
                 for (port, proto), (ip, host_port, _, _) in ports.items()]
    return published, problems + _host_clashes(ports)


def port_problems(service: Service) -> list[InputError]:
    """What keeps a bridge-networked container's endpoints from being published."""
    if service.node.network != "bridge":
        return []
    return _published(service)[1]


def _network_args(service: Service) -> list[str]:
    if service.node.network == "host":
        return ["--net=host", "--ipc=host"]
    published, problems = _published(service)
    if problems:
        raise problems[0]
    return ["--ipc=host", *(arg for port in published for arg in ("-p", port))]


def docker_run_argv(service: Service, docker: str = "docker") -> list[str]:
    """`docker run` for a container service: foreground, removed on exit, never pulling."""
    if service.spec.image is None:
        raise InputError(service.spec.origin, "run = container needs an image", "image")
    name, node = service.name, service.node
    managed, named, on_node, instance = LABELS
    argv = [docker, "run", "--rm", "--init", "--name", name,
            "--label", f"{managed}=true", "--label", f"{named}={name}",
            "--label", f"{on_node}={node.name}", "--label", f"{instance}={node.instance}",
            *_network_args(service),
            "--stop-timeout", str(service.stop_timeout), "--pull=never"]
    if service.container.options:
        argv += _option_args(service)
    for source, target, opts in mounts(service):
        argv += ("-v", f"{source}:{target}:{opts}" if opts else f"{source}:{target}")
    for key, value in service_env(service):
        argv += ("--env", f"{key}={value}")
    argv += ("--workdir", service.bin_dir, service.spec.image.ref)
    argv += service_command(service)
    return argv


def speaks_admin(service: Service) -> bool:
    """A Tars service with an admin endpoint: it can be asked to shut down (AdminF.shutdown)."""
    return service.spec.type != "not_tars" and bool(service.spec.local_port)


def wrapper_settings(service: Service, docker: str, signals: str,
                     tarsdock: str) -> list[tuple[str, str]]:
    """What tarsdock-run needs besides the argv to run a container service, in file order.

    `signals` says who delivers HUP, USR1, ...: "forward" (the wrapper, with `docker kill`:
    supervisord signals only it) or "cgroup" (the docker client's own proxy: systemd signals
    every process of the unit). `memory` names the limit in an OOM kill's reason. `admin` and
    `tarsdock` (the CLI) make a stop ask the service to leave through AdminF.shutdown first.
    """
    node = service.node
    settings = [("mode", "container"), ("timeout", str(service.stop_timeout)),
                ("docker", docker), ("instance", node.instance), ("state", str(node.state_dir))]
    if service.spec.image is not None:
        settings.append(("image", service.spec.image.ref))
    memory = dict(service.container.options).get("memory") if service.container.options else None
    if memory:
        settings.append(("memory", memory))
    if speaks_admin(service):
        # graceful stop as tarsnode's CommandStop: AdminF.shutdown on the admin port first
        settings += [("admin", str(service.spec.local_port)), ("tarsdock", tarsdock)]
    settings.append(("signals", signals))
    return settings


def node_server_command(node: NodeSettings, scripts_dir: str, config_dir: str) -> list[str]:
    """`tarsdock node-server` as supervisord and systemd run it, with the [node] values it serves
    with: a change of one changes the program section or unit, and so restarts the node server
    (it reads node.toml once, at start)."""
    return [f"{scripts_dir}/tarsdock", "--config-dir", config_dir, "node-server",
            "--node-port", str(node.node_port), "--heartbeat-timeout", str(node.heartbeat_timeout)]
