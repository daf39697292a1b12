//! The simulated world: repos, a network of WebSocket-like links, storage
//! with a durable image, and the invariant checks. Everything is driven by
//! one seeded RNG and a virtual clock, so a seed replays exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjType, ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::{Commit, RecordKind, StorageError, StorageKey};
use holdfast_core::wire::{self, DecodeLimits};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub type Fail = String;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fault knobs for one run.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub crashes: bool,
    pub commit_failures: bool,
    pub network: bool,
}

/// Storage that keeps what was committed (the durable image) apart from the
/// one commit in flight. A crash keeps the image and maybe the in-flight
/// commit (it may have reached the disk before the acknowledgement was lost),
/// wholly or not at all.
#[derive(Default)]
struct SimStorage {
    image: BTreeMap<StorageKey, Vec<u8>>,
    in_flight: Option<(TaskId, Commit)>,
    fail_next: Option<StorageError>,
}

impl SimStorage {
    fn apply(&mut self, commit: Commit) {
        for k in commit.deletes {
            self.image.remove(&k);
        }
        for prefix in commit.delete_prefixes {
            self.image.retain(|k, _| !k.starts_with(&prefix));
        }
        for (k, v) in commit.puts {
            self.image.insert(k, v);
        }
    }

    /// Every change hash the image holds for `doc`, by loading it afresh.
    fn image_doc(&self, doc: &DocumentId) -> Automerge {
        let prefix = StorageKey::doc_prefix(doc);
        let mut am = Automerge::new();
        for (k, v) in self.image.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            if matches!(k.kind(), RecordKind::Chunk(_)) {
                am.load_incremental(v)
                    .expect("sim storage holds only valid chunks");
            }
        }
        am
    }
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
}

