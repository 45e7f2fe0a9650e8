//! Steps for B Meters (BMT water meters, BMP heat cost allocators): their manufacturer
//! data (after DIF 0x0F) has layouts a byte table cannot read directly, a content byte
//! that decides which blocks follow, a battery code looked up in a table, and in-band
//! "no data" markers.
//!
//! Both steps re-emit every value as packed BCD, least significant byte first (what the
//! definitions read with `encoding = "bcd"`), and dates as EN 13757-3 type G. A value the
//! telegram does not carry, or marks as "no data", is written as 0xFF bytes: not valid
//! BCD, so its field is left out instead of showing a made-up number. Scaling and units
//! stay in the definitions.

use super::{type_g, StepError, StepInput};

/// Writes `value` as `len` bytes of packed BCD, least significant byte first; `None`
/// (or a value too large for `len` bytes) as `len` bytes 0xFF.
fn push_bcd(out: &mut Vec<u8>, value: Option<u64>, len: usize) {
    let start = out.len();
    let mut rest = value;
    for _ in 0..len {
        match rest {
            Some(v) => {
                out.push(u8::try_from((v % 10) | ((v / 10 % 10) << 4)).unwrap_or(0xFF));
                rest = Some(v / 100);
            }
            None => out.push(0xFF),
        }
    }
    if rest.is_some_and(|v| v != 0) {
        // Does not fit: no value rather than a truncated one.
        out.truncate(start);
        out.resize(start + len, 0xFF);
    }
}

/// Unsigned little-endian integer of up to 8 bytes.
fn uint_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// A byte read as two decimal digits the way the meter writes them (tens in the high
/// nibble; no check that the nibbles are below 10).
fn nibble_decimal(b: u8) -> u8 {
    (b >> 4) * 10 + (b & 0x0F)
}

/// Consecutive blocks of a step's input.
struct Blocks<'b, 'a> {
    input: &'b StepInput<'a>,
    at: usize,
}

impl<'b> Blocks<'b, '_> {
    fn take(&mut self, step: &'static str, len: usize) -> Result<&'b [u8], StepError> {
        let bytes = self.input.bytes(step, self.at, len)?;
        self.at += len;
        Ok(bytes)
    }
}

// Hydrodigit content byte: which blocks follow it, in this order.
const HD_BATTERY: u8 = 0x01;
const HD_FRAUD: u8 = 0x02;
const HD_BACKFLOW: u8 = 0x04;
const HD_MONTHLY: u8 = 0x10;
const HD_LEAK: u8 = 0x80;

/// Battery voltage in hundredths of a volt for the low nibble of the battery byte
/// (B Meters' table; 0, 14 and 15 mean a full battery).
const HD_VOLTAGE_CV: [u16; 16] = [
    370, 190, 210, 220, 230, 240, 250, 265, 280, 290, 305, 320, 335, 350, 370, 370,
];

/// Monthly totals at or above this raw value (1/100 m3) are the meter's marker for a
/// month before the radio module was fitted; that month's total reads as 0.
const HD_MONTH_UNSET: u64 = 10_000_000;

/// B Meters Hydrodigit: the content byte at 0 says which blocks follow — battery code (1
/// byte), fraud type and date (1 + 3), leak date (3), backflow (4, litres), twelve
/// month-end totals (3 each, 1/100 m3). Output, fixed offsets: 0 battery voltage (BCD 2,
/// 1/100 V), 2 fraud date (type G), 4 leak date (type G), 6 backflow (BCD 5, litres),
/// 11 + 4·m total at the end of month m = 0 (January) .. 11 (BCD 4, 1/100 m3).
pub fn hydrodigit(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "bmeters_hydrodigit";
    let contents = input.bytes(STEP, 0, 1)?.first().copied().unwrap_or(0);
    let mut blocks = Blocks { input, at: 1 };
    let mut take = |len: usize| blocks.take(STEP, len);
    let battery = if contents & HD_BATTERY != 0 {
        let code = take(1)?.first().copied().unwrap_or(0);
        HD_VOLTAGE_CV.get(usize::from(code & 0x0F)).copied()
    } else {
        None
    };
    // Type G packing without range checks: a day or month of 0 (the meter's "no date")
    // stays 0, which the type G reader reports as no valid date.
    let fraud_date = if contents & HD_FRAUD != 0 {
        // Fraud type byte first; the date's month is binary in the low nibble.
        let block = take(4)?;
        match block {
            [_, y, m, d] => type_g(nibble_decimal(*y), m & 0x0F, nibble_decimal(*d)),
            _ => [0, 0],
        }
    } else {
        [0, 0]
    };
    let leak_date = if contents & HD_LEAK != 0 {
        match take(3)? {
            [y, m, d] => type_g(nibble_decimal(*y), nibble_decimal(*m), nibble_decimal(*d)),
            _ => [0, 0],
        }
    } else {
        [0, 0]
    };
    let backflow = if contents & HD_BACKFLOW != 0 {
        Some(uint_le(take(4)?))
    } else {
        None
    };
    let mut months = [None; 12];
    if contents & HD_MONTHLY != 0 {
        for month in &mut months {
            let raw = uint_le(take(3)?);
            *month = Some(if raw < HD_MONTH_UNSET { raw } else { 0 });
        }
    }
    let mut out = Vec::with_capacity(11 + 4 * 12);
    push_bcd(&mut out, battery.map(u64::from), 2);
    out.extend_from_slice(&fraud_date);
    out.extend_from_slice(&leak_date);
    push_bcd(&mut out, backflow, 5);
    for month in months {
        push_bcd(&mut out, month, 4);
    }
    Ok(out)
}

