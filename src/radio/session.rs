//! Async receiver sessions: open, initialise, read, recover.
//!
//! [`run`] is the one entry point the daemon uses. It never gives up on I/O errors: a
//! lost device is reported, then reopened under the same path with exponential backoff
//! and initialised again (mode, RSSI). Silence longer than the watchdog triggers a
//! polite liveness check (ping / firmware query / version) rather than a blind reset;
//! only when that goes unanswered is the port reopened. What differs between the dongle
//! families lives in their codec files, behind [`Dongle`].

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;

pub use super::error::ProbeError;
use super::events::{Closed, Reporter};
pub use super::events::{RadioEvent, RadioState};
pub use super::link::tcp_address;
use super::link::{Dongle, Item, Port, Stop, REPLY_TIMEOUT, TICK};
use super::{
    amb8465, combine_modes, cul, im871a, replay, rtlwmbus, DongleInfo, DriverKind, Line,
    LineSplitter, RadioError,
};
use crate::frame::{CrcState, LinkMode};
use crate::shutdown::Shutdown;

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

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

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

/// Runs a receiver until `shutdown` fires (replay: until the file is done).
pub async fn run(spec: RadioSpec, events: mpsc::Sender<RadioEvent>, mut shutdown: Shutdown) {
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
    shutdown: &mut Shutdown,
) -> Result<(), Closed> {
    let mut backoff = Backoff::new();
    let text = loop {
        rep.state(RadioState::Opening).await?;
        match tokio::fs::read_to_string(&spec.device).await {
            Ok(t) => break t,
            Err(source) => {
                let e = RadioError::ReplayFile {
                    path: spec.device.clone(),
                    source,
                };
                rep.state(lost(&e)).await?;
                if !shutdown.sleep(backoff.next_delay()).await {
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
        if shutdown.is_shutdown() {
            return Ok(());
        }
        if !first && !spec.replay_interval.is_zero() && !shutdown.sleep(spec.replay_interval).await
        {
            return Ok(());
        }
        first = false;
        match item {
            // A replayed capture: the decoder reads the CRC layout from the bytes.
            Ok(t) => {
                let mut frame = rep.frame(t.frame, t.rssi_dbm, None, CrcState::Recorded);
                if let (true, Some(at)) = (spec.recorded_clock, t.recorded_at) {
                    frame.received_at = Some(at);
                }
                rep.send(RadioEvent::Frame(frame)).await?
            }
            Err(e) => rep.bad(e.to_string()).await?,
        }
    }
    rep.send(RadioEvent::ReplayFinished).await
}

fn lost(e: &RadioError) -> RadioState {
    RadioState::Lost {
        reason: e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// rtl-wmbus

async fn run_rtlwmbus(
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut Shutdown,
) -> Result<(), Closed> {
    if spec.device == "-" {
        return run_rtlwmbus_stdin(spec, rep, shutdown).await;
    }
    let mut backoff = Backoff::new();
    loop {
        if shutdown.is_shutdown() {
            return Ok(());
        }
        rep.state(RadioState::Opening).await?;
        let started = Instant::now();
        let e = match rtlwmbus_once(spec, rep, shutdown).await {
            Stop::Closed => return Err(Closed),
            Stop::Shutdown => return Ok(()),
            Stop::Lost(e) => e,
        };
        if started.elapsed() > BACKOFF_MAX {
            backoff.reset();
        }
        if shutdown.is_shutdown() {
            return Ok(());
        }
        rep.state(lost(&e)).await?;
        if !shutdown.sleep(backoff.next_delay()).await {
            return Ok(());
        }
    }
}

/// Standard input cannot be restarted, so the watchdog would only end reception; when it
/// ends, the session reports it and idles until shutdown.
async fn run_rtlwmbus_stdin(
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut Shutdown,
) -> Result<(), Closed> {
    rep.state(RadioState::Ready {
        dongle: "rtl-wmbus (stdin)".into(),
    })
    .await?;
    let stdin_spec = RadioSpec {
        watchdog: Duration::ZERO,
        ..spec.clone()
    };
    match read_rtl_lines(tokio::io::stdin(), &stdin_spec, rep, shutdown).await {
        Stop::Closed => return Err(Closed),
        Stop::Shutdown => return Ok(()),
        Stop::Lost(e) => rep.state(lost(&e)).await?,
    }
    shutdown.recv().await;
    Ok(())
}

/// Starts the rtl_wmbus command line once and reads it until it stops.
async fn rtlwmbus_once(spec: &RadioSpec, rep: &Reporter, shutdown: &mut Shutdown) -> Stop {
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
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => {
            return Stop::Lost(RadioError::Spawn {
                command: spec.device.clone(),
                source,
            })
        }
    };
    let Some(stdout) = child.stdout.take() else {
        return Stop::Lost(RadioError::NoStdout);
    };
    let ready = RadioState::Ready {
        dongle: format!("rtl-wmbus ({})", spec.device),
    };
    if rep.state(ready).await.is_err() {
        return Stop::Closed;
    }
    let stop = read_rtl_lines(stdout, spec, rep, shutdown).await;
    let status = stop_process_group(&mut child).await;
    match (stop, status) {
        (Stop::Lost(reason), Ok(status)) => Stop::Lost(RadioError::Exited {
            reason: Box::new(reason),
            status,
        }),
        (stop, _) => stop,
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

/// Reads rtl-wmbus lines until EOF, error, watchdog or shutdown.
async fn read_rtl_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    spec: &RadioSpec,
    rep: &Reporter,
    shutdown: &mut Shutdown,
) -> Stop {
    let mut lines = LineSplitter::new(rtlwmbus::MAX_LINE);
    let mut buf = vec![0u8; 4096];
    let mut last_rx = Instant::now();
    loop {
        // `read` is cancel-safe, so losing the race against the tick drops no bytes.
        let read = tokio::select! {
            r = reader.read(&mut buf) => r,
            _ = tokio::time::sleep(TICK) => {
                if !spec.watchdog.is_zero() && last_rx.elapsed() > spec.watchdog {
                    return Stop::Lost(RadioError::Silent(spec.watchdog));
                }
                continue;
            }
            _ = shutdown.recv() => return Stop::Shutdown,
        };
        let n = match read {
            Ok(0) => return Stop::Lost(RadioError::EndOfOutput),
            Err(e) => return Stop::Lost(RadioError::Read(e)),
            Ok(n) => n,
        };
        last_rx = Instant::now();
        lines.push(buf.get(..n).unwrap_or(&[]));
        while let Some(line) = lines.next_line() {
            let sent = match line {
                Line::Overlong { discarded } => {
                    rep.bad(rtlwmbus::Error::Overlong { discarded }.to_string())
                        .await
                }
                Line::Text(text) => rtl_line(rep, &text).await,
            };
            if sent.is_err() {
                return Stop::Closed;
            }
        }
    }
}

/// One line of rtl-wmbus output: telegrams, chatter or a rejected line.
async fn rtl_line(rep: &Reporter, text: &str) -> Result<(), Closed> {
    match rtlwmbus::parse_line(text) {
        Ok(rtlwmbus::RtlLine::Telegrams(ts)) => {
            for t in ts {
                if let Some(old) = t.original_l {
                    tracing::warn!(source = %rep.source, old_l = old, "rtl-wmbus sent a wrong L-field; fixed from the hex length");
                }
                let crc = CrcState::Checked(None);
                let frame = rep.frame(t.frame, None, Some(t.link_mode), crc);
                rep.send(RadioEvent::Frame(frame)).await?;
            }
        }
        Ok(rtlwmbus::RtlLine::Chatter(c)) => {
            if !c.is_empty() {
                tracing::debug!(source = %rep.source, line = %c, "rtl-wmbus");
            }
        }
        // The receiver's own CRC verdict: handed on, so that the failure is counted
        // (class `crc`) against the meter the header names.
        Err(rtlwmbus::Error::CrcFailed { .. }) => {
            let failed = rtlwmbus::crc_failed_telegrams(text);
            if failed.is_empty() {
                rep.bad(format!("rtlwmbus: unreadable CRC-failed line {text:?}"))
                    .await?;
            }
            for (mode, bytes) in failed {
                let frame = rep.frame(bytes, None, Some(mode), CrcState::Failed(None));
                rep.send(RadioEvent::Frame(frame)).await?;
            }
        }
        Err(e) => rep.bad(e.to_string()).await?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Serial dongles

/// Receives until something goes wrong; the watchdog asks the dongle before giving up.
async fn receive<D: Dongle>(port: &mut Port<'_, D>, spec: &RadioSpec) -> Stop {
    let mut check_sent: Option<Instant> = None;
    loop {
        if let Err(stop) = port.poll().await {
            return stop;
        }
        let silent = port.last_rx.elapsed();
        // USB unplug removes the node (and its by-id link) even if no read error came yet.
        let serial = tcp_address(&spec.device).is_none();
        if serial && silent > TICK && !Path::new(&spec.device).exists() {
            return Stop::Lost(RadioError::Vanished {
                path: spec.device.clone(),
            });
        }
        if spec.watchdog.is_zero() {
            continue;
        }
        match check_sent {
            Some(t) if port.last_rx > t => check_sent = None,
            Some(t) if t.elapsed() > REPLY_TIMEOUT => {
                return Stop::Lost(RadioError::Watchdog { silent });
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
    shutdown: &mut Shutdown,
) -> Result<(), Closed> {
    let mut backoff = Backoff::new();
    let mode = match combine_modes(&spec.modes) {
        Ok(m) => m,
        Err(e) => {
            // A configuration error cannot heal by retrying.
            rep.state(RadioState::Failed {
                reason: e.to_string(),
            })
            .await?;
            shutdown.recv().await;
            return Ok(());
        }
    };
    loop {
        if shutdown.is_shutdown() {
            return Ok(());
        }
        rep.state(RadioState::Opening).await?;
        let (e, healthy) = match session_once(spec, mode, rep, shutdown).await {
            (Stop::Shutdown, _) => return Ok(()),
            (Stop::Closed, _) => return Err(Closed),
            (Stop::Lost(e), healthy) => (e, healthy),
        };
        if healthy {
            backoff.reset();
        }
        rep.state(lost(&e)).await?;
        if !shutdown.sleep(backoff.next_delay()).await {
            return Ok(());
        }
    }
}

/// One open–initialise–receive cycle; the bool says whether the dongle worked at all.
async fn session_once(
    spec: &RadioSpec,
    mode: LinkMode,
    rep: &Reporter,
    shutdown: &Shutdown,
) -> (Stop, bool) {
    let kind = match spec.driver {
        DriverKind::Auto => match probe(&spec.device, REPLY_TIMEOUT).await {
            Ok(info) => info.driver,
            Err(e) => return (Stop::Lost(e.into()), false),
        },
        k => k,
    };
    let baud = spec.baud.or(kind.default_baud()).unwrap_or(im871a::BAUD);
    let open = Open {
        spec,
        baud,
        mode,
        rep,
        shutdown,
    };
    match kind {
        DriverKind::Im871a => open.run::<im871a::Decoder>().await,
        DriverKind::Amb8465 => open.run::<amb8465::Decoder>().await,
        DriverKind::Cul => open.run::<cul::dongle::Stream>().await,
        k => (Stop::Lost(RadioError::NotSerial(k)), false),
    }
}

/// How to open one serial session.
struct Open<'a> {
    spec: &'a RadioSpec,
    baud: u32,
    mode: LinkMode,
    rep: &'a Reporter,
    shutdown: &'a Shutdown,
}

impl Open<'_> {
    async fn run<D: Dongle>(self) -> (Stop, bool) {
        let opened = Port::<D>::open(
            &self.spec.device,
            self.baud,
            self.mode,
            self.rep,
            self.shutdown.clone(),
        )
        .await;
        let mut port = match opened {
            Ok(port) => port,
            Err(e) => return (Stop::Lost(e), false),
        };
        let dongle = match D::initialise(&mut port).await {
            Ok(dongle) => dongle,
            Err(stop) => return (stop, false),
        };
        if self.rep.state(RadioState::Ready { dongle }).await.is_err() {
            return (Stop::Closed, true);
        }
        let ready_at = Instant::now();
        let stop = receive(&mut port, self.spec).await;
        // A dongle that worked for a while earns a quick reconnect; one that fails right
        // after initialising keeps backing off.
        (stop, port.healthy || ready_at.elapsed() > BACKOFF_MAX)
    }
}

// ---------------------------------------------------------------------------------------
// Probe

/// Identifies the dongle at `path`: iM871A (device info at 57600), AMB8465 (firmware
/// version at 9600), CUL (`V` at 38400). Each attempt waits up to `timeout`.
pub async fn probe(path: &str, timeout: Duration) -> Result<DongleInfo, ProbeError> {
    if let Some(info) = probe_one::<im871a::Decoder>(path, im871a::BAUD, timeout).await? {
        return Ok(info);
    }
    if let Some(info) = probe_one::<amb8465::Decoder>(path, amb8465::BAUD, timeout).await? {
        return Ok(info);
    }
    if let Some(info) = probe_one::<cul::dongle::Stream>(path, cul::BAUD, timeout).await? {
        return Ok(info);
    }
    Err(ProbeError::NoAnswer {
        path: path.to_string(),
    })
}

async fn probe_one<D: Dongle>(
    path: &str,
    baud: u32,
    timeout: Duration,
) -> Result<Option<DongleInfo>, ProbeError> {
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
    stream
        .write_all(&D::probe_request())
        .await
        .map_err(io_err)?;
    let mut codec = D::fresh();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 256];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) => return Ok(None),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io_err(e)),
        };
        codec.push(buf.get(..n).unwrap_or(&[]));
        while let Some(item) = codec.next_item() {
            if let Some(info) = match item {
                Item::Reply(r) => D::identify(&r),
                _ => None,
            } {
                return Ok(Some(info));
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
        let trigger = crate::shutdown::ShutdownTrigger::new();
        let stop_rx = trigger.subscribe();
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
        let stop_tx = crate::shutdown::ShutdownTrigger::new();
        let stop_rx = stop_tx.subscribe();
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
        stop_tx.fire();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
