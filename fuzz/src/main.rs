//! `holdfast-fuzz`: see `fuzz/README.md` and `holdfast-fuzz --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use holdfast_fuzz::{corpus::Corpus, Options, KNOWN_PANICS};

const HELP: &str = "\
holdfast-fuzz: mutates genuine automerge sync messages and feeds them to a holdfast server repo

USAGE: holdfast-fuzz [OPTIONS]

  --seconds N        run for N seconds (default 60)
  --inputs N         stop after N inputs
  --seed S           RNG seed (default: 1); the same seed replays the same inputs
  --no-validate      RepoConfig::validate_peer_input = false: bytes go to automerge unchecked
  --stop-on-panic    stop at the first panic
  --until-known      stop once the three known panics (issue 11) were seen; prints when
                     (meant for --no-validate)
  --reset-every N    fresh repo every N inputs (default 64)
  --slow-ms MS       per-input time counted as a finding with validation on (default 100)
  --hang-secs S      an input running longer is written out as a hang and the process
                     exits with status 3 (default 10; 0: no watchdog)
  --findings DIR     where findings go (default: fuzz/findings)
  --replay FILE      play a finding file and report what happens (validation as recorded
                     in the file unless --no-validate / --validate is given)
  --validate         with --replay: force validation on (RUST_BACKTRACE=1: print where
                     each panic came from; build without --release for symbols)
  --explain          with --replay: describe every frame (sync message fields, chunk
                     headers) before replaying
  --ops              with --replay: --explain, plus every operation of every change
  --corpus           print the seed corpus and exit
  --libfuzzer-seeds DIR
                     write the seeds of the libFuzzer targets (fuzz/libfuzzer) to
                     DIR/<target>/ and exit
  -q, --quiet        no progress lines

Exit status: 1 if validation was on and any input panicked or took longer than --slow-ms.";

