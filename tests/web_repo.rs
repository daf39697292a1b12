//! The repo in headless Chromium against real IndexedDB: the durability
//! contract as the npm package's users see it (the same driver and storage
//! the JS API runs on).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use holdfast::api::{AnyStorage, WasmRepo};
use holdfast::idb::{delete_database, IdbStorage};
use holdfast::js::now;
use holdfast_core::id::DocumentId;
use holdfast_core::repo::{ChangeId, Repo};
use holdfast_core::storage::{ChunkKind, Commit, RecordKind, Storage, StorageKey};
use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn db_name(test: &str) -> String {
    format!("holdfast-test-{test}-{}", js_sys::Math::random())
}

async fn open(name: &str) -> WasmRepo {
    let opts = Object::new();
    Reflect::set(&opts, &"indexedDB".into(), &name.into()).unwrap();
    WasmRepo::open(opts.into()).await.expect("repo opens")
}

fn idb(repo: &WasmRepo) -> &IdbStorage {
    match repo.driver().storage() {
        AnyStorage::IndexedDb(s) => s,
        AnyStorage::Memory(_) => panic!("expected IndexedDB storage"),
    }
}

/// Create a document through the core and wait until it is durable.
async fn create(repo: &WasmRepo, key: &str, v: i64) -> DocumentId {
    let id = DocumentId(rand16());
    let change = repo
        .driver()
        .with_repo(|r: &mut Repo| r.create(now(), id, |tx| tx.put(ROOT, key, v)))
        .unwrap();
    JsFuture::from(repo.driver().await_change(change, None))
        .await
        .expect("creation durable");
    id
}

fn change(repo: &WasmRepo, id: &DocumentId, key: &str, v: i64) -> (ChangeId, Promise) {
    let (c, ()) = repo
        .driver()
        .with_repo(|r: &mut Repo| r.change(now(), id, |tx| tx.put(ROOT, key, v)))
        .unwrap();
    (c, repo.driver().await_change(c, None))
}

fn rand16() -> [u8; 16] {
    let mut b = [0u8; 16];
    for x in &mut b {
        *x = (js_sys::Math::random() * 256.0) as u8;
    }
    b
}

fn get_i64(repo: &WasmRepo, id: &DocumentId, key: &str) -> Option<i64> {
    repo.driver()
        .read(id, |d| {
            d.get(ROOT, key)
                .ok()
                .flatten()
                .and_then(|(v, _)| v.as_scalar().and_then(|s| s.as_i64()))
        })
        .flatten()
}

/// Collect the `type` of every event the repo emits.
fn record_events(repo: &WasmRepo) -> Rc<RefCell<Vec<(String, JsValue)>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let cb = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let ty = Reflect::get(&ev, &"type".into())
            .unwrap()
            .as_string()
            .unwrap_or_default();
        s.borrow_mut().push((ty, ev));
    });
    repo.set_event_handler(Some(cb.into_js_value().unchecked_into()));
    seen
}

