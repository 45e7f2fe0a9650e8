//! rtl-wmbus text output (RTL-SDR software receiver), protocol.md §6.5.
//!
//! One line per telegram:
//! `MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;0xHEX`,
//! optionally prefixed by the demodulator (`rla;`, `t2a;`) when run with `-v`. The hex is
//! already CRC-free. Only `T1;1;1`, `C1;1;1` and `S1;1;1` lines are accepted; lines that
//! do not start with a mode are the program's chatter.
//!
//! RSSI: rtl-wmbus prints raw SDR signal levels, not dBm, so `rssi_dbm` stays empty and
//! the raw level is kept in [`Telegram::packet_rssi`].

use super::{check_canonical, decode_hex, HexError, TelegramError};
use crate::frame::LinkMode;

/// Longest sensible line: 2 × 256 hex digits per telegram, two telegrams, fields.
pub const MAX_LINE: usize = 1_200;

/// One telegram from a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Telegram {
    /// Canonical frame (L fixed up to `len - 1` when the receiver got it wrong).
    pub frame: Vec<u8>,
    pub link_mode: LinkMode,
    /// Receiver clock, as printed (`YYYY-MM-DD HH:MM:SS.mmm`, receiver's local zone).
    pub timestamp: String,
    /// PACKET_RSSI field: raw SDR level, not dBm.
    pub packet_rssi: Option<i32>,
    /// Demodulator that produced the line (`rla`, `t2a`) with `-v`.
    pub algorithm: Option<String>,
    /// The L-field as received, if it had to be corrected.
    pub original_l: Option<u8>,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub enum RtlLine {
    /// One or (rarely) two telegrams.
    Telegrams(Vec<Telegram>),
    /// Not a telegram line (start-up messages, `rtl_wmbus: exiting`, …).
    Chatter(String),
}

/// Why a telegram line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("rtlwmbus: {mode} line with DLL CRC errors (CRC_OK = {flag:?})")]
    CrcFailed { mode: LinkMode, flag: String },
    #[error("rtlwmbus: {mode} line with 3-out-of-6 coding errors (3OUTOF6_OK = {flag:?})")]
    CodingFailed { mode: LinkMode, flag: String },
    #[error("rtlwmbus: {mode} line has no 0x… telegram field")]
    MissingHex { mode: LinkMode },
    #[error("rtlwmbus: telegram field {field}: {error}")]
    Hex { field: usize, error: HexError },
    #[error("rtlwmbus: telegram field {field}: {error}")]
    Telegram { field: usize, error: TelegramError },
    #[error("rtlwmbus: line of {discarded} byte(s) is too long")]
    Overlong { discarded: usize },
}

fn mode_of(field: &str) -> Option<LinkMode> {
    match field {
        "T1" => Some(LinkMode::T1),
        "C1" => Some(LinkMode::C1),
        "S1" => Some(LinkMode::S1),
        _ => None,
    }
}

/// Parses one output line (without the newline).
pub fn parse_line(line: &str) -> Result<RtlLine, Error> {
    let trimmed = line.trim();
    let (algorithm, rest) = match trimmed.split_once(';') {
        Some((alg @ ("rla" | "t2a"), rest)) => (Some(alg.to_string()), rest),
        _ => (None, trimmed),
    };
    let fields: Vec<&str> = rest.split(';').collect();
    let Some(mode) = fields.first().and_then(|f| mode_of(f)) else {
        return Ok(RtlLine::Chatter(trimmed.to_string()));
    };
    let flag = |i: usize| fields.get(i).copied().unwrap_or("").to_string();
    if flag(1) != "1" {
        return Err(Error::CrcFailed {
            mode,
            flag: flag(1),
        });
    }
    if flag(2) != "1" {
        return Err(Error::CodingFailed {
            mode,
            flag: flag(2),
        });
    }
    let timestamp = flag(3);
    let packet_rssi = fields.get(4).and_then(|f| f.trim().parse::<i32>().ok());
    let mut telegrams = Vec::new();
    for (field, text) in fields.iter().enumerate().skip(3) {
        let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) else {
            continue;
        };
        let mut frame = decode_hex(hex.trim()).map_err(|error| Error::Hex { field, error })?;
        let original_l = fix_l(&mut frame);
        check_canonical(&frame).map_err(|error| Error::Telegram { field, error })?;
        telegrams.push(Telegram {
            frame,
            link_mode: mode,
            timestamp: timestamp.clone(),
            packet_rssi,
            algorithm: algorithm.clone(),
            original_l,
        });
    }
    if telegrams.is_empty() {
        return Err(Error::MissingHex { mode });
    }
    Ok(RtlLine::Telegrams(telegrams))
}

