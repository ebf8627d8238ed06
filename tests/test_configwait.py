"""wait_for_config: the node's daemons wait out a config dir that does not load (tester's D4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tarsdock.configwait import wait_for_config
from tarsdock.errors import InputError, InputErrors, Origin

TYPO = InputErrors([InputError(Origin("node.toml", 6), "unknown key", "nodeport")])
OTHER = InputErrors([InputError(Origin("node.toml", 2), "not a string", "name")])


def loader(*outcomes: object) -> Callable[[], str]:
    """A load that raises or returns each outcome in turn."""
    left = list(outcomes)

    def load() -> str:
        outcome = left.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)
    return load


def test_a_good_config_dir_is_loaded_at_once_without_a_word() -> None:
    said: list[str] = []
    slept: list[float] = []
    assert wait_for_config(loader("manifest"), said.append, sleep=slept.append) == "manifest"
    assert said == [] and slept == []


def test_an_error_is_said_once_while_it_lasts_and_the_fix_once() -> None:
    said: list[str] = []
    slept: list[float] = []
    load = loader(TYPO, TYPO, TYPO, TYPO, TYPO, TYPO, "manifest")
    assert wait_for_config(load, said.append, sleep=slept.append, maximum=10) == "manifest"
    assert said == ["cannot read the config (trying again every 10 s at most until it reads):\n"
                    "node.toml:6: key 'nodeport': unknown key", "the config reads again"]
    assert slept == [1, 2, 4, 8, 10, 10]


def test_a_changed_error_is_said_and_tried_again_soon() -> None:
    said: list[str] = []
    slept: list[float] = []
    load = loader(TYPO, TYPO, TYPO, OTHER, TYPO, "manifest")
    wait_for_config(load, said.append, sleep=slept.append)
    assert [line.splitlines()[-1] for line in said] == [
        "node.toml:6: key 'nodeport': unknown key", "node.toml:2: key 'name': not a string",
        "node.toml:6: key 'nodeport': unknown key", "the config reads again"]
    assert slept == [1, 2, 4, 1, 1]


def test_what_is_no_config_error_is_not_waited_out() -> None:
    with pytest.raises(ZeroDivisionError):
        wait_for_config(loader(ZeroDivisionError()), print, sleep=lambda s: None)
