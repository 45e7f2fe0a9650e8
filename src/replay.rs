//! Replay protection: an authenticated telegram whose message counter does not go forward
//! is an old telegram sent again, not a new reading.
//!
//! Rule (OMS security profile B, mode 7): the AFL message counter (MCR, or the TPL's
//! counter) is covered by the MAC, and the meter increments it for every message and never
//! reuses it for a key. A telegram whose MAC verifies and whose counter is **not above**
//! the last counter accepted from that meter is rejected as `replay`. Exact copies heard
//! within the dedupe window (repeaters, several radios) are duplicates, never replays.
//!
//! Tolerance for meters that restart (battery change, reset, a replaced meter with the same
//! id and key): when the last accepted counter is older than `reset_after`
//! (`[pipeline] replay_reset_hours`, default 24 h), a counter that went back is accepted as
//! a restart and the meter's counting starts again from it. Within that time a counter that
//! goes back by any amount is a replay. `replay_reset_hours = 0` accepts every restart at
//! once, which turns the protection off.
//!
//! Meters without an authenticated counter (plaintext, mode 5, ELL) are not judged: their
//! 8-bit access number wraps every 256 telegrams, some meters keep it constant or share it
//! between telegram kinds, and nothing authenticates it, so no rule on access number and
//! time separates a replay from a meter's normal behaviour without rejecting real
//! readings. Their last access number and time are kept (shown by `decode --explain`).

use std::time::{Duration, SystemTime};

/// What is remembered per meter: 12 bytes, persisted as `[counter, access, unix_secs]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Last {
    /// The last authenticated message counter accepted.
    pub counter: Option<u32>,
    /// The access number of the last accepted reading.
    pub access: Option<u8>,
    /// When that reading was received (seconds since 1970; 0 = unknown).
    pub at_secs: u64,
}

/// The verdict on one authenticated telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New (or no counter to judge by).
    Accepted,
    /// The counter went back after the reset time: accepted as a restart of the meter.
    Restart { last: u32 },
    /// The counter is not above the last one accepted within the reset time.
    Replay { last: u32 },
}

/// The tolerance, from `[pipeline] replay_reset_hours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub reset_after: Duration,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            reset_after: Duration::from_secs(DEFAULT_RESET_HOURS * 3600),
        }
    }
}

/// Default of `[pipeline] replay_reset_hours`.
pub const DEFAULT_RESET_HOURS: u64 = 24;

/// Seconds since 1970 of a receive time (0 before 1970).
pub fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Last {
    /// Judges `counter` (the verified counter of a telegram received at `at_secs`).
    pub fn check(&self, counter: Option<u32>, at_secs: u64, rule: Rule) -> Verdict {
        let (Some(counter), Some(last)) = (counter, self.counter) else {
            return Verdict::Accepted;
        };
        if counter > last {
            return Verdict::Accepted;
        }
        // A clock that went back gives age 0: the counter still decides.
        let age = at_secs.saturating_sub(self.at_secs);
        if self.at_secs != 0 && age >= rule.reset_after.as_secs() {
            Verdict::Restart { last }
        } else {
            Verdict::Replay { last }
        }
    }

    /// Remembers an accepted reading.
    pub fn accept(&mut self, counter: Option<u32>, access: Option<u8>, at_secs: u64) {
        if counter.is_some() {
            self.counter = counter;
        }
        self.access = access;
        self.at_secs = at_secs;
    }

    /// True when nothing is known (not worth a line in the state file).
    pub fn is_empty(&self) -> bool {
        self.counter.is_none() && self.access.is_none()
    }

    /// The state file's form: `[counter or null, access or null, unix_secs]`.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!([self.counter, self.access, self.at_secs])
    }

    /// Reads [`Last::to_json`]'s form; `None` for anything else.
    pub fn from_json(v: &serde_json::Value) -> Option<Last> {
        let [counter, access, at] = v.as_array()?.as_slice() else {
            return None;
        };
        let counter = match counter {
            serde_json::Value::Null => None,
            c => Some(u32::try_from(c.as_u64()?).ok()?),
        };
        let access = match access {
            serde_json::Value::Null => None,
            a => Some(u8::try_from(a.as_u64()?).ok()?),
        };
        Some(Last {
            counter,
            access,
            at_secs: at.as_u64()?,
        })
    }
}

