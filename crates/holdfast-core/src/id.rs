//! Document ids (16 random bytes, bs58check) and `automerge:` URLs.
//!
//! Text forms match automerge-repo 2.5.6 (`AutomergeUrl.ts`):
//!
//! - a document id is `bs58check(bytes)` (Bitcoin alphabet, payload followed by
//!   the first 4 bytes of `sha256(sha256(payload))`);
//! - a URL is `automerge:<id>`, optionally followed by a heads section
//!   `#<head>|<head>|...` where every head is `bs58check` of the 32-byte
//!   change hash. `automerge:<id>#` (an empty heads section) means "the empty
//!   set of heads" and is distinct from no heads section at all.
//!
//! Nothing here generates randomness: ids are built from bytes the caller
//! passes.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;

/// The prefix of every Automerge URL.
pub const URL_PREFIX: &str = "automerge:";

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

/// Why a string is not a valid document id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDocumentId {
    #[error("document id is not base58: bad character at byte {index}")]
    BadBase58 { index: usize },
    #[error("document id is too short to carry a bs58check checksum")]
    MissingChecksum,
    #[error("document id has a bad bs58check checksum")]
    BadChecksum,
    #[error("document id decodes to {0} bytes, expected 16")]
    WrongLength(usize),
    /// Checked before decoding: base58 decoding is quadratic in the length.
    #[error("document id of {0} characters is too long (at most {MAX_DOCUMENT_ID_CHARS})")]
    TooLong(usize),
}

/// The longest bs58check text of 16 bytes plus a 4-byte checksum:
/// ceil(20 * log(256) / log(58)).
pub const MAX_DOCUMENT_ID_CHARS: usize = 28;
/// The same for a 32-byte change hash (36 bytes with the checksum).
pub const MAX_HEAD_CHARS: usize = 50;

/// Why a head in an Automerge URL is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHead {
    #[error("head is not base58: bad character at byte {index}")]
    BadBase58 { index: usize },
    #[error("head is too short to carry a bs58check checksum")]
    MissingChecksum,
    #[error("head has a bad bs58check checksum")]
    BadChecksum,
    #[error("head decodes to {0} bytes, expected a 32-byte change hash")]
    WrongLength(usize),
    #[error("head of {0} characters is too long (at most {MAX_HEAD_CHARS})")]
    TooLong(usize),
}

/// Why a string is not a valid Automerge URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    #[error("Automerge URL must start with \"automerge:\"")]
    MissingPrefix,
    #[error("Automerge URL has more than one '#' heads section")]
    MultipleHeadsSections,
    #[error("Automerge URL has an invalid document id: {0}")]
    BadDocumentId(#[from] InvalidDocumentId),
    #[error("Automerge URL has an invalid head #{index} {head:?}: {reason}")]
    BadHead {
        index: usize,
        head: String,
        reason: InvalidHead,
    },
}

/// bs58check failures, before they are attributed to an id or a head.
enum Bs58CheckError {
    BadBase58 { index: usize },
    MissingChecksum,
    BadChecksum,
}

fn bs58check_decode(s: &str) -> Result<Vec<u8>, Bs58CheckError> {
    use bs58::decode::Error as E;
    bs58::decode(s)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            E::InvalidCharacter { index, .. } | E::NonAsciiCharacter { index } => {
                Bs58CheckError::BadBase58 { index }
            }
            E::NoChecksum => Bs58CheckError::MissingChecksum,
            // InvalidChecksum, and anything a future bs58 adds.
            _ => Bs58CheckError::BadChecksum,
        })
}

fn bs58check_encode(bytes: &[u8]) -> String {
    bs58::encode(bytes).with_check().into_string()
}

impl DocumentId {
    /// The id made of these 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        DocumentId(bytes)
    }

    /// The 16 bytes of the id.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    /// The bs58check text form, as automerge-repo writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58check_encode(&self.0))
    }
}

impl FromStr for DocumentId {
    type Err = InvalidDocumentId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_DOCUMENT_ID_CHARS {
            return Err(InvalidDocumentId::TooLong(s.len()));
        }
        let bytes = bs58check_decode(s).map_err(|e| match e {
            Bs58CheckError::BadBase58 { index } => InvalidDocumentId::BadBase58 { index },
            Bs58CheckError::MissingChecksum => InvalidDocumentId::MissingChecksum,
            Bs58CheckError::BadChecksum => InvalidDocumentId::BadChecksum,
        })?;
        let arr: [u8; 16] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| InvalidDocumentId::WrongLength(bytes.len()))?;
        Ok(DocumentId(arr))
    }
}

