# SPDX-License-Identifier: GPL-2.0
#
# Helper library of the rust_modref selftest (rust_modref.sh holds the cases, this file every
# helper): constants, bounded waits, the per-case cleanup stack, module and device helpers, the
# load generators, fault injection, the negative controls, and run_case. Sourcing it only
# defines things; lib_init opens what the waits need. Also sourced by make run (demo.sh), make
# bench (bench/run.sh) and the host-side scripts: SPLAT_RE is the one definition of "the kernel
# log shows something went wrong", percentiles the one percentile.

# Kernel log lines that mean something went wrong in the kernel.
SPLAT_RE='BUG:|WARNING:|Oops|KASAN:|general protection fault|possible circular locking|refcount_t:|UBSAN:|INFO: task .* blocked|detected stall|hard LOCKUP|Unable to handle|kernel BUG|no (extended )?symbol version for'
PROVIDER=rust_provider
CONSUMER=rust_consumer
DEV=/dev/rust_consumer
CONFIGFS=/sys/kernel/config/rust_provider

# ------------------------------------------------------------------------------------------------
# The cleanup stack (as net/lib/sh/defer.sh): a case registers the undo of each resource right
# where it creates it; run_case runs the stack after every case, on every path, newest first.

DEFER_STACK=()
defer() { local q; printf -v q '%q ' "$@"; DEFER_STACK+=("$q"); }
run_defers() {
	local i
	for ((i = ${#DEFER_STACK[@]} - 1; i >= 0; i--)); do
		eval "${DEFER_STACK[i]}"
	done
	DEFER_STACK=()
}

# Why the current case failed or skipped; printed as a KTAP diagnostic / SKIP directive.
REASON=""
SKIP_REASON=""
fail() {
	REASON="$*"
	return 1
}
skip() {
	SKIP_REASON="$*"
	return 0
}

# ------------------------------------------------------------------------------------------------
# Clocks and bounded waits. Starting a process costs ~0.4 s in a TCG guest on a debug kernel, so
# waits and clocks use bash builtins: nap SECONDS sleeps by timing out a read on a pipe nobody
# writes.

lib_init() { [ -n "${NAP_FD:-}" ] || exec {NAP_FD}<> <(:); }
nap() { read -rt "$1" -u "$NAP_FD"; }
# ms_now VAR: milliseconds since the epoch into VAR. No command substitution: that forks, and a
# fork costs tens of milliseconds under load (the cycles case polls and times every step).
ms_now() { local _ms_t=${EPOCHREALTIME/./}; printf -v "$1" %d $((_ms_t / 1000)); }
now_ms() { local t; ms_now t; echo "$t"; }

# loop_until TIMEOUT_S CMD...: poll CMD until it succeeds or the timeout passes.
loop_until() {
	local _lu_now _lu_deadline
	ms_now _lu_now
	_lu_deadline=$((_lu_now + $1 * 1000))
	shift
	while ! "$@"; do
		ms_now _lu_now
		[ "$_lu_now" -lt "$_lu_deadline" ] || return 1
		nap 0.05
	done
	# (Not the loop's status: that is the last nap's, a read timeout, > 128.)
	return 0
}

# wait_pid PID TIMEOUT_S: bounded wait for a background process; kills it on timeout (124).
wait_pid() {
	local pid=$1 now deadline
	ms_now now
	deadline=$((now + $2 * 1000))
	while kill -0 "$pid" 2>/dev/null; do
		ms_now now
		if [ "$now" -ge "$deadline" ]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		nap 0.05
	done
	wait "$pid"
}

# close_fd N: closes the shell's file descriptor N (for defer: a redirection is not a command).
close_fd() { eval "exec $1>&-"; }

# not_running PID: the background process PID has ended (its status is collected by a later wait).
not_running() { ! kill -0 "$1" 2>/dev/null; }

# stop_bg PID: TERM a background process and wait for it (bounded); nothing if it is gone.
stop_bg() {
	kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
	kill -TERM "$1" 2>/dev/null
	wait_pid "$1" 20
}

# ------------------------------------------------------------------------------------------------
# Modules.

is_loaded() { [ -d "/sys/module/$1" ]; }

load() {
	local mod=$1 dir=${2:-$MODDIR}
	shift 2 2>/dev/null || shift
	insmod "$dir/$mod.ko" "$@"
}

unload_all() {
	local m
	for m in $PROVIDER $CONSUMER; do
		if is_loaded "$m"; then
			# Bounded: refcount must drain (no load runs after the cleanup stack stopped it).
			loop_until 10 rmmod "$m" 2>/dev/null || echo "# cleanup: could not remove $m" >&2
		fi
	done
}

# Withdraw every configfs table (each pins the provider); each rmdir is bounded by its drain.
remove_tables() {
	local d
	for d in "$CONFIGFS"/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	return 0
}

refcnt() {
	local v=-1
	read -r v <"/sys/module/$PROVIDER/refcnt" 2>/dev/null
	echo "$v"
}

ensure_consumer() { is_loaded $CONSUMER || load $CONSUMER; }
ensure_pair() { ensure_consumer && { is_loaded $PROVIDER || load $PROVIDER; }; }

# Kernel log from the marker line on.
log_since() { dmesg | sed -n "/$1/,\$p"; }
# mark: a marker line in the kernel log; since_mark: the log from the last one on (a step's
# window, whatever else the kernel printed meanwhile, e.g. KUnit's KTAP at every consumer load).
LOG_MARK=""
mark() {
	LOG_MARK="rust_modref_selftest: mark $$.$RANDOM.$RANDOM"
	echo "$LOG_MARK" >/dev/kmsg
}
since_mark() { log_since "$LOG_MARK"; }

# ------------------------------------------------------------------------------------------------
# The device.

# The answer compute(x) must give for instance id: SplitMix64's finaliser of x ^ id, in bash's
# wrapping 64-bit arithmetic (logical shifts by masking). Independent of the Rust tools.
compute_expected() {
	local z=$((($1 ^ $2) + 0x9e3779b97f4a7c15))
	z=$(((z ^ ((z >> 30) & 0x3ffffffff)) * 0xbf58476d1ce4e5b9))
	z=$(((z ^ ((z >> 27) & 0x1fffffffff)) * 0x94d049bb133111eb))
	z=$((z ^ ((z >> 31) & 0x1ffffffff)))
	printf '%u\n' $z
}

# compute_verified TABLE X: `compute TABLE X` through the text interface, the answer checked in
# bash; ANSWER is the answer, ANSWER_ID the instance that gave it.
compute_verified() {
	local y
	ANSWER=$(text "compute $1 $2") || fail "compute on $1: $ANSWER" || return
	field_into ANSWER_ID instance "$ANSWER"
	field_into y y "$ANSWER"
	[ "$y" = "$(compute_expected "$2" "$ANSWER_ID")" ] || fail "wrong answer from $1: $ANSWER"
}

# text REQUEST: one request through the text interface; prints the answer, returns write's status.
text() {
	local rc
	exec 3<>$DEV || return 1
	echo "$1" 2>/dev/null >&3
	rc=$?
	cat <&3
	exec 3<&-
	return $rc
}

# table_names: the registered tables, one a line: the answer to `list` ("ok list N", then N
# names), checked. Fails on an answer of another shape.
table_names() {
	local a n
	a=$(text list) || return
	[[ $a =~ ^ok\ list\ ([0-9]+)($'\n'|$) ]] || { echo "list answered '$a'" >&2; return 1; }
	n=${BASH_REMATCH[1]}
	a=$(sed 1d <<<"$a")
	[ "$(grep -c . <<<"$a")" = "$n" ] || { echo "list said $n names, gave: $a" >&2; return 1; }
	[ -z "$a" ] || echo "$a"
}

# field_into VAR NAME TEXT: VAR = the value of the first NAME=... word in TEXT (any line), or
# empty; no fork. field NAME TEXT prints it.
field_into() {
	local _fi_w _fi_words
	printf -v "$1" %s ""
	read -r -a _fi_words <<<"${3//$'\n'/ }"
	for _fi_w in "${_fi_words[@]}"; do
		[[ $_fi_w != "$2="* ]] || { printf -v "$1" %s "${_fi_w#*=}"; return 0; }
	done
}
field() { local v; field_into v "$1" "$2"; [ -z "$v" ] || echo "$v"; }

# stat_into VAR COUNTER [TABLE]: VAR = one counter of the text `stats` answer (total, or
# TABLE's), 0 if there is none; no fork (under load a process start costs a second or more in a
# TCG guest, and the cases poll this). stat_of COUNTER [TABLE] prints it.
stat_into() {
	local _si_line=""
	if exec 5<>$DEV; then
		echo "stats${3:+ $3}" 2>/dev/null >&5 && read -r _si_line <&5
		exec 5<&-
	fi 2>/dev/null
	field_into "$1" "$2" "$_si_line"
	[ -n "${!1}" ] || printf -v "$1" %s 0
}
stat_of() { local v; stat_into v "$@"; echo "$v"; }

# module_leaks FILE: the reports in FILE (a read of /sys/kernel/debug/kmemleak) whose backtrace
# has a frame in either module: by name, or as a bare module-space address (0xffffffffa0000000
# and up on x86-64) once the module is gone and the frame cannot be named. make check feeds it a
# sample report.
module_leaks() {
	awk '/^unreferenced object/ { if (hit) print obj; obj = $0; hit = 0; next }
		/rust_consumer|rust_provider|(^|[^0-9a-fx])0xffffffff[a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]([^0-9a-f]|$)/ { hit = 1 }
		{ obj = obj "\n" $0 }
		END { if (hit) print obj }' "$1"
}

# refs_held: calls in flight (they still move in the negative-control builds).
refs_held() { stat_of refs_held; }
holds_in_flight() { local n; stat_into n refs_held; [ "$n" -ge "${1:-1}" ] 2>/dev/null; }
# table_counted COUNTER TABLE: TABLE's COUNTER is above zero (a table's counters start at its
# registration). table_answers TABLE: it has answered a call (after a reload: the new instance).
table_counted() { local n; stat_into n "$1" "$2"; [ "$n" -gt 0 ] 2>/dev/null; }
table_answers() { table_counted calls_ok "$1"; }
provider_answers() { table_answers $PROVIDER; }

# refs_balance: every reference taken was released (the totals; no call may be in flight).
refs_balance() {
	local s
	s=$(text stats)
	[ "$(field refs_taken " $s")" = "$(field refs_released " $s")" ] ||
		fail "references taken != released: $s"
}

# text_on_fd3 REQUEST: one request on the file the case keeps open as fd 3; prints the answer.
text_on_fd3() {
	echo "$1" >&3 2>/dev/null
	cat <&3
}

# hold_loop_background [TABLE]: back-to-back 1 s holds on TABLE (default rust_provider) until
# stopped or a hold fails (ENODEV once the table or the provider is gone). One open file, and
# `echo` is a builtin: nothing is forked between two holds. Stopped by the cleanup stack, or
# earlier by stop_hold_loops.
HOLD_LOOP_PIDS=()
hold_loop_background() {
	local table=${1:-$PROVIDER}
	(exec 4<>$DEV && while echo "hold $table 1000000" >&4 2>/dev/null; do :; done) &
	HOLD_LOOP_PIDS+=($!)
	defer stop_bg $!
}
# holds_overlap [TABLE]: two hold loops on TABLE, half a second out of phase, so that a call
# sleeps in the table at every moment; returns once two are in flight (fails after 10 s).
holds_overlap() {
	hold_loop_background "$@"
	nap 0.5
	hold_loop_background "$@"
	loop_until 10 holds_in_flight 2 || fail "never two holds in flight"
}

# long_bench ARGS...: a 10^8-iteration in-kernel benchmark (rmc-bench kernel ARGS) in the
# background, stopped by the cleanup stack; BENCH_PID, stderr in $TMP/bench.err.
long_bench() {
	"$TOOLS_DIR/rmc-bench" kernel -n 100000000 --reps 1 "$@" >/dev/null 2>"$TMP/bench.err" &
	BENCH_PID=$!
	defer stop_bg "$BENCH_PID"
}

# stop_hold_loops: bounded, each loop ends once its current hold (<= 1 s) returns.
stop_hold_loops() {
	local pid
	for pid in "${HOLD_LOOP_PIDS[@]}"; do
		stop_bg "$pid"
	done
	HOLD_LOOP_PIDS=()
}

# ------------------------------------------------------------------------------------------------
# The tools.

# kernel_config OPTION: the running kernel's value of CONFIG_OPTION (y, m, a number; empty when
# unset), from /proc/config.gz (CONFIG_IKCONFIG_PROC) or /boot/config-$(uname -r); "unknown" if
# neither can be read.
kernel_config() {
	local f=/boot/config-$(uname -r) line
	if [ -r /proc/config.gz ]; then
		line=$(zcat /proc/config.gz | grep "^CONFIG_$1=")
	elif [ -r "$f" ]; then
		line=$(grep "^CONFIG_$1=" "$f")
	else
		echo unknown
		return
	fi
	echo "${line#*=}"
}

# need_kasan: for a case that only has teeth when KASAN reports the use-after-free it provokes.
need_kasan() {
	case $(kernel_config KASAN) in
	y) return 0 ;;
	unknown) skip "cannot tell whether the kernel has KASAN (no /proc/config.gz: CONFIG_IKCONFIG_PROC)" ;;
	*) skip "the running kernel has no KASAN: a use-after-free here would go unseen" ;;
	esac
	return 1
}

