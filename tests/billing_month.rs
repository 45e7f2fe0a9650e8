//! Acceptance of the reading store and billing: a generated month of hourly telegrams
//! (built with the project's emitters, recorded clock) replayed through the real daemon
//! with a real mosquitto, then `wmbusd report` checked against values computed here,
//! independently of the billing code. A kill -9 in the middle of a replay must leave a
//! sound store that holds every reading the broker received, and unchanged closes.
#![cfg(feature = "daemon")]
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use support::billing::{num, parse_csv, query, report, Rig, GW};
use support::subscriber::Subscriber;
use support::telegrams::{
    civil, clock_record, date_record, int32, recorded_line, telegram, utc, Sender,
};
use wmbusd::wire::apl::Vib;

const LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Telegrams

struct Frame {
    id: u32,
    access: u8,
    litres: i64,
    /// Meter clock (local civil time).
    clock: (i64, i64, i64, i64, i64),
    /// Due-date value: (date y, m, d, litres) as storage 1.
    due: Option<(i64, i64, i64, i64)>,
}

fn frame(f: &Frame) -> Vec<u8> {
    let mut records = vec![int32(Vib::primary(0x13), f.litres), clock_record(f.clock)];
    if let Some((dy, dm, dd, litres)) = f.due {
        records.push(int32(Vib::primary(0x13), litres).storage(1));
        records.push(date_record(1, (dy, dm, dd)));
    }
    telegram(&Sender::tst(f.id, 0x07), f.access, 0, &records)
}

// ---------------------------------------------------------------------------------------
// The month

/// How a generated meter behaves.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Normal,
    SilentLast10Days,
    CounterDown,
    Leak,
    DueDate,
    GapAcrossDeadline,
}

const MONTH: [(u32, Kind); 6] = [
    (10_000_001, Kind::Normal),
    (10_000_002, Kind::SilentLast10Days),
    (10_000_003, Kind::CounterDown),
    (10_000_004, Kind::Leak),
    (10_000_005, Kind::DueDate),
    (10_000_006, Kind::GapAcrossDeadline),
];

/// Litres used during the clock hour starting at `hour_start` (UTC hour of day 6..=21:
/// 20 l; the leaking meter 5 l every hour).
fn used_in_hour(kind: Kind, hour_start: i64) -> i64 {
    if kind == Kind::Leak {
        return 5;
    }
    let hod = hour_start.rem_euclid(86_400) / 3600;
    if (6..=21).contains(&hod) {
        20
    } else {
        0
    }
}

/// The meter's counter at `t` (after the hours completed before t's hour).
fn litres_at(kind: Kind, origin: i64, t: i64) -> i64 {
    let mut v = 100_000;
    let mut h = origin;
    let this_hour = t - t.rem_euclid(3600);
    while h < this_hour {
        v += used_in_hour(kind, h);
        h += 3600;
    }
    if kind == Kind::CounterDown && t >= utc(2026, 11, 15, 12, 0) {
        v -= 1000;
    }
    v
}

/// Whether the meter sends in the hour of `t`.
fn heard(kind: Kind, t: i64) -> bool {
    match kind {
        Kind::SilentLast10Days => t < utc(2026, 11, 21, 0, 0),
        Kind::GapAcrossDeadline => !(utc(2026, 11, 30, 20, 0)..utc(2026, 12, 1, 5, 0)).contains(&t),
        _ => true,
    }
}

/// Due-date record of the due-date meter at `t`: the last deadline passed, the day before
/// it as the meter's date, the counter at that deadline less 3 l.
fn due_of(kind: Kind, origin: i64, t: i64) -> Option<(i64, i64, i64, i64)> {
    if kind != Kind::DueDate {
        return None;
    }
    let (deadline, date) = if t >= utc(2026, 12, 1, 0, 0) {
        (utc(2026, 12, 1, 0, 0), (2026, 11, 30))
    } else if t >= utc(2026, 11, 1, 0, 0) {
        (utc(2026, 11, 1, 0, 0), (2026, 10, 31))
    } else {
        (utc(2026, 10, 1, 0, 0), (2026, 9, 30))
    };
    Some((
        date.0,
        date.1,
        date.2,
        litres_at(kind, origin, deadline) - 3,
    ))
}

