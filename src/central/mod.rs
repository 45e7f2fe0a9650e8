//! `wmbusd central`: decoding for many gateways that forward raw frames.
//!
//! ```text
//! gateways (mode = "forward") ──<prefix>/<gw>/raw, QoS 1──▶ broker (MQTT 5)
//!   ──$share/<group>/<prefix>/+/raw──▶ central 1..N: decode (keys, drivers) ──batch──▶
//!   PostgreSQL (one row per telegram, receivers merged) ──outbox──▶ spool ──▶ broker
//!   (<prefix>/<best gateway>/meter/<id>, or <topic>/<id>)
//! ```
//!
//! A raw frame is acknowledged to the broker only after the batch holding it is committed:
//! at-least-once at the transport, once in the store (see [`crate::store::postgres`]).
//! Readings are published from the store after `hold_ms`, so that the copies of a telegram
//! other gateways forwarded (to any instance) are merged into its `receivers` first.

pub mod input;
mod outbox;
pub mod raw;

use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::billing::{Calendar, Facts, Medium};
// The section lives with the rest of the configuration (config does not import central).
pub use crate::config::CentralSection;
use crate::config::Config;
use crate::decode::Decoder;
use crate::mqtt::{self, MqttConfig, MqttState, RetainedPublisher};
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};
use crate::reading::Reading;
use crate::shutdown::Shutdown;
use crate::spool::{Spool, SpoolHandle};
use crate::store::postgres::{PgReading, PgStore};

use input::{Delivery, Input, InputConfig, InputEvent};

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("central: {0}")]
    Setup(String),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("central: spool: {0}")]
    Spool(#[from] crate::spool::SpoolError),
    #[error("central: signals: {0}")]
    Signal(std::io::Error),
}

/// What an instance did, for the log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CentralSummary {
    pub frames: u64,
    pub failed: u64,
    pub inserted: u64,
    pub merged: u64,
    pub published: u64,
}

/// One frame waiting for its batch's commit.
struct Pending {
    delivery: Box<Delivery>,
    reading: Option<PgReading>,
}

/// The decoding side: everything the main loop owns.
struct Decoding {
    decoder: Decoder,
    pipeline: Pipeline,
    calendar: Calendar,
    prefix: String,
    summary: CentralSummary,
}

impl Decoding {
    /// Decodes one forwarded frame; `None` when it yields no reading (counted, logged).
    fn frame(&mut self, d: &Delivery) -> Option<PgReading> {
        self.summary.frames += 1;
        let topic = String::from_utf8_lossy(&d.publish.topic);
        let Some(gateway) = raw::gateway_of_topic(&self.prefix, &topic) else {
            self.summary.failed += 1;
            tracing::warn!("central: frame on unexpected topic {topic}: ignored");
            return None;
        };
        let frame =
            match raw::RawFrameMsg::parse(&d.publish.payload).and_then(|m| m.to_frame(gateway)) {
                Ok(f) => f,
                Err(e) => {
                    self.summary.failed += 1;
                    tracing::warn!("central: {topic}: {e}");
                    return None;
                }
            };
        match self
            .pipeline
            .process(&mut self.decoder, &frame, Instant::now())
        {
            Outcome::Reading(reading) => self.row(&reading, &frame, gateway),
            Outcome::Failed(err) => {
                self.summary.failed += 1;
                let meter = err.meter.as_deref().unwrap_or("?");
                tracing::warn!(
                    "meter {meter} via {gateway}: {} ({})",
                    err.kind.label(),
                    err.message
                );
                None
            }
            Outcome::Duplicate { .. } | Outcome::Filtered { .. } => None,
        }
    }

