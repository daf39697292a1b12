//! The repo state machine's local paths, driven by hand: group commit,
//! failure and revert, loading with corrupt records, compaction.

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::{ChunkKind, Commit, RecordKind, StorageError, StorageKey};

mod store_image;

use store_image::Image;

const T: Timestamp = Timestamp(1_000);

fn repo() -> Repo {
    let mut cfg = RepoConfig::new("peer-a", [1; 16], "session");
    cfg.compact_after = 3;
    Repo::new(cfg)
}

fn drain(r: &mut Repo) -> Vec<Effect> {
    std::iter::from_fn(|| r.poll_effect()).collect()
}

fn commits(effects: &[Effect]) -> Vec<(TaskId, Commit)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Commit { task, commit } => Some((*task, commit.clone())),
            _ => None,
        })
        .collect()
}

fn events(effects: &[Effect]) -> Vec<Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

fn set(r: &mut Repo, doc: &DocumentId, key: &str, v: i64) -> ChangeId {
    r.change(T, doc, |tx| tx.put(ROOT, key, v))
        .expect("change accepted")
        .0
}

fn durable_ids(evs: &[Event]) -> Vec<ChangeId> {
    evs.iter()
        .filter_map(|e| match e {
            Event::ChangeDurable { change, .. } => Some(*change),
            _ => None,
        })
        .collect()
}

/// Drive every commit to success against `image` until the repo is idle.
fn settle(r: &mut Repo, image: &mut Image) -> Vec<Event> {
    let mut evs = Vec::new();
    loop {
        let effects = drain(r);
        evs.extend(events(&effects));
        let cs = commits(&effects);
        if cs.is_empty() {
            return evs;
        }
        for (task, c) in cs {
            image.apply(&c);
            r.commit_done(T, task, Ok(()));
        }
    }
}

#[test]
fn a_change_is_reported_only_after_its_commit_completes() {
    let mut r = repo();
    let doc = DocumentId([9; 16]);
    let created = r.create(T, doc, |tx| tx.put(ROOT, "title", "")).unwrap();
    let effects = drain(&mut r);
    let cs = commits(&effects);
    assert_eq!(cs.len(), 1, "one commit for the creation");
    assert!(
        durable_ids(&events(&effects)).is_empty(),
        "nothing reported before the commit completes"
    );
    assert!(r.durable_doc(&doc).unwrap().get_heads().is_empty());
    r.commit_done(T, cs[0].0, Ok(()));
    let evs = events(&drain(&mut r));
    assert_eq!(durable_ids(&evs), vec![created]);
    assert!(evs.iter().any(|e| matches!(
        e,
        Event::DocChanged {
            source: ChangeSource::Local,
            ..
        }
    )));
    assert_eq!(
        r.durable_doc(&doc).unwrap().get_heads(),
        r.doc(&doc).unwrap().get_heads()
    );
}

#[test]
fn changes_made_while_a_commit_is_in_flight_share_the_next_commit() {
    let mut r = repo();
    let doc = DocumentId([2; 16]);
    r.create(T, doc, |tx| tx.put(ROOT, "n", 0)).unwrap();
    let first = commits(&drain(&mut r));
    assert_eq!(first.len(), 1);
    let ids: Vec<ChangeId> = (1..=50).map(|i| set(&mut r, &doc, "n", i)).collect();
    assert!(
        commits(&drain(&mut r)).is_empty(),
        "no second commit while one is in flight"
    );
    r.commit_done(T, first[0].0, Ok(()));
    let effects = drain(&mut r);
    let second = commits(&effects);
    assert_eq!(second.len(), 1, "fifty changes, one commit");
    assert_eq!(
        second[0].1.puts.len(),
        1,
        "one incremental record holds them all"
    );
    assert!(
        durable_ids(&events(&effects)).len() == 1,
        "only the creation is reported yet"
    );
    r.commit_done(T, second[0].0, Ok(()));
    assert_eq!(
        durable_ids(&events(&drain(&mut r))),
        ids,
        "every change reported, in order"
    );
}

