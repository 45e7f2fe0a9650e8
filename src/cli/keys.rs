//! `wmbusd keys import` and `wmbusd keys list`: the key file, without ever printing a key.
//!
//! Import reads the CSV lists suppliers and installers hand over (id, key, optional
//! manufacturer and name, under many column names), checks every row, and merges the keys
//! into the TOML key file the daemon reads (`[[key]] id = … key = …`). The file is written
//! atomically and is never readable by anyone but its owner, not even for a moment.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::{secrets_mode_refused, Config};
use crate::keys::Key;

use super::csv::{
    detect_separator, match_column, numbered_lines, parse_csv_id, parse_csv_key, split_csv,
};

/// Default key file, as in the example configuration.
pub const DEFAULT_KEY_FILE: &str = "/etc/wmbusd/keys.toml";

/// Exit status when rows were rejected or would conflict (nothing is written).
const EXIT_REJECTED: u8 = 1;
/// Exit status for files that cannot be read or written (sysexits EX_IOERR).
const EXIT_IO: u8 = 74;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Merge meter keys from a CSV file into the key file (written with mode 0600).
    Import(ImportArgs),
    /// List the keys of the key file or configuration: id, manufacturer, name, fingerprint.
    List(ListArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "CSV format:
  One meter per line: id, key, and optionally manufacturer and name. A header line is
  recognised by its column names (id/meter/meter_id/serial/address, key/aes/aes_key/aeskey,
  manufacturer/mfct, name/label/description); without one the columns are taken in that
  order. Separators ',' ';' or tab, \"quoted\" fields, a UTF-8 BOM and keys written with
  spaces, dashes, colons or a 0x prefix are accepted, as vendor tools export them.

Every bad row is reported with its line number and the reason; the key itself is never
echoed. If any row is bad, or a meter already has a different key in the key file (without
--replace), nothing is written.

Examples:
  wmbusd keys import meters.csv
  wmbusd keys import --key-file ./keys.toml --replace supplier-export.csv

Exit status: 0 imported (or nothing new), 1 rows rejected or conflicting keys, 2 usage
error, 74 file not readable or not writable.")]
pub struct ImportArgs {
    /// CSV file to import (`-` reads stdin).
    #[arg(value_name = "FILE.csv")]
    csv: PathBuf,

    /// Key file to merge into; created with mode 0600 if missing.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_KEY_FILE)]
    key_file: PathBuf,

    /// Replace the key of a meter already in the key file instead of refusing.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Prints one line per meter: id, manufacturer, name and the key's \
fingerprint (the first 4 bytes of AES_key(0^16), as the daemon's logs show it). Keys are \
never printed.

Examples:
  wmbusd keys list
  wmbusd keys list --config /etc/wmbusd/wmbusd.toml

Exit status: 0 listed, 1 the file has errors, 74 file not readable."
)]
pub struct ListArgs {
    /// Key file to list (default /etc/wmbusd/keys.toml).
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    key_file: Option<PathBuf>,

    /// List the meters of this configuration instead (its [[meter]] keys and key file).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: KeysArgs) -> ExitCode {
    match args.command {
        KeysCommand::Import(a) => import(a),
        KeysCommand::List(a) => list(a),
    }
}

// ---- the key file ---------------------------------------------------------------------------

/// One meter's key as imported or listed.
#[derive(Clone)]
pub(super) struct Entry {
    /// 8 lower-case hex digits.
    pub(super) id: String,
    pub(super) key: Key,
    pub(super) manufacturer: Option<String>,
    pub(super) name: Option<String>,
}

/// Why a file could not be used; never contains key material.
enum FileError {
    Io(String),
    Invalid(String),
}

/// Reads the key file; `Ok(None)` when it does not exist yet.
fn read_key_file(path: &Path) -> Result<Option<(String, Vec<Entry>)>, FileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FileError::Io(format!("{}: {e}", path.display()))),
    };
    let name = path.display().to_string();
    // The daemon's own parser: same rules, same `file:line:column` messages, no key text.
    let meters = crate::config::parse_key_file(&text, &name)
        .map_err(|e| FileError::Invalid(e.to_string()))?;
    let entries = meters
        .into_iter()
        .filter_map(|m| {
            let key = m.key.as_ref().map(|k| Key::new(k.as_bytes()))?;
            Some(Entry {
                id: m.id,
                key,
                manufacturer: m.manufacturer,
                name: m.name,
            })
        })
        .collect();
    Ok(Some((text, entries)))
}

