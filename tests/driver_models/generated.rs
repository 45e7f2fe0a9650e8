//! Telegrams built with the library's emitters from a meter's documented layout: a link
//! header, a plaintext short TPL header (CI 0x7A) and data records, decoded by the built-in
//! drivers. The catalogue modules describe each model with these helpers.

use serde_json::Value as Json;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::reading::Reading;
use wmbusd::wire::apl::{DataField, Dib, Function, RecordRepr, Vib, VifTable};
use wmbusd::wire::link::LinkHeader;
use wmbusd::wire::manufacturer::Manufacturer;
use wmbusd::wire::tpl::{ConfigField, Status, TplHeader, TplRepr};

/// Which meter the telegram claims to come from.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    pub manufacturer: &'static str,
    pub version: u8,
    pub device_type: u8,
}

pub const fn meter(manufacturer: &'static str, version: u8, device_type: u8) -> Meter {
    Meter {
        manufacturer,
        version,
        device_type,
    }
}

/// The frame bytes: L C M A(id 12345678) V T, CI 0x7A, access number, `status`, no
/// security, then the records and, when given, DIF 0x0F and the vendor bytes.
pub fn frame_bytes(m: Meter, status: u8, records: &[RecordRepr], vendor: Option<&[u8]>) -> Vec<u8> {
    let tpl = TplRepr {
        ci: 0x7A,
        long_address: None,
        header: Some(TplHeader {
            access_number: 0x21,
            status: Status(status),
            config: ConfigField(0),
            config_ext: None,
            message_counter: None,
            key_version: None,
        }),
    };
    let mut body = Vec::new();
    tpl.emit(&mut body);
    for r in records {
        r.emit(&mut body).expect("record emits");
    }
    if let Some(bytes) = vendor {
        body.push(0x0F);
        body.extend_from_slice(bytes);
    }
    let header = LinkHeader {
        length: u8::try_from(9 + body.len()).expect("telegram under 256 bytes"),
        control: 0x44,
        address: wmbusd::wire::address::Address {
            manufacturer: Manufacturer::from_code(m.manufacturer)
                .expect("manufacturer code")
                .0,
            id: [0x78, 0x56, 0x34, 0x12],
            version: m.version,
            device_type: m.device_type,
        },
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame.extend_from_slice(&body);
    frame
}

/// Decodes the built telegram with the built-in drivers; it must come out of `driver`
/// without a step error.
pub fn decode_as(driver: &str, m: Meter, records: &[RecordRepr]) -> Reading {
    decode_frame(driver, frame_bytes(m, 0, records, None))
}

pub fn decode_frame(driver: &str, bytes: Vec<u8>) -> Reading {
    let reading = Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(bytes))
        .unwrap_or_else(|e| panic!("{driver}: {e}"));
    assert_eq!(reading.driver.as_deref(), Some(driver), "driver selected");
    assert_eq!(reading.driver_error, None, "{driver}");
    reading
}

/// Each field equals the expected JSON (numbers compared as numbers).
pub fn expect(reading: &Reading, pairs: &[(&str, Json)]) {
    for (name, want) in pairs {
        let got = reading
            .fields
            .get(name)
            .unwrap_or_else(|| panic!("field {name} missing: {:?}", reading.fields));
        let got = serde_json::to_value(got).expect("field as JSON");
        match (got.as_f64(), want.as_f64()) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{name}: {got} != {want}"),
            _ => assert_eq!(&got, want, "{name}"),
        }
    }
}

/// The field is absent (its record was not sent, or belongs to another field).
pub fn absent(reading: &Reading, names: &[&str]) {
    for name in names {
        assert!(
            reading.fields.get(name).is_none(),
            "{name} should be absent: {:?}",
            reading.fields
        );
    }
}

// Record builders: each names the VIF it stands for.

fn int(n: u8, vib: Vib, value: i64) -> RecordRepr {
    RecordRepr::integer(DataField::Integer(n), vib, value).expect("value fits")
}

/// Volume in litres (VIF 0x13), 4-byte integer.
pub fn litres(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x13), value)
}

/// Volume in 10^-4 m3 (VIF 0x12), 8-digit BCD.
pub fn volume_bcd_e4(value: i64) -> RecordRepr {
    RecordRepr::bcd(DataField::Bcd(4), Vib::primary(0x12), value).expect("BCD fits")
}

/// Energy in Wh (VIF 0x03).
pub fn wh(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x03), value)
}

/// Energy in kWh (VIF 0x06).
pub fn kwh(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x06), value)
}

/// Power in W (VIF 0x2B).
pub fn watts(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x2B), value)
}

/// Volume flow in l/h (VIF 0x3B), 2 bytes.
pub fn litres_per_hour(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x3B), value)
}

/// Flow temperature in 0.01 C (VIF 0x59).
pub fn flow_temp(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x59), value)
}

/// Return temperature in 0.01 C (VIF 0x5D).
pub fn return_temp(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x5D), value)
}

/// Temperature difference in 0.01 K (VIF 0x61).
pub fn temp_difference(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x61), value)
}

/// External temperature in 0.01 C (VIF 0x65).
pub fn external_temp(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x65), value)
}

/// Heat cost allocator units (VIF 0x6E), 2 bytes.
pub fn hca(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x6E), value)
}

/// Operating time in hours (VIF 0x26).
pub fn operating_hours(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x26), value)
}

/// On time in hours (VIF 0x22).
pub fn on_hours(value: i64) -> RecordRepr {
    int(4, Vib::primary(0x22), value)
}

/// Actuality duration in seconds (VIF 0x74).
pub fn actuality_s(value: i64) -> RecordRepr {
    int(2, Vib::primary(0x74), value)
}

/// Error flags (VIF FD 17), 2 bytes.
pub fn error_flags(value: i64) -> RecordRepr {
    int(2, Vib::fd(0x17), value)
}

/// Fabrication number (VIF 0x78), 8-digit BCD.
pub fn fabrication(value: i64) -> RecordRepr {
    RecordRepr::bcd(DataField::Bcd(4), Vib::primary(0x78), value).expect("BCD fits")
}

/// Type G date (VIF 0x6C).
pub fn date(year: u16, month: u8, day: u8) -> RecordRepr {
    let y = year - 2000;
    let data = vec![
        day | ((y as u8 & 0x07) << 5),
        month | (((y >> 3) as u8 & 0x0F) << 4),
    ];
    RecordRepr::new(
        Dib::new(DataField::Integer(2)),
        Vib::primary(0x6C),
        None,
        data,
    )
}

/// Type F date and time (VIF 0x6D).
pub fn datetime(year: u16, month: u8, day: u8, hour: u8, minute: u8) -> RecordRepr {
    let y = year - 2000;
    let data = vec![
        minute,
        hour,
        day | ((y as u8 & 0x07) << 5),
        month | (((y >> 3) as u8 & 0x0F) << 4),
    ];
    RecordRepr::new(
        Dib::new(DataField::Integer(4)),
        Vib::primary(0x6D),
        None,
        data,
    )
}

/// A record with maximum function field.
pub fn max(r: RecordRepr) -> RecordRepr {
    r.function(Function::Maximum)
}

/// A record with a vendor VIF (0xFF) and `vife` (manufacturer-specific records such as
/// 04 FF 22), holding `data`.
pub fn vendor_record(n: u8, vife: &[u8], data: &[u8]) -> RecordRepr {
    let mut vib = Vib::new(VifTable::Manufacturer, 0x7F);
    for &v in vife {
        vib = vib.with_vife(v);
    }
    RecordRepr::new(Dib::new(DataField::Integer(n)), vib, None, data.to_vec())
}
