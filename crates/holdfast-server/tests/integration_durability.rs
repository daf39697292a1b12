//! holdfast-server over real WebSockets on 127.0.0.1, with real files and
//! fsync: durability (acknowledged work across SIGKILL, a storage failure,
//! graceful shutdown in process and by SIGINT). The protocol and the routes
//! are in `integration_protocol.rs`.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ROOT};
use common::*;
use holdfast_log::FaultPoint;

const MAX_FRAME: usize = 64 * 1024;

/// The contract, end to end: once the server's sync message advertises heads
/// covering the client's, the work survives SIGKILL of the server at once.
#[test]
fn acknowledged_work_survives_sigkill() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        const ROUNDS: usize = 4;
        const PER_ROUND: usize = 5;
        let mut doc = None;
        let mut acked_heads = Vec::new();
        let mut acked_items: Vec<String> = Vec::new();
        for round in 0..=ROUNDS {
            let mut server = ServerProc::spawn(dir.path(), &[]);
            let mut c = Client::connect(&server.url()).await;
            // A fresh client finds everything acknowledged before the kill.
            if let Some(id) = doc {
                c.find_doc(id).await;
                c.wait_for("the server's copy", |c| {
                    let mine = sorted(c.heads(&id));
                    c.received
                        .iter()
                        .any(|m| sync_heads(m).is_some_and(|(d, h)| d == id && sorted(h) == mine))
                })
                .await;
                let d = c.doc(&id);
                let missing: Vec<_> = acked_heads
                    .iter()
                    .filter(|h| d.get_change_by_hash(h).is_none())
                    .collect();
                assert!(
                    missing.is_empty(),
                    "round {round}: lost acknowledged changes {missing:?}"
                );
                let found = items(&d);
                assert_eq!(
                    found[..acked_items.len()],
                    acked_items[..],
                    "round {round}: acknowledged items"
                );
                println!(
                    "round {round}: after SIGKILL + restart found {} items ({} acknowledged)",
                    found.len(),
                    acked_items.len()
                );
                acked_items = found;
            }
            if round == ROUNDS {
                break;
            }
            let id = *doc.get_or_insert_with(|| {
                c.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()))
                    .0
            });
            // Several changes, each sent as soon as it is made.
            for i in 0..PER_ROUND {
                push_item(&mut c, &id, format!("r{round}-c{i}"));
                c.flush().await;
            }
            let heads = c.heads(&id);
            c.wait_acked(&id, &heads).await;
            server.kill9();
            acked_heads = heads;
            let now_items = items(&c.doc(&id));
            println!(
                "round {round}: {} changes acknowledged ({} items), server SIGKILLed",
                PER_ROUND,
                now_items.len()
            );
            acked_items = now_items;
        }
        assert_eq!(acked_items.len(), ROUNDS * PER_ROUND);
    });
}

/// fsync fails on the server: no acknowledgement while it fails, other
/// clients are still served, and once it works again the client's work is
/// resent by the sync protocol and acknowledged; it survives a restart.
#[test]
fn storage_failure_withholds_the_ack_until_a_retry_succeeds() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let failing = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(AtomicUsize::new(0));
        {
            let (failing, faults) = (failing.clone(), faults.clone());
            server.storage.set_fault_hook(Some(Box::new(move |p| {
                if p == FaultPoint::Sync && failing.load(Ordering::SeqCst) {
                    faults.fetch_add(1, Ordering::SeqCst);
                    Some(io::Error::other("injected fsync failure"))
                } else {
                    None
                }
            })));
        }

        let mut a = Client::connect(&server.url()).await;
        let mut b = Client::connect(&server.url()).await;
        let (x, _) = a.create(|tx| tx.put(ROOT, "v", "durable"));
        let (y, _) = b.create(|tx| tx.put(ROOT, "v", "other doc"));
        let hx = a.heads(&x);
        let hy = b.heads(&y);
        a.wait_acked(&x, &hx).await;
        b.wait_acked(&y, &hy).await;
        let stats_before = server.storage.stats().await.unwrap();

        failing.store(true, Ordering::SeqCst);
        a.change(&x, |tx| tx.put(ROOT, "v", "written during the fault"));
        let want = a.heads(&x);
        // Let the server fail, reset, receive the resent changes and fail
        // again a few times.
        let f = faults.clone();
        a.wait_for("three failed fsyncs", move |_| {
            f.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert!(!a.closed, "the server keeps the connection");
        assert_eq!(
            a.ack_index(&x, &want, 0),
            None,
            "the server advertised heads it failed to make durable"
        );
        // Nothing of it is in the log either (failed appends are undone).
        assert_eq!(server.storage.stats().await.unwrap(), stats_before);

        // Meanwhile the server serves another client on another document.
        let mut c = Client::connect(&server.url()).await;
        c.find_doc(y).await;
        assert_eq!(get_str(&c.doc(&y), "v").as_deref(), Some("other doc"));
        assert_eq!(a.ack_index(&x, &want, 0), None);

        failing.store(false, Ordering::SeqCst);
        a.wait_acked(&x, &want).await;
        println!(
            "acknowledged after {} injected fsync failures",
            faults.load(Ordering::SeqCst)
        );

        a.close().await;
        b.close().await;
        c.close().await;
        server.stop().await;
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(x).await;
        assert_eq!(
            get_str(&d.doc(&x), "v").as_deref(),
            Some("written during the fault")
        );
        d.close().await;
        server.stop().await;
    });
}

