"""Resolve the manifest and templates into services with their final Tars config."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Final

from tarsdock import tcconfig
from tarsdock.adapterdomains import check_domain, servant_prefix
from tarsdock.argv import executable, mount_problems, port_problems, start_problems
from tarsdock.bulk import gc_paused
from tarsdock.containerspec import (
    check_heartbeat_times,
    read_container,
    read_env,
    read_stop_timeout,
)
from tarsdock.endpoint import Endpoint, EndpointError, parse_bind
from tarsdock.errors import ErrorCollector, InputError, InputErrors, InputWarning, Origin
from tarsdock.listeners import Listening, bind_problem, check_listeners, check_listening
from tarsdock.manifest import load_manifest, read_manifest
from tarsdock.model import Manifest, NodeSettings, Service, ServiceSpec
from tarsdock.records import Record
from tarsdock.tcconfig import Config, Param
from tarsdock.templates import (
    BrokenTemplate,
    Template,
    TemplateSet,
    load_templates,
    read_text,
    template_files,
)

# In name order, as tarsnode writes them: CommandLoad::updateConfigFile passes a std::map to
# TC_Config::insertDomainParam, and TC_ConfigDomain::insertParamValue adds keys in map order.
ADAPTER_KEYS = ("allow", "endpoint", "maxconns", "protocol", "queuecap", "queuetimeout",
                "servant", "threads")
# the names macros() gives values to, for tcconfig.Filler (a test checks they are the same)
MACRO_NAMES = frozenset(("locator", "modulename", "serverid", "app", "server", "nodename",
                         "localip", "exe", "basepath", "datapath", "logpath", "local", "mainclass",
                         "setdivision", "enableset", "asyncthread", "baseimage"))


class ResolvedNode(Record):
    """Everything a config dir says: the manifest and its services, sorted by name."""

    __slots__ = _fields = ("manifest", "services", "templates")
    manifest: Final[Manifest]
    services: Final[tuple[Service, ...]]
    templates: Final[TemplateSet]

    def __init__(self, manifest: Manifest, services: tuple[Service, ...],
                 templates: TemplateSet) -> None:
        self.manifest = manifest
        self.services = services
        self.templates = templates


def macros(spec: ServiceSpec, node: NodeSettings) -> dict[str, str]:
    """The ${name} macros tarsnode substitutes in a service's templates."""
    service_dir = f"{node.data_dir}/{spec.name}"
    return {
        "locator": node.locator,
        "modulename": spec.name,
        "serverid": spec.name,
        "app": spec.app,
        "server": spec.server,
        "nodename": node.name,
        "localip": node.localip,
        "exe": spec.exe,
        "basepath": f"{service_dir}/bin/",
        "datapath": f"{service_dir}/data/",
        "logpath": node.log_dir,
        "local": admin_endpoint(spec, node),
        "mainclass": spec.main_class,
        # tarsnode CommandLoad::updateConfigFile: "NULL" and "n" without a set, lower-case "y"
        "setdivision": spec.set_division or "NULL",
        "enableset": "y" if spec.set_division else "n",
        "asyncthread": str(spec.async_thread),
        "baseimage": spec.image.ref if spec.image else "",
    }


def admin_endpoint(spec: ServiceSpec, node: NodeSettings) -> str:
    """${local}: the admin endpoint on the service's local port, "" without one."""
    # tarsnode CommandLoad::updateConfigFile: host 0.0.0.0 in a container of its own network
    return (_endpoint(spec, node, f"tcp -h 127.0.0.1 -p {spec.local_port} -t 10000")
            if spec.local_port else "")


def _endpoint(spec: ServiceSpec, node: NodeSettings, endpoint: str) -> str:
    # With bridge networking the container has its own address: tarsnode binds 0.0.0.0 then.
    if node.network == "bridge" and spec.run == "container":
        words = endpoint.split()
        if "-h" in words[:-1]:
            words[words.index("-h") + 1] = "0.0.0.0"
        return " ".join(words)
    return endpoint


