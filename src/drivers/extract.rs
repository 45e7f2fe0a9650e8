//! Applying a definition to a decoded reading: named fields out of records, vendor bytes
//! and a named step's output. Definitions are compiled once at load ([`Rules`]), so a
//! telegram costs record comparisons and byte reads, not text parsing. Fields whose
//! source is absent from this telegram are left out; a record present without a valid
//! value gives null.

use std::sync::Arc;

use super::model::{
    field_kind, BytesDef, Definition, Encoding, FieldDef, FieldKind, OneOrMany, Source, StepDef,
};
use super::pick::{Factor, FieldPick};
use super::steps::{self, Step, StepError, StepInput};
use super::FrameContext;
use crate::frame::hex_nibble;
use crate::reading::{Decimal, FieldNames, Fill, Function, Reading, Record, Value};
use crate::wire::apl::{self, DataRecord};

/// A field taken from a generic record.
#[derive(Debug, Clone)]
struct RecordRule {
    name: String,
    quantity: String,
    storage: OneOrMany<u64>,
    tariff: u32,
    subunit: u32,
    function: OneOrMany<Function>,
    qualifiers: Vec<String>,
    /// The record's exact header, when the definition names one (uppercase hex).
    dif_vif: Option<String>,
    kind: FieldKind,
    /// Record unit → exact factor to the field's unit; `None` for a factor of one,
    /// where the record's value is taken as it is, without arithmetic.
    factors: Vec<(&'static str, Option<Decimal>)>,
}

/// A field read from bytes.
#[derive(Debug, Clone)]
struct ByteRule {
    name: String,
    input: Input,
    offset: usize,
    length: usize,
    encoding: Encoding,
    mask: Option<u64>,
    /// `None` for a scale of one: the number as decoded, without arithmetic.
    scale: Option<Decimal>,
}

/// Where a byte rule reads: [`Source`] with a record named by its index in
/// `Rules::record_headers`, so that rules reading the same record share its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    ManufacturerData,
    Step,
    Apl,
    Record(usize),
}

/// How one field name is filled.
#[derive(Debug, Clone)]
struct FieldRules {
    record: Option<RecordRule>,
    bytes: Option<ByteRule>,
}

impl FieldRules {
    /// Which record of `records` the field takes, and how.
    fn pick(&self, records: &[Record]) -> FieldPick {
        let selected = self.record.as_ref().and_then(|rule| {
            let at = records.iter().position(|r| rule.selects(r))?;
            Some((rule, u32::try_from(at).ok()?, records.get(at)?))
        });
        match selected {
            Some((rule, record, r)) => FieldPick::Record {
                record,
                factor: rule.factor(r),
            },
            None if self.bytes.is_none() => FieldPick::Absent,
            None => FieldPick::Bytes,
        }
    }
}
/// The named step and where its input comes from.
#[derive(Debug, Clone)]
struct StepRule {
    step: &'static Step,
    input: Input,
}

/// A record header byte rules or the step read: as text, the way the reading's records
/// show it, and as the bytes a frame's records carry.
#[derive(Debug, Clone)]
struct RecordHeader {
    text: String,
    bytes: Box<[u8]>,
}

impl RecordHeader {
    /// `text` is uppercase hex made by [`Source::parse`] from bytes, so it decodes.
    fn new(text: String) -> RecordHeader {
        let bytes = hex::decode(&text).unwrap_or_default().into();
        RecordHeader { text, bytes }
    }
}

