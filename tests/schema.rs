//! The published JSON Schemas (`schema/*.schema.json`, draft 2020-12) against what the
//! daemon really publishes: a replay of the demo telegrams through a real mosquitto, in
//! the full and the compact payload, with raw frames on. Every schema is closed
//! (`additionalProperties: false`), so a payload that changes without its schema fails
//! here; a deliberately broken payload must fail too.
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
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::daemon::run_to_exit;
use support::mosquitto::Mosquitto;
use support::subscriber::{Message, Subscriber};

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{name}"
    );
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_valid(v: &jsonschema::Validator, what: &str, doc: &Value) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{doc}");
}

/// The demo configuration with a replay radio, MQTT on `port` and raw frames on.
fn config(dir: &Path, port: u16, payload: &str) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = std::fs::read_to_string(format!("{root}/config/demo.toml"))
        .unwrap()
        .replace(
            "@TELEGRAMS@",
            &format!("\"{root}/config/demo-telegrams.txt\""),
        )
        .replace("@SPOOL@", &format!("\"{}\"", dir.join("spool").display()))
        .replace("@INTERVAL@", "0")
        .replace(
            "[spool]",
            &format!(
                "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\npayload = \"{payload}\"\n\
                 publish_raw = true\nclient_id = \"schema-{payload}\"\n\n[spool]"
            ),
        );
    let path = dir.join(format!("{payload}.toml"));
    std::fs::write(&path, demo).unwrap();
    path
}

/// Everything the daemon published for the demo replay in `payload` form.
async fn published(broker: &Mosquitto, payload: &str) -> Vec<Message> {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), broker.port, payload);
    let sub = Subscriber::start(broker.port, &format!("schema-sub-{payload}"), &["wmbus/#"]).await;
    let (status, log) = run_to_exit(
        &[
            "run".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
            "--state-file".as_ref(),
            dir.path().join("state.json").as_os_str(),
            "--exit-after-replay".as_ref(),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(status.code(), Some(0), "{log}");
    sub.wait_until("the health summary", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == "wmbus/demo/health")
    })
    .await;
    sub.messages()
}

fn docs<'a>(messages: &'a [Message], pick: impl Fn(&str) -> bool + 'a) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| pick(&m.topic) && !m.payload.is_empty())
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

/// Schema file, the messages, which topics carry it, at least how many.
type Kind<'a> = (&'a str, &'a [Message], fn(&str) -> bool, usize);

fn is_reading(topic: &str) -> bool {
    topic.starts_with("wmbus/demo/meter/") && !topic.ends_with("/health")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_payload_validates_against_its_schema() {
    let broker = Mosquitto::start();
    let full = published(&broker, "full").await;
    let compact = published(&broker, "compact").await;

    let kinds: [Kind<'_>; 6] = [
        ("reading.v1.schema.json", &full, is_reading, 8),
        ("reading-compact.v1.schema.json", &compact, is_reading, 8),
        ("raw.v1.schema.json", &full, |t| t == "wmbus/demo/raw", 9),
        (
            "health.v2.schema.json",
            &full,
            |t| t == "wmbus/demo/health",
            1,
        ),
        (
            "meter-health.v2.schema.json",
            &full,
            |t| t.starts_with("wmbus/demo/meter/") && t.ends_with("/health"),
            9,
        ),
        (
            "radio.v1.schema.json",
            &full,
            |t| t.starts_with("wmbus/demo/radio/"),
            1,
        ),
    ];
    for (schema, messages, pick, at_least) in kinds {
        let v = validator(schema);
        let found = docs(messages, pick);
        assert!(
            found.len() >= at_least,
            "{schema}: {} payloads",
            found.len()
        );
        for doc in &found {
            assert_valid(&v, schema, doc);
        }
    }
    // Driver fields, ELL and mode 7 readings are among them.
    let readings = docs(&full, is_reading);
    assert!(readings
        .iter()
        .any(|r| r["security"]["scheme"] == "ell_aes_ctr"));
    assert!(readings.iter().any(|r| r["fields"].is_object()));
}

#[test]
fn alarm_changes_validate_against_their_schema() {
    use wmbusd::health::Alarms;
    use wmbusd::pipeline::MeterStats;
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let mut alarms = Alarms::new(3.0, t0);
    let mut stats = MeterStats::default();
    stats.configured = true;
    stats.heard = 1;
    stats.status_flags = vec!["power_low".to_owned()];
    stats.error_flags = Some(0x10);
    let meters: BTreeMap<&str, &MeterStats> = [("12345678", &stats)].into();
    let raised = alarms.evaluate(&meters, t0);
    let cleared = alarms.evaluate(&BTreeMap::new(), t0 + Duration::from_secs(60));
    let v = validator("alarm.v1.schema.json");
    assert!(
        raised.len() == 2 && cleared.len() == 2,
        "{raised:?} {cleared:?}"
    );
    for change in raised.iter().chain(&cleared) {
        assert_valid(&v, "alarm", &serde_json::to_value(change).unwrap());
    }
}

#[test]
fn broken_payloads_do_not_validate() {
    let reading = validator("reading.v1.schema.json");
    let good: Value = serde_json::from_str(
        r#"{"schema":1,"meter":{"id":"12345678","manufacturer":"ELS","version":51,"device_type":"gas"},
            "status":{"byte":0,"flags":[]},"security":{"mode":5,"decrypted":true,"verified_by":"2f2f"},
            "records":[{"quantity":"volume","value":28504.27,"unit":"m3","function":"instantaneous",
                        "storage":0,"tariff":0,"subunit":0,"dif_vif":"0C14"}]}"#,
    )
    .unwrap();
    assert_valid(&reading, "good reading", &good);
    let mut broken = Vec::new();
    let mut b = good.clone();
    b["security"]["mode"] = "5".into();
    broken.push(b);
    let mut b = good.clone();
    b["surprise"] = 1.into();
    broken.push(b);
    let mut b = good.clone();
    b["meter"]["id"] = "1234567".into();
    broken.push(b);
    let mut b = good.clone();
    b["records"][0]["function"] = "average".into();
    broken.push(b);
    let mut b = good;
    b["schema"] = 2.into();
    broken.push(b);
    for b in &broken {
        assert!(!reading.is_valid(b), "accepted {b}");
    }
    let health = validator("health.v2.schema.json");
    assert!(!health.is_valid(&serde_json::json!({"schema": 2})));
}
