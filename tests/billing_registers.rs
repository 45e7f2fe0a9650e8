//! The billing register of every medium, through the daemon, the store and `wmbusd
//! report`: telegrams built with the project's emitters in the units meters send (Wh, MJ,
//! 0.1 GJ, kWh, HCA units, 10 Wh, W, 10 l), replayed with the recorded clock, and each
//! close value, consumption and the period's maximum power checked against values
//! converted and interpolated here.
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

use std::time::Duration;

use support::billing::{num, report_registers, MeterEntry, Rig};
use support::telegrams::{date_record, int32, recorded_line, telegram, utc, Sender};
use wmbusd::wire::apl::{Function, RecordRepr, Vib};

const LIMIT: Duration = Duration::from_secs(120);

/// How one test meter reports its billing register.
#[derive(Clone, Copy)]
struct Kind {
    id: u32,
    name: &'static str,
    /// Configured medium ("" = from the device type).
    medium: &'static str,
    device_type: u8,
    vib: fn() -> Vib,
    /// Report unit per raw unit of the record.
    to_report: f64,
    register: &'static str,
    unit: &'static str,
}

const KINDS: [Kind; 7] = [
    Kind {
        id: 50_000_001,
        name: "Heat Wh",
        medium: "heat",
        device_type: 0x04,
        vib: || Vib::primary(0x03), // Wh
        to_report: 0.001,
        register: "energy",
        unit: "kWh",
    },
    Kind {
        id: 50_000_002,
        name: "Heat MJ",
        medium: "heat",
        device_type: 0x04,
        vib: || Vib::primary(0x0E), // MJ
        to_report: 1.0 / 3.6,
        register: "energy",
        unit: "kWh",
    },
    Kind {
        id: 50_000_003,
        name: "Heat GJ",
        medium: "heat",
        device_type: 0x04,
        vib: || Vib::fb(0x08), // 0.1 GJ
        to_report: 100.0 / 3.6,
        register: "energy",
        unit: "kWh",
    },
    Kind {
        id: 50_000_004,
        name: "Cooling",
        medium: "",
        device_type: 0x0A,
        vib: || Vib::primary(0x06), // kWh
        to_report: 1.0,
        register: "energy",
        unit: "kWh",
    },
    Kind {
        id: 50_000_005,
        name: "HCA",
        medium: "",
        device_type: 0x08,
        vib: || Vib::primary(0x6E),
        to_report: 1.0,
        register: "hca",
        unit: "hca",
    },
    Kind {
        id: 50_000_006,
        name: "Electricity",
        medium: "electricity",
        device_type: 0x02,
        vib: || Vib::primary(0x04), // 10 Wh
        to_report: 0.01,
        register: "energy",
        unit: "kWh",
    },
    Kind {
        id: 50_000_007,
        name: "Gas",
        medium: "gas",
        device_type: 0x03,
        vib: || Vib::primary(0x14), // 10 l
        to_report: 0.01,
        register: "volume",
        unit: "m3",
    },
];

/// The second electricity meter: power records only at its current value (no maximum).
const PLAIN_POWER: u32 = 50_000_008;

const ORIGIN: i64 = 1_792_972_800; // 2026-10-26T00:00Z
/// Past 3 December 00:00 (the November deadline + 48 h), when November closes.
const END: i64 = 1_796_277_600; // 2026-12-03T06:00Z

/// Hourly telegrams at minute 7.
fn times() -> impl Iterator<Item = (i64, i64)> {
    (0..)
        .map(|i| (i, ORIGIN + i * 3600 + 7 * 60))
        .take_while(|(_, t)| *t < END)
}

/// The raw register after `i` hours: uneven steps, so interpolation matters.
fn raw(i: i64) -> i64 {
    (0..i).map(|j| 10 + 7 * (j % 5)).sum::<i64>() + 5_000
}

/// Current power, W, of telegram `i`.
fn power_w(i: i64) -> i64 {
    900 + (i * 37) % 4000
}

/// The meter's own maximum power record (W): sent only on 17 November at 12:07.
const OWN_MAX_W: i64 = 6_300;
fn sends_own_max(t: i64) -> bool {
    t == utc(2026, 11, 17, 12, 7)
}

/// The HCA's due-date record: the value at the last deadline, dated the day before.
fn hca_due(t: i64) -> Option<(i64, (i64, i64, i64))> {
    let (deadline, date) = if t >= utc(2026, 12, 1, 0, 0) {
        (utc(2026, 12, 1, 0, 0), (2026, 11, 30))
    } else if t >= utc(2026, 11, 1, 0, 0) {
        (utc(2026, 11, 1, 0, 0), (2026, 10, 31))
    } else {
        return None;
    };
    // The meter's own register at its deadline: the last completed hour, minus 2 units.
    Some((raw((deadline - ORIGIN) / 3600) - 2, date))
}

fn records(k: &Kind, i: i64, t: i64) -> Vec<RecordRepr> {
    let mut out = vec![int32((k.vib)(), raw(i))];
    match k.register {
        "energy" if k.medium == "electricity" => {
            out.push(int32(Vib::primary(0x2B), power_w(i)));
            if sends_own_max(t) {
                out.push(int32(Vib::primary(0x2B), OWN_MAX_W).function(Function::Maximum));
            }
        }
        // A heat meter also sends volume, flow and thermal power: not its register.
        "energy" => {
            out.push(int32(Vib::primary(0x13), 77_000 + i));
            out.push(int32(Vib::primary(0x33), 40 + i % 9));
        }
        "hca" => {
            if let Some((value, date)) = hca_due(t) {
                out.push(int32(Vib::primary(0x6E), value).storage(1));
                out.push(date_record(1, date));
            }
        }
        _ => {}
    }
    out
}

