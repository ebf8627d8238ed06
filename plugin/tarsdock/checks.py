"""Warnings about the input: what validate and generate both report, each at its file:line.

Errors stop a run and come from the steps that find them (manifest, templates, resolve, argv);
warnings let it go on, so they are gathered here from the resolved node, in one place, and both
commands print the same list (DESIGN §6: validate finds everything generate finds).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import TYPE_CHECKING

from tarsdock import portowner
from tarsdock.containerspec import CONTAINER_PATH, SERVER_PATH
from tarsdock.errors import (
    ErrorCollector,
    InputWarning,
    Origin,
    TarsdockError,
    did_you_mean,
    sorted_warnings,
)
from tarsdock.imageref import registry_host
from tarsdock.keys import CONTAINER_DOMAINS, CONTAINER_OPTIONS
from tarsdock.listeners import check_listeners, check_listening
from tarsdock.model import Manifest, NodeSettings, Service, ServiceSpec
from tarsdock.tcconfig import Config

if TYPE_CHECKING:
    from tarsdock.templates import TemplateSet

# Where a container key most likely belongs when it is found somewhere else.
CONTAINER_HINT = "did you mean <tars><application><container>?"


# the domain names of CONTAINER_PATH's keys, lowercase; and the domains whose parameters
# tarsnode's templates mix with the container options (where a misplaced option is looked for)
CONTAINER_NAMES = frozenset((*CONTAINER_DOMAINS, "container"))
OPTION_PATHS = frozenset(("/tars", "/tars/application", "/tars/application/server"))
OPTION_NAMES = frozenset(path.rsplit("/", 1)[1] for path in OPTION_PATHS)


def _container_keys_elsewhere(config: Config, path: str, notes: list[InputWarning]) -> None:
    """<volumes>, <ports>, <container> or a container option outside /tars/application/container.

    Appends to `notes` in document order (a domain's own name, then inside it; its parameters
    after its sub-domains); no generator per domain: 1,000 services have some 6,000 domains.
    """
    for name, sub in config.domains.items():
        # most domains are leaves of no interest (an adapter, <client>): no path made for them
        if not sub.domains and name not in OPTION_NAMES and name.lower() not in CONTAINER_NAMES:
            continue
        here = f"{path}/{name}"
        if here == CONTAINER_PATH:
            continue
        # TC_Config's domain names are case-sensitive: <Container> is not read either
        if name.lower() in CONTAINER_NAMES:
            notes.append(InputWarning(sub.origin, f"<{name}> in {path or '/'} is not read by "
                                      f"tarsdock (only {CONTAINER_PATH} is); {CONTAINER_HINT}"))
        if sub.domains or here in OPTION_PATHS:
            _container_keys_elsewhere(sub, here, notes)
    # isdisjoint runs in C: a domain with a container option is the rare case
    if path in OPTION_PATHS and not config.params.keys().isdisjoint(CONTAINER_OPTIONS):
        notes += [InputWarning(param.origin, f"a container option in {path} is not read by "
                               f"tarsdock; {CONTAINER_HINT}", key)
                  for key, param in config.params.items() if key in CONTAINER_OPTIONS]


# what a line of each list domain of <container> makes, for the warning about a lost line
LIST_LINES = {"volumes": "mount", "ports": "published port"}


def _lost_list_lines(container: Config) -> Iterator[InputWarning]:
    """A <volumes> or <ports> key given twice in one file: TC_Config keeps the later line
    (a repeated key moves to the end with its new value), so the earlier line makes nothing.
    tarsnode reads the same map; an operator who lists two mounts of one host path, or one
    container port on two host ports, meant both."""
    for name, what in LIST_LINES.items():
        domain = container.domains.get(name)
        if domain is None:
            continue
        for key, earlier in domain.replaced:
            kept = domain.params[key]
            yield InputWarning(earlier,
                               f"given again at {kept.origin} (={kept.value}): TC_Config keeps "
                               f"only the later line, as tarsnode does, so this {what} is not "
                               "made", key)


# A TarsCpp runtime sends its keepAlives every 10 s (ServantHandle::HEART_BEAT_INTERVAL, in
# seconds: ServerObject::doMonScript compares it with TNOW); a hearttimeout below two of them
# restarts a healthy service
SHORTEST_HEARTTIMEOUT_MS = 20000


def _short_hearttimeout(service: Service, server: Config | None) -> Iterator[InputWarning]:
    """A hearttimeout written for tarsnode, which compared it with seconds (README); `server` is
    the service's <server> domain."""
    param = server.params.get("hearttimeout") if server is not None else None
    if service.spec.type == "not_tars" or param is None or not param.value.isdigit():
        return
    value = int(param.value)
    if 0 < value < SHORTEST_HEARTTIMEOUT_MS:
        yield InputWarning(param.origin, f"{value} ms is shorter than two heartbeats of a Tars "
                           f"runtime (TarsCpp sends one every 10 s): {service.name} would be "
                           f"restarted while healthy; tarsnode read it as {value} s, tarsdock as "
                           "milliseconds", "hearttimeout")