def adapter_config(spec: ServiceSpec, node: NodeSettings,
                   values: Mapping[str, str] | None = None) -> Config:
    """What tarsnode puts under <tars><application><server>: `node`, then a domain per adapter,
    with the macros of `values` (every name of macros()) replaced when given."""
    server = Config("server", spec.origin)
    if spec.type != "not_tars":
        # CommandLoad::updateConfigFile: the runtime sends keepAlive/reportVersion there
        server.params["node"] = Param(node.node_object, node.origin)
    for adapter in spec.adapters:
        name = f"{spec.name}.{adapter.name}"
        # only allow can hold a macro: the manifest's checks let no '$' into the other values
        allow = adapter.allow if values is None else tcconfig.fill(adapter.allow, values,
                                                                   MACRO_NAMES)
        texts = (allow, _endpoint(spec, node, adapter.endpoint), str(adapter.maxconns),
                 adapter.protocol, str(adapter.queuecap), str(adapter.queuetimeout),
                 adapter.servant, str(adapter.threads))
        origin = adapter.origin
        server.domains[name] = Config(name, origin, {
            key: Param(text, origin) for key, text in zip(ADAPTER_KEYS, texts, strict=True)})
    application = Config("application", spec.origin, domains={"server": server})
    tars = Config("tars", spec.origin, domains={"application": application})
    return Config("", spec.origin, domains={"tars": tars})


def final_config(spec: ServiceSpec, node: NodeSettings, templates: TemplateSet) -> Config:
    """profile over (template chain over adapters), with macros substituted.

    The chain's tree is shared by every service of the chain (see tcconfig.join): only the
    domains that hold a macro or that the adapters or the profile reach are this service's own.
    """
    values = macros(spec, node)
    # a template that does not exist: at the `template` key naming it
    chain = templates.filler(spec.template, spec.origin_of("template"), MACRO_NAMES, "template")
    config = chain.fill(values, under=adapter_config(spec, node, values))
    if spec.profile.strip():
        origin = spec.profile_origin
        profile = tcconfig.parse(spec.profile, origin.path, origin.line or 1)
        config = tcconfig.join(config, tcconfig.Filler(profile, MACRO_NAMES).fill(values))
    # adapter_config made the server domain, so fill() and join() made it anew or kept it: it
    # is our own
    server = config.domains["tars"].domains["application"].domains["server"]
    local = server.params.get("local")
    if local is not None and local.value.strip():
        # published on the host's 127.0.0.1, so it must listen on the container's own address
        # (assigned in place: set() would move the key to the end)
        server.params["local"] = Param(_endpoint(spec, node, local.value), local.origin)
    return config


def resolve_service(spec: ServiceSpec, node: NodeSettings, templates: TemplateSet) -> Service:
    """One service, fully resolved; raises InputErrors with every problem found in it."""
    config = final_config(spec, node, templates)
    errors = ErrorCollector()
    container = read_container(config, errors)
    env = read_env(config, errors)
    stop_timeout = read_stop_timeout(config, errors)
    check_heartbeat_times(config, errors)
    service = Service(spec=spec, node=node, config=config, env=env, container=container,
                      stop_timeout=stop_timeout)
    for problem in [*start_problems(service), *mount_problems(service), *port_problems(service)]:
        errors.extend(problem)
    errors.raise_if_any()
    return service


@gc_paused()
def load_node(config_dir: Path, lines: bool = False) -> ResolvedNode:
    """Read and resolve a whole config dir; every error of the run is raised together.

    Locating every TOML key costs a third of a large node's load and only errors show lines, so
    by default the first pass skips it and only a failing load is read again with lines. Callers
    that find input errors of their own in the result (render) must load again with lines=True.
    """
    try:
        return _load_node(config_dir, lines)
    except (InputError, InputErrors):
        if lines:
            raise
        return _load_node(config_dir, lines=True)


class Inputs(Record):
    """A config dir read, before any service is resolved: what every shard of a node needs."""

    __slots__ = _fields = ("manifest", "templates", "specs")
    manifest: Final[Manifest]
    templates: Final[TemplateSet]
    specs: Final[dict[str, ServiceSpec]]   # by name, each with its admin port

    def __init__(self, manifest: Manifest, templates: TemplateSet,
                 specs: dict[str, ServiceSpec]) -> None:
        self.manifest = manifest
        self.templates = templates
        self.specs = specs


