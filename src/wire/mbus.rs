//! Wired M-Bus long frame (EN 13757-2): `68 L L 68 C A CI data… CS 16`.
//!
//! L counts C, A, CI and the data; CS is the sum of those bytes modulo 256. For CI 0x72 the
//! data starts with the 12-byte long TPL header (ID, M, version, medium, ACC, STS, and a
//! signature in the CF position), parsed with [`crate::wire::tpl`].

use super::tpl::TplRepr;
use super::{Error, ErrorKind, Layer, Result};

pub const START: u8 = 0x68;
pub const STOP: u8 = 0x16;
/// The L-counted part (C, A, CI, data) starts after 68 L L 68.
const BODY_AT: usize = field::CONTROL.start;
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
            return Err(damaged(field::START1.start, "start byte is not 68"));
        }
        if l1 != l2 {
            return Err(damaged(field::LENGTHS.end - 1, "the two L-fields differ"));
        }
        if s2 != START {
            return Err(damaged(field::START2.start, "second start byte is not 68"));
        }
        if l1 < MIN_L {
            return Err(damaged(
                field::LENGTHS.start,
                "L-field below 3 (no room for C, A, CI)",
            ));
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
        let (Some(body), Some(&checksum), Some(&stop)) = (
            frame.get(BODY_AT..BODY_AT + l),
            frame.get(BODY_AT + l),
            frame.get(BODY_AT + 1 + l),
        ) else {
            return Err(Error::truncated(Layer::Link, bytes.len(), 1));
        };
        if stop != STOP {
            return Err(damaged(BODY_AT + 1 + l, "no stop byte"));
        }
        let computed = checksum_of(body);
        if computed != checksum {
            return Err(Error::new(
                Layer::Link,
                BODY_AT + l,
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
                e.shift(field::CI.start)
            } else {
                e.shift(field::CI.end)
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
/// Bytes of a short frame.
pub const SHORT_LEN: usize = 5;

/// A received wired M-Bus frame of any of the EN 13757-2 formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiredFrame<'a> {
    /// The single character E5.
    Ack,
    /// `10 C A CS 16`: a request or link command, no CI and no data.
    Short(MbusShortFrame),
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
                MbusShortFrame::parse(bytes).map(|f| (WiredFrame::Short(f), SHORT_LEN))
            }
            Some(&START) => {
                MbusLongFrame::parse(bytes).map(|(f, used)| (WiredFrame::Long(f), used))
            }
            None => Err(Error::truncated(Layer::Link, 0, 1)),
            Some(_) => Err(damaged(0, "no start byte (E5, 10 or 68)")),
        }
    }

    /// Appends the frame (for simulators and tests).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            WiredFrame::Ack => out.push(SINGLE_ACK),
            WiredFrame::Short(short) => short.emit(out),
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
        [first, l1, l2, s2, ..] => {
            let marks = [
                *s2 == START,
                l1 == l2,
                bytes.last() == Some(&STOP),
                bytes.len() == usize::from(*l1) + OVERHEAD
                    || bytes.len() == usize::from(*l2) + OVERHEAD,
            ];
            let count = marks.iter().filter(|&&m| m).count();
            // A damaged first start byte: the other four marks still name a long frame
            // (a wireless frame would need its L-field to be byte 1 + 5 as well).
            (*first == START && count >= 2) || count == marks.len()
        }
        _ => false,
    }
}

