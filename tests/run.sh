#!/usr/bin/env bash
# Set up everything the tests need (packages, Docker Engine, test images, the checkout's .venv)
# and run all of them from .venv. Two clones may run this at the same time: each run names its
# nodes, containers and ports after a run id of its own (tests/e2e/harness.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/setup.sh
venv=${TARSDOCK_VENV:-.venv}
echo "== ruff"; "$venv/bin/ruff" check plugin tests bench
echo "== mypy"; "$venv/bin/mypy"
echo "== pytest"; "$venv/bin/python" -m pytest -q "$@"
