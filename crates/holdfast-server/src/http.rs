//! HTTP: WebSocket sync on `/` and `/sync`, `GET /healthz`, `GET /metrics`,
//! static files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use holdfast_core::repo::ConnId;
use holdfast_core::wire;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::driver::{ConnOut, Done, Figures, Input, Out};
use crate::limits::Limits;
use crate::shards::Route;
use crate::slot::Peer;
use crate::stats::{Refusal, Stats};

#[derive(Clone)]
pub struct AppState {
    /// The core tasks' inputs ([`crate::shards`]).
    pub shards: crate::shards::Shards,
    /// What a frame may be, for routing it to its shard.
    pub decode: wire::DecodeLimits,
    pub next_conn: Arc<AtomicU64>,
    /// WebSocket messages above this are refused by the socket layer; the
    /// core's own (smaller) frame limit answers with an `error` message.
    pub max_message: usize,
    pub www: Option<PathBuf>,
    /// Token verification (`None`: open server); see [`crate::auth`].
    pub auth: Option<Arc<crate::auth::Verifier>>,
    pub limits: Arc<Limits>,
    pub stats: Arc<Stats>,
    /// Bytes of frames waiting for the core, all connections together
    /// (`Limits::max_queued_in` permits).
    pub queued_in: Arc<Semaphore>,
    pub extra_metrics: Option<crate::stats::ExtraMetrics>,
}

pub fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route("/", any(root))
        .route("/sync", any(sync))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    if let Some(www) = state.www.clone() {
        r = r.fallback_service(ServeDir::new(www));
    }
    r.with_state(state)
}

/// `ok` while every task that owns a repo (a shard) runs; 503 once one has
/// stopped (then its documents cannot be served). A panic while processing
/// one peer's message is isolated inside the core and does not stop a task.
async fn healthz(State(s): State<AppState>) -> Response {
    if !s.shards.running() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the sync task has stopped\n",
        )
            .into_response()
    } else {
        "ok\n".into_response()
    }
}

/// Prometheus' text format: messages received per type, open connections
/// (`driver::metrics`), asked of every shard and summed; 503 once one has
/// stopped.
async fn metrics(State(s): State<AppState>) -> Response {
    let mut answers = Vec::new();
    let sent = s.shards.send_all(|_| {
        let (reply, answer) = oneshot::channel();
        answers.push(answer);
        Input::Metrics { reply }
    });
    let mut figures = sent.then(Figures::default);
    for answer in answers {
        match (answer.await, figures.as_mut()) {
            (Ok(f), Some(all)) => all.merge(&f),
            _ => figures = None,
        }
    }
    let body = figures.map(|f| {
        let mut b = f.render(&s.stats);
        if let Some(extra) = &s.extra_metrics {
            b.push_str(&(extra.0)());
        }
        b
    });
    match body {
        Some(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the sync task has stopped\n",
        )
            .into_response(),
    }
}

async fn sync(
    State(s): State<AppState>,
    Extension(peer): Extension<Peer>,
    uri: axum::http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(s, peer, ws, &uri)
}

/// automerge-repo clients connect to whatever URL they are given, often the
/// bare origin: `/` upgrades WebSocket requests and serves the app otherwise.
async fn root(
    State(s): State<AppState>,
    Extension(peer): Extension<Peer>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Request<Body>,
) -> Response {
    match (ws, &s.www) {
        (Ok(ws), _) => {
            let uri = req.uri().clone();
            upgrade(s, peer, ws, &uri)
        }
        (Err(_), Some(www)) => match ServeDir::new(www).oneshot(req).await {
            Ok(res) => res.into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        (Err(_), None) => (
            StatusCode::OK,
            "holdfast sync server: connect a WebSocket here or to /sync\n",
        )
            .into_response(),
    }
}

fn upgrade(s: AppState, peer: Peer, ws: WebSocketUpgrade, uri: &axum::http::Uri) -> Response {
    // A token on the URL is checked before the upgrade: a bad one holds
    // no socket (a missing one is looked for in `join`; see `auth`).
    let auth = match crate::auth::at_upgrade(s.auth.as_ref(), uri.query()) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "upgrade refused");
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                format!("{e}\n"),
            )
                .into_response();
        }
    };
    let conn = ConnId(s.next_conn.fetch_add(1, Ordering::Relaxed));
    ws.max_message_size(s.max_message)
        .max_frame_size(s.max_message)
        .on_upgrade(move |socket| serve(socket, conn, peer, s, auth))
}

