//! holdfast-server on PostgreSQL (`--postgres`, issue 16), against a real
//! PostgreSQL started here (`holdfast_pg::testing`) and real WebSockets:
//! what the server acknowledged survives SIGKILL of the server and an
//! immediate stop (a crash) of the database; while the database is down
//! nothing is acknowledged, and once it is back the work goes through.

mod common;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use common::*;
use holdfast_pg::testing::TempPostgres;

#[test]
fn acknowledged_work_survives_sigkill_of_the_server_and_a_crash_of_the_database() {
    let pg = TempPostgres::start();
    let url = pg.url();
    run(async {
        let mut acked: Vec<String> = Vec::new();
        let mut doc = None;
        for round in 0..4 {
            let mut server = ServerProc::spawn_with(&["--postgres", &url]);
            let mut c = Client::connect(&server.url()).await;
            if let Some(id) = doc {
                c.find_doc(id).await;
                let found = items(&c.doc(&id));
                assert_eq!(
                    found[..acked.len()],
                    acked[..],
                    "round {round}: acknowledged items"
                );
            }
            let id = *doc.get_or_insert_with(|| {
                c.create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()))
                    .0
            });
            for i in 0..5 {
                push_item(&mut c, &id, format!("r{round}-c{i}"));
                c.flush().await;
            }
            let heads = c.heads(&id);
            c.wait_acked(&id, &heads).await;
            acked = items(&c.doc(&id));
            server.kill9();
            if round % 2 == 1 {
                // The database crashes too: only its WAL has the commits.
                pg.stop_server("immediate");
                pg.start_server();
            }
        }
        println!(
            "{} acknowledged items survived 4 server kills and 2 database crashes",
            acked.len()
        );
    });
}

#[test]
fn nothing_is_acknowledged_while_the_database_is_down() {
    let pg = TempPostgres::start();
    let url = pg.url();
    run(async {
        let server = ServerProc::spawn_with(&["--postgres", &url]);
        let mut c = Client::connect(&server.url()).await;
        let (id, _) = c.create(|tx| tx.put(ROOT, "k", "before"));
        let heads = c.heads(&id);
        c.wait_acked(&id, &heads).await;
        pg.stop_server("fast");
        c.change(&id, |tx| tx.put(ROOT, "k", "during"));
        c.flush().await;
        let during = c.heads(&id);
        // The server's commit fails (it logs it): it must not advertise
        // these heads. (Its log is read as it comes; nothing else tells.)
        within("the server to report the failed commit", async {
            while !server
                .output
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("commit failed"))
            {
                let tick = tokio::time::sleep(std::time::Duration::from_millis(20));
                c.drive_until("the client's traffic meanwhile", tick).await;
            }
        })
        .await;
        assert!(
            c.ack_index(&id, &during, 0).is_none(),
            "acknowledged while the database was down"
        );
        pg.start_server();
        // Once the database is back, the same work goes through (the
        // client sends again what the server did not acknowledge).
        c.change(&id, |tx| tx.put(ROOT, "k", "after"));
        c.flush().await;
        let after = c.heads(&id);
        c.wait_acked(&id, &after).await;
    });
}
