//! holdfast-fuzz: a structure-aware mutation fuzzer for what peers send the
//! holdfast core, on stable Rust (no cargo-fuzz, no sanitizer coverage).
//!
//! Each input is played against a real [`holdfast_core::repo::Repo`]
//! configured as a server: a new incoming connection, the `join` handshake,
//! then 1..=12 frames: genuine sync messages captured from real automerge
//! sync sessions ([`corpus`]), mutated ([`mutate`]). Panics are recorded by
//! a panic hook (which sees them even when the core catches them) and by
//! `catch_unwind` around each input (when it does not); wall time is
//! measured per input.
//!
//! [`run`] is the loop; the `holdfast-fuzz` binary and `tests/short.rs` both
//! call it. See `fuzz/README.md`.

pub mod corpus;
pub mod driver;
mod explain;
pub mod format;
pub mod mutate;

pub use explain::{data_bytes, describe_frame, describe_ops};

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use corpus::Corpus;
use driver::Driver;

/// One input: the frames sent after the handshake.
pub type Input = Vec<Vec<u8>>;

pub const PEER_ID: &str = "fuzz-peer";
pub const SERVER_ID: &str = "holdfast-server";

/// The panics of issue 11, by a short name and the end of their location.
pub const KNOWN_PANICS: [(&str, &str); 3] = [
    (
        "Bloom filter with zero bits per entry",
        "automerge-0.12.0/src/sync/bloom.rs:74",
    ),
    (
        "change with its seq rewritten",
        "automerge-0.12.0/src/change_graph.rs:569",
    ),
    (
        "first change of a new actor with seq > 1",
        "automerge-0.12.0/src/op_set2/change/batch.rs:1121",
    ),
];

// ---------------------------------------------------------------------------
// Panic capture
// ---------------------------------------------------------------------------

/// A panic seen by the hook while an input ran.
#[derive(Clone, Debug)]
pub struct PanicSeen {
    /// `file:line`, with the cargo registry prefix removed
    /// (`automerge-0.12.0/src/sync/bloom.rs:74`).
    pub location: String,
    pub message: String,
    /// Captured when [`BACKTRACES`] is set (replays).
    pub backtrace: Option<String>,
}

/// Capture a backtrace with every recorded panic (slow; for `--replay`).
pub static BACKTRACES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static SEEN: RefCell<Vec<PanicSeen>> = const { RefCell::new(Vec::new()) };
}

/// Shortens a source path: `…/registry/src/<index>/automerge-0.12.0/src/x.rs`
/// becomes `automerge-0.12.0/src/x.rs`.
pub fn short_path(file: &str) -> String {
    if let Some(i) = file.find("/registry/src/") {
        let rest = &file[i + "/registry/src/".len()..];
        if let Some(j) = rest.find('/') {
            return rest[j + 1..].to_string();
        }
    }
    file.to_string()
}

/// Installs (once per process) a panic hook that records panics on threads
/// running an input and hands every other panic to the previous hook.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return prev(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", short_path(l.file()), l.line()))
                .unwrap_or_else(|| "<unknown>".into());
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string payload>".into());
            let backtrace = BACKTRACES
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(|| std::backtrace::Backtrace::force_capture().to_string());
            SEEN.with(|s| {
                s.borrow_mut().push(PanicSeen {
                    location,
                    message,
                    backtrace,
                })
            });
        }));
    });
}

/// Runs `f` with panics recorded; returns whether it unwound, and the panics
/// seen (caught inside or not).
fn captured<R>(f: impl FnOnce() -> R) -> (Option<R>, Vec<PanicSeen>) {
    SEEN.with(|s| s.borrow_mut().clear());
    CAPTURING.with(|c| c.set(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f)).ok();
    CAPTURING.with(|c| c.set(false));
    (r, SEEN.with(|s| std::mem::take(&mut *s.borrow_mut())))
}

// ---------------------------------------------------------------------------
// Playing an input
// ---------------------------------------------------------------------------

