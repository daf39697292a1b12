//! The repo's documents, with the set of those that may need a commit.
//!
//! Invariant: every document whose [`Doc::needs_commit`] is true is in
//! `touched`. Every way to reach a document mutably (`get_mut`, `insert`)
//! marks it, so a document can only start needing a
//! commit while marked; [`Docs::take_touched`] hands the set to the commit
//! builder, which looks at those documents and nothing else. Without it every
//! pump of the driver scanned all open documents (quadratic when a thousand
//! documents load one after the other).

use std::collections::btree_map::Values;
use std::collections::{BTreeMap, BTreeSet};

use super::doc::Doc;
use crate::id::DocumentId;

#[derive(Default)]
pub(super) struct Docs {
    map: BTreeMap<DocumentId, Doc>,
    touched: BTreeSet<DocumentId>,
}

impl Docs {
    pub fn get(&self, id: &DocumentId) -> Option<&Doc> {
        self.map.get(id)
    }

    pub fn get_mut(&mut self, id: &DocumentId) -> Option<&mut Doc> {
        let doc = self.map.get_mut(id)?;
        self.touched.insert(*id);
        Some(doc)
    }

    /// `get_mut` without marking: for the commit builder only, which marks
    /// what it leaves needing a commit.
    pub fn get_mut_unmarked(&mut self, id: &DocumentId) -> Option<&mut Doc> {
        self.map.get_mut(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains_key(&self, id: &DocumentId) -> bool {
        self.map.contains_key(id)
    }

    pub fn insert(&mut self, id: DocumentId, doc: Doc) {
        self.touched.insert(id);
        self.map.insert(id, doc);
    }

    pub fn remove(&mut self, id: &DocumentId) -> Option<Doc> {
        self.touched.remove(id);
        self.map.remove(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &DocumentId> {
        self.map.keys()
    }

    pub fn values(&self) -> Values<'_, DocumentId, Doc> {
        self.map.values()
    }

    /// The marked documents (unmarking them): the only ones that may need a
    /// commit. Whoever takes them must leave none of them needing one.
    pub fn take_touched(&mut self) -> BTreeSet<DocumentId> {
        std::mem::take(&mut self.touched)
    }

    /// Whether any document needs a commit (looks at the marked ones only).
    pub fn any_needs_commit(&self) -> bool {
        self.touched
            .iter()
            .filter_map(|id| self.map.get(id))
            .any(Doc::needs_commit)
    }
}
