//! `wmbusd check-config`: validate the configuration and key file the way the daemon
//! would, and optionally try every configured key against what the radios hear.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::{Config, RadioDriver};
use crate::decode::{Decoder, FailureKind};
use crate::radio::{self, DriverKind, RadioEvent, RadioSpec, RadioState};

/// sysexits EX_CONFIG: the configuration is not usable.
const EXIT_CONFIG: u8 = 78;
/// The radios could not be started for `--listen`.
const EXIT_LISTEN: u8 = 1;
/// `--listen`: configured meters were heard, and not one of their keys verified.
const EXIT_KEYS_WRONG: u8 = 3;
/// Where the daemon looks when `--config` is not given.
const DEFAULT_CONFIG: &str = "/etc/wmbusd/wmbusd.toml";

#[derive(Debug, Args)]
#[command(
    after_help = "Checks, as the daemon does at start: TOML syntax (file:line:column), \
unknown keys, duplicate meters, malformed meter ids and keys, the key file (a key file \
readable or writable by other users is refused), the MQTT settings and password file. \
Radio devices that do not exist are reported as warnings (a dongle may be unplugged).

With --listen, the configured radios are opened for that long and every configured meter \
is reported as: decoded ok, wrong key, MAC failure, no key, other failure, or not heard. \
Keys are shown by fingerprint only.

Every problem is reported, not only the first (TOML syntax errors stop the reading of \
the file, so they come alone).

Examples:
  wmbusd check-config
  wmbusd check-config -c ./wmbusd.toml
  wmbusd check-config --listen 60s --config /etc/wmbusd/wmbusd.toml

Exit status: 0 configuration ok, 78 configuration error, 1 with --listen: no radio became \
ready, 3 with --listen: configured meters with keys were heard and none of their keys \
verified (every key wrong), 2 usage error."
)]
pub struct CheckConfigArgs {
    /// Configuration file to check [default: /etc/wmbusd/wmbusd.toml].
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Deprecated: the file as a positional argument; use --config.
    #[arg(value_name = "FILE", hide = true, conflicts_with = "config")]
    file: Option<PathBuf>,

    /// Also listen this long (e.g. 60s, 2m, 500ms) and try each configured key on what
    /// is heard.
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg)]
    listen: Option<Duration>,
}

impl CheckConfigArgs {
    fn path(&self) -> PathBuf {
        if self.file.is_some() {
            tracing::warn!("check-config FILE is deprecated; use check-config --config FILE");
        }
        self.config
            .clone()
            .or_else(|| self.file.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
    }
}

pub fn run(args: CheckConfigArgs) -> ExitCode {
    let path = args.path();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            let located = e.locations();
            if located.is_empty() {
                eprintln!("error: {e}");
            } else {
                for l in &located {
                    eprintln!("{l}");
                }
            }
            return would_not_start(&path, located.len().max(1));
        }
    };
    let mut problems = 0usize;
    let mut report = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        problems += 1;
    };
    let mqtt = config.mqtt_config().unwrap_or_else(|e| {
        report(&e);
        None
    });
    let keys = crate::daemon::key_store(&config)
        .map_err(|e| report(&e))
        .ok();
    let drivers = crate::daemon::driver_set(&config)
        .map_err(|e| report(&e))
        .ok();
    let warnings = radio_warnings(&config);
    if problems > 0 {
        return would_not_start(&path, problems);
    }
    println!("{}: ok", path.display());
    print_summary(
        &config,
        mqtt.as_ref(),
        drivers.as_ref().map_or(0, |d| d.len()),
    );
    if warnings > 0 {
        println!("  warnings    {warnings}");
    }
    match (args.listen, keys, drivers) {
        (Some(duration), Some(keys), Some(drivers)) => listen(&config, keys, drivers, duration),
        _ => ExitCode::SUCCESS,
    }
}

fn would_not_start(path: &Path, problems: usize) -> ExitCode {
    eprintln!(
        "{}: {problems} problem{} found; the daemon would not start",
        path.display(),
        if problems == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_CONFIG)
}

/// Prints the warnings about the radios (and an empty configuration); how many.
fn radio_warnings(config: &Config) -> usize {
    let mut warnings = 0usize;
    for (i, r) in config.radios.iter().enumerate() {
        if let Some(warning) = radio_warning(r.driver, r.device.as_deref()) {
            eprintln!(
                "warning: radio {} ({}): {warning}",
                i + 1,
                r.driver.as_str()
            );
            warnings += 1;
        }
    }
    if config.radios.is_empty() && config.buses.is_empty() {
        eprintln!("warning: no [[radio]] or [[bus]] configured: the daemon would hear nothing");
        warnings += 1;
    }
    warnings
}

