//! Several holdfast-server nodes on one PostgreSQL (`--postgres <url>
//! --shared-database --shards 2`, issue 16), real processes and real WebSockets: a
//! commit through one node reaches the clients of the others (NOTIFY, then
//! the records read from the database); a node SIGKILLed mid-run loses
//! nothing it acknowledged, and its clients carry on through another node;
//! after the database itself crashes and restarts, the nodes listen again
//! and carry on.

mod common;

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use common::*;
use holdfast_core::id::DocumentId;
use holdfast_pg::testing::TempPostgres;

fn node(url: &str) -> ServerProc {
    ServerProc::spawn_with(&["--postgres", url, "--shared-database", "--shards", "2"])
}

/// Wait until `c` holds every item of `want` in document `id`.
async fn wait_items(c: &mut Client, id: DocumentId, want: &BTreeSet<String>, what: &str) {
    let want = want.clone();
    c.wait_for(what, move |c| {
        let have: BTreeSet<String> = items(&c.doc(&id)).into_iter().collect();
        want.is_subset(&have)
    })
    .await;
}

#[test]
fn nodes_on_one_database_carry_each_others_commits_and_survive_a_kill() {
    let pg = TempPostgres::start();
    let url = pg.url();
    run(async {
        let mut nodes: Vec<ServerProc> = (0..3).map(|_| node(&url)).collect();
        let mut clients = Vec::new();
        // The node each client is connected to.
        let mut on: Vec<usize> = (0..6).map(|i| i % 3).collect();
        for &n in &on {
            clients.push(Client::connect(&nodes[n].url()).await);
        }
        let (id, _) =
            clients[0].create(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()));
        let heads = clients[0].heads(&id);
        clients[0].wait_acked(&id, &heads).await;
        for c in clients.iter_mut().skip(1) {
            c.find_doc(id).await;
        }
        let mut acked = BTreeSet::new();
        let mut kills = 0;
        for round in 0..5 {
            if round == 4 {
                // The database crashes and comes back: the nodes listen
                // again, and read again what they hold (notifications sent
                // meanwhile are lost).
                pg.stop_server("immediate");
                pg.start_server();
            }
            for (i, c) in clients.iter_mut().enumerate() {
                for n in 0..3 {
                    push_item(c, &id, format!("c{i}-r{round}-{n}"));
                }
                c.flush().await;
            }
            for c in clients.iter_mut() {
                let heads = c.heads(&id);
                c.wait_acked(&id, &heads).await;
                acked.extend(items(&c.doc(&id)));
            }
            // Every client, whichever node it is on, gets everyone's work.
            for (i, c) in clients.iter_mut().enumerate() {
                wait_items(
                    c,
                    id,
                    &acked,
                    &format!("round {round}: client {i} to hold every acknowledged item"),
                )
                .await;
            }
            if round == 1 || round == 2 {
                // A node dies; its clients carry on through the next node.
                let dead = round - 1;
                nodes[dead].kill9();
                kills += 1;
                let next = dead + 1;
                let moved: Vec<usize> = (0..6).filter(|&i| on[i] == dead).collect();
                for i in moved {
                    on[i] = next;
                    let mut c = Client::connect(&nodes[next].url()).await;
                    c.find_doc(id).await;
                    wait_items(
                        &mut c,
                        id,
                        &acked,
                        &format!("client {i} after its node died"),
                    )
                    .await;
                    clients[i] = c;
                }
                nodes[dead] = node(&url);
            }
        }
        // A fresh node and client: everything acknowledged is in the database.
        let fresh = node(&url);
        let mut c = Client::connect(&fresh.url()).await;
        c.find_doc(id).await;
        wait_items(
            &mut c,
            id,
            &acked,
            "a fresh node's client to hold everything",
        )
        .await;
        println!(
            "{} items acknowledged through 3 nodes ({kills} killed, 1 database crash), all in the database and in every client",
            acked.len()
        );
    });
}
