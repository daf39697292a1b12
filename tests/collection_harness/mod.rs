//! A small world for the collection exchange tests (`core_collection.rs`):
//! repos on in-memory stores that keep exactly what was committed, linked
//! client-to-server by FIFO queues, every frame counted by type. A node can
//! be crashed (memory and uncompleted commits gone) and restarted from its
//! store, as a page reload or a server restart would.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast_core::collection;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::{Commit, StorageKey};
use holdfast_core::wire::{self, DecodeLimits, Message};

pub const T: Timestamp = Timestamp(1_000);

pub struct Node {
    pub name: String,
    pub repo: Repo,
    pub store: BTreeMap<StorageKey, Vec<u8>>,
    pub server: bool,
    /// A client without the collection exchange (like automerge-repo).
    pub plain: bool,
    /// Commits issued and not completed (completed by `run`).
    pending: VecDeque<(TaskId, Commit)>,
    restarts: u8,
}

pub struct Link {
    pub client: usize,
    pub client_conn: ConnId,
    pub server_conn: ConnId,
    pub up: bool,
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
}

#[derive(Default)]
pub struct World {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    next_conn: u64,
    /// Frames sent, per (sender node, message type).
    pub counts: BTreeMap<(usize, String), usize>,
    pub bytes: BTreeMap<usize, usize>,
    /// Stop completing commits (to crash with them outstanding).
    pub hold_commits: bool,
}

