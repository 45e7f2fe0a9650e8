//! Acceptance tests of the daemon: the real `wmbusd run` binary, a real mosquitto broker on
//! a free loopback port, and dongle simulators speaking the iM871A / AMB8465 wire protocols
//! on real pseudo terminals behind a stable symlink (like /dev/serial/by-id).
//!
//! Every wait is bounded. Daemon logs are printed when a test fails.
//!
//! The daemon benchmark lives in tests/daemon_scale.rs (`scripts/measure-daemon.sh`).
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use support::daemon::{run_to_exit, Daemon, TestConfig};
use support::mosquitto::{free_port, Mosquitto};
use support::sim::{self, Amb8465Sim, Im871aSim, Pty, SimInput};
use support::subscriber::{Message, Subscriber};
use support::telegrams::{synthetic, synthetic_litres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;
use wmbusd::radio::{amb8465, im871a};
use wmbusd::spool::{Spool, SpoolConfig};

const GW: &str = "gw-e2e";

/// OMS Vol.2 Annex N.1.1, security profile A (protocol.md §4.2.1): gas meter 12345678,
/// volume 28504.27 m3.
const ANNEX_N: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const ANNEX_N_KEY: &str = "0102030405060708090A0B0C0D0E0F11";

/// Bounds for waits that should finish in well under a second on an idle machine.
const SHORT: Duration = Duration::from_secs(15);
/// Bounds for waits that include an MQTT reconnect back-off (1, 2, 4, ... s).
const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Corpus and telegrams

/// One corpus entry: telegram bytes, meter id, key.
#[derive(Clone, Debug)]
struct CorpusTelegram {
    meter_id: String,
    key: Option<String>,
    bytes: Vec<u8>,
    expected: Json,
}

fn corpus() -> Vec<CorpusTelegram> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wmbusmeters-public.jsonl");
    let text = std::fs::read_to_string(&path).expect("read corpus");
    text.lines()
        .map(|line| {
            let row: Json = serde_json::from_str(line).expect("corpus line is JSON");
            CorpusTelegram {
                meter_id: row["meter_id"].as_str().expect("meter_id").to_owned(),
                key: row["key"].as_str().map(str::to_owned),
                bytes: hex::decode(row["telegram"].as_str().expect("telegram")).expect("hex"),
                expected: row["expected"].clone(),
            }
        })
        .collect()
}

/// The corpus entry of `meter_id` (the first; it must be a wireless telegram).
fn corpus_entry(all: &[CorpusTelegram], meter_id: &str) -> CorpusTelegram {
    all.iter()
        .find(|t| t.meter_id == meter_id)
        .unwrap_or_else(|| panic!("meter {meter_id} not in the corpus"))
        .clone()
}

/// What a dongle sends for an on-air frame: iM871A and AMB8465 check and remove the DLL
/// CRCs (a corpus telegram pasted with format-B CRCs is stripped here, as the dongle
/// would; the daemon never strips a dongle's frame again).
fn telegram(bytes: &[u8], rssi_raw: u8) -> SimInput {
    use wmbusd::wire::dll::{canonicalize, CrcState};
    use wmbusd::wire::link::FrameFormat;
    // Synthetic and corpus frames are CRC-less unless their CRCs verify (the corpus keeps
    // them in a few format-B frames): no typed-hex guess, which a CRC-less frame can trip.
    let mut frame = Vec::new();
    let with_crcs = [FrameFormat::B, FrameFormat::A]
        .into_iter()
        .map(CrcState::Present)
        .find(|&state| canonicalize(bytes, state, false, &mut frame).is_ok());
    canonicalize(
        bytes,
        with_crcs.unwrap_or(CrcState::Checked(None)),
        false,
        &mut frame,
    )
    .expect("corpus telegram normalises");
    SimInput::Telegram { frame, rssi_raw }
}

// ---------------------------------------------------------------------------------------
// Simulated dongles

type SimTask = JoinHandle<std::io::Result<()>>;

struct Dongle {
    tx: mpsc::Sender<SimInput>,
    task: SimTask,
}

impl Dongle {
    /// A fresh pty behind `link` with a simulated iM871A on it.
    fn im871a(link: &Path) -> Dongle {
        let pty = Pty::open().expect("pty");
        sim::point_symlink(link, pty.slave_path()).expect("symlink to pty");
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
        Dongle { tx, task }
    }

    fn amb8465(link: &Path) -> Dongle {
        let pty = Pty::open().expect("pty");
        sim::point_symlink(link, pty.slave_path()).expect("symlink to pty");
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(sim::run_amb8465_sim(pty, rx, Amb8465Sim::default()));
        Dongle { tx, task }
    }

