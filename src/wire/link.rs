//! Wireless data link layer (EN 13757-4): the 10-byte header and the DLL CRCs of frame
//! formats A and B (protocol.md §1.2–1.4, §6.6).
//!
//! Everything above this layer works on the *canonical* frame: L-field first, no DLL CRCs,
//! `L == len - 1`. [`super::dll::canonicalize`] turns whatever a receiver delivered into
//! that form, once.

pub use super::address::{id_string, Address};
use super::crc::crc16_en13757;
use super::{Error, ErrorKind, Layer, Result};

/// Bytes of the DLL header: L, C, M[2], ID[4], version, device type.
pub const HEADER_LEN: usize = field::DEVICE_TYPE.end;

/// Format A: data bytes per block after the 10-byte first block.
const A_BLOCK_LEN: usize = 16;
/// Format B: the first CRC sits at offsets 126..128 and covers bytes 0..126.
const B_FIRST_CRC_AT: usize = 126;
/// Format B: a frame of at most this many bytes (CRC included) has a single CRC.
const B_SINGLE_BLOCK_MAX: usize = 128;
const CRC_LEN: usize = 2;

/// Where the DLL CRCs sit on air (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameFormat {
    /// CRC after the 10-byte first block and after every 16 following bytes; L excludes CRCs.
    A,
    /// One CRC over the first 126 bytes (or the whole frame), a second over the rest;
    /// L includes the CRCs.
    B,
}

/// Control field values a meter sends (§1.4).
pub mod control {
    /// SND_NR: spontaneous meter data, the normal telegram.
    pub const SND_NR: u8 = 0x44;
    /// SND_IR: installation telegram, decoded like SND_NR.
    pub const SND_IR: u8 = 0x46;
    /// ACC_NR: access opportunity, usually without application data.
    pub const ACC_NR: u8 = 0x47;
    /// ACC_DMD: access demand.
    pub const ACC_DMD: u8 = 0x48;
    /// RSP_UD: response with user data (also sent by radio adapters).
    pub const RSP_UD: u8 = 0x08;

    /// The control field in words, for `--explain`.
    pub fn name(c: u8) -> &'static str {
        match c {
            SND_NR => "0x44 SND_NR: spontaneous meter data",
            SND_IR => "0x46 SND_IR: installation telegram",
            ACC_NR => "0x47 ACC_NR: access opportunity, no data",
            ACC_DMD => "0x48 ACC_DMD: access demand",
            RSP_UD => "0x08 RSP_UD: response with user data",
            _ => "other control field",
        }
    }
}

std::thread_local! {
    /// Link headers parsed on this thread (see [`parses_on_this_thread`]).
    static PARSES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many link headers [`LinkHeader::parse`] read on the calling thread so far: a
/// test drives a frame from radio to reading and checks the header was read once.
/// One thread-local increment per parse, so it is always compiled.
pub fn parses_on_this_thread() -> u64 {
    PARSES.with(std::cell::Cell::get)
}

/// The DLL header of a canonical frame (§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkHeader {
    /// L-field: bytes after L. In a canonical frame this excludes all CRCs.
    pub length: u8,
    pub control: u8,
    /// M and A: the sending device (a meter, or a repeater's own address).
    pub address: Address,
}

impl LinkHeader {
    /// Parses the 10 header bytes; returns the header and the bytes consumed (10).
    ///
    /// Does not compare L with the slice length: that is [`normalize`]'s job, and a header
    /// alone (e.g. from a log line) is still worth reading.
    pub fn parse(bytes: &[u8]) -> Result<(LinkHeader, usize)> {
        PARSES.with(|n| n.set(n.get() + 1));
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::truncated(
                Layer::Link,
                bytes.len(),
                HEADER_LEN - bytes.len(),
            ));
        };
        let [length, control, m0, m1, i0, i1, i2, i3, version, device_type] = *h;
        let header = LinkHeader {
            length,
            control,
            address: Address::from_link_bytes([m0, m1, i0, i1, i2, i3, version, device_type]),
        };
        Ok((header, HEADER_LEN))
    }

    /// Appends the 10 header bytes.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.length);
        out.push(self.control);
        self.address.emit_link(out);
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// C, M and A as transmitted (the header without L), as vendor scramblers seed on them.
    pub fn control_and_address(&self) -> [u8; 9] {
        control_and_address(self.control, &self.address)
    }
}

