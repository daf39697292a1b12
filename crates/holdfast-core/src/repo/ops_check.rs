//! Admission's check of every operation against what it refers to.
//!
//! automerge 0.12 merges a change's operations into its op columns assuming
//! each refers to things that exist and fit: the object is there and is a
//! map (for a map key) or a sequence (for an element); the element an insert
//! follows, or an update targets, is an insert of that same object; every
//! predecessor is an operation on the same object and key. A change breaking
//! any of these trips assertions or `unwrap`s in its merge (`batch.rs`) or,
//! later, when it rebuilds changes from the columns (`collector.rs`: saving,
//! syncing). The message alone cannot show these, so each referenced
//! operation is looked up: in the change itself (earlier rows), in the
//! changes of the batch admitted before it, or in the document, by decoding
//! the change that made it (`working.hash_for_opid`, then
//! `get_change_by_hash`).
//!
//! Decoded changes stay in the document's [`OpCache`], compactly (actors and
//! map keys interned; about 30 bytes per operation), so that typing into a
//! large document decodes its big first change once, not per keystroke. The
//! cache holds at most [`MAX_CACHED_OPS`] operations between admissions.
//!
//! Invariant: every operation passed to automerge satisfies the rules above
//! against operations automerge holds or receives before it.

use std::collections::HashMap;
use std::sync::Arc;

use automerge::{ActorId, Automerge, ChangeHash, ReadDoc};

use crate::validate::chunk::{check_chunks, Budget};
use crate::validate::ops::{made_kind, Key, ObjKind, OpRow};
use crate::validate::ChangeInfo;

/// Operations the cache may hold when an admission starts; beyond, it starts
/// over (an admission may add one message's worth on top).
pub(super) const MAX_CACHED_OPS: usize = 1 << 20;

/// An operation id: an interned actor and a counter (counters fit in 32
/// bits: `rules.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Id {
    actor: u32,
    ctr: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Prop(u32),
    Head,
    Elem(Id),
}

/// What a check needs to know of an operation.
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// `None`: the root map.
    obj: Option<Id>,
    key: K,
    insert: bool,
    action: u8,
}

impl Meta {
    /// The element this operation makes or updates (sequences only).
    fn element(&self, own: Id) -> Option<Id> {
        match (self.key, self.insert) {
            (_, true) => Some(own),
            (K::Elem(e), false) => Some(e),
            _ => None,
        }
    }
}

/// A change's operations: row `r` has counter `start + r`.
struct Rows {
    start: u32,
    metas: Vec<Meta>,
}

impl Rows {
    fn get(&self, ctr: u32) -> Option<&Meta> {
        self.metas.get(ctr.checked_sub(self.start)? as usize)
    }
}

/// Per document: the operations of changes looked up so far.
#[derive(Default)]
pub(super) struct OpCache {
    actors: Vec<ActorId>,
    actor_ix: HashMap<ActorId, u32>,
    props: HashMap<Arc<[u8]>, u32>,
    changes: HashMap<ChangeHash, Rows>,
    ops: usize,
}

impl OpCache {
    fn actor(&mut self, a: &ActorId) -> u32 {
        if let Some(i) = self.actor_ix.get(a) {
            return *i;
        }
        let i = self.actors.len() as u32;
        self.actors.push(a.clone());
        self.actor_ix.insert(a.clone(), i);
        i
    }

    fn prop(&mut self, p: &Arc<[u8]>) -> u32 {
        let n = self.props.len() as u32;
        *self.props.entry(p.clone()).or_insert(n)
    }

    /// Interns a change's rows: each row's id, what it is, its predecessors.
    fn intern(
        &mut self,
        actor: &ActorId,
        others: &[ActorId],
        start_op: u64,
        rows: &[OpRow],
    ) -> (Rows, Vec<Vec<Id>>) {
        let table: Vec<u32> = std::iter::once(actor)
            .chain(others)
            .map(|a| self.actor(a))
            .collect();
        let id = |r: &(usize, u64)| Id {
            actor: table[r.0],
            ctr: r.1 as u32,
        };
        let mut metas = Vec::with_capacity(rows.len());
        let mut preds = Vec::with_capacity(rows.len());
        for r in rows {
            let key = match &r.key {
                Key::Prop(p) => K::Prop(self.prop(p)),
                Key::Head => K::Head,
                Key::Elem(e) => K::Elem(id(e)),
            };
            metas.push(Meta {
                obj: r.obj.as_ref().map(id),
                key,
                insert: r.insert,
                action: r.action.min(255) as u8,
            });
            preds.push(r.preds.iter().map(id).collect());
        }
        let rows = Rows {
            start: start_op as u32,
            metas,
        };
        (rows, preds)
    }

    /// Adds (or replaces: a change reverted by `guard::set_aside` and sent
    /// again is checked again) a change's rows, keeping `ops` exact.
    fn insert(&mut self, hash: ChangeHash, rows: Rows) {
        self.ops += rows.metas.len();
        if let Some(old) = self.changes.insert(hash, rows) {
            self.ops -= old.metas.len();
        }
    }
}

/// One admission's view: the document's cache plus the batch admitted so
/// far (not yet in `working`).
pub(super) struct OpIndex<'a> {
    working: &'a Automerge,
    cache: &'a mut OpCache,
    /// Per interned actor, the batch's changes: (start, end, hash).
    batch: HashMap<u32, Vec<(u32, u32, ChangeHash)>>,
}

