"""The TC_Config engine against TarsCpp's rules and the real templates in ../shared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shared_templates import SHARED_TEMPLATES

from tarsdock import tcconfig
from tarsdock.errors import InputErrors, Origin
from tarsdock.templates import Template, TemplateSet

SHARED = SHARED_TEMPLATES
REAL_TEMPLATES = sorted(p for p in SHARED.rglob("tars.*") if p.is_file())


def real_chain() -> TemplateSet:
    templates = {
        path.name: Template(path.name, tcconfig.parse(path.read_text(encoding="utf-8"),
                                                      f"tars-templates/{path.name}"),
                            Origin(f"tars-templates/{path.name}"))
        for path in SHARED.glob("tars.*")
    }
    parents = {"tars.springboot": ("tars.tarsjava.default", Origin("node.toml", 3))}
    return TemplateSet(templates, parents)


def test_the_shared_templates_are_there() -> None:
    assert len(REAL_TEMPLATES) >= 12


@pytest.mark.parametrize("path", REAL_TEMPLATES, ids=lambda p: p.name)
def test_every_real_template_parses_and_round_trips(path: Path) -> None:
    config = tcconfig.parse(path.read_text(encoding="utf-8"), path.name)
    text = tcconfig.serialize(config)
    assert text and text.endswith("\n")
    assert tcconfig.serialize(tcconfig.parse(text, "again")) == text


def test_springboot_chain_resolves_with_concrete_values() -> None:
    config = real_chain().resolve("tars.springboot", Origin("test"))
    server = "/tars/application/server"
    assert config.get(f"{server}<mainclass>") == "-jar ${basepath}/${app}.${server}.jar"
    assert config.get(f"{server}<packageFormat>") == "jar"
    jvm = config.get(f"{server}<jvmparams>") or ""
    assert "-Dcom.sun.management.jmxremote.ssl=false" in jvm
    assert "-XX:ErrorFile=${logpath}/${app}/${server}/jvm_error.log" in jvm
    assert "jvmparams=-Dcom.sun.management.jmxremote.ssl\\=false" in tcconfig.serialize(config)
    assert config.get(f"{server}<logsize>") == "15M"          # tarsjava overrides tars.default
    assert config.get(f"{server}<lognum>") == "10"            # only tars.default has it
    assert config.get("/tars/application/client<sync-invoke-timeout>") == "20000"
    param = config.param(f"{server}<mainclass>")
    assert param is not None and param.origin == Origin("tars-templates/tars.springboot", 5)


def test_chain_order_child_keys_move_to_the_end() -> None:
    config = real_chain().resolve("tars.springboot", Origin("test"))
    keys = list(config.domain("/tars/application/server").params)  # type: ignore[union-attr]
    assert keys[-2:] == ["packageFormat", "mainclass"]


TOSTR_INPUT = """\
# a comment
rootkey = dropped
<zeta>
  z=1
</zeta>
<alpha>
   <inner>
      x = 1
   </inner>
   k = v # not a comment
   line-only entry
   tab\\tkey = a\\=b
   k = again
</alpha>
<alpha>
  <inner>
    y=2
  </inner>
  <second>
  </second>
  empty =
</alpha>
"""
TOSTR_EXPECTED = """\
<alpha>
  line-only entry
  tab\\tkey=a\\=b
  k=again
  empty
  <inner>
    x=1
    y=2
  </inner>
  <second>
  </second>
</alpha>
<zeta>
  z=1
