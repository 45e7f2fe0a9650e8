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

/// Who sends a telegram: the link layer's identity fields.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub id: u32,
    /// 3-letter manufacturer code.
    pub manufacturer: &'static str,
    pub version: u8,
    /// EN 13757-7 device type (0x04 heat, 0x07 water, 0x08 HCA, 0x02 electricity, …).
    pub device_type: u8,
}

impl Sender {
    /// A test meter of manufacturer `TST`, version 1.
    pub fn tst(id: u32, device_type: u8) -> Sender {
        Sender {
            id,
            manufacturer: "TST",
            version: 1,
            device_type,
        }
    }
}

/// A plaintext SND_NR telegram (CI 0x7A, short header) of `sender` with `records`.
pub fn telegram(sender: &Sender, access_number: u8, status: u8, records: &[RecordRepr]) -> Vec<u8> {
    let tpl = TplRepr {
        ci: 0x7A,
        long_address: None,
        header: Some(TplHeader {
            access_number,
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
    with_link_header(sender, &body)
}

/// An SND_NR link header of `sender` in front of `body`.
fn with_link_header(sender: &Sender, body: &[u8]) -> Vec<u8> {
    let manufacturer = Manufacturer::from_code(sender.manufacturer)
        .expect("manufacturer code")
        .0;
    let header = LinkHeader {
        length: u8::try_from(9 + body.len()).expect("short telegram"),
        control: 0x44,
        address: wmbusd::wire::address::Address {
            manufacturer,
            id: id_bytes(sender.id),
            version: sender.version,
            device_type: sender.device_type,
        },
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame.extend_from_slice(body);
    frame
}

/// A 4-byte integer record.
pub fn int32(vib: Vib, value: i64) -> RecordRepr {
    RecordRepr::integer(DataField::Integer(4), vib, value).expect("value fits 4 bytes")
}

/// EN 13757-3 type G date (2 bytes).
pub fn type_g(y: i64, m: i64, d: i64) -> i64 {
    let yy = y % 100;
    (d | ((yy & 7) << 5)) | ((m | ((yy >> 3) << 4)) << 8)
}

/// EN 13757-3 type F date and time (4 bytes).
pub fn type_f(y: i64, m: i64, d: i64, h: i64, mi: i64) -> i64 {
    let yy = y % 100;
    mi | (h << 8) | ((d | ((yy & 7) << 5)) << 16) | ((m | ((yy >> 3) << 4)) << 24)
}

/// Record: the meter's clock, type F (VIF 0x6D).
pub fn clock_record((y, m, d, h, mi): (i64, i64, i64, i64, i64)) -> RecordRepr {
    int32(Vib::primary(0x6D), type_f(y, m, d, h, mi))
}

/// Record: a date at `storage`, type G (VIF 0x6C).
pub fn date_record(storage: u64, (y, m, d): (i64, i64, i64)) -> RecordRepr {
    RecordRepr::integer(DataField::Integer(2), Vib::primary(0x6C), type_g(y, m, d))
        .expect("date fits 2 bytes")
        .storage(storage)
}

/// A plaintext SND_NR telegram of meter `id` with one volume record (VIF 0x13, litres).
pub fn synthetic(id: u32, access_number: u8, litres: u32) -> Vec<u8> {
    let record = int32(Vib::primary(0x13), i64::from(litres));
    telegram(&Sender::tst(id, 0x07), access_number, 0, &[record])
}

/// A mode-7 (OMS profile B) SND_NR telegram of meter `id`: AFL with message counter
/// `counter` and an 8-byte AES-CMAC, TPL short header (KDF-A), one volume record encrypted
/// with the keys KDF-A derives from `key` and `counter`. Built with the library's emitters
/// and crypto, the way a meter builds it.
pub fn mode7(id: u32, key: &[u8; 16], counter: u32, access_number: u8, litres: u32) -> Vec<u8> {
    use wmbusd::crypto::{self, derivation};
    use wmbusd::wire::afl::{AflRepr, FragmentControl, Mac, MessageControl};
    let id_bytes = id_bytes(id);
    let master = crypto::expand_key(key);
    let kenc = crypto::expand_key(&crypto::kdf_a(
        &master,
        derivation::ENC_FROM_METER,
        counter,
        &id_bytes,
    ));
    let kmac = crypto::expand_key(&crypto::kdf_a(
        &master,
        derivation::MAC_FROM_METER,
        counter,
        &id_bytes,
    ));
    // Plaintext: 2F 2F verification bytes, the record, 2F fill to whole blocks.
    let record = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), i64::from(litres))
        .expect("value fits 4 bytes");
    let mut plain = vec![0x2F, 0x2F];
    record.emit(&mut plain).expect("record emits");
    while plain.len() % 16 != 0 {
        plain.push(0x2F);
    }
    let blocks = u16::try_from(plain.len() / 16).expect("few blocks");
    crypto::encrypt_cbc_in_place(&kenc, &[0u8; 16], &mut plain).expect("whole blocks");
    let tpl = TplRepr {
        ci: 0x7A,
        long_address: None,
        header: Some(TplHeader {
            access_number,
            status: Status(0),
            // Mode 7 (bits 12..8), N encrypted blocks (bits 7..4).
            config: ConfigField((7 << 8) | (blocks << 4)),
            // KDF-A, key id 0.
            config_ext: Some(0x10),
            message_counter: None,
            key_version: None,
        }),
    };
    let mut tpdu = Vec::new();
    tpl.emit(&mut tpdu);
    tpdu.extend_from_slice(&plain);
    // MCL: counter in the message, AES-CMAC truncated to 8 bytes.
    let mut afl = AflRepr {
        fragment_control: FragmentControl(0),
        message_control: Some(MessageControl(0x25)),
        key_info: None,
        message_counter: Some(counter),
        mac: Mac::new(&[0u8; 8]),
        message_length: None,
    };
    let mut input = afl.mac_input_prefix();
    input.extend_from_slice(&tpdu);
    let mac = crypto::afl_mac(&kmac, &input);
    afl.mac = Mac::new(&mac[..8]);
    let mut body = Vec::new();
    afl.emit(&mut body);
    body.extend_from_slice(&tpdu);
    with_link_header(&Sender::tst(id, 0x07), &body)
}

// ---------------------------------------------------------------------------------------
// Time without the library: Unix seconds and civil dates by hand.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Unix seconds of a UTC time.
pub fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
    days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
}

/// (year, month, day, hour, minute) of Unix seconds.
pub fn civil(t: i64) -> (i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let s = t.rem_euclid(86_400);
    (y, m, d, s / 3600, s % 3600 / 60)
}

/// A replay line with the recorded time `t` (Unix seconds) first.
pub fn recorded_line(t: i64, frame: &[u8]) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
    wmbusd::radio::replay::format_recorded_line(at, frame, Some(-70.0))
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
