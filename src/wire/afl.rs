//! Authentication and fragmentation layer, CI 0x90 (protocol.md §4.4).
//!
//! ```text
//! CI=90 AFLL FCL[2] [MCL] [KI[2]] [MCR[4]] [MAC[N]] [ML[2]]
//! ```
//! AFLL counts the bytes after itself; which optional fields follow is told by FCL bits, the
//! MAC length by the authentication type in MCL.

use super::reader::Reader;
use super::{Error, Layer, Result};

pub const CI_AFL: u8 = 0x90;

/// Longest MAC any authentication type produces (full AES-CMAC).
pub const MAX_MAC_LEN: usize = 16;

/// Fragmentation control field (FCL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentControl(pub u16);

impl FragmentControl {
    /// MF: more fragments of this message follow.
    pub fn more_fragments(self) -> bool {
        self.0 & (1 << 14) != 0
    }
    /// MCLP: message control field present.
    pub fn mcl_present(self) -> bool {
        self.0 & (1 << 13) != 0
    }
    /// MLP: message length field present.
    pub fn ml_present(self) -> bool {
        self.0 & (1 << 12) != 0
    }
    /// MCRP: message counter present.
    pub fn mcr_present(self) -> bool {
        self.0 & (1 << 11) != 0
    }
    /// MACP: MAC present.
    pub fn mac_present(self) -> bool {
        self.0 & (1 << 10) != 0
    }
    /// KIP: key information present.
    pub fn ki_present(self) -> bool {
        self.0 & (1 << 9) != 0
    }
    /// Fragment ID; 0 means the message is not fragmented.
    pub fn fragment_id(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
    /// True when this telegram is a whole message (not one of several fragments).
    pub fn is_unfragmented(self) -> bool {
        self.fragment_id() == 0 && !self.more_fragments()
    }
}

/// Authentication type (AT, low nibble of MCL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    None,
    /// AES-CMAC-128 truncated to the given number of bytes (AT 3..7).
    AesCmac(u8),
    /// AES-GMAC-128, 12 bytes (AT 8).
    AesGmac,
    /// AT 1, 2, 9..15.
    Reserved(u8),
}

impl AuthType {
    pub fn from_nibble(at: u8) -> AuthType {
        match at & 0x0F {
            0 => AuthType::None,
            3 => AuthType::AesCmac(2),
            4 => AuthType::AesCmac(4),
            5 => AuthType::AesCmac(8),
            6 => AuthType::AesCmac(12),
            7 => AuthType::AesCmac(16),
            8 => AuthType::AesGmac,
            other => AuthType::Reserved(other),
        }
    }

    /// MAC length on air, or `None` for reserved types.
    pub fn mac_len(self) -> Option<usize> {
        match self {
            AuthType::None => Some(0),
            AuthType::AesCmac(n) => Some(usize::from(n)),
            AuthType::AesGmac => Some(12),
            AuthType::Reserved(_) => None,
        }
    }
}

/// Message control field (MCL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageControl(pub u8);