/// Replay lines (recorded time first) of all meters, in time order: hourly at minute 7.
fn month_lines(meters: &[(u32, Kind)], from: i64, to: i64, local: impl Fn(i64) -> i64) -> String {
    let mut out = String::new();
    let mut t = from + 7 * 60;
    let mut access = 0u8;
    while t < to {
        for &(id, kind) in meters {
            if !heard(kind, t) {
                continue;
            }
            access = access.wrapping_add(1);
            let f = Frame {
                id,
                access,
                litres: litres_at(kind, from, t),
                clock: civil(local(t)),
                due: due_of(kind, from, t),
            };
            out.push_str(&recorded_line(t, &frame(&f)));
        }
        t += 3600;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Expected values, computed here

#[derive(Debug, Clone, PartialEq)]
struct Expected {
    start: Option<f64>,
    start_source: &'static str,
    end: Option<f64>,
    end_source: &'static str,
    check: &'static str,
    reasons: &'static str,
}

/// The close at `deadline` from the hourly readings at minute 7 around it (both within
/// 48 h: the test's meters are only ever silent across a deadline for a few hours).
fn interpolated(kind: Kind, origin: i64, deadline: i64) -> f64 {
    let mut before = deadline - 3600 + 7 * 60;
    while !heard(kind, before) {
        before -= 3600;
        assert!(deadline - before < 48 * 3600);
    }
    let mut after = deadline + 7 * 60;
    while !heard(kind, after) {
        after += 3600;
        assert!(after - deadline < 48 * 3600);
    }
    let (vb, va) = (
        litres_at(kind, origin, before),
        litres_at(kind, origin, after),
    );
    let share = (deadline - before) as f64 / (after - before) as f64;
    (vb as f64 + (va - vb) as f64 * share) / 1000.0
}

fn expected_month(kind: Kind, origin: i64) -> Expected {
    let (nov, dec) = (utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0));
    let normal = Expected {
        start: Some(interpolated(kind, origin, nov)),
        start_source: "interpolated",
        end: (kind != Kind::SilentLast10Days).then(|| interpolated(kind, origin, dec)),
        end_source: "interpolated",
        check: "ok",
        reasons: "",
    };
    match kind {
        Kind::Normal | Kind::GapAcrossDeadline => normal,
        Kind::SilentLast10Days => Expected {
            end: None,
            end_source: "missing",
            check: "fail",
            reasons: "missing;no_close",
            ..normal
        },
        Kind::CounterDown => Expected {
            check: "fail",
            reasons: "counter_decreased",
            ..normal
        },
        Kind::Leak => Expected {
            check: "warn",
            reasons: "alarm:leak",
            ..normal
        },
        Kind::DueDate => Expected {
            start: Some((litres_at(kind, origin, nov) - 3) as f64 / 1000.0),
            start_source: "meter_due_date",
            end: Some((litres_at(kind, origin, dec) - 3) as f64 / 1000.0),
            end_source: "meter_due_date",
            ..normal
        },
    }
}

// ---------------------------------------------------------------------------------------
// Checking it

fn assert_close(id: &str, what: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 0.0006, "meter {id} {what}: {g} != {w}"),
        (g, w) => assert_eq!(g, w, "meter {id} {what}"),
    }
}

fn check_row(id: &str, row: &BTreeMap<String, String>, want: &Expected) {
    assert_eq!(
        (row["register"].as_str(), row["unit"].as_str()),
        ("volume", "m3"),
        "meter {id}"
    );
    assert_close(id, "start", num(&row["start_value"]), want.start);
    assert_close(id, "end", num(&row["end_value"]), want.end);
    let consumption = want.start.zip(want.end).map(|(a, b)| b - a);
    assert_close(id, "consumption", num(&row["consumption"]), consumption);
    assert_eq!(
        row["start_source"], want.start_source,
        "meter {id} start source"
    );
    assert_eq!(row["end_source"], want.end_source, "meter {id} end source");
    assert_eq!(row["check"], want.check, "meter {id} check");
    assert_eq!(row["reasons"], want.reasons, "meter {id} reasons");
}

