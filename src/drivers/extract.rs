//! Applying a definition to a decoded reading: named fields out of records, vendor bytes
//! and a named step's output. Definitions are compiled once at load ([`Rules`]), so a
//! telegram costs record comparisons and byte reads, not text parsing. Fields whose
//! source is absent from this telegram are left out; a record present without a valid
//! value gives null.

use std::sync::Arc;

use super::model::{
    field_kind, BytesDef, Definition, Encoding, FieldDef, FieldKind, OneOrMany, Source,
};
use super::steps::{self, Step, StepError, StepInput};
use super::FrameContext;
use crate::reading::{Decimal, Function, Reading, Record, Value};
use crate::wire::apl;

/// A field taken from a generic record.
#[derive(Debug, Clone)]
struct RecordRule {
    name: Arc<str>,
    quantity: String,
    storage: OneOrMany<u64>,
    tariff: u32,
    subunit: u32,
    function: OneOrMany<Function>,
    qualifiers: Vec<String>,
    kind: FieldKind,
    /// Record unit → exact factor to the field's unit.
    factors: Vec<(&'static str, Decimal)>,
}

/// A field read from bytes.
#[derive(Debug, Clone)]
struct ByteRule {
    name: Arc<str>,
    source: Source,
    offset: usize,
    length: usize,
    encoding: Encoding,
    mask: Option<u64>,
    scale: Decimal,
}

#[derive(Debug, Clone)]
struct StepRule {
    step: &'static Step,
    source: Source,
}

/// A validated definition in the form applied per telegram.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// The driver's name, shared by every reading it fills.
    driver: Arc<str>,
    /// In name order, so the fields fill in order.
    records: Vec<RecordRule>,
    bytes: Vec<ByteRule>,
    /// Every field name once, in name order: its record rule and its byte rule (indices
    /// into `records` and `bytes`), so fields fill in order without sorting.
    order: Vec<(Option<usize>, Option<usize>)>,
    step: Option<StepRule>,
    /// Some byte rule or the step reads `manufacturer_data`.
    reads_vendor_bytes: bool,
}

impl Rules {
    /// Compiles a definition that passed [`Definition::validate`]; the error text is
    /// for a definition that did not.
    pub(super) fn compile(definition: &Definition) -> Result<Rules, String> {
        let records: Vec<RecordRule> = definition
            .fields
            .iter()
            .map(|(name, def)| record_rule(name, def.get_ref()))
            .collect::<Result<_, _>>()?;
        let bytes: Vec<ByteRule> = definition
            .bytes
            .iter()
            .map(|(name, def)| {
                let def: &BytesDef = def.get_ref();
                Ok(ByteRule {
                    name: Arc::from(name.as_str()),
                    source: def.parsed_source()?,
                    offset: def.offset,
                    length: def.length,
                    encoding: def.encoding,
                    mask: def.mask,
                    scale: def.parsed_scale()?,
                })
            })
            .collect::<Result<_, String>>()?;
        let step = match &definition.step {
            None => None,
            Some(def) => {
                let def = def.get_ref();
                Some(StepRule {
                    step: steps::lookup(&def.name)
                        .ok_or_else(|| format!("unknown step {:?}", def.name))?,
                    source: Source::parse(&def.source)?,
                })
            }
        };
        let reads_vendor_bytes = bytes.iter().any(|b| b.source == Source::ManufacturerData)
            || step
                .as_ref()
                .is_some_and(|s: &StepRule| s.source == Source::ManufacturerData);
        let mut names: Vec<&str> = definition
            .fields
            .keys()
            .chain(definition.bytes.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        let order = names
            .iter()
            .map(|name| {
                (
                    records.iter().position(|r: &RecordRule| &*r.name == *name),
                    bytes.iter().position(|b: &ByteRule| &*b.name == *name),
                )
            })
            .collect();
        Ok(Rules {
            driver: Arc::from(definition.name.as_str()),
            records,
            bytes,
            order,
            step,
            reads_vendor_bytes,
        })
    }

    /// Fills `reading.driver` and `reading.fields`. `frame` is what a step needs of the
    /// telegram; without it (readings rebuilt from JSON) step fields are left out.
    pub(super) fn apply(
        &self,
        reading: &mut Reading,
        frame: Option<&FrameContext<'_>>,
    ) -> Result<(), StepError> {
        let Reading {
            records,
            fields,
            manufacturer_data,
            driver,
            ..
        } = reading;
        fields.clear();
        // Decoded once per telegram, for the step and the fields alike, and only for
        // definitions reading it; on the stack unless unusually long.
        let mut vendor_stack = [0u8; 256];
        let mut vendor_heap = Vec::new();
        let vendor = match (self.reads_vendor_bytes, manufacturer_data.as_deref()) {
            (true, Some(hex)) => unhex(hex, &mut vendor_stack, &mut vendor_heap),
            _ => None,
        };
        let (step_output, step_result) = match (&self.step, frame) {
            (Some(rule), Some(frame)) => match run_step(rule, vendor, records, frame) {
                Ok(out) => (out, Ok(())),
                Err(e) => (None, Err(e)),
            },
            _ => (None, Ok(())),
        };
        for &(record_rule, byte_rule) in &self.order {
            // A name defined both ways takes the record when the telegram has it.
            let record_rule = record_rule.and_then(|i| self.records.get(i));
            if let Some(rule) = record_rule {
                if let Some(value) = rule.extract(records) {
                    fields.push_sorted(rule.name.clone(), value);
                    continue;
                }
            }
            let Some(rule) = byte_rule.and_then(|i| self.bytes.get(i)) else {
                continue;
            };
            let mut record_stack = [0u8; 64];
            let mut record_heap = Vec::new();
            let source: &[u8] = match &rule.source {
                Source::ManufacturerData => match vendor {
                    Some(v) => v,
                    None => continue,
                },
                Source::Step => match &step_output {
                    Some(v) => v,
                    None => continue,
                },
                Source::Apl => match frame {
                    Some(f) => f.apl,
                    None => continue,
                },
                Source::Record(header) => {
                    match record_bytes(records, header, &mut record_stack, &mut record_heap) {
                        Some(b) => b,
                        None => continue,
                    }
                }
            };
            if let Some(value) = rule.extract(source) {
                fields.push_sorted(rule.name.clone(), value);
            }
        }
        *driver = Some(self.driver.clone());
        step_result
    }
}

/// `hex` decoded into `stack` when it fits, else into `heap`; `None` for invalid hex.
fn unhex<'a>(hex: &str, stack: &'a mut [u8], heap: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let len = hex.len() / 2;
    if let Some(out) = stack.get_mut(..len) {
        hex::decode_to_slice(hex, out).ok()?;
        return Some(out);
    }
    *heap = hex::decode(hex).ok()?;
    Some(heap)
}

