//! The network: WebSocket-like links between each client and the server,
//! with delays, duplicates, stalls and cuts.

use holdfast_core::repo::ConnId;
use rand::RngExt;

use super::{Job, World};

impl World {
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// The connection dies: frames in flight are lost, each side learns of
    /// it after a delay.
    pub fn cut(&mut self, l: usize) {
        if !self.links[l].up {
            return;
        }
        self.link_epoch[l] += 1;
        let link = &mut self.links[l];
        link.up = false;
        link.stalled = false;
        link.to_client.clear();
        link.to_server.clear();
        let (c, s, cc, sc) = (link.client, link.server, link.client_conn, link.server_conn);
        self.log(format!("link {l} cut"));
        for (node, conn) in [(c, cc), (s, sc)] {
            let at = self.now + self.rng.random_range(1..50);
            let incarnation = self.nodes[node].incarnation;
            self.schedule(
                at,
                Job::CloseNotify {
                    node,
                    conn,
                    incarnation,
                },
            );
        }
        let at = self.now + self.rng.random_range(100..3_000);
        self.schedule(at, Job::Reconnect { link: l });
    }

    pub(super) fn link_of(&self, node: usize, conn: ConnId) -> Option<(usize, bool)> {
        self.links.iter().enumerate().find_map(|(i, l)| {
            if !l.up {
                None
            } else if l.client == node && l.client_conn == conn {
                Some((i, true))
            } else if l.server == node && l.server_conn == conn {
                Some((i, false))
            } else {
                None
            }
        })
    }

    pub(super) fn send_frame(&mut self, node: usize, conn: ConnId, frame: Vec<u8>) {
        let Some((l, to_server)) = self.link_of(node, conn) else {
            return;
        };
        self.stats.frames += 1;
        let delay = if self.faults.network {
            self.rng.random_range(1..200)
        } else {
            5
        };
        let dup = self.faults.network && self.rng.random_bool(0.02);
        let queue = if to_server {
            &mut self.links[l].to_server
        } else {
            &mut self.links[l].to_client
        };
        let at = queue.back().map_or(0, |b| b.0).max(self.now + delay);
        queue.push_back((at, frame.clone()));
        if dup {
            queue.push_back((at, frame));
        }
        let epoch = self.link_epoch[l];
        self.schedule(
            at,
            Job::Deliver {
                link: l,
                to_server,
                epoch,
            },
        );
        if dup {
            self.schedule(
                at,
                Job::Deliver {
                    link: l,
                    to_server,
                    epoch,
                },
            );
        }
    }
}
