"""Bulk work in one run: Python's cyclic garbage collector paused while large trees are built."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector for a burst of allocations that makes no reference cycles.

    A 1,000-service load or render allocates some 10^5 to 10^6 small objects (config trees,
    parameters, strings, rows); none refers back to its owner, so reference counting frees all
    of them. The collector would still walk the survivors again and again as they pile up: about
    a fifth of a large load's CPU time. On the way out the survivors are frozen (gc.freeze):
    they are the node and its files, kept to the end of the command, and would otherwise be
    walked once more by the first collection after re-enabling, and by every full one after.
    Only the one-shot commands load a node this way (validate, generate, apply, config); the
    long-running listener and node server read the manifest alone. Usable as a decorator;
    restores the collector's enabled state.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # what survived is the node and its files, kept for the rest of the run: frozen, the
        # collector neither walks it once on re-enabling nor on every later collection
        gc.freeze()
        if enabled:
            gc.enable()