impl Rules {
    /// For `--explain`: where each field of `reading` came from — the record that was
    /// selected, or the source bytes, encoding and scale.
    pub(super) fn sources(&self, reading: &Reading) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in reading.fields.keys() {
            let from_record = self
                .records
                .iter()
                .find(|r| *r.name == *name)
                .and_then(|rule| {
                    let record = reading.records.iter().find(|r| rule.selects(r))?;
                    Some(format!(
                        "record {} ({}, storage {})",
                        &*record.dif_vif, &*record.quantity, record.storage
                    ))
                });
            let from_bytes = || {
                let rule = self.bytes.iter().find(|b| *b.name == *name)?;
                let source = match &rule.source {
                    Source::ManufacturerData => "manufacturer data".to_owned(),
                    Source::Apl => "application layer".to_owned(),
                    Source::Record(h) => format!("record {h} data"),
                    Source::Step => match &self.step {
                        Some(step) => format!("step {} output", step.step.name),
                        None => "step output".to_owned(),
                    },
                };
                let scale = if rule.scale == Decimal::from_int(1) {
                    String::new()
                } else {
                    format!(" × {}", rule.scale)
                };
                Some(format!(
                    "{source} bytes {}..{} ({}{scale})",
                    rule.offset,
                    rule.offset + rule.length,
                    rule.encoding.name()
                ))
            };
            if let Some(text) = from_record.or_else(from_bytes) {
                out.push((name.to_owned(), text));
            }
        }
        out
    }
}

/// The data bytes of the first record with this (uppercase hex) header, unhexed into
/// `stack` (or `heap` when longer).
fn record_bytes<'a>(
    records: &[Record],
    header: &str,
    stack: &'a mut [u8],
    heap: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    let raw = records
        .iter()
        .find(|r| *r.dif_vif == *header)?
        .raw
        .as_deref()?;
    unhex(raw, stack, heap)
}

fn run_step(
    rule: &StepRule,
    vendor: Option<&[u8]>,
    records: &[Record],
    frame: &FrameContext<'_>,
) -> Result<Option<Vec<u8>>, StepError> {
    let mut record_stack = [0u8; 64];
    let mut record_heap = Vec::new();
    let data = match &rule.source {
        Source::ManufacturerData => vendor,
        Source::Record(header) => {
            record_bytes(records, header, &mut record_stack, &mut record_heap)
        }
        Source::Apl => Some(frame.apl),
        // Rejected when the definition was validated.
        Source::Step => None,
    };
    let Some(data) = data else {
        return Ok(None);
    };
    let input = StepInput {
        ci: frame.ci,
        link: frame.link,
        key: frame.key,
        data,
    };
    (rule.step.run)(&input).map(Some)
}