</zeta>
"""


def test_tostr_is_byte_exact() -> None:
    assert tcconfig.serialize(tcconfig.parse(TOSTR_INPUT, "t")) == TOSTR_EXPECTED


def test_merge_keeps_origins_and_higher_wins() -> None:
    lower = tcconfig.parse("<a>\nk=1\nonly=low\n</a>\n", "low")
    higher = tcconfig.parse("<a>\nk=2\n</a>\n", "high")
    merged = tcconfig.merge(lower, higher)
    assert tcconfig.serialize(merged) == "<a>\n  only=low\n  k=2\n</a>\n"
    assert merged.param("/a<k>") == tcconfig.Param("2", Origin("high", 2))
    assert merged.param("/a<only>") == tcconfig.Param("low", Origin("low", 3))


def test_lookups() -> None:
    config = tcconfig.parse("<a>\n<b>\nz=1\ny\nx=a\\=b\n</b>\n</a>\n", "t")
    assert config.lines("/a/b") == ["z=1", "y", "x=a\\=b"]
    assert config.domain_map("/a/b") == {"x": "a=b", "y": "", "z": "1"}
    assert config.get("/a/b<missing>", "dflt") == "dflt"
    assert config.domain("/a/nope") is None


def test_macros_are_escaped_and_unknown_ones_stay() -> None:
    text = tcconfig.substitute_macros("k=${a} ${unknown}", {"a": "x=y\\z"})
    assert text == "k=x\\=y\\\\z ${unknown}"
    assert tcconfig.parse(f"<d>\n{text}\n</d>", "t").get("/d<k>") == "x=y\\z ${unknown}"


BAD = [
    ("<a>k=1</a>\n", "t:1: <a> is never closed"),
    ("<a>\n<b>\n</a>\n", "t:3: <b> closed by </a>"),
    ("<a>\n", "t:1: <a> is never closed"),
    ("</a>\n", "t:1: </a> closes no open domain"),
    ("<a\n", "t:1: tag '<a' has no '>'"),
    ("<a>\npath=C:\\data\n</a>\n", "t:2: key 'path': bad escape '\\d'"),
    ("<a>\nk=x\\\n</a>\n", "t:2: key 'k': trailing '\\'"),
    ("<a>\nk=1 < 2\n</a>\n", "t:2: key 'k': '<' in '1 < 2' cannot be written back"),
    ("<a>\nk=1 > 2\n</a>\n", "t:2: key 'k': '>' in '1 > 2' cannot be written back"),
    ("<a>\n=v\n</a>\n", "t:2: a parameter line with no key"),
    ("<a=b>\n</a=b>\n", "t:1: domain name 'a=b' contains '='"),
    ("<>\n</>\n", "t:1: empty domain name"),
    ("<a>\nk\\\\ = 1\n</a>\n", "t:2: key 'k\\\\': key 'k\\' ends in '\\'"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(InputErrors) as raised:
        tcconfig.parse(text, "t")
    assert message in str(raised.value)


def test_all_value_errors_of_a_file_are_reported() -> None:
    with pytest.raises(InputErrors) as raised:
        tcconfig.parse("<a>\nx=\\q\ny=<\n</a>\n", "t")
    assert [str(e).split(":")[1] for e in raised.value.errors] == ["2", "3"]


def test_line_numbers_start_where_the_text_starts() -> None:
    with pytest.raises(InputErrors, match=r"node\.toml:12: key 'k'"):
        tcconfig.parse("<a>\nk=\\q\n</a>", "node.toml", first_line=11)


# --- properties -----------------------------------------------------------------------------
WORD = st.text(st.characters(codec="utf-8", exclude_characters="<>/\x00"), min_size=1, max_size=8)
NAME = WORD.filter(lambda s: s.strip(tcconfig.TRIM) == s and not set(s) & tcconfig.NAME_FORBIDDEN)
VALUE = st.text(st.characters(codec="utf-8", exclude_characters="<>\x00"), max_size=12)


def _writable(key: str, value: str) -> bool:
    # a key must survive trimming and must not look like a comment or a tag when written
    written = tcconfig.escape(key)
    return written == written.strip(" ") and not written.startswith("#") and \
        tcconfig.escape(value).strip(" ") == tcconfig.escape(value) and \
        tcconfig.write_problem(key, value) is None


@st.composite
def configs(draw: st.DrawFn, depth: int = 0) -> tcconfig.Config:
    config = tcconfig.Config(draw(NAME) if depth else "", Origin("gen"))
    for key, value in draw(st.lists(st.tuples(WORD, VALUE), max_size=4)):
        if _writable(key, value):
            config.set(key, tcconfig.Param(value, Origin("gen")))
    if depth < 3:
        for sub in draw(st.lists(configs(depth + 1), max_size=3)):
            config.domains.setdefault(sub.name, sub)
    if not depth:
        config.params.clear()
    return config


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parser_returns_a_result_or_its_own_error(text: str) -> None:
    try:
        tcconfig.parse(text, "fuzz")
    except InputErrors as errors:
        assert all(str(e).startswith("fuzz:") for e in errors.errors)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<a>", "</a>", "<b>", "</b>", "k=v", "k", "x=\\=", "#c", "",
                                 "  j = w  ", "<a>k=1</a>", "=", "v=\\n"]), max_size=30))
def test_parser_on_config_like_text(lines: list[str]) -> None:
    try:
        text = tcconfig.serialize(tcconfig.parse("\n".join(lines), "fuzz"))
    except InputErrors:
        return
    assert tcconfig.serialize(tcconfig.parse(text, "again")) == text


@settings(max_examples=300, deadline=None)
@given(configs())
def test_serialize_parse_serialize_is_a_fixed_point(config: tcconfig.Config) -> None:
    text = tcconfig.serialize(config)
    assert tcconfig.serialize(tcconfig.parse(text, "rt")) == text


@settings(max_examples=300, deadline=None)
@given(configs(), configs())
def test_merge_is_exactly_join_config(lower: tcconfig.Config, higher: tcconfig.Config) -> None:
    joined = tcconfig.parse(tcconfig.serialize(lower) + tcconfig.serialize(higher), "join")
    assert tcconfig.serialize(tcconfig.merge(lower, higher)) == tcconfig.serialize(joined)


def shape(config: tcconfig.Config) -> tuple[object, ...]:
    """Everything a tree holds, in order: names, origins, parameters, replaced keys, domains."""
    return (config.name, config.origin, tuple(config.params.items()), config.replaced,
            tuple((name, shape(sub)) for name, sub in config.domains.items()))


CONFIG_LINES = st.lists(st.sampled_from(["<a>", "</a>", "<b>", "</b>", "<c>", "</c>", "k=v",
                                         "k=w", "j", "x=\\=", "<a>k=1</a>", "m=${a}"]),
                        max_size=30)


def parsed(lines: list[str], path: str) -> tcconfig.Config | None:
    try:
        return tcconfig.parse("\n".join(lines), path)
    except InputErrors:
        return None


@settings(max_examples=300, deadline=None)
@given(CONFIG_LINES, CONFIG_LINES)
def test_join_is_merge_with_sharing(low: list[str], high: list[str]) -> None:
    lower, higher = parsed(low, "low"), parsed(high, "high")
    if lower is None or higher is None:
        return
    before = (shape(lower), shape(higher))
    assert shape(tcconfig.join(lower, higher)) == shape(tcconfig.merge(lower, higher))
    assert (shape(lower), shape(higher)) == before      # the inputs are never changed


MACRO_TEXT = st.lists(st.sampled_from(["${a}", "${b}", "${zz}", "${", "{", "}", "x", "${a", "{a}",
                                       "$", "${}", "{0}", "${a.b}"]), max_size=6).map("".join)
NAMES = frozenset({"a", "b"})


def substituted(config: tcconfig.Config, values: dict[str, str]) -> tcconfig.Config:
    """What resolve did before Filler: re.sub over every value of a copy."""
    def one(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    copy = tcconfig.Config(config.name, config.origin, {
        key: tcconfig.Param(tcconfig.MACRO.sub(one, p.value), p.origin)
        for key, p in config.params.items()},
        {name: substituted(sub, values) for name, sub in config.domains.items()})
    copy.replaced = config.replaced
    return copy


def config_of(items: list[tuple[str, str, str]]) -> tcconfig.Config:
    """A config of (domain path, key, value) items, each at its own line of "gen"."""
    config = tcconfig.Config("", Origin("gen"))
    for line, (where, key, value) in enumerate(items):
        domain = config
        for part in filter(None, where.split("/")):
            domain = domain.subdomain(part, Origin("gen", line))
        domain.set(key, tcconfig.Param(value, Origin("gen", line)))
    return config


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "d", "d/e", "f", "a", "a/b"]),
                          st.sampled_from("kmn"), MACRO_TEXT), max_size=8),
       MACRO_TEXT, MACRO_TEXT, CONFIG_LINES)
@example([("a", "k", "${a}"), ("a", "m", "x${b}"), ("a/b", "n", "${b}")], "1", "2",
         ["<a>", "k=v", "j", "<b>", "</b>", "</a>"])
def test_filler_substitutes_like_re_sub(items: list[tuple[str, str, str]], a: str, b: str,
                                        low: list[str]) -> None:
    config = config_of(items)
    values = {"a": a, "b": b}
    before = shape(config)
    filler = tcconfig.Filler(config, NAMES)
    assert shape(filler.fill(values)) == shape(substituted(config, values))
    assert shape(filler.fill({"a": b, "b": a})) == shape(substituted(config, {"a": b, "b": a}))
    assert shape(config) == before
    lower = parsed(low, "low")
    if lower is not None:     # fill(under=) is join(under, fill()) in one pass
        lower_before = shape(lower)
        assert shape(filler.fill(values, under=lower)) == shape(
            tcconfig.join(lower, filler.fill(values)))
        assert (shape(lower), shape(config)) == (lower_before, before)
    for _, _, value in items:
        assert tcconfig.fill(value, values, NAMES) == substituted(
            tcconfig.Config("", Origin("gen"), {"k": tcconfig.Param(value, Origin("gen"))}),
            values).params["k"].value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "d", "d/e"]), st.sampled_from("kmn"), MACRO_TEXT),
                max_size=6),
       st.lists(st.tuples(st.sampled_from(["1", "2", "", "{a}", "${b}"]),
                          st.sampled_from(["1", "2", "x\\y"])), min_size=1, max_size=6))
@example([("d", "k", "${a}"), ("d", "m", "${a}x${a}"), ("", "n", "${b}${zz}")],
         [("1", "1"), ("1", "2"), ("2", "2"), ("1", "2")])
def test_a_filler_used_again_fills_each_service_with_its_own_values(
        items: list[tuple[str, str, str]], runs: list[tuple[str, str]]) -> None:
    # a filled parameter whose one macro has the value it had last time is the one made then:
    # every fill of a sequence must still be what re.sub gives with that fill's values
    config = config_of(items)
    filler = tcconfig.Filler(config, NAMES)
    for a, b in runs:
        values = {"a": a, "b": b}
        assert shape(filler.fill(values)) == shape(substituted(config, values))


def parsed_or_errors(text: str) -> object:
    try:
        return shape(tcconfig.parse(text, "t"))
    except InputErrors as errors:
        return [str(e) for e in errors.errors]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text("ab= \t\\<>#/\r", max_size=8).map(lambda s: f"<d>\n{s}\n</d>")
                | st.text("ab= \t\\<>#/\n", max_size=12), max_size=5).map("\n".join))
def test_plain_lines_parse_as_the_escaping_path_parses_them(text: str) -> None:
    fast = parsed_or_errors(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tcconfig._Parser, "_param", tcconfig._Parser._escaped_param)
        assert parsed_or_errors(text) == fast


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("ab=\\\r\n\t <>é")))
def test_escape_is_tarscpp_reverse_parse(text: str) -> None:
    # reverse_parse: each of \\ \r \n \t = becomes a backslash pair, nothing else changes
    assert tcconfig.escape(text) == "".join(tcconfig.ESCAPES.get(c, c) for c in text)
    assert tcconfig.unescape(tcconfig.escape(text)) == text
