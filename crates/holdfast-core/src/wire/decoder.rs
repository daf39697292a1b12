//! Decoding a frame into a [`Message`]: the known fields of the top-level
//! map, read with the bounded CBOR reader ([`super::cbor`]), and checked
//! for the types automerge-repo sends.

use minicbor::data::Type;
use minicbor::Decoder;

use super::cbor::{for_each_item, read_text, read_val, skip_val, Val, TAG_SELF_DESCRIBED};
use super::error::DecodeError;
use super::limits::{DecodeLimits, MAX_ID_LEN, MAX_ITEMS};
use super::message::{Message, PeerMetadata};
use crate::id::DocumentId;

/// The top-level keys holdfast reads; every other key is skipped.
const KNOWN_KEYS: &[&str] = &[
    "type",
    "senderId",
    "targetId",
    "documentId",
    "data",
    "peerMetadata",
    "supportedProtocolVersions",
    "selectedProtocolVersion",
    "message",
    "count",
    "sessionId",
    "add",
    "remove",
    "newHeads",
    "since",
    "upto",
];

/// The known fields of one frame; a repeated key keeps its last value, as a
/// JS object built by cbor-x does.
#[derive(Default)]
struct Fields(Vec<(&'static str, Val)>);

impl Fields {
    fn insert(&mut self, k: &'static str, v: Val) {
        self.0.retain(|(key, _)| *key != k);
        self.0.push((k, v));
    }

    /// The value of `k`, `None` if missing, `null` or `undefined`.
    fn take(&mut self, k: &'static str) -> Option<Val> {
        let i = self.0.iter().position(|(key, _)| *key == k)?;
        let (_, v) = self.0.swap_remove(i);
        (!v.is_absent()).then_some(v)
    }

    fn req(&mut self, k: &'static str) -> Result<Val, DecodeError> {
        self.take(k).ok_or(DecodeError::MissingField(k))
    }

    /// A required string; every one but an `error`'s `message` is an id
    /// or a type name, at most [`MAX_ID_LEN`] bytes.
    fn req_str(&mut self, k: &'static str) -> Result<String, DecodeError> {
        let s = as_str(self.req(k)?, k)?;
        if k != "message" && s.len() > MAX_ID_LEN {
            return Err(DecodeError::TooLong {
                field: k,
                len: s.len(),
                max: MAX_ID_LEN,
            });
        }
        Ok(s)
    }

    fn req_bytes(&mut self, k: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.req(k)? {
            Val::Bytes(b) => Ok(b),
            _ => Err(wrong(k, "a byte string")),
        }
    }

    /// (Its length is bounded by the id's own parser, which refuses a long
    /// one before decoding it.)
    fn req_doc_id(&mut self) -> Result<DocumentId, DecodeError> {
        Ok(as_str(self.req("documentId")?, "documentId")?.parse()?)
    }

    /// A list of strings; missing / null / undefined is the empty list.
    fn str_list(&mut self, k: &'static str) -> Result<Vec<String>, DecodeError> {
        match self.take(k) {
            None => Ok(Vec::new()),
            Some(v) => as_str_list(v, k),
        }
    }

    fn peer_metadata(&mut self) -> Result<PeerMetadata, DecodeError> {
        const K: &str = "peerMetadata";
        let entries = match self.take(K) {
            None => return Ok(PeerMetadata::default()),
            Some(Val::Map(entries)) => entries,
            Some(_) => return Err(wrong(K, "a map")),
        };
        let mut m = PeerMetadata::default();
        for (k, v) in entries {
            match (k, v) {
                (Val::Text(k), Val::Text(s)) if k == "storageId" => {
                    if s.len() > MAX_ID_LEN {
                        return Err(DecodeError::TooLong {
                            field: "peerMetadata.storageId",
                            len: s.len(),
                            max: MAX_ID_LEN,
                        });
                    }
                    m.storage_id = Some(s)
                }
                (Val::Text(k), Val::Absent) if k == "storageId" => m.storage_id = None,
                (Val::Text(k), _) if k == "storageId" => {
                    return Err(wrong("peerMetadata.storageId", "a string"))
                }
                (Val::Text(k), Val::Bool(b)) if k == "isEphemeral" => m.is_ephemeral = b,
                (Val::Text(k), Val::Absent) if k == "isEphemeral" => m.is_ephemeral = false,
                (Val::Text(k), _) if k == "isEphemeral" => {
                    return Err(wrong("peerMetadata.isEphemeral", "a boolean"))
                }
                // Any other value is a peer that does not speak it.
                (Val::Text(k), v) if k == "holdfast" => {
                    m.holdfast = as_uint(v, "peerMetadata.holdfast").ok()
                }
                // Any other value is no token (the server then refuses).
                (Val::Text(k), Val::Text(t)) if k == "token" => m.token = Some(t),
                _ => {} // unknown metadata key
            }
        }
        Ok(m)
    }

    fn new_heads(&mut self) -> Result<Vec<(String, Vec<String>, u64)>, DecodeError> {
        const K: &str = "newHeads";
        let entries = match self.req(K)? {
            Val::Map(entries) => entries,
            _ => return Err(wrong(K, "a map of storageId to {heads, timestamp}")),
        };
        let mut out: Vec<(String, Vec<String>, u64)> = Vec::new();
        for (k, v) in entries {
            let storage_id = as_str(k, "newHeads key (storageId)")?;
            let Val::Map(inner) = v else {
                return Err(wrong("newHeads.<storageId>", "a map"));
            };
            let mut heads = None;
            let mut timestamp = None;
            for (ik, iv) in inner {
                match ik {
                    Val::Text(ik) if ik == "heads" && !iv.is_absent() => {
                        heads = Some(as_str_list(iv, "newHeads.<storageId>.heads")?)
                    }
                    Val::Text(ik) if ik == "timestamp" && !iv.is_absent() => {
                        timestamp = Some(as_uint(iv, "newHeads.<storageId>.timestamp")?)
                    }
                    _ => {}
                }
            }
            let heads = heads.ok_or(DecodeError::MissingField("newHeads.<storageId>.heads"))?;
            let timestamp =
                timestamp.ok_or(DecodeError::MissingField("newHeads.<storageId>.timestamp"))?;
            // A JS object keeps the last value of a repeated key.
            out.retain(|(s, _, _)| *s != storage_id);
            out.push((storage_id, heads, timestamp));
        }
        Ok(out)
    }
}

fn wrong(field: &'static str, expected: &'static str) -> DecodeError {
    DecodeError::WrongType { field, expected }
}

fn as_str(v: Val, k: &'static str) -> Result<String, DecodeError> {
    match v {
        Val::Text(s) => Ok(s),
        _ => Err(wrong(k, "a string")),
    }
}

fn as_str_list(v: Val, k: &'static str) -> Result<Vec<String>, DecodeError> {
    match v {
        Val::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Val::Text(s) => Ok(s),
                _ => Err(wrong(k, "an array of strings")),
            })
            .collect(),
        _ => Err(wrong(k, "an array of strings")),
    }
}

