#!/usr/bin/env bash
# Prepares a Debian bookworm machine (as root) for tarsdock's tests: Debian packages, a running
# dockerd and the local test images (machine-wide, one setup.sh at a time), and the checkout's own
# virtual environment .venv with tarsdock in editable mode (never the machine's global Python).
# Idempotent; fast when all is in place. Two clones may run it at the same time.
#
#   bash tests/env/setup.sh [--images-only] [--no-images] [--rebuild-images]
#
# Everything stays on this machine: no Docker Hub, images are built from Debian's packages.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=/var/cache/tarsdock-test
DOCKERD_LOG=/var/log/tarsdock-dockerd.log
MIRROR=${TARSDOCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}                 # makes the venv
VENV=${TARSDOCK_VENV:-$REPO/.venv}
MACHINE_LOCK=/var/lock/tarsdock-setup.lock   # packages, dockerd, images: one setup.sh at a time
# Packages of the Debian test image; changing this list changes the cache key, so it rebuilds.
IMAGE_PACKAGES=python3,nodejs,systemd,systemd-sysv,dbus,procps,iproute2,ca-certificates
HOST_PACKAGES=(docker.io debootstrap docker-registry apache2-utils busybox-static iproute2 systemd curl zsh
               python3-venv man-db)
# The import tests start a private MariaDB (mariadb-install-db, mariadbd, the mariadb client): the
# -core packages hold exactly those, without the system service mariadb-server would start.
HOST_PACKAGES+=(mariadb-server-core mariadb-client-core)

do_packages=1
do_pip=1
do_images=1
rebuild_images=0
for arg in "$@"; do
    case "$arg" in
        --images-only) do_packages=0; do_pip=0 ;;
        --no-images) do_images=0 ;;
        --rebuild-images) rebuild_images=1 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option '$arg'" >&2; exit 2 ;;
    esac
done