    async fn feed(&self, input: SimInput) {
        tokio::time::timeout(SHORT, self.tx.send(input))
            .await
            .expect("simulator accepts input in time")
            .expect("simulator running");
    }

    /// Unplug: the simulator stops and both pty ends close.
    async fn unplug(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn meter_topic_prefix() -> String {
    format!("wmbus/{GW}/meter/")
}

fn status_topic() -> String {
    format!("wmbus/{GW}/status")
}

/// Readings (the per-meter health documents share the topic prefix).
fn meter_messages(sub: &Subscriber) -> Vec<Message> {
    sub.on(&meter_topic_prefix())
        .into_iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .collect()
}

fn parse(m: &Message) -> Json {
    serde_json::from_slice(&m.payload).expect("reading payload is JSON")
}

/// Waits until the retained status topic last said `what`.
async fn wait_status(sub: &Subscriber, what: &str) {
    let topic = status_topic();
    sub.wait_until(&format!("status {what}"), LONG, |msgs| {
        msgs.iter()
            .rev()
            .find(|m| m.topic == topic)
            .is_some_and(|m| m.payload == what.as_bytes())
    })
    .await;
}

fn key_store(keys: &[(&str, &str)]) -> KeyStore {
    let mut ks = KeyStore::new();
    for (id, key) in keys {
        ks.insert_hex(id, key).expect("test key");
    }
    ks
}

struct Rig {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    state_file: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("wmbusd.toml");
        let state_file = dir.path().join("state.json");
        Rig {
            dir,
            config_path,
            state_file,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self, port: u16) -> TestConfig {
        TestConfig::new(self.dir.path(), GW, port)
    }

    fn start(&self, cfg: &TestConfig) -> Daemon {
        cfg.write(&self.config_path);
        Daemon::start(&self.config_path, &self.state_file)
    }
}

/// Waits until the daemon logged `n` dongles ready in total.
async fn wait_ready(d: &mut Daemon, n: usize) {
    d.wait_log_count(&[": ready ("], n, SHORT).await;
}

// ---------------------------------------------------------------------------------------
// 1. Real telegrams through both dongles to the broker

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_telegrams_via_im871a_and_amb8465_reach_the_broker() {
    let corpus = corpus();
    // iM871A: OMS Annex N (mode 5), a long-header mode 5 water meter, a mode 5 heat cost
    // allocator, a mode 7 + ELL heat meter in frame format B, a plaintext electricity meter.
    let via_im871a: Vec<CorpusTelegram> = {
        let mut v = vec![CorpusTelegram {
            meter_id: "12345678".into(),
            key: Some(ANNEX_N_KEY.into()),
            bytes: hex::decode(ANNEX_N).expect("hex"),
            expected: Json::Null,
        }];
        v.extend(
            ["61070071", "80081809", "43054304", "33221100"]
                .iter()
                .map(|id| corpus_entry(&corpus, id)),
        );
        v
    };
    // AMB8465: plaintext, ELL + mode 5, and mode 5 meters of other makers.
    let via_amb8465: Vec<CorpusTelegram> =
        ["65656565", "22917370", "23800604", "20096221", "50496629"]
            .iter()
            .map(|id| corpus_entry(&corpus, id))
            .collect();
    let all: Vec<&CorpusTelegram> = via_im871a.iter().chain(&via_amb8465).collect();
    let keys: Vec<(&str, &str)> = all
        .iter()
        .filter_map(|t| t.key.as_deref().map(|k| (t.meter_id.as_str(), k)))
        .collect();

    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link_a = rig.path("usb-im871a-if00");
    let link_b = rig.path("usb-amb8465-if00");
    let im = Dongle::im871a(&link_a);
    let amber = Dongle::amb8465(&link_b);
    let mut cfg = rig
        .config(broker.port)
        .radio("im871a", &link_a)
        .radio("amb8465", &link_b);
    for t in &all {
        cfg = cfg.meter(&t.meter_id, t.key.as_deref());
    }
    let sub = Subscriber::start(
        broker.port,
        "e2e-readings",
        &[&format!("{}#", meter_topic_prefix()), &status_topic()],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 2).await;
    wait_status(&sub, "online").await;

    for t in &via_im871a {
        im.feed(telegram(&t.bytes, 0x9D)).await;
    }
    for t in &via_amb8465 {
        amber.feed(telegram(&t.bytes, 0xC0)).await;
    }
    // The Annex N telegram heard by both receivers is published once.
    amber.feed(telegram(&via_im871a[0].bytes, 0xC0)).await;
    let total = all.len();
    sub.wait_until("one reading per telegram", SHORT, |_| {
        meter_messages(&sub).len() >= total
    })
    .await;
    // Nothing extra arrives afterwards: no duplicates in a healthy run, and the telegram
    // both dongles heard is published once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msgs = meter_messages(&sub);
    assert_eq!(msgs.len(), total, "exactly one reading per telegram");

    // Each reading equals what the library decoder makes of the same bytes.
    let mut decoder = Decoder::new(key_store(&keys));
    let mut by_meter: HashMap<String, Json> = HashMap::new();
    for m in &msgs {
        let reading = parse(m);
        let id = reading["meter"]["id"]
            .as_str()
            .expect("meter id")
            .to_owned();
        assert_eq!(m.topic, format!("{}{id}", meter_topic_prefix()));
        assert!(
            by_meter.insert(id, reading).is_none(),
            "one reading per meter"
        );
    }
    for t in &all {
        let expected = decoder
            .decode(&RadioFrame::new(t.bytes.clone()))
            .unwrap_or_else(|e| panic!("library decodes {}: {e:?}", t.meter_id));
        let expected = serde_json::to_value(&expected).expect("reading to JSON");
        let got = by_meter
            .get(&t.meter_id)
            .unwrap_or_else(|| panic!("no reading of meter {}", t.meter_id));
        for field in ["meter", "records", "security", "status", "access_number"] {
            assert_eq!(got[field], expected[field], "meter {}: {field}", t.meter_id);
        }
        assert!(got["rssi_dbm"].is_number(), "RSSI of {}", t.meter_id);
        assert!(got["received_at"].is_string(), "time of {}", t.meter_id);
    }
    // RSSI as each dongle reports it.
    let rssi = |id: &str| by_meter[id]["rssi_dbm"].as_f64().expect("rssi");
    assert!((rssi("61070071") - f64::from(im871a::rssi_to_dbm(0x9D))).abs() < 0.01);
    assert!((rssi("65656565") - f64::from(amb8465::rssi_to_dbm(0xC0))).abs() < 0.01);

    // Absolute values, independent of the decoder.
    let value_of = |id: &str, quantity: &str| -> String {
        by_meter[id]["records"]
            .as_array()
            .expect("records")
            .iter()
            .find(|r| r["quantity"] == quantity && r["storage"] == 0)
            .unwrap_or_else(|| panic!("{id}: no {quantity} record"))["value"]
            .to_string()
    };
    assert_eq!(value_of("12345678", "volume"), "28504.27");
    assert_eq!(value_of("33221100", "energy"), "5249.17");
    let hydrus = corpus_entry(&corpus, "65656565");
    assert_eq!(
        value_of("65656565", "volume"),
        hydrus.expected["total_m3"].to_string()
    );
    assert_eq!(by_meter["43054304"]["security"]["mode"], 7);
    assert_eq!(by_meter["43054304"]["security"]["verified_by"], "mac");

    // Retained online while running, offline after SIGTERM.
    let status = sub.last_on(&status_topic()).expect("status seen");
    assert_eq!(status.payload, b"online");
    let early = Subscriber::start(broker.port, "e2e-early", &[&status_topic()]).await;
    early
        .wait_until("retained online", SHORT, |msgs| {
            msgs.iter()
                .any(|m| m.topic == status_topic() && m.retain && m.payload == b"online")
        })
        .await;
    let exit = d.terminate().await;
    assert!(exit.success(), "clean stop: {exit:?}");
    wait_status(&sub, "offline").await;
    let late = Subscriber::start(broker.port, "e2e-late", &[&status_topic()]).await;
    late.wait_until("retained offline", SHORT, |msgs| {
        msgs.iter()
            .any(|m| m.topic == status_topic() && m.retain && m.payload == b"offline")
    })
    .await;
    drop((im, amber));
}

// ---------------------------------------------------------------------------------------
// 2. Broker outage with 1,000 telegrams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_with_1000_telegrams_loses_nothing() {
    const N: u32 = 1000;
    let mut broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let mut cfg = rig.config(broker.port).radio("im871a", &link);
    // Many small readings: fsync in batches (a killed daemon still loses nothing).
    cfg.spool_extra = "fsync = \"interval\"\nfsync_interval_ms = 200".into();
    let sub = Subscriber::start(
        broker.port,
        "e2e-outage",
        &[&format!("{}#", meter_topic_prefix()), &status_topic()],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    wait_status(&sub, "online").await;

    broker.stop();
    d.wait_log(&["broker 127.0.0.1", "unreachable"], SHORT)
        .await;
    for i in 0..N {
        // Ten meters, access numbers wrapping, a distinct value per telegram.
        let frame = synthetic(90_000_000 + i % 10, (i % 256) as u8, 1000 + i);
        im.feed(telegram(&frame, 0x80)).await;
    }
    d.wait_stdout(N as usize, LONG).await;
    broker.restart();

    let expected: HashSet<u32> = (0..N).map(|i| 1000 + i).collect();
    sub.wait_until("all 1000 readings after the outage", LONG, |_| {
        let got: HashSet<u32> = meter_messages(&sub)
            .iter()
            .map(|m| synthetic_litres(&parse(m)))
            .collect();
        got.is_superset(&expected)
    })
    .await;
    let msgs = meter_messages(&sub);
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for m in &msgs {
        let reading = parse(m);
        let litres = synthetic_litres(&reading);
        let i = litres - 1000;
        let id = format!("{:08}", 90_000_000 + i % 10);
        assert_eq!(reading["meter"]["id"], id.as_str());
        assert_eq!(m.topic, format!("{}{id}", meter_topic_prefix()));
        assert_eq!(reading["access_number"], (i % 256));
        *counts.entry(litres).or_default() += 1;
    }
    let got: HashSet<u32> = counts.keys().copied().collect();
    assert_eq!(got, expected, "exactly the 1000 readings, no strangers");
    let duplicates = msgs.len() - counts.len();
    eprintln!(
        "broker outage: {} distinct readings, {} message(s), {duplicates} duplicate(s)",
        counts.len(),
        msgs.len()
    );
    let exit = d.terminate().await;
    assert!(exit.success(), "clean stop: {exit:?}");
    drop(im);
}

// ---------------------------------------------------------------------------------------
// 3. SIGKILL mid-stream, restart: everything spooled arrives

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_delivers_the_spool() {
    const N: u32 = 300;
    let mut broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let cfg = rig.config(broker.port).radio("im871a", &link);
    let sub = Subscriber::start(
        broker.port,
        "e2e-kill",
        &[&format!("{}#", meter_topic_prefix())],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    // The daemon published `online`, so it is connected; now take the broker away so the
    // readings pile up in the spool while the publisher keeps trying.
    d.wait_log(&["started: gateway"], SHORT).await;
    broker.stop();
    d.wait_log(&["unreachable"], SHORT).await;

    // Only three quarters of the stream are sent, so the kill comes before its end however
    // fast the daemon spools (the rest would go to the restarted daemon on the same pty).
    let feeder = {
        let tx = im.tx.clone();
        tokio::spawn(async move {
            for i in 0..N * 3 / 4 {
                let frame = synthetic(91_000_000 + i % 7, (i % 256) as u8, 5000 + i);
                if tx.send(telegram(&frame, 0x80)).await.is_err() {
                    break;
                }
            }
        })
    };
    // Kill in the middle of the stream.
    d.wait_stdout(N as usize / 2, LONG).await;
    d.kill9();
    // Complete: kill9 waits until the daemon's stdout reached EOF.
    let printed_at_kill = d.stdout_lines().len();
    let _ = feeder.await;

    // What the killed daemon left in the spool: at least every reading it had printed
    // (it prints a reading only once it is spooled).
    let spooled: HashSet<Vec<u8>> = {
        let mut spool = Spool::open(SpoolConfig::new(&cfg.spool_dir)).expect("reopen spool");
        let pending = spool.pending();
        let entries = spool.peek_from(None, 100_000).expect("read spool");
        assert_eq!(entries.len(), pending);
        assert!(
            pending >= printed_at_kill,
            "spool holds {pending} reading(s), daemon had printed {printed_at_kill}"
        );
        assert!(
            pending < N as usize,
            "the kill came mid-stream ({pending} spooled)"
        );
        entries.into_iter().map(|e| e.payload).collect()
    };
    eprintln!(
        "SIGKILL: {} reading(s) in the spool ({printed_at_kill} printed at kill time)",
        spooled.len()
    );

    // Restart with the broker still down, then stop cleanly: the readings stay spooled.
    let mut d2 = rig.start(&cfg);
    let line = d2
        .wait_log(&["from an earlier run wait for the broker"], SHORT)
        .await;
    assert!(
        line.contains(&format!("spool: {} reading(s)", spooled.len())),
        "{line}"
    );
    d2.wait_log(&["unreachable"], SHORT).await;
    let exit = d2.terminate().await;
    // Stopped with readings left: exit status 75, and the log says how many stay spooled.
    assert_eq!(exit.code(), Some(75), "stop without a broker: {exit:?}");
    d2.wait_log(
        &[&format!(
            "{} reading(s) not delivered; they stay spooled",
            spooled.len()
        )],
        SHORT,
    )
    .await;

    broker.restart();
    let mut d2 = rig.start(&cfg);
    sub.wait_until("every spooled reading after restart", LONG, |_| {
        let got: HashSet<Vec<u8>> = meter_messages(&sub)
            .into_iter()
            .map(|m| m.payload)
            .collect();
        got.is_superset(&spooled)
    })
    .await;
    let exit = d2.terminate().await;
    assert!(exit.success());
    drop(im);
}

/// The same with the broker up: the daemon is killed while it publishes. Every reading it
/// had accepted (printed) reaches the subscriber, before the kill or from the spool after
/// the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_publishing_then_restart_loses_nothing_accepted() {
    const N: u32 = 400;
    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let cfg = rig.config(broker.port).radio("im871a", &link);
    let sub = Subscriber::start(
        broker.port,
        "e2e-kill-live",
        &[&format!("{}#", meter_topic_prefix()), &status_topic()],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    wait_status(&sub, "online").await;

    let feeder = {
        let tx = im.tx.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let frame = synthetic(93_000_000 + i % 7, (i % 256) as u8, 7000 + i);
                if tx.send(telegram(&frame, 0x80)).await.is_err() {
                    break;
                }
            }
        })
    };
    sub.wait_until("publishing under way", LONG, |_| {
        meter_messages(&sub).len() >= 50
    })
    .await;
    d.kill9();
    let _ = feeder.await;
    let printed = d.stdout_lines();
    let delivered_before = meter_messages(&sub).len();
    assert!(
        delivered_before < N as usize,
        "the kill came mid-stream ({delivered_before} delivered)"
    );
    // The last will tells the world the gateway vanished.
    wait_status(&sub, "offline").await;

