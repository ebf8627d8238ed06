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
    from tarsdock.output import Change, OutputFile


def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `import`."""
    p.add_argument("--tars-db", required=True, metavar="mysql://USER@HOST[:PORT]/db_tars",
                   help="the Tars registry database (no password here)")
    p.add_argument("--node", required=True, metavar="NAME", help="t_server_conf.node_name")
    p.add_argument("--out", type=Path, required=True, help="the config dir to write")
    p.add_argument("--password-file", type=Path, help="a file holding the database password")
    p.add_argument("--locator", default="", help="the node's locator (default: the endpoints "
                   "of tars.tarsregistry.QueryObj in t_adapter_conf)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--dry-run", action="store_true", help="print what would change")
    show.add_argument("--diff", action="store_true", help="print unified diffs of the changes")
    p.set_defaults(func=cmd_import)


def former_node(out_dir: Path) -> dict[str, object]:
    """The node.toml already in --out, parsed; empty when there is none (or it does not parse:
    then there is nothing to keep, and --diff shows what the import replaces)."""
    try:
        return tomllib.loads((out_dir / "node.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def validate(files: list[OutputFile], out_dir: Path) -> int:
    """Load the files as a config dir of their own; raise InputErrors if it does not validate.

    What only the whole config can show (a template's <container> keys, a profile merged over
    its chain) is found here; the errors then name the files import would have written.
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
        try:
            return len(load_node(root).services)
        except (InputError, InputErrors):
            print(f"error: the config import would write to {out_dir} does not validate; "
                  "nothing was written:", file=sys.stderr)
            raise


def plan_files(files: list[OutputFile], out_dir: Path) -> list[Change]:
    """services.d files (removing those a former import wrote for services now gone), the rest."""
    from tarsdock.importtoml import KIND, SERVICES_DIR
    from tarsdock.output import plan

    services_dir = out_dir / SERVICES_DIR
    services = [f for f in files if f.path.parent == services_dir]
    others = [f for f in files if f.path.parent != services_dir]
    return plan(services, services_dir, KIND) + plan(others)


def show(changes: list[Change], as_diff: bool) -> str:
    """--dry-run or --diff output; a password file's content is never shown."""
    from tarsdock.importtoml import SECRET_MODE
    from tarsdock.output import describe, diff

    secret = [c for c in changes if c.file is not None and c.file.mode == SECRET_MODE]
    rest = [c for c in changes if c not in secret]
    if not as_diff:
        return describe(changes)
    notes = "".join(f"password file {c.path}: {c.kind} (content not shown)\n"
                    for c in secret if c.kind != "unchanged")
    return diff(rest) + notes


def cmd_import(args: argparse.Namespace) -> int:
    from tarsdock.importmap import import_node
    from tarsdock.importtoml import SECRETS_DIR, local_settings, render
    from tarsdock.output import write
    from tarsdock.tarsdb import parse_url, read_password, read_tars_db

    url = parse_url(args.tars_db)
    rows = read_tars_db(url, read_password(args.password_file), args.node)
    out_dir = args.out.absolute()
    node = import_node(rows, args.locator)
    files = render(node, f"{url}, node {args.node}", out_dir,
                   local_settings(former_node(out_dir)))
    count = validate(files, out_dir)
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
