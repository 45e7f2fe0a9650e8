//! B Meters (BMT) RFM-TX1 radio module: its frames claim security mode 16 (CFG 0x10..)
//! over a payload that is neither encrypted nor records. Four bytes hold the meter total
//! as BCD litres, each XORed with the access number and a per-byte table value picked by
//! the access number's low nibble; six plain BCD bytes hold the meter's date and time.
//!
//! * [`is_rfmtx1`] / [`descramble_rfmtx1`]: the decoder undoes the XOR in place, so the
//!   definition reads the total as plain BCD.
//! * [`rfmtx1_datetime`] (step `bmeters_rfmtx1_datetime`): the BCD date and time as an
//!   EN 13757-3 type F date-time.

use super::{StepError, StepInput};

/// Offset of the scrambled total in the payload after the TPL header.
pub const RFMTX1_TOTAL_AT: usize = 2;

/// Offset of the BCD date-time (seconds, minutes, hours, day, month, year) in that payload.
const RFMTX1_DATETIME_AT: usize = 13;

/// Per-byte XOR values of the total, by the access number's low nibble (row).
const RFMTX1_TABLE: [[u8; 4]; 16] = [
    [122, 16, 26, 10],
    [112, 19, 34, 19],
    [185, 11, 142, 153],
    [121, 7, 74, 22],
    [7, 154, 203, 105],
    [50, 161, 57, 14],
    [156, 126, 96, 153],
    [180, 196, 128, 163],
    [10, 206, 25, 3],
    [240, 5, 165, 134],
    [22, 152, 17, 94],
    [12, 201, 125, 162],
    [74, 72, 228, 31],
    [119, 46, 138, 232],
    [189, 120, 87, 140],
    [57, 111, 40, 5],
];

/// True for an RFM-TX1 frame: BMT, version 0x05, water meter 0x07, security mode 16.
pub fn is_rfmtx1(letters: Option<[u8; 3]>, version: u8, device_type: u8, config: u16) -> bool {
    letters == Some(*b"BMT")
        && version == 0x05
        && device_type == 0x07
        && (config >> 8) & 0x1F == 0x10
}

/// Undoes (or applies: XOR) the scrambling of the total in `payload` (the bytes after the
/// TPL header) with the frame's access number; false when the payload is too short.
pub fn descramble_rfmtx1(access_number: u8, payload: &mut [u8]) -> bool {
    let Some(total) = payload.get_mut(RFMTX1_TOTAL_AT..RFMTX1_TOTAL_AT + 4) else {
        return false;
    };
    let row = RFMTX1_TABLE
        .get(usize::from(access_number & 0x0F))
        .copied()
        .unwrap_or_default();
    for (byte, t) in total.iter_mut().zip(row) {
        *byte ^= access_number ^ t;
    }
    true
}

fn bcd_byte(step: &'static str, offset: usize, b: u8) -> Result<u8, StepError> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    if hi > 9 || lo > 9 {
        return Err(StepError::Invalid {
            step,
            offset,
            reason: format!("{b:02X} is not two BCD digits"),
        });
    }
    Ok(hi * 10 + lo)
}

/// `bmeters_rfmtx1_datetime`: input the payload after the TPL header (`source = "apl"`).
/// Output: 4 bytes, the meter's date and time as type F (seconds dropped).
pub fn rfmtx1_datetime(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "bmeters_rfmtx1_datetime";
    let raw = input.bytes(STEP, RFMTX1_DATETIME_AT, 6)?;
    let mut v = [0u8; 6];
    for (i, (slot, &b)) in v.iter_mut().zip(raw).enumerate() {
        *slot = bcd_byte(STEP, RFMTX1_DATETIME_AT + i, b)?;
    }
    let [_sec, min, hour, day, month, year] = v;
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) || hour > 23 || min > 59 {
        return Err(StepError::Invalid {
            step: STEP,
            offset: RFMTX1_DATETIME_AT,
            reason: format!(
                "20{year:02}-{month:02}-{day:02} {hour:02}:{min:02} is not a date and time"
            ),
        });
    }
    Ok(vec![
        min,
        hour,
        day | ((year & 0x07) << 5),
        month | ((year >> 3) << 4),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;

    #[test]
    fn scrambling_is_its_own_inverse_and_keyed_by_the_access_number() {
        let plain = [0x11, 0x15, 0x60, 0x85, 0x18, 0x00, 0x0F];
        for access in [0x00, 0xA5, 0x3C, 0xFF] {
            let mut p = plain;
            assert!(descramble_rfmtx1(access, &mut p));
            assert_ne!(p[2..6], plain[2..6], "{access:#x}");
            assert_eq!(p[..2], plain[..2]);
            assert!(descramble_rfmtx1(access, &mut p));
            assert_eq!(p, plain);
        }
        assert!(!descramble_rfmtx1(0, &mut [0u8; 5]));
    }

    #[test]
    fn bcd_date_time_becomes_type_f() {
        let mut payload = vec![0u8; 13];
        payload.extend_from_slice(&[0x59, 0x04, 0x10, 0x31, 0x03, 0x20]);
        let link = [0x44, 0xB4, 0x09, 1, 2, 3, 4, 0x05, 0x07];
        let out = rfmtx1_datetime(&test_input(0x7A, &link, &payload)).unwrap();
        assert_eq!(
            crate::wire::apl::type_f([out[0], out[1], out[2], out[3]]).to_string(),
            "2020-03-31T10:04"
        );
        payload[13 + 3] = 0x3A;
        assert!(rfmtx1_datetime(&test_input(0x7A, &link, &payload)).is_err());
        assert!(rfmtx1_datetime(&test_input(0x7A, &link, &payload[..15])).is_err());
    }

    #[test]
    fn only_bmt_version_5_water_in_mode_16() {
        let bmt = Some(*b"BMT");
        assert!(is_rfmtx1(bmt, 0x05, 0x07, 0x1006));
        assert!(!is_rfmtx1(bmt, 0x05, 0x07, 0x0506));
        assert!(!is_rfmtx1(bmt, 0x13, 0x07, 0x1006));
        assert!(!is_rfmtx1(Some(*b"KAM"), 0x05, 0x07, 0x1006));
    }
}
