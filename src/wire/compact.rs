//! Compact frames and format frames (EN 13757-3 Annex G, protocol.md §7).
//!
//! A meter alternates full frames (DIF/VIF headers + data) with compact frames (data
//! only, CI 0x79/0x7B/0x73) that name their layout by a 16-bit format signature: the
//! CRC-16/EN-13757 over all record headers. A receiver learns a [`CompactFormat`] from a
//! full frame (or a format frame, CI 0x69/0x6A/0x6B), persists it, and rebuilds the full
//! record area from a compact frame with [`CompactFormat::expand`].
//!
//! Record headers here include a plain-text unit (VIF 0x7C/0xFC) when present: it is
//! part of the VIB and needed to rebuild the record. Idle fillers never enter a
//! signature (protocol.md §7.3 leaves open whether the standard counts them).

use serde::{Deserialize, Serialize};

use super::apl::{self, DataRecord, IDLE_FILLER};
use super::crc::{crc16_en13757, Crc16En13757};
use super::{Error, ErrorKind, Layer, Result};

/// CRC over the complete record area of a full frame: the "full-frame CRC" a compact
/// frame carries to check the reconstruction.
pub fn full_frame_crc(record_area: &[u8]) -> u16 {
    crc16_en13757(record_area)
}

/// Format signature of a list of records: CRC-16/EN-13757 over their headers.
pub fn format_signature(records: &[DataRecord<'_>]) -> u16 {
    records
        .iter()
        .fold(Crc16En13757::new(), |crc, r| crc.update(r.header))
        .finish()
}

/// One record of a format: its header bytes and data length (`None` = LVAR, the LVAR
/// byte then travels in the compact data).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FormatEntry {
    #[serde(with = "hex_bytes")]
    pub header: Vec<u8>,
    pub data_len: Option<usize>,
}

/// Layout of the records of a full frame, as needed to expand compact frames.
/// Serialises as `{"records":[{"header":"0C14","data_len":4},…]}` for persistence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct CompactFormat {
    pub records: Vec<FormatEntry>,
}

