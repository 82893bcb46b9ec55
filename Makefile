# SPDX-License-Identifier: GPL-2.0
#
#   make            build both modules (provisions the 7.3 test kernel first unless KDIR= is given)
#   make run        boot the test kernel and show the pair: load, a call, removal under load
#   make test       run the selftests in the VM (debug kernel), KTAP output
#   make check      rustfmt + clippy for the modules, fmt + clippy + unit tests for tools/
#   make bench      benchmarks in the VM: bench/<flavor>/results.json, results.md, *.svg, and
#                   bench/results.json (every flavor's results, by flavor)
#   make profile    perf profiles of the benchmarked paths in the VM: bench/<flavor>/profile/
#   make kernel     only provision/build the test kernel (cached outside the repository)
#   make clean
#
# Variables: KDIR=<your Rust-enabled kernel build>, KVER=7.3, LLVM=-19, VM_CPUS=4, VM_TIMEOUT=...,
#            KFLAVOR=debug|fast|inline (inline: fast + C helpers inlined into Rust, INLINE_RUSTC=1.85.0)

KVER ?= 7.3
LLVM ?= -19
KFLAVOR ?= debug
export KVER LLVM KFLAVOR

BUILD := $(CURDIR)/build
ifeq ($(origin KDIR),undefined)
KDIR := $(BUILD)/kdir
KERNEL_DEP := kernel
endif

# The real path, resolved when the recipe runs: build/kdir is a symlink that `make kernel` points at
# the debug or fast build, and Kbuild must see which one to rebuild the modules when it changes.
KMAKE = $(RUST_ENV) $(MAKE) -C $$(readlink -f $(KDIR)) M=$(CURDIR) LLVM=$(LLVM)
# KFLAVOR=inline builds kernel and modules with a rustc on clang's LLVM version (scripts/kernel.sh);
# only the kernel and module builds use it, the tools keep the default toolchain.
INLINE_RUSTC ?= 1.85.0
export INLINE_RUSTC
ifeq ($(KFLAVOR),inline)
RUST_ENV := RUSTUP_TOOLCHAIN=$(INLINE_RUSTC)
endif
CARGO ?= cargo
NEG_DIR := $(BUILD)/negative-control

.PHONY: default modules kernel tools negative-control check run test bench profile clean

ifeq ($(UNSAFE_SKIP_MODULE_GET),1)
# Never build the unsafe consumer in place, where it could be loaded by mistake.
default: negative-control
	@echo "UNSAFE_SKIP_MODULE_GET=1: the unsafe consumer is in $(NEG_DIR), not here"
else
default: modules
endif

modules: $(KERNEL_DEP)
	$(KMAKE) modules

kernel:
	@scripts/kernel.sh >/dev/null

# The negative control: the same sources, consumer built without get/put, in its own directory.
negative-control: $(KERNEL_DEP)
	@mkdir -p $(NEG_DIR)
	@cp -u Kbuild rust_consumer.rs rust_provider.rs provider_abi.rs $(NEG_DIR)/
	$(RUST_ENV) $(MAKE) -C $$(readlink -f $(KDIR)) M=$(NEG_DIR) LLVM=$(LLVM) UNSAFE_SKIP_MODULE_GET=1 modules

tools:
	scripts/build-tools.sh

check: $(KERNEL_DEP)
	scripts/check.sh "$(KDIR)"

run: modules tools
	tools/vm-run.sh -- selftests/demo.sh

test: modules negative-control tools
	scripts/test.sh

# Benchmarks in the VM; KFLAVOR=fast benchmarks a kernel without KASAN/lockdep.
# tsc=reliable: under TCG the clocksource watchdog sooner or later declares the TSC unstable and
# the guest falls back to an emulated HPET, after which every clock read (two per userspace call)
# costs a device emulation: throughput drops about threefold in the middle of a run.
BENCH_APPEND := tsc=reliable $(VM_APPEND)
bench: modules tools
	@echo "make bench: $(KFLAVOR) kernel; results in bench/$(KFLAVOR)/"
	VM_APPEND="$(BENCH_APPEND)" VM_TIMEOUT=3600 tools/vm-run.sh --log $(BUILD)/vm-bench.log -- env KFLAVOR=$(KFLAVOR) bench/run.sh
	tools/target/release/rmc-bench report bench/$(KFLAVOR)/raw --out bench/$(KFLAVOR) --index bench/results.json

# Flat perf profiles (cpu-clock on CPU 0) of each benchmarked path; see README "Benchmarks".
profile: modules tools
	VM_APPEND="$(BENCH_APPEND)" VM_TIMEOUT=900 tools/vm-run.sh --log $(BUILD)/vm-profile.log -- env KFLAVOR=$(KFLAVOR) bench/profile.sh

clean:
	-[ ! -e $(KDIR)/Makefile ] || $(KMAKE) clean
	rm -f *.bc
	rm -rf $(BUILD)
	-cd tools && $(CARGO) clean
