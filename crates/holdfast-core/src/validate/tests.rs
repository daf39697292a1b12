use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ReadDoc, ROOT};
use sha2::{Digest, Sha256};

use super::chunk::MAX_EXTRA_BYTES;
use super::*;

fn limits() -> PeerLimits {
    PeerLimits::default()
}

fn doc_with_text(actor: u8, text: &str) -> Automerge {
    let mut d = Automerge::new().with_actor(ActorId::from([actor; 16]));
    let mut tx = d.transaction();
    let t = tx.put_object(ROOT, "text", ObjType::Text).unwrap();
    tx.splice_text(&t, 0, 0, text).unwrap();
    tx.put(ROOT, "n", 1).unwrap();
    tx.commit();
    d
}

/// Every message two automerge peers exchange until in sync; unless `v2`,
/// both leave out the flags section, as holdfast does (no v2 messages).
fn exchange(a: &mut Automerge, b: &mut Automerge, v2: bool) -> Vec<Vec<u8>> {
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    let mut out = Vec::new();
    for _ in 0..10 {
        let mut quiet = true;
        if let Some(mut m) = a.generate_sync_message(&mut sa) {
            if !v2 {
                m.flags = None;
            }
            let bytes = m.encode();
            out.push(bytes.clone());
            b.receive_sync_message(&mut sb, sync::Message::decode(&bytes).unwrap())
                .unwrap();
            quiet = false;
        }
        if let Some(mut m) = b.generate_sync_message(&mut sb) {
            if !v2 {
                m.flags = None;
            }
            let bytes = m.encode();
            out.push(bytes.clone());
            a.receive_sync_message(&mut sa, sync::Message::decode(&bytes).unwrap())
                .unwrap();
            quiet = false;
        }
        if quiet {
            break;
        }
    }
    out
}

#[test]
fn every_message_automerge_sends_passes() {
    let mut a = doc_with_text(1, &"holdfast ".repeat(200));
    let mut b = doc_with_text(2, "other");
    for i in 0..20 {
        a.transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "n", i)?;
            Ok(())
        })
        .unwrap();
    }
    let msgs = exchange(&mut a, &mut b, false);
    assert!(msgs.len() >= 3, "a real exchange");
    let mut changes = 0;
    for m in &msgs {
        let c = check_sync_message(m, &limits()).expect("automerge's own message passes");
        assert_eq!(c.msg, sync::Message::decode(m).unwrap());
        changes += c.chunks.iter().flatten().count();
    }
    assert!(changes > 0, "some messages carried changes");
}

#[test]
fn a_whole_document_is_refused() {
    // automerge sends one (a v2 message) to a peer that advertised v2 and
    // lacks more than a third of the document; holdfast never advertises it.
    let mut a = doc_with_text(1, &"x".repeat(2000));
    let mut b = Automerge::new();
    let msgs = exchange(&mut b, &mut a, true);
    let refused = msgs
        .iter()
        .filter(|m| {
            matches!(
                check_sync_message(m, &limits()),
                Err(ValidationError::Chunk {
                    error: ChunkError::Document,
                    ..
                })
            )
        })
        .count();
    assert_eq!(refused, 1);
}

#[test]
fn highly_compressible_changes_pass() {
    // 200,000 characters and then their deletion: a few KiB on the wire for
    // 400,000 operations.
    let text: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut a = doc_with_text(1, &text);
    a.transact::<_, _, automerge::AutomergeError>(|tx| {
        let (_, text) = tx.get(ROOT, "text")?.unwrap();
        tx.splice_text(&text, 0, 200_000, "")?;
        Ok(())
    })
    .unwrap();
    // As a v1 peer gets them: change by change.
    let mut b = Automerge::new();
    let mut sb = sync::State::new();
    let mut sa = sync::State::new();
    for _ in 0..5 {
        if let Some(m) = b.generate_sync_message(&mut sb) {
            let mut m = m;
            m.flags = None;
            a.receive_sync_message(&mut sa, m).unwrap();
        }
        if let Some(m) = a.generate_sync_message(&mut sa) {
            let bytes = m.encode();
            let c = check_sync_message(&bytes, &limits()).expect("passes");
            b.receive_sync_message(&mut sb, c.msg).unwrap();
        }
    }
    assert_eq!(a.get_heads(), b.get_heads());
    // And the deletion alone, as a change.
    let del = a.get_last_local_change().unwrap().raw_bytes().to_vec();
    assert!(del.len() < 200, "{} bytes", del.len());
    let c = check_sync_message(&message_with(&del), &limits()).unwrap();
    assert_eq!(
        (c.chunks[0][0].ops, c.chunks[0][0].deletes),
        (200_000, 200_000)
    );
}

