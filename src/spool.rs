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

pub mod writer;

/// Marks the start of a record, so that a scan can find the next record after damage.
const RECORD_MAGIC: [u8; 4] = *b"WMR2";
/// Bytes before the record body: marker, length, body CRC, header CRC.
const RECORD_HEADER: usize = 16;
/// Header of the first spool format (length and CRC only), still read after an upgrade.
const LEGACY_HEADER: usize = 8;
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
/// Damaged record bytes found by `open` are copied here, one file per damaged range.
pub const QUARANTINE_DIR: &str = "quarantine";
/// Smallest segment accepted by `open`; smaller ones would mean a file per handful of readings.
pub const MIN_SEGMENT_BYTES: u64 = 4096;
/// Recently written records are kept in memory up to this many bytes, so that publishing
/// them does not read them back from disk.
const CACHE_BYTES: usize = 2 * 1024 * 1024;

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
    /// Damaged records skipped by `open` (each copied to the quarantine directory).
    pub quarantined: u64,
    pub quarantined_bytes: u64,
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
// Const evaluation: an index out of range fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
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
        let idx = usize::from((crc as u8) ^ b);
        // idx < 256 = the table's length: `get` never misses.
        crc = CRC_TABLE.get(idx).copied().unwrap_or_default() ^ (crc >> 8);
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
    /// Written by the first format (no record marker); read, never appended to.
    legacy: bool,
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
    /// An acknowledgement could not be written: the log is rewritten from memory at the next
    /// chance (losing it would only cause a duplicate publish).
    ack_log_dirty: bool,
    /// Every live seq below this is acknowledged.
    cursor: u64,
    /// Acknowledged seqs at or above `cursor`.
    acked_above: BTreeSet<u64>,
    next_seq: u64,
    /// Records below this seq are as durable as the policy promises: only they are handed
    /// to the publisher (group commit: a reading counts as accepted once its batch is).
    durable: u64,
    /// Recently written records, oldest first, for publishing without reading them back.
    cache: VecDeque<SpoolEntry>,
    cache_bytes: usize,
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

/// A damaged byte range found while scanning a segment.
#[derive(Debug, Clone)]
struct Damage {
    offset: u64,
    len: u64,
    reason: String,
}

/// Result of scanning one segment file.
struct Scan {
    entries: Vec<EntryLoc>,
    /// Where the segment's last intact or skipped record ends; a torn tail after it is cut.
    valid_len: u64,
    file_len: u64,
    /// Why the tail was cut, when it was.
    tail_reason: Option<String>,
    /// Damaged records in the middle, skipped (and quarantined by `open`).
    damaged: Vec<Damage>,
    legacy: bool,
    data: Vec<u8>,
}

/// Why the bytes at a position are not an intact record.
#[derive(Debug, PartialEq, Eq)]
enum RecordError {
    /// No valid header here (marker, header CRC or length wrong, or too few bytes): the scan
    /// must look for the next marker.
    Header(String),
    /// The header is intact but the body is cut off by the end of the buffer.
    Truncated { total: usize },
    /// The header is intact (so its length can be trusted) but the body is damaged.
    Body { total: usize, reason: String },
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Header(why) => write!(f, "{why}"),
            RecordError::Truncated { total } => write!(f, "record of {total} bytes cut short"),
            RecordError::Body { reason, .. } => write!(f, "{reason}"),
        }
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(src) = b.get(at..at + 4) {
        w.copy_from_slice(src);
    }
    u32::from_le_bytes(w)
}

/// The body length of a valid header at the start of `buf` (marker, header CRC, plausible
/// length), else why not.
fn header_len(buf: &[u8]) -> Result<usize, RecordError> {
    let header: &[u8; RECORD_HEADER] = buf
        .get(..RECORD_HEADER)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| RecordError::Header(format!("short header ({} bytes)", buf.len())))?;
    if header[..4] != RECORD_MAGIC {
        return Err(RecordError::Header("no record marker".into()));
    }
    if crc32(&header[..12]) != le32(header, 12) {
        return Err(RecordError::Header("header CRC mismatch".into()));
    }
    let len = le32(header, 4);
    if len > MAX_RECORD_BODY || (len as usize) < BODY_PREFIX {
        return Err(RecordError::Header(format!(
            "implausible record length {len}"
        )));
    }
    Ok(len as usize)
}

/// Decodes the record at the start of `buf`: (seq, topic, payload, total length).
fn decode_record(buf: &[u8]) -> Result<(u64, &str, &[u8], usize), RecordError> {
    let len = header_len(buf)?;
    let total = RECORD_HEADER + len;
    let body = buf
        .get(RECORD_HEADER..total)
        .ok_or(RecordError::Truncated { total })?;
    if crc32(body) != le32(buf, 8) {
        return Err(RecordError::Body {
            total,
            reason: "body CRC mismatch".into(),
        });
    }
    let (seq, topic, payload) =
        decode_body(body).map_err(|reason| RecordError::Body { total, reason })?;
    Ok((seq, topic, payload, total))
}

