//! Hostile clients against the real binary (issue 14), part 1: sockets
//! that never send, send slowly or never join, connection floods, and
//! untrusted strings in logs. Each attack is followed by the checks of
//! `limits::Env::still_serves` (a well-behaved client syncs and gets its
//! ack; the server's RSS stayed under its cap).
//!
//! The attackers connect from other loopback addresses (127.0.0.2, .3) so
//! that the per-address cap they exhaust is theirs, not the test's.

mod common;
mod limits;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use holdfast_core::wire::Message;
use limits::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind a loopback source address");
    within("a TCP connection", socket.connect(server))
        .await
        .expect("connect")
}

#[test]
fn idle_and_slow_sockets_are_capped_per_address_and_closed() {
    run(async {
        let mut env = Env::start(&[
            "--max-connections-per-ip",
            "100",
            "--header-timeout-secs",
            "1",
            "--handshake-timeout-secs",
            "1",
        ]);
        let addr = env.server.addr;
        // 150 sockets that never send a byte, from one address: 50 over
        // its cap.
        let mut idle = Vec::new();
        for _ in 0..150 {
            idle.push(connect_from("127.0.0.2", addr).await);
        }
        let refused = env
            .metric_reaches(
                "holdfast_refusals_total{reason=\"max_connections_per_ip\"}",
                50,
            )
            .await;
        eprintln!("idle sockets: {refused} of 150 refused at accept (cap 100 per address)");
        // Meanwhile everyone else is served at once.
        env.still_serves("while 100 idle sockets are open").await;
        // 20 sockets that send their request head one line at a time.
        let mut slow = Vec::new();
        for _ in 0..20 {
            let mut s = connect_from("127.0.0.3", addr).await;
            s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            slow.push(s);
        }
        let dribble = tokio::spawn(async move {
            let mut open = slow;
            while !open.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut still = Vec::new();
                for mut s in open {
                    if s.write_all(b"X-Slow: 1\r\n").await.is_ok() {
                        still.push(s);
                    }
                }
                open = still;
            }
        });
        // A WebSocket that never joins.
        let mut silent = Raw::connect(&env.url()).await;
        let error = silent
            .expect_error_and_close("a WebSocket without join")
            .await;
        assert!(error.contains("handshake"), "{error}");
        // The server closes every idle socket (the header timeout).
        for (i, s) in idle.iter_mut().enumerate() {
            assert!(
                closed_within(s, TIMEOUT).await,
                "idle socket {i} still open"
            );
        }
        within("the slow sockets to be closed", dribble)
            .await
            .unwrap();
        assert!(
            env.refusals("handshake_timeout").await >= 1,
            "the join timeout is counted"
        );
        env.still_serves("after idle, slow and silent sockets")
            .await;
    });
}

#[test]
fn the_total_connection_cap_holds_and_frees_up() {
    run(async {
        let mut env = Env::start(&[
            "--max-connections",
            "60",
            "--max-connections-per-ip",
            "0",
            "--header-timeout-secs",
            "1",
        ]);
        let addr = env.server.addr;
        let mut idle = Vec::new();
        for _ in 0..80 {
            idle.push(connect_from("127.0.0.2", addr).await);
        }
        // The 20 over the cap were closed at accept, the 60 when their
        // header time ran out.
        for s in idle.iter_mut() {
            assert!(
                closed_within(s, TIMEOUT).await,
                "an idle socket stayed open"
            );
        }
        let refused = env
            .metric_reaches("holdfast_refusals_total{reason=\"max_connections\"}", 20)
            .await;
        eprintln!("connection flood: {refused} of 80 refused at accept (cap 60)");
        env.still_serves("after a connection flood").await;
    });
}

#[test]
fn untrusted_strings_are_escaped_and_capped_in_logs_and_errors() {
    run(async {
        let mut env = Env::start(&[]);
        let url = env.url();
        // A peer id that would forge a log line and clear the terminal.
        let mut forger = Raw::connect(&url).await;
        forger.peer_id = "evil\nINFO holdfast_server: forged line\u{1b}[2J".into();
        forger.join().await;
        // A 10 MiB peer id: refused whole, echoed in part.
        let mut huge = Raw::connect(&url).await;
        huge.peer_id = "x".repeat(10 << 20);
        let join = huge.join_msg(&["1"]);
        huge.send_msg(&join).await;
        let error = huge.expect_error_and_close("a 10 MiB senderId").await;
        eprintln!("10 MiB senderId → {error:?}");
        assert!(error.len() < 200, "the error echoes {} bytes", error.len());
        // A wrong sender on a joined connection: its id shown escaped.
        let server = forger_server_id(&mut Raw::connect(&url).await).await;
        let mut spoof = Raw::connect(&url).await;
        spoof.join().await;
        let mut bad = empty_sync(random_doc_id(), "x\ny", &server);
        if let Message::Sync { sender_id, .. } = &mut bad {
            *sender_id = format!("line\n{}", "y".repeat(1000));
        }
        spoof.send_msg(&bad).await;
        let error = spoof.expect_error_and_close("a wrong senderId").await;
        assert!(!error.contains('\n') && error.len() < 400, "{error:?}");
        env.still_serves("after untrusted strings").await;
        drop(forger);
        let output = env.server.output.lock().unwrap().join("\n");
        assert!(!output.contains('\u{1b}'), "a raw ESC reached the log");
        for line in output.lines() {
            assert!(
                !line.contains("forged line") || line.contains("evil\\n"),
                "a forged log line: {line:?}"
            );
        }
        assert!(
            output.len() < 256 << 10,
            "the log holds {} bytes after a 10 MiB senderId",
            output.len()
        );
    });
}

/// Join with a fresh raw client and return the server's peer id.
async fn forger_server_id(raw: &mut Raw) -> String {
    raw.join().await
}
