// SPDX-License-Identifier: GPL-2.0

//! Every table of a live provider is a directory under `/sys/kernel/config/rust_provider/`, with
//! one attribute, `enabled`.
//!
//! `mkdir NAME` registers a table called `NAME` (errors: `EEXIST` the name is registered,
//! `ENOSPC` the registry is full, `ENAMETOOLONG` 32 bytes or more, `EINVAL` a byte that is not
//! printable ASCII, space included: the text interface could not name the table). `rmdir NAME`
//! withdraws it: configfs drops its last reference to the directory's item inside `rmdir`, which
//! drops the [`Table`] and with it the [`Registration`], whose withdrawal waits for the calls
//! using the table. So `rmdir` returns only once the table is no longer in use, and then frees it.
//!
//! The tables registered at load (`tables=`) are the subsystem's default groups: their
//! directories exist from the start, cannot be removed (`rmdir` fails with `EPERM`) and, unlike a
//! `mkdir`-ed one, do not pin the module.
//!
//! `echo 0 > NAME/enabled` withdraws any table, and returns once its calls drained; `echo 1`
//! registers it again, with `mkdir`'s errors (`EEXIST`, `ENOSPC`). This is the operator's lever
//! for a provider whose calls never stop overlapping: `rmmod --wait` needs the module's count to
//! reach zero, which such a load never lets happen; a withdrawn table starts no new call.

use kernel::{
    bindings,
    configfs::{
        self,
        configfs_attrs, //
    },
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::CString,
    sync::{
        Arc,
        Mutex,
        UniqueArc, //
    },
};

use crate::{
    abi,
    ops::new_table,
    registration::Registration, //
};

/// The subsystem's data: the owner every table names.
#[pin_data]
pub(crate) struct Tables {
    owner: *mut bindings::module,
}

// SAFETY: `owner` is only copied into new tables; the pointer is never dereferenced here.
unsafe impl Send for Tables {}
// SAFETY: Same as `Send`: shared access only reads the pointer value.
unsafe impl Sync for Tables {}

impl Tables {
    pub(crate) fn new(owner: *mut bindings::module) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { owner })
    }
}

/// The configfs shape of `/sys/kernel/config/rust_provider/`: no attributes, tables below.
pub(crate) fn item_type() -> &'static configfs::ItemType<configfs::Subsystem<Tables>, Tables> {
    configfs_attrs! {
        container: configfs::Subsystem<Tables>,
        data: Tables,
        child: Table,
        attributes: [],
    }
}

/// The configfs shape of a table's directory: `enabled`.
fn table_item_type() -> &'static configfs::ItemType<configfs::Group<Table>, Table> {
    configfs_attrs! {
        container: configfs::Group<Table>,
        data: Table,
        attributes: [
            enabled: 0,
        ],
    }
}

/// What the `enabled` lever changes, under [`TableState::inner`].
struct Inner {
    /// The table while it is registered.
    registration: Option<Registration>,
    /// Set by [`TableState::close`] at module exit: the table stays withdrawn.
    closed: bool,
}

/// A new table called `name`, registered: `mkdir`'s errors, and `enabled=1`'s.
fn register(name: [u8; abi::NAME_LEN], owner: *mut bindings::module) -> Result<Registration> {
    Registration::new(new_table(name, owner)?)
}

/// One table: its name, and its registration while it is enabled.
#[pin_data]
pub(crate) struct TableState {
    name: [u8; abi::NAME_LEN],
    owner: *mut bindings::module,
    #[pin]
    inner: Mutex<Inner>,
}

// SAFETY: `owner` is only copied into new tables; the pointer is never dereferenced here. The rest
// is a name and a `Mutex`.
unsafe impl Send for TableState {}
// SAFETY: Same as `Send`: shared access reads the pointer value, or goes through the `Mutex`.
unsafe impl Sync for TableState {}

impl TableState {
    /// Registers a table called `name` and returns it, enabled.
    pub(crate) fn new(
        name: [u8; abi::NAME_LEN],
        owner: *mut bindings::module,
    ) -> Result<Arc<Self>> {
        let registration = register(name, owner)?;
        Arc::pin_init(
            try_pin_init!(Self {
                name,
                owner,
                inner <- new_mutex!(Inner {
                    registration: Some(registration),
                    closed: false,
                }),
            }),
            GFP_KERNEL,
        )
    }

    fn enabled(&self) -> bool {
        self.inner.lock().registration.is_some()
    }

    /// Withdraws the table (`false`; returns once its calls drained) or registers it again.
    fn set_enabled(&self, on: bool) -> Result {
        let mut inner = self.inner.lock();
        match (on, inner.registration.is_some()) {
            (true, false) if inner.closed => Err(ENODEV),
            (true, false) => {
                inner.registration = Some(register(self.name, self.owner)?);
                Ok(())
            }
            // The drop withdraws it. The lock is held meanwhile: calls never take it.
            (false, true) => {
                inner.registration = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Withdraws the table for good (module exit); returns whether it was registered.
    pub(crate) fn close(&self) -> bool {
        let mut inner = self.inner.lock();
        inner.closed = true;
        inner.registration.take().is_some()
    }

    /// A directory for the table, for the subsystem's default groups.
    pub(crate) fn default_group(
        self: &Arc<Self>,
    ) -> Result<Pin<UniqueArc<configfs::Group<Table>>>> {
        let name = CStr::from_bytes_until_nul(&self.name).map_err(|_| EINVAL)?;
        let table = try_pin_init!(Table {
            state: self.clone(),
        });
        UniqueArc::pin_init(
            configfs::Group::new(CString::try_from(name)?, table_item_type(), table),
            GFP_KERNEL,
        )
    }
}

/// One table directory: the table it controls.
#[pin_data]
pub(crate) struct Table {
    state: Arc<TableState>,
}

#[vtable]
impl configfs::GroupOperations for Tables {
    type Child = Table;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<Table>, Error>> {
        let key = abi::name_buf(name.to_bytes()).ok_or(ENAMETOOLONG)?;
        let state = TableState::new(key, self.owner)?;
        let table = try_pin_init!(Table { state });
        Ok(configfs::Group::new(
            name.try_into()?,
            table_item_type(),
            table,
        ))
    }
}

#[vtable]
impl configfs::AttributeOperations<0> for Table {
    type Data = Table;

    fn show(table: &Table, page: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        let text: &[u8] = if table.state.enabled() {
            b"1\n"
        } else {
            b"0\n"
        };
        page.get_mut(..text.len())
            .ok_or(EINVAL)?
            .copy_from_slice(text);
        Ok(text.len())
    }

    fn store(table: &Table, page: &[u8]) -> Result {
        let on = match page {
            b"0" | b"0\n" => false,
            b"1" | b"1\n" => true,
            _ => return Err(EINVAL),
        };
        table.state.set_enabled(on)
    }
}
