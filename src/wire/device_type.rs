//! Device type ("medium") byte of the address (protocol.md §1.6), named for JSON output.

use std::borrow::Cow;

use super::manufacturer::Manufacturer;

/// Techem ("TCH") uses codes outside the standard table for its own meters.
const TECHEM: u16 = 0x5068;

/// snake_case name of a device type from the EN 13757-7 table, or `None` for reserved codes.
pub fn standard_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x00 => "other",
        0x01 => "oil",
        0x02 => "electricity",
        0x03 => "gas",
        0x04 => "heat",
        0x05 => "steam",
        0x06 => "warm_water",
        0x07 => "water",
        0x08 => "heat_cost_allocator",
        0x09 => "compressed_air",
        0x0A => "cooling_load_outlet",
        0x0B => "cooling_load_inlet",
        0x0C => "heat_inlet",
        0x0D => "heat_cooling_load",
        0x0E => "bus_system_component",
        0x0F => "unknown_medium",
        0x14 => "calorific_value",
        0x15 => "hot_water",
        0x16 => "cold_water",
        0x17 => "dual_register_water",
        0x18 => "pressure",
        0x19 => "ad_converter",
        0x1A => "smoke_detector",
        0x1B => "room_sensor",
        0x1C => "gas_detector",
        0x20 => "breaker",
        0x21 => "valve",
        0x25 => "customer_unit",
        0x28 => "waste_water",
        0x29 => "garbage",
        0x2A => "carbon_dioxide",
        0x31 => "communication_controller",
        0x32 => "unidirectional_repeater",
        0x33 => "bidirectional_repeater",
        0x36 => "radio_converter_system_side",
        0x37 => "radio_converter_meter_side",
        0x38 => "wired_adapter_meter_side",
        _ => return None,
    })
}

/// Manufacturer-specific codes outside the standard table (Techem only, per §1.6).
fn vendor_name(manufacturer: Manufacturer, code: u8) -> Option<&'static str> {
    if manufacturer.masked() != TECHEM {
        return None;
    }
    Some(match code {
        0x62 => "warm_water",
        0x72 => "cold_water",
        0x80 => "heat_cost_allocator",
        0x43 | 0xC3 => "heat",
        0xF0 => "smoke_detector",
        _ => return None,
    })
}

/// Name for JSON: vendor exceptions first, then the standard table, else `unknown_0xNN`.
pub fn name(manufacturer: Manufacturer, code: u8) -> Cow<'static, str> {
    match vendor_name(manufacturer, code).or_else(|| standard_name(code)) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("unknown_0x{code:02x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes() {
        let anyone = Manufacturer::from_code("KAM").unwrap_or(Manufacturer(0));
        assert_eq!(name(anyone, 0x03), "gas");
        assert_eq!(name(anyone, 0x07), "water");
        assert_eq!(name(anyone, 0x08), "heat_cost_allocator");
        assert_eq!(name(anyone, 0x16), "cold_water");
        assert_eq!(name(anyone, 0x15), "hot_water");
        assert_eq!(name(anyone, 0x1A), "smoke_detector");
        assert_eq!(name(anyone, 0x37), "radio_converter_meter_side");
    }

    #[test]
    fn reserved_codes_are_unknown() {
        assert_eq!(name(Manufacturer(0), 0x10), "unknown_0x10");
        assert_eq!(name(Manufacturer(0), 0xFF), "unknown_0xff");
        assert_eq!(standard_name(0x3F), None);
    }

    #[test]
    fn techem_exceptions_only_for_techem() {
        let tch = Manufacturer::from_code("TCH").unwrap_or(Manufacturer(0));
        assert_eq!(tch.raw(), TECHEM);
        assert_eq!(name(tch, 0x62), "warm_water");
        assert_eq!(name(tch, 0x72), "cold_water");
        assert_eq!(name(tch, 0x80), "heat_cost_allocator");
        assert_eq!(name(tch, 0x43), "heat");
        assert_eq!(name(tch, 0xC3), "heat");
        assert_eq!(name(tch, 0xF0), "smoke_detector");
        // Standard codes still apply to Techem.
        assert_eq!(name(tch, 0x07), "water");
        assert_eq!(name(Manufacturer(0x2C2D), 0x62), "unknown_0x62");
    }
}