/// Writes `text` to `path` through a temporary file created with mode 0600, so neither the
/// temporary nor the result is ever readable by others; then renames it into place.
///
/// `owner` (uid, gid) is given to the new file so that a key file the daemon's user owns
/// stays readable by the daemon after root edited it.
fn write_private_atomic(path: &Path, text: &str, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "keys.toml".to_owned());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask can only remove bits; set them exactly anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename durable.
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn entry_toml(e: &Entry) -> String {
    let mut out = String::from("[[key]]\n");
    out.push_str(&format!("id = {}\n", toml_string(&e.id)));
    out.push_str(&format!(
        "key = \"{}\"\n",
        hex::encode_upper(e.key.expose_bytes())
    ));
    if let Some(m) = &e.manufacturer {
        out.push_str(&format!("manufacturer = {}\n", toml_string(m)));
    }
    if let Some(n) = &e.name {
        out.push_str(&format!("name = {}\n", toml_string(n)));
    }
    out
}

// ---- CSV ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Key,
    Manufacturer,
    Name,
}

/// Column names seen in vendor exports (matched by [`match_column`]).
const COLUMNS: &[(Column, &[&str])] = &[
    (
        Column::Id,
        &[
            "id",
            "meter",
            "meterid",
            "meterno",
            "meternumber",
            "meternr",
            "serial",
            "serialnumber",
            "serialno",
            "address",
            "meteraddress",
            "secondaryaddress",
            "deviceid",
            "identificationnumber",
            "idnumber",
        ],
    ),
    (
        Column::Key,
        &[
            "key",
            "aes",
            "aeskey",
            "aes128",
            "aes128key",
            "encryptionkey",
            "meterkey",
            "decryptionkey",
            "aeskeyhex",
        ],
    ),
    (
        Column::Manufacturer,
        &[
            "manufacturer",
            "mfct",
            "mfr",
            "manufacturercode",
            "vendor",
            "manuf",
        ],
    ),
    (
        Column::Name,
        &["name", "label", "description", "location", "metername"],
    ),
];

fn column_of(header: &str) -> Option<Column> {
    match_column(header, COLUMNS)
}

fn parse_manufacturer(text: &str) -> Result<Option<String>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() == 3 && t.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(Some(t.to_ascii_uppercase()))
    } else {
        Err(format!(
            "manufacturer '{}' must be a 3-letter code such as KAM",
            t.escape_default()
        ))
    }
}

/// A rejected CSV row: 1-based line and reason (never the key).
struct RowError {
    line: usize,
    reason: String,
}

/// Where the fields of a row are; `header`: the first line names the columns.
struct Layout {
    sep: char,
    id: usize,
    key: usize,
    manufacturer: Option<usize>,
    name: Option<usize>,
    header: bool,
}

impl Layout {
    /// Column positions from a header line, or id, key, manufacturer, name when the first
    /// line names none.
    fn of_first_line(line: usize, first: &str) -> Result<Layout, RowError> {
        let sep = detect_separator(first);
        let first_fields = split_csv(first, sep).map_err(|reason| RowError {
            line,
            reason: reason.to_owned(),
        })?;
        let named: Vec<Option<Column>> = first_fields.iter().map(|f| column_of(f)).collect();
        let header = named.iter().any(Option::is_some);
        let columns = if header {
            named
        } else {
            let positional = [Column::Id, Column::Key, Column::Manufacturer, Column::Name];
            (0..first_fields.len())
                .map(|i| positional.get(i).copied())
                .collect()
        };
        let find = |c: Column| columns.iter().position(|x| *x == Some(c));
        let (Some(id), Some(key)) = (find(Column::Id), find(Column::Key)) else {
            return Err(RowError {
                line,
                reason: "header names no id column (id, meter, serial, address, ...) or no key \
                         column (key, aes, aes_key, ...)"
                    .to_owned(),
            });
        };
        Ok(Layout {
            sep,
            id,
            key,
            manufacturer: find(Column::Manufacturer),
            name: find(Column::Name),
            header,
        })
    }

