//! Two tabs on one store under seeded random interleavings (issue 15):
//! changes to one shared document in both, compaction after every few
//! records, hints at random moments, storage reads answered late (as of the
//! moment they were made) and commits landing late. Whatever the order:
//! neither tab ever takes the other's compaction for a delete, every change
//! either tab was told is durable is in storage (a fresh tab reads it), and
//! after a last hint both tabs hold the same document.
//!
//! `HOLDFAST_TABS_SEEDS=<n>` sets the seed count (default 300).

use std::collections::{BTreeSet, HashMap};

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::{Commit, StorageKey};

mod store_image;

use store_image::Image;

const T: Timestamp = Timestamp(1_000);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Records as a read returns them.
type Records = Vec<(StorageKey, Vec<u8>)>;

/// A tab and what storage owes it: commits not yet landed, reads made but
/// not yet answered (their records as of the moment they were made).
struct Tab {
    repo: Repo,
    commits: Vec<(TaskId, Commit)>,
    reads: Vec<(TaskId, Records)>,
    /// Keys set by changes not yet reported durable.
    pending: HashMap<ChangeId, String>,
    deleted: bool,
}

impl Tab {
    fn new(n: u8) -> Self {
        let mut cfg = RepoConfig::new(format!("tab-{n}"), [n; 16], "session");
        cfg.compact_after = 3;
        Self {
            repo: Repo::new(cfg),
            commits: Vec::new(),
            reads: Vec::new(),
            pending: HashMap::new(),
            deleted: false,
        }
    }

    /// Take the repo's effects: reads are made now, commits wait.
    fn poll(&mut self, image: &Image, reported: &mut BTreeSet<String>) {
        while let Some(e) = self.repo.poll_effect() {
            match e {
                Effect::Commit { task, commit } => self.commits.push((task, commit)),
                Effect::Load { task, prefix } => self.reads.push((task, image.range(&prefix))),
                Effect::Event(Event::ChangeDurable { change, .. }) => {
                    if let Some(k) = self.pending.remove(&change) {
                        reported.insert(k);
                    }
                }
                Effect::Event(Event::DocDeleted { .. }) => self.deleted = true,
                Effect::Event(_) | Effect::Send { .. } | Effect::Close { .. } => {}
            }
        }
    }

    /// Land the oldest commit, or answer the oldest read.
    fn storage_step(&mut self, image: &mut Image, commit: bool) -> bool {
        if commit && !self.commits.is_empty() {
            let (task, c) = self.commits.remove(0);
            image.apply(&c);
            self.repo.commit_done(T, task, Ok(()));
            return true;
        }
        if !self.reads.is_empty() {
            let (task, records) = self.reads.remove(0);
            self.repo.load_done(T, task, Ok(records));
            return true;
        }
        false
    }

    fn idle(&self) -> bool {
        self.commits.is_empty() && self.reads.is_empty()
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut image = Image::default();
    let mut reported = BTreeSet::new();
    let mut tabs = [Tab::new(1), Tab::new(2)];
    let id = DocumentId([42; 16]);
    tabs[0]
        .repo
        .create(T, id, |tx| tx.put(ROOT, "start", 0))
        .unwrap();
    tabs[0].poll(&image, &mut reported);
    while tabs[0].storage_step(&mut image, true) {
        tabs[0].poll(&image, &mut reported);
    }
    tabs[1].repo.find(T, id);
    tabs[1].poll(&image, &mut reported);
    while tabs[1].storage_step(&mut image, true) {
        tabs[1].poll(&image, &mut reported);
    }
    for step in 0..120 {
        let t = rng.below(2) as usize;
        let tab = &mut tabs[t];
        match rng.below(6) {
            0 | 1 => {
                let key = format!("t{t}_{step}");
                if let Ok((change, ())) =
                    tab.repo.change(T, &id, |tx| tx.put(ROOT, key.as_str(), 1))
                {
                    tab.pending.insert(change, key);
                }
            }
            2 => {
                tab.repo.refresh(T, id);
            }
            3 | 4 => {
                tab.storage_step(&mut image, true);
            }
            _ => {
                tab.storage_step(&mut image, false);
            }
        }
        tab.poll(&image, &mut reported);
        assert!(
            !tab.deleted,
            "seed {seed}: tab {t} took a compaction for a delete at step {step}"
        );
    }
    // Settle: land everything, then a last hint in each tab.
    for _ in 0..2 {
        for tab in tabs.iter_mut() {
            tab.repo.refresh(T, id);
            tab.poll(&image, &mut reported);
            while !tab.idle() {
                tab.storage_step(&mut image, true);
                tab.poll(&image, &mut reported);
            }
        }
    }
    for (t, tab) in tabs.iter().enumerate() {
        assert!(
            !tab.deleted,
            "seed {seed}: tab {t} took a compaction for a delete"
        );
        assert!(
            tab.pending.is_empty(),
            "seed {seed}: tab {t} has unreported changes"
        );
    }
    let mut fresh = Tab::new(3);
    fresh.repo.find(T, id);
    fresh.poll(&image, &mut reported);
    while fresh.storage_step(&mut image, true) {
        fresh.poll(&image, &mut reported);
    }
    let doc = fresh.repo.doc(&id).expect("stored");
    let missing: Vec<&String> = reported
        .iter()
        .filter(|k| doc.get(ROOT, k.as_str()).unwrap().is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: reported changes not in storage: {missing:?}"
    );
    let heads: Vec<_> = tabs
        .iter()
        .map(|t| t.repo.doc(&id).unwrap().get_heads())
        .collect();
    assert_eq!(
        heads[0], heads[1],
        "seed {seed}: the tabs differ after a last hint"
    );
    assert_eq!(
        heads[0],
        doc.get_heads(),
        "seed {seed}: a tab differs from storage"
    );
}

#[test]
fn two_tabs_under_random_interleavings_lose_nothing_and_never_see_a_false_delete() {
    let seeds: u64 = std::env::var("HOLDFAST_TABS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        run(seed);
    }
}
