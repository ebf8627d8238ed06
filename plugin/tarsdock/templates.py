"""Tars profile templates: read them from the config dir, resolve parent chains."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, NamedTuple

from tarsdock import tcconfig, textfile
from tarsdock.errors import ErrorCollector, InputError, InputErrors, Origin, did_you_mean
from tarsdock.records import Record
from tarsdock.tcconfig import Config

ROOT_TEMPLATE = "tars.default"
# Parents of the stock templates (as in a Tars install's template table); a [templates] table of
# node.toml overrides them. Any other template's parent defaults to tars.default.
STOCK_PARENTS = {"tars.springboot": "tars.tarsjava.default"}
STOCK_DIR = Path(__file__).parent / "templates" / "tars"   # a link to templates/


class Template(Record):
    """A parsed template file (macros still unsubstituted)."""

    __slots__ = _fields = ("name", "config", "origin", "stock")
    name: Final[str]
    config: Final[Config]
    origin: Final[Origin]
    stock: Final[bool]            # shipped with tarsdock, not from the config dir

    def __init__(self, name: str, config: Config, origin: Origin, stock: bool = False) -> None:
        self.name = name
        self.config = config
        self.origin = origin
        self.stock = stock


def read_text(path: str | Path, shown: str) -> str:
    """Read a UTF-8 text file, turning every failure into an error that names it (and the line
    of a bad byte, or the byte-order mark: see textfile)."""
    return textfile.read(path, shown)


class TemplateFile(NamedTuple):
    """A template file found in a template dir, not read yet."""

    name: str
    path: str       # to read
    shown: str      # in errors and origins
    stock: bool


def _list_dir(directory: Path, shown_prefix: str, stock: bool) -> list[TemplateFile]:
    try:
        names = sorted(os.listdir(directory))   # names, not Paths: a node may have 1,000
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [TemplateFile(name, f"{directory}/{name}", f"{shown_prefix}{name}", stock)
            for name in names if not name.startswith(".") and not name.endswith("~")]


def template_files(config_dir: Path) -> list[TemplateFile]:
    """The stock templates shipped with tarsdock, then the config dir's templates/, each by name:
    listed, none read."""
    return [*_list_dir(STOCK_DIR, f"{STOCK_DIR}/", stock=True),
            *_list_dir(config_dir / "templates", "templates/", stock=False)]


def parse_template(file: TemplateFile) -> Template:
    """The template in `file`; raises InputError or InputErrors at its lines."""
    return Template(file.name, tcconfig.parse(read_text(file.path, file.shown), file.shown),
                    Origin(file.shown), file.stock)


def first_origin(problem: InputError | InputErrors) -> Origin:
    """Where a template's first error is (what a chain reaching it points at)."""
    return (problem.errors[0] if isinstance(problem, InputErrors) else problem).origin


def load_templates(config_dir: Path,
                   errors: ErrorCollector) -> tuple[dict[str, Template], dict[str, Origin]]:
    """The config dir's templates/ over the stock ones shipped with tarsdock, and the broken
    ones with the line of their first error."""
    templates: dict[str, Template] = {}
    broken: dict[str, Origin] = {}
    for file in template_files(config_dir):
        try:
            templates[file.name] = parse_template(file)
        except (InputError, InputErrors) as problem:
            errors.extend(problem)
            broken[file.name] = first_origin(problem)
    return templates, broken


class BrokenTemplate(InputError):
    """A template chain reaches a template whose own errors are reported where they are."""


