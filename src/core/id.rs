//! Document ids (16 random bytes, bs58check) and `automerge:` URLs.
//!
//! TODO(helper): implement parsing/encoding and tests.

/// A document id: 16 bytes chosen at random by the creator. Its text form is
/// bs58check (Bitcoin alphabet plus a 4-byte double-SHA-256 checksum), as in
/// automerge-repo. The core never generates randomness: callers pass the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentId(pub [u8; 16]);

impl std::fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DocumentId({})",
            bs58::encode(self.0).with_check().into_string()
        )
    }
}
