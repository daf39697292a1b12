//! The repo's protocol paths, driven by hand frame by frame: handshake,
//! request / doc-unavailable, bad input, ephemeral relay, durable acks.

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};

const T: Timestamp = Timestamp(5_000);
const C: ConnId = ConnId(1);

fn repo(peer: &str, announce: bool) -> Repo {
    let mut cfg = RepoConfig::new(peer, [peer.len() as u8; 16], format!("{peer}-session"));
    cfg.announce = announce;
    Repo::new(cfg)
}

fn drain(r: &mut Repo) -> Vec<Effect> {
    std::iter::from_fn(|| r.poll_effect()).collect()
}

fn sent(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { frame, .. } => {
                Some(wire::decode(frame, &DecodeLimits::default()).unwrap())
            }
            _ => None,
        })
        .collect()
}

fn closed(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::Close { .. }))
}

fn frame(m: &Message) -> Vec<u8> {
    wire::encode(m)
}

fn join(sender: &str, versions: &[&str]) -> Vec<u8> {
    frame(&Message::Join {
        sender_id: sender.into(),
        peer_metadata: PeerMetadata::default(),
        supported_protocol_versions: versions.iter().map(|s| s.to_string()).collect(),
    })
}

/// A server-side repo with one joined client "client".
fn joined_server() -> Repo {
    let mut s = repo("server", false);
    s.connected(T, C, Direction::Incoming);
    s.frame(T, C, &join("client", &["1"]));
    let out = sent(&drain(&mut s));
    assert!(
        matches!(&out[..], [Message::Peer { target_id, selected_protocol_version, .. }]
        if target_id == "client" && selected_protocol_version == "1")
    );
    s
}

/// Complete every commit successfully until idle; return the other effects.
fn settle(r: &mut Repo) -> Vec<Effect> {
    let mut rest = Vec::new();
    loop {
        let effects = drain(r);
        let mut any = false;
        for e in effects {
            match e {
                Effect::Commit { task, .. } => {
                    any = true;
                    r.commit_done(T, task, Ok(()));
                }
                Effect::Load { task, .. } => {
                    any = true;
                    r.load_done(T, task, Ok(vec![]));
                }
                other => rest.push(other),
            }
        }
        if !any {
            return rest;
        }
    }
}

#[test]
fn outgoing_connections_send_join_and_open_on_peer() {
    let mut c = repo("client", true);
    c.connected(T, C, Direction::Outgoing);
    let out = sent(&drain(&mut c));
    assert!(
        matches!(&out[..], [Message::Join { sender_id, supported_protocol_versions, .. }]
        if sender_id == "client" && supported_protocol_versions == &vec!["1".to_string()])
    );
    c.frame(
        T,
        C,
        &frame(&Message::Peer {
            sender_id: "server".into(),
            target_id: "client".into(),
            peer_metadata: PeerMetadata::default(),
            selected_protocol_version: "1".into(),
        }),
    );
    let effects = drain(&mut c);
    assert!(effects.iter().any(
        |e| matches!(e, Effect::Event(Event::PeerConnected { peer_id, .. }) if peer_id == "server")
    ));
}

#[test]
fn bad_input_gets_an_error_message_and_a_close() {
    let doc = DocumentId([1; 16]);
    let sync_from = |sender: &str, target: &str| {
        frame(&Message::Sync {
            request: false,
            document_id: doc,
            sender_id: sender.into(),
            target_id: target.into(),
            data: sync::Message {
                heads: vec![],
                need: vec![],
                have: vec![],
                changes: Vec::<Vec<u8>>::new().into(),
                flags: None,
                version: sync::MessageVersion::V1,
            }
            .encode(),
        })
    };
    type Case<'a> = (&'static str, Box<dyn Fn(&mut Repo) + 'a>);
    let cases: Vec<Case> = vec![
        ("garbage", Box::new(|r| r.frame(T, C, &[0xff, 0x00, 0x13]))),
        (
            "message before join",
            Box::new(move |r| r.frame(T, C, &sync_from("client", "server"))),
        ),
        (
            "unknown protocol version",
            Box::new(|r| r.frame(T, C, &join("client", &["2"]))),
        ),
    ];
    for (what, act) in cases {
        let mut s = repo("server", false);
        s.connected(T, C, Direction::Incoming);
        act(&mut s);
        let effects = drain(&mut s);
        assert!(
            matches!(sent(&effects).last(), Some(Message::Error { .. })),
            "{what}: error message sent"
        );
        assert!(closed(&effects), "{what}: connection closed");
        assert!(
            !effects
                .iter()
                .any(|e| matches!(e, Effect::Commit { .. } | Effect::Load { .. })),
            "{what}: nothing written"
        );
    }
    // After the handshake: a wrong senderId, a wrong targetId, undecodable sync data.
    for (what, f) in [
        ("wrong sender", sync_from("mallory", "server")),
        ("wrong target", sync_from("client", "elsewhere")),
        (
            "bad sync data",
            frame(&Message::Sync {
                request: false,
                document_id: doc,
                sender_id: "client".into(),
                target_id: "server".into(),
                data: vec![1, 2, 3],
            }),
        ),
    ] {
        let mut s = joined_server();
        s.frame(T, C, &f);
        let effects = settle(&mut s);
        let errors: Vec<_> = sent(&effects)
            .into_iter()
            .filter(|m| matches!(m, Message::Error { .. }))
            .collect();
        assert_eq!(errors.len(), 1, "{what}: one error message");
        assert!(closed(&effects), "{what}: connection closed");
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Event(Event::ConnectionError { .. }))),
            "{what}: event"
        );
    }
}