impl CompactFormat {
    pub fn from_records(records: &[DataRecord<'_>]) -> Self {
        CompactFormat {
            records: records
                .iter()
                .map(|r| FormatEntry {
                    header: r.header.to_vec(),
                    data_len: r.dib.data_field.data_len(),
                })
                .collect(),
        }
    }

    /// Parses a bare DIF/VIF list (the body of a format frame); fillers are skipped.
    pub fn from_headers(headers: &[u8]) -> Result<Self> {
        let mut records = Vec::new();
        let mut pos = 0;
        loop {
            while headers.get(pos) == Some(&IDLE_FILLER) {
                pos += 1;
            }
            let Some(&dif) = headers.get(pos) else {
                return Ok(CompactFormat { records });
            };
            if dif & 0x0F == 0x0F {
                return Err(Error::unsupported(
                    Layer::Compact,
                    pos,
                    "special-function DIF in format",
                ));
            }
            let h = apl::parse_header(headers, pos).map_err(into_compact)?;
            let header = headers
                .get(pos..pos + h.len)
                .ok_or_else(|| Error::truncated(Layer::Compact, pos, h.len))?;
            records.push(FormatEntry {
                header: header.to_vec(),
                data_len: h.dib.data_field.data_len(),
            });
            pos += h.len;
        }
    }

    pub fn signature(&self) -> u16 {
        self.records
            .iter()
            .fold(Crc16En13757::new(), |crc, r| crc.update(&r.header))
            .finish()
    }

    /// Concatenated headers, as carried by a format frame.
    pub fn headers(&self) -> Vec<u8> {
        self.records
            .iter()
            .flat_map(|r| r.header.iter().copied())
            .collect()
    }

    /// Rebuilds the full record area from compact data (trailing 0x2F fillers ignored).
    /// Errors carry offsets inside `data`.
    pub fn expand(&self, data: &[u8]) -> Result<Vec<u8>> {
        let total: usize = self
            .records
            .iter()
            .map(|r| r.header.len() + r.data_len.unwrap_or(1))
            .sum();
        let mut out = Vec::with_capacity(total);
        let mut pos = 0;
        for r in &self.records {
            out.extend_from_slice(&r.header);
            let len = match r.data_len {
                Some(len) => len,
                None => {
                    let lvar = *data
                        .get(pos)
                        .ok_or_else(|| Error::truncated(Layer::Compact, pos, 1))?;
                    let len = apl::lvar_len(lvar)
                        .ok_or_else(|| Error::invalid(Layer::Compact, pos, "LVAR"))?;
                    out.push(lvar);
                    pos += 1;
                    len
                }
            };
            let bytes = data.get(pos..pos + len).ok_or_else(|| {
                Error::truncated(Layer::Compact, pos, pos + len - data.len().max(pos))
            })?;
            out.extend_from_slice(bytes);
            pos += len;
        }
        let rest = data.get(pos..).unwrap_or(&[]);
        if let Some(i) = rest.iter().position(|&b| b != IDLE_FILLER) {
            return Err(Error::invalid(
                Layer::Compact,
                pos + i,
                "data beyond the compact format",
            ));
        }
        Ok(out)
    }

    /// Expands a compact frame after checking its signature and the full-frame CRC.
    pub fn expand_verified(&self, compact: &CompactRepr<'_>) -> Result<Vec<u8>> {
        let (full, crc) = self.expand_covered(compact)?;
        if crc != compact.full_crc {
            return Err(Error::new(
                Layer::Compact,
                2,
                ErrorKind::Crc {
                    stored: compact.full_crc,
                    computed: crc,
                },
            ));
        }
        Ok(full)
    }

    /// Expands a compact frame after checking its signature only; returns the record area
    /// and its CRC, which the caller compares with the stored full-frame CRC or not.
    ///
    /// For frames whose data bytes a lower layer already verified (ELL payload CRC, DLL
    /// block CRCs, AFL MAC): there the signature identifies the layout and the lower
    /// check vouches for every data byte, so the full-frame CRC adds nothing; and Kamstrup
    /// meters fill it with the CRC of the
    /// last full frame they sent rather than of the current values (flowIQ 2200 23813076
    /// in the corpus: its compact frame stores exactly the CRC of the full frame sent one
    /// access number earlier, which differs from it in the flow value alone).
    pub fn expand_covered(&self, compact: &CompactRepr<'_>) -> Result<(Vec<u8>, u16)> {
        let signature = self.signature();
        if signature != compact.signature {
            return Err(Error::new(
                Layer::Compact,
                0,
                ErrorKind::Crc {
                    stored: compact.signature,
                    computed: signature,
                },
            ));
        }
        let full = self
            .expand(compact.data)
            .map_err(|e| e.shift(CompactRepr::HEADER_LEN))?;
        let crc = full_frame_crc(&full);
        Ok((full, crc))
    }
}

/// Reports an APL-layer error found while reading a format as a compact-layer error.
fn into_compact(e: Error) -> Error {
    Error::new(Layer::Compact, e.offset, e.kind)
}

/// APL of a compact frame (CI 0x79/0x7B/0x73, after any TPL header / decryption):
/// signature, full-frame CRC, data of all records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactRepr<'a> {
    pub signature: u16,
    pub full_crc: u16,
    pub data: &'a [u8],
}

impl<'a> CompactRepr<'a> {
    pub const HEADER_LEN: usize = field::FULL_CRC.end;

    pub fn parse(apl: &'a [u8]) -> Result<Self> {
        match apl {
            [s0, s1, c0, c1, data @ ..] => Ok(CompactRepr {
                signature: u16::from_le_bytes([*s0, *s1]),
                full_crc: u16::from_le_bytes([*c0, *c1]),
                data,
            }),
            _ => Err(Error::truncated(
                Layer::Compact,
                apl.len(),
                Self::HEADER_LEN - apl.len(),
            )),
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signature.to_le_bytes());
        out.extend_from_slice(&self.full_crc.to_le_bytes());
        out.extend_from_slice(self.data);
    }
}

/// APL of a format frame (CI 0x69/0x6A/0x6B): length (2 + header bytes), signature,
/// DIF/VIF list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatFrameRepr<'a> {
    pub signature: u16,
    pub headers: &'a [u8],
}

impl<'a> FormatFrameRepr<'a> {
    /// Bytes after the length byte belonging to the format: the signature.
    const SIGNATURE_LEN: usize = field::FORMAT_SIGNATURE.end - field::FORMAT_SIGNATURE.start;

