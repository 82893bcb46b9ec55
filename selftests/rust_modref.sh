#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for the rust_provider / rust_consumer module pair: safe module reference counting.
#
# Loads the pair, drives calls through /dev/rust_consumer and removes the provider while calls are
# in flight, checking that the consumer's try_module_get/module_put discipline turns every call
# into either a verified answer or ENODEV, never a crash. After every case the kernel log is
# scanned for splats (BUG, WARNING, Oops, KASAN, lockdep, refcount, UBSAN, hung tasks).
#
# Needs: root, insmod/rmmod (kmod), the modules built against the running kernel (MODDIR, default
# the directory above this one), and for the load cases the tools built in tools/target/release
# (TOOLS_DIR). Missing pieces make the whole test skip (exit 4) with the reason.
#
# Usage: rust_modref.sh [-t CASE[,CASE...]] [-l]
#   -t  run only these cases (names as printed by -l)
#   -l  list the cases
# Environment: MODDIR, NEG_MODDIR (negative-control build), TOOLS_DIR, CYCLES (case cycles).

set -u

readonly DIR=$(cd "$(dirname "$0")" && pwd)
readonly MODDIR=${MODDIR:-$(cd "$DIR/.." && pwd)}
readonly NEG_MODDIR=${NEG_MODDIR:-$MODDIR/build/negative-control}
readonly TOOLS_DIR=${TOOLS_DIR:-$MODDIR/tools/target/release}
readonly PROVIDER=rust_provider
readonly CONSUMER=rust_consumer
readonly DEV=/dev/rust_consumer
# Kernel log lines that mean something went wrong in the kernel.
readonly SPLAT_RE='BUG:|WARNING:|Oops|KASAN:|general protection fault|possible circular locking|refcount_t:|UBSAN:|INFO: task .* blocked|Unable to handle|kernel BUG'

if [ -f "$DIR/../kselftest/ktap_helpers.sh" ]; then
	. "$DIR/../kselftest/ktap_helpers.sh"
else
	. "$DIR/ktap_helpers.sh"
fi

ALL_CASES=(
	vm_cpus
	provider_needs_consumer
	registration_refused
	load_pair
	registry
	calls_verified
	bench_kthreads
	no_provider_enodev
	inflight_blocks_removal
	patient_removal_under_load
	reload_under_load
	cycles
	unregister_race
	removal_timeout
	bad_input
	consumer_cannot_go_first
	remove_in_order
)
readonly CYCLES=${CYCLES:-3}
readonly FUZZ_COUNT=${FUZZ_COUNT:-10000}
# Bound for a patient removal under load (TCG-emulated 4-vCPU guest, debug kernel).
readonly REMOVAL_BOUND_S=${REMOVAL_BOUND_S:-10}
TMP=$(mktemp -d /tmp/rust_modref.XXXXXX)

# ------------------------------------------------------------------------------------------------
# Helpers.

BG_PIDS=()
cleanup() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	BG_PIDS=()
	exec 3<&- 2>/dev/null
	unload_all
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM HUP

# Why the current case failed; printed as a KTAP diagnostic.
REASON=""
fail() {
	REASON="$*"
	return 1
}

is_loaded() { [ -d "/sys/module/$1" ]; }

