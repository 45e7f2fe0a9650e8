//! The two CRC-16 variants a wM-Bus receiver meets.
//!
//! * CRC-16/EN-13757 (poly 0x3D65, init 0, no reflection, xorout 0xFFFF): DLL block CRCs,
//!   the ELL payload CRC and compact-frame signatures (protocol.md §1.2).
//! * CRC-16/X-25 (poly 0x1021 reflected, init 0xFFFF, xorout 0xFFFF): the iM871A HCI
//!   framing (§6.1); kept here so the radio codecs do not grow their own copy.
//!
//! Both come from the `crc` crate's catalogue (CRC_16_EN_13757 and CRC_16_IBM_SDLC, the
//! catalogue's name for X-25); only the single-bit syndrome search below is our own.

use crc::{Crc, CRC_16_EN_13757, CRC_16_IBM_SDLC};

static EN13757: Crc<u16> = Crc::<u16>::new(&CRC_16_EN_13757);
static X25: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_SDLC);

/// Longest codeword (data and CRC) searched by [`en13757_single_bit_errors`]: a
/// format-B block of 128 bytes.
pub const SINGLE_BIT_MAX_LEN: usize = 128;

/// The multiplicative order of x modulo the EN 13757 polynomial: single-bit syndromes
/// repeat every 151 bits, so CRC-16/EN-13757 *locates* one flipped bit only in a codeword
/// of at most 18 bytes (a format-A block); in a longer one it still *detects* it, with
/// several candidate positions 151 bits apart.
pub const SYNDROME_PERIOD: usize = 151;

/// x^j mod the EN 13757 polynomial for j = 0, 1, …: the syndrome (computed CRC XOR stored
/// CRC) of one flipped bit `j` bits from the end of a codeword (j < 16: in the CRC itself).
fn syndromes() -> impl Iterator<Item = u16> {
    std::iter::successors(Some(1u16), |&r| {
        Some(if r & 0x8000 != 0 {
            (r << 1) ^ CRC_16_EN_13757.poly
        } else {
            r << 1
        })
    })
}

/// Every position where one flipped bit explains `syndrome` (computed CRC XOR stored CRC)
/// in a codeword of `len` bytes (data then its big-endian CRC), as `(byte offset, bit)`
/// with bit 0 the least significant, first byte first. Empty when no single-bit error
/// explains it or `len` exceeds [`SINGLE_BIT_MAX_LEN`].
pub fn en13757_single_bit_errors(syndrome: u16, len: usize) -> impl Iterator<Item = (usize, u8)> {
    let bits = if syndrome == 0 || len > SINGLE_BIT_MAX_LEN {
        0
    } else {
        len * 8
    };
    let found: Vec<(usize, u8)> = syndromes()
        .take(bits)
        .enumerate()
        .filter(|&(_, s)| s == syndrome)
        .map(|(j, _)| (len - 1 - j / 8, (j % 8) as u8))
        .collect();
    found.into_iter().rev()
}

/// CRC-16/EN-13757 of `data`. DLL block CRCs are sent big-endian, the ELL payload CRC and
/// compact-frame CRCs little-endian; this returns the value, callers pick the byte order.
pub fn crc16_en13757(data: &[u8]) -> u16 {
    EN13757.checksum(data)
}

/// CRC-16/EN-13757 over data that arrives in pieces (e.g. the headers of every record of
/// a frame, for compact-frame format signatures) without concatenating them first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Crc16En13757(u16);

impl Crc16En13757 {
    pub const fn new() -> Self {
        Crc16En13757(0)
    }

    #[must_use]
    pub fn update(self, data: &[u8]) -> Self {
        // Unreflected with zero init: the register is the finalized value before xorout.
        let mut digest = EN13757.digest_with_initial(self.0);
        digest.update(data);
        Crc16En13757(digest.finalize() ^ CRC_16_EN_13757.xorout)
    }

    pub fn finish(self) -> u16 {
        self.0 ^ CRC_16_EN_13757.xorout
    }
}

