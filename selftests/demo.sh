#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: the pair in a few readable lines. Load, one verified call, a patient removal while
# four threads keep calling, a reload, and the counters. Runs inside the VM as root.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
# A guest of another architecture than the host's (make run ARCH=arm64): the tools built for it.
[ -x "$top/tools/target/$(uname -m)-unknown-linux-gnu/release/rmc-load" ] &&
	bin=$top/tools/target/$(uname -m)-unknown-linux-gnu/release
cd "$top" || exit 1
. selftests/rust_modref_lib.sh # SPLAT_RE, nap, ms_now, table_answers, holds_in_flight
step() { printf '\n== %s\n' "$*"; }
kmsg() { dmesg | grep -E 'rust_(consumer|provider):' | tail -n "${1:-2}" | sed 's/^/   kernel: /'; }

step "load the consumer, then the provider (the provider imports the consumer's register function)"
insmod rust_consumer.ko && insmod rust_provider.ko || exit 1
kmsg 2
echo "   rust_consumer is used by: $(ls /sys/module/rust_consumer/holders | xargs)"

step "one call through the text interface: echo 'compute rust_provider 42' > /dev/rust_consumer"
exec 3<>/dev/rust_consumer
echo "compute rust_provider 42" >&3
sed 's/^/   /' <&3
exec 3<&-

step "4 threads call the provider; after 1 s it is removed, then loaded again"
echo "   patiently (rmmod-wait --wait), 1 s later it is loaded again; the load runs until the new"
echo "   instance has answered for 1 s; every answer is verified"
lib_init
out=$(mktemp)
"$bin/rmc-load" -j 4 --until-stopped --interval-ms 1000 --timeline \
	--min-instances 2 2>"$out" &
load=$!
nap 1
"$bin/rmmod-wait" --wait --verbose --timeout 10 rust_provider 2>&1 | tail -n 1 | sed 's/^/   /'
nap 1
insmod rust_provider.ko && kmsg 2
# Per-table counters start at registration: calls_ok > 0 means the new instance answers.
loop_until 20 table_answers rust_provider
nap 1
kill -TERM $load
wait $load
rc=$?
sed 's/^/   /' "$out"
rm -f "$out"

step "a live provider withdraws a table while a call sleeps in it (configfs)"
cfg=/sys/kernel/config/rust_provider
grep -q ' /sys/kernel/config configfs ' /proc/mounts || mount -t configfs configfs /sys/kernel/config
echo "   mkdir $cfg/foo; a 'hold foo 1000000' call sleeps 1 s in the table; then rmdir $cfg/foo"
mkdir $cfg/foo || exit 1
(exec 4<>/dev/rust_consumer; echo "hold foo 1000000" >&4; echo "   the hold: $(cat <&4)") &
hold=$!
loop_until 10 holds_in_flight 1
ms_now t0
rmdir $cfg/foo
ms_now t1
echo "   rmdir returned after $((t1 - t0)) ms, when the sleeping call had finished with the table"
wait $hold
exec 3<>/dev/rust_consumer
echo "compute foo 1" >&3 2>/dev/null
echo "   compute foo after rmdir: $(cat <&3) (ENODEV)"
exec 3<&-

step "a provider that is never idle: unbind, then remove"
echo "   4 threads whose calls always overlap (20 ms holds): the module's count never reaches 0,"
echo "   so rmmod --wait alone times out; echo 0 > $cfg/rust_provider/enabled withdraws the"
echo "   table (it returns once its calls drained), the calls get ENODEV, and the removal goes through"
"$bin/rmc-load" -j 4 --until-stopped --mix compute=90,hold=10 --hold-us 20000 2>"$out" &
load=$!
nap 1
"$bin/rmmod-wait" --wait --timeout 3 rust_provider 2>&1 | tail -n 1 | sed 's/^/   /'
ms_now t0
echo 0 >$cfg/rust_provider/enabled
ms_now t1
echo "   enabled=0 returned after $((t1 - t0)) ms; $cfg/rust_provider/enabled reads $(<$cfg/rust_provider/enabled)"
"$bin/rmmod-wait" --wait --verbose --timeout 5 rust_provider 2>&1 | tail -n 1 | sed 's/^/   /'
kill -TERM $load
wait $load
grep '^  ok ' "$out" | sed 's/^ */   load: /'
rm -f "$out"
insmod rust_provider.ko || exit 1

step "counters (echo stats > /dev/rust_consumer)"
exec 3<>/dev/rust_consumer
echo stats >&3
sed 's/^/   /' <&3
exec 3<&-

step "unload: provider first, then consumer"
rmmod rust_provider && rmmod rust_consumer && kmsg 3
if dmesg | grep -qE "$SPLAT_RE"; then
	echo "   the kernel log shows a splat:"; dmesg | grep -E "$SPLAT_RE" | head -n 5
	exit 1
fi
echo "   kernel log clean (no splat: BUG, WARNING, Oops, KASAN, lockdep, refcount, UBSAN, hung task)"
exit $rc
