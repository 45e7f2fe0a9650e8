//! Home Assistant MQTT discovery (`[homeassistant]`): one device per configured meter and
//! one sensor per driver field, announced on the retained topics
//! `<discovery_prefix>/sensor/<node>/<field>/config` that Home Assistant subscribes to.
//!
//! A meter's fields are only known once it has been heard (the driver that decodes it
//! picks them), so a meter is announced at its first reading and again whenever a reading
//! brings a field not yet announced — meters that alternate short and long telegrams get
//! the union. What was announced is remembered (see [`Announcer::snapshot`]) so that a
//! meter leaving the configuration has its sensors removed with empty retained payloads,
//! also across restarts.
//!
//! Each sensor's kind follows the field's unit suffix (see the reading schema's *Driver
//! fields*): `_m3` is a `water` (gas meters: `gas`) register, `_kwh` an `energy` register,
//! `_c` a `temperature` measurement, and so on; registers are `total_increasing`, other
//! numbers `measurement`, text fields have neither.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::config::{HomeAssistantSection, MeterConfig, PayloadFormat};
use crate::reading::Reading;

/// Device type code of gas meters (EN 13757-7 table 6): their volume is gas, not water.
const GAS_DEVICE_TYPE: &str = "gas";

/// How Home Assistant should present one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorKind {
    pub device_class: Option<&'static str>,
    pub unit: Option<&'static str>,
    pub state_class: Option<&'static str>,
    /// `diagnostic` for status words and versions, which are not readings.
    pub diagnostic: bool,
}

const fn kind(
    device_class: Option<&'static str>,
    unit: Option<&'static str>,
    state_class: Option<&'static str>,
) -> SensorKind {
    SensorKind {
        device_class,
        unit,
        state_class,
        diagnostic: false,
    }
}

const TOTAL: Option<&str> = Some("total_increasing");
const MEASUREMENT: Option<&str> = Some("measurement");

/// Unit suffixes of driver fields (longest first where one ends another: `_m3h` before
/// `_m3`, `_kvarh` before `_h`) and how they are presented.
const SUFFIXES: &[(&str, SensorKind)] = &[
    (
        "_m3h",
        kind(Some("volume_flow_rate"), Some("m³/h"), MEASUREMENT),
    ),
    ("_m3c", kind(None, Some("m³·°C"), TOTAL)),
    ("_m3", kind(Some("water"), Some("m³"), TOTAL)),
    ("_kvarh", kind(None, Some("kvarh"), TOTAL)),
    ("_kvah", kind(None, Some("kVAh"), TOTAL)),
    ("_kwh", kind(Some("energy"), Some("kWh"), TOTAL)),
    ("_mwh", kind(Some("energy"), Some("MWh"), TOTAL)),
    ("_mj", kind(Some("energy"), Some("MJ"), TOTAL)),
    ("_gj", kind(Some("energy"), Some("GJ"), TOTAL)),
    ("_kw", kind(Some("power"), Some("kW"), MEASUREMENT)),
    ("_hca", kind(None, None, TOTAL)),
    ("_bar", kind(Some("pressure"), Some("bar"), MEASUREMENT)),
    ("_kg", kind(Some("weight"), Some("kg"), MEASUREMENT)),
    ("_hz", kind(Some("frequency"), Some("Hz"), MEASUREMENT)),
    ("_rh", kind(Some("humidity"), Some("%"), MEASUREMENT)),
    ("_ppm", kind(None, Some("ppm"), MEASUREMENT)),
    ("_min", kind(Some("duration"), Some("min"), MEASUREMENT)),
    // A temperature difference in kelvin is not a temperature: no device class.
    ("_k", kind(None, Some("K"), MEASUREMENT)),
    ("_c", kind(Some("temperature"), Some("°C"), MEASUREMENT)),
    ("_v", kind(Some("voltage"), Some("V"), MEASUREMENT)),
    ("_a", kind(Some("current"), Some("A"), MEASUREMENT)),
    ("_h", kind(Some("duration"), Some("h"), MEASUREMENT)),
    ("_d", kind(Some("duration"), Some("d"), MEASUREMENT)),
    ("_s", kind(Some("duration"), Some("s"), MEASUREMENT)),
    ("_y", kind(None, Some("a"), MEASUREMENT)),
    ("_date", kind(Some("date"), None, None)),
];

/// Unitless suffixes that name a status rather than a reading.
const DIAGNOSTIC_SUFFIXES: &[&str] = &["_flags", "_status", "_version", "_counter", "_nr"];

