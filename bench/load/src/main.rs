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
//! `--interval-ms T` (W9) makes the writers open-loop: each makes one change
//! every T ms on schedule (the clients spread over one interval) and sends
//! it at once, whatever is still unacknowledged; heads that include a change
//! acknowledge every earlier change of that client too (linear history).
//! The timed phase then ends on a stop signal rather than a deadline, so it
//! can run past `--seconds` until a spam is done (`--max-seconds`). The
//! output adds `{interval_ms, run_s, changes, acks_per_s}` (`unacked_at_end`
//! counts changes).
//!
//! W9's attack (`hostile.rs`, on a thread of its own): `--idle N`
//! connections that `join` and then stay idle (from `--idle-sources` in
//! turn), and `--spam-docs M`: one client sending `request`s for M new
//! random document ids as fast as the server takes them, reconnecting when
//! closed. The output adds `idle`, `spam` and `during_spam` (the writers'
//! latencies over the changes made while the spam ran).
//!
//! `--threads 1` (the default) runs every client on one current-thread tokio
//! runtime: the load generator then uses one core at most, leaving the other
//! core of a 2-core machine to the server under test.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use holdfast_core::id::DocumentId;
use holdfast_core::wire::{self, DecodeLimits, Message, PeerMetadata};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod hostile;

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
    /// Open loop at a steady rate: each client makes one change every this
    /// many milliseconds, whether or not the earlier ones are acknowledged
    /// (0: the closed loop of W7).
    #[arg(long, default_value_t = 0.0)]
    interval_ms: f64,
    /// W9: connections that complete the WebSocket upgrade and `join`, then
    /// stay idle (draining what the server sends) until the end.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// W9: source addresses for the idle connections, comma-separated, used
    /// in turn (e.g. 127.0.0.2,...,127.0.0.9: any 127/8 address is local
    /// on Linux), so that they stay under a per-IP connection cap.
    #[arg(long, value_delimiter = ',')]
    idle_sources: Vec<std::net::IpAddr>,
    /// W9: one more client sends `request`s for this many new random
    /// document ids, as fast as the server takes them, reconnecting when
    /// the server closes the connection (e.g. at its per-connection
    /// document cap), until the server has answered this many.
    #[arg(long, default_value_t = 0)]
    spam_docs: usize,
    /// W9 (with `--interval-ms`): the timed phase runs at least `--seconds`
    /// and until the spam is done, at most this many seconds.
    #[arg(long, default_value_t = 120.0)]
    max_seconds: f64,
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
        Self::open_from(url, me, None).await
    }

    /// `open`, from the local address `source` if given.
    async fn open_from(url: &str, me: String, source: Option<IpAddr>) -> Result<Conn, String> {
        let ws = match source {
            None => {
                tokio_tungstenite::connect_async_with_config(url, None, true)
                    .await
                    .map_err(|e| format!("connect: {e}"))?
                    .0
            }
            Some(ip) => {
                let tcp = connect_from(url, ip)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(tcp), None)
                    .await
                    .map_err(|e| format!("connect: {e}"))?
                    .0
            }
        };
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

/// A TCP connection to `url`'s host and port from the local address `ip`.
async fn connect_from(url: &str, ip: IpAddr) -> std::io::Result<TcpStream> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| std::io::Error::other("only ws:// URLs"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let addr = tokio::net::lookup_host(host)
        .await?
        .find(|a| a.is_ipv4() == ip.is_ipv4())
        .ok_or_else(|| std::io::Error::other(format!("{host}: no address")))?;
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    let tcp = socket.connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// The start of the timed phase and its end.
type Start = Option<(Instant, Instant)>;

#[derive(Default)]
struct ClientOut {
    /// (seconds since the start of the timed phase, latency in ms) per ack.
    acks: Vec<(f64, f64)>,
    error: Option<String>,
    /// Changes made but not acknowledged when the timed phase ended.
    unacked_at_end: usize,
    /// Changes made in the timed phase.
    changes: u64,
    /// Binary frames sent / received during the timed phase.
    frames_out: u64,
    frames_in: u64,
}

/// Connect, complete the handshake and have the first change acknowledged
/// (at most `--connect-concurrency` handshakes at once, within
/// `--warmup-timeout`).
async fn warm_up(idx: usize, args: &Args, gate: &Semaphore) -> Result<Conn, String> {
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
    match tokio::time::timeout(Duration::from_secs_f64(args.warmup_timeout), warmup).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("warm-up: {e}")),
        Err(_) => Err("warm-up: timed out".into()),
    }
}

