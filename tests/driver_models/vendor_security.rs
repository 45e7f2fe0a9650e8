//! Vendor security built with the library's emitters: Diehl "real data" (LFSR-scrambled
//! payload announced by CFG bit 12, with the address sent version-first) and Diehl's
//! factory AES key for OMS mode 5.

use wmbusd::crypto;
use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::drivers::steps::diehl;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::reading::Reading;
use wmbusd::wire::apl::{DataField, RecordRepr, Vib};
use wmbusd::wire::link::LinkHeader;
use wmbusd::wire::manufacturer::Manufacturer;

/// Hydrus water meter 12345678 (DME, version 0x70, cold water 0x07).
const ID: [u8; 4] = [0x78, 0x56, 0x34, 0x12];
const VERSION: u8 = 0x70;
const DEVICE_TYPE: u8 = 0x07;

/// Plain records: total 123.456 m3, flow 0.012 m3/h.
fn records() -> Vec<u8> {
    let mut out = Vec::new();
    for record in [
        RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), 123_456),
        RecordRepr::integer(DataField::Integer(2), Vib::primary(0x3B), 12),
    ] {
        record.expect("fits").emit(&mut out).expect("emits");
    }
    out
}

/// The link header; `swapped`: the A field as Diehl real-data frames send it (version,
/// device type, then the four identification bytes).
fn link(manufacturer: &str, body_len: usize, swapped: bool) -> Vec<u8> {
    let [i0, i1, i2, i3] = ID;
    let (id, version, device_type) = if swapped {
        ([VERSION, DEVICE_TYPE, i0, i1], i2, i3)
    } else {
        (ID, VERSION, DEVICE_TYPE)
    };
    let header = LinkHeader {
        length: u8::try_from(9 + body_len).expect("short"),
        control: 0x44,
        address: wmbusd::wire::address::Address {
            manufacturer: Manufacturer::from_code(manufacturer).expect("code").0,
            id,
            version,
            device_type,
        },
    };
    let mut out = Vec::new();
    header.emit(&mut out);
    out
}

/// A real-data frame scrambled with `key` (8 bytes).
fn real_data_frame(key: &[u8; 8]) -> Vec<u8> {
    let mut payload = records();
    let tpl4 = [0x7A, 0x2C, 0x00, 0x00];
    let frame_link = link("DME", 5 + payload.len(), true);
    let link9: [u8; 9] = frame_link[1..10].try_into().expect("9 bytes");
    let cfg_hi = diehl::scramble_real_data(&link9, tpl4, key, &mut payload);
    let mut frame = frame_link;
    frame.extend_from_slice(&tpl4);
    frame.push(cfg_hi);
    frame.extend_from_slice(&payload);
    frame
}

fn decode(frame: &[u8], keys: KeyStore) -> Result<Reading, wmbusd::decode::DecodeError> {
    Decoder::new(keys).decode(&RadioFrame::new(frame.to_vec()))
}

#[test]
fn diehl_real_data_opens_with_either_factory_key() {
    for key in diehl::factory_keys() {
        let frame = real_data_frame(key);
        let reading = decode(&frame, KeyStore::new()).expect("descrambled");
        // The address is read version-first, as these meters send it, also by the
        // header-only reader the counters use.
        assert_eq!(reading.meter.id, "12345678");
        assert_eq!(
            wmbusd::wire::telegram::Telegram::parse(
                &frame,
                wmbusd::frame::CrcState::Unknown,
                false,
                &mut Vec::new()
            )
            .expect("parses")
            .meter_id()
            .as_deref(),
            Some("12345678")
        );
        assert_eq!(reading.meter.version, VERSION);
        assert_eq!(reading.driver.as_deref(), Some("hydrus"));
        assert_eq!(
            reading.security.verified_by.as_deref(),
            Some("diehl_checksum")
        );
        assert!(
            reading.security.mode >= 16,
            "CFG high byte read as a mode: {}",
            reading.security.mode
        );
        let total = serde_json::to_string(&reading.fields["total_m3"]).unwrap();
        assert_eq!(total, "123.456");
        let flow = serde_json::to_string(&reading.fields["flow_m3h"]).unwrap();
        assert_eq!(flow, "0.012");
    }
}

#[test]
fn diehl_real_data_with_the_meters_own_key() {
    let own = [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE];
    let frame = real_data_frame(&own);
    let mut keys = KeyStore::new();
    let mut sixteen = [0u8; 16];
    sixteen[..8].copy_from_slice(&own);
    keys.insert("12345678", &sixteen).expect("key");
    let reading = decode(&frame, keys).expect("descrambled with the own key");
    assert_eq!(
        serde_json::to_string(&reading.fields["total_m3"]).unwrap(),
        "123.456"
    );
}

