use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::wire::apl;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn records(s: &str) -> Vec<Record> {
    let bytes = hex(s);
    records_from_apl(&apl::parse(&bytes).unwrap())
}

fn json(r: &Record) -> String {
    serde_json::to_string(r).unwrap()
}

fn number(n: i128) -> Value {
    Value::Number(Decimal::new(n, 0))
}

#[test]
fn fields_refill_from_shared_names() {
    let names = FieldNames::new(["b_m3", "a_date", "c_flags", "b_m3"]);
    assert_eq!(
        names.iter().collect::<Vec<_>>(),
        ["a_date", "b_m3", "c_flags"]
    );
    let mut fields = Fields::new();
    fields.refill(&names, |i, slot| {
        *slot = match i {
            0 => Value::Text("2026-10-31".to_owned()),
            1 => number(7),
            _ => return Fill::Absent,
        };
        Fill::Value
    });
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["a_date", "b_m3"]);
    assert_eq!(fields["b_m3"], number(7));
    fields.clear();
    assert!(fields.is_empty() && fields.get("a_date").is_none());
    // The next telegram may leave fields out.
    fields.refill(&names, |i, slot| {
        if i == 2 {
            *slot = Value::Null;
            return Fill::Value;
        }
        Fill::Absent
    });
    assert_eq!(
        fields.iter().collect::<Vec<_>>(),
        [("c_flags", &Value::Null)]
    );
    assert_eq!(fields.len(), 1);
}

#[test]
fn fields_insert_copies_shared_names_and_compares_by_name() {
    let names = FieldNames::new(["b_m3", "d_m3"]);
    let mut fields = Fields::new();
    fields.refill(&names, |i, slot| {
        *slot = number(i as i128);
        Fill::Value
    });
    fields.insert("c_flags", number(9));
    fields.insert("e_flags", number(10));
    fields.insert("b_m3", number(5));
    // The driver's table is unchanged.
    assert_eq!(names.iter().collect::<Vec<_>>(), ["b_m3", "d_m3"]);
    let expected: Fields = [
        ("e_flags", number(10)),
        ("b_m3", number(5)),
        ("d_m3", number(1)),
        ("c_flags", number(9)),
    ]
    .into_iter()
    .collect();
    assert_eq!(fields, expected);
    assert_eq!(
        serde_json::to_string(&fields).unwrap(),
        r#"{"b_m3":5,"c_flags":9,"d_m3":1,"e_flags":10}"#
    );
    assert_eq!(serde_json::to_string(&Fields::new()).unwrap(), "{}");
}

