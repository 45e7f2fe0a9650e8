//! The definition file model and its validation.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::reading::{Decimal, Function};
use crate::wire::compact::CompactFormat;

/// One driver definition file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Three-letter FLAG code, e.g. `KAM`.
    pub manufacturer: Spanned<String>,
    /// Version bytes this driver applies to; empty = any.
    #[serde(default)]
    pub versions: Vec<u8>,
    /// Device type bytes this driver applies to; empty = any.
    #[serde(default)]
    pub device_types: Vec<u8>,
    /// CI fields (the layer carrying the data) this driver applies to; empty = any.
    /// Lets one meter's proprietary frames (CI 0xA0..0xB7) and standard frames take
    /// different drivers.
    #[serde(default)]
    pub ci: Vec<u8>,
    /// A named decoding step whose output `bytes` fields read with `source = "step"`.
    #[serde(default)]
    pub step: Option<Spanned<StepDef>>,
    /// DIF/VIF lists (hex, spaces allowed) of the compact frames these models send.
    #[serde(default)]
    pub compact_formats: Vec<Spanned<String>>,
    /// Fields named after generic data records.
    #[serde(default)]
    pub fields: BTreeMap<String, Spanned<FieldDef>>,
    /// Fields read from manufacturer-specific bytes.
    #[serde(default)]
    pub bytes: BTreeMap<String, Spanned<BytesDef>>,
}

/// A field taken from the first record with this quantity, storage, tariff, subunit,
/// function and exactly these qualifiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub quantity: String,
    /// One storage number or a list (models of one driver file the same value under
    /// different storage numbers); the first record matching any of them wins.
    #[serde(default = "storage_zero")]
    pub storage: OneOrMany<u64>,
    #[serde(default)]
    pub tariff: u32,
    #[serde(default)]
    pub subunit: u32,
    #[serde(default = "instantaneous")]
    pub function: OneOrMany<Function>,
    #[serde(default)]
    pub qualifiers: Vec<String>,
    /// Only the record with this header (`dif_vif` as published, uppercase hex): for
    /// records told apart by manufacturer VIFEs alone (nemo's phases `05FDD9FF01`…).
    #[serde(default)]
    pub dif_vif: Option<String>,
}

/// The named decoding step of a definition and what it is given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// One of [`super::steps::STEPS`].
    pub name: String,
    /// `manufacturer_data` (the default), `record:<dif_vif hex>` or `apl`.
    #[serde(default = "manufacturer_data")]
    pub source: String,
}

fn manufacturer_data() -> String {
    "manufacturer_data".to_owned()
}

/// A value written either alone (`storage = 1`) or as a list (`storage = [1, 2]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    pub fn contains(&self, value: &T) -> bool {
        match self {
            OneOrMany::One(v) => v == value,
            OneOrMany::Many(list) => list.contains(value),
        }
    }
}

fn storage_zero() -> OneOrMany<u64> {
    OneOrMany::One(0)
}

fn instantaneous() -> OneOrMany<Function> {
    OneOrMany::One(Function::Instantaneous)
}

/// How manufacturer bytes encode a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Two's complement, little endian.
    IntLe,
    /// Unsigned, little endian.
    UintLe,
    /// Packed BCD, least significant byte first (as M-Bus sends it).
    Bcd,
    /// Unsigned little endian, masked with `mask` and shifted down to bit 0.
    Bits,
    /// EN 13757-3 type G date (2 bytes), for names ending `_date`.
    DateG,
    /// EN 13757-3 type F date and time (4 bytes), for names ending `_datetime`.
    DatetimeF,
}

impl Encoding {
    /// The name definitions use.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::IntLe => "int_le",
            Encoding::UintLe => "uint_le",
            Encoding::Bcd => "bcd",
            Encoding::Bits => "bits",
            Encoding::DateG => "date_g",
            Encoding::DatetimeF => "datetime_f",
        }
    }

    /// The byte length a date encoding has; `None` for numbers (1 to 8 bytes).
    pub fn date_len(self) -> Option<usize> {
        match self {
            Encoding::DateG => Some(2),
            Encoding::DatetimeF => Some(4),
            Encoding::IntLe | Encoding::UintLe | Encoding::Bcd | Encoding::Bits => None,
        }
    }
}

/// A field read from manufacturer-specific bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesDef {
    /// `manufacturer_data` (bytes after DIF 0x0F/0x1F; for a proprietary frame, CI 0xA0..0xB7,
    /// everything from that CI byte on, so offset 0 is the CI),
    /// `record:<dif_vif hex>` (the data of the record with that header) or `step` (the
    /// output of the definition's named step).
    pub source: String,
    pub offset: usize,
    pub length: usize,
    pub encoding: Encoding,
    /// For `bits`: which bits of the little-endian integer make the value.
    #[serde(default)]
    pub mask: Option<u64>,
    /// Decimal text the raw number is multiplied by, e.g. `"0.001"`.
    #[serde(default)]
    pub scale: Option<String>,
    /// The unit the name's suffix stands for, as a cross-check (`m3`, `kWh`, `C`, ...).
    #[serde(default)]
    pub unit: Option<String>,
}