fn checksum_of(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

// ---------------------------------------------------------------------------------------
// What a master sends (EN 13757-2 §5): the single-character ACK, short frames
// `10 C A CS 16`, and the SND_UD long frame that selects a slave by secondary address.

/// Offsets inside a short frame.
const SHORT_C_AT: usize = 1;
const SHORT_A_AT: usize = 2;
const SHORT_CS_AT: usize = 3;
const SHORT_STOP_AT: usize = 4;

/// C-field of SND_NKE (link reset; FCV and FCB clear).
pub const C_SND_NKE: u8 = 0x40;
/// C-field of SND_UD without FCB (0x73 with it).
pub const C_SND_UD: u8 = 0x53;
/// C-field of REQ_UD2 without FCB (0x7B with it).
pub const C_REQ_UD2: u8 = 0x5B;
/// C-field of RSP_UD as the slave sends it; bits 4 (DFC) and 5 (ACD) may be set.
pub const C_RSP_UD: u8 = 0x08;
/// Frame count bit of a master's C-field.
pub const FCB: u8 = 0x20;
/// Frame count bit valid.
pub const FCV: u8 = 0x10;
/// The C-field bits that identify RSP_UD whatever ACD and DFC say.
const RSP_UD_MASK: u8 = 0xCF;

/// Highest primary address a slave can be given.
pub const MAX_PRIMARY: u8 = 250;
/// Address of the slave selected by secondary address.
pub const ADDRESS_SELECTED: u8 = 253;
/// Broadcast every slave answers (only safe with one slave on the bus).
pub const ADDRESS_BROADCAST_REPLY: u8 = 254;
/// Broadcast no slave answers.
pub const ADDRESS_BROADCAST: u8 = 255;
/// CI of SND_UD selecting a slave by secondary address.
pub const CI_SELECT: u8 = 0x52;

/// A short frame: `10 C A CS 16`, CS = C + A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MbusShortFrame {
    pub control: u8,
    pub address: u8,
}

impl MbusShortFrame {
    /// SND_NKE to `address`.
    pub fn snd_nke(address: u8) -> Self {
        MbusShortFrame {
            control: C_SND_NKE,
            address,
        }
    }

    /// REQ_UD2 to `address` with FCV set and the given FCB.
    pub fn req_ud2(address: u8, fcb: bool) -> Self {
        MbusShortFrame {
            control: with_fcb(C_REQ_UD2, fcb),
            address,
        }
    }

    /// Parses a short frame at the start of `bytes`. Every check (start, stop byte,
    /// checksum) is final: a failure is a damaged wired frame.
    pub fn parse(bytes: &[u8]) -> Result<MbusShortFrame> {
        let Some(&[start, control, address, cs, stop]) = bytes.first_chunk::<SHORT_LEN>() else {
            return Err(damaged(bytes.len(), "short frame of fewer than 5 bytes"));
        };
        if start != SHORT_START {
            return Err(damaged(0, "short frame without its start byte 10"));
        }
        if stop != STOP {
            return Err(damaged(SHORT_STOP_AT, "no stop byte"));
        }
        let computed = control.wrapping_add(address);
        if cs != computed {
            return Err(Error::new(
                Layer::Link,
                SHORT_CS_AT,
                ErrorKind::Checksum {
                    stored: cs,
                    computed,
                },
            ));
        }
        Ok(MbusShortFrame { control, address })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut frame = [0u8; SHORT_LEN];
        frame[0] = SHORT_START;
        frame[SHORT_C_AT] = self.control;
        frame[SHORT_A_AT] = self.address;
        frame[SHORT_CS_AT] = self.control.wrapping_add(self.address);
        frame[SHORT_STOP_AT] = STOP;
        out.extend_from_slice(&frame);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SHORT_LEN);
        self.emit(&mut out);
        out
    }

    /// FCB of a master's frame; `None` when FCV is clear (the slave ignores FCB).
    pub fn fcb(&self) -> Option<bool> {
        fcb_of(self.control)
    }
}

/// `control` with FCV set and FCB as given.
pub fn with_fcb(control: u8, fcb: bool) -> u8 {
    let c = control | FCV;
    if fcb {
        c | FCB
    } else {
        c & !FCB
    }
}

/// FCB of a master's C-field; `None` when FCV is clear.
pub fn fcb_of(control: u8) -> Option<bool> {
    (control & FCV != 0).then_some(control & FCB != 0)
}

/// True for the C-field of RSP_UD (with or without ACD/DFC).
pub fn is_rsp_ud(control: u8) -> bool {
    control & RSP_UD_MASK == C_RSP_UD
}

/// A secondary address as the selection SND_UD carries it (8 bytes, EN 13757-2 §7.1):
/// identification number (8 BCD digits, least significant byte first), manufacturer,
/// version, medium. Any nibble of the id may be `F` and the other fields all-ones: such a
/// position matches every slave (wildcard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecondaryAddress {
    /// Digits in reading order, most significant first; 0x0..=0x9 or 0xF (wildcard).
    pub digits: [u8; 8],
    /// Raw manufacturer code; 0xFFFF matches every manufacturer.
    pub manufacturer: u16,
    /// 0xFF matches every version.
    pub version: u8,
    /// Device type (medium); 0xFF matches every medium.
    pub medium: u8,
}