    /// One data row as an entry, or why not.
    fn entry(&self, line: usize, text: &str) -> Result<Entry, RowError> {
        let fields = split_csv(text, self.sep).map_err(|reason| RowError {
            line,
            reason: reason.to_owned(),
        })?;
        let get = |col: Option<usize>| col.and_then(|c| fields.get(c)).map_or("", String::as_str);
        let id = parse_csv_id(get(Some(self.id))).map_err(|reason| RowError { line, reason })?;
        let of_meter = |reason: String| RowError {
            line,
            reason: format!("meter {id}: {reason}"),
        };
        let key = parse_csv_key(get(Some(self.key))).map_err(of_meter)?;
        let manufacturer = parse_manufacturer(get(self.manufacturer)).map_err(of_meter)?;
        let name = Some(get(self.name))
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        Ok(Entry {
            id,
            key,
            manufacturer,
            name,
        })
    }
}

/// Parses the CSV text into entries, or every problem found.
fn parse_csv(text: &str) -> Result<Vec<Entry>, Vec<RowError>> {
    let mut lines = numbered_lines(text);
    let Some((first_no, first)) = lines.next() else {
        return Err(vec![RowError {
            line: 1,
            reason: "the file holds no rows".to_owned(),
        }]);
    };
    let layout = Layout::of_first_line(first_no, first).map_err(|e| vec![e])?;
    let rows = std::iter::once((first_no, first))
        .filter(|_| !layout.header)
        .chain(lines);
    let mut errors = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, text) in rows {
        let entry = match layout.entry(line, text) {
            Ok(e) => e,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(&first_line) = seen.get(&entry.id) {
            let same = entries
                .iter()
                .any(|e| e.id == entry.id && e.key == entry.key);
            if !same {
                errors.push(RowError {
                    line,
                    reason: format!(
                        "meter {} appears again (first at line {first_line}) with a different key",
                        entry.id
                    ),
                });
            }
            continue;
        }
        seen.insert(entry.id.clone(), line);
        entries.push(entry);
    }
    if errors.is_empty() {
        Ok(entries)
    } else {
        Err(errors)
    }
}

// ---- import ---------------------------------------------------------------------------------

fn import(args: ImportArgs) -> ExitCode {
    let csv_name = args.csv.display().to_string();
    let csv_text = if args.csv.as_os_str() == "-" {
        let mut s = String::new();
        match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            Ok(_) => s,
            Err(e) => {
                eprintln!("wmbusd keys import: stdin: {e}");
                return ExitCode::from(EXIT_IO);
            }
        }
    } else {
        match std::fs::read_to_string(&args.csv) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("wmbusd keys import: {csv_name}: {e}");
                return ExitCode::from(EXIT_IO);
            }
        }
    };
    let imported = match parse_csv(&csv_text) {
        Ok(e) => e,
        Err(errors) => {
            for e in &errors {
                eprintln!("{csv_name}:{}: {}", e.line, e.reason);
            }
            eprintln!(
                "wmbusd keys import: {} bad row{}; nothing written",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return ExitCode::from(EXIT_REJECTED);
        }
    };

    merge_into_key_file(imported, &args.key_file, args.replace)
}

