//! Hand-made frames: the encodings the decoder accepts beyond its own, the
//! typed errors it returns for the rest, its bounds on nesting and items.

use super::*;
use crate::id::{DocumentId, InvalidDocumentId};

fn doc_id(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

// --- a tiny CBOR writer for hand-made frames -------------------------------

fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend_from_slice(&(n as u16).to_be_bytes());
            v
        }
        0x1_0000..=0xffff_ffff => {
            let mut v = vec![m | 26];
            v.extend_from_slice(&(n as u32).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 27];
            v.extend_from_slice(&n.to_be_bytes());
            v
        }
    }
}

/// A head with a 64-bit length, however small `n` is.
fn head64(major: u8, n: u64) -> Vec<u8> {
    let mut v = vec![(major << 5) | 27];
    v.extend_from_slice(&n.to_be_bytes());
    v
}

fn text(s: &str) -> Vec<u8> {
    let mut v = head(3, s.len() as u64);
    v.extend_from_slice(s.as_bytes());
    v
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut v = head(2, b.len() as u64);
    v.extend_from_slice(b);
    v
}

fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut v = head(5, entries.len() as u64);
    for (k, val) in entries {
        v.extend(text(k));
        v.extend_from_slice(val);
    }
    v
}

fn sync_fields(id: DocumentId) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("type", text("sync")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", text(&id.to_string())),
        ("data", bytes(&[1, 2, 3])),
    ]
}

fn sync_msg(id: DocumentId) -> Message {
    Message::Sync {
        request: false,
        document_id: id,
        sender_id: "a".into(),
        target_id: "b".into(),
        data: vec![1, 2, 3],
    }
}