# <container> and <server> are both in /tars/application: one lookup finds the two
APPLICATION_PATH, _, CONTAINER_NAME = CONTAINER_PATH.rpartition("/")
SERVER_NAME = SERVER_PATH.removeprefix(f"{APPLICATION_PATH}/")


def service_warnings(service: Service) -> list[InputWarning]:
    """What the operator should know about one service's container and heartbeat settings."""
    notes: list[InputWarning] = []
    _container_keys_elsewhere(service.config, "", notes)
    application = service.config.domain(APPLICATION_PATH)
    domains = application.domains if application is not None else {}
    container = domains.get(CONTAINER_NAME)
    if container is not None:
        notes += _lost_list_lines(container)
    notes += _short_hearttimeout(service, domains.get(SERVER_NAME))
    privileged = container.params.get("privileged") if container is not None else None
    if service.spec.run == "container" and service.container.privileged and privileged:
        notes.append(InputWarning(privileged.origin, "privileged=true: the container of "
                                  f"{service.name} runs with --privileged", "privileged"))
    if service.container.ports and service.node.network == "host":
        first = service.container.ports[0]
        notes.append(InputWarning(first.origin, f"<ports> ignored for {service.name} with "
                                  "network = \"host\" (every port is the host's already)"))
    return notes


def registry_warnings(manifest: Manifest, specs: Iterable[ServiceSpec]) -> list[InputWarning]:
    """A registry no image uses; an image whose registry host has credentials nowhere (one that is
    pulled: not one with pull = "never")."""
    notes: list[InputWarning] = []
    images = {s.image.ref: s.image for s in specs if s.image is not None}
    images |= {image.ref: image for image in manifest.images.values()}
    used = {image.registry.id for image in images.values() if image.registry is not None}
    for rid, registry in sorted(manifest.registries.items()):
        if rid not in used:
            hosts = sorted({registry_host(ref) for ref in images})
            notes.append(InputWarning(registry.origin, f"no image is pulled from {registry.url} "
                                      f"(image hosts: {', '.join(hosts) or 'none'}), so these "
                                      "credentials are never used", "url"))
    with_credentials = {r.url for r in manifest.registries.values() if r.username}
    if manifest.registries:
        for ref, image in sorted(images.items()):
            host = registry_host(ref)
            # pull = "never" only uses a local image: nothing is pulled, anonymously or not
            if image.registry is None and host not in with_credentials and image.pull != "never":
                hint = did_you_mean(host, with_credentials)
                notes.append(InputWarning(image.origin, f"{ref}: no [registries] table has "
                                          f"url = \"{host}\", so it is pulled anonymously{hint}",
                                          "image" if not image.id else "ref"))
    return notes


def input_warnings(manifest: Manifest, services: Iterable[Service],
                   templates: TemplateSet | None = None) -> list[InputWarning]:
    """Every warning about the config dir, sorted by file and line, each once; `templates`,
    those the services were resolved with, spares a look into most services' final configs
    (resolve.node_listeners)."""
    from tarsdock.resolve import node_listeners

    services = list(services)
    notes = [note for service in services for note in service_warnings(service)]
    # the errors were raised as the node was resolved (resolve._load_node): the warnings here
    listening = node_listeners(services, templates)
    notes += check_listening(listening, ErrorCollector(), manifest.listeners)
    return node_warnings(manifest, [service.spec for service in services], notes,
                         listening.replaced)


def node_warnings(manifest: Manifest, specs: Iterable[ServiceSpec],
                  notes: Iterable[InputWarning], replaced: Collection[str] = ()
                  ) -> list[InputWarning]:
    """input_warnings from the services' own warnings (`notes`, found where the services were
    resolved: in another process for a large node) and the manifest's, but for those about a
    listener the final configs do not have (`replaced`, Listening.replaced)."""
    unread = [InputWarning(Origin(path), "not read: only services.d/*.toml files declare "
                           "services, so what this one declares is not on the node (rename it "
                           "to .toml, or start its name with '.' to keep it unread without this "
                           "warning)") for path in manifest.unread_files]
    return sorted_warnings([*notes, *manifest_notes(manifest, replaced),
                            *registry_warnings(manifest, specs), *unread])


