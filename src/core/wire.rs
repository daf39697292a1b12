//! automerge-repo wire messages: one CBOR map per binary WebSocket frame.
//!
//! TODO(helper): implement encode/decode, errors, tests.

use crate::core::id::DocumentId;

/// A peer's id as sent in `senderId` / `targetId`.
pub type PeerId = String;

/// `peerMetadata` of `join` and `peer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    pub storage_id: Option<String>,
    pub is_ephemeral: bool,
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
}

// --- temporary stubs on main until the codec branch lands (replaced on merge) ---
#[derive(Clone, Debug)]
pub struct DecodeLimits {
    pub max_frame_size: usize,
}
impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_frame_size: 64 << 20,
        }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("decode error")]
pub struct DecodeError;
pub fn encode(_msg: &Message) -> Vec<u8> {
    unimplemented!()
}
pub fn decode(_frame: &[u8], _limits: &DecodeLimits) -> Result<Message, DecodeError> {
    unimplemented!()
}
