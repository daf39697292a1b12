//! Links and nodes going down and coming back up.

use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use rand::RngExt;

use super::{new_repo, Fail, Job, World};

impl World {
    pub fn connect(&mut self, l: usize) -> Result<(), Fail> {
        let (c, s) = (self.links[l].client, self.links[l].server);
        if self.links[l].up || self.nodes[c].repo.is_none() || self.nodes[s].repo.is_none() {
            return Ok(());
        }
        let cc = ConnId(self.next_conn);
        let sc = ConnId(self.next_conn + 1);
        self.next_conn += 2;
        self.link_epoch[l] += 1;
        let link = &mut self.links[l];
        link.client_conn = cc;
        link.server_conn = sc;
        link.up = true;
        link.to_client.clear();
        link.to_server.clear();
        self.log(format!("link {l} up"));
        let now = Timestamp(self.now);
        self.nodes[s]
            .repo
            .as_mut()
            .expect("up")
            .connected(now, sc, Direction::Incoming);
        self.pump(s)?;
        self.nodes[c]
            .repo
            .as_mut()
            .expect("up")
            .connected(now, cc, Direction::Outgoing);
        self.pump(c)
    }

    /// Crash a node: memory is gone; the in-flight commit may or may not have
    /// reached the disk, as a whole. Every reported head must be in what is left.
    pub fn crash(&mut self, n: usize) -> Result<(), Fail> {
        if self.nodes[n].repo.is_none() {
            return Ok(());
        }
        self.stats.crashes += 1;
        let landed = self.rng.random_bool(0.5);
        let node = &mut self.nodes[n];
        node.repo = None;
        node.incarnation += 1;
        node.outstanding.clear();
        node.creating.clear();
        node.timer_armed = None;
        node.storage.fail_next = None;
        if let Some((_, commit)) = node.storage.in_flight.take() {
            if landed {
                node.storage.apply(commit);
            }
        }
        node.image_cache.clear();
        let name = node.name.clone();
        self.log(format!(
            "{name} crashed (in-flight commit landed: {landed})"
        ));
        let docs: Vec<DocumentId> = self.nodes[n].reported.keys().copied().collect();
        for doc in docs {
            let reported = self.nodes[n].reported[&doc].clone();
            let image = self.nodes[n].image(&doc);
            for h in &reported {
                check!(
                    image.get_change_meta_by_hash(h).is_some(),
                    "{name} lost reported change {h} of {doc} in a crash"
                );
            }
        }
        for l in 0..self.links.len() {
            if self.links[l].client == n || self.links[l].server == n {
                self.cut(l);
            }
        }
        let at = self.now + self.rng.random_range(50..2_000);
        self.schedule(at, Job::Restart { node: n });
        Ok(())
    }

    pub(super) fn restart(&mut self, n: usize) -> Result<(), Fail> {
        if self.nodes[n].repo.is_some() {
            return Ok(());
        }
        let name = self.nodes[n].name.clone();
        let server = self.nodes[n].server;
        let repo = new_repo(&mut self.rng, &name, server, &self.nodes[n].storage);
        self.nodes[n].repo = Some(repo);
        self.log(format!("{name} restarted"));
        let open: Vec<DocumentId> = self.nodes[n].open.iter().copied().collect();
        self.nodes[n].open.clear();
        let now = Timestamp(self.now);
        for doc in open {
            // The application opens some of what it had open; the rest stays
            // in storage, kept up to date by the collection exchange alone.
            if self.rng.random_bool(0.5) {
                self.nodes[n].repo.as_mut().expect("up").find(now, doc);
            } else {
                self.log(format!("{name} leaves {doc} closed"));
            }
        }
        self.pump(n)?;
        for l in 0..self.links.len() {
            if self.links[l].client == n || self.links[l].server == n {
                self.connect(l)?;
            }
        }
        Ok(())
    }
}
