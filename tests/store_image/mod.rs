//! A storage image that applies commits as storage would (deletes, prefix
//! deletes, then puts), for tests that drive a repo's effects by hand
//! (`mod store_image;`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use holdfast_core::id::DocumentId;
use holdfast_core::storage::{Commit, StorageKey};

#[derive(Default)]
pub struct Image(pub BTreeMap<StorageKey, Vec<u8>>);

impl Image {
    pub fn apply(&mut self, c: &Commit) {
        for k in &c.deletes {
            self.0.remove(k);
        }
        for prefix in &c.delete_prefixes {
            self.0.retain(|k, _| !k.starts_with(prefix));
        }
        for (k, v) in &c.puts {
            self.0.insert(k.clone(), v.clone());
        }
    }

    /// The records under `prefix`, in key order (a storage read).
    pub fn range(&self, prefix: &StorageKey) -> Vec<(StorageKey, Vec<u8>)> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Document `doc`'s records.
    pub fn doc(&self, doc: &DocumentId) -> Vec<(StorageKey, Vec<u8>)> {
        self.range(&StorageKey::doc_prefix(doc))
    }
}
