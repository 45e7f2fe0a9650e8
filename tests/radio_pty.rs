//! End-to-end radio sessions against simulated dongles on real pseudo terminals:
//! initialisation, exact canonical frames and RSSI, garbage and truncated frames,
//! unplug and replug under a stable path, and probing.
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
use std::time::Duration;

use support::sim::{self, Amb8465Sim, Im871aSim, Pty, SimInput};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wmbusd::frame::LinkMode;
use wmbusd::radio::{self, amb8465, cul, im871a, DriverKind, RadioEvent, RadioSpec, RadioState};
use wmbusd::shutdown::ShutdownTrigger;

/// OMS Vol.2 Annex N.1.1, security profile A (protocol.md §4.2.1).
const PROFILE_A: &str = "2E449315785634123303 7A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
/// Kamstrup C1 with ELL (protocol.md §4.3.1).
const KAMSTRUP: &str =
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
/// Long TPL header, mode 5 (protocol.md §4.2.2).
const LONG_HEADER: &str = "4644A2054400 00570C37 7244000057A2050C37A3003005D898C64FD0C9BD2634365084E4DF946736C71A2103E45A190CAA1A49B602E46C9F45FCEE79AFBE34F0C167FD857F659E";

/// Every wait is bounded so a broken session fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(15);

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).expect("test vector hex")
}

struct Session {
    events: mpsc::Receiver<RadioEvent>,
    stop: ShutdownTrigger,
    task: JoinHandle<()>,
}

fn start(driver: DriverKind, device: &Path, mode: LinkMode) -> Session {
    start_with_watchdog(driver, device, mode, Duration::from_secs(30))
}

fn start_with_watchdog(
    driver: DriverKind,
    device: &Path,
    mode: LinkMode,
    watchdog: Duration,
) -> Session {
    let (tx, events) = mpsc::channel(256);
    let stop = ShutdownTrigger::new();
    let stop_rx = stop.subscribe();
    let spec = RadioSpec {
        driver,
        device: device.to_string_lossy().into_owned(),
        modes: vec![mode],
        baud: None,
        watchdog,
        replay_interval: Duration::ZERO,
        name: "test-dongle".into(),
        recorded_clock: false,
    };
    let task = tokio::spawn(radio::run(spec, tx, stop_rx));
    Session { events, stop, task }
}

impl Session {
    async fn next(&mut self) -> RadioEvent {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("session ended unexpectedly"),
            Err(_) => panic!("no radio event within {WAIT:?}"),
        }
    }

    /// Waits for an event matching `pred`; returns it and everything seen before it.
    async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&RadioEvent) -> bool,
    ) -> (RadioEvent, Vec<RadioEvent>) {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => panic!("session ended while waiting for {what}; seen {seen:?}"),
                Err(_) => panic!("timed out waiting for {what}; seen {seen:?}"),
            };
            if pred(&ev) {
                return (ev, seen);
            }
            seen.push(ev);
        }
    }

    async fn stop(self) {
        self.stop.fire();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("run() returns after shutdown")
            .expect("run() does not panic");
    }
}

fn is_ready(ev: &RadioEvent) -> bool {
    matches!(
        ev,
        RadioEvent::State {
            state: RadioState::Ready { .. },
            ..
        }
    )
}

fn is_lost(ev: &RadioEvent) -> bool {
    matches!(
        ev,
        RadioEvent::State {
            state: RadioState::Lost { .. },
            ..
        }
    )
}

/// Collects `n` frames, counting Bad events in between.
async fn frames(session: &mut Session, n: usize) -> (Vec<wmbusd::frame::RadioFrame>, Vec<String>) {
    let mut got = Vec::new();
    let mut bad = Vec::new();
    while got.len() < n {
        match session.next().await {
            RadioEvent::Frame(f) => got.push(f),
            RadioEvent::Bad { reason, .. } => bad.push(reason),
            RadioEvent::State { state, .. } => panic!("unexpected state change {state:?}"),
            RadioEvent::ReplayFinished => panic!("unexpected ReplayFinished"),
        }
    }
    (got, bad)
}