# Starting a process costs ~0.4 s in a TCG guest on a debug kernel, so waits and clocks here use
# bash builtins: nap SECONDS sleeps by timing out a read on a pipe nobody writes.
exec {NAP_FD}<> <(:)
nap() { read -rt "$1" -u "$NAP_FD"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# loop_until TIMEOUT_S CMD...: poll CMD until it succeeds or the timeout passes.
loop_until() {
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	while ! "$@"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		nap 0.05
	done
}

load() {
	local mod=$1 dir=${2:-$MODDIR}
	shift 2 2>/dev/null || shift
	insmod "$dir/$mod.ko" "$@"
}

unload_all() {
	local m
	for m in $PROVIDER $CONSUMER; do
		if is_loaded "$m"; then
			# Bounded: refcount must drain (no load runs after cleanup killed it).
			loop_until 10 rmmod "$m" 2>/dev/null || echo "# cleanup: could not remove $m" >&2
		fi
	done
}

# Kernel log from the marker line on.
log_since() { dmesg | sed -n "/$1/,\$p"; }

# run_case NAME: one KTAP line for test_NAME, failing it on a splat in the kernel log. The
# negative control inverts the log check: it must find a splat, and reports XFAIL.
run_case() {
	local name=$1 marker splats rc
	marker="rust_modref_selftest: case $name start $$.$RANDOM"
	echo "$marker" >/dev/kmsg
	REASON=""
	SKIP_REASON=""
	"test_$name"
	rc=$?
	splats=$(log_since "$marker" | grep -E "$SPLAT_RE")
	if [ "$name" = negative_control ] && [ -z "$SKIP_REASON" ]; then
		# Expected to fail: the fault must show in the log, or the test has no teeth.
		if [ $rc -eq 0 ] && [ -n "$splats" ]; then
			ktap_print_msg "$name: the kernel caught the use-after-free:"
			echo "$splats" | head -n 5 | sed 's/^/#   /'
			ktap_test_xfail "$name"
		else
			ktap_print_msg "$name: ${REASON:-no fault in the kernel log: the selftest would not catch a missing module reference}"
			ktap_test_fail "$name"
		fi
		return
	elif [ -n "$splats" ]; then
		ktap_print_msg "$name: kernel log shows a splat:"
		echo "$splats" | head -n 20 | sed 's/^/#   /'
		rc=1
		REASON=${REASON:-"kernel splat during the case"}
	fi
	if [ -n "$SKIP_REASON" ]; then
		ktap_test_skip "$name ($SKIP_REASON)"
	elif [ $rc -eq 0 ]; then
		ktap_test_pass "$name"
	else
		ktap_print_msg "$name: $REASON"
		ktap_test_fail "$name"
	fi
}

skip() {
	SKIP_REASON="$*"
	return 0
}


refcnt() {
	local v=-1
	read -r v <"/sys/module/$PROVIDER/refcnt" 2>/dev/null
	echo "$v"
}
refcnt_at_least() { [ "$(refcnt)" -ge "$1" ]; }

ensure_consumer() { is_loaded $CONSUMER || load $CONSUMER; }
ensure_pair() { ensure_consumer && { is_loaded $PROVIDER || load $PROVIDER; }; }

# The answer compute(x) must give for instance id: SplitMix64's finaliser of x ^ id, in bash's
# wrapping 64-bit arithmetic (logical shifts by masking). Independent of the Rust tools.
compute_expected() {
	local z=$((($1 ^ $2) + 0x9e3779b97f4a7c15))
	z=$(((z ^ ((z >> 30) & 0x3ffffffff)) * 0xbf58476d1ce4e5b9))
	z=$(((z ^ ((z >> 27) & 0x1fffffffff)) * 0x94d049bb133111eb))
	z=$((z ^ ((z >> 31) & 0x1ffffffff)))
	printf '%u\n' $z
}

# text REQUEST: one request through the text interface; prints the answer, returns write's status.
text() {
	local rc
	exec 3<>$DEV || return 1
	echo "$1" >&3
	rc=$?
	cat <&3
	exec 3<&-
	return $rc
}

# field NAME TEXT: the value of NAME=... in TEXT (any line).
field() { sed -n "s/.*[ ^]$1=\([^ ]*\).*/\1/p" <<<" ${2//$'\n'/ }"; }

# hold_loop_background: back-to-back 1 s holds until killed or a hold fails (ENODEV once the
# provider is gone); HOLD_LOOP_PIDS collects them.
HOLD_LOOP_PIDS=()
hold_loop_background() {
	(while exec 4<>$DEV && echo "hold $PROVIDER 1000000" >&4 2>/dev/null; do
		cat <&4 >/dev/null
	done) &
	HOLD_LOOP_PIDS+=($!)
	BG_PIDS+=($!)
}
# In the negative-control build the counters still move: refs_held counts calls in flight.
holds_in_flight() {
	local line
	exec 5<>$DEV || return 1
	echo stats >&5 && read -r line <&5
	exec 5<&-
	[ "$(field refs_held " $line")" -ge 1 ] 2>/dev/null
}
stop_hold_loops() { # bounded: each loop ends once its current hold (<= 1 s) returns
	local pid
	for pid in "${HOLD_LOOP_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		wait_pid "$pid" 5
	done
	HOLD_LOOP_PIDS=()
}

wait_pid() { # PID TIMEOUT_S: bounded wait for a background process; kills it on timeout
	local pid=$1 deadline=$(($(now_ms) + $2 * 1000))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		nap 0.05
	done
	wait "$pid"
}

need_tools() {
	local t
	for t in rmc-load rmc-ctl rmmod-wait; do
		[ -x "$TOOLS_DIR/$t" ] || { skip "$TOOLS_DIR/$t not built (make tools)"; return 1; }
	done
}
rmc_ctl() { "$TOOLS_DIR/rmc-ctl" "$@"; }
rmmod_wait() { "$TOOLS_DIR/rmmod-wait" "$@"; }

# start_load ARGS...: the load generator at >= 4 threads until stop_load; summary in $TMP/load.txt.
start_load() {
	local threads
	threads=$(nproc)
	[ "$threads" -ge 4 ] || threads=4
	"$TOOLS_DIR/rmc-load" -j "$threads" -d 600 --json "$@" >"$TMP/load.json" 2>"$TMP/load.txt" &
	LOAD_PID=$!
	BG_PIDS+=("$LOAD_PID")
	# Bounded wait until calls flow (or the generator died).
	loop_until 10 load_running || true
}
load_running() {
	kill -0 "$LOAD_PID" 2>/dev/null || return 0
	[ "$(stat_of calls_ok)" -gt "${LOAD_BASE_OK:-0}" ]
}
stat_of() { field "$1" " $(rmc_ctl stats 2>/dev/null)" | grep . || echo 0; }

# stop_load: SIGTERM the generator, bounded wait; LOAD_RC, LOAD_OK, LOAD_ENODEV set.
stop_load() {
	kill -TERM "$LOAD_PID" 2>/dev/null
	wait_pid "$LOAD_PID" 20
	LOAD_RC=$?
	local line
	line=$(grep -m1 '^  ok ' "$TMP/load.txt")
	LOAD_OK=$(sed -n 's/^  ok \([0-9]*\) .*/\1/p' <<<"$line")
	LOAD_ENODEV=$(sed -n 's/.*ENODEV \([0-9]*\) .*/\1/p' <<<"$line")
	sed 's/^/# load: /' "$TMP/load.txt"
}

# remove_patiently: rmmod --wait on the provider; fails if it is not gone within the bound.
# REMOVAL_MS is the tool's own time from its first attempt to the module being gone.
remove_patiently() {
	local rc
	rmmod_wait --wait --verbose --timeout "$REMOVAL_BOUND_S" $PROVIDER 2>"$TMP/rmmod.err"
	rc=$?
	REMOVAL_MS=$(sed -n 's/.*removed after \([0-9]*\) attempt(s), \([0-9.]*\) ms/\2/p' "$TMP/rmmod.err")
	REMOVAL_ATTEMPTS=$(sed -n 's/.*removed after \([0-9]*\) attempt(s).*/\1/p' "$TMP/rmmod.err")
	[ $rc -eq 0 ] || fail "rmmod-wait exited $rc: $(tail -n 3 "$TMP/rmmod.err")" || return
	! is_loaded $PROVIDER || fail "rmmod-wait exited 0 but $PROVIDER is still loaded"
}

# ------------------------------------------------------------------------------------------------
# Cases.

# The guest must have several CPUs, or "under load" means nothing.
test_vm_cpus() {
	local n
	n=$(nproc)
	ktap_print_msg "nproc: $n"
	[ "$n" -ge 2 ] || fail "only $n CPU online: concurrent removal is not exercised"
}

# Without the consumer the provider cannot resolve rust_consumer_register and must not load.
test_provider_needs_consumer() {
	local err
	unload_all
	if err=$(load $PROVIDER 2>&1); then
		fail "rust_provider loaded without rust_consumer"
		return
	fi
	ktap_print_msg "insmod without consumer: $err"
	! is_loaded $PROVIDER || fail "rust_provider is loaded"
}

# A table the consumer refuses (ABI version mismatch) fails the provider's load with EINVAL and
# one log line from each side.
test_registration_refused() {
	local err
	ensure_consumer || fail "insmod rust_consumer failed" || return
	is_loaded $PROVIDER && rmmod $PROVIDER
	if err=$(load $PROVIDER "$MODDIR" abi_version=99 2>&1); then
		fail "rust_provider loaded with abi_version=99"
		return
	fi
	ktap_print_msg "insmod abi_version=99: $err"
	# kmod words EINVAL from init_module as "Invalid parameters".
	grep -qE "Invalid (argument|parameters)" <<<"$err" || fail "expected EINVAL, got: $err" || return
	dmesg | tail -n 5 | grep -q "rust_consumer: refusing provider: ABI version 99" ||
		fail "no log line from rust_consumer about the ABI version" || return
	! is_loaded $PROVIDER || fail "rust_provider is loaded"
}

test_load_pair() {
	unload_all
	load $CONSUMER || fail "insmod rust_consumer failed" || return
	[ -c $DEV ] || fail "$DEV missing" || return
	[ "$(stat -c %a $DEV)" = 600 ] || fail "$DEV has mode $(stat -c %a $DEV), expected 600" || return
	load $PROVIDER || fail "insmod rust_provider failed" || return
	# The dependency goes provider -> consumer, never the other way.
	[ -e /sys/module/$CONSUMER/holders/$PROVIDER ] ||
		fail "rust_consumer is not held by rust_provider" || return
	[ -z "$(ls /sys/module/$PROVIDER/holders)" ] ||
		fail "rust_provider has holders: $(ls /sys/module/$PROVIDER/holders)" || return
	ktap_print_msg "holders of rust_consumer: $(ls /sys/module/$CONSUMER/holders | xargs)"
	[ "$(refcnt)" -eq 0 ] || fail "rust_provider refcnt $(refcnt) with no call in flight"
}

# Several tables in one registry, looked up by name; a duplicate name (EEXIST) and a full registry
# (ENOSPC) fail the provider's load and leave nothing registered.
test_registry() {
	local a id err
	ensure_consumer || fail "insmod rust_consumer failed" || return
	is_loaded $PROVIDER && { rmmod $PROVIDER || fail "rmmod rust_provider failed" || return; }
	load $PROVIDER "$MODDIR" tables=3 || fail "insmod rust_provider tables=3 failed" || return
	a=$(text list | xargs)
	[ "$a" = "rust_provider rust_provider_1 rust_provider_2" ] || fail "list: '$a'" || return
	a=$(text "compute rust_provider_2 7") || fail "compute on rust_provider_2: $a" || return
	id=$(field instance "$a")
	[ "$(field y "$a")" = "$(compute_expected 7 "$id")" ] || fail "wrong answer: $a" || return
	a=$(text "describe rust_provider_1") || fail "describe failed: $a" || return
	[ "$(field provider "$a")" = rust_provider_1 ] || fail "describe names another table: $a" || return
	a=$(text stats)
	[ "$(field providers " $a")" = 3 ] || fail "stats: $a" || return
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	[ -z "$(text list)" ] || fail "tables left after rmmod: $(text list | xargs)" || return
	for err in "register_twice=1:-17" "tables=9:-28"; do
		if load $PROVIDER "$MODDIR" "${err%%:*}" 2>/dev/null; then
			fail "insmod rust_provider ${err%%:*} succeeded"
			return
		fi
		dmesg | tail -n 3 | grep -q "rust_provider: (init) rust_consumer refused table [0-9]: errno ${err#*:}" ||
			fail "no 'refused ... errno ${err#*:}' line after ${err%%:*}" || return
		[ -z "$(text list)" ] || fail "tables left after a refused load: $(text list | xargs)" || return
	done
	ktap_print_msg "3 tables listed and called; duplicate name -> EEXIST, 9 tables -> ENOSPC"
	load $PROVIDER || fail "reloading rust_provider failed"
}

# compute answers are right for the instance that gave them, from the shell and from threads.
test_calls_verified() {
	local a x=12345678901234567 id y want
	ensure_pair || fail "loading the pair failed" || return
	a=$(text "compute $PROVIDER $x") || fail "compute failed: $a" || return
	ktap_print_msg "$a"
	id=$(field instance "$a")
	y=$(field y "$a")
	want=$(compute_expected $x "$id")
	[ "$y" = "$want" ] || fail "compute($x) = $y from instance $id, expected $want" || return
	a=$(text "describe $PROVIDER") || fail "describe failed: $a" || return
	[ "$(field instance "$a")" = "$id" ] || fail "describe reports another instance: $a" || return
	dmesg | grep -q "rust_provider: (init) registered .*instance $id" ||
		fail "instance $id is not the one the provider logged at init" || return
	need_tools || return 0
	"$TOOLS_DIR/rmc-load" -j 4 -n 2000 --allow none --mix compute=8,describe=1,hold=1 \
		--hold-us 100 2>"$TMP/load.txt"
	local rc=$?
	sed 's/^/# load: /' "$TMP/load.txt"
	[ $rc -eq 0 ] || fail "rmc-load: exit $rc"
}

# kthreads_placed: how many rmc_bench/K kthreads run on CPU K now (field 39 of /proc/PID/stat).
kthreads_placed() {
	local d comm st c=0
	for d in /proc/[0-9]*; do
		read -r comm <"$d/comm" 2>/dev/null || continue
		[[ $comm == rmc_bench/* ]] || continue
		st=$(<"$d/stat") 2>/dev/null || continue
		st=(${st##*) })
		[ "${st[36]}" = "${comm#rmc_bench/}" ] && c=$((c + 1))
	done
	echo $c
}

# The in-kernel benchmark runs one kthread bound to each online CPU, all released together, and
# every iteration of the full dispatch is a real, counted reference: the totals must grow by
# exactly threads x iterations (+1 for the run's own reference). More threads than online CPUs
# is EINVAL.
test_bench_kthreads() {
	local n iters=300000 before after seen=0 c rc want
	ensure_pair || fail "loading the pair failed" || return
	[ -x "$TOOLS_DIR/rmc-bench" ] || { skip "$TOOLS_DIR/rmc-bench not built (make tools)"; return 0; }
	n=$(nproc)
	before=$(stat_of refs_taken)
	"$TOOLS_DIR/rmc-bench" kernel -n $iters --reps 1 --cpus "$n" --exact --variant c \
		>"$TMP/bench.json" 2>"$TMP/bench.err" &
	local pid=$!
	BG_PIDS+=("$pid")
	# While it runs, all n threads must be seen, each on its own CPU.
	while kill -0 "$pid" 2>/dev/null && [ "$seen" -lt "$n" ]; do
		c=$(kthreads_placed)
		[ "$c" -gt "$seen" ] && seen=$c
		nap 0.05
	done
	wait_pid "$pid" 60
	rc=$?
	sed 's/^/# bench: /' "$TMP/bench.err"
	[ $rc -eq 0 ] || fail "rmc-bench exited $rc" || return
	[ "$seen" -eq "$n" ] || fail "saw $seen of $n rmc_bench/K kthreads on their CPU K" || return
	after=$(stat_of refs_taken)
	want=$((n * iters + 1))
	ktap_print_msg "$n kthreads on their CPUs; refs_taken +$((after - before)) (want $want)"
	[ $((after - before)) -eq "$want" ] || fail "refs_taken grew by $((after - before)), not $want" || return
	[ "$(stat_of refs_held)" -eq 0 ] || fail "refs_held is $(stat_of refs_held) after the run" || return
	"$TOOLS_DIR/rmc-bench" kernel -n 10 --reps 1 --cpus $((n + 1)) --exact --variant a \
		>/dev/null 2>"$TMP/bench.err" && fail "$((n + 1)) threads on $n CPUs accepted" && return
	grep -q EINVAL "$TMP/bench.err" || fail "$((n + 1)) threads: $(cat "$TMP/bench.err")"
}

# Without a provider every call gets ENODEV, and the consumer does not fill the log about it.
test_no_provider_enodev() {
	local marker="rust_modref_selftest: no_provider $$.$RANDOM" a
	ensure_consumer || fail "insmod rust_consumer failed" || return
	is_loaded $PROVIDER && { rmmod $PROVIDER || fail "rmmod rust_provider failed" || return; }
	echo "$marker" >/dev/kmsg
	if a=$(text "compute $PROVIDER 1" 2>&1); then
		fail "compute without a provider succeeded: $a"
		return
	fi
	grep -q "err 19" <<<"$a" || fail "expected 'err 19' (ENODEV), got: $a" || return
	if need_tools; then
		rmc_ctl --expect ENODEV call $PROVIDER compute 1 || fail "ioctl: not ENODEV" || return
		"$TOOLS_DIR/rmc-load" -j 4 -n 500 2>"$TMP/load.txt" || fail "rmc-load failed" || return
		grep -q '^  ok 0  ENODEV 2000 ' "$TMP/load.txt" ||
			fail "expected 2000 ENODEV: $(grep '^  ok' "$TMP/load.txt")" || return
	fi
	[ -z "$(log_since "$marker" | grep -v "$marker" | grep rust_consumer)" ] ||
		fail "rust_consumer logged during ENODEV calls: $(log_since "$marker" | grep rust_consumer | head -n 3)" || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# A call in flight holds a reference: plain rmmod fails with "in use" until the call returns.
test_inflight_blocks_removal() {
	local err
	ensure_pair || fail "loading the pair failed" || return
	# Two loops of back-to-back 1 s holds, out of phase: a call is in flight at every moment,
	# however long starting rmmod takes.
	hold_loop_background
	nap 0.5
	hold_loop_background
	loop_until 10 refcnt_at_least 2 || { stop_hold_loops; fail "refcnt never reached 2 during holds (refcnt $(refcnt))"; return; }
	ktap_print_msg "refcnt with two holds in flight: $(refcnt)"
	if err=$(rmmod $PROVIDER 2>&1); then
		stop_hold_loops
		fail "rmmod rust_provider succeeded while calls were in flight"
		return
	fi
	ktap_print_msg "rmmod during the holds: $err"
	grep -q "in use" <<<"$err" || { stop_hold_loops; fail "expected 'in use', got: $err"; return; }
	is_loaded $PROVIDER || { stop_hold_loops; fail "rust_provider disappeared"; return; }
	read -r err <"/sys/module/$PROVIDER/initstate"
	[ "$err" = live ] || { stop_hold_loops; fail "rust_provider is $err, not live"; return; }
	stop_hold_loops
	[ "$(refcnt)" -eq 0 ] || fail "refcnt $(refcnt) after the holds returned" || return
	rmmod $PROVIDER || fail "rmmod rust_provider failed after the holds" || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# Patient removal while >= 4 threads call the provider: it must succeed within the bound, and the
# load generator must see only verified answers and ENODEV.
test_patient_removal_under_load() {
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load
	remove_patiently || { stop_load; return 1; }
	ktap_print_msg "patient removal under load: ${REMOVAL_MS} ms, ${REMOVAL_ATTEMPTS} attempts (bound ${REMOVAL_BOUND_S} s)"
	nap 0.3 # let the load see ENODEV
	stop_load
	[ "$LOAD_RC" -eq 0 ] || fail "rmc-load exit $LOAD_RC: $(grep FAIL "$TMP/load.txt")" || return
	[ "${LOAD_OK:-0}" -gt 0 ] && [ "${LOAD_ENODEV:-0}" -gt 0 ] ||
		fail "expected both ok and ENODEV, got ok=$LOAD_OK ENODEV=$LOAD_ENODEV" || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# The provider comes back while the load goes on: calls succeed again, from a new instance.
test_reload_under_load() {
	local after
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load --min-instances 2
	remove_patiently || { stop_load; return 1; }
	load $PROVIDER || { stop_load; fail "reloading rust_provider under load failed"; return; }
	# Per-provider counters start at registration: calls_ok > 0 means the new instance answers.
	loop_until 10 provider_answers || { stop_load; fail "no call succeeded after the reload"; return; }
	stop_load
	[ "$LOAD_RC" -eq 0 ] || fail "rmc-load exit $LOAD_RC: $(grep FAIL "$TMP/load.txt")"
}
provider_answers() { [ "$(field calls_ok " $(rmc_ctl stats $PROVIDER 2>/dev/null)")" -gt 0 ] 2>/dev/null; }

# CYCLES removals and reloads under one continuous load; afterwards every reference is back.
test_cycles() {
	local i worst=0 s
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load --min-instances $((CYCLES + 1))
	for i in $(seq "$CYCLES"); do
		remove_patiently || { stop_load; REASON="cycle $i: $REASON"; return 1; }
		[ "${REMOVAL_MS%.*}" -le "$worst" ] || worst=${REMOVAL_MS%.*}
		load $PROVIDER || { stop_load; fail "cycle $i: reload failed"; return; }
		loop_until 10 provider_answers || { stop_load; fail "cycle $i: no call succeeded after reload"; return; }
	done
	stop_load
	ktap_print_msg "$CYCLES cycles, slowest patient removal ${worst} ms"
	[ "$LOAD_RC" -eq 0 ] || fail "rmc-load exit $LOAD_RC: $(grep FAIL "$TMP/load.txt")" || return
	s=$(rmc_ctl stats)
	ktap_print_msg "counters: $s"
	[ "$(field refs_taken " $s")" = "$(field refs_released " $s")" ] ||
		fail "references taken != released: $s" || return
	[ "$(field refs_held " $s")" = 0 ] || fail "references still held: $s" || return
	[ "$(refcnt)" -eq 0 ] || fail "/sys/module/$PROVIDER/refcnt is $(refcnt)"
}

# The implied protection itself: with a 200 us busy-wait between finding a provider and taking
# its reference (race_window_us), lookups are often inside that window when the provider goes.
# Unregistration must wait for them (RCU grace period) before the table is freed, or KASAN reports
# the use-after-free here.
test_unregister_race() {
	local i
	need_tools || return 0
	unload_all
	load $CONSUMER "$MODDIR" race_window_us=200 || fail "insmod rust_consumer race_window_us=200 failed" || return
	load $PROVIDER || fail "insmod rust_provider failed" || return
	LOAD_BASE_OK=0
	start_load
	for i in 1 2 3; do
		remove_patiently || { stop_load; REASON="cycle $i: $REASON"; return 1; }
		load $PROVIDER || { stop_load; fail "cycle $i: reload failed"; return; }
		loop_until 10 provider_answers || { stop_load; fail "cycle $i: no call succeeded after reload"; return; }
	done
	stop_load
	[ "$LOAD_RC" -eq 0 ] || fail "rmc-load exit $LOAD_RC: $(grep FAIL "$TMP/load.txt")" || return
	unload_all
}

# A patient removal that cannot succeed in time must say so (exit 3) and leave the module loaded.
# kmod's modprobe -r --wait is recorded in the same situation, for information.
test_removal_timeout() {
	local rc t0 t1 base kver mrc
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	# Two loops of back-to-back 1 s holds, out of phase: a reference is held at every moment.
	hold_loop_background
	nap 0.5
	hold_loop_background
	loop_until 10 refcnt_at_least 2 || { stop_hold_loops; fail "the holds never took two references"; return; }
	t0=$(now_ms)
	rmmod_wait --wait --verbose --timeout 0.3 $PROVIDER 2>"$TMP/rmmod.err"
	rc=$?
	t1=$(now_ms)
	ktap_print_msg "rmmod-wait --timeout 0.3 while holds keep a reference: exit $rc after $((t1 - t0)) ms, $(grep -c attempt "$TMP/rmmod.err") attempts: $(tail -n 1 "$TMP/rmmod.err")"
	if command -v modprobe >/dev/null && command -v depmod >/dev/null && is_loaded $PROVIDER; then
		base=$TMP/modroot
		kver=$(uname -r)
		mkdir -p "$base/lib/modules/$kver/extra"
		cp "$MODDIR/$PROVIDER.ko" "$MODDIR/$CONSUMER.ko" "$base/lib/modules/$kver/extra/"
		timeout 10 depmod -b "$base" "$kver" 2>/dev/null
		t0=$(now_ms)
		timeout 5 modprobe -d "$base" -r --wait 300 $PROVIDER >"$TMP/modprobe.out" 2>&1
		mrc=$?
		t1=$(now_ms)
		[ $mrc -ne 124 ] || echo "(did not return within 5 s; killed)" >>"$TMP/modprobe.out"
		ktap_print_msg "info: $(modprobe --version | head -n1): 'modprobe -r --wait 300' in the same situation: exit $mrc after $((t1 - t0)) ms, rust_provider $(is_loaded $PROVIDER && echo still loaded || echo removed) $(tr '\n' ' ' <"$TMP/modprobe.out")"
	fi
	stop_hold_loops
	[ $rc -eq 3 ] || fail "rmmod-wait exited $rc, expected 3 (timed out)" || return
	is_loaded $PROVIDER || fail "rust_provider was removed although a call held it" || return
	ensure_pair || fail "reloading failed"
}

# Malformed requests get the documented errno; a bounded random-request loop finds no other.
test_bad_input() {
	local req expect long
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	long=$(printf 'x%.0s' $(seq 40))
	while IFS='|' read -r expect req; do
		rmc_ctl --expect "$expect" text "$req" >/dev/null 2>"$TMP/err" ||
			fail "text '$req': $(cat "$TMP/err")" || return
	done <<-EOF
		EINVAL|
		EINVAL|frobnicate
		EINVAL|compute
		EINVAL|compute $PROVIDER
		EINVAL|compute $PROVIDER twelve
		EINVAL|compute $PROVIDER 0x
		EINVAL|compute $PROVIDER 99999999999999999999
		EINVAL|compute $PROVIDER 1 2
		EINVAL|compute $long 1
		ENODEV|compute nosuch 1
		EINVAL|hold $PROVIDER 1000001
		EINVAL|hold $PROVIDER 4294967296
		ENODEV|stats nosuch
		EINVAL|list extra
		EINVAL|$(printf 'compute %0130d' 1)
		ok|compute $PROVIDER 0x10
		ok|stats $PROVIDER
		ok|list
	EOF
	local cmd
	while IFS='|' read -r expect cmd; do
		rmc_ctl --expect "$expect" $cmd 2>"$TMP/err" >/dev/null || fail "$cmd: $(cat "$TMP/err")" || return
	done <<-EOF
		EINVAL|call $PROVIDER compute 1 --flags 1
		EINVAL|call $PROVIDER compute 1 --reserved 1
		EINVAL|call $PROVIDER 7 1
		EINVAL|call $PROVIDER hold 1000001
		EINVAL|call $PROVIDER hold 4294967296
		EINVAL|call $PROVIDER compute 1 --unterminated
		ENODEV|call nosuch compute 1
		ENOTTY|ioctl 0xb904
		ENOTTY|ioctl 0xc040b901
		ENOTTY|ioctl 0x5401
		EFAULT|ioctl 0xc048b901 --arg null
		EFAULT|ioctl 0xc048b901 --arg 0xffff888000000000
		EFAULT|ioctl 0xc058b902 --arg 0x10
	EOF
	rmc_ctl fuzz --count "$FUZZ_COUNT" --seed "$RANDOM" 2>"$TMP/fuzz.txt"
	local rc=$?
	sed 's/^/# /' "$TMP/fuzz.txt"
	[ $rc -eq 0 ] || fail "random requests found an undocumented outcome or a wrong answer"
}

# The consumer cannot go while a provider is registered, nor while its device is open.
test_consumer_cannot_go_first() {
	local err
	ensure_pair || fail "loading the pair failed" || return
	if err=$(rmmod $CONSUMER 2>&1); then
		fail "rmmod rust_consumer succeeded while rust_provider is registered"
		return
	fi
	ktap_print_msg "with a provider: $err"
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	exec 3<>$DEV
	if err=$(rmmod $CONSUMER 2>&1); then
		exec 3<&-
		fail "rmmod rust_consumer succeeded while its device is open"
		return
	fi
	exec 3<&-
	ktap_print_msg "with the device open: $err"
	rmmod $CONSUMER || fail "rmmod rust_consumer failed once closed and alone"
}

test_remove_in_order() {
	ensure_pair || fail "loading the pair failed" || return
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	rmmod $CONSUMER || fail "rmmod rust_consumer failed" || return
	! is_loaded $PROVIDER && ! is_loaded $CONSUMER || fail "modules still loaded"
}

# The negative control: a consumer built without try_module_get/module_put. A call sleeping in
# the provider does not stop its removal, so the provider's code is freed under the sleeping call;
# the debug kernel must report it. Run it in a boot of its own: it leaves the kernel damaged, and
# usually dead: returning into the freed code hits the int3 padding the allocator fills it with,
# and that oops happens in exception context, which panics. The host (scripts/test.sh) then reads
# the fault from the console log and completes the KTAP line. Never run it on a machine you need.
test_negative_control() {
	local err
	[ -f "$NEG_MODDIR/$CONSUMER.ko" ] || { skip "negative-control build missing (make negative-control)"; return 0; }
	unload_all
	load $CONSUMER "$NEG_MODDIR" || fail "insmod of the negative-control consumer failed" || return
	dmesg | tail -n 3 | grep -q "UNSAFE_SKIP_MODULE_GET build" ||
		fail "the negative-control consumer did not announce itself" || return
	load $PROVIDER "$NEG_MODDIR" || fail "insmod rust_provider failed" || return
	# Two loops of back-to-back 1 s holds, out of phase, so calls are sleeping in the provider
	# whenever the removal completes (starting a process takes ~0.4 s in this guest, too slow to
	# aim a removal at a single hold).
	hold_loop_background
	nap 0.5
	hold_loop_background
	loop_until 10 holds_in_flight || { stop_hold_loops; fail "no hold started"; return; }
	ktap_print_msg "refcnt with calls sleeping in the provider but no reference: $(refcnt)"
	err=$(rmmod $PROVIDER 2>&1) || { stop_hold_loops; fail "rmmod failed although no reference was taken: $err"; return; }
	ktap_print_msg "rust_provider removed while calls sleep in it"
	nap 2 # the sleeping calls return into freed memory now
	stop_hold_loops
}

# ------------------------------------------------------------------------------------------------
# Main.

list=0
selected=()
while getopts "t:lh" opt; do
	case $opt in
	t) IFS=, read -r -a selected <<<"$OPTARG" ;;
	l) list=1 ;;
	*) sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	esac
done
if [ $list = 1 ]; then
	printf '%s\n' "${ALL_CASES[@]}" negative_control
	exit 0
fi
[ ${#selected[@]} -gt 0 ] || selected=("${ALL_CASES[@]}")

ktap_print_header
[ "$(id -u)" = 0 ] || { ktap_skip_all "must run as root"; exit "$KSFT_SKIP"; }
for tool in insmod rmmod dmesg; do
	command -v $tool >/dev/null || { ktap_skip_all "$tool not found (Debian: kmod, util-linux)"; exit "$KSFT_SKIP"; }
done
for m in $CONSUMER $PROVIDER; do
	[ -f "$MODDIR/$m.ko" ] || { ktap_skip_all "$MODDIR/$m.ko not built (run make)"; exit "$KSFT_SKIP"; }
done
for c in "${selected[@]}"; do
	declare -F "test_$c" >/dev/null || { ktap_skip_all "unknown case '$c' (see -l)"; exit "$KSFT_SKIP"; }
done
if is_loaded $CONSUMER || is_loaded $PROVIDER; then
	ktap_skip_all "rust_consumer or rust_provider is already loaded: remove them first"
	exit "$KSFT_SKIP"
fi

# Read the tools once so that their first timed run does not include loading them over 9p.
for t in rmc-load rmc-ctl rmmod-wait; do
	[ -x "$TOOLS_DIR/$t" ] && "$TOOLS_DIR/$t" --version >/dev/null
done

ktap_set_plan ${#selected[@]}
for c in "${selected[@]}"; do
	run_case "$c"
done
cleanup
ktap_finished
