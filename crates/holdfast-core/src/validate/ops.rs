//! A change's operations row by row, as far as admission needs them: what
//! each acts on, where, and what it overwrites. Read from the columns the
//! chunk checks already bounded (`chunk.rs`), and checked for the shape
//! automerge assumes of every operation, whatever the document holds.
//!
//! Operation ids here are `(actor index, counter)`: index 0 is the change's
//! own actor, `i > 0` its `i`-th other actor. Row `r` has id
//! `(0, start_op + r)`.

use std::sync::Arc;

use super::columns;
use super::error::ChunkError;

/// An operation id, as (index into `[actor] + others`, counter).
pub type OpRef = (usize, u64);

/// Where an operation acts within its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// A map key (shared by the rows of one run: a short column can repeat
    /// a long key many times).
    Prop(Arc<[u8]>),
    /// The start of a sequence (only inserts go there).
    Head,
    /// A sequence element: the id of the insert that made it.
    Elem(OpRef),
}

/// One operation of a change.
#[derive(Clone, Debug)]
pub struct OpRow {
    /// `None`: the root map.
    pub obj: Option<OpRef>,
    pub key: Key,
    pub insert: bool,
    /// automerge's action number (0 makeMap, 1 set, 2 makeList, 3 delete,
    /// 4 makeText, 5 increment, 6 makeTable, 7 mark).
    pub action: u64,
    pub preds: Vec<OpRef>,
}

/// The object type an action creates, if it creates one.
pub fn made_kind(action: u64) -> Option<ObjKind> {
    match action {
        0 | 6 => Some(ObjKind::Map),
        2 | 4 => Some(ObjKind::Seq),
        _ => None,
    }
}

/// What an object's keys are: map keys or sequence elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjKind {
    Map,
    Seq,
}

impl OpRow {
    /// The sequence element this operation is about, given its own id: the
    /// element it makes, or the one it updates. `None` for map keys.
    pub fn element(&self, own: OpRef) -> Option<OpRef> {
        match (&self.key, self.insert) {
            (_, true) => Some(own),
            (Key::Elem(e), false) => Some(*e),
            _ => None,
        }
    }
}

fn col(cols: &[(u32, Vec<u8>)], spec: u32) -> &[u8] {
    cols.iter()
        .find(|(s, _)| *s == spec)
        .map_or(&[][..], |(_, d)| d.as_slice())
}

/// An object id from its actor and counter columns: `None` is the root
/// (automerge reads counter 0 of actor index 0 as the root too).
fn opt_ref(a: Option<i128>, c: Option<i128>) -> Option<Option<OpRef>> {
    match (a, c) {
        (None, None) | (None | Some(0), Some(0)) => Some(None),
        (Some(a), Some(c)) => Some(Some((a as usize, c as u64))),
        _ => None,
    }
}

/// The rows of a change whose operation columns passed `rules::check`
/// (actor indexes in range, counters within 32 bits, groups consistent),
/// checked for the shape every operation must have. `start_op` is the
/// change's first counter.
pub fn rows(cols: &[(u32, Vec<u8>)], ops: u64, start_op: u64) -> Result<Vec<OpRow>, ChunkError> {
    let bad = |row: usize, what: &str| ChunkError::Rule(format!("operation {row}: {what}"));
    let ints = |spec| columns::Values::ints(spec, col(cols, spec));
    let (mut obj_a, mut obj_c) = (ints(0x01), ints(0x02));
    let (mut key_a, mut key_c) = (ints(0x11), ints(0x13));
    let mut key_s = columns::Values::strings(col(cols, 0x15));
    let mut insert = columns::Bools::new(col(cols, 0x34));
    let mut action = ints(0x42);
    let (mut pred_n, mut pred_a, mut pred_c) = (ints(0x70), ints(0x71), ints(0x73));
    let mut out = Vec::with_capacity(ops as usize);
    for row in 0..ops as usize {
        let own = start_op + row as u64;
        let obj = opt_ref(obj_a.next_value()?, obj_c.next_value()?)
            .ok_or_else(|| bad(row, "object has an actor or a counter, not both"))?;
        let (ka, kc) = (key_a.next_value()?, key_c.next_value()?);
        let key = match (key_s.next_value()?, kc) {
            (Some(s), None) => Key::Prop(s),
            // automerge's head is counter 0 of actor index 0 (or none);
            // counter 0 of another actor names no operation.
            (None, Some(c)) => match (ka, c) {
                (None | Some(0), 0) => Key::Head,
                (Some(a), c) => Key::Elem((a as usize, c as u64)),
                (None, _) => return Err(bad(row, "element key without an actor")),
            },
            (Some(_), Some(_)) => return Err(bad(row, "both a map key and an element")),
            (None, None) => return Err(bad(row, "no key")),
        };
        let insert = insert.next_value()?;
        let action = action.next_value()?.unwrap_or(-1);
        let action = u64::try_from(action).map_err(|_| bad(row, "no action"))?;
        let n = pred_n.next_value()?.unwrap_or(0) as usize;
        let mut preds = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            match (pred_a.next_value()?, pred_c.next_value()?) {
                (Some(a), Some(c)) => preds.push((a as usize, c as u64)),
                _ => return Err(bad(row, "predecessor without an actor or a counter")),
            }
        }
        match (&key, insert) {
            (Key::Prop(_), true) => return Err(bad(row, "inserts at a map key")),
            (Key::Head, false) => return Err(bad(row, "updates the head of a sequence")),
            _ => {}
        }
        if insert && !preds.is_empty() {
            return Err(bad(row, "an insert with predecessors"));
        }
        // A deletion or an increment is no element of its own: it acts on
        // its predecessors (automerge stores it only as their successor).
        // A mark's begin and end are always inserted into a sequence.
        match action {
            3 | 5 if insert => return Err(bad(row, "a deletion or increment inserted")),
            3 | 5 if preds.is_empty() => {
                return Err(bad(row, "a deletion or increment without predecessors"))
            }
            7 if !insert => return Err(bad(row, "a mark that is not inserted")),
            _ => {}
        }
        // What it refers to is in its history, whose counters are below
        // its own (`repo::admit` checks `startOp` against its dependencies).
        let later = |r: &OpRef| r.1 >= own;
        if preds.iter().any(later) || matches!(&key, Key::Elem(e) if later(e)) {
            return Err(bad(row, "refers to an operation at or after its own id"));
        }
        if obj.as_ref().is_some_and(later) {
            return Err(bad(row, "acts on an object made at or after its own id"));
        }
        out.push(OpRow {
            obj,
            key,
            insert,
            action,
            preds,
        });
    }
    Ok(out)
}