fn month_meters() -> Vec<(u32, &'static str)> {
    MONTH.iter().map(|(id, k)| (*id, name_of(*k))).collect()
}

fn name_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Normal => "Flat 1",
        Kind::SilentLast10Days => "Flat 2",
        Kind::CounterDown => "Flat 3",
        Kind::Leak => "Flat 4",
        Kind::DueDate => "Flat 5",
        Kind::GapAcrossDeadline => "Flat 6",
    }
}

fn verify_month(rows: &BTreeMap<String, BTreeMap<String, String>>, origin: i64) {
    assert_eq!(rows.len(), MONTH.len(), "{rows:?}");
    for (id, kind) in MONTH {
        let id = format!("{id:08}");
        let row = rows.get(&id).unwrap_or_else(|| panic!("no row for {id}"));
        assert_eq!(row["name"], name_of(kind));
        assert_eq!(row["medium"], "water");
        check_row(&id, row, &expected_month(kind, origin));
    }
}

/// The README's worked example is this month's report, verbatim.
fn assert_readme_example(csv: &str) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, from) = readme
        .split_once("### Worked example: a replayed month")
        .expect("README has the worked example");
    let start = from
        .find(support::billing::REPORT_HEADER)
        .expect("example report");
    let block = &from[start..];
    let example = &block[..block.find("```").expect("end of the example")];
    assert_eq!(
        example, csv,
        "README's worked example differs from the report"
    );
}

/// Every period document validates against `schema/period.v1.schema.json`.
fn assert_periods_match_their_schema(messages: &[support::subscriber::Message]) {
    let text = std::fs::read_to_string("schema/period.v1.schema.json").unwrap();
    let schema: Json = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let docs: Vec<Json> = messages
        .iter()
        .filter(|m| !m.payload.is_empty())
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert!(docs.len() >= MONTH.len(), "{} period documents", docs.len());
    for doc in &docs {
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "period document: {errors:?}\n{doc}");
    }
    let mut broken = docs[0].clone();
    broken["rows"][0]["check"] = "fine".into();
    assert!(
        !validator.is_valid(&broken),
        "a wrong check verdict validates"
    );
}