/// What `wmbusd decode --explain` judges telegrams against: `--last-counter N` (for every
/// meter, time unknown, so no restart tolerance) and/or the daemon's state file; telegrams
/// of one call then count on from each other, as in the daemon.
#[derive(Debug, Clone, Default)]
pub struct Book {
    pub fixed: Option<u32>,
    pub meters: std::collections::HashMap<String, Last>,
    pub rule: Rule,
}

impl Book {
    /// The `replay` section of a daemon state file (`--state-file`).
    pub fn read_state(&mut self, text: &str) -> Result<usize, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let mut n = 0;
        if let Some(section) = v.get("replay").and_then(serde_json::Value::as_object) {
            for (id, entry) in section {
                if let Some(last) = Last::from_json(entry) {
                    self.meters.insert(id.clone(), last);
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// What is known of `meter`: its own entry, else the fixed counter.
    pub fn last(&self, meter: &str) -> Last {
        self.meters.get(meter).copied().unwrap_or(Last {
            counter: self.fixed,
            access: None,
            at_secs: 0,
        })
    }
}

/// The failure message of a rejected telegram.
pub fn replay_message(meter: &str, counter: u32, last: u32) -> String {
    format!(
        "message counter {counter} of meter {meter} is not above the last accepted {last}: \
         an old telegram sent again (replay)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    fn last(counter: u32, at: u64) -> Last {
        Last {
            counter: Some(counter),
            access: Some(7),
            at_secs: at,
        }
    }

    #[test]
    fn a_counter_must_go_forward() {
        let rule = Rule::default();
        let l = last(100, 1_000_000);
        assert_eq!(l.check(Some(101), 1_000_016, rule), Verdict::Accepted);
        assert_eq!(
            l.check(Some(100), 1_000_016, rule),
            Verdict::Replay { last: 100 }
        );
        assert_eq!(
            l.check(Some(3), 1_000_016, rule),
            Verdict::Replay { last: 100 }
        );
        // Nothing to compare with: accepted.
        assert_eq!(Last::default().check(Some(3), 5, rule), Verdict::Accepted);
        assert_eq!(l.check(None, 5, rule), Verdict::Accepted);
    }

    #[test]
    fn a_restart_is_accepted_after_the_reset_time_only() {
        let rule = Rule::default();
        let l = last(100, 1_000_000);
        let just_before = 1_000_000 + 24 * HOUR - 1;
        assert_eq!(
            l.check(Some(1), just_before, rule),
            Verdict::Replay { last: 100 }
        );
        assert_eq!(
            l.check(Some(1), just_before + 1, rule),
            Verdict::Restart { last: 100 }
        );
        // A clock running backwards never makes an old counter new.
        assert_eq!(l.check(Some(1), 10, rule), Verdict::Replay { last: 100 });
        let off = Rule {
            reset_after: Duration::ZERO,
        };
        assert_eq!(
            l.check(Some(1), 1_000_000, off),
            Verdict::Restart { last: 100 }
        );
    }

    #[test]
    fn state_form_round_trips_and_rejects_junk() {
        let l = last(u32::MAX, 1_795_000_000);
        assert_eq!(Last::from_json(&l.to_json()), Some(l));
        let none = Last {
            counter: None,
            access: Some(255),
            at_secs: 1,
        };
        assert_eq!(Last::from_json(&none.to_json()), Some(none));
        for junk in [
            "[1,2]",
            "[-1,2,3]",
            "[4294967296,0,0]",
            "[1,256,0]",
            "{}",
            "\"x\"",
        ] {
            let v: serde_json::Value = serde_json::from_str(junk).unwrap();
            assert_eq!(Last::from_json(&v), None, "{junk}");
        }
    }
}
