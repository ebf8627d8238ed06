"""Where the real Tars templates are: test data beside the repository, never copied into it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# where these machines keep it, for a clone made elsewhere (e.g. /tmp/fresh)
MACHINE_SHARED = Path("/work/shared/tars-templates")


def _find() -> Path:
    """$TARSDOCK_SHARED_TEMPLATES, else the nearest shared/tars-templates above the repository."""
    if os.environ.get("TARSDOCK_SHARED_TEMPLATES"):
        return Path(os.environ["TARSDOCK_SHARED_TEMPLATES"])
    for parent in REPO.parents:
        candidate = parent / "shared" / "tars-templates"
        if candidate.is_dir():
            return candidate
    if MACHINE_SHARED.is_dir():
        return MACHINE_SHARED
    return REPO.parent / "shared" / "tars-templates"   # the documented place; tests then fail


SHARED_TEMPLATES = _find()