/// Sequence number, topic and payload of a record body whose CRC verified.
fn decode_body(body: &[u8]) -> Result<(u64, &str, &[u8]), String> {
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(body.get(..8).ok_or("body too short")?);
    let seq = u64::from_le_bytes(seq_bytes);
    let topic_len = usize::from(u16::from_le_bytes([
        *body.get(8).ok_or("body too short")?,
        *body.get(9).ok_or("body too short")?,
    ]));
    let topic = body
        .get(BODY_PREFIX..BODY_PREFIX + topic_len)
        .ok_or_else(|| format!("topic length {topic_len} beyond record"))?;
    let topic = std::str::from_utf8(topic).map_err(|_| "topic is not UTF-8".to_string())?;
    let payload = body.get(BODY_PREFIX + topic_len..).unwrap_or_default();
    Ok((seq, topic, payload))
}

/// A record of the first spool format: `len | crc32 | body`, no marker. Only read.
fn decode_legacy_record(buf: &[u8]) -> Result<(u64, &str, &[u8], usize), String> {
    if buf.len() < LEGACY_HEADER {
        return Err(format!("short header ({} bytes)", buf.len()));
    }
    let len = le32(buf, 0);
    if len > MAX_RECORD_BODY || (len as usize) < BODY_PREFIX {
        return Err(format!("implausible record length {len}"));
    }
    let total = LEGACY_HEADER + len as usize;
    let body = buf
        .get(LEGACY_HEADER..total)
        .ok_or_else(|| format!("record of {len} bytes cut short"))?;
    if crc32(body) != le32(buf, 4) {
        return Err("CRC mismatch".into());
    }
    let (seq, topic, payload) = decode_body(body)?;
    Ok((seq, topic, payload, total))
}

/// Either format, as the segment says.
fn decode_any(buf: &[u8], legacy: bool) -> Result<(u64, &str, &[u8], usize), String> {
    if legacy {
        decode_legacy_record(buf)
    } else {
        decode_record(buf).map_err(|e| e.to_string())
    }
}

/// The offset of the next valid record header after `from`, if any.
fn resync(data: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(rest) = data.get(pos..) {
        let i = rest.windows(4).position(|w| w == RECORD_MAGIC)?;
        let at = pos + i;
        if header_len(data.get(at..).unwrap_or_default()).is_ok() {
            return Some(at);
        }
        pos = at + 1;
    }
    None
}

/// Reads every record of a segment. A damaged record in the middle is skipped (by its
/// length when its header is intact, else up to the next valid header); a torn tail ends
/// the scan.
fn scan_segment(path: &Path, min_seq: u64) -> Result<Scan, SpoolError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err("read", path))?;
    // A first-format segment starts with a valid legacy record; a new one whose first
    // marker is damaged does not, and is resynchronised like any other damage.
    if data.get(..4).is_some_and(|m| m != RECORD_MAGIC) && decode_legacy_record(&data).is_ok() {
        return Ok(scan_legacy(data, min_seq));
    }
    let mut scan = Scan {
        entries: Vec::new(),
        valid_len: 0,
        file_len: data.len() as u64,
        tail_reason: None,
        damaged: Vec::new(),
        legacy: false,
        data: Vec::new(),
    };
    let mut pos = 0usize;
    let mut expect_above = min_seq;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let skip = match decode_record(rest) {
            Ok((seq, _, _, total)) if seq >= expect_above => {
                scan.entries.push(EntryLoc {
                    seq,
                    offset: pos as u64,
                    len: total as u32,
                });
                expect_above = seq.saturating_add(1);
                pos += total;
                scan.valid_len = pos as u64;
                continue;
            }
            Ok((seq, _, _, total)) => Some((total, format!("sequence {seq} out of order"))),
            Err(RecordError::Body { total, reason }) => Some((total, reason)),
            Err(RecordError::Truncated { .. }) => None,
            Err(RecordError::Header(why)) => resync(&data, pos + 1).map(|next| (next - pos, why)),
        };
        match skip {
            Some((len, reason)) => {
                scan.damaged.push(Damage {
                    offset: pos as u64,
                    len: len as u64,
                    reason,
                });
                pos += len;
                scan.valid_len = pos as u64;
            }
            None => {
                // Nothing valid follows: a write torn by a crash or power cut.
                let why = decode_record(rest).err().map(|e| e.to_string());
                scan.tail_reason = why;
                break;
            }
        }
    }
    scan.data = data;
    Ok(scan)
}