fn bloom_err(data: &[u8]) -> String {
    match check_sync_message(data, &limits()) {
        Err(ValidationError::Bloom { reason, .. }) => reason,
        other => panic!("expected a Bloom filter error, got {:?}", other.err()),
    }
}

#[test]
fn the_crafted_bloom_filters_are_refused() {
    // Zero bits per entry (automerge: remainder by zero).
    let mut zero = vec![0x42, 0x01];
    zero.extend([7u8; 32]);
    zero.extend([0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00]);
    assert!(bloom_err(&zero).contains("0 bits per entry"));
    // 2^32 - 1 probes (automerge: a 16 GiB allocation).
    let probes = [
        0x42, 0x00, 0x00, 0x01, 0x00, 0x08, 0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00,
    ];
    assert!(bloom_err(&probes).contains("4294967295 probes"));
    // Bits that do not match the declared size.
    let short = [0x42, 0x00, 0x00, 0x01, 0x00, 0x03, 0x10, 0x0a, 0x07, 0x00];
    assert!(bloom_err(&short).contains("need 20 bytes"));
    // 100 filters of 2^20 probes each (automerge: seconds of hashing).
    let mut many = vec![0x42, 0x00, 0x00, 100];
    for _ in 0..100 {
        many.extend([0x00, 0x06, 0x01, 0x08, 0x80, 0x80, 0x40, 0x00]);
    }
    many.push(0x00);
    assert!(matches!(
        check_sync_message(&many, &limits()),
        Err(ValidationError::Read(ReadError::TooMany {
            what: "have",
            ..
        }))
    ));
}

#[test]
fn truncation_and_trailing_bytes_are_refused() {
    let a = doc_with_text(1, "abc");
    let msg = a
        .generate_sync_message(&mut sync::State::new())
        .unwrap()
        .encode();
    // Every prefix is refused, except the one that ends where the optional
    // flags section (a length byte, then that many bytes) begins.
    for cut in 0..msg.len() {
        let flags_follow = usize::from(msg[cut]) == msg.len() - cut - 1;
        assert_eq!(
            check_sync_message(&msg[..cut], &limits()).is_ok(),
            flags_follow,
            "prefix of {cut} bytes"
        );
    }
    let mut long = msg.clone();
    long.extend([0x01, 0x02, 0x03]);
    assert!(check_sync_message(&long, &limits()).is_err());
    assert!(matches!(
        check_sync_message(&[0x41], &limits()),
        Err(ValidationError::NotSyncMessage(0x41))
    ));
}

fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A change chunk (type 1) with `body`, its checksum computed.
fn chunk(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut len = Vec::new();
    uleb(body.len() as u64, &mut len);
    let mut h = Sha256::new();
    h.update([if ty == 2 { 1 } else { ty }]);
    h.update(&len);
    h.update(body);
    let sum: [u8; 32] = h.finalize().into();
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend(&sum[..4]);
    out.push(ty);
    out.extend(len);
    out.extend(body);
    out
}

fn message_with(chunk: &[u8]) -> Vec<u8> {
    let mut m = vec![0x42, 0x00, 0x00, 0x00, 0x01];
    uleb(chunk.len() as u64, &mut m);
    m.extend(chunk);
    m
}

/// A change header (no deps, actor 1..., seq 1, startOp 1) then `columns`.
fn change_body(columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0x00, 0x10];
    b.extend([1u8; 16]);
    b.extend([0x01, 0x01, 0x00, 0x00, 0x00]);
    uleb(columns.len() as u64, &mut b);
    for (spec, data) in columns {
        uleb(u64::from(*spec), &mut b);
        uleb(data.len() as u64, &mut b);
    }
    for (_, data) in columns {
        b.extend(data);
    }
    b
}

#[test]
fn a_run_length_column_declaring_billions_of_operations_is_refused() {
    // Action column: one run of 2^40 `set`s, in 7 bytes.
    let mut run = Vec::new();
    let mut n: i64 = 1 << 40;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 && b & 0x40 == 0 {
            run.push(b);
            break;
        }
        run.push(b | 0x80);
    }
    run.push(0x01);
    let bomb = chunk(1, &change_body(&[(columns::ACTION_SPEC, run)]));
    match check_sync_message(&message_with(&bomb), &limits()) {
        Err(ValidationError::Chunk {
            error: ChunkError::TooManyOps { ops, .. },
            ..
        }) => assert_eq!(ops, 1 << 40),
        other => panic!("expected TooManyOps, got {:?}", other.err()),
    }
}

