//! Panic capture: a panic hook that records every panic on a thread running
//! an input, even one the core catches in its own isolation, and
//! [`captured`], which runs an input under it and `catch_unwind`.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// A panic seen by the hook while an input ran.
#[derive(Clone, Debug)]
pub struct PanicSeen {
    /// `file:line`, with the cargo registry prefix removed
    /// (`automerge-0.12.0/src/sync/bloom.rs:74`).
    pub location: String,
    pub message: String,
    /// Captured when [`BACKTRACES`] is set (replays).
    pub backtrace: Option<String>,
}

/// Capture a backtrace with every recorded panic (slow; for `--replay`).
pub static BACKTRACES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static SEEN: RefCell<Vec<PanicSeen>> = const { RefCell::new(Vec::new()) };
}

/// Shortens a source path: `…/registry/src/<index>/automerge-0.12.0/src/x.rs`
/// becomes `automerge-0.12.0/src/x.rs`.
pub fn short_path(file: &str) -> String {
    if let Some(i) = file.find("/registry/src/") {
        let rest = &file[i + "/registry/src/".len()..];
        if let Some(j) = rest.find('/') {
            return rest[j + 1..].to_string();
        }
    }
    file.to_string()
}

/// Installs (once per process) a panic hook that records panics on threads
/// running an input and hands every other panic to the previous hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return prev(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", short_path(l.file()), l.line()))
                .unwrap_or_else(|| "<unknown>".into());
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string payload>".into());
            let backtrace = BACKTRACES
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| std::backtrace::Backtrace::force_capture().to_string());
            SEEN.with(|s| {
                s.borrow_mut().push(PanicSeen {
                    location,
                    message,
                    backtrace,
                })
            });
        }));
    });
}

/// Runs `f` with panics recorded; returns whether it unwound, and the panics
/// seen (caught inside or not).
pub(crate) fn captured<R>(f: impl FnOnce() -> R) -> (Option<R>, Vec<PanicSeen>) {
    SEEN.with(|s| s.borrow_mut().clear());
    CAPTURING.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f)).ok();
    CAPTURING.with(|c| c.set(false));
    (r, SEEN.with(|s| std::mem::take(&mut *s.borrow_mut())))
}
