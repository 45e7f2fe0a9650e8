//! The daemon side of a bus: poll every configured meter each `poll_interval`, send each
//! RSP_UD into the channel the radios use (link mode `wired`, the bus name as source), and
//! keep per-meter poll health for the health document.
//!
//! A meter whose poll fails `missing_after` times in a row is `missing` (logged once);
//! the other meters keep being polled on schedule. A failing port is reopened with backoff.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::BusConfig;
use super::master::{BusError, Master, Target};
use super::port::Port;
use crate::radio::{RadioEvent, RadioState};
use crate::shutdown::Shutdown;
use crate::wire::mbus::MbusLongFrame;

/// Poll state of one meter of a bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeterPoll {
    /// `ok`, `failing` (fewer than `missing_after` failures in a row), `missing`, or
    /// `unknown` before the first poll.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_address: Option<u8>,
    /// The id the meter reported (the configured one for secondary addressing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter_id: Option<String>,
    pub polls: u64,
    pub failed_polls: u64,
    pub failures_in_a_row: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One bus in the health document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusStatus {
    pub device: String,
    /// `opening`, `ready` or `lost: <reason>`.
    pub port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<String>,
    /// Keyed by the configured entry: the primary address or the 8-digit id.
    pub meters: BTreeMap<String, MeterPoll>,
}

/// Health of every bus, shared between the bus tasks and the health publisher.
#[derive(Debug, Clone, Default)]
pub struct BusHealth(Arc<Mutex<BTreeMap<String, BusStatus>>>);

impl BusHealth {
    fn update(&self, bus: &str, f: impl FnOnce(&mut BusStatus)) {
        if let Ok(mut map) = self.0.lock() {
            f(map.entry(bus.to_owned()).or_default());
        }
    }

    /// The `buses` object of the health document.
    pub fn snapshot(&self) -> BTreeMap<String, BusStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The health-document key of a configured meter.
pub fn meter_key(target: &Target) -> String {
    match target {
        Target::Primary(a) => a.to_string(),
        Target::Secondary(s) => s.pattern(),
    }
}

/// Starts one task per bus; they stop when `shutdown` fires.
pub fn spawn_all(
    buses: &[BusConfig],
    events: &mpsc::Sender<RadioEvent>,
    shutdown: &Shutdown,
) -> (BusHealth, Vec<JoinHandle<()>>) {
    let health = BusHealth::default();
    let tasks = buses
        .iter()
        .map(|bus| {
            tracing::info!(
                "bus {}: {} at {} baud, {} meter(s) every {:?}",
                bus.name,
                bus.device,
                bus.baud,
                bus.meters.len(),
                bus.poll_interval
            );
            tokio::spawn(run(
                bus.clone(),
                events.clone(),
                health.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    (health, tasks)
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Polls one bus until shutdown (or until nobody listens to `events`).
pub async fn run(
    bus: BusConfig,
    events: mpsc::Sender<RadioEvent>,
    health: BusHealth,
    mut shutdown: Shutdown,
) {
    health.update(&bus.name, |s| {
        s.device = bus.device.clone();
        for t in &bus.meters {
            s.meters.insert(
                meter_key(t),
                MeterPoll {
                    state: "unknown",
                    ..MeterPoll::default()
                },
            );
        }
    });
    let mut backoff = BACKOFF_MIN;
    while !shutdown.is_shutdown() {
        if state(&events, &bus, RadioState::Opening).await.is_err() {
            return;
        }
        health.update(&bus.name, |s| s.port = "opening".to_owned());
        let reason = match Port::open(&bus.device, bus.baud).await {
            Ok(port) => {
                let ready = RadioState::Ready {
                    dongle: format!("M-Bus master, {} baud", bus.baud),
                };
                if state(&events, &bus, ready).await.is_err() {
                    return;
                }
                health.update(&bus.name, |s| s.port = "ready".to_owned());
                backoff = BACKOFF_MIN;
                match poll_forever(
                    &bus,
                    Master::new(port, bus.timing()),
                    &events,
                    &health,
                    &mut shutdown,
                )
                .await
                {
                    Ok(()) => return,
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        health.update(&bus.name, |s| s.port = format!("lost: {reason}"));
        if state(&events, &bus, RadioState::Lost { reason })
            .await
            .is_err()
        {
            return;
        }
        shutdown.sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn state(
    events: &mpsc::Sender<RadioEvent>,
    bus: &BusConfig,
    state: RadioState,
) -> Result<(), ()> {
    let ev = RadioEvent::State {
        source: bus.name.clone(),
        state,
    };
    events.send(ev).await.map_err(|_| ())
}

/// Poll cycles on an open port; returns on shutdown (`Ok`) or a port failure (`Err`).
async fn poll_forever(
    bus: &BusConfig,
    mut master: Master<Port>,
    events: &mpsc::Sender<RadioEvent>,
    health: &BusHealth,
    shutdown: &mut Shutdown,
) -> Result<(), std::io::Error> {
    let mut tick = tokio::time::interval(bus.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return Ok(()),
        }
        for target in &bus.meters {
            if shutdown.is_shutdown() {
                return Ok(());
            }
            let result = master.read(*target).await;
            match result {
                Err(BusError::Io(e)) => return Err(e),
                Ok(frames) => {
                    record_ok(health, bus, target, &frames);
                    for bytes in frames {
                        let frame = super::wired_frame(bytes, &bus.name);
                        if events.send(RadioEvent::Frame(frame)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                Err(e) => record_failure(health, bus, target, &e),
            }
        }
        health.update(&bus.name, |s| {
            s.last_cycle = Some(crate::timefmt::rfc3339(SystemTime::now()))
        });
    }
}

fn record_ok(health: &BusHealth, bus: &BusConfig, target: &Target, frames: &[Vec<u8>]) {
    let first = frames
        .first()
        .and_then(|f| MbusLongFrame::parse(f).ok())
        .map(|(f, _)| f);
    let id = first
        .and_then(|f| f.tpl().ok())
        .and_then(|(t, _)| t.long_address)
        .map(|a| a.id_string());
    health.update(&bus.name, |s| {
        let m = s.meters.entry(meter_key(target)).or_default();
        if m.state == "missing" {
            tracing::info!("bus {}: {target} answers again", bus.name);
        }
        m.state = "ok";
        m.polls += 1;
        m.failures_in_a_row = 0;
        m.primary_address = first.map(|f| f.address);
        m.meter_id = id;
        m.last_ok = Some(crate::timefmt::rfc3339(SystemTime::now()));
    });
}

fn record_failure(health: &BusHealth, bus: &BusConfig, target: &Target, error: &BusError) {
    health.update(&bus.name, |s| {
        let m = s.meters.entry(meter_key(target)).or_default();
        m.polls += 1;
        m.failed_polls += 1;
        m.failures_in_a_row += 1;
        m.last_error = Some(error.to_string());
        if m.failures_in_a_row >= bus.missing_after {
            if m.state != "missing" {
                tracing::warn!(
                    "bus {}: {target} missing: {} failed poll(s) in a row; last: {error}",
                    bus.name,
                    m.failures_in_a_row
                );
            }
            m.state = "missing";
        } else {
            tracing::info!("bus {}: poll failed: {error}", bus.name);
            m.state = "failing";
        }
    });
}
