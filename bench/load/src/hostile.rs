//! W9's attack, on a thread (and current-thread runtime) of its own, beside
//! the writers of `main.rs`:
//!
//! - `--idle N` connections, from `--idle-sources` in turn, that complete
//!   the WebSocket upgrade and `join` (so neither the header nor the
//!   handshake timeout applies), then stay idle until the end, reading
//!   whatever the server sends. Opened during the warm-up: the timed phase
//!   starts once all are open (or failed).
//! - with `--spam-docs M`, one spammer that, from the start of the timed
//!   phase, sends `request`s (the first sync message of an empty automerge
//!   document) for new random document ids as fast as the server takes
//!   them: frames are written back to back, the socket's buffers push back.
//!   It reads every answer; when the server closes the connection (after
//!   `--max-docs-per-connection` documents it sends an `error` and closes)
//!   it reconnects as a new peer and goes on, until the server has answered
//!   (`doc-unavailable`) M requests. The requests still in flight when a
//!   connection is closed are lost: `sent` counts them, `answered` does not.

use super::*;

/// The attack thread, as the runner sees it.
pub(crate) struct Attack {
    ready: mpsc::UnboundedReceiver<()>,
    spam_done: watch::Receiver<bool>,
    thread: std::thread::JoinHandle<AttackOut>,
}

pub(crate) struct AttackOut {
    /// `{requested, opened, failed, open_at_end, failures, closed, frames_in}`.
    pub idle: serde_json::Value,
    /// `{target, answered, sent, connections, seconds, rate_per_s, done,
    /// errors, other_in}` (null without `--spam-docs`).
    pub spam: serde_json::Value,
    /// The spam's start and end, seconds since the start of the timed phase.
    pub spam_window: Option<(f64, f64)>,
}

impl Attack {
    /// Once every idle connection is open (or failed).
    pub(crate) async fn ready(mut self) -> Self {
        let _ = self.ready.recv().await;
        self
    }

    /// Once the spammer is done (at once without one).
    pub(crate) async fn spam_done(&mut self) {
        let _ = self.spam_done.wait_for(|done| *done).await;
    }

    pub(crate) fn join(self) -> AttackOut {
        self.thread.join().unwrap_or_else(|_| AttackOut {
            idle: serde_json::json!({ "error": "the attack thread panicked" }),
            spam: serde_json::Value::Null,
            spam_window: None,
        })
    }
}

pub(crate) fn spawn(
    args: Arc<Args>,
    start: watch::Receiver<Start>,
    stop: watch::Receiver<bool>,
) -> Attack {
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let (done_tx, spam_done) = watch::channel(args.spam_docs == 0);
    let thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(attack(args, start, stop, ready_tx, done_tx))
    });
    Attack {
        ready,
        spam_done,
        thread,
    }
}

