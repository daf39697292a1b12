//! A node's effects: frames onto the network, loads and commits onto its
//! storage, its timer onto the clock, events to the invariant checks.

use holdfast_core::repo::*;
use rand::RngExt;

use super::{Fail, Job, World};

impl World {
    /// Drain a node's effects, checking the durability invariants on each.
    pub(super) fn pump(&mut self, n: usize) -> Result<(), Fail> {
        loop {
            let Some(repo) = self.nodes[n].repo.as_mut() else {
                return Ok(());
            };
            let Some(effect) = repo.poll_effect() else {
                break;
            };
            match effect {
                Effect::Send { conn, frame } => {
                    self.check_frame(n, &frame)?;
                    self.send_frame(n, conn, frame);
                }
                Effect::Close { conn } => {
                    if let Some((l, _)) = self.link_of(n, conn) {
                        self.cut(l);
                    }
                }
                Effect::Load { task, prefix } => {
                    let at = self.now + self.rng.random_range(1..30);
                    let incarnation = self.nodes[n].incarnation;
                    self.schedule(
                        at,
                        Job::Storage {
                            node: n,
                            incarnation,
                            task,
                            load: Some(prefix),
                        },
                    );
                }
                Effect::Commit { task, commit } => {
                    self.stats.commits += 1;
                    let node = &mut self.nodes[n];
                    check!(
                        node.storage.in_flight.is_none(),
                        "{}: two commits in flight",
                        node.name
                    );
                    node.storage.in_flight = Some((task, commit));
                    let at = self.now + self.rng.random_range(1..40);
                    let incarnation = self.nodes[n].incarnation;
                    self.schedule(
                        at,
                        Job::Storage {
                            node: n,
                            incarnation,
                            task,
                            load: None,
                        },
                    );
                }
                Effect::Event(e) => self.check_event(n, e)?,
            }
        }
        self.arm_timer(n);
        Ok(())
    }

    fn arm_timer(&mut self, n: usize) {
        let deadline = self.nodes[n].repo.as_ref().and_then(|r| r.poll_timeout());
        if let Some(t) = deadline.filter(|t| Some(t.0) != self.nodes[n].timer_armed) {
            self.nodes[n].timer_armed = Some(t.0);
            let incarnation = self.nodes[n].incarnation;
            self.schedule(
                t.0.max(self.now),
                Job::Timer {
                    node: n,
                    incarnation,
                },
            );
        }
    }
}
