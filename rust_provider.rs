// SPDX-License-Identifier: GPL-2.0

//! A provider module that registers ops tables, owned by itself, with `rust_consumer`.
//!
//! At load it picks a random instance id and registers `tables` tables (`rust_provider`,
//! `rust_provider_1`, ...), then its configfs subsystem, which shows each of them as a directory
//! (last: once it exists nothing in init may fail). While it is loaded, userspace adds and
//! withdraws tables of its own through configfs, as a driver registers ops when a device is
//! bound and withdraws them when it goes away, and withdraws any table, as unbinding does:
//!
//! ```sh
//! mkdir /sys/kernel/config/rust_provider/foo    # registers a table called foo
//! rmdir /sys/kernel/config/rust_provider/foo    # withdraws it; returns once its calls drained
//! echo 0 > /sys/kernel/config/rust_provider/rust_provider/enabled   # withdraws a load-time one
//! ```
//!
//! A table is a heap allocation ([`Registration`] owns it). `rust_consumer_unregister` returns
//! only once no call uses the table and none can start on it, so the table is freed right after,
//! whether the module is live or exiting. The module's exit withdraws every table left.
//!
//! The provider never counts its callers: every call holds a reference on this module while it
//! runs code from a table, so `rmmod rust_provider` fails with `EWOULDBLOCK` ("in use") while a
//! call is in flight, and no call runs once the exit has begun. (A `mkdir`-ed table also pins the
//! module, as configfs does for every item userspace creates: `rmdir` it before `rmmod`. Under a
//! load whose calls always overlap, the count never reaches zero: `echo 0 > .../enabled` on every
//! table first, and the calls end.)
//!
//! ```sh
//! insmod rust_consumer.ko
//! insmod rust_provider.ko                  # instance_id=N to fix the id, hold_max_us=N to cap holds
//! [ -c /dev/rust_consumer ] && exec 3<>/dev/rust_consumer   # `<>` creates a missing file
//! echo 'describe rust_provider' >&3; cat <&3
//! ```

use kernel::{
    bindings, configfs,
    prelude::*,
    sync::{
        Arc,
        UniqueArc, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

#[path = "provider_abi.rs"]
mod abi;
#[path = "provider/ops.rs"]
mod ops;
#[path = "provider/registration.rs"]
mod registration;
#[path = "provider/tables.rs"]
mod tables;
#[path = "consumer_uapi.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the consumer and userspace, where it is API"
)]
mod uapi;

use tables::TableState;

module! {
    type: RustProvider,
    name: "rust_provider",
    authors: ["rust-modref developers"],
    description: "Provider of an ops table protected by its module reference",
    license: "GPL",
    // The consumer's exports are in this namespace (EXPORT_SYMBOL_NS_GPL).
    imports_ns: ["RUST_MODREF"],
    params: {
        instance_id: u64 {
            default: 0,
            description: "Instance id reported by describe and mixed into compute (0: random per load)",
        },
        hold_max_us: u32 {
            default: 1_000_000,
            description: "Longest hold accepted, in microseconds (capped at 1000000)",
        },
        tables: u32 {
            default: 1,
            description: "Ops tables to register at load: rust_provider, rust_provider_1, ... (0-9)",
        },
        abi_version: u32 {
            default: 1,
            description: "ABI version to register with (test hook: anything but 1 is refused)",
        },
        register_twice: bool {
            default: false,
            description: "Test hook: register the first table's name twice (the consumer refuses)",
        },
        bad_table: u32 {
            default: 0,
            description: "Test hook: 1 registers a table with a NULL owner, 2 one without compute \
                (the consumer refuses both)",
        },
    },
}

#[pin_data(PinnedDrop)]
struct RustProvider {
    /// `/sys/kernel/config/rust_provider/`: a directory for every table.
    #[pin]
    _configfs: configfs::Subsystem<tables::Tables>,
    /// The tables registered at load (`tables=`); their directories are the subsystem's.
    tables: KVec<Arc<TableState>>,
}

