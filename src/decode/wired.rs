//! Wired M-Bus frames by wired rules (EN 13757-2/-3): the long header's signature,
//! variable data MSB first (CI 0x76), without header (0x78), the fixed data structure
//! of EN 1434-3 heritage (0x73 LSB first, 0x77 MSB first), and application error
//! (0x70) and alarm (0x71) reports, which become readings naming the report.

use super::{fill_records, set_security, status_json, DecodeError, Decoder, FailureKind, Lower};
use super::{SecurityOutcome, Telegram};
use crate::frame::RadioFrame;
use crate::reading::{Reading, Report, CLAIMED_MODE_PLAINTEXT};
use crate::wire::address::Address;
use crate::wire::apl;
use crate::wire::telegram::WIRED_CI_AT;
use crate::wire::tpl::{ConfigField, SecurityMode, TplRepr};
use crate::wire::Layer;

/// Bytes of the fixed data structure after its CI: ID 4, ACC, STS, medium/unit 2,
/// counter 1 (4), counter 2 (4).
const FIXED_LEN: usize = 16;
/// Bytes of a long header after the CI: ID 4, M 2, version, medium, ACC, STS, signature 2.
const LONG_HEADER_LEN: usize = 12;

impl Decoder {
    /// Decodes a wired long frame; `buf` holds its bytes from the CI to the checksum.
    pub(super) fn decode_wired(
        &mut self,
        frame: &RadioFrame,
        telegram: &Telegram,
        buf: &mut [u8],
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        let shift = |mut e: DecodeError| {
            e.offset = e.offset.map(|o| o + WIRED_CI_AT);
            e
        };
        let ci = buf.first().copied().unwrap_or_default();
        match ci {
            0x73 | 0x77 => {
                return self
                    .wired_fixed(frame, buf, ci == 0x77, reading)
                    .map_err(shift)
            }
            0x70 | 0x71 => {
                return self
                    .wired_report(frame, telegram, buf, reading)
                    .map_err(shift)
            }
            0x76 => msb_first_to_lsb_first(buf),
            _ => {}
        }
        // CI 0x76 is the long header of 0x72 with every field MSB first, turned around above.
        let parse_ci = if ci == 0x76 { 0x72 } else { ci };
        let (mut tpl, used) = TplRepr::parse_with_ci(parse_ci, buf.get(1..).unwrap_or_default())
            .map_err(|e| {
                // An unsupported CI is reported at the CI itself, other errors after it.
                let base = usize::from(e.offset != 0);
                shift(DecodeError::from_wire(e, base))
            })?;
        tpl.ci = ci;
        let used = used + 1;
        let meter = match tpl.long_address {
            Some(address) => address,
            None => primary_address_meter(telegram),
        };
        let claimed_plaintext = self.wired_plaintext(&mut tpl, buf.get(used..), &meter);
        let lower = Lower {
            ell: SecurityOutcome::NONE,
            ell_access_number: None,
            afl: None,
            afl_offset: 0,
            // The long frame's checksum is an 8-bit sum: not a CRC.
            payload_verified: false,
        };
        // Vendor steps seed on C, M, A: a wired frame's are its C-field and the meter.
        let layer = super::Transport {
            tpl,
            start: 0,
            data: used,
            meter,
            link: crate::wire::link::control_and_address(telegram.control, &meter),
        };
        self.transport(frame, buf, &layer, &lower, reading)
            .map_err(|e| shift(e).for_meter(Some(&meter.id_string())))?;
        if claimed_plaintext {
            let diagnostics = reading.diagnostics.get_or_insert_with(Default::default);
            diagnostics.notes.push(CLAIMED_MODE_PLAINTEXT.into());
        }
        Ok(())
    }

