//! Transport layer header (protocol.md §2.1, §3): which CIs carry no, a short or a long
//! header, and the header fields ACC, STS, CF with the CF extension of modes 7 and 13.
//!
//! ```text
//! short: CI ACC STS CF[2] [CF-ext …]
//! long:  CI ID[4] M[2] VER TYPE ACC STS CF[2] [CF-ext …]
//! ```

use super::address::Address;
use super::link::LinkHeader;
use super::reader::Reader;
use super::{Error, Layer, Result};

/// Size of the TPL header that follows a CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    /// No TPL header: data (or a compact-frame body) directly after the CI.
    None,
    /// ACC, STS, CF (4 bytes).
    Short,
    /// ID, M, version, device type, ACC, STS, CF (12 bytes).
    Long,
}

/// TPL header kind of an application/transport CI (EN 13757-7 Table 2), or `None` for CIs
/// that are not followed by a TPL or APL this module understands: ELL, AFL, NWL,
/// manufacturer-specific and reserved values.
pub fn header_kind(ci: u8) -> Option<HeaderKind> {
    use HeaderKind::{Long, None as No, Short};
    Some(match ci {
        0x00..=0x1F => No,
        0x50 | 0x51 | 0x54 | 0x5C | 0x66 | 0x69 | 0x70 | 0x71 | 0x78 | 0x79 | 0x83 | 0x89 => No,
        0xB8..=0xBF => No,
        0x5A | 0x61 | 0x65 | 0x67 | 0x6A | 0x6E | 0x74 | 0x7A | 0x7B | 0x7D | 0x7F | 0x88
        | 0x8A | 0x9E | 0xC1 | 0xC4 => Short,
        0x53 | 0x55 | 0x5B | 0x5F | 0x60 | 0x64 | 0x68 | 0x6B | 0x6C | 0x6D | 0x6F | 0x72
        | 0x73 | 0x75 | 0x7C | 0x7E | 0x80 | 0x82 | 0x84 | 0x85 | 0x87 | 0x8B | 0x9F | 0xC0
        | 0xC2 | 0xC3 | 0xC5 => Long,
        _ => return None,
    })
}

/// CI 0xA0..=0xB7: the rest of the frame is in a vendor format.
pub fn is_manufacturer_specific(ci: u8) -> bool {
    (0xA0..=0xB7).contains(&ci)
}

/// Security mode, CF bits 12..8 (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    /// Mode 0: no encryption.
    None,
    /// AES-128-CBC, IV from address and ACC, persistent key (OMS profile A).
    Mode5,
    /// AES-128-CBC, zero IV, keys from KDF-A, MAC in the AFL (OMS profile B).
    Mode7,
    /// TLS (OMS profile C).
    Mode13,
    /// Any other mode number (DES, reserved, manufacturer specific …).
    Other(u8),
}

impl SecurityMode {
    pub fn from_number(n: u8) -> SecurityMode {
        match n {
            0 => SecurityMode::None,
            5 => SecurityMode::Mode5,
            7 => SecurityMode::Mode7,
            13 => SecurityMode::Mode13,
            other => SecurityMode::Other(other),
        }
    }

    pub fn number(self) -> u8 {
        match self {
            SecurityMode::None => 0,
            SecurityMode::Mode5 => 5,
            SecurityMode::Mode7 => 7,
            SecurityMode::Mode13 => 13,
            SecurityMode::Other(n) => n,
        }
    }
}

/// Configuration field (CF), 16 bits LE. Bit meanings outside the mode bits depend on the
/// security mode (§3.4); the accessors say which layout they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigField(pub u16);

