//! Diehl (DME, HYD, SAP), Itron (ITW) and Sensus (SEN) drivers against real corpus
//! telegrams: every named field equals the reference decoder's value for that telegram.

use crate::corpus::{
    assert_fields, assert_renamed, decode, decode_hex, decoded_by, decoded_with_fields, entry,
};
use serde_json::Value as Json;
use wmbusd::reading::Reading;

/// Every field named like a reference field, for drivers whose names are all the
/// reference's.
fn assert_same_names(reading: &Reading, entry: &Json) {
    let names: Vec<&str> = reading.fields.keys().collect();
    assert_fields(reading, entry, &names);
}

const IZAR_ALL: &[&str] = &[
    "total_m3",
    "last_month_total_m3",
    "last_month_measure_date",
    "remaining_battery_life_y",
    "transmit_period_s",
];

#[test]
fn izar_sap_frame_is_descrambled_with_the_factory_key() {
    let e = entry("izar", "21242472", "last_month_total_m3", "");
    let r = decoded_by(&e, "izar-sap");
    assert_fields(&r, &e, IZAR_ALL);
    // The same telegram under the reference's newer driver and its names.
    let v2 = entry("izarv2", "21242472", "battery_y", "");
    assert_renamed(
        &r,
        &v2,
        &[
            ("total_m3", "total_m3"),
            ("last_month_total_m3", "target_m3"),
            ("last_month_measure_date", "target_date"),
            ("remaining_battery_life_y", "battery_y"),
            ("transmit_period_s", "transmit_period_s"),
        ],
    );
}

#[test]
fn izar_sap_ci_a3_frame_transmits_every_32_seconds() {
    let e = entry("izar", "2124589c", "transmit_period_s", "");
    let r = decoded_by(&e, "izar-sap");
    assert_fields(&r, &e, IZAR_ALL);
}

#[test]
fn izar_short_a0_frame_has_no_billing_value() {
    let e = entry("izar", "208962f3", "total_m3", "");
    let r = decoded_with_fields(
        &e,
        "izar-sap",
        &["total_m3", "remaining_battery_life_y", "transmit_period_s"],
    );
    assert!(!r.fields.contains_key("last_month_total_m3"));
    assert!(!r.fields.contains_key("last_month_measure_date"));
}

#[test]
fn izar_dme_and_hyd_frames_match_the_reference() {
    let e = entry("izar", "66236629", "total_m3", "");
    let r = decoded_by(&e, "izar-dme");
    assert_fields(&r, &e, IZAR_ALL);

    let e = entry("izar", "18001698", "total_m3", "");
    let r = decoded_by(&e, "izar-hyd");
    assert_fields(&r, &e, IZAR_ALL);
}

#[test]
fn izar_frame_that_no_key_opens_reports_the_step_error() {
    // The corpus SAP frame with its first scrambled byte altered.
    let e = entry("izar", "21242472", "total_m3", "");
    let mut hex = e["telegram"].as_str().unwrap().to_owned();
    // Byte 15 of the frame (L-field = byte 0) is the first scrambled byte.
    let flipped = u8::from_str_radix(&hex[30..32], 16).unwrap() ^ 0x01;
    hex.replace_range(30..32, &format!("{flipped:02X}"));
    let r = decode_hex(&hex);
    assert_eq!(r.driver.as_deref(), Some("izar-sap"));
    let err = r.driver_error.as_deref().unwrap();
    assert!(
        err.contains("diehl_prios") && err.contains("byte 5"),
        "{err}"
    );
    assert!(r.fields.is_empty(), "{:?}", r.fields);
}

#[test]
fn aerius_gas_volumes_at_base_conditions() {
    let e = entry("aerius", "99657098", "target_m3", "");
    decoded_with_fields(
        &e,
        "aerius",
        &[
            "total_m3",
            "target_m3",
            "target_datetime",
            "flow_m3h",
            "temperature_c",
        ],
    );
}

