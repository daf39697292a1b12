//! automerge-repo wire messages: one CBOR map per binary WebSocket frame.
//!
//! Key names and value types follow automerge-repo 2.5.6
//! (`@automerge/automerge-repo` `src/network/messages.ts` and
//! `@automerge/automerge-repo-network-websocket` `src/messages.ts`). On the wire
//! JS uses cbor-x (`new Encoder({ tagUint8Array: false, useRecords: false })`),
//! which writes:
//!
//! - every map header with a 16-bit length (`0xb9 0x00 0x04`), i.e. non-minimal;
//! - absent optional fields as CBOR `undefined` (`0xf7`), e.g.
//!   `peerMetadata.storageId` of a peer without storage;
//! - integers above `u32::MAX` (timestamps from `Date.now()`) as float64;
//! - `Uint8Array`s as plain byte strings (no typed-array tag).
//!
//! [`decode`] accepts all of that and more (any length encodings, indefinite
//! lengths, `null`, floats for integers, tag 64 around byte strings, unknown
//! keys, any key order). [`encode`] writes minimal CBOR that cbor-x decodes to
//! exactly the objects automerge-repo builds; like cbor-x it writes integers
//! above `u32::MAX` (and up to 2^53) as float64, because cbor-x's default
//! decoder would turn a CBOR uint64 into a JS `BigInt`.
//!
//! Fields automerge-repo sends that [`Message`] does not model are ignored on
//! decode: `senderId` / `targetId` of `error` (the JS client only reads
//! `message`).

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::id::{DocumentId, InvalidDocumentId};

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
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

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
    e.map(if m.storage_id.is_some() { 2 } else { 1 })?;
    if let Some(s) = &m.storage_id {
        kv_str(e, "storageId", s)?;
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
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
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// The default [`DecodeLimits::max_frame_size`]: 100 MiB, the default
/// `maxPayload` of the `ws` server automerge-repo's Node adapter runs on, so
/// that any frame an automerge-repo server accepts, holdfast accepts too (a
/// first sync of a large document is one frame).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 * 1024 * 1024;

/// How deeply arrays, maps and tags may nest inside a frame (the frame's own
/// map is depth 1). automerge-repo's messages nest at most 5 deep
/// (`newHeads.<storageId>.heads[i]`); the bound keeps skipping of unknown
/// values from recursing without limit.
pub const MAX_NESTING: usize = 32;

/// How many values (array elements, map keys and values) the fields holdfast
/// reads may hold in one frame. Bounds memory: a decoded value is ~40 bytes
/// while its CBOR can be one byte. Unknown keys are skipped, not counted.
pub const MAX_ITEMS: usize = 1 << 20;

/// Resource limits for [`decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Frames longer than this are rejected before any parsing.
    pub max_frame_size: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Why a frame is not a message holdfast understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { size: usize, max: usize },
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    #[error("values nest deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("known fields hold more than {max} values")]
    TooManyItems { max: usize },
    #[error("frame is not a CBOR map")]
    NotAMap,
    #[error("{0} bytes after the end of the message")]
    TrailingBytes(usize),
    #[error("message has no `{0}` field")]
    MissingField(&'static str),
    #[error("field `{field}` should be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("field `documentId`: {0}")]
    BadDocumentId(#[from] InvalidDocumentId),
}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(e: minicbor::decode::Error) -> Self {
        DecodeError::Cbor(e.to_string())
    }
}

/// A decoded CBOR value of a field holdfast reads.
#[derive(Debug)]
enum Val {
    Uint(u64),
    NegInt,
    Float(f64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Val>),
    Map(Vec<(Val, Val)>),
    Bool(bool),
    /// `null` or `undefined`: treated as an absent field.
    Absent,
    /// Anything else (simple values, unknown tags): only ever a type error.
    Other,
}

impl Val {
    fn is_absent(&self) -> bool {
        matches!(self, Val::Absent)
    }
}

/// Tag cbor-x uses for a `Uint8Array` when `tagUint8Array` is on (RFC 8746).
const TAG_UINT8_ARRAY: u64 = 64;
/// RFC 8949 self-described CBOR: a no-op wrapper.
const TAG_SELF_DESCRIBED: u64 = 55799;

fn check_depth(depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_NESTING {
        Err(DecodeError::TooDeep { max: MAX_NESTING })
    } else {
        Ok(())
    }
}

/// Consumes a `break` (0xff) if it is next; used to end indefinite items.
fn at_break(d: &mut Decoder<'_>) -> Result<bool, DecodeError> {
    if d.datatype()? == Type::Break {
        d.set_position(d.position() + 1);
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Calls `item` for each element of an array or each key/value pair of a map
/// (`pairs`) whose header is next, definite or indefinite length.
fn for_each_item<'b>(
    d: &mut Decoder<'b>,
    len: Option<u64>,
    mut item: impl FnMut(&mut Decoder<'b>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match len {
        // Each item consumes at least one byte, so a huge declared length
        // runs into the end of the frame rather than looping for long.
        Some(n) => {
            for _ in 0..n {
                item(d)?;
            }
        }
        None => {
            while !at_break(d)? {
                item(d)?;
            }
        }
    }
    Ok(())
}

fn read_text(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let mut s = String::new();
    for chunk in d.str_iter()? {
        s.push_str(chunk?);
    }
    Ok(s)
}

fn read_bytes(d: &mut Decoder<'_>) -> Result<Vec<u8>, DecodeError> {
    let mut v = Vec::new();
    for chunk in d.bytes_iter()? {
        v.extend_from_slice(chunk?);
    }
    Ok(v)
}

/// Reads any value into a [`Val`]; `budget` counts down [`MAX_ITEMS`].
fn read_val(d: &mut Decoder<'_>, depth: usize, budget: &mut usize) -> Result<Val, DecodeError> {
    check_depth(depth)?;
    *budget = budget
        .checked_sub(1)
        .ok_or(DecodeError::TooManyItems { max: MAX_ITEMS })?;
    Ok(match d.datatype()? {
        Type::Bool => Val::Bool(d.bool()?),
        Type::Null => {
            d.null()?;
            Val::Absent
        }
        Type::Undefined => {
            d.undefined()?;
            Val::Absent
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Val::Uint(d.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            d.int()?;
            Val::NegInt
        }
        Type::F16 | Type::F32 | Type::F64 => Val::Float(d.f64()?),
        Type::Bytes | Type::BytesIndef => Val::Bytes(read_bytes(d)?),
        Type::String | Type::StringIndef => Val::Text(read_text(d)?),
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            let mut items = Vec::new();
            for_each_item(d, len, |d| {
                items.push(read_val(d, depth + 1, budget)?);
                Ok(())
            })?;
            Val::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            let mut entries = Vec::new();
            for_each_item(d, len, |d| {
                let k = read_val(d, depth + 1, budget)?;
                let v = read_val(d, depth + 1, budget)?;
                entries.push((k, v));
                Ok(())
            })?;
            Val::Map(entries)
        }
        Type::Tag => {
            let tag = d.tag()?.as_u64();
            let inner = read_val(d, depth + 1, budget)?;
            match (tag, inner) {
                (TAG_UINT8_ARRAY, b @ Val::Bytes(_)) => b,
                (TAG_SELF_DESCRIBED, v) => v,
                _ => Val::Other,
            }
        }
        Type::Simple => {
            d.simple()?;
            Val::Other
        }
        Type::Break => return Err(DecodeError::Cbor("unexpected break".into())),
        Type::Unknown(b) => {
            return Err(DecodeError::Cbor(format!(
                "reserved initial byte {b:#04x} at {}",
                d.position()
            )))
        }
    })
}

/// Skips any value without keeping it.
fn skip_val(d: &mut Decoder<'_>, depth: usize) -> Result<(), DecodeError> {
    check_depth(depth)?;
    match d.datatype()? {
        Type::Array | Type::ArrayIndef => {
            let len = d.array()?;
            for_each_item(d, len, |d| skip_val(d, depth + 1))
        }
        Type::Map | Type::MapIndef => {
            let len = d.map()?;
            for_each_item(d, len, |d| {
                skip_val(d, depth + 1)?;
                skip_val(d, depth + 1)
            })
        }
        Type::Tag => {
            d.tag()?;
            skip_val(d, depth + 1)
        }
        Type::Bytes | Type::BytesIndef => {
            for chunk in d.bytes_iter()? {
                chunk?;
            }
            Ok(())
        }
        Type::String | Type::StringIndef => {
            for chunk in d.str_iter()? {
                chunk?;
            }
            Ok(())
        }
        Type::Break => Err(DecodeError::Cbor("unexpected break".into())),
        Type::Unknown(b) => Err(DecodeError::Cbor(format!(
            "reserved initial byte {b:#04x} at {}",
            d.position()
        ))),
        // Scalars: minicbor skips them without recursion.
        _ => Ok(d.skip()?),
    }
}

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

    fn req_str(&mut self, k: &'static str) -> Result<String, DecodeError> {
        as_str(self.req(k)?, k)
    }

    fn req_bytes(&mut self, k: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.req(k)? {
            Val::Bytes(b) => Ok(b),
            _ => Err(wrong(k, "a byte string")),
        }
    }

    fn req_doc_id(&mut self) -> Result<DocumentId, DecodeError> {
        Ok(self.req_str("documentId")?.parse()?)
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
                (Val::Text(k), Val::Text(s)) if k == "storageId" => m.storage_id = Some(s),
                (Val::Text(k), Val::Absent) if k == "storageId" => m.storage_id = None,
                (Val::Text(k), _) if k == "storageId" => {
                    return Err(wrong("peerMetadata.storageId", "a string"))
                }
                (Val::Text(k), Val::Bool(b)) if k == "isEphemeral" => m.is_ephemeral = b,
                (Val::Text(k), Val::Absent) if k == "isEphemeral" => m.is_ephemeral = false,
                (Val::Text(k), _) if k == "isEphemeral" => {
                    return Err(wrong("peerMetadata.isEphemeral", "a boolean"))
                }
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
        _ => return Err(DecodeError::UnknownType(ty)),
    })
}

#[cfg(test)]
mod tests;
