//! The gateway daemon: wires radio sessions, the decoder pipeline, the spool and the MQTT
//! task together, and handles signals, systemd notification and shutdown.
//!
//! ```text
//! radio::run (one task per dongle) ──RadioEvent──▶ main loop: Pipeline (dedupe, decode,
//!     filter, counters) ──▶ stdout (JSON lines) and/or Spool ──▶ mqtt::run ──▶ broker
//! ```
//!
//! The main loop owns the decoder and the pipeline, so no lock sits on the decode path.
//! Shutdown is explicit: one `watch` channel tells every task to stop; the loop then waits
//! (bounded) for the radio tasks and for the MQTT task, which flushes in-flight readings
//! and publishes `offline`.

mod discovery;
pub mod notify;
mod publish;
mod state;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, HashMap};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError, PayloadFormat, PublishPolicy, RadioConfig};
use crate::decode::Decoder;
use crate::drivers::DriverSet;
use crate::frame::RadioFrame;
use crate::health::{self, Alarms};
use crate::keys::KeyStore;
use crate::mqtt::{self, MqttConfig, MqttState, RetainedPublisher};
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};
use crate::radio::{self, DriverKind, RadioEvent, RadioSpec, RadioState};
use crate::reading::Reading;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::spool::writer::{Accepted, SpoolWriter};
use crate::spool::{FsyncPolicy, Spool, SpoolHandle};

pub use notify::Notifier;

