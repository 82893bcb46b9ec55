#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The root filesystem of a guest of another architecture (ARCH=arm64 on an x86-64 host): virtme-ng
# boots a native guest on the host's own root, which holds the host's binaries; a foreign guest
# needs its own. Debian's packages of the host's release, for ARCH, unpacked by mmdebstrap
# (--variant=extract: nothing of the foreign architecture runs on the host, so no binfmt_misc or
# qemu-user is needed), into the cache, keyed by release, architecture and package list. Prints
# the directory. A second run with nothing changed does no work.
#
# Environment: ARCH, RUST_MODREF_CACHE, DEBIAN_MIRROR (default: the host's), DEBIAN_SUITE
# (default: the host's release).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# What the guest runs, each with the reason.
readonly PACKAGES=(
	bash dash coreutils grep sed mawk findutils diffutils debianutils # the scripts, /bin/sh
	util-linux bsdutils procps gzip iproute2                          # mount, setpriv, dmesg, script, zcat, ip
	perl-base                                                         # kselftest's runner (prefix.pl)
	kmod                                                              # insmod, rmmod, modprobe, modinfo
	busybox-static                                                    # virtme-ng's initramfs
	udev                                                              # /dev/virtio-ports: the exit status
	systemd-sysv                                                      # poweroff -f at the end
	base-files base-passwd libc-bin                                   # /etc/os-release, users (nobody)
)

suite=${DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell the host's Debian release from /etc/os-release: set DEBIAN_SUITE (e.g. bookworm)"
mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
need mmdebstrap mmdebstrap
key=$({ printf '%s\n' "$suite" "$ARCH" "$(mmdebstrap --version)"; cat "$0"; } | sha256sum | cut -c1-12)
root="$RUST_MODREF_CACHE/root/$ARCH-$suite-$key"
if [ -f "$root/.rust-modref-root" ]; then
	echo "$root"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "unpacking a root filesystem keeps its files' owners: run as root (or sudo)"
debarch=$ARCH
[ "$ARCH" = x86 ] && debarch=amd64
log "guest root: Debian $suite $debarch (${#PACKAGES[@]} packages and what they depend on) into $root (about 10 s)"
rm -rf "$root.tmp" && mkdir -p "$(dirname "$root")"
hooks=()
[ -d /usr/share/mmdebstrap/hooks/merged-usr ] && hooks=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
mmdebstrap --quiet --variant=extract --architectures="$debarch" "${hooks[@]}" \
	--include="$(IFS=,; echo "${PACKAGES[*]}")" "$suite" "$root.tmp" "$mirror" >"$root.log" 2>&1 ||
	die "mmdebstrap failed; see $root.log:
$(tail -n 10 "$root.log")"
# extract runs no maintainer script: what base-passwd's would have written (setpriv needs "nobody").
for f in passwd group; do
	[ -s "$root.tmp/etc/$f" ] || cp "$root.tmp/usr/share/base-passwd/$f.master" "$root.tmp/etc/$f"
done
# ... and the alternatives, machine id and groups their postinsts would have set up, and the
# mount points virtme-init expects (the root is read-only in the guest).
[ -e "$root.tmp/usr/bin/awk" ] || ln -s mawk "$root.tmp/usr/bin/awk"
[ -s "$root.tmp/etc/machine-id" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root.tmp/etc/machine-id"
echo 'systemd-journal:x:999:' >>"$root.tmp/etc/group"
echo 'systemd-network:x:998:' >>"$root.tmp/etc/group"
echo 'systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin' >>"$root.tmp/etc/passwd"
touch "$root.tmp/etc/shadow" && mkdir -p "$root.tmp/etc/lvm" "$root.tmp/srv" "$root.tmp/opt"
[ -x "$root.tmp/bin/busybox" ] || die "no busybox in $root.tmp: virtme-ng cannot build the guest's initramfs"
date -u +%FT%TZ >"$root.tmp/.rust-modref-root"
rm -rf "$root" && mv "$root.tmp" "$root"
echo "$root"