#[test]
fn field_names_sort_naturally_and_keys_escape() {
    let fields: Fields = [
        ("target_10", Value::Null),
        ("target_2", Value::Null),
        ("x\"", number(1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        serde_json::to_string(&fields).unwrap(),
        r#"{"target_2":null,"target_10":null,"x\"":1}"#
    );
    let back: Fields =
        serde_json::from_str(r#"{"target_10":null,"target_2":null,"x\"":1}"#).unwrap();
    assert_eq!(back, fields);
}
/// A reading with every rare member set: names needing escapes, extreme numbers, a
/// profile of every point kind, several receivers.
fn rare_reading() -> Reading {
    let record = Record {
        quantity: Cow::Owned("odd \"name\"\\ \u{1}\u{7f} ü".to_owned()),
        value: Value::Number(Decimal::new(-15, -4)),
        unit: None,
        function: Function::Error,
        storage: u64::MAX,
        tariff: 3,
        subunit: 1,
        dif_vif: "8C14".to_owned(),
        error: Some(Cow::Borrowed("data_error")),
        qualifiers: vec![Cow::Borrowed("per_hour"), Cow::Borrowed("start_date")],
        unit_text: Some("l/\n".to_owned()),
        raw: Some("00FF".to_owned()),
        profile: Some(Profile {
            kind: Cow::Borrowed("compact_profile_with_register_numbers"),
            mode: Cow::Borrowed("absolute"),
            spacing: "1 month".to_owned(),
            unit: Some(Cow::Borrowed("hca")),
            values: vec![
                Value::Number(Decimal::new(627, 0)),
                Value::Null,
                Value::Text("x".to_owned()),
                Value::Number(Decimal::new(i128::MAX, 3)),
            ],
            points: vec![
                ProfilePoint {
                    value: Value::Number(Decimal::new(627, 0)),
                    date: Some("2024-01-31".to_owned()),
                    storage: None,
                },
                ProfilePoint {
                    value: Value::Null,
                    date: None,
                    storage: Some(u64::MAX),
                },
            ],
        }),
    };
    Reading {
        schema: SCHEMA_VERSION,
        meter: Meter {
            id: "76348799".to_owned(),
            manufacturer: "KAM".to_owned(),
            version: 27,
            device_type: "cold_water".to_owned(),
            name: Some("flat \"3b\"".to_owned()),
        },
        gateway: Some("gw-1".to_owned()),
        received_at: Some("2026-11-22T22:30:00Z".to_owned()),
        rssi_dbm: Some(f32::NAN),
        link_mode: Some("C1+T1".to_owned()),
        access_number: Some(255),
        status: Status::from_byte(0xFF),
        security: Security {
            mode: 7,
            decrypted: true,
            verified_by: Some("mac".to_owned()),
            scheme: Some("aes_cbc_mode_7".into()),
        },
        records: vec![record.clone(), record],
        manufacturer_data: Some("ABCD".to_owned()),
        unparsed: Some(Unparsed {
            offset: 40,
            reason: "truncated \"record\"".to_owned(),
            hex: "0C".to_owned(),
        }),
        driver: Some("multical21".into()),
        driver_error: None,
        fields: [
            ("total_m3".to_owned(), Value::Number(Decimal::new(6408, -3))),
            ("note\"s".to_owned(), Value::Text("a\nb".to_owned())),
            ("target_date".to_owned(), Value::Null),
        ]
        .into_iter()
        .collect(),
        report: None,
        diagnostics: None,
        receivers: vec![
            Receiver {
                radio: "/dev/serial/by-id/usb-\"x\"".to_owned(),
                rssi_dbm: Some(-55.5),
            },
            Receiver {
                radio: "replay".to_owned(),
                rssi_dbm: None,
            },
        ],
    }
}

/// The JSON of readings with rare members, pinned: the serde derive's output, which
/// the direct writer that serde replaced was tested to print byte for byte.
#[test]
fn rare_fields_serialise_exactly() {
    let reading = rare_reading();
    assert_eq!(serde_json::to_string(&reading).unwrap(), RARE_JSON);
    let empty = Reading {
        receivers: Vec::new(),
        records: Vec::new(),
        rssi_dbm: Some(-80.25),
        gateway: None,
        security: Security {
            verified_by: None,
            scheme: None,
            ..reading.security.clone()
        },
        ..reading
    };
    assert_eq!(serde_json::to_string(&empty).unwrap(), EMPTY_JSON);
}

const RARE_JSON: &str = concat!(
    r#"{"schema":1,"meter":{"id":"76348799","manufacturer":"KAM","version":27,"device_type":"cold_water","name":"flat \"3b\""},"gateway":"gw-1","received_at":"2026-11-22T22:30:00Z","rssi_dbm":null,"link_mode":"C1+T1","access_number":255,"status":{"byte":255,"flags":["alarm","power_low","permanent_error","temporary_error","manufacturer_bit5","manufacturer_bit6","manufacturer_bit7"]},"security":{"mode":7,"decrypted":true,"verified_by":"mac","scheme":"aes_cbc_mode_7"},"records":[{"quantity":"odd \"name\"\\ \u0001"#,
    "\u{7f}",
    r#" ü","value":-0.0015,"unit":null,"function":"error","storage":18446744073709551615,"tariff":3,"subunit":1,"dif_vif":"8C14","error":"data_error","qualifiers":["per_hour","start_date"],"unit_text":"l/\n","raw":"00FF","profile":{"kind":"compact_profile_with_register_numbers","mode":"absolute","spacing":"1 month","unit":"hca","values":[627,null,"x",1.7014118346046923e+41],"points":[{"value":627,"date":"2024-01-31"},{"value":null,"storage":18446744073709551615}]}},{"quantity":"odd \"name\"\\ \u0001"#,
    "\u{7f}",
    r#" ü","value":-0.0015,"unit":null,"function":"error","storage":18446744073709551615,"tariff":3,"subunit":1,"dif_vif":"8C14","error":"data_error","qualifiers":["per_hour","start_date"],"unit_text":"l/\n","raw":"00FF","profile":{"kind":"compact_profile_with_register_numbers","mode":"absolute","spacing":"1 month","unit":"hca","values":[627,null,"x",1.7014118346046923e+41],"points":[{"value":627,"date":"2024-01-31"},{"value":null,"storage":18446744073709551615}]}}],"manufacturer_data":"ABCD","unparsed":{"offset":40,"reason":"truncated \"record\"","hex":"0C"},"driver":"multical21","fields":{"note\"s":"a\nb","target_date":null,"total_m3":6.408},"receivers":[{"radio":"/dev/serial/by-id/usb-\"x\"","rssi_dbm":-55.5},{"radio":"replay"}]}"#
);
const EMPTY_JSON: &str = r#"{"schema":1,"meter":{"id":"76348799","manufacturer":"KAM","version":27,"device_type":"cold_water","name":"flat \"3b\""},"received_at":"2026-11-22T22:30:00Z","rssi_dbm":-80.25,"link_mode":"C1+T1","access_number":255,"status":{"byte":255,"flags":["alarm","power_low","permanent_error","temporary_error","manufacturer_bit5","manufacturer_bit6","manufacturer_bit7"]},"security":{"mode":7,"decrypted":true,"verified_by":null},"records":[],"manufacturer_data":"ABCD","unparsed":{"offset":40,"reason":"truncated \"record\"","hex":"0C"},"driver":"multical21","fields":{"note\"s":"a\nb","target_date":null,"total_m3":6.408}}"#;

/// Readings of every corpus telegram that decodes, each with receive metadata.
fn corpus_readings() -> Vec<Reading> {
    use crate::decode::Decoder;
    use crate::frame::{parse_hex, LinkMode, RadioFrame};
    use crate::keys::KeyStore;

    let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
    let entries: Vec<serde_json::Value> = corpus
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut readings = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let mut keys = KeyStore::new();
        if let Some(key) = entry["key"].as_str() {
            keys.set_default_hex(key).unwrap();
        }
        let mut decoder = Decoder::new(keys);
        // Earlier telegrams of the same meter first, so compact frames find formats.
        let earlier = entries[..n]
            .iter()
            .filter(|e| e["meter_id"] == entry["meter_id"])
            .filter_map(|e| e["telegram"].as_str());
        let priors = entry["prior_telegrams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str());
        for hex in earlier.chain(priors) {
            let _ = decoder.decode(&RadioFrame::new(parse_hex(hex).unwrap()));
        }
        let mut frame = RadioFrame::new(parse_hex(entry["telegram"].as_str().unwrap()).unwrap());
        frame.rssi_dbm = Some(-67.5 - n as f32 / 7.0);
        frame.link_mode = Some(LinkMode::C1);
        frame.received_at =
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000 + n as u64));
        if let Ok(reading) = decoder.decode(&frame) {
            readings.push(reading);
        }
    }
    readings
}

/// The subschema of `schema` (the reading schema, whose `$ref`s point into its `$defs`)
/// that describes member `key` of an object `at` describes, or the items of an array.
fn member<'a>(
    root: &'a serde_json::Value,
    at: &'a serde_json::Value,
    key: Option<&str>,
) -> Option<&'a serde_json::Value> {
    let at = match at["$ref"].as_str() {
        Some(path) => root.pointer(path.strip_prefix('#')?)?,
        None => at,
    };
    match key {
        None => at.get("items"),
        Some(key) => at["properties"]
            .get(key)
            .or_else(|| at.get("additionalProperties").filter(|a| a.is_object())),
    }
}

