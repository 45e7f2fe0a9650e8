//! The store's single writer: a dedicated thread fed by a channel. It takes whatever is
//! queued (up to `batch_max` messages), applies it in one transaction, commits, then
//! acknowledges: an acknowledged reading is committed.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::billing::settings::StoreSection;
use crate::billing::{Calendar, Facts, Register};
use crate::health::{AlarmChange, AlarmState};

use super::StoreError;

/// One reading as stored.
#[derive(Debug, Clone)]
pub struct StoredReading {
    pub meter_id: String,
    /// Unix seconds of reception (recorded time in a recorded replay).
    pub t: i64,
    pub received_at: String,
    pub status: u8,
    pub manufacturer: String,
    pub device_type: String,
    pub facts: Facts,
    /// Compact values: `{"volume":12.3,"date@s1":"2026-11-30",…}`.
    pub values: String,
}

/// What the writer is asked to do.
pub enum Msg {
    Reading(Box<StoredReading>, Option<oneshot::Sender<()>>),
    Alarm(AlarmChange, i64),
    /// Runs `f` on the writer's connection inside the batch's transaction.
    Job(Box<dyn FnOnce(&Connection) + Send>),
}

/// Per meter: the row a reading of the same slot replaces, and today's aggregates.
#[derive(Debug, Default, Clone)]
struct MeterMem {
    slot: i64,
    rowid: Option<i64>,
    replaceable: bool,
    flags: String,
    registers: Vec<(Register, f64)>,
    day: String,
    day_flags: BTreeSet<String>,
    day_max_power: Option<f64>,
    day_readings: i64,
    day_drift: Option<i64>,
    day_decreases: BTreeSet<String>,
    known: bool,
    /// Newest reading time stored.
    last_t: i64,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
}

impl Writer {
    /// Opens the store and starts the thread.
    pub fn start(
        cfg: &StoreSection,
        calendar: Calendar,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StoreError> {
        let conn = super::open_rw(&cfg.path)?;
        let (tx, rx) = mpsc::channel(4096);
        let mut state = WriterState {
            conn,
            calendar,
            resolution_s: i64::from(cfg.resolution_minutes) * 60,
            keep_readings_s: i64::from(cfg.keep_readings_days) * 86_400,
            keep_daily_days: i64::from(cfg.keep_daily_days),
            batch_max: cfg.batch_max,
            mem: HashMap::new(),
            last_prune_t: 0,
            path: cfg.path.clone(),
        };
        state.load_mem().map_err(|source| StoreError::Sql {
            path: cfg.path.clone(),
            source,
        })?;
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || state.run(rx))
            .map_err(|source| StoreError::Dir {
                path: cfg.path.clone(),
                source,
            })?;
        Ok((
            Writer {
                tx,
                path: cfg.path.clone(),
            },
            handle,
        ))
    }

    /// Stores a reading; resolves once it is committed.
    pub async fn store(&self, r: StoredReading) -> Result<(), StoreError> {
        let done = self.queue(r).await?;
        done.await
            .map_err(|_| StoreError::WriterGone(self.path.clone()))
    }

    /// Queues a reading (waits only while the queue is full); the receiver resolves once
    /// its batch is committed and is dropped unresolved when the batch fails.
    pub async fn queue(&self, r: StoredReading) -> Result<oneshot::Receiver<()>, StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Reading(Box::new(r), Some(ack)))
            .await
            .map_err(|_| StoreError::WriterGone(self.path.clone()))?;
        Ok(done)
    }

    /// Queues a reading without waiting (bulk loads, benchmarks).
    pub fn store_blocking(&self, r: StoredReading) -> Result<(), StoreError> {
        self.tx
            .blocking_send(Msg::Reading(Box::new(r), None))
            .map_err(|_| StoreError::WriterGone(self.path.clone()))
    }

    pub async fn alarm(&self, change: AlarmChange, t: i64) -> Result<(), StoreError> {
        self.tx
            .send(Msg::Alarm(change, t))
            .await
            .map_err(|_| StoreError::WriterGone(self.path.clone()))
    }

    /// Runs `f` on the writer's connection and returns its result.
    pub async fn job<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move |c: &Connection| {
            let _ = tx.send(f(c));
        });
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| StoreError::WriterGone(self.path.clone()))?;
        rx.await
            .map_err(|_| StoreError::WriterGone(self.path.clone()))
    }
}

