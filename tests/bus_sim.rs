//! The wired M-Bus master against simulated slaves on a real pseudo terminal: the port
//! (serial 8E1 settings on a pty), the link layer, the search, the daemon's poll task and
//! the `wmbusd bus` command line.
//!
//! Timing: the pty does not slow bytes down, so tests run at 38400 baud (330 bit times =
//! 8.6 ms + 50 ms). The 2400-baud scan figure is the ignored `scan_250_addresses_at_2400`.
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::bus_pty::run_bus_sim;
use support::sim::Pty;
use tokio::sync::mpsc;
use wmbusd::bus::config::BusConfig;
use wmbusd::bus::port::Port;
use wmbusd::bus::sim::{identity, Fault, SimBus, SimSlave, SimTelegram};
use wmbusd::bus::task::{self, BusHealth};
use wmbusd::bus::{BusError, Master, Target, Timing};
use wmbusd::decode::Decoder;
use wmbusd::frame::{LinkMode, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::radio::RadioEvent;
use wmbusd::shutdown::ShutdownTrigger;
use wmbusd::wire::apl::{DataField, RecordRepr, Vib};
use wmbusd::wire::mbus::{self, SecondaryAddress};

const BAUD: u32 = 38_400;
const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");

/// Record bytes: one 4-byte volume record (VIF 0x13, litres) per value.
fn volumes(values: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        let r = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), v)
            .unwrap()
            .storage(i as u64);
        r.emit(&mut out).unwrap();
    }
    out
}

fn slave(primary: Option<u8>, id: u32, telegrams: &[&[i64]]) -> SimSlave {
    SimSlave::new(
        primary,
        identity(id, "TST", 1, 0x07).unwrap(),
        telegrams.iter().map(|t| volumes(t)).collect(),
    )
}