/// A segment of the first format: read up to the first invalid record (it had no marker
/// to resynchronise on), never appended to.
fn scan_legacy(data: Vec<u8>, min_seq: u64) -> Scan {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    let mut expect_above = min_seq;
    let mut reason = None;
    while pos < data.len() {
        match decode_legacy_record(data.get(pos..).unwrap_or_default()) {
            Ok((seq, _, _, total)) if seq >= expect_above => {
                entries.push(EntryLoc {
                    seq,
                    offset: pos as u64,
                    len: total as u32,
                });
                expect_above = seq.saturating_add(1);
                pos += total;
            }
            Ok((seq, ..)) => {
                reason = Some(format!("sequence {seq} out of order"));
                break;
            }
            Err(why) => {
                reason = Some(why);
                break;
            }
        }
    }
    Scan {
        entries,
        valid_len: pos as u64,
        file_len: data.len() as u64,
        tail_reason: reason,
        damaged: Vec::new(),
        legacy: true,
        data,
    }
}

/// Appends the record of `seq` to `out`.
fn encode_record_into(
    out: &mut Vec<u8>,
    seq: u64,
    topic: &str,
    payload: &[u8],
) -> Result<(), SpoolError> {
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
    let start = out.len();
    out.reserve(RECORD_HEADER + body_len);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&body_len32.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    let body_crc = crc32(out.get(start + RECORD_HEADER..).unwrap_or_default());
    if let Some(slot) = out.get_mut(start + 8..start + 12) {
        slot.copy_from_slice(&body_crc.to_le_bytes());
    }
    let header_crc = crc32(out.get(start..start + 12).unwrap_or_default());
    if let Some(slot) = out.get_mut(start + 12..start + 16) {
        slot.copy_from_slice(&header_crc.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
fn encode_record(seq: u64, topic: &str, payload: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let mut out = Vec::new();
    encode_record_into(&mut out, seq, topic, payload)?;
    Ok(out)
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
        let Ok(chunk) = <&[u8; ACK_RECORD]>::try_from(chunk) else {
            break;
        };
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

/// What [`Spool::write_batch`] did: the first `written` items went to the kernel (with
/// sequence numbers from `first_seq`); `error` says why the rest did not.
#[derive(Debug)]
pub struct BatchWrite {
    pub first_seq: u64,
    pub written: usize,
    pub error: Option<SpoolError>,
}

/// A record staged in a write buffer: its seq, offset in the buffer, length, and the item.
struct Staged {
    seq: u64,
    rel: usize,
    len: u32,
    item: usize,
}

/// The segments of `dir` in order, each scanned and recovered (see [`Spool::open`]).
fn recover_segments(dir: &Path, stats: &mut SpoolStats) -> Result<VecDeque<Segment>, SpoolError> {
    let mut bases = Vec::new();
    for dirent in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let dirent = dirent.map_err(io_err("list", dir))?;
        if let Some(base) = dirent.file_name().to_str().and_then(parse_segment_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let mut segments = VecDeque::new();
    let mut min_seq = 0u64;
    for base in bases {
        let path = dir.join(segment_name(base));
        let scan = scan_segment(&path, min_seq.max(base))?;
        recover_segment(dir, &path, &scan, stats)?;
        if let Some(last) = scan.entries.last() {
            min_seq = last.seq.saturating_add(1);
        }
        segments.push_back(Segment {
            base,
            path,
            bytes: scan.valid_len,
            entries: scan.entries,
            legacy: scan.legacy,
        });
    }
    Ok(segments)
}

/// A new, empty segment starting at `base` (its name made durable in the directory).
fn new_segment(dir: &Path, base: u64) -> Result<Segment, SpoolError> {
    let path = dir.join(segment_name(base));
    File::create(&path).map_err(io_err("create", &path))?;
    fsync_dir(dir)?;
    Ok(Segment {
        base,
        path,
        bytes: 0,
        entries: Vec::new(),
        legacy: false,
    })
}

/// The ack log for appending, cut to its `valid_len` sound bytes.
fn open_ack_log(path: &Path, valid_len: u64) -> Result<File, SpoolError> {
    let ack_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err("open", path))?;
    // Drop a torn ack record so new ones stay 13-byte aligned.
    let ack_len = ack_log.metadata().map_err(io_err("stat", path))?.len();
    if ack_len != valid_len {
        ack_log
            .set_len(valid_len)
            .map_err(io_err("truncate", path))?;
    }
    Ok(ack_log)
}

impl Spool {
    /// Opens (creating if needed) the spool in `cfg.dir`, recovering from a crash: torn tails
    /// are truncated, damaged records in the middle quarantined and skipped, fully
    /// acknowledged segments deleted.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        check_config(&cfg)?;
        fs::create_dir_all(&cfg.dir).map_err(io_err("create directory", &cfg.dir))?;
        let lock = lock_dir(&cfg.dir)?;

        let ack_path = cfg.dir.join(ACK_LOG);
        let acks = read_ack_log(&ack_path)?;
        let mut stats = SpoolStats::default();
        let mut segments = recover_segments(&cfg.dir, &mut stats)?;
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
            Some(seg) if !seg.legacy => seg,
            other => {
                // A legacy segment is kept as a closed one; new records start a new segment.
                segments.extend(other);
                new_segment(&cfg.dir, next_seq)?
            }
        };
        let active = OpenOptions::new()
            .append(true)
            .open(&active_seg.path)
            .map_err(io_err("open", &active_seg.path))?;

        let ack_log = open_ack_log(&ack_path, acks.valid_len)?;
        let mut spool = Spool {
            cfg,
            closed: segments,
            active_seg,
            active,
            ack_log,
            ack_log_bytes: acks.valid_len,
            ack_log_dirty: false,
            cursor: acks.floor,
            acked_above: BTreeSet::new(),
            next_seq,
            durable: next_seq,
            cache: VecDeque::new(),
            cache_bytes: 0,
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
        spool.delete_acked_segments();
        spool.stats.acked_total = 0;
        Ok(spool)
    }

    /// Whether a record of this topic and payload can be spooled at all (size limits).
    pub fn check_record(&self, topic: &str, payload: &[u8]) -> Result<(), SpoolError> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(SpoolError::TopicTooLong(topic.len()));
        }
        let size = (RECORD_HEADER + BODY_PREFIX + topic.len() + payload.len()) as u64;
        if size > self.cfg.segment_bytes {
            return Err(SpoolError::RecordTooLarge {
                size,
                segment_bytes: self.cfg.segment_bytes,
            });
        }
        Ok(())
    }

    /// Appends a record and makes it durable as the [`FsyncPolicy`] says, returning its sequence
    /// number. When the spool is full, oldest segments are deleted first (counted and logged).
    pub fn append(&mut self, topic: &str, payload: &[u8]) -> Result<u64, SpoolError> {
        self.check_record(topic, payload)?;
        let batch = self.write_batch(&[(topic, payload)]);
        if let Some(e) = batch.error {
            return Err(e);
        }
        self.commit()?;
        Ok(batch.first_seq)
    }

    /// Group commit, first half: hands every item to the kernel, in as few `write(2)`s as
    /// segment boundaries allow (one for a batch inside one segment). The records are not
    /// yet visible to [`Self::peek_from`]: [`Self::commit`] (or the handle's commit, which
    /// fsyncs without holding the lock) makes them so once they are durable. Items must
    /// pass [`Self::check_record`].
    pub fn write_batch<T: AsRef<str>, P: AsRef<[u8]>>(&mut self, items: &[(T, P)]) -> BatchWrite {
        let first_seq = self.next_seq;
        let fail = |written, e| BatchWrite {
            first_seq,
            written,
            error: Some(e),
        };
        let capacity = items
            .iter()
            .map(|(t, p)| RECORD_HEADER + BODY_PREFIX + t.as_ref().len() + p.as_ref().len())
            .sum();
        let mut buf = Vec::with_capacity(capacity);
        let mut staged: Vec<Staged> = Vec::with_capacity(items.len());
        let mut written = 0usize;
        for (index, (topic, payload)) in items.iter().enumerate() {
            let seq = self.next_seq + staged.len() as u64;
            if seq == u64::MAX {
                return fail(written, SpoolError::SeqExhausted);
            }
            let mut at = buf.len();
            if let Err(e) = encode_record_into(&mut buf, seq, topic.as_ref(), payload.as_ref()) {
                buf.truncate(at);
                return fail(written, e);
            }
            let rec_len = (buf.len() - at) as u64;
            if self.active_seg.bytes + buf.len() as u64 > self.cfg.segment_bytes {
                // This record does not fit the active segment: write the ones before it,
                // then rotate; it starts the next write.
                let tail = buf.split_off(at);
                match self.flush(&buf, &std::mem::take(&mut staged), items) {
                    Ok(n) => written += n,
                    Err(e) => return fail(written, e),
                }
                buf = tail;
                at = 0;
                if self.active_seg.bytes + rec_len > self.cfg.segment_bytes {
                    if let Err(e) = self.rotate() {
                        return fail(written, e);
                    }
                }
            }
            staged.push(Staged {
                seq,
                rel: at,
                len: rec_len as u32,
                item: index,
            });
        }
        match self.flush(&buf, &staged, items) {
            Ok(n) => written += n,
            Err(e) => return fail(written, e),
        }
        BatchWrite {
            first_seq,
            written,
            error: None,
        }
    }

    /// One `write(2)` of `buf` to the active segment, then the bookkeeping of its records.
    fn flush<T: AsRef<str>, P: AsRef<[u8]>>(
        &mut self,
        buf: &[u8],
        staged: &[Staged],
        items: &[(T, P)],
    ) -> Result<usize, SpoolError> {
        if staged.is_empty() {
            return Ok(0);
        }
        self.make_room(buf.len() as u64)?;
        let offset = self.active_seg.bytes;
        if let Err(e) = self.active.write_all(buf) {
            // A partial write would leave a torn record in the middle of the segment; cut it
            // so the next append starts on a record boundary.
            let _ = self.active.set_len(offset);
            return Err(io_err("write", &self.active_seg.path)(e));
        }
        for st in staged {
            self.active_seg.entries.push(EntryLoc {
                seq: st.seq,
                offset: offset + st.rel as u64,
                len: st.len,
            });
            if let Some((topic, payload)) = items.get(st.item) {
                self.cache_push(SpoolEntry {
                    seq: st.seq,
                    topic: topic.as_ref().to_owned(),
                    payload: payload.as_ref().to_vec(),
                });
            }
        }
        let n = staged.len();
        self.active_seg.bytes += buf.len() as u64;
        self.next_seq += n as u64;
        self.pending += n;
        self.stats.appended_total += n as u64;
        self.unsynced = true;
        Ok(n)
    }

    fn cache_push(&mut self, entry: SpoolEntry) {
        self.cache_bytes += entry.topic.len() + entry.payload.len();
        self.cache.push_back(entry);
        self.cache_trim();
    }

    /// Drops cached records below the cursor and the oldest beyond the byte bound.
    fn cache_trim(&mut self) {
        while let Some(front) = self.cache.front() {
            if front.seq >= self.cursor && self.cache_bytes <= CACHE_BYTES {
                break;
            }
            self.cache_bytes -= front.topic.len() + front.payload.len();
            self.cache.pop_front();
        }
    }

    /// Group commit, second half, for synchronous callers: makes what was written durable as
    /// the policy says and visible to the publisher.
    pub fn commit(&mut self) -> Result<(), SpoolError> {
        match self.cfg.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval(d) => {
                if self.last_sync.elapsed() >= d {
                    self.sync()?;
                }
            }
        }
        self.durable = self.next_seq;
        Ok(())
    }

    /// What must be fsynced to make everything written durable: a handle on the active
    /// segment (`None` when it has nothing unsynced, e.g. right after a rotation synced the
    /// old one) and the seq below which all records are then durable. Lets the fsync run
    /// without the lock.
    fn sync_target(&mut self) -> Result<(Option<File>, u64), SpoolError> {
        if !self.unsynced {
            return Ok((None, self.next_seq));
        }
        let file = self
            .active
            .try_clone()
            .map_err(io_err("dup", &self.active_seg.path))?;
        self.unsynced = false;
        Ok((Some(file), self.next_seq))
    }

    /// Records below `seq` are durable: publish them.
    fn mark_durable(&mut self, seq: u64) {
        self.durable = self.durable.max(seq.min(self.next_seq));
        self.last_sync = Instant::now();
    }

    /// Forces appended records to stable storage (`fdatasync` of the active segment).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced {
            if let Err(e) = self.active.sync_data() {
                return Err(io_err("fdatasync", &self.active_seg.path)(e));
            }
            self.unsynced = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Number of records appended and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Up to `max` unacknowledged durable records with a sequence number above `after_seq`
    /// (all of them when `None`), oldest first. A record that fails its CRC on read (storage
    /// corruption since `open`) is dropped, counted and logged rather than blocking the queue
    /// forever, hence `&mut self`.
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
                if wanted.len() >= max || e.seq >= self.durable {
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
            if let Some(hit) = self.cached(e.seq) {
                out.push(hit.clone());
                continue;
            }
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
            match decode_any(&buf, seg.legacy) {
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
        let dropped = corrupt.len() as u64;
        self.ack_many(&corrupt);
        self.stats.acked_total = self.stats.acked_total.saturating_sub(dropped);
        self.stats.dropped_total += dropped;
        Ok(out)
    }

    fn cached(&self, seq: u64) -> Option<&SpoolEntry> {
        let i = self.cache.partition_point(|e| e.seq < seq);
        self.cache.get(i).filter(|e| e.seq == seq)
    }

    /// Marks a record as delivered. Acks may come in any order; unknown, dropped or repeated
    /// sequence numbers are ignored. Never fails: an acknowledgement that cannot be written
    /// (disk full) is kept in memory and written with the next compaction; losing it would
    /// only mean a duplicate publish after a restart.
    pub fn ack(&mut self, seq: u64) {
        self.ack_many(&[seq]);
    }

    /// [`Self::ack`] for several records, in one write to the acknowledgement log.
    pub fn ack_many(&mut self, seqs: &[u64]) {
        let mut buf = Vec::with_capacity(seqs.len() * ACK_RECORD);
        for &seq in seqs {
            if seq < self.cursor || self.acked_above.contains(&seq) || !self.is_live(seq) {
                continue;
            }
            buf.extend_from_slice(&encode_ack(ACK_KIND_ONE, seq));
            self.acked_above.insert(seq);
            self.pending = self.pending.saturating_sub(1);
            self.stats.acked_total += 1;
        }
        if buf.is_empty() {
            return;
        }
        if !self.ack_log_dirty {
            match self.ack_log.write_all(&buf) {
                Ok(()) => self.ack_log_bytes += buf.len() as u64,
                Err(e) => {
                    tracing::warn!(
                        "spool: acknowledgements not written to {ACK_LOG} ({e}); kept in memory, rewritten when the disk allows"
                    );
                    self.ack_log_dirty = true;
                }
            }
        }
        self.advance_cursor();
        self.delete_acked_segments();
        self.cache_trim();
        if self.ack_log_dirty || self.ack_log_bytes > ACK_LOG_COMPACT_BYTES {
            match self.compact_ack_log() {
                Ok(()) => {
                    if self.ack_log_dirty {
                        tracing::info!("spool: {ACK_LOG} written again");
                    }
                    self.ack_log_dirty = false;
                }
                Err(e) => {
                    if !self.ack_log_dirty {
                        tracing::warn!("spool: {ACK_LOG} compaction failed: {e}");
                    }
                    self.ack_log_dirty = true;
                }
            }
        }
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

    /// Deletes leading closed segments whose records are all acknowledged. A segment that
    /// cannot be deleted now is tried again at the next acknowledgement.
    fn delete_acked_segments(&mut self) {
        while let Some(front) = self.closed.front() {
            if front.last_seq().is_some_and(|l| l >= self.cursor) {
                break;
            }
            let path = front.path.clone();
            if let Err(e) = remove_segment(&path) {
                tracing::warn!("{e}");
                break;
            }
            self.closed.pop_front();
        }
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
            let Some(seg) = self.closed.front() else {
                continue;
            };
            let lost = seg
                .entries
                .iter()
                .filter(|e| e.seq >= self.cursor && !self.acked_above.contains(&e.seq))
                .count();
            remove_segment(&seg.path)?;
            let Some(seg) = self.closed.pop_front() else {
                continue;
            };
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
            self.cache_trim();
        }
    }

    /// Closes the active segment and starts a new one named after the next sequence number.
    fn rotate(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        let base = self.next_seq;
        let path = self.cfg.dir.join(segment_name(base));
        let active = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .and_then(|f| {
                drop(f);
                OpenOptions::new().append(true).open(&path)
            })
            .map_err(io_err("create", &path))?;
        // The new segment's name carries next_seq; make it durable before records land in it.
        if let Err(e) = fsync_dir(&self.cfg.dir) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.active = active;
        let old = std::mem::replace(
            &mut self.active_seg,
            Segment {
                base,
                path,
                bytes: 0,
                entries: Vec::new(),
                legacy: false,
            },
        );
        self.closed.push_back(old);
        self.delete_acked_segments();
        Ok(())
    }

    fn compact_ack_log(&mut self) -> Result<(), SpoolError> {
        let tmp = self.cfg.dir.join(ACK_LOG_TMP);
        let path = self.cfg.dir.join(ACK_LOG);
        let mut buf = Vec::with_capacity((1 + self.acked_above.len()) * ACK_RECORD);
        buf.extend_from_slice(&encode_ack(ACK_KIND_FLOOR, self.cursor));
        for &seq in &self.acked_above {
            buf.extend_from_slice(&encode_ack(ACK_KIND_ONE, seq));
        }
        let written = File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&buf)?;
                f.sync_all()
            })
            .map_err(io_err("write", &tmp));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
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

