//! Consumption alarms through the daemon: a replay with the recorded clock (telegrams built
//! with the project's emitters) and a real mosquitto. `burst` from the flow and from the
//! meter's own flag (a driver loaded from `drivers_dir` names it), `backflow`, `stopped`
//! and `overuse`: each raised once and cleared once on the alarm topic, at the readings
//! computed here, and listed in the health summary while active.
//!
//! Readings come every 6 hours; while an alarm is active a filler meter is heard every
//! recorded minute, so the alarm stays active for seconds of wall time and the health
//! summary (published once a second) shows it.
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

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value as Json;
use support::billing::{MeterEntry, Rig, GW};
use support::subscriber::Subscriber;
use support::telegrams::{int32, recorded_line, telegram, utc, Sender};
use wmbusd::wire::apl::{DataField, RecordRepr, Vib};

const LIMIT: Duration = Duration::from_secs(120);

const FLOW: u32 = 60_000_001;
const FLAG: u32 = 60_000_002;
const BACKFLOW: u32 = 60_000_003;
const STOPPED: u32 = 60_000_004;
const OVERUSE: u32 = 60_000_005;
const FILLER: u32 = 60_000_009;

/// The test driver: meter version 0x42 of manufacturer TST reports a burst in its error
/// flags (02 FD 17; any bit set).
const DRIVER: &str = r#"name = "tstburst"
description = "test water meter with a burst flag"
manufacturer = "TST"
versions = [0x42]
device_types = [0x07]

[fields.total_m3]
quantity = "volume"

[fields.burst_flags]
quantity = "error_flags"
"#;

/// Litres used in the clock hour starting at `h` (Unix seconds) by meter `id`: 20 l in
/// the hours 06–21 UTC; the stopped meter nothing from 10 to 14 November 06:00; the
/// overusing meter 80 l an hour on 12 November.
fn used_in_hour(id: u32, h: i64) -> i64 {
    let hod = h.rem_euclid(86_400) / 3600;
    if !(6..=21).contains(&hod) {
        return 0;
    }
    match id {
        STOPPED if (utc(2026, 11, 10, 0, 0)..utc(2026, 11, 14, 6, 0)).contains(&h) => 0,
        OVERUSE if (utc(2026, 11, 12, 0, 0)..utc(2026, 11, 13, 0, 0)).contains(&h) => 80,
        _ => 20,
    }
}

const ORIGIN: i64 = 1_793_491_200; // 2026-11-01T00:00Z

fn litres_at(id: u32, t: i64) -> i64 {
    let this_hour = t - t.rem_euclid(3600);
    (0..)
        .map(|k| ORIGIN + k * 3600)
        .take_while(|h| *h < this_hour)
        .map(|h| used_in_hour(id, h))
        .sum::<i64>()
        + 100_000
}