/// Length of a secondary address.
pub const SECONDARY_LEN: usize = 8;
/// The wildcard nibble.
pub const WILDCARD: u8 = 0xF;

impl SecondaryAddress {
    /// Matches every slave.
    pub const ANY: SecondaryAddress = SecondaryAddress {
        digits: [WILDCARD; 8],
        manufacturer: 0xFFFF,
        version: 0xFF,
        medium: 0xFF,
    };

    /// The address of one meter by its 8-digit id, other fields wildcards.
    pub fn from_id(id: u32) -> Option<SecondaryAddress> {
        if id > 99_999_999 {
            return None;
        }
        let mut digits = [0u8; 8];
        let mut rest = id;
        for d in digits.iter_mut().rev() {
            *d = (rest % 10) as u8;
            rest /= 10;
        }
        Some(SecondaryAddress {
            digits,
            ..Self::ANY
        })
    }

    /// Parses 8 characters `0`–`9` or `F`/`f` (wildcard), e.g. `12FFFFFF`.
    pub fn parse_pattern(text: &str) -> Option<SecondaryAddress> {
        let bytes = text.as_bytes();
        if bytes.len() != 8 {
            return None;
        }
        let mut digits = [0u8; 8];
        for (d, &c) in digits.iter_mut().zip(bytes) {
            *d = match c {
                b'0'..=b'9' => c - b'0',
                b'F' | b'f' => WILDCARD,
                _ => return None,
            };
        }
        Some(SecondaryAddress {
            digits,
            ..Self::ANY
        })
    }

    /// The identity of a long TPL header, as an exact (wildcard-free) address.
    pub fn from_long_address(address: &super::address::Address) -> SecondaryAddress {
        let mut digits = [0u8; 8];
        // On the wire the least significant digit pair comes first.
        for (i, byte) in address.id.iter().rev().enumerate() {
            if let Some(pair) = digits.get_mut(2 * i..2 * i + 2) {
                pair.copy_from_slice(&[byte >> 4, byte & 0x0F]);
            }
        }
        SecondaryAddress {
            digits,
            manufacturer: address.manufacturer,
            version: address.version,
            medium: address.device_type,
        }
    }

    /// The id pattern: digits and `F` for wildcards.
    pub fn pattern(&self) -> String {
        self.digits
            .iter()
            .map(|&d| char::from_digit(u32::from(d), 16).map_or('?', |c| c.to_ascii_uppercase()))
            .collect()
    }

    /// Number of leading digits that are not wildcards.
    pub fn fixed_digits(&self) -> usize {
        self.digits.iter().take_while(|&&d| d != WILDCARD).count()
    }

    /// True when `meter` is matched: every non-wildcard position is equal.
    pub fn matches(&self, meter: &SecondaryAddress) -> bool {
        let digits = self
            .digits
            .iter()
            .zip(&meter.digits)
            .all(|(&want, &have)| want == WILDCARD || want == have);
        digits
            && (self.manufacturer == 0xFFFF || self.manufacturer == meter.manufacturer)
            && (self.version == 0xFF || self.version == meter.version)
            && (self.medium == 0xFF || self.medium == meter.medium)
    }

    /// Parses the 8 bytes of a selection. A nibble above 9 other than F is an error.
    pub fn parse(bytes: &[u8]) -> Result<SecondaryAddress> {
        let Some(raw) = bytes.first_chunk::<SECONDARY_LEN>() else {
            return Err(Error::truncated(
                Layer::Link,
                bytes.len(),
                SECONDARY_LEN - bytes.len(),
            ));
        };
        // id (LE BCD), manufacturer (LE), version, medium.
        let [i0, i1, i2, i3, m0, m1, version, medium] = *raw;
        let mut digits = [0u8; 8];
        // Reading order: the last on-air id byte holds the most significant digits.
        for ((at, byte), pair) in [(3, i3), (2, i2), (1, i1), (0, i0)]
            .into_iter()
            .zip(digits.chunks_exact_mut(2))
        {
            for (nibble, slot) in [byte >> 4, byte & 0x0F].into_iter().zip(pair) {
                if nibble > 9 && nibble != WILDCARD {
                    return Err(Error::invalid(
                        Layer::Link,
                        at,
                        "secondary address digit (not BCD or F)",
                    ));
                }
                *slot = nibble;
            }
        }
        Ok(SecondaryAddress {
            digits,
            manufacturer: u16::from_le_bytes([m0, m1]),
            version,
            medium,
        })
    }

