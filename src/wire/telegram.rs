//! The one parsed telegram every later stage reads: built once per received frame.
//!
//! [`Telegram::parse`] checks and strips the DLL CRCs (wireless) or checks the wired
//! frame (EN 13757-2), bounds the frame by its L-field (trailing bytes counted, never
//! parsed), reads the link header and follows the upper layers as far as they are
//! plaintext: the ELL, the AFL and the TPL, whose addresses name the meter. Dedupe,
//! decoding, drivers, health and `--explain` read this instead of re-slicing bytes.

use super::address::Address;
use super::afl::{AflRepr, CI_AFL};
use super::dll::{self, Canonical, CrcState};
use super::ell::{self, EllEncryption, EllRepr};
use super::link::{self, LinkHeader};
use super::manufacturer::diehl;
use super::mbus::{self, MbusLongFrame, WiredFrame};
use super::tpl::{self, TplRepr};
use super::{Error, Result};

/// A frame [`Telegram::parse`] refused: the layer's error, and the meter the header
/// names when its bytes were there to read (a CRC failure is counted against it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: Error,
    pub address: Option<Address>,
}

/// Which kind of frame the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Wireless M-Bus (EN 13757-4): L-field first.
    Wireless,
    /// Wired single character E5.
    WiredAck,
    /// Wired short frame `10 C A CS 16`.
    WiredShort,
    /// Wired long or control frame `68 L L 68 C A CI … CS 16`.
    WiredLong,
}

impl FrameKind {
    pub fn is_wired(self) -> bool {
        self != FrameKind::Wireless
    }
}

/// Offset of the CI in a wired long frame: 68 L L 68 C A CI.
pub const WIRED_CI_AT: usize = 6;

/// A frame, read once: what was checked, where it ends, its headers and where the upper
/// layers begin in the canonical bytes the parse wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Telegram {
    pub kind: FrameKind,
    /// DLL CRC verdict, trailing bytes, lenient L-field (wired: checksum verified).
    pub dll: Canonical,
    /// C-field (wireless DLL or wired frame).
    pub control: u8,
    /// The wireless link header.
    pub link: Option<LinkHeader>,
    /// The wired primary address.
    pub wired_address: Option<u8>,
    /// Offset of the canonical bytes in the received frame (6 for a wired long frame,
    /// whose canonical bytes start at its CI).
    pub base: usize,
    /// Offset in the canonical bytes of the CI after the link layer (none: no CI).
    pub ci_at: Option<usize>,
    /// Offsets of the layers found in plaintext: ELL, AFL, and the CI of the TPL (or
    /// of a manufacturer-specific payload). An encrypted ELL hides what follows it.
    pub ell_at: Option<usize>,
    pub afl_at: Option<usize>,
    pub tpl_at: Option<usize>,
    /// The meter as a decoded reading names it, from the plaintext headers: the TPL
    /// long header, a proprietary frame's address, or the DLL address.
    pub address: Option<Address>,
    /// Length of the canonical bytes.
    pub len: usize,
}

impl Telegram {
    /// Parses `raw` as received; the canonical bytes (wireless: L-field first, no CRCs,
    /// `L + 1` bytes; wired long frame: from the CI to before the checksum) are written
    /// into `out`. `state` is what the receiver said about CRCs; only
    /// [`CrcState::Unknown`] (hex typed by a person) may be a wired frame.
    ///
    /// The link header is read once either way: from the canonical bytes, or, when the
    /// frame fails its checks, from the received bytes for [`Rejected::address`].
    pub fn parse(
        raw: &[u8],
        state: CrcState,
        lenient: bool,
        out: &mut Vec<u8>,
    ) -> core::result::Result<Telegram, Rejected> {
        out.clear();
        if state.is_guessed() && mbus::looks_wired(raw) {
            return Self::parse_wired(raw, out).map_err(|error| Rejected {
                error,
                address: wired_long_address(raw),
            });
        }
        let dll = dll::canonicalize(raw, state, lenient, out).map_err(|error| Rejected {
            error,
            address: LinkHeader::parse(raw).ok().map(|(h, _)| h.address),
        })?;
        let (header, pos) = LinkHeader::parse(out).map_err(|error| Rejected {
            error,
            address: None,
        })?;
        let mut t = Telegram::empty(FrameKind::Wireless, dll, header.control);
        t.link = Some(header);
        t.ci_at = out.get(pos).map(|_| pos);
        t.follow_layers(out, &header, pos);
        t.len = out.len();
        Ok(t)
    }

