//! The server does not answer what carries no news (issue 13, point 4): an
//! automerge-repo client that reconnects with the same peer id re-offers
//! every document from its kept sync state (encoded and decoded, as its
//! `beginSync` does); the server keeps each peer's states across the
//! disconnect and answers only documents with news. A peer whose message
//! shows it does not know the server's heads (a fresh state) is answered.

mod net_harness;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::Message;
use net_harness::*;

/// An automerge-repo-like client: documents and a sync state per document.
struct Client {
    docs: Vec<(DocumentId, Automerge, sync::State)>,
}

impl Client {
    fn new(n: u8) -> Self {
        let docs = (1..=n)
            .map(|i| {
                let mut d = Automerge::new();
                d.transact(|tx| tx.put(ROOT, "n", i64::from(i))).unwrap();
                (DocumentId([i; 16]), d, sync::State::new())
            })
            .collect();
        Client { docs }
    }

    /// Generate every document's next message, as frames.
    fn offer(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (id, d, s) in &mut self.docs {
            if let Some(m) = d.generate_sync_message(s) {
                out.push(frame(&Message::Sync {
                    request: false,
                    document_id: *id,
                    sender_id: "client".into(),
                    target_id: "server".into(),
                    data: m.encode(),
                }));
            }
        }
        out
    }

    fn receive(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if let Message::Sync {
                document_id, data, ..
            } = m
            {
                let (_, d, s) = self
                    .docs
                    .iter_mut()
                    .find(|(i, _, _)| *i == document_id)
                    .unwrap();
                d.receive_sync_message(s, sync::Message::decode(&data).unwrap())
                    .unwrap();
            }
        }
    }

    /// What automerge-repo's `beginSync` does to a kept state.
    fn reparse_states(&mut self) {
        for (_, _, s) in &mut self.docs {
            *s = sync::State::decode(&s.encode()).unwrap();
        }
    }
}

/// Exchange until neither side has anything to say; the server's sync
/// messages sent on the way, counted.
fn exchange(server: &mut Repo, client: &mut Client, conn: ConnId) -> usize {
    let mut sent = 0;
    loop {
        let frames = client.offer();
        for f in &frames {
            server.frame(T, conn, f);
        }
        let replies: Vec<Message> = sent_msgs(server);
        let n = replies
            .iter()
            .filter(|m| matches!(m, Message::Sync { .. }))
            .count();
        sent += n;
        client.receive(replies);
        if frames.is_empty() && n == 0 {
            return sent;
        }
    }
}

fn sent_msgs(server: &mut Repo) -> Vec<Message> {
    sent(&settle(server))
}

fn join_as(server: &mut Repo, conn: ConnId, peer: &str) {
    server.connected(T, conn, Direction::Incoming);
    server.frame(T, conn, &join(peer, &["1"]));
    let out = sent(&drain(server));
    assert!(matches!(&out[..], [Message::Peer { .. }]), "{out:?}");
}

#[test]
fn a_reconnecting_automerge_repo_client_with_no_news_gets_no_answers() {
    let mut server = repo("server", false);
    let mut client = Client::new(20);
    join_as(&mut server, C, "client");
    assert!(exchange(&mut server, &mut client, C) >= 20);

    // Same peer id back, nothing changed: 20 messages in, none out.
    server.disconnected(T, C);
    let c2 = ConnId(2);
    join_as(&mut server, c2, "client");
    client.reparse_states();
    let offered = client.offer();
    assert_eq!(offered.len(), 20);
    for f in &offered {
        server.frame(T, c2, f);
    }
    let replies = sent_msgs(&mut server);
    assert_eq!(replies.len(), 0, "{replies:?}");

    // One document changed on the client: only it is answered.
    server.disconnected(T, c2);
    let c3 = ConnId(3);
    join_as(&mut server, c3, "client");
    client.reparse_states();
    let (_, d, _) = &mut client.docs[3];
    d.transact(|tx| tx.put(ROOT, "n", 99)).unwrap();
    let answered = exchange(&mut server, &mut client, c3);
    assert!((1..=2).contains(&answered), "{answered}");
}

#[test]
fn a_client_that_does_not_know_the_servers_heads_is_answered() {
    let mut server = repo("server", false);
    let mut client = Client::new(5);
    join_as(&mut server, C, "client");
    exchange(&mut server, &mut client, C);
    server.disconnected(T, C);
    // Same peer id, but the client lost its states (a fresh one knows
    // nothing): every document is answered, so it learns they are there.
    for (_, _, s) in &mut client.docs {
        *s = sync::State::new();
    }
    let c2 = ConnId(2);
    join_as(&mut server, c2, "client");
    let offered = client.offer();
    for f in &offered {
        server.frame(T, c2, f);
    }
    let replies = sent_msgs(&mut server);
    assert_eq!(replies.len(), 5, "{replies:?}");
}
