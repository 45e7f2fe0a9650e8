//! A network radio (`device = "tcp://host:port"`): an iM871A behind a TCP server, as
//! ser2net or an Ethernet-serial converter puts it on the network. The server is the
//! project's dongle simulator on a pseudo-terminal, bridged to a TCP port. The daemon's
//! radio state goes `running` -> `reopening` while the server is gone -> `running`.
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

use std::time::Duration;

use serde_json::Value;
use support::daemon::{Daemon, TestConfig};
use support::mosquitto::{free_port, Mosquitto};
use support::sim::{self, Im871aSim, Pty, SimInput};
use support::subscriber::Subscriber;
use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;

const LIMIT: Duration = Duration::from_secs(30);

/// A configured meter: id and key.
type Meter = (String, Option<String>);

/// The demo's telegrams with the keys the demo configures for them.
fn demo_telegrams() -> (Vec<Vec<u8>>, Vec<Meter>) {
    let dir = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{dir}/config/demo-telegrams.txt")).unwrap();
    let frames: Vec<Vec<u8>> = wmbusd::radio::replay::parse_text(&text)
        .into_iter()
        .map(|t| t.unwrap().frame)
        .collect();
    let demo = std::fs::read_to_string(format!("{dir}/config/demo.toml")).unwrap();
    let mut meters = Vec::new();
    for block in demo.split("[[meter]]").skip(1) {
        let value = |key: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(&format!("{key} = \""))
                    .map(|v| v.trim_end_matches('"').to_owned())
            })
        };
        meters.push((value("id").unwrap(), value("key")));
    }
    (frames, meters)
}

/// One "server": a simulated iM871A on a pty, its tty bridged to each TCP connection.
struct Server {
    telegrams: mpsc::Sender<SimInput>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(port: u16) -> Server {
        let pty = Pty::open().expect("pty");
        let tty = pty.slave_path().to_path_buf();
        let (tx, rx) = mpsc::channel(16);
        let sim = tokio::spawn(async move {
            let _ = sim::run_im871a_sim(pty, rx, Im871aSim::default()).await;
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the radio's port");
        let bridge = tokio::spawn(async move {
            // ser2net keeps the tty open across connections.
            let Ok(mut serial) =
                tokio_serial::new(tty.to_string_lossy(), 57600).open_native_async()
            else {
                return;
            };
            while let Ok((mut tcp, _)) = listener.accept().await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut serial).await;
            }
        });
        Server {
            telegrams: tx,
            tasks: vec![sim, bridge],
        }
    }

    async fn send(&self, frame: &[u8]) {
        self.telegrams
            .send(SimInput::Telegram {
                frame: frame.to_vec(),
                rssi_raw: 0x9D,
            })
            .await
            .expect("simulator running");
    }