    fn empty(kind: FrameKind, dll: Canonical, control: u8) -> Telegram {
        Telegram {
            kind,
            dll,
            control,
            link: None,
            wired_address: None,
            base: 0,
            ci_at: None,
            ell_at: None,
            afl_at: None,
            tpl_at: None,
            address: None,
            len: 0,
        }
    }

    fn parse_wired(raw: &[u8], out: &mut Vec<u8>) -> Result<Telegram> {
        let (frame, used) = WiredFrame::parse(raw)?;
        let dll = Canonical {
            format: None,
            crc_verified: true,
            trailing: raw.len() - used,
            original_length: None,
        };
        Ok(match frame {
            WiredFrame::Ack => Telegram::empty(FrameKind::WiredAck, dll, mbus::SINGLE_ACK),
            WiredFrame::Short(mbus::MbusShortFrame { control, address }) => Telegram {
                wired_address: Some(address),
                ..Telegram::empty(FrameKind::WiredShort, dll, control)
            },
            WiredFrame::Long(long) => {
                out.push(long.ci);
                out.extend_from_slice(long.data);
                Telegram {
                    wired_address: Some(long.address),
                    base: WIRED_CI_AT,
                    ci_at: Some(0),
                    tpl_at: Some(0),
                    address: wired_address(&long),
                    len: out.len(),
                    ..Telegram::empty(FrameKind::WiredLong, dll, long.control)
                }
            }
        })
    }

    /// Follows the plaintext layers after the link header at `pos`: past an unencrypted
    /// ELL and an AFL to the TPL, whose long header (or a proprietary frame's address)
    /// names the meter; the DLL address where a header is encrypted or bad.
    fn follow_layers(&mut self, frame: &[u8], link: &LinkHeader, mut pos: usize) {
        let standard = link.address;
        self.address = Some(standard);
        if frame.get(pos).is_some_and(|&ci| ell::is_ell_ci(ci)) {
            self.ell_at = Some(pos);
            let Ok((ell, used)) = EllRepr::parse(tail(frame, pos)) else {
                return;
            };
            pos = match (ell.encrypted_offset(), ell.encryption()) {
                (None, _) => pos + used,
                // An unencrypted ELL with a payload CRC: the next layer follows the CRC.
                (Some(rel), EllEncryption::None) => pos + rel + 2,
                (Some(_), _) => return,
            };
        }
        if frame.get(pos) == Some(&CI_AFL) {
            self.afl_at = Some(pos);
            match AflRepr::parse(tail(frame, pos)) {
                Ok((_, used)) => pos += used,
                Err(_) => return,
            }
        }
        let Some(&ci) = frame.get(pos) else {
            return;
        };
        self.tpl_at = Some(pos);
        self.address = Some(if tpl::is_manufacturer_specific(ci) {
            proprietary_address(link, ci)
        } else {
            TplRepr::parse(tail(frame, pos))
                .map_or(standard, |(tpl, _)| tpl_address(link, &tpl, pos))
        });
    }

    pub fn is_wired(&self) -> bool {
        self.kind.is_wired()
    }

    /// The meter id as printed everywhere ("12345678"), when the headers name one.
    pub fn meter_id(&self) -> Option<String> {
        self.address.map(|a| a.id_string())
    }

    /// What a C-field without meter data is called, `None` when it carries data.
    pub fn control_frame(&self) -> Option<&'static str> {
        match self.kind {
            FrameKind::WiredAck => Some("ACK (E5)"),
            // A control frame: a CI and no data.
            FrameKind::WiredLong if self.len <= 1 => {
                Some(control_without_data(self.control).unwrap_or(control_name(self.control)))
            }
            _ => control_without_data(self.control),
        }
    }
}

/// The meter a wired long frame names in its long TPL header, if it has one.
fn wired_address(long: &MbusLongFrame<'_>) -> Option<Address> {
    match tpl::header_kind(long.ci) {
        Some(tpl::HeaderKind::Long) => Address::parse(long.data).ok().map(|(a, _)| a),
        _ => None,
    }
}

