//! `wmbusd listen`: what the radio hears, live, one row per meter — the on-site tool for
//! finding meters, checking reception and checking keys before the daemon runs.
//!
//! Reception is the daemon's (`radio::run`), decoding and counting are the daemon's
//! (`Decoder` + `Pipeline`), so what the table says is what the daemon would do with the
//! same radio and configuration.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::table::format_table;
use crate::config::Config;
use crate::decode::{Decoder, FailureKind};
use crate::frame::{LinkMode, RadioFrame};
use crate::keys::KeyStore;
use crate::pipeline::{MeterStats, Outcome, Pipeline, PipelineConfig};
use crate::radio::{self, DriverKind, RadioEvent, RadioSpec, RadioState};

/// Same exit status as `wmbusd run` for an unusable configuration file.
const EXIT_CONFIG: u8 = 78;
/// Usage errors (clap uses 2 as well).
const EXIT_USAGE: u8 = 2;
/// A terminal is redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(500);
/// Without a terminal, a snapshot is appended at most this often (and once at the end).
const SNAPSHOT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Strongest signal first.
    Rssi,
    /// By meter id.
    Id,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The table has one row per meter heard: id, manufacturer, device type, link \
decode state of the last telegram, link mode, RSSI (last and mean, dBm), telegrams and the \
typical interval between telegrams. The state is one of: ok, no key, wrong key, MAC failure, CRC error, unknown \
compact format, truncated, invalid frame, unsupported, or - with --config - not configured \
(the meter is not in the configuration). On a terminal it is redrawn in place (at most twice \
a second); otherwise a snapshot is appended every 10 s and at the end. Ctrl-C stops.

With --json, one line per telegram instead:
  {\"time\":…,\"meter\":\"12345678\",\"manufacturer\":\"ELS\",\"device_type\":\"gas\",\
\"link_mode\":\"T1\",\"rssi_dbm\":-64.0,\"telegram\":\"2E44…\",\"outcome\":\"failed\",\"kind\":\"no_key\",\
\"state\":\"no key\",\"message\":\"…\"}
outcome is ok, failed, duplicate or not_configured; kind is the failure class as in \
`wmbusd decode` (no_key, wrong_key, mac_failure, crc, unknown_compact_format, …); a decoded \
telegram adds \"reading\".

Which radio: --device/--driver/--mode override the first [[radio]] of --config. Without a \
config, --device is required unless --driver auto, which looks for a dongle among the serial \
ports (only known dongle adapters are queried; see `wmbusd probe --help`).

Examples:
  wmbusd listen --device /dev/ttyUSB0 --driver im871a          # any meter in range, no keys
  wmbusd listen --config /etc/wmbusd/wmbusd.toml               # the daemon's radio and keys
  wmbusd listen --driver auto --mode C1 --sort id
  wmbusd listen --device /dev/ttyUSB0 --json --duration 10m > survey.jsonl"
)]
pub struct ListenArgs {
    /// Serial device (replay: telegram file; rtlwmbus: command line)
    /// [default: the configured radio's].
    #[arg(short, long, value_name = "PATH")]
    device: Option<String>,

    /// Receiver: auto, im871a, amb8465, cul, rtlwmbus or replay
    /// [default: the configured radio's; auto with --device].
    #[arg(long, value_name = "DRIVER")]
    driver: Option<DriverKind>,

    /// Link modes to listen to, comma-separated (C1, T1, S1 or C1,T1)
    /// [default: the configured radio's, else C1,T1].
    #[arg(short, long, value_name = "MODES", value_delimiter = ',', value_parser = parse_mode)]
    mode: Vec<LinkMode>,

    /// The daemon's configuration: its meters' keys and its radio.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// One JSON line per telegram instead of the table.
    #[arg(long)]
    json: bool,

    /// Row order of the table.
    #[arg(long, value_enum, default_value_t = SortKey::Rssi)]
    sort: SortKey,

    /// Stop after this long, e.g. 10m or 90s (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg)]
    duration: Option<Duration>,
}

fn parse_mode(s: &str) -> Result<LinkMode, String> {
    LinkMode::parse(s).ok_or_else(|| format!("unknown link mode {s:?} (expected C1, T1, S1)"))
}

