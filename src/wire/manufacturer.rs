//! M-field: the three-letter manufacturer ("FLAG") code packed into 15 bits (protocol.md §1.5).
//!
//! Each letter A..Z maps to 1..26 and takes five bits, first letter highest. Bit 15 is not
//! part of the code; some meters set it, so it is masked for display and lookup, while the
//! raw value is kept because IVs and KDF inputs use the bytes exactly as sent.

use std::fmt;

/// Bit 15 is outside the letter code.
const CODE_MASK: u16 = 0x7FFF;

/// A manufacturer field as received (little-endian u16 on air).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Manufacturer(pub u16);

impl Manufacturer {
    /// Builds the M-field for a three-letter code such as `"KAM"` (case-insensitive).
    /// Returns `None` unless the code is exactly three ASCII letters.
    pub fn from_code(code: &str) -> Option<Manufacturer> {
        let bytes = code.as_bytes();
        let [a, b, c] = <[u8; 3]>::try_from(bytes).ok()?;
        let value = |ch: u8| -> Option<u16> {
            let up = ch.to_ascii_uppercase();
            up.is_ascii_uppercase().then(|| u16::from(up - b'@'))
        };
        Some(Manufacturer(
            (value(a)? << 10) | (value(b)? << 5) | value(c)?,
        ))
    }

    /// Reads the two on-air bytes (little-endian).
    pub fn from_le_bytes(bytes: [u8; 2]) -> Manufacturer {
        Manufacturer(u16::from_le_bytes(bytes))
    }

    /// The value as received, bit 15 included.
    pub fn raw(self) -> u16 {
        self.0
    }

    /// The value with bit 15 cleared, used to compare and look up manufacturers.
    pub fn masked(self) -> u16 {
        self.0 & CODE_MASK
    }

    /// The three letters in ASCII, or `None` if any five-bit group is outside 1..=26.
    pub fn letters(self) -> Option<[u8; 3]> {
        let m = self.masked();
        let letter = |shift: u16| -> Option<u8> {
            let v = ((m >> shift) & 0x1F) as u8;
            (1..=26).contains(&v).then_some(b'@' + v)
        };
        Some([letter(10)?, letter(5)?, letter(0)?])
    }

    /// The three-letter code, e.g. `"KAM"`, or `None` when the field holds no valid letters.
    pub fn code(self) -> Option<String> {
        self.letters()
            .map(|l| l.iter().map(|&b| char::from(b)).collect())
    }
}

impl fmt::Display for Manufacturer {
    /// The letter code, or `0xNNNN` (raw value) when the field is not a valid code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.letters() {
            Some([a, b, c]) => write!(f, "{}{}{}", char::from(a), char::from(b), char::from(c)),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

impl From<u16> for Manufacturer {
    fn from(raw: u16) -> Self {
        Manufacturer(raw)
    }
}

/// Framing facts of Diehl's meter group, which the link and transport layers need to
/// name the meter; the descrambling itself is a driver step.
pub mod diehl {
    /// Manufacturer codes (three letters) of meters following Diehl's conventions.
    const DIEHL_MANUFACTURERS: [&[u8; 3]; 5] = [b"DME", b"EWT", b"HYD", b"SAP", b"SPL"];

    /// CFG bit 12 ("real data") of a Diehl meter's short-header frame.
    pub const REAL_DATA_BIT: u16 = 0x1000;

    /// True for a manufacturer code of Diehl's group (DME, EWT, HYD, SAP, SPL).
    pub fn is_diehl(letters: Option<[u8; 3]>) -> bool {
        letters.is_some_and(|l| DIEHL_MANUFACTURERS.contains(&&l))
    }

    /// True when a frame of this manufacturer, C field, CI and TPL configuration field is
    /// Diehl "real data": SND_NR or SND_IR, short TPL header, CFG bit 12 set.
    pub fn is_real_data(letters: Option<[u8; 3]>, control: u8, ci: u8, config: u16) -> bool {
        is_diehl(letters)
            && matches!(control, 0x44 | 0x46)
            && ci == 0x7A
            && config & REAL_DATA_BIT != 0
    }

    /// The meter address of a Diehl frame that sends its A field as version, device type,
    /// then the identification bytes: `(id, version, device type)` from the six A bytes as
    /// transmitted (`a` = what a standard reading takes as id[0..4], version, type).
    pub fn swapped_address(a: [u8; 6]) -> ([u8; 4], u8, u8) {
        let [v, t, i0, i1, i2, i3] = a;
        ([i0, i1, i2, i3], v, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_of_section_1_5() {
        let table: [(&str, u16, [u8; 2]); 6] = [
            ("KAM", 0x2C2D, [0x2D, 0x2C]),
            ("ELS", 0x1593, [0x93, 0x15]),
            ("APA", 0x0601, [0x01, 0x06]),
            ("EFE", 0x14C5, [0xC5, 0x14]),
            ("SON", 0x4DEE, [0xEE, 0x4D]),
            ("AMB", 0x05A2, [0xA2, 0x05]),
        ];
        for (code, value, on_air) in table {
            assert_eq!(
                Manufacturer::from_code(code),
                Some(Manufacturer(value)),
                "{code}"
            );
            let m = Manufacturer::from_le_bytes(on_air);
            assert_eq!(m.raw(), value);
            assert_eq!(m.code().as_deref(), Some(code));
            assert_eq!(m.to_string(), code);
        }
    }

    #[test]
    fn range_ends() {
        assert_eq!(Manufacturer::from_code("AAA"), Some(Manufacturer(0x0421)));
        assert_eq!(Manufacturer::from_code("zzz"), Some(Manufacturer(0x6B5A)));
    }

    #[test]
    fn bit_15_is_masked_for_the_code_but_kept_raw() {
        let m = Manufacturer(0x2C2D | 0x8000);
        assert_eq!(m.code().as_deref(), Some("KAM"));
        assert_eq!(m.raw(), 0xAC2D);
        assert_eq!(m.masked(), 0x2C2D);
    }

    #[test]
    fn invalid_letters_print_as_hex() {
        assert_eq!(Manufacturer(0x0000).code(), None);
        assert_eq!(Manufacturer(0x0000).to_string(), "0x0000");
        assert_eq!(Manufacturer(0x7FFF).to_string(), "0x7FFF");
        assert_eq!(Manufacturer::from_code("KA"), None);
        assert_eq!(Manufacturer::from_code("K1M"), None);
        assert_eq!(Manufacturer::from_code("KÄM"), None);
    }

    proptest! {
        #[test]
        fn code_round_trips(raw in any::<u16>()) {
            let m = Manufacturer(raw);
            if let Some(code) = m.code() {
                prop_assert_eq!(Manufacturer::from_code(&code), Some(Manufacturer(m.masked())));
            }
        }
    }
}
