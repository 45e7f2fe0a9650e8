//! `wmbusd bus`: the wired M-Bus from the command line: find the meters on a bus, read one.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};

use crate::bus::master::describe;
use crate::bus::port::Port;
use crate::bus::{Found, Master, Target, Timing};
use crate::decode::Decoder;
use crate::keys::KeyStore;
use crate::wire::mbus::{SecondaryAddress, MAX_PRIMARY};

#[derive(Debug, Args)]
pub struct BusArgs {
    #[command(subcommand)]
    command: BusCommand,
}

#[derive(Debug, Subcommand)]
enum BusCommand {
    /// List the meters on a bus: primary addresses one by one, or a secondary search.
    Scan(ScanArgs),
    /// Read one meter and print its reading(s) as JSON lines.
    Read(ReadArgs),
}

#[derive(Debug, Args)]
struct PortArgs {
    /// Serial device of the M-Bus level converter, or tcp://host:port.
    #[arg(long, value_name = "DEVICE")]
    device: String,
    /// Bus speed (300–38400; EN 13757-2 rates).
    #[arg(long, default_value_t = 2400, value_parser = parse_baud)]
    baud: u32,
    /// Repetitions of a request after a timeout or a damaged answer (0–3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(0..=3))]
    retries: u8,
    /// Milliseconds added to the 330 bit times a slave has to answer (the standard's 50;
    /// more for converters on a network).
    #[arg(long, default_value_t = 50, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    extra_timeout_ms: u64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every empty primary address costs one SND_NKE and its timeout: at 2400
baud 5 bytes (23 ms) + 330 bit times (138 ms) + 50 ms = 210 ms, so a full scan of 250
addresses takes about 53 s. --secondary runs the wildcard search (SND_UD CI 0x52 to
address 253), narrowing digit by digit where answers collide; it finds meters without
primary addresses and several meters sharing one. Exit status: 0 done (even when nothing
was found), 1 port failure or unreadable slaves, 2 usage error."
)]
struct ScanArgs {
    #[command(flatten)]
    port: PortArgs,
    /// Secondary-address search instead of the primary scan.
    #[arg(long)]
    secondary: bool,
    /// First primary address to probe.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=250))]
    from: u8,
    /// Last primary address to probe.
    #[arg(long, default_value_t = MAX_PRIMARY, value_parser = clap::value_parser!(u8).range(0..=250))]
    to: u8,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Reads every telegram of the meter (SND_NKE or selection, then REQ_UD2
until a telegram no longer ends with DIF 0x1F) and prints one JSON reading per telegram,
decoded as `wmbusd decode` decodes the same frame (plus link_mode \"wired\" and the
receive time). --explain prints the frames exchanged and each telegram byte by byte.
Exit status: 0 read and decoded, 1 no answer / damaged answers / undecodable, 2 usage."
)]
struct ReadArgs {
    #[command(flatten)]
    port: PortArgs,
    /// Primary address of the meter (0–250).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=250), required_unless_present = "id", conflicts_with = "id")]
    address: Option<u8>,
    /// 8-digit id (secondary address) of the meter.
    #[arg(long, value_parser = parse_id)]
    id: Option<SecondaryAddress>,
    /// Show the frames exchanged and explain each telegram instead of JSON.
    #[arg(long)]
    explain: bool,
    /// Take meter keys from this daemon configuration.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn parse_baud(s: &str) -> Result<u32, String> {
    let baud: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if crate::bus::config::BAUD_RATES.contains(&baud) {
        Ok(baud)
    } else {
        Err(format!(
            "{baud} is not an M-Bus rate (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)"
        ))
    }
}

fn parse_id(s: &str) -> Result<SecondaryAddress, String> {
    s.parse::<u32>()
        .ok()
        .filter(|_| s.len() == 8)
        .and_then(SecondaryAddress::from_id)
        .ok_or_else(|| format!("'{s}' is not an 8-digit id"))
}

pub fn run(args: BusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wmbusd bus: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match args.command {
            BusCommand::Scan(a) => scan(a).await,
            BusCommand::Read(a) => read(a).await,
        }
    })
}