def read_inputs(config_dir: Path, lines: bool, errors: ErrorCollector,
                lazy: bool = False) -> Inputs:
    """Templates, manifest and specs; problems go to `errors`, raised at once only when node.toml's
    own tables are wrong (nothing more can be said then).

    With `lazy` the templates are only listed: each is parsed where a chain or check_templates
    first needs it (a lazy TemplateSet), so a broken one is found there, not in `errors`.
    """
    templates: dict[str, Template] = {}
    broken: dict[str, Origin] = {}
    if lazy:
        unread = template_files(config_dir)
    else:
        (templates, broken), unread = load_templates(config_dir, errors), []
    manifest, manifest_errors = read_manifest(config_dir, lines)
    for problem in manifest_errors:
        errors.extend(problem)
    if manifest is None:
        raise InputErrors(errors.errors)
    template_set = TemplateSet(templates, manifest.template_parents, broken, unread)
    return Inputs(manifest, template_set, _local_ports(manifest, errors))


def ports_clash(inputs: Inputs, reserved: frozenset[int]) -> bool:
    """Whether an admin port given out by tarsdock is taken by an endpoint only a resolved config
    names (`reserved`, from ports_in_use)."""
    return any(spec.local_port in reserved for spec in given_out(inputs))


def given_out(inputs: Inputs) -> Iterator[ServiceSpec]:
    """The specs whose admin port tarsdock gave out (the manifest pins none): only those can
    clash (ports_clash); a node that pins every one need not look for the ports in use."""
    return (spec for name, spec in inputs.specs.items()
            if spec.local_port and not inputs.manifest.services[name].local_port)


def _load_node(config_dir: Path, lines: bool) -> ResolvedNode:
    errors = ErrorCollector()
    node = resolve_node(config_dir, lines, errors)
    errors.raise_if_any()
    return node


def resolve_node(config_dir: Path, lines: bool, errors: ErrorCollector) -> ResolvedNode:
    """The config dir read and resolved, with the services that resolve; every problem goes to
    `errors` (raised at once only when node.toml's own tables are wrong, see read_inputs), so a
    caller can add the errors it finds in those services (rendering) to the same report."""
    inputs = read_inputs(config_dir, lines, errors)
    manifest, template_set = inputs.manifest, inputs.templates
    services, problems = resolve_all(inputs.specs, manifest.node, template_set)
    reserved = ports_in_use(services, manifest, template_set)
    if ports_clash(inputs, reserved):
        # allocate again around those ports (rare: only then is the node resolved twice)
        specs = _local_ports(manifest, errors, reserved)
        services, problems = resolve_all(specs, manifest.node, template_set)
    for found in problems:
        errors.extend(found)
    listening = node_listeners(services, template_set)
    check_manifest_listeners(manifest, listening.replaced, errors)
    check_listening(listening, errors, manifest.listeners)
    check_templates(template_set, errors)
    return ResolvedNode(manifest, tuple(services), template_set)


def check_manifest_listeners(manifest: Manifest, replaced: set[str],
                             errors: ErrorCollector) -> None:
    """The manifest's listeners that clash (manifest.clashing), but for those whose endpoint
    the final configs do not have (`replaced`, Listening.replaced): errors in `errors`."""
    if manifest.clashing:
        check_listeners([listener for listener in manifest.listeners
                         if listener[2] not in replaced], errors)


def resolve_all(specs: dict[str, ServiceSpec], node: NodeSettings, templates: TemplateSet
                ) -> tuple[list[Service], list[InputError | InputErrors]]:
    """The services of `specs` in name order, and the problems of those that failed (a service
    of a broken template is left out: the template's own errors are reported)."""
    services: list[Service] = []
    problems: list[InputError | InputErrors] = []
    for name in sorted(specs):
        try:
            services.append(resolve_service(specs[name], node, templates))
        except BrokenTemplate:
            pass   # a follow-on: the template's own errors are reported at their lines
        except (InputError, InputErrors) as problem:
            problems.append(problem)
    return services, problems


