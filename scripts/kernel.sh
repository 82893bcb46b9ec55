#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Provision the test kernel: host tools, Debian's linux-source-$KVER, a tinyconfig-based config with
# the fragments in kconfig/, and an LLVM build, all in a cache outside the repository keyed by kernel
# version, toolchain versions and fragment contents. A second run with nothing changed does no work.
# On success build/kdir points at the kernel build tree (KDIR for the modules) and build/kernel.env
# describes it.
#
# Environment: KVER, KFLAVOR=debug|fast|inline, LLVM, INLINE_RUSTC (defaults: scripts/defaults.mk),
# ARCH=x86|arm64 (default: the host's; another one is cross-built, LLVM needs no cross compiler),
# RUST_MODREF_CACHE (default ~/.cache/rust-modref), RUST_MODREF_REFRESH=1 to ask Debian for a
# newer source package.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "$KFLAVOR" in
debug) FRAGMENTS=(vm "vm-$ARCH" rust debug) ;;
fast)  FRAGMENTS=(vm "vm-$ARCH" rust) ;;
inline) FRAGMENTS=(vm "vm-$ARCH" rust inline) ;;
*) die "KFLAVOR must be 'debug' (KASAN, lockdep: the test kernel), 'fast' (for benchmarks) or
'inline' (fast, with the C helpers inlined into Rust), not '$KFLAVOR'" ;;
esac

# Inlining the C helpers links rustc's LLVM bitcode with clang's: both need the same LLVM major
# version. Debian 12's clang-19 pairs with rustc 1.85 (LLVM 19.1.7), which the kernel still accepts.
if [ "$KFLAVOR" = inline ]; then
	need rustup "rustup (https://rustup.rs)"
	if ! rustup run "$INLINE_RUSTC" rustc --version >/dev/null 2>&1; then
		log "rustup toolchain install $INLINE_RUSTC (for KFLAVOR=inline, about a minute)"
		rustup toolchain install "$INLINE_RUSTC" --profile minimal -c rust-src >/dev/null ||
			die "rustup toolchain install $INLINE_RUSTC failed"
	fi
	# The toolchain may be there without rust-src (make check installs it to build the tools).
	rustup component add --toolchain "$INLINE_RUSTC" rust-src >/dev/null 2>&1 ||
		die "rustup component add --toolchain $INLINE_RUSTC rust-src failed"
	export RUSTUP_TOOLCHAIN=$INLINE_RUSTC
	rust_llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
	clang_llvm=$("clang$LLVM" -dumpversion | cut -d. -f1)
	[ "$rust_llvm" = "$clang_llvm" ] || die "KFLAVOR=inline needs rustc and clang on one LLVM major version:
rustc $INLINE_RUSTC has LLVM $rust_llvm, clang$LLVM has LLVM $clang_llvm. Set INLINE_RUSTC to a
rustc release built on LLVM $clang_llvm (or LLVM= to a clang matching rustc)."
fi

