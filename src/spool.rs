//! Durable, bounded, append-only queue of readings waiting for the MQTT broker.
//!
//! # On-disk layout
//!
//! ```text
//! <dir>/lock                   flock(2)ed while a Spool is open (one writer per directory)
//! <dir>/<base seq, 20 digits>.seg   segment files of records, oldest first
//! <dir>/ack.log                acknowledgement log (see below)
//! ```
//!
//! A segment record is `len: u32 LE | crc32: u32 LE | body[len]`, the CRC-32 (IEEE) covering the
//! body, and the body is `seq: u64 LE | topic_len: u16 LE | topic | payload`. A segment is named
//! after the first sequence number it holds (or will hold), so the next sequence number survives
//! even when every record has been acknowledged and the older segments are deleted.
//!
//! `ack.log` holds 13-byte records `kind: u8 | seq: u64 LE | crc32 of the 9 bytes before`:
//! kind 0 acknowledges one sequence number, kind 1 is a floor ("everything below `seq` is
//! acknowledged"). The log is compacted (written to a temporary file, fsynced, renamed) into one
//! floor record plus the acknowledgements above it once it grows past [`ACK_LOG_COMPACT_BYTES`].
//!
//! # Durability ([`FsyncPolicy`])
//!
//! Every `append` hands the whole record to the kernel in one `write(2)` before it returns, so a
//! process crash (`kill -9`, panic, OOM kill) loses nothing `append` returned for.
//!
//! - [`FsyncPolicy::Always`] (default): `fdatasync` after every record (and an fsync of the
//!   directory when a segment is created). On power loss nothing `append` returned for is lost,
//!   provided the storage honours flushes.
//! - [`FsyncPolicy::Interval`]: `fdatasync` at most once per interval, done by the first `append`
//!   after the interval elapsed or by [`Spool::sync`], which the daemon calls on a timer and at
//!   shutdown. On power loss the records appended since the last completed sync are lost, i.e. at
//!   most one interval's worth (plus the time since the last append if nobody calls `sync`).
//!
//! Acknowledgements are written (to the kernel) but not fsynced: after a power loss a few
//! acknowledged readings may be published a second time. MQTT QoS 1 is at-least-once anyway;
//! duplicates are allowed, loss is not.
//!
//! # Recovery
//!
//! `open` scans every segment and verifies every record. At the first record that is short,
//! oversized, fails its CRC or breaks the sequence order, the segment is truncated there (a torn
//! write from a crash or power cut; logged with segment and byte offset). Segments whose records
//! are all acknowledged are deleted, except the newest one which carries the sequence number.
//!
//! # Bound
//!
//! The segment files together stay under `max_bytes`. To make room, whole segments are deleted
//! oldest first; the unacknowledged records they held are counted in
//! [`SpoolStats::dropped_total`] and logged with `tracing::warn!`.
//!
//! # Async use
//!
//! [`SpoolHandle`] wraps the spool in a `std::sync::Mutex` (the critical sections are one small
//! write, or a few reads, and hold no `.await`) plus a `tokio::sync::Notify` that wakes the MQTT
//! task on new data. Its `*_blocking` methods may fsync and must run off the reactor: call them from
//! `tokio::task::spawn_blocking` (the async wrappers on the handle do exactly that).

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Bytes before the record body: length and CRC.
const RECORD_HEADER: usize = 8;
/// Body bytes before the topic: sequence number and topic length.
const BODY_PREFIX: usize = 10;
/// Largest body accepted when reading, whatever `segment_bytes` says: a length beyond this is
/// a torn or corrupted header, not a record.
const MAX_RECORD_BODY: u32 = 16 * 1024 * 1024;
const ACK_RECORD: usize = 13;
const ACK_KIND_ONE: u8 = 0;
const ACK_KIND_FLOOR: u8 = 1;
/// Size after which the acknowledgement log is rewritten as floor + residual acks.
pub const ACK_LOG_COMPACT_BYTES: u64 = 64 * 1024;
const SEGMENT_SUFFIX: &str = ".seg";
const ACK_LOG: &str = "ack.log";
const ACK_LOG_TMP: &str = "ack.log.tmp";
const LOCK_FILE: &str = "lock";
/// Smallest segment accepted by `open`; smaller ones would mean a file per handful of readings.
pub const MIN_SEGMENT_BYTES: u64 = 4096;

