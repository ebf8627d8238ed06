"""sh word rules: tarsdock's words are the words /bin/sh makes of the same text (tarsnode runs
its tars_start.sh with sh), and what needs a shell at run time is refused with the reason."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tarsdock import shwords


def sh_words(text: str) -> list[str]:
    """The words the system's sh makes of `text` (globbing off: tarsdock passes `*` literally)."""
    script = f"set -f; set -- {text}\nfor w; do printf '%s\\0' \"$w\"; done"
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


SAME_AS_SH = [
    "LANG=C.UTF-8",
    'LANG="C.UTF-8"',
    "LANG='C.UTF-8'",
    '-XX:OnOutOfMemoryError="kill -9 %p" -Xmx1g',
    "-Dname='a b' -Dx=1",
    r"-Da=b\ c",
    '"a"b\'c\'d',
    '""',
    "a  \t b",
    r'"a\"b" "c\\d" "e\x"',
    "x#y",
    "a=~",
    "-cp /a:/b/*",
    "cost=5$",
    "a$ b",
    "'$HOME' '`x`'",
]


@pytest.mark.parametrize("text", SAME_AS_SH)
def test_words_are_those_of_sh(text: str) -> None:
    assert shwords.problem(text) == ""
    assert shwords.split(text) == sh_words(text)


@given(st.text(alphabet="ab =-'\"\\\t$#~*:/", max_size=14))
@settings(max_examples=150, deadline=None)
def test_any_accepted_text_splits_as_sh_does(text: str) -> None:
    if shwords.problem(text) == "":
        assert shwords.split(text) == sh_words(text)


@given(st.text(max_size=20) | st.text(alphabet="aZ09_=-.:/,@%+*!?^é\u00a0'\"$#~ ", max_size=12))
@settings(max_examples=500, deadline=None)
def test_a_plain_text_is_its_own_word_as_the_full_rules_say(text: str) -> None:
    if shwords.PLAIN.fullmatch(text):
        assert shwords.problem(text) == shwords.problem(text, one_word=True) == ""
        assert shlex.split(text, comments=False, posix=True) == ([text] if text else [])
        assert shwords.split(text) == ([text] if text else [])
        assert shwords.one_word(text) == text


REFUSED = [
    ("PATH=$PATH:/x", "'$PATH' is expanded by sh"),
    ("HOME=${HOME}/x", "'${HOME}' is expanded by sh"),
    ('A="$1"', "'$1' is expanded"),
    ("A=$(hostname)", "'$(hostname)' is a command substitution"),
    ("A=`hostname`", "'`' starts a command substitution"),
    ('A="x`id`"', "'`' starts a command substitution"),
    ("a && b", "unquoted '&' is a sh operator"),
    ("a (b)", "unquoted '(' is a sh operator"),
    ("-Xmx1g #comment", "begins a sh comment"),
    ("~/gc.log", "'~' starting a word"),
    ("'open", "unterminated ' quote"),
    ('"open', 'unterminated " quote'),
    ("end\\", "trailing backslash"),
    ("a\rb", "control character U+000D"),
    ("a\nb", "control character U+000A"),
    ('"a\\$b"', "inside double quotes"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_what_needs_a_shell_is_refused(text: str, reason: str) -> None:
    assert reason in shwords.problem(text)
    with pytest.raises(shwords.ShellNeeded) as refused:
        shwords.split(text)
    assert reason in str(refused.value)


def test_an_unquoted_blank_in_an_export_item_is_refused() -> None:
    assert shwords.one_word('A="x y"') == "A=x y"
    with pytest.raises(shwords.ShellNeeded, match=shwords.BLANK):
        shwords.one_word("A=x y")


@pytest.mark.parametrize(("text", "said"), [
    ("PATH=$PATH:/x", "PATH=<PATH of tarsnode's environment or the image's>:/x"),
    ("A=${B}c", "A=<B of tarsnode's environment or the image's>c"),
    # sh expands nothing in single quotes, `\$` in double quotes is a `$`, and a blank makes a
    # second export: the substitution would say something sh does not do, so nothing is said
    ("A='$X' y", ""),
    ('B="\\${X}"', ""),
    ("A=\\$X", ""),
    ("PATH=$PATH:/x y", ""),
])
def test_what_tarsnode_would_have_exported_is_said_only_when_certain(text: str, said: str) -> None:
    assert shwords.under_tarsnode(text) == said


def sh_export(item: str) -> str:
    """What /bin/sh's `export ITEM` (tarsnode's tars_start.sh line) gives the variable A."""
    script = f"set -f; export {item}\nprintf '%s' \"$A\""
    return subprocess.run(["sh", "-c", script], capture_output=True, check=True,
                          env={"HOME": "/home/tarsnode"}).stdout.decode()


@pytest.mark.parametrize("item", ["A=~", "A=~/x", "A=x:~/y", "A=/a:~", 'A="x":~/y', "A=~root"])
def test_a_tilde_sh_expands_in_an_export_item_is_refused(item: str) -> None:
    """dash and bash expand an unquoted `~` after the assignment's `=` and after a `:` of its value
    (found by hand: `env=HOME=~/x` gave the service `~/x` where tarsnode's sh exports /root/x)."""
    assert sh_export(item) != item.partition("=")[2].replace('"', "")
    with pytest.raises(shwords.ShellNeeded, match="'~' after"):
        shwords.export_item(item)


@pytest.mark.parametrize("item", ["A=a~b", "A='~/x'", 'A="~"', "A=a=~/x", "A=x\\:~", "A=\\~",
                                  "A=x~:y"])
def test_a_tilde_sh_leaves_in_an_export_item_is_kept(item: str) -> None:
    assert shwords.export_item(item) == "A=" + sh_export(item)


@given(st.text(alphabet="a=~:/'\"\\ ", max_size=10))
@settings(max_examples=300, deadline=None)
def test_any_accepted_export_item_is_what_sh_exports(value: str) -> None:
    item = "A=" + value
    try:
        word = shwords.export_item(item)
    except shwords.ShellNeeded:
        return
    assert word == "A=" + sh_export(item)
