//! What a reading says about billing: its medium, billing registers, the meter's stored
//! due-date values, its clock, flow and flags. Taken from the generic records (quantity,
//! unit, storage 0, tariff 0, instantaneous) and, where a record is absent, from the
//! driver's named fields.

use crate::reading::{Reading, Record, Value};

/// What a meter measures for billing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Medium {
    Water,
    WarmWater,
    Gas,
    Heat,
    Cooling,
    Hca,
    Electricity,
    Other,
}

impl Medium {
    pub const NAMES: [&'static str; 8] = [
        "water",
        "warm_water",
        "gas",
        "heat",
        "cooling",
        "hca",
        "electricity",
        "other",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Medium::Water => "water",
            Medium::WarmWater => "warm_water",
            Medium::Gas => "gas",
            Medium::Heat => "heat",
            Medium::Cooling => "cooling",
            Medium::Hca => "hca",
            Medium::Electricity => "electricity",
            Medium::Other => "other",
        }
    }

    /// A configured medium name (also accepts device type names).
    pub fn parse(s: &str) -> Option<Medium> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "water" | "cold_water" | "waste_water" | "dual_register_water" => Medium::Water,
            "warm_water" | "hot_water" => Medium::WarmWater,
            "gas" => Medium::Gas,
            "heat" | "heat_inlet" | "steam" => Medium::Heat,
            "cooling" | "cooling_load_outlet" | "cooling_load_inlet" | "heat_cooling_load" => {
                Medium::Cooling
            }
            "hca" | "heat_cost_allocator" => Medium::Hca,
            "electricity" => Medium::Electricity,
            "other" => Medium::Other,
            _ => return None,
        })
    }

    /// The medium of a device type name; `Other` for the rest.
    pub fn from_device_type(device_type: &str) -> Medium {
        Medium::parse(device_type).unwrap_or(Medium::Other)
    }

    /// Water-like media get the leak, burst and backflow alarms.
    pub fn is_water(self) -> bool {
        matches!(self, Medium::Water | Medium::WarmWater)
    }

    /// The billing registers of this medium, in report order.
    pub fn registers(self) -> &'static [Register] {
        match self {
            Medium::Water | Medium::WarmWater | Medium::Gas => &[Register::Volume],
            Medium::Heat | Medium::Cooling => &[Register::Energy],
            Medium::Hca => &[Register::Hca],
            Medium::Electricity => &[Register::Energy, Register::MaxPower],
            Medium::Other => &[],
        }
    }
}

/// A billing register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Register {
    /// Volume, m³.
    Volume,
    /// Energy, kWh.
    Energy,
    /// Heat cost allocator units.
    Hca,
    /// The period's highest power, kW (electricity): a maximum, not a counter.
    MaxPower,
}

impl Register {
    pub fn as_str(self) -> &'static str {
        match self {
            Register::Volume => "volume",
            Register::Energy => "energy",
            Register::Hca => "hca",
            Register::MaxPower => "max_power",
        }
    }

    pub fn parse(s: &str) -> Option<Register> {
        Some(match s {
            "volume" => Register::Volume,
            "energy" => Register::Energy,
            "hca" => Register::Hca,
            "max_power" => Register::MaxPower,
            _ => return None,
        })
    }

    pub fn unit(self) -> &'static str {
        match self {
            Register::Volume => "m3",
            Register::Energy => "kWh",
            Register::Hca => "hca",
            Register::MaxPower => "kW",
        }
    }

    /// Counters only go up; a maximum is not a counter.
    pub fn is_counter(self) -> bool {
        !matches!(self, Register::MaxPower)
    }

    /// Driver fields holding the current value, in preference order.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Register::Volume => &["total_m3", "total_volume_m3"],
            Register::Energy => &["total_energy_consumption_kwh", "total_kwh"],
            Register::Hca => &["current_consumption_hca"],
            Register::MaxPower => &["power_kw"],
        }
    }

    /// Driver fields holding the value at the due date.
    fn due_fields(self) -> &'static [&'static str] {
        match self {
            Register::Volume => &["target_m3"],
            Register::Energy => &["target_kwh"],
            Register::Hca => &["target_hca", "consumption_at_set_date_hca"],
            Register::MaxPower => &[],
        }
    }

    /// A record's value in this register's unit, when it is this register's quantity.
    fn value_of(self, r: &Record) -> Option<f64> {
        let v = number(&r.value)?;
        let unit = r.unit.as_deref();
        match (self, r.quantity.as_ref(), unit) {
            (Register::Volume, "volume", Some("m3")) => Some(v),
            (Register::Energy, "energy", Some("kWh")) => Some(v),
            // Billing is in kWh; 1 kWh = 3.6 MJ.
            (Register::Energy, "energy", Some("MJ")) => Some(v / 3.6),
            (Register::Hca, "hca", _) => Some(v),
            (Register::MaxPower, "power", Some("kW")) => Some(v),
            // 1 MJ/h = 1/3.6 kW (thermal power of heat meters).
            (Register::MaxPower, "power", Some("MJ/h")) => Some(v / 3.6),
            _ => None,
        }
    }
}

