//! Qundis drivers (QDS, its LSE brand): each built-in definition decodes a real corpus
//! telegram and its fields equal the reference decoder's values, read from the corpus.

use crate::corpus::{self, assert_fields, decode_hex, decoded_by, decoded_with_fields};
use serde_json::Value as Json;

/// The corpus entry of this reference driver, meter and CI whose expected output has `key`.
fn entry(driver: &str, meter: &str, ci: &str, key: &str) -> Json {
    corpus::entry_where(driver, meter, key, "", |e| e["ci"] == ci)
}

/// The Q water billing values under the reference's older names.
const QWATER_DUE: &[&str] = &[
    "total_m3",
    "due_date_m3",
    "due_date",
    "due_17_date_m3",
    "due_17_date",
];

fn volume_deltas() -> Vec<String> {
    (2..=13).map(|n| format!("volume_delta_{n}_m3")).collect()
}

#[test]
fn qwater_walk_by_frame_reads_the_vendor_block_in_both_name_sets() {
    // The same telegram under the reference's newer and older names.
    let newer = entry("qwaterv2", "78563412", "78", "volume_delta_13_m3");
    let r = decoded_by(&newer, "qwater");
    let mut names = vec![
        "total_m3",
        "target_m3",
        "target_date",
        "target_year_m3",
        "target_year_date",
        "meter_datetime",
    ];
    let deltas = volume_deltas();
    names.extend(deltas.iter().map(String::as_str));
    assert_fields(&r, &newer, &names);

    let older = entry("qwater", "78563412", "78", "due_17_date_m3");
    let r = decoded_by(&older, "qwater");
    assert_fields(&r, &older, QWATER_DUE);
}

#[test]
fn qwater_monthly_deltas_are_signed() {
    // Month 2 is 0x8000, which the reference passes on as -32.768 m3.
    let e = entry("qwaterv2", "12353648", "78", "volume_delta_2_m3");
    let r = decoded_by(&e, "qwater");
    let deltas = volume_deltas();
    let names: Vec<&str> = deltas.iter().map(String::as_str).collect();
    assert_fields(&r, &e, &names);
    assert_eq!(e["expected"]["volume_delta_2_m3"].as_f64(), Some(-32.768));
}

#[test]
fn qwater_behind_a_radio_converter() {
    // Device type 0x37, an enhanced-id record ahead of the vendor block.
    let e = entry("qwater", "37432649", "78", "due_date_m3");
    let r = decoded_by(&e, "qwater");
    assert_fields(&r, &e, QWATER_DUE);
}

#[test]
fn qwater_standard_frame_reads_records() {
    let e = entry("qwater", "60101441", "7A", "due_17_date_m3");
    let r = decoded_by(&e, "qwater");
    assert_fields(&r, &e, QWATER_DUE);
    assert_fields(&r, &e, &["error_date", "meter_datetime"]);
    // No yearly due date yet: the meter sends FFFF, the reference prints null.
    assert_eq!(r.fields["due_date"], wmbusd::reading::Value::Null);
}

#[test]
fn qheat_names_both_generations() {
    let newer = entry("qheatv2", "67985890", "72", "target_year_kwh");
    decoded_with_fields(
        &newer,
        "qheat",
        &[
            "total_kwh",
            "target_kwh",
            "target_date",
            "target_year_kwh",
            "target_year_date",
            "meter_datetime",
        ],
    );
    let older = entry(
        "qheat",
        "67228058",
        "72",
        "last_month_energy_consumption_kwh",
    );
    decoded_with_fields(
        &older,
        "qheat",
        &[
            "total_energy_consumption_kwh",
            "last_month_energy_consumption_kwh",
            "last_month_date",
            "last_year_energy_consumption_kwh",
            "last_year_date",
            "device_date_time",
        ],
    );
}

#[test]
fn qheat_walk_by_frame_is_not_taken_for_water() {
    // A Q heat behind a radio converter (device type 0x37, like Q water converters)
    // sends the same vendor block layout, in its own energy unit.
    let e = entry("qheat", "68204641", "72", "total_energy_consumption_kwh");
    let prior = e["prior_telegrams"][0].as_str().unwrap();
    let reading = decode_hex(prior);
    assert_ne!(reading.driver.as_deref(), Some("qwater"));
    assert!(!reading.fields.keys().any(|k| k.ends_with("_m3")));
}

