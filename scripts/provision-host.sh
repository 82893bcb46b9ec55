#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building a Rust-enabled kernel and running it under virtme-ng needs on a Debian host.
# Idempotent: anything already present is skipped. Non-root users without sudo get the one full
# command to run instead (update and install of everything missing).
#
#   scripts/provision-host.sh           install what is missing
#   scripts/provision-host.sh --check   only list what would be installed (exit 0 either way)
#   scripts/provision-host.sh --cross-only   only what a guest of another ARCH needs
#
# ARCH other than the host's (ARCH=arm64 on x86-64) adds its QEMU, mmdebstrap (the guest's root
# filesystem, scripts/guest-root.sh), a cross gcc and libc for linking the tools, and the tools'
# Rust target.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
check=0 cross_only=0
case "${1:-}" in
--check) check=1 ;;
--cross-only) cross_only=1 ;;
esac

readonly BINDGEN_VERSION=0.73.2
readonly VIRTME_NG_VERSION=1.42
readonly MIN_RUSTC=1.85.0

# Debian packages, each with the reason we need it.
readonly PACKAGES=(
	"clang${LLVM}" "lld${LLVM}" "llvm${LLVM}" "libclang${LLVM}-dev" # LLVM=-19 kernel build, bindgen's libclang
	flex bison bc libelf-dev libssl-dev cpio xz-utils make           # kernel build
	libdw-dev                                                         # gendwarfksyms: the debug kernel's MODVERSIONS
	gcc libc6-dev                                                     # cc: cargo links the tools and bindgen-cli with it
	rsync                                                             # kselftest's install rule
	patch                                                             # patches/: fixes carried for the kernel source
	kmod                                                              # insmod/rmmod/modprobe in the guest
	"$(case $ARCH in arm64) echo qemu-system-arm ;; *) echo qemu-system-x86 ;; esac)" # the VM
	busybox-static                                                    # virtme-ng's initramfs
	udev                                                              # vng returns the guest's exit status only with udev
	python3-venv                                                      # virtme-ng lives in a private venv
)

# A guest of another architecture; Debian's names for its packages.
cross_packages=()
if [ "$RUST_MODREF_CROSS" = 1 ]; then
	case "$ARCH" in
	arm64) cross_packages=(qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross mmdebstrap) ;;
	x86) cross_packages=(qemu-system-x86 gcc-x86-64-linux-gnu libc6-dev-amd64-cross mmdebstrap) ;;
	esac
fi
wanted=("${PACKAGES[@]}" "${cross_packages[@]}")
[ $cross_only = 0 ] || wanted=("${cross_packages[@]}")
missing=()
for p in "${wanted[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ $check = 1 ]; then
	echo "provision-host --check: Debian packages missing: ${missing[*]:-none}"
elif [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "not a Debian host: install ${missing[*]} by hand"
	install="apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" != 0 ] && ! { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
		die "Debian packages missing: ${missing[*]}. Run this as root, then retry:
    sudo sh -c '$install'"
	fi
	log "installing Debian packages: ${missing[*]} (about a minute)"
	# make -j runs the kernel's and the tools' provisioning at once: one apt at a time.
	mkdir -p "$RUST_MODREF_CACHE"
	as_root flock "$RUST_MODREF_CACHE/.provision.lock" sh -c "$install" >/dev/null
fi

# The tools' Rust target for a guest of another architecture.
if [ "$RUST_MODREF_CROSS" = 1 ] && ! rustup target list --installed 2>/dev/null | grep -qx "$RUST_MODREF_TRIPLE"; then
	if [ $check = 1 ]; then
		echo "provision-host --check: would rustup target add $RUST_MODREF_TRIPLE"
	else
		need rustup "rustup (https://rustup.rs)"
		log "rustup target add $RUST_MODREF_TRIPLE (the tools for the $ARCH guest)"
		rustup target add "$RUST_MODREF_TRIPLE" >/dev/null
	fi
fi
[ $cross_only = 0 ] || exit 0

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# Rust toolchain: rustc from rustup.
need rustc "rustup (https://rustup.rs), then: rustup toolchain install stable"
rustc_v=$(rustc --version | awk '{print $2}')
version_ge "$rustc_v" "$MIN_RUSTC" || die "rustc $rustc_v is older than the kernel's minimum $MIN_RUSTC: rustup update"
# rust-src: the kernel builds its own `core`; rustfmt and clippy: `make check`. Ask rustup, not
# PATH: rustup installs a stub for every tool, component or not.
components=()
installed=$(rustup component list --installed 2>/dev/null || true)
for c in rust-src rustfmt clippy; do
	grep -q "^$c" <<<"$installed" || components+=("$c")
done
if [ $check = 1 ]; then
	echo "provision-host --check: rustup components missing: ${components[*]:-none}"
elif [ ${#components[@]} -gt 0 ]; then
	need rustup "rustup (https://rustup.rs)"
	log "rustup component add ${components[*]}"
	rustup component add "${components[@]}" >/dev/null
fi

# bindgen generates the kernel's Rust bindings.
if ! command -v bindgen >/dev/null || ! version_ge "$(bindgen --version | awk '{print $2}')" 0.71.1; then
	if [ $check = 1 ]; then
		echo "provision-host --check: would cargo install bindgen-cli $BINDGEN_VERSION"
	else
		need cc "gcc libc6-dev (cargo links with cc)"
		log "cargo install --locked bindgen-cli@$BINDGEN_VERSION (about 2 minutes)"
		cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION"
	fi
fi

# virtme-ng, pinned, in a private venv so the system Python is never touched.
venv="$RUST_MODREF_CACHE/venv-virtme-ng-$VIRTME_NG_VERSION"
if [ $check = 1 ]; then
	[ -x "$venv/bin/vng" ] || echo "provision-host --check: would install virtme-ng $VIRTME_NG_VERSION into $venv"
	exit 0
fi
if [ ! -x "$venv/bin/vng" ]; then
	log "installing virtme-ng $VIRTME_NG_VERSION from PyPI into $venv"
	mkdir -p "$RUST_MODREF_CACHE"
	python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
	"$venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"
fi
ln -sfn "$venv" "$RUST_MODREF_CACHE/venv"
log "host ready: rustc $rustc_v, $(bindgen --version), $(clang${LLVM} --version | head -n1), vng $("$venv/bin/vng" --version 2>&1 | awk '{print $NF}')"
