#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make boot-report: BOOTS (default 30) consecutive `vm-run.sh -- true` boots of the test kernel,
# each timed from QEMU's start to the guest command's start (vm-run's "boot took N s") and as a
# whole; counts the stalls vm-run retried and the boots that failed. Writes
# bench/boot-report.json and prints min/median/max. Exit 1 if any boot failed (an unrecovered
# stall is exit 125).
#
# Environment: BOOTS, VM_CPUS, VM_KVM, VM_APPEND (as for vm-run.sh).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$RUST_MODREF_TOP/selftests/rust_modref_lib.sh" # percentiles

boots=${BOOTS:-30}
[[ $boots =~ ^[1-9][0-9]*$ ]] || die "BOOTS must be a positive number, not '$boots'"
export KDIR=$(readlink -f "${KDIR:-$RUST_MODREF_BUILD/kdir}")
out="$RUST_MODREF_BUILD/boot-report"
rm -rf "$out" && mkdir -p "$out"

starts=() walls=() retried=0 failed=0
# Where a boot's time goes, by the guest's clock (the console's timestamps): the kernel until it
# starts /init, virtme-ng-init until udev starts (mounts, systemd-tmpfiles), udev's coldplug and
# settle, and the command's start. One "t_init t_udev t_settled t_script" line per boot.
phases=()
phase_times() { # LOG
	tr -d '\r' <"$1" | awk '
		function t(l) { sub(/^\[ */, "", l); sub(/\].*/, "", l); return l + 0 }
		/Run \/init as init process/ && !i { i = t($0) }
		/virtme-ng-init: Starting systemd-udevd/ && !u { u = t($0) }
		/virtme-ng-init: udev is done/ && !d { d = t($0) }
		/virtme-ng-init: starting script/ && !s { s = t($0) }
		END { if (i && u && d && s) printf "%.1f %.1f %.1f %.1f\n", i, u, d, s }'
}
for i in $(seq "$boots"); do
	t0=$(date +%s%N)
	scripts/vm-run.sh --timeout 900 --log "$out/boot-$i.log" -- true 2>"$out/boot-$i.err" >/dev/null
	rc=$?
	wall=$(( ($(date +%s%N) - t0 + 500000000) / 1000000000 ))
	started=$(sed -n 's/.*guest command started: boot took \([0-9]*\) s.*/\1/p' "$out/boot-$i.err" | tail -n 1)
	grep -q "boot stalled after" "$out/boot-$i.err" && retried=$((retried + 1))
	if [ $rc -ne 0 ] || [ -z "$started" ]; then
		failed=$((failed + 1))
		log "boot $i/$boots: FAILED (exit $rc): $(tail -n 1 "$out/boot-$i.err")"
		continue
	fi
	starts+=("$started") walls+=("$wall")
	p=$(phase_times "$out/boot-$i.log") && [ -n "$p" ] && phases+=("$p")
	log "boot $i/$boots: guest command after $started s, whole run $wall s$(grep -q 'boot stalled after' "$out/boot-$i.err" && echo ' (a stall was retried)')"
done

# stats NUMBERS...: "min median max" (null null null when there are none).
stats() {
	local r
	r=$(printf '%s\n' "$@" | grep . | percentiles 0 50 100)
	[ "$r" != "-/-/-" ] || r="null/null/null"
	echo "${r//\// }"
}
read -r smin smed smax <<<"$(stats "${starts[@]}")"
# Medians of the phases, in seconds to a tenth.
phase_median() { # FIELD
	local v=() m
	for p in "${phases[@]}"; do v+=("$(awk -v f="$1" '{ print $f }' <<<"$p")"); done
	m=$(printf '%s\n' "${v[@]}" | grep . | percentiles 50)
	if [ "$m" = - ]; then echo null; else printf '%.1f' "$m"; fi
}
p_init=$(phase_median 1) p_udev=$(phase_median 2) p_settled=$(phase_median 3) p_script=$(phase_median 4)
read -r wmin wmed wmax <<<"$(stats "${walls[@]}")"
kernel=$(basename "$KDIR")
cat >bench/boot-report.json <<EOF
{
  "date": "$(date -u +%Y-%m-%d)",
  "kernel": "$kernel",
  "accel": "$(grep -o 'KVM\|TCG' "$out/boot-1.err" | head -n 1)",
  "vcpus": ${VM_CPUS:-4},
  "boots": $boots,
  "failed": $failed,
  "stalls_retried": $retried,
  "boot_to_command_s": {"min": $smin, "median": $smed, "max": $smax},
  "whole_run_s": {"min": $wmin, "median": $wmed, "max": $wmax},
  "guest_clock_median_s": {"init_started": $p_init, "udev_started": $p_udev, "udev_settled": $p_settled, "command_started": $p_script},
  "boot_to_command_each_s": [$(IFS=,; echo "${starts[*]}")]
}
EOF
echo "$boots boots of $kernel: boot to guest command min/median/max $smin/$smed/$smax s," \
	"whole run $wmin/$wmed/$wmax s; $retried stall(s) retried, $failed failed (bench/boot-report.json)"
echo "guest clock, medians: /init at $p_init s, udev started at $p_udev s, settled at $p_settled s, command at $p_script s"
[ $failed -eq 0 ]
