//! The storage model: a small key/value store with atomic commits and prefix
//! ranges, the key layout (automerge-repo compatible), and record verification.
//!
//! Invariants:
//! - A [`Commit`] is applied atomically or not at all, and commits are applied
//!   in the order they are issued. The core never has more than one commit in
//!   flight, so adapters need not reorder anything.
//! - Every chunk record (`snapshot`, `incremental`) is content addressed: the
//!   last key component is the lowercase hex SHA-256 of the value. A record
//!   whose bytes do not hash to its key is corrupt and is quarantined, never
//!   loaded. (automerge-repo names snapshots by a hash of their heads instead;
//!   such a record is accepted when it loads on its own and its heads hash to
//!   its key.)

use std::fmt;
use std::sync::Arc;

use automerge::{Automerge, ChangeHash};
use sha2::{Digest, Sha256};

use crate::error::ErrorKind;
use crate::id::DocumentId;

/// A storage key: a short array of strings, compared component-wise.
///
/// Layout, per document (`<id>` is the bs58check document id):
/// - `[<id>, "snapshot", <sha256 hex>]`: a compacted document (`Automerge::save`)
/// - `[<id>, "incremental", <sha256 hex>]`: one or more change chunks
/// - `[<id>, "sync-state", <storageId>]`: a peer's sync state (reserved)
/// - `[<id>, "quarantine", <kind>, <hash>]`: a record that failed verification,
///   moved aside on load so that it is kept for inspection but never loaded.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey(pub Vec<String>);

impl StorageKey {
    pub fn new<I, S>(parts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(parts.into_iter().map(Into::into).collect())
    }

    /// Every key of one document starts with this prefix.
    pub fn doc_prefix(doc: &DocumentId) -> Self {
        Self(vec![id_str(doc)])
    }

    /// Whether `self` starts with every component of `prefix`.
    pub fn starts_with(&self, prefix: &StorageKey) -> bool {
        self.0.len() >= prefix.0.len() && self.0.iter().zip(&prefix.0).all(|(a, b)| a == b)
    }

    pub fn chunk(doc: &DocumentId, kind: ChunkKind, bytes: &[u8]) -> Self {
        Self(vec![
            id_str(doc),
            kind.as_str().to_string(),
            sha256_hex(bytes),
        ])
    }

    /// Where a corrupt record is moved to.
    pub fn quarantine_of(&self) -> Self {
        let mut parts = Vec::with_capacity(self.0.len() + 1);
        parts.push(self.0.first().cloned().unwrap_or_default());
        parts.push("quarantine".to_string());
        parts.extend(self.0.iter().skip(1).cloned());
        Self(parts)
    }

    /// The record kind of a key under a document prefix.
    pub fn kind(&self) -> RecordKind {
        match self.0.get(1).map(String::as_str) {
            Some("snapshot") if self.0.len() == 3 => RecordKind::Chunk(ChunkKind::Snapshot),
            Some("incremental") if self.0.len() == 3 => RecordKind::Chunk(ChunkKind::Incremental),
            Some("sync-state") => RecordKind::SyncState,
            Some("quarantine") => RecordKind::Quarantine,
            _ => RecordKind::Unknown,
        }
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    Snapshot,
    Incremental,
}

impl ChunkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChunkKind::Snapshot => "snapshot",
            ChunkKind::Incremental => "incremental",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Chunk(ChunkKind),
    SyncState,
    Quarantine,
    Unknown,
}

/// One atomic write: every put and delete lands together or none does.
/// Deletes (single keys, then whole prefixes) apply before puts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    pub puts: Vec<(StorageKey, Vec<u8>)>,
    pub deletes: Vec<StorageKey>,
    /// Delete every record whose key starts with one of these prefixes
    /// (deleting a document, including records other tabs wrote).
    pub delete_prefixes: Vec<StorageKey>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.delete_prefixes.is_empty()
    }
}