async fn attack(
    args: Arc<Args>,
    start: watch::Receiver<Start>,
    stop: watch::Receiver<bool>,
    ready: mpsc::UnboundedSender<()>,
    done: watch::Sender<bool>,
) -> AttackOut {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let (idle_tx, mut idle_rx) = mpsc::unbounded_channel();
    let idle: Vec<_> = (0..args.idle)
        .map(|i| {
            let source = (!args.idle_sources.is_empty())
                .then(|| args.idle_sources[i % args.idle_sources.len()]);
            tokio::spawn(idle_client(
                i,
                args.clone(),
                source,
                gate.clone(),
                idle_tx.clone(),
                stop.clone(),
            ))
        })
        .collect();
    drop(idle_tx);
    let (mut opened, mut failed) = (0usize, 0usize);
    while opened + failed < args.idle {
        match idle_rx.recv().await {
            Some(true) => opened += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    if args.idle > 0 {
        eprintln!("holdfast-load: {opened} idle connections open ({failed} failed)");
    }
    let _ = ready.send(());
    let spam = (args.spam_docs > 0).then(|| tokio::spawn(spammer(args.clone(), start, stop, done)));

    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut closed: BTreeMap<String, usize> = BTreeMap::new();
    let (mut open_at_end, mut frames_in) = (0usize, 0u64);
    for t in idle {
        match t.await {
            Ok(r) => {
                frames_in += r.frames_in;
                if let Some(e) = r.error {
                    *failures.entry(e).or_default() += 1;
                } else if let Some(e) = r.closed {
                    *closed.entry(e).or_default() += 1;
                } else {
                    open_at_end += 1;
                }
            }
            Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let idle = serde_json::json!({
        "requested": args.idle,
        "opened": opened,
        "failed": failed,
        "open_at_end": open_at_end,
        "failures": failures,
        "closed": closed,
        "frames_in": frames_in,
    });
    let (spam, spam_window) = match spam {
        Some(t) => match t.await {
            Ok(s) => {
                let w = (s.start_s, s.end_s);
                (s.json, Some(w))
            }
            Err(e) => (serde_json::json!({ "error": format!("task: {e}") }), None),
        },
        None => (serde_json::Value::Null, None),
    };
    AttackOut {
        idle,
        spam,
        spam_window,
    }
}

struct IdleOut {
    /// Why it could not be opened.
    error: Option<String>,
    /// Why it ended before the end of the run.
    closed: Option<String>,
    frames_in: u64,
}

async fn idle_client(
    i: usize,
    args: Arc<Args>,
    source: Option<IpAddr>,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<bool>,
    mut stop: watch::Receiver<bool>,
) -> IdleOut {
    let me = format!("idle-{}-{i}", hex(&random_bytes::<4>()));
    let opened = {
        let _permit = gate.acquire().await;
        tokio::time::timeout(
            Duration::from_secs_f64(args.warmup_timeout),
            Conn::open_from(&args.url, me, source),
        )
        .await
    };
    let error = match opened {
        Ok(Ok(mut conn)) => {
            let _ = ready.send(true);
            let mut closed = None;
            while !*stop.borrow_and_update() {
                tokio::select! {
                    frame = conn.ws.next() => match conn.decode(frame) {
                        Ok(Some(Message::Error { message })) => {
                            closed.get_or_insert(format!("server error: {message}"));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            closed.get_or_insert(e);
                            break;
                        }
                    },
                    changed = stop.changed() => if changed.is_err() { break },
                }
            }
            if closed.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.ws.close(None)).await;
            }
            return IdleOut {
                error: None,
                closed,
                frames_in: conn.frames_in,
            };
        }
        Ok(Err(e)) => e,
        Err(_) => "timed out".into(),
    };
    let _ = ready.send(false);
    IdleOut {
        error: Some(error),
        closed: None,
        frames_in: 0,
    }
}

struct SpamOut {
    json: serde_json::Value,
    start_s: f64,
    end_s: f64,
}

/// Frames written between two flushes.
const SPAM_BATCH: usize = 32;

async fn spammer(
    args: Arc<Args>,
    mut start: watch::Receiver<Start>,
    mut stop: watch::Receiver<bool>,
    done: watch::Sender<bool>,
) -> SpamOut {
    let started = start.wait_for(|s| s.is_some()).await.map(|s| *s);
    let Ok(s) = started else {
        let _ = done.send(true);
        return SpamOut {
            json: serde_json::json!({ "error": "never started" }),
            start_s: 0.0,
            end_s: 0.0,
        };
    };
    let (t0, _) = s.expect("started");
    let spam_t0 = Instant::now();
    // What a peer that has nothing of a document sends first.
    let data = Automerge::new()
        .generate_sync_message(&mut sync::State::new())
        .expect("an empty document has a first sync message")
        .encode();
    let target = args.spam_docs;
    let (mut answered, mut sent, mut connections) = (0usize, 0usize, 0usize);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut other_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed_in_a_row = 0usize;
    let mut stopped = false;
    while answered < target && !stopped && !*stop.borrow() {
        let me = format!("spam-{}-{connections}", hex(&random_bytes::<4>()));
        // (An overloaded server may take long to accept: the end of the
        // run stops the wait.)
        let opened = tokio::select! {
            c = Conn::open(&args.url, me.clone()) => c,
            _ = stop.wait_for(|s| *s) => break,
        };
        let conn = match opened {
            Ok(c) => c,
            Err(e) => {
                *errors.entry(format!("connect: {e}")).or_default() += 1;
                failed_in_a_row += 1;
                if failed_in_a_row >= 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        failed_in_a_row = 0;
        connections += 1;
        let server = conn.server.clone();
        let (mut sink, mut stream) = conn.ws.split();
        let budget = target - answered;
        let mut sent_here = 0usize;
        let mut answered_here = 0usize;
        let send = async {
            for i in 0..budget {
                let msg = Message::Sync {
                    request: true,
                    document_id: DocumentId(random_bytes()),
                    sender_id: me.clone(),
                    target_id: server.clone(),
                    data: data.clone(),
                };
                if sink
                    .feed(WsMsg::Binary(wire::encode(&msg).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                sent_here += 1;
                if i % SPAM_BATCH == SPAM_BATCH - 1 && sink.flush().await.is_err() {
                    break;
                }
            }
            let _ = sink.flush().await;
            // The answers decide when this connection is done.
            std::future::pending::<()>().await
        };
        let recv = async {
            loop {
                match stream.next().await {
                    Some(Ok(WsMsg::Binary(b))) => {
                        match wire::decode(&b, &DecodeLimits::default()) {
                            Ok(Message::DocUnavailable { .. }) => {
                                answered_here += 1;
                                if answered_here == budget {
                                    return None;
                                }
                            }
                            Ok(Message::Error { message }) => {
                                // Keep the kinds apart, not each document id.
                                let kind: String = message.chars().take(60).collect();
                                *errors.entry(format!("server error: {kind}")).or_default() += 1;
                            }
                            Ok(m) => *other_in.entry(m.type_name().to_string()).or_default() += 1,
                            Err(e) => return Some(format!("undecodable frame: {e}")),
                        }
                    }
                    Some(Ok(WsMsg::Close(_))) | None => {
                        return Some("the server closed the connection".to_string())
                    }
                    Some(Err(e)) => return Some(format!("connection error: {e}")),
                    Some(Ok(_)) => {}
                }
            }
        };
        let ended = tokio::select! {
            r = recv => r,
            _ = send => None,
            _ = stop.wait_for(|s| *s) => {
                stopped = true;
                Some("stopped at the end of the run".to_string())
            }
        };
        answered += answered_here;
        sent += sent_here;
        if let Some(e) = ended {
            *errors.entry(e).or_default() += 1;
        }
    }
    let end = Instant::now();
    let _ = done.send(true);
    let seconds = end.duration_since(spam_t0).as_secs_f64();
    eprintln!(
        "holdfast-load: spam: {answered} of {target} requests answered ({sent} sent) \
         in {seconds:.2} s over {connections} connections"
    );
    SpamOut {
        json: serde_json::json!({
            "target": target,
            "answered": answered,
            "sent": sent,
            "connections": connections,
            "seconds": round3(seconds),
            "rate_per_s": round3(answered as f64 / seconds),
            "done": answered >= target,
            "errors": errors,
            "other_in": other_in,
        }),
        start_s: spam_t0.duration_since(t0).as_secs_f64(),
        end_s: end.duration_since(t0).as_secs_f64(),
    }
}