#[test]
fn a_compressed_change_that_inflates_beyond_the_budget_is_refused() {
    use std::io::Write;
    let body = change_body(&[(columns::ACTION_SPEC, vec![0u8; 4 << 20])]);
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&body).unwrap();
    let bomb = chunk(2, &z.finish().unwrap());
    assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
    match check_sync_message(&message_with(&bomb), &limits()) {
        Err(ValidationError::Chunk {
            error: ChunkError::InflateTooLarge { .. },
            ..
        }) => {}
        other => panic!("expected InflateTooLarge, got {:?}", other.err()),
    }
}

#[test]
fn checksums_magic_and_chunk_types_are_checked() {
    let a = doc_with_text(1, "abc");
    let change = a.get_last_local_change().unwrap().raw_bytes().to_vec();
    let ok = message_with(&change);
    let c = check_sync_message(&ok, &limits()).unwrap();
    assert_eq!(c.chunks[0][0].seq, 1);
    let mut bad_sum = change.clone();
    bad_sum[5] ^= 1;
    assert!(matches!(
        check_sync_message(&message_with(&bad_sum), &limits()),
        Err(ValidationError::Chunk {
            error: ChunkError::Checksum { .. },
            ..
        })
    ));
    let mut bundle = change.clone();
    bundle[8] = 3;
    assert!(matches!(
        check_sync_message(&message_with(&bundle), &limits()),
        Err(ValidationError::Chunk {
            error: ChunkError::Bundle,
            ..
        })
    ));
    let mut magic = change;
    magic[0] = 0;
    assert!(matches!(
        check_sync_message(&message_with(&magic), &limits()),
        Err(ValidationError::Chunk {
            error: ChunkError::BadMagic,
            ..
        })
    ));
}

#[test]
fn column_readers_yield_runs_literals_nulls_and_deltas() {
    // Integer: 3 × 5, literals [1, 2], 2 nulls.
    let mut v = columns::Values::ints(0x02, &[3, 5, 0x7e, 1, 2, 0, 2]);
    let got: Vec<_> = (0..8).map(|_| v.next_value().unwrap()).collect();
    let want = [
        Some(5),
        Some(5),
        Some(5),
        Some(1),
        Some(2),
        None,
        None,
        None,
    ];
    assert_eq!(got, want, "past the end reads as null");
    // Delta: 2 × +3, literal -1: 3, 6, 5.
    let mut v = columns::Values::ints(0x13, &[2, 3, 0x7f, 0x7f]);
    let got: Vec<_> = (0..3).map(|_| v.next_value().unwrap()).collect();
    assert_eq!(got, [Some(3), Some(6), Some(5)]);
    // String: 2 × "ab" sharing one allocation, then a null.
    let mut v = columns::Values::strings(&[2, 2, b'a', b'b', 0, 1]);
    let (a, b) = (v.next_value().unwrap(), v.next_value().unwrap());
    assert_eq!(a.as_deref(), Some(&b"ab"[..]));
    assert!(std::sync::Arc::ptr_eq(
        a.as_ref().unwrap(),
        b.as_ref().unwrap()
    ));
    assert_eq!(v.next_value().unwrap(), None);
    // Boolean: 1 false, 2 true, 0 false, 1 true.
    let mut v = columns::Bools::new(&[1, 2, 0, 1]);
    let got: Vec<_> = (0..5).map(|_| v.next_value().unwrap()).collect();
    assert_eq!(got, [false, true, true, true, false]);
    // A run declaring 2^40 values costs nothing until read.
    let mut v = columns::Values::ints(0x02, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 7]);
    assert_eq!(v.next_value().unwrap(), Some(7));
}

/// A change body's header bytes and its columns.
fn split_change(body: &[u8]) -> (Vec<u8>, Vec<(u32, Vec<u8>)>) {
    let mut r = leb::Reader::new(body);
    let deps = r.uleb("").unwrap() as usize;
    r.take(32 * deps, "").unwrap();
    r.prefixed("").unwrap();
    r.uleb("").unwrap();
    r.uleb("").unwrap();
    r.sleb("").unwrap();
    r.prefixed("").unwrap();
    for _ in 0..r.uleb("").unwrap() {
        r.prefixed("").unwrap();
    }
    let header = body[..body.len() - r.remaining()].to_vec();
    let n = r.uleb("").unwrap();
    let meta: Vec<(u32, usize)> = (0..n)
        .map(|_| (r.uleb("").unwrap() as u32, r.uleb("").unwrap() as usize))
        .collect();
    let cols = meta
        .into_iter()
        .map(|(spec, len)| (spec, r.take(len, "").unwrap().to_vec()))
        .collect();
    (header, cols)
}