struct WriterState {
    conn: Connection,
    calendar: Calendar,
    resolution_s: i64,
    keep_readings_s: i64,
    keep_daily_days: i64,
    batch_max: usize,
    mem: HashMap<String, MeterMem>,
    last_prune_t: i64,
    path: PathBuf,
}

impl WriterState {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut acks = Vec::new();
            if let Err(e) = self.apply(batch, &mut acks) {
                // The batch is rolled back; its readings are still in the spool.
                tracing::error!("store {}: batch not written: {e}", self.path.display());
                self.mem.clear();
                let _ = self.load_mem();
                continue;
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
        tracing::debug!("store writer stopped");
    }

    fn apply(
        &mut self,
        batch: Vec<Msg>,
        acks: &mut Vec<oneshot::Sender<()>>,
    ) -> rusqlite::Result<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut newest = 0;
        for msg in batch {
            let result = match msg {
                Msg::Reading(r, ack) => {
                    newest = newest.max(r.t);
                    acks.extend(ack);
                    self.reading(&r)
                }
                Msg::Alarm(change, t) => self.alarm(&change, t),
                Msg::Job(f) => {
                    f(&self.conn);
                    Ok(())
                }
            };
            if let Err(e) = result {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        if newest - self.last_prune_t >= 3600 {
            self.prune(newest)?;
            self.last_prune_t = newest;
        }
        self.conn.execute_batch("COMMIT")
    }

    /// Forgets readings and daily snapshots past their keep time (closes stay forever).
    fn prune(&self, now: i64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM readings WHERE t < ?1")?
            .execute([now - self.keep_readings_s])?;
        let oldest = self
            .calendar
            .local_date(
                jiff::Timestamp::from_second(now - self.keep_daily_days * 86_400)
                    .unwrap_or_default(),
            )
            .to_string();
        self.conn
            .execute("DELETE FROM daily WHERE day < ?1", [oldest])?;
        Ok(())
    }

    /// The newest stored row and day of each meter, so a restart continues its slots.
    fn load_mem(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT r.rowid, r.meter_id, r.slot, r.flags, r.registers, r.flags_changed, r.t
             FROM readings r JOIN (SELECT meter_id, MAX(t) AS mt FROM readings GROUP BY meter_id) m
             ON r.meter_id = m.meter_id AND r.t = m.mt",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        for row in rows {
            let (rowid, meter, slot, flags, registers, changed, t) = row?;
            let mem = self.mem.entry(meter).or_default();
            mem.slot = slot;
            mem.rowid = Some(rowid);
            mem.replaceable = changed == 0;
            mem.flags = flags;
            mem.registers = parse_registers(&registers);
            mem.known = true;
            mem.last_t = t;
        }
        drop(stmt);
        let mut day_stmt = self.conn.prepare(
            "SELECT d.meter_id, d.day, d.max_power, d.readings, d.flags, d.max_drift_s, d.decreases
             FROM daily d JOIN (SELECT meter_id, MAX(day) AS md FROM daily GROUP BY meter_id) m
             ON d.meter_id = m.meter_id AND d.day = m.md",
        )?;
        let days = day_stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<f64>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        for d in days {
            let (meter, day, max_power, readings, flags, drift, decreases) = d?;
            let mem = self.mem.entry(meter).or_default();
            mem.day = day;
            mem.day_max_power = max_power;
            mem.day_readings = readings;
            mem.day_flags = split_set(&flags);
            mem.day_drift = drift;
            mem.day_decreases = split_set(&decreases);
        }
        Ok(())
    }

