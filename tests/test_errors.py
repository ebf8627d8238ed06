"""Errors and warnings read one line each, whatever a value, key or file name holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tarsdock.errors import InputError, InputErrors, InputWarning, Origin, one_line

ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)))


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_one_line_escapes_only_what_is_not_printable(text: str) -> None:
    shown = one_line(text)
    assert shown.isprintable()   # no line break (nor \r, \x85, \u2028), tab or control character
    if text.isprintable():
        assert shown == text
    else:
        # each character that is not printable is its Python escape; the rest as they are
        assert shown == "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, st.integers(0, 99), st.one_of(st.none(), ANY_TEXT), ANY_TEXT)
def test_every_error_and_warning_is_one_line(path: str, line: int, key: str | None,
                                             message: str) -> None:
    error = InputError(Origin(path, line), message, key)
    warning = InputWarning(Origin(path, line), message, key)
    for text in (str(error), str(warning)):
        assert len(f"{text}\n".splitlines()) == 1, text
    # several: one line each
    both = InputErrors([error, InputError(Origin("node.toml", 3), "x\ny")])
    assert len(str(both).splitlines()) == len(both.errors)


def test_a_value_with_a_line_break_is_shown_escaped() -> None:
    error = InputError(Origin("services.d/a\nb.toml", 4), "bad value '1g\nx'", "k\tey")
    assert str(error) == "services.d/a\\nb.toml:4: key 'k\\tey': bad value '1g\\nx'"
