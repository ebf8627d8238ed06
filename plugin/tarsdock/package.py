"""Facts about the release deployed in a service's bin dir: how a tars_nodejs service starts."""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterable
from pathlib import Path

from tarsdock.errors import ErrorCollector, InputError, Origin
from tarsdock.model import PackageFacts, Service
from tarsdock.quoting import FORBIDDEN
from tarsdock.records import replace

NODE_AGENT_DIR = ("tars_nodejs", "node-agent")
# @tars/deploy puts the application in bin/src/; a hand-made package may have it at bin/ itself.
APP_DIR = "src"
APP_DIRS = ("", APP_DIR)
# node-agent's last resort when package.json names no entry point (its README, "Entry point").
FALLBACK_ENTRIES = ("server.js", "app.js", "start.js", "index.js")
DEFAULT_ENTRY = "index.js"


def with_package_facts(services: Iterable[Service]) -> list[Service]:
    """The services, each tars_nodejs one with the facts of its deployed release; the errors of
    every release's package.json raised together."""
    errors = ErrorCollector()
    done = package_facts(services, errors)
    errors.raise_if_any()
    return done


def package_facts(services: Iterable[Service], errors: ErrorCollector) -> list[Service]:
    """with_package_facts, the errors of each package.json added to `errors` and its service
    left out."""
    done = []
    for service in services:
        # only tars_nodejs starts depend on them: no bin dir reads for the other 1,000 services
        if service.spec.type == "tars_nodejs":
            try:
                service = replace(service, package=read_package_facts(Path(service.bin_dir)))
            except InputError as error:
                errors.extend(error)
                continue
        done.append(service)
    return done


def read_package_facts(bin_dir: Path) -> PackageFacts:
    """Read how the release in bin_dir starts: node-agent, or node on its entry point."""
    if not bin_dir.is_dir() or not any(bin_dir.iterdir()):
        return PackageFacts()
    if bin_dir.joinpath(*NODE_AGENT_DIR).is_dir():
        # node-agent is given the app dir: tarsnode passes <bin>/src/, where @tars/deploy puts it.
        return PackageFacts(node_agent=True, entry=APP_DIR if (bin_dir / APP_DIR).is_dir() else "")
    app_dir = next((d for d in APP_DIRS if (bin_dir / d / "package.json").is_file()), "")
    entry = _entry_point(bin_dir / app_dir)
    return PackageFacts(node_agent=False, entry=posixpath.join(app_dir, entry))


def _entry_point(app_dir: Path) -> str:
    """The entry script relative to app_dir, found the way node-agent finds it."""
    manifest = app_dir / "package.json"
    declared = _declared_entry(manifest) if manifest.is_file() else None
    if declared is not None:
        return _checked(*declared, manifest)
    return next((name for name in FALLBACK_ENTRIES if (app_dir / name).is_file()), DEFAULT_ENTRY)


# where node-agent looks for the entry point, first to last, as the key an error names
ENTRY_KEYS = ("nodeAgent.main", "scripts.start", "main")


def _declared_entry(manifest: Path) -> tuple[str, str, int] | None:
    """nodeAgent.main, else a `node X` scripts.start, else main, with the key it came from and
    its line (see _line_of); None when none is set."""
    try:
        text = manifest.read_text(encoding="utf-8")
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(Origin(str(manifest), error.lineno),
                         f"cannot read package.json: {error.msg}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(Origin(str(manifest)), f"cannot read package.json: {error}") from error
    if not isinstance(data, dict):
        raise InputError(Origin(str(manifest)), "package.json is not a JSON object")
    agent = data.get("nodeAgent")
    scripts = data.get("scripts")
    candidates = (
        agent.get("main") if isinstance(agent, dict) else None,
        _node_script(scripts.get("start")) if isinstance(scripts, dict) else None,
        data.get("main"),
    )
    for key, value in zip(ENTRY_KEYS, candidates, strict=True):
        if isinstance(value, str) and value.strip():
            return value.strip(), key, _line_of(text, value)
    return None


def _line_of(text: str, value: str) -> int:
    """The line of package.json where `value` is written as a JSON string, 0 if not found.

    json gives no positions: the value's own JSON text is looked for (a key's value is found,
    unless the same string is written earlier; an error's line is then that earlier one's)."""
    at = text.find(json.dumps(value, ensure_ascii=False)[1:-1])
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


def _node_script(command: object) -> str | None:
    """The script of a start command like `node server.js --flag`; None for anything else."""
    if not isinstance(command, str):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) >= 2 and words[0] == "node" and not words[1].startswith("-"):
        return words[1]
    return None


def _checked(entry: str, key: str, line: int, manifest: Path) -> str:
    """Normalize an entry path; refuse one that leaves the application dir, or that no command
    line of a unit can carry (a line break: it would fail only when rendered, naming no file)."""
    normal = posixpath.normpath(entry)
    origin = Origin(str(manifest), line)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise InputError(origin, f"entry point {entry!r} leaves the package", key)
    if FORBIDDEN.search(entry):
        # it becomes a word of the service's command line (argv._nodejs_args)
        raise InputError(origin, f"entry point {entry!r} holds a line break, which no "
                         "supervisord or systemd file can carry", key)
    return normal