/// Every member name of `json` with its dotted path below `path`, checked against the
/// schema and the documentation. The contents of `fields` (driver-defined names) are
/// the driver's, not the schema's.
fn check_documented(
    (root, at): (&serde_json::Value, &serde_json::Value),
    path: &str,
    json: &serde_json::Value,
    docs: &str,
    seen: &mut std::collections::BTreeSet<String>,
) {
    match json {
        serde_json::Value::Object(map) if path != "fields" => {
            for (key, value) in map {
                let full = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let schema = member(root, at, Some(key))
                    .unwrap_or_else(|| panic!("`{full}` is not in schema/reading.v1.schema.json"));
                let named = [
                    format!("`{full}`"),
                    format!("`{key}`"),
                    format!("\"{key}\":"),
                ];
                assert!(
                    named.iter().any(|n| docs.contains(n.as_str())),
                    "`{full}` is not documented in docs/reading-schema.md"
                );
                seen.insert(full.clone());
                check_documented((root, schema), &full, value, docs, seen);
            }
        }
        serde_json::Value::Array(items) => {
            let schema = member(root, at, None).unwrap_or_else(|| panic!("`{path}` items"));
            for item in items {
                check_documented((root, schema), path, item, docs, seen);
            }
        }
        _ => {}
    }
}

