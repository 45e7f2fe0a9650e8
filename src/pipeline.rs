//! Between the decoder and the sinks: duplicate suppression, the meter filter, and
//! per-meter health counters. Pure and synchronous; the daemon drives it.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::decode::{DecodeError, Decoder, FailureKind};
use crate::frame::RadioFrame;
use crate::reading::Reading;
use crate::wire::address::Address;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What became of one received frame.
#[derive(Debug)]
pub enum Outcome {
    /// A new reading for a meter that passes the filter.
    Reading(Box<Reading>),
    /// The same frame was heard again inside the dedupe window (repeater, C+T receiver);
    /// `meter` as its headers name it.
    Duplicate { meter: Option<String> },
    /// Decoded or not, the meter is not configured and only configured meters are wanted.
    Filtered { meter: Option<String> },
    /// The frame did not decode.
    Failed(DecodeError),
}

/// Pipeline settings (from the `[pipeline]` section of the configuration).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub dedupe_window: Duration,
    /// When set, only meters in `meters` produce readings.
    pub only_configured: bool,
    /// Configured meter ids (8 digits) with their display names.
    pub meters: BTreeMap<String, Option<String>>,
    /// When a message counter that went back is a meter restart, not a replay.
    pub replay: crate::replay::Rule,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            dedupe_window: Duration::from_secs(30),
            only_configured: false,
            meters: BTreeMap::new(),
            replay: crate::replay::Rule::default(),
        }
    }
}

/// Duplicate suppression over a time window, keyed by a hash of the frame bytes (which
/// contain the meter address, the access number and the payload).
#[derive(Debug)]
pub struct Dedupe {
    window: Duration,
    seen: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
}

impl Dedupe {
    /// At most this many frames are remembered, whatever the window, to bound memory.
    const CAPACITY: usize = 4096;

    pub fn new(window: Duration) -> Self {
        Dedupe {
            window,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// True when the same bytes were seen within the window; records them otherwise.
    pub fn is_duplicate(&mut self, bytes: &[u8], now: Instant) -> bool {
        if self.window.is_zero() {
            return false;
        }
        while let Some(&(t, h)) = self.order.front() {
            if now.duration_since(t) <= self.window && self.order.len() < Self::CAPACITY {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&h);
        }
        let mut hasher = DefaultHasher::new();
        bytes.hash(&mut hasher);
        let h = hasher.finish();
        if self.seen.contains(&h) {
            return true;
        }
        self.seen.insert(h);
        self.order.push_back((now, h));
        false
    }
}

/// Counters and radio figures for one meter, as published on `<prefix>/<gw>/meters`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct MeterStats {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub configured: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device_type: Option<String>,
    pub heard: u64,
    pub decoded: u64,
    pub duplicates: u64,
    /// Failures by class (`no_key`, `wrong_key`, `crc`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Frames naming this meter whose C-field carries no data (SND_NKE, ACK, REQ_UD2).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub control_frames: u64,
    /// Outcome of the last telegram: `ok` or a failure class.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_outcome: Option<String>,
    /// RFC 3339 time of the last telegram heard.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_rssi_dbm: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mean_rssi_dbm: Option<f32>,
    /// Typical seconds between telegrams (exponentially weighted mean of the gaps),
    /// published to a tenth of a second: the digits below are clock noise.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        serialize_with = "tenths"
    )]
    pub interval_s: Option<f64>,
    /// Link mode of the last telegram (`T1`, `C1`, ...), when the receiver reports it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link_mode: Option<String>,
    /// Status byte flags of the last decoded reading (`power_low`, `error`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub status_flags: Vec<String>,
    /// Value of the current error-flags record (VIF FD 17) of the last decoded reading.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_flags: Option<u64>,
    #[serde(skip)]
    pub last_seen_at: Option<SystemTime>,
    #[serde(skip)]
    rssi_samples: u64,
    /// Changed since its health document was last published.
    #[serde(skip)]
    changed: bool,
    /// Last accepted message counter, access number and time (replay protection); kept
    /// in the state file's compact `replay` section, not here.
    #[serde(skip)]
    pub replay: crate::replay::Last,
    /// A replay of this meter was already logged; cleared by its next accepted reading.
    #[serde(skip)]
    replay_logged: bool,
}

