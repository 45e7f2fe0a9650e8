//! The `wmbusd` command line: a thin layer over the library.

mod bus;
mod central;
mod check_config;
mod csv;
mod decode;
mod drivers;
mod keys;
mod listen;
mod meters;
mod probe;
mod report;
mod run;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Wireless M-Bus / OMS gateway: radio dongle -> decrypt -> decode -> spool -> MQTT.
#[derive(Debug, Parser)]
#[command(
    name = "wmbusd",
    version,
    about = "Wireless M-Bus / OMS gateway: radio dongle -> decrypt -> decode -> spool -> MQTT",
    long_about = "wmbusd listens to wireless M-Bus utility meters (water, heat, heat cost \
allocators, electricity) through a USB/serial radio dongle, decrypts each telegram with the \
meter's AES key, decodes its data records (EN 13757-3) and publishes normalised readings as \
JSON over MQTT, spooling them on disk until the broker has acknowledged them.",
    after_help = "Start with `wmbusd demo` (no hardware, no broker needed). \
Run `wmbusd help <command>` for the options of one command."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only errors in the log.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode hex telegrams to JSON readings, one line per telegram.
    Decode(decode::DecodeArgs),
    /// Run the gateway daemon with a configuration file.
    Run(run::RunArgs),
    /// Run the whole pipeline on bundled telegrams (replayed radio; stdout or a broker).
    Demo(run::DemoArgs),
    /// Validate the configuration and key file; optionally try each key on what is heard.
    CheckConfig(check_config::CheckConfigArgs),
    /// Import meter keys from CSV into the key file, or list them by fingerprint.
    Keys(keys::KeysArgs),
    /// Show the meters the radio hears, live: RSSI, telegrams, interval, decode state.
    Listen(listen::ListenArgs),
    /// List serial ports and identify wM-Bus dongles (type, firmware, id).
    Probe(probe::ProbeArgs),
    /// List the manufacturer drivers or show one definition.
    Drivers(drivers::DriversArgs),
    /// Wired M-Bus: scan a bus for meters, read one meter.
    Bus(bus::BusArgs),
    /// Billing report of a period (close values, consumption, function check) or the
    /// daily snapshots, from the reading store.
    Report(report::ReportArgs),
    /// Import an administration system's meter list (names, apartments, media, keys).
    Meters(meters::MetersArgs),
    /// Central decoding: raw frames of forwarding gateways (MQTT 5 shared subscription)
    /// into PostgreSQL and readings on MQTT.
    Central(central::CentralArgs),
}

/// Entry point used by `src/main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Run(args) => run::run(args),
        Command::Demo(args) => run::demo(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Drivers(args) => drivers::run(args),
        Command::Bus(args) => bus::run(args),
        Command::Report(args) => report::run(args),
        Command::Meters(args) => meters::run(args),
        Command::Central(args) => central::run(args),
    }
}

/// A duration option: `60s`, `15m`, `500ms`, `1h`. A bare number still means seconds but
/// is deprecated (one warning on stderr; logging is not set up while arguments are parsed).
pub(crate) fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    let value = crate::timefmt::parse_duration(text)?;
    if text.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        eprintln!(
            "warning: a bare number of seconds ('{}') is deprecated; write '{}s'",
            text.trim(),
            text.trim()
        );
    }
    Ok(value)
}

/// Logs go to stderr so that stdout stays machine-readable (JSON lines). Colour only on a
/// terminal: journald and log files would store the escape codes as text.
fn init_logging(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
