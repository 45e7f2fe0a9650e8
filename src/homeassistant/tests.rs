use super::*;
use crate::config::Config;
use crate::decode::Decoder;
use crate::drivers::DriverSet;
use crate::frame::RadioFrame;
use crate::keys::KeyStore;

/// Sensor device classes and the units Home Assistant's sensor documentation allows for
/// them (the subset a meter can report), and whether `measurement` is allowed (it is not
/// for the classes HA keeps statistics of as meter totals).
const HA_CLASSES: &[(&str, &[&str], bool)] = &[
    ("water", &["L", "gal", "m³", "ft³", "CCF"], false),
    ("gas", &["m³", "ft³", "CCF"], false),
    ("energy", &["Wh", "kWh", "MWh", "MJ", "GJ"], false),
    (
        "volume_flow_rate",
        &["m³/h", "ft³/min", "L/min", "gal/min"],
        true,
    ),
    ("power", &["W", "kW"], true),
    ("temperature", &["°C", "°F", "K"], true),
    (
        "pressure",
        &[
            "Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi",
        ],
        true,
    ),
    ("weight", &["kg", "g", "mg", "µg", "oz", "lb", "st"], true),
    ("frequency", &["Hz", "kHz", "MHz", "GHz"], true),
    ("humidity", &["%"], true),
    ("duration", &["d", "h", "min", "s", "ms"], true),
    ("voltage", &["V", "mV"], true),
    ("current", &["A", "mA"], true),
    ("signal_strength", &["dB", "dBm"], true),
];

/// Checks one discovery document against the rules of HA's MQTT sensor discovery.
fn check_ha_sensor(doc: &Value) -> Result<(), String> {
    for key in ["state_topic", "unique_id", "value_template", "device"] {
        if doc
            .get(key)
            .and_then(|v| {
                if v.is_object() {
                    Some(())
                } else {
                    v.as_str().map(|_| ())
                }
            })
            .is_none()
        {
            return Err(format!("{key} missing"));
        }
    }
    let ids = doc["device"]["identifiers"]
        .as_array()
        .ok_or("device.identifiers missing")?;
    if ids.is_empty() {
        return Err("device.identifiers empty".into());
    }
    let state_class = doc.get("state_class").and_then(Value::as_str);
    if let Some(s) = state_class {
        if !["measurement", "total", "total_increasing"].contains(&s) {
            return Err(format!("state_class {s}"));
        }
    }
    let unit = doc.get("unit_of_measurement").and_then(Value::as_str);
    match doc.get("device_class").and_then(Value::as_str) {
        None => Ok(()),
        Some("date") if unit.is_none() && state_class.is_none() => Ok(()),
        Some("date") => Err("a date sensor has neither unit nor state class".into()),
        Some(class) => {
            let (_, units, measurement) = HA_CLASSES
                .iter()
                .find(|(c, _, _)| *c == class)
                .ok_or(format!("device_class {class} unknown"))?;
            let unit = unit.ok_or(format!("{class} without unit"))?;
            if !units.contains(&unit) {
                return Err(format!("{class} does not allow unit {unit}"));
            }
            if state_class == Some("measurement") && !measurement {
                return Err(format!("{class} with state_class measurement"));
            }
            Ok(())
        }
    }
}

/// Readings of the demo telegrams (real telegrams, keys from config/demo.toml).
fn demo_readings() -> (Config, Vec<Reading>) {
    let text = std::fs::read_to_string("config/demo.toml").unwrap();
    let text = text
        .replace("@TELEGRAMS@", "\"/dev/null\"")
        .replace("@SPOOL@", "\"/tmp\"")
        .replace("@INTERVAL@", "0");
    let config = Config::from_str_named(&text, "demo.toml").unwrap();
    let mut keys = KeyStore::new();
    for (id, key) in config.keys() {
        keys.insert_hex(&id, &key).unwrap();
    }
    let mut decoder = Decoder::with_drivers(keys, DriverSet::builtin());
    let lines = std::fs::read_to_string("config/demo-telegrams.txt").unwrap();
    let readings = lines
        .lines()
        .enumerate()
        .filter_map(|(n, l)| crate::radio::replay::parse_line(l, n + 1).unwrap())
        .filter_map(|t| decoder.decode(&RadioFrame::new(t.frame)).ok())
        .collect();
    (config, readings)
}

