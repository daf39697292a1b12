//! Round trips: messages encoded and decoded back, frames cbor-x wrote in
//! node, and property tests (random messages round-trip; random or mutated
//! bytes never panic the decoder). Hand-made frames: `tests_frames.rs`.

use super::encoder::MAX_SAFE_INTEGER;
use super::*;
use crate::id::DocumentId;
use proptest::prelude::*;

fn doc_id(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn samples() -> Vec<Message> {
    let meta = PeerMetadata {
        storage_id: Some("3760df37-a4c6-4f66-9ecd-732039a9385d".into()),
        is_ephemeral: false,
        holdfast: None,
        token: None,
    };
    vec![
        Message::Join {
            sender_id: "client-1".into(),
            peer_metadata: meta.clone(),
            supported_protocol_versions: vec!["1".into()],
        },
        Message::Join {
            sender_id: "client-2".into(),
            peer_metadata: PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
                holdfast: None,
                token: None,
            },
            supported_protocol_versions: vec![],
        },
        Message::Peer {
            sender_id: "server".into(),
            target_id: "client-1".into(),
            peer_metadata: meta,
            selected_protocol_version: "1".into(),
        },
        Message::Error {
            message: "unsupported protocol version".into(),
        },
        Message::Leave {
            sender_id: "client-1".into(),
        },
        Message::Sync {
            request: false,
            document_id: doc_id(1),
            sender_id: "a".into(),
            target_id: "b".into(),
            data: vec![0x42, 1, 2, 3],
        },
        Message::Sync {
            request: true,
            document_id: doc_id(2),
            sender_id: "a".into(),
            target_id: "b".into(),
            data: vec![0x42],
        },
        Message::DocUnavailable {
            document_id: doc_id(3),
            sender_id: "b".into(),
            target_id: "a".into(),
        },
        Message::Ephemeral {
            sender_id: "a".into(),
            target_id: "b".into(),
            count: 7,
            session_id: "k3j4h5".into(),
            document_id: doc_id(4),
            data: vec![0xa1, 0x61, 0x78, 0x01],
        },
        Message::RemoteSubscriptionChange {
            sender_id: "a".into(),
            target_id: "b".into(),
            add: vec!["s1".into()],
            remove: vec![],
        },
        Message::RemoteHeadsChanged {
            sender_id: "a".into(),
            target_id: "b".into(),
            document_id: doc_id(5),
            new_heads: vec![(
                "s1".into(),
                vec!["h1".into(), "h2".into()],
                1_763_880_000_123,
            )],
        },
    ]
}

#[test]
fn round_trips_samples() {
    for m in samples() {
        let bytes = encode(&m);
        assert_eq!(decode(&bytes, &limits()), Ok(m.clone()), "{m:?}");
    }
}

/// A frame cbor-x wrote in node (automerge-repo 2.5.6's `cbor.encode`) for
/// `{type:"join", senderId:"peer-abc", peerMetadata:{storageId: undefined,
/// isEphemeral:false}, supportedProtocolVersions:["1"]}`.
const JS_JOIN: &str = "b900046474797065646a6f696e6873656e646572496468706565722d6162636c706565724d65746164617461b900026973746f726167654964f76b6973457068656d6572616cf47819737570706f7274656450726f746f636f6c56657273696f6e73816131";

#[test]
fn decodes_cbor_x_join() {
    let frame = hex::decode(JS_JOIN).unwrap();
    assert_eq!(
        decode(&frame, &limits()),
        Ok(Message::Join {
            sender_id: "peer-abc".into(),
            peer_metadata: PeerMetadata {
                storage_id: None,
                is_ephemeral: false,
                holdfast: None,
                token: None,
            },
            supported_protocol_versions: vec!["1".into()],
        })
    );
}

#[test]
fn large_integers_are_float64_like_cbor_x() {
    let m = Message::RemoteHeadsChanged {
        sender_id: "a".into(),
        target_id: "b".into(),
        document_id: doc_id(5),
        new_heads: vec![("s".into(), vec![], 1_763_880_000_000)],
    };
    let bytes = encode(&m);
    let ts = 1_763_880_000_000f64.to_be_bytes();
    let mut needle = vec![0xfb];
    needle.extend_from_slice(&ts);
    assert!(bytes.windows(9).any(|w| w == needle.as_slice()));
    // Beyond 2^53 a JS number cannot hold it exactly: plain uint64.
    let m = Message::Ephemeral {
        sender_id: "a".into(),
        target_id: "b".into(),
        count: u64::MAX,
        session_id: "s".into(),
        document_id: doc_id(1),
        data: vec![1],
    };
    assert_eq!(decode(&encode(&m), &limits()), Ok(m));
}