/// A non-negative integer, written as a CBOR integer or as an integral float
/// (JS numbers; cbor-x writes those above `u32::MAX` as float64).
fn as_uint(v: Val, k: &'static str) -> Result<u64, DecodeError> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    match v {
        Val::Uint(n) => Ok(n),
        Val::Float(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < TWO_POW_64 => {
            Ok(f as u64)
        }
        _ => Err(wrong(k, "a non-negative integer")),
    }
}

/// Decodes one frame.
///
/// Accepts everything automerge-repo 2.5.6 sends (see the module docs);
/// rejects anything else with a [`DecodeError`], never panics.
pub fn decode(frame: &[u8], limits: &DecodeLimits) -> Result<Message, DecodeError> {
    if frame.len() > limits.max_frame_size {
        return Err(DecodeError::FrameTooLarge {
            size: frame.len(),
            max: limits.max_frame_size,
        });
    }
    let mut d = Decoder::new(frame);
    // Self-described CBOR (tag 55799) may wrap the map.
    while d.datatype()? == Type::Tag {
        if d.tag()?.as_u64() != TAG_SELF_DESCRIBED {
            return Err(DecodeError::NotAMap);
        }
    }
    let len = match d.datatype()? {
        Type::Map | Type::MapIndef => d.map()?,
        _ => return Err(DecodeError::NotAMap),
    };
    let mut fields = Fields::default();
    let mut budget = MAX_ITEMS;
    for_each_item(&mut d, len, |d| {
        let key = match d.datatype()? {
            Type::String | Type::StringIndef => Some(read_text(d)?),
            _ => {
                skip_val(d, 2)?;
                None
            }
        };
        match key.and_then(|k| KNOWN_KEYS.iter().find(|known| **known == k)) {
            Some(known) => fields.insert(known, read_val(d, 2, &mut budget)?),
            None => skip_val(d, 2)?,
        }
        Ok(())
    })?;
    let rest = frame.len().saturating_sub(d.position());
    if rest != 0 {
        return Err(DecodeError::TrailingBytes(rest));
    }

    let ty = fields.req_str("type")?;
    let f = &mut fields;
    Ok(match ty.as_str() {
        "join" => Message::Join {
            sender_id: f.req_str("senderId")?,
            peer_metadata: f.peer_metadata()?,
            supported_protocol_versions: f.str_list("supportedProtocolVersions")?,
        },
        "peer" => Message::Peer {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            peer_metadata: f.peer_metadata()?,
            selected_protocol_version: f.req_str("selectedProtocolVersion")?,
        },
        "error" => Message::Error {
            message: f.req_str("message")?,
        },
        "leave" => Message::Leave {
            sender_id: f.req_str("senderId")?,
        },
        "sync" | "request" => Message::Sync {
            request: ty == "request",
            document_id: f.req_doc_id()?,
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            data: f.req_bytes("data")?,
        },
        "doc-unavailable" => Message::DocUnavailable {
            document_id: f.req_doc_id()?,
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
        },
        "ephemeral" => Message::Ephemeral {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            count: as_uint(f.req("count")?, "count")?,
            session_id: f.req_str("sessionId")?,
            document_id: f.req_doc_id()?,
            data: f.req_bytes("data")?,
        },
        "remote-subscription-change" => Message::RemoteSubscriptionChange {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            add: f.str_list("add")?,
            remove: f.str_list("remove")?,
        },
        "remote-heads-changed" => Message::RemoteHeadsChanged {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            document_id: f.req_doc_id()?,
            new_heads: f.new_heads()?,
        },
        "holdfast-resume" => Message::Resume {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            since: match f.take("since") {
                Some(v) => Some(as_uint(v, "since")?),
                None => None,
            },
            held: f.req_bytes("data")?,
        },
        "holdfast-changed" => Message::Changed {
            sender_id: f.req_str("senderId")?,
            target_id: f.req_str("targetId")?,
            upto: as_uint(f.req("upto")?, "upto")?,
            docs: f.req_bytes("data")?,
        },
        _ => return Err(DecodeError::UnknownType(ty)),
    })
}
