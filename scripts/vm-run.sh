#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run a command inside the test kernel with virtme-ng and return the command's exit status.
#
#   scripts/vm-run.sh [--cpus N] [--memory SIZE] [--timeout SECONDS] [--log FILE] -- CMD [ARGS...]
#
# The guest sees the host's filesystem (this repository is writable). The full console log
# (kernel messages and the command's output) is kept in FILE (default build/vm-<time>.log) and
# build/vm-last.log points at it. The run never outlives --timeout: QEMU is killed and the exit
# status is 124. KVM is used only where a quick probe boot proves it works (VM_KVM=auto, the
# default; VM_KVM=0 forces TCG, VM_KVM=1 forces KVM). VM_APPEND adds kernel command-line arguments.
# The debug kernel has kmemleak, which doubles boot time under TCG: it is switched off at boot
# (kmemleak=off) unless VM_KMEMLEAK=1 (make soak, the leak checks).
#
# A stalled boot (seen under TCG: the console stops early in kernel boot while QEMU spins) is
# retried once: until the kernel starts init, VM_STALL_S seconds without console output (default
# 120 under TCG, 30 with KVM, three times that with kmemleak on) is a stall; from init until the
# guest command starts, VM_STALL_USER_S (default 600 under TCG, 120 with KVM), because udev's
# settle is legitimately silent there (31-41 s on a normal host, over 120 s on a slow CI host).
# QEMU is killed, the log kept as FILE.stalled and the boot retried once; a second stall exits
# 125 naming both logs. Once the guest command runs, only --timeout applies.
# VM_WARM=0: no warm-up of the programs the selftests run (see below).
# VM_STALL_TEST=first|both injects the fault for the test: that boot's CPUs never start (QEMU -S)
# and it is declared stalled after 8 s.
#
# ARCH=arm64 on an x86-64 host boots the arm64 kernel under TCG on a root filesystem of its own
# (scripts/guest-root.sh: Debian's arm64 packages), with this repository shared as on the host.
#
# Exit status: the guest command's, or 124 timeout, 125 VM/setup failure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cpus=${VM_CPUS:-4}
memory=${VM_MEMORY:-2G}
timeout=${VM_TIMEOUT:-1800}
log=""
while [ $# -gt 0 ]; do
	case "$1" in
	--cpus) cpus=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [options] -- CMD [ARGS...]" >&2; exit 125; }

fail() { echo "vm-run: $*" >&2; exit 125; }

kdir=${KDIR:-$RUST_MODREF_BUILD/kdir}
bzimage="$kdir/$RUST_MODREF_KIMAGE"
[ -f "$bzimage" ] || fail "no $ARCH kernel image at $bzimage: run 'make kernel ARCH=$ARCH' (or set KDIR=)"
vng="$RUST_MODREF_CACHE/venv/bin/vng"
[ -x "$vng" ] || vng=$(command -v vng) || fail "virtme-ng not found: run scripts/provision-host.sh"
# vng runs its helpers (virtme-run, virtme-ng-init) from its own bin directory.
export PATH="$(dirname "$vng"):$PATH"
qemu_pkg=qemu-system-x86
[ "$ARCH" = arm64 ] && qemu_pkg=qemu-system-arm
command -v "$RUST_MODREF_QEMU" >/dev/null || fail "$RUST_MODREF_QEMU not found (Debian: apt-get install $qemu_pkg)"
command -v udevadm >/dev/null ||
	fail "udev is not installed on the host: without it vng cannot return the guest's exit status (Debian: apt-get install udev)"