    let mut d2 = rig.start(&cfg);
    wait_ready(&mut d2, 1).await;
    // A reading is printed once it is spooled: every printed reading must arrive.
    let accepted: HashSet<Vec<u8>> = printed.iter().map(|l| l.as_bytes().to_vec()).collect();
    sub.wait_until("every accepted reading after restart", LONG, |_| {
        let got: HashSet<Vec<u8>> = meter_messages(&sub)
            .into_iter()
            .map(|m| m.payload)
            .collect();
        got.is_superset(&accepted)
    })
    .await;
    let msgs = meter_messages(&sub);
    let distinct: HashSet<&[u8]> = msgs.iter().map(|m| m.payload.as_slice()).collect();
    eprintln!(
        "SIGKILL while publishing: {} accepted, {delivered_before} delivered before the kill, \
         {} message(s) in total, {} duplicate(s)",
        accepted.len(),
        msgs.len(),
        msgs.len() - distinct.len()
    );
    let exit = d2.terminate().await;
    assert!(exit.success());
    drop(im);
}

/// A compact frame (CI 0x79) refers to a format learned from an earlier full frame. The
/// learned format must survive a crash of the daemon, or the meter's compact frames stay
/// undecodable until it happens to send a full frame again (hours for some meters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_frame_format_survives_sigkill() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wmbusmeters-public.jsonl"),
    )
    .expect("corpus");
    let row: Json = text
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).expect("JSON"))
        .find(|r| {
            r["meter_id"] == "78780102"
                && r["prior_telegrams"]
                    .as_array()
                    .is_some_and(|p| p.len() == 1)
        })
        .expect("compact-frame entry of meter 78780102");
    let full = hex::decode(row["prior_telegrams"][0].as_str().expect("prior")).expect("hex");
    let compact = hex::decode(row["telegram"].as_str().expect("telegram")).expect("hex");

    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let cfg = rig.config(broker.port).radio("im871a", &link);
    let sub = Subscriber::start(
        broker.port,
        "e2e-compact",
        &[&format!("{}#", meter_topic_prefix())],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    im.feed(telegram(&full, 0x80)).await;
    sub.wait_until("reading of the full frame", SHORT, |_| {
        meter_messages(&sub).len() == 1
    })
    .await;
    d.kill9();

    let mut d2 = rig.start(&cfg);
    wait_ready(&mut d2, 1).await;
    im.feed(telegram(&compact, 0x80)).await;
    sub.wait_until(
        "reading of the compact frame after the crash",
        SHORT,
        |_| meter_messages(&sub).len() >= 2,
    )
    .await;
    let msgs = meter_messages(&sub);
    let first = parse(&msgs[0]);
    let second = parse(msgs.last().expect("second"));
    assert_eq!(second["meter"]["id"], "78780102");
    assert_eq!(
        first["records"].as_array().map(Vec::len),
        second["records"].as_array().map(Vec::len),
        "the compact frame decodes with the full frame's format"
    );
    let exit = d2.terminate().await;
    assert!(exit.success());
    drop(im);
}

