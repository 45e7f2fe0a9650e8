//! Diehl Metering (DME, HYD, SAP) steps.
//!
//! * [`prios`]: IZAR/PRIOS radio frames (CI 0xA0..0xA7) carry their readings scrambled
//!   with a 32-bit LFSR whose seed is a per-meter key folded with the link header and the
//!   first bytes after the CI. Diehl's two factory keys are public, so without a key
//!   of its own a meter's frames still open. The first descrambled byte is a fixed check
//!   value, which tells a right key from a wrong one.
//! * [`open_real_data`]: "real data" frames. On a Diehl meter (DME, EWT, HYD, SAP, SPL),
//!   bit 12 of an SND_NR/SND_IR short-header frame's configuration field means the
//!   payload after the TPL header is scrambled with the same LFSR — not a security mode:
//!   the rest of the CFG high byte is a checksum of the plain payload, so read as a mode
//!   it looks like a reserved one (16..31). Such frames also send the A field as
//!   version, device type, then the identification (see [`swapped_address`]).
//! * [`OMS_DEFAULT_KEY`]: the AES key Diehl meters in OMS mode 5 use from the factory.

use super::{StepError, StepInput};
use crate::keys::Key;
pub use crate::wire::manufacturer::diehl::{
    is_diehl, is_real_data, swapped_address, REAL_DATA_BIT,
};

const PRIOS: &str = "diehl_prios";

/// Diehl's factory keys for IZAR/PRIOS radio scrambling (8 bytes each, published in open
/// tools and Diehl integration notes); tried after the meter's own key.
const PRIOS_DEFAULT_KEYS: [[u8; 8]; 2] = [
    [0x39, 0xBC, 0x8A, 0x10, 0xE6, 0x6D, 0x83, 0xF8],
    [0x51, 0x72, 0x89, 0x10, 0xE6, 0x6D, 0x83, 0xF8],
];

/// The factory AES-128 key of Diehl meters sending standard (OMS) frames in security
/// mode 5: the second PRIOS key twice. Tried when no key is configured for the meter.
pub const OMS_DEFAULT_KEY: [u8; 16] = [
    0x51, 0x72, 0x89, 0x10, 0xE6, 0x6D, 0x83, 0xF8, 0x51, 0x72, 0x89, 0x10, 0xE6, 0x6D, 0x83, 0xF8,
];

/// Bits of the CFG high byte that carry the payload checksum (all but bit 12's).
const REAL_DATA_CHECK_MASK: u8 = 0xEF;

/// First byte of every correctly descrambled PRIOS payload.
const PRIOS_CHECK: u8 = 0x4B;

/// Bytes of a PRIOS manufacturer payload before the scrambled part: the CI itself,
/// then four clear bytes (period and alarms, battery and alarms, alarms, reserved).
const PRIOS_CLEAR: usize = 5;

/// Offset in the step output where the descrambled bytes start (after the transmit
/// period, 4 bytes, and the 4 clear bytes).
const PRIOS_DESCRAMBLED_AT: usize = 8;

/// The 32-bit seed of an 8-byte key: its two big-endian halves XORed.
fn seed(key: &[u8; 8]) -> u32 {
    let [a, b, c, d, e, f, g, h] = *key;
    u32::from_be_bytes([a, b, c, d]) ^ u32::from_be_bytes([e, f, g, h])
}

/// One output byte of the LFSR: eight shifts, each feeding back bits 1, 2, 11 and 31,
/// then the low byte of the register.
fn lfsr_next(state: &mut u32) -> u8 {
    for _ in 0..8 {
        let s = *state;
        let bit = ((s >> 1) ^ (s >> 2) ^ (s >> 11) ^ (s >> 31)) & 1;
        *state = (s << 1) | bit;
    }
    // Truncation keeps the low byte, which is the keystream byte.
    (*state & 0xFF) as u8
}

