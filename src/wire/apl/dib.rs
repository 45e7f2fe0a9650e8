//! Data information block: DIF and DIFEs (EN 13757-3, protocol.md §5.2–5.3).

/// Extension bit of every DIF/DIFE/VIF/VIFE: another extension byte follows.
pub(crate) const EXTENSION: u8 = 0x80;

/// At most ten DIFEs (and ten VIFEs) per record; more is a malformed record.
pub const MAX_EXTENSIONS: usize = 10;

/// Function field, DIF bits 5..4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Instantaneous,
    Maximum,
    Minimum,
    /// Value during error state.
    Error,
}

impl Function {
    pub fn from_dif(dif: u8) -> Function {
        match (dif >> 4) & 0x03 {
            0 => Function::Instantaneous,
            1 => Function::Maximum,
            2 => Function::Minimum,
            _ => Function::Error,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            Function::Instantaneous => 0x00,
            Function::Maximum => 0x10,
            Function::Minimum => 0x20,
            Function::Error => 0x30,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Instantaneous => "instantaneous",
            Function::Maximum => "maximum",
            Function::Minimum => "minimum",
            Function::Error => "error",
        }
    }
}

/// Data field, DIF bits 3..0: length and coding of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataField {
    /// 0x0: no data.
    NoData,
    /// 0x1, 0x2, 0x3, 0x4, 0x6, 0x7: little-endian integer of this many bytes.
    Integer(u8),
    /// 0x5: IEEE 754 single precision (type H).
    Real32,
    /// 0x8: selection for readout (requests only, no data).
    Selection,
    /// 0x9, 0xA, 0xB, 0xC, 0xE: BCD (type A) of this many bytes (two digits each).
    Bcd(u8),
    /// 0xD: variable length, first data byte is the LVAR.
    Variable,
}

impl DataField {
    /// Data field of a DIF; `None` for 0xF (special functions).
    pub fn from_dif(dif: u8) -> Option<DataField> {
        Some(match dif & 0x0F {
            0x0 => DataField::NoData,
            0x1 => DataField::Integer(1),
            0x2 => DataField::Integer(2),
            0x3 => DataField::Integer(3),
            0x4 => DataField::Integer(4),
            0x5 => DataField::Real32,
            0x6 => DataField::Integer(6),
            0x7 => DataField::Integer(8),
            0x8 => DataField::Selection,
            0x9 => DataField::Bcd(1),
            0xA => DataField::Bcd(2),
            0xB => DataField::Bcd(3),
            0xC => DataField::Bcd(4),
            0xD => DataField::Variable,
            0xE => DataField::Bcd(6),
            _ => return None,
        })
    }

    /// The DIF bits 3..0; `None` for lengths the DIF cannot express.
    pub fn bits(self) -> Option<u8> {
        Some(match self {
            DataField::NoData => 0x0,
            DataField::Integer(1) => 0x1,
            DataField::Integer(2) => 0x2,
            DataField::Integer(3) => 0x3,
            DataField::Integer(4) => 0x4,
            DataField::Real32 => 0x5,
            DataField::Integer(6) => 0x6,
            DataField::Integer(8) => 0x7,
            DataField::Selection => 0x8,
            DataField::Bcd(1) => 0x9,
            DataField::Bcd(2) => 0xA,
            DataField::Bcd(3) => 0xB,
            DataField::Bcd(4) => 0xC,
            DataField::Variable => 0xD,
            DataField::Bcd(6) => 0xE,
            _ => return None,
        })
    }

    /// Fixed data length in bytes; `None` for LVAR.
    pub fn data_len(self) -> Option<usize> {
        match self {
            DataField::NoData | DataField::Selection => Some(0),
            DataField::Integer(n) | DataField::Bcd(n) => Some(usize::from(n)),
            DataField::Real32 => Some(4),
            DataField::Variable => None,
        }
    }
}

/// Decoded DIB. `difes` keeps the number of DIFEs seen so that emitting reproduces
/// encodings with more DIFEs than the values need (e.g. `C4 00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dib {
    pub function: Function,
    pub storage: u64,
    pub tariff: u32,
    pub subunit: u32,
    pub data_field: DataField,
    pub difes: u8,
}

impl Dib {
    /// Instantaneous value, storage/tariff/subunit 0.
    pub fn new(data_field: DataField) -> Self {
        Dib {
            function: Function::Instantaneous,
            storage: 0,
            tariff: 0,
            subunit: 0,
            data_field,
            difes: 0,
        }
    }

