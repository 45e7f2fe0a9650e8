//! Applying a definition to a decoded reading: named fields out of records and vendor
//! bytes. Fields whose source is absent from this telegram are left out; a record
//! present without a valid value gives null.

use std::collections::BTreeMap;

use super::model::{field_kind, BytesDef, Definition, Encoding, FieldDef, FieldKind};
use crate::reading::{Decimal, Reading, Record, Value};
use crate::wire::apl;

pub(super) fn apply(definition: &Definition, reading: &mut Reading) {
    let mut fields = BTreeMap::new();
    for (name, def) in &definition.fields {
        if let Some(value) = from_records(name, def.get_ref(), &reading.records) {
            fields.insert(name.clone(), value);
        }
    }
    // A name defined both ways takes the record when the telegram has it (full frames)
    // and the vendor bytes otherwise (frames carrying the values in a proprietary block).
    for (name, def) in &definition.bytes {
        if fields.contains_key(name) {
            continue;
        }
        if let Some(value) = from_bytes(def.get_ref(), reading) {
            fields.insert(name.clone(), value);
        }
    }
    reading.driver = Some(definition.name.clone());
    reading.fields = fields;
}

fn selects(def: &FieldDef, r: &Record) -> bool {
    r.quantity == def.quantity
        && def.storage.contains(&r.storage)
        && r.tariff == def.tariff
        && r.subunit == def.subunit
        && def.function.contains(&r.function)
        && r.qualifiers.len() == def.qualifiers.len()
        && def
            .qualifiers
            .iter()
            .all(|q| r.qualifiers.iter().any(|rq| rq == q))
}

fn from_records(name: &str, def: &FieldDef, records: &[Record]) -> Option<Value> {
    let record = records.iter().find(|r| selects(def, r))?;
    let Value::Number(n) = &record.value else {
        // Dates and text pass as they are; so does null (the meter sent no valid value).
        return match field_kind(name)? {
            FieldKind::Unit { .. } => (record.value == Value::Null).then_some(Value::Null),
            FieldKind::Date | FieldKind::Plain => Some(record.value.clone()),
        };
    };
    match field_kind(name)? {
        FieldKind::Unit { from, .. } => {
            let unit = record.unit.as_deref()?;
            let (_, factor) = from.iter().find(|(u, _)| *u == unit)?;
            let factor: Decimal = factor.parse().ok()?;
            n.checked_mul(factor).map(|v| Value::Number(v.normalized()))
        }
        // A number named as a date is a record the definition got wrong: leave it out.
        FieldKind::Date => None,
        FieldKind::Plain => Some(Value::Number(*n)),
    }
}

fn from_bytes(def: &BytesDef, reading: &Reading) -> Option<Value> {
    let source_hex = match def.source.as_str() {
        "manufacturer_data" => reading.manufacturer_data.as_deref()?,
        source => {
            // What `BytesDef::parsed_source` accepts, without its two allocations per
            // telegram: a decoded record's `dif_vif` is uppercase hex, so comparing it to
            // the definition's hex digits ignoring case is the same test.
            let header = source.strip_prefix("record:").filter(|h| {
                !h.is_empty() && h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit())
            })?;
            reading
                .records
                .iter()
                .find(|r| r.dif_vif.eq_ignore_ascii_case(header))?
                .raw
                .as_deref()?
        }
    };
    let bytes = hex::decode(source_hex).ok()?;
    let end = def.offset.checked_add(def.length)?;
    let field = bytes.get(def.offset..end)?;
    if let Some(value) = decode_date(field, def.encoding) {
        return Some(value);
    }
    let raw = decode_number(field, def.encoding, def.mask)?;
    let scale = def.parsed_scale().ok()?;
    raw.checked_mul(scale)
        .map(|v| Value::Number(v.normalized()))
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
