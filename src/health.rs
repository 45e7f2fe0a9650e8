//! Meter health alarms: meters gone silent and meters reporting trouble in their status.
//!
//! Pure and synchronous: [`Alarms::evaluate`] compares the per-meter statistics of the
//! pipeline with the alarms already active and returns what changed. The daemon publishes
//! each change on `<prefix>/<gateway>/alarm` and keeps the active set in its state file, so
//! an alarm raised before a restart is neither raised twice nor forgotten.
//!
//! Rules:
//! * `missing`: a configured meter with a known typical interval has been silent for longer
//!   than `missing_factor` × that interval. Meters never heard have no interval and raise
//!   nothing (there is no basis to call them late). Silence is counted from the later of
//!   the last telegram and the start of evaluation, so a gateway that was itself down
//!   for a while does not call every meter missing the moment it comes back.
//! * Status flags of the last decoded reading (TPL status byte, EN 13757-7): `error`,
//!   `alarm`, `power_low`, `permanent_error`, `temporary_error`; each is its own alarm.
//! * `error_flags`: the meter's current error-flags record (VIF FD 17) is non-zero (leak,
//!   burst, tamper and similar vendor conditions are reported there).
//!
//! An alarm clears when its condition no longer holds: the meter is heard again, or its
//! next reading no longer carries the flag. Alarms of a meter removed from the
//! configuration clear too.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::pipeline::MeterStats;

/// Version of the alarm message layout.
pub const ALARM_SCHEMA: u32 = 1;

/// Status-byte flags that raise an alarm of the same name.
const STATUS_ALARMS: [&str; 5] = [
    "error",
    "alarm",
    "power_low",
    "permanent_error",
    "temporary_error",
];

/// Alarm name for a silent meter.
pub const MISSING: &str = "missing";
/// Alarm name for a non-zero error-flags record.
pub const ERROR_FLAGS: &str = "error_flags";

/// Whether an alarm was raised or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmState {
    Raised,
    Cleared,
}

/// One alarm currently raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveAlarm {
    pub meter: String,
    /// `missing`, a status flag name, or `error_flags`.
    pub alarm: String,
    /// RFC 3339 time it was raised.
    pub since: String,
    pub detail: String,
}

/// A transition to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmChange {
    pub schema: u32,
    pub meter: String,
    pub alarm: String,
    pub state: AlarmState,
    /// When the alarm was raised (for a clearing, when the cleared alarm had been raised).
    pub since: String,
    pub detail: String,
}

impl AlarmChange {
    /// One log line per change, the same for health and consumption alarms.
    #[cfg(feature = "daemon")]
    pub fn log(&self) {
        match self.state {
            AlarmState::Raised => tracing::warn!(
                "meter {}: alarm {} raised: {}",
                self.meter,
                self.alarm,
                self.detail
            ),
            AlarmState::Cleared => tracing::info!(
                "meter {}: alarm {} cleared ({})",
                self.meter,
                self.alarm,
                self.detail
            ),
        }
    }

    /// The JSON payload for the alarm topic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The active alarms of a gateway and the rule parameters.
#[derive(Debug, Clone)]
pub struct Alarms {
    missing_factor: f64,
    /// When this gateway started listening; no meter is late before it had a chance.
    listening_since: SystemTime,
    active: BTreeMap<(String, String), ActiveAlarm>,
}

impl Alarms {
    pub fn new(missing_factor: f64, listening_since: SystemTime) -> Self {
        Alarms {
            missing_factor,
            listening_since,
            active: BTreeMap::new(),
        }
    }

    pub fn set_missing_factor(&mut self, factor: f64) {
        self.missing_factor = factor;
    }

    /// Takes over alarms saved by an earlier run; they clear normally once resolved.
    pub fn restore(&mut self, saved: Vec<ActiveAlarm>) {
        for a in saved {
            self.active.insert((a.meter.clone(), a.alarm.clone()), a);
        }
    }

    /// The active alarms, by meter then alarm name.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.active.values().cloned().collect()
    }

