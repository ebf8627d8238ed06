#!/usr/bin/env bash
# The README's demo: set up this machine, then run tarsdock on the example node in examples/node.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/setup.sh
node=examples/node
echo "== tarsdock validate"; tarsdock --config-dir "$node" validate
for service in Demo.HelloServer Demo.NativeServer Demo.WebServer; do
    echo "== tarsdock config $service"; tarsdock --config-dir "$node" config "$service"
done