    fn reading(&mut self, r: &StoredReading) -> rusqlite::Result<()> {
        if self
            .mem
            .get(&r.meter_id)
            .is_some_and(|m| m.known && r.t <= m.last_t)
        {
            return self.older_reading(r);
        }
        let slot = r.t.div_euclid(self.resolution_s.max(1));
        let flags = r.facts.flags.join(",");
        let ts = jiff::Timestamp::from_second(r.t).unwrap_or_default();
        let day = self.calendar.local_date(ts).to_string();
        let drift = r
            .facts
            .meter_time
            .as_deref()
            .and_then(|m| meter_drift(&self.calendar, m, ts));
        let conn = &self.conn;
        let mem = self.mem.entry(r.meter_id.clone()).or_default();
        let changed = mem.flags != flags && (mem.known || !flags.is_empty());
        if !mem.known {
            conn.prepare_cached(
                "INSERT INTO meters (meter_id, manufacturer, device_type, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT(meter_id) DO UPDATE SET manufacturer = excluded.manufacturer,
                   device_type = excluded.device_type, last_seen = excluded.last_seen,
                   first_seen = COALESCE(meters.first_seen, excluded.first_seen)",
            )?
            .execute(params![
                r.meter_id,
                r.manufacturer,
                r.device_type,
                r.received_at
            ])?;
        }
        if mem.day != day {
            if mem.known {
                conn.prepare_cached("UPDATE meters SET last_seen = ?2 WHERE meter_id = ?1")?
                    .execute(params![r.meter_id, r.received_at])?;
            }
            mem.new_day(day.clone());
        }
        mem.note_day(r, drift);
        write_slot(conn, mem, r, slot, &flags, changed)?;
        mem.flags = flags;
        mem.known = true;
        mem.last_t = r.t;
        if !r.facts.registers.is_empty() {
            mem.registers = r.facts.registers.clone();
        }
        write_daily(conn, mem, r, &day)?;
        for d in &r.facts.due {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO due_values (meter_id, register, date, value, heard_t)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                r.meter_id,
                d.register.as_str(),
                d.date,
                d.value,
                r.t
            ])?;
        }
        Ok(())
    }

    /// A reading not newer than the meter's newest (a log replayed again, a late
    /// receiver): kept once in `readings`, without touching slots or daily snapshots.
    fn older_reading(&self, r: &StoredReading) -> rusqlite::Result<()> {
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM readings WHERE meter_id = ?1 AND t = ?2 LIMIT 1",
                params![r.meter_id, r.t],
                |row| row.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Ok(());
        }
        let slot = r.t.div_euclid(self.resolution_s.max(1));
        self.conn
            .prepare_cached(
                "INSERT INTO readings (meter_id, t, received_at, slot, status, flags, error_flags,
               meter_time, registers, \"values\", flags_changed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
            )?
            .execute(params![
                r.meter_id,
                r.t,
                r.received_at,
                slot,
                r.status,
                r.facts.flags.join(","),
                r.facts.error_flags as i64,
                r.facts.meter_time,
                super::registers_json(&r.facts.registers),
                r.values
            ])?;
        Ok(())
    }

    fn alarm(&self, c: &AlarmChange, t: i64) -> rusqlite::Result<()> {
        match c.state {
            AlarmState::Raised => self.conn.prepare_cached("INSERT OR REPLACE INTO alarms (meter_id, alarm, since, since_t, detail, cleared_t)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)")?
            .execute(params![c.meter, c.alarm, c.since, t, c.detail])?,
            AlarmState::Cleared => self.conn.prepare_cached("UPDATE alarms SET cleared_t = ?4
                 WHERE meter_id = ?1 AND alarm = ?2 AND since = ?3")?
            .execute(params![c.meter, c.alarm, c.since, t])?,
        };
        Ok(())
    }
}

/// Seconds between the meter's clock (local time without zone) and the gateway's.
fn meter_drift(calendar: &Calendar, meter_time: &str, at: jiff::Timestamp) -> Option<i64> {
    let dt: jiff::civil::DateTime = meter_time.parse().ok()?;
    let meter = dt.to_zoned(calendar.tz.clone()).ok()?.timestamp();
    Some((meter.as_second() - at.as_second()).abs())
}

