//! Replay protection: mode-7 telegrams built with the library's emitters and crypto, a
//! replayed one (old message counter) rejected as `replay` by the pipeline, the daemon
//! (real mosquitto, state across restarts), `listen` and `decode --explain`.
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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value as Json;
use support::daemon::{Daemon, BIN};
use support::mosquitto::Mosquitto;
use support::subscriber::Subscriber;
use support::telegrams::{mode7, synthetic_litres};
use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::pipeline::{Outcome, Pipeline, PipelineConfig};

const METER: u32 = 93_000_001;
const KEY: [u8; 16] = [
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0x0F,
];
const GW: &str = "gw-replay";

fn key_hex() -> String {
    hex::encode_upper(KEY)
}

fn telegram(counter: u32, litres: u32) -> Vec<u8> {
    mode7(METER, &KEY, counter, (counter % 256) as u8, litres)
}

fn decoder() -> Decoder {
    let mut keys = KeyStore::new();
    keys.insert_hex(&METER.to_string(), &key_hex()).unwrap();
    Decoder::new(keys)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
}

fn frame(bytes: Vec<u8>, secs: u64) -> RadioFrame {
    RadioFrame {
        received_at: Some(at(secs)),
        ..RadioFrame::checked(bytes, None)
    }
}

fn kind(outcome: &Outcome) -> Option<FailureKind> {
    match outcome {
        Outcome::Failed(e) => Some(e.kind),
        _ => None,
    }
}

/// Counters must go forward; an old one within the reset time is a replay, counted per
/// meter and in the totals; after the reset time it is a restart.
#[test]
fn pipeline_rejects_an_old_counter_and_accepts_a_restart_after_the_reset_time() {
    let mut decoder = decoder();
    let mut pipeline = Pipeline::new(PipelineConfig {
        dedupe_window: Duration::ZERO,
        ..PipelineConfig::default()
    });
    let now = Instant::now();
    let id = METER.to_string();
    let mut feed =
        |bytes: Vec<u8>, secs: u64| pipeline_process(&mut pipeline, &mut decoder, bytes, secs, now);
    assert!(matches!(feed(telegram(10, 1), 0).0, Outcome::Reading(_)));
    assert!(matches!(feed(telegram(11, 2), 16).0, Outcome::Reading(_)));
    // The first telegram sent again, and an older one: both replays; only the first is
    // to be logged.
    let (o, repeated) = feed(telegram(10, 1), 32);
    assert_eq!((kind(&o), repeated), (Some(FailureKind::Replay), false));
    let (o, repeated) = feed(telegram(9, 0), 48);
    assert_eq!((kind(&o), repeated), (Some(FailureKind::Replay), true));
    if let Outcome::Failed(e) = &o {
        assert!(
            e.message.contains("9") && e.message.contains("11"),
            "{}",
            e.message
        );
        assert_eq!(e.meter.as_deref(), Some(id.as_str()));
    }
    // The meter restarted, counting from 1: rejected until the last accepted counter is
    // 24 h old, then accepted, and counting goes on from there.
    assert_eq!(
        kind(&feed(telegram(1, 3), 23 * 3600).0),
        Some(FailureKind::Replay)
    );
    assert!(matches!(
        feed(telegram(1, 3), 16 + 24 * 3600).0,
        Outcome::Reading(_)
    ));
    assert!(matches!(
        feed(telegram(2, 4), 32 + 24 * 3600).0,
        Outcome::Reading(_)
    ));
    assert_eq!(
        kind(&feed(telegram(1, 3), 48 + 24 * 3600).0),
        Some(FailureKind::Replay)
    );

    let stats = pipeline.meter(&id).unwrap();
    assert_eq!(stats.failed.get("replay"), Some(&4));
    assert_eq!(stats.decoded, 4);
    assert_eq!(stats.last_outcome.as_deref(), Some("replay"));
    assert_eq!(pipeline.totals().failed.get("replay"), Some(&4));
    assert_eq!(pipeline.replay_state()[&id].counter, Some(2));
}

fn pipeline_process(
    pipeline: &mut Pipeline,
    decoder: &mut Decoder,
    bytes: Vec<u8>,
    secs: u64,
    now: Instant,
) -> (Outcome, bool) {
    let outcome = pipeline.process(decoder, &frame(bytes, secs), now);
    (outcome, pipeline.replay_repeated())
}

/// Telegrams heard again within the dedupe window stay duplicates, not replays; plaintext
/// meters (no authenticated counter) are never judged.
#[test]
fn copies_in_the_dedupe_window_are_duplicates_and_plaintext_is_not_judged() {
    let mut decoder = decoder();
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let now = Instant::now();
    let first = telegram(10, 1);
    assert!(matches!(
        pipeline.process(&mut decoder, &frame(first.clone(), 0), now),
        Outcome::Reading(_)
    ));
    assert!(matches!(
        pipeline.process(&mut decoder, &frame(first, 1), now),
        Outcome::Duplicate { .. }
    ));
    let plain = support::telegrams::synthetic(93_000_002, 5, 1);
    for secs in [0, 16] {
        let f = frame(plain.clone(), secs);
        let o = pipeline.process(&mut decoder, &f, now + Duration::from_secs(60 * secs));
        assert!(matches!(o, Outcome::Reading(_)), "{o:?}");
    }
}

