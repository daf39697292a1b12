//! Hostile peers: cases H, changes whose operations do not fit (found by
//! the fuzz target with validation on; `fuzz/regressions/`), each refused by
//! validation; and, with validation off, automerge's panics isolated by the
//! core. The scenario is in `hostile/mod.rs`, the crafting in
//! `hostile/craft.rs`.

mod common;
mod hostile;

use automerge::transaction::Transactable;
use automerge::{Automerge, AutomergeError, Change, ReadDoc, ROOT};
use common::*;
use hostile::*;

// ---------------------------------------------------------------------------
// Validation on: changes whose operations do not fit (found by the fuzz
// target with validation on; `fuzz/regressions/`)
// ---------------------------------------------------------------------------

/// A real next change by a new actor, made by `edit` on a fork, then
/// rewritten by `rewrite` (re-encoded: a valid checksum, a new hash).
fn crafted_change(
    doc: &Automerge,
    edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), AutomergeError>,
    rewrite: impl FnOnce(&mut automerge::ExpandedChange),
) -> Frame {
    let mut fork = doc.fork();
    fork.transact(|tx| edit(tx)).unwrap();
    let mut x = fork.get_last_local_change().expect("a change").decode();
    rewrite(&mut x);
    x.hash = None;
    let change = Change::from(x);
    Frame::Sync(carrying(vec![change.hash()], change.raw_bytes().to_vec()))
}

#[test]
fn h_start_op_not_above_its_dependencies() {
    refused("H startOp 1 after the document's ops", |doc| {
        crafted_change(
            doc,
            // A new key: no predecessor, so only its dependency's ops
            // show that counter 1 is taken.
            |tx| tx.put(ROOT, "fresh", "forged"),
            |x| x.start_op = std::num::NonZeroU64::new(1).unwrap(),
        )
    });
}

#[test]
fn h_update_at_the_head_of_a_list() {
    refused("H update at a list's head", |doc| {
        crafted_change(
            doc,
            |tx| {
                let l = tx.put_object(ROOT, "l", automerge::ObjType::List)?;
                tx.insert(&l, 0, "x")
            },
            |x| x.operations[1].insert = false,
        )
    });
}

#[test]
fn h_predecessor_on_another_key() {
    refused("H predecessor on another key", |doc| {
        let title = doc.get(ROOT, "title").unwrap().unwrap().1;
        let (ctr, actor) = match title {
            automerge::ObjId::Id(ctr, actor, _) => (ctr, actor),
            automerge::ObjId::Root => unreachable!(),
        };
        crafted_change(
            doc,
            |tx| tx.put(ROOT, "other", "forged"),
            |x| x.operations[0].pred = vec![automerge::legacy::OpId::new(ctr, &actor)].into(),
        )
    });
}

#[test]
fn h_deletion_made_an_insert() {
    refused("H deletion made an insert", |doc| {
        crafted_change(
            doc,
            |tx| {
                let l = tx.put_object(ROOT, "l", automerge::ObjType::List)?;
                tx.insert(&l, 0, "x")?;
                tx.delete(&l, 0)
            },
            |x| {
                x.operations[2].insert = true;
                x.operations[2].pred = Vec::new().into();
            },
        )
    });
}

// ---------------------------------------------------------------------------
// Validation off: automerge panics, the core isolates it
// ---------------------------------------------------------------------------

/// Frames A and D reach automerge unchecked and make it panic inside the
/// core: only the hostile connection is answered with an `error` and closed;
/// `/healthz` stays ok, the keeper (connected before) and new clients still
/// push and read, the attacked documents included. (Not B: unchecked it
/// allocates 16 GiB.)
#[test]
fn isolation_without_validation() {
    watch_panics();
    run(async {
        let mut env = Env::start(false).await;
        attack(&mut env, "unvalidated A zero-bit Bloom filter", |_| {
            Frame::Sync(zero_bit_bloom())
        })
        .await;
        attack(&mut env, "unvalidated D seq 2 -> 3", |doc| {
            Frame::Sync(seq_skipped(doc))
        })
        .await;
        env.stop().await;
    });
}
