//! Value information block: VIF, extension tables FB/FD, combinable VIFEs
//! (EN 13757-3, protocol.md §5.4, §5.6–5.9).

use super::decimal::Decimal;
use super::dib::{DataField, EXTENSION, MAX_EXTENSIONS};

/// Quantity of a record whose VIF or VIFE has no assigned meaning (reserved codes).
pub const UNKNOWN: &str = "unknown";

/// Which table the VIF code is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VifTable {
    /// Primary VIF table (§5.4), including 0x7E "any VIF".
    Primary,
    /// VIF 0xFB, code in the next byte (§5.6).
    Fb,
    /// VIF 0xFD, code in the next byte (§5.7).
    Fd,
    /// VIF 0xFD, code 0xFD (0x7D with E), code in the byte after that (§5.7 "0x7D").
    FdSecondLevel,
    /// VIF 0xEF: reserved third extension table, code in the next byte.
    Ef,
    /// VIF 0x7C/0xFC: unit given as text (§5.9).
    PlainText,
    /// VIF 0x7F/0xFF: vendor-defined; the following VIFEs are vendor bytes.
    Manufacturer,
}

/// Combinable VIFE bytes as on air (E bits included), at most ten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vifes {
    bytes: [u8; MAX_EXTENSIONS],
    len: u8,
}

impl Vifes {
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Appends a VIFE; `false` when ten are already stored.
    pub fn push(&mut self, vife: u8) -> bool {
        match self.bytes.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = vife;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

impl FromIterator<u8> for Vifes {
    /// Keeps the first ten bytes.
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut v = Vifes::default();
        for b in iter {
            if !v.push(b) {
                break;
            }
        }
        v
    }
}

/// Decoded VIB.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Vib {
    pub table: VifTable,
    /// Code inside `table`, extension bit stripped (0x7C for plain text, 0x7F for
    /// manufacturer-specific).
    pub code: u8,
    /// VIFEs after the code: combinable (orthogonal) VIFEs, or vendor bytes when
    /// `table` is `Manufacturer`.
    pub vifes: Vifes,
    /// Plain-text unit (VIF 0x7C/0xFC), already put back in reading order.
    pub plain_text_unit: Option<String>,
}

impl Vib {
    pub fn new(table: VifTable, code: u8) -> Self {
        let code = match table {
            VifTable::PlainText => 0x7C,
            VifTable::Manufacturer => 0x7F,
            _ => code & 0x7F,
        };
        Vib {
            table,
            code,
            vifes: Vifes::default(),
            plain_text_unit: None,
        }
    }

    /// Primary-table VIF (`code` 0x00–0x7A, 0x7E).
    pub fn primary(code: u8) -> Self {
        Vib::new(VifTable::Primary, code)
    }

    pub fn fb(code: u8) -> Self {
        Vib::new(VifTable::Fb, code)
    }

    pub fn fd(code: u8) -> Self {
        Vib::new(VifTable::Fd, code)
    }

    /// Plain-text VIF with its unit in reading order.
    pub fn plain_text(unit: &str) -> Self {
        let mut v = Vib::new(VifTable::PlainText, 0x7C);
        v.plain_text_unit = Some(unit.to_owned());
        v
    }

    /// Adds a combinable VIFE (extension bit handled on emit).
    pub fn with_vife(mut self, vife: u8) -> Self {
        self.vifes.push(vife & 0x7F);
        self
    }

    /// Appends the VIB as on air (the plain-text unit after the VIFE chain).
    /// Returns `false` (having written nothing) if the VIB cannot be encoded.
    pub fn emit(&self, out: &mut Vec<u8>) -> bool {
        let more = |has: bool| if has { EXTENSION } else { 0 };
        let has_vifes = !self.vifes.is_empty();
        let text = self.plain_text_unit.as_deref().unwrap_or("");
        if text.len() > 0xBF || !text.chars().all(|c| u32::from(c) <= 0xFF) {
            return false;
        }
        let codes_after_vif = match self.table {
            VifTable::Fb | VifTable::Fd | VifTable::Ef => 1,
            VifTable::FdSecondLevel => 2,
            _ => 0,
        };
        if codes_after_vif + self.vifes.len() > MAX_EXTENSIONS {
            return false;
        }
        match self.table {
            VifTable::Primary => {
                let code = self.code & 0x7F;
                // 0xEF is the marker of the reserved third table, so 0x6F cannot
                // carry VIFEs; the other codes are markers themselves.
                // 0x7B / 0x7D are the FB / FD markers only with the extension bit.
                if matches!(code, 0x7C | 0x7F) || (matches!(code, 0x6F | 0x7B | 0x7D) && has_vifes)
                {
                    return false;
                }
                out.push((self.code & 0x7F) | more(has_vifes));
            }
            VifTable::PlainText => out.push(0x7C | more(has_vifes)),
            VifTable::Manufacturer => out.push(0x7F | more(has_vifes)),
            VifTable::Fb => out.extend([0xFB, (self.code & 0x7F) | more(has_vifes)]),
            VifTable::Fd => {
                // `FD FD` means the second-level table, so code 0x7D cannot carry VIFEs.
                if self.code & 0x7F == 0x7D && has_vifes {
                    return false;
                }
                out.extend([0xFD, (self.code & 0x7F) | more(has_vifes)]);
            }
            VifTable::FdSecondLevel => {
                out.extend([0xFD, 0xFD, (self.code & 0x7F) | more(has_vifes)]);
            }
            VifTable::Ef => out.extend([0xEF, (self.code & 0x7F) | more(has_vifes)]),
        }
        let vifes = self.vifes.as_slice();
        for (i, &v) in vifes.iter().enumerate() {
            out.push((v & 0x7F) | more(i + 1 < vifes.len()));
        }
        if self.table == VifTable::PlainText {
            out.push(text.len() as u8);
            out.extend(text.chars().rev().map(|c| u32::from(c) as u8));
        }
        true
    }

