//! The seed corpus: real documents edited by 2–3 actors (map, text, list and
//! counter edits), some held by the repo, and the genuine sync messages a
//! peer sends while syncing them with a fresh repo.
//!
//! Everything is deterministic (fixed actor ids, change times and RNG seed),
//! so a finding file replays against the same corpus on any machine.

use std::collections::BTreeSet;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, Automerge, AutomergeError, ChangeHash, ObjType, ReadDoc, ScalarValue, ROOT,
};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{self, DecodeLimits, Message};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::driver::{Driver, Image};
use crate::format::{Chunk, Hash, SyncMsg, CHUNK_CHANGE};
use crate::{PEER_ID, SERVER_ID};

/// The corpus RNG's seed: fixed, independent of the run's `--seed`.
const CORPUS_SEED: u64 = 0x686f_6c64_6661_7374;

/// One genuine sync session: the sync messages a peer sent for `doc`, in
/// order, each with whether it went as `request` (the peer had nothing).
#[derive(Clone, Debug)]
pub struct Session {
    pub name: String,
    pub doc: DocumentId,
    pub msgs: Vec<(bool, Vec<u8>)>,
}

pub struct Corpus {
    /// Storage holding the documents the repo has before any input.
    pub image: Image,
    pub docs: Vec<DocumentId>,
    pub sessions: Vec<Session>,
    /// Every change hash of every document.
    pub hashes: Vec<Hash>,
    /// Every actor id of every document.
    pub actors: Vec<Vec<u8>>,
    /// Every change chunk of every document (uncompressed).
    pub chunks: Vec<Vec<u8>>,
    /// Every genuine sync message (for splicing).
    pub messages: Vec<Vec<u8>>,
}

fn actor(tag: u8, i: u8) -> ActorId {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[1] = i;
    for (k, x) in b.iter_mut().enumerate().skip(2) {
        *x = (k as u8).wrapping_mul(37) ^ tag ^ i;
    }
    ActorId::from(b)
}

fn opts(time: i64) -> CommitOptions {
    CommitOptions::default().with_time(time)
}

const WORDS: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "δέλτα",
    "epsilon",
    "🦀",
    "zeta",
    "",
    "\n",
    "eta theta",
];

fn obj(doc: &Automerge, key: &str) -> automerge::ObjId {
    doc.get(ROOT, key)
        .expect("readable")
        .expect("created by the first change")
        .1
}

