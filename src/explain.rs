//! `--explain`: an annotated, byte-by-byte breakdown of one telegram.
//!
//! The breakdown walks the same `wire` parsers the [`Decoder`] uses, over the working copy
//! the decoder leaves behind ([`Decoder::decode_traced`]): decryption happens once, in the
//! decoder, and a region whose key did not verify is shown as ciphertext. Key bytes are
//! never part of an explanation; keys are named by their fingerprint only.

//!
//! Each layer labels its own bytes (`annotate` on its `Repr`); this module only decides
//! how far the walk can trust the bytes (the diagnosis) and renders the spans.

use std::fmt::Write as _;

use crate::decode::{DecodeError, Decoder, FailureKind, Trace};
use crate::frame::RadioFrame;
use crate::keys::KeyStore;
use crate::reading::Reading;
use crate::wire::afl::{AflRepr, CI_AFL};
use crate::wire::annotate::Annotation;
use crate::wire::ell::{self, EllEncryption, EllRepr};
use crate::wire::link::LinkHeader;
use crate::wire::mbus::{self, MbusLongFrame};
use crate::wire::tpl::{self, TplRepr};
use crate::wire::Layer;

mod apl;
mod diagnosis;
mod render;
mod security;

use render::{plural, spaced_hex};
#[cfg(test)]
mod tests;

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
            diagnosis: diagnosis::diagnose(err, decoder, walk.meter),
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

impl<'a> Walk<'a> {
    fn new(raw: &[u8], trace: &Trace, error: Option<&'a DecodeError>, keys: &'a KeyStore) -> Self {
        let wired = trace.base > 0;
        // Without a telegram the CRC (or length) error is the outcome: bytes as received.
        let received = match (&trace.telegram, wired) {
            (Some(_), false) => trace.received.clone(),
            _ => raw.to_vec(),
        };
        let notes = trace
            .telegram
            .as_ref()
            .map(diagnosis::frame_notes)
            .unwrap_or_default();
        let mut plain = received.clone();
        let working = trace.base..trace.base + trace.working.len();
        if let Some(dst) = plain.get_mut(working) {
            if !trace.working.is_empty() {
                dst.copy_from_slice(&trace.working);
            }
        }
        // 68 L L 68 | C A CI data | CS 16
        let end = if wired {
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
        let (offset, len, bytes_hex) = (at, bytes.len(), spaced_hex(bytes));
        let field = field.to_owned();
        self.spans.push(Span {
            offset,
            len,
            layer,
            field,
            bytes_hex,
            meaning,
        });
    }

    fn push(&mut self, layer: Section, at: usize, len: usize, field: &str, meaning: String) {
        self.push_from(layer, at, len, field, meaning, false);
    }

    /// The spans a layer labelled itself.
    fn annotated(&mut self, layer: Section, annotations: Vec<Annotation>) {
        for a in annotations {
            self.push(layer, a.range.start, a.range.len(), a.label, a.value);
        }
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
        if self.received.first() == Some(&mbus::START) && self.end + 2 == self.received.len() {
            self.wired(reading);
        } else {
            self.wireless(reading);
        }
    }

    fn wired(&mut self, reading: Option<&Reading>) {
        let Ok((frame, _)) = MbusLongFrame::parse(&self.received) else {
            self.unused(Section::Link, 0, "not read: not a long frame", false);
            return;
        };
        let (head, tail): (Vec<_>, Vec<_>) = frame
            .annotate()
            .into_iter()
            .partition(|a| a.range.start < mbus::field::CI.start);
        self.annotated(Section::Link, head);
        self.transport(mbus::field::CI.start, reading);
        self.annotated(Section::Link, tail);
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
        self.annotated(Section::Link, header.annotate());
        if self.failed_at(Layer::Link) {
            // Nothing after a failed link layer (CRC, length) can be trusted.
            self.unused(Section::Link, pos, "not read: the link layer failed", true);
            return;
        }
        if self.byte(pos).is_some_and(ell::is_ell_ci) {
            let Some(next) = self.ell(pos, &header) else {
                return;
            };
            pos = next;
        }
        if self.byte(pos) == Some(CI_AFL) {
            let Some(next) = self.afl(pos) else { return };
            pos = next;
        }
        if pos < self.end {
            self.transport(pos, reading);
        }
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

    fn error_offset(&self) -> Option<usize> {
        self.error.and_then(|e| e.offset)
    }

    fn key_fingerprint_for(&self, manufacturer: u16, id: [u8; 4]) -> String {
        match self.keys.lookup(manufacturer, &id) {
            Some(key) => format!("key fp {}", key.fingerprint()),
            None => "the configured key".to_owned(),
        }
    }

    /// The ELL, up to its PayloadCRC; `None` when what follows stays unread (ciphertext or a
    /// CRC that does not verify).
    fn ell(&mut self, pos: usize, link: &LinkHeader) -> Option<usize> {
        let (repr, used) = match EllRepr::parse(self.rest(pos)) {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Ell, pos, &format!("not read: {}", e.kind), false);
                return None;
            }
        };
        let mut fields = repr.annotate(pos);
        let crc = pop_labelled(&mut fields, "PayloadCRC");
        self.annotated(Section::Ell, fields);
        let Some(crc) = crc else {
            return Some(pos + used);
        };
        let crc_at = crc.range.start;
        let verifies = ell::check_payload_crc(self.rest(crc_at), crc_at).is_ok();
        if !verifies || (self.security_failed() && self.error_offset() == Some(crc_at)) {
            let why = match repr.encryption() {
                EllEncryption::AesCtr => "encrypted (ELL AES-CTR), not decrypted",
                _ => "after an ELL payload CRC that does not verify",
            };
            self.unused(Section::Ell, crc_at, why, true);
            return None;
        }
        let how = if self.plain.get(crc_at..) != self.received.get(crc_at..) {
            let fp = self.key_fingerprint_for(link.address.manufacturer, link.address.id);
            format!("verifies after AES-CTR decryption with {fp}")
        } else {
            "verifies".to_owned()
        };
        self.push(
            Section::Ell,
            crc_at,
            crc.range.len(),
            crc.label,
            format!("payload CRC {how}"),
        );
        Some(crc.range.end)
    }

