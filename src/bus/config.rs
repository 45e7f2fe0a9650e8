//! The `[[bus]]` section of the configuration: one table per wired M-Bus.
//!
//! ```toml
//! [[bus]]
//! name = "cellar"              # default bus0, bus1, …; used as the readings' source
//! device = "/dev/ttyUSB1"      # or "tcp://10.0.0.7:10001"
//! baud = 2400                  # 300, 600, 1200, 2400, 4800, 9600, 19200 or 38400
//! poll_interval = "15m"        # ms, s, m, h
//! meters = [5, 7, "12345678"]  # primary addresses 0–250 or 8-digit secondary ids
//! missing_after = 3            # failed polls in a row before a meter is `missing`
//! retries = 3                  # repetitions of a request (0–3)
//! extra_timeout_ms = 50         # added to the 330 bit times a slave has to answer
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::master::{Target, Timing};
use crate::textpos::{locate, Located};
use crate::wire::mbus::{SecondaryAddress, MAX_PRIMARY};

/// Baud rates EN 13757-2 defines.
pub const BAUD_RATES: [u32; 8] = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400];

/// A validated `[[bus]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct BusConfig {
    pub name: String,
    pub device: String,
    pub baud: u32,
    pub poll_interval: Duration,
    pub meters: Vec<Target>,
    pub missing_after: u32,
    pub retries: u8,
    /// The standard's 50 ms; converters on a network add their latency.
    pub extra_timeout: Duration,
}

impl BusConfig {
    pub fn timing(&self) -> Timing {
        Timing {
            retries: self.retries,
            extra: self.extra_timeout,
            ..Timing::standard(self.baud)
        }
    }
}

/// As written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBus {
    #[serde(default)]
    name: Option<Spanned<String>>,
    device: Spanned<String>,
    #[serde(default)]
    baud: Option<Spanned<u32>>,
    #[serde(default)]
    poll_interval: Option<Spanned<String>>,
    #[serde(default)]
    meters: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    missing_after: Option<Spanned<u32>>,
    #[serde(default)]
    retries: Option<Spanned<u8>>,
    #[serde(default)]
    extra_timeout_ms: Option<Spanned<u64>>,
}

/// A `meters` entry: an integer is a primary address, a string of 8 digits a secondary id.
fn parse_meter(value: &toml::Value) -> Result<Target, String> {
    match value {
        toml::Value::Integer(a) => u8::try_from(*a)
            .ok()
            .filter(|a| *a <= MAX_PRIMARY)
            .map(Target::Primary)
            .ok_or_else(|| format!("primary address {a} is outside 0–{MAX_PRIMARY}")),
        toml::Value::String(s) if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse::<u32>()
            .ok()
            .and_then(SecondaryAddress::from_id)
            .map(Target::Secondary)
            .ok_or_else(|| format!("'{s}' is not an 8-digit id")),
        toml::Value::String(s) => Err(format!(
            "'{}' is not an 8-digit secondary id (primary addresses are written as numbers)",
            s.escape_default()
        )),
        other => Err(format!(
            "a meter is a primary address (number) or an 8-digit id (string), not a {}",
            other.type_str()
        )),
    }
}

/// Validates the `[[bus]]` tables; problems go to `errors` with their position.
pub fn validate(
    raw: Vec<RawBus>,
    file: &str,
    text: &str,
    errors: &mut Vec<Located>,
) -> Vec<BusConfig> {
    let mut buses: Vec<BusConfig> = Vec::new();
    for (index, bus) in raw.into_iter().enumerate() {
        let mut err = |span: std::ops::Range<usize>, msg: String| {
            errors.push(locate(file, text, span, msg));
        };
        if let Some(b) = validate_one(index, bus, &buses, &mut err) {
            buses.push(b);
        }
    }
    buses
}