#[test]
fn dme173_storage_8_is_the_billing_value() {
    let e = entry("dme173", "22332233", "target_m3", "");
    decoded_with_fields(
        &e,
        "dme173",
        &[
            "total_m3",
            "target_m3",
            "target_datetime",
            "total_at_set_date_m3",
            "set_date",
            "flow_temperature_c",
        ],
    );
}

#[test]
fn hydrus_short_and_ell_frames_match_the_reference() {
    let e = entry("hydrus", "65656565", "target_m3", "");
    decoded_with_fields(
        &e,
        "hydrus",
        &["total_m3", "target_m3", "target_datetime", "flow_m3h"],
    );
    let e = entry("hydrus", "64641820", "total_tariff2_at_date_m3", "");
    decoded_with_fields(
        &e,
        "hydrus",
        &[
            "total_m3",
            "total_at_date_m3",
            "total_tariff1_at_date_m3",
            "total_tariff2_at_date_m3",
            "at_date",
            "target_m3",
            "flow_m3h",
            "flow_temperature_c",
        ],
    );
}

/// The operating-time record with error code 0x18 keeps its data bytes (value withheld
/// in `records`), which Diehl uses as the hours in error.
#[test]
fn sharky774_error_hours_from_record_bytes() {
    let e = entry("sharky774", "52173898", "operating_time_in_error_h", "");
    let r = decode(&e);
    assert_fields(&r, &e, &["operating_time_in_error_h"]);
}

#[test]
fn itron_water_meters_match_the_reference() {
    let e = entry("itron", "18000056", "total_backward_m3", "");
    decoded_with_fields(
        &e,
        "itron",
        &[
            "total_m3",
            "total_backward_m3",
            "volume_flow_m3h",
            "target_m3",
            "target_date",
            "meter_datetime",
        ],
    );
    // Type 0x16 (cold water); its billing volume is marked "error" and left out, as
    // the reference does.
    let e = entry("itron", "23362098", "total_m3", "");
    let r = decoded_by(&e, "itron");
    assert_same_names(&r, &e);
    assert!(!r.fields.contains_key("target_m3"));
}

#[test]
fn itronheat_matches_the_reference() {
    let e = entry("itronheat", "23340485", "total_kwh", "");
    decoded_with_fields(
        &e,
        "itronheat",
        &["total_kwh", "total_m3", "meter_datetime", "last_year_date"],
    );
}

#[test]
fn pollucomf_every_field_matches_the_reference() {
    let e = entry("pollucomf", "14175439", "on_time_h", "");
    let r = decoded_by(&e, "pollucomf");
    assert_same_names(&r, &e);
    assert!(r.fields.len() >= 15, "{:?}", r.fields);
}

#[test]
fn sharky_heat_meter_matches_the_reference() {
    let e = entry("sharky", "61917653", "target_volume_m3", "");
    let r = decoded_by(&e, "sharky");
    assert_same_names(&r, &e);
    for name in [
        "total_volume_m3",
        "target_volume_m3",
        "target_date",
        "power_kw",
        "temperature_difference_c",
        "operating_time_h",
    ] {
        assert!(r.fields.contains_key(name), "{name}");
    }
}

#[test]
fn sharky774_heat_and_cooling_match_the_reference() {
    let e = entry("sharky774", "71942539", "total_cooling_volume_m3", "");
    decoded_with_fields(
        &e,
        "sharky774",
        &[
            "total_energy_consumption_kwh",
            "total_cooling_consumption_kwh",
            "total_volume_m3",
            "total_cooling_volume_m3",
            "energy_at_set_date_kwh",
            "cooling_at_set_date_kwh",
            "set_date",
            "power_kw",
            "flow_temperature_c",
            "return_temperature_c",
        ],
    );
    let e = entry("sharky774", "72615127", "operating_time_h", "");
    let r = decode(&e);
    assert_fields(&r, &e, &["operating_time_h"]);
}