/// C-field and address in link-header order: the 9 bytes after L.
pub fn control_and_address(control: u8, address: &Address) -> [u8; 9] {
    let [m0, m1, i0, i1, i2, i3, v, t] = address.address_bytes();
    [control, m0, m1, i0, i1, i2, i3, v, t]
}

fn read_crc_be(raw: &[u8], at: usize) -> Option<u16> {
    raw.get(at..)
        .and_then(|rest| rest.first_chunk::<CRC_LEN>())
        .map(|b| u16::from_be_bytes(*b))
}

/// Checks one block's big-endian CRC stored at `crc_at`, covering `raw[start..crc_at]`.
fn check_block(raw: &[u8], start: usize, crc_at: usize) -> Result<()> {
    let (Some(data), Some(stored)) = (raw.get(start..crc_at), read_crc_be(raw, crc_at)) else {
        return Err(Error::truncated(
            Layer::Link,
            raw.len(),
            (crc_at + CRC_LEN).saturating_sub(raw.len()),
        ));
    };
    let computed = crc16_en13757(data);
    if computed == stored {
        Ok(())
    } else {
        Err(Error::new(
            Layer::Link,
            crc_at,
            ErrorKind::Crc { stored, computed },
        ))
    }
}

/// On-air length of a format-A frame with L-field `l` (L counts no CRCs), or `None` if
/// L is too small to hold the header.
pub fn format_a_len(l: u8) -> Option<usize> {
    let l = usize::from(l);
    let after_first = l.checked_sub(HEADER_LEN - 1)?;
    let blocks = 1 + after_first.div_ceil(A_BLOCK_LEN);
    Some(l + 1 + CRC_LEN * blocks)
}

/// Removes and verifies the DLL CRCs of `raw` (L-field first) laid out as `format`.
/// The result is canonical: its L is rewritten to `len - 1`.
///
/// The frame must have exactly the on-air length its L-field announces.
pub fn strip_crc(raw: &[u8], format: FrameFormat) -> Result<Vec<u8>> {
    let Some(&l) = raw.first() else {
        return Err(Error::truncated(Layer::Link, 0, 1));
    };
    let mut out = match format {
        FrameFormat::A => strip_a(raw, l)?,
        FrameFormat::B => strip_b(raw, l)?,
    };
    let Ok(new_l) = u8::try_from(out.len() - 1) else {
        return Err(Error::invalid(Layer::Link, 0, "L-field (frame too long)"));
    };
    if let Some(first) = out.first_mut() {
        *first = new_l;
    }
    Ok(out)
}

