"""Docker image references: the grammar Docker's reference package accepts, and `:latest`."""

from __future__ import annotations

import re
from typing import Final

from tarsdock.records import Record

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"
REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?\Z"
)


class ImageRef(Record):
    """A parsed reference; `domain` is empty when the reference names none (Docker Hub)."""

    __slots__ = _fields = ("domain", "path", "tag", "digest")
    domain: Final[str]
    path: Final[str]
    tag: Final[str]
    digest: Final[str]

    def __init__(self, domain: str, path: str, tag: str, digest: str) -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    def normalized(self) -> str:
        """The reference as written, with `:latest` when it has neither tag nor digest."""
        text = f"{self.domain}/{self.path}" if self.domain else self.path
        tag = self.tag or ("" if self.digest else "latest")
        return text + (f":{tag}" if tag else "") + (f"@{self.digest}" if self.digest else "")


def _is_domain(first: str) -> bool:
    # Docker's rule: the first component is a registry host if it has a dot, a port, or is localhost
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def parse_image_ref(text: str) -> ImageRef:
    """Parse a reference; raise ValueError naming the problem."""
    match = REFERENCE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a valid image reference "
                         "([host[:port]/]path[:tag][@sha256:digest], path in lowercase)")
    domain, path = match["domain"] or "", match["path"]
    if domain and not _is_domain(domain):
        # `library/busybox`: the first part is a path component, not a registry host
        domain, path = "", f"{domain}/{path}"
        if not re.fullmatch(_COMPONENT, path.split("/")[0]):
            raise ValueError(f"'{text}': '{path.split('/')[0]}' is not a valid path component")
    return ImageRef(domain, path, match["tag"] or "", match["digest"] or "")


def normalize_image_ref(text: str) -> str:
    """The reference with `:latest` added if it has no tag or digest (right for host:port/repo)."""
    return parse_image_ref(text).normalized()


def looks_like_ref(text: str) -> bool:
    """Whether a service's `image` is meant as a literal reference rather than an [images] id."""
    return any(char in text for char in "/:@")


# Docker's reference package rewrites the legacy Hub name to docker.io (distribution/reference,
# normalize.go, splitDockerDomain): `index.docker.io/library/x` is Docker Hub's `x`.
LEGACY_HUB = "index.docker.io"


def hub_or_host(domain: str) -> str:
    """The registry a reference's domain (or a registry url) means: docker.io for none or for
    Docker's legacy Hub name, else the host[:port] itself."""
    return "docker.io" if domain in ("", LEGACY_HUB) else domain


def registry_host(ref: str) -> str:
    """The registry host[:port] a reference is pulled from: its domain, or docker.io."""
    return hub_or_host(parse_image_ref(ref).domain)