fn new_config(rng: &mut ChaCha8Rng, name: &str, server: bool) -> RepoConfig {
    let actor: [u8; 16] = rng.random();
    let mut cfg = RepoConfig::new(
        format!("{name}-{:x}", rng.random::<u32>()),
        actor,
        format!("s{:x}", rng.random::<u32>()),
    );
    cfg.announce = !server;
    cfg.find_timeout_ms = 5_000;
    cfg.compact_after = 4;
    cfg.limits = DecodeLimits::default();
    cfg
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
            let cfg = new_config(&mut rng, &name, server);
            nodes.push(Node {
                name,
                repo: Some(Repo::new(cfg)),
                storage: SimStorage::default(),
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

    // ---- network ----------------------------------------------------------

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn connect(&mut self, l: usize) -> Result<(), Fail> {
        let (c, s) = (self.links[l].client, self.links[l].server);
        if self.links[l].up || self.nodes[c].repo.is_none() || self.nodes[s].repo.is_none() {
            return Ok(());
        }
        let cc = ConnId(self.next_conn);
        let sc = ConnId(self.next_conn + 1);
        self.next_conn += 2;
        self.link_epoch[l] += 1;
        let link = &mut self.links[l];
        link.client_conn = cc;
        link.server_conn = sc;
        link.up = true;
        link.to_client.clear();
        link.to_server.clear();
        self.log(format!("link {l} up"));
        let now = Timestamp(self.now);
        self.nodes[s]
            .repo
            .as_mut()
            .expect("up")
            .connected(now, sc, Direction::Incoming);
        self.pump(s)?;
        self.nodes[c]
            .repo
            .as_mut()
            .expect("up")
            .connected(now, cc, Direction::Outgoing);
        self.pump(c)
    }

    /// The connection dies: frames in flight are lost, each side learns of
    /// it after a delay.
    pub fn cut(&mut self, l: usize) {
        if !self.links[l].up {
            return;
        }
        self.link_epoch[l] += 1;
        let link = &mut self.links[l];
        link.up = false;
        link.stalled = false;
        link.to_client.clear();
        link.to_server.clear();
        let (c, s, cc, sc) = (link.client, link.server, link.client_conn, link.server_conn);
        self.log(format!("link {l} cut"));
        for (node, conn) in [(c, cc), (s, sc)] {
            let at = self.now + self.rng.random_range(1..50);
            let incarnation = self.nodes[node].incarnation;
            self.schedule(
                at,
                Job::CloseNotify {
                    node,
                    conn,
                    incarnation,
                },
            );
        }
        let at = self.now + self.rng.random_range(100..3_000);
        self.schedule(at, Job::Reconnect { link: l });
    }

    fn link_of(&self, node: usize, conn: ConnId) -> Option<(usize, bool)> {
        self.links.iter().enumerate().find_map(|(i, l)| {
            if !l.up {
                None
            } else if l.client == node && l.client_conn == conn {
                Some((i, true))
            } else if l.server == node && l.server_conn == conn {
                Some((i, false))
            } else {
                None
            }
        })
    }

    fn send_frame(&mut self, node: usize, conn: ConnId, frame: Vec<u8>) {
        let Some((l, to_server)) = self.link_of(node, conn) else {
            return;
        };
        self.stats.frames += 1;
        let delay = if self.faults.network {
            self.rng.random_range(1..200)
        } else {
            5
        };
        let dup = self.faults.network && self.rng.random_bool(0.02);
        let queue = if to_server {
            &mut self.links[l].to_server
        } else {
            &mut self.links[l].to_client
        };
        let at = queue.back().map_or(0, |b| b.0).max(self.now + delay);
        queue.push_back((at, frame.clone()));
        if dup {
            queue.push_back((at, frame));
        }
        let epoch = self.link_epoch[l];
        self.schedule(
            at,
            Job::Deliver {
                link: l,
                to_server,
                epoch,
            },
        );
        if dup {
            self.schedule(
                at,
                Job::Deliver {
                    link: l,
                    to_server,
                    epoch,
                },
            );
        }
    }

    // ---- effects and invariants --------------------------------------------

    /// Drain a node's effects, checking the durability invariants on each.
    fn pump(&mut self, n: usize) -> Result<(), Fail> {
        loop {
            let Some(repo) = self.nodes[n].repo.as_mut() else {
                return Ok(());
            };
            let Some(effect) = repo.poll_effect() else {
                break;
            };
            match effect {
                Effect::Send { conn, frame } => {
                    self.check_frame(n, &frame)?;
                    self.send_frame(n, conn, frame);
                }
                Effect::Close { conn } => {
                    if let Some((l, _)) = self.link_of(n, conn) {
                        self.cut(l);
                    }
                }
                Effect::Load { task, prefix } => {
                    let at = self.now + self.rng.random_range(1..30);
                    let incarnation = self.nodes[n].incarnation;
                    self.schedule(
                        at,
                        Job::Storage {
                            node: n,
                            incarnation,
                            task,
                            load: Some(prefix),
                        },
                    );
                }
                Effect::Commit { task, commit } => {
                    self.stats.commits += 1;
                    let node = &mut self.nodes[n];
                    check!(
                        node.storage.in_flight.is_none(),
                        "{}: two commits in flight",
                        node.name
                    );
                    node.storage.in_flight = Some((task, commit));
                    let at = self.now + self.rng.random_range(1..40);
                    let incarnation = self.nodes[n].incarnation;
                    self.schedule(
                        at,
                        Job::Storage {
                            node: n,
                            incarnation,
                            task,
                            load: None,
                        },
                    );
                }
                Effect::Event(e) => self.check_event(n, e)?,
            }
        }
        self.arm_timer(n);
        Ok(())
    }

    fn arm_timer(&mut self, n: usize) {
        let deadline = self.nodes[n].repo.as_ref().and_then(|r| r.poll_timeout());
        if let Some(t) = deadline.filter(|t| Some(t.0) != self.nodes[n].timer_armed) {
            self.nodes[n].timer_armed = Some(t.0);
            let incarnation = self.nodes[n].incarnation;
            self.schedule(
                t.0.max(self.now),
                Job::Timer {
                    node: n,
                    incarnation,
                },
            );
        }
    }

    /// Heads must be in the node's durable image; record them as reported.
    fn check_durable(
        &mut self,
        n: usize,
        doc: DocumentId,
        heads: &[ChangeHash],
        what: &str,
    ) -> Result<(), Fail> {
        let name = self.nodes[n].name.clone();
        let image = self.nodes[n].image(&doc);
        for h in heads {
            check!(
                image.get_change_meta_by_hash(h).is_some(),
                "{name} reported {h} of {doc} in {what} before it was durable"
            );
        }
        self.nodes[n]
            .reported
            .entry(doc)
            .or_default()
            .extend(heads.iter().copied());
        Ok(())
    }

    fn check_frame(&mut self, n: usize, frame: &[u8]) -> Result<(), Fail> {
        let msg = wire::decode(frame, &DecodeLimits::default())
            .map_err(|e| format!("core sent an undecodable frame: {e}"))?;
        if let wire::Message::Sync {
            document_id, data, ..
        } = msg
        {
            let sm = sync::Message::decode(&data)
                .map_err(|e| format!("core sent a bad sync message: {e}"))?;
            self.check_durable(n, document_id, &sm.heads, "a sync message's heads")?;
            if std::env::var("HOLDFAST_SEED").is_ok() {
                let line = format!(
                    "{} sends sync {document_id}: heads {} need {} have {} changes {} flags {:?}",
                    self.nodes[n].name,
                    sm.heads.len(),
                    sm.need.len(),
                    sm.have.len(),
                    sm.changes.len(),
                    sm.flags
                );
                self.log(line);
            }
            // The changes it carries must be durable too.
            let mut carried = Automerge::new();
            let bytes: Vec<u8> = sm.changes.iter().flatten().copied().collect();
            if !bytes.is_empty() && carried.load_incremental(&bytes).is_ok() {
                let hashes: Vec<ChangeHash> =
                    carried.get_changes(&[]).iter().map(|c| c.hash()).collect();
                let name = self.nodes[n].name.clone();
                let image = self.nodes[n].image(&document_id);
                for h in hashes {
                    check!(
                        image.get_change_meta_by_hash(&h).is_some(),
                        "{name} shipped change {h} before it was durable"
                    );
                }
            }
        }
        Ok(())
    }

    fn check_event(&mut self, n: usize, e: Event) -> Result<(), Fail> {
        match e {
            Event::ChangeDurable { change, doc, heads } => {
                self.stats.durable += 1;
                let node = &mut self.nodes[n];
                check!(
                    node.outstanding.remove(&change),
                    "{} reported {change:?} twice or unknown",
                    node.name
                );
                if let Some(created) = node.creating.remove(&change) {
                    self.docs.push(created);
                }
                self.check_durable(n, doc, &heads, "ChangeDurable")?;
            }
            Event::ChangeFailed { change, doc, .. } => {
                self.stats.failed += 1;
                let node = &mut self.nodes[n];
                check!(
                    node.outstanding.remove(&change),
                    "{} failed {change:?} twice or unknown",
                    node.name
                );
                node.creating.remove(&change);
                let repo = node.repo.as_ref().expect("up");
                let (w, d) = (
                    repo.doc(&doc).map(|d| d.get_heads()),
                    repo.durable_doc(&doc).map(|d| d.get_heads()),
                );
                check!(w == d, "{}: after a failed commit the working doc {doc} is not back at its durable state", node.name);
            }
            Event::DocChanged { doc, after, .. } => {
                self.check_durable(n, doc, &after, "a change event")?
            }
            Event::FindReady { doc, .. } => {
                self.nodes[n].open.insert(doc);
                self.check_reload(n, doc)?;
            }
            Event::FindFailed { doc, error, .. } => {
                self.log(format!(
                    "{} find {doc} failed: {error:?}",
                    self.nodes[n].name
                ));
            }
            Event::SyncStatus {
                doc,
                conn,
                covered: false,
                ..
            } => {
                self.nodes[n].covered.insert((doc, conn), false);
            }
            Event::SyncStatus {
                doc,
                conn,
                covered: true,
                heads,
            } => {
                self.nodes[n].covered.insert((doc, conn), true);
                // "On the server" must mean durable on the server.
                if let Some((l, true)) = self.link_of(n, conn) {
                    let server = self.links[l].server;
                    let name = self.nodes[n].name.clone();
                    let image = self.nodes[server].image(&doc);
                    for h in &heads {
                        check!(
                            image.get_change_meta_by_hash(h).is_some(),
                            "{name} was told {h} of {doc} is on the server, but the server's disk lacks it"
                        );
                    }
                    self.stats.synced += 1;
                }
            }
            Event::StorageError { docs, .. } if std::env::var("HOLDFAST_SEED").is_ok() => {
                let line = format!("{} commit failed for {docs:?}", self.nodes[n].name);
                self.log(line);
            }
            Event::StorageRepaired { doc, .. } => {
                return Err(format!(
                    "{}: unexpected repair of {doc} (sim storage never corrupts)",
                    self.nodes[n].name
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// After a (re)load, everything this node ever reported must be back.
    fn check_reload(&mut self, n: usize, doc: DocumentId) -> Result<(), Fail> {
        let node = &self.nodes[n];
        let Some(reported) = node.reported.get(&doc) else {
            return Ok(());
        };
        let repo = node.repo.as_ref().expect("up");
        let am = repo.doc(&doc).ok_or("found doc not readable")?;
        for h in reported {
            check!(
                am.get_change_meta_by_hash(h).is_some(),
                "{} lost reported change {h} of {doc} after reload",
                node.name
            );
        }
        Ok(())
    }

    // ---- the clock ----------------------------------------------------------

    /// Run the next scheduled job, if any.
    pub fn step(&mut self) -> Result<bool, Fail> {
        let Some(Reverse((at, _, job))) = self.jobs.pop() else {
            return Ok(false);
        };
        self.now = self.now.max(at);
        let now = Timestamp(self.now);
        match job {
            Job::Deliver {
                link,
                to_server,
                epoch,
            } => {
                if self.link_epoch[link] != epoch || !self.links[link].up {
                    return Ok(true);
                }
                if self.links[link].stalled {
                    // A partition: the frame waits until the link heals.
                    self.schedule(
                        self.now + 100,
                        Job::Deliver {
                            link,
                            to_server,
                            epoch,
                        },
                    );
                    return Ok(true);
                }
                let l = &mut self.links[link];
                let q = if to_server {
                    &mut l.to_server
                } else {
                    &mut l.to_client
                };
                let Some((_, frame)) = q.pop_front() else {
                    return Ok(true);
                };
                let (node, conn) = if to_server {
                    (l.server, l.server_conn)
                } else {
                    (l.client, l.client_conn)
                };
                if std::env::var("HOLDFAST_SEED").is_ok() {
                    if let Ok(wire::Message::Sync {
                        document_id, data, ..
                    }) = wire::decode(&frame, &DecodeLimits::default())
                    {
                        if let Ok(sm) = sync::Message::decode(&data) {
                            let line =
                                format!(
                                "{} receives sync {document_id} on conn {}: heads {} changes {}",
                                self.nodes[node].name, conn.0, sm.heads.len(), sm.changes.len()
                            );
                            self.log(line);
                        }
                    }
                }
                if let Some(repo) = self.nodes[node].repo.as_mut() {
                    repo.frame(now, conn, &frame);
                    self.pump(node)?;
                }
            }
            Job::Storage {
                node,
                incarnation,
                task,
                load,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].repo.is_none() {
                    return Ok(true);
                }
                match load {
                    Some(prefix) => {
                        let st = &self.nodes[node].storage;
                        let recs: Vec<_> = st
                            .image
                            .range(prefix.clone()..)
                            .take_while(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        self.nodes[node]
                            .repo
                            .as_mut()
                            .expect("up")
                            .load_done(now, task, Ok(recs));
                    }
                    None => {
                        let nd = &mut self.nodes[node];
                        let (t, commit) = nd
                            .storage
                            .in_flight
                            .take()
                            .ok_or("commit completion without a commit")?;
                        check!(t == task, "commit completion for the wrong task");
                        let result = match nd.storage.fail_next.take() {
                            Some(err) => {
                                self.stats.commit_failures += 1;
                                Err(err)
                            }
                            None => {
                                nd.storage.apply(commit);
                                nd.image_cache.clear();
                                Ok(())
                            }
                        };
                        nd.repo.as_mut().expect("up").commit_done(now, task, result);
                    }
                }
                self.pump(node)?;
            }
            Job::Timer { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation {
                    self.nodes[node].timer_armed = None;
                    if let Some(r) = self.nodes[node].repo.as_mut() {
                        r.handle_timeout(now);
                        self.pump(node)?;
                    }
                }
            }
            Job::Restart { node } => self.restart(node)?,
            Job::Reconnect { link } => self.connect(link)?,
            Job::CloseNotify {
                node,
                conn,
                incarnation,
            } => {
                if self.nodes[node].incarnation == incarnation {
                    if let Some(r) = self.nodes[node].repo.as_mut() {
                        r.disconnected(now, conn);
                        self.pump(node)?;
                    }
                }
            }
        }
        Ok(true)
    }

    // ---- faults and actions -------------------------------------------------

    /// Crash a node: memory is gone; the in-flight commit may or may not have
    /// reached the disk, as a whole. Every reported head must be in what is left.
    pub fn crash(&mut self, n: usize) -> Result<(), Fail> {
        if self.nodes[n].repo.is_none() {
            return Ok(());
        }
        self.stats.crashes += 1;
        let landed = self.rng.random_bool(0.5);
        let node = &mut self.nodes[n];
        node.repo = None;
        node.incarnation += 1;
        node.outstanding.clear();
        node.creating.clear();
        node.timer_armed = None;
        node.storage.fail_next = None;
        if let Some((_, commit)) = node.storage.in_flight.take() {
            if landed {
                node.storage.apply(commit);
            }
        }
        node.image_cache.clear();
        let name = node.name.clone();
        self.log(format!(
            "{name} crashed (in-flight commit landed: {landed})"
        ));
        let docs: Vec<DocumentId> = self.nodes[n].reported.keys().copied().collect();
        for doc in docs {
            let reported = self.nodes[n].reported[&doc].clone();
            let image = self.nodes[n].image(&doc);
            for h in &reported {
                check!(
                    image.get_change_meta_by_hash(h).is_some(),
                    "{name} lost reported change {h} of {doc} in a crash"
                );
            }
        }
        for l in 0..self.links.len() {
            if self.links[l].client == n || self.links[l].server == n {
                self.cut(l);
            }
        }
        let at = self.now + self.rng.random_range(50..2_000);
        self.schedule(at, Job::Restart { node: n });
        Ok(())
    }

    fn restart(&mut self, n: usize) -> Result<(), Fail> {
        if self.nodes[n].repo.is_some() {
            return Ok(());
        }
        let name = self.nodes[n].name.clone();
        let server = self.nodes[n].server;
        let cfg = new_config(&mut self.rng, &name, server);
        self.nodes[n].repo = Some(Repo::new(cfg));
        self.log(format!("{name} restarted"));
        let open: Vec<DocumentId> = self.nodes[n].open.iter().copied().collect();
        self.nodes[n].open.clear();
        let now = Timestamp(self.now);
        for doc in open {
            self.nodes[n].repo.as_mut().expect("up").find(now, doc);
        }
        self.pump(n)?;
        for l in 0..self.links.len() {
            if self.links[l].client == n || self.links[l].server == n {
                self.connect(l)?;
            }
        }
        Ok(())
    }

    pub fn random_action(&mut self) -> Result<(), Fail> {
        let clients = self.nodes.len() - 1;
        let roll = self.rng.random_range(0..100);
        let c = self.rng.random_range(1..=clients);
        let now = Timestamp(self.now);
        match roll {
            0..=44 => self.local_change(c)?,
            45..=49 => {
                let id = DocumentId(self.rng.random());
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    let change = repo
                        .create(now, id, |tx| {
                            tx.put_object(ROOT, "text", ObjType::Text).map(|_| ())
                        })
                        .map_err(|e| format!("create failed: {e}"))?;
                    self.nodes[c].outstanding.insert(change);
                    self.nodes[c].creating.insert(change, id);
                    self.nodes[c].open.insert(id);
                    self.stats.changes += 1;
                    self.pump(c)?;
                }
            }
            50..=54 if !self.docs.is_empty() => {
                let d = self.docs[self.rng.random_range(0..self.docs.len())];
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    repo.find(now, d);
                    self.pump(c)?;
                }
            }
            55..=57 if self.faults.network => {
                let l = self.rng.random_range(0..self.links.len());
                self.cut(l);
            }
            58..=60 if self.faults.network => {
                let l = self.rng.random_range(0..self.links.len());
                let stalled = !self.links[l].stalled;
                self.links[l].stalled = stalled;
                self.log(format!("link {l} stalled: {stalled}"));
            }
            61..=62 if self.faults.crashes => {
                let n = self.rng.random_range(0..=clients);
                self.crash(n)?;
            }
            63..=66 if self.faults.commit_failures => {
                let n = self.rng.random_range(0..=clients);
                let err = match self.rng.random_range(0..3) {
                    0 => StorageError::QuotaExceeded("sim: quota".into()),
                    1 => StorageError::Aborted("sim: aborted".into()),
                    _ => StorageError::Io("sim: EIO".into()),
                };
                self.nodes[n].storage.fail_next = Some(err);
            }
            67..=69 if !self.docs.is_empty() => {
                let d = self.docs[self.rng.random_range(0..self.docs.len())];
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    let data = vec![self.rng.random::<u8>()];
                    repo.broadcast(now, d, data);
                    self.pump(c)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn local_change(&mut self, c: usize) -> Result<(), Fail> {
        let open: Vec<DocumentId> = self.nodes[c].open.iter().copied().collect();
        if open.is_empty() || self.nodes[c].repo.is_none() {
            return Ok(());
        }
        let d = open[self.rng.random_range(0..open.len())];
        let (key, val, pos) = (
            self.rng.random_range(0..5u8),
            self.rng.random::<i32>(),
            self.rng.random::<u16>(),
        );
        let now = Timestamp(self.now);
        let repo = self.nodes[c].repo.as_mut().expect("up");
        let res = repo.change(now, &d, |tx| {
            tx.put(ROOT, format!("k{key}"), val as i64)?;
            if let Some((_, text)) = tx.get(ROOT, "text")? {
                let len = tx.length(&text);
                let at = pos as usize % (len + 1);
                tx.splice_text(&text, at, 0, "x")?;
            }
            Ok::<_, automerge::AutomergeError>(())
        });
        match res {
            Ok((change, ())) => {
                self.stats.changes += 1;
                self.nodes[c].outstanding.insert(change);
                self.pump(c)
            }
            Err(ChangeError::Loading(_)) | Err(ChangeError::NotFound(_)) => Ok(()),
            Err(e) => Err(format!("change refused: {e}")),
        }
    }

    // ---- the end of a run ---------------------------------------------------

    /// Heal everything, bring every node up, open every document everywhere,
    /// run until quiet, and check that all replicas agree.
    pub fn converge(&mut self) -> Result<(), Fail> {
        self.faults = Faults {
            crashes: false,
            commit_failures: false,
            network: false,
        };
        for n in &mut self.nodes {
            n.storage.fail_next = None;
        }
        for n in 0..self.nodes.len() {
            self.restart(n)?;
        }
        for l in 0..self.links.len() {
            self.links[l].stalled = false;
            self.connect(l)?;
        }
        self.run_quiet(200_000)?;
        let now = Timestamp(self.now);
        let docs = self.docs.clone();
        for c in 1..self.nodes.len() {
            for d in &docs {
                if !self.nodes[c].open.contains(d) {
                    self.nodes[c].repo.as_mut().expect("up").find(now, *d);
                }
            }
            self.pump(c)?;
        }
        self.run_quiet(200_000)?;
        for d in &docs {
            let mut seen: Option<(String, Vec<ChangeHash>, automerge::hydrate::Value)> = None;
            for n in &self.nodes {
                let repo = n.repo.as_ref().expect("up");
                let Some(am) = repo.durable_doc(d) else {
                    check!(
                        n.server,
                        "{} cannot open {d} after the network healed",
                        n.name
                    );
                    continue;
                };
                let w = repo.doc(d).expect("ready").get_heads();
                check!(
                    w == am.get_heads(),
                    "{}: {d} has non-durable changes after quiet",
                    n.name
                );
                check!(
                    !am.get_heads().is_empty(),
                    "{}: {d} is empty after the network healed",
                    n.name
                );
                let (heads, value) = (am.get_heads(), am.hydrate(None));
                match &seen {
                    None => seen = Some((n.name.clone(), heads, value)),
                    Some((other, h, v)) => {
                        check!(
                            *h == heads,
                            "{d}: {} has heads {heads:?}, {other} has {h:?}",
                            n.name
                        );
                        check!(
                            *v == value,
                            "{d}: {} and {other} have different content",
                            n.name
                        );
                    }
                }
            }
        }
        for n in &self.nodes {
            check!(
                n.outstanding.is_empty(),
                "{}: {} local changes never reported",
                n.name,
                n.outstanding.len()
            );
        }
        // Every client was told its documents are on the server
        // (`whenSynced` resolves once the run is quiet).
        for (c, node) in self.nodes.iter().enumerate().skip(1) {
            let Some(link) = self.links.iter().find(|l| l.client == c && l.up) else {
                continue;
            };
            for d in &docs {
                let told = node
                    .covered
                    .get(&(*d, link.client_conn))
                    .copied()
                    .unwrap_or(false);
                let repo = node.repo.as_ref().expect("up");
                check!(
                    told,
                    "{}: never told that {d} is on the server after the run went quiet (working {:?}, durable {:?}, server advertised {:?}, server durable {:?}) client: {} / server: {}",
                    node.name,
                    repo.doc(d).map(|x| x.get_heads()),
                    repo.durable_doc(d).map(|x| x.get_heads()),
                    repo.peer_heads(d, link.client_conn),
                    self.nodes[0].repo.as_ref().and_then(|r| r.durable_doc(d)).map(|x| x.get_heads()),
                    repo.debug_doc(d),
                    self.nodes[0].repo.as_ref().map(|r| r.debug_doc(d)).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    fn run_quiet(&mut self, max_steps: usize) -> Result<(), Fail> {
        for _ in 0..max_steps {
            if !self.step()? {
                return Ok(());
            }
        }
        Err("the run did not go quiet".into())
    }
}
