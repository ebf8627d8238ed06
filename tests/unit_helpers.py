"""A factory for Service objects in unit tests, without a config dir."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
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
                   env=env, container=container,
                   stop_timeout=stop_timeout, package=package)


# --- how the targets read our files back ----------------------------------------------------

SYSTEMD_WHITESPACE = " \t\n\r"
SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                  "\\": "\\", '"': '"', "'": "'", "s": " "}
HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def _cunescape_one(text: str, i: int) -> tuple[str, int]:
    """systemd cunescape_one() (src/basic/escape.c): the char and how many input chars it used."""
    c = text[i]
    if c in SIMPLE_ESCAPES:
        return SIMPLE_ESCAPES[c], 1
    if c in HEX_ESCAPES:
        digits = text[i + 1:i + 1 + HEX_ESCAPES[c]]
        if len(digits) != HEX_ESCAPES[c] or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise ValueError(f"bad \\{c} escape")
        if int(digits, 16) == 0:
            raise ValueError("\\x00 is refused")
        return chr(int(digits, 16)), 1 + len(digits)
    if c in "01234567":
        digits = text[i:i + 3]
        if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) == 0:
            raise ValueError("bad octal escape")
        return chr(int(digits, 8)), 3
    raise ValueError(f"unknown escape \\{c}")


def extract_first_word(text: str, i: int) -> tuple[str | None, int]:
    """systemd extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE), separators = WHITESPACE.

    Follows src/basic/extract-word.c (systemd/systemd): skip separators; then, outside quotes,
    a quote opens, a backslash escapes (C escapes), whitespace ends the word; inside quotes only
    the same quote closes and a backslash still escapes. Unbalanced quotes and bad escapes fail.
    """
    n = len(text)
    while i < n and text[i] in SYSTEMD_WHITESPACE:
        i += 1
    if i >= n:
        return None, n
    word: list[str] = []
    quote = ""
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("trailing backslash")
            char, used = _cunescape_one(text, i + 1)
            word.append(char)
            i += 1 + used
        elif quote:
            if c == quote:
                quote = ""
            else:
                word.append(c)
            i += 1
        elif c in "'\"":
            quote = c
            i += 1
        elif c in SYSTEMD_WHITESPACE:
            break
        else:
            word.append(c)
            i += 1
    if quote:
        raise ValueError("unbalanced quoting")
    return "".join(word), i


def _undouble(word: str, char: str, what: str) -> str:
    """Turn `cc` into `c`; a lone `c` would start an expansion we never write."""
    out, i = [], 0
    while i < len(word):
        if word[i] == char:
            if word[i + 1:i + 2] != char:
                raise ValueError(f"{what} {word[i:i + 3]}... would be expanded")
            out.append(char)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _systemd_specifiers(word: str) -> str:
    """Specifier expansion as far as our files may need it: only `%%`."""
    return _undouble(word, "%", "specifier")


def _systemd_env_expand(word: str) -> str:
    """replace_env() at exec time as far as our files may need it: only `$$`."""
    return _undouble(word, "$", "variable")


def systemd_exec_argv(value: str) -> list[str]:
    """An Exec*= value as systemd runs it (config_parse_exec, src/core/load-fragment.c)."""
    value = value.strip(SYSTEMD_WHITESPACE)
    if value.endswith("\\"):
        raise ValueError("line continuation")
    if value[:1] == "-":
        value = value[1:]
    words: list[str] = []
    i = 0
    while True:
        rest = value[i:].lstrip(SYSTEMD_WHITESPACE)
        # config_parse_exec looks for an unquoted `;` or `\;` word before extracting.
        if rest[:1] == ";" and rest[1:2] in ("", *SYSTEMD_WHITESPACE):
            raise ValueError("a lone ; separates commands")
        word, i = extract_first_word(value, i)
        if word is None:
            return words
        words.append(_systemd_env_expand(_systemd_specifiers(word)))


def systemd_environment(value: str) -> tuple[str, str]:
    """An Environment= value holding one assignment (config_parse_environ)."""
    word, i = extract_first_word(value.strip(), 0)
    assert word is not None and extract_first_word(value.strip(), i)[0] is None
    name, _, val = _systemd_specifiers(word).partition("=")
    return name, val


def systemd_keys(text: str) -> list[tuple[str, str, str]]:
    """(section, key, raw value) of every assignment in a unit file."""
    section, rows = "", []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        rows.append((section, key.strip(), value.strip()))
    return rows


def supervisor_program(text: str, tmp_dir: Path, program: str) -> dict[str, str]:
    """A program section read by supervisor's own config reader, values expanded."""
    from supervisor.options import ServerOptions, UnhosedConfigParser

    path = tmp_dir / "program.conf"
    path.write_text(text, encoding="utf-8")
    parser = UnhosedConfigParser()
    with path.open(encoding="utf-8") as stream:
        parser.read_file(stream)
    section = f"program:{program}"
    values = {key: parser.saneget(section, key, expansions={"here": str(tmp_dir)})
              for key in parser.options(section)}
    # supervisor checks that log dirs exist; the one in the file belongs to the service.
    parser.set(section, "stdout_logfile", str(tmp_dir / "stdout.log"))
    options = ServerOptions()
    options.here = str(tmp_dir)
    config = options.processes_from_section(parser, section, program)[0]
    values["command"] = config.command
    return values


# What tarsdock-run takes from a run file: these variables, then the positional parameters.
RUN_VARS = ("mode", "timeout", "docker", "instance", "state", "image", "memory", "admin",
            "tarsdock", "signals", "pull", "config", "pulltimeout", "DOCKER_HOST")


def read_run_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """The variables (RUN_VARS, set ones only) and argv a run file sets, as a real sh reads it."""
    values = " ".join(f'"${{{name}-}}" "${{{name}+set}}"' for name in RUN_VARS)
    script = f'. "$1"; printf "%s\\0" {values} "$@"'
    out = subprocess.run(["/bin/sh", "-c", script, "sh", str(path)], check=True,
                         capture_output=True, env={"PATH": "/usr/bin:/bin"}).stdout
    words = out.decode("utf-8", "surrogateescape").split("\0")[:-1]
    pairs = zip(words[0:2 * len(RUN_VARS):2], words[1:2 * len(RUN_VARS):2], strict=True)
    variables = {name: value for name, (value, is_set) in zip(RUN_VARS, pairs, strict=True)
                 if is_set}
    return variables, words[2 * len(RUN_VARS):]


def supervisor_argv(text: str, tmp_dir: Path, program: str) -> list[str]:
    """The argv supervisord would exec for a program (process.py get_execv_args)."""
    return shlex.split(supervisor_program(text, tmp_dir, program)["command"])


def wrapper_settings_argv(argv: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """(settings, ARGs) of a unit's `tarsdock-run NAME - K=V... -- ARG...`, else None."""
    if not argv or not argv[0].endswith("/tarsdock-run") or argv[2:3] != ["-"]:
        return None
    rest = argv[3:]
    end = rest.index("--") if "--" in rest else len(rest)
    settings = dict(word.split("=", 1) for word in rest[:end])
    return settings, rest[end + 1:]
