//! A published value: an exact decimal, text, or null.

use serde::{Deserialize, Serialize};

use crate::wire::apl::{self, Decimal};

/// A record value as published: a JSON number, string or null. Serde writes the
/// variant's content alone; reading back, a JSON number becomes a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a number, a string or null")]
pub enum Value {
    Number(Decimal),
    Text(String),
    Null,
}

impl Value {
    /// A decoded value that stands alone (a compact profile element, or a record value
    /// other than binary): binary data has no bytes of its own here and publishes as null.
    pub(super) fn from_element(v: &apl::Value) -> Value {
        match v {
            apl::Value::NoData | apl::Value::Invalid | apl::Value::Binary => Value::Null,
            apl::Value::Number(d) => Value::Number(*d),
            apl::Value::Bits(b) => Value::Number(Decimal::from(*b)),
            apl::Value::Date(d) => Value::Text(iso(|s| d.push_iso(s))),
            apl::Value::Time(t) => Value::Text(iso(|s| t.push_iso(s))),
            apl::Value::DateTime(dt) => Value::Text(iso(|s| dt.push_iso(s))),
            apl::Value::Text(text) => Value::Text(text.to_string()),
        }
    }
}

/// The ISO text `push` writes; 19 bytes hold the longest form.
fn iso(push: impl FnOnce(&mut String)) -> String {
    let mut s = String::with_capacity(19);
    push(&mut s);
    s
}