    /// Decodes DIF and DIFEs. `bytes` must be exactly the DIB (the caller found its end
    /// by the extension bits); `None` if the DIF is a special function (data field 0xF).
    pub fn decode(bytes: &[u8]) -> Option<Dib> {
        let (&dif, difes) = bytes.split_first()?;
        let data_field = DataField::from_dif(dif)?;
        let mut storage = u64::from((dif >> 6) & 1);
        let mut tariff = 0u32;
        let mut subunit = 0u32;
        // DIFE n contributes storage bits 1+4n.., tariff bits 2n.., subunit bit n.
        for (n, &dife) in difes.iter().enumerate().take(MAX_EXTENSIONS) {
            let n32 = n as u32;
            storage |= u64::from(dife & 0x0F) << (1 + 4 * n32);
            tariff |= u32::from((dife >> 4) & 0x03) << (2 * n32);
            subunit |= u32::from((dife >> 6) & 0x01) << n32;
        }
        Some(Dib {
            function: Function::from_dif(dif),
            storage,
            tariff,
            subunit,
            data_field,
            difes: difes.len().min(MAX_EXTENSIONS) as u8,
        })
    }

    /// Number of DIFEs needed to carry storage, tariff and subunit.
    pub fn difes_needed(&self) -> usize {
        let bits = |v: u64| 64 - v.leading_zeros() as usize;
        let storage = bits(self.storage >> 1).div_ceil(4);
        let tariff = bits(self.tariff.into()).div_ceil(2);
        let subunit = bits(self.subunit.into());
        storage.max(tariff).max(subunit)
    }

    /// Appends DIF and DIFEs. Returns `false` (and writes nothing) when the values do not
    /// fit ten DIFEs or the data field has no DIF code.
    pub fn emit(&self, out: &mut Vec<u8>) -> bool {
        let Some(field) = self.data_field.bits() else {
            return false;
        };
        let count = self.difes_needed().max(usize::from(self.difes));
        if count > MAX_EXTENSIONS {
            return false;
        }
        let mut dif = field | self.function.bits() | (((self.storage & 1) as u8) << 6);
        if count > 0 {
            dif |= EXTENSION;
        }
        out.push(dif);
        for n in 0..count {
            let storage = ((self.storage >> (1 + 4 * n)) & 0x0F) as u8;
            let tariff = ((self.tariff >> (2 * n)) & 0x03) as u8;
            let subunit = ((self.subunit >> n) & 0x01) as u8;
            let mut dife = storage | (tariff << 4) | (subunit << 6);
            if n + 1 < count {
                dife |= EXTENSION;
            }
            out.push(dife);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dib(bytes: &[u8]) -> Dib {
        Dib::decode(bytes).unwrap()
    }

    #[test]
    fn storage_examples_from_protocol() {
        assert_eq!(dib(&[0x44]).storage, 1);
        assert_eq!(dib(&[0x84, 0x01]).storage, 2);
        assert_eq!(dib(&[0x84, 0x0F]).storage, 30);
        assert_eq!(dib(&[0xC4, 0x00]).storage, 1);
        let d = dib(&[0x84, 0x10]);
        assert_eq!((d.tariff, d.storage), (1, 0));
        assert_eq!(dib(&[0x81, 0x03]).storage, 6);
    }

    #[test]
    fn subunit_and_multi_dife_accumulation() {
        // DIFE 1: subunit 1, tariff 2, storage 0x3; DIFE 2: subunit 1, tariff 1, storage 0x1.
        let d = dib(&[0x04, 0xE3, 0x51]);
        assert_eq!(d.subunit, 0b11);
        assert_eq!(d.tariff, 0b0110);
        assert_eq!(d.storage, (0x3 << 1) | (0x1 << 5));
    }

    #[test]
    fn function_and_field() {
        let d = dib(&[0x3C]);
        assert_eq!(d.function, Function::Error);
        assert_eq!(d.data_field, DataField::Bcd(4));
        assert!(Dib::decode(&[0x0F]).is_none());
    }

    #[test]
    fn emit_reproduces_protocol_examples() {
        for bytes in [
            &[0x44][..],
            &[0x84, 0x01],
            &[0x84, 0x0F],
            &[0xC4, 0x00],
            &[0x84, 0x10],
            &[0x81, 0x03],
        ] {
            let mut out = Vec::new();
            assert!(dib(bytes).emit(&mut out));
            assert_eq!(out, bytes);
        }
    }
}
