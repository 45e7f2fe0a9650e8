//! Drivers of the Kamstrup set (Kamstrup heat, water, electricity and pressure meters,
//! Carlo Gavazzi EM24, GWF water, Elvaco Sense, Sontex Supercal): each decodes a real
//! corpus telegram and its fields equal the reference decoder's values, read from the
//! corpus at test time. Also the compact-frame CRC policy on the flowIQ 2200 frame.
//!
//! Entries decode alone (without the meter's earlier telegrams): compact frames must
//! decode from the formats their driver declares.

use crate::corpus::{assert_driver, assert_fields, decode_alone, entry, text};
use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::wire::crc::crc16_en13757;
use wmbusd::wire::link::{add_crc, FrameFormat};

#[test]
fn kamheat_multical603_full_frame() {
    let e = entry("multical603", "66666666", "forward_energy_m3c", "");
    let r = decode_alone(&e);
    assert_driver(&r, "kamheat");
    assert_fields(
        &r,
        &e,
        &[
            "total_energy_consumption_kwh",
            "total_volume_m3",
            "volume_flow_m3h",
            "power_kw",
            "max_power_kw",
            "max_flow_m3h",
            "t1_temperature_c",
            "t2_temperature_c",
            "on_time_h",
            "forward_energy_m3c",
            "return_energy_m3c",
        ],
    );
    // Info codes 0: the reference reports OK.
    assert_eq!(text(&r, "info_codes_flags"), "0");
    assert_eq!(e["expected"]["status"], "OK");
}

#[test]
fn kamheat_multical403_compact_frame_decodes_from_the_declared_format() {
    let names = [
        "forward_energy_m3c",
        "return_energy_m3c",
        "max_power_kw",
        "meter_date",
        "target_date",
        "t1_temperature_c",
        "t2_temperature_c",
        "target_volume_m3",
        "target_volume_subunit1_m3",
        "total_volume_m3",
        "total_volume_subunit2_m3",
        "volume_flow_m3h",
    ];
    let full = entry("multical403", "78780102", "forward_energy_m3c", "78040E");
    let r = decode_alone(&full);
    assert_driver(&r, "kamheat");
    assert_fields(&r, &full, &names);
    let compact = entry("multical403", "78780102", "forward_energy_m3c", "7934147E");
    let r = decode_alone(&compact);
    assert_driver(&r, "kamheat");
    assert_fields(&r, &compact, &names);
    // Energy in MJ: no exact kWh, so the kWh fields are left out (records keep MJ).
    assert!(!r.fields.contains_key("total_energy_consumption_kwh"));
}

#[test]
fn kamheat_multical602_pulse_counters_and_compact_frame() {
    let names = [
        "va_counter",
        "vb_counter",
        "total_energy_consumption_kwh",
        "target_energy_kwh",
        "total_volume_m3",
        "target_volume_m3",
        "meter_date",
        "target_date",
        "volume_flow_m3h",
    ];
    for marker in ["7802F9FF15", "79008430"] {
        let e = entry("multical602", "78152801", "va_counter", marker);
        let r = decode_alone(&e);
        assert_driver(&r, "kamheat");
        assert_fields(&r, &e, &names);
    }
}

#[test]
fn kamheat_multical402_and_803_frames() {
    let e = entry("kamheat", "62215006", "forward_energy_m3c", "");
    let r = decode_alone(&e);
    assert_driver(&r, "kamheat");
    assert_fields(
        &r,
        &e,
        &[
            "forward_energy_m3c",
            "return_energy_m3c",
            "total_volume_m3",
            "t1_temperature_c",
        ],
    );
    for marker in ["78040F", "79A2E7"] {
        let e = entry("kamheat", "79806477", "forward_energy_m3c", marker);
        let r = decode_alone(&e);
        assert_driver(&r, "kamheat");
        assert_fields(
            &r,
            &e,
            &["forward_energy_m3c", "max_power_kw", "meter_date"],
        );
        // Bits 5, 6 and 16: both sensors below range, V1 communication error.
        assert_eq!(text(&r, "info_codes_flags"), (0x0001_0060).to_string());
    }
}

