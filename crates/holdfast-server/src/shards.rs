//! Several core repos in one server (`--shards N`): documents are split
//! among them by id, so that each shard's automerge work, group commit and
//! storage reads run on a core of their own.
//!
//! Invariants:
//! - A document lives in exactly one shard ([`Shards::of_doc`]): every
//!   message about it (`sync`, `request`, `doc-unavailable`, `ephemeral`,
//!   `remote-heads-changed`) goes there, and so does every hint about it
//!   from other nodes. No document is held twice in one process, and no
//!   shard needs another's commits.
//! - Every shard knows every connection: each is told of its opening and
//!   closing, and each handles its `join` (so each has the peer's id and
//!   access, and answers with the same peer id: the shards share one
//!   [`holdfast_core::repo::RepoConfig`] identity). Connection-level
//!   frames go to the connection's home shard first ([`Shards::home`]);
//!   only if that shard kept the connection open do the others get a copy,
//!   marked quiet: the one frame a quiet `join` produces (the `peer`
//!   reply, already sent by the home shard) is dropped.
//! - A connection's frames are handled one at a time across all shards
//!   (its reader waits for every copy), so a shard never sees a `sync`
//!   before the `join` that precedes it on the socket.
//!
//! Per-connection limits (documents per connection, ephemeral rates,
//! documents brought into memory per window) are counted by each shard on
//! its own: with N shards a connection may use up to N times each.

use std::sync::Arc;

use holdfast_core::id::DocumentId;
use holdfast_core::repo::ConnId;
use holdfast_core::wire::{self, DecodeLimits, Message};
use tokio::sync::mpsc::UnboundedSender;

use crate::driver::Input;

/// Which of `shards` holds document `id` (ids are random: their first
/// bytes spread evenly).
pub fn shard_of(id: &DocumentId, shards: usize) -> usize {
    let b = id.0;
    let n = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    (n % shards.max(1) as u64) as usize
}

/// The input channels of the server's shards (at least one).
#[derive(Clone)]
pub struct Shards {
    txs: Arc<[UnboundedSender<Input>]>,
}

/// Where a frame goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// To this shard only: the frame is about one of its documents.
    Doc(usize),
    /// To the connection's home shard, then (if it kept the connection) to
    /// every other as a quiet copy.
    Conn,
}

impl Shards {
    pub fn new(txs: Vec<UnboundedSender<Input>>) -> Self {
        assert!(!txs.is_empty(), "a server has at least one shard");
        Self { txs: txs.into() }
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The shard holding document `id` ([`shard_of`]).
    pub fn of_doc(&self, id: &DocumentId) -> usize {
        shard_of(id, self.len())
    }

    /// The shard that answers `conn`'s connection-level frames.
    pub fn home(&self, conn: ConnId) -> usize {
        (conn.0 % self.len() as u64) as usize
    }

    /// Where `frame` goes. Decoded here only to find its document: a frame
    /// that does not decode goes to the home shard, which refuses it.
    pub fn route(&self, frame: &[u8], limits: &DecodeLimits) -> Route {
        if self.len() == 1 {
            return Route::Doc(0);
        }
        match wire::decode(frame, limits) {
            Ok(
                Message::Sync { document_id, .. }
                | Message::DocUnavailable { document_id, .. }
                | Message::Ephemeral { document_id, .. }
                | Message::RemoteHeadsChanged { document_id, .. },
            ) => Route::Doc(self.of_doc(&document_id)),
            _ => Route::Conn,
        }
    }

    /// Send `input` to shard `i`; false if that shard has stopped.
    pub fn send(&self, i: usize, input: Input) -> bool {
        self.txs[i].send(input).is_ok()
    }

    /// Send to every shard what `make` builds for it.
    pub fn send_all(&self, mut make: impl FnMut(usize) -> Input) -> bool {
        let mut ok = true;
        for (i, tx) in self.txs.iter().enumerate() {
            ok &= tx.send(make(i)).is_ok();
        }
        ok
    }

    /// Every shard's task still runs.
    pub fn running(&self) -> bool {
        self.txs.iter().all(|tx| !tx.is_closed())
    }
}