    /// The long header's last two bytes are a signature on wired M-Bus; they are a
    /// configuration field only where EN 13757-7 defines wired security (mode 5 or 7
    /// announcing encrypted blocks that are present). Without a key for the meter, data
    /// longer than those blocks that does not start with 2F 2F but parses as well-formed
    /// records to its end is plaintext too (a signature that happens to look like mode
    /// 5); with a key it must decrypt and verify. Clears the field when it is not one;
    /// true when it claimed mode 5 or 7 and the data is read as plaintext.
    fn wired_plaintext(&self, tpl: &mut TplRepr, data: Option<&[u8]>, meter: &Address) -> bool {
        let data = data.unwrap_or_default();
        let Some(header) = tpl.header.as_mut() else {
            return false;
        };
        let claims = matches!(
            header.config.security_mode(),
            SecurityMode::Mode5 | SecurityMode::Mode7
        );
        // Data of exactly the announced blocks is what an encrypted frame looks like.
        let exact = usize::from(header.config.encrypted_blocks()) * 16 == data.len();
        let plaintext = !wired_security_applies(header.config, data.len())
            || (!exact
                && !data.starts_with(&[apl::IDLE_FILLER; 2])
                && self.keys.lookup(meter.manufacturer, &meter.id).is_none()
                && records_to_the_end(data));
        if plaintext {
            header.config = ConfigField(0);
            header.config_ext = None;
        }
        plaintext && claims
    }

    /// CI 0x70 / 0x71: one code byte, then optional records.
    fn wired_report(
        &mut self,
        frame: &RadioFrame,
        telegram: &Telegram,
        buf: &[u8],
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        let (Some(&ci), Some(&code)) = (buf.first(), buf.get(1)) else {
            return Err(DecodeError::new(
                Layer::Tpl,
                FailureKind::Truncated,
                "report without its code byte",
            )
            .at(buf.len()));
        };
        let meter = primary_address_meter(telegram);
        self.base_reading(frame, &meter, reading);
        set_security(&mut reading.security, 0, SecurityOutcome::NONE);
        let (kind, name) = if ci == 0x70 {
            ("application_error", application_error_name(code))
        } else {
            ("alarm", alarm_name(code))
        };
        reading.report = Some(Report {
            kind: kind.to_owned(),
            code,
            name: name.to_owned(),
        });
        let data = buf.get(2..).unwrap_or_default();
        fill_records(
            reading,
            &apl::parse_lenient(data),
            2,
            &mut self.spare_records,
        );
        Ok(())
    }

    /// CI 0x73 (LSB first) / 0x77 (MSB first): the fixed data structure, read as the
    /// two variable-data records it stands for.
    fn wired_fixed(
        &mut self,
        frame: &RadioFrame,
        buf: &[u8],
        msb_first: bool,
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        let Some(fixed) = buf.get(1..1 + FIXED_LEN) else {
            return Err(DecodeError::new(
                Layer::Tpl,
                FailureKind::Truncated,
                format!(
                    "fixed data structure needs {FIXED_LEN} bytes after the CI, {} present",
                    buf.len().saturating_sub(1)
                ),
            )
            .at(buf.len()));
        };
        let mut f = [0u8; FIXED_LEN];
        f.copy_from_slice(fixed);
        if msb_first {
            for (start, len) in [(0, 4), (6, 2), (8, 4), (12, 4)] {
                if let Some(field) = f.get_mut(start..start + len) {
                    field.reverse();
                }
            }
        }
        let [i0, i1, i2, i3, access, status, unit1, unit2, ..] = f;
        let medium = ((unit1 & 0xC0) >> 6) | ((unit2 & 0xC0) >> 4);
        let meter = Address {
            id: [i0, i1, i2, i3],
            manufacturer: 0,
            version: 0,
            device_type: fixed_medium_device_type(medium),
        };
        self.base_reading(frame, &meter, reading);
        reading.access_number = Some(access);
        // Bits 0 and 1 say how the counters are coded; the others are as in the TPL.
        reading.status = status_json(status & 0xFC);
        set_security(&mut reading.security, 0, SecurityOutcome::NONE);
        let binary = status & 0x01 != 0;
        let stored = status & 0x02 != 0;
        let [.., c1a, c1b, c1c, c1d, c2a, c2b, c2c, c2d] = f;
        let counters = [
            (unit1 & 0x3F, [c1a, c1b, c1c, c1d]),
            (unit2 & 0x3F, [c2a, c2b, c2c, c2d]),
        ];
        let mut records = Vec::with_capacity(32);
        for (n, (unit, data)) in counters.iter().enumerate() {
            let historic = n == 1 && *unit == 0x3E;
            let unit = if historic { unit1 & 0x3F } else { *unit };
            fixed_counter_record(unit, *data, binary, stored || historic, &mut records);
        }
        fill_records(
            reading,
            &apl::parse_lenient(&records),
            9,
            &mut self.spare_records,
        );
        Ok(())
    }
}