async fn open(port: &PortArgs) -> Result<Master<Port>, ExitCode> {
    match Port::open(&port.device, port.baud).await {
        Ok(p) => Ok(Master::new(
            p,
            Timing {
                retries: port.retries,
                extra: std::time::Duration::from_millis(port.extra_timeout_ms),
                ..Timing::standard(port.baud)
            },
        )),
        Err(e) => {
            eprintln!("wmbusd bus: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn print_found(found: &[Found]) {
    println!(
        "{:<7} {:<8} {:<12} {:<20} {:>7}",
        "address", "id", "manufacturer", "medium", "version"
    );
    for f in found {
        let m = f.address.manufacturer();
        println!(
            "{:<7} {:<8} {:<12} {:<20} {:>7}",
            f.primary,
            f.address.id_string(),
            m.code().unwrap_or_else(|| format!("{:04X}", m.raw())),
            crate::wire::device_type::name(m, f.address.device_type),
            f.address.version
        );
    }
}

async fn scan(args: ScanArgs) -> ExitCode {
    if args.from > args.to {
        eprintln!(
            "wmbusd bus scan: --from {} is above --to {}",
            args.from, args.to
        );
        return ExitCode::from(2);
    }
    let mut master = match open(&args.port).await {
        Ok(m) => m,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut stderr = std::io::stderr();
    let (found, problems) = if args.secondary {
        let result = master
            .search_secondary(SecondaryAddress::ANY, |mask, probes, found| {
                let _ = write!(
                    stderr,
                    "\rsearching {}: probe {probes}, {found} found   ",
                    mask.pattern()
                );
            })
            .await;
        match result {
            Ok((found, search)) => {
                let problems = search
                    .unresolved
                    .iter()
                    .map(|m| {
                        format!(
                            "several meters answer to id {}: read them by primary address",
                            m.pattern()
                        )
                    })
                    .collect::<Vec<_>>();
                (found, problems)
            }
            Err(e) => return fail(&e),
        }
    } else {
        let total = u32::from(args.to.saturating_sub(args.from)) + 1;
        let result = master
            .scan_primary(args.from..=args.to, |address, found| {
                let done = u32::from(address - args.from);
                let _ = write!(
                    stderr,
                    "\rscanning address {address} ({done}/{total}), {found} found   "
                );
            })
            .await;
        match result {
            Ok((found, failed)) => (found, failed.iter().map(|e| e.to_string()).collect()),
            Err(e) => return fail(&e),
        }
    };
    let _ = writeln!(
        stderr,
        "\rdone in {:.1} s: {} meter(s) found{:20}",
        started.elapsed().as_secs_f64(),
        found.len(),
        ""
    );
    print_found(&found);
    for p in &problems {
        eprintln!("warning: {p}");
    }
    ExitCode::from(u8::from(!problems.is_empty()))
}

fn fail(e: &crate::bus::BusError) -> ExitCode {
    eprintln!("\nwmbusd bus: {e}");
    ExitCode::from(1)
}

async fn read(args: ReadArgs) -> ExitCode {
    let mut keys = KeyStore::new();
    if let Some(path) = &args.config {
        let loaded = crate::config::Config::load(path)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                c.keys().iter().try_for_each(|(id, key)| {
                    keys.insert_hex(id, key)
                        .map_err(|e| format!("meter {id}: {e}"))
                })
            });
        if let Err(e) = loaded {
            eprintln!("wmbusd bus: {e}");
            return ExitCode::from(2);
        }
    }
    let target = match (args.address, args.id) {
        (Some(a), _) => Target::Primary(a),
        (None, Some(id)) => Target::Secondary(id),
        (None, None) => return ExitCode::from(2),
    };
    let mut master = match open(&args.port).await {
        Ok(m) => m,
        Err(code) => return code,
    };
    if args.explain {
        master.trace();
    }
    let result = master.read(target).await;
    if args.explain {
        for x in master.take_trace() {
            println!(
                "> {:<40} {}",
                describe(&x.request),
                hex::encode_upper(&x.request)
            );
            println!(
                "< {:<40} {} ({} ms)",
                describe(&x.answer),
                hex::encode_upper(&x.answer),
                x.elapsed.as_millis()
            );
        }
    }
    let frames = match result {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let mut decoder = Decoder::with_drivers(keys, crate::drivers::DriverSet::builtin());
    let mut failed = false;
    for bytes in frames {
        let frame = crate::bus::wired_frame(bytes, &args.port.device);
        if args.explain {
            let explanation = crate::explain::explain(&mut decoder, &frame);
            println!("\n{}", explanation.render());
            failed |= matches!(explanation.outcome, crate::explain::Outcome::Failed { .. });
            continue;
        }
        match decoder.decode(&frame) {
            Ok(reading) => {
                let mut json = Vec::new();
                if reading.write_json(&mut json).is_ok() {
                    println!("{}", String::from_utf8_lossy(&json));
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("wmbusd bus: telegram not decoded: {e}");
            }
        }
    }
    ExitCode::from(u8::from(failed))
}
