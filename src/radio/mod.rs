//! Radio receivers: one pure codec per dongle family plus async sessions that drive them.
//!
//! Every codec turns what a receiver emits into the canonical frame of `crate::frame`:
//! wM-Bus bytes starting at the L-field, DLL CRCs removed, `L == bytes.len() - 1`.
//! Codecs do no I/O and never panic on arbitrary input; whatever they cannot use is
//! returned as an error value naming the reason, so sessions can report it instead of
//! dropping it silently.
//!
//! * [`im871a`]: IMST iM871A / iM170A binary HCI protocol.
//! * [`amb8465`]: Amber / Würth AMB8465 binary command frames.
//! * [`cul`]: culfw ASCII lines (CC1101 sticks).
//! * [`rtlwmbus`]: rtl-wmbus text output of an RTL-SDR receiver.
//! * [`replay`]: hex telegrams from a file, one per line.
//!
//! With the `daemon` feature, [`session`] runs a receiver (open, initialise, read,
//! reconnect). The dongle simulators the tests drive it with live in `tests/support/sim.rs`.

pub mod amb8465;
pub mod cul;
pub mod im871a;
pub mod replay;
pub mod rtlwmbus;
mod stream;

#[cfg(feature = "daemon")]
mod error;
#[cfg(feature = "daemon")]
mod events;
#[cfg(feature = "daemon")]
mod link;
#[cfg(feature = "daemon")]
pub mod ports;
#[cfg(feature = "daemon")]
pub mod session;

#[cfg(feature = "daemon")]
pub use error::{ProbeError, RadioError};
#[cfg(feature = "daemon")]
pub use events::{RadioEvent, RadioState};
#[cfg(feature = "daemon")]
pub use session::{probe, run, RadioSpec};

use crate::frame::LinkMode;

/// Which receiver a session drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriverKind {
    Im871a,
    Amb8465,
    Cul,
    RtlWmbus,
    Replay,
    /// Identify the dongle on the serial port with [`session::probe`] first.
    Auto,
}

