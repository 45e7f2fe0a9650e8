//! MQTT publisher: drains the [`spool`](crate::spool) to the broker with QoS 1.
//!
//! # Delivery
//!
//! Readings reach the broker at least once: a spooled record is acknowledged to the spool only
//! when the broker's PUBACK for it arrives. Each broker connection gets a fresh rumqttc
//! `AsyncClient`/`EventLoop` pair, and after every reconnect all records the spool still holds
//! are published again from the oldest; rumqttc's own in-memory retransmission queue is thus
//! never relied upon (it would not survive a restart anyway). Duplicates are possible, loss is
//! not.
//!
//! PUBACKs carry packet ids, not our sequence numbers. rumqttc processes publish requests in
//! the order they were sent and reports the packet id it assigned to each one as
//! `Outgoing::Publish(pkid)`, in the same order; a FIFO of what we handed to the client maps
//! each such event to its spool sequence number.
//!
//! # Connection
//!
//! - Last will: `<prefix>/<gateway>/status` = `offline`, retained, QoS 1. After every ConnAck
//!   `online` is published there (retained, QoS 1).
//! - Persistent session (`clean_session = false`).
//! - Reconnects back off exponentially (`reconnect_min` doubling up to `reconnect_max`), each
//!   failure logged as `broker HOST:PORT unreachable: REASON; retrying in N s`.
//! - Shutdown: no new records are taken, in-flight PUBACKs are awaited (at most
//!   `shutdown_timeout`), `offline` is published retained, then a clean DISCONNECT.
//!
//! # Retained documents
//!
//! [`RetainedPublisher::publish_retained`] hands the task a retained message (e.g. the
//! `meters` health document) outside the spool: only the latest value per topic is kept, and it
//! is (re)published until the broker acknowledged it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    TlsConfiguration, Transport,
};
use thiserror::Error;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};

use crate::spool::{SpoolError, SpoolHandle};

/// Largest packet we send; readings are far smaller. Larger spooled records are dropped with an
/// error log instead of killing every connection attempt.
pub const MAX_OUTGOING_PACKET: usize = 1024 * 1024;
const MAX_INCOMING_PACKET: usize = 64 * 1024;
/// Headroom in rumqttc's in-flight window for status and retained messages.
const CONTROL_INFLIGHT: u16 = 8;

/// TLS towards the broker (rustls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate and key for mutual TLS; both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Broker connection and topic layout.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// Never logged; `Debug` prints `<redacted>`.
    pub password: Option<String>,
    pub tls: Option<TlsConfig>,
    pub topic_prefix: String,
    pub gateway_id: String,
    /// Zero disables keep-alive; otherwise at least one second.
    pub keep_alive: Duration,
    /// Whether the daemon publishes raw frames on `<prefix>/<gateway>/raw` (read by the
    /// integrator; the task publishes whatever is spooled).
    pub publish_raw: bool,
    /// Spooled records published and not yet acknowledged, at most.
    pub max_inflight: u16,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long shutdown waits for PUBACKs before giving up on them.
    pub shutdown_timeout: Duration,
}

impl MqttConfig {
    /// Defaults for everything but the broker address and identity.
    pub fn new(host: impl Into<String>, port: u16, gateway_id: impl Into<String>) -> Self {
        let gateway_id = gateway_id.into();
        MqttConfig {
            host: host.into(),
            port,
            client_id: format!("wmbusd-{gateway_id}"),
            username: None,
            password: None,
            tls: None,
            topic_prefix: "wmbus".into(),
            gateway_id,
            keep_alive: Duration::from_secs(30),
            publish_raw: false,
            max_inflight: 32,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    pub fn status_topic(&self) -> String {
        topic_status(&self.topic_prefix, &self.gateway_id)
    }
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("topic_prefix", &self.topic_prefix)
            .field("gateway_id", &self.gateway_id)
            .field("keep_alive", &self.keep_alive)
            .field("publish_raw", &self.publish_raw)
            .field("max_inflight", &self.max_inflight)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish()
    }
}

/// `<prefix>/<gateway>/meter/<meter_id>`: one reading, QoS 1.
pub fn topic_meter(prefix: &str, gateway: &str, meter_id: &str) -> String {
    format!("{prefix}/{gateway}/meter/{meter_id}")
}

/// `<prefix>/<gateway>/status`: retained `online` / `offline` (last will).
pub fn topic_status(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/{gateway}/status")
}

/// `<prefix>/<gateway>/raw`: raw frames for central decoding.
pub fn topic_raw(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/{gateway}/raw")
}

/// `<prefix>/<gateway>/meters`: retained health document of all meters.
pub fn topic_meters(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/{gateway}/meters")
}

/// `<prefix>/<gateway>/alarm`: alarms raised by the pipeline.
pub fn topic_alarm(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/{gateway}/alarm")
}

/// What the task is doing, for health reporting and systemd status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MqttState {
    #[default]
    Connecting,
    Connected,
    /// The last attempt failed; the next one starts after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    ShuttingDown,
    Stopped,
}

