//! automerge's column encodings, read without materialising runs: a column
//! of a few bytes can declare billions of values, so every column's logical
//! length is computed from its run headers and checked before automerge
//! iterates it.
//!
//! Encodings (automerge's `columnar::encoding`): run-length (group, actor,
//! integer, delta, string and value-metadata columns) is a sequence of runs,
//! each a signed LEB128 count `n` then: `n > 0`, one value repeated `n`
//! times; `n < 0`, `-n` literal values; `n == 0`, an unsigned count of nulls.
//! Boolean columns are alternating run lengths (false first). Value columns
//! are raw bytes.

use std::sync::Arc;

use super::leb::{ReadError, Reader};

/// The column type in the low three bits of a column spec (0 is a group
/// count, 6 value metadata: both plain run-length integers here).
pub const ACTOR: u32 = 1;
pub const INTEGER: u32 = 2;
pub const DELTA: u32 = 3;
pub const BOOLEAN: u32 = 4;
pub const STRING: u32 = 5;
pub const VALUE: u32 = 7;
/// The spec bit of a DEFLATE-compressed column.
pub const DEFLATE: u32 = 8;

/// The action column (id 4, integer) of change and document op columns.
pub const ACTION_SPEC: u32 = (4 << 4) | INTEGER;
/// The action number of a deletion.
pub const ACTION_DEL: i128 = 3;

/// One segment of a run-length column: `count` copies of `value` (`None`:
/// nulls).
pub type Segment = (u64, Option<i128>);

/// Calls `f` for every segment of a run-length column of type `ty`. The work
/// is linear in `data.len()`, whatever the counts say.
pub fn rle_segments<E: From<ReadError>>(
    ty: u32,
    data: &[u8],
    mut f: impl FnMut(Segment) -> Result<(), E>,
) -> Result<(), E> {
    const W: &str = "column run";
    let mut r = Reader::new(data);
    let value = |r: &mut Reader<'_>| -> Result<i128, ReadError> {
        Ok(match ty {
            DELTA => i128::from(r.sleb(W)?),
            STRING => {
                r.prefixed(W)?;
                0
            }
            _ => i128::from(r.uleb(W)?),
        })
    };
    while !r.is_empty() {
        let n = r.sleb(W)?;
        if n > 0 {
            let v = value(&mut r)?;
            f((n as u64, Some(v)))?;
        } else if n < 0 {
            for _ in 0..n.unsigned_abs() {
                // Each literal takes at least one byte: bounded by the data.
                let v = value(&mut r)?;
                f((1, Some(v)))?;
            }
        } else {
            f((r.uleb(W)?, None))?;
        }
    }
    Ok(())
}

/// The number of values a column of spec `spec` (uncompressed) holds.
pub fn logical_len(spec: u32, data: &[u8]) -> Result<u64, ReadError> {
    match spec & 7 {
        VALUE => Ok(data.len() as u64),
        BOOLEAN => {
            let mut r = Reader::new(data);
            let mut total = 0u64;
            while !r.is_empty() {
                total = total.saturating_add(r.uleb("boolean run")?);
            }
            Ok(total)
        }
        ty => {
            let mut total = 0u64;
            rle_segments(ty, data, |(n, _)| {
                total = total.saturating_add(n);
                Ok(())
            })?;
            Ok(total)
        }
    }
}

/// Operations and deletions in an action column.
pub fn count_actions(data: &[u8]) -> Result<(u64, u64), ReadError> {
    let (mut ops, mut dels) = (0u64, 0u64);
    rle_segments(INTEGER, data, |(n, v)| {
        ops = ops.saturating_add(n);
        if v == Some(ACTION_DEL) {
            dels = dels.saturating_add(n);
        }
        Ok(())
    })?;
    Ok((ops, dels))
}

/// A run-length column read one value at a time (nulls, and reads past its
/// end, as `None`; deltas accumulated). Memory stays constant whatever the
/// runs declare.
pub struct Values<'a, T> {
    r: Reader<'a>,
    ty: u32,
    left: u64,
    literal: bool,
    value: Option<T>,
    acc: i128,
}

impl<'a, T: Clone> Values<'a, T> {
    fn start(spec: u32, data: &'a [u8]) -> Self {
        Values {
            r: Reader::new(data),
            ty: spec & 7,
            left: 0,
            literal: false,
            value: None,
            acc: 0,
        }
    }

    fn step(
        &mut self,
        read: impl Fn(&mut Reader<'a>) -> Result<T, ReadError>,
    ) -> Result<Option<T>, ReadError> {
        const W: &str = "column run";
        while self.left == 0 {
            if self.r.is_empty() {
                return Ok(None);
            }
            let n = self.r.sleb(W)?;
            self.literal = n < 0;
            if n > 0 {
                self.left = n as u64;
                self.value = Some(read(&mut self.r)?);
            } else if n < 0 {
                self.left = n.unsigned_abs();
            } else {
                self.left = self.r.uleb(W)?;
                self.value = None;
            }
        }
        self.left -= 1;
        if self.literal {
            Ok(Some(read(&mut self.r)?))
        } else {
            Ok(self.value.clone())
        }
    }
}

impl<'a> Values<'a, i128> {
    /// An integer, delta, actor or group column.
    pub fn ints(spec: u32, data: &'a [u8]) -> Self {
        Self::start(spec, data)
    }

    pub fn next_value(&mut self) -> Result<Option<i128>, ReadError> {
        let delta = self.ty == DELTA;
        let v = self.step(|r| {
            Ok(if delta {
                i128::from(r.sleb("column run")?)
            } else {
                i128::from(r.uleb("column run")?)
            })
        })?;
        if let (true, Some(d)) = (delta, v) {
            self.acc = self.acc.saturating_add(d);
            return Ok(Some(self.acc));
        }
        Ok(v)
    }
}

impl<'a> Values<'a, Arc<[u8]>> {
    /// A string column; the rows of one run share their string.
    pub fn strings(data: &'a [u8]) -> Self {
        Self::start(STRING, data)
    }

    pub fn next_value(&mut self) -> Result<Option<Arc<[u8]>>, ReadError> {
        self.step(|r| Ok(r.prefixed("string column run")?.into()))
    }
}

/// A boolean column read one value at a time (alternating run lengths,
/// false first; `false` past its end).
pub struct Bools<'a> {
    r: Reader<'a>,
    left: u64,
    value: bool,
}

impl<'a> Bools<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        // The first run is of `false`: start as if a `true` run just ended.
        Bools {
            r: Reader::new(data),
            left: 0,
            value: true,
        }
    }

    pub fn next_value(&mut self) -> Result<bool, ReadError> {
        while self.left == 0 {
            if self.r.is_empty() {
                return Ok(false);
            }
            self.left = self.r.uleb("boolean run")?;
            self.value = !self.value;
        }
        self.left -= 1;
        Ok(self.value)
    }
}