/// When appended records are forced to stable storage. See the module documentation for what
/// each setting can lose on power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append.
    #[default]
    Always,
    /// `fdatasync` at most once per interval.
    Interval(Duration),
}

/// Where and how the spool stores its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// Upper bound for the sum of all segment files. At least twice `segment_bytes`.
    pub max_bytes: u64,
    /// A segment is closed and a new one started once the next record would exceed this size.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl SpoolConfig {
    /// 64 MiB in 1 MiB segments, fsync per append.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: 64 * 1024 * 1024,
            segment_bytes: 1024 * 1024,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// One spooled reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Counters for health reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Records appended and not yet acknowledged.
    pub pending: usize,
    /// Bytes of all segment files (acknowledged records included until their segment goes).
    pub bytes: u64,
    pub segments: usize,
    /// Sequence number the next append will get.
    pub next_seq: u64,
    /// Unacknowledged records deleted to respect `max_bytes` (or unreadable), since `open`.
    pub dropped_total: u64,
    /// Bytes cut from segment tails during recovery in `open`.
    pub truncated_bytes: u64,
    pub appended_total: u64,
    pub acked_total: u64,
}

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool: directory {0} is in use by another process")]
    Locked(PathBuf),
    #[error("spool: invalid configuration: {0}")]
    Config(String),
    #[error("spool: record of {size} bytes does not fit a segment of {segment_bytes} bytes")]
    RecordTooLarge { size: u64, segment_bytes: u64 },
    #[error("spool: topic of {0} bytes is longer than 65535")]
    TopicTooLong(usize),
    #[error("spool: sequence numbers exhausted")]
    SeqExhausted,
    #[error("spool: spool lock poisoned by a panicking thread")]
    Poisoned,
    #[error("spool: background task failed: {0}")]
    Task(String),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io { op, path, source }
}

/// CRC-32 as in zlib/Ethernet (reflected polynomial 0xEDB88320), table built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/ISO-HDLC of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        let idx = ((crc ^ u32::from(b)) & 0xFF) as usize;
        // idx < 256 by the mask above
        crc = CRC_TABLE[idx] ^ (crc >> 8);
    }
    !crc
}

#[derive(Debug, Clone, Copy)]
struct EntryLoc {
    seq: u64,
    offset: u64,
    /// Record length including the header.
    len: u32,
}

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    bytes: u64,
    entries: Vec<EntryLoc>,
}

impl Segment {
    fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seq)
    }
}

/// The durable queue. See the module documentation.
pub struct Spool {
    cfg: SpoolConfig,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    /// The segment appends go to; it also carries the next sequence number in its name.
    active_seg: Segment,
    active: File,
    ack_log: File,
    ack_log_bytes: u64,
    /// Every live seq below this is acknowledged.
    cursor: u64,
    /// Acknowledged seqs at or above `cursor`.
    acked_above: BTreeSet<u64>,
    next_seq: u64,
    pending: usize,
    last_sync: Instant,
    unsynced: bool,
    stats: SpoolStats,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.cfg.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn segment_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    // SAFETY: flock on a file descriptor we own and keep open for the Spool's lifetime.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(SpoolError::Locked(dir.to_path_buf()));
        }
        return Err(SpoolError::Io {
            op: "lock",
            path,
            source: err,
        });
    }
    Ok(file)
}

/// Result of scanning one segment file.
struct Scan {
    entries: Vec<EntryLoc>,
    valid_len: u64,
    file_len: u64,
    reason: Option<String>,
}

