//! Delivery at scale: the real `wmbusd run` binary against a real mosquitto with many
//! telegrams, many configured meters, broker outages, signals, damaged spools and full disks.
//!
//! `bench_daemon` is `#[ignore]`d: it is the benchmark behind `scripts/measure-daemon.sh`.
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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value as Json;
use support::daemon::Daemon;
use support::mosquitto::Mosquitto;
use support::sim::{self, Im871aSim, Pty, SimInput};
use support::subscriber::Subscriber;
use support::telegrams::{synthetic, synthetic_litres, write_replay};

const GW: &str = "gw-scale";
const FIRST_ID: u32 = 92_000_000;

fn meter_prefix() -> String {
    format!("wmbus/{GW}/meter/")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Configuration text: gateway, radios (already rendered), MQTT, spool, `meters` meters.
fn config_text(dir: &Path, port: u16, radios: &str, spool_extra: &str, meters: u32) -> String {
    let mut t = format!(
        "[gateway]\nid = \"{GW}\"\n\n{radios}\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-{GW}\"\nkeep_alive_secs = 5\n\n\
         [spool]\ndir = \"{}\"\n{spool_extra}\n\n[pipeline]\ndedupe_window_secs = 30\n\n",
        dir.join("spool").display()
    );
    for i in 0..meters {
        // Keys are configured (and expanded) as in a real installation; the synthetic
        // telegrams themselves are plaintext.
        t.push_str(&format!(
            "[[meter]]\nid = \"{}\"\nkey = \"{:032X}\"\n\n",
            FIRST_ID + i,
            u128::from(i) + 1
        ));
    }
    t
}

fn start_daemon(config: &Path, state: &Path) -> Daemon {
    Daemon::start_args(&[
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        state.as_os_str(),
    ])
}

fn cpu_secs(d: &Daemon) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    d.cpu_ticks() as f64 / hz
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------
// Benchmark (scripts/measure-daemon.sh)
//
// Phase 1, latency and idle figures: an iM871A simulator on a pty, telegrams at 20/s, the
// time from handing a telegram to the simulator to its arrival at a subscriber.
// Phase 2, throughput: a replay radio over WMBUSD_BENCH_TELEGRAMS telegrams as fast as the
// daemon takes them; telegrams/s from the first to the last message at the subscriber, CPU
// time of the daemon per telegram, RSS after the load.
//
// WMBUSD_BENCH_METERS (configured meters, default 10), WMBUSD_BENCH_TELEGRAMS (default
// 50000), WMBUSD_BENCH_FSYNC ("always" or "interval"), WMBUSD_BENCH_LATENCY_TELEGRAMS
// (default 100), WMBUSD_BENCH_STORE=1 (with the reading store).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run scripts/measure-daemon.sh"]
async fn bench_daemon() {
    let meters: u32 = env_or("WMBUSD_BENCH_METERS", 10);
    let n: u32 = env_or("WMBUSD_BENCH_TELEGRAMS", 50_000);
    let latency_n: u32 = env_or("WMBUSD_BENCH_LATENCY_TELEGRAMS", 100);
    let fsync: String = env_or("WMBUSD_BENCH_FSYNC", "always".to_owned());
    let store = std::env::var("WMBUSD_BENCH_STORE").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let mut spool_extra = format!("fsync = \"{fsync}\"\nfsync_interval_ms = 1000");
    if store {
        // The section follows the spool's keys in config_text.
        spool_extra.push_str(&format!(
            "\n\n[store]\npath = \"{}\"",
            dir.path().join("readings.sqlite").display()
        ));
    }
    let broker = Mosquitto::start();
    let sub = Subscriber::start_qos(
        broker.port,
        "bench-sub",
        &[&format!("{}#", meter_prefix()), &format!("wmbus/{GW}/#")],
        QoS::AtMostOnce,
    )
    .await;

    // Phase 1: pty radio, start time, idle RSS, latency at 20 telegrams/s.
    let link = dir.path().join("usb-im871a-if00");
    let pty = Pty::open().unwrap();
    sim::point_symlink(&link, pty.slave_path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let _sim = tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    let radios = format!(
        "[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\nmodes = [\"C1\", \"T1\"]\n",
        link.display()
    );
    let config = dir.path().join("latency.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), broker.port, &radios, &spool_extra, meters),
    )
    .unwrap();
    let started = Instant::now();
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    d.wait_log(&["started: gateway"], Duration::from_secs(60))
        .await;
    let start_secs = started.elapsed().as_secs_f64();
    d.wait_log(&[": ready ("], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = d.rss_kb();
    let mut sent_at = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let base = n + 1_000_000;
    for i in 0..latency_n {
        tick.tick().await;
        let frame = synthetic(FIRST_ID + i % meters, (i % 256) as u8, base + i);
        sent_at.push(Instant::now());
        tx.send(SimInput::Telegram {
            frame,
            rssi_raw: 0x80,
        })
        .await
        .unwrap();
    }
    let prefix = meter_prefix();
    sub.wait_until("latency readings", Duration::from_secs(60), |m| {
        m.iter()
            .filter(|m| m.topic.starts_with(&prefix) && !m.topic.ends_with("/health"))
            .count()
            >= latency_n as usize
    })
    .await;
    let mut lat: Vec<f64> = sub
        .on(&prefix)
        .iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .filter_map(|m| {
            let v: Json = serde_json::from_slice(&m.payload).ok()?;
            let i = synthetic_litres(&v).checked_sub(base)?;
            let t0 = sent_at.get(i as usize)?;
            Some(m.at.duration_since(*t0).as_secs_f64() * 1e3)
        })
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    assert!(d.terminate().await.success());

    // Phase 2: replay radio, throughput.
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, meters, n);
    let radios = format!(
        "[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\n",
        replay.display()
    );
    let config = dir.path().join("throughput.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), broker.port, &radios, &spool_extra, meters),
    )
    .unwrap();
    let before = sub.count_on(&prefix);
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    d.wait_log(&["started: gateway"], Duration::from_secs(60))
        .await;
    let cpu_start = cpu_secs(&d);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut rss_peak = 0;
    loop {
        let got = sub
            .on(&prefix)
            .iter()
            .skip(before)
            .filter(|m| !m.topic.ends_with("/health"))
            .count();
        rss_peak = rss_peak.max(d.rss_kb());
        if got >= n as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} readings arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_secs(&d) - cpu_start;
    let rss_after = d.rss_kb();
    let msgs: Vec<_> = sub
        .on(&prefix)
        .into_iter()
        .skip(before)
        .filter(|m| !m.topic.ends_with("/health"))
        .collect();
    let span = msgs
        .last()
        .unwrap()
        .at
        .duration_since(msgs.first().unwrap().at)
        .as_secs_f64();
    let largest = sub
        .messages()
        .iter()
        .map(|m| m.payload.len())
        .max()
        .unwrap_or(0);
    println!(
        "MEASURE meters={meters} fsync={fsync} store={store} telegrams={n} rate={:.0}/s cpu_us_per_telegram={:.1} \
         latency_ms_p50={:.2} latency_ms_p99={:.2} start_secs={start_secs:.2} rss_idle_kb={rss_idle} \
         rss_load_peak_kb={rss_peak} rss_after_kb={rss_after} largest_message_bytes={largest}",
        n as f64 / span.max(1e-6),
        cpu * 1e6 / f64::from(n),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    );
    assert!(d.terminate().await.success());
}

fn unique_readings(sub: &Subscriber) -> std::collections::HashSet<u32> {
    sub.on(&meter_prefix())
        .iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .filter_map(|m| serde_json::from_slice::<Json>(&m.payload).ok())
        .map(|v| synthetic_litres(&v))
        .collect()
}

fn replay_config(
    dir: &Path,
    port: u16,
    replay: &Path,
    spool_extra: &str,
    extra: &str,
    meters: u32,
) -> PathBuf {
    let radios = format!(
        "[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\n",
        replay.display()
    );
    let path = dir.join("wmbusd.toml");
    let mut text = config_text(dir, port, &radios, spool_extra, meters);
    text.push_str(extra);
    std::fs::write(&path, text).unwrap();
    path
}

/// The replay ends while the broker is down: the daemon keeps delivering and exits only
/// once the broker took every reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_when_replay_ends_every_reading_arrives_later() {
    const N: u32 = 30;
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "scale-replay-end",
        &[&format!("{}#", meter_prefix())],
    )
    .await;
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, 5, N);
    let config = replay_config(dir.path(), broker.port, &replay, "", "", 5);
    let mut d = Daemon::start_args(&[
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        dir.path().join("state.json").as_os_str(),
        "--exit-after-replay".as_ref(),
    ]);
    d.wait_log(&["replay finished"], Duration::from_secs(15))
        .await;
    d.wait_log(&["unreachable"], Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.assert_running("the replay ended with the broker down");
    broker.restart();
    let exit = d.wait_exit(Duration::from_secs(60)).await;
    assert!(exit.success(), "exit {exit:?}; log:\n{}", d.log());
    sub.wait_until("every reading", Duration::from_secs(30), |_| {
        unique_readings(&sub).len() == N as usize
    })
    .await;
    assert_eq!(unique_readings(&sub), (0..N).collect());
}