/// The meter address of a manufacturer-specific frame. Diehl's IZAR/PRIOS radios (DME,
/// HYD; CI 0xA0..0xA7) send the A field as version, device type, then the four
/// identification bytes — the meter's printed number is those four bytes, where a
/// standard A field has them first.
pub fn proprietary_address(link: &LinkHeader, ci: u8) -> Address {
    let standard = link.address;
    let letters = standard.manufacturer().letters();
    let diehl = matches!(letters, Some(l) if &l == b"DME" || &l == b"HYD");
    if !(diehl && (0xA0..=0xA7).contains(&ci)) {
        return standard;
    }
    // Link parsing read A as id[0..4], version, type; on air it is V, T, id[0..4].
    let [v, t, i0, i1] = standard.id;
    Address {
        id: [i0, i1, standard.version, standard.device_type],
        version: v,
        device_type: t,
        ..standard
    }
}

/// Where a radio frame's CI sits when no ELL or AFL comes first (after L, C, M, A): the
/// only place Diehl "real data" is recognised, as its scrambling seed takes the bytes
/// from the CI on.
pub const REAL_DATA_CI_AT: usize = 10;

/// The meter address of a frame whose TPL (at `tpl_at`) is `tpl`: its long header's, or
/// the link layer's — read version-first for Diehl "real data".
pub fn tpl_address(link: &LinkHeader, tpl: &TplRepr, tpl_at: usize) -> Address {
    let standard = link.address;
    let letters = standard.manufacturer().letters();
    let real_data = tpl_at == REAL_DATA_CI_AT
        && tpl
            .header
            .is_some_and(|h| diehl::is_real_data(letters, link.control, tpl.ci, h.config.0));
    if !real_data {
        return tpl.meter_address(link);
    }
    let [i0, i1, i2, i3] = standard.id;
    let (id, version, device_type) =
        diehl::swapped_address([i0, i1, i2, i3, standard.version, standard.device_type]);
    Address {
        id,
        version,
        device_type,
        ..standard
    }
}

/// The meter a wired long frame that failed its checks names in its long TPL header.
fn wired_long_address(raw: &[u8]) -> Option<Address> {
    if raw.get(WIRED_CI_AT).copied().and_then(tpl::header_kind) != Some(tpl::HeaderKind::Long) {
        return None;
    }
    Address::parse(raw.get(WIRED_CI_AT + 1..)?)
        .ok()
        .map(|(a, _)| a)
}

/// The name of a C-field that carries no meter data (EN 13757-2/-4 function codes),
/// `None` for the data-carrying ones: SND_NR, SND_IR, ACC_NR, ACC_DMD, SND_UD,
/// SND_UD2, RSP_UD (with any ACD/DFC bits).
pub fn control_without_data(c: u8) -> Option<&'static str> {
    use link::control;
    match c {
        control::SND_NR | control::SND_IR | control::ACC_NR | control::ACC_DMD => None,
        0x53 | 0x73 | 0x43 => None,
        _ if c & 0xCF == control::RSP_UD => None,
        0x40 => Some("SND_NKE"),
        0x5A | 0x7A => Some("REQ_UD1"),
        0x5B | 0x7B => Some("REQ_UD2"),
        0x06 => Some("CNF_IR"),
        _ if c & 0xCF == 0x00 => Some("ACK"),
        _ if c & 0xCF == 0x01 => Some("NACK"),
        0x49 => Some("SND_AD"),
        0x4A => Some("REQ_UD1 (alarm request)"),
        _ => Some("unknown C-field"),
    }
}

/// The name of a data-carrying C-field (for messages about frames that carry no data).
pub fn control_name(c: u8) -> &'static str {
    use link::control;
    match c {
        control::SND_NR => "SND_NR",
        control::SND_IR => "SND_IR",
        control::ACC_NR => "ACC_NR",
        control::ACC_DMD => "ACC_DMD",
        0x53 | 0x73 => "SND_UD",
        0x43 => "SND_UD2",
        _ if c & 0xCF == control::RSP_UD => "RSP_UD",
        _ => control_without_data(c).unwrap_or("unknown C-field"),
    }
}

