//! One published data record, made from a parsed DIF/VIF record.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{upper_hex, Value};
use crate::wire::apl::{self, Combinable, DataRecord, Function, VifTable};

/// One published data record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub quantity: Cow<'static, str>,
    pub value: Value,
    pub unit: Option<Cow<'static, str>>,
    pub function: Function,
    pub storage: u64,
    pub tariff: u32,
    pub subunit: u32,
    pub dif_vif: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualifiers: Vec<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// History values of a compact profile record in transmission order, and where each
/// lies (see docs/reading-schema.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `inverse_compact_profile`, `compact_profile` or `compact_profile_with_register_numbers`.
    pub kind: Cow<'static, str>,
    /// `absolute`, `increments`, `decrements` (published negative) or `differences`.
    pub mode: Cow<'static, str>,
    pub spacing: String,
    pub unit: Option<Cow<'static, str>>,
    pub values: Vec<Value>,
    /// One entry per value: its date (time profiles, when the telegram has the record's
    /// time point) or its storage number (register-number profiles).
    pub points: Vec<ProfilePoint>,
}

/// Where one profile value lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilePoint {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<u64>,
}

impl Profile {
    fn from_record(r: &DataRecord<'_>, unit: Option<&'static str>) -> Option<Profile> {
        let profile = r.compact_profile()?;
        let values: Vec<Value> = profile.elements.iter().map(Value::from_element).collect();
        let points = values
            .iter()
            .enumerate()
            .map(|(i, value)| ProfilePoint {
                value: value.clone(),
                date: None,
                storage: match profile.position(i, r.dib.storage) {
                    apl::Position::Storage(s) => Some(s),
                    apl::Position::SpacingsBefore(_) => None,
                },
            })
            .collect();
        Some(Profile {
            kind: Cow::Borrowed(profile.kind.as_str()),
            mode: Cow::Borrowed(profile.increment.as_str()),
            spacing: profile.spacing.to_text(),
            unit: unit.map(Cow::Borrowed),
            values,
            points,
        })
    }

    /// Dates the profile implies, counted back from `anchor` (the value of the record
    /// giving its time point).
    pub fn set_dates(&mut self, r: &DataRecord<'_>, anchor: &apl::Value) {
        let Some(profile) = r.compact_profile() else {
            return;
        };
        for (i, point) in self.points.iter_mut().enumerate() {
            point.date = profile.time_point(i, anchor).map(|v| match v {
                apl::Value::Date(d) => d.to_string(),
                apl::Value::DateTime(dt) => dt.to_string(),
                other => other.to_string(),
            });
        }
    }
}

impl Record {
    pub fn from_data_record(r: &DataRecord<'_>) -> Record {
        let has_vifes = !r.vib.vifes.as_slice().is_empty();
        // A record error means the data field holds no valid value.
        let record_error = if has_vifes {
            r.vib.record_error()
        } else {
            None
        };
        let value = match (&r.value, record_error) {
            (_, Some(_)) => Value::Null,
            (apl::Value::Binary, None) => Value::Text(upper_hex(r.data)),
            (other, None) => Value::from_element(other),
        };
        let mut manufacturer_vifes = r.vib.table == VifTable::Manufacturer;
        let mut qualifiers = Vec::new();
        // Most records have no VIFEs: nothing to walk then.
        if has_vifes {
            for c in r.vib.combinables() {
                manufacturer_vifes |= matches!(c, Combinable::ManufacturerSpecific(_));
                qualifiers.extend(c.name().map(Cow::Borrowed));
            }
        }
        // Vendor data, and the data of a record whose value is withheld for a record
        // error (vendors put counters there: Diehl's hours in error), are kept as hex.
        // An unknown (reserved) VIF or VIFE keeps its data as hex too.
        let raw = (manufacturer_vifes || record_error.is_some() || r.quantity == apl::UNKNOWN)
            .then(|| upper_hex(r.data));
        // A compact profile is an LVAR record with a profile VIFE.
        let profile = if has_vifes && r.dib.data_field == apl::DataField::Variable {
            Profile::from_record(r, r.unit)
        } else {
            None
        };
        Record {
            quantity: Cow::Borrowed(r.quantity),
            unit: match value {
                Value::Text(_) => None,
                _ => r.unit.map(Cow::Borrowed),
            },
            value,
            function: r.dib.function,
            storage: r.dib.storage,
            tariff: r.dib.tariff,
            subunit: r.dib.subunit,
            dif_vif: upper_hex(r.header),
            error: record_error.map(|e| Cow::Borrowed(e.name())),
            qualifiers,
            unit_text: r.vib.plain_text_unit.clone(),
            raw,
            profile,
        }
    }

    /// Overwrites this record with [`Record::from_data_record`] of `r`.
    pub fn refill(&mut self, r: &DataRecord<'_>) {
        *self = Record::from_data_record(r);
    }
}

/// Records of a parsed APL, in order.
pub fn records_from_apl(apl: &apl::Apl<'_>) -> Vec<Record> {
    apl.records.iter().map(Record::from_data_record).collect()
}
