//! Minimal reproductions of the automerge 0.12.0 panics that
//! `holdfast_core::validate` guards against, called on automerge directly
//! (docs/automerge-bugs.md has the bytes and the analysis). Each test asserts
//! that automerge still panics: when one fails after an automerge upgrade,
//! the bug was fixed upstream and its check here can be revisited (the
//! checks stay correct either way).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

mod crafted;
use crafted::with_seq;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT};

/// Where and why `f` panicked ("file:line: message"), if it did.
fn panics(f: impl FnOnce()) -> Option<String> {
    static HOOK: Mutex<()> = Mutex::new(());
    static SEEN: Mutex<Option<String>> = Mutex::new(None);
    let _serial = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        *SEEN.lock().unwrap() = Some(format!("{at}: {msg}"));
    }));
    let r = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    let seen = SEEN.lock().unwrap().take();
    r.err().map(|_| seen.unwrap_or_default())
}

fn doc(actor: u8, changes: i64) -> Automerge {
    let mut d = Automerge::new().with_actor(ActorId::from([actor; 16]));
    for i in 0..changes {
        let mut tx = d.transaction();
        tx.put(ROOT, "n", i).unwrap();
        tx.commit();
    }
    d
}

#[test]
fn bug_1_a_bloom_filter_with_zero_bits_per_entry_divides_by_zero() {
    // heads [h], need [], have [{lastSync [], bloom: 1 entry, 0 bits/entry,
    // 1 probe, no bits}], changes [].
    let mut msg = vec![0x42, 0x01];
    msg.extend([0xabu8; 32]);
    msg.extend([0x00, 0x01, 0x00, 0x03, 0x01, 0x00, 0x01, 0x00]);
    let mut d = doc(1, 1);
    let mut state = sync::State::new();
    d.receive_sync_message(&mut state, sync::Message::decode(&msg).unwrap())
        .unwrap();
    let p = panics(|| {
        d.generate_sync_message(&mut state);
    });
    let p = p.expect("automerge 0.12.0 panics");
    assert!(p.contains("src/sync/bloom.rs:74"), "{p}");
    assert!(p.contains("remainder with a divisor of zero"), "{p}");
}

#[test]
fn bug_2_a_next_change_with_a_skipped_seq_fails_an_assertion() {
    let mut author = doc(1, 2);
    let second = author.get_last_local_change().unwrap().raw_bytes().to_vec();
    let first = author.get_changes(&[])[0].raw_bytes().to_vec();
    let mut d = Automerge::new();
    d.load_incremental(&first).unwrap();
    let bad = with_seq(&second, 3);
    let p = panics(|| {
        let _ = d.load_incremental(&bad);
    });
    let p = p.expect("automerge 0.12.0 panics");
    assert!(p.contains("src/change_graph.rs:569"), "{p}");
    assert!(p.contains("left == right"), "{p}");
    let _ = &mut author;
}

#[test]
fn bug_3_a_first_change_with_seq_three_unwraps_none() {
    let base = doc(1, 1);
    let mut other = base.fork().with_actor(ActorId::from([2u8; 16]));
    let mut tx = other.transaction();
    tx.put(ROOT, "m", 1).unwrap();
    tx.commit();
    let change = other.get_last_local_change().unwrap().raw_bytes().to_vec();
    let bad = with_seq(&change, 3);
    let mut d = base.clone();
    let p = panics(|| {
        let _ = d.load_incremental(&bad);
    });
    let p = p.expect("automerge 0.12.0 panics");
    assert!(p.contains("src/op_set2/change/batch.rs:1121"), "{p}");
}