/// What happened to the frames of inputs, counted by outcome.
#[derive(Default, Debug, Clone)]
pub struct Tally {
    /// Per frame: `accepted` (durable remote changes), `ok`, or
    /// `closed:<ProtocolError variant>`.
    pub frames: BTreeMap<String, u64>,
    pub handshake_failures: u64,
    pub livelocks: u64,
}

/// Plays one input on a new connection (a new one again after the repo
/// closes it, for the remaining frames).
pub fn play(d: &mut Driver, frames: &[Vec<u8>], tally: &mut Tally) {
    let Some(mut conn) = d.open() else {
        tally.handshake_failures += 1;
        return;
    };
    for f in frames {
        let out = d.frame(conn, f);
        let key = if out.livelock {
            tally.livelocks += 1;
            "livelock".to_string()
        } else if out.closed {
            // No ConnectionError: the peer's own `leave` or `error`.
            format!(
                "closed:{}",
                out.errors.first().map_or("by-peer", |s| s.as_str())
            )
        } else if out.remote_changes > 0 {
            "accepted".to_string()
        } else {
            "ok".to_string()
        };
        *tally.frames.entry(key).or_default() += 1;
        if out.closed {
            match d.open() {
                Some(c) => conn = c,
                None => {
                    tally.handshake_failures += 1;
                    return;
                }
            }
        }
    }
    d.close(conn);
}

// ---------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// `RepoConfig::validate_peer_input`.
    pub validate: bool,
    /// Stop after this long,
    pub seconds: Option<f64>,
    /// or after this many inputs.
    pub max_inputs: Option<u64>,
    pub stop_on_panic: bool,
    /// Stop once every [`KNOWN_PANICS`] location was seen.
    pub until_known: bool,
    /// A fresh repo (from the base storage image) every this many inputs.
    pub reset_every: u64,
    /// Inputs slower than this are counted (and the slowest written out).
    pub slow_ms: f64,
    /// Where findings go; `None`: nowhere.
    pub findings: Option<PathBuf>,
    /// Print progress every 10 s and each new panic location to stderr.
    pub verbose: bool,
    /// An input running longer than this is a hang: a watchdog thread writes
    /// it to the findings directory and ends the process (exit status 3), as
    /// a stuck input cannot be interrupted. `None`: no watchdog.
    pub hang_secs: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 1,
            validate: true,
            seconds: Some(60.0),
            max_inputs: None,
            stop_on_panic: false,
            until_known: false,
            reset_every: 64,
            slow_ms: 100.0,
            findings: Some(default_findings_dir()),
            verbose: true,
            hang_secs: Some(10.0),
        }
    }
}

pub fn default_findings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("findings")
}

/// A distinct panic location.
#[derive(Clone, Debug)]
pub struct Site {
    pub location: String,
    pub message: String,
    /// 1-based number of the input that first hit it, and when.
    pub first_input: u64,
    pub first_secs: f64,
    pub count: u64,
    /// How many of those panics reached the fuzzer (the core did not catch them).
    pub unwound: u64,
    pub finding: Option<PathBuf>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub secs: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Inputs slower than `slow_ms`.
    pub slow: u64,
    /// Of those, inputs carrying under 1 MiB of data ([`data_bytes`]): a
    /// slow small input means work beyond linear.
    pub slow_small: u64,
    /// The least data a slow input carried, and the most time per MiB of
    /// data a slow input took.
    pub slow_min_bytes: Option<u64>,
    pub slow_max_ms_per_mib: f64,
    pub slowest: Option<PathBuf>,
    pub panics: u64,
    pub sites: Vec<Site>,
    pub tally: Tally,
    pub findings: Vec<PathBuf>,
    pub peak_rss_kb: Option<u64>,
}