need_tools() {
	local t
	for t in rmc-load rmc-ctl rmmod-wait; do
		[ -x "$TOOLS_DIR/$t" ] || { skip "${TOOLS_FROM:-$TOOLS_DIR}/$t not built (make tools)"; return 1; }
	done
}
need_rmc_bench() {
	[ -x "$TOOLS_DIR/rmc-bench" ] || { skip "${TOOLS_FROM:-$TOOLS_DIR}/rmc-bench not built (make tools)"; return 1; }
}
# cpus_upto_4 VAR: the online CPUs, at most 4 (the benchmark cases' thread count).
cpus_upto_4() { local _c; _c=$(nproc); [ "$_c" -le 4 ] || _c=4; printf -v "$1" %d "$_c"; }
# local_tools: tools on a network filesystem run from a copy in $TMP. virtme-ng's 9p share has
# no page cache: every exec would read the whole binary from the host again.
local_tools() {
	local t
	case $(stat -f -c %T "$TOOLS_DIR" 2>/dev/null) in
	v9fs | nfs | fuse | fuseblk | virtiofs | smb2 | cifs) ;;
	*) return 0 ;;
	esac
	mkdir -p "$TMP/tools" || return 0
	for t in rmc-load rmc-ctl rmmod-wait rmc-bench; do
		[ ! -x "$TOOLS_DIR/$t" ] || cp "$TOOLS_DIR/$t" "$TMP/tools/" || return 0
	done
	TOOLS_FROM=$TOOLS_DIR TOOLS_DIR=$TMP/tools
}
# fg_cmd CMD...: run CMD and wait for it, interruptibly. Bash runs a signal's trap only once a
# foreground command has ended, but a `wait` returns at once: a TERM from the kselftest runner
# then stops the suite within moments, and the cleanup stack stops CMD.
fg_cmd() {
	local pid rc
	"$@" &
	pid=$!
	defer stop_bg "$pid"
	wait "$pid"
	rc=$?
	unset 'DEFER_STACK[-1]' # CMD has ended (its PID may be reused): nothing left to undo
	return $rc
}
rmc_ctl() { fg_cmd "$TOOLS_DIR/rmc-ctl" "$@"; }
rmmod_wait() { fg_cmd "$TOOLS_DIR/rmmod-wait" "$@"; }

