//! culfw ASCII protocol of CC1101 sticks (CUL, nanoCUL, …), protocol.md §6.3.
//!
//! The stick reports each telegram as one line: `b` (frame format A) or `bY` (format B)
//! followed by the hex of the on-air frame *with* DLL CRCs, then, when reporting was
//! enabled with `X21`, two hex bytes LQI and RSSI. Every other line is status text.
//! Lines with odd hex length (nanoCUL firmware truncates long telegrams) or failing
//! CRCs are rejected with the reason.
//!
//! RSSI: CC1101 datasheet formula `dBm = (int8)raw / 2 - 74`.

use super::{check_canonical, decode_hex, HexError, TelegramError};
use crate::frame::LinkMode;
use crate::wire::link;
use crate::wire::ErrorKind;

/// Default serial speed.
pub const BAUD: u32 = 38_400;
/// Longest line culfw can produce: `bY`, 2 × 291 frame hex, 4 hex LQI/RSSI, slack.
pub const MAX_LINE: usize = 600;

/// Asks for the version string, e.g. `V 1.30 CUL868`.
pub const CMD_VERSION: &str = "V\r\n";
/// Enables reports with LQI and RSSI appended to telegram lines.
pub const CMD_REPORT_RSSI: &str = "X21\r\n";

pub use crate::wire::link::FrameFormat;

/// Command that switches the receiver to `mode`.
pub fn listen_command(mode: LinkMode) -> Result<&'static str, Error> {
    match mode {
        LinkMode::S1 => Ok("brs\r\n"),
        LinkMode::T1 => Ok("brt\r\n"),
        LinkMode::C1 => Ok("brc\r\n"),
        // Whether culfw's C receiver also hears T1 is not documented; do not pretend.
        LinkMode::C1T1 | LinkMode::N1 | LinkMode::Wired => Err(Error::UnsupportedMode(mode)),
    }
}

/// The acknowledgement culfw prints for a listen command.
pub fn mode_ack(mode: LinkMode) -> Option<&'static str> {
    match mode {
        LinkMode::S1 => Some("SMODE"),
        LinkMode::T1 => Some("TMODE"),
        LinkMode::C1 => Some("CMODE"),
        LinkMode::C1T1 | LinkMode::N1 | LinkMode::Wired => None,
    }
}

/// A telegram line, decoded and CRC-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Telegram {
    /// Canonical frame, DLL CRCs removed, L rewritten to count the remaining bytes.
    pub frame: Vec<u8>,
    pub format: FrameFormat,
    pub lqi: Option<u8>,
    pub rssi_raw: Option<u8>,
    pub rssi_dbm: Option<f32>,
}

/// One line from the stick.
#[derive(Debug, Clone, PartialEq)]
pub enum CulLine {
    Telegram(Telegram),
    /// Answer to `V`; contains "CUL" for a culfw stick.
    Version(String),
    /// `SMODE` / `TMODE` / `CMODE` acknowledgement.
    ModeAck(LinkMode),
    /// Anything else the firmware prints.
    Status(String),
}

/// Why a line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cul: telegram line: {0}")]
    Hex(HexError),
    #[error("cul: telegram line has {digits} hex digits, too few for LQI and RSSI")]
    NoRoomForRssi { digits: usize },
    #[error("cul: format {format:?}: frame of {got} byte(s), L-field implies {expected}")]
    LengthMismatch {
        format: FrameFormat,
        expected: usize,
        got: usize,
    },
    #[error("cul: format {format:?}: CRC of block at byte {offset}: stored {stored:04X}, computed {computed:04X}")]
    Crc {
        format: FrameFormat,
        offset: usize,
        stored: u16,
        computed: u16,
    },
    #[error("cul: telegram: {0}")]
    Telegram(TelegramError),
    #[error("cul: line of {discarded} byte(s) exceeds the longest possible telegram line")]
    Overlong { discarded: usize },
    #[error("cul: link mode {0} cannot be selected on culfw")]
    UnsupportedMode(LinkMode),
}