/// Frame identifier of the HydroClima 2 heat cost allocator's data block.
const HC2_FRAME: u8 = 0x11;
/// Ambient temperature history entry without data.
const HC2_NO_DATA: u64 = 0x8000;

/// B Meters HydroClima 2 (frame identifier 0x11, 47 bytes): 16-bit little-endian values
/// at fixed offsets after status, time, date and housing-open date. Output, BCD 4 bytes
/// each: 0 average heater temperature, 4 average ambient temperature, 8 maximum ambient
/// temperature, 12 / 16 average heater / ambient temperature of the previous period
/// (1/100 °C); 20, 24, 28, 32 consumption at set dates 1..4 (units); 36, 40, 44 ambient
/// temperature at set dates 1..3 (1/100 °C, 0x8000 = no data); 48 total consumption of
/// all periods (3 bytes on air).
pub fn hydroclima2(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "bmeters_hydroclima2";
    let frame = input.bytes(STEP, 0, 47)?;
    let id = frame.first().copied().unwrap_or(0);
    if id != HC2_FRAME {
        return Err(StepError::Invalid {
            step: STEP,
            offset: 0,
            reason: format!("frame identifier {id:#04X}, expected {HC2_FRAME:#04X}"),
        });
    }
    let word = |offset: usize| frame.get(offset..offset + 2).map(uint_le);
    let mut out = Vec::with_capacity(52);
    // Heater, ambient, max ambient; then (after the max date) the previous period's.
    for offset in [9, 11, 13, 17, 19] {
        push_bcd(&mut out, word(offset), 4);
    }
    for offset in [21, 23, 25, 27] {
        push_bcd(&mut out, word(offset), 4);
    }
    for offset in [29, 31, 33] {
        push_bcd(&mut out, word(offset).filter(|&t| t != HC2_NO_DATA), 4);
    }
    push_bcd(&mut out, frame.get(44..47).map(uint_le), 4);
    Ok(out)
}

/// Frame identifier of the HydroClima (RF RKN0) block after DIF 0x0F.
const HC_RKN0_FRAME: u8 = 0x10;
/// Bytes of that block the definition reads (up to the total indication).
const HC_RKN0_LEN: usize = 24;