    pub fn parse(apl: &'a [u8]) -> Result<Self> {
        let (&length, rest) = apl
            .split_first()
            .ok_or_else(|| Error::truncated(Layer::Compact, 0, 1))?;
        let length = usize::from(length);
        if length < Self::SIGNATURE_LEN {
            return Err(Error::invalid(Layer::Compact, 0, "format frame length"));
        }
        let body = rest
            .get(..length)
            .ok_or_else(|| Error::truncated(Layer::Compact, apl.len(), length - rest.len()))?;
        let Some((sig, headers)) = body.split_first_chunk::<2>() else {
            return Err(Error::invalid(Layer::Compact, 0, "format frame length"));
        };
        Ok(FormatFrameRepr {
            signature: u16::from_le_bytes(*sig),
            headers,
        })
    }

    /// Appends the format frame APL; fails if the headers exceed the length byte.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let length = u8::try_from(self.headers.len() + Self::SIGNATURE_LEN)
            .map_err(|_| Error::invalid(Layer::Compact, 0, "format frame too long"))?;
        out.push(length);
        out.extend_from_slice(&self.signature.to_le_bytes());
        out.extend_from_slice(self.headers);
        Ok(())
    }

    /// The format described by the DIF/VIF list, checked against the signature.
    pub fn format(&self) -> Result<CompactFormat> {
        let format = CompactFormat::from_headers(self.headers)
            .map_err(|e| e.shift(1 + Self::SIGNATURE_LEN))?;
        let computed = format.signature();
        if computed != self.signature {
            return Err(Error::new(
                Layer::Compact,
                1,
                ErrorKind::Crc {
                    stored: self.signature,
                    computed,
                },
            ));
        }
        Ok(format)
    }
}

/// Serde helper: bytes as an uppercase hex string.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_upper(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_ref()).map_err(serde::de::Error::custom)
    }
}

/// Where the compact-frame and format-frame fields sit, from the first APL byte.
pub mod field {
    use crate::wire::annotate::Field;

    /// Compact frame: signature, full-frame CRC, then the records' data.
    pub const SIGNATURE: Field = 0..2;
    pub const FULL_CRC: Field = 2..4;
    /// Format frame: length, signature, then the DIF/VIF list.
    pub const FORMAT_LENGTH: Field = 0..1;
    pub const FORMAT_SIGNATURE: Field = 1..3;
}

impl CompactRepr<'_> {
    /// Signature, full CRC and record data, labelled, from frame offset `base`.
    pub fn annotate(&self, base: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let (signature, full_crc, n) = (self.signature, self.full_crc, self.data.len());
        vec![
            Annotation::at(
                base,
                field::SIGNATURE,
                "signature",
                format!(
                    "format signature 0x{signature:04X} (CRC of the full frame's DIF/VIF list)"
                ),
            ),
            Annotation::at(
                base,
                field::FULL_CRC,
                "full CRC",
                format!("CRC 0x{full_crc:04X} of the full frame's record area"),
            ),
            Annotation::span(
                base + field::FULL_CRC.end,
                n,
                "record data",
                format!("{n} bytes of record data"),
            ),
        ]
    }
}