fn tenths<S: serde::Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(&((v * 10.0).round() / 10.0)),
        None => s.serialize_none(),
    }
}

impl MeterStats {
    fn heard_at(&mut self, at: SystemTime, frame: &RadioFrame) {
        let rssi = frame.rssi_dbm;
        if let Some(mode) = frame.link_mode {
            self.link_mode = Some(mode.as_str().to_owned());
        }
        self.heard += 1;
        if let Some(prev) = self.last_seen_at {
            if let Ok(gap) = at.duration_since(prev) {
                let gap = gap.as_secs_f64();
                // Ignore near-simultaneous receptions (two receivers, C+T) for the interval.
                if gap >= 1.0 {
                    self.interval_s = Some(match self.interval_s {
                        None => gap,
                        Some(mean) => mean + (gap - mean) / 8.0,
                    });
                }
            }
        }
        self.last_seen_at = Some(at);
        self.last_seen = Some(crate::timefmt::rfc3339(at));
        if let Some(r) = rssi {
            self.last_rssi_dbm = Some(r);
            self.rssi_samples += 1;
            let n = self.rssi_samples as f32;
            let mean = self.mean_rssi_dbm.unwrap_or(r);
            self.mean_rssi_dbm = Some(mean + (r - mean) / n.min(32.0));
        }
    }
}

impl MeterStats {
    /// Manufacturer and device type from the link header of a frame that did not decode,
    /// so that a meter with a missing key still shows who made it and what it measures.
    /// A decoded reading's values (which may come from a long TPL header) take precedence.
    fn note_identity(&mut self, address: Option<Address>) {
        if self.manufacturer.is_some() {
            return;
        }
        let Some(address) = address else {
            return;
        };
        let m = address.manufacturer();
        self.manufacturer = Some(m.code().unwrap_or_else(|| format!("{:04X}", m.raw())));
        self.device_type =
            Some(crate::wire::device_type::name(m, address.device_type).into_owned());
    }
}

/// The instantaneous error-flags record (FD 17, storage 0) of a reading, if it has one.
fn current_error_flags(reading: &Reading) -> Option<u64> {
    reading
        .records
        .iter()
        .filter(|r| r.quantity == "error_flags" && r.storage == 0 && r.tariff == 0)
        .find_map(|r| match &r.value {
            crate::reading::Value::Number(d) => d.to_i128().and_then(|v| u64::try_from(v).ok()),
            _ => None,
        })
}

/// Gateway-wide counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub frames: u64,
    pub readings: u64,
    pub duplicates: u64,
    pub filtered: u64,
    pub failed: BTreeMap<String, u64>,
}

/// Dedupe, decode, filter and count, in that order.
pub struct Pipeline {
    config: PipelineConfig,
    dedupe: Dedupe,
    meters: HashMap<String, MeterStats>,
    /// Meters whose `changed` flag is set, for publishing only their health documents.
    changed: Vec<String>,
    totals: Totals,
    /// The last outcome was a replay of a meter whose replays were already logged.
    replay_repeated: bool,
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Self {
        let mut p = Pipeline {
            dedupe: Dedupe::new(config.dedupe_window),
            config: PipelineConfig::default(),
            meters: HashMap::new(),
            changed: Vec::new(),
            totals: Totals::default(),
            replay_repeated: false,
        };
        p.reconfigure(config);
        p
    }

    /// Applies a new meter list (SIGHUP) without losing counters.
    pub fn reconfigure(&mut self, config: PipelineConfig) {
        for stats in self.meters.values_mut() {
            stats.configured = false;
            stats.name = None;
        }
        for (id, name) in &config.meters {
            let stats = self.meters.entry(id.clone()).or_default();
            stats.configured = true;
            stats.name = name.clone();
        }
        self.dedupe.window = config.dedupe_window;
        self.config = config;
    }