/// XORs `bytes` in place with the keystream of the register seeded from `key_seed` and
/// the frame's header words (scrambling and descrambling are the same operation).
fn apply_keystream(key_seed: u32, header: [u32; 3], bytes: &mut [u8]) {
    let mut state = header.iter().fold(key_seed, |k, w| k ^ w);
    for b in bytes {
        *b ^= lfsr_next(&mut state);
    }
}

/// Descrambles `scrambled` with the register seeded from `key_seed` and the frame's
/// header words; `None` when the check byte does not come out.
fn descramble(key_seed: u32, header: [u32; 3], scrambled: &[u8]) -> Option<Vec<u8>> {
    let mut out = scrambled.to_vec();
    apply_keystream(key_seed, header, &mut out);
    (out.first() == Some(&PRIOS_CHECK)).then_some(out)
}

/// The header words every Diehl seed folds in: M + the first two A bytes, the other two
/// A bytes + version + type (as transmitted), and the four bytes from the CI on.
fn header_words(link: &[u8; 9], from_ci: [u8; 4]) -> [u32; 3] {
    let [_c, m0, m1, a0, a1, a2, a3, version, device_type] = *link;
    [
        u32::from_be_bytes([m0, m1, a0, a1]),
        u32::from_be_bytes([a2, a3, version, device_type]),
        u32::from_be_bytes(from_ci),
    ]
}

/// The seeds to try, in order: the meter's own key (the first 8 of its 16 bytes), then
/// Diehl's factory keys.
fn seeds(own: Option<&Key>) -> impl Iterator<Item = u32> + '_ {
    own.and_then(|k| {
        let half: [u8; 8] = k.expose_bytes().get(..8)?.try_into().ok()?;
        Some(seed(&half))
    })
    .into_iter()
    .chain(PRIOS_DEFAULT_KEYS.iter().map(seed))
}

/// The checksum a real-data CFG high byte carries for `plain`: the byte sum, bit 4 (the
/// real-data flag's own bit) left out.
fn real_data_check(plain: &[u8]) -> u8 {
    let sum = plain
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
    (sum & u32::from(REAL_DATA_CHECK_MASK)) as u8
}

/// Descrambles a real-data payload in place. `link` is C, M, A as transmitted, `tpl`
/// the five header bytes from the CI on (CI, access number, status, CFG low, CFG high),
/// `payload` everything after them. Tries the meter's key, then Diehl's factory keys;
/// true (payload now plain) when one gives the checksum of the CFG high byte, false
/// (payload untouched) otherwise.
pub fn open_real_data(link: &[u8; 9], tpl: [u8; 5], own: Option<&Key>, payload: &mut [u8]) -> bool {
    let [ci, acc, sts, cfg_lo, cfg_hi] = tpl;
    let header = header_words(link, [ci, acc, sts, cfg_lo]);
    let want = cfg_hi & REAL_DATA_CHECK_MASK;
    let mut trial = payload.to_vec();
    for key_seed in seeds(own) {
        trial.copy_from_slice(payload);
        apply_keystream(key_seed, header, &mut trial);
        if real_data_check(&trial) == want {
            payload.copy_from_slice(&trial);
            return true;
        }
    }
    false
}

/// The emitter of [`open_real_data`], for tests and simulators: scrambles `plain` in
/// place with `key` (8 bytes, as the meter holds it) and returns the CFG high byte that
/// announces it (bit 4 set, the checksum in the other bits). `tpl4` is CI, access
/// number, status and CFG low byte.
pub fn scramble_real_data(link: &[u8; 9], tpl4: [u8; 4], key: &[u8; 8], plain: &mut [u8]) -> u8 {
    let cfg_hi = real_data_check(plain) | (REAL_DATA_BIT >> 8) as u8;
    apply_keystream(seed(key), header_words(link, tpl4), plain);
    cfg_hi
}

/// Diehl's factory scrambling keys, 8 bytes each, for simulators and tests.
pub fn factory_keys() -> &'static [[u8; 8]; 2] {
    &PRIOS_DEFAULT_KEYS
}