#[test]
fn a_failed_commit_rejects_its_changes_and_reverts_to_the_durable_state() {
    let mut r = repo();
    let (a, b) = (DocumentId([3; 16]), DocumentId([4; 16]));
    let mut image = Image::default();
    r.create(T, a, |tx| tx.put(ROOT, "v", 1)).unwrap();
    settle(&mut r, &mut image);
    let durable_heads = r.durable_doc(&a).unwrap().get_heads();

    let lost = set(&mut r, &a, "v", 2);
    let effects = drain(&mut r);
    let (task, _) = commits(&effects)[0].clone();
    let also_lost = set(&mut r, &a, "v", 3); // made while the commit is in flight
    r.create(T, b, |tx| tx.put(ROOT, "x", 1)).unwrap(); // another document, next commit
    drain(&mut r);
    r.commit_done(T, task, Err(StorageError::QuotaExceeded("full".into())));
    let effects = drain(&mut r);
    let evs = events(&effects);
    let failed: Vec<ChangeId> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ChangeFailed { change, error, .. } => {
                assert_eq!(*error, StorageError::QuotaExceeded("full".into()));
                Some(*change)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![lost, also_lost]);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::StorageError { docs, .. } if docs == &vec![a])));
    assert!(
        !evs.iter().any(|e| matches!(e, Event::DocChanged { .. })),
        "nothing announced"
    );
    assert_eq!(
        r.doc(&a).unwrap().get_heads(),
        durable_heads,
        "working state reverted"
    );
    assert_eq!(
        r.doc(&a)
            .unwrap()
            .get::<_, &str>(ROOT, "v")
            .unwrap()
            .unwrap()
            .0
            .as_i64(),
        Some(1)
    );

    // The repo keeps working: document b's creation commits, and a works again.
    for (task, c) in commits(&effects) {
        image.apply(&c);
        r.commit_done(T, task, Ok(()));
    }
    let again = set(&mut r, &a, "v", 4);
    let evs = settle(&mut r, &mut image);
    assert!(durable_ids(&evs).contains(&again));
    assert!(!r.durable_doc(&b).unwrap().get_heads().is_empty());
}

#[test]
fn reload_skips_and_quarantines_a_corrupt_record() {
    let mut r = repo();
    let doc = DocumentId([5; 16]);
    let mut image = Image::default();
    r.create(T, doc, |tx| tx.put(ROOT, "a", 1)).unwrap();
    settle(&mut r, &mut image);
    let before: Vec<StorageKey> = image.0.keys().cloned().collect();
    set(&mut r, &doc, "b", 2);
    settle(&mut r, &mut image);

    // Flip a bit in the record holding the second change.
    let victim = image
        .0
        .keys()
        .find(|k| !before.contains(k))
        .cloned()
        .expect("a new record");
    let v = image.0.get_mut(&victim).unwrap();
    let mid = v.len() / 2;
    v[mid] ^= 1;

    let mut r2 = repo();
    let find = r2.find(T, doc);
    let effects = drain(&mut r2);
    let Some(Effect::Load { task, prefix }) = effects.first().cloned() else {
        panic!("load expected")
    };
    assert_eq!(prefix, StorageKey::doc_prefix(&doc));
    r2.load_done(T, task, Ok(image.doc(&doc)));
    let effects = drain(&mut r2);
    let evs = events(&effects);
    assert!(evs.iter().any(|e| matches!(e, Event::StorageRepaired { quarantined, .. } if quarantined == &vec![victim.clone()])));
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::FindReady { find: f, .. } if *f == find)));
    let loaded = r2.doc(&doc).unwrap();
    assert_eq!(
        loaded
            .get::<_, &str>(ROOT, "a")
            .unwrap()
            .unwrap()
            .0
            .as_i64(),
        Some(1),
        "valid records load"
    );
    assert!(
        loaded.get::<_, &str>(ROOT, "b").unwrap().is_none(),
        "the corrupt record is not loaded"
    );
    // The corrupt record is moved aside, not deleted.
    let (task, c) = commits(&effects)[0].clone();
    assert!(c.deletes.contains(&victim));
    assert!(c
        .puts
        .iter()
        .any(|(k, v)| *k == victim.quarantine_of() && v == &image.0[&victim]));
    image.apply(&c);
    r2.commit_done(T, task, Ok(()));
    assert!(image.0.contains_key(&victim.quarantine_of()));
}