#[test]
fn kamheat_backward_energy() {
    let e = entry("kamheat", "83010647", "total_energy_backward_kwh", "");
    let r = decode_alone(&e);
    assert_driver(&r, "kamheat");
    assert_fields(
        &r,
        &e,
        &[
            "total_energy_backward_kwh",
            "total_energy_consumption_kwh",
            "target_energy_kwh",
            "forward_energy_m3c",
            "return_energy_m3c",
        ],
    );
}

#[test]
fn multical302_reaches_the_meters_with_device_type_0d() {
    let set = wmbusd::drivers::DriverSet::builtin();
    let driver = set.select("KAM", 0x30, 0x0D).expect("a driver");
    assert_eq!(driver.name(), "multical302");
    assert_eq!(
        set.select("KAM", 0x30, 0x02).map(|d| d.name()),
        Some("omnipower")
    );
}

#[test]
fn multical21_names_the_minimum_external_temperature_as_the_reference() {
    let e = entry(
        "multical21",
        "76348799",
        "min_external_temperature_last_month_c",
        "",
    );
    let r = decode_alone(&e);
    assert_driver(&r, "multical21");
    assert_fields(
        &r,
        &e,
        &[
            "min_external_temperature_last_month_c",
            "total_m3",
            "target_m3",
        ],
    );
}

#[test]
fn flowiq2200_compact_frame_with_the_previous_full_frame_crc_decodes() {
    let e = entry("flowiq2200", "23813076", "total_m3", "");
    let r = decode_alone(&e);
    assert_driver(&r, "flowiq2200");
    assert_fields(
        &r,
        &e,
        &[
            "total_m3",
            "target_m3",
            "target_date",
            "flow_m3h",
            "max_external_temperature_c",
            "min_external_temperature_last_month_c",
        ],
    );
}

/// The flowIQ 2200 compact frame split at the ELL: link header, ELL (CI 8D .. payload
/// CRC), compact APL (CI 79 ..).
fn flowiq_parts() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let e = entry("flowiq2200", "23813076", "total_m3", "");
    let bytes = parse_hex(e["telegram"].as_str().unwrap()).unwrap();
    let (link, rest) = bytes.split_at(10);
    let (ell, compact) = rest.split_at(9);
    assert_eq!((ell[0], compact[0]), (0x8D, 0x79));
    (link.to_vec(), ell.to_vec(), compact.to_vec())
}

fn with_length(mut frame: Vec<u8>) -> Vec<u8> {
    frame[0] = u8::try_from(frame.len() - 1).unwrap();
    frame
}

#[test]
fn stale_full_frame_crc_is_refused_when_no_lower_crc_covered_the_data() {
    let (link, _, compact) = flowiq_parts();
    // The same compact APL straight after the link header: no ELL payload CRC, and no
    // DLL CRCs either (canonical frame), so nothing vouches for the data bytes.
    let bare = with_length([link.as_slice(), &compact].concat());
    let err = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(bare.clone()))
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Crc);
    assert!(err.message.contains("stored 8054, computed 335D"), "{err}");

    // With its DLL CRCs (format A), verified on reception, it decodes.
    let on_air = add_crc(&bare, FrameFormat::A).unwrap();
    let r = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(on_air))
        .unwrap();
    assert_driver(&r, "flowiq2200");
    assert!(r.fields.contains_key("total_m3"));
}

#[test]
fn corrupted_compact_data_fails_the_ell_payload_crc() {
    let (link, ell, mut compact) = flowiq_parts();
    // Flow 0x0023 -> 0x0024: the ELL payload CRC no longer verifies. The ELL says
    // AES-CTR; with no key the frame cannot be taken for an already decrypted one.
    let flow = compact.len() - 7;
    assert_eq!(compact[flow], 0x23);
    compact[flow] = 0x24;
    assert_ne!(
        crc16_en13757(&compact),
        u16::from_le_bytes([ell[7], ell[8]])
    );
    let frame = with_length([link.as_slice(), &ell, &compact].concat());
    let err = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(frame))
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::NoKey, "{err}");
}

