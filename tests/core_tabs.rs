//! Several repos on one store, as browser tabs on one IndexedDB database
//! (issue 15): another tab's commit reaches a tab through
//! `Repo::refresh` (a hint), is merged from storage and reported as from
//! `ChangeSource::Storage`; local work waits for nothing and is never
//! written twice; a find waiting for peers is answered by another tab's
//! commit; compaction never deletes what another tab wrote unseen; a
//! delete in one tab is a delete in the others, a compaction is not; a
//! tab that takes the sync connection over reads the index the others
//! wrote.

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ScalarValue, Value, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::StorageKey;

mod store_image;

use store_image::Image;

const T: Timestamp = Timestamp(1_000);

fn tab(n: u8) -> Repo {
    let mut cfg = RepoConfig::new(format!("tab-{n}"), [n; 16], "session");
    cfg.compact_after = 4;
    Repo::new(cfg)
}

/// What one pump of a tab did.
#[derive(Default)]
struct Pumped {
    events: Vec<Event>,
    puts: usize,
    deletes: Vec<StorageKey>,
}

/// Perform every effect of `r` against `image` (at once) until none is left.
fn pump(r: &mut Repo, image: &mut Image) -> Pumped {
    let mut out = Pumped::default();
    while let Some(e) = r.poll_effect() {
        match e {
            Effect::Commit { task, commit } => {
                out.puts += commit.puts.len();
                out.deletes.extend(commit.deletes.iter().cloned());
                image.apply(&commit);
                r.commit_done(T, task, Ok(()));
            }
            Effect::Load { task, prefix } => r.load_done(T, task, Ok(image.range(&prefix))),
            Effect::Event(ev) => out.events.push(ev),
            Effect::Send { .. } | Effect::Close { .. } => {}
        }
    }
    out
}

fn get(r: &Repo, doc: &DocumentId, key: &str) -> Option<i64> {
    match r.doc(doc)?.get(ROOT, key).unwrap()? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Int(n) => Some(*n),
            _ => None,
        },
        _ => None,
    }
}

fn set(r: &mut Repo, doc: &DocumentId, key: &str, v: i64) {
    r.change(T, doc, |tx| tx.put(ROOT, key, v)).unwrap();
}

fn from_storage(p: &Pumped) -> usize {
    p.events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::DocChanged {
                    source: ChangeSource::Storage,
                    ..
                }
            )
        })
        .count()
}

/// Tab `a` creates document `id` with `k = 1`; tab `b` opens it.
fn shared_doc(a: &mut Repo, b: &mut Repo, image: &mut Image, id: DocumentId) {
    a.create(T, id, |tx| tx.put(ROOT, "k", 1)).unwrap();
    pump(a, image);
    b.find(T, id);
    let p = pump(b, image);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::FindReady { .. })));
}

#[test]
fn another_tabs_commit_is_merged_on_a_hint_and_not_written_again() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([7; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    set(&mut a, &id, "k", 2);
    pump(&mut a, &mut image);
    assert_eq!(get(&b, &id, "k"), Some(1), "no hint yet");
    b.refresh(T, id);
    let p = pump(&mut b, &mut image);
    assert_eq!(get(&b, &id, "k"), Some(2));
    assert_eq!(from_storage(&p), 1);
    assert_eq!(p.puts, 0, "the other tab's change is not written again");
    assert_eq!(
        b.durable_doc(&id).unwrap().get_heads(),
        a.durable_doc(&id).unwrap().get_heads()
    );
    // A hint with nothing new: nothing reported.
    b.refresh(T, id);
    assert_eq!(from_storage(&pump(&mut b, &mut image)), 0);
}

#[test]
fn a_hint_during_local_work_is_taken_once_that_work_is_durable() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([8; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    set(&mut a, &id, "a", 1);
    pump(&mut a, &mut image);
    // B changes concurrently and is told of A's commit before its own is
    // durable: it commits its own first, then merges A's.
    set(&mut b, &id, "b", 1);
    b.refresh(T, id);
    let p = pump(&mut b, &mut image);
    assert_eq!(from_storage(&p), 1);
    assert_eq!((get(&b, &id, "a"), get(&b, &id, "b")), (Some(1), Some(1)));
    a.refresh(T, id);
    pump(&mut a, &mut image);
    assert_eq!((get(&a, &id, "a"), get(&a, &id, "b")), (Some(1), Some(1)));
    assert_eq!(
        a.doc(&id).unwrap().get_heads(),
        b.doc(&id).unwrap().get_heads()
    );
}

#[test]
fn a_find_waiting_for_peers_is_answered_by_another_tabs_commit() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([9; 16]);
    let find = b.find(T, id);
    let p = pump(&mut b, &mut image);
    assert!(p.events.is_empty(), "no peer, no deadline yet: it waits");
    a.create(T, id, |tx| tx.put(ROOT, "k", 3)).unwrap();
    pump(&mut a, &mut image);
    b.refresh(T, id);
    let p = pump(&mut b, &mut image);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::FindReady { find: f, .. } if *f == find)));
    assert_eq!(get(&b, &id, "k"), Some(3));
}

