//! The `[store]` and `[billing]` configuration sections and the per-meter alarm
//! thresholds (deserialised by `config`, used by `store` and `billing`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// `[store]`: the embedded SQLite reading store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// `sqlite:///path` (same as `path`) or `postgres://…` (the central decoders' store).
    #[serde(default)]
    pub url: Option<String>,
    /// A meter's last reading of each slot of this many minutes is kept (plus every
    /// reading whose status or alarm flags changed).
    #[serde(default = "default_resolution")]
    pub resolution_minutes: u32,
    #[serde(default = "default_keep_readings")]
    pub keep_readings_days: u32,
    #[serde(default = "default_keep_daily")]
    pub keep_daily_days: u32,
    /// Most readings written in one transaction.
    #[serde(default = "default_batch")]
    pub batch_max: usize,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/wmbusd/readings.sqlite")
}
fn default_resolution() -> u32 {
    15
}
fn default_keep_readings() -> u32 {
    35
}
fn default_keep_daily() -> u32 {
    800
}
fn default_batch() -> usize {
    1000
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: default_store_path(),
            url: None,
            resolution_minutes: default_resolution(),
            keep_readings_days: default_keep_readings(),
            keep_daily_days: default_keep_daily(),
            batch_max: default_batch(),
        }
    }
}

/// How long a billing period lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    Monthly,
    Bimonthly,
    Quarterly,
    Yearly,
}

impl PeriodKind {
    pub fn months(self) -> u32 {
        match self {
            PeriodKind::Monthly => 1,
            PeriodKind::Bimonthly => 2,
            PeriodKind::Quarterly => 3,
            PeriodKind::Yearly => 12,
        }
    }
}

/// `[billing]`: periods, deadlines, checks, exports and consumption alarm defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSection {
    #[serde(default = "default_period")]
    pub period: PeriodKind,
    /// First month of the first term of the year (bimonthly from 1: Jan–Feb, Mar–Apr, …).
    #[serde(default = "one")]
    pub first_month: u32,
    /// Day of the month whose local midnight closes a period.
    #[serde(default = "one")]
    pub deadline_day: u32,
    /// IANA time zone of the deadlines and local days.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Readings farther than this from the deadline give no close value.
    #[serde(default = "default_max_gap")]
    pub max_gap_hours: f64,
    /// Share of a period's days a meter must be heard on (else `missing`).
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// Consumption above this × the meter's median of its previous 6 periods is implausible.
    #[serde(default = "default_max_factor")]
    pub max_factor: f64,
    /// Meter clock farther off the gateway's than this is `clock_drift`.
    #[serde(default = "default_drift")]
    pub clock_drift_minutes: f64,
    /// Directory the CSV report of each closed period is written to.
    #[serde(default)]
    pub export_dir: Option<PathBuf>,
    /// CSV delimiter of exported files.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Publish each closed period's report per meter (retained) on MQTT.
    #[serde(default = "yes")]
    pub publish: bool,
    /// Consumption alarm thresholds per medium (`water`, `heat`, …), over the defaults.
    #[serde(default)]
    pub alarms: BTreeMap<String, Thresholds>,
}

fn default_period() -> PeriodKind {
    PeriodKind::Monthly
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_timezone() -> String {
    "UTC".to_owned()
}
fn default_max_gap() -> f64 {
    48.0
}
fn default_min_coverage() -> f64 {
    0.8
}
fn default_max_factor() -> f64 {
    3.0
}
fn default_drift() -> f64 {
    60.0
}
fn default_delimiter() -> char {
    ','
}

impl Default for BillingSection {
    fn default() -> Self {
        BillingSection {
            period: default_period(),
            first_month: 1,
            deadline_day: 1,
            timezone: default_timezone(),
            max_gap_hours: default_max_gap(),
            min_coverage: default_min_coverage(),
            max_factor: default_max_factor(),
            clock_drift_minutes: default_drift(),
            export_dir: None,
            delimiter: default_delimiter(),
            publish: true,
            alarms: BTreeMap::new(),
        }
    }
}

/// Why `[billing]` or a set of alarm thresholds is unusable (the configuration places it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("billing: first_month {0} must be 1..12")]
    FirstMonth(u32),
    #[error("billing: deadline_day {0} must be 1..28 (every month has it)")]
    DeadlineDay(u32),
    #[error("billing: timezone {0:?} is not a known IANA time zone (e.g. \"Europe/Oslo\")")]
    Timezone(String),
    #[error("billing: max_gap_hours must be above zero")]
    MaxGap,
    #[error("billing: min_coverage must be between 0 and 1")]
    MinCoverage,
    #[error("billing: max_factor must be above 1")]
    MaxFactor,
    #[error("billing.alarms.{medium}: {source}")]
    MediumAlarms {
        medium: String,
        #[source]
        source: Box<SettingsError>,
    },
    /// A threshold (`leak_hours`, `burst_m3h`, ...) that must be above zero.
    #[error("{0} must be above zero")]
    NotPositive(&'static str),
}

impl BillingSection {
    /// Why the section is unusable, if it is.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(1..=12).contains(&self.first_month) {
            return Err(SettingsError::FirstMonth(self.first_month));
        }
        if !(1..=28).contains(&self.deadline_day) {
            return Err(SettingsError::DeadlineDay(self.deadline_day));
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(SettingsError::Timezone(self.timezone.clone()));
        }
        if !(self.max_gap_hours.is_finite() && self.max_gap_hours > 0.0) {
            return Err(SettingsError::MaxGap);
        }
        if !(0.0..=1.0).contains(&self.min_coverage) {
            return Err(SettingsError::MinCoverage);
        }
        if !(self.max_factor.is_finite() && self.max_factor > 1.0) {
            return Err(SettingsError::MaxFactor);
        }
        for (medium, t) in &self.alarms {
            t.validate().map_err(|e| SettingsError::MediumAlarms {
                medium: medium.to_string(),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }
}

/// Consumption alarm thresholds; unset fields fall back to the medium's, then the defaults
/// of [`Thresholds::defaults`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Leak: consumption in each of this many consecutive hours (water).
    pub leak_hours: Option<u32>,
    /// Burst: flow above this many m³/h.
    pub burst_m3h: Option<f64>,
    /// Stopped: no consumption for this many days while the meter is heard.
    pub stopped_days: Option<f64>,
    /// Overuse: a day above this × the meter's 30-day daily median.
    pub overuse_factor: Option<f64>,
}

impl Thresholds {
    /// The built-in values.
    pub fn defaults() -> Thresholds {
        Thresholds {
            leak_hours: Some(24),
            burst_m3h: Some(3.0),
            stopped_days: Some(14.0),
            overuse_factor: Some(3.0),
        }
    }

    /// `self` with unset fields taken from `base`.
    pub fn over(&self, base: &Thresholds) -> Thresholds {
        Thresholds {
            leak_hours: self.leak_hours.or(base.leak_hours),
            burst_m3h: self.burst_m3h.or(base.burst_m3h),
            stopped_days: self.stopped_days.or(base.stopped_days),
            overuse_factor: self.overuse_factor.or(base.overuse_factor),
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let positive = |name: &'static str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0) => Err(SettingsError::NotPositive(name)),
            _ => Ok(()),
        };
        if self.leak_hours == Some(0) {
            return Err(SettingsError::NotPositive("leak_hours"));
        }
        positive("burst_m3h", self.burst_m3h)?;
        positive("stopped_days", self.stopped_days)?;
        positive("overuse_factor", self.overuse_factor)
    }
}
