//! Steps for the Qundis family (QDS, LSE, BFW).
//!
//! BFW 240 radio heat cost allocators send a fixed 40-byte application payload after a
//! short TPL header (CI 0x7A) that is not made of data records: two 16-bit values in
//! big-endian order, 18 monthly values packed two by two into 12-bit halves of byte
//! triplets, oldest pair first, and a BCD date. The step unpacks that into plain
//! little-endian numbers and a type G date that a definition reads by offset.

use super::{type_g, StepError, StepInput};

const BFW: &str = "bfw240radio";

/// Length of the BFW 240 radio payload.
const BFW_PAYLOAD_LEN: usize = 40;
/// Offset of the first history triplet (months 18 and 17).
const BFW_HISTORY: usize = 10;
/// Number of monthly values.
const BFW_MONTHS: usize = 18;
/// Offset of the device date (day, month, two-digit year, BCD).
const BFW_DATE: usize = 37;

/// Output offset of the month-`n` value (n = 1 for the last month).
pub const fn bfw_month_offset(n: usize) -> usize {
    4 + 2 * (n - 1)
}

/// Output offset of the device date (type G).
pub const BFW_DATE_OFFSET: usize = bfw_month_offset(BFW_MONTHS + 1);

/// BFW 240 radio payload (starting at its `2F 2F`) → output, all little endian:
/// 0 value at the end of the last billing period (u16), 2 current value (u16),
/// 4 + 2·(n−1) value of month n ago for n = 1..=18 (u16), 40 device date (type G,
/// `FF FF` when the meter's date is not valid BCD).
pub fn bfw240radio(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    input.bytes(BFW, 0, BFW_PAYLOAD_LEN)?;
    // The payload opens with the 2F 2F an OMS payload starts with (also what a
    // decryption is verified by); anything else is not this layout.
    if take::<2>(input, 0)? != [0x2F, 0x2F] {
        return Err(StepError::Invalid {
            step: BFW,
            offset: 0,
            reason: "payload does not start with 2F 2F".into(),
        });
    }
    let mut out = vec![0u8; BFW_DATE_OFFSET + 2];
    for (at, from) in [(0, 4), (2, 6)] {
        put_u16(&mut out, at, u16::from_be_bytes(take(input, from)?));
    }
    // Triplet k holds months 18 − 2k (even) and 17 − 2k (odd).
    for k in 0..BFW_MONTHS / 2 {
        let [a, b, c] = take::<3>(input, BFW_HISTORY + 3 * k)?.map(u16::from);
        let odd = ((b & 0x0F) << 8) | c;
        let even = ((b >> 4) << 8) | a;
        put_u16(&mut out, bfw_month_offset(BFW_MONTHS - 2 * k), even);
        put_u16(&mut out, bfw_month_offset(BFW_MONTHS - 1 - 2 * k), odd);
    }
    let [day, month, year] = take::<3>(input, BFW_DATE)?;
    let g = type_g_from_bcd(day, month, year).unwrap_or([0xFF, 0xFF]);
    put_u16(&mut out, BFW_DATE_OFFSET, u16::from_le_bytes(g));
    Ok(out)
}

/// The `N` input bytes at `from`.
fn take<const N: usize>(input: &StepInput<'_>, from: usize) -> Result<[u8; N], StepError> {
    <[u8; N]>::try_from(input.bytes(BFW, from, N)?).map_err(|_| StepError::TooShort {
        step: BFW,
        len: input.data.len(),
        need: from.saturating_add(N),
    })
}

fn put_u16(out: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = out.get_mut(at..at + 2) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

fn bcd(byte: u8) -> Option<u8> {
    let (hi, lo) = (byte >> 4, byte & 0x0F);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

/// EN 13757-3 type G bytes for a BCD day, month and two-digit year; `None` when a digit
/// is not BCD or the day or month is out of range.
fn type_g_from_bcd(day: u8, month: u8, year: u8) -> Option<[u8; 2]> {
    let (d, m, y) = (bcd(day)?, bcd(month)?, bcd(year)?);
    if !(1..=31).contains(&d) || !(1..=12).contains(&m) {
        return None;
    }
    Some(type_g(y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;
    use crate::wire::apl;

    const LINK: [u8; 9] = [0x44, 0xD7, 0x08, 0x88, 0x77, 0x70, 0x00, 0x02, 0x08];

    fn run(hex_payload: &str) -> Result<Vec<u8>, StepError> {
        let data = hex::decode(hex_payload).unwrap();
        bfw240radio(&test_input(0x7A, &LINK, &data))
    }

    fn u16_at(out: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([out[at], out[at + 1]])
    }

    /// Meter 00707788 (wmbusmeters corpus), APL after the TPL header.
    const METER_7788: &str =
        "2F2F011F03C1038D152A0000000000000000000000000200040400040E00E20A23C11D238D010321";

    #[test]
    fn bfw_unpacks_billing_values_and_history() {
        let out = run(METER_7788).unwrap();
        assert_eq!(out.len(), BFW_DATE_OFFSET + 2);
        assert_eq!((u16_at(&out, 0), u16_at(&out, 2)), (961, 909));
        let months: Vec<u16> = (1..=18)
            .map(|n| u16_at(&out, bfw_month_offset(n)))
            .collect();
        assert_eq!(
            months,
            [909, 541, 961, 522, 226, 14, 4, 4, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let date = [out[BFW_DATE_OFFSET], out[BFW_DATE_OFFSET + 1]];
        assert_eq!(apl::type_g(date).to_string(), "2021-03-01");
    }

    #[test]
    fn bfw_high_nibbles_belong_to_the_even_month() {
        // Meter 00707447: triplet 44 10 AC = month 2: 0x144, month 1: 0x0AC.
        let out =
            run("2F2F6F1F01440100147000000000000000000000000000000000000000000037009B4410AC260221")
                .unwrap();
        assert_eq!((u16_at(&out, 0), u16_at(&out, 2)), (324, 256));
        assert_eq!(u16_at(&out, bfw_month_offset(1)), 172);
        assert_eq!(u16_at(&out, bfw_month_offset(2)), 324);
        assert_eq!(u16_at(&out, bfw_month_offset(3)), 155);
        assert_eq!(u16_at(&out, bfw_month_offset(4)), 55);
    }

    #[test]
    fn bfw_invalid_date_becomes_the_invalid_marker() {
        let mut payload = METER_7788[..74].to_owned();
        payload.push_str("1A0321");
        let out = run(&payload).unwrap();
        assert_eq!(&out[BFW_DATE_OFFSET..], &[0xFF, 0xFF]);
    }

    #[test]
    fn bfw_rejects_short_and_foreign_payloads() {
        assert_eq!(
            run(&METER_7788[..78]),
            Err(StepError::TooShort {
                step: BFW,
                len: 39,
                need: 40
            })
        );
        let foreign = format!("0C13{}", &METER_7788[4..]);
        assert!(matches!(
            run(&foreign),
            Err(StepError::Invalid { offset: 0, .. })
        ));
    }
}
