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

use crate::spool::{NotDurable, SpoolError, SpoolHandle};

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
            max_inflight: 128,
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

/// `<prefix>/<gateway>/meter/<meter_id>/health`: retained health document of one meter.
pub fn topic_meter_health(prefix: &str, gateway: &str, meter_id: &str) -> String {
    format!("{prefix}/{gateway}/meter/{meter_id}/health")
}

/// `<prefix>/<gateway>/radio/<name>`: retained state of one receiver.
pub fn topic_radio(prefix: &str, gateway: &str, name: &str) -> String {
    format!("{prefix}/{gateway}/radio/{name}")
}

/// `<prefix>/<gateway>/health`: retained summary health document of the gateway.
pub fn topic_health(prefix: &str, gateway: &str) -> String {
    format!("{prefix}/{gateway}/health")
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
///
/// Only topics with a value not yet acknowledged by the broker are held (in a queue of
/// changed topics), so thousands of per-meter health topics cost nothing once delivered and
/// the publisher never scans all of them.
#[derive(Clone, Default)]
pub struct RetainedPublisher {
    inner: Arc<RetainedInner>,
}

#[derive(Default)]
struct RetainedInner {
    table: Mutex<RetainedTable>,
    notify: Notify,
}

#[derive(Default)]
struct RetainedTable {
    /// topic -> (payload, generation) of values not yet acknowledged.
    latest: HashMap<String, (Vec<u8>, u64)>,
    /// Topics whose latest value has not been handed to a connection yet, oldest first.
    queued: VecDeque<String>,
    in_queue: std::collections::HashSet<String>,
    generation: u64,
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
        let topic = topic.into();
        match self.inner.table.lock() {
            Ok(mut t) => {
                t.generation += 1;
                let generation = t.generation;
                t.latest.insert(topic.clone(), (payload.into(), generation));
                if t.in_queue.insert(topic.clone()) {
                    t.queued.push_back(topic);
                }
            }
            Err(_) => tracing::error!("mqtt: retained message table poisoned; message not sent"),
        }
        self.inner.notify.notify_one();
    }

    /// Up to `max` queued messages, taken off the queue.
    fn due(&self, max: usize) -> Vec<(String, Vec<u8>, u64)> {
        let Ok(mut t) = self.inner.table.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < max {
            let Some(topic) = t.queued.pop_front() else {
                break;
            };
            t.in_queue.remove(&topic);
            if let Some((payload, g)) = t.latest.get(&topic) {
                out.push((topic, payload.clone(), *g));
            }
        }
        out
    }

    /// The broker acknowledged `generation` of `topic`: forget it unless a newer one came.
    fn delivered(&self, topic: &str, generation: u64) {
        if let Ok(mut t) = self.inner.table.lock() {
            if t.latest.get(topic).is_some_and(|(_, g)| *g == generation) {
                t.latest.remove(topic);
            }
        }
    }

    /// Handed to a connection that was lost before the PUBACK: send again.
    fn requeue(&self, topics: impl IntoIterator<Item = String>) {
        if let Ok(mut t) = self.inner.table.lock() {
            for topic in topics {
                if t.latest.contains_key(&topic) && t.in_queue.insert(topic.clone()) {
                    t.queued.push_front(topic);
                }
            }
        }
    }

    /// Messages not yet acknowledged (for tests and health).
    pub fn undelivered(&self) -> usize {
        self.inner.table.lock().map_or(0, |t| t.latest.len())
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

/// What the daemon wants from the MQTT task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stop {
    #[default]
    Running,
    /// Stop: keep publishing what is spooled until it is all acknowledged or `until` passes
    /// (`None`: no limit), then publish `offline` and disconnect. Records left stay spooled.
    Drain { until: Option<Instant> },
}

impl Stop {
    pub fn drain_for(limit: Option<Duration>) -> Stop {
        Stop::Drain {
            until: limit.map(|d| Instant::now() + d),
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Stop::Running => None,
            Stop::Drain { until } => until,
        }
    }

    fn is_stop(self) -> bool {
        self != Stop::Running
    }

    fn expired(self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }
}

/// What a publish handed to rumqttc was, so its PUBACK can be routed.
#[derive(Debug, Clone)]
enum Sent {
    Spooled(u64),
    /// A reading the spool could not store (disk full); given back if the connection drops.
    NotDurable(NotDurable),
    Retained {
        topic: String,
        generation: u64,
    },
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

/// While backing off: how often the broker's port is probed, so that a broker that is back
/// is used within this time instead of after the whole back-off.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Runs until told to stop (and the drain ended): connects, publishes spooled records and
/// retained messages, reconnects forever. Returns an error only for bad configuration.
pub async fn run(
    cfg: MqttConfig,
    spool: SpoolHandle,
    retained: RetainedPublisher,
    mut stop: watch::Receiver<Stop>,
    state: watch::Sender<MqttState>,
) -> Result<(), MqttError> {
    let options = mqtt_options(&cfg)?;
    let mut backoff = cfg.reconnect_min;
    loop {
        let now = *stop.borrow();
        if now.is_stop() && (now.expired() || nothing_left(&spool)) {
            break;
        }
        state.send_replace(MqttState::Connecting);
        let end = session(&cfg, options.clone(), &spool, &retained, &mut stop, &state).await;
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
                wait_to_reconnect(&cfg, backoff, &mut stop).await;
                backoff = next_backoff(backoff, cfg.reconnect_max);
            }
        }
    }
    state.send_replace(MqttState::Stopped);
    Ok(())
}