/// IZAR/PRIOS: `data` is the manufacturer data of the proprietary frame, starting with
/// its CI. Output (offsets for `source = "step"` fields):
///
/// | bytes | content |
/// |---|---|
/// | 0..4 | transmit period in seconds, u32 LE (2^(n+2) for n = low nibble of byte 1 after the CI) |
/// | 4..8 | the four clear bytes after the CI, as sent (byte 5: battery life in half years, bits 0..4) |
/// | 8 | check byte 0x4B |
/// | 9..13 | total volume, litres, u32 LE |
/// | 13..17 | volume at the end of the last month, litres, u32 LE (longer frames only) |
/// | 17..19 | the date of that value, EN 13757-3 type G (longer frames only) |
///
/// Bytes after these are passed through descrambled, as the meter sent them.
pub fn prios(input: &StepInput<'_>) -> Result<Vec<u8>, StepError> {
    let too_short = || StepError::TooShort {
        step: PRIOS,
        len: input.data.len(),
        need: PRIOS_CLEAR + 1,
    };
    let [ci, c1, c2, c3, c4]: [u8; PRIOS_CLEAR] = input
        .bytes(PRIOS, 0, PRIOS_CLEAR)?
        .try_into()
        .map_err(|_| too_short())?;
    // At least the check byte must follow the clear bytes.
    let scrambled = input
        .data
        .get(PRIOS_CLEAR..)
        .filter(|s| !s.is_empty())
        .ok_or_else(too_short)?;
    // The register starts from the key folded with the link header (as transmitted,
    // before the address swapping some Diehl meters need) and CI + the first three
    // clear bytes; only the first half of a configured 16-byte key takes part.
    let header = header_words(input.link, [ci, c1, c2, c3]);
    let descrambled = seeds(input.key)
        .find_map(|s| descramble(s, header, scrambled))
        .ok_or_else(|| StepError::Invalid {
            step: PRIOS,
            offset: PRIOS_CLEAR,
            reason: format!(
                "no key descrambles the payload (check byte 0x{PRIOS_CHECK:02X} not found)"
            ),
        })?;
    // Low nibble n of the first clear byte: one transmission every 2^(n+2) seconds.
    let period_s: u32 = 1 << (u32::from(c1 & 0x0F) + 2);
    let mut out = Vec::with_capacity(PRIOS_DESCRAMBLED_AT + descrambled.len());
    out.extend_from_slice(&period_s.to_le_bytes());
    out.extend_from_slice(&[c1, c2, c3, c4]);
    out.extend_from_slice(&descrambled);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::steps::test_input;
    use crate::keys::Key;

    /// Splits a wireless frame (L-field first, no CRCs) into the link fields and the
    /// manufacturer data from the CI on.
    fn split(hex_frame: &str) -> ([u8; 9], Vec<u8>) {
        let bytes = hex::decode(hex_frame).unwrap();
        let mut link = [0u8; 9];
        link.copy_from_slice(&bytes[1..10]);
        (link, bytes[10..].to_vec())
    }

    fn run(hex_frame: &str, key: Option<&Key>) -> Result<Vec<u8>, StepError> {
        let (link, data) = split(hex_frame);
        prios(&StepInput {
            ci: data[0],
            link: &link,
            key,
            data: &data,
        })
    }

    fn u32_at(out: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(out[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn lfsr_seed_folds_the_key_halves() {
        assert_eq!(seed(&PRIOS_DEFAULT_KEYS[0]), 0xDFD1_09E8);
        assert_eq!(seed(&PRIOS_DEFAULT_KEYS[1]), 0xB71F_0AE8);
    }

    #[test]
    fn lfsr_feedback_taps_are_bits_1_2_11_31() {
        // Register values after eight shifts, worked out bit by bit.
        for (start, after) in [(0x8000_0000u32, 0xB9u32), (0x2, 0x2E5), (0x800, 0x8_00B9)] {
            let mut s = start;
            let byte = lfsr_next(&mut s);
            assert_eq!(s, after, "{start:#x}");
            assert_eq!(u32::from(byte), after & 0xFF);
        }
    }

    #[test]
    fn sap_frame_with_billing_value_descrambles_with_the_default_key() {
        // SAP, CI 0xA2: 3.488 m3 total, 3.486 m3 at 2019-09-30, 14.5 years, 8 s.
        let out = run("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC", None).unwrap();
        assert_eq!(u32_at(&out, 0), 8);
        assert_eq!(&out[4..8], &[0x01, 0x3D, 0x40, 0x13]);
        assert_eq!(out[5] & 0x1F, 29); // half years
        assert_eq!(out[8], PRIOS_CHECK);
        assert_eq!(u32_at(&out, 9), 3488);
        assert_eq!(u32_at(&out, 13), 3486);
        assert_eq!(
            crate::wire::apl::type_g([out[17], out[18]]).to_string(),
            "2019-09-30"
        );
    }

    #[test]
    fn dme_frame_with_swapped_address_descrambles() {
        // DME, CI 0xA2, A field sent with the id after version and type: 16.76 m3.
        let out = run(
            "2944A511780729662366A20118001378D3B3DB8CEDD77731F25832AAF3DA8CADF9774EA673172E8C61F2",
            None,
        )
        .unwrap();
        assert_eq!(u32_at(&out, 9), 16760);
        assert_eq!(u32_at(&out, 13), 11840);
        assert_eq!(out[5] & 0x1F, 24);
    }

    #[test]
    fn short_a0_frame_has_the_total_only() {
        let out = run("1344304CF3628920BC01A0712F03130CEB627A81", None).unwrap();
        assert_eq!(out.len(), PRIOS_DESCRAMBLED_AT + 5);
        assert_eq!(u32_at(&out, 9), 1_248_146);
        assert_eq!(u32_at(&out, 0), 8);
    }

    #[test]
    fn a1_and_a3_frames_and_the_longer_period() {
        // DME on CI 0xA1: 4.366 m3, nothing last month, 2020-12-31.
        let out = run("1944A511780779194820A121170013355F8EDB2D03C6912B1E37", None).unwrap();
        assert_eq!(u32_at(&out, 9), 4366);
        assert_eq!(u32_at(&out, 13), 0);
        // SAP on CI 0xA3, transmit period nibble 3: 32 s.
        let out = run("1944304C9C5824210C04A363140013716577EC59E8663AB0D31C", None).unwrap();
        assert_eq!(u32_at(&out, 0), 32);
        assert_eq!(u32_at(&out, 9), 38944);
    }

    #[test]
    fn a_configured_key_is_tried_before_the_factory_keys() {
        const HYD: &str = "19442423860775035048A251520015BEB6B2E1ED623A18FC74A5";
        // A wrong own key does not stop the factory keys from opening the frame.
        let wrong = Key::new(&[0x11; 16]);
        assert_eq!(u32_at(&run(HYD, Some(&wrong)).unwrap(), 9), 521_602);
        // Exactly one factory key opens it; given as the meter's own key (first half of
        // the 16 bytes), it opens the frame too.
        let (link, data) = split(HYD);
        let header = [
            u32::from_be_bytes(link[1..5].try_into().unwrap()),
            u32::from_be_bytes(link[5..9].try_into().unwrap()),
            u32::from_be_bytes(data[0..4].try_into().unwrap()),
        ];
        let opening: Vec<&[u8; 8]> = PRIOS_DEFAULT_KEYS
            .iter()
            .filter(|k| descramble(seed(k), header, &data[PRIOS_CLEAR..]).is_some())
            .collect();
        assert_eq!(opening.len(), 1);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(opening[0]);
        assert_eq!(
            u32_at(&run(HYD, Some(&Key::new(&raw))).unwrap(), 13),
            519_147
        );
    }

    #[test]
    fn a_corrupted_payload_fails_at_the_check_byte() {
        // The first scrambled byte carries the check value: flip one of its bits.
        let (link, mut data) = split("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC");
        data[PRIOS_CLEAR] ^= 0x01;
        let err = prios(&test_input(0xA2, &link, &data)).unwrap_err();
        assert!(matches!(
            err,
            StepError::Invalid {
                step: PRIOS,
                offset: PRIOS_CLEAR,
                ..
            }
        ));
    }

    /// A Diehl SND_NR link header (HYD water meter 0x07, version 0x8B) as transmitted:
    /// A = version, type, then the identification.
    const REAL_DATA_LINK: [u8; 9] = [0x44, 0x24, 0x23, 0x8B, 0x07, 0x78, 0x56, 0x34, 0x12];

    #[test]
    fn real_data_round_trips_with_each_factory_key_and_an_own_key() {
        let plain = hex::decode("0413A0860100426C9F2C4413881300002F2F").unwrap();
        let tpl4 = [0x7A, 0x15, 0x00, 0x00];
        let mut own = [0u8; 16];
        own[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let own_key = Key::new(&own);
        for (key, configured) in [
            (PRIOS_DEFAULT_KEYS[0], None),
            (PRIOS_DEFAULT_KEYS[1], None),
            ([1, 2, 3, 4, 5, 6, 7, 8], Some(&own_key)),
        ] {
            let mut payload = plain.clone();
            let cfg_hi = scramble_real_data(&REAL_DATA_LINK, tpl4, &key, &mut payload);
            assert_ne!(payload, plain);
            assert_eq!(cfg_hi & 0x10, 0x10, "the real-data bit");
            let tpl = [tpl4[0], tpl4[1], tpl4[2], tpl4[3], cfg_hi];
            assert!(open_real_data(
                &REAL_DATA_LINK,
                tpl,
                configured,
                &mut payload
            ));
            assert_eq!(payload, plain);
        }
    }

    #[test]
    fn real_data_with_a_wrong_checksum_stays_untouched() {
        let plain = hex::decode("0413A0860100").unwrap();
        let tpl4 = [0x7A, 0x15, 0x00, 0x00];
        let mut payload = plain.clone();
        // Scrambled with a key nobody configured: neither factory key opens it.
        let cfg_hi = scramble_real_data(&REAL_DATA_LINK, tpl4, &[9; 8], &mut payload);
        let scrambled = payload.clone();
        let tpl = [0x7A, 0x15, 0x00, 0x00, cfg_hi];
        // (A factory key may match the 7-bit checksum by chance; this input does not.)
        assert!(!open_real_data(&REAL_DATA_LINK, tpl, None, &mut payload));
        assert_eq!(payload, scrambled);
    }

    #[test]
    fn real_data_is_diehl_short_header_with_cfg_bit_12() {
        let hyd = Some(*b"HYD");
        assert!(is_real_data(hyd, 0x44, 0x7A, 0x1000));
        assert!(is_real_data(Some(*b"SPL"), 0x46, 0x7A, 0x1F05));
        assert!(!is_real_data(hyd, 0x44, 0x7A, 0x0500), "mode 5 is OMS");
        assert!(!is_real_data(hyd, 0x44, 0x72, 0x1000), "long header");
        assert!(!is_real_data(hyd, 0x08, 0x7A, 0x1000), "not SND_NR/SND_IR");
        assert!(
            !is_real_data(Some(*b"KAM"), 0x44, 0x7A, 0x1000),
            "not Diehl"
        );
        assert_eq!(
            swapped_address([0x8B, 0x07, 0x78, 0x56, 0x34, 0x12]),
            ([0x78, 0x56, 0x34, 0x12], 0x8B, 0x07)
        );
    }

    #[test]
    fn truncated_payloads_are_reported_not_indexed() {
        let (link, data) = split("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC");
        for len in 0..=PRIOS_CLEAR {
            let err = prios(&test_input(0xA2, &link, &data[..len])).unwrap_err();
            assert!(matches!(err, StepError::TooShort { .. }), "{len}: {err}");
        }
    }
}
