//! Tests of `compact.rs`: commits made between the looks of a compaction.

use super::super::LogOptions;
use super::*;
use holdfast_core::storage::Commit;
use std::collections::BTreeMap;

type Model = BTreeMap<StorageKey, Vec<u8>>;

fn key(i: usize) -> StorageKey {
    StorageKey::new([
        "k".to_string(),
        format!("{:03}", i / 100),
        format!("{i:05}"),
    ])
}

fn apply(m: &mut Model, c: &Commit) {
    for k in &c.deletes {
        m.remove(k);
    }
    for p in &c.delete_prefixes {
        m.retain(|k, _| !k.starts_with(p));
    }
    for (k, v) in &c.puts {
        m.insert(k.clone(), v.clone());
    }
}

fn dump(m: &Model) -> Vec<(StorageKey, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".log") || name.ends_with(".log.tmp") {
            fs::copy(e.path(), to.path().join(name)).unwrap();
        }
    }
    to
}

/// Commits made between the compaction's looks at the index (keys
/// before and after its cursor overwritten, deleted, deleted by prefix,
/// put back) keep their effect, in memory, after reopening, and after a
/// crash at any of those moments.
#[test]
fn commits_between_the_looks_of_a_compaction_keep_their_effect() {
    const KEYS: usize = 5 * KEYS_PER_LOOK;
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size: 64 << 10,
        ..LogOptions::default()
    };
    let (mut s, _) = LogStore::open(dir.path(), opts).unwrap();
    let mut m = Model::new();
    for batch in 0..KEYS / 1000 {
        let c = Commit {
            puts: (batch * 1000..(batch + 1) * 1000)
                .map(|i| (key(i), format!("first {i}").into_bytes()))
                .collect(),
            ..Default::default()
        };
        s.commit(&c).unwrap();
        apply(&mut m, &c);
    }
    // Garbage too: every 10th key overwritten once.
    let c = Commit {
        puts: (0..KEYS)
            .step_by(10)
            .map(|i| (key(i), format!("second {i}").into_bytes()))
            .collect(),
        ..Default::default()
    };
    s.commit(&c).unwrap();
    apply(&mut m, &c);

    let job = s.begin_compaction(true).unwrap();
    let mut crashes = Vec::new();
    let mut looks = 0;
    let written = job.write(|after| {
        // A commit touching keys on both sides of the cursor.
        let at = after.map_or(0, |k| k.0[2].parse::<usize>().unwrap());
        let ahead = (at + 1500) % KEYS;
        let behind = at.saturating_sub(1500);
        let c = Commit {
            deletes: vec![key(ahead + 1), key(behind + 1)],
            delete_prefixes: vec![StorageKey::new([
                "k".to_string(),
                format!("{:03}", (ahead + 300) / 100 % (KEYS / 100)),
            ])],
            puts: vec![
                (key(ahead), format!("during {looks}").into_bytes()),
                (key(behind), format!("during {looks}").into_bytes()),
                (key(behind + 1), format!("back {looks}").into_bytes()),
            ],
        };
        s.commit(&c).unwrap();
        apply(&mut m, &c);
        crashes.push((copy_dir(dir.path()), dump(&m)));
        looks += 1;
        Ok(s.compaction_chunk(&job, after))
    });
    let replaced = s.finish_compaction(&job, written).unwrap();
    job.remove_replaced(replaced);
    assert!(looks >= 5, "{looks} looks");
    // (assert! rather than assert_eq!: 20,000 entries.)
    assert!(s.range(&StorageKey(vec![])).unwrap() == dump(&m));
    let stats = s.stats().unwrap();
    assert_eq!(stats.live_bytes, m.values().map(|v| v.len() as u64).sum());
    drop(s);
    let (s, report) = LogStore::open(dir.path(), opts).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(s.range(&StorageKey(vec![])).unwrap() == dump(&m));
    assert_eq!(s.stats().unwrap().disk_bytes, stats.disk_bytes);
    for (n, (copy, want)) in crashes.iter().enumerate() {
        let (s, report) = LogStore::open(copy.path(), opts).unwrap();
        assert!(
            s.range(&StorageKey(vec![])).unwrap() == *want,
            "crash {n}: {report:?}"
        );
    }
}