fn check_config(cfg: &SpoolConfig) -> Result<(), SpoolError> {
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
    Ok(())
}

/// Applies what a scan found: damaged records copied to the quarantine directory (logged,
/// counted), a torn tail cut off.
fn recover_segment(
    dir: &Path,
    path: &Path,
    scan: &Scan,
    stats: &mut SpoolStats,
) -> Result<(), SpoolError> {
    for d in &scan.damaged {
        stats.quarantined += 1;
        stats.quarantined_bytes += d.len;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment");
        let qdir = dir.join(QUARANTINE_DIR);
        let qpath = qdir.join(format!("{name}.{:010}.bad", d.offset));
        let bytes = usize::try_from(d.offset)
            .ok()
            .and_then(|o| scan.data.get(o..o + d.len as usize))
            .unwrap_or_default();
        let saved = fs::create_dir_all(&qdir).and_then(|_| fs::write(&qpath, bytes));
        tracing::warn!(
            segment = %path.display(),
            offset = d.offset,
            bytes = d.len,
            "spool: damaged record skipped ({}); {}",
            d.reason,
            match saved {
                Ok(()) => format!("bytes saved to {}", qpath.display()),
                Err(e) => format!("could not save its bytes: {e}"),
            }
        );
    }
    if let Some(reason) = &scan.tail_reason {
        tracing::warn!(
            segment = %path.display(),
            offset = scan.valid_len,
            cut = scan.file_len - scan.valid_len,
            "spool: truncating damaged segment tail: {reason}"
        );
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                f.set_len(scan.valid_len)?;
                f.sync_all()
            })
            .map_err(io_err("truncate", path))?;
        stats.truncated_bytes += scan.file_len - scan.valid_len;
    }
    Ok(())
}