/// A stored value of the meter at a date it recorded itself (storage ≥ 1).
#[derive(Debug, Clone, PartialEq)]
pub struct DueValue {
    pub register: Register,
    /// `YYYY-MM-DD` (the meter's local date).
    pub date: String,
    pub value: f64,
}

/// Everything billing needs from one reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub registers: Vec<(Register, f64)>,
    pub due: Vec<DueValue>,
    /// The meter's own clock, `YYYY-MM-DDTHH:MM[:SS]` local.
    pub meter_time: Option<String>,
    /// Current volume flow, m³/h.
    pub flow_m3h: Option<f64>,
    /// Backward volume counter, m³.
    pub backward_m3: Option<f64>,
    /// Status flags and the named bits the meter reports as problems.
    pub flags: Vec<String>,
    pub error_flags: u64,
    pub leak_flag: bool,
    pub burst_flag: bool,
    pub backflow_flag: bool,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(d) => Some(d.to_f64()).filter(|f| f.is_finite()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

/// A plain current record: storage 0, total tariff, main unit, instantaneous, unqualified.
fn is_current(r: &Record) -> bool {
    r.storage == 0
        && r.tariff == 0
        && r.subunit == 0
        && r.function == crate::reading::Function::Instantaneous
        && r.qualifiers.is_empty()
        && r.error.is_none()
}

fn field_number(reading: &Reading, names: &[&str]) -> Option<f64> {
    names
        .iter()
        .find_map(|n| reading.fields.get(n).and_then(number))
}

/// A driver field that is the meter's own flag for `word`: named `word` or `…word…_flag`
/// (`_flags`, `_alarm`, `_status`). Fields such as `leak_date` or `backflow_m3` are not
/// flags: a date or a volume is not a current state.
fn is_flag_name(name: &str, word: &str) -> bool {
    name == word
        || (name.contains(word)
            && ["_flag", "_flags", "_alarm", "_status"]
                .iter()
                .any(|s| name.ends_with(s)))
}

fn field_flag(reading: &Reading, word: &str) -> bool {
    reading.fields.iter().any(|(name, v)| {
        is_flag_name(name, word)
            && match v {
                Value::Number(d) => d.to_f64() != 0.0,
                Value::Text(t) => !t.is_empty() && t != "0" && t != "OK" && t != "false",
                Value::Null => false,
            }
    })
}

impl Facts {
    /// The billing facts of `reading` for `medium`.
    pub fn of(reading: &Reading, medium: Medium) -> Facts {
        let mut facts = Facts {
            flags: reading.status.flags.iter().map(|f| f.to_string()).collect(),
            ..Facts::default()
        };
        for &reg in medium.registers() {
            let generic = if reg == Register::MaxPower {
                max_power(reading)
            } else {
                reading
                    .records
                    .iter()
                    .filter(|r| is_current(r))
                    .find_map(|r| reg.value_of(r))
            };
            if let Some(v) = generic.or_else(|| field_number(reading, reg.fields())) {
                facts.registers.push((reg, v));
            }
        }
        facts.due = due_values(reading, medium);
        facts.meter_time = reading
            .records
            .iter()
            .filter(|r| r.storage == 0 && r.quantity == "datetime")
            .find_map(|r| text(&r.value).map(str::to_owned))
            .or_else(|| {
                ["meter_datetime", "device_datetime"]
                    .iter()
                    .find_map(|n| reading.fields.get(n).and_then(text).map(str::to_owned))
            });
        facts.flow_m3h = reading
            .records
            .iter()
            .filter(|r| is_current(r) && r.quantity == "volume_flow")
            .find_map(|r| {
                let v = number(&r.value)?;
                match r.unit.as_deref()? {
                    "m3/h" => Some(v),
                    "m3/min" => Some(v * 60.0),
                    "m3/s" => Some(v * 3600.0),
                    _ => None,
                }
            })
            .or_else(|| field_number(reading, &["volume_flow_m3h", "flow_m3h"]));
        facts.backward_m3 = reading
            .records
            .iter()
            .filter(|r| {
                r.storage == 0
                    && r.quantity == "volume"
                    && r.qualifiers.iter().any(|q| q == "backward_flow")
            })
            .find_map(|r| number(&r.value))
            .or_else(|| {
                field_number(
                    reading,
                    &["total_backward_m3", "total_backwards_m3", "backflow_m3"],
                )
            });
        facts.error_flags = reading
            .records
            .iter()
            .filter(|r| r.storage == 0 && r.quantity == "error_flags")
            .find_map(|r| number(&r.value))
            .map_or(0, |v| v.max(0.0) as u64);
        if facts.error_flags != 0 {
            facts.flags.push("error_flags".to_owned());
        }
        facts.leak_flag = field_flag(reading, "leak");
        facts.burst_flag = field_flag(reading, "burst");
        facts.backflow_flag = field_flag(reading, "backflow") || field_flag(reading, "reverse");
        facts
    }

    pub fn register(&self, reg: Register) -> Option<f64> {
        self.registers
            .iter()
            .find(|(r, _)| *r == reg)
            .map(|(_, v)| *v)
    }
}

/// The highest power of the reading, kW: the current power and the meter's own maximum
/// (function maximum, storage 0: its maximum of the running interval), total tariff,
/// whole meter, unqualified (not per phase, not an average).
fn max_power(reading: &Reading) -> Option<f64> {
    use crate::reading::Function;
    reading
        .records
        .iter()
        .filter(|r| {
            r.storage == 0
                && r.tariff == 0
                && r.subunit == 0
                && matches!(r.function, Function::Instantaneous | Function::Maximum)
                && r.qualifiers.is_empty()
                && r.error.is_none()
        })
        .filter_map(|r| Register::MaxPower.value_of(r))
        .reduce(f64::max)
}

/// Values with storage ≥ 1 paired with the date record of the same storage number, and
/// the drivers' target values with their target date.
fn due_values(reading: &Reading, medium: Medium) -> Vec<DueValue> {
    let mut out = Vec::new();
    for &reg in medium.registers() {
        if !reg.is_counter() {
            continue;
        }
        for r in &reading.records {
            if r.storage == 0 || r.tariff != 0 || r.subunit != 0 || !r.qualifiers.is_empty() {
                continue;
            }
            let Some(value) = reg.value_of(r) else {
                continue;
            };
            let date = reading
                .records
                .iter()
                .filter(|d| d.storage == r.storage && matches!(&*d.quantity, "date" | "datetime"))
                .find_map(|d| text(&d.value))
                .and_then(|t| t.get(..10))
                .filter(|t| t.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
            if let Some(date) = date {
                out.push(DueValue {
                    register: reg,
                    date: date.to_owned(),
                    value,
                });
            }
        }
        if out.iter().all(|d| d.register != reg) {
            let date = ["target_date", "set_date", "target_datetime"]
                .iter()
                .find_map(|n| reading.fields.get(n).and_then(text))
                .and_then(|t| t.get(..10));
            if let (Some(value), Some(date)) = (field_number(reading, reg.due_fields()), date) {
                out.push(DueValue {
                    register: reg,
                    date: date.to_owned(),
                    value,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flag_named_fields_are_flags() {
        assert!(is_flag_name("burst_flags", "burst"));
        assert!(is_flag_name("leak_status", "leak"));
        assert!(is_flag_name("leak", "leak"));
        assert!(!is_flag_name("leak_date", "leak"));
        assert!(!is_flag_name("backflow_m3", "backflow"));
        assert!(!is_flag_name("reverse_volume_year_period_m3", "reverse"));
        assert!(!is_flag_name("status_flags", "burst"));
    }
}
