"""The man pages tarsdock(1), from the argument parser, and tarsdock-node.toml(5), from
docs/node-toml.md. Both are generated into plugin/tarsdock/man/ and shipped in the wheel; a test
fails when they are stale. Regenerate with `python -m tarsdock.manpages --write` in a checkout.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from tarsdock.options import GLOBAL_OPTIONS

MAN_DIR = Path(__file__).parent / "man"
DOC = Path(__file__).resolve().parents[2] / "docs" / "node-toml.md"   # in a checkout
PAGES = ("tarsdock.1", "tarsdock-node.toml.5")
INLINE = re.compile(r"`([^`]*)`|\*\*([^*]*)\*\*")


def escape(text: str) -> str:
    """Text safe in a roff line: backslashes, dashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def inline(text: str) -> str:
    """Markdown `code` and **bold** as roff bold; everything else escaped."""
    out, last = [], 0
    for match in INLINE.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(f"\\fB{escape(match[1] if match[1] is not None else match[2])}\\fR")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def header(name: str, section: int, title: str) -> list[str]:
    # The source field names no version: the pages are checked in, and every commit has its own
    # version (setuptools-scm), so a version here would be stale at once or dirty each commit;
    # `tarsdock --version` tells the build. No hyphenation, ragged right: option names and
    # paths must not be split.
    return [f'.TH {name.upper()} {section} "" "tarsdock" "{title}"', ".nh", ".ad l"]


# --- tarsdock(1) ---------------------------------------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser,
                 prefix: str) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(full name, help, parser) of each subcommand, nested ones after their parent."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield f"{prefix}{name}", helps.get(name, ""), child
                yield from _subcommands(child, f"{prefix}{name} ")


def _options(parser: argparse.ArgumentParser, skip_global: bool) -> list[str]:
    """.TP entries for a parser's own arguments."""
    formatter = parser._get_formatter()
    globals_ = {option.dest for option in GLOBAL_OPTIONS}
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if skip_global and action.dest in globals_:
            continue
        if action.option_strings:
            value = "" if action.nargs == 0 else " " + formatter._format_args(
                action, formatter._get_default_metavar_for_optional(action))
            term = ", ".join(f"\\fB{escape(flag)}\\fR" for flag in action.option_strings)
            term += escape(value)
        else:
            term = "\\fI" + escape(formatter._format_args(
                action, formatter._get_default_metavar_for_positional(action))) + "\\fR"
        help_text = formatter._expand_help(action) if action.help else ""
        lines += [".TP", term, inline(help_text)]
    return lines


