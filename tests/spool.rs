//! Durability, recovery and bound tests for the on-disk spool.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use wmbusd::spool::{FsyncPolicy, Spool, SpoolConfig, SpoolError};

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 1024 * 1024,
        segment_bytes: 16 * 1024,
        fsync: FsyncPolicy::Always,
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!(
        "{{\"reading\":{i},\"pad\":\"{}\"}}",
        "x".repeat((i % 37) as usize)
    )
    .into_bytes()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn all_pending(spool: &mut Spool) -> Vec<u64> {
    spool
        .peek_from(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

#[test]
fn append_ack_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(cfg(dir.path())).unwrap();
        for i in 1..=10u64 {
            let seq = spool
                .append(&format!("wmbus/gw/meter/{i}"), &payload(i))
                .unwrap();
            assert_eq!(seq, i);
        }
        assert_eq!(spool.pending(), 10);
        // Out of order, as a QoS 1 in-flight window delivers them.
        for seq in [3, 1, 2, 7] {
            spool.ack(seq);
        }
        spool.ack(7); // repeated ack is harmless
        spool.ack(999); // unknown seq is ignored
        assert_eq!(spool.pending(), 6);
        assert_eq!(all_pending(&mut spool), vec![4, 5, 6, 8, 9, 10]);
        let after5: Vec<u64> = spool
            .peek_from(Some(5), 2)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(after5, vec![6, 8]);
    }
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(spool.pending(), 6);
    let entries = spool.peek_from(None, 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 8, 9, 10]
    );
    for e in &entries {
        assert_eq!(e.topic, format!("wmbus/gw/meter/{}", e.seq));
        assert_eq!(e.payload, payload(e.seq));
    }
    // Sequence numbers continue after a reopen, never reused.
    assert_eq!(spool.append("t", b"p").unwrap(), 11);
}

#[test]
fn fully_acked_segments_are_deleted_and_seq_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    for i in 1..=2000u64 {
        spool.append("wmbus/gw/meter/1", &payload(i)).unwrap();
    }
    assert!(segment_files(dir.path()).len() > 3);
    for seq in (1..=2000u64).rev() {
        spool.ack(seq);
    }
    assert_eq!(spool.pending(), 0);
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the active segment remains"
    );
    drop(spool);
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(spool.pending(), 0);
    assert!(all_pending(&mut spool).is_empty());
    assert_eq!(spool.append("t", b"p").unwrap(), 2001);
}

#[test]
fn ack_log_compaction_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    for i in 1..=7000u64 {
        spool.append("t", &i.to_le_bytes()).unwrap();
    }
    // Ack everything except every 1000th, in two interleaved passes (out of order).
    for seq in (1..=7000u64).filter(|s| s % 2 == 0 && s % 1000 != 0) {
        spool.ack(seq);
    }
    for seq in (1..=7000u64).filter(|s| s % 2 == 1) {
        spool.ack(seq);
    }
    let ack_log = fs::metadata(dir.path().join("ack.log")).unwrap().len();
    assert!(
        ack_log < 7000 * 13,
        "ack log was compacted ({ack_log} bytes)"
    );
    let expect: Vec<u64> = (1..=7).map(|k| k * 1000).collect();
    assert_eq!(all_pending(&mut spool), expect);
    drop(spool);
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(all_pending(&mut spool), expect);
    assert_eq!(spool.pending(), 7);
}

#[test]
fn torn_tail_is_truncated_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(cfg(dir.path())).unwrap();
        for i in 1..=5u64 {
            spool.append("wmbus/gw/meter/x", &payload(i)).unwrap();
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    // Cut the last record in the middle, as a power cut during write(2) can.
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    let entries = spool.peek_from(None, 100).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    for e in &entries {
        assert_eq!(e.payload, payload(e.seq));
    }
    assert!(spool.stats().truncated_bytes > 0);
    // The file ends on a record boundary again: new appends are readable after reopen.
    let seq = spool.append("wmbus/gw/meter/x", b"after").unwrap();
    drop(spool);
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    let entries = spool.peek_from(None, 100).unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(
        entries.last().map(|e| (e.seq, e.payload.clone())),
        Some((seq, b"after".to_vec()))
    );
}

#[test]
fn corrupt_crc_and_garbage_tail_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(cfg(dir.path())).unwrap();
        for i in 1..=3u64 {
            spool.append("t", &payload(i)).unwrap();
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF; // flips a payload byte of record 3
    bytes.extend_from_slice(&[0xFF; 5]); // and some garbage after it
    fs::write(&seg, &bytes).unwrap();
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(all_pending(&mut spool), vec![1, 2]);
}

