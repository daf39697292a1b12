//! The clock: run the scheduled jobs in time order.

use std::cmp::Reverse;

use automerge::sync;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits};

use super::{Fail, Job, World};

impl World {
    /// Run the next scheduled job, if any.
    pub fn step(&mut self) -> Result<bool, Fail> {
        let Some(Reverse((at, _, job))) = self.jobs.pop() else {
            return Ok(false);
        };
        self.now = self.now.max(at);
        let now = Timestamp(self.now);
        match job {
            Job::Deliver {
                link,
                to_server,
                epoch,
            } => {
                if self.link_epoch[link] != epoch || !self.links[link].up {
                    return Ok(true);
                }
                if self.links[link].stalled {
                    // A partition: the frame waits until the link heals.
                    self.schedule(
                        self.now + 100,
                        Job::Deliver {
                            link,
                            to_server,
                            epoch,
                        },
                    );
                    return Ok(true);
                }
                let l = &mut self.links[link];
                let q = if to_server {
                    &mut l.to_server
                } else {
                    &mut l.to_client
                };
                let Some((_, frame)) = q.pop_front() else {
                    return Ok(true);
                };
                let (node, conn) = if to_server {
                    (l.server, l.server_conn)
                } else {
                    (l.client, l.client_conn)
                };
                if std::env::var("HOLDFAST_SEED").is_ok() {
                    if let Ok(wire::Message::Sync {
                        document_id, data, ..
                    }) = wire::decode(&frame, &DecodeLimits::default())
                    {
                        if let Ok(sm) = sync::Message::decode(&data) {
                            let line =
                                format!(
                                "{} receives sync {document_id} on conn {}: heads {} changes {}",
                                self.nodes[node].name, conn.0, sm.heads.len(), sm.changes.len()
                            );
                            self.log(line);
                        }
                    }
                }
                if let Some(repo) = self.nodes[node].repo.as_mut() {
                    repo.frame(now, conn, &frame);
                    self.pump(node)?;
                }
            }
            Job::Storage {
                node,
                incarnation,
                task,
                load,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].repo.is_none() {
                    return Ok(true);
                }
                match load {
                    Some(prefix) => {
                        let st = &self.nodes[node].storage;
                        let recs: Vec<_> = st
                            .image
                            .range(prefix.clone()..)
                            .take_while(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        self.nodes[node]
                            .repo
                            .as_mut()
                            .expect("up")
                            .load_done(now, task, Ok(recs));
                    }
                    None => {
                        let nd = &mut self.nodes[node];
                        let (t, commit) = nd
                            .storage
                            .in_flight
                            .take()
                            .ok_or("commit completion without a commit")?;
                        check!(t == task, "commit completion for the wrong task");
                        let result = match nd.storage.fail_next.take() {
                            Some(err) => {
                                self.stats.commit_failures += 1;
                                Err(err)
                            }
                            None => {
                                nd.storage.apply(commit);
                                nd.image_cache.clear();
                                Ok(())
                            }
                        };
                        nd.repo.as_mut().expect("up").commit_done(now, task, result);
                    }
                }
                self.pump(node)?;
            }
            Job::Timer { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation {
                    self.nodes[node].timer_armed = None;
                    if let Some(r) = self.nodes[node].repo.as_mut() {
                        r.handle_timeout(now);
                        self.pump(node)?;
                    }
                }
            }
            Job::Restart { node } => self.restart(node)?,
            Job::Reconnect { link } => self.connect(link)?,
            Job::CloseNotify {
                node,
                conn,
                incarnation,
            } => {
                if self.nodes[node].incarnation == incarnation {
                    if let Some(r) = self.nodes[node].repo.as_mut() {
                        r.disconnected(now, conn);
                        self.pump(node)?;
                    }
                }
            }
        }
        Ok(true)
    }
}