fn stable_link(dir: &Path, pty: &Pty) -> PathBuf {
    let link = dir.join("usb-dongle-if00");
    sim::point_symlink(&link, pty.slave_path()).expect("symlink");
    link
}

type SimTask = JoinHandle<std::io::Result<()>>;

fn spawn_im871a(pty: Pty) -> (mpsc::Sender<SimInput>, SimTask) {
    let (tx, rx) = mpsc::channel(32);
    (
        tx,
        tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default())),
    )
}

fn spawn_amb8465(pty: Pty, sim_cfg: Amb8465Sim) -> (mpsc::Sender<SimInput>, SimTask) {
    let (tx, rx) = mpsc::channel(32);
    (tx, tokio::spawn(sim::run_amb8465_sim(pty, rx, sim_cfg)))
}

async fn feed(tx: &mpsc::Sender<SimInput>, input: SimInput) {
    tokio::time::timeout(WAIT, tx.send(input))
        .await
        .expect("simulator accepts input")
        .expect("simulator running");
}

fn telegram(hex_text: &str, rssi_raw: u8) -> SimInput {
    SimInput::Telegram {
        frame: bytes(hex_text),
        rssi_raw,
    }
}

#[tokio::test]
async fn im871a_frames_garbage_unplug_replug() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open().expect("pty");
    let link = stable_link(dir.path(), &pty);
    let (tx, sim_task) = spawn_im871a(pty);
    let mut s = start(DriverKind::Im871a, &link, LinkMode::C1T1);

    assert!(matches!(
        s.next().await,
        RadioEvent::State {
            state: RadioState::Opening,
            ..
        }
    ));
    let (ready, _) = s.wait_for("Ready", is_ready).await;
    assert!(
        matches!(&ready, RadioEvent::State { state: RadioState::Ready { dongle }, source } if dongle == "iM871A fw 0x14 hci 0x01" && source == "test-dongle"),
        "{ready:?}"
    );

    // A truncated DataIndication: header and a few payload bytes only.
    let full = im871a::data_indication(&bytes(PROFILE_A), Some(0x9D), None, true)
        .and_then(|f| f.encode())
        .expect("indication");
    let truncated = full.get(..20).expect("prefix").to_vec();

    feed(&tx, telegram(PROFILE_A, 0x9D)).await;
    feed(&tx, SimInput::Raw(b"\x00\x13garbage\x37".to_vec())).await;
    feed(&tx, SimInput::Raw(truncated)).await;
    feed(&tx, telegram(KAMSTRUP, 0x40)).await;
    feed(&tx, SimInput::Raw(vec![0xA5, 0x0F, 0x01, 0x00])).await; // unknown endpoint
    feed(&tx, telegram(LONG_HEADER, 0xF0)).await;

    let (got, bad) = frames(&mut s, 3).await;
    let expect = [(PROFILE_A, 0x9D), (KAMSTRUP, 0x40), (LONG_HEADER, 0xF0)];
    for (f, (hex_text, raw)) in got.iter().zip(expect) {
        assert_eq!(f.bytes, bytes(hex_text));
        assert_eq!(f.rssi_dbm, Some(im871a::rssi_to_dbm(raw)));
        assert_eq!(f.link_mode, Some(LinkMode::C1T1));
        assert_eq!(f.source.as_deref(), Some("test-dongle"));
        assert!(f.received_at.is_some());
    }
    let first_dbm = got.first().and_then(|f| f.rssi_dbm).unwrap_or(0.0);
    assert!((first_dbm - -42.93).abs() < 0.01, "{first_dbm}");
    assert!(bad.iter().any(|r| r.contains("garbage")), "{bad:?}");
    assert!(
        bad.iter()
            .any(|r| r.contains("CRC") || r.contains("truncated")),
        "truncated frame must be reported: {bad:?}"
    );

    // Unplug: the dongle disappears (pty master closed).
    sim_task.abort();
    drop(tx);
    let (lost, _) = s.wait_for("Lost after unplug", is_lost).await;
    // The pty master closing reads as end of file (or EIO) on the daemon's side.
    assert!(
        matches!(&lost, RadioEvent::State { state: RadioState::Lost { reason }, .. }
            if reason.contains("end of file") || reason.contains("read failed")),
        "{lost:?}"
    );

    // Replug: a new device node behind the same stable path, without restarting run().
    let pty2 = Pty::open().expect("pty");
    sim::point_symlink(&link, pty2.slave_path()).expect("re-point");
    let (tx2, sim_task2) = spawn_im871a(pty2);
    s.wait_for("Ready after replug", is_ready).await;
    feed(&tx2, telegram(KAMSTRUP, 0x9D)).await;
    let (_, _) = s
        .wait_for(
            "frame after replug",
            |ev| matches!(ev, RadioEvent::Frame(f) if f.bytes == bytes(KAMSTRUP)),
        )
        .await;

    s.stop().await;
    sim_task2.abort();
}