fn record_rule(name: &str, def: &FieldDef) -> Result<RecordRule, String> {
    let kind = field_kind(name).ok_or_else(|| format!("field name {name:?} has no suffix"))?;
    let factors = match kind {
        FieldKind::Unit { from, .. } => from
            .iter()
            .map(|(unit, factor)| {
                factor
                    .parse::<Decimal>()
                    .map(|f| (*unit, f))
                    .map_err(|_| format!("conversion factor {factor:?}"))
            })
            .collect::<Result<_, _>>()?,
        FieldKind::Date | FieldKind::Plain => Vec::new(),
    };
    Ok(RecordRule {
        name: Arc::from(name),
        quantity: def.quantity.clone(),
        storage: def.storage.clone(),
        tariff: def.tariff,
        subunit: def.subunit,
        function: def.function.clone(),
        qualifiers: def.qualifiers.clone(),
        kind,
        factors,
    })
}

impl RecordRule {
    fn selects(&self, r: &Record) -> bool {
        *r.quantity == *self.quantity
            && self.storage.contains(&r.storage)
            && r.tariff == self.tariff
            && r.subunit == self.subunit
            && self.function.contains(&r.function)
            && r.qualifiers.len() == self.qualifiers.len()
            && self
                .qualifiers
                .iter()
                .all(|q| r.qualifiers.iter().any(|rq| **rq == **q))
    }

    fn extract(&self, records: &[Record]) -> Option<Value> {
        let record = records.iter().find(|r| self.selects(r))?;
        let Value::Number(n) = &record.value else {
            // Dates and text pass as they are; so does null (the meter sent no valid value).
            return match self.kind {
                FieldKind::Unit { .. } => (record.value == Value::Null).then_some(Value::Null),
                FieldKind::Date | FieldKind::Plain => Some(record.value.clone()),
            };
        };
        match self.kind {
            FieldKind::Unit { .. } => {
                let unit = record.unit.as_deref()?;
                let (_, factor) = self.factors.iter().find(|(u, _)| *u == unit)?;
                n.checked_mul(*factor)
                    .map(|v| Value::Number(v.normalized()))
            }
            // A number named as a date is a record the definition got wrong: leave it out.
            FieldKind::Date => None,
            FieldKind::Plain => Some(Value::Number(*n)),
        }
    }
}

impl ByteRule {
    fn extract(&self, source: &[u8]) -> Option<Value> {
        let end = self.offset.checked_add(self.length)?;
        let field = source.get(self.offset..end)?;
        if let Some(value) = decode_date(field, self.encoding) {
            return Some(value);
        }
        let raw = decode_number(field, self.encoding, self.mask)?;
        raw.checked_mul(self.scale)
            .map(|v| Value::Number(v.normalized()))
    }
}

/// The date text (or null for a date the meter marks invalid) of a date encoding;
/// `None` for number encodings and wrong lengths.
fn decode_date(bytes: &[u8], encoding: Encoding) -> Option<Value> {
    let value = match encoding {
        Encoding::DateG => apl::type_g(bytes.try_into().ok()?),
        Encoding::DatetimeF => apl::type_f(bytes.try_into().ok()?),
        Encoding::IntLe | Encoding::UintLe | Encoding::Bcd | Encoding::Bits => return None,
    };
    Some(match value {
        apl::Value::Date(d) => Value::Text(d.to_string()),
        apl::Value::DateTime(dt) => Value::Text(dt.to_string()),
        _ => Value::Null,
    })
}

/// The number `bytes` (1 to 8, little endian) encode. `None` for invalid BCD digits and
/// date encodings.
pub(super) fn decode_number(
    bytes: &[u8],
    encoding: Encoding,
    mask: Option<u64>,
) -> Option<Decimal> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let unsigned = bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    match encoding {
        Encoding::UintLe => Some(Decimal::from(unsigned)),
        Encoding::IntLe => {
            let unused = 64 - 8 * u32::try_from(bytes.len()).ok()?;
            // Move the sign bit to bit 63, then shift back arithmetically.
            let signed = ((unsigned << unused) as i64) >> unused;
            Some(Decimal::from(signed))
        }
        Encoding::Bits => {
            let mask = mask?;
            Some(Decimal::from((unsigned & mask) >> mask.trailing_zeros()))
        }
        Encoding::DateG | Encoding::DatetimeF => None,
        Encoding::Bcd => {
            let mut value: i128 = 0;
            for &b in bytes.iter().rev() {
                for digit in [b >> 4, b & 0x0F] {
                    if digit > 9 {
                        return None;
                    }
                    value = value * 10 + i128::from(digit);
                }
            }
            Some(Decimal::from_int(value))
        }
    }
}