// --- property tests ---------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9-]{0,12}"]
}

fn arb_meta() -> impl Strategy<Value = PeerMetadata> {
    (
        proptest::option::of(arb_string()),
        any::<bool>(),
        proptest::option::of(0u64..(1 << 53)),
    )
        .prop_map(|(storage_id, is_ephemeral, holdfast)| PeerMetadata {
            storage_id,
            is_ephemeral,
            holdfast,
            token: None,
        })
}

fn arb_doc() -> impl Strategy<Value = DocumentId> {
    any::<[u8; 16]>().prop_map(DocumentId::from_bytes)
}

fn arb_count() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..1000,
        (u64::from(u32::MAX) - 2)..(u64::from(u32::MAX) + 2),
        (MAX_SAFE_INTEGER - 2)..(MAX_SAFE_INTEGER + 2),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let s = arb_string;
    let strs = || proptest::collection::vec(arb_string(), 0..4);
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (s(), arb_meta(), strs()).prop_map(|(sender_id, peer_metadata, v)| Message::Join {
            sender_id,
            peer_metadata,
            supported_protocol_versions: v
        }),
        (s(), s(), arb_meta(), s()).prop_map(|(sender_id, target_id, peer_metadata, v)| {
            Message::Peer {
                sender_id,
                target_id,
                peer_metadata,
                selected_protocol_version: v,
            }
        }),
        s().prop_map(|message| Message::Error { message }),
        s().prop_map(|sender_id| Message::Leave { sender_id }),
        (any::<bool>(), arb_doc(), s(), s(), bytes()).prop_map(
            |(request, document_id, sender_id, target_id, data)| Message::Sync {
                request,
                document_id,
                sender_id,
                target_id,
                data
            }
        ),
        (arb_doc(), s(), s()).prop_map(|(document_id, sender_id, target_id)| {
            Message::DocUnavailable {
                document_id,
                sender_id,
                target_id,
            }
        }),
        (s(), s(), arb_count(), s(), arb_doc(), bytes()).prop_map(
            |(sender_id, target_id, count, session_id, document_id, data)| Message::Ephemeral {
                sender_id,
                target_id,
                count,
                session_id,
                document_id,
                data
            }
        ),
        (s(), s(), strs(), strs()).prop_map(|(sender_id, target_id, add, remove)| {
            Message::RemoteSubscriptionChange {
                sender_id,
                target_id,
                add,
                remove,
            }
        }),
        (
            s(),
            s(),
            arb_doc(),
            proptest::collection::btree_map(arb_string(), (strs(), arb_count()), 0..3)
        )
            .prop_map(|(sender_id, target_id, document_id, heads)| {
                Message::RemoteHeadsChanged {
                    sender_id,
                    target_id,
                    document_id,
                    new_heads: heads.into_iter().map(|(k, (h, t))| (k, h, t)).collect(),
                }
            }),
    ]
}

proptest! {
    #[test]
    fn prop_round_trip(m in arb_message()) {
        let bytes = encode(&m);
        prop_assert_eq!(decode(&bytes, &limits()), Ok(m));
    }

    #[test]
    fn prop_random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&frame, &limits());
    }

    #[test]
    fn prop_random_map_prefix_never_panics(
        head in prop_oneof![Just(0xa5u8), Just(0xbf), Just(0xb9)],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut frame = vec![head];
        frame.extend(body);
        let _ = decode(&frame, &limits());
    }

    #[test]
    fn prop_mutated_frames_never_panic(
        m in arb_message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let mut frame = encode(&m);
        for (at, byte, op) in edits {
            if frame.is_empty() {
                frame.push(byte);
                continue;
            }
            let i = at.index(frame.len());
            match op {
                0 => frame[i] = byte,
                1 => frame.insert(i, byte),
                2 => { frame.remove(i); }
                _ => frame.truncate(i),
            }
        }
        let _ = decode(&frame, &limits());
    }
}
