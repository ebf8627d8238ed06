"""Waiting for a config dir that does not load, for the node's daemons (node server, listener).

A daemon that exits on a bad node.toml is restarted a few times by its supervisor and then
given up on (supervisord: FATAL after `startretries`; systemd: its start limit), and it stays
down after the operator fixes the file: nothing starts it again. So the daemons wait instead:
they try again with back-off, say each new error once (not once per try), and go on once the
config dir reads. The first try is immediate, so a good config dir costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tarsdock.errors import TarsdockError

T = TypeVar("T")

# seconds between tries: short at first (an operator fixing a typo sees it taken at once),
# then at most RETRY_MAX apart, so a loaded config dir costs a daemon ~2% of a core meanwhile
RETRY_INITIAL = 1.0
RETRY_MAX = 10.0


def wait_for_config(load: Callable[[], T], report: Callable[[str], None], *,
                    recovered: Callable[[str], None] | None = None,
                    sleep: Callable[[float], None] | None = None,
                    initial: float = RETRY_INITIAL, maximum: float = RETRY_MAX) -> T:
    """`load()` until it returns, sleeping `initial` s doubling to `maximum` s between tries.

    `sleep` defaults to time.sleep. `report` gets one message per distinct error (a changed
    error restarts the back-off, as someone is editing); `recovered` (default `report`) one
    when the config reads after errors. Only TarsdockError (bad input, an unreadable dir) is
    waited out; anything else propagates.
    """
    pause = sleep or time.sleep   # looked up at the call: a test may replace time.sleep
    said = ""
    delay = initial
    while True:
        try:
            value = load()
        except TarsdockError as error:
            text = str(error)
            if text != said:
                report(f"cannot read the config (trying again every {maximum:g} s at most "
                       f"until it reads):\n{text}")
                said, delay = text, initial
            pause(delay)
            delay = min(maximum, delay * 2)
            continue
        if said:
            (recovered or report)("the config reads again")
        return value
