//! How a driver's field is filled in one record layout: the vocabulary shared by the
//! rules that make the picks (`extract`) and the memo that keeps them (`layout`).

/// How a field is filled in one layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldPick {
    /// No record is selected and there is no byte rule: the field is absent.
    Absent,
    /// Record `record`'s number as it is (a unit needing no conversion, or a plain
    /// value), when the record holds a number this time; otherwise as `Record`.
    Number { record: u32, factor: Factor },
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
    /// Looked up when taken: the record had no unit when the pick was made (a text
    /// value), so a later number of the same record is converted the full way.
    Unknown,
}