/// How the daemon was asked to run.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub config: Config,
    /// Reloaded on SIGHUP; `None` (demo) ignores SIGHUP.
    pub config_path: Option<PathBuf>,
    /// Also print every reading as a JSON line on stdout.
    pub stdout: bool,
    /// Stop once every replay radio has sent its whole file (demo, tests).
    pub exit_after_replay: bool,
    /// Where health counters and learned compact formats persist across restarts.
    pub state_file: Option<PathBuf>,
    /// With `exit_after_replay`: how long the daemon keeps delivering after the input ended
    /// (`None`: until everything is delivered).
    pub drain_timeout: Option<Duration>,
    /// The spool is removed after the run (demo): say so instead of "spooled for the next
    /// start".
    pub temporary_spool: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("spool: {0}")]
    Spool(#[from] crate::spool::SpoolError),
    #[error("key of meter {meter}: {message}")]
    Key { meter: String, message: String },
    #[error("signals: {0}")]
    Signal(std::io::Error),
    #[error("mqtt: {0}")]
    Mqtt(#[from] mqtt::MqttError),
    /// A driver definition of the drivers directory is malformed (file:line:column).
    #[error("drivers: {0}")]
    Drivers(#[from] crate::drivers::LoadError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What the main loop reports when it ends, for the demo summary and tests.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub frames: u64,
    pub readings: u64,
    pub failed: u64,
    pub duplicates: u64,
    pub filtered: u64,
    pub bad_radio_data: u64,
    /// Readings not acknowledged by the broker when the daemon stopped.
    pub undelivered: u64,
    /// Unchanged readings not published because of their meter's publish policy.
    pub held_back: u64,
}

/// The meters whose publish policy is not `every`.
fn publish_policies(config: &Config) -> HashMap<String, PublishPolicy> {
    config
        .meters
        .iter()
        .filter(|m| m.publish != PublishPolicy::Every)
        .map(|m| (m.id.clone(), m.publish))
        .collect()
}

/// The configured meter names, for the readings' `meter.name`.
fn meter_names(config: &Config) -> HashMap<String, String> {
    config
        .meters
        .iter()
        .filter_map(|m| Some((m.id.clone(), m.name.clone()?)))
        .collect()
}

/// Builds the key store from the configuration (meter keys and the key file).
pub fn key_store(config: &Config) -> Result<KeyStore, DaemonError> {
    let mut keys = KeyStore::new();
    for (id, key) in config.keys() {
        keys.insert_hex(&id, &key).map_err(|e| DaemonError::Key {
            meter: id.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(keys)
}

/// The built-in drivers plus the definitions of the configured drivers directory.
pub fn driver_set(config: &Config) -> Result<DriverSet, DaemonError> {
    let mut drivers = DriverSet::builtin();
    if let Some(dir) = config.gateway.drivers_dir.to_load() {
        let added = drivers.load_dir(dir)?;
        tracing::info!("{added} driver definition(s) loaded from {}", dir.display());
    }
    Ok(drivers)
}

fn pipeline_config(config: &Config) -> PipelineConfig {
    PipelineConfig {
        dedupe_window: Duration::from_secs(config.pipeline.dedupe_window_secs),
        only_configured: config.pipeline.only_configured_meters,
        meters: config
            .meters
            .iter()
            .map(|m| (m.id.clone(), m.name.clone()))
            .collect(),
        replay: config.pipeline.replay_rule(),
    }
}

fn radio_spec(r: &RadioConfig) -> RadioSpec {
    RadioSpec {
        driver: r.driver,
        device: r.device.clone().unwrap_or_default(),
        modes: r.modes.clone(),
        baud: r.baud,
        watchdog: Duration::from_secs(r.watchdog_secs.unwrap_or(900)),
        replay_interval: Duration::from_millis(r.replay_interval_ms.unwrap_or(0)),
        name: String::new(),
        recorded_clock: r.clock_recorded,
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or, with `exit_after_replay`, until the replay
/// radios are done and what they produced is delivered). Returns what it processed; a
/// non-zero [`Summary::undelivered`] means readings were left behind.
pub async fn run(opts: DaemonOptions) -> Result<Summary, DaemonError> {
    let mut daemon = Daemon::start(opts).await?;
    let stop = daemon.event_loop().await?;
    Ok(daemon.shutdown(stop).await)
}

/// Why the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// SIGTERM/SIGINT: a bounded drain (`shutdown_drain_secs`).
    Signal,
    /// Every replay radio finished and `exit_after_replay` is set: deliver everything,
    /// bounded only by `drain_timeout`.
    InputEnded,
}

/// Where readings go: the spool writer (then MQTT) and/or stdout.
struct Sinks {
    writer: Option<SpoolWriter>,
    spool: Option<SpoolHandle>,
    stdout: bool,
    topics: Topics,
    /// `publish_raw` or `[gateway] mode` with `"forward"`: raw frames on `<prefix>/<gw>/raw`.
    publish_raw: bool,
    /// `[gateway] mode` with `"decode"` (the default); without it frames are only forwarded.
    decode: bool,
}

/// The running daemon: state owned by the main loop, one method per event. Further frame
/// sources send [`RadioEvent`]s into `events` (see [`Daemon::frame_sender`]); further reading
/// sinks hook into [`Daemon::on_reading`].
struct Daemon {
    opts: DaemonOptions,
    notifier: Notifier,
    decoder: Decoder,
    pipeline: Pipeline,
    alarms: Alarms,
    saver: Option<state::StateSaver>,
    formats_known: usize,
    formats_dirty: bool,
    trigger: ShutdownTrigger,
    stop_tx: watch::Sender<mqtt::Stop>,
    sinks: Sinks,
    retained: RetainedPublisher,
    mqtt_task: Option<JoinHandle<()>>,
    mqtt_state_rx: Option<watch::Receiver<MqttState>>,
    background: Vec<JoinHandle<()>>,
    events: mpsc::Receiver<RadioEvent>,
    events_tx: Option<mpsc::Sender<RadioEvent>>,
    radio_tasks: Vec<JoinHandle<()>>,
    radios: BTreeMap<String, String>,
    /// Per-meter state of the wired M-Bus masters (`[[bus]]`).
    buses: crate::bus::task::BusHealth,
    /// The reading store and billing periods (`[store]`, `[billing]`).
    billing: crate::store::sink::Billing,
    replay_radios: usize,
    replays_done: usize,
    summary: Summary,
    last_health: Option<Instant>,
    last_state: Instant,
    /// Per-meter publish policies (`[[meter]] publish`) and what they remember.
    policies: HashMap<String, PublishPolicy>,
    /// `[[meter]] name` by meter id, put into each reading.
    names: HashMap<String, String>,
    publisher: publish::Publisher,
    payload: PayloadFormat,
    /// Readings held while copies from other radios are gathered (`[pipeline] gather_ms`).
    gather: crate::gather::Gather,
    /// Home Assistant discovery (`[homeassistant]`).
    discovery: Option<discovery::Discovery>,
}

impl Daemon {
    async fn start(opts: DaemonOptions) -> Result<Daemon, DaemonError> {
        let notifier = Notifier::from_env();
        let config = opts.config.clone();
        let gateway = config.gateway.id.clone();
        let mut decoder = Decoder::with_drivers(key_store(&config)?, driver_set(&config)?);
        let mut pipeline = Pipeline::new(pipeline_config(&config));
        let mut alarms = Alarms::new(config.health.missing_factor, std::time::SystemTime::now());
        let saver = opts
            .state_file
            .as_deref()
            .and_then(|path| start_saver(path, &mut decoder, &mut pipeline, &mut alarms));
        let trigger = ShutdownTrigger::new();
        let (stop_tx, stop_rx) = watch::channel(mqtt::Stop::Running);
        let mqtt_cfg: Option<MqttConfig> = config.mqtt_config()?;
        let retained = RetainedPublisher::new();
        let Outbound {
            mqtt_task,
            mqtt_state_rx,
            spool,
            writer,
            background,
        } = match &mqtt_cfg {
            Some(cfg) => start_outbound(&config, cfg, &retained, stop_rx, &trigger)?,
            None => Outbound::default(),
        };
        let billing = start_billing(&config, mqtt_cfg.as_ref(), &retained).await?;
        let (events_tx, events) = mpsc::channel::<RadioEvent>(1024);
        let formats_known = decoder.formats().len();
        let discovery = discovery::Discovery::start(
            &config,
            mqtt_cfg.as_ref(),
            opts.state_file.as_deref(),
            retained.clone(),
        );
        let mut daemon = Daemon {
            notifier,
            decoder,
            pipeline,
            alarms,
            saver,
            formats_known,
            formats_dirty: false,
            trigger,
            stop_tx,
            sinks: Sinks {
                writer,
                spool,
                stdout: opts.stdout,
                topics: Topics::new(mqtt_cfg.as_ref(), &gateway),
                publish_raw: mqtt_cfg.as_ref().is_some_and(|c| c.publish_raw)
                    || config.gateway.mode.forward,
                decode: config.gateway.mode.decode,
            },
            retained,
            mqtt_task,
            mqtt_state_rx,
            background,
            events,
            events_tx: Some(events_tx),
            radio_tasks: Vec::new(),
            radios: BTreeMap::new(),
            buses: crate::bus::task::BusHealth::default(),
            billing,
            replay_radios: 0,
            replays_done: 0,
            summary: Summary::default(),
            last_health: None,
            last_state: Instant::now(),
            policies: publish_policies(&config),
            names: meter_names(&config),
            publisher: publish::Publisher::default(),
            gather: crate::gather::Gather::new(config.pipeline.gather_window(config.radios.len())),
            payload: config
                .mqtt
                .as_ref()
                .map_or(PayloadFormat::Full, |m| m.payload),
            discovery,
            opts,
        };
        daemon.start_radios()?;
        release_startup_memory();
        daemon.notifier.ready();
        log_started(&config, mqtt_cfg.as_ref());
        Ok(daemon)
    }

    /// A sender for another frame source (wired M-Bus master, central consumer); it must
    /// be taken before [`Self::event_loop`] runs, and stop on the [`Shutdown`] it is given.
    #[allow(dead_code)]
    fn frame_sender(&self) -> Option<(mpsc::Sender<RadioEvent>, Shutdown)> {
        self.events_tx
            .clone()
            .map(|tx| (tx, self.trigger.subscribe()))
    }

    fn start_radios(&mut self) -> Result<(), DaemonError> {
        let Some(events_tx) = self.events_tx.clone() else {
            return Ok(());
        };
        for (index, r) in self.opts.config.radios.iter().enumerate() {
            let spec = radio_spec(r);
            if spec.driver == DriverKind::Replay {
                self.replay_radios += 1;
            }
            let device = if spec.device.is_empty() {
                "auto"
            } else {
                &spec.device
            };
            let modes: Vec<&str> = spec.modes.iter().map(|m| m.as_str()).collect();
            tracing::info!(
                "radio {index}: {} on {device} ({})",
                spec.driver.as_str(),
                modes.join(",")
            );
            self.radio_tasks.push(tokio::spawn(radio::run(
                spec,
                events_tx.clone(),
                self.trigger.subscribe(),
            )));
        }
        let (buses, bus_tasks) = crate::bus::task::spawn_all(
            &self.opts.config.buses,
            &events_tx,
            &self.trigger.subscribe(),
        );
        self.buses = buses;
        self.radio_tasks.extend(bus_tasks);
        Ok(())
    }

    async fn event_loop(&mut self) -> Result<StopReason, DaemonError> {
        // From here on only the sources hold senders: the channel closes when all ended.
        self.events_tx = None;
        let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
        let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
        let watchdog_period = self
            .notifier
            .watchdog_period()
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        // One tick a second: cheap checks only; health, alarms and state have their own
        // (longer) intervals.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_watchdog = Instant::now();
        let mut inputs_open = true;
        loop {
            tokio::select! {
                event = self.events.recv(), if inputs_open => match event {
                    Some(event) => {
                        if let Some(stop) = self.on_event(event).await {
                            return Ok(stop);
                        }
                    }
                    None => {
                        // Inputs gone (replay ended, stdin closed): keep delivering.
                        tracing::info!("all radio sessions ended; readings are still delivered");
                        inputs_open = false;
                        if self.opts.exit_after_replay {
                            return Ok(StopReason::InputEnded);
                        }
                    }
                },
                _ = tick.tick() => {
                    if last_watchdog.elapsed() >= watchdog_period / 2 {
                        self.notifier.watchdog();
                        last_watchdog = Instant::now();
                    }
                    self.on_tick().await;
                }
                _ = sleep_until(self.gather.next_due()), if self.gather.next_due().is_some() => {
                    self.release_gathered(false).await;
                }
                _ = sighup.recv() => self.on_reload(),
                _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(StopReason::Signal); }
                _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(StopReason::Signal); }
            }
        }
    }

    /// One radio event; `Some` when the loop should stop.
    async fn on_event(&mut self, event: RadioEvent) -> Option<StopReason> {
        match event {
            RadioEvent::Frame(frame) => self.on_frame(&frame).await,
            RadioEvent::Bad { source, reason } => {
                self.summary.bad_radio_data += 1;
                self.pipeline.count_bad_radio_data();
                tracing::info!("{source}: dropped bad radio data: {reason}");
            }
            RadioEvent::State { source, state } => self.on_radio_state(source, state),
            RadioEvent::ReplayFinished => {
                self.replays_done += 1;
                tracing::info!(
                    "replay finished ({}/{})",
                    self.replays_done,
                    self.replay_radios
                );
                if self.opts.exit_after_replay && self.replays_done >= self.replay_radios {
                    return Some(StopReason::InputEnded);
                }
            }
        }
        None
    }

    fn on_radio_state(&mut self, source: String, state: RadioState) {
        let previous = self.radios.get(&source).map(String::as_str);
        let was_lost = matches!(previous, Some("reopening" | "missing"));
        let (report, detail) = match &state {
            RadioState::Opening => (health::RadioReport::Opening, None),
            RadioState::Ready { dongle } => (health::RadioReport::Ready, Some(dongle.as_str())),
            RadioState::Lost { reason } => {
                // Radio sources are named by their device: a serial node or replay file
                // that is gone means the dongle was unplugged.
                let device_missing = source.starts_with('/') && !Path::new(&source).exists();
                (
                    health::RadioReport::Lost { device_missing },
                    Some(reason.as_str()),
                )
            }
            RadioState::Failed { reason } => (
                health::RadioReport::Failed { reason },
                Some(reason.as_str()),
            ),
        };
        let text = health::radio_state(previous, report);
        match &state {
            RadioState::Opening => tracing::debug!("{source}: opening"),
            // An operator reading the log wants to see that a lost dongle came back.
            RadioState::Ready { dongle } if was_lost => {
                tracing::info!("{source}: ready ({dongle}), reopened after the loss");
            }
            RadioState::Ready { dongle } => tracing::info!("{source}: ready ({dongle})"),
            RadioState::Lost { reason } => {
                tracing::warn!("{source}: lost: {reason}; reopening (radio state {text})")
            }
            RadioState::Failed { reason } => tracing::error!("{source}: failed: {reason}"),
        }
        if previous != Some(text.as_str()) || !matches!(state, RadioState::Opening) {
            let topics = &self.sinks.topics;
            let doc = health::radio_document(&source, &text, detail, self.billing.now());
            self.retained.publish_retained(
                mqtt::topic_radio(
                    &topics.prefix,
                    &topics.gateway,
                    &health::radio_topic_name(&source),
                ),
                doc.to_string().into_bytes(),
            );
        }
        self.radios.insert(source, text);
    }

    async fn on_frame(&mut self, frame: &RadioFrame) {
        self.summary.frames += 1;
        if !self.sinks.decode {
            // Forward only: no keys here; the central decoders dedupe and decode.
            self.spool_raw(frame).await;
            return;
        }
        self.billing.frame(frame);
        let outcome = self
            .pipeline
            .process(&mut self.decoder, frame, Instant::now());
        // A newly learned compact format is saved within a second (off the loop), not only
        // at the next state interval: after a crash the meter's compact frames would
        // otherwise stay undecodable until it sends a full frame again.
        if self.decoder.formats().len() != self.formats_known {
            self.formats_known = self.decoder.formats().len();
            self.formats_dirty = true;
        }
        if self.sinks.publish_raw && !matches!(outcome, Outcome::Duplicate { .. }) {
            self.spool_raw(frame).await;
        }
        match outcome {
            Outcome::Reading(reading) => self.on_decoded(frame, reading).await,
            Outcome::Failed(err) => {
                self.summary.failed += 1;
                let meter = err.meter.as_deref().unwrap_or("?");
                let at = err
                    .offset
                    .map(|o| format!(", byte {o}"))
                    .unwrap_or_default();
                if self.pipeline.replay_repeated() {
                    // Logged once until the meter sends a new telegram; counted always.
                    tracing::debug!("meter {meter}: {} ({})", err.kind.label(), err.message);
                } else {
                    tracing::warn!("meter {meter}: {} ({}{at})", err.kind.label(), err.message);
                }
            }
            Outcome::Duplicate { .. } if self.gather.heard_again(frame) => {
                tracing::trace!("copy of a held telegram: receiver added");
            }
            Outcome::Duplicate { .. } => tracing::trace!("duplicate frame dropped"),
            Outcome::Filtered { meter } => {
                tracing::debug!(
                    "meter {} not configured: ignored",
                    meter.as_deref().unwrap_or("?")
                );
            }
        }
    }

    /// A new reading: on at once, or held to gather the radios that hear it too.
    async fn on_decoded(&mut self, frame: &RadioFrame, mut reading: Box<Reading>) {
        reading.gateway = Some(self.sinks.topics.gateway.clone());
        reading.meter.name = self.names.get(&reading.meter.id).cloned();
        if !self.gather.is_on() {
            return self.on_reading(&reading).await;
        }
        if let Some(early) = self.gather.hold(frame, reading, Instant::now()) {
            self.on_reading(&early).await;
        }
    }

    /// Held readings whose gathering window ended (`all`: every one, at shutdown).
    async fn release_gathered(&mut self, all: bool) {
        let ready = if all {
            self.gather.take_all()
        } else {
            self.gather.take_due(Instant::now())
        };
        for reading in ready {
            self.on_reading(&reading).await;
        }
    }

    /// A reading for the sinks. Spool first: a reading on stdout is already durable, so
    /// whoever watches stdout never sees a reading that a crash right afterwards could lose
    /// (the writer echoes it after its batch is committed). The store is not awaited: the
    /// spool batch of the reading waits for the store's commit of it (group commit).
    async fn on_reading(&mut self, reading: &Reading) {
        self.summary.readings += 1;
        let stored = self.billing.reading(reading).await;
        let policy = self
            .policies
            .get(&reading.meter.id)
            .copied()
            .unwrap_or_default();
        if !self
            .publisher
            .should_publish(policy, reading, Instant::now())
        {
            self.summary.held_back += 1;
            tracing::trace!("meter {}: unchanged reading held back", reading.meter.id);
        } else if let Some(json) = self.reading_json(reading) {
            if let Some(d) = &mut self.discovery {
                d.on_reading(reading);
            }
            self.deliver(&reading.meter.id, json, stored.committed)
                .await;
        }
        for (topic, payload) in stored.alarms {
            self.submit(topic, payload).await;
        }
        tracing::debug!(
            "meter {}: reading with {} record(s)",
            reading.meter.id,
            reading.records.len()
        );
    }

    fn reading_json(&self, reading: &Reading) -> Option<Vec<u8>> {
        match self.payload {
            PayloadFormat::Compact => Some(publish::compact_json(reading)),
            PayloadFormat::Full => {
                let mut json = Vec::with_capacity(1024);
                match reading.write_json(&mut json) {
                    Ok(()) => Some(json),
                    Err(e) => {
                        tracing::error!(
                            "reading of meter {} not serialisable: {e}",
                            reading.meter.id
                        );
                        None
                    }
                }
            }
        }
    }

    /// To the spool writer (after the store's commit of the reading), else to stdout.
    async fn deliver(
        &self,
        meter_id: &str,
        json: Vec<u8>,
        committed: Option<tokio::sync::oneshot::Receiver<()>>,
    ) {
        let topics = &self.sinks.topics;
        match &self.sinks.writer {
            Some(writer) => {
                let topic = mqtt::topic_meter(&topics.prefix, &topics.gateway, meter_id);
                let echo = self.sinks.stdout.then(|| json.clone());
                let record = Accepted {
                    topic,
                    payload: json,
                    echo,
                };
                writer.submit_after(record, committed).await;
            }
            None if self.sinks.stdout => {
                if let Some(done) = committed {
                    // No spool: printed means stored.
                    let _ = done.await;
                }
                let mut out = std::io::stdout().lock();
                let _ = out
                    .write_all(&json)
                    .and_then(|_| out.write_all(b"\n"))
                    .and_then(|_| out.flush());
            }
            None => {}
        }
    }

    /// A message without echo through the spool writer (QoS 1, kept across outages).
    async fn submit(&self, topic: String, payload: Vec<u8>) {
        if let Some(writer) = &self.sinks.writer {
            writer
                .submit(Accepted {
                    topic,
                    payload,
                    echo: None,
                })
                .await;
        }
    }

    async fn spool_raw(&self, frame: &RadioFrame) {
        if self.sinks.writer.is_none() {
            return;
        }
        // What the receiver said about the DLL CRCs travels along, so that a central
        // decoder does not have to guess either.
        let raw = crate::central::raw::RawFrameMsg::of(frame, &self.sinks.topics.gateway);
        let topic = mqtt::topic_raw(&self.sinks.topics.prefix, &self.sinks.topics.gateway);
        self.submit(topic, raw.to_json()).await;
    }

    /// Once a second: learned formats, and at their intervals alarms, health and state.
    async fn on_tick(&mut self) {
        let health_every =
            Duration::from_secs(self.opts.config.health.publish_interval_secs.max(1));
        let state_every = Duration::from_secs(self.opts.config.health.state_interval_secs.max(1));
        if self.formats_dirty {
            self.formats_dirty = false;
            if let Some(saver) = &self.saver {
                saver.update(state::Snapshot {
                    compact_formats: Some(self.decoder.formats().export()),
                    ..state::Snapshot::default()
                });
            }
        }
        if self
            .last_health
            .map_or(true, |t| t.elapsed() >= health_every)
        {
            self.last_health = Some(Instant::now());
            self.publish_alarms().await;
            self.publish_health();
            if let Some(rx) = &self.mqtt_state_rx {
                self.notifier
                    .status(&status_line(&self.summary, &rx.borrow()));
            }
        }
        if self.last_state.elapsed() >= state_every {
            self.last_state = Instant::now();
            self.save_state();
        }
    }

    fn save_state(&self) {
        if let Some(saver) = &self.saver {
            saver.update(state::snapshot(&self.decoder, &self.pipeline, &self.alarms));
        }
    }

    /// Evaluates the alarm rules and sends each change on the alarm topic through the spool
    /// (QoS 1, kept across broker outages and restarts like readings).
    async fn publish_alarms(&mut self) {
        let changes = self
            .alarms
            .evaluate(&self.pipeline.meters(), self.billing.now());
        for change in changes {
            change.log();
            let topic = mqtt::topic_alarm(&self.sinks.topics.prefix, &self.sinks.topics.gateway);
            self.submit(topic, change.to_json().into_bytes()).await;
        }
    }

    /// The small summary document, and one retained document per meter whose statistics
    /// changed since the last round: no message grows with the number of meters.
    fn publish_health(&mut self) {
        let topics = &self.sinks.topics;
        for id in self.pipeline.take_changed() {
            let Some(stats) = self.pipeline.meter(&id) else {
                continue;
            };
            match serde_json::to_vec(&health::meter_document(&id, stats)) {
                Ok(doc) => self.retained.publish_retained(
                    mqtt::topic_meter_health(&topics.prefix, &topics.gateway, &id),
                    doc,
                ),
                Err(e) => tracing::error!("health of meter {id} not serialisable: {e}"),
            }
        }
        let spool = self.sinks.spool.as_ref().map(|s| {
            let stats = s.stats().unwrap_or_default();
            let disk = s.disk_health();
            serde_json::json!({
                "pending": stats.pending,
                "bytes": stats.bytes,
                "dropped": stats.dropped_total,
                "quarantined": stats.quarantined,
                "disk": disk.problem,
                "not_durable": disk.not_durable,
                "not_durable_total": disk.not_durable_total,
                "not_durable_dropped": disk.not_durable_dropped,
            })
        });
        let doc = health::summary_document(&health::SummaryInput {
            totals: self.pipeline.totals(),
            meters: self.pipeline.meter_count(),
            configured: self.opts.config.meters.len(),
            radios: &self.radios,
            alarms: &self.alarms,
            extra_alarms: self.billing.active_alarms(),
            now: self.billing.now(),
            spool,
            buses: (!self.opts.config.buses.is_empty())
                .then(|| serde_json::to_value(self.buses.snapshot()).unwrap_or_default()),
        });
        self.retained.publish_retained(
            mqtt::topic_health(&topics.prefix, &topics.gateway),
            doc.to_string().into_bytes(),
        );
    }

    /// SIGHUP: new meters, keys and driver definitions without touching the radios.
    fn on_reload(&mut self) {
        if let Some(path) = &self.opts.config_path {
            if let Ok(config) = Config::load(path) {
                self.policies = publish_policies(&config);
                self.names = meter_names(&config);
                if let Some(d) = &mut self.discovery {
                    d.reload(&config);
                }
            }
        }
        reload(
            &self.opts,
            &mut self.decoder,
            &mut self.pipeline,
            &mut self.alarms,
            &self.notifier,
        );
    }

    /// Keeps taking the radios' events while they stop: a session blocked on a full
    /// channel would otherwise wait for a main loop that waits for it. Frames still
    /// queued are decoded and spooled, not dropped.
    async fn drain_events(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(RadioEvent::Frame(frame))) => self.on_frame(&frame).await,
                Ok(Some(_)) => {}
                // Every sender is gone: all sessions ended.
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("a radio session did not stop within 5 s");
                    break;
                }
            }
        }
    }

    /// Stops the inputs, delivers (bounded), saves state; says what is left.
    async fn shutdown(mut self, why: StopReason) -> Summary {
        self.notifier.stopping();
        self.trigger.fire();
        self.drain_events().await;
        for task in std::mem::take(&mut self.radio_tasks) {
            task.abort();
        }
        self.release_gathered(true).await;
        self.publish_health();
        if let Some(writer) = self.sinks.writer.take() {
            writer.close().await;
        }
        let drain = match why {
            StopReason::Signal => Some(Duration::from_secs(
                self.opts.config.spool.shutdown_drain_secs,
            )),
            StopReason::InputEnded => self.opts.drain_timeout,
        };
        self.stop_tx.send_replace(mqtt::Stop::drain_for(drain));
        if let Some(task) = self.mqtt_task.take() {
            if let Some(pending) = self
                .sinks
                .spool
                .as_ref()
                .and_then(|s| s.pending().ok())
                .filter(|n| *n > 0)
            {
                match drain {
                    Some(d) => tracing::info!(
                        "delivering {pending} spooled reading(s), for at most {} s",
                        d.as_secs()
                    ),
                    None => {
                        tracing::info!("delivering {pending} spooled reading(s) before exiting")
                    }
                }
            }
            let _ = task.await;
        }
        for task in std::mem::take(&mut self.background) {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        // Stored readings and period closes are committed before the spool's last sync.
        self.billing.shutdown().await;
        self.summary.undelivered = final_sync(self.sinks.spool.as_ref(), &self.opts).await;
        if let Some(saver) = self.saver.take() {
            saver.update(state::snapshot(&self.decoder, &self.pipeline, &self.alarms));
            let _ = tokio::task::spawn_blocking(move || saver.finish()).await;
        }
        let totals = self.pipeline.totals();
        self.summary.duplicates = totals.duplicates;
        self.summary.filtered = totals.filtered;
        let s = &self.summary;
        tracing::info!(
            "stopped: {} frame(s), {} reading(s), {} failed, {} duplicate(s), {} filtered",
            s.frames,
            s.readings,
            s.failed,
            s.duplicates,
            s.filtered
        );
        self.summary
    }
}

/// The spool, its writer, the MQTT task and the spool's periodic sync (with `[mqtt]`).
#[derive(Default)]
struct Outbound {
    mqtt_task: Option<JoinHandle<()>>,
    mqtt_state_rx: Option<watch::Receiver<MqttState>>,
    spool: Option<SpoolHandle>,
    writer: Option<SpoolWriter>,
    background: Vec<JoinHandle<()>>,
}

fn start_outbound(
    config: &Config,
    cfg: &MqttConfig,
    retained: &RetainedPublisher,
    stop_rx: watch::Receiver<mqtt::Stop>,
    trigger: &ShutdownTrigger,
) -> Result<Outbound, DaemonError> {
    let spool_cfg = config.spool.to_spool_config();
    let handle = SpoolHandle::new(Spool::open(spool_cfg.clone())?);
    handle.set_not_durable_max(config.spool.not_durable_max);
    let pending = handle.pending()?;
    if pending > 0 {
        tracing::info!("spool: {pending} reading(s) from an earlier run wait for the broker");
    }
    let mut background = Vec::new();
    if let FsyncPolicy::Interval(period) = spool_cfg.fsync {
        background.push(tokio::spawn(
            handle
                .clone()
                .sync_periodically(period, trigger.subscribe()),
        ));
    }
    let (state_tx, state_rx) = watch::channel(MqttState::default());
    let task = mqtt::run(
        cfg.clone(),
        handle.clone(),
        retained.clone(),
        stop_rx,
        state_tx,
    );
    let mqtt_task = tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!("mqtt task stopped: {e}");
        }
    });
    Ok(Outbound {
        mqtt_task: Some(mqtt_task),
        mqtt_state_rx: Some(state_rx),
        writer: Some(SpoolWriter::start(handle.clone()).map_err(DaemonError::Signal)?),
        spool: Some(handle),
        background,
    })
}

