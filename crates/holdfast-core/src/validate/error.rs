//! Why a change chunk was refused: the error every chunk check returns
//! (`chunk`, `rules`, `ops`), in a file of its own so that those checks can
//! share it without importing each other.

use super::leb::ReadError;

/// Why a chunk was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("not a chunk (bad magic bytes)")]
    BadMagic,
    #[error("unknown chunk type {0}")]
    UnknownType(u8),
    #[error("bundle chunks are not accepted from peers")]
    Bundle,
    /// automerge sends a whole document only to a peer that advertised v2
    /// sync messages; holdfast never does (see `Doc::generate`).
    #[error("document chunks are not accepted from peers (v2 sync messages were not advertised)")]
    Document,
    #[error("checksum {declared} does not match the content ({computed})")]
    Checksum { declared: String, computed: String },
    #[error("DEFLATE data is invalid: {0}")]
    Inflate(String),
    #[error("inflates beyond the message's budget of {limit} bytes")]
    InflateTooLarge { limit: usize },
    #[error("column metadata: {0}")]
    Columns(String),
    #[error("column {spec:#x} holds {len} values; the limit is {max}")]
    ColumnTooLong { spec: u32, len: u64, max: u64 },
    #[error("{ops} new operations in {len} uncompressed bytes; the limit is {max}")]
    TooManyOps { ops: u64, len: usize, max: u64 },
    #[error("the message's changes delete {count} values; the limit is {max}")]
    TooManyDeletes { count: u64, max: u64 },
    #[error("inconsistent columns: {0}")]
    Rule(String),
    #[error("automerge cannot read it: {0}")]
    Automerge(String),
    #[error(
        "change {hash} is not encoded as automerge encodes it (it would be stored as {canonical})"
    )]
    NotCanonical { hash: String, canonical: String },
}