    /// Compares the conditions of every meter with the active set at `now`; returns the
    /// alarms raised and cleared, in meter order, and updates the active set.
    pub fn evaluate(
        &mut self,
        meters: &BTreeMap<&str, &MeterStats>,
        now: SystemTime,
    ) -> Vec<AlarmChange> {
        let mut wanted: BTreeMap<(String, String), String> = BTreeMap::new();
        for (&id, stats) in meters {
            for (alarm, detail) in self.conditions(id, stats, now) {
                wanted.insert((id.to_owned(), alarm), detail);
            }
        }
        let mut changes = Vec::new();
        let stale: Vec<(String, String)> = self
            .active
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in stale {
            if let Some(a) = self.active.remove(&key) {
                let detail = match meters.get(a.meter.as_str()) {
                    Some(s) if s.configured || a.alarm != MISSING => "resolved".to_owned(),
                    _ => "meter no longer configured".to_owned(),
                };
                changes.push(AlarmChange {
                    schema: ALARM_SCHEMA,
                    meter: a.meter,
                    alarm: a.alarm,
                    state: AlarmState::Cleared,
                    since: a.since,
                    detail,
                });
            }
        }
        let since = crate::timefmt::rfc3339(now);
        for ((meter, alarm), detail) in wanted {
            let key = (meter.clone(), alarm.clone());
            if self.active.contains_key(&key) {
                continue;
            }
            self.active.insert(
                key,
                ActiveAlarm {
                    meter: meter.clone(),
                    alarm: alarm.clone(),
                    since: since.clone(),
                    detail: detail.clone(),
                },
            );
            changes.push(AlarmChange {
                schema: ALARM_SCHEMA,
                meter,
                alarm,
                state: AlarmState::Raised,
                since: since.clone(),
                detail,
            });
        }
        changes.sort_by(|a, b| (&a.meter, &a.alarm).cmp(&(&b.meter, &b.alarm)));
        changes
    }

    /// Alarm names (with details) whose condition holds for one meter now.
    fn conditions(&self, id: &str, stats: &MeterStats, now: SystemTime) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !stats.configured {
            return out;
        }
        if let (Some(last), Some(interval)) = (stats.last_seen_at, stats.interval_s) {
            // The start-up grace does not apply to an alarm already raised (restored from
            // the state file): the meter is still as silent as it was.
            let raised = self
                .active
                .contains_key(&(id.to_owned(), MISSING.to_owned()));
            let last = if raised {
                last
            } else {
                last.max(self.listening_since)
            };
            let silent = now.duration_since(last).unwrap_or_default().as_secs_f64();
            let limit = self.missing_factor * interval;
            if interval > 0.0 && silent > limit {
                out.push((
                    MISSING.to_owned(),
                    format!(
                        "silent for {silent:.0} s, more than {:.1} x its typical interval of {interval:.0} s",
                        self.missing_factor
                    ),
                ));
            }
        }
        for flag in STATUS_ALARMS {
            if stats.status_flags.iter().any(|f| f == flag) {
                out.push((flag.to_owned(), format!("status byte flag {flag} set")));
            }
        }
        if let Some(bits) = stats.error_flags.filter(|&b| b != 0) {
            out.push((
                ERROR_FLAGS.to_owned(),
                format!("error flags record (FD 17) is 0x{bits:X}"),
            ));
        }
        out
    }
}

/// Version of the health documents (summary and per meter).
pub const HEALTH_SCHEMA: u32 = 2;

/// The retained health document of one meter (`<prefix>/<gateway>/meter/<id>/health`).
pub fn meter_document(id: &str, stats: &MeterStats) -> serde_json::Value {
    let mut doc = serde_json::to_value(stats).unwrap_or_default();
    if let Some(map) = doc.as_object_mut() {
        map.insert("schema".into(), HEALTH_SCHEMA.into());
        map.insert("meter".into(), id.into());
        // What a technician passes to `decode --explain --last-counter`.
        if let Some(counter) = stats.replay.counter {
            map.insert("message_counter".into(), counter.into());
        }
    }
    doc
}

/// What the summary document is made of.
pub struct SummaryInput<'a> {
    pub totals: &'a crate::pipeline::Totals,
    /// Meters heard or configured.
    pub meters: usize,
    pub configured: usize,
    /// Radio source -> state (`ready (...)`, `lost: ...`).
    pub radios: &'a BTreeMap<String, String>,
    pub alarms: &'a Alarms,
    /// Alarms raised elsewhere (the billing store's consumption alarms).
    pub extra_alarms: Vec<ActiveAlarm>,
    /// The gateway's time (the recorded time of a replay with `clock = "recorded"`).
    pub now: SystemTime,
    /// Spool figures, when there is a spool.
    pub spool: Option<serde_json::Value>,
    /// Per-meter state of the wired M-Bus masters, when buses are configured (a bus holds
    /// at most 250 primary addresses, so this stays small).
    pub buses: Option<serde_json::Value>,
}