/// The `meters` of a bus, each once.
fn parse_meters(
    listed: &[Spanned<toml::Value>],
    err: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Vec<Target> {
    let mut meters = Vec::new();
    for m in listed {
        match parse_meter(m.get_ref()) {
            Ok(t) if meters.contains(&t) => err(m.span(), format!("{t} is listed twice")),
            Ok(t) => meters.push(t),
            Err(e) => err(m.span(), e),
        }
    }
    meters
}

/// One `[[bus]]` table; `taken` are the buses before it (names must differ).
fn validate_one(
    index: usize,
    bus: RawBus,
    taken: &[BusConfig],
    err: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Option<BusConfig> {
    let name = match &bus.name {
        Some(n) if n.get_ref().is_empty() || n.get_ref().contains(['/', '+', '#']) => {
            let shown = n.get_ref().escape_default();
            err(
                n.span(),
                format!("bus name '{shown}' must be non-empty without / + #"),
            );
            return None;
        }
        Some(n) => n.get_ref().clone(),
        None => format!("bus{index}"),
    };
    if taken.iter().any(|b| b.name == name) {
        let span = bus.name.as_ref().map_or(bus.device.span(), |n| n.span());
        err(span, format!("a second bus named '{name}'"));
    }
    if bus.device.get_ref().trim().is_empty() {
        err(bus.device.span(), "bus device must not be empty".to_owned());
    }
    let baud = bus.baud.as_ref().map_or(2400, |b| *b.get_ref());
    if let Some(b) = bus
        .baud
        .as_ref()
        .filter(|b| !BAUD_RATES.contains(b.get_ref()))
    {
        let msg = "is not an M-Bus rate (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)";
        err(b.span(), format!("baud {} {msg}", b.get_ref()));
    }
    let default_interval = Duration::from_secs(15 * 60);
    let poll_interval = match &bus.poll_interval {
        None => default_interval,
        Some(p) => crate::timefmt::parse_duration(p.get_ref()).unwrap_or_else(|e| {
            err(p.span(), format!("poll_interval: {e}"));
            default_interval
        }),
    };
    let meters = parse_meters(&bus.meters, err);
    let missing_after = bus.missing_after.as_ref().map_or(3, |m| *m.get_ref());
    if let Some(m) = bus.missing_after.as_ref().filter(|m| *m.get_ref() == 0) {
        err(m.span(), "missing_after must be at least 1".to_owned());
    }
    let retries = bus.retries.as_ref().map_or(3, |r| *r.get_ref());
    if let Some(r) = bus.retries.as_ref().filter(|r| *r.get_ref() > 3) {
        err(
            r.span(),
            format!("retries {} is above the standard's 3", r.get_ref()),
        );
    }
    let extra_ms = bus.extra_timeout_ms.as_ref().map_or(50, |e| *e.get_ref());
    if let Some(e) = bus
        .extra_timeout_ms
        .as_ref()
        .filter(|e| *e.get_ref() > 10_000)
    {
        err(
            e.span(),
            format!("extra_timeout_ms {} is above 10000", e.get_ref()),
        );
    }
    Some(BusConfig {
        name,
        device: bus.device.into_inner(),
        baud,
        poll_interval,
        meters,
        missing_after,
        retries,
        extra_timeout: Duration::from_millis(extra_ms),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    use super::*;

    fn load(bus: &str) -> Result<Config, ConfigError> {
        Config::from_str_named(&format!("[gateway]\nid = \"gw\"\n\n{bus}"), "test.toml")
    }

    #[test]
    fn full_and_default_sections() {
        let cfg = load(
            "[[bus]]\nname = \"cellar\"\ndevice = \"/dev/ttyUSB1\"\nbaud = 9600\n\
             poll_interval = \"90s\"\nmeters = [5, 250, \"12345678\"]\nmissing_after = 4\nretries = 1\n\
             extra_timeout_ms = 400\n\n\
             [[bus]]\ndevice = \"tcp://10.0.0.7:10001\"\n",
        )
        .unwrap();
        assert_eq!(cfg.buses.len(), 2);
        let b = &cfg.buses[0];
        assert_eq!(
            (b.name.as_str(), b.baud, b.missing_after, b.retries),
            ("cellar", 9600, 4, 1)
        );
        assert_eq!(b.poll_interval, Duration::from_secs(90));
        assert_eq!(
            b.meters,
            [
                Target::Primary(5),
                Target::Primary(250),
                Target::Secondary(SecondaryAddress::from_id(12_345_678).unwrap())
            ]
        );
        assert_eq!(b.timing().retries, 1);
        assert_eq!(b.timing().extra, Duration::from_millis(400));
        let d = &cfg.buses[1];
        assert_eq!(
            (d.name.as_str(), d.baud, d.missing_after, d.retries),
            ("bus1", 2400, 3, 3)
        );
        assert_eq!(d.poll_interval, Duration::from_secs(900));
        assert!(d.meters.is_empty());
        assert!(load("").unwrap().buses.is_empty());
    }

    #[test]
    fn every_problem_is_located() {
        let err = load(
            "[[bus]]\ndevice = \"/dev/x\"\nbaud = 2500\npoll_interval = \"5 fortnights\"\n\
             meters = [251, \"1234\", 7, 7, 1.5]\nmissing_after = 0\nretries = 4\n",
        )
        .unwrap_err();
        let messages: Vec<String> = err.locations().iter().map(|l| l.to_string()).collect();
        let text = messages.join("\n");
        assert_eq!(messages.len(), 8, "{text}");
        assert!(
            text.contains("test.toml:6:8: baud 2500 is not an M-Bus rate"),
            "{text}"
        );
        assert!(text.contains("test.toml:7:17: poll_interval"), "{text}");
        assert!(
            text.contains("test.toml:8:11: primary address 251 is outside 0–250"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:8:16: '1234' is not an 8-digit secondary id"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:8:27: primary address 7 is listed twice"),
            "{text}"
        );
        assert!(text.contains("not a float"), "{text}");
        assert!(
            text.contains("test.toml:9:17: missing_after must be at least 1"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:10:11: retries 4 is above the standard's 3"),
            "{text}"
        );
    }

    #[test]
    fn names_devices_and_unknown_keys() {
        let err = load(
            "[[bus]]\nname = \"a\"\ndevice = \"/dev/x\"\n[[bus]]\nname = \"a\"\ndevice = \"\"\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("test.toml:8:8: a second bus named 'a'"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:9:10: bus device must not be empty"),
            "{text}"
        );
        let err = load("[[bus]]\nname = \"a/b\"\ndevice = \"/dev/x\"\n").unwrap_err();
        assert!(
            err.to_string().contains("must be non-empty without / + #"),
            "{err}"
        );
        let err = load("[[bus]]\ndevice = \"/dev/x\"\nspeed = 2400\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `speed`"), "{err}");
        let err = load("[[bus]]\nbaud = 2400\n").unwrap_err();
        assert!(err.to_string().contains("missing field `device`"), "{err}");
    }
}