/// Reads every record of a segment, stopping at the first invalid one.
fn scan_segment(path: &Path, min_seq: u64) -> Result<Scan, SpoolError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err("read", path))?;
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let mut expect_above = min_seq;
    let mut reason = None;
    while pos < data.len() {
        match decode_record(data.get(pos..).unwrap_or_default()) {
            Ok((seq, _, _, rec_len)) => {
                if seq < expect_above {
                    reason = Some(format!("sequence {seq} out of order"));
                    break;
                }
                let Ok(len) = u32::try_from(rec_len) else {
                    reason = Some("record length overflow".into());
                    break;
                };
                entries.push(EntryLoc {
                    seq,
                    offset: pos as u64,
                    len,
                });
                expect_above = seq.saturating_add(1);
                pos += rec_len;
            }
            Err(why) => {
                reason = Some(why);
                break;
            }
        }
    }
    Ok(Scan {
        entries,
        valid_len: pos as u64,
        file_len: data.len() as u64,
        reason,
    })
}

/// Decodes the record at the start of `buf`: (seq, topic, payload, total length).
fn decode_record(buf: &[u8]) -> Result<(u64, &str, &[u8], usize), String> {
    let header = buf
        .get(..RECORD_HEADER)
        .ok_or_else(|| format!("short header ({} bytes)", buf.len()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BODY || (len as usize) < BODY_PREFIX {
        return Err(format!("implausible record length {len}"));
    }
    let total = RECORD_HEADER + len as usize;
    let body = buf
        .get(RECORD_HEADER..total)
        .ok_or_else(|| format!("record of {len} bytes cut at {}", buf.len() - RECORD_HEADER))?;
    if crc32(body) != crc {
        return Err("CRC mismatch".into());
    }
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&body[..8]);
    let seq = u64::from_le_bytes(seq_bytes);
    let topic_len = usize::from(u16::from_le_bytes([body[8], body[9]]));
    let topic = body
        .get(BODY_PREFIX..BODY_PREFIX + topic_len)
        .ok_or_else(|| format!("topic length {topic_len} beyond record"))?;
    let topic = std::str::from_utf8(topic).map_err(|_| "topic is not UTF-8".to_string())?;
    let payload = body.get(BODY_PREFIX + topic_len..).unwrap_or_default();
    Ok((seq, topic, payload, total))
}

fn encode_record(seq: u64, topic: &str, payload: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let topic_len =
        u16::try_from(topic.len()).map_err(|_| SpoolError::TopicTooLong(topic.len()))?;
    let body_len = BODY_PREFIX + topic.len() + payload.len();
    let body_len32 = u32::try_from(body_len)
        .ok()
        .filter(|l| *l <= MAX_RECORD_BODY)
        .ok_or(SpoolError::RecordTooLarge {
            size: body_len as u64,
            segment_bytes: u64::from(MAX_RECORD_BODY),
        })?;
    let mut rec = Vec::with_capacity(RECORD_HEADER + body_len);
    rec.extend_from_slice(&body_len32.to_le_bytes());
    rec.extend_from_slice(&[0; 4]);
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(&topic_len.to_le_bytes());
    rec.extend_from_slice(topic.as_bytes());
    rec.extend_from_slice(payload);
    let crc = crc32(rec.get(RECORD_HEADER..).unwrap_or_default());
    rec[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(rec)
}

fn encode_ack(kind: u8, seq: u64) -> [u8; ACK_RECORD] {
    let mut rec = [0u8; ACK_RECORD];
    rec[0] = kind;
    rec[1..9].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32(&rec[..9]);
    rec[9..13].copy_from_slice(&crc.to_le_bytes());
    rec
}

/// Acknowledgement state read back from `ack.log`.
#[derive(Default)]
struct AckLog {
    floor: u64,
    acked: BTreeSet<u64>,
    valid_len: u64,
}

fn read_ack_log(path: &Path) -> Result<AckLog, SpoolError> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data).map_err(io_err("read", path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AckLog::default()),
        Err(e) => return Err(io_err("open", path)(e)),
    }
    let mut log = AckLog::default();
    for chunk in data.chunks_exact(ACK_RECORD) {
        let mut crc_bytes = [0u8; 4];
        crc_bytes.copy_from_slice(&chunk[9..13]);
        if crc32(&chunk[..9]) != u32::from_le_bytes(crc_bytes) {
            // A torn or corrupt ack: forgetting it only causes a duplicate publish.
            break;
        }
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&chunk[1..9]);
        let seq = u64::from_le_bytes(seq_bytes);
        match chunk[0] {
            ACK_KIND_ONE => {
                log.acked.insert(seq);
            }
            ACK_KIND_FLOOR => log.floor = log.floor.max(seq),
            _ => break,
        }
        log.valid_len += ACK_RECORD as u64;
    }
    Ok(log)
}

