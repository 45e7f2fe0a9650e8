//! Extended link layer, CI 0x8C..0x8F (protocol.md §4.3).
//!
//! ```text
//! 0x8C  CI CC ACC
//! 0x8D  CI CC ACC SN[4] PayloadCRC[2]
//! 0x8E  CI CC ACC M2[2] A2[6]
//! 0x8F  CI CC ACC M2[2] A2[6] SN[4] PayloadCRC[2]
//! ```
//!
//! When the session number says AES-CTR, everything from the PayloadCRC field to the end
//! of the frame is ciphertext; [`EllRepr::encrypted_offset`] names that position.

use super::crc::crc16_en13757;
use super::link::LinkHeader;
use super::reader::Reader;
use super::{Error, ErrorKind, Layer, Result};

pub const CI_ELL_I: u8 = 0x8C;
pub const CI_ELL_II: u8 = 0x8D;
pub const CI_ELL_III: u8 = 0x8E;
pub const CI_ELL_IV: u8 = 0x8F;
/// Variable-length ELL; its layout is not specified in the material we work from.
pub const CI_ELL_V: u8 = 0x86;

/// CC bits that a repeater may change (hop count H, repeated access R); the CTR IV uses CC
/// with both cleared so a repeated frame decrypts like the original.
const CC_MUTABLE_BITS: u8 = 0x10 | 0x02;

/// Is `ci` one of the extended link layer CIs (including the unsupported 0x86)?
pub fn is_ell_ci(ci: u8) -> bool {
    ci == CI_ELL_V || (CI_ELL_I..=CI_ELL_IV).contains(&ci)
}

/// Communication control byte (CC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommunicationControl(pub u8);

impl CommunicationControl {
    pub fn bidirectional(self) -> bool {
        self.0 & 0x80 != 0
    }
    pub fn response_delay(self) -> bool {
        self.0 & 0x40 != 0
    }
    pub fn synchronized(self) -> bool {
        self.0 & 0x20 != 0
    }
    pub fn hop_count(self) -> bool {
        self.0 & 0x10 != 0
    }
    pub fn priority(self) -> bool {
        self.0 & 0x08 != 0
    }
    pub fn accessibility(self) -> bool {
        self.0 & 0x04 != 0
    }
    pub fn repeated_access(self) -> bool {
        self.0 & 0x02 != 0
    }
    pub fn extended_delay(self) -> bool {
        self.0 & 0x01 != 0
    }
}

/// ELL encryption announced by the session number's top three bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EllEncryption {
    None,
    AesCtr,
    /// Values 2..7 are reserved.
    Reserved(u8),
}

/// Session number (SN), 32 bits LE: session 3..0, minutes 28..4, encryption 31..29.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionNumber(pub u32);

impl SessionNumber {
    /// Sub-minute session counter.
    pub fn session(self) -> u8 {
        (self.0 & 0x0F) as u8
    }
    /// Minutes since the meter started.
    pub fn minutes(self) -> u32 {
        (self.0 >> 4) & 0x01FF_FFFF
    }
    pub fn encryption_bits(self) -> u8 {
        (self.0 >> 29) as u8
    }
    pub fn encryption(self) -> EllEncryption {
        match self.encryption_bits() {
            0 => EllEncryption::None,
            1 => EllEncryption::AesCtr,
            other => EllEncryption::Reserved(other),
        }
    }
}

/// One parsed extended link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EllRepr {
    pub ci: u8,
    pub communication_control: u8,
    pub access_number: u8,
    /// Receiver address (M2, A2 in on-air order), CI 0x8E/0x8F only.
    pub receiver: Option<(u16, [u8; 6])>,
    /// CI 0x8D/0x8F only.
    pub session_number: Option<u32>,
    /// PayloadCRC as it appears on air (ciphertext when encrypted), CI 0x8D/0x8F only.
    pub payload_crc: Option<u16>,
}

impl EllRepr {
    /// Parses an ELL from `data` starting at its CI byte. Returns the ELL and the bytes
    /// consumed, PayloadCRC included; the next layer's CI follows (in plaintext only after
    /// decryption when [`EllRepr::encryption`] says so).
    pub fn parse(data: &[u8]) -> Result<(EllRepr, usize)> {
        let Some(&ci) = data.first() else {
            return Err(Error::truncated(Layer::Ell, 0, 1));
        };
        let (has_receiver, has_session) = match ci {
            CI_ELL_I => (false, false),
            CI_ELL_II => (false, true),
            CI_ELL_III => (true, false),
            CI_ELL_IV => (true, true),
            CI_ELL_V => return Err(Error::unsupported(Layer::Ell, 0, "variable ELL (CI 0x86)")),
            _ => return Err(Error::invalid(Layer::Ell, 0, "ELL CI")),
        };
        let len = Self::len_for(has_receiver, has_session);
        if data.len() < len {
            return Err(Error::truncated(Layer::Ell, data.len(), len - data.len()));
        }
        let mut r = Reader::new(data, Layer::Ell);
        r.u8()?; // CI
        let communication_control = r.u8()?;
        let access_number = r.u8()?;
        let receiver = if has_receiver {
            Some((r.u16_le()?, r.array::<6>()?))
        } else {
            None
        };
        let (session_number, payload_crc) = if has_session {
            (Some(r.u32_le()?), Some(r.u16_le()?))
        } else {
            (None, None)
        };
        let repr = EllRepr {
            ci,
            communication_control,
            access_number,
            receiver,
            session_number,
            payload_crc,
        };
        Ok((repr, len))
    }

