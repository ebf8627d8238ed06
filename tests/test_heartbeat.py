"""Heartbeat judgement by table: each row a sequence of inputs and the verdict it must give."""

from __future__ import annotations

from typing import Any

import pytest

from tarsdock import heartbeat as hb

RULES = hb.Rules(timeout=45000, grace=60000, adapters=("App.S.ObjAdapter", hb.ADMIN_ADAPTER))
NO_GRACE = hb.Rules(timeout=3000, grace=0, adapters=("App.S.ObjAdapter", hb.ADMIN_ADAPTER))

BASE = 1_700_000_000_000      # epoch ms: times in the table are offsets from it

# inputs: ("alive", pid, adapter, t) | ("activing", pid, t) | ("version", v); then judged at `now`
CASES: list[tuple[str, hb.Rules, list[tuple[Any, ...]], int, str, str]] = [
    ("never beat: not a Tars runtime, never judged", RULES, [], 10**9, "unjudged", ""),
    ("keepActiving only: still starting, not judged", RULES,
     [("activing", 7, 1000)], 10**9, "unjudged", ""),
    ("inside the start grace", RULES, [("alive", 7, "", 1000)], 59000, "grace", ""),
    ("after grace, all adapters beating", NO_GRACE,
     [("alive", 7, "", 0), ("alive", 7, "App.S.ObjAdapter", 2000),
      ("alive", 7, "AdminAdapter", 2000)], 4000, "alive", ""),
    ("everything silent longer than hearttimeout (ms, not s)", NO_GRACE,
     [("alive", 7, "", 0)], 3001, "hung", "no keepAlive for 3 s (hearttimeout 3000 ms)"),
    ("exactly the timeout is still alive", NO_GRACE, [("alive", 7, "", 0)], 3000, "alive", ""),
    ("one adapter stopped reporting", NO_GRACE,
     [("alive", 7, "", 0), ("alive", 7, "AdminAdapter", 2000), ("alive", 7, "AdminAdapter", 4000),
      ("alive", 7, "AdminAdapter", 6000)], 6000, "hung",
     "no keepAlive from App.S.ObjAdapter for 6 s (hearttimeout 3000 ms)"),
    ("an empty adapter name refreshes every adapter (ServerObject::setLastKeepAliveTime)",
     NO_GRACE, [("alive", 7, "", 0), ("alive", 7, "", 5000)], 6000, "alive", ""),
    # tarsnode's ServerObject::keepActiving calls setLastKeepAliveTime(now): no adapter name
    ("keepActiving refreshes the overall time and every adapter", NO_GRACE,
     [("alive", 7, "", 0), ("activing", 7, 5000)], 6000, "alive", ""),
    ("keepActiving does not stand in for keepAlive for long", NO_GRACE,
     [("alive", 7, "", 0), ("activing", 7, 5000)], 8001, "hung",
     "no keepAlive for 3 s (hearttimeout 3000 ms)"),
    ("a new pid is a new run: the old beats do not count", NO_GRACE,
     [("alive", 7, "", 0), ("activing", 8, 5000)], 10**9, "unjudged", ""),
    # found by hand: 'no keepAlive for 58 s (hearttimeout 20000 ms)' puzzled: the grace held it
    ("silent since inside the grace: the reason names it", hb.Rules(20000, 60000, ()),
     [("alive", 7, "", 0), ("alive", 7, "", 2000)], 60001, "hung",
     "no keepAlive for 58 s (hearttimeout 20000 ms, judged from the end of activating-timeout "
     "60000 ms)"),
    ("a new run gets its grace again", RULES,
     [("alive", 7, "", 0), ("alive", 8, "", 100000)], 150000, "grace", ""),
    ("an adapter unknown to the config is noted, not required", NO_GRACE,
     [("alive", 7, "", 0), ("alive", 7, "Other", 2500)], 2900, "alive", ""),
]


@pytest.mark.parametrize(("rules", "inputs", "now", "verdict", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge(rules: hb.Rules, inputs: list[tuple[Any, ...]], now: int, verdict: str,
               reason: str) -> None:
    run = hb.Run()
    for kind, *args in inputs:
        if kind == "alive":
            run = hb.keep_alive(run, rules, args[0], args[1], BASE + args[2])
        elif kind == "activing":
            run = hb.keep_activing(run, rules, args[0], BASE + args[1])
        else:
            run = hb.report_version(run, args[0])
    assert hb.judge(run, rules, BASE + now) == (verdict, reason)


def test_version_survives_a_new_run() -> None:
    run = hb.report_version(hb.Run(), "3.0.15")
    run = hb.keep_alive(run, NO_GRACE, 7, "", BASE)
    run = hb.keep_alive(run, NO_GRACE, 9, "", BASE + 10)
    assert (run.pid, run.version, run.first) == (9, "3.0.15", BASE + 10)
