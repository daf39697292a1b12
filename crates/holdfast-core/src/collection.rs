//! The collection index and the values of the collection exchange (see
//! `docs/design.md` §5b): what a holdfast repo keeps per document so that a
//! reconnect costs what changed, not what is held.
//!
//! Records, all under `$holdfast` (never a document id: `$` is not in the
//! base58 alphabet, so document prefix ranges never see them):
//! - `["$holdfast", "doc", <id>]`: an [`IndexEntry`], written in the same
//!   commit as the document's records whenever its durable heads advance.
//! - `["$holdfast", "seq"]`: the last change sequence number given out.
//! - `["$holdfast", "storage-id"]`: this store's id, drawn once.
//! - `["$holdfast", "cursor", <storageId>]`: how far this client has taken
//!   that server's change sequence (every held document listed up to it is
//!   durable here).
//! - `["$holdfast", "complete"]` (empty value): every document this store
//!   holds has an entry. Written with the first commit of a store that held
//!   no record at all when it was opened (a store older than the index may
//!   hold documents without entries, and never gets it); from then on a
//!   document without an entry with heads is known not to be stored.
//!
//! Invariants:
//! - An entry's `seq` and `heads` name only what is durable in the same
//!   store: they are written in the commit that makes those heads durable.
//! - Sequence numbers only grow, across restarts (`seq` is written with every
//!   commit that gives one out), so "changed since n" never skips anything.
//! - `synced[S]` holds heads that server `S` advertised; holdfast-server
//!   advertises only heads that are durable there.

use automerge::sync::BloomFilter;
use automerge::ChangeHash;
use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use sha2::{Digest as _, Sha256};

use crate::id::DocumentId;
use crate::storage::{id_str, StorageKey};
use crate::validate::PeerLimits;
use crate::vecmap::VecMap;

/// The first key component of every holdfast record that is not a document's.
pub const PREFIX: &str = "$holdfast";

/// The version of the collection exchange this build speaks, advertised in
/// `peerMetadata.holdfast`.
pub const VERSION: u64 = 1;

/// Every collection record (one range read at startup).
pub fn prefix() -> StorageKey {
    StorageKey::new([PREFIX])
}

pub fn entry_key(id: &DocumentId) -> StorageKey {
    StorageKey::new([PREFIX.to_string(), "doc".into(), id_str(id)])
}

pub fn seq_key() -> StorageKey {
    StorageKey::new([PREFIX, "seq"])
}

pub fn storage_id_key() -> StorageKey {
    StorageKey::new([PREFIX, "storage-id"])
}

pub fn complete_key() -> StorageKey {
    StorageKey::new([PREFIX, "complete"])
}

pub fn cursor_key(storage_id: &str) -> StorageKey {
    StorageKey::new([PREFIX, "cursor", storage_id])
}

/// One collection record, recognised by its key.
#[derive(Debug, PartialEq)]
pub enum Record {
    Entry(DocumentId, IndexEntry),
    Seq(u64),
    StorageId(String),
    Cursor(String, u64),
    Complete,
}

impl Record {
    /// `None` for a key that is not a collection record (the browser's
    /// identity record shares the prefix). `Some(Err)` for a collection
    /// record whose value does not decode.
    pub fn parse(key: &StorageKey, value: &[u8]) -> Option<Result<Record, String>> {
        let parts: Vec<&str> = key.0.iter().map(String::as_str).collect();
        Some(match parts.as_slice() {
            [PREFIX, "doc", id] => match id.parse::<DocumentId>() {
                Ok(id) => IndexEntry::decode(value).map(|e| Record::Entry(id, e)),
                Err(e) => Err(format!("bad document id in {key}: {e}")),
            },
            [PREFIX, "seq"] => decode_u64(value).map(Record::Seq),
            [PREFIX, "storage-id"] => String::from_utf8(value.to_vec())
                .map(Record::StorageId)
                .map_err(|e| e.to_string()),
            [PREFIX, "complete"] => Ok(Record::Complete),
            [PREFIX, "cursor", sid] => {
                decode_u64(value).map(|n| Record::Cursor(sid.to_string(), n))
            }
            _ => return None,
        })
    }
}

