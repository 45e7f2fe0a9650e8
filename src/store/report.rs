//! Reports from the store: a period's close values, consumption and function check per
//! meter and register, and the daily snapshots. Closed periods are read back as they were
//! stored at the close; periods not stored are computed from the readings.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection, OptionalExtension};

use crate::billing::close::{self, Candidates, CheckInput, Close, DueCandidate, Sample};
use crate::billing::report::{Report, Row};
use crate::billing::settings::BillingSection;
use crate::billing::{Calendar, Medium, Period, Register, Source, Verdict};
use crate::config::MeterConfig;

use super::StoreError;

/// Version of the published period document.
pub const REPORT_SCHEMA: u32 = 1;

/// Who a meter is, for reports.
#[derive(Debug, Clone)]
pub struct MeterInfo {
    pub id: String,
    pub name: String,
    pub label: String,
    pub medium: Medium,
}

/// What a report needs besides the store.
pub struct Context<'a> {
    pub calendar: &'a Calendar,
    pub billing: &'a BillingSection,
    pub meters: &'a [MeterConfig],
}

fn sql(conn: &Connection) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sql {
        path: conn.path().unwrap_or("").into(),
        source,
    }
}

fn rfc(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The configured meters and those the store knows, by id; configuration wins.
pub fn meter_directory(
    conn: &Connection,
    configured: &[MeterConfig],
) -> rusqlite::Result<Vec<MeterInfo>> {
    let mut out: BTreeMap<String, MeterInfo> = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT meter_id, name, label, medium, device_type FROM meters")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for row in rows {
        let (id, name, label, medium, device_type) = row?;
        let medium = medium
            .as_deref()
            .and_then(Medium::parse)
            .unwrap_or_else(|| Medium::from_device_type(device_type.as_deref().unwrap_or("")));
        out.insert(
            id.clone(),
            MeterInfo {
                id,
                name: name.unwrap_or_default(),
                label: label.unwrap_or_default(),
                medium,
            },
        );
    }
    for m in configured {
        let entry = out.entry(m.id.clone()).or_insert_with(|| MeterInfo {
            id: m.id.clone(),
            name: String::new(),
            label: String::new(),
            medium: Medium::Other,
        });
        if let Some(n) = &m.name {
            entry.name = n.clone();
        }
        if let Some(l) = &m.label {
            entry.label = l.clone();
        }
        if let Some(md) = m.medium.as_deref().and_then(Medium::parse) {
            entry.medium = md;
        }
    }
    Ok(out.into_values().collect())
}

/// A register value out of a `registers` JSON column.
fn reg_value(text: &str, reg: Register) -> Option<f64> {
    super::writer::parse_registers(text)
        .into_iter()
        .find(|(r, _)| *r == reg)
        .map(|(_, v)| v)
}

fn sample(
    conn: &Connection,
    sql_text: &str,
    meter: &str,
    a: i64,
    b: i64,
    reg: Register,
) -> rusqlite::Result<Option<Sample>> {
    let path = format!("$.{}", reg.as_str());
    conn.query_row(sql_text, params![meter, a, b, path], |r| {
        Ok(Sample {
            t: r.get(0)?,
            value: r.get(1)?,
        })
    })
    .optional()
}

/// The candidates around deadline `d` and the decided close.
pub fn compute_close(
    conn: &Connection,
    ctx: &Context<'_>,
    meter: &str,
    reg: Register,
    d: i64,
) -> Result<Close, StoreError> {
    let e = sql(conn);
    let gap = (ctx.billing.max_gap_hours * 3600.0) as i64;
    let date = ctx.calendar.local_date(
        jiff::Timestamp::from_second(d)
            .map_err(|err| crate::billing::PeriodError::Range(err.to_string()))?,
    );
    let day_before = date
        .yesterday()
        .map_err(|err| crate::billing::PeriodError::Range(err.to_string()))?;
    let mut c = Candidates {
        due_dates: [date.to_string(), day_before.to_string()],
        ..Candidates::default()
    };
    let mut stmt = conn
        .prepare_cached("SELECT date, value, heard_t FROM due_values WHERE meter_id = ?1 AND register = ?2 AND date IN (?3, ?4)")
        .map_err(&e)?;
    let due = stmt
        .query_map(
            params![meter, reg.as_str(), c.due_dates[0], c.due_dates[1]],
            |r| {
                Ok(DueCandidate {
                    date: r.get(0)?,
                    value: r.get(1)?,
                    heard_t: r.get(2)?,
                })
            },
        )
        .map_err(&e)?;
    c.due = due.collect::<Result<_, _>>().map_err(&e)?;
    c.before = sample(conn, "SELECT t, json_extract(registers, ?4) FROM readings WHERE meter_id = ?1 AND t < ?2 AND t >= ?3 AND json_extract(registers, ?4) IS NOT NULL ORDER BY t DESC LIMIT 1", meter, d, d - gap, reg).map_err(&e)?;
    if c.before.is_none() {
        // Readings older than keep_readings_days are gone; the daily snapshots remain.
        c.before = sample(conn, "SELECT t, json_extract(registers, ?4) FROM daily WHERE meter_id = ?1 AND t < ?2 AND t >= ?3 AND json_extract(registers, ?4) IS NOT NULL ORDER BY t DESC LIMIT 1", meter, d, d - gap, reg).map_err(&e)?;
    }
    c.after = sample(conn, "SELECT t, json_extract(registers, ?4) FROM readings WHERE meter_id = ?1 AND t >= ?2 AND t <= ?3 AND json_extract(registers, ?4) IS NOT NULL ORDER BY t ASC LIMIT 1", meter, d, d + gap, reg).map_err(&e)?;
    Ok(close::decide(&c, d, gap))
}