fn remove_segment(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("delete", path)(e)),
    }
}

/// Shared, clonable access to a [`Spool`] for the daemon's tasks, plus what cannot be made
/// durable while the disk refuses writes (see [`writer`]).
#[derive(Clone, Debug)]
pub struct SpoolHandle {
    inner: Arc<Mutex<Spool>>,
    notify: Arc<tokio::sync::Notify>,
    fsync: FsyncPolicy,
    volatile: Arc<Mutex<Volatile>>,
}

/// A reading that could not be written to the spool (disk full, I/O error), waiting in
/// memory for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDurable {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The bounded in-memory queue of readings not made durable, and the disk episode.
#[derive(Debug, Default)]
struct Volatile {
    queue: VecDeque<NotDurable>,
    max: usize,
    /// Readings ever queued here, and dropped from it because it was full.
    total: u64,
    dropped: u64,
    /// Why writes fail, while they do (`spool: disk full`); `None` once a write succeeded.
    disk_problem: Option<String>,
    episodes: u64,
}

/// The disk side of the spool, for the health document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskHealth {
    /// `spool: disk full` (or the I/O error) while spool writes fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Readings waiting in memory for the broker because they could not be spooled.
    pub not_durable: usize,
    pub not_durable_total: u64,
    /// Not-durable readings lost because that queue was full (broker down and disk full).
    pub not_durable_dropped: u64,
    /// How many times writes started failing.
    pub episodes: u64,
}