/// Parses one URL head: bs58check of a 32-byte change hash.
pub fn parse_head(s: &str) -> Result<ChangeHash, InvalidHead> {
    if s.len() > MAX_HEAD_CHARS {
        return Err(InvalidHead::TooLong(s.len()));
    }
    let bytes = bs58check_decode(s).map_err(|e| match e {
        Bs58CheckError::BadBase58 { index } => InvalidHead::BadBase58 { index },
        Bs58CheckError::MissingChecksum => InvalidHead::MissingChecksum,
        Bs58CheckError::BadChecksum => InvalidHead::BadChecksum,
    })?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| InvalidHead::WrongLength(bytes.len()))?;
    Ok(ChangeHash(arr))
}

/// The text form of one head as automerge-repo writes it in URLs and in
/// `remote-heads-changed` (`encodeHeads`): bs58check of the 32 hash bytes.
pub fn format_head(head: &ChangeHash) -> String {
    bs58check_encode(&head.0)
}

/// `automerge:<id>` or `automerge:<id>#<head>|<head>...`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AutomergeUrl {
    pub document_id: DocumentId,
    /// `None`: no heads section. `Some(vec![])`: an empty heads section
    /// (`automerge:<id>#`), which automerge-repo also distinguishes.
    pub heads: Option<Vec<ChangeHash>>,
}

impl AutomergeUrl {
    /// The URL of the document's current state (no heads section).
    pub fn new(document_id: DocumentId) -> Self {
        AutomergeUrl {
            document_id,
            heads: None,
        }
    }

    /// The URL of the document at these heads.
    pub fn with_heads(document_id: DocumentId, heads: Vec<ChangeHash>) -> Self {
        AutomergeUrl {
            document_id,
            heads: Some(heads),
        }
    }
}

impl From<DocumentId> for AutomergeUrl {
    fn from(document_id: DocumentId) -> Self {
        AutomergeUrl::new(document_id)
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{URL_PREFIX}{}", self.document_id)?;
        if let Some(heads) = &self.heads {
            f.write_str("#")?;
            for (i, h) in heads.iter().enumerate() {
                if i > 0 {
                    f.write_str("|")?;
                }
                f.write_str(&format_head(h))?;
            }
        }
        Ok(())
    }
}

impl FromStr for AutomergeUrl {
    type Err = InvalidUrl;

