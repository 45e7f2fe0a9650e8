//! The daemon's billing sink: the time of reception (wall or recorded), the store writer,
//! consumption alarms, and the close of each period once its deadline is `max_gap_hours`
//! behind (its report is then stored, published per meter and exported).
//!
//! The daemon calls [`Billing::frame`] for each frame, [`Billing::reading`] for each
//! reading before it is spooled, and [`Billing::now`] wherever it needs the time. A
//! reading is queued to the store without waiting; the daemon hands its commit ticket
//! ([`Stored::committed`]) to the spool writer, whose batch waits for it, so a spooled
//! reading is already committed to the store (group commit on both sides).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::billing::alarms::{ConsumptionAlarms, Observation};
use crate::billing::report::{meter_json, to_csv, Report};
use crate::billing::settings::{BillingSection, Thresholds};
use crate::billing::{Calendar, Facts, Medium, Period};
use crate::config::{Config, MeterConfig};
use crate::health::{ActiveAlarm, AlarmChange};
use crate::mqtt::RetainedPublisher;
use crate::reading::Reading;

use super::report::{closed_periods, period_report, store_closes, Context};
use super::writer::{has_reading_before, StoredReading, Writer};
use super::StoreError;

/// MQTT topic of a closed period's report for one meter.
pub fn topic_period(prefix: &str, gateway: &str, period: &str, meter_id: &str) -> String {
    format!("{prefix}/{gateway}/period/{period}/{meter_id}")
}

/// Where published messages go (alarms are returned to the daemon for its spool writer).
pub struct Outputs {
    pub retained: RetainedPublisher,
    pub prefix: String,
    pub gateway: String,
}

/// What became of a reading given to [`Billing::reading`].
#[derive(Debug, Default)]
pub struct Stored {
    /// Resolves once the reading is committed to the store; `None` without a store (or
    /// when it could not be queued). Dropped unresolved when its batch failed.
    pub committed: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Consumption alarm changes the reading caused: (topic, payload) for the spool.
    pub alarms: Vec<(String, Vec<u8>)>,
}

