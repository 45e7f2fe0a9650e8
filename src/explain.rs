//! `--explain`: an annotated, byte-by-byte breakdown of one telegram.
//!
//! The breakdown walks the same `wire` parsers the [`Decoder`] uses, over the working copy
//! the decoder leaves behind ([`Decoder::decode_traced`]): decryption happens once, in the
//! decoder, and a region whose key did not verify is shown as ciphertext. Key bytes are
//! never part of an explanation; keys are named by their fingerprint only.

use std::fmt::Write as _;

use crate::decode::{DecodeError, Decoder, FailureKind, Trace};
use crate::frame::RadioFrame;
use crate::keys::KeyStore;
use crate::reading::Reading;
use crate::wire::afl::{AflRepr, CI_AFL};
use crate::wire::apl::{self, DataRecord, IDLE_FILLER};
use crate::wire::compact::{CompactRepr, FormatFrameRepr};
use crate::wire::ell::{self, EllEncryption, EllRepr};
use crate::wire::link::{self, control, LinkHeader};
use crate::wire::manufacturer::Manufacturer;
use crate::wire::telegram::Telegram;
use crate::wire::tpl::{self, HeaderKind, SecurityMode, TplRepr};
use crate::wire::{device_type, Layer};

/// The layer a span belongs to; one heading per layer when rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Link,
    Ell,
    Afl,
    Tpl,
    Security,
    Records,
    Compact,
}

impl Section {
    pub fn heading(self) -> &'static str {
        match self {
            Section::Link => "link layer (DLL)",
            Section::Ell => "extended link layer (ELL)",
            Section::Afl => "authentication and fragmentation layer (AFL)",
            Section::Tpl => "transport layer (TPL)",
            Section::Security => "security",
            Section::Records => "application layer (APL records)",
            Section::Compact => "compact frame (APL)",
        }
    }
}

/// One annotated run of bytes. `offset` counts in the canonical (CRC-free) frame, the
/// same positions [`DecodeError::offset`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    pub layer: Section,
    pub field: String,
    /// Upper-case hex, bytes separated by spaces.
    pub bytes_hex: String,
    pub meaning: String,
}

/// How the telegram ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Decoded {
        records: usize,
        /// The manufacturer driver that matched, with its fields rendered `name = value`.
        driver: Option<(String, Vec<String>)>,
    },
    Failed {
        kind: FailureKind,
        layer: Layer,
        offset: Option<usize>,
        message: String,
        /// One plain-language sentence: what failed and what to do.
        diagnosis: String,
    },
}

/// The whole breakdown of one telegram.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Remarks about the frame as a whole (CRCs removed, L-field rewritten, ...).
    pub notes: Vec<String>,
    pub lines: Vec<Span>,
    pub outcome: Outcome,
}

/// Where the key of the telegram's meter is looked up (the TPL long header overrides).
#[derive(Debug, Clone, Copy)]
struct MeterRef {
    manufacturer: u16,
    id: [u8; 4],
}

/// Decodes `frame` with `decoder` (learning compact formats as decoding does) and explains
/// every byte of it.
pub fn explain(decoder: &mut Decoder, frame: &RadioFrame) -> Explanation {
    let (result, trace) = decoder.decode_traced(frame);
    let mut walk = Walk::new(&frame.bytes, &trace, result.as_ref().err(), decoder.keys());
    walk.run(result.as_ref().ok());
    let outcome = match &result {
        Ok(reading) => Outcome::Decoded {
            records: reading.records.len(),
            driver: reading.driver.as_deref().map(|name| {
                let sources = decoder
                    .drivers()
                    .get(name)
                    .map(|d| d.field_sources(reading))
                    .unwrap_or_default();
                let mut fields: Vec<String> = reading
                    .fields
                    .iter()
                    .map(|(k, v)| {
                        let value = serde_json::to_string(v).unwrap_or_default();
                        match sources.iter().find(|(n, _)| n == k) {
                            Some((_, from)) => format!("{k} = {value}    <- {from}"),
                            None => format!("{k} = {value}"),
                        }
                    })
                    .collect();
                if let Some(error) = &reading.driver_error {
                    fields.push(format!("(driver step failed: {error})"));
                }
                (name.to_owned(), fields)
            }),
        },
        Err(err) => Outcome::Failed {
            kind: err.kind,
            layer: err.layer,
            offset: err.offset,
            message: err.message.clone(),
            diagnosis: diagnose(err, decoder, walk.meter),
        },
    };
    Explanation {
        notes: walk.notes,
        lines: walk.spans,
        outcome,
    }
}

struct Walk<'a> {
    /// Canonical frame as received (ciphertext where encrypted).
    received: Vec<u8>,
    /// Canonical frame with the decoder's plaintext where its keys verified.
    plain: Vec<u8>,
    /// End of the layered data (a wired frame's checksum and stop byte follow it).
    end: usize,
    error: Option<&'a DecodeError>,
    keys: &'a KeyStore,
    meter: Option<MeterRef>,
    notes: Vec<String>,
    spans: Vec<Span>,
}

/// One line per thing the frame's checks noticed: CRCs removed, trailing bytes, an
/// L-field rewritten on request.
fn frame_notes(t: &Telegram) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(format) = t.dll.format {
        notes.push(format!(
            "link-layer CRCs of frame format {format:?} checked and removed; \
             offsets below count without them"
        ));
    }
    if t.dll.trailing > 0 {
        let l = t.link.map_or(0, |h| h.length);
        let what = if t.is_wired() {
            "the wired frame's stop byte".to_owned()
        } else {
            format!("the frame's end (L-field 0x{l:02X})")
        };
        notes.push(format!(
            "{} byte{} after {what}: not part of the frame, not decoded",
            t.dll.trailing,
            if t.dll.trailing == 1 { "" } else { "s" }
        ));
    }
    if let Some(l) = t.dll.original_length {
        notes.push(format!(
            "lenient length: the L-field said 0x{l:02X} but {} bytes follow; read whole as asked (--lenient-length)",
            t.len.saturating_sub(1)
        ));
    }
    notes
}

