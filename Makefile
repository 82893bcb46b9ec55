# SPDX-License-Identifier: GPL-2.0
#
#   make            build both modules (provisions the 7.3 test kernel first unless KDIR= is given)
#   make run        boot the test kernel and show the pair: load, a call, removal under load
#   make test       run the selftests in the VM (debug kernel), KTAP output
#   make check      rustfmt + clippy for the modules, fmt + clippy + unit tests for tools/
#   make bench      benchmarks in the VM: bench/<flavor>/results.json, results.md, *.svg, and
#                   bench/results.json (every flavor's results, by flavor)
#   make profile    perf profiles of the benchmarked paths in the VM: bench/<flavor>/profile/
#   make faults     every allocation failure of the pair's syscalls, tried, in the VM
#   make soak       500 removal and 500 table cycles under load, all allocation failures, kmemleak
#   make boot-report  BOOTS (30) boots of the test kernel: the boot-time distribution
#   make kernel     only provision/build the test kernel (cached outside the repository)
#   make help       this list
#   make clean
#
# Variables: KDIR=<your Rust-enabled kernel build>, KVER, LLVM, KFLAVOR=debug|fast|inline (inline:
#            fast + C helpers inlined into Rust, with INLINE_RUSTC), ARCH=x86|arm64 (default the
#            host's; arm64 on x86-64 is cross-built and emulated: `make test ARCH=arm64`),
#            VM_CPUS=4, VM_TIMEOUT=...; the defaults are in scripts/defaults.mk

include $(dir $(lastword $(MAKEFILE_LIST)))scripts/defaults.mk
export KVER LLVM KFLAVOR INLINE_RUSTC
# ARCH reaches the kernel's Makefile as given (make passes it on to every sub-make), so it must be
# the kernel's name: x86 (or x86_64) and arm64, not uname's aarch64.
ifeq ($(ARCH),aarch64)
$(error ARCH=aarch64: the kernel calls it arm64 (make test ARCH=arm64))
endif

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
ifeq ($(KFLAVOR),inline)
RUST_ENV := RUSTUP_TOOLCHAIN=$(INLINE_RUSTC)
endif
CARGO ?= cargo
# The module sources: what the negative-control builds and `make check` copy.
MODULE_SOURCES := Kbuild rust_consumer.rs rust_provider.rs provider_abi.rs consumer_uapi.rs consumer provider
NEG_DIR := $(BUILD)/negative-control
NEG_DRAIN_DIR := $(BUILD)/negative-control-drain

.PHONY: help default modules kernel tools negative-control check run test bench profile boot-report faults soak clean native-only

# Kbuild refuses UNSAFE_SKIP_MODULE_GET=1 / UNSAFE_SKIP_DRAIN=1 outside the negative-control
# directories: the unsafe consumers are built only by `make negative-control`.
default: modules

modules: $(KERNEL_DEP)
	$(KMAKE) modules

kernel:
	@scripts/kernel.sh >/dev/null

# The negative controls: the same sources, each consumer broken in one way, in its own directory:
# build/negative-control (no module reference around calls), build/negative-control-drain
# (withdrawal does not wait for the calls using the table).
negative-control: $(KERNEL_DEP)
	@mkdir -p $(NEG_DIR) $(NEG_DRAIN_DIR)
	@cp -ru $(MODULE_SOURCES) $(NEG_DIR)/
	@cp -ru $(MODULE_SOURCES) $(NEG_DRAIN_DIR)/
	$(RUST_ENV) $(MAKE) -C $$(readlink -f $(KDIR)) M=$(NEG_DIR) LLVM=$(LLVM) UNSAFE_SKIP_MODULE_GET=1 UNSAFE_SKIP_DRAIN= modules
	$(RUST_ENV) $(MAKE) -C $$(readlink -f $(KDIR)) M=$(NEG_DRAIN_DIR) LLVM=$(LLVM) UNSAFE_SKIP_DRAIN=1 UNSAFE_SKIP_MODULE_GET= modules

tools:
	scripts/build-tools.sh

check: $(KERNEL_DEP)
	scripts/check.sh "$(KDIR)"

run: modules tools
	scripts/vm-run.sh -- selftests/demo.sh

test: modules negative-control tools
	scripts/test.sh

# Benchmarks in the VM; KFLAVOR=fast benchmarks a kernel without KASAN/lockdep.
# tsc=reliable: under TCG the clocksource watchdog sooner or later declares the TSC unstable and
# the guest falls back to an emulated HPET, after which every clock read (two per userspace call)
# costs a device emulation: throughput drops about threefold in the middle of a run.
BENCH_APPEND := tsc=reliable $(VM_APPEND)
# The benchmarks measure the host's own architecture: another one under TCG would measure the
# emulator (and the report runs on the host).
native-only:
	@bash -c '. scripts/lib.sh && [ "$$RUST_MODREF_CROSS" = 0 ]' || \
	{ echo "make bench/profile: only for the host's architecture, not ARCH=$(ARCH) (an emulated CPU of another kind measures the emulator)"; exit 1; }
bench: native-only modules tools
	@echo "make bench: $(KFLAVOR) kernel; results in bench/$(KFLAVOR)/"
	VM_APPEND="$(BENCH_APPEND)" VM_TIMEOUT=3600 scripts/vm-run.sh --log $(BUILD)/vm-bench.log -- env KFLAVOR=$(KFLAVOR) bench/run.sh
	tools/target/release/rmc-bench report bench/$(KFLAVOR)/raw --out bench/$(KFLAVOR) --index bench/results.json

# Flat perf profiles (cpu-clock on CPU 0) of each benchmarked path; see README "Benchmarks".
profile: native-only modules tools
	VM_APPEND="$(BENCH_APPEND)" VM_TIMEOUT=900 scripts/vm-run.sh --log $(BUILD)/vm-profile.log -- env KFLAVOR=$(KFLAVOR) bench/profile.sh

# Every allocation failure of the pair's syscalls, tried (the selftest case alloc_failures), in a
# boot of its own with KUnit off (its suite would run, and allocate, at each of the many loads).
faults: modules tools
	VM_APPEND="kunit.enable=0 $(VM_APPEND)" VM_TIMEOUT=$${VM_TIMEOUT:-5400} scripts/vm-run.sh \
		--log $(BUILD)/vm-faults.log -- selftests/rust_modref.sh -t alloc_failures

# Reliability at scale (scripts/soak.sh): CYCLES (500) removals and TABLE_CYCLES (500) table
# withdrawals under load, every allocation failure, kmemleak; bench/soak.json.
soak: modules tools
	scripts/soak.sh

# BOOTS (default 30) boots of the test kernel: the distribution of boot-to-command times and
# the stalls vm-run retried (bench/boot-report.json).
boot-report:
	scripts/boot-report.sh

clean:
	-[ ! -e $(KDIR)/Makefile ] || $(KMAKE) clean
	rm -f *.bc
	rm -rf $(BUILD)
	-cd tools && $(CARGO) clean

help:
	@sed -n '3,/^$$/s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))
