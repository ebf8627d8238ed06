"""One [services."App.Server"] table of the manifest (its listeners go to tarsdock.listeners)."""

from __future__ import annotations

from typing import Any

from tarsdock.endpoint import Endpoint, parse_endpoint
from tarsdock.errors import Origin, did_you_mean
from tarsdock.imageref import hub_or_host, looks_like_ref, parse_image_ref
from tarsdock.keys import ADAPTER_KEYS, SERVICE_KEYS, quote_value
from tarsdock.model import AdapterSpec, Image, Registry, RunMode, ServiceSpec
from tarsdock.tomlpos import KeyPath
from tarsdock.tomlread import TableReader, TomlDoc

# keys whose errors are found after the manifest is read, at their line (ServiceSpec.origin_of):
# a template that does not exist, an executable only systemd's rendering refuses
LATE_KEYS = ("command", "template")


def registry_for(domain: str, registries: dict[str, Registry]) -> Registry | None:
    """The registry whose url is the reference's host (docker.io for none)."""
    host = hub_or_host(domain)
    return next((r for _, r in sorted(registries.items()) if r.url == host), None)


class ServiceReader:
    """Reads one [services."App.Server"] table."""

    def __init__(self, reader: TableReader, doc: TomlDoc, name: str, images: dict[str, Image],
                 registries: dict[str, Registry]) -> None:
        self.reader, self.errors, self.doc, self.name = reader, reader.errors, doc, name
        self.path: KeyPath = ("services", name)
        self.images, self.registries = images, registries

    def origin(self, key: str) -> Origin:
        return self.doc.origin((*self.path, key))

    def read(self, raw: Any) -> ServiceSpec | None:
        v = self.reader.table(self.doc, self.path, raw, SERVICE_KEYS)
        if v is None:
            return None
        # a key given with a bad value is reported at its line and read as its default; the
        # checks below must not then call it missing ("needs a command" after "expected an
        # array of strings" sent the operator looking for a key that is there): `in raw`
        image = self.image(v["image"]) if v["image"] else None
        run: RunMode = v["run"] or ("container" if v["image"] else "native")
        if run == "container" and not v["image"] and "image" not in raw:
            self.errors.add(self.origin("run"), 'run = "container" needs an image', "run")
        if "command" not in raw or v["command"]:
            self.check_command(v["type"], v["command"])
        profile, profile_origin = self.profile(v["profile"], v["profile_file"])
        if v["local_port"]:
            local = Endpoint("tcp", "127.0.0.1", v["local_port"])
            self.reader.endpoints.append(
                (local, self.origin("local_port"), f"{self.name} admin", "local_port"))
        adapters = self.adapters(v["adapters"])
        if v["type"] is None:
            return None
        app, server = self.name.split(".")
        return ServiceSpec(
            app=app, server=server, type=v["type"], template=v["template"], run=run,
            origin=self.doc.origin(self.path), profile=profile, profile_origin=profile_origin,
            image=image, exe=v["exe"], command=tuple(v["command"]), local_port=v["local_port"],
            set_division=v["set_division"], async_thread=v["async_thread"],
            main_class=v["main_class"], adapters=adapters, enabled=v["enabled"],
            key_origins=tuple((key, self.origin(key)) for key in LATE_KEYS if key in raw),
        )

    def image(self, text: str) -> Image | None:
        """An [images] id, or a literal reference made into an Image of its own."""
        if text in self.images or text in self.reader.broken_images:
            return self.images.get(text)
        origin = self.origin("image")
        if not looks_like_ref(text) and self.reader.images_unknown:
            return None   # node.toml's own error is the one to fix first
        if not looks_like_ref(text):
            self.errors.add(origin, f"no image id {quote_value(text)}"
                            f"{did_you_mean(text, self.images) or ' in [images]'}"
                            " (a literal image reference has a ':tag', a '/' or an '@digest')",
                            "image")
            return None
        try:
            ref = parse_image_ref(text)
        except ValueError as error:
            self.errors.add(origin, str(error), "image")
            return None
        return Image(ref.normalized(), registry=registry_for(ref.domain, self.registries),
                     origin=origin)

    def check_command(self, kind: str | None, command: list[str]) -> None:
        if kind == "not_tars" and not command:
            self.errors.add(self.doc.origin(self.path), "a not_tars service needs a command",
                            "command")
        elif kind not in (None, "not_tars") and command:
            self.errors.add(self.origin("command"), f"only not_tars services take a command "
                            f"(this one is {kind}; Tars builds its command line)", "command")

    def profile(self, inline: str, file: str) -> tuple[str, Origin]:
        """The profile text and the origin of its first line (see the module docstring)."""
        if inline and file:
            self.errors.add(self.origin("profile_file"), "give profile or profile_file, not both",
                            "profile_file")
        if not file:
            where = self.doc.where.value_line((*self.path, "profile")) if inline else 0
            return inline, Origin(self.doc.rel, where)
        full = self.reader.config_dir / file
        text = self.reader.read_text(full, self.origin("profile_file"), "profile_file")
        if text is None:
            return "", Origin(self.reader.rel(full))
        return text, Origin(self.reader.rel(full), 1)

    def adapters(self, tables: list[dict[str, Any]]) -> tuple[AdapterSpec, ...]:
        found: list[AdapterSpec] = []
        names: dict[str, Origin] = {}
        for i, raw in enumerate(tables):
            path = (*self.path, "adapters", i)
            v = self.reader.table(self.doc, path, raw, ADAPTER_KEYS)
            if v is None or None in v.values():
                continue
            origin = self.doc.origin(path)
            name = v["name"] or v["servant"].split(".")[-1] + "Adapter"
            if name in names:
                self.errors.add(self.doc.origin((*path, "name")),
                                f"adapter '{name}' is defined twice: also at {names[name]}", "name")
                continue
            names[name] = origin
            if not v["servant"].startswith(self.name + "."):
                self.errors.add(self.doc.origin((*path, "servant")),
                                f"servant must start with '{self.name}.'", "servant")
            endpoint = parse_endpoint(v["endpoint"])
            label = f"{self.name} adapter {name}"
            where = self.doc.origin((*path, "endpoint"))
            self.reader.endpoints.append((endpoint, where, label, "endpoint"))
            found.append(AdapterSpec(
                name, v["servant"], v["endpoint"], v["threads"], v["maxconns"], v["queuecap"],
                v["queuetimeout"], v["protocol"], v["allow"], origin,
            ))
        return tuple(found)