impl<'a> Walk<'a> {
    fn new(raw: &[u8], trace: &Trace, error: Option<&'a DecodeError>, keys: &'a KeyStore) -> Self {
        let mut notes = Vec::new();
        let wired = trace.base > 0;
        let received = match (&trace.telegram, wired) {
            (_, true) => raw.to_vec(),
            (Some(t), false) => {
                notes.extend(frame_notes(t));
                trace.received.clone()
            }
            // The CRC (or length) error is the outcome; show the header as received.
            (None, false) => raw.to_vec(),
        };
        if let (Some(t), true) = (&trace.telegram, wired) {
            notes.extend(frame_notes(t));
        }
        let mut plain = received.clone();
        if let Some(dst) = plain.get_mut(trace.base..trace.base + trace.working.len()) {
            if !trace.working.is_empty() && dst.len() == trace.working.len() {
                dst.copy_from_slice(&trace.working);
            }
        }
        let end = if wired {
            // 68 L L 68 | C A CI data | CS 16
            received.len().saturating_sub(2)
        } else {
            received.len()
        };
        Walk {
            received,
            plain,
            end,
            error,
            keys,
            meter: None,
            notes,
            spans: Vec::new(),
        }
    }

    fn push(&mut self, layer: Section, at: usize, len: usize, field: &str, meaning: String) {
        self.push_from(layer, at, len, field, meaning, false);
    }

    /// Adds a span; `ciphertext` shows the bytes as received rather than decrypted.
    fn push_from(
        &mut self,
        layer: Section,
        at: usize,
        len: usize,
        field: &str,
        meaning: String,
        ciphertext: bool,
    ) {
        let source = if ciphertext {
            &self.received
        } else {
            &self.plain
        };
        let bytes = source.get(at..at.saturating_add(len)).unwrap_or_default();
        self.spans.push(Span {
            offset: at,
            len: bytes.len(),
            layer,
            field: field.to_owned(),
            bytes_hex: spaced_hex(bytes),
            meaning,
        });
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.plain.get(at).copied()
    }

    fn rest(&self, from: usize) -> &[u8] {
        self.plain.get(from..self.end).unwrap_or_default()
    }

    /// Marks everything from `at` to the end as not explained, with the reason.
    fn unused(&mut self, layer: Section, at: usize, why: &str, ciphertext: bool) {
        let len = self.end.saturating_sub(at);
        if len > 0 {
            let meaning = format!("unused: {len} byte{} {why}", plural(len));
            self.push_from(layer, at, len, "unused", meaning, ciphertext);
        }
    }

    fn run(&mut self, reading: Option<&Reading>) {
        if self.received.first() == Some(&0x68) && self.end + 2 == self.received.len() {
            self.wired(reading);
        } else {
            self.wireless(reading);
        }
    }

    fn wired(&mut self, reading: Option<&Reading>) {
        let len = self.byte(1).unwrap_or(0);
        self.push(Section::Link, 0, 1, "start", "long frame start (68)".into());
        self.push(
            Section::Link,
            1,
            2,
            "L L",
            format!("{len} bytes from the C-field to the last data byte"),
        );
        self.push(Section::Link, 3, 1, "start", "second start byte".into());
        let c = self.byte(4).unwrap_or(0);
        self.push(Section::Link, 4, 1, "C-field", format!("0x{c:02X}"));
        let a = self.byte(5).unwrap_or(0);
        self.push(
            Section::Link,
            5,
            1,
            "A-field",
            format!("primary address {a}"),
        );
        self.transport(6, reading);
        let cs = self.end;
        self.push(
            Section::Link,
            cs,
            1,
            "checksum",
            "sum of C..data, mod 256".into(),
        );
        self.push(Section::Link, cs + 1, 1, "stop", "end of frame (16)".into());
    }

    fn wireless(&mut self, reading: Option<&Reading>) {
        let Ok((header, mut pos)) = LinkHeader::parse(&self.received) else {
            self.unused(Section::Link, 0, "shorter than a link header", false);
            return;
        };
        self.meter = Some(MeterRef {
            manufacturer: header.address.manufacturer,
            id: header.address.id,
        });
        let follow = usize::from(header.length);
        self.push(
            Section::Link,
            0,
            1,
            "L-field",
            format!("{follow} bytes follow (CRCs excluded)"),
        );
        self.push(
            Section::Link,
            1,
            1,
            "C-field",
            control_name(header.control).into(),
        );
        let m = header.address.manufacturer();
        self.push(
            Section::Link,
            2,
            2,
            "M-field",
            format!("manufacturer {m} (0x{:04X})", header.address.manufacturer),
        );
        self.push(
            Section::Link,
            4,
            4,
            "A: id",
            format!("meter id {}", header.address.id_string()),
        );
        self.push(
            Section::Link,
            8,
            1,
            "A: version",
            format!("version {}", header.address.version),
        );
        self.push(
            Section::Link,
            9,
            1,
            "A: device type",
            format!(
                "{} (0x{:02X})",
                device_type::name(m, header.address.device_type),
                header.address.device_type
            ),
        );
        if self.failed_at(Layer::Link) {
            // Nothing after a failed link layer (CRC, length) can be trusted.
            self.unused(Section::Link, pos, "not read: the link layer failed", true);
            return;
        }

        if self.byte(pos).is_some_and(ell::is_ell_ci) {
            match self.ell(pos, &header) {
                Some(next) => pos = next,
                None => return,
            }
        }
        if self.byte(pos) == Some(CI_AFL) {
            match self.afl(pos) {
                Some(next) => pos = next,
                None => return,
            }
        }
        if pos >= self.end {
            return;
        }
        self.transport(pos, reading);
    }

