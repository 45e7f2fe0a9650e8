//! Group commit under kill -9: the real `wmbusd run` binary, a real mosquitto, a replay as
//! fast as the daemon takes it, and a SIGKILL in the middle of it.
//!
//! A reading is *acknowledged* once the daemon printed it on stdout (`--stdout` echoes a
//! reading only after the spool batch holding it is durable). After the kill, each
//! acknowledged reading must be either still in the spool or already at the subscriber
//! (the broker took it, which is when the spool may forget it). With the reading store on,
//! each of those must also be in the store, whose file must pass `PRAGMA integrity_check`.
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

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value as Json;
use support::daemon::Daemon;
use support::mosquitto::Mosquitto;
use support::subscriber::Subscriber;
use support::telegrams::synthetic;
use wmbusd::spool::{Spool, SpoolConfig};

const GW: &str = "gw-durable";
const FIRST_ID: u32 = 93_000_000;
const METERS: u32 = 10;
const LIMIT: Duration = Duration::from_secs(60);

/// `n` replay lines over `METERS` meters; with `recorded`, each line carries a time 15
/// minutes after the previous reading of its meter, so every reading has its own store
/// slot and can be looked up there.
fn write_replay(path: &Path, n: u32, recorded: bool) {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let mut text = String::with_capacity(n as usize * 90);
    for i in 0..n {
        let frame = synthetic(FIRST_ID + i % METERS, (i % 256) as u8, i);
        let line = if recorded {
            let at = start + Duration::from_secs(u64::from(i / METERS) * 900);
            wmbusd::radio::replay::format_recorded_line(at, &frame, Some(-60.0))
        } else {
            wmbusd::radio::replay::format_line(&frame, Some(-60.0))
        };
        text.push_str(&line);
    }
    std::fs::write(path, text).unwrap();
}

fn config(dir: &Path, port: u16, replay: &Path, store: bool) -> std::path::PathBuf {
    let clock = if store { "clock = \"recorded\"\n" } else { "" };
    let mut t = format!(
        "[gateway]\nid = \"{GW}\"\n\n[[radio]]\ndriver = \"replay\"\ndevice = \"{}\"\n{clock}\n\
         [mqtt]\nhost = \"127.0.0.1\"\nport = {port}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-{GW}\"\n\n\
         [spool]\ndir = \"{}\"\nfsync = \"always\"\n\n",
        replay.display(),
        dir.join("spool").display()
    );
    if store {
        t.push_str(&format!(
            "[store]\npath = \"{}\"\n\n",
            dir.join("readings.sqlite").display()
        ));
    }
    for i in 0..METERS {
        t.push_str(&format!("[[meter]]\nid = \"{}\"\n\n", FIRST_ID + i));
    }
    let path = dir.join("wmbusd.toml");
    std::fs::write(&path, t).unwrap();
    path
}

/// What a killed daemon left: what it acknowledged, what the broker has, what is spooled.
struct AfterKill {
    printed: Vec<Vec<u8>>,
    delivered: HashSet<Vec<u8>>,
    spooled: HashSet<Vec<u8>>,
}