    const fn len_for(receiver: bool, session: bool) -> usize {
        let fixed = if receiver {
            field::A2.end
        } else {
            field::ACC.end
        };
        fixed
            + if session {
                field::SN_LEN + field::PAYLOAD_CRC_LEN
            } else {
                0
            }
    }

    /// Bytes this ELL occupies, CI and PayloadCRC included.
    pub const fn buffer_len(&self) -> usize {
        Self::len_for(self.receiver.is_some(), self.session_number.is_some())
    }

    /// Appends the ELL. The CI is derived from which optional fields are present, so a
    /// repr built by hand cannot disagree with its own layout.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let ci = match (self.receiver.is_some(), self.session_number.is_some()) {
            (false, false) => CI_ELL_I,
            (false, true) => CI_ELL_II,
            (true, false) => CI_ELL_III,
            (true, true) => CI_ELL_IV,
        };
        out.push(ci);
        out.push(self.communication_control);
        out.push(self.access_number);
        if let Some((m2, a2)) = self.receiver {
            out.extend_from_slice(&m2.to_le_bytes());
            out.extend_from_slice(&a2);
        }
        if let Some(sn) = self.session_number {
            out.extend_from_slice(&sn.to_le_bytes());
            out.extend_from_slice(&self.payload_crc.unwrap_or(0).to_le_bytes());
        }
    }

    pub fn communication_control(&self) -> CommunicationControl {
        CommunicationControl(self.communication_control)
    }

    pub fn session(&self) -> Option<SessionNumber> {
        self.session_number.map(SessionNumber)
    }

    /// Encryption of the rest of the frame; `None` for ELLs without a session number.
    pub fn encryption(&self) -> EllEncryption {
        self.session()
            .map_or(EllEncryption::None, SessionNumber::encryption)
    }

    /// Offset from the ELL CI where the PayloadCRC field, and with it the part covered by
    /// the payload CRC and (if enabled) the encryption, begins. `None` without a session
    /// number. The CRC covers everything after itself to the end of the frame.
    pub const fn encrypted_offset(&self) -> Option<usize> {
        if self.session_number.is_some() {
            Some(self.buffer_len() - field::PAYLOAD_CRC_LEN)
        } else {
            None
        }
    }

    /// AES-CTR initial counter block: M ‖ A (DLL, on-air order) ‖ CC without H and R ‖
    /// SN[4] LE ‖ frame number 00 00 ‖ block counter 00.
    ///
    /// Uses the DLL address also for CI 0x8F (as the reference decoders do; whether the
    /// receiver address should be used instead is unverified).
    pub fn ctr_iv(&self, link: &LinkHeader) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&link.address.address_bytes());
        iv[8] = self.communication_control & !CC_MUTABLE_BITS;
        iv[9..13].copy_from_slice(&self.session_number.unwrap_or(0).to_le_bytes());
        iv
    }
}

/// Verifies a plaintext ELL payload: its first two bytes are the CRC-16/EN-13757 (LE) over
/// everything after them. Returns the bytes after the CRC (the next layer, from its CI).
/// `base` is the frame offset of `payload`, used for the error position.
pub fn check_payload_crc(payload: &[u8], base: usize) -> Result<&[u8]> {
    let Some((crc, rest)) = payload.split_first_chunk::<2>() else {
        return Err(Error::truncated(
            Layer::Ell,
            base + payload.len(),
            2 - payload.len(),
        ));
    };
    let stored = u16::from_le_bytes(*crc);
    let computed = crc16_en13757(rest);
    if stored == computed {
        Ok(rest)
    } else {
        Err(Error::new(
            Layer::Ell,
            base,
            ErrorKind::Crc { stored, computed },
        ))
    }
}

/// Where the ELL fields sit, from the CI (§2.1). M2/A2 only with a receiver address; the
/// session number and PayloadCRC follow the fields before them.
pub mod field {
    use crate::wire::annotate::Field;