# ctl_start: one `rmc-ctl serve` for the case, a coprocess that answers a line per request, so
# that the cycles case starts no process for a table withdrawal or a reload (under its load a
# process start is the slowest step of a cycle in a TCG guest: bench/README.md).
# ctl REQUEST...: one request ("table-cycle NAME N", "load PATH [PARAMS]"); the answer is in
# CTL_REPLY (or why there is none); fails unless it is "ok ..." within 60 s. A server that died
# makes ctl fail, not the suite: its pipe ends are our own copies, SIGPIPE is ignored meanwhile.
ctl_start() {
	coproc CTL { exec "$TOOLS_DIR/rmc-ctl" serve 2>"$TMP/ctl.err"; }
	exec {CTL_W}>&"${CTL[1]}" {CTL_R}<&"${CTL[0]}"
	defer stop_bg "${CTL_PID:-}"
	defer ctl_close
}
ctl_close() { exec {CTL_W}>&- {CTL_R}<&-; } 2>/dev/null
ctl() {
	CTL_REPLY=""
	trap '' PIPE
	{ echo "$*" >&"$CTL_W" && IFS= read -r -t 60 CTL_REPLY <&"$CTL_R"; } 2>/dev/null
	trap - PIPE
	[[ $CTL_REPLY == "ok "* ]] && return 0
	[ -n "$CTL_REPLY" ] || CTL_REPLY="no answer from rmc-ctl serve: $(tail -n 2 "$TMP/ctl.err" 2>/dev/null)"
	return 1
}