# KVM probe: boot the kernel with no init under KVM; a working KVM reaches the init step in seconds.
use_kvm=0
# A guest of another architecture is emulated (TCG): no KVM to probe.
[ "$RUST_MODREF_CROSS" = 0 ] || VM_KVM=0
case "${VM_KVM:-auto}" in
1) use_kvm=1 ;;
0) ;;
auto)
	# (The probe boots an x86 kernel; an arm64 host runs its guests under TCG here.)
	if [ "$ARCH" = x86 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		probe="$RUST_MODREF_CACHE/kvm-probe-$(qemu-system-x86_64 --version | head -n1 | md5sum | cut -c1-8)-$(uname -r)"
		if [ ! -f "$probe" ]; then
			log "probing KVM (one quick boot, at most 20 s; the result is cached in $probe)"
			if timeout -k 2 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256M -nographic -no-reboot \
				-kernel "$bzimage" -append "console=ttyS0 panic=-1 rdinit=/rust-modref-no-init" 2>&1 |
				grep -q -m1 -E 'Kernel panic|rust-modref-no-init'; then
				echo 1 >"$probe"
			else
				echo 0 >"$probe"
			fi
		fi
		use_kvm=$(cat "$probe")
	fi
	;;
esac
accel=(--disable-kvm)
[ "$use_kvm" = 1 ] && accel=()
# Another architecture: its own root filesystem, and its tools.
cross=() rwdir=$RUST_MODREF_TOP
if [ "$RUST_MODREF_CROSS" = 1 ]; then
	root=$("$RUST_MODREF_TOP/scripts/guest-root.sh") || fail "no root filesystem for the $ARCH guest"
	cross=(--arch "$RUST_MODREF_VNG_ARCH" --root "$root")
	# The repository is mounted at its host path: the mount point must exist in the (read-only)
	# root, and vng takes a directory outside the root only as GUEST=HOST.
	mkdir -p "$root$RUST_MODREF_TOP" || fail "cannot create the mount point $root$RUST_MODREF_TOP (run as root)"
	rwdir=$RUST_MODREF_TOP=$RUST_MODREF_TOP
fi

mkdir -p "$RUST_MODREF_BUILD"
[ -n "$log" ] || log="$RUST_MODREF_BUILD/vm-$(date +%Y%m%d-%H%M%S).log"
ln -sfn "$log" "$RUST_MODREF_BUILD/vm-last.log"

kmemleak=kmemleak=off
[ "${VM_KMEMLEAK:-0}" = 1 ] && kmemleak=kmemleak=on

# The guest command runs from the repository top with the same environment knobs; its first line
# of output tells the stall watchdog that the boot is over.
readonly STARTED=RUST-MODREF-GUEST-COMMAND-STARTED
guest_cmd="echo $STARTED; cd $(printf %q "$RUST_MODREF_TOP") && $(printf '%q ' "$@")"
# Warm-up: the guest's root is the host's, over 9p without a page cache, so every exec reads the
# program and its libraries from the host again. virtme-ng puts a tmpfs overlay over /usr:
# touching a file there copies it up into guest memory once, and later execs of it read memory
# (bench/README.md has the figures). The programs the selftests run most and
# their libraries (ldd on the host: the guest sees the same files), ~12 MB. Only where /usr is
# that overlay (never the host's own files); VM_WARM=0 skips it. A guest of another architecture:
# the same programs in its root, and the libraries they name (DT_NEEDED), found in its lib dirs.
warm_names=(bash grep sed awk cat head tail dmesg kmod stat mkdir rmdir rm cp mktemp nproc nice seq
	tr timeout tee sort cut wc uname dirname xargs zcat id ls)
if [ "${VM_WARM:-1}" = 1 ] && [ "$RUST_MODREF_CROSS" = 1 ]; then
	warm_bins=()
	for b in "${warm_names[@]}"; do
		for d in usr/bin usr/sbin; do
			if [ -f "$root/$d/$b" ]; then warm_bins+=("/$d/$b"); break; fi
		done
	done
	readelf=llvm-readelf$LLVM
	need "$readelf" "llvm$LLVM"
	{ printf '%s\n' "${warm_bins[@]}"
		# (zcat is a script: readelf fails on it.)
		for b in "${warm_bins[@]}"; do "$readelf" -d "$root$b" 2>/dev/null || true; done |
			sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r lib; do
				for d in "$root"/usr/lib/*-linux-gnu "$root/usr/lib"; do
					if [ -f "$d/$lib" ]; then
						f=$(cd "$d" && realpath -e "$lib") && echo "${f#"$root"}"
						break
					fi
				done
			done
		find "$root/usr/lib" -maxdepth 2 -name 'ld-linux-*.so.*' -type f | sed "s|^$root||"
	} | sort -u >"$RUST_MODREF_BUILD/vm-warm.list"
elif [ "${VM_WARM:-1}" = 1 ]; then
	warm_bins=()
	for b in "${warm_names[@]}"; do
		p=$(type -P "$b") && warm_bins+=("$(readlink -f "$p")")
	done
	# The list goes through a file: the command travels on the kernel command line (2 KiB).
	mkdir -p "$RUST_MODREF_BUILD"
	{ printf '%s\n' "${warm_bins[@]}"
		# (ldd fails for scripts such as zcat, after listing the rest.)
		{ ldd "${warm_bins[@]}" 2>/dev/null || true; } | awk '/=> \// {print $3} /^[ \t]*\/.*ld-linux/ {print $1}'
	} | xargs -r readlink -f | { grep '^/usr/' || true; } | sort -u >"$RUST_MODREF_BUILD/vm-warm.list.$$"
	mv "$RUST_MODREF_BUILD/vm-warm.list.$$" "$RUST_MODREF_BUILD/vm-warm.list"
fi
if [ "${VM_WARM:-1}" = 1 ]; then
	guest_cmd="echo $STARTED; if [ \"\$(stat -f -c %T /usr)\" = overlayfs ]; then xargs touch -c -- <$(printf %q "$RUST_MODREF_BUILD/vm-warm.list"); fi; ${guest_cmd#*; }"
fi
# Measured under TCG: the longest silence of a normal boot's kernel phase is under 4 s; in
# userspace, udev settling is silent for 31-41 s (178 s with kmemleak) and over 120 s on a slow host.
stall_s=${VM_STALL_S:-$([ "$use_kvm" = 1 ] && echo 30 || echo 120)}
[ -n "${VM_STALL_S:-}" ] || [ "$kmemleak" != kmemleak=on ] || stall_s=$((stall_s * 3))
stall_user_s=${VM_STALL_USER_S:-$([ "$use_kvm" = 1 ] && echo 120 || echo 600)}
# The kernel's last word before userspace (with the initramfs vng uses).
readonly INIT_STARTED='Run /init as init process'
log "VM: $ARCH $(basename "$bzimage") from $kdir, $cpus vCPUs, $memory, $([ "$use_kvm" = 1 ] && echo KVM || echo TCG), timeout ${timeout}s, stall bounds ${stall_s}s (kernel) and ${stall_user_s}s (init), log $log"

# boot LOG STALL_S [QEMU_OPTS]: one boot, its exit status in $rc. Returns 1 if it stalled before
# the guest command started (QEMU killed), else 0. STALL_S bounds the kernel phase's silences,
# stall_user_s those after init has started.
boot() {
	local blog=$1 bound=$2 qopts=${3:-} pid size last_size=-1 last_change now in_init=0 boot_t0
	: >"$blog"
	rm -f "$blog.rc"
	# -v puts the console (kernel log) on stdout, in the same stream as the command's output.
	# QEMU reopens its stdout for the console, so it must be a pipe (a file would be overwritten
	# from the start): tee keeps the whole stream, and the terminal shows all but kernel lines.
	# setsid: its own process group, so that a stalled boot can be killed whole.
	# timeout(1) puts itself and QEMU into a process group of their own: its id goes to LOG.pid.
	RUST_MODREF_LOG=$blog setsid bash -c '(echo $BASHPID >"$RUST_MODREF_LOG.pid"; exec "$@" </dev/null 2>&1) | tee "$RUST_MODREF_LOG" |
		grep --line-buffered -vE "^\[ *[0-9]+\.[0-9]+\]|^virtme|^RUST-MODREF-GUEST-COMMAND-STARTED"
		echo "${PIPESTATUS[0]}" >"$RUST_MODREF_LOG.rc"' vm-run \
		timeout -k 10 "$timeout" "$vng" --run "$bzimage" "${cross[@]}" "${accel[@]}" --force-initramfs --force-9p \
		--cpus "$cpus" --memory "$memory" --user root --rwdir "$rwdir" ${qopts:+"--qemu-opts=$qopts"} \
		--append "panic_on_warn=0 $kmemleak${VM_APPEND:+ $VM_APPEND}" -v --exec "$guest_cmd" &
	pid=$!
	last_change=$(date +%s) boot_t0=$(date +%s)
	while kill -0 "$pid" 2>/dev/null; do
		sleep 2 & wait $! || true
		if grep -q "^$STARTED" "$blog"; then
			log "guest command started: boot took $(($(date +%s) - boot_t0)) s"
			break
		fi
		if [ $in_init = 0 ] && grep -qF "$INIT_STARTED" "$blog"; then
			in_init=1 bound=$stall_user_s
		fi
		size=$(stat -c %s "$blog" 2>/dev/null || echo 0)
		now=$(date +%s)
		if [ "$size" != "$last_size" ]; then
			last_size=$size last_change=$now
		elif [ $((now - last_change)) -ge "$bound" ]; then
			local group
			group=$(cat "$blog.pid" 2>/dev/null)
			kill -TERM -- ${group:+"-$group"} "-$pid" 2>/dev/null
			sleep 2
			kill -KILL -- ${group:+"-$group"} "-$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			rm -f "$blog.pid"
			stall_what="no console output for $bound s $([ $in_init = 1 ] && echo "after init started" || echo "in kernel boot")"
			return 1
		fi
	done
	wait "$pid"
	rc=$(cat "$blog.rc" 2>/dev/null || echo 125)
	rm -f "$blog.rc" "$blog.pid"
	return 0
}

last_line() { tr -d '\r' <"$1" | grep -v '^\s*$' | tail -n 1 | grep . || echo '(nothing)'; }
inject=""
case "${VM_STALL_TEST:-}" in first|both) inject="-S" ;; esac
start=$(date +%s)
set +e
if ! boot "$log" "$([ -n "$inject" ] && echo 8 || echo "$stall_s")" "$inject"; then
	mv "$log" "$log.stalled"
	echo "vm-run: boot stalled after '$(last_line "$log.stalled")' ($stall_what); retrying once (log: $log.stalled)" >&2
	[ "${VM_STALL_TEST:-}" = both ] || inject=""
	if ! boot "$log" "$([ -n "$inject" ] && echo 8 || echo "$stall_s")" "$inject"; then
		mv "$log" "$log.stalled-2"
		echo "vm-run: the retry stalled too, after '$(last_line "$log.stalled-2")' ($stall_what); logs: $log.stalled, $log.stalled-2" >&2
		exit 125
	fi
fi
set -e
log "VM exited with status $rc after $(( $(date +%s) - start )) s (console log: $log)"
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
	echo "vm-run: timed out after ${timeout}s; last console lines:" >&2
	tail -n 20 "$log" >&2
	exit 124
fi
exit $rc