fn write_config(dir: &Path, port: u16, replay: &Path) -> PathBuf {
    let text = format!(
        "[gateway]\nid = \"{GW}\"\n\n[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nclock = \"recorded\"\n\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-{GW}\"\nkeep_alive_secs = 5\n\n\
         [spool]\ndir = \"{}\"\n\n[pipeline]\ndedupe_window_secs = 0\n\n\
         [health]\npublish_interval_secs = 1\n\n[[meter]]\nid = \"{METER}\"\nkey = \"{}\"\n",
        replay.display(),
        dir.join("spool").display(),
        key_hex()
    );
    let path = dir.join("wmbusd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replay file lines: recorded time, RSSI, hex.
fn write_lines(path: &Path, telegrams: &[(u64, Vec<u8>)]) {
    let text: String = telegrams
        .iter()
        .map(|(secs, t)| {
            format!(
                "{};-60;{}\n",
                wmbusd::timefmt::rfc3339(at(*secs)),
                hex::encode_upper(t)
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

async fn run_replay(config: &Path, state: &Path) -> Daemon {
    let mut d = Daemon::start_args(&[
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        state.as_os_str(),
        "--exit-after-replay".as_ref(),
    ]);
    let exit = d.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}; log:\n{}", d.log());
    d
}

fn litres_of(sub: &Subscriber) -> Vec<u32> {
    sub.on(&format!("wmbus/{GW}/meter/{METER}"))
        .iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .filter_map(|m| serde_json::from_slice::<Json>(&m.payload).ok())
        .map(|v| synthetic_litres(&v))
        .collect()
}

/// The daemon publishes the new telegrams, rejects the replayed ones (counted in the
/// meter's health, logged once), still knows the last counter after a restart of the
/// daemon, and accepts a restart of the meter a day later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_rejects_replays_and_remembers_counters_across_restarts() {
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "replay-sub", &[&format!("wmbus/{GW}/#")]).await;
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    let state = dir.path().join("state.json");
    let config = write_config(dir.path(), broker.port, &replay);
    write_lines(
        &replay,
        &[
            (0, telegram(10, 1)),
            (16, telegram(11, 2)),
            (32, telegram(10, 1)),
            (48, telegram(10, 1)),
        ],
    );
    let d = run_replay(&config, &state).await;
    let replays = d.log_lines_with(&[
        "replay",
        &METER.to_string(),
        "not above the last accepted 11",
    ]);
    assert_eq!(replays.len(), 1, "log:\n{}", d.log());
    let health_topic = format!("wmbus/{GW}/meter/{METER}/health");
    sub.wait_until("readings and health", Duration::from_secs(15), |_| {
        litres_of(&sub).len() == 2
            && sub.last_on(&health_topic).is_some_and(|m| {
                serde_json::from_slice::<Json>(&m.payload).is_ok_and(|v| v["failed"]["replay"] == 2)
            })
    })
    .await;
    assert_eq!(litres_of(&sub), [1, 2]);
    let health: Json =
        serde_json::from_slice(&sub.last_on(&health_topic).unwrap().payload).unwrap();
    assert_eq!(health["message_counter"], 11, "{health}");
    let saved: Json = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["replay"][METER.to_string()][0], 11, "{saved}");

    // Restarted: the counter is still known, so 11 sent again is a replay; 12 is new.
    // A day later the meter itself restarted, counting from 1: accepted as a restart.
    let day = 24 * 3600;
    write_lines(
        &replay,
        &[
            (64, telegram(11, 2)),
            (80, telegram(12, 3)),
            (96 + day, telegram(1, 4)),
        ],
    );
    let d = run_replay(&config, &state).await;
    assert_eq!(
        d.log_lines_with(&["replay", "not above the last accepted 11"])
            .len(),
        1,
        "log:\n{}",
        d.log()
    );
    assert_eq!(
        d.log_lines_with(&["went back from 12 to 1", "accepted as a restart"])
            .len(),
        1,
        "log:\n{}",
        d.log()
    );
    sub.wait_until("the new readings", Duration::from_secs(15), |_| {
        litres_of(&sub).len() == 4
    })
    .await;
    assert_eq!(litres_of(&sub), [1, 2, 3, 4]);
}

/// `listen` names the replayed telegram in its state column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_names_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    write_lines(
        &replay,
        &[
            (0, telegram(20, 1)),
            (16, telegram(21, 2)),
            (32, telegram(20, 1)),
        ],
    );
    let config = write_config(dir.path(), 1, &replay);
    let out = tokio::process::Command::new(BIN)
        .args(["-q", "listen", "--json", "--duration", "3", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("listen stops after --duration")
        .expect("listen runs");
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Json> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&str> = lines.iter().map(|l| l["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["ok", "ok", "replay"], "{lines:?}");
    assert_eq!(lines[2]["kind"], "replay");
}

fn explain(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["decode", "--explain", "--key", &key_hex()])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `decode --explain` judges the counter against `--last-counter` or the daemon's state
/// file, and against the telegrams before it in the same call.
#[test]
fn explain_names_a_replay() {
    let old = hex::encode_upper(telegram(10, 1));
    let new = hex::encode_upper(telegram(11, 2));
    let (code, text) = explain(&["--last-counter", "11", &old]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "replay: message counter 10 of meter 93000001 is not above the last accepted 11"
        ),
        "{text}"
    );
    let (code, text) = explain(&["--last-counter", "9", &old]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("message counter 10 is above the last accepted 9"),
        "{text}"
    );
    // Without the option nothing is judged; in one call the second telegram counts on
    // from the first.
    assert_eq!(explain(&[&old]).0, Some(0));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        &state,
        format!(r#"{{"replay":{{"93000001":[10,10,{now}]}}}}"#),
    )
    .unwrap();
    let state = state.to_str().unwrap();
    let (code, text) = explain(&["--state-file", state, &old]);
    assert_eq!(code, Some(1), "{text}");
    let (code, text) = explain(&["--state-file", state, &new, &new]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("not above the last accepted 11"), "{text}");
    // The option belongs to --explain.
    let out = Command::new(BIN)
        .args(["decode", "--last-counter", "3", &old])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Two radios hear the same telegrams with different RSSI: one reading each, with both
/// receivers, best first, and the best RSSI as the reading's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_radios_hearing_one_telegram_give_one_reading_with_both_receivers() {
    const N: u32 = 3;
    let broker = Mosquitto::start();
    let sub = Subscriber::start(
        broker.port,
        "receivers-sub",
        &[&format!("wmbus/{GW}/meter/#")],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let far = dir.path().join("far.txt");
    let near = dir.path().join("near.txt");
    for (path, rssi) in [(&far, -81.5), (&near, -55.0)] {
        let text: String = (0..N)
            .map(|i| {
                let t = support::telegrams::synthetic(93_000_010, i as u8, i);
                format!("{rssi};{}\n", hex::encode_upper(t))
            })
            .collect();
        std::fs::write(path, text).unwrap();
    }
    let radio = |p: &Path| {
        format!(
            "[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nreplay_interval_ms = 400\n\n",
            p.display()
        )
    };
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"{GW}\"\n\n{}{}\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-{GW}\"\n\n\
             [spool]\ndir = \"{}\"\n\n[pipeline]\ngather_ms = 250\n",
            radio(&far),
            radio(&near),
            broker.port,
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let d = run_replay(&config, &dir.path().join("state.json")).await;
    let readings = || -> Vec<Json> {
        sub.on(&format!("wmbus/{GW}/meter/93000010"))
            .iter()
            .filter(|m| !m.topic.ends_with("/health"))
            .filter_map(|m| serde_json::from_slice(&m.payload).ok())
            .collect()
    };
    sub.wait_until("the readings", Duration::from_secs(15), |_| {
        readings().len() >= N as usize
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let readings = readings();
    assert_eq!(readings.len(), N as usize, "log:\n{}", d.log());
    for (i, r) in readings.iter().enumerate() {
        assert_eq!(synthetic_litres(r), i as u32);
        let expected = serde_json::json!([
            {"radio": near.display().to_string(), "rssi_dbm": -55.0},
            {"radio": far.display().to_string(), "rssi_dbm": -81.5},
        ]);
        assert_eq!(r["receivers"], expected, "{r}");
        assert_eq!(r["rssi_dbm"], -55.0);
    }
}

/// Newly heard meters do not rewrite the state file per telegram: 100 meters heard for the
/// first time over 2 s cause a handful of whole-file writes (by the saver thread, at most
/// one a second), not one each, and the file written at shutdown holds every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_meters_do_not_rewrite_the_state_file_per_telegram() {
    use std::os::unix::fs::MetadataExt;
    const METERS: u32 = 100;
    let dir = tempfile::tempdir().unwrap();
    let replay = dir.path().join("telegrams.txt");
    support::telegrams::write_replay(&replay, 94_000_000, METERS, METERS);
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"{GW}\"\n\n[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\nreplay_interval_ms = 20\n",
            replay.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state.json");
    let mut d = Daemon::start(&config, &state);
    // Every state write replaces the file (write, rename): a new file with its own
    // modification time (inode numbers alone are reused).
    let mut inodes = std::collections::BTreeSet::new();
    let watch_until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < watch_until {
        if let Ok(meta) = std::fs::metadata(&state) {
            inodes.insert((meta.ino(), meta.mtime(), meta.mtime_nsec()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(d.stdout_lines().len(), METERS as usize, "log:\n{}", d.log());
    // The start, then at most one a second for the learned compact formats.
    assert!(
        (1..=5).contains(&inodes.len()),
        "{} state writes for {METERS} new meters",
        inodes.len()
    );
    assert!(d.terminate().await.success(), "log:\n{}", d.log());
    let saved: Json = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["meters"].as_object().unwrap().len(), METERS as usize);
}