impl Report {
    /// When each known panic was first seen (`None`: not seen).
    pub fn known(&self) -> Vec<(&'static str, &'static str, Option<&Site>)> {
        KNOWN_PANICS
            .iter()
            .map(|(name, loc)| (*name, *loc, self.sites.iter().find(|s| s.location == *loc)))
            .collect()
    }

    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{} inputs in {:.1} s ({:.0}/s); per input: max {:.2} ms, p99 {:.2} ms, p50 {:.3} ms; {} over the slow threshold\n",
            self.inputs,
            self.secs,
            self.inputs as f64 / self.secs.max(1e-9),
            self.max_ms,
            self.p99_ms,
            self.p50_ms,
            self.slow
        ));
        if let Some(min) = self.slow_min_bytes {
            s.push_str(&format!(
                "slow inputs carried at least {:.1} MiB of data (frames plus inflated changes); at most {:.1} ms per MiB; {} carried under 1 MiB\n",
                min as f64 / f64::from(1 << 20),
                self.slow_max_ms_per_mib,
                self.slow_small
            ));
        }
        if let Some(p) = &self.slowest {
            s.push_str(&format!("slowest input written to {}\n", p.display()));
        }
        s.push_str(&format!(
            "panics: {} in total at {} distinct locations\n",
            self.panics,
            self.sites.len()
        ));
        for site in &self.sites {
            s.push_str(&format!(
                "  {}  first at input {} after {:.2} s; {} times ({} not caught by the core): {}\n",
                site.location,
                site.first_input,
                site.first_secs,
                site.count,
                site.unwound,
                one_line(&site.message)
            ));
            if let Some(f) = &site.finding {
                s.push_str(&format!("      reproducer: {}\n", f.display()));
            }
        }
        s.push_str("frames by outcome:");
        for (k, v) in &self.tally.frames {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push('\n');
        if self.tally.livelocks + self.tally.handshake_failures > 0 {
            s.push_str(&format!(
                "livelocks: {}, failed handshakes: {}\n",
                self.tally.livelocks, self.tally.handshake_failures
            ));
        }
        if let Some(kb) = self.peak_rss_kb {
            s.push_str(&format!(
                "peak RSS (VmHWM): {:.1} MiB\n",
                kb as f64 / 1024.0
            ));
        }
        s
    }
}

fn one_line(s: &str) -> String {
    let l: String = s.lines().next().unwrap_or("").chars().take(300).collect();
    l
}

/// Per-input wall times: 10 µs buckets up to 1 s, and the exact maximum.
struct Histogram {
    buckets: Vec<u32>,
    n: u64,
    max: Duration,
}

const BUCKET_US: u64 = 10;

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: vec![0; 100_001],
            n: 0,
            max: Duration::ZERO,
        }
    }
    fn add(&mut self, d: Duration) {
        let i = ((d.as_micros() as u64) / BUCKET_US).min(100_000) as usize;
        self.buckets[i] += 1;
        self.n += 1;
        self.max = self.max.max(d);
    }
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let target = ((self.n as f64) * q).ceil() as u64;
        let mut acc = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            acc += u64::from(*c);
            if acc >= target {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.max.as_secs_f64() * 1000.0
    }
}