def ports_in_use(services: list[Service], manifest: Manifest,
                 templates: TemplateSet | None = None) -> frozenset[int]:
    """TCP ports the node's services take that the manifest's tables do not show: endpoints of
    adapters a template or profile declares (a <server> sub-domain with `endpoint`), an admin
    endpoint a template or profile writes itself (not ${local}) and, with bridge networking,
    the host ports of <ports> lines (Docker publishes them on the host). With `templates` (those
    the services were resolved with), a service whose template chain and profile write no
    endpoint is not looked into (as in node_listeners): its endpoints are the manifest's."""
    ports: set[int] = set()
    chains: dict[str, bool] = {}
    for service in services:
        if manifest.node.network == "bridge":
            ports |= {m.host_port for m in service.container.ports if m.proto == "tcp"}
        if templates is not None and not _may_listen(service.spec, templates, chains):
            continue   # 5 us a service to parse the endpoints again as TarsCpp does
        server = _server(service.config)
        for domain in server.domains.values():
            param = domain.params.get("endpoint")
            endpoint = _bound(param.value) if param else None
            if endpoint is not None and endpoint.transport != "udp":
                ports.add(endpoint.port)
        local = _own_local(service, server)
        endpoint = _bound(local.value) if local is not None else None
        if endpoint is not None:
            ports.add(endpoint.port)
    return frozenset(ports)


def _server(config: Config) -> Config:
    """The <tars><application><server> domain of a final config (an empty one if none)."""
    server = config
    for part in ("tars", "application", "server"):
        server = server.domains.get(part) or Config(part, server.origin)
    return server


def _bound(text: str) -> Endpoint | None:
    """The port endpoint a TarsCpp server binds for `text`; None for a unix-domain socket or
    what it cannot bind (final_listeners reports that)."""
    try:
        endpoint = parse_bind(text)
    except EndpointError:
        return None
    return endpoint if endpoint.port and bind_problem(endpoint) is None else None


def _own_local(service: Service, server: Config) -> Param | None:
    """The service's admin endpoint when a template or profile writes one other than ${local}
    (the one tarsdock gives: pinned, a listener of the manifest, or given out clear of every
    other endpoint); None for ${local} or an empty one (Application::initializeServer makes no
    admin adapter then)."""
    local = server.params.get("local")
    if local is None or not local.value.strip() or local.value == admin_endpoint(
            service.spec, service.node):
        return None
    return local


def final_listeners(service: Service, found: Listening) -> None:
    """Add to `found` the endpoints a service's final config listens on that the manifest's
    tables do not show (tarsdock.listeners checks them against the manifest's): the adapters a
    template or profile declares or rewrites (Application::bindAdapter binds each <server>
    sub-domain with an `endpoint`), and an admin endpoint other than ${local} (_own_local);
    with the manifest listeners they replace, and what TarsCpp cannot bind.

    A container on a bridge network binds its endpoints in its own network namespace: none is
    a listener of the node (what reaches the host is published from the manifest's and its
    `local`, which argv._published checks), but an adapter endpoint TarsCpp cannot bind still
    stops it. Nothing for a not_tars program, which need not read its Tars config (the manifest
    says what it listens on). The rules are TarsCpp's: another runtime's endpoint that they
    cannot read is a warning, not an error (_unreadable). Each domain is an adapter that
    TarsCpp may not start with (tarsdock.adapterdomains).
    """
    spec = service.spec
    if spec.type == "not_tars":
        return
    bridged = service.node.network == "bridge" and spec.run == "container"
    server = _server(service.config)
    # the manifest's endpoints as adapter_config wrote them (bridged: on 0.0.0.0)
    declared = {f"{spec.name}.{adapter.name}": _endpoint(spec, service.node, adapter.endpoint)
                for adapter in spec.adapters}
    prefix = servant_prefix(server, PurePosixPath(executable(service)).name) \
        if spec.type == "tars_cpp" and server.domains else ""
    for name, domain in server.domains.items():
        check_domain(domain, prefix, spec.type, found)
        param = domain.params.get("endpoint")
        if param is None or declared.get(name) == param.value:
            continue   # the manifest's endpoint: a listener of the manifest
        # the manifest's label for a domain of its own, whose endpoint this one replaces
        label = f"{spec.name} adapter {name.removeprefix(f'{spec.name}.')}"
        if name in declared and not bridged:
            found.replaced.add(label)
        _listen(param, label, "endpoint", found, spec.type, listens=not bridged)
    local = _own_local(service, server)
    if local is not None and not bridged:
        found.replaced.add(f"{spec.name} admin")   # a pinned local_port is not listened on
        _listen(local, f"{spec.name} admin", "local", found, spec.type)