fn expect_len(raw: &[u8], expected: usize) -> Result<()> {
    match raw.len().cmp(&expected) {
        std::cmp::Ordering::Less => Err(Error::truncated(
            Layer::Link,
            raw.len(),
            expected - raw.len(),
        )),
        std::cmp::Ordering::Greater => Err(Error::invalid(
            Layer::Link,
            expected,
            "frame length (bytes after the length announced by L)",
        )),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

fn strip_a(raw: &[u8], l: u8) -> Result<Vec<u8>> {
    let Some(expected) = format_a_len(l) else {
        return Err(Error::invalid(
            Layer::Link,
            0,
            "L-field (shorter than the header)",
        ));
    };
    expect_len(raw, expected)?;
    let mut out = Vec::with_capacity(usize::from(l) + 1);
    check_block(raw, 0, HEADER_LEN)?;
    out.extend_from_slice(raw.get(..HEADER_LEN).unwrap_or_default());
    let mut pos = HEADER_LEN + CRC_LEN;
    while pos < raw.len() {
        // Every block but the last carries 16 data bytes; the last one the remainder.
        let data_len = (raw.len() - pos - CRC_LEN).min(A_BLOCK_LEN);
        let crc_at = pos + data_len;
        check_block(raw, pos, crc_at)?;
        out.extend_from_slice(raw.get(pos..crc_at).unwrap_or_default());
        pos = crc_at + CRC_LEN;
    }
    Ok(out)
}

fn strip_b(raw: &[u8], l: u8) -> Result<Vec<u8>> {
    let total = usize::from(l) + 1;
    expect_len(raw, total)?;
    if total < HEADER_LEN + CRC_LEN {
        return Err(Error::invalid(
            Layer::Link,
            0,
            "L-field (shorter than the header)",
        ));
    }
    if total <= B_SINGLE_BLOCK_MAX {
        check_block(raw, 0, total - CRC_LEN)?;
        return Ok(raw.get(..total - CRC_LEN).unwrap_or_default().to_vec());
    }
    // A third block needs at least one data byte besides its CRC.
    if total < B_SINGLE_BLOCK_MAX + CRC_LEN + 1 {
        return Err(Error::invalid(
            Layer::Link,
            0,
            "L-field (format B block 3 would be empty)",
        ));
    }
    check_block(raw, 0, B_FIRST_CRC_AT)?;
    check_block(raw, B_SINGLE_BLOCK_MAX, total - CRC_LEN)?;
    let mut out = Vec::with_capacity(total - 2 * CRC_LEN);
    out.extend_from_slice(raw.get(..B_FIRST_CRC_AT).unwrap_or_default());
    out.extend_from_slice(
        raw.get(B_SINGLE_BLOCK_MAX..total - CRC_LEN)
            .unwrap_or_default(),
    );
    Ok(out)
}

/// Inserts DLL CRCs into a canonical frame (its L-field is rewritten for `format`).
///
/// Fails if the frame is shorter than the header or too long for an 8-bit L in that format
/// (A: at most 256 canonical bytes; B: at most 252).
pub fn add_crc(canonical: &[u8], format: FrameFormat) -> Result<Vec<u8>> {
    let n = canonical.len();
    if n < HEADER_LEN {
        return Err(Error::truncated(Layer::Link, n, HEADER_LEN - n));
    }
    let (header, rest) = canonical.split_at(HEADER_LEN);
    let mut out = Vec::with_capacity(n + 2 * CRC_LEN * (2 + n / A_BLOCK_LEN));
    match format {
        FrameFormat::A => {
            let l = u8::try_from(n - 1)
                .map_err(|_| Error::invalid(Layer::Link, 0, "frame too long for format A"))?;
            out.push(l);
            out.extend_from_slice(header.get(1..).unwrap_or_default());
            push_crc(&mut out, 0);
            for block in rest.chunks(A_BLOCK_LEN) {
                let start = out.len();
                out.extend_from_slice(block);
                push_crc(&mut out, start);
            }
        }
        FrameFormat::B => {
            let total = if n + CRC_LEN <= B_SINGLE_BLOCK_MAX {
                n + CRC_LEN
            } else {
                n + 2 * CRC_LEN
            };
            let l = u8::try_from(total - 1)
                .map_err(|_| Error::invalid(Layer::Link, 0, "frame too long for format B"))?;
            out.push(l);
            if total == n + CRC_LEN {
                out.extend_from_slice(canonical.get(1..).unwrap_or_default());
                push_crc(&mut out, 0);
            } else {
                let (first, second) = canonical.split_at(B_FIRST_CRC_AT);
                out.extend_from_slice(first.get(1..).unwrap_or_default());
                push_crc(&mut out, 0);
                let start = out.len();
                out.extend_from_slice(second);
                push_crc(&mut out, start);
            }
        }
    }
    Ok(out)
}

/// Appends the big-endian CRC of `out[start..]`.
fn push_crc(out: &mut Vec<u8>, start: usize) {
    let crc = crc16_en13757(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Where each field of the 10-byte header sits (§1.3).
pub mod field {
    use crate::wire::annotate::Field;

    pub const LENGTH: Field = 0..1;
    pub const CONTROL: Field = 1..2;
    pub const MANUFACTURER: Field = 2..4;
    pub const ID: Field = 4..8;
    pub const VERSION: Field = 8..9;
    pub const DEVICE_TYPE: Field = 9..10;
    /// M, ID, version, device type: [`super::Address`] in link-header order.
    pub const ADDRESS: Field = 2..10;
}

impl LinkHeader {
    /// The header's fields, labelled, at frame offset 0.
    pub fn annotate(&self) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let m = self.address.manufacturer();
        let kind = super::device_type::name(m, self.address.device_type);
        vec![
            Annotation::at(
                0,
                field::LENGTH,
                "L-field",
                format!("{} bytes follow (CRCs excluded)", self.length),
            ),
            Annotation::at(0, field::CONTROL, "C-field", control::name(self.control)),
            Annotation::at(
                0,
                field::MANUFACTURER,
                "M-field",
                format!("manufacturer {m} (0x{:04X})", self.address.manufacturer),
            ),
            Annotation::at(
                0,
                field::ID,
                "A: id",
                format!("meter id {}", self.address.id_string()),
            ),
            Annotation::at(
                0,
                field::VERSION,
                "A: version",
                format!("version {}", self.address.version),
            ),
            Annotation::at(
                0,
                field::DEVICE_TYPE,
                "A: device type",
                format!("{kind} (0x{:02X})", self.address.device_type),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', '|', '\n'], "")).expect("test vector hex")
    }

    /// The canonical frame and the CRC layout removed, as the decoder reads hex typed
    /// by a person; frames with trailing bytes are errors here.
    fn normalize(bytes: &[u8]) -> Result<(Vec<u8>, Option<FrameFormat>)> {
        use crate::wire::dll::{canonicalize, CrcState};
        let mut out = Vec::new();
        let c = canonicalize(bytes, CrcState::Unknown, false, &mut out)?;
        if c.trailing > 0 {
            return Err(Error::invalid(Layer::Link, out.len(), "trailing bytes"));
        }
        Ok((out, c.format))
    }

    const SONTEX_A: &str = "34 44 EE 4D 81 39 29 27 16 08 | 81 1D
        7A 51 00 00 00 04 6D 19 12 A6 2B 03 6E 00 00 00 | 51 70
        42 6C E1 F1 43 6E 00 00 00 02 FF 2C 00 00 02 59 | D6 D0
        D4 09 02 65 FC 09 02 FD 66 A0 00 | 44 C4";

    const OMS_CANONICAL: &str = "2E 44 93 15 78 56 34 12 33 03 7A 2A 00 20 25 59 23 C9 5A AA 26
        D1 B2 E7 49 3B 01 3E C4 A6 F6 D3 52 9B 52 0E DF F0 EA 6D EF C9 9D 6D 69 EB F3";
    const OMS_AS_A: &str = "2E 44 93 15 78 56 34 12 33 03 | 33 63 | 7A 2A 00 20 25 59 23 C9 5A AA
        26 D1 B2 E7 49 3B | C2 AD | 01 3E C4 A6 F6 D3 52 9B 52 0E DF F0 EA 6D EF C9 | 55 B2 |
        9D 6D 69 EB F3 | EC 8A";

    pub(crate) const SENSOSTAR_B: &str =
        "C2 44 C5 14 04 43 05 43 00 04 8C 20 0E 90 0F 00 2C 25 89 5E 02 00
        3B 08 77 D3 1D A8 40 B1 7A 0E 00 90 07 10 0F 8F AD 4C 4E 61 40 0D A4 F3 B1 F7 E2 73 CC 4C
        5C 07 F9 3C D2 0B 23 73 45 DB 39 F9 A9 8F 84 15 E1 C4 B7 A2 5C 86 E4 C2 2D 05 C3 35 2F A7
        E2 E5 62 70 31 F1 46 43 06 3F 1D C8 FE 2C 32 45 9B 6F 02 E4 23 4B 44 7B 18 E4 BF DA 8C 4D
        A9 B1 ED E6 CF 29 D0 B2 12 2A 3E 8B 9D EE BE E3 E6 DB E6 61 7B 4E 70 9E C6 B5 95 17 9C B0
        1C 2C 0B DE 67 23 A3 45 B7 08 65 28 80 C1 14 A5 8D A0 7C 73 AD 9E B8 AC B1 7F A0 A8 8F 19
        BC 84 CB 1F C5 66 72 DE 8A 96 03 FD 0C 05 01 00 02 FD 0B 21 11 F6 0B";

    #[test]
    fn header_parse_emit() {
        let frame = hex(OMS_CANONICAL);
        let (h, used) = LinkHeader::parse(&frame).unwrap();
        assert_eq!(used, 10);
        assert_eq!(h.length, 0x2E);
        assert_eq!(h.control, control::SND_NR);
        assert_eq!(h.address.manufacturer().to_string(), "ELS");
        assert_eq!(h.address.id_string(), "12345678");
        assert_eq!(h.address.version, 0x33);
        assert_eq!(h.address.device_type, 0x03);
        assert_eq!(
            h.address.address_bytes(),
            [0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03]
        );
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out.len(), h.buffer_len());
        assert_eq!(out, frame[..10]);
    }

    #[test]
    fn header_truncated() {
        let err = LinkHeader::parse(&[0x2E, 0x44, 0x93]).unwrap_err();
        assert_eq!(err, Error::truncated(Layer::Link, 3, 7));
    }

    #[test]
    fn id_string_keeps_hex_nibbles() {
        assert_eq!(id_string(&[0x99, 0x87, 0x34, 0x76]), "76348799");
        assert_eq!(id_string(&[0x0A, 0xBC, 0x00, 0xF1]), "f100bc0a");
    }

    #[test]
    fn sontex_format_a_strips() {
        let raw = hex(SONTEX_A);
        assert_eq!(raw.len(), 61);
        assert_eq!(format_a_len(0x34), Some(61));
        let canon = strip_crc(&raw, FrameFormat::A).unwrap();
        assert_eq!(canon.len(), 53);
        assert_eq!(canon[0], 0x34);
        assert_eq!(canon[10], 0x7A);
        assert_eq!(&canon[49..], &[0x02, 0xFD, 0x66, 0xA0, 0x00][1..]);
        assert_eq!(add_crc(&canon, FrameFormat::A).unwrap(), raw);
        let (norm, fmt) = normalize(&raw).unwrap();
        assert_eq!(fmt, Some(FrameFormat::A));
        assert_eq!(norm, canon);
    }

    #[test]
    fn synthesised_a_and_b() {
        let canon = hex(OMS_CANONICAL);
        let a = hex(OMS_AS_A);
        assert_eq!(add_crc(&canon, FrameFormat::A).unwrap(), a);
        assert_eq!(strip_crc(&a, FrameFormat::A).unwrap(), canon);

        let b = add_crc(&canon, FrameFormat::B).unwrap();
        assert_eq!(b.len(), 49);
        assert_eq!(b[0], 0x30);
        assert_eq!(&b[47..], &[0xB8, 0x53]);
        assert_eq!(b[1..47], canon[1..]);
        assert_eq!(strip_crc(&b, FrameFormat::B).unwrap(), canon);

        let (n, f) = normalize(&b).unwrap();
        assert_eq!((n.as_slice(), f), (canon.as_slice(), Some(FrameFormat::B)));
        let (n, f) = normalize(&canon).unwrap();
        assert_eq!((n.as_slice(), f), (canon.as_slice(), None));
    }

    #[test]
    fn sensostar_format_b_two_crcs() {
        let raw = hex(SENSOSTAR_B);
        assert_eq!(raw.len(), 195);
        let canon = strip_crc(&raw, FrameFormat::B).unwrap();
        assert_eq!(canon.len(), 191);
        assert_eq!(canon[0], 190);
        assert_eq!(&canon[124..128], &[raw[124], raw[125], raw[128], raw[129]]);
        assert_eq!(add_crc(&canon, FrameFormat::B).unwrap(), raw);
        let (n, f) = normalize(&raw).unwrap();
        assert_eq!(f, Some(FrameFormat::B));
        assert_eq!(n, canon);
    }

    #[test]
    fn crc_errors_name_the_offset() {
        let mut raw = hex(SONTEX_A);
        raw[30] ^= 0x01; // first byte of block 3 (data 30..46 on air, CRC at 46)
        let err = strip_crc(&raw, FrameFormat::A).unwrap_err();
        assert_eq!(err.layer, Layer::Link);
        assert_eq!(err.offset, 46);
        assert!(matches!(err.kind, ErrorKind::Crc { stored: 0xD6D0, .. }));
        assert_eq!(normalize(&raw).unwrap_err().offset, 46);

        let mut b = hex(SENSOSTAR_B);
        b[150] ^= 0x80;
        let err = strip_crc(&b, FrameFormat::B).unwrap_err();
        assert_eq!(err.offset, 193);
    }

    /// Bytes after the frame's end are counted, not parsed (issue 12: the L-field is
    /// authoritative); a frame shorter than L announces is truncated.
    #[test]
    fn lengths_beyond_l_are_trailing_bytes() {
        use crate::wire::dll::{canonicalize, CrcState};
        let mut raw = hex(SONTEX_A);
        raw.push(0x00);
        let mut out = Vec::new();
        let c = canonicalize(&raw, CrcState::Unknown, false, &mut out).unwrap();
        assert_eq!(
            (c.format, c.trailing, out.len()),
            (Some(FrameFormat::A), 1, 53)
        );

        let canon = hex(OMS_CANONICAL);
        let err = normalize(&canon[..20]).unwrap_err();
        assert_eq!(err, Error::truncated(Layer::Link, 20, 27));
        assert_eq!(
            normalize(&[]).unwrap_err(),
            Error::truncated(Layer::Link, 0, 1)
        );
        // Format B with 129 or 130 bytes would leave block 3 without data.
        let mut weird = vec![0u8; 130];
        weird[0] = 129;
        assert!(strip_crc(&weird, FrameFormat::B).is_err());
    }

    #[test]
    fn add_crc_rejects_what_l_cannot_say() {
        assert!(add_crc(&[0u8; 5], FrameFormat::A).is_err());
        assert!(add_crc(&[0u8; 256], FrameFormat::A).is_ok());
        assert!(add_crc(&[0u8; 257], FrameFormat::A).is_err());
        assert!(add_crc(&[0u8; 252], FrameFormat::B).is_ok());
        assert!(add_crc(&[0u8; 253], FrameFormat::B).is_err());
    }

    /// Every wireless corpus telegram normalises; exactly the two documented format-B
    /// frames with CRCs are recognised as such, and exactly the two frames noted as
    /// "len > L+1" have bytes after their L-field, counted as trailing (the explicit
    /// lenient mode reads them whole instead, saying so).
    #[test]
    fn corpus_frames_normalize() {
        use crate::wire::dll::{canonicalize, CrcState};
        let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
        let (mut canonical, mut format_b, mut trailing) = (0, 0, 0);
        for (line_no, line) in corpus.lines().enumerate() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            if entry["frame"] != "wmbus" {
                continue;
            }
            let bytes = hex(entry["telegram"].as_str().unwrap());
            let mut out = Vec::new();
            // The corpus README: CRCs removed unless the notes say otherwise.
            let state = if entry["notes"].to_string().contains("CRC: stripped") {
                CrcState::Checked(None)
            } else {
                CrcState::Unknown
            };
            let c = canonicalize(&bytes, state, false, &mut out)
                .unwrap_or_else(|e| panic!("line {}: {e}", line_no + 1));
            assert_eq!(usize::from(out[0]) + 1, out.len());
            if c.trailing > 0 {
                trailing += 1;
                assert!(entry["notes"].to_string().contains("len > L+1"));
                let mut whole = Vec::new();
                let lenient = canonicalize(&bytes, state, true, &mut whole).unwrap();
                assert_eq!(lenient.original_length, Some(bytes[0]));
                assert_eq!(whole.len(), bytes.len());
            }
            match c.format {
                None => canonical += 1,
                Some(FrameFormat::B) => format_b += 1,
                Some(FrameFormat::A) => panic!("line {}: unexpected format A", line_no + 1),
            }
            LinkHeader::parse(&out).unwrap();
        }
        assert_eq!((format_b, trailing), (2, 2));
        assert_eq!(canonical + format_b, 259);
    }

    proptest! {
        #[test]
        fn crc_round_trip(body in proptest::collection::vec(any::<u8>(), 9..=251), b_ok in any::<bool>()) {
            let mut canon = vec![0u8];
            canon.extend_from_slice(&body);
            canon[0] = (canon.len() - 1) as u8;
            let format = if b_ok { FrameFormat::B } else { FrameFormat::A };
            let raw = add_crc(&canon, format).unwrap();
            prop_assert_eq!(strip_crc(&raw, format).unwrap(), canon.clone());
            let (n, f) = normalize(&raw).unwrap();
            prop_assert_eq!(n, canon);
            prop_assert_eq!(f, Some(format));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = LinkHeader::parse(&bytes);
            let _ = normalize(&bytes);
            let _ = strip_crc(&bytes, FrameFormat::A);
            let _ = strip_crc(&bytes, FrameFormat::B);
            let _ = add_crc(&bytes, FrameFormat::A);
            let _ = add_crc(&bytes, FrameFormat::B);
        }
    }
}