    fn failed_at(&self, layer: Layer) -> bool {
        self.error.is_some_and(|e| e.layer == layer)
    }

    /// Whether the error is about keys or decryption: ciphertext stays ciphertext.
    fn security_failed(&self) -> bool {
        self.error.is_some_and(|e| {
            e.layer == Layer::Security
                || matches!(
                    e.kind,
                    FailureKind::NoKey | FailureKind::WrongKey | FailureKind::MacFailure
                )
        })
    }

    fn ell(&mut self, pos: usize, link: &LinkHeader) -> Option<usize> {
        let parsed = EllRepr::parse(self.rest(pos));
        let (repr, used) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Ell, pos, &format!("not read: {}", e.kind), false);
                return None;
            }
        };
        let variant = match repr.ci {
            ell::CI_ELL_I => "ELL I (short)",
            ell::CI_ELL_II => "ELL II (with session number)",
            ell::CI_ELL_III => "ELL III (with receiver address)",
            _ => "ELL IV (receiver address and session number)",
        };
        self.push(
            Section::Ell,
            pos,
            1,
            "CI",
            format!("0x{:02X}: {variant}", repr.ci),
        );
        let cc = repr.communication_control();
        let mut flags = Vec::new();
        for (set, name) in [
            (cc.bidirectional(), "bidirectional"),
            (cc.response_delay(), "response delay"),
            (cc.synchronized(), "synchronized"),
            (cc.hop_count(), "hop count"),
            (cc.priority(), "priority"),
            (cc.accessibility(), "accessible"),
            (cc.repeated_access(), "repeated access"),
            (cc.extended_delay(), "extended delay"),
        ] {
            if set {
                flags.push(name);
            }
        }
        self.push(
            Section::Ell,
            pos + 1,
            1,
            "CC",
            format!("communication control: {}", list_or(&flags, "no flags")),
        );
        self.push(
            Section::Ell,
            pos + 2,
            1,
            "ACC",
            format!("access number {}", repr.access_number),
        );
        let mut at = pos + 3;
        if let Some((m2, _)) = repr.receiver {
            self.push(
                Section::Ell,
                at,
                2,
                "M2",
                format!("receiver manufacturer {}", Manufacturer(m2)),
            );
            self.push(Section::Ell, at + 2, 6, "A2", "receiver address".into());
            at += 8;
        }
        if let Some(sn) = repr.session() {
            let enc = match sn.encryption() {
                EllEncryption::None => "not encrypted".to_owned(),
                EllEncryption::AesCtr => "AES-128-CTR encrypted".to_owned(),
                EllEncryption::Reserved(b) => format!("reserved encryption {b}"),
            };
            self.push(
                Section::Ell,
                at,
                4,
                "SN",
                format!("session {}, {} minutes, {enc}", sn.session(), sn.minutes()),
            );
        }
        let Some(rel) = repr.encrypted_offset() else {
            return Some(pos + used);
        };
        let crc_at = pos + rel;
        let verifies = ell::check_payload_crc(self.rest(crc_at), crc_at).is_ok();
        let decrypted = self.plain.get(crc_at..) != self.received.get(crc_at..);
        if !verifies || (self.security_failed() && self.error_offset() == Some(crc_at)) {
            let why = match repr.encryption() {
                EllEncryption::AesCtr => "encrypted (ELL AES-CTR), not decrypted",
                _ => "after an ELL payload CRC that does not verify",
            };
            self.unused(Section::Ell, crc_at, why, true);
            return None;
        }
        let how = if decrypted {
            let fp = self.key_fingerprint_for(link.address.manufacturer, link.address.id);
            format!("verifies after AES-CTR decryption with {fp}")
        } else {
            "verifies".to_owned()
        };
        self.push(
            Section::Ell,
            crc_at,
            2,
            "PayloadCRC",
            format!("payload CRC {how}"),
        );
        Some(crc_at + 2)
    }

    fn error_offset(&self) -> Option<usize> {
        self.error.and_then(|e| e.offset)
    }

    fn key_fingerprint_for(&self, manufacturer: u16, id: [u8; 4]) -> String {
        match self.keys.lookup(manufacturer, &id) {
            Some(key) => format!("key fp {}", key.fingerprint()),
            None => "the configured key".to_owned(),
        }
    }

    fn afl(&mut self, pos: usize) -> Option<usize> {
        let (afl, used) = match AflRepr::parse(self.rest(pos)) {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Afl, pos, &format!("not read: {}", e.kind), false);
                return None;
            }
        };
        self.push(Section::Afl, pos, 1, "CI", "0x90: AFL".into());
        self.push(
            Section::Afl,
            pos + 1,
            1,
            "AFLL",
            format!("{} AFL bytes follow", used.saturating_sub(2)),
        );
        let fc = afl.fragment_control;
        self.push(
            Section::Afl,
            pos + 2,
            2,
            "FCL",
            format!(
                "fragment control 0x{:04X}: fragment {}{}",
                fc.0,
                fc.fragment_id(),
                if fc.more_fragments() {
                    ", more follow"
                } else {
                    ", last"
                }
            ),
        );
        let mut at = pos + 4;
        if let Some(mcl) = afl.message_control {
            self.push(
                Section::Afl,
                at,
                1,
                "MCL",
                format!("message control 0x{:02X}: {:?}", mcl.0, mcl.auth_type()),
            );
            at += 1;
        }
        if let Some(ki) = afl.key_info {
            self.push(
                Section::Afl,
                at,
                2,
                "KI",
                format!(
                    "key information: key version {}, key id {}",
                    ki.key_version(),
                    ki.key_id()
                ),
            );
            at += 2;
        }
        if let Some(mcr) = afl.message_counter {
            self.push(
                Section::Afl,
                at,
                4,
                "MCR",
                format!("message counter {mcr} (feeds the mode-7 key derivation)"),
            );
            at += 4;
        }
        if let Some(mac) = afl.mac {
            let len = mac.as_slice().len();
            let state = match self.error {
                Some(e) if e.kind == FailureKind::MacFailure => "does NOT verify",
                Some(e) if e.kind == FailureKind::NoKey => "not checked (no key)",
                None => "verifies",
                Some(_) => "see the outcome below",
            };
            self.push(
                Section::Afl,
                at,
                len,
                "MAC",
                format!("AES-CMAC over the TPL, {len} bytes: {state}"),
            );
            at += len;
        }
        if let Some(ml) = afl.message_length {
            self.push(Section::Afl, at, 2, "ML", format!("message length {ml}"));
            at += 2;
        }
        let end = pos + used;
        if end > at {
            let len = end - at;
            self.push(
                Section::Afl,
                at,
                len,
                "unused",
                format!(
                    "unused: {len} byte{} inside AFLL, not described",
                    plural(len)
                ),
            );
        }
        Some(end)
    }

    fn transport(&mut self, pos: usize, reading: Option<&Reading>) {
        let Some(ci) = self.byte(pos) else {
            return;
        };
        if tpl::is_manufacturer_specific(ci) {
            self.push(
                Section::Tpl,
                pos,
                1,
                "CI",
                format!("0x{ci:02X}: manufacturer-specific layer"),
            );
            let len = self.end.saturating_sub(pos + 1);
            self.push(
                Section::Tpl,
                pos + 1,
                len,
                "vendor data",
                format!("{len} bytes in a vendor format (kept as hex)"),
            );
            return;
        }
        let (repr, used) = match TplRepr::parse(self.rest(pos)) {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Tpl, pos, &format!("not read: {}", e.kind), false);
                return;
            }
        };
        let kind = match repr.kind() {
            HeaderKind::None => "no TPL header",
            HeaderKind::Short => "short TPL header",
            HeaderKind::Long => "long TPL header",
        };
        self.push(
            Section::Tpl,
            pos,
            1,
            "CI",
            format!("0x{ci:02X}: {kind}, {}", ci_payload(ci)),
        );
        let mut at = pos + 1;
        if let Some(long) = repr.long_address {
            self.meter = Some(MeterRef {
                manufacturer: long.manufacturer,
                id: long.id,
            });
            self.push(
                Section::Tpl,
                at,
                4,
                "id",
                format!("meter id {}", long.id_string()),
            );
            self.push(
                Section::Tpl,
                at + 4,
                2,
                "M",
                format!("manufacturer {}", long.manufacturer()),
            );
            self.push(
                Section::Tpl,
                at + 6,
                1,
                "version",
                format!("version {}", long.version),
            );
            self.push(
                Section::Tpl,
                at + 7,
                1,
                "device type",
                format!(
                    "{} (0x{:02X})",
                    device_type::name(long.manufacturer(), long.device_type),
                    long.device_type
                ),
            );
            at += 8;
        }
        if let Some(h) = repr.header {
            self.push(
                Section::Tpl,
                at,
                1,
                "ACC",
                format!("access number {}", h.access_number),
            );
            let s = h.status;
            let mut flags = Vec::new();
            for (set, name) in [
                (s.power_low(), "power low"),
                (s.permanent_error(), "permanent error"),
                (s.temporary_error(), "temporary error"),
            ] {
                if set {
                    flags.push(name);
                }
            }
            self.push(
                Section::Tpl,
                at + 1,
                1,
                "STS",
                format!(
                    "status: {}{}{}",
                    match s.application_status() {
                        tpl::ApplicationStatus::NoError => "no error",
                        tpl::ApplicationStatus::Busy => "application busy",
                        tpl::ApplicationStatus::Error => "application error",
                        tpl::ApplicationStatus::Abnormal => "abnormal condition / alarm",
                    },
                    if flags.is_empty() { "" } else { ", " },
                    flags.join(", ")
                ),
            );
            let cf = h.config;
            let mode = cf.security_mode();
            let blocks = match mode {
                SecurityMode::Mode5 | SecurityMode::Mode7 => {
                    format!(", {} encrypted blocks", cf.encrypted_blocks())
                }
                _ => String::new(),
            };
            self.push(
                Section::Tpl,
                at + 2,
                2,
                "CF",
                format!(
                    "configuration 0x{:04X}: security mode {}{blocks}",
                    cf.0,
                    mode.number()
                ),
            );
            at += 4;
            if let Some(ext) = h.config_ext {
                self.push(
                    Section::Tpl,
                    at,
                    1,
                    "CF ext",
                    format!("configuration extension 0x{ext:02X}"),
                );
                at += 1;
            }
            if let Some(mc) = h.message_counter {
                self.push(Section::Tpl, at, 4, "MCR", format!("message counter {mc}"));
                at += 4;
            }
            if let Some(kv) = h.key_version {
                self.push(
                    Section::Tpl,
                    at,
                    1,
                    "key version",
                    format!("key version {kv}"),
                );
                at += 1;
            }
        }
        let data_start = pos + used;
        if data_start > at {
            // Header bytes the parser consumed without a field above (none known today).
            self.push(
                Section::Tpl,
                at,
                data_start - at,
                "header",
                "rest of the TPL header".into(),
            );
        }
        if self.failed_at(Layer::Tpl) {
            self.unused(
                Section::Tpl,
                data_start,
                "not read: the transport layer failed",
                true,
            );
            return;
        }
        if !self.security(&repr, data_start) {
            return;
        }
        self.application(ci, data_start, reading);
    }

    /// Explains the encrypted region; false when it stays ciphertext.
    fn security(&mut self, repr: &TplRepr, data_start: usize) -> bool {
        let mode = repr.security_mode();
        let Some(header) = repr.header else {
            return true;
        };
        let available = self.end.saturating_sub(data_start);
        let len = match mode {
            SecurityMode::None => return true,
            SecurityMode::Mode5 if header.config.encrypted_blocks() == 0 => available / 16 * 16,
            _ => usize::from(header.config.encrypted_blocks()) * 16,
        };
        let len = len.min(available);
        let what = match mode {
            SecurityMode::Mode5 => "security mode 5: AES-128-CBC, IV from address and ACC",
            SecurityMode::Mode7 => "security mode 7: AES-128-CBC, zero IV, keys derived by KDF-A",
            _ => "a security mode this decoder does not decrypt",
        };
        if self.security_failed() {
            self.push_from(
                Section::Security,
                data_start,
                len,
                "ciphertext",
                format!("{what}; not decrypted"),
                true,
            );
            self.unused(
                Section::Security,
                data_start + len,
                "after the encrypted region, not read",
                true,
            );
            return false;
        }
        let decrypted = self.plain.get(data_start..data_start + len)
            != self.received.get(data_start..data_start + len);
        let state = if decrypted {
            let fp = match self.meter {
                Some(m) => self.key_fingerprint_for(m.manufacturer, m.id),
                None => "the configured key".to_owned(),
            };
            let check = if mode == SecurityMode::Mode7 {
                "AFL MAC and 2F 2F check"
            } else {
                "2F 2F check"
            };
            format!("{len} bytes decrypted with {fp}, verified by the {check}")
        } else {
            format!("{len} bytes, already plaintext (decrypted upstream)")
        };
        self.notes_for_security(what, state, data_start);
        true
    }

    fn notes_for_security(&mut self, what: &str, state: String, at: usize) {
        // A zero-length span: the decrypted bytes themselves are shown record by record.
        self.spans.push(Span {
            offset: at,
            len: 0,
            layer: Section::Security,
            field: "encryption".to_owned(),
            bytes_hex: String::new(),
            meaning: format!("{what}; {state}; shown decrypted below"),
        });
    }

    fn application(&mut self, ci: u8, start: usize, reading: Option<&Reading>) {
        match ci {
            0x79 | 0x7B | 0x73 => self.compact(start, reading),
            0x69..=0x6B => self.format_frame(start),
            0x8A | 0x8B => self.unused(Section::Records, start, "after a TPL without data", false),
            _ => self.records(start),
        }
    }

    fn fillers(&mut self, section: Section, from: usize, to: usize) {
        if to > from {
            let len = to - from;
            let meaning = if self
                .spans
                .last()
                .is_some_and(|s| s.layer == Section::Security)
                && len >= 2
            {
                "idle filler 2F (the first two confirm the decryption)".to_owned()
            } else {
                "idle filler 2F".to_owned()
            };
            self.push(section, from, len, "filler", meaning);
        }
    }

    fn compact(&mut self, start: usize, reading: Option<&Reading>) {
        let skip = self
            .rest(start)
            .iter()
            .take_while(|&&b| b == IDLE_FILLER)
            .count();
        self.fillers(Section::Compact, start, start + skip);
        let start = start + skip;
        let parsed =
            CompactRepr::parse(self.rest(start)).map(|c| (c.signature, c.full_crc, c.data.len()));
        let (signature, full_crc, data_len) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.unused(
                    Section::Compact,
                    start,
                    &format!("not read: {}", e.kind),
                    false,
                );
                return;
            }
        };
        self.push(
            Section::Compact,
            start,
            2,
            "signature",
            format!("format signature 0x{signature:04X} (CRC of the full frame's DIF/VIF list)"),
        );
        self.push(
            Section::Compact,
            start + 2,
            2,
            "full CRC",
            format!("CRC 0x{full_crc:04X} of the full frame's record area"),
        );
        match reading {
            Some(r) => {
                let values: Vec<String> = r.records.iter().map(record_summary).collect();
                self.push(
                    Section::Compact,
                    start + 4,
                    data_len,
                    "record data",
                    format!(
                        "data of {} records in the learned format: {}",
                        values.len(),
                        values.join("; ")
                    ),
                );
            }
            None => self.unused(
                Section::Compact,
                start + 4,
                &format!(
                    "of record data in format 0x{signature:04X}, which no full frame has shown"
                ),
                false,
            ),
        }
    }

    fn format_frame(&mut self, start: usize) {
        let parsed =
            FormatFrameRepr::parse(self.rest(start)).map(|f| (f.signature, f.headers.len()));
        let (signature, headers) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.unused(
                    Section::Compact,
                    start,
                    &format!("not read: {}", e.kind),
                    false,
                );
                return;
            }
        };
        self.push(
            Section::Compact,
            start,
            1,
            "length",
            format!("{} bytes follow", headers + 2),
        );
        self.push(
            Section::Compact,
            start + 1,
            2,
            "signature",
            format!("format signature 0x{signature:04X}"),
        );
        self.push(
            Section::Compact,
            start + 3,
            headers,
            "DIF/VIF list",
            "record headers of the format (learned for later compact frames)".into(),
        );
        self.unused(
            Section::Compact,
            start + 3 + headers,
            "after the format",
            false,
        );
    }

    fn records(&mut self, start: usize) {
        let data = self.rest(start).to_vec();
        let parsed = apl::parse_lenient(&data);
        let mut cursor = 0usize;
        for r in &parsed.records {
            self.fillers(Section::Records, start + cursor, start + r.offset);
            self.record(start, r);
            cursor = r.offset + r.encoded_len();
        }
        if let Some(vendor) = parsed.manufacturer_data {
            let dif_at = data.len().saturating_sub(vendor.len() + 1);
            self.fillers(Section::Records, start + cursor, start + dif_at);
            let dif = data.get(dif_at).copied().unwrap_or(0);
            self.push(
                Section::Records,
                start + dif_at,
                1,
                "DIF",
                format!(
                    "0x{dif:02X}: manufacturer-specific data follows{}",
                    if parsed.more_records_follow {
                        ", more records in the next telegram"
                    } else {
                        ""
                    }
                ),
            );
            if !vendor.is_empty() {
                self.push(
                    Section::Records,
                    start + dif_at + 1,
                    vendor.len(),
                    "vendor data",
                    format!("{} bytes in a vendor format (kept as hex)", vendor.len()),
                );
            }
            return;
        }
        if let Some(u) = &parsed.unparsed {
            self.fillers(Section::Records, start + cursor, start + u.offset);
            let why = if parsed.records.is_empty() {
                format!("not parsed as records ({})", u.error.kind)
            } else {
                format!("after the last record, not parsed ({})", u.error.kind)
            };
            self.unused(Section::Records, start + u.offset, &why, false);
            return;
        }
        let trailing = data
            .get(cursor..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b == IDLE_FILLER)
            .count();
        self.fillers(Section::Records, start + cursor, start + cursor + trailing);
        let after = cursor + trailing;
        if after < data.len() {
            self.unused(
                Section::Records,
                start + after,
                "after the last record",
                false,
            );
        }
    }

    fn record(&mut self, base: usize, r: &DataRecord<'_>) {
        let at = base + r.offset;
        let dib_len = 1 + usize::from(r.dib.difes);
        let vib_len = r.header.len().saturating_sub(dib_len);
        let mut dib = format!(
            "{}, {}",
            data_field_text(r.dib.data_field),
            r.dib.function.as_str()
        );
        if r.dib.storage != 0 {
            let _ = write!(dib, ", storage {}", r.dib.storage);
        }
        if r.dib.tariff != 0 {
            let _ = write!(dib, ", tariff {}", r.dib.tariff);
        }
        if r.dib.subunit != 0 {
            let _ = write!(dib, ", subunit {}", r.dib.subunit);
        }
        self.push(Section::Records, at, dib_len, "DIF", dib);
        let record = crate::reading::Record::from_data_record(r);
        let meaning = r.meaning();
        let mut vib = record.quantity.to_string();
        if let Some(unit) = &record.unit {
            let _ = write!(vib, " [{unit}]");
        }
        if !record.qualifiers.is_empty() {
            let _ = write!(vib, " ({})", record.qualifiers.join(", "));
        }
        if let Some(e) = &record.error {
            let _ = write!(vib, ", record error: {e}");
        }
        if meaning.scale != apl::Decimal::new(1, 0) {
            let _ = write!(vib, ", scale {}", meaning.scale);
        }
        self.push(Section::Records, at + dib_len, vib_len, "VIF", vib);
        let mut data_at = at + r.header.len();
        if let Some(lvar) = r.lvar {
            self.push(
                Section::Records,
                data_at,
                1,
                "LVAR",
                format!("0x{lvar:02X}: {} data bytes follow", r.data.len()),
            );
            data_at += 1;
        }
        if !r.data.is_empty() {
            self.push(
                Section::Records,
                data_at,
                r.data.len(),
                "data",
                record_summary(&record),
            );
        }
    }
}

