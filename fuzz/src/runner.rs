//! The fuzz loop: [`run`] generates inputs ([`crate::mutate::Gen`]), plays
//! each on a repo that is made fresh every `reset_every` inputs, records
//! panics and times (CPU time per input, and the longest wall time), and
//! writes findings.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::corpus::Corpus;
use crate::driver::Driver;
use crate::explain::{data_bytes, describe_frame};
use crate::findings::write_session;
use crate::mutate;
use crate::options::Options;
use crate::panics::{captured, install_panic_hook};
use crate::play::play;
use crate::report::{one_line, peak_rss_kb, Histogram, Report, Site};
use crate::watchdog::Watchdog;
use crate::{Input, KNOWN_PANICS};

/// Slow inputs written to the findings directory, at most (the slowest is
/// written at the end in any case).
const SLOW_WRITTEN: u64 = 10;

/// Slow inputs described on stderr, at most.
const SLOW_REPORTED: u64 = 20;

/// At most this many finding files per panic location.
const FINDINGS_PER_SITE: u64 = 5;

/// The calling thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant
    // every Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

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
        let cpu = thread_cpu();
        let (done, seen) = captured(|| play(&mut driver, frames, &mut report.tally));
        // Inputs are timed in the thread's CPU time: a process elsewhere on
        // the machine can make the wall time of any input long.
        let dt = thread_cpu().saturating_sub(cpu);
        report.max_wall_ms = report.max_wall_ms.max(t.elapsed().as_secs_f64() * 1000.0);
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
                "[{secs:8.1} s] inputs {input} ({:.0}/s), max {:.2} ms CPU ({:.2} ms wall), panics {} ({} locations), rss {:.0} MiB",
                input as f64 / secs,
                hist.max.as_secs_f64() * 1000.0,
                report.max_wall_ms,
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
