//! The PostgreSQL reading store of the central decoders (`[store] url = "postgres://…"`).
//!
//! Several `wmbusd central` instances write to one database. A telegram heard by several
//! gateways arrives as several raw frames, possibly at different instances; it is stored
//! once, keyed by meter, access number and time window: a frame whose (meter, access
//! number) has a row less than `window` away merges its gateway into that row's
//! `receivers` instead of adding a row. Each batch runs in one transaction that first takes
//! a transaction-scoped advisory lock per (meter, access number), in ascending key order
//! (no deadlocks), so two instances never both insert the same telegram.
//!
//! Readings are published from the table (an outbox): an instance claims rows not yet
//! published and older than the hold time with `FOR UPDATE SKIP LOCKED`, hands them to
//! its durable spool and only then commits `published = true`. An instance that dies in
//! between leaves the rows unclaimed for another one. Schema: `docs/store-schema.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::{Client, NoTls, Transaction};

use super::StoreError;

/// Version of the PostgreSQL schema (table `schema_version`).
pub const PG_SCHEMA_VERSION: i32 = 1;

const PG_SCHEMA_V1: &str = r#"
CREATE TABLE IF NOT EXISTS readings (
    id            BIGSERIAL PRIMARY KEY,
    meter_id      TEXT        NOT NULL,
    access_number INTEGER     NOT NULL,
    t_ms          BIGINT      NOT NULL,
    received_at   TEXT        NOT NULL,
    day           TEXT        NOT NULL,
    receivers     JSONB       NOT NULL,
    reading       TEXT        NOT NULL,
    registers     TEXT        NOT NULL,
    created       TIMESTAMPTZ NOT NULL DEFAULT now(),
    published     BOOLEAN     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS readings_key ON readings (meter_id, access_number, t_ms);
CREATE INDEX IF NOT EXISTS readings_unpublished ON readings (created) WHERE NOT published;
CREATE TABLE IF NOT EXISTS daily (
    meter_id    TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    t_ms        BIGINT  NOT NULL,
    received_at TEXT    NOT NULL,
    registers   TEXT    NOT NULL,
    readings    INTEGER NOT NULL,
    PRIMARY KEY (meter_id, day)
);
"#;

/// Any fixed number: the advisory lock that serialises migrations of several instances.
const MIGRATION_LOCK: i64 = 0x776d_6275_7364;

/// One decoded telegram as one gateway heard it.
#[derive(Debug, Clone, PartialEq)]
pub struct PgReading {
    pub meter_id: String,
    /// `-1` when the telegram carries none (wired frames).
    pub access_number: i32,
    /// Reception time, Unix milliseconds.
    pub t_ms: i64,
    pub received_at: String,
    /// Local billing day `YYYY-MM-DD` of the reception.
    pub day: String,
    pub gateway: String,
    pub rssi_dbm: Option<f32>,
    /// The reading's JSON as a gateway would publish it.
    pub reading: String,
    /// Billing registers, `{"volume":12.5}` (see [`super::registers_json`]).
    pub registers: String,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// New telegrams (rows added).
    pub inserted: usize,
    /// Copies merged into a row (another gateway, or a redelivered frame).
    pub merged: usize,
}

/// One reading claimed for publishing.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub meter_id: String,
    pub reading: String,
    /// (gateway, RSSI), best first; a receiver without RSSI comes last.
    pub receivers: Vec<(String, Option<f32>)>,
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A connection to the store.
pub struct PgStore {
    client: Client,
    url: String,
}

impl PgStore {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let redacted = redact(url);
        let err = |source| StoreError::Pg {
            url: redacted.clone(),
            source,
        };
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(err)?;
        let name = redacted.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!("store {name}: connection lost: {e}");
            }
        });
        let mut store = PgStore {
            client,
            url: redacted,
        };
        store.migrate().await?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
        |source| StoreError::Pg {
            url: self.url.clone(),
            source,
        }
    }

    async fn migrate(&mut self) -> Result<(), StoreError> {
        let url = self.url.clone();
        let err = |source| StoreError::Pg {
            url: url.clone(),
            source,
        };
        let tx = self.client.transaction().await.map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .await
            .map_err(err)?;
        let row = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .await
            .map_err(err)?;
        let found: i32 = row.get(0);
        if found > PG_SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: url.clone().into(),
                found: i64::from(found),
            });
        }
        if found < 1 {
            tx.batch_execute(PG_SCHEMA_V1).await.map_err(err)?;
            tx.execute("INSERT INTO schema_version (version) VALUES (1)", &[])
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    /// Stores a batch in one transaction; resolves once it is committed.
    pub async fn insert_batch(
        &mut self,
        batch: &[PgReading],
        window_ms: i64,
    ) -> Result<BatchOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let url = self.url.clone();
        let err = |source| StoreError::Pg {
            url: url.clone(),
            source,
        };
        let groups = group_batch(batch, window_ms);
        let tx = self.client.transaction().await.map_err(err)?;
        lock_keys(&tx, &groups).await.map_err(err)?;
        let existing = existing_rows(&tx, &groups, window_ms).await.map_err(err)?;
        let mut merges: Vec<(i64, String)> = Vec::new();
        let mut fresh: Vec<&Group> = Vec::new();
        for g in &groups {
            match find_row(&existing, g, window_ms) {
                Some(id) => merges.push((id, g.receivers_json())),
                None => fresh.push(g),
            }
        }
        merge_receivers(&tx, &merges).await.map_err(err)?;
        insert_rows(&tx, &fresh).await.map_err(err)?;
        upsert_daily(&tx, &fresh).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(BatchOutcome {
            inserted: fresh.len(),
            merged: batch.len() - fresh.len(),
        })
    }

    /// Claims up to `max` unpublished readings stored at least `hold_secs` ago, hands them
    /// to `deliver` (which makes them durable elsewhere and says whether it did), and
    /// marks them published only then. Returns how many were delivered.
    pub async fn publish_due<F>(
        &mut self,
        hold_secs: f64,
        max: i64,
        deliver: F,
    ) -> Result<usize, StoreError>
    where
        F: FnOnce(Vec<Due>) -> bool + Send + 'static,
    {
        let url = self.url.clone();
        let err = |source| StoreError::Pg {
            url: url.clone(),
            source,
        };
        let tx = self.client.transaction().await.map_err(err)?;
        let rows = tx
            .query(
                "SELECT id, meter_id, reading, receivers::text FROM readings \
                 WHERE NOT published AND created <= now() - make_interval(secs => $1) \
                 ORDER BY created LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&hold_secs, &max],
            )
            .await
            .map_err(err)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let due: Vec<Due> = rows
            .iter()
            .map(|r| Due {
                meter_id: r.get(1),
                reading: r.get(2),
                receivers: ranked_receivers(r.get(3)),
            })
            .collect();
        let n = due.len();
        let delivered = tokio::task::spawn_blocking(move || deliver(due))
            .await
            .unwrap_or(false);
        if !delivered {
            // Rolled back on drop: the rows stay unpublished for the next round.
            return Ok(0);
        }
        tx.execute(
            "UPDATE readings SET published = true WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    /// Rows of `readings` (telegrams stored), for tests and health.
    pub async fn count_readings(&self) -> Result<i64, StoreError> {
        let row = self
            .client
            .query_one("SELECT COUNT(*) FROM readings", &[])
            .await
            .map_err(self.err())?;
        Ok(row.get(0))
    }

    /// Empties the tables (benchmarks between runs).
    pub async fn truncate(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute("TRUNCATE readings, daily")
            .await
            .map_err(self.err())
    }

    /// Every stored telegram: (meter, access number, receivers best first).
    pub async fn receivers(&self) -> Result<Vec<(String, i32, Vec<String>)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT meter_id, access_number, receivers::text FROM readings ORDER BY id",
                &[],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| {
                let gws = ranked_receivers(r.get(2)).into_iter().map(|(g, _)| g);
                (r.get(0), r.get(1), gws.collect())
            })
            .collect())
    }

    /// Consumption per meter and register between the first and the last daily snapshot
    /// of `from..=to` (local days `YYYY-MM-DD`), by meter id.
    pub async fn consumption(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<ConsumptionRow>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT meter_id, day, registers FROM daily \
                 WHERE day >= $1 AND day <= $2 ORDER BY meter_id, day",
                &[&from, &to],
            )
            .await
            .map_err(self.err())?;
        let mut by_meter: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for r in &rows {
            by_meter
                .entry(r.get(0))
                .or_default()
                .push((r.get(1), r.get(2)));
        }
        Ok(by_meter
            .into_iter()
            .flat_map(|(meter, days)| consumption_of(&meter, &days))
            .collect())
    }
}

