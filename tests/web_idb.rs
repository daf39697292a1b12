//! The IndexedDB storage against real IndexedDB in headless Chromium:
//! `wasm-pack test --headless --chrome --test web_idb`.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use holdfast::idb::{
    delete_database, CommitFault, Durability, IdbStorage, BLOCKED_GRACE_MS, STORE,
};
use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransaction};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = IDBDatabase)]
    type Db;
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_opts(
        this: &Db,
        stores: &str,
        mode: &str,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;

    // Not the same signature as the library's own `setTimeout` import: two
    // identical imports in two crates collide at link time (duplicate
    // `__wbindgen_describe_*` symbol).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: u32) -> f64;
}

thread_local!(static SEQ: Cell<u32> = const { Cell::new(0) });

/// A database name no other test (or earlier run) uses.
fn unique(test: &str) -> String {
    let n = SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    format!(
        "holdfast-test-{test}-{}-{n}-{}",
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 1e9) as u64
    )
}

/// Every record of the store but holdfast's own identity record (see
/// `holdfast::identity`), which every open writes.
async fn all_records(s: &IdbStorage) -> Vec<(StorageKey, Vec<u8>)> {
    let meta = key(&holdfast::identity::META_KEY);
    let mut all = s.range(&key(&[])).await.unwrap();
    let before = all.len();
    all.retain(|(k, _)| *k != meta);
    assert_eq!(before - all.len(), 1, "the identity record is there");
    all
}

fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

fn puts(items: &[(&[&str], &[u8])]) -> Commit {
    Commit {
        puts: items.iter().map(|(k, v)| (key(k), v.to_vec())).collect(),
        ..Default::default()
    }
}

fn keys_of(records: &[(StorageKey, Vec<u8>)]) -> Vec<StorageKey> {
    records.iter().map(|(k, _)| k.clone()).collect()
}

fn factory() -> IdbFactory {
    Reflect::get(&js_sys::global(), &"indexedDB".into())
        .unwrap()
        .dyn_into()
        .unwrap()
}

async fn settle(req: &IdbRequest) -> Result<JsValue, JsValue> {
    let p = Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
    });
    JsFuture::from(p).await?;
    req.result()
}

/// A plain connection that ignores `versionchange` (another tab's, say).
async fn raw_open(name: &str, version: u32) -> IdbDatabase {
    let req: IdbOpenDbRequest = factory().open_with_u32(name, version).unwrap();
    settle(&req).await.unwrap().dyn_into().unwrap()
}

/// Both futures to completion, polled together.
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}

