//! The README's first command: `wmbusd demo` runs the whole pipeline on the bundled
//! telegrams and prints their readings, without hardware or broker, and without ever
//! printing one of the demo meters' keys.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::process::Command;

const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

#[test]
fn demo_prints_every_bundled_reading_and_no_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_wmbusd"))
        .args(["demo"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("wmbusd demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let readings: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON reading per line"))
        .collect();
    // Every telegram of the demo file but the one whose key is deliberately missing.
    assert_eq!(readings.len(), 9, "{stdout}");
    let ids: Vec<&str> = readings
        .iter()
        .filter_map(|r| r["meter"]["id"].as_str())
        .collect();
    for id in [
        "27293981", "12345678", "76348799", "43054304", "80081809", "60723506", "20096221",
        "65656565",
    ] {
        assert!(ids.contains(&id), "no reading of meter {id}");
    }
    assert!(readings.iter().all(|r| r["schema"] == 1));
    assert!(
        stderr.contains("no key"),
        "the key-less meter is reported: {stderr}"
    );

    let keys: Vec<&str> = DEMO_CONFIG
        .lines()
        .filter_map(|l| l.trim().strip_prefix("key = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(keys.len() >= 5, "demo config lists its keys");
    let all = format!("{stdout}{stderr}");
    for key in keys {
        assert!(
            !all.contains(key) && !all.contains(&key.to_lowercase()),
            "a demo key was printed"
        );
    }
}
