//! Replay files: one hex telegram per line, for demos, tests and bug reports.
//!
//! ```text
//! # comment lines and blank lines are skipped; `#` also starts a trailing comment
//! 2E44931578563412330303…                      plain hex (optional 0x prefix)
//! -67.5;2E 44 93 15 | 78 56 34 12 _ 33 03 …    RSSI in dBm, then hex
//! 2026-11-30T23:58:00Z;-71;2E44…               recorded time (RFC 3339), RSSI, hex
//! 2026-11-30T23:58:00+01:00;2E44…              recorded time without RSSI
//! ```
//! The recorded time is the time of reception when the radio is configured with
//! `clock = "recorded"`; otherwise it is read and ignored.
//! Spaces, tabs, `_` and `|` inside the hex are ignored so annotated dumps can be pasted.
//! Telegrams that still carry format-A DLL CRCs (L does not match the length) are accepted
//! when those CRCs verify, and delivered CRC-free. A format-B frame's L counts its CRCs, so
//! it is indistinguishable from a canonical frame here and is passed on unchanged; the
//! decoder's link-layer normalisation deals with it.

use super::{check_canonical, decode_hex, HexError, TelegramError};

/// A telegram read from a replay file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayTelegram {
    /// Canonical frame.
    pub frame: Vec<u8>,
    pub rssi_dbm: Option<f32>,
    /// Time of reception written at the start of the line, if any.
    pub recorded_at: Option<std::time::SystemTime>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Why a line of a replay file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("replay line {line}: recorded time {text:?} is not an RFC 3339 time")]
    BadTime { line: usize, text: String },
    #[error("replay line {line}: RSSI {text:?} is not a number of dBm")]
    BadRssi { line: usize, text: String },
    #[error("replay line {line}: {error}")]
    Hex { line: usize, error: HexError },
    #[error("replay line {line}: {error}")]
    Telegram { line: usize, error: TelegramError },
    #[error(
        "replay line {line}: L-field does not match the length and no format-A DLL CRCs verify"
    )]
    NotCanonical { line: usize },
}

/// One line of a replay file before its hex is read. `wmbusd decode -` reads its input
/// lines with [`split_line`] too, so a replay file decodes as the replay radio reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineParts<'a> {
    pub recorded_at: Option<std::time::SystemTime>,
    pub rssi_dbm: Option<f32>,
    /// The hex as written (separators and a `0x` prefix still in it).
    pub hex: &'a str,
}

/// Splits one line into time, RSSI and hex; `Ok(None)` for blank and comment lines.
pub fn split_line(text: &str, line: usize) -> Result<Option<LineParts<'_>>, Error> {
    let content = text.split('#').next().unwrap_or("").trim();
    if content.is_empty() {
        return Ok(None);
    }
    let (recorded_at, content) = split_recorded_time(content, line)?;
    let (rssi_dbm, hex_part) = match content.split_once(';') {
        Some((rssi, hex)) => {
            let rssi_text = rssi.trim();
            let value = rssi_text
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::BadRssi {
                    line,
                    text: rssi_text.to_string(),
                })?;
            (Some(value), hex)
        }
        None => (None, content),
    };
    Ok(Some(LineParts {
        recorded_at,
        rssi_dbm,
        hex: hex_part.trim(),
    }))
}

/// Parses one line; `Ok(None)` for blank and comment lines. `line` is 1-based.
pub fn parse_line(text: &str, line: usize) -> Result<Option<ReplayTelegram>, Error> {
    let Some(LineParts {
        recorded_at,
        rssi_dbm,
        hex: hex_part,
    }) = split_line(text, line)?
    else {
        return Ok(None);
    };
    let hex_part = hex_part
        .strip_prefix("0x")
        .or_else(|| hex_part.strip_prefix("0X"))
        .unwrap_or(hex_part);
    let digits: String = hex_part
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '_' | '|'))
        .collect();
    let bytes = decode_hex(&digits).map_err(|error| Error::Hex { line, error })?;
    let frame = canonicalise(bytes).map_err(|e| match e {
        Some(error) => Error::Telegram { line, error },
        None => Error::NotCanonical { line },
    })?;
    Ok(Some(ReplayTelegram {
        frame,
        rssi_dbm,
        recorded_at,
        line,
    }))
}

/// Takes a leading `time;` off the line. A first field with a `T` after a digit is meant
/// as a time (neither an RSSI nor hex has one), so a malformed one is an error.
fn split_recorded_time(
    content: &str,
    line: usize,
) -> Result<(Option<std::time::SystemTime>, &str), Error> {
    let Some((first, rest)) = content.split_once(';') else {
        return Ok((None, content));
    };
    let first = first.trim();
    let looks_like_time = first.starts_with(|c: char| c.is_ascii_digit())
        && first.contains(['T', 't'])
        && first.contains('-');
    if !looks_like_time {
        return Ok((None, content));
    }
    match crate::timefmt::parse_rfc3339_offset(&first.replace('t', "T")) {
        Some(t) => Ok((Some(t), rest)),
        None => Err(Error::BadTime {
            line,
            text: first.to_string(),
        }),
    }
}