def manifest_notes(manifest: Manifest, replaced: Collection[str]) -> Iterable[InputWarning]:
    """The manifest's warnings of listeners that may clash (Manifest.notes), found again
    without the listeners a template or profile moved (`replaced`): a pair with one of those
    binds no longer as the manifest says, as check_manifest_listeners does for the errors."""
    if not replaced or not manifest.notes:
        return manifest.notes   # nearly every node: nothing to find again
    kept = [listener for listener in manifest.listeners if listener[2] not in replaced]
    return check_listeners(kept, ErrorCollector())


# (socket, node name, instance) -> {other instance: container names}; engine.other_instances
InstanceLookup = Callable[[str, str, str], dict[str, list[str]]]
NAMES_SHOWN = 5


def instance_warnings(node: NodeSettings, lookup: InstanceLookup) -> list[str]:
    """Containers the engine runs for this node name but another tarsdock instance (DESIGN §11).

    Not an input warning (no file:line): a fact about the engine, asked through `lookup`; an
    engine that does not answer gives none.
    """
    try:
        others = lookup(node.docker_socket, node.name, node.instance)
    except TarsdockError:
        return []
    notes = []
    for owner, names in others.items():
        shown = ", ".join(names[:NAMES_SHOWN]) + (", ..." if len(names) > NAMES_SHOWN else "")
        notes.append(f"the engine at {node.docker_socket} runs {len(names)} container(s) of node "
                     f"{node.name} for another tarsdock instance '{owner or 'none'}' ({shown}); "
                     f"this instance is '{node.instance}': it leaves them alone, and a service "
                     "whose name one of them holds will not start (name-owned)")
    return notes


# an image reference -> whether the engine has it; raises TarsdockError when it does not answer
ImageLookup = Callable[[str], bool]


def image_origin(spec: ServiceSpec) -> Origin:
    """Where a service's image is given: its [images.ID] table, or its own `image` key."""
    image = spec.image
    return image.origin if image is not None and image.id else spec.origin_of("image")


def image_key_path(spec: ServiceSpec) -> tuple[str, ...]:
    """The TOML path image_origin points at."""
    image = spec.image
    return ("images", image.id) if image is not None and image.id else \
        ("services", spec.name, "image")


def missing_image_warnings(specs: Iterable[ServiceSpec], present: ImageLookup,
                           where: Callable[[ServiceSpec], Origin] = image_origin) -> list[str]:
    """Images with pull = "never" that the engine does not have, for the enabled container
    services using them: each start of those fails with image-missing until someone loads the
    image (README, supervision), and nothing in tarsdock will pull it. A typo in such a ref
    validated fine before. At the line `where` gives for the first service using the image (its
    [images.ID] table, or its own `image` key); none when the engine does not answer."""
    users: dict[str, list[ServiceSpec]] = {}
    for spec in specs:
        image = spec.image
        if spec.run == "container" and spec.enabled and image is not None \
                and image.pull == "never":
            users.setdefault(image.ref, []).append(spec)
    notes = []
    for ref, using in sorted(users.items()):
        try:
            if present(ref):
                continue
        except TarsdockError:
            return []
        origin = where(using[0])
        names = [spec.name for spec in using]
        shown = ", ".join(names[:NAMES_SHOWN]) + (", ..." if len(names) > NAMES_SHOWN else "")
        notes.append(f"{origin}: image '{ref}' is not in the engine and its pull is \"never\": "
                     f"{len(names)} service(s) ({shown}) will not start (image-missing) until it "
                     "is loaded (`docker load`, `docker pull`) or pull allows tarsdock to pull it")
    return notes


# port -> the processes holding a listener that blocks 127.0.0.1:port; portowner.port_holders
HolderLookup = Callable[[int], list[portowner.Holder]]


def node_port_warnings(node: NodeSettings, lookup: HolderLookup) -> list[str]:
    """Another process holds this node's node_port: its node server cannot listen.

    Two config dirs on one host with the same node_port (the default, 19386, in both) meet only
    when the second node server starts and fails; this says it before. Not an input warning: a
    fact about the host, asked through `lookup`. Holders that are this node's own are left out:
    its node server (by the config dir in its argv) and, under systemd, PID 1 (its socket unit
    holds the port; another node's cannot be told from it). Holders /proc does not show (not
    root) give none.
    """
    port = node.node_port
    others = [holder for holder in lookup(port)
              if portowner.node_server_config_dir(holder) not in (node.config_dir, "")
              and not (holder.pid == 1 and node.supervisor == "systemd")]
    if not others:
        return []
    return [f"[node] node_port {port}: 127.0.0.1:{port} is {portowner.describe(others)}: "
            "this node's node server (tarsdock node-server) cannot listen while it is, and its "
            "Tars services would send their heartbeats there; every tarsdock node on a host "
            "needs a node_port of its own"]
