//! A received frame, read once.

use crate::frame::RadioFrame;
use crate::wire::telegram::Telegram;

/// A frame as [`super::Decoder::read`] read it: the radio's frame with its one parsed
/// [`Telegram`] and the canonical bytes the parse wrote. Dedupe, decoding and the
/// health counters read this; nothing parses the frame again.
#[derive(Debug)]
pub struct Received<'f> {
    pub frame: &'f RadioFrame,
    pub telegram: Telegram,
    /// Canonical bytes (CRC-free; wired: from the CI on); decoding decrypts them in
    /// place, so they are the decoder's until it has run.
    pub(super) bytes: Vec<u8>,
}

impl Received<'_> {
    /// The meter id its headers name ("12345678").
    pub fn meter_id(&self) -> Option<String> {
        self.telegram.meter_id()
    }

    /// The canonical bytes as the parse wrote them.
    pub fn canonical(&self) -> &[u8] {
        &self.bytes
    }
}