#[wasm_bindgen_test]
async fn commits_use_strict_durability() {
    let name = unique("strict");
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(s.name(), name);
    assert_eq!(s.durability(), Durability::Strict);
    assert_eq!(s.durability().as_str(), "strict");

    s.commit(puts(&[(&["d", "x"], b"1")])).await.unwrap();
    assert_eq!(s.durability(), Durability::Strict);
    assert_eq!(s.commits(), 1);
    // An empty commit opens no transaction.
    s.commit(Commit::default()).await.unwrap();
    assert_eq!(s.commits(), 1);

    // Read it back from a transaction opened the same way.
    let options = Object::new();
    Reflect::set(&options, &"durability".into(), &"strict".into()).unwrap();
    let tx = s
        .raw_database()
        .unchecked_ref::<Db>()
        .transaction_opts(STORE, "readwrite", &options)
        .unwrap();
    let reported = Reflect::get(&tx, &"durability".into()).unwrap();
    assert_eq!(reported.as_string().as_deref(), Some("strict"));
    tx.abort().unwrap();
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn puts_deletes_ranges_and_reopen() {
    let name = unique("crud");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[
        (&["b", "x"], b"b"),
        (&["a", "snapshot", "1"], b"s1"),
        (&["a", "incremental", "2"], b"i2"),
        (&["a", "\u{ffff}", "edge"], b"ff"),
        (&["a"], b"exact"),
        (&["ab", "x"], b"sibling"),
        (&["ab"], b"sibling2"),
        (&["c", "1"], b"c1"),
        (&["c", "2"], b"c2"),
        (&["c", "3"], b"c3"),
    ]))
    .await
    .unwrap();

    let got = s.range(&key(&["a"])).await.unwrap();
    assert_eq!(
        keys_of(&got),
        vec![
            key(&["a"]),
            key(&["a", "incremental", "2"]),
            key(&["a", "snapshot", "1"]),
            key(&["a", "\u{ffff}", "edge"]),
        ]
    );
    assert_eq!(got[1].1, b"i2");
    assert_eq!(
        keys_of(&s.range(&key(&["ab"])).await.unwrap()),
        vec![key(&["ab"]), key(&["ab", "x"])]
    );
    assert_eq!(s.range(&key(&["zz"])).await.unwrap(), vec![]);
    assert_eq!(s.get(&key(&["b", "x"])).await.unwrap(), Some(b"b".to_vec()));
    assert_eq!(s.get(&key(&["b"])).await.unwrap(), None);

    // Deletes, then prefix deletes, then puts, in one commit: a put under a
    // deleted prefix survives.
    s.commit(Commit {
        puts: vec![
            (key(&["c", "4"]), b"c4".to_vec()),
            (key(&["b", "x"]), b"B".to_vec()),
        ],
        deletes: vec![key(&["ab"]), key(&["b", "x"])],
        delete_prefixes: vec![key(&["c"]), key(&["a"])],
    })
    .await
    .unwrap();
    assert_eq!(s.commits(), 2);
    assert_eq!(s.range(&key(&["a"])).await.unwrap(), vec![]);
    assert_eq!(
        keys_of(&s.range(&key(&["ab"])).await.unwrap()),
        vec![key(&["ab", "x"])]
    );
    assert_eq!(
        s.range(&key(&["c"])).await.unwrap(),
        vec![(key(&["c", "4"]), b"c4".to_vec())]
    );
    assert_eq!(s.get(&key(&["b", "x"])).await.unwrap(), Some(b"B".to_vec()));

    s.close();
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(s.commits(), 0);
    assert_eq!(
        all_records(&s).await,
        vec![
            (key(&["ab", "x"]), b"sibling".to_vec()),
            (key(&["b", "x"]), b"B".to_vec()),
            (key(&["c", "4"]), b"c4".to_vec()),
        ]
    );
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn stored_values_have_the_automerge_repo_shape() {
    let name = unique("shape");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[(&["doc", "incremental", "h"], &[1, 2, 3])]))
        .await
        .unwrap();
    s.close();

    let db = raw_open(&name, 1).await;
    let store = db
        .transaction_with_str(STORE)
        .unwrap()
        .object_store(STORE)
        .unwrap();
    let js_key: JsValue = Array::of3(&"doc".into(), &"incremental".into(), &"h".into()).into();
    let value = settle(&store.get(&js_key).unwrap()).await.unwrap();
    let stored_key: Array = Reflect::get(&value, &"key".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(
        stored_key
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect::<Vec<_>>(),
        ["doc", "incremental", "h"]
    );
    let binary: Uint8Array = Reflect::get(&value, &"binary".into())
        .unwrap()
        .dyn_into()
        .unwrap();
    assert_eq!(binary.to_vec(), vec![1, 2, 3]);
    assert_eq!(Object::keys(value.unchecked_ref::<Object>()).length(), 2);
    // And a record written the way automerge-repo writes it reads back.
    let rw = db.transaction_with_str_and_mode(STORE, web_sys::IdbTransactionMode::Readwrite);
    let store = rw.unwrap().object_store(STORE).unwrap();
    let other: JsValue = Array::of2(&"doc".into(), &"snapshot".into()).into();
    let value = Object::new();
    Reflect::set(&value, &"key".into(), &other).unwrap();
    Reflect::set(&value, &"binary".into(), &Uint8Array::from(&[9u8][..])).unwrap();
    settle(&store.put_with_key(&value, &other).unwrap())
        .await
        .unwrap();
    db.close();

    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(
        s.get(&key(&["doc", "snapshot"])).await.unwrap(),
        Some(vec![9])
    );
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_commit_failing_part_way_leaves_none_of_its_writes() {
    let name = unique("atomic");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[(&["d", "keep"], b"k")])).await.unwrap();
    let failing = || Commit {
        puts: vec![
            (key(&["d", "1"]), b"1".to_vec()),
            (key(&["d", "2"]), b"2".to_vec()),
            (key(&["d", "3"]), b"3".to_vec()),
        ],
        deletes: vec![key(&["d", "keep"])],
        delete_prefixes: vec![],
    };

    // A put that throws synchronously (DataError) after two puts were issued.
    s.inject_commit_fault(CommitFault::ThrowBeforePut(2));
    match s.commit(failing()).await {
        Err(StorageError::Aborted(msg)) => assert!(msg.contains("DataError"), "{msg}"),
        other => panic!("expected Aborted(DataError), got {other:?}"),
    }
    // A request that fails asynchronously (ConstraintError): the browser
    // aborts the transaction.
    s.inject_commit_fault(CommitFault::FailRequestBeforePut(2));
    match s.commit(failing()).await {
        Err(StorageError::Aborted(msg)) => assert!(msg.contains("ConstraintError"), "{msg}"),
        other => panic!("expected Aborted(ConstraintError), got {other:?}"),
    }
    assert_eq!(s.commits(), 1);
    assert_eq!(
        s.range(&key(&["d"])).await.unwrap(),
        vec![(key(&["d", "keep"]), b"k".to_vec())]
    );
    // The storage is still usable afterwards.
    s.commit(failing()).await.unwrap();
    assert_eq!(s.range(&key(&["d"])).await.unwrap().len(), 3);
    drop(s);
    delete_database(&name).await.unwrap();
}