/// Peak resident set size of this process, from /proc/self/status.
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Slow inputs written to the findings directory, at most (the slowest is
/// written at the end in any case).
const SLOW_WRITTEN: u64 = 10;

/// Slow inputs described on stderr, at most.
const SLOW_REPORTED: u64 = 20;

/// At most this many finding files per panic location.
const FINDINGS_PER_SITE: u64 = 5;

pub fn run(opts: &Options) -> Report {
    install_panic_hook();
    let corpus = Corpus::build();
    run_with(opts, &corpus)
}

pub fn run_with(opts: &Options, corpus: &Corpus) -> Report {
    install_panic_hook();
    let mut gen = mutate::Gen {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        corpus,
        validate: opts.validate,
    };
    let fresh = || Driver::new(opts.validate, corpus.image.clone());
    let mut driver = fresh();
    // Inputs played on `driver` since it was made: a finding replays them all.
    let mut history: Vec<Input> = Vec::new();
    let watchdog = opts.hang_secs.map(|secs| Watchdog::start(opts, secs));
    let mut report = Report::default();
    let mut hist = Histogram::new();
    let mut slowest: Option<(Duration, u64, Vec<Input>)> = None;
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut input: u64 = 0;

    loop {
        let elapsed = start.elapsed().as_secs_f64();
        if opts.seconds.is_some_and(|s| elapsed >= s) || opts.max_inputs.is_some_and(|m| input >= m)
        {
            break;
        }
        if history.len() as u64 >= opts.reset_every {
            driver = fresh();
            history.clear();
        }
        let frames = gen.input();
        input += 1;
        history.push(frames);
        let frames = history.last().expect("pushed");

        if let Some(w) = &watchdog {
            w.arm(input, &history);
        }
        let t = Instant::now();
        let (done, seen) = captured(|| play(&mut driver, frames, &mut report.tally));
        let dt = t.elapsed();
        if let Some(w) = &watchdog {
            w.disarm();
        }
        hist.add(dt);
        let unwound = done.is_none();

        if dt.as_secs_f64() * 1000.0 > opts.slow_ms {
            report.slow += 1;
            let bytes = data_bytes(frames);
            if bytes < 1 << 20 {
                report.slow_small += 1;
            }
            report.slow_min_bytes = Some(report.slow_min_bytes.map_or(bytes, |b| b.min(bytes)));
            let mib = bytes as f64 / f64::from(1 << 20);
            report.slow_max_ms_per_mib = report
                .slow_max_ms_per_mib
                .max(dt.as_secs_f64() * 1000.0 / mib.max(1e-9));
            if report.slow <= SLOW_WRITTEN {
                if let Some(dir) = &opts.findings {
                    let name = format!(
                        "slow-{}-seed{}-input{input}.txt",
                        if opts.validate {
                            "validate"
                        } else {
                            "novalidate"
                        },
                        opts.seed
                    );
                    let header = format!(
                        "slow input: {:.1} ms\nseed {} input {input} validate {}",
                        dt.as_secs_f64() * 1000.0,
                        opts.seed,
                        opts.validate
                    );
                    if let Ok(p) = write_session(&dir.join(name), &header, opts.validate, &history)
                    {
                        report.findings.push(p);
                    }
                }
            }
            if opts.verbose && report.slow <= SLOW_REPORTED {
                let biggest = frames
                    .iter()
                    .max_by_key(|f| f.len())
                    .map(|f| describe_frame(f));
                eprintln!(
                    "[{:8.2} s] input {input}: slow, {:.1} ms; largest frame: {}",
                    start.elapsed().as_secs_f64(),
                    dt.as_secs_f64() * 1000.0,
                    one_line(&biggest.unwrap_or_default())
                );
            }
        }
        if slowest.as_ref().is_none_or(|(d, _, _)| dt > *d)
            && dt.as_secs_f64() * 1000.0 > opts.slow_ms
        {
            slowest = Some((dt, input, history.clone()));
        }

        let now = start.elapsed().as_secs_f64();
        for (k, p) in seen.iter().enumerate() {
            report.panics += 1;
            let idx = match report.sites.iter().position(|s| s.location == p.location) {
                Some(i) => i,
                None => {
                    if opts.verbose {
                        eprintln!(
                            "[{now:8.2} s] input {input}: NEW panic at {}: {}",
                            p.location,
                            one_line(&p.message)
                        );
                    }
                    report.sites.push(Site {
                        location: p.location.clone(),
                        message: p.message.clone(),
                        first_input: input,
                        first_secs: now,
                        count: 0,
                        unwound: 0,
                        finding: None,
                    });
                    report.sites.len() - 1
                }
            };
            let site = &mut report.sites[idx];
            site.count += 1;
            // The last panic of an input that unwound is the one that did.
            if unwound && k == seen.len() - 1 {
                site.unwound += 1;
            }
            // With validation on every panic is a finding; without, the first
            // input per location is kept as a reproducer.
            let keep = if opts.validate {
                site.count <= FINDINGS_PER_SITE
            } else {
                site.count == 1
            };
            if keep {
                if let Some(dir) = &opts.findings {
                    let name = format!(
                        "{}-seed{}-input{}-{}.txt",
                        if opts.validate { "panic" } else { "novalidate" },
                        opts.seed,
                        input,
                        sanitize(&p.location)
                    );
                    let header = format!(
                        "panic at {}: {}\nseed {} input {} validate {}",
                        p.location,
                        one_line(&p.message),
                        opts.seed,
                        input,
                        opts.validate
                    );
                    match write_session(&dir.join(name), &header, opts.validate, &history) {
                        Ok(path) => {
                            if opts.verbose && opts.validate {
                                eprintln!("  finding written to {}", path.display());
                            }
                            site.finding.get_or_insert(path.clone());
                            report.findings.push(path);
                        }
                        Err(e) => eprintln!("could not write a finding: {e}"),
                    }
                }
            }
        }
        if unwound {
            // The repo's state is unknown after a panic it did not catch.
            driver = fresh();
            history.clear();
        }
        if opts.stop_on_panic && !seen.is_empty() {
            break;
        }
        if opts.until_known
            && KNOWN_PANICS
                .iter()
                .all(|(_, l)| report.sites.iter().any(|s| s.location == *l))
        {
            break;
        }
        if opts.verbose && last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "[{secs:8.1} s] inputs {input} ({:.0}/s), max {:.2} ms, panics {} ({} locations), rss {:.0} MiB",
                input as f64 / secs,
                hist.max.as_secs_f64() * 1000.0,
                report.panics,
                report.sites.len(),
                peak_rss_kb().unwrap_or(0) as f64 / 1024.0
            );
        }
    }

    report.inputs = input;
    report.secs = start.elapsed().as_secs_f64();
    report.max_ms = hist.max.as_secs_f64() * 1000.0;
    report.p50_ms = hist.quantile_ms(0.5);
    report.p99_ms = hist.quantile_ms(0.99);
    if let (Some((d, n, sess)), Some(dir)) = (slowest, &opts.findings) {
        let header = format!(
            "slowest input: {:.1} ms\nseed {} input {} validate {}",
            d.as_secs_f64() * 1000.0,
            opts.seed,
            n,
            opts.validate
        );
        let name = format!(
            "slow-{}-seed{}-input{}.txt",
            if opts.validate {
                "validate"
            } else {
                "novalidate"
            },
            opts.seed,
            n
        );
        match write_session(&dir.join(name), &header, opts.validate, &sess) {
            Ok(p) => report.slowest = Some(p),
            Err(e) => eprintln!("could not write the slowest input: {e}"),
        }
    }
    report.peak_rss_kb = peak_rss_kb();
    report
}

