#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench, the part that runs in the VM: in-kernel microbenchmarks, userspace throughput,
# removal latency (rmmod-wait vs modprobe -r --wait) and a load timeline across a removal and a
# reload. Writes raw JSON into bench/raw/; the host turns it into bench/results.json and plots.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
raw=$top/bench/${KFLAVOR:-debug}/raw
# Repetitions: every comparison is made of pairs measured next to each other, and each target's
# verdict rests on the interval of its pairs (bench/README.md: how many, and why).
reps=${BENCH_REPS:-15}
secs=${BENCH_SECONDS:-15}
iters=${BENCH_ITERS:-200000}
cd "$top" || exit 1
. selftests/rust_modref_lib.sh # SPLAT_RE, nap, now_ms, percentiles
lib_init
rm -rf "$raw" && mkdir -p "$raw"
tmp=$(mktemp -d)
log() { echo "bench: $*" >&2; }

insmod rust_consumer.ko && insmod rust_provider.ko || exit 1
for t in rmc-load rmc-bench rmmod-wait; do "$bin/$t" --version >/dev/null; done

cat >"$raw/env.json" <<EOT
{"kernel": "$(uname -r)", "flavor": "${KFLAVOR:-debug}", "guest_cpus": $(nproc),
 "emulator": "QEMU $(qemu-system-x86_64 --version 2>/dev/null | head -n1 | awk '{print $4}') $(dmesg | grep -q 'Hypervisor detected: KVM' && echo KVM || echo 'TCG (no KVM)')",
 "host_cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)",
 "kasan": $(dmesg | grep -q KernelAddressSanitizer && echo true || echo false),
 "iters": $iters, "seconds_per_throughput_run": $secs, "removal_reps": $reps,
 "clocksource": "$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)",
 "cmdline": "$(sed 's/"/\\"/g' /proc/cmdline)"}
EOT

kreps=${BENCH_KERNEL_REPS:-15}
# The host's speed, at the start and again at the end: the bare call on one CPU.
host_speed() {
	"$bin/rmc-bench" kernel -n "$iters" --reps 5 --cpus 1 --exact --variant a >"$raw/host-speed-$1.json" 2>/dev/null
}
host_speed start || exit 1
log "in-kernel microbenchmark ($iters iterations per thread, $kreps interleaved repetitions)"
"$bin/rmc-bench" kernel -n "$iters" --reps "$kreps" >"$raw/kernel.json" || exit 1

# Userspace throughput in rounds of 1 s per mix, the mixes interleaved within a round, so that the
# emulator's slow spells hit all three alike; the report takes medians over the rounds.
for t in 1 2 4; do
	log "userspace: nop, echo, compute at $t thread(s): $secs rounds of 1 s each"
	for r in $(seq "$secs"); do
		for mix in nop echo compute; do
			"$bin/rmc-load" -j "$t" -d 1 --mix "$mix=1" --allow none --json >"$raw/user-$mix-$t-$r.json" 2>/dev/null ||
				{ log "rmc-load $mix $t failed"; exit 1; }
		done
	done
done