#[tokio::test]
async fn amb8465_enables_rssi_and_survives_garbage_and_replug() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open().expect("pty");
    let link = stable_link(dir.path(), &pty);
    // A module fresh from the factory: RSSI not appended yet. The session must switch it
    // on (non-volatile write + reset) before telegrams carry RSSI.
    let fresh = Amb8465Sim {
        params: vec![
            (amb8465::PARAM_UART_CMD_OUT_ENABLE, 1),
            (amb8465::PARAM_RSSI_ENABLE, 0),
        ],
        ..Amb8465Sim::default()
    };
    let (tx, sim_task) = spawn_amb8465(pty, fresh);
    let mut s = start(DriverKind::Amb8465, &link, LinkMode::T1);
    let (ready, _) = s.wait_for("Ready", is_ready).await;
    assert!(
        matches!(&ready, RadioEvent::State { state: RadioState::Ready { dongle }, .. } if dongle == "AMB8465 fw 1.2.3"),
        "{ready:?}"
    );

    let full = amb8465::data_indication(&bytes(KAMSTRUP), Some(0xD6))
        .and_then(|f| f.encode())
        .expect("indication");
    feed(&tx, telegram(PROFILE_A, 0xD6)).await;
    feed(&tx, SimInput::Raw(vec![0x00, 0x42, 0x42])).await;
    feed(&tx, SimInput::Raw(full.get(..9).expect("prefix").to_vec())).await;
    feed(&tx, telegram(KAMSTRUP, 0x20)).await;
    feed(&tx, telegram(LONG_HEADER, 0x90)).await;

    let (got, bad) = frames(&mut s, 3).await;
    let expect = [(PROFILE_A, 0xD6u8), (KAMSTRUP, 0x20), (LONG_HEADER, 0x90)];
    for (f, (hex_text, raw)) in got.iter().zip(expect) {
        assert_eq!(f.bytes, bytes(hex_text));
        assert_eq!(f.rssi_dbm, Some(amb8465::rssi_to_dbm(raw)));
        assert_eq!(f.link_mode, Some(LinkMode::T1));
    }
    assert_eq!(got.first().and_then(|f| f.rssi_dbm), Some(-95.0));
    assert!(bad.iter().any(|r| r.contains("garbage")), "{bad:?}");
    assert!(
        bad.iter()
            .any(|r| r.contains("checksum") || r.contains("truncated")),
        "truncated frame must be reported: {bad:?}"
    );

    sim_task.abort();
    drop(tx);
    s.wait_for("Lost after unplug", is_lost).await;
    let pty2 = Pty::open().expect("pty");
    sim::point_symlink(&link, pty2.slave_path()).expect("re-point");
    let (tx2, sim_task2) = spawn_amb8465(pty2, Amb8465Sim::default());
    s.wait_for("Ready after replug", is_ready).await;
    feed(&tx2, telegram(PROFILE_A, 0x10)).await;
    let (ev, _) = s
        .wait_for("frame after replug", |ev| {
            matches!(ev, RadioEvent::Frame(_))
        })
        .await;
    assert!(
        matches!(&ev, RadioEvent::Frame(f) if f.bytes == bytes(PROFILE_A) && f.rssi_dbm == Some(-66.0)),
        "{ev:?}"
    );

    s.stop().await;
    sim_task2.abort();
}

