//! `holdfast-load --url ws://127.0.0.1:PORT --clients N --seconds S`
//!
//! The W7 load generator (see `bench/README.md`): N native WebSocket clients
//! speaking automerge-repo's protocol (`join` → `peer`, then `sync` messages
//! carrying `automerge::sync` data, CBOR-encoded with `holdfast_core::wire`),
//! so the same binary drives `holdfast-server` and automerge-repo's node sync
//! server.
//!
//! Each client owns one fresh document and writes in a closed loop: one small
//! change (`n` = a counter), the sync message that carries it, then wait until
//! a sync message from the server advertises heads that include the change's
//! hash — the change is then *acknowledged* (holdfast-server only advertises
//! heads that are on its disk; automerge-repo's server reports its in-memory
//! heads). Sync messages in between are answered as any automerge peer would.
//! Only this client writes its document, so its history is linear and the
//! latest change is its only head: the server's heads cover it exactly when
//! they contain its hash.
//!
//! Phases: connect every client (at most `--connect-concurrency` handshakes
//! at once), create each document and wait until the server acknowledges its
//! first change (warm-up, not timed); then all clients start together and run
//! for `--seconds`. A change still waiting for its acknowledgement at the end
//! is dropped (`unacked_at_end`).
//!
//! Output (stdout, one JSON object):
//! `{clients, seconds, window_s, acks, rate_windows, p50_ms, p99_ms, max_ms,
//! mean_ms, errors, error_kinds, unacked_at_end, frames_out, frames_in,
//! warmup_s}` where `rate_windows` holds acknowledged changes/s in each
//! consecutive `--window` seconds (default 2: five windows for a 10 s run; a
//! tail shorter than a window is counted in `acks` only), latencies are over
//! every acknowledged change of the timed phase (from just before the change
//! was made to the acknowledging message), `errors` counts clients that
//! failed (could not connect, the server closed the connection or sent an
//! error) and `error_kinds` groups them by reason, and `frames_out` /
//! `frames_in` count the binary frames the clients sent and received in the
//! timed phase (messages per acknowledged change). Progress goes to stderr.
//!
//! `--threads 1` (the default) runs every client on one current-thread tokio
//! runtime: the load generator then uses one core at most, leaving the other
//! core of a 2-core machine to the server under test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser, Debug, Clone)]
#[command(
    version,
    about = "N automerge-repo protocol WebSocket clients writing small changes in a closed loop"
)]
struct Args {
    /// The sync server's WebSocket URL.
    #[arg(long)]
    url: String,
    /// Concurrent clients (one WebSocket and one document each).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Length of the timed phase in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Width of a rate window in seconds.
    #[arg(long, default_value_t = 2.0)]
    window: f64,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Handshakes in flight at once during the warm-up.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Bound on each client's warm-up (connect, handshake, first ack), in seconds.
    #[arg(long, default_value_t = 120.0)]
    warmup_timeout: f64,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One client: its connection, its document and its sync state with the server.
struct Conn {
    ws: Ws,
    me: String,
    server: String,
    doc_id: DocumentId,
    doc: Automerge,
    state: sync::State,
    /// Binary frames sent and received so far.
    frames_out: u64,
    frames_in: u64,
}

impl Conn {
    /// Connect and complete the handshake (`join` → `peer`).
    async fn open(url: &str, me: String) -> Result<Conn, String> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut c = Conn {
            ws,
            me,
            server: String::new(),
            doc_id: DocumentId(random_bytes()),
            doc: Automerge::new(),
            state: sync::State::new(),
            frames_out: 0,
            frames_in: 0,
        };
        let join = Message::Join {
            sender_id: c.me.clone(),
            peer_metadata: PeerMetadata::default(),
            supported_protocol_versions: vec!["1".into()],
        };
        c.send(&join).await?;
        loop {
            match c.next_message().await? {
                Message::Peer { sender_id, .. } => {
                    c.server = sender_id;
                    return Ok(c);
                }
                Message::Error { message } => return Err(format!("server error: {message}")),
                _ => {}
            }
        }
    }

