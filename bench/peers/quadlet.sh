#!/bin/sh
# Build a Debian 13 (trixie) chroot with Podman, for Quadlet as a peer in bench/bench_generate.py.
#
#   sh bench/peers/quadlet.sh [DIR]      (default DIR: $TARSDOCK_PEERS_DIR/trixie or
#                                         /var/tmp/tarsdock-peers/trixie; root needed)
#
# Idempotent: a finished chroot is left as it is (a few minutes the first time, then nothing).
# Quadlet is then DIR/usr/libexec/podman/quadlet, run inside the chroot with QUADLET_UNIT_DIRS.
# Not run by CI: the benchmark is for people, and says how to get the peer when it is missing.
set -eu

dir=${1:-${TARSDOCK_PEERS_DIR:-/var/tmp/tarsdock-peers}/trixie}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
quadlet=$dir/usr/libexec/podman/quadlet

if [ -x "$quadlet" ]; then
    echo "quadlet: $quadlet (already built)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }

# debootstrap leaves this file behind only once the base system is complete
if [ ! -e "$dir/var/lib/dpkg/status" ] || [ ! -x "$dir/usr/bin/apt-get" ]; then
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    debootstrap --variant=minbase trixie "$dir" "$mirror"
fi

# apt inside the chroot needs /proc and name resolution; unmount whatever we mounted on exit
cp /etc/resolv.conf "$dir/etc/resolv.conf"
mounted=
cleanup() { if [ -n "$mounted" ]; then umount "$dir/proc"; fi; }
trap cleanup EXIT
if ! mountpoint -q "$dir/proc"; then
    mount -t proc proc "$dir/proc"
    mounted=1
fi
chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -q
chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends podman
chroot "$dir" /usr/bin/podman --version
echo "quadlet: $quadlet"
