#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building a Rust-enabled kernel and running it under virtme-ng needs on a Debian host.
# Idempotent: anything already present is skipped. Non-root users get the exact command to run instead.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

readonly BINDGEN_VERSION=0.73.2
readonly VIRTME_NG_VERSION=1.42
readonly MIN_RUSTC=1.85.0

# Debian packages, each with the reason we need it.
readonly PACKAGES=(
	"clang${LLVM}" "lld${LLVM}" "llvm${LLVM}" "libclang${LLVM}-dev" # LLVM=-19 kernel build, bindgen's libclang
	flex bison bc libelf-dev libssl-dev cpio xz-utils make           # kernel build
	kmod                                                              # insmod/rmmod/modprobe in the guest
	qemu-system-x86                                                   # the VM
	busybox-static                                                    # virtme-ng's initramfs
	udev                                                              # vng returns the guest's exit status only with udev
	python3-venv                                                      # virtme-ng lives in a private venv
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "not a Debian host: install ${missing[*]} by hand"
	log "installing Debian packages: ${missing[*]} (about a minute)"
	as_root apt-get update -q >/dev/null
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# Rust toolchain: rustc from rustup.
need rustc "rustup (https://rustup.rs), then: rustup toolchain install stable"
rustc_v=$(rustc --version | awk '{print $2}')
version_ge "$rustc_v" "$MIN_RUSTC" || die "rustc $rustc_v is older than the kernel's minimum $MIN_RUSTC: rustup update"
# rust-src: the kernel builds its own `core`; rustfmt and clippy: `make check`.
components=()
[ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library" ] || components+=(rust-src)
command -v rustfmt >/dev/null || components+=(rustfmt)
command -v clippy-driver >/dev/null || components+=(clippy)
if [ ${#components[@]} -gt 0 ]; then
	need rustup "rustup (https://rustup.rs)"
	log "rustup component add ${components[*]}"
	rustup component add "${components[@]}" >/dev/null
fi

# bindgen generates the kernel's Rust bindings.
if ! command -v bindgen >/dev/null || ! version_ge "$(bindgen --version | awk '{print $2}')" 0.71.1; then
	log "cargo install --locked bindgen-cli@$BINDGEN_VERSION (about 2 minutes)"
	cargo install --locked --quiet bindgen-cli --version "$BINDGEN_VERSION"
fi

# virtme-ng, pinned, in a private venv so the system Python is never touched.
venv="$RMR_CACHE/venv-virtme-ng-$VIRTME_NG_VERSION"
if [ ! -x "$venv/bin/vng" ]; then
	log "installing virtme-ng $VIRTME_NG_VERSION from PyPI into $venv"
	mkdir -p "$RMR_CACHE"
	python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
	"$venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"
fi
ln -sfn "$venv" "$RMR_CACHE/venv"
log "host ready: rustc $rustc_v, $(bindgen --version), $(clang${LLVM} --version | head -n1), vng $("$venv/bin/vng" --version 2>&1 | awk '{print $NF}')"
