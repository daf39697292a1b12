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
//!
//! Files: `message` (the types), `encoder`, and `decoder` (a frame's fields
//! into a [`Message`]) on top of `cbor` (a bounded CBOR reader), with
//! `limits` and `error` (what the decoder bounds and refuses).

mod cbor;
mod decoder;
mod encoder;
mod error;
mod limits;
mod message;
mod untrusted;

pub use decoder::decode;
pub use encoder::encode;
pub use error::DecodeError;
pub use limits::{DecodeLimits, DEFAULT_MAX_FRAME_SIZE, MAX_ID_LEN, MAX_ITEMS, MAX_NESTING};
pub use message::{Message, PeerId, PeerMetadata};
pub use untrusted::{untrusted, Untrusted};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_frames;
