#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Side-by-side in-kernel benchmark (RMC_IOC_BENCH) of several builds of the module pair, in one VM
# boot, interleaved (A B C A B C ...), so that the emulator's slow spells hit all alike:
#   scripts/vm-run.sh -- bench/ab-kernel.sh DIR_A DIR_B [DIR_C...] [ROUNDS]
# Each DIR holds rust_consumer.ko and rust_provider.ko built against the running kernel (the
# ioctl ABI must be the same). Prints, per variant and CPU count, the median ns/op of each build.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
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
			sed -n "s/^\([a-z_]*\) *cpus=\([0-9]*\) *\([0-9.]*\) ns\/op.*/$i \1 \2 \3/p" "$tmp/out" >>"$tmp/all"
		done
		rmmod rust_provider && rmmod rust_consumer || exit 1
	done
done
echo "median ns/op over $rounds interleaved rounds:"
for i in "${!dirs[@]}"; do echo "  [$i] ${dirs[$i]}"; done
for v in a_bare_call b_get_call_put c_full_dispatch; do
	for cpus in 1 4; do
		line="$v $cpus:"
		for i in "${!dirs[@]}"; do
			med=$(awk -v s="$i" -v v=$v -v c=$cpus '$1==s && $2==v && $3==c {print $4}' "$tmp/all" | sort -n |
				awk '{x[NR]=$1} END {print (NR%2) ? x[(NR+1)/2] : (x[NR/2]+x[NR/2+1])/2}')
			line+=" [$i] $med"
		done
		echo "$line"
	done
done
rm -rf "$tmp"