/// `Running::stop()` while a commit is in flight (held at its fsync) waits
/// for it: the change the server had received is there after a restart.
#[test]
fn graceful_stop_finishes_the_commit_in_flight() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let armed = Arc::new(AtomicBool::new(false));
        let (at_sync_tx, mut at_sync_rx) = tokio::sync::mpsc::unbounded_channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        {
            let armed = armed.clone();
            let release_rx = std::sync::Mutex::new(release_rx);
            server.storage.set_fault_hook(Some(Box::new(move |p| {
                if p == FaultPoint::Sync && armed.swap(false, Ordering::SeqCst) {
                    let _ = at_sync_tx.send(());
                    // Hold the fsync until the test says so.
                    let _ = release_rx.lock().unwrap().recv();
                }
                None
            })));
        }
        let mut c = Client::connect(&server.url()).await;
        let (id, _) = c.create(|tx| tx.put(ROOT, "v", "first"));
        let h = c.heads(&id);
        c.wait_acked(&id, &h).await;

        armed.store(true, Ordering::SeqCst);
        c.change(&id, |tx| tx.put(ROOT, "v", "in flight at shutdown"));
        let want = c.heads(&id);
        c.drive_until("the commit to reach its fsync", at_sync_rx.recv())
            .await;
        let stop = server.stop();
        let release = async {
            // Shutdown has begun once the server closes our connection.
            c.wait_closed().await;
            release_tx.send(()).unwrap();
        };
        tokio::join!(stop, release);
        assert_eq!(c.ack_index(&id, &want, 0), None, "acked after close?");

        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(id).await;
        assert_eq!(
            get_str(&d.doc(&id), "v").as_deref(),
            Some("in flight at shutdown")
        );
        d.close().await;
        server.stop().await;
    });
}

/// SIGINT to the binary: it exits 0, and what it acknowledged is there
/// after a restart (a change still in flight is wholly there or absent).
#[test]
fn sigint_exits_cleanly_keeping_acknowledged_work() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut server = ServerProc::spawn(dir.path(), &[]);
        let mut c = Client::connect(&server.url()).await;
        let (id, _) = c.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()));
        for i in 0..3 {
            push_item(&mut c, &id, format!("acked {i}"));
        }
        let h = c.heads(&id);
        c.wait_acked(&id, &h).await;
        // A large change, sent, then SIGINT straight away.
        push_item(&mut c, &id, "x".repeat(512 * 1024));
        c.flush().await;
        server.sigint();
        let status = server.wait_exit().await;
        assert!(status.success(), "exit status {status:?}");
        let out = server.output.lock().unwrap().join("\n");
        assert!(out.contains("finishing in-flight commits"), "{out}");

        let server = ServerProc::spawn(dir.path(), &[]);
        let mut d = Client::connect(&server.url()).await;
        d.find_doc(id).await;
        d.wait_for("the server's copy", |d| {
            let mine = sorted(d.heads(&id));
            d.received
                .iter()
                .any(|m| sync_heads(m).is_some_and(|(x, h)| x == id && sorted(h) == mine))
        })
        .await;
        let found = items(&d.doc(&id));
        assert_eq!(found[..3], ["acked 0", "acked 1", "acked 2"]);
        assert!(found.len() == 3 || (found.len() == 4 && found[3].len() == 512 * 1024));
        println!(
            "SIGINT: exit 0; the change in flight was {}",
            if found.len() == 4 {
                "kept"
            } else {
                "not received"
            }
        );
        d.close().await;
    });
}