fn tail(buf: &[u8], from: usize) -> &[u8] {
    buf.get(from..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::link::{add_crc, FrameFormat};

    fn wireless(control: u8) -> Vec<u8> {
        let mut out = Vec::new();
        LinkHeader {
            length: 0,
            control,
            address: Address {
                manufacturer: 0x1593,
                id: [0x78, 0x56, 0x34, 0x12],
                version: 0x33,
                device_type: 0x03,
            },
        }
        .emit(&mut out);
        out.extend_from_slice(&[
            0x7A, 0x2A, 0x00, 0x00, 0x00, 0x04, 0x13, 0x01, 0x02, 0x03, 0x04,
        ]);
        out[0] = (out.len() - 1) as u8;
        out
    }

    #[test]
    fn wireless_layers_and_address() {
        let frame = wireless(0x44);
        let mut out = Vec::new();
        let t = Telegram::parse(&frame, CrcState::Unknown, false, &mut out).unwrap();
        assert_eq!(t.kind, FrameKind::Wireless);
        assert_eq!((t.ci_at, t.tpl_at, t.ell_at), (Some(10), Some(10), None));
        assert_eq!(t.meter_id().as_deref(), Some("12345678"));
        assert_eq!(t.control_frame(), None);
        let a = add_crc(&frame, FrameFormat::A).unwrap();
        let t = Telegram::parse(&a, CrcState::Present(FrameFormat::A), false, &mut out).unwrap();
        assert_eq!(out, frame);
        assert_eq!(t.dll.format, Some(FrameFormat::A));
    }

    /// Every C-field class: the data-carrying ones, and each named control frame.
    #[test]
    fn control_field_classes() {
        for c in [
            0x44, 0x46, 0x47, 0x48, 0x08, 0x18, 0x28, 0x38, 0x53, 0x73, 0x43,
        ] {
            assert_eq!(control_without_data(c), None, "{c:02X}");
        }
        for (c, name) in [
            (0x40, "SND_NKE"),
            (0x00, "ACK"),
            (0x10, "ACK"),
            (0x01, "NACK"),
            (0x06, "CNF_IR"),
            (0x5A, "REQ_UD1"),
            (0x7A, "REQ_UD1"),
            (0x5B, "REQ_UD2"),
            (0x7B, "REQ_UD2"),
            (0xFF, "unknown C-field"),
        ] {
            assert_eq!(control_without_data(c), Some(name), "{c:02X}");
            let frame = wireless(c);
            let mut out = Vec::new();
            let t = Telegram::parse(&frame, CrcState::Unknown, false, &mut out).unwrap();
            assert_eq!(t.control_frame(), Some(name));
        }
    }

    #[test]
    fn wired_frames_by_wired_rules() {
        let mut out = Vec::new();
        let t = Telegram::parse(&[0xE5], CrcState::Unknown, false, &mut out).unwrap();
        assert_eq!(
            (t.kind, t.control_frame()),
            (FrameKind::WiredAck, Some("ACK (E5)"))
        );

        let mut short = Vec::new();
        WiredFrame::Short(mbus::MbusShortFrame::snd_nke(0x05))
            .emit(&mut short)
            .unwrap();
        let t = Telegram::parse(&short, CrcState::Unknown, false, &mut out).unwrap();
        assert_eq!(t.kind, FrameKind::WiredShort);
        assert_eq!(
            (t.wired_address, t.control_frame()),
            (Some(5), Some("SND_NKE"))
        );
        let mut bad = short.clone();
        bad[3] ^= 1;
        assert!(matches!(
            Telegram::parse(&bad, CrcState::Unknown, false, &mut out)
                .unwrap_err()
                .error
                .kind,
            super::super::ErrorKind::Checksum { .. }
        ));

        let mut control = Vec::new();
        MbusLongFrame {
            control: 0x53,
            address: 1,
            ci: 0x51,
            data: &[],
        }
        .emit(&mut control)
        .unwrap();
        let t = Telegram::parse(&control, CrcState::Unknown, false, &mut out).unwrap();
        assert_eq!(
            (t.kind, t.base, out.as_slice()),
            (FrameKind::WiredLong, 6, &[0x51][..])
        );
        assert_eq!(t.control_frame(), Some("SND_UD"));

        // The same bytes from a radio are a wireless frame (L = 0x68 …), never wired.
        let mut long = vec![0x68, 0x0C, 0x0C, 0x68];
        long.resize(13, 0x44);
        assert!(Telegram::parse(&long, CrcState::Checked(None), false, &mut out).is_err());
    }
}
