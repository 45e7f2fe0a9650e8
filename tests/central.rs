//! Central decoding end to end: gateway daemons in `mode = "forward"` replay overlapping
//! telegrams (each meter heard by 2–3 of them), two `wmbusd central` instances share the
//! frames through an MQTT 5 shared subscription on a real mosquitto and store them in a
//! real PostgreSQL. Every telegram is stored once with the right receivers and published
//! once; killing one instance mid-stream loses nothing.
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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::daemon::Daemon;
use support::mosquitto::{free_port, Mosquitto};
use support::postgres::Postgres;
use support::subscriber::Subscriber;
use support::telegrams::{synthetic, synthetic_litres};
use wmbusd::store::postgres::PgStore;

const GATEWAYS: u32 = 10;
const METERS: u32 = 60;
const PER_PHASE: u32 = 20;
/// 2026-11-01T00:00:00Z.
const T0: u64 = 1_793_491_200;

/// The gateways that hear meter `m`: two neighbours, a third for every third meter.
fn coverage(m: u32) -> Vec<u32> {
    let mut g = vec![m % GATEWAYS, (m + 1) % GATEWAYS];
    if m % 3 == 0 {
        g.push((m + 3) % GATEWAYS);
    }
    g
}

fn rssi(gw: u32, m: u32) -> f32 {
    -50.0 - ((gw * 7 + m * 13) % 40) as f32 - gw as f32 / 10.0
}

fn meter_id(m: u32) -> u32 {
    10_000_001 + m
}

/// Telegram `k` of meter `m`: one a minute, access number `k`, litres encode both.
fn telegram(m: u32, k: u32) -> (SystemTime, Vec<u8>) {
    let at = UNIX_EPOCH + Duration::from_secs(T0 + u64::from(k) * 60);
    (at, synthetic(meter_id(m), k as u8, m * 1000 + k))
}

/// The expected receivers of meter `m`, best RSSI first.
fn expected_receivers(m: u32) -> Vec<String> {
    let mut g = coverage(m);
    g.sort_by(|a, b| rssi(*b, m).total_cmp(&rssi(*a, m)));
    g.into_iter().map(|g| format!("gw-{g}")).collect()
}

/// Replay files and configurations of the gateways for telegrams `ks`; returns the
/// configuration paths and the number of frames.
fn write_gateways(
    dir: &Path,
    port: u16,
    ks: std::ops::Range<u32>,
    phase: u32,
) -> (Vec<PathBuf>, usize) {
    let mut frames = 0;
    let mut configs = Vec::new();
    for gw in 0..GATEWAYS {
        let mut lines = String::new();
        for k in ks.clone() {
            for m in (0..METERS).filter(|m| coverage(*m).contains(&gw)) {
                let (at, bytes) = telegram(m, k);
                // Gateways' clocks and radios differ by some milliseconds.
                let at = at + Duration::from_millis(u64::from(gw) * 3);
                lines.push_str(&wmbusd::radio::replay::format_recorded_line(
                    at,
                    &bytes,
                    Some(rssi(gw, m)),
                ));
                lines.push('\n');
                frames += 1;
            }
        }
        let replay = dir.join(format!("gw-{gw}-{phase}.txt"));
        std::fs::write(&replay, lines).unwrap();
        let config = dir.join(format!("gw-{gw}-{phase}.toml"));
        std::fs::write(
            &config,
            format!(
                "[gateway]\nid = \"gw-{gw}\"\nmode = \"forward\"\n\n\
                 [[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nclock = \"recorded\"\nreplay_interval_ms = 2\n\n\
                 [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"wmbusd-gw-{gw}\"\nkeep_alive_secs = 5\n\n\
                 [spool]\ndir = \"{}\"\n",
                replay.display(),
                dir.join(format!("spool-gw-{gw}")).display()
            ),
        )
        .unwrap();
        configs.push(config);
    }
    (configs, frames)
}

fn write_central(dir: &Path, name: &str, port: u16, url: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[gateway]\nid = \"{name}\"\n\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"wmbusd-{name}\"\nkeep_alive_secs = 5\n\n\
             [spool]\ndir = \"{}\"\n\n\
             [store]\nurl = \"{url}\"\n\n\
             [central]\nhold_ms = 3000\nbatch_max = 200\n",
            dir.join(format!("spool-{name}")).display()
        ),
    )
    .unwrap();
    path
}

fn start_central(config: &Path) -> Daemon {
    Daemon::start_args(&["central".as_ref(), "--config".as_ref(), config.as_os_str()])
}

