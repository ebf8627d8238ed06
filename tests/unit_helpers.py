"""A factory for Service objects in unit tests, without a config dir."""

from __future__ import annotations

from typing import Any

from tarsdock import tcconfig
from tarsdock.errors import Origin
from tarsdock.model import (
    ContainerOptions,
    Image,
    NodeSettings,
    PackageFacts,
    Service,
    ServiceSpec,
)

NO_CONTAINER, NO_PACKAGE = ContainerOptions(), PackageFacts()
NODE = NodeSettings(name="10.0.0.5", localip="10.0.0.5", tars_path="/usr/local/app/tars",
                    locator="tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890")
DEFAULT_CONFIG = """<tars>
  <application>
    <server>
      app=Hello
      server=HelloServer
      deactivating-timeout=3000
    </server>
  </application>
</tars>
"""


def make_service(name: str = "Hello.HelloServer", *, type: str = "tars_cpp",
                 run: str = "container", image: str | None = "tarsdock-test/busybox:1",
                 config: str = DEFAULT_CONFIG, node: NodeSettings = NODE,
                 env: tuple[tuple[str, str], ...] = (),
                 container: ContainerOptions = NO_CONTAINER, stop_timeout: int = 3,
                 package: PackageFacts = NO_PACKAGE, **spec: Any) -> Service:
    """A Service built from keyword arguments; `config` is TC_Config text."""
    app, server = name.split(".", 1)
    service_spec = ServiceSpec(
        app=app, server=server, type=type, template="tars.default", run=run,  # type: ignore[arg-type]
        origin=Origin("node.toml", 1), image=Image(image) if image else None, **spec)
    tree = tcconfig.parse(config, "test")
    return Service(spec=service_spec, node=node, config=tree,
                   config_text=tcconfig.serialize(tree), env=env, container=container,
                   stop_timeout=stop_timeout, package=package)
