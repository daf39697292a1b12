//! The simulated world: repos, a network of WebSocket-like links, storage
//! with a durable image, and the invariant checks. Everything is driven by
//! one seeded RNG and a virtual clock, so a seed replays exactly.
//!
//! This module holds the world's state and what every part shares; each child
//! adds one concern to `World` and uses only the children listed before it:
//! `storage`, `net`, `invariants`, `effects`, `lifecycle`, `clock`, `actions`,
//! `converge`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use automerge::{Automerge, ChangeHash};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::StorageKey;
use holdfast_core::wire::DecodeLimits;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use storage::SimStorage;

pub type Fail = String;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

// After `check!`, so that they can use it.
mod actions;
mod clock;
mod converge;
mod effects;
mod invariants;
mod lifecycle;
mod net;
mod storage;

/// Fault knobs for one run.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub crashes: bool,
    pub commit_failures: bool,
    pub network: bool,
}

struct Node {
    name: String,
    repo: Option<Repo>,
    storage: SimStorage,
    server: bool,
    /// Heads this node ever reported (evented or advertised), per document.
    reported: BTreeMap<DocumentId, BTreeSet<ChangeHash>>,
    /// Documents this node has open (created or found).
    open: BTreeSet<DocumentId>,
    outstanding: BTreeSet<ChangeId>,
    /// Per document: a cache of the durable image, invalidated on commit.
    image_cache: BTreeMap<DocumentId, Automerge>,
    incarnation: u64,
    /// Creations not yet durable: the document joins `World::docs` when it is.
    creating: BTreeMap<ChangeId, DocumentId>,
    timer_armed: Option<u64>,
    /// The last SyncStatus per (document, connection).
    covered: BTreeMap<(DocumentId, ConnId), bool>,
}

impl Node {
    fn image(&mut self, doc: &DocumentId) -> &Automerge {
        let storage = &self.storage;
        self.image_cache
            .entry(*doc)
            .or_insert_with(|| storage.image_doc(doc))
    }
}

struct Link {
    client: usize,
    server: usize,
    client_conn: ConnId,
    server_conn: ConnId,
    up: bool,
    stalled: bool,
    /// Frames per direction: (deliver at, frame). FIFO like a WebSocket.
    to_server: std::collections::VecDeque<(u64, Vec<u8>)>,
    to_client: std::collections::VecDeque<(u64, Vec<u8>)>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Job {
    Deliver {
        link: usize,
        to_server: bool,
        epoch: u64,
    },
    Storage {
        node: usize,
        incarnation: u64,
        task: TaskId,
        load: Option<StorageKey>,
    },
    Timer {
        node: usize,
        incarnation: u64,
    },
    Restart {
        node: usize,
    },
    Reconnect {
        link: usize,
    },
    CloseNotify {
        node: usize,
        conn: ConnId,
        incarnation: u64,
    },
}

pub struct World {
    rng: ChaCha8Rng,
    pub now: u64,
    nodes: Vec<Node>,
    links: Vec<Link>,
    link_epoch: Vec<u64>,
    jobs: BinaryHeap<Reverse<(u64, u64, Job)>>,
    seq: u64,
    next_conn: u64,
    pub docs: Vec<DocumentId>,
    faults: Faults,
    pub trace: Vec<String>,
    pub stats: Stats,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub changes: u64,
    pub durable: u64,
    pub failed: u64,
    pub crashes: u64,
    pub commit_failures: u64,
    pub frames: u64,
    pub commits: u64,
    pub synced: u64,
    /// `holdfast-resume` messages sent, and documents listed in
    /// `holdfast-changed` (the collection exchange at work).
    pub resumes: u64,
    pub listed: u64,
}

fn new_config(rng: &mut ChaCha8Rng, name: &str, server: bool) -> RepoConfig {
    let actor: [u8; 16] = rng.random();
    let mut cfg = RepoConfig::new(
        format!("{name}-{:x}", rng.random::<u32>()),
        actor,
        format!("s{:x}", rng.random::<u32>()),
    );
    cfg.announce = !server;
    if server {
        // Fewer documents held than the world has: the server evicts idle
        // ones and loads them again when asked (see `repo/evict.rs`).
        cfg.conn_limits.max_loaded_docs = 2;
    }
    cfg.find_timeout_ms = 5_000;
    cfg.compact_after = 4;
    cfg.limits = DecodeLimits::default();
    cfg
}

/// A repo on `storage`'s durable image, taking part in the collection
/// exchange from the index records it holds (as every adapter does at open).
fn new_repo(rng: &mut ChaCha8Rng, name: &str, server: bool, storage: &SimStorage) -> Repo {
    let mut repo = Repo::new(new_config(rng, name, server));
    let prefix = holdfast_core::collection::prefix();
    let records = storage
        .image
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    repo.restore_collection(records);
    if storage.image.is_empty() {
        repo.store_started_empty();
    }
    repo
}

impl World {
    pub fn new(seed: u64, clients: usize, faults: Faults) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        for i in 0..=clients {
            let server = i == 0;
            let name = if server {
                "server".to_string()
            } else {
                format!("c{i}")
            };
            let storage = SimStorage::default();
            nodes.push(Node {
                repo: Some(new_repo(&mut rng, &name, server, &storage)),
                name,
                storage,
                server,
                reported: BTreeMap::new(),
                open: BTreeSet::new(),
                outstanding: BTreeSet::new(),
                image_cache: BTreeMap::new(),
                incarnation: 0,
                creating: BTreeMap::new(),
                timer_armed: None,
                covered: BTreeMap::new(),
            });
        }
        let mut w = World {
            rng,
            now: 1_000,
            nodes,
            links: Vec::new(),
            link_epoch: Vec::new(),
            jobs: BinaryHeap::new(),
            seq: 0,
            next_conn: 1,
            docs: Vec::new(),
            faults,
            trace: Vec::new(),
            stats: Stats::default(),
        };
        for c in 1..=clients {
            w.links.push(Link {
                client: c,
                server: 0,
                client_conn: ConnId(0),
                server_conn: ConnId(0),
                up: false,
                stalled: false,
                to_server: Default::default(),
                to_client: Default::default(),
            });
            w.link_epoch.push(0);
        }
        w
    }

    fn schedule(&mut self, at: u64, job: Job) {
        self.seq += 1;
        self.jobs.push(Reverse((at, self.seq, job)));
    }

    fn log(&mut self, s: String) {
        self.trace.push(format!("t={} {s}", self.now));
    }
}