/// A validated definition in the form applied per telegram.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// The driver's name, shared by every reading it fills.
    driver: Arc<str>,
    /// Every field name once, in name order, shared by every reading it fills.
    names: FieldNames,
    /// Per name of `names`, in that order: its record rule and its byte rule.
    fields: Vec<FieldRules>,
    /// The distinct record headers byte rules and the step read (`Input::Record`).
    record_headers: Vec<RecordHeader>,
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
        let mut record_headers = Vec::new();
        let bytes: Vec<ByteRule> = definition
            .bytes
            .iter()
            .map(|(name, def)| byte_rule(name, def.get_ref(), &mut record_headers))
            .collect::<Result<_, String>>()?;
        let step = match &definition.step {
            None => None,
            Some(def) => Some(step_rule(def.get_ref(), &mut record_headers)?),
        };
        let reads_vendor_bytes = bytes.iter().any(|b| b.input == Input::ManufacturerData)
            || step
                .as_ref()
                .is_some_and(|s| s.input == Input::ManufacturerData);
        let names = FieldNames::new(
            definition
                .fields
                .keys()
                .chain(definition.bytes.keys())
                .map(String::as_str),
        );
        let fields = names
            .iter()
            .map(|name| FieldRules {
                record: records.iter().find(|r| r.name == name).cloned(),
                bytes: bytes.iter().find(|b| b.name == name).cloned(),
            })
            .collect();
        Ok(Rules {
            driver: Arc::from(definition.name.as_str()),
            names,
            fields,
            record_headers,
            step,
            reads_vendor_bytes,
        })
    }

    pub(super) fn has_step(&self) -> bool {
        self.step.is_some()
    }

    /// Fills `reading.driver` and `reading.fields`. `frame` is what the driver reads
    /// of the telegram beyond the reading: the step's inputs, and the vendor bytes and
    /// record data as bytes. Without it (readings rebuilt from JSON) step fields are
    /// left out and bytes are read from the reading's hex texts.
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
        let records: &[Record] = records;
        // A reading without its frame has its vendor bytes as hex only; decoded once,
        // and only for definitions reading them.
        let mut vendor_text = Vec::new();
        let vendor = match (frame, manufacturer_data.as_deref()) {
            (Some(frame), _) => frame.manufacturer_data,
            (None, Some(hex)) if self.reads_vendor_bytes => unhex(hex, &mut [], &mut vendor_text),
            (None, _) => None,
        };
        let mut sources = Sources {
            records,
            vendor,
            step_output: None,
            apl: frame.map(|f| f.apl),
            record_data: RecordData::new(frame.map(|f| f.records)),
        };
        let step_result = match (&self.step, frame) {
            (Some(rule), Some(frame)) => self.run_step(rule, frame, &mut sources),
            _ => Ok(()),
        };
        fields.refill(&self.names, |i, slot| self.fill(i, slot, &mut sources));
        *driver = Some(self.driver.clone());
        step_result
    }

    /// Runs the step on its input, keeping its output in `sources` for the byte rules
    /// reading it. No input in this telegram: no output, and no error.
    fn run_step(
        &self,
        rule: &StepRule,
        frame: &FrameContext<'_>,
        sources: &mut Sources<'_>,
    ) -> Result<(), StepError> {
        let Some(data) = sources.input(rule.input, &self.record_headers) else {
            return Ok(());
        };
        let input = StepInput {
            ci: frame.ci,
            link: &frame.link,
            key: frame.key,
            data,
        };
        let output = (rule.step.run)(&input)?;
        sources.step_output = Some(output);
        Ok(())
    }

    /// Fills the slot of field `i` from `sources`.
    fn fill(&self, i: usize, slot: &mut Value, sources: &mut Sources<'_>) -> Fill {
        let Some(rules) = self.fields.get(i) else {
            return Fill::Absent;
        };
        let records = sources.records;
        let pick = rules.pick(records);
        // A name defined both ways takes the record when the telegram has it.
        if let (FieldPick::Record { record, factor }, Some(rule)) = (pick, &rules.record) {
            // Widening: a `u32` index always fits a `usize` here.
            let at = record as usize;
            match records.get(at).map(|r| rule.take(r, factor, slot)) {
                None | Some(Fill::Absent) => {}
                Some(filled) => return filled,
            }
        }
        let Some(rule) = rules.bytes.as_ref().filter(|_| pick != FieldPick::Absent) else {
            return Fill::Absent;
        };
        match sources
            .input(rule.input, &self.record_headers)
            .and_then(|source| rule.extract(source))
        {
            Some(value) => {
                *slot = value;
                Fill::Value
            }
            None => Fill::Absent,
        }
    }
}

/// What the fields of one telegram are filled from.
struct Sources<'a> {
    records: &'a [Record],
    /// The manufacturer data as bytes, when the definition reads them.
    vendor: Option<&'a [u8]>,
    step_output: Option<Vec<u8>>,
    apl: Option<&'a [u8]>,
    record_data: RecordData<'a>,
}

