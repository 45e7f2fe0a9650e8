//! Wired M-Bus long frame (EN 13757-2): `68 L L 68 C A CI data… CS 16`.
//!
//! L counts C, A, CI and the data; CS is the sum of those bytes modulo 256. For CI 0x72 the
//! data starts with the 12-byte long TPL header (ID, M, version, medium, ACC, STS, and a
//! signature in the CF position), parsed with [`crate::wire::tpl`].

use super::tpl::TplRepr;
use super::{Error, ErrorKind, Layer, Result};

pub const START: u8 = 0x68;
pub const STOP: u8 = 0x16;
/// Bytes around the L-counted part: 68 L L 68 before, CS 16 after.
const OVERHEAD: usize = 6;
/// C, A and CI are always present.
const MIN_L: u8 = 3;

/// A long frame borrowing its user data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MbusLongFrame<'a> {
    /// C-field (0x08 = RSP_UD).
    pub control: u8,
    /// Primary address (0..250 assigned, 253 secondary addressing, 254/255 broadcast).
    pub address: u8,
    pub ci: u8,
    /// Bytes after the CI up to (excluding) the checksum.
    pub data: &'a [u8],
}

impl<'a> MbusLongFrame<'a> {
    /// Parses a long frame at the start of `bytes`; returns it and the bytes consumed
    /// (L + 6). Checks both L bytes, both start bytes, the checksum and the stop byte.
    pub fn parse(bytes: &'a [u8]) -> Result<(MbusLongFrame<'a>, usize)> {
        let Some(&[s1, l1, l2, s2]) = bytes.first_chunk::<4>() else {
            return Err(Error::truncated(Layer::Link, bytes.len(), 4 - bytes.len()));
        };
        if s1 != START {
            return Err(damaged(0, "start byte is not 68"));
        }
        if l1 != l2 {
            return Err(damaged(2, "the two L-fields differ"));
        }
        if s2 != START {
            return Err(damaged(3, "second start byte is not 68"));
        }
        if l1 < MIN_L {
            return Err(damaged(1, "L-field below 3 (no room for C, A, CI)"));
        }
        let l = usize::from(l1);
        let total = l + OVERHEAD;
        let Some(frame) = bytes.get(..total) else {
            // One byte dropped (or the end cut off): the length no longer fits L.
            return Err(Error::new(
                Layer::Link,
                bytes.len(),
                ErrorKind::Damaged(
                    "no stop byte (the frame is shorter than its L-field announces)",
                ),
            ));
        };
        let (Some(body), Some(&checksum), Some(&stop)) =
            (frame.get(4..4 + l), frame.get(4 + l), frame.get(5 + l))
        else {
            return Err(Error::truncated(Layer::Link, bytes.len(), 1));
        };
        if stop != STOP {
            return Err(damaged(5 + l, "no stop byte"));
        }
        let computed = checksum_of(body);
        if computed != checksum {
            return Err(Error::new(
                Layer::Link,
                4 + l,
                ErrorKind::Checksum {
                    stored: checksum,
                    computed,
                },
            ));
        }
        let (Some(&control), Some(&address), Some(&ci), Some(data)) =
            (body.first(), body.get(1), body.get(2), body.get(3..))
        else {
            return Err(Error::truncated(Layer::Link, 4, 3));
        };
        let frame = MbusLongFrame {
            control,
            address,
            ci,
            data,
        };
        Ok((frame, total))
    }

    /// Total frame length.
    pub fn buffer_len(&self) -> usize {
        OVERHEAD + 3 + self.data.len()
    }

    /// Appends the frame, computing L and the checksum. Fails when the data is too long
    /// for the 8-bit L-field (more than 252 bytes after the CI).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let l = u8::try_from(3 + self.data.len())
            .map_err(|_| Error::invalid(Layer::Link, 1, "M-Bus frame too long for L"))?;
        out.extend_from_slice(&[START, l, l, START]);
        let start = out.len();
        out.extend_from_slice(&[self.control, self.address, self.ci]);
        out.extend_from_slice(self.data);
        let cs = checksum_of(out.get(start..).unwrap_or_default());
        out.extend_from_slice(&[cs, STOP]);
        Ok(())
    }

    /// The transport header for CIs that carry one (0x72: long header). Returns the TPL and
    /// how many bytes of [`MbusLongFrame::data`] it used; error offsets are frame offsets.
    pub fn tpl(&self) -> Result<(TplRepr, usize)> {
        // CI sits at frame offset 6, data begins at 7.
        TplRepr::parse_with_ci(self.ci, self.data).map_err(|e| {
            if e.offset == 0 && matches!(e.kind, super::ErrorKind::Unsupported(_)) {
                e.shift(6)
            } else {
                e.shift(7)
            }
        })
    }
}

