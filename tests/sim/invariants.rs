//! The invariant checks: nothing is reported, shipped or confirmed before it
//! is durable, and nothing reported is lost.

use automerge::sync;
use automerge::{Automerge, ChangeHash};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::wire::{self, DecodeLimits};

use super::{Fail, World};

impl World {
    /// Heads must be in the node's durable image; record them as reported.
    fn check_durable(
        &mut self,
        n: usize,
        doc: DocumentId,
        heads: &[ChangeHash],
        what: &str,
    ) -> Result<(), Fail> {
        let name = self.nodes[n].name.clone();
        let image = self.nodes[n].image(&doc);
        for h in heads {
            check!(
                image.get_change_meta_by_hash(h).is_some(),
                "{name} reported {h} of {doc} in {what} before it was durable"
            );
        }
        self.nodes[n]
            .reported
            .entry(doc)
            .or_default()
            .extend(heads.iter().copied());
        Ok(())
    }

    pub(super) fn check_frame(&mut self, n: usize, frame: &[u8]) -> Result<(), Fail> {
        let msg = wire::decode(frame, &DecodeLimits::default())
            .map_err(|e| format!("core sent an undecodable frame: {e}"))?;
        if let wire::Message::Changed { upto, docs, .. } = &msg {
            // A list never names heads that are not on the sender's disk.
            let listed = holdfast_core::collection::decode_changed(docs)
                .map_err(|e| format!("core sent a bad holdfast-changed: {e}"))?;
            self.stats.listed += listed.len() as u64;
            if std::env::var("HOLDFAST_SEED").is_ok() {
                let line = format!(
                    "{} sends holdfast-changed upto {upto}: {} listed",
                    self.nodes[n].name,
                    listed.len()
                );
                self.log(line);
            }
            for (digest, heads) in listed {
                // The sender's stored documents (a document can be on disk
                // that its creator never reported, if it crashed first).
                let named = |d: &DocumentId| holdfast_core::collection::digest(d) == digest;
                let doc = self.docs.iter().copied().find(named).or_else(|| {
                    let image = &self.nodes[n].storage.image;
                    let mut ids: Vec<DocumentId> = image
                        .keys()
                        .filter_map(|k| k.0.first()?.parse::<DocumentId>().ok())
                        .collect();
                    ids.dedup();
                    ids.into_iter().find(named)
                });
                check!(
                    doc.is_some(),
                    "a holdfast-changed list names a document not in the sender's storage"
                );
                let doc = doc.expect("checked");
                self.check_durable(n, doc, &heads, "a holdfast-changed list")?;
            }
        }
        if let wire::Message::Resume { since, .. } = &msg {
            self.stats.resumes += 1;
            if std::env::var("HOLDFAST_SEED").is_ok() {
                let line = format!(
                    "{} sends holdfast-resume since {since:?}",
                    self.nodes[n].name
                );
                self.log(line);
            }
        }
        if let wire::Message::Sync {
            document_id, data, ..
        } = msg
        {
            let sm = sync::Message::decode(&data)
                .map_err(|e| format!("core sent a bad sync message: {e}"))?;
            self.check_durable(n, document_id, &sm.heads, "a sync message's heads")?;
            if std::env::var("HOLDFAST_SEED").is_ok() {
                let line = format!(
                    "{} sends sync {document_id}: heads {} need {} have {} changes {} flags {:?}",
                    self.nodes[n].name,
                    sm.heads.len(),
                    sm.need.len(),
                    sm.have.len(),
                    sm.changes.len(),
                    sm.flags
                );
                self.log(line);
            }
            // The changes it carries must be durable too.
            let mut carried = Automerge::new();
            let bytes: Vec<u8> = sm.changes.iter().flatten().copied().collect();
            if !bytes.is_empty() && carried.load_incremental(&bytes).is_ok() {
                let hashes: Vec<ChangeHash> =
                    carried.get_changes(&[]).iter().map(|c| c.hash()).collect();
                let name = self.nodes[n].name.clone();
                let image = self.nodes[n].image(&document_id);
                for h in hashes {
                    check!(
                        image.get_change_meta_by_hash(&h).is_some(),
                        "{name} shipped change {h} before it was durable"
                    );
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_event(&mut self, n: usize, e: Event) -> Result<(), Fail> {
        match e {
            Event::ChangeDurable { change, doc, heads } => {
                self.stats.durable += 1;
                let node = &mut self.nodes[n];
                check!(
                    node.outstanding.remove(&change),
                    "{} reported {change:?} twice or unknown",
                    node.name
                );
                if let Some(created) = node.creating.remove(&change) {
                    self.docs.push(created);
                }
                self.check_durable(n, doc, &heads, "ChangeDurable")?;
            }
            Event::ChangeFailed { change, doc, .. } => {
                self.stats.failed += 1;
                let node = &mut self.nodes[n];
                check!(
                    node.outstanding.remove(&change),
                    "{} failed {change:?} twice or unknown",
                    node.name
                );
                node.creating.remove(&change);
                let repo = node.repo.as_ref().expect("up");
                let (w, d) = (
                    repo.doc(&doc).map(|d| d.get_heads()),
                    repo.durable_doc(&doc).map(|d| d.get_heads()),
                );
                check!(w == d, "{}: after a failed commit the working doc {doc} is not back at its durable state", node.name);
            }
            Event::DocChanged { doc, after, .. } => {
                self.check_durable(n, doc, &after, "a change event")?
            }
            Event::FindReady { doc, .. } => {
                self.nodes[n].open.insert(doc);
                self.check_reload(n, doc)?;
            }
            Event::FindFailed { doc, error, .. } => {
                self.log(format!(
                    "{} find {doc} failed: {error:?}",
                    self.nodes[n].name
                ));
            }
            Event::SyncStatus {
                doc,
                conn,
                covered: false,
                ..
            } => {
                self.nodes[n].covered.insert((doc, conn), false);
            }
            Event::SyncStatus {
                doc,
                conn,
                covered: true,
                heads,
            } => {
                self.nodes[n].covered.insert((doc, conn), true);
                // "On the server" must mean durable on the server.
                if let Some((l, true)) = self.link_of(n, conn) {
                    let server = self.links[l].server;
                    let name = self.nodes[n].name.clone();
                    let image = self.nodes[server].image(&doc);
                    for h in &heads {
                        check!(
                            image.get_change_meta_by_hash(h).is_some(),
                            "{name} was told {h} of {doc} is on the server, but the server's disk lacks it"
                        );
                    }
                    self.stats.synced += 1;
                }
            }
            Event::StorageError { docs, .. } if std::env::var("HOLDFAST_SEED").is_ok() => {
                let line = format!("{} commit failed for {docs:?}", self.nodes[n].name);
                self.log(line);
            }
            Event::StorageRepaired { doc, .. } => {
                return Err(format!(
                    "{}: unexpected repair of {doc} (sim storage never corrupts)",
                    self.nodes[n].name
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// After a (re)load, everything this node ever reported must be back.
    fn check_reload(&mut self, n: usize, doc: DocumentId) -> Result<(), Fail> {
        let node = &self.nodes[n];
        let Some(reported) = node.reported.get(&doc) else {
            return Ok(());
        };
        let repo = node.repo.as_ref().expect("up");
        let am = repo.doc(&doc).ok_or("found doc not readable")?;
        for h in reported {
            check!(
                am.get_change_meta_by_hash(h).is_some(),
                "{} lost reported change {h} of {doc} after reload",
                node.name
            );
        }
        Ok(())
    }
}