/// Where manufacturer bytes are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    ManufacturerData,
    /// The record whose `dif_vif` is this uppercase hex.
    Record(String),
    /// The output of the definition's step.
    Step,
    /// The whole application layer after the TPL header (payloads that are not records).
    Apl,
}

impl Source {
    /// Parses `manufacturer_data`, `record:<dif_vif hex>` or `step`.
    pub fn parse(text: &str) -> Result<Source, String> {
        match text {
            "manufacturer_data" => return Ok(Source::ManufacturerData),
            "step" => return Ok(Source::Step),
            "apl" => return Ok(Source::Apl),
            _ => {}
        }
        let Some(header) = text.strip_prefix("record:") else {
            return Err(format!(
                "source {text:?}: expected \"manufacturer_data\", \"record:<dif_vif hex>\", \"apl\" or \"step\""
            ));
        };
        match hex::decode(header) {
            Ok(bytes) if !bytes.is_empty() => Ok(Source::Record(hex::encode_upper(bytes))),
            _ => Err(format!("source {text:?}: DIF/VIF is not hex")),
        }
    }
}

impl BytesDef {
    pub fn parsed_source(&self) -> Result<Source, String> {
        Source::parse(&self.source)
    }

    pub fn parsed_scale(&self) -> Result<Decimal, String> {
        match &self.scale {
            None => Ok(Decimal::from_int(1)),
            Some(s) => s
                .parse()
                .map_err(|_| format!("scale {s:?} is not a decimal number like \"0.001\"")),
        }
    }
}

/// Record units a field unit is converted from, with the exact factor as decimal text.
type Conversions = &'static [(&'static str, &'static str)];

/// What a field name's suffix says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A number in this reading unit, converted from the listed record units by exact
    /// factors (record value × factor).
    Unit {
        unit: &'static str,
        from: Conversions,
    },
    /// An ISO date, date-time or time (text).
    Date,
    /// A number or text without unit: flags, status bits, counters, versions.
    Plain,
}

/// Unit suffixes of field names (the names users of existing open tools know), the reading
/// unit each stands for, and the record units converted to it exactly.
const UNIT_SUFFIXES: &[(&str, &str, Conversions)] = &[
    ("_m3", "m3", &[("m3", "1")]),
    ("_kwh", "kWh", &[("kWh", "1")]),
    ("_mwh", "MWh", &[("kWh", "0.001")]),
    ("_mj", "MJ", &[("MJ", "1")]),
    ("_gj", "GJ", &[("MJ", "0.001")]),
    (
        "_m3h",
        "m3/h",
        &[("m3/h", "1"), ("m3/min", "60"), ("m3/s", "3600")],
    ),
    ("_kw", "kW", &[("kW", "1")]),
    ("_hca", "hca", &[("hca", "1")]),
    ("_c", "C", &[("C", "1"), ("K", "1")]),
    ("_k", "K", &[("K", "1")]),
    ("_bar", "bar", &[("bar", "1")]),
    ("_kg", "kg", &[("kg", "1")]),
    // Units outside the reading vocabulary: from vendor bytes and steps only.
    ("_m3c", "m3C", &[]),
    ("_kvarh", "kvarh", &[]),
    ("_kvah", "kVAh", &[]),
    ("_hz", "Hz", &[]),
    ("_rh", "%RH", &[]),
    ("_ppm", "ppm", &[]),
    ("_v", "V", &[("V", "1")]),
    ("_a", "A", &[("A", "1")]),
    ("_h", "h", &[("h", "1"), ("d", "24")]),
    ("_d", "d", &[("d", "1")]),
    // Years come from vendor bytes or steps only: days to years is not an exact factor.
    ("_y", "y", &[]),
    ("_min", "min", &[("min", "1"), ("h", "60"), ("d", "1440")]),
    (
        "_s",
        "s",
        &[("s", "1"), ("min", "60"), ("h", "3600"), ("d", "86400")],
    ),
];

const DATE_SUFFIXES: &[&str] = &["_date", "_datetime", "_time"];
const PLAIN_SUFFIXES: &[&str] = &["_flags", "_status", "_counter", "_version", "_text", "_nr"];