fn damaged(offset: usize, what: &'static str) -> Error {
    Error::new(Layer::Link, offset, ErrorKind::Damaged(what))
}

/// Single character acknowledging a wired request (EN 13757-2).
pub const SINGLE_ACK: u8 = 0xE5;
/// Start of a short frame `10 C A CS 16`.
pub const SHORT_START: u8 = 0x10;
const SHORT_LEN: usize = 5;

/// A received wired M-Bus frame of any of the EN 13757-2 formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiredFrame<'a> {
    /// The single character E5.
    Ack,
    /// `10 C A CS 16`: a request or link command, no CI and no data.
    Short { control: u8, address: u8 },
    /// A long frame; a control frame when it carries a CI but no data (L = 3).
    Long(MbusLongFrame<'a>),
}

impl<'a> WiredFrame<'a> {
    /// Parses the wired frame at the start of `bytes`; returns it and the bytes it used.
    /// Every check of the frame (start and stop bytes, both L-fields, checksum, length)
    /// is final: a failure is a damaged wired frame.
    pub fn parse(bytes: &'a [u8]) -> Result<(WiredFrame<'a>, usize)> {
        match bytes.first() {
            Some(&SINGLE_ACK) => Ok((WiredFrame::Ack, 1)),
            Some(&SHORT_START) => {
                let Some(&[_, control, address, cs, stop]) = bytes.first_chunk::<SHORT_LEN>()
                else {
                    return Err(Error::new(
                        Layer::Link,
                        bytes.len(),
                        ErrorKind::Damaged("short frame of fewer than 5 bytes"),
                    ));
                };
                if stop != STOP {
                    return Err(damaged(4, "no stop byte"));
                }
                let computed = control.wrapping_add(address);
                if cs != computed {
                    return Err(Error::new(
                        Layer::Link,
                        3,
                        ErrorKind::Checksum {
                            stored: cs,
                            computed,
                        },
                    ));
                }
                Ok((WiredFrame::Short { control, address }, SHORT_LEN))
            }
            _ => MbusLongFrame::parse(bytes).map(|(f, used)| (WiredFrame::Long(f), used)),
        }
    }

    /// Appends the frame (for simulators and tests).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            WiredFrame::Ack => out.push(SINGLE_ACK),
            WiredFrame::Short { control, address } => out.extend_from_slice(&[
                SHORT_START,
                *control,
                *address,
                control.wrapping_add(*address),
                STOP,
            ]),
            WiredFrame::Long(long) => long.emit(out)?,
        }
        Ok(())
    }
}

/// True when `bytes` are shaped like a wired M-Bus frame: the single character E5, a
/// five-byte `10 … 16` short frame, or a frame starting 68 with at least two of the
/// marks of a long frame (second start byte, equal L-fields, stop byte, length L + 6). Only hex typed by a person needs this: receivers say what they
/// deliver.
pub fn looks_wired(bytes: &[u8]) -> bool {
    match bytes {
        [SINGLE_ACK] => true,
        [SHORT_START, _, _, _, _] => true,
        // One damaged byte must not turn a wired frame into a wireless one: two of the
        // four marks of a long frame suffice.
        [START, l1, l2, s2, ..] => {
            let marks = [
                *s2 == START,
                l1 == l2,
                bytes.last() == Some(&STOP),
                bytes.len() == usize::from(*l1) + OVERHEAD
                    || bytes.len() == usize::from(*l2) + OVERHEAD,
            ];
            marks.iter().filter(|&&m| m).count() >= 2
        }
        _ => false,
    }
}