/// Wait for the start, answering whatever the server sends meanwhile.
/// `Err(None)`: the runner went away.
async fn wait_start(
    conn: &mut Conn,
    start: &mut watch::Receiver<Start>,
) -> Result<(Instant, Instant), Option<String>> {
    loop {
        if let Some(s) = *start.borrow_and_update() {
            return Ok(s);
        }
        tokio::select! {
            changed = start.changed() => if changed.is_err() { return Err(None) },
            frame = conn.ws.next() => conn.handle(frame).await.map(|_| ()).map_err(Some)?,
        }
    }
}

/// Warm up (telling `ready` whether that worked), then wait for the
/// timed phase: the connection, its start and its deadline.
async fn ready_and_started(
    idx: usize,
    args: &Args,
    gate: &Semaphore,
    ready: &mpsc::UnboundedSender<bool>,
    start: &mut watch::Receiver<Start>,
) -> Result<(Conn, Instant, Instant), Option<String>> {
    let mut conn = match warm_up(idx, args, gate).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(false);
            return Err(Some(e));
        }
    };
    let _ = ready.send(true);
    let (t0, deadline) = wait_start(&mut conn, start).await?;
    Ok((conn, t0, deadline))
}

async fn run_client(
    idx: usize,
    args: Arc<Args>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<bool>,
    mut start: watch::Receiver<Start>,
) -> ClientOut {
    let mut out = ClientOut::default();
    let (mut conn, t0, deadline) =
        match ready_and_started(idx, &args, &gate, &ready, &mut start).await {
            Ok(s) => s,
            Err(e) => {
                out.error = e;
                return out;
            }
        };

    let (out0, in0) = (conn.frames_out, conn.frames_in);
    let mut n: i64 = 0;
    'run: while Instant::now() < deadline {
        n += 1;
        out.changes += 1;
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
                    out.unacked_at_end = 1;
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

/// `--interval-ms`: one change every interval (the clients' first changes
/// spread over one interval), sent at once whatever is still waiting for
/// its acknowledgement, until `stop`. The history is linear, so heads that
/// include a change acknowledge every change before it too.
async fn run_paced_client(
    idx: usize,
    args: Arc<Args>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<bool>,
    mut start: watch::Receiver<Start>,
    mut stop: watch::Receiver<bool>,
) -> ClientOut {
    let mut out = ClientOut::default();
    let (mut conn, t0, _) = match ready_and_started(idx, &args, &gate, &ready, &mut start).await {
        Ok(s) => s,
        Err(e) => {
            out.error = e;
            return out;
        }
    };

    let interval = Duration::from_secs_f64(args.interval_ms / 1e3);
    let mut next = t0 + interval.mul_f64(idx as f64 / args.clients.max(1) as f64);
    let mut pending: VecDeque<(ChangeHash, Instant)> = VecDeque::new();
    let (out0, in0) = (conn.frames_out, conn.frames_in);
    let mut n: i64 = 0;
    while !*stop.borrow_and_update() {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                n += 1;
                out.changes += 1;
                let t = Instant::now();
                pending.push_back((conn.change(n), t));
                if let Err(e) = conn.sync().await {
                    out.error = Some(e);
                    break;
                }
                next += interval;
            }
            frame = conn.ws.next() => match conn.handle(frame).await {
                Ok(Some(heads)) => {
                    if let Some(k) = pending.iter().rposition(|(h, _)| heads.contains(h)) {
                        let now = Instant::now();
                        let at = now.duration_since(t0).as_secs_f64();
                        for (_, t) in pending.drain(..=k) {
                            out.acks.push((at, now.duration_since(t).as_secs_f64() * 1e3));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    out.error = Some(e);
                    break;
                }
            },
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    out.unacked_at_end = pending.len();
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

/// p50, p99, max and mean of latencies (ms), as JSON fields with `prefix`.
fn latency_fields(
    lat: &mut [f64],
    prefix: &str,
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    lat.sort_by(f64::total_cmp);
    let mean = if lat.is_empty() {
        f64::NAN
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    out.insert(format!("{prefix}p50_ms"), round3(percentile(lat, 0.50)));
    out.insert(format!("{prefix}p99_ms"), round3(percentile(lat, 0.99)));
    out.insert(
        format!("{prefix}max_ms"),
        round3(lat.last().copied().unwrap_or(f64::NAN)),
    );
    out.insert(format!("{prefix}mean_ms"), round3(mean));
}

async fn run(args: Args) -> serde_json::Value {
    let args = Arc::new(args);
    let paced = args.interval_ms > 0.0;
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel::<Start>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let t_warm = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let (args, gate, ready, start) = (
                args.clone(),
                gate.clone(),
                ready_tx.clone(),
                start_rx.clone(),
            );
            if paced {
                tokio::spawn(run_paced_client(
                    i,
                    args,
                    gate,
                    ready,
                    start,
                    stop_rx.clone(),
                ))
            } else {
                tokio::spawn(run_client(i, args, gate, ready, start))
            }
        })
        .collect();
    drop(ready_tx);
    // W9's idle connections and spammer, on a thread of their own.
    let attack = (args.idle > 0 || args.spam_docs > 0)
        .then(|| hostile::spawn(args.clone(), start_rx.clone(), stop_rx.clone()));
    let mut ready = 0usize;
    let mut failed = 0usize;
    while ready + failed < args.clients {
        match ready_rx.recv().await {
            Some(true) => ready += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    let mut attack = match attack {
        Some(a) => Some(a.ready().await),
        None => None,
    };
    let warmup_s = t_warm.elapsed().as_secs_f64();
    eprintln!(
        "holdfast-load: {ready} clients ready ({failed} failed) in {warmup_s:.2} s; running {} s",
        args.seconds
    );
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.seconds);
    let _ = start_tx.send(Some((t0, deadline)));
    if paced {
        tokio::time::sleep_until(deadline).await;
        if let Some(a) = attack.as_mut() {
            let bound = t0 + Duration::from_secs_f64(args.max_seconds.max(args.seconds));
            let _ = tokio::time::timeout_at(bound, a.spam_done()).await;
        }
        let _ = stop_tx.send(true);
    }

    let mut acks: Vec<(f64, f64)> = Vec::new();
    let mut errors = 0usize;
    let mut error_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut unacked_at_end = 0usize;
    let mut changes = 0u64;
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
        unacked_at_end += r.unacked_at_end;
        changes += r.changes;
        frames_out += r.frames_out;
        frames_in += r.frames_in;
        if let Some(e) = r.error {
            errors += 1;
            *error_kinds.entry(e).or_default() += 1;
        }
    }
    let run_s = if paced {
        t0.elapsed().as_secs_f64()
    } else {
        args.seconds
    };
    let _ = stop_tx.send(true);
    let attack = attack.map(|a| a.join());

    let (window, rates) = rate_windows(&acks, run_s, args.window);
    let rate_windows: Vec<serde_json::Value> = rates.into_iter().map(round3).collect();
    let mut lat: Vec<f64> = acks.iter().map(|(_, l)| *l).collect();
    let mut out = serde_json::json!({
        "clients": args.clients,
        "seconds": args.seconds,
        "window_s": window,
        "acks": acks.len(),
        "rate_windows": rate_windows,
    });
    let o = out.as_object_mut().expect("an object");
    latency_fields(&mut lat, "", o);
    o.extend(
        serde_json::json!({
            "errors": errors,
            "error_kinds": error_kinds,
            "unacked_at_end": unacked_at_end,
            "frames_out": frames_out,
            "frames_in": frames_in,
            "warmup_s": round3(warmup_s),
        })
        .as_object()
        .expect("an object")
        .clone(),
    );
    // When the slowest acknowledgements came (seconds into the run, ms).
    let mut slowest = acks.clone();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    slowest.truncate(5);
    o.insert(
        "slowest".into(),
        slowest
            .iter()
            .map(|(at, l)| serde_json::json!([round3(*at), round3(*l)]))
            .collect(),
    );
    if paced {
        o.insert("interval_ms".into(), serde_json::json!(args.interval_ms));
        o.insert("run_s".into(), round3(run_s));
        o.insert("changes".into(), serde_json::json!(changes));
        o.insert("acks_per_s".into(), round3(acks.len() as f64 / run_s));
    }
    if let Some(attack) = attack {
        // The writers' latencies for the changes made while the spam ran.
        if let Some((from, to)) = attack.spam_window {
            let mut during: Vec<f64> = acks
                .iter()
                .filter(|(at, l)| {
                    let made = at - l / 1e3;
                    made >= from && made <= to
                })
                .map(|(_, l)| *l)
                .collect();
            let mut d = serde_json::Map::new();
            d.insert("acks".into(), serde_json::json!(during.len()));
            latency_fields(&mut during, "", &mut d);
            o.insert("during_spam".into(), d.into());
        }
        o.insert("idle".into(), attack.idle);
        o.insert("spam".into(), attack.spam);
    }
    out
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
