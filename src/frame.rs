//! The canonical frame handed from a radio driver to the decoder.

use std::time::SystemTime;

/// Radio link mode a telegram was received in (EN 13757-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LinkMode {
    S1,
    T1,
    C1,
    /// Dongle listens to C1 and T1 at once and cannot tell which one it heard.
    C1T1,
    N1,
    /// Not radio: read over a wired M-Bus (EN 13757-2) by the bus master.
    Wired,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::S1 => "S1",
            LinkMode::T1 => "T1",
            LinkMode::C1 => "C1",
            LinkMode::C1T1 => "C1+T1",
            LinkMode::N1 => "N1",
            LinkMode::Wired => "wired",
        }
    }

    /// Parses "S1", "T1", "C1", "C1+T1" (case-insensitive; "CT" and "C1T1" accepted too).
    pub fn parse(s: &str) -> Option<LinkMode> {
        match s.trim().to_ascii_uppercase().as_str() {
            "S1" | "S" => Some(LinkMode::S1),
            "T1" | "T" => Some(LinkMode::T1),
            "C1" | "C" => Some(LinkMode::C1),
            "C1+T1" | "C1T1" | "CT" | "T1+C1" => Some(LinkMode::C1T1),
            "N1" | "N" => Some(LinkMode::N1),
            _ => None,
        }
    }
}

impl std::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::wire::dll::CrcState;
pub use crate::wire::link::FrameFormat;

/// One received telegram: wM-Bus bytes starting at the L-field (or a wired M-Bus frame),
/// plus what the receiver knows.
///
/// `crc` says what the receiver delivered: CRCs still present (CUL), checked and removed
/// by the dongle, or failed by its own check. The decoder never guesses for a radio;
/// only [`CrcState::Unknown`] (hex typed by a person, [`RadioFrame::new`]) is read by
/// the rules of `wire::dll`.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioFrame {
    pub bytes: Vec<u8>,
    pub rssi_dbm: Option<f32>,
    pub link_mode: Option<LinkMode>,
    pub received_at: Option<SystemTime>,
    /// Which receiver heard it (device path or driver name), for diagnostics.
    pub source: Option<String>,
    /// What the receiver says about the DLL CRCs.
    pub crc: CrcState,
    /// Hand-pasted hex only, by explicit request: a frame longer than its L-field is
    /// read whole with L rewritten, and the reading says so.
    pub lenient_length: bool,
}

impl RadioFrame {
    /// Bytes whose origin is unknown (typed by a person): CRC layout read from the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        RadioFrame {
            bytes,
            rssi_dbm: None,
            link_mode: None,
            received_at: None,
            source: None,
            crc: CrcState::Unknown,
            lenient_length: false,
        }
    }

    /// Bytes from a receiver that checked and removed the DLL CRCs.
    pub fn checked(bytes: Vec<u8>, format: Option<FrameFormat>) -> Self {
        RadioFrame {
            crc: CrcState::Checked(format),
            ..RadioFrame::new(bytes)
        }
    }
}

/// Why a hex telegram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    #[error("no hex digits")]
    Empty,
    #[error("character {ch:?} at position {position} is not a hex digit")]
    BadDigit { ch: char, position: usize },
    #[error("odd number of hex digits ({0})")]
    OddLength(usize),
}

/// Reads a hex telegram as people and tools write them: upper or lower case, an optional
/// `0x` prefix, and separators (white space, `_`, `|`, `#`, `:`, `-`) anywhere.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::new();
    parse_hex_into(text, &mut out)?;
    Ok(out)
}

/// [`parse_hex`] into `out` (cleared first), reusing its buffer: `wmbusd decode -`
/// reads telegram after telegram into one frame. On error `out` holds no telegram.
pub fn parse_hex_into(text: &str, out: &mut Vec<u8>) -> Result<(), HexError> {
    out.clear();
    // Fast path for what tools and logs mostly carry: bare hex digits, even count.
    if bare_hex(text.as_bytes(), out) {
        return Ok(());
    }
    out.clear();
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    out.reserve(text.len() / 2);
    let mut high: Option<u8> = None;
    let mut digits = 0usize;
    for (position, ch) in text.char_indices() {
        let nibble = match ch {
            '0'..='9' => ch as u8 - b'0',
            'a'..='f' => ch as u8 - b'a' + 10,
            'A'..='F' => ch as u8 - b'A' + 10,
            c if c.is_whitespace() || matches!(c, '_' | '|' | '#' | ':' | '-') => continue,
            _ => {
                out.clear();
                return Err(HexError::BadDigit { ch, position });
            }
        };
        digits += 1;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if high.is_some() {
        out.clear();
        return Err(HexError::OddLength(digits));
    }
    if out.is_empty() {
        return Err(HexError::Empty);
    }
    Ok(())
}

/// The value of one hex digit (either case); `None` for any other byte.
pub(crate) fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `digits` into `out` when it is nothing but an even, non-zero number of hex
/// digits; false otherwise (`out` may then hold part of them).
fn bare_hex(digits: &[u8], out: &mut Vec<u8>) -> bool {
    if digits.is_empty() || digits.len() % 2 != 0 {
        return false;
    }
    // Sized once: pushing without a known length grows the vector step by step.
    out.reserve(digits.len() / 2);
    for pair in digits.chunks_exact(2) {
        if let [h, l] = pair {
            match (hex_nibble(*h), hex_nibble(*l)) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_into_reuses_and_replaces() {
        let mut buf = vec![0xAA; 40];
        parse_hex_into("2E44", &mut buf).unwrap();
        assert_eq!(buf, [0x2E, 0x44]);
        parse_hex_into("0x01 02", &mut buf).unwrap();
        assert_eq!(buf, [0x01, 0x02]);
        assert!(parse_hex_into("2E4G", &mut buf).is_err());
        assert!(buf.is_empty());
        assert!(parse_hex_into("2E4", &mut buf).is_err());
        assert!(buf.is_empty());
    }

    #[test]
    fn fast_path_agrees_with_the_general_rules() {
        for input in [
            "2E4493157856341233037A2A",
            "2e44931578563412",
            "00",
            "0x2E44",
            "2E 44",
        ] {
            let general: Vec<u8> = input
                .trim_start_matches("0x")
                .split_whitespace()
                .collect::<String>()
                .as_bytes()
                .chunks(2)
                .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                .collect();
            assert_eq!(parse_hex(input).unwrap(), general, "{input:?}");
        }
        assert_eq!(parse_hex("2E4"), Err(HexError::OddLength(3)));
        assert!(matches!(parse_hex("ÄÄ"), Err(HexError::BadDigit { .. })));
    }

    #[test]
    fn hex_with_separators() {
        assert_eq!(
            parse_hex("0x2E_44 93|15#78").unwrap(),
            vec![0x2E, 0x44, 0x93, 0x15, 0x78]
        );
        assert_eq!(parse_hex(" aB cd\n").unwrap(), vec![0xAB, 0xCD]);
    }

    #[test]
    fn hex_errors_say_where() {
        assert_eq!(parse_hex("2E4"), Err(HexError::OddLength(3)));
        assert_eq!(
            parse_hex("2Eg4"),
            Err(HexError::BadDigit {
                ch: 'g',
                position: 2
            })
        );
        assert_eq!(parse_hex(" _ "), Err(HexError::Empty));
    }

    #[test]
    fn link_modes_parse() {
        assert_eq!(LinkMode::parse("c1+t1"), Some(LinkMode::C1T1));
        assert_eq!(LinkMode::parse("T1"), Some(LinkMode::T1));
        assert_eq!(LinkMode::parse("X9"), None);
    }
}