impl FormatFrameRepr<'_> {
    /// Length, signature and DIF/VIF list, labelled, from frame offset `base`.
    pub fn annotate(&self, base: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let n = self.headers.len();
        vec![
            Annotation::at(
                base,
                field::FORMAT_LENGTH,
                "length",
                format!("{} bytes follow", n + 2),
            ),
            Annotation::at(
                base,
                field::FORMAT_SIGNATURE,
                "signature",
                format!("format signature 0x{:04X}", self.signature),
            ),
            Annotation::span(
                base + field::FORMAT_SIGNATURE.end,
                n,
                "DIF/VIF list",
                "record headers of the format (learned for later compact frames)",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16_en13757(b"123456789"), 0xC2B7);
    }

    #[test]
    fn en13757_g52_vector() {
        let full = hex("02 02 D2 04 02 15 2E 16 02 2A 34 23");
        let records = apl::parse(&full).unwrap().records;
        assert_eq!(format_signature(&records), 0x3B31);
        assert_eq!(full_frame_crc(&full), 0xA642);

        let format = CompactFormat::from_records(&records);
        assert_eq!(format.signature(), 0x3B31);
        assert_eq!(format.headers(), hex("02 02 02 15 02 2A"));

        let format_apl = hex("08 31 3B 02 02 02 15 02 2A");
        let ff = FormatFrameRepr::parse(&format_apl).unwrap();
        assert_eq!(ff.signature, 0x3B31);
        assert_eq!(ff.format().unwrap(), format);
        let mut out = Vec::new();
        ff.emit(&mut out).unwrap();
        assert_eq!(out, format_apl);

        let compact_apl = hex("31 3B 42 A6 D2 04 2E 16 34 23");
        let compact = CompactRepr::parse(&compact_apl).unwrap();
        assert_eq!((compact.signature, compact.full_crc), (0x3B31, 0xA642));
        assert_eq!(format.expand_verified(&compact).unwrap(), full);
        let mut out = Vec::new();
        compact.emit(&mut out);
        assert_eq!(out, compact_apl);
    }

    #[test]
    fn kamstrup_pair() {
        let full = hex(
            "02 F9 FF 15 01 11 04 06 17 65 00 00 04 EE FF 07 BF A8 00 00 04 EE FF 08 D2 4F 00 00 \
             04 14 B1 FB 00 00 02 FD 17 00 00 02 6C E9 19 42 6C FF 18 44 06 F7 64 00 00 44 14 \
             E8 FA 00 00 04 3B 0B 00 00 00 02 59 DB 11 02 5D 1C 0B",
        );
        let records = apl::parse(&full).unwrap().records;
        assert_eq!(records.len(), 13);
        assert_eq!(format_signature(&records), 0x82DD);
        assert_eq!(full_frame_crc(&full), 0x8392);

        let compact_apl = hex(
            "DD 82 92 83 01 11 17 65 00 00 BF A8 00 00 D2 4F 00 00 B1 FB 00 00 00 00 E9 19 \
             FF 18 F7 64 00 00 E8 FA 00 00 0B 00 00 00 DB 11 1C 0B",
        );
        let compact = CompactRepr::parse(&compact_apl).unwrap();
        let data: Vec<u8> = records
            .iter()
            .flat_map(|r| r.data.iter().copied())
            .collect();
        assert_eq!(compact.data, data.as_slice());
        let format = CompactFormat::from_records(&records);
        assert_eq!(format.expand_verified(&compact).unwrap(), full);
    }

    #[test]
    fn kamstrup_stale_full_frame_crc() {
        // flowIQ 2200 23813076 (corpus): a full frame, then the next telegram as a compact
        // frame whose flow changed from 0 to 0.035 m3/h but whose full-frame CRC is still
        // the one of the full frame.
        let format = CompactFormat::from_headers(&hex(
            "04FF23 4413 523B 06FF1B 426C 6167 5167 023B 0413 8101E7FF0F",
        ))
        .unwrap();
        let earlier_full = hex(
            "04FF23 00080000 4413 00000000 523B 0000 06FF1B 08900008F0FF 426C C12B \
             6167 0A 5167 1B 023B 0000 0413 1F0F0000 8101E7FF0F 13",
        );
        assert_eq!(full_frame_crc(&earlier_full), 0x8054);
        let compact_apl =
            hex("0509 5480 00080000 00000000 0000 08900008F0FF C12B 0A 1B 2300 1F0F0000 13");
        let compact = CompactRepr::parse(&compact_apl).unwrap();
        assert_eq!((compact.signature, compact.full_crc), (0x0905, 0x8054));
        assert_eq!(
            format.expand_verified(&compact).unwrap_err(),
            Error::new(
                Layer::Compact,
                2,
                ErrorKind::Crc {
                    stored: 0x8054,
                    computed: 0x335D
                }
            )
        );
        let (full, crc) = format.expand_covered(&compact).unwrap();
        assert_eq!(crc, 0x335D);
        let mut expected = earlier_full.clone();
        let flow = expected.len() - 14;
        expected[flow] = 0x23;
        assert_eq!(full, expected);
        // The signature is still checked.
        let other = CompactRepr {
            signature: 0x0906,
            ..compact
        };
        assert!(format.expand_covered(&other).is_err());
    }

    #[test]
    fn third_vector() {
        let full = hex(
            "04 06 A6 0B 00 00 04 FF 07 4E 11 00 00 04 FF 08 13 07 00 00 04 14 C9 1A 00 00 \
             02 FD 17 00 00 04 3B 00 00 00 00 02 59 B1 0B 02 5D 67 09",
        );
        let records = apl::parse(&full).unwrap().records;
        assert_eq!(format_signature(&records), 0xD7C4);
        assert_eq!(full_frame_crc(&full), 0xB088);
        let compact_apl = hex(
            "C4 D7 88 B0 A6 0B 00 00 4E 11 00 00 13 07 00 00 C9 1A 00 00 00 00 00 00 00 00 \
             B1 0B 67 09",
        );
        let compact = CompactRepr::parse(&compact_apl).unwrap();
        let format = CompactFormat::from_records(&records);
        assert_eq!(format.expand_verified(&compact).unwrap(), full);
    }

    #[test]
    fn lvar_and_fillers_in_expand() {
        let full = hex("0DFD11 02 4241 0413 01000000 2F 2F");
        let apl = apl::parse(&full).unwrap();
        let format = CompactFormat::from_records(&apl.records);
        assert_eq!(format.records[0].data_len, None);
        let rebuilt = format.expand(&hex("02 4241 01000000 2F2F")).unwrap();
        assert_eq!(rebuilt, hex("0DFD11 02 4241 0413 01000000"));
        let err = format.expand(&hex("02 4241 010000")).unwrap_err();
        assert_eq!(err, Error::truncated(Layer::Compact, 3, 1));
        let err = format.expand(&hex("02 4241 01000000 55")).unwrap_err();
        assert_eq!(err.offset, 7);
    }

    #[test]
    fn mismatches_are_reported() {
        let full = hex("02 02 D2 04 02 15 2E 16 02 2A 34 23");
        let records = apl::parse(&full).unwrap().records;
        let format = CompactFormat::from_records(&records);
        let bad_crc = hex("31 3B 43 A6 D2 04 2E 16 34 23");
        let err = format
            .expand_verified(&CompactRepr::parse(&bad_crc).unwrap())
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::Crc {
                stored: 0xA643,
                computed: 0xA642
            }
        );
        let bad_sig = hex("30 3B 42 A6 D2 04 2E 16 34 23");
        assert!(format
            .expand_verified(&CompactRepr::parse(&bad_sig).unwrap())
            .is_err());
        assert_eq!(
            CompactRepr::parse(&[1, 2]).unwrap_err(),
            Error::truncated(Layer::Compact, 2, 2)
        );
        assert!(FormatFrameRepr::parse(&hex("08 31 3B 02 02")).is_err());
        assert!(FormatFrameRepr::parse(&hex("08 30 3B 02 02 02 15 02 2A"))
            .unwrap()
            .format()
            .is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            if let Ok(ff) = FormatFrameRepr::parse(&bytes) {
                if let Ok(format) = ff.format() {
                    let _ = format.expand(&bytes);
                }
            }
            if let Ok(c) = CompactRepr::parse(&bytes) {
                let _ = CompactFormat::from_headers(c.data);
            }
        }

        #[test]
        fn compact_round_trip(values in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..8)) {
            // Full frame of 32-bit volumes at increasing storage numbers.
            let mut full = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let r = apl::RecordRepr::integer(
                    apl::DataField::Integer(4),
                    apl::Vib::primary(0x13),
                    i64::from(*v),
                )
                .unwrap()
                .storage(i as u64);
                r.emit(&mut full).unwrap();
            }
            let records = apl::parse(&full).unwrap().records;
            let format = CompactFormat::from_records(&records);
            let data: Vec<u8> = records.iter().flat_map(|r| r.data.iter().copied()).collect();
            let compact = CompactRepr {
                signature: format_signature(&records),
                full_crc: full_frame_crc(&full),
                data: &data,
            };
            let mut apl_bytes = Vec::new();
            compact.emit(&mut apl_bytes);
            let parsed = CompactRepr::parse(&apl_bytes).unwrap();
            proptest::prop_assert_eq!(format.expand_verified(&parsed).unwrap(), full);
            let mut ff = Vec::new();
            FormatFrameRepr { signature: format.signature(), headers: &format.headers() }
                .emit(&mut ff)
                .unwrap();
            proptest::prop_assert_eq!(FormatFrameRepr::parse(&ff).unwrap().format().unwrap(), format);
        }
    }

    #[test]
    fn format_persists_as_json() {
        let full = hex("0C14 27048502 0DFD11 02 4241");
        let format = CompactFormat::from_records(&apl::parse(&full).unwrap().records);
        let json = serde_json::to_string(&format).unwrap();
        assert_eq!(
            json,
            r#"{"records":[{"header":"0C14","data_len":4},{"header":"0DFD11","data_len":null}]}"#
        );
        let back: CompactFormat = serde_json::from_str(&json).unwrap();
        assert_eq!(back, format);
    }
}
