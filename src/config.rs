//! The daemon's TOML configuration (`/etc/wmbusd/wmbusd.toml`) and the optional key file.
//!
//! Unknown keys are errors everywhere (`deny_unknown_fields`), and every error names
//! `file:line:column` of the offending text where there is one. Meter keys never appear in an
//! error message or in `Debug` output.
//!
//! Layout (see `config/wmbusd.toml` for the commented example):
//!
//! - `[gateway]` `id` (required; used in MQTT topics), `key_file` (optional path of a key file,
//!   relative paths are taken from the directory of the main file), `drivers_dir` (optional
//!   directory of extra driver definitions; default `drivers.d` beside the main file, used
//!   when it exists — `/etc/wmbusd/drivers.d` for the installed configuration).
//! - `[[radio]]` (one or more): `driver` (`im871a` `amb8465` `cul` `rtlwmbus` `replay` `auto`),
//!   `device` (required except for `auto`; `tcp://host:port` for a dongle behind ser2net
//!   or an Ethernet-serial converter), `modes` (not N1), `baud`, `watchdog_secs`,
//!   `replay_interval_ms`.
//! - `[[bus]]` (zero or more wired M-Bus masters): `name`, `device`, `baud`, `poll_interval`,
//!   `meters`, `missing_after`, `retries`; see [`crate::bus::config`].
//! - `[mqtt]` (optional; without it readings go to stdout only).
//! - `[spool]`, `[pipeline]`, `[health]`: all fields optional.
//! - `[[meter]]`: `id` (8 hex/BCD digits), `key` (32 hex digits, optional), `name`,
//!   `manufacturer`.
//!
//! The key file holds `[[key]]` tables with `id`, `key` and optional `name`, `manufacturer`.
//! It must be owner-only (0600 or 0400): a mode granting anything to group or others
//! (`mode & 0o077 != 0`) is refused ([`secrets_mode_refused`]); a key given
//! both there and in the main file is an error.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

mod central;

pub use self::central::CentralSection;

use crate::billing::settings::{BillingSection, StoreSection, Thresholds};
use crate::frame::LinkMode;
use crate::mqtt::{MqttConfig, TlsConfig};
use crate::spool::{FsyncPolicy, SpoolConfig};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    At(Located),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<Located>),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error(
        "{path}: refusing secrets file with mode {mode:04o}: it must be readable by its owner \
         only (0600 or 0400); run `chmod 600 {path}`"
    )]
    Insecure { path: PathBuf, mode: u32 },
}

impl ConfigError {
    /// Every located problem (one for `At`, all for `Many`).
    pub fn locations(&self) -> Vec<&Located> {
        match self {
            ConfigError::At(l) => vec![l],
            ConfigError::Many(v) => v.iter().collect(),
            _ => Vec::new(),
        }
    }
}

pub use crate::textpos::{line_col, Located};
use crate::textpos::{locate, locate_in};

/// A 128-bit AES meter key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct MeterKey([u8; 16]);

impl MeterKey {
    /// Parses 32 hex digits. The error never contains the input.
    pub fn from_hex(s: &str) -> Result<MeterKey, String> {
        if s.len() != 32 {
            return Err(format!(
                "key must be 32 hex digits, found {} characters",
                s.chars().count()
            ));
        }
        let mut key = [0u8; 16];
        hex::decode_to_slice(s, &mut key)
            .map_err(|_| "key must contain only hex digits 0-9 a-f".to_string())?;
        Ok(MeterKey(key))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Upper-case hex, for loading into the KeyStore. Do not log it.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl fmt::Debug for MeterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MeterKey(<redacted>)")
    }
}

/// A password or similar string that `Debug` must not show.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The radio layer's driver vocabulary; configuration files name one per `[[radio]]`.
pub use crate::radio::DriverKind as RadioDriver;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub id: String,
    /// Resolved against the main file's directory.
    pub key_file: Option<PathBuf>,
    /// Where extra driver definitions are read from.
    pub drivers_dir: DriversDir,
    /// `mode`: decode here, forward raw frames for central decoding, or both.
    pub mode: GatewayMode,
}

/// What a gateway does with each received frame (`[gateway] mode`): `"decode"` (the
/// default), `"forward"` (raw frames on `<prefix>/<gateway>/raw`, no keys needed), or both
/// as a list, `["decode", "forward"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayMode {
    pub decode: bool,
    pub forward: bool,
}

impl Default for GatewayMode {
    fn default() -> Self {
        GatewayMode {
            decode: true,
            forward: false,
        }
    }
}

/// `mode` as written: one name or a list of names.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    One(String),
    Many(Vec<String>),
}

impl RawMode {
    fn resolve(self) -> Result<GatewayMode, String> {
        let names = match self {
            RawMode::One(n) => vec![n],
            RawMode::Many(v) => v,
        };
        let mut mode = GatewayMode {
            decode: false,
            forward: false,
        };
        for n in &names {
            match n.as_str() {
                "decode" => mode.decode = true,
                "forward" => mode.forward = true,
                other => {
                    return Err(format!(
                        "gateway: mode '{other}' is not one of \"decode\", \"forward\""
                    ))
                }
            }
        }
        if !mode.decode && !mode.forward {
            return Err("gateway: mode needs \"decode\", \"forward\" or both".into());
        }
        Ok(mode)
    }
}

/// The directory of driver definitions added to the built-in ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriversDir {
    /// `drivers_dir` was set: the directory must exist.
    Configured(PathBuf),
    /// `drivers.d` beside the configuration file: used when it exists.
    Default(PathBuf),
    /// A configuration without a file (tests, demo): built-in drivers only.
    None,
}