    /// Combinable VIFEs decoded (empty for manufacturer-specific VIFs, whose VIFEs are
    /// vendor-defined).
    pub fn combinables(&self) -> Combinables<'_> {
        Combinables {
            rest: if self.table == VifTable::Manufacturer {
                &[]
            } else {
                self.vifes.as_slice()
            },
            state: CombinableState::Normal,
            volume_flow: self.is_volume_flow(),
        }
    }

    /// Volume flow VIFs: primary 0x38..0x4F, FB 0x24..0x26 (gallons per minute/hour).
    fn is_volume_flow(&self) -> bool {
        match self.table {
            VifTable::Primary => (0x38..=0x4F).contains(&self.code),
            VifTable::Fb => (0x24..=0x26).contains(&self.code),
            _ => false,
        }
    }

    /// The first record error reported by a VIFE other than "none" (0x00).
    pub fn record_error(&self) -> Option<RecordError> {
        self.combinables().find_map(|c| match c {
            Combinable::RecordError(e) if e.code() != 0 => Some(e),
            _ => None,
        })
    }

    /// What the record means and how to scale its raw value, given its data field.
    pub fn meaning(&self, data_field: DataField) -> Meaning {
        let mut m = match self.table {
            VifTable::Primary => primary(self.code, data_field),
            VifTable::Fb => table_fb(self.code),
            VifTable::Fd => table_fd(self.code),
            VifTable::FdSecondLevel => table_fd_second(self.code),
            VifTable::Ef => Meaning::unitless(UNKNOWN, Kind::Unsigned),
            VifTable::PlainText => Meaning::unitless("plain_text", Kind::Signed),
            VifTable::Manufacturer => Meaning::unitless(
                "manufacturer_specific",
                if data_field == DataField::Variable {
                    Kind::Binary
                } else {
                    // EN 13757-3: integers (type B) are two's complement whatever the VIF.
                    Kind::Signed
                },
            ),
        };
        let base_scale = m.scale;
        for c in self.combinables() {
            match c {
                Combinable::Multiplicative(e) => {
                    m.scale = m.scale.scaled(e).unwrap_or(m.scale);
                }
                // The constant is 10^e in the unit of the VIF (before multiplicative
                // corrections), added to the scaled value.
                Combinable::Additive(e) => {
                    m.offset = base_scale.scaled(e);
                }
                Combinable::Date(_) => {
                    m.unit = None;
                    m.kind = Kind::DateTime;
                    m.scale = Decimal::from_int(1);
                }
                Combinable::Duration(_, unit) => {
                    m.unit = Some(unit.as_str());
                    m.kind = Kind::Unsigned;
                    m.scale = Decimal::from_int(1);
                }
                Combinable::Count(_) => {
                    m.unit = None;
                    m.kind = Kind::Unsigned;
                    m.scale = Decimal::from_int(1);
                }
                // History arrays with a spacing header: the record value stays binary,
                // `DataRecord::compact_profile` reads the elements (profile.rs).
                Combinable::Qualifier(
                    "compact_profile"
                    | "compact_profile_with_register_numbers"
                    | "inverse_compact_profile",
                ) => {
                    m.kind = Kind::Binary;
                }
                // A reserved VIFE may change the meaning in a way nobody defined yet:
                // the record is kept, but as an unknown quantity with its raw value.
                Combinable::Reserved(_) => {
                    return Meaning::unitless(UNKNOWN, Kind::Unsigned);
                }
                _ => {}
            }
        }
        m
    }
}

/// How the data of a record is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Measured value: two's complement (type B), most negative value = invalid.
    Signed,
    /// Identifiers, versions, counters (type C).
    Unsigned,
    /// Bit field (type D), e.g. error flags.
    Bits,
    /// Date and/or time: type G (2 bytes), J (3), F (4) or I (6), chosen by the data
    /// length (EN 13757-3 pairs VIF 0x6C with G and 0x6D with F/I/J; meters vary).
    DateTime,
    /// Opaque bytes: vendor LVAR data, compact profiles (EN 13757-3 Annex F).
    Binary,
}

