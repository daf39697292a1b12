//! The end of a run: heal everything and check that all replicas agree.

use automerge::ChangeHash;
use holdfast_core::repo::*;

use super::{Fail, Faults, World};

impl World {
    /// Heal everything, bring every node up, open every document everywhere,
    /// run until quiet, and check that all replicas agree.
    pub fn converge(&mut self) -> Result<(), Fail> {
        self.faults = Faults {
            crashes: false,
            commit_failures: false,
            network: false,
        };
        for n in &mut self.nodes {
            n.storage.fail_next = None;
        }
        for n in 0..self.nodes.len() {
            self.restart(n)?;
        }
        for l in 0..self.links.len() {
            self.links[l].stalled = false;
            self.connect(l)?;
        }
        self.run_quiet(200_000)?;
        self.check_stores_converged()?;
        let now = Timestamp(self.now);
        let docs = self.docs.clone();
        for c in 1..self.nodes.len() {
            for d in &docs {
                if !self.nodes[c].open.contains(d) {
                    self.nodes[c].repo.as_mut().expect("up").find(now, *d);
                }
            }
            self.pump(c)?;
        }
        self.run_quiet(200_000)?;
        for d in &docs {
            let mut seen: Option<(String, Vec<ChangeHash>, automerge::hydrate::Value)> = None;
            for n in &self.nodes {
                let repo = n.repo.as_ref().expect("up");
                let Some(am) = repo.durable_doc(d) else {
                    check!(
                        n.server,
                        "{} cannot open {d} after the network healed",
                        n.name
                    );
                    continue;
                };
                let w = repo.doc(d).expect("ready").get_heads();
                check!(
                    w == am.get_heads(),
                    "{}: {d} has non-durable changes after quiet",
                    n.name
                );
                check!(
                    !am.get_heads().is_empty(),
                    "{}: {d} is empty after the network healed",
                    n.name
                );
                let (heads, value) = (am.get_heads(), am.working().hydrate(Some(&am.get_heads())));
                match &seen {
                    None => seen = Some((n.name.clone(), heads, value)),
                    Some((other, h, v)) => {
                        check!(
                            *h == heads,
                            "{d}: {} has heads {heads:?}, {other} has {h:?}",
                            n.name
                        );
                        check!(
                            *v == value,
                            "{d}: {} and {other} have different content",
                            n.name
                        );
                    }
                }
            }
        }
        for n in &self.nodes {
            check!(
                n.outstanding.is_empty(),
                "{}: {} local changes never reported",
                n.name,
                n.outstanding.len()
            );
        }
        // Every client was told its documents are on the server
        // (`whenSynced` resolves once the run is quiet).
        for (c, node) in self.nodes.iter().enumerate().skip(1) {
            let Some(link) = self.links.iter().find(|l| l.client == c && l.up) else {
                continue;
            };
            for d in &docs {
                let told = node
                    .covered
                    .get(&(*d, link.client_conn))
                    .copied()
                    .unwrap_or(false);
                let repo = node.repo.as_ref().expect("up");
                check!(
                    told,
                    "{}: never told that {d} is on the server after the run went quiet (working {:?}, durable {:?}, server advertised {:?}, server durable {:?}) client: {} / server: {}",
                    node.name,
                    repo.doc(d).map(|x| x.get_heads()),
                    repo.durable_doc(d).map(|x| x.get_heads()),
                    repo.peer_heads(d, link.client_conn),
                    self.nodes[0].repo.as_ref().and_then(|r| r.durable_doc(d)).map(|x| x.get_heads()),
                    repo.debug_doc(d),
                    self.nodes[0].repo.as_ref().map(|r| r.debug_doc(d)).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// Every document in every client's storage, open or not, is in the
    /// server's storage with the same heads: the collection exchange alone
    /// (no `find`) brought every stored copy up to date both ways.
    fn check_stores_converged(&mut self) -> Result<(), Fail> {
        let docs = self.docs.clone();
        for d in &docs {
            let server = self.nodes[0].storage.image_doc(d).get_heads();
            for c in 1..self.nodes.len() {
                let mine = self.nodes[c].storage.image_doc(d).get_heads();
                if mine.is_empty() {
                    continue;
                }
                check!(
                    mine == server,
                    "{}: stored {d} has heads {mine:?}, the server's store {server:?} after the run went quiet (open here: {})",
                    self.nodes[c].name,
                    self.nodes[c].open.contains(d)
                );
            }
        }
        Ok(())
    }

    fn run_quiet(&mut self, max_steps: usize) -> Result<(), Fail> {
        for _ in 0..max_steps {
            if !self.step()? {
                return Ok(());
            }
        }
        Err("the run did not go quiet".into())
    }
}
