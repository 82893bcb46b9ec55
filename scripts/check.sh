#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: rustfmt + clippy for the modules (the kernel's own rules), cargo fmt + clippy +
# unit tests for tools/. Fails on any diagnostic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
kdir=$1
cd "$RMR_TOP"
status=0

log "modules: rustfmt (the kernel's .rustfmt.toml)"
srctree=$(sed -n 's/^KBUILD_SRC *:= *//p; s/^include \(.*\)\/Makefile$/\1/p' "$kdir/Makefile" | head -n1)
[ -f "$srctree/.rustfmt.toml" ] || srctree=$kdir
rustfmt --check --edition 2021 --config-path "$srctree/.rustfmt.toml" \
	rust_consumer.rs rust_provider.rs provider_abi.rs || { echo "rustfmt: run 'rustfmt --edition 2021 --config-path $srctree/.rustfmt.toml *.rs'"; status=1; }

log "modules: clippy (CLIPPY=1), both builds"
for extra in "" "UNSAFE_SKIP_MODULE_GET=1"; do
	out=$(mktemp -d)
	cp Kbuild rust_consumer.rs rust_provider.rs provider_abi.rs "$out/"
	if ! make -s -C "$kdir" M="$out" LLVM="$LLVM" CLIPPY=1 $extra modules >"$out/clippy.log" 2>&1 ||
		grep -qE '^(warning|error)' "$out/clippy.log"; then
		echo "clippy ($extra):"; cat "$out/clippy.log"; status=1
	fi
	rm -rf "$out"
done

log "modules: every unsafe block has a SAFETY comment"
missing=$(awk '
	FNR == 1 { n = 0; delete win }
	{ win[n++ % 8] = $0 }
	/unsafe \{|unsafe impl/ {
		ok = 0
		for (i = 0; i < 8; i++) if (win[i] ~ /SAFETY/) ok = 1
		if (!ok) print FILENAME ":" FNR ": " $0
	}' rust_consumer.rs rust_provider.rs provider_abi.rs)
[ -z "$missing" ] || { echo "unsafe without a SAFETY comment:"; echo "$missing"; status=1; }
grep -nE '\.unwrap\(\)|\.expect\(' rust_consumer.rs rust_provider.rs provider_abi.rs &&
	{ echo "unwrap/expect in module code"; status=1; }

log "tools: cargo fmt --check, clippy -D warnings, cargo test"
(cd tools && cargo fmt --check) || status=1
(cd tools && cargo clippy --quiet --release --all-targets --locked -- -D warnings) || status=1
(cd tools && cargo test --quiet --release --locked) || status=1

[ $status -eq 0 ] && log "check: clean" || log "check: FAILED"
exit $status