fn section() -> HomeAssistantSection {
    HomeAssistantSection {
        enabled: true,
        discovery_prefix: "homeassistant".into(),
    }
}

fn announcer(config: &Config, payload: PayloadFormat) -> Announcer {
    let ctx = Context {
        topic_prefix: "wmbus".into(),
        gateway: "demo".into(),
        payload,
    };
    Announcer::new(section(), ctx, &config.meters, None)
}

fn docs(messages: &[Message]) -> Vec<(String, Value)> {
    messages
        .iter()
        .map(|(t, p)| (t.clone(), serde_json::from_slice(p).unwrap()))
        .collect()
}

/// Resolves `{{ value_json.a.b }}` against a payload, as Home Assistant's template would.
fn resolve<'a>(template: &str, payload: &'a Value) -> Option<&'a Value> {
    let path = template
        .strip_prefix("{{ value_json.")?
        .strip_suffix(" }}")?;
    path.split('.').try_fold(payload, |v, key| v.get(key))
}

#[test]
fn every_demo_meter_with_fields_gets_one_valid_sensor_per_field() {
    let (config, readings) = demo_readings();
    assert!(readings.len() >= 8, "{} demo readings", readings.len());
    let mut a = announcer(&config, PayloadFormat::Full);
    for reading in &readings {
        let payload = serde_json::to_value(reading).unwrap();
        let announced = docs(&a.observe(reading));
        for (name, _) in &reading.fields {
            let topic = format!(
                "homeassistant/sensor/wmbusd_demo_{}/{name}/config",
                reading.meter.id
            );
            let Some((_, doc)) = announced.iter().find(|(t, _)| *t == topic) else {
                // A second reading of a meter announces nothing new.
                continue;
            };
            check_ha_sensor(doc)
                .map_err(|e| format!("{topic}: {e}: {doc}"))
                .unwrap();
            let template = doc["value_template"].as_str().unwrap();
            assert_eq!(
                resolve(template, &payload),
                payload["fields"].get(name),
                "{topic}"
            );
            assert_eq!(
                doc["state_topic"],
                format!("wmbus/demo/meter/{}", reading.meter.id)
            );
            assert_eq!(doc["availability_topic"], "wmbus/demo/status");
        }
    }
    let kamstrup = readings.iter().find(|r| r.meter.id == "76348799").unwrap();
    assert!(a.observe(kamstrup).is_empty(), "announced twice");
}

#[test]
fn sensor_kinds_follow_the_unit_suffix() {
    let water = sensor_kind("total_m3", "cold_water");
    assert_eq!(
        (water.device_class, water.unit, water.state_class),
        (Some("water"), Some("m³"), Some("total_increasing"))
    );
    assert_eq!(sensor_kind("total_m3", "gas").device_class, Some("gas"));
    assert_eq!(
        sensor_kind("flow_m3h", "water").device_class,
        Some("volume_flow_rate")
    );
    assert_eq!(sensor_kind("target_2_kwh", "heat").unit, Some("kWh"));
    assert_eq!(
        sensor_kind("current_room_temp_c", "hca").state_class,
        Some("measurement")
    );
    assert_eq!(
        sensor_kind("consumption_hca", "hca").state_class,
        Some("total_increasing")
    );
    assert!(sensor_kind("error_flags", "heat").diagnostic);
    let text = sensor_kind("meter_datetime", "heat");
    assert_eq!(
        (text.device_class, text.unit, text.state_class),
        (None, None, None)
    );
    assert_eq!(
        sensor_kind("target_date", "heat").device_class,
        Some("date")
    );
    for (suffix, _) in SUFFIXES {
        let doc = json!({
            "state_topic": "t", "unique_id": "u", "value_template": "v",
            "device": {"identifiers": ["d"]},
        });
        let mut doc = doc;
        let k = sensor_kind(&format!("x{suffix}"), "water");
        if let Some(c) = k.device_class {
            doc["device_class"] = json!(c);
        }
        if let Some(u) = k.unit {
            doc["unit_of_measurement"] = json!(u);
        }
        if let Some(s) = k.state_class {
            doc["state_class"] = json!(s);
        }
        check_ha_sensor(&doc)
            .map_err(|e| format!("{suffix}: {e}"))
            .unwrap();
    }
}