impl DriverKind {
    /// The names of [`DriverKind::parse`], as configuration files spell them.
    pub const NAMES: &'static [&'static str] =
        &["im871a", "amb8465", "cul", "rtlwmbus", "replay", "auto"];

    /// The driver of a configuration file's `driver = "..."` (exact spelling).
    pub fn parse(s: &str) -> Option<DriverKind> {
        match s {
            "im871a" => Some(DriverKind::Im871a),
            "amb8465" => Some(DriverKind::Amb8465),
            "cul" => Some(DriverKind::Cul),
            "rtlwmbus" => Some(DriverKind::RtlWmbus),
            "replay" => Some(DriverKind::Replay),
            "auto" => Some(DriverKind::Auto),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Im871a => "im871a",
            DriverKind::Amb8465 => "amb8465",
            DriverKind::Cul => "cul",
            DriverKind::RtlWmbus => "rtlwmbus",
            DriverKind::Replay => "replay",
            DriverKind::Auto => "auto",
        }
    }

    /// Default serial speed of the dongle family (None: not a serial device).
    pub fn default_baud(self) -> Option<u32> {
        match self {
            DriverKind::Im871a => Some(im871a::BAUD),
            DriverKind::Amb8465 => Some(amb8465::BAUD),
            DriverKind::Cul => Some(cul::BAUD),
            DriverKind::RtlWmbus | DriverKind::Replay | DriverKind::Auto => None,
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A driver name that is not one of `im871a`, `amb8465`, `cul`, `rtlwmbus`, `replay`, `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown radio driver {0:?} (expected im871a, amb8465, cul, rtlwmbus, replay or auto)")]
pub struct UnknownDriver(pub String);

impl std::str::FromStr for DriverKind {
    type Err = UnknownDriver;

    /// Command-line spelling: case and surrounding blanks do not matter.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriverKind::parse(s.trim().to_ascii_lowercase().as_str())
            .ok_or_else(|| UnknownDriver(s.to_string()))
    }
}

/// What a probe learned about a dongle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DongleInfo {
    pub driver: DriverKind,
    /// Human-readable type and firmware, e.g. "iM871A fw 0x14 hci 0x01".
    pub description: String,
    /// Unique id the dongle reports, if any (iM871A UID, Amber serial number).
    pub id: Option<String>,
}

/// Receive modes a dongle is asked for, reduced to one setting.
///
/// Dongles listen in one mode at a time, except the combined C1+T1 setting, so
/// `[C1, T1]` (in any order) becomes `C1T1`. An empty list means T1, the mode
/// most OMS meters transmit in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot listen to {0} at once; choose one mode or C1+T1")]
pub struct UnsupportedModes(pub String);

pub fn combine_modes(modes: &[LinkMode]) -> Result<LinkMode, UnsupportedModes> {
    let mut wanted: Vec<LinkMode> = Vec::new();
    for &m in modes {
        let parts: &[LinkMode] = match m {
            LinkMode::C1T1 => &[LinkMode::C1, LinkMode::T1],
            _ => std::slice::from_ref(&m),
        };
        for p in parts {
            if !wanted.contains(p) {
                wanted.push(*p);
            }
        }
    }
    let has = |m: LinkMode| wanted.contains(&m);
    match wanted.len() {
        0 => Ok(LinkMode::T1),
        1 => Ok(wanted.first().copied().unwrap_or(LinkMode::T1)),
        2 if has(LinkMode::C1) && has(LinkMode::T1) => Ok(LinkMode::C1T1),
        _ => Err(UnsupportedModes(
            wanted
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join("+"),
        )),
    }
}

/// Why a telegram a receiver delivered is not a usable canonical frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    /// Fewer than the 11 bytes of L, C, M, A and CI.
    #[error("telegram of {len} byte(s) is shorter than the 11-byte wM-Bus header")]
    TooShort { len: usize },
    /// L does not count the bytes that follow it.
    #[error("L-field {l} does not match the {after} byte(s) after it")]
    LengthMismatch { l: u8, after: usize },
}

/// Minimum canonical frame: L, C, M(2), A(6), CI.
pub const MIN_TELEGRAM_LEN: usize = 11;

/// Checks that `bytes` is a canonical frame: long enough for the header and `L == len - 1`.
pub fn check_canonical(bytes: &[u8]) -> Result<(), TelegramError> {
    if bytes.len() < MIN_TELEGRAM_LEN {
        return Err(TelegramError::TooShort { len: bytes.len() });
    }
    let l = bytes.first().copied().unwrap_or(0);
    let after = bytes.len() - 1;
    if usize::from(l) != after {
        return Err(TelegramError::LengthMismatch { l, after });
    }
    Ok(())
}

/// Counters a streaming decoder keeps so that nothing is dropped without a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Messages decoded successfully.
    pub messages: u64,
    /// Frames or lines rejected (bad CRC/checksum, bad header, truncated, bad telegram).
    pub bad_frames: u64,
    /// Bytes skipped while looking for the start of the next frame.
    pub garbage_bytes: u64,
}

/// Decodes hex digits, ignoring nothing: `s` must have even length and only hex digits.
pub(crate) fn decode_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let digits = s.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(HexError::OddLength(digits.len()));
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
            return Err(HexError::OddLength(digits.len()));
        };
        let hi = hex_value(hi).ok_or(HexError::NotHex { offset: 2 * i })?;
        let lo = hex_value(lo).ok_or(HexError::NotHex { offset: 2 * i + 1 })?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Malformed hex text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
    #[error("character {offset} of the hex is not a hex digit")]
    NotHex { offset: usize },
}

/// Splits a byte stream into text lines (LF, optional CR) for the line-based receivers.
///
/// Lines longer than `max_line` are cut off and reported, so a receiver that never
/// sends a newline cannot grow the buffer without bound.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    overlong: bool,
}

/// One item from a [`LineSplitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its terminator (invalid UTF-8 replaced).
    Text(String),
    /// A line exceeded the limit; its bytes up to the next newline were discarded.
    Overlong { discarded: usize },
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line,
            overlong: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Next complete line, if one is buffered.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(nl) => {
                    let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
                    if self.overlong {
                        // The tail of a line already reported as overlong.
                        self.overlong = false;
                        continue;
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > self.max_line {
                        return Some(Line::Overlong {
                            discarded: line.len(),
                        });
                    }
                    return Some(Line::Text(String::from_utf8_lossy(&line).into_owned()));
                }
                None if self.buf.len() > self.max_line => {
                    // Report once and forget the bytes; the rest of the line is dropped
                    // when its newline arrives.
                    let discarded = self.buf.len();
                    self.buf.clear();
                    let first = !self.overlong;
                    self.overlong = true;
                    if first {
                        return Some(Line::Overlong { discarded });
                    }
                    return None;
                }
                None => return None,
            }
        }
    }

    /// Bytes buffered of an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_round_trip() {
        for k in [
            DriverKind::Im871a,
            DriverKind::Amb8465,
            DriverKind::Cul,
            DriverKind::RtlWmbus,
            DriverKind::Replay,
            DriverKind::Auto,
        ] {
            assert_eq!(k.as_str().parse::<DriverKind>(), Ok(k));
        }
        assert!("im871".parse::<DriverKind>().is_err());
    }

    #[test]
    fn modes_combine() {
        use LinkMode::*;
        assert_eq!(combine_modes(&[]), Ok(T1));
        assert_eq!(combine_modes(&[C1]), Ok(C1));
        assert_eq!(combine_modes(&[T1, C1]), Ok(C1T1));
        assert_eq!(combine_modes(&[C1T1, T1]), Ok(C1T1));
        assert!(combine_modes(&[S1, T1]).is_err());
    }

    #[test]
    fn canonical_check() {
        let mut f = vec![
            0x0A, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, 0x7A,
        ];
        assert_eq!(check_canonical(&f), Ok(()));
        f[0] = 0x0B;
        assert_eq!(
            check_canonical(&f),
            Err(TelegramError::LengthMismatch { l: 0x0B, after: 10 })
        );
        assert_eq!(
            check_canonical(&f[..5]),
            Err(TelegramError::TooShort { len: 5 })
        );
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("2eA0"), Ok(vec![0x2E, 0xA0]));
        assert_eq!(decode_hex("2eA"), Err(HexError::OddLength(3)));
        assert_eq!(decode_hex("2g"), Err(HexError::NotHex { offset: 1 }));
    }

    #[test]
    fn lines_split_and_limit() {
        let mut s = LineSplitter::new(8);
        s.push(b"V 1.30\r\nTMO");
        assert_eq!(s.next_line(), Some(Line::Text("V 1.30".into())));
        assert_eq!(s.next_line(), None);
        s.push(b"DE\n0123456789");
        assert_eq!(s.next_line(), Some(Line::Text("TMODE".into())));
        assert_eq!(s.next_line(), Some(Line::Overlong { discarded: 10 }));
        s.push(b"abcdefghijk");
        assert_eq!(s.next_line(), None);
        s.push(b"ab\nok\n");
        assert_eq!(s.next_line(), Some(Line::Text("ok".into())));
        assert_eq!(s.next_line(), None);
    }

    proptest::proptest! {
        #[test]
        fn line_splitter_never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..16)) {
            let mut s = LineSplitter::new(16);
            for c in &chunks {
                s.push(c);
                while let Some(line) = s.next_line() {
                    if let Line::Text(t) = line {
                        proptest::prop_assert!(t.len() <= 16 * 3);
                    }
                }
                proptest::prop_assert!(s.pending() <= 16 + 64);
            }
        }
    }
}