/// A close stored at an earlier period close.
fn stored_close(
    conn: &Connection,
    period: &str,
    meter: &str,
    reg: Register,
) -> rusqlite::Result<Option<(Close, Option<f64>)>> {
    conn.query_row(
        "SELECT value, source, from_times, consumption FROM closes WHERE period = ?1 AND meter_id = ?2 AND register = ?3",
        params![period, meter, reg.as_str()],
        |r| {
            let from: String = r.get(2)?;
            let from: Vec<String> = serde_json::from_str(&from).unwrap_or_default();
            Ok((
                Close {
                    value: r.get(0)?,
                    source: Source::parse(&r.get::<_, String>(1)?),
                    from: from
                        .iter()
                        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
                        .map(|t| t.as_second())
                        .collect(),
                },
                r.get(3)?,
            ))
        },
    )
    .optional()
}

fn stored_check(
    conn: &Connection,
    period: &str,
    meter: &str,
) -> rusqlite::Result<Option<(Verdict, Vec<String>)>> {
    conn.query_row(
        "SELECT result, reasons FROM checks WHERE period = ?1 AND meter_id = ?2",
        params![period, meter],
        |r| {
            let result: String = r.get(0)?;
            let reasons: String = r.get(1)?;
            let verdict = match result.as_str() {
                "ok" => Verdict::Ok,
                "warn" => Verdict::Warn,
                "open" => Verdict::Open,
                _ => Verdict::Fail,
            };
            Ok((
                verdict,
                reasons
                    .split(';')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ))
        },
    )
    .optional()
}

/// Start or end close of a register at `deadline` closing `period`.
fn close_at(
    conn: &Connection,
    ctx: &Context<'_>,
    period: &str,
    meter: &str,
    reg: Register,
    deadline: i64,
) -> Result<Close, StoreError> {
    match stored_close(conn, period, meter, reg).map_err(sql(conn))? {
        Some((c, _)) => Ok(c),
        None => compute_close(conn, ctx, meter, reg, deadline),
    }
}

/// Facts of the daily snapshots of a meter in [from, to): days heard, flags, decreases,
/// largest clock drift and highest power.
struct DayFacts {
    days: u32,
    flags: BTreeSet<String>,
    decreased: bool,
    max_drift_s: Option<i64>,
    max_power: Option<(f64, i64)>,
    latest: Option<(i64, String)>,
}

fn day_facts(conn: &Connection, meter: &str, from: &str, to: &str) -> rusqlite::Result<DayFacts> {
    let mut f = DayFacts {
        days: 0,
        flags: BTreeSet::new(),
        decreased: false,
        max_drift_s: None,
        max_power: None,
        latest: None,
    };
    let mut stmt = conn.prepare_cached(
        "SELECT flags, decreases, max_drift_s, max_power, t, registers FROM daily WHERE meter_id = ?1 AND day >= ?2 AND day < ?3 ORDER BY day",
    )?;
    let rows = stmt.query_map(params![meter, from, to], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<f64>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
        ))
    })?;
    for row in rows {
        let (flags, decreases, drift, power, t, registers) = row?;
        f.days += 1;
        f.flags.extend(
            flags
                .split(',')
                .filter(|s| !s.is_empty() && *s != "busy")
                .map(str::to_owned),
        );
        f.decreased |= !decreases.is_empty();
        if let Some(d) = drift {
            f.max_drift_s = Some(f.max_drift_s.map_or(d, |m| m.max(d)));
        }
        if let Some(p) = power {
            if f.max_power.map_or(true, |(m, _)| p > m) {
                f.max_power = Some((p, t));
            }
        }
        f.latest = Some((t, registers));
    }
    Ok(f)
}

