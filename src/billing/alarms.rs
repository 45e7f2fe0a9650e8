//! Consumption alarms: `leak`, `burst`, `backflow`, `stopped`, `overuse`. Raised once when
//! their condition starts holding and cleared once when it no longer does, in the alarm
//! message layout of `health` (same topic, same JSON). Pure: fed one reading at a time
//! with its (possibly recorded) time.
//!
//! * `leak` (water): the register rose in every one of the last `leak_hours` hours (one
//!   value per clock hour, each hour heard), or the meter's own leak flag.
//! * `burst` (water): flow above `burst_m3h`, or the meter's burst flag.
//! * `backflow` (water): the backward volume grew, or the meter's backflow flag.
//! * `stopped`: the register has not moved for `stopped_days` while the meter is heard.
//! * `overuse`: a completed local day used more than `overuse_factor` × the median of
//!   the meter's previous (up to 30, at least 7) days.
//!
//! A condition that cannot be judged (an hour not heard) keeps the alarm as it is.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::health::{ActiveAlarm, AlarmChange, AlarmState, ALARM_SCHEMA};

use super::close::{format_value, median};
use super::registers::{Facts, Medium};
use super::settings::Thresholds;

pub const LEAK: &str = "leak";
pub const BURST: &str = "burst";
pub const BACKFLOW: &str = "backflow";
pub const STOPPED: &str = "stopped";
pub const OVERUSE: &str = "overuse";

#[derive(Debug, Default)]
struct Track {
    /// (hour number, last register value of that hour), oldest first.
    hours: VecDeque<(i64, f64)>,
    /// (local day number, last register value of that day), oldest first.
    days: VecDeque<(i64, f64)>,
    last_value: Option<f64>,
    first_t: Option<i64>,
    /// When the register last moved (or was first seen).
    moved_t: Option<i64>,
    backward: Option<f64>,
}

/// One reading handed to [`ConsumptionAlarms::observe`].
pub struct Observation<'a> {
    pub meter: &'a str,
    pub medium: Medium,
    pub thresholds: &'a Thresholds,
    /// Unix seconds.
    pub t: i64,
    /// Local day number (days since 1970-01-01 in the billing time zone).
    pub day: i64,
    pub facts: &'a Facts,
}

/// Per-meter consumption state and the active consumption alarms.
#[derive(Debug, Default)]
pub struct ConsumptionAlarms {
    tracks: HashMap<String, Track>,
    active: BTreeMap<(String, String), ActiveAlarm>,
}

impl ConsumptionAlarms {
    pub fn new() -> Self {
        Self::default()
    }

    /// The active alarms, by meter then name.
    pub fn active(&self) -> Vec<ActiveAlarm> {
        self.active.values().cloned().collect()
    }

    /// Replaces the active set (restored after a restart).
    pub fn restore(&mut self, saved: Vec<ActiveAlarm>) {
        self.active = saved
            .into_iter()
            .map(|a| ((a.meter.clone(), a.alarm.clone()), a))
            .collect();
    }

    /// Takes one reading; returns the alarms of its meter raised or cleared.
    pub fn observe(&mut self, o: &Observation<'_>, since: &str) -> Vec<AlarmChange> {
        let track = self.tracks.entry(o.meter.to_owned()).or_default();
        let verdicts = judge(track, o);
        let mut changes = Vec::new();
        for (alarm, verdict) in verdicts {
            let key = (o.meter.to_owned(), alarm.to_owned());
            match verdict {
                Some(detail) if !self.active.contains_key(&key) => {
                    let a = ActiveAlarm {
                        meter: o.meter.to_owned(),
                        alarm: alarm.to_owned(),
                        since: since.to_owned(),
                        detail: detail.clone(),
                    };
                    self.active.insert(key, a);
                    changes.push(change(o.meter, alarm, AlarmState::Raised, since, detail));
                }
                None => {
                    if let Some(a) = self.active.remove(&key) {
                        changes.push(change(
                            o.meter,
                            alarm,
                            AlarmState::Cleared,
                            &a.since,
                            "resolved".into(),
                        ));
                    }
                }
                Some(_) => {}
            }
        }
        changes
    }
}

