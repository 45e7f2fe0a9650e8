use super::extract::decode_number;
use super::*;
use crate::reading::{Decimal, Value};
use crate::wire::apl;

const MINIMAL: &str = r#"name = "demo"
manufacturer = "KAM"
versions = [0x1B]
device_types = [0x16]
compact_formats = ["02FF20 0413 4413"]

[fields.total_m3]
quantity = "volume"

[bytes.status_flags]
source = "record:02FF20"
offset = 0
length = 1
encoding = "bits"
mask = 0x0C
"#;

fn reject(text: &str) -> DefinitionError {
    match Driver::parse("demo.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn reading_from(records_hex: &str) -> Reading {
    let bytes = hex::decode(records_hex.replace(' ', "")).unwrap();
    let apl = apl::parse(&bytes).unwrap();
    let mut reading: Reading = serde_json::from_str(
        r#"{"schema":1,"meter":{"id":"1","manufacturer":"KAM","version":27,"device_type":"cold_water"},
            "status":{"byte":0,"flags":[]},"security":{"mode":0,"decrypted":false,"verified_by":null},
            "records":[]}"#,
    )
    .unwrap();
    reading.records = crate::reading::records_from_apl(&apl);
    reading
}

#[test]
fn minimal_definition_loads_and_matches_its_model_only() {
    let driver = Driver::parse("demo.toml", MINIMAL).unwrap();
    assert_eq!(driver.name(), "demo");
    assert!(driver.matches("KAM", 0x1B, 0x16));
    assert!(driver.matches("kam", 0x1B, 0x16));
    assert!(!driver.matches("KAM", 0x1C, 0x16));
    assert!(!driver.matches("KAM", 0x1B, 0x07));
    assert!(!driver.matches("QDS", 0x1B, 0x16));
    assert_eq!(driver.compact_formats().len(), 1);
    assert_eq!(driver.compact_formats()[0].records.len(), 3);
}

#[test]
fn fields_and_bits_come_from_records() {
    let driver = Driver::parse("demo.toml", MINIMAL).unwrap();
    // Info codes 0x0D: bits 2..3 = 0b11; volume 6.408 m3.
    let mut reading = reading_from("02FF20 0D00 0413 08190000");
    driver.apply(&mut reading);
    assert_eq!(reading.driver.as_deref(), Some("demo"));
    assert_eq!(
        serde_json::to_string(&reading.fields).unwrap(),
        r#"{"status_flags":3,"total_m3":6.408}"#
    );
}

#[test]
fn absent_sources_leave_fields_out() {
    let driver = Driver::parse("demo.toml", MINIMAL).unwrap();
    let mut reading = reading_from("4413 08190000");
    driver.apply(&mut reading);
    assert!(reading.fields.is_empty());
    assert_eq!(reading.driver.as_deref(), Some("demo"));
}

#[test]
fn units_convert_exactly_or_not_at_all() {
    let text = r#"name = "u"
manufacturer = "KAM"
[fields.flow_m3h]
quantity = "volume_flow"
[fields.total_energy_consumption_kwh]
quantity = "energy"
[fields.on_time_h]
quantity = "on_time"
"#;
    let driver = Driver::parse("u.toml", text).unwrap();
    // 0.5 m3/min = 30 m3/h; energy in MJ (no exact kWh); on time 2 days = 48 h.
    let mut reading = reading_from("02 46 0500  04 0E 01000000  02 23 0200");
    driver.apply(&mut reading);
    assert_eq!(
        serde_json::to_string(&reading.fields).unwrap(),
        r#"{"flow_m3h":30,"on_time_h":48}"#
    );
}

#[test]
fn units_outside_the_vocabulary_take_unitless_records_as_sent() {
    let text = r#"name = "rh"
manufacturer = "KAM"
[fields.current_relative_humidity_rh]
quantity = "relative_humidity_percent"
[fields.current_temperature_c]
quantity = "external_temperature"
"#;
    let driver = Driver::parse("rh.toml", text).unwrap();
    // Humidity 01 FB 1A (0.1 %): 44 -> 4.4; temperature 02 65 (0.01 C): 2180 -> 21.8.
    let mut reading = reading_from("01 FB1A 2C  02 65 8408");
    driver.apply(&mut reading);
    assert_eq!(
        serde_json::to_string(&reading.fields).unwrap(),
        r#"{"current_relative_humidity_rh":4.4,"current_temperature_c":21.8}"#
    );
    // A record with a unit never feeds such a field: 02 65 into an `_rh` name is absent.
    let text = r#"name = "rh"
manufacturer = "KAM"
[fields.wrong_rh]
quantity = "external_temperature"
"#;
    let driver = Driver::parse("rh.toml", text).unwrap();
    let mut reading = reading_from("02 65 8408");
    driver.apply(&mut reading);
    assert!(reading.fields.is_empty());
}