step() { printf '[setup %3ds] %s\n' "$SECONDS" "$*"; }
die() { printf '[setup %3ds] error: %s\n' "$SECONDS" "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get, dockerd and debootstrap need it)"
mkdir -p "$CACHE"

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

apt_update_once() {
    # One `apt-get update` an hour is plenty; the stamp keeps repeated runs fast.
    local stamp="$CACHE/apt-update.stamp"
    if [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then return; fi
    step "apt-get update"
    apt-get update -qq || step "warning: apt-get update reported errors; trying the install anyway"
    touch "$stamp"
}

install_packages() {
    local missing=()
    for pkg in "${HOST_PACKAGES[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    # Node.js may come from elsewhere (e.g. NodeSource, which bundles npm and conflicts with
    # Debian's npm): only install Debian's when the commands are missing.
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [ ${#missing[@]} -eq 0 ]; then
        step "Debian packages: all present"
        return
    fi
    apt_update_once
    step "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >"$CACHE/apt-install.log" 2>&1 || { tail -20 "$CACHE/apt-install.log" >&2; die "apt-get install failed"; }
}

install_python_package() {
    # Into the checkout's own venv; reinstall only when pyproject.toml, tarsdock-run (pip copies
    # script files into the venv, even for an editable install) or the checkout moved.
    local key stamp="$VENV/.tarsdock-setup.stamp"
    key=$( { cat "$REPO/pyproject.toml" "$REPO/plugin/tarsdock/tarsdock-run"; echo "$REPO"; } \
        | sha256sum | cut -c1-16)
    if [ ! -x "$VENV/bin/python" ]; then
        step "python3 -m venv $VENV"
        "$PYTHON" -m venv "$VENV" || die "cannot make a venv (apt-get install python3-venv)"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] \
        && "$VENV/bin/python" -c 'import tarsdock, pytest, supervisor' 2>/dev/null; then
        step "pip: tarsdock[test] already installed in $VENV"
        return
    fi
    step "$VENV/bin/pip install -e '${REPO}[test]'"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${REPO}[test]" \
        || die "pip install failed"
    echo "$key" >"$stamp"
}

check_default_bridge() {
    # A dockerd once started with --bridge=none deletes docker0; then no container starts on the
    # default bridge, and every test that needs one would fail with a puzzling message.
    local out
    if out=$(docker run --rm --network bridge --label tarsdock-test.harness=1 \
            tarsdock-test/busybox:1 true 2>&1); then
        step "dockerd: a container starts on the default bridge"
        return
    fi
    echo "$out" >&2
    ip -o link show docker0 >&2 || echo "docker0: missing" >&2
    die "the Docker Engine cannot start a container on its default bridge network (a dockerd \
started with --bridge=none deletes docker0): restart dockerd without --bridge=none"
}

mount_cgroup_controllers() {
    # cgroup v1 hosts (a tmpfs at /sys/fs/cgroup): every enabled controller mounted, as systemd
    # mounts them on a real node. A systemd test box (DESIGN.md §8: --cgroupns=host and the
    # host's /sys/fs/cgroup) mounts the missing ones in its own mount namespace, which puts every
    # new process in them; the runc shim of each container started meanwhile then cannot find
    # their mount ("loading cgroup for PID: cannot find cgroup mount destination" in the dockerd
    # log), watches no OOM, and Docker emits no `oom` event and sets no OOMKilled.
    [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] || return 0
    local mounted enabled group c missing rw=
    mounted=$(sed -n 's/.* - cgroup [^ ]* //p' /proc/self/mountinfo | tr ',' '\n')
    enabled=$(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups)
    # systemd's groups: cpu with cpuacct, net_cls with net_prio, each other controller alone
    for group in cpu,cpuacct net_cls,net_prio $(echo "$enabled" | grep -vx 'cpu\|cpuacct\|net_cls\|net_prio'); do
        missing=1
        for c in ${group//,/ }; do
            echo "$enabled" | grep -qx "$c" || missing=0       # not in this kernel
            echo "$mounted" | grep -qx "$c" && missing=0       # mounted (alone or grouped)
        done
        [ $missing = 1 ] || continue
        # a mount point to make: the tmpfs is often read-only (put back so below)
        if [ ! -d "/sys/fs/cgroup/$group" ] && [ -z "$rw" ] \
                && findmnt -rno OPTIONS /sys/fs/cgroup | grep -q '^ro'; then
            mount -o remount,rw /sys/fs/cgroup && rw=1 || die "cannot make /sys/fs/cgroup writable"
        fi
        mkdir -p "/sys/fs/cgroup/$group"
        mount -t cgroup -o "$group" cgroup "/sys/fs/cgroup/$group" \
            || die "cannot mount the cgroup v1 controller(s) $group at /sys/fs/cgroup/$group"
        step "cgroup: mounted $group (a systemd box would mount it out of Docker's sight)"
    done
    if [ -n "$rw" ]; then mount -o remount,ro /sys/fs/cgroup; fi
    return 0
}

install_node_modules() {
    # tests/node: @tars/rpc and @tars/stream exactly as package-lock.json pins them (never vendored);
    # redone only when the lockfile changed.
    local stamp="$REPO/tests/node/node_modules/.lock-$(sha256sum "$REPO/tests/node/package-lock.json" | cut -c1-16)"
    if [ -f "$stamp" ]; then
        step "npm: tests/node/node_modules up to date"
        return
    fi
    step "npm ci in tests/node"
    (cd "$REPO/tests/node" && npm ci --no-audit --no-fund >"$CACHE/npm-ci.log" 2>&1) \
        || { tail -20 "$CACHE/npm-ci.log" >&2; die "npm ci failed"; }
    touch "$stamp"
}

storage_driver() {
    # overlay2 needs overlayfs on the filesystem under /var/lib/docker (not on overlay itself,
    # as inside another container); probe with a real mount and fall back to vfs.
    if [ -n "${TARSDOCK_STORAGE_DRIVER:-}" ]; then echo "$TARSDOCK_STORAGE_DRIVER"; return; fi
    mkdir -p /var/lib/docker
    local probe
    probe=$(mktemp -d /var/lib/docker/tarsdock-overlay-probe.XXXXXX)
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null
    then
        umount "$probe/merged"
        echo overlay2
    else
        echo vfs
    fi
    rm -rf "$probe"
}

live_dockerd() {
    # The pid of a running (not zombie) dockerd named by its pid file, if any.
    local pid
    pid=$(cat /var/run/docker.pid 2>/dev/null || true)
    [ -n "$pid" ] || return 1
    [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = dockerd ] || return 1
    case "$(ps -o stat= -p "$pid")" in Z*) return 1 ;; esac
    echo "$pid"
}

start_dockerd() {
    if docker info >/dev/null 2>&1; then
        step "dockerd: already running ($(docker info -f '{{.Driver}}') storage)"
        return
    fi
    command -v dockerd >/dev/null || die "dockerd not found (install docker.io, or drop --images-only)"
    local pid
    if pid=$(live_dockerd); then
        step "dockerd (pid $pid) is running but not answering yet; waiting for it"
    else
        local driver
        driver=$(storage_driver)
        step "starting dockerd (storage driver $driver, log $DOCKERD_LOG)"
        # A dockerd killed with -9 leaves its pid file behind, and a new one refuses to start.
        rm -f /var/run/docker.pid
        # setsid + nohup: dockerd must outlive this shell and the test run that started it.
        # 9>&-: not the machine lock's descriptor, or dockerd (and containerd after it) holds
        # the lock for ever and a second clone's setup.sh waits on it for ever.
        nohup setsid dockerd --storage-driver="$driver" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
    fi
    local deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        # Ours may have lost a race with another setup.sh; then wait for that one instead.
        if ! kill -0 "$pid" 2>/dev/null && ! pid=$(live_dockerd); then
            tail -20 "$DOCKERD_LOG" >&2
            die "dockerd exited; see $DOCKERD_LOG"
        fi
        if [ $SECONDS -ge $deadline ]; then
            tail -20 "$DOCKERD_LOG" >&2
            die "dockerd did not answer 'docker info' within 60 s; see $DOCKERD_LOG"
        fi
        sleep 0.5
    done
    step "dockerd: up"
}

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_busybox_image() {
    local tag=tarsdock-test/busybox:1
    if has_image "$tag" && [ $rebuild_images = 0 ]; then return; fi
    step "building $tag from busybox-static"
    local root
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root}
    cp "$(command -v busybox)" "$root/bin/busybox"
    local applet
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar --numeric-owner -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$tag" >/dev/null
    rm -rf "$root"
}

debian_tarball() {
    # One debootstrap run, cached as a tarball keyed by the package list.
    local key tarball root
    key=$(echo "$IMAGE_PACKAGES" | sha256sum | cut -c1-12)
    tarball="$CACHE/debian-bookworm-$key.tar"
    if [ -f "$tarball" ] && [ $rebuild_images = 0 ]; then echo "$tarball"; return; fi
    root="$CACHE/rootfs.tmp"
    rm -rf "$root"
    step "debootstrap --variant=minbase bookworm (+ $IMAGE_PACKAGES); about a minute" >&2
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" bookworm "$root" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
    # The package caches are 120 MB that no test needs.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    echo "$tarball"
}

build_debian_images() {
    local base=tarsdock-test/debian:1 tarball
    if ! has_image "$base" || [ $rebuild_images = 1 ]; then
        tarball=$(debian_tarball)
        step "importing $tarball as $base"
        docker import "$tarball" "$base" >/dev/null
    fi
    docker tag "$base" tarsdock-test/python:1
    docker tag "$base" tarsdock-test/node:1
    # systemd as PID 1: `docker stop` must send SIGRTMIN+3, systemd's "halt" signal.
    DOCKER_BUILDKIT=0 docker build -q -t tarsdock-test/systemd:1 - >/dev/null 2>"$CACHE/build.log" <<EOF \
        || { cat "$CACHE/build.log" >&2; die "docker build of tarsdock-test/systemd:1 failed"; }
FROM $base
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
}

step "tarsdock test environment for $REPO"
(
    # The machine-wide part: a second setup.sh (another clone) waits here, then finds all done.
    exec 9>"$MACHINE_LOCK"
    if ! flock -n 9; then
        step "waiting for another setup.sh (lock $MACHINE_LOCK)"
        flock 9
    fi
    if [ $do_packages = 1 ]; then install_packages; fi
    if [ $do_images = 1 ] || [ $do_packages = 1 ]; then mount_cgroup_controllers; start_dockerd; fi
    if [ $do_images = 1 ]; then
        build_busybox_image
        build_debian_images
        step "images: $(docker images --format '{{.Repository}}:{{.Tag}}' 'tarsdock-test/*' | sort | tr '\n' ' ')"
        check_default_bridge
    fi
)
if [ $do_pip = 1 ]; then install_python_package; install_node_modules; fi
step "done in ${SECONDS}s"