/// Why a storage operation failed. Every adapter maps its native failures
/// onto these kinds ([`StorageError::kind`] gives the JS name); the
/// [`Detail`] carries the adapter's message and the native error it came
/// from ([`std::error::Error::source`]: an `io::Error`, IndexedDB's
/// `DOMException`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageError {
    /// The browser quota or the disk is full.
    QuotaExceeded(Detail),
    /// The store cannot be reached: closed, deleted, blocked, or not opened.
    Unavailable(Detail),
    /// The transaction was aborted before it committed.
    Aborted(Detail),
    /// A read returned bytes that fail verification.
    Corrupt { key: StorageKey, detail: String },
    /// An I/O error from the operating system (the server's log).
    Io(Detail),
}

impl StorageError {
    /// The kind in the error table.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            StorageError::Unavailable(_) => ErrorKind::StorageUnavailable,
            StorageError::Aborted(_) => ErrorKind::StorageAborted,
            StorageError::Corrupt { .. } => ErrorKind::StorageCorrupt,
            StorageError::Io(_) => ErrorKind::StorageIo,
        }
    }

    /// A stable name for the error kind, used as the JS `Error.name`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The adapter's detail (`None` for [`StorageError::Corrupt`], whose
    /// detail is a verification failure, not a native error).
    pub fn detail(&self) -> Option<&Detail> {
        match self {
            StorageError::QuotaExceeded(d)
            | StorageError::Unavailable(d)
            | StorageError::Aborted(d)
            | StorageError::Io(d) => Some(d),
            StorageError::Corrupt { .. } => None,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::QuotaExceeded(d) => write!(f, "storage quota exceeded: {d}"),
            StorageError::Unavailable(d) => write!(f, "storage unavailable: {d}"),
            StorageError::Aborted(d) => write!(f, "storage transaction aborted: {d}"),
            StorageError::Corrupt { key, detail } => write!(f, "corrupt record {key}: {detail}"),
            StorageError::Io(d) => write!(f, "storage I/O error: {d}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.detail().and_then(|d| d.cause())
    }
}

/// An adapter's message about a failure, and the native error behind it.
/// Compares (and prints) by message only; reads as a `&str`.
#[derive(Clone, Debug)]
pub struct Detail {
    message: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Detail {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: None,
        }
    }

    /// `message`, caused by `cause` (kept as the error's source).
    pub fn caused_by(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same cause, told differently.
    pub fn reworded(self, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: self.cause,
        }
    }

    /// The native error this came from.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl std::ops::Deref for Detail {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Detail {}

impl From<String> for Detail {
    fn from(message: String) -> Self {
        Detail::new(message)
    }
}

impl From<&str> for Detail {
    fn from(message: &str) -> Self {
        Detail::new(message)
    }
}

/// Evidence that the store lost records it had once made durable: the
/// browser discarded the database (IndexedDB's `dataLoss`), or it was
/// created anew although this origin had used it before. Everything holdfast
/// reported durable in the database before `detected_at` may be gone; a
/// document absent from storage may have existed, so the repo never says
/// "never existed" about it (see [`crate::repo::FindError::Lost`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageReset {
    pub reason: ResetReason,
    /// When it was detected, in milliseconds since the Unix epoch.
    pub detected_at: u64,
    /// What the store or the browser said.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The browser reported it discarded the data (`dataLoss: "total"`).
    DataLoss,
    /// The database was created anew (from version 0, or with a different
    /// identity) although this origin had opened it before.
    Recreated,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::DataLoss => "data-loss",
            ResetReason::Recreated => "recreated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "data-loss" => Some(ResetReason::DataLoss),
            "recreated" => Some(ResetReason::Recreated),
            _ => None,
        }
    }
}

impl fmt::Display for StorageReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.reason.as_str())
    }
}

