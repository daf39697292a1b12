//! [`Raw`]: a frame-level client, for tests of bad input.

use automerge::sync;
use futures_util::{SinkExt, StreamExt};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use tokio_tungstenite::tungstenite::Message as WsMsg;

use super::{random_bytes, within, ws_connect, Ws};

#[derive(Debug)]
pub enum RawIn {
    Msg(Message),
    /// A binary frame that does not decode as a message.
    Undecodable(Vec<u8>),
    /// A close frame, the end of the stream or a socket error.
    Closed,
}

pub struct Raw {
    ws: Ws,
    pub peer_id: String,
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        Raw {
            ws: ws_connect(url).await,
            peer_id: format!("raw-{}", hex::encode(random_bytes::<6>())),
        }
    }

    /// Over a TCP connection the test set up (e.g. with a small receive
    /// buffer).
    pub async fn over(url: &str, stream: tokio::net::TcpStream) -> Raw {
        let (ws, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("a WebSocket");
        Raw {
            ws,
            peer_id: format!("raw-{}", hex::encode(random_bytes::<6>())),
        }
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMsg::Binary(bytes.into()))
            .await
            .expect("send a frame");
    }

    pub async fn send_msg(&mut self, msg: &Message) {
        self.send_bytes(wire::encode(msg)).await;
    }

    /// The next frame from the server (text frames are not expected).
    pub async fn next(&mut self) -> RawIn {
        loop {
            let msg = within("a frame from the server", self.ws.next()).await;
            return match msg {
                Some(Ok(WsMsg::Binary(b))) => match wire::decode(&b, &DecodeLimits::default()) {
                    Ok(m) => RawIn::Msg(m),
                    Err(_) => RawIn::Undecodable(b.to_vec()),
                },
                Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => RawIn::Closed,
                Some(Ok(WsMsg::Text(t))) => panic!("unexpected text frame {t:?}"),
                Some(Ok(_)) => continue,
            };
        }
    }

    pub fn join_msg(&self, versions: &[&str]) -> Message {
        Message::Join {
            sender_id: self.peer_id.clone(),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: versions.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `join` and expect `peer`; returns the server's peer id.
    pub async fn join(&mut self) -> String {
        let join = self.join_msg(&["1"]);
        self.send_msg(&join).await;
        match self.next().await {
            RawIn::Msg(Message::Peer {
                sender_id,
                target_id,
                selected_protocol_version,
                ..
            }) => {
                assert_eq!(target_id, self.peer_id);
                assert_eq!(selected_protocol_version, "1");
                sender_id
            }
            other => panic!("expected peer, got {other:?}"),
        }
    }

    /// Expect an `error` message followed by the connection's close (and
    /// nothing else); returns the error's text.
    pub async fn expect_error_and_close(&mut self, what: &str) -> String {
        let message = match self.next().await {
            RawIn::Msg(Message::Error { message }) => message,
            other => panic!("{what}: expected an error message, got {other:?}"),
        };
        self.expect_closed(what).await;
        message
    }

    /// Expect the connection to end with nothing more sent.
    pub async fn expect_closed(&mut self, what: &str) {
        match self.next().await {
            RawIn::Closed => {}
            other => panic!("{what}: expected the connection to close, got {other:?}"),
        }
    }
}

/// A `sync` message of `doc` whose data is a valid, empty automerge sync
/// message (a request for the document).
pub fn empty_sync(doc: DocumentId, sender: &str, target: &str) -> Message {
    let data = sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: sync::MessageVersion::V1,
    }
    .encode();
    Message::Sync {
        request: true,
        document_id: doc,
        sender_id: sender.into(),
        target_id: target.into(),
        data,
    }
}
