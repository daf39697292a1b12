//! A real PostgreSQL for tests (feature `testing`): Debian's binaries
//! (`scripts/setup.sh` installs the `postgresql` package), `initdb` into a
//! temporary directory, the server listening only on a Unix socket in that
//! directory, stopped and removed on drop. Run as root (CI containers), the
//! cluster belongs to the `postgres` user, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PostgreSQL cluster of its own, running until dropped.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: `$HOLDFAST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`.
pub fn pg_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("HOLDFAST_PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|e| {
            format!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin, pg_config: {e}); scripts/setup.sh postgres installs it")
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

fn is_root() -> bool {
    // Without libc: the effective uid is in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl TempPostgres {
    /// initdb and start a cluster; panics (the test fails) with the tool's
    /// output if either fails.
    pub fn start() -> Self {
        let bin = pg_bin().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::Builder::new()
            .prefix("holdfast-pg-")
            .tempdir()
            .expect("a temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {} failed", dir.path().display());
        }
        // A free port number names the socket file; nothing listens on TCP.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port number");
        let pg = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "holdfast",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C",
            ],
        );
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `tool` of PostgreSQL's, as the cluster's owner.
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start (again) the server of this cluster and wait until it accepts
    /// connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-c listen_addresses='' -k {} -p {}",
            self.dir.path().display(),
            self.port
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stop the server: `"fast"` (clean) or `"immediate"` (as a crash: no
    /// checkpoint; what was committed comes back from the WAL).
    pub fn stop_server(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        );
    }

    /// The connection string of database `postgres` as user `holdfast`.
    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=holdfast dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// The directory holding the cluster (and its socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
