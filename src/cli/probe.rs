//! `wmbusd probe`: list serial ports and identify the wM-Bus dongles among them.
//!
//! Probing means writing a query, and a query written to a modem, a GPS receiver or a
//! microcontroller board can disturb it. So a port is only probed when the user named it
//! on the command line, or when its USB vendor/product id or its `/dev/serial/by-id`
//! name belongs to an adapter that wM-Bus dongles are built on. Every other port is
//! listed as "unknown, not probed" and never opened.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::radio::ports::{named_port, probe_ports, system_ports, ProbeResult};
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "Which ports are probed (written to):
  * ports named on the command line, always;
  * without names, /dev/ttyUSB*, /dev/ttyACM* and /dev/serial/by-id/* are listed, and only
    those whose USB id or by-id name is a known wM-Bus dongle adapter are sent the dongle's
    own harmless identification query (iM871A device-info, AMB8465 firmware version, CUL
    version): FTDI 0403:6001/6015 (iM871A-USB, AMB8465-M), Silicon Labs 10c4:ea60, Atmel
    03eb:204b (busware CUL), or a by-id name containing IMST, iM871A, iM170A, AMB8465,
    Amber, CUL or busware.
  * anything else (other USB serial devices, pseudo terminals) is shown as
    \"unknown, not probed\" and is not even opened.

The MODE column shows the link mode an iM871A is set to (read with its GET_CONFIG query);
other dongles cannot report it.

Examples:
  wmbusd probe                         # list ports, identify the known adapters
  wmbusd probe /dev/ttyUSB0            # identify this port (it is probed whatever it is)
  wmbusd probe --json --timeout 500    # JSON lines, 0.5 s per query

Exit status: 0 when at least one dongle was identified, 1 otherwise, 2 for usage errors.")]
pub struct ProbeArgs {
    /// Serial ports to probe; default: every /dev/ttyUSB*, /dev/ttyACM*, /dev/serial/by-id/*.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Milliseconds to wait for each identification answer.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    timeout: u64,

    /// One JSON object per port instead of a table.
    #[arg(long)]
    json: bool,

    /// Directory of by-id links to scan (tests point it at their own links).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/dev/serial/by-id",
        hide = true
    )]
    by_id_dir: PathBuf,
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let ports = if args.paths.is_empty() {
        system_ports(&args.by_id_dir)
    } else {
        args.paths.iter().map(|p| named_port(p)).collect()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wmbusd probe: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let results = runtime.block_on(probe_ports(ports, Duration::from_millis(args.timeout)));
    if args.json {
        for r in &results {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
    } else if results.is_empty() {
        println!("no serial ports found (/dev/ttyUSB*, /dev/ttyACM*, /dev/serial/by-id/*)");
    } else {
        print!("{}", table(&results));
    }
    if results.iter().any(|r| r.driver.is_some()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn table(results: &[ProbeResult]) -> String {
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 8]> = results
        .iter()
        .map(|r| {
            [
                r.port.path.display().to_string(),
                dash(&r.port.by_id),
                dash(&r.port.usb_id),
                dash(&r.driver),
                dash(&r.firmware),
                dash(&r.mode),
                dash(&r.id),
                match &r.error {
                    Some(e) => format!("{}: {e}", r.status),
                    None => r.status.clone(),
                },
            ]
        })
        .collect();
    let header = [
        "PATH", "BY-ID", "USB", "DRIVER", "FIRMWARE", "MODE", "ID", "STATUS",
    ]
    .map(str::to_owned);
    super::table::format_table(&header, &rows)
}