/// Merges imported keys into the key file (created 0600 if missing); shared with
/// `wmbusd meters import`.
pub(super) fn merge_into_key_file(
    imported: Vec<Entry>,
    key_file: &Path,
    replace: bool,
) -> ExitCode {
    let existing_meta = std::fs::metadata(key_file).ok();
    let (existing_text, mut existing) = match read_key_file(key_file) {
        Ok(Some(found)) => found,
        Ok(None) => (String::new(), Vec::new()),
        Err(FileError::Io(m)) => {
            eprintln!("wmbusd keys import: {m}");
            return ExitCode::from(EXIT_IO);
        }
        Err(FileError::Invalid(m)) => {
            eprintln!("{m}");
            eprintln!("wmbusd keys import: fix the key file first; nothing written");
            return ExitCode::from(EXIT_REJECTED);
        }
    };
    let merge = Merge::of(&mut existing, imported, replace, key_file);
    if merge.conflicts > 0 {
        eprintln!(
            "wmbusd keys import: {} conflicting key(s); nothing written",
            merge.conflicts
        );
        return ExitCode::from(EXIT_REJECTED);
    }
    let refused_mode = existing_meta
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .filter(|&mode| secrets_mode_refused(mode));
    if merge.added.is_empty() && merge.replaced == 0 {
        println!(
            "{}: nothing new ({} key(s) already present)",
            key_file.display(),
            merge.unchanged
        );
        if let Some(mode) = refused_mode {
            eprintln!(
                "warning: {}: mode {mode:04o} is not owner-only; the daemon refuses \
                 it; run `chmod 600 {}`",
                key_file.display(),
                key_file.display()
            );
        }
        return ExitCode::SUCCESS;
    }
    let text = merge.file_text(existing_text, &existing);
    let owner = existing_meta.as_ref().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.uid(), m.gid())
    });
    if let Err(e) = write_private_atomic(key_file, &text, owner) {
        eprintln!("wmbusd keys import: {}: {e}", key_file.display());
        return ExitCode::from(EXIT_IO);
    }
    merge.report(key_file);
    match (&existing_meta, refused_mode) {
        (Some(_), Some(mode)) => println!(
            "note: the key file was mode {mode:04o} (refused by the daemon); it is 0600 now"
        ),
        (Some(_), None) => {}
        (None, _) => println!(
            "note: new file owned by the current user; if the daemon runs as another user, \
             `chown` it to that user"
        ),
    }
    ExitCode::SUCCESS
}

/// What importing keys into an existing key file changes.
struct Merge {
    added: Vec<Entry>,
    replaced: usize,
    unchanged: usize,
    conflicts: usize,
}

impl Merge {
    /// Applies `imported` to `existing` (replacing keys only with `replace`); a conflict is
    /// reported on stderr and counted.
    fn of(existing: &mut [Entry], imported: Vec<Entry>, replace: bool, key_file: &Path) -> Merge {
        let mut merge = Merge {
            added: Vec::new(),
            replaced: 0,
            unchanged: 0,
            conflicts: 0,
        };
        for entry in imported {
            match existing.iter_mut().find(|e| e.id == entry.id) {
                Some(old) if old.key == entry.key => merge.unchanged += 1,
                Some(old) if replace => {
                    println!(
                        "replace {}: key fp {} -> {}",
                        entry.id,
                        old.key.fingerprint(),
                        entry.key.fingerprint()
                    );
                    old.key = entry.key;
                    if entry.manufacturer.is_some() {
                        old.manufacturer = entry.manufacturer;
                    }
                    if entry.name.is_some() {
                        old.name = entry.name;
                    }
                    merge.replaced += 1;
                }
                Some(old) => {
                    eprintln!(
                        "{}: meter {} already has a different key (fp {}; the CSV's is fp {}); \
                         use --replace to overwrite it",
                        key_file.display(),
                        entry.id,
                        old.key.fingerprint(),
                        entry.key.fingerprint()
                    );
                    merge.conflicts += 1;
                }
                None => merge.added.push(entry),
            }
        }
        merge
    }

    /// The new key file: appended to when nothing was replaced (keeping the comments and
    /// layout of the existing file), else written anew.
    fn file_text(&self, existing_text: String, existing: &[Entry]) -> String {
        if self.replaced == 0 {
            let mut t = existing_text;
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            for e in &self.added {
                if !t.is_empty() {
                    t.push('\n');
                }
                t.push_str(&entry_toml(e));
            }
            return t;
        }
        let mut t = String::from("# wmbusd key file (written by `wmbusd keys import`).\n");
        for e in existing.iter().chain(self.added.iter()) {
            t.push('\n');
            t.push_str(&entry_toml(e));
        }
        t
    }

