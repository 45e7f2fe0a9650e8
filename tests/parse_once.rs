//! A received frame's link header is parsed exactly once from radio to published reading
//! (issue #15): each frame is driven through the code the daemon runs for it — the
//! pipeline (read, dedupe, decode, filter, count), gathering, the reading's JSON and
//! the meter's health document — on this thread, and the wire layer's per-thread
//! counter of link-header parses must have moved by one. Success and failure paths.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

mod support;

use std::time::{Duration, Instant};

use support::telegrams::{mode7, synthetic};
use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::frame::{parse_hex, CrcState, FrameFormat, RadioFrame};
use wmbusd::gather::Gather;
use wmbusd::keys::KeyStore;
use wmbusd::pipeline::{Outcome, Pipeline, PipelineConfig};
use wmbusd::wire::link::{add_crc, parses_on_this_thread};

const METER: u32 = 93_000_001;
const KEY: [u8; 16] = [
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0x0F,
];

/// The daemon's steps for one frame after the radio: the pipeline, then for a reading
/// gathering and its JSON, for every outcome the meter's health document.
struct Daemon {
    decoder: Decoder,
    pipeline: Pipeline,
    gather: Gather,
}

impl Daemon {
    fn new(keys: KeyStore) -> Daemon {
        Daemon {
            decoder: Decoder::new(keys),
            pipeline: Pipeline::new(PipelineConfig::default()),
            gather: Gather::new(Duration::from_secs(2)),
        }
    }

    /// Runs `frame` through and returns the outcome and the link-header parses it took.
    fn frame(&mut self, frame: &RadioFrame) -> (Outcome, u64) {
        let before = parses_on_this_thread();
        let now = Instant::now();
        let outcome = self.pipeline.process(&mut self.decoder, frame, now);
        match &outcome {
            Outcome::Reading(reading) => {
                assert!(self.gather.hold(frame, reading.clone(), now).is_none());
                for held in self.gather.take_all() {
                    let json = serde_json::to_vec(&held).unwrap();
                    assert!(!json.is_empty());
                }
            }
            Outcome::Duplicate { .. } => {
                self.gather.heard_again(frame);
            }
            Outcome::Failed(_) | Outcome::Filtered { .. } => {}
        }
        for id in self.pipeline.take_changed() {
            let stats = self.pipeline.meter(&id).unwrap();
            let _ = wmbusd::health::meter_document(&id, stats);
        }
        (outcome, parses_on_this_thread() - before)
    }
}

fn keyed() -> KeyStore {
    let mut keys = KeyStore::new();
    keys.insert_hex(&METER.to_string(), &hex::encode_upper(KEY))
        .unwrap();
    keys
}

fn failure(outcome: &Outcome) -> FailureKind {
    match outcome {
        Outcome::Failed(e) => e.kind,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_decoded_frame_is_parsed_once_also_when_heard_again() {
    let mut daemon = Daemon::new(keyed());
    let frame = RadioFrame::new(mode7(METER, &KEY, 7, 1, 1234));
    let (outcome, parses) = daemon.frame(&frame);
    assert!(matches!(outcome, Outcome::Reading(_)), "{outcome:?}");
    assert_eq!(parses, 1);
    // The copy a second receiver hears: one parse, which names the meter for its count.
    let (outcome, parses) = daemon.frame(&frame);
    assert!(
        matches!(&outcome, Outcome::Duplicate { meter: Some(m) } if m == "93000001"),
        "{outcome:?}"
    );
    assert_eq!(parses, 1);
    assert_eq!(daemon.pipeline.meter("93000001").unwrap().duplicates, 1);
}

#[test]
fn a_corpus_telegram_with_its_key_is_parsed_once() {
    let corpus = include_str!("data/wmbusmeters-public.jsonl");
    let mut decoded = 0;
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(key) = entry["key"].as_str() else {
            continue;
        };
        if entry["prior_telegrams"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
        {
            continue;
        }
        let mut keys = KeyStore::new();
        keys.set_default_hex(key).unwrap();
        let mut daemon = Daemon::new(keys);
        let frame = RadioFrame::new(parse_hex(entry["telegram"].as_str().unwrap()).unwrap());
        let (outcome, parses) = daemon.frame(&frame);
        assert_eq!(parses, 1, "{line}");
        if let Outcome::Reading(_) = outcome {
            decoded += 1;
        }
    }
    assert!(
        decoded > 20,
        "only {decoded} keyed corpus telegrams decoded"
    );
}

#[test]
fn failures_are_parsed_once() {
    let mut daemon = Daemon::new(KeyStore::new());
    // No key for an encrypted meter.
    let encrypted = RadioFrame::new(mode7(METER, &KEY, 7, 1, 1234));
    let (outcome, parses) = daemon.frame(&encrypted);
    assert_eq!((failure(&outcome), parses), (FailureKind::NoKey, 1));

    // A CRC failure from a receiver that hands on the CRCs: the header still names
    // the meter, read once from the received bytes.
    let mut raw = add_crc(&synthetic(METER + 1, 3, 10), FrameFormat::A).unwrap();
    let last = raw.len() - 3;
    raw[last] ^= 0x01;
    let bad_crc = RadioFrame {
        crc: CrcState::Present(FrameFormat::A),
        ..RadioFrame::new(raw)
    };
    let (outcome, parses) = daemon.frame(&bad_crc);
    assert_eq!((failure(&outcome), parses), (FailureKind::Crc, 1));
    assert_eq!(daemon.pipeline.meter("93000002").unwrap().failed["crc"], 1);

    // A CI no layer knows, after a valid link header.
    let mut unknown_ci = synthetic(METER + 2, 3, 10);
    unknown_ci[10] = 0x99;
    let (outcome, parses) = daemon.frame(&RadioFrame::new(unknown_ci));
    assert_eq!((failure(&outcome), parses), (FailureKind::Unsupported, 1));

    // A MAC that does not verify with the configured key.
    let mut daemon = Daemon::new(keyed());
    let mut forged = mode7(METER, &KEY, 8, 2, 1234);
    // L C M A (10), then the AFL: CI, AFL.L, FCL (2), MCL, MCR (4), then the MAC.
    let mac_at = 10 + 9;
    forged[mac_at] ^= 0x01;
    let (outcome, parses) = daemon.frame(&RadioFrame::new(forged));
    assert_eq!((failure(&outcome), parses), (FailureKind::MacFailure, 1));

    // Too short for a link header: a failed attempt, no second one.
    let (outcome, parses) = daemon.frame(&RadioFrame::new(vec![0x05, 0x44, 0x2D]));
    assert_eq!(parses, 1, "{outcome:?}");
}
