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

/// The decoded records as JSON.
fn all_records(records: &[RecordRepr]) -> Vec<Json> {
    let bytes = frame_bytes(TEST_METER, 0, records, None);
    let reading = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(bytes))
        .expect("decodes");
    let json = serde_json::to_value(&reading).expect("reading as JSON");
    json["records"].as_array().expect("records").clone()
}

/// (storage, value, dif_vif) of every record of `quantity`, in telegram order, without
/// the profile record itself.
fn expanded(records: &[Json], quantity: &str) -> Vec<(u64, Json, String)> {
    records
        .iter()
        .filter(|r| r["quantity"] == quantity && r.get("profile").is_none())
        .map(|r| {
            let s = r["storage"].as_u64().expect("storage");
            let dv = r["dif_vif"].as_str().expect("dif_vif").to_owned();
            (s, r["value"].clone(), dv)
        })
        .collect()
}

/// The date record of a storage number.
fn date_of(records: &[Json], storage: u64) -> Option<String> {
    records
        .iter()
        .find(|r| r["quantity"] == "date" && r["storage"] == storage)
        .and_then(|r| r["value"].as_str().map(str::to_owned))
}

#[test]
fn inverse_profile_expands_into_month_end_records_with_their_dates() {
    // As above: HCA storage 8, 2-byte elements one month apart, storage-8 date March 31.
    let vib = Vib::primary(0x6E).with_vife(0x13);
    let elements = [0x27, 0x02, 0x93, 0x01, 0xFF, 0x7F, 0x00, 0x80];
    let recs = all_records(&[
        date(2024, 3, 31).storage(8),
        profile(vib, 8, 0x32, 0xFE, &elements),
    ]);
    let hca = expanded(&recs, "hca");
    let storages: Vec<u64> = hca.iter().map(|h| h.0).collect();
    assert_eq!(storages, [9, 10, 11, 12]);
    let values: Vec<Json> = hca.iter().map(|h| h.1.clone()).collect();
    assert_eq!(values, [json!(551), json!(403), json!(32767), Json::Null]);
    // Storage 9 = DIF 0xC2 (bit 6 = storage bit 0) + DIFE 0x04, VIF 0x6E, no profile VIFE.
    assert_eq!(hca[0].2, "C2046E");
    assert_eq!(hca[1].2, "82056E");
    let dates: Vec<Option<String>> = (9..=12).map(|s| date_of(&recs, s)).collect();
    let want = ["2024-02-29", "2024-01-31", "2023-12-31", "2023-11-30"];
    assert_eq!(dates, want.map(|d| Some(d.to_owned())));
    // Each expanded record has no qualifiers, as an ordinary record has none.
    for r in recs.iter().filter(|r| r["storage"].as_u64() >= Some(9)) {
        assert!(r.get("qualifiers").is_none(), "{r}");
    }
}

#[test]
fn compact_profile_expands_oldest_first_and_sent_records_win() {
    // Monthly absolute volumes (control 0x12: days, 2-byte) at storage 1, oldest first:
    // 3 elements are storages 4, 3, 2. The meter sends storage 2 itself with another value.
    let vib = Vib::primary(0x13).with_vife(0x1F);
    let own = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), 99)
        .expect("fits")
        .storage(2);
    let recs = all_records(&[
        date(2024, 6, 30).storage(1),
        profile(vib, 1, 0x32, 0xFE, &[1, 0, 2, 0, 3, 0]),
        own,
    ]);
    let volumes = expanded(&recs, "volume");
    let got: Vec<(u64, Json)> = volumes.iter().map(|v| (v.0, v.1.clone())).collect();
    assert_eq!(
        got,
        [(4, json!(0.001)), (3, json!(0.002)), (2, json!(0.099))]
    );
    assert_eq!(date_of(&recs, 4).as_deref(), Some("2024-03-31"));
    assert_eq!(date_of(&recs, 2).as_deref(), Some("2024-05-31"));
}

#[test]
fn register_number_profile_expands_into_its_storage_numbers_without_dates() {
    // kWh BCD elements at storage 2 and 3 (as in the test above), no time implied.
    let vib = Vib::primary(0x06).with_vife(0x1E);
    let elements = [0x34, 0x12, 0x00, 0x00, 0x78, 0x56, 0x00, 0x00];
    let recs = all_records(&[
        date(2024, 1, 31).storage(2),
        profile(vib, 2, 0x0C, 0x00, &elements),
    ]);
    let energy = expanded(&recs, "energy");
    let got: Vec<(u64, Json, &str)> = energy
        .iter()
        .map(|e| (e.0, e.1.clone(), e.2.as_str()))
        .collect();
    // Storage 2: DIF 0x8C + DIFE 0x01; storage 3: DIF 0xCC + DIFE 0x01.
    assert_eq!(
        got,
        [(2, json!(1234), "8C0106"), (3, json!(5678), "CC0106")]
    );
    // The sent storage-2 date stays the only date record; storage 3 gets none.
    assert_eq!(recs.iter().filter(|r| r["quantity"] == "date").count(), 1);
}

#[test]
fn increment_profiles_expand_as_qualified_changes_with_datetimes() {
    // 15-minute increments at storage 0 ending 2024-03-01 00:15 (as above): storages 3,
    // 2, 1, each a change marked `increments`, with the date-time it ends at.
    let vib = Vib::primary(0x13).with_vife(0x1F);
    let recs = all_records(&[
        datetime(2024, 3, 1, 0, 15),
        profile(vib, 0, 0x51, 15, &[10, 20, 30]),
    ]);
    let changes: Vec<&Json> = recs
        .iter()
        .filter(|r| r["quantity"] == "volume" && r.get("profile").is_none())
        .collect();
    assert_eq!(changes.len(), 3);
    assert!(changes
        .iter()
        .all(|r| r["qualifiers"] == json!(["increments"])));
    assert_eq!(changes[0]["storage"], 3);
    assert_eq!(changes[0]["value"], json!(0.01));
    let at = |s: u64| {
        recs.iter()
            .find(|r| r["quantity"] == "datetime" && r["storage"] == s)
            .map(|r| r["value"].clone())
    };
    assert_eq!(at(3), Some(json!("2024-02-29T23:30")));
    assert_eq!(at(1), Some(json!("2024-03-01T00:00")));
}