#[test]
fn compaction_writes_the_snapshot_before_deleting_only_what_it_covers() {
    let mut r = repo(); // compact_after = 3
    let doc = DocumentId([6; 16]);
    let mut image = Image::default();
    r.create(T, doc, |tx| tx.put(ROOT, "n", 0)).unwrap();
    settle(&mut r, &mut image);
    // A record written by someone else (another tab) that we never loaded.
    let foreign = StorageKey::new([doc.to_string(), "incremental".into(), "f".repeat(64)]);
    image.0.insert(foreign.clone(), vec![1, 2, 3]);

    let mut covered: Option<Vec<StorageKey>> = None;
    for i in 1..=4 {
        set(&mut r, &doc, "n", i);
        let effects = drain(&mut r);
        for (task, c) in commits(&effects) {
            let has_snapshot = c
                .puts
                .iter()
                .any(|(k, _)| k.kind() == RecordKind::Chunk(ChunkKind::Snapshot));
            if has_snapshot {
                assert!(
                    c.deletes.is_empty(),
                    "the snapshot's commit deletes nothing"
                );
                covered = Some(
                    image
                        .doc(&doc)
                        .into_iter()
                        .map(|(k, _)| k)
                        .filter(|k| *k != foreign)
                        .collect(),
                );
            }
            image.apply(&c);
            r.commit_done(T, task, Ok(()));
        }
    }
    settle(&mut r, &mut image);
    let covered = covered.expect("a snapshot was written");
    assert!(covered.len() >= 3);
    let kinds: Vec<RecordKind> = image.doc(&doc).iter().map(|(k, _)| k.kind()).collect();
    assert!(kinds.contains(&RecordKind::Chunk(ChunkKind::Snapshot)));
    assert!(
        image.0.contains_key(&foreign),
        "a record we did not know is never deleted"
    );
    for k in &covered {
        assert!(!image.0.contains_key(k), "covered record {k} was deleted");
    }

    // Everything is still there after a reload.
    image.0.remove(&foreign);
    let mut r2 = repo();
    r2.find(T, doc);
    let Some(Effect::Load { task, .. }) = drain(&mut r2).first().cloned() else {
        panic!()
    };
    r2.load_done(T, task, Ok(image.doc(&doc)));
    drain(&mut r2);
    assert_eq!(
        r2.doc(&doc).unwrap().get_heads(),
        r.durable_doc(&doc).unwrap().get_heads()
    );
}

