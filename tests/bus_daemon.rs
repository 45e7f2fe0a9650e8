//! The daemon with one radio (a simulated iM871A) and one wired bus (simulated slaves),
//! both on real pseudo terminals, publishing to a real mosquitto: both kinds of readings
//! reach MQTT and the health document, and a dead slave is `missing` there.
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

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use support::bus_pty::run_bus_sim;
use support::daemon::{Daemon, TestConfig};
use support::mosquitto::Mosquitto;
use support::sim::{self, Im871aSim, Pty, SimInput};
use support::subscriber::Subscriber;
use tokio::sync::mpsc;
use wmbusd::bus::sim::{identity, Fault, SimBus, SimSlave};
use wmbusd::wire::apl::{DataField, RecordRepr, Vib};

const GW: &str = "gw-bus";
const LIMIT: Duration = Duration::from_secs(20);

/// A plaintext wireless telegram of the corpus (meter 33221100).
fn radio_telegram() -> (String, Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wmbusmeters-public.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let row: Json = text
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .find(|v| v["meter_id"] == "33221100" && v["frame"] == "wmbus")
        .unwrap();
    let bytes = hex::decode(row["telegram"].as_str().unwrap()).unwrap();
    ("33221100".to_owned(), bytes)
}

fn volume(litres: i64) -> Vec<u8> {
    RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), litres)
        .unwrap()
        .to_bytes()
        .unwrap()
}

fn payload_json(payload: &[u8]) -> Json {
    serde_json::from_slice(payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radio_and_bus_readings_reach_mqtt_and_health() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();

    let link = dir.path().join("usb-im871a-if00");
    let radio_pty = Pty::open().unwrap();
    sim::point_symlink(&link, radio_pty.slave_path()).unwrap();
    let (radio_tx, radio_rx) = mpsc::channel(16);
    let _radio = tokio::spawn(sim::run_im871a_sim(
        radio_pty,
        radio_rx,
        Im871aSim::default(),
    ));

    let bus_pty = Pty::open().unwrap();
    let bus_path = bus_pty.slave_path().to_path_buf();
    let slaves = vec![
        SimSlave::new(
            Some(3),
            identity(33_333_333, "TST", 1, 0x07).unwrap(),
            vec![volume(3_000)],
        ),
        SimSlave::new(
            None,
            identity(12_345_678, "TST", 1, 0x04).unwrap(),
            vec![volume(1), volume(2)],
        ),
        SimSlave::new(
            Some(9),
            identity(99_999_999, "TST", 1, 0x07).unwrap(),
            vec![volume(9)],
        )
        .fault(Fault::Dead),
    ];
    let _bus = tokio::spawn(run_bus_sim(
        bus_pty,
        Arc::new(Mutex::new(SimBus::new(slaves))),
    ));

    let config_path = dir.path().join("wmbusd.toml");
    let mut toml = TestConfig::new(dir.path(), GW, broker.port)
        .radio("im871a", &link)
        .to_toml();
    toml.push_str(&format!(
        "[[bus]]\nname = \"cellar\"\ndevice = \"{}\"\nbaud = 38400\npoll_interval = \"1s\"\n\
         meters = [3, \"12345678\", 9]\nmissing_after = 1\n",
        bus_path.display()
    ));
    std::fs::write(&config_path, toml).unwrap();

    let sub = Subscriber::start(
        broker.port,
        "bus-e2e",
        &[
            &format!("wmbus/{GW}/meter/#"),
            &format!("wmbus/{GW}/health"),
        ],
    )
    .await;
    let mut d = Daemon::start(&config_path, &dir.path().join("state.json"));
    d.wait_log_count(&[": ready ("], 2, LIMIT).await;

    let (radio_id, telegram) = radio_telegram();
    radio_tx
        .send(SimInput::Telegram {
            frame: telegram,
            rssi_raw: 0x9D,
        })
        .await
        .unwrap();

    let topic = |id: &str| format!("wmbus/{GW}/meter/{id}");
    for id in [radio_id.as_str(), "33333333", "12345678"] {
        sub.wait_until(&format!("a reading of {id}"), LIMIT, |msgs| {
            msgs.iter().any(|m| m.topic == topic(id))
        })
        .await;
    }
    let last = |id: &str| payload_json(&sub.last_on(&topic(id)).unwrap().payload);
    assert_eq!(last("33333333")["link_mode"], "wired");
    assert_eq!(last("33333333")["records"][0]["value"].to_string(), "3");
    assert_eq!(last("12345678")["link_mode"], "wired");
    assert_ne!(last(&radio_id)["link_mode"], "wired");
    d.wait_log(&["cellar", "primary address 9 missing"], LIMIT)
        .await;

    // The health documents (per meter and the summary) go out at shutdown at the latest.
    d.terminate().await;
    let health_topic = format!("wmbus/{GW}/health");
    let meter_health = |id: &str| format!("wmbus/{GW}/meter/{id}/health");
    sub.wait_until("the health documents", LIMIT, |msgs| {
        msgs.iter().any(|m| m.topic == health_topic)
            && msgs.iter().any(|m| m.topic == meter_health("33333333"))
    })
    .await;
    let doc = |id: &str| payload_json(&sub.last_on(&meter_health(id)).unwrap().payload);
    assert_eq!(doc("33333333")["link_mode"], "wired");
    assert_eq!(doc("12345678")["link_mode"], "wired");
    assert!(doc(&radio_id)["decoded"].as_u64().unwrap() >= 1);
    assert_ne!(doc(&radio_id)["link_mode"], "wired");
    let health = payload_json(&sub.last_on(&health_topic).unwrap().payload);
    let cellar = &health["buses"]["cellar"];
    assert_eq!(cellar["meters"]["9"]["state"], "missing", "{health}");
    assert_eq!(cellar["meters"]["3"]["state"], "ok");
    assert_eq!(cellar["meters"]["3"]["meter_id"], "33333333");
    assert_eq!(cellar["meters"]["12345678"]["state"], "ok");
}
