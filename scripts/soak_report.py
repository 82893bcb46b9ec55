#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make soak's report: bench/soak.json from the run's KTAP (the cases print their own figures)
and the load generator's JSON report; prints a summary; exits 1 unless every case passed in a
clean run.

Usage: soak_report.py OUT VM_EXIT SECONDS CYCLES TABLE_CYCLES SPLATS KERNEL COMMIT
"""
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