/// Quantity, unit and scaling of a record. The decoded value is
/// `raw × scale + offset`, expressed in `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    /// snake_case quantity name; units outside the reading vocabulary are named here
    /// (e.g. `flow_temperature_fahrenheit`) and `unit` is `None`.
    pub quantity: &'static str,
    pub unit: Option<&'static str>,
    pub scale: Decimal,
    pub offset: Option<Decimal>,
    pub kind: Kind,
}

impl Meaning {
    const fn new(quantity: &'static str, unit: &'static str, exponent: i32) -> Self {
        Meaning {
            quantity,
            unit: Some(unit),
            scale: Decimal::new(1, exponent),
            offset: None,
            kind: Kind::Signed,
        }
    }

    const fn unitless(quantity: &'static str, kind: Kind) -> Self {
        Meaning {
            quantity,
            unit: None,
            scale: Decimal::new(1, 0),
            offset: None,
            kind,
        }
    }

    const fn exp(quantity: &'static str, exponent: i32) -> Self {
        Meaning {
            quantity,
            unit: None,
            scale: Decimal::new(1, exponent),
            offset: None,
            kind: Kind::Signed,
        }
    }

    const fn factor(quantity: &'static str, unit: &'static str, scale: Decimal) -> Self {
        Meaning {
            quantity,
            unit: Some(unit),
            scale,
            offset: None,
            kind: Kind::Signed,
        }
    }
}

/// Time unit selected by two `nn` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnit {
    pub fn from_nn(nn: u8) -> TimeUnit {
        match nn & 3 {
            0 => TimeUnit::Second,
            1 => TimeUnit::Minute,
            2 => TimeUnit::Hour,
            _ => TimeUnit::Day,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Second => "s",
            TimeUnit::Minute => "min",
            TimeUnit::Hour => "h",
            TimeUnit::Day => "d",
        }
    }
}

fn duration(quantity: &'static str, nn: u8) -> Meaning {
    Meaning::new(quantity, TimeUnit::from_nn(nn).as_str(), 0)
}

/// `n` = low bits of the code, as a signed exponent term.
fn n(code: u8, mask: u8) -> i32 {
    i32::from(code & mask)
}

/// Primary table (§5.4), converted to the reading units (kWh, MJ, kW, MJ/h, …).
fn primary(code: u8, data_field: DataField) -> Meaning {
    let code = code & 0x7F;
    match code {
        // Wh 10^(n-3) → kWh; J 10^n → MJ.
        0x00..=0x07 => Meaning::new("energy", "kWh", n(code, 7) - 6),
        0x08..=0x0F => Meaning::new("energy", "MJ", n(code, 7) - 6),
        0x10..=0x17 => Meaning::new("volume", "m3", n(code, 7) - 6),
        0x18..=0x1F => Meaning::new("mass", "kg", n(code, 7) - 3),
        0x20..=0x23 => duration("on_time", code),
        0x24..=0x27 => duration("operating_time", code),
        // W 10^(n-3) → kW; J/h 10^n → MJ/h.
        0x28..=0x2F => Meaning::new("power", "kW", n(code, 7) - 6),
        0x30..=0x37 => Meaning::new("power", "MJ/h", n(code, 7) - 6),
        0x38..=0x3F => Meaning::new("volume_flow", "m3/h", n(code, 7) - 6),
        0x40..=0x47 => Meaning::new("volume_flow", "m3/min", n(code, 7) - 7),
        0x48..=0x4F => Meaning::new("volume_flow", "m3/s", n(code, 7) - 9),
        0x50..=0x57 => Meaning::new("mass_flow", "kg/h", n(code, 7) - 3),
        0x58..=0x5B => Meaning::new("flow_temperature", "C", n(code, 3) - 3),
        0x5C..=0x5F => Meaning::new("return_temperature", "C", n(code, 3) - 3),
        0x60..=0x63 => Meaning::new("temperature_difference", "K", n(code, 3) - 3),
        0x64..=0x67 => Meaning::new("external_temperature", "C", n(code, 3) - 3),
        0x68..=0x6B => Meaning::new("pressure", "bar", n(code, 3) - 3),
        0x6C => Meaning::unitless("date", Kind::DateTime),
        0x6D => match data_field {
            DataField::Integer(3) => Meaning::unitless("time", Kind::DateTime),
            DataField::Integer(2) => Meaning::unitless("date", Kind::DateTime),
            _ => Meaning::unitless("datetime", Kind::DateTime),
        },
        0x6E => Meaning::new("hca", "hca", 0),
        0x70..=0x73 => duration("averaging_duration", code),
        0x74..=0x77 => duration("actuality_duration", code),
        0x78 => Meaning::unitless("fabrication_number", Kind::Unsigned),
        0x79 => Meaning::unitless("enhanced_identification", Kind::Unsigned),
        0x7A => Meaning::unitless("bus_address", Kind::Unsigned),
        0x7E => Meaning::unitless("any_vif", Kind::Signed),
        _ => Meaning::unitless(UNKNOWN, Kind::Unsigned),
    }
}

