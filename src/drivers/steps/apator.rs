//! Apator steps: the register walk of the AT-WMBUS-16-2 water meters (apator162), the
//! vendor AES layer of the NA-1 water meters (apatorna1), the framing and packed dates of
//! the E-ITN heat cost allocators (apatoreitn), and the one-third counters of the
//! apator08 / apator172 water meters.
//!
//! The proprietary frames (CI 0xA0..0xB7) reach a step as the whole data layer, CI byte
//! first; the steps check that byte so that a change of that convention fails loudly.

use super::{type_g, Step, StepError, StepInput};
use crate::crypto;
use crate::timefmt::civil_from_days;

/// Register codes of the apator162 manufacturer data and the length of their contents.
/// `None`: a code whose length is unknown, so the walk cannot continue past it.
fn apator162_register_len(code: u8) -> Option<usize> {
    Some(match code {
        0x00 | 0x10 | 0x42 | 0xA0 | 0xA1 | 0xA4 | 0xF0 => 4,
        0x01 | 0x44 | 0xA6 => 3,
        0x11 | 0x41 | 0x43 | 0xA7 | 0xA8 | 0xAA..=0xAD | 0xB4 => 2,
        0x40 | 0x8B | 0x8C => 6,
        // Histories: one byte, then 2, 3, 4, 6 or 12 monthly values of 4 bytes.
        0x71 => 1 + 2 * 4,
        0x72 => 1 + 3 * 4,
        0x73 => 1 + 4 * 4,
        0x75 => 1 + 6 * 4,
        0x7B => 1 + 12 * 4,
        // Event records.
        0x80..=0x84 | 0x86 | 0x87 => 10,
        0x85 | 0x88 | 0x8F => 11,
        0x8A => 9,
        0x8E => 7,
        0xA2 | 0xA5 | 0xA9 | 0xAF => 1,
        0xA3 => 7,
        0xB0 => 5,
        0xB1 | 0xB3 => 8,
        0xB2 | 0xB5 => 16,
        0xB6..=0xBF | 0xC0..=0xC7 | 0xD0 | 0xD3 => 3,
        _ => return None,
    })
}

/// The register holding the total volume, 4 bytes, litres, little endian.
const APATOR162_TOTAL: u8 = 0x10;
/// Fills the rest of the last AES block; nothing of interest follows.
const APATOR162_END: u8 = 0xFF;
/// Bytes after DIF 0x0F before the first register: date (4) and fault flags (3).
const APATOR162_PREFIX: usize = 7;

/// apator162: walks the registers after the 7-byte prefix and outputs the 4 bytes of the
/// total volume register (0x10); empty output when the telegram has none.
fn apator162_registers(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "apator162_registers";
    let mut pos = APATOR162_PREFIX;
    while let Some(&code) = input.data.get(pos) {
        if code == APATOR162_END {
            break;
        }
        let len = apator162_register_len(code).ok_or_else(|| StepError::Invalid {
            step: STEP,
            offset: pos,
            reason: format!("register 0x{code:02X} of unknown length"),
        })?;
        let content = input.bytes(STEP, pos + 1, len)?;
        if code == APATOR162_TOTAL {
            return Ok(content.to_vec());
        }
        pos += 1 + len;
    }
    Ok(Vec::new())
}

/// The first input byte must be the frame's proprietary CI (see the module doc).
fn check_ci(step: &'static str, input: &StepInput<'_>) -> Result<(), StepError> {
    match input.data.first() {
        Some(&ci) if ci == input.ci => Ok(()),
        Some(&other) => Err(StepError::Invalid {
            step,
            offset: 0,
            reason: format!("expected the CI 0x{:02X}, found 0x{other:02X}", input.ci),
        }),
        None => Err(StepError::TooShort {
            step,
            len: 0,
            need: 1,
        }),
    }
}

/// `numerator / 3`, rounded half up.
fn div3_rounded(numerator: u64) -> u64 {
    (numerator + 1) / 3
}

