//! Values that go into and come out of the [`Repo`](super::Repo) state machine.

use automerge::ChangeHash;

use crate::error::ErrorKind;
use crate::id::DocumentId;
use crate::storage::{Commit, StorageError, StorageKey, StorageReset};
use crate::validate::{PeerLimits, ValidationError};
use crate::wire::{DecodeLimits, PeerId, PeerMetadata};

/// Milliseconds on the caller's clock. The core never reads a clock: every
/// input carries the time it happened at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus_ms(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// A connection, numbered by the adapter that owns the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// A storage operation issued by the core; its completion comes back with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);

/// A local change (or document creation/import) awaiting durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeId(pub u64);

/// A `find` awaiting its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FindId(pub u64);

/// Who opened a connection: we send `join` on outgoing connections and
/// answer `join` with `peer` on incoming ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outgoing,
    Incoming,
}

#[derive(Clone, Debug)]
pub struct RepoConfig {
    pub peer_id: PeerId,
    pub metadata: PeerMetadata,
    /// The actor id for local changes. Must be fresh for every repo instance
    /// (two writers sharing an actor id corrupt each other's history); the
    /// caller draws it at random.
    pub actor_id: [u8; 16],
    /// The session id of our ephemeral messages (random, from the caller).
    pub session_id: String,
    /// Whether documents are offered to peers unasked (a client: true) or
    /// only synced with peers that ask for them (a server: false).
    pub announce: bool,
    /// How long a `find` for a document absent from storage waits for peers
    /// (counted from storage's answer; 0: fail at once, for a repo without
    /// peers).
    pub find_timeout_ms: u64,
    /// Compact a document into a snapshot once it has this many incremental
    /// records,
    pub compact_after: usize,
    /// or once its incremental records hold more bytes than its snapshot and
    /// at least this many (one record of many changes loads far slower than
    /// a snapshot of them: each change is parsed and applied on its own).
    pub compact_bytes: usize,
    pub limits: DecodeLimits,
    /// Bounds on what one peer message may hold or cost (see
    /// [`crate::validate`]).
    pub peer_limits: PeerLimits,
    /// Check every sync message and change chunk from a peer before automerge
    /// sees it (default true). Only a fuzz target measuring what the checks
    /// prevent turns this off: automerge panics or allocates without bound on
    /// crafted input.
    pub validate_peer_input: bool,
}

impl RepoConfig {
    pub fn new(
        peer_id: impl Into<PeerId>,
        actor_id: [u8; 16],
        session_id: impl Into<String>,
    ) -> Self {
        Self {
            peer_id: peer_id.into(),
            metadata: PeerMetadata::default(),
            actor_id,
            session_id: session_id.into(),
            announce: true,
            find_timeout_ms: 30_000,
            compact_after: 64,
            compact_bytes: 16 * 1024,
            limits: DecodeLimits::default(),
            peer_limits: PeerLimits::default(),
            validate_peer_input: true,
        }
    }
}

/// What the core asks its driver to do.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Send one binary frame on a connection.
    Send { conn: ConnId, frame: Vec<u8> },
    /// Close a connection (after sending what was queued before this effect).
    Close { conn: ConnId },
    /// Read every record under `prefix`; answer with [`Repo::load_done`](super::Repo::load_done).
    Load { task: TaskId, prefix: StorageKey },
    /// Apply `commit` atomically and durably; answer with
    /// [`Repo::commit_done`](super::Repo::commit_done).
    Commit { task: TaskId, commit: Commit },
    /// Tell the application something.
    Event(Event),
}

/// Where the changes behind a [`Event::DocChanged`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeSource {
    Local,
    Remote,
    /// Local and remote changes became durable in the same commit.
    Both,
}

/// Why a `find` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FindError {
    /// Not in storage, and no peer had it before the timeout or every peer
    /// said it was unavailable.
    Unavailable,
    /// Like `Unavailable`, but the local store was reset (see
    /// [`StorageReset`]): the document may have been stored here before and
    /// lost with the database, so it must not be reported as never existing.
    Lost(StorageReset),
    /// The document was deleted while the find waited.
    Deleted,
    Storage(StorageError),
}

impl FindError {
    /// The kind in the error table.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FindError::Unavailable => ErrorKind::DocumentUnavailable,
            FindError::Lost(_) => ErrorKind::DocumentLost,
            FindError::Deleted => ErrorKind::DocumentDeleted,
            FindError::Storage(e) => e.kind(),
        }
    }
}

