//! The servers under test: [`InProc`] (in this process, over a log the test
//! can reach) and [`ServerProc`] (the real binary).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdfast_log::{LogError, LogOptions, LogStorage};
use holdfast_server::{Config, Running};
use tokio::time::Instant;

use super::{within, ws_url, FORK_GUARD, TIMEOUT};

/// The server in this process, over a log the test can inspect.
pub struct InProc {
    pub running: Option<Running>,
    pub storage: LogStorage,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

/// Shards for the servers these tests start: `HOLDFAST_TEST_SHARDS`
/// (default 1). `make test` runs the protocol, hostile and access suites
/// again with 3.
pub fn test_shards() -> usize {
    std::env::var("HOLDFAST_TEST_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

pub fn config(www: Option<PathBuf>, max_frame: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        www,
        max_frame,
        validate_peer_input: true,
        limits: holdfast_server::Limits::default(),
        extra_metrics: None,
        auth: None,
        shared_store: false,
        shards: test_shards(),
    }
}

impl InProc {
    /// Open (recover) the log in `dir` and start serving on 127.0.0.1:0.
    pub async fn start(dir: &Path, config: Config) -> InProc {
        // Rarely (about 1 run in 150) the directory was still locked for
        // ~1 ms right after a stop in this process; the cause is not known
        // yet (see the report). Retry `Locked` only, say so, and bound it.
        let t0 = Instant::now();
        let (storage, _report) = loop {
            let opened = {
                let _guard = FORK_GUARD.lock().unwrap_or_else(|p| p.into_inner());
                LogStorage::open(dir, LogOptions::default())
            };
            match opened {
                Ok(opened) => break opened,
                Err(LogError::Locked(_)) if t0.elapsed() < Duration::from_secs(2) => {
                    eprintln!("note: {} still locked; retrying", dir.display());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("open the log: {e}"),
            }
        };
        let running = holdfast_server::start(config, storage.clone())
            .await
            .expect("start the server");
        InProc {
            addr: running.addr,
            running: Some(running),
            storage,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        ws_url(self.addr, "/")
    }

    /// Stop gracefully and release the log (so it can be reopened).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            within("the server to stop", r.stop()).await;
        }
    }
}

/// The real binary, with its stdout/stderr captured.
pub struct ServerProc {
    child: Option<Child>,
    /// The threads copying stdout/stderr into `output` (done at EOF).
    readers: Vec<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
    pub output: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Start `holdfast-server --listen 127.0.0.1:0 --data <data> <extra>` and
    /// wait for its "listening" line.
    pub fn spawn(data: &Path, extra: &[&str]) -> ServerProc {
        let data = data.display().to_string();
        let args: Vec<&str> = ["--data", data.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        Self::spawn_with(&args)
    }

    /// Start `holdfast-server --listen 127.0.0.1:0 <args>` (with `--shards
    /// <test_shards()>` unless `args` has `--shards`) and wait for its
    /// "listening" line.
    pub fn spawn_with(args: &[&str]) -> ServerProc {
        let shards = test_shards().to_string();
        let default_shards = match args.contains(&"--shards") {
            true => vec![],
            false => vec!["--shards", shards.as_str()],
        };
        let guard = FORK_GUARD.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast-server"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(default_shards)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn holdfast-server");
        drop(guard);
        let output = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        let mut readers = Vec::new();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("holdfast-server: listening on ws://") {
                    let _ = addr_tx.send(a.trim().to_string());
                }
                out.lock().unwrap().push(line);
            }
        }));
        let mut stderr = child.stderr.take().unwrap();
        let out = output.clone();
        readers.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            out.lock()
                .unwrap()
                .extend(s.lines().map(|l| format!("stderr: {l}")));
        }));
        let addr = match addr_rx.recv_timeout(TIMEOUT) {
            Ok(a) => a.parse().expect("a socket address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "holdfast-server did not start: {:#?}",
                    output.lock().unwrap()
                );
            }
        };
        ServerProc {
            child: Some(child),
            readers,
            addr,
            output,
        }
    }

    pub fn url(&self) -> String {
        ws_url(self.addr, "/sync")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, now, and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Send SIGINT (what Ctrl-C sends).
    pub fn sigint(&self) {
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGINT) };
        assert_eq!(rc, 0, "kill -INT");
    }

    /// Wait for the process to exit on its own (SIGKILL after [`TIMEOUT`]),
    /// and for all of its output.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let readers = std::mem::take(&mut self.readers);
        let pid = child.id();
        let waited = tokio::time::timeout(
            TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let status = child.wait();
                for r in readers {
                    let _ = r.join();
                }
                status
            }),
        )
        .await;
        match waited {
            Ok(r) => r.expect("join").expect("wait"),
            Err(_) => {
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!(
                    "holdfast-server did not exit within {TIMEOUT:?}: {:#?}",
                    self.output.lock().unwrap()
                );
            }
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "holdfast-server {} output:\n{}",
                self.addr,
                self.output.lock().unwrap().join("\n")
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