impl DriversDir {
    /// The directory to load now, if any; a missing default directory is not an error.
    pub fn to_load(&self) -> Option<&Path> {
        match self {
            DriversDir::Configured(p) => Some(p),
            DriversDir::Default(p) if p.is_dir() => Some(p),
            DriversDir::Default(_) | DriversDir::None => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadioConfig {
    pub driver: RadioDriver,
    /// Serial device; for `replay` the telegram file, for `rtlwmbus` a command line or `-`
    /// (stdin). `None` only for `auto` (probe all serial ports).
    pub device: Option<String>,
    /// Empty: the driver's default.
    pub modes: Vec<LinkMode>,
    pub baud: Option<u32>,
    pub watchdog_secs: Option<u64>,
    pub replay_interval_ms: Option<u64>,
    /// `clock = "recorded"` (replay only): a line's recorded time is the time of reception.
    pub clock_recorded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password (first line); same permission rule as the key file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_client_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_client_key: Option<PathBuf>,
    /// Default `wmbusd-<gateway id>`.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    #[serde(default)]
    pub publish_raw: bool,
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// Wait before the first reconnect attempt after losing the broker; doubled after
    /// each failed attempt up to `reconnect_max_secs`.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_secs: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
    /// `full` (the reading schema) or `compact` (meter, time, values; see
    /// docs/reading-schema.md).
    #[serde(default)]
    pub payload: PayloadFormat,
}

/// `[homeassistant]`: Home Assistant MQTT discovery (see `crate::homeassistant`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantSection {
    /// Announce the configured meters (default `true` once the section is present).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Home Assistant's `discovery_prefix` (its default is `homeassistant`).
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
}

fn default_true() -> bool {
    true
}

fn default_discovery_prefix() -> String {
    "homeassistant".to_owned()
}

/// Form of the published reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    #[default]
    Full,
    Compact,
}

/// Which readings of a meter are published (`[[meter]] publish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishPolicy {
    /// `"every"` (default): every reading.
    #[default]
    Every,
    /// `"changed"` (an unchanged reading at most hourly) or `"interval:15m"`: a reading
    /// whose billing registers and flags did not change is held back until this long after
    /// the last one published.
    Changed { unchanged_every: Duration },
}

impl PublishPolicy {
    /// `every`, `changed`, `interval:<n>s|m|h`.
    pub fn parse(text: &str) -> Result<PublishPolicy, String> {
        let bad = || {
            format!("publish {text:?}: expected \"every\", \"changed\" or \"interval:<n>s|m|h\" (e.g. \"interval:15m\")")
        };
        match text {
            "every" => Ok(PublishPolicy::Every),
            "changed" => Ok(PublishPolicy::Changed {
                unchanged_every: Duration::from_secs(3600),
            }),
            _ => {
                let spec = text.strip_prefix("interval:").ok_or_else(bad)?;
                let (digits, unit) = spec.split_at(spec.len().saturating_sub(1));
                let n: u64 = digits.parse().map_err(|_| bad())?;
                let secs = match unit {
                    "s" => n,
                    "m" => n.saturating_mul(60),
                    "h" => n.saturating_mul(3600),
                    _ => return Err(bad()),
                };
                if secs == 0 {
                    return Err(bad());
                }
                Ok(PublishPolicy::Changed {
                    unchanged_every: Duration::from_secs(secs),
                })
            }
        }
    }
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    "wmbus".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    1
}
fn default_reconnect_max() -> u64 {
    60
}
fn default_max_inflight() -> u16 {
    128
}

impl MqttSection {
    /// The runtime MQTT settings; reads `password_file` if given.
    pub fn to_mqtt_config(&self, gateway_id: &str) -> Result<MqttConfig, ConfigError> {
        let mut c = MqttConfig::new(self.host.clone(), self.port, gateway_id);
        if let Some(id) = &self.client_id {
            c.client_id = id.clone();
        }
        c.username = self.username.clone();
        c.password = match (&self.password, &self.password_file) {
            (Some(p), _) => Some(p.expose().to_string()),
            (None, Some(path)) => {
                check_private(path)?;
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.clone(),
                    source,
                })?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
            (None, None) => None,
        };
        c.tls = self.tls_ca_file.as_ref().map(|ca| TlsConfig {
            ca_file: ca.clone(),
            client_cert: self.tls_client_cert.clone(),
            client_key: self.tls_client_key.clone(),
        });
        c.topic_prefix = self.topic_prefix.clone();
        c.keep_alive = Duration::from_secs(self.keep_alive_secs);
        c.publish_raw = self.publish_raw;
        c.max_inflight = self.max_inflight;
        c.reconnect_min = Duration::from_secs(self.reconnect_min_secs);
        c.reconnect_max = Duration::from_secs(self.reconnect_max_secs);
        Ok(c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    Always,
    Interval,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    #[serde(default = "default_fsync")]
    pub fsync: FsyncMode,
    #[serde(default = "default_fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// On SIGTERM, how long the daemon keeps delivering spooled readings before it stops
    /// (the rest stays spooled for the next start).
    #[serde(default = "default_shutdown_drain_secs")]
    pub shutdown_drain_secs: u64,
    /// Readings that could not be written (disk full) wait in memory for the broker, at most
    /// this many (the oldest are dropped beyond, counted).
    #[serde(default = "default_not_durable_max")]
    pub not_durable_max: usize,
}

fn default_shutdown_drain_secs() -> u64 {
    5
}
fn default_not_durable_max() -> usize {
    crate::spool::NOT_DURABLE_MAX
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("/var/lib/wmbusd/spool")
}
fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_segment_bytes() -> u64 {
    1024 * 1024
}
fn default_fsync() -> FsyncMode {
    FsyncMode::Always
}
fn default_fsync_interval_ms() -> u64 {
    1000
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            dir: default_spool_dir(),
            max_bytes: default_max_bytes(),
            segment_bytes: default_segment_bytes(),
            fsync: default_fsync(),
            fsync_interval_ms: default_fsync_interval_ms(),
            shutdown_drain_secs: default_shutdown_drain_secs(),
            not_durable_max: default_not_durable_max(),
        }
    }
}

impl SpoolSection {
    pub fn to_spool_config(&self) -> SpoolConfig {
        SpoolConfig {
            dir: self.dir.clone(),
            max_bytes: self.max_bytes,
            segment_bytes: self.segment_bytes,
            fsync: match self.fsync {
                FsyncMode::Always => FsyncPolicy::Always,
                FsyncMode::Interval => {
                    FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms))
                }
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default = "default_dedupe")]
    pub dedupe_window_secs: u64,
    /// Drop telegrams of meters not listed in `[[meter]]` or the key file.
    #[serde(default)]
    pub only_configured_meters: bool,
    /// A mode-7 meter whose message counter goes back is a replay, unless its last
    /// accepted counter is older than this: then it is a restart (0: always a restart).
    #[serde(default = "default_replay_reset_hours")]
    pub replay_reset_hours: u64,
    /// How long the first copy of a telegram waits for copies from other radios, which
    /// join its `receivers` (default: 0 with one radio, 50 ms with more).
    #[serde(default)]
    pub gather_ms: Option<u64>,
}

