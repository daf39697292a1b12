//! A peer's change held back for a dependency (`repo::admit`'s orphans)
//! whose dependency then arrives from storage (another writer's commit,
//! read by `Repo::refresh`: a server node on a shared PostgreSQL, a browser
//! tab): the change is admitted, committed and advertised to that peer at
//! once, without waiting for the peer's next message. (Before, it waited
//! for the next message carrying changes: 40-60 s after the writers stopped
//! in the multi-node end-to-end test, until a holdfast client's dial
//! backoff brought new changes.)

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};

mod store_image;

use store_image::Image;

const T: Timestamp = Timestamp(1_000);
const PEER: ConnId = ConnId(1);

fn repo(n: u8) -> Repo {
    let mut cfg = RepoConfig::new(format!("node-{n}"), [n; 16], "session");
    cfg.announce = false;
    Repo::new(cfg)
}

/// Perform `r`'s effects against `image` until none is left; the frames
/// it sent the peer, decoded.
fn pump(r: &mut Repo, image: &mut Image) -> Vec<Message> {
    let mut sent = Vec::new();
    while let Some(e) = r.poll_effect() {
        match e {
            Effect::Commit { task, commit } => {
                image.apply(&commit);
                r.commit_done(T, task, Ok(()));
            }
            Effect::Load { task, prefix } => r.load_done(T, task, Ok(image.range(&prefix))),
            Effect::Send { conn, frame } if conn == PEER => {
                sent.push(wire::decode(&frame, &DecodeLimits::default()).unwrap())
            }
            _ => {}
        }
    }
    sent
}

/// The heads of every `sync` message in `sent`.
fn advertised(sent: &[Message]) -> Vec<Vec<ChangeHash>> {
    sent.iter()
        .filter_map(|m| match m {
            Message::Sync { data, .. } => Some(sync::Message::decode(data).unwrap().heads),
            _ => None,
        })
        .collect()
}

#[test]
fn a_held_back_change_whose_dependency_comes_from_storage_is_committed_and_advertised() {
    let mut image = Image::default();
    let (mut a, mut b) = (repo(1), repo(2));
    let id = DocumentId([9; 16]);
    a.create(T, id, |tx| tx.put(ROOT, "k", 1)).unwrap();
    pump(&mut a, &mut image);
    b.find(T, id);
    pump(&mut b, &mut image);

    // B commits X; A has not read it yet.
    b.change(T, &id, |tx| tx.put(ROOT, "x", 1)).unwrap();
    pump(&mut b, &mut image);
    let x = b.durable_doc(&id).unwrap().get_heads()[0];
    let x_bytes = b
        .durable_doc(&id)
        .unwrap()
        .get_change_by_hash(&x)
        .unwrap()
        .raw_bytes()
        .to_vec();

    // The peer has X (from B) and makes C on it.
    let mut p = Automerge::load(&a.durable_doc(&id).unwrap().save()).unwrap();
    p.load_incremental(&x_bytes).unwrap();
    let mut tx = p.transaction();
    tx.put(ROOT, "c", 1).unwrap();
    tx.commit();
    let c = p.get_heads()[0];
    let c_bytes = p.get_change_by_hash(&c).unwrap().raw_bytes().to_vec();

    // The peer joins A and sends C alone (as after a Bloom filter false
    // positive on X): A holds it back, asking for X.
    a.connected(T, PEER, Direction::Incoming);
    let join = Message::Join {
        sender_id: "peer".into(),
        peer_metadata: PeerMetadata::default(),
        supported_protocol_versions: vec!["1".into()],
    };
    a.frame(T, PEER, &wire::encode(&join));
    pump(&mut a, &mut image);
    let msg = sync::Message {
        heads: vec![c],
        need: vec![],
        have: vec![],
        changes: vec![c_bytes].into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let frame = Message::Sync {
        request: false,
        document_id: id,
        sender_id: "peer".into(),
        target_id: "node-1".into(),
        data: msg.encode(),
    };
    a.frame(T, PEER, &wire::encode(&frame));
    pump(&mut a, &mut image);
    let durable = |a: &Repo| a.durable_doc(&id).unwrap().get_change_by_hash(&c).is_some();
    assert!(!durable(&a), "C waits for X");

    // X arrives from storage: C is committed and the peer is told, with
    // nothing more from the peer.
    a.refresh(T, id);
    let sent = pump(&mut a, &mut image);
    assert!(durable(&a), "C is committed once X is read from storage");
    let heads = advertised(&sent);
    assert!(
        heads.iter().any(|h| h.contains(&c)),
        "the peer is told A has C; advertised {heads:?}"
    );
    // And it is in storage: a third repo reads it.
    let mut fresh = repo(3);
    fresh.find(T, id);
    pump(&mut fresh, &mut image);
    assert!(fresh.doc(&id).unwrap().get_change_by_hash(&c).is_some());
}