/// Verifies and removes the DLL CRCs of a frame in `format` (L rewritten to exclude
/// them), as `wire::link` does for every receiver; errors in this module's terms.
fn strip_crc(raw: &[u8], format: FrameFormat) -> Result<Vec<u8>, Error> {
    let announced = raw.first().map_or(0, |&l| usize::from(l) + 1);
    if announced < super::MIN_TELEGRAM_LEN {
        return Err(Error::Telegram(TelegramError::TooShort { len: raw.len() }));
    }
    let canonical = link::strip_crc(raw, format).map_err(|e| match e.kind {
        ErrorKind::Crc { stored, computed } => Error::Crc {
            format,
            offset: e.offset,
            stored,
            computed,
        },
        _ => Error::LengthMismatch {
            format,
            expected: match format {
                FrameFormat::A => raw
                    .first()
                    .and_then(|&l| link::format_a_len(l))
                    .unwrap_or(0),
                FrameFormat::B => raw.first().map_or(0, |&l| usize::from(l) + 1),
            },
            got: raw.len(),
        },
    })?;
    check_canonical(&canonical).map_err(Error::Telegram)?;
    Ok(canonical)
}

pub(crate) fn strip_crc_format_a(raw: &[u8]) -> Result<Vec<u8>, Error> {
    strip_crc(raw, FrameFormat::A)
}

pub(crate) fn strip_crc_format_b(raw: &[u8]) -> Result<Vec<u8>, Error> {
    strip_crc(raw, FrameFormat::B)
}

/// Inserts DLL CRCs into a canonical frame (for simulators and tests).
fn add_crc(canonical: &[u8], format: FrameFormat) -> Result<Vec<u8>, Error> {
    check_canonical(canonical).map_err(Error::Telegram)?;
    link::add_crc(canonical, format).map_err(|_| Error::LengthMismatch {
        format,
        expected: 256,
        got: canonical.len(),
    })
}

pub fn add_crc_format_a(canonical: &[u8]) -> Result<Vec<u8>, Error> {
    add_crc(canonical, FrameFormat::A)
}

pub fn add_crc_format_b(canonical: &[u8]) -> Result<Vec<u8>, Error> {
    add_crc(canonical, FrameFormat::B)
}

/// Raw RSSI byte to dBm (CC1101 formula).
pub fn rssi_to_dbm(raw: u8) -> f32 {
    f32::from(i8::from_ne_bytes([raw])) / 2.0 - 74.0
}

/// Parses one line (without CR LF). `rssi_attached`: `X21` reporting is active.
pub fn parse_line(line: &str, rssi_attached: bool) -> Result<CulLine, Error> {
    let line = line.trim();
    let (format, hex) = if let Some(rest) = line.strip_prefix("bY") {
        (FrameFormat::B, rest)
    } else if let Some(rest) = line.strip_prefix('b') {
        (FrameFormat::A, rest)
    } else {
        return Ok(match line {
            "SMODE" => CulLine::ModeAck(LinkMode::S1),
            "TMODE" => CulLine::ModeAck(LinkMode::T1),
            "CMODE" => CulLine::ModeAck(LinkMode::C1),
            l if l.starts_with('V') && l.contains("CUL") => CulLine::Version(l.to_string()),
            l => CulLine::Status(l.to_string()),
        });
    };
    // Odd length means the firmware cut the line short; reject before splitting off RSSI.
    if hex.len() % 2 != 0 {
        return Err(Error::Hex(HexError::OddLength(hex.len())));
    }
    let (frame_hex, lqi, rssi_raw) = if rssi_attached {
        let Some(split) = hex
            .len()
            .checked_sub(4)
            .filter(|_| hex.is_char_boundary(hex.len() - 4))
        else {
            return Err(Error::NoRoomForRssi { digits: hex.len() });
        };
        let (f, tail) = hex.split_at(split);
        let tail = decode_hex(tail).map_err(|e| match e {
            HexError::NotHex { offset } => Error::Hex(HexError::NotHex {
                offset: offset + split,
            }),
            other => Error::Hex(other),
        })?;
        (f, tail.first().copied(), tail.get(1).copied())
    } else {
        (hex, None, None)
    };
    let raw = decode_hex(frame_hex).map_err(Error::Hex)?;
    let frame = match format {
        FrameFormat::A => strip_crc_format_a(&raw)?,
        FrameFormat::B => strip_crc_format_b(&raw)?,
    };
    check_canonical(&frame).map_err(Error::Telegram)?;
    Ok(CulLine::Telegram(Telegram {
        frame,
        format,
        lqi,
        rssi_raw,
        rssi_dbm: rssi_raw.map(rssi_to_dbm),
    }))
}

