//! What the repo does with a peer's changes: changes whose dependencies are
//! missing are held back (never handed to automerge) and applied when their
//! dependencies arrive; a change automerge would panic on is refused with an
//! error to that peer; with validation off, a panic is isolated to the one
//! document and connection.
//!
//! The same tests (but the one that needs unwinding) run in headless
//! Chromium through `wasm-pack test`: in the browser a panic would abort
//! the module, so there the checks are the whole defence.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, Change, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod crafted;
mod peer_harness;

use peer_harness::*;

/// A client document with three changes by one actor, each on the last.
fn three_changes() -> (Automerge, Vec<Change>) {
    let mut d = Automerge::new().with_actor(ActorId::from([5u8; 16]));
    let mut out = Vec::new();
    for i in 0..3 {
        let mut tx = d.transaction();
        tx.put(ROOT, "n", i).unwrap();
        tx.commit();
        out.push(d.get_last_local_change().unwrap());
    }
    (d, out)
}

#[test]
fn a_change_whose_dependencies_are_missing_waits_then_applies() {
    let mut s = Server::new(true);
    s.join(1);
    let id = DocumentId([3; 16]);
    let (client, ch) = three_changes();
    // Only the first, then the third: the third waits for the second.
    s.sync(1, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    assert_eq!(s.heads(&id), vec![ch[0].hash()]);
    s.sync(1, id, changes_msg(&[&ch[2]], client.get_heads()));
    assert!(s.errors(1).is_empty(), "{:?}", s.errors(1));
    assert_eq!(s.heads(&id), vec![ch[0].hash()], "the third is held back");
    assert_eq!(
        s.last_need(1),
        vec![ch[1].hash()],
        "the server asks for the missing second change, not the held-back third"
    );
    s.sync(1, id, changes_msg(&[&ch[1]], client.get_heads()));
    assert_eq!(s.heads(&id), client.get_heads(), "both applied, durable");
    assert!(s.errors(1).is_empty());
}

fn with_seq(change: &Change, seq: u8) -> Vec<u8> {
    crafted::with_seq(change.raw_bytes(), seq)
}

#[test]
fn a_change_with_a_seq_gap_is_refused_and_nothing_of_it_is_stored() {
    let mut s = Server::new(true);
    s.join(1);
    s.join(2);
    let id = DocumentId([4; 16]);
    let (_, ch) = three_changes();
    s.sync(1, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    let stored = s.store.len();
    // The second change claiming seq 3.
    s.sync(1, id, raw_msg(vec![with_seq(&ch[1], 3)]));
    let errs = s.errors(1);
    assert!(
        matches!(errs.as_slice(), [ProtocolError::Refused { .. }]),
        "{errs:?}"
    );
    assert!(errs[0].to_string().contains("has seq 3"), "{}", errs[0]);
    assert_eq!(s.store.len(), stored, "nothing stored");
    assert_eq!(s.heads(&id), vec![ch[0].hash()]);
    // Another peer goes on: it sends the real second change.
    s.sync(2, id, changes_msg(&[&ch[1]], vec![ch[1].hash()]));
    assert!(s.errors(2).is_empty());
    assert_eq!(s.heads(&id), vec![ch[1].hash()]);
}

#[test]
fn a_first_change_with_seq_three_is_refused() {
    let mut s = Server::new(true);
    s.join(1);
    let id = DocumentId([6; 16]);
    let (_, ch) = three_changes();
    s.sync(1, id, raw_msg(vec![with_seq(&ch[0], 3)]));
    assert!(matches!(
        s.errors(1).as_slice(),
        [ProtocolError::Refused { .. }]
    ));
    assert!(s.heads(&id).is_empty());
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn without_validation_a_panic_costs_one_message_and_one_connection() {
    use automerge::ReadDoc;
    let mut s = Server::new(false);
    s.join(1);
    s.join(2);
    let id = DocumentId([7; 16]);
    let (_, ch) = three_changes();
    s.sync(2, id, changes_msg(&[&ch[0]], vec![ch[0].hash()]));
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // automerge asserts on the seq gap inside `load_incremental`.
    s.sync(1, id, raw_msg(vec![with_seq(&ch[1], 3)]));
    std::panic::set_hook(hook);
    let errs = s.errors(1);
    assert!(
        matches!(errs.as_slice(), [ProtocolError::Internal { .. }]),
        "{errs:?}"
    );
    assert_eq!(s.heads(&id), vec![ch[0].hash()], "durable state intact");
    // The other connection, and the same document, go on.
    s.sync(2, id, changes_msg(&[&ch[1]], vec![ch[1].hash()]));
    assert!(s.errors(2).is_empty(), "{:?}", s.errors(2));
    assert_eq!(s.heads(&id), vec![ch[1].hash()]);
    assert_eq!(
        s.repo.doc(&id).unwrap().get(ROOT, "n").unwrap().unwrap().0,
        automerge::Value::from(1i64)
    );
}