/// A wired meter without a long header is named by its primary address (as BCD digits,
/// e.g. address 5 is meter "00000005").
fn primary_address_meter(telegram: &Telegram) -> Address {
    let a = telegram.wired_address.unwrap_or_default();
    let bcd = |n: u8| ((n / 10 % 10) << 4) | (n % 10);
    Address {
        id: [bcd(a), a / 100, 0, 0],
        manufacturer: 0,
        version: 0,
        device_type: 0,
    }
}

/// Whether a wired long header's last two bytes are a configuration field: security
/// mode 5 or 7 with a number of encrypted blocks that the frame holds. Otherwise they
/// are the signature of EN 13757-3 (often 0000, FFFF or vendor values such as 27B6).
pub(super) fn wired_security_applies(config: ConfigField, remaining: usize) -> bool {
    let blocks = usize::from(config.encrypted_blocks());
    matches!(
        config.security_mode(),
        SecurityMode::Mode5 | SecurityMode::Mode7
    ) && blocks > 0
        && blocks * 16 <= remaining
}

/// Whether `data` reads as plaintext records: at least two, each of a known quantity
/// with a valid value and a header of at most four bytes (DIF, VIF, two extensions),
/// nothing left unparsed. AES ciphertext is random to this test; about 1 % of 16-byte and 0.2 % of
/// 32-byte random buffers pass (measured in the unit test), which is why only data
/// longer than its announced encrypted blocks is tested at all.
fn records_to_the_end(data: &[u8]) -> bool {
    apl::parse(data).is_ok_and(|parsed| {
        parsed.records.len() >= 2
            && parsed.records.iter().all(|r| {
                r.quantity != apl::UNKNOWN
                    && r.header.len() <= 4
                    && !matches!(r.value, apl::Value::Invalid | apl::Value::NoData)
            })
    })
}

/// Turns a CI 0x76 frame (long header and record data MSB first) into the LSB-first
/// layout of CI 0x72 in place: ID, manufacturer and signature, then each record's data.
fn msb_first_to_lsb_first(buf: &mut [u8]) {
    for (start, len) in [(1, 4), (5, 2), (11, 2)] {
        if let Some(field) = buf.get_mut(start..start + len) {
            field.reverse();
        }
    }
    let start = 1 + LONG_HEADER_LEN;
    let spans: Vec<(usize, usize)> = apl::parse_lenient(buf.get(start..).unwrap_or_default())
        .records
        .iter()
        .filter(|r| r.lvar.is_none())
        .map(|r| (start + r.offset + r.header.len(), r.data.len()))
        .collect();
    for (at, len) in spans {
        if let Some(data) = buf.get_mut(at..at + len) {
            data.reverse();
        }
    }
}

/// Device type (EN 13757-3 table) of a fixed-structure medium code; the "mode 2"
/// variants name the same media.
fn fixed_medium_device_type(medium: u8) -> u8 {
    match medium {
        0x0A => 0x03,
        0x0B => 0x04,
        0x0C => 0x06,
        0x0D => 0x07,
        0x0E => 0x08,
        0x09 | 0x0F => 0x00,
        m => m,
    }
}

/// The variable-data record a fixed-structure counter stands for: DIF (64-bit integer,
/// storage 1 when stored at a fixed date), the VIF of its unit, the counter scaled to
/// that VIF. Units without a variable-data equivalent keep the raw value as an unknown
/// record (VIF 0x7B without its extension bit is reserved).
fn fixed_counter_record(unit: u8, data: [u8; 4], binary: bool, stored: bool, out: &mut Vec<u8>) {
    let raw = if binary {
        Some(i128::from(u32::from_le_bytes(data)))
    } else {
        bcd_value(data)
    };
    let (vif, extra) = fixed_unit_vif(unit).unwrap_or((Vif::one(0x7B), 0));
    let vif = vif.bytes();
    let storage = if stored { 0x40 } else { 0 };
    let Some(value) = raw.and_then(|v| v.checked_mul(10i128.pow(extra))) else {
        // Invalid BCD: kept as the 8-digit BCD record it is, which reads as invalid.
        out.push(0x0C | storage);
        out.extend_from_slice(vif);
        out.extend_from_slice(&data);
        return;
    };
    out.push(0x07 | storage);
    out.extend_from_slice(vif);
    out.extend_from_slice(&(value as i64).to_le_bytes());
}