/// B Meters HydroClima block after DIF 0x0F: the RKN0 frame (identifier 0x10) passes
/// through unchanged for the definition's offsets; the history frame (RKN9, any other
/// identifier) has none of those values and gives an empty output, so the fields are
/// left out rather than read from the wrong layout.
pub fn hydroclima(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    const STEP: &str = "bmeters_hydroclima";
    match input.data.first() {
        Some(&HC_RKN0_FRAME) => Ok(input.bytes(STEP, 0, HC_RKN0_LEN)?.to_vec()),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;

    #[test]
    fn hydroclima_passes_the_rkn0_frame_only() {
        const LINK: [u8; 9] = [0x44, 0xB0, 0x09, 0x98, 0x61, 0x03, 0x68, 0x53, 0x08];
        let mut frame = vec![HC_RKN0_FRAME];
        frame.extend([0u8; 23]);
        let out = hydroclima(&test_input(0x7A, &LINK, &frame)).unwrap();
        assert_eq!(out, frame);
        let history = [0x43u8; 30];
        assert!(hydroclima(&test_input(0x7A, &LINK, &history))
            .unwrap()
            .is_empty());
        assert!(matches!(
            hydroclima(&test_input(0x7A, &LINK, &frame[..10])),
            Err(StepError::TooShort { .. })
        ));
    }

    fn run(step: fn(&StepInput<'_>) -> Result<Vec<u8>, StepError>, data: &[u8]) -> Vec<u8> {
        let link = [0x44, 0xB4, 0x09, 0x21, 0x43, 0x65, 0x87, 0x13, 0x07];
        step(&test_input(0x7A, &link, data)).unwrap()
    }

    #[test]
    fn bcd_is_least_significant_byte_first_and_overflow_is_no_value() {
        let mut out = Vec::new();
        push_bcd(&mut out, Some(4_309), 4);
        push_bcd(&mut out, None, 2);
        push_bcd(&mut out, Some(12_345), 2);
        assert_eq!(out, [0x09, 0x43, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    }

    #[test]
    fn hydrodigit_battery_backflow_and_months() {
        // Manufacturer data of meter 87654321 (content 0x15).
        let data = hex::decode(
            "152A0F000000440F00C00F00511000D51000B20B00180C007C0C00E60C00560D00D10D00400E00C60E00",
        )
        .unwrap();
        let out = run(hydrodigit, &data);
        assert_eq!(out.len(), 59);
        assert_eq!(&out[0..2], &[0x05, 0x03]); // 3.05 V
        assert_eq!(&out[2..6], &[0, 0, 0, 0]); // no fraud, no leak date
        assert_eq!(&out[6..11], &[0x15, 0, 0, 0, 0]); // 15 litres
        assert_eq!(&out[11..15], &[0x08, 0x39, 0, 0]); // January 39.08 m3
        assert_eq!(&out[55..59], &[0x82, 0x37, 0, 0]); // December 37.82 m3
    }

    #[test]
    fn hydrodigit_leak_date_and_unset_months() {
        // Meter 87654322 (content 0x95): leak date 2024-04-25, June/July before install.
        let data = hex::decode(
            "950A24042507000000A405006E0700850900CA0B004A0E00FFFFFFFFFFFF020000020000250000B3010095030000",
        )
        .unwrap();
        let out = run(hydrodigit, &data);
        assert_eq!(&out[4..6], &type_g(24, 4, 25));
        assert_eq!(&out[6..11], &[0x07, 0, 0, 0, 0]);
        assert_eq!(&out[31..35], &[0, 0, 0, 0]); // June
        assert_eq!(&out[35..39], &[0, 0, 0, 0]); // July
    }

    #[test]
    fn hydrodigit_absent_blocks_are_no_value() {
        // Content 0x02: fraud block only (type, then date with binary month 0x0B).
        let out = run(hydrodigit, &[0x02, 0x80, 0x25, 0x0B, 0x17]);
        assert_eq!(&out[0..2], &[0xFF, 0xFF]);
        assert_eq!(&out[2..4], &type_g(25, 11, 17));
        assert_eq!(&out[6..11], &[0xFF; 5]);
        assert!(out[11..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn hydrodigit_short_block_is_an_error() {
        let link = [0; 9];
        let input = test_input(0x7A, &link, &[0x04, 0x01, 0x00]);
        assert_eq!(
            hydrodigit(&input),
            Err(StepError::TooShort {
                step: "bmeters_hydrodigit",
                len: 3,
                need: 5
            })
        );
    }

    #[test]
    fn hydroclima2_values_and_no_data_marker() {
        // Manufacturer data of meter 93001021.
        let data = hex::decode(
            "110001B9604734CE2E2708FD071B088832940766070000000000000000C407260800802DD400000000000000220000",
        )
        .unwrap();
        let out = run(hydroclima2, &data);
        assert_eq!(out.len(), 52);
        assert_eq!(&out[0..4], &[0x87, 0x20, 0, 0]); // 20.87 °C heater
        assert_eq!(&out[4..8], &[0x45, 0x20, 0, 0]); // 20.45 °C ambient
        assert_eq!(&out[36..40], &[0x88, 0x19, 0, 0]); // 19.88 °C
        assert_eq!(&out[44..48], &[0xFF; 4]); // 0x8000: no data
        assert_eq!(&out[48..52], &[0x34, 0, 0, 0]);
    }

    #[test]
    fn hydroclima2_rejects_another_frame_layout() {
        let mut data = vec![0u8; 47];
        data[0] = 0x10;
        let link = [0; 9];
        let input = test_input(0x7A, &link, &data);
        assert!(matches!(
            hydroclima2(&input),
            Err(StepError::Invalid { offset: 0, .. })
        ));
    }
}