/// What the index holds for one document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexEntry {
    /// The store's change sequence number of the commit that last advanced
    /// the document's durable heads (0: never, the entry only carries `synced`).
    pub seq: u64,
    /// The durable heads (empty: nothing durable yet).
    pub heads: Vec<ChangeHash>,
    /// Per server storage id: the heads that server last advertised.
    pub synced: VecMap<String, Vec<ChangeHash>>,
    /// The subject that created the document on a server with access
    /// control (see `repo::access`): it may read and write it. Written with
    /// the document's first records; absent in entries written without one.
    pub owner: Option<String>,
}

impl IndexEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        let r: Result<(), minicbor::encode::Error<std::convert::Infallible>> = (|| {
            e.map(3 + u64::from(self.owner.is_some()))?;
            e.str("seq")?.u64(self.seq)?;
            e.str("heads")?.bytes(&join(&self.heads))?;
            e.str("synced")?.map(self.synced.len() as u64)?;
            for (sid, heads) in self.synced.iter() {
                e.str(sid)?.bytes(&join(heads))?;
            }
            if let Some(owner) = &self.owner {
                e.str("owner")?.str(owner)?;
            }
            Ok(())
        })();
        r.expect("encoding into a Vec cannot fail");
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut d = Decoder::new(bytes);
        let mut entry = IndexEntry::default();
        let n = d.map().map_err(err)?.ok_or("indefinite map")?;
        for _ in 0..n {
            match d.str().map_err(err)? {
                "seq" => entry.seq = d.u64().map_err(err)?,
                "heads" => entry.heads = split(d.bytes().map_err(err)?)?,
                "synced" => {
                    let m = d.map().map_err(err)?.ok_or("indefinite map")?;
                    for _ in 0..m {
                        let sid = d.str().map_err(err)?.to_string();
                        entry.synced.insert(sid, split(d.bytes().map_err(err)?)?);
                    }
                }
                "owner" => entry.owner = Some(d.str().map_err(err)?.to_string()),
                _ => d.skip().map_err(err)?,
            }
        }
        Ok(entry)
    }
}

pub fn encode_u64(n: u64) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.u64(n).expect("encoding into a Vec cannot fail");
    e.into_writer()
}

fn decode_u64(bytes: &[u8]) -> Result<u64, String> {
    let mut d = Decoder::new(bytes);
    match d.datatype().map_err(err)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().map_err(err),
        t => Err(format!("expected an unsigned integer, found {t}")),
    }
}

fn err(e: minicbor::decode::Error) -> String {
    e.to_string()
}

