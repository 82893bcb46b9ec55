# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the provisioning and VM scripts. Source it; do not run it.

# Kernel version the project targets by default; `make KVER=7.4` picks another.
: "${KVER:=7.3}"
# Clang/LLVM suffix used for the kernel and the modules (LLVM=-19 -> clang-19, ld.lld-19, ...).
: "${LLVM:=-19}"
# Everything big lives outside the repository, keyed so that reruns are free.
: "${RMR_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/rust-modref}"
export KVER LLVM RMR_CACHE
export LIBCLANG_PATH="${LIBCLANG_PATH:-/usr/lib/llvm${LLVM}/lib}"
export PATH="$HOME/.cargo/bin:$PATH"

RMR_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RMR_BUILD="$RMR_TOP/build"

_t0=$(date +%s)
log()  { printf '[%4ds] %s\n' $(( $(date +%s) - _t0 )) "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run a command as root, or explain exactly what the user must run.
as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo "$@"
	else
		die "this step needs root. Run it yourself, then retry:
    sudo $*"
	fi
}

# need CMD PACKAGE: fail with the package to install when CMD is missing.
need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found: install it (Debian: apt-get install $2)"
}