/// Restores the state file and starts its writer thread (the loop never writes files).
fn start_saver(
    path: &Path,
    decoder: &mut Decoder,
    pipeline: &mut Pipeline,
    alarms: &mut Alarms,
) -> Option<state::StateSaver> {
    state::restore(path, decoder, pipeline, alarms);
    match state::StateSaver::start(path.to_path_buf()) {
        Ok(s) => {
            s.update(state::snapshot(decoder, pipeline, alarms));
            Some(s)
        }
        Err(e) => {
            tracing::error!(
                "state file {}: cannot start its writer: {e}",
                path.display()
            );
            None
        }
    }
}

/// The spool's last sync; says how many readings stay undelivered.
async fn final_sync(spool: Option<&SpoolHandle>, opts: &DaemonOptions) -> u64 {
    let Some(spool) = spool else {
        return 0;
    };
    if let Err(e) = spool.sync().await {
        tracing::error!("spool: final sync failed: {e}");
    }
    let left = spool.pending().unwrap_or(0);
    if left > 0 {
        let not_durable = spool.disk_health().not_durable;
        if opts.temporary_spool {
            tracing::error!("{left} reading(s) NOT delivered to the broker; the demo's temporary spool is removed with them");
        } else if not_durable > 0 {
            tracing::error!("{left} reading(s) NOT delivered: {} stay spooled for the next start, {not_durable} could not be spooled (disk full) and are lost", left - not_durable);
        } else {
            tracing::warn!(
                "{left} reading(s) not delivered; they stay spooled in {} for the next start",
                opts.config.spool.dir.display()
            );
        }
    }
    left as u64
}

