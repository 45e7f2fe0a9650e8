//! The embedded reading store: one SQLite file (bundled SQLite, WAL) holding readings at
//! the configured resolution, daily snapshots, the meters' due-date values, consumption
//! alarms and every period close. The schema is documented in `docs/store-schema.md` and
//! changes only with [`SCHEMA_VERSION`].
//!
//! Writes go through one writer thread ([`writer`]) fed by a channel, in batched
//! transactions, so the async loop never waits on disk; readers (`wmbusd report`) open
//! their own connection, which WAL lets run beside the writer.

pub mod postgres;
pub mod report;
pub mod sink;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// Version of the schema below (table `schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Errors of the store, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {path}: cannot create its directory: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store {path}: schema version {found} is newer than this wmbusd ({SCHEMA_VERSION})")]
    TooNew { path: PathBuf, found: i64 },
    #[error("store {0}: the writer thread has stopped")]
    WriterGone(PathBuf),
    #[error("billing: {0}")]
    Period(#[from] crate::billing::PeriodError),
    /// PostgreSQL (`[store] url = "postgres://…"`); `url` has its password removed.
    #[error("store {url}: {source}")]
    Pg {
        url: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Schema version 1. Times: `t` columns are Unix seconds (UTC), `*_at` columns RFC 3339
/// UTC text, `day`/`date` columns local `YYYY-MM-DD` in the billing time zone.
const SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS meters (
    meter_id     TEXT PRIMARY KEY,
    name         TEXT,
    label        TEXT,
    medium       TEXT,
    manufacturer TEXT,
    device_type  TEXT,
    first_seen   TEXT,
    last_seen    TEXT,
    imported_at  TEXT
);
CREATE TABLE IF NOT EXISTS readings (
    meter_id      TEXT    NOT NULL,
    t             INTEGER NOT NULL,
    received_at   TEXT    NOT NULL,
    slot          INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    flags         TEXT    NOT NULL,
    error_flags   INTEGER NOT NULL,
    meter_time    TEXT,
    registers     TEXT    NOT NULL,
    "values"      TEXT    NOT NULL,
    flags_changed INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_meter_t ON readings (meter_id, t);
CREATE INDEX IF NOT EXISTS readings_t ON readings (t);
CREATE TABLE IF NOT EXISTS daily (
    meter_id    TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    t           INTEGER NOT NULL,
    received_at TEXT    NOT NULL,
    registers   TEXT    NOT NULL,
    max_power   REAL,
    readings    INTEGER NOT NULL,
    flags       TEXT    NOT NULL,
    max_drift_s INTEGER,
    decreases   TEXT    NOT NULL,
    PRIMARY KEY (meter_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS due_values (
    meter_id TEXT    NOT NULL,
    register TEXT    NOT NULL,
    date     TEXT    NOT NULL,
    value    REAL    NOT NULL,
    heard_t  INTEGER NOT NULL,
    PRIMARY KEY (meter_id, register, date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarms (
    meter_id   TEXT NOT NULL,
    alarm      TEXT NOT NULL,
    since      TEXT NOT NULL,
    since_t    INTEGER NOT NULL,
    detail     TEXT NOT NULL,
    cleared_t  INTEGER,
    PRIMARY KEY (meter_id, alarm, since)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS closes (
    period      TEXT NOT NULL,
    meter_id    TEXT NOT NULL,
    register    TEXT NOT NULL,
    unit        TEXT NOT NULL,
    value       REAL,
    source      TEXT NOT NULL,
    from_times  TEXT NOT NULL,
    consumption REAL,
    closed_at   TEXT NOT NULL,
    PRIMARY KEY (period, meter_id, register)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checks (
    period    TEXT NOT NULL,
    meter_id  TEXT NOT NULL,
    result    TEXT NOT NULL,
    reasons   TEXT NOT NULL,
    closed_at TEXT NOT NULL,
    PRIMARY KEY (period, meter_id)
) WITHOUT ROWID;
"#;

fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating and migrating) the store for writing: WAL, `synchronous = NORMAL`
/// (a commit survives a crash of the process; power loss loses at most the last
/// transactions, never the file's consistency).
pub fn open_rw(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let e = sql_err(path);
    let conn = Connection::open(path).map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&e)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&e)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&e)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Opens the store read-only (reports); it must exist.
pub fn open_ro(path: &Path) -> Result<Connection, StoreError> {
    let e = sql_err(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&e)?;
    let found = version(&conn).map_err(&e)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(conn)
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .or_else(|e| match e {
            // Read-only connections cannot create it; a missing table reads as version 0.
            rusqlite::Error::SqliteFailure(..) => Ok(()),
            other => Err(other),
        })?;
    let v: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap_or(None);
    Ok(v.unwrap_or(0))
}

/// Brings the schema to [`SCHEMA_VERSION`]; each step runs in its own transaction.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let e = sql_err(path);
    let found = version(conn).map_err(&e)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
        });
    }
    if found < 1 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1} INSERT INTO schema_version (version) VALUES (1); COMMIT;"
        ))
        .map_err(&e)?;
    }
    Ok(())
}

/// `PRAGMA integrity_check` of an open store: "ok" or the problems found.
pub fn integrity_check(conn: &Connection) -> rusqlite::Result<String> {
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows.join("; "))
}

/// A reading's registers as the JSON object of the `registers` column.
pub fn registers_json(regs: &[(crate::billing::Register, f64)]) -> String {
    let mut map = serde_json::Map::new();
    for (r, v) in regs {
        if let Some(n) = serde_json::Number::from_f64(*v) {
            map.insert(r.as_str().to_owned(), serde_json::Value::Number(n));
        }
    }
    serde_json::Value::Object(map).to_string()
}