fn main() -> ExitCode {
    let mut opts = Options::default();
    let mut replay: Option<PathBuf> = None;
    let mut force_validate: Option<bool> = None;
    let mut corpus = false;
    let mut seeds: Option<PathBuf> = None;
    let mut explain = false;
    let mut ops = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value");
                std::process::exit(2)
            })
        };
        fn num<T: std::str::FromStr>(name: &str, s: String) -> T {
            s.parse().unwrap_or_else(|_| {
                eprintln!("{name}: not a number: {s}");
                std::process::exit(2)
            })
        }
        match a.as_str() {
            "--seconds" => opts.seconds = Some(num("--seconds", val("--seconds"))),
            "--inputs" => {
                opts.max_inputs = Some(num("--inputs", val("--inputs")));
                if !std::env::args().any(|a| a == "--seconds") {
                    opts.seconds = None;
                }
            }
            "--seed" => opts.seed = num("--seed", val("--seed")),
            "--no-validate" => {
                opts.validate = false;
                force_validate = Some(false);
            }
            "--validate" => force_validate = Some(true),
            "--stop-on-panic" => opts.stop_on_panic = true,
            "--until-known" => opts.until_known = true,
            "--reset-every" => opts.reset_every = num("--reset-every", val("--reset-every")),
            "--slow-ms" => opts.slow_ms = num("--slow-ms", val("--slow-ms")),
            "--hang-secs" => {
                let s: f64 = num("--hang-secs", val("--hang-secs"));
                opts.hang_secs = (s > 0.0).then_some(s);
            }
            "--findings" => opts.findings = Some(PathBuf::from(val("--findings"))),
            "--replay" => replay = Some(PathBuf::from(val("--replay"))),
            "--corpus" => corpus = true,
            "--libfuzzer-seeds" => seeds = Some(PathBuf::from(val("--libfuzzer-seeds"))),
            "--explain" => explain = true,
            "--ops" => {
                explain = true;
                ops = true;
            }
            "-q" | "--quiet" => opts.verbose = false,
            "-h" | "--help" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n\n{HELP}");
                return ExitCode::from(2);
            }
        }
    }

    if corpus {
        print!("{}", Corpus::build().describe());
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = seeds {
        return write_seeds(&dir);
    }
    if let Some(path) = replay {
        return replay_file(&path, force_validate, explain, ops);
    }

    println!(
        "holdfast-fuzz: seed {}, validation {}, {}",
        opts.seed,
        if opts.validate {
            "ON"
        } else {
            "OFF (--no-validate)"
        },
        match (opts.seconds, opts.max_inputs) {
            (Some(s), Some(n)) => format!("{s} s or {n} inputs"),
            (Some(s), None) => format!("{s} s"),
            (None, Some(n)) => format!("{n} inputs"),
            (None, None) => "until stopped".into(),
        }
    );
    let report = holdfast_fuzz::run(&opts);
    print!("{}", report.summary());
    if !opts.validate {
        println!("known panics (issue 11), first found:");
        for (name, loc, site) in report.known() {
            match site {
                Some(s) => println!(
                    "  {loc} ({name}): after {:.2} s, input {}",
                    s.first_secs, s.first_input
                ),
                None => println!("  {loc} ({name}): not found"),
            }
        }
        if opts.until_known && report.known().iter().any(|k| k.2.is_none()) {
            return ExitCode::from(1);
        }
        return ExitCode::SUCCESS;
    }
    let mut failed = false;
    if report.panics > 0 {
        failed = true;
        println!(
            "FAIL: {} panics with validation on (findings in {})",
            report.panics,
            opts.findings
                .as_ref()
                .map_or("nowhere".into(), |p| p.display().to_string())
        );
    }
    if report.slow > 0 {
        failed = true;
        println!(
            "FAIL: {} inputs took longer than {} ms of CPU time (max {:.1} ms){}",
            report.slow,
            opts.slow_ms,
            report.max_ms,
            report
                .slowest
                .as_ref()
                .map_or(String::new(), |p| format!("; slowest in {}", p.display()))
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        println!(
            "OK: no panic, no input over {} ms of CPU time",
            opts.slow_ms
        );
        ExitCode::SUCCESS
    }
}

/// `fuzz/libfuzzer`'s seeds, one file per input, named after what it is.
fn write_seeds(dir: &std::path::Path) -> ExitCode {
    let golden_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden");
    let mut golden = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&golden_dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "cbor") {
                let name = p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                golden.push((name, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    golden.sort();
    let mut counts = std::collections::BTreeMap::new();
    for (target, name, bytes) in holdfast_fuzz::targets::seeds(&golden) {
        let d = dir.join(target);
        let path = d.join(format!("seed-{name}"));
        if let Err(e) = std::fs::create_dir_all(&d).and_then(|_| std::fs::write(&path, &bytes)) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
        *counts.entry(target).or_insert(0) += 1;
    }
    for (target, n) in counts {
        println!("{n} seeds in {}", dir.join(target).display());
    }
    ExitCode::SUCCESS
}

fn replay_file(
    path: &std::path::Path,
    force_validate: Option<bool>,
    explain: bool,
    ops: bool,
) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let (recorded, inputs) = match holdfast_fuzz::read_session(&text) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let validate = force_validate.or(recorded).unwrap_or(true);
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        holdfast_fuzz::BACKTRACES.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    println!(
        "replaying {} inputs from {} with validation {}",
        inputs.len(),
        path.display(),
        if validate { "ON" } else { "OFF" }
    );
    if explain {
        for (i, frames) in inputs.iter().enumerate() {
            println!("input {i}:");
            for f in frames {
                println!("  {}", holdfast_fuzz::describe_frame(f));
                if ops {
                    for l in holdfast_fuzz::describe_ops(f) {
                        println!("    {l}");
                    }
                }
            }
        }
    }
    let mut any = false;
    for r in holdfast_fuzz::replay(&inputs, validate) {
        for p in &r.panics {
            any = true;
            let known = KNOWN_PANICS
                .iter()
                .find(|(_, l)| *l == p.location)
                .map_or(String::new(), |(n, _)| format!(" [known: {n}]"));
            println!(
                "input {}: panic at {}{known}: {}{}",
                r.input,
                p.location,
                p.message.lines().next().unwrap_or(""),
                if r.unwound {
                    " (not caught by the core)"
                } else {
                    ""
                }
            );
            if let Some(bt) = &p.backtrace {
                // The frames between the panic machinery and the test harness.
                for l in bt.lines().filter(|l| {
                    l.contains("holdfast") || l.contains("automerge") || l.contains("hexane")
                }) {
                    println!("    {}", l.trim());
                }
            }
        }
        if r.ms > 100.0 || r.input + 1 == inputs.len() {
            println!("input {}: {:.2} ms", r.input, r.ms);
        }
    }
    if any {
        ExitCode::from(1)
    } else {
        println!("no panic");
        ExitCode::SUCCESS
    }
}
