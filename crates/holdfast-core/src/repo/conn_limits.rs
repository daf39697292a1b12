//! What one connection may make the repo hold or relay
//! ([`ConnLimits`]): documents per connection, the ephemeral relay's rate,
//! senders and de-duplication memory, one connection per peer id.
//!
//! Invariants:
//! - A peer's ephemeral message is relayed only if it comes from the peer
//!   it names (on connections peers opened to us), about a document that
//!   peer syncs with us, within its per-second budget. So a client can
//!   neither speak for another peer (nor poison its de-duplication count),
//!   nor reach the subscribers of a document it does not sync.
//! - `ephemeral_seen` holds at most `EPHEMERAL_SESSIONS_PER_PEER` sessions
//!   per peer, and none of a peer that left.

use super::types::*;
use super::Repo;
use crate::id::DocumentId;
use crate::wire::untrusted;

/// `new_docs_per_sec` is enforced per window of this many milliseconds
/// (a tenth of the rate each): a client pacing at the limit sends steadily
/// rather than a second's worth at once and then nothing.
const PACING_WINDOW_MS: u64 = 100;

/// How many ephemeral sessions of one peer the relay remembers (for
/// de-duplication); a new one beyond this replaces the one with the lowest
/// id.
const EPHEMERAL_SESSIONS_PER_PEER: usize = 8;

impl Repo {
    /// Count a refusal under `reason` (logged the first few times).
    pub(super) fn count_refusal(&mut self, conn: ConnId, reason: &'static str) {
        let n = self.refused.get_or_default(reason);
        *n += 1;
        if *n <= 10 || (*n).is_multiple_of(1000) {
            tracing::warn!(
                conn = conn.0,
                reason,
                total = *n,
                "refused a peer's message"
            );
        }
    }

    /// Record that `conn` sends messages about `doc`; false (and the
    /// connection closed) if that is one document more than it may sync.
    pub(super) fn note_conn_doc(&mut self, conn: ConnId, doc: DocumentId) -> bool {
        let max = self.cfg.conn_limits.max_docs_per_conn;
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.docs.contains(&doc) {
            return true;
        }
        if max > 0 && c.docs.len() >= max {
            self.count_refusal(conn, "max_docs_per_conn");
            self.protocol_error(conn, ProtocolError::TooManyDocs { max });
            return false;
        }
        c.docs.insert(doc);
        true
    }

    /// A message from `conn` brought a document into memory (a load, or a
    /// new empty document): count it against `new_docs_per_sec`.
    pub(super) fn note_doc_brought_up(&mut self, conn: ConnId) {
        let window = self.now.0 / PACING_WINDOW_MS;
        let budget = self.pacing_budget();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.new_window != window {
            (c.new_window, c.new_docs) = (window, 0);
        }
        c.new_docs += 1;
        if c.new_docs == budget {
            self.count_refusal(conn, "new_docs_per_sec_paused");
        }
    }

    /// What one pacing window allows (0: no limit).
    fn pacing_budget(&self) -> u32 {
        let per_sec = self.cfg.conn_limits.new_docs_per_sec;
        let windows = (1000 / PACING_WINDOW_MS) as u32;
        per_sec.div_ceil(windows)
    }

    /// When to read `conn`'s next frame, if not at once: it brought this
    /// window's share of [`ConnLimits::new_docs_per_sec`] documents into
    /// memory, so the caller reads nothing more from it before the next
    /// window (its socket pushes back on the client).
    pub fn read_paused_until(&self, conn: ConnId) -> Option<Timestamp> {
        let budget = self.pacing_budget();
        let c = self.conns.get(&conn)?;
        let window = self.now.0 / PACING_WINDOW_MS;
        (budget > 0 && c.new_window == window && c.new_docs >= budget)
            .then_some(Timestamp((window + 1) * PACING_WINDOW_MS))
    }

    /// Whether an ephemeral message from `conn` may be relayed.
    pub(super) fn admit_ephemeral(
        &mut self,
        conn: ConnId,
        sender: &str,
        doc: DocumentId,
        bytes: usize,
    ) -> bool {
        let limits = self.cfg.conn_limits.clone();
        let second = self.now.0 / 1000;
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let own = c.peer.as_ref().map(|p| p.0.as_str()).unwrap_or("");
        if c.dir == Direction::Incoming && sender != own {
            let (expected, got) = (own.to_string(), sender.to_string());
            self.count_refusal(conn, "ephemeral_spoofed_sender");
            self.protocol_error(conn, ProtocolError::SpoofedSender { expected, got });
            return false;
        }
        if c.eph_second != second {
            (c.eph_second, c.eph_msgs, c.eph_bytes) = (second, 0, 0);
        }
        c.eph_msgs = c.eph_msgs.saturating_add(1);
        c.eph_bytes = c.eph_bytes.saturating_add(bytes);
        let over = (limits.ephemeral_per_sec > 0 && c.eph_msgs > limits.ephemeral_per_sec)
            || (limits.ephemeral_bytes_per_sec > 0 && c.eph_bytes > limits.ephemeral_bytes_per_sec);
        if over {
            self.count_refusal(conn, "ephemeral_rate");
            return false;
        }
        // Only peers that sync the document (on a server: subscribed to
        // it) may talk to those who do.
        if c.dir == Direction::Incoming && !self.syncs(conn, doc) {
            self.count_refusal(conn, "ephemeral_not_syncing");
            return false;
        }
        true
    }

    pub(super) fn remember_ephemeral_session(&mut self, key: (String, String), count: u64) {
        if !self.ephemeral_seen.contains_key(&key) {
            let of_peer: Vec<(String, String)> = self
                .ephemeral_seen
                .range((key.0.clone(), String::new())..)
                .take_while(|((p, _), _)| *p == key.0)
                .map(|(k, _)| k.clone())
                .collect();
            if of_peer.len() >= EPHEMERAL_SESSIONS_PER_PEER {
                self.ephemeral_seen.remove(&of_peer[0]);
            }
        }
        self.ephemeral_seen.insert(key, count);
    }

    /// A peer left: forget its sessions, unless it is still connected on
    /// another connection.
    pub(super) fn forget_ephemeral_sessions(&mut self, peer: &str) {
        let still = self
            .conns
            .values()
            .any(|c| c.peer.as_ref().is_some_and(|p| p.0 == peer));
        if !still {
            self.ephemeral_seen.retain(|(p, _), _| p != peer);
        }
    }

    /// A peer joined on `conn`: an older connection of the same peer id
    /// (a client that reconnected before its old socket was seen to close)
    /// is closed, so each peer id has one connection.
    pub(super) fn replace_same_peer(&mut self, conn: ConnId, peer: &str) {
        let old: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(c, k)| **c != conn && k.peer.as_ref().is_some_and(|p| p.0 == peer))
            .map(|(c, _)| *c)
            .collect();
        for c in old {
            tracing::info!(conn = c.0, peer = %untrusted(peer), "replaced by a new connection of the same peer");
            self.protocol_error(c, ProtocolError::Replaced);
        }
    }
}