/// Billing state of the running daemon.
pub struct Billing {
    recorded: bool,
    latest: Option<SystemTime>,
    writer: Option<(Writer, std::thread::JoinHandle<()>)>,
    calendar: Calendar,
    billing: BillingSection,
    meters: Vec<MeterConfig>,
    by_id: HashMap<String, usize>,
    alarms: ConsumptionAlarms,
    closed: BTreeSet<String>,
    last_checked: Option<Period>,
    outputs: Outputs,
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Billing {
    /// Opens the store (when `[store]` is configured) and restores closed periods and
    /// active consumption alarms.
    pub async fn start(config: &Config, outputs: Outputs) -> Result<Billing, StoreError> {
        let calendar = Calendar::new(&config.billing)?;
        let writer = match &config.store {
            Some(s) => {
                let w = Writer::start(s, calendar.clone())?;
                tracing::info!("store: {} (WAL, one writer)", s.path.display());
                Some(w)
            }
            None => None,
        };
        let mut b = Billing {
            recorded: config.radios.iter().any(|r| r.clock_recorded),
            latest: None,
            writer,
            calendar,
            billing: config.billing.clone(),
            by_id: config
                .meters
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), i))
                .collect(),
            meters: config.meters.clone(),
            alarms: ConsumptionAlarms::new(),
            closed: BTreeSet::new(),
            last_checked: None,
            outputs,
        };
        if let Some((w, _)) = &b.writer {
            let (closed, active) = w
                .job(|c| {
                    (
                        closed_periods(c).unwrap_or_default(),
                        active_alarms(c).unwrap_or_default(),
                    )
                })
                .await?;
            b.closed = closed;
            b.alarms.restore(active);
            if let Some(last) = b.closed.iter().next_back().cloned() {
                b.republish(&last).await;
            }
        }
        Ok(b)
    }

    /// The time of reception: the newest recorded time in a recorded replay, else the clock.
    pub fn now(&self) -> SystemTime {
        match (self.recorded, self.latest) {
            (true, Some(t)) => t,
            _ => SystemTime::now(),
        }
    }

    /// Advances the recorded clock with a frame's time.
    pub fn frame(&mut self, frame: &crate::frame::RadioFrame) {
        if let (true, Some(at)) = (self.recorded, frame.received_at) {
            self.latest = Some(self.latest.map_or(at, |l| l.max(at)));
        }
    }

    /// Active consumption alarms, for the health document.
    pub fn active_alarms(&self) -> Vec<ActiveAlarm> {
        self.alarms.active()
    }

    fn medium_of(&self, reading: &Reading) -> (Medium, Thresholds) {
        let meter = self
            .by_id
            .get(&reading.meter.id)
            .and_then(|&i| self.meters.get(i));
        let medium = meter
            .and_then(|m| m.medium.as_deref())
            .and_then(Medium::parse)
            .unwrap_or_else(|| Medium::from_device_type(&reading.meter.device_type));
        let base = self
            .billing
            .alarms
            .get(medium.as_str())
            .map_or_else(Thresholds::defaults, |t| t.over(&Thresholds::defaults()));
        let th = meter
            .and_then(|m| m.alarms.as_ref())
            .map_or(base.clone(), |t| t.over(&base));
        (medium, th)
    }

    /// Queues a reading to the store, evaluates consumption alarms and closes a period
    /// whose deadline is far enough behind.
    pub async fn reading(&mut self, reading: &Reading) -> Stored {
        let at = reading
            .received_at
            .as_deref()
            .and_then(crate::timefmt::parse_rfc3339)
            .unwrap_or_else(|| self.now());
        let t = secs(at);
        let (medium, th) = self.medium_of(reading);
        let facts = Facts::of(reading, medium);
        let ts = jiff::Timestamp::from_second(t).unwrap_or_default();
        let day = jiff::civil::date(1970, 1, 1)
            .until(self.calendar.local_date(ts))
            .map_or(0, |s| i64::from(s.get_days()));
        let since = crate::timefmt::rfc3339(at);
        let changes = self.alarms.observe(
            &Observation {
                meter: &reading.meter.id,
                medium,
                thresholds: &th,
                t,
                day,
                facts: &facts,
            },
            &since,
        );
        let mut out = Stored::default();
        if let Some((w, _)) = &self.writer {
            let stored = StoredReading {
                meter_id: reading.meter.id.clone(),
                t,
                received_at: since.clone(),
                status: reading.status.byte,
                manufacturer: reading.meter.manufacturer.clone(),
                device_type: reading.meter.device_type.clone(),
                values: compact_values(reading),
                facts,
            };
            match w.queue(stored).await {
                Ok(done) => out.committed = Some(done),
                Err(e) => tracing::error!("reading of meter {} NOT stored: {e}", reading.meter.id),
            }
        }
        for change in changes {
            out.alarms.push(self.alarm_message(change, t).await);
        }
        self.maybe_close(t).await;
        out
    }

    /// Keeps an alarm change in the store; returns its message for the alarm topic.
    async fn alarm_message(&self, change: AlarmChange, t: i64) -> (String, Vec<u8>) {
        change.log();
        if let Some((w, _)) = &self.writer {
            if let Err(e) = w.alarm(change.clone(), t).await {
                tracing::error!("store: alarm of meter {} not kept: {e}", change.meter);
            }
        }
        let topic = crate::mqtt::topic_alarm(&self.outputs.prefix, &self.outputs.gateway);
        (topic, change.to_json().into_bytes())
    }

    /// Closes the newest period whose end deadline lies `max_gap_hours` before `t`.
    async fn maybe_close(&mut self, t: i64) {
        let gap = (self.billing.max_gap_hours * 3600.0) as i64;
        let Ok(due_ts) = jiff::Timestamp::from_second(t - gap) else {
            return;
        };
        let Some(period) = self
            .calendar
            .containing(due_ts)
            .and_then(|p| self.calendar.previous(p))
            .ok()
        else {
            return;
        };
        if self.last_checked == Some(period) || self.closed.contains(&period.to_string()) {
            return;
        }
        self.last_checked = Some(period);
        let Some((w, _)) = &self.writer else {
            return;
        };
        let Ok(end) = self.calendar.end(period) else {
            return;
        };
        let (calendar, billing, meters) = (
            self.calendar.clone(),
            self.billing.clone(),
            self.meters.clone(),
        );
        let closed_at = crate::timefmt::rfc3339(self.now());
        let job = w
            .job(move |c| -> Result<Option<Report>, StoreError> {
                if !has_reading_before(c, end.as_second()).unwrap_or(false) {
                    return Ok(None);
                }
                let ctx = Context {
                    calendar: &calendar,
                    billing: &billing,
                    meters: &meters,
                };
                let report = period_report(c, &ctx, period, t)?;
                store_closes(c, &report, &closed_at).map_err(|source| StoreError::Sql {
                    path: c.path().unwrap_or("").into(),
                    source,
                })?;
                Ok(Some(report))
            })
            .await;
        match job {
            Ok(Ok(Some(report))) => {
                self.closed.insert(period.to_string());
                tracing::info!(
                    "period {period} closed: {} row(s) for {} meter(s)",
                    report.rows.len(),
                    report
                        .rows
                        .iter()
                        .map(|r| &r.meter_id)
                        .collect::<BTreeSet<_>>()
                        .len()
                );
                self.publish_report(&report);
                self.export(&report);
            }
            Ok(Ok(None)) => {
                tracing::debug!("period {period}: the store holds nothing before its end")
            }
            Ok(Err(e)) | Err(e) => tracing::error!("period {period} not closed: {e}"),
        }
    }

    /// Publishes a stored period again (after a restart: retained messages may be lost).
    async fn republish(&self, period: &str) {
        let Some((w, _)) = &self.writer else { return };
        let Ok(p) = self.calendar.parse(period) else {
            return;
        };
        let (calendar, billing, meters) = (
            self.calendar.clone(),
            self.billing.clone(),
            self.meters.clone(),
        );
        let now = secs(SystemTime::now()).max(self.calendar.end(p).map_or(0, |e| e.as_second()));
        let report = w
            .job(move |c| {
                let ctx = Context {
                    calendar: &calendar,
                    billing: &billing,
                    meters: &meters,
                };
                period_report(c, &ctx, p, now)
            })
            .await;
        if let Ok(Ok(report)) = report {
            self.publish_report(&report);
        }
    }

    fn publish_report(&self, report: &Report) {
        if !self.billing.publish {
            return;
        }
        let ids: BTreeSet<&str> = report.rows.iter().map(|r| r.meter_id.as_str()).collect();
        for id in ids {
            self.outputs.retained.publish_retained(
                topic_period(
                    &self.outputs.prefix,
                    &self.outputs.gateway,
                    &report.period,
                    id,
                ),
                meter_json(report, id).into_bytes(),
            );
        }
    }

    /// Writes `<export_dir>/<gateway>-<period>.csv` (atomically: temporary file, rename).
    fn export(&self, report: &Report) {
        let Some(dir) = &self.billing.export_dir else {
            return;
        };
        let path: PathBuf = dir.join(format!("{}-{}.csv", self.outputs.gateway, report.period));
        let tmp = path.with_extension("csv.tmp");
        let result = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, to_csv(&report.rows, self.billing.delimiter)))
            .and_then(|_| std::fs::rename(&tmp, &path));
        match result {
            Ok(()) => tracing::info!(
                "period {}: report written to {}",
                report.period,
                path.display()
            ),
            Err(e) => tracing::error!(
                "period {}: report not written to {}: {e}",
                report.period,
                path.display()
            ),
        }
    }

    /// Stops the writer after everything queued is committed.
    pub async fn shutdown(self) {
        if let Some((w, handle)) = self.writer {
            drop(w);
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn active_alarms(c: &rusqlite::Connection) -> rusqlite::Result<Vec<ActiveAlarm>> {
    let mut stmt =
        c.prepare("SELECT meter_id, alarm, since, detail FROM alarms WHERE cleared_t IS NULL")?;
    let rows = stmt.query_map([], |r| {
        Ok(ActiveAlarm {
            meter: r.get(0)?,
            alarm: r.get(1)?,
            since: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The reading's records as one compact JSON object: `quantity` plus `@s<storage>`,
/// `@t<tariff>`, `@u<subunit>`, `@<function>` where not the default, to the value.
pub fn compact_values(reading: &Reading) -> String {
    use crate::reading::{Function, Value};
    let mut map = serde_json::Map::new();
    for r in &reading.records {
        let mut key = r.quantity.to_string();
        if r.storage != 0 {
            key.push_str(&format!("@s{}", r.storage));
        }
        if r.tariff != 0 {
            key.push_str(&format!("@t{}", r.tariff));
        }
        if r.subunit != 0 {
            key.push_str(&format!("@u{}", r.subunit));
        }
        if r.function != Function::Instantaneous {
            key.push_str(&format!("@{}", r.function.as_str()));
        }
        for q in &r.qualifiers {
            key.push('@');
            key.push_str(q);
        }
        let value = match &r.value {
            Value::Number(d) => d
                .to_string()
                .parse::<serde_json::Number>()
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(t) => serde_json::Value::String(t.clone()),
            Value::Null => serde_json::Value::Null,
        };
        map.entry(key).or_insert(value);
    }
    serde_json::Value::Object(map).to_string()
}
