//! Home Assistant discovery against a real mosquitto: the demo meters announced from their
//! real telegrams, each sensor's `value_template` resolving in the reading the daemon
//! published, and a meter that leaves the configuration removed after a restart.
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
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::daemon::run_to_exit;
use support::mosquitto::Mosquitto;
use support::subscriber::{Message, Subscriber};

const HYDRUS: &str = "65656565";

/// The demo configuration (real telegrams, their keys) publishing to `port`, with discovery.
fn config(dir: &Path, port: u16, without: Option<&str>) -> PathBuf {
    let demo = std::fs::read_to_string("config/demo.toml").unwrap();
    let telegrams = Path::new("config/demo-telegrams.txt")
        .canonicalize()
        .unwrap();
    let mut text = demo
        .replace(
            "@TELEGRAMS@",
            &format!("{:?}", telegrams.display().to_string()),
        )
        .replace(
            "@SPOOL@",
            &format!("{:?}", dir.join("spool").display().to_string()),
        )
        .replace("@INTERVAL@", "0");
    if let Some(id) = without {
        let block = format!("[[meter]]\nid = \"{id}\"\n");
        let start = text.find(&block).unwrap();
        let end = text[start + block.len()..]
            .find("[[meter]]")
            .map_or(text.len(), |n| start + block.len() + n);
        text.replace_range(start..end, "");
    }
    text.push_str(&format!(
        "\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-ha\"\n\n[homeassistant]\nenabled = true\n"
    ));
    let path = dir.join(if without.is_some() {
        "fewer.toml"
    } else {
        "wmbusd.toml"
    });
    std::fs::write(&path, text).unwrap();
    path
}

async fn run(config: &Path, state: &Path) {
    let args: Vec<&OsStr> = vec![
        "run".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--state-file".as_ref(),
        state.as_os_str(),
        "--exit-after-replay".as_ref(),
        "--drain-timeout".as_ref(),
        "20s".as_ref(),
    ];
    let (status, log) = run_to_exit(&args, Duration::from_secs(60)).await;
    assert!(status.success(), "wmbusd run failed: {status:?}\n{log}");
}

/// Discovery configurations by topic (last payload of each; empty: removed).
fn discovery(messages: &[Message]) -> BTreeMap<String, Vec<u8>> {
    messages
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .map(|m| (m.topic.clone(), m.payload.clone()))
        .collect()
}

/// `{{ value_json.a.b }}` resolved in `payload`, as Home Assistant's template engine would.
fn resolve<'a>(template: &str, payload: &'a Value) -> Option<&'a Value> {
    let path = template
        .strip_prefix("{{ value_json.")?
        .strip_suffix(" }}")?;
    path.split('.').try_fold(payload, |v, key| v.get(key))
}

fn check_sensor(topic: &str, doc: &Value, readings: &BTreeMap<String, Value>) {
    let state_topic = doc["state_topic"].as_str().unwrap();
    let reading = readings
        .get(state_topic)
        .unwrap_or_else(|| panic!("{topic}: no reading on {state_topic}"));
    let template = doc["value_template"].as_str().unwrap();
    let value = resolve(template, reading)
        .unwrap_or_else(|| panic!("{topic}: {template} does not resolve in {reading}"));
    if doc.get("state_class").is_some() {
        assert!(value.is_number(), "{topic}: {value} is not a number");
    }
    assert_eq!(doc["availability_topic"], "wmbus/demo/status", "{topic}");
    assert_eq!(
        doc["device"]["identifiers"][0],
        topic.split('/').nth(2).unwrap()
    );
    assert!(doc["unique_id"]
        .as_str()
        .unwrap()
        .starts_with("wmbusd_demo_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_meters_are_announced_and_a_removed_meter_disappears() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let sub = Subscriber::start(broker.port, "ha-watch", &["homeassistant/#", "wmbus/#"]).await;
    run(&config(dir.path(), broker.port, None), &state).await;
    let messages = sub.messages();
    let readings: BTreeMap<String, Value> = messages
        .iter()
        .filter(|m| m.topic.starts_with("wmbus/demo/meter/"))
        .map(|m| (m.topic.clone(), serde_json::from_slice(&m.payload).unwrap()))
        .collect();
    let configs = discovery(&messages);
    for (topic, payload) in &configs {
        let doc: Value = serde_json::from_slice(payload).unwrap();
        check_sensor(topic, &doc, &readings);
    }
    // One sensor per driver field of every configured meter that was heard.
    for (state_topic, reading) in &readings {
        let id = state_topic.rsplit('/').next().unwrap();
        for field in reading["fields"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let topic = format!("homeassistant/sensor/wmbusd_demo_{id}/{field}/config");
            assert!(configs.contains_key(&topic), "{topic} not announced");
        }
    }
    let hydrus: BTreeSet<String> = configs
        .keys()
        .filter(|t| t.contains(&format!("_{HYDRUS}/")))
        .cloned()
        .collect();
    assert!(hydrus.len() >= 4, "hydrus sensors: {hydrus:?}");
    assert!(dir.path().join("homeassistant.json").exists());

    // The hydrus meter leaves the configuration: the next start removes its sensors.
    run(&config(dir.path(), broker.port, Some(HYDRUS)), &state).await;
    let after = discovery(&sub.messages());
    for topic in &hydrus {
        assert_eq!(
            after.get(topic).map(Vec::len),
            Some(0),
            "{topic} not removed"
        );
    }
    // What the broker retains now: every sensor but the hydrus ones.
    let late = Subscriber::start(broker.port, "ha-late", &["homeassistant/#"]).await;
    let expected = configs.len() - hydrus.len();
    late.wait_until("retained discovery", Duration::from_secs(10), |m| {
        m.len() >= expected
    })
    .await;
    let retained = discovery(&late.messages());
    assert!(
        retained.keys().all(|t| !hydrus.contains(t)),
        "removed sensors still retained"
    );
    assert_eq!(retained.len(), expected);
}