impl<'a> OpIndex<'a> {
    pub(super) fn new(working: &'a Automerge, cache: &'a mut OpCache) -> Self {
        if cache.ops > MAX_CACHED_OPS {
            *cache = OpCache::default();
        }
        OpIndex {
            working,
            cache,
            batch: HashMap::new(),
        }
    }

    /// The change holding `id`: one of the batch's, or the document's
    /// (decoded into the cache on first use).
    fn lookup(&mut self, id: Id) -> Option<Meta> {
        let in_batch = self.batch.get(&id.actor).and_then(|rs| {
            rs.iter()
                .find(|(s, e, _)| (*s..*e).contains(&id.ctr))
                .map(|(_, _, h)| *h)
        });
        let hash = match in_batch {
            Some(h) => h,
            None => {
                let actor = self.cache.actors.get(id.actor as usize)?;
                let exid = self
                    .working
                    .import_obj(&format!("{}@{}", id.ctr, actor.to_hex_string()))
                    .ok()?;
                self.working.hash_for_opid(&exid)?
            }
        };
        if !self.cache.changes.contains_key(&hash) {
            let change = self.working.get_change_by_hash(&hash)?;
            let info = check_chunks(change.raw_bytes(), &mut Budget::unbounded())
                .ok()?
                .pop()?;
            let rows = info.rows().ok()?;
            let (rows, _) = self
                .cache
                .intern(&info.actor, &info.others, info.start_op, &rows);
            self.cache.insert(hash, rows);
        }
        self.cache.changes.get(&hash)?.get(id.ctr).copied()
    }

    /// The kind of object `obj` is (`None`: the root map).
    fn kind(&mut self, obj: Option<Id>) -> Result<ObjKind, String> {
        let Some(o) = obj else {
            return Ok(ObjKind::Map);
        };
        let m = self
            .lookup(o)
            .ok_or_else(|| format!("acts on object {}, which does not exist", self.name(o)))?;
        made_kind(u64::from(m.action))
            .ok_or_else(|| format!("acts on {}, which is not an object", self.name(o)))
    }

    fn name(&self, id: Id) -> String {
        match self.cache.actors.get(id.actor as usize) {
            Some(a) => format!("{}@{a}", id.ctr),
            None => format!("{}@?", id.ctr),
        }
    }

    /// Checks `c`'s operations; on success they become known to later
    /// changes of the batch.
    pub(super) fn check(&mut self, c: &ChangeInfo) -> Result<(), String> {
        let own = c.rows().map_err(|e| e.to_string())?;
        let (rows, preds) = self.cache.intern(&c.actor, &c.others, c.start_op, &own);
        let me = self.cache.actor(&c.actor);
        // Its own rows are visible to its later rows (`ops::rows` ensures
        // every reference to its own actor is to an earlier row).
        let end = rows.start + rows.metas.len() as u32;
        self.cache.insert(c.hash, rows);
        self.batch
            .entry(me)
            .or_default()
            .push((c.start_op as u32, end, c.hash));
        let result = self.check_rows(c.hash, me, &preds);
        if result.is_err() {
            if let Some(rows) = self.cache.changes.remove(&c.hash) {
                self.cache.ops -= rows.metas.len();
            }
            self.batch.get_mut(&me).map(Vec::pop);
        }
        result
    }

    fn check_rows(&mut self, hash: ChangeHash, me: u32, preds: &[Vec<Id>]) -> Result<(), String> {
        let start = self.cache.changes[&hash].start;
        for (r, preds) in preds.iter().enumerate() {
            let m = self.cache.changes[&hash].metas[r];
            let id = Id {
                actor: me,
                ctr: start + r as u32,
            };
            let at = |s: &Self, what: String| format!("operation {}: {what}", s.name(id));
            let kind = self.kind(m.obj).map_err(|e| at(self, e))?;
            match (m.key, kind) {
                (K::Prop(_), ObjKind::Map) | (K::Head | K::Elem(_), ObjKind::Seq) => {}
                (K::Prop(_), ObjKind::Seq) => {
                    return Err(at(self, "a map key in a sequence".into()))
                }
                _ => return Err(at(self, "a sequence element in a map".into())),
            }
            if let K::Elem(e) = m.key {
                let ok = self.lookup(e).is_some_and(|t| t.insert && t.obj == m.obj);
                if !ok {
                    let what = format!("element {} is not an element of its object", self.name(e));
                    return Err(at(self, what));
                }
            }
            // Inserts have no predecessors (`ops::rows`).
            let element = m.element(id);
            for &p in preds {
                let ok = self.lookup(p).is_some_and(|t| {
                    t.obj == m.obj
                        && match m.key {
                            K::Prop(k) => !t.insert && t.key == K::Prop(k),
                            _ => t.element(p) == element,
                        }
                });
                if !ok {
                    let what = format!(
                        "predecessor {} is not on the same object and key",
                        self.name(p)
                    );
                    return Err(at(self, what));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_operation_costs_about_thirty_bytes_in_the_cache() {
        assert!(std::mem::size_of::<super::Meta>() <= 32);
    }
}
