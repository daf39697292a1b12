//! The accept loop: connection caps (total and per IP) at accept, before
//! any byte is read, and hyper's HTTP/1 with a request-head timeout, so
//! that sockets which never send (or send slowly) cannot hold file
//! descriptors for long.
//!
//! Invariant: every accepted socket holds a [`Slot`] until it is closed,
//! whether it stays HTTP or becomes a WebSocket (the slot then moves into
//! the socket's task), so the counts are exactly the sockets open.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

use crate::http::{router, AppState};
use crate::slot::{Counts, Peer, Slot};
use crate::stats::Refusal;

fn admit(counts: &Arc<Mutex<Counts>>, state: &AppState, addr: SocketAddr) -> Result<Slot, Refusal> {
    let limits = &state.limits;
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    if limits.max_connections > 0 && c.total >= limits.max_connections {
        return Err(Refusal::Connections);
    }
    let ip = addr.ip();
    let here = c.per_ip.get(&ip).copied().unwrap_or(0);
    if limits.max_connections_per_ip > 0 && here >= limits.max_connections_per_ip {
        return Err(Refusal::ConnectionsPerIp);
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_default() += 1;
    state.stats.tcp_open.fetch_add(1, Ordering::Relaxed);
    Ok(Slot {
        ip,
        counts: counts.clone(),
        stats: state.stats.clone(),
    })
}

/// Accept and serve until `stop` fires; then stop accepting and wait (at
/// most 5 s) for the connections still open to finish.
pub async fn serve(listener: std::net::TcpListener, state: AppState, stop: oneshot::Receiver<()>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the listening socket");
            return;
        }
    };
    let counts = Arc::new(Mutex::new(Counts::default()));
    let app = router(state.clone());
    // Every connection task holds a receiver; dropping the sender tells
    // them to shut down gracefully, and `closed()` waits for the last.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => break,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // E.g. EMFILE: out of file descriptors. Back off briefly
                // instead of spinning on a listener that cannot accept.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match admit(&counts, &state, addr) {
            Ok(slot) => Arc::new(slot),
            Err(why) => {
                state
                    .stats
                    .refuse(why, format_args!("a connection from {}", addr.ip()));
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer { addr, slot };
        let svc = app
            .clone()
            .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                req.map(axum::body::Body::new)
            });
        let header_timeout = state.limits.header_timeout;
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%addr, error = %e, "HTTP connection ended");
                    }
                }
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), closing_tx.closed()).await;
}
