//! What failed and what to do: the sentence after `diagnosis:`, and the replay verdict of
//! `--last-counter` / `--state-file`.

use super::{plural, Explanation, MeterRef, Outcome};
use crate::decode::{DecodeError, Decoder, FailureKind};
use crate::wire::link;
use crate::wire::telegram::Telegram;
use crate::wire::Layer;

/// A sentence naming the failure class exactly as [`FailureKind::label`] does, and what
/// to do about it. Keys appear as fingerprints only.
pub(super) fn diagnose(err: &DecodeError, decoder: &Decoder, meter: Option<MeterRef>) -> String {
    let id = err
        .meter
        .clone()
        .or_else(|| meter.map(|m| link::id_string(&m.id)))
        .unwrap_or_else(|| "?".to_owned());
    let fp = meter
        .and_then(|m| decoder.keys().lookup(m.manufacturer, &m.id))
        .map(|k| format!(" (key fp {})", k.fingerprint()))
        .unwrap_or_default();
    let label = err.kind.label();
    let advice = match err.kind {
        FailureKind::WrongKey => format!(
            "the key configured for meter {id}{fp} does not decrypt this telegram; \
             check the key configured for meter {id}{fp} against the one the supplier sent"
        ),
        FailureKind::MacFailure => format!(
            "the AFL MAC does not verify with the key configured for meter {id}{fp}; \
             check the key configured for meter {id}{fp} (a corrupted telegram is rarer)"
        ),
        FailureKind::NoKey => format!(
            "the telegram is encrypted and no key is configured for meter {id}; \
             add its key (`wmbusd keys import`, or --key to try one)"
        ),
        FailureKind::Crc => "the link-layer CRC does not match: the frame was damaged on the \
             air (weak signal, collision) or pasted incompletely; wait for the next telegram \
             or move the antenna"
            .to_owned(),
        FailureKind::UnknownCompactFormat => format!(
            "meter {id} sent a compact frame that refers to a full frame not seen yet; \
             decode one of its full telegrams first (in the same call) or wait for the next one"
        ),
        FailureKind::Truncated => {
            "the frame ends before its layers do: an incomplete reception or paste".to_owned()
        }
        FailureKind::Input => "this is not a hex telegram".to_owned(),
        FailureKind::ControlFrame => "a link-layer frame without meter data (a request, \
             command or acknowledgement): counted, not a failure of the meter"
            .to_owned(),
        FailureKind::Invalid | FailureKind::Unsupported => err.message.clone(),
        FailureKind::Replay => format!(
            "{}; an old telegram of meter {id} sent again, not a new reading",
            err.message
        ),
    };
    format!("{label}: {advice}")
}

impl Explanation {
    /// `decode --explain --last-counter`/`--state-file`: a telegram that decoded, but whose
    /// authenticated message counter does not go forward, is a `replay`, as the daemon
    /// would call it. Accepted counters are remembered in `book` for the next telegram.
    pub fn judge_replay(&mut self, decoder: &Decoder, book: &mut crate::replay::Book, now: u64) {
        use crate::replay::Verdict;
        if !matches!(self.outcome, Outcome::Decoded { .. }) {
            return;
        }
        let Some(telegram) = decoder.last_telegram() else {
            return;
        };
        let Some(id) = telegram.meter_id() else {
            return;
        };
        let mut last = book.last(&id);
        let counter = decoder.last_verified_counter();
        match (last.check(counter, now, book.rule), counter) {
            (Verdict::Replay { last }, Some(got)) => {
                let message = crate::replay::replay_message(&id, got, last);
                self.outcome = Outcome::Failed {
                    kind: FailureKind::Replay,
                    layer: Layer::Afl,
                    offset: telegram.afl_at,
                    diagnosis: format!(
                        "{}: {message}; the daemon rejects it (a meter that restarted is \
                         accepted once its last counter is older than [pipeline] replay_reset_hours)",
                        FailureKind::Replay.label()
                    ),
                    message,
                };
                return;
            }
            (Verdict::Restart { last }, Some(got)) => self.notes.push(format!(
                "message counter {got} went back from {last} after the reset time: accepted as a restart of meter {id}"
            )),
            (Verdict::Accepted, Some(got)) => self.notes.push(match last.counter {
                Some(before) => format!("message counter {got} is above the last accepted {before}: not a replay"),
                None => format!("message counter {got}: first one known for meter {id}"),
            }),
            _ => {}
        }
        last.accept(counter, None, now);
        book.meters.insert(id, last);
    }
}

/// One line per thing the frame's checks noticed: CRCs removed, trailing bytes, an
/// L-field rewritten on request.
pub(super) fn frame_notes(t: &Telegram) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(format) = t.dll.format {
        notes.push(format!(
            "link-layer CRCs of frame format {format:?} checked and removed; \
             offsets below count without them"
        ));
    }
    if t.dll.trailing > 0 {
        let l = t.link.map_or(0, |h| h.length);
        let what = if t.is_wired() {
            "the wired frame's stop byte".to_owned()
        } else {
            format!("the frame's end (L-field 0x{l:02X})")
        };
        let n = t.dll.trailing;
        notes.push(format!(
            "{n} byte{} after {what}: not part of the frame, not decoded",
            plural(n)
        ));
    }
    if let Some(l) = t.dll.original_length {
        notes.push(format!(
            "lenient length: the L-field said 0x{l:02X} but {} bytes follow; read whole as asked (--lenient-length)",
            t.len.saturating_sub(1)
        ));
    }
    notes
}
