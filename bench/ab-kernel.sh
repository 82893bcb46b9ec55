#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A/B of the in-kernel benchmark (RMC_IOC_BENCH) between two builds of the module pair, in one VM
# boot, interleaved (A B A B ...), so that the emulator's slow spells hit both alike:
#   scripts/vm-run.sh -- bench/ab-kernel.sh DIR_A DIR_B [ROUNDS]
# Each DIR holds rust_consumer.ko and rust_provider.ko built against the running kernel (the
# ioctl ABI must be the same). Prints, per variant and CPU count, the median ns/op of each side.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
a=$1 b=$2 rounds=${3:-5}
tmp=$(mktemp -d)
for r in $(seq "$rounds"); do
	for side in a b; do
		dir=${!side}
		insmod "$dir/rust_consumer.ko" && insmod "$dir/rust_provider.ko" || exit 1
		for cpus in 1 4; do
			"$bin/rmc-bench" kernel -n 200000 --reps 1 --cpus $cpus --exact >/dev/null 2>"$tmp/out" || exit 1
			sed -n "s/^\([a-z_]*\) *cpus=\([0-9]*\) *\([0-9.]*\) ns\/op.*/$side \1 \2 \3/p" "$tmp/out" >>"$tmp/all"
		done
		rmmod rust_provider && rmmod rust_consumer || exit 1
	done
done
echo "variant cpus: median ns/op A (${a}) vs B (${b}), $rounds interleaved rounds"
for v in a_bare_call b_get_call_put c_full_dispatch; do
	for cpus in 1 4; do
		med() { awk -v s="$1" -v v=$v -v c=$cpus '$1==s && $2==v && $3==c {print $4}' "$tmp/all" | sort -n |
			awk '{x[NR]=$1} END {print (NR%2) ? x[(NR+1)/2] : (x[NR/2]+x[NR/2+1])/2}'; }
		echo "$v $cpus: $(med a) vs $(med b)"
	done
done
rm -rf "$tmp"
