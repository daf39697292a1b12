//! automerge-repo wire messages: one CBOR map per binary WebSocket frame.
//!
//! TODO(helper): implement encode/decode.