#[test]
fn omnipower_full_and_compact_frames() {
    let names = [
        "total_energy_consumption_kwh",
        "total_energy_production_kwh",
        "current_power_consumption_kw",
        "current_power_production_kw",
    ];
    for marker in ["78040", "79138C"] {
        let e = entry(
            "omnipower",
            "32666857",
            "total_energy_consumption_kwh",
            marker,
        );
        let r = decode_alone(&e);
        assert_driver(&r, "omnipower");
        assert_fields(&r, &e, &names);
    }
}

#[test]
fn kampress_full_and_compact_frames() {
    for marker in ["782269", "79DE73"] {
        let e = entry("kampress", "77000317", "pressure_bar", marker);
        let r = decode_alone(&e);
        assert_driver(&r, "kampress");
        assert_fields(
            &r,
            &e,
            &["pressure_bar", "max_pressure_bar", "min_pressure_bar"],
        );
        // Error flags bit 3: the reference reports LOW.
        assert_eq!(text(&r, "error_flags"), "8");
        assert_eq!(e["expected"]["status"], "LOW");
    }
}

#[test]
fn em24_with_kamstrup_and_gavazzi_radios() {
    let e = entry("em24", "66666666", "total_energy_consumption_kwh", "");
    let r = decode_alone(&e);
    assert_driver(&r, "em24");
    assert_fields(
        &r,
        &e,
        &[
            "total_energy_consumption_kwh",
            "total_energy_production_kwh",
        ],
    );
    // 0x22: I3 and V2 overflow, as the reference reports.
    assert_eq!(text(&r, "error_flags"), "34");

    let e = entry("em24", "02020202", "voltage_at_phase_1_v", "");
    let r = decode_alone(&e);
    assert_driver(&r, "em24-gav");
    assert_fields(
        &r,
        &e,
        &[
            "total_energy_consumption_kwh",
            "power_kw",
            "amperage_at_phase_1_a",
            "amperage_at_phase_3_a",
            "voltage_at_phase_1_v",
            "voltage_at_phase_2_v",
            "voltage_at_phase_3_v",
        ],
    );
}

#[test]
fn gwfwater_battery_from_the_manufacturer_block() {
    let names = ["battery_y", "total_m3", "target_m3", "actuality_duration_s"];
    for (meter, marker) in [("20221031", "0F012001"), ("19680750", "0F0100E3")] {
        let e = entry("gwfwater", meter, "battery_y", marker);
        let r = decode_alone(&e);
        assert_driver(&r, "gwfwater");
        assert_fields(&r, &e, &names);
        // Power-saving mode (bit 0 of the battery byte): the reference says SAVING.
        assert_eq!(e["expected"]["power_mode"], "SAVING");
        assert_eq!(text(&r, "power_saving_flags"), "1");
    }
    // Battery-low bit (0x20) in the status byte of the first meter.
    let e = entry("gwfwater", "20221031", "battery_y", "0F012001");
    assert_eq!(text(&decode_alone(&e), "status_flags"), "32");

    // A block of unknown type (0x02): no battery field, and the reading says why.
    let e = entry("gwfwater", "19680750", "battery_y", "0F0200E3");
    assert!(e["expected"]["battery_y"].is_null());
    let r = decode_alone(&e);
    assert_eq!(r.driver.as_deref(), Some("gwfwater"));
    assert!(!r.fields.contains_key("battery_y"));
    let why = r.driver_error.as_deref().expect("step error");
    assert!(why.contains("block type 0x02"), "{why}");
    assert_fields(&r, &e, &["total_m3", "target_m3"]);
}

#[test]
fn elvsense_room_sensor() {
    for meter in ["80008957", "80008958"] {
        let e = entry("elvsense", meter, "temperature_c", "");
        let r = decode_alone(&e);
        assert_driver(&r, "elvsense");
        assert_fields(&r, &e, &["temperature_c", "battery_v"]);
    }
}

