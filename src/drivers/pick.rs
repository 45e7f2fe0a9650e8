//! How a driver's field is filled from one reading's records: which record a rule
//! picks (`extract`) and the conversion factor of its unit.

/// How a field is filled from one reading's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldPick {
    /// No record is selected and there is no byte rule: the field is absent.
    Absent,
    /// Record `record` with the factor for its unit, then the byte rule if that
    /// gives nothing.
    Record { record: u32, factor: Factor },
    /// No record is selected: the byte rule.
    Bytes,
}

/// Which of a record rule's conversion factors a record's unit takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Factor {
    /// `RecordRule::factors[i]`.
    At(u8),
    /// The unit is not one the field converts from: the field is absent.
    Missing,
    /// The record has no unit (a text value, or nothing to convert).
    Unknown,
}
