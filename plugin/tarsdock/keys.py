"""Tables of simple keys: one place to look up how a key is read and what it becomes."""

from __future__ import annotations

from typing import Literal

ValueKind = Literal["bool", "str", "int", "float", "size", "words"]

# <tars><application><container> keys -> (docker run flag, value kind). Sub-domains <volumes> and
# <ports> have code of their own in resolve.py because their lines carry structure.
CONTAINER_OPTIONS: dict[str, tuple[str, ValueKind]] = {
    "privileged": ("--privileged", "bool"),
    "user": ("--user", "str"),
    "memory": ("--memory", "size"),
    "memory-swap": ("--memory-swap", "size"),
    "cpus": ("--cpus", "float"),
    "shm-size": ("--shm-size", "size"),
    "pids-limit": ("--pids-limit", "int"),
    "cap-add": ("--cap-add", "words"),
    "cap-drop": ("--cap-drop", "words"),
    "stop-signal": ("--stop-signal", "str"),
}
CONTAINER_DOMAINS: tuple[str, ...] = ("volumes", "ports")