const MONTHLY: &str = "period = \"monthly\"\ntimezone = \"UTC\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_month_gives_the_expected_report() {
    let rig = Rig::new();
    let (from, to) = (utc(2026, 10, 30, 0, 0), utc(2026, 12, 3, 6, 0));
    let replay = rig.path("month.replay");
    std::fs::write(&replay, month_lines(&MONTH, from, to, |t| t)).unwrap();
    let config = rig.config(&replay, 0, MONTHLY, &month_meters());
    let prefix = format!("wmbus/{GW}");
    let sub = Subscriber::start(
        rig.broker.port,
        "bill-sub",
        &[
            &format!("{prefix}/period/#"),
            &format!("{prefix}/alarm"),
            &format!("{prefix}/health"),
        ],
    )
    .await;
    let mut d = rig.start(&config);
    d.wait_log(&["replay finished"], LIMIT).await;
    d.wait_log(&["period 2026-11 closed"], LIMIT).await;
    sub.wait_until("the period documents", LIMIT, |m| {
        m.iter()
            .filter(|m| m.topic.starts_with(&format!("{prefix}/period/2026-11/")))
            .count()
            >= MONTH.len()
    })
    .await;
    let status = d.terminate().await;
    assert!(status.success(), "{}", d.log());

    verify_month(&report(&config, "2026-11", &[]), from);
    assert_readme_example(&support::billing::report_text(&config, "2026-11", &[]));

    // Published per meter, retained, with the same values.
    let doc = sub
        .last_on(&format!("{prefix}/period/2026-11/10000005"))
        .unwrap();
    assert!(doc.retain || !doc.payload.is_empty());
    let doc: Json = serde_json::from_slice(&doc.payload).unwrap();
    assert_periods_match_their_schema(&sub.on(&format!("{prefix}/period/")));
    assert_eq!(doc["rows"][0]["end_source"], "meter_due_date");
    assert_eq!(doc["period"], "2026-11");
    // The leak: raised once on the alarm topic, and listed in the health document.
    let leaks: Vec<Json> = sub
        .on(&format!("{prefix}/alarm"))
        .iter()
        .map(|m| serde_json::from_slice::<Json>(&m.payload).unwrap())
        .filter(|a| a["alarm"] == "leak")
        .collect();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(
        (leaks[0]["meter"].as_str(), leaks[0]["state"].as_str()),
        (Some("10000004"), Some("raised"))
    );
    sub.wait_until("the health document with the leak", LIMIT, |m| {
        m.iter()
            .rev()
            .find(|m| m.topic == format!("{prefix}/health"))
            .is_some_and(|m| {
                let doc: Json = serde_json::from_slice(&m.payload).unwrap();
                doc["alarms"]["consumption"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["alarm"] == "leak" && a["meter"] == "10000004")
            })
    })
    .await;

    // The export file and the admin-system delimiter.
    let exported =
        std::fs::read_to_string(rig.path("export").join(format!("{GW}-2026-11.csv"))).unwrap();
    verify_month(&parse_csv(&exported, ','), from);
    let out = std::process::Command::new(support::daemon::BIN)
        .args(["report", "--config"])
        .arg(&config)
        .args(["--period", "2026-11", "--delimiter", ";"])
        .output()
        .unwrap();
    verify_month(
        &parse_csv(&String::from_utf8(out.stdout).unwrap(), ';'),
        from,
    );

    // A period still open, and the daily snapshots.
    let open = report(&config, "2026-12", &[]);
    assert!(open.values().all(|r| r["check"] == "open"), "{open:?}");
    let out = std::process::Command::new(support::daemon::BIN)
        .args(["report", "--config"])
        .arg(&config)
        .args(["--daily", "--from", "2026-11-01", "--to", "2026-11-30"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let daily = String::from_utf8(out.stdout).unwrap();
    let normal_rows: Vec<&str> = daily
        .lines()
        .filter(|l| l.starts_with("10000001,"))
        .collect();
    assert_eq!(normal_rows.len(), 30);
    // The last reading of 15 November is at 23:07 (UTC).
    let nov15 = normal_rows
        .iter()
        .find(|l| l.contains(",2026-11-15,"))
        .unwrap();
    let want = litres_at(Kind::Normal, from, utc(2026, 11, 15, 23, 7)) as f64 / 1000.0;
    assert!(nov15.contains(&format!(",{want},")), "{nov15} lacks {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bimonthly_in_oslo_across_the_dst_change() {
    let rig = Rig::new();
    let meters = [(20_000_001, Kind::Normal)];
    let (from, to) = (utc(2026, 2, 26, 0, 0), utc(2026, 5, 3, 6, 0));
    // Oslo: +01:00 until 2026-03-29 01:00 UTC, +02:00 after.
    let oslo = |t: i64| {
        t + if t >= utc(2026, 3, 29, 1, 0) {
            7200
        } else {
            3600
        }
    };
    let replay = rig.path("bimonthly.replay");
    std::fs::write(&replay, month_lines(&meters, from, to, oslo)).unwrap();
    let config = rig.config(
        &replay,
        0,
        "period = \"bimonthly\"\ntimezone = \"Europe/Oslo\"",
        &[(20_000_001, "Oslo 1")],
    );
    let mut d = rig.start(&config);
    d.wait_log(&["period 2026-03 closed"], LIMIT).await;
    assert!(d.terminate().await.success());
    let rows = report(&config, "2026-03", &["--format", "csv"]);
    let row = &rows["20000001"];
    // Local midnight of 1 March is 2026-02-28T23:00Z, of 1 May 2026-04-30T22:00Z (summer time).
    let want = Expected {
        start: Some(interpolated(Kind::Normal, from, utc(2026, 2, 28, 23, 0))),
        start_source: "interpolated",
        end: Some(interpolated(Kind::Normal, from, utc(2026, 4, 30, 22, 0))),
        end_source: "interpolated",
        check: "ok",
        reasons: "",
    };
    check_row("20000001", row, &want);
    // The end falls between 21:07 and 22:07 UTC, when the meter used 20 l.
    let b = litres_at(Kind::Normal, from, utc(2026, 4, 30, 21, 7));
    assert!((want.end.unwrap() - (b as f64 + 20.0 * 53.0 / 60.0) / 1000.0).abs() < 1e-9);
    // The JSON report names the deadlines.
    let out = std::process::Command::new(support::daemon::BIN)
        .args(["report", "--config"])
        .arg(&config)
        .args(["--period", "2026-03", "--format", "json"])
        .output()
        .unwrap();
    let doc: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["start"], "2026-02-28T23:00:00Z");
    assert_eq!(doc["end"], "2026-04-30T22:00:00Z");
    assert!(matches!(
        std::process::Command::new(support::daemon::BIN)
            .args(["report", "--config"])
            .arg(&config)
            .args(["--period", "2026-04"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_replay_loses_nothing_acknowledged() {
    let rig = Rig::new();
    let (from, to) = (utc(2026, 10, 30, 0, 0), utc(2026, 12, 3, 6, 0));
    let replay = rig.path("month.replay");
    std::fs::write(&replay, month_lines(&MONTH, from, to, |t| t)).unwrap();
    let config = rig.config(&replay, 1, MONTHLY, &month_meters());
    let store = rig.path("readings.sqlite");
    let sub = Subscriber::start(
        rig.broker.port,
        "bill-kill",
        &[&format!("wmbus/{GW}/meter/#")],
    )
    .await;
    let mut d = rig.start(&config);
    // Past 3 November, when October closes; well before the end.
    d.wait_log(&["period 2026-10 closed"], LIMIT).await;
    sub.wait_until("readings to pass 2026-11-06", LIMIT, |m| {
        m.iter()
            .any(|m| String::from_utf8_lossy(&m.payload).contains("\"received_at\":\"2026-11-06"))
    })
    .await;
    d.kill9();

    let conn = rusqlite::Connection::open(&store).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    drop(conn);
    // Every reading the broker received is in the store (one slot per hourly reading).
    let stored: std::collections::HashSet<String> =
        query(&store, "SELECT meter_id, received_at FROM readings")
            .into_iter()
            .collect();
    // Readings only: `meter/<id>/health` documents share the wildcard.
    let published: Vec<_> = sub
        .messages()
        .into_iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .collect();
    assert!(published.len() > 100);
    for m in &published {
        let r: Json = serde_json::from_slice(&m.payload).unwrap();
        let key = format!(
            "{}|{}",
            r["meter"]["id"].as_str().unwrap(),
            r["received_at"].as_str().unwrap()
        );
        assert!(
            stored.contains(&key),
            "published reading {key} not in the store"
        );
    }
    let closes_before = query(
        &store,
        "SELECT * FROM closes ORDER BY period, meter_id, register",
    );
    assert!(!closes_before.is_empty());

    // Restart: the whole file again (its first part a second time), to the end.
    let mut d = rig.start(&config);
    d.wait_log(&["period 2026-11 closed"], LIMIT).await;
    assert!(d.terminate().await.success());
    let closes_after = query(
        &store,
        "SELECT * FROM closes WHERE period = '2026-10' ORDER BY period, meter_id, register",
    );
    assert_eq!(closes_before, closes_after, "closes of October changed");
    verify_month(&report(&config, "2026-11", &[]), from);
    let dup: Vec<String> = query(
        &store,
        "SELECT meter_id, t FROM readings GROUP BY meter_id, t HAVING COUNT(*) > 1",
    );
    assert!(dup.is_empty(), "readings stored twice: {dup:?}");
    let conn = rusqlite::Connection::open(&store).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}