/// `--drain-timeout` bounds that wait: exit 75, saying how many readings remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_exits_75_saying_how_many_remain() {
    const N: u32 = 12;
    let broker = Mosquitto::start();
    let port = broker.port;
    drop(broker);
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, 3, N);
    let config = replay_config(dir.path(), port, &replay, "", "", 3);
    let mut d = Daemon::start_args(&[
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        dir.path().join("state.json").as_os_str(),
        "--exit-after-replay".as_ref(),
        "--drain-timeout".as_ref(),
        "2".as_ref(),
    ]);
    let exit = d.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(75), "log:\n{}", d.log());
    assert!(
        !d.log_lines_with(&[&format!("{N} reading(s) not delivered; they stay spooled")])
            .is_empty(),
        "log:\n{}",
        d.log()
    );
}

/// 10,000 configured meters, each heard: per-meter health documents and a small summary,
/// never one message over 256 kB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_meters_no_message_over_256_kb() {
    const METERS: u32 = 10_000;
    let broker = Mosquitto::start();
    let sub = Subscriber::start_qos(
        broker.port,
        "scale-10k",
        &[&format!("wmbus/{GW}/#")],
        QoS::AtMostOnce,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, METERS, METERS);
    let config = replay_config(
        dir.path(),
        broker.port,
        &replay,
        "",
        "[health]\npublish_interval_secs = 1\n",
        METERS,
    );
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    sub.wait_until(
        "readings and health of every meter",
        Duration::from_secs(120),
        |msgs| {
            msgs.iter()
                .filter(|m| m.topic.ends_with("/health") && m.topic.contains("/meter/"))
                .count()
                >= METERS as usize
                && msgs
                    .iter()
                    .filter(|m| !m.topic.ends_with("/health") && m.topic.contains("/meter/"))
                    .count()
                    >= METERS as usize
        },
    )
    .await;
    sub.wait_until("summary", Duration::from_secs(10), |msgs| {
        msgs.iter().any(|m| m.topic == format!("wmbus/{GW}/health"))
    })
    .await;
    let msgs = sub.messages();
    let largest = msgs.iter().max_by_key(|m| m.payload.len()).unwrap();
    assert!(
        largest.payload.len() <= 256 * 1024,
        "{} is {} bytes",
        largest.topic,
        largest.payload.len()
    );
    let summary: Json = serde_json::from_slice(
        &msgs
            .iter()
            .rev()
            .find(|m| m.topic == format!("wmbus/{GW}/health"))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(summary["meters"]["configured"], METERS);
    let one: Json = serde_json::from_slice(
        &msgs
            .iter()
            .find(|m| m.topic == format!("{}{FIRST_ID}/health", meter_prefix()))
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(one["meter"], FIRST_ID.to_string());
    assert_eq!(one["decoded"], 1);
    assert!(d.terminate().await.success());
}

/// SIGTERM while readings wait for a broker that is down: the bounded drain ends, the
/// rest stays spooled, and a restart delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_readings_in_flight_delivers_them_after_restart() {
    const N: u32 = 40;
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "scale-sigterm",
        &[&format!("{}#", meter_prefix())],
    )
    .await;
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, 4, N);
    let config = replay_config(
        dir.path(),
        broker.port,
        &replay,
        "shutdown_drain_secs = 1",
        "",
        4,
    );
    let state = dir.path().join("state.json");
    let mut d = start_daemon(&config, &state);
    d.wait_log(&["replay finished"], Duration::from_secs(15))
        .await;
    let exit = d.terminate().await;
    assert_eq!(exit.code(), Some(75), "log:\n{}", d.log());
    // Restart with an empty replay: only the spool is delivered.
    std::fs::write(&replay, "").unwrap();
    broker.restart();
    let mut d = start_daemon(&config, &state);
    sub.wait_until(
        "every reading after the restart",
        Duration::from_secs(60),
        |_| unique_readings(&sub).len() == N as usize,
    )
    .await;
    assert!(d.terminate().await.success());
}