fn alarms_in(conn: &Connection, meter: &str, from: i64, to: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT alarm FROM alarms WHERE meter_id = ?1 AND since_t < ?3 AND (cleared_t IS NULL OR cleared_t >= ?2)",
    )?;
    let rows = stmt.query_map(params![meter, from, to], |r| r.get::<_, String>(0))?;
    rows.map(|a| a.map(|a| format!("alarm:{a}"))).collect()
}

fn history(
    conn: &Connection,
    meter: &str,
    reg: Register,
    before: &str,
) -> rusqlite::Result<Vec<f64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT consumption FROM closes WHERE meter_id = ?1 AND register = ?2 AND period < ?3 AND consumption IS NOT NULL ORDER BY period DESC LIMIT 6",
    )?;
    let rows = stmt.query_map(params![meter, reg.as_str(), before], |r| r.get::<_, f64>(0))?;
    rows.collect()
}

/// The report of `period` as of `now` (Unix seconds).
pub fn period_report(
    conn: &Connection,
    ctx: &Context<'_>,
    period: Period,
    now: i64,
) -> Result<Report, StoreError> {
    let e = sql(conn);
    let cal = ctx.calendar;
    let prev = cal.previous(period)?.to_string();
    let name = period.to_string();
    let (start, end) = (cal.start(period)?, cal.end(period)?);
    let (s, d) = (start.as_second(), end.as_second());
    let open = now < d;
    let (day_from, day_to) = cal.days(period)?;
    let mut rows = Vec::new();
    for m in meter_directory(conn, ctx.meters).map_err(&e)? {
        let regs = m.medium.registers();
        if regs.is_empty() {
            continue;
        }
        let facts =
            day_facts(conn, &m.id, &day_from.to_string(), &day_to.to_string()).map_err(&e)?;
        let mut meter_rows = Vec::new();
        let mut input = CheckInput {
            days_in_period: u32::try_from(
                day_from.until(day_to).map(|s| s.get_days()).unwrap_or(0),
            )
            .unwrap_or(0),
            days_heard: facts.days,
            min_coverage: ctx.billing.min_coverage,
            max_factor: ctx.billing.max_factor,
            ..CheckInput::default()
        };
        if open {
            // Days so far, today included.
            let today = cal.local_date(jiff::Timestamp::from_second(now).unwrap_or(start));
            input.days_in_period =
                u32::try_from(day_from.until(today).map(|s| s.get_days() + 1).unwrap_or(0))
                    .unwrap_or(0);
        }
        for &reg in regs {
            let row = register_row(
                conn,
                ctx,
                &m,
                reg,
                &facts,
                (&prev, &name),
                (s, d),
                open,
                &mut input,
            )?;
            meter_rows.push(row);
        }
        input
            .events
            .extend(facts.flags.iter().map(|f| format!("error_flag:{f}")));
        if facts.decreased {
            input.events.push("counter_decreased".into());
        }
        let drift_limit = (ctx.billing.clock_drift_minutes * 60.0) as i64;
        if facts.max_drift_s.is_some_and(|x| x > drift_limit) {
            input.events.push("clock_drift".into());
        }
        input
            .events
            .extend(alarms_in(conn, &m.id, s, d).map_err(&e)?);
        let (mut verdict, reasons) = match stored_check(conn, &name, &m.id).map_err(&e)? {
            Some(stored) => stored,
            None => close::check(&input),
        };
        if open {
            verdict = Verdict::Open;
        }
        for mut r in meter_rows {
            r.check = verdict;
            r.reasons = reasons.clone();
            rows.push(r);
        }
    }
    Ok(Report {
        schema: REPORT_SCHEMA,
        period: name,
        start: start.to_string(),
        end: end.to_string(),
        rows,
    })
}