fn change(meter: &str, alarm: &str, state: AlarmState, since: &str, detail: String) -> AlarmChange {
    AlarmChange {
        schema: ALARM_SCHEMA,
        meter: meter.to_owned(),
        alarm: alarm.to_owned(),
        state,
        since: since.to_owned(),
        detail,
    }
}

/// Some(detail): holds; None: does not hold. Alarms that cannot be judged are left out.
type Verdicts = Vec<(&'static str, Option<String>)>;

fn judge(track: &mut Track, o: &Observation<'_>) -> Verdicts {
    let mut out = Verdicts::new();
    let counter = o.medium.registers().first().copied();
    let value = counter.and_then(|r| o.facts.register(r));
    let th = o.thresholds;
    if let Some(v) = value {
        record(track, o, v);
        if o.medium.is_water() {
            if let Some(v) = leak(track, th.leak_hours.unwrap_or(24), o.facts.leak_flag) {
                out.push((LEAK, v));
            }
        }
        if let Some(days) = th.stopped_days {
            if let (Some(first), Some(moved)) = (track.first_t, track.moved_t) {
                let still = (o.t - moved) as f64 / 86_400.0;
                if still >= days {
                    out.push((STOPPED, Some(format!("no consumption for {still:.1} days"))));
                } else if o.t - first >= 0 {
                    out.push((STOPPED, None));
                }
            }
        }
        if let Some(factor) = th.overuse_factor {
            if let Some(v) = overuse(track, factor) {
                out.push((OVERUSE, v));
            }
        }
    }
    if o.medium.is_water() {
        let limit = th.burst_m3h.unwrap_or(f64::INFINITY);
        let burst = match o.facts.flow_m3h {
            Some(f) if f > limit => Some(format!(
                "flow {} m3/h above {}",
                format_value(f),
                format_value(limit)
            )),
            _ if o.facts.burst_flag => Some("meter reports a burst".into()),
            _ => None,
        };
        out.push((BURST, burst));
        let grew = match (track.backward, o.facts.backward_m3) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        };
        if o.facts.backward_m3.is_some() {
            track.backward = o.facts.backward_m3;
        }
        let backflow = if grew {
            Some("backward volume grew".to_owned())
        } else if o.facts.backflow_flag {
            Some("meter reports backflow".to_owned())
        } else {
            None
        };
        out.push((BACKFLOW, backflow));
    }
    out
}

/// Adds the value to the hour and day series (kept 2 days / 32 days).
fn record(track: &mut Track, o: &Observation<'_>, v: f64) {
    let hour = o.t.div_euclid(3600);
    match track.hours.back_mut() {
        Some(last) if last.0 == hour => last.1 = v,
        Some(last) if last.0 > hour => {}
        _ => track.hours.push_back((hour, v)),
    }
    while track.hours.front().is_some_and(|f| f.0 < hour - 48) {
        track.hours.pop_front();
    }
    match track.days.back_mut() {
        Some(last) if last.0 == o.day => last.1 = v,
        Some(last) if last.0 > o.day => {}
        _ => track.days.push_back((o.day, v)),
    }
    while track.days.len() > 32 {
        track.days.pop_front();
    }
    track.first_t.get_or_insert(o.t);
    if track.last_value != Some(v) {
        track.moved_t = Some(o.t);
    }
    track.last_value = Some(v);
}

/// Consumption in each of the last `n` hours (ending with the current one).
fn leak(track: &Track, n: u32, flag: bool) -> Option<Option<String>> {
    if flag {
        return Some(Some("meter reports a leak".into()));
    }
    let n = n as usize;
    if track.hours.len() < n + 1 {
        return None;
    }
    let recent: Vec<&(i64, f64)> = track.hours.iter().rev().take(n + 1).collect();
    // (newer, older) pairs of neighbouring hours.
    let pairs = || recent.iter().zip(recent.iter().skip(1));
    let consecutive = pairs().all(|(newer, older)| newer.0 == older.0 + 1);
    if !consecutive {
        return None;
    }
    let always = pairs().all(|(newer, older)| newer.1 > older.1);
    Some(always.then(|| format!("consumption in each of the last {n} hours")))
}