fn ephemeral_with_count(count: Vec<u8>) -> Vec<u8> {
    map(&[
        ("type", text("ephemeral")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("count", count),
        ("sessionId", text("s")),
        ("documentId", text(&doc_id(9).to_string())),
        ("data", bytes(&[0xf6])),
    ])
}

#[test]
fn accepts_non_minimal_lengths() {
    let id = doc_id(1);
    let mut f = head64(5, 5);
    for (k, v) in [
        ("type", text("sync")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", text(&id.to_string())),
    ] {
        f.extend(head64(3, k.len() as u64));
        f.extend_from_slice(k.as_bytes());
        f.extend(v);
    }
    f.extend(text("data"));
    f.extend(head64(2, 3));
    f.extend_from_slice(&[1, 2, 3]);
    assert_eq!(decode(&f, &limits()), Ok(sync_msg(id)));

    // 8-byte headers on text values too (cbor-x's native extractor in node
    // rejects these in frames of 140+ bytes; we accept them).
    let wide = |s: &str| {
        let mut v = head64(3, s.len() as u64);
        v.extend_from_slice(s.as_bytes());
        v
    };
    let f = map(&[
        ("type", wide("sync")),
        ("senderId", wide("a")),
        ("targetId", wide("b")),
        ("documentId", wide(&id.to_string())),
        ("data", bytes(&[1, 2, 3])),
    ]);
    assert_eq!(decode(&f, &limits()), Ok(sync_msg(id)));
}

#[test]
fn accepts_indefinite_lengths() {
    let id = doc_id(1);
    let mut f = vec![0xbf];
    f.extend(text("type"));
    f.extend([0x7f, 0x62, b's', b'y', 0x62, b'n', b'c', 0xff]); // "sy" "nc"
    f.extend(text("senderId"));
    f.extend(text("a"));
    f.extend([0x7f, 0x68]); // indefinite key "targetId"
    f.extend_from_slice(b"targetId");
    f.push(0xff);
    f.extend(text("b"));
    f.extend(text("documentId"));
    f.extend(text(&id.to_string()));
    f.extend(text("data"));
    f.extend([0x5f, 0x41, 1, 0x42, 2, 3, 0xff]);
    f.push(0xff);
    assert_eq!(decode(&f, &limits()), Ok(sync_msg(id)));

    // Indefinite arrays, inside an indefinite peerMetadata map.
    let mut f = map(&[("type", text("join")), ("senderId", text("c"))]);
    f[0] += 2; // two more entries follow
    f.extend(text("peerMetadata"));
    f.extend([0xbf]);
    f.extend(text("isEphemeral"));
    f.push(0xf5);
    f.push(0xff);
    f.extend(text("supportedProtocolVersions"));
    f.extend([0x9f, 0x61, b'1', 0x61, b'2', 0xff]);
    assert_eq!(
        decode(&f, &limits()),
        Ok(Message::Join {
            sender_id: "c".into(),
            peer_metadata: PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
                holdfast: None,
                token: None,
            },
            supported_protocol_versions: vec!["1".into(), "2".into()],
        })
    );
}

#[test]
fn undefined_and_null_are_absent() {
    for absent in [0xf7u8, 0xf6] {
        let f = map(&[
            ("type", text("remote-subscription-change")),
            ("senderId", text("a")),
            ("targetId", text("b")),
            ("add", vec![absent]),
            ("remove", vec![0x81, 0x61, b'x']),
            ("peerMetadata", vec![absent]),
        ]);
        assert_eq!(
            decode(&f, &limits()),
            Ok(Message::RemoteSubscriptionChange {
                sender_id: "a".into(),
                target_id: "b".into(),
                add: vec![],
                remove: vec!["x".into()],
            })
        );
    }
    // A required field that is undefined is missing.
    let mut fields = sync_fields(doc_id(1));
    fields[1].1 = vec![0xf7];
    assert_eq!(
        decode(&map(&fields), &limits()),
        Err(DecodeError::MissingField("senderId"))
    );
}

#[test]
fn counts_as_floats() {
    let ok = |count: Vec<u8>, n: u64| {
        let m = decode(&ephemeral_with_count(count), &limits()).unwrap();
        assert!(
            matches!(m, Message::Ephemeral { count, .. } if count == n),
            "{m:?}"
        );
    };
    ok(vec![0xf9, 0x47, 0x00], 7); // f16 7.0
    ok(vec![0xfa, 0x40, 0xe0, 0, 0], 7); // f32 7.0
    let mut f64_ts = vec![0xfb];
    f64_ts.extend_from_slice(&1_763_880_000_000f64.to_be_bytes());
    ok(f64_ts, 1_763_880_000_000);
    ok(head64(0, 7), 7);

    let bad = |count: Vec<u8>| {
        assert_eq!(
            decode(&ephemeral_with_count(count), &limits()),
            Err(DecodeError::WrongType {
                field: "count",
                expected: "a non-negative integer"
            })
        );
    };
    bad(vec![0xf9, 0x3e, 0x00]); // 1.5
    bad(vec![0xf9, 0xc7, 0x00]); // -7.0
    bad(vec![0xf9, 0x7e, 0x00]); // NaN
    bad(vec![0xf9, 0x7c, 0x00]); // +inf
    bad(vec![0x26]); // -7
    bad(text("7"));
    let mut huge = vec![0xfb];
    huge.extend_from_slice(&1e20f64.to_be_bytes());
    bad(huge);
}

#[test]
fn skips_unknown_keys_and_accepts_any_order() {
    let id = doc_id(1);
    let mut fields = sync_fields(id);
    fields.reverse();
    fields.insert(
        2,
        (
            "futureField",
            // {"x": [1, tag(1)(2.5), h'00', {0: null}], "y": undefined}
            vec![
                0xa2, 0x61, b'x', 0x84, 0x01, 0xc1, 0xf9, 0x41, 0x00, 0x41, 0x00, 0xa1, 0x00, 0xf6,
                0x61, b'y', 0xf7,
            ],
        ),
    );
    let mut f = map(&fields);
    // A non-text key with a value.
    f[0] += 1;
    f.extend([0x01, 0x82, 0x01, 0x02]);
    assert_eq!(decode(&f, &limits()), Ok(sync_msg(id)));
}

#[test]
fn accepts_tag_64_byte_strings() {
    let id = doc_id(1);
    let mut fields = sync_fields(id);
    let mut tagged = vec![0xd8, 64];
    tagged.extend(bytes(&[1, 2, 3]));
    fields[4].1 = tagged;
    assert_eq!(decode(&map(&fields), &limits()), Ok(sync_msg(id)));
    // Some other tag is not a byte string.
    let mut fields = sync_fields(id);
    let mut tagged = vec![0xd8, 65];
    tagged.extend(bytes(&[1, 2, 3]));
    fields[4].1 = tagged;
    assert_eq!(
        decode(&map(&fields), &limits()),
        Err(DecodeError::WrongType {
            field: "data",
            expected: "a byte string"
        })
    );
}

#[test]
fn repeated_key_keeps_last_value() {
    let id = doc_id(1);
    let mut fields = sync_fields(id);
    fields.insert(0, ("type", text("request")));
    fields.push(("senderId", text("z")));
    let Message::Sync {
        request, sender_id, ..
    } = decode(&map(&fields), &limits()).unwrap()
    else {
        panic!("not a sync")
    };
    assert!(!request);
    assert_eq!(sender_id, "z");
}

#[test]
fn typed_errors() {
    let l = limits();
    assert!(matches!(decode(&[], &l), Err(DecodeError::Cbor(_))));
    assert_eq!(decode(&[0x80], &l), Err(DecodeError::NotAMap));
    assert_eq!(decode(&text("sync"), &l), Err(DecodeError::NotAMap));
    assert_eq!(decode(&[0xa0], &l), Err(DecodeError::MissingField("type")));
    assert_eq!(
        decode(&map(&[("type", text("nope"))]), &l),
        Err(DecodeError::UnknownType("nope".into()))
    );
    assert_eq!(
        decode(&map(&[("type", vec![0x01])]), &l),
        Err(DecodeError::WrongType {
            field: "type",
            expected: "a string"
        })
    );
    let mut fields = sync_fields(doc_id(1));
    fields[3].1 = text("not-base58-0OIl");
    assert!(matches!(
        decode(&map(&fields), &l),
        Err(DecodeError::BadDocumentId(
            InvalidDocumentId::BadBase58 { .. }
        ))
    ));
    // Long ids are refused before base58 decoding, which is quadratic.
    let mut fields = sync_fields(doc_id(1));
    fields[3].1 = text(&"2".repeat(160_000));
    assert_eq!(
        decode(&map(&fields), &l),
        Err(DecodeError::BadDocumentId(InvalidDocumentId::TooLong(
            160_000
        )))
    );
    let mut fields = sync_fields(doc_id(1));
    fields[4].1 = text("0102");
    assert_eq!(
        decode(&map(&fields), &l),
        Err(DecodeError::WrongType {
            field: "data",
            expected: "a byte string"
        })
    );
    let mut f = map(&sync_fields(doc_id(1)));
    f.extend([0x00, 0x00]);
    assert_eq!(decode(&f, &l), Err(DecodeError::TrailingBytes(2)));
    let f = map(&sync_fields(doc_id(1)));
    assert!(matches!(
        decode(&f[..f.len() - 1], &l),
        Err(DecodeError::Cbor(_))
    ));
    assert_eq!(
        decode(&f, &DecodeLimits { max_frame_size: 10 }),
        Err(DecodeError::FrameTooLarge {
            size: f.len(),
            max: 10
        })
    );
    // Reserved initial byte, stray break, invalid UTF-8.
    assert!(matches!(
        decode(&[0xa1, 0x1c], &l),
        Err(DecodeError::Cbor(_))
    ));
    assert!(matches!(
        decode(&[0xa1, 0xff], &l),
        Err(DecodeError::Cbor(_))
    ));
    assert!(matches!(
        decode(&[0xa1, 0x61, 0xff, 0x00], &l),
        Err(DecodeError::Cbor(_))
    ));
    // A declared length far beyond the frame.
    assert!(matches!(
        decode(&head64(5, u64::MAX), &l),
        Err(DecodeError::Cbor(_))
    ));
    let mut f = map(&[("type", text("sync"))]);
    f[0] += 1;
    f.extend(text("data"));
    f.extend(head64(2, u64::MAX));
    assert!(matches!(decode(&f, &l), Err(DecodeError::Cbor(_))));
    let e = decode(&[0xa0], &l).unwrap_err().to_string();
    assert_eq!(e, "message has no `type` field");
}

#[test]
fn deep_nesting_is_bounded() {
    for opener in [0x81u8, 0x9f, 0xa1, 0xc1] {
        let mut f = map(&sync_fields(doc_id(1)));
        f[0] += 1;
        f.extend(text("deep"));
        for _ in 0..100_000 {
            f.push(opener);
            if opener == 0xa1 {
                f.push(0x00); // key
            }
        }
        f.push(0x00);
        assert_eq!(
            decode(&f, &limits()),
            Err(DecodeError::TooDeep { max: MAX_NESTING })
        );
        // Also in a known key's value.
        let mut f = map(&[("type", text("join")), ("senderId", text("a"))]);
        f[0] += 1;
        f.extend(text("peerMetadata"));
        for _ in 0..100_000 {
            f.push(opener);
            if opener == 0xa1 {
                f.push(0x00);
            }
        }
        f.push(0x00);
        assert_eq!(
            decode(&f, &limits()),
            Err(DecodeError::TooDeep { max: MAX_NESTING })
        );
    }
}

#[test]
fn item_count_is_bounded() {
    // A key holding MAX_ITEMS + 1 one-byte values.
    let frame = |key: &str| {
        let mut f = map(&[
            ("type", text("remote-subscription-change")),
            ("senderId", text("a")),
            ("targetId", text("b")),
        ]);
        f[0] += 1;
        f.extend(text(key));
        f.extend(head(4, MAX_ITEMS as u64 + 1));
        f.resize(f.len() + MAX_ITEMS + 1, 0x00);
        f
    };
    assert_eq!(
        decode(&frame("add"), &limits()),
        Err(DecodeError::TooManyItems { max: MAX_ITEMS })
    );
    // Under an unknown key it is skipped without allocating.
    assert_eq!(
        decode(&frame("future"), &limits()),
        Ok(Message::RemoteSubscriptionChange {
            sender_id: "a".into(),
            target_id: "b".into(),
            add: vec![],
            remove: vec![]
        })
    );
}
