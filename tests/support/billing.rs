//! Billing test rig: a temporary directory, a real mosquitto, a daemon configuration
//! with the store, a recorded-clock replay and `[billing]`, and `wmbusd report` read back
//! as CSV rows (the contract's column names checked).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::daemon::Daemon;
use super::mosquitto::Mosquitto;

pub const GW: &str = "gw-bill";

/// The report contract's CSV header.
pub const REPORT_HEADER: &str = "meter_id,name,medium,register,unit,start_value,start_source,end_value,end_source,consumption,check,reasons";

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub broker: Mosquitto,
}

/// A `[[meter]]` of the configuration.
pub struct MeterEntry<'a> {
    pub id: u32,
    pub name: &'a str,
    /// Empty: taken from the meter's device type.
    pub medium: &'a str,
    /// Extra TOML lines of the meter (e.g. `alarms = { burst_m3h = 1.0 }`).
    pub extra: &'a str,
}

impl Default for Rig {
    fn default() -> Self {
        Self::new()
    }
}

impl Rig {
    pub fn new() -> Rig {
        Rig {
            dir: tempfile::tempdir().unwrap(),
            broker: Mosquitto::start(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Water meters with names: the month tests' configuration.
    pub fn config(
        &self,
        replay: &Path,
        interval_ms: u64,
        billing: &str,
        meters: &[(u32, &str)],
    ) -> PathBuf {
        let entries: Vec<MeterEntry> = meters
            .iter()
            .map(|&(id, name)| MeterEntry {
                id,
                name,
                medium: "water",
                extra: "",
            })
            .collect();
        self.config_with(replay, interval_ms, billing, "", &entries)
    }

    /// The configuration with `gateway` lines added to `[gateway]` and any meters.
    pub fn config_with(
        &self,
        replay: &Path,
        interval_ms: u64,
        billing: &str,
        gateway: &str,
        meters: &[MeterEntry],
    ) -> PathBuf {
        let mut toml = format!(
            "[gateway]\nid = \"{GW}\"\n{gateway}\n\n[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nclock = \"recorded\"\nreplay_interval_ms = {interval_ms}\n\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"wmbusd-bill\"\n\n[spool]\ndir = \"{}\"\n\n[health]\npublish_interval_secs = 1\n\n\
             [pipeline]\ndedupe_window_secs = 0\n\n\
             [store]\npath = \"{}\"\nresolution_minutes = 60\n\n[billing]\n{billing}\nexport_dir = \"{}\"\n\n",
            replay.display(),
            self.broker.port,
            self.path("spool").display(),
            self.path("readings.sqlite").display(),
            self.path("export").display(),
        );
        for m in meters {
            let medium = if m.medium.is_empty() {
                String::new()
            } else {
                format!("medium = \"{}\"\n", m.medium)
            };
            toml.push_str(&format!(
                "[[meter]]\nid = \"{:08}\"\nname = \"{}\"\n{medium}{}\n\n",
                m.id, m.name, m.extra
            ));
        }
        let path = self.path("wmbusd.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    pub fn start(&self, config: &Path) -> Daemon {
        Daemon::start_args(&[
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--state-file".as_ref(),
            self.path("state.json").as_os_str(),
        ])
    }
}

/// `wmbusd` with `args`; its output.
pub fn wmbusd(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(super::daemon::BIN)
        .args(args)
        .output()
        .unwrap()
}

/// `wmbusd report` CSV text of `period` (it must succeed).
pub fn report_text(config: &Path, period: &str, extra: &[&str]) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "report".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--period".as_ref(),
        period.as_ref(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    let out = wmbusd(&args);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `wmbusd report` as CSV rows keyed by meter id (one register per meter).
pub fn report(
    config: &Path,
    period: &str,
    extra: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    parse_csv(&report_text(config, period, extra), ',')
}

/// `wmbusd report` as CSV rows keyed by (meter id, register).
pub fn report_registers(
    config: &Path,
    period: &str,
) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    csv_rows(&report_text(config, period, &[]), ',')
        .into_iter()
        .map(|r| ((r["meter_id"].clone(), r["register"].clone()), r))
        .collect()
}

pub fn split(line: &str, sep: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                fields.last_mut().unwrap().push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The rows of a report CSV, its header checked against the contract.
pub fn csv_rows(text: &str, sep: char) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header = split(lines.next().unwrap(), sep);
    assert_eq!(header.join(","), REPORT_HEADER);
    lines
        .map(|l| header.iter().cloned().zip(split(l, sep)).collect())
        .collect()
}

pub fn parse_csv(text: &str, sep: char) -> BTreeMap<String, BTreeMap<String, String>> {
    csv_rows(text, sep)
        .into_iter()
        .map(|row| (row["meter_id"].clone(), row))
        .collect()
}

pub fn num(s: &str) -> Option<f64> {
    (!s.is_empty()).then(|| s.parse().unwrap())
}

/// Rows of the store as text, for comparisons.
pub fn query(store: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Text(s) => s,
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Real(f) => f.to_string(),
                rusqlite::types::Value::Null => String::new(),
                rusqlite::types::Value::Blob(b) => hex::encode(b),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}
