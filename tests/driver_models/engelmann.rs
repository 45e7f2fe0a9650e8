//! Engelmann (EFE), WaterStar M (DWZ) and B Meters (BMT, BMP) drivers: each decodes a
//! real corpus telegram and its named fields equal the reference decoder's values, read
//! from the corpus at test time.

use crate::corpus::{assert_fields, decode, decoded_by, decoded_with_fields, entry};
use serde_json::Value as Json;
use wmbusd::reading::Reading;

/// Every numeric value the reference reports for `entry` is a field of `reading` with
/// the same name.
fn assert_all_numbers(reading: &Reading, entry: &Json) {
    let names: Vec<&str> = entry["expected"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(!names.is_empty());
    assert_fields(reading, entry, &names);
}

#[test]
fn engelmann_faw_full_frame() {
    let e = entry(
        "engelmann-faw",
        "20254060",
        "consumption_15_months_ago_m3",
        "",
    );
    let r = decoded_by(&e, "engelmann_faw");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["reporting_date"]);
}

#[test]
fn engelmann_faw_compact_frame_decodes_before_any_full_frame() {
    // CI 0x73, mode 5: the declared format (signature 0x052D) expands it.
    let e = entry("engelmann-faw", "22862420", "total_m3", "");
    assert_eq!(e["ci"], "73");
    let r = decoded_by(&e, "engelmann_faw");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["reporting_date", "meter_datetime"]);
}

#[test]
fn hydrodigit_monthly_totals_backflow_and_battery() {
    let e = entry("hydrodigit", "87654321", "January_total_m3", "");
    let r = decoded_by(&e, "hydrodigit");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["meter_datetime"]);
}

#[test]
fn hydrodigit_leak_date_and_months_before_installation() {
    let e = entry("hydrodigit", "87654322", "leak_date", "");
    let r = decode(&e);
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["leak_date"]);
    assert_eq!(e["expected"]["June_total_m3"], 0);
}

#[test]
fn hydrodigit_zero_dates_are_null_and_short_content_is_read() {
    let e = entry("hydrodigit", "03122061", "fraud_date", "");
    let r = decode(&e);
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["fraud_date", "leak_date"]);
    // Battery and backflow only: no month totals.
    let e = entry("hydrodigit", "23746391", "voltage_v", "");
    let r = decode(&e);
    assert_all_numbers(&r, &e);
    assert!(!r.fields.contains_key("January_total_m3"));
}

#[test]
fn hydroclimav2_vendor_temperatures_and_history() {
    let e = entry(
        "hydroclimav2",
        "93001021",
        "average_heater_temperature_c",
        "",
    );
    let r = decoded_by(&e, "hydroclimav2");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["target_date"]);
    // The meter marks this history entry as without data: no field, not a number.
    assert!(e["expected"]["ambient_temperature_at_set_date_3_c"].is_null());
    assert!(!r.fields.contains_key("ambient_temperature_at_set_date_3_c"));
    assert!(r.driver_error.is_none());
}

#[test]
fn hcae2_half_month_deltas() {
    let e = entry("hcae2", "23412960", "delta_30_half_months_ago_hca", "");
    let r = decoded_by(&e, "hcae2");
    assert_all_numbers(&r, &e);
    assert_fields(
        &r,
        &e,
        &[
            "target_date",
            "meter_datetime",
            "half_month_history_start_date",
        ],
    );
}

#[test]
fn sensostar_monthly_energy_and_instant_values() {
    let e = entry("sensostar", "02752560", "target_30_kwh", "");
    let r = decoded_by(&e, "sensostar");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["target_date"]);
    let e = entry("sensostar", "21750444", "difference_c", "");
    assert_all_numbers(&decode(&e), &e);
}

#[test]
fn waterstarm_dwz_and_efe() {
    let e = entry("waterstarm", "20065160", "consumption_at_history_15_m3", "");
    decoded_with_fields(
        &e,
        "waterstarm",
        &[
            "total_m3",
            "battery_v",
            "consumption_at_set_date_m3",
            "consumption_at_history_1_m3",
            "consumption_at_history_15_m3",
            "set_date",
            "meter_datetime",
        ],
    );
    let e = entry("waterstarm", "22996221", "total_backwards_m3", "");
    assert_fields(&decode(&e), &e, &["total_m3", "total_backwards_m3"]);
    // The same meter family sending as EFE, encrypted (mode 5 behind an ELL).
    let e = entry(
        "waterstarm",
        "50496629",
        "total_backwards_at_set_date_m3",
        "",
    );
    let r = decoded_by(&e, "waterstarm_efe");
    assert_all_numbers(&r, &e);
    assert_fields(&r, &e, &["set_date"]);
}

#[test]
fn hydrocalm_heat_meters() {
    let e = entry("hydrocalm4", "05171338", "c2_volume_m3", "");
    let r = decoded_by(&e, "hydrocalm4");
    assert_all_numbers(&r, &e);
    let e = entry("hydrocalm4", "05171338", "supply_temperature_c", "");
    assert_all_numbers(&decode(&e), &e);
    let e = entry("hydrocalm3", "71727374", "supply_temperature_c", "");
    decoded_with_fields(
        &e,
        "hydrocalm3",
        &[
            "total_heating_m3",
            "supply_temperature_c",
            "return_temperature_c",
            "device_datetime",
        ],
    );
}

#[test]
fn iwmtx5_total_and_datetime_with_seconds() {
    let e = entry("iwmtx5", "22917370", "meter_datetime", "");
    decoded_with_fields(&e, "iwmtx5", &["total_m3", "meter_datetime"]);
}
