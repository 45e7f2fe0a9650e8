//! Compact profiles (EN 13757-3 Annex F), one telegram per profile kind and increment
//! mode built with the library's emitters: each history value comes out with the date
//! (or storage number) the profile implies.

use crate::generated::{date, datetime, frame_bytes, meter, Meter};
use serde_json::{json, Value as Json};
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::wire::apl::{DataField, Dib, RecordRepr, Vib};

/// No driver knows this meter: the generic records alone.
const TEST_METER: Meter = meter("TST", 0x01, 0x07);

/// A profile record: `vib` (with its profile VIFE), storage number, spacing control and
/// value bytes, then the elements.
fn profile(vib: Vib, storage: u64, control: u8, spacing: u8, elements: &[u8]) -> RecordRepr {
    let mut data = vec![control, spacing];
    data.extend_from_slice(elements);
    let lvar = u8::try_from(data.len()).expect("short profile");
    let mut dib = Dib::new(DataField::Variable);
    dib.storage = storage;
    RecordRepr::new(dib, vib, Some(lvar), data)
}

/// The decoded record with this DIF/VIF header, as JSON.
fn record(records: &[RecordRepr], dif_vif: &str) -> Json {
    let bytes = frame_bytes(TEST_METER, 0, records, None);
    let reading = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(bytes))
        .expect("decodes");
    let json = serde_json::to_value(&reading).expect("reading as JSON");
    json["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["dif_vif"] == dif_vif)
        .unwrap_or_else(|| panic!("no record {dif_vif}: {json}"))
        .clone()
}

fn points(profile: &Json) -> Vec<Json> {
    profile["points"].as_array().expect("points").clone()
}

/// Each point's date, "-" where it has none.
fn dates(profile: &Json) -> Vec<String> {
    points(profile)
        .iter()
        .map(|pt| pt["date"].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[test]
fn inverse_monthly_profile_counts_back_from_its_storage_date() {
    // HCA units (VIF 6E), storage 8, 2-byte elements (control 0x32: days, field 2),
    // one month apart; the storage-8 date is the end of March 2024.
    let vib = Vib::primary(0x6E).with_vife(0x13);
    let elements = [0x27, 0x02, 0x93, 0x01, 0xFF, 0x7F, 0x00, 0x80];
    let records = [
        date(2024, 3, 31).storage(8),
        profile(vib, 8, 0x32, 0xFE, &elements),
    ];
    let r = record(&records, "8D04EE13");
    let p = &r["profile"];
    assert_eq!(p["kind"], "inverse_compact_profile");
    assert_eq!(p["mode"], "absolute");
    assert_eq!(p["spacing"], "1 month");
    assert_eq!(p["values"], json!([551, 403, 32767, null]));
    assert_eq!(
        dates(p),
        ["2024-02-29", "2024-01-31", "2023-12-31", "2023-11-30"]
    );
    // The invalid-marked month keeps its date, its value is null.
    assert_eq!(points(p)[3]["value"], Json::Null);
}

#[test]
fn compact_profile_runs_oldest_first_up_to_the_time_point() {
    // Volume in litres (VIF 13), storage 0, 1-byte increments (control 0x51: minutes,
    // increment mode 01) 15 minutes apart; the current date-time is 2024-03-01 00:15.
    let vib = Vib::primary(0x13).with_vife(0x1F);
    let records = [
        datetime(2024, 3, 1, 0, 15),
        profile(vib, 0, 0x51, 15, &[10, 20, 30]),
    ];
    let r = record(&records, "0D931F");
    let p = &r["profile"];
    assert_eq!(
        (p["kind"].as_str(), p["mode"].as_str()),
        (Some("compact_profile"), Some("increments"))
    );
    assert_eq!(p["values"], json!([0.01, 0.02, 0.03]));
    assert_eq!(
        dates(p),
        ["2024-02-29T23:30", "2024-02-29T23:45", "2024-03-01T00:00"]
    );
}

#[test]
fn register_number_profile_gives_each_value_its_storage_number() {
    // Energy in kWh (VIF 06), storage 2, 4-byte BCD elements (control 0x0C: field BCD 8),
    // signed differences (mode 11 on top: 0xCC).
    let vib = Vib::primary(0x06).with_vife(0x1E);
    let elements = [0x34, 0x12, 0x00, 0x00, 0x01, 0x00, 0x00, 0xF0];
    let records = [
        date(2024, 1, 31).storage(2),
        profile(vib, 2, 0xCC, 0x00, &elements),
    ];
    let r = record(&records, "8D01861E");
    let p = &r["profile"];
    assert_eq!(p["kind"], "compact_profile_with_register_numbers");
    assert_eq!(p["mode"], "differences");
    assert_eq!(p["values"], json!([1234, -1]));
    let pts = points(p);
    assert_eq!(
        (pts[0]["storage"].as_u64(), pts[1]["storage"].as_u64()),
        (Some(2), Some(3))
    );
    assert!(pts.iter().all(|pt| pt.get("date").is_none()), "{pts:?}");
}

#[test]
fn decrements_are_negative_and_a_profile_without_time_point_has_no_dates() {
    // Daily decrements (control 0xB1: days, mode 10, 1-byte), no date record sent.
    let vib = Vib::primary(0x13).with_vife(0x13);
    let records = [profile(vib, 1, 0xB1, 1, &[5, 7])];
    let r = record(&records, "4D9313");
    let p = &r["profile"];
    assert_eq!(p["mode"], "decrements");
    assert_eq!(p["values"], json!([-0.005, -0.007]));
    assert!(points(p).iter().all(|pt| pt.get("date").is_none()));
}

#[test]
fn real_water_meter_profile_dates_match_the_reference() {
    // Zenner water meter 61330764 (corpus): inverse monthly profile at storage 30, whose
    // date record says 2026-06-01; the reference dates month n as target_n_date.
    let e = crate::corpus::entry("uiws", "61330764", "target_1_date", "8D0F9313");
    let reading = crate::corpus::decode(&e);
    let json = serde_json::to_value(&reading).expect("reading as JSON");
    let p = json["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["dif_vif"] == "8D0F9313")
        .expect("profile record")["profile"]
        .clone();
    let want: Vec<String> = (1..=10)
        .map(|n| {
            e["expected"][format!("target_{n}_date")]
                .as_str()
                .expect("reference date")
                .to_owned()
        })
        .collect();
    assert_eq!(dates(&p)[..10], want[..]);
}