impl Spool {
    /// Opens (creating if needed) the spool in `cfg.dir`, recovering from a crash: torn tails
    /// are truncated, fully acknowledged segments deleted.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        if cfg.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(SpoolError::Config(format!(
                "segment_bytes {} is below the minimum of {MIN_SEGMENT_BYTES}",
                cfg.segment_bytes
            )));
        }
        if cfg.max_bytes < cfg.segment_bytes.saturating_mul(2) {
            return Err(SpoolError::Config(format!(
                "max_bytes {} must be at least twice segment_bytes {}",
                cfg.max_bytes, cfg.segment_bytes
            )));
        }
        if let FsyncPolicy::Interval(d) = cfg.fsync {
            if d.is_zero() {
                return Err(SpoolError::Config(
                    "fsync interval must be above zero (use Always)".into(),
                ));
            }
        }
        fs::create_dir_all(&cfg.dir).map_err(io_err("create directory", &cfg.dir))?;
        let lock = lock_dir(&cfg.dir)?;

        let mut bases = Vec::new();
        for dirent in fs::read_dir(&cfg.dir).map_err(io_err("list", &cfg.dir))? {
            let dirent = dirent.map_err(io_err("list", &cfg.dir))?;
            if let Some(base) = dirent.file_name().to_str().and_then(parse_segment_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        let ack_path = cfg.dir.join(ACK_LOG);
        let acks = read_ack_log(&ack_path)?;
        let mut stats = SpoolStats::default();
        let mut segments = VecDeque::new();
        let mut min_seq = 0u64;
        for base in bases {
            let path = cfg.dir.join(segment_name(base));
            let scan = scan_segment(&path, min_seq.max(base))?;
            if let Some(reason) = &scan.reason {
                tracing::warn!(
                    segment = %path.display(),
                    offset = scan.valid_len,
                    cut = scan.file_len - scan.valid_len,
                    "spool: truncating damaged segment tail: {reason}"
                );
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        f.set_len(scan.valid_len)?;
                        f.sync_all()
                    })
                    .map_err(io_err("truncate", &path))?;
                stats.truncated_bytes += scan.file_len - scan.valid_len;
            }
            if let Some(last) = scan.entries.last() {
                min_seq = last.seq.saturating_add(1);
            }
            segments.push_back(Segment {
                base,
                path,
                bytes: scan.valid_len,
                entries: scan.entries,
            });
        }

        let last_seen = segments
            .iter()
            .filter_map(|s| s.last_seq().map(|q| q.saturating_add(1)))
            .max()
            .unwrap_or(0);
        let last_base = segments.back().map_or(0, |s| s.base);
        let max_ack = acks
            .acked
            .iter()
            .next_back()
            .map_or(0, |a| a.saturating_add(1));
        let next_seq = [1, last_seen, last_base, acks.floor, max_ack]
            .into_iter()
            .max()
            .unwrap_or(1);

        let active_seg = match segments.pop_back() {
            Some(seg) => seg,
            None => {
                let path = cfg.dir.join(segment_name(next_seq));
                File::create(&path).map_err(io_err("create", &path))?;
                fsync_dir(&cfg.dir)?;
                Segment {
                    base: next_seq,
                    path,
                    bytes: 0,
                    entries: Vec::new(),
                }
            }
        };
        let active = OpenOptions::new()
            .append(true)
            .open(&active_seg.path)
            .map_err(io_err("open", &active_seg.path))?;

        let ack_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ack_path)
            .map_err(io_err("open", &ack_path))?;
        // Drop a torn ack record so new ones stay 13-byte aligned.
        let ack_len = ack_log.metadata().map_err(io_err("stat", &ack_path))?.len();
        if ack_len != acks.valid_len {
            ack_log
                .set_len(acks.valid_len)
                .map_err(io_err("truncate", &ack_path))?;
        }

        let mut spool = Spool {
            cfg,
            closed: segments,
            active_seg,
            active,
            ack_log,
            ack_log_bytes: acks.valid_len,
            cursor: acks.floor,
            acked_above: BTreeSet::new(),
            next_seq,
            pending: 0,
            last_sync: Instant::now(),
            unsynced: false,
            stats,
            _lock: lock,
        };
        let floor = acks.floor;
        let mut pending = 0;
        let mut acked_above = BTreeSet::new();
        for seg in spool.all_segments() {
            for e in seg.entries.iter().filter(|e| e.seq >= floor) {
                if acks.acked.contains(&e.seq) {
                    acked_above.insert(e.seq);
                } else {
                    pending += 1;
                }
            }
        }
        spool.acked_above = acked_above;
        spool.pending = pending;
        spool.advance_cursor();
        spool.delete_acked_segments()?;
        spool.stats.acked_total = 0;
        Ok(spool)
    }

    /// Appends a record and makes it durable as the [`FsyncPolicy`] says, returning its sequence
    /// number. When the spool is full, oldest segments are deleted first (counted and logged).
    pub fn append(&mut self, topic: &str, payload: &[u8]) -> Result<u64, SpoolError> {
        let seq = self.next_seq;
        let rec = encode_record(seq, topic, payload)?;
        let rec_len = rec.len() as u64;
        if rec_len > self.cfg.segment_bytes {
            return Err(SpoolError::RecordTooLarge {
                size: rec_len,
                segment_bytes: self.cfg.segment_bytes,
            });
        }
        let rec_len32 = u32::try_from(rec_len).map_err(|_| SpoolError::RecordTooLarge {
            size: rec_len,
            segment_bytes: self.cfg.segment_bytes,
        })?;
        let next = seq.checked_add(1).ok_or(SpoolError::SeqExhausted)?;

        if self.active_seg.bytes + rec_len > self.cfg.segment_bytes {
            self.rotate()?;
        }
        self.make_room(rec_len)?;

        let offset = self.active_seg.bytes;
        if let Err(e) = self.active.write_all(&rec) {
            // A partial write would leave a torn record in the middle of the segment; cut it
            // so the next append starts on a record boundary.
            let _ = self.active.set_len(offset);
            return Err(io_err("write", &self.active_seg.path)(e));
        }
        self.next_seq = next;
        self.pending += 1;
        self.stats.appended_total += 1;
        let seg = &mut self.active_seg;
        seg.bytes += rec_len;
        seg.entries.push(EntryLoc {
            seq,
            offset,
            len: rec_len32,
        });
        self.unsynced = true;
        match self.cfg.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval(d) => {
                if self.last_sync.elapsed() >= d {
                    self.sync()?;
                }
            }
        }
        Ok(seq)
    }

    /// Forces appended records to stable storage (`fdatasync` of the active segment).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced {
            self.active
                .sync_data()
                .map_err(io_err("fdatasync", &self.active_seg.path))?;
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Number of records appended and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Up to `max` unacknowledged records with a sequence number above `after_seq` (all
    /// unacknowledged records when `None`), oldest first. A record that fails its CRC on read
    /// (storage corruption since `open`) is dropped, counted and logged rather than blocking the
    /// queue forever, hence `&mut self`.
    pub fn peek_from(
        &mut self,
        after_seq: Option<u64>,
        max: usize,
    ) -> Result<Vec<SpoolEntry>, SpoolError> {
        let start = match after_seq {
            Some(s) => s.saturating_add(1).max(self.cursor),
            None => self.cursor,
        };
        let mut wanted = Vec::new();
        'outer: for (si, seg) in self.all_segments().enumerate() {
            if seg.last_seq().map_or(true, |l| l < start) {
                continue;
            }
            let first = seg.entries.partition_point(|e| e.seq < start);
            for e in seg.entries.get(first..).unwrap_or_default() {
                if wanted.len() >= max {
                    break 'outer;
                }
                if !self.acked_above.contains(&e.seq) {
                    wanted.push((si, *e));
                }
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut open: Option<(usize, File)> = None;
        let mut corrupt = Vec::new();
        for (si, e) in wanted {
            let Some(seg) = self.all_segments().nth(si) else {
                continue;
            };
            if open.as_ref().map_or(true, |(i, _)| *i != si) {
                let f = File::open(&seg.path).map_err(io_err("open", &seg.path))?;
                open = Some((si, f));
            }
            let Some((_, file)) = open.as_ref() else {
                continue;
            };
            let mut buf = vec![0u8; e.len as usize];
            file.read_exact_at(&mut buf, e.offset)
                .map_err(io_err("read", &seg.path))?;
            match decode_record(&buf) {
                Ok((seq, topic, payload, _)) if seq == e.seq => out.push(SpoolEntry {
                    seq,
                    topic: topic.to_string(),
                    payload: payload.to_vec(),
                }),
                Ok((seq, ..)) => {
                    tracing::error!(segment = %seg.path.display(), offset = e.offset,
                        "spool: record holds seq {seq}, expected {}; dropping it", e.seq);
                    corrupt.push(e.seq);
                }
                Err(why) => {
                    tracing::error!(segment = %seg.path.display(), offset = e.offset,
                        "spool: record seq {} unreadable ({why}); dropping it", e.seq);
                    corrupt.push(e.seq);
                }
            }
        }
        for seq in corrupt {
            self.ack(seq)?;
            self.stats.acked_total = self.stats.acked_total.saturating_sub(1);
            self.stats.dropped_total += 1;
        }
        Ok(out)
    }

    /// Marks a record as delivered. Acks may come in any order; unknown, dropped or repeated
    /// sequence numbers are ignored.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        if seq < self.cursor || self.acked_above.contains(&seq) || !self.is_live(seq) {
            return Ok(());
        }
        let rec = encode_ack(ACK_KIND_ONE, seq);
        let path = self.cfg.dir.join(ACK_LOG);
        self.ack_log
            .write_all(&rec)
            .map_err(io_err("write", &path))?;
        self.ack_log_bytes += ACK_RECORD as u64;
        self.acked_above.insert(seq);
        self.pending = self.pending.saturating_sub(1);
        self.stats.acked_total += 1;
        self.advance_cursor();
        self.delete_acked_segments()?;
        if self.ack_log_bytes > ACK_LOG_COMPACT_BYTES {
            self.compact_ack_log()?;
        }
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            pending: self.pending,
            bytes: self.all_segments().map(|s| s.bytes).sum(),
            segments: self.closed.len() + 1,
            next_seq: self.next_seq,
            ..self.stats
        }
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    fn all_segments(&self) -> impl Iterator<Item = &Segment> {
        self.closed.iter().chain(std::iter::once(&self.active_seg))
    }

    /// Whether `seq` is a record still held in a segment.
    fn is_live(&self, seq: u64) -> bool {
        self.all_segments()
            .filter(|s| s.base <= seq)
            .last()
            .is_some_and(|seg| seg.entries.binary_search_by_key(&seq, |e| e.seq).is_ok())
    }

    /// Moves `cursor` past every leading acknowledged record.
    fn advance_cursor(&mut self) {
        loop {
            let next_live = self.first_live_at_or_above(self.cursor);
            match next_live {
                Some(seq) if self.acked_above.remove(&seq) => {
                    self.cursor = seq.saturating_add(1);
                }
                Some(seq) => {
                    self.cursor = seq;
                    break;
                }
                None => {
                    self.cursor = self.next_seq;
                    self.acked_above.clear();
                    break;
                }
            }
        }
        // Acks below the cursor are implied by it.
        let keep = self.acked_above.split_off(&self.cursor);
        self.acked_above = keep;
    }

    fn first_live_at_or_above(&self, seq: u64) -> Option<u64> {
        for seg in self.all_segments() {
            if seg.last_seq().map_or(true, |l| l < seq) {
                continue;
            }
            let i = seg.entries.partition_point(|e| e.seq < seq);
            if let Some(e) = seg.entries.get(i) {
                return Some(e.seq);
            }
        }
        None
    }

    /// Deletes leading closed segments whose records are all acknowledged.
    fn delete_acked_segments(&mut self) -> Result<(), SpoolError> {
        while let Some(front) = self.closed.front() {
            if front.last_seq().is_some_and(|l| l >= self.cursor) {
                break;
            }
            if let Some(seg) = self.closed.pop_front() {
                remove_segment(&seg.path)?;
            }
        }
        Ok(())
    }

    /// Deletes oldest segments until `extra` more bytes fit under `max_bytes`.
    fn make_room(&mut self, extra: u64) -> Result<(), SpoolError> {
        loop {
            let total: u64 = self.all_segments().map(|s| s.bytes).sum();
            if total + extra <= self.cfg.max_bytes {
                return Ok(());
            }
            if self.closed.is_empty() {
                if self.active_seg.entries.is_empty() {
                    return Err(SpoolError::RecordTooLarge {
                        size: extra,
                        segment_bytes: self.cfg.segment_bytes,
                    });
                }
                self.rotate()?;
                continue;
            }
            let Some(seg) = self.closed.pop_front() else {
                continue;
            };
            let lost = seg
                .entries
                .iter()
                .filter(|e| e.seq >= self.cursor && !self.acked_above.contains(&e.seq))
                .count();
            remove_segment(&seg.path)?;
            self.pending = self.pending.saturating_sub(lost);
            self.stats.dropped_total += lost as u64;
            if lost > 0 {
                tracing::warn!(
                    dropped = lost,
                    dropped_total = self.stats.dropped_total,
                    first_seq = seg.entries.first().map_or(0, |e| e.seq),
                    "spool: full ({} bytes), dropped oldest unpublished readings",
                    self.cfg.max_bytes
                );
            }
            self.advance_cursor();
        }
    }

    /// Closes the active segment and starts a new one named after the next sequence number.
    fn rotate(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        let base = self.next_seq;
        let path = self.cfg.dir.join(segment_name(base));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        drop(file);
        let active = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // The new segment's name carries next_seq; make it durable before records land in it.
        fsync_dir(&self.cfg.dir)?;
        self.active = active;
        let old = std::mem::replace(
            &mut self.active_seg,
            Segment {
                base,
                path,
                bytes: 0,
                entries: Vec::new(),
            },
        );
        self.closed.push_back(old);
        self.delete_acked_segments()
    }

    fn compact_ack_log(&mut self) -> Result<(), SpoolError> {
        let tmp = self.cfg.dir.join(ACK_LOG_TMP);
        let path = self.cfg.dir.join(ACK_LOG);
        let mut buf = Vec::with_capacity((1 + self.acked_above.len()) * ACK_RECORD);
        buf.extend_from_slice(&encode_ack(ACK_KIND_FLOOR, self.cursor));
        for &seq in &self.acked_above {
            buf.extend_from_slice(&encode_ack(ACK_KIND_ONE, seq));
        }
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&buf).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        fsync_dir(&self.cfg.dir)?;
        let mut log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        log.seek(SeekFrom::End(0)).map_err(io_err("seek", &path))?;
        self.ack_log = log;
        self.ack_log_bytes = buf.len() as u64;
        Ok(())
    }
}

