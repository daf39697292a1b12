//! Crafting the hostile frames: sync messages, change chunks rewritten with
//! a recomputed checksum, and a CBOR frame by hand.

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ROOT};
use holdfast_core::storage::sha256_hex;

use crate::common::random_bytes;

/// Frame A: one head (random), a `have` whose filter has 1 entry, 0 bits per
/// entry and 1 probe (no bit bytes): every probe is `% 0`.
pub fn zero_bit_bloom() -> Vec<u8> {
    let mut data = vec![0x42, 0x01];
    data.extend(random_bytes::<32>());
    data.extend([0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00]);
    decodable(data)
}

/// Frame D: the document's next change by its creator, seq 2 rewritten to 3
/// (checksum recomputed), heads = the rewritten change's hash.
pub fn seq_skipped(doc: &Automerge) -> Vec<u8> {
    let change = next_change(doc, Some(first_actor(doc)));
    assert_eq!(change.seq(), 2);
    let (bytes, hash) = rewrite_seq(change.raw_bytes(), 3);
    carrying(vec![hash], bytes)
}

/// Frame F: a `sync` whose `documentId` is 160,000 base58 characters (all
/// valid digits, so a decoder has to do the whole conversion).
pub fn huge_document_id_frame() -> Vec<u8> {
    let data = carrying(vec![], Vec::new());
    let id = "z".repeat(160_000);
    let mut f = Vec::new();
    cbor_head(&mut f, 5, 5);
    for (k, v) in [
        ("type", "sync"),
        ("senderId", "hostile"),
        ("targetId", "server"),
        ("documentId", id.as_str()),
    ] {
        cbor_text(&mut f, k);
        cbor_text(&mut f, v);
    }
    cbor_text(&mut f, "data");
    cbor_head(&mut f, 2, data.len() as u64);
    f.extend(&data);
    f
}

/// Check that automerge itself decodes `data`: the refusal must come from
/// validation, not from a sync message that does not parse.
pub fn decodable(data: Vec<u8>) -> Vec<u8> {
    if let Err(e) = sync::Message::decode(&data) {
        panic!("crafted sync message does not decode: {e}");
    }
    data
}

/// A v1 sync message with these heads and one change chunk (none if empty).
pub fn carrying(heads: Vec<ChangeHash>, chunk: Vec<u8>) -> Vec<u8> {
    let changes: Vec<Vec<u8>> = if chunk.is_empty() {
        vec![]
    } else {
        vec![chunk]
    };
    sync::Message {
        heads,
        need: vec![],
        have: vec![],
        changes: changes.into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode()
}

/// The actor of the document's first change (the keeper's).
pub fn first_actor(doc: &Automerge) -> ActorId {
    doc.get_changes(&[])[0].actor_id().clone()
}

/// A real next change of `doc` (made on a fork), by `actor` or a new one.
pub fn next_change(doc: &Automerge, actor: Option<ActorId>) -> Change {
    let mut fork = doc.fork();
    if let Some(a) = actor {
        fork.set_actor(a);
    }
    fork.transact::<_, _, AutomergeError>(|tx| tx.put(ROOT, "title", "forged"))
        .unwrap();
    let change = fork.get_last_local_change().expect("a change");
    assert_eq!(change.raw_bytes()[8], 1, "an uncompressed change chunk");
    change
}

pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Rewrite the `seq` of an uncompressed change chunk, recomputing the
/// checksum. Chunk: magic, checksum (4), type (1 = change), uleb body
/// length, body = deps (uleb n + n × 32 bytes), actor (uleb len + bytes),
/// seq (uleb), start op, time, message, other actors, op columns.
/// Returns the chunk and its change hash.
pub fn rewrite_seq(chunk: &[u8], seq: u64) -> (Vec<u8>, ChangeHash) {
    assert_eq!(chunk[..4], MAGIC);
    assert_eq!(chunk[8], 1, "a change chunk");
    let (len, n) = read_uleb(&chunk[9..]);
    let body = &chunk[9 + n..];
    assert_eq!(body.len() as u64, len, "one whole chunk");
    // The checksum computed here matches automerge's on the original.
    assert_eq!(seal(1, body).0, chunk, "checksum recomputation");

    let (deps, k) = read_uleb(body);
    let mut p = k + 32 * deps as usize;
    let (actor_len, k) = read_uleb(&body[p..]);
    p += k + actor_len as usize;
    let (_, k) = read_uleb(&body[p..]);
    let mut new_body = body[..p].to_vec();
    write_uleb(&mut new_body, seq);
    new_body.extend(&body[p + k..]);
    let (out, hash) = seal(1, &new_body);

    // automerge parses the result as that change with the new seq.
    let parsed = Change::try_from(&out[..]).expect("the rewritten chunk parses");
    assert_eq!(parsed.seq(), seq);
    assert_eq!(parsed.hash(), hash);
    (out, hash)
}

/// A chunk of `chunk_type` around `body`; its checksum is the first 4 bytes
/// of SHA-256(type ‖ uleb(len) ‖ body), which is the change hash.
pub fn seal(chunk_type: u8, body: &[u8]) -> (Vec<u8>, ChangeHash) {
    let mut hashed = vec![chunk_type];
    write_uleb(&mut hashed, body.len() as u64);
    hashed.extend(body);
    let digest: [u8; 32] = hex::decode(sha256_hex(&hashed))
        .unwrap()
        .try_into()
        .unwrap();
    let mut out = MAGIC.to_vec();
    out.extend(&digest[..4]);
    out.extend(hashed);
    (out, ChangeHash(digest))
}

pub fn read_uleb(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad LEB128");
}

pub fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A CBOR head: major type, length.
pub fn cbor_head(out: &mut Vec<u8>, major: u8, len: u64) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend([m | 24, len as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((len as u32).to_be_bytes());
        }
    }
}

pub fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend(s.as_bytes());
}
