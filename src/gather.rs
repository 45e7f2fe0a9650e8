//! Several radios of one gateway hearing the same telegram: one reading with the list of
//! receivers, best RSSI first, instead of the first copy winning.
//!
//! The first copy's reading is held for a short window (`[pipeline] gather_ms`; default 0
//! = no delay with one radio, 50 ms with more); copies the dedupe window recognises (the
//! same frame bytes) that arrive while it is held add their radio and RSSI. When the
//! window ends the reading goes on with `receivers` sorted best first and its `rssi_dbm`
//! set to the best one. A copy arriving after the window is only a duplicate: the reading
//! is not held back longer than the window for it. The daemon releases held readings at
//! their due time and all of them at shutdown.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::frame::RadioFrame;
use crate::reading::{Reading, Receiver};

/// Readings held while their copies are gathered, oldest first.
#[derive(Debug)]
pub struct Gather {
    window: Duration,
    held: VecDeque<Held>,
    /// Frame key -> sequence number of its held reading (O(1) lookup of a copy).
    index: HashMap<u64, u64>,
    /// Sequence number of `held[0]`.
    first_seq: u64,
}

#[derive(Debug)]
struct Held {
    key: u64,
    due: Instant,
    reading: Box<Reading>,
}

/// At most this many readings are held at once, whatever the rate: beyond it the oldest
/// is released early (bounded memory, never a lost reading).
const CAPACITY: usize = 4096;

fn key(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

fn receiver(frame: &RadioFrame) -> Receiver {
    Receiver {
        radio: frame.source.clone().unwrap_or_else(|| "radio".to_owned()),
        rssi_dbm: frame.rssi_dbm,
    }
}

impl Gather {
    pub fn new(window: Duration) -> Self {
        Gather {
            window,
            held: VecDeque::new(),
            index: HashMap::new(),
            first_seq: 0,
        }
    }

    /// False with a zero window: readings then go on at once, without `receivers`.
    pub fn is_on(&self) -> bool {
        !self.window.is_zero()
    }

    /// Holds the reading of a frame heard first; returns a reading released early to keep
    /// the bound.
    pub fn hold(
        &mut self,
        frame: &RadioFrame,
        mut reading: Box<Reading>,
        now: Instant,
    ) -> Option<Box<Reading>> {
        reading.receivers = vec![receiver(frame)];
        let k = key(&frame.bytes);
        let seq = self.first_seq + self.held.len() as u64;
        self.index.insert(k, seq);
        self.held.push_back(Held {
            key: k,
            due: now + self.window,
            reading,
        });
        if self.held.len() > CAPACITY {
            return self.pop().map(finish);
        }
        None
    }

    /// A duplicate frame: when its reading is still held, its radio joins the receivers
    /// (a radio heard twice keeps its better RSSI). True when it was added.
    pub fn heard_again(&mut self, frame: &RadioFrame) -> bool {
        let k = key(&frame.bytes);
        let Some(held) = self
            .index
            .get(&k)
            .and_then(|seq| usize::try_from(seq.checked_sub(self.first_seq)?).ok())
            .and_then(|pos| self.held.get_mut(pos))
        else {
            return false;
        };
        let new = receiver(frame);
        let list = &mut held.reading.receivers;
        match list.iter_mut().find(|r| r.radio == new.radio) {
            Some(r) if rank(new.rssi_dbm) > rank(r.rssi_dbm) => r.rssi_dbm = new.rssi_dbm,
            Some(_) => {}
            None => list.push(new),
        }
        true
    }

    /// When the oldest held reading is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|h| h.due)
    }

    /// The readings whose window ended by `now`, in arrival order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Box<Reading>> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|h| h.due <= now) {
            if let Some(h) = self.pop() {
                out.push(finish(h));
            }
        }
        out
    }

    /// Every held reading (shutdown).
    pub fn take_all(&mut self) -> Vec<Box<Reading>> {
        std::iter::from_fn(|| self.pop()).map(finish).collect()
    }

    fn pop(&mut self) -> Option<Held> {
        let held = self.held.pop_front()?;
        // A later frame with the same key owns the entry by then; keep it.
        if self.index.get(&held.key) == Some(&self.first_seq) {
            self.index.remove(&held.key);
        }
        self.first_seq += 1;
        Some(held)
    }
}

/// Unknown RSSI ranks below every measured one.
fn rank(rssi: Option<f32>) -> f32 {
    rssi.unwrap_or(f32::NEG_INFINITY)
}

fn finish(held: Held) -> Box<Reading> {
    let mut reading = held.reading;
    // Stable: receivers with equal RSSI keep the order they were heard in.
    reading
        .receivers
        .sort_by(|a, b| rank(b.rssi_dbm).total_cmp(&rank(a.rssi_dbm)));
    if let Some(best) = reading.receivers.first() {
        if best.rssi_dbm.is_some() {
            reading.rssi_dbm = best.rssi_dbm;
        }
    }
    reading
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(bytes: &[u8], radio: &str, rssi: Option<f32>) -> RadioFrame {
        RadioFrame {
            source: Some(radio.to_owned()),
            rssi_dbm: rssi,
            ..RadioFrame::new(bytes.to_vec())
        }
    }

    fn radios(r: &Reading) -> Vec<(&str, Option<f32>)> {
        r.receivers
            .iter()
            .map(|r| (r.radio.as_str(), r.rssi_dbm))
            .collect()
    }

    #[test]
    fn copies_within_the_window_become_one_reading_best_rssi_first() {
        let mut g = Gather::new(Duration::from_millis(50));
        let t0 = Instant::now();
        let a = heard(b"telegram a", "/dev/ttyUSB0", Some(-90.0));
        assert!(g.hold(&a, Box::default(), t0).is_none());
        assert!(g.heard_again(&heard(b"telegram a", "/dev/ttyUSB1", Some(-60.0))));
        assert!(g.heard_again(&heard(b"telegram a", "/dev/ttyUSB2", None)));
        // The same radio again (a repeater): its better RSSI counts, no second entry.
        assert!(g.heard_again(&heard(b"telegram a", "/dev/ttyUSB0", Some(-70.0))));
        assert!(!g.heard_again(&heard(b"telegram b", "/dev/ttyUSB1", Some(-60.0))));
        assert!(g.take_due(t0 + Duration::from_millis(49)).is_empty());
        assert_eq!(g.next_due(), Some(t0 + Duration::from_millis(50)));
        let out = g.take_due(t0 + Duration::from_millis(50));
        assert_eq!(out.len(), 1);
        assert_eq!(
            radios(&out[0]),
            [
                ("/dev/ttyUSB1", Some(-60.0)),
                ("/dev/ttyUSB0", Some(-70.0)),
                ("/dev/ttyUSB2", None)
            ]
        );
        assert_eq!(out[0].rssi_dbm, Some(-60.0));
        // Released: a late copy is only a duplicate.
        assert!(!g.heard_again(&heard(b"telegram a", "/dev/ttyUSB3", Some(-50.0))));
        assert_eq!(g.next_due(), None);
    }

    #[test]
    fn off_with_a_zero_window_and_bounded_when_on() {
        assert!(!Gather::new(Duration::ZERO).is_on());
        let mut g = Gather::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..CAPACITY {
            let f = heard(&i.to_le_bytes(), "r", None);
            assert!(g.hold(&f, Box::default(), t0).is_none());
        }
        let f = heard(b"one more", "r", None);
        let early = g
            .hold(&f, Box::default(), t0)
            .expect("oldest released early");
        assert_eq!(radios(&early), [("r", None)]);
        assert_eq!(g.take_all().len(), CAPACITY);
    }
}