    async fn send(&mut self, msg: &Message) -> Result<(), String> {
        self.frames_out += 1;
        self.ws
            .send(WsMsg::Binary(wire::encode(msg).into()))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// The next message from the server.
    async fn next_message(&mut self) -> Result<Message, String> {
        loop {
            let frame = self.ws.next().await;
            if let Some(m) = self.decode(frame)? {
                return Ok(m);
            }
        }
    }

    /// A frame as a message; `None` for frames that carry none (ping, text).
    fn decode(
        &mut self,
        frame: Option<Result<WsMsg, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<Option<Message>, String> {
        match frame {
            Some(Ok(WsMsg::Binary(b))) => {
                self.frames_in += 1;
                wire::decode(&b, &DecodeLimits::default())
                    .map(Some)
                    .map_err(|e| format!("undecodable frame: {e}"))
            }
            Some(Ok(WsMsg::Close(_))) | None => Err("the server closed the connection".into()),
            Some(Err(e)) => Err(format!("connection error: {e}")),
            Some(Ok(_)) => Ok(None),
        }
    }

    /// Send what the sync protocol has to send now, if anything.
    async fn sync(&mut self) -> Result<(), String> {
        if let Some(m) = self.doc.generate_sync_message(&mut self.state) {
            let msg = Message::Sync {
                request: false,
                document_id: self.doc_id,
                sender_id: self.me.clone(),
                target_id: self.server.clone(),
                data: m.encode(),
            };
            self.send(&msg).await?;
        }
        Ok(())
    }

    /// Handle one frame; for a sync message of our document, returns the
    /// heads it advertises (after answering it).
    async fn handle(
        &mut self,
        frame: Option<Result<WsMsg, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<Option<Vec<ChangeHash>>, String> {
        match self.decode(frame)? {
            Some(Message::Sync {
                document_id, data, ..
            }) if document_id == self.doc_id => {
                let m = sync::Message::decode(&data)
                    .map_err(|e| format!("undecodable sync message: {e}"))?;
                let heads = m.heads.clone();
                self.doc
                    .receive_sync_message(&mut self.state, m)
                    .map_err(|e| format!("receive a sync message: {e}"))?;
                self.sync().await?;
                Ok(Some(heads))
            }
            Some(Message::DocUnavailable { .. }) => Err("doc-unavailable".into()),
            Some(Message::Error { message }) => Err(format!("server error: {message}")),
            _ => Ok(None),
        }
    }

    /// Make one change (`n` = `value`); its hash.
    fn change(&mut self, value: i64) -> ChangeHash {
        let mut tx = self.doc.transaction();
        tx.put(ROOT, "n", value).expect("put on the root map");
        tx.commit()
            .0
            .expect("a change with an operation has a hash")
    }

    /// Make a change, send it and wait for the server's acknowledgement.
    async fn change_acked(&mut self, value: i64) -> Result<(), String> {
        let hash = self.change(value);
        self.sync().await?;
        loop {
            let frame = self.ws.next().await;
            if let Some(heads) = self.handle(frame).await? {
                if heads.contains(&hash) {
                    return Ok(());
                }
            }
        }
    }
}

/// The start of the timed phase and its end.
type Start = Option<(Instant, Instant)>;

#[derive(Default)]
struct ClientOut {
    /// (seconds since the start of the timed phase, latency in ms) per ack.
    acks: Vec<(f64, f64)>,
    error: Option<String>,
    unacked_at_end: bool,
    /// Binary frames sent / received during the timed phase.
    frames_out: u64,
    frames_in: u64,
}

async fn run_client(
    idx: usize,
    args: Arc<Args>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<bool>,
    mut start: watch::Receiver<Start>,
) -> ClientOut {
    let mut out = ClientOut::default();
    let me = format!("load-{}-{idx}", hex(&random_bytes::<4>()));
    let warmup = async {
        let mut conn = {
            let _permit = gate.acquire().await.map_err(|e| e.to_string())?;
            Conn::open(&args.url, me)
                .await
                .map_err(|e| format!("handshake: {e}"))?
        };
        conn.change_acked(0)
            .await
            .map_err(|e| format!("first change: {e}"))?;
        Ok::<Conn, String>(conn)
    };
    let warmup = tokio::time::timeout(Duration::from_secs_f64(args.warmup_timeout), warmup).await;
    let mut conn = match warmup {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.error = Some(format!("warm-up: {e}"));
            let _ = ready.send(false);
            return out;
        }
        Err(_) => {
            out.error = Some("warm-up: timed out".into());
            let _ = ready.send(false);
            return out;
        }
    };
    let _ = ready.send(true);

    // Wait for the start, answering whatever the server sends meanwhile.
    let (t0, deadline) = loop {
        if let Some(s) = *start.borrow_and_update() {
            break s;
        }
        tokio::select! {
            changed = start.changed() => if changed.is_err() { return out },
            frame = conn.ws.next() => {
                if let Err(e) = conn.handle(frame).await {
                    out.error = Some(e);
                    return out;
                }
            }
        }
    };

    let (out0, in0) = (conn.frames_out, conn.frames_in);
    let mut n: i64 = 0;
    'run: while Instant::now() < deadline {
        n += 1;
        let t = Instant::now();
        let hash = conn.change(n);
        if let Err(e) = conn.sync().await {
            out.error = Some(e);
            break;
        }
        loop {
            tokio::select! {
                frame = conn.ws.next() => match conn.handle(frame).await {
                    Ok(Some(heads)) if heads.contains(&hash) => {
                        let now = Instant::now();
                        out.acks.push((
                            now.duration_since(t0).as_secs_f64(),
                            now.duration_since(t).as_secs_f64() * 1e3,
                        ));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        out.error = Some(e);
                        break 'run;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    out.unacked_at_end = true;
                    break 'run;
                }
            }
        }
    }
    out.frames_out = conn.frames_out - out0;
    out.frames_in = conn.frames_in - in0;
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.ws.close(None)).await;
    out
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Acknowledged changes/s in each consecutive window of `window` seconds
/// (at most `seconds`) of a run of `seconds`; a tail shorter than a window is
/// left out. Returns the window used and the rates.
fn rate_windows(acks: &[(f64, f64)], seconds: f64, window: f64) -> (f64, Vec<f64>) {
    let window = window.min(seconds).max(1e-3);
    let windows = ((seconds / window) + 1e-9).floor().max(1.0) as usize;
    let mut counts = vec![0usize; windows];
    for (at, _) in acks {
        let k = (at / window).floor() as usize;
        if k < windows {
            counts[k] += 1;
        }
    }
    (window, counts.iter().map(|&c| c as f64 / window).collect())
}

fn round3(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!((x * 1e3).round() / 1e3)
    } else {
        serde_json::Value::Null
    }
}

async fn run(args: Args) -> serde_json::Value {
    let args = Arc::new(args);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel::<Start>(None);
    let t_warm = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            tokio::spawn(run_client(
                i,
                args.clone(),
                gate.clone(),
                ready_tx.clone(),
                start_rx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    let mut ready = 0usize;
    let mut failed = 0usize;
    while ready + failed < args.clients {
        match ready_rx.recv().await {
            Some(true) => ready += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    let warmup_s = t_warm.elapsed().as_secs_f64();
    eprintln!(
        "holdfast-load: {ready} clients ready ({failed} failed) in {warmup_s:.2} s; running {} s",
        args.seconds
    );
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.seconds);
    let _ = start_tx.send(Some((t0, deadline)));

    let mut acks: Vec<(f64, f64)> = Vec::new();
    let mut errors = 0usize;
    let mut error_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut unacked_at_end = 0usize;
    let (mut frames_out, mut frames_in) = (0u64, 0u64);
    for t in tasks {
        let r = match t.await {
            Ok(r) => r,
            Err(e) => ClientOut {
                error: Some(format!("client task: {e}")),
                ..Default::default()
            },
        };
        acks.extend(r.acks);
        unacked_at_end += usize::from(r.unacked_at_end);
        frames_out += r.frames_out;
        frames_in += r.frames_in;
        if let Some(e) = r.error {
            errors += 1;
            *error_kinds.entry(e).or_default() += 1;
        }
    }

    let (window, rates) = rate_windows(&acks, args.seconds, args.window);
    let rate_windows: Vec<serde_json::Value> = rates.into_iter().map(round3).collect();
    let mut lat: Vec<f64> = acks.iter().map(|(_, l)| *l).collect();
    lat.sort_by(f64::total_cmp);
    let mean = if lat.is_empty() {
        f64::NAN
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    serde_json::json!({
        "clients": args.clients,
        "seconds": args.seconds,
        "window_s": window,
        "acks": acks.len(),
        "rate_windows": rate_windows,
        "p50_ms": round3(percentile(&lat, 0.50)),
        "p99_ms": round3(percentile(&lat, 0.99)),
        "max_ms": round3(lat.last().copied().unwrap_or(f64::NAN)),
        "mean_ms": round3(mean),
        "errors": errors,
        "error_kinds": error_kinds,
        "unacked_at_end": unacked_at_end,
        "frames_out": frames_out,
        "frames_in": frames_in,
        "warmup_s": round3(warmup_s),
    })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("holdfast-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(args));
    println!("{result}");
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v[..1], 0.99), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn rate_windows_split_the_run() {
        let acks = [(0.1, 0.0), (1.9, 0.0), (2.0, 0.0), (9.99, 0.0), (10.5, 0.0)];
        let (w, r) = rate_windows(&acks, 10.0, 2.0);
        assert_eq!(w, 2.0);
        assert_eq!(r, vec![1.0, 0.5, 0.0, 0.0, 0.5]);
        // A tail shorter than a window is left out; a short run is one window.
        assert_eq!(rate_windows(&acks, 3.0, 2.0).1, vec![1.0]);
        assert_eq!(rate_windows(&acks, 1.0, 2.0), (1.0, vec![1.0]));
    }
}