#[derive(Debug, Error)]
pub enum MqttError {
    #[error("mqtt: cannot read {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mqtt: invalid configuration: {0}")]
    Config(String),
    #[error("mqtt: {0}")]
    Spool(#[from] SpoolError),
}

/// Latest retained message per topic, shared between the daemon and the MQTT task.
#[derive(Clone, Default)]
pub struct RetainedPublisher {
    inner: Arc<RetainedInner>,
}

#[derive(Default)]
struct RetainedInner {
    /// topic -> (payload, generation); the generation grows with every update of any topic.
    latest: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    generation: std::sync::atomic::AtomicU64,
    notify: Notify,
}

impl fmt::Debug for RetainedPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedPublisher").finish_non_exhaustive()
    }
}

impl RetainedPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `payload` as the retained value of `topic`, replacing any value not yet sent.
    /// Never blocks on the network.
    pub fn publish_retained(&self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        match self.inner.latest.lock() {
            Ok(mut latest) => {
                latest.insert(topic.into(), (payload.into(), generation));
            }
            Err(_) => tracing::error!("mqtt: retained message table poisoned; message not sent"),
        }
        self.inner.notify.notify_one();
    }

    /// Messages newer than what `sent` records.
    fn due(&self, sent: &HashMap<String, u64>) -> Vec<(String, Vec<u8>, u64)> {
        let Ok(latest) = self.inner.latest.lock() else {
            return Vec::new();
        };
        latest
            .iter()
            .filter(|(topic, (_, g))| sent.get(*topic).map_or(true, |s| s < g))
            .map(|(t, (p, g))| (t.clone(), p.clone(), *g))
            .collect()
    }
}