/// One line of [`PgStore::consumption`].
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumptionRow {
    pub meter_id: String,
    pub register: String,
    pub first_day: String,
    pub first: f64,
    pub last_day: String,
    pub last: f64,
    pub consumption: f64,
}

fn registers_of(json: &str) -> BTreeMap<String, f64> {
    serde_json::from_str::<BTreeMap<String, serde_json::Value>>(json)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k, f)))
        .collect()
}

/// Counter registers only (from the billing register list); the first and the last day
/// that has the register.
fn consumption_of(meter: &str, days: &[(String, String)]) -> Vec<ConsumptionRow> {
    let parsed: Vec<(&str, BTreeMap<String, f64>)> = days
        .iter()
        .map(|(d, r)| (d.as_str(), registers_of(r)))
        .collect();
    let names: BTreeSet<&String> = parsed.iter().flat_map(|(_, r)| r.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let counter = crate::billing::Register::parse(name).is_some_and(|r| r.is_counter());
        if !counter {
            continue;
        }
        let mut with = parsed
            .iter()
            .filter_map(|(d, r)| r.get(name.as_str()).map(|v| (*d, *v)));
        let Some((first_day, first)) = with.next() else {
            continue;
        };
        let (last_day, last) = with.next_back().unwrap_or((first_day, first));
        out.push(ConsumptionRow {
            meter_id: meter.to_owned(),
            register: name.clone(),
            first_day: first_day.to_owned(),
            first,
            last_day: last_day.to_owned(),
            last,
            consumption: last - first,
        });
    }
    out
}

