#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Flat profile from `perf script -F ip,sym,dso` output, with kernel addresses resolved by kallsyms.

perf cannot name the functions of an out-of-tree module here (no .ko under the guest's module
path with a matching build), so every kernel-space sample is resolved against a copy of
/proc/kallsyms (which lists module functions too) and demangled with c++filt when present.

    perf-flat.py KALLSYMS [--min PERCENT] < perf-script-output
"""
import bisect
import collections
import subprocess
import sys


def main():
    kallsyms, min_pct = sys.argv[1], 0.5
    if len(sys.argv) > 3 and sys.argv[2] == "--min":
        min_pct = float(sys.argv[3])
    addrs, names = [], []
    for line in open(kallsyms):
        f = line.split()
        if len(f) >= 3 and f[1] in "tTwW":
            addr = int(f[0], 16)
            if addr:
                addrs.append(addr)
                names.append(f"{f[2]} {f[3]}" if len(f) > 3 else f"{f[2]} [vmlinux]")
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    addrs = [addrs[i] for i in order]
    names = [names[i] for i in order]

    counts = collections.Counter()  # (where, symbol) -> samples
    total = 0
    for line in sys.stdin:
        f = line.split(None, 1)
        if not f:
            continue
        try:
            ip = int(f[0], 16)
        except ValueError:
            continue
        total += 1
        if ip >= 0xFFFF800000000000:
            i = bisect.bisect_right(addrs, ip) - 1
            sym, where = names[i].split(" ", 1) if i >= 0 else ("[unknown]", "[kernel]")
        else:
            # "SYMBOL (DSO)"; the symbol may contain spaces and parentheses, the DSO comes last.
            sym, _, dso = (f[1].strip() if len(f) > 1 else "").rpartition(" (")
            where = f"[{dso.rstrip(')').rsplit('/', 1)[-1] or 'user'}]"
            sym = sym or "[unknown]"
        counts[(where, sym)] += 1
    if not total:
        sys.exit("perf-flat: no samples")
    rows = [(k, c) for k, c in counts.most_common() if 100.0 * c / total >= min_pct]
    mangled = "\n".join(sym for (_, sym), _ in rows)
    try:
        plain = subprocess.run(["c++filt"], input=mangled, capture_output=True, text=True,
                               check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        plain = mangled.split("\n")
    print(f"# {total} samples; functions with at least {min_pct}% of them")
    for ((where, _), c), sym in zip(rows, plain):
        print(f"{100.0 * c / total:6.2f}%  {where:18} {sym}")


if __name__ == "__main__":
    main()