/// Runs the replay, kills the daemon once `kill_at` readings were acknowledged, then
/// waits until the broker passed on what it had taken.
async fn kill_mid_replay(dir: &Path, n: u32, kill_at: usize, store: bool) -> AfterKill {
    let broker = Mosquitto::start();
    let topics = format!("wmbus/{GW}/meter/+");
    let sub = Subscriber::start(broker.port, "durable-sub", &[&topics]).await;
    let replay = dir.join("telegrams.txt");
    write_replay(&replay, n, store);
    let config = config(dir, broker.port, &replay, store);
    let mut d = Daemon::start_args(&[
        "run".as_ref(),
        "--stdout".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        dir.join("state.json").as_os_str(),
    ]);
    d.wait_stdout(kill_at, LIMIT).await;
    d.kill9();
    let printed: Vec<Vec<u8>> = d
        .stdout_lines()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    let mut spool = Spool::open(SpoolConfig::new(dir.join("spool"))).expect("reopen spool");
    let entries = spool.peek_from(None, 1_000_000).expect("read spool");
    assert_eq!(entries.len(), spool.pending());
    let spooled: std::collections::HashSet<Vec<u8>> =
        entries.into_iter().map(|e| e.payload).collect();
    // A message the broker acknowledged (so left the spool) reaches the subscriber shortly
    // after; on a loaded machine "shortly" can exceed any fixed pause, so wait (bounded)
    // until the count stops moving for 2 s or every printed reading not spooled arrived.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = (usize::MAX, std::time::Instant::now());
    loop {
        let seen: std::collections::HashSet<Vec<u8>> =
            sub.messages().into_iter().map(|m| m.payload).collect();
        let all_in = printed
            .iter()
            .all(|p| spooled.contains(p) || seen.contains(p));
        if seen.len() != last.0 {
            last = (seen.len(), std::time::Instant::now());
        }
        let still = last.1.elapsed() >= Duration::from_secs(2);
        if all_in || still || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered = sub.messages().into_iter().map(|m| m.payload).collect();
    AfterKill {
        printed,
        delivered,
        spooled,
    }
}

impl AfterKill {
    /// Every acknowledged reading is delivered or spooled; returns how many were
    /// acknowledged.
    fn assert_nothing_acknowledged_lost(&self, n: u32) -> usize {
        let lost: Vec<&Vec<u8>> = self
            .printed
            .iter()
            .filter(|p| !self.delivered.contains(*p) && !self.spooled.contains(*p))
            .collect();
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged reading(s) lost, first: {}",
            lost.len(),
            self.printed.len(),
            String::from_utf8_lossy(lost[0])
        );
        assert!(
            self.printed.len() < n as usize,
            "the kill came mid-stream ({} acknowledged)",
            self.printed.len()
        );
        eprintln!(
            "kill -9: {} acknowledged, {} delivered, {} spooled, 0 lost",
            self.printed.len(),
            self.delivered.len(),
            self.spooled.len()
        );
        self.printed.len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_group_commit_loses_no_acknowledged_reading() {
    const N: u32 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let after = kill_mid_replay(dir.path(), N, 3_000, false).await;
    let acknowledged = after.assert_nothing_acknowledged_lost(N);
    assert!(acknowledged >= 3_000);
    // Group commit: many readings per batch, so the kill hit batches in flight, and the
    // readings spooled but not yet printed are the batch being echoed or written.
    let known: HashSet<&Vec<u8>> = after.printed.iter().collect();
    let unprinted = after.spooled.iter().filter(|s| !known.contains(s)).count();
    eprintln!("spooled but not yet acknowledged at the kill: {unprinted}");
}

/// `(meter id, received_at)` of a reading JSON.
fn key_of(payload: &[u8]) -> (String, String) {
    let v: Json = serde_json::from_slice(payload).expect("reading JSON");
    (
        v["meter"]["id"].as_str().unwrap().to_owned(),
        v["received_at"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_the_store_keeps_every_spooled_reading_in_it() {
    const N: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let after = kill_mid_replay(dir.path(), N, 2_000, true).await;
    after.assert_nothing_acknowledged_lost(N);
    let conn = rusqlite::Connection::open(dir.path().join("readings.sqlite")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let stored: HashSet<(String, String)> = conn
        .prepare("SELECT meter_id, received_at FROM readings")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Everything the spool acknowledged: what it still holds, what it handed to the
    // broker, what was printed.
    let acknowledged: HashSet<&Vec<u8>> = after
        .spooled
        .iter()
        .chain(&after.delivered)
        .chain(&after.printed)
        .collect();
    let missing: Vec<(String, String)> = acknowledged
        .iter()
        .map(|p| key_of(p))
        .filter(|k| !stored.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} spool-acknowledged reading(s) not in the store, first {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    eprintln!(
        "store after kill -9: integrity ok, {} row(s), all {} spool-acknowledged reading(s) in it",
        stored.len(),
        acknowledged.len()
    );
}
