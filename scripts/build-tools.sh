#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the userspace tools (tools/target/release/{rmc-load,rmmod-wait}); they run in the guest.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need cargo "rustup (https://rustup.rs)"
cd "$RUST_MODREF_TOP/tools"
cargo build --release --locked --quiet 2>&1 || cargo build --release --locked
