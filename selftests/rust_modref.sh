#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Selftest for the rust_provider / rust_consumer module pair: safe module reference counting.
#
# Loads the pair, drives calls through /dev/rust_consumer, withdraws tables and removes the
# provider while calls are in flight, checking that every call ends in a verified answer or
# ENODEV, never a crash. After every case the kernel log is scanned for splats (BUG, WARNING,
# Oops, KASAN, lockdep, refcount, UBSAN, hung tasks). The helpers are in rust_modref_lib.sh.
#
# Needs: root, insmod/rmmod/modinfo (kmod), the modules built against the running kernel
# (MODDIR: test_modules/ as kselftest installs them, else the repository's top), and for the
# load cases the tools (TOOLS_DIR: beside this script, else tools/target/release); those cases
# skip with the reason when the tools are missing.
#
# Usage: see usage() below (rust_modref.sh -h).

set -u

readonly DIR=$(cd "$(dirname "$0")" && pwd)
# Installed by kselftest, the modules are in test_modules/ and the tools beside this script; in
# the repository, both are built at its top (make, make tools).
if [ -f "$DIR/test_modules/rust_consumer.ko" ]; then
	readonly MODDIR=${MODDIR:-$DIR/test_modules}
else
	readonly MODDIR=${MODDIR:-$(cd "$DIR/.." && pwd)}
fi
readonly NEG_MODDIR=${NEG_MODDIR:-$MODDIR/build/negative-control}
readonly NEG_DRAIN_MODDIR=${NEG_DRAIN_MODDIR:-$MODDIR/build/negative-control-drain}
# (A guest of another architecture than the host's: the tools cross-built for it, make ARCH=arm64.)
if [ -x "$DIR/rmc-load" ]; then
	TOOLS_DIR=${TOOLS_DIR:-$DIR}
elif [ -x "$DIR/../tools/target/$(uname -m)-unknown-linux-gnu/release/rmc-load" ]; then
	TOOLS_DIR=${TOOLS_DIR:-$(cd "$DIR/.." && pwd)/tools/target/$(uname -m)-unknown-linux-gnu/release}
else
	TOOLS_DIR=${TOOLS_DIR:-$(cd "$DIR/.." && pwd)/tools/target/release}
fi
readonly CYCLES=${CYCLES:-3}
readonly TABLE_CYCLES=${TABLE_CYCLES:-100}
# Table withdrawals and re-adds before each removal in the cycles case (make soak).
readonly CYCLE_TABLES=${CYCLE_TABLES:-0}
readonly FUZZ_COUNT=${FUZZ_COUNT:-10000}
# Bound for a patient removal under load (TCG-emulated 4-vCPU guest, debug kernel).
readonly REMOVAL_BOUND_S=${REMOVAL_BOUND_S:-10}

if [ -f "$DIR/../kselftest/ktap_helpers.sh" ]; then
	. "$DIR/../kselftest/ktap_helpers.sh"
else
	. "$DIR/ktap_helpers.sh"
fi
. "$DIR/rust_modref_lib.sh"

# The cases, in the order they run, each with what it proves (-l prints this table; README's
# case table is checked against it by `make check`).
ALL_TESTS=(
	"vm_cpus|the guest has >= 2 CPUs (4 in make test)"
	"provider_needs_consumer|the provider does not load without the consumer"
	"registration_refused|ABI mismatch, NULL owner, NULL entry: EINVAL and a log line each"
	"load_pair|consumer, then provider (depends on it); device mode 0600"
	"registry|3 tables by name; EEXIST for a duplicate, ENOSPC for 9; a refusal leaves nothing"
	"calls_verified|answers verified in bash and by 8000 calls from 4 threads"
	"bench_kthreads|one kthread per CPU; refs grow by exactly threads x iters + 1"
	"bench_interrupted|a 10^8-iteration in-kernel benchmark stops within 10 s of SIGTERM (calling thread, kthreads)"
	"withdraw_during_bench|rmdir of a table under a 10^8-iteration benchmark returns within 2 s; the run ends ENODEV"
	"bench_cpu_hotplug|a CPU offline and back online under a 4-thread benchmark, each within 5 s; the run ends EAGAIN"
	"no_provider_enodev|without a provider every call gets ENODEV, and the log stays quiet"
	"text_kept_open|one open file across ok, failures, removal, reload; answers in pieces; one answer per open file"
	"configfs_tables|mkdir registers a table; EEXIST, ENAMETOOLONG, EINVAL for a name text cannot address; rmdir -> ENODEV; enabled 0/1"
	"withdraw_drains|rmdir returns only after the holds sleeping in the table; then ENODEV"
	"withdraw_under_load|TABLE_CYCLES withdraw/re-add cycles under load; rust_provider always answers"
	"withdraw_and_rmmod|withdrawals and removal interleaved under load; a table dir pins the module"
	"inflight_blocks_removal|calls in flight make rmmod fail at once with \"in use\""
	"patient_removal_under_load|rmmod-wait under 4 threads succeeds within 10 s; only ok and ENODEV"
	"withdraw_then_remove|calls that always overlap: rmmod-wait alone exits 3; after enabled=0 on every table it succeeds within 5 s"
	"reload_under_load|the provider comes back under load; a new instance answers"
	"cycles|CYCLES removals and reloads under load; refs balance, refcnt 0"
	"unregister_race|race_window_us=200 widens the lookup race; 3 removals stay clean"
	"removal_timeout|rmmod-wait --timeout 0.3 with a reference held exits 3; module stays"
	"bad_input|malformed requests get their documented errno; FUZZ_COUNT random ones"
	"suite_stops_on_term|TERM mid-case stops the suite within 30 s: exit 143, pair unloaded, no later case"
	"suite_skips_preloaded|a preloaded pair: the suite skips (exit 4) and leaves it loaded"
	"alloc_failures_sampled|alloc_failures with every 8th allocation of each module load: ENOMEM, no splat"
	"kmemleak_clean|kmemleak (kmemleak=on) finds no leak allocated by either module, or skips"
	"consumer_cannot_go_first|the consumer cannot go while a provider or an open file holds it"
	"remove_in_order|provider, then consumer"
)
# Not run by default: long (make faults).
EXTRA_TESTS=(
	"alloc_failures|each allocation of load, open, call, text, mkdir failed in turn: ENOMEM, no splat"
)
# Not run by default: each needs a broken build and its own boot (scripts/test.sh).
NEGATIVE_CONTROLS=(
	"negative_control|inflight_blocks_removal without module references: XFAIL"
	"negative_control_drain|withdraw_drains without the drain: XFAIL"
)


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
	mark
	if err=$(load $PROVIDER 2>&1); then
		fail "rust_provider loaded without rust_consumer"
		return
	fi
	ktap_print_msg "insmod without consumer: $err"
	! is_loaded $PROVIDER || fail "rust_provider is loaded" || return
	# The refusal must be the missing export (ENOENT, "Unknown symbol"), not some other failure.
	[[ $err == *"Unknown symbol"* ]] || fail "insmod failed, but not for an unknown symbol: $err" || return
	since_mark | grep -q "rust_provider: Unknown symbol rust_consumer_" ||
		fail "no 'rust_provider: Unknown symbol rust_consumer_*' line in the kernel log"
}

