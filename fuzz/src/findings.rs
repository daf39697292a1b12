//! Finding files: writing the inputs played on a repo since it was made
//! fresh ([`write_session`]), reading them back ([`read_session`]), and
//! replaying them on a fresh repo ([`replay`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::corpus::Corpus;
use crate::driver::Driver;
use crate::panics::{captured, install_panic_hook, PanicSeen};
use crate::play::{play, Tally};
use crate::Input;

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