    /// Appends the 8 bytes: id (LE BCD, F nibbles kept), manufacturer (LE), version, medium.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for i in (0..4).rev() {
            let hi = self.digits.get(2 * i).copied().unwrap_or(WILDCARD) & 0x0F;
            let lo = self.digits.get(2 * i + 1).copied().unwrap_or(WILDCARD) & 0x0F;
            out.push(hi << 4 | lo);
        }
        out.extend_from_slice(&self.manufacturer.to_le_bytes());
        out.push(self.version);
        out.push(self.medium);
    }

    /// The SND_UD (CI 0x52) to address 253 that selects the matching slaves.
    pub fn selection_frame(&self, fcb: bool) -> Vec<u8> {
        let mut data = Vec::with_capacity(SECONDARY_LEN);
        self.emit(&mut data);
        let mut out = Vec::with_capacity(OVERHEAD + 3 + SECONDARY_LEN);
        // 8 data bytes always fit the L-field.
        let _ = MbusLongFrame {
            control: with_fcb(C_SND_UD, fcb),
            address: ADDRESS_SELECTED,
            ci: CI_SELECT,
            data: &data,
        }
        .emit(&mut out);
        out
    }
}

impl std::fmt::Display for SecondaryAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pattern())?;
        if self.manufacturer != 0xFFFF {
            match super::manufacturer::Manufacturer(self.manufacturer).code() {
                Some(code) => write!(f, " {code}")?,
                None => write!(f, " {:04X}", self.manufacturer)?,
            }
        }
        if self.version != 0xFF {
            write!(f, " v{}", self.version)?;
        }
        if self.medium != 0xFF {
            write!(f, " medium {:02X}", self.medium)?;
        }
        Ok(())
    }
}

/// How many bytes the frame starting `bytes` occupies, as far as its first bytes tell:
/// `Some(n)` once known (the frame may still be incomplete), `None` when the first byte
/// starts no frame or the long frame's length is not there yet. A receiver reads until
/// `bytes.len() >= n`, then parses.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    match *bytes.first()? {
        SINGLE_ACK => Some(1),
        SHORT_START => Some(SHORT_LEN),
        START => bytes.get(1).map(|&l| usize::from(l) + OVERHEAD),
        _ => None,
    }
}

/// Whether the record data of an RSP_UD ends with DIF 0x1F (EN 13757-3: more records
/// follow in the next telegram). Reads the long TPL header and walks the records; a frame
/// whose records do not parse is taken as complete.
pub fn more_records_follow(frame: &MbusLongFrame<'_>) -> bool {
    let Ok((_, header_len)) = frame.tpl() else {
        return false;
    };
    let records = frame.data.get(header_len..).unwrap_or_default();
    super::apl::parse_lenient(records).more_records_follow
}

/// Where the long-frame fields sit (EN 13757-2 §5): the checksum and stop byte follow the
/// L counted bytes.
pub mod field {
    use crate::wire::annotate::Field;

    pub const START1: Field = 0..1;
    pub const LENGTHS: Field = 1..3;
    pub const START2: Field = 3..4;
    pub const CONTROL: Field = 4..5;
    pub const ADDRESS: Field = 5..6;
    pub const CI: Field = 6..7;
}