pub fn run(args: ListenArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("wmbusd listen: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wmbusd listen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let spec = match radio_spec(&args, config.as_ref()).await {
            Ok(spec) => spec,
            Err(message) => {
                eprintln!("wmbusd listen: {message}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let keys = match &config {
            Some(c) => match crate::daemon::key_store(c) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("wmbusd listen: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            },
            None => KeyStore::new(),
        };
        match listen(&args, config.as_ref(), spec, keys).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wmbusd listen: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The receiver to use: command-line options over the configured radio.
async fn radio_spec(args: &ListenArgs, config: Option<&Config>) -> Result<RadioSpec, String> {
    let configured = config.and_then(|c| c.radios.first());
    let configured_driver = match configured {
        Some(r) => Some(
            r.driver
                .as_str()
                .parse::<DriverKind>()
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut device = args
        .device
        .clone()
        .or_else(|| configured.and_then(|r| r.device.clone()))
        .filter(|d| !d.is_empty());
    let mut driver = match (args.driver, &args.device) {
        (Some(d), _) => d,
        // A device named on the command line may not be the configured dongle.
        (None, Some(_)) => DriverKind::Auto,
        (None, None) => match configured_driver {
            Some(d) => d,
            None => {
                return Err(
                    "--device is required (or --config with a [[radio]], or --driver auto to \
                     look for a dongle)"
                        .into(),
                )
            }
        },
    };
    if device.is_none() {
        if driver != DriverKind::Auto {
            return Err(format!(
                "--device is required for --driver {driver} (or use --config, or --driver auto)"
            ));
        }
        let ports = crate::radio::ports::system_ports(Path::new("/dev/serial/by-id"));
        let found = crate::radio::ports::probe_ports(ports, Duration::from_secs(1))
            .await
            .into_iter()
            .find_map(|r| {
                let kind = r.driver.as_deref()?.parse::<DriverKind>().ok()?;
                Some((r.port.path, kind))
            });
        let Some((path, kind)) = found else {
            return Err(
                "no dongle found on the serial ports (see `wmbusd probe`); name one with --device"
                    .into(),
            );
        };
        eprintln!("wmbusd listen: found {kind} on {}", path.display());
        device = Some(path.to_string_lossy().into_owned());
        driver = kind;
    }
    let modes = if !args.mode.is_empty() {
        args.mode.clone()
    } else {
        match configured {
            Some(r) if !r.modes.is_empty() => r.modes.clone(),
            _ => vec![LinkMode::C1, LinkMode::T1],
        }
    };
    radio::combine_modes(&modes).map_err(|e| e.to_string())?;
    let same_radio = args.device.is_none();
    Ok(RadioSpec {
        driver,
        device: device.unwrap_or_default(),
        modes,
        baud: configured.filter(|_| same_radio).and_then(|r| r.baud),
        watchdog: Duration::from_secs(
            configured
                .filter(|_| same_radio)
                .and_then(|r| r.watchdog_secs)
                .unwrap_or(900),
        ),
        replay_interval: Duration::from_millis(
            configured
                .filter(|_| same_radio)
                .and_then(|r| r.replay_interval_ms)
                .unwrap_or(0),
        ),
        name: String::new(),
        recorded_clock: false,
    })
}

fn pipeline_config(config: Option<&Config>) -> PipelineConfig {
    match config {
        Some(c) => PipelineConfig {
            dedupe_window: Duration::from_secs(c.pipeline.dedupe_window_secs),
            // Meters outside the configuration show as "not configured", which is what
            // the daemon would do with them when told to keep to its meters.
            only_configured: true,
            meters: c
                .meters
                .iter()
                .map(|m| (m.id.clone(), m.name.clone()))
                .collect(),
            replay: c.pipeline.replay_rule(),
        },
        None => PipelineConfig::default(),
    }
}

/// The listening session: radio status plus the daemon's decoder and pipeline.
struct Listener {
    decoder: Decoder,
    pipeline: Pipeline,
    /// Failure classes seen, by name, to label the state column.
    kinds: HashMap<&'static str, FailureKind>,
    title: String,
    radio: String,
    bad_radio_data: u64,
    sort: SortKey,
}

async fn listen(
    args: &ListenArgs,
    config: Option<&Config>,
    spec: RadioSpec,
    keys: KeyStore,
) -> Result<(), String> {
    let mode_text = radio::combine_modes(&spec.modes)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let drivers = match config {
        Some(c) => crate::daemon::driver_set(c).map_err(|e| e.to_string())?,
        None => crate::drivers::DriverSet::builtin(),
    };
    let mut listener = Listener {
        decoder: Decoder::with_drivers(keys, drivers),
        pipeline: Pipeline::new(pipeline_config(config)),
        kinds: HashMap::new(),
        title: format!("{} on {} ({mode_text})", spec.driver, spec.device),
        radio: "opening".into(),
        bad_radio_data: 0,
        sort: args.sort,
    };
    let replay = spec.driver == DriverKind::Replay;
    let (events_tx, mut events) = mpsc::channel::<RadioEvent>(256);
    let shutdown_tx = crate::shutdown::ShutdownTrigger::new();
    let radio_task = tokio::spawn(radio::run(spec, events_tx, shutdown_tx.subscribe()));

    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
    let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
    let terminal = !args.json && stdout_is_terminal();
    let screen = Screen::new(terminal, args.json);
    let mut redraw = tokio::time::interval(if terminal { REDRAW } else { SNAPSHOT });
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;

    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    RadioEvent::Frame(frame) => {
                        let outcome = listener.pipeline.process(&mut listener.decoder, &frame, Instant::now());
                        if let Outcome::Failed(err) = &outcome {
                            listener.kinds.insert(err.kind.name(), err.kind);
                        }
                        if args.json {
                            screen.line(&listener.json_line(&frame, &outcome).to_string());
                        }
                        dirty = true;
                    }
                    RadioEvent::Bad { reason, .. } => {
                        listener.bad_radio_data += 1;
                        tracing::debug!("bad radio data: {reason}");
                        dirty = true;
                    }
                    RadioEvent::State { state, .. } => {
                        listener.radio = match state {
                            RadioState::Opening => "opening".into(),
                            RadioState::Ready { dongle } => format!("ready: {dongle}"),
                            RadioState::Lost { reason } => format!("lost: {reason}; reopening"),
                            RadioState::Failed { reason } => format!("failed: {reason}"),
                        };
                        dirty = true;
                    }
                    RadioEvent::ReplayFinished if replay => break,
                    RadioEvent::ReplayFinished => {}
                }
            }
            _ = redraw.tick() => {
                if dirty && !args.json {
                    screen.table(&listener.render());
                    dirty = false;
                }
            }
            _ = sleep_until(deadline) => break,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    shutdown_tx.fire();
    let _ = tokio::time::timeout(Duration::from_secs(5), radio_task).await;
    if !args.json {
        screen.table(&listener.render());
    }
    // Dropping `screen` shows the cursor again.
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn stdout_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Terminal width in columns, 0 when unknown.
fn terminal_columns() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            usize::from(ws.ws_col)
        } else {
            0
        }
    }
}

/// Output: redraw in place on a terminal, appended snapshots or JSON lines otherwise.
struct Screen {
    terminal: bool,
    out: std::io::Stdout,
}

impl Screen {
    fn new(terminal: bool, json: bool) -> Screen {
        let s = Screen {
            terminal,
            out: std::io::stdout(),
        };
        if terminal && !json {
            // Hide the cursor while redrawing; dropping the screen shows it again.
            s.write("\x1b[?25l");
        }
        s
    }

    fn write(&self, text: &str) {
        let mut out = self.out.lock();
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    }

    fn line(&self, text: &str) {
        self.write(&format!("{text}\n"));
    }

    fn table(&self, text: &str) {
        if self.terminal {
            let clipped: String = clip_lines(text, terminal_columns())
                .map(|l| format!("{l}\x1b[K\r\n"))
                .collect();
            self.write(&format!("\x1b[H\x1b[2J{clipped}"));
        } else {
            self.write(&format!("{text}\n"));
        }
    }
}

/// The lines of `text` cut at `columns` characters (0: unknown width, not cut): over-long
/// lines would wrap and scroll the screen away.
fn clip_lines(text: &str, columns: usize) -> impl Iterator<Item = String> + '_ {
    text.lines().map(move |l| {
        if columns > 0 {
            l.chars().take(columns).collect()
        } else {
            l.to_owned()
        }
    })
}

impl Drop for Screen {
    fn drop(&mut self) {
        // On every way out (Ctrl-C, --duration, radio gone, errors): never leave the
        // user's terminal without a cursor.
        if self.terminal {
            self.write("\x1b[?25h");
        }
    }
}

impl Listener {
    /// Label of a meter's last outcome for the state column.
    fn state(&self, stats: &MeterStats) -> String {
        match stats.last_outcome.as_deref() {
            None => "-".into(),
            Some("ok") => "ok".into(),
            Some("not_configured") => "not configured".into(),
            Some(name) => self
                .kinds
                .get(name)
                .map_or_else(|| name.to_owned(), |k| k.label().to_owned()),
        }
    }

    /// One `--json` line for a telegram.
    fn json_line(&self, frame: &RadioFrame, outcome: &Outcome) -> serde_json::Value {
        let meter: Option<String> = match outcome {
            Outcome::Reading(r) => Some(r.meter.id.clone()),
            Outcome::Failed(e) => e.meter.clone(),
            Outcome::Filtered { meter } => meter.clone(),
            Outcome::Duplicate { meter } => meter.clone(),
        };
        let stats = meter.as_deref().and_then(|id| self.pipeline.meter(id));
        let (manufacturer, device_type) = match outcome {
            Outcome::Reading(r) => (
                Some(r.meter.manufacturer.clone()),
                Some(r.meter.device_type.clone()),
            ),
            _ => (
                stats.and_then(|s| s.manufacturer.clone()),
                stats.and_then(|s| s.device_type.clone()),
            ),
        };
        let (name, kind, state, message) = match outcome {
            Outcome::Reading(_) => ("ok", None, "ok".to_owned(), None),
            Outcome::Failed(e) => (
                "failed",
                Some(e.kind.name()),
                e.kind.label().to_owned(),
                Some(e.message.clone()),
            ),
            Outcome::Filtered { .. } => (
                "not_configured",
                None,
                "not configured".to_owned(),
                Some("meter is not in the configuration".to_owned()),
            ),
            Outcome::Duplicate { .. } => (
                "duplicate",
                None,
                stats.map_or_else(|| "-".to_owned(), |s| self.state(s)),
                Some("same frame heard again within the dedupe window".to_owned()),
            ),
        };
        let time = frame.received_at.unwrap_or_else(SystemTime::now);
        let mut line = json!({
            "time": crate::timefmt::rfc3339(time),
            "meter": meter,
            "manufacturer": manufacturer,
            "device_type": device_type,
            "link_mode": frame.link_mode.map(|m| m.as_str()),
            "rssi_dbm": frame.rssi_dbm,
            // The bytes as received, for `wmbusd decode --explain` (technician's guide).
            "telegram": hex::encode_upper(&frame.bytes),
            "outcome": name,
            "kind": kind,
            "state": state,
            "message": message,
        });
        if let (Outcome::Reading(r), Some(obj)) = (outcome, line.as_object_mut()) {
            obj.insert(
                "reading".into(),
                serde_json::to_value(r).unwrap_or(serde_json::Value::Null),
            );
        }
        line
    }

    /// The whole screen: a status line and the meter table.
    fn render(&self) -> String {
        let meters = self.pipeline.meters();
        let mut heard: Vec<(&str, &MeterStats)> =
            meters.into_iter().filter(|(_, s)| s.heard > 0).collect();
        if self.sort == SortKey::Rssi {
            // Strongest first; meters without RSSI last; ties by id (already sorted).
            heard.sort_by(|a, b| {
                let key = |s: &MeterStats| s.last_rssi_dbm.unwrap_or(f32::NEG_INFINITY);
                key(b.1).total_cmp(&key(a.1))
            });
        }
        let telegrams: u64 = heard.iter().map(|(_, s)| s.heard).sum();
        let header = [
            "ID",
            "MANUF",
            "TYPE",
            // Before the numbers: a row cut at 80 columns keeps the meter's state whole.
            "STATE",
            "MODE",
            "RSSI",
            "MEAN",
            "TELEGRAMS",
            "INTERVAL",
        ]
        .map(str::to_owned);
        let dbm = |v: Option<f32>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        let rows: Vec<[String; 9]> = heard
            .iter()
            .map(|(id, s)| {
                [
                    (*id).to_owned(),
                    s.manufacturer.clone().unwrap_or_else(|| "-".into()),
                    s.device_type.clone().unwrap_or_else(|| "-".into()),
                    self.state(s),
                    s.link_mode.clone().unwrap_or_else(|| "-".into()),
                    dbm(s.last_rssi_dbm),
                    dbm(s.mean_rssi_dbm),
                    s.heard.to_string(),
                    s.interval_s.map_or_else(|| "-".to_owned(), format_interval),
                ]
            })
            .collect();
        format!(
            "wmbusd listen: {} | {} | {} meter(s), {telegrams} telegram(s), {} bad radio frame(s) | {}\n\n{}",
            self.title,
            self.radio,
            rows.len(),
            self.bad_radio_data,
            crate::timefmt::rfc3339(SystemTime::now()),
            format_table(&header, &rows)
        )
    }
}

/// "16s", "15m", "2.0h": short enough for a table column.
fn format_interval(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_hex;

    /// Sontex HCA, plaintext (protocol reference §1.2).
    const SONTEX: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
    /// OMS Annex N.1.1, mode 5 (protocol reference §4.2.1); key not given.
    const PROFILE_A: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";

    fn listener(sort: SortKey) -> Listener {
        Listener {
            decoder: Decoder::new(KeyStore::new()),
            pipeline: Pipeline::new(PipelineConfig::default()),
            kinds: HashMap::new(),
            title: "test".into(),
            radio: "ready".into(),
            bad_radio_data: 0,
            sort,
        }
    }

    fn feed(l: &mut Listener, hex: &str, rssi: f32) -> serde_json::Value {
        let frame = RadioFrame {
            rssi_dbm: Some(rssi),
            link_mode: Some(LinkMode::T1),
            received_at: Some(SystemTime::now()),
            ..RadioFrame::new(parse_hex(hex).unwrap())
        };
        let outcome = l.pipeline.process(&mut l.decoder, &frame, Instant::now());
        if let Outcome::Failed(e) = &outcome {
            l.kinds.insert(e.kind.name(), e.kind);
        }
        l.json_line(&frame, &outcome)
    }

    #[test]
    fn json_lines_name_the_outcome_and_class() {
        let mut l = listener(SortKey::Rssi);
        let ok = feed(&mut l, SONTEX, -70.0);
        assert_eq!(ok["outcome"], "ok");
        assert_eq!(ok["meter"], "27293981");
        assert_eq!(ok["manufacturer"], "SON");
        assert_eq!(ok["link_mode"], "T1");
        assert!(ok["reading"]["records"].is_array());
        let failed = feed(&mut l, PROFILE_A, -60.0);
        assert_eq!(failed["outcome"], "failed");
        assert_eq!(failed["kind"], "no_key");
        assert_eq!(failed["state"], "no key");
        assert_eq!(failed["manufacturer"], "ELS");
        assert_eq!(failed["device_type"], "gas");
        assert!(failed.get("reading").is_none());
        let dup = feed(&mut l, PROFILE_A, -60.0);
        assert_eq!(dup["outcome"], "duplicate");
    }

    #[test]
    fn table_sorts_by_rssi_or_id_and_labels_states() {
        let mut l = listener(SortKey::Rssi);
        feed(&mut l, SONTEX, -60.0);
        feed(&mut l, PROFILE_A, -80.0);
        let screen = l.render();
        let rows: Vec<&str> = screen.lines().skip(2).collect();
        assert!(rows[0].starts_with("ID "), "{screen}");
        assert!(
            rows[1].starts_with("27293981") && rows[1].contains(" ok "),
            "{screen}"
        );
        assert!(
            rows[2].starts_with("12345678") && rows[2].contains(" no key "),
            "{screen}"
        );
        assert!(rows[2].contains("ELS") && rows[2].contains("gas") && rows[2].contains("-80"));
        l.sort = SortKey::Id;
        let screen = l.render();
        let rows: Vec<&str> = screen.lines().skip(3).collect();
        assert!(rows[0].starts_with("12345678") && rows[1].starts_with("27293981"));
    }

    #[test]
    fn state_column_survives_an_80_column_terminal() {
        /// Kamstrup compact frame whose full frame was not heard (protocol reference §7.4).
        const KAM_COMPACT: &str = "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B";
        let mut l = listener(SortKey::Id);
        feed(&mut l, SONTEX, -100.0);
        feed(&mut l, KAM_COMPACT, -101.0);
        let screen = l.render();
        let clipped: Vec<String> = clip_lines(&screen, 80).collect();
        let label = FailureKind::UnknownCompactFormat.label();
        let kam = clipped.iter().find(|r| r.starts_with("60723506"));
        assert!(kam.is_some_and(|r| r.contains(label)), "{clipped:#?}");
        let sontex = clipped.iter().find(|r| r.starts_with("27293981"));
        assert!(
            sontex.is_some_and(|r| r.contains("heat_cost_allocator  ok ")),
            "{clipped:#?}"
        );
    }

    #[test]
    fn json_line_carries_the_telegram_hex() {
        let mut l = listener(SortKey::Rssi);
        let line = feed(&mut l, PROFILE_A, -60.0);
        assert_eq!(line["telegram"], PROFILE_A);
        let again = parse_hex(line["telegram"].as_str().unwrap()).unwrap();
        assert_eq!(hex::encode_upper(again), PROFILE_A);
    }

    #[test]
    fn intervals_and_tables_format() {
        assert_eq!(format_interval(16.2), "16s");
        assert_eq!(format_interval(900.0), "15m");
        assert_eq!(format_interval(7200.0), "2.0h");
        let t = format_table(
            &["A".to_owned(), "BB".to_owned()],
            &[["xyz".to_owned(), "1".to_owned()]],
        );
        assert_eq!(t, "A    BB\nxyz  1\n");
    }
}