#[test]
fn a_request_for_an_unknown_document_is_answered_doc_unavailable() {
    let mut s = joined_server();
    let doc = DocumentId([2; 16]);
    let mut empty = automerge::Automerge::new();
    let mut st = sync::State::new();
    use automerge::sync::SyncDoc;
    let data = empty.generate_sync_message(&mut st).unwrap().encode();
    let _ = &mut empty;
    s.frame(
        T,
        C,
        &frame(&Message::Sync {
            request: true,
            document_id: doc,
            sender_id: "client".into(),
            target_id: "server".into(),
            data,
        }),
    );
    let effects = drain(&mut s);
    let Some(Effect::Load { task, .. }) = effects.first().cloned() else {
        panic!("the server looks in storage first")
    };
    s.load_done(T, task, Ok(vec![]));
    let effects = settle(&mut s);
    let out = sent(&effects);
    assert!(
        matches!(&out[..], [Message::DocUnavailable { document_id, target_id, .. }] if *document_id == doc && target_id == "client"),
        "{out:?}"
    );
}

/// A client pushes a document; the server acknowledges it (a sync message
/// whose heads cover the client's) only after the commit completed.
#[test]
fn the_server_acknowledges_only_after_its_commit() {
    let doc = DocumentId([3; 16]);
    let mut c = repo("client", true);
    c.create(T, doc, |tx| tx.put(ROOT, "k", "v")).unwrap();
    settle(&mut c);
    let heads = c.durable_doc(&doc).unwrap().get_heads();
    c.connected(T, C, Direction::Outgoing);
    drain(&mut c);
    c.frame(
        T,
        C,
        &frame(&Message::Peer {
            sender_id: "server".into(),
            target_id: "client".into(),
            peer_metadata: PeerMetadata::default(),
            selected_protocol_version: "1".into(),
        }),
    );

    let mut s = joined_server();
    // Shuttle frames until the server holds the doc's changes, keeping the
    // server's commits pending.
    let mut to_server: Vec<Vec<u8>> = drain(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send { frame, .. } => Some(frame),
            _ => None,
        })
        .collect();
    let mut pending_commit = None;
    for _ in 0..10 {
        for f in to_server.drain(..) {
            s.frame(T, C, &f);
        }
        let mut replies = Vec::new();
        for e in drain(&mut s) {
            match e {
                Effect::Load { task, .. } => {
                    s.load_done(T, task, Ok(vec![]));
                    replies.extend(drain(&mut s));
                }
                other => replies.push(other),
            }
        }
        for e in &replies {
            if let Effect::Commit { task, .. } = e {
                pending_commit = Some(*task);
            }
            if let Effect::Send { frame, .. } = e {
                if let Message::Sync { data, .. } =
                    wire::decode(frame, &DecodeLimits::default()).unwrap()
                {
                    let m = sync::Message::decode(&data).unwrap();
                    assert!(
                        pending_commit.is_none() || !heads.iter().all(|h| m.heads.contains(h)),
                        "acknowledged before durable"
                    );
                }
            }
        }
        if pending_commit.is_some() {
            break;
        }
        for e in replies {
            if let Effect::Send { frame, .. } = e {
                c.frame(T, C, &frame);
            }
        }
        to_server = drain(&mut c)
            .into_iter()
            .filter_map(|e| match e {
                Effect::Send { frame, .. } => Some(frame),
                _ => None,
            })
            .collect();
    }
    let task = pending_commit.expect("the server commits the pushed changes");
    assert!(
        s.durable_doc(&doc).unwrap().get_heads().is_empty(),
        "not durable yet"
    );
    assert_eq!(
        s.doc(&doc).unwrap().get_heads(),
        heads,
        "applied to the working doc"
    );
    s.commit_done(T, task, Ok(()));
    let server_effects = drain(&mut s);
    let acks: Vec<sync::Message> = sent(&server_effects)
        .into_iter()
        .filter_map(|m| match m {
            Message::Sync { data, .. } => Some(sync::Message::decode(&data).unwrap()),
            _ => None,
        })
        .collect();
    assert!(
        acks.iter().any(|m| m.heads == heads),
        "the ack advertising the client's heads follows the commit"
    );
    // The client learns its work is on the server only from that ack.
    let covered = |effects: &[Effect]| {
        effects
            .iter()
            .any(|e| matches!(e, Effect::Event(Event::SyncStatus { covered: true, .. })))
    };
    for e in &server_effects {
        if let Effect::Send { frame, .. } = e {
            c.frame(T, C, frame);
        }
    }
    assert!(
        covered(&drain(&mut c)),
        "SyncStatus covered after the durable ack"
    );
    c.change(T, &doc, |tx| tx.put(ROOT, "k2", 1)).unwrap();
    let after_change = drain(&mut c);
    assert!(
        after_change
            .iter()
            .any(|e| matches!(e, Effect::Event(Event::SyncStatus { covered: false, .. }))),
        "a new local change is not covered"
    );
    assert_eq!(
        s.doc(&doc)
            .unwrap()
            .get::<_, &str>(ROOT, "k")
            .unwrap()
            .unwrap()
            .0
            .into_string()
            .ok(),
        Some("v".to_string())
    );
}