class TemplateSet:
    """Templates plus their parents; resolves chains once per template name.

    A lazy set (made with `unread` files) parses each template when a chain or a check first
    needs it, in the process that needs it: a large node's shards each parse what their own
    services and their share of the checks use (see check_templates), not the parent all of
    them before the fork. A broken one's errors are kept in `problems` then.
    """

    def __init__(self, templates: Mapping[str, Template],
                 parents: Mapping[str, tuple[str, Origin]],
                 broken: Mapping[str, Origin] | None = None,
                 unread: Iterable[TemplateFile] = ()) -> None:
        self.templates = dict(templates)      # parsed so far: all of them unless lazy
        self.parents = parents
        self.broken = dict(broken or {})
        # not parsed yet, by name: a config-dir file over the stock one of its name (which a
        # lazy set never reads: tarsdock's own file, never broken)
        self._unread = {file.name: file for file in unread}
        self.problems: dict[str, InputError | InputErrors] = {}   # by template, when lazy
        self._resolved: dict[str, Config] = {}
        self._fillers: dict[str, tcconfig.Filler] = {}

    def names(self) -> list[str]:
        """Every template's name, sorted (in a lazy set the broken ones' too)."""
        return sorted({*self.templates, *self._unread})

    def get(self, name: str) -> Template | None:
        """The template `name`, parsed now if a lazy set has not yet (a broken one goes to
        `broken` and `problems`); None if there is none that parses."""
        file = self._unread.pop(name, None)
        if file is not None:
            try:
                self.templates[name] = parse_template(file)
            except (InputError, InputErrors) as problem:
                self.problems[name] = problem
                self.broken[name] = first_origin(problem)
        return self.templates.get(name)

    def parent_of(self, name: str) -> str:
        if name in self.parents:
            return self.parents[name][0]
        found = self.templates.get(name) or self._unread.get(name)
        return STOCK_PARENTS.get(name, ROOT_TEMPLATE) if found and found.stock \
            else ROOT_TEMPLATE

    def listing(self) -> list[tuple[str, str, str]]:
        """(name, parent, where it comes from) of every template, by name."""
        rows = []
        for name, template in sorted(self.templates.items()):
            where = f"stock ({template.origin})" if template.stock else str(template.origin)
            if name in self.parents:
                where += f", parent from {self.parents[name][1]}"
            rows.append((name, self.parent_of(name), where))
        return rows

    def chain(self, name: str, used_at: Origin, key: str | None = None) -> list[Template]:
        """The template and its ancestors, child first; a cycle not ending at a root is an error.
        An error about the first template is at `used_at` (with `key`, the key naming it there),
        one past it at the `parent` key that led there (key 'parent')."""
        chain: list[Template] = []
        seen: list[str] = []
        current, referrer = name, used_at
        while current not in seen:
            template = self.get(current)
            if current in self.broken:
                raise BrokenTemplate(referrer, f"template '{current}' has errors (see "
                                     f"{self.broken[current]})", key)
            if template is None:
                raise InputError(referrer, f"template '{current}' does not exist"
                                 f"{did_you_mean(current, [*self.templates, *self._unread])}",
                                 key)
            seen.append(current)
            chain.append(template)
            parent = self.parent_of(current)
            if parent == current:
                return chain
            if current in self.parents:
                referrer, key = self.parents[current][1], "parent"
            current = parent
        loop = " -> ".join([*seen[seen.index(current):], current])
        raise InputError(referrer, f"template cycle without a root: {loop}", key)

    def resolve(self, name: str, used_at: Origin, key: str | None = None) -> Config:
        """resolve(T) = T over resolve(parent(T)), without macro substitution.

        The parent's resolved tree is kept too and reused: templates that share a parent merge
        the parent's chain once, not once each, and share the parent's domains they do not
        change (tcconfig.join). join() never changes its inputs, and nothing changes a
        resolved tree, so a kept tree is never altered.
        """
        if name not in self._resolved:
            chain = self.chain(name, used_at, key)   # every error of the chain, at `used_at`
            config = chain[0].config
            if len(chain) > 1:
                config = tcconfig.join(self.resolve(chain[1].name, used_at), config)
            self._resolved[name] = config
        return self._resolved[name]

    def filler(self, name: str, used_at: Origin, macros: frozenset[str],
               key: str | None = None) -> tcconfig.Filler:
        """resolve(name) with its macros found, to be filled in per service: once per template
        (in each process that asks), not once per service. `macros` is the same in every call."""
        if name not in self._fillers:
            self._fillers[name] = tcconfig.Filler(self.resolve(name, used_at, key), macros)
        return self._fillers[name]