    pub const CI: Field = 0..1;
    pub const CC: Field = 1..2;
    pub const ACC: Field = 2..3;
    pub const M2: Field = 3..5;
    pub const A2: Field = 5..11;
    pub const SN_LEN: usize = 4;
    pub const PAYLOAD_CRC_LEN: usize = 2;

    /// The session number, after ACC or after A2.
    pub const fn session(receiver: bool) -> Field {
        let at = if receiver { A2.end } else { ACC.end };
        at..at + SN_LEN
    }
}

impl EllRepr {
    /// The ELL's fields, labelled, for an ELL starting at frame offset `base`. The
    /// PayloadCRC is named only: whether it verifies is the reader's verdict.
    pub fn annotate(&self, base: usize) -> Vec<super::annotate::Annotation> {
        use super::annotate::{flags, Annotation};
        let variant = match self.ci {
            CI_ELL_I => "ELL I (short)",
            CI_ELL_II => "ELL II (with session number)",
            CI_ELL_III => "ELL III (with receiver address)",
            _ => "ELL IV (receiver address and session number)",
        };
        let cc = self.communication_control();
        let cc_flags = flags(
            &[
                (cc.bidirectional(), "bidirectional"),
                (cc.response_delay(), "response delay"),
                (cc.synchronized(), "synchronized"),
                (cc.hop_count(), "hop count"),
                (cc.priority(), "priority"),
                (cc.accessibility(), "accessible"),
                (cc.repeated_access(), "repeated access"),
                (cc.extended_delay(), "extended delay"),
            ],
            "no flags",
        );
        let mut out = vec![
            Annotation::at(
                base,
                field::CI,
                "CI",
                format!("0x{:02X}: {variant}", self.ci),
            ),
            Annotation::at(
                base,
                field::CC,
                "CC",
                format!("communication control: {cc_flags}"),
            ),
            Annotation::at(
                base,
                field::ACC,
                "ACC",
                format!("access number {}", self.access_number),
            ),
        ];
        if let Some((m2, _)) = self.receiver {
            let m2 = super::manufacturer::Manufacturer(m2);
            out.push(Annotation::at(
                base,
                field::M2,
                "M2",
                format!("receiver manufacturer {m2}"),
            ));
            out.push(Annotation::at(base, field::A2, "A2", "receiver address"));
        }
        if let Some(sn) = self.session() {
            let enc = match sn.encryption() {
                EllEncryption::None => "not encrypted".to_owned(),
                EllEncryption::AesCtr => "AES-128-CTR encrypted".to_owned(),
                EllEncryption::Reserved(b) => format!("reserved encryption {b}"),
            };
            let sn_field = field::session(self.receiver.is_some());
            let crc_at = sn_field.end;
            let (session, minutes) = (sn.session(), sn.minutes());
            out.push(Annotation::at(
                base,
                sn_field,
                "SN",
                format!("session {session}, {minutes} minutes, {enc}"),
            ));
            out.push(Annotation::at(
                base,
                crc_at..crc_at + field::PAYLOAD_CRC_LEN,
                "PayloadCRC",
                "payload CRC",
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Kamstrup C1 frame of protocol.md §4.3.1 (ciphertext after the SN).
    pub(crate) const KAMSTRUP: [u8; 43] = [
        0x2A, 0x44, 0x2D, 0x2C, 0x99, 0x87, 0x34, 0x76, 0x1B, 0x16, 0x8D, 0x20, 0x91, 0xD3, 0x7C,
        0xAC, 0x21, 0xE1, 0xD6, 0x8C, 0xDA, 0xFF, 0xCD, 0x3D, 0xC4, 0x52, 0xBD, 0x80, 0x29, 0x13,
        0xFF, 0x7B, 0x17, 0x06, 0xCA, 0x9E, 0x35, 0x5D, 0x6C, 0x27, 0x01, 0xCC, 0x24,
    ];

    #[test]
    fn ell_ii_kamstrup() {
        let (link, _) = LinkHeader::parse(&KAMSTRUP).unwrap();
        let (ell, used) = EllRepr::parse(&KAMSTRUP[10..]).unwrap();
        assert_eq!(used, 9);
        assert_eq!(ell.ci, CI_ELL_II);
        assert_eq!(ell.communication_control, 0x20);
        assert_eq!(ell.access_number, 0x91);
        let sn = ell.session().unwrap();
        assert_eq!(sn.session(), 3);
        assert_eq!(sn.minutes(), 1_755_085);
        assert_eq!(ell.encryption(), EllEncryption::AesCtr);
        assert_eq!(ell.payload_crc, Some(0xD6E1));
        assert_eq!(ell.encrypted_offset(), Some(7));
        assert_eq!(
            ell.ctr_iv(&link),
            [
                0x2D, 0x2C, 0x99, 0x87, 0x34, 0x76, 0x1B, 0x16, 0x20, 0xD3, 0x7C, 0xAC, 0x21, 0, 0,
                0
            ]
        );
        let mut out = Vec::new();
        ell.emit(&mut out);
        assert_eq!(out, KAMSTRUP[10..19]);
        assert_eq!(ell.buffer_len(), 9);
    }

    #[test]
    fn ctr_iv_clears_hop_and_repeat() {
        let (link, _) = LinkHeader::parse(&KAMSTRUP).unwrap();
        let mut bytes = KAMSTRUP[10..19].to_vec();
        bytes[1] = 0x20 | 0x10 | 0x02 | 0x80;
        let (ell, _) = EllRepr::parse(&bytes).unwrap();
        assert_eq!(ell.ctr_iv(&link)[8], 0xA0);
    }

    #[test]
    fn ell_i_and_iii() {
        // §4.5.3: ELL I 8C 20 75, and the radio adapter's ELL III.
        let (ell, used) = EllRepr::parse(&[0x8C, 0x20, 0x75, 0x90]).unwrap();
        assert_eq!(used, 3);
        assert_eq!((ell.communication_control, ell.access_number), (0x20, 0x75));
        assert_eq!(ell.encryption(), EllEncryption::None);
        assert_eq!(ell.encrypted_offset(), None);

        let iii = [
            0x8E, 0x80, 0x75, 0x3A, 0x63, 0x66, 0x55, 0x44, 0x33, 0x0A, 0x31, 0x90,
        ];
        let (ell, used) = EllRepr::parse(&iii).unwrap();
        assert_eq!(used, 11);
        assert_eq!(
            ell.receiver,
            Some((0x633A, [0x66, 0x55, 0x44, 0x33, 0x0A, 0x31]))
        );
        assert!(ell.communication_control().bidirectional());
        let mut out = Vec::new();
        ell.emit(&mut out);
        assert_eq!(out, iii[..11]);
    }

    #[test]
    fn ell_iv_layout() {
        let repr = EllRepr {
            ci: CI_ELL_IV,
            communication_control: 0x20,
            access_number: 1,
            receiver: Some((0x1234, [1, 2, 3, 4, 5, 6])),
            session_number: Some(0x2000_0001),
            payload_crc: Some(0xBEEF),
        };
        let mut out = Vec::new();
        repr.emit(&mut out);
        assert_eq!(out.len(), 17);
        assert_eq!(repr.encrypted_offset(), Some(15));
        assert_eq!(&out[15..], &[0xEF, 0xBE]);
        assert_eq!(EllRepr::parse(&out).unwrap(), (repr, 17));
    }

    #[test]
    fn errors() {
        assert_eq!(
            EllRepr::parse(&[0x86, 0, 0]).unwrap_err().kind,
            ErrorKind::Unsupported("variable ELL (CI 0x86)")
        );
        assert_eq!(
            EllRepr::parse(&[0x8D, 0x20, 0x91, 0xD3]).unwrap_err(),
            Error::truncated(Layer::Ell, 4, 5)
        );
        assert_eq!(EllRepr::parse(&[0x7A]).unwrap_err().layer, Layer::Ell);
        assert!(!is_ell_ci(0x90));
        assert!(is_ell_ci(0x86) && is_ell_ci(0x8F));
    }

    #[test]
    fn payload_crc_check() {
        // §4.3.1 plaintext: CRC 0x6C57 over "78 … 13".
        let plain = [
            0x57, 0x6C, 0x78, 0x02, 0xFF, 0x20, 0x71, 0x00, 0x04, 0x13, 0x08, 0x19, 0x00, 0x00,
            0x44, 0x13, 0x08, 0x19, 0x00, 0x00, 0x61, 0x5B, 0x7F, 0x61, 0x67, 0x13,
        ];
        assert_eq!(check_payload_crc(&plain, 17).unwrap(), &plain[2..]);
        let mut bad = plain;
        bad[5] ^= 1;
        let err = check_payload_crc(&bad, 17).unwrap_err();
        assert_eq!((err.layer, err.offset), (Layer::Ell, 17));
        assert!(matches!(err.kind, ErrorKind::Crc { stored: 0x6C57, .. }));
        assert!(check_payload_crc(&[0x00], 0).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok((repr, used)) = EllRepr::parse(&bytes) {
                prop_assert_eq!(repr.buffer_len(), used);
                let mut out = Vec::new();
                repr.emit(&mut out);
                prop_assert_eq!(out.as_slice(), &bytes[..used]);
            }
            let _ = check_payload_crc(&bytes, 0);
        }
    }
}