#[test]
fn qheat_in_joules_gives_no_kwh_fields() {
    // 0C0D: energy in units of 100 kJ; kWh would need the inexact factor 1/3.6.
    let e = entry("qheat", "68204641", "72", "total_energy_consumption_kwh");
    let r = decoded_with_fields(&e, "qheat", &["last_month_date", "last_year_date"]);
    assert!(!r.fields.contains_key("total_energy_consumption_kwh"));
}

#[test]
fn qcaloric_walk_by_frame_reads_the_billing_period_names() {
    let e = entry(
        "qcaloric",
        "90919293",
        "78",
        "consumption_at_set_date_1_hca",
    );
    decoded_with_fields(
        &e,
        "qcaloric",
        &[
            "current_consumption_hca",
            "consumption_at_set_date_hca",
            "consumption_at_set_date_1_hca",
            "set_date",
            "set_date_1",
            "consumption_at_set_date_17_hca",
            "set_date_17",
            "device_datetime",
        ],
    );
}

#[test]
fn qcaloric_v36_leaves_its_enciphered_block_alone() {
    let e = entry("qcaloric", "30535282", "78", "device_datetime");
    let r = decoded_with_fields(&e, "qcaloric_v36", &["device_datetime"]);
    assert!(
        !r.fields
            .keys()
            .any(|k| k.ends_with("_hca") || k.contains("set_date")),
        "{:?}",
        r.fields
    );
}

#[test]
fn qcaloric_lse_models() {
    let names = [
        "current_consumption_hca",
        "consumption_at_set_date_hca",
        "consumption_at_set_date_1_hca",
        "set_date",
        "set_date_1",
        "device_datetime",
    ];
    let whe5x = entry("whe5x", "91835132", "7A", "current_consumption_hca");
    assert_fields(&decoded_by(&whe5x, "qcaloric_lse"), &whe5x, &names);
    let whe46x = entry("whe46x", "60366655", "7A", "current_consumption_hca");
    assert_fields(&decoded_by(&whe46x, "qcaloric_lse"), &whe46x, &names);
}

#[test]
fn lse_07_17_standard_and_billing_frames() {
    let e = entry("lse_07_17", "13963399", "7A", "total_m3");
    decoded_with_fields(
        &e,
        "lse_07_17",
        &[
            "total_m3",
            "due_m3",
            "due_date",
            "error_date",
            "device_datetime",
        ],
    );
    let e = entry("lse_07_17", "13963399", "7A", "set_date_8");
    decoded_with_fields(
        &e,
        "lse_07_17",
        &[
            "consumption_at_set_date_8_m3",
            "set_date_8",
            "device_datetime",
        ],
    );
}

#[test]
fn lse_08_reads_storage_8() {
    let e = entry("lse_08", "04998541", "7A", "consumption_at_set_date_hca");
    let r = decoded_with_fields(
        &e,
        "lse_08",
        &["consumption_at_set_date_hca", "set_date", "device_datetime"],
    );
    // The reference gives hours rounded to 6 decimals; the field keeps the exact seconds.
    let hours = e["expected"]["duration_since_readout_h"].as_f64().unwrap();
    let seconds = serde_json::to_value(&r.fields["duration_since_readout_s"])
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((seconds / 3600.0 - hours).abs() < 1e-6, "{seconds} s");
}

#[test]
fn bfw240radio_unpacks_billing_values_history_and_date() {
    let mut names = vec!["current_hca", "prev_hca", "device_date"];
    let months: Vec<String> = (1..=18).map(|n| format!("prev_{n:02}_hca")).collect();
    names.extend(months.iter().map(String::as_str));
    // Every corpus telegram of the model: histories differ in which nibbles are set.
    let mut seen = 0;
    for e in corpus::entries() {
        if e["driver"] == "bfw240radio" {
            assert_fields(&decoded_by(&e, "bfw240radio"), &e, &names);
            seen += 1;
        }
    }
    assert_eq!(seen, 4);
}