impl ConfigField {
    pub fn security_mode(self) -> SecurityMode {
        SecurityMode::from_number(((self.0 >> 8) & 0x1F) as u8)
    }
    /// NNNN: number of encrypted 16-byte blocks (modes 5 and 7).
    pub fn encrypted_blocks(self) -> u8 {
        ((self.0 >> 4) & 0x0F) as u8
    }
    /// Mode 13: number of encrypted bytes (bits 7..0).
    pub fn encrypted_bytes_mode13(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
    /// B (modes 0/5): the meter is bidirectional.
    pub fn bidirectional(self) -> bool {
        self.0 & 0x8000 != 0
    }
    /// A (modes 0/5): the meter accepts access after this telegram.
    pub fn accessibility(self) -> bool {
        self.0 & 0x4000 != 0
    }
    /// S (modes 0/5): synchronous transmission.
    pub fn synchronous(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// R (modes 0/5): repeated access.
    pub fn repeated_access(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// H (modes 0/5): hop counter.
    pub fn hop_counter(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// Content of message (00 standard, 10 static): bits 3..2 in modes 0/5, bits 15..14
    /// in modes 7 and 13.
    pub fn content(self) -> u8 {
        match self.security_mode() {
            SecurityMode::Mode7 | SecurityMode::Mode13 => (self.0 >> 14) as u8,
            _ => ((self.0 >> 2) & 0x03) as u8,
        }
    }
    /// Mode 7, Z: a 4-byte TPL message counter follows the CF extension.
    pub fn has_message_counter(self) -> bool {
        self.security_mode() == SecurityMode::Mode7 && self.0 & 0x2000 != 0
    }
    /// Mode 7, P: padding flag.
    pub fn padding(self) -> bool {
        self.0 & 0x0008 != 0
    }
    /// Mode 7, III: content index.
    pub fn content_index(self) -> u8 {
        (self.0 & 0x07) as u8
    }
    /// Whether one CF extension byte follows (modes 7 and 13).
    pub fn has_extension(self) -> bool {
        matches!(
            self.security_mode(),
            SecurityMode::Mode7 | SecurityMode::Mode13
        )
    }
}

/// Key derivation selected by the mode-7 CF extension (bits 5..4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KdfSelection {
    /// The meter key is used as is.
    Persistent,
    /// KDF-A (AES-CMAC) from the meter key and message counter.
    KdfA,
    Reserved(u8),
}

/// Mode-7 CF extension byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigExtension(pub u8);

impl ConfigExtension {
    pub fn kdf(self) -> KdfSelection {
        match (self.0 >> 4) & 0x03 {
            0 => KdfSelection::Persistent,
            1 => KdfSelection::KdfA,
            other => KdfSelection::Reserved(other),
        }
    }
    pub fn key_id(self) -> u8 {
        self.0 & 0x0F
    }
    /// V: a key-version byte follows (after the optional message counter).
    pub fn has_key_version(self) -> bool {
        self.0 & 0x40 != 0
    }
}

/// Application status in STS bits 1..0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationStatus {
    NoError,
    Busy,
    Error,
    Abnormal,
}

/// Status byte (STS), §3.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    pub fn application_status(self) -> ApplicationStatus {
        match self.0 & 0x03 {
            0 => ApplicationStatus::NoError,
            1 => ApplicationStatus::Busy,
            2 => ApplicationStatus::Error,
            _ => ApplicationStatus::Abnormal,
        }
    }
    pub fn power_low(self) -> bool {
        self.0 & 0x04 != 0
    }
    pub fn permanent_error(self) -> bool {
        self.0 & 0x08 != 0
    }
    pub fn temporary_error(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Bits 7..5, meaning defined by the manufacturer.
    pub fn manufacturer_bits(self) -> u8 {
        self.0 >> 5
    }
    /// No standard flag set (manufacturer bits ignored).
    pub fn is_ok(self) -> bool {
        self.0 & 0x1F == 0
    }
}

/// ACC, STS, CF and what follows CF, present for short and long headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TplHeader {
    pub access_number: u8,
    pub status: Status,
    pub config: ConfigField,
    /// CF extension byte (modes 7 and 13).
    pub config_ext: Option<u8>,
    /// Mode 7 with Z set: TPL message counter (LE), used by KDF-A instead of AFL.MCR.
    pub message_counter: Option<u32>,
    /// Mode 7 with extension bit V: key version.
    pub key_version: Option<u8>,
}

