#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: the pair in a few readable lines. Load, one verified call, a patient removal while
# four threads keep calling, a reload, and the counters. Runs inside the VM as root.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/tools/target/release
cd "$top" || exit 1
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

step "4 threads call the provider for 12 s; after 1 s the provider is removed"
echo "   patiently (rmmod-wait --wait), 1 s after that it is loaded again; every answer is verified"
out=$(mktemp)
"$bin/rmc-load" -j 4 -d 12 --interval-ms 1000 --timeline \
	--min-instances 2 2>"$out" &
load=$!
sleep 1
"$bin/rmmod-wait" --wait --verbose --timeout 10 rust_provider 2>&1 | tail -n 1 | sed 's/^/   /'
sleep 1
insmod rust_provider.ko && kmsg 2
wait $load
rc=$?
sed 's/^/   /' "$out"
rm -f "$out"

step "counters (echo stats > /dev/rust_consumer)"
exec 3<>/dev/rust_consumer
echo stats >&3
sed 's/^/   /' <&3
exec 3<&-

step "unload: provider first, then consumer"
rmmod rust_provider && rmmod rust_consumer && kmsg 3
if dmesg | grep -qE 'BUG:|WARNING:|Oops|KASAN:'; then
	echo "   the kernel log shows a splat:"; dmesg | grep -E 'BUG:|WARNING:|Oops|KASAN:' | head -n 5
	exit 1
fi
echo "   kernel log clean (no BUG/WARNING/Oops/KASAN)"
exit $rc
