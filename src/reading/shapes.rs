//! Record JSON with its constant text remembered.
//!
//! A meter sends the same records telegram after telegram, and apart from the value a
//! record's JSON — quantity, unit, function, storage, tariff, subunit, DIF/VIF — is the
//! same each time. Written from scratch that is three checked strings and a dozen
//! literals per record, most of the cost of a telegram's JSON; remembered, it is two
//! copies around the value.

use std::borrow::Cow;
use std::sync::Arc;

use super::{short_words, Function, Reading, Record, Value};

/// Writes readings exactly as [`Reading::write_json`] does, remembering the text around
/// each record's value for the next telegram with the same record. Keep one per output
/// stream (`wmbusd decode` keeps one for its whole input). Memory is fixed: a few
/// hundred remembered shapes, the oldest overwritten.
#[derive(Debug, Default)]
pub struct JsonWriter {
    memory: WriterMemory,
}

/// What a [`JsonWriter`] keeps between and within readings.
#[derive(Debug, Default)]
pub(super) struct WriterMemory {
    pub(super) shapes: RecordShapes,
    pub(super) printed: PrintedNumbers,
    pub(super) driver: DriverName,
}

/// The last driver name written, as JSON: readings of one driver share its name.
#[derive(Debug, Default)]
pub(super) struct DriverName {
    name: Option<Arc<str>>,
    json: Vec<u8>,
}

impl DriverName {
    /// Appends `name` as a JSON string.
    pub(super) fn write(&mut self, name: &Arc<str>, out: &mut Vec<u8>) -> serde_json::Result<()> {
        if !self.name.as_ref().is_some_and(|n| Arc::ptr_eq(n, name)) {
            self.name = None;
            self.json.clear();
            super::string(&mut self.json, name)?;
            self.name = Some(name.clone());
        }
        out.extend_from_slice(&self.json);
        Ok(())
    }
}

impl JsonWriter {
    pub fn new() -> JsonWriter {
        JsonWriter::default()
    }

    /// Appends the JSON of `reading` to `out`; the bytes equal [`Reading::write_json`]'s.
    pub fn write(&mut self, reading: &Reading, out: &mut Vec<u8>) -> serde_json::Result<()> {
        reading.write_json_with(out, Some(&mut self.memory))
    }
}

/// Remembered record shapes in a small two-way set-associative table: a lookup is one
/// hash and one or two comparisons. Two ways, so that two records of one telegram
/// whose keys share a set do not evict each other telegram after telegram; a third
/// shape in a set replaces the one that was there longer.
#[derive(Debug)]
pub(super) struct RecordShapes {
    slots: Vec<Shape>,
}

/// Slots in the table; a building's meters use a few dozen shapes between them.
const SLOTS: usize = 256;

impl Default for RecordShapes {
    fn default() -> RecordShapes {
        RecordShapes {
            slots: (0..SLOTS).map(|_| Shape::default()).collect(),
        }
    }
}

/// The JSON of a record before and after its value.
#[derive(Debug, Default)]
pub(super) struct Shape {
    /// What the text was made from; `None` for an empty slot.
    key: Option<ShapeKey>,
    pub(super) head: Vec<u8>,
    pub(super) tail: Vec<u8>,
}

/// Everything a record's constant text is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShapeKey {
    /// Address and length of the quantity name. Only `&'static str` names qualify:
    /// static text never changes, so where it lives identifies what it says.
    quantity: (usize, usize),
    /// The same for the unit; (0, 0) for none (a `&str` is never at address 0).
    unit: (usize, usize),
    function: Function,
    storage: u64,
    tariff: u32,
    subunit: u32,
    /// The DIF/VIF hex (at most 16 characters) as two words, and its length.
    dif_vif: (u64, u64),
    dif_vif_len: usize,
}

impl ShapeKey {
    /// The key of `record`, or `None` for a record written the long way: names that are
    /// not static text, a long DIF/VIF, or any of the rarer members after the value
    /// (their text varies with the data).
    fn of(record: &Record) -> Option<ShapeKey> {
        let Cow::Borrowed(quantity) = record.quantity else {
            return None;
        };
        let unit = match &record.unit {
            None => (0, 0),
            Some(Cow::Borrowed(unit)) => (unit.as_ptr() as usize, unit.len()),
            Some(Cow::Owned(_)) => return None,
        };
        if record.error.is_some()
            || !record.qualifiers.is_empty()
            || record.unit_text.is_some()
            || record.raw.is_some()
            || record.profile.is_some()
        {
            return None;
        }
        let dif_vif = record.dif_vif.as_bytes();
        Some(ShapeKey {
            quantity: (quantity.as_ptr() as usize, quantity.len()),
            unit,
            function: record.function,
            storage: record.storage,
            tariff: record.tariff,
            subunit: record.subunit,
            dif_vif: short_words(dif_vif)?,
            dif_vif_len: dif_vif.len(),
        })
    }