    /// One received frame: read once ([`Decoder::read`]), then dedupe, decode, filter
    /// and count, every stage on that one parse.
    pub fn process(&mut self, decoder: &mut Decoder, frame: &RadioFrame, now: Instant) -> Outcome {
        self.totals.frames += 1;
        self.replay_repeated = false;
        let at = frame.received_at.unwrap_or_else(SystemTime::now);
        let read = decoder.read(frame);
        if self.dedupe.is_duplicate(&frame.bytes, now) {
            let meter = match read {
                Ok(received) => {
                    let id = received.meter_id();
                    decoder.recycle(received);
                    id
                }
                Err(e) => e.meter,
            };
            self.count_duplicate(meter.as_deref());
            return Outcome::Duplicate { meter };
        }
        let mut reading = Reading::default();
        match read.and_then(|received| decoder.decode_received(received, &mut reading)) {
            Ok(()) => self.decoded(decoder, frame, at, reading),
            Err(err) => self.failed(frame, at, err),
        }
    }

    fn count_duplicate(&mut self, meter: Option<&str>) {
        self.totals.duplicates += 1;
        if let Some(stats) = meter.and_then(|id| self.meters.get_mut(id)) {
            stats.duplicates += 1;
        }
    }

    /// A decoded reading: counted, filtered, judged for replay.
    fn decoded(
        &mut self,
        decoder: &Decoder,
        frame: &RadioFrame,
        at: SystemTime,
        reading: Reading,
    ) -> Outcome {
        let id = reading.meter.id.clone();
        let configured = self.config.meters.contains_key(&id);
        let stats = self.meters.entry(id.clone()).or_default();
        mark_changed(stats, &mut self.changed, &id);
        stats.heard_at(at, frame);
        stats.manufacturer = Some(reading.meter.manufacturer.clone());
        stats.device_type = Some(reading.meter.device_type.clone());
        stats.status_flags = reading.status.flags.iter().map(|f| f.to_string()).collect();
        stats.error_flags = current_error_flags(&reading);
        if self.config.only_configured && !configured {
            self.totals.filtered += 1;
            stats.last_outcome = Some("not_configured".into());
            return Outcome::Filtered { meter: Some(id) };
        }
        let counter = decoder.last_verified_counter();
        if let Some(err) = replay_check(stats, &id, counter, &reading, at, self.config.replay) {
            self.replay_repeated = std::mem::replace(&mut stats.replay_logged, true);
            count_failure(stats, &mut self.totals, err.kind);
            return Outcome::Failed(err);
        }
        stats.replay_logged = false;
        stats.decoded += 1;
        stats.last_outcome = Some("ok".into());
        self.totals.readings += 1;
        Outcome::Reading(Box::new(reading))
    }

