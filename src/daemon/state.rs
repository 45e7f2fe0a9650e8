//! State that survives restarts: per-meter health counters, active alarms,
//! compact-frame formats and, for replay protection, each meter's last accepted message
//! counter, access number and time (`"replay":{"12345678":[counter,access,unix_secs]}`,
//! about 35 bytes a meter).
//!
//! Written as one JSON file by atomic rename, so a crash leaves the old or the new file,
//! never half of one. A missing or unreadable file starts fresh (logged), because losing
//! counters must never keep the gateway from receiving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};

use crate::decode::{Decoder, SavedFormat};
use crate::health::{ActiveAlarm, Alarms};
use crate::pipeline::{MeterStats, Pipeline};

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    #[serde(default)]
    meters: BTreeMap<String, MeterStats>,
    #[serde(default)]
    compact_formats: Vec<SavedFormat>,
    /// Alarms raised and not yet cleared, so a restart neither repeats nor forgets them.
    #[serde(default)]
    alarms: Vec<ActiveAlarm>,
    /// Replay protection, per meter `[counter, access, unix_secs]` (see `crate::replay`).
    #[serde(default)]
    replay: BTreeMap<String, serde_json::Value>,
}

fn replay_to_json(
    state: BTreeMap<String, crate::replay::Last>,
) -> BTreeMap<String, serde_json::Value> {
    state.into_iter().map(|(id, l)| (id, l.to_json())).collect()
}

/// The replay section; an entry that is not `[counter, access, secs]` is skipped.
fn replay_from_json(
    saved: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, crate::replay::Last> {
    saved
        .iter()
        .filter_map(|(id, v)| Some((id.clone(), crate::replay::Last::from_json(v)?)))
        .collect()
}

pub fn restore(path: &Path, decoder: &mut Decoder, pipeline: &mut Pipeline, alarms: &mut Alarms) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::warn!(
                "state file {}: {e}; starting with fresh counters",
                path.display()
            );
            return;
        }
    };
    match serde_json::from_str::<SavedState>(&text) {
        Ok(saved) => {
            let formats = saved.compact_formats.len();
            let skipped = decoder.formats_mut().import(saved.compact_formats);
            let meters = saved.meters.len();
            pipeline.restore(saved.meters);
            pipeline.restore_replay(replay_from_json(&saved.replay));
            let active = saved.alarms.len();
            alarms.restore(saved.alarms);
            tracing::info!(
                "state restored from {}: {meters} meter(s), {active} active alarm(s), {} compact format(s){}",
                path.display(),
                formats - skipped,
                if skipped > 0 {
                    format!(", {skipped} corrupt format(s) skipped")
                } else {
                    String::new()
                }
            );
        }
        Err(e) => tracing::warn!(
            "state file {} unreadable ({e}); starting with fresh counters",
            path.display()
        ),
    }
}

/// A snapshot of everything the state file holds, taken on the main loop.
pub fn snapshot(decoder: &Decoder, pipeline: &Pipeline, alarms: &Alarms) -> Snapshot {
    Snapshot {
        meters: Some(
            pipeline
                .meters()
                .into_iter()
                .map(|(id, stats)| (id.to_owned(), stats.clone()))
                .collect(),
        ),
        compact_formats: Some(decoder.formats().export()),
        alarms: Some(alarms.active()),
        replay: Some(replay_to_json(pipeline.replay_state())),
    }
}

/// Parts of the state to write; `None` keeps what the saver holds.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub meters: Option<BTreeMap<String, MeterStats>>,
    pub compact_formats: Option<Vec<SavedFormat>>,
    pub alarms: Option<Vec<ActiveAlarm>>,
    pub replay: Option<BTreeMap<String, serde_json::Value>>,
}