fn assert_unavailable<T: std::fmt::Debug>(r: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(r, Err(StorageError::Unavailable(_))),
        "{what}: expected Unavailable, got {r:?}"
    );
}

#[wasm_bindgen_test]
async fn closed_storage_fails_typed_not_hanging() {
    let name = unique("closed");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[(&["d", "1"], b"1")])).await.unwrap();
    s.close();
    assert_unavailable(s.commit(puts(&[(&["d", "2"], b"2")])).await, "commit");
    assert_unavailable(s.range(&key(&["d"])).await, "range");
    assert_unavailable(s.get(&key(&["d", "1"])).await, "get");

    // Closed underneath, behind the storage's back: `transaction()` throws
    // InvalidStateError synchronously.
    let s = IdbStorage::open(&name).await.unwrap();
    s.raw_database().close();
    match s.commit(puts(&[(&["d", "2"], b"2")])).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("InvalidStateError"), "{msg}"),
        other => panic!("expected Unavailable(InvalidStateError), got {other:?}"),
    }
    assert_unavailable(s.range(&key(&["d"])).await, "range");
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn deleting_the_database_underneath_fails_the_next_commit_promptly() {
    let name = unique("deleted");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[(&["d", "1"], b"1")])).await.unwrap();

    // Another connection deletes the database: our versionchange handler
    // closes our connection, so the delete is not blocked.
    let t0 = js_sys::Date::now();
    delete_database(&name).await.unwrap();
    match s.commit(puts(&[(&["d", "2"], b"2")])).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("versionchange"), "{msg}"),
        other => panic!("expected Unavailable(versionchange), got {other:?}"),
    }
    assert_unavailable(s.get(&key(&["d", "1"])).await, "get");
    let elapsed = js_sys::Date::now() - t0;
    assert!(elapsed < 2000.0, "took {elapsed} ms");
    drop(s);

    // The database is really gone.
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(all_records(&s).await, vec![]);
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_commit_in_flight_completes_before_a_delete_closes_us() {
    let name = unique("inflight");
    let s = IdbStorage::open(&name).await.unwrap();
    let (committed, deleted) = join(
        s.commit(puts(&[(&["d", "1"], b"1")])),
        delete_database(&name),
    )
    .await;
    // The transaction was started before the versionchange: it completes
    // (close waits for it), then the database is deleted.
    committed.unwrap();
    deleted.unwrap();
    assert_eq!(s.commits(), 1);
    assert_unavailable(s.commit(puts(&[(&["d", "2"], b"2")])).await, "commit");
    drop(s);
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(all_records(&s).await, vec![]);
    drop(s);
    delete_database(&name).await.unwrap();
}