    /// A frame that did not decode, counted against the meter its one parse named.
    fn failed(&mut self, frame: &RadioFrame, at: SystemTime, err: DecodeError) -> Outcome {
        let meter = err.meter.clone();
        let configured = meter
            .as_ref()
            .is_some_and(|id| self.config.meters.contains_key(id));
        if self.config.only_configured && !configured {
            // Someone else's meter we cannot or need not read: count, stay quiet.
            self.totals.filtered += 1;
            if let Some(id) = &meter {
                let stats = self.meters.entry(id.clone()).or_default();
                mark_changed(stats, &mut self.changed, id);
                stats.heard_at(at, frame);
                stats.note_identity(err.address);
                stats.last_outcome = Some("not_configured".into());
            }
            return Outcome::Filtered { meter };
        }
        let kind = err.kind.name().to_owned();
        *self.totals.failed.entry(kind.clone()).or_default() += 1;
        if err.kind == FailureKind::ControlFrame {
            // Link traffic (SND_NKE, ACK, requests): named and counted, not a
            // failure of the meter.
            if let Some(stats) = meter.as_ref().and_then(|id| self.meters.get_mut(id)) {
                stats.control_frames += 1;
            }
            return Outcome::Failed(err);
        }
        if let Some(id) = &meter {
            let stats = self.meters.entry(id.clone()).or_default();
            mark_changed(stats, &mut self.changed, id);
            stats.heard_at(at, frame);
            stats.note_identity(err.address);
            *stats.failed.entry(kind.clone()).or_default() += 1;
            stats.last_outcome = Some(kind);
        }
        Outcome::Failed(err)
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// The last frame was a replay of a meter whose replays were logged already: the
    /// daemon logs a replaying meter once until it sends a new telegram again.
    pub fn replay_repeated(&self) -> bool {
        self.replay_repeated
    }

    /// Per meter, the last accepted counter, access number and time (state file).
    pub fn replay_state(&self) -> BTreeMap<String, crate::replay::Last> {
        self.meters
            .iter()
            .filter(|(_, s)| !s.replay.is_empty())
            .map(|(id, s)| (id.clone(), s.replay))
            .collect()
    }

    /// Takes back what [`Pipeline::replay_state`] saved.
    pub fn restore_replay(&mut self, saved: BTreeMap<String, crate::replay::Last>) {
        for (id, last) in saved {
            self.meters.entry(id).or_default().replay = last;
        }
    }

    /// Ids of the meters whose statistics changed since the last call (O(changed)).
    pub fn take_changed(&mut self) -> Vec<String> {
        let ids = std::mem::take(&mut self.changed);
        for id in &ids {
            if let Some(s) = self.meters.get_mut(id) {
                s.changed = false;
            }
        }
        ids
    }

    /// Number of meters heard or configured.
    pub fn meter_count(&self) -> usize {
        self.meters.len()
    }

    /// Counts radio data a dongle codec rejected (garbled serial bytes) in the totals.
    pub fn count_bad_radio_data(&mut self) {
        *self
            .totals
            .failed
            .entry("bad_radio_data".to_owned())
            .or_default() += 1;
    }

    pub fn meter(&self, id: &str) -> Option<&MeterStats> {
        self.meters.get(id)
    }

    /// All meters heard or configured, sorted by id.
    pub fn meters(&self) -> BTreeMap<&str, &MeterStats> {
        self.meters.iter().map(|(k, v)| (k.as_str(), v)).collect()
    }

    /// Restores counters saved by an earlier run (health state survives restarts).
    pub fn restore(&mut self, saved: BTreeMap<String, MeterStats>) {
        for (id, mut stats) in saved {
            let entry = self.meters.entry(id).or_default();
            stats.configured = entry.configured;
            stats.name = entry.name.clone();
            // The instant is not serialised; its text form is, and missing-meter alarms
            // need it after a restart.
            stats.last_seen_at = stats
                .last_seen
                .as_deref()
                .and_then(crate::timefmt::parse_rfc3339);
            *entry = stats;
        }
    }
}

/// Counts a failure of a decoded telegram (a replay) against its meter and in the totals.
fn count_failure(stats: &mut MeterStats, totals: &mut Totals, kind: FailureKind) {
    let name = kind.name();
    *stats.failed.entry(name.to_owned()).or_default() += 1;
    stats.last_outcome = Some(name.to_owned());
    *totals.failed.entry(name.to_owned()).or_default() += 1;
}

/// Judges a decoded reading's authenticated counter against what the meter sent before;
/// remembers the reading when it is accepted, returns the `replay` failure otherwise.
fn replay_check(
    stats: &mut MeterStats,
    id: &str,
    counter: Option<u32>,
    reading: &Reading,
    at: SystemTime,
    rule: crate::replay::Rule,
) -> Option<DecodeError> {
    use crate::replay::Verdict;
    let secs = crate::replay::unix_secs(at);
    match stats.replay.check(counter, secs, rule) {
        Verdict::Replay { last } => {
            let got = counter.unwrap_or_default();
            return Some(
                DecodeError::new(
                    crate::wire::Layer::Afl,
                    FailureKind::Replay,
                    crate::replay::replay_message(id, got, last),
                )
                .for_meter(Some(id)),
            );
        }
        #[cfg(feature = "daemon")]
        Verdict::Restart { last } => tracing::info!(
            "meter {id}: message counter went back from {last} to {}; accepted as a restart of the meter",
            counter.unwrap_or_default()
        ),
        _ => {}
    }
    stats.replay.accept(counter, reading.access_number, secs);
    None
}

/// Flags a meter for its next health document, once per publishing round.
fn mark_changed(stats: &mut MeterStats, changed: &mut Vec<String>, id: &str) {
    if !stats.changed {
        stats.changed = true;
        changed.push(id.to_owned());
    }
}

/// Whether a failure class means "this meter's key is missing or wrong" (for alarms/logs).
pub fn is_key_problem(kind: FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::NoKey | FailureKind::WrongKey | FailureKind::MacFailure
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CRC failure from a receiver that hands on CRC-carrying bytes (CUL) is counted
    /// against the meter, class `crc`; a control frame is counted but is no failure.
    #[test]
    fn crc_failures_count_per_meter_and_control_frames_do_not_fail() {
        use crate::frame::{parse_hex, CrcState, FrameFormat};
        use crate::keys::KeyStore;
        let sontex = parse_hex("3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000").unwrap();
        let mut raw = crate::wire::link::add_crc(&sontex, FrameFormat::A).unwrap();
        raw[30] ^= 0x01;
        let frame = RadioFrame {
            crc: CrcState::Present(FrameFormat::A),
            ..RadioFrame::new(raw)
        };
        let mut decoder = Decoder::new(KeyStore::new());
        let mut pipeline = Pipeline::new(PipelineConfig::default());
        let now = Instant::now();
        assert!(matches!(
            pipeline.process(&mut decoder, &frame, now),
            Outcome::Failed(DecodeError {
                kind: FailureKind::Crc,
                ..
            })
        ));
        let stats = pipeline.meter("27293981").unwrap();
        assert_eq!(stats.failed.get("crc"), Some(&1));
        assert_eq!(stats.last_outcome.as_deref(), Some("crc"));
        assert_eq!(stats.manufacturer.as_deref(), Some("SON"));

        let mut nke = sontex.clone();
        nke[1] = 0x40;
        let frame = RadioFrame::new(nke);
        assert!(matches!(
            pipeline.process(&mut decoder, &frame, now),
            Outcome::Failed(DecodeError {
                kind: FailureKind::ControlFrame,
                ..
            })
        ));
        let stats = pipeline.meter("27293981").unwrap();
        assert_eq!((stats.control_frames, stats.failed.len()), (1, 1));
        assert_eq!(pipeline.totals().failed.get("control_frame"), Some(&1));
    }

    #[test]
    fn dedupe_window() {
        let mut d = Dedupe::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!d.is_duplicate(b"abc", t0));
        assert!(d.is_duplicate(b"abc", t0 + Duration::from_secs(5)));
        assert!(!d.is_duplicate(b"abd", t0 + Duration::from_secs(5)));
        // Outside the window the same bytes count as new.
        assert!(!d.is_duplicate(b"abc", t0 + Duration::from_secs(11)));
    }

    #[test]
    fn dedupe_disabled_with_zero_window() {
        let mut d = Dedupe::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(!d.is_duplicate(b"abc", t0));
        assert!(!d.is_duplicate(b"abc", t0));
    }

    #[test]
    fn interval_and_rssi_means() {
        let mut s = MeterStats::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let with_rssi = |rssi: Option<f32>| RadioFrame {
            rssi_dbm: rssi,
            link_mode: Some(crate::frame::LinkMode::C1),
            ..RadioFrame::new(Vec::new())
        };
        s.heard_at(t0, &with_rssi(Some(-70.0)));
        s.heard_at(t0 + Duration::from_secs(16), &with_rssi(Some(-80.0)));
        s.heard_at(t0 + Duration::from_secs(32), &with_rssi(None));
        assert_eq!(s.link_mode.as_deref(), Some("C1"));
        assert_eq!(s.heard, 3);
        assert_eq!(s.interval_s, Some(16.0));
        assert_eq!(s.last_rssi_dbm, Some(-80.0));
        assert_eq!(s.mean_rssi_dbm, Some(-75.0));
    }
}