impl Sources<'_> {
    /// The bytes `input` names in this telegram, if it has them.
    fn input(&mut self, input: Input, headers: &[RecordHeader]) -> Option<&[u8]> {
        match input {
            Input::ManufacturerData => self.vendor,
            Input::Step => self.step_output.as_deref(),
            Input::Apl => self.apl,
            Input::Record(at) => {
                let first = first_with_header(self.records, &headers.get(at)?.text);
                let record = first.and_then(|k| self.records.get(k));
                self.record_data.get(at, headers.get(at)?, record)
            }
        }
    }
}

/// The data of the records byte rules and the step read. From the frame's records
/// when the reading comes with its frame; else unhexed from the reading's texts, once
/// for all the rules reading the same record (a driver usually takes several fields
/// from one vendor record, and rules run in name order, so the record last unhexed is
/// kept).
struct RecordData<'a> {
    /// The frame's records as parsed, in transmission order.
    wire: Option<&'a [DataRecord<'a>]>,
    /// Which `Rules::record_headers` entry the buffers hold, and the length of its
    /// data (`None`: the telegram has no such record, or its hex is invalid).
    held: Option<(usize, Option<usize>)>,
    stack: [u8; 64],
    heap: Vec<u8>,
}

impl<'a> RecordData<'a> {
    fn new(wire: Option<&'a [DataRecord<'a>]>) -> RecordData<'a> {
        RecordData {
            wire,
            held: None,
            stack: [0; 64],
            heap: Vec::new(),
        }
    }

    /// The data of `record`, the reading's first record with `header`
    /// (`Rules::record_headers[slot]`). Only records whose data the reading keeps
    /// (`raw`: vendor records, records in error) are read, with the frame or without.
    fn get(
        &mut self,
        slot: usize,
        header: &RecordHeader,
        record: Option<&Record>,
    ) -> Option<&[u8]> {
        let raw = record?.raw.as_deref()?;
        if let Some(wire) = self.wire {
            // The reading's records are the frame's in order (expanded profile
            // records added after theirs carry other headers): the first with the
            // header is the same record.
            return wire
                .iter()
                .find(|r| *r.header == *header.bytes)
                .map(|r| r.data);
        }
        let len = match self.held {
            Some((held, len)) if held == slot => len,
            _ => {
                let len = unhex(raw, &mut self.stack, &mut self.heap).map(<[u8]>::len);
                self.held = Some((slot, len));
                len
            }
        };
        // `unhex` used the stack buffer when the data fit it, else the heap buffer.
        let len = len?;
        match self.stack.get(..len) {
            Some(data) => Some(data),
            None => Some(&self.heap),
        }
    }
}

/// `hex` decoded into `stack` when it fits, else into `heap`; `None` for invalid hex.
fn unhex<'a>(hex: &str, stack: &'a mut [u8], heap: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let len = hex.len() / 2;
    let out = match stack.get_mut(..len) {
        Some(out) => out,
        None => {
            heap.clear();
            heap.resize(len, 0);
            heap
        }
    };
    decode_hex(hex.as_bytes(), out)?;
    Some(out)
}

/// Decodes `hex` (either case) into `out`, which is half as long.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != 2 * out.len() {
        return None;
    }
    for (pair, byte) in hex.chunks_exact(2).zip(out) {
        let &[high, low] = pair else {
            return None;
        };
        *byte = hex_nibble(high)? << 4 | hex_nibble(low)?;
    }
    Some(())
}

/// The byte rule named `name`, its record source added to `headers`.
fn byte_rule(
    name: &str,
    def: &BytesDef,
    headers: &mut Vec<RecordHeader>,
) -> Result<ByteRule, String> {
    let input = input_of(def.parsed_source()?, headers);
    let scale = def.parsed_scale()?;
    Ok(ByteRule {
        name: name.to_owned(),
        input,
        offset: def.offset,
        length: def.length,
        encoding: def.encoding,
        mask: def.mask,
        scale: (scale != Decimal::from_int(1)).then_some(scale),
    })
}

/// The step rule of `def`, its record source added to `headers`.
fn step_rule(def: &StepDef, headers: &mut Vec<RecordHeader>) -> Result<StepRule, String> {
    Ok(StepRule {
        step: steps::lookup(&def.name).ok_or_else(|| format!("unknown step {:?}", def.name))?,
        input: input_of(Source::parse(&def.source)?, headers),
    })
}

