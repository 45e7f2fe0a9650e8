//! Techem (TCH) drivers: each decodes a real corpus telegram and its fields equal the
//! reference decoder's values, read from the corpus at test time.

use crate::corpus::{assert_fields, decode, decoded_by, decoded_with_fields, entry};
use wmbusd::reading::Value;

#[test]
fn compact5_periods_and_their_total() {
    let names = ["total_kwh", "current_kwh", "previous_kwh"];
    // CI 0xA1 and 0xA2 frames; the last one's previous period needs all 24 bits.
    for (meter, part) in [
        ("62626262", "A1009F27"),
        ("66336633", "A210672C"),
        ("41711422", "A100FF32"),
    ] {
        let e = entry("compact5", meter, "", part);
        assert_fields(&decoded_by(&e, "compact5"), &e, &names);
    }
}

#[test]
fn fhkvdataiii_both_versions() {
    let names = [
        "current_hca",
        "previous_hca",
        "temp_room_c",
        "temp_radiator_c",
    ];
    let e = entry("fhkvdataiii", "41059605", "", "A0019F33");
    assert_fields(&decoded_by(&e, "fhkvdataiii"), &e, &names);
    let e = entry("fhkvdataiii", "11776622", "", "A0119F27");
    assert_fields(&decoded_by(&e, "fhkvdataiii"), &e, &names);
    // Version 0x94: one more byte before the temperatures.
    let e = entry("fhkvdataiii", "11111234", "", "A20F9F29");
    assert_fields(&decoded_by(&e, "fhkvdataiii_94"), &e, &names);
}

#[test]
fn mkradio3_volumes_and_billing_dates() {
    let names = ["total_m3", "target_m3", "prev_date", "current_date"];
    // Current date after, on and just after the previous billing date (2018-03-31).
    for part in ["B0293100", "F0073100", "10083100"] {
        let e = entry("mkradio3", "34333231", "", part);
        assert_fields(&decoded_by(&e, "mkradio3"), &e, &names);
    }
}

#[test]
fn mkradio3a_total_date_and_monthly_history() {
    let e = entry("mkradio3a", "62560642", "", "A20C007C");
    let names = [
        "total_m3",
        "target_m3",
        "target_date",
        "last_jan_m3",
        "last_feb_m3",
        "last_mar_m3",
        "last_apr_m3",
        "last_may_m3",
        "last_jun_m3",
        "last_jul_m3",
        "last_aug_m3",
        "last_sep_m3",
        "last_oct_m3",
        "last_nov_m3",
        "last_dec_m3",
    ];
    assert_fields(&decoded_by(&e, "mkradio3a"), &e, &names);
}

#[test]
fn vario451_energy_in_kwh_and_gj() {
    let e = entry("vario451", "58234965", "total_gj", "");
    let names = [
        "total_kwh",
        "current_kwh",
        "previous_kwh",
        "total_gj",
        "current_gj",
        "previous_gj",
    ];
    assert_fields(&decoded_by(&e, "vario451"), &e, &names);
}

#[test]
fn tsd2_previous_date_and_detector_status() {
    let e = entry("tsd2", "91633569", "", "A0009F27");
    let r = decoded_with_fields(&e, "tsd2", &["prev_date"]);
    assert_eq!(e["expected"]["status"], "OK");
    assert_eq!(
        serde_json::to_string(&r.fields["detector_status"]).unwrap(),
        "0"
    );
    let e = entry("tsd2", "91633569", "", "A0719F27");
    let r = decode(&e);
    assert_eq!(e["expected"]["status"], "STATUS_71");
    assert_eq!(
        serde_json::to_string(&r.fields["detector_status"]).unwrap(),
        "113"
    );
}

#[test]
fn tsd2_truncated_payload_is_a_driver_error_not_a_date() {
    // The reference reports a decoding error and prev_date null for this telegram.
    let e = entry("tsd2", "91633569", "", "0C4468");
    assert!(e["expected"]["prev_date"].is_null());
    let r = decode(&e);
    assert_eq!(r.driver.as_deref(), Some("tsd2"));
    assert!(!r.fields.contains_key("prev_date"));
    let error = r.driver_error.expect("step error reported");
    assert!(error.contains("techem_previous_date"), "{error}");
}

#[test]
fn vario411_and_mkradio4a_name_their_standard_records() {
    let e = entry("vario411", "67627875", "", "8C00F390");
    assert_fields(
        &decoded_by(&e, "vario411"),
        &e,
        &["target_kwh", "target_date"],
    );
    let e = entry("mkradio4a", "66953825", "", "2423FE06");
    let r = decoded_with_fields(&e, "mkradio4a", &["target_m3", "target_date"]);
    assert!(matches!(r.fields["target_m3"], Value::Number(_)));
}