// ---------------------------------------------------------------------------------------
// 4. Unplug and replug under the same path

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug_resumes_without_restart() {
    let corpus = corpus();
    let hydrus = corpus_entry(&corpus, "65656565");
    let abb = corpus_entry(&corpus, "33221100");
    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let cfg = rig.config(broker.port).radio("im871a", &link);
    let sub = Subscriber::start(
        broker.port,
        "e2e-replug",
        &[&format!("{}#", meter_topic_prefix())],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    im.feed(telegram(&hydrus.bytes, 0x90)).await;
    sub.wait_until("reading before unplug", SHORT, |_| {
        meter_messages(&sub).len() == 1
    })
    .await;

    im.unplug().await;
    let lost = d.wait_log(&["lost:", "reopening"], SHORT).await;
    assert!(lost.contains(&link.display().to_string()), "{lost}");

    let im2 = Dongle::im871a(&link);
    wait_ready(&mut d, 2).await;
    let back = d.wait_log(&["reopened after the loss"], SHORT).await;
    assert!(back.contains(&link.display().to_string()), "{back}");
    im2.feed(telegram(&abb.bytes, 0x90)).await;
    sub.wait_until("reading after replug", SHORT, |_| {
        meter_messages(&sub)
            .iter()
            .any(|m| m.topic.ends_with("/33221100"))
    })
    .await;
    d.assert_running("after replug");
    let exit = d.terminate().await;
    assert!(exit.success());
}

/// A dongle plugged in only after the daemon started: it keeps trying and picks it up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dongle_plugged_in_after_start_is_picked_up() {
    let corpus = corpus();
    let abb = corpus_entry(&corpus, "33221100");
    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-amb8465-if00");
    let cfg = rig.config(broker.port).radio("amb8465", &link);
    let sub = Subscriber::start(
        broker.port,
        "e2e-late-plug",
        &[&format!("{}#", meter_topic_prefix())],
    )
    .await;
    let mut d = rig.start(&cfg);
    let missing = d.wait_log(&["lost:", "reopening"], SHORT).await;
    assert!(missing.contains(&link.display().to_string()), "{missing}");

    let amber = Dongle::amb8465(&link);
    wait_ready(&mut d, 1).await;
    amber.feed(telegram(&abb.bytes, 0xB0)).await;
    sub.wait_until("reading from the late dongle", SHORT, |_| {
        meter_messages(&sub)
            .iter()
            .any(|m| m.topic.ends_with("/33221100"))
    })
    .await;
    let exit = d.terminate().await;
    assert!(exit.success());
}