    fn report(&self, key_file: &Path) {
        for e in &self.added {
            println!("add {}: key fp {}", e.id, e.key.fingerprint());
        }
        println!(
            "{}: {} added, {} replaced, {} unchanged (mode 0600)",
            key_file.display(),
            self.added.len(),
            self.replaced,
            self.unchanged
        );
    }
}

// ---- list -----------------------------------------------------------------------------------

/// id, manufacturer, name, key fingerprint (None: meter without a key).
type ListRow = (String, Option<String>, Option<String>, Option<String>);

fn list(args: ListArgs) -> ExitCode {
    let rows: Vec<ListRow> = if let Some(config) = &args.config {
        match Config::load(config) {
            Ok(cfg) => cfg
                .meters
                .iter()
                .map(|m| {
                    let fp = m.key.as_ref().map(|k| Key::new(k.as_bytes()).fingerprint());
                    (m.id.clone(), m.manufacturer.clone(), m.name.clone(), fp)
                })
                .collect(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_REJECTED);
            }
        }
    } else {
        let path = args
            .key_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o7777;
            if secrets_mode_refused(mode) {
                eprintln!(
                    "warning: {}: mode {mode:04o} is not owner-only; the daemon \
                         refuses it; run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
        match read_key_file(&path) {
            Ok(Some((_, entries))) => entries
                .into_iter()
                .map(|e| (e.id, e.manufacturer, e.name, Some(e.key.fingerprint())))
                .collect(),
            Ok(None) => {
                eprintln!("wmbusd keys list: {}: no such file", path.display());
                return ExitCode::from(EXIT_IO);
            }
            Err(FileError::Io(m)) => {
                eprintln!("wmbusd keys list: {m}");
                return ExitCode::from(EXIT_IO);
            }
            Err(FileError::Invalid(m)) => {
                eprintln!("{m}");
                return ExitCode::from(EXIT_REJECTED);
            }
        }
    };
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let name_width = rows
        .iter()
        .map(|r| dash(&r.2).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<8}  {:<4}  {:<name_width$}  FINGERPRINT",
        "ID", "MFCT", "NAME"
    );
    for (id, mfct, name, fp) in &rows {
        println!(
            "{id:<8}  {:<4}  {:<name_width$}  {}",
            dash(mfct),
            dash(name),
            fp.clone().unwrap_or_else(|| "(no key)".to_owned())
        );
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_header_semicolons_quotes_and_bom() {
        let csv = "\u{FEFF}\"Meter ID\";\"AES Key\";Mfct;Label\n\
                   12345678;\"01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 11\";els;\"Flat 3; left\"\n\
                   \n\
                   01234567;0x000102030405060708090A0B0C0D0E0F;;\n";
        let Ok(entries) = parse_csv(csv) else {
            panic!("rejected a valid CSV");
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "12345678");
        assert_eq!(entries[0].manufacturer.as_deref(), Some("ELS"));
        assert_eq!(entries[0].name.as_deref(), Some("Flat 3; left"));
        assert_eq!(entries[1].id, "01234567");
        assert_eq!(entries[1].key.expose_bytes()[15], 0x0F);
    }

    #[test]
    fn seven_digit_id_is_refused_not_padded() {
        let csv = "id,key\n1234567,000102030405060708090A0B0C0D0E0F\n";
        let Err(errors) = parse_csv(csv) else {
            panic!("accepted a 7-digit id");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert!(
            errors[0].reason.contains("7 digits"),
            "{}",
            errors[0].reason
        );
        assert!(
            errors[0].reason.contains("01234567"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn bad_rows_are_reported_with_line_numbers_and_no_key() {
        let csv = "id,key\n12345678,0102030405060708090A0B0C0D0E0FZZ\nXX,00\n";
        let Err(errors) = parse_csv(csv) else {
            panic!("accepted bad rows");
        };
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3]);
        assert!(errors
            .iter()
            .all(|e| !e.reason.contains("0102030405") && !e.reason.contains("0FZZ")));
    }

    #[test]
    fn separator_is_the_most_frequent_outside_quotes() {
        assert_eq!(detect_separator("a;b;\"c,d,e\""), ';');
        assert_eq!(detect_separator("a,b"), ',');
        assert_eq!(detect_separator("a\tb"), '\t');
    }
}