# A table the consumer refuses (ABI version mismatch) fails the provider's load with EINVAL and
# one log line from each side.
test_registration_refused() {
	local err
	ensure_consumer || fail "insmod rust_consumer failed" || return
	is_loaded $PROVIDER && rmmod $PROVIDER
	mark
	if err=$(load $PROVIDER "$MODDIR" abi_version=99 2>&1); then
		fail "rust_provider loaded with abi_version=99"
		return
	fi
	ktap_print_msg "insmod abi_version=99: $err"
	# kmod words EINVAL from init_module as "Invalid parameters".
	grep -qE "Invalid (argument|parameters)" <<<"$err" || fail "expected EINVAL, got: $err" || return
	since_mark | grep -q "rust_consumer: refusing provider: ABI version 99" ||
		fail "no log line from rust_consumer about the ABI version" || return
	! is_loaded $PROVIDER || fail "rust_provider is loaded" || return
	# A table from a careless (C) provider: a NULL owner, a NULL entry.
	local bad
	for bad in 1 2; do
		mark
		if err=$(load $PROVIDER "$MODDIR" bad_table=$bad 2>&1); then
			fail "rust_provider loaded with bad_table=$bad"
			return
		fi
		grep -qE "Invalid (argument|parameters)" <<<"$err" || fail "bad_table=$bad: expected EINVAL, got: $err" || return
		since_mark | grep -q "rust_consumer: refusing provider: NULL owner or NULL entry" ||
			fail "bad_table=$bad: no log line from rust_consumer" || return
	done
	ktap_print_msg "NULL owner and NULL compute refused with EINVAL"
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
	local a err
	ensure_consumer || fail "insmod rust_consumer failed" || return
	is_loaded $PROVIDER && { rmmod $PROVIDER || fail "rmmod rust_provider failed" || return; }
	load $PROVIDER "$MODDIR" tables=3 || fail "insmod rust_provider tables=3 failed" || return
	a=$(table_names | xargs)
	[ "$a" = "rust_provider rust_provider_1 rust_provider_2" ] || fail "list: '$a'" || return
	compute_verified rust_provider_2 7 || return
	a=$(text "describe rust_provider_1") || fail "describe failed: $a" || return
	[ "$(field provider "$a")" = rust_provider_1 ] || fail "describe names another table: $a" || return
	a=$(text stats)
	[ "$(field tables " $a")" = 3 ] || fail "stats: $a" || return
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	a=$(table_names) && [ -z "$a" ] || fail "tables left after rmmod: '$a'" || return
	for err in "register_twice=1:-17" "tables=9:-28"; do
		mark
		if load $PROVIDER "$MODDIR" "${err%%:*}" 2>/dev/null; then
			fail "insmod rust_provider ${err%%:*} succeeded"
			return
		fi
		since_mark | grep -q "rust_provider: (init) rust_consumer refused table [0-9]: errno ${err#*:}" ||
			fail "no 'refused ... errno ${err#*:}' line after ${err%%:*}" || return
		a=$(table_names) && [ -z "$a" ] || fail "tables left after a refused load: '$a'" || return
	done
	ktap_print_msg "3 tables listed and called; duplicate name -> EEXIST, 9 tables -> ENOSPC"
	load $PROVIDER || fail "reloading rust_provider failed"
}

# compute answers are right for the instance that gave them, from the shell and from threads.
test_calls_verified() {
	local a id
	ensure_pair || fail "loading the pair failed" || return
	compute_verified $PROVIDER 12345678901234567 || return
	ktap_print_msg "$ANSWER"
	id=$ANSWER_ID
	a=$(text "describe $PROVIDER") || fail "describe failed: $a" || return
	[ "$(field instance "$a")" = "$id" ] || fail "describe reports another instance: $a" || return
	dmesg | grep -q "rust_provider: (init) registered .*instance $id" ||
		fail "instance $id is not the one the provider logged at init" || return
	need_tools || return 0
	fg_cmd "$TOOLS_DIR/rmc-load" -j 4 -n 2000 --allow none --mix compute=8,describe=1,hold=1 \
		--hold-us 100 2>"$TMP/load.txt"
	local rc=$?
	sed 's/^/# load: /' "$TMP/load.txt"
	[ $rc -eq 0 ] || fail "rmc-load: exit $rc"
}