/// The 4-byte counter right after the CI of the apator08 / apator172 frames.
fn apator_counter(step: &'static str, input: &StepInput<'_>) -> Result<u64, StepError> {
    check_ci(step, input)?;
    Ok(u64::from(u32::from_le_bytes(input.array(step, 1)?)))
}

/// apator08: the counter counts thirds of a litre. Output: the volume in 10⁻⁶ m3 (u64 LE),
/// rounded, which is the resolution the reference prints.
fn apator08_volume(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    let thirds_of_litres = apator_counter("apator08_volume", input)?;
    Ok(div3_rounded(thirds_of_litres * 1000).to_le_bytes().to_vec())
}

/// apator172: the counter over 3 gives the volume, which the reference rounds to 0.1.
/// Output: the volume in tenths (u64 LE).
fn apator172_volume(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    let counter = apator_counter("apator172_volume", input)?;
    Ok(div3_rounded(counter * 10).to_le_bytes().to_vec())
}

/// An E-ITN packed date (day bits 0-4, month bits 5-8, years since 2000 bits 9-13) as an
/// EN 13757-3 type G date; 0 (no date set) becomes the type G "invalid" FFFF.
fn eitn_date_to_type_g(raw: u16) -> [u8; 2] {
    packed_date_to_type_g(raw, 0x1F)
}

/// A packed date (day bits 0-4, month bits 5-8, years since 2000 from bit 9, `year_mask`
/// wide) as type G; 0 becomes FFFF.
fn packed_date_to_type_g(raw: u16, year_mask: u16) -> [u8; 2] {
    if raw == 0 {
        return [0xFF, 0xFF];
    }
    let day = (raw & 0x1F) as u8;
    let month = ((raw >> 5) & 0x0F) as u8;
    let years = ((raw >> 9) & year_mask) as u8;
    type_g(years, month, day)
}

/// E-ITN 40 payload (after the CI 0xA0): 27 little-endian words; word 1 the season start
/// date, word 24 the current date, both packed with the year in bits 9-15.
const EITN40_SEASON_START: usize = 1 + 2;
const EITN40_CURRENT_DATE: usize = 1 + 48;

/// apatoreitn40: the two packed dates of the E-ITN 40 frame as type G: current date
/// (0..2), season start date (2..4; the meter sends no year, so 2000).
fn apatoreitn40_dates(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "apatoreitn40_dates";
    check_ci(STEP, input)?;
    let word =
        |at: usize| -> Result<u16, StepError> { Ok(u16::from_le_bytes(input.array(STEP, at)?)) };
    let current = packed_date_to_type_g(word(EITN40_CURRENT_DATE)?, 0x7F);
    let season = packed_date_to_type_g(word(EITN40_SEASON_START)?, 0x7F);
    Ok([current, season].concat())
}

/// Length of the E-ITN data block (season start day byte, 2 unused, 6 words).
const EITN_BLOCK_LEN: usize = 15;
/// The E-ITN season start date's high byte, fixed by the device (only the low byte is sent).
const EITN_SEASON_HIGH: u16 = 0xA0;
/// The marker before the data block inside CI 0xB6 frames.
const EITN_BLOCK_MARKER: u8 = 0xA0;