/// The reading store and billing periods, publishing on the daemon's topics.
async fn start_billing(
    config: &Config,
    mqtt: Option<&MqttConfig>,
    retained: &RetainedPublisher,
) -> Result<crate::store::sink::Billing, DaemonError> {
    let outputs = crate::store::sink::Outputs {
        retained: retained.clone(),
        prefix: mqtt.map_or_else(|| "wmbus".to_owned(), |c| c.topic_prefix.clone()),
        gateway: config.gateway.id.clone(),
    };
    Ok(crate::store::sink::Billing::start(config, outputs).await?)
}

fn log_started(config: &Config, mqtt: Option<&MqttConfig>) {
    tracing::info!(
        "wmbusd {} started: gateway {}, {} radio(s), {} meter(s) configured, {}",
        env!("CARGO_PKG_VERSION"),
        config.gateway.id,
        config.radios.len(),
        config.meters.len(),
        match mqtt {
            Some(c) => format!("MQTT {}:{}", c.host, c.port),
            None => "no MQTT (stdout only)".to_owned(),
        }
    );
}

/// Sleeps until `due` (`None`: forever; the select branch is disabled then anyway).
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Parsing a large configuration (10,000 meters) leaves megabytes of freed heap that glibc
/// keeps; hand it back to the system once, so idle RSS reflects what the daemon holds.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// MQTT topics of this gateway.
struct Topics {
    prefix: String,
    gateway: String,
}