#[test]
fn the_rules_catch_what_home_assistant_refuses() {
    let base = json!({"state_topic": "t", "unique_id": "u", "value_template": "v",
        "device": {"identifiers": ["d"]}});
    let with = |extra: Value| {
        let mut d = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    assert!(check_ha_sensor(&with(
        json!({"device_class": "energy", "unit_of_measurement": "m³"})
    ))
    .is_err());
    assert!(check_ha_sensor(&with(json!({"device_class": "energy", "unit_of_measurement": "kWh", "state_class": "measurement"}))).is_err());
    assert!(check_ha_sensor(&with(
        json!({"device_class": "volume", "unit_of_measurement": "m3"})
    ))
    .is_err());
    assert!(check_ha_sensor(&json!({"state_topic": "t"})).is_err());
}

#[test]
fn compact_payloads_are_read_from_values() {
    let (config, readings) = demo_readings();
    let mut a = announcer(&config, PayloadFormat::Compact);
    let hydrus = readings.iter().find(|r| r.meter.id == "65656565").unwrap();
    let announced = docs(&a.observe(hydrus));
    let (_, total) = announced
        .iter()
        .find(|(t, _)| t.ends_with("/total_m3/config"))
        .unwrap();
    assert_eq!(total["value_template"], "{{ value_json.values.total_m3 }}");
    assert!(
        announced.iter().all(|(t, _)| !t.contains("rssi")),
        "compact has no rssi_dbm"
    );
}

#[test]
fn a_meter_leaving_the_configuration_is_removed_also_after_a_restart() {
    let (config, readings) = demo_readings();
    let mut a = announcer(&config, PayloadFormat::Full);
    for r in &readings {
        a.observe(r);
    }
    let memory = a.snapshot().unwrap();
    assert!(
        a.snapshot().is_none(),
        "unchanged memory is not written again"
    );
    let hydrus_topics: BTreeSet<String> = announced_topics(&memory)
        .into_iter()
        .filter(|t| t.contains("_65656565/"))
        .collect();
    assert!(hydrus_topics.len() >= 4, "{hydrus_topics:?}");
    let fewer: Vec<MeterConfig> = config
        .meters
        .iter()
        .filter(|m| m.id != "65656565")
        .cloned()
        .collect();
    // A new run remembers the topics of the earlier one.
    let ctx = Context {
        topic_prefix: "wmbus".into(),
        gateway: "demo".into(),
        payload: PayloadFormat::Full,
    };
    let mut restarted = Announcer::new(section(), ctx, &config.meters, Some(&memory));
    let removed = restarted.reconfigure(&fewer);
    assert_eq!(
        removed
            .iter()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>(),
        hydrus_topics
    );
    assert!(removed.iter().all(|(_, p)| p.is_empty()));
    assert!(restarted.reconfigure(&fewer).is_empty());
    // A meter not configured is never announced.
    let hydrus = readings.iter().find(|r| r.meter.id == "65656565").unwrap();
    assert!(restarted.observe(hydrus).is_empty());
}

#[test]
fn ids_and_names_are_what_home_assistant_accepts() {
    assert_eq!(object_id("gw 1/ü"), "gw_1__");
    assert_eq!(entity_name("total_m3"), "Total");
    assert_eq!(entity_name("target_2_kwh"), "Target 2");
    assert_eq!(entity_name("meter_datetime"), "Meter");
    assert_eq!(entity_name("error_flags"), "Error flags");
}
