//! [`LogStorage`]: the async [`Storage`] adapter around [`LogStore`] for the
//! tokio server, and the automatic compaction that runs beside it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

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
///
/// **Automatic compaction.** After each commit (once its fsync is done and
/// its result is on its way back), if [`LogStore::compaction_due`] says so,
/// a thread named `holdfast-log-compact` compacts the log. It holds the
/// store to start (roll to a new segment), for a moment per 4096 keys (to
/// copy the next keys of the index) and to finish (point the index at the
/// new segment: O(live keys) in memory, some 30 ms per million keys);
/// reading and writing the values, the long part, runs beside commits and
/// reads. A failed compaction changes nothing and fails no commit: it is
/// logged, counted ([`LogStats::compaction_failures`]) and retried after a
/// pause. Dropping every clone does not stop a compaction under way: the
/// store, and the directory's lock, live until it ends
/// ([`LogStorage::wait_for_compaction`]); ending the process is safe.
#[derive(Clone)]
pub struct LogStorage {
    inner: Arc<Mutex<LogStore>>,
    /// The store's figures, refreshed by the store after every change.
    published: Arc<Mutex<LogStats>>,
    compactor: Arc<Compactor>,
}

/// The state of background compaction, shared by the clones.
#[derive(Default)]
struct Compactor {
    /// A compaction thread was started and has not ended.
    running: AtomicBool,
    /// Held through a whole compaction, automatic or explicit: one at a
    /// time.
    gate: Mutex<()>,
    /// The last compaction thread started.
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lock_store(inner: &Mutex<LogStore>) -> Result<MutexGuard<'_, LogStore>, StorageError> {
    inner.lock().map_err(|_| {
        StorageError::Unavailable("the log store panicked in an earlier operation".into())
    })
}

/// Compact, holding the store only to begin, for each look at the index and
/// to finish (see [`LogStorage`]). The caller holds the compactor's gate.
fn compact_beside_commits(inner: &Mutex<LogStore>) -> Result<LogStats, StorageError> {
    let job = lock_store(inner)?.begin_compaction(true)?;
    let written = job.write(|after| {
        let store = inner.lock().map_err(|_| {
            LogError::Poisoned("the log store panicked in an earlier operation".into())
        })?;
        Ok(store.compaction_chunk(&job, after))
    });
    let replaced = lock_store(inner)?.finish_compaction(&job, written)?;
    job.remove_replaced(replaced);
    Ok(lock_store(inner)?.stats()?)
}

impl LogStorage {
    pub fn new(store: LogStore) -> Self {
        Self {
            published: store.published_stats(),
            inner: Arc::new(Mutex::new(store)),
            compactor: Arc::default(),
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

    /// Compact the log now, whatever the garbage, beside commits like an
    /// automatic compaction (after the one under way, if any). Leaves two
    /// segments: the compacted one and the active one started for the
    /// commits made meanwhile.
    pub async fn compact(&self) -> Result<LogStats, StorageError> {
        let inner = self.inner.clone();
        let compactor = self.compactor.clone();
        blocking(move || {
            let _one_at_a_time = lock(&compactor.gate);
            compact_beside_commits(&inner)
        })
        .await
    }

    pub async fn stats(&self) -> Result<LogStats, StorageError> {
        self.run(|s| s.stats()).await
    }

    /// The log's sizes and counters for monitoring (disk and live bytes,
    /// garbage, segments, compactions, fsync latency): a copy the store
    /// refreshes after every change, so reading it never waits for a commit,
    /// a compaction or the disk. `compacting` is also set while a
    /// compaction thread is starting or ending.
    pub fn metrics(&self) -> LogStats {
        let mut stats = *lock(&self.published);
        stats.compacting |= self.compactor.running.load(Ordering::Acquire);
        stats
    }

    /// Block until the background compaction under way, if any, has ended
    /// (tests; a shutdown that would rather not leave a `.log.tmp`, though
    /// killing one is safe). Do not call it from an async task.
    pub fn wait_for_compaction(&self) {
        let handle = lock(&self.compactor.thread).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Install a fault-injection hook on the shared store (tests only; see
    /// [`LogStore::set_fault_hook`]). Blocks while an operation holds the
    /// store. Feature `fault-hooks`.
    #[cfg(feature = "fault-hooks")]
    pub fn set_fault_hook(&self, hook: Option<FaultHook>) {
        lock(&self.inner).set_fault_hook(hook);
    }

    /// Start a background compaction unless one is running.
    fn start_compaction(&self) {
        let mut slot = lock(&self.compactor.thread);
        if self.compactor.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let compactor = self.compactor.clone();
        let spawned = thread::Builder::new()
            .name("holdfast-log-compact".into())
            .spawn(move || {
                let due = || lock_store(&inner).is_ok_and(|s| s.compaction_due());
                loop {
                    {
                        let _one_at_a_time = lock(&compactor.gate);
                        // Checked again: an explicit compaction may have run
                        // meanwhile, and the commits made during a compaction
                        // may call for another.
                        while due() {
                            if let Err(e) = compact_beside_commits(&inner) {
                                // The store has logged and counted the failure
                                // (and will wait before the next try).
                                tracing::debug!(error = %e, "automatic log compaction did not complete");
                                break;
                            }
                        }
                    }
                    compactor.running.store(false, Ordering::Release);
                    // A commit that found `running` still set did not start a
                    // thread: look once more after clearing it.
                    if !due() || compactor.running.swap(true, Ordering::AcqRel) {
                        break;
                    }
                }
            });
        match spawned {
            Ok(handle) => *slot = Some(handle),
            Err(e) => {
                self.compactor.running.store(false, Ordering::Release);
                tracing::error!(error = %e, "could not start the log compaction thread");
            }
        }
    }

    /// Run `f` on the store on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogStore) -> Result<T, LogError> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || f(&mut *lock_store(&inner)?).map_err(StorageError::from)).await
    }
}

/// Run `job` on tokio's blocking pool, or inline outside a runtime.
async fn blocking<T, F>(job: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return job();
    }
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StorageError::Unavailable(Detail::caused_by("log storage task failed", e)))?
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

    /// Answered from the in-memory index (no disk read).
    async fn is_empty(&self) -> Result<bool, StorageError> {
        self.run(|s| Ok(s.key_count() == 0)).await
    }

    /// Append and fdatasync `commit`; then, if the garbage calls for it,
    /// start a background compaction (which never fails this commit).
    async fn commit(&self, commit: Commit) -> Result<(), StorageError> {
        let (committed, due) = self
            .run(move |s| Ok((s.commit(&commit), s.compaction_due())))
            .await?;
        if due {
            self.start_compaction();
        }
        committed.map_err(StorageError::from)
    }
}
