# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the provisioning and VM scripts. Source it; do not run it.

RUST_MODREF_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUST_MODREF_BUILD="$RUST_MODREF_TOP/build"

# KVER, LLVM, KFLAVOR, INLINE_RUSTC: scripts/defaults.mk, unless the environment sets them.
while read -r _name _op _value; do
	[ "$_op" = "?=" ] || continue
	[ -n "${!_name:-}" ] || printf -v "$_name" %s "$_value"
	export "${_name?}"
done <"$RUST_MODREF_TOP/scripts/defaults.mk"
unset _name _op _value
# Everything big lives outside the repository, keyed so that reruns are free.
: "${RUST_MODREF_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/rust-modref}"
export RUST_MODREF_CACHE
export LIBCLANG_PATH="${LIBCLANG_PATH:-/usr/lib/llvm${LLVM}/lib}"
export PATH="$HOME/.cargo/bin:$PATH"

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