/// Ends the process when one input runs too long, after writing it out.
struct Watchdog {
    state: std::sync::Arc<std::sync::Mutex<WatchState>>,
}

#[derive(Default)]
struct WatchState {
    armed: Option<(Instant, u64)>,
    history: Vec<Input>,
    stop: bool,
}

impl Watchdog {
    fn start(opts: &Options, secs: f64) -> Watchdog {
        let state = std::sync::Arc::new(std::sync::Mutex::new(WatchState::default()));
        let st = state.clone();
        let opts = opts.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let g = st.lock().unwrap_or_else(|e| e.into_inner());
            if g.stop {
                return;
            }
            let Some((t, input)) = g.armed else { continue };
            if t.elapsed().as_secs_f64() < secs {
                continue;
            }
            eprintln!(
                "HANG: input {input} has run for {:.1} s (seed {}, validation {})",
                t.elapsed().as_secs_f64(),
                opts.seed,
                opts.validate
            );
            if let Some(dir) = &opts.findings {
                let name = format!(
                    "hang-{}-seed{}-input{}.txt",
                    if opts.validate {
                        "validate"
                    } else {
                        "novalidate"
                    },
                    opts.seed,
                    input
                );
                let header = format!(
                    "hang: input {input} ran for more than {secs} s\nseed {} input {input} validate {}",
                    opts.seed, opts.validate
                );
                match write_session(&dir.join(name), &header, opts.validate, &g.history) {
                    Ok(p) => eprintln!("  written to {}", p.display()),
                    Err(e) => eprintln!("  could not write it: {e}"),
                }
            }
            std::process::exit(3);
        });
        Watchdog { state }
    }

    fn arm(&self, input: u64, history: &[Input]) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the watchdog's copy of the session in step (one input at a time).
        if g.history.len() + 1 != history.len() || history.len() == 1 {
            g.history = history.to_vec();
        } else if let Some(last) = history.last() {
            g.history.push(last.clone());
        }
        g.armed = Some((Instant::now(), input));
    }

    fn disarm(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).armed = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
    }
}

