//! The bounds-checked cursor every parser of `wire` reads its layer with.

use super::{Error, Layer, Result};

/// Bounds-checked reader over one layer's bytes, shared by the parsers of `wire`: a cursor
/// that runs nom's `complete` parsers and turns their end-of-input failures into the
/// layer's `Truncated` error at the offset (relative to the reader's start) where the data
/// ran out.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    layer: Layer,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], layer: Layer) -> Self {
        Reader {
            data,
            pos: 0,
            layer,
        }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Runs `parser` on the unread bytes; `width` is how many bytes it needs, for the
    /// error when fewer are left.
    fn run<T>(
        &mut self,
        width: usize,
        mut parser: impl FnMut(&'a [u8]) -> nom::IResult<&'a [u8], T>,
    ) -> Result<T> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match parser(rest) {
            Ok((remaining, value)) => {
                self.pos += rest.len() - remaining.len();
                Ok(value)
            }
            Err(_) => Err(Error::truncated(
                self.layer,
                self.data.len(),
                width.saturating_sub(rest.len()).max(1),
            )),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.run(n, nom::bytes::complete::take(n))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        self.run(1, nom::number::complete::u8)
    }

    pub(crate) fn u16_le(&mut self) -> Result<u16> {
        self.run(2, nom::number::complete::le_u16)
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        self.run(4, nom::number::complete::le_u32)
    }
}