#[test]
fn compaction_in_one_tab_keeps_what_another_wrote_unseen() {
    let mut image = Image::default();
    // A never compacts; B does after a few records.
    let mut a = {
        let mut cfg = RepoConfig::new("tab-1", [1; 16], "session");
        cfg.compact_after = 1_000;
        Repo::new(cfg)
    };
    let mut b = tab(2);
    let id = DocumentId([10; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    // A writes records B never reads.
    let before: Vec<StorageKey> = image.0.keys().cloned().collect();
    for i in 0..3 {
        set(&mut a, &id, "a", i);
        pump(&mut a, &mut image);
    }
    let unseen: Vec<StorageKey> = image
        .0
        .keys()
        .filter(|k| !before.contains(k))
        .cloned()
        .collect();
    assert_eq!(unseen.len(), 3);
    // B writes until it compacts.
    let mut deleted = Vec::new();
    for i in 0..6 {
        set(&mut b, &id, "b", i);
        deleted.extend(pump(&mut b, &mut image).deletes);
    }
    assert!(!deleted.is_empty(), "B compacted");
    for k in &unseen {
        assert!(
            image.0.contains_key(k),
            "B deleted {k}, which it never read"
        );
    }
    // A fresh tab reads both tabs' changes.
    let mut c = tab(3);
    c.find(T, id);
    pump(&mut c, &mut image);
    assert_eq!((get(&c, &id, "a"), get(&c, &id, "b")), (Some(2), Some(5)));
}

#[test]
fn a_hint_during_the_load_is_taken_after_it() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([11; 16]);
    a.create(T, id, |tx| tx.put(ROOT, "k", 1)).unwrap();
    pump(&mut a, &mut image);
    // B's read sees storage as it was before A's next commit...
    b.find(T, id);
    let (task, records) = match b.poll_effect() {
        Some(Effect::Load { task, prefix }) => (task, image.range(&prefix)),
        other => panic!("expected a load, got {other:?}"),
    };
    set(&mut a, &id, "k", 2);
    pump(&mut a, &mut image);
    // ...and the hint for that commit arrives while B still loads.
    b.refresh(T, id);
    b.load_done(T, task, Ok(records));
    let p = pump(&mut b, &mut image);
    assert_eq!(get(&b, &id, "k"), Some(2), "the hint was not lost");
    assert_eq!(from_storage(&p), 1);
}

fn deleted(p: &Pumped, id: DocumentId) -> bool {
    p.events
        .iter()
        .any(|e| matches!(e, Event::DocDeleted { doc } if *doc == id))
}

#[test]
fn a_delete_in_one_tab_is_a_delete_in_the_others() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([12; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    let change = a.delete(T, &id).unwrap();
    let p = pump(&mut a, &mut image);
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::ChangeDurable { change: c, .. } if *c == change)));
    assert!(image.doc(&id).is_empty());
    // B's hint: nothing is stored under the document any more.
    assert!(b.refresh(T, id));
    let p = pump(&mut b, &mut image);
    assert!(deleted(&p, id), "B reports the delete");
    assert!(b.doc(&id).is_none(), "B no longer holds it");
    assert!(!b.refresh(T, id), "and a later hint finds nothing held");
}

