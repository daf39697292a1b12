//! The server's log storage against real files and real fsync: round trips
//! against `MemoryStorage` (random commits across reopens and compactions,
//! compaction itself, and the async `LogStorage` adapter).
#![cfg(not(target_arch = "wasm32"))]

mod log_harness;

use std::time::Instant;

use holdfast_core::memory::MemoryStorage;
use holdfast_core::storage::{Commit, Storage, StorageKey};
use holdfast_log::{LogOptions, LogStorage};
use log_harness::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_key(rng: &mut ChaCha8Rng) -> StorageKey {
    let doc = ["a", "b", "c", "d"][rng.random_range(0..4)];
    let kind = ["snapshot", "incremental"][rng.random_range(0..2)];
    key(&[doc, kind, &rng.random_range(0..8u32).to_string()])
}

#[test]
fn random_commits_match_memory_storage_across_reopens_and_compactions() {
    let started = Instant::now();
    let (mut commits, mut reopens, mut compactions) = (0, 0, 0);
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_size: 2048,
            ..LogOptions::default()
        };
        let (mut store, _) = open(dir.path(), opts);
        let model = MemoryStorage::new();
        for step in 0..250 {
            let mut c = Commit::default();
            for _ in 0..rng.random_range(0..4) {
                let len = rng.random_range(0..120);
                let v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                c.puts.push((random_key(&mut rng), v));
            }
            for _ in 0..rng.random_range(0..3) {
                c.deletes.push(random_key(&mut rng));
            }
            if rng.random_bool(0.05) {
                let doc = ["a", "b", "c", "d"][rng.random_range(0..4)];
                c.delete_prefixes.push(match rng.random_range(0..3) {
                    0 => key(&[doc]),
                    1 => key(&[doc, "incremental"]),
                    _ => key(&[doc, "snapshot", "1"]),
                });
            }
            // A put of a key deleted in the same commit must win (deletes first).
            if let (Some(d), true) = (c.deletes.first().cloned(), rng.random_bool(0.2)) {
                c.puts.push((d, vec![step as u8]));
            }
            store.commit(&c).unwrap();
            now(model.commit(c)).unwrap();
            commits += 1;

            if rng.random_bool(0.06) {
                drop(store);
                let (s, report) = open(dir.path(), opts);
                assert!(report.is_clean(), "seed {seed} step {step}: {report:?}");
                store = s;
                reopens += 1;
            }
            if rng.random_bool(0.02) {
                store.compact().unwrap();
                assert_eq!(segment_ids(dir.path()).len(), 1);
                compactions += 1;
            }
            if step % 10 == 0 {
                assert_eq!(
                    store.range(&all()).unwrap(),
                    memory_dump(&model),
                    "seed {seed} step {step}"
                );
            }
        }
        for doc in ["a", "b", "c", "d"] {
            let p = key(&[doc, "incremental"]);
            assert_eq!(store.range(&p).unwrap(), now(model.range(&p)).unwrap());
        }
        for _ in 0..20 {
            let k = random_key(&mut rng);
            assert_eq!(store.get(&k).unwrap(), now(model.get(&k)).unwrap());
        }
        drop(store);
        let (store, report) = open(dir.path(), opts);
        assert!(report.is_clean());
        assert_eq!(
            store.range(&all()).unwrap(),
            memory_dump(&model),
            "seed {seed} final"
        );
    }
    println!(
        "round trip: {commits} commits, {reopens} reopens, {compactions} compactions compared with MemoryStorage in {:?}",
        started.elapsed()
    );
}

#[test]
fn compaction_keeps_live_keys_and_drops_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 512,
        ..LogOptions::default()
    };
    let (mut s, m) = compaction_history(dir.path(), opts);
    let before = s.stats().unwrap();
    assert!(before.segments > 3, "{before:?}");
    let after = s.compact().unwrap();
    assert_eq!(after.segments, 1);
    assert_eq!(after.live_keys, 10);
    assert!(after.disk_bytes < before.disk_bytes);
    assert_eq!(segment_ids(dir.path()), vec![before.active_segment + 1]);
    assert_eq!(s.range(&all()).unwrap(), memory_dump(&m));
    // Commits after compaction append to the compacted segment and roll on.
    for i in 0..10u8 {
        let c = Commit {
            puts: vec![(key(&["n", &i.to_string()]), vec![i; 100])],
            deletes: vec![key(&["k", "12"])],
            ..Default::default()
        };
        s.commit(&c).unwrap();
        now(m.commit(c)).unwrap();
    }
    drop(s);
    let (s, report) = open(dir.path(), opts);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(s.range(&all()).unwrap(), memory_dump(&m));
    assert_eq!(s.get(&key(&["k", "03"])).unwrap(), None);
    assert_eq!(s.range(&key(&["p"])).unwrap(), vec![]);
}

#[tokio::test(flavor = "current_thread")]
async fn log_storage_serves_the_storage_trait_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (storage, report) = LogStorage::open(dir.path(), LogOptions::default()).unwrap();
            assert!(report.is_clean());
            let model = MemoryStorage::new();
            for i in 0..20 {
                storage.commit(numbered_commit(i)).await.unwrap();
                model.commit(numbered_commit(i)).await.unwrap();
            }
            storage
                .commit(Commit {
                    delete_prefixes: vec![key(&["doc", "c", "005-a"])],
                    ..Default::default()
                })
                .await
                .unwrap();
            let p = key(&["doc"]);
            let want = {
                model
                    .commit(Commit {
                        delete_prefixes: vec![key(&["doc", "c", "005-a"])],
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                model.range(&p).await.unwrap()
            };
            assert_eq!(storage.range(&p).await.unwrap(), want);
            assert_eq!(
                storage.get(&key(&["doc", "c", "019-b"])).await.unwrap(),
                Some(vec![!19u8; 9])
            );
            let stats = storage.compact().await.unwrap();
            assert_eq!(stats.live_keys as usize, want.len());
            // A task on the LocalSet (not Send-required) can use it too.
            let s2 = storage.clone();
            let got = tokio::task::spawn_local(async move { s2.range(&key(&["doc"])).await })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, want);
            drop(storage);
            let (storage, report) = LogStorage::open(dir.path(), LogOptions::default()).unwrap();
            assert!(report.is_clean());
            assert_eq!(storage.range(&p).await.unwrap(), want);
        })
        .await;
}
