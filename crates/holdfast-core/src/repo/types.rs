//! Values that go into and come out of the [`Repo`](super::Repo) state machine.

use std::collections::BTreeSet;

use automerge::ChangeHash;

use crate::error::ErrorKind;
use crate::id::DocumentId;
use crate::storage::{Commit, StorageError, StorageKey, StorageReset};
use crate::validate::{PeerLimits, ValidationError};
use crate::wire::{untrusted, DecodeLimits, PeerId, PeerMetadata};

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
    /// What one connection may make this repo hold or relay (a server's
    /// defence against its clients; unlimited by default).
    pub conn_limits: ConnLimits,
    /// What a connection may do until [`Repo::set_access`](super::Repo::set_access)
    /// says otherwise: [`Access::all`] by default; a server that
    /// authenticates its clients sets [`Access::none`], so that a
    /// connection it did not authorize gets nothing.
    pub default_access: Access,
}

/// Bounds on what one connection may make the repo hold or relay. A server
/// sets them ([`ConnLimits::server`]); 0 means no limit. Each refusal is
/// counted in [`Repo::refused`](super::Repo::refused) under its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Documents one connection may sync at once (`sync`/`request` for one
    /// more is answered with an `error` and the connection is closed).
    pub max_docs_per_conn: usize,
    /// Ephemeral messages one connection may send per second (more are
    /// dropped).
    pub ephemeral_per_sec: u32,
    /// Ephemeral payload bytes one connection may send per second.
    pub ephemeral_bytes_per_sec: usize,
    /// Documents held in memory: past this, documents no peer syncs, no
    /// find waits for and nothing pending touches are evicted, least
    /// recently used first, and loaded again when asked for.
    pub max_loaded_docs: usize,
    /// Documents one connection's messages may bring into memory per second
    /// (loaded, or new and empty), enforced as a tenth per 100 ms window:
    /// past it, [`Repo::read_paused_until`] tells the caller to read
    /// nothing more from it until the next window.
    /// Nothing is refused; a client asking for new ids as fast as it can
    /// gets its share of the server, not all of it.
    ///
    /// [`Repo::read_paused_until`]: super::Repo::read_paused_until
    pub new_docs_per_sec: u32,
}

impl ConnLimits {
    pub const fn unlimited() -> Self {
        Self {
            max_docs_per_conn: 0,
            ephemeral_per_sec: 0,
            ephemeral_bytes_per_sec: 0,
            max_loaded_docs: 0,
            new_docs_per_sec: 0,
        }
    }

    /// A sync server's defaults.
    pub const fn server() -> Self {
        Self {
            max_docs_per_conn: 10_000,
            ephemeral_per_sec: 100,
            ephemeral_bytes_per_sec: 1 << 20,
            max_loaded_docs: 10_000,
            new_docs_per_sec: 2_000,
        }
    }
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self::unlimited()
    }
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
            conn_limits: ConnLimits::unlimited(),
            default_access: Access::all(),
        }
    }
}

/// A set of documents: every one, or those listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    All,
    Docs(BTreeSet<DocumentId>),
}

impl Grant {
    /// No document.
    pub fn none() -> Self {
        Grant::Docs(BTreeSet::new())
    }

    pub fn contains(&self, id: &DocumentId) -> bool {
        match self {
            Grant::All => true,
            Grant::Docs(ids) => ids.contains(id),
        }
    }

    /// Whether `id` is named explicitly (not only covered by `All`).
    pub(super) fn names(&self, id: &DocumentId) -> bool {
        matches!(self, Grant::Docs(ids) if ids.contains(id))
    }

    pub(super) fn add(&mut self, id: DocumentId) {
        if let Grant::Docs(ids) = self {
            ids.insert(id);
        }
    }
}

