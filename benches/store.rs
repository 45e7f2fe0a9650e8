//! Cost of the reading store (`cargo bench --bench store`; release build):
//!
//! 1. size and report time: a store for 200 meters heard every minute for 35 days at the
//!    default 15-minute resolution, generated through the store's writer API, then
//!    `period_report` for one period of it;
//! 2. daemon throughput with and without `[store]`: `wmbusd run` replaying the same file of
//!    recorded telegrams (stdout to /dev/null), wall time from start to "replay finished".
//!
//! Only the reading that ends each 15-minute slot is fed in step 1: the writer replaces a
//! slot's row with each later reading of the slot, so the file is the one that every-minute
//! traffic leaves behind, generated 15 times faster. `WMBUSD_BENCH_METERS`,
//! `WMBUSD_BENCH_DAYS`, `WMBUSD_BENCH_TELEGRAMS` change the sizes.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use wmbusd::billing::settings::{BillingSection, StoreSection};
use wmbusd::billing::{Calendar, Facts, Register};
use wmbusd::store::report::{period_report, Context};
use wmbusd::store::writer::{StoredReading, Writer};

#[allow(dead_code)]
#[path = "../tests/support/telegrams.rs"]
mod telegrams;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn store_size_and_report() {
    let meters = env("WMBUSD_BENCH_METERS", 200);
    let days = env("WMBUSD_BENCH_DAYS", 35);
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreSection {
        path: dir.path().join("bench.sqlite"),
        keep_readings_days: 3650,
        ..StoreSection::default()
    };
    let billing = BillingSection::default();
    let calendar = Calendar::new(&billing).unwrap();
    let (writer, thread) = Writer::start(&cfg, calendar.clone()).unwrap();
    // 2026-10-28T00:00Z onwards.
    let start = 1_793_145_600i64;
    let slot = 15 * 60;
    let began = Instant::now();
    let mut n = 0u64;
    for s in 0..(days * 86_400 / slot) {
        let t = start + s * slot + slot - 60;
        for m in 0..meters {
            let litres = 100_000 + s * (m % 7 + 1);
            writer
                .store_blocking(StoredReading {
                    meter_id: format!("{:08}", 30_000_000 + m),
                    t,
                    received_at: wmbusd::timefmt::rfc3339(
                        UNIX_EPOCH + Duration::from_secs(t as u64),
                    ),
                    status: 0,
                    manufacturer: "TST".into(),
                    device_type: "water".into(),
                    facts: Facts {
                        registers: vec![(Register::Volume, litres as f64 / 1000.0)],
                        meter_time: Some("2026-11-01T00:00".into()),
                        ..Facts::default()
                    },
                    values: format!(
                        "{{\"volume\":{},\"datetime\":\"2026-11-01T00:00\"}}",
                        litres as f64 / 1000.0
                    ),
                })
                .unwrap();
            n += 1;
        }
    }
    drop(writer);
    thread.join().unwrap();
    let generated = began.elapsed();
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let conn = wmbusd::store::open_ro(&cfg.path).unwrap();
    let ctx = Context {
        calendar: &calendar,
        billing: &billing,
        meters: &[],
    };
    let period = calendar.parse("2026-11").unwrap();
    let mut best = Duration::MAX;
    let mut rows = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let report = period_report(&conn, &ctx, period, 1_900_000_000).unwrap();
        best = best.min(t0.elapsed());
        rows = report.rows.len();
    }
    println!(
        "STORE {meters} meters x {days} days every minute (15-min resolution): {n} slot readings \
         written in {:.1} s; file {:.1} MB; report 2026-11 ({rows} rows) in {:.0} ms (best of 3)",
        generated.as_secs_f64(),
        size as f64 / 1e6,
        best.as_secs_f64() * 1000.0
    );
}

/// Seconds from start to "replay finished" of `wmbusd run`.
fn replay_seconds(bin: &str, config: &std::path::Path) -> f64 {
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains("replay finished") {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    secs
}

fn daemon_throughput() {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/wmbusd");
    if !std::path::Path::new(bin).exists() {
        println!("THROUGHPUT skipped: build target/release/wmbusd first (cargo build --release)");
        return;
    }
    let n = env("WMBUSD_BENCH_TELEGRAMS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("bench.replay");
    let mut text = String::new();
    for i in 0..n {
        let t = 1_793_145_600 + i * 6;
        let at = UNIX_EPOCH + Duration::from_secs(t as u64);
        let frame = telegrams::synthetic(
            40_000_000 + (i % 500) as u32,
            (i / 500) as u8,
            100_000 + i as u32,
        );
        text.push_str(&wmbusd::radio::replay::format_recorded_line(
            at, &frame, None,
        ));
    }
    std::fs::write(&replay, text).unwrap();
    let base = format!(
        "[gateway]\nid = \"bench\"\n[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nclock = \"recorded\"\n[pipeline]\ndedupe_window_secs = 0\n",
        replay.display()
    );
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, &base).unwrap();
    let stored = dir.path().join("stored.toml");
    std::fs::write(
        &stored,
        format!(
            "{base}[store]\npath = \"{}\"\n",
            dir.path().join("s.sqlite").display()
        ),
    )
    .unwrap();
    let (mut without, mut with) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        without = without.min(replay_seconds(bin, &plain));
        let _ = std::fs::remove_file(dir.path().join("s.sqlite"));
        with = with.min(replay_seconds(bin, &stored));
    }
    println!(
        "THROUGHPUT {n} telegrams: without store {:.0}/s, with store {:.0}/s ({:.1}% lower)",
        n as f64 / without,
        n as f64 / with,
        (1.0 - without / with) * 100.0
    );
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent: keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    store_size_and_report();
    daemon_throughput();
}