#[test]
fn bound_drops_oldest_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        max_bytes: 16 * 1024,
        segment_bytes: 4096,
        ..cfg(dir.path())
    };
    let mut spool = Spool::open(c.clone()).unwrap();
    let body = vec![b'r'; 200];
    for _ in 0..500 {
        spool.append("wmbus/gw/meter/1", &body).unwrap();
        assert!(spool.stats().bytes <= c.max_bytes);
    }
    let stats = spool.stats();
    assert!(stats.dropped_total > 0, "{stats:?}");
    assert_eq!(stats.dropped_total + stats.pending as u64, 500);
    let seqs = all_pending(&mut spool);
    // What is left is the newest, contiguous tail.
    assert_eq!(seqs.last(), Some(&500));
    assert_eq!(seqs.len(), stats.pending);
    assert_eq!(seqs.first(), Some(&(500 - stats.pending as u64 + 1)));
    let total: u64 = segment_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= c.max_bytes, "{total} bytes on disk");
    // Acks for dropped records are ignored.
    spool.ack(1);
    assert_eq!(spool.pending(), stats.pending);
}

#[test]
fn rejects_bad_config_and_oversized_record() {
    let dir = tempfile::tempdir().unwrap();
    let small = SpoolConfig {
        max_bytes: 4096,
        segment_bytes: 4096,
        ..cfg(dir.path())
    };
    assert!(matches!(Spool::open(small), Err(SpoolError::Config(_))));
    let c = SpoolConfig {
        max_bytes: 8192,
        segment_bytes: 4096,
        ..cfg(dir.path())
    };
    let mut spool = Spool::open(c).unwrap();
    assert!(matches!(
        spool.append("t", &vec![0u8; 5000]),
        Err(SpoolError::RecordTooLarge { .. })
    ));
    assert_eq!(spool.pending(), 0);
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(cfg(dir.path())).unwrap();
    assert!(matches!(
        Spool::open(cfg(dir.path())),
        Err(SpoolError::Locked(_))
    ));
}

#[test]
fn interval_policy_appends_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
        ..cfg(dir.path())
    };
    {
        let mut spool = Spool::open(c.clone()).unwrap();
        for i in 1..=100u64 {
            spool.append("t", &payload(i)).unwrap();
        }
        spool.sync().unwrap();
    }
    let mut spool = Spool::open(c).unwrap();
    assert_eq!(all_pending(&mut spool), (1..=100).collect::<Vec<_>>());
}

const CHILD_ENV: &str = "WMBUSD_SPOOL_KILL9_CHILD_DIR";
const CHILD_POLICY_ENV: &str = "WMBUSD_SPOOL_KILL9_CHILD_POLICY";

/// Child mode: append until killed, printing each seq after `append` returned.
fn kill9_child(dir: &str) -> ! {
    let fsync = match std::env::var(CHILD_POLICY_ENV).as_deref() {
        Ok("interval") => FsyncPolicy::Interval(Duration::from_secs(3600)),
        _ => FsyncPolicy::Always,
    };
    let mut spool = Spool::open(SpoolConfig {
        fsync,
        ..cfg(Path::new(dir))
    })
    .unwrap();
    let mut out = std::io::stdout().lock();
    for i in 1..=1_000_000u64 {
        let seq = spool.append("wmbus/gw/meter/k9", &payload(i)).unwrap();
        // Written straight to the fd (not print!), so libtest capture does not hold it back.
        writeln!(out, "SEQ {seq}").unwrap();
        out.flush().unwrap();
        if i % 3 == 0 {
            spool.ack(seq - 1);
        }
    }
    std::process::exit(0);
}

fn kill9_run(policy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .env(CHILD_POLICY_ENV, policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while printed.len() < 300 {
        assert!(Instant::now() < deadline, "child too slow");
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(n) = line.strip_prefix("SEQ ") {
            printed.push(n.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Everything the child printed before it died, including what was still in the pipe.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("SEQ ") {
            if let Ok(seq) = n.parse::<u64>() {
                printed.push(seq);
            }
        }
    }
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    let present: BTreeMap<u64, Vec<u8>> = spool
        .peek_from(None, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.payload))
        .collect();
    for seq in &printed {
        // The child acked seq-1 after every third append.
        let acked = seq % 3 == 2 && printed.contains(&(seq + 1));
        if acked {
            continue;
        }
        let got = present
            .get(seq)
            .unwrap_or_else(|| panic!("seq {seq} lost after kill -9"));
        assert_eq!(got, &payload(*seq), "seq {seq} payload");
    }
    assert!(printed.len() >= 300);
}

/// Entry point for the child process of the kill -9 tests; does nothing in a normal run.
#[test]
fn kill9_child_entry() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        kill9_child(&dir);
    }
}

#[test]
fn kill9_loses_nothing_fsync_always() {
    kill9_run("always");
}