fn join(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn split(bytes: &[u8]) -> Result<Vec<ChangeHash>, String> {
    if !bytes.len().is_multiple_of(32) {
        return Err(format!(
            "{} bytes is not a list of 32-byte hashes",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| ChangeHash(c.try_into().expect("32 bytes")))
        .collect())
}

/// A Bloom filter of document ids (automerge's filter, 10 bits per id and 7
/// probes: about 1 % false positives), for `holdfast-resume`: the documents a
/// client holds. A false positive costs the server one listed entry.
#[derive(Clone, Debug)]
pub struct HeldFilter(BloomFilter);

impl HeldFilter {
    pub fn new<'a>(ids: impl ExactSizeIterator<Item = &'a DocumentId>) -> Self {
        let hashes: Vec<ChangeHash> = ids.map(probe).collect();
        Self(BloomFilter::from_hashes(hashes.iter()))
    }

    /// Decode a peer's filter, checked first as a sync message's filter is
    /// (bounded bits per entry and probes, a bit array of the declared size).
    pub fn decode(bytes: &[u8], limits: &PeerLimits) -> Result<Self, String> {
        crate::validate::check_bloom(bytes, limits)?;
        BloomFilter::try_from(bytes)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    pub fn encode(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    pub fn contains(&self, id: &DocumentId) -> bool {
        self.0.contains_hash(&probe(id))
    }

    /// [`HeldFilter::contains`] for a document whose [`Hashed`] form is at
    /// hand (one SHA-256 per document, however many filters are asked).
    pub fn contains_hashed(&self, id: &Hashed) -> bool {
        self.0.contains_hash(&id.0)
    }
}

/// A document id hashed once, for filters and lists.
pub struct Hashed(ChangeHash);

impl Hashed {
    pub fn new(id: &DocumentId) -> Self {
        Self(probe(id))
    }

    pub fn digest(&self) -> Digest {
        self.0 .0[..16].try_into().expect("16 bytes")
    }
}

/// automerge's filter reads its probes from the first 12 bytes of a hash;
/// hashing the id spreads ids that are not random.
fn probe(id: &DocumentId) -> ChangeHash {
    ChangeHash(Sha256::digest(id.0).into())
}

/// How `holdfast-changed` names a document: the first 16 bytes of the
/// SHA-256 of its id. Only a client that holds the id can tell which
/// document it is, so a filter that claims every document (all bits set)
/// learns no id it did not know (a document id is what grants access).
pub type Digest = [u8; 16];

pub fn digest(id: &DocumentId) -> Digest {
    Hashed::new(id).digest()
}

/// The payload of `holdfast-changed`: per document, its [`digest`] (16
/// bytes), the number of heads (1 byte) and the heads (32 bytes each).
pub fn encode_changed(docs: &[(Digest, Vec<ChangeHash>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, heads) in docs {
        out.extend_from_slice(id);
        // A document has at most a few heads; more than 255 are cut (the
        // receiver then syncs the document, as for any other difference).
        let n = heads.len().min(255);
        out.push(n as u8);
        for h in &heads[..n] {
            out.extend_from_slice(&h.0);
        }
    }
    out
}

pub fn decode_changed(bytes: &[u8]) -> Result<Vec<(Digest, Vec<ChangeHash>)>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 17 {
            return Err(format!("{} trailing bytes", rest.len()));
        }
        let id: Digest = rest[..16].try_into().expect("16 bytes");
        let n = usize::from(rest[16]);
        rest = &rest[17..];
        if rest.len() < n * 32 {
            return Err(format!("{n} heads declared, {} bytes left", rest.len()));
        }
        out.push((id, split(&rest[..n * 32])?));
        rest = &rest[n * 32..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> ChangeHash {
        ChangeHash([b; 32])
    }

    #[test]
    fn entries_round_trip() {
        let mut e = IndexEntry {
            seq: 1 << 40,
            heads: vec![h(1), h(2)],
            synced: VecMap::new(),
            owner: None,
        };
        e.synced.insert("server-a".into(), vec![h(3)]);
        assert_eq!(IndexEntry::decode(&e.encode()).unwrap(), e);
        let owned = IndexEntry {
            owner: Some("alice".into()),
            ..e.clone()
        };
        assert_eq!(IndexEntry::decode(&owned.encode()).unwrap(), owned);
        // An entry without an owner is encoded as before the field existed.
        assert_eq!(owned.encode().len(), e.encode().len() + 12);
        assert_eq!(e.encode()[0], 0xa3);
        assert!(IndexEntry::decode(&[0xa1, 0x65]).is_err());
        let key = entry_key(&DocumentId([9; 16]));
        assert_eq!(
            Record::parse(&key, &e.encode()),
            Some(Ok(Record::Entry(DocumentId([9; 16]), e)))
        );
        assert_eq!(
            Record::parse(&StorageKey::new([PREFIX, "meta"]), b"{}"),
            None
        );
        assert_eq!(
            Record::parse(&seq_key(), &encode_u64(7)),
            Some(Ok(Record::Seq(7)))
        );
    }

    #[test]
    fn the_held_filter_holds_what_was_put_in() {
        let ids: Vec<DocumentId> = (0..1000u32)
            .map(|i| {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&i.to_le_bytes());
                DocumentId(b)
            })
            .collect();
        let f = HeldFilter::new(ids.iter());
        let bytes = f.encode();
        assert!(bytes.len() < 1300, "{} bytes for 1,000 ids", bytes.len());
        let g = HeldFilter::decode(&bytes, &PeerLimits::default()).unwrap();
        assert!(ids.iter().all(|i| g.contains(i)));
        let others = (0..1000u32)
            .filter(|i| {
                let mut b = [0xffu8; 16];
                b[..4].copy_from_slice(&i.to_le_bytes());
                g.contains(&DocumentId(b))
            })
            .count();
        assert!(others < 40, "{others} false positives of 1,000");
        assert!(HeldFilter::decode(&[1, 0, 7], &PeerLimits::default()).is_err());
    }

    #[test]
    fn changed_lists_round_trip_and_reject_truncation() {
        let docs = vec![
            (digest(&DocumentId([1; 16])), vec![h(1)]),
            ([2; 16], vec![]),
        ];
        let bytes = encode_changed(&docs);
        assert_eq!(decode_changed(&bytes).unwrap(), docs);
        assert!(decode_changed(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_changed(&bytes[..20]).is_err());
    }
}