/// The telegrams of a line whose DLL CRC check failed (`CRC_OK` not 1) but whose
/// 3-out-of-6 coding held: the bytes as the receiver printed them, for the decoder to
/// report as a CRC error counted against the meter its header names. Telegrams too
/// short to hold a link header name no meter and are left out; empty for other lines.
pub fn crc_failed_telegrams(line: &str) -> Vec<(LinkMode, Vec<u8>)> {
    let trimmed = line.trim();
    let rest = match trimmed.split_once(';') {
        Some(("rla" | "t2a", rest)) => rest,
        _ => trimmed,
    };
    let fields: Vec<&str> = rest.split(';').collect();
    let Some(mode) = fields.first().and_then(|f| mode_of(f)) else {
        return Vec::new();
    };
    if fields.get(1) == Some(&"1") || fields.get(2) != Some(&"1") {
        return Vec::new();
    }
    fields
        .iter()
        .skip(3)
        .filter_map(|text| text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")))
        .filter_map(|hex| decode_hex(hex.trim()).ok())
        .filter(|frame| frame.len() >= crate::wire::link::HEADER_LEN)
        .map(|frame| (mode, frame))
        .collect()
}

/// Old rtl-wmbus versions printed a wrong L; the hex itself is CRC-free and complete, so
/// L is recomputed from its length. Returns the original L if it changed.
fn fix_l(frame: &mut [u8]) -> Option<u8> {
    let len = frame.len();
    let first = frame.first_mut()?;
    let want = u8::try_from(len.checked_sub(1)?).ok()?;
    if *first == want {
        return None;
    }
    let old = *first;
    *first = want;
    Some(old)
}

/// Formats a line the way rtl-wmbus prints it (for simulators and tests).
pub fn telegram_line(
    mode: LinkMode,
    timestamp: &str,
    packet_rssi: i32,
    current_rssi: i32,
    canonical: &[u8],
) -> String {
    // LINK_LAYER_IDENT_NO: bytes 4..7 as little-endian u32, printed as 8 hex digits.
    let ident = canonical
        .get(4..8)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0);
    format!(
        "{};1;1;{timestamp};{packet_rssi};{current_rssi};{ident:08X};0x{}\n",
        mode.as_str(),
        hex::encode(canonical)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAMSTRUP: [u8; 43] = [
        0x2A, 0x44, 0x2D, 0x2C, 0x99, 0x87, 0x34, 0x76, 0x1B, 0x16, 0x8D, 0x20, 0x91, 0xD3, 0x7C,
        0xAC, 0x21, 0xE1, 0xD6, 0x8C, 0xDA, 0xFF, 0xCD, 0x3D, 0xC4, 0x52, 0xBD, 0x80, 0x29, 0x13,
        0xFF, 0x7B, 0x17, 0x06, 0xCA, 0x9E, 0x35, 0x5D, 0x6C, 0x27, 0x01, 0xCC, 0x24,
    ];

    fn kamstrup_line() -> String {
        format!(
            "C1;1;1;2020-01-23 10:25:13.000;97;148;76348799;0x{}",
            hex::encode_upper(KAMSTRUP)
        )
    }

    #[test]
    fn recorded_c1_line() {
        match parse_line(&kamstrup_line()) {
            Ok(RtlLine::Telegrams(t)) => {
                assert_eq!(t.len(), 1);
                let t = &t[0];
                assert_eq!(t.frame, KAMSTRUP.to_vec());
                assert_eq!(t.link_mode, LinkMode::C1);
                assert_eq!(t.timestamp, "2020-01-23 10:25:13.000");
                assert_eq!(t.packet_rssi, Some(97));
                assert_eq!(t.algorithm, None);
                assert_eq!(t.original_l, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            telegram_line(LinkMode::C1, "2020-01-23 10:25:13.000", 97, 148, &KAMSTRUP)
                .to_ascii_uppercase(),
            format!("{}\n", kamstrup_line()).to_ascii_uppercase()
        );
    }

    #[test]
    fn prefixed_and_double_lines() {
        let line = format!("t2a;{};0x{}", kamstrup_line(), hex::encode(KAMSTRUP));
        match parse_line(&line) {
            Ok(RtlLine::Telegrams(t)) => {
                assert_eq!(t.len(), 2);
                assert!(t.iter().all(|t| t.frame == KAMSTRUP.to_vec()));
                assert_eq!(t[0].algorithm.as_deref(), Some("t2a"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_l_is_fixed() {
        let mut bad = KAMSTRUP;
        bad[0] = 0x2C;
        let line = format!(
            "rla;T1;1;1;2019-04-03 19:00:42.000;97;148;76348799;0x{}",
            hex::encode(bad)
        );
        match parse_line(&line) {
            Ok(RtlLine::Telegrams(t)) => {
                assert_eq!(t[0].frame, KAMSTRUP.to_vec());
                assert_eq!(t[0].original_l, Some(0x2C));
                assert_eq!(t[0].link_mode, LinkMode::T1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn crc_failed_lines_hand_on_their_bytes() {
        let line = kamstrup_line().replacen("C1;1;1", "C1;0;1", 1);
        assert_eq!(
            crc_failed_telegrams(&line),
            vec![(LinkMode::C1, KAMSTRUP.to_vec())]
        );
        // Good lines and coding failures are not CRC failures.
        assert!(crc_failed_telegrams(&kamstrup_line()).is_empty());
        let coding = kamstrup_line().replacen("C1;1;1", "C1;0;0", 1);
        assert!(crc_failed_telegrams(&coding).is_empty());
        assert!(crc_failed_telegrams("C1;0;1;x;1;2;3;0x00").is_empty());
    }

    #[test]
    fn rejected_lines() {
        let line = kamstrup_line().replacen("C1;1;1", "C1;0;1", 1);
        assert_eq!(
            parse_line(&line),
            Err(Error::CrcFailed {
                mode: LinkMode::C1,
                flag: "0".into()
            })
        );
        let line = kamstrup_line().replacen("C1;1;1", "T1;1;0", 1);
        assert!(matches!(parse_line(&line), Err(Error::CodingFailed { .. })));
        assert_eq!(
            parse_line("T1;1;1;2019-04-03 19:00:42.000;97;148;88888888"),
            Err(Error::MissingHex { mode: LinkMode::T1 })
        );
        assert!(matches!(
            parse_line("T1;1;1;x;97;148;88888888;0x2A4"),
            Err(Error::Hex { field: 7, .. })
        ));
        assert!(matches!(
            parse_line("T1;1;1;x;97;148;88888888;0x0544"),
            Err(Error::Telegram { field: 7, .. })
        ));
        assert_eq!(
            parse_line("rtl_wmbus: exiting"),
            Ok(RtlLine::Chatter("rtl_wmbus: exiting".into()))
        );
        assert_eq!(parse_line(""), Ok(RtlLine::Chatter(String::new())));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_line(&s);
            let _ = parse_line(&format!("T1;1;1;{s}"));
            let _ = parse_line(&format!("rla;C1;1;1;t;1;2;3;0x{s}"));
        }
    }
}
