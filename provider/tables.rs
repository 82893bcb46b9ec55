// SPDX-License-Identifier: GPL-2.0

//! Tables added and withdrawn while the provider is live: `/sys/kernel/config/rust_provider/`.
//!
//! `mkdir NAME` registers a table called `NAME` (errors: `EEXIST` the name is registered,
//! `ENOSPC` the registry is full, `ENAMETOOLONG` 32 bytes or more, `EINVAL` a byte that is not
//! printable ASCII, space included: the text interface could not name the table). `rmdir NAME` withdraws it:
//! configfs drops its last reference to the directory's item inside `rmdir`, which drops the
//! [`Table`] and with it the [`Registration`], whose withdrawal waits for the calls using the
//! table. So `rmdir` returns only once the table is no longer in use, and then frees it.

use kernel::{
    bindings,
    configfs::{
        self,
        configfs_attrs, //
    },
    prelude::*,
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

/// One table directory: the registration it keeps.
#[pin_data]
pub(crate) struct Table {
    _registration: Registration,
}

#[vtable]
impl configfs::GroupOperations for Tables {
    type Child = Table;

    fn make_group(&self, name: &CStr) -> Result<impl PinInit<configfs::Group<Table>, Error>> {
        let key = abi::name_buf(name.to_bytes()).ok_or(ENAMETOOLONG)?;
        let registration = Registration::new(new_table(key, self.owner)?)?;
        let table = try_pin_init!(Table {
            _registration: registration,
        });
        let item_type = configfs_attrs! {
            container: configfs::Group<Table>,
            data: Table,
            attributes: [],
        };
        Ok(configfs::Group::new(name.try_into()?, item_type, table))
    }
}
