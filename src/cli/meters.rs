//! `wmbusd meters import FILE.csv`: an administration system's meter list (id, name,
//! apartment/label, medium, key optional) into the reading store's `meters` table, keys
//! into the key file. Every bad row is reported with its line; if any row is bad nothing
//! is written.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rusqlite::params;

use crate::billing::Medium;
use crate::config::Config;

use super::csv::{
    detect_separator, match_column, numbered_lines, parse_csv_id, parse_csv_key, split_csv,
};
use super::keys::{merge_into_key_file, Entry};

const EXIT_REJECTED: u8 = 1;
const EXIT_IO: u8 = 74;
const EXIT_CONFIG: u8 = 78;

#[derive(Debug, Args)]
pub struct MetersArgs {
    #[command(subcommand)]
    command: MetersCommand,
}

#[derive(Debug, Subcommand)]
enum MetersCommand {
    /// Import a meter list (CSV) into the store: names, labels, media; keys to the key file.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "CSV format: a header line naming the columns (any order): id \
(meter/meter_id/serial), name, apartment (label/flat/unit), medium (water, warm_water, gas, \
heat, cooling, hca, electricity), key (optional, 32 hex digits). Separators ',' ';' or tab, \
\"quoted\" fields.

Every bad row is reported as FILE:LINE: reason (a key is never echoed); if any row is bad, \
nothing is written.

Example:
  wmbusd meters import --config /etc/wmbusd/wmbusd.toml admin-export.csv

Exit status: 0 imported, 1 rows rejected, 66 no store, 74 file not readable, 78 bad configuration."
)]
pub struct ImportArgs {
    #[arg(value_name = "FILE.csv")]
    csv: PathBuf,
    /// Configuration file (its [store] path and key file).
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Key file for rows with a key (default: the configuration's key_file).
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Replace a meter's different key in the key file instead of refusing.
    #[arg(long)]
    replace: bool,
}

/// One valid row.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterRow {
    pub line: usize,
    pub id: String,
    pub name: Option<String>,
    pub label: Option<String>,
    pub medium: Option<Medium>,
    /// Present when the row has a key (never printed).
    pub has_key: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Col {
    Id,
    Name,
    Label,
    Medium,
    Key,
}

/// Column names of admin-system exports (matched by [`match_column`]).
const COLUMNS: &[(Col, &[&str])] = &[
    (
        Col::Id,
        &[
            "id",
            "meter",
            "meterid",
            "serial",
            "serialnumber",
            "meternumber",
            "meterno",
        ],
    ),
    (Col::Name, &["name", "metername", "description"]),
    (
        Col::Label,
        &[
            "apartment",
            "label",
            "flat",
            "unit",
            "apartmentlabel",
            "location",
        ],
    ),
    (Col::Medium, &["medium", "type", "metertype"]),
    (Col::Key, &["key", "aes", "aeskey", "meterkey"]),
];

/// A valid row with its key, if it has one.
pub(super) type Parsed = (MeterRow, Option<Entry>);

/// Parses the whole file: the rows, or every bad row as `(line, reason)`.
pub(super) fn parse(text: &str) -> Result<Vec<Parsed>, Vec<(usize, String)>> {
    let mut lines = numbered_lines(text);
    let Some((header_line, header)) = lines.next() else {
        return Err(vec![(1, "the file holds no rows".into())]);
    };
    let sep = detect_separator(header);
    let cols: Vec<Option<Col>> = match split_csv(header, sep) {
        Ok(f) => f.iter().map(|h| match_column(h, COLUMNS)).collect(),
        Err(e) => return Err(vec![(header_line, e.into())]),
    };
    if !cols.contains(&Some(Col::Id)) {
        return Err(vec![(
            header_line,
            "the header names no id column (id, meter_id, serial)".into(),
        )]);
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (line, text) in lines {
        match parse_row(text, sep, &cols, line) {
            Ok((row, key)) => {
                if let Some(first) = seen.insert(row.id.clone(), line) {
                    errors.push((
                        line,
                        format!("meter {} already listed on line {first}", row.id),
                    ));
                } else {
                    rows.push((row, key));
                }
            }
            Err(reason) => errors.push((line, reason)),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn parse_row(text: &str, sep: char, cols: &[Option<Col>], line: usize) -> Result<Parsed, String> {
    let fields = split_csv(text, sep).map_err(str::to_owned)?;
    if fields.len() > cols.len() {
        return Err(format!(
            "{} fields, the header has {}",
            fields.len(),
            cols.len()
        ));
    }
    let get = |c: Col| {
        cols.iter()
            .position(|x| *x == Some(c))
            .and_then(|i| fields.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    let id =
        parse_csv_id(get(Col::Id).ok_or("no meter id")?).map_err(|e| format!("meter id: {e}"))?;
    let medium =
        match get(Col::Medium) {
            None => None,
            Some(m) => Some(Medium::parse(m).ok_or_else(|| {
                format!("medium {m:?} is not one of {}", Medium::NAMES.join(", "))
            })?),
        };
    let key = match get(Col::Key) {
        None => None,
        Some(k) => Some(parse_csv_key(k).map_err(|e| format!("meter {id}: {e}"))?),
    };
    let row = MeterRow {
        line,
        id: id.clone(),
        name: get(Col::Name).map(str::to_owned),
        label: get(Col::Label).map(str::to_owned),
        medium,
        has_key: key.is_some(),
    };
    let entry = key.map(|key| Entry {
        id,
        key,
        manufacturer: None,
        name: row.name.clone(),
    });
    Ok((row, entry))
}

pub fn run(args: MetersArgs) -> ExitCode {
    match args.command {
        MetersCommand::Import(a) => import(a),
    }
}

fn import(args: ImportArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wmbusd meters import: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let name = args.csv.display().to_string();
    let text = match std::fs::read_to_string(&args.csv) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("wmbusd meters import: {name}: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    let rows = match parse(&text) {
        Ok(r) => r,
        Err(errors) => {
            for (line, reason) in &errors {
                eprintln!("{name}:{line}: {reason}");
            }
            eprintln!(
                "wmbusd meters import: {} bad row(s); nothing written",
                errors.len()
            );
            return ExitCode::from(EXIT_REJECTED);
        }
    };
    let Some(store) = &config.store else {
        eprintln!("wmbusd meters import: the configuration has no [store] section");
        return ExitCode::from(66);
    };
    let keys: Vec<Entry> = rows.iter().filter_map(|(_, k)| k.clone()).collect();
    if let Err(e) = write_rows(&store.path, &rows) {
        eprintln!("wmbusd meters import: {e}");
        return ExitCode::from(EXIT_IO);
    }
    println!(
        "{} meter(s) imported into {}",
        rows.len(),
        store.path.display()
    );
    if keys.is_empty() {
        return ExitCode::SUCCESS;
    }
    let key_file = args
        .key_file
        .or_else(|| config.gateway.key_file.clone())
        .unwrap_or_else(|| PathBuf::from(super::keys::DEFAULT_KEY_FILE));
    merge_into_key_file(keys, &key_file, args.replace)
}

fn write_rows(
    path: &std::path::Path,
    rows: &[(MeterRow, Option<Entry>)],
) -> Result<(), crate::store::StoreError> {
    let mut conn = crate::store::open_rw(path)?;
    let err = |source| crate::store::StoreError::Sql {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn.transaction().map_err(err)?;
    let now = crate::timefmt::rfc3339(std::time::SystemTime::now());
    for (r, _) in rows {
        tx.execute(
            "INSERT INTO meters (meter_id, name, label, medium, imported_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(meter_id) DO UPDATE SET name = COALESCE(excluded.name, meters.name),
               label = COALESCE(excluded.label, meters.label),
               medium = COALESCE(excluded.medium, meters.medium), imported_at = excluded.imported_at",
            params![r.id, r.name, r.label, r.medium.map(|m| m.as_str()), now],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_every_bad_line() {
        let csv = "Meter ID;Name;Apartment;Medium;Key\n\
                   12345678;Kitchen cold;3B;water;\n\
                   # comment\n\
                   87654321;\"Heat, main\";3B;heat;000102030405060708090A0B0C0D0E0F\n\
                   1234567X;x;;water;\n\
                   11111111;y;;steam-ish;\n\
                   22222222;z;;hca;00\n\
                   12345678;dup;;water;\n";
        let Err(errors) = parse(csv) else {
            panic!("bad rows accepted")
        };
        let lines: Vec<usize> = errors.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![5, 6, 7, 8], "{errors:?}");
        assert!(errors.iter().all(|(_, r)| !r.contains("00010203")));
        let good = "id,name,apartment,medium\n12345678,Kitchen,3B,water\n00000042,,,\n";
        let rows = parse(good).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0.medium, Some(Medium::Water));
        assert_eq!(rows[0].0.label.as_deref(), Some("3B"));
        assert_eq!(rows[1].0.id, "00000042");
        assert!(!rows[1].0.has_key);
    }
}