impl TplHeader {
    /// The extension byte read as the mode-7 layout (`None` unless mode 7).
    pub fn mode7_extension(&self) -> Option<ConfigExtension> {
        match self.config.security_mode() {
            SecurityMode::Mode7 => self.config_ext.map(ConfigExtension),
            _ => None,
        }
    }

    fn buffer_len(&self) -> usize {
        field::CF.end
            + self.config_ext.map_or(0, |_| field::CF_EXT_LEN)
            + self.message_counter.map_or(0, |_| field::MCR_LEN)
            + self.key_version.map_or(0, |_| field::KEY_VERSION_LEN)
    }
}

/// A transport layer: its CI and, depending on the CI, a short or long header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TplRepr {
    pub ci: u8,
    /// Meter identity of a long header.
    pub long_address: Option<Address>,
    /// `None` for CIs without TPL header (0x78, 0x79, …).
    pub header: Option<TplHeader>,
}

impl TplRepr {
    /// Parses from `data` starting at the CI. Returns the TPL and the bytes consumed (CI,
    /// header, CF extension and the optional mode-7 counter and key version); the
    /// (possibly encrypted) application data follows.
    pub fn parse(data: &[u8]) -> Result<(TplRepr, usize)> {
        let Some((&ci, rest)) = data.split_first() else {
            return Err(Error::truncated(Layer::Tpl, 0, 1));
        };
        let kind = Self::kind_for(ci)?;
        Self::parse_body(ci, kind, rest)
            .map(|(repr, used)| (repr, used + 1))
            .map_err(|e| e.shift(1))
    }

    /// Like [`TplRepr::parse`] for a CI already read by the caller (e.g. the wired M-Bus
    /// frame); `rest` starts after the CI and the count returned excludes the CI. Error
    /// offsets are relative to `rest`, except an unsupported CI, reported at offset 0.
    pub fn parse_with_ci(ci: u8, rest: &[u8]) -> Result<(TplRepr, usize)> {
        let kind = Self::kind_for(ci)?;
        Self::parse_body(ci, kind, rest)
    }

    fn kind_for(ci: u8) -> Result<HeaderKind> {
        match header_kind(ci) {
            Some(kind) => Ok(kind),
            None if is_manufacturer_specific(ci) => Err(Error::unsupported(
                Layer::Tpl,
                0,
                "manufacturer-specific CI",
            )),
            None => Err(Error::unsupported(Layer::Tpl, 0, "CI")),
        }
    }

    fn parse_body(ci: u8, kind: HeaderKind, rest: &[u8]) -> Result<(TplRepr, usize)> {
        let mut r = Reader::new(rest, Layer::Tpl);
        let long_address = if kind == HeaderKind::Long {
            Some(Address::read_long(&mut r)?)
        } else {
            None
        };
        let header = if kind == HeaderKind::None {
            None
        } else {
            let access_number = r.u8()?;
            let status = Status(r.u8()?);
            let config = ConfigField(r.u16_le()?);
            let config_ext = if config.has_extension() {
                Some(r.u8()?)
            } else {
                None
            };
            let mode7_ext = match config.security_mode() {
                SecurityMode::Mode7 => config_ext.map(ConfigExtension),
                _ => None,
            };
            let message_counter = if config.has_message_counter() {
                Some(r.u32_le()?)
            } else {
                None
            };
            let key_version = if mode7_ext.is_some_and(ConfigExtension::has_key_version) {
                Some(r.u8()?)
            } else {
                None
            };
            Some(TplHeader {
                access_number,
                status,
                config,
                config_ext,
                message_counter,
                key_version,
            })
        };
        let repr = TplRepr {
            ci,
            long_address,
            header,
        };
        Ok((repr, r.pos()))
    }