/// Returns the frame CRC-free; `Err(None)` when L is wrong and format-A CRCs do not verify.
fn canonicalise(bytes: Vec<u8>) -> Result<Vec<u8>, Option<TelegramError>> {
    match check_canonical(&bytes) {
        Ok(()) => Ok(bytes),
        Err(e @ TelegramError::TooShort { .. }) => Err(Some(e)),
        Err(TelegramError::LengthMismatch { .. }) => {
            super::cul::strip_crc_format_a(&bytes).map_err(|_| None)
        }
    }
}

/// Parses a whole file: every telegram or the reason its line was rejected.
pub fn parse_text(text: &str) -> Vec<Result<ReplayTelegram, Error>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(l, i + 1).transpose())
        .collect()
}

/// Writes a telegram as a replay line (inverse of [`parse_line`]).
pub fn format_line(frame: &[u8], rssi_dbm: Option<f32>) -> String {
    match rssi_dbm {
        Some(r) => format!("{r};{}\n", hex::encode_upper(frame)),
        None => format!("{}\n", hex::encode_upper(frame)),
    }
}

/// A replay line with its recorded time first (inverse of [`parse_line`]).
pub fn format_recorded_line(
    at: std::time::SystemTime,
    frame: &[u8],
    rssi_dbm: Option<f32>,
) -> String {
    format!(
        "{};{}",
        crate::timefmt::rfc3339(at),
        format_line(frame, rssi_dbm)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile_a() -> Vec<u8> {
        hex::decode("2E449315785634123303 7A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3".replace(' ', "")).unwrap()
    }

    #[test]
    fn file_with_comments_rssi_and_separators() {
        let text = "# replay demo\n\n\
            2E449315785634123303 7A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3\n\
            -67.5; 2E 44 9315_78563412|3303 7A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3 # gas meter\n\
            0x2E449315785634123303 7A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3\n";
        let items = parse_text(text);
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[0],
            Ok(ReplayTelegram {
                frame: profile_a(),
                rssi_dbm: None,
                recorded_at: None,
                line: 3
            })
        );
        assert_eq!(
            items[1],
            Ok(ReplayTelegram {
                frame: profile_a(),
                rssi_dbm: Some(-67.5),
                recorded_at: None,
                line: 4
            })
        );
        assert!(matches!(&items[2], Ok(t) if t.frame == profile_a()));
    }

    #[test]
    fn crc_carrying_line_is_stripped() {
        let a = super::super::cul::add_crc_format_a(&profile_a()).unwrap();
        assert_eq!(
            parse_line(&hex::encode(&a), 1).map(|t| t.map(|t| t.frame)),
            Ok(Some(profile_a()))
        );
        // Format B's L counts its CRCs, so the line looks canonical and passes unchanged.
        let b = super::super::cul::add_crc_format_b(&profile_a()).unwrap();
        assert_eq!(
            parse_line(&hex::encode(&b), 1).map(|t| t.map(|t| t.frame)),
            Ok(Some(b))
        );
    }

    #[test]
    fn bad_lines_have_reasons() {
        assert!(matches!(
            parse_line("abc", 2),
            Err(Error::Hex { line: 2, .. })
        ));
        assert!(matches!(
            parse_line("loud;2E44", 3),
            Err(Error::BadRssi { line: 3, .. })
        ));
        assert!(matches!(
            parse_line("NaN;2E44", 3),
            Err(Error::BadRssi { .. })
        ));
        assert!(matches!(
            parse_line("2E44", 4),
            Err(Error::Telegram { line: 4, .. })
        ));
        let mut wrong_l = profile_a();
        wrong_l[0] = 0x20;
        assert_eq!(
            parse_line(&hex::encode(wrong_l), 5),
            Err(Error::NotCanonical { line: 5 })
        );
        assert_eq!(parse_line("   # only a comment", 6), Ok(None));
    }

    #[test]
    fn format_round_trip() {
        let line = format_line(&profile_a(), Some(-42.5));
        assert_eq!(
            parse_line(&line, 1),
            Ok(Some(ReplayTelegram {
                frame: profile_a(),
                rssi_dbm: Some(-42.5),
                recorded_at: None,
                line: 1
            }))
        );
    }

    #[test]
    fn recorded_time_first_with_and_without_rssi() {
        let at = crate::timefmt::parse_rfc3339("2026-11-30T23:58:00Z").unwrap();
        let hexs = hex::encode_upper(profile_a());
        for (line, rssi) in [
            (format!("2026-11-30T23:58:00Z;-71;{hexs}"), Some(-71.0)),
            (format!("2026-12-01T00:58:00+01:00; {hexs}"), None),
        ] {
            let t = parse_line(&line, 1).unwrap().unwrap();
            assert_eq!(t.recorded_at, Some(at), "{line}");
            assert_eq!(t.rssi_dbm, rssi);
            assert_eq!(t.frame, profile_a());
        }
        let round = format_recorded_line(at, &profile_a(), Some(-60.5));
        let t = parse_line(&round, 7).unwrap().unwrap();
        assert_eq!(
            (t.recorded_at, t.rssi_dbm, t.line),
            (Some(at), Some(-60.5), 7)
        );
        assert!(matches!(
            parse_line(&format!("2026-13-30T23:58:00Z;{hexs}"), 9),
            Err(Error::BadTime { line: 9, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_text(&s);
        }
    }
}