    /// Gone: the listener, the open connection and the dongle behind it.
    fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

fn radio_state(sub: &Subscriber, topic: &str) -> Option<String> {
    let m = sub.last_on(topic)?;
    let doc: Value = serde_json::from_slice(&m.payload).ok()?;
    doc["state"].as_str().map(str::to_owned)
}

async fn wait_state(sub: &Subscriber, topic: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while radio_state(sub, topic).as_deref() != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "radio state {:?}, not {want}",
            radio_state(sub, topic)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_over_tcp_survive_the_server_going_away() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let radio_port = free_port();
    let device = format!("tcp://127.0.0.1:{radio_port}");
    let (frames, meters) = demo_telegrams();
    let mut config = TestConfig::new(dir.path(), "gw", broker.port)
        .radio("im871a", std::path::Path::new(&device));
    for (id, key) in &meters {
        config = config.meter(id, key.as_deref());
    }
    let config_path = dir.path().join("wmbusd.toml");
    config.write(&config_path);
    let topic = format!(
        "wmbus/gw/radio/{}",
        wmbusd::health::radio_topic_name(&device)
    );
    let sub = Subscriber::start(broker.port, "tcp-radio-test", &["wmbus/gw/#"]).await;

    let server = Server::start(radio_port).await;
    let mut daemon = Daemon::start(&config_path, &dir.path().join("state.json"));
    wait_state(&sub, &topic, "running").await;
    // Plain, mode 5 and ELL AES-CTR telegrams of three meters.
    for frame in frames.iter().take(3) {
        server.send(frame).await;
    }
    sub.wait_until("3 readings over TCP", LIMIT, |m| {
        m.iter()
            .filter(|m| m.topic.starts_with("wmbus/gw/meter/") && !m.topic.ends_with("/health"))
            .count()
            == 3
    })
    .await;

    // The server goes away for 10 s; what the dongle heard then never reaches us.
    let gone = server.telegrams.clone();
    server.stop();
    wait_state(&sub, &topic, "reopening").await;
    for frame in frames.iter().skip(3).take(2) {
        let _ = gone
            .send(SimInput::Telegram {
                frame: frame.clone(),
                rssi_raw: 0x9D,
            })
            .await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(radio_state(&sub, &topic).as_deref(), Some("reopening"));
    daemon.assert_running("while the network radio is gone");

    let server = Server::start(radio_port).await;
    wait_state(&sub, &topic, "running").await;
    for frame in frames.iter().skip(5).take(3) {
        server.send(frame).await;
    }
    sub.wait_until("3 more readings after the reconnect", LIMIT, |m| {
        m.iter()
            .filter(|m| m.topic.starts_with("wmbus/gw/meter/") && !m.topic.ends_with("/health"))
            .count()
            == 6
    })
    .await;
    let ids: Vec<String> = sub
        .on("wmbus/gw/meter/")
        .iter()
        .filter(|m| !m.topic.ends_with("/health"))
        .map(|m| m.topic.trim_start_matches("wmbus/gw/meter/").to_owned())
        .collect();
    let lost: Vec<&str> = frames
        .iter()
        .skip(3)
        .take(2)
        .map(|f| {
            let frame = wmbusd::frame::RadioFrame {
                crc: wmbusd::frame::CrcState::Checked(None),
                ..wmbusd::frame::RadioFrame::new(f.clone())
            };
            let mut decoder = wmbusd::decode::Decoder::new(wmbusd::keys::KeyStore::new());
            let id = decoder
                .read(&frame)
                .map_or_else(|e| e.meter, |r| r.meter_id());
            ids.iter()
                .find(|i| Some(*i) == id.as_ref())
                .map_or("lost", |_| "delivered")
        })
        .collect();
    assert_eq!(lost, ["lost", "lost"], "{ids:?}");
    // The summary names the radio's state (published at start, then every interval).
    let health = sub.last_on("wmbus/gw/health").expect("health summary");
    let health: Value = serde_json::from_slice(&health.payload).unwrap();
    let state = health["radios"][device.as_str()]
        .as_str()
        .unwrap_or_default();
    assert!(
        ["opening", "running", "reopening"].contains(&state),
        "{health}"
    );
    daemon.terminate().await;
    server.stop();
}

/// An unplugged dongle: its radio topic says `missing`, the daemon stays `online`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_dongle_is_missing_on_its_radio_topic() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("ttyUSB-unplugged");
    let config = TestConfig::new(dir.path(), "gw", broker.port).radio("im871a", &device);
    let config_path = dir.path().join("wmbusd.toml");
    config.write(&config_path);
    let sub = Subscriber::start(broker.port, "radio-state-test", &["wmbus/gw/#"]).await;
    let mut daemon = Daemon::start(&config_path, &dir.path().join("state.json"));
    let name = wmbusd::health::radio_topic_name(&device.to_string_lossy());
    let topic = format!("wmbus/gw/radio/{name}");
    wait_state(&sub, &topic, "missing").await;
    let doc: Value = serde_json::from_slice(&sub.last_on(&topic).unwrap().payload).unwrap();
    assert_eq!(doc["radio"], device.to_string_lossy().as_ref(), "{doc}");
    assert!(
        doc["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cannot open")),
        "{doc}"
    );
    // Retained: a subscriber arriving later is told at once.
    let late = Subscriber::start(broker.port, "radio-state-late", &[topic.as_str()]).await;
    late.wait_until("retained radio state", LIMIT, |m| {
        m.iter().any(|m| m.topic == topic && m.retain)
    })
    .await;
    let status = sub.last_on("wmbus/gw/status").expect("status");
    assert_eq!(status.payload, b"online");
    daemon.terminate().await;
}