/// Pump one socket: frames in go to the repo, frames out come from it.
///
/// Bounds: one frame of this connection waits for the core at a time, and
/// it holds its size in `queued_in` permits until the core has handled it;
/// frames out are counted in `ConnOut::queued` (the driver disconnects a
/// connection whose count passes the limit, through `kill`, which drops the
/// socket at once even while a write is blocked on a client that does not
/// read).
async fn serve(
    socket: WebSocket,
    conn: ConnId,
    peer: Peer,
    s: AppState,
    auth: crate::auth::ConnAuth,
) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let out = ConnOut::new(out_tx, s.stats.queued_out.clone());
    let (counter, kill) = (out.clone(), out.kill.clone());
    let refuse = out.clone();
    let closing = out.clone();
    let shards = s.shards.clone();
    if !shards.send_all(|_| Input::Open {
        conn,
        out: out.clone(),
        auth: auth.clone(),
    }) {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let stats = s.stats.clone();
    let writer = async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(f) => {
                    let len = f.len();
                    let sent = sink.send(Message::Binary(f.into())).await;
                    counter.written(len);
                    if sent.is_err() {
                        break;
                    }
                    stats.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
                }
                Out::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    };
    let reader = async {
        let mut first = true;
        loop {
            let next = if first {
                match tokio::time::timeout(s.limits.handshake_timeout, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        s.stats.refuse(
                            Refusal::HandshakeTimeout,
                            format_args!("no join from {} within the handshake timeout", peer.addr),
                        );
                        refuse.send(Out::Frame(wire::encode(&wire::Message::Error {
                            message: "no join message within the handshake timeout".into(),
                        })));
                        refuse.send(Out::Close);
                        return true;
                    }
                }
            } else {
                stream.next().await
            };
            let Some(msg) = next else { break };
            let bytes = match msg {
                Ok(Message::Binary(b)) => b.to_vec(),
                // automerge-repo sends binary frames only; let the core reject
                // anything else as malformed.
                Ok(Message::Text(t)) => t.as_str().as_bytes().to_vec(),
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(conn = conn.0, error = %e, "socket error");
                    // A frame above `max_message` (tungstenite's capacity
                    // error): say why before closing, as the core does for
                    // frames it refuses (best effort). Anything else is the
                    // socket going away.
                    let text = e.to_string();
                    if !text.contains("Space limit exceeded") {
                        break;
                    }
                    s.stats.refuse(
                        Refusal::FrameTooLarge,
                        format_args!("a frame from {}: {text}", peer.addr),
                    );
                    let error = wire::encode(&wire::Message::Error {
                        message: format!("connection refused a frame: {text}"),
                    });
                    refuse.send(Out::Frame(error));
                    refuse.send(Out::Close);
                    return true;
                }
            };
            first = false;
            s.stats
                .bytes_in
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            // Wait for room: the previous frame of this connection must be
            // handled (its permit returned) before the next is queued.
            let size = bytes.len().clamp(1, s.limits.max_queued_in.max(1));
            let Ok(permit) = s
                .queued_in
                .clone()
                .acquire_many_owned(size.min(u32::MAX as usize) as u32)
                .await
            else {
                break;
            };
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let route = shards.route(&bytes, &s.decode);
            let (first, copy) = match route {
                Route::Doc(i) => (i, None),
                Route::Conn if shards.len() == 1 => (0, None),
                Route::Conn => (shards.home(conn), Some(bytes.clone())),
            };
            let frame = Input::Frame {
                conn,
                bytes,
                done: Done::new(permit, done_tx),
                quiet: false,
            };
            if !shards.send(first, frame) {
                break;
            }
            let _ = done_rx.await;
            // A connection-level frame the home shard accepted: every other
            // shard handles a copy (crate::shards), one after the other.
            if let Some(bytes) = copy.filter(|_| !closing.closing()) {
                for i in (0..shards.len()).filter(|i| *i != first) {
                    let (done_tx, done_rx) = oneshot::channel::<()>();
                    let frame = Input::Frame {
                        conn,
                        bytes: bytes.clone(),
                        done: Done::copy(done_tx),
                        quiet: true,
                    };
                    if !shards.send(i, frame) {
                        break;
                    }
                    let _ = done_rx.await;
                }
            }
        }
        false
    };
    let mut writer = std::pin::pin!(writer);
    tokio::select! {
        _ = &mut writer => {}
        _ = kill.notified() => {}
        flush = reader => if flush {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }
    drop(peer);
    // (The writer is done or dropped: nothing it held will be sent.)
    refuse.release();
    s.shards.send_all(|_| Input::Closed { conn });
}