impl Topics {
    fn new(cfg: Option<&MqttConfig>, gateway: &str) -> Self {
        Topics {
            prefix: cfg.map_or_else(|| "wmbus".to_owned(), |c| c.topic_prefix.clone()),
            gateway: gateway.to_owned(),
        }
    }
}

fn status_line(summary: &Summary, mqtt: &MqttState) -> String {
    let link = match mqtt {
        MqttState::Connected => "broker connected".to_owned(),
        MqttState::Connecting => "connecting to broker".to_owned(),
        MqttState::Disconnected { reason, .. } => format!("broker unreachable: {reason}"),
        MqttState::ShuttingDown | MqttState::Stopped => "stopping".to_owned(),
    };
    format!(
        "{} reading(s), {} failed; {link}",
        summary.readings, summary.failed
    )
}

/// SIGHUP: new meters, keys and driver definitions without touching the radios.
fn reload(
    opts: &DaemonOptions,
    decoder: &mut Decoder,
    pipeline: &mut Pipeline,
    alarms: &mut Alarms,
    notifier: &Notifier,
) {
    let Some(path) = &opts.config_path else {
        tracing::info!("SIGHUP ignored: no configuration file to reload");
        return;
    };
    notifier.reloading();
    match reload_from(path) {
        Ok((config, keys, drivers)) => {
            let n_keys = keys.len();
            let n_drivers = drivers.len();
            decoder.set_keys(keys);
            decoder.set_drivers(drivers);
            pipeline.reconfigure(pipeline_config(&config));
            alarms.set_missing_factor(config.health.missing_factor);
            tracing::info!(
                "reloaded {}: {} meter(s), {n_keys} key(s), {n_drivers} driver(s); radio and MQTT settings need a restart",
                path.display(),
                config.meters.len()
            );
        }
        Err(e) => tracing::error!(
            "reload of {} failed, keeping the running configuration: {e}",
            path.display()
        ),
    }
    notifier.ready();
}

fn reload_from(path: &Path) -> Result<(Config, KeyStore, DriverSet), DaemonError> {
    let config = Config::load(path)?;
    let keys = key_store(&config)?;
    let drivers = driver_set(&config)?;
    Ok((config, keys, drivers))
}
