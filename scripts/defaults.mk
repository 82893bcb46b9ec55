# SPDX-License-Identifier: GPL-2.0
#
# The project's defaults, each a "NAME ?= VALUE" line: the Makefile includes this file and
# scripts/lib.sh reads it, so a default is written once. The environment or make's command line
# overrides any of them.

# Kernel version to build and test (Debian's linux-source-$(KVER)); `make KVER=7.4` picks another.
KVER ?= 7.3
# Clang/LLVM suffix for the kernel and the modules (LLVM=-19 -> clang-19, ld.lld-19, ...).
LLVM ?= -19
# The test kernel: debug (KASAN, lockdep), fast (benchmarks), inline (fast + C helpers inlined).
KFLAVOR ?= debug
# KFLAVOR=inline's rustc: one on clang's LLVM major version.
INLINE_RUSTC ?= 1.85.0