/// Why a connection was closed by us.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("message before the handshake completed")]
    NotJoined,
    #[error("unsupported protocol versions {0:?}; this peer speaks \"1\"")]
    UnsupportedVersion(Vec<String>),
    #[error("senderId {got:?} does not match the peer's id {expected:?}")]
    WrongSender { expected: String, got: String },
    #[error("targetId {0:?} is not this peer")]
    WrongTarget(String),
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    #[error("invalid automerge sync message: {0}")]
    BadSyncMessage(String),
    #[error("the peer reported an error: {0}")]
    Remote(String),
    /// A sync message failed validation; nothing of it was applied or stored.
    #[error("document {doc}: sync message refused: {error}")]
    Refused { doc: String, error: ValidationError },
    /// Processing a message for `doc` panicked (a bug in automerge or in
    /// holdfast that validation did not catch). The message was discarded and
    /// the document returned to its durable state; other documents and
    /// connections were not affected.
    #[error("document {doc}: internal error while processing a sync message; it was discarded")]
    Internal { doc: String },
}

/// Events for the application. Everything here that reports document state
/// reports durable state.
#[derive(Clone, Debug)]
pub enum Event {
    /// The commit holding a local change completed. `heads` are durable.
    ChangeDurable {
        change: ChangeId,
        doc: DocumentId,
        heads: Vec<ChangeHash>,
    },
    /// The commit holding a local change failed, or the change was made on a
    /// document whose earlier pending change failed. The working document has
    /// returned to its last durable state.
    ChangeFailed {
        change: ChangeId,
        doc: DocumentId,
        error: StorageError,
    },
    /// The durable state of a document advanced from `before` to `after`.
    DocChanged {
        doc: DocumentId,
        before: Vec<ChangeHash>,
        after: Vec<ChangeHash>,
        source: ChangeSource,
    },
    /// A `find` succeeded: the document has content (in storage, or durable
    /// from a peer, or created here).
    FindReady { find: FindId, doc: DocumentId },
    FindFailed {
        find: FindId,
        doc: DocumentId,
        error: FindError,
    },
    /// A commit failed; every listed document was returned to its last
    /// durable state and its peers' sync states were reset.
    StorageError {
        docs: Vec<DocumentId>,
        error: StorageError,
    },
    /// Records of `doc` failed verification and were set aside; the document
    /// loaded from the rest.
    StorageRepaired {
        doc: DocumentId,
        quarantined: Vec<StorageKey>,
    },
    PeerConnected {
        conn: ConnId,
        peer_id: PeerId,
        metadata: PeerMetadata,
    },
    PeerDisconnected {
        conn: ConnId,
        peer_id: Option<PeerId>,
    },
    /// We closed a connection because of what it sent.
    ConnectionError { conn: ConnId, error: ProtocolError },
    Ephemeral {
        doc: DocumentId,
        sender: PeerId,
        data: Vec<u8>,
    },
    /// Whether peer `conn`'s advertised heads cover our working `heads` of
    /// `doc` changed. Against a holdfast server (which advertises only
    /// durable heads) `covered` means: everything here is durable there.
    SyncStatus {
        doc: DocumentId,
        conn: ConnId,
        covered: bool,
        heads: Vec<ChangeHash>,
    },
    /// A `delete` completed: the document's records are gone from storage.
    DocDeleted { doc: DocumentId },
}

/// Why a local operation was refused before anything happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("document {0} is not open in this repo (find it first)")]
    NotFound(String),
    #[error("document {0} is still loading")]
    Loading(String),
    #[error("document {0} is being deleted")]
    Deleting(String),
    #[error("document {0} already exists")]
    AlreadyExists(String),
    #[error("the change function failed: {0}")]
    Rejected(String),
    #[error("invalid document bytes: {0}")]
    InvalidDocument(String),
}

impl ChangeError {
    /// The kind in the error table.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChangeError::NotFound(_) => ErrorKind::DocumentUnavailable,
            ChangeError::Loading(_) => ErrorKind::DocumentLoading,
            ChangeError::Deleting(_) => ErrorKind::DocumentDeleted,
            ChangeError::AlreadyExists(_) => ErrorKind::DocumentExists,
            ChangeError::Rejected(_) => ErrorKind::ChangeRejected,
            ChangeError::InvalidDocument(_) => ErrorKind::InvalidDocument,
        }
    }
}
