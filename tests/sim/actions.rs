//! The random actions of a run: local changes, creations, finds and
//! broadcasts, and the injected faults.

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ROOT};
use holdfast_core::id::DocumentId;
use holdfast_core::repo::*;
use holdfast_core::storage::StorageError;
use rand::RngExt;

use super::{Fail, World};

impl World {
    pub fn random_action(&mut self) -> Result<(), Fail> {
        let clients = self.nodes.len() - 1;
        let roll = self.rng.random_range(0..100);
        let c = self.rng.random_range(1..=clients);
        let now = Timestamp(self.now);
        match roll {
            0..=44 => self.local_change(c)?,
            45..=49 => {
                let id = DocumentId(self.rng.random());
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    let change = repo
                        .create(now, id, |tx| {
                            tx.put_object(ROOT, "text", ObjType::Text).map(|_| ())
                        })
                        .map_err(|e| format!("create failed: {e}"))?;
                    self.nodes[c].outstanding.insert(change);
                    self.nodes[c].creating.insert(change, id);
                    self.nodes[c].open.insert(id);
                    self.stats.changes += 1;
                    self.pump(c)?;
                }
            }
            50..=54 if !self.docs.is_empty() => {
                let d = self.docs[self.rng.random_range(0..self.docs.len())];
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    repo.find(now, d);
                    self.pump(c)?;
                }
            }
            55..=57 if self.faults.network => {
                let l = self.rng.random_range(0..self.links.len());
                self.cut(l);
            }
            58..=60 if self.faults.network => {
                let l = self.rng.random_range(0..self.links.len());
                let stalled = !self.links[l].stalled;
                self.links[l].stalled = stalled;
                self.log(format!("link {l} stalled: {stalled}"));
            }
            61..=62 if self.faults.crashes => {
                let n = self.rng.random_range(0..=clients);
                self.crash(n)?;
            }
            63..=66 if self.faults.commit_failures => {
                let n = self.rng.random_range(0..=clients);
                let err = match self.rng.random_range(0..3) {
                    0 => StorageError::QuotaExceeded("sim: quota".into()),
                    1 => StorageError::Aborted("sim: aborted".into()),
                    _ => StorageError::Io("sim: EIO".into()),
                };
                self.nodes[n].storage.fail_next = Some(err);
            }
            67..=69 if !self.docs.is_empty() => {
                let d = self.docs[self.rng.random_range(0..self.docs.len())];
                if let Some(repo) = self.nodes[c].repo.as_mut() {
                    let data = vec![self.rng.random::<u8>()];
                    repo.broadcast(now, d, data);
                    self.pump(c)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn local_change(&mut self, c: usize) -> Result<(), Fail> {
        let open: Vec<DocumentId> = self.nodes[c].open.iter().copied().collect();
        if open.is_empty() || self.nodes[c].repo.is_none() {
            return Ok(());
        }
        let d = open[self.rng.random_range(0..open.len())];
        let (key, val, pos) = (
            self.rng.random_range(0..5u8),
            self.rng.random::<i32>(),
            self.rng.random::<u16>(),
        );
        let now = Timestamp(self.now);
        let repo = self.nodes[c].repo.as_mut().expect("up");
        let res = repo.change(now, &d, |tx| {
            tx.put(ROOT, format!("k{key}"), val as i64)?;
            if let Some((_, text)) = tx.get(ROOT, "text")? {
                let len = tx.length(&text);
                let at = pos as usize % (len + 1);
                tx.splice_text(&text, at, 0, "x")?;
            }
            Ok::<_, automerge::AutomergeError>(())
        });
        match res {
            Ok((change, ())) => {
                self.stats.changes += 1;
                self.nodes[c].outstanding.insert(change);
                self.pump(c)
            }
            Err(ChangeError::Loading(_)) | Err(ChangeError::NotFound(_)) => Ok(()),
            Err(e) => Err(format!("change refused: {e}")),
        }
    }
}
