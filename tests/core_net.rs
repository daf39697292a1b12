//! The repo's protocol paths, driven by hand frame by frame: handshake,
//! request / doc-unavailable, bad input, ephemeral relay, find. The durable
//! acks are in `core_net_acks.rs`.

mod net_harness;

use automerge::sync;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use net_harness::*;

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
