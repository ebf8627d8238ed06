"""`tarsdock import`: read a node from the Tars database, check it, write the config dir."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tarsdock.errors import InputError, InputErrors
    from tarsdock.importer import ImportedNode
    from tarsdock.output import Change, OutputFile
    from tarsdock.tarsdb import TarsRows


def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `import`."""
    p.add_argument("--tars-db", required=True, metavar="mysql://USER@HOST[:PORT]/db_tars",
                   help="the Tars registry database (no password here)")
    p.add_argument("--node", required=True, metavar="NAME", help="t_server_conf.node_name")
    p.add_argument("--out", type=Path, required=True, help="the config dir to write")
    p.add_argument("--password-file", type=Path, help="a file holding the database password")
    p.add_argument("--locator", default="", type=locator, metavar="OBJ@ENDPOINT[:ENDPOINT...]",
                   help="the node's locator (default: the endpoints of "
                   "tars.tarsregistry.QueryObj in t_adapter_conf)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--dry-run", action="store_true", help="print what would change")
    show.add_argument("--diff", action="store_true", help="print unified diffs of the changes")
    p.set_defaults(func=cmd_import)


def locator(text: str) -> str:
    """--locator, checked as node.toml's locator is: a usage error names the option, not a line
    of a node.toml the operator never wrote. Empty: from the database (the default)."""
    from tarsdock.endpoint import EndpointError, parse_proxy

    if not text:
        return text
    try:
        parse_proxy(text)
    except EndpointError as problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}") from None
    return text


def former_node(out_dir: Path) -> dict[str, object]:
    """The node.toml already in --out, parsed; empty when there is none.

    Raises InputError at its line when it is there but cannot be read or parsed: import keeps the
    settings the database does not hold from it (supervisor, network, pull, ...), and rewriting it
    without them would change the node without a word.
    """
    from tarsdock import textfile
    from tarsdock.errors import InputError, Origin
    from tarsdock.tomlread import syntax_error

    path = out_dir / "node.toml"
    keep = ("import keeps its settings that the database does not hold: fix it or move it "
            "away; nothing was written")
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):   # writing says what is wrong with --out
        return {}
    except OSError as error:
        raise InputError(Origin(str(path)), f"cannot read it ({error.strerror}); {keep}") from None
    try:
        text = textfile.decode(raw, str(path))
        return tomllib.loads(text)
    except InputError as error:
        raise InputError(error.origin, f"{error.message}; {keep}") from None
    except tomllib.TOMLDecodeError as error:
        origin, message = syntax_error(str(path), text, error)
        raise InputError(origin, f"{message}; {keep}") from None


def check_kept(former: dict[str, object], out_dir: Path) -> None:
    """Raise InputErrors at each setting of the former node.toml that import rewrites it
    without (importtoml.unkept): nothing of the operator's is dropped without a word."""
    from tarsdock.errors import ErrorCollector, Origin
    from tarsdock.importtoml import unkept
    from tarsdock.tomlpos import locate, toml_path

    lost = unkept(former)
    if not lost:
        return
    path = out_dir / "node.toml"
    located = locate(path.read_text(encoding="utf-8", errors="replace"))
    errors = ErrorCollector()
    for keys in lost:
        where = "move it to a services.d file" if keys[0] == "services" else "remove it"
        errors.add(Origin(str(path), located.line(keys)),
                   f"import rewrites this file from the Tars database and keeps only [node], "
                   f"[registries.*], [images.*] and [templates.*] tables of plain values: "
                   f"{toml_path(keys)} would be dropped; {where}, or stop importing into this "
                   "config dir; nothing was written", key=toml_path(keys))
    errors.raise_if_any()


def check_own_services(node: ImportedNode, out_dir: Path) -> None:
    """Raise InputErrors when an imported service would replace a services.d file that import did
    not write, or would be declared a second time by one: files of the user's own are never
    touched, and the config dir must still validate after the import."""
    from tarsdock.errors import ErrorCollector, Origin
    from tarsdock.importtoml import KIND, SERVICES_DIR
    from tarsdock.output import generated_kind

    rows = {service.name: service.source for service in node.services}
    folder = out_dir / SERVICES_DIR
    errors = ErrorCollector()
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        if generated_kind(path) == KIND:
            continue
        shown = str(path)
        if path.stem in rows:
            errors.add(Origin(shown), f"import did not write this file, and would replace it "
                       f"with {rows[path.stem]} ({path.stem}): move it away, or remove the "
                       "row; nothing was written")
        for name in sorted(set(_declared(path)) & set(rows) - {path.stem}):
            errors.add(Origin(shown), f"declares service '{name}', which import writes to "
                       f"{SERVICES_DIR}/{name}.toml from {rows[name]}: remove one; nothing "
                       "was written")
    errors.raise_if_any()