#[test]
fn a_compaction_in_one_tab_is_not_a_delete_in_the_others() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([13; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    let read_by_b: Vec<StorageKey> = image.doc(&id).into_iter().map(|(k, _)| k).collect();
    // A writes until its snapshot covers (and deletes) every record B read.
    for i in 2..8 {
        set(&mut a, &id, "k", i);
        pump(&mut a, &mut image);
    }
    assert!(
        read_by_b.iter().all(|k| !image.0.contains_key(k)),
        "A compacted them away"
    );
    b.refresh(T, id);
    let p = pump(&mut b, &mut image);
    assert!(!deleted(&p, id));
    assert_eq!(get(&b, &id, "k"), Some(7), "B merged A's snapshot");
    assert!(!image.doc(&id).is_empty());
    // Nothing new since: still not a delete (what vanished left B's list).
    b.refresh(T, id);
    assert!(!deleted(&pump(&mut b, &mut image), id));
    assert_eq!(get(&b, &id, "k"), Some(7));
}

#[test]
fn a_snapshot_read_before_the_deletes_it_covers_is_not_a_delete() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([18; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    // A's compaction is two commits (its snapshot, then the deletes it
    // covers); B reads storage after each of A's commits.
    for i in 2..12 {
        set(&mut a, &id, "k", i);
        while let Some(e) = a.poll_effect() {
            if let Effect::Commit { task, commit } = e {
                image.apply(&commit);
                a.commit_done(T, task, Ok(()));
                b.refresh(T, id);
                let p = pump(&mut b, &mut image);
                assert!(!deleted(&p, id), "B took A's compaction for a delete");
            }
        }
    }
    assert_eq!(get(&b, &id, "k"), Some(11));
}

#[test]
fn a_commit_racing_a_delete_in_another_tab_is_deleted_with_it() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    let id = DocumentId([17; 16]);
    shared_doc(&mut a, &mut b, &mut image, id);
    // B's commit is in flight while A's delete lands.
    set(&mut b, &id, "k", 2);
    let (task, commit) = loop {
        match b.poll_effect() {
            Some(Effect::Commit { task, commit }) => break (task, commit),
            Some(_) => {}
            None => panic!("B commits"),
        }
    };
    a.delete(T, &id).unwrap();
    pump(&mut a, &mut image);
    b.refresh(T, id);
    image.apply(&commit);
    b.commit_done(T, task, Ok(()));
    assert_eq!(image.doc(&id).len(), 1, "only B's late record is left");
    let p = pump(&mut b, &mut image);
    assert!(deleted(&p, id), "B notices the delete");
    assert!(image.doc(&id).is_empty(), "and removes its leftover");
}

#[test]
fn a_tab_rereads_the_index_other_tabs_wrote() {
    let mut image = Image::default();
    let (mut a, mut b) = (tab(1), tab(2));
    a.restore_collection(Vec::new());
    b.restore_collection(Vec::new());
    // B stores a document A never opened, then another A holds.
    let only_b = DocumentId([14; 16]);
    b.create(T, only_b, |tx| tx.put(ROOT, "k", 1)).unwrap();
    pump(&mut b, &mut image);
    let shared = DocumentId([15; 16]);
    shared_doc(&mut b, &mut a, &mut image, shared);
    set(&mut b, &shared, "k", 2);
    pump(&mut b, &mut image);
    assert_eq!(a.indexed_heads(&only_b), None);
    let stored = image.range(&holdfast_core::collection::prefix());
    assert_eq!(a.reread_collection(stored.clone()), vec![only_b]);
    assert!(
        a.reread_collection(stored).is_empty(),
        "nothing new the second time"
    );
    assert_eq!(
        a.indexed_heads(&only_b),
        b.indexed_heads(&only_b),
        "A now offers it"
    );
    assert!(a.indexed_heads(&only_b).is_some_and(|h| !h.is_empty()));
    // A document A holds follows A's own state, not the index: the hint
    // brings B's commit, and the index entry with it.
    assert_ne!(a.indexed_heads(&shared), b.indexed_heads(&shared));
    a.refresh(T, shared);
    pump(&mut a, &mut image);
    assert_eq!(a.indexed_heads(&shared), b.indexed_heads(&shared));
    // Both tabs started on an empty store and each wrote a storage id: the
    // one stored (the last written) is the one a fresh tab would use.
    let mut c = tab(3);
    let stored = image.range(&holdfast_core::collection::prefix());
    c.restore_collection(stored.clone());
    b.reread_collection(stored);
    assert_ne!(b.config().metadata.storage_id.as_deref(), Some("tab-2"));
    assert_eq!(
        b.config().metadata.storage_id,
        c.config().metadata.storage_id
    );
}

#[test]
fn a_find_fails_when_the_tab_holding_the_connection_found_nothing() {
    let mut image = Image::default();
    let mut a = {
        let mut cfg = RepoConfig::new("tab-1", [1; 16], "session");
        cfg.find_timeout_ms = 30_000;
        Repo::new(cfg)
    };
    let id = DocumentId([16; 16]);
    let find = a.find(T, id);
    let p = pump(&mut a, &mut image);
    assert!(p.events.is_empty(), "the find waits for peers");
    a.unavailable_elsewhere(T, id);
    let p = pump(&mut a, &mut image);
    assert!(p.events.iter().any(|e| matches!(
        e,
        Event::FindFailed { find: f, error: FindError::Unavailable, .. } if *f == find
    )));
}