/// Judged when a day completes: its consumption against the median of the days before.
fn overuse(track: &Track, factor: f64) -> Option<Option<String>> {
    // The newest entry is today (incomplete): compare the day before it.
    let days: Vec<&(i64, f64)> = track.days.iter().collect();
    if days.len() < 3 {
        return None;
    }
    // Consumption of each day whose day before is known: (day, its reading − the last).
    let used: Vec<(i64, f64)> = days
        .iter()
        .zip(days.iter().skip(1))
        .filter(|(before, day)| day.0 == before.0 + 1)
        .map(|(before, day)| (day.0, day.1 - before.1))
        .collect();
    let today = days.last()?.0;
    let (last_day, last_use) = *used.iter().rev().find(|(d, _)| *d < today)?;
    let before: Vec<f64> = used
        .iter()
        .filter(|(d, _)| *d < last_day)
        .rev()
        .take(30)
        .map(|(_, u)| *u)
        .collect();
    if before.len() < 7 {
        return None;
    }
    let m = median(&before);
    Some((m > 0.0 && last_use > factor * m).then(|| {
        format!(
            "{} used in a day, median {}",
            format_value(last_use),
            format_value(m)
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::registers::Register;

    fn facts(v: f64) -> Facts {
        Facts {
            registers: vec![(Register::Volume, v)],
            ..Facts::default()
        }
    }

    fn feed(a: &mut ConsumptionAlarms, th: &Thresholds, t: i64, f: &Facts) -> Vec<AlarmChange> {
        a.observe(
            &Observation {
                meter: "11111111",
                medium: Medium::Water,
                thresholds: th,
                t,
                day: t.div_euclid(86_400),
                facts: f,
            },
            "now",
        )
    }

    #[test]
    fn leak_raised_once_and_cleared_once() {
        let th = Thresholds::defaults();
        let mut a = ConsumptionAlarms::new();
        let mut raised = 0;
        let mut cleared = 0;
        let mut v = 100.0;
        for h in 0..60 {
            // Flow every hour for 40 hours, then two quiet hours.
            if !(40..42).contains(&h) {
                v += 0.01;
            }
            for c in feed(&mut a, &th, h * 3600 + 600, &facts(v)) {
                match (c.alarm.as_str(), c.state) {
                    (LEAK, AlarmState::Raised) => raised += 1,
                    (LEAK, AlarmState::Cleared) => cleared += 1,
                    _ => {}
                }
            }
        }
        assert_eq!((raised, cleared), (1, 1));
    }

    #[test]
    fn burst_stopped_overuse() {
        let th = Thresholds::defaults();
        let mut a = ConsumptionAlarms::new();
        let mut f = facts(1.0);
        f.flow_m3h = Some(4.0);
        let c = feed(&mut a, &th, 0, &f);
        assert!(c
            .iter()
            .any(|c| c.alarm == BURST && c.state == AlarmState::Raised));
        f.flow_m3h = Some(0.5);
        let c = feed(&mut a, &th, 3600, &f);
        assert!(c
            .iter()
            .any(|c| c.alarm == BURST && c.state == AlarmState::Cleared));
        // No movement for 15 days while heard daily.
        let mut stopped = 0;
        for d in 1..=15 {
            stopped += feed(&mut a, &th, d * 86_400, &f)
                .iter()
                .filter(|c| c.alarm == STOPPED && c.state == AlarmState::Raised)
                .count();
        }
        assert_eq!(stopped, 1);
        // 10 days of 0.1 m3, then a day of 1 m3.
        let mut b = ConsumptionAlarms::new();
        let mut v = 0.0;
        let mut over = Vec::new();
        for d in 0..15 {
            v += if d == 12 { 1.0 } else { 0.1 };
            over.extend(feed(&mut b, &th, d * 86_400 + 80_000, &facts(v)));
        }
        let o: Vec<_> = over
            .iter()
            .filter(|c| c.alarm == OVERUSE)
            .map(|c| c.state)
            .collect();
        assert_eq!(o, vec![AlarmState::Raised, AlarmState::Cleared]);
    }
}
