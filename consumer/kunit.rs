// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the consumer: number parsing, the text request grammar, name keys, answer
//! formatting, the ABI, the drains' lock classes and the module references. They run when the module loads on a kernel with
//! `CONFIG_KUNIT` (the debug test kernel); `make test` counts their KTAP.

#[kernel::macros::kunit_tests(rust_consumer)]
mod tests {
    use crate::{
        abi::{
            self,
            ProviderOps,
            NAME_LEN, //
        },
        module_ref,
        registry::Registry,
        text::{
            self,
            parse_u64,
            Answer, //
        },
        uapi,
    };
    use core::fmt::Write;
    use kernel::prelude::*;

    #[test]
    fn numbers_parse_in_decimal_and_hex() {
        assert_eq!(parse_u64(b"0"), Ok(0));
        assert_eq!(parse_u64(b"42"), Ok(42));
        assert_eq!(parse_u64(b"0x10"), Ok(16));
        assert_eq!(parse_u64(b"0XfF"), Ok(255));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), Err(EINVAL));
        assert_eq!(parse_u64(b"0x"), Err(EINVAL));
        assert_eq!(parse_u64(b""), Err(EINVAL));
        assert_eq!(parse_u64(b"-1"), Err(EINVAL));
        assert_eq!(parse_u64(b"12a"), Err(EINVAL));
    }

    #[test]
    fn malformed_requests_are_einval() -> Result {
        let long = [b'x'; NAME_LEN];
        let mut req = KVec::new();
        for r in [
            &b""[..],
            b"frobnicate",
            b"compute",
            b"compute p",
            b"compute p twelve",
            b"compute p 1 2",
            b"hold p 4294967296",
            b"list extra",
            b"stats a b",
        ] {
            let mut out = Answer::new();
            assert_eq!(text::request(r, &mut out), Err(EINVAL));
            assert_eq!(out.unread(), b"err 22\n");
        }
        req.extend_from_slice(b"compute ", GFP_KERNEL)?;
        req.extend_from_slice(&long, GFP_KERNEL)?;
        req.extend_from_slice(b" 1", GFP_KERNEL)?;
        let mut out = Answer::new();
        assert_eq!(text::request(&req, &mut out), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn unknown_names_are_enodev() {
        let mut out = Answer::new();
        assert_eq!(
            text::request(b"compute kunit_nosuch 1", &mut out),
            Err(ENODEV)
        );
        assert_eq!(out.unread(), b"err 19\n");
        // A name too long to be registered is not registered.
        assert_eq!(
            text::request(b"stats xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &mut out),
            Err(ENODEV)
        );
    }

    #[test]
    fn answers_read_in_pieces() {
        let mut out = Answer::new();
        assert!(writeln!(out, "ok {}", 7).is_ok());
        assert_eq!(out.unread(), b"ok 7\n");
        out.consume(3);
        assert_eq!(out.unread(), b"7\n");
        out.consume(100);
        assert_eq!(out.unread(), b"");
        // A full buffer refuses more instead of truncating silently.
        let mut full = Answer::new();
        while write!(full, "0123456789").is_ok() {}
        assert!(full.unread().len() <= 1024);
    }

    #[test]
    fn name_keys() {
        let a = abi::name_buf(b"foo");
        assert!(a.is_some());
        assert!(abi::name_buf(&[b'x'; NAME_LEN - 1]).is_some());
        assert!(abi::name_buf(&[b'x'; NAME_LEN]).is_none());
        let key = abi::name_buf(b"foo").unwrap_or([0; NAME_LEN]);
        let other = abi::name_buf(b"fop").unwrap_or([0; NAME_LEN]);
        let table = ProviderOps {
            abi_version: abi::ABI_VERSION,
            name: key,
            owner: core::ptr::null_mut(),
            compute: None,
            hold: None,
            describe: None,
        };
        assert!(table.is_named(&key));
        assert!(!table.is_named(&other));
        assert!(table.is_nul_padded());
        assert!(!table.is_complete());
        assert_eq!(table.name(), b"foo");
        let mut unpadded = key;
        unpadded[5] = b'!';
        let bad = ProviderOps {
            name: unpadded,
            ..table
        };
        assert!(!bad.is_nul_padded());
    }

    #[test]
    fn drains_nest_with_lockdep_on() -> Result {
        // An op of one table may withdraw another: a read-side section of one slot's drain
        // around a grace period of another's. Each slot's drain has its own lock class, so
        // lockdep sees no recursion and stays on.
        let registry = Registry::global();
        let (a, b) = (
            registry.drain(0).ok_or(EINVAL)?,
            registry.drain(1).ok_or(EINVAL)?,
        );
        let on_before = debug_locks();
        {
            let _a = a.read_lock();
            b.synchronize_expedited();
        }
        assert_eq!(debug_locks(), on_before);
        Ok(())
    }

    /// Lockdep's `debug_locks`: 1 while it reports, 0 once it has switched itself off (always 0
    /// without lockdep).
    fn debug_locks() -> i32 {
        #[cfg(CONFIG_LOCKDEP)]
        // SAFETY: A plain read of an `int` that the locking code only ever clears.
        return unsafe { core::ptr::addr_of!(kernel::bindings::debug_locks).read_volatile() };
        #[cfg(not(CONFIG_LOCKDEP))]
        0
    }

    extern "C" fn test_compute(x: u64) -> u64 {
        x
    }
    extern "C" fn test_hold(_us: u32) -> kernel::ffi::c_int {
        0
    }
    /// Writes nothing.
    ///
    /// # Safety
    ///
    /// None needed: `info` is not touched (the ABI lets `describe` assume it is writable).
    unsafe extern "C" fn test_describe(_info: *mut abi::ProviderInfo) {}

    #[test]
    fn a_second_withdrawal_waits_for_the_drain() -> Result {
        use kernel::{
            sync::atomic::{
                Acquire,
                Atomic,
                Release, //
            },
            time::{
                delay::fsleep,
                Delta, //
            },
            workqueue,
        };
        // Two withdrawals of one table at once (a C provider whose remove() and error path both
        // withdraw it): neither may return while a call uses the table, or its caller frees the
        // table under the call. The negative control without the drain fails this by design.
        if crate::registry::UNSAFE_SKIP_DRAIN {
            return Ok(());
        }
        static RETURNED: Atomic<u64> = Atomic::new(0);
        RETURNED.store(0, Release);
        let ops = KBox::new(
            ProviderOps {
                abi_version: abi::ABI_VERSION,
                name: abi::name_buf(b"kunit_withdrawn_twice").ok_or(EINVAL)?,
                owner: kernel::module::this_module::<crate::RustConsumer>().as_ptr(),
                compute: Some(test_compute),
                hold: Some(test_hold),
                describe: Some(test_describe),
            },
            GFP_KERNEL,
        )?;
        let registry = Registry::global();
        // SAFETY: `ops` is a complete table that stays alive and unchanged until both
        // withdrawals below have returned (it is dropped last).
        unsafe { registry.register(&*ops) }?;
        let call = registry.get(&ops.name)?; // A call in flight: inside the table's drain.
        let table = core::ptr::from_ref::<ProviderOps>(&ops) as usize;
        let mut spawned = 0;
        for _ in 0..2 {
            let withdraw = move || {
                Registry::global().unregister(table as *const ProviderOps);
                RETURNED.fetch_add(1, Release);
            };
            if workqueue::system().try_spawn(GFP_KERNEL, withdraw).is_ok() {
                spawned += 1;
            }
        }
        fsleep(Delta::from_millis(300));
        let returned_during_call = RETURNED.load(Acquire);
        drop(call);
        if spawned == 0 {
            registry.unregister(core::ptr::from_ref::<ProviderOps>(&ops));
        }
        let mut waits = 0;
        while RETURNED.load(Acquire) < spawned && waits < 500 {
            fsleep(Delta::from_millis(10));
            waits += 1;
        }
        let returned = RETURNED.load(Acquire);
        if returned < spawned {
            // Never free a table a withdrawal may still look at.
            core::mem::forget(ops);
        } else {
            drop(ops);
        }
        assert_eq!(spawned, 2);
        assert_eq!(returned_during_call, 0);
        assert_eq!(returned, 2);
        Ok(())
    }

    #[test]
    fn module_refs_count() -> Result {
        let this = kernel::module::this_module::<crate::RustConsumer>().as_ptr();
        // SAFETY: Our own module, running this test: it exists (and is live: module KUnit
        // suites run once init has returned).
        let held = |m| unsafe { kernel::bindings::module_refcount(m) };
        let before = held(this);
        // SAFETY: As above.
        let first = unsafe { module_ref::try_get(this) }.ok_or(ENODEV)?;
        let second = first.clone();
        let want = if module_ref::UNSAFE_SKIP_MODULE_GET {
            0
        } else {
            2
        };
        assert_eq!(held(this), before + want);
        drop(first);
        drop(second);
        assert_eq!(held(this), before);
        Ok(())
    }

    #[test]
    fn abi_numbers_and_answers() {
        assert_eq!(uapi::RMC_IOC_CALL, 0xc048_b901);
        assert_eq!(uapi::RMC_IOC_STATS, 0xc058_b902);
        assert_eq!(uapi::RMC_IOC_NOP, 0xb903);
        assert_eq!(uapi::RMC_IOC_BENCH, 0xc040_b904);
        assert_eq!(uapi::RMC_IOC_ECHO, 0xc048_b905);
        assert_eq!(core::mem::size_of::<uapi::CallArgs>(), 72);
        // The known answer userspace verifies against (tools/rmc has the same vector).
        assert_eq!(abi::compute_expected(0, 0), 0xe220_a839_7b1d_cdaf);
    }
}