fn replay() -> String {
    let mut text = String::new();
    for (i, t) in times() {
        for k in &KINDS {
            let sender = Sender::tst(k.id, k.device_type);
            text.push_str(&recorded_line(
                t,
                &telegram(&sender, i as u8, 0, &records(k, i, t)),
            ));
        }
        let plain = Sender::tst(PLAIN_POWER, 0x02);
        let recs = [
            int32(Vib::primary(0x04), raw(i)),
            int32(Vib::primary(0x2B), power_w(i)),
        ];
        text.push_str(&recorded_line(t, &telegram(&plain, i as u8, 0, &recs)));
    }
    text
}

/// The register at `deadline` from the hourly values around it, in report units.
fn interpolated(k: &Kind, deadline: i64) -> f64 {
    let before = (deadline - ORIGIN - 7 * 60).div_euclid(3600);
    let (tb, ta) = (
        ORIGIN + before * 3600 + 7 * 60,
        ORIGIN + (before + 1) * 3600 + 7 * 60,
    );
    let (vb, va) = (raw(before) as f64, raw(before + 1) as f64);
    (vb + (va - vb) * (deadline - tb) as f64 / (ta - tb) as f64) * k.to_report
}

fn close(k: &Kind, deadline: i64) -> (f64, &'static str) {
    if k.register == "hca" {
        let (value, _) = hca_due(deadline).unwrap();
        return (value as f64, "meter_due_date");
    }
    (interpolated(k, deadline), "interpolated")
}

fn near(what: &str, got: &str, want: f64) {
    let g = num(got).unwrap_or_else(|| panic!("{what}: empty"));
    assert!((g - want).abs() < 0.001, "{what}: {g} != {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_medium_gives_its_register_in_its_unit() {
    let rig = Rig::new();
    let path = rig.path("registers.replay");
    std::fs::write(&path, replay()).unwrap();
    let mut meters: Vec<MeterEntry> = KINDS
        .iter()
        .map(|k| MeterEntry {
            id: k.id,
            name: k.name,
            medium: k.medium,
            extra: "",
        })
        .collect();
    meters.push(MeterEntry {
        id: PLAIN_POWER,
        name: "Shop",
        medium: "",
        extra: "",
    });
    let config = rig.config_with(
        &path,
        0,
        "period = \"monthly\"\ntimezone = \"UTC\"",
        "",
        &meters,
    );
    let mut d = rig.start(&config);
    d.wait_log(&["period 2026-11 closed"], LIMIT).await;
    assert!(d.terminate().await.success(), "{}", d.log());

    let rows = report_registers(&config, "2026-11");
    let (nov, dec) = (utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0));
    for k in &KINDS {
        let id = format!("{:08}", k.id);
        let row = rows
            .get(&(id.clone(), k.register.to_owned()))
            .unwrap_or_else(|| panic!("no {} row for {id}: {rows:?}", k.register));
        let what = |w: &str| format!("{} {w}", k.name);
        assert_eq!(row["unit"], k.unit, "{}", k.name);
        assert_eq!(
            (row["check"].as_str(), row["reasons"].as_str()),
            ("ok", ""),
            "{}",
            k.name
        );
        let (start, start_source) = close(k, nov);
        let (end, end_source) = close(k, dec);
        near(&what("start"), &row["start_value"], start);
        near(&what("end"), &row["end_value"], end);
        near(&what("consumption"), &row["consumption"], end - start);
        assert_eq!(row["start_source"], start_source, "{}", k.name);
        assert_eq!(row["end_source"], end_source, "{}", k.name);
    }
    // Media from the device type where the configuration names none.
    assert_eq!(
        rows[&("50000004".to_owned(), "energy".to_owned())]["medium"],
        "cooling"
    );
    assert_eq!(
        rows[&("50000005".to_owned(), "hca".to_owned())]["medium"],
        "hca"
    );

    // The period's highest power: the meter's own maximum record where it sent one,
    // else the highest current power heard in the period.
    let in_nov = || times().filter(|(_, t)| (nov..dec).contains(t));
    let heard_max = in_nov().map(|(i, _)| power_w(i)).max().unwrap() as f64 / 1000.0;
    assert!(heard_max < OWN_MAX_W as f64 / 1000.0);
    for (id, want) in [
        (KINDS[5].id, OWN_MAX_W as f64 / 1000.0),
        (PLAIN_POWER, heard_max),
    ] {
        let row = &rows[&(format!("{id:08}"), "max_power".to_owned())];
        assert_eq!(
            (
                row["unit"].as_str(),
                row["end_source"].as_str(),
                row["medium"].as_str()
            ),
            ("kW", "period_max", "electricity"),
            "{id}"
        );
        near(&format!("{id} max power"), &row["end_value"], want);
        assert_eq!(row["consumption"], "", "{id}: a maximum has no consumption");
    }
    // October's maximum is October's: the own-max record of November is not in it.
    let oct = report_registers(&config, "2026-10");
    let oct_max = times()
        .filter(|(_, t)| *t < nov)
        .map(|(i, _)| power_w(i))
        .max()
        .unwrap() as f64
        / 1000.0;
    near(
        "October max power",
        &oct[&(format!("{:08}", KINDS[5].id), "max_power".to_owned())]["end_value"],
        oct_max,
    );
}