/// Default bound of the in-memory queue of not-durable readings.
pub const NOT_DURABLE_MAX: usize = 10_000;

/// `spool: disk full` for ENOSPC/EDQUOT, else the error itself.
fn disk_problem(e: &SpoolError) -> String {
    if let SpoolError::Io { source, .. } = e {
        if matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) {
            return "spool: disk full".to_owned();
        }
    }
    e.to_string()
}

impl SpoolHandle {
    pub fn new(spool: Spool) -> Self {
        let fsync = spool.config().fsync;
        SpoolHandle {
            inner: Arc::new(Mutex::new(spool)),
            notify: Arc::new(tokio::sync::Notify::new()),
            fsync,
            volatile: Arc::new(Mutex::new(Volatile {
                max: NOT_DURABLE_MAX,
                ..Volatile::default()
            })),
        }
    }

    /// Bounds the in-memory queue of not-durable readings (at least 1).
    pub fn set_not_durable_max(&self, max: usize) {
        if let Ok(mut v) = self.volatile.lock() {
            v.max = max.max(1);
        }
    }

    /// Locks the spool for direct use from synchronous code. Keep the guard short-lived and
    /// never hold it across `.await`.
    pub fn lock(&self) -> Result<MutexGuard<'_, Spool>, SpoolError> {
        self.inner.lock().map_err(|_| SpoolError::Poisoned)
    }

    /// Appends one record and commits it (blocking: may fsync).
    pub fn append_blocking(&self, topic: &str, payload: &[u8]) -> Result<u64, SpoolError> {
        let seq = self.lock()?.append(topic, payload)?;
        self.notify.notify_one();
        Ok(seq)
    }

    /// Group commit of a batch: one write, one fsync (outside the lock, so the publisher
    /// keeps going meanwhile), then the records become visible to the publisher. Items that
    /// could not be written go to the not-durable queue, and the disk episode is tracked.
    /// Blocking. Returns how many items were made durable.
    pub fn commit_batch(&self, items: &[(String, Vec<u8>)]) -> usize {
        let mut valid: Vec<(&str, &[u8])> = Vec::with_capacity(items.len());
        let (written, error, target) = match self.lock() {
            Ok(mut spool) => {
                for (topic, payload) in items {
                    match spool.check_record(topic, payload) {
                        Ok(()) => valid.push((topic, payload)),
                        Err(e) => tracing::error!("spool: record for {topic} refused: {e}"),
                    }
                }
                let batch = spool.write_batch(&valid);
                let target = match self.fsync {
                    FsyncPolicy::Always => spool.sync_target(),
                    FsyncPolicy::Interval(_) => spool.commit().map(|()| (None, spool.next_seq)),
                };
                (batch.written, batch.error, target)
            }
            Err(e) => (0, Some(e), Ok((None, 0))),
        };
        let mut error = error;
        let mut durable = written;
        match target {
            Ok((Some(file), upto)) => match file.sync_data() {
                Ok(()) => {
                    if let Ok(mut spool) = self.lock() {
                        spool.mark_durable(upto);
                    }
                }
                Err(e) => {
                    // Written but perhaps not on the disk: also keep a copy in memory. A
                    // later successful fsync publishes the spooled copy too (a duplicate,
                    // which at-least-once allows).
                    let path = self
                        .lock()
                        .map(|s| s.active_seg.path.clone())
                        .unwrap_or_default();
                    error.get_or_insert(io_err("fdatasync", &path)(e));
                    durable = 0;
                }
            },
            Ok((None, upto)) => {
                if let Ok(mut spool) = self.lock() {
                    spool.mark_durable(upto);
                }
            }
            Err(e) => {
                error.get_or_insert(e);
                durable = 0;
            }
        }
        self.note_outcome(valid.get(durable..).unwrap_or_default(), error.as_ref());
        self.notify.notify_one();
        durable
    }

    /// Queues what was not made durable and logs a disk episode once at its start and end.
    fn note_outcome(&self, not_durable: &[(&str, &[u8])], error: Option<&SpoolError>) {
        let Ok(mut v) = self.volatile.lock() else {
            return;
        };
        match error {
            Some(e) => {
                let problem = disk_problem(e);
                if v.disk_problem.is_none() {
                    v.episodes += 1;
                    tracing::error!(
                        "{problem}: readings go to the broker from memory (at most {}) until spool writes succeed again ({e})",
                        v.max
                    );
                }
                v.disk_problem = Some(problem);
            }
            None => {
                if v.disk_problem.take().is_some() {
                    tracing::warn!("spool: writes succeed again; readings are durable again");
                }
            }
        }
        for (topic, payload) in not_durable {
            if v.queue.len() >= v.max {
                v.queue.pop_front();
                v.dropped += 1;
            }
            v.queue.push_back(NotDurable {
                topic: (*topic).to_owned(),
                payload: payload.to_vec(),
            });
            v.total += 1;
        }
    }

    /// Up to `max` not-durable readings, taken out of the queue (the publisher gives back
    /// those the broker did not acknowledge with [`Self::return_not_durable`]).
    pub fn take_not_durable(&self, max: usize) -> Vec<NotDurable> {
        let Ok(mut v) = self.volatile.lock() else {
            return Vec::new();
        };
        let n = max.min(v.queue.len());
        v.queue.drain(..n).collect()
    }

    /// Puts unacknowledged not-durable readings back at the front, oldest first.
    pub fn return_not_durable(&self, entries: Vec<NotDurable>) {
        if let Ok(mut v) = self.volatile.lock() {
            for e in entries.into_iter().rev() {
                v.queue.push_front(e);
            }
            while v.queue.len() > v.max {
                v.queue.pop_back();
                v.dropped += 1;
            }
        }
    }

    pub fn disk_health(&self) -> DiskHealth {
        match self.volatile.lock() {
            Ok(v) => DiskHealth {
                problem: v.disk_problem.clone(),
                not_durable: v.queue.len(),
                not_durable_total: v.total,
                not_durable_dropped: v.dropped,
                episodes: v.episodes,
            },
            Err(_) => DiskHealth::default(),
        }
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

    /// Acknowledges several records in one trip to the blocking pool and one log write.
    pub async fn ack_many(&self, seqs: Vec<u64>) -> Result<(), SpoolError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let h = self.clone();
        spawn_blocking(move || {
            h.lock()?.ack_many(&seqs);
            Ok(())
        })
        .await
    }

    pub async fn sync(&self) -> Result<(), SpoolError> {
        let h = self.clone();
        spawn_blocking(move || h.lock()?.sync()).await
    }

    /// Readings not yet acknowledged by the broker: spooled ones plus not-durable ones.
    pub fn pending(&self) -> Result<usize, SpoolError> {
        Ok(self.lock()?.pending() + self.disk_health().not_durable)
    }

    pub fn stats(&self) -> Result<SpoolStats, SpoolError> {
        Ok(self.lock()?.stats())
    }

    /// Resolves after the next commit (or immediately if one happened since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// For [`FsyncPolicy::Interval`]: syncs every `period` until `shutdown` fires, then a last
    /// time, so a quiet spool does not keep unsynced records indefinitely. Errors are logged
    /// and retried at the next tick.
    pub async fn sync_periodically(self, period: Duration, shutdown: crate::shutdown::Shutdown) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.recv() => break,
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
