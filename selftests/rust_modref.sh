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
	load_pair
	consumer_removal_refused
	remove_in_order
)

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
}
trap cleanup EXIT INT TERM HUP

# Why the current case failed; printed as a KTAP diagnostic.
REASON=""
fail() {
	REASON="$*"
	return 1
}

is_loaded() { [ -d "/sys/module/$1" ]; }

# loop_until TIMEOUT_S CMD...: poll CMD until it succeeds or the timeout passes.
loop_until() {
	local deadline=$(($(date +%s) + $1))
	shift
	while ! "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.05
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

# run_case NAME: one KTAP line for test_NAME, failing it on a splat in the kernel log.
# EXPECT_SPLAT=1 inverts the log check (the negative control).
run_case() {
	local name=$1 marker splats rc
	marker="rust_modref_selftest: case $name start $$.$RANDOM"
	echo "$marker" >/dev/kmsg
	REASON=""
	SKIP_REASON=""
	"test_$name"
	rc=$?
	splats=$(log_since "$marker" | grep -E "$SPLAT_RE")
	if [ -n "${EXPECT_SPLAT:-}" ]; then
		:
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

test_load_pair() {
	load $CONSUMER || fail "insmod rust_consumer failed" || return
	[ -c $DEV ] || fail "$DEV missing" || return
	load $PROVIDER || fail "insmod rust_provider failed" || return
	# The dependency goes provider -> consumer, never the other way.
	[ -e /sys/module/$CONSUMER/holders/$PROVIDER ] ||
		fail "rust_consumer is not held by rust_provider" || return
	[ -z "$(ls /sys/module/$PROVIDER/holders)" ] ||
		fail "rust_provider has holders: $(ls /sys/module/$PROVIDER/holders)" || return
	ktap_print_msg "holders of rust_consumer: $(ls /sys/module/$CONSUMER/holders | xargs)"
}

test_consumer_removal_refused() {
	local err
	is_loaded $PROVIDER || fail "precondition: rust_provider not loaded" || return
	if err=$(rmmod $CONSUMER 2>&1); then
		fail "rmmod rust_consumer succeeded while rust_provider depends on it"
		return
	fi
	ktap_print_msg "rmmod rust_consumer: $err"
	is_loaded $CONSUMER || fail "rust_consumer is gone"
}

test_remove_in_order() {
	rmmod $PROVIDER || fail "rmmod rust_provider failed" || return
	rmmod $CONSUMER || fail "rmmod rust_consumer failed" || return
	! is_loaded $PROVIDER && ! is_loaded $CONSUMER || fail "modules still loaded"
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

ktap_set_plan ${#selected[@]}
for c in "${selected[@]}"; do
	run_case "$c"
done
cleanup
ktap_finished
