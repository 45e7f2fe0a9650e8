//! `wmbusd report`: a billing period's close values, consumption and function check per
//! meter and register (CSV or JSON), or the daily snapshots, from the reading store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, ValueEnum};

use crate::billing::report::to_csv;
use crate::billing::{period, Calendar};
use crate::config::Config;
use crate::store::report::{daily_csv, period_report, Context};

const EXIT_FAILED: u8 = 1;
const EXIT_NO_STORE: u8 = 66;
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  wmbusd report --config /etc/wmbusd/wmbusd.toml --period 2026-11\n  \
wmbusd report --config wmbusd.toml --period 2026-11 --delimiter ';' --output 2026-11.csv\n  \
wmbusd report --config wmbusd.toml --daily --from 2026-11-01 --to 2026-11-30\n\n\
CSV columns: meter_id,name,medium,register,unit,start_value,start_source,end_value,end_source,\
consumption,check,reasons. Sources: meter_due_date, interpolated, last_before, first_after, \
missing (period_max for max_power, latest for a period still open). check: ok, warn, fail, or \
open for a period whose deadline has not passed."
)]
pub struct ReportArgs {
    /// Configuration file (its [store] path and [billing] rules).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// The period, named by its first month (YYYY-MM).
    #[arg(
        long,
        value_name = "YYYY-MM",
        required_unless_present = "daily",
        conflicts_with = "daily"
    )]
    pub period: Option<String>,
    /// Print the daily snapshots instead (with --from and --to).
    #[arg(long, requires_all = ["from", "to"])]
    pub daily: bool,
    /// First local day of --daily (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last local day of --daily (YYYY-MM-DD), included.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// CSV field delimiter (e.g. ';' for administration systems that want it).
    #[arg(long, default_value = ",")]
    pub delimiter: char,
    /// Read this store instead of the configured [store] path.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("wmbusd report: {message}");
    ExitCode::from(code)
}

/// The store path of a configuration (or `--store`), which must exist.
pub fn store_path(config: &Config, given: Option<&Path>) -> Result<PathBuf, String> {
    let path = match (given, &config.store) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(s)) => s.path.clone(),
        (None, None) => {
            return Err("the configuration has no [store] section (or give --store FILE)".into())
        }
    };
    if !path.exists() {
        return Err(format!(
            "store {} does not exist (has the daemon run with [store]?)",
            path.display()
        ));
    }
    Ok(path)
}

pub fn run(args: ReportArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let path = match store_path(&config, args.store.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_NO_STORE, e),
    };
    let conn = match crate::store::open_ro(&path) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_NO_STORE, e),
    };
    let calendar = match Calendar::new(&config.billing) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let text = if args.daily {
        let (Some(from), Some(to)) = (&args.from, &args.to) else {
            return fail(EXIT_FAILED, "--daily needs --from and --to");
        };
        for d in [from, to] {
            if let Err(e) = period::parse_date(d) {
                return fail(EXIT_FAILED, e);
            }
        }
        match daily_csv(&conn, &config.meters, from, to, args.delimiter) {
            Ok(t) => t,
            Err(e) => return fail(EXIT_FAILED, e),
        }
    } else {
        let name = args.period.as_deref().unwrap_or_default();
        let p = match calendar.parse(name) {
            Ok(p) => p,
            Err(e) => return fail(EXIT_FAILED, e),
        };
        let ctx = Context {
            calendar: &calendar,
            billing: &config.billing,
            meters: &config.meters,
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let report = match period_report(&conn, &ctx, p, now) {
            Ok(r) => r,
            Err(e) => return fail(EXIT_FAILED, e),
        };
        match args.format {
            Format::Csv => to_csv(&report.rows, args.delimiter),
            Format::Json => match serde_json::to_string_pretty(&report) {
                Ok(t) => t + "\n",
                Err(e) => return fail(EXIT_FAILED, e),
            },
        }
    };
    let written = match &args.output {
        Some(file) => std::fs::write(file, text.as_bytes()),
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_FAILED, format!("cannot write the report: {e}")),
    }
}
