//! The seeds the libFuzzer corpus started from (`holdfast-fuzz
//! --libfuzzer-seeds DIR` writes them): genuine sync sessions of the
//! [`Corpus`], every other message a peer sends, and for `frame_decode`
//! also the frames the repo sent back and automerge-repo's golden frames.

use holdfast_core::collection::HeldFilter;
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{self, Message, PeerMetadata};

use super::{
    base, doc, join, repo_input, run_repo_frames, split, sync_frame, CONTROL, FIX_CHECKSUMS,
    JOIN_HOLDFAST, JOIN_STORAGE_ID, RAW, REQUEST, SYNC, TIMERS,
};
use crate::corpus::Corpus;
use crate::{PEER_ID, SERVER_ID};

/// The seeds of both targets, by target name: per genuine sync session of
/// the [`Corpus`], an input of its messages as `sync` / `request` records
/// (checksums fixed, join variants in turn) and one of the frames
/// themselves; inputs of every other message type a peer sends; and for
/// `frame_decode`, every frame of those inputs, every frame the repo sent
/// back, and `golden` (automerge-repo's own frames, `tests/golden/*.cbor`).
pub fn seeds(golden: &[(String, Vec<u8>)]) -> Vec<(&'static str, String, Vec<u8>)> {
    let corpus = Corpus::build();
    let base = base();
    let doc_bits = |id: &DocumentId| -> u8 {
        let i = base.docs.iter().position(|d| d == id).expect("corpus doc");
        (i as u8) << 3
    };
    let mut repo: Vec<(String, Vec<u8>)> = Vec::new();
    let mut frames: Vec<(String, Vec<u8>)> = Vec::new();
    for (n, s) in corpus.sessions.iter().enumerate() {
        let bits = (n % 8) as u8;
        let records: Vec<(u8, Vec<u8>)> = s
            .msgs
            .iter()
            .map(|(req, m)| {
                let kind = if *req { REQUEST } else { SYNC };
                (kind | FIX_CHECKSUMS | doc_bits(&s.doc), m.clone())
            })
            .collect();
        repo.push((format!("sync-{}", s.name), repo_input(bits, &records)));
        let raw: Vec<(u8, Vec<u8>)> = s
            .msgs
            .iter()
            .map(|(req, m)| (RAW, sync_frame(s.doc, *req, m.clone())))
            .collect();
        repo.push((
            format!("frames-{}", s.name),
            repo_input(JOIN_HOLDFAST | JOIN_STORAGE_ID, &raw),
        ));
    }

    // The other messages a peer may send, each after a genuine session's
    // first message, then a reconnect and the timers.
    let d0 = base.docs[0];
    let unknown = doc(base, 31);
    let first = corpus.sessions[0].msgs[0].1.clone();
    let held = HeldFilter::new(base.docs.iter()).encode();
    let to = || SERVER_ID.to_string();
    let from = || PEER_ID.to_string();
    let others: Vec<(&str, Message)> = vec![
        (
            "resume",
            Message::Resume {
                sender_id: from(),
                target_id: to(),
                since: None,
                held: held.clone(),
            },
        ),
        (
            "resume-since",
            Message::Resume {
                sender_id: from(),
                target_id: to(),
                since: Some(1),
                held: held.clone(),
            },
        ),
        (
            "ephemeral",
            Message::Ephemeral {
                sender_id: from(),
                target_id: to(),
                count: 1,
                session_id: "fuzz-session".into(),
                document_id: d0,
                data: vec![0xa1, 0x61, 0x78, 0x01],
            },
        ),
        (
            "doc-unavailable",
            Message::DocUnavailable {
                document_id: unknown,
                sender_id: from(),
                target_id: to(),
            },
        ),
        (
            "remote-subscription-change",
            Message::RemoteSubscriptionChange {
                sender_id: from(),
                target_id: to(),
                add: vec!["fuzz-peer-storage".into()],
                remove: vec![],
            },
        ),
        (
            "remote-heads-changed",
            Message::RemoteHeadsChanged {
                sender_id: from(),
                target_id: to(),
                document_id: d0,
                new_heads: vec![("fuzz-peer-storage".into(), vec![], 1_700_000_000_000)],
            },
        ),
        (
            "error",
            Message::Error {
                message: "fuzz".into(),
            },
        ),
        (
            "join-again",
            Message::Join {
                sender_id: from(),
                peer_metadata: PeerMetadata::default(),
                supported_protocol_versions: vec!["1".into()],
            },
        ),
        ("leave", Message::Leave { sender_id: from() }),
    ];
    for (name, m) in others {
        let records = vec![
            (SYNC | FIX_CHECKSUMS | doc_bits(&d0), first.clone()),
            (RAW, wire::encode(&m)),
            (CONTROL, Vec::new()),
            (REQUEST | (31 << 3), first.clone()),
            (CONTROL | TIMERS, Vec::new()),
            (RAW, wire::encode(&m)),
        ];
        repo.push((
            format!("other-{name}"),
            repo_input(JOIN_HOLDFAST | JOIN_STORAGE_ID, &records),
        ));
    }

    // frame_decode: what the inputs send, what the repo answers, golden.
    for (name, input) in &repo {
        let parts = split(input);
        frames.push((format!("join-{name}"), join(parts[0][0])));
        for (i, rec) in parts.iter().skip(1).enumerate() {
            match rec[0] & 3 {
                RAW => frames.push((format!("{name}-{i}"), rec[1..].to_vec())),
                SYNC | REQUEST => frames.push((
                    format!("{name}-{i}"),
                    sync_frame(
                        doc(base, rec[0] >> 3),
                        rec[0] & 3 == REQUEST,
                        rec[1..].to_vec(),
                    ),
                )),
                _ => {}
            }
        }
        for (i, f) in run_repo_frames(input, true).into_iter().enumerate() {
            frames.push((format!("sent-{name}-{i}"), f));
        }
    }
    frames.extend(
        golden
            .iter()
            .map(|(n, b)| (format!("golden-{n}"), b.clone())),
    );
    // Identical frames (every join, the repo's `peer`) once.
    let mut seen = std::collections::BTreeSet::new();
    frames.retain(|(_, f)| seen.insert(f.clone()));

    repo.into_iter()
        .map(|(n, b)| ("repo_frames", n, b))
        .chain(frames.into_iter().map(|(n, b)| ("frame_decode", n, b)))
        .collect()
}