/// `{"gw":-70.5,…}` as a list, best RSSI first (ties by name, for a stable order).
pub fn ranked_receivers(json: String) -> Vec<(String, Option<f32>)> {
    let map: BTreeMap<String, Option<f64>> = serde_json::from_str(&json).unwrap_or_default();
    let mut list: Vec<(String, Option<f32>)> = map
        .into_iter()
        .map(|(g, r)| (g, r.map(|v| v as f32)))
        .collect();
    list.sort_by(|a, b| {
        let key = |r: Option<f32>| r.unwrap_or(f32::NEG_INFINITY);
        key(b.1).total_cmp(&key(a.1)).then_with(|| a.0.cmp(&b.0))
    });
    list
}

/// Copies of one telegram inside a batch, merged.
#[derive(Debug)]
struct Group<'a> {
    first: &'a PgReading,
    receivers: BTreeMap<&'a str, Option<f32>>,
}

impl Group<'_> {
    fn receivers_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .receivers
            .iter()
            .map(|(g, r)| {
                let v = r
                    .and_then(|r| serde_json::Number::from_f64(f64::from(r)))
                    .map_or(serde_json::Value::Null, serde_json::Value::Number);
                ((*g).to_owned(), v)
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

/// Merges copies of one (meter, access number) less than `window_ms` apart; for one
/// gateway heard twice (redelivery) its best RSSI is kept.
fn group_batch(batch: &[PgReading], window_ms: i64) -> Vec<Group<'_>> {
    let mut sorted: Vec<&PgReading> = batch.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.meter_id, a.access_number, a.t_ms).cmp(&(&b.meter_id, b.access_number, b.t_ms))
    });
    let mut groups: Vec<Group> = Vec::new();
    for r in sorted {
        let same = groups.last().is_some_and(|g| {
            g.first.meter_id == r.meter_id
                && g.first.access_number == r.access_number
                && r.t_ms - g.first.t_ms <= window_ms
        });
        if !same {
            groups.push(Group {
                first: r,
                receivers: BTreeMap::new(),
            });
        }
        if let Some(g) = groups.last_mut() {
            let slot = g.receivers.entry(r.gateway.as_str()).or_insert(r.rssi_dbm);
            if r.rssi_dbm.unwrap_or(f32::NEG_INFINITY) > slot.unwrap_or(f32::NEG_INFINITY) {
                *slot = r.rssi_dbm;
            }
        }
    }
    groups
}