/// Whether every reading was acknowledged (spooled and not durable alike).
fn nothing_left(spool: &SpoolHandle) -> bool {
    spool.pending().map_or(true, |n| n == 0)
}

/// Sleeps for the back-off, cut short when the broker's port accepts a TCP connection
/// again (probed every [`PROBE_EVERY`]), when a stop arrives, or at the drain deadline.
async fn wait_to_reconnect(cfg: &MqttConfig, backoff: Duration, stop: &mut watch::Receiver<Stop>) {
    let until = Instant::now() + backoff;
    loop {
        let step = (until - Instant::now().min(until)).min(PROBE_EVERY);
        if step.is_zero() {
            return;
        }
        let deadline = stop.borrow().deadline();
        tokio::select! {
            _ = sleep(step) => {}
            _ = stop.changed() => {}
            _ = sleep_until(deadline.unwrap_or(until)), if deadline.is_some() => return,
        }
        if stop.borrow().expired() {
            return;
        }
        let probe = tokio::net::TcpStream::connect((cfg.host.as_str(), cfg.port));
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
            tracing::info!(
                "broker {}:{} answers again; reconnecting",
                cfg.host,
                cfg.port
            );
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Running,
    /// `offline` sent, waiting for its PUBACK.
    Offline,
    /// DISCONNECT requested, waiting for it to be written.
    Disconnecting,
}

/// One broker connection, from connect attempt to loss or shutdown.
struct Session<'a> {
    cfg: &'a MqttConfig,
    spool: &'a SpoolHandle,
    retained: &'a RetainedPublisher,
    client: AsyncClient,
    handed: VecDeque<Sent>,
    inflight: HashMap<u16, Sent>,
    spooled_inflight: usize,
    last_sent: Option<u64>,
    connected: bool,
    want_fill: bool,
    stage: Stage,
    acked: Vec<u64>,
}

/// One broker connection, from connect attempt to loss or shutdown.
async fn session(
    cfg: &MqttConfig,
    options: MqttOptions,
    spool: &SpoolHandle,
    retained: &RetainedPublisher,
    stop: &mut watch::Receiver<Stop>,
    state: &watch::Sender<MqttState>,
) -> SessionEnd {
    let cap = usize::from(cfg.max_inflight) + usize::from(CONTROL_INFLIGHT) + 16;
    let (client, eventloop) = AsyncClient::new(options, cap);
    // Unbounded: the poll task must never wait on us, or PUBACK processing inside rumqttc
    // (which frees its in-flight window) could stall behind our own blocked publish().
    let (ev_tx, mut events) = mpsc::unbounded_channel();
    let _poll = PollTask(tokio::spawn(poll_loop(eventloop, ev_tx)));
    let mut c = Session {
        cfg,
        spool,
        retained,
        client,
        handed: VecDeque::new(),
        inflight: HashMap::new(),
        spooled_inflight: 0,
        last_sent: None,
        connected: false,
        want_fill: false,
        stage: Stage::Running,
        acked: Vec::new(),
    };
    let end = c.drive(&mut events, stop, state).await;
    c.give_back();
    end
}