/// 1 ft³ = 0.028316846592 m³ and 1 US gallon = 0.003785411784 m³, both exact.
const CUBIC_FOOT_M3: i128 = 28_316_846_592;
const US_GALLON_M3: i128 = 3_785_411_784;
/// 1 Mcal (international table calorie) = 4.1868 MJ, exact.
const MCAL_MJ: i128 = 41_868;

/// Extension table FB (§5.6).
fn table_fb(code: u8) -> Meaning {
    let code = code & 0x7F;
    match code {
        // MWh 10^(n-1) → kWh; GJ 10^(n-1) → MJ.
        0x00..=0x01 => Meaning::new("energy", "kWh", n(code, 1) + 2),
        0x02..=0x03 => Meaning::exp("reactive_energy_kvarh", n(code, 1)),
        0x04..=0x05 => Meaning::exp("apparent_energy_kvah", n(code, 1)),
        0x08..=0x09 => Meaning::new("energy", "MJ", n(code, 1) + 2),
        0x0C..=0x0F => Meaning::factor("energy", "MJ", Decimal::new(MCAL_MJ, n(code, 3) - 1 - 4)),
        0x10..=0x11 => Meaning::new("volume", "m3", n(code, 1) + 2),
        0x14..=0x17 => Meaning::exp("reactive_power_kvar", n(code, 3) - 3),
        // t 10^(n+2) → kg.
        0x18..=0x19 => Meaning::new("mass", "kg", n(code, 1) + 5),
        0x1A..=0x1B => Meaning::exp("relative_humidity_percent", n(code, 1) - 1),
        0x20 => Meaning::factor("volume", "m3", Decimal::new(CUBIC_FOOT_M3, -12)),
        0x21 => Meaning::factor("volume", "m3", Decimal::new(CUBIC_FOOT_M3, -13)),
        0x22 => Meaning::factor("volume", "m3", Decimal::new(US_GALLON_M3, -13)),
        0x23 => Meaning::factor("volume", "m3", Decimal::new(US_GALLON_M3, -12)),
        0x24 => Meaning::factor("volume_flow", "m3/min", Decimal::new(US_GALLON_M3, -15)),
        0x25 => Meaning::factor("volume_flow", "m3/min", Decimal::new(US_GALLON_M3, -12)),
        0x26 => Meaning::factor("volume_flow", "m3/h", Decimal::new(US_GALLON_M3, -12)),
        // MW 10^(n-1) → kW; GJ/h 10^(n-1) → MJ/h.
        0x28..=0x29 => Meaning::new("power", "kW", n(code, 1) + 2),
        0x2C..=0x2F => Meaning::exp("frequency_hz", n(code, 3) - 3),
        0x30..=0x31 => Meaning::new("power", "MJ/h", n(code, 1) + 2),
        0x34..=0x37 => Meaning::exp("apparent_power_kva", n(code, 3) - 3),
        // °F is not in the unit vocabulary and does not convert exactly (×5/9).
        0x58..=0x5B => Meaning::exp("flow_temperature_fahrenheit", n(code, 3) - 3),
        0x5C..=0x5F => Meaning::exp("return_temperature_fahrenheit", n(code, 3) - 3),
        0x60..=0x63 => Meaning::exp("temperature_difference_fahrenheit", n(code, 3) - 3),
        0x64..=0x67 => Meaning::exp("external_temperature_fahrenheit", n(code, 3) - 3),
        0x68 => Meaning::unitless("resulting_rating_factor", Kind::Unsigned),
        0x69 => Meaning::unitless("thermal_output_rating_factor", Kind::Unsigned),
        0x6A => Meaning::unitless("thermal_coupling_rating_factor_overall", Kind::Unsigned),
        0x6B => Meaning::unitless("thermal_coupling_rating_factor_room", Kind::Unsigned),
        0x6C => Meaning::unitless("thermal_coupling_rating_factor_heater", Kind::Unsigned),
        0x6D => Meaning::unitless("low_temperature_rating_factor", Kind::Unsigned),
        0x6E => Meaning::unitless("display_output_scaling_factor", Kind::Unsigned),
        0x70..=0x73 => Meaning::exp("temperature_limit_fahrenheit", n(code, 3) - 3),
        0x74..=0x77 => Meaning::new("temperature_limit", "C", n(code, 3) - 3),
        // W 10^(nnn-3) → kW.
        0x78..=0x7F => Meaning::new("cumulative_max_power", "kW", n(code, 7) - 6),
        _ => Meaning::unitless(UNKNOWN, Kind::Unsigned),
    }
}

