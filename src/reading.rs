//! The normalized reading: what wmbusd publishes for every decoded telegram.
//!
//! The JSON layout (schema version [`SCHEMA_VERSION`]) is documented in
//! `docs/reading-schema.md`, the source for it, and `schema/reading.v1.schema.json`;
//! a unit test checks that every field serde emits is in both. The types here derive
//! their JSON with serde: field order is declaration order, and unknown optional fields
//! are left out.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::wire::apl::{Decimal, Function};

mod fields;
mod record;
mod value;

pub use fields::{natural_cmp, Fields, FieldsIter};
pub(crate) use fields::{FieldNames, Fill};
pub use record::{records_from_apl, Profile, ProfilePoint, Record};
pub use value::Value;

/// Version of the JSON layout of docs/reading-schema.md.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub schema: u32,
    pub meter: Meter,
    /// `[gateway] id` of the daemon that received it; absent outside the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_number: Option<u8>,
    pub status: Status,
    pub security: Security,
    pub records: Vec<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_data: Option<String>,
    /// Record bytes the decoder could not read (a malformed or truncated last record,
    /// a reserved DIF), kept so that nothing is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unparsed: Option<Unparsed>,
    /// Name of the manufacturer driver that matched the meter; absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Arc<str>>,
    /// Why the driver's named decoding step failed (e.g. a vendor frame too short); its
    /// fields are then absent. Absent when the step ran or there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_error: Option<String>,
    /// Named values the driver took from the records and vendor bytes.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// An application error (CI 0x70) or alarm (CI 0x71) report, named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// What the frame's checks noticed besides the reading: bytes after its end, an
    /// L-field rewritten on request. Absent when there is nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// The radios of the gateway that heard this telegram, best RSSI first (only when the
    /// daemon gathers copies: `[pipeline] gather_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Receiver>,
}

impl Reading {
    /// Appends the reading's JSON (what `serde_json::to_writer` prints) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// One radio that heard a telegram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receiver {
    /// The radio's device (as configured in `[[radio]] device`).
    pub radio: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<f32>,
}

/// A meter's application error or alarm report (EN 13757-3, CI 0x70 / 0x71).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `application_error` or `alarm`.
    pub kind: String,
    /// The code byte the meter sent.
    pub code: u8,
    /// What the code means.
    pub name: String,
}

/// Frame-level remarks of a reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Bytes that arrived after the frame's end as its L-field bounds it; not parsed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trailing_bytes: usize,
    /// Only with `wmbusd decode --lenient-length`: the L-field as received, when the
    /// frame was read whole past it (the reading then rests on an unchecked length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lenient_length: Option<u8>,
    /// Named remarks of the decoder, e.g. [`CLAIMED_MODE_PLAINTEXT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Cow<'static, str>>,
}

/// A wired frame whose configuration field claims security mode 5 or 7 was read as
/// plaintext: its encrypted-block count does not fit the frame, or no key is configured
/// and the data parses as well-formed records to its end.
pub const CLAIMED_MODE_PLAINTEXT: &str = "claimed_mode_plaintext";

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The tail of an APL that did not parse as records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unparsed {
    /// Offset of the first unread byte in the canonical frame.
    pub offset: usize,
    /// Why parsing stopped there.
    pub reason: String,
    pub hex: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    /// Eight BCD digits.
    pub id: String,
    /// Three-letter FLAG code.
    pub manufacturer: String,
    pub version: u8,
    /// snake_case device type.
    pub device_type: String,
    /// The configured `[[meter]] name`; set by the daemon, absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub byte: u8,
    pub flags: Vec<Cow<'static, str>>,
}

impl Status {
    /// Flags of a TPL status byte (protocol.md §3.3).
    pub fn from_byte(byte: u8) -> Status {
        let low = match byte & 0x03 {
            0x01 => Some("busy"),
            0x02 => Some("error"),
            0x03 => Some("alarm"),
            _ => None,
        };
        const BITS: [(u8, &str); 6] = [
            (0x04, "power_low"),
            (0x08, "permanent_error"),
            (0x10, "temporary_error"),
            (0x20, "manufacturer_bit5"),
            (0x40, "manufacturer_bit6"),
            (0x80, "manufacturer_bit7"),
        ];
        let bits = BITS.iter().filter(|(mask, _)| byte & mask != 0);
        let flags = low
            .into_iter()
            .chain(bits.map(|&(_, name)| name))
            .map(Cow::Borrowed)
            .collect();
        Status { byte, flags }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub mode: u8,
    pub decrypted: bool,
    /// `"2f2f"`, `"mac"`, `"ell_crc"` or null.
    pub verified_by: Option<String>,
    /// Which encryption was removed (see the schema); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Cow<'static, str>>,
}

/// Uppercase hex of `bytes`, as `hex::encode_upper` writes it.
pub fn upper_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(hex_digit(b >> 4));
        s.push(hex_digit(b & 0x0F));
    }
    s
}

/// The uppercase hex digit of the low four bits of `n`.
fn hex_digit(n: u8) -> char {
    let n = n & 0x0F;
    char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 })
}

/// `s` emptied, with room for `len` bytes: its own buffer when that is big enough,
/// else a new exact-size one (cheaper than growing through `reserve`).
pub(crate) fn empty_with_capacity(mut s: String, len: usize) -> String {
    if s.capacity() < len {
        return String::with_capacity(len);
    }
    s.clear();
    s
}

#[cfg(test)]
mod tests;