/// The presentation of the driver field `name` of a meter of `device_type`.
pub fn sensor_kind(name: &str, device_type: &str) -> SensorKind {
    for (suffix, k) in SUFFIXES {
        if name.ends_with(suffix) {
            let mut k = *k;
            if *suffix == "_m3" && device_type == GAS_DEVICE_TYPE {
                k.device_class = Some("gas");
            }
            return k;
        }
    }
    SensorKind {
        diagnostic: DIAGNOSTIC_SUFFIXES.iter().any(|s| name.ends_with(s)),
        ..kind(None, None, None)
    }
}

/// Where the announcements point: the daemon's topics and payload form.
#[derive(Debug, Clone)]
pub struct Context {
    pub topic_prefix: String,
    pub gateway: String,
    pub payload: PayloadFormat,
}

/// One meter as announced: the configuration topics and the payload each last got.
#[derive(Debug, Clone, Default)]
struct Announced {
    topics: BTreeMap<String, Vec<u8>>,
}

/// Decides which discovery messages to publish; pure, the daemon sends and persists.
#[derive(Debug)]
pub struct Announcer {
    section: HomeAssistantSection,
    ctx: Context,
    /// Configured meters by id, with their `name`.
    configured: BTreeMap<String, Option<String>>,
    announced: BTreeMap<String, Announced>,
    dirty: bool,
}

/// A retained message to publish: topic and payload (empty: remove the retained one).
pub type Message = (String, Vec<u8>);

impl Announcer {
    /// `remembered`: the document [`Announcer::snapshot`] gave in an earlier run.
    pub fn new(
        section: HomeAssistantSection,
        ctx: Context,
        meters: &[MeterConfig],
        remembered: Option<&Value>,
    ) -> Announcer {
        let mut announcer = Announcer {
            section,
            ctx,
            configured: BTreeMap::new(),
            announced: remembered.map(restore).unwrap_or_default(),
            dirty: false,
        };
        announcer.set_meters(meters);
        announcer
    }

    /// Takes a new meter list (start, reload); returns the removals of the meters that
    /// left it.
    pub fn reconfigure(&mut self, meters: &[MeterConfig]) -> Vec<Message> {
        self.set_meters(meters);
        let gone: Vec<String> = self
            .announced
            .keys()
            .filter(|id| !self.configured.contains_key(*id))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for id in gone {
            if let Some(a) = self.announced.remove(&id) {
                tracing::info!(
                    "homeassistant: meter {id} left the configuration, removing its sensors"
                );
                out.extend(a.topics.into_keys().map(|t| (t, Vec::new())));
                self.dirty = true;
            }
        }
        out
    }

    fn set_meters(&mut self, meters: &[MeterConfig]) {
        self.configured = meters
            .iter()
            .map(|m| (m.id.clone(), m.name.clone()))
            .collect();
    }

    /// The discovery messages a reading calls for: none once its meter's sensors are
    /// announced as they would be now.
    pub fn observe(&mut self, reading: &Reading) -> Vec<Message> {
        let Some(name) = self.configured.get(&reading.meter.id) else {
            return Vec::new();
        };
        let device = self.device(reading, name.as_deref());
        let mut wanted: Vec<Message> = Vec::new();
        for (field, _) in &reading.fields {
            let kind = sensor_kind(field, &reading.meter.device_type);
            wanted.push(self.sensor(reading, field, kind, &device));
        }
        if self.ctx.payload == PayloadFormat::Full && reading.rssi_dbm.is_some() {
            wanted.push(self.rssi_sensor(reading, &device));
        }
        let entry = self.announced.entry(reading.meter.id.clone()).or_default();
        let mut out = Vec::new();
        for (topic, payload) in wanted {
            if entry.topics.get(&topic) != Some(&payload) {
                entry.topics.insert(topic.clone(), payload.clone());
                out.push((topic, payload));
                self.dirty = true;
            }
        }
        out
    }

