//! [`LogStorage`]: the async [`Storage`] adapter around [`LogStore`] for the
//! tokio server.

use std::path::Path;
use std::sync::{Arc, Mutex};

use holdfast_core::storage::{Commit, Detail, Storage, StorageError, StorageKey};

use super::store::{LogError, LogOptions, LogStats, LogStore, RecoveryReport};
#[cfg(feature = "fault-hooks")]
use crate::fault::FaultHook;

/// The log behind the [`Storage`] interface. Every operation runs the
/// blocking work (append + fdatasync, reads) on tokio's blocking pool via
/// `spawn_blocking`, so it works from a current-thread runtime or a
/// `LocalSet`; outside any tokio runtime it runs inline (blocking the
/// caller). Operations are serialized by a mutex: a read waits for a commit's
/// fsync in progress. Cloning shares the store.
#[derive(Clone)]
pub struct LogStorage {
    inner: Arc<Mutex<LogStore>>,
}

impl LogStorage {
    pub fn new(store: LogStore) -> Self {
        Self {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Open (and recover) the log in `dir`. Blocking: call it at startup or
    /// inside `spawn_blocking`.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: LogOptions,
    ) -> Result<(Self, RecoveryReport), LogError> {
        let (store, report) = LogStore::open(dir, opts)?;
        Ok((Self::new(store), report))
    }

    /// Compact the log (see [`LogStore::compact`]).
    pub async fn compact(&self) -> Result<LogStats, StorageError> {
        self.run(|s| s.compact()).await
    }

    pub async fn stats(&self) -> Result<LogStats, StorageError> {
        self.run(|s| s.stats()).await
    }

    /// Install a fault-injection hook on the shared store (tests only; see
    /// [`LogStore::set_fault_hook`]). Blocks while an operation holds the
    /// store. Feature `fault-hooks`.
    #[cfg(feature = "fault-hooks")]
    pub fn set_fault_hook(&self, hook: Option<FaultHook>) {
        let mut store = match self.inner.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        store.set_fault_hook(hook);
    }

    /// Run `f` on the store on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogStore) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let job = move || {
            let mut store = inner.lock().map_err(|_| {
                StorageError::Unavailable("the log store panicked in an earlier operation".into())
            })?;
            f(&mut store).map_err(StorageError::from)
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return job();
        }
        tokio::task::spawn_blocking(job).await.map_err(|e| {
            StorageError::Unavailable(Detail::caused_by("log storage task failed", e))
        })?
    }
}

impl Storage for LogStorage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.clone();
        self.run(move |s| s.get(&key)).await
    }

    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError> {
        let prefix = prefix.clone();
        self.run(move |s| s.range(&prefix)).await
    }

    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        self.run(move |s| s.commit(&commit)).await
    }
}