/// Builds the rumqttc options: identity, credentials, will, session, TLS.
pub fn mqtt_options(cfg: &MqttConfig) -> Result<MqttOptions, MqttError> {
    if cfg.max_inflight == 0 {
        return Err(MqttError::Config("max_inflight must be at least 1".into()));
    }
    if !cfg.keep_alive.is_zero() && cfg.keep_alive < Duration::from_secs(1) {
        return Err(MqttError::Config(
            "keep_alive must be zero or at least one second".into(),
        ));
    }
    if cfg.reconnect_min.is_zero() || cfg.reconnect_max < cfg.reconnect_min {
        return Err(MqttError::Config(
            "reconnect_min must be above zero and not above reconnect_max".into(),
        ));
    }
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(cfg.keep_alive)
        .set_clean_session(false)
        .set_inflight(cfg.max_inflight.saturating_add(CONTROL_INFLIGHT))
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
        .set_last_will(LastWill::new(
            cfg.status_topic(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    match (&cfg.username, &cfg.password) {
        (Some(user), pass) => {
            o.set_credentials(user.clone(), pass.clone().unwrap_or_default());
        }
        (None, Some(_)) => {
            return Err(MqttError::Config(
                "a password needs a username (MQTT 3.1.1)".into(),
            ))
        }
        (None, None) => {}
    }
    if let Some(tls) = &cfg.tls {
        let ca = read_pem("CA file", &tls.ca_file)?;
        let client_auth = match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => Some((
                read_pem("client certificate", cert)?,
                read_pem("client key", key)?,
            )),
            (None, None) => None,
            _ => {
                return Err(MqttError::Config(
                    "TLS client certificate and key must be given together".into(),
                ))
            }
        };
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::TlsFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Human wording of a connection failure for the reconnect log line.
fn describe(err: &ConnectionError) -> String {
    match err {
        ConnectionError::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused".into(),
            io::ErrorKind::ConnectionReset => "connection reset".into(),
            io::ErrorKind::ConnectionAborted => "connection aborted".into(),
            io::ErrorKind::UnexpectedEof => "connection closed by broker".into(),
            io::ErrorKind::TimedOut => "timed out".into(),
            _ => e.to_string(),
        },
        ConnectionError::ConnectionRefused(code) => format!("broker refused login ({code:?})"),
        ConnectionError::NetworkTimeout => "connect timed out".into(),
        other => other.to_string(),
    }
}

/// Next reconnect delay: doubled, capped.
pub fn next_backoff(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).min(max)
}

/// What a publish handed to rumqttc was, so its PUBACK can be routed.
#[derive(Debug, Clone)]
enum Sent {
    Spooled(u64),
    Retained { topic: String, generation: u64 },
    Online,
    Offline,
}

enum SessionEnd {
    Shutdown,
    Lost { reason: String, connected: bool },
}

/// Aborts the event loop task when a session ends, whichever way.
struct PollTask(JoinHandle<()>);

impl Drop for PollTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs until `shutdown` turns true: connects, publishes spooled records and retained
/// messages, reconnects forever. Returns an error only for bad configuration or a failing
/// spool.
pub async fn run(
    cfg: MqttConfig,
    spool: SpoolHandle,
    retained: RetainedPublisher,
    mut shutdown: watch::Receiver<bool>,
    state: watch::Sender<MqttState>,
) -> Result<(), MqttError> {
    let options = mqtt_options(&cfg)?;
    let mut backoff = cfg.reconnect_min;
    // Retained generations the broker acknowledged; survives reconnects.
    let mut delivered: HashMap<String, u64> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        state.send_replace(MqttState::Connecting);
        let end = session(
            &cfg,
            options.clone(),
            &spool,
            &retained,
            &mut delivered,
            &mut shutdown,
            &state,
        )
        .await?;
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Lost { reason, connected } => {
                if connected {
                    backoff = cfg.reconnect_min;
                }
                tracing::warn!(
                    "broker {}:{} unreachable: {reason}; retrying in {} s",
                    cfg.host,
                    cfg.port,
                    backoff.as_secs_f32()
                );
                state.send_replace(MqttState::Disconnected {
                    reason,
                    retry_in: backoff,
                });
                tokio::select! {
                    _ = sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = next_backoff(backoff, cfg.reconnect_max);
            }
        }
    }
    state.send_replace(MqttState::Stopped);
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    /// Shutdown requested: waiting for in-flight PUBACKs.
    Draining,
    /// `offline` sent, waiting for its PUBACK.
    Offline,
    /// DISCONNECT requested, waiting for it to be written.
    Disconnecting,
}

/// One broker connection, from connect attempt to loss or shutdown.
async fn session(
    cfg: &MqttConfig,
    options: MqttOptions,
    spool: &SpoolHandle,
    retained: &RetainedPublisher,
    delivered: &mut HashMap<String, u64>,
    shutdown: &mut watch::Receiver<bool>,
    state: &watch::Sender<MqttState>,
) -> Result<SessionEnd, MqttError> {
    let cap = usize::from(cfg.max_inflight) + usize::from(CONTROL_INFLIGHT) + 16;
    let (client, eventloop) = AsyncClient::new(options, cap);
    // Unbounded: the poll task must never wait on us, or PUBACK processing inside rumqttc
    // (which frees its in-flight window) could stall behind our own blocked publish().
    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let _poll = PollTask(tokio::spawn(poll_loop(eventloop, ev_tx)));

    let status_topic = cfg.status_topic();
    let mut handed: VecDeque<Sent> = VecDeque::new();
    let mut inflight: HashMap<u16, Sent> = HashMap::new();
    let mut spooled_inflight = 0usize;
    let mut last_sent: Option<u64> = None;
    let mut sent_retained: HashMap<String, u64> = delivered.clone();
    let mut connected = false;
    let mut want_fill = false;
    let mut stage = Stage::Running;
    let mut deadline = Instant::now();

    loop {
        if connected && stage == Stage::Running {
            if want_fill && spooled_inflight < usize::from(cfg.max_inflight) {
                want_fill = false;
                let room = usize::from(cfg.max_inflight) - spooled_inflight;
                for entry in spool.peek_from(last_sent, room).await? {
                    last_sent = Some(entry.seq);
                    if entry.topic.len() + entry.payload.len() + 16 > MAX_OUTGOING_PACKET {
                        tracing::error!(
                            seq = entry.seq,
                            bytes = entry.payload.len(),
                            "mqtt: record too large to publish; dropping it"
                        );
                        spool.ack_many(vec![entry.seq]).await?;
                        continue;
                    }
                    if let Err(e) = client
                        .publish(entry.topic, QoS::AtLeastOnce, false, entry.payload)
                        .await
                    {
                        return Ok(lost(format!("client closed: {e}"), connected));
                    }
                    handed.push_back(Sent::Spooled(entry.seq));
                    spooled_inflight += 1;
                    // More may be waiting beyond this batch.
                    want_fill = true;
                }
            }
            for (topic, payload, generation) in retained.due(&sent_retained) {
                if let Err(e) = client
                    .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
                    .await
                {
                    return Ok(lost(format!("client closed: {e}"), connected));
                }
                sent_retained.insert(topic.clone(), generation);
                handed.push_back(Sent::Retained { topic, generation });
            }
        }

        if stage == Stage::Draining && spooled_inflight == 0 {
            if let Err(e) = client
                .publish(status_topic.clone(), QoS::AtLeastOnce, true, "offline")
                .await
            {
                return Ok(lost(format!("client closed: {e}"), connected));
            }
            handed.push_back(Sent::Offline);
            stage = Stage::Offline;
        }

        let mut acked = Vec::new();
        tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Some(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                    connected = true;
                    want_fill = true;
                    tracing::info!(
                        "connected to broker {}:{} (session present: {})",
                        cfg.host, cfg.port, ack.session_present
                    );
                    state.send_replace(MqttState::Connected);
                    if let Err(e) = client
                        .publish(status_topic.clone(), QoS::AtLeastOnce, true, "online")
                        .await
                    {
                        return Ok(lost(format!("client closed: {e}"), connected));
                    }
                    handed.push_back(Sent::Online);
                }
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(sent) = handed.pop_front() {
                        if pkid != 0 {
                            inflight.insert(pkid, sent);
                        }
                    }
                }
                Some(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                    match inflight.remove(&ack.pkid) {
                        Some(Sent::Spooled(seq)) => {
                            acked.push(seq);
                            spooled_inflight = spooled_inflight.saturating_sub(1);
                            want_fill = true;
                        }
                        Some(Sent::Retained { topic, generation }) => {
                            let d = delivered.entry(topic).or_insert(0);
                            *d = (*d).max(generation);
                        }
                        Some(Sent::Online) => {}
                        Some(Sent::Offline) => {
                            // An error means the event loop is gone; the next event says so.
                            let _ = client.disconnect().await;
                            stage = Stage::Disconnecting;
                        }
                        None => tracing::debug!(pkid = ack.pkid, "mqtt: PUBACK for unknown packet id"),
                    }
                }
                Some(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                    if stage == Stage::Disconnecting {
                        return Ok(SessionEnd::Shutdown);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if stage != Stage::Running {
                        return Ok(SessionEnd::Shutdown);
                    }
                    return Ok(lost(describe(&e), connected));
                }
                None => {
                    if stage != Stage::Running {
                        return Ok(SessionEnd::Shutdown);
                    }
                    return Ok(lost("event loop ended".into(), connected));
                }
            },
            _ = spool.notified(), if connected && stage == Stage::Running => {
                want_fill = true;
            }
            _ = retained.inner.notify.notified(), if connected && stage == Stage::Running => {}
            changed = shutdown.changed(), if stage == Stage::Running => {
                // A dropped sender means nobody can ask us to stop gracefully any more: stop.
                if changed.is_err() || *shutdown.borrow() {
                    if !connected {
                        return Ok(SessionEnd::Shutdown);
                    }
                    tracing::info!(
                        in_flight = spooled_inflight,
                        "mqtt: shutting down, waiting for outstanding acknowledgements"
                    );
                    state.send_replace(MqttState::ShuttingDown);
                    stage = Stage::Draining;
                    deadline = Instant::now() + cfg.shutdown_timeout;
                }
            }
            _ = sleep_until(deadline), if stage != Stage::Running => {
                tracing::warn!(
                    in_flight = spooled_inflight,
                    "mqtt: shutdown timeout; unacknowledged readings stay spooled for the next start"
                );
                client.try_disconnect().ok();
                return Ok(SessionEnd::Shutdown);
            }
        }
        spool.ack_many(acked).await?;
    }
}