def _listen(param: Param, label: str, key: str, found: Listening, runtime: str,
            listens: bool = True) -> None:
    """The endpoint of `param` as TarsCpp binds it: a listener of the node (unless not
    `listens`), an error or warning (_unreadable), or a warning."""
    try:
        endpoint = parse_bind(param.value)
    except EndpointError as error:
        _unreadable(param, str(error), key, found, runtime)
        return
    problem = bind_problem(endpoint) or _read_otherwise(param, endpoint, runtime)
    if problem is not None:
        _unreadable(param, problem, key, found, runtime)
    elif endpoint.port:
        if listens:
            found.listeners.append((endpoint, param.origin, label, key))
    elif not endpoint.host.startswith("/"):
        found.notes.append(InputWarning(param.origin, (
            f"'{param.value}' has no -p (or -p 0): TarsCpp binds a unix-domain socket at the "
            f"path '{endpoint.host}' (TC_Endpoint::isUnixLocal), no TCP or UDP port"), key))


def _read_otherwise(param: Param, endpoint: Endpoint, runtime: str) -> str | None:
    """What a runtime other than TarsCpp reads its own way, or None: no -h (TarsJava's
    parseString then gives no endpoint; TarsCpp binds every address) and port 0 (TarsCpp: a
    unix-domain socket).

    A Java, Go, Node.js or PHP service reads its endpoints with a parser of its own (TarsJava's
    Endpoint.parseString, TarsCloud/TarsJava
    core/src/main/java/com/qq/tars/common/support/Endpoint.java, takes `TCP` in any case, skips
    a stray word, and makes no endpoint without -h)."""
    if runtime == "tars_cpp":
        return None
    if "-h" not in param.value.split():
        return "no -h"
    return None if endpoint.port else "no port"


def _unreadable(param: Param, problem: str, key: str, found: Listening, runtime: str) -> None:
    """An endpoint TarsCpp's rules cannot read: for tars_cpp an error, as TC_Endpoint::parse's
    throw stops the service (Application::main exits); for another runtime a warning."""
    if runtime == "tars_cpp":
        # not the listener's label: a template's bad endpoint is one error, however many
        # services use the template (InputErrors keeps one of equal errors)
        found.errors.append(InputError(param.origin, f"TarsCpp cannot bind endpoint "
                                       f"'{param.value}': {problem}", key))
        return
    found.notes.append(InputWarning(param.origin, (
        f"endpoint '{param.value}' of a {runtime} service is not checked for port clashes: "
        f"tarsdock reads endpoints as TarsCpp does ({problem}), and {runtime}'s runtime reads "
        "them its own way"), key))


def node_listeners(services: Iterable[Service], templates: TemplateSet | None = None
                   ) -> Listening:
    """final_listeners of every service, in order. With `templates` (those the services were
    resolved with), a service whose template chain and profile write no endpoint is not looked
    into: nearly every service, whose final config, long out of the CPU's caches by then, took
    5 ms a 1,000-service node to walk."""
    chains: dict[str, bool] = {}
    found = Listening()
    for service in services:
        if templates is None or _may_listen(service.spec, templates, chains):
            final_listeners(service, found)
    return found


def _may_listen(spec: ServiceSpec, templates: TemplateSet, chains: dict[str, bool]) -> bool:
    """Whether the service's profile or template chain may write what final_listeners looks
    at: a domain under <server> (an adapter, with an endpoint or not) or a `local`; `chains`
    keeps the answer of each chain."""
    # both are in <server>: a profile without the word writes neither (macros fill values
    # only, and a value cannot hold a line break)
    if "server" in spec.profile:
        return True
    found = chains.get(spec.template)
    if found is None:
        chain = templates.filler(spec.template, spec.origin, MACRO_NAMES).config
        found = chains[spec.template] = _declares_adapters(_server(chain))
    return found


# what a chain's <server> writes as tars.default does; another value is looked into: `local`
# binds another endpoint, `app` and `server` make the prefix every servant of the service,
# the manifest's adapters' too, must start with (adapterdomains.servant_prefix)
AS_TARSNODE_WRITES = {"local": "${local}", "app": "${app}", "server": "${server}"}


def _declares_adapters(server: Config) -> bool:
    """Whether a template chain's <server> (macros not filled) has a domain (TarsCpp's adapter)
    or a `local`, `app` or `server` other than tars.default's (AS_TARSNODE_WRITES)."""
    params = server.params
    return bool(server.domains) or any(
        key in params and params[key].value != value for key, value in AS_TARSNODE_WRITES.items())