// ---------------------------------------------------------------------------------------
// 5. Bad input: garbage, truncated frames, wrong key, no broker at start

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_logged_and_the_daemon_keeps_running() {
    let corpus = corpus();
    let caltose = corpus_entry(&corpus, "80081809");
    let hydrus = corpus_entry(&corpus, "65656565");
    let abb = corpus_entry(&corpus, "33221100");
    // Nobody listens on this port yet.
    let port = free_port();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let cfg = rig
        .config(port)
        .radio("im871a", &link)
        .meter("80081809", Some("00112233445566778899AABBCCDDEEFF"));
    let mut d = rig.start(&cfg);
    let line = d
        .wait_log(&[&format!("broker 127.0.0.1:{port} unreachable")], SHORT)
        .await;
    assert!(line.contains("connection refused"), "{line}");
    wait_ready(&mut d, 1).await;

    // Garbage between frames, then a DataIndication cut short, then a good telegram.
    im.feed(SimInput::Raw(b"\x00\x13garbage\x37".to_vec()))
        .await;
    let full = im871a::data_indication(&hydrus.bytes, Some(0x80), None, true)
        .and_then(|f| f.encode())
        .expect("indication");
    im.feed(SimInput::Raw(full.get(..20).expect("prefix").to_vec()))
        .await;
    // A complete, CRC-correct indication carrying a telegram of 7 bytes: too short for a
    // link header.
    let mut stub = im871a::HciFrame::new(
        im871a::EP_RADIOLINK,
        im871a::RADIOLINK_WMBUSMSG_IND,
        hydrus.bytes.get(1..7).expect("stub").to_vec(),
    );
    stub.crc = true;
    im.feed(SimInput::Raw(stub.encode().expect("stub indication")))
        .await;
    // A telegram cut inside its TPL header, L-field adjusted: the radio layer accepts it,
    // the decoder must not.
    let mut cut = hydrus.bytes.get(..14).expect("cut").to_vec();
    cut[0] = 13;
    im.feed(telegram(&cut, 0x80)).await;
    // A wrong key for the Caltose meter.
    im.feed(telegram(&caltose.bytes, 0x80)).await;
    im.feed(telegram(&abb.bytes, 0x80)).await;

    let garbage = d
        .wait_log(
            &["dropped bad radio data", "garbage before a start of frame"],
            SHORT,
        )
        .await;
    assert!(garbage.contains("im871a"), "{garbage}");
    // The cut-off indication swallowed the start of the next one: its CRC fails.
    d.wait_log(&["dropped bad radio data", "CRC mismatch"], SHORT)
        .await;
    d.wait_log(
        &["dropped bad radio data", "shorter than the 11-byte"],
        SHORT,
    )
    .await;
    d.wait_log(&["meter 65656565: truncated"], SHORT).await;
    let wrong = d.wait_log(&["meter 80081809: wrong key"], SHORT).await;
    assert!(
        !wrong.contains("00112233"),
        "keys never appear in logs: {wrong}"
    );
    d.wait_stdout(1, SHORT).await;
    assert!(
        d.stdout_lines()[0].contains("\"33221100\""),
        "{:?}",
        d.stdout_lines()
    );

    // The broker appears; later good telegrams still arrive.
    let broker = Mosquitto::start_on(port);
    let sub = Subscriber::start(port, "e2e-bad", &[&format!("{}#", meter_topic_prefix())]).await;
    im.feed(telegram(&hydrus.bytes, 0x80)).await;
    sub.wait_until("good reading after bad input", LONG, |_| {
        meter_messages(&sub)
            .iter()
            .any(|m| m.topic.ends_with("/65656565"))
    })
    .await;
    assert!(
        meter_messages(&sub)
            .iter()
            .all(|m| !m.topic.ends_with("/80081809")),
        "no reading from a wrong key"
    );
    d.assert_running("after bad input");
    let exit = d.terminate().await;
    assert!(exit.success());
    drop(broker);
}