#[test]
fn diehl_real_data_that_no_key_opens_is_a_named_error() {
    // Scrambled with a key that is neither configured nor a factory key; one flipped
    // payload byte breaks the checksum whatever the key.
    let mut frame = real_data_frame(&diehl::factory_keys()[0]);
    let last = frame.len() - 1;
    frame[last] ^= 0x01;
    let err = decode(&frame, KeyStore::new()).expect_err("checksum fails");
    assert_eq!(err.kind, FailureKind::WrongKey);
    assert!(err.to_string().contains("real-data"), "{err}");
}

#[test]
fn the_same_cfg_bit_on_another_vendor_is_not_real_data() {
    // KAM with CFG 0x1000 claims reserved mode 16 over a plain 2F 2F payload.
    let mut body = vec![0x7A, 0x2C, 0x00, 0x00, 0x10, 0x2F, 0x2F];
    body.extend_from_slice(&records());
    let mut frame = link("KAM", body.len(), false);
    frame.extend_from_slice(&body);
    let reading = decode(&frame, KeyStore::new()).expect("plaintext behind a reserved mode");
    assert_eq!(reading.meter.id, "12345678");
    assert_eq!(reading.security.verified_by, None);
    assert_eq!(reading.records.len(), 2);
}

/// A mode 5 frame of `manufacturer` encrypted with `key`.
fn mode5_frame(manufacturer: &str, key: &[u8; 16]) -> Vec<u8> {
    let mut payload = vec![0x2F, 0x2F];
    payload.extend_from_slice(&records());
    payload.resize(32, 0x2F);
    let access = 0x2C;
    let body_len = 5 + payload.len();
    let frame_link = link(manufacturer, body_len, false);
    let address: [u8; 8] = frame_link[2..10].try_into().expect("8 bytes");
    let iv = crypto::mode5_iv(&address, access);
    crypto::encrypt_cbc_in_place(&crypto::expand_key(key), &iv, &mut payload).expect("blocks");
    let mut frame = frame_link;
    // CFG 0x0520: mode 5, two encrypted blocks.
    frame.extend_from_slice(&[0x7A, access, 0x00, 0x20, 0x05]);
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn diehl_oms_mode5_opens_with_the_factory_key_when_none_is_configured() {
    let reading = decode(
        &mode5_frame("DME", &diehl::OMS_DEFAULT_KEY),
        KeyStore::new(),
    )
    .expect("factory key");
    assert!(reading.security.decrypted);
    assert_eq!(
        serde_json::to_string(&reading.fields["total_m3"]).unwrap(),
        "123.456"
    );
    // Another vendor's meter gets no Diehl key.
    let err = decode(
        &mode5_frame("KAM", &diehl::OMS_DEFAULT_KEY),
        KeyStore::new(),
    )
    .expect_err("no key");
    assert_eq!(err.kind, FailureKind::NoKey);
    // A Diehl meter with its own key: the factory key is not used in its place.
    let mut keys = KeyStore::new();
    keys.insert("12345678", &[0x42; 16]).expect("key");
    let err = decode(&mode5_frame("DME", &diehl::OMS_DEFAULT_KEY), keys).expect_err("own key wins");
    assert_eq!(err.kind, FailureKind::WrongKey);
}

/// A KAM frame whose CFG high byte claims security mode `mode`, then `payload`.
fn claimed_mode_frame(mode: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0x7A, 0x2C, 0x00, 0x00, mode];
    body.extend_from_slice(payload);
    let mut frame = link("KAM", body.len(), false);
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn plaintext_records_behind_a_claimed_reserved_or_vendor_mode_decode() {
    for mode in [1, 15, 16, 20, 31] {
        let reading = decode(&claimed_mode_frame(mode, &records()), KeyStore::new())
            .unwrap_or_else(|e| panic!("mode {mode}: {e}"));
        assert_eq!(reading.security.mode, mode);
        assert!(!reading.security.decrypted);
        assert_eq!(reading.records.len(), 2, "mode {mode}");
    }
}

#[test]
fn a_claimed_vendor_mode_over_bytes_that_are_not_records_stays_an_error() {
    // Ciphertext-like bytes: a manufacturer-specific DIF, and bytes that do not parse.
    for payload in [
        &[0x0F, 0x12, 0x34, 0x56][..],
        &[0x07, 0xFF, 0x00][..],
        &[0x04, 0x13, 0x01, 0x02][..],
        // Two records, then zero bytes that read as records without data.
        &[
            0x02, 0x13, 0x01, 0x02, 0x02, 0x3B, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ][..],
    ] {
        let err = decode(&claimed_mode_frame(16, payload), KeyStore::new()).expect_err("not plain");
        assert_eq!(err.kind, FailureKind::Unsupported, "{payload:02X?}");
    }
    // A single record is not enough to call the payload plaintext.
    let one = &records()[..6];
    assert!(decode(&claimed_mode_frame(16, one), KeyStore::new()).is_err());
}
