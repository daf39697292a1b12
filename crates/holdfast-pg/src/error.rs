//! PostgreSQL's failures as the core's [`StorageError`], and the errors of
//! opening the store.

use holdfast_core::storage::{Detail, StorageError};
use tokio_postgres::error::SqlState;

/// Why [`crate::PgStorage::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("invalid PostgreSQL connection string: {0}")]
    Config(#[source] tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("the database holds holdfast schema version {found}; this server knows up to {known} (a newer holdfast-server wrote it)")]
    NewerSchema { found: i32, known: i32 },
    #[error("another holdfast-server holds this database (its advisory lock is taken); one server per database until several nodes are supported")]
    InUse,
    #[error("PostgreSQL runs with fsync = off: a commit it reports may be lost in a crash, so holdfast will not acknowledge on it (set fsync = on)")]
    FsyncOff,
    #[error("PostgreSQL reports synchronous_commit = {0} on holdfast's connections: COMMIT may return before the WAL is flushed")]
    AsyncCommit(String),
}

/// `e`, from doing `what`, as the core's error: a full disk or exhausted
/// resources are a quota, a conflict or cancellation an abort, a lost
/// connection or a server going away unavailability, the rest I/O.
pub fn storage_error(what: &str, e: tokio_postgres::Error) -> StorageError {
    let message = format!("PostgreSQL {what}: {e}");
    let code = e.code().cloned();
    let detail = Detail::caused_by(message, e);
    match code {
        Some(c) if c == SqlState::DISK_FULL || c.code().starts_with("53") => {
            StorageError::QuotaExceeded(detail)
        }
        Some(c)
            if c == SqlState::T_R_SERIALIZATION_FAILURE
                || c == SqlState::T_R_DEADLOCK_DETECTED
                || c == SqlState::QUERY_CANCELED
                || c.code().starts_with("40") =>
        {
            StorageError::Aborted(detail)
        }
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57") => {
            StorageError::Unavailable(detail)
        }
        Some(_) => StorageError::Io(detail),
        // No SQLSTATE: the connection failed or closed.
        None => StorageError::Unavailable(detail),
    }
}

/// No connection could be had from the pool.
pub fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    StorageError::Unavailable(Detail::caused_by(
        format!("no PostgreSQL connection: {e}"),
        e,
    ))
}
