#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The consumer before and after a change, side by side in one boot of the KFLAVOR kernel:
#   KFLAVOR=fast|inline [AB_NAME=NAME] [AB_BASE_FILES="FILE..."] bench/ab-series.sh BASE [ROUNDS]
# builds the modules of commit BASE (with AB_BASE_FILES: of the working tree with those files as
# BASE had them) and of the working tree against the cached kernel of that flavour, then runs
# bench/ab-kernel.sh on both (BASE first in every round) and writes
# bench/series/${AB_NAME:-ab-$KFLAVOR}.txt. Used to measure what the kernel series in patches/
# costs the consumer against its own copies of the same code (patches/7.3/0000-cover-letter.patch),
# and that a change to the benchmark's locking left its figures alone (bench/README.md).
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
base=${1:?usage: KFLAVOR=fast|inline $0 BASE [ROUNDS]}
rounds=${2:-9}
cd "$RUST_MODREF_TOP"
kdir=$(scripts/kernel.sh)
scripts/build-tools.sh >/dev/null
[ "$KFLAVOR" != inline ] || export RUSTUP_TOOLCHAIN=$INLINE_RUSTC
work=$RUST_MODREF_BUILD/ab-series
rm -rf "$work" && mkdir -p "$work/head"
sources=(Kbuild rust_consumer.rs rust_provider.rs provider_abi.rs consumer_uapi.rs consumer provider)
cp -r "${sources[@]}" "$work/head/"
if [ -n "${AB_BASE_FILES:-}" ]; then
	mkdir -p "$work/base" && cp -r "${sources[@]}" "$work/base/"
	for f in $AB_BASE_FILES; do
		git show "$base:$f" >"$work/base/$f" || die "$base has no $f"
	done
else
	git worktree add -q --detach "$work/base" "$base"
	trap 'git worktree remove --force "$work/base"' EXIT
fi
for d in base head; do
	make -s -C "$kdir" M="$work/$d" LLVM="$LLVM" modules >"$work/$d.log" 2>&1 ||
		die "building the modules of $d failed: $work/$d.log"
done
mkdir -p bench/series
out=bench/series/${AB_NAME:-ab-$KFLAVOR}.txt
{
	echo "# $(date -u +%F) $(basename "$kdir"): base $(git rev-parse --short "$base")${AB_BASE_FILES:+ ($AB_BASE_FILES only)}, head $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo +changes)"
	VM_APPEND="tsc=reliable ${VM_APPEND:-}" KDIR=$kdir scripts/vm-run.sh --log "$work/vm.log" -- \
		bench/ab-kernel.sh "$work/base" "$work/head" "$rounds" 2>&1 | grep -v '^\['
} | tee "$out"