/// Extension table FD (§5.7).
fn table_fd(code: u8) -> Meaning {
    use Kind::{Bits, DateTime, Unsigned};
    let code = code & 0x7F;
    let u = |q| Meaning::unitless(q, Unsigned);
    match code {
        0x00..=0x03 => Meaning::exp("credit", n(code, 3) - 3),
        0x04..=0x07 => Meaning::exp("debit", n(code, 3) - 3),
        0x08 => u("access_number"),
        0x09 => u("device_type"),
        0x0A => u("manufacturer"),
        0x0B => u("parameter_set"),
        0x0C => u("model_version"),
        0x0D => u("hardware_version"),
        0x0E => u("firmware_version"),
        0x0F => u("software_version"),
        0x10 => u("customer_location"),
        0x11 => u("customer"),
        0x12 => u("access_code_user"),
        0x13 => u("access_code_operator"),
        0x14 => u("access_code_system_operator"),
        0x15 => u("access_code_developer"),
        0x16 => u("password"),
        0x17 => Meaning::unitless("error_flags", Bits),
        0x18 => Meaning::unitless("error_mask", Bits),
        0x19 => u("security_key"),
        0x1A => Meaning::unitless("digital_output", Bits),
        0x1B => Meaning::unitless("digital_input", Bits),
        0x1C => u("baud_rate"),
        0x1D => u("response_delay_time"),
        0x1E => u("retry"),
        0x1F => Meaning::unitless("remote_control", Bits),
        0x20 => u("first_storage_number"),
        0x21 => u("last_storage_number"),
        0x22 => u("storage_block_size"),
        0x23 => u("tariff_subunit_descriptor"),
        0x24..=0x27 => duration("storage_interval", code),
        0x28 => u("storage_interval_months"),
        0x29 => u("storage_interval_years"),
        0x2A => u("operator_specific_data"),
        0x2B => Meaning::new("time_point_second", "s", 0),
        0x2C..=0x2F => duration("duration_since_last_readout", code),
        0x30 => Meaning::unitless("tariff_start", DateTime),
        0x31..=0x33 => duration("tariff_duration", code),
        0x34..=0x37 => duration("tariff_period", code),
        0x38 => u("tariff_period_months"),
        0x39 => u("tariff_period_years"),
        0x3A => Meaning::unitless("dimensionless", Kind::Signed),
        0x3B => u("wmbus_data_container"),
        0x3C..=0x3F => duration("nominal_transmission_period", code),
        0x40..=0x4F => Meaning::new("voltage", "V", n(code, 0x0F) - 9),
        0x50..=0x5F => Meaning::new("current", "A", n(code, 0x0F) - 12),
        0x60 => u("reset_counter"),
        0x61 => u("cumulation_counter"),
        0x62 => Meaning::unitless("control_signal", Bits),
        0x63 => u("day_of_week"),
        0x64 => u("week_number"),
        0x65 => u("day_change_time_point"),
        0x66 => Meaning::unitless("parameter_activation_state", Bits),
        0x67 => u("special_supplier_information"),
        // pp: hours, days, months, years (WM/MB reading; LV differs, see §5.7).
        0x68 => Meaning::new("duration_since_last_cumulation", "h", 0),
        0x69 => Meaning::new("duration_since_last_cumulation", "d", 0),
        0x6A => u("duration_since_last_cumulation_months"),
        0x6B => u("duration_since_last_cumulation_years"),
        0x6C => Meaning::new("battery_operating_time", "h", 0),
        0x6D => Meaning::new("battery_operating_time", "d", 0),
        0x6E => u("battery_operating_time_months"),
        0x6F => u("battery_operating_time_years"),
        0x70 => Meaning::unitless("battery_change_datetime", DateTime),
        0x71 => Meaning::exp("rf_level_dbm", 0),
        0x72 => u("daylight_saving"),
        0x73 => u("listening_window_management"),
        0x74 => Meaning::new("remaining_battery_lifetime", "d", 0),
        0x75 => u("meter_stop_count"),
        0x76 => u("manufacturer_data_container"),
        _ => u(UNKNOWN),
    }
}

/// Second-level FD table (`FD FD xx`; unverified, §5.7 0x7D).
fn table_fd_second(code: u8) -> Meaning {
    match code & 0x7F {
        0x00 => Meaning::unitless("currently_selected_application", Kind::Unsigned),
        0x02 => Meaning::unitless("remaining_battery_lifetime_months", Kind::Unsigned),
        0x03 => Meaning::unitless("remaining_battery_lifetime_years", Kind::Unsigned),
        0x3E => Meaning::unitless("moisture_percent", Kind::Signed),
        _ => Meaning::unitless(UNKNOWN, Kind::Unsigned),
    }
}

/// Record error code carried in a combinable VIFE (§5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordError(u8);