/// One change by `doc`'s actor: 1–4 random operations.
fn edit(rng: &mut ChaCha8Rng, doc: &mut Automerge, time: i64, big: bool) {
    let text = obj(doc, "text");
    let items = obj(doc, "items");
    let meta = obj(doc, "meta");
    let n = rng.random_range(1..=4);
    let choices: Vec<u32> = (0..n).map(|_| rng.random_range(0..7)).collect();
    let words: Vec<&str> = (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect();
    let nums: Vec<u64> = (0..3 * n).map(|_| rng.random_range(0..1000)).collect();
    doc.transact_with(
        |_| opts(time),
        |tx| {
            if big {
                // A paste of over 256 bytes: automerge's DEFLATE threshold.
                let len = tx.length(&text);
                tx.splice_text(&text, len, 0, &"lorem ipsum dolor sit amet ".repeat(20))?;
            }
            for (i, c) in choices.iter().enumerate() {
                let (a, b) = (nums[3 * i] as usize, nums[3 * i + 1] as usize);
                match c {
                    0 => tx.put(ROOT, ["title", "n", "flag", "owner"][a % 4], words[i])?,
                    1 => tx.put(ROOT, "n", nums[3 * i + 2] as i64)?,
                    2 => {
                        let len = tx.length(&text);
                        let pos = a % (len + 1);
                        let del = if len > pos { (b % 3).min(len - pos) } else { 0 };
                        tx.splice_text(&text, pos, del as isize, words[i])?;
                    }
                    3 => {
                        let len = tx.length(&items);
                        tx.insert(&items, a % (len + 1), nums[3 * i + 2] as i64)?;
                    }
                    4 => {
                        let len = tx.length(&items);
                        if len > 0 {
                            tx.delete(&items, a % len)?;
                        } else {
                            let m = tx.insert_object(&items, 0, ObjType::Map)?;
                            tx.put(&m, "x", true)?;
                        }
                    }
                    5 => tx.increment(&meta, "count", (a % 7) as i64 - 3)?,
                    _ => {
                        let m = tx.put_object(&meta, format!("k{}", a % 4), ObjType::Map)?;
                        tx.put(&m, "v", ScalarValue::F64(b as f64 / 7.0))?;
                    }
                }
            }
            Ok::<(), AutomergeError>(())
        },
    )
    .expect("edit applies");
}

/// A document history: `steps` changes by `actors` forks, merged now and
/// then; returns the merge of everything and the heads after each step.
struct History {
    full: Automerge,
    checkpoints: Vec<Vec<ChangeHash>>,
}

fn history(
    rng: &mut ChaCha8Rng,
    tag: u8,
    actors: u8,
    steps: usize,
    big_at: Option<usize>,
) -> History {
    let mut first = Automerge::new().with_actor(actor(tag, 0));
    first
        .transact_with(
            |_| opts(1_700_000_000),
            |tx| {
                tx.put_object(ROOT, "text", ObjType::Text)?;
                tx.put_object(ROOT, "items", ObjType::List)?;
                let m = tx.put_object(ROOT, "meta", ObjType::Map)?;
                tx.put(&m, "count", ScalarValue::counter(0))?;
                tx.put(ROOT, "title", "seed")?;
                Ok::<(), AutomergeError>(())
            },
        )
        .expect("first change");
    let mut forks: Vec<Automerge> = (0..actors)
        .map(|i| first.fork().with_actor(actor(tag, i)))
        .collect();
    let mut union = first.fork();
    let mut checkpoints = vec![union.get_heads()];
    for step in 0..steps {
        let k = rng.random_range(0..actors as usize);
        if rng.random_bool(0.3) {
            // Catch up with another actor first (a merge makes later changes
            // depend on several heads).
            let j = rng.random_range(0..actors as usize);
            if j != k {
                let mut other = forks[j].fork();
                forks[k].merge(&mut other).expect("merge");
            }
        }
        let time = 1_700_000_000 + 60 * step as i64;
        edit(rng, &mut forks[k], time, big_at == Some(step));
        union.merge(&mut forks[k]).expect("merge");
        checkpoints.push(union.get_heads());
    }
    History {
        full: union,
        checkpoints,
    }
}

/// What the repo and the peer hold of one document before a session.
struct Scenario {
    name: &'static str,
    repo: Option<Automerge>,
    peer: Automerge,
    /// After the first session, the peer makes this many more changes and
    /// syncs again on a new connection, keeping its sync state (so that its
    /// `have` names a `lastSync`).
    reconnect_edits: usize,
}

fn at(h: &History, step: usize) -> Automerge {
    h.full.fork_at(&h.checkpoints[step]).expect("known heads")
}

fn scenarios(rng: &mut ChaCha8Rng) -> Vec<Scenario> {
    let mut out = Vec::new();
    // The peer has the repo's document plus its actors' next changes.
    let h = history(rng, 1, 2, 12, None);
    out.push(Scenario {
        name: "next-changes",
        repo: Some(at(&h, 10)),
        peer: h.full.fork(),
        reconnect_edits: 1,
    });
    let h = history(rng, 2, 3, 20, None);
    out.push(Scenario {
        name: "next-changes-3-actors",
        repo: Some(at(&h, 17)),
        peer: h.full.fork(),
        reconnect_edits: 2,
    });
    // The repo has never seen the document: the peer sends all of it (a v2
    // message with one document chunk, as the repo advertises v2 support).
    let h = history(rng, 3, 2, 8, None);
    out.push(Scenario {
        name: "new-doc",
        repo: None,
        peer: h.full.fork(),
        reconnect_edits: 0,
    });
    // The peer is behind: it sends a Bloom filter, the repo sends changes.
    let h = history(rng, 4, 3, 16, None);
    out.push(Scenario {
        name: "peer-behind",
        repo: Some(h.full.fork()),
        peer: at(&h, 8),
        reconnect_edits: 1,
    });
    // The peer has nothing: `request`.
    let h = history(rng, 5, 2, 10, None);
    out.push(Scenario {
        name: "peer-empty",
        repo: Some(h.full.fork()),
        peer: Automerge::new().with_actor(actor(5, 9)),
        reconnect_edits: 0,
    });
    // Diverged: each side has changes the other lacks.
    let h = history(rng, 6, 2, 14, None);
    let mut repo_side = at(&h, 7).with_actor(actor(6, 7));
    for i in 0..3 {
        edit(rng, &mut repo_side, 1_800_000_000 + i, false);
    }
    out.push(Scenario {
        name: "diverged",
        repo: Some(repo_side),
        peer: h.full.fork(),
        reconnect_edits: 1,
    });
    // A change of over 256 bytes (the size at which automerge compresses).
    let h = history(rng, 7, 2, 10, Some(9));
    out.push(Scenario {
        name: "big-change",
        repo: Some(at(&h, 9)),
        peer: h.full.fork(),
        reconnect_edits: 0,
    });
    // Already in sync: heads and a Bloom filter, no changes.
    let h = history(rng, 8, 2, 10, None);
    out.push(Scenario {
        name: "in-sync",
        repo: Some(h.full.fork()),
        peer: h.full.fork(),
        reconnect_edits: 1,
    });
    out
}

/// Runs a genuine sync between `peer` and the repo in `d` on a new
/// connection; returns the messages the peer sent.
pub fn sync_session(
    d: &mut Driver,
    doc: DocumentId,
    peer: &mut Automerge,
    state: &mut sync::State,
) -> Vec<(bool, Vec<u8>)> {
    let conn = d.open().expect("handshake");
    let mut msgs = Vec::new();
    for _round in 0..16 {
        let Some(m) = peer.generate_sync_message(state) else {
            break;
        };
        let request = peer.get_heads().is_empty();
        let data = m.encode();
        msgs.push((request, data.clone()));
        let frame = wire::encode(&Message::Sync {
            request,
            document_id: doc,
            sender_id: PEER_ID.into(),
            target_id: SERVER_ID.into(),
            data,
        });
        let out = d.frame(conn, &frame);
        assert!(
            !out.closed,
            "genuine sync closed the connection: {:?}",
            out.errors
        );
        let mut answered = false;
        for f in &out.sent {
            match wire::decode(f, &DecodeLimits::default()).expect("repo frames decode") {
                Message::Sync { data, .. } => {
                    let m = sync::Message::decode(&data).expect("repo sync message decodes");
                    peer.receive_sync_message(state, m).expect("peer applies");
                    answered = true;
                }
                Message::DocUnavailable { .. } => return msgs,
                _ => {}
            }
        }
        if !answered && msgs.len() > 1 {
            // The repo had nothing to say; let the peer speak once more
            // (it may still owe changes), then stop.
            if peer.generate_sync_message(&mut state.clone()).is_none() {
                break;
            }
        }
    }
    d.close(conn);
    msgs
}

impl Corpus {
    pub fn build() -> Corpus {
        let mut rng = ChaCha8Rng::seed_from_u64(CORPUS_SEED);
        let scenarios = scenarios(&mut rng);

        // The repo's documents, made durable through the repo itself.
        let mut setup = Driver::new(true, Image::default());
        let docs: Vec<DocumentId> = (0..scenarios.len())
            .map(|i| {
                let mut b = [0u8; 16];
                b[0] = 0xd0 + i as u8;
                b[15] = i as u8;
                DocumentId(b)
            })
            .collect();
        for (s, id) in scenarios.iter().zip(&docs) {
            if let Some(r) = &s.repo {
                setup.import(*id, &r.save());
            }
        }
        let image = setup.image.clone();

        let mut sessions = Vec::new();
        let mut hashes = BTreeSet::new();
        let mut actors = BTreeSet::new();
        let mut all_chunks = BTreeSet::new();
        for (mut s, id) in scenarios.into_iter().zip(docs.iter().copied()) {
            for doc in s.repo.iter().chain(std::iter::once(&s.peer)) {
                for c in doc.get_changes(&[]) {
                    hashes.insert(c.hash().0);
                    actors.insert(c.actor_id().to_bytes().to_vec());
                    all_chunks.insert(c.raw_bytes().to_vec());
                }
            }
            let mut d = Driver::new(true, image.clone());
            let mut state = sync::State::new();
            let msgs = sync_session(&mut d, id, &mut s.peer, &mut state);
            sessions.push(Session {
                name: s.name.to_string(),
                doc: id,
                msgs,
            });
            if s.reconnect_edits > 0 {
                // The peer goes on editing and syncs again from its saved
                // sync state, against the repo as it was (fresh from the
                // base image: every input starts there).
                let mut state = sync::State::decode(&state.encode()).expect("state roundtrip");
                let mut peer = s.peer.fork().with_actor(actor(0x70 + id.0[15], 1));
                for i in 0..s.reconnect_edits {
                    edit(&mut rng, &mut peer, 1_900_000_000 + i as i64, false);
                }
                for c in peer.get_changes(&[]) {
                    hashes.insert(c.hash().0);
                    actors.insert(c.actor_id().to_bytes().to_vec());
                }
                let mut d = Driver::new(true, image.clone());
                let msgs = sync_session(&mut d, id, &mut peer, &mut state);
                sessions.push(Session {
                    name: format!("{}-reconnect", s.name),
                    doc: id,
                    msgs,
                });
            }
        }

        let mut chunks = all_chunks;
        let mut messages = Vec::new();
        for s in &sessions {
            for (_, m) in &s.msgs {
                messages.push(m.clone());
                let parsed = SyncMsg::parse(m).expect("genuine messages parse");
                debug_assert_eq!(&parsed.encode(), m, "parse/encode roundtrip");
                for c in &parsed.changes {
                    for chunk in Chunk::parse_all(c).into_iter().flatten() {
                        if chunk.typ == CHUNK_CHANGE {
                            chunks.insert(chunk.encode());
                        }
                    }
                }
            }
        }
        Corpus {
            image,
            docs,
            sessions,
            hashes: hashes.into_iter().collect(),
            actors: actors.into_iter().collect(),
            chunks: chunks.into_iter().collect(),
            messages,
        }
    }

    /// A summary line per session, for `--corpus`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for sess in &self.sessions {
            let parts: Vec<String> = sess
                .msgs
                .iter()
                .map(|(req, m)| {
                    let p = SyncMsg::parse(m).expect("parses");
                    let chunk_types: Vec<u8> = p
                        .changes
                        .iter()
                        .flat_map(|c| Chunk::parse_all(c).unwrap_or_default())
                        .map(|c| c.typ)
                        .collect();
                    format!(
                        "{}v{} heads={} need={} have={} changes={}{:?} {}B",
                        if *req { "request " } else { "" },
                        p.version - 0x41,
                        p.heads.len(),
                        p.need.len(),
                        p.have.len(),
                        p.changes.len(),
                        chunk_types,
                        m.len()
                    )
                })
                .collect();
            s.push_str(&format!(
                "{} ({}): {}\n",
                sess.name,
                sess.doc,
                parts.join(" | ")
            ));
        }
        s.push_str(&format!(
            "{} docs, {} hashes, {} actors, {} change chunks, {} messages\n",
            self.docs.len(),
            self.hashes.len(),
            self.actors.len(),
            self.chunks.len(),
            self.messages.len()
        ));
        s
    }
}
