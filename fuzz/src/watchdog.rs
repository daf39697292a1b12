//! The hang watchdog: a thread that ends the process when one input runs
//! too long, after writing the input out (a stuck input cannot be
//! interrupted).

use std::time::{Duration, Instant};

use crate::findings::write_session;
use crate::options::Options;
use crate::Input;

/// Ends the process when one input runs too long, after writing it out.
pub(crate) struct Watchdog {
    state: std::sync::Arc<std::sync::Mutex<WatchState>>,
}

#[derive(Default)]
struct WatchState {
    armed: Option<(Instant, u64)>,
    history: Vec<Input>,
    stop: bool,
}

impl Watchdog {
    pub(crate) fn start(opts: &Options, secs: f64) -> Watchdog {
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

    pub(crate) fn arm(&self, input: u64, history: &[Input]) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the watchdog's copy of the session in step (one input at a time).
        if g.history.len() + 1 != history.len() || history.len() == 1 {
            g.history = history.to_vec();
        } else if let Some(last) = history.last() {
            g.history.push(last.clone());
        }
        g.armed = Some((Instant::now(), input));
    }

    pub(crate) fn disarm(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).armed = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
    }
}
