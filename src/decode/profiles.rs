//! Compact profiles (EN 13757-3 Annex F) as ordinary records.
//!
//! A profile record carries a history of one quantity in one LVAR record; its `profile`
//! object lists the values. Drivers and billing read storage numbers and date records,
//! so each element also becomes the record the meter would have sent for it: the same
//! quantity, unit, function, tariff and subunit, the element's data field, the storage
//! number the element stands for, and the profile VIFE removed (its `dif_vif` is that
//! ordinary header). Where the profile implies a date, a date record of that storage
//! number follows, unless the telegram has one.
//!
//! Storage numbers: an inverse profile at storage s has element k (from 0) at s + k + 1,
//! one spacing further back each (monthly histories at s + 1, s + 2, … as meters number
//! their month ends); a compact profile of n elements runs oldest first, element k at
//! s + n − k; a profile with register numbers has element k at s + k. Elements in an
//! increment mode are changes, not readings: their records carry the mode as a
//! qualifier (`increments`, `decrements`, `differences`), so nothing takes them for
//! meter readings. Records the telegram sends itself win over expanded ones.

use std::borrow::Cow;

use crate::reading::{Record, Value};
use crate::wire::apl::{self, CompactProfile, DataRecord, Increment, Position, RecordRepr};

/// Combinable VIFE codes naming a compact profile.
const PROFILE_VIFES: [u8; 3] = [0x13, 0x1E, 0x1F];

/// Inserts after each profile record of `records` (one per `parsed` record, same order)
/// its elements as ordinary records and the date records they imply.
pub(super) fn expand(records: &mut Vec<Record>, parsed: &[DataRecord<'_>]) {
    // From the back, so inserting after record i keeps the indices before it.
    for (i, r) in parsed.iter().enumerate().rev() {
        let Some(values) = records
            .get(i)
            .and_then(|rec| rec.profile.as_ref())
            .map(|p| p.values.clone())
        else {
            continue;
        };
        let Some(profile) = r.compact_profile() else {
            continue;
        };
        let anchor = apl::time_point_record(parsed, r).map(|a| a.value.clone());
        let expansion = Expansion {
            record: r,
            profile: &profile,
            values: &values,
            anchor: anchor.as_ref(),
        };
        let new = expansion.records(records);
        let at = (i + 1).min(records.len());
        records.splice(at..at, new);
    }
}

/// One profile record being expanded.
struct Expansion<'a, 'r> {
    record: &'a DataRecord<'r>,
    profile: &'a CompactProfile,
    /// The published element values (decrements already negative).
    values: &'a [Value],
    /// Value of the record giving the profile's time point.
    anchor: Option<&'a apl::Value>,
}

impl Expansion<'_, '_> {
    /// Element and date records not already in `existing`, in element order.
    fn records(&self, existing: &[Record]) -> Vec<Record> {
        let size = self.profile.field.data_len().unwrap_or(0);
        let elements = self.record.data.get(2..).unwrap_or_default();
        if size == 0 {
            return Vec::new();
        }
        let mut out: Vec<Record> = Vec::new();
        for (k, bytes) in elements.chunks_exact(size).enumerate() {
            let storage = match self.profile.position(k, self.record.dib.storage) {
                Position::Storage(s) => s,
                Position::SpacingsBefore(n) => self.record.dib.storage.saturating_add(n.into()),
            };
            if let Some(element) = self.element(k, storage, bytes) {
                if !has_record(existing, &out, &element) {
                    out.push(element);
                }
            }
            if let Some(date) = self.date(k, storage) {
                if !has_date(existing, &out, &date) {
                    out.push(date);
                }
            }
        }
        out
    }

    /// Element `k` as the ordinary record of `storage`.
    fn element(&self, k: usize, storage: u64, bytes: &[u8]) -> Option<Record> {
        let r = self.record;
        let mut vib = r.vib.clone();
        vib.vifes = r
            .vib
            .vifes
            .as_slice()
            .iter()
            .copied()
            .filter(|v| !PROFILE_VIFES.contains(&(v & 0x7F)))
            .collect();
        let mut dib = r.dib;
        dib.storage = storage;
        dib.data_field = self.profile.field;
        dib.difes = 0;
        let mut record = ordinary(&RecordRepr::new(dib, vib, None, bytes.to_vec()))?;
        // The profile's value: signed, decrements negative.
        record.value = self.values.get(k)?.clone();
        if self.profile.increment != Increment::Absolute {
            record
                .qualifiers
                .push(Cow::Borrowed(self.profile.increment.as_str()));
        }
        Some(record)
    }

    /// The date record of `storage` that element `k` implies, if the profile has a
    /// time point.
    fn date(&self, k: usize, storage: u64) -> Option<Record> {
        let at = self.profile.time_point(k, self.anchor?)?;
        let repr = match &at {
            apl::Value::Date(d) => RecordRepr::date(d)?,
            apl::Value::DateTime(dt) => RecordRepr::datetime(dt)?,
            _ => return None,
        };
        let r = self.record;
        ordinary(
            &repr
                .storage(storage)
                .tariff(r.dib.tariff)
                .subunit(r.dib.subunit),
        )
    }
}

/// The record `repr` encodes, read back as the decoder reads any record.
fn ordinary(repr: &RecordRepr) -> Option<Record> {
    let bytes = repr.to_bytes().ok()?;
    let parsed = apl::parse(&bytes).ok()?;
    parsed.records.first().map(Record::from_data_record)
}

/// Whether a record of the same quantity, storage, tariff, subunit, function and
/// qualifiers is already there.
fn has_record(existing: &[Record], added: &[Record], r: &Record) -> bool {
    existing.iter().chain(added).any(|e| {
        e.quantity == r.quantity
            && e.storage == r.storage
            && e.tariff == r.tariff
            && e.subunit == r.subunit
            && e.function == r.function
            && e.qualifiers == r.qualifiers
            && e.profile.is_none()
    })
}

/// Whether a date or date-time record of the same storage, tariff and subunit is there.
fn has_date(existing: &[Record], added: &[Record], d: &Record) -> bool {
    existing.iter().chain(added).any(|e| {
        matches!(&*e.quantity, "date" | "datetime")
            && e.storage == d.storage
            && e.tariff == d.tariff
            && e.subunit == d.subunit
    })
}
