//! Inverse compact profiles (EN 13757-3 Annex F): a history array of one quantity in a
//! single LVAR record, flagged by the combinable VIFE 0x13.
//!
//! Data layout: spacing control byte, spacing value byte, then equally sized elements.
//! Spacing control: bits 3..0 the element data field (coded as a DIF data field), bits
//! 5..4 the spacing unit (s, min, h, d), bits 7..6 the increment mode (00 = absolute
//! values). Spacing value: 0..=250 units, 0xFE with unit "days" = one month.
//!
//! Only what the corpus confirms is decoded: absolute elements of the inverse profile,
//! element 1 lying one spacing before the record's time point and each further element
//! one more spacing back (ZRI heat cost allocator and water meter: element 1 is the
//! value of the month before the storage date). Increment modes need the base value,
//! and the plain (0x1F) and register-number (0x1E) profiles an ordering this crate has no
//! verified example of; they stay binary.

use super::dib::DataField;
use super::value::{self, Value};
use super::vib::{Combinable, Kind, TimeUnit};
use super::DataRecord;

/// Spacing value meaning "one month" (with spacing unit days).
const SPACING_MONTH: u8 = 0xFE;
/// Largest spacing value counted in spacing units.
const SPACING_MAX_UNITS: u8 = 250;

/// Time between two elements of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Units(u8, TimeUnit),
    Month,
}

impl Spacing {
    /// `"15 min"`, `"1 d"`, `"1 month"`.
    pub fn to_text(self) -> String {
        match self {
            Spacing::Units(n, unit) => format!("{n} {}", unit.as_str()),
            Spacing::Month => "1 month".to_owned(),
        }
    }
}

/// Decoded elements of an inverse compact profile, newest first: `elements[0]` is the
/// value one spacing before the record's time point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactProfile {
    pub spacing: Spacing,
    pub elements: Vec<Value>,
}

impl DataRecord<'_> {
    /// The elements of an inverse compact profile record; `None` for any other record
    /// and for profile variants that are not decoded (see the module documentation).
    pub fn compact_profile(&self) -> Option<CompactProfile> {
        let inverse = self
            .vib
            .combinables()
            .any(|c| c == Combinable::Qualifier("inverse_compact_profile"));
        if !inverse || self.dib.data_field != DataField::Variable {
            return None;
        }
        let (&control, rest) = self.data.split_first()?;
        let (&spacing_value, elements) = rest.split_first()?;
        if control >> 6 != 0 {
            return None; // increments: meaningless without the base value
        }
        let unit = TimeUnit::from_nn(control >> 4);
        let spacing = match spacing_value {
            0..=SPACING_MAX_UNITS => Spacing::Units(spacing_value, unit),
            SPACING_MONTH if unit == TimeUnit::Day => Spacing::Month,
            _ => return None,
        };
        let field = DataField::from_dif(control & 0x0F)?;
        let size = match field {
            DataField::Integer(_) | DataField::Bcd(_) | DataField::Real32 => field.data_len()?,
            _ => return None,
        };
        if size == 0 || elements.len() % size != 0 {
            return None;
        }
        // Elements are measured values in the record's unit and scale.
        let mut meaning = self.meaning();
        meaning.kind = Kind::Signed;
        let elements = elements
            .chunks_exact(size)
            .map(|chunk| value::decode(field, None, chunk, &meaning))
            .collect();
        Some(CompactProfile { spacing, elements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::apl::{parse, Decimal};

    fn number(v: i64, exponent: i32) -> Value {
        Value::Number(Decimal::new(v.into(), exponent))
    }

    #[test]
    fn monthly_hca_bcd_profile() {
        // ZRI heat cost allocator 80081812 (corpus, decrypted): storage 8 HCA record, then
        // the inverse profile 8D 04 EE 13 with 6-digit BCD elements spaced one month.
        let apl = [
            0x8D, 0x04, 0xEE, 0x13, 0x0E, 0x3B, 0xFE, 0x27, 0x06, 0x00, 0x95, 0x03, 0x00, 0x76,
            0x01, 0x00, 0xFF, 0xFF, 0xFF,
        ];
        let parsed = parse(&apl).unwrap();
        let profile = parsed.records[0].compact_profile().unwrap();
        assert_eq!(profile.spacing, Spacing::Month);
        assert_eq!(profile.spacing.to_text(), "1 month");
        assert_eq!(
            profile.elements,
            vec![
                number(627, 0),
                number(395, 0),
                number(176, 0),
                Value::Invalid
            ]
        );
    }

    #[test]
    fn int32_profile_scaled_and_invalid_marker() {
        // ZRI water meter 61330764: litres (VIF 0x93 = 0x13), int32 elements, the
        // most negative value marking months without data.
        let apl = [
            0x8D, 0x0F, 0x93, 0x13, 0x0A, 0x34, 0xFE, 0xE8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x80,
        ];
        let parsed = parse(&apl).unwrap();
        let profile = parsed.records[0].compact_profile().unwrap();
        assert_eq!(profile.elements, vec![number(1, 0), Value::Invalid]);
    }

    #[test]
    fn undecoded_variants_stay_binary() {
        // Register-number profile (VIFE 0x1E): no verified ordering.
        let register = [
            0x8D, 0x04, 0x93, 0x1E, 0x06, 0x3C, 0xFE, 0x33, 0x00, 0x00, 0x00,
        ];
        assert_eq!(parse(&register).unwrap().records[0].compact_profile(), None);
        // Increment mode 01 (positive increments).
        let increments = [0x4D, 0x93, 0x13, 0x05, 0x73, 0xFE, 0x01, 0x00, 0x00];
        assert_eq!(
            parse(&increments).unwrap().records[0].compact_profile(),
            None
        );
        // Elements that do not fill the data evenly.
        let ragged = [0x8D, 0x04, 0x93, 0x13, 0x05, 0x34, 0xFE, 0x01, 0x00, 0x00];
        assert_eq!(parse(&ragged).unwrap().records[0].compact_profile(), None);
        // A plain volume record is no profile.
        let plain = [0x04, 0x13, 0x01, 0x00, 0x00, 0x00];
        assert_eq!(parse(&plain).unwrap().records[0].compact_profile(), None);
    }
}
