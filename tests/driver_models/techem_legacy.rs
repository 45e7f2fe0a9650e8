//! Techem's older generations and billing dates, with proprietary payloads built here
//! from the documented layout: FHKV data II (versions 0x45/0x61/0x64, no temperatures),
//! the billing dates of FHKV data III, Compact V version 0x71, smoke detectors on CI 0xA1.

use crate::catalogue_l_z::build::{decode, field, proprietary, Meter};
use crate::catalogue_l_z::{techem_current_date, techem_date};

/// FHKV payload: status, previous date, previous units, current date, current units.
fn hca_payload(previous_units: u16, current_units: u16, temperatures: Option<[u16; 2]>) -> Vec<u8> {
    let mut payload = vec![0x11];
    payload.extend_from_slice(&techem_date(2024, 12, 31));
    payload.extend_from_slice(&previous_units.to_le_bytes());
    payload.extend_from_slice(&techem_current_date(3, 7));
    payload.extend_from_slice(&current_units.to_le_bytes());
    if let Some([room, radiator]) = temperatures {
        payload.extend_from_slice(&room.to_le_bytes());
        payload.extend_from_slice(&radiator.to_le_bytes());
    }
    payload.extend_from_slice(&[0; 10]);
    payload
}

#[test]
fn fhkv_data_ii_versions_give_units_and_billing_dates() {
    for version in [0x45, 0x61, 0x64] {
        let meter = Meter {
            manufacturer: "TCH",
            id: 60_412_038,
            version,
            device_type: 0x80,
        };
        let reading = decode(&proprietary(&meter, 0xA0, &hca_payload(1040, 650, None)));
        assert_eq!(
            reading.driver.as_deref(),
            Some("fhkvdataii"),
            "{version:#x}"
        );
        assert_eq!(field(&reading, "previous_hca"), "1040");
        assert_eq!(field(&reading, "current_hca"), "650");
        assert_eq!(field(&reading, "previous_date"), "\"2024-12-31\"");
        // March comes after December: the current period's year is the next one.
        assert_eq!(field(&reading, "current_date"), "\"2025-03-07\"");
        assert!(!reading.fields.contains_key("temp_room_c"));
    }
}

#[test]
fn fhkv_data_iii_billing_dates() {
    let meter = Meter {
        manufacturer: "TCH",
        id: 11_776_622,
        version: 0x69,
        device_type: 0x80,
    };
    let payload = hca_payload(1026, 131, Some([2244, 2551]));
    let reading = decode(&proprietary(&meter, 0xA0, &payload));
    assert_eq!(reading.driver.as_deref(), Some("fhkvdataiii"));
    assert_eq!(field(&reading, "previous_date"), "\"2024-12-31\"");
    assert_eq!(field(&reading, "current_date"), "\"2025-03-07\"");
    assert_eq!(field(&reading, "current_hca"), "131");
    assert_eq!(field(&reading, "temp_room_c"), "22.44");
    assert_eq!(field(&reading, "temp_radiator_c"), "25.51");
}

#[test]
fn compact_v_version_0x71_on_each_ci() {
    // Previous period 1160 kWh, current 27 kWh (24-bit little endian each).
    let mut payload = vec![0x00, 0x9F, 0x29, 0x88, 0x04, 0x00, 0x00, 0x1B, 0x00, 0x00];
    payload.extend_from_slice(&[0; 6]);
    for ci in [0xA0, 0xA2] {
        let meter = Meter {
            manufacturer: "TCH",
            id: 44_556_677,
            version: 0x71,
            device_type: 0x43,
        };
        let reading = decode(&proprietary(&meter, ci, &payload));
        assert_eq!(reading.driver.as_deref(), Some("compact5"), "{ci:#x}");
        assert_eq!(field(&reading, "previous_kwh"), "1160");
        assert_eq!(field(&reading, "current_kwh"), "27");
        assert_eq!(field(&reading, "total_kwh"), "1187");
    }
}

#[test]
fn smoke_detector_on_ci_a1() {
    let meter = Meter {
        manufacturer: "TCH",
        id: 64_866_477,
        version: 0x76,
        device_type: 0xF0,
    };
    let mut payload = vec![0x01];
    payload.extend_from_slice(&techem_date(2019, 11, 27));
    payload.extend_from_slice(&[0; 12]);
    let reading = decode(&proprietary(&meter, 0xA1, &payload));
    assert_eq!(reading.driver.as_deref(), Some("tsd2"));
    assert_eq!(field(&reading, "prev_date"), "\"2019-11-27\"");
    assert_eq!(field(&reading, "detector_status"), "1");
}

#[test]
fn fhkv_data_iii_layout_byte_places_the_temperatures_under_either_version() {
    // Layout 0x11 (temperatures right after the units) and 0x0F (one extra byte first),
    // each under version 0x69 and 0x94: the current-period units never move, the
    // temperatures follow the layout byte.
    for (version, driver) in [(0x69, "fhkvdataiii"), (0x94, "fhkvdataiii_94")] {
        for layout in [0x11, 0x0F] {
            let mut payload = hca_payload(45, 4, None);
            payload[0] = layout;
            let at = if layout == 0x0F { 10 } else { 9 };
            payload[at..at + 4].copy_from_slice(&[0xBD, 0x08, 0x38, 0x09]);
            let meter = Meter {
                manufacturer: "TCH",
                id: 11_111_234,
                version,
                device_type: 0x80,
            };
            let reading = decode(&proprietary(&meter, 0xA2, &payload));
            let case = format!("{version:#x} layout {layout:#x}");
            assert_eq!(reading.driver.as_deref(), Some(driver), "{case}");
            assert_eq!(field(&reading, "current_hca"), "4", "{case}");
            assert_eq!(field(&reading, "previous_hca"), "45", "{case}");
            assert_eq!(field(&reading, "temp_room_c"), "22.37", "{case}");
            assert_eq!(field(&reading, "temp_radiator_c"), "23.6", "{case}");
        }
    }
}