#[tokio::test]
async fn malformed_config_exits_78_with_position() {
    let rig = Rig::new();
    let good = rig.config(1883).radio("im871a", &rig.path("tty")).to_toml();

    let unknown = rig.path("unknown-key.toml");
    std::fs::write(
        &unknown,
        good.replace("[pipeline]\n", "[pipeline]\nfrobnicate = 1\n"),
    )
    .expect("write");
    let line = good
        .lines()
        .position(|l| l == "[pipeline]")
        .expect("pipeline section")
        + 2;
    let (status, log) = run_to_exit(
        &["run".as_ref(), "--config".as_ref(), unknown.as_os_str()],
        SHORT,
    )
    .await;
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(
        log.contains(&format!("{}:{line}:1", unknown.display())),
        "file:line:column of the unknown key: {log}"
    );
    assert!(log.contains("frobnicate"), "{log}");

    let bad_value = rig.path("bad-value.toml");
    std::fs::write(&bad_value, good.replace("port = 1883", "port = 99999")).expect("write");
    let line = good
        .lines()
        .position(|l| l == "port = 1883")
        .expect("port line")
        + 1;
    let (status, log) = run_to_exit(
        &["run".as_ref(), "--config".as_ref(), bad_value.as_os_str()],
        SHORT,
    )
    .await;
    assert_eq!(status.code(), Some(78), "{log}");
    assert!(
        log.contains(&format!("{}:{line}:8: invalid value", bad_value.display())),
        "file:line:column of the bad value: {log}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. SIGHUP adds a key without reopening the radio

/// A daemon on one simulated iM871A with a subscriber on the meter topics, for the
/// SIGHUP tests, which feed the same telegram twice (so no duplicate filter).
struct HupRig {
    _broker: Mosquitto,
    rig: Rig,
    im: Dongle,
    cfg: TestConfig,
    sub: Subscriber,
    d: Daemon,
}

async fn hup_rig(client_id: &str) -> HupRig {
    let broker = Mosquitto::start();
    let rig = Rig::new();
    let link = rig.path("usb-im871a-if00");
    let im = Dongle::im871a(&link);
    let mut cfg = rig.config(broker.port).radio("im871a", &link);
    cfg.dedupe_window_secs = 0;
    let sub = Subscriber::start(
        broker.port,
        client_id,
        &[&format!("{}#", meter_topic_prefix())],
    )
    .await;
    let mut d = rig.start(&cfg);
    wait_ready(&mut d, 1).await;
    HupRig {
        _broker: broker,
        rig,
        im,
        cfg,
        sub,
        d,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_key_without_reopening_the_radio() {
    let corpus = corpus();
    let caltose = corpus_entry(&corpus, "80081809");
    let key = caltose.key.clone().expect("corpus key");
    let HupRig {
        _broker,
        rig,
        im,
        cfg,
        sub,
        mut d,
    } = hup_rig("e2e-hup").await;

    im.feed(telegram(&caltose.bytes, 0x80)).await;
    let no_key = d.wait_log(&["meter 80081809", "no key"], SHORT).await;
    assert!(!no_key.contains(&key), "keys never appear in logs");

    // A broken file first: the reload is refused, the daemon keeps its configuration.
    let cfg = cfg.meter("80081809", Some(&key));
    let broken = cfg.to_toml().replace(&key, "not-a-key");
    std::fs::write(&rig.config_path, &broken).expect("write broken config");
    d.signal(libc::SIGHUP);
    let refused = d.wait_log(&["reload of", "failed"], SHORT).await;
    let key_line = broken
        .lines()
        .position(|l| l.contains("not-a-key"))
        .expect("key line")
        + 1;
    assert!(
        refused.contains(&format!("{}:{key_line}:", rig.config_path.display())),
        "{refused}"
    );
    d.assert_running("after a refused reload");

    cfg.write(&rig.config_path);
    d.signal(libc::SIGHUP);
    d.wait_log(&["reloaded", "1 key(s)"], SHORT).await;

    im.feed(telegram(&caltose.bytes, 0x80)).await;
    sub.wait_until("reading after SIGHUP", SHORT, |_| {
        meter_messages(&sub)
            .iter()
            .any(|m| m.topic.ends_with("/80081809"))
    })
    .await;
    let msgs = meter_messages(&sub);
    let reading = parse(msgs.first().expect("reading"));
    assert_eq!(reading["security"]["decrypted"], true);
    // The radio was not reopened.
    assert_eq!(d.log_lines_with(&[": ready ("]).len(), 1, "{}", d.log());
    assert!(d.log_lines_with(&["lost:"]).is_empty(), "{}", d.log());
    let exit = d.terminate().await;
    assert!(exit.success());
    assert!(!d.log().contains(&key), "keys never appear in logs");
    drop(im);
}

// ---------------------------------------------------------------------------------------
// 6b. A driver definition dropped into drivers.d is picked up on SIGHUP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_picks_up_a_dropped_driver_definition() {
    let corpus = corpus();
    let sontex = corpus_entry(&corpus, "27282728");
    let HupRig {
        _broker,
        rig,
        im,
        sub,
        mut d,
        ..
    } = hup_rig("e2e-hup-drivers").await;
    let on_meter = |sub: &Subscriber| -> Vec<Json> {
        meter_messages(sub)
            .iter()
            .filter(|m| m.topic.ends_with("/27282728"))
            .map(parse)
            .collect()
    };
    im.feed(telegram(&sontex.bytes, 0x80)).await;
    sub.wait_until("first reading", SHORT, |_| !on_meter(&sub).is_empty())
        .await;
    assert_ne!(on_meter(&sub)[0]["driver"], "site_hca");

    // drivers.d beside the configuration file is the default drivers directory.
    let dir = rig
        .config_path
        .parent()
        .expect("config dir")
        .join("drivers.d");
    std::fs::create_dir_all(&dir).expect("drivers.d");
    // A malformed definition first: the reload is refused with file:line:column.
    std::fs::write(
        dir.join("site.toml"),
        "name = \"site_hca\"\nmanufacturer = \"SON\"\n[fields.current_hca]\nquantity = 7\n",
    )
    .expect("write definition");
    d.signal(libc::SIGHUP);
    let refused = d.wait_log(&["reload of", "failed"], SHORT).await;
    assert!(refused.contains("site.toml:4:"), "{refused}");
    d.assert_running("after a refused reload");

    std::fs::write(
        dir.join("site.toml"),
        "name = \"site_hca\"\nmanufacturer = \"SON\"\n[fields.current_hca]\nquantity = \"hca\"\n",
    )
    .expect("write definition");
    d.signal(libc::SIGHUP);
    d.wait_log(&["1 driver definition(s) loaded from"], SHORT)
        .await;
    d.wait_log(&["reloaded", "driver(s)"], SHORT).await;

    im.feed(telegram(&sontex.bytes, 0x80)).await;
    sub.wait_until("reading with the dropped driver", SHORT, |_| {
        on_meter(&sub).len() >= 2
    })
    .await;
    let second = on_meter(&sub).pop().expect("second reading");
    assert_eq!(second["driver"], "site_hca", "{second}");
    assert_eq!(
        second["fields"]["current_hca"].as_f64(),
        sontex.expected["current_consumption_hca"].as_f64(),
        "{second}"
    );
    assert_eq!(d.log_lines_with(&[": ready ("]).len(), 1, "{}", d.log());
    assert!(d.terminate().await.success());
    drop(im);
}
