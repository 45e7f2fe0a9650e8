//! `wmbusd run` (the daemon) and `wmbusd demo` (the daemon on bundled telegrams).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::daemon::{self, DaemonOptions};

/// Exit status for configuration errors (sysexits EX_CONFIG); the systemd unit does not
/// restart on it, since a restart cannot fix the file.
const EXIT_CONFIG: u8 = 78;
/// Exit status when readings were left undelivered (sysexits EX_TEMPFAIL): they stay
/// spooled for the next start (the systemd unit counts it as a clean stop).
const EXIT_UNDELIVERED: u8 = 75;

#[derive(Debug, Args)]
#[command(
    after_help = "Signals: SIGTERM/SIGINT stop cleanly (in-flight readings are flushed or stay \
spooled, `offline` is published); SIGHUP reloads meters and keys without reopening the radio.
On SIGTERM spooled readings are delivered for up to [spool] shutdown_drain_secs (default 5).
Exit status: 0 clean stop, 1 runtime failure, 75 stopped with readings not yet delivered (they \
stay spooled), 78 configuration error."
)]
pub struct RunArgs {
    /// Configuration file (TOML).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/wmbusd/wmbusd.toml"
    )]
    config: PathBuf,

    /// Also print every reading as a JSON line on stdout.
    #[arg(long)]
    stdout: bool,

    /// File for health counters and learned compact-frame formats
    /// [default: [health] state_file, else `state.json` beside the spool directory].
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,

    /// Stop once every replay radio has sent its whole file and every reading is
    /// delivered (see --drain-timeout).
    #[arg(long)]
    exit_after_replay: bool,

    /// With --exit-after-replay: stop delivering after this long (e.g. 30s); readings
    /// left stay spooled and the exit status is 75 [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = super::duration_arg)]
    drain_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without --mqtt the readings are printed as JSON lines on stdout; with it they \
go through the spool to the broker as in production (topics wmbus/demo/meter/<id>)."
)]
pub struct DemoArgs {
    /// Publish to this broker (HOST:PORT) instead of printing to stdout.
    #[arg(long, value_name = "HOST:PORT")]
    mqtt: Option<String>,

    /// Milliseconds between replayed telegrams.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    interval_ms: u64,

    /// With --mqtt: give up delivering after this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::duration_arg)]
    drain_timeout: std::time::Duration,
}

pub fn run(args: RunArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wmbusd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let state_file = args
        .state_file
        .clone()
        .or_else(|| config.health.state_file.clone())
        .or_else(|| default_state_file(&config.spool.dir));
    let opts = DaemonOptions {
        config,
        config_path: Some(args.config),
        stdout: args.stdout,
        exit_after_replay: args.exit_after_replay,
        state_file,
        drain_timeout: args.drain_timeout,
        temporary_spool: false,
    };
    block_on(opts)
}

/// `/var/lib/wmbusd/spool` -> `/var/lib/wmbusd/state.json`.
fn default_state_file(spool_dir: &Path) -> Option<PathBuf> {
    spool_dir.parent().map(|p| p.join("state.json"))
}

/// The bundled demo: a replay radio over real telegrams (plain, mode 5, mode 7, ELL
/// AES-CTR, compact frames, a wired M-Bus frame) with their meters' keys.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
const DEMO_TELEGRAMS: &str = include_str!("../../config/demo-telegrams.txt");

pub fn demo(args: DemoArgs) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("wmbusd-demo-{}", std::process::id()));
    let result = (|| -> Result<ExitCode, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let telegrams = dir.join("telegrams.txt");
        std::fs::write(&telegrams, DEMO_TELEGRAMS)
            .map_err(|e| format!("{}: {e}", telegrams.display()))?;
        let mut text = DEMO_CONFIG
            .replace(
                "@TELEGRAMS@",
                &toml_string(&telegrams.display().to_string()),
            )
            .replace(
                "@SPOOL@",
                &toml_string(&dir.join("spool").display().to_string()),
            )
            .replace("@INTERVAL@", &args.interval_ms.to_string());
        if let Some(broker) = &args.mqtt {
            let (host, port) = broker
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--mqtt {broker}: expected HOST:PORT"))?;
            text.push_str(&format!(
                "\n[mqtt]\nhost = {}\nport = {port}\ntopic_prefix = \"wmbus\"\n",
                toml_string(host)
            ));
        }
        let config = Config::from_str_named(&text, "demo.toml").map_err(|e| e.to_string())?;
        let opts = DaemonOptions {
            config,
            config_path: None,
            stdout: args.mqtt.is_none(),
            exit_after_replay: true,
            state_file: None,
            drain_timeout: Some(args.drain_timeout),
            temporary_spool: true,
        };
        Ok(block_on(opts))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wmbusd demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn block_on(opts: DaemonOptions) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wmbusd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(daemon::run(opts));
    // A read of standard input (rtl-wmbus on stdin) sits in a blocking thread that only a
    // new line would end; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(summary) if summary.undelivered > 0 => {
            eprintln!(
                "wmbusd: stopped with {} reading(s) not delivered to the broker",
                summary.undelivered
            );
            ExitCode::from(EXIT_UNDELIVERED)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ (daemon::DaemonError::Config(_) | daemon::DaemonError::Drivers(_))) => {
            eprintln!("wmbusd: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("wmbusd: {e}");
            ExitCode::FAILURE
        }
    }
}