fn default_replay_reset_hours() -> u64 {
    crate::replay::DEFAULT_RESET_HOURS
}

fn default_dedupe() -> u64 {
    30
}

impl PipelineConfig {
    /// The receiver-gathering window for a gateway with `radios` radios.
    pub fn gather_window(&self, radios: usize) -> Duration {
        let default = if radios > 1 { 50 } else { 0 };
        Duration::from_millis(self.gather_ms.unwrap_or(default))
    }

    /// The replay tolerance these settings give.
    pub fn replay_rule(&self) -> crate::replay::Rule {
        crate::replay::Rule {
            reset_after: Duration::from_secs(self.replay_reset_hours.saturating_mul(3600)),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            dedupe_window_secs: default_dedupe(),
            only_configured_meters: false,
            replay_reset_hours: default_replay_reset_hours(),
            gather_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// A meter is reported missing after this many of its usual intervals without a telegram.
    #[serde(default = "default_missing_factor")]
    pub missing_factor: f64,
    /// Default (when neither this nor `run --state-file` is given): `state.json` beside the
    /// spool directory, `/var/lib/wmbusd/state.json` for the installed configuration.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Health documents (summary and per meter) are published at most this often.
    #[serde(default = "default_publish_interval")]
    pub publish_interval_secs: u64,
    /// The state file is written at most this often (and at shutdown; a newly learned
    /// compact format within a second).
    #[serde(default = "default_state_interval")]
    pub state_interval_secs: u64,
}

fn default_publish_interval() -> u64 {
    60
}
fn default_state_interval() -> u64 {
    30
}

fn default_missing_factor() -> f64 {
    3.0
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            missing_factor: default_missing_factor(),
            state_file: None,
            publish_interval_secs: default_publish_interval(),
            state_interval_secs: default_state_interval(),
        }
    }
}

/// Where a meter's key came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config,
    KeyFile,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeterConfig {
    /// 8 hex/BCD digits, lower-case.
    pub id: String,
    pub key: Option<MeterKey>,
    pub key_source: Option<KeySource>,
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub publish: PublishPolicy,
    /// Apartment or other label for billing files.
    pub label: Option<String>,
    /// Billing medium (`water`, `warm_water`, `heat`, `cooling`, `hca`, `electricity`,
    /// `gas`); `None`: taken from the meter's device type.
    pub medium: Option<String>,
    /// Consumption alarm thresholds of this meter, over those of its medium.
    pub alarms: Option<Thresholds>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub radios: Vec<RadioConfig>,
    /// Wired M-Bus masters (`[[bus]]`).
    pub buses: Vec<crate::bus::config::BusConfig>,
    pub mqtt: Option<MqttSection>,
    pub spool: SpoolSection,
    pub pipeline: PipelineConfig,
    pub health: HealthConfig,
    /// `[store]`: the reading store is on when the section is present.
    pub store: Option<StoreSection>,
    pub billing: BillingSection,
    /// From `[[meter]]` and the key file, merged; ids unique.
    pub meters: Vec<MeterConfig>,
    /// `[central]`: settings of `wmbusd central`.
    pub central: Option<CentralSection>,
    /// `[homeassistant]`: MQTT discovery of the configured meters.
    pub homeassistant: Option<HomeAssistantSection>,
}

// ---- raw, as parsed -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: RawGateway,
    #[serde(default)]
    radio: Vec<RawRadio>,
    #[serde(default)]
    bus: Vec<crate::bus::config::RawBus>,
    #[serde(default)]
    mqtt: Option<MqttSection>,
    #[serde(default)]
    spool: SpoolSection,
    #[serde(default)]
    pipeline: PipelineConfig,
    #[serde(default)]
    health: HealthConfig,
    #[serde(default)]
    store: Option<StoreSection>,
    #[serde(default)]
    billing: BillingSection,
    #[serde(default)]
    meter: Vec<RawMeter>,
    #[serde(default)]
    central: Option<CentralSection>,
    #[serde(default)]
    homeassistant: Option<HomeAssistantSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    id: Spanned<String>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    drivers_dir: Option<PathBuf>,
    #[serde(default)]
    mode: Option<RawMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRadio {
    driver: Spanned<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    modes: Vec<Spanned<String>>,
    #[serde(default)]
    baud: Option<Spanned<u32>>,
    #[serde(default)]
    watchdog_secs: Option<u64>,
    #[serde(default)]
    replay_interval_ms: Option<u64>,
    #[serde(default)]
    clock: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeter {
    id: Spanned<String>,
    #[serde(default)]
    key: Option<Spanned<Secret>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    manufacturer: Option<String>,
    #[serde(default)]
    publish: Option<Spanned<String>>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    medium: Option<String>,
    #[serde(default)]
    alarms: Option<Thresholds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    #[serde(default)]
    key: Vec<RawMeter>,
}

fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        // Built from message + span, not Display: Display quotes the source line, which may
        // hold a key.
        let span = e.span().unwrap_or(0..0);
        ConfigError::At(locate(name, text, span, e.message().trim_end()))
    })
}

/// Lower-cased 8-digit meter id, or why not.
fn normalize_meter_id(id: &str) -> Result<String, String> {
    if id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(format!(
            "meter id '{}' must be 8 hex/BCD digits, e.g. \"12345678\"",
            id.escape_default()
        ))
    }
}

