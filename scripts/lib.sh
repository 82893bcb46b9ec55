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
# ARCH: the kernel's name for the architecture under test, as the kernel's Makefile derives it from
# the host's when unset (x86_64 -> x86, aarch64 -> arm64). Another architecture is a cross build,
# booted under TCG with a root filesystem of its own (scripts/guest-root.sh).
host_arch() { case "$(uname -m)" in x86_64) echo x86 ;; aarch64) echo arm64 ;; *) uname -m ;; esac; }
: "${ARCH:=$(host_arch)}"
case "$ARCH" in
x86 | x86_64) ARCH=x86 RUST_MODREF_KIMAGE=arch/x86/boot/bzImage RUST_MODREF_QEMU=qemu-system-x86_64
	RUST_MODREF_TRIPLE=x86_64-unknown-linux-gnu RUST_MODREF_VNG_ARCH=amd64 ;;
arm64) RUST_MODREF_KIMAGE=arch/arm64/boot/Image RUST_MODREF_QEMU=qemu-system-aarch64
	RUST_MODREF_TRIPLE=aarch64-unknown-linux-gnu RUST_MODREF_VNG_ARCH=arm64 ;;
aarch64) echo "error: ARCH=aarch64: the kernel calls it arm64 (ARCH=arm64)" >&2; exit 1 ;;
*) echo "error: ARCH=$ARCH: the test kernel is built for x86 (x86-64) or arm64" >&2; exit 1 ;;
esac
export ARCH
# Cross: the tools are built for the guest's target, which then needs a root filesystem of its own.
RUST_MODREF_CROSS=0
[ "$ARCH" = "$(host_arch)" ] || RUST_MODREF_CROSS=1
# A cross build of the tools (tools/target/$RUST_MODREF_TRIPLE/release) links them with Debian's
# cross gcc.
if [ "$RUST_MODREF_CROSS" = 1 ]; then
	_linker_var=CARGO_TARGET_$(echo "$RUST_MODREF_TRIPLE" | tr a-z- A-Z_)_LINKER
	export "$_linker_var=${!_linker_var:-${RUST_MODREF_TRIPLE%%-*}-linux-gnu-gcc}"
	unset _linker_var
fi

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

# The Debian mirror this host already uses, so no host name is hard-coded here.
debian_mirror() {
	local uri
	uri=$(grep -hsE '^\s*(URIs:|deb\s)' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ')
	[ -n "$uri" ] || die "cannot find a Debian mirror in /etc/apt/sources.list*: set DEBIAN_MIRROR=URL"
	echo "${uri%/}"
}
