"""The small read-only subcommands: validate, template show, config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tarsdock.errors import InputError
from tarsdock.options import EXIT_OK, complete_names, config_dir


def cmd_validate(args: argparse.Namespace) -> int:
    """Load, resolve and render every format in memory, as generate does; print its warnings
    and a one-line summary (input errors are raised, all together)."""
    import shutil
    import sysconfig

    from tarsdock.generate import (
        FORMATS,
        VALIDATE_OUT,
        engine_notes,
        load_and_render_all,
        print_warnings,
        with_the_others,
    )
    from tarsdock.options import path_errors
    from tarsdock.output import Context

    directory = config_dir(args)
    docker = shutil.which("docker") or "/usr/bin/docker"
    problems = path_errors(args, ("config_dir",))
    if problems:
        raise with_the_others(problems, lambda ctx: load_and_render_all(
            FORMATS, directory, ctx, VALIDATE_OUT, configs=False, keep=False))
    ctx = Context(directory.absolute(), sysconfig.get_path("scripts"), docker)
    # the output dir only names files in the rendered text; nothing is written
    done = load_and_render_all(FORMATS, directory, ctx, VALIDATE_OUT, configs=False, keep=False,
                               engine=True)
    print_warnings([*done.warnings, *engine_notes(done)])
    print(f"ok: {len(done.specs)} services in {directory}")
    return EXIT_OK


def cmd_template_show(args: argparse.Namespace) -> int:
    """Print a template's resolved chain."""
    from tarsdock.resolve import show_template

    sys.stdout.write(show_template(config_dir(args), args.name, args.profile))
    return EXIT_OK


def cmd_template_list(args: argparse.Namespace) -> int:
    """Print every template: name, parent, where it comes from."""
    from tarsdock.resolve import list_templates

    sys.stdout.write(list_templates(config_dir(args)))
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    """Print one service's final Tars config."""
    from tarsdock.errors import Origin, did_you_mean
    from tarsdock.resolve import load_node

    services = {service.name: service for service in load_node(config_dir(args)).services}
    if args.service not in services:
        raise InputError(Origin("command line"), f"no service '{args.service}' in the manifest"
                         f"{did_you_mean(args.service, services)}")
    sys.stdout.write(services[args.service].config_text)
    return EXIT_OK


def register_validate(parser: argparse.ArgumentParser) -> None:
    """`validate`: no arguments of its own."""
    parser.set_defaults(func=cmd_validate)


def register_template(parser: argparse.ArgumentParser) -> None:
    """`template show NAME [--profile FILE]`, `template list`."""
    actions = parser.add_subparsers(dest="template_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print a template's resolved chain (no macro "
                              "substitution)")
    complete_names(show.add_argument("name", metavar="TEMPLATE"), "templates")
    show.add_argument("--profile", type=Path, help="a private profile to merge over it")
    show.set_defaults(func=cmd_template_show)
    listing = actions.add_parser("list", help="every template: name, parent, where it comes from")
    listing.set_defaults(func=cmd_template_list)


def register_config(parser: argparse.ArgumentParser) -> None:
    """`config App.Server`."""
    complete_names(parser.add_argument("service", metavar="App.Server"), "services")
    parser.set_defaults(func=cmd_config)