/// "volume = 28504.27 m3".
fn record_summary(r: &crate::reading::Record) -> String {
    let value = match serde_json::to_value(&r.value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => "?".to_owned(),
    };
    match &r.unit {
        Some(unit) => format!("{} = {value} {unit}", r.quantity),
        None => format!("{} = {value}", r.quantity),
    }
}

fn data_field_text(field: apl::DataField) -> String {
    match field {
        apl::DataField::NoData => "no data".to_owned(),
        apl::DataField::Integer(n) => format!("{n}-byte integer"),
        apl::DataField::Real32 => "32-bit real".to_owned(),
        apl::DataField::Selection => "selection for readout".to_owned(),
        apl::DataField::Bcd(n) => format!("{}-digit BCD", u16::from(n) * 2),
        apl::DataField::Variable => "variable length (LVAR)".to_owned(),
    }
}

fn control_name(c: u8) -> &'static str {
    match c {
        control::SND_NR => "0x44 SND_NR: spontaneous meter data",
        control::SND_IR => "0x46 SND_IR: installation telegram",
        control::ACC_NR => "0x47 ACC_NR: access opportunity, no data",
        control::ACC_DMD => "0x48 ACC_DMD: access demand",
        control::RSP_UD => "0x08 RSP_UD: response with user data",
        _ => "other control field",
    }
}

