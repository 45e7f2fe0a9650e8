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

const QHEAT: &str = "qundis_heat_block";

/// Offsets in the Q heat vendor block (the data of record 0D FF 5F).
const QHEAT_VIF: usize = 9;
const QHEAT_ERROR_DATE: usize = 10;
const QHEAT_TOTAL: usize = 12;
const QHEAT_YEAR_DATE: usize = 16;
const QHEAT_YEAR: usize = 18;
const QHEAT_MONTH_DATE: usize = 22;
const QHEAT_MONTH: usize = 24;
const QHEAT_DELTAS: usize = 28;
/// Monthly energy deltas in the block (the reference's numbering: 2..=13).
pub const QHEAT_DELTA_COUNT: usize = 12;
/// A delta of this raw value marks a month without data.
const QHEAT_NO_DATA: i16 = i16::MIN;

/// Output: dates at 0 (error), 2 (billing year end), 4 (month end), type G each; then
/// energies as 10-digit BCD (5 bytes) in 0.1 kWh: total at 6, year end at 11, month end
/// at 16, monthly delta n (2..=13) at [`qheat_delta_offset`].
pub const QHEAT_TOTAL_OUT: usize = 6;
const QHEAT_VALUE_LEN: usize = 5;

pub const fn qheat_delta_offset(n: usize) -> usize {
    QHEAT_TOTAL_OUT + QHEAT_VALUE_LEN * (3 + n - 2)
}

/// Q heat 5.5 vendor block (record 0D FF 5F, the layout Q water meters use, in the
/// meter's energy unit, VIF at byte 9): the dates as sent and the energies in 0.1 kWh
/// units. Energies counted in joules (VIF 0x0D/0x0E) and months without data (0x8000)
/// come out as FF bytes, which read as absent: MJ to kWh is no exact decimal factor.
/// A negative delta is no consumption to bill and is left out the same way.
pub fn qundis_heat_block(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    input.bytes(QHEAT, 0, QHEAT_DELTAS + 2 * QHEAT_DELTA_COUNT)?;
    // Tenths of a kWh per unit of the block's VIF, None for joules.
    let tenths: Option<u64> = match take_q::<1>(input, QHEAT_VIF)? {
        [0x05] => Some(1),
        [0x06] => Some(10),
        [0x0D | 0x0E] => None,
        [other] => {
            return Err(StepError::Invalid {
                step: QHEAT,
                offset: QHEAT_VIF,
                reason: format!("energy VIF 0x{other:02X} is not 05, 06, 0D or 0E"),
            })
        }
    };
    let mut out = Vec::with_capacity(qheat_delta_offset(QHEAT_DELTA_COUNT + 2));
    for at in [QHEAT_ERROR_DATE, QHEAT_YEAR_DATE, QHEAT_MONTH_DATE] {
        out.extend_from_slice(&take_q::<2>(input, at)?);
    }
    for at in [QHEAT_TOTAL, QHEAT_YEAR, QHEAT_MONTH] {
        let raw = take_q::<4>(input, at)?;
        let units = raw
            .iter()
            .rev()
            .try_fold(0u64, |acc, &b| Some(acc * 100 + u64::from(bcd(b)?)));
        push_tenths(&mut out, units.zip(tenths).map(|(u, t)| u * t));
    }
    for n in 0..QHEAT_DELTA_COUNT {
        let raw = i16::from_le_bytes(take_q::<2>(input, QHEAT_DELTAS + 2 * n)?);
        let value = u64::try_from(raw)
            .ok()
            .filter(|_| raw != QHEAT_NO_DATA)
            .zip(tenths)
            .map(|(u, t)| u * t);
        push_tenths(&mut out, value);
    }
    Ok(out)
}

/// Appends a 10-digit BCD number (least significant byte first), FF bytes for none.
fn push_tenths(out: &mut Vec<u8>, value: Option<u64>) {
    let Some(mut rest) = value.filter(|&v| v < 10_000_000_000) else {
        out.extend([0xFF; QHEAT_VALUE_LEN]);
        return;
    };
    for _ in 0..QHEAT_VALUE_LEN {
        let pair = (rest % 100) as u8;
        out.push(((pair / 10) << 4) | (pair % 10));
        rest /= 100;
    }
}