impl MessageControl {
    /// MLMP: the message carries a message length field (in some fragment).
    pub fn ml_in_message(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// MCMP: the message carries a message counter.
    pub fn mcr_in_message(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// KIMP: the message carries key information.
    pub fn ki_in_message(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn auth_type(self) -> AuthType {
        AuthType::from_nibble(self.0)
    }
}

/// Key information field (KI); byte order per the one source that documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyInfo(pub u16);

impl KeyInfo {
    pub fn key_version(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// KDF selection (0 = persistent key, 1 = KDF-A).
    pub fn kdf_selection(self) -> u8 {
        ((self.0 >> 4) & 0x03) as u8
    }
    pub fn key_id(self) -> u8 {
        (self.0 & 0x0F) as u8
    }
}

/// A MAC as received: up to 16 bytes, compared as a byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac {
    bytes: [u8; MAX_MAC_LEN],
    len: u8,
}

impl Mac {
    /// `None` if `bytes` is longer than 16.
    pub fn new(bytes: &[u8]) -> Option<Mac> {
        let mut out = [0u8; MAX_MAC_LEN];
        out.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Mac {
            bytes: out,
            len: bytes.len() as u8,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mac({})", hex::encode_upper(self.as_slice()))
    }
}

/// One parsed AFL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AflRepr {
    pub fragment_control: FragmentControl,
    pub message_control: Option<MessageControl>,
    pub key_info: Option<KeyInfo>,
    /// MCR, the message counter that feeds KDF-A.
    pub message_counter: Option<u32>,
    pub mac: Option<Mac>,
    pub message_length: Option<u16>,
}

impl AflRepr {
    /// Parses an AFL from `data` starting at its CI (0x90). Returns the AFL and the bytes
    /// consumed (2 + AFLL); the next layer's CI follows.
    ///
    /// Bytes inside AFLL after the known fields are skipped: they belong to the AFL but no
    /// source describes them.
    pub fn parse(data: &[u8]) -> Result<(AflRepr, usize)> {
        let mut head = Reader::new(data, Layer::Afl);
        if head.u8()? != CI_AFL {
            return Err(Error::invalid(Layer::Afl, 0, "AFL CI"));
        }
        let afll = usize::from(head.u8()?);
        let total = field::AFLL.end + afll;
        let Some(body) = data.get(..total) else {
            return Err(Error::truncated(Layer::Afl, data.len(), total - data.len()));
        };
        // Fields must fit within AFLL: read from a reader that ends there.
        let mut r = Reader::new(body, Layer::Afl);
        r.take(field::FCL.start)?;
        let fcl = FragmentControl(r.u16_le()?);
        let message_control = if fcl.mcl_present() {
            Some(MessageControl(r.u8()?))
        } else {
            None
        };
        let key_info = if fcl.ki_present() {
            Some(KeyInfo(r.u16_le()?))
        } else {
            None
        };
        let message_counter = if fcl.mcr_present() {
            Some(r.u32_le()?)
        } else {
            None
        };
        let mac = if fcl.mac_present() {
            let at_pos = r.pos();
            // Without MCL in this telegram (a later fragment) the MAC length is unknown.
            let Some(mcl) = message_control else {
                return Err(Error::invalid(
                    Layer::Afl,
                    at_pos,
                    "MAC present without MCL",
                ));
            };
            let Some(len) = mcl.auth_type().mac_len() else {
                return Err(Error::unsupported(Layer::Afl, 4, "authentication type"));
            };
            let bytes = r.take(len)?;
            Mac::new(bytes)
        } else {
            None
        };
        let message_length = if fcl.ml_present() {
            Some(r.u16_le()?)
        } else {
            None
        };
        let repr = AflRepr {
            fragment_control: fcl,
            message_control,
            key_info,
            message_counter,
            mac,
            message_length,
        };
        Ok((repr, total))
    }

    /// Bytes the emitted AFL occupies, CI and AFLL included.
    pub fn buffer_len(&self) -> usize {
        field::FCL.end
            + self.message_control.map_or(0, |_| field::MCL_LEN)
            + self.key_info.map_or(0, |_| field::KI_LEN)
            + self.message_counter.map_or(0, |_| field::MCR_LEN)
            + self.mac.map_or(0, |m| m.as_slice().len())
            + self.message_length.map_or(0, |_| field::ML_LEN)
    }

    /// Appends the AFL. FCL presence bits are set from the fields that are `Some`, so the
    /// output always parses back to the same fields.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut fcl = self.fragment_control.0 & !0x3E00;
        let flag = |present: bool, bit: u16| if present { 1u16 << bit } else { 0 };
        fcl |= flag(self.message_control.is_some(), 13)
            | flag(self.message_length.is_some(), 12)
            | flag(self.message_counter.is_some(), 11)
            | flag(self.mac.is_some(), 10)
            | flag(self.key_info.is_some(), 9);
        out.push(CI_AFL);
        out.push((self.buffer_len() - field::AFLL.end).min(255) as u8);
        out.extend_from_slice(&fcl.to_le_bytes());
        if let Some(mcl) = self.message_control {
            out.push(mcl.0);
        }
        if let Some(ki) = self.key_info {
            out.extend_from_slice(&ki.0.to_le_bytes());
        }
        if let Some(mcr) = self.message_counter {
            out.extend_from_slice(&mcr.to_le_bytes());
        }
        if let Some(mac) = self.mac {
            out.extend_from_slice(mac.as_slice());
        }
        if let Some(ml) = self.message_length {
            out.extend_from_slice(&ml.to_le_bytes());
        }
    }

    /// The authentication type from MCL (`None` when MCL is absent).
    pub fn auth_type(&self) -> AuthType {
        self.message_control
            .map_or(AuthType::None, MessageControl::auth_type)
    }

    /// The bytes the MAC input starts with, before the TPDU (§4.4):
    /// MCL ‖ KI? ‖ MCR? ‖ ML?, each as on air. Empty without MCL.
    pub fn mac_input_prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        if let Some(mcl) = self.message_control {
            out.push(mcl.0);
            if let Some(ki) = self.key_info {
                out.extend_from_slice(&ki.0.to_le_bytes());
            }
            if let Some(mcr) = self.message_counter {
                out.extend_from_slice(&mcr.to_le_bytes());
            }
            if let Some(ml) = self.message_length {
                out.extend_from_slice(&ml.to_le_bytes());
            }
        }
        out
    }
}

/// Where the fixed AFL fields sit, from the CI (§4.4); MCL, KI, MCR, MAC and ML follow
/// FCL in that order, each only when FCL says so.
pub mod field {
    use crate::wire::annotate::Field;

