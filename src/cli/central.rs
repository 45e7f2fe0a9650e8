//! `wmbusd central`: decode the raw frames forwarding gateways publish (see
//! [`crate::central`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

/// sysexits EX_CONFIG, as for `wmbusd run`.
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Args)]
#[command(
    after_help = "Needs [mqtt] (an MQTT 5 broker with shared subscriptions) and [store] url = \
\"postgres://…\". Start several instances with the same [central] group and different \
[gateway] id: the broker splits the frames between them, PostgreSQL keeps one row per \
telegram. Exit status: 0 clean stop, 1 runtime failure, 78 configuration error."
)]
pub struct CentralArgs {
    /// Configuration file (TOML).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/wmbusd/central.toml"
    )]
    config: PathBuf,
}

pub fn run(args: CentralArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wmbusd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wmbusd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Never changed: signals stop the instance.
    let keep = crate::shutdown::ShutdownTrigger::new();
    match runtime.block_on(crate::central::run(config, keep.subscribe())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e @ crate::central::CentralError::Setup(_)) => {
            eprintln!("wmbusd: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("wmbusd: {e}");
            ExitCode::FAILURE
        }
    }
}
