//! Uplink volume: which readings are published (per-meter policy) and in which form
//! (`[mqtt] payload`).
//!
//! A reading's *billing state* is its cumulative registers (volume, energy, heat cost
//! allocator units, mass; every storage number, tariff and subunit), its driver fields in
//! those units, its status byte and its error flags. Under `publish = "changed"` or
//! `"interval:15m"` a reading whose billing state equals the last published one is held
//! back until the interval since that publication has passed (`changed`: one hour); a
//! change goes out at once. The state kept per meter with such a policy is its id, a 64-bit
//! fingerprint and an instant (about 60 bytes with the map entry).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::config::PublishPolicy;
use crate::reading::{Reading, Value};

/// Record quantities that are billing registers.
const REGISTERS: [&str; 5] = ["volume", "energy", "hca_units", "units", "mass"];
/// Driver field suffixes of billing registers.
const REGISTER_FIELDS: [&str; 7] = ["_m3", "_kwh", "_mwh", "_gj", "_mj", "_hca", "_kg"];

/// Per-meter decision state.
#[derive(Debug, Default)]
pub struct Publisher {
    last: HashMap<String, (u64, Instant)>,
}

impl Publisher {
    /// Whether `reading` goes out under `policy` at `now`; remembers it when it does.
    pub fn should_publish(
        &mut self,
        policy: PublishPolicy,
        reading: &Reading,
        now: Instant,
    ) -> bool {
        let interval = match policy {
            PublishPolicy::Every => return true,
            PublishPolicy::Changed { unchanged_every } => unchanged_every,
        };
        let print = billing_fingerprint(reading);
        let due = match self.last.get(&reading.meter.id) {
            Some(&(last, at)) => last != print || now.duration_since(at) >= interval,
            None => true,
        };
        if due {
            self.last.insert(reading.meter.id.clone(), (print, now));
        }
        due
    }
}

fn billing_fingerprint(reading: &Reading) -> u64 {
    let mut h = DefaultHasher::new();
    reading.status.byte.hash(&mut h);
    for r in &reading.records {
        if REGISTERS.contains(&r.quantity.as_ref()) || r.quantity == "error_flags" {
            (r.quantity.as_ref(), r.storage, r.tariff, r.subunit).hash(&mut h);
            r.unit.as_deref().hash(&mut h);
            value_text(&r.value).hash(&mut h);
        }
    }
    for (name, value) in &reading.fields {
        if REGISTER_FIELDS.iter().any(|s| name.ends_with(s)) || name.ends_with("_flags") {
            name.hash(&mut h);
            value_text(value).hash(&mut h);
        }
    }
    h.finish()
}

fn value_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The compact payload (documented in docs/reading-schema.md, "Compact readings"):
/// `{"schema":1,"compact":true,"meter":…,"time":…,"values":{…}}` where `values` are the
/// driver's fields or, without a driver, one entry per record named
/// `<quantity>[_<function>][_s<storage>][_t<tariff>][_u<subunit>][_<unit>]`.
pub fn compact_json(reading: &Reading) -> Vec<u8> {
    let mut values = serde_json::Map::new();
    if reading.fields.is_empty() {
        for r in &reading.records {
            values.insert(
                record_key(r),
                serde_json::to_value(&r.value).unwrap_or_default(),
            );
        }
    } else {
        for (name, value) in &reading.fields {
            values.insert(
                name.to_owned(),
                serde_json::to_value(value).unwrap_or_default(),
            );
        }
    }
    let mut doc = serde_json::Map::new();
    doc.insert("schema".into(), 1.into());
    doc.insert("compact".into(), true.into());
    doc.insert("meter".into(), reading.meter.id.clone().into());
    if let Some(t) = &reading.received_at {
        doc.insert("time".into(), t.clone().into());
    }
    if !reading.status.flags.is_empty() {
        let flags: Vec<serde_json::Value> = reading
            .status
            .flags
            .iter()
            .map(|f| f.to_string().into())
            .collect();
        doc.insert("flags".into(), flags.into());
    }
    doc.insert("values".into(), values.into());
    serde_json::Value::Object(doc).to_string().into_bytes()
}

fn record_key(r: &crate::reading::Record) -> String {
    let mut key = r.quantity.to_string();
    let function = serde_json::to_value(r.function).ok();
    if let Some(f) = function.as_ref().and_then(|f| f.as_str()) {
        if f != "instantaneous" {
            key.push('_');
            key.push_str(f);
        }
    }
    for (tag, n) in [
        ("s", r.storage),
        ("t", u64::from(r.tariff)),
        ("u", u64::from(r.subunit)),
    ] {
        if n != 0 {
            key.push_str(&format!("_{tag}{n}"));
        }
    }
    if let Some(unit) = &r.unit {
        key.push('_');
        key.push_str(unit);
    }
    key
}