/// Resolves after `ms` milliseconds.
async fn sleep(ms: u32) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    JsFuture::from(p).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_delete_blocked_by_a_foreign_connection_fails_after_a_bounded_wait() {
    let name = unique("blocked");
    let s = IdbStorage::open(&name).await.unwrap();
    s.commit(puts(&[(&["d", "1"], b"1")])).await.unwrap();
    drop(s);
    let foreign = raw_open(&name, 1).await; // ignores versionchange
    let t0 = js_sys::Date::now();
    match delete_database(&name).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("blocked"), "{msg}"),
        other => panic!("expected Unavailable(blocked), got {other:?}"),
    }
    let elapsed = js_sys::Date::now() - t0;
    assert!(
        elapsed >= BLOCKED_GRACE_MS as f64 - 50.0 && elapsed < BLOCKED_GRACE_MS as f64 + 2000.0,
        "took {elapsed} ms"
    );
    // The deletion stays queued and happens once the connection closes; an
    // open queued behind it sees the empty database.
    foreign.close();
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(all_records(&s).await, vec![]);
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_delete_blocked_briefly_succeeds() {
    let name = unique("briefly");
    drop(IdbStorage::open(&name).await.unwrap());
    let foreign = raw_open(&name, 1).await; // ignores versionchange
    let (deleted, ()) = join(delete_database(&name), async {
        sleep(100).await;
        foreign.close();
    })
    .await;
    deleted.unwrap();
    // Gone: opening creates it afresh (an upgrade from version 0).
    let req: IdbOpenDbRequest = factory().open_with_u32(&name, 1).unwrap();
    let upgraded = Promise::new(&mut |resolve, _| req.set_onupgradeneeded(Some(&resolve)));
    let (db, _) = join(settle(&req), JsFuture::from(upgraded)).await;
    db.unwrap().unchecked_into::<IdbDatabase>().close();
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_newer_database_version_is_unavailable() {
    let name = unique("newer");
    raw_open(&name, 2).await.close();
    match IdbStorage::open(&name).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("VersionError"), "{msg}"),
        Err(e) => panic!("expected Unavailable(VersionError), got {e:?}"),
        Ok(_) => panic!("opened a newer database"),
    }
    // A database of version 1 without our store is refused as well.
    let other = unique("nostore");
    raw_open(&other, 1).await.close();
    match IdbStorage::open(&other).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("object store"), "{msg}"),
        Err(e) => panic!("expected Unavailable(no store), got {e:?}"),
        Ok(_) => panic!("opened a database without the store"),
    }
    delete_database(&name).await.unwrap();
    delete_database(&other).await.unwrap();
}

/// Delete a database behind holdfast's back (as the browser does when it
/// discards one).
async fn delete_raw(name: &str) {
    let req = factory().delete_database(name).unwrap();
    settle(&req).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_database_recreated_underneath_is_detected_as_a_reset() {
    use holdfast_core::storage::ResetReason;
    let name = unique("identity");
    let s = IdbStorage::open(&name).await.unwrap();
    let first = s.identity().clone();
    assert_eq!(first.identity.len(), 32, "a random 128-bit identity");
    assert_eq!(first.upgrade.as_ref().map(|u| u.old_version), Some(0));
    assert!(first.detected.is_none() && first.resets.is_empty());
    drop(s);

    // Reopened as it was: the same identity, nothing to report.
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(s.identity().identity, first.identity);
    assert!(s.identity().upgrade.is_none());
    assert!(s.identity().detected.is_none());
    drop(s);

    // Deleted behind our back and recreated by the next open.
    delete_raw(&name).await;
    let s = IdbStorage::open(&name).await.unwrap();
    let ident = s.identity().clone();
    let reset = ident.detected.clone().expect("the reset is detected");
    assert_eq!(reset.reason, ResetReason::Recreated);
    assert!(reset.detail.contains(&first.identity), "{}", reset.detail);
    assert_ne!(ident.identity, first.identity);
    assert_eq!(ident.resets, vec![reset.clone()]);
    drop(s);

    // Remembered by the database, reported once.
    let s = IdbStorage::open(&name).await.unwrap();
    assert!(s.identity().detected.is_none());
    assert_eq!(s.identity().last_reset(), Some(&reset));
    drop(s);

    // Deleted on purpose through holdfast: a fresh start.
    delete_database(&name).await.unwrap();
    let s = IdbStorage::open(&name).await.unwrap();
    assert!(s.identity().detected.is_none() && s.identity().resets.is_empty());
    drop(s);
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_browser_reporting_data_loss_is_a_reset() {
    use holdfast::identity::{identify, Upgrade};
    use holdfast_core::storage::ResetReason;
    let name = unique("dataloss");
    let s = IdbStorage::open(&name).await.unwrap();
    // What Chromium's `upgradeneeded` says after discarding a corrupt
    // backing store (it cannot be provoked from a page).
    let upgrade = Upgrade {
        old_version: 0,
        data_loss: "total".into(),
        data_loss_message: "the backing store was corrupt".into(),
    };
    let ident = identify(&s, Some(upgrade.clone())).await.unwrap();
    let reset = ident.detected.expect("detected");
    assert_eq!(reset.reason, ResetReason::DataLoss);
    assert!(
        reset.detail.contains("backing store was corrupt"),
        "{}",
        reset.detail
    );
    // "none" is no loss.
    let none = Upgrade {
        data_loss: "none".into(),
        ..upgrade
    };
    assert!(identify(&s, Some(none)).await.unwrap().detected.is_none());
    drop(s);
    delete_database(&name).await.unwrap();
}
