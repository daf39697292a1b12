//! Playing an input: the `join` handshake on a new connection, then its
//! frames, each counted by outcome in a [`Tally`].

use std::collections::BTreeMap;

use crate::driver::Driver;

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
