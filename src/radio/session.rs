//! Async receiver sessions: open, initialise, read, recover.
//!
//! [`run`] is the one entry point the daemon uses. It never gives up on I/O errors: a
//! lost device is reported, then reopened under the same path with exponential backoff
//! and initialised again (mode, RSSI). Silence longer than the watchdog triggers a
//! polite liveness check (ping / firmware query / version) rather than a blind reset;
//! only when that goes unanswered is the port reopened.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_serial::SerialPortBuilderExt;

use super::{
    amb8465, combine_modes, cul, im871a, replay, rtlwmbus, DongleInfo, DriverKind, Line,
    LineSplitter,
};
use crate::frame::{CrcState, LinkMode, RadioFrame};

/// What to receive from and how.
#[derive(Debug, Clone)]
pub struct RadioSpec {
    pub driver: DriverKind,
    /// tty path, replay file, or the rtl_wmbus command line for `rtlwmbus` ("-" = stdin).
    pub device: String,
    /// Requested link modes; see [`combine_modes`].
    pub modes: Vec<LinkMode>,
    /// Serial speed; None = the dongle family's default.
    pub baud: Option<u32>,
    /// Silence longer than this triggers a liveness check and, if unanswered, a reopen.
    /// Zero disables the watchdog.
    pub watchdog: Duration,
    /// Spacing between replayed telegrams (zero = as fast as the channel takes them).
    pub replay_interval: Duration,
    /// Name used as the frame source (falls back to `device` when empty).
    pub name: String,
    /// Replay: a line's recorded time is the time of reception (`clock = "recorded"`).
    pub recorded_clock: bool,
}

/// Session life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadioState {
    Opening,
    Ready {
        dongle: String,
    },
    Lost {
        reason: String,
    },
    /// Stopped for good: a setting that no reopening can fix.
    Failed {
        reason: String,
    },
}

/// What a session reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RadioEvent {
    Frame(RadioFrame),
    /// Bytes or lines the receiver produced that were not a usable telegram.
    Bad {
        source: String,
        reason: String,
    },
    State {
        source: String,
        state: RadioState,
    },
    /// A replay file has been sent completely; the replay session has ended.
    ReplayFinished,
}

/// Why a probe found nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe {path}: cannot open: {source}")]
    Open {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("probe {path}: I/O error: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("probe {path}: no iM871A, AMB8465 or CUL answered")]
    NoAnswer { path: String },
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long to wait for the answer to one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read poll interval; also how long a partial binary frame may sit before it is
/// declared truncated (a full 266-byte HCI frame takes 46 ms at 57600 baud).
const TICK: Duration = Duration::from_millis(200);

struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }
}

/// Event sink with the session's source name; `Err(())` means nobody listens any more.
struct Reporter {
    source: String,
    events: mpsc::Sender<RadioEvent>,
}

impl Reporter {
    async fn send(&self, ev: RadioEvent) -> Result<(), ()> {
        self.events.send(ev).await.map_err(|_| ())
    }
    async fn state(&self, state: RadioState) -> Result<(), ()> {
        if let RadioState::Lost { reason } = &state {
            tracing::warn!(source = %self.source, %reason, "radio lost");
        }
        self.send(RadioEvent::State {
            source: self.source.clone(),
            state,
        })
        .await
    }
    async fn bad(&self, reason: String) -> Result<(), ()> {
        tracing::debug!(source = %self.source, %reason, "bad frame");
        self.send(RadioEvent::Bad {
            source: self.source.clone(),
            reason,
        })
        .await
    }
    fn frame(
        &self,
        bytes: Vec<u8>,
        rssi_dbm: Option<f32>,
        mode: Option<LinkMode>,
        crc: CrcState,
    ) -> RadioEvent {
        RadioEvent::Frame(RadioFrame {
            bytes,
            rssi_dbm,
            link_mode: mode,
            received_at: Some(SystemTime::now()),
            source: Some(self.source.clone()),
            crc,
            lenient_length: false,
        })
    }
}

fn is_shutdown(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow()
}

/// Resolves when shutdown is requested (or its sender is gone).
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps `d`; false if shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = wait_shutdown(shutdown) => false,
    }
}

/// Runs a receiver until `shutdown` becomes true (replay: until the file is done).
pub async fn run(
    spec: RadioSpec,
    events: mpsc::Sender<RadioEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = if spec.name.is_empty() {
        spec.device.clone()
    } else {
        spec.name.clone()
    };
    let rep = Reporter { source, events };
    let _ = match spec.driver {
        DriverKind::Replay => run_replay(&spec, &rep, &mut shutdown).await,
        DriverKind::RtlWmbus => run_rtlwmbus(&spec, &rep, &mut shutdown).await,
        DriverKind::Im871a | DriverKind::Amb8465 | DriverKind::Cul | DriverKind::Auto => {
            run_serial(&spec, &rep, &mut shutdown).await
        }
    };
}

