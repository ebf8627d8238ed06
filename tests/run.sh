#!/usr/bin/env bash
# Set up everything the tests need (packages, Docker Engine, test images) and run all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/setup.sh
echo "== ruff"; ruff check plugin tests bench
echo "== mypy"; mypy
echo "== pytest"; python -m pytest -q "$@"