impl MbusLongFrame<'_> {
    /// The frame's own fields, labelled: start, L L, start, C, A, then checksum and stop.
    /// The CI and what follows belong to the transport layer.
    pub fn annotate(&self) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let l = self.buffer_len() - OVERHEAD;
        let cs = field::CONTROL.start + l;
        vec![
            Annotation::at(0, field::START1, "start", "long frame start (68)"),
            Annotation::at(
                0,
                field::LENGTHS,
                "L L",
                format!("{l} bytes from the C-field to the last data byte"),
            ),
            Annotation::at(0, field::START2, "start", "second start byte"),
            Annotation::at(
                0,
                field::CONTROL,
                "C-field",
                format!("0x{:02X}", self.control),
            ),
            Annotation::at(
                0,
                field::ADDRESS,
                "A-field",
                format!("primary address {}", self.address),
            ),
            Annotation::span(cs, 1, "checksum", "sum of C..data, mod 256"),
            Annotation::span(cs + 1, 1, "stop", "end of frame (16)"),
        ]
    }
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

#[cfg(test)]
mod master_frame_tests {
    use super::*;
    use crate::wire::address::Address;
    use crate::wire::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn short_frames_emit_and_parse() {
        let nke = MbusShortFrame::snd_nke(5).to_bytes();
        assert_eq!(nke, [0x10, 0x40, 0x05, 0x45, 0x16]);
        assert_eq!(MbusShortFrame::parse(&nke).unwrap().fcb(), None);
        let req = MbusShortFrame::req_ud2(0xFD, true).to_bytes();
        assert_eq!(req, [0x10, 0x7B, 0xFD, 0x78, 0x16]);
        assert_eq!(MbusShortFrame::parse(&req).unwrap().fcb(), Some(true));
        let req = MbusShortFrame::req_ud2(1, false);
        assert_eq!(req.control, C_REQ_UD2);
        assert_eq!(req.fcb(), Some(false));

        let mut bad = nke.clone();
        bad[SHORT_CS_AT] ^= 1;
        let err = MbusShortFrame::parse(&bad).unwrap_err();
        assert_eq!(err.offset, SHORT_CS_AT);
        assert!(matches!(err.kind, ErrorKind::Checksum { .. }));
        let mut bad = nke.clone();
        bad[SHORT_STOP_AT] = 0;
        assert_eq!(
            MbusShortFrame::parse(&bad).unwrap_err().offset,
            SHORT_STOP_AT
        );
        assert!(matches!(
            MbusShortFrame::parse(&nke[..3]).unwrap_err().kind,
            ErrorKind::Damaged(_)
        ));
        assert_eq!(
            MbusShortFrame::parse(&[0x68, 0, 0, 0, 0])
                .unwrap_err()
                .offset,
            0
        );
    }