# --- Nothing to do? ----------------------------------------------------------------------------
# build/kdir already built from the same inputs (toolchain versions, fragments, patches, source
# package, all cheap to read): rebuilding the modules after an edit needs no provisioning, and
# says nothing. Anything else changed, or missing, takes the full path below.
src_record="$RUST_MODREF_CACHE/src/linux-source-$KVER.version"
quick_key() {
	{
		echo "$KVER $KFLAVOR LLVM=$LLVM ARCH=$ARCH"
		rustc -vV 2>&1; bindgen --version 2>&1; "clang$LLVM" --version 2>&1 | head -n1
		cat "$RUST_MODREF_TOP"/kconfig/*.config "$src_record" 2>&1
		cat "$RUST_MODREF_TOP/patches/$KVER"/*.patch 2>/dev/null
	} | sha256sum | cut -c1-12
}
kdir_now=$(readlink -f "$RUST_MODREF_BUILD/kdir" 2>/dev/null || true)
if [ -z "${RUST_MODREF_REFRESH:-}" ] && [ -n "$kdir_now" ] && [ -f "$kdir_now/.rust-modref-built" ] &&
	grep -qx "QUICK_KEY=$(quick_key)" "$RUST_MODREF_BUILD/kernel.env" 2>/dev/null; then
	echo "$kdir_now"
	exit 0
fi

"$RUST_MODREF_TOP/scripts/provision-host.sh"

# --- Kernel source from Debian, through a private apt configuration -------------------------------
apt_dir="$RUST_MODREF_CACHE/apt"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
	-o "Dir::State::status=/dev/null" -o Debug::NoLocking=1 -q)

apt_private_update() {
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	local mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
	# Newest first: backports carry the newest kernels for stable, sid the ones not yet backported.
	local suite
	for suite in trixie-backports trixie sid; do
		printf 'deb %s %s main\n' "$mirror" "$suite"
	done >"$apt_dir/sources.list"
	log "apt update (private lists in $apt_dir; the system's apt sources are not touched)"
	apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 ||
		die "apt-get update with the private configuration failed, see $apt_dir/update.log"
}

# source_ready: src_pkgver and src_dir of the extracted source, downloading and extracting it
# unless the record names one that is there.
source_ready() {
	if [ -z "${RUST_MODREF_REFRESH:-}" ] && [ -s "$src_record" ] && [ -d "$(sed -n 2p "$src_record")" ]; then
		src_pkgver=$(sed -n 1p "$src_record")
		src_dir=$(sed -n 2p "$src_record")
	else
		apt_private_update
		src_pkgver=$(apt-cache "${apt_opts[@]}" policy "linux-source-$KVER" 2>/dev/null |
			awk '/Candidate:/ {print $2}')
		if [ -z "$src_pkgver" ] || [ "$src_pkgver" = "(none)" ]; then
			avail=$(apt-cache "${apt_opts[@]}" search --names-only '^linux-source-[0-9]+\.[0-9]+$' 2>/dev/null |
				awk '{print $1}' | sed 's/linux-source-//' | sort -V | xargs)
			die "Debian no longer offers linux-source-$KVER (it drops a kernel's source package when a newer one arrives).
	Versions Debian offers now: ${avail:-none found}
	Pick one, e.g.:  make KVER=${avail##* }${avail:+ }test   (or point KDIR= at your own Rust-enabled kernel build)"
		fi
		log "downloading linux-source-$KVER $src_pkgver (about 170 MB)"
		(cd "$apt_dir/cache/archives" && apt-get "${apt_opts[@]}" download "linux-source-$KVER=$src_pkgver" \
			>"$apt_dir/download.log" 2>&1) || die "download failed, see $apt_dir/download.log"
		deb=$(ls -t "$apt_dir/cache/archives/linux-source-${KVER}_"*.deb | head -n1)
		got=$(dpkg-deb -f "$deb" Version)
		[ "$got" = "$src_pkgver" ] || die "downloaded $deb is version $got, expected $src_pkgver"
		src_dir="$RUST_MODREF_CACHE/src/linux-source-$KVER-$src_pkgver"
		if [ ! -f "$src_dir/Makefile" ]; then
			log "extracting $(basename "$deb") (about 15 s)"
			rm -rf "$src_dir.tmp" && mkdir -p "$src_dir.tmp"
			dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$src_dir.tmp" --wildcards '*/linux-source-*.tar.xz'
			tar -xJf "$src_dir.tmp"/usr/src/linux-source-*.tar.xz -C "$src_dir.tmp"
			rm -rf "$src_dir" && mv "$src_dir.tmp"/linux-source-"$KVER" "$src_dir" && rm -rf "$src_dir.tmp"
			rm -f "$deb"
		fi
		printf '%s\n%s\n' "$src_pkgver" "$src_dir" >"$src_record"
	fi
}
source_ready

# --- The project's kernel series: patches/$KVER/*.patch (git format-patch), in name order -------
# Applied once to the extracted source (all flavours share it), which records in
# .rust-modref-series the diff of each patch it carries, in order. A series that only grew gets
# its new patches; any other change (a patch revised, removed or reordered, or a source patched
# before the record existed) extracts the source afresh and applies the series to that. Their
# diffs (not their messages) are part of the cache key. The cover letter has no diff and is
# skipped. A patch that does not apply to a fresh source means a source that changed under it.
patches=()
for p in "$RUST_MODREF_TOP/patches/$KVER"/*.patch; do
	[ -f "$p" ] && grep -q '^diff --git' "$p" && patches+=("$p")
done
[ ${#patches[@]} = 0 ] || need patch patch
# The diffs only: from a patch's first "diff --git" to git's "-- " signature line.
diffs_of() { awk 'FNR == 1 { on = 0 } /^diff --git/ { on = 1 } /^-- $/ { on = 0 } on' "$@"; }
wanted=()
for p in "${patches[@]}"; do wanted+=("$(diffs_of "$p" | sha256sum | cut -c1-16) $(basename "$p")"); done
series_state() {
	series_record=$src_dir/.rust-modref-series
	applied=()
	if [ -f "$series_record" ]; then
		mapfile -t applied <"$series_record"
	elif [ ${#patches[@]} -gt 0 ] && ! patch -d "$src_dir" -p1 -N -s -f --dry-run <"${patches[0]}" >/dev/null 2>&1; then
		return 1 # patched before the record existed, or changed: nothing to build on
	fi
	[ ${#applied[@]} -le ${#wanted[@]} ] || return 1
	local i
	for i in "${!applied[@]}"; do
		[ "${applied[$i]%% *}" = "${wanted[$i]%% *}" ] || return 1
	done
}
if ! series_state; then
	log "the source in $src_dir carries another revision of the series: extracting it afresh"
	rm -rf "$src_dir" "$src_record"
	source_ready
	series_state || die "a fresh source in $src_dir does not take patches/$KVER/$(basename "${patches[0]}"): a newer
linux-source-$KVER may have changed that code (or already carry the fix). Update or drop the patch."
fi
for ((i = ${#applied[@]}; i < ${#patches[@]}; i++)); do
	p=${patches[$i]}
	patch -d "$src_dir" -p1 -N -s -f --dry-run <"$p" >/dev/null 2>&1 ||
		die "patches/$KVER/$(basename "$p") does not apply to $src_dir after the patches before it: a
newer linux-source-$KVER may have changed that code (or already carry the fix). Update or drop the patch."
	log "applying patches/$KVER/$(basename "$p")"
	patch -d "$src_dir" -p1 -N -s <"$p" || die "applying $p failed"
	echo "${wanted[$i]}" >>"$series_record"
done
kernelversion=$(make -s -C "$src_dir" kernelversion)

# --- Cache key: everything that changes the build output ---------------------------------------
key=$( {
	echo "$KVER $src_pkgver $KFLAVOR LLVM=$LLVM ARCH=$ARCH"
	rustc -vV; bindgen --version; "clang$LLVM" --version | head -n1
	for f in "${FRAGMENTS[@]}"; do cat "$RUST_MODREF_TOP/kconfig/$f.config"; done
	[ ${#patches[@]} = 0 ] || diffs_of "${patches[@]}"
} | sha256sum | cut -c1-12)
out="$RUST_MODREF_CACHE/build/linux-$kernelversion-$ARCH-$KFLAVOR-$key"
kmake=(make -C "$src_dir" O="$out" ARCH="$ARCH" LLVM="$LLVM" -j"$(nproc)")

if [ -f "$out/.rust-modref-built" ]; then
	log "kernel $kernelversion ($KFLAVOR) already built in $out"
else
	need "clang$LLVM" "clang$LLVM"
	mkdir -p "$out"
	log "kernel $kernelversion: rustavailable check"
	"${kmake[@]}" rustavailable >"$out/rustavailable.log" 2>&1 ||
		die "the kernel says Rust is not available with this toolchain:
$(tail -n 5 "$out/rustavailable.log")"
	log "configuring: tinyconfig + kconfig/{$(IFS=,; echo "${FRAGMENTS[*]}")}.config"
	config_failed() { die "$1 failed; last lines of $out/config.log:
$(tail -n 10 "$out/config.log")"; }
	"${kmake[@]}" tinyconfig >"$out/config.log" 2>&1 || config_failed "make tinyconfig"
	frags=()
	for f in "${FRAGMENTS[@]}"; do frags+=("$RUST_MODREF_TOP/kconfig/$f.config"); done
	(cd "$out" && "$src_dir/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}") \
		>>"$out/config.log" 2>&1 || config_failed "merging kconfig/{$(IFS=,; echo "${FRAGMENTS[*]}")}.config"
	"${kmake[@]}" olddefconfig >>"$out/config.log" 2>&1 || config_failed "make olddefconfig"
	# Every option a fragment asks for must have survived olddefconfig's dependency resolution.
	bad=()
	while read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$out/.config" || bad+=("$line") ;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%% *}
			! grep -q "^$opt=" "$out/.config" || bad+=("$line") ;;
		esac
	done < <(cat "${frags[@]}")
	[ ${#bad[@]} -eq 0 ] || die "these fragment options did not stick (missing dependency?): ${bad[*]}"
	log "building kernel $kernelversion for $ARCH with LLVM=$LLVM on $(nproc) CPUs (about 11 minutes on 2 cores; log: $out/build.log)"
	start=$(date +%s)
	( "${kmake[@]}" all >"$out/build.log" 2>&1 ) &
	pid=$!
	# Poll every 2 s (the build's end is noticed at once), say where it is every minute.
	polls=0
	while kill -0 "$pid" 2>/dev/null; do
		sleep 2 & wait $! || true
		polls=$((polls + 1))
		[ $((polls % 30)) = 0 ] && kill -0 "$pid" 2>/dev/null &&
			log "  ... still building: $(grep -E '^\s+(CC|RUSTC|LD|AR)' "$out/build.log" | tail -n1 | xargs)"
	done
	wait "$pid" || die "kernel build failed; last lines of $out/build.log:
$(tail -n 20 "$out/build.log")"
	[ -f "$out/rust/libmacros.so" ] || die "kernel built without Rust support (no rust/libmacros.so)"
	log "kernel built in $(( $(date +%s) - start )) s"
	date -u +%FT%TZ >"$out/.rust-modref-built"
fi

mkdir -p "$RUST_MODREF_BUILD"
ln -sfn "$out" "$RUST_MODREF_BUILD/kdir"
cat >"$RUST_MODREF_BUILD/kernel.env" <<EOT
KDIR=$out
KERNELVERSION=$kernelversion
SOURCE_PACKAGE=linux-source-$KVER $src_pkgver
KFLAVOR=$KFLAVOR
LLVM=$LLVM
RUSTC=$(rustc --version)
ARCH=$ARCH
KIMAGE=$out/$RUST_MODREF_KIMAGE
QUICK_KEY=$(quick_key)
EOT
echo "$out"