    fn afl(&mut self, pos: usize) -> Option<usize> {
        let (afl, used) = match AflRepr::parse(self.rest(pos)) {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Afl, pos, &format!("not read: {}", e.kind), false);
                return None;
            }
        };
        let state = match self.error {
            Some(e) if e.kind == FailureKind::MacFailure => "does NOT verify",
            Some(e) if e.kind == FailureKind::NoKey => "not checked (no key)",
            None => "verifies",
            Some(_) => "see the outcome below",
        };
        let mut fields = afl.annotate(pos, used);
        for a in fields.iter_mut().filter(|a| a.label == "MAC") {
            let _ = write!(a.value, ": {state}");
        }
        self.annotated(Section::Afl, fields);
        Some(pos + used)
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
            let meaning = format!("{len} bytes in a vendor format (kept as hex)");
            self.push(Section::Tpl, pos + 1, len, "vendor data", meaning);
            return;
        }
        let (repr, used) = match TplRepr::parse(self.rest(pos)) {
            Ok(p) => p,
            Err(e) => {
                self.unused(Section::Tpl, pos, &format!("not read: {}", e.kind), false);
                return;
            }
        };
        if let Some(long) = repr.long_address {
            self.meter = Some(MeterRef {
                manufacturer: long.manufacturer,
                id: long.id,
            });
        }
        self.annotated(Section::Tpl, repr.annotate(pos));
        let data_start = pos + used;
        if self.failed_at(Layer::Tpl) {
            self.unused(
                Section::Tpl,
                data_start,
                "not read: the transport layer failed",
                true,
            );
        } else if self.security(&repr, data_start) {
            self.application(ci, data_start, reading);
        }
    }
}

/// The last annotation when it carries `label`: the one field the walk words itself.
fn pop_labelled(fields: &mut Vec<Annotation>, label: &str) -> Option<Annotation> {
    match fields.last() {
        Some(a) if a.label == label => fields.pop(),
        _ => None,
    }
}
