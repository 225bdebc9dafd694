//! [`VarBuilder`]: where layers create their parameters, under a name prefix.

use ember_core::Result;

use crate::store::{Init, Param, VarStore};

/// Creates parameters in a [`VarStore`] under a name prefix.
#[derive(Clone)]
pub struct VarBuilder<'a> {
    store: &'a VarStore,
    prefix: String,
}

impl<'a> VarBuilder<'a> {
    /// A builder at the root of `store`.
    pub fn new(store: &'a VarStore) -> VarBuilder<'a> {
        VarBuilder {
            store,
            prefix: String::new(),
        }
    }

    /// A builder one level down: `vb.pp("layers").pp("0")` names `layers.0.*`.
    pub fn pp(&self, name: impl std::fmt::Display) -> VarBuilder<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        VarBuilder {
            store: self.store,
            prefix,
        }
    }

    /// The parameter `prefix.name` with `shape`, created with `init`. A name that exists
    /// already is an error (two layers would silently share weights); see
    /// [`VarBuilder::get_shared`].
    pub fn get(&self, name: &str, shape: &[usize], init: Init) -> Result<Param> {
        self.store.create(self.path(name), shape, init, false)
    }

    /// The parameter `prefix.name`: the existing one (same shape) to share it on purpose, or
    /// a new one created with `init`.
    pub fn get_shared(&self, name: &str, shape: &[usize], init: Init) -> Result<Param> {
        self.store.create(self.path(name), shape, init, true)
    }

    /// The full name of `name` under this builder.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The store.
    pub fn store(&self) -> &'a VarStore {
        self.store
    }
}
