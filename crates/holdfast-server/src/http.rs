//! HTTP: WebSocket sync on `/` and `/sync`, `GET /healthz`, `GET /metrics`,
//! static files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use holdfast_core::repo::ConnId;
use holdfast_core::wire;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::driver::{Input, Out};

#[derive(Clone)]
pub struct AppState {
    pub repo: mpsc::UnboundedSender<Input>,
    pub next_conn: Arc<AtomicU64>,
    /// WebSocket messages above this are refused by the socket layer; the
    /// core's own (smaller) frame limit answers with an `error` message.
    pub max_message: usize,
    pub www: Option<PathBuf>,
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

/// `ok` while the task that owns the repo runs; 503 once it has stopped
/// (then no connection can be served). A panic while processing one peer's
/// message is isolated inside the core and does not stop that task.
async fn healthz(State(s): State<AppState>) -> Response {
    if s.repo.is_closed() {
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
/// (`driver::metrics`), asked of the task that owns the repo; 503 once it
/// has stopped.
async fn metrics(State(s): State<AppState>) -> Response {
    let (reply, answer) = oneshot::channel();
    let body = match s.repo.send(Input::Metrics { reply }) {
        Ok(()) => answer.await.ok(),
        Err(_) => None,
    };
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

async fn sync(State(s): State<AppState>, ws: WebSocketUpgrade) -> Response {
    upgrade(s, ws)
}

/// automerge-repo clients connect to whatever URL they are given, often the
/// bare origin: `/` upgrades WebSocket requests and serves the app otherwise.
async fn root(
    State(s): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Request<Body>,
) -> Response {
    match (ws, &s.www) {
        (Ok(ws), _) => upgrade(s, ws),
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

fn upgrade(s: AppState, ws: WebSocketUpgrade) -> Response {
    let conn = ConnId(s.next_conn.fetch_add(1, Ordering::Relaxed));
    ws.max_message_size(s.max_message)
        .max_frame_size(s.max_message)
        .on_upgrade(move |socket| serve(socket, conn, s.repo))
}

/// Pump one socket: frames in go to the repo, frames out come from it.
async fn serve(socket: WebSocket, conn: ConnId, repo: mpsc::UnboundedSender<Input>) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let refuse = out_tx.clone();
    if repo.send(Input::Open { conn, out: out_tx }).is_err() {
        return;
    }
    let (mut sink, mut stream) = socket.split();
    let writer = async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(f) => {
                    if sink.send(Message::Binary(f.into())).await.is_err() {
                        break;
                    }
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
        while let Some(msg) = stream.next().await {
            let bytes = match msg {
                Ok(Message::Binary(b)) => b.to_vec(),
                // automerge-repo sends binary frames only; let the core reject
                // anything else as malformed.
                Ok(Message::Text(t)) => t.as_str().as_bytes().to_vec(),
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(conn = conn.0, error = %e, "socket error");
                    // E.g. a frame above `max_message`: say why before
                    // closing, as the core does for frames it refuses
                    // (best effort: the socket may be gone).
                    let error = wire::encode(&wire::Message::Error {
                        message: format!("connection refused a frame: {e}"),
                    });
                    let _ = refuse.send(Out::Frame(error));
                    let _ = refuse.send(Out::Close);
                    return true;
                }
            };
            if repo.send(Input::Frame { conn, bytes }).is_err() {
                break;
            }
        }
        false
    };
    let mut writer = std::pin::pin!(writer);
    tokio::select! {
        _ = &mut writer => {}
        flush = reader => if flush {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
        }
    }
    let _ = repo.send(Input::Closed { conn });
}