/// apatoreitn: finds the data block (right after CI 0xA0; after a length-prefixed
/// header and an 0xA0 marker in CI 0xB6 frames) and outputs, little endian:
/// season start date (type G), previous HCA, seal break date (type G), current HCA,
/// current date (type G), previous and current season average room temperature (1/256 °C)
/// — 2 bytes each.
fn apatoreitn_frame(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "apatoreitn_frame";
    check_ci(STEP, input)?;
    let start = if input.ci == 0xB6 {
        let header_len = usize::from(input.byte(STEP, 1)?);
        let marker_at = 2 + header_len;
        let marker = input.byte(STEP, marker_at)?;
        if marker != EITN_BLOCK_MARKER {
            return Err(StepError::Invalid {
                step: STEP,
                offset: marker_at,
                reason: format!("expected the block marker 0xA0, found 0x{marker:02X}"),
            });
        }
        marker_at + 1
    } else {
        1
    };
    let mut block = [0u8; EITN_BLOCK_LEN];
    block.copy_from_slice(input.bytes(STEP, start, EITN_BLOCK_LEN)?);
    let word = |lo: u8, hi: u8| u16::from_le_bytes([lo, hi]);
    let season_start = (EITN_SEASON_HIGH << 8) | u16::from(block[0]);
    let mut out = Vec::with_capacity(14);
    out.extend_from_slice(&eitn_date_to_type_g(season_start));
    out.extend_from_slice(&[block[3], block[4]]); // previous HCA
    out.extend_from_slice(&eitn_date_to_type_g(word(block[5], block[6]))); // seal break
    out.extend_from_slice(&[block[7], block[8]]); // current HCA
    out.extend_from_slice(&eitn_date_to_type_g(word(block[9], block[10])));
    // Average room temperatures: previous season, current season.
    out.extend_from_slice(&[block[11], block[12], block[13], block[14]]);
    Ok(out)
}

/// Days from 1970-01-01 to 2000-01-01.
const DAYS_1970_TO_2000: i64 = 10_957;

/// Seconds since 2000-01-01 00:00 (meter time) as an EN 13757-3 type F date-time
/// (minute resolution, years 2000..2099).
fn type_f_from_seconds_since_2000(
    step: &'static str,
    at: usize,
    secs: i64,
) -> Result<[u8; 4], StepError> {
    let (year, month, day) = civil_from_days(DAYS_1970_TO_2000 + secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    let years = u8::try_from(year - 2000)
        .ok()
        .filter(|y| *y <= 99)
        .ok_or_else(|| StepError::Invalid {
            step,
            offset: at,
            reason: format!("date in year {year}, outside 2000..2099"),
        })?;
    let hour = (of_day / 3600) as u8;
    let minute = (of_day / 60 % 60) as u8;
    // The date half of type F is packed like type G; civil_from_days gives a month in
    // 1..=12 and a day in 1..=31, so the narrowing keeps them whole.
    let [date_lo, date_hi] = type_g(years, month as u8, day as u8);
    // Hundred-years field 1 with years since 2000: 1900 + 100 + yy.
    Ok([minute, hour | (1 << 5), date_lo, date_hi])
}

/// apatorna1: after CI, access number and the plain frame status byte, 16 bytes are
/// AES-128-CBC encrypted with the meter key and the mode-5 IV (link M, A fields and the
/// access number). Output, little endian: total volume (litres, 8 bytes), historic
/// volume (litres, 8), meter date-time (type F, 4), historic date-time (type F, 4),
/// historic age (hours, 2), frame status, current status, historic status (1 each).
fn apatorna1_decrypt(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "apatorna1_decrypt";
    const ENCRYPTED_AT: usize = 3;
    check_ci(STEP, input)?;
    let key = input.key.ok_or(StepError::NoKey { step: STEP })?;
    let access = input.byte(STEP, 1)?;
    let frame_status = input.byte(STEP, 2)?;
    let mut block: [u8; crypto::BLOCK_LEN] = input.array(STEP, ENCRYPTED_AT)?;
    let l = input.link;
    let address = [l[1], l[2], l[3], l[4], l[5], l[6], l[7], l[8]];
    let iv = crypto::mode5_iv(&address, access);
    crypto::decrypt_cbc_in_place(&key.cipher(), &iv, &mut block).map_err(|e| {
        StepError::Invalid {
            step: STEP,
            offset: ENCRYPTED_AT,
            reason: e.to_string(),
        }
    })?;
    // block[0] is not used; then the packed total (4), seconds since 2000 (4), the
    // history (5) and two status bytes.
    let packed = u32::from_le_bytes([block[1], block[2], block[3], block[4]]);
    // Bits 4-5: power of ten of the unit in litres; the count is bits 8-31 above bits 0-3.
    let unit_litres = 10u64.pow((packed >> 4) & 0x03);
    let total = (u64::from(packed >> 8) * 16 + u64::from(packed & 0x0F)) * unit_litres;
    let seconds = i64::from(u32::from_le_bytes([block[5], block[6], block[7], block[8]]));
    // Age: bits 2-7 of byte 10 above byte 9; the delta's low 2 bits are bits 0-1 of byte 10.
    let age_hours = u16::from(block[10] >> 2) * 256 + u16::from(block[9]);
    let delta = (u64::from(block[13]) << 18)
        | (u64::from(block[12]) << 10)
        | (u64::from(block[11]) << 2)
        | u64::from(block[10] & 0x03);
    let historic = total
        .checked_sub(delta * unit_litres)
        .ok_or_else(|| StepError::Invalid {
            step: STEP,
            offset: ENCRYPTED_AT + 11,
            reason: format!("history delta {delta} exceeds the total {total}"),
        })?;
    let meter_time = type_f_from_seconds_since_2000(STEP, ENCRYPTED_AT + 5, seconds)?;
    let historic_time = type_f_from_seconds_since_2000(
        STEP,
        ENCRYPTED_AT + 9,
        seconds - i64::from(age_hours) * 3600,
    )?;
    let mut out = Vec::with_capacity(29);
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&historic.to_le_bytes());
    out.extend_from_slice(&meter_time);
    out.extend_from_slice(&historic_time);
    out.extend_from_slice(&age_hours.to_le_bytes());
    out.extend_from_slice(&[frame_status, block[14], block[15]]);
    Ok(out)
}