    /// Same rules as automerge-repo's `parseAutomergeUrl`, except that ids
    /// must be 16 bytes and heads 32 bytes (automerge-repo accepts any length).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('#');
        let base = parts.next().unwrap_or_default();
        let heads_section = parts.next();
        if parts.next().is_some() {
            return Err(InvalidUrl::MultipleHeadsSections);
        }
        let id = base
            .strip_prefix(URL_PREFIX)
            .ok_or(InvalidUrl::MissingPrefix)?;
        let document_id: DocumentId = id.parse()?;
        let heads = match heads_section {
            None => None,
            Some("") => Some(Vec::new()),
            Some(section) => Some(
                section
                    .split('|')
                    .enumerate()
                    .map(|(index, head)| {
                        parse_head(head).map_err(|reason| InvalidUrl::BadHead {
                            index,
                            head: head.to_owned(),
                            reason,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(AutomergeUrl { document_id, heads })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values produced by automerge-repo 2.5.6 / bs58check 3 in node:
    // bs58check.encode(Uint8Array.from({length:16}, (_, i) => i)) etc.
    const ID_0_TO_15: &str = "1Bhh3pU9gLXZiNDL6PEa1Gs9fh";

    fn id_0_to_15() -> DocumentId {
        let mut b = [0u8; 16];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        DocumentId::from_bytes(b)
    }

    #[test]
    fn document_id_round_trips() {
        let id = id_0_to_15();
        let text = id.to_string();
        assert_eq!(text, ID_0_TO_15);
        assert_eq!(text.parse::<DocumentId>(), Ok(id));
        assert_eq!(id.as_bytes(), &id.0);
        assert_eq!(format!("{id:?}"), format!("DocumentId({ID_0_TO_15})"));
    }

    #[test]
    fn document_id_errors() {
        let longest = DocumentId::from_bytes([0xff; 16]).to_string();
        assert!(longest.len() <= MAX_DOCUMENT_ID_CHARS, "{longest}");
        assert_eq!(
            "1".repeat(29).parse::<DocumentId>(),
            Err(InvalidDocumentId::TooLong(29))
        );
        let head = ChangeHash([0xff; 32]);
        let text = bs58::encode(head.0).with_check().into_string();
        assert!(text.len() <= MAX_HEAD_CHARS, "{text}");
        assert_eq!(parse_head(&"1".repeat(51)), Err(InvalidHead::TooLong(51)));
        assert_eq!(
            "0OIl".parse::<DocumentId>(),
            Err(InvalidDocumentId::BadBase58 { index: 0 })
        );
        assert_eq!(
            "abcé".parse::<DocumentId>(),
            Err(InvalidDocumentId::BadBase58 { index: 3 })
        );
        assert_eq!(
            "".parse::<DocumentId>(),
            Err(InvalidDocumentId::MissingChecksum)
        );
        // Flip the last character: checksum no longer matches.
        let mut bad = ID_0_TO_15.to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == '2' { '3' } else { '2' });
        assert_eq!(
            bad.parse::<DocumentId>(),
            Err(InvalidDocumentId::BadChecksum)
        );
        // A valid bs58check string of 15 bytes is not a document id; one of
        // 32 bytes is refused by its length before decoding.
        let short = bs58check_encode(&[7u8; 15]);
        assert_eq!(
            short.parse::<DocumentId>(),
            Err(InvalidDocumentId::WrongLength(15))
        );
        let long = bs58check_encode(&[7u8; 32]);
        assert_eq!(
            long.parse::<DocumentId>(),
            Err(InvalidDocumentId::TooLong(long.len()))
        );
        let err = "".parse::<DocumentId>().unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn url_without_heads() {
        let url: AutomergeUrl = format!("automerge:{ID_0_TO_15}").parse().unwrap();
        assert_eq!(url, AutomergeUrl::new(id_0_to_15()));
        assert_eq!(url.to_string(), format!("automerge:{ID_0_TO_15}"));
    }

    #[test]
    fn url_with_heads() {
        let h1 = ChangeHash([1u8; 32]);
        let h2 = ChangeHash([0xab; 32]);
        let url = AutomergeUrl::with_heads(id_0_to_15(), vec![h1, h2]);
        let text = url.to_string();
        let expected = format!(
            "automerge:{ID_0_TO_15}#{}|{}",
            bs58check_encode(&[1u8; 32]),
            bs58check_encode(&[0xab; 32])
        );
        assert_eq!(text, expected);
        assert_eq!(text.parse::<AutomergeUrl>(), Ok(url));
    }

    #[test]
    fn url_with_empty_heads_section() {
        let text = format!("automerge:{ID_0_TO_15}#");
        let url: AutomergeUrl = text.parse().unwrap();
        assert_eq!(url.heads, Some(vec![]));
        assert_eq!(url.to_string(), text);
    }

    #[test]
    fn url_errors() {
        assert_eq!(
            ID_0_TO_15.parse::<AutomergeUrl>(),
            Err(InvalidUrl::MissingPrefix)
        );
        assert_eq!(
            format!("automerge:{ID_0_TO_15}#a#b").parse::<AutomergeUrl>(),
            Err(InvalidUrl::MultipleHeadsSections)
        );
        assert_eq!(
            "automerge:".parse::<AutomergeUrl>(),
            Err(InvalidUrl::BadDocumentId(
                InvalidDocumentId::MissingChecksum
            ))
        );
        let good_head = bs58check_encode(&[3u8; 32]);
        let short_head = bs58check_encode(&[3u8; 8]);
        assert_eq!(
            format!("automerge:{ID_0_TO_15}#{good_head}|{short_head}").parse::<AutomergeUrl>(),
            Err(InvalidUrl::BadHead {
                index: 1,
                head: short_head.clone(),
                reason: InvalidHead::WrongLength(8),
            })
        );
        assert!(matches!(
            format!("automerge:{ID_0_TO_15}#{good_head}|").parse::<AutomergeUrl>(),
            Err(InvalidUrl::BadHead {
                index: 1,
                reason: InvalidHead::MissingChecksum,
                ..
            })
        ));
        assert!(matches!(
            format!("automerge:{ID_0_TO_15}#0000").parse::<AutomergeUrl>(),
            Err(InvalidUrl::BadHead {
                index: 0,
                reason: InvalidHead::BadBase58 { index: 0 },
                ..
            })
        ));
    }

    #[test]
    fn head_format_parse() {
        let h = ChangeHash([9u8; 32]);
        assert_eq!(parse_head(&format_head(&h)), Ok(h));
    }
}
