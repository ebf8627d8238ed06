"""tarsdock as an installed copy runs it: with its modules byte-compiled.

pip byte-compiles a wheel's modules when it installs them, so a user's tarsdock loads .pyc
files. A checkout installed in editable mode compiles its modules at first import and caches
them in __pycache__, unless PYTHONDONTWRITEBYTECODE is set (as on the machines these benchmarks
run on): then every run compiles the modules it imports again (~20 modules, ~0.05 s, CPU), and a
benchmark of whole processes would time the compiler. The peers' modules (honcho, tomllib) come
compiled from their installs.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def byte_compile() -> None:
    """Write the .pyc files of the tarsdock package in use, as `pip install` does (quiet).

    Forced: compileall takes a .pyc whose recorded mtime (in whole seconds) matches its source
    for current, but the import system also compares the size, so a source rewritten in the
    second of its last compile (a checkout, a rebase) would keep a .pyc that every run rejects
    and compiles again from source (milliseconds a module: cli.py took 6 ms), silently.
    """
    import tarsdock

    compileall.compile_dir(Path(tarsdock.__file__).parent, quiet=1, force=True)