#[test]
fn supercal_heat_meter() {
    let e = entry("supercal", "89508019", "total_kwh", "");
    let r = decode_alone(&e);
    assert_driver(&r, "supercal");
    assert_fields(
        &r,
        &e,
        &[
            "total_kwh",
            "total_m3",
            "target_kwh",
            "target_m3",
            "power_kw",
            "flow_temperature_c",
            "return_temperature_c",
            "volume_flow_m3h",
            "meter_datetime",
        ],
    );
}

/// The format signatures the reference decoder knows for Multical 21 / flowIQ 3100
/// compact frames without a full frame, each with the record headers it stands for.
const KNOWN_KAMSTRUP_SIGNATURES: [(u16, &str); 4] = [
    (0xA8ED, "02FF20 0413 4413 615B 6167"),
    (0xC412, "02FF20 0413 92013B A1015B 8101E7FF0F"),
    (0x61EB, "02FF20 0413 4413 A1015B 8101E7FF0F"),
    (0xD2F7, "02FF20 0413 4413 615B 5167"),
];

/// A plaintext Multical 21 frame (KAM, version 0x1B, cold water) with CI `ci` and `apl`.
fn multical21_frame(ci: u8, apl: &[u8]) -> Vec<u8> {
    let header = wmbusd::wire::link::LinkHeader {
        length: u8::try_from(10 + apl.len()).expect("short frame"),
        control: 0x44,
        address: wmbusd::wire::address::Address {
            manufacturer: wmbusd::wire::manufacturer::Manufacturer::from_code("KAM")
                .expect("code")
                .0,
            id: [0x78, 0x56, 0x34, 0x12],
            version: 0x1B,
            device_type: 0x16,
        },
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame.push(ci);
    frame.extend_from_slice(apl);
    frame
}

#[test]
fn every_known_kamstrup_signature_is_declared_and_expands_like_its_full_frame() {
    use wmbusd::wire::apl;
    use wmbusd::wire::compact::{format_signature, full_frame_crc, CompactFormat, CompactRepr};

    let set = wmbusd::drivers::DriverSet::builtin();
    let declared = set.get("multical21").expect("multical21").compact_formats();
    for (signature, headers) in KNOWN_KAMSTRUP_SIGNATURES {
        let headers = parse_hex(headers).expect("hex");
        let format = CompactFormat::from_headers(&headers).expect("format");
        assert_eq!(format.signature(), signature, "{signature:04X}: our CRC");
        assert!(declared.contains(&format), "{signature:04X} not declared");
        // A full frame with these headers and distinct data bytes.
        let mut full = Vec::new();
        let mut data = Vec::new();
        for (i, entry) in format.records.iter().enumerate() {
            let len = entry.data_len.expect("fixed length");
            let bytes: Vec<u8> = (0..len).map(|k| (0x11 * (i + 1) + k) as u8).collect();
            full.extend_from_slice(&entry.header);
            full.extend_from_slice(&bytes);
            data.extend_from_slice(&bytes);
        }
        let parsed = apl::parse(&full).expect("full frame records");
        assert_eq!(format_signature(&parsed.records), signature);
        let compact = CompactRepr {
            signature,
            full_crc: full_frame_crc(&full),
            data: &data,
        };
        let mut compact_apl = Vec::new();
        compact.emit(&mut compact_apl);
        // Each frame alone, by a decoder that has heard nothing before.
        let decode = |frame: Vec<u8>| {
            Decoder::new(KeyStore::new())
                .decode(&RadioFrame::new(frame))
                .unwrap_or_else(|e| panic!("{signature:04X}: {e}"))
        };
        let from_full = decode(multical21_frame(0x78, &full));
        let from_compact = decode(multical21_frame(0x79, &compact_apl));
        assert_eq!(from_compact.records, from_full.records, "{signature:04X}");
        assert_eq!(from_compact.fields, from_full.fields, "{signature:04X}");
        assert_eq!(from_compact.driver.as_deref(), Some("multical21"));
    }
}
