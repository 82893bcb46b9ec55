#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the userspace tools (rmc-load, rmc-ctl, rmmod-wait, rmc-bench); they run in the guest. For
# another architecture (ARCH=arm64 on x86-64) they are cross-built for its Rust target, linked
# by Debian's cross gcc, into tools/target/<target>/release.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need cargo "rustup (https://rustup.rs)"
args=(--release --locked)
if [ "$RUST_MODREF_CROSS" = 1 ]; then
	"$RUST_MODREF_TOP/scripts/provision-host.sh" --cross-only
	args+=(--target "$RUST_MODREF_TRIPLE")
fi
cd "$RUST_MODREF_TOP/tools"
cargo build "${args[@]}" --quiet 2>&1 || cargo build "${args[@]}"