fn sanitize(s: &str) -> String {
    let base = s.rsplit('/').next().unwrap_or(s);
    base.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Finding files
// ---------------------------------------------------------------------------

/// Writes the inputs played on a repo since it was made fresh (the last one
/// is the finding): `# ` comment lines, then per input a line `input` and
/// one line of hex per frame.
pub fn write_session(
    path: &Path,
    header: &str,
    validate: bool,
    inputs: &[Input],
) -> std::io::Result<PathBuf> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "# holdfast-fuzz finding")?;
    for l in header.lines() {
        writeln!(f, "# {l}")?;
    }
    writeln!(
        f,
        "# replay: cargo run --release -p holdfast-fuzz -- --replay {}{}",
        path.display(),
        if validate { "" } else { " --no-validate" }
    )?;
    writeln!(
        f,
        "# Each `input` is played on a new connection (join handshake first) of one fresh repo, in order; the last is the one that panicked or was slow."
    )?;
    writeln!(f, "validate {validate}")?;
    for frames in inputs {
        writeln!(f, "input")?;
        for fr in frames {
            writeln!(f, "{}", hex::encode(fr))?;
        }
    }
    f.flush()?;
    Ok(path.to_path_buf())
}

/// Reads a finding file: whether it was found with validation, and its inputs.
pub fn read_session(text: &str) -> Result<(Option<bool>, Vec<Input>), String> {
    let mut validate = None;
    let mut inputs: Vec<Input> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(v) = line.strip_prefix("validate ") {
            validate = Some(v == "true");
        } else if line == "input" {
            inputs.push(Vec::new());
        } else {
            let bytes = hex::decode(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            inputs
                .last_mut()
                .ok_or_else(|| format!("line {}: frame before `input`", n + 1))?
                .push(bytes);
        }
    }
    Ok((validate, inputs))
}

/// What a replay saw, per input.
#[derive(Debug)]
pub struct Replayed {
    pub input: usize,
    pub ms: f64,
    pub panics: Vec<PanicSeen>,
    pub unwound: bool,
}

/// Plays a finding's inputs on one fresh repo, in order.
pub fn replay(inputs: &[Input], validate: bool) -> Vec<Replayed> {
    install_panic_hook();
    let corpus = Corpus::build();
    let mut d = Driver::new(validate, corpus.image.clone());
    let mut tally = Tally::default();
    let mut out = Vec::new();
    for (i, frames) in inputs.iter().enumerate() {
        let t = Instant::now();
        let (done, panics) = captured(|| play(&mut d, frames, &mut tally));
        out.push(Replayed {
            input: i,
            ms: t.elapsed().as_secs_f64() * 1000.0,
            panics,
            unwound: done.is_none(),
        });
        if done.is_none() {
            break;
        }
    }
    out
}