/// The gateway's summary document (`<prefix>/<gateway>/health`): counts, radios, alarms in
/// force by name. Its size does not depend on the number of meters.
pub fn summary_document(input: &SummaryInput<'_>) -> serde_json::Value {
    let mut by_alarm: BTreeMap<&str, u64> = BTreeMap::new();
    let extra = input.extra_alarms.iter();
    for a in input.alarms.active.values().chain(extra) {
        *by_alarm.entry(a.alarm.as_str()).or_default() += 1;
    }
    serde_json::json!({
        "schema": HEALTH_SCHEMA,
        "time": crate::timefmt::rfc3339(input.now),
        "totals": input.totals,
        "meters": { "known": input.meters, "configured": input.configured },
        "radios": input.radios,
        "alarms": {
            "active": input.alarms.active.len() + input.extra_alarms.len(),
            "by_name": by_alarm,
            "consumption": input.extra_alarms,
        },
        "spool": input.spool,
        "buses": input.buses,
    })
}

/// Version of the `<prefix>/<gateway>/radio/<name>` document.
pub const RADIO_SCHEMA: u32 = 1;

/// What a receiver's session reported, as far as its published state is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioReport<'a> {
    Opening,
    Ready,
    /// Lost and being reopened; `device_missing`: its device node or file is gone.
    Lost {
        device_missing: bool,
    },
    /// Stopped for good (a setting no retry can fix).
    Failed {
        reason: &'a str,
    },
}

/// The published state of a receiver: `opening` (first start), `running`, `reopening`
/// (lost, retried with backoff), `missing` (its device is gone: dongle unplugged),
/// `failed: <reason>` (not retried). While a lost radio is reopened it keeps saying
/// `reopening` or `missing` until it runs again.
pub fn radio_state(previous: Option<&str>, report: RadioReport<'_>) -> String {
    match report {
        RadioReport::Opening => match previous {
            Some(p @ ("reopening" | "missing")) => p.to_owned(),
            _ => "opening".to_owned(),
        },
        RadioReport::Ready => "running".to_owned(),
        RadioReport::Lost {
            device_missing: true,
        } => "missing".to_owned(),
        RadioReport::Lost {
            device_missing: false,
        } => "reopening".to_owned(),
        RadioReport::Failed { reason } => format!("failed: {reason}"),
    }
}