#[wasm_bindgen_test]
async fn the_repo_commits_with_strict_durability() {
    let name = db_name("strict");
    let repo = open(&name).await;
    create(&repo, "a", 1).await;
    assert_eq!(
        repo.durability(),
        "strict",
        "Chromium honours durability: \"strict\""
    );
    repo.close().await.unwrap();
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn every_resolved_change_survives_close_and_reopen() {
    let name = db_name("reopen");
    let repo = open(&name).await;
    let id = create(&repo, "n", 0).await;
    for i in 1..=20 {
        let (_, p) = change(&repo, &id, &format!("k{i}"), i);
        JsFuture::from(p).await.expect("change durable");
    }
    let heads = repo.driver().read(&id, |d| d.get_heads()).unwrap();
    repo.close().await.unwrap();

    let again = open(&name).await;
    JsFuture::from(again.find(&id.to_string()).unwrap())
        .await
        .expect("found in IndexedDB");
    assert_eq!(again.driver().read(&id, |d| d.get_heads()).unwrap(), heads);
    for i in 1..=20 {
        assert_eq!(get_i64(&again, &id, &format!("k{i}")), Some(i));
    }
    again.close().await.unwrap();
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn concurrent_changes_share_commits_and_resolve_in_order() {
    let name = db_name("group");
    let repo = open(&name).await;
    let id = create(&repo, "n", 0).await;
    let before = idb(&repo).commits();
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut promises = Vec::new();
    const N: i64 = 200;
    for i in 1..=N {
        let (_, p) = change(&repo, &id, "n", i);
        let o = order.clone();
        let (done, resolve) = {
            let mut r = None;
            let d = Promise::new(&mut |res, _| r = Some(res));
            (d, r.unwrap())
        };
        wasm_bindgen_futures::spawn_local(async move {
            JsFuture::from(p).await.expect("every change resolves");
            o.borrow_mut().push(i);
            resolve.call0(&JsValue::UNDEFINED).unwrap();
        });
        promises.push(done);
    }
    for p in promises {
        JsFuture::from(p).await.unwrap();
    }
    let commits = idb(&repo).commits() - before;
    assert!(
        commits >= 1 && (commits as i64) < N,
        "{N} changes took {commits} commits"
    );
    assert_eq!(
        *order.borrow(),
        (1..=N).collect::<Vec<_>>(),
        "resolved in the order made"
    );
    assert_eq!(get_i64(&repo, &id, "n"), Some(N));
    web_sys::console::log_1(
        &format!("group commit: {N} changes in {commits} IndexedDB transactions").into(),
    );
    repo.close().await.unwrap();
    delete_database(&name).await.unwrap();
}

/// Storage fails under the repo; `underneath` makes it fail.
async fn storage_failure_case(test: &str, deleted: bool) {
    let name = db_name(test);
    let repo = open(&name).await;
    let events = record_events(&repo);
    let a = create(&repo, "v", 1).await;
    let b = create(&repo, "w", 1).await;
    events.borrow_mut().clear();

    if deleted {
        // Another connection deletes the database: ours gets `versionchange`.
        delete_database(&name).await.unwrap();
    } else {
        idb(&repo).close(); // the connection goes away under the repo
    }
    let (_, p) = change(&repo, &a, "v", 2);
    assert_eq!(get_i64(&repo, &a, "v"), Some(2), "visible while pending");
    let err = JsFuture::from(p).await.expect_err("the change must reject");
    let err_name = Reflect::get(&err, &"name".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert_eq!(err_name, "StorageUnavailableError");
    assert_eq!(
        get_i64(&repo, &a, "v"),
        Some(1),
        "back to the last durable state"
    );
    let types: Vec<String> = events.borrow().iter().map(|(t, _)| t.clone()).collect();
    assert!(
        !types.contains(&"change".to_string()),
        "no change event for it: {types:?}"
    );
    assert!(types.contains(&"storage-error".to_string()), "{types:?}");

    // The repo keeps serving: other documents read, and further work fails
    // typed instead of hanging.
    assert_eq!(get_i64(&repo, &b, "w"), Some(1));
    let (_, p2) = change(&repo, &b, "w", 2);
    assert!(JsFuture::from(p2).await.is_err());
    assert_eq!(get_i64(&repo, &b, "w"), Some(1));
    let _ = delete_database(&name).await;
}

#[wasm_bindgen_test]
async fn a_database_closed_underneath_rejects_the_change_and_keeps_the_durable_state() {
    storage_failure_case("closed", false).await;
}

#[wasm_bindgen_test]
async fn a_database_deleted_underneath_rejects_the_change_and_keeps_the_durable_state() {
    storage_failure_case("deleted", true).await;
}

#[wasm_bindgen_test]
async fn a_corrupt_record_is_quarantined_and_the_rest_loads() {
    let name = db_name("corrupt");
    let repo = open(&name).await;
    let id = create(&repo, "a", 1).await;
    let first: Vec<StorageKey> = idb(&repo)
        .range(&StorageKey::doc_prefix(&id))
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let (_, p) = change(&repo, &id, "b", 2);
    JsFuture::from(p).await.unwrap();
    repo.close().await.unwrap();

    // Flip a bit in the second record, directly in the object store.
    let store = IdbStorage::open(&name).await.unwrap();
    let records = store.range(&StorageKey::doc_prefix(&id)).await.unwrap();
    let (key, mut value) = records
        .into_iter()
        .find(|(k, _)| !first.contains(k))
        .expect("a second record");
    assert_eq!(key.kind(), RecordKind::Chunk(ChunkKind::Incremental));
    let mid = value.len() / 2;
    value[mid] ^= 0x10;
    store
        .commit(Commit {
            puts: vec![(key.clone(), value)],
            ..Default::default()
        })
        .await
        .unwrap();
    store.close();

    let again = open(&name).await;
    let events = record_events(&again);
    JsFuture::from(again.find(&id.to_string()).unwrap())
        .await
        .expect("loads from the valid records");
    assert_eq!(get_i64(&again, &id, "a"), Some(1));
    assert_eq!(
        get_i64(&again, &id, "b"),
        None,
        "the corrupt record is not loaded"
    );
    let repaired = events.borrow().iter().any(|(t, _)| t == "storage-repaired");
    assert!(repaired, "storage-repaired was emitted");
    // It is set aside, not deleted.
    JsFuture::from(again.driver().when_idle()).await.unwrap();
    let kept = idb(&again).get(&key.quarantine_of()).await.unwrap();
    assert!(
        kept.is_some(),
        "the corrupt record is kept under quarantine"
    );
    again.close().await.unwrap();
    delete_database(&name).await.unwrap();
}