fn ci_payload(ci: u8) -> &'static str {
    match ci {
        0x79 | 0x7B | 0x73 => "compact frame follows",
        0x69..=0x6B => "format frame follows",
        0x8A | 0x8B => "no application data",
        _ => "data records follow",
    }
}

fn spaced_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn list_or(items: &[&str], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

/// A sentence naming the failure class exactly as [`FailureKind::label`] does, and what
/// to do about it. Keys appear as fingerprints only.
fn diagnose(err: &DecodeError, decoder: &Decoder, meter: Option<MeterRef>) -> String {
    let id = err
        .meter
        .clone()
        .or_else(|| meter.map(|m| link::id_string(&m.id)))
        .unwrap_or_else(|| "?".to_owned());
    let fp = meter
        .and_then(|m| decoder.keys().lookup(m.manufacturer, &m.id))
        .map(|k| format!(" (key fp {})", k.fingerprint()))
        .unwrap_or_default();
    let label = err.kind.label();
    let advice = match err.kind {
        FailureKind::WrongKey => format!(
            "the key configured for meter {id}{fp} does not decrypt this telegram; \
             check the key configured for meter {id}{fp} against the one the supplier sent"
        ),
        FailureKind::MacFailure => format!(
            "the AFL MAC does not verify with the key configured for meter {id}{fp}; \
             check the key configured for meter {id}{fp} (a corrupted telegram is rarer)"
        ),
        FailureKind::NoKey => format!(
            "the telegram is encrypted and no key is configured for meter {id}; \
             add its key (`wmbusd keys import`, or --key to try one)"
        ),
        FailureKind::Crc => "the link-layer CRC does not match: the frame was damaged on the \
             air (weak signal, collision) or pasted incompletely; wait for the next telegram \
             or move the antenna"
            .to_owned(),
        FailureKind::UnknownCompactFormat => format!(
            "meter {id} sent a compact frame that refers to a full frame not seen yet; \
             decode one of its full telegrams first (in the same call) or wait for the next one"
        ),
        FailureKind::Truncated => {
            "the frame ends before its layers do: an incomplete reception or paste".to_owned()
        }
        FailureKind::Input => "this is not a hex telegram".to_owned(),
        FailureKind::ControlFrame => "a link-layer frame without meter data (a request, \
             command or acknowledgement): counted, not a failure of the meter"
            .to_owned(),
        FailureKind::Invalid | FailureKind::Unsupported => err.message.clone(),
        FailureKind::Replay => format!(
            "{}; an old telegram of meter {id} sent again, not a new reading",
            err.message
        ),
    };
    format!("{label}: {advice}")
}

impl Explanation {
    /// `decode --explain --last-counter`/`--state-file`: a telegram that decoded, but whose
    /// authenticated message counter does not go forward, is a `replay`, as the daemon
    /// would call it. Accepted counters are remembered in `book` for the next telegram.
    pub fn judge_replay(&mut self, decoder: &Decoder, book: &mut crate::replay::Book, now: u64) {
        use crate::replay::Verdict;
        if !matches!(self.outcome, Outcome::Decoded { .. }) {
            return;
        }
        let Some(telegram) = decoder.last_telegram() else {
            return;
        };
        let Some(id) = telegram.meter_id() else {
            return;
        };
        let mut last = book.last(&id);
        let counter = decoder.last_verified_counter();
        match (last.check(counter, now, book.rule), counter) {
            (Verdict::Replay { last }, Some(got)) => {
                let message = crate::replay::replay_message(&id, got, last);
                self.outcome = Outcome::Failed {
                    kind: FailureKind::Replay,
                    layer: Layer::Afl,
                    offset: telegram.afl_at,
                    diagnosis: format!(
                        "{}: {message}; the daemon rejects it (a meter that restarted is \
                         accepted once its last counter is older than [pipeline] replay_reset_hours)",
                        FailureKind::Replay.label()
                    ),
                    message,
                };
                return;
            }
            (Verdict::Restart { last }, Some(got)) => self.notes.push(format!(
                "message counter {got} went back from {last} after the reset time: accepted as a restart of meter {id}"
            )),
            (Verdict::Accepted, Some(got)) => self.notes.push(match last.counter {
                Some(before) => format!("message counter {got} is above the last accepted {before}: not a replay"),
                None => format!("message counter {got}: first one known for meter {id}"),
            }),
            _ => {}
        }
        last.accept(counter, None, now);
        book.meters.insert(id, last);
    }

    /// Aligned text: a heading per layer, then `offset  hex  field  meaning` per span.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let hex_width = self
            .lines
            .iter()
            .map(|s| s.bytes_hex.len().min(HEX_COLUMN_MAX))
            .max()
            .unwrap_or(2);
        let field_width = self.lines.iter().map(|s| s.field.len()).max().unwrap_or(5);
        let mut section = None;
        for span in &self.lines {
            if section != Some(span.layer) {
                let _ = writeln!(out, "== {} ==", span.layer.heading());
                section = Some(span.layer);
            }
            let mut chunks = wrap_hex(&span.bytes_hex);
            let first = chunks.next().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:04}  {:<hex_width$}  {:<field_width$}  {}",
                span.offset, first, span.field, span.meaning
            );
            for more in chunks {
                let _ = writeln!(out, "  {:4}  {more}", "");
            }
        }
        match &self.outcome {
            Outcome::Decoded { records, driver } => {
                match driver {
                    Some((name, fields)) => {
                        let _ = writeln!(out, "driver: {name}");
                        for field in fields {
                            let _ = writeln!(out, "  {field}");
                        }
                    }
                    None => {
                        let _ = writeln!(out, "driver: none matched (generic records only)");
                    }
                }
                let _ = writeln!(out, "result: decoded, {records} record{}", plural(*records));
            }
            Outcome::Failed {
                kind,
                layer,
                offset,
                diagnosis,
                message,
            } => {
                let at = offset.map(|o| format!(" at byte {o}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "result: failed in the {layer} layer{at} ({})",
                    kind.name()
                );
                // The class in one line: "CRC error in block 2 of format B …",
                // "damaged wired frame: no stop byte", "control frame: SND_NKE".
                let _ = writeln!(out, "error: {message}");
                let _ = writeln!(out, "diagnosis: {diagnosis}");
            }
        }
        out
    }
}