struct Bus {
    sim: Arc<Mutex<SimBus>>,
    path: PathBuf,
    _task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn start(slaves: Vec<SimSlave>) -> Bus {
    let pty = Pty::open().unwrap();
    let path = pty.slave_path().to_path_buf();
    let sim = Arc::new(Mutex::new(SimBus::new(slaves)));
    let task = tokio::spawn(run_bus_sim(pty, sim.clone()));
    Bus {
        sim,
        path,
        _task: task,
    }
}

async fn master(bus: &Bus) -> Master<Port> {
    let port = Port::open(bus.path.to_str().unwrap(), BAUD).await.unwrap();
    Master::new(port, Timing::standard(BAUD))
}

/// The decoded reading of one frame, as JSON.
fn decode(frame: &[u8]) -> Json {
    let mut decoder = Decoder::new(KeyStore::new());
    let mut f = RadioFrame::new(frame.to_vec());
    f.link_mode = Some(LinkMode::Wired);
    serde_json::to_value(decoder.decode(&f).unwrap()).unwrap()
}

fn values(reading: &Json) -> Vec<String> {
    reading["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].to_string())
        .collect()
}

/// C-fields of the requests the simulator saw that were short frames to `address`.
fn controls(bus: &Bus, address: u8) -> Vec<u8> {
    let sim = bus.sim.lock().unwrap();
    sim.requests
        .iter()
        .filter(|r| r.len() == mbus::SHORT_LEN && r[2] == address)
        .map(|r| r[1])
        .collect()
}

#[tokio::test]
async fn primary_poll_reads_one_meter() {
    let bus = start(vec![
        slave(Some(1), 11_111_111, &[&[100]]),
        slave(Some(2), 22_222_222, &[&[2_000, 2_001]]),
        slave(Some(3), 33_333_333, &[&[300]]),
    ]);
    let mut m = master(&bus).await;
    let frames = m.read(Target::Primary(2)).await.unwrap();
    assert_eq!(frames.len(), 1);
    let reading = decode(&frames[0]);
    assert_eq!(reading["meter"]["id"], "22222222");
    assert_eq!(reading["link_mode"], "wired");
    assert_eq!(values(&reading), ["2", "2.001"]);
    // SND_NKE, then REQ_UD2 with FCV and FCB = 1 (the slave cleared its FCB).
    assert_eq!(controls(&bus, 2), [0x40, 0x7B]);
    // Nothing to the other slaves.
    assert!(controls(&bus, 1).is_empty());
}

#[tokio::test]
async fn multi_telegram_read_returns_every_record() {
    let bus = start(vec![slave(
        Some(7),
        77_777_777,
        &[&[1, 2], &[3, 4, 5], &[6]],
    )]);
    let mut m = master(&bus).await;
    let frames = m.read(Target::Primary(7)).await.unwrap();
    assert_eq!(frames.len(), 3);
    let all: Vec<String> = frames.iter().flat_map(|f| values(&decode(f))).collect();
    assert_eq!(all, ["0.001", "0.002", "0.003", "0.004", "0.005", "0.006"]);
    // FCB toggled per telegram: 1, 0, 1.
    assert_eq!(controls(&bus, 7), [0x40, 0x7B, 0x5B, 0x7B]);
    // The second read starts again from the first telegram (SND_NKE resets the slave).
    let again = m.read(Target::Primary(7)).await.unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(values(&decode(&again[0])), ["0.001", "0.002"]);
}

#[tokio::test]
async fn bad_checksum_is_retried_with_the_same_fcb() {
    let bus = start(vec![
        slave(Some(4), 44_444_444, &[&[10], &[20]]).fault(Fault::BadChecksum(2)),
        slave(Some(5), 55_555_555, &[&[50]]).fault(Fault::BadChecksum(100)),
    ]);
    let mut m = master(&bus).await;
    let frames = m.read(Target::Primary(4)).await.unwrap();
    let all: Vec<String> = frames.iter().flat_map(|f| values(&decode(f))).collect();
    // Both telegrams, none skipped or doubled: the retries repeated the first.
    assert_eq!(all, ["0.01", "0.02"]);
    assert_eq!(controls(&bus, 4), [0x40, 0x7B, 0x7B, 0x7B, 0x5B]);

    // A slave that never gets it right: 1 + 3 attempts, then a named error.
    let err = m.read(Target::Primary(5)).await.unwrap_err();
    assert!(
        matches!(err, BusError::Damaged { attempts: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("REQ_UD2"), "{err}");
    assert_eq!(controls(&bus, 5), [0x40, 0x7B, 0x7B, 0x7B, 0x7B]);
}

#[tokio::test]
async fn slow_dead_and_secondary_reads() {
    let window = Timing::standard(BAUD).answer_window(5);
    let bus = start(vec![
        slave(Some(8), 88_888_888, &[&[8]]).fault(Fault::Slow(window / 2)),
        slave(Some(9), 99_999_999, &[&[9]]).fault(Fault::Dead),
        slave(None, 12_345_678, &[&[1], &[2]]),
    ]);
    let mut m = master(&bus).await;
    assert_eq!(m.read(Target::Primary(8)).await.unwrap().len(), 1);
    assert_eq!(
        controls(&bus, 8),
        [0x40, 0x7B],
        "the slow slave needed no retry"
    );

    let started = Instant::now();
    let err = m.read(Target::Primary(9)).await.unwrap_err();
    assert!(
        matches!(err, BusError::NoAnswer { attempts: 4, .. }),
        "{err}"
    );
    assert!(
        started.elapsed() >= window * 4,
        "each attempt waits the whole window"
    );

    let target = Target::Secondary(SecondaryAddress::from_id(12_345_678).unwrap());
    let frames = m.read(target).await.unwrap();
    let all: Vec<String> = frames.iter().flat_map(|f| values(&decode(f))).collect();
    assert_eq!(all, ["0.001", "0.002"]);
    assert_eq!(decode(&frames[0])["meter"]["id"], "12345678");
    // Read at 253 and deselected with SND_NKE to 253 afterwards.
    assert_eq!(controls(&bus, 253), [0x7B, 0x5B, 0x40]);
}

#[tokio::test]
async fn secondary_search_finds_every_slave_despite_collisions() {
    // Two slaves share primary address 1 and ids share long prefixes: the search has to
    // narrow through several levels of collisions.
    let ids = [
        12_345_678, 12_345_679, 12_340_000, 87_654_321, 5, 12_345_670,
    ];
    let primaries = [Some(1), Some(1), None, Some(3), None, None];
    let slaves = ids
        .iter()
        .zip(primaries)
        .map(|(&id, p)| slave(p, id, &[&[i64::from(id % 1000)]]))
        .collect();
    let bus = start(slaves);
    let mut m = master(&bus).await;
    let (found, search) = m
        .search_secondary(SecondaryAddress::ANY, |_, _, _| {})
        .await
        .unwrap();
    let mut got: Vec<String> = found.iter().map(|f| f.address.id_string()).collect();
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|id| format!("{id:08}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(search.unresolved.is_empty());
    assert!(
        search.probes > 10,
        "collisions were narrowed ({} probes)",
        search.probes
    );

    // The primary scan sees the collision at address 1 as damaged answers.
    let (found, failed) = m.scan_primary(0..=4, |_, _| {}).await.unwrap();
    assert_eq!(found.iter().map(|f| f.primary).collect::<Vec<_>>(), [3]);
    assert_eq!(failed.len(), 1);
    assert!(
        matches!(failed[0], BusError::Damaged { .. }),
        "{}",
        failed[0]
    );
}

fn bus_config(path: &Path, meters: Vec<Target>, interval: Duration) -> BusConfig {
    BusConfig {
        name: "cellar".into(),
        device: path.to_str().unwrap().into(),
        baud: BAUD,
        poll_interval: interval,
        meters,
        missing_after: 2,
        retries: 3,
        extra_timeout: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn dead_slave_is_missing_while_the_others_are_read_on_schedule() {
    let bus = start(vec![
        slave(Some(1), 11_111_111, &[&[1]]),
        slave(Some(9), 99_999_999, &[&[9]]).fault(Fault::Dead),
        slave(None, 12_345_678, &[&[5], &[6]]),
    ]);
    let interval = Duration::from_millis(600);
    let meters = vec![
        Target::Primary(1),
        Target::Primary(9),
        Target::Secondary(SecondaryAddress::from_id(12_345_678).unwrap()),
    ];
    let (events_tx, mut events) = mpsc::channel(256);
    let stop_tx = ShutdownTrigger::new();
    let stop_rx = stop_tx.subscribe();
    let health = BusHealth::default();
    let handle = tokio::spawn(task::run(
        bus_config(&bus.path, meters, interval),
        events_tx,
        health.clone(),
        stop_rx,
    ));
    let started = Instant::now();
    let mut seen: Vec<(Duration, String)> = Vec::new();
    while started.elapsed() < interval * 4 + interval / 2 {
        match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Some(RadioEvent::Frame(f))) => {
                assert_eq!(f.link_mode, Some(LinkMode::Wired));
                assert_eq!(f.source.as_deref(), Some("cellar"));
                let id = decode(&f.bytes)["meter"]["id"].as_str().unwrap().to_owned();
                seen.push((started.elapsed(), id));
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    stop_tx.fire();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();

    let times = |id: &str| -> Vec<Duration> {
        seen.iter()
            .filter(|(_, i)| i == id)
            .map(|(t, _)| *t)
            .collect()
    };
    let first = times("11111111");
    assert!(
        first.len() >= 4,
        "meter 1 read {} times: {seen:?}",
        first.len()
    );
    for pair in first.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= interval * 8 / 10 && gap <= interval * 15 / 10,
            "gap {gap:?}"
        );
    }
    // Two telegrams per poll of the secondary meter.
    assert!(times("12345678").len() >= 8);
    assert!(times("99999999").is_empty());

    let snapshot = health.snapshot();
    let cellar = &snapshot["cellar"];
    assert_eq!(cellar.port, "ready");
    let dead = &cellar.meters["9"];
    assert_eq!(dead.state, "missing");
    assert!(dead.failures_in_a_row >= 4);
    assert!(dead.last_error.as_deref().unwrap().contains("no answer"));
    assert_eq!(cellar.meters["1"].state, "ok");
    assert_eq!(cellar.meters["1"].meter_id.as_deref(), Some("11111111"));
    assert_eq!(cellar.meters["12345678"].state, "ok");
}

/// Wired long frames of the corpus.
fn corpus_wired() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wmbusmeters-public.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|v| v["frame"] == "wired_mbus_long_frame")
        .map(|v| hex::decode(v["telegram"].as_str().unwrap()).unwrap())
        .collect()
}

/// What `wmbusd decode` prints for `frames`, one JSON value per frame.
fn cli_decode(frames: &[Vec<u8>]) -> Vec<Json> {
    let out = std::process::Command::new(BIN)
        .arg("decode")
        .args(frames.iter().map(hex::encode_upper))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn without_receive_fields(mut v: Json) -> Json {
    if let Some(o) = v.as_object_mut() {
        o.remove("link_mode");
        o.remove("received_at");
    }
    v
}

async fn bus_cli(args: Vec<String>) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("bus")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn corpus_frames_played_by_the_simulator_decode_as_wmbusd_decode_does() {
    let frames = corpus_wired();
    assert_eq!(frames.len(), 27);
    let expected = cli_decode(&frames);
    assert_eq!(expected.len(), frames.len());
    let bus = start(Vec::new());
    let device = bus.path.to_str().unwrap().to_owned();
    let mut m = master(&bus).await;
    let mut continued = 0;
    for (frame, want) in frames.iter().zip(&expected) {
        let mut slave = SimSlave::from_frame(frame).unwrap();
        let address = slave.primary.unwrap();
        // A frame ending in DIF 0x1F announces another telegram: the slave has one.
        let (long, _) = mbus::MbusLongFrame::parse(frame).unwrap();
        let more = mbus::more_records_follow(&long);
        if more {
            continued += 1;
            slave.telegrams.push(SimTelegram::Records(volumes(&[1])));
        }
        bus.sim.lock().unwrap().slaves = vec![slave];
        let read = m.read(Target::Primary(address)).await.unwrap();
        assert_eq!(read.len(), 1 + usize::from(more));
        assert_eq!(read[0], *frame, "the frame arrives unchanged");
        let mut decoder = Decoder::new(KeyStore::new());
        let mut f = RadioFrame::new(read[0].clone());
        f.link_mode = Some(LinkMode::Wired);
        let mut json = Vec::new();
        decoder.decode(&f).unwrap().write_json(&mut json).unwrap();
        let got: Json = serde_json::from_slice(&json).unwrap();
        assert_eq!(got["link_mode"], "wired");
        assert_eq!(without_receive_fields(got), *want);
    }
    assert!(continued > 0, "the corpus has multi-telegram frames");
    // And through `wmbusd bus read`, for the first frames.
    drop(m);
    let more = |f: &Vec<u8>| mbus::more_records_follow(&mbus::MbusLongFrame::parse(f).unwrap().0);
    let single = frames
        .iter()
        .zip(&expected)
        .filter(|(f, _)| !more(f))
        .take(2);
    let multi = frames
        .iter()
        .zip(&expected)
        .filter(|(f, _)| more(f))
        .take(1);
    for (frame, want) in single.chain(multi) {
        let mut slave = SimSlave::from_frame(frame).unwrap();
        let address = slave.primary.unwrap();
        let telegrams = if more(frame) {
            slave.telegrams.push(SimTelegram::Records(volumes(&[1])));
            2
        } else {
            1
        };
        bus.sim.lock().unwrap().slaves = vec![slave];
        let args = [
            "read",
            "--device",
            &device,
            "--baud",
            "38400",
            "--address",
            &address.to_string(),
        ];
        let (code, stdout, stderr) = bus_cli(args.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(code, 0, "{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), telegrams, "{stdout}");
        let got: Json = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(got["link_mode"], "wired");
        assert_eq!(without_receive_fields(got), *want);
    }
}

#[tokio::test]
async fn cli_scan_and_read() {
    let bus = start(vec![
        slave(Some(2), 22_222_222, &[&[2]]),
        slave(Some(5), 55_555_555, &[&[5], &[6]]),
        slave(None, 12_345_678, &[&[1]]),
        slave(None, 12_345_679, &[&[1]]),
    ]);
    let device = bus.path.to_str().unwrap().to_owned();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend([
            "--device".to_owned(),
            device.clone(),
            "--baud".to_owned(),
            "38400".to_owned(),
        ]);
        a
    };
    let (code, stdout, stderr) = bus_cli(args(&["scan", "--from", "0", "--to", "6"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("scanning address 6 (6/7)"), "{stderr}");
    assert!(stderr.contains("2 meter(s) found"), "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    assert!(rows[0].starts_with("address"));
    let cols: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(cols, ["2", "22222222", "TST", "water", "1"]);
    assert!(rows[2].starts_with("5 "));

    let (code, stdout, stderr) = bus_cli(args(&["scan", "--secondary"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("4 meter(s) found"), "{stderr}");
    for id in ["22222222", "55555555", "12345678", "12345679"] {
        assert!(stdout.contains(id), "{id} missing: {stdout}");
    }

    let (code, stdout, stderr) = bus_cli(args(&["read", "--id", "12345679"])).await;
    assert_eq!(code, 0, "{stderr}");
    let reading: Json = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(reading["meter"]["id"], "12345679");

    let (code, stdout, _) = bus_cli(args(&["read", "--address", "5", "--explain"])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("> SND_NKE to 5"), "{stdout}");
    assert!(stdout.contains("REQ_UD2 to 5 (FCB 1)"), "{stdout}");
    assert!(stdout.contains("REQ_UD2 to 5 (FCB 0)"), "{stdout}");
    assert!(stdout.contains("more records follow"), "{stdout}");

    let (code, _, stderr) = bus_cli(args(&["read", "--address", "40"])).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("primary address 40: no answer to SND_NKE after 4 attempt(s)"),
        "{stderr}"
    );
    let (code, _, stderr) = bus_cli(args(&["read", "--address", "251"])).await;
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bus_cli(args(&["scan", "--from", "9", "--to", "3"])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--from 9 is above --to 3"), "{stderr}");
}

/// The figure for the report: a 250-address primary scan with 10 slaves at 2400 baud and
/// the standard's timeouts. Run with
/// `cargo test --test bus_sim -- --ignored --nocapture scan_250` (the time is all
/// timeouts, so a debug build measures the same).
#[tokio::test]
#[ignore]
async fn scan_250_addresses_at_2400() {
    let slaves = (0..10u8)
        .map(|i| {
            slave(
                Some(1 + i * 25),
                10_000_000 + u32::from(i),
                &[&[i64::from(i)]],
            )
        })
        .collect();
    let bus = start(slaves);
    let port = Port::open(bus.path.to_str().unwrap(), 2400).await.unwrap();
    let timing = Timing::standard(2400);
    let mut m = Master::new(port, timing);
    let started = Instant::now();
    let (found, failed) = m.scan_primary(1..=250, |_, _| {}).await.unwrap();
    let total = started.elapsed();
    assert_eq!((found.len(), failed.len()), (10, 0));
    let window = timing.answer_window(mbus::SHORT_LEN);
    // The slaves answer at once on the pty: nearly all the time is the 240 empty windows.
    println!(
        "2400 baud: 250 addresses, 10 slaves in {:.2} s; implied per empty address {:.1} ms \
         (5 bytes {:.1} ms + 330 bit times {:.1} ms + 50 ms); measured at most {:.1} ms",
        total.as_secs_f64(),
        window.as_secs_f64() * 1e3,
        timing.transmit(5).as_secs_f64() * 1e3,
        330.0 / 2.4,
        total.as_secs_f64() * 1e3 / 240.0
    );
    // No longer than the timeouts imply: 240 empty windows plus the ten slaves' answers.
    assert!(total < window * 240 + Duration::from_secs(3), "{total:?}");
}

#[tokio::test]
async fn a_port_that_cannot_open_is_reported_and_retried() {
    // A free loopback port nobody listens on, and a tty that does not exist.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = format!("tcp://{}", closed.local_addr().unwrap());
    drop(closed);
    for (device, expected) in [
        (
            "/nonexistent/ttyUSB9",
            "cannot open serial port /nonexistent/ttyUSB9",
        ),
        (tcp.as_str(), "cannot connect to 127.0.0.1"),
    ] {
        let (events_tx, mut events) = mpsc::channel(16);
        let stop_tx = ShutdownTrigger::new();
        let stop_rx = stop_tx.subscribe();
        let health = BusHealth::default();
        let config = bus_config(
            Path::new(device),
            vec![Target::Primary(1)],
            Duration::from_secs(1),
        );
        let handle = tokio::spawn(task::run(config, events_tx, health.clone(), stop_rx));
        let mut states = Vec::new();
        while states.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                Ok(Some(RadioEvent::State { source, state })) => {
                    assert_eq!(source, "cellar");
                    states.push(state);
                }
                other => panic!("expected a state event, got {other:?}"),
            }
        }
        match &states[1] {
            wmbusd::radio::RadioState::Lost { reason } => {
                assert!(reason.contains(expected), "{reason}")
            }
            other => panic!("expected Lost, got {other:?}"),
        }
        // Opened again after the backoff.
        assert_eq!(states[2], wmbusd::radio::RadioState::Opening);
        assert!(
            health.snapshot()["cellar"].port.starts_with("lost: ")
                || health.snapshot()["cellar"].port == "opening"
        );
        stop_tx.fire();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }
}
