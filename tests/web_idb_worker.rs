//! The IndexedDB storage inside a dedicated Worker (no `window`):
//! `wasm-pack test --headless --chrome --test web_idb_worker`.
#![cfg(target_arch = "wasm32")]

use holdfast::idb::{delete_database, Durability, IdbStorage};
use holdfast_core::storage::{Commit, Storage, StorageKey};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[wasm_bindgen_test]
async fn opens_commits_and_reads_in_a_worker() {
    assert!(js_sys::global().dyn_into::<web_sys::Window>().is_err());
    let name = format!(
        "holdfast-test-worker-{}-{}",
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 1e9) as u64
    );
    let s = IdbStorage::open(&name).await.unwrap();
    assert_eq!(s.durability(), Durability::Strict);
    let key = StorageKey::new(["doc", "incremental", "h"]);
    s.commit(Commit {
        puts: vec![(key.clone(), vec![1, 2, 3])],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(s.commits(), 1);
    assert_eq!(
        s.range(&StorageKey::new(["doc"])).await.unwrap(),
        vec![(key, vec![1, 2, 3])]
    );
    drop(s);
    delete_database(&name).await.unwrap();
}