/// The on-air bytes of a telegram line (DLL CRCs still in place, unchecked) with its
/// format and RSSI; `None` for other lines. A line whose CRCs fail is handed to the
/// decoder this way, so that the failure names its block and is counted per meter.
pub fn raw_telegram(
    line: &str,
    rssi_attached: bool,
) -> Option<(FrameFormat, Vec<u8>, Option<f32>)> {
    let line = line.trim();
    let (format, hex) = if let Some(rest) = line.strip_prefix("bY") {
        (FrameFormat::B, rest)
    } else {
        (FrameFormat::A, line.strip_prefix('b')?)
    };
    let (frame_hex, rssi) = if rssi_attached {
        let split = hex
            .len()
            .checked_sub(4)
            .filter(|&s| hex.is_char_boundary(s))?;
        let (f, tail) = hex.split_at(split);
        let tail = decode_hex(tail).ok()?;
        (f, tail.get(1).copied().map(rssi_to_dbm))
    } else {
        (hex, None)
    };
    Some((format, decode_hex(frame_hex).ok()?, rssi))
}

/// Formats the line a stick prints for a canonical frame (for simulators and tests).
pub fn telegram_line(
    canonical: &[u8],
    format: FrameFormat,
    lqi_rssi: Option<(u8, u8)>,
) -> Result<String, Error> {
    let raw = match format {
        FrameFormat::A => add_crc_format_a(canonical)?,
        FrameFormat::B => add_crc_format_b(canonical)?,
    };
    let mut s = String::from(match format {
        FrameFormat::A => "b",
        FrameFormat::B => "bY",
    });
    s.push_str(&hex::encode_upper(raw));
    if let Some((lqi, rssi)) = lqi_rssi {
        s.push_str(&format!("{lqi:02X}{rssi:02X}"));
    }
    s.push_str("\r\n");
    Ok(s)
}

/// A culfw stick as a session drives it: lines in, replies, initialisation and probe.
#[cfg(feature = "daemon")]
pub(crate) mod dongle {
    use super::{
        listen_command, parse_line, raw_telegram, CulLine, Error, CMD_REPORT_RSSI, CMD_VERSION,
        MAX_LINE,
    };
    use crate::frame::{CrcState, LinkMode};
    use crate::radio::link::{Dongle, Item, Port, Stop};
    use crate::radio::{DongleInfo, DriverKind, Line, LineSplitter, RadioError};

    const NAME: &str = "CUL";

    /// The answers the session waits for.
    pub(crate) enum Reply {
        Version(String),
        ModeAck(LinkMode),
        /// Anything else the firmware prints; no request waits for it.
        Status,
    }

    /// The stick's output split into lines; telegram lines carry LQI and RSSI (`X21`).
    pub(crate) struct Stream {
        lines: LineSplitter,
    }

    /// One non-empty line.
    fn item(line: &str) -> Item<Reply> {
        match parse_line(line, true) {
            Ok(CulLine::Telegram(tg)) => Item::Frame {
                bytes: tg.frame,
                rssi_dbm: tg.rssi_dbm,
                crc: CrcState::Checked(Some(tg.format)),
            },
            // Handed on with its CRCs: the decoder names the failing block and counts
            // the error against the meter.
            Err(Error::Crc { .. }) => match raw_telegram(line, true) {
                Some((format, bytes, rssi_dbm)) => Item::Frame {
                    bytes,
                    rssi_dbm,
                    crc: CrcState::Present(format),
                },
                None => Item::Bad(format!("cul: unreadable CRC-failed line {line:?}")),
            },
            Ok(CulLine::Version(v)) => Item::Reply(Reply::Version(v)),
            Ok(CulLine::ModeAck(m)) => Item::Reply(Reply::ModeAck(m)),
            Ok(CulLine::Status(s)) => {
                tracing::debug!(status = %s, "CUL status line");
                Item::Reply(Reply::Status)
            }
            Err(e) => Item::Bad(e.to_string()),
        }
    }

    impl Dongle for Stream {
        type Reply = Reply;

        fn fresh() -> Self {
            Stream {
                lines: LineSplitter::new(MAX_LINE),
            }
        }

        fn push(&mut self, bytes: &[u8]) {
            self.lines.push(bytes);
        }

        fn next_item(&mut self) -> Option<Item<Reply>> {
            loop {
                return Some(match self.lines.next_line()? {
                    Line::Overlong { discarded } => {
                        Item::Bad(Error::Overlong { discarded }.to_string())
                    }
                    Line::Text(t) if t.trim().is_empty() => continue,
                    Line::Text(t) => item(&t),
                });
            }
        }

        /// A line without newline just waits; culfw always ends lines.
        fn flush_stale(&mut self) -> Option<String> {
            None
        }

