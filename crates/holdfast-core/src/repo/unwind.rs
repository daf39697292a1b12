//! Catching a panic inside automerge (native builds unwind; in WebAssembly a
//! panic aborts and never gets here). What the repo does next: `guard`.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, returning the panic's message if it panicked.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}