#[test]
fn every_emitted_field_is_documented_and_in_the_schema() {
    let docs = include_str!("../../docs/reading-schema.md");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schema/reading.v1.schema.json")).unwrap();
    let mut readings = corpus_readings();
    assert!(
        readings.len() > 200,
        "only {} corpus telegrams decoded",
        readings.len()
    );
    let mut full = rare_reading();
    full.report = Some(Report {
        kind: "alarm".to_owned(),
        code: 2,
        name: "buffer too long, truncated".to_owned(),
    });
    full.diagnostics = Some(Diagnostics {
        trailing_bytes: 3,
        lenient_length: Some(0x2E),
        notes: vec![Cow::Borrowed(CLAIMED_MODE_PLAINTEXT)],
    });
    full.driver_error = Some("vendor frame too short".to_owned());
    readings.push(full);
    let mut seen = std::collections::BTreeSet::new();
    for reading in &readings {
        let json = serde_json::to_value(reading).unwrap();
        check_documented((&schema, &schema), "", &json, docs, &mut seen);
    }
    // The readings above reach every member a reading has.
    for path in [
        "meter.name",
        "gateway",
        "security.scheme",
        "unparsed.offset",
        "driver_error",
        "report.code",
        "diagnostics.lenient_length",
        "diagnostics.notes",
        "receivers.rssi_dbm",
        "records.profile.points.storage",
        "records.profile.points.date",
        "records.unit_text",
        "fields",
    ] {
        assert!(seen.contains(path), "no reading emits `{path}`");
    }
}
#[test]
fn upper_hex_matches_hex_crate() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(upper_hex(&all), hex::encode_upper(&all));
    assert_eq!(upper_hex(&[]), "");
}

#[test]
fn inverse_compact_profile_publishes_its_history() {
    // ZRI heat cost allocator 80081812 (corpus): the reference reads the consumption
    // of the four months before the storage-8 date as 627, 395, 176 and 7 units.
    let r = records("8D 04 EE 13 0E 3B FE 27 06 00 95 03 00 76 01 00 07 00 00");
    assert_eq!(r.len(), 1);
    assert_eq!(
        json(&r[0]),
        r#"{"quantity":"hca","value":"3BFE270600950300760100070000","unit":null,"function":"instantaneous","storage":8,"tariff":0,"subunit":0,"dif_vif":"8D04EE13","qualifiers":["inverse_compact_profile"],"profile":{"kind":"inverse_compact_profile","mode":"absolute","spacing":"1 month","unit":"hca","values":[627,395,176,7],"points":[{"value":627},{"value":395},{"value":176},{"value":7}]}}"#
    );
    let back: Record = serde_json::from_str(&json(&r[0])).unwrap();
    assert_eq!(back, r[0]);
    // Other records carry no profile.
    assert_eq!(records("04 13 01 00 00 00")[0].profile, None);
}

#[test]
fn example_reading_json_is_exact() {
    let reading = Reading {
        schema: SCHEMA_VERSION,
        meter: Meter {
            id: "12345678".into(),
            manufacturer: "KAM".into(),
            version: 27,
            device_type: "cold_water".into(),
            name: None,
        },
        gateway: None,
        received_at: None,
        rssi_dbm: None,
        link_mode: None,
        access_number: Some(42),
        status: Status::from_byte(0),
        security: Security {
            mode: 5,
            decrypted: true,
            verified_by: Some("2f2f".into()),
            scheme: None,
        },
        records: records("0C13 56341200"),
        manufacturer_data: None,
        unparsed: None,
        driver: None,
        driver_error: None,
        fields: Fields::new(),
        report: None,
        diagnostics: None,
        receivers: Vec::new(),
    };
    let text = serde_json::to_string(&reading).unwrap();
    assert_eq!(
        text,
        r#"{"schema":1,"meter":{"id":"12345678","manufacturer":"KAM","version":27,"device_type":"cold_water"},"access_number":42,"status":{"byte":0,"flags":[]},"security":{"mode":5,"decrypted":true,"verified_by":"2f2f"},"records":[{"quantity":"volume","value":123.456,"unit":"m3","function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"0C13"}]}"#
    );
    let back: Reading = serde_json::from_str(&text).unwrap();
    assert_eq!(back, reading);
}