fn bcd_value(b: [u8; 4]) -> Option<i128> {
    let mut v = 0i128;
    for byte in b.iter().rev() {
        let (hi, lo) = (byte >> 4, byte & 0x0F);
        if hi > 9 || lo > 9 {
            return None;
        }
        v = v * 100 + i128::from(hi) * 10 + i128::from(lo);
    }
    Some(v)
}

/// The VIF bytes of a fixed-structure unit code (EN 1434-3 / M-Bus fixed data table),
/// and the power of ten the counter is multiplied by when the unit is larger than the
/// VIF can say. Codes in groups of three: ×1, ×10, ×100.
fn fixed_unit_vif(unit: u8) -> Option<(Vif, u32)> {
    // (first code, VIF base, VIF nnn of the first code, highest nnn of the VIF)
    const GROUPS: [(u8, u8, u8, u8); 6] = [
        (0x02, 0x00, 3, 7), // Wh … 100 MWh; VIF 10^(nnn-3) Wh
        (0x0B, 0x08, 3, 7), // kJ … 100 GJ; VIF 10^nnn J
        (0x14, 0x28, 3, 7), // W … 100 MW; VIF 10^(nnn-3) W
        (0x1D, 0x30, 3, 7), // kJ/h … 100 GJ/h; VIF 10^nnn J/h
        (0x26, 0x10, 0, 7), // ml … 100 m³; VIF 10^(nnn-6) m³
        (0x2F, 0x38, 0, 7), // ml/h … 100 m³/h; VIF 10^(nnn-6) m³/h
    ];
    match unit {
        0x38 => return Some((Vif::one(0x58), 0)), // 10^-3 °C: VIF 10^(nn-3) °C
        0x39 => return Some((Vif::one(0x6E), 0)), // units for HCA
        0x3F => return Some((Vif([0xFD, 0x3A], 2), 0)), // without units: dimensionless
        _ => {}
    }
    let &(first, base, nnn, max) = GROUPS
        .iter()
        .find(|(first, ..)| (*first..first + 9).contains(&unit))?;
    let n = nnn + (unit - first);
    let code = n.min(max);
    Some((Vif::one(base | code), u32::from(n - code)))
}

/// One or two VIF bytes.
#[derive(Debug, Clone, Copy)]
struct Vif([u8; 2], usize);

impl Vif {
    const fn one(b: u8) -> Vif {
        Vif([b, 0], 1)
    }

    fn bytes(&self) -> &[u8] {
        self.0.get(..self.1).unwrap_or_default()
    }
}

/// Names of the application error codes (EN 13757-3, EN 1434-3 heritage).
fn application_error_name(code: u8) -> &'static str {
    match code {
        0x00 => "unspecified error",
        0x01 => "unimplemented CI-field",
        0x02 => "buffer too long, truncated",
        0x03 => "too many records",
        0x04 => "premature end of record",
        0x05 => "more than 10 DIFEs",
        0x06 => "more than 10 VIFEs",
        0x08 => "application too busy for handling readout request",
        0x09 => "too many readouts",
        _ => "reserved application error code",
    }
}

/// An alarm report's code: 0 is no alarm; other values are the meter's alarm status.
fn alarm_name(code: u8) -> &'static str {
    match code {
        0x00 => "no alarm",
        _ => "alarm (meter-specific alarm status)",
    }
}

#[cfg(test)]
mod tests {
    use crate::crypto;
    use crate::decode::{Decoder, FailureKind};
    use crate::frame::RadioFrame;
    use crate::keys::KeyStore;
    use crate::reading::{Reading, CLAIMED_MODE_PLAINTEXT};
    use crate::wire::apl::{DataField, RecordRepr, Vib};
    use crate::wire::mbus::{MbusLongFrame, WiredFrame};
    use crate::wire::tpl::TplRepr;

    fn wired(control: u8, address: u8, ci: u8, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MbusLongFrame {
            control,
            address,
            ci,
            data,
        }
        .emit(&mut out)
        .unwrap();
        out
    }

    fn decode(bytes: Vec<u8>) -> Result<Reading, crate::decode::DecodeError> {
        Decoder::new(KeyStore::new()).decode(&RadioFrame::new(bytes))
    }