#[allow(clippy::too_many_arguments)]
fn register_row(
    conn: &Connection,
    ctx: &Context<'_>,
    m: &MeterInfo,
    reg: Register,
    facts: &DayFacts,
    (prev, name): (&str, &str),
    (s, d): (i64, i64),
    open: bool,
    input: &mut CheckInput,
) -> Result<Row, StoreError> {
    let mut row = Row {
        meter_id: m.id.clone(),
        name: m.name.clone(),
        label: m.label.clone(),
        medium: m.medium.as_str().to_owned(),
        register: reg.as_str().to_owned(),
        unit: reg.unit().to_owned(),
        start_value: None,
        start_source: Source::Missing,
        end_value: None,
        end_source: Source::Missing,
        consumption: None,
        check: Verdict::Ok,
        reasons: Vec::new(),
        end_from: Vec::new(),
    };
    if !reg.is_counter() {
        row.start_source = Source::PeriodMax;
        row.end_source = Source::PeriodMax;
        if let Some((p, t)) = facts.max_power {
            row.end_value = Some(p);
            row.end_from = vec![rfc(t)];
        }
        return Ok(row);
    }
    let start = close_at(conn, ctx, prev, &m.id, reg, s)?;
    row.start_value = start.value;
    row.start_source = start.source;
    let end = if open {
        match facts
            .latest
            .as_ref()
            .and_then(|(t, regs)| Some((*t, reg_value(regs, reg)?)))
        {
            Some((t, v)) => Close {
                value: Some(v),
                source: Source::Latest,
                from: vec![t],
            },
            None => Close::missing(),
        }
    } else {
        close_at(conn, ctx, name, &m.id, reg, d)?
    };
    row.end_value = end.value;
    row.end_source = end.source;
    row.end_from = end.from.iter().map(|t| rfc(*t)).collect();
    if end.value.is_none() {
        input.no_close = true;
    }
    if let (Some(a), Some(b)) = (start.value, end.value) {
        let c = close::round(b - a);
        row.consumption = Some(c);
        input.consumption.push(c);
        input
            .history
            .push(history(conn, &m.id, reg, name).map_err(sql(conn))?);
    }
    Ok(row)
}

/// Keeps a closed period's values and checks (first close wins: a restart or a second
/// close never changes them).
pub fn store_closes(conn: &Connection, report: &Report, closed_at: &str) -> rusqlite::Result<()> {
    for r in &report.rows {
        conn.execute(
            "INSERT OR IGNORE INTO closes (period, meter_id, register, unit, value, source, from_times, consumption, closed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                report.period, r.meter_id, r.register, r.unit, r.end_value, r.end_source.as_str(),
                serde_json::to_string(&r.end_from).unwrap_or_else(|_| "[]".into()), r.consumption, closed_at
            ],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO checks (period, meter_id, result, reasons, closed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![report.period, r.meter_id, r.check.as_str(), r.reasons.join(";"), closed_at],
        )?;
    }
    Ok(())
}

/// Periods already closed.
pub fn closed_periods(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT period FROM checks")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// The daily snapshots between two local dates (inclusive) as CSV:
/// `meter_id,name,medium,day,register,unit,value,time,readings`.
pub fn daily_csv(
    conn: &Connection,
    meters: &[MeterConfig],
    from: &str,
    to: &str,
    delimiter: char,
) -> Result<String, StoreError> {
    let e = sql(conn);
    let d = delimiter.to_string();
    let mut out = [
        "meter_id", "name", "medium", "day", "register", "unit", "value", "time", "readings",
    ]
    .join(&d);
    out.push('\n');
    let directory = meter_directory(conn, meters).map_err(&e)?;
    let mut stmt = conn
        .prepare("SELECT day, t, registers, max_power, readings FROM daily WHERE meter_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day")
        .map_err(&e)?;
    for m in directory {
        let rows = stmt
            .query_map(params![m.id, from, to], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(&e)?;
        for row in rows {
            let (day, t, registers, max_power, n) = row.map_err(&e)?;
            for &reg in m.medium.registers() {
                let value = if reg.is_counter() {
                    reg_value(&registers, reg)
                } else {
                    max_power
                };
                let Some(v) = value else { continue };
                let fields = [
                    m.id.clone(),
                    m.name.clone(),
                    m.medium.as_str().into(),
                    day.clone(),
                    reg.as_str().into(),
                    reg.unit().into(),
                    close::format_value(v),
                    rfc(t),
                    n.to_string(),
                ];
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        if f.contains([delimiter, '"', '\n']) {
                            format!("\"{}\"", f.replace('"', "\"\""))
                        } else {
                            f.clone()
                        }
                    })
                    .collect();
                out.push_str(&fields.join(&d));
                out.push('\n');
            }
        }
    }
    Ok(out)
}
