//! Which record each of a driver's rules takes, remembered per record layout.
//!
//! A meter sends the same records in the same order telegram after telegram (a few
//! layouts at most: full and compact frames, a monthly extra). Which record a rule
//! selects (quantity, storage, tariff, subunit, function, qualifiers) follows from the
//! records' headers alone, and so does the unit of a number and with it the conversion
//! factor. So the picks are remembered per (rules, layout): a telegram of a known
//! layout then costs one comparison of its headers instead of a search through the
//! records per field. Values are still read from each telegram's records: a record
//! without a number this time (a text or null value) takes the full way.
//!
//! Only for readings the decoder built: there each record's attributes are those its
//! header bytes (`dif_vif`) give. A reading read back from JSON could say otherwise and
//! is matched rule by rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::pick::FieldPick;
use crate::reading::Record;

/// Direct-mapped: a gateway hears a few dozen (driver, layout) pairs at most, and a
/// miss costs no more than the search the memo saves.
const SLOTS: usize = 32;

/// Readings with more records are matched rule by rule: a radio telegram carries a
/// few dozen records at most, and the memo's memory stays bounded.
const MAX_RECORDS: usize = 64;

/// A fresh identity for compiled rules. Picks are only ever taken for the rules that
/// made them, also after a reload compiled new rules at a reused address.
pub(super) fn next_rules_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The record picks of the (driver, layout) pairs decoded last; one per decoder.
#[derive(Debug, Default)]
pub struct LayoutMemo {
    slots: Vec<Picks>,
    /// The driver name of the reading refilled last, set aside by the decoder: a
    /// reading of the same driver takes it back, which spares two atomic reference
    /// count updates per telegram.
    driver: Option<Arc<str>>,
}

/// The picks of one set of rules in one layout.
#[derive(Debug, Default)]
pub(super) struct Picks {
    /// `next_rules_id` of the rules; 0 for a slot holding nothing.
    rules: u64,
    /// The records' `dif_vif`, in order.
    layout: Vec<HeaderText>,
    /// Per field (in the rules' name order): how it is filled in this layout.
    pub(super) fields: Vec<FieldPick>,
    /// Per distinct header byte rules read: the first record with that header.
    pub(super) headers: Vec<Option<usize>>,
}

impl Picks {
    /// How field `index` is filled (`None`, never for the rules that made the picks:
    /// search the records).
    pub(super) fn field(&self, index: usize) -> Option<FieldPick> {
        self.fields.get(index).copied()
    }

    /// The first record with byte-rule header `index`.
    pub(super) fn header(&self, index: usize) -> Option<usize> {
        self.headers.get(index).copied().flatten()
    }

    fn holds(&self, rules: u64, records: &[Record]) -> bool {
        self.rules == rules
            && self.layout.len() == records.len()
            && self
                .layout
                .iter()
                .zip(records)
                .all(|(held, r)| HeaderText::of(&r.dif_vif) == *held)
    }
}

/// A record's `dif_vif` text in a form compared in a few instructions: its length and
/// its first and last bytes as words, which together cover texts of up to sixteen
/// bytes (the memo keeps no layout with a longer one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeaderText {
    len: usize,
    first: u64,
    last: u64,
}

impl HeaderText {
    fn of(text: &str) -> HeaderText {
        let b = text.as_bytes();
        let (first, last) = if let (Some(f), Some(l)) = (b.first_chunk::<8>(), b.last_chunk::<8>())
        {
            (u64::from_le_bytes(*f), u64::from_le_bytes(*l))
        } else if let (Some(f), Some(l)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
            (
                u64::from(u32::from_le_bytes(*f)),
                u64::from(u32::from_le_bytes(*l)),
            )
        } else {
            // Shorter than a DIF and a VIF: byte by byte (never seen in practice).
            let word = b.iter().fold(0u64, |w, &c| w << 8 | u64::from(c));
            (word, word)
        };
        HeaderText {
            len: b.len(),
            first,
            last,
        }
    }
}

impl LayoutMemo {
    pub fn new() -> LayoutMemo {
        LayoutMemo::default()
    }

    /// `name`, taken back from the memo when it is the same.
    pub(super) fn driver(&mut self, name: &Arc<str>) -> Arc<str> {
        match self.driver.take() {
            Some(kept) if Arc::ptr_eq(&kept, name) => kept,
            _ => name.clone(),
        }
    }

    /// The picks of `rules` for the layout of `records`; `pick` fills them (cleared
    /// and sized for it) when this layout was not seen last in its slot. `None` for
    /// readings with too many records to remember.
    pub(super) fn picks(
        &mut self,
        rules: u64,
        records: &[Record],
        pick: impl FnOnce(&mut Picks),
    ) -> Option<&Picks> {
        if records.len() > MAX_RECORDS {
            return None;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Picks::default);
        }
        let slot = self.slots.get_mut(slot_of(rules, records))?;
        if !slot.holds(rules, records) {
            slot.rules = 0;
            // Header texts longer than `HeaderText` covers are rare: not remembered.
            // (A remembered layout never matches them: its lengths are all shorter.)
            if records.iter().any(|r| r.dif_vif.len() > 16) {
                return None;
            }
            slot.layout.clear();
            slot.layout
                .extend(records.iter().map(|r| HeaderText::of(&r.dif_vif)));
            slot.fields.clear();
            slot.headers.clear();
            pick(slot);
            slot.rules = rules;
        }
        Some(slot)
    }
}

/// The slot of a (rules, layout) pair: a hash of the rules' identity, the number of
/// records and the last record's header, which is where a meter's layouts (full and
/// compact frames, monthly extras) usually differ. Not of every header: a slot shared
/// by two layouts costs a search now and then, hashing them all costs every telegram.
fn slot_of(rules: u64, records: &[Record]) -> usize {
    let last = records.last().map_or(0, |r| {
        let h = HeaderText::of(&r.dif_vif);
        h.first ^ h.last.rotate_left(32)
    });
    let mixed = (rules ^ (records.len() as u64) << 48 ^ last).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 59) as usize % SLOTS
}