/// A 2 MB tmpfs for the spool, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with a message) when not root: mounting needs it.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: the full-disk test mounts a tmpfs and needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed although running as root");
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The spool's disk fills while the broker is down: the readings that cannot be spooled
/// wait in memory, everything arrives once the broker is back, the log says `spool: disk
/// full` once, and spooling resumes by itself when acknowledgements free the space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_keeps_delivering_and_recovers() {
    const FIRST: u32 = 8_000;
    const SECOND: u32 = 300;
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&dir.path().join("spool"), "2m") else {
        return;
    };
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "scale-full",
        &[&format!("{}#", meter_prefix())],
    )
    .await;
    broker.stop();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, 10, FIRST);
    let link = dir.path().join("usb-im871a-if00");
    let pty = Pty::open().unwrap();
    sim::point_symlink(&link, pty.slave_path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let _sim = tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    let radios = format!(
        "[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\n\n[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\nmodes = [\"C1\", \"T1\"]\n",
        replay.display(),
        link.display()
    );
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), broker.port, &radios, "", 10),
    )
    .unwrap();
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    d.wait_log(&["spool: disk full"], Duration::from_secs(60))
        .await;
    d.wait_log(&["replay finished"], Duration::from_secs(60))
        .await;
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(90);
    while unique_readings(&sub).len() < FIRST as usize {
        if Instant::now() > deadline {
            let got = unique_readings(&sub);
            let missing: Vec<u32> = (0..FIRST).filter(|i| !got.contains(i)).collect();
            panic!(
                "{} of {FIRST} readings arrived; missing {:?}; log:\n{}",
                got.len(),
                &missing[..missing.len().min(20)],
                d.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unique_readings(&sub), (0..FIRST).collect());
    assert_eq!(
        d.log_lines_with(&["spool: disk full"]).len(),
        1,
        "once per episode"
    );
    // Space came back with the acknowledgements: new readings are spooled again.
    for i in 0..SECOND {
        let frame = synthetic(FIRST_ID + i % 10, (i % 256) as u8, 100_000 + i);
        tx.send(SimInput::Telegram {
            frame,
            rssi_raw: 0x80,
        })
        .await
        .unwrap();
    }
    sub.wait_until(
        "the readings after the disk recovered",
        Duration::from_secs(60),
        |_| unique_readings(&sub).len() >= (FIRST + SECOND) as usize,
    )
    .await;
    d.wait_log(&["writes succeed again"], Duration::from_secs(10))
        .await;
    d.assert_running("after the full-disk episode");
    assert!(d.terminate().await.success(), "log:\n{}", d.log());
}

/// Radio data a dongle codec rejects is counted in the health summary's totals, not only
/// logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_rejects_are_counted_in_health_totals() {
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "scale-bad", &[&format!("wmbus/{GW}/health")]).await;
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("usb-im871a-if00");
    let pty = Pty::open().unwrap();
    sim::point_symlink(&link, pty.slave_path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let _sim = tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    let radios = format!(
        "[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\nmodes = [\"C1\", \"T1\"]\n",
        link.display()
    );
    let config = dir.path().join("wmbusd.toml");
    let mut text = config_text(dir.path(), broker.port, &radios, "", 1);
    text.push_str("[health]\npublish_interval_secs = 1\n");
    std::fs::write(&config, text).unwrap();
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    d.wait_log(&[": ready ("], Duration::from_secs(15)).await;
    tx.send(SimInput::Raw(b"\x00\x13garbage\x37".to_vec()))
        .await
        .unwrap();
    d.wait_log(&["dropped bad radio data"], Duration::from_secs(15))
        .await;
    sub.wait_until(
        "bad_radio_data in the totals",
        Duration::from_secs(15),
        |msgs| {
            msgs.iter().rev().take(1).any(|m| {
                serde_json::from_slice::<Json>(&m.payload)
                    .is_ok_and(|v| v["totals"]["failed"]["bad_radio_data"].as_u64() >= Some(1))
            })
        },
    )
    .await;
    assert!(d.terminate().await.success());
}

