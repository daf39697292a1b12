//! Sync states kept across a disconnect, per peer id, so that a peer that
//! comes back (automerge-repo reconnects with the same peer id) and has no
//! news gets no answer: automerge answers a message only when it carries
//! news or when the state has never answered, and a fresh state never has.
//! automerge-repo's server keeps its states the same way.
//!
//! Invariants:
//! - A parked state forgets what it sent in the session that ended
//!   (`sent_hashes`, `in_flight`): frames in flight when the connection
//!   died may never have arrived, so anything may have to be sent again.
//! - Bounded: at most [`MAX_PEERS`] peers and [`MAX_STATES`] states in all;
//!   the peer parked longest ago goes first. Losing a parked state costs one
//!   answer, never data.

use automerge::sync;

use crate::id::DocumentId;
use crate::vecmap::VecMap;
use crate::wire::PeerId;

/// One peer's states, one per document (a list: parking and restoring
/// only walk it; a server may park tens of thousands for one peer).
pub(super) type States = Vec<(DocumentId, sync::State)>;

pub(super) const MAX_PEERS: usize = 1_000;
pub(super) const MAX_STATES: usize = 100_000;

#[derive(Default)]
pub(super) struct Parked {
    /// Per peer: when it was parked (a counter) and its states.
    by_peer: VecMap<PeerId, (u64, States)>,
    states: usize,
    clock: u64,
}

impl Parked {
    pub fn park(&mut self, peer: PeerId, states: States) {
        if states.is_empty() {
            return;
        }
        self.take(&peer);
        let states: States = states
            .into_iter()
            .map(|(id, mut s)| {
                s.sent_hashes.clear();
                s.in_flight = false;
                (id, s)
            })
            .collect();
        self.clock += 1;
        self.states += states.len();
        self.by_peer.insert(peer, (self.clock, states));
        while self.by_peer.len() > MAX_PEERS || self.states > MAX_STATES {
            let Some(oldest) = self
                .by_peer
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            self.take(&oldest);
        }
    }

    /// The states parked for `peer`, if any (they leave the parking).
    pub fn take(&mut self, peer: &str) -> States {
        match self.by_peer.remove(peer) {
            Some((_, states)) => {
                self.states -= states.len();
                states
            }
            None => States::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_is_bounded_and_forgets_what_was_in_flight() {
        let mut p = Parked::default();
        let mut s = sync::State::new();
        s.in_flight = true;
        s.sent_hashes.insert(automerge::ChangeHash([1; 32]));
        p.park("a".into(), vec![(DocumentId([1; 16]), s)]);
        let back = p.take("a");
        let (_, s) = back
            .iter()
            .find(|(id, _)| *id == DocumentId([1; 16]))
            .expect("parked");
        assert!(!s.in_flight && s.sent_hashes.is_empty());
        assert!(p.take("a").is_empty());
        for i in 0..MAX_PEERS + 5 {
            p.park(
                format!("p{i}"),
                vec![(DocumentId([1; 16]), sync::State::new())],
            );
        }
        assert_eq!(p.by_peer.len(), MAX_PEERS);
        assert!(p.take("p0").is_empty(), "the oldest went first");
        assert_eq!(p.take(&format!("p{}", MAX_PEERS + 4)).len(), 1);
    }
}