fn checksum_of(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tpl::{HeaderKind, SecurityMode};
    use crate::wire::ErrorKind;
    use proptest::prelude::*;

    /// RSP_UD from primary address 1 with a long header and one record (04 13 = volume).
    fn sample() -> Vec<u8> {
        let data = [
            0x78, 0x56, 0x34, 0x12, 0x2D, 0x2C, 0x01, 0x07, 0x05, 0x00, 0x00, 0x00, 0x04, 0x13,
            0x08, 0x19, 0x00, 0x00,
        ];
        let mut out = Vec::new();
        MbusLongFrame {
            control: 0x08,
            address: 0x01,
            ci: 0x72,
            data: &data,
        }
        .emit(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn emit_then_parse() {
        let bytes = sample();
        assert_eq!(&bytes[..4], &[0x68, 21, 21, 0x68]);
        assert_eq!(bytes.last(), Some(&0x16));
        let (frame, used) = MbusLongFrame::parse(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.buffer_len(), bytes.len());
        assert_eq!((frame.control, frame.address, frame.ci), (0x08, 0x01, 0x72));
        let (tpl, tpl_len) = frame.tpl().unwrap();
        assert_eq!(tpl_len, 12);
        assert_eq!(tpl.kind(), HeaderKind::Long);
        assert_eq!(tpl.long_address.unwrap().id_string(), "12345678");
        assert_eq!(tpl.long_address.unwrap().manufacturer().to_string(), "KAM");
        assert_eq!(tpl.access_number(), Some(0x05));
        assert_eq!(
            &frame.data[tpl_len..],
            &[0x04, 0x13, 0x08, 0x19, 0x00, 0x00]
        );
    }

    #[test]
    fn corrupted_frames() {
        let good = sample();
        let mut bad = good.clone();
        bad[10] ^= 1;
        let err = MbusLongFrame::parse(&bad).unwrap_err();
        assert_eq!((err.layer, err.offset), (Layer::Link, good.len() - 2));
        assert!(matches!(err.kind, ErrorKind::Checksum { .. }));

        let mut bad = good.clone();
        bad[2] = bad[1] + 1;
        assert_eq!(MbusLongFrame::parse(&bad).unwrap_err().offset, 2);

        let mut bad = good.clone();
        *bad.last_mut().unwrap() = 0x17;
        assert_eq!(
            MbusLongFrame::parse(&bad).unwrap_err().offset,
            good.len() - 1
        );

        let err = MbusLongFrame::parse(&good[..good.len() - 3]).unwrap_err();
        assert_eq!(
            err,
            Error::new(
                Layer::Link,
                good.len() - 3,
                ErrorKind::Damaged(
                    "no stop byte (the frame is shorter than its L-field announces)"
                )
            )
        );
        assert!(MbusLongFrame::parse(&[0xE5]).is_err());
        assert!(MbusLongFrame::parse(&[0x68, 2, 2, 0x68, 0, 0, 0, 0x16]).is_err());
    }

    #[test]
    fn tpl_error_offsets_are_frame_offsets() {
        let frame = MbusLongFrame {
            control: 0x08,
            address: 0,
            ci: 0x72,
            data: &[0x78, 0x56],
        };
        assert_eq!(frame.tpl().unwrap_err(), Error::truncated(Layer::Tpl, 9, 2));
        let frame = MbusLongFrame { ci: 0xA1, ..frame };
        assert_eq!(frame.tpl().unwrap_err().offset, 6);
    }

    /// Every wired long frame of the corpus parses, checksum included, and carries a long
    /// TPL header without encryption.
    #[test]
    fn corpus_wired_frames() {
        let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
        let mut count = 0;
        for (line_no, line) in corpus.lines().enumerate() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            if entry["frame"] != "wired_mbus_long_frame" {
                continue;
            }
            count += 1;
            let bytes = hex::decode(entry["telegram"].as_str().unwrap()).unwrap();
            let (frame, used) = MbusLongFrame::parse(&bytes)
                .unwrap_or_else(|e| panic!("line {}: {e}", line_no + 1));
            assert_eq!(used, bytes.len(), "line {}", line_no + 1);
            assert_eq!(
                format!("{:02X}", frame.ci),
                entry["ci"].as_str().unwrap(),
                "line {}",
                line_no + 1
            );
            let (tpl, tpl_len) = frame.tpl().unwrap();
            assert_eq!(tpl_len, 12);
            assert_eq!(tpl.security_mode(), SecurityMode::None);
            let mut out = Vec::new();
            frame.emit(&mut out).unwrap();
            assert_eq!(out, bytes);
        }
        assert_eq!(count, 27);
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), fix in any::<bool>()) {
            if fix && bytes.len() >= 4 {
                bytes[0] = START;
                bytes[3] = START;
                bytes[2] = bytes[1];
            }
            if let Ok((frame, used)) = MbusLongFrame::parse(&bytes) {
                prop_assert_eq!(frame.buffer_len(), used);
                let _ = frame.tpl();
            }
        }
    }
}