/// The kind of a field name, or `None` when its suffix is not one of the known ones.
pub fn field_kind(name: &str) -> Option<FieldKind> {
    // `_m3h` before `_h`, `_kwh` before `_h`: the longest suffix wins.
    // Runs for every field of every decoded telegram: the last-byte test skips most
    // suffixes before the full comparison (a `memcmp` call).
    let last = name.as_bytes().last();
    let unit = UNIT_SUFFIXES
        .iter()
        .filter(|(suffix, _, _)| {
            suffix.as_bytes().last() == last && name.len() > suffix.len() && name.ends_with(suffix)
        })
        .max_by_key(|(suffix, _, _)| suffix.len());
    if let Some(&(_, unit, from)) = unit {
        return Some(FieldKind::Unit { unit, from });
    }
    // Dates and plain values may carry a storage index after the suffix (`set_date_17`).
    let base = match name.rsplit_once('_') {
        Some((base, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    };
    let has = |list: &[&str]| {
        list.iter()
            .any(|s| base.len() > s.len() && base.ends_with(s))
    };
    if has(DATE_SUFFIXES) {
        Some(FieldKind::Date)
    } else if has(PLAIN_SUFFIXES) {
        Some(FieldKind::Plain)
    } else {
        None
    }
}

fn known_suffixes() -> String {
    let mut all: Vec<&str> = UNIT_SUFFIXES.iter().map(|(s, _, _)| *s).collect();
    all.extend(DATE_SUFFIXES);
    all.extend(PLAIN_SUFFIXES);
    all.join(" ")
}

fn check_name(name: &str) -> Result<FieldKind, String> {
    if name.len() > 64 {
        return Err(format!("field name {name:?} is longer than 64 characters"));
    }
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b.is_ascii_digit() || b == b'_' || b == b'-');
    // `-` too: some reference names have it (c5isf_t1a1 `month-2_date`).
    if !valid {
        return Err(format!("field name {name:?}: use letters, digits, _ and -"));
    }
    field_kind(name).ok_or_else(|| {
        format!(
            "field name {name:?} does not end in a unit, date or plain suffix (one of: {})",
            known_suffixes()
        )
    })
}

impl Definition {
    /// Checks what serde cannot: names, suffixes, sources, lengths, scales.
    pub(super) fn validate(&self) -> Result<(), (Range<usize>, String)> {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_name {
            return Err((
                0..0,
                format!(
                    "driver name {:?}: use lowercase letters, digits, - and _",
                    self.name
                ),
            ));
        }
        for (name, def) in &self.fields {
            check_name(name).map_err(|reason| (def.span(), reason))?;
        }
        if let Some(step) = &self.step {
            check_step(step.get_ref()).map_err(|reason| (step.span(), reason))?;
        }
        for (name, def) in &self.bytes {
            let span = def.span();
            let kind = check_name(name).map_err(|reason| (span.clone(), reason))?;
            def.get_ref()
                .check(kind, self.step.is_some())
                .map_err(|reason| (span, format!("{name}: {reason}")))?;
        }
        Ok(())
    }
}

/// A step that exists, reading something other than its own output.
fn check_step(def: &StepDef) -> Result<(), String> {
    if super::steps::lookup(&def.name).is_none() {
        return Err(format!(
            "unknown step {:?} (known steps: {})",
            def.name,
            super::steps::names()
        ));
    }
    match Source::parse(&def.source) {
        Ok(Source::Step) => Err("a step cannot read its own output".into()),
        Ok(_) => Ok(()),
        Err(reason) => Err(format!("step: {reason}")),
    }
}

impl BytesDef {
    /// Checks a byte rule for a field of `kind`; the reason without the field's name.
    fn check(&self, kind: FieldKind, has_step: bool) -> Result<(), String> {
        if self.parsed_source()? == Source::Step && !has_step {
            return Err("source \"step\" needs a [step] section naming one".into());
        }
        self.parsed_scale()?;
        self.check_length(kind)?;
        match (self.encoding, self.mask) {
            (Encoding::Bits, None) | (Encoding::Bits, Some(0)) => {
                return Err("encoding \"bits\" needs a mask".into());
            }
            (Encoding::Bits, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err("mask only applies to encoding \"bits\"".into()),
        }
        match (kind, &self.unit) {
            (FieldKind::Unit { unit, .. }, Some(u)) if u != unit => Err(format!(
                "unit {u:?} contradicts the name, which says {unit:?}"
            )),
            (FieldKind::Plain, Some(u)) => {
                Err(format!("unit {u:?} given but the name has no unit suffix"))
            }
            _ => Ok(()),
        }
    }

    /// The length and encoding agree, and dates are named and encoded as dates.
    fn check_length(&self, kind: FieldKind) -> Result<(), String> {
        match self.encoding.date_len() {
            Some(len) if self.length != len => {
                Err(format!("this date encoding is {len} bytes long"))
            }
            Some(_) if kind != FieldKind::Date => {
                Err("a date encoding needs a name ending _date or _datetime".into())
            }
            Some(_) if self.scale.is_some() || self.unit.is_some() => {
                Err("dates take no scale or unit".into())
            }
            Some(_) => Ok(()),
            None if self.length == 0 || self.length > 8 => {
                Err(format!("length {} (1 to 8 bytes)", self.length))
            }
            None if kind == FieldKind::Date => {
                Err("a date needs encoding \"date_g\" or \"datetime_f\"".into())
            }
            None => Ok(()),
        }
    }
}

/// A compact format from its DIF/VIF list written as hex with optional spaces.
pub(super) fn compact_format(text: &str) -> Result<CompactFormat, String> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes =
        hex::decode(&digits).map_err(|e| format!("compact format {text:?}: not hex ({e})"))?;
    let format =
        CompactFormat::from_headers(&bytes).map_err(|e| format!("compact format {text:?}: {e}"))?;
    if format.records.is_empty() {
        return Err(format!("compact format {text:?} lists no records"));
    }
    Ok(format)
}
