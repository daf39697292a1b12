//! Consistency rules over a chunk's columns that automerge 0.12 assumes and
//! does not check (it unwraps, indexes or asserts instead; the fuzz target
//! found each): actor indexes within the chunk's actor table, no nulls where
//! a value is required, delta-encoded integers within `i64`, grouped columns
//! as long as their group counts say, value bytes as long as their metadata
//! says.

use std::collections::BTreeMap;

use super::columns::{self, ACTOR, BOOLEAN, DELTA, VALUE};
use super::error::ChunkError;

/// A group count column: how many entries of the columns with its id belong
/// to each row.
const GROUP: u32 = 0;
const VALUE_META: u32 = 6;

/// Columns that must hold a value in every row, beyond groups, grouped
/// columns and value metadata: the action of an operation.
const REQUIRED: &[u32] = &[0x42];
/// Operation counters (object 0x02, key element 0x13, predecessor 0x73):
/// automerge converts them to `u32` with `unwrap`.
const COUNTERS: &[u32] = &[0x02, 0x13, 0x73];

/// Checks a change's operation columns against the rules; `actors` is the
/// size of the actor table their actor columns index (the change's actor
/// and its other actors).
pub fn check(cols: &[(u32, Vec<u8>)], actors: usize) -> Result<(), ChunkError> {
    let required = REQUIRED;
    let has_group = |id: u32| cols.iter().any(|(s, _)| s >> 4 == id && s & 7 == GROUP);
    // Per column id: the sum of its group counts, of its value lengths.
    let mut group_sums: BTreeMap<u32, u64> = BTreeMap::new();
    let mut value_bytes: BTreeMap<u32, u64> = BTreeMap::new();
    let mut lens: Vec<(u32, u64)> = Vec::new();
    for (spec, data) in cols {
        let (id, ty) = (spec >> 4, spec & 7);
        if ty == VALUE {
            lens.push((*spec, data.len() as u64));
            continue;
        }
        if ty == BOOLEAN {
            continue;
        }
        let grouped = ty != GROUP && has_group(id);
        let non_null = ty == GROUP || ty == VALUE_META || grouped || required.contains(spec);
        let (mut len, mut acc, mut sum) = (0u64, 0i128, 0u64);
        columns::rle_segments(ty, data, |(n, v)| {
            len = len.saturating_add(n);
            let Some(v) = v else {
                if non_null && n > 0 {
                    return Err(ChunkError::Rule(format!(
                        "null in required column {spec:#x}"
                    )));
                }
                return Ok(());
            };
            if ty == ACTOR && !(0..actors as i128).contains(&v) {
                return Err(ChunkError::Rule(format!(
                    "actor index {v} in column {spec:#x}; the chunk has {actors} actors"
                )));
            }
            if ty == DELTA {
                // Within a run the values move one way: checking where the
                // run ends bounds every value in it.
                acc = acc.saturating_add(v.saturating_mul(i128::from(n)));
                if acc < i128::from(i64::MIN) || acc > i128::from(i64::MAX) {
                    return Err(ChunkError::Rule(format!("column {spec:#x} overflows i64")));
                }
            }
            if COUNTERS.contains(spec) {
                let last = if ty == DELTA { acc } else { v };
                let first = if ty == DELTA {
                    acc - v.saturating_mul(i128::from(n) - 1)
                } else {
                    v
                };
                let ok = 0..=i128::from(u32::MAX);
                if !ok.contains(&last) || !ok.contains(&first) {
                    return Err(ChunkError::Rule(format!(
                        "operation counter {last} in column {spec:#x} does not fit in 32 bits"
                    )));
                }
            }
            if ty == GROUP || ty == VALUE_META {
                let per = if ty == GROUP { v } else { v >> 4 };
                let add = u64::try_from(per).unwrap_or(u64::MAX).saturating_mul(n);
                sum = sum.saturating_add(add);
            }
            Ok(())
        })?;
        match ty {
            GROUP => {
                group_sums.insert(id, sum);
            }
            VALUE_META => {
                value_bytes.insert(id, sum);
            }
            _ => {}
        }
        lens.push((*spec, len));
    }
    for (spec, len) in &lens {
        let (id, ty) = (spec >> 4, spec & 7);
        let want = match ty {
            VALUE => value_bytes.get(&id).copied().unwrap_or(0),
            GROUP => continue,
            _ => match group_sums.get(&id) {
                Some(s) => *s,
                None => continue,
            },
        };
        if *len != want {
            return Err(ChunkError::Rule(format!(
                "column {spec:#x} holds {len} values, its group or metadata says {want}"
            )));
        }
    }
    Ok(())
}
