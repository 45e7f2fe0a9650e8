//! Telegrams built with the library's emitters for daemon tests and benchmarks.

use wmbusd::wire::apl::{DataField, RecordRepr, Vib};
use wmbusd::wire::link::LinkHeader;
use wmbusd::wire::manufacturer::Manufacturer;
use wmbusd::wire::tpl::{ConfigField, Status, TplHeader, TplRepr};

/// The 4 link-layer id bytes of meter `id` (8 digits, BCD, last two digits first).
pub fn id_bytes(id: u32) -> [u8; 4] {
    let digits = format!("{id:08}");
    let mut out = [0u8; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = &digits[6 - 2 * i..8 - 2 * i];
        *slot = u8::from_str_radix(pair, 16).expect("BCD digits");
    }
    out
}

/// A plaintext SND_NR telegram of meter `id` with one volume record (VIF 0x13, litres).
pub fn synthetic(id: u32, access_number: u8, litres: u32) -> Vec<u8> {
    let manufacturer = Manufacturer::from_code("TST").expect("manufacturer code").0;
    let tpl = TplRepr {
        ci: 0x7A,
        long_address: None,
        header: Some(TplHeader {
            access_number,
            status: Status(0),
            config: ConfigField(0),
            config_ext: None,
            message_counter: None,
            key_version: None,
        }),
    };
    let record = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), i64::from(litres))
        .expect("value fits 4 bytes");
    let mut body = Vec::new();
    tpl.emit(&mut body);
    record.emit(&mut body).expect("record emits");
    let header = LinkHeader {
        length: u8::try_from(9 + body.len()).expect("short telegram"),
        control: 0x44,
        manufacturer,
        id: id_bytes(id),
        version: 1,
        device_type: 0x07,
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame.extend_from_slice(&body);
    frame
}

/// Litres of the synthetic telegram's volume record, back from a published reading
/// (`value` is in m3 with three decimals).
pub fn synthetic_litres(reading: &serde_json::Value) -> u32 {
    let v = &reading["records"][0]["value"];
    let text = v.to_string();
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = format!("{frac:0<3}");
    whole.parse::<u32>().expect("whole m3") * 1000 + frac.parse::<u32>().expect("fraction")
}

/// A replay file of `n` synthetic telegrams spread over `meters` meters (ids from `first_id`),
/// litres = index, so every telegram is distinct and countable.
pub fn write_replay(path: &std::path::Path, first_id: u32, meters: u32, n: u32) {
    let mut text = String::with_capacity(n as usize * 60);
    for i in 0..n {
        let frame = synthetic(first_id + i % meters, (i % 256) as u8, i);
        text.push_str("-60;");
        text.push_str(&hex::encode_upper(frame));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write replay file");
}