/// The windows (first and last reading) in which each alarm holds.
fn windows() -> [(u32, &'static str, i64, i64); 5] {
    [
        (
            FLOW,
            "burst",
            utc(2026, 11, 5, 12, 7),
            utc(2026, 11, 5, 18, 7),
        ),
        (
            FLAG,
            "burst",
            utc(2026, 11, 6, 12, 7),
            utc(2026, 11, 6, 12, 7),
        ),
        (
            BACKFLOW,
            "backflow",
            utc(2026, 11, 7, 12, 7),
            utc(2026, 11, 7, 12, 7),
        ),
        // Not moved since 10 November 00:07; stopped_days = 2; moves again at 12:07 on
        // the 14th.
        (
            STOPPED,
            "stopped",
            utc(2026, 11, 12, 0, 7),
            utc(2026, 11, 14, 6, 7),
        ),
        // 12 November judged at the first reading of the 13th (1040 l against a median
        // of 320 l), the 13th (560 l) at the first of the 14th.
        (
            OVERUSE,
            "overuse",
            utc(2026, 11, 13, 0, 7),
            utc(2026, 11, 13, 18, 7),
        ),
    ]
}

fn holds(id: u32, alarm: &str, t: i64) -> bool {
    windows()
        .iter()
        .any(|&(m, a, from, to)| m == id && a == alarm && (from..=to).contains(&t))
}

fn records(id: u32, t: i64) -> (Sender, Vec<RecordRepr>) {
    let mut records = vec![int32(Vib::primary(0x13), litres_at(id, t))];
    let mut sender = Sender::tst(id, 0x07);
    match id {
        FLOW => {
            let lph = if holds(FLOW, "burst", t) { 5_000 } else { 20 };
            records.push(int32(Vib::primary(0x3B), lph));
        }
        FLAG => {
            sender.version = 0x42;
            let flags = if holds(FLAG, "burst", t) { 0x0008 } else { 0 };
            records.push(RecordRepr::integer(DataField::Integer(2), Vib::fd(0x17), flags).unwrap());
        }
        BACKFLOW => {
            let backward = 1_000 + if t >= windows()[2].2 { 3 } else { 0 };
            records.push(int32(Vib::primary(0x13).with_vife(0x3C), backward));
        }
        _ => {}
    }
    (sender, records)
}

fn replay() -> String {
    let mut lines: Vec<(i64, String)> = Vec::new();
    let mut push = |id: u32, t: i64, access: u8| {
        let (sender, recs) = records(id, t);
        lines.push((t, recorded_line(t, &telegram(&sender, access, 0, &recs))));
    };
    let mut t = ORIGIN + 7 * 60;
    while t < utc(2026, 11, 16, 0, 0) {
        for id in [FLOW, FLAG, BACKFLOW, STOPPED, OVERUSE, FILLER] {
            push(id, t, (t / 3600) as u8);
        }
        t += 6 * 3600;
    }
    for &(_, _, from, _) in &windows() {
        for minute in 1..360 {
            push(FILLER, from + minute * 60, minute as u8);
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

const CONSUMPTION: [&str; 5] = ["leak", "burst", "backflow", "stopped", "overuse"];

fn rfc(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_backflow_stopped_overuse_raised_and_cleared_once() {
    let rig = Rig::new();
    let drivers = rig.path("drivers");
    std::fs::create_dir_all(&drivers).unwrap();
    std::fs::write(drivers.join("tstburst.toml"), DRIVER).unwrap();
    let path = rig.path("alarms.replay");
    std::fs::write(&path, replay()).unwrap();
    let names = ["Flow", "Flag", "Backflow", "Stopped", "Overuse", "Filler"];
    let ids = [FLOW, FLAG, BACKFLOW, STOPPED, OVERUSE, FILLER];
    let meters: Vec<MeterEntry> = ids
        .iter()
        .zip(names)
        .map(|(&id, name)| MeterEntry {
            id,
            name,
            medium: "water",
            extra: if id == STOPPED {
                "alarms = { stopped_days = 2.0 }"
            } else {
                ""
            },
        })
        .collect();
    let config = rig.config_with(
        &path,
        6,
        "period = \"monthly\"\ntimezone = \"UTC\"",
        &format!("drivers_dir = \"{}\"", drivers.display()),
        &meters,
    );
    let prefix = format!("wmbus/{GW}");
    let (alarm_topic, health_topic) = (format!("{prefix}/alarm"), format!("{prefix}/health"));
    let sub = Subscriber::start(rig.broker.port, "alarm-sub", &[&alarm_topic, &health_topic]).await;
    let mut d = rig.start(&config);
    d.wait_log(&["replay finished"], LIMIT).await;
    // The health summary after the replay: nothing active any more.
    let finished = sub.messages().len();
    sub.wait_until("a health summary after the replay", LIMIT, |m| {
        m.iter().skip(finished).any(|m| m.topic == health_topic)
    })
    .await;
    assert!(d.terminate().await.success(), "{}", d.log());

    let changes: Vec<(String, String, String, String)> = sub
        .on(&alarm_topic)
        .iter()
        .map(|m| serde_json::from_slice::<Json>(&m.payload).unwrap())
        .filter(|a| CONSUMPTION.contains(&a["alarm"].as_str().unwrap_or("")))
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
            (s("meter"), s("alarm"), s("state"), s("since"))
        })
        .collect();
    let mut want = Vec::new();
    for (id, alarm, from, _) in windows() {
        for state in ["raised", "cleared"] {
            want.push((
                format!("{id:08}"),
                alarm.to_owned(),
                state.to_owned(),
                rfc(from),
            ));
        }
    }
    let mut got = changes.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "alarm messages in order: {changes:?}");

    // In the health summary while active, gone from the last one.
    let summaries: Vec<BTreeSet<(String, String)>> = sub
        .on(&health_topic)
        .iter()
        .map(|m| {
            let doc: Json = serde_json::from_slice(&m.payload).unwrap();
            doc["alarms"]["consumption"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["meter"].as_str().unwrap().to_owned(),
                        a["alarm"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .collect();
    for (id, alarm, _, _) in windows() {
        let key = (format!("{id:08}"), alarm.to_owned());
        assert!(
            summaries.iter().any(|s| s.contains(&key)),
            "{key:?} never in the health summary"
        );
    }
    assert_eq!(summaries.last(), Some(&BTreeSet::new()));
}