/// What one connection may do (enforced by `access`; set with
/// [`Repo::set_access`](super::Repo::set_access)).
///
/// - `read`: documents it may sync from us (get changes, heads, ephemeral
///   messages). A write grant implies read: automerge's sync answers every
///   message with the document's heads and changes, so a writer reads.
/// - `write`: documents whose changes we accept from it. `All` covers
///   every document the server holds; a document nobody holds yet needs
///   `create`, or its id named in `write`.
/// - `create`: may create documents nobody holds yet (it then owns them).
/// - `subject`: who it is; owns what it creates (without one, a creation
///   is writable by that connection only, for as long as it lasts).
/// - `expires`: when it is told and closed (on the repo's clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub subject: Option<String>,
    pub read: Grant,
    pub write: Grant,
    pub create: bool,
    pub expires: Option<Timestamp>,
}

impl Access {
    /// Everything: an open server, a browser client.
    pub fn all() -> Self {
        Self {
            subject: None,
            read: Grant::All,
            write: Grant::All,
            create: true,
            expires: None,
        }
    }

    /// Nothing at all.
    pub fn none() -> Self {
        Self {
            subject: None,
            read: Grant::none(),
            write: Grant::none(),
            create: false,
            expires: None,
        }
    }

    /// No check can fail (the fast path).
    pub(super) fn unrestricted(&self) -> bool {
        matches!(self.read, Grant::All)
            && matches!(self.write, Grant::All)
            && self.create
            && self.expires.is_none()
    }
}

impl Default for Access {
    fn default() -> Self {
        Self::all()
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
    /// Another writer of the same store committed them (another browser
    /// tab on the same database); read back by [`Repo::refresh`].
    Storage,
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

/// The first few of a peer's protocol versions, each made safe to show.
fn versions(v: &[String]) -> String {
    let shown: Vec<String> = v.iter().take(4).map(|s| untrusted(s).to_string()).collect();
    match v.len() {
        n if n > 4 => format!("[{}, … ({} more)]", shown.join(", "), n - 4),
        _ => format!("[{}]", shown.join(", ")),
    }
}

/// Why a connection was closed by us.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("message before the handshake completed")]
    NotJoined,
    #[error("unsupported protocol versions {}; this peer speaks \"1\"", versions(.0))]
    UnsupportedVersion(Vec<String>),
    #[error("senderId {} does not match the peer's id {}", untrusted(.got), untrusted(.expected))]
    WrongSender { expected: String, got: String },
    #[error("targetId {} is not this peer", untrusted(.0))]
    WrongTarget(String),
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    #[error("invalid automerge sync message: {0}")]
    BadSyncMessage(String),
    #[error("the peer reported an error: {}", untrusted(.0))]
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
    /// The peer sent messages about more documents than
    /// `ConnLimits::max_docs_per_conn` allows on one connection.
    #[error("this connection syncs {max} documents, the most one connection may")]
    TooManyDocs { max: usize },
    /// Another connection joined with this connection's peer id (a client
    /// that reconnected before its old connection was seen to close).
    #[error("another connection joined with this peer id")]
    Replaced,
    /// The peer sent an ephemeral message claiming another peer's id.
    #[error("ephemeral message with senderId {} from peer {}", untrusted(.got), untrusted(.expected))]
    SpoofedSender { expected: String, got: String },
    /// The connection's access (its token) expired.
    #[error("access token expired")]
    AccessExpired,
    /// A sync message carried changes to a document this connection may not
    /// write (or create). Nothing of it was applied or stored; the
    /// connection stays open (see [`Event::AccessDenied`]).
    #[error("document {doc}: sync message refused: this connection may not write this document; nothing of it was stored")]
    WriteRefused { doc: String },
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
    /// We refused one message of a connection for lack of access (and told
    /// it with an `error`); the connection stays open.
    AccessDenied { conn: ConnId, error: ProtocolError },
    Ephemeral {
        doc: DocumentId,
        sender: PeerId,
        data: Vec<u8>,
    },
    /// Whether peer `conn`'s advertised heads cover our working `heads` of
    /// `doc` changed; reported for outgoing connections only (the servers
    /// this repo dials). Against a holdfast server (which advertises only
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