# The in-kernel benchmark runs one kthread bound to each online CPU, all released together, and
# every iteration of the full dispatch is a real, counted reference: the totals must grow by
# exactly threads x iterations (+1 for the run's own reference). More threads than online CPUs
# is EINVAL.
test_bench_kthreads() {
	local n iters=300000 before after seen=0 rc want runs=0 pid
	ensure_pair || fail "loading the pair failed" || return
	need_rmc_bench || return 0
	n=$(nproc)
	before=$(stat_of refs_taken)
	# While a run lasts, each of the n threads must be seen on its own CPU. (Not all in one scan:
	# the n kthreads keep the n CPUs busy, and this scanner gets a slice of one; and a run of
	# ~2 s can end before a scan sees its last thread: then up to 3 runs, sightings added up.)
	PLACED=()
	while [ "${#PLACED[@]}" -lt "$n" ] && [ $runs -lt 3 ]; do
		runs=$((runs + 1))
		"$TOOLS_DIR/rmc-bench" kernel -n $iters --reps 1 --cpus "$n" --exact --variant c \
			>"$TMP/bench.json" 2>"$TMP/bench.err" &
		pid=$!
		defer stop_bg "$pid"
		while kill -0 "$pid" 2>/dev/null && [ "${#PLACED[@]}" -lt "$n" ]; do
			kthreads_placed
			nap 0.05
		done
		wait_pid "$pid" 60
		rc=$?
		[ $rc -eq 0 ] || break
	done
	seen=${#PLACED[@]}
	sed 's/^/# bench: /' "$TMP/bench.err"
	[ $rc -eq 0 ] || fail "rmc-bench exited $rc" || return
	[ "$seen" -eq "$n" ] || fail "saw $seen of $n rmc_bench/K kthreads on their CPU K" || return
	after=$(stat_of refs_taken)
	want=$((runs * (n * iters + 1)))
	ktap_print_msg "$n kthreads on their CPUs ($runs run(s)); refs_taken +$((after - before)) (want $want)"
	[ $((after - before)) -eq "$want" ] || fail "refs_taken grew by $((after - before)), not $want" || return
	[ "$(stat_of refs_held)" -eq 0 ] || fail "refs_held is $(stat_of refs_held) after the run" || return
	"$TOOLS_DIR/rmc-bench" kernel -n 10 --reps 1 --cpus $((n + 1)) --exact --variant a \
		>/dev/null 2>"$TMP/bench.err" && fail "$((n + 1)) threads on $n CPUs accepted" && return
	grep -q EINVAL "$TMP/bench.err" || fail "$((n + 1)) threads: $(cat "$TMP/bench.err")"
}

# A long in-kernel benchmark stops at a signal (RMC_IOC_BENCH checks for one every 4096
# iterations, in the caller's loop and in the kthreads): 10^8 iterations would take minutes here.
test_bench_interrupted() {
	local cpus pid t0 t1 rc n
	ensure_pair || fail "loading the pair failed" || return
	need_rmc_bench || return 0
	cpus_upto_4 n
	# The calling thread's loop (its own signal check) first, then 1 and n kthreads.
	for cpus in caller 1 "$n"; do
		local where=(--cpus "$cpus" --exact)
		[ "$cpus" != caller ] || where=(--caller)
		long_bench "${where[@]}" --variant c
		pid=$BENCH_PID
		nap 2
		t0=$(now_ms)
		kill -TERM "$pid" # (not INT: background jobs of a script ignore SIGINT)
		wait_pid "$pid" 10
		rc=$? t1=$(now_ms)
		ktap_print_msg "$cpus thread(s): SIGTERM after 2 s, the benchmark returned after $((t1 - t0)) ms (exit $rc)"
		[ $rc -ne 124 ] || fail "$cpus thread(s): still running 10 s after SIGTERM" || return
		[ $rc -ne 0 ] || fail "$cpus thread(s): 10^8 iterations finished in 2 s?" || return
		# Killed by the signal once the ioctl returned (EINTR), not refused at once (EINVAL).
		[ $rc -eq 143 ] || fail "$cpus thread(s): exit $rc, not 143 (SIGTERM): $(cat "$TMP/bench.err")" || return
	done
	[ "$(refs_held)" = 0 ] || fail "references held after the interrupted runs: $(refs_held)"
}

# A long in-kernel benchmark holds no table for its run: every 4096 iterations it looks the
# table up again and runs inside that lookup's drain, so withdrawing the table waits for one such
# chunk, and the run then stops with ENODEV. (Holding the table for the whole run kept rmdir in D
# state, unkillable, for as long as the user asked the run to last.)
test_withdraw_during_bench() {
	local cpus n pid t0 t1 rc
	ensure_pair || fail "loading the pair failed" || return
	need_rmc_bench || return 0
	cpus_upto_4 n
	for cpus in 1 "$n"; do
		mkdir $CONFIGFS/benched || fail "mkdir $CONFIGFS/benched failed" || return
		long_bench --cpus "$cpus" --exact --variant a -p benched
		pid=$BENCH_PID
		loop_until 10 table_counted refs_taken benched || { fail "$cpus thread(s): the run never took the table"; return; }
		nap 1
		ms_now t0
		rmdir $CONFIGFS/benched || { fail "$cpus thread(s): rmdir during the run failed"; return; }
		ms_now t1
		wait_pid "$pid" 10
		rc=$?
		ktap_print_msg "$cpus thread(s): rmdir under the run returned after $((t1 - t0)) ms; the run: exit $rc, $(grep -o 'ENODEV[^)]*' "$TMP/bench.err" | head -n 1)"
		[ $((t1 - t0)) -le 2000 ] || fail "$cpus thread(s): rmdir took $((t1 - t0)) ms (bound 2000)" || return
		[ $rc -ne 124 ] || fail "$cpus thread(s): the run was still going 10 s after the table went" || return
		[ $rc -ne 0 ] && grep -q ENODEV "$TMP/bench.err" ||
			fail "$cpus thread(s): the run did not end with ENODEV (exit $rc): $(cat "$TMP/bench.err")" || return
	done
	[ "$(refs_held)" = 0 ] || fail "references held after the runs: $(refs_held)"
}

# A benchmark holds off CPU hotplug only while it creates and binds its threads. Held for the run,
# a CPU going offline waited for the whole run, and behind that pending writer every new
# cpus_read_lock() in the system (every insmod among them). The thread whose CPU went away is
# moved by the scheduler, notices, and the run ends with EAGAIN: it measured something else.
test_bench_cpu_hotplug() {
	local n cpu online pid t0 t1 t2 rc
	ensure_pair || fail "loading the pair failed" || return
	need_rmc_bench || return 0
	cpus_upto_4 n
	cpu=$((n - 1)) online=/sys/devices/system/cpu/cpu$((n - 1))/online
	[ "$n" -ge 2 ] && [ -w "$online" ] || { skip "cpu$cpu cannot be taken offline (no $online)"; return 0; }
	long_bench --cpus "$n" --exact --variant a
	pid=$BENCH_PID
	loop_until 10 table_counted refs_taken rust_provider || { fail "the run never took the table"; return; }
	nap 1
	# In the background: a regression would block it for the whole run. Past the bound the run
	# is stopped, which lets the offline finish, and the case fails.
	ms_now t0
	echo 0 >"$online" &
	local off=$!
	loop_until 5 not_running "$off" || {
		kill -TERM "$pid"
		wait "$off"
		ms_now t1
		fail "cpu$cpu offline still waiting after 5 s; it finished $((t1 - t0)) ms in, once the run was stopped"
		return
	}
	wait "$off" || { fail "cpu$cpu: offline failed"; return; }
	ms_now t1
	echo 1 >"$online" || { fail "cpu$cpu: online failed"; return; }
	ms_now t2
	wait_pid "$pid" 10
	rc=$?
	ktap_print_msg "$n threads: cpu$cpu offline in $((t1 - t0)) ms, online in $((t2 - t1)) ms; the run: exit $rc, $(grep -o 'EAGAIN[^(]*' "$TMP/bench.err" | head -n 1)"
	[ $((t1 - t0)) -le 5000 ] || fail "cpu$cpu offline took $((t1 - t0)) ms (bound 5000)" || return
	[ $((t2 - t1)) -le 5000 ] || fail "cpu$cpu online took $((t2 - t1)) ms (bound 5000)" || return
	[ $rc -ne 124 ] || fail "the run was still going 10 s after its CPU went away" || return
	[ $rc -ne 0 ] && grep -q 'offline during the run' "$TMP/bench.err" ||
		fail "the run did not end with EAGAIN (exit $rc): $(cat "$TMP/bench.err")" || return
	# All CPUs are back: a short run on every one of them works again.
	"$TOOLS_DIR/rmc-bench" kernel -n 10000 --reps 1 --cpus "$n" --exact --variant a >/dev/null 2>"$TMP/bench.err" ||
		fail "a run on $n CPUs after the hotplug failed: $(cat "$TMP/bench.err")" || return
	[ "$(refs_held)" = 0 ] || fail "references held after the runs: $(refs_held)"
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
		fg_cmd "$TOOLS_DIR/rmc-load" -j 4 -n 500 --allow-no-answer 2>"$TMP/load.txt" || fail "rmc-load failed" || return
		grep -q '^  ok 0  ENODEV 2000 ' "$TMP/load.txt" ||
			fail "expected 2000 ENODEV: $(grep '^  ok' "$TMP/load.txt")" || return
	fi
	[ -z "$(log_since "$marker" | grep -v "$marker" | grep rust_consumer)" ] ||
		fail "rust_consumer logged during ENODEV calls: $(log_since "$marker" | grep rust_consumer | head -n 3)" || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# One file kept open across success, failure, provider removal and reload: every answer reads
# back in full (a failed write does not move the file position; the answer must not care), also
# in pieces.
test_text_kept_open() {
	local a b id1 id2
	ensure_pair || fail "loading the pair failed" || return
	exec 3<>$DEV || fail "open $DEV" || return
	defer exec 3<&-
	a=$(text_on_fd3 "compute $PROVIDER 1")
	id1=$(field instance "$a")
	[ "$(field y "$a")" = "$(compute_expected 1 "$id1")" ] || fail "first answer: '$a'" || return
	a=$(text_on_fd3 "compute nosuch 1")
	[ "$a" = "err 19" ] || fail "after a failed request: '$a', expected 'err 19'" || return
	a=$(text_on_fd3 "frobnicate")
	[ "$a" = "err 22" ] || fail "after a second failure: '$a', expected 'err 22'" || return
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	a=$(text_on_fd3 "compute $PROVIDER 2")
	[ "$a" = "err 19" ] || fail "provider removed: '$a', expected 'err 19'" || return
	load $PROVIDER || fail "reloading rust_provider failed" || return
	echo "compute $PROVIDER 3" >&3
	read -r -N 10 b <&3
	a=$b$(cat <&3)
	id2=$(field instance "$a")
	[ "$id2" != "$id1" ] && [ "$(field y "$a")" = "$(compute_expected 3 "$id2")" ] ||
		fail "after the reload, read in two pieces: '$a'" || return
	a=$(cat <&3)
	[ -z "$a" ] || fail "the answer read twice: '$a'" || return
	exec 3<&-
	ktap_print_msg "ok, err 19, err 22, err 19 (removed), ok from instance $id2 (read in 2 pieces)"
	# One answer per open file, the last request's: separate opens keep their own, and writers
	# sharing one open file (a forked shell's descriptor) read whichever request came last.
	exec 3<>$DEV 4<>$DEV
	defer exec 4<&-
	echo "compute $PROVIDER 11" >&3
	echo "compute $PROVIDER 22" >&4
	a=$(cat <&3) b=$(cat <&4)
	[ "$(field x "$a")" = 11 ] && [ "$(field x "$b")" = 22 ] ||
		fail "two opens, two answers: '$a' / '$b'" || return
	(echo "compute $PROVIDER 33" >&3)
	(echo "compute $PROVIDER 44" >&3)
	a=$(cat <&3)
	[ "$(field x "$a")" = 44 ] || fail "a shared open file: '$a', expected the last request's (x=44)" || return
	exec 3<&- 4<&-
	ktap_print_msg "two opens keep two answers; a shared open file gives the last request's"
}

# configfs: mkdir registers a table of the live provider, rmdir withdraws it; names are checked.
test_configfs_tables() {
	local a long
	ensure_pair || fail "loading the pair failed" || return
	[ -d $CONFIGFS ] || fail "$CONFIGFS missing (configfs mounted at /sys/kernel/config?)" || return
	mkdir $CONFIGFS/foo || fail "mkdir $CONFIGFS/foo failed" || return
	a=$(table_names | xargs)
	[ "$a" = "rust_provider foo" ] || fail "list after mkdir: '$a'" || return
	compute_verified foo 77 || return
	a=$(text "describe foo") || fail "describe foo: $a" || return
	[ "$(field provider "$a")" = foo ] || fail "describe foo names another table: $a" || return
	# configfs pins the module that owns an item (two references per table directory).
	[ "$(refcnt)" -eq 2 ] || fail "refcnt $(refcnt) with one configfs table, expected 2" || return
	a=$(mkdir $CONFIGFS/rust_provider 2>&1) && fail "a second rust_provider table was accepted" && return
	grep -q "File exists" <<<"$a" || fail "duplicate name: $a" || return
	long=$(printf 'x%.0s' $(seq 32))
	a=$(mkdir $CONFIGFS/$long 2>&1) && fail "a 32-byte name was accepted" && return
	grep -q "File name too long" <<<"$a" || fail "32-byte name: $a" || return
	# Names the text interface could not address (a space, a control character, non-ASCII):
	# refused at mkdir, nothing registered.
	local bad
	for bad in "a b" $'ctl\x01' $'nl\nx' "$(printf 'caf\xc3\xa9')"; do
		a=$(mkdir "$CONFIGFS/$bad" 2>&1) && { rmdir "$CONFIGFS/$bad"; fail "mkdir of $(printf %q "$bad") was accepted"; return; }
		grep -q "Invalid argument" <<<"$a" || fail "mkdir $(printf %q "$bad"): $a" || return
	done
	[ "$(table_names | xargs)" = "rust_provider foo" ] || fail "list after refused names: $(table_names | xargs)" || return
	# The load-time table is a directory too: disabled and enabled again, never removed.
	local lt=$CONFIGFS/$PROVIDER
	[ "$(<"$lt/enabled")" = 1 ] && [ "$(<$CONFIGFS/foo/enabled)" = 1 ] ||
		fail "enabled reads $(<"$lt/enabled") and $(<$CONFIGFS/foo/enabled), expected 1" || return
	a=$(rmdir "$lt" 2>&1) && fail "rmdir of the load-time table's directory succeeded" && return
	grep -q "Operation not permitted" <<<"$a" || fail "rmdir $lt: $a" || return
	a=$( (echo 2 >"$lt/enabled") 2>&1) && fail "enabled=2 was accepted" && return
	grep -q "Invalid argument" <<<"$a" || fail "enabled=2: $a" || return
	# The lever is root's (configfs attributes are 0660, root's): nobody cannot withdraw a table.
	if command -v setpriv >/dev/null; then
		a=$(setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo 0 > $lt/enabled" 2>&1) &&
			{ fail "user nobody withdrew a table"; return; }
		grep -q "Permission denied" <<<"$a" || fail "enabled=0 as nobody: $a" || return
		[ "$(<"$lt/enabled")" = 1 ] || fail "the table is disabled after nobody's refused write" || return
	fi
	echo 0 >"$lt/enabled" || fail "enabled=0 on $PROVIDER failed" || return
	[ "$(<"$lt/enabled")" = 0 ] || fail "enabled reads $(<"$lt/enabled") after 0" || return
	a=$(text "compute $PROVIDER 1" 2>&1) && fail "a disabled table answered: $a" && return
	[ "$a" = "err 19" ] || fail "disabled: '$a', expected 'err 19'" || return
	[ "$(table_names | xargs)" = foo ] || fail "list with $PROVIDER disabled: $(table_names | xargs)" || return
	# Enabling again has mkdir's errors: fill the registry (8) meanwhile, and it is ENOSPC.
	local i
	for i in 1 2 3 4 5 6 7; do mkdir $CONFIGFS/fill$i || { fail "mkdir fill$i failed"; return; }; done
	a=$( (echo 1 >"$lt/enabled") 2>&1) && fail "enabled=1 with a full registry was accepted" && return
	grep -q "No space left on device" <<<"$a" || fail "enabled=1, registry full: $a" || return
	for i in 1 2 3 4 5 6 7; do rmdir $CONFIGFS/fill$i || { fail "rmdir fill$i failed"; return; }; done
	echo 1 >"$lt/enabled" || fail "enabled=1 on $PROVIDER failed" || return
	compute_verified $PROVIDER 5 || return
	rmdir $CONFIGFS/foo || fail "rmdir $CONFIGFS/foo failed" || return
	a=$(text "compute foo 1" 2>&1) && fail "foo answers after rmdir: $a" && return
	[ "$a" = "err 19" ] || fail "after rmdir: '$a', expected 'err 19'" || return
	[ "$(table_names | xargs)" = rust_provider ] || fail "list after rmdir: $(table_names | xargs)" || return
	[ "$(refcnt)" -eq 0 ] || fail "refcnt $(refcnt) after rmdir" || return
	ktap_print_msg "mkdir foo answered (instance $ANSWER_ID), EEXIST, ENAMETOOLONG, rmdir -> ENODEV; enabled 0/1/ENOSPC, rmdir of a load-time table EPERM"
}

# A table withdrawn while calls sleep in it: rmdir returns only after those calls returned
# (refs_held is 0 the moment it returns), later calls get ENODEV, counters balance.
test_withdraw_drains() {
	local t0 t1 before a s failed0
	ensure_pair || fail "loading the pair failed" || return
	# (calls_failed is cumulative: compare with its value now.)
	stat_into failed0 calls_failed
	mkdir $CONFIGFS/drained || fail "mkdir $CONFIGFS/drained failed" || return
	holds_overlap drained || return
	before=$(refs_held)
	t0=$(now_ms)
	rmdir $CONFIGFS/drained || { fail "rmdir failed"; return; }
	t1=$(now_ms)
	a=$(refs_held)
	ktap_print_msg "rmdir with $before holds in flight returned after $((t1 - t0)) ms; calls in flight then: $a"
	[ "$a" = 0 ] || { fail "rmdir returned while $a calls still used the table"; return; }
	a=$(text "hold drained 1" 2>&1) && { fail "the withdrawn table answers: $a"; return; }
	[ "$a" = "err 19" ] || { fail "after rmdir: '$a', expected 'err 19'"; return; }
	stop_hold_loops
	refs_balance || return
	stat_into s calls_failed
	[ "$s" = "$failed0" ] || fail "a hold failed: calls_failed $s, was $failed0"
}

# TABLE_CYCLES withdrawals and re-additions of one table under a 4-thread load on it, while
# another 4-thread load on rust_provider must see every call answered: no wrong answer anywhere,
# only ENODEV on the cycled name; counters balance afterwards.
test_withdraw_under_load() {
	local rc s
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	"${LOAD_NICE[@]}" "$TOOLS_DIR/rmc-load" -j 4 --until-stopped -p rust_provider --allow none --mix compute=8,hold=1,describe=1 \
		--hold-us 200 >/dev/null 2>"$TMP/steady.txt" &
	local steady=$!
	defer stop_bg "$steady"
	"${LOAD_NICE[@]}" "$TOOLS_DIR/rmc-load" -j 4 --until-stopped -p cycled --allow-no-answer --mix compute=8,hold=1,describe=1 --hold-us 200 \
		>/dev/null 2>"$TMP/cycled.txt" &
	local cycled=$!
	defer stop_bg "$cycled"
	rmc_ctl table-cycle cycled -n "$TABLE_CYCLES" >"$TMP/cycle.txt" 2>&1
	rc=$?
	kill -TERM $steady $cycled 2>/dev/null
	wait_pid $steady 20
	local src=$?
	wait_pid $cycled 20
	local crc=$?
	sed 's/^/# /' "$TMP/cycle.txt"
	grep -h '^  ok ' "$TMP/steady.txt" "$TMP/cycled.txt" | sed 's/^/# load: /'
	[ $rc -eq 0 ] || fail "table-cycle exited $rc" || return
	[ $src -eq 0 ] || fail "the load on rust_provider saw an error or a wrong answer: $(grep -E 'FAIL|wrong' "$TMP/steady.txt" | head -n 3)" || return
	[ $crc -eq 0 ] || fail "the load on the cycled table saw more than ENODEV: $(grep -E 'FAIL|wrong' "$TMP/cycled.txt" | head -n 3)" || return
	refs_balance || return
	[ "$(refcnt)" -eq 0 ] || fail "refcnt $(refcnt) after the cycles"
}

# Withdrawals and module removal interleaved under load: a configfs table keeps the module (refcnt
# 2, rmmod "in use"); once it is withdrawn the module goes patiently and comes back, and a new
# table works again.
test_withdraw_and_rmmod() {
	local err a
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	mkdir $CONFIGFS/a $CONFIGFS/b || fail "mkdir a b failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load
	rmdir $CONFIGFS/a || { fail "rmdir a under load failed"; return; }
	if err=$(rmmod $PROVIDER 2>&1); then
		fail "rmmod succeeded while table b exists"
		return
	fi
	grep -q "in use" <<<"$err" || { fail "rmmod with table b: $err"; return; }
	rmdir $CONFIGFS/b || { fail "rmdir b under load failed"; return; }
	remove_patiently || return 1
	load $PROVIDER || { fail "reloading rust_provider under load failed"; return; }
	mkdir $CONFIGFS/a || { fail "mkdir a after the reload failed"; return; }
	compute_verified a 5 || return
	rmdir $CONFIGFS/a || { fail "rmdir a failed"; return; }
	stop_load
	load_ok || return
	refs_balance || return
	[ "$(refcnt)" -eq 0 ] || fail "refcnt $(refcnt) at the end"
}

# A call in flight holds a reference: plain rmmod fails with "in use" until the call returns.
test_inflight_blocks_removal() {
	local err
	ensure_pair || fail "loading the pair failed" || return
	# A call is in flight at every moment, however long starting rmmod takes.
	holds_overlap || return
	local t0=$(now_ms)
	if err=$(rmmod $PROVIDER 2>&1); then
		fail "rmmod rust_provider succeeded while calls were in flight (after $(($(now_ms) - t0)) ms)"
		return
	fi
	ktap_print_msg "refcnt with two holds in flight: $(refcnt)"
	# At least one of the two loops has a hold in flight at any moment (both, most of the time).
	[ "$(refcnt)" -ge 1 ] || { fail "refcnt $(refcnt) with holds in flight"; return; }
	ktap_print_msg "rmmod during the holds: $err"
	grep -q "in use" <<<"$err" || { fail "expected 'in use', got: $err"; return; }
	is_loaded $PROVIDER || { fail "rust_provider disappeared"; return; }
	read -r err <"/sys/module/$PROVIDER/initstate"
	[ "$err" = live ] || { fail "rust_provider is $err, not live"; return; }
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
	remove_patiently || return 1
	ktap_print_msg "patient removal under load: ${REMOVAL_MS} ms, ${REMOVAL_ATTEMPTS} attempts (bound ${REMOVAL_BOUND_S} s)"
	nap 0.3 # let the load see ENODEV
	stop_load
	load_ok || return
	[ "${LOAD_OK:-0}" -gt 0 ] && [ "${LOAD_ENODEV:-0}" -gt 0 ] ||
		fail "expected both ok and ENODEV, got ok=$LOAD_OK ENODEV=$LOAD_ENODEV" || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# A provider whose calls always overlap is never idle: its module count never reaches zero, so
# rmmod --wait alone times out, correctly (the kernel removes a module only at count zero). The
# operator's lever is a driver's "unbind, then remove": enabled=0 on every table (and rmdir of
# the mkdir-ed ones, which pin the module) starts no new call, the calls in flight end, and the
# removal goes through.
test_withdraw_then_remove() {
	local rc t t0 t1 t2 msg
	need_tools || return 0
	ensure_consumer || fail "loading the consumer failed" || return
	! is_loaded $PROVIDER || remove_patiently || return
	# Two tables at load: both are configfs directories that cannot be removed, only disabled.
	load $PROVIDER "$MODDIR" tables=2 || fail "loading rust_provider tables=2 failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load --mix compute=90,hold=10 --hold-us 20000
	holds_overlap ${PROVIDER}_1 || return
	rmmod_wait --wait --timeout 10 $PROVIDER 2>"$TMP/rmmod.err"
	rc=$? msg=$(tail -n 1 "$TMP/rmmod.err")
	ktap_print_msg "rmmod-wait --timeout 10 under overlapping calls alone: exit $rc: $msg"
	[ $rc -eq 3 ] || fail "rmmod-wait exited $rc, expected 3 (still in use): $msg" || return
	[[ $msg =~ refcnt\ [1-9] ]] || fail "the message does not name a nonzero refcount: $msg" || return
	# A table added by mkdir, under calls too.
	mkdir $CONFIGFS/spare || fail "mkdir $CONFIGFS/spare failed" || return
	holds_overlap spare || return
	ms_now t0
	for t in $PROVIDER ${PROVIDER}_1 spare; do
		echo 0 >"$CONFIGFS/$t/enabled" || { fail "enabled=0 on $t failed"; return; }
		[ "$(<"$CONFIGFS/$t/enabled")" = 0 ] || fail "$t/enabled reads $(<"$CONFIGFS/$t/enabled") after writing 0" || return
	done
	rmdir $CONFIGFS/spare || fail "rmdir $CONFIGFS/spare failed" || return
	ms_now t1
	# A writer that kept the lever open does not hold the module (configfs attributes pin
	# nothing), and after the removal its writes fail instead of reaching the module's code.
	exec 7>"$CONFIGFS/$PROVIDER/enabled" || fail "opening $PROVIDER/enabled failed" || return
	defer close_fd 7
	rmmod_wait --wait --verbose --timeout 5 $PROVIDER 2>"$TMP/rmmod.err"
	rc=$?
	ms_now t2
	if ! is_loaded $PROVIDER; then
		msg=$( (echo 1 >&7) 2>&1) &&
			{ fail "a write to the kept-open enabled file succeeded after the removal"; return; }
		ktap_print_msg "the kept-open enabled file after the removal: ${msg##*: }"
	fi
	exec 7>&-
	ktap_print_msg "enabled=0 on 3 tables and rmdir spare: $((t1 - t0)) ms; then rmmod-wait: exit $rc after $((t2 - t1)) ms"
	[ $rc -eq 0 ] || fail "rmmod-wait after the withdrawals exited $rc: $(tail -n 2 "$TMP/rmmod.err")" || return
	[ $((t2 - t1)) -le 5000 ] || fail "rmmod-wait took $((t2 - t1)) ms (bound 5000)" || return
	nap 0.3 # let the load see ENODEV
	stop_load
	stop_hold_loops
	load_ok || return
	[ "${LOAD_OK:-0}" -gt 0 ] && [ "${LOAD_ENODEV:-0}" -gt 0 ] ||
		fail "expected both ok and ENODEV, got ok=$LOAD_OK ENODEV=$LOAD_ENODEV" || return
	refs_balance || return
	load $PROVIDER || fail "reloading rust_provider failed"
}

# The provider comes back while the load goes on: calls succeed again, from a new instance.
test_reload_under_load() {
	local after
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	LOAD_BASE_OK=$(stat_of calls_ok)
	start_load --min-instances 2
	remove_patiently || return 1
	load $PROVIDER || { fail "reloading rust_provider under load failed"; return; }
	# Per-provider counters start at registration: calls_ok > 0 means the new instance answers.
	loop_until 10 provider_answers || { fail "no call succeeded after the reload"; return; }
	stop_load
	load_ok
}

# CYCLES removals and reloads under one continuous load; afterwards every reference is back.
test_cycles() {
	local i s t0 t1 t2 t3 t4
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	stat_into LOAD_BASE_OK calls_ok
	ctl_start
	start_load --min-instances $((CYCLES + 1))
	: >"$TMP/removal_ms"
	: >"$TMP/cycle_ms"
	for i in $(seq "$CYCLES"); do
		ms_now t0
		# make soak: table withdrawals and re-adds interleaved with the removals (a table
		# directory pins the provider, so each is gone before the removal).
		if [ "$CYCLE_TABLES" -gt 0 ]; then
			ctl table-cycle soak "$CYCLE_TABLES" ||
				{ fail "cycle $i: table-cycle failed: $CTL_REPLY"; return; }
		fi
		ms_now t1
		remove_patiently || { REASON="cycle $i: $REASON"; return 1; }
		echo "$REMOVAL_MS" >>"$TMP/removal_ms"
		ms_now t2
		ctl load "$MODDIR/$PROVIDER.ko" ||
			{ fail "cycle $i: reload failed: $CTL_REPLY"; return; }
		ms_now t3
		loop_until 10 provider_answers || { fail "cycle $i: no call succeeded after reload"; return; }
		ms_now t4
		# Where a cycle's time goes (wall clock of each step, ms): make soak reports the means.
		echo "$((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t4 - t3))" >>"$TMP/cycle_ms"
		[ $((i % 50)) != 0 ] || ktap_print_msg "cycle $i/$CYCLES"
	done
	stop_load
	ktap_print_msg "$CYCLES cycles, patient removal p50/p99/max $(percentiles <"$TMP/removal_ms") ms"
	ktap_print_msg "a cycle's steps, mean ms: $(awk '{ for (i = 1; i <= 4; i++) s[i] += $i }
		END { if (NR) printf "tables %d, rmmod-wait %d, reload %d, first answer %d", s[1] / NR, s[2] / NR, s[3] / NR, s[4] / NR }' "$TMP/cycle_ms")"
	load_ok || return
	s=$(rmc_ctl stats)
	ktap_print_msg "counters: $s"
	# make soak reads the figures above from the KTAP, and the load's report from RESULTS_DIR.
	[ -z "${RESULTS_DIR:-}" ] || cp "$TMP/load.json" "$RESULTS_DIR/" ||
		fail "copying the load's report to $RESULTS_DIR failed" || return
	refs_balance || return
	[ "$(field refs_held " $s")" = 0 ] || fail "references still held: $s" || return
	[ "$(refcnt)" -eq 0 ] || fail "/sys/module/$PROVIDER/refcnt is $(refcnt)"
}

# The implied protection itself: with a 200 us busy-wait between finding a provider and taking
# its reference (race_window_us), lookups are often inside that window when the provider goes.
# Unregistration must wait for them (the table's SRCU drain) before the table is freed, or KASAN reports
# the use-after-free here.
test_unregister_race() {
	local i
	need_tools || return 0
	need_kasan || return 0
	unload_all
	load $CONSUMER "$MODDIR" race_window_us=200 || fail "insmod rust_consumer race_window_us=200 failed" || return
	load $PROVIDER || fail "insmod rust_provider failed" || return
	LOAD_BASE_OK=0
	start_load
	for i in 1 2 3; do
		remove_patiently || { REASON="cycle $i: $REASON"; return 1; }
		load $PROVIDER || { fail "cycle $i: reload failed"; return; }
		loop_until 10 provider_answers || { fail "cycle $i: no call succeeded after reload"; return; }
	done
	stop_load
	load_ok || return
	unload_all
}

# A patient removal that cannot succeed in time must say so (exit 3) and leave the module loaded.
# kmod's modprobe -r --wait is recorded in the same situation, for information.
test_removal_timeout() {
	local rc t0 t1 base kver mrc
	need_tools || return 0
	ensure_pair || fail "loading the pair failed" || return
	# A reference is held at every moment.
	holds_overlap || return
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

# The kselftest runner's timeout sends TERM to the suite. A nested run of the suite is stopped in
# the middle of withdraw_under_load (a foreground table-cycle, two background loads): it must exit
# 143 within 30 s (the cleanup's rmmods take most of it), unload the pair it loaded, and start no
# later case.
test_suite_stops_on_term() {
	local pid rc t0 ms
	need_tools || return 0
	unload_all
	mark
	"$DIR/rust_modref.sh" -t withdraw_under_load,remove_in_order >"$TMP/nested.ktap" 2>&1 &
	pid=$!
	defer stop_bg "$pid"
	# TERM once the case's loads run and its table cycles are under way.
	if ! loop_until 120 nested_case_started withdraw_under_load ||
		! loop_until 60 is_loaded $PROVIDER; then
		sed 's/^/#   nested: /' "$TMP/nested.ktap" | tail -n 8
		fail "the nested suite did not get into withdraw_under_load with the pair loaded"
		return
	fi
	nap 3
	t0=$(now_ms)
	kill -TERM "$pid"
	wait_pid "$pid" 60
	rc=$?
	ms=$(($(now_ms) - t0))
	sed 's/^/#   nested: /' "$TMP/nested.ktap" | tail -n 4
	ktap_print_msg "suite stopped $ms ms after TERM, exit $rc"
	[ $rc -eq 143 ] || fail "exit $rc after TERM, expected 143" || return
	[ $ms -le 30000 ] || fail "the suite took $ms ms to stop after TERM" || return
	! is_loaded $PROVIDER && ! is_loaded $CONSUMER || fail "the pair is still loaded after TERM" || return
	! nested_case_started remove_in_order || fail "a later case started after TERM" || return
	! grep -qE '^(not )?ok 2 ' "$TMP/nested.ktap" || fail "a second case reported after TERM"
}

# A suite that finds the pair loaded must not touch it: skip (exit 4) with the reason, quickly
# (no rmmod retries), and leave both modules loaded.
test_suite_skips_preloaded() {
	local rc t0 ms
	ensure_pair || fail "loading the pair failed" || return
	t0=$(now_ms)
	"$DIR/rust_modref.sh" -t load_pair >"$TMP/nested.ktap" 2>&1
	rc=$?
	ms=$(($(now_ms) - t0))
	sed 's/^/#   nested: /' "$TMP/nested.ktap" | tail -n 2
	ktap_print_msg "the nested suite skipped in $ms ms"
	[ $rc -eq "$KSFT_SKIP" ] || fail "exit $rc with the pair preloaded, expected $KSFT_SKIP (skip)" || return
	grep -q "^1\.\.0 # SKIP .*already loaded" "$TMP/nested.ktap" || fail "no skip-all line naming the loaded pair" || return
	is_loaded $CONSUMER && is_loaded $PROVIDER || fail "the skipping suite unloaded the pair"
}

# Every allocation failure, tried (make faults, not in the default run: it loads each module a
# few hundred times). For each syscall of the pair's life - loading each module, opening the
# device, a call, a text request, creating a configfs table - the Nth kernel allocation is failed
# for N = 1, 2, ... (rmc-ctl fail-nth: /proc/thread-self/fail-nth, as syzkaller does it) until the
# syscall runs clean. Each failure must give ENOMEM or be absorbed, leave nothing behind that
# stops the next attempt, and put no splat in the log; afterwards the pair works.
# (ALLOC_LOAD_STEP: module loads try every ALLOC_LOAD_STEP-th N only.)
test_alloc_failures() {
	local cfg=/sys/kernel/config/rust_provider load_step=${ALLOC_LOAD_STEP:-1}
	need_tools || return 0
	[ -w /proc/thread-self/fail-nth ] ||
		{ skip "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION)"; return 0; }
	[ -d /sys/kernel/debug/failslab ] && [ -d /sys/kernel/debug/fail_page_alloc ] ||
		{ skip "no failslab/fail_page_alloc in debugfs (CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS)"; return 0; }
	# By default only allocations that cannot sleep are failed, and each failure dumps a stack.
	fault_attr failslab ignore-gfp-wait N
	fault_attr failslab verbose 0
	fault_attr fail_page_alloc ignore-gfp-wait N
	fault_attr fail_page_alloc min-order 0
	fault_attr fail_page_alloc ignore-gfp-highmem N # vmalloc's data pages (the module image)
	fault_attr fail_page_alloc verbose 0
	unload_all
	mark
	FAULT_STEP=$load_step fail_nth load "$MODDIR/$CONSUMER.ko" || return
	load $CONSUMER || fail "insmod rust_consumer failed after its fault run" || return
	FAULT_STEP=$load_step fail_nth load "$MODDIR/$PROVIDER.ko" || return
	load $PROVIDER || fail "insmod rust_provider failed after its fault run" || return
	fail_nth open || return
	fail_nth call $PROVIDER || return
	fail_nth text "compute $PROVIDER 7" || return
	fail_nth mkdir $cfg/faulty || return
	[ ! -e $cfg/faulty ] || fail "a table directory was left behind" || return
	rmc_ctl call $PROVIDER compute 7 >/dev/null || fail "the pair does not answer after the fault runs" || return
	# Nothing in the log but our own lines and the kernel's reports of the failures we forced.
	log_ours
}
# make test's bounded version: every FAULT_LOAD_STEP-th allocation (default 8th) of each module
# load, every allocation of the other paths.
test_alloc_failures_sampled() { ALLOC_LOAD_STEP=${FAULT_LOAD_STEP:-8} test_alloc_failures; }
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
	# A node that is not the device: a regular file (what a shell's `exec 3<>` leaves when the
	# device is missing) and another character device. Every tool refuses both, exit 3.
	local rc
	: >"$TMP/rust_consumer"
	rmc_ctl --device "$TMP/rust_consumer" text list >/dev/null 2>"$TMP/err"
	rc=$?
	[ $rc -eq 3 ] && grep -q "is a regular file" "$TMP/err" ||
		fail "a regular file as the device: exit $rc: $(cat "$TMP/err")" || return
	rmc_ctl --device /dev/null stats >/dev/null 2>"$TMP/err"
	rc=$?
	[ $rc -eq 3 ] && grep -q "is character device 1:3, but rust_consumer's is" "$TMP/err" ||
		fail "/dev/null as the device: exit $rc: $(cat "$TMP/err")" || return
	"$TOOLS_DIR/rmc-load" --device "$TMP/rust_consumer" -n 1 >/dev/null 2>"$TMP/err"
	rc=$?
	[ $rc -eq 3 ] || fail "rmc-load with a regular file as the device: exit $rc: $(cat "$TMP/err")" || return
	# A hold over the bound is refused before any table is called: no reference, no failure.
	local t0 t1 f0 f1
	stat_into t0 refs_taken
	stat_into f0 calls_failed
	text "hold $PROVIDER 1000001" >/dev/null 2>&1
	rmc_ctl --expect EINVAL call $PROVIDER hold 1000001 >/dev/null 2>&1
	stat_into t1 refs_taken
	stat_into f1 calls_failed
	[ "$t1" = "$t0" ] && [ "$f1" = "$f0" ] ||
		fail "a refused hold reached the provider: refs_taken $t0 -> $t1, calls_failed $f0 -> $f1" || return
	rmc_ctl fuzz --count "$FUZZ_COUNT" --seed "$RANDOM" 2>"$TMP/fuzz.txt"
	local rc=$?
	sed 's/^/# /' "$TMP/fuzz.txt"
	[ $rc -eq 0 ] || fail "random requests found an undocumented outcome or a wrong answer"
}

# kmemleak after the cases above: two scans (its documentation advises a second one, objects
# younger than 5 s are not reported) with the pair loaded, so that the module frames of a
# backtrace resolve to names. A leak fails the case if its backtrace is in either module or in
# module space (an unloaded instance's frames no longer resolve; nothing else loads modules here).
test_kmemleak_clean() {
	local km=/sys/kernel/debug/kmemleak leaks
	[ -e "$km" ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	if [ ! -e "$km" ]; then
		skip "no $km (CONFIG_DEBUG_KMEMLEAK)"
		return 0
	fi
	if ! echo scan 2>/dev/null >"$km"; then
		skip "kmemleak is off (boot with kmemleak=on: VM_KMEMLEAK=1, make soak)"
		return 0
	fi
	ensure_pair || fail "loading the pair failed" || return
	rmc_ctl call $PROVIDER compute 1 >/dev/null || fail "a call failed" || return
	nap 6
	echo scan >"$km" || fail "the second scan failed" || return
	cat "$km" >"$TMP/kmemleak.txt"
	leaks=$(module_leaks "$TMP/kmemleak.txt")
	ktap_print_msg "kmemleak: $(grep -c '^unreferenced object' "$TMP/kmemleak.txt") unreferenced object(s) in all, $(grep -c '^unreferenced object' <<<"$leaks") of them the modules'"
	[ -z "$leaks" ] || { printf '%s\n' "$leaks" | head -n 40 | sed 's/^/#   /'; fail "kmemleak reports leaks of the modules"; }
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

# The negative controls: the suite must catch a consumer built broken on purpose. Each loads a
# consumer from its negative-control build and runs one of the cases above against it; the case
# must fail (its assertion, or a splat in the kernel log): run_case then reports XFAIL. They run
# in a boot of their own (scripts/test.sh): the second leaves the kernel damaged, often dead; the
# host then reads the fault from the console log. Never run them on a machine you need.

# Without module references, removal is not refused while calls run in the provider.
test_negative_control() { negative_control "$NEG_MODDIR" inflight_blocks_removal; }

# Without the drain, withdrawing a table frees it under the calls sleeping in it: the case sees
# rmdir return while they run, and KASAN sees them use the freed table when they wake.
test_negative_control_drain() { negative_control "$NEG_DRAIN_MODDIR" withdraw_drains; }

# ------------------------------------------------------------------------------------------------
# Main.

usage() {
	cat <<-EOF
		Usage: rust_modref.sh [-t CASE[,CASE...]] [-l]
		  -t  run only these cases (names as printed by -l)
		  -l  list the cases, each with what it proves
		Environment: MODDIR, NEG_MODDIR and NEG_DRAIN_MODDIR (negative-control builds), TOOLS_DIR,
		CYCLES and CYCLE_TABLES (cycles case), TABLE_CYCLES (withdraw_under_load), FUZZ_COUNT
		(bad_input), FAULT_LOAD_STEP (alloc_failures_sampled), RESULTS_DIR (raw results of cycles).
	EOF
}
list=0
selected=()
while getopts ":t:lh" opt; do
	case $opt in
	t) IFS=, read -r -a selected <<<"$OPTARG" ;;
	l) list=1 ;;
	h) usage; exit 0 ;;
	*) echo "rust_modref.sh: invalid option -${OPTARG:-?}" >&2; usage >&2; exit 1 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { echo "rust_modref.sh: unexpected argument '$1'" >&2; usage >&2; exit 1; }
if [ $list = 1 ]; then
	for t in "${ALL_TESTS[@]}" "${EXTRA_TESTS[@]}" "${NEGATIVE_CONTROLS[@]}"; do printf '%-28s %s\n' "${t%%|*}" "${t#*|}"; done
	exit 0
fi
if [ ${#selected[@]} -eq 0 ]; then
	for t in "${ALL_TESTS[@]}"; do selected+=("${t%%|*}"); done
fi
for c in "${selected[@]}"; do
	declare -F "test_$c" >/dev/null || { echo "rust_modref.sh: unknown case '$c' (see -l)" >&2; usage >&2; exit 1; }
done

ktap_print_header
echo "# kernel $(uname -r) on $(uname -m), $(nproc) CPUs"
[ "$(id -u)" = 0 ] || { ktap_skip_all "must run as root"; exit "$KSFT_SKIP"; }
for tool in insmod rmmod modinfo dmesg; do
	command -v $tool >/dev/null || { ktap_skip_all "$tool not found (Debian: kmod, util-linux)"; exit "$KSFT_SKIP"; }
done
for m in $CONSUMER $PROVIDER; do
	[ -f "$MODDIR/$m.ko" ] || { ktap_skip_all "$MODDIR/$m.ko not built (run make)"; exit "$KSFT_SKIP"; }
done
if is_loaded $CONSUMER || is_loaded $PROVIDER; then
	ktap_skip_all "rust_consumer or rust_provider is already loaded: remove them first"
	exit "$KSFT_SKIP"
fi
# The provider's tables directory lives in configfs (CONFIG_CONFIGFS_FS); mount it if needed.
if [ -d /sys/kernel/config ] && ! grep -q ' /sys/kernel/config configfs ' /proc/mounts; then
	mount -t configfs configfs /sys/kernel/config 2>/dev/null
fi

# From here on this run owns the pair: clean up on every exit, and stop on a signal (the
# kselftest runner's timeout sends TERM) with the signal's status instead of running on.
lib_init
TMP=$(mktemp -d /tmp/rust_modref.XXXXXX)
cleanup() {
	run_defers
	exec 3<&- 2>/dev/null
	remove_tables
	unload_all
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'ktap_print_msg "interrupted by SIGTERM"; exit 143' TERM
trap 'ktap_print_msg "interrupted by SIGINT"; exit 130' INT
trap 'ktap_print_msg "interrupted by SIGHUP"; exit 129' HUP

local_tools

ktap_set_plan ${#selected[@]}
for c in "${selected[@]}"; do
	run_case "$c"
done
ktap_finished
