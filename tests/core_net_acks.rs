//! The repo's durable acks, driven by hand frame by frame: a server
//! acknowledges a client's changes only after its commit completed, and a
//! reply queued behind changes does not swallow their ack.

mod net_harness;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use net_harness::*;

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