#[tokio::test]
async fn probe_identifies_simulated_dongles() {
    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, task) = spawn_im871a(pty);
    let info = radio::probe(&path.to_string_lossy(), Duration::from_millis(700))
        .await
        .expect("iM871A found");
    assert_eq!(info.driver, DriverKind::Im871a);
    assert_eq!(info.description, "iM871A fw 0x14 hci 0x01");
    assert_eq!(info.id.as_deref(), Some("12345678"));
    task.abort();
    drop(tx);

    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, task) = spawn_amb8465(pty, Amb8465Sim::default());
    let info = radio::probe(&path.to_string_lossy(), Duration::from_millis(700))
        .await
        .expect("AMB8465 found");
    assert_eq!(info.driver, DriverKind::Amb8465);
    assert_eq!(info.description, "AMB8465 fw 1.2.3");
    task.abort();
    drop(tx);

    // Nothing answers on a bare pty.
    let silent = Pty::open().expect("pty");
    let err = radio::probe(
        &silent.slave_path().to_string_lossy(),
        Duration::from_millis(300),
    )
    .await;
    assert!(
        matches!(err, Err(radio::ProbeError::NoAnswer { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn auto_driver_finds_amber_and_receives() {
    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, task) = spawn_amb8465(pty, Amb8465Sim::default());
    let mut s = start(DriverKind::Auto, &path, LinkMode::C1);
    s.wait_for("Ready", is_ready).await;
    feed(&tx, telegram(KAMSTRUP, 0xD6)).await;
    let (got, _) = frames(&mut s, 1).await;
    assert_eq!(got.first().map(|f| f.bytes.clone()), Some(bytes(KAMSTRUP)));
    s.stop().await;
    task.abort();
}

#[tokio::test]
async fn watchdog_checks_politely_and_reopens_a_hung_dongle() {
    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, task) = spawn_im871a(pty);
    let mut s = start_with_watchdog(
        DriverKind::Im871a,
        &path,
        LinkMode::T1,
        Duration::from_secs(1),
    );
    s.wait_for("Ready", is_ready).await;

    // Quiet air but a healthy dongle: the watchdog's ping is answered, nothing is reset.
    match tokio::time::timeout(Duration::from_millis(3500), s.events.recv()).await {
        Err(_) => {}
        Ok(ev) => panic!("a live but quiet dongle must not be reset: {ev:?}"),
    }
    feed(&tx, telegram(PROFILE_A, 0x9D)).await;
    let (got, _) = frames(&mut s, 1).await;
    assert_eq!(got.first().map(|f| f.bytes.clone()), Some(bytes(PROFILE_A)));

    // The firmware hangs: silence, unanswered ping, reopen; it recovers, so does the session.
    feed(&tx, SimInput::Hang(true)).await;
    let (lost, _) = s.wait_for("Lost by watchdog", is_lost).await;
    assert!(
        matches!(&lost, RadioEvent::State { state: RadioState::Lost { reason }, .. } if reason.contains("watchdog")),
        "{lost:?}"
    );
    feed(&tx, SimInput::Hang(false)).await;
    s.wait_for("Ready after recovery", is_ready).await;
    feed(&tx, telegram(KAMSTRUP, 0x9D)).await;
    let (got, _) = frames(&mut s, 1).await;
    assert_eq!(got.first().map(|f| f.bytes.clone()), Some(bytes(KAMSTRUP)));

    s.stop().await;
    task.abort();
}

/// A minimal culfw stick: answers `V` and `brt`, prints the lines it is given.
async fn run_cul_sim(pty: Pty, mut lines: mpsc::Receiver<String>) -> std::io::Result<()> {
    let mut pending = String::new();
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            n = pty.read(&mut buf) => {
                let n = n?;
                pending.push_str(&String::from_utf8_lossy(buf.get(..n).unwrap_or(&[])));
                while let Some(end) = pending.find("\r\n") {
                    let cmd: String = pending.drain(..end + 2).collect();
                    match cmd.trim_end() {
                        "V" => pty.write_all(b"V 1.30 CUL868\r\n").await?,
                        "brt" => pty.write_all(b"TMODE\r\n").await?,
                        _ => {}
                    }
                }
            }
            line = lines.recv() => {
                let Some(line) = line else { return Ok(()) };
                pty.write_all(line.as_bytes()).await?;
            }
        }
    }
}