/// After a broker outage the daemon does not wait out its whole back-off: it probes the
/// broker's port every 2 s and reconnects within a few seconds of the broker's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_within_seconds_after_a_long_outage() {
    let mut broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    std::fs::write(&replay, "").unwrap();
    let config = replay_config(dir.path(), broker.port, &replay, "", "", 1);
    let mut d = start_daemon(&config, &dir.path().join("state.json"));
    d.wait_log(&["connected to broker"], Duration::from_secs(15))
        .await;
    broker.stop();
    // 1 + 2 + 4 + 8 s of back-off: the next wait is 16 s.
    d.wait_log(&["retrying in 16 s"], Duration::from_secs(40))
        .await;
    let back = Instant::now();
    broker.restart();
    d.wait_log_count(&["connected to broker"], 2, Duration::from_secs(30))
        .await;
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "reconnected {took:?} after the broker returned; log:\n{}",
        d.log()
    );
    assert!(d.terminate().await.success());
}

/// The demo's spool is temporary: readings it could not deliver are reported as lost with
/// it, never as "spooled for the next start".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_does_not_promise_a_next_start() {
    let port = support::mosquitto::free_port();
    let mut d = Daemon::start_args(&[
        "demo".as_ref(),
        "--mqtt".as_ref(),
        format!("127.0.0.1:{port}").as_ref(),
        "--drain-timeout".as_ref(),
        "1".as_ref(),
    ]);
    let exit = d.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(exit.code(), Some(75), "log:\n{}", d.log());
    let log = d.log();
    assert!(
        log.contains("temporary spool is removed with them"),
        "{log}"
    );
    assert!(!log.contains("next start"), "{log}");
}

