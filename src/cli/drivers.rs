//! `wmbusd drivers`: the manufacturer driver definitions the decoder applies.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::drivers::{Driver, DriverSet};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wmbusd drivers list
  wmbusd drivers list --drivers /etc/wmbusd/drivers.d
  wmbusd drivers show multical21

Definitions in --drivers DIR come before the built-in ones; one with the name of a built-in
replaces it. A malformed definition is reported with file, line, column and reason (exit 2).")]
pub struct DriversArgs {
    #[command(subcommand)]
    command: DriversCommand,

    /// Also load every *.toml driver definition of this directory.
    #[arg(long, value_name = "DIR", global = true)]
    drivers: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DriversCommand {
    /// One line per driver: name, manufacturer, device types, versions, source.
    List,
    /// Print one driver's definition as loaded.
    Show {
        /// Driver name, as in `wmbusd drivers list`.
        name: String,
    },
}

/// The built-in drivers plus those of `dir`, or the error text to print.
pub fn load(dir: Option<&PathBuf>) -> Result<DriverSet, String> {
    let mut set = DriverSet::builtin();
    if let Some(dir) = dir {
        set.load_dir(dir).map_err(|e| e.to_string())?;
    }
    Ok(set)
}

pub fn run(args: DriversArgs) -> ExitCode {
    let set = match load(args.drivers.as_ref()) {
        Ok(set) => set,
        Err(message) => {
            eprintln!("wmbusd drivers: {message}");
            return ExitCode::from(2);
        }
    };
    match args.command {
        DriversCommand::List => {
            println!(
                "{:<16} {:<4} {:<16} {:<12} SOURCE",
                "NAME", "MFR", "DEVICE TYPES", "VERSIONS"
            );
            for driver in set.iter() {
                println!("{}", list_line(driver));
            }
            ExitCode::SUCCESS
        }
        DriversCommand::Show { name } => match set.get(&name) {
            Some(driver) => {
                println!("# source: {}", driver.source);
                if let Some(step) = driver.step() {
                    println!("# step {}: {}", step.name, step.description);
                }
                print!("{}", driver.text);
                if !driver.text.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            None => {
                let names: Vec<&str> = set.iter().map(Driver::name).collect();
                eprintln!(
                    "wmbusd drivers: no driver named {name:?}; known: {}",
                    names.join(", ")
                );
                ExitCode::from(1)
            }
        },
    }
}

fn hex_list(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "any".into();
    }
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn list_line(driver: &Driver) -> String {
    let d = &driver.definition;
    format!(
        "{:<16} {:<4} {:<16} {:<12} {}",
        d.name,
        d.manufacturer.get_ref(),
        hex_list(&d.device_types),
        hex_list(&d.versions),
        driver.source
    )
}
