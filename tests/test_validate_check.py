"""validate's shards render without text (generate.check_units): each must fail exactly when
rendering the same formats fails, whatever the values, or validate would call a node good that
generate refuses. (Only whether it fails matters there: a node that fails is rendered again in
one process, whose error, with its file and line, is the one reported; test_shards checks that.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_quoting import WORD
from unit_helpers import NODE, make_service

from tarsdock.errors import Origin, TarsdockError
from tarsdock.generate import FORMATS, check_units, config_files, render_units
from tarsdock.model import NodeSettings, Service
from tarsdock.output import Context
from tarsdock.records import replace

CTX = Context(Path("/etc/tarsdock"), "/opt/tarsdock/bin", "/usr/bin/docker")
OUT = Path("/nonexistent/tarsdock-validate")
Outcome = tuple[type[BaseException], str] | None


def outcome(call: Callable[[], object]) -> Outcome:
    """None when `call` returns, else the error it raises (type and message)."""
    try:
        call()
    except TarsdockError as error:
        return type(error), str(error)
    return None


def rendered(formats: Sequence[str], services: Sequence[Service], ctx: Context) -> Outcome:
    """The first error of rendering each format's units in turn, as validate in one process."""
    return outcome(lambda: [render_units(fmt, services, ctx, OUT) for fmt in formats])


def checked(formats: Sequence[str], services: Sequence[Service], ctx: Context) -> Outcome:
    return outcome(lambda: check_units(formats, services, ctx, OUT))


def native(argv: Sequence[str], env: tuple[tuple[str, str], ...] = (),
           node: NodeSettings = NODE) -> Service:
    return make_service("Hello.Native", type="not_tars", run="native", command=tuple(argv),
                        env=env, node=node)


def container(argv: Sequence[str], env: tuple[tuple[str, str], ...] = (),
              node: NodeSettings = NODE) -> Service:
    return make_service("Hello.Boxed", type="not_tars", command=tuple(argv), env=env, node=node)


# (what, services, context, the formats whose rendering refuses them)
ROWS: list[tuple[str, list[Service], Context, set[str]]] = [
    ("every value plain", [native(["/bin/prog", "a b"]), container(["/bin/prog", "-x"])], CTX,
     set()),
    # systemd reads a leading '-' of the executable as a prefix; sh and supervisord do not
    ("only systemd: an executable read as a prefix", [native(["-oops"])], CTX, {"systemd"}),
    # Environment= rows (a native service's) refuse what systemd refuses; env(1)'s words do not
    ("only systemd: an environment name systemd refuses", [native(["/bin/p"], (("A-B", "v"),))],
     CTX, {"systemd"}),
    ("only systemd: a control character in the environment",
     [native(["/bin/p"], (("A", "x\x01y"),))], CTX, {"systemd"}),
    # configparser cuts a value at ' ;': supervisord's directory=; systemd's WorkingDirectory=
    # takes it (a node read from node.toml has no such path: a Service made here does)
    ("only supervisord: a ';' after a blank in the service's directory",
     [native(["/bin/p"], node=replace(NODE, tars_path="/srv/a ;b"))], CTX, {"supervisord"}),
    ("both: a line break in an argument", [container(["/bin/p", "a\nb"])], CTX, set(FORMATS)),
    ("both: a line break in the config dir (the header)", [native(["/bin/p"])],
     replace(CTX, config_dir=Path("/etc/a\nb")), set(FORMATS)),
    ("both: a line break in the docker CLI's path", [container(["/bin/p"])],
     replace(CTX, docker="/usr/bin/do\ncker"), set(FORMATS)),
    ("both: a container service without an image",
     [make_service("Hello.Boxed", image=None)], CTX, set(FORMATS)),
    ("the second service refused", [native(["/bin/p"]), native(["-oops"])], CTX, {"systemd"}),
]


@pytest.mark.parametrize(("services", "ctx", "refusing"), [row[1:] for row in ROWS],
                         ids=[row[0] for row in ROWS])
def test_check_units_refuses_what_rendering_refuses(services: list[Service], ctx: Context,
                                                    refusing: set[str]) -> None:
    for fmt in FORMATS:
        # the row is what it says: only the formats named refuse it
        assert (rendered((fmt,), services, ctx) is not None) == (fmt in refusing), fmt
        # one fault: the same error as rendering meets
        assert checked((fmt,), services, ctx) == rendered((fmt,), services, ctx), fmt
    assert (checked(FORMATS, services, ctx) is None) == (not refusing)
    assert (checked(FORMATS, services, ctx) is None) == (rendered(FORMATS, services, ctx) is None)


def test_check_units_of_no_format_checks_nothing() -> None:
    # the warnings' pass (formats=()) renders nothing: a container service without an image
    # must not fail it
    assert checked((), [make_service("Hello.Boxed", image=None)], CTX) is None


ENV_NAME = st.one_of(st.sampled_from(["A", "LD_LIBRARY_PATH", "A-B", "1X", ""]),
                     st.text(max_size=4))
ENV = st.lists(st.tuples(ENV_NAME, WORD), max_size=3).map(tuple)
PATH_PART = st.sampled_from(["", " ", " ;x", "#", "a\nb", "%n", "$x", "-", "é"])


@settings(max_examples=150, deadline=None)
@given(argv=st.lists(WORD, max_size=5), env=ENV, run=st.sampled_from(["native", "container"]),
       scripts=PATH_PART, docker=PATH_PART, config=PATH_PART, tars=PATH_PART)
def test_check_units_fails_exactly_when_rendering_fails(argv: list[str],
                                                        env: tuple[tuple[str, str], ...],
                                                        run: str, scripts: str, docker: str,
                                                        config: str, tars: str) -> None:
    node = replace(NODE, tars_path=f"/srv/t{tars}")
    service = make_service("Hello.Any", type="not_tars", run=run, command=tuple(argv), env=env,
                           node=node)
    ctx = Context(Path(f"/etc/c{config}"), f"/opt/s{scripts}", f"/usr/bin/d{docker}")
    for formats in [(fmt,) for fmt in FORMATS] + [FORMATS]:
        assert (checked(formats, [service], ctx) is None) == \
            (rendered(formats, [service], ctx) is None), formats



SOURCE = st.sampled_from(["node.toml", "services.d/a b.toml", "x\ny", "%n", " #"])


@settings(max_examples=100, deadline=None)
@given(config=PATH_PART, source=SOURCE, template=SOURCE)
def test_what_check_units_accepts_the_config_files_accept(config: str, source: str,
                                                          template: str) -> None:
    # validate leaves the service config files out (configs=False): their text is a serialized
    # config, which cannot fail, under a header of the same config dir and sources as the
    # service's units, which check_units checks
    base = make_service("Hello.Any")
    service = replace(base, spec=replace(base.spec, template=template,
                                         origin=Origin(source, 1)))
    ctx = replace(CTX, config_dir=Path(f"/etc/c{config}"))
    if checked(FORMATS, [service], ctx) is None:
        assert outcome(lambda: config_files([service], ctx)) is None
    else:   # so that the implication above is tried both ways
        assert outcome(lambda: config_files([service], ctx)) is not None