    fn row(
        &self,
        reading: &Reading,
        frame: &crate::frame::RadioFrame,
        gateway: &str,
    ) -> Option<PgReading> {
        let at = frame.received_at.unwrap_or_else(SystemTime::now);
        let t_ms = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut json = Vec::with_capacity(1024);
        if let Err(e) = reading.write_json(&mut json) {
            tracing::error!(
                "reading of meter {} not serialisable: {e}",
                reading.meter.id
            );
            return None;
        }
        let medium = Medium::from_device_type(&reading.meter.device_type);
        let facts = Facts::of(reading, medium);
        let day = jiff::Timestamp::from_millisecond(t_ms)
            .map(|t| self.calendar.local_date(t).to_string())
            .unwrap_or_default();
        Some(PgReading {
            meter_id: reading.meter.id.clone(),
            access_number: reading.access_number.map_or(-1, i32::from),
            t_ms,
            received_at: crate::timefmt::rfc3339(at),
            day,
            gateway: gateway.to_owned(),
            rssi_dbm: frame.rssi_dbm,
            reading: String::from_utf8(json).ok()?,
            registers: crate::store::registers_json(&facts.registers),
        })
    }
}

/// Runs one central instance until SIGTERM/SIGINT (or until `stop` fires, in tests).
pub async fn run(config: Config, mut stop: Shutdown) -> Result<CentralSummary, CentralError> {
    let section = config.central.clone().unwrap_or_default();
    let url = store_url(&config)?;
    let mqtt_cfg = config
        .mqtt_config()?
        .ok_or_else(|| CentralError::Setup("needs an [mqtt] section (the broker)".into()))?;
    let mut store = PgStore::connect(&url).await?;
    let outbox_store = PgStore::connect(&url).await?;
    let mut decoding = Decoding::new(&config, &mqtt_cfg)?;
    let spool = SpoolHandle::new(Spool::open(config.spool.to_spool_config())?);
    let publisher = Publisher::start(&mqtt_cfg, &spool);
    let outbox = outbox::Outbox::start(outbox_store, spool, &section, &mqtt_cfg.topic_prefix);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut input = Input::start(
        &InputConfig {
            mqtt: mqtt_cfg.clone(),
            group: section.group.clone(),
            receive_maximum: section.receive_maximum,
            session_expiry_secs: section.session_expiry_secs,
        },
        tx,
    );
    tracing::info!(
        "wmbusd {} central {}: group {}, store {}",
        env!("CARGO_PKG_VERSION"),
        config.gateway.id,
        section.group,
        crate::store::postgres::redact(&url)
    );
    let window_ms =
        i64::try_from(section.dedupe_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut io = Io {
        store: &mut store,
        input: &mut input,
        rx: &mut rx,
        stop: &mut stop,
    };
    let result = main_loop(&mut decoding, &mut io, section.batch_max.max(1), window_ms).await;
    input.stop().await;
    decoding.summary.published = outbox.stop().await;
    let drain = Duration::from_secs(config.spool.shutdown_drain_secs);
    publisher.stop(drain).await;
    let s = decoding.summary;
    tracing::info!(
        "central stopped: {} frame(s), {} telegram(s) stored, {} copies merged, {} failed, {} published",
        s.frames,
        s.inserted,
        s.merged,
        s.failed,
        s.published
    );
    result.map(|()| s)
}

/// The shared store of all instances: `[store] url` must name PostgreSQL.
fn store_url(config: &Config) -> Result<String, CentralError> {
    config
        .store
        .as_ref()
        .and_then(|s| s.url.clone())
        .filter(|u| u.starts_with("postgres"))
        .ok_or_else(|| {
            CentralError::Setup(
                "needs [store] url = \"postgres://…\" (the shared store of all instances)".into(),
            )
        })
}

impl Decoding {
    fn new(config: &Config, mqtt_cfg: &MqttConfig) -> Result<Decoding, CentralError> {
        Ok(Decoding {
            decoder: Decoder::with_drivers(
                crate::daemon::key_store(config)?,
                crate::daemon::driver_set(config)?,
            ),
            pipeline: Pipeline::new(PipelineConfig {
                // Copies are merged in the store, across instances, not dropped here.
                dedupe_window: Duration::ZERO,
                only_configured: config.pipeline.only_configured_meters,
                meters: config
                    .meters
                    .iter()
                    .map(|m| (m.id.clone(), m.name.clone()))
                    .collect(),
                // Copies from several gateways carry the same counter and instances see
                // different shares of the stream: the store's merge judges them, not a
                // per-instance counter (zero turns the check off).
                replay: crate::replay::Rule {
                    reset_after: Duration::ZERO,
                },
            }),
            calendar: Calendar::new(&config.billing)
                .map_err(|e| CentralError::Setup(e.to_string()))?,
            prefix: mqtt_cfg.topic_prefix.clone(),
            summary: CentralSummary::default(),
        })
    }
}

/// The MQTT task publishing what the outbox spooled.
struct Publisher {
    stop: watch::Sender<mqtt::Stop>,
    task: tokio::task::JoinHandle<Result<(), mqtt::MqttError>>,
}

impl Publisher {
    fn start(cfg: &MqttConfig, spool: &SpoolHandle) -> Publisher {
        let (stop, stop_rx) = watch::channel(mqtt::Stop::Running);
        let (state_tx, _state_rx) = watch::channel(MqttState::default());
        let task = tokio::spawn(mqtt::run(
            cfg.clone(),
            spool.clone(),
            RetainedPublisher::new(),
            stop_rx,
            state_tx,
        ));
        Publisher { stop, task }
    }

    /// Delivers what is spooled for at most `drain`, then stops.
    async fn stop(self, drain: Duration) {
        self.stop.send_replace(mqtt::Stop::drain_for(Some(drain)));
        let _ = self.task.await;
    }
}

/// What the main loop reads from and writes to.
struct Io<'a> {
    store: &'a mut PgStore,
    input: &'a mut Input,
    rx: &'a mut mpsc::UnboundedReceiver<InputEvent>,
    stop: &'a mut Shutdown,
}

