//! The MQTT task against a real mosquitto broker (see tests/support/mosquitto.rs).
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
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use support::mosquitto::{free_port, make_test_certificates, run_tool, Mosquitto};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use wmbusd::mqtt::{self, MqttConfig, MqttState, RetainedPublisher, TlsConfig};
use wmbusd::spool::{FsyncPolicy, Spool, SpoolConfig, SpoolHandle};

const PREFIX: &str = "wmbus";
const GW: &str = "gw-test";

/// What a subscriber on `#` has seen.
#[derive(Default)]
struct Seen {
    /// Payloads per topic, in arrival order (duplicates kept).
    messages: Vec<(String, Vec<u8>, bool)>,
}

struct Subscriber {
    seen: Arc<Mutex<Seen>>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Subscriber {
    /// Subscribes to `filter` with a persistent session, so QoS 1 messages published while it
    /// is disconnected (broker restart) are queued for it.
    async fn start(port: u16, id: &str, filter: &str) -> Subscriber {
        Self::start_login(port, id, filter, None).await
    }

    async fn start_login(
        port: u16,
        id: &str,
        filter: &str,
        login: Option<(&str, &str)>,
    ) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        if let Some((user, pass)) = login {
            o.set_credentials(user, pass);
        }
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let filter = filter.to_string();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock().unwrap().messages.push((
                            p.topic.clone(),
                            p.payload.to_vec(),
                            p.retain,
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscriber did not get SUBACK within 10 s")
            .expect("subscriber task ended");
        Subscriber {
            seen,
            _task: AbortOnDrop(task),
        }
    }

    fn unique_payloads(&self, topic_part: &str) -> HashSet<Vec<u8>> {
        self.seen
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|(t, _, _)| t.contains(topic_part))
            .map(|(_, p, _)| p.clone())
            .collect()
    }

    fn last_on(&self, topic: &str) -> Option<(Vec<u8>, bool)> {
        self.seen
            .lock()
            .unwrap()
            .messages
            .iter()
            .rev()
            .find(|(t, _, _)| t == topic)
            .map(|(_, p, r)| (p.clone(), *r))
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

fn config(port: u16, client: &str) -> MqttConfig {
    let mut c = MqttConfig::new("127.0.0.1", port, GW);
    c.client_id = client.into();
    c.topic_prefix = PREFIX.into();
    c.keep_alive = Duration::from_secs(2);
    c.reconnect_min = Duration::from_millis(200);
    c.reconnect_max = Duration::from_secs(1);
    c.max_inflight = 16;
    c
}

fn spool_in(dir: &std::path::Path) -> SpoolHandle {
    SpoolHandle::new(Spool::open(SpoolConfig::new(dir)).unwrap())
}

/// A spool that fsyncs rarely, for tests that append many records quickly.
fn spool_fast(dir: &std::path::Path) -> SpoolHandle {
    let cfg = SpoolConfig {
        fsync: FsyncPolicy::Interval(Duration::from_secs(60)),
        ..SpoolConfig::new(dir)
    };
    SpoolHandle::new(Spool::open(cfg).unwrap())
}

struct Running {
    task: JoinHandle<Result<(), mqtt::MqttError>>,
    shutdown: watch::Sender<mqtt::Stop>,
    state: watch::Receiver<MqttState>,
}

fn start_publisher(cfg: MqttConfig, spool: SpoolHandle, retained: RetainedPublisher) -> Running {
    let (shutdown, shutdown_rx) = watch::channel(mqtt::Stop::Running);
    let (state_tx, state) = watch::channel(MqttState::default());
    let task = tokio::spawn(mqtt::run(cfg, spool, retained, shutdown_rx, state_tx));
    Running {
        task,
        shutdown,
        state,
    }
}

impl Running {
    async fn stop(self) {
        // No drain: stop taking records at once (the in-flight ones are still awaited).
        self.shutdown
            .send_replace(mqtt::Stop::drain_for(Some(Duration::ZERO)));
        let res = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("mqtt::run did not stop within 10 s")
            .expect("mqtt task panicked");
        res.expect("mqtt::run failed");
        assert_eq!(*self.state.borrow(), MqttState::Stopped);
    }
}

async fn append_readings(spool: &SpoolHandle, range: std::ops::RangeInclusive<u32>) {
    for i in range {
        let topic = mqtt::topic_meter(PREFIX, GW, &format!("{:08}", i % 7));
        spool
            .append(topic, format!("{{\"n\":{i}}}").into_bytes())
            .await
            .unwrap();
    }
}

fn expected_payloads(range: std::ops::RangeInclusive<u32>) -> HashSet<Vec<u8>> {
    range
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_spooled_readings_and_status() {
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "sub-a", "#").await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    append_readings(&spool, 1..=50).await;
    let retained = RetainedPublisher::new();
    let running = start_publisher(
        config(broker.port, "pub-a"),
        spool.clone(),
        retained.clone(),
    );

    wait_for("50 readings", Duration::from_secs(20), || {
        sub.unique_payloads("/meter/") == expected_payloads(1..=50)
    })
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;
    // Readings appended while connected go out too.
    append_readings(&spool, 51..=60).await;
    retained.publish_retained(mqtt::topic_meters(PREFIX, GW), b"{\"v\":1}".to_vec());
    retained.publish_retained(mqtt::topic_meters(PREFIX, GW), b"{\"v\":2}".to_vec());
    wait_for("10 more readings", Duration::from_secs(20), || {
        sub.unique_payloads("/meter/") == expected_payloads(1..=60)
    })
    .await;
    let meters = mqtt::topic_meters(PREFIX, GW);
    wait_for("meters document", Duration::from_secs(10), || {
        sub.last_on(&meters).map(|(p, _)| p) == Some(b"{\"v\":2}".to_vec())
    })
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;

    // A late subscriber gets the retained status and meters document.
    let status = mqtt::topic_status(PREFIX, GW);
    let late = Subscriber::start(broker.port, "sub-a-late", &format!("{PREFIX}/{GW}/+")).await;
    wait_for("retained online", Duration::from_secs(10), || {
        late.last_on(&status) == Some((b"online".to_vec(), true))
    })
    .await;
    wait_for("retained meters", Duration::from_secs(10), || {
        late.last_on(&meters) == Some((b"{\"v\":2}".to_vec(), true))
    })
    .await;

    running.stop().await;
    // Clean shutdown leaves `offline` retained.
    let after = Subscriber::start(broker.port, "sub-a-after", &status).await;
    wait_for("retained offline", Duration::from_secs(10), || {
        after.last_on(&status) == Some((b"offline".to_vec(), true))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing() {
    let mut broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "sub-b", &format!("{PREFIX}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    let mut running = start_publisher(
        config(broker.port, "pub-b"),
        spool.clone(),
        RetainedPublisher::new(),
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        running.state.wait_for(|s| *s == MqttState::Connected),
    )
    .await
    .expect("publisher connected within 10 s")
    .unwrap();

    broker.stop();
    append_readings(&spool, 1..=1000).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        running
            .state
            .wait_for(|s| matches!(s, MqttState::Disconnected { .. })),
    )
    .await
    .expect("publisher noticed the outage within 10 s")
    .unwrap();
    assert_eq!(spool.pending().unwrap(), 1000);
    broker.restart();

    wait_for(
        "1000 readings after the outage",
        Duration::from_secs(60),
        || sub.unique_payloads("/meter/") == expected_payloads(1..=1000),
    )
    .await;
    wait_for("spool drained", Duration::from_secs(20), || {
        spool.pending().unwrap() == 0
    })
    .await;
    running.stop().await;
}

/// Collects log output of the current thread's tracing subscriber.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// Single-threaded so the thread-local log subscriber sees the MQTT task's events.
#[tokio::test(flavor = "current_thread")]
async fn retries_until_a_broker_appears() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    append_readings(&spool, 1..=20).await;
    let mut running = start_publisher(
        config(port, "pub-c"),
        spool.clone(),
        RetainedPublisher::new(),
    );

    let expected_line =
        format!("broker 127.0.0.1:{port} unreachable: connection refused; retrying in");
    wait_for("two reconnect log lines", Duration::from_secs(10), || {
        logs.text().matches(&expected_line).count() >= 2
    })
    .await;
    assert!(matches!(
        *running.state.borrow_and_update(),
        MqttState::Disconnected { .. } | MqttState::Connecting
    ));
    assert_eq!(spool.pending().unwrap(), 20);

    let broker = Mosquitto::start_on(port);
    let sub = Subscriber::start(port, "sub-c", &format!("{PREFIX}/#")).await;
    wait_for(
        "20 readings once the broker is up",
        Duration::from_secs(20),
        || sub.unique_payloads("/meter/") == expected_payloads(1..=20),
    )
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;
    running.stop().await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_marks_gateway_offline() {
    let broker = Mosquitto::start();
    let status = mqtt::topic_status(PREFIX, GW);
    let sub = Subscriber::start(broker.port, "sub-d", &status).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    let mut running = start_publisher(
        config(broker.port, "pub-d"),
        spool,
        RetainedPublisher::new(),
    );
    wait_for("online", Duration::from_secs(10), || {
        sub.last_on(&status).map(|(p, _)| p) == Some(b"online".to_vec())
    })
    .await;
    tokio::time::timeout(
        Duration::from_secs(5),
        running.state.wait_for(|s| *s == MqttState::Connected),
    )
    .await
    .unwrap()
    .unwrap();

    // Kill the client without DISCONNECT: the task (and its socket) vanish.
    running.task.abort();
    let _ = running.task.await;
    wait_for("last will offline", Duration::from_secs(15), || {
        sub.last_on(&status).map(|(p, _)| p) == Some(b"offline".to_vec())
    })
    .await;
    let late = Subscriber::start(broker.port, "sub-d-late", &status).await;
    wait_for("retained will", Duration::from_secs(10), || {
        late.last_on(&status) == Some((b"offline".to_vec(), true))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_password_login() {
    let port = free_port();
    let _broker = Mosquitto::start_with(port, |dir| {
        run_tool(
            dir,
            "mosquitto_passwd",
            &["-c", "-b", "passwd", "gw", "right-pw"],
        );
        format!(
            "allow_anonymous false\npassword_file {}\n",
            dir.join("passwd").display()
        )
    });
    let sub = Subscriber::start_login(
        port,
        "sub-e",
        &format!("{PREFIX}/#"),
        Some(("gw", "right-pw")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    append_readings(&spool, 1..=5).await;

    let mut wrong = config(port, "pub-e");
    wrong.username = Some("gw".into());
    wrong.password = Some("wrong-pw".into());
    let mut running = start_publisher(wrong, spool.clone(), RetainedPublisher::new());
    let state = tokio::time::timeout(
        Duration::from_secs(10),
        running
            .state
            .wait_for(|s| matches!(s, MqttState::Disconnected { .. })),
    )
    .await
    .expect("login refusal within 10 s")
    .unwrap()
    .clone();
    let MqttState::Disconnected { reason, .. } = state else {
        unreachable!()
    };
    assert!(reason.contains("refused login"), "{reason}");
    assert!(!reason.contains("wrong-pw"));
    assert_eq!(spool.pending().unwrap(), 5);
    running.stop().await;

    let mut right = config(port, "pub-e");
    right.username = Some("gw".into());
    right.password = Some("right-pw".into());
    let running = start_publisher(right, spool.clone(), RetainedPublisher::new());
    wait_for(
        "5 readings with the right password",
        Duration::from_secs(20),
        || sub.unique_payloads("/meter/") == expected_payloads(1..=5),
    )
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ca_file() {
    let port = free_port();
    let tls_port = free_port();
    let broker = Mosquitto::start_with(port, |dir| {
        make_test_certificates(dir);
        let d = dir.display();
        format!(
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n\
             keyfile {d}/server.key\n"
        )
    });
    // The subscriber uses the plain listener of the same broker.
    let sub = Subscriber::start(port, "sub-f", &format!("{PREFIX}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    append_readings(&spool, 1..=5).await;
    let mut c = config(tls_port, "pub-f");
    c.host = "localhost".into();
    c.tls = Some(TlsConfig {
        ca_file: broker.dir().join("ca.crt"),
        client_cert: None,
        client_key: None,
    });
    let running = start_publisher(c, spool.clone(), RetainedPublisher::new());
    wait_for("5 readings over TLS", Duration::from_secs(20), || {
        sub.unique_payloads("/meter/") == expected_payloads(1..=5)
    })
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_ca_file_fails_run() {
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_in(dir.path());
    let mut c = config(free_port(), "pub-g");
    c.tls = Some(TlsConfig {
        ca_file: dir.path().join("missing-ca.pem"),
        client_cert: None,
        client_key: None,
    });
    let running = start_publisher(c, spool, RetainedPublisher::new());
    let err = tokio::time::timeout(Duration::from_secs(5), running.task)
        .await
        .expect("run returns promptly")
        .expect("no panic")
        .unwrap_err();
    assert!(err.to_string().contains("missing-ca.pem"), "{err}");
}

/// Stopping mid-stream: whatever the spool forgot was received by the broker, and a restarted
/// daemon (spool reopened from disk) delivers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_stream_then_restart_delivers_everything() {
    const TOTAL: u32 = 3_000;
    let broker = Mosquitto::start();
    let sub = Subscriber::start(broker.port, "sub-h", &format!("{PREFIX}/#")).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = spool_fast(dir.path());
    append_readings(&spool, 1..=TOTAL).await;
    let mut running = start_publisher(
        config(broker.port, "pub-h"),
        spool.clone(),
        RetainedPublisher::new(),
    );
    // Stop as soon as it is connected: the first in-flight window is out, the rest is not.
    tokio::time::timeout(
        Duration::from_secs(10),
        running.state.wait_for(|s| *s == MqttState::Connected),
    )
    .await
    .expect("publisher connected within 10 s")
    .unwrap();
    running.stop().await;

    let still_pending: HashSet<u64> = spool
        .lock()
        .unwrap()
        .peek_from(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert!(
        !still_pending.is_empty(),
        "stopped before the end of the backlog"
    );
    // Readings were appended in order, so seq n carries reading n.
    let acked: HashSet<Vec<u8>> = (1..=TOTAL)
        .filter(|n| !still_pending.contains(&u64::from(*n)))
        .map(|n| format!("{{\"n\":{n}}}").into_bytes())
        .collect();
    wait_for(
        "every acknowledged reading at the subscriber",
        Duration::from_secs(10),
        || sub.unique_payloads("/meter/").is_superset(&acked),
    )
    .await;

    drop(spool);
    let spool = spool_fast(dir.path());
    assert_eq!(spool.pending().unwrap(), still_pending.len());
    let running = start_publisher(
        config(broker.port, "pub-h"),
        spool.clone(),
        RetainedPublisher::new(),
    );
    wait_for("all readings", Duration::from_secs(60), || {
        sub.unique_payloads("/meter/") == expected_payloads(1..=TOTAL)
    })
    .await;
    wait_for("spool drained", Duration::from_secs(10), || {
        spool.pending().unwrap() == 0
    })
    .await;
    running.stop().await;
}
