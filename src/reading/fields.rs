//! A driver's named values, kept in natural name order.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Value;

/// Field names the way people sort them: runs of digits compare as numbers, so
/// `target_2` comes before `target_10` (text order would put `target_10` first). Names
/// equal as numbers (`a01`, `a1`) fall back to text order, keeping the order total.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        let (Some((&c, x_rest)), Some((&d, y_rest))) = (x.split_first(), y.split_first()) else {
            return x.len().cmp(&y.len()).then_with(|| a.cmp(b));
        };
        if c.is_ascii_digit() && d.is_ascii_digit() {
            let (nx, rx) = x.split_at(x.iter().take_while(|b| b.is_ascii_digit()).count());
            let (ny, ry) = y.split_at(y.iter().take_while(|b| b.is_ascii_digit()).count());
            let (tx, ty) = (without_leading_zeros(nx), without_leading_zeros(ny));
            let order = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
            if order != Ordering::Equal {
                return order;
            }
            (x, y) = (rx, ry);
        } else if c != d {
            return c.cmp(&d);
        } else {
            (x, y) = (x_rest, y_rest);
        }
    }
}

fn without_leading_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    digits.split_at(zeros).1
}

/// A driver's field names, distinct and in natural order ([`natural_cmp`]), built once
/// when its definition loads; every reading it fills shares the names.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldNames(Arc<[Arc<str>]>);

impl FieldNames {
    /// The distinct `names`, in natural order.
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> FieldNames {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable_by(|a, b| natural_cmp(a, b));
        names.dedup();
        FieldNames(names.into_iter().map(Arc::from).collect())
    }

    /// The names in order: the indices [`Fields::refill`] takes.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|n| &**n)
    }
}

/// What a [`Fields::refill`] filler did with a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// The field is absent from this telegram.
    Absent,
    /// The value is the field's.
    Value,
}

/// A driver's named values, in natural name order ([`natural_cmp`]).
#[derive(Clone, Default, PartialEq)]
pub struct Fields {
    entries: Vec<(Arc<str>, Value)>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(n, _)| natural_cmp(n, name))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        let at = self.position(name).ok()?;
        self.entries.get(at).map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, keeping the names sorted.
    pub fn insert(&mut self, name: impl AsRef<str>, value: Value) {
        let name = name.as_ref();
        match self.position(name) {
            Ok(at) => {
                if let Some(entry) = self.entries.get_mut(at) {
                    entry.1 = value;
                }
            }
            Err(at) => self.entries.insert(at, (Arc::from(name), value)),
        }
    }

    /// Replaces every field, name by name of `names`: `fill` writes the value of the
    /// name at an index and says whether the field is present.
    pub(crate) fn refill(
        &mut self,
        names: &FieldNames,
        mut fill: impl FnMut(usize, &mut Value) -> Fill,
    ) {
        self.entries.clear();
        for (index, name) in names.0.iter().enumerate() {
            let mut value = Value::Null;
            if fill(index, &mut value) == Fill::Value {
                self.entries.push((name.clone(), value));
            }
        }
    }

    pub fn iter(&self) -> FieldsIter<'_> {
        FieldsIter(self.entries.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(name, _)| name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The fields of a [`Fields`] in name order.
#[derive(Debug, Clone)]
pub struct FieldsIter<'a>(std::slice::Iter<'a, (Arc<str>, Value)>);

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, value)| (&**name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;

    /// Panics when `name` is absent, like `BTreeMap`'s index (tests only; code uses `get`).
    #[allow(
        clippy::panic,
        reason = "an absent key panics, as BTreeMap's index does"
    )]
    fn index(&self, name: &str) -> &Value {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no field {name:?}"),
        }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = FieldsIter<'a>;

    fn into_iter(self) -> FieldsIter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Fields {
        let mut fields = Fields::new();
        for (name, value) in iter {
            fields.insert(name, value);
        }
        fields
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        Ok(map.into_iter().collect())
    }
}