    pub fn buffer_len(&self) -> usize {
        1 + self.long_address.map_or(0, |_| Address::LEN)
            + self.header.map_or(0, |h| h.buffer_len())
    }

    /// Appends CI and header as given (the caller keeps CI and fields consistent).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.ci);
        if let Some(addr) = self.long_address {
            addr.emit(out);
        }
        if let Some(h) = self.header {
            out.push(h.access_number);
            out.push(h.status.0);
            out.extend_from_slice(&h.config.0.to_le_bytes());
            if let Some(ext) = h.config_ext {
                out.push(ext);
            }
            if let Some(counter) = h.message_counter {
                out.extend_from_slice(&counter.to_le_bytes());
            }
            if let Some(version) = h.key_version {
                out.push(version);
            }
        }
    }

    pub fn kind(&self) -> HeaderKind {
        match (self.long_address, self.header) {
            (Some(_), _) => HeaderKind::Long,
            (None, Some(_)) => HeaderKind::Short,
            (None, None) => HeaderKind::None,
        }
    }

    pub fn access_number(&self) -> Option<u8> {
        self.header.map(|h| h.access_number)
    }

    pub fn status(&self) -> Option<Status> {
        self.header.map(|h| h.status)
    }

    pub fn config(&self) -> Option<ConfigField> {
        self.header.map(|h| h.config)
    }

    /// Security mode of the header; `None` (mode 0) for CIs without header.
    pub fn security_mode(&self) -> SecurityMode {
        self.config()
            .map_or(SecurityMode::None, ConfigField::security_mode)
    }

    /// The meter whose key, IV and KDF apply: the long-header identity if present, else
    /// the DLL identity (§3.1).
    pub fn meter_address(&self, link: &LinkHeader) -> Address {
        self.long_address.unwrap_or(link.address)
    }
}

/// Where the TPL fields sit (§3.1): the long header's address after the CI, then ACC, STS
/// and CF; CF extension, message counter and key version follow CF when present.
pub mod field {
    use crate::wire::annotate::Field;

    pub const CI: Field = 0..1;
    /// In a long header, from the byte after the CI.
    pub mod address {
        use crate::wire::annotate::Field;

        pub const ID: Field = 0..4;
        pub const MANUFACTURER: Field = 4..6;
        pub const VERSION: Field = 6..7;
        pub const DEVICE_TYPE: Field = 7..8;
    }
    /// From the first byte after the CI and any long-header address.
    pub const ACC: Field = 0..1;
    pub const STS: Field = 1..2;
    pub const CF: Field = 2..4;
    pub const CF_EXT_LEN: usize = 1;
    pub const MCR_LEN: usize = 4;
    pub const KEY_VERSION_LEN: usize = 1;
}

/// What follows a CI in words.
pub fn payload_name(ci: u8) -> &'static str {
    match ci {
        0x79 | 0x7B | 0x73 => "compact frame follows",
        0x69..=0x6B => "format frame follows",
        0x8A | 0x8B => "no application data",
        _ => "data records follow",
    }
}

/// A long header's address fields, labelled, for an address at frame offset `base`.
fn annotate_address(address: &Address, base: usize) -> Vec<super::annotate::Annotation> {
    use super::annotate::Annotation;
    use field::address as f;
    let a = address;
    let m = a.manufacturer();
    let kind = super::device_type::name(m, a.device_type);
    vec![
        Annotation::at(base, f::ID, "id", format!("meter id {}", a.id_string())),
        Annotation::at(base, f::MANUFACTURER, "M", format!("manufacturer {m}")),
        Annotation::at(
            base,
            f::VERSION,
            "version",
            format!("version {}", a.version),
        ),
        Annotation::at(
            base,
            f::DEVICE_TYPE,
            "device type",
            format!("{kind} (0x{:02X})", a.device_type),
        ),
    ]
}