pub(super) const APATOR08_VOLUME: Step = Step {
    name: "apator08_volume",
    description:
        "apator08: 4-byte counter after the CI in thirds of a litre -> volume in 1e-6 m3 (u64)",
    run: apator08_volume,
};

pub(super) const APATOR162_REGISTERS: Step = Step {
    name: "apator162_registers",
    description: "apator162: walks the vendor registers after DIF 0F -> the 4 bytes of the total volume register 0x10",
    run: apator162_registers,
};

pub(super) const APATOR172_VOLUME: Step = Step {
    name: "apator172_volume",
    description: "apator172: 4-byte counter after the CI divided by 3 -> volume in tenths (u64)",
    run: apator172_volume,
};

pub(super) const APATOREITN_FRAME: Step = Step {
    name: "apatoreitn_frame",
    description: "apatoreitn: data block of CI A0/B6 frames, packed dates as type G -> 7 words",
    run: apatoreitn_frame,
};

pub(super) const APATOREITN40_DATES: Step = Step {
    name: "apatoreitn40_dates",
    description: "apatoreitn40: current and season start dates (packed words 24, 1) as type G",
    run: apatoreitn40_dates,
};

pub(super) const APATORNA1_DECRYPT: Step = Step {
    name: "apatorna1_decrypt",
    description:
        "apatorna1: AES-CBC (mode-5 IV) vendor block -> volumes, type F date-times, age, statuses",
    run: apatorna1_decrypt,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;
    use crate::keys::Key;
    use crate::wire::apl;

    fn hex(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    const APA_LINK: [u8; 9] = [0x44, 0x01, 0x06, 0x81, 0x35, 0x91, 0x04, 0x14, 0x07];

    fn date_text(value: apl::Value) -> String {
        match value {
            apl::Value::Date(d) => d.to_string(),
            apl::Value::DateTime(dt) => dt.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn apatoreitn40_dates_from_their_words() {
        // Season start 05-01 (no year), current date 2024-01-13 (0x302D).
        let mut data = vec![0u8; 55];
        data[0] = 0xA0;
        data[3..5].copy_from_slice(&[0xA1, 0x00]);
        data[49..51].copy_from_slice(&[0x2D, 0x30]);
        let out = apatoreitn40_dates(&test_input(0xA0, &APA_LINK, &data)).unwrap();
        let date = |b: &[u8]| date_text(apl::type_g([b[0], b[1]]));
        assert_eq!(date(&out[0..2]), "2024-01-13");
        assert_eq!(date(&out[2..4]), "2000-05-01");
        assert!(matches!(
            apatoreitn40_dates(&test_input(0xA0, &APA_LINK, &data[..50])),
            Err(StepError::TooShort { .. })
        ));
    }

    #[test]
    fn apator162_walks_to_the_total_register() {
        // Meter 00148686, bytes after DIF 0F: date, faults, 10 AA550000 (21.930 m3), ...
        let data = hex("005B599600000010AA55000041545A42850BD800437D037301C5500000564B0000");
        let out = apator162_registers(&test_input(0x7A, &APA_LINK, &data)).unwrap();
        assert_eq!(out, [0xAA, 0x55, 0x00, 0x00]);
        // Meter 25202020: 43 (2), 84 (10) and 10 only after them.
        let data = hex("07112294100200436103848B745953486C091000001081920200");
        let out = apator162_registers(&test_input(0x7A, &APA_LINK, &data)).unwrap();
        assert_eq!(u32::from_le_bytes(out.try_into().unwrap()), 168_577);
    }

    #[test]
    fn apator162_without_total_gives_nothing_and_bad_registers_fail() {
        let prefix = "00112233445566";
        let data = hex(&format!("{prefix}4355AAFFFFFF"));
        assert_eq!(
            apator162_registers(&test_input(0x7A, &APA_LINK, &data)).unwrap(),
            Vec::<u8>::new()
        );
        let data = hex(&format!("{prefix}4355667700"));
        assert!(matches!(
            apator162_registers(&test_input(0x7A, &APA_LINK, &data)),
            Err(StepError::Invalid { offset: 10, .. })
        ));
        let data = hex(&format!("{prefix}10AABB"));
        assert_eq!(
            apator162_registers(&test_input(0x7A, &APA_LINK, &data)),
            Err(StepError::TooShort {
                step: "apator162_registers",
                len: 10,
                need: 12
            })
        );
    }

    #[test]
    fn apatorna1_decrypts_the_vendor_block() {
        // Corpus telegram of meter 04913581 (key all zeros): 687.361 m3 on 2024-10-15 12:23,
        // historic 662.325 m3 351 h earlier.
        let data = hex("A07F018D43B54E718E8718D5D2C8F939194847");
        let key = Key::new(&[0; 16]);
        let out = apatorna1_decrypt(&StepInput {
            key: Some(&key),
            ..test_input(0xA0, &APA_LINK, &data)
        })
        .unwrap();
        assert_eq!(out.len(), 29);
        assert_eq!(u64::from_le_bytes(out[0..8].try_into().unwrap()), 687_361);
        assert_eq!(u64::from_le_bytes(out[8..16].try_into().unwrap()), 662_325);
        let meter_time = apl::type_f(out[16..20].try_into().unwrap());
        assert_eq!(date_text(meter_time), "2024-10-15T12:23");
        let historic_time = apl::type_f(out[20..24].try_into().unwrap());
        assert_eq!(date_text(historic_time), "2024-09-30T21:23");
        assert_eq!(u16::from_le_bytes([out[24], out[25]]), 351);
        assert_eq!(&out[26..], &[0x01, 0x00, 0x00]);
    }

    #[test]
    fn apatorna1_needs_the_key_and_its_ci() {
        let data = hex("A07F018D43B54E718E8718D5D2C8F939194847");
        assert_eq!(
            apatorna1_decrypt(&test_input(0xA0, &APA_LINK, &data)),
            Err(StepError::NoKey {
                step: "apatorna1_decrypt"
            })
        );
        let key = Key::new(&[0; 16]);
        assert!(matches!(
            apatorna1_decrypt(&StepInput {
                key: Some(&key),
                ..test_input(0xA1, &APA_LINK, &data)
            }),
            Err(StepError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            apatorna1_decrypt(&StepInput {
                key: Some(&key),
                ..test_input(0xA0, &APA_LINK, &data[..18])
            }),
            Err(StepError::TooShort { need: 19, .. })
        ));
    }

    #[test]
    fn apatoreitn_reads_a0_and_b6_frames() {
        let link = [0x44, 0x14, 0x86, 0x32, 0x37, 0x37, 0x37, 0x04, 0x08];
        // HCA1 (CI A0): season 2016-05-01, previous 89, seal broken 2019-08-28, current 1,
        // 2022-09-18, 19.890625 / 21.703125 degC.
        let a0 = hex("A0A1000059001C270100322DE413B415");
        let out = apatoreitn_frame(&test_input(0xA0, &link, &a0)).unwrap();
        let g = |at: usize| date_text(apl::type_g([out[at], out[at + 1]]));
        assert_eq!(g(0), "2016-05-01");
        assert_eq!(u16::from_le_bytes([out[2], out[3]]), 89);
        assert_eq!(g(4), "2019-08-28");
        assert_eq!(u16::from_le_bytes([out[6], out[7]]), 1);
        assert_eq!(g(8), "2022-09-18");
        assert_eq!(u16::from_le_bytes([out[10], out[11]]), 0x13E4);
        assert_eq!(u16::from_le_bytes([out[12], out[13]]), 0x15B4);
        // HCA2 (CI B6, 10 header bytes, then A0): seal intact (date 0 -> invalid).
        let b6 = hex("B60AFFFFF5450186F41B9D58A0A100007809000000001F2D6416C819");
        let out = apatoreitn_frame(&test_input(0xB6, &link, &b6)).unwrap();
        assert_eq!(u16::from_le_bytes([out[2], out[3]]), 2424);
        assert_eq!(&out[4..6], &[0xFF, 0xFF]);
        assert_eq!(date_text(apl::type_g([out[8], out[9]])), "2022-08-31");
        let mut bad = b6.clone();
        bad[12] = 0xA1;
        assert!(matches!(
            apatoreitn_frame(&test_input(0xB6, &link, &bad)),
            Err(StepError::Invalid { offset: 12, .. })
        ));
        assert!(matches!(
            apatoreitn_frame(&test_input(0xA0, &link, &a0[..15])),
            Err(StepError::TooShort { need: 16, .. })
        ));
    }

    #[test]
    fn thirds_counters_round_half_up() {
        let link = [0x44, 0x14, 0x86, 0x06, 0x9C, 0x14, 0x00, 0x0F, 0x0F];
        // apator08 00149c06: 1372738 thirds of a litre = 457.579333 m3.
        let data = hex("A042F214000040030000000005FF0472BF1400");
        let out = apator08_volume(&test_input(0xA0, &link, &data)).unwrap();
        assert_eq!(u64::from_le_bytes(out.try_into().unwrap()), 457_579_333);
        // apator172: 0x5421 / 3 = 7179.0; 0x541D / 3 = 7177.67 -> 7177.7.
        let out = apator172_volume(&test_input(0xA0, &link, &hex("A021540000"))).unwrap();
        assert_eq!(u64::from_le_bytes(out.try_into().unwrap()), 71_790);
        let out = apator172_volume(&test_input(0xA0, &link, &hex("A01D540000"))).unwrap();
        assert_eq!(u64::from_le_bytes(out.try_into().unwrap()), 71_777);
        assert!(apator172_volume(&test_input(0xA0, &link, &hex("A0215400"))).is_err());
        assert_eq!(div3_rounded(4), 1);
        assert_eq!(div3_rounded(5), 2);
    }

    #[test]
    fn calendar_and_date_conversions() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(DAYS_1970_TO_2000), (2000, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        let f = type_f_from_seconds_since_2000("t", 0, 86_400 * 366 + 3_600 * 5 + 60 * 7).unwrap();
        assert_eq!(date_text(apl::type_f(f)), "2001-01-01T05:07");
        assert!(type_f_from_seconds_since_2000("t", 3, -1).is_err());
        assert_eq!(eitn_date_to_type_g(0), [0xFF, 0xFF]);
        assert_eq!(
            date_text(apl::type_g(eitn_date_to_type_g(0x2D32))),
            "2022-09-18"
        );
    }
}