fn split_set(s: &str) -> BTreeSet<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The `registers` column back as values.
pub fn parse_registers(text: &str) -> Vec<(Register, f64)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((Register::parse(k)?, v.as_f64()?)))
        .collect()
}

impl MeterMem {
    /// The first reading of `day`: the day's figures start again.
    fn new_day(&mut self, day: String) {
        self.day = day;
        self.day_flags.clear();
        self.day_max_power = None;
        self.day_readings = 0;
        self.day_drift = None;
        self.day_decreases.clear();
    }

    /// Adds a reading to its day's figures (decreasing counters, maximum power, flags,
    /// clock drift); before `registers` takes the reading's registers.
    fn note_day(&mut self, r: &StoredReading, drift: Option<i64>) {
        for &(reg, v) in &r.facts.registers {
            let before = self
                .registers
                .iter()
                .find(|(g, _)| *g == reg)
                .map(|(_, v)| *v);
            if reg.is_counter() && before.is_some_and(|b| v < b) {
                self.day_decreases.insert(reg.as_str().to_owned());
            }
            if reg == Register::MaxPower {
                self.day_max_power = Some(self.day_max_power.map_or(v, |m| m.max(v)));
            }
        }
        self.day_flags.extend(r.facts.flags.iter().cloned());
        self.day_readings += 1;
        if let Some(d) = drift {
            self.day_drift = Some(self.day_drift.map_or(d, |m| m.max(d)));
        }
    }
}

/// The reading's row: the slot's row replaced while nothing changed within the slot, else a
/// new row.
fn write_slot(
    conn: &Connection,
    mem: &mut MeterMem,
    r: &StoredReading,
    slot: i64,
    flags: &str,
    changed: bool,
) -> rusqlite::Result<()> {
    let registers = super::registers_json(&r.facts.registers);
    if !changed && mem.replaceable && mem.slot == slot && mem.rowid.is_some() {
        conn.prepare_cached(
            "UPDATE readings SET t = ?2, received_at = ?3, status = ?4, flags = ?5,
                   error_flags = ?6, meter_time = ?7, registers = ?8, \"values\" = ?9
                 WHERE rowid = ?1",
        )?
        .execute(params![
            mem.rowid,
            r.t,
            r.received_at,
            r.status,
            flags,
            r.facts.error_flags as i64,
            r.facts.meter_time,
            registers,
            r.values
        ])?;
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO readings (meter_id, t, received_at, slot, status, flags, error_flags,
                   meter_time, registers, \"values\", flags_changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.meter_id,
        r.t,
        r.received_at,
        slot,
        r.status,
        flags,
        r.facts.error_flags as i64,
        r.facts.meter_time,
        registers,
        r.values,
        i64::from(changed)
    ])?;
    mem.rowid = Some(conn.last_insert_rowid());
    mem.replaceable = !changed;
    mem.slot = slot;
    Ok(())
}

/// The meter's snapshot of `day` (its newest registers and the day's figures).
fn write_daily(
    conn: &Connection,
    mem: &MeterMem,
    r: &StoredReading,
    day: &str,
) -> rusqlite::Result<()> {
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO daily (meter_id, day, t, received_at, registers, max_power,
               readings, flags, max_drift_s, decreases)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        r.meter_id,
        day,
        r.t,
        r.received_at,
        super::registers_json(&mem.registers),
        mem.day_max_power,
        mem.day_readings,
        join(&mem.day_flags),
        mem.day_drift,
        join(&mem.day_decreases)
    ])?;
    Ok(())
}

/// Whether the store has a reading older than `t` (a period before it was set up has
/// nothing to close).
pub fn has_reading_before(conn: &Connection, t: i64) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM daily WHERE t < ?1 LIMIT 1", [t], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(found.is_some())
}

impl Writer {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