/// FNV-1a of (meter, access number): the same in every instance and every build.
fn lock_key(meter_id: &str, access_number: i32) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in meter_id.bytes().chain(access_number.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

async fn lock_keys(
    tx: &Transaction<'_>,
    groups: &[Group<'_>],
) -> Result<(), tokio_postgres::Error> {
    let keys: BTreeSet<i64> = groups
        .iter()
        .map(|g| lock_key(&g.first.meter_id, g.first.access_number))
        .collect();
    let keys: Vec<i64> = keys.into_iter().collect();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) s",
        &[&keys],
    )
    .await
    .map(|_| ())
}

type Existing = HashMap<(String, i32), Vec<(i64, i64)>>;

/// Rows of the batch's meters near its times: (meter, access number) -> [(id, t_ms)].
async fn existing_rows(
    tx: &Transaction<'_>,
    groups: &[Group<'_>],
    window_ms: i64,
) -> Result<Existing, tokio_postgres::Error> {
    let meters: BTreeSet<&str> = groups.iter().map(|g| g.first.meter_id.as_str()).collect();
    let meters: Vec<&str> = meters.into_iter().collect();
    let lo = groups.iter().map(|g| g.first.t_ms).min().unwrap_or(0) - window_ms;
    let hi = groups.iter().map(|g| g.first.t_ms).max().unwrap_or(0) + window_ms;
    let rows = tx
        .query(
            "SELECT id, meter_id, access_number, t_ms FROM readings \
             WHERE meter_id = ANY($1) AND t_ms BETWEEN $2 AND $3",
            &[&meters, &lo, &hi],
        )
        .await?;
    let mut out: Existing = HashMap::new();
    for r in rows {
        out.entry((r.get(1), r.get(2)))
            .or_default()
            .push((r.get(0), r.get(3)));
    }
    Ok(out)
}

fn find_row(existing: &Existing, g: &Group<'_>, window_ms: i64) -> Option<i64> {
    existing
        .get(&(g.first.meter_id.clone(), g.first.access_number))?
        .iter()
        .find(|(_, t)| (t - g.first.t_ms).abs() <= window_ms)
        .map(|(id, _)| *id)
}

async fn merge_receivers(
    tx: &Transaction<'_>,
    merges: &[(i64, String)],
) -> Result<(), tokio_postgres::Error> {
    if merges.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = merges.iter().map(|m| m.0).collect();
    let rcv: Vec<&str> = merges.iter().map(|m| m.1.as_str()).collect();
    // A gateway already listed keeps its first RSSI: the stored row is what was published.
    tx.execute(
        "UPDATE readings r SET receivers = u.rc::jsonb || r.receivers \
         FROM unnest($1::bigint[], $2::text[]) AS u(id, rc) WHERE r.id = u.id",
        &[&ids, &rcv],
    )
    .await
    .map(|_| ())
}

async fn insert_rows(
    tx: &Transaction<'_>,
    fresh: &[&Group<'_>],
) -> Result<(), tokio_postgres::Error> {
    if fresh.is_empty() {
        return Ok(());
    }
    let col =
        |f: fn(&PgReading) -> &str| -> Vec<&str> { fresh.iter().map(|g| f(g.first)).collect() };
    let meters = col(|r| &r.meter_id);
    let acc: Vec<i32> = fresh.iter().map(|g| g.first.access_number).collect();
    let t: Vec<i64> = fresh.iter().map(|g| g.first.t_ms).collect();
    let received = col(|r| &r.received_at);
    let days = col(|r| &r.day);
    let receivers: Vec<String> = fresh.iter().map(|g| g.receivers_json()).collect();
    let readings = col(|r| &r.reading);
    let registers = col(|r| &r.registers);
    tx.execute(
        "INSERT INTO readings (meter_id, access_number, t_ms, received_at, day, receivers, reading, registers) \
         SELECT m, a, t, ra, d, rc::jsonb, rd, rg FROM unnest($1::text[], $2::int[], $3::bigint[], \
         $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS u(m, a, t, ra, d, rc, rd, rg)",
        &[&meters, &acc, &t, &received, &days, &receivers, &readings, &registers],
    )
    .await
    .map(|_| ())
}

/// One row per (meter, day) of the new telegrams: the latest registers and the count.
async fn upsert_daily(
    tx: &Transaction<'_>,
    fresh: &[&Group<'_>],
) -> Result<(), tokio_postgres::Error> {
    let mut days: BTreeMap<(&str, &str), (&PgReading, i32)> = BTreeMap::new();
    for g in fresh {
        let r = g.first;
        let e = days.entry((&r.meter_id, &r.day)).or_insert((r, 0));
        e.1 += 1;
        if r.t_ms >= e.0.t_ms {
            e.0 = r;
        }
    }
    if days.is_empty() {
        return Ok(());
    }
    let rows: Vec<&(&PgReading, i32)> = days.values().collect();
    let meters: Vec<&str> = rows.iter().map(|(r, _)| r.meter_id.as_str()).collect();
    let day: Vec<&str> = rows.iter().map(|(r, _)| r.day.as_str()).collect();
    let t: Vec<i64> = rows.iter().map(|(r, _)| r.t_ms).collect();
    let received: Vec<&str> = rows.iter().map(|(r, _)| r.received_at.as_str()).collect();
    let regs: Vec<&str> = rows.iter().map(|(r, _)| r.registers.as_str()).collect();
    let counts: Vec<i32> = rows.iter().map(|(_, n)| *n).collect();
    tx.execute(
        "INSERT INTO daily AS d (meter_id, day, t_ms, received_at, registers, readings) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::int[]) \
         ON CONFLICT (meter_id, day) DO UPDATE SET \
           registers = CASE WHEN EXCLUDED.t_ms >= d.t_ms THEN EXCLUDED.registers ELSE d.registers END, \
           received_at = CASE WHEN EXCLUDED.t_ms >= d.t_ms THEN EXCLUDED.received_at ELSE d.received_at END, \
           t_ms = GREATEST(d.t_ms, EXCLUDED.t_ms), \
           readings = d.readings + EXCLUDED.readings",
        &[&meters, &day, &t, &received, &regs, &counts],
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(meter: &str, acc: i32, t_ms: i64, gw: &str, rssi: Option<f32>) -> PgReading {
        PgReading {
            meter_id: meter.into(),
            access_number: acc,
            t_ms,
            received_at: String::new(),
            day: "2026-12-01".into(),
            gateway: gw.into(),
            rssi_dbm: rssi,
            reading: "{}".into(),
            registers: "{}".into(),
        }
    }

    #[test]
    fn copies_within_the_window_merge_and_others_do_not() {
        let batch = [
            r("1", 5, 1_000, "a", Some(-80.0)),
            r("1", 5, 1_400, "b", Some(-60.0)),
            r("1", 5, 1_200, "a", Some(-70.0)),
            // The same access number after the window: another telegram (wrap-around).
            r("1", 5, 60_000, "c", None),
            r("2", 5, 1_000, "a", None),
        ];
        let groups = group_batch(&batch, 30_000);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].receivers.len(), 2);
        assert_eq!(groups[0].receivers["a"], Some(-70.0));
        let ranked = ranked_receivers(groups[0].receivers_json());
        assert_eq!(
            ranked,
            vec![("b".to_owned(), Some(-60.0)), ("a".to_owned(), Some(-70.0))]
        );
    }

    #[test]
    fn receivers_without_rssi_rank_last() {
        let ranked = ranked_receivers(r#"{"x":null,"y":-90.5,"z":-40}"#.to_owned());
        let names: Vec<&str> = ranked.iter().map(|(g, _)| g.as_str()).collect();
        assert_eq!(names, ["z", "y", "x"]);
    }

    #[test]
    fn password_is_redacted() {
        assert_eq!(
            redact("postgres://wm:s3cret@db:5432/wmbus"),
            "postgres://wm:***@db:5432/wmbus"
        );
        assert_eq!(redact("postgres://db/wmbus"), "postgres://db/wmbus");
        assert_eq!(redact("postgres://wm@db/wmbus"), "postgres://wm@db/wmbus");
    }

    #[test]
    fn consumption_uses_first_and_last_day_of_counter_registers() {
        let days = vec![
            ("2026-11-01".to_owned(), r#"{"volume":10.0}"#.to_owned()),
            ("2026-11-15".to_owned(), r#"{"volume":12.5}"#.to_owned()),
            ("2026-11-30".to_owned(), r#"{"volume":14.0}"#.to_owned()),
        ];
        let rows = consumption_of("7", &days);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].consumption, 4.0);
        assert_eq!(rows[0].first_day, "2026-11-01");
        assert_eq!(rows[0].last_day, "2026-11-30");
    }
}