#[test]
fn a_change_not_encoded_as_automerge_encodes_it_is_refused() {
    // Two root puts by automerge: the action column is one run of two
    // `set`s.
    let mut d = Automerge::new().with_actor(ActorId::from([1u8; 16]));
    let mut tx = d.transaction();
    tx.put(ROOT, "a", 1).unwrap();
    tx.put(ROOT, "b", 2).unwrap();
    tx.commit();
    let genuine = d.get_last_local_change().unwrap();
    let c = check_sync_message(&message_with(genuine.raw_bytes()), &limits()).unwrap();
    assert_eq!(c.chunks[0][0].hash, genuine.hash());
    // The same operations, the actions written as a literal run of two.
    let raw = genuine.raw_bytes();
    let (header, cols) = split_change(&raw[10..]);
    let mut body = header;
    let cols: Vec<(u32, Vec<u8>)> = cols
        .into_iter()
        .map(|(spec, data)| match (spec, data.as_slice()) {
            (0x42, [2, 1]) => (spec, vec![0x7e, 1, 1]),
            _ => (spec, data),
        })
        .collect();
    uleb(cols.len() as u64, &mut body);
    for (spec, data) in &cols {
        uleb(u64::from(*spec), &mut body);
        uleb(data.len() as u64, &mut body);
    }
    for (_, data) in &cols {
        body.extend(data);
    }
    assert_ne!(&body[..], &raw[10..], "the action column was rewritten");
    let other = chunk(1, &body);
    match check_sync_message(&message_with(&other), &limits()) {
        Err(ValidationError::Chunk {
            error: ChunkError::NotCanonical { canonical, .. },
            ..
        }) => assert_eq!(canonical, genuine.hash().to_string()),
        other => panic!("expected NotCanonical, got {:?}", other.err()),
    }
}

#[test]
fn bytes_after_the_columns_are_bounded() {
    use std::io::Write;
    let a = doc_with_text(1, "abc");
    let raw = a.get_last_local_change().unwrap().raw_bytes().to_vec();
    // The body follows magic, checksum, type and its length.
    let body = leb::Reader::new(&raw[9..]).prefixed("").unwrap();
    let with_extra = |n: usize, compress: bool| {
        let mut b = body.to_vec();
        b.resize(body.len() + n, 0);
        if !compress {
            return message_with(&chunk(1, &b));
        }
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&b).unwrap();
        // The checksum covers the uncompressed form.
        let mut c = chunk(2, &z.finish().unwrap());
        c[4..8].copy_from_slice(&chunk(1, &b)[4..8]);
        message_with(&c)
    };
    // A few (where automerge keeps an author footer): the change passes,
    // under the hash of its uncompressed form.
    let ok = check_sync_message(&with_extra(16, true), &limits()).unwrap();
    assert_eq!(ok.chunks[0][0].change.extra_bytes(), &[0u8; 16][..]);
    // Past the bound, refused before automerge copies and hashes them.
    match check_sync_message(&with_extra(MAX_EXTRA_BYTES + 1, false), &limits()) {
        Err(ValidationError::Chunk {
            error: ChunkError::Rule(reason),
            ..
        }) => assert!(reason.contains("after the columns"), "{reason}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    // Compressed, with a budget that would let all of it inflate: refused
    // as soon as it passes what its header declares.
    let roomy = PeerLimits {
        max_expansion: 1 << 20,
        ..limits()
    };
    match check_sync_message(&with_extra(4 << 20, true), &roomy) {
        Err(ValidationError::Chunk {
            error: ChunkError::Rule(reason),
            ..
        }) => assert!(reason.contains("inflates past its columns"), "{reason}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}

#[test]
fn a_long_header_read_ahead_past_its_bound_is_refused() {
    use std::io::Write;
    // 4,100 dependencies: a 131 KB header, found only after inflating
    // 256 KiB in doubling steps, which is past the header's columns plus
    // MAX_EXTRA_BYTES when zeros follow.
    let mut body = Vec::new();
    uleb(4100, &mut body);
    body.extend(std::iter::repeat_n(7u8, 4100 * 32));
    body.extend([0x10]);
    body.extend([1u8; 16]);
    body.extend([0x01, 0x01, 0x00, 0x00, 0x00, 0x00]);
    body.resize(body.len() + (300 << 10), 0);
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&body).unwrap();
    let mut c = chunk(2, &z.finish().unwrap());
    c[4..8].copy_from_slice(&chunk(1, &body)[4..8]);
    let roomy = PeerLimits {
        max_expansion: 1 << 20,
        ..limits()
    };
    match check_sync_message(&message_with(&c), &roomy) {
        Err(ValidationError::Chunk {
            error: ChunkError::Rule(reason),
            ..
        }) => assert!(reason.contains("inflates past its columns"), "{reason}"),
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
}