fn take_q<const N: usize>(input: &StepInput<'_>, from: usize) -> Result<[u8; N], StepError> {
    <[u8; N]>::try_from(input.bytes(QHEAT, from, N)?).map_err(|_| StepError::TooShort {
        step: QHEAT,
        len: input.data.len(),
        need: from.saturating_add(N),
    })
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

    /// A Q heat vendor block built from its layout: energy VIF `vif`, total 856.4 units,
    /// year end 680.3, month end 3083.1, deltas 1, 2, ... 11 and a month without data.
    fn qheat_block(vif: u8) -> Vec<u8> {
        let mut b = vec![0u8; 9];
        b.push(vif);
        b.extend([0xFF, 0xFF]); // no error date
        b.extend([0x64, 0x08, 0x00, 0x00]); // 864 BCD
        b.extend([0x1F, 0x3C]); // 2024-12-31
        b.extend([0x03, 0x68, 0x00, 0x00]); // 6803
        b.extend([0x3E, 0x34]); // 2025-04-30
        b.extend([0x31, 0x08, 0x03, 0x00]); // 30831
        for n in 1..=11i16 {
            b.extend(n.to_le_bytes());
        }
        b.extend(i16::MIN.to_le_bytes());
        b.extend([0x2F; 5]);
        b
    }

    fn bcd_at(out: &[u8], at: usize) -> Option<i128> {
        crate::wire::apl::bcd(&out[at..at + QHEAT_VALUE_LEN])
    }

    #[test]
    fn qheat_block_in_watt_hours_comes_out_in_tenths_of_kwh() {
        let data = qheat_block(0x05);
        let out = qundis_heat_block(&test_input(0x78, &LINK, &data)).unwrap();
        assert_eq!(apl::type_g([out[2], out[3]]).to_string(), "2024-12-31");
        assert_eq!(apl::type_g([out[4], out[5]]).to_string(), "2025-04-30");
        assert_eq!(bcd_at(&out, QHEAT_TOTAL_OUT), Some(864));
        assert_eq!(bcd_at(&out, QHEAT_TOTAL_OUT + 5), Some(6803));
        assert_eq!(bcd_at(&out, QHEAT_TOTAL_OUT + 10), Some(30831));
        assert_eq!(bcd_at(&out, qheat_delta_offset(2)), Some(1));
        assert_eq!(bcd_at(&out, qheat_delta_offset(12)), Some(11));
        assert_eq!(bcd_at(&out, qheat_delta_offset(13)), None, "no data");
        // kWh units are ten tenths.
        let data = qheat_block(0x06);
        let out = qundis_heat_block(&test_input(0x78, &LINK, &data)).unwrap();
        assert_eq!(bcd_at(&out, QHEAT_TOTAL_OUT), Some(8640));
        assert_eq!(bcd_at(&out, qheat_delta_offset(3)), Some(20));
    }

    #[test]
    fn qheat_block_in_joules_keeps_dates_only_and_bad_vif_is_named() {
        let data = qheat_block(0x0D);
        let out = qundis_heat_block(&test_input(0x78, &LINK, &data)).unwrap();
        assert_eq!(apl::type_g([out[4], out[5]]).to_string(), "2025-04-30");
        assert_eq!(bcd_at(&out, QHEAT_TOTAL_OUT), None);
        assert_eq!(bcd_at(&out, qheat_delta_offset(2)), None);
        let data = qheat_block(0x13);
        let err = qundis_heat_block(&test_input(0x78, &LINK, &data)).unwrap_err();
        assert!(err.to_string().contains("byte 9"), "{err}");
        let short = &qheat_block(0x05)[..30];
        assert!(matches!(
            qundis_heat_block(&test_input(0x78, &LINK, short)),
            Err(StepError::TooShort { .. })
        ));
    }

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