def check_own_templates(node: ImportedNode, out_dir: Path) -> None:
    """Raise InputErrors when an imported template would replace a template file that import did
    not write (not in templates/.imported). With no record (nothing imported yet, or an import by
    a tarsdock before the record) same-named files are taken for import's own, as before."""
    from tarsdock.errors import ErrorCollector, InputError, Origin
    from tarsdock.importtoml import TEMPLATES_DIR, TEMPLATES_RECORD, read_templates_record

    folder = out_dir / TEMPLATES_DIR
    try:
        record = read_templates_record(folder / TEMPLATES_RECORD)
    except OSError as error:
        raise InputError(Origin(str(folder / TEMPLATES_RECORD)),
                         f"cannot read it ({error.strerror}); nothing was written") from None
    if record is None:
        return
    errors = ErrorCollector()
    for name in sorted(node.templates):
        path = folder / name
        if name not in record and (path.exists() or path.is_symlink()):
            errors.add(Origin(str(path)), f"import did not write this template, and would "
                       f"replace it with t_profile_template '{name}': move it away, or rename "
                       "one of them; nothing was written")
    errors.raise_if_any()


def stale_templates(files: list[OutputFile], out_dir: Path) -> list[Path]:
    """Template files a former import wrote (templates/.imported) that this one does not."""
    from tarsdock.importtoml import TEMPLATES_DIR, TEMPLATES_RECORD, read_templates_record

    folder = out_dir / TEMPLATES_DIR
    written = {file.path for file in files}
    try:
        record = read_templates_record(folder / TEMPLATES_RECORD) or set()
    except OSError:
        record = set()   # check_own_templates said so before anything was planned
    return [folder / name for name in sorted(record)
            if "/" not in name and folder / name not in written and (folder / name).is_file()]


def _declared(path: Path) -> list[str]:
    """The services a TOML file declares; none when it does not parse (validate says why)."""
    try:
        services = tomllib.loads(path.read_text(encoding="utf-8")).get("services")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    return list(services) if isinstance(services, dict) else []


def import_into(rows: TarsRows, locator: str,
                out_dir: Path) -> tuple[ImportedNode, dict[str, object]]:
    """The imported node (importmap.import_node) and the former node.toml (former_node), after
    checking --out (check_own_services); raise InputErrors with the problems of the rows and of
    --out together."""
    from tarsdock.errors import ErrorCollector, InputError, InputErrors
    from tarsdock.importmap import import_node

    errors = ErrorCollector()
    node: ImportedNode | None = None
    former: dict[str, object] = {}
    try:
        node = import_node(rows, locator)
    except InputErrors as error:
        errors.extend(error)
    try:
        former = former_node(out_dir)
        check_kept(former, out_dir)
    except (InputError, InputErrors) as error:
        errors.extend(error)
    if node is not None:
        for check in (check_own_services, check_own_templates):
            try:
                check(node, out_dir)
            except (InputError, InputErrors) as error:
                errors.extend(error)
    errors.raise_if_any()
    assert node is not None   # import_node raised, or it returned a node
    return node, former


def kept_files(files: list[OutputFile], out_dir: Path) -> list[Path]:
    """What of --out the import leaves as it is and the config dir reads: services.d files of the
    user's own, templates import does not write, every other entry but node.toml and secrets
    (a profile_file's dir, ...). Stale files import wrote are not kept: it removes them."""
    from tarsdock.importtoml import KIND, SECRETS_DIR, SERVICES_DIR, TEMPLATES_DIR
    from tarsdock.output import generated_kind

    written = {file.path for file in files} | set(stale_templates(files, out_dir))
    kept: list[Path] = []
    for entry in sorted(out_dir.iterdir()) if out_dir.is_dir() else []:
        if entry.name in (SERVICES_DIR, TEMPLATES_DIR) and entry.is_dir():
            kept += [path for path in sorted(entry.iterdir()) if path not in written
                     and not (entry.name == SERVICES_DIR and generated_kind(path) == KIND)]
        elif entry.name not in ("node.toml", SECRETS_DIR) and entry not in written:
            kept.append(entry)
    return kept