    /// What to remember across restarts (the topics per meter), when it changed since the
    /// last call.
    pub fn snapshot(&mut self) -> Option<Value> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let meters: Map<String, Value> = self
            .announced
            .iter()
            .map(|(id, a)| (id.clone(), json!(a.topics.keys().collect::<Vec<_>>())))
            .collect();
        Some(json!({ "version": 1, "meters": meters }))
    }

    fn node(&self, meter_id: &str) -> String {
        format!(
            "wmbusd_{}_{}",
            object_id(&self.ctx.gateway),
            object_id(meter_id)
        )
    }

    fn config_topic(&self, meter_id: &str, object: &str) -> String {
        format!(
            "{}/sensor/{}/{}/config",
            self.section.discovery_prefix,
            self.node(meter_id),
            object_id(object)
        )
    }

    fn device(&self, reading: &Reading, name: Option<&str>) -> Value {
        let meter = &reading.meter;
        let fallback = format!("{} {}", meter.manufacturer, meter.id);
        let mut device = Map::new();
        device.insert("identifiers".into(), json!([self.node(&meter.id)]));
        device.insert("name".into(), json!(name.unwrap_or(&fallback)));
        device.insert("manufacturer".into(), json!(meter.manufacturer));
        device.insert("serial_number".into(), json!(meter.id));
        if let Some(driver) = &reading.driver {
            device.insert("model".into(), json!(driver));
        }
        Value::Object(device)
    }

    fn state_topic(&self, meter_id: &str) -> String {
        crate::mqtt::topic_meter(&self.ctx.topic_prefix, &self.ctx.gateway, meter_id)
    }

    fn base(
        &self,
        reading: &Reading,
        object: &str,
        template: String,
        device: &Value,
    ) -> Map<String, Value> {
        let status = crate::mqtt::topic_status(&self.ctx.topic_prefix, &self.ctx.gateway);
        let pairs = [
            (
                "unique_id",
                json!(format!(
                    "{}_{}",
                    self.node(&reading.meter.id),
                    object_id(object)
                )),
            ),
            ("state_topic", json!(self.state_topic(&reading.meter.id))),
            ("value_template", json!(template)),
            ("availability_topic", json!(status)),
            ("payload_available", json!("online")),
            ("payload_not_available", json!("offline")),
            ("device", device.clone()),
            (
                "origin",
                json!({"name": "wmbusd", "sw_version": env!("CARGO_PKG_VERSION")}),
            ),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn sensor(&self, reading: &Reading, field: &str, kind: SensorKind, device: &Value) -> Message {
        let values = match self.ctx.payload {
            PayloadFormat::Full => "fields",
            PayloadFormat::Compact => "values",
        };
        let template = format!("{{{{ value_json.{values}.{field} }}}}");
        let mut doc = self.base(reading, field, template, device);
        doc.insert("name".into(), json!(entity_name(field)));
        let optional = [
            ("device_class", kind.device_class),
            ("unit_of_measurement", kind.unit),
            ("state_class", kind.state_class),
            ("entity_category", kind.diagnostic.then_some("diagnostic")),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                doc.insert(key.into(), json!(v));
            }
        }
        self.message(&reading.meter.id, field, doc)
    }

    fn rssi_sensor(&self, reading: &Reading, device: &Value) -> Message {
        let template = "{{ value_json.rssi_dbm }}".to_owned();
        let mut doc = self.base(reading, "rssi_dbm", template, device);
        for (key, value) in [
            ("name", "Signal strength"),
            ("device_class", "signal_strength"),
            ("unit_of_measurement", "dBm"),
            ("state_class", "measurement"),
            ("entity_category", "diagnostic"),
        ] {
            doc.insert(key.into(), json!(value));
        }
        self.message(&reading.meter.id, "rssi_dbm", doc)
    }

    fn message(&self, meter_id: &str, object: &str, doc: Map<String, Value>) -> Message {
        (
            self.config_topic(meter_id, object),
            Value::Object(doc).to_string().into_bytes(),
        )
    }
}

/// The announced topics of an earlier run; an unreadable document is an empty memory (the
/// next readings announce again; only removals across the restart are lost).
fn restore(doc: &Value) -> BTreeMap<String, Announced> {
    let Some(meters) = doc.get("meters").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    meters
        .iter()
        .map(|(id, topics)| {
            let topics = topics
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                // The payload is unknown: the next reading announces again (harmless).
                .map(|t| (t.to_owned(), Vec::new()))
                .collect();
            (id.clone(), Announced { topics })
        })
        .collect()
}

/// Home Assistant's node and object ids allow `[a-zA-Z0-9_-]` only.
pub fn object_id(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `total_m3` → `Total`, `target_2_hca` → `Target 2`: the field without its unit suffix.
pub fn entity_name(field: &str) -> String {
    let base = SUFFIXES
        .iter()
        .map(|(s, _)| *s)
        .chain(["_datetime", "_time", "_text"])
        .find_map(|s| field.strip_suffix(s))
        .filter(|b| !b.is_empty())
        .unwrap_or(field);
    let mut words = base.replace('_', " ");
    if let Some(first) = words.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    words
}

/// The announced topics, to remove every sensor of this gateway (used by tests and
/// `--help` documentation of the section).
pub fn announced_topics(snapshot: &Value) -> BTreeSet<String> {
    restore(snapshot)
        .into_values()
        .flat_map(|a| a.topics.into_keys())
        .collect()
}

#[cfg(test)]
mod tests;