    #[test]
    fn secondary_address_bytes_and_wildcards() {
        let exact = SecondaryAddress {
            manufacturer: 0x2C2D,
            version: 0x1B,
            medium: 0x16,
            ..SecondaryAddress::from_id(12_345_678).unwrap()
        };
        let mut out = Vec::new();
        exact.emit(&mut out);
        assert_eq!(out, [0x78, 0x56, 0x34, 0x12, 0x2D, 0x2C, 0x1B, 0x16]);
        assert_eq!(SecondaryAddress::parse(&out).unwrap(), exact);
        let from_header = SecondaryAddress::from_long_address(&Address {
            id: [0x78, 0x56, 0x34, 0x12],
            manufacturer: 0x2C2D,
            version: 0x1B,
            device_type: 0x16,
        });
        assert_eq!(from_header, exact);
        assert_eq!(exact.to_string(), "12345678 KAM v27 medium 16");

        let mask = SecondaryAddress::parse_pattern("12FFFFFF").unwrap();
        assert_eq!(mask.fixed_digits(), 2);
        let mut out = Vec::new();
        mask.emit(&mut out);
        assert_eq!(out, [0xFF, 0xFF, 0xFF, 0x12, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(SecondaryAddress::parse(&out).unwrap(), mask);
        assert!(mask.matches(&exact));
        assert!(SecondaryAddress::ANY.matches(&exact));
        assert!(!SecondaryAddress::parse_pattern("13FFFFFF")
            .unwrap()
            .matches(&exact));
        let other_version = SecondaryAddress { version: 2, ..mask };
        assert!(!other_version.matches(&exact));
        assert_eq!(SecondaryAddress::parse_pattern("12FFFFF"), None);
        assert_eq!(SecondaryAddress::parse_pattern("12AFFFFF"), None);
        assert_eq!(SecondaryAddress::from_id(100_000_000), None);

        let err = SecondaryAddress::parse(&[0xA0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(SecondaryAddress::parse(&[0; 7]).is_err());
    }

    #[test]
    fn selection_frame_is_a_snd_ud_to_253() {
        let bytes = SecondaryAddress::parse_pattern("1234567F")
            .unwrap()
            .selection_frame(false);
        let (frame, used) = MbusLongFrame::parse(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((frame.control, frame.address, frame.ci), (0x53, 253, 0x52));
        assert_eq!(frame.data, [0x7F, 0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF, 0xFF]);
        let with_fcb = SecondaryAddress::ANY.selection_frame(true);
        assert_eq!(with_fcb[4], 0x73);
    }

    #[test]
    fn any_frame_and_its_length() {
        assert_eq!(
            WiredFrame::parse(&[SINGLE_ACK, 0x10]).unwrap(),
            (WiredFrame::Ack, 1)
        );
        let nke = MbusShortFrame::snd_nke(7).to_bytes();
        assert_eq!(frame_len(&nke[..1]), Some(5));
        assert!(matches!(
            WiredFrame::parse(&nke).unwrap().0,
            WiredFrame::Short(_)
        ));
        let sel = SecondaryAddress::ANY.selection_frame(false);
        assert_eq!(frame_len(&sel[..1]), None);
        assert_eq!(frame_len(&sel[..2]), Some(sel.len()));
        assert!(matches!(
            WiredFrame::parse(&sel).unwrap().0,
            WiredFrame::Long(_)
        ));
        assert_eq!(frame_len(&[0xA5]), None);
        assert_eq!(WiredFrame::parse(&[0xA5]).unwrap_err().offset, 0);
        assert!(WiredFrame::parse(&[]).is_err());
        assert!(is_rsp_ud(0x08) && is_rsp_ud(0x28) && is_rsp_ud(0x18) && !is_rsp_ud(0x53));
    }

    fn rsp_ud(records: &[u8]) -> Vec<u8> {
        let mut data = vec![
            0x78, 0x56, 0x34, 0x12, 0x2D, 0x2C, 0x01, 0x07, 0x05, 0x00, 0x00, 0x00,
        ];
        data.extend_from_slice(records);
        let mut out = Vec::new();
        MbusLongFrame {
            control: C_RSP_UD,
            address: 1,
            ci: 0x72,
            data: &data,
        }
        .emit(&mut out)
        .unwrap();
        out
    }

    #[test]
    fn more_records_follow_only_with_dif_1f() {
        let more = rsp_ud(&[0x04, 0x13, 0x08, 0x19, 0x00, 0x00, 0x1F]);
        let (frame, _) = MbusLongFrame::parse(&more).unwrap();
        assert!(more_records_follow(&frame));
        let last = rsp_ud(&[0x04, 0x13, 0x08, 0x19, 0x00, 0x00, 0x0F, 0x01]);
        let (frame, _) = MbusLongFrame::parse(&last).unwrap();
        assert!(!more_records_follow(&frame));
        // A 0x1F inside a value is not the DIF.
        let inside = rsp_ud(&[0x04, 0x13, 0x1F, 0x19, 0x00, 0x00]);
        let (frame, _) = MbusLongFrame::parse(&inside).unwrap();
        assert!(!more_records_follow(&frame));
    }

    proptest! {
        #[test]
        fn frame_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok((_, used)) = WiredFrame::parse(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(frame_len(&bytes), Some(used));
            }
            let _ = SecondaryAddress::parse(&bytes);
        }

        #[test]
        fn secondary_addresses_round_trip(id in 0u32..100_000_000, m in any::<u16>(), v in any::<u8>(), t in any::<u8>()) {
            let a = SecondaryAddress { manufacturer: m, version: v, medium: t, ..SecondaryAddress::from_id(id).unwrap() };
            let mut out = Vec::new();
            a.emit(&mut out);
            prop_assert_eq!(SecondaryAddress::parse(&out).unwrap(), a);
            prop_assert!(SecondaryAddress::ANY.matches(&a));
        }
    }
}
