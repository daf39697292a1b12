//! Test hook (feature `test-hooks`, never in release builds): make a commit
//! fail part-way, after some of its puts were issued, to check that
//! IndexedDB rolls all of them back.

use std::cell::Cell;

use js_sys::Object;
use wasm_bindgen::JsValue;
use web_sys::IdbObjectStore;

use super::IdbStorage;

/// How the faulty commit fails.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitFault {
    /// Before put number `n`, issue a put whose key is not a valid key:
    /// IndexedDB throws `DataError` synchronously and the adapter aborts.
    ThrowBeforePut(usize),
    /// Before put number `n` (n >= 1), `add` the first put's key again: the
    /// request fails with `ConstraintError` and the browser aborts the
    /// transaction itself.
    FailRequestBeforePut(usize),
}

/// The injected fault, kept with the connection's state until a commit
/// takes it.
#[derive(Default)]
pub(super) struct Faults {
    fault: Cell<Option<CommitFault>>,
    /// Non-empty commits to let through before `fault` applies.
    skip: Cell<usize>,
}

impl Faults {
    /// For a commit about to issue its puts: the fault it must apply, if
    /// this is the commit (counting down the ones to let through).
    pub(super) fn arm(&self) -> Armed {
        let fault = match self.skip.get() {
            0 => self.fault.take(),
            n => {
                self.skip.set(n - 1);
                None
            }
        };
        Armed {
            fault,
            puts: 0,
            first_key: None,
        }
    }
}

/// One commit's fault, applied as its puts are issued.
pub(super) struct Armed {
    fault: Option<CommitFault>,
    /// Puts issued so far.
    puts: usize,
    first_key: Option<JsValue>,
}

impl Armed {
    /// Call before issuing each put (`value` under `key`). An `Err` is a
    /// call that threw synchronously, as from the put itself.
    pub(super) fn before_put(
        &mut self,
        store: &IdbObjectStore,
        key: &JsValue,
        value: &Object,
    ) -> Result<(), JsValue> {
        let i = self.puts;
        self.puts += 1;
        match self.fault {
            Some(CommitFault::ThrowBeforePut(n)) if n == i => {
                store.put_with_key(value, &Object::new())?;
            }
            Some(CommitFault::FailRequestBeforePut(n)) if n == i => {
                if let Some(first) = &self.first_key {
                    store.add_with_key(value, first)?;
                }
            }
            _ => {}
        }
        if self.first_key.is_none() {
            self.first_key = Some(key.clone());
        }
        Ok(())
    }
}

impl IdbStorage {
    /// Test hook: make the next non-empty commit fail part-way.
    #[doc(hidden)]
    pub fn inject_commit_fault(&self, fault: CommitFault) {
        self.inject_commit_fault_after(0, fault);
    }

    /// Test hook: let `skip` non-empty commits through, then fail the next.
    #[doc(hidden)]
    pub fn inject_commit_fault_after(&self, skip: usize, fault: CommitFault) {
        self.state.faults.skip.set(skip);
        self.state.faults.fault.set(Some(fault));
    }
}