/// True when a secrets file's mode grants anything to group or others (owner-only rule).
pub fn secrets_mode_refused(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Refuses secrets files readable or writable by anyone but their owner.
fn check_private(path: &Path) -> Result<(), ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if secrets_mode_refused(mode) {
        return Err(ConfigError::Insecure {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Problems of whole sections (no position to show), every one of them.
fn section_problems(raw: &RawConfig) -> Vec<String> {
    let mut unplaced: Vec<String> = Vec::new();
    if let Some(h) = raw.homeassistant.as_ref().filter(|h| h.enabled) {
        if let Err(e) = validate_topic_part("homeassistant.discovery_prefix", &h.discovery_prefix) {
            unplaced.push(e);
        }
        if raw.mqtt.is_none() {
            unplaced.push("homeassistant: discovery needs an [mqtt] section".into());
        }
    }
    if let Some(m) = &raw.mqtt {
        if let Err(e) = validate_topic_part("mqtt.topic_prefix", &m.topic_prefix) {
            unplaced.push(e);
        }
        if m.password.is_some() && m.password_file.is_some() {
            unplaced.push("mqtt: give either password or password_file, not both".into());
        }
        if (m.password.is_some() || m.password_file.is_some()) && m.username.is_none() {
            unplaced.push("mqtt: a password needs a username".into());
        }
        if m.tls_client_cert.is_some() != m.tls_client_key.is_some() {
            unplaced.push("mqtt: tls_client_cert and tls_client_key go together".into());
        }
        if m.max_inflight == 0 {
            unplaced.push("mqtt: max_inflight must be at least 1".into());
        }
        if m.reconnect_min_secs == 0 || m.reconnect_max_secs < m.reconnect_min_secs {
            unplaced.push(format!(
                "mqtt: reconnect_min_secs ({}) must be at least 1 and not above reconnect_max_secs ({})",
                m.reconnect_min_secs, m.reconnect_max_secs
            ));
        }
    }
    if raw.spool.fsync == FsyncMode::Interval && raw.spool.fsync_interval_ms == 0 {
        unplaced.push("spool: fsync_interval_ms must be above zero (or fsync = \"always\")".into());
    }
    if !(raw.health.missing_factor.is_finite() && raw.health.missing_factor >= 1.0) {
        unplaced.push("health: missing_factor must be at least 1.0".into());
    }

    if let Err(e) = raw.billing.validate() {
        unplaced.push(e.to_string());
    }
    if let Some(store) = &raw.store {
        if let Some(url) = store
            .url
            .as_deref()
            .filter(|u| !u.starts_with("sqlite://") && !u.starts_with("postgres"))
        {
            unplaced.push(format!(
                "store: url '{url}' is neither sqlite:// nor postgres://"
            ));
        }
        if store.resolution_minutes == 0 || store.batch_max == 0 {
            unplaced.push("store: resolution_minutes and batch_max must be above zero".into());
        }
    }
    for m in &raw.meter {
        if let Some(t) = &m.alarms {
            if let Err(e) = t.validate() {
                unplaced.push(format!("meter {}: alarms: {e}", m.id.get_ref()));
            }
        }
    }
    unplaced
}

/// A meter as read from one file, with positions kept for merge errors.
struct ParsedMeter {
    meter: MeterConfig,
    id_at: Located,
    key_at: Option<Located>,
}

fn parse_meters(
    raw: Vec<RawMeter>,
    name: &str,
    text: &str,
    source: KeySource,
) -> (Vec<ParsedMeter>, Vec<Located>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, Located> = HashMap::new();
    let index = crate::textpos::LineIndex::new(text);
    for m in raw {
        let id_span = m.id.span();
        let id_at = locate_in(&index, name, text, id_span.clone(), "");
        let id = match normalize_meter_id(m.id.get_ref()) {
            Ok(id) => id,
            Err(msg) => {
                errors.push(locate_in(&index, name, text, id_span, msg));
                continue;
            }
        };
        if let Some(first) = seen.get(&id) {
            errors.push(locate_in(
                &index,
                name,
                text,
                id_span,
                format!(
                    "duplicate meter id '{id}' (first defined at line {}, column {})",
                    first.line, first.column
                ),
            ));
            continue;
        }
        seen.insert(id.clone(), id_at.clone());
        let at = |span: Range<usize>, msg: String| locate_in(&index, name, text, span, msg);
        let key = m.key.as_ref().map(|k| {
            MeterKey::from_hex(k.get_ref().expose())
                .map(|key| (key, at(k.span(), String::new())))
                .map_err(|msg| at(k.span(), format!("meter {id}: {msg}")))
        });
        let (key, key_at) = match key.transpose() {
            Ok(found) => found.unzip(),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let publish = m.publish.as_ref().map_or(Ok(PublishPolicy::Every), |p| {
            PublishPolicy::parse(p.get_ref())
                .map_err(|msg| at(p.span(), format!("meter {id}: {msg}")))
        });
        let publish = match publish {
            Ok(policy) => policy,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        out.push(ParsedMeter {
            meter: MeterConfig {
                id,
                key_source: key.as_ref().map(|_| source.clone()),
                key,
                name: m.name,
                manufacturer: m.manufacturer,
                publish,
                label: m.label,
                medium: m.medium,
                alarms: m.alarms,
            },
            id_at,
            key_at,
        });
    }
    (out, errors)
}

fn validate_topic_part(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.contains(['+', '#', '\0']) {
        return Err(format!(
            "{what} '{value}' must not contain MQTT wildcards '+' or '#'"
        ));
    }
    Ok(())
}

impl Config {
    /// Reads, parses and validates `path`, then the key file it names (if any).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.display().to_string();
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, &name, Some(base))
    }

    /// Parses and validates `text`; `name` is used in error messages. A relative `key_file`
    /// is resolved against the current directory.
    pub fn from_str_named(text: &str, name: &str) -> Result<Config, ConfigError> {
        Self::parse(text, name, None)
    }

    fn parse(text: &str, name: &str, base: Option<&Path>) -> Result<Config, ConfigError> {
        let mut raw: RawConfig = parse_toml(text, name)?;
        let mut errors = Vec::new();
        // Problems without a position: all collected, so one run reports every one.
        let mut unplaced = section_problems(&raw);

        let gateway_id = raw.gateway.id.get_ref().clone();
        if let Err(msg) = validate_gateway_id(&gateway_id) {
            errors.push(locate(name, text, raw.gateway.id.span(), msg));
        }
        let radios = std::mem::take(&mut raw.radio)
            .into_iter()
            .filter_map(|r| parse_radio(r, name, text, &mut errors))
            .collect();
        let buses =
            crate::bus::config::validate(std::mem::take(&mut raw.bus), name, text, &mut errors);
        if let Some(store) = &mut raw.store {
            store_path_from_url(store);
        }
        let mode = match raw.gateway.mode.take() {
            Some(m) => m.resolve().unwrap_or_else(|e| {
                unplaced.push(e);
                GatewayMode::default()
            }),
            None => GatewayMode::default(),
        };
        let (mut meters, meter_errors) = parse_meters(
            std::mem::take(&mut raw.meter),
            name,
            text,
            KeySource::Config,
        );
        errors.extend(meter_errors);
        all_problems(name, errors, unplaced)?;

        let key_file = raw.gateway.key_file.take().map(|p| match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        });
        if let Some(path) = &key_file {
            merge_key_file(&mut meters, path)?;
        }
        let gateway = GatewayConfig {
            id: gateway_id,
            key_file,
            drivers_dir: drivers_dir(raw.gateway.drivers_dir.take(), base),
            mode,
        };
        Ok(Config {
            gateway,
            radios,
            buses,
            mqtt: raw.mqtt,
            spool: raw.spool,
            pipeline: raw.pipeline,
            health: raw.health,
            store: raw.store,
            billing: raw.billing,
            meters: meters.into_iter().map(|p| p.meter).collect(),
            central: raw.central,
            homeassistant: raw.homeassistant.filter(|h| h.enabled),
        })
    }

    /// (meter id, 32 upper-case hex digits) for every meter with a key, for the KeyStore.
    pub fn keys(&self) -> Vec<(String, String)> {
        self.meters
            .iter()
            .filter_map(|m| m.key.as_ref().map(|k| (m.id.clone(), k.to_hex())))
            .collect()
    }

    /// The runtime MQTT settings, if an `[mqtt]` section exists.
    pub fn mqtt_config(&self) -> Result<Option<MqttConfig>, ConfigError> {
        self.mqtt
            .as_ref()
            .map(|m| m.to_mqtt_config(&self.gateway.id))
            .transpose()
    }
}

fn validate_gateway_id(id: &str) -> Result<(), String> {
    validate_topic_part("gateway id", id)?;
    if id.contains('/') {
        return Err(format!("gateway id '{id}' must not contain '/'"));
    }
    Ok(())
}

/// `url = "sqlite://PATH"` names the store's file.
fn store_path_from_url(store: &mut StoreSection) {
    if let Some(path) = store
        .url
        .as_deref()
        .and_then(|u| u.strip_prefix("sqlite://"))
    {
        store.path = PathBuf::from(path);
    }
}

/// `drivers_dir` as configured (relative to the main file), else `drivers.d` beside it.
fn drivers_dir(configured: Option<PathBuf>, base: Option<&Path>) -> DriversDir {
    match (configured, base) {
        (Some(p), Some(b)) if p.is_relative() => DriversDir::Configured(b.join(p)),
        (Some(p), _) => DriversDir::Configured(p),
        (None, Some(b)) => DriversDir::Default(b.join("drivers.d")),
        (None, None) => DriversDir::None,
    }
}

/// Every problem found, as one error; a single problem without a position stays `Invalid`.
fn all_problems(
    name: &str,
    mut errors: Vec<Located>,
    mut unplaced: Vec<String>,
) -> Result<(), ConfigError> {
    if errors.is_empty() && unplaced.len() == 1 {
        if let Some(message) = unplaced.pop() {
            return Err(ConfigError::Invalid {
                file: name.to_string(),
                message,
            });
        }
    }
    errors.extend(
        unplaced
            .into_iter()
            .map(|message| Located::unplaced(name, message)),
    );
    errors_or((), errors)
}

/// One `[[radio]]` table; `None` when its driver is unknown. Problems go to `errors`.
fn parse_radio(
    r: RawRadio,
    name: &str,
    text: &str,
    errors: &mut Vec<Located>,
) -> Option<RadioConfig> {
    let Some(driver) = RadioDriver::parse(r.driver.get_ref()) else {
        errors.push(locate(
            name,
            text,
            r.driver.span(),
            format!(
                "unknown radio driver '{}', expected one of {}",
                r.driver.get_ref().escape_default(),
                RadioDriver::NAMES.join(", ")
            ),
        ));
        return None;
    };
    let modes = parse_modes(&r.modes, name, text, errors);
    let driver_at = |message: String| locate(name, text, r.driver.span(), message);
    let tcp = r.device.as_deref().is_some_and(|d| d.starts_with("tcp://"));
    if tcp
        && matches!(
            driver,
            RadioDriver::Auto | RadioDriver::Replay | RadioDriver::RtlWmbus
        )
    {
        errors.push(driver_at(format!(
            "a tcp:// device needs the dongle's driver (im871a, amb8465 or cul), not '{}'",
            driver.as_str()
        )));
    }
    if r.device.is_none() && driver != RadioDriver::Auto {
        errors.push(driver_at(format!(
            "radio driver '{}' needs a 'device'",
            driver.as_str()
        )));
    }
    if let Some(b) = r.baud.as_ref().filter(|b| *b.get_ref() == 0) {
        errors.push(locate(name, text, b.span(), "baud must be above zero"));
    }
    let clock_recorded = parse_clock(r.clock.as_ref(), driver, name, text, errors);
    Some(RadioConfig {
        driver,
        device: r.device,
        modes,
        baud: r.baud.map(|b| b.into_inner()),
        watchdog_secs: r.watchdog_secs,
        replay_interval_ms: r.replay_interval_ms,
        clock_recorded,
    })
}

/// A radio's `modes`; N1 and unknown names are problems.
fn parse_modes(
    modes: &[Spanned<String>],
    name: &str,
    text: &str,
    errors: &mut Vec<Located>,
) -> Vec<LinkMode> {
    let mut out = Vec::new();
    for m in modes {
        match LinkMode::parse(m.get_ref()) {
            // No supported dongle receives N-mode (169 MHz); accepting it would
            // start a radio that can never hear anything.
            Some(LinkMode::N1) => errors.push(locate(
                name,
                text,
                m.span(),
                "link mode N1 (169 MHz) is not received by any supported radio; \
                 use S1, T1, C1 or C1+T1",
            )),
            Some(mode) => out.push(mode),
            None => errors.push(locate(
                name,
                text,
                m.span(),
                format!(
                    "unknown link mode '{}', expected one of S1, T1, C1, C1+T1",
                    m.get_ref().escape_default()
                ),
            )),
        }
    }
    out
}

/// `clock`: `"wall"` (default) or `"recorded"` (replay only); true for recorded.
fn parse_clock(
    clock: Option<&Spanned<String>>,
    driver: RadioDriver,
    name: &str,
    text: &str,
    errors: &mut Vec<Located>,
) -> bool {
    let Some(clock) = clock else {
        return false;
    };
    let message = match clock.get_ref().as_str() {
        "wall" => return false,
        "recorded" if driver == RadioDriver::Replay => return true,
        "recorded" => "clock = \"recorded\" needs driver = \"replay\"".to_owned(),
        other => format!(
            "unknown clock '{}', expected \"wall\" or \"recorded\"",
            other.escape_default()
        ),
    };
    errors.push(locate(name, text, clock.span(), message));
    false
}

/// Parses a key file's text (`[[key]]` tables): every entry with its key, or every problem
/// with file, line and column. Shared by the daemon and `wmbusd keys`.
pub fn parse_key_file(text: &str, name: &str) -> Result<Vec<MeterConfig>, ConfigError> {
    let (entries, errors) = parse_key_entries(text, name)?;
    errors_or(entries.into_iter().map(|p| p.meter).collect(), errors)
}

fn parse_key_entries(
    text: &str,
    name: &str,
) -> Result<(Vec<ParsedMeter>, Vec<Located>), ConfigError> {
    let raw: RawKeyFile = parse_toml(text, name)?;
    let (parsed, mut errors) = parse_meters(raw.key, name, text, KeySource::KeyFile);
    let mut entries = Vec::with_capacity(parsed.len());
    for k in parsed {
        if k.meter.key.is_none() {
            errors.push(Located {
                message: format!("key entry for meter {} has no 'key'", k.meter.id),
                ..k.id_at
            });
        } else {
            entries.push(k);
        }
    }
    Ok((entries, errors))
}

fn errors_or<T>(value: T, mut errors: Vec<Located>) -> Result<T, ConfigError> {
    match errors.len() {
        0 => Ok(value),
        1 => Err(ConfigError::At(errors.remove(0))),
        _ => Err(ConfigError::Many(errors)),
    }
}

fn merge_key_file(meters: &mut Vec<ParsedMeter>, path: &Path) -> Result<(), ConfigError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.display().to_string();
    let (from_file, mut errors) = parse_key_entries(&text, &name)?;
    let by_id: HashMap<String, usize> = meters
        .iter()
        .enumerate()
        .map(|(i, m)| (m.meter.id.clone(), i))
        .collect();
    for k in from_file {
        match by_id.get(&k.meter.id).and_then(|&i| meters.get_mut(i)) {
            Some(m) if m.meter.key.is_some() => {
                let first = m.key_at.as_ref().unwrap_or(&m.id_at);
                errors.push(Located {
                    message: format!(
                        "key for meter {} is also given at {}:{}:{}; keep it in one place",
                        k.meter.id, first.file, first.line, first.column
                    ),
                    ..k.key_at.clone().unwrap_or(k.id_at.clone())
                });
            }
            Some(m) => {
                m.meter.key = k.meter.key;
                m.meter.key_source = Some(KeySource::KeyFile);
                if m.meter.name.is_none() {
                    m.meter.name = k.meter.name;
                }
                if m.meter.manufacturer.is_none() {
                    m.meter.manufacturer = k.meter.manufacturer;
                }
                m.key_at = k.key_at;
            }
            None => meters.push(k),
        }
    }
    errors_or((), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_mode_and_store_url() {
        let load =
            |extra: &str| Config::from_str_named(&format!("[gateway]\nid = \"g\"\n{extra}"), "t");
        let c = load("").unwrap();
        assert_eq!(
            (c.gateway.mode.decode, c.gateway.mode.forward),
            (true, false)
        );
        let c = load("mode = \"forward\"\n").unwrap();
        assert_eq!(
            (c.gateway.mode.decode, c.gateway.mode.forward),
            (false, true)
        );
        let c = load("mode = [\"decode\", \"forward\"]\n").unwrap();
        assert_eq!(
            (c.gateway.mode.decode, c.gateway.mode.forward),
            (true, true)
        );
        assert!(load("mode = \"relay\"\n")
            .unwrap_err()
            .to_string()
            .contains("relay"));
        assert!(load("mode = []\n").is_err());
        let c = load("[store]\nurl = \"sqlite:///srv/r.sqlite\"\n").unwrap();
        assert_eq!(c.store.unwrap().path, PathBuf::from("/srv/r.sqlite"));
        let c =
            load("[store]\nurl = \"postgres://db/wmbus\"\n[central]\ngroup = \"g2\"\n").unwrap();
        assert_eq!(c.central.unwrap().group, "g2");
        assert!(load("[store]\nurl = \"mysql://db\"\n").is_err());
    }

    #[test]
    fn line_col_counts_from_one() {
        let t = "a = 1\nbb = 2\n  cé = 3\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 7), (2, 2));
        let c3 = t.find("= 3").unwrap();
        assert_eq!(line_col(t, c3), (3, 6));
        assert_eq!(line_col(t, 10_000).0, 4);
    }

    #[test]
    fn meter_key_parsing_never_echoes_input() {
        let secret = "00112233445566778899AABBCCDDEEFZ";
        let err = MeterKey::from_hex(secret).unwrap_err();
        assert!(
            !err.contains(secret) && !err.contains("0011223344"),
            "{err}"
        );
        let err = MeterKey::from_hex("0011").unwrap_err();
        assert!(err.contains("found 4 characters"), "{err}");
        let k = MeterKey::from_hex("00112233445566778899aabbccddeeff").unwrap();
        assert_eq!(k.to_hex(), "00112233445566778899AABBCCDDEEFF");
        assert_eq!(format!("{k:?}"), "MeterKey(<redacted>)");
    }

    #[test]
    fn meter_ids() {
        assert_eq!(normalize_meter_id("12345678").unwrap(), "12345678");
        assert_eq!(normalize_meter_id("ABCDEF01").unwrap(), "abcdef01");
        assert!(normalize_meter_id("1234567").is_err());
        assert!(normalize_meter_id("1234567G").is_err());
    }

    const KEY_A: &str = "00112233445566778899AABBCCDDEEFF";
    const KEY_B: &str = "FFEEDDCCBBAA99887766554433221100";

    fn minimal(extra: &str) -> String {
        format!("[gateway]\nid = \"gw-1\"\n{extra}")
    }

    fn single(err: ConfigError) -> Located {
        match err {
            ConfigError::At(l) => l,
            other => panic!("expected one located error, got {other:?}"),
        }
    }

    /// Replay tolerance and the gathering window: defaults, and as written.
    #[test]
    fn replay_reset_and_gather_window() {
        let p = PipelineConfig::default();
        assert_eq!(p.replay_rule().reset_after, Duration::from_secs(24 * 3600));
        assert_eq!(p.gather_window(1), Duration::ZERO);
        assert_eq!(p.gather_window(2), Duration::from_millis(50));
        let p: PipelineConfig = toml::from_str("replay_reset_hours = 0\ngather_ms = 0").unwrap();
        assert_eq!(p.replay_rule().reset_after, Duration::ZERO);
        assert_eq!(p.gather_window(3), Duration::ZERO);
    }

    #[test]
    fn shipped_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wmbusd.toml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.gateway.id, "gw-1");
        assert_eq!(cfg.radios.len(), 1);
        assert_eq!(cfg.radios[0].driver, RadioDriver::Im871a);
        assert_eq!(cfg.radios[0].modes, vec![LinkMode::C1, LinkMode::T1]);
        assert_eq!(cfg.meters.len(), 2);
        let mqtt = cfg.mqtt_config().unwrap().unwrap();
        assert_eq!((mqtt.host.as_str(), mqtt.port), ("127.0.0.1", 1883));
        assert_eq!(mqtt.status_topic(), "wmbus/gw-1/status");
        assert_eq!(cfg.spool.to_spool_config().fsync, FsyncPolicy::Always);
    }

    #[test]
    fn valid_config_with_all_sections() {
        let text = format!(
            r#"
[gateway]
id = "roof"

[[radio]]
driver = "replay"
device = "telegrams.txt"
replay_interval_ms = 10

[[radio]]
driver = "auto"
modes = ["c1+t1"]

[mqtt]
host = "broker.lan"
port = 8883
username = "gw"
password = "pw-not-shown"
tls_ca_file = "/etc/ssl/ca.pem"
keep_alive_secs = 10
publish_raw = true
reconnect_max_secs = 300

[spool]
dir = "/tmp/spool"
fsync = "interval"
fsync_interval_ms = 250

[pipeline]
dedupe_window_secs = 5
only_configured_meters = true

[health]
missing_factor = 2.5

[[meter]]
id = "ABCD0001"
key = "{KEY_A}"
"#
        );
        let cfg = Config::from_str_named(&text, "t.toml").unwrap();
        assert_eq!(cfg.radios[1].device, None);
        assert_eq!(cfg.radios[1].modes, vec![LinkMode::C1T1]);
        assert_eq!(
            cfg.spool.to_spool_config().fsync,
            FsyncPolicy::Interval(Duration::from_millis(250))
        );
        assert!(cfg.pipeline.only_configured_meters);
        assert_eq!(
            cfg.keys(),
            vec![("abcd0001".to_string(), KEY_A.to_string())]
        );
        let mqtt = cfg.mqtt_config().unwrap().unwrap();
        assert_eq!(mqtt.password.as_deref(), Some("pw-not-shown"));
        assert!(mqtt.tls.is_some());
        assert_eq!(mqtt.client_id, "wmbusd-roof");
        assert_eq!(
            (mqtt.reconnect_min, mqtt.reconnect_max),
            (Duration::from_secs(1), Duration::from_secs(300))
        );
        // Secrets stay out of Debug output.
        let dbg = format!("{cfg:?} {mqtt:?}");
        assert!(
            !dbg.contains(KEY_A) && !dbg.contains(&KEY_A.to_lowercase()),
            "{dbg}"
        );
        assert!(!dbg.contains("pw-not-shown"), "{dbg}");
    }

    #[test]
    fn reconnect_backoff_range_is_checked() {
        let text = |min: u64, max: u64| {
            format!(
                "[gateway]\nid = \"gw\"\n[mqtt]\nhost = \"h\"\nreconnect_min_secs = {min}\nreconnect_max_secs = {max}\n"
            )
        };
        let cfg = Config::from_str_named(&text(5, 5), "t.toml").unwrap();
        let mqtt = cfg.mqtt_config().unwrap().unwrap();
        assert_eq!(mqtt.reconnect_max, Duration::from_secs(5));
        for (min, max) in [(0, 60), (30, 10)] {
            let e = Config::from_str_named(&text(min, max), "t.toml").unwrap_err();
            assert!(e.to_string().contains("reconnect_min_secs"), "{e}");
        }
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let text = "[gateway]\nid = \"gw\"\n\n[mqtt]\nhost = \"h\"\n  hots = \"x\"\n";
        let e = single(Config::from_str_named(text, "wmbusd.toml").unwrap_err());
        assert_eq!((e.line, e.column), (6, 3));
        assert!(e.message.contains("unknown field `hots`"), "{}", e.message);
        assert!(e.message.contains("expected one of"), "{}", e.message);
        assert!(
            e.to_string().starts_with("wmbusd.toml:6:3: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn unknown_top_level_table_is_an_error() {
        let e =
            single(Config::from_str_named(&minimal("[mqttt]\nhost = \"h\"\n"), "c").unwrap_err());
        assert_eq!(e.line, 3);
        assert!(e.message.contains("mqttt"), "{}", e.message);
    }

    #[test]
    fn malformed_key_is_located_and_not_echoed() {
        let bad = "00112233445566778899AABBCCDDEEFG";
        let text = minimal(&format!("[[meter]]\nid = \"12345678\"\nkey = \"{bad}\"\n"));
        let err = Config::from_str_named(&text, "c.toml").unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(bad) && !shown.contains("0011223344"),
            "{shown}"
        );
        let e = single(err);
        assert_eq!((e.line, e.column), (5, 7));
        assert!(e.message.contains("hex digits"), "{}", e.message);
    }

    #[test]
    fn short_key_and_bad_id_are_all_reported() {
        let text =
            minimal("[[meter]]\nid = \"1234\"\n\n[[meter]]\nid = \"12345678\"\nkey = \"0011\"\n");
        let err = Config::from_str_named(&text, "c.toml").unwrap_err();
        let locs: Vec<(usize, usize)> =
            err.locations().iter().map(|l| (l.line, l.column)).collect();
        assert_eq!(locs, vec![(4, 6), (8, 7)], "{err}");
    }

    #[test]
    fn duplicate_meter_is_rejected() {
        let text = minimal("[[meter]]\nid = \"12345678\"\n[[meter]]\nid = \"12345678\"\n");
        let e = single(Config::from_str_named(&text, "c.toml").unwrap_err());
        assert_eq!((e.line, e.column), (6, 6));
        assert!(
            e.message.contains("duplicate meter id '12345678'"),
            "{}",
            e.message
        );
        assert!(e.message.contains("line 4"), "{}", e.message);
    }

    #[test]
    fn unknown_driver_and_mode() {
        let text = minimal("[[radio]]\ndriver = \"im999\"\ndevice = \"/dev/x\"\n");
        let e = single(Config::from_str_named(&text, "c").unwrap_err());
        assert_eq!((e.line, e.column), (4, 10));
        assert!(e.message.contains("im871a, amb8465"), "{}", e.message);
        let text =
            minimal("[[radio]]\ndriver = \"cul\"\ndevice = \"/dev/x\"\nmodes = [\"T1\", \"X9\"]\n");
        let e = single(Config::from_str_named(&text, "c").unwrap_err());
        assert_eq!((e.line, e.column), (6, 16));
        assert!(
            e.message.contains("unknown link mode 'X9'"),
            "{}",
            e.message
        );
        let text = minimal("[[radio]]\ndriver = \"cul\"\n");
        let e = single(Config::from_str_named(&text, "c").unwrap_err());
        assert!(e.message.contains("needs a 'device'"), "{}", e.message);
    }

    #[test]
    fn section_level_checks() {
        for extra in [
            "[mqtt]\nhost = \"h\"\npassword = \"p\"\n",
            "[mqtt]\nhost = \"h\"\ntopic_prefix = \"a/#\"\n",
            "[spool]\nfsync = \"interval\"\nfsync_interval_ms = 0\n",
            "[health]\nmissing_factor = 0.5\n",
        ] {
            let err = Config::from_str_named(&minimal(extra), "c").unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { .. }),
                "{extra}: {err:?}"
            );
        }
        let e = single(
            Config::from_str_named(&minimal("[spool]\nfsync = \"sometimes\"\n"), "c").unwrap_err(),
        );
        assert_eq!(e.line, 4);
    }

    fn write_key_file(dir: &Path, mode: u32, body: &str) -> PathBuf {
        let path = dir.join("keys.toml");
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn main_with_key_file(dir: &Path, meters: &str) -> PathBuf {
        let path = dir.join("wmbusd.toml");
        std::fs::write(
            &path,
            format!("[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n{meters}"),
        )
        .unwrap();
        path
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_key_file(
            dir.path(),
            0o644,
            &format!("[[key]]\nid = \"12345678\"\nkey = \"{KEY_A}\"\n"),
        );
        let main = main_with_key_file(dir.path(), "");
        let err = Config::load(&main).unwrap_err();
        assert!(
            matches!(err, ConfigError::Insecure { mode: 0o644, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("0644") && msg.contains("chmod 600"), "{msg}");
        assert!(!msg.contains(KEY_A));
    }

    #[test]
    fn key_file_readable_by_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("[[key]]\nid = \"12345678\"\nkey = \"{KEY_A}\"\n");
        let main = main_with_key_file(dir.path(), "");
        for mode in [0o640, 0o660, 0o604] {
            write_key_file(dir.path(), mode, &body);
            let err = Config::load(&main).unwrap_err();
            assert!(
                matches!(err, ConfigError::Insecure { .. }),
                "{mode:o}: {err:?}"
            );
            assert!(err.to_string().contains("owner only"), "{err}");
        }
        for mode in [0o600, 0o400] {
            write_key_file(dir.path(), mode, &body);
            Config::load(&main).unwrap();
        }
    }

    #[test]
    fn private_key_file_is_merged() {
        let dir = tempfile::tempdir().unwrap();
        write_key_file(
            dir.path(),
            0o600,
            &format!(
                "[[key]]\nid = \"12345678\"\nkey = \"{KEY_A}\"\nname = \"from-key-file\"\n\n\
                 [[key]]\nid = \"99999999\"\nkey = \"{KEY_B}\"\nmanufacturer = \"KAM\"\n"
            ),
        );
        let main = main_with_key_file(
            dir.path(),
            "[[meter]]\nid = \"12345678\"\nname = \"cold\"\n",
        );
        let cfg = Config::load(&main).unwrap();
        let mut keys = cfg.keys();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                ("12345678".to_string(), KEY_A.to_string()),
                ("99999999".to_string(), KEY_B.to_string()),
            ]
        );
        let m = cfg.meters.iter().find(|m| m.id == "12345678").unwrap();
        assert_eq!(m.name.as_deref(), Some("cold"));
        assert_eq!(m.key_source, Some(KeySource::KeyFile));
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(KEY_A) && !dbg.contains(KEY_B), "{dbg}");
    }

    #[test]
    fn key_in_both_places_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let kf = write_key_file(
            dir.path(),
            0o600,
            &format!("[[key]]\nid = \"12345678\"\nkey = \"{KEY_A}\"\n"),
        );
        let main = main_with_key_file(
            dir.path(),
            &format!("[[meter]]\nid = \"12345678\"\nkey = \"{KEY_B}\"\n"),
        );
        let err = Config::load(&main).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains(KEY_A) && !msg.contains(KEY_B), "{msg}");
        let e = single(err);
        assert_eq!(e.file, kf.display().to_string());
        assert_eq!((e.line, e.column), (3, 7));
        assert!(
            e.message.contains(&format!("{}:6:7", main.display())),
            "{}",
            e.message
        );
    }

    #[test]
    fn key_file_unknown_field_and_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        write_key_file(
            dir.path(),
            0o600,
            "[[key]]\nid = \"12345678\"\nkee = \"x\"\n",
        );
        let main = main_with_key_file(dir.path(), "");
        let e = single(Config::load(&main).unwrap_err());
        assert_eq!((e.line, e.column), (3, 1));
        write_key_file(dir.path(), 0o600, "[[key]]\nid = \"12345678\"\n");
        let e = single(Config::load(&main).unwrap_err());
        assert!(e.message.contains("has no 'key'"), "{}", e.message);
    }
}
