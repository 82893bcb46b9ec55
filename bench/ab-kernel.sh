#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Side-by-side in-kernel benchmark (RMC_IOC_BENCH) of several builds of the module pair, in one VM
# boot, interleaved (A B C A B C ...), so that the emulator's slow spells hit all alike:
#   scripts/vm-run.sh -- bench/ab-kernel.sh DIR_A DIR_B [DIR_C...] [ROUNDS]
# Each DIR holds rust_consumer.ko and rust_provider.ko built against the running kernel (the
# ioctl ABI must be the same). Prints, per variant and CPU count, each build's median ns/op over
# the rounds and, for every build after the first, the per-round ratio to the first (the two ran
# next to each other): median [min-max].
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
. "$top/selftests/rust_modref_lib.sh" # percentiles
rounds=5
dirs=("$@")
if [[ ${dirs[-1]} =~ ^[0-9]+$ ]]; then
	rounds=${dirs[-1]}
	unset 'dirs[-1]'
fi
[ ${#dirs[@]} -ge 2 ] || { echo "usage: $0 DIR_A DIR_B [DIR...] [ROUNDS]" >&2; exit 2; }
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
	for i in "${!dirs[@]}"; do
		dir=${dirs[$i]}
		insmod "$dir/rust_consumer.ko" && insmod "$dir/rust_provider.ko" || exit 1
		for cpus in 1 4; do
			"$bin/rmc-bench" kernel -n 200000 --reps 1 --cpus $cpus --exact >/dev/null 2>"$tmp/out" || exit 1
			sed -n "s/^\([a-z_]*\) *cpus=\([0-9]*\) *\([0-9.]*\) ns\/op.*/$r $i \1 \2 \3/p" "$tmp/out" >>"$tmp/all"
		done
		rmmod rust_provider && rmmod rust_consumer || exit 1
	done
done
echo "ns/op, median over $rounds interleaved rounds; ratio to [0]: median [min-max] of the rounds:"
for i in "${!dirs[@]}"; do echo "  [$i] ${dirs[$i]}"; done
for v in a_bare_call b_get_call_put c_full_dispatch; do
	for cpus in 1 4; do
		line="$v $cpus:"
		for i in "${!dirs[@]}"; do
			med=$(awk -v s="$i" -v v=$v -v c=$cpus '$2==s && $3==v && $4==c {print $5}' "$tmp/all" | percentiles 50)
			line+=" [$i] $med"
			[ "$i" = 0 ] && continue
			ratios=$(awk -v s="$i" -v v=$v -v c=$cpus '$3==v && $4==c && ($2==0 || $2==s) { x[$1, $2] = $5 }
				END { for (r = 1; r <= '"$rounds"'; r++) if (x[r, 0] > 0) printf "%.3f\n", x[r, s] / x[r, 0] }' "$tmp/all")
			line+=" (x$(percentiles 50 <<<"$ratios") [$(percentiles 0 <<<"$ratios")-$(percentiles 100 <<<"$ratios")])"
		done
		echo "$line"
	done
done
rm -rf "$tmp"