def _synopsis(name: str, parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    return " ".join(usage.split()) if name else usage


def _epilog(parser: argparse.ArgumentParser) -> list[str]:
    """The epilog (what a command reads and writes) as paragraphs, one per first-column line."""
    lines: list[str] = []
    for paragraph in re.split(r"\n(?=\S)", (parser.epilog or "").strip()):
        if paragraph.strip():
            lines += [".PP", inline(" ".join(paragraph.split()))]
    return lines


def tarsdock_page(parser: argparse.ArgumentParser) -> str:
    """tarsdock(1): synopsis, global options, every subcommand with its arguments."""
    lines = [*header("tarsdock", 1, "tarsdock manual"), ".SH NAME",
             "tarsdock \\- " + escape(parser.description or ""),
             ".SH SYNOPSIS", ".B tarsdock", "[\\fB\\-\\-config\\-dir\\fR \\fIDIR\\fR]",
             "\\fICOMMAND\\fR [\\fIARGS\\fR]", ".br", ".B tarsdock \\-\\-version",
             ".SH DESCRIPTION",
             "tarsdock reads Tars templates and a node manifest (the config dir, see "
             "\\fBtarsdock\\-node.toml\\fR(5)), writes each service's final Tars config, and emits "
             "supervisord programs or systemd units that run the services in Docker containers "
             "or natively. Global options may be given before or after the subcommand.",
             ".SH GLOBAL OPTIONS", *_options(parser, skip_global=False), ".SH COMMANDS"]
    for name, help_text, child in _subcommands(parser, ""):
        lines += [".SS " + escape(name), inline(help_text), ".PP",
                  "\\fBusage:\\fR " + escape(_synopsis(name, child))]
        options = _options(child, skip_global=True)
        if options:
            lines += [".PP", "Arguments:", ".RS", *options, ".RE"]
        lines += _epilog(child)
    lines += [".SH ENVIRONMENT", ".TP", "\\fBTARSDOCK_CONFIG_DIR\\fR",
              "The config dir when \\fB\\-\\-config\\-dir\\fR is not given.",
              ".TP", "\\fBTARSDOCK_JOBS\\fR",
              "How many processes \\fBvalidate\\fR and \\fBgenerate\\fR use (at most 8; default: "
              "one per CPU on a node of 300 services or more, else 1).",
              ".SH FILES", ".TP", "\\fI/etc/tarsdock\\fR",
              "The default config dir: node.toml, services.d/*.toml, templates/.",
              ".SH EXIT STATUS", "0 success, 1 errors in the input (each names file, line and "
              "key), 2 usage errors; some commands document more in their section.",
              ".SH SEE ALSO", "\\fBtarsdock\\-node.toml\\fR(5), \\fBsupervisord\\fR(1), "
              "\\fBsystemd.service\\fR(5), \\fBdocker\\-run\\fR(1)"]
    return "\n".join(lines) + "\n"


# --- tarsdock-node.toml(5) -----------------------------------------------------------------------

def _table(rows: list[list[str]]) -> list[str]:
    """A Markdown table as one .TP entry per row: the first cell, then `Column: cell` lines."""
    head, body = rows[0], rows[2:]
    lines: list[str] = []
    for row in body:
        lines += [".TP", inline(row[0])]
        parts = [f"{head[i]}: {cell}" for i, cell in enumerate(row) if i and cell and cell != "—"]
        for i, part in enumerate(parts):
            lines += ([".br"] if i else []) + [inline(part)]
    return lines


def node_toml_page(markdown: str) -> str:
    """tarsdock-node.toml(5) from docs/node-toml.md: headings, paragraphs, code, key tables."""
    lines = [*header("tarsdock-node.toml", 5, "tarsdock manual"), ".SH NAME",
             "tarsdock\\-node.toml \\- the config dir of tarsdock: node.toml, services.d, and "
             "the <container> domain of Tars templates", ".SH DESCRIPTION"]
    paragraph: list[str] = []
    table: list[list[str]] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            lines.extend([".PP", inline(" ".join(paragraph))])
            paragraph.clear()
        if table:
            lines.extend(_table(table))
            table.clear()

    for raw in markdown.splitlines():
        if code is not None:
            if raw.startswith("```"):
                lines.extend([".PP", ".RS", ".nf", *code, ".fi", ".RE"])
                code = None
            else:
                code.append(escape(raw))
            continue
        if raw.startswith("```"):
            flush()
            code = []
        elif raw.startswith("# "):
            continue   # the title: NAME above says it
        elif raw.startswith("## "):
            flush()
            lines.append(".SH " + inline(raw[3:].upper()))
        elif raw.startswith("|"):
            if paragraph:
                flush()
            table.append([cell.strip() for cell in raw.strip().strip("|").split("|")])
        elif not raw.strip() or raw.startswith("<!--"):
            flush()
        else:
            paragraph.append(raw.strip())
    flush()
    lines += [".SH SEE ALSO", "\\fBtarsdock\\fR(1)"]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """Page file name -> its text, made now from this checkout."""
    from tarsdock.cli import build_parser  # the parser this page documents

    return {"tarsdock.1": tarsdock_page(build_parser(full=True)),
            "tarsdock-node.toml.5": node_toml_page(DOC.read_text(encoding="utf-8"))}


def main(argv: list[str] | None = None) -> int:
    """--write: regenerate plugin/tarsdock/man/; --check: exit 1 if a page is stale."""
    parser = argparse.ArgumentParser(prog="python -m tarsdock.manpages", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the pages")
    args = parser.parse_args(argv)
    stale = [name for name, text in pages().items()
             if not (MAN_DIR / name).exists()
             or (MAN_DIR / name).read_text(encoding="utf-8") != text]
    if args.write:
        MAN_DIR.mkdir(exist_ok=True)
        for name, text in pages().items():
            (MAN_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {', '.join(str(MAN_DIR / n) for n in PAGES)}")
        return 0
    for name in stale:
        print(f"stale: {MAN_DIR / name} (run python -m tarsdock.manpages --write)",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
