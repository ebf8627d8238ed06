#!/usr/bin/env bash
# The README's demo: set up this machine, then run tarsdock on the example node in examples/node.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/env/setup.sh
# tarsdock, supervisord and python3 from the checkout's .venv (setup.sh made it), never the
# machine's global interpreter
PATH="$PWD/${TARSDOCK_VENV:-.venv}/bin:$PATH"
node=examples/node
echo "== tarsdock validate"; tarsdock --config-dir "$node" validate
for service in Demo.HelloServer Demo.NativeServer Demo.WebServer; do
    echo "== tarsdock config $service"; tarsdock --config-dir "$node" config "$service"
done

# Run the node under a supervisord of its own: a copy of examples/node whose tars_path is a temp
# dir, so nothing outside it is touched. Everything started here is stopped on exit.
# Containers are named after their services, and a service's start removes a container of its
# name: refuse to run beside containers of these names that are not this demo's.
names=(Demo.HelloServer Demo.NativeServer Demo.WebServer TARS.NodeTarsServer)
named() { docker ps -aq --filter "name=^/$1\$" "${@:2}"; }
for name in "${names[@]}"; do
    if [ -n "$(named "$name")" ]; then
        echo "demo.sh: a container named $name exists; remove it (docker rm -f $name) first" >&2
        exit 1
    fi
done
# Its node server listens on the default node_port, 19386 (test runs never use it): another
# tarsdock node there would leave the demo's services without a node object (validate above
# named the process, if it is one /proc shows).
if (exec 3<>/dev/tcp/127.0.0.1/19386) 2>/dev/null; then
    echo "demo.sh: 127.0.0.1:19386, the demo node's node_port, is in use (another tarsdock node?)" >&2
    exit 1
fi
work=$(mktemp -d /tmp/tarsdock-demo.XXXXXX)
tars="$work/tars"
supervisord_pid=""
# The containers this demo started: its names, on its node (127.0.0.1).
demo_containers() {
    for name in "${names[@]}"; do named "$name" --filter label=tarsdock.node=127.0.0.1; done
}
cleanup() {
    if [ -n "$supervisord_pid" ] && kill -0 "$supervisord_pid" 2>/dev/null; then
        kill -TERM "$supervisord_pid"
        wait "$supervisord_pid" || true
    fi
    demo_containers | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
cp -r "$node" "$work/node"
find "$work/node" -type f -exec sed -i "s|/usr/local/app/tars|$tars|g" {} +
www="$tars/tarsnode/data/Demo.WebServer/data/www"

echo "== tarsdock generate --format supervisord --out $work/conf.d"
tarsdock --config-dir "$work/node" generate --format supervisord --out "$work/conf.d"
# Stand in for the Tars releases: the test server as each tars_cpp service's binary.
for service in Demo.HelloServer Demo.NativeServer; do
    binary="$tars/tarsnode/data/$service/bin/${service#*.}"
    install -m 0755 tests/service/tars_test_server.py "$binary"
done
mkdir -p "$www" "$tars/tarsdock-shared"
echo "hello from Demo.WebServer" >"$www/index.html"

cat >"$work/supervisord.conf" <<CONF
[unix_http_server]
file=$work/supervisor.sock
[supervisord]
nodaemon=true
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
childlogdir=$work
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$work/supervisor.sock
[include]
files = $work/conf.d/*.conf
CONF
ctl() { python3 -m supervisor.supervisorctl -c "$work/supervisord.conf" "$@"; }
echo "== supervisord -c $work/supervisord.conf"
python3 -m supervisor.supervisord -c "$work/supervisord.conf" </dev/null >/dev/null 2>&1 &
supervisord_pid=$!
# Wait until no program is still starting (startsecs: 3 s of running counts as started).
wait_started() {
    for _ in $(seq 60); do
        sleep 1
        status=$(ctl status 2>/dev/null || true)
        if [ -n "$status" ] && ! grep -qE 'STARTING|BACKOFF' <<<"$status"; then break; fi
    done
}
wait_started

echo "== supervisorctl status"; ctl status || true
echo "== docker ps --filter label=tarsdock.managed=true"
docker ps --filter label=tarsdock.managed=true --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'
echo "== a request to Demo.HelloServer on 127.0.0.1:19411 (in a container)"
bash -c 'exec 3<>/dev/tcp/127.0.0.1/19411; cat <&3'
echo "== a request to Demo.NativeServer on 127.0.0.1:19412 (on the host)"
bash -c 'exec 3<>/dev/tcp/127.0.0.1/19412; cat <&3'
echo "== GET http://127.0.0.1:19413/ from Demo.WebServer (busybox httpd in a container)"
python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:19413/").read().decode(), end="")'


# Second half: a real Tars service, the way Tars ships one. @tars/rpc's example server (from npm,
# pinned in tests/node) is packed as a release package, deployed, generated, started and called
# with the package's own example client.
release="$work/NodeTarsServer.tgz"
echo "== python3 tests/node/make_release.py $release"
python3 tests/node/make_release.py "$release"
cat >"$work/node/services.d/nodejs.toml" <<TOML
# A tars_nodejs service: @tars/rpc's example server, deployed as a release package.
[services."TARS.NodeTarsServer"]
type = "tars_nodejs"
template = "tars.nodejs.default"
image = "tarsdock-test/node:1"
run = "container"
[[services."TARS.NodeTarsServer".adapters]]
name = "NodeTarsObjAdapter"
servant = "TARS.NodeTarsServer.NodeTarsObj"
endpoint = "tcp -h 127.0.0.1 -p 19421 -t 60000"
TOML
echo "== cat services.d/nodejs.toml"; cat "$work/node/services.d/nodejs.toml"
echo "== tarsdock deploy TARS.NodeTarsServer $release"
tarsdock --config-dir "$work/node" deploy TARS.NodeTarsServer "$release"
echo "== tarsdock generate --format supervisord --out $work/conf.d"
tarsdock --config-dir "$work/node" generate --format supervisord --out "$work/conf.d"
echo "== supervisorctl update"; ctl update
wait_started
echo "== supervisorctl status"; ctl status || true
echo "== docker ps --filter label=tarsdock.managed=true"
docker ps --filter label=tarsdock.managed=true --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'
echo "== python3 tests/node/call_client.py 19421 (the example client, client.node.proxy)"
python3 tests/node/call_client.py 19421

echo "== stopping: supervisorctl stop all, then supervisord"
ctl stop all
kill -TERM "$supervisord_pid"; wait "$supervisord_pid" || true
supervisord_pid=""
echo "== containers left: $(demo_containers | wc -l)"