/// Long runs (ciphertext, vendor data) wrap at 16 bytes per line.
const HEX_COLUMN_MAX: usize = 16 * 3 - 1;

fn wrap_hex(hex: &str) -> impl Iterator<Item = &str> {
    let mut rest = hex;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() > HEX_COLUMN_MAX {
            HEX_COLUMN_MAX + 1
        } else {
            rest.len()
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head.trim_end())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(hex_text: &str) -> RadioFrame {
        RadioFrame::new(hex::decode(hex_text).unwrap_or_default())
    }

    const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";

    /// (telegram, meter id, key) from protocol.md §4.2.1, §4.5.3 and §4.3.1.
    const VECTORS: [(&str, &str, &str); 3] = [
        (MODE5, "12345678", "0102030405060708090A0B0C0D0E0F11"),
        (
            "434493157856341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93",
            "12345678",
            "000102030405060708090A0B0C0D0E0F",
        ),
        (
            "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24",
            "76348799",
            "28F64A24988064A079AA2C807D6102AE",
        ),
    ];

    #[test]
    fn spans_cover_every_byte_once_in_order() {
        for (telegram, id, key) in VECTORS {
            let mut keys = KeyStore::new();
            assert!(keys.insert_hex(id, key).is_ok());
            let mut decoder = Decoder::new(keys);
            let e = explain(&mut decoder, &frame(telegram));
            assert!(
                matches!(e.outcome, Outcome::Decoded { .. }),
                "{}",
                e.render()
            );
            let mut next = 0;
            for s in e.lines.iter().filter(|s| s.len > 0) {
                assert_eq!(s.offset, next, "{s:?}");
                next += s.len;
            }
            assert_eq!(next, telegram.len() / 2, "{}", e.render());
            assert!(!e.render().contains(key), "key printed");
        }
    }

    #[test]
    fn decrypted_values_are_shown() {
        let mut keys = KeyStore::new();
        assert!(keys
            .insert_hex("12345678", "0102030405060708090A0B0C0D0E0F11")
            .is_ok());
        let mut decoder = Decoder::new(keys);
        let text = explain(&mut decoder, &frame(MODE5)).render();
        assert!(text.contains("volume = 28504.27 m3"), "{text}");
        assert!(text.contains("8-digit BCD"), "{text}");
    }

    #[test]
    fn missing_key_is_diagnosed_and_ciphertext_marked() {
        let mut decoder = Decoder::new(KeyStore::new());
        let e = explain(&mut decoder, &frame(MODE5));
        let Outcome::Failed {
            kind, diagnosis, ..
        } = &e.outcome
        else {
            panic!("decoded without a key");
        };
        assert_eq!(*kind, FailureKind::NoKey);
        assert!(diagnosis.starts_with("no key:"), "{diagnosis}");
        assert!(e.lines.iter().any(|s| s.field == "ciphertext"));
    }

    /// Each integrity class of issue 12 is named in one line of `--explain`.
    #[test]
    fn integrity_classes_are_named_in_one_line() {
        use crate::frame::{CrcState, FrameFormat};
        use crate::wire::link::add_crc;
        let sontex = hex::decode(
            "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000",
        )
        .unwrap();
        let mut b = add_crc(&sontex, FrameFormat::B).unwrap();
        b[20] ^= 1;
        let mut long = sontex.clone();
        long.extend_from_slice(&[0xDE, 0xAD, 0x21]);
        let mut a = add_crc(&sontex, FrameFormat::A).unwrap();
        a[40] ^= 0x80;
        let cases = [
            (
                b,
                CrcState::Present(FrameFormat::B),
                "error: CRC error in block 2 of format B",
            ),
            (
                a,
                CrcState::Unknown,
                "error: CRC error in block 3 of format A",
            ),
            (
                long,
                CrcState::Unknown,
                "note: 3 bytes after the frame's end (L-field 0x34)",
            ),
            (
                hex::decode("680303680801515B16").unwrap(),
                CrcState::Unknown,
                "error: damaged wired frame: checksum",
            ),
            (
                hex::decode("680303680801515A").unwrap(),
                CrcState::Unknown,
                "error: damaged wired frame: no stop byte",
            ),
            (
                hex::decode("1040014116").unwrap(),
                CrcState::Unknown,
                "error: control frame: SND_NKE",
            ),
        ];
        for (bytes, crc, line) in cases {
            let frame = RadioFrame {
                crc,
                ..RadioFrame::new(bytes)
            };
            let text = explain(&mut Decoder::new(KeyStore::new()), &frame).render();
            assert!(text.lines().any(|l| l.starts_with(line)), "{line}\n{text}");
        }
    }
}
