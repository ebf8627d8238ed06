#!/usr/bin/env bash
# Set up everything the tests need (packages, Docker Engine, test images, the checkout's .venv)
# and run all of them from .venv. Two clones may run this at the same time: each run names its
# nodes, containers and ports after a run id of its own (tests/e2e/harness.py).
# With no arguments the unit tests run beside the end-to-end tests: those mostly wait on Docker,
# supervisord and systemd, the unit tests mostly compute, and side by side the whole run takes
# about as long as the end-to-end tests alone. The end-to-end tests run in two pytest-xdist
# workers, a test file to a worker: each worker is a run of its own (its own run id, as two
# clones are), so their waits overlap. Arguments are pytest's, for one run of both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/setup.sh
venv=${TARSDOCK_VENV:-.venv}
echo "== ruff"; "$venv/bin/ruff" check plugin tests bench
echo "== mypy"; "$venv/bin/mypy"
if [ $# -gt 0 ]; then
    echo "== pytest"; exec "$venv/bin/python" -m pytest -q "$@"
fi
unit_log=$(mktemp /tmp/tarsdock-unit.XXXXXX)
trap 'rm -f "$unit_log"' EXIT
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m 'not e2e' >"$unit_log" 2>&1 &
unit=$!
echo "== pytest: end-to-end tests (unit tests beside them, shown after)"
e2e_status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m e2e -n 2 --dist loadfile || e2e_status=$?
unit_status=0
wait "$unit" || unit_status=$?
echo "== pytest: unit tests"
cat "$unit_log"
[ "$e2e_status" -eq 0 ] && [ "$unit_status" -eq 0 ]
