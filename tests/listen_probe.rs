//! The on-site tools against simulated dongles on pseudo terminals: `wmbusd listen`
//! (JSON lines and the live table on a real terminal), `wmbusd probe`, and the daemon's
//! meter alarms on a real mosquitto broker.
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

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use support::sim::{self, Amb8465Sim, Im871aSim, Pty, SimInput};
use tokio::process::Command;
use tokio::sync::mpsc;
use wmbusd::config::Config;
use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::frame::RadioFrame;
use wmbusd::pipeline::{Pipeline, PipelineConfig};

const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");

/// Sontex HCA 27293981, plaintext (protocol.md §1.2): decodes without a key.
const SONTEX: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
/// The same meter's next telegram (access number 0x52).
const SONTEX_NEXT: &str = "3444EE4D8139292716087A52000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
/// The same meter reporting low battery (status byte 0x04).
const SONTEX_POWER_LOW: &str = "3444EE4D8139292716087A53040000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
/// A Sontex HCA with id 27293982, not in the configuration.
const STRANGER: &str = "3444EE4D8239292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
/// OMS Annex N.1.1, mode 5, meter 12345678 (protocol.md §4.2.1); configured with a wrong key.
const PROFILE_A: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
/// OMS Annex N.1.3, mode 7 with AFL MAC (protocol.md §4.5.3), meter id changed to
/// 12345679; configured with a wrong key, so the MAC does not verify.
const PROFILE_B: &str = "434493157956341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93";
/// Kamstrup 76348799 (protocol.md §4.3.1) with the ELL encryption bits cleared: the
/// ciphertext is then read as plaintext and its payload CRC fails.
const KAMSTRUP_BAD_CRC: &str =
    "2A442D2C998734761B168D2091D37CAC01E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
/// Kamstrup 60723506 compact frame (protocol.md §7.4) without its full frame.
const COMPACT_ALONE: &str = "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B";
/// Long TPL header, mode 5, meter 57000044 (protocol.md §4.2.2); configured without a key.
const LONG_HEADER: &str = "4644A2054400 00570C37 7244000057A2050C37A3003005D898C64FD0C9BD2634365084E4DF946736C71A2103E45A190CAA1A49B602E46C9F45FCEE79AFBE34F0C167FD857F659E";

const WAIT: Duration = Duration::from_secs(20);

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).expect("test vector hex")
}

fn telegram(hex_text: &str) -> SimInput {
    SimInput::Telegram {
        frame: bytes(hex_text),
        rssi_raw: 0x80,
    }
}

fn start_im871a() -> (std::path::PathBuf, mpsc::Sender<SimInput>) {
    let pty = Pty::open().expect("pty");
    let path = pty.slave_path().to_path_buf();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    (path, tx)
}

const METERS: &str = r#"
[[meter]]
id = "27293981"
name = "hca"
[[meter]]
id = "12345678"
key = "0102030405060708090A0B0C0D0E0F12"
[[meter]]
id = "12345679"
key = "000102030405060708090A0B0C0D0E0E"
[[meter]]
id = "76348799"
[[meter]]
id = "60723506"
[[meter]]
id = "57000044"
"#;

