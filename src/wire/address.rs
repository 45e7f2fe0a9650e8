//! The meter address (EN 13757-4 §1.3 / EN 13757-7 §7.5): manufacturer, identification
//! number, version and device type. The link header sends it as M, ID, version, type;
//! a long TPL header sends the same four fields as ID, M, version, type. One type for
//! both, with the byte order chosen at parse and emit.

use super::manufacturer::Manufacturer;
use super::reader::Reader;
use super::{Layer, Result};

/// Byte offsets of the fields, in each of the two orders the address is sent in.
pub mod field {
    use core::ops::Range;

    /// Link-header order (after L and C): M, ID, version, device type.
    pub mod link {
        use super::Range;
        pub const MANUFACTURER: Range<usize> = 0..2;
        pub const ID: Range<usize> = 2..6;
        pub const VERSION: usize = 6;
        pub const DEVICE_TYPE: usize = 7;
    }

    /// Long TPL header order: ID, M, version, device type.
    pub mod long {
        use super::Range;
        pub const ID: Range<usize> = 0..4;
        pub const MANUFACTURER: Range<usize> = 4..6;
        pub const VERSION: usize = 6;
        pub const DEVICE_TYPE: usize = 7;
    }
}

/// A meter's identity, from the link header or from a long TPL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// Identification number in on-air order (LE BCD): ID 12345678 is
    /// `[0x78, 0x56, 0x34, 0x12]`.
    pub id: [u8; 4],
    /// M-field as received, bit 15 kept.
    pub manufacturer: u16,
    pub version: u8,
    pub device_type: u8,
}

impl Address {
    /// Bytes of the address in either order.
    pub const LEN: usize = 8;

    /// The address from its 8 bytes in link-header order (M, ID, version, type).
    pub const fn from_link_bytes(b: [u8; 8]) -> Address {
        let [m0, m1, i0, i1, i2, i3, version, device_type] = b;
        Address {
            id: [i0, i1, i2, i3],
            manufacturer: u16::from_le_bytes([m0, m1]),
            version,
            device_type,
        }
    }

    /// The address from its 8 bytes in long-header order (ID, M, version, type).
    pub const fn from_long_bytes(b: [u8; 8]) -> Address {
        let [i0, i1, i2, i3, m0, m1, version, device_type] = b;
        Address {
            id: [i0, i1, i2, i3],
            manufacturer: u16::from_le_bytes([m0, m1]),
            version,
            device_type,
        }
    }

    /// Parses the 8 address bytes of a long TPL header (ID first, then M).
    pub fn parse(data: &[u8]) -> Result<(Address, usize)> {
        let mut r = Reader::new(data, Layer::Tpl);
        Ok((Address::read_long(&mut r)?, Self::LEN))
    }

    /// Reads the address in long-header order from `r` (the TPL's reader).
    pub(crate) fn read_long(r: &mut Reader<'_>) -> Result<Address> {
        Ok(Address {
            id: r.array()?,
            manufacturer: r.u16_le()?,
            version: r.u8()?,
            device_type: r.u8()?,
        })
    }

    /// Appends the address in long-header order (ID, M, version, type).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.manufacturer.to_le_bytes());
        out.push(self.version);
        out.push(self.device_type);
    }

    /// Appends the address in link-header order (M, ID, version, type).
    pub fn emit_link(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.address_bytes());
    }

    pub fn manufacturer(&self) -> Manufacturer {
        Manufacturer(self.manufacturer)
    }

    /// The meter ID as printed everywhere: on-air bytes reversed, as hex digits ("12345678").
    pub fn id_string(&self) -> String {
        id_string(&self.id)
    }

    /// M ‖ ID ‖ version ‖ type in link-header order: the first 8 bytes of the mode-5 and
    /// ELL-CTR IVs, also when a long header sent ID before M (§3.1).
    pub fn address_bytes(&self) -> [u8; 8] {
        let [m0, m1] = self.manufacturer.to_le_bytes();
        let [i0, i1, i2, i3] = self.id;
        [m0, m1, i0, i1, i2, i3, self.version, self.device_type]
    }
}

/// Formats an on-air (LE) identification number as the 8 hex digits printed on the meter.
/// Non-BCD nibbles are kept as lower-case hex digits rather than rejected (§1.3).
pub fn id_string(id: &[u8; 4]) -> String {
    let [i0, i1, i2, i3] = *id;
    format!("{i3:02x}{i2:02x}{i1:02x}{i0:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAM: Address = Address {
        id: [0x78, 0x56, 0x34, 0x12],
        manufacturer: 0x2C2D,
        version: 0x1B,
        device_type: 0x16,
    };

    #[test]
    fn both_orders_round_trip_and_agree_with_the_field_offsets() {
        let mut long = Vec::new();
        KAM.emit(&mut long);
        assert_eq!(Address::parse(&long).unwrap(), (KAM, 8));
        assert_eq!(long.get(field::long::ID), Some(&KAM.id[..]));
        assert_eq!(long.get(field::long::MANUFACTURER), Some(&[0x2D, 0x2C][..]));
        let mut link = Vec::new();
        KAM.emit_link(&mut link);
        assert_eq!(link.get(field::link::ID), Some(&KAM.id[..]));
        assert_eq!(link.get(field::link::DEVICE_TYPE), Some(&0x16));
        let bytes: [u8; 8] = link.try_into().unwrap();
        assert_eq!(Address::from_link_bytes(bytes), KAM);
        assert_eq!(KAM.id_string(), "12345678");
        assert_eq!(KAM.manufacturer().code().as_deref(), Some("KAM"));
    }

    #[test]
    fn short_input_is_truncated_at_its_end() {
        let err = Address::parse(&[1, 2, 3]).unwrap_err();
        assert_eq!((err.layer, err.offset), (Layer::Tpl, 3));
        assert!(Address::parse(&[0; 8]).is_ok());
    }
}
