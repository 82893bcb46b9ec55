#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make soak: reliability at scale, in one boot of the debug kernel with kmemleak on: CYCLES
# (default 500) patient removals and reloads of the provider under a 4-thread verified load,
# a configfs table added and withdrawn before each removal (CYCLE_TABLES=1), TABLE_CYCLES (default
# 500) table withdrawals and re-adds under load of their own, every allocation
# failure of the pair's syscalls (alloc_failures, the full run), then two kmemleak scans. Writes
# bench/soak.json (per-cycle removal p50/p99/max, calls, ok/ENODEV, wrong answers, instance ids,
# counters, failure points, verdicts) and prints a summary. Exit 1 if any case failed.
#
# Environment: CYCLES, TABLE_CYCLES, VM_TIMEOUT (default 14400 s), VM_CPUS.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

cycles=${CYCLES:-500}
table_cycles=${TABLE_CYCLES:-500}
for v in "$cycles" "$table_cycles"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || die "CYCLES and TABLE_CYCLES must be positive numbers, not '$v'"
done
export KDIR=$(readlink -f "${KDIR:-$RUST_MODREF_BUILD/kdir}")
out="$RUST_MODREF_BUILD/soak"
rm -rf "$out" && mkdir -p "$out"
cases=load_pair,cycles,withdraw_under_load,alloc_failures,kmemleak_clean,remove_in_order

log "soak: $cycles removal cycles, $table_cycles table cycles, alloc_failures, kmemleak ($cases)"
start=$(date +%s)
# The code that runs: files edited while the soak runs do not change it.
commit="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
# kunit.enable=0: the consumer's KUnit suite would run (and allocate) at each of the many loads.
VM_KMEMLEAK=1 VM_APPEND="kunit.enable=0 ${VM_APPEND:-}" scripts/vm-run.sh --timeout "${VM_TIMEOUT:-14400}" \
	--log "$out/vm-soak.log" -- bash -c "set -o pipefail; env CYCLES=$cycles CYCLE_TABLES=1 TABLE_CYCLES=$table_cycles \
RESULTS_DIR=$(printf %q "$out") selftests/rust_modref.sh -t $cases | tee $(printf %q "$out/soak.ktap")"
rc=$?
secs=$(($(date +%s) - start))

splat_re=$(. selftests/rust_modref_lib.sh && echo "$SPLAT_RE")
splats=$(grep -cE "$splat_re" "$out/vm-soak.log")
python3 scripts/soak_report.py "$out" "$rc" "$secs" "$cycles" "$table_cycles" "$splats" \
	"$(basename "$KDIR")" "$commit" || rc=1
[ "$rc" -eq 0 ] && [ -s bench/soak.json ]
