//! Changes whose operations do not fit what they refer to: each passes the
//! chunk checks (valid checksum, columns, seq) and would make automerge 0.12
//! panic when it merges the change or later rebuilds it (the fuzz target
//! found each). The repo refuses the message with an error to that peer,
//! stores nothing of it, and the genuine change still applies afterwards.
//! Also: a `need` naming a change twice is answered without a panic.
//!
//! Run natively and in headless Chromium (`wasm-pack test`), where a panic
//! would abort the module.

use std::num::NonZeroU64;

use automerge::legacy::{ElementId, Key, ObjectId, OpId};
use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ExpandedChange, ObjType, ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::Message;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod peer_harness;

use peer_harness::*;

const A: [u8; 16] = [0xa; 16];
const B: [u8; 16] = [0xb; 16];

/// A's first change (ops 1..=8: `n`, a list `items` of two, a text `t` of
/// two characters, `title`) and B's genuine next change, made by `edit` on
/// a fork.
fn base_and_next(
    edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &Automerge),
) -> (Change, Change) {
    let mut a = Automerge::new().with_actor(ActorId::from(A));
    let mut tx = a.transaction();
    tx.put(ROOT, "n", 1).unwrap();
    let items = tx.put_object(ROOT, "items", ObjType::List).unwrap();
    tx.insert(&items, 0, "x").unwrap();
    tx.insert(&items, 1, "y").unwrap();
    let t = tx.put_object(ROOT, "t", ObjType::Text).unwrap();
    tx.splice_text(&t, 0, 0, "ab").unwrap();
    tx.put(ROOT, "title", "hello").unwrap();
    tx.commit();
    let first = a.get_last_local_change().unwrap();
    let mut b = a.fork().with_actor(ActorId::from(B));
    let snapshot = b.clone();
    let mut tx = b.transaction();
    edit(&mut tx, &snapshot);
    tx.commit();
    (first, b.get_last_local_change().unwrap())
}

/// `change` re-encoded after `edit` rewrote its decoded form (a new hash,
/// a valid checksum).
fn crafted(change: &Change, edit: impl FnOnce(&mut ExpandedChange)) -> Change {
    let mut x = change.decode();
    edit(&mut x);
    x.hash = None;
    Change::from(x)
}

fn a_op(ctr: u64) -> OpId {
    OpId::new(ctr, &ActorId::from(A))
}

/// Sends A's first change, then the crafted one: refused with `expect` in
/// the error, nothing stored, and then the genuine change applies.
fn refused(genuine: &Change, bad: &Change, first: &Change, expect: &str) {
    let mut s = Server::new(true);
    s.join(1);
    s.join(2);
    let id = DocumentId([0x42; 16]);
    s.sync(1, id, changes_msg(&[first], vec![first.hash()]));
    assert!(s.errors(1).is_empty(), "{:?}", s.errors(1));
    let stored = s.store.clone();
    s.sync(1, id, changes_msg(&[bad], vec![bad.hash()]));
    let errs = s.errors(1);
    assert!(
        matches!(errs.as_slice(), [ProtocolError::Refused { .. }]),
        "{errs:?}"
    );
    assert!(errs[0].to_string().contains(expect), "{}", errs[0]);
    assert_eq!(s.store, stored, "nothing of it stored");
    assert_eq!(s.heads(&id), vec![first.hash()]);
    s.sync(2, id, changes_msg(&[genuine], vec![genuine.hash()]));
    assert!(s.errors(2).is_empty(), "{:?}", s.errors(2));
    assert_eq!(s.heads(&id), vec![genuine.hash()]);
}

fn list_of(doc: &Automerge, key: &str) -> automerge::ObjId {
    doc.get(ROOT, key).unwrap().unwrap().1
}

#[test]
fn a_change_reusing_its_dependencys_op_ids_is_refused() {
    let (first, next) = base_and_next(|tx, _| tx.put(ROOT, "n", 2).unwrap());
    // Its ops would have ids at or below the first change's.
    let bad = crafted(&next, |x| x.start_op = NonZeroU64::new(2).unwrap());
    refused(&next, &bad, &first, "reached op");
}

#[test]
fn an_update_at_the_head_of_a_list_is_refused() {
    let (first, next) = base_and_next(|tx, d| tx.put(list_of(d, "items"), 0, "z").unwrap());
    let bad = crafted(&next, |x| {
        x.operations[0].key = Key::Seq(ElementId::Head);
        x.operations[0].pred = Vec::new().into();
    });
    refused(&next, &bad, &first, "updates the head of a sequence");
}

#[test]
fn an_insert_after_another_objects_element_is_refused() {
    let (first, next) = base_and_next(|tx, d| tx.insert(list_of(d, "items"), 1, "z").unwrap());
    // The same element, but in the text object (A's op 5 is `t`).
    let bad = crafted(&next, |x| x.operations[0].obj = ObjectId::Id(a_op(5)));
    refused(&next, &bad, &first, "is not an element of its object");
}

#[test]
fn a_predecessor_on_another_key_is_refused() {
    let (first, next) = base_and_next(|tx, _| tx.put(ROOT, "n", 2).unwrap());
    // Overwrites `n` but names `title`'s op (A's op 8) as predecessor.
    let bad = crafted(&next, |x| x.operations[0].pred = vec![a_op(8)].into());
    refused(&next, &bad, &first, "is not on the same object and key");
}

#[test]
fn a_map_key_in_a_list_is_refused() {
    let (first, next) = base_and_next(|tx, _| tx.put(ROOT, "k", 2).unwrap());
    let bad = crafted(&next, |x| x.operations[0].obj = ObjectId::Id(a_op(2)));
    refused(&next, &bad, &first, "a map key in a sequence");
}

#[test]
fn a_need_naming_a_change_twice_is_answered_once() {
    let mut s = Server::new(true);
    s.join(1);
    s.join(2);
    let id = DocumentId([0x43; 16]);
    let (first, _) = base_and_next(|tx, _| tx.put(ROOT, "n", 2).unwrap());
    s.sync(1, id, changes_msg(&[&first], vec![first.hash()]));
    let need = sync::Message {
        heads: vec![first.hash()],
        need: vec![first.hash(), first.hash()],
        have: vec![],
        changes: sync::ChunkList::empty(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    s.sync(2, id, need.encode());
    assert!(s.errors(2).is_empty(), "{:?}", s.errors(2));
    let answer = s
        .sent
        .iter()
        .rev()
        .find_map(|(c, m)| match m {
            Message::Sync { data, .. } if *c == ConnId(2) => {
                Some(sync::Message::decode(data).unwrap())
            }
            _ => None,
        })
        .expect("an answer");
    let sent: Vec<Vec<u8>> = answer.changes.iter().map(|c| c.to_vec()).collect();
    assert_eq!(sent, vec![first.raw_bytes().to_vec()], "the change, once");
}

#[test]
fn a_deletion_made_an_insert_is_refused() {
    let (first, next) = base_and_next(|tx, d| tx.delete(list_of(d, "items"), 0).unwrap());
    // An insert after the element instead of a deletion of it.
    let bad = crafted(&next, |x| {
        x.operations[0].insert = true;
        x.operations[0].pred = Vec::new().into();
    });
    refused(&next, &bad, &first, "a deletion or increment inserted");
}
