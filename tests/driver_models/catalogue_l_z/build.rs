//! Telegrams built with the library's emitters from a meter's documented layout, for
//! the catalogue tests: link header, short TPL header (CI 0x7A) and data records, each
//! written by the wire layer's own `emit`.

use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::reading::Reading;
use wmbusd::wire::apl::{DataField, Function, RecordRepr, Vib};
use wmbusd::wire::link::LinkHeader;
use wmbusd::wire::manufacturer::Manufacturer;
use wmbusd::wire::tpl::{ConfigField, Status, TplHeader, TplRepr};

/// The meter a telegram comes from.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    pub manufacturer: &'static str,
    /// Eight decimal digits, as printed on the meter.
    pub id: u32,
    pub version: u8,
    pub device_type: u8,
}

/// The identification bytes as sent: BCD, least significant pair first.
pub fn id_bytes(id: u32) -> [u8; 4] {
    let mut out = [0u8; 4];
    let mut rest = id;
    for slot in &mut out {
        let pair = rest % 100;
        *slot = u8::try_from(((pair / 10) << 4) | (pair % 10)).expect("BCD pair");
        rest /= 100;
    }
    out
}

/// The link header of `meter` for a frame whose bytes after the header are `body`.
pub fn link_header(meter: &Meter, body_len: usize) -> Vec<u8> {
    let header = LinkHeader {
        length: u8::try_from(9 + body_len).expect("telegram fits one L-field"),
        control: 0x44,
        address: wmbusd::wire::address::Address {
            manufacturer: Manufacturer::from_code(meter.manufacturer)
                .expect("manufacturer code")
                .0,
            id: id_bytes(meter.id),
            version: meter.version,
            device_type: meter.device_type,
        },
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame
}

/// A plaintext SND_NR telegram: short TPL header with `status`, then `records`.
pub fn telegram(meter: &Meter, status: u8, records: &[RecordRepr]) -> Vec<u8> {
    telegram_with_tail(meter, status, records, &[])
}

/// [`telegram`] with `tail` after the records (e.g. DIF 0x0F and manufacturer data).
pub fn telegram_with_tail(
    meter: &Meter,
    status: u8,
    records: &[RecordRepr],
    tail: &[u8],
) -> Vec<u8> {
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
    for record in records {
        record.emit(&mut body).expect("record emits");
    }
    body.extend_from_slice(tail);
    let mut frame = link_header(meter, body.len());
    frame.extend_from_slice(&body);
    frame
}

/// A proprietary frame: link header, the manufacturer-specific CI, then `payload`.
pub fn proprietary(meter: &Meter, ci: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = link_header(meter, 1 + payload.len());
    frame.push(ci);
    frame.extend_from_slice(payload);
    frame
}

/// Decodes `frame` with no keys.
pub fn decode(frame: &[u8]) -> Reading {
    Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(frame.to_vec()))
        .unwrap_or_else(|e| panic!("{}: {e}", hex::encode_upper(frame)))
}

/// An integer record of `len` bytes.
pub fn int(len: u8, vib: Vib, value: i64) -> RecordRepr {
    RecordRepr::integer(DataField::Integer(len), vib, value).expect("value fits")
}

/// A BCD record of `len` bytes.
pub fn bcd(len: u8, vib: Vib, value: i64) -> RecordRepr {
    RecordRepr::bcd(DataField::Bcd(len), vib, value).expect("value fits")
}

/// A type G date record (02 6C) of 20yy-mm-dd.
pub fn date(year: u16, month: u8, day: u8) -> RecordRepr {
    let y = i64::from(year - 2000);
    let value = i64::from(day) | ((y & 7) << 5) | (i64::from(month) << 8) | ((y >> 3) << 12);
    int(2, Vib::primary(0x6C), value)
}

/// A type F date and time record (04 6D) of 20yy-mm-dd hh:mm.
pub fn datetime(year: u16, month: u8, day: u8, hour: u8, minute: u8) -> RecordRepr {
    let y = i64::from(year - 2000);
    let value = i64::from(minute)
        | (i64::from(hour) << 8)
        | ((i64::from(day) | ((y & 7) << 5)) << 16)
        | ((i64::from(month) | ((y >> 3) << 4)) << 24);
    int(4, Vib::primary(0x6D), value)
}

/// `record` at storage `n`.
pub fn at(n: u64, record: RecordRepr) -> RecordRepr {
    record.storage(n)
}

/// `record` as a value during an error state.
pub fn at_error(record: RecordRepr) -> RecordRepr {
    record.function(Function::Error)
}

/// The reading's field `name` as JSON text (`12.5`, `"2024-01-31"`), or `missing`
/// with the names the reading has.
pub fn field(reading: &Reading, name: &str) -> String {
    match reading.fields.get(name) {
        Some(value) => serde_json::to_string(value).expect("field serializes"),
        None => format!(
            "missing (fields: {:?})",
            reading.fields.keys().collect::<Vec<_>>()
        ),
    }
}

/// `record` with the future-value VIFE (0x7E): e.g. the next billing date.
pub fn future(mut record: RecordRepr) -> RecordRepr {
    record.vib = record.vib.with_vife(0x7E);
    record
}