fn remove_segment(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("delete", path)(e)),
    }
}

/// Shared, clonable access to a [`Spool`] for the daemon's tasks.
#[derive(Clone, Debug)]
pub struct SpoolHandle {
    inner: Arc<Mutex<Spool>>,
    notify: Arc<tokio::sync::Notify>,
}

impl SpoolHandle {
    pub fn new(spool: Spool) -> Self {
        SpoolHandle {
            inner: Arc::new(Mutex::new(spool)),
            notify: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Locks the spool for direct use from synchronous code. Keep the guard short-lived and
    /// never hold it across `.await`.
    pub fn lock(&self) -> Result<MutexGuard<'_, Spool>, SpoolError> {
        self.inner.lock().map_err(|_| SpoolError::Poisoned)
    }

    /// Appends and wakes the publisher. May fsync: call from blocking context.
    pub fn append_blocking(&self, topic: &str, payload: &[u8]) -> Result<u64, SpoolError> {
        let seq = self.lock()?.append(topic, payload)?;
        self.notify.notify_one();
        Ok(seq)
    }

    /// [`Self::append_blocking`] on tokio's blocking pool.
    pub async fn append(&self, topic: String, payload: Vec<u8>) -> Result<u64, SpoolError> {
        let h = self.clone();
        spawn_blocking(move || h.append_blocking(&topic, &payload)).await
    }

    pub async fn peek_from(
        &self,
        after_seq: Option<u64>,
        max: usize,
    ) -> Result<Vec<SpoolEntry>, SpoolError> {
        let h = self.clone();
        spawn_blocking(move || h.lock()?.peek_from(after_seq, max)).await
    }

    /// Acknowledges several records in one trip to the blocking pool.
    pub async fn ack_many(&self, seqs: Vec<u64>) -> Result<(), SpoolError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let h = self.clone();
        spawn_blocking(move || {
            let mut spool = h.lock()?;
            for seq in seqs {
                spool.ack(seq)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn sync(&self) -> Result<(), SpoolError> {
        let h = self.clone();
        spawn_blocking(move || h.lock()?.sync()).await
    }

    pub fn pending(&self) -> Result<usize, SpoolError> {
        Ok(self.lock()?.pending())
    }

    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        Ok(self.lock()?.stats())
    }

    /// Resolves after the next append (or immediately if one happened since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// For [`FsyncPolicy::Interval`]: syncs every `period` until `shutdown` turns true, then a
    /// last time, so a quiet spool does not keep unsynced records indefinitely. Errors are
    /// logged and retried at the next tick.
    pub async fn sync_periodically(
        self,
        period: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
            if let Err(e) = self.sync().await {
                tracing::error!("spool: periodic fsync failed: {e}");
            }
        }
        if let Err(e) = self.sync().await {
            tracing::error!("spool: final fsync failed: {e}");
        }
    }
}

async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpoolError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn record_roundtrip_and_corruption() {
        let rec = encode_record(7, "wmbus/gw/meter/1", b"{\"a\":1}").unwrap();
        let (seq, topic, payload, len) = decode_record(&rec).unwrap();
        assert_eq!(
            (seq, topic, payload, len),
            (7, "wmbus/gw/meter/1", &b"{\"a\":1}"[..], rec.len())
        );
        for cut in 0..rec.len() {
            assert!(decode_record(&rec[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = rec.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode_record(&bad).is_err());
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("ack.log"), None);
    }
}
