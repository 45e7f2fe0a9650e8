//! Billing: the registers a bill is made from, periods at local deadlines, close values,
//! the function check, consumption alarms and reports. Pure logic: the reading store
//! (`crate::store`) gathers the data and keeps the results.

pub mod alarms;
pub mod close;
pub mod period;
pub mod registers;
pub mod report;
pub mod settings;

pub use close::{Close, Source, Verdict};
pub use period::{Calendar, Period, PeriodError};
pub use registers::{Facts, Medium, Register};