    /// Volume 6.408 m³ and energy 1234 kWh, as records.
    fn records() -> Vec<u8> {
        let mut out = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), 6408)
            .unwrap()
            .to_bytes()
            .unwrap();
        out.extend(
            RecordRepr::integer(DataField::Integer(4), Vib::primary(0x06), 1234)
                .unwrap()
                .to_bytes()
                .unwrap(),
        );
        out
    }

    fn values(r: &Reading) -> Vec<(String, String)> {
        r.records
            .iter()
            .map(|x| {
                let v = serde_json::to_value(&x.value).unwrap();
                (
                    x.quantity.to_string(),
                    format!("{v} {:?} s{}", x.unit, x.storage),
                )
            })
            .collect()
    }

    /// ID 12345678, KAM, version 1, water, access 5, status 0, then `signature`.
    fn long_header(signature: [u8; 2]) -> Vec<u8> {
        let mut h = vec![0x78, 0x56, 0x34, 0x12, 0x2D, 0x2C, 0x01, 0x07, 0x05, 0x00];
        h.extend_from_slice(&signature);
        h
    }

    #[test]
    fn signature_is_not_a_security_mode() {
        // FFFF would be mode 31, B627 (27 B6 on air) mode 22, 0510 mode 5 with one block
        // where the frame holds fewer than 16 bytes after the header.
        for signature in [[0xFF, 0xFF], [0x27, 0xB6], [0x00, 0x00], [0x10, 0x05]] {
            let mut data = long_header(signature);
            data.extend(records());
            let r = decode(wired(0x08, 1, 0x72, &data)).unwrap();
            assert_eq!(r.security.mode, 0, "{signature:02X?}");
            assert_eq!(r.meter.id, "12345678");
            assert_eq!(r.records.len(), 2);
            // Only 0510 claims mode 5 (FFFF: 31, B627: 22, 0000: none), and says so.
            let noted = r
                .diagnostics
                .is_some_and(|d| d.notes == [CLAIMED_MODE_PLAINTEXT]);
            assert_eq!(noted, signature == [0x10, 0x05], "{signature:02X?}");
        }
        // Mode 5 announcing two blocks that are there: security applies (no key here).
        let mut data = long_header([0x20, 0x05]);
        data.extend([0x11; 32]);
        let err = decode(wired(0x08, 1, 0x72, &data)).unwrap_err();
        assert_eq!(err.kind, FailureKind::NoKey);
    }

    const KEY: [u8; 16] = *b"wired mode5 key!";

    /// Long header claiming security mode 5 with one encrypted block (CF 0510).
    fn mode5_frame(payload: &[u8]) -> Vec<u8> {
        let mut data = long_header([0x10, 0x05]);
        data.extend_from_slice(payload);
        wired(0x08, 1, 0x72, &data)
    }

    fn keyed() -> Decoder {
        let mut keys = KeyStore::new();
        keys.insert("12345678", &KEY).unwrap();
        Decoder::new(keys)
    }

    /// The records of [`records`] and a flow temperature of `width` bytes.
    fn with_flow_temperature(width: u8) -> Vec<u8> {
        let mut out = records();
        out.extend(
            RecordRepr::integer(DataField::Integer(width), Vib::primary(0x5A), 457)
                .unwrap()
                .to_bytes()
                .unwrap(),
        );
        out
    }

    /// 18 bytes: more than one announced block.
    fn three_records() -> Vec<u8> {
        with_flow_temperature(4)
    }

    #[test]
    fn plaintext_behind_a_claimed_mode_5_is_read_and_named() {
        let plain = three_records();
        assert!(plain.len() == 18 && !plain.starts_with(&[0x2F, 0x2F]));
        let r = decode(mode5_frame(&plain)).unwrap();
        assert_eq!(values(&r).len(), 3);
        assert_eq!(r.records[2].quantity, "flow_temperature");
        assert!(!r.security.decrypted);
        assert_eq!(r.security.verified_by, None);
        let diagnostics = r.diagnostics.clone().unwrap();
        assert_eq!(diagnostics.notes, [CLAIMED_MODE_PLAINTEXT]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["diagnostics"]["notes"],
            serde_json::json!(["claimed_mode_plaintext"])
        );
        // With a key for the meter, decryption is tried and must verify: it does not.
        let err = keyed()
            .decode(&RadioFrame::new(mode5_frame(&plain)))
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::WrongKey, "{err}");
        // Data that is not records to its end stays a mode-5 frame without its key, and
        // so does data of exactly the announced block.
        let mut odd = plain.clone();
        odd.push(0x04); // a record header without its data
        assert_eq!(
            decode(mode5_frame(&odd)).unwrap_err().kind,
            FailureKind::NoKey
        );
        let exact = with_flow_temperature(2);
        assert!(exact.len() == 16 && super::records_to_the_end(&exact));
        assert_eq!(
            decode(mode5_frame(&exact)).unwrap_err().kind,
            FailureKind::NoKey
        );
    }

    /// How often random bytes (as ciphertext is to this test) read as records; the
    /// figures bound what the no-key plaintext rule can mistake.
    #[test]
    fn ciphertext_rarely_reads_as_records() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for (len, at_most) in [(16usize, 1_300), (32, 300), (48, 250)] {
            let mut passed = 0;
            for _ in 0..100_000 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                passed += usize::from(super::records_to_the_end(&data));
            }
            println!("{len} bytes: {passed} of 100000 random buffers read as records");
            assert!(passed <= at_most, "{len}: {passed}");
        }
        assert!(super::records_to_the_end(&three_records()));
    }

    #[test]
    fn encrypted_mode_5_wired_frames_decrypt_and_verify() {
        let mut block = vec![0x2F, 0x2F];
        block.extend(records());
        block.resize(16, 0x2F);
        let (tpl, _) = TplRepr::parse_with_ci(0x72, &long_header([0x10, 0x05])).unwrap();
        let address = tpl.long_address.unwrap().address_bytes();
        let iv = crypto::mode5_iv(&address, 0x05);
        crypto::encrypt_cbc_in_place(&crypto::expand_key(&KEY), &iv, &mut block).unwrap();
        let frame = mode5_frame(&block);
        // Exactly the announced block and no key: refused, never read as records.
        assert_eq!(decode(frame.clone()).unwrap_err().kind, FailureKind::NoKey);
        let r = keyed().decode(&RadioFrame::new(frame)).unwrap();
        assert!(r.security.decrypted);
        assert_eq!(r.security.mode, 5);
        assert_eq!(r.security.verified_by.as_deref(), Some("2f2f"));
        assert_eq!(values(&r).len(), 2);
        assert_eq!(r.diagnostics, None);
    }

    #[test]
    fn ci_78_without_header_names_the_primary_address() {
        let r = decode(wired(0x08, 42, 0x78, &records())).unwrap();
        assert_eq!(r.meter.id, "00000042");
        assert_eq!(values(&r).len(), 2);
        assert_eq!(r.records[0].quantity, "volume");
    }

    #[test]
    fn ci_76_msb_first_reads_as_72() {
        let mut lsb = long_header([0x00, 0x00]);
        lsb.extend(records());
        let expected = decode(wired(0x08, 1, 0x72, &lsb)).unwrap();
        // The same frame MSB first: ID, manufacturer, signature and record data reversed.
        let mut msb = lsb.clone();
        msb[0..4].reverse();
        msb[4..6].reverse();
        msb[10..12].reverse();
        msb[14..18].reverse(); // first record: DIF VIF + 4 data bytes
        msb[20..24].reverse();
        let r = decode(wired(0x08, 1, 0x76, &msb)).unwrap();
        assert_eq!(r.meter, expected.meter);
        assert_eq!(values(&r), values(&expected));
    }

    #[test]
    fn ci_73_and_77_fixed_data_structure() {
        // Water (medium 7: bits 11 in unit 1, 01 in unit 2), counter 1 in kWh, counter 2
        // in 10 l; BCD, actual values.
        let mut fixed = vec![0x78, 0x56, 0x34, 0x12, 0x09, 0x04, 0xC5, 0x6A];
        fixed.extend([0x56, 0x34, 0x12, 0x00, 0x34, 0x12, 0x00, 0x00]);
        let r = decode(wired(0x08, 1, 0x73, &fixed)).unwrap();
        assert_eq!(r.meter.id, "12345678");
        assert_eq!(r.meter.device_type, "water");
        assert_eq!(r.access_number, Some(9));
        assert!(r.status.flags.iter().any(|f| f == "power_low"));
        let v = values(&r);
        assert_eq!(
            v[0],
            ("energy".into(), "123456 Some(\"kWh\") s0".into()),
            "{v:?}"
        );
        assert_eq!(
            v[1],
            ("volume".into(), "12.34 Some(\"m3\") s0".into()),
            "{v:?}"
        );

        // MSB first, binary counters stored at a fixed date (status bits 0 and 1).
        let mut msb = vec![0x12, 0x34, 0x56, 0x78, 0x09, 0x03, 0x6A, 0xC5];
        msb.extend([0x00, 0x01, 0xE2, 0x40, 0x00, 0x00, 0x04, 0xD2]);
        let r = decode(wired(0x08, 1, 0x77, &msb)).unwrap();
        let v = values(&r);
        assert_eq!(r.meter.id, "12345678");
        assert_eq!(
            v[0],
            ("energy".into(), "123456 Some(\"kWh\") s1".into()),
            "{v:?}"
        );
        assert_eq!(
            v[1],
            ("volume".into(), "12.34 Some(\"m3\") s1".into()),
            "{v:?}"
        );

        // Unit 2 "same but historic", 100 MWh (beyond the VIF: scaled), no units.
        let mut odd = vec![0x78, 0x56, 0x34, 0x12, 0x09, 0x00, 0x0A, 0x3E];
        odd.extend([0x05, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00]);
        let v = values(&decode(wired(0x08, 1, 0x73, &odd)).unwrap());
        assert_eq!(
            v[0],
            ("energy".into(), "500000 Some(\"kWh\") s0".into()),
            "{v:?}"
        );
        assert_eq!(
            v[1],
            ("energy".into(), "700000 Some(\"kWh\") s1".into()),
            "{v:?}"
        );
        assert_eq!(
            decode(wired(0x08, 1, 0x73, &fixed[..10])).unwrap_err().kind,
            FailureKind::Truncated
        );
    }

    #[test]
    fn ci_70_and_71_reports_are_readings() {
        let r = decode(wired(0x08, 7, 0x70, &[0x02])).unwrap();
        let report = r.report.unwrap();
        assert_eq!(
            (report.kind.as_str(), report.code),
            ("application_error", 2)
        );
        assert_eq!(report.name, "buffer too long, truncated");
        assert_eq!(r.meter.id, "00000007");

        let mut data = vec![0x01];
        data.extend(records());
        let r = decode(wired(0x08, 7, 0x71, &data)).unwrap();
        let report = r.report.clone().unwrap();
        assert_eq!((report.kind.as_str(), report.code), ("alarm", 1));
        assert_eq!(r.records.len(), 2);
        let mut json = Vec::new();
        r.write_json(&mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json["report"]["kind"], "alarm");
    }

    #[test]
    fn control_frames_are_named_not_decoded() {
        let mut short = Vec::new();
        WiredFrame::Short(crate::wire::mbus::MbusShortFrame::snd_nke(1))
            .emit(&mut short)
            .unwrap();
        for (bytes, name) in [
            (short, "control frame: SND_NKE"),
            (vec![0xE5], "control frame: ACK (E5)"),
            (wired(0x53, 1, 0x51, &[]), "control frame: SND_UD"),
        ] {
            let err = decode(bytes).unwrap_err();
            assert_eq!(err.kind, FailureKind::ControlFrame);
            assert!(err.message.starts_with(name), "{err}");
        }
    }

    #[test]
    fn damaged_wired_frames_say_what() {
        let mut data = long_header([0, 0]);
        data.extend(records());
        let good = wired(0x08, 1, 0x72, &data);
        let mut no_stop = good.clone();
        no_stop.pop();
        let mut bad_sum = good.clone();
        bad_sum[20] ^= 0x20;
        let mut dropped = good.clone();
        dropped.remove(12);
        let mut stop_replaced = good.clone();
        *stop_replaced.last_mut().unwrap() = 0x17;
        for (bytes, says) in [
            (no_stop, "damaged wired frame: no stop byte"),
            (bad_sum, "damaged wired frame: checksum"),
            (dropped, "damaged wired frame: no stop byte"),
            (stop_replaced, "damaged wired frame: no stop byte"),
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(err.message.starts_with(says), "{err}");
            assert_eq!(err.meter.as_deref(), Some("12345678"));
        }
    }
}