impl Session<'_> {
    async fn drive(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
        stop: &mut watch::Receiver<Stop>,
        state: &watch::Sender<MqttState>,
    ) -> SessionEnd {
        let mut announced_stop = false;
        loop {
            let now = *stop.borrow();
            if now.is_stop() && !announced_stop {
                announced_stop = true;
                if !self.connected && (now.expired() || nothing_left(self.spool)) {
                    return SessionEnd::Shutdown;
                }
                tracing::info!(
                    pending = self.spool.pending().unwrap_or(0),
                    "mqtt: stopping; delivering what is spooled first"
                );
                state.send_replace(MqttState::ShuttingDown);
            }
            if self.connected && self.stage == Stage::Running {
                if let Err(reason) = self.publish_batch(now).await {
                    return lost(reason, self.connected);
                }
            }
            let deadline = now.deadline().map(|d| d + self.cfg.shutdown_timeout);
            tokio::select! {
                biased;
                ev = events.recv() => {
                    if let Some(end) = self.on_event(ev, state).await {
                        return end;
                    }
                    // Take everything else already waiting, so acks go to the spool in one go.
                    while let Ok(ev) = events.try_recv() {
                        if let Some(end) = self.on_event(Some(ev), state).await {
                            return end;
                        }
                    }
                }
                _ = self.spool.notified(), if self.connected && self.stage == Stage::Running => {
                    self.want_fill = true;
                }
                _ = self.retained.inner.notify.notified(), if self.connected && self.stage == Stage::Running => {}
                _ = stop.changed(), if !now.is_stop() => {}
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    tracing::warn!(
                        in_flight = self.spooled_inflight,
                        "mqtt: shutdown timeout; unacknowledged readings stay spooled for the next start"
                    );
                    self.client.try_disconnect().ok();
                    return SessionEnd::Shutdown;
                }
            }
            let acked = std::mem::take(&mut self.acked);
            if let Err(e) = self.spool.ack_many(acked).await {
                tracing::error!("mqtt: acknowledgements not recorded: {e}");
            }
        }
    }

    /// Hands what is waiting to the client; once stopping and drained (or out of time),
    /// publishes `offline`.
    async fn publish_batch(&mut self, now: Stop) -> Result<(), String> {
        self.fill(now).await?;
        // Retained documents too (health, discovery): a run that ends right after its
        // input still leaves them on the broker.
        let drained = nothing_left(self.spool)
            && self.spooled_inflight == 0
            && self.retained.undelivered() == 0;
        if !(now.is_stop() && (drained || now.expired())) {
            return Ok(());
        }
        if now.expired() && !drained {
            tracing::warn!(
                pending = self.spool.pending().unwrap_or(0),
                "mqtt: drain time is up; unacknowledged readings stay spooled"
            );
        }
        let status = self.cfg.status_topic();
        self.client
            .publish(status, QoS::AtLeastOnce, true, "offline")
            .await
            .map_err(|e| format!("client closed: {e}"))?;
        self.handed.push_back(Sent::Offline);
        self.stage = Stage::Offline;
        Ok(())
    }

    /// Hands spooled, not-durable and retained messages to the client while the in-flight
    /// window has room.
    async fn fill(&mut self, stop: Stop) -> Result<(), String> {
        let window = usize::from(self.cfg.max_inflight);
        if self.want_fill && self.spooled_inflight < window && !stop.expired() {
            self.want_fill = false;
            let room = window - self.spooled_inflight;
            let entries = match self.spool.peek_from(self.last_sent, room).await {
                Ok(e) => e,
                Err(e) => {
                    // Never stop over a spool error: say so, retry at the next wake-up.
                    tracing::error!("mqtt: spool read failed: {e}; retrying");
                    sleep(Duration::from_millis(500)).await;
                    self.want_fill = true;
                    Vec::new()
                }
            };
            for entry in entries {
                self.last_sent = Some(entry.seq);
                if entry.topic.len() + entry.payload.len() + 16 > MAX_OUTGOING_PACKET {
                    tracing::error!(
                        seq = entry.seq,
                        bytes = entry.payload.len(),
                        "mqtt: record too large to publish; dropping it"
                    );
                    self.acked.push(entry.seq);
                    continue;
                }
                self.publish(entry.topic, entry.payload, false, Sent::Spooled(entry.seq))
                    .await?;
                self.spooled_inflight += 1;
                // More may be waiting beyond this batch.
                self.want_fill = true;
            }
            let room = window.saturating_sub(self.spooled_inflight);
            for nd in self.spool.take_not_durable(room) {
                self.want_fill = true;
                self.spooled_inflight += 1;
                let (topic, payload) = (nd.topic.clone(), nd.payload.clone());
                self.publish(topic, payload, false, Sent::NotDurable(nd))
                    .await?;
            }
        }
        for (topic, payload, generation) in self.retained.due(usize::from(CONTROL_INFLIGHT)) {
            let sent = Sent::Retained {
                topic: topic.clone(),
                generation,
            };
            self.publish(topic, payload, true, sent).await?;
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        sent: Sent,
    ) -> Result<(), String> {
        self.handed.push_back(sent);
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|e| format!("client closed: {e}"))
    }

    /// One event of the connection; `Some` ends the session.
    async fn on_event(
        &mut self,
        ev: Option<Result<Event, ConnectionError>>,
        state: &watch::Sender<MqttState>,
    ) -> Option<SessionEnd> {
        match ev {
            Some(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                self.connected = true;
                self.want_fill = true;
                tracing::info!(
                    "connected to broker {}:{} (session present: {})",
                    self.cfg.host,
                    self.cfg.port,
                    ack.session_present
                );
                if self.stage == Stage::Running {
                    state.send_replace(MqttState::Connected);
                }
                let status = self.cfg.status_topic();
                if let Err(e) = self
                    .publish(status, b"online".to_vec(), true, Sent::Online)
                    .await
                {
                    return Some(lost(e, true));
                }
            }
            Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                if let Some(sent) = self.handed.pop_front() {
                    if pkid != 0 {
                        self.inflight.insert(pkid, sent);
                    }
                }
            }
            Some(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                match self.inflight.remove(&ack.pkid) {
                    Some(Sent::Spooled(seq)) => {
                        self.acked.push(seq);
                        self.spooled_inflight = self.spooled_inflight.saturating_sub(1);
                        self.want_fill = true;
                    }
                    Some(Sent::NotDurable(_)) => {
                        self.spooled_inflight = self.spooled_inflight.saturating_sub(1);
                        self.want_fill = true;
                    }
                    Some(Sent::Retained { topic, generation }) => {
                        self.retained.delivered(&topic, generation)
                    }
                    Some(Sent::Online) => {}
                    Some(Sent::Offline) => {
                        // An error means the event loop is gone; the next event says so.
                        let _ = self.client.disconnect().await;
                        self.stage = Stage::Disconnecting;
                    }
                    None => tracing::debug!(pkid = ack.pkid, "mqtt: PUBACK for unknown packet id"),
                }
            }
            Some(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                if self.stage == Stage::Disconnecting {
                    return Some(SessionEnd::Shutdown);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if self.stage != Stage::Running {
                    return Some(SessionEnd::Shutdown);
                }
                return Some(lost(describe(&e), self.connected));
            }
            None => {
                if self.stage != Stage::Running {
                    return Some(SessionEnd::Shutdown);
                }
                return Some(lost("event loop ended".into(), self.connected));
            }
        }
        None
    }

    /// At the end of a connection: not-durable readings and retained values that were not
    /// acknowledged go back to their queues for the next connection. (Spooled records are
    /// simply published again from the spool.)
    fn give_back(&mut self) {
        let mut not_durable = Vec::new();
        let mut topics = Vec::new();
        let unacked = self
            .inflight
            .drain()
            .map(|(_, s)| s)
            .chain(self.handed.drain(..));
        for sent in unacked {
            match sent {
                Sent::NotDurable(nd) => not_durable.push(nd),
                Sent::Retained { topic, .. } => topics.push(topic),
                _ => {}
            }
        }
        self.spool.return_not_durable(not_durable);
        self.retained.requeue(topics);
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
        let mut due = r.due(100);
        due.sort();
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].1, b"2".to_vec());
        assert!(r.due(100).is_empty());
        // Lost before the PUBACK: queued again; acknowledged: forgotten.
        r.requeue(vec!["a".to_owned()]);
        assert_eq!(r.due(100).len(), 1);
        r.delivered("a", due[0].2);
        r.delivered("b", due[1].2);
        assert_eq!(r.undelivered(), 0);
    }
}