#[test]
fn numbers_decode_per_encoding() {
    let d = |bytes: &[u8], e, mask| decode_number(bytes, e, mask);
    assert_eq!(
        d(&[0x34, 0x12], Encoding::UintLe, None),
        Some(Decimal::from(0x1234u64))
    );
    assert_eq!(
        d(&[0xFE, 0xFF], Encoding::IntLe, None),
        Some(Decimal::from(-2i64))
    );
    assert_eq!(
        d(&[0xFF; 8], Encoding::IntLe, None),
        Some(Decimal::from(-1i64))
    );
    assert_eq!(
        d(&[0x56, 0x34, 0x12], Encoding::Bcd, None),
        Some(Decimal::from(123_456u64))
    );
    assert_eq!(d(&[0x5A], Encoding::Bcd, None), None);
    assert_eq!(
        d(&[0x71, 0x00], Encoding::Bits, Some(0x70)),
        Some(Decimal::from(7u64))
    );
    assert_eq!(d(&[], Encoding::UintLe, None), None);
    assert_eq!(d(&[0; 9], Encoding::UintLe, None), None);
}

#[test]
fn scaled_vendor_bytes_are_exact() {
    let text = r#"name = "s"
manufacturer = "KAM"
[bytes.total_m3]
source = "manufacturer_data"
offset = 1
length = 3
encoding = "bcd"
scale = "0.001"
unit = "m3"
"#;
    let driver = Driver::parse("s.toml", text).unwrap();
    let mut reading = reading_from("0413 08190000");
    reading.manufacturer_data = Some("AA563412".into());
    driver.apply(&mut reading);
    assert_eq!(
        reading.fields.get("total_m3"),
        Some(&Value::Number(Decimal::new(123_456, -3)))
    );
    // Bytes beyond the data: the field is left out.
    reading.manufacturer_data = Some("AA5634".into());
    driver.apply(&mut reading);
    assert!(reading.fields.is_empty());
}

#[test]
fn errors_name_line_column_and_reason() {
    let e = reject("name = \"x\"\nmanufacturer = \"KAM\"\ncolour = 3\n");
    assert_eq!((e.file.as_str(), e.line), ("demo.toml", 3));
    assert!(e.reason.contains("unknown field `colour`"), "{e}");

    let e = reject("name = \"x\"\nmanufacturer = \"KAM\"\n[fields.total]\nquantity = \"volume\"\n");
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("does not end in a unit"), "{e}");

    let e = reject(
        "name = \"x\"\nmanufacturer = \"KAM\"\n[bytes.a_m3]\nsource = \"manufacturer_data\"\n\
         offset = 0\nlength = 2\nencoding = \"float\"\n",
    );
    assert_eq!(e.line, 7);
    assert!(e.reason.contains("unknown variant `float`"), "{e}");

    let e = reject("name = \"x\"\nmanufacturer = \"K4M\"\n");
    assert_eq!((e.line, e.column), (2, 16));

    let e = reject(
        "name = \"x\"\nmanufacturer = \"KAM\"\nversions = [1]\ndevice_types = [7]\n\
         compact_formats = [\"0F\"]\n",
    );
    assert_eq!(e.line, 5);
    assert!(e.reason.contains("compact format"), "{e}");

    let e = reject("name = \"x\"\nmanufacturer = \"KAM\"\ncompact_formats = [\"0413\"]\n");
    assert!(e.reason.contains("explicit `versions`"), "{e}");
    assert!(e.to_string().starts_with("demo.toml:3:20: "), "{e}");
}

#[test]
fn vendor_byte_definitions_are_checked() {
    let base = "name = \"x\"\nmanufacturer = \"KAM\"\n[bytes.a_flags]\n";
    for (body, reason) in [
        (
            "source = \"telegram\"\noffset = 0\nlength = 1\nencoding = \"uint_le\"\n",
            "expected \"manufacturer_data\"",
        ),
        (
            "source = \"record:XY\"\noffset = 0\nlength = 1\nencoding = \"uint_le\"\n",
            "not hex",
        ),
        (
            "source = \"manufacturer_data\"\noffset = 0\nlength = 9\nencoding = \"uint_le\"\n",
            "1 to 8 bytes",
        ),
        (
            "source = \"manufacturer_data\"\noffset = 0\nlength = 1\nencoding = \"bits\"\n",
            "needs a mask",
        ),
        (
            "source = \"manufacturer_data\"\noffset = 0\nlength = 1\nencoding = \"bcd\"\nmask = 1\n",
            "mask only applies",
        ),
        (
            "source = \"manufacturer_data\"\noffset = 0\nlength = 1\nencoding = \"bcd\"\nscale = \"1e3\"\n",
            "not a decimal",
        ),
        (
            "source = \"manufacturer_data\"\noffset = 0\nlength = 1\nencoding = \"bcd\"\nunit = \"m3\"\n",
            "no unit suffix",
        ),
    ] {
        let e = reject(&format!("{base}{body}"));
        assert!(e.reason.contains(reason), "{body}: {e}");
        assert_eq!(e.line, 3, "{body}");
    }
}