/// What the daemon would run with, one line per part.
fn print_summary(config: &Config, mqtt: Option<&crate::mqtt::MqttConfig>, n_drivers: usize) {
    println!("  gateway     {}", config.gateway.id);
    for (i, r) in config.radios.iter().enumerate() {
        println!(
            "  radio {}     {} {}",
            i + 1,
            r.driver.as_str(),
            r.device.as_deref().unwrap_or("(probe serial ports)")
        );
    }
    for b in &config.buses {
        println!(
            "  bus         {} {} at {} baud, {} meter(s) every {:?}",
            b.name,
            b.device,
            b.baud,
            b.meters.len(),
            b.poll_interval
        );
    }
    match &config.gateway.key_file {
        Some(p) => println!("  key file    {} (private)", p.display()),
        None => println!("  key file    none"),
    }
    match config.gateway.drivers_dir.to_load() {
        Some(dir) => println!("  drivers     {n_drivers} (built-in + {})", dir.display()),
        None => println!("  drivers     {n_drivers} (built-in)"),
    }
    match mqtt {
        Some(m) => println!("  mqtt        {}:{}", m.host, m.port),
        None => println!("  mqtt        none (readings go to stdout)"),
    }
    let with_keys = config.meters.iter().filter(|m| m.key.is_some()).count();
    println!(
        "  meters      {} ({with_keys} with a key)",
        config.meters.len()
    );
}

/// Why a radio's device looks unusable right now, if it does.
fn radio_warning(driver: RadioDriver, device: Option<&str>) -> Option<String> {
    let device = device?;
    if crate::radio::session::tcp_address(device).is_some() {
        // A network radio: reachable or not is only known once connected.
        return None;
    }
    match driver {
        RadioDriver::Im871a | RadioDriver::Amb8465 | RadioDriver::Cul | RadioDriver::Auto => {
            (!Path::new(device).exists())
                .then(|| format!("device {device} does not exist (dongle unplugged?)"))
        }
        RadioDriver::Replay => {
            (!Path::new(device).is_file()).then(|| format!("replay file {device} does not exist"))
        }
        // A command line (or "-" for stdin), not a path.
        RadioDriver::RtlWmbus => None,
    }
}

/// What was heard from one meter.
#[derive(Default)]
struct Heard {
    frames: usize,
    ok: usize,
    failures: BTreeMap<FailureKind, usize>,
}

impl Heard {
    /// One word for the table: ok wins, else the most frequent failure.
    fn verdict(&self) -> String {
        if self.frames == 0 {
            return "not heard".to_owned();
        }
        if self.ok > 0 {
            return "decoded ok".to_owned();
        }
        self.failures
            .iter()
            .max_by_key(|(_, n)| **n)
            .map_or_else(|| "heard".to_owned(), |(k, _)| k.label().to_owned())
    }
}

fn listen(
    config: &Config,
    keys: crate::keys::KeyStore,
    drivers: crate::drivers::DriverSet,
    duration: Duration,
) -> ExitCode {
    let specs = match radio_specs(config) {
        Ok(specs) => specs,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_LISTEN);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wmbusd check-config: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_LISTEN);
        }
    };
    let mut tally = Tally {
        decoder: Decoder::with_drivers(keys, drivers),
        heard: BTreeMap::new(),
        bad: 0,
        ready: 0,
        last_lost: BTreeMap::new(),
    };
    println!("listening for {:.1} s ...", duration.as_secs_f64());
    runtime.block_on(tally.listen(specs, duration));
    tally.report(config)
}

/// The configured radios as sessions for a short listen (no reopen loop).
fn radio_specs(config: &Config) -> Result<Vec<RadioSpec>, String> {
    let mut specs = Vec::new();
    for (i, r) in config.radios.iter().enumerate() {
        let driver: DriverKind = r
            .driver
            .as_str()
            .parse()
            .map_err(|e| format!("radio {}: {e}", i + 1))?;
        specs.push(RadioSpec {
            driver,
            device: r.device.clone().unwrap_or_default(),
            modes: r.modes.clone(),
            baud: r.baud,
            // No reopen loop during a short check.
            watchdog: Duration::ZERO,
            replay_interval: Duration::from_millis(r.replay_interval_ms.unwrap_or(0)),
            name: format!("radio {}", i + 1),
            recorded_clock: false,
        });
    }
    Ok(specs)
}

/// What `--listen` heard.
struct Tally {
    decoder: Decoder,
    heard: BTreeMap<String, Heard>,
    bad: usize,
    ready: usize,
    /// The last loss reported per radio (a missing device is retried; say so once).
    last_lost: BTreeMap<String, String>,
}

