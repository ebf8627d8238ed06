"""Tars endpoint and proxy syntax."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarsdock.endpoint import Endpoint, EndpointError, _parse, parse_endpoint, parse_proxy


def test_full_endpoint() -> None:
    ep = parse_endpoint("tcp -h 10.0.0.5 -p 20001 -t 60000")
    assert ep == Endpoint("tcp", "10.0.0.5", 20001, 60000)
    assert ep.format() == "tcp -h 10.0.0.5 -p 20001 -t 60000"


def test_defaults_and_extra_options() -> None:
    ep = parse_endpoint("  udp  -p 53 -h 0.0.0.0 -e 1 -g 2 ")
    assert (ep.transport, ep.host, ep.port, ep.timeout) == ("udp", "0.0.0.0", 53, 3000)
    assert ep.extra == (("g", 2), ("e", 1))
    assert ep.format() == "udp -h 0.0.0.0 -p 53 -t 3000 -g 2 -e 1"


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty endpoint"),
    ("http -h a -p 1", "must start with tcp, udp or ssl"),
    ("tcp -h a", "needs both -h HOST and -p PORT"),
    ("tcp -p 80", "needs both -h HOST and -p PORT"),
    ("tcp -h a -p 80 -x 1", "unknown option '-x'"),
    ("tcp -h a -P 80", "unknown option '-P'"),
    ("tcp -h a -p", "option '-p' has no value"),
    ("tcp -h a -p eighty", "-p needs an integer"),
    ("tcp -h a -p 0", "port 0 is not in 1..65535"),
    ("tcp -h a -p 65536", "port 65536 is not in 1..65535"),
    ("tcp -h a -p 1 -t -5", "timeout -5 is negative"),
    ("tcp -h a -p 1 -e 2", "-e must be 0 or 1"),
    ("tcp -h a -p 1 -h b", "option '-h' given twice"),
    ("tcp -h a;b -p 1", "bad host 'a;b'"),
])
def test_bad_endpoints(text: str, problem: str) -> None:
    with pytest.raises(EndpointError, match=problem):
        parse_endpoint(text)


def test_proxy_with_two_endpoints() -> None:
    servant, eps = parse_proxy(
        "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890:tcp -h 10.0.0.2 -p 17890")
    assert servant == "tars.tarsregistry.QueryObj"
    assert [e.host for e in eps] == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize(("text", "problem"), [
    ("QueryObj@tcp -h a -p 1", "not a servant name"),
    ("a.b.QueryObj", "needs '@'"),
    ("a.b.QueryObj@", "needs '@'"),
    ("a.b.QueryObj@tcp -h a", "needs both -h HOST and -p PORT"),
])
def test_bad_proxies(text: str, problem: str) -> None:
    with pytest.raises(EndpointError, match=problem):
        parse_proxy(text)


@given(
    transport=st.sampled_from(["tcp", "udp", "ssl"]),
    host=st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True),
    port=st.integers(1, 65535),
    timeout=st.integers(0, 10**6),
)
def test_format_round_trips(transport: str, host: str, port: int, timeout: int) -> None:
    ep = Endpoint(transport, host, port, timeout)
    assert parse_endpoint(ep.format()) == ep


@given(st.text())
def test_any_text_parses_or_raises_endpoint_error(text: str) -> None:
    try:
        ep = parse_endpoint(text)
    except EndpointError:
        return
    assert parse_endpoint(ep.format()) == ep



SPACE = st.sampled_from([" "] * 6 + ["  ", "\t", "\n", "\u00a0", "\u2003", "", "\x1c"])


def slot(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """A word of `T -h H -p P -t N`: mostly valid, so the common form and its near misses."""
    return st.sampled_from(valid * 3) | st.sampled_from(valid + invalid)


SLOTS = [slot(["tcp", "udp", "ssl"], ["tls", "-h", ""]), slot(["-h"], ["-p", "-e", "-H"]),
         slot(["10.0.0.5", "host_1", "*"], ["a/b", "", "-p", "é"]), slot(["-p"], ["-h", "-t"]),
         slot(["1", "65535", "80"], ["65536", "0", "-1", "007", "x1", "٣", "99999999999"]),
         slot(["-t"], ["-e", "-p", "", "-g"]), slot(["60000", "0", "1"], ["-5", "1x", ""])]


def parsed_or_error(parse: Callable[[str], Endpoint], text: str) -> object:
    try:
        return parse(text)
    except EndpointError as error:
        return str(error)


@settings(max_examples=1000, deadline=None)
@given(st.tuples(*SLOTS), st.lists(SPACE, min_size=8, max_size=8), st.integers(0, 7))
def test_the_common_form_parses_as_the_general_parser_does(
        words: tuple[str, ...], spaces: list[str], cut: int) -> None:
    text = spaces[0] + "".join(w + s for w, s in zip(words[:cut or 7], spaces[1:], strict=False))
    assert parsed_or_error(parse_endpoint.__wrapped__, text) == parsed_or_error(_parse, text)