/// `source` as an [`Input`]; a record header becomes its index in `headers`, added
/// when new.
fn input_of(source: Source, headers: &mut Vec<RecordHeader>) -> Input {
    match source {
        Source::ManufacturerData => Input::ManufacturerData,
        Source::Step => Input::Step,
        Source::Apl => Input::Apl,
        Source::Record(header) => match headers.iter().position(|h| h.text == header) {
            Some(i) => Input::Record(i),
            None => {
                headers.push(RecordHeader::new(header));
                Input::Record(headers.len() - 1)
            }
        },
    }
}

impl Rules {
    /// For `--explain`: where each field of `reading` came from — the record that was
    /// selected, or the source bytes, encoding and scale.
    pub(super) fn sources(&self, reading: &Reading) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for name in reading.fields.keys() {
            let rules = self
                .names
                .iter()
                .zip(&self.fields)
                .find_map(|(n, rules)| (n == name).then_some(rules));
            let from_record = rules
                .and_then(|rules| rules.record.as_ref())
                .and_then(|rule| {
                    let record = reading.records.iter().find(|r| rule.selects(r))?;
                    Some(format!(
                        "record {} ({}, storage {})",
                        &*record.dif_vif, &*record.quantity, record.storage
                    ))
                });
            let from_bytes = || {
                let rule = rules?.bytes.as_ref()?;
                let source = match rule.input {
                    Input::ManufacturerData => "manufacturer data".to_owned(),
                    Input::Apl => "application layer".to_owned(),
                    Input::Record(slot) => {
                        format!("record {} data", self.record_headers.get(slot)?.text)
                    }
                    Input::Step => match &self.step {
                        Some(step) => format!("step {} output", step.step.name),
                        None => "step output".to_owned(),
                    },
                };
                let scale = match rule.scale {
                    Some(scale) => format!(" × {scale}"),
                    None => String::new(),
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

/// The index of the first record with this (uppercase hex) header.
fn first_with_header(records: &[Record], header: &str) -> Option<usize> {
    records.iter().position(|r| *r.dif_vif == *header)
}

fn record_rule(name: &str, def: &FieldDef) -> Result<RecordRule, String> {
    let kind = field_kind(name).ok_or_else(|| format!("field name {name:?} has no suffix"))?;
    let factors = match kind {
        FieldKind::Unit { from, .. } => from
            .iter()
            .map(|(unit, factor)| {
                factor
                    .parse::<Decimal>()
                    .map(|f| (*unit, (f != Decimal::from_int(1)).then_some(f)))
                    .map_err(|_| format!("conversion factor {factor:?}"))
            })
            .collect::<Result<_, _>>()?,
        FieldKind::Date | FieldKind::Plain => Vec::new(),
    };
    Ok(RecordRule {
        name: name.to_owned(),
        quantity: def.quantity.clone(),
        storage: def.storage.clone(),
        tariff: def.tariff,
        subunit: def.subunit,
        function: def.function.clone(),
        qualifiers: def.qualifiers.clone(),
        dif_vif: def.dif_vif.as_deref().map(str::to_ascii_uppercase),
        kind,
        factors,
    })
}

impl RecordRule {
    /// Cheapest and most selective first: most records of a telegram share storage,
    /// tariff, subunit and function, and differ in quantity, whose length alone tells
    /// most apart.
    fn selects(&self, r: &Record) -> bool {
        r.quantity.len() == self.quantity.len()
            && r.tariff == self.tariff
            && r.subunit == self.subunit
            && self.storage.contains(&r.storage)
            && self.function.contains(&r.function)
            && r.qualifiers.len() == self.qualifiers.len()
            && same_text(&r.quantity, &self.quantity)
            && self
                .qualifiers
                .iter()
                .all(|q| r.qualifiers.iter().any(|rq| **rq == **q))
            && match &self.dif_vif {
                Some(header) => *r.dif_vif == **header,
                None => true,
            }
    }

    /// The conversion factor for `record`'s unit.
    fn factor(&self, record: &Record) -> Factor {
        let Some(unit) = record.unit.as_deref() else {
            // No unit: text values (which unit fields skip), or nothing to convert.
            return Factor::Unknown;
        };
        match self.factors.iter().position(|(u, _)| same_text(u, unit)) {
            Some(at) => u8::try_from(at).map_or(Factor::Unknown, Factor::At),
            None => Factor::Missing,
        }
    }

    /// Writes the field's value from `record`, the first this rule selects, into
    /// `slot`. `factor` is [`RecordRule::factor`] of
    /// the record.
    fn take(&self, record: &Record, factor: Factor, slot: &mut Value) -> Fill {
        let n = match (&record.value, self.kind) {
            (Value::Number(n), _) => n,
            // The meter sent no valid value.
            (Value::Null, _) => {
                *slot = Value::Null;
                return Fill::Value;
            }
            // Dates and text pass as they are, into the slot's text buffer.
            (Value::Text(text), FieldKind::Date | FieldKind::Plain) => {
                match slot {
                    Value::Text(buffer) => buffer.clone_from(text),
                    _ => *slot = Value::Text(text.clone()),
                }
                return Fill::Value;
            }
            (Value::Text(_), FieldKind::Unit { .. }) => return Fill::Absent,
        };
        let value = match self.kind {
            // A unit outside the reading vocabulary (`_rh`, `_kvarh`, ..): the record
            // has no unit, its quantity names it, and the number is taken as sent.
            FieldKind::Unit { .. } if self.factors.is_empty() && record.unit.is_none() => Some(*n),
            FieldKind::Unit { .. } => {
                let factor = match factor {
                    Factor::At(at) => self.factors.get(usize::from(at)),
                    Factor::Missing | Factor::Unknown => None,
                };
                match factor {
                    Some((_, None)) => Some(*n),
                    Some((_, Some(factor))) => {
                        return match n.checked_mul(*factor) {
                            Some(v) => {
                                *slot = Value::Number(v.normalized());
                                Fill::Value
                            }
                            None => Fill::Absent,
                        };
                    }
                    None => None,
                }
            }
            // A number named as a date is a record the definition got wrong: leave it out.
            FieldKind::Date => None,
            FieldKind::Plain => Some(*n),
        };
        match value {
            // The record's number as it is.
            Some(v) => {
                *slot = Value::Number(v);
                Fill::Value
            }
            None => Fill::Absent,
        }
    }
}

/// `a == b` for the short quantity, unit and header texts compared per record and
/// rule: two overlapping word compares instead of a `memcmp` call or a byte loop, which
/// cost more than the compare itself.
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    // The first and the last N bytes cover texts of N to 2N bytes.
    fn ends<const N: usize>(s: &[u8]) -> Option<([u8; N], [u8; N])> {
        Some((*s.first_chunk::<N>()?, *s.last_chunk::<N>()?))
    }
    match a.len() {
        0 => true,
        1 => a.first() == b.first(),
        2..=3 => ends::<2>(a) == ends::<2>(b),
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=16 => ends::<8>(a) == ends::<8>(b),
        _ => a == b,
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
        match self.scale {
            Some(scale) => raw
                .checked_mul(scale)
                .map(|v| Value::Number(v.normalized())),
            None => Some(Value::Number(raw)),
        }
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

#[cfg(test)]
mod tests {
    use super::{same_text, unhex};

    #[test]
    fn unhex_agrees_with_the_hex_crate() {
        for text in [
            "",
            "0",
            "00",
            "0aF9",
            "0AF",
            "0g",
            "Zz",
            "ffEE0011223344556677",
        ] {
            for stack_len in [0, 4, 64] {
                let mut stack = vec![0u8; stack_len];
                let mut heap = Vec::new();
                let ours = unhex(text, &mut stack, &mut heap).map(<[u8]>::to_vec);
                assert_eq!(ours, hex::decode(text).ok(), "{text:?} {stack_len}");
            }
        }
    }

    #[test]
    fn same_text_agrees_with_string_equality() {
        let words = [
            "",
            "C",
            "K",
            "m3",
            "hca",
            "volume",
            "datetime",
            "datetimf",
            "on_time_",
            "flow_temperature",
            "flow_temperaturf",
            "glow_temperature",
            "external_temperature",
            "external_temperaturf",
            "m3/h",
            "m3/min",
            "0413",
            "4413",
            "0414",
            "02FF20",
            "02FF21",
            "8401FD17",
            "8401FD18",
            "AB",
            "AC",
            "BB",
            "ABC",
            "ABD",
            "BBC",
            "0123456789ABCDEF0",
            "0123456789ABCDEF1",
        ];
        for a in words {
            for b in words {
                assert_eq!(same_text(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
