//! Why [`decode`](super::decode) refuses a frame.

use crate::id::InvalidDocumentId;

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
    #[error("unknown message type {}", super::untrusted(.0))]
    UnknownType(String),
    #[error("field `{field}` holds {len} bytes; at most {max} are allowed")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("field `documentId`: {0}")]
    BadDocumentId(#[from] InvalidDocumentId),
}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(e: minicbor::decode::Error) -> Self {
        DecodeError::Cbor(e.to_string())
    }
}