def validate(files: list[OutputFile], out_dir: Path, sources: dict[str, str] | None = None
             ) -> int:
    """Load the config dir the import would leave (its files, and what it keeps of --out: kept
    files, linked) on its own; return how many services it has; raise InputErrors if it does not
    validate.

    What only the whole config can show (a template's <container> keys, a profile merged over
    its chain, a user's own service on a port an imported one now takes) is found here; the
    errors then name the files import would have written or kept, and, by `sources` (a
    file's path in the config dir -> the row it is made from), the row to correct: the file is
    import's, so an edit of it would be lost at the next import.
    """
    from tarsdock.errors import InputError, InputErrors
    from tarsdock.resolve import load_node

    # on tmpfs when there is one: these files are read once and thrown away
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="tarsdock-import.", dir=shm) as temp:
        root = Path(temp)
        for file in files:
            path = root / file.path.relative_to(out_dir)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(file.content, encoding="utf-8")
            path.chmod(file.mode)
        for kept in kept_files(files, out_dir):
            link = root / kept.relative_to(out_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(kept)
        try:
            return len(load_node(root).services)
        except (InputError, InputErrors) as error:
            print(f"error: the config import would write to {out_dir} does not validate; "
                  "nothing was written:", file=sys.stderr)
            raise relocated(error, temp, str(out_dir), sources or {}) from None


def import_sources(node: ImportedNode) -> dict[str, str]:
    """The files import makes from a row, by their path in the config dir: the row."""
    from tarsdock.importtoml import SERVICES_DIR, TEMPLATES_DIR

    sources = {f"{SERVICES_DIR}/{s.name}.toml": f"{s.source} ({s.name})"
               for s in node.services if s.source}
    sources.update({f"{TEMPLATES_DIR}/{name}": f"t_profile_template '{name}'"
                    for name in node.templates})
    return sources


def relocated(error: InputError | InputErrors, staged: str, out_dir: str,
              sources: dict[str, str]) -> InputErrors:
    """The errors found in the staged copy, at the paths import would write (a password file's
    path in a message, for one, is absolute, and the staging dir is gone once we return), each
    in a file import makes from a row naming that row."""
    from tarsdock.errors import InputError, InputErrors, Origin, UnreadableInput

    def moved(one: InputError) -> InputError:
        kind = UnreadableInput if isinstance(one, UnreadableInput) else InputError
        path = one.origin.path.replace(staged, out_dir)
        source = sources.get(os.path.relpath(path, out_dir) if os.path.isabs(path) else path)
        fix = f" (imported from {source}: correct the row and import again)" if source else ""
        return kind(Origin(path, one.origin.line),
                    one.message.replace(staged, out_dir) + fix, one.key)

    return InputErrors(moved(one) for one in
                       (error.errors if isinstance(error, InputErrors) else [error]))


def plan_files(files: list[OutputFile], out_dir: Path) -> list[Change]:
    """services.d files and templates (removing those a former import wrote that are now gone
    from the database), the rest."""
    from tarsdock.importtoml import KIND, SERVICES_DIR
    from tarsdock.output import Change, plan

    services_dir = out_dir / SERVICES_DIR
    services = [f for f in files if f.path.parent == services_dir]
    others = [f for f in files if f.path.parent != services_dir]
    gone = [Change("stale", path, None, path.read_text(encoding="utf-8", errors="replace"))
            for path in stale_templates(files, out_dir) + stale_secrets(files, out_dir)]
    return plan(services, services_dir, KIND) + plan(others) + gone


def stale_secrets(files: list[OutputFile], out_dir: Path) -> list[Path]:
    """Password files a former import wrote (secrets/registry-ID) for registries no image of the
    node uses any more: a password must not outlive its reason to be on the host."""
    from tarsdock.importtoml import IMPORT_NAMES, SECRETS_DIR

    folder = out_dir / SECRETS_DIR
    written = {file.path for file in files}
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.iterdir())
            if IMPORT_NAMES["registries"].match(path.name) and path.is_file()
            and not path.is_symlink() and path not in written]


def show(changes: list[Change], as_diff: bool) -> str:
    """--dry-run or --diff output; a password file's content is never shown."""
    from tarsdock.importtoml import SECRET_MODE, SECRETS_DIR
    from tarsdock.output import describe, diff

    secret = [c for c in changes if (c.file is not None and c.file.mode == SECRET_MODE)
              or c.path.parent.name == SECRETS_DIR]
    rest = [c for c in changes if c not in secret]
    if not as_diff:
        return describe(changes)
    notes = "".join(f"password file {c.path}: {c.kind} (content not shown)\n"
                    for c in secret if c.kind != "unchanged")
    return diff(rest) + notes


def cmd_import(args: argparse.Namespace) -> int:
    from tarsdock.errors import EnvironmentFault
    from tarsdock.importtoml import (
        SECRETS_DIR,
        TEMPLATES_DIR,
        TEMPLATES_RECORD,
        local_settings,
        read_templates_record,
        render,
    )
    from tarsdock.output import write
    from tarsdock.tarsdb import parse_url, read_password, read_tars_db

    url = parse_url(args.tars_db)
    if args.out.exists() and not args.out.is_dir():   # as generate: before the database is read
        raise EnvironmentFault(str(args.out.absolute()), "--out is not a directory")
    rows = read_tars_db(url, read_password(args.password_file), args.node)
    out_dir = args.out.absolute()
    node, former = import_into(rows, args.locator, out_dir)
    record = read_templates_record(out_dir / TEMPLATES_DIR / TEMPLATES_RECORD)
    files = render(node, f"{url}, node {args.node}", out_dir, local_settings(former, record),
                   record)
    validate(files, out_dir, import_sources(node))
    count = len(node.services)
    changes = plan_files(files, out_dir)
    for warning in node.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run or args.diff:
        sys.stdout.write(show(changes, args.diff))
        return 0
    if any(f.path.parent == out_dir / SECRETS_DIR for f in files):
        (out_dir / SECRETS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    counts = write(changes)
    written = counts["new"] + counts["changed"]
    print(f"imported {count} services, {len(node.templates)} templates, {len(node.images)} "
          f"images: {written} written, {counts['unchanged']} unchanged, "
          f"{counts['stale']} removed")
    return 0