#[test]
fn optional_fields_round_trip() {
    let reading = Reading {
        schema: SCHEMA_VERSION,
        meter: Meter {
            id: "43054304".into(),
            manufacturer: "EFE".into(),
            version: 0,
            device_type: "heat".into(),
            name: None,
        },
        gateway: None,
        received_at: Some("2026-11-22T22:30:00Z".into()),
        rssi_dbm: Some(-67.5),
        link_mode: Some("C1".into()),
        access_number: None,
        status: Status::from_byte(0x85),
        security: Security {
            mode: 0,
            decrypted: false,
            verified_by: None,
            scheme: None,
        },
        records: records("0DFD11 02 4241 02FF2C 0100 0493 15 00000000 81037C034C412300"),
        manufacturer_data: Some("AABB".into()),
        unparsed: None,
        driver: Some("example".into()),
        driver_error: None,
        fields: [
            (
                "total_m3".to_owned(),
                Value::Number(Decimal::new(12345, -3)),
            ),
            ("target_date".to_owned(), Value::Text("2026-10-31".into())),
        ]
        .into_iter()
        .collect(),
        report: None,
        diagnostics: None,
        receivers: Vec::new(),
    };
    let text = serde_json::to_string(&reading).unwrap();
    assert!(text.contains(r#""flags":["busy","power_low","manufacturer_bit7"]"#));
    assert!(text.contains(r#""verified_by":null"#));
    assert!(text.contains(r#""rssi_dbm":-67.5"#));
    assert!(text.ends_with(
        r#""driver":"example","fields":{"target_date":"2026-10-31","total_m3":12.345}}"#
    ));
    let back: Reading = serde_json::from_str(&text).unwrap();
    assert_eq!(back, reading);
}

#[test]
fn exact_values() {
    let r = records("04 13 40E20100  0C 14 27048502  04 13 17941400  02 59 D409");
    assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "123.456");
    assert_eq!(serde_json::to_string(&r[1].value).unwrap(), "28504.27");
    assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "1348.631");
    assert_eq!(serde_json::to_string(&r[3].value).unwrap(), "25.16");
    assert_eq!(r[3].unit.as_deref(), Some("C"));
}

#[test]
fn oms_plaintext_records() {
    let r = records("2F2F0C1427048502046D32371F1502FD1700002F2F2F");
    assert_eq!(
        json(&r[0]),
        r#"{"quantity":"volume","value":28504.27,"unit":"m3","function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"0C14"}"#
    );
    assert_eq!(
        json(&r[1]),
        r#"{"quantity":"datetime","value":"2008-05-31T23:50","unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"046D"}"#
    );
    assert_eq!(
        json(&r[2]),
        r#"{"quantity":"error_flags","value":0,"unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"02FD17"}"#
    );
}

#[test]
fn lvar_text_bcd12_and_negative_bcd() {
    let r = records(
        "0E13750600000000 0DFD11 2065646F4D20532021 6C75646F6D7473 6554207373656C 657269 7720 5245424D41 0A1623F1",
    );
    assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "0.675");
    assert_eq!(r[1].quantity, "customer");
    assert_eq!(
        r[1].value,
        Value::Text("AMBER wireless Testmodul! S Mode".into())
    );
    assert_eq!(r[1].unit, None);
    assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "-123");
}

#[test]
fn sontex_hca_records() {
    let r = records("046d1912a62b036e000000426ce1f1436e00000002ff2c00000259d4090265fc0902fd66a000");
    assert_eq!(r[0].value, Value::Text("2021-11-06T18:25".into()));
    assert_eq!(
        (r[1].quantity.as_ref(), r[1].unit.as_deref()),
        ("hca", Some("hca"))
    );
    assert_eq!(
        (r[2].storage, &r[2].value),
        (1, &Value::Text("XXXX-01-01".into()))
    );
    assert_eq!(
        json(&r[4]),
        r#"{"quantity":"manufacturer_specific","value":0,"unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"02FF2C","raw":"0000"}"#
    );
    assert_eq!(r[6].quantity, "external_temperature");
    assert_eq!(serde_json::to_string(&r[6].value).unwrap(), "25.56");
    assert_eq!(r[7].quantity, "parameter_activation_state");
    assert_eq!(serde_json::to_string(&r[7].value).unwrap(), "160");
}

#[test]
fn sensostar_energy_and_storage() {
    let r = records("04067D240000 4406250B0000 84010653230000 840F0600000000 03FD0C050100");
    assert_eq!(
        (r[0].quantity.as_ref(), r[0].unit.as_deref()),
        ("energy", Some("kWh"))
    );
    assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "9341");
    assert_eq!((r[1].storage, r[2].storage, r[3].storage), (1, 2, 30));
    assert_eq!(r[4].quantity, "model_version");
}

#[test]
fn record_errors_qualifiers_and_plain_text() {
    let r = records("0493150000 0000 04933B 10000000 81037C034C412300 01FD9700 02");
    assert_eq!(r[0].value, Value::Null);
    assert_eq!(r[0].error.as_deref(), Some("no_data_available"));
    assert_eq!(r[1].qualifiers, ["forward_flow"]);
    assert_eq!(serde_json::to_string(&r[1].value).unwrap(), "0.016");
    assert_eq!(r[2].quantity, "plain_text");
    assert_eq!(r[2].unit_text.as_deref(), Some("#AL"));
    assert_eq!(r[2].storage, 6);
    // FD 17 + VIFE 0x00 ("no error") keeps the value.
    assert_eq!(r[3].error, None);
    assert_eq!(r[3].value, Value::Number(Decimal::from(2u64)));
}

#[test]
fn function_and_tariff_serialise() {
    let r = records("94 10 13 01000000  2A 59 0000");
    assert!(json(&r[0]).contains(r#""function":"maximum","storage":0,"tariff":1"#));
    assert!(json(&r[1]).contains(r#""function":"minimum""#));
}

#[test]
fn status_flags() {
    assert!(Status::from_byte(0).flags.is_empty());
    assert_eq!(Status::from_byte(0x02).flags, ["error"]);
    assert_eq!(
        Status::from_byte(0x1B).flags,
        ["alarm", "permanent_error", "temporary_error"]
    );
    assert_eq!(
        Status::from_byte(0x60).flags,
        ["manufacturer_bit5", "manufacturer_bit6"]
    );
}

#[test]
fn invalid_value_is_null_and_units_follow_table() {
    let r = records("02 16 0080  04 2B 01000000  04 FB 00 01000000  02 FD 48 0100");
    assert_eq!(r[0].value, Value::Null);
    assert_eq!(r[0].unit.as_deref(), Some("m3"));
    assert_eq!(
        (
            r[1].unit.as_deref(),
            json(&r[1]).contains(r#""value":0.001"#)
        ),
        (Some("kW"), true)
    );
    assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "100");
    assert_eq!(r[2].unit.as_deref(), Some("kWh"));
    assert_eq!(r[3].unit.as_deref(), Some("V"));
    assert_eq!(serde_json::to_string(&r[3].value).unwrap(), "0.1");
}

proptest! {
    #[test]
    fn decimal_values_round_trip(m in -999_999_999_999i128..1_000_000_000_000, e in -9i32..=6) {
        // Meter-sized values: up to 12 digits, exponents of VIF tables. These parse
        // exactly in serde_json's float fast path.
        let v = Value::Number(Decimal::new(m, e));
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn any_apl_converts(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(apl) = apl::parse(&bytes) {
            for r in records_from_apl(&apl) {
                let text = serde_json::to_string(&r).unwrap();
                let back: Record = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(&back.dif_vif, &r.dif_vif);
                prop_assert_eq!(&back.quantity, &r.quantity);
                match (&back.value, &r.value) {
                    // Extreme real32 exponents leave serde_json's exact float path;
                    // allow its last-digit error there.
                    (Value::Number(a), Value::Number(b)) => {
                        let (a, b) = (a.to_f64(), b.to_f64());
                        prop_assert!((a - b).abs() <= b.abs() * 1e-15, "{} vs {}", a, b);
                    }
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }
    }
}