    /// The key's slot: its members mixed into one word, the top bits of a
    /// multiplicative hash.
    fn slot(&self) -> usize {
        let mixed = self.dif_vif.0
            ^ self.dif_vif.1.rotate_left(29)
            ^ self.storage.rotate_left(13)
            ^ (self.quantity.0 as u64).rotate_left(41)
            ^ (self.unit.0 as u64).rotate_left(53)
            ^ u64::from(self.tariff) << 20
            ^ u64::from(self.subunit) << 36
            ^ (self.function as u64) << 60;
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % SLOTS
    }
}

impl RecordShapes {
    /// The remembered text around `record`'s value, rendered now if it was not
    /// remembered; `None` for a record to be written the long way.
    pub(super) fn shape(&mut self, record: &Record) -> Option<&Shape> {
        let key = ShapeKey::of(record)?;
        // A set is two neighbouring slots, the newer shape first.
        let first = key.slot() & !1;
        let [newer, older] = self.slots.get_mut(first..first + 2)? else {
            return None;
        };
        if older.key == Some(key) {
            return Some(older);
        }
        let shape = newer;
        if shape.key != Some(key) {
            // The newer shape becomes the older, and the new one is rendered over the
            // buffers of the older, which leaves.
            std::mem::swap(shape, older);
            // Rendered by the same code as the long way, so the bytes cannot differ.
            shape.key = None;
            shape.head.clear();
            shape.tail.clear();
            record.write_json_head(&mut shape.head).ok()?;
            record.write_json_tail(&mut shape.tail).ok()?;
            shape.key = Some(key);
        }
        Some(shape)
    }
}

/// Where the current reading's JSON has the text of each record's value: a driver
/// field holding a record's number (most fields) copies the record's text rather than
/// formatting the number again.
#[derive(Debug, Default)]
pub(super) struct PrintedNumbers(Vec<(usize, usize)>);

impl PrintedNumbers {
    /// Forgets the last reading's values (their positions were in its output).
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Writes the value of the reading's next record, remembering where it went.
    pub(super) fn write(&mut self, value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let start = out.len();
        value.write_json(out)?;
        self.0.push((start, out.len()));
        Ok(())
    }

    /// Writes `value`, copying the text printed for a record with the same number
    /// (same mantissa and exponent: the same text): record `copy_of` when it holds
    /// it, else the first that does. `records` are the reading's, written before.
    pub(super) fn write_again(
        &self,
        value: &Value,
        copy_of: Option<usize>,
        records: &[Record],
        out: &mut Vec<u8>,
    ) -> serde_json::Result<()> {
        if let Value::Number(n) = value {
            let holds = |r: &Record| match &r.value {
                Value::Number(m) => m.exponent() == n.exponent() && m.mantissa() == n.mantissa(),
                _ => false,
            };
            let record = match copy_of {
                Some(k) if records.get(k).is_some_and(holds) => Some(k),
                _ => records.iter().position(holds),
            };
            if let Some(&(start, end)) = record.and_then(|k| self.0.get(k)) {
                if start < end && end <= out.len() {
                    out.extend_from_within(start..end);
                    return Ok(());
                }
            }
        }
        value.write_json(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Records differing in one member only get their own text.
    #[test]
    fn a_record_differing_in_one_member_is_not_taken_for_another() {
        let base = Record {
            quantity: Cow::Borrowed("volume"),
            value: super::super::Value::Null,
            unit: Some(Cow::Borrowed("m3")),
            function: Function::Instantaneous,
            storage: 0,
            tariff: 0,
            subunit: 0,
            dif_vif: "0C13".to_owned(),
            error: None,
            qualifiers: Vec::new(),
            unit_text: None,
            raw: None,
            profile: None,
        };
        let variants = [
            Record {
                storage: 1,
                ..base.clone()
            },
            Record {
                tariff: 2,
                ..base.clone()
            },
            Record {
                subunit: 1,
                ..base.clone()
            },
            Record {
                function: Function::Maximum,
                ..base.clone()
            },
            Record {
                unit: None,
                ..base.clone()
            },
            Record {
                quantity: Cow::Borrowed("energy"),
                ..base.clone()
            },
            Record {
                dif_vif: "4C13".to_owned(),
                ..base.clone()
            },
        ];
        let mut shapes = RecordShapes::default();
        for record in std::iter::once(&base).chain(&variants).chain([&base]) {
            let mut expected = Vec::new();
            record.write_json(&mut expected).unwrap();
            let shape = shapes.shape(record).unwrap();
            let mut got = shape.head.clone();
            record.value.write_json(&mut got).unwrap();
            got.extend_from_slice(&shape.tail);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected)
            );
        }
        // Owned names (a reading read back from JSON) take the long way.
        let owned = Record {
            quantity: Cow::Owned("volume".to_owned()),
            ..base
        };
        assert!(shapes.shape(&owned).is_none());
    }
}