/// `<name>` of a radio's topic: its source with the characters MQTT topics reserve
/// (`/`, `+`, `#`) and blanks replaced, e.g. `/dev/ttyUSB0` -> `dev_ttyUSB0`.
pub fn radio_topic_name(source: &str) -> String {
    let name: String = source
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' | ' ' | ':' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = name.trim_matches('_');
    if trimmed.is_empty() {
        "radio".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The retained `<prefix>/<gateway>/radio/<name>` document.
pub fn radio_document(
    source: &str,
    state: &str,
    detail: Option<&str>,
    now: SystemTime,
) -> serde_json::Value {
    serde_json::json!({
        "schema": RADIO_SCHEMA,
        "radio": source,
        "state": state,
        "detail": detail,
        "since": crate::timefmt::rfc3339(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn radio_states_through_a_loss() {
        let mut state = radio_state(None, RadioReport::Opening);
        assert_eq!(state, "opening");
        state = radio_state(Some(&state), RadioReport::Ready);
        assert_eq!(state, "running");
        state = radio_state(
            Some(&state),
            RadioReport::Lost {
                device_missing: false,
            },
        );
        assert_eq!(state, "reopening");
        state = radio_state(Some(&state), RadioReport::Opening);
        assert_eq!(state, "reopening");
        state = radio_state(
            Some(&state),
            RadioReport::Lost {
                device_missing: true,
            },
        );
        assert_eq!(state, "missing");
        state = radio_state(Some(&state), RadioReport::Opening);
        assert_eq!(state, "missing");
        assert_eq!(radio_state(Some(&state), RadioReport::Ready), "running");
        let failed = radio_state(
            None,
            RadioReport::Failed {
                reason: "bad modes",
            },
        );
        assert_eq!(failed, "failed: bad modes");
        assert_eq!(
            radio_topic_name("/dev/serial/by-id/usb-x"),
            "dev_serial_by-id_usb-x"
        );
        assert_eq!(
            radio_topic_name("tcp://10.0.0.5:4001"),
            "tcp___10.0.0.5_4001"
        );
        assert_eq!(radio_topic_name("#"), "radio");
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + secs)
    }

    fn meter(last_seen: u64, interval: f64) -> MeterStats {
        let mut s = MeterStats::default();
        s.configured = true;
        s.last_seen_at = Some(t(last_seen));
        s.interval_s = Some(interval);
        s
    }

    fn eval(alarms: &mut Alarms, id: &str, s: &MeterStats, now: u64) -> Vec<AlarmChange> {
        let mut m = BTreeMap::new();
        m.insert(id, s);
        alarms.evaluate(&m, t(now))
    }

    #[test]
    fn missing_is_raised_after_factor_intervals_and_cleared_when_heard() {
        let mut alarms = Alarms::new(3.0, t(0));
        let s = meter(0, 10.0);
        assert!(eval(&mut alarms, "12345678", &s, 30).is_empty());
        let raised = eval(&mut alarms, "12345678", &s, 31);
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].alarm, "missing");
        assert_eq!(raised[0].state, AlarmState::Raised);
        assert_eq!(raised[0].since, crate::timefmt::rfc3339(t(31)));
        // Still silent: nothing new to say.
        assert!(eval(&mut alarms, "12345678", &s, 60).is_empty());
        assert_eq!(alarms.active().len(), 1);
        let heard = meter(61, 10.0);
        let cleared = eval(&mut alarms, "12345678", &heard, 62);
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].state, AlarmState::Cleared);
        assert_eq!(cleared[0].since, raised[0].since);
        assert!(alarms.active().is_empty());
    }

    #[test]
    fn silence_counts_from_the_start_of_listening() {
        // Heard at 0, gateway down until 1000: not missing before 1000 + 3 × 10.
        let mut alarms = Alarms::new(3.0, t(1000));
        let s = meter(0, 10.0);
        assert!(eval(&mut alarms, "1", &s, 1001).is_empty());
        assert!(eval(&mut alarms, "1", &s, 1030).is_empty());
        assert_eq!(eval(&mut alarms, "1", &s, 1031).len(), 1);
    }

    #[test]
    fn unconfigured_or_never_timed_meters_are_never_missing() {
        let mut alarms = Alarms::new(2.0, t(0));
        let mut s = meter(0, 10.0);
        s.configured = false;
        assert!(eval(&mut alarms, "1", &s, 1000).is_empty());
        let mut s = meter(0, 10.0);
        s.interval_s = None;
        assert!(eval(&mut alarms, "1", &s, 1000).is_empty());
    }

    #[test]
    fn status_flags_and_error_flags_raise_and_clear() {
        let mut alarms = Alarms::new(3.0, t(0));
        let mut s = meter(0, 10.0);
        s.status_flags = vec![
            "power_low".into(),
            "busy".into(),
            "manufacturer_bit5".into(),
        ];
        s.error_flags = Some(0x10);
        let raised = eval(&mut alarms, "1", &s, 1);
        let names: Vec<_> = raised.iter().map(|c| c.alarm.as_str()).collect();
        assert_eq!(names, ["error_flags", "power_low"]);
        assert!(raised[0].detail.contains("0x10"));
        s.status_flags = vec!["power_low".into()];
        s.error_flags = Some(0);
        let changed = eval(&mut alarms, "1", &s, 2);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].alarm.as_str(), changed[0].state),
            ("error_flags", AlarmState::Cleared)
        );
        let json: serde_json::Value = serde_json::from_str(&changed[0].to_json()).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["state"], "cleared");
        assert_eq!(json["meter"], "1");
    }

    #[test]
    fn restored_alarms_are_not_raised_again_and_clear_when_resolved() {
        let mut first = Alarms::new(3.0, t(0));
        let s = meter(0, 10.0);
        assert_eq!(eval(&mut first, "7", &s, 100).len(), 1);
        // Restarted much later: the grace period does not clear a restored alarm.
        let mut second = Alarms::new(3.0, t(190));
        second.restore(first.active());
        assert!(eval(&mut second, "7", &s, 200).is_empty());
        let cleared = eval(&mut second, "7", &meter(199, 10.0), 200);
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].state, AlarmState::Cleared);
    }

    #[test]
    fn alarms_of_a_meter_dropped_from_the_configuration_clear() {
        let mut alarms = Alarms::new(3.0, t(0));
        let mut s = meter(0, 10.0);
        assert_eq!(eval(&mut alarms, "7", &s, 100).len(), 1);
        s.configured = false;
        let cleared = eval(&mut alarms, "7", &s, 101);
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].detail, "meter no longer configured");
    }
}