    pub const CI: Field = 0..1;
    pub const AFLL: Field = 1..2;
    pub const FCL: Field = 2..4;
    pub const MCL_LEN: usize = 1;
    pub const KI_LEN: usize = 2;
    pub const MCR_LEN: usize = 4;
    pub const ML_LEN: usize = 2;
}

impl AflRepr {
    /// The AFL's fields, labelled, for an AFL at frame offset `base` that took `consumed`
    /// bytes (2 + AFLL: bytes inside AFLL after the known fields are marked unused).
    pub fn annotate(&self, base: usize, consumed: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::Annotation;
        let fc = self.fragment_control;
        let more = if fc.more_fragments() {
            ", more follow"
        } else {
            ", last"
        };
        let fcl = format!(
            "fragment control 0x{:04X}: fragment {}{more}",
            fc.0,
            fc.fragment_id()
        );
        let mut out = vec![
            Annotation::at(base, field::CI, "CI", "0x90: AFL"),
            Annotation::at(
                base,
                field::AFLL,
                "AFLL",
                format!("{} AFL bytes follow", consumed.saturating_sub(2)),
            ),
            Annotation::at(base, field::FCL, "FCL", fcl),
        ];
        let mut at = base + field::FCL.end;
        let mut push = |len: usize, label: &'static str, value: String| {
            out.push(Annotation::span(at, len, label, value));
            at += len;
        };
        if let Some(mcl) = self.message_control {
            push(
                field::MCL_LEN,
                "MCL",
                format!("message control 0x{:02X}: {:?}", mcl.0, mcl.auth_type()),
            );
        }
        if let Some(ki) = self.key_info {
            let (version, id) = (ki.key_version(), ki.key_id());
            push(
                field::KI_LEN,
                "KI",
                format!("key information: key version {version}, key id {id}"),
            );
        }
        if let Some(mcr) = self.message_counter {
            push(
                field::MCR_LEN,
                "MCR",
                format!("message counter {mcr} (feeds the mode-7 key derivation)"),
            );
        }
        if let Some(mac) = self.mac {
            let len = mac.as_slice().len();
            push(len, "MAC", format!("AES-CMAC over the TPL, {len} bytes"));
        }
        if let Some(ml) = self.message_length {
            push(field::ML_LEN, "ML", format!("message length {ml}"));
        }
        // The fields above end where an emitted AFL would.
        let (end, known) = (base + consumed, base + self.buffer_len());
        if end > known {
            let len = end - known;
            let s = if len == 1 { "" } else { "s" };
            push(
                len,
                "unused",
                format!("unused: {len} byte{s} inside AFLL, not described"),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrorKind;
    use proptest::prelude::*;

    /// AFL of OMS Annex N.1.3 (§4.5.3), followed by the TPL CI.
    const OMS_AFL: [u8; 18] = [
        0x90, 0x0F, 0x00, 0x2C, 0x25, 0xB3, 0x0A, 0x00, 0x00, 0x21, 0x92, 0x4D, 0x4F, 0x2F, 0xB6,
        0x6E, 0x01, 0x7A,
    ];

    #[test]
    fn oms_profile_b_afl() {
        let (afl, used) = AflRepr::parse(&OMS_AFL).unwrap();
        assert_eq!(used, 17);
        assert_eq!(afl.fragment_control, FragmentControl(0x2C00));
        assert!(afl.fragment_control.is_unfragmented());
        assert!(afl.fragment_control.mcl_present());
        assert!(afl.fragment_control.mcr_present() && afl.fragment_control.mac_present());
        assert!(!afl.fragment_control.ki_present() && !afl.fragment_control.ml_present());
        let mcl = afl.message_control.unwrap();
        assert_eq!(mcl.0, 0x25);
        assert!(mcl.mcr_in_message());
        assert_eq!(afl.auth_type(), AuthType::AesCmac(8));
        assert_eq!(afl.message_counter, Some(2739));
        assert_eq!(
            afl.mac.unwrap().as_slice(),
            &[0x21, 0x92, 0x4D, 0x4F, 0x2F, 0xB6, 0x6E, 0x01]
        );
        assert_eq!(afl.mac_input_prefix(), vec![0x25, 0xB3, 0x0A, 0x00, 0x00]);
        let mut out = Vec::new();
        afl.emit(&mut out);
        assert_eq!(out, OMS_AFL[..17]);
        assert_eq!(afl.buffer_len(), 17);
    }

    #[test]
    fn all_optional_fields_round_trip() {
        let afl = AflRepr {
            fragment_control: FragmentControl(0x4001),
            message_control: Some(MessageControl(0x77)),
            key_info: Some(KeyInfo(0x0211)),
            message_counter: Some(0x0102_0304),
            mac: Mac::new(&[0xAA; 16]),
            message_length: Some(0x0123),
        };
        let mut out = Vec::new();
        afl.emit(&mut out);
        assert_eq!(out.len(), afl.buffer_len());
        let (back, used) = AflRepr::parse(&out).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(back.fragment_control.0, 0x4001 | 0x3E00);
        assert!(back.fragment_control.more_fragments());
        assert_eq!(back.fragment_control.fragment_id(), 1);
        assert_eq!(back.key_info.map(KeyInfo::key_id), Some(1));
        assert_eq!(back.key_info.map(KeyInfo::kdf_selection), Some(1));
        assert_eq!(back.key_info.map(KeyInfo::key_version), Some(2));
        assert_eq!(
            (back.mac, back.message_length),
            (afl.mac, afl.message_length)
        );
        assert_eq!(
            back.mac_input_prefix(),
            vec![0x77, 0x11, 0x02, 0x04, 0x03, 0x02, 0x01, 0x23, 0x01]
        );
    }

    #[test]
    fn mac_lengths() {
        assert_eq!(AuthType::from_nibble(3).mac_len(), Some(2));
        assert_eq!(AuthType::from_nibble(7).mac_len(), Some(16));
        assert_eq!(AuthType::from_nibble(8).mac_len(), Some(12));
        assert_eq!(AuthType::from_nibble(9).mac_len(), None);
    }

    #[test]
    fn errors() {
        // Fields overrunning AFLL: AFLL says 3 but MCL + MCR + MAC need 15.
        let mut short = OMS_AFL;
        short[1] = 3;
        let err = AflRepr::parse(&short).unwrap_err();
        assert_eq!(err.layer, Layer::Afl);
        assert!(matches!(err.kind, ErrorKind::Truncated { .. }));
        assert_eq!(
            AflRepr::parse(&OMS_AFL[..10]).unwrap_err(),
            Error::truncated(Layer::Afl, 10, 7)
        );
        let mut reserved_at = OMS_AFL;
        reserved_at[4] = 0x21;
        assert!(matches!(
            AflRepr::parse(&reserved_at).unwrap_err().kind,
            ErrorKind::Unsupported(_)
        ));
        assert!(AflRepr::parse(&[0x7A, 0x00]).is_err());
        // MAC announced in a fragment without MCL.
        assert!(AflRepr::parse(&[0x90, 0x02, 0x00, 0x04]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            if let Some(b) = bytes.first_mut() { *b = CI_AFL; }
            if let Ok((repr, used)) = AflRepr::parse(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert!(repr.buffer_len() <= used);
            }
        }
    }
}