#[test]
fn ephemeral_messages_are_delivered_once_per_count_and_relayed() {
    let doc = DocumentId([4; 16]);
    let mut s = repo("server", false);
    for (conn, peer) in [(ConnId(1), "a"), (ConnId(2), "b")] {
        s.connected(T, conn, Direction::Incoming);
        s.frame(T, conn, &join(peer, &["1"]));
        // Each peer syncs the doc, so it is a subscriber.
        let mut st = sync::State::new();
        use automerge::sync::SyncDoc;
        let data = automerge::Automerge::new()
            .generate_sync_message(&mut st)
            .unwrap()
            .encode();
        s.frame(
            T,
            conn,
            &frame(&Message::Sync {
                request: true,
                document_id: doc,
                sender_id: peer.into(),
                target_id: "server".into(),
                data,
            }),
        );
        settle(&mut s);
    }
    let eph = |count: u64| {
        frame(&Message::Ephemeral {
            sender_id: "a".into(),
            target_id: "server".into(),
            count,
            session_id: "sess".into(),
            document_id: doc,
            data: vec![0xa1, 0x61, 0x78, 0x01],
        })
    };
    s.frame(T, ConnId(1), &eph(2));
    let effects = drain(&mut s);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Event(Event::Ephemeral { sender, .. }) if sender == "a")));
    let relayed: Vec<(ConnId, Message)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { conn, frame } => Some((
                *conn,
                wire::decode(frame, &DecodeLimits::default()).unwrap(),
            )),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&relayed[..], [(ConnId(2), Message::Ephemeral { sender_id, target_id, count: 2, .. })] if sender_id == "a" && target_id == "b"),
        "{relayed:?}"
    );
    for stale in [2, 1] {
        s.frame(T, ConnId(1), &eph(stale));
        assert!(
            drain(&mut s).is_empty(),
            "count {stale} is not above the last seen: dropped"
        );
    }
    s.frame(T, ConnId(1), &eph(3));
    assert!(!drain(&mut s).is_empty());
}