fn listen_config(dir: &Path, device: &Path) -> std::path::PathBuf {
    let text = format!(
        "[gateway]\nid = \"gw-test\"\n[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\nmodes = [\"T1\"]\n[spool]\ndir = \"{}\"\n{METERS}",
        device.display(),
        dir.join("spool").display()
    );
    let path = dir.join("wmbusd.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Every decode state reaches `listen --json` through a real dongle protocol, with the
/// failure class names of `FailureKind::name()` that the daemon's counters use too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_json_names_every_decode_state() {
    let dir = tempfile::tempdir().unwrap();
    let (device, sim) = start_im871a();
    let config = listen_config(dir.path(), &device);
    let expected: [(&str, &str, Option<FailureKind>); 7] = [
        (SONTEX, "ok", None),
        (LONG_HEADER, "failed", Some(FailureKind::NoKey)),
        (PROFILE_A, "failed", Some(FailureKind::WrongKey)),
        (PROFILE_B, "failed", Some(FailureKind::MacFailure)),
        (KAMSTRUP_BAD_CRC, "failed", Some(FailureKind::Crc)),
        (
            COMPACT_ALONE,
            "failed",
            Some(FailureKind::UnknownCompactFormat),
        ),
        (STRANGER, "not_configured", None),
    ];
    // The simulator holds telegrams until `listen` has configured the link mode.
    for (hex_text, _, _) in &expected {
        sim.send(telegram(hex_text)).await.unwrap();
    }
    let out = tokio::time::timeout(
        WAIT,
        Command::new(BIN)
            .args(["-q", "listen", "--json", "--duration", "5", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("listen stops after --duration")
    .expect("listen runs");
    assert!(out.status.success(), "{out:?}");
    // No configured key shows up in anything listen printed (stdout or log).
    let everything = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .to_uppercase();
    for m in Config::load(&config).unwrap().keys() {
        assert!(
            !everything.contains(&m.1.to_uppercase()),
            "key of {} printed",
            m.0
        );
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), expected.len(), "{stdout}");

    // The daemon's pipeline with the same configuration, fed the same frames.
    let cfg = Config::load(&config).unwrap();
    let mut decoder = Decoder::new(wmbusd::daemon::key_store(&cfg).unwrap());
    let mut pipeline = Pipeline::new(PipelineConfig {
        meters: cfg.meters.iter().map(|m| (m.id.clone(), None)).collect(),
        ..PipelineConfig::default()
    });
    for (line, (hex_text, outcome, kind)) in lines.iter().zip(expected.iter()) {
        assert_eq!(line["outcome"], *outcome, "{line}");
        assert_eq!(line["kind"].as_str(), kind.map(FailureKind::name), "{line}");
        let state = match (outcome, kind) {
            (_, Some(k)) => k.label(),
            (&"ok", None) => "ok",
            _ => "not configured",
        };
        assert_eq!(line["state"], state, "{line}");
        assert!(line["rssi_dbm"].as_f64().is_some(), "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        let meter = line["meter"].as_str().expect("meter id").to_owned();
        assert!(line["manufacturer"].as_str().is_some(), "{line}");

        pipeline.process(
            &mut decoder,
            &RadioFrame::new(bytes(hex_text)),
            std::time::Instant::now(),
        );
        let stats = pipeline.meter(&meter).expect("pipeline counts the meter");
        match kind {
            Some(k) => assert_eq!(
                stats.failed.keys().map(String::as_str).collect::<Vec<_>>(),
                [k.name()]
            ),
            None => assert_eq!(stats.decoded, 1),
        }
    }
    assert!(lines[0]["reading"]["records"].is_array());
    assert_eq!(lines[0]["device_type"], "heat_cost_allocator");
    // The meter without a key still shows who made it, from its link header.
    assert_eq!(lines[1]["manufacturer"], "AMB");
}

/// Output of a child process on a pseudo terminal, read continuously by a thread.
struct Terminal {
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Opens a pty pair; returns the reader side and the slave for the child's stdout.
    fn open() -> (Terminal, OwnedFd) {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let winsize = libc::winsize {
            ws_row: 40,
            ws_col: 160,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors; name and termios may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &winsize,
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: fresh descriptors from openpty, owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(master);
            let mut buf = [0u8; 4096];
            // Ends with EIO once the child (the last slave holder) exits.
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (Terminal { output }, slave)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// The last complete screen: what follows the last "cursor home + clear".
    fn screen(&self) -> Option<String> {
        let text = self.text();
        let start = text.rfind("\x1b[H\x1b[2J")?;
        Some(text[start + 7..].replace("\x1b[K", "").replace('\r', ""))
    }

    async fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.screen() {
                if pred(&s) {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; output so far:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The TELEGRAMS column of a meter's row on a screen.
fn telegrams_of(screen: &str, meter: &str) -> Option<u64> {
    // Columns are left-aligned: a cell starts where its header does (states such as
    // "no key" hold a blank, so words cannot be counted).
    let header = screen.lines().find(|l| l.starts_with("ID "))?;
    let column = header.find("TELEGRAMS")?;
    let row = screen.lines().find(|l| l.starts_with(meter))?;
    row.get(column..)?.split_whitespace().next()?.parse().ok()
}

/// On a terminal the table is redrawn in place and the cursor restored on Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_redraws_the_table_on_a_terminal() {
    let (device, sim) = start_im871a();
    let (term, slave) = Terminal::open();
    let mut child = Command::new(BIN)
        .args(["-q", "listen", "--driver", "im871a", "--device"])
        .arg(&device)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null())
        .spawn()
        .expect("listen starts");

    sim.send(telegram(SONTEX)).await.unwrap();
    let first = term
        .wait_screen("the first row", |s| telegrams_of(s, "27293981") == Some(1))
        .await;
    for column in [
        "ID",
        "MANUF",
        "TYPE",
        "MODE",
        "RSSI",
        "MEAN",
        "TELEGRAMS",
        "INTERVAL",
        "STATE",
    ] {
        assert!(first.contains(column), "header lacks {column}:\n{first}");
    }
    let row = first.lines().find(|l| l.starts_with("27293981")).unwrap();
    assert!(
        row.contains("SON") && row.contains("heat_cost_allocator"),
        "{row}"
    );
    assert!(row.contains("heat_cost_allocator  ok "), "{row}");
    assert!(first.starts_with("wmbusd listen: im871a on "), "{first}");

    sim.send(telegram(SONTEX_NEXT)).await.unwrap();
    sim.send(telegram(PROFILE_A)).await.unwrap();
    let second = term
        .wait_screen("the refreshed row", |s| {
            telegrams_of(s, "27293981") == Some(2) && s.contains("12345678")
        })
        .await;
    let row = second.lines().find(|l| l.starts_with("12345678")).unwrap();
    assert!(row.contains(" no key "), "{row}");
    // Redrawn in place, not appended: the output holds several cleared screens.
    assert!(term.text().matches("\x1b[H\x1b[2J").count() >= 2);
    assert!(
        term.text().starts_with("\x1b[?25l"),
        "cursor hidden while drawing"
    );

    let pid = i32::try_from(child.id().expect("running")).unwrap();
    // SAFETY: signalling the child we started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("listen stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + WAIT;
    while !term.text().ends_with("\x1b[?25h") {
        assert!(
            Instant::now() < deadline,
            "cursor not restored: {:?}",
            term.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn probe_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn row_for<'a>(lines: &'a [serde_json::Value], path: &Path) -> &'a serde_json::Value {
    let real = std::fs::canonicalize(path).unwrap();
    lines
        .iter()
        .find(|l| l["path"].as_str() == real.to_str())
        .unwrap_or_else(|| panic!("no row for {}: {lines:?}", real.display()))
}

/// Dongles named on the command line are identified with their firmware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_identifies_named_dongles() {
    let (im_path, _im) = start_im871a();
    let amb = Pty::open().unwrap();
    let amb_path = amb.slave_path().to_path_buf();
    let (_amb_tx, amb_rx) = mpsc::channel(8);
    tokio::spawn(sim::run_amb8465_sim(amb, amb_rx, Amb8465Sim::default()));

    let out = tokio::time::timeout(
        WAIT,
        Command::new(BIN)
            .args(["-q", "probe", "--json", "--timeout", "500"])
            .arg(&im_path)
            .arg(&amb_path)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = probe_lines(&out);
    let im = row_for(&lines, &im_path);
    assert_eq!(im["status"], "identified");
    assert_eq!(im["driver"], "im871a");
    assert_eq!(im["firmware"], "iM871A fw 0x14 hci 0x01");
    assert_eq!(im["id"], "12345678");
    let amb = row_for(&lines, &amb_path);
    assert_eq!(amb["status"], "identified");
    assert_eq!(amb["driver"], "amb8465");
    assert!(
        amb["firmware"]
            .as_str()
            .unwrap()
            .starts_with("AMB8465 fw 1.2.3"),
        "{amb}"
    );

    // The table form names the same.
    let out = Command::new(BIN)
        .args(["-q", "probe", "--timeout", "500"])
        .arg(&im_path)
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("PATH"), "{table}");
    assert!(
        table.contains("iM871A fw 0x14") && table.contains("identified"),
        "{table}"
    );
}

/// Without names, only ports whose by-id name or USB id belongs to a dongle adapter are
/// written to; a pty behind an unknown name receives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_leaves_unknown_ports_alone() {
    let links = tempfile::tempdir().unwrap();
    let by_id = links.path().join("serial").join("by-id");
    std::fs::create_dir_all(&by_id).unwrap();
    let (im_path, _im) = start_im871a();
    let plain = Pty::open().unwrap();
    std::os::unix::fs::symlink(
        &im_path,
        by_id.join("usb-IMST_GmbH_iM871A-USB_00000001-if00-port0"),
    )
    .unwrap();
    std::os::unix::fs::symlink(plain.slave_path(), by_id.join("usb-Acme_GPS_receiver-if00"))
        .unwrap();

    let out = tokio::time::timeout(
        WAIT,
        Command::new(BIN)
            .args(["-q", "probe", "--json", "--timeout", "500", "--by-id-dir"])
            .arg(&by_id)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let lines = probe_lines(&out);
    let unknown = row_for(&lines, plain.slave_path());
    assert_eq!(unknown["status"], "unknown, not probed");
    assert_eq!(unknown["by_id"], "usb-Acme_GPS_receiver-if00");
    assert!(unknown["driver"].is_null());
    let known = row_for(&lines, &im_path);
    assert_eq!(known["status"], "identified");
    assert_eq!(
        known["by_id"],
        "usb-IMST_GmbH_iM871A-USB_00000001-if00-port0"
    );

    // Nothing was written to the unknown port.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(300), plain.read(&mut buf)).await;
    assert!(read.is_err(), "bytes arrived on the unknown port: {read:?}");
}

/// A configured meter that reports low battery and then falls silent raises `power_low`
/// and `missing` on the alarm topic (QoS 1 through the spool); both survive in the state
/// file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_publishes_meter_alarms() {
    let broker = support::mosquitto::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (device, sim) = start_im871a();
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-alarm\"\n[[radio]]\ndriver = \"im871a\"\ndevice = \"{}\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\ntopic_prefix = \"wmbus\"\n[spool]\ndir = \"{}\"\n\
             [health]\nmissing_factor = 1.5\npublish_interval_secs = 1\n[[meter]]\nid = \"27293981\"\n",
            device.display(),
            broker.port,
            dir.path().join("spool").display()
        ),
    )
    .unwrap();

    let mut o = MqttOptions::new("alarm-sub", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    client
        .subscribe("wmbus/gw-alarm/alarm", QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .subscribe("wmbus/gw-alarm/meter/27293981/health", QoS::AtLeastOnce)
        .await
        .unwrap();
    let alarms: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let health: Arc<Mutex<Option<serde_json::Value>>> = Arc::default();
    let sink = alarms.clone();
    let health_sink = health.clone();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    let sub_task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        if p.topic.ends_with("/alarm") {
                            sink.lock().unwrap().push(v);
                        } else {
                            *health_sink.lock().unwrap() = Some(v);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(WAIT, subscribed_rx)
        .await
        .unwrap()
        .unwrap();

    let state = dir.path().join("state.json");
    let mut daemon = Command::new(BIN)
        .args(["-q", "run", "--config"])
        .arg(&config)
        .arg("--state-file")
        .arg(&state)
        // publish_interval_secs = 1: alarms are evaluated and health published every second.
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Two telegrams 1.2 s apart give the meter its typical interval; then it falls silent.
    // The retained health document says when the first one has been received.
    sim.send(telegram(SONTEX)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let heard = || health.lock().unwrap().as_ref().map(|h| h["heard"].clone());
    while heard() != Some(serde_json::json!(1)) {
        assert!(
            Instant::now() < deadline,
            "health document: {:?}",
            health.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sim.send(telegram(SONTEX_POWER_LOW)).await.unwrap();

    let deadline = Instant::now() + WAIT;
    let raised = |name: &str| {
        alarms
            .lock()
            .unwrap()
            .iter()
            .find(|a| a["alarm"] == name && a["state"] == "raised")
            .cloned()
    };
    while raised("power_low").is_none() || raised("missing").is_none() {
        assert!(
            Instant::now() < deadline,
            "alarms seen: {:?}",
            alarms.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = raised("missing").unwrap();
    assert_eq!(missing["schema"], 1);
    assert_eq!(missing["meter"], "27293981");
    assert!(missing["since"].as_str().unwrap().ends_with('Z'));
    assert!(missing["detail"].as_str().unwrap().contains("silent"));

    let pid = i32::try_from(daemon.id().unwrap()).unwrap();
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    tokio::time::timeout(WAIT, daemon.wait())
        .await
        .unwrap()
        .unwrap();
    sub_task.abort();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let active: BTreeMap<String, String> = saved["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alarm"].as_str().unwrap().to_owned(),
                a["meter"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(active.get("missing").map(String::as_str), Some("27293981"));
    assert_eq!(
        active.get("power_low").map(String::as_str),
        Some("27293981")
    );
}