// ---------------------------------------------------------------------------------------
// Replay

async fn run_replay(
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ()> {
    let mut backoff = Backoff::new();
    let text = loop {
        rep.state(RadioState::Opening).await?;
        match tokio::fs::read_to_string(&spec.device).await {
            Ok(t) => break t,
            Err(e) => {
                rep.state(RadioState::Lost {
                    reason: format!("cannot read replay file {}: {e}", spec.device),
                })
                .await?;
                if !sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                    return Ok(());
                }
            }
        }
    };
    rep.state(RadioState::Ready {
        dongle: format!("replay {}", spec.device),
    })
    .await?;
    let mut first = true;
    for item in replay::parse_text(&text) {
        if is_shutdown(shutdown) {
            return Ok(());
        }
        if !first
            && !spec.replay_interval.is_zero()
            && !sleep_or_shutdown(spec.replay_interval, shutdown).await
        {
            return Ok(());
        }
        first = false;
        match item {
            // A replayed capture: the decoder reads the CRC layout from the bytes.
            Ok(t) => {
                let mut event = rep.frame(t.frame, t.rssi_dbm, None, CrcState::Recorded);
                if let (true, Some(at), RadioEvent::Frame(f)) =
                    (spec.recorded_clock, t.recorded_at, &mut event)
                {
                    f.received_at = Some(at);
                }
                rep.send(event).await?
            }
            Err(e) => rep.bad(e.to_string()).await?,
        }
    }
    rep.send(RadioEvent::ReplayFinished).await
}

// ---------------------------------------------------------------------------------------
// rtl-wmbus

async fn run_rtlwmbus(
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ()> {
    if spec.device == "-" {
        rep.state(RadioState::Ready {
            dongle: "rtl-wmbus (stdin)".into(),
        })
        .await?;
        // Standard input cannot be restarted, so the watchdog would only end reception.
        let stdin_spec = RadioSpec {
            watchdog: Duration::ZERO,
            ..spec.clone()
        };
        let reason = read_rtl_lines(tokio::io::stdin(), &stdin_spec, rep, shutdown).await?;
        if is_shutdown(shutdown) {
            return Ok(());
        }
        // Standard input cannot be reopened: report and idle until shutdown.
        rep.state(RadioState::Lost { reason }).await?;
        wait_shutdown(shutdown).await;
        return Ok(());
    }
    let mut backoff = Backoff::new();
    loop {
        if is_shutdown(shutdown) {
            return Ok(());
        }
        rep.state(RadioState::Opening).await?;
        let spawned = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&spec.device)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            // Own process group, so stopping it also stops the pipeline `sh` started
            // (rtl_sdr would otherwise keep the SDR busy for the restarted instance).
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let reason = match spawned {
            Err(e) => format!("cannot start {:?}: {e}", spec.device),
            Ok(mut child) => match child.stdout.take() {
                None => "child has no stdout".to_string(),
                Some(stdout) => {
                    rep.state(RadioState::Ready {
                        dongle: format!("rtl-wmbus ({})", spec.device),
                    })
                    .await?;
                    let started = Instant::now();
                    let reason = read_rtl_lines(stdout, spec, rep, shutdown).await?;
                    let status = stop_process_group(&mut child).await;
                    if started.elapsed() > BACKOFF_MAX {
                        backoff.reset();
                    }
                    match status {
                        Ok(s) => format!("{reason} ({s})"),
                        Err(_) => reason,
                    }
                }
            },
        };
        if is_shutdown(shutdown) {
            return Ok(());
        }
        rep.state(RadioState::Lost { reason }).await?;
        if !sleep_or_shutdown(backoff.next_delay(), shutdown).await {
            return Ok(());
        }
    }
}

/// Terminates the child's process group: SIGTERM, then SIGKILL if it lingers.
async fn stop_process_group(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pgid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        // SAFETY: kill(2) with a negative pid signals the group we created; no memory
        // is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        if let Ok(status) = tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            // The shell may be gone while members of its pipeline still run.
            // SAFETY: as above.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            return status;
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    child.wait().await
}