# Background load runs at nice 10 (LOAD_NICE): its threads still take every idle cycle of every
# CPU, but the case's own steps (rmmod-wait, insmod, the checks) go first on a shared vCPU.
LOAD_NICE=(nice -n 10)

# start_load ARGS...: the load generator at >= 4 threads until stop_load (or the cleanup
# stack); summary in $TMP/load.txt.
start_load() {
	local threads
	threads=$(nproc)
	[ "$threads" -ge 4 ] || threads=4
	"${LOAD_NICE[@]}" "$TOOLS_DIR/rmc-load" -j "$threads" --until-stopped --json "$@" >"$TMP/load.json" 2>"$TMP/load.txt" &
	LOAD_PID=$!
	defer stop_bg "$LOAD_PID"
	# Bounded wait until calls flow (or the generator died).
	loop_until 10 load_running || true
}
load_running() {
	local n
	kill -0 "$LOAD_PID" 2>/dev/null || return 0
	stat_into n calls_ok
	[ "$n" -gt "${LOAD_BASE_OK:-0}" ]
}

# load_ok: the stopped load generator saw only verified answers and allowed errnos.
load_ok() {
	[ "$LOAD_RC" -eq 0 ] || fail "rmc-load exit $LOAD_RC: $(grep FAIL "$TMP/load.txt")"
}

