//! Encoding a [`Message`] as the CBOR map automerge-repo reads.

use minicbor::Encoder;

use super::message::{Message, PeerMetadata};
use crate::id::DocumentId;

/// The largest integer a JS number holds exactly.
pub(super) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Encodes `msg` as one CBOR map, the payload of one binary WebSocket frame.
///
/// Conventions (all decoded by automerge-repo to what it sends itself):
/// absent optional fields are omitted rather than written as `undefined`;
/// an empty `supportedProtocolVersions`, `add` or `remove` is omitted (for
/// `join` automerge-repo's server then assumes protocol "1"); integers above
/// `u32::MAX` up to 2^53 - 1 are written as float64, as cbor-x does.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    if let Err(err) = encode_into(msg, &mut e) {
        // minicbor's primitive encoders only fail when the writer fails, and
        // Vec<u8>'s writer error type is `Infallible`: not reachable.
        unreachable!("encoding into a Vec<u8> cannot fail: {err}");
    }
    e.into_writer()
}

/// The error type of the encoding helpers; never produced (see [`encode`]).
type EncodeError = minicbor::encode::Error<std::convert::Infallible>;

type Enc = Encoder<Vec<u8>>;

fn js_uint(e: &mut Enc, n: u64) -> Result<(), EncodeError> {
    if n > u64::from(u32::MAX) && n <= MAX_SAFE_INTEGER {
        // Exact: n < 2^53.
        e.f64(n as f64)?;
    } else {
        e.u64(n)?;
    }
    Ok(())
}

fn kv_str(e: &mut Enc, k: &str, v: &str) -> Result<(), EncodeError> {
    e.str(k)?.str(v)?;
    Ok(())
}

fn kv_doc_id(e: &mut Enc, id: &DocumentId) -> Result<(), EncodeError> {
    e.str("documentId")?.str(&id.to_string())?;
    Ok(())
}

fn kv_str_array(e: &mut Enc, k: &str, v: &[String]) -> Result<(), EncodeError> {
    e.str(k)?.array(v.len() as u64)?;
    for s in v {
        e.str(s)?;
    }
    Ok(())
}

fn peer_metadata(e: &mut Enc, m: &PeerMetadata) -> Result<(), EncodeError> {
    e.str("peerMetadata")?;
    e.map(
        1 + u64::from(m.storage_id.is_some())
            + u64::from(m.holdfast.is_some())
            + u64::from(m.token.is_some()),
    )?;
    if let Some(s) = &m.storage_id {
        kv_str(e, "storageId", s)?;
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
    if let Some(t) = &m.token {
        kv_str(e, "token", t)?;
    }
    if let Some(v) = m.holdfast {
        e.str("holdfast")?;
        js_uint(e, v)?;
    }
    Ok(())
}

fn encode_into(msg: &Message, e: &mut Enc) -> Result<(), EncodeError> {
    let ty = msg.type_name();
    match msg {
        Message::Join {
            sender_id,
            peer_metadata: m,
            supported_protocol_versions: v,
        } => {
            e.map(if v.is_empty() { 3 } else { 4 })?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            peer_metadata(e, m)?;
            if !v.is_empty() {
                kv_str_array(e, "supportedProtocolVersions", v)?;
            }
        }
        Message::Peer {
            sender_id,
            target_id,
            peer_metadata: m,
            selected_protocol_version,
        } => {
            e.map(5)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            peer_metadata(e, m)?;
            kv_str(e, "selectedProtocolVersion", selected_protocol_version)?;
        }
        Message::Error { message } => {
            e.map(2)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "message", message)?;
        }
        Message::Leave { sender_id } => {
            e.map(2)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
        }
        Message::Sync {
            request: _,
            document_id,
            sender_id,
            target_id,
            data,
        } => {
            e.map(5)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            kv_doc_id(e, document_id)?;
            e.str("data")?.bytes(data)?;
        }
        Message::DocUnavailable {
            document_id,
            sender_id,
            target_id,
        } => {
            e.map(4)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            kv_doc_id(e, document_id)?;
        }
        Message::Ephemeral {
            sender_id,
            target_id,
            count,
            session_id,
            document_id,
            data,
        } => {
            e.map(7)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            e.str("count")?;
            js_uint(e, *count)?;
            kv_str(e, "sessionId", session_id)?;
            kv_doc_id(e, document_id)?;
            e.str("data")?.bytes(data)?;
        }
        Message::RemoteSubscriptionChange {
            sender_id,
            target_id,
            add,
            remove,
        } => {
            let n = 3 + u64::from(!add.is_empty()) + u64::from(!remove.is_empty());
            e.map(n)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            if !add.is_empty() {
                kv_str_array(e, "add", add)?;
            }
            if !remove.is_empty() {
                kv_str_array(e, "remove", remove)?;
            }
        }
        Message::RemoteHeadsChanged {
            sender_id,
            target_id,
            document_id,
            new_heads,
        } => {
            e.map(5)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            kv_doc_id(e, document_id)?;
            e.str("newHeads")?.map(new_heads.len() as u64)?;
            for (storage_id, heads, timestamp) in new_heads {
                e.str(storage_id)?.map(2)?;
                kv_str_array(e, "heads", heads)?;
                e.str("timestamp")?;
                js_uint(e, *timestamp)?;
            }
        }
        Message::Resume {
            sender_id,
            target_id,
            since,
            held,
        } => {
            e.map(4 + u64::from(since.is_some()))?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            if let Some(since) = since {
                e.str("since")?;
                js_uint(e, *since)?;
            }
            e.str("data")?.bytes(held)?;
        }
        Message::Changed {
            sender_id,
            target_id,
            upto,
            docs,
        } => {
            e.map(5)?;
            kv_str(e, "type", ty)?;
            kv_str(e, "senderId", sender_id)?;
            kv_str(e, "targetId", target_id)?;
            e.str("upto")?;
            js_uint(e, *upto)?;
            e.str("data")?.bytes(docs)?;
        }
    }
    Ok(())
}