/// Reads rtl-wmbus lines until EOF, error, watchdog or shutdown; returns why it stopped.
async fn read_rtl_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<String, ()> {
    let mut lines = LineSplitter::new(rtlwmbus::MAX_LINE);
    let mut buf = vec![0u8; 4096];
    let mut last_rx = Instant::now();
    loop {
        // `read` is cancel-safe, so losing the race against the tick drops no bytes.
        let read = tokio::select! {
            r = reader.read(&mut buf) => r,
            _ = tokio::time::sleep(TICK) => {
                if !spec.watchdog.is_zero() && last_rx.elapsed() > spec.watchdog {
                    return Ok(format!("watchdog: no output for {:?}", spec.watchdog));
                }
                continue;
            }
            _ = wait_shutdown(shutdown) => return Ok("shutdown".into()),
        };
        let n = match read {
            Ok(0) => return Ok("end of output".into()),
            Err(e) => return Ok(format!("read error: {e}")),
            Ok(n) => n,
        };
        last_rx = Instant::now();
        lines.push(buf.get(..n).unwrap_or(&[]));
        while let Some(line) = lines.next_line() {
            let text = match line {
                Line::Overlong { discarded } => {
                    rep.bad(rtlwmbus::Error::Overlong { discarded }.to_string())
                        .await?;
                    continue;
                }
                Line::Text(t) => t,
            };
            match rtlwmbus::parse_line(&text) {
                Ok(rtlwmbus::RtlLine::Telegrams(ts)) => {
                    for t in ts {
                        if let Some(old) = t.original_l {
                            tracing::warn!(source = %rep.source, old_l = old, "rtl-wmbus sent a wrong L-field; fixed from the hex length");
                        }
                        let crc = CrcState::Checked(None);
                        rep.send(rep.frame(t.frame, None, Some(t.link_mode), crc))
                            .await?;
                    }
                }
                Ok(rtlwmbus::RtlLine::Chatter(c)) => {
                    if !c.is_empty() {
                        tracing::debug!(source = %rep.source, line = %c, "rtl-wmbus");
                    }
                }
                // The receiver's own CRC verdict: handed on, so that the failure is
                // counted (class `crc`) against the meter the header names.
                Err(rtlwmbus::Error::CrcFailed { .. }) => {
                    let failed = rtlwmbus::crc_failed_telegrams(&text);
                    if failed.is_empty() {
                        rep.bad(format!("rtlwmbus: unreadable CRC-failed line {text:?}"))
                            .await?;
                    }
                    for (mode, bytes) in failed {
                        rep.send(rep.frame(bytes, None, Some(mode), CrcState::Failed(None)))
                            .await?;
                    }
                }
                Err(e) => rep.bad(e.to_string()).await?,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Serial dongles

/// A reply to a request, in a form common to all serial drivers.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    ImPing,
    ImDeviceInfo(im871a::DeviceInfo),
    ImSetConfig(Option<u8>),
    AmFirmware(amb8465::Firmware),
    AmSetMode(u8),
    AmGet { addr: u8, values: Vec<u8> },
    AmSet(u8),
    AmReset(u8),
    CulVersion(String),
    CulModeAck(LinkMode),
    CulStatus(String),
}

enum Item {
    Frame(RadioFrame),
    Bad(String),
    Reply(Reply),
}

/// Driver state between the bytes and the events.
enum Codec {
    Im871a(im871a::Decoder),
    Amber(amb8465::Decoder),
    Cul(LineSplitter),
}

impl Codec {
    fn new(kind: DriverKind) -> Option<Codec> {
        match kind {
            DriverKind::Im871a => Some(Codec::Im871a(im871a::Decoder::new())),
            DriverKind::Amb8465 => Some(Codec::Amber(amb8465::Decoder::new(true))),
            DriverKind::Cul => Some(Codec::Cul(LineSplitter::new(cul::MAX_LINE))),
            _ => None,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self {
            Codec::Im871a(d) => d.push(bytes),
            Codec::Amber(d) => d.push(bytes),
            Codec::Cul(d) => d.push(bytes),
        }
    }

    /// Decodes everything buffered.
    fn drain(&mut self, mode: LinkMode, rep: &Reporter, out: &mut Vec<Item>) {
        match self {
            Codec::Im871a(d) => {
                while let Some(item) = d.next_message() {
                    out.push(match item {
                        Ok(im871a::Message::DataIndication {
                            frame, rssi_dbm, ..
                        }) => Item::Frame(frame_of(
                            rep,
                            frame,
                            rssi_dbm,
                            mode,
                            CrcState::Checked(None),
                        )),
                        Ok(im871a::Message::PingRsp) => Item::Reply(Reply::ImPing),
                        Ok(im871a::Message::DeviceInfo(i)) => Item::Reply(Reply::ImDeviceInfo(i)),
                        Ok(im871a::Message::SetConfigRsp { status }) => {
                            Item::Reply(Reply::ImSetConfig(status))
                        }
                        Ok(other) => {
                            tracing::debug!(source = %rep.source, ?other, "iM871A message ignored");
                            continue;
                        }
                        Err(e) => Item::Bad(e.to_string()),
                    });
                }
            }
            Codec::Amber(d) => {
                while let Some(item) = d.next_message() {
                    out.push(match item {
                        Ok(amb8465::Message::DataIndication { frame, rssi_dbm, .. }) => {
                            Item::Frame(frame_of(
                                rep,
                                frame,
                                rssi_dbm,
                                mode,
                                CrcState::Checked(None),
                            ))
                        }
                        Ok(amb8465::Message::Firmware(f)) => Item::Reply(Reply::AmFirmware(f)),
                        Ok(amb8465::Message::SetModeRsp { status }) => {
                            Item::Reply(Reply::AmSetMode(status))
                        }
                        Ok(amb8465::Message::GetRsp { addr, values }) => {
                            Item::Reply(Reply::AmGet { addr, values })
                        }
                        Ok(amb8465::Message::SetRsp { status }) => Item::Reply(Reply::AmSet(status)),
                        Ok(amb8465::Message::ResetRsp { status }) => {
                            Item::Reply(Reply::AmReset(status))
                        }
                        Ok(other) => {
                            tracing::debug!(source = %rep.source, ?other, "AMB8465 message ignored");
                            continue;
                        }
                        Err(e) => Item::Bad(e.to_string()),
                    });
                }
            }
            Codec::Cul(d) => {
                while let Some(line) = d.next_line() {
                    out.push(match line {
                        Line::Overlong { discarded } => {
                            Item::Bad(cul::Error::Overlong { discarded }.to_string())
                        }
                        Line::Text(t) if t.trim().is_empty() => continue,
                        Line::Text(t) => match cul::parse_line(&t, true) {
                            Ok(cul::CulLine::Telegram(tg)) => Item::Frame(frame_of(
                                rep,
                                tg.frame,
                                tg.rssi_dbm,
                                mode,
                                CrcState::Checked(Some(tg.format)),
                            )),
                            // Handed on with its CRCs: the decoder names the failing
                            // block and counts the error against the meter.
                            Err(cul::Error::Crc { .. }) => match cul::raw_telegram(&t, true) {
                                Some((format, raw, rssi)) => Item::Frame(frame_of(
                                    rep,
                                    raw,
                                    rssi,
                                    mode,
                                    CrcState::Present(format),
                                )),
                                None => Item::Bad(format!("cul: unreadable CRC-failed line {t:?}")),
                            },
                            Ok(cul::CulLine::Version(v)) => Item::Reply(Reply::CulVersion(v)),
                            Ok(cul::CulLine::ModeAck(m)) => Item::Reply(Reply::CulModeAck(m)),
                            Ok(cul::CulLine::Status(s)) => Item::Reply(Reply::CulStatus(s)),
                            Err(e) => Item::Bad(e.to_string()),
                        },
                    });
                }
            }
        }
    }

    /// The line went idle: a partial binary frame can no longer complete.
    fn flush_stale(&mut self) -> Option<String> {
        match self {
            Codec::Im871a(d) => d.flush_stale().map(|e| e.to_string()),
            Codec::Amber(d) => d.flush_stale().map(|e| e.to_string()),
            // A line without newline just waits; culfw always ends lines.
            Codec::Cul(_) => None,
        }
    }

    fn liveness_request(&self) -> Vec<u8> {
        match self {
            Codec::Im871a(_) => im871a::ping().encode().unwrap_or_default(),
            Codec::Amber(_) => amb8465::firmware_version().encode().unwrap_or_default(),
            Codec::Cul(_) => cul::CMD_VERSION.as_bytes().to_vec(),
        }
    }
}

/// A frame from a dongle; `crc` is what the dongle says about the DLL CRCs.
fn frame_of(
    rep: &Reporter,
    bytes: Vec<u8>,
    rssi_dbm: Option<f32>,
    mode: LinkMode,
    crc: CrcState,
) -> RadioFrame {
    RadioFrame {
        bytes,
        rssi_dbm,
        link_mode: Some(mode),
        received_at: Some(SystemTime::now()),
        source: Some(rep.source.clone()),
        crc,
        lenient_length: false,
    }
}

/// What a session reads and writes: a serial port, or a TCP connection to ser2net or an
/// Ethernet-serial converter (`tcp://host:port`) carrying the same dongle protocol.
trait Io: AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// How long a network converter may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The TCP address of a `tcp://host:port` device, None for a serial path.
pub fn tcp_address(device: &str) -> Option<&str> {
    device.strip_prefix("tcp://")
}

async fn open_io(path: &str, baud: u32) -> Result<Box<dyn Io>, String> {
    let Some(address) = tcp_address(path) else {
        let serial = tokio_serial::new(path, baud)
            .open_native_async()
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        return Ok(Box::new(serial));
    };
    let connect = tokio::net::TcpStream::connect(address);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("cannot connect to {address}: {e}")),
        Err(_) => return Err(format!("cannot connect to {address}: no answer within 5 s")),
    };
    // Dongle commands are a few bytes; send them at once.
    let _ = tcp.set_nodelay(true);
    Ok(Box::new(tcp))
}

/// An open port with its codec, forwarding telegrams while waiting for replies.
struct Port {
    stream: Box<dyn Io>,
    codec: Codec,
    mode: LinkMode,
    buf: Vec<u8>,
    last_rx: Instant,
    /// A telegram arrived (used to reset the backoff).
    healthy: bool,
}

enum Stop {
    Shutdown,
    Lost(String),
    Closed,
}

impl From<()> for Stop {
    fn from(_: ()) -> Self {
        Stop::Closed
    }
}

impl Port {
    async fn open(path: &str, baud: u32, codec: Codec, mode: LinkMode) -> Result<Port, String> {
        let stream = open_io(path, baud).await?;
        Ok(Port {
            stream,
            codec,
            mode,
            buf: vec![0u8; 1024],
            last_rx: Instant::now(),
            healthy: false,
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| Stop::Lost(format!("write failed: {e}")))?;
        self.stream
            .flush()
            .await
            .map_err(|e| Stop::Lost(format!("write failed: {e}")))
    }

    /// Reads once (at most one TICK) and turns the bytes into items.
    async fn read_items(
        &mut self,
        rep: &Reporter,
        shutdown: &mut watch::Receiver<bool>,
        out: &mut Vec<Item>,
    ) -> Result<(), Stop> {
        let read = tokio::select! {
            r = tokio::time::timeout(TICK, self.stream.read(&mut self.buf)) => r,
            _ = wait_shutdown(shutdown) => return Err(Stop::Shutdown),
        };
        match read {
            Ok(Ok(0)) => Err(Stop::Lost("device closed (end of file)".into())),
            Ok(Ok(n)) => {
                self.last_rx = Instant::now();
                self.codec.push(self.buf.get(..n).unwrap_or(&[]));
                self.codec.drain(self.mode, rep, out);
                Ok(())
            }
            Ok(Err(e)) => Err(Stop::Lost(format!("read failed: {e}"))),
            Err(_idle) => {
                while let Some(reason) = self.codec.flush_stale() {
                    out.push(Item::Bad(reason));
                    self.codec.drain(self.mode, rep, out);
                }
                Ok(())
            }
        }
    }

    /// Forwards frames and bad reports; returns the replies.
    async fn dispatch(&mut self, rep: &Reporter, items: Vec<Item>) -> Result<Vec<Reply>, Stop> {
        let mut replies = Vec::new();
        for item in items {
            match item {
                Item::Frame(f) => {
                    self.healthy = true;
                    rep.send(RadioEvent::Frame(f)).await?;
                }
                Item::Bad(reason) => rep.bad(reason).await?,
                Item::Reply(r) => replies.push(r),
            }
        }
        Ok(replies)
    }

    /// Sends `request` and waits for the first reply `accept` maps to Some.
    async fn transact<T>(
        &mut self,
        rep: &Reporter,
        shutdown: &mut watch::Receiver<bool>,
        request: &[u8],
        what: &str,
        accept: impl Fn(&Reply) -> Option<T>,
    ) -> Result<T, Stop> {
        self.write(request).await?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while Instant::now() < deadline {
            let mut items = Vec::new();
            self.read_items(rep, shutdown, &mut items).await?;
            for r in self.dispatch(rep, items).await? {
                if let Some(t) = accept(&r) {
                    return Ok(t);
                }
            }
        }
        Err(Stop::Lost(format!("no answer to {what}")))
    }
}

fn request_bytes<E: std::fmt::Display>(r: Result<Vec<u8>, E>) -> Result<Vec<u8>, Stop> {
    r.map_err(|e| Stop::Lost(format!("cannot build request: {e}")))
}

/// Brings the dongle into receive mode; returns its description.
async fn initialise(
    port: &mut Port,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<String, Stop> {
    let mode = port.mode;
    match port.codec {
        Codec::Im871a(_) => {
            let ping = request_bytes(im871a::ping().encode())?;
            port.transact(rep, shutdown, &ping, "iM871A ping", |r| {
                (*r == Reply::ImPing).then_some(())
            })
            .await?;
            let req = request_bytes(im871a::get_device_info().encode())?;
            let info = port
                .transact(rep, shutdown, &req, "iM871A device info", |r| match r {
                    Reply::ImDeviceInfo(i) => Some(*i),
                    _ => None,
                })
                .await?;
            let req = request_bytes(im871a::set_link_mode(mode).and_then(|f| f.encode()))?;
            let status = port
                .transact(rep, shutdown, &req, "iM871A set link mode", |r| match r {
                    Reply::ImSetConfig(s) => Some(*s),
                    _ => None,
                })
                .await?;
            if let Some(s @ 1..) = status {
                return Err(Stop::Lost(format!(
                    "iM871A rejected link mode {mode} (status {s})"
                )));
            }
            Ok(info.description())
        }
        Codec::Amber(_) => {
            let req = request_bytes(amb8465::firmware_version().encode())?;
            let fw = port
                .transact(
                    rep,
                    shutdown,
                    &req,
                    "AMB8465 firmware version",
                    |r| match r {
                        Reply::AmFirmware(f) => Some(*f),
                        _ => None,
                    },
                )
                .await?;
            let mut reset_done = false;
            loop {
                let get = |addr: u8| {
                    move |r: &Reply| match r {
                        Reply::AmGet { addr: a, values } if *a == addr => values.first().copied(),
                        _ => None,
                    }
                };
                let req = request_bytes(
                    amb8465::get_params(amb8465::PARAM_UART_CMD_OUT_ENABLE, 1).encode(),
                )?;
                let cmd_out = port
                    .transact(
                        rep,
                        shutdown,
                        &req,
                        "AMB8465 GET UART_CMD_Out_Enable",
                        get(amb8465::PARAM_UART_CMD_OUT_ENABLE),
                    )
                    .await?;
                let req =
                    request_bytes(amb8465::get_params(amb8465::PARAM_RSSI_ENABLE, 1).encode())?;
                let rssi = port
                    .transact(
                        rep,
                        shutdown,
                        &req,
                        "AMB8465 GET RSSI_Enable",
                        get(amb8465::PARAM_RSSI_ENABLE),
                    )
                    .await?;
                if cmd_out == 1 && rssi == 1 {
                    break;
                }
                if reset_done {
                    return Err(Stop::Lost(
                        "AMB8465 did not keep UART_CMD_Out_Enable/RSSI_Enable after reset".into(),
                    ));
                }
                // Both settings live in non-volatile memory and apply after a reset; this
                // write happens once per module, not on every reconnect.
                for addr in [
                    amb8465::PARAM_UART_CMD_OUT_ENABLE,
                    amb8465::PARAM_RSSI_ENABLE,
                ] {
                    let req =
                        request_bytes(amb8465::set_params(addr, &[1]).and_then(|f| f.encode()))?;
                    let st = port
                        .transact(rep, shutdown, &req, "AMB8465 SET", |r| match r {
                            Reply::AmSet(s) => Some(*s),
                            _ => None,
                        })
                        .await?;
                    if st != 0 {
                        return Err(Stop::Lost(format!(
                            "AMB8465 SET of parameter 0x{addr:02X} failed (status {st})"
                        )));
                    }
                }
                let req = request_bytes(amb8465::reset().encode())?;
                port.transact(rep, shutdown, &req, "AMB8465 reset", |r| {
                    matches!(r, Reply::AmReset(_)).then_some(())
                })
                .await?;
                reset_done = true;
            }
            if let Codec::Amber(d) = &mut port.codec {
                d.set_rssi_enabled(true);
            }
            let req = request_bytes(amb8465::get_params(amb8465::PARAM_AUTO_SLEEP, 1).encode())?;
            let sleep = port
                .transact(rep, shutdown, &req, "AMB8465 GET auto-sleep", |r| match r {
                    Reply::AmGet { addr, values } if *addr == amb8465::PARAM_AUTO_SLEEP => {
                        values.first().copied()
                    }
                    _ => None,
                })
                .await?;
            if sleep != 0 {
                tracing::warn!(source = %rep.source, value = sleep, "AMB8465 auto-sleep is enabled; telegrams may be lost");
            }
            let req = request_bytes(amb8465::set_mode(mode).and_then(|f| f.encode()))?;
            let status = port
                .transact(rep, shutdown, &req, "AMB8465 set mode", |r| match r {
                    Reply::AmSetMode(s) => Some(*s),
                    _ => None,
                })
                .await?;
            if status != 0 {
                return Err(Stop::Lost(format!(
                    "AMB8465 rejected mode {mode} (status {status})"
                )));
            }
            Ok(format!("AMB8465 fw {fw}"))
        }
        Codec::Cul(_) => {
            let version = port
                .transact(
                    rep,
                    shutdown,
                    cul::CMD_VERSION.as_bytes(),
                    "CUL version",
                    |r| match r {
                        Reply::CulVersion(v) => Some(v.clone()),
                        _ => None,
                    },
                )
                .await?;
            let listen = cul::listen_command(mode).map_err(|e| Stop::Lost(e.to_string()))?;
            let mut req = cul::CMD_REPORT_RSSI.as_bytes().to_vec();
            req.extend_from_slice(listen.as_bytes());
            port.transact(rep, shutdown, &req, "CUL listen command", |r| match r {
                Reply::CulModeAck(m) if *m == mode => Some(()),
                _ => None,
            })
            .await?;
            Ok(version)
        }
    }
}

/// Receives until something goes wrong; the watchdog asks the dongle before giving up.
async fn receive(
    port: &mut Port,
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Stop {
    let mut check_sent: Option<Instant> = None;
    loop {
        let mut items = Vec::new();
        if let Err(stop) = port.read_items(rep, shutdown, &mut items).await {
            return stop;
        }
        if let Err(stop) = port.dispatch(rep, items).await {
            return stop;
        }
        let silent = port.last_rx.elapsed();
        // USB unplug removes the node (and its by-id link) even if no read error came yet.
        let serial = tcp_address(&spec.device).is_none();
        if serial && silent > TICK && !Path::new(&spec.device).exists() {
            return Stop::Lost(format!("device path {} vanished", spec.device));
        }
        if spec.watchdog.is_zero() {
            continue;
        }
        match check_sent {
            Some(t) if port.last_rx > t => check_sent = None,
            Some(t) if t.elapsed() > REPLY_TIMEOUT => {
                return Stop::Lost(format!(
                    "watchdog: silent for {silent:?} and no answer to a liveness check"
                ))
            }
            Some(_) => {}
            None if silent > spec.watchdog => {
                let req = port.codec.liveness_request();
                if let Err(stop) = port.write(&req).await {
                    return stop;
                }
                check_sent = Some(Instant::now());
            }
            None => {}
        }
    }
}

async fn run_serial(
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ()> {
    let mut backoff = Backoff::new();
    let mode = match combine_modes(&spec.modes) {
        Ok(m) => m,
        Err(e) => {
            // A configuration error cannot heal by retrying.
            rep.state(RadioState::Failed {
                reason: e.to_string(),
            })
            .await?;
            wait_shutdown(shutdown).await;
            return Ok(());
        }
    };
    loop {
        if is_shutdown(shutdown) {
            return Ok(());
        }
        rep.state(RadioState::Opening).await?;
        let outcome = session_once(spec, mode, rep, shutdown).await;
        let (reason, healthy) = match outcome {
            Ok(()) | Err((Stop::Shutdown, _)) => return Ok(()),
            Err((Stop::Closed, _)) => return Err(()),
            Err((Stop::Lost(reason), healthy)) => (reason, healthy),
        };
        if healthy {
            backoff.reset();
        }
        rep.state(RadioState::Lost { reason }).await?;
        if !sleep_or_shutdown(backoff.next_delay(), shutdown).await {
            return Ok(());
        }
    }
}

/// One open–initialise–receive cycle; the bool says whether the dongle worked at all.
async fn session_once(
    spec: &RadioSpec,
    mode: LinkMode,
    rep: &Reporter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), (Stop, bool)> {
    let kind = match spec.driver {
        DriverKind::Auto => {
            let info = probe(&spec.device, REPLY_TIMEOUT)
                .await
                .map_err(|e| (Stop::Lost(e.to_string()), false))?;
            info.driver
        }
        k => k,
    };
    let codec =
        Codec::new(kind).ok_or((Stop::Lost(format!("{kind} is not a serial driver")), false))?;
    let baud = spec.baud.or(kind.default_baud()).unwrap_or(im871a::BAUD);
    let mut port = Port::open(&spec.device, baud, codec, mode)
        .await
        .map_err(|r| (Stop::Lost(r), false))?;
    let dongle = initialise(&mut port, rep, shutdown)
        .await
        .map_err(|s| (s, false))?;
    rep.state(RadioState::Ready { dongle })
        .await
        .map_err(|_| (Stop::Closed, true))?;
    let ready_at = Instant::now();
    let stop = receive(&mut port, spec, rep, shutdown).await;
    // A dongle that worked for a while earns a quick reconnect; one that fails right
    // after initialising keeps backing off.
    Err((stop, port.healthy || ready_at.elapsed() > BACKOFF_MAX))
}

// ---------------------------------------------------------------------------------------
// Probe

/// Identifies the dongle at `path`: iM871A (ping + device info at 57600), AMB8465
/// (firmware version at 9600), CUL (`V` at 38400). Each attempt waits up to `timeout`.
pub async fn probe(path: &str, timeout: Duration) -> Result<DongleInfo, ProbeError> {
    for kind in [DriverKind::Im871a, DriverKind::Amb8465, DriverKind::Cul] {
        if let Some(info) = probe_one(path, kind, timeout).await? {
            return Ok(info);
        }
    }
    Err(ProbeError::NoAnswer {
        path: path.to_string(),
    })
}

async fn probe_one(
    path: &str,
    kind: DriverKind,
    timeout: Duration,
) -> Result<Option<DongleInfo>, ProbeError> {
    let baud = kind.default_baud().unwrap_or(im871a::BAUD);
    let mut stream = tokio_serial::new(path, baud)
        .open_native_async()
        .map_err(|source| ProbeError::Open {
            path: path.to_string(),
            source,
        })?;
    let io_err = |source| ProbeError::Io {
        path: path.to_string(),
        source,
    };
    let request = match kind {
        DriverKind::Im871a => im871a::get_device_info().encode().unwrap_or_default(),
        DriverKind::Amb8465 => amb8465::firmware_version().encode().unwrap_or_default(),
        _ => cul::CMD_VERSION.as_bytes().to_vec(),
    };
    stream.write_all(&request).await.map_err(io_err)?;
    let mut im = im871a::Decoder::new();
    let mut am = amb8465::Decoder::new(true);
    let mut lines = LineSplitter::new(cul::MAX_LINE);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 256];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) => return Ok(None),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io_err(e)),
        };
        let bytes = buf.get(..n).unwrap_or(&[]);
        match kind {
            DriverKind::Im871a => {
                im.push(bytes);
                while let Some(m) = im.next_message() {
                    if let Ok(im871a::Message::DeviceInfo(i)) = m {
                        return Ok(Some(DongleInfo {
                            driver: kind,
                            description: i.description(),
                            id: Some(format!("{:08X}", i.uid)),
                        }));
                    }
                }
            }
            DriverKind::Amb8465 => {
                am.push(bytes);
                while let Some(m) = am.next_message() {
                    if let Ok(amb8465::Message::Firmware(f)) = m {
                        return Ok(Some(DongleInfo {
                            driver: kind,
                            description: format!("AMB8465 fw {f}"),
                            id: None,
                        }));
                    }
                }
            }
            _ => {
                lines.push(bytes);
                while let Some(l) = lines.next_line() {
                    if let Line::Text(t) = l {
                        if let Ok(cul::CulLine::Version(v)) = cul::parse_line(&t, false) {
                            return Ok(Some(DongleInfo {
                                driver: kind,
                                description: v,
                                id: None,
                            }));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut b = Backoff::new();
        let delays: Vec<_> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(
            delays,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_MIN);
    }

    #[tokio::test]
    async fn replay_emits_frames_bad_lines_and_finishes() {
        let dir = std::env::temp_dir().join(format!("wmbusd-replay-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("demo.txt");
        let text = "# demo\n-70;2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24\nzz\n";
        std::fs::write(&file, text).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let spec = RadioSpec {
            driver: DriverKind::Replay,
            device: file.to_string_lossy().into_owned(),
            modes: vec![],
            baud: None,
            watchdog: Duration::ZERO,
            replay_interval: Duration::from_millis(1),
            name: "demo".into(),
            recorded_clock: false,
        };
        tokio::time::timeout(Duration::from_secs(5), run(spec, tx, stop_rx))
            .await
            .unwrap();
        let mut events = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            events.push(ev);
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            events.first(),
            Some(RadioEvent::State {
                state: RadioState::Opening,
                ..
            })
        ));
        assert!(matches!(
            events.get(1),
            Some(RadioEvent::State {
                state: RadioState::Ready { .. },
                ..
            })
        ));
        match events.get(2) {
            Some(RadioEvent::Frame(f)) => {
                assert_eq!(f.bytes.first(), Some(&0x2A));
                assert_eq!(f.bytes.len(), 43);
                assert_eq!(f.rssi_dbm, Some(-70.0));
                assert_eq!(f.source.as_deref(), Some("demo"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            matches!(events.get(3), Some(RadioEvent::Bad { reason, .. }) if reason.contains("line 3"))
        );
        assert_eq!(events.get(4), Some(&RadioEvent::ReplayFinished));
    }

    #[tokio::test]
    async fn rtlwmbus_command_output_is_read_and_restarted() {
        let line = "C1;1;1;2020-01-23 10:25:13.000;97;148;76348799;0x2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
        let spec = RadioSpec {
            driver: DriverKind::RtlWmbus,
            device: format!(
                "echo 'rtl_wmbus: starting'; echo 'C1;0;1;x;1;2;3;0x00'; echo '{line}'"
            ),
            modes: vec![],
            baud: None,
            watchdog: Duration::ZERO,
            replay_interval: Duration::ZERO,
            name: String::new(),
            recorded_clock: false,
        };
        let (tx, mut rx) = mpsc::channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(spec, tx, stop_rx));
        let mut frames = 0;
        let mut bad = 0;
        let mut lost = 0;
        while frames < 2 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(RadioEvent::Frame(f))) => {
                    assert_eq!(f.link_mode, Some(LinkMode::C1));
                    assert_eq!(f.bytes.len(), 43);
                    frames += 1;
                }
                Ok(Some(RadioEvent::Bad { .. })) => bad += 1,
                Ok(Some(RadioEvent::State {
                    state: RadioState::Lost { .. },
                    ..
                })) => lost += 1,
                Ok(Some(_)) => {}
                other => panic!("no event: {other:?}"),
            }
        }
        // The command exits after one line: the second frame proves the restart.
        assert!(lost >= 1);
        assert!(bad >= 1);
        let _ = stop_tx.send(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