# stop_load: stop the generator (bounded); LOAD_RC, LOAD_OK, LOAD_ENODEV set.
stop_load() {
	stop_bg "$LOAD_PID"
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
	local rc err
	rmmod_wait --wait --verbose --timeout "$REMOVAL_BOUND_S" $PROVIDER 2>"$TMP/rmmod.err"
	rc=$?
	REMOVAL_MS="" REMOVAL_ATTEMPTS="" err=""
	IFS= read -r -d '' err <"$TMP/rmmod.err"
	if [[ $err =~ removed\ after\ ([0-9]+)\ attempt\(s\),\ ([0-9.]+)\ ms ]]; then
		REMOVAL_ATTEMPTS=${BASH_REMATCH[1]} REMOVAL_MS=${BASH_REMATCH[2]}
	fi
	[ $rc -eq 0 ] || fail "rmmod-wait exited $rc: $(tail -n 3 "$TMP/rmmod.err")" || return
	! is_loaded $PROVIDER || fail "rmmod-wait exited 0 but $PROVIDER is still loaded"
}

# ------------------------------------------------------------------------------------------------
# The in-kernel benchmark's kthreads.

# kthreads_placed: the K of each rmc_bench/K kthread that runs on CPU K now (field 39 of
# /proc/PID/stat), into the array PLACED (PLACED[K]=1).
kthreads_placed() {
	local d comm st
	for d in /proc/[0-9]*; do
		read -r comm 2>/dev/null <"$d/comm" || continue
		[[ $comm == rmc_bench/* ]] || continue
		{ st=$(<"$d/stat"); } 2>/dev/null || continue
		st=(${st##*) })
		[ "${st[36]}" != "${comm#rmc_bench/}" ] || PLACED[${st[36]}]=1
	done
}

# ------------------------------------------------------------------------------------------------
# Fault injection.

# fault_attr NAME ATTR VALUE: set /sys/kernel/debug/NAME/ATTR for the case (restored after it).
fault_attr() {
	local p=/sys/kernel/debug/$1/$2
	defer write_file "$p" "$(cat "$p")"
	write_file "$p" "$3"
}
write_file() { echo "$2" >"$1"; }
# fail_nth TARGET...: rmc-ctl fail-nth TARGET (FAULT_STEP: every FAULT_STEP-th N); its summary
# goes into the KTAP as a diagnostic.
fail_nth() {
	local rc l
	rmc_ctl fail-nth --step "${FAULT_STEP:-1}" "$@" >"$TMP/fail-nth.txt" 2>&1
	rc=$?
	while read -r l; do ktap_print_msg "$l"; done <"$TMP/fail-nth.txt"
	[ $rc -eq 0 ] || fail "fail-nth $*: $(grep -m 3 -E '^FAIL|^rmc-ctl:' "$TMP/fail-nth.txt")"
}

# foreign_log_lines [FILE]: the lines of a kernel log (dmesg format, FILE or stdin) that are
# neither our own nor a report the kernel prints for a failure that fault injection forced, each
# recognised by name:
#   - our own: rust_consumer:, rust_provider:, rust_modref_selftest:, and KUnit's lines for the
#     consumer's suite at each load (a failed KUnit case is foreign);
#   - warn_alloc(): "COMM: page allocation failure:" or "COMM: vmalloc error:", then its stack
#     dump (CPU/Tainted/Hardware name, x86's "Call Trace" or arm64's "Call trace", frames, with
#     arm64's "(C)", "(PF)"-style frame marks, x86's user registers) and show_mem()'s
#     Mem-Info (with MEM_ALLOC_PROFILING, its top allocation sites); "warn_alloc: N callbacks
#     suppressed";
#   - should_fail()'s "FAULT_INJECTION: forcing a failure." and its stack (verbose > 0);
#   - execmem: "execmem: unable to allocate memory" (and its rate-limit line);
#   - kobject_add_internal()/kobject_set_name(): "kobject: ... failed for NAME (error: -12 ...)",
#     "kobject: can not set name properly!", "kobject_add error: -12";
#   - kunit's module notifier: "kunit module: error filtering suites: -12";
#   - kmemleak: "Cannot allocate a scan area, scanning the full object";
#   - slab with MEM_ALLOC_PROFILING: "prepare_slab_obj_exts_hook, CACHE: Failed to create slab
#     extension vector!" (the tag vector of a slab could not be allocated);
#   - debugfs: "out of free dentries, can not create directory 'NAME'" (or file);
#   - KUnit, when the consumer's suite runs at a load whose allocations fail: a case KUnit could
#     not set up or clean up ("internal error occurred ...: -12") is "not ok" for that reason
#     alone; the suite's "fail:K" and its "not ok" pass only when exactly K cases failed so.
# (dmesg indents the continuation lines of a multi-line record, such as Mem-Info's counters.)
# A dump's lines are accepted only right after its header and only in a dump's shapes: anything
# else after it is judged on its own. make check feeds it a log of a real fault run.
foreign_log_lines() {
	awk '
	{ sub(/\r$/, ""); sub(/^\[[ 0-9.]+\] /, "") }
	/^(rust_consumer|rust_provider|rust_modref_selftest): / { dump = 0; next }
	/^ *# Subtest: rust_consumer$/ { split("", enomem); kfail = 0; dump = 0; next }
	/^ *# [a-z0-9_]+: internal error occurred (preventing test case from running|during test case cleanup): -12$/ {
		n = $2; sub(/:$/, "", n); enomem[n] = 1; dump = 0; next }
	/^ *not ok [0-9]+ [a-z0-9_]+$/ && ($4 in enomem) { delete enomem[$4]; kfail++; dump = 0; next }
	/^ *# (rust_consumer|Totals): pass:[0-9]+ fail:[0-9]+ skip:[0-9]+ total:[0-9]+$/ {
		f = $0; sub(/.* fail:/, "", f); sub(/ .*/, "", f)
		if (f + 0 == kfail) { dump = 0; next } }
	/^ *not ok [0-9]+ rust_consumer$/ && kfail > 0 { kfail = 0; dump = 0; next }
	/^ *(KTAP version 1|[0-9]+\.\.[0-9]+|kunit: disabled|# Subtest: rust_consumer|# [a-z0-9_]+\.speed: [a-z]+|# speed: [a-z]+|ok [0-9]+ [a-z0-9_]+( # SKIP.*)?|# rust_consumer: pass:[0-9]+ fail:0 skip:[0-9]+ total:[0-9]+|# Totals: pass:[0-9]+ fail:0 skip:[0-9]+ total:[0-9]+)$/ { dump = 0; next }
	/^[^ :]+: (page allocation failure: order:[0-9]+|vmalloc error: size [0-9]+), / { dump = 1; next }
	/^FAULT_INJECTION: forcing a failure\.$/ { dump = 1; next }
	/^name [a-z_]+, interval [0-9]+, probability [0-9]+, space [0-9]+, times -?[0-9]+$/ && dump { next }
	/^Mem-Info:$/ && dump { next }
	/^(warn_alloc|execmem_vmalloc|[a-z_]+): [0-9]+ callbacks suppressed$/ { next }
	/^execmem: unable to allocate memory$/ { next }
	/^kobject: (kobject_add_internal failed for [^ ]+ \(error: -12( parent: [^ ]+)?\)|can not set name properly!|kobject_create_and_add: kobject_add error: -12)$/ { next }
	/^kunit module: error filtering suites: -12$/ { next }
	/^kmemleak: Cannot allocate a scan area, scanning the full object$/ { next }
	/^prepare_slab_obj_exts_hook, [^ ]+: Failed to create slab extension vector!$/ { next }
	/^debugfs: out of free dentries, can not create (directory|file) .[A-Za-z0-9_]+.$/ { next }
	dump && (/^CPU: [0-9]+ UID: [0-9]+ PID: [0-9]+ Comm: / || /^Tainted: / || /^Hardware name: / ||
		/^Call [Tt]race:$/ || /^ *<\/?(TASK|IRQ|NMI|SOFTIRQ)>$/ ||
		/^ +(\? )?[A-Za-z0-9_.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+( \[[A-Za-z0-9_]+\])?( \([A-Z]+\))?$/ ||
		/^(RIP|RSP|RAX|RDX|RBP|R10|R13|Code): / ||
		/^ *[a-z_]+:[0-9]+( [a-z_]+:[0-9]+)*$/ || /^Node [0-9]+ / ||
		/^(DMA|DMA32|Normal|Movable|HighMem)( free:|: )/ || /^lowmem_reserve\[\]:( [0-9]+)+$/ ||
		/^[0-9]+ (total pagecache pages|pages in swap cache|pages RAM|pages HighMem\/MovableOnly|pages reserved|pages cma reserved|pages hwpoisoned)$/ ||
		/^(Free|Total) swap += [0-9]+kB$/ ||
		/^Memory allocations \(profiling is currently turned (on|off)\):$/ ||
		/^ *[0-9.]+ (B|KiB|MiB|GiB) +[0-9]+ [^ ]+:[0-9]+ (\[[A-Za-z0-9_]+\] )?func:[A-Za-z0-9_.$]+$/) { next }
	{ dump = 0; print }
	' "${1:-/dev/stdin}"
}
# log_ours: fails the case if the kernel log since the last mark holds a foreign line.
log_ours() {
	local foreign
	foreign=$(since_mark | foreign_log_lines)
	[ -z "$foreign" ] && return 0
	ktap_print_msg "the kernel log holds lines that are neither ours nor a recognised injected-failure report:"
	head -n 10 <<<"$foreign" | sed 's/^/#   /'
	fail "$(grep -c . <<<"$foreign") foreign kernel log line(s)"
}

# ------------------------------------------------------------------------------------------------
# Numbers.

# percentiles [Q...] <NUMBERS: the Q-th percentile (0 to 100; default: 50 99 100) of one number
# a line, for each Q, joined by "/"; linear between the two nearest ranks, as rmc::quantile does
# (50 is the median); "-" for each Q when there are no numbers.
percentiles() {
	sort -g | awk -v qs="${*:-50 99 100}" '{ v[NR] = $1 } END {
		n = split(qs, q, " ")
		for (i = 1; i <= n; i++) {
			r = "-"
			if (NR) {
				at = q[i] / 100 * (NR - 1) + 1; lo = int(at); hi = (lo < NR) ? lo + 1 : lo
				r = v[lo] + (v[hi] - v[lo]) * (at - lo)
			}
			printf "%s%s", (i > 1 ? "/" : ""), r
		}
		print "" }'
}

# ------------------------------------------------------------------------------------------------
# Running a case.

# nested_case_started CASE: the kernel log since the last mark shows that a nested run of the
# suite started CASE.
nested_case_started() { log_since "$LOG_MARK" | grep -q "rust_modref_selftest: case $1 start"; }

# negative_control DIR CASE: runs CASE against the consumer built in DIR (a negative-control
# build); sets NC_RC to its status, for run_case's verdict.
negative_control() {
	local dir=$1 case=$2 info
	[ -f "$dir/$CONSUMER.ko" ] || { skip "negative-control build missing (make negative-control)"; return 0; }
	info=$(modinfo -F negative_control "$dir/$CONSUMER.ko" 2>/dev/null)
	[ -n "$info" ] || fail "$dir/$CONSUMER.ko has no negative_control modinfo field" || return
	unload_all
	mark
	load $CONSUMER "$dir" || fail "insmod of the negative-control consumer failed" || return
	since_mark | grep -q "UNSAFE negative-control build" ||
		fail "the negative-control consumer did not announce itself" || return
	load $PROVIDER || fail "insmod rust_provider failed" || return
	ktap_print_msg "modinfo negative_control: $info; running $case against it"
	"test_$case"
	NC_RC=$?
	ktap_print_msg "$case against it: ${REASON:-passed}"
	REASON=""
	return 0
}

# ktap_skip_case NAME REASON: a skipped case; the name stays stable, the reason goes in the
# directive ("ok 3 name # SKIP reason").
ktap_skip_case() {
	__ktap_test "ok" "$1" "SKIP $2"
	KTAP_CNT_SKIP=$((KTAP_CNT_SKIP + 1))
}

# run_case NAME: one KTAP line for test_NAME. The case's cleanup stack runs first, then the
# kernel log since the case's marker is scanned: a splat fails the case. A negative control
# inverts the verdict: the case it runs must fail (NC_RC) or the log show a splat: XFAIL.
NC_RC=""
run_case() {
	local name=$1 marker splats rc t0=$SECONDS
	marker="rust_modref_selftest: case $name start $$.$RANDOM"
	echo "$marker" >/dev/kmsg
	REASON="" SKIP_REASON="" NC_RC=""
	"test_$name"
	rc=$?
	run_defers
	ktap_print_msg "$name: $((SECONDS - t0)) s"
	splats=$(log_since "$marker" | grep -E "$SPLAT_RE")
	# A skip does not hide a splat or a check that failed before the case gave up.
	if [[ $name == negative_control* ]] && [ -z "$SKIP_REASON" ]; then
		if [ $rc -eq 0 ] && { [ "${NC_RC:-0}" -ne 0 ] || [ -n "$splats" ]; }; then
			[ -z "$splats" ] || { ktap_print_msg "$name: the kernel log shows the fault:"; echo "$splats" | head -n 5 | sed 's/^/#   /'; }
			ktap_test_xfail "$name"
		else
			ktap_print_msg "$name: ${REASON:-the case passed and the log is clean: the suite would not catch this defect}"
			ktap_test_fail "$name"
		fi
	elif [ -n "$splats" ]; then
		ktap_print_msg "$name: kernel log shows a splat:"
		echo "$splats" | head -n 20 | sed 's/^/#   /'
		ktap_print_msg "$name: ${REASON:-kernel splat during the case}"
		ktap_test_fail "$name"
	elif [ -n "$REASON" ] || { [ -z "$SKIP_REASON" ] && [ $rc -ne 0 ]; }; then
		ktap_print_msg "$name: ${REASON:-exit $rc}"
		ktap_test_fail "$name"
	elif [ -n "$SKIP_REASON" ]; then
		ktap_skip_case "$name" "$SKIP_REASON"
	else
		ktap_test_pass "$name"
	fi
}