# Removal latency. "internal": rmmod-wait's own clock from its first attempt to the module being
# gone. "external": the whole command, including starting the process (~0.4 s in this guest).
# "provider_exit": the part spent in the provider's exit (its log line), i.e. in this project's
# code; the rest of a removal is the kernel's module loader freeing the module.
modroot=$tmp/modroot
kver=$(uname -r)
mkdir -p "$modroot/lib/modules/$kver/extra"
cp rust_provider.ko rust_consumer.ko "$modroot/lib/modules/$kver/extra/"
depmod -b "$modroot" "$kver"
load_start() { "$bin/rmc-load" -j 4 --until-stopped >/dev/null 2>&1 & load_pid=$!; nap 1; }
load_stop() { kill -TERM "$load_pid"; wait "$load_pid"; }
declare -A samples
# A sample that was not measured is "null": it keeps its place, so that the i-th samples of two
# series stay one pair.
sample() { samples[$1]+="${2:-null} "; }
# syscalls NAME MODE CMD...: run CMD under strace and take the tool's time from entering its first
# delete_module to returning from its last: a removal strategy's own time, free of process
# start-up (which under load is most of "external"), on the same footing for both tools. Also
# records how many attempts it made. strace stops the tool only at delete_module when the kernel
# has seccomp filters (CONFIG_SECCOMP_FILTER; the benchmark kernels do not), else at every syscall.
have_strace=$(command -v strace || true)
[ -n "$have_strace" ] || log "strace not found (Debian: apt-get install strace): no *_syscalls samples"
strace_opts=(-q -f -ttt -T -e trace=delete_module)
grep -q '^Seccomp_filters:' /proc/self/status && strace_opts+=(--seccomp-bpf)
syscalls() {
	local name=$1 mode=$2 st=$tmp/strace.txt
	shift 2
	if [ -z "$have_strace" ]; then "$@"; return; fi
	strace "${strace_opts[@]}" -o "$st" "$@"
	local rc=$?
	sample "${name}_${mode}_syscalls" "$(awk '/delete_module\("rust_provider"/ {
		if (!n++) first = $2 + 0
		last = $2 + 0; d = $NF; gsub(/[<>]/, "", d); end = last + d
	} END { if (n) printf "%.1f", (end - first) * 1000 }' "$st")"
	sample "${name}_${mode}_attempts" "$(grep -c 'delete_module("rust_provider"' "$st")"
	return $rc
}
# Both sides reloaded: modprobe -r also removes the consumer it no longer needs.
reload() {
	[ -d /sys/module/rust_consumer ] || insmod rust_consumer.ko
	[ -d /sys/module/rust_provider ] || insmod rust_provider.ko
}
# One removal by each tool, plain (internal and external time) and under strace (its syscalls),
# each from the same situation (idle, or a fresh 4-thread load), the provider reloaded after.
rmmod_wait_plain() {
	local mode=$1 t0 t1 out
	[ $mode = load ] && load_start
	t0=$(now_ms)
	out=$("$bin/rmmod-wait" --wait --verbose --timeout 30 rust_provider 2>&1)
	t1=$(now_ms)
	[ $mode = load ] && load_stop
	sample "rmmod_wait_${mode}_internal" "$(sed -n 's/.*attempt(s), \([0-9.]*\) ms/\1/p' <<<"$out")"
	sample "rmmod_wait_${mode}_external" $((t1 - t0))
	sample "provider_exit_${mode}" "$(dmesg -t | sed -n 's/.*(exit) withdrew .* in \([0-9]*\) us.*/\1/p' |
		tail -n1 | awk '{printf "%.3f", $1 / 1000}')"
	reload
}
rmmod_wait_strace() {
	[ $1 = load ] && load_start
	syscalls rmmod_wait "$1" "$bin/rmmod-wait" --wait --timeout 30 rust_provider
	[ $1 = load ] && load_stop
	reload
}
modprobe_strace() {
	[ $1 = load ] && load_start
	syscalls modprobe_wait "$1" timeout 30 modprobe -d "$modroot" -r --wait 20000 rust_provider
	[ $1 = load ] && load_stop
	reload
}
modprobe_plain() {
	local mode=$1 t0 t1 rc
	[ $mode = load ] && load_start
	t0=$(now_ms)
	timeout 30 modprobe -d "$modroot" -r --wait 20000 rust_provider
	rc=$?
	t1=$(now_ms)
	[ $mode = load ] && load_stop
	[ -d /sys/module/rust_provider ] && rc=gone_not
	sample "modprobe_wait_${mode}_external" "$((t1 - t0))"
	[ "$rc" = 0 ] || log "modprobe -r --wait: exit $rc"
	reload
}
# Each repetition is one pair per comparison; the tools take turns going first (odd repetitions
# rmmod-wait, even ones modprobe), so that neither always meets the guest right after a reload.
for i in $(seq "$reps"); do
	for mode in idle load; do
		log "removal $i/$reps, $mode"
		if [ $((i % 2)) = 1 ]; then
			rmmod_wait_plain $mode; rmmod_wait_strace $mode; modprobe_strace $mode; modprobe_plain $mode
		else
			modprobe_plain $mode; modprobe_strace $mode; rmmod_wait_strace $mode; rmmod_wait_plain $mode
		fi
	done
done
{
	echo "{"
	first=1
	for k in "${!samples[@]}"; do
		[ $first = 1 ] || echo ","
		first=0
		med=$(tr ' ' '\n' <<<"${samples[$k]}" | grep -v -e '^$' -e '^null$' | percentiles 50)
		[ "$med" != - ] || med=null
		printf '"%s": {"median_ms": %s, "samples_ms": [%s]}' "$k" "$med" "$(xargs <<<"${samples[$k]}" | tr ' ' ',')"
	done
	echo "}"
} >"$raw/removal.json"

log "timeline: 4 threads for 8 s, patient removal at 1.5 s, reload 1 s after it completes"
t_start=$(now_ms)
"$bin/rmc-load" -j 4 -d 8 --json --min-instances 2 >"$raw/timeline.json" 2>"$tmp/timeline.txt" &
load_pid=$!
nap 1.5
t_rm=$(now_ms)
"$bin/rmmod-wait" --wait --timeout 30 rust_provider
t_gone=$(now_ms)
nap 1
t_reload=$(now_ms)
insmod rust_provider.ko
wait "$load_pid" || { log "timeline load failed: $(cat "$tmp/timeline.txt")"; exit 1; }
awk -v s="$t_start" -v a="$t_rm" -v b="$t_gone" -v c="$t_reload" 'BEGIN {
	printf "{\"removal started\": %.3f, \"provider gone\": %.3f, \"reload\": %.3f}\n", (a-s)/1000, (b-s)/1000, (c-s)/1000 }' \
	>"$raw/timeline-marks.json"

host_speed end || exit 1
rmmod rust_provider && rmmod rust_consumer
rm -rf "$tmp"
if dmesg | grep -qE "$SPLAT_RE"; then
	log "the kernel log shows a splat"; exit 1
fi
# Clock reads are on every userspace call's path: a clocksource switch mid-run skews everything
# measured after it (make bench boots with tsc=reliable to prevent it).
if dmesg | grep -q 'Marking clocksource tsc unstable'; then
	log "the guest switched away from the TSC clocksource during the run: results not comparable"; exit 1
fi
log "done"
