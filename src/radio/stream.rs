//! The streaming scaffold the binary dongle codecs share: a byte buffer, resynchronisation
//! on the start byte, frame extraction, truncation of a frame the line left unfinished, and
//! the counters. A codec says only how its frames look ([`Framing`]).

use std::marker::PhantomData;

use super::DecoderStats;

/// How a binary protocol's frames look: they start with `SOF`; `parse` reads one frame at
/// the start of the buffer and says how many bytes it used.
pub(crate) trait Framing {
    type Frame;
    type Error;
    const SOF: u8;
    fn parse(buf: &[u8]) -> Result<(Self::Frame, usize), Self::Error>;
    /// `Some(bytes still missing)` when the error only means "wait for more".
    fn needs(e: &Self::Error) -> Option<usize>;
    fn garbage(skipped: usize) -> Self::Error;
    fn truncated(have: usize, expected: usize) -> Self::Error;
}

/// Incremental decoder state over a serial byte stream.
pub(crate) struct FrameStream<F> {
    buf: Vec<u8>,
    stats: DecoderStats,
    framing: PhantomData<F>,
}

impl<F> Default for FrameStream<F> {
    fn default() -> Self {
        FrameStream {
            buf: Vec::new(),
            stats: DecoderStats::default(),
            framing: PhantomData,
        }
    }
}

impl<F> std::fmt::Debug for FrameStream<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream")
            .field("pending", &self.buf.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<F: Framing> FrameStream<F> {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes waiting for the rest of a message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Skips garbage up to the next start byte, parses a frame, or waits for more bytes
    /// (None). On a bad frame only the start byte is dropped, because a real frame may
    /// begin inside the bytes the false one claimed.
    pub fn next_frame(&mut self) -> Option<Result<F::Frame, F::Error>> {
        let first = *self.buf.first()?;
        if first != F::SOF {
            let skipped = self
                .buf
                .iter()
                .position(|&b| b == F::SOF)
                .unwrap_or(self.buf.len());
            self.buf.drain(..skipped);
            self.stats.garbage_bytes += skipped as u64;
            return Some(Err(F::garbage(skipped)));
        }
        match F::parse(&self.buf) {
            Ok((frame, used)) => {
                self.buf.drain(..used.min(self.buf.len()));
                Some(Ok(frame))
            }
            Err(e) if F::needs(&e).is_some() => None,
            Err(e) => {
                self.buf.drain(..1);
                self.stats.bad_frames += 1;
                Some(Err(e))
            }
        }
    }

    /// The next frame turned into a message by `decode`, counted either way.
    pub fn next_message<M>(
        &mut self,
        decode: impl FnOnce(F::Frame) -> Result<M, F::Error>,
    ) -> Option<Result<M, F::Error>> {
        let item = decode(match self.next_frame()? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        });
        if item.is_ok() {
            self.stats.messages += 1;
        } else {
            self.stats.bad_frames += 1;
        }
        Some(item)
    }

    /// The line went idle with a partial frame buffered: give it up as truncated.
    ///
    /// Drops the start byte and returns the error; call `next_message` afterwards,
    /// since a real frame may start later in the buffered bytes.
    pub fn flush_stale(&mut self) -> Option<F::Error> {
        if self.buf.is_empty() {
            return None;
        }
        let have = self.buf.len();
        let expected = match F::parse(&self.buf) {
            Err(e) => have + F::needs(&e).unwrap_or(0),
            Ok(_) => have,
        };
        self.buf.drain(..1);
        self.stats.bad_frames += 1;
        Some(F::truncated(have, expected))
    }
}