#[tokio::test]
async fn cul_lines_with_crcs_and_rssi() {
    const T1_LINE: &str = "b2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A2ED6";
    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(run_cul_sim(pty, rx));
    let mut s = start(DriverKind::Cul, &path, LinkMode::T1);
    let (ready, _) = s.wait_for("Ready", is_ready).await;
    assert!(
        matches!(&ready, RadioEvent::State { state: RadioState::Ready { dongle }, .. } if dongle == "V 1.30 CUL868"),
        "{ready:?}"
    );
    let kamstrup_line =
        cul::telegram_line(&bytes(KAMSTRUP), cul::FrameFormat::A, Some((0x30, 0x10)))
            .expect("line");
    for line in [
        format!("{T1_LINE}\r\n"),
        "LOVF\r\n".to_string(),
        format!("{}\r\n", &T1_LINE[..T1_LINE.len() - 1]),
        kamstrup_line,
    ] {
        tokio::time::timeout(WAIT, tx.send(line))
            .await
            .expect("send")
            .expect("sim running");
    }
    let (got, bad) = frames(&mut s, 2).await;
    assert_eq!(got.first().map(|f| f.bytes.clone()), Some(bytes(PROFILE_A)));
    assert_eq!(got.first().and_then(|f| f.rssi_dbm), Some(-95.0));
    assert_eq!(got.get(1).map(|f| f.bytes.clone()), Some(bytes(KAMSTRUP)));
    assert_eq!(got.get(1).and_then(|f| f.rssi_dbm), Some(-66.0));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad.iter().any(|r| r.contains("odd")), "{bad:?}");
    s.stop().await;
    task.abort();
}

/// The pseudo terminal and the iM871A simulator's SET_CONFIG parsing themselves.
mod sim_self {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::support::sim::{apply_set_config, im871a_mode_of, Pty};
    use wmbusd::frame::LinkMode;

    #[tokio::test]
    async fn master_survives_slave_close_and_reopen() {
        let pty = Pty::open().unwrap();
        for round in 0..2u8 {
            let mut slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(pty.slave_path())
                .unwrap();
            pty.write_all(&[0xA5, round]).await.unwrap();
            let mut got = [0u8; 2];
            slave.read_exact(&mut got).unwrap();
            assert_eq!(got, [0xA5, round]);
            slave.write_all(&[0x0D, 0x0A]).unwrap();
            let mut back = [0u8; 2];
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), pty.read(&mut back))
                .await
                .unwrap()
                .unwrap();
            // Raw mode: no CR/LF translation, no echo.
            assert_eq!(back.get(..n), Some(&[0x0D, 0x0A][..n]));
            drop(slave);
        }
    }

    #[tokio::test]
    async fn pty_descriptors_are_close_on_exec() {
        let pty = Pty::open().unwrap();
        for fd in [pty.master.get_ref().as_raw_fd(), pty._slave.as_raw_fd()] {
            // SAFETY: F_GETFD on descriptors the Pty owns.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(
                flags >= 0 && flags & libc::FD_CLOEXEC != 0,
                "fd {fd}: {flags}"
            );
        }
    }

    #[test]
    fn set_config_fields() {
        assert_eq!(
            apply_set_config(&[0x00, 0x02, 0x03, 0x30, 0x01, 0x00]),
            (Some(0x03), Some(true), 0)
        );
        assert_eq!(
            apply_set_config(&[0x00, 0x03, 0x00, 0x06, 0x08, 0x00]),
            (Some(0x06), None, 0)
        );
        assert_eq!(apply_set_config(&[0x00, 0x02]), (None, None, 1));
        assert_eq!(im871a_mode_of(0x0A), Some(LinkMode::C1T1));
    }
}