impl TplHeader {
    /// ACC, STS, CF and the optional fields after CF, from frame offset `base`.
    pub fn annotate(&self, base: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let s = self.status;
        let app = match s.application_status() {
            ApplicationStatus::NoError => "no error",
            ApplicationStatus::Busy => "application busy",
            ApplicationStatus::Error => "application error",
            ApplicationStatus::Abnormal => "abnormal condition / alarm",
        };
        let flags = super::annotate::flags(
            &[
                (s.power_low(), "power low"),
                (s.permanent_error(), "permanent error"),
                (s.temporary_error(), "temporary error"),
            ],
            "",
        );
        let sep = if flags.is_empty() { "" } else { ", " };
        let cf = self.config;
        let mode = cf.security_mode();
        let blocks = match mode {
            SecurityMode::Mode5 | SecurityMode::Mode7 => {
                format!(", {} encrypted blocks", cf.encrypted_blocks())
            }
            _ => String::new(),
        };
        let cf_text = format!(
            "configuration 0x{:04X}: security mode {}{blocks}",
            cf.0,
            mode.number()
        );
        let mut out = vec![
            Annotation::at(
                base,
                field::ACC,
                "ACC",
                format!("access number {}", self.access_number),
            ),
            Annotation::at(
                base,
                field::STS,
                "STS",
                format!("status: {app}{sep}{flags}"),
            ),
            Annotation::at(base, field::CF, "CF", cf_text),
        ];
        let mut at = base + field::CF.end;
        let mut push = |len: usize, label: &'static str, value: String| {
            out.push(Annotation::span(at, len, label, value));
            at += len;
        };
        if let Some(ext) = self.config_ext {
            push(
                field::CF_EXT_LEN,
                "CF ext",
                format!("configuration extension 0x{ext:02X}"),
            );
        }
        if let Some(mc) = self.message_counter {
            push(field::MCR_LEN, "MCR", format!("message counter {mc}"));
        }
        if let Some(kv) = self.key_version {
            push(
                field::KEY_VERSION_LEN,
                "key version",
                format!("key version {kv}"),
            );
        }
        out
    }
}