/// CRC-16/X-25 of `data` (iM871A HCI messages append it least significant byte first).
pub fn crc16_x25(data: &[u8]) -> u16 {
    X25.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bit-at-a-time form exactly as written in protocol.md §1.2, as an oracle for the crate.
    fn en13757_bitwise(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x3D65
                } else {
                    crc << 1
                };
            }
        }
        crc ^ 0xFFFF
    }

    #[test]
    fn incremental_equals_one_shot() {
        let whole = crc16_en13757(b"123456789");
        let pieces = Crc16En13757::new()
            .update(b"1234")
            .update(b"")
            .update(b"56789");
        assert_eq!(pieces.finish(), whole);
    }

    #[test]
    fn en13757_check_value() {
        assert_eq!(crc16_en13757(b"123456789"), 0xC2B7);
    }

    #[test]
    fn en13757_listed_vectors() {
        assert_eq!(crc16_en13757(&[0x01, 0xFD, 0x1F, 0x01]), 0xCC22);
        assert_eq!(crc16_en13757(&[0x01, 0xFD, 0x1F, 0x00]), 0xF147);
        assert_eq!(
            crc16_en13757(&[0xEE, 0x44, 0x9A, 0xCE, 0x01, 0x00, 0x00, 0x80, 0x23, 0x07]),
            0xAABC
        );
        // First block of the Sontex format-A frame (§1.2): CRC 0x811D.
        assert_eq!(
            crc16_en13757(&[0x34, 0x44, 0xEE, 0x4D, 0x81, 0x39, 0x29, 0x27, 0x16, 0x08]),
            0x811D
        );
    }

    #[test]
    fn single_bit_syndromes_repeat_every_151_bits() {
        // Distinct within one period (so unique in an 18-byte format-A block), then
        // repeating: a 128-byte block has up to 7 candidates per syndrome.
        #[allow(non_snake_case)]
        let SYNDROMES: Vec<u16> = syndromes().take(SINGLE_BIT_MAX_LEN * 8).collect();
        let period = &SYNDROMES[..SYNDROME_PERIOD];
        let distinct: std::collections::HashSet<u16> = period.iter().copied().collect();
        assert_eq!(distinct.len(), SYNDROME_PERIOD);
        assert!(!distinct.contains(&0));
        assert_eq!(SYNDROMES[SYNDROME_PERIOD], SYNDROMES[0]);
        let all: std::collections::HashSet<u16> = SYNDROMES.iter().copied().collect();
        assert_eq!(all, distinct);
    }

    #[test]
    fn every_single_bit_error_of_a_block_is_among_the_candidates() {
        for len in [3usize, 12, 18, 47, 128] {
            let mut block: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
            let crc = crc16_en13757(&block[..len - 2]);
            block[len - 2..].copy_from_slice(&crc.to_be_bytes());
            for at in 0..len {
                for bit in 0..8u8 {
                    let mut bad = block.clone();
                    bad[at] ^= 1 << bit;
                    let stored = u16::from_be_bytes([bad[len - 2], bad[len - 1]]);
                    let syndrome = crc16_en13757(&bad[..len - 2]) ^ stored;
                    let found: Vec<_> = en13757_single_bit_errors(syndrome, len).collect();
                    assert!(found.contains(&(at, bit)), "{len} {at} {bit}");
                    assert_eq!(
                        found.len(),
                        (len * 8).div_ceil(SYNDROME_PERIOD).min(found.len())
                    );
                    if len <= 18 {
                        assert_eq!(found, [(at, bit)]);
                    }
                }
            }
        }
        assert_eq!(en13757_single_bit_errors(0, 40).count(), 0);
        assert_eq!(en13757_single_bit_errors(1, 129).count(), 0);
    }

    #[test]
    fn en13757_empty_is_xorout() {
        assert_eq!(crc16_en13757(&[]), 0xFFFF);
    }

    #[test]
    fn x25_check_value() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
    }

    #[test]
    fn x25_im871a_vectors() {
        // §6.1: CRC over control/endpoint byte .. last payload byte (SOF excluded).
        assert_eq!(
            crc16_x25(&[0x81, 0x03, 0x06, 0x00, 0x03, 0x00, 0x06, 0x08, 0x00]),
            0xEF05
        );
        assert_eq!(crc16_x25(&[0x81, 0x04, 0x00]), 0xF79C);
        assert_eq!(
            crc16_x25(&[0x81, 0x03, 0x06, 0x00, 0x02, 0x03, 0x30, 0x01, 0x00]),
            0x46E3
        );
    }

    proptest! {
        #[test]
        fn en13757_crate_matches_bitwise(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(crc16_en13757(&data), en13757_bitwise(&data));
        }
    }
}
