//! A bounds-checked reader of the LEB128-framed encodings automerge uses.

/// Why bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("truncated in {0}")]
    Truncated(&'static str),
    #[error("{0}: integer does not fit in 64 bits")]
    Overflow(&'static str),
    #[error("{what}: {count} entries exceed the limit of {max}")]
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
    },
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn byte(&mut self, what: &'static str) -> Result<u8, ReadError> {
        let b = *self.buf.get(self.pos).ok_or(ReadError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ReadError> {
        if n > self.remaining() {
            return Err(ReadError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Unsigned LEB128, at most 10 bytes, no bits beyond 64.
    pub fn uleb(&mut self, what: &'static str) -> Result<u64, ReadError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte(what)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(ReadError::Overflow(what));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ReadError::Overflow(what))
    }

    /// Signed LEB128, at most 10 bytes.
    pub fn sleb(&mut self, what: &'static str) -> Result<i64, ReadError> {
        let mut v: i64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte(what)?;
            if shift == 63 && b != 0 && b != 0x7f {
                return Err(ReadError::Overflow(what));
            }
            v |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Ok(v);
            }
            if shift >= 64 {
                return Err(ReadError::Overflow(what));
            }
        }
    }

    /// A count of entries, each at least one byte: no more than the bytes
    /// left, and no more than `max`.
    pub fn count(&mut self, what: &'static str, max: usize) -> Result<usize, ReadError> {
        let n = self.uleb(what)?;
        if n > max as u64 {
            return Err(ReadError::TooMany {
                what,
                count: n,
                max: max as u64,
            });
        }
        if n > self.remaining() as u64 {
            return Err(ReadError::Truncated(what));
        }
        Ok(n as usize)
    }

    /// A LEB128 length, then that many bytes.
    pub fn prefixed(&mut self, what: &'static str) -> Result<&'a [u8], ReadError> {
        let n = self.uleb(what)?;
        if n > self.remaining() as u64 {
            return Err(ReadError::Truncated(what));
        }
        self.take(n as usize, what)
    }
}