impl kernel::InPlaceModule for RustProvider {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        let mut id = module_parameters::instance_id.value();
        if id == 0 {
            // SAFETY: `get_random_u64` has no preconditions.
            id = unsafe { bindings::get_random_u64() };
        }
        ops::set_instance_id(id);
        let owner = module.as_ptr();
        try_pin_init!(Self {
            tables: register_at_load(owner)?,
            // Last: once the configfs directory exists nothing in init may fail.
            _configfs <- configfs::Subsystem::with_default_groups(
                c"rust_provider",
                tables::item_type(),
                tables::Tables::new(owner),
                directories(tables)?,
            ),
            _: {
                pr_info!(
                    "(init) registered {} table(s), instance {:#018x}\n",
                    tables.len(),
                    id
                );
            },
        })
    }
}

/// Registers the `tables=` tables.
///
/// With several tables a later one can still be refused after earlier ones were published; that
/// is safe because the consumer hands out references only on LIVE modules, and this module
/// stays COMING until init returns: the earlier tables are withdrawn (by `Drop`) before anyone
/// could call them.
fn register_at_load(owner: *mut bindings::module) -> Result<KVec<Arc<TableState>>> {
    let count = module_parameters::tables.value();
    if count > MAX_TABLES {
        pr_err!("(init) tables={} is outside 0..={}\n", count, MAX_TABLES);
        return Err(EINVAL);
    }
    let mut tables = KVec::with_capacity(count as usize, GFP_KERNEL)?;
    for i in 0..count {
        let name = table_name(i)?;
        let twice = i == 0 && module_parameters::register_twice.value();
        for _ in 0..(1 + usize::from(twice)) {
            let table = TableState::new(name, owner).inspect_err(|e| {
                pr_err!(
                    "(init) rust_consumer refused table {}: errno {}\n",
                    i,
                    e.to_errno()
                );
            })?;
            tables.push(table, GFP_KERNEL)?;
        }
    }
    Ok(tables)
}

/// The directories of the tables registered at load: the subsystem's default groups.
fn directories(
    tables: &KVec<Arc<TableState>>,
) -> Result<KVec<Pin<UniqueArc<configfs::Group<tables::Table>>>>> {
    let mut groups = KVec::with_capacity(tables.len(), GFP_KERNEL)?;
    for table in tables.iter() {
        groups.push(table.default_group()?, GFP_KERNEL)?;
    }
    Ok(groups)
}

/// Most tables registered at load (the consumer's registry holds 8: 9 shows `ENOSPC`).
const MAX_TABLES: u32 = 9;

/// `rust_provider` for table 0, `rust_provider_N` for table N.
fn table_name(i: u32) -> Result<[u8; abi::NAME_LEN]> {
    let mut name = abi::name_buf(ops::NAME).ok_or(EINVAL)?;
    if i > 0 {
        let suffix = [b'_', b'0' + u8::try_from(i % 10).map_err(|_| EINVAL)?];
        name.get_mut(ops::NAME.len()..ops::NAME.len() + 2)
            .ok_or(EINVAL)?
            .copy_from_slice(&suffix);
    }
    Ok(name)
}

#[pinned_drop]
impl PinnedDrop for RustProvider {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let start = Instant::<Monotonic>::now();
        // Withdraws every table registered at load that is still enabled; each returns once its
        // calls drained, and none can be enabled again. (No `mkdir`-ed table is left: each pins
        // this module until its rmdir.) The subsystem goes after this, with the directories.
        let tables = this.tables.iter().filter(|t| t.close()).count();
        pr_info!(
            "(exit) withdrew {} table(s) in {} us, instance {:#018x}, {} holds completed\n",
            tables,
            start.elapsed().as_micros_ceil(),
            ops::instance_id(),
            ops::holds_completed()
        );
    }
}
