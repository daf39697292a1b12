//! The messages automerge-repo 2.5.6 exchanges, as Rust values: what
//! [`encode`](super::encode) writes and [`decode`](super::decode) returns.

use crate::id::DocumentId;

/// A peer's id as sent in `senderId` / `targetId`.
pub type PeerId = String;

/// `peerMetadata` of `join` and `peer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    pub storage_id: Option<String>,
    pub is_ephemeral: bool,
    /// `holdfast`: the version of holdfast's collection exchange the peer
    /// speaks (absent for automerge-repo peers, which ignore the key).
    pub holdfast: Option<u64>,
    /// `token`: a credential for a server with access control (a JWT; see
    /// holdfast-server's `--auth-*`), for clients that cannot put it on
    /// the URL. Only its holder sends it, only to the server.
    pub token: Option<String>,
}

/// Every message type automerge-repo 2.5.6 sends over its WebSocket adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Join {
        sender_id: PeerId,
        peer_metadata: PeerMetadata,
        supported_protocol_versions: Vec<String>,
    },
    Peer {
        sender_id: PeerId,
        target_id: PeerId,
        peer_metadata: PeerMetadata,
        selected_protocol_version: String,
    },
    Error {
        message: String,
    },
    Leave {
        sender_id: PeerId,
    },
    /// `sync` (or `request` when `request` is true: the sender has nothing of the document).
    Sync {
        request: bool,
        document_id: DocumentId,
        sender_id: PeerId,
        target_id: PeerId,
        /// An encoded `automerge::sync::Message`.
        data: Vec<u8>,
    },
    DocUnavailable {
        document_id: DocumentId,
        sender_id: PeerId,
        target_id: PeerId,
    },
    Ephemeral {
        sender_id: PeerId,
        target_id: PeerId,
        count: u64,
        session_id: String,
        document_id: DocumentId,
        /// CBOR of the user's value, opaque to holdfast.
        data: Vec<u8>,
    },
    RemoteSubscriptionChange {
        sender_id: PeerId,
        target_id: PeerId,
        add: Vec<String>,
        remove: Vec<String>,
    },
    RemoteHeadsChanged {
        sender_id: PeerId,
        target_id: PeerId,
        document_id: DocumentId,
        /// storageId -> (heads as bs58check strings, timestamp)
        new_heads: Vec<(String, Vec<String>, u64)>,
    },
    /// `holdfast-resume` (client to server, only between peers that both
    /// advertised `peerMetadata.holdfast`): which documents changed on the
    /// server since sequence number `since` (all, without it), among those
    /// in `held`, a [`crate::collection::HeldFilter`].
    Resume {
        sender_id: PeerId,
        target_id: PeerId,
        since: Option<u64>,
        held: Vec<u8>,
    },
    /// `holdfast-changed` (server to client): the held documents whose
    /// durable heads advanced after the resume's `since` (or, later, live),
    /// with those heads ([`crate::collection::encode_changed`]), and the
    /// server's sequence number they bring the client to.
    Changed {
        sender_id: PeerId,
        target_id: PeerId,
        upto: u64,
        docs: Vec<u8>,
    },
}

impl Message {
    /// The `type` string of this message on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Error { .. } => "error",
            Message::Leave { .. } => "leave",
            Message::Sync { request: false, .. } => "sync",
            Message::Sync { request: true, .. } => "request",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::RemoteSubscriptionChange { .. } => "remote-subscription-change",
            Message::RemoteHeadsChanged { .. } => "remote-heads-changed",
            Message::Resume { .. } => "holdfast-resume",
            Message::Changed { .. } => "holdfast-changed",
        }
    }
}