/// SIGTERM ends the daemon even while an rtl-wmbus input on standard input stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_rtlwmbus_on_open_stdin_exits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"{GW}\"\n[[radio]]\ndriver = \"rtlwmbus\"\ndevice = \"-\"\n[spool]\ndir = \"{}\"\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let bin = std::env::var_os("WMBUSD_BIN").unwrap_or_else(|| support::daemon::BIN.into());
    let mut child = std::process::Command::new(bin)
        .args(["run", "--stdout", "--config"])
        .arg(&config)
        .arg("--state-file")
        .arg(dir.path().join("state.json"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The pipe stays open (we hold its write end) and says nothing.
    let _stdin = child.stdin.take();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // SAFETY: signalling the child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wmbusd did not exit within 5 s of SIGTERM with stdin open");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a daemon on an iM871A simulator with `meter_extra` appended to the first meter's
/// table and `mqtt_extra` to `[mqtt]`; returns the daemon and the simulator's input.
async fn pty_daemon(
    dir: &Path,
    port: u16,
    meter_extra: &str,
    mqtt_extra: &str,
) -> (Daemon, tokio::sync::mpsc::Sender<SimInput>) {
    let link = dir.join("usb-im871a-if00");
    let pty = Pty::open().unwrap();
    sim::point_symlink(&link, pty.slave_path()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    let radios = format!(
        "[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\nmodes = [\"C1\", \"T1\"]\n",
        link.display()
    );
    let first = format!("[[meter]]\nid = \"{FIRST_ID}\"\n");
    let text = config_text(dir, port, &radios, "", 2)
        .replace(&first, &format!("{first}{meter_extra}\n"))
        .replace(
            "keep_alive_secs = 5\n",
            &format!("keep_alive_secs = 5\n{mqtt_extra}\n"),
        );
    let config = dir.join("wmbusd.toml");
    std::fs::write(&config, text).unwrap();
    let mut d = start_daemon(&config, &dir.join("state.json"));
    d.wait_log(&[": ready ("], Duration::from_secs(15)).await;
    (d, tx)
}

fn readings_of(sub: &Subscriber, id: u32) -> Vec<Json> {
    sub.on(&format!("{}{id}", meter_prefix()))
        .iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

/// `publish = "interval:2s"`: 100 telegrams with the same registers → 1 reading; the next
/// unchanged one only after the interval; a changed one at once. Other meters: every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_policy_holds_back_unchanged_readings() {
    let broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "scale-changed",
        &[&format!("{}#", meter_prefix())],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut d, tx) = pty_daemon(dir.path(), broker.port, "publish = \"interval:2s\"", "").await;
    let send = |access: u32, litres: u32, id: u32| {
        let tx = tx.clone();
        async move {
            let frame = synthetic(id, (access % 256) as u8, litres);
            tx.send(SimInput::Telegram {
                frame,
                rssi_raw: 0x80,
            })
            .await
            .unwrap();
        }
    };
    let started = Instant::now();
    // Access numbers differ (no duplicates); the volume register does not.
    for i in 0..100 {
        send(i, 4242, FIRST_ID).await;
    }
    // Ten of the other meter (policy "every") as a marker that all 110 were processed.
    for i in 0..10 {
        send(i, 7000 + i, FIRST_ID + 1).await;
    }
    sub.wait_until(
        "the other meter's readings",
        Duration::from_secs(15),
        |_| readings_of(&sub, FIRST_ID + 1).len() == 10,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the 100 telegrams took too long for this test"
    );
    assert_eq!(readings_of(&sub, FIRST_ID).len(), 1);
    // After the interval an unchanged reading goes out once more.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    send(200, 4242, FIRST_ID).await;
    send(201, 4242, FIRST_ID).await;
    sub.wait_until("one reading per interval", Duration::from_secs(10), |_| {
        readings_of(&sub, FIRST_ID).len() == 2
    })
    .await;
    // A change goes out at once.
    send(202, 4243, FIRST_ID).await;
    sub.wait_until("the changed reading", Duration::from_secs(10), |_| {
        readings_of(&sub, FIRST_ID).len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = readings_of(&sub, FIRST_ID);
    assert_eq!(got.len(), 3);
    assert_eq!(synthetic_litres(&got[2]), 4243);
    assert!(d.terminate().await.success());
}

/// `[mqtt] payload = "compact"`: readings follow the compact schema of
/// docs/reading-schema.md, and are several times smaller than full ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_payloads_follow_their_schema() {
    let broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "scale-compact",
        &[&format!("{}#", meter_prefix())],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut d, tx) = pty_daemon(dir.path(), broker.port, "", "payload = \"compact\"").await;
    let frame = synthetic(FIRST_ID, 1, 12_345);
    tx.send(SimInput::Telegram {
        frame,
        rssi_raw: 0x80,
    })
    .await
    .unwrap();
    sub.wait_until("a compact reading", Duration::from_secs(15), |_| {
        !readings_of(&sub, FIRST_ID).is_empty()
    })
    .await;
    let msg = &readings_of(&sub, FIRST_ID)[0];
    validate_compact(msg);
    assert_eq!(msg["meter"], FIRST_ID.to_string());
    assert_eq!(msg["values"]["volume_m3"].to_string(), "12.345");
    assert!(d.terminate().await.success());
}

/// The compact schema (docs/reading-schema.md, "Compact readings").
fn validate_compact(v: &Json) {
    let obj = v.as_object().expect("an object");
    for key in obj.keys() {
        assert!(
            ["schema", "compact", "meter", "time", "flags", "values"].contains(&key.as_str()),
            "unknown key {key} in {v}"
        );
    }
    assert_eq!(obj["schema"], 1);
    assert_eq!(obj["compact"], true);
    let id = obj["meter"].as_str().expect("meter is a string");
    assert!(
        id.len() == 8 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    if let Some(t) = obj.get("time") {
        let t = t.as_str().expect("time is a string");
        assert!(t.ends_with('Z') && t.contains('T'), "{t}");
    }
    if let Some(f) = obj.get("flags") {
        assert!(f
            .as_array()
            .expect("flags array")
            .iter()
            .all(Json::is_string));
    }
    let values = obj["values"].as_object().expect("values is an object");
    for (name, value) in values {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "value name {name}"
        );
        assert!(
            value.is_number() || value.is_string() || value.is_null(),
            "{name}: {value}"
        );
    }
}

/// SIGTERM while a replay radio floods the daemon (its session blocked on a full event
/// channel): the daemon stops at once instead of waiting 5 s for the session. Five runs,
/// since the wait showed in about half of them: each ends within 2 s plus the drain bound
/// (`shutdown_drain_secs = 0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_does_not_wait_for_a_radio_session() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_replay(&replay, FIRST_ID, 10, 100_000);
    let config = replay_config(
        dir.path(),
        broker.port,
        &replay,
        "shutdown_drain_secs = 0",
        "",
        10,
    );
    let bound = Duration::from_secs(2);
    for run in 1..=5 {
        let mut d = start_daemon(&config, &dir.path().join("state.json"));
        d.wait_log(&["connected to broker"], Duration::from_secs(15))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        d.signal(libc::SIGTERM);
        let exit = d.wait_exit(Duration::from_secs(30)).await;
        let took = asked.elapsed();
        eprintln!("SIGTERM under load, run {run}: exited {took:?} after the signal");
        assert!(
            exit.code() == Some(0) || exit.code() == Some(75),
            "{exit:?}"
        );
        assert!(
            d.log_lines_with(&["did not stop within"]).is_empty(),
            "log:\n{}",
            d.log()
        );
        assert!(took < bound, "SIGTERM took {took:?}; log:\n{}", d.log());
    }
}