#[test]
fn kill9_loses_nothing_fsync_interval() {
    kill9_run("interval");
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Ack(u16),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Append),
        3 => any::<u16>().prop_map(Op::Ack),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The spool behaves like an ordered map of unacknowledged records, across reopens.
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..200)) {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        let mut spool = Spool::open(c.clone()).unwrap();
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut issued = 0u64;
        for op in ops {
            match op {
                Op::Append(n) => {
                    let body = vec![n; usize::from(n)];
                    let seq = spool.append("p", &body).unwrap();
                    prop_assert!(seq > issued);
                    issued = seq;
                    model.insert(seq, body);
                }
                Op::Ack(k) => {
                    // Mostly ack something pending, sometimes an unknown seq.
                    let keys: Vec<u64> = model.keys().copied().collect();
                    let seq = if keys.is_empty() || k % 7 == 0 {
                        u64::from(k)
                    } else {
                        keys[usize::from(k) % keys.len()]
                    };
                    spool.ack(seq);
                    model.remove(&seq);
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(c.clone()).unwrap();
                }
            }
            prop_assert_eq!(spool.pending(), model.len());
        }
        let got: BTreeMap<u64, Vec<u8>> = spool
            .peek_from(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.payload))
            .collect();
        prop_assert_eq!(got, model);
    }
}

// ---------------------------------------------------------------------------------------
// A damaged record loses only itself: the scan resynchronises on the next record marker.

/// Writes `n` records into segments of 4 kB and returns the spool directory.
fn spool_with(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(SpoolConfig {
        segment_bytes: 4096,
        ..cfg(dir.path())
    })
    .unwrap();
    for i in 1..=n {
        spool.append("wmbus/gw/meter/x", &payload(i)).unwrap();
    }
    dir
}

fn reopen_4k(dir: &Path) -> Spool {
    Spool::open(SpoolConfig {
        segment_bytes: 4096,
        ..cfg(dir)
    })
    .unwrap()
}

/// Byte offsets of the records of a segment (each starts with the marker `WMR2`).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"WMR2")
        .map(|(i, _)| i)
        .collect()
}

fn assert_lost_exactly(spool: &mut Spool, n: u64, lost: &[u64]) {
    let seqs = all_pending(spool);
    let expected: Vec<u64> = (1..=n).filter(|s| !lost.contains(s)).collect();
    assert_eq!(seqs, expected);
    for e in spool.peek_from(None, usize::MAX).unwrap() {
        assert_eq!(e.payload, payload(e.seq));
    }
}

#[test]
fn flipped_byte_mid_oldest_segment_loses_only_that_record() {
    let dir = spool_with(200);
    let oldest = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&oldest).unwrap();
    let offsets = record_offsets(&bytes);
    let victim = offsets.len() / 2;
    // A payload byte in the middle of the middle record.
    let at = (offsets[victim] + offsets[victim + 1]) / 2 + 8;
    bytes[at] ^= 0x55;
    fs::write(&oldest, &bytes).unwrap();
    let mut spool = reopen_4k(dir.path());
    assert_lost_exactly(&mut spool, 200, &[victim as u64 + 1]);
    assert_eq!(spool.stats().quarantined, 1);
    let q: Vec<_> = fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(
        q.len(),
        1,
        "damaged bytes copied to the quarantine directory"
    );
}

#[test]
fn damaged_length_field_loses_only_that_record() {
    let dir = spool_with(200);
    let oldest = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&oldest).unwrap();
    let offsets = record_offsets(&bytes);
    let victim = 3;
    // The length field follows the 4-byte marker: make it claim far more than is there.
    bytes[offsets[victim] + 5] ^= 0x7F;
    fs::write(&oldest, &bytes).unwrap();
    let mut spool = reopen_4k(dir.path());
    assert_lost_exactly(&mut spool, 200, &[victim as u64 + 1]);
    assert_eq!(spool.stats().quarantined, 1);
}

#[test]
fn truncated_tail_loses_only_the_last_record() {
    let dir = spool_with(200);
    let newest = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&newest).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut spool = reopen_4k(dir.path());
    assert_lost_exactly(&mut spool, 200, &[200]);
    assert!(spool.stats().truncated_bytes > 0);
}

#[test]
fn batch_is_visible_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    let items: Vec<(String, Vec<u8>)> = (1..=50u64)
        .map(|i| ("wmbus/gw/meter/b".to_owned(), payload(i)))
        .collect();
    let batch = spool.write_batch(&items);
    assert!(batch.error.is_none());
    assert_eq!((batch.first_seq, batch.written), (1, 50));
    assert!(
        all_pending(&mut spool).is_empty(),
        "not published before durable"
    );
    spool.commit().unwrap();
    assert_eq!(all_pending(&mut spool), (1..=50).collect::<Vec<_>>());
    drop(spool);
    let mut spool = Spool::open(cfg(dir.path())).unwrap();
    assert_eq!(all_pending(&mut spool).len(), 50);
}

#[test]
fn damaged_marker_of_the_first_record_loses_only_it() {
    let dir = spool_with(200);
    let oldest = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&oldest).unwrap();
    bytes[0] ^= 0x01;
    fs::write(&oldest, &bytes).unwrap();
    let mut spool = reopen_4k(dir.path());
    assert_lost_exactly(&mut spool, 200, &[1]);
}