fn run_gateways(configs: &[PathBuf]) -> Vec<Daemon> {
    configs
        .iter()
        .map(|c| {
            Daemon::start_args(&[
                "run".as_ref(),
                "--config".as_ref(),
                c.as_os_str(),
                "--exit-after-replay".as_ref(),
            ])
        })
        .collect()
}

/// Polls `$done` (an expression that may `.await`) until it holds; panics after `$secs`.
macro_rules! wait_for {
    ($what:expr, $secs:expr, $done:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if $done {
                break;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

/// Stored telegrams: (meter, access number) -> receivers in the stored order.
async fn stored(store: &PgStore) -> BTreeMap<(String, i32), Vec<Vec<String>>> {
    let mut out: BTreeMap<(String, i32), Vec<Vec<String>>> = BTreeMap::new();
    for (meter, acc, receivers) in store.receivers().await.unwrap() {
        out.entry((meter, acc)).or_default().push(receivers);
    }
    out
}

fn check_store(rows: &BTreeMap<(String, i32), Vec<Vec<String>>>, ks: std::ops::Range<u32>) {
    for m in 0..METERS {
        for k in ks.clone() {
            let key = (format!("{:08}", meter_id(m)), k as i32);
            let copies = rows
                .get(&key)
                .unwrap_or_else(|| panic!("telegram {key:?} not stored"));
            assert_eq!(
                copies.len(),
                1,
                "telegram {key:?} stored {} times",
                copies.len()
            );
            assert_eq!(copies[0], expected_receivers(m), "receivers of {key:?}");
        }
    }
}

/// (meter, litres) -> [(topic, receivers)].
type Published = BTreeMap<(String, u32), Vec<(String, Vec<String>)>>;

/// Published readings by meter and litres.
fn published(sub: &Subscriber) -> Published {
    let mut out = Published::new();
    for msg in sub.on("wmbus/") {
        let v: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        let meter = v["meter"]["id"].as_str().unwrap().to_owned();
        let receivers = v["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["gateway"].as_str().unwrap().to_owned())
            .collect();
        out.entry((meter, synthetic_litres(&v)))
            .or_default()
            .push((msg.topic.clone(), receivers));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_central_instances_store_and_publish_each_telegram_once() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let port = free_port();
    let _broker = Mosquitto::start_with(port, |_| "max_inflight_messages 0\n".into());
    let dir = tempfile::tempdir().unwrap();
    let (a_cfg, b_cfg) = (
        write_central(dir.path(), "central-a", port, &pg.url()),
        write_central(dir.path(), "central-b", port, &pg.url()),
    );
    let sub = Subscriber::start(port, "test-readings", &["wmbus/+/meter/+"]).await;
    let mut a = start_central(&a_cfg);
    let mut b = start_central(&b_cfg);
    // Both instances are subscribed before the gateways start.
    wait_for!("both subscriptions", 20, {
        [&a, &b]
            .iter()
            .all(|d| d.log().contains("$share/wmbusd/wmbus/+/raw"))
    });
    let store = PgStore::connect(&pg.url()).await.unwrap();

    // Phase 1: no failures. Stored once, published once, receivers right on both.
    let (configs, frames1) = write_gateways(dir.path(), port, 0..PER_PHASE, 1);
    let gws = run_gateways(&configs);
    let telegrams1 = (METERS * PER_PHASE) as usize;
    wait_for!("phase 1 published", 60, {
        published(&sub).len() >= telegrams1
    });
    drop(gws);
    // A late copy would show as a second publication or a changed receivers list.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    check_store(&stored(&store).await, 0..PER_PHASE);
    let out = published(&sub);
    assert_eq!(out.len(), telegrams1);
    for ((meter, litres), copies) in &out {
        let m = litres / 1000;
        assert_eq!(
            copies.len(),
            1,
            "meter {meter} litres {litres} published {} times",
            copies.len()
        );
        let expect = expected_receivers(m);
        assert_eq!(copies[0].1, expect, "receivers of meter {meter}");
        assert_eq!(copies[0].0, format!("wmbus/{}/meter/{meter}", expect[0]));
    }
    assert!(
        frames1 > telegrams1 * 2,
        "overlapping coverage: {frames1} frames"
    );

    // Phase 2: instance A is killed mid-stream and restarted; nothing is lost.
    let (configs, _) = write_gateways(dir.path(), port, PER_PHASE..2 * PER_PHASE, 2);
    let gws = run_gateways(&configs);
    let target = (telegrams1 + telegrams1 / 3) as i64;
    wait_for!("a third of phase 2 stored", 60, {
        store.count_readings().await.unwrap() >= target
    });
    a.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a = start_central(&a_cfg);
    let total = (METERS * PER_PHASE * 2) as usize;
    wait_for!("phase 2 stored and published", 90, {
        store.count_readings().await.unwrap() >= total as i64 && published(&sub).len() >= total
    });
    drop(gws);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = stored(&store).await;
    check_store(&rows, 0..2 * PER_PHASE);
    assert_eq!(rows.len(), total);
    let out = published(&sub);
    let missing: BTreeSet<_> = (0..METERS)
        .flat_map(|m| {
            (0..2 * PER_PHASE).map(move |k| (format!("{:08}", meter_id(m)), m * 1000 + k))
        })
        .filter(|key| !out.contains_key(key))
        .collect();
    assert!(missing.is_empty(), "not published: {missing:?}");
    a.assert_running("central-a after the restart");
    b.assert_running("central-b");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Publishes `frames` raw frames as 10 gateways would (QoS 1), every telegram of 1,000
/// meters from 2–3 of them in a row; returns (frames, telegrams) once the broker
/// acknowledged all of them.
async fn publish_frames(port: u16, frames: usize) -> (usize, usize) {
    use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
    let mut o = MqttOptions::new("bench-gateways", "127.0.0.1", port);
    o.set_inflight(500).set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let acks = tokio::spawn(async move {
        let mut n = 0usize;
        while n < frames {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => n += 1,
                Ok(_) => {}
                Err(e) => panic!("bench publisher: {e}"),
            }
        }
    });
    let (mut sent, mut telegrams) = (0usize, 0usize);
    'all: for k in 0u32.. {
        for m in 0..1000u32 {
            let (at, bytes) = telegram(m, k);
            telegrams += 1;
            for gw in coverage(m) {
                let mut frame = wmbusd::frame::RadioFrame::checked(bytes.clone(), None);
                frame.rssi_dbm = Some(rssi(gw, m));
                frame.received_at = Some(at);
                let gateway = format!("gw-{gw}");
                let msg = wmbusd::central::raw::RawFrameMsg::of(&frame, &gateway);
                client
                    .publish(
                        format!("wmbus/{gateway}/raw"),
                        QoS::AtLeastOnce,
                        false,
                        msg.to_json(),
                    )
                    .await
                    .unwrap();
                sent += 1;
                if sent == frames {
                    break 'all;
                }
            }
        }
    }
    acks.await.unwrap();
    (sent, telegrams)
}

/// The benchmark behind `scripts/measure-central.sh`: frames/s of one and of two
/// instances, from frames already queued at the broker into PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_central() {
    let frames: usize = env_or("WMBUSD_BENCH_FRAMES", 100_000);
    let Some(pg) = Postgres::start() else {
        return;
    };
    let port = free_port();
    let _broker = Mosquitto::start_with(port, |_| {
        "max_inflight_messages 0\nmax_queued_messages 0\n".into()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = PgStore::connect(&pg.url()).await.unwrap();
    let mut per_instances = Vec::new();
    for instances in [1usize, 2] {
        let configs: Vec<PathBuf> = (0..instances)
            .map(|i| {
                let name = format!("bench{instances}-{i}");
                let path = write_central(dir.path(), &name, port, &pg.url());
                let text = std::fs::read_to_string(&path).unwrap()
                    + &format!("group = \"bench{instances}\"\nhold_ms = 500\n");
                std::fs::write(
                    &path,
                    text.replace("hold_ms = 3000\n", "")
                        .replace("batch_max = 200\n", ""),
                )
                .unwrap();
                path
            })
            .collect();
        // Sessions first, so that the broker queues the frames for them.
        for c in &configs {
            let mut d = start_central(c);
            wait_for!("subscription", 20, d.log().contains("$share/"));
            d.terminate().await;
        }
        store.truncate().await.unwrap();
        let (sent, telegrams) = publish_frames(port, frames).await;
        let started = Instant::now();
        let running: Vec<Daemon> = configs.iter().map(|c| start_central(c)).collect();
        let mut first = None;
        wait_for!("all telegrams stored", 300, {
            let n = store.count_readings().await.unwrap();
            if n > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            n >= telegrams as i64
        });
        let busy = first.map_or(started.elapsed(), |f| f.elapsed());
        let rate = sent as f64 / busy.as_secs_f64();
        println!(
            "MEASURE central instances={instances} frames={sent} telegrams={telegrams} seconds={:.2} frames_per_s={rate:.0}",
            busy.as_secs_f64()
        );
        per_instances.push(rate);
        drop(running);
    }
    println!(
        "MEASURE central speedup_2_over_1={:.2}",
        per_instances[1] / per_instances[0]
    );
}
