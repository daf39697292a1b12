//! Recorded edits, applied to an Automerge transaction.
//!
//! The JS wrapper records what an application's `change` callback does to a
//! draft of the document as a list of [`Op`]s (see `src/ops/` for the
//! JSON shape) and the repo applies them here, inside one transaction. This
//! part is target-independent so that it is tested natively; decoding the
//! ops from a `JsValue` lives in `web::ops`.
//!
//! Rules:
//! - a `path` leads from the root through map keys ([`Seg::Key`]) and list
//!   indices ([`Seg::Index`]) to an existing map or list (or, for `splice`
//!   and `mark`, a text object);
//! - text positions and lengths (`splice`, `mark`) count UTF-16 code units, as JS
//!   strings do, whatever the document's own text encoding is; a position
//!   that falls inside a surrogate pair is rejected;
//! - nothing panics on bad input: every problem is an [`OpError`], and the
//!   caller rolls the transaction back.
//!
//! Files: `path` (following paths, converting text positions) and `write`
//! ([`apply`]: each op, and the values it writes).

mod path;
mod write;

pub use automerge::marks::ExpandMark;
pub use path::resolve;
pub use write::apply;

/// One step of a path: a map key or a list index.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => write!(f, "{k:?}"),
            Seg::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A value to write. Objects are created fresh (a put of a map replaces the
/// old map with a new one, as in automerge JS).
#[derive(Debug, Clone, PartialEq)]
pub enum NewValue {
    Map(Vec<(String, NewValue)>),
    List(Vec<NewValue>),
    Text(String),
    Counter(i64),
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    Null,
    Bytes(Vec<u8>),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

/// One recorded edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Set a map key, or overwrite an existing list element.
    Put {
        path: Vec<Seg>,
        key: Seg,
        value: NewValue,
    },
    /// Delete a map key, or `count` list elements starting at an index
    /// (`count` is ignored for maps).
    Del {
        path: Vec<Seg>,
        key: Seg,
        count: usize,
    },
    /// Insert values into a list at `index` (`0..=len`).
    Insert {
        path: Vec<Seg>,
        index: usize,
        values: Vec<NewValue>,
    },
    /// Text splice at `path` (the text object itself): delete `del` UTF-16
    /// units at `index`, then insert `text` there.
    Splice {
        path: Vec<Seg>,
        index: usize,
        del: usize,
        text: String,
    },
    /// Add `by` (may be negative) to the counter at `key`.
    Inc { path: Vec<Seg>, key: Seg, by: i64 },
    /// Mark `start..end` of the text at `path` with `name` = `value` (a
    /// scalar); `None` removes `name` there (automerge's `unmark`).
    /// `expand`: whether text inserted at either end takes the mark.
    Mark {
        path: Vec<Seg>,
        start: usize,
        end: usize,
        name: String,
        value: Option<NewValue>,
        expand: ExpandMark,
    },
}

/// Why a recorded edit could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    #[error("malformed op: {0}")]
    BadOp(String),
    #[error("path not found: {0}")]
    PathNotFound(String),
    #[error("{path} is not a {expected}")]
    WrongType {
        path: String,
        expected: &'static str,
    },
    #[error("index {index} out of range at {path} (length {len})")]
    IndexOutOfRange {
        path: String,
        index: usize,
        len: usize,
    },
    #[error("automerge rejected the edit: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for OpError {
    fn from(e: automerge::AutomergeError) -> Self {
        OpError::Automerge(e.to_string())
    }
}

#[cfg(test)]
mod tests;
