#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make test: run the selftests through the kselftest runner (installed from the kernel tree, as a
# kernel developer would) and count the consumer's KUnit tests (they run when it loads) in the
# test kernel, then the negative controls in a boot of their own, whose guest command exits 3
# to prove that a failing guest fails the run (a third boot does that only if the second died);
# the second boot's first attempt and a last pair of attempts are made to stall, to prove that
# vm-run retries a stalled boot once and fails fast on a second stall.
# Prints the KTAP of each boot and a final "N passed, N failed" line (an XFAIL reported as expected counts as passed).
#
# Environment: CYCLES, TABLE_CYCLES, FUZZ_COUNT, REMOVAL_BOUND_S (passed to the suite), TEST_CASES
# (comma-separated, default all: the repository's script with -t instead of the runner), VM_CPUS,
# VM_TIMEOUT (boot 1, default 3600 s).
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# One kernel for all three boots, even if build/kdir is re-pointed meanwhile (make kernel KFLAVOR=...).
export KDIR=$(readlink -f "${KDIR:-$RUST_MODREF_BUILD/kdir}")
mkdir -p "$RUST_MODREF_BUILD/test"
out="$RUST_MODREF_BUILD/test"
rm -f "$out"/*.ktap

pass=0 failed=0 skipped=0
count() { # KTAP file
	local p f s
	p=$(grep -cE '^ok [0-9]+ ' "$1" | tr -d ' ')
	s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$1" | tr -d ' ')
	f=$(grep -cE '^not ok [0-9]+ ' "$1" | tr -d ' ')
	pass=$((pass + p - s)) skipped=$((skipped + s)) failed=$((failed + f))
}

# Knobs the host was given for the suite, passed on to the guest (the defaults need none).
knobs=()
for v in CYCLES TABLE_CYCLES FUZZ_COUNT REMOVAL_BOUND_S; do
	[ -z "${!v:-}" ] || knobs+=("$v=${!v}")
done

# Boot 1: every case but the negative controls, through the kselftest runner as a kernel developer
# runs it: this selftests directory copied into the kernel tree (rsync -rL: the module sources
# and tools/ are symlinks), built against the kernel under test and installed with kselftest's
# own Makefile, then the installed run_kselftest.sh in the guest, with no MODDIR or TOOLS_DIR.
# (TEST_CASES=...: the repository's script with -t instead.)
ksrc=$(readlink -f "$KDIR/source" 2>/dev/null || echo "$KDIR")
kst="$ksrc/tools/testing/selftests"
inst="$RUST_MODREF_BUILD/kselftest"
if [ -z "${TEST_CASES:-}" ]; then
	[ -f "$kst/lib.mk" ] || die "no kselftest tree in $kst (KDIR's source)"
	command -v rsync >/dev/null || die "rsync not found (Debian: apt-get install rsync); kselftest's install needs it"
	log "kselftest: selftests/ -> $kst/rust_modref; make TARGETS=rust_modref install -> $inst"
	rsync -rL --delete --exclude target "$RUST_MODREF_TOP/selftests/" "$kst/rust_modref/" ||
		die "copying selftests/ into $kst failed"
	rm -rf "$inst"
	# Another architecture (ARCH=arm64): the tools cross-built for it, as make tools did.
	cross_target=""
	[ "$RUST_MODREF_CROSS" = 0 ] || cross_target=$RUST_MODREF_TRIPLE
	# The tools' cargo target: the repository's (make tools built it), not a second cold build.
	make -C "$kst" TARGETS=rust_modref O="$KDIR" LLVM="${LLVM:--19}" INSTALL_PATH="$inst" \
		RMC_CARGO_TARGET="$RUST_MODREF_TOP/tools/target" ${cross_target:+RMC_RUST_TARGET=$cross_target} install \
		>"$out/kselftest-build.log" 2>&1 ||
		die "kselftest build/install failed; see $out/kselftest-build.log:
$(tail -n 15 "$out/kselftest-build.log")"
	# -p: the suite's output into a file of its own (the runner writes it to /dev/stdout, which
	# virtme-ng points at its console port, past any pipe).
	guest="set -o pipefail; cd build/kselftest && env ${knobs[*]} ./run_kselftest.sh -c rust_modref -p $out/kselftest-logs | tee ../test/kselftest.log"
	log "boot 1: selftests (build/kselftest/run_kselftest.sh -c rust_modref)"
else
	guest="set -o pipefail; env ${knobs[*]} selftests/rust_modref.sh -t $TEST_CASES | tee build/test/kselftest.log"
	log "boot 1: selftests (selftests/rust_modref.sh -t $TEST_CASES)"
fi
rm -rf "$out/kselftest.log" "$out/kselftest-logs"
scripts/vm-run.sh --timeout "${VM_TIMEOUT:-3600}" --log "$out/vm-selftests.log" -- bash -c "$guest"
rc1=$?
# The suite's own KTAP: as is, or from the runner's per-test log (each line prefixed "# ") with
# the runner's own verdict line checked too.
if [ -f "$out/kselftest-logs/rust_modref.sh" ]; then
	sed -n 's/^# //p' "$out/kselftest-logs/rust_modref.sh" | sed '1,/^TAP version/{/^TAP version/!d}' >"$out/selftests.ktap"
	cat "$out/selftests.ktap"
	runner=$(grep -E '^(not )?ok 1 selftests: rust_modref: rust_modref.sh' "$out/kselftest.log")
	echo "# kselftest runner: ${runner:-no result line}"
	[[ $runner == "ok 1 "* ]] || [ "$(grep -c '^not ok' "$out/selftests.ktap")" -gt 0 ] ||
		{ echo "# the runner reports '${runner:-nothing}' without a failing case"; failed=$((failed + 1)); }
else
	cp "$out/kselftest.log" "$out/selftests.ktap" 2>/dev/null
fi
[ -s "$out/selftests.ktap" ] || echo "not ok 1 selftests # the VM produced no KTAP (exit $rc1, see $out/vm-selftests.log)" >"$out/selftests.ktap"
count "$out/selftests.ktap"
grep -qE '^1\.\.[0-9]+' "$out/selftests.ktap" || { echo "# selftests: no KTAP plan"; failed=$((failed + 1)); }
[ $rc1 -eq 0 ] || [ "$(grep -c '^not ok' "$out/selftests.ktap")" -gt 0 ] ||
	{ echo "# selftests: VM exited $rc1 without a failing case"; failed=$((failed + 1)); }

# KUnit: the kernel series' suites (patches/$KVER/) ran at boot, the consumer's when boot 1 first
# loaded it; their KTAP is in the console log. Count the first run of each suite (every later
# load of the consumer runs its suite again), each case named after its suite.
KUNIT_SUITES=(rust_kernel_configfs rust_kernel_srcu_fast rust_kernel_module_ref rust_kernel_percpu rust_consumer)
kunit=$(tr -d '\r' <"$out/vm-selftests.log" | sed -E 's/^\[ *[0-9]+\.[0-9]+\] //' |
	awk -v suites="${KUNIT_SUITES[*]}" '
	     BEGIN { n = split(suites, s, " "); for (i = 1; i <= n; i++) want[s[i]] = 1 }
	     /^ *# Subtest: / { name = $3; on = (name in want) && !(name in done); next }
	     on && $0 ~ "^(not )?ok [0-9]+ " name "$" { done[name] = 1; on = 0; next }
	     on && /^ +(not )?ok [0-9]+ / {
		sub(/^ +/, ""); match($0, /^(not )?ok [0-9]+ /)
		verdict = substr($0, 1, RLENGTH); sub(/[0-9]+ $/, "", verdict)
		print verdict (++k) " " name ": " substr($0, RLENGTH + 1) }
	     END { for (x in want) if (!(x in done)) print "not ok " (++k) " " x ": no KUnit results in the console log" }')
{
	echo "TAP version 13"
	echo "1..$(grep -c . <<<"$kunit")"
	echo "$kunit"
} | tee "$out/kunit.ktap"
count "$out/kunit.ktap"

# Boot 2: the negative controls, alone, so that the faults they provoke cannot poison other
# cases. The second may leave the guest dead: then the console log decides its line. The guest
# command then exits 3, which doubles as the harness's own check: vm-run must return exactly 3
# (the exit status of a guest command must reach the host, or no failure would).
ncs=(negative_control negative_control_drain)
# Its first attempt is made to stall (VM_STALL_TEST=first: QEMU's CPUs never start), which
# vm-run must notice and retry: the stall watchdog is proven on every run, for 8 s.
log "boot 2: negative controls (consumers built without module references, without the drain); the guest then exits 3; the first attempt is made to stall"
rm -f "$out"/vm-negative-control.log.stalled*
VM_STALL_TEST=first scripts/vm-run.sh --log "$out/vm-negative-control.log" -- \
	bash -c "env ${knobs[*]} selftests/rust_modref.sh -t $(IFS=,; echo "${ncs[*]}") | tee build/test/negative-control.ktap; exit 3" \
	2> >(tee "$out/vm-run-boot2.err" >&2)
rc2=$?
splat_re=$(. selftests/rust_modref_lib.sh && echo "$SPLAT_RE")
{
	grep -qE '^1\.\.' "$out/negative-control.ktap" 2>/dev/null || printf 'TAP version 13\n1..%d\n' ${#ncs[@]}
	for i in "${!ncs[@]}"; do
		nc=${ncs[$i]} n=$((i + 1))
		grep -qE "^(not )?ok $n " "$out/negative-control.ktap" 2>/dev/null && continue
		if [ ! -s "$out/vm-negative-control.log" ]; then
			echo "# $nc: the VM did not run the guest command (vm-run exit $rc2: $(tail -n 1 "$out/vm-run-boot2.err"))"
			echo "not ok $n $nc"
			continue
		fi
		splat=$(sed -n "/rust_modref_selftest: case $nc start/,\$p" "$out/vm-negative-control.log" |
			sed -n "/rust_modref_selftest: case ${ncs[$((i + 1))]:-NONE} start/q;p" | grep -m1 -E "$splat_re")
		if [ -n "$splat" ]; then
			echo "# $nc: the guest died; its console log shows the fault:"
			echo "#   ${splat#*] }"
			echo "ok $n $nc # XFAIL"
		else
			echo "# $nc: no result and no fault in $out/vm-negative-control.log"
			echo "not ok $n $nc"
		fi
	done
} | tee -a "$out/negative-control.ktap"
count "$out/negative-control.ktap"

# The harness itself must be able to fail. Boot 2 proved it unless its guest died (a negative
# control can kill it); then a boot of its own does.
rc3=$rc2
if [ $rc2 -ne 3 ] && ! grep -q "^# Totals:" "$out/negative-control.ktap"; then
	log "boot 3: boot 2's guest did not finish (exit $rc2); a guest command that exits 3 must make vm-run exit 3"
	scripts/vm-run.sh --log "$out/vm-exit-status.log" -- sh -c 'echo "guest nproc: $(nproc)"; exit 3'
	rc3=$?
fi
# A boot that stalls twice fails at once with 125, not after the 30-minute timeout.
log "stall check: two stalled boots in a row must fail with 125 within a minute"
t0=$(date +%s)
VM_STALL_TEST=both scripts/vm-run.sh --log "$out/vm-double-stall.log" -- true 2>"$out/vm-run-double-stall.err"
rc4=$? t4=$(( $(date +%s) - t0 ))
{
	echo "TAP version 13"
	echo "1..3"
	if [ $rc3 -eq 3 ]; then echo "ok 1 vm_exit_status_propagates"; else echo "not ok 1 vm_exit_status_propagates # got $rc3"; fi
	if grep -q "boot stalled after" "$out/vm-run-boot2.err" && [ -s "$out/vm-negative-control.log" ] &&
		[ -e "$out/vm-negative-control.log.stalled" ]; then
		echo "ok 2 vm_stall_retried"
	else
		echo "not ok 2 vm_stall_retried # no stall reported, or no retry (see $out/vm-run-boot2.err)"
	fi
	if [ $rc4 -eq 125 ] && [ $t4 -le 90 ] && grep -q "the retry stalled too" "$out/vm-run-double-stall.err"; then
		echo "# two stalled boots: exit 125 after $t4 s"
		echo "ok 3 vm_double_stall_fails"
	else
		echo "not ok 3 vm_double_stall_fails # exit $rc4 after $t4 s: $(tail -n 1 "$out/vm-run-double-stall.err")"
	fi
} | tee "$out/harness.ktap"
count "$out/harness.ktap"

echo "# KTAP files: $out/*.ktap; console logs: $out/vm-*.log"
echo "# XFAIL (a negative control caught by the suite) counts as passed; skipped: $skipped"
echo "$pass passed, $failed failed"
[ $failed -eq 0 ]
