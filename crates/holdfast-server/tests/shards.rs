//! `--shards`: several core repos in one server, documents split among them
//! by id (`holdfast_server::shards`). Real sockets, the real log. The
//! protocol, hostile-frame and durability suites also run against 3 shards
//! in `make test` (`HOLDFAST_TEST_SHARDS=3`); these tests check what only
//! sharding can break.

mod common;

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::ROOT;
use common::*;
use holdfast_core::id::DocumentId;
use holdfast_core::wire::Message;
use holdfast_server::shards::shard_of;
use holdfast_server::Config;

const MAX_FRAME: usize = 64 * 1024;
const SHARDS: usize = 3;

fn sharded() -> Config {
    Config {
        shards: SHARDS,
        ..config(None, MAX_FRAME)
    }
}

/// One `join` gets one `peer` (every shard handles the join; only the home
/// shard's answer is sent): the next frame after it answers our `sync`.
#[test]
fn a_join_is_answered_once() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), sharded()).await;
        for _ in 0..SHARDS * 2 {
            // Connections get different home shards.
            let mut raw = Raw::connect(&server.url()).await;
            let server_id = raw.join().await;
            let doc = random_doc_id();
            raw.send_msg(&empty_sync(doc, &raw.peer_id.clone(), &server_id))
                .await;
            match raw.next().await {
                RawIn::Msg(Message::DocUnavailable { document_id, .. }) => {
                    assert_eq!(document_id, doc)
                }
                other => panic!("expected doc-unavailable for {doc}, got {other:?}"),
            }
        }
        server.stop().await;
    });
}

/// Documents on every shard: created by A, found by B, changed both ways;
/// `/metrics` sums the shards (connections and joins counted once); a
/// restart with 3 shards and then with 1 finds every document.
#[test]
fn documents_on_every_shard_sync_and_survive_restarts() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), sharded()).await;
        let mut a = Client::connect(&server.url()).await;
        let mut b = Client::connect(&server.url()).await;
        // Until every shard holds two of A's documents.
        let mut docs: Vec<DocumentId> = Vec::new();
        let mut per = [0usize; SHARDS];
        while per.iter().any(|n| *n < 2) {
            let (id, created) = a.create(|tx| tx.put(ROOT, "title", "from A"));
            a.wait_durable(created).await;
            per[shard_of(&id, SHARDS)] += 1;
            docs.push(id);
        }
        for id in &docs {
            let h = a.heads(id);
            a.wait_acked(id, &h).await;
            b.find_doc(*id).await;
            assert_eq!(get_str(&b.doc(id), "title").as_deref(), Some("from A"));
            let change = b.change(id, |tx| tx.put(ROOT, "b", "1"));
            b.wait_durable(change).await;
            let h = b.heads(id);
            b.wait_acked(id, &h).await;
            a.wait_heads(id, &h).await;
            assert_eq!(get_str(&a.doc(id), "b").as_deref(), Some("1"));
        }
        assert_eq!(metric(server.addr, "holdfast_connections").await, 2);
        assert_eq!(
            metric(
                server.addr,
                "holdfast_messages_received_total{type=\"join\"}"
            )
            .await,
            2
        );
        assert_eq!(
            metric(server.addr, "holdfast_documents_loaded").await,
            docs.len() as u64
        );
        a.close().await;
        b.close().await;
        server.stop().await;

        for shards in [SHARDS, 1] {
            server_restarted_finds(dir.path(), shards, &docs).await;
        }
    });
}

async fn server_restarted_finds(dir: &std::path::Path, shards: usize, docs: &[DocumentId]) {
    let config = Config {
        shards,
        ..config(None, MAX_FRAME)
    };
    let server = InProc::start(dir, config).await;
    let mut c = Client::connect(&server.url()).await;
    for id in docs {
        c.find_doc(*id).await;
        assert_eq!(
            get_str(&c.doc(id), "b").as_deref(),
            Some("1"),
            "{id} with {shards} shards"
        );
    }
    c.close().await;
    server.stop().await;
}

/// Authentication with several shards is refused at start, with the reason
/// (document owners live in the collection index, which sharding turns
/// off).
#[test]
fn authentication_with_shards_is_refused() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let (storage, _) =
            holdfast_log::LogStorage::open(dir.path(), holdfast_log::LogOptions::default())
                .unwrap();
        let config = Config {
            auth: Some(Arc::new(holdfast_server::auth::Verifier::from_secret(
                b"0123456789abcdef0123456789abcdef",
            ))),
            ..sharded()
        };
        let err = holdfast_server::start(config, storage)
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("owners"), "{err}");
    });
}
