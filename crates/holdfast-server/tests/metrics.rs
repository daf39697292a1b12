//! `GET /metrics` on a real server with real WebSocket clients: the
//! per-type message counters and the open-connection gauge move exactly as
//! the frames sent and the connections opened and closed say.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use automerge::transaction::Transactable;
use automerge::{sync, sync::SyncDoc, AutoCommit, ROOT};
use common::*;
use holdfast_core::wire::Message;

const MAX_FRAME: usize = 64 * 1024;

struct Metrics(BTreeMap<String, u64>, String);

impl Metrics {
    async fn get(addr: SocketAddr) -> Metrics {
        let (status, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        Metrics(parse(&body), body)
    }
    /// Frames of message type `kind` received so far (0 if none yet).
    fn received(&self, kind: &str) -> u64 {
        let key = format!("holdfast_messages_received_total{{type=\"{kind}\"}}");
        self.0.get(&key).copied().unwrap_or(0)
    }
    fn connections(&self) -> u64 {
        *self
            .0
            .get("holdfast_connections")
            .unwrap_or_else(|| panic!("no holdfast_connections:\n{}", self.1))
    }
}

/// Ask `/metrics` until the connection gauge reads `n` (a closed socket
/// reaches the server's task a moment after the client sees it close).
/// Every attempt is a round trip to the server, not a wait on a clock.
async fn connections_reach(addr: SocketAddr, n: u64) -> Metrics {
    within(&format!("holdfast_connections {n}"), async {
        loop {
            let m = Metrics::get(addr).await;
            if m.connections() == n {
                return m;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[test]
fn metrics_count_messages_and_connections() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let server = InProc::start(dir.path(), config(None, MAX_FRAME)).await;
        let addr = server.addr;

        // Nothing yet: both metrics are declared, no frame counted.
        let m = Metrics::get(addr).await;
        println!("at start:\n{}", m.1);
        assert!(m
            .1
            .contains("# TYPE holdfast_messages_received_total counter"));
        assert!(m.1.contains("# TYPE holdfast_connections gauge"));
        assert_eq!(m.connections(), 0);
        assert_eq!(m.received("join"), 0);
        assert_eq!(m.received("sync"), 0);

        // A raw client: one join (answered by `peer`), then the sync
        // messages that push a new document. Each of our frames is answered
        // after the server's task handled it, so the counts are exact.
        let mut raw = Raw::connect(&server.url()).await;
        let server_id = raw.join().await;
        let m = Metrics::get(addr).await;
        assert_eq!(m.received("join"), 1, "{}", m.1);
        assert_eq!(m.received("sync"), 0, "{}", m.1);
        assert_eq!(m.connections(), 1, "{}", m.1);

        let doc_id = random_doc_id();
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "title", "counted").unwrap();
        let heads = doc.get_heads();
        // automerge's sync: messages go back and forth until the server
        // advertises our heads (it does once they are on its disk); every
        // message we send is one `sync` frame.
        let mut state = sync::State::new();
        let mut sent = 0;
        loop {
            if let Some(out) = doc.sync().generate_sync_message(&mut state) {
                raw.send_msg(&Message::Sync {
                    request: false,
                    document_id: doc_id,
                    sender_id: raw.peer_id.clone(),
                    target_id: server_id.clone(),
                    data: out.encode(),
                })
                .await;
                sent += 1;
            }
            let msg = match raw.next().await {
                RawIn::Msg(msg) => msg,
                other => panic!("expected the server's sync, got {other:?}"),
            };
            let Message::Sync {
                document_id, data, ..
            } = &msg
            else {
                panic!("expected the server's sync, got {msg:?}")
            };
            assert_eq!(*document_id, doc_id);
            let theirs = sync::Message::decode(data).unwrap();
            let done = theirs.heads == heads;
            doc.sync().receive_sync_message(&mut state, theirs).unwrap();
            if done {
                break;
            }
        }
        println!("sent {sent} sync messages");
        let m = Metrics::get(addr).await;
        println!("after a join and a sync:\n{}", m.1);
        assert_eq!(m.received("join"), 1, "{}", m.1);
        assert_eq!(m.received("sync"), sent, "{}", m.1);
        assert_eq!(m.received("request"), 0, "{}", m.1);
        assert_eq!(m.connections(), 1, "{}", m.1);

        // A second client (the native one) finds the document: a second
        // join and a second connection, and its messages are counted too.
        let mut b = Client::connect(&server.url()).await;
        b.find_doc(doc_id).await;
        assert_eq!(
            get_str(&b.doc(&doc_id), "title").as_deref(),
            Some("counted")
        );
        let m = Metrics::get(addr).await;
        assert_eq!(m.received("join"), 2, "{}", m.1);
        assert!(
            m.received("sync") + m.received("request") >= 2,
            "b's find sent a sync or request message:\n{}",
            m.1
        );
        assert_eq!(m.connections(), 2, "{}", m.1);

        // A frame that does not decode is not counted under any type; the
        // server closes that connection.
        let before = Metrics::get(addr).await;
        raw.send_bytes(vec![0xff, 0x00, 0x13, 0x37]).await;
        raw.expect_error_and_close("garbage").await;
        let m = connections_reach(addr, 1).await;
        let counters = |m: &Metrics| -> Vec<(String, u64)> {
            m.0.iter()
                .filter(|(k, _)| k.starts_with("holdfast_messages_received_total"))
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        };
        assert_eq!(counters(&m), counters(&before), "{}", m.1);

        b.close().await;
        connections_reach(addr, 0).await;
        server.stop().await;
    });
}