#[test]
fn suffixes_pick_the_longest_match() {
    assert!(matches!(
        model::field_kind("flow_m3h"),
        Some(FieldKind::Unit { unit: "m3/h", .. })
    ));
    assert!(matches!(
        model::field_kind("total_energy_consumption_kwh"),
        Some(FieldKind::Unit { unit: "kWh", .. })
    ));
    assert!(matches!(
        model::field_kind("on_time_h"),
        Some(FieldKind::Unit { unit: "h", .. })
    ));
    assert_eq!(model::field_kind("target_date"), Some(FieldKind::Date));
    assert_eq!(model::field_kind("status_flags"), Some(FieldKind::Plain));
    assert_eq!(model::field_kind("_m3"), None);
    assert_eq!(model::field_kind("volume"), None);
}

#[test]
fn dropped_definitions_override_builtins_and_reject_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let replacement = MINIMAL.replace("name = \"demo\"", "name = \"multical21\"");
    std::fs::write(dir.path().join("a.toml"), &replacement).unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not a definition").unwrap();
    let mut set = DriverSet::builtin();
    let before = set.len();
    assert_eq!(set.load_dir(dir.path()).unwrap(), 1);
    assert_eq!(set.len(), before);
    let selected = set.select("KAM", 0x1B, 0x16).unwrap();
    assert!(selected.source.ends_with("a.toml"));

    std::fs::write(dir.path().join("b.toml"), &replacement).unwrap();
    let err = DriverSet::builtin().load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, LoadError::Duplicate { .. }), "{err}");
}

#[test]
fn declared_formats_reach_the_cache() {
    let mut set = DriverSet::empty();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("demo.toml"), MINIMAL).unwrap();
    set.load_dir(dir.path()).unwrap();
    let format = set.get("demo").unwrap().compact_formats()[0].clone();
    let mut cache = FormatCache::new();
    set.declare_formats(&mut cache);
    let meter = crate::formats::MeterKey {
        manufacturer: Manufacturer::from_code("KAM").unwrap().raw(),
        id: [1, 2, 3, 4],
        version: 0x1B,
        device_type: 0x16,
    };
    assert_eq!(cache.lookup(&meter, format.signature()), Some(&format));
    let other = crate::formats::MeterKey {
        version: 0x1C,
        ..meter
    };
    assert_eq!(cache.lookup(&other, format.signature()), None);
    // Declared model formats are not meter formats: nothing to persist.
    assert!(cache.export().is_empty());
}

#[test]
fn vendor_dates_and_record_precedence() {
    let text = r#"name = "d"
manufacturer = "QDS"
[fields.set_date]
quantity = "date"
storage = 1
[bytes.set_date]
source = "manufacturer_data"
offset = 0
length = 2
encoding = "date_g"
[bytes.set_date_17]
source = "manufacturer_data"
offset = 2
length = 2
encoding = "date_g"
"#;
    let driver = Driver::parse("d.toml", text).unwrap();
    // Type G 0x2C9F = 2020-12-31, FFFF = no date.
    let mut reading = reading_from("0413 08190000");
    reading.manufacturer_data = Some("9F2CFFFF".into());
    driver.apply(&mut reading);
    assert_eq!(
        serde_json::to_string(&reading.fields).unwrap(),
        r#"{"set_date":"2020-12-31","set_date_17":null}"#
    );
    // With the standard record present, the record wins.
    let mut reading = reading_from("426C E1F1");
    reading.manufacturer_data = Some("9F2CFFFF".into());
    driver.apply(&mut reading);
    assert_eq!(reading.fields["set_date"], Value::Text("XXXX-01-01".into()));

    for (body, reason) in [
        ("encoding = \"date_g\"\nlength = 4\n", "2 bytes long"),
        ("encoding = \"bcd\"\nlength = 2\n", "needs encoding"),
    ] {
        let e = reject(&format!(
            "name = \"x\"\nmanufacturer = \"KAM\"\n[bytes.a_date]\nsource = \"manufacturer_data\"\noffset = 0\n{body}"
        ));
        assert!(e.reason.contains(reason), "{e}");
    }
    let e = reject(
        "name = \"x\"\nmanufacturer = \"KAM\"\n[bytes.a_m3]\nsource = \"manufacturer_data\"\noffset = 0\nencoding = \"date_g\"\nlength = 2\n",
    );
    assert!(e.reason.contains("needs a name ending _date"), "{e}");
    assert_eq!(model::field_kind("set_date_17"), Some(FieldKind::Date));
    assert_eq!(model::field_kind("total_17"), None);
}

#[test]
fn byte_sets_hold_listed_values_or_all() {
    let set = ByteSet::of(&[0x00, 0x1B, 0x3F, 0x40, 0xFF]);
    for value in 0..=255u8 {
        assert_eq!(
            set.contains(value),
            [0x00, 0x1B, 0x3F, 0x40, 0xFF].contains(&value),
            "{value:#04X}"
        );
    }
    assert!((0..=255u8).all(|v| ByteSet::of(&[]).contains(v)));
}
