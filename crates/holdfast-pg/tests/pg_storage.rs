//! `PgStorage` against a real PostgreSQL (initdb into a temporary directory,
//! see `holdfast_pg::testing`): the commit contract, a crash of the
//! database, the database going away and coming back, and the checks made
//! at connect.

use holdfast_core::storage::{Commit, Storage, StorageError, StorageKey};
use holdfast_pg::testing::TempPostgres;
use holdfast_pg::{PgError, PgOptions, PgStorage};

fn key(parts: &[&str]) -> StorageKey {
    StorageKey::new(parts.iter().copied())
}

fn puts(items: &[(&[&str], &str)]) -> Commit {
    Commit {
        puts: items
            .iter()
            .map(|(k, v)| (key(k), v.as_bytes().to_vec()))
            .collect(),
        ..Commit::default()
    }
}

async fn connect(pg: &TempPostgres) -> PgStorage {
    PgStorage::connect(&pg.url(), PgOptions::default())
        .await
        .expect("connect")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn commits_read_back_in_key_order_with_deletes_before_puts() {
    let pg = TempPostgres::start();
    rt().block_on(async {
        let s = connect(&pg).await;
        s.commit(puts(&[
            (&["doc1", "incremental", "b"], "b1"),
            (&["doc1", "incremental", "a"], "a1"),
            (&["doc1", "snapshot", "c"], "c1"),
            (&["doc10", "snapshot", "x"], "x"),
            (&["$holdfast", "cursor", "odd\u{1f}id\0"], "7"),
        ]))
        .await
        .unwrap();
        let got = s.range(&key(&["doc1"])).await.unwrap();
        let keys: Vec<StorageKey> = got.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![
                key(&["doc1", "incremental", "a"]),
                key(&["doc1", "incremental", "b"]),
                key(&["doc1", "snapshot", "c"]),
            ],
            "doc10 is not under doc1"
        );
        assert_eq!(
            s.get(&key(&["$holdfast", "cursor", "odd\u{1f}id\0"]))
                .await
                .unwrap(),
            Some(b"7".to_vec())
        );
        // One commit: a delete, a prefix delete, and puts that land after
        // them (the same key put twice: the last wins).
        let mut c = puts(&[
            (&["doc1", "snapshot", "d"], "first"),
            (&["doc1", "snapshot", "d"], "d1"),
            (&["doc10", "snapshot", "y"], "y"),
        ]);
        c.deletes.push(key(&["doc1", "incremental", "a"]));
        c.delete_prefixes.push(key(&["doc10"]));
        s.commit(c).await.unwrap();
        let got = s.range(&key(&["doc1"])).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            s.get(&key(&["doc1", "snapshot", "d"])).await.unwrap(),
            Some(b"d1".to_vec())
        );
        assert_eq!(
            s.range(&key(&["doc10"])).await.unwrap(),
            vec![(key(&["doc10", "snapshot", "y"]), b"y".to_vec())],
            "the prefix delete ran before the put"
        );
    });
}

#[test]
fn what_a_commit_returned_ok_for_survives_a_crash_of_the_database() {
    let pg = TempPostgres::start();
    let n = 200;
    rt().block_on(async {
        let s = connect(&pg).await;
        for i in 0..n {
            s.commit(puts(&[(&["doc", "incremental", &format!("{i:04}")], "v")]))
                .await
                .unwrap();
        }
    });
    // No checkpoint, no clean shutdown: only the WAL has it.
    pg.stop_server("immediate");
    pg.start_server();
    rt().block_on(async {
        let s = connect(&pg).await;
        assert_eq!(s.range(&key(&["doc"])).await.unwrap().len(), n);
    });
}

#[test]
fn a_database_that_goes_away_fails_commits_with_a_typed_error_and_comes_back() {
    let pg = TempPostgres::start();
    let rt = rt();
    let s = rt.block_on(connect(&pg));
    rt.block_on(s.commit(puts(&[(&["a"], "1")]))).unwrap();
    pg.stop_server("fast");
    let err = rt.block_on(s.commit(puts(&[(&["b"], "2")]))).unwrap_err();
    assert!(
        matches!(err, StorageError::Unavailable(_)),
        "expected Unavailable, got {err:?}"
    );
    assert!(rt.block_on(s.get(&key(&["a"]))).is_err());
    pg.start_server();
    // The pool replaces its dead connections.
    rt.block_on(s.commit(puts(&[(&["c"], "3")]))).unwrap();
    assert_eq!(
        rt.block_on(s.get(&key(&["a"]))).unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        rt.block_on(s.get(&key(&["b"]))).unwrap(),
        None,
        "the failed commit left nothing"
    );
}

#[test]
fn connect_migrates_once_and_refuses_what_it_cannot_trust() {
    let pg = TempPostgres::start();
    rt().block_on(async {
        // Several stores starting at once: one migrates, all connect.
        let url = pg.url();
        let options = PgOptions {
            exclusive: false,
            ..PgOptions::default()
        };
        let shared = || PgStorage::connect(&url, options.clone());
        let (a, b, c) = tokio::join!(shared(), shared(), shared());
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        a.commit(puts(&[(&["x"], "1")])).await.unwrap();
        assert_eq!(c.get(&key(&["x"])).await.unwrap(), Some(b"1".to_vec()));
        drop(b);
        let (client, conn) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("UPDATE holdfast_schema SET version = 99")
            .await
            .unwrap();
        let err = PgStorage::connect(&pg.url(), PgOptions::default())
            .await
            .err()
            .expect("a newer schema is refused");
        assert!(
            matches!(err, PgError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        for sql in [
            "UPDATE holdfast_schema SET version = 1",
            "ALTER SYSTEM SET fsync = off",
            "SELECT pg_reload_conf()",
        ] {
            client.batch_execute(sql).await.unwrap();
        }
        // The reload reaches the server's processes asynchronously.
        let mut refused = None;
        for _ in 0..100 {
            match PgStorage::connect(&pg.url(), PgOptions::default()).await {
                Err(e) => {
                    refused = Some(e);
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        let err = refused.expect("fsync = off is refused");
        assert!(matches!(err, PgError::FsyncOff), "{err}");
    });
}

#[test]
fn a_second_exclusive_store_is_refused_while_the_first_holds_the_database() {
    let pg = TempPostgres::start();
    let rt = rt();
    let _first = rt.block_on(connect(&pg));
    let err = rt
        .block_on(PgStorage::connect(&pg.url(), PgOptions::default()))
        .err()
        .expect("the second is refused");
    assert!(matches!(err, PgError::InUse), "{err}");
}
