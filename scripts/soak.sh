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
python3 - "$out" "$rc" "$secs" "$cycles" "$table_cycles" "$splats" "$(basename "$KDIR")" \
	"$commit" <<'EOF' || rc=1
import json, re, sys, datetime
out, rc, secs, cycles, table_cycles, splats, kernel, commit = sys.argv[1:9]
ktap = open(f"{out}/soak.ktap", errors="replace").read() if __import__("os").path.exists(f"{out}/soak.ktap") else ""
def read(name, default=None):
    try:
        return open(f"{out}/{name}").read()
    except OSError:
        return default
verdicts = dict((m.group(3), "pass" if not m.group(1) else "fail") for m in
                re.finditer(r"^(not )?ok (\d+) (\w+)", ktap, re.M))
for m in re.finditer(r"^ok \d+ (\w+) # SKIP", ktap, re.M):
    verdicts[m.group(1)] = "skip"
# The cycles case's own figures, as it printed them (one definition of each).
removal = re.search(r"^# (\d+) cycles, patient removal p50/p99/max ([\d.]+)/([\d.]+)/([\d.]+) ms", ktap, re.M)
steps = re.search(r"^# a cycle's steps, mean ms: tables (\d+), rmmod-wait (\d+), reload (\d+), first answer (\d+)",
                  ktap, re.M)
step_means = dict(zip(("tables", "rmmod_wait", "reload", "first_answer"),
                      map(int, steps.groups()))) if steps else None
counters = re.search(r"^# counters: (.*)$", ktap, re.M)
stats = {k: int(v) if v.isdigit() else v for k, v in
         (kv.split("=", 1) for kv in (counters.group(1) if counters else "").split() if "=" in kv)}
load = json.loads(read("load.json", "null") or "null")
def target(t):  # 'Load { path: "/x/rust_consumer.ko", params: "" }' -> "load rust_consumer"
    m = re.match(r'Load \{ path: "(?:[^"]*/)?([^"/]+)\.ko"', t)
    return f"load {m.group(1)}" if m else t.split(" ")[0].lower()
points = {target(m.group(1)): {"failed": int(m.group(2)), "errnos": json.loads(m.group(3)),
                               "absorbed": int(m.group(4))} for m in
          re.finditer(r"^# fail-nth (.+?): (\d+) allocation\(s\) failed in turn(?: \(every \d+th\))?: (\{.*?\}), (\d+) absorbed",
                      ktap, re.M)}
kmemleak = re.search(r"^# kmemleak: (.*)$", ktap, re.M)
result = {
    "date": datetime.date.today().isoformat(),
    "kernel": kernel,
    "commit": commit,
    "wall_s": int(secs),
    "vm_exit": int(rc),
    "cycles": int(cycles),
    "table_cycles": int(table_cycles),
    "verdicts": verdicts,
    "removal_ms": dict(zip(("count", "p50", "p99", "max"),
                           (int(removal.group(1)), *map(float, removal.groups()[1:])))) if removal else None,
    "cycle_step_mean_ms": step_means,
    "load": None if load is None else {k: load.get(k) for k in
             ("threads", "duration_s", "calls", "ok", "enodev", "other_errors", "wrong_answers")}
            | {"instance_ids": len(load.get("instance_ids", []))},
    "counters": stats,
    "failure_points": points,
    "kmemleak": kmemleak.group(1) if kmemleak else None,
    "kernel_log_splats": int(splats),
}
json.dump(result, open("bench/soak.json", "w"), indent=2)
open("bench/soak.json", "a").write("\n")
l = result["load"] or {}
r = result["removal_ms"] or {}
print(f"soak: {cycles} cycles, removal p50/p99/max {r.get('p50')}/{r.get('p99')}/{r.get('max')} ms, "
      f"a cycle's steps (mean ms) {step_means}; "
      f"{l.get('calls')} calls, ok {l.get('ok')}, ENODEV {l.get('enodev')}, other {l.get('other_errors')}, "
      f"wrong {l.get('wrong_answers')}, {l.get('instance_ids')} instance ids; failure points {points}; "
      f"kmemleak: {result['kmemleak']}; splats {splats}; {secs} s (bench/soak.json)")
bad = [c for c, v in verdicts.items() if v != "pass"]
sys.exit(1 if bad or int(rc) != 0 or int(splats) != 0 or len(verdicts) < 6 else 0)
EOF
[ "$rc" -eq 0 ] && [ -s bench/soak.json ]