impl TplRepr {
    /// CI and header fields, labelled, for a TPL whose CI sits at frame offset `base`.
    pub fn annotate(&self, base: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let kind = match self.kind() {
            HeaderKind::None => "no TPL header",
            HeaderKind::Short => "short TPL header",
            HeaderKind::Long => "long TPL header",
        };
        let ci = self.ci;
        let mut out = vec![Annotation::at(
            base,
            field::CI,
            "CI",
            format!("0x{ci:02X}: {kind}, {}", payload_name(ci)),
        )];
        let mut at = base + field::CI.end;
        if let Some(long) = self.long_address {
            out.extend(annotate_address(&long, at));
            at += Address::LEN;
        }
        if let Some(h) = self.header {
            out.extend(h.annotate(at));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn header_kinds() {
        assert_eq!(header_kind(0x7A), Some(HeaderKind::Short));
        assert_eq!(header_kind(0x72), Some(HeaderKind::Long));
        assert_eq!(header_kind(0x78), Some(HeaderKind::None));
        assert_eq!(header_kind(0x79), Some(HeaderKind::None));
        assert_eq!(header_kind(0x7B), Some(HeaderKind::Short));
        assert_eq!(header_kind(0x73), Some(HeaderKind::Long));
        assert_eq!(header_kind(0x5A), Some(HeaderKind::Short));
        assert_eq!(header_kind(0x5B), Some(HeaderKind::Long));
        assert_eq!(header_kind(0x69), Some(HeaderKind::None));
        assert_eq!(header_kind(0x6A), Some(HeaderKind::Short));
        assert_eq!(header_kind(0x6B), Some(HeaderKind::Long));
        assert_eq!(header_kind(0x8A), Some(HeaderKind::Short));
        assert_eq!(header_kind(0x8B), Some(HeaderKind::Long));
        for ci in [
            0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x81, 0x86, 0xA0, 0xB7, 0xC6, 0x52,
        ] {
            assert_eq!(header_kind(ci), None, "{ci:#x}");
        }
        assert!(is_manufacturer_specific(0xA2) && !is_manufacturer_specific(0xB8));
    }

    #[test]
    fn short_header_mode5() {
        // §4.2.1: 7A 2A 00 20 25, then ciphertext.
        let data = [0x7A, 0x2A, 0x00, 0x20, 0x25, 0x59, 0x23];
        let (tpl, used) = TplRepr::parse(&data).unwrap();
        assert_eq!(used, 5);
        assert_eq!(tpl.kind(), HeaderKind::Short);
        assert_eq!(tpl.access_number(), Some(0x2A));
        assert!(tpl.status().unwrap().is_ok());
        let cf = tpl.config().unwrap();
        assert_eq!(cf, ConfigField(0x2520));
        assert_eq!(cf.security_mode(), SecurityMode::Mode5);
        assert_eq!(cf.encrypted_blocks(), 2);
        assert!(cf.synchronous() && !cf.bidirectional() && !cf.accessibility());
        let mut out = Vec::new();
        tpl.emit(&mut out);
        assert_eq!(out, data[..5]);
        assert_eq!(tpl.buffer_len(), 5);
    }

    #[test]
    fn cf_bidirectional_example() {
        let cf = ConfigField(u16::from_le_bytes([0x60, 0x85]));
        assert!(cf.bidirectional());
        assert_eq!(cf.security_mode(), SecurityMode::Mode5);
        assert_eq!(cf.encrypted_blocks(), 6);
    }

    #[test]
    fn long_header_mode5() {
        // §4.2.2: 72 44 00 00 57 A2 05 0C 37 A3 00 30 05
        let data = [
            0x72, 0x44, 0x00, 0x00, 0x57, 0xA2, 0x05, 0x0C, 0x37, 0xA3, 0x00, 0x30, 0x05, 0xD8,
        ];
        let (tpl, used) = TplRepr::parse(&data).unwrap();
        assert_eq!(used, 13);
        let addr = tpl.long_address.unwrap();
        assert_eq!(addr.id_string(), "57000044");
        assert_eq!(addr.manufacturer().to_string(), "AMB");
        assert_eq!((addr.version, addr.device_type), (0x0C, 0x37));
        assert_eq!(
            addr.address_bytes(),
            [0xA2, 0x05, 0x44, 0x00, 0x00, 0x57, 0x0C, 0x37]
        );
        assert_eq!(tpl.access_number(), Some(0xA3));
        assert_eq!(tpl.security_mode(), SecurityMode::Mode5);
        assert_eq!(tpl.config().unwrap().encrypted_blocks(), 3);
        let mut out = Vec::new();
        tpl.emit(&mut out);
        assert_eq!(out, data[..13]);
        assert_eq!(Address::parse(&data[1..]).unwrap(), (addr, 8));
    }

    #[test]
    fn mode7_extension() {
        // §4.5.3: 7A 75 00 20 07 10, then ciphertext 90 58 …
        let data = [0x7A, 0x75, 0x00, 0x20, 0x07, 0x10, 0x90, 0x58];
        let (tpl, used) = TplRepr::parse(&data).unwrap();
        assert_eq!(used, 6);
        let h = tpl.header.unwrap();
        assert_eq!(h.config.security_mode(), SecurityMode::Mode7);
        assert_eq!(h.config.encrypted_blocks(), 2);
        assert_eq!(h.config_ext, Some(0x10));
        let ext = h.mode7_extension().unwrap();
        assert_eq!(ext.kdf(), KdfSelection::KdfA);
        assert_eq!(ext.key_id(), 0);
        assert_eq!((h.message_counter, h.key_version), (None, None));
        let mut out = Vec::new();
        tpl.emit(&mut out);
        assert_eq!(out, data[..6]);
    }

    #[test]
    fn mode7_counter_and_key_version() {
        // Z set (bit 13), extension with V: counter then key version follow.
        let data = [
            0x7A, 0x01, 0x00, 0x20, 0x27, 0x51, 0x04, 0x03, 0x02, 0x01, 0x09, 0xEE,
        ];
        let (tpl, used) = TplRepr::parse(&data).unwrap();
        assert_eq!(used, 11);
        let h = tpl.header.unwrap();
        assert_eq!(h.message_counter, Some(0x0102_0304));
        assert_eq!(h.key_version, Some(0x09));
        assert_eq!(h.mode7_extension().unwrap().key_id(), 1);
        let mut out = Vec::new();
        tpl.emit(&mut out);
        assert_eq!(out, data[..11]);
        assert_eq!(tpl.buffer_len(), 11);
    }

    #[test]
    fn radio_adapter_long_header_mode7() {
        // CEN/TR 17167 F.3 TPL: 72 78 56 34 12 93 15 33 03 75 00 20 07 10
        let data = [
            0x72, 0x78, 0x56, 0x34, 0x12, 0x93, 0x15, 0x33, 0x03, 0x75, 0x00, 0x20, 0x07, 0x10,
        ];
        let (tpl, used) = TplRepr::parse(&data).unwrap();
        assert_eq!(used, 14);
        assert_eq!(tpl.long_address.unwrap().id_string(), "12345678");
        assert_eq!(tpl.security_mode(), SecurityMode::Mode7);
    }

    #[test]
    fn no_header_ci() {
        let (tpl, used) = TplRepr::parse(&[0x78, 0x02, 0xFF]).unwrap();
        assert_eq!((tpl.kind(), used), (HeaderKind::None, 1));
        assert_eq!(tpl.security_mode(), SecurityMode::None);
        assert_eq!(tpl.access_number(), None);
    }

    #[test]
    fn meter_address_prefers_long_header() {
        let dll = [0x53, 0x08, 0x24, 0x48, 0x44, 0x33, 0x22, 0x11, 0x03, 0x37];
        let (link, _) = LinkHeader::parse(&dll).unwrap();
        let (short, _) = TplRepr::parse(&[0x7A, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            short.meter_address(&link).address_bytes(),
            link.address.address_bytes()
        );
        let tpl = [
            0x72, 0x78, 0x56, 0x34, 0x12, 0x93, 0x15, 0x33, 0x03, 0x75, 0x00, 0x00, 0x00,
        ];
        let (long, _) = TplRepr::parse(&tpl).unwrap();
        assert_eq!(long.meter_address(&link).id_string(), "12345678");
    }

    #[test]
    fn status_flags() {
        let s = Status(0x1F | 0xA0);
        assert_eq!(s.application_status(), ApplicationStatus::Abnormal);
        assert!(s.power_low() && s.permanent_error() && s.temporary_error());
        assert_eq!(s.manufacturer_bits(), 0x05);
        assert!(!s.is_ok());
        assert!(Status(0xE0).is_ok());
        assert_eq!(Status(0x01).application_status(), ApplicationStatus::Busy);
        assert_eq!(Status(0x02).application_status(), ApplicationStatus::Error);
    }

    #[test]
    fn errors() {
        let err = TplRepr::parse(&[0x72, 0x44, 0x00]).unwrap_err();
        assert_eq!(err, Error::truncated(Layer::Tpl, 3, 2));
        let err = TplRepr::parse(&[0x7A, 0x75, 0x00, 0x20, 0x07]).unwrap_err();
        assert_eq!(err, Error::truncated(Layer::Tpl, 5, 1));
        assert!(matches!(
            TplRepr::parse(&[0xA0, 1, 2]).unwrap_err().kind,
            ErrorKind::Unsupported("manufacturer-specific CI")
        ));
        assert!(TplRepr::parse(&[0x8D]).is_err());
        assert!(TplRepr::parse(&[]).is_err());
    }

    /// Walks DLL -> ELL -> AFL -> TPL over every wireless corpus telegram. Every layer of a
    /// telegram that is not manufacturer specific or still ELL-encrypted must parse, and
    /// whatever parses must emit back to the same bytes.
    #[test]
    fn corpus_layers_parse() {
        use crate::wire::afl::{AflRepr, CI_AFL};
        use crate::wire::dll::{canonicalize, CrcState};
        use crate::wire::ell::{check_payload_crc, is_ell_ci, EllEncryption, EllRepr};

        let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
        let (mut tpl_parsed, mut vendor, mut ell_encrypted) = (0, 0, 0);
        for (line_no, line) in corpus.lines().enumerate() {
            let at = |what: &str| format!("line {}: {what}", line_no + 1);
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            if entry["frame"] != "wmbus" {
                continue;
            }
            let raw = hex::decode(entry["telegram"].as_str().unwrap()).unwrap();
            // Read whole as the explicit lenient mode does (two entries run past L).
            let mut frame = Vec::new();
            let state = if entry["notes"].to_string().contains("CRC: stripped") {
                CrcState::Checked(None)
            } else {
                CrcState::Unknown
            };
            canonicalize(&raw, state, true, &mut frame).unwrap();
            let (link, mut pos) = LinkHeader::parse(&frame).unwrap();
            let mut skip = false;
            if frame.get(pos).copied().is_some_and(is_ell_ci) {
                let (ell, used) =
                    EllRepr::parse(&frame[pos..]).unwrap_or_else(|e| panic!("{}: {e}", at("ell")));
                let mut out = Vec::new();
                ell.emit(&mut out);
                assert_eq!(out, frame[pos..pos + used], "{}", at("ell emit"));
                if let Some(off) = ell.encrypted_offset() {
                    let crc_ok = check_payload_crc(&frame[pos + off..], pos + off).is_ok();
                    if ell.encryption() == EllEncryption::AesCtr && !crc_ok {
                        ell_encrypted += 1;
                        skip = true;
                    }
                }
                pos += used;
            }
            if skip {
                continue;
            }
            if frame.get(pos) == Some(&CI_AFL) {
                let (afl, used) =
                    AflRepr::parse(&frame[pos..]).unwrap_or_else(|e| panic!("{}: {e}", at("afl")));
                let mut out = Vec::new();
                afl.emit(&mut out);
                assert_eq!(out, frame[pos..pos + used], "{}", at("afl emit"));
                pos += used;
            }
            let ci = frame[pos];
            if is_manufacturer_specific(ci) {
                vendor += 1;
                continue;
            }
            let (tpl, used) =
                TplRepr::parse(&frame[pos..]).unwrap_or_else(|e| panic!("{}: {e}", at("tpl")));
            let mut out = Vec::new();
            tpl.emit(&mut out);
            assert_eq!(out, frame[pos..pos + used], "{}", at("tpl emit"));
            // One entry is configured with the wildcard "ANYID" instead of an id.
            if let Some(meter_id) = entry["meter_id"].as_str().filter(|m| *m != "ANYID") {
                assert_eq!(
                    tpl.meter_address(&link).id_string(),
                    meter_id,
                    "{}",
                    at("id")
                );
            }
            tpl_parsed += 1;
        }
        // All ELL-encrypted corpus telegrams are plaintext replays (their CRC verifies).
        assert_eq!((tpl_parsed, vendor, ell_encrypted), (224, 35, 0));
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok((repr, used)) = TplRepr::parse(&bytes) {
                prop_assert_eq!(repr.buffer_len(), used);
                let mut out = Vec::new();
                repr.emit(&mut out);
                prop_assert_eq!(out.as_slice(), &bytes[..used]);
            }
        }
    }
}