fn repo(
    name: &str,
    server: bool,
    gen: u8,
    store: &BTreeMap<StorageKey, Vec<u8>>,
    plain: bool,
) -> Repo {
    let mut actor = [0u8; 16];
    actor[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    actor[15] = gen;
    let mut cfg = RepoConfig::new(format!("{name}-{gen}"), actor, format!("{name}-s{gen}"));
    cfg.announce = !server;
    cfg.find_timeout_ms = 1_000;
    let mut r = Repo::new(cfg);
    if plain {
        // Speaks per-document sync only, as automerge-repo does.
        return r;
    }
    let prefix = collection::prefix();
    let records = store
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    r.restore_collection(records);
    r
}

impl World {
    /// A server (node 0) and `clients` clients, none connected.
    pub fn new(clients: usize) -> Self {
        Self::with_plain_clients(clients, 0)
    }

    /// Clients `1..=clients`, the last `plain` of them without the
    /// collection exchange.
    pub fn with_plain_clients(clients: usize, plain: usize) -> Self {
        let mut w = World::default();
        for i in 0..=clients {
            let plain = i > 0 && i > clients - plain;
            let name = if i == 0 {
                "server".to_string()
            } else {
                format!("c{i}")
            };
            let store = BTreeMap::new();
            w.nodes.push(Node {
                repo: repo(&name, i == 0, 0, &store, plain),
                name,
                store,
                server: i == 0,
                plain,
                pending: VecDeque::new(),
                restarts: 0,
            });
        }
        for c in 1..=clients {
            w.links.push(Link {
                client: c,
                client_conn: ConnId(0),
                server_conn: ConnId(0),
                up: false,
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
            });
        }
        w
    }

    pub fn connect(&mut self, c: usize) {
        let l = c - 1;
        self.next_conn += 2;
        let (cc, sc) = (ConnId(self.next_conn), ConnId(self.next_conn + 1));
        let link = &mut self.links[l];
        link.client_conn = cc;
        link.server_conn = sc;
        link.up = true;
        link.to_server.clear();
        link.to_client.clear();
        self.nodes[0].repo.connected(T, sc, Direction::Incoming);
        self.nodes[c].repo.connected(T, cc, Direction::Outgoing);
        self.run();
    }

    pub fn disconnect(&mut self, c: usize) {
        let link = &mut self.links[c - 1];
        if !link.up {
            return;
        }
        link.up = false;
        link.to_server.clear();
        link.to_client.clear();
        let (cc, sc) = (link.client_conn, link.server_conn);
        self.nodes[0].repo.disconnected(T, sc);
        self.nodes[c].repo.disconnected(T, cc);
        self.run();
    }

    /// Close node `n` cleanly (what it holds only in memory is written) and
    /// start it again from its store, as a page reload does.
    pub fn reload(&mut self, n: usize) {
        self.nodes[n].repo.persist_collection();
        self.run();
        self.restart(n);
    }

    /// Lose node `n`'s memory and its uncompleted commits; start it again
    /// from its store (its connections are cut).
    pub fn restart(&mut self, n: usize) {
        for c in 1..self.nodes.len() {
            if c == n || n == 0 {
                let link = &mut self.links[c - 1];
                link.up = false;
                link.to_server.clear();
                link.to_client.clear();
                let (cc, sc) = (link.client_conn, link.server_conn);
                if n == 0 {
                    self.nodes[c].repo.disconnected(T, cc);
                } else {
                    self.nodes[0].repo.disconnected(T, sc);
                }
            }
        }
        let node = &mut self.nodes[n];
        node.pending.clear();
        node.restarts += 1;
        node.repo = repo(
            &node.name,
            node.server,
            node.restarts,
            &node.store,
            node.plain,
        );
        self.run();
    }

    pub fn create(&mut self, n: usize, seed: u8) -> DocumentId {
        let id = DocumentId([seed; 16]);
        self.nodes[n]
            .repo
            .create(T, id, |tx| tx.put(ROOT, "v", 0i64).map(|_| ()))
            .unwrap();
        id
    }

    pub fn edit(&mut self, n: usize, id: DocumentId, v: i64) {
        self.nodes[n]
            .repo
            .change(T, &id, |tx| tx.put(ROOT, "v", v))
            .unwrap();
    }

    /// The value of `v` in `n`'s durable copy of `id`, from its store.
    pub fn stored_value(&self, n: usize, id: DocumentId) -> Option<i64> {
        let prefix = StorageKey::doc_prefix(&id);
        let mut bytes = Vec::new();
        for (k, v) in self.nodes[n].store.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if matches!(
                k.0.get(1).map(String::as_str),
                Some("snapshot" | "incremental")
            ) {
                bytes.extend_from_slice(v);
            }
        }
        let doc = automerge::Automerge::load(&bytes).ok()?;
        match doc.get(ROOT, "v").ok()?? {
            (automerge::Value::Scalar(s), _) => s.as_i64(),
            _ => None,
        }
    }

    pub fn sent(&self, n: usize, ty: &str) -> usize {
        self.counts.get(&(n, ty.to_string())).copied().unwrap_or(0)
    }

    pub fn reset_counts(&mut self) {
        self.counts.clear();
        self.bytes.clear();
    }

    /// Perform effects and deliver frames until nothing moves.
    pub fn run(&mut self) {
        loop {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(e) = self.nodes[n].repo.poll_effect() {
                    moved = true;
                    self.perform(n, e);
                }
                if !self.hold_commits {
                    if let Some((task, commit)) = self.nodes[n].pending.pop_front() {
                        moved = true;
                        apply(&mut self.nodes[n].store, commit);
                        self.nodes[n].repo.commit_done(T, task, Ok(()));
                    }
                }
            }
            for l in 0..self.links.len() {
                if !self.links[l].up {
                    continue;
                }
                let (c, cc, sc) = (
                    self.links[l].client,
                    self.links[l].client_conn,
                    self.links[l].server_conn,
                );
                if let Some(f) = self.links[l].to_server.pop_front() {
                    moved = true;
                    self.nodes[0].repo.frame(T, sc, &f);
                }
                if let Some(f) = self.links[l].to_client.pop_front() {
                    moved = true;
                    self.nodes[c].repo.frame(T, cc, &f);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn perform(&mut self, n: usize, e: Effect) {
        match e {
            Effect::Send { conn, frame } => {
                let ty = wire::decode(&frame, &DecodeLimits::default())
                    .map(|m: Message| m.type_name().to_string())
                    .unwrap_or_else(|e| {
                        panic!("{} sent an undecodable frame: {e}", self.nodes[n].name)
                    });
                *self.counts.entry((n, ty)).or_default() += 1;
                *self.bytes.entry(n).or_default() += frame.len();
                for link in self.links.iter_mut().filter(|l| l.up) {
                    if n == 0 && link.server_conn == conn {
                        link.to_client.push_back(frame.clone());
                    } else if n == link.client && link.client_conn == conn {
                        link.to_server.push_back(frame.clone());
                    }
                }
            }
            Effect::Close { .. } => panic!("{} closed a connection", self.nodes[n].name),
            Effect::Load { task, prefix } => {
                let records = self.nodes[n]
                    .store
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.nodes[n].repo.load_done(T, task, Ok(records));
            }
            Effect::Commit { task, commit } => self.nodes[n].pending.push_back((task, commit)),
            Effect::Event(Event::ConnectionError { error, .. }) => {
                panic!("{}: connection error {error}", self.nodes[n].name)
            }
            Effect::Event(_) => {}
        }
    }
}

fn apply(store: &mut BTreeMap<StorageKey, Vec<u8>>, c: Commit) {
    for k in c.deletes {
        store.remove(&k);
    }
    for p in c.delete_prefixes {
        store.retain(|k, _| !k.starts_with(&p));
    }
    for (k, v) in c.puts {
        store.insert(k, v);
    }
}