#[test]
fn find_asks_peers_and_fails_on_timeout_or_when_all_say_unavailable() {
    let doc = DocumentId([5; 16]);
    let mut c = repo("client", true);
    let f = c.find(T, doc);
    let effects = settle(&mut c); // storage has nothing
    assert!(effects.is_empty(), "no peers yet: wait");
    let deadline = c.poll_timeout().expect("a find timer");
    c.handle_timeout(deadline);
    let evs = drain(&mut c);
    assert!(evs.iter().any(|e| matches!(e, Effect::Event(Event::FindFailed { find, error: FindError::Unavailable, .. }) if *find == f)));

    let f2 = c.find(T, doc);
    c.connected(T, C, Direction::Outgoing);
    drain(&mut c);
    c.frame(
        T,
        C,
        &frame(&Message::Peer {
            sender_id: "server".into(),
            target_id: "client".into(),
            peer_metadata: PeerMetadata::default(),
            selected_protocol_version: "1".into(),
        }),
    );
    let out = sent(&drain(&mut c));
    assert!(
        out.iter().any(
            |m| matches!(m, Message::Sync { request: true, document_id, .. } if *document_id == doc)
        ),
        "{out:?}"
    );
    c.frame(
        T,
        C,
        &frame(&Message::DocUnavailable {
            document_id: doc,
            sender_id: "server".into(),
            target_id: "client".into(),
        }),
    );
    let evs = drain(&mut c);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Effect::Event(Event::FindFailed { find, .. }) if *find == f2)));
}

/// Frames both ways until nothing moves. The client's storage completes at
/// once; the server's commits are held in `held` (in issue order). Returns
/// the heads of every sync message the server sent.
fn exchange(
    c: &mut Repo,
    s: &mut Repo,
    held: &mut Vec<TaskId>,
    mut to_client: Vec<Vec<u8>>,
) -> Vec<Vec<automerge::ChangeHash>> {
    let mut advertised = Vec::new();
    loop {
        for f in to_client.drain(..) {
            c.frame(T, C, &f);
        }
        let to_server: Vec<Vec<u8>> = settle(c)
            .into_iter()
            .filter_map(|e| match e {
                Effect::Send { frame, .. } => Some(frame),
                _ => None,
            })
            .collect();
        for f in &to_server {
            s.frame(T, C, f);
        }
        loop {
            let effects = drain(s);
            if effects.is_empty() {
                break;
            }
            for e in effects {
                match e {
                    Effect::Load { task, .. } => s.load_done(T, task, Ok(vec![])),
                    Effect::Commit { task, .. } => held.push(task),
                    Effect::Send { frame, .. } => {
                        if let Message::Sync { data, .. } =
                            wire::decode(&frame, &DecodeLimits::default()).unwrap()
                        {
                            advertised.push(sync::Message::decode(&data).unwrap().heads);
                        }
                        to_client.push(frame);
                    }
                    _ => {}
                }
            }
        }
        if to_server.is_empty() && to_client.is_empty() {
            return advertised;
        }
    }
}

/// Changes that arrive while a commit is in flight wait for the next one,
/// and so does the client's change-less reply that follows them. Releasing
/// that reply must not swallow the acknowledgement of the changes: automerge
/// takes "their heads equal ours, no changes" as "they know our heads".
#[test]
fn a_reply_queued_behind_changes_does_not_swallow_their_ack() {
    let doc = DocumentId([4; 16]);
    let mut c = repo("client", true);
    let mut s = joined_server();
    c.connected(T, C, Direction::Outgoing);
    drain(&mut c);
    c.frame(
        T,
        C,
        &frame(&Message::Peer {
            sender_id: "server".into(),
            target_id: "client".into(),
            peer_metadata: PeerMetadata::default(),
            selected_protocol_version: "1".into(),
        }),
    );
    drain(&mut c);
    let mut held = Vec::new();
    c.create(T, doc, |tx| tx.put(ROOT, "k", "v1")).unwrap();
    let mut advertised = exchange(&mut c, &mut s, &mut held, vec![]);
    assert_eq!(
        held.len(),
        1,
        "the server holds the document's first commit"
    );
    // A second change reaches the server while its first commit is in flight.
    c.change(T, &doc, |tx| tx.put(ROOT, "k", "v2")).unwrap();
    advertised.extend(exchange(&mut c, &mut s, &mut held, vec![]));
    let want = c.durable_doc(&doc).unwrap().get_heads();
    // Complete the server's commits one at a time, shuttling in between.
    while !held.is_empty() {
        let task = held.remove(0);
        s.commit_done(T, task, Ok(()));
        advertised.extend(exchange(&mut c, &mut s, &mut held, vec![]));
    }
    assert_eq!(s.durable_doc(&doc).unwrap().get_heads(), want);
    assert!(
        advertised.contains(&want),
        "the server never advertised the client's heads {want:?}: {advertised:?}"
    );
}