def with_local_ports(manifest: Manifest, reserved: frozenset[int] = frozenset()
                     ) -> dict[str, ServiceSpec]:
    """The manifest's services, each Tars one with its admin port (see tarsdock.localports),
    none given out of `reserved` unless pinned.

    Reads the existing config files and probes 127.0.0.1 for ports not yet given out, so the
    same load in validate, config and generate shows the port generate writes.
    """
    from tarsdock import localports

    ports = localports.allocate(manifest, localports.read_back(manifest),
                                localports.in_use_probe(), reserved)
    return {name: _with_port(spec, ports.get(name, 0))
            for name, spec in manifest.services.items()}


def _local_ports(manifest: Manifest, errors: ErrorCollector,
                 reserved: frozenset[int] = frozenset()) -> dict[str, ServiceSpec]:
    """with_local_ports, a range with no port left to give out an error in `errors` beside the
    others of the run (the specs then as the manifest gives them: the run fails anyway)."""
    try:
        return with_local_ports(manifest, reserved)
    except InputErrors as full:
        errors.extend(full)
        return dict(manifest.services)


def _with_port(spec: ServiceSpec, port: int) -> ServiceSpec:
    """replace(spec, local_port=port), a fifth of its cost: replace() runs __init__ again (17
    frozen fields, 5 µs a service), here the checked fields are copied with one changed."""
    if spec.local_port == port:
        return spec
    copy = object.__new__(ServiceSpec)
    copy.__dict__.update(spec.__dict__, local_port=port)
    return copy


def check_templates(templates: TemplateSet, errors: ErrorCollector,
                    names: Iterable[str] | None = None) -> None:
    """Every template's chain must resolve, whether or not a service uses it yet.

    With `names` (a shard's share of templates.names()) only those, each parsed first if the
    set is lazy: a broken one's own errors are reported here then.
    """
    for name in sorted(templates.templates) if names is None else names:
        template = templates.get(name)
        if names is not None and name in templates.problems:
            errors.extend(templates.problems[name])
        if template is not None and template.origin.path.startswith("templates/"):
            try:
                templates.resolve(name, template.origin)
            except BrokenTemplate:
                pass   # its parent's own errors are reported
            except InputError as problem:
                errors.extend(problem)


def check_shares(templates: TemplateSet, shares: Sequence[Sequence[ServiceSpec]]
                 ) -> list[Sequence[str]]:
    """Every template's name once, in a share per chunk of services (check_templates' `names`
    for the shard that takes the chunk): a chunk's own templates, which its services parse
    anyway, then an even part of the rest (the parents, the unused ones)."""
    from tarsdock.shards import split

    names = templates.names()
    left = set(names)
    own = []
    for share in shares:
        found = sorted(left.intersection(spec.template for spec in share))
        left.difference_update(found)
        own.append(found)
    rest = split([name for name in names if name in left], len(shares))
    return [[*found, *more] for found, more in zip(own, rest, strict=True)]


def load_services(config_dir: Path) -> tuple[Service, ...]:
    """The config dir's services, resolved."""
    return load_node(config_dir).services


def template_set(config_dir: Path) -> TemplateSet:
    """The config dir's templates over the stock ones, with node.toml's parents when it exists."""
    errors = ErrorCollector()
    templates, broken = load_templates(config_dir, errors)
    parents: dict[str, tuple[str, Origin]] = {}
    if (config_dir / "node.toml").exists():
        try:
            parents = load_manifest(config_dir).template_parents
        except (InputError, InputErrors) as problem:
            errors.extend(problem)
    errors.raise_if_any()
    return TemplateSet(templates, parents, broken)


def show_template(config_dir: Path, name: str, profile_path: Path | None) -> str:
    """The resolved chain of a template, a profile merged over it, without macro substitution."""
    config = template_set(config_dir).resolve(name, Origin("command line"))
    if profile_path is not None:
        shown = str(profile_path)
        config = tcconfig.merge(config, tcconfig.parse(read_text(profile_path, shown), shown))
    return tcconfig.serialize(config)


def list_templates(config_dir: Path) -> str:
    """One line per template: name, parent, and where it comes from, in aligned columns."""
    rows = [("NAME", "PARENT", "FROM"), *template_set(config_dir).listing()]
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    return "".join(f"{n:{widths[0]}}  {p:{widths[1]}}  {w}\n" for n, p, w in rows)