impl RecordError {
    /// `Some` for the codes the meter uses for record errors (0x00–0x0F, 0x15–0x1C).
    pub fn from_code(code: u8) -> Option<RecordError> {
        match code & 0x7F {
            c @ (0x00..=0x0F | 0x15..=0x1C) => Some(RecordError(c)),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "none",
            0x01 => "too_many_difes",
            0x02 => "storage_not_implemented",
            0x03 => "unit_not_implemented",
            0x04 => "tariff_not_implemented",
            0x05 => "function_not_implemented",
            0x06 => "data_class_not_implemented",
            0x07 => "data_size_not_implemented",
            0x0B => "too_many_vifes",
            0x0C => "illegal_vif_group",
            0x0D => "illegal_vif_exponent",
            0x0E => "vif_dif_mismatch",
            0x0F => "unimplemented_action",
            0x15 => "no_data_available",
            0x16 => "data_overflow",
            0x17 => "data_underflow",
            0x18 => "data_error",
            0x1C => "premature_end_of_record",
            _ => "reserved_error",
        }
    }
}

/// One decoded combinable VIFE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combinable {
    RecordError(RecordError),
    /// Multiplicative correction factor 10^e (0x70–0x77, 0x7D).
    Multiplicative(i32),
    /// Additive correction constant 10^e × unit of VIF (0x78–0x7B).
    Additive(i32),
    /// The record holds a date/time related to the quantity (e.g. start date).
    Date(&'static str),
    /// The record holds a duration related to the quantity.
    Duration(&'static str, TimeUnit),
    /// The record holds a count (number of limit exceeds).
    Count(&'static str),
    /// Any other qualification of the value (per hour, forward flow, phase L1, …).
    Qualifier(&'static str),
    /// Vendor-defined VIFE after 0x7F/0xFF.
    ManufacturerSpecific(u8),
    /// Reserved or unknown code (FC-table codes carry 0x80 on top).
    Reserved(u8),
}

impl Combinable {
    /// snake_case name of qualifying VIFEs; `None` for errors and corrections.
    pub fn name(&self) -> Option<&'static str> {
        match *self {
            Combinable::Date(s)
            | Combinable::Duration(s, _)
            | Combinable::Count(s)
            | Combinable::Qualifier(s) => Some(s),
            Combinable::ManufacturerSpecific(_) => Some("manufacturer_specific_vife"),
            Combinable::Reserved(_) => Some("reserved_vife"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CombinableState {
    Normal,
    /// Previous VIFE was 0x7C/0xFC: this one is from the FC table.
    FcTable,
    /// After VIFE 0x7F/0xFF every further VIFE is vendor-defined.
    Manufacturer,
}

/// Iterator over the combinable VIFEs of a VIB.
#[derive(Debug, Clone)]
pub struct Combinables<'a> {
    rest: &'a [u8],
    state: CombinableState,
    /// The VIF is a volume flow: a "duration of limit exceed" VIFE (0x50..0x5F) after it
    /// does not turn the value into a duration. Meters send `02 BB 56` for the current
    /// flow in m3/h (Qundis, LSE); the reference decoder reads it so too.
    volume_flow: bool,
}

impl Iterator for Combinables<'_> {
    type Item = Combinable;

    fn next(&mut self) -> Option<Combinable> {
        loop {
            let (&vife, rest) = self.rest.split_first()?;
            self.rest = rest;
            let code = vife & 0x7F;
            match self.state {
                CombinableState::Manufacturer => {
                    return Some(Combinable::ManufacturerSpecific(code));
                }
                CombinableState::FcTable => {
                    self.state = CombinableState::Normal;
                    return Some(fc_table(code));
                }
                CombinableState::Normal => match code {
                    0x7C => self.state = CombinableState::FcTable,
                    0x7F => self.state = CombinableState::Manufacturer,
                    0x50..=0x5F if self.volume_flow => {}
                    _ => return Some(combinable(code)),
                },
            }
        }
    }
}

fn combinable(code: u8) -> Combinable {
    use Combinable::{Count, Date, Duration, Qualifier, Reserved};
    if let Some(e) = RecordError::from_code(code) {
        return Combinable::RecordError(e);
    }
    match code {
        0x12 => Qualifier("average"),
        0x13 => Qualifier("inverse_compact_profile"),
        0x14 => Qualifier("relative_deviation"),
        0x1D => Qualifier("standard_conform"),
        0x1E => Qualifier("compact_profile_with_register_numbers"),
        0x1F => Qualifier("compact_profile"),
        0x20 => Qualifier("per_second"),
        0x21 => Qualifier("per_minute"),
        0x22 => Qualifier("per_hour"),
        0x23 => Qualifier("per_day"),
        0x24 => Qualifier("per_week"),
        0x25 => Qualifier("per_month"),
        0x26 => Qualifier("per_year"),
        0x27 => Qualifier("per_revolution"),
        0x28 => Qualifier("increment_per_input_pulse_channel_0"),
        0x29 => Qualifier("increment_per_input_pulse_channel_1"),
        0x2A => Qualifier("increment_per_output_pulse_channel_0"),
        0x2B => Qualifier("increment_per_output_pulse_channel_1"),
        0x2C => Qualifier("per_litre"),
        0x2D => Qualifier("per_m3"),
        0x2E => Qualifier("per_kg"),
        0x2F => Qualifier("per_kelvin"),
        0x30 => Qualifier("per_kwh"),
        0x31 => Qualifier("per_gj"),
        0x32 => Qualifier("per_kw"),
        0x33 => Qualifier("per_kelvin_litre"),
        0x34 => Qualifier("per_volt"),
        0x35 => Qualifier("per_ampere"),
        0x36 => Qualifier("multiplied_by_s"),
        0x37 => Qualifier("multiplied_by_s_per_v"),
        0x38 => Qualifier("multiplied_by_s_per_a"),
        0x39 => Date("start_date"),
        0x3A => Qualifier("uncorrected"),
        0x3B => Qualifier("forward_flow"),
        0x3C => Qualifier("backward_flow"),
        0x3D => Qualifier("non_metric_units"),
        0x3E => Qualifier("at_base_conditions"),
        0x3F => Qualifier("obis_declaration"),
        0x40 => Qualifier("lower_limit"),
        0x48 => Qualifier("upper_limit"),
        0x41 => Count("lower_limit_exceed_count"),
        0x49 => Count("upper_limit_exceed_count"),
        0x42 => Date("begin_first_lower_limit_exceed"),
        0x43 => Date("end_first_lower_limit_exceed"),
        0x46 => Date("begin_last_lower_limit_exceed"),
        0x47 => Date("end_last_lower_limit_exceed"),
        0x4A => Date("begin_first_upper_limit_exceed"),
        0x4B => Date("end_first_upper_limit_exceed"),
        0x4E => Date("begin_last_upper_limit_exceed"),
        0x4F => Date("end_last_upper_limit_exceed"),
        // E101 u f nn
        0x50..=0x5F => {
            let name = match (code >> 2) & 0x03 {
                0 => "duration_first_lower_limit_exceed",
                1 => "duration_last_lower_limit_exceed",
                2 => "duration_first_upper_limit_exceed",
                _ => "duration_last_upper_limit_exceed",
            };
            Duration(name, TimeUnit::from_nn(code))
        }
        // E110 0 f nn
        0x60..=0x63 => Duration("duration_first", TimeUnit::from_nn(code)),
        0x64..=0x67 => Duration("duration_last", TimeUnit::from_nn(code)),
        0x68 => Qualifier("value_during_lower_limit_exceed"),
        0x6C => Qualifier("value_during_upper_limit_exceed"),
        0x69 => Qualifier("leakage_values"),
        0x6D => Qualifier("overflow_values"),
        0x6A => Date("begin_first"),
        0x6B => Date("end_first"),
        0x6E => Date("begin_last"),
        0x6F => Date("end_last"),
        0x70..=0x77 => Combinable::Multiplicative(n(code, 7) - 6),
        0x78..=0x7B => Combinable::Additive(n(code, 3) - 3),
        0x7D => Combinable::Multiplicative(3),
        0x7E => Qualifier("future_value"),
        _ => Reserved(code),
    }
}

/// "FC" combinable extension table (after VIFE 0x7C/0xFC; unverified, §5.8).
fn fc_table(code: u8) -> Combinable {
    use Combinable::Qualifier;
    match code {
        0x01 => Qualifier("phase_l1"),
        0x02 => Qualifier("phase_l2"),
        0x03 => Qualifier("phase_l3"),
        0x04 => Qualifier("neutral"),
        0x05 => Qualifier("phase_l1_l2"),
        0x06 => Qualifier("phase_l2_l3"),
        0x07 => Qualifier("phase_l3_l1"),
        0x08 => Qualifier("quadrant_q1"),
        0x09 => Qualifier("quadrant_q2"),
        0x0A => Qualifier("quadrant_q3"),
        0x0B => Qualifier("quadrant_q4"),
        0x0C => Qualifier("delta_import_export"),
        0x10 => Qualifier("accumulation_of_absolute_value"),
        0x11 => Qualifier("data_type_c"),
        0x12 => Qualifier("data_type_d"),
        _ => Combinable::Reserved(0x80 | code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_scaling_in_reading_units() {
        let m = Vib::primary(0x13).meaning(DataField::Integer(4));
        assert_eq!((m.quantity, m.unit), ("volume", Some("m3")));
        assert_eq!(m.scale, Decimal::new(1, -3));
        let m = Vib::primary(0x06).meaning(DataField::Integer(4));
        assert_eq!(
            (m.quantity, m.unit, m.scale),
            ("energy", Some("kWh"), Decimal::new(1, 0))
        );
        let m = Vib::primary(0x0E).meaning(DataField::Integer(4));
        assert_eq!((m.unit, m.scale), (Some("MJ"), Decimal::new(1, 0)));
        let m = Vib::primary(0x2A).meaning(DataField::Integer(2));
        assert_eq!((m.unit, m.scale), (Some("kW"), Decimal::new(1, -4)));
        let m = Vib::primary(0x59).meaning(DataField::Integer(2));
        assert_eq!(
            (m.quantity, m.scale),
            ("flow_temperature", Decimal::new(1, -2))
        );
        let m = Vib::primary(0x22).meaning(DataField::Integer(2));
        assert_eq!((m.quantity, m.unit), ("on_time", Some("h")));
    }

    #[test]
    fn extension_tables() {
        let m = Vib::fb(0x00).meaning(DataField::Integer(4));
        assert_eq!((m.unit, m.scale), (Some("kWh"), Decimal::new(1, 2)));
        let m = Vib::fb(0x0D).meaning(DataField::Integer(4));
        assert_eq!((m.unit, m.scale), (Some("MJ"), Decimal::new(41868, -4)));
        let m = Vib::fd(0x17).meaning(DataField::Integer(2));
        assert_eq!((m.quantity, m.kind), ("error_flags", Kind::Bits));
        let m = Vib::fd(0x48).meaning(DataField::Integer(2));
        assert_eq!(
            (m.quantity, m.unit, m.scale),
            ("voltage", Some("V"), Decimal::new(1, -1))
        );
        let m = Vib::fd(0x59).meaning(DataField::Integer(2));
        assert_eq!(
            (m.quantity, m.unit, m.scale),
            ("current", Some("A"), Decimal::new(1, -3))
        );
    }

    #[test]
    fn combinable_corrections_and_errors() {
        // Volume litres with multiplicative factor 10^-1 (0x75 → nnn=5 → 10^-1).
        let m = Vib::primary(0x13)
            .with_vife(0x75)
            .meaning(DataField::Integer(4));
        assert_eq!(m.scale, Decimal::new(1, -4));
        let m = Vib::primary(0x13)
            .with_vife(0x7D)
            .meaning(DataField::Integer(4));
        assert_eq!(m.scale, Decimal::new(1, 0));
        let m = Vib::primary(0x13)
            .with_vife(0x79)
            .meaning(DataField::Integer(4));
        assert_eq!(m.offset, Some(Decimal::new(1, -5)));
        let v = Vib::primary(0x13).with_vife(0x15);
        assert_eq!(
            v.record_error().map(RecordError::name),
            Some("no_data_available")
        );
        assert_eq!(Vib::primary(0x13).with_vife(0x00).record_error(), None);
        let v = Vib::primary(0x2B).with_vife(0x7C).with_vife(0x01);
        assert_eq!(
            v.combinables().collect::<Vec<_>>(),
            [Combinable::Qualifier("phase_l1")]
        );
        let v = Vib::primary(0x13).with_vife(0x7F).with_vife(0x15);
        assert_eq!(
            v.combinables().collect::<Vec<_>>(),
            [Combinable::ManufacturerSpecific(0x15)]
        );
        let m = Vib::primary(0x13)
            .with_vife(0x39)
            .meaning(DataField::Integer(2));
        assert_eq!((m.kind, m.unit), (Kind::DateTime, None));
    }

    #[test]
    fn limit_exceed_duration_vife_after_a_volume_flow_keeps_the_flow() {
        // 02 BB 56: volume flow in l/h (10^-3 m3/h), VIFE 0x56; current flow 0x0123 l/h.
        let apl = [0x02, 0xBB, 0x56, 0x23, 0x01];
        let parsed = super::super::parse(&apl).unwrap();
        let r = &parsed.records[0];
        assert_eq!((r.quantity, r.unit), ("volume_flow", Some("m3/h")));
        assert_eq!(r.value.to_string(), "0.291");
        assert_eq!(r.vib.combinables().count(), 0);
        // The FB-table gallon flows are volume flows too.
        assert_eq!(Vib::fb(0x26).with_vife(0x56).combinables().count(), 0);
        // After any other VIF the VIFE is the standard's duration (hours here).
        let m = Vib::primary(0x13)
            .with_vife(0x56)
            .meaning(DataField::Integer(2));
        assert_eq!((m.unit, m.kind), (Some("h"), Kind::Unsigned));
    }

    #[test]
    fn emit_marks_extensions() {
        let mut out = Vec::new();
        assert!(Vib::fd(0x17).emit(&mut out));
        assert_eq!(out, [0xFD, 0x17]);
        out.clear();
        assert!(Vib::primary(0x13)
            .with_vife(0x7C)
            .with_vife(0x01)
            .emit(&mut out));
        assert_eq!(out, [0x93, 0xFC, 0x01]);
        out.clear();
        assert!(Vib::plain_text("#AL").emit(&mut out));
        assert_eq!(out, [0x7C, 0x03, 0x4C, 0x41, 0x23]);
        out.clear();
        // 0x7B without VIFEs is the reserved VIF itself (issue 12: an unknown record);
        // with VIFEs its E bit would make it the FB marker, so it cannot be emitted.
        assert!(Vib::primary(0x7B).emit(&mut out));
        assert_eq!(out, [0x7B]);
        out.clear();
        assert!(!Vib::primary(0x7B).with_vife(0x01).emit(&mut out));
        assert!(out.is_empty());
    }
}