/// Writes the state file on its own thread, so neither serialising thousands of meters nor
/// the fsync ever runs on the async loop. Updates that arrive while a write is running are
/// merged into the next write.
pub struct StateSaver {
    shared: Arc<(Mutex<SaverQueue>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SaverQueue {
    next: Option<Snapshot>,
    stop: bool,
}

impl StateSaver {
    pub fn start(path: PathBuf) -> std::io::Result<StateSaver> {
        let shared = Arc::new((Mutex::new(SaverQueue::default()), Condvar::new()));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("state-saver".into())
            .spawn(move || saver_thread(&path, &theirs))?;
        Ok(StateSaver {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over a (partial) snapshot; never blocks on the disk.
    pub fn update(&self, snap: Snapshot) {
        let (lock, cond) = &*self.shared;
        if let Ok(mut q) = lock.lock() {
            let next = q.next.get_or_insert_with(Snapshot::default);
            if snap.meters.is_some() {
                next.meters = snap.meters;
            }
            if snap.compact_formats.is_some() {
                next.compact_formats = snap.compact_formats;
            }
            if snap.alarms.is_some() {
                next.alarms = snap.alarms;
            }
            if snap.replay.is_some() {
                next.replay = snap.replay;
            }
            cond.notify_one();
        }
    }

    /// Writes what is pending and stops the thread (blocking).
    pub fn finish(mut self) {
        let (lock, cond) = &*self.shared;
        if let Ok(mut q) = lock.lock() {
            q.stop = true;
            cond.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn saver_thread(path: &Path, shared: &(Mutex<SaverQueue>, Condvar)) {
    let (lock, cond) = shared;
    let mut current = SavedState::default();
    loop {
        let (snap, stop) = {
            let Ok(mut q) = lock.lock() else { return };
            while q.next.is_none() && !q.stop {
                q = match cond.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            (q.next.take(), q.stop)
        };
        if let Some(snap) = snap {
            if let Some(m) = snap.meters {
                current.meters = m;
            }
            if let Some(f) = snap.compact_formats {
                current.compact_formats = f;
            }
            if let Some(a) = snap.alarms {
                current.alarms = a;
            }
            if let Some(r) = snap.replay {
                current.replay = r;
            }
            write_state(path, &current);
        }
        if stop {
            return;
        }
    }
}

/// Synchronous save (tests).
#[cfg(test)]
pub fn save(path: &Path, decoder: &Decoder, pipeline: &Pipeline, alarms: &Alarms) {
    let snap = snapshot(decoder, pipeline, alarms);
    let state = SavedState {
        meters: snap.meters.unwrap_or_default(),
        compact_formats: snap.compact_formats.unwrap_or_default(),
        alarms: snap.alarms.unwrap_or_default(),
        replay: snap.replay.unwrap_or_default(),
    };
    write_state(path, &state);
}

fn write_state(path: &Path, state: &SavedState) {
    let result = serde_json::to_vec(state)
        .map_err(std::io::Error::other)
        .and_then(|json| write_atomically(path, &json));
    if let Err(e) = result {
        tracing::warn!("state file {} not written: {e}", path.display());
    }
}

/// Write a temporary file, fsync it, rename it over the old one, fsync the directory: after
/// a crash or power cut the old or the new file is there, complete.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{parse_hex, RadioFrame};
    use crate::keys::KeyStore;
    use crate::pipeline::PipelineConfig;
    use std::time::Instant;

    #[test]
    fn counters_and_formats_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut decoder = Decoder::new(KeyStore::new());
        let mut pipeline = Pipeline::new(PipelineConfig::default());
        // Sontex HCA, plaintext (protocol reference §1.2).
        let frame = RadioFrame::new(
            parse_hex("3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000").unwrap(),
        );
        let heard_at =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let frame = RadioFrame {
            received_at: Some(heard_at),
            ..frame
        };
        let mut config = PipelineConfig::default();
        config.meters.insert("27293981".into(), None);
        pipeline.reconfigure(config.clone());
        pipeline.process(&mut decoder, &frame, Instant::now());
        let mut alarms = Alarms::new(3.0, std::time::SystemTime::now());
        alarms.restore(vec![ActiveAlarm {
            meter: "27293981".into(),
            alarm: "missing".into(),
            since: "2026-11-22T01:01:01.000Z".into(),
            detail: "silent".into(),
        }]);
        save(&path, &decoder, &pipeline, &alarms);

        let mut decoder2 = Decoder::new(KeyStore::new());
        let mut pipeline2 = Pipeline::new(config);
        let mut alarms2 = Alarms::new(3.0, std::time::SystemTime::now());
        restore(&path, &mut decoder2, &mut pipeline2, &mut alarms2);
        assert_eq!(pipeline2.meter("27293981").map(|s| s.decoded), Some(1));
        // The instant of the last telegram comes back too: missing-meter alarms need it.
        assert_eq!(
            pipeline2.meter("27293981").and_then(|s| s.last_seen_at),
            Some(heard_at)
        );
        assert_eq!(alarms2.active(), alarms.active());
        assert_eq!(decoder2.formats().len(), 1);
    }

    /// 10,000 meters' replay entries stay small (under 40 bytes a meter) and come back.
    #[test]
    fn replay_section_is_compact_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut pipeline = Pipeline::new(PipelineConfig::default());
        let entries: BTreeMap<String, crate::replay::Last> = (0..10_000u32)
            .map(|i| {
                let last = crate::replay::Last {
                    counter: Some(u32::MAX - i),
                    access: Some(255),
                    at_secs: 1_795_000_000 + u64::from(i),
                };
                (format!("{:08}", 90_000_000 + i), last)
            })
            .collect();
        pipeline.restore_replay(entries.clone());
        let section = serde_json::to_vec(&replay_to_json(pipeline.replay_state())).unwrap();
        assert!(section.len() < 40 * 10_000, "{} bytes", section.len());
        let alarms = Alarms::new(3.0, std::time::SystemTime::now());
        save(&path, &Decoder::new(KeyStore::new()), &pipeline, &alarms);
        let mut pipeline2 = Pipeline::new(PipelineConfig::default());
        let mut alarms2 = Alarms::new(3.0, std::time::SystemTime::now());
        restore(
            &path,
            &mut Decoder::new(KeyStore::new()),
            &mut pipeline2,
            &mut alarms2,
        );
        assert_eq!(pipeline2.replay_state(), entries);
    }

    #[test]
    fn corrupt_state_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{not json").unwrap();
        let mut decoder = Decoder::new(KeyStore::new());
        let mut pipeline = Pipeline::new(PipelineConfig::default());
        let mut alarms = Alarms::new(3.0, std::time::SystemTime::now());
        restore(&path, &mut decoder, &mut pipeline, &mut alarms);
        assert!(pipeline.meters().is_empty());
        assert!(alarms.active().is_empty());
    }
}