#[test]
fn delete_waits_for_pending_changes_then_removes_every_record() {
    let mut r = repo();
    let doc = DocumentId([8; 16]);
    let mut image = Image::default();
    r.create(T, doc, |tx| tx.put(ROOT, "n", 0)).unwrap();
    settle(&mut r, &mut image);
    let foreign = StorageKey::new([doc.to_string(), "incremental".into(), "e".repeat(64)]);
    image.0.insert(foreign.clone(), vec![9]);

    let pending = set(&mut r, &doc, "n", 1);
    let deleted = r.delete(T, &doc).unwrap();
    assert!(matches!(
        r.change(T, &doc, |tx| tx.put(ROOT, "n", 2)),
        Err(ChangeError::Deleting(_))
    ));
    let first = commits(&drain(&mut r));
    assert_eq!(first.len(), 1);
    assert!(
        first[0].1.delete_prefixes.is_empty(),
        "the pending change is committed first"
    );
    image.apply(&first[0].1);
    r.commit_done(T, first[0].0, Ok(()));
    let effects = drain(&mut r);
    assert_eq!(durable_ids(&events(&effects)), vec![pending]);
    let second = commits(&effects);
    assert_eq!(
        second[0].1.delete_prefixes,
        vec![StorageKey::doc_prefix(&doc)]
    );
    image.apply(&second[0].1);
    r.commit_done(T, second[0].0, Ok(()));
    let evs = events(&drain(&mut r));
    assert_eq!(durable_ids(&evs), vec![deleted]);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::DocDeleted { doc: d } if *d == doc)));
    assert!(
        image.doc(&doc).is_empty(),
        "every record is gone, including one we never loaded"
    );
    assert!(matches!(
        r.change(T, &doc, |tx| tx.put(ROOT, "n", 3)),
        Err(ChangeError::NotFound(_))
    ));
    assert!(r.is_idle());
}

#[test]
fn after_a_storage_reset_a_document_found_nowhere_is_lost_not_unavailable() {
    use holdfast_core::storage::{ResetReason, StorageReset};
    let doc = DocumentId([9; 16]);
    let find_in = |r: &mut Repo| -> FindError {
        let find = r.find(T, doc);
        let effects = drain(r);
        let Some(Effect::Load { task, .. }) = effects.first().cloned() else {
            panic!("load expected")
        };
        // Storage has nothing under the document's prefix; no peers.
        r.load_done(T, task, Ok(Vec::new()));
        drain(r);
        r.handle_timeout(Timestamp(T.0 + 60_000));
        events(&drain(r))
            .into_iter()
            .find_map(|e| match e {
                Event::FindFailed { find: f, error, .. } if f == find => Some(error),
                _ => None,
            })
            .expect("the find fails")
    };
    assert_eq!(find_in(&mut repo()), FindError::Unavailable);

    let reset = StorageReset {
        reason: ResetReason::DataLoss,
        detected_at: 1_700_000_000_000,
        detail: "the browser discarded the database".into(),
    };
    let mut r = repo();
    r.storage_reset(reset.clone());
    assert_eq!(r.reset(), Some(&reset));
    assert_eq!(find_in(&mut r), FindError::Lost(reset));
}

#[test]
fn a_find_waiting_for_peers_still_settles_after_a_failed_delete() {
    let doc = DocumentId([7; 16]);
    let mut r = repo();
    let find = r.find(T, doc);
    let Some(Effect::Load { task, .. }) = drain(&mut r).first().cloned() else {
        panic!("load expected")
    };
    r.load_done(T, task, Ok(Vec::new()));
    drain(&mut r);
    // Storage has nothing: the find waits for peers until its deadline.
    let deadline = r.poll_timeout().expect("a find deadline");
    let delete = r.delete(T, &doc).expect("delete accepted");
    let effects = drain(&mut r);
    let [(task, commit)] = commits(&effects).try_into().expect("one commit");
    assert_eq!(commit.delete_prefixes, [StorageKey::doc_prefix(&doc)]);
    r.commit_done(T, task, Err(StorageError::Aborted("tx aborted".into())));
    let evs = events(&drain(&mut r));
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::ChangeFailed { change, .. } if *change == delete)),
        "{evs:?}"
    );
    // The document stays; the find is not forgotten.
    let deadline = r
        .poll_timeout()
        .expect("the find still has a deadline")
        .max(deadline);
    r.handle_timeout(deadline);
    let failed = events(&drain(&mut r)).into_iter().find_map(|e| match e {
        Event::FindFailed { find: f, error, .. } if f == find => Some(error),
        _ => None,
    });
    assert_eq!(failed, Some(FindError::Unavailable));
}