impl Tally {
    async fn listen(&mut self, specs: Vec<RadioSpec>, duration: Duration) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let stop_tx = crate::shutdown::ShutdownTrigger::new();
        let mut tasks = Vec::new();
        for spec in specs {
            tasks.push(tokio::spawn(radio::run(
                spec,
                tx.clone(),
                stop_tx.subscribe(),
            )));
        }
        drop(tx);
        let deadline = tokio::time::sleep(duration);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                event = rx.recv() => match event {
                    None => break,
                    Some(event) => self.event(event),
                },
            }
        }
        stop_tx.fire();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    fn event(&mut self, event: RadioEvent) {
        match event {
            RadioEvent::Frame(frame) => {
                let (id, outcome) = match self.decoder.decode(&frame) {
                    Ok(r) => (Some(r.meter.id), None),
                    Err(e) => (e.meter.clone(), Some(e.kind)),
                };
                let Some(id) = id else { return };
                let entry = self.heard.entry(id).or_default();
                entry.frames += 1;
                match outcome {
                    None => entry.ok += 1,
                    Some(kind) => *entry.failures.entry(kind).or_default() += 1,
                }
            }
            RadioEvent::Bad { .. } => self.bad += 1,
            RadioEvent::State { source, state } => self.state(source, state),
            RadioEvent::ReplayFinished => {}
        }
    }

    fn state(&mut self, source: String, state: RadioState) {
        match state {
            RadioState::Ready { dongle } => {
                self.ready += 1;
                println!("{source}: ready ({dongle})");
            }
            RadioState::Lost { reason } => {
                if self.last_lost.get(&source) != Some(&reason) {
                    println!("{source}: lost ({reason})");
                    self.last_lost.insert(source, reason);
                }
            }
            RadioState::Failed { reason } => println!("{source}: failed ({reason})"),
            RadioState::Opening => {}
        }
    }

    /// The table of configured meters, then the exit status.
    fn report(mut self, config: &Config) -> ExitCode {
        let verdicts = self.meter_table(config);
        if !self.heard.is_empty() {
            let frames: usize = self.heard.values().map(|h| h.frames).sum();
            println!(
                "{} other meter{} heard ({frames} telegrams), not configured",
                self.heard.len(),
                if self.heard.len() == 1 { "" } else { "s" }
            );
        }
        if self.bad > 0 {
            println!("{} unusable receptions from the radios", self.bad);
        }
        if self.ready == 0 {
            eprintln!("no radio became ready: nothing could be heard");
            return ExitCode::from(EXIT_LISTEN);
        }
        if verdicts.keyed_heard > 0 && verdicts.keyed_ok == 0 {
            eprintln!(
                "none of the {} heard meter(s) with a key decoded: every key is wrong",
                verdicts.keyed_heard
            );
            return ExitCode::from(EXIT_KEYS_WRONG);
        }
        ExitCode::SUCCESS
    }

    /// One line per configured meter (taken out of `heard`).
    fn meter_table(&mut self, config: &Config) -> KeyVerdicts {
        let name_width = config
            .meters
            .iter()
            .map(|m| m.name.as_deref().unwrap_or("-").chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<8}  {:<name_width$}  {:<9}  {:>6}  {:>4}  RESULT",
            "METER", "NAME", "KEY", "HEARD", "OK"
        );
        let mut verdicts = KeyVerdicts::default();
        for m in &config.meters {
            let h = self.heard.remove(&m.id).unwrap_or_default();
            if m.key.is_some() && h.frames > 0 {
                verdicts.keyed_heard += 1;
                verdicts.keyed_ok += usize::from(h.ok > 0);
            }
            let fp = m
                .key
                .as_ref()
                .map(|k| crate::keys::Key::new(k.as_bytes()).fingerprint())
                .unwrap_or_else(|| "-".to_owned());
            println!(
                "{:<8}  {:<name_width$}  {fp:<9}  {:>6}  {:>4}  {}",
                m.id,
                m.name.as_deref().unwrap_or("-"),
                h.frames,
                h.ok,
                h.verdict()
            );
        }
        verdicts
    }
}

/// Keyed meters heard and decoded, for the exit status of `--listen`.
#[derive(Default)]
struct KeyVerdicts {
    keyed_heard: usize,
    keyed_ok: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            crate::timefmt::parse_duration("60s"),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            crate::timefmt::parse_duration("2m"),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            crate::timefmt::parse_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            crate::timefmt::parse_duration("3"),
            Ok(Duration::from_secs(3))
        );
        assert!(crate::timefmt::parse_duration("0s").is_err());
        assert!(crate::timefmt::parse_duration("5 parsecs").is_err());
    }
}
