#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make profile, the part that runs in the VM: where the time of each benchmarked path goes.
# Runs each workload on CPU 0 and samples that CPU with perf (cpu-clock: TCG offers no hardware
# counters), then writes a flat profile per workload into bench/<flavor>/profile/<name>.txt.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
out=$top/bench/${KFLAVOR:-debug}/profile
iters=${PROFILE_ITERS:-3000000}
secs=${PROFILE_SECONDS:-5}
cd "$top" || exit 1
. selftests/rust_modref_lib.sh # SPLAT_RE
command -v perf >/dev/null || { echo "profile: perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
tmp=$(mktemp -d)
echo 0 >/proc/sys/kernel/kptr_restrict
echo -1 >/proc/sys/kernel/perf_event_paranoid
insmod rust_consumer.ko && insmod rust_provider.ko || exit 1
# Kernel addresses (ours included) are named from kallsyms by bench/perf-flat.py.
cat /proc/kallsyms >"$tmp/kallsyms"

profile() {
	local name=$1; shift
	echo "profile: $name: $*" >&2
	perf record -q -C 0 -e cpu-clock -F 4999 -o "$tmp/$name.data" -- taskset -c 0 "$@" >"$tmp/$name.out" 2>&1 ||
		{ echo "profile: $name failed: $(cat "$tmp/$name.out")" >&2; exit 1; }
	{
		echo "# $name: $*"
		cat "$tmp/$name.out"
		perf script -i "$tmp/$name.data" -F ip,sym,dso 2>/dev/null | bench/perf-flat.py "$tmp/kallsyms"
	} >"$out/$name.txt"
}
profile kernel-a "$bin/rmc-bench" kernel -n "$iters" --cpus 1 --reps 1 --variant a
profile kernel-b "$bin/rmc-bench" kernel -n "$iters" --cpus 1 --reps 1 --variant b
profile kernel-c "$bin/rmc-bench" kernel -n "$iters" --cpus 1 --reps 1 --variant c
profile user-nop "$bin/rmc-load" -j 1 -d "$secs" --mix nop=1 --allow none
profile user-echo "$bin/rmc-load" -j 1 -d "$secs" --mix echo=1 --allow none
profile user-compute "$bin/rmc-load" -j 1 -d "$secs" --mix compute=1 --allow none

rmmod rust_provider && rmmod rust_consumer
rm -rf "$tmp"
if dmesg | grep -qE "$SPLAT_RE"; then
	echo "profile: the kernel log shows a splat" >&2; exit 1
fi
echo "profile: flat profiles in $out" >&2