/// The storage interface adapters implement (IndexedDB, the server's log,
/// memory). Futures are not `Send`: browser futures cannot be.
#[allow(async_fn_in_trait)]
pub trait Storage {
    async fn get(&self, key: &StorageKey) -> Result<Option<Vec<u8>>, StorageError>;
    /// Every record whose key starts with `prefix`, in key order.
    async fn range(&self, prefix: &StorageKey) -> Result<Vec<(StorageKey, Vec<u8>)>, StorageError>;
    /// Apply `commit` atomically; resolve only once it is durable.
    async fn commit(&self, commit: Commit) -> Result<(), StorageError>;
    /// Whether the store holds no record at all, if that is cheap to know
    /// (`false`, the default, means "not known to be empty"). A repo opened
    /// on an empty store keeps a complete index
    /// ([`crate::repo::Repo::store_started_empty`]).
    async fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(false)
    }
}

/// What another writer of a shared store (another server node on one
/// database) says it committed: a hint, never the only source of truth
/// (see [`crate::repo::Repo::refresh`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHint {
    /// It committed records of these documents.
    Changed(Vec<DocumentId>),
    /// Hints may have been missed (the channel was lost, or it is time for
    /// the periodic check): read every document held again.
    Unknown,
}

/// The document a key belongs to (its first component), unless it is one
/// of holdfast's own records.
pub fn key_doc(key: &StorageKey) -> Option<DocumentId> {
    key.0.first()?.parse().ok()
}

/// The document id's text form (bs58check), the first key component.
pub fn id_str(doc: &DocumentId) -> String {
    bs58::encode(doc.0).with_check().into_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// automerge-repo's name for a snapshot: SHA-256 over the concatenated hex
/// strings of the heads.
pub fn automerge_repo_heads_hash(heads: &[ChangeHash]) -> String {
    let mut hasher = Sha256::new();
    for h in heads {
        hasher.update(h.to_string().as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Check a chunk record against its key. `Ok(())` means its bytes may be
/// loaded; `Err` says why not.
pub fn verify_chunk(key: &StorageKey, kind: ChunkKind, value: &[u8]) -> Result<(), String> {
    let Some(named) = key.0.get(2) else {
        return Err("key has no hash component".into());
    };
    let actual = sha256_hex(value);
    if &actual == named {
        return Ok(());
    }
    if kind == ChunkKind::Snapshot {
        // automerge-repo's snapshot naming: verify by loading it alone.
        if let Ok(doc) = Automerge::load(value) {
            if &automerge_repo_heads_hash(&doc.get_heads()) == named {
                return Ok(());
            }
        }
    }
    Err(format!("content hash {actual} does not match the key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocumentId {
        DocumentId([7; 16])
    }

    #[test]
    fn chunk_keys_are_content_addressed_and_verified() {
        let bytes = b"some chunk".to_vec();
        let key = StorageKey::chunk(&doc(), ChunkKind::Incremental, &bytes);
        assert_eq!(key.kind(), RecordKind::Chunk(ChunkKind::Incremental));
        assert!(verify_chunk(&key, ChunkKind::Incremental, &bytes).is_ok());
        let mut torn = bytes.clone();
        torn.pop();
        assert!(verify_chunk(&key, ChunkKind::Incremental, &torn).is_err());
    }

    #[test]
    fn automerge_repo_snapshot_names_are_accepted() {
        use automerge::transaction::Transactable;
        let mut am = Automerge::new();
        am.transact(|tx| tx.put(automerge::ROOT, "a", 1)).unwrap();
        let bytes = am.save();
        let named = automerge_repo_heads_hash(&am.get_heads());
        let key = StorageKey::new([id_str(&doc()), "snapshot".into(), named]);
        assert!(verify_chunk(&key, ChunkKind::Snapshot, &bytes).is_ok());
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(verify_chunk(&key, ChunkKind::Snapshot, &flipped).is_err());
    }

    #[test]
    fn quarantine_keys_stay_under_the_document() {
        let key = StorageKey::chunk(&doc(), ChunkKind::Snapshot, b"x");
        let q = key.quarantine_of();
        assert!(q.starts_with(&StorageKey::doc_prefix(&doc())));
        assert_eq!(q.kind(), RecordKind::Quarantine);
        assert_eq!(q.0[2], "snapshot");
    }
}