        fn liveness_request(&self) -> Vec<u8> {
            CMD_VERSION.as_bytes().to_vec()
        }

        fn probe_request() -> Vec<u8> {
            CMD_VERSION.as_bytes().to_vec()
        }

        fn identify(reply: &Reply) -> Option<DongleInfo> {
            let Reply::Version(v) = reply else {
                return None;
            };
            Some(DongleInfo {
                driver: DriverKind::Cul,
                description: v.clone(),
                id: None,
            })
        }

        /// Version, then RSSI reporting and the listen command in one write.
        async fn initialise(port: &mut Port<'_, Self>) -> Result<String, Stop> {
            let mode = port.mode();
            let version = port
                .transact(CMD_VERSION.as_bytes(), (NAME, "version"), |r| match r {
                    Reply::Version(v) => Some(v.clone()),
                    _ => None,
                })
                .await?;
            let listen = listen_command(mode).map_err(RadioError::request(NAME, "listen"))?;
            let mut req = CMD_REPORT_RSSI.as_bytes().to_vec();
            req.extend_from_slice(listen.as_bytes());
            port.transact(&req, (NAME, "listen command"), |r| match r {
                Reply::ModeAck(m) if *m == mode => Some(()),
                _ => None,
            })
            .await?;
            Ok(version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE_A: [u8; 47] = [
        0x2E, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, 0x7A, 0x2A, 0x00, 0x20, 0x25,
        0x59, 0x23, 0xC9, 0x5A, 0xAA, 0x26, 0xD1, 0xB2, 0xE7, 0x49, 0x3B, 0x01, 0x3E, 0xC4, 0xA6,
        0xF6, 0xD3, 0x52, 0x9B, 0x52, 0x0E, 0xDF, 0xF0, 0xEA, 0x6D, 0xEF, 0xC9, 0x9D, 0x6D, 0x69,
        0xEB, 0xF3,
    ];
    const T1_LINE: &str = "b2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A2ED6";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        decode_hex(&s).unwrap()
    }

    #[test]
    fn sontex_format_a_worked_example() {
        let raw = hex("34 44 EE 4D 81 39 29 27 16 08 81 1D
             7A 51 00 00 00 04 6D 19 12 A6 2B 03 6E 00 00 00 51 70
             42 6C E1 F1 43 6E 00 00 00 02 FF 2C 00 00 02 59 D6 D0
             D4 09 02 65 FC 09 02 FD 66 A0 00 44 C4");
        let stripped = strip_crc_format_a(&raw).unwrap();
        assert_eq!(stripped.len(), 53);
        assert_eq!(stripped.first(), Some(&0x34));
        assert_eq!(add_crc_format_a(&stripped), Ok(raw));
    }

    #[test]
    fn synthesised_formats_a_and_b() {
        let a = hex(
            "2E 44 93 15 78 56 34 12 33 03 33 63 7A 2A 00 20 25 59 23 C9 5A AA 26 D1 B2 E7 49 3B C2 AD
             01 3E C4 A6 F6 D3 52 9B 52 0E DF F0 EA 6D EF C9 55 B2 9D 6D 69 EB F3 EC 8A",
        );
        assert_eq!(add_crc_format_a(&PROFILE_A), Ok(a.clone()));
        assert_eq!(strip_crc_format_a(&a), Ok(PROFILE_A.to_vec()));
        let b = add_crc_format_b(&PROFILE_A).unwrap();
        assert_eq!(b.len(), 49);
        assert_eq!(b.first(), Some(&0x30));
        assert_eq!(b.get(47..), Some(&[0xB8, 0x53][..]));
        assert_eq!(strip_crc_format_b(&b), Ok(PROFILE_A.to_vec()));
    }

    #[test]
    fn long_format_b_round_trip() {
        // 200-byte canonical frame: two CRCs, L rewritten both ways.
        let mut canonical = vec![199u8];
        canonical.extend((0..199u8).map(|i| i.wrapping_mul(7)));
        let b = add_crc_format_b(&canonical).unwrap();
        assert_eq!(b.len(), 204);
        assert_eq!(b.first(), Some(&203));
        assert_eq!(strip_crc_format_b(&b), Ok(canonical));
    }

    #[test]
    fn recorded_t1_line() {
        match parse_line(T1_LINE, true) {
            Ok(CulLine::Telegram(t)) => {
                assert_eq!(t.frame, PROFILE_A.to_vec());
                assert_eq!(t.format, FrameFormat::A);
                assert_eq!(t.lqi, Some(0x2E));
                assert_eq!(t.rssi_raw, Some(0xD6));
                assert_eq!(t.rssi_dbm, Some(-95.0));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            telegram_line(&PROFILE_A, FrameFormat::A, Some((0x2E, 0xD6))),
            Ok(format!("{T1_LINE}\r\n"))
        );
    }

    #[test]
    fn format_b_line() {
        let line = telegram_line(&PROFILE_A, FrameFormat::B, Some((0x80, 0x10))).unwrap();
        assert!(line.starts_with("bY30449315"));
        match parse_line(line.trim_end(), true) {
            Ok(CulLine::Telegram(t)) => {
                assert_eq!(t.frame, PROFILE_A.to_vec());
                assert_eq!(t.format, FrameFormat::B);
                assert_eq!(t.rssi_dbm, Some(-66.0));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejected_lines_say_why() {
        // nanoCUL truncation: odd hex length.
        assert_eq!(
            parse_line(&T1_LINE[..T1_LINE.len() - 1], true),
            Err(Error::Hex(HexError::OddLength(T1_LINE.len() - 2)))
        );
        // One flipped nibble in the second block.
        let corrupt = T1_LINE.replacen("7A2A", "7A2B", 1);
        assert!(matches!(
            parse_line(&corrupt, true),
            Err(Error::Crc {
                format: FrameFormat::A,
                offset: 28,
                ..
            })
        ));
        // The decoder gets the line's bytes with their CRCs and names the failing block,
        // counted against the meter (issue 12), the same as for every other radio.
        let (format, raw, rssi) = raw_telegram(&corrupt, true).unwrap();
        assert_eq!(format, FrameFormat::A);
        assert!(rssi.is_some());
        let frame = crate::frame::RadioFrame {
            crc: crate::frame::CrcState::Present(format),
            ..crate::frame::RadioFrame::new(raw)
        };
        let err = crate::decode::Decoder::new(crate::keys::KeyStore::new())
            .decode(&frame)
            .unwrap_err();
        assert_eq!(err.kind, crate::decode::FailureKind::Crc);
        assert!(
            err.message.starts_with("CRC error in block 2 of format A"),
            "{err}"
        );
        assert!(err.meter.is_some());
        assert_eq!(raw_telegram("V 1.30 CUL868", true), None);
        // Lines cut at an even position no longer match the L-field.
        assert!(matches!(
            parse_line(&T1_LINE[..61], true),
            Err(Error::LengthMismatch { .. })
        ));
        assert_eq!(
            parse_line("bZZ", false),
            Err(Error::Hex(HexError::NotHex { offset: 0 }))
        );
        assert_eq!(
            parse_line("b12", true),
            Err(Error::NoRoomForRssi { digits: 2 })
        );
        assert!(matches!(
            parse_line("b1234", false),
            Err(Error::LengthMismatch {
                expected: 23,
                got: 2,
                ..
            })
        ));
        assert_eq!(
            parse_line("b0500", false),
            Err(Error::Telegram(TelegramError::TooShort { len: 2 }))
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_line("V 1.30 CUL868", true),
            Ok(CulLine::Version("V 1.30 CUL868".into()))
        );
        assert_eq!(
            parse_line("TMODE", true),
            Ok(CulLine::ModeAck(LinkMode::T1))
        );
        assert_eq!(parse_line("LOVF", true), Ok(CulLine::Status("LOVF".into())));
        assert_eq!(listen_command(LinkMode::C1), Ok("brc\r\n"));
        assert!(listen_command(LinkMode::C1T1).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}", rssi in proptest::prelude::any::<bool>()) {
            let _ = parse_line(&s, rssi);
            let _ = parse_line(&format!("b{s}"), rssi);
        }

        #[test]
        fn never_panics_on_hex(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_line(&format!("b{}", hex::encode(&bytes)), true);
            let _ = parse_line(&format!("bY{}", hex::encode(&bytes)), false);
        }

        #[test]
        fn crc_round_trips(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 10..251usize)) {
            let mut canonical = vec![body.len() as u8];
            canonical.extend_from_slice(&body);
            let a = add_crc_format_a(&canonical);
            proptest::prop_assert!(a.is_ok());
            proptest::prop_assert_eq!(strip_crc_format_a(&a.unwrap_or_default()), Ok(canonical.clone()));
            let b = add_crc_format_b(&canonical);
            proptest::prop_assert!(b.is_ok());
            proptest::prop_assert_eq!(strip_crc_format_b(&b.unwrap_or_default()), Ok(canonical));
        }
    }
}