/// Takes frames, decodes them into batches, commits each batch and then acknowledges
/// its frames. A batch that cannot be stored is retried (frames stay unacknowledged).
async fn main_loop(
    d: &mut Decoding,
    io: &mut Io<'_>,
    batch_max: usize,
    window_ms: i64,
) -> Result<(), CentralError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(CentralError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(CentralError::Signal)?;
    let mut batch: Vec<Pending> = Vec::with_capacity(batch_max);
    let mut stats = Instant::now();
    let mut last = d.summary;
    loop {
        let flush_now = batch.len() >= batch_max;
        if !flush_now {
            let event = tokio::select! {
                ev = io.rx.recv() => ev,
                // Whatever arrived is stored within 20 ms.
                _ = tokio::time::sleep(Duration::from_millis(20)), if !batch.is_empty() => None,
                _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                _ = io.stop.recv() => break,
            };
            match event {
                Some(InputEvent::Frame(delivery)) => {
                    let reading = d.frame(&delivery);
                    batch.push(Pending { delivery, reading });
                    continue;
                }
                Some(InputEvent::Connected(n)) => {
                    io.input.set_connection(n);
                    continue;
                }
                None if batch.is_empty() => break,
                None => {}
            }
        }
        commit(d, io, &mut batch, window_ms).await;
        if stats.elapsed() >= Duration::from_secs(10) {
            log_rate(&last, &d.summary, stats.elapsed());
            last = d.summary;
            stats = Instant::now();
        }
    }
    // Frames already taken are stored (and acknowledged) before the instance stops.
    commit(d, io, &mut batch, window_ms).await;
    Ok(())
}

async fn commit(d: &mut Decoding, io: &mut Io<'_>, batch: &mut Vec<Pending>, window_ms: i64) {
    if batch.is_empty() {
        return;
    }
    let rows: Vec<PgReading> = batch.iter().filter_map(|p| p.reading.clone()).collect();
    let mut wait = Duration::from_millis(200);
    loop {
        match io.store.insert_batch(&rows, window_ms).await {
            Ok(outcome) => {
                d.summary.inserted += outcome.inserted as u64;
                d.summary.merged += outcome.merged as u64;
                break;
            }
            Err(e) if io.stop.is_shutdown() => {
                tracing::error!("central: {e}; {} frame(s) left to the broker", batch.len());
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::error!("central: {e}; retrying in {} ms", wait.as_millis());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    for p in batch.drain(..) {
        io.input.ack(&p.delivery).await;
    }
}

fn log_rate(last: &CentralSummary, now: &CentralSummary, over: Duration) {
    let secs = over.as_secs_f64().max(0.001);
    tracing::info!(
        "central: {:.0} frame(s)/s, {} stored, {} merged, {} failed",
        (now.frames - last.frames) as f64 / secs,
        now.inserted,
        now.merged,
        now.failed
    );
}
