"""The command line: one boundary that turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tarsdock.errors import InputError, InputErrors, TarsdockError

DEFAULT_CONFIG_DIR = "/etc/tarsdock"
EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]


def config_dir(args: argparse.Namespace) -> Path:
    """The config dir: --config-dir, else $TARSDOCK_CONFIG_DIR, else /etc/tarsdock."""
    return Path(args.config_dir or os.environ.get("TARSDOCK_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def cmd_validate(args: argparse.Namespace) -> int:
    from tarsdock.resolve import load_services

    services = load_services(config_dir(args))
    print(f"ok: {len(services)} services in {config_dir(args)}")
    return EXIT_OK


def cmd_template_show(args: argparse.Namespace) -> int:
    from tarsdock.resolve import show_template

    sys.stdout.write(show_template(config_dir(args), args.name, args.profile))
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from tarsdock.errors import Origin, did_you_mean
    from tarsdock.resolve import load_node

    services = {service.name: service for service in load_node(config_dir(args)).services}
    if args.service not in services:
        raise InputError(Origin("command line"), f"no service '{args.service}' in the manifest"
                         f"{did_you_mean(args.service, services)}")
    sys.stdout.write(services[args.service].config_text)
    return EXIT_OK


# --- subcommand registration: one add_* per command; keep each small -----------------------


def add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check the config dir; report every error")
    p.set_defaults(func=cmd_validate)


def add_template(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("template", help="work with Tars templates")
    show = p.add_subparsers(dest="template_command", required=True).add_parser(
        "show", help="print a template's resolved chain (no macro substitution)")
    show.add_argument("name")
    show.add_argument("--profile", type=Path, help="a private profile to merge over it")
    show.set_defaults(func=cmd_template_show)


def add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="print a service's final Tars config")
    p.add_argument("service", metavar="App.Server")
    p.set_defaults(func=cmd_config)


def add_deploy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tarsdock.deploy import add_arguments

    add_arguments(sub.add_parser("deploy", help="unpack a Tars release package into bin/"))


def add_images(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tarsdock.images import add_images as register

    register(sub)


def add_listener(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tarsdock.listener import add_listener as register

    register(sub)


def add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tarsdock.generate import register

    register(sub)


# name -> (help, registrar). Only the chosen command's registrar runs, so `validate` does not pay
# for importing the Docker adapter, the listener or the deploy code.
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
COMMANDS: dict[str, tuple[str, Registrar]] = {
    "validate": ("check the config dir; report every error", add_validate),
    "template": ("work with Tars templates", add_template),
    "config": ("print a service's final Tars config", add_config),
    "generate": ("write supervisord programs or systemd units", add_generate),
    "images": ("pre-pull the node's base images", add_images),
    "listener": ("the supervisord event listener", add_listener),
    "deploy": ("unpack a Tars release package into bin/", add_deploy),
}


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv: the first word that is not an option or its value."""
    words = iter(argv)
    for word in words:
        if word == "--config-dir":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tarsdock", description="Run Tars services in Docker containers under supervisord "
        "or systemd.")
    parser.add_argument("--config-dir", help="config dir (default: $TARSDOCK_CONFIG_DIR or "
                        f"{DEFAULT_CONFIG_DIR})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv)
    for name, (help_text, register) in COMMANDS.items():
        if name == chosen:
            register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run tarsdock; return 0 on success, 1 on errors in the input, 2 on usage errors."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    handler: Handler = args.func
    try:
        return handler(args)
    except (InputError, InputErrors) as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except TarsdockError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
