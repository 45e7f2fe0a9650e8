//! `wmbusd meters import FILE.csv` end to end: an administration system's meter list
//! (BOM, `;` separator, quoted fields, header names as admin systems spell them, keys
//! optional) into the store and the key file; every bad row reported with its line and
//! reason, exit status 1 and nothing written; the imported names and media then in the
//! report of a month replayed through the daemon.
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

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::billing::{query, report, wmbusd, Rig};
use support::telegrams::{int32, recorded_line, telegram, utc, Sender};
use wmbusd::wire::apl::Vib;

const LIMIT: Duration = Duration::from_secs(120);
const IDS: [u32; 3] = [70_000_001, 70_000_002, 70_000_003];

/// November and a few days around it, hourly, 10 l an hour from 06:00 to 22:00 UTC.
fn replay() -> String {
    let mut text = String::new();
    let mut t = utc(2026, 10, 30, 0, 7);
    let (mut i, mut litres) = (0i64, 50_000);
    while t < utc(2026, 12, 3, 6, 0) {
        for id in IDS {
            let recs = [int32(Vib::primary(0x13), litres)];
            text.push_str(&recorded_line(
                t,
                &telegram(&Sender::tst(id, 0x07), i as u8, 0, &recs),
            ));
        }
        if (6..=21).contains(&(t.rem_euclid(86_400) / 3600)) {
            litres += 10;
        }
        t += 3600;
        i += 1;
    }
    text
}

fn import(config: &Path, csv: &Path, key_file: &Path) -> std::process::Output {
    wmbusd(&[
        "meters".as_ref(),
        "import".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--key-file".as_ref(),
        key_file.as_os_str(),
        csv.as_os_str(),
    ])
}

const KEY: &str = "000102030405060708090A0B0C0D0E0F";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_meters_are_named_in_the_report() {
    let rig = Rig::new();
    let path = rig.path("month.replay");
    std::fs::write(&path, replay()).unwrap();
    // No [[meter]] sections: names and media come from the import only.
    let config = rig.config(&path, 0, "period = \"monthly\"\ntimezone = \"UTC\"", &[]);
    let store = rig.path("readings.sqlite");
    let key_file = rig.path("keys.toml");

    // Rejected: every bad row with its line, nothing written.
    let bad = rig.path("bad.csv");
    std::fs::write(
        &bad,
        "Zähler-Nr;Bezeichnung;Wohnung;Medium;Schlüssel\n\
         70000001;Flat 1;1A;water;\n\
         7000000X;Flat 2;1B;water;\n\
         70000003;Flat 3;1C;lava;\n\
         70000004;Flat 4;1D;water;0011\n\
         70000001;Again;1A;water;\n\
         70000005;\"Flat 5;1E;water;\n",
    )
    .unwrap();
    let out = import(&config, &bad, &key_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The German header names no id column: the whole file is refused at its header.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.csv:1: "), "{stderr}");
    std::fs::write(
        &bad,
        "\u{FEFF}\"Meter ID\";\"Name\";Apartment;Medium;\"AES key\"\n\
         70000001;Flat 1;1A;water;\n\
         7000000X;Flat 2;1B;water;\n\
         \n\
         70000003;Flat 3;1C;lava;\n\
         70000004;Flat 4;1D;water;0011\n\
         70000001;Again;1A;water;\n\
         70000005;\"Flat 5;1E;water;\n\
         70000006;a;b;water;;extra\n",
    )
    .unwrap();
    let out = import(&config, &bad, &key_file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once("bad.csv:").map(|(_, rest)| rest))
        .collect();
    let numbers: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(numbers, ["3", "5", "6", "7", "8", "9"], "{stderr}");
    for (line, reason) in [
        ("3", "meter id"),
        ("5", "lava"),
        ("6", "70000004"),
        ("7", "already listed on line 2"),
        ("8", "unterminated quoted field"),
        ("9", "6 fields, the header has 5"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{line}: ")) && l.contains(reason)),
            "line {line} should say {reason:?}: {stderr}"
        );
    }
    assert!(!stderr.contains("0011"), "a key was echoed: {stderr}");
    assert!(!key_file.exists());
    assert!(!store.exists() || query(&store, "SELECT meter_id FROM meters").is_empty());

    // Accepted: BOM, ';', quoted fields, a key on one row.
    let good = rig.path("admin.csv");
    std::fs::write(
        &good,
        format!(
            "\u{FEFF}\"Meter ID\";\"Name\";\"Apartment\";Medium;\"AES key\"\n\
             70000001;\"Smith; kitchen\";\"1A\";water;\n\
             70000002;\"Jones \"\"hot\"\"\";1B;warm_water;{KEY}\n"
        ),
    )
    .unwrap();
    let out = import(&config, &good, &key_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 meter(s) imported"));
    let keys = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        keys.contains("70000002") && !keys.contains("70000001"),
        "{keys}"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second export with other header names and ',' adds a meter and updates a label.
    let more = rig.path("more.csv");
    std::fs::write(
        &more,
        "serial,description,flat,type\n70000003,Cellar,K1,water\n70000001,,1A-left,\n",
    )
    .unwrap();
    let out = import(&config, &more, &key_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query(
            &store,
            "SELECT meter_id, name, label, medium FROM meters ORDER BY meter_id"
        ),
        [
            "70000001|Smith; kitchen|1A-left|water",
            "70000002|Jones \"hot\"|1B|warm_water",
            "70000003|Cellar|K1|water",
        ]
    );

    let mut d = rig.start(&config);
    d.wait_log(&["period 2026-11 closed"], LIMIT).await;
    assert!(d.terminate().await.success(), "{}", d.log());
    let rows = report(&config, "2026-11", &[]);
    let got: Vec<(&str, &str, &str)> = rows
        .values()
        .map(|r| {
            (
                r["meter_id"].as_str(),
                r["name"].as_str(),
                r["medium"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("70000001", "Smith; kitchen", "water"),
            ("70000002", "Jones \"hot\"", "warm_water"),
            ("70000003", "Cellar", "water"),
        ]
    );
    // 10 l in each of 16 hours of the 30 days of November.
    assert!(
        rows.values()
            .all(|r| r["consumption"] == "4.8" && r["check"] == "ok"),
        "{rows:?}"
    );
}
