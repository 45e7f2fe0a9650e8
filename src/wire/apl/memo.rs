//! Record headers remembered by their bytes.

use super::{Meaning, RecordHeader, Result};

/// Parsed record headers (DIB, VIB and what the VIF means) by their bytes. A meter
/// sends the same DIF/VIF layout telegram after telegram; with a memo, decoding a
/// header and looking its VIF up in the tables runs once per distinct header.
///
/// A header is parsed byte by byte and ends where its own bytes say, so the same bytes
/// always give the same header: a remembered one is taken when the input starts with
/// its bytes, with no other condition. Memory is fixed: a small direct-mapped table,
/// where a header whose slot is taken replaces the one there.
#[derive(Debug)]
pub struct HeaderMemo {
    slots: Vec<Option<Entry>>,
}

#[derive(Debug)]
struct Entry {
    /// The header's bytes (`header.len` of them).
    bytes: [u8; MAX_HEADER],
    header: RecordHeader,
    meaning: Meaning,
}

impl Entry {
    /// True when `apl[start..]` begins with this header's bytes.
    fn starts(&self, apl: &[u8], start: usize) -> bool {
        let len = self.header.len;
        // Sixteen bytes as one word where the input has them (the usual case, all but
        // the last records): a masked compare instead of a `memcmp` call.
        if let Some(input) = apl
            .get(start..)
            .and_then(|rest| rest.first_chunk::<MAX_HEADER>())
        {
            let mask = u128::MAX
                .checked_shr(8 * MAX_HEADER.saturating_sub(len) as u32)
                .unwrap_or(0);
            return u128::from_le_bytes(*input) & mask == u128::from_le_bytes(self.bytes);
        }
        apl.get(start..start + len) == self.bytes.get(..len)
    }
}

/// Longer headers (many DIFEs/VIFEs, plain-text units) are parsed every time.
const MAX_HEADER: usize = 16;

/// A telegram has a dozen distinct headers at most, a building a few dozen.
const SLOTS: usize = 128;

impl Default for HeaderMemo {
    fn default() -> HeaderMemo {
        HeaderMemo {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

impl HeaderMemo {
    pub fn new() -> HeaderMemo {
        HeaderMemo::default()
    }

    /// The header starting at `apl[start]` with its meaning: remembered, or from
    /// `parse` (and then remembered).
    pub(super) fn header(
        &mut self,
        apl: &[u8],
        start: usize,
        parse: impl FnOnce(&[u8], usize) -> Result<(RecordHeader, Meaning)>,
    ) -> Result<(RecordHeader, Meaning)> {
        let index = slot(apl, start);
        if let Some(Some(entry)) = self.slots.get(index) {
            if entry.starts(apl, start) {
                return Ok((entry.header.clone(), entry.meaning));
            }
        }
        let (header, meaning) = parse(apl, start)?;
        let len = header.len;
        if let (Some(read), Some(slot)) = (
            apl.get(start..start + len).filter(|_| len <= MAX_HEADER),
            self.slots.get_mut(index),
        ) {
            let mut bytes = [0u8; MAX_HEADER];
            if let Some(prefix) = bytes.get_mut(..len) {
                prefix.copy_from_slice(read);
                *slot = Some(Entry {
                    bytes,
                    header: header.clone(),
                    meaning,
                });
            }
        }
        Ok((header, meaning))
    }
}

/// The slot of the header at `apl[start]`: a hash of its DIF, DIFEs, VIF and VIFEs as
/// far as their extension bits chain them (the data after them varies, so it must not
/// count), at most [`MAX_HEADER`] bytes.
fn slot(apl: &[u8], start: usize) -> usize {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    let mut in_vib = false;
    for &b in apl.iter().skip(start).take(MAX_HEADER) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        if b & 0x80 == 0 {
            if in_vib {
                break;
            }
            in_vib = true;
        }
    }
    (hash ^ hash >> 32) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::super::{parse_lenient, parse_lenient_in, HeaderMemo};

    /// Telegram after telegram through one memo, the records equal those parsed
    /// without one: headers that share a slot, differ in one DIFE or VIFE, carry
    /// plain-text units or are malformed included.
    #[test]
    fn remembered_headers_parse_like_fresh_ones() {
        let areas: [&[u8]; 7] = [
            // volume, volume storage 1, date, two FD-table records sharing DIF and VIF.
            &[
                0x04, 0x13, 1, 2, 3, 4, 0x44, 0x13, 5, 6, 7, 8, 0x42, 0x6C, 0x9F, 0x2C,
            ],
            &[0x02, 0xFD, 0x17, 0x00, 0x01, 0x02, 0xFD, 0x74, 0xDB, 0x15],
            // The same records, other values; storage 1 now by a DIFE.
            &[0x04, 0x13, 9, 9, 9, 9, 0x84, 0x01, 0x13, 5, 6, 7, 8],
            // VIFE chain, and a plain-text unit ("L" after its length byte).
            &[
                0x04, 0x93, 0x3C, 1, 0, 0, 0, 0x02, 0xFC, 0x01, b'L', 0x10, 0x00,
            ],
            // Manufacturer-specific VIF with VIFEs, then a truncated record.
            &[0x02, 0xFF, 0x20, 0x71, 0x00, 0x04, 0x13, 0x01],
            &[0x0C, 0x13, 0x78, 0x56, 0x34, 0x12, 0x2F, 0x2F],
            &[
                0x04, 0x13, 1, 2, 3, 4, 0x44, 0x13, 5, 6, 7, 8, 0x42, 0x6C, 0x9F, 0x2C,
            ],
        ];
        let mut memo = HeaderMemo::new();
        for round in 0..3 {
            for area in areas {
                let fresh = parse_lenient(area);
                let remembered = parse_lenient_in(area, Vec::new(), Some(&mut memo));
                assert_eq!(
                    remembered.records, fresh.records,
                    "round {round}: {area:02X?}"
                );
                assert_eq!(
                    remembered.unparsed.map(|u| u.offset),
                    fresh.unparsed.map(|u| u.offset)
                );
            }
        }
        assert!(memo.slots.iter().flatten().count() >= 8);
    }
}