fn lost(reason: String, connected: bool) -> SessionEnd {
    SessionEnd::Lost { reason, connected }
}

async fn poll_loop(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        match eventloop.poll().await {
            Ok(ev) => {
                if tx.send(Ok(ev)).is_err() {
                    return;
                }
            }
            Err(e) => {
                // The session ends here; the next one starts with a fresh event loop.
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            topic_meter("wmbus", "gw-1", "12345678"),
            "wmbus/gw-1/meter/12345678"
        );
        assert_eq!(topic_status("wmbus", "gw-1"), "wmbus/gw-1/status");
        assert_eq!(topic_raw("wmbus", "gw-1"), "wmbus/gw-1/raw");
        assert_eq!(topic_meters("wmbus", "gw-1"), "wmbus/gw-1/meters");
        assert_eq!(topic_alarm("wmbus", "gw-1"), "wmbus/gw-1/alarm");
    }

    #[test]
    fn debug_hides_password() {
        let mut cfg = MqttConfig::new("h", 1883, "gw");
        cfg.username = Some("user".into());
        cfg.password = Some("s3cr3t-pw".into());
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cr3t-pw"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(60);
        let mut d = Duration::from_secs(1);
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(d.as_secs());
            d = next_backoff(d, max);
        }
        assert_eq!(seen, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn unreadable_ca_file_is_a_clear_error() {
        let mut cfg = MqttConfig::new("h", 8883, "gw");
        cfg.tls = Some(TlsConfig {
            ca_file: PathBuf::from("/nonexistent/wmbusd-ca.pem"),
            client_cert: None,
            client_key: None,
        });
        let err = mqtt_options(&cfg).unwrap_err().to_string();
        assert!(err.contains("CA file /nonexistent/wmbusd-ca.pem"), "{err}");
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let mut cfg = MqttConfig::new("h", 1883, "gw");
        cfg.password = Some("x".into());
        assert!(matches!(mqtt_options(&cfg), Err(MqttError::Config(_))));
        let mut cfg = MqttConfig::new("h", 1883, "gw");
        cfg.max_inflight = 0;
        assert!(matches!(mqtt_options(&cfg), Err(MqttError::Config(_))));
        let mut cfg = MqttConfig::new("h", 1883, "gw");
        cfg.keep_alive = Duration::from_millis(500);
        assert!(matches!(mqtt_options(&cfg), Err(MqttError::Config(_))));
    }

    #[test]
    fn retained_latest_wins() {
        let r = RetainedPublisher::new();
        r.publish_retained("a", "1");
        r.publish_retained("a", "2");
        r.publish_retained("b", "x");
        let mut due = r.due(&HashMap::new());
        due.sort();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].1, b"2".to_vec());
        let sent: HashMap<String, u64> = due.iter().map(|(t, _, g)| (t.clone(), *g)).collect();
        assert!(r.due(&sent).is_empty());
    }
}
