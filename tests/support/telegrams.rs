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
    with_link_header(manufacturer, id_bytes(id), &body)
}

/// An SND_NR link header (water meter, version 1) in front of `body`.
fn with_link_header(manufacturer: u16, id: [u8; 4], body: &[u8]) -> Vec<u8> {
    let header = LinkHeader {
        length: u8::try_from(9 + body.len()).expect("short telegram"),
        control: 0x44,
        manufacturer,
        id,
        version: 1,
        device_type: 0x07,
    };
    let mut frame = Vec::new();
    header.emit(&mut frame);
    frame.extend_from_slice(body);
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

/// A mode-7 (OMS profile B) SND_NR telegram of meter `id`: AFL with message counter
/// `counter` and an 8-byte AES-CMAC, TPL short header (KDF-A), one volume record encrypted
/// with the keys KDF-A derives from `key` and `counter`. Built with the library's emitters
/// and crypto, the way a meter builds it.
pub fn mode7(id: u32, key: &[u8; 16], counter: u32, access_number: u8, litres: u32) -> Vec<u8> {
    use wmbusd::crypto::{self, derivation};
    use wmbusd::wire::afl::{AflRepr, FragmentControl, Mac, MessageControl};
    let manufacturer = Manufacturer::from_code("TST").expect("manufacturer code").0;
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
    with_link_header(manufacturer, id_bytes, &body)
}
