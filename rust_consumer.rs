// SPDX-License-Identifier: GPL-2.0

//! A consumer module that calls a table's ops only inside the table's drain and under a
//! reference on the table's owner (the glossary is at the top of `provider_abi.rs`).
//!
//! Providers register [`abi::ProviderOps`] tables with `rust_consumer_register` and may withdraw
//! them at any time with `rust_consumer_unregister`, which returns once no call uses the table
//! any more. Every use of a table goes through a [`call::TableRef`], obtained only from
//! [`registry::Registry::get`]. While a table or its owner is going away the caller gets
//! `ENODEV`, never a stale pointer. The safety argument: README.md, "Design and safety argument".
//!
//! The kernel pieces it stands on are the kernel crate's (`kernel::sync::SrcuFast`,
//! `kernel::module::ModuleRef`, `kernel::percpu::PerCpuCounters`: `patches/7.3/` adds them).
//!
//! Where things are: `consumer/module_ref.rs` the module references (the one place that takes
//! them), `consumer/registry.rs` the registry and its drains, `consumer/export.rs` the
//! functions providers link against, `consumer/call.rs` calling a table, `consumer/stats.rs` the
//! counters, `consumer/uapi.rs` and `consumer_uapi.rs` the ioctl ABI, `consumer/text.rs` the
//! text interface, `consumer/bench.rs` the in-kernel benchmark.
//!
//! Userspace drives calls through `/dev/rust_consumer` (mode 0600), with a line-oriented text
//! interface for people and ioctls for programs:
//!
//! ```sh
//! [ -c /dev/rust_consumer ] && exec 3<>/dev/rust_consumer   # `<>` creates a missing file
//! echo 'compute rust_provider 42' >&3; cat <&3
//! # ok compute provider=rust_provider instance=0x... x=42 y=...
//! echo 'hold rust_provider 500000' >&3        # sleeps 0.5 s inside the provider
//! echo 'stats' >&3; cat <&3                    # counters, total and per table
//! ```
//!
//! See README.md ("Userspace interface") for every request, ioctl and errno.

use kernel::{
    bindings,
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    new_mutex,
    prelude::*,
    sync::Mutex,
};

#[path = "provider_abi.rs"]
mod abi;
#[path = "consumer/bench.rs"]
mod bench;
#[path = "consumer/call.rs"]
mod call;
#[path = "consumer/export.rs"]
mod export;
#[path = "consumer/kunit.rs"]
mod kunit;
#[path = "consumer/module_ref.rs"]
mod module_ref;
#[path = "consumer/registry.rs"]
mod registry;
#[path = "consumer/stats.rs"]
mod stats;
#[path = "consumer/text.rs"]
mod text;
#[path = "consumer/uapi.rs"]
mod uapi;

use registry::Registry;

module! {
    type: RustConsumer,
    name: "rust_consumer",
    authors: ["rust-modref developers"],
    description: "Registry of providers, called only inside a drain and under a module reference",
    license: "GPL",
    params: {
        race_window_us: u32 {
            default: 0,
            description: "Test hook: busy-wait this many microseconds (at most 1000) between \
                finding a provider and taking its reference, to widen the race with its removal",
        },
    },
}

/// Which negative control this build is, if any (see `Kbuild`); `None` for the real consumer.
const NEGATIVE_CONTROL: Option<&str> = if module_ref::UNSAFE_SKIP_MODULE_GET {
    Some("no module reference around calls")
} else if registry::UNSAFE_SKIP_DRAIN {
    Some("withdrawal does not drain calls")
} else {
    None
};

// A negative-control build says so in `modinfo` too (`modinfo -F negative_control`).
#[cfg(rust_modref_unsafe_skip_module_get)]
#[link_section = ".modinfo"]
#[used]
static NEGATIVE_CONTROL_MODINFO: [u8; 38] = *b"negative_control=UNSAFE no module get\0";
#[cfg(rust_modref_unsafe_skip_drain)]
#[link_section = ".modinfo"]
#[used]
static NEGATIVE_CONTROL_MODINFO: [u8; 33] = *b"negative_control=UNSAFE no drain\0";

/// Per-open-file state: the answer to the last text request.
#[pin_data]
struct ConsumerFile {
    #[pin]
    answer: Mutex<text::Answer>,
}

#[vtable]
impl MiscDevice for ConsumerFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(ConsumerFile {
                answer <- new_mutex!(text::Answer::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// Reads the rest of the last answer, wherever the file position is.
    fn read_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let me = kiocb.file();
        let mut answer = me.answer.lock();
        let unread = answer.unread();
        let n = iov.copy_to_iter(unread);
        if n == 0 && !unread.is_empty() && !iov.is_empty() {
            return Err(EFAULT);
        }
        answer.consume(n);
        Ok(n)
    }

    /// Runs one request (the whole write); its answer replaces the previous one.
    fn write_iter(kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let len = iov.len();
        if len == 0 || len > text::MAX_REQUEST {
            return Err(EINVAL);
        }
        let mut req = [0u8; text::MAX_REQUEST];
        if iov.copy_from_iter(&mut req[..len]) != len {
            return Err(EFAULT);
        }
        // Run the request without holding the file's lock: a hold may sleep for a second.
        let mut out = text::Answer::new();
        let res = text::request(&req[..len], &mut out);
        let me = kiocb.file();
        *me.answer.lock() = out;
        res.map(|()| len)
    }

    fn ioctl(_me: Pin<&ConsumerFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::RMC_IOC_CALL => uapi::ioctl_call(arg, false),
            uapi::RMC_IOC_ECHO => uapi::ioctl_call(arg, true),
            uapi::RMC_IOC_STATS => uapi::inout(arg, uapi::ioctl_stats),
            uapi::RMC_IOC_NOP => Ok(0),
            uapi::RMC_IOC_BENCH => uapi::inout(arg, |a| {
                bench::ioctl(a, module_parameters::race_window_us.value())
            }),
            // The struct size is part of `cmd`: a struct of the wrong size is an unknown command.
            _ => Err(ENOTTY),
        }
    }
}

/// The module: the device first, so that it is gone (dropped first) before the registry.
#[pin_data(PinnedDrop)]
struct RustConsumer {
    #[pin]
    _miscdev: MiscDeviceRegistration<ConsumerFile>,
    #[pin]
    registry: Registry,
}

impl kernel::InPlaceModule for RustConsumer {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        if let Some(what) = NEGATIVE_CONTROL {
            pr_warn!(
                "(init) UNSAFE negative-control build ({}): exists only for the selftest\n",
                what
            );
            // SAFETY: `add_taint` has no preconditions; TAINT_TEST marks a test-only kernel.
            unsafe {
                bindings::add_taint(bindings::TAINT_TEST, bindings::lockdep_ok_LOCKDEP_STILL_OK)
            };
        }
        try_pin_init!(&this in Self {
            registry <- Registry::new(module_parameters::race_window_us.value()),
            _: {
                // SAFETY: `this` points to the module's pinned storage, whose `registry` field
                // was initialised just above and stays pinned until the module is dropped.
                let registry = unsafe { Pin::new_unchecked(&(*this.as_ptr()).registry) };
                registry.publish();
                pr_info!("(init) /dev/rust_consumer ready\n");
            },
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"rust_consumer",
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for RustConsumer {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("(exit)\n");
    }
}
