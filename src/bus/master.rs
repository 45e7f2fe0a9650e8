//! The link layer of a wired M-Bus master (EN 13757-2), generic over a [`Transport`].
//!
//! Every exchange is one request and at most one answer. The master keeps, per address,
//! the frame count bit (FCB) of its next REQ_UD2: SND_NKE makes the slave clear its FCB,
//! so the first request after it carries FCB = 1; each successful answer toggles the bit;
//! a retry after silence or a damaged answer sends the same FCB, which tells the slave to
//! repeat its last telegram rather than move on to the next one of a multi-telegram answer.

use std::time::Duration;

use super::search::{Probe, Search};
use crate::wire::address::Address;
use crate::wire::mbus::{
    self, MbusLongFrame, MbusShortFrame, SecondaryAddress, WiredFrame, ADDRESS_SELECTED,
};

/// Which meter to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Primary address 1–250 (0 is the factory default of unconfigured slaves, also allowed).
    Primary(u8),
    /// Selected by secondary address, then read at address 253.
    Secondary(SecondaryAddress),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Primary(a) => write!(f, "primary address {a}"),
            Target::Secondary(s) => write!(f, "secondary address {s}"),
        }
    }
}

/// Timeouts and retries (EN 13757-2 §5: a slave answers within 330 bit times plus 50 ms;
/// a master repeats a request up to 3 times).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub baud: u32,
    /// Allowance added to the bit times, 50 ms by the standard (converters over TCP may
    /// need more).
    pub extra: Duration,
    /// Repetitions after a timeout or a damaged answer (0–3).
    pub retries: u8,
}

/// Bits per character on the wire: start, 8 data, even parity, stop.
const BITS_PER_CHAR: u32 = 11;
/// Bit times a slave may take to start its answer.
const ANSWER_BITS: u32 = 330;
/// Pause between characters that ends an answer (the standard allows a slave at most a
/// few bit times between characters; a generous limit keeps slow converters working).
const GAP_BITS: u32 = 22;
/// Telegrams of one multi-telegram answer read at most (a slave that never stops sending
/// DIF 0x1F cannot keep the master forever).
pub const MAX_TELEGRAMS: usize = 32;

impl Timing {
    /// The standard's timing at `baud`: 330 bit times + 50 ms, 3 retries.
    pub fn standard(baud: u32) -> Timing {
        Timing {
            baud: baud.max(1),
            extra: Duration::from_millis(50),
            retries: 3,
        }
    }

    fn bits(&self, bits: u32) -> Duration {
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }

    /// Time to put `bytes` on the wire.
    pub fn transmit(&self, bytes: usize) -> Duration {
        self.bits(BITS_PER_CHAR.saturating_mul(u32::try_from(bytes).unwrap_or(u32::MAX)))
    }

    /// How long after the start of sending a request of `request_len` bytes the answer's
    /// first byte may arrive: transmission + 330 bit times + the allowance.
    pub fn answer_window(&self, request_len: usize) -> Duration {
        self.transmit(request_len) + self.bits(ANSWER_BITS) + self.extra
    }

    /// Silence after a received byte that ends an answer.
    pub fn gap(&self) -> Duration {
        self.bits(GAP_BITS) + self.extra
    }
}

/// The I/O edge: a serial port, a TCP converter or a simulator.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Discards stale input, sends `request`, and returns the bytes heard: nothing when no
    /// byte came within `timing.answer_window`, else everything up to a complete frame
    /// (see [`mbus::frame_len`]) or the first pause longer than `timing.gap`.
    async fn exchange(&mut self, request: &[u8], timing: &Timing) -> std::io::Result<Vec<u8>>;
}

/// One request and what came back, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: Vec<u8>,
    pub answer: Vec<u8>,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("{target}: no answer to {request} after {attempts} attempt(s)")]
    NoAnswer {
        target: Target,
        request: &'static str,
        attempts: u8,
    },
    #[error("{target}: damaged answer to {request} after {attempts} attempt(s): {source}")]
    Damaged {
        target: Target,
        request: &'static str,
        attempts: u8,
        #[source]
        source: crate::wire::Error,
    },
    #[error("{target}: unexpected answer to {request}: {what}")]
    Unexpected {
        target: Target,
        request: &'static str,
        what: &'static str,
    },
    #[error("{target}: more than {MAX_TELEGRAMS} telegrams: the slave never ends its answer")]
    TooManyTelegrams { target: Target },
    /// The port itself failed: the caller reopens it.
    #[error("bus port: {0}")]
    Io(#[from] std::io::Error),
}

/// A slave a scan or search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The primary address it answered at (scan) or its A-field (search).
    pub primary: u8,
    /// Its identity from the long TPL header of its first RSP_UD.
    pub address: Address,
    /// That first RSP_UD.
    pub frame: Vec<u8>,
}

impl Found {
    fn from_frame(primary: Option<u8>, frame: Vec<u8>) -> Option<Found> {
        let (long, _) = MbusLongFrame::parse(&frame).ok()?;
        let (tpl, _) = long.tpl().ok()?;
        Some(Found {
            primary: primary.unwrap_or(long.address),
            address: tpl.long_address?,
            frame,
        })
    }

    pub fn secondary(&self) -> SecondaryAddress {
        SecondaryAddress::from_long_address(&self.address)
    }
}

/// What a request accepts as its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ack,
    RspUd,
}

/// How one attempt ended.
enum Heard {
    Silence,
    Good,
    Damaged(crate::wire::Error),
    Unexpected(&'static str),
}

fn classify(bytes: &[u8], want: Want) -> Heard {
    if bytes.is_empty() {
        return Heard::Silence;
    }
    match WiredFrame::parse(bytes) {
        // Bytes beyond one frame: two slaves answered (a collision) or line noise.
        Ok((_, used)) if used != bytes.len() => Heard::Damaged(crate::wire::Error::invalid(
            crate::wire::Layer::Link,
            used,
            "bytes after the answer (collision)",
        )),
        Ok((WiredFrame::Ack, _)) if want == Want::Ack => Heard::Good,
        Ok((WiredFrame::Long(f), _)) if want == Want::RspUd && mbus::is_rsp_ud(f.control) => {
            Heard::Good
        }
        Ok((WiredFrame::Ack, _)) => Heard::Unexpected("E5 (ACK) instead of RSP_UD"),
        Ok((WiredFrame::Short(_), _)) => Heard::Unexpected("a short frame"),
        Ok((WiredFrame::Long(_), _)) => Heard::Unexpected("a long frame that is not RSP_UD"),
        Err(e) => Heard::Damaged(e),
    }
}

/// A bus master on one port.
pub struct Master<T> {
    io: T,
    timing: Timing,
    /// FCB of the next REQ_UD2 per address.
    fcb: [bool; 256],
    /// Every exchange, when tracing (`--explain`).
    trace: Option<Vec<Exchange>>,
}

impl<T: Transport> Master<T> {
    pub fn new(io: T, timing: Timing) -> Self {
        Master {
            io,
            timing,
            fcb: [true; 256],
            trace: None,
        }
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Starts recording exchanges (see [`Master::take_trace`]).
    pub fn trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub fn take_trace(&mut self) -> Vec<Exchange> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    async fn once(&mut self, request: &[u8]) -> Result<Vec<u8>, BusError> {
        let started = std::time::Instant::now();
        let answer = self.io.exchange(request, &self.timing).await?;
        if let Some(trace) = &mut self.trace {
            trace.push(Exchange {
                request: request.to_vec(),
                answer: answer.clone(),
                elapsed: started.elapsed(),
            });
        }
        Ok(answer)
    }

    /// Sends `request` until it is answered as wanted: up to 1 + retries attempts, or only
    /// one when `silence_is_final` and nothing answered (a scan of an empty address).
    async fn transact(
        &mut self,
        request: &[u8],
        name: &'static str,
        target: Target,
        want: Want,
        silence_is_final: bool,
    ) -> Result<Vec<u8>, BusError> {
        let attempts = 1 + self.timing.retries.min(3);
        let mut damaged = None;
        let mut unexpected = None;
        for attempt in 1..=attempts {
            let answer = self.once(request).await?;
            match classify(&answer, want) {
                Heard::Good => return Ok(answer),
                Heard::Silence if silence_is_final && damaged.is_none() => {
                    return Err(BusError::NoAnswer {
                        target,
                        request: name,
                        attempts: attempt,
                    })
                }
                Heard::Silence => {}
                Heard::Damaged(e) => damaged = Some(e),
                Heard::Unexpected(what) => unexpected = Some(what),
            }
        }
        Err(match (damaged, unexpected) {
            (Some(source), _) => BusError::Damaged {
                target,
                request: name,
                attempts,
                source,
            },
            (None, Some(what)) => BusError::Unexpected {
                target,
                request: name,
                what,
            },
            (None, None) => BusError::NoAnswer {
                target,
                request: name,
                attempts,
            },
        })
    }

    /// SND_NKE: resets the slave's link (its FCB and multi-telegram position).
    pub async fn reset(&mut self, address: u8) -> Result<(), BusError> {
        let request = MbusShortFrame::snd_nke(address).to_bytes();
        self.transact(
            &request,
            "SND_NKE",
            Target::Primary(address),
            Want::Ack,
            false,
        )
        .await?;
        self.set_fcb(address, true);
        Ok(())
    }

    /// SND_UD CI 0x52: selects the slaves matching `address` for address 253.
    pub async fn select(&mut self, address: SecondaryAddress) -> Result<(), BusError> {
        let request = address.selection_frame(false);
        let target = Target::Secondary(address);
        self.transact(&request, "SND_UD (select)", target, Want::Ack, false)
            .await?;
        // A newly selected slave starts a fresh exchange.
        self.set_fcb(ADDRESS_SELECTED, true);
        Ok(())
    }

    /// SND_NKE to 253: deselects whatever slave is selected. Silence is fine (nothing was).
    pub async fn deselect(&mut self) -> Result<(), BusError> {
        let request = MbusShortFrame::snd_nke(ADDRESS_SELECTED).to_bytes();
        self.once(&request).await?;
        Ok(())
    }

    fn set_fcb(&mut self, address: u8, fcb: bool) {
        if let Some(slot) = self.fcb.get_mut(usize::from(address)) {
            *slot = fcb;
        }
    }

    fn next_fcb(&self, address: u8) -> bool {
        self.fcb.get(usize::from(address)).copied().unwrap_or(true)
    }

    /// One REQ_UD2 → RSP_UD; the FCB toggles only when the answer was good.
    pub async fn request_ud2(&mut self, address: u8, target: Target) -> Result<Vec<u8>, BusError> {
        let fcb = self.next_fcb(address);
        let request = MbusShortFrame::req_ud2(address, fcb).to_bytes();
        let frame = self
            .transact(&request, "REQ_UD2", target, Want::RspUd, false)
            .await?;
        self.set_fcb(address, !fcb);
        Ok(frame)
    }

    /// Reads a meter: SND_NKE (or selection), then REQ_UD2 until a telegram does not end
    /// with DIF 0x1F. Returns every RSP_UD long frame, in order.
    pub async fn read(&mut self, target: Target) -> Result<Vec<Vec<u8>>, BusError> {
        let address = match target {
            Target::Primary(a) => {
                self.reset(a).await?;
                a
            }
            Target::Secondary(s) => {
                self.select(s).await?;
                ADDRESS_SELECTED
            }
        };
        let result = self.read_telegrams(address, target).await;
        if matches!(target, Target::Secondary(_)) && !matches!(result, Err(BusError::Io(_))) {
            self.deselect().await?;
        }
        result
    }

    async fn read_telegrams(
        &mut self,
        address: u8,
        target: Target,
    ) -> Result<Vec<Vec<u8>>, BusError> {
        let mut frames = Vec::new();
        loop {
            let frame = self.request_ud2(address, target).await?;
            let more =
                MbusLongFrame::parse(&frame).is_ok_and(|(f, _)| mbus::more_records_follow(&f));
            frames.push(frame);
            if !more {
                return Ok(frames);
            }
            if frames.len() >= MAX_TELEGRAMS {
                return Err(BusError::TooManyTelegrams { target });
            }
        }
    }

    /// Probes one primary address: SND_NKE (silence ends the probe at once; a damaged
    /// answer is retried), then the first RSP_UD for the slave's identity.
    pub async fn probe(&mut self, address: u8) -> Result<Option<Found>, BusError> {
        let request = MbusShortFrame::snd_nke(address).to_bytes();
        let target = Target::Primary(address);
        match self
            .transact(&request, "SND_NKE", target, Want::Ack, true)
            .await
        {
            Ok(_) => {}
            Err(BusError::NoAnswer { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        self.set_fcb(address, true);
        let frame = self.request_ud2(address, target).await?;
        Ok(Found::from_frame(Some(address), frame))
    }

    /// Probes the primary addresses in `range`; `progress(address, found so far)` is called
    /// before each. Slaves that answer badly are returned as errors beside the found ones.
    pub async fn scan_primary(
        &mut self,
        range: std::ops::RangeInclusive<u8>,
        mut progress: impl FnMut(u8, usize),
    ) -> Result<(Vec<Found>, Vec<BusError>), BusError> {
        let mut found = Vec::new();
        let mut failed = Vec::new();
        for address in range {
            progress(address, found.len());
            match self.probe(address).await {
                Ok(Some(f)) => found.push(f),
                Ok(None) => {}
                Err(BusError::Io(e)) => return Err(BusError::Io(e)),
                Err(e) => failed.push(e),
            }
        }
        Ok((found, failed))
    }

    /// Probes one mask of a secondary search: select, then read the selected slave's
    /// identity at 253. Garbled bytes at either step are a collision.
    async fn probe_mask(
        &mut self,
        mask: SecondaryAddress,
    ) -> Result<(Probe, Option<Found>), BusError> {
        let request = mask.selection_frame(false);
        let answer = self.once(&request).await?;
        match classify(&answer, Want::Ack) {
            Heard::Silence => return Ok((Probe::Nothing, None)),
            Heard::Good => {}
            Heard::Damaged(_) | Heard::Unexpected(_) => return Ok((Probe::Collision, None)),
        }
        self.set_fcb(ADDRESS_SELECTED, true);
        let read = self
            .request_ud2(ADDRESS_SELECTED, Target::Secondary(mask))
            .await;
        self.deselect().await?;
        match read {
            Ok(frame) => match Found::from_frame(None, frame) {
                Some(found) => Ok((Probe::One, Some(found))),
                None => Ok((Probe::Collision, None)),
            },
            Err(BusError::Io(e)) => Err(BusError::Io(e)),
            Err(_) => Ok((Probe::Collision, None)),
        }
    }

    /// The secondary-address search below `start`; `progress(probes, found)` after each
    /// probe. Returns the slaves found and the search (probe count, unresolved masks).
    pub async fn search_secondary(
        &mut self,
        start: SecondaryAddress,
        mut progress: impl FnMut(&SecondaryAddress, u32, usize),
    ) -> Result<(Vec<Found>, Search), BusError> {
        let mut search = Search::new(start);
        let mut found: Vec<Found> = Vec::new();
        while let Some(mask) = search.next_mask() {
            progress(&mask, search.probes, found.len());
            let (probe, slave) = self.probe_mask(mask).await?;
            if let Some(slave) = slave {
                if !found.iter().any(|f| f.address == slave.address) {
                    found.push(slave);
                }
            }
            search.report(mask, probe);
        }
        Ok((found, search))
    }
}

/// Names a frame a master or slave sent, for `--explain`.
pub fn describe(bytes: &[u8]) -> String {
    match WiredFrame::parse(bytes) {
        Ok((WiredFrame::Ack, 1)) if bytes.len() == 1 => "ACK (E5)".to_owned(),
        Ok((WiredFrame::Short(s), _)) if bytes.len() == mbus::SHORT_LEN => {
            let name = match s.control & !(mbus::FCB | mbus::FCV) {
                mbus::C_SND_NKE => "SND_NKE",
                0x4B => "REQ_UD2",
                0x4A => "REQ_UD1",
                _ => "short frame",
            };
            match s.fcb() {
                Some(fcb) => format!("{name} to {} (FCB {})", s.address, u8::from(fcb)),
                None => format!("{name} to {}", s.address),
            }
        }
        Ok((WiredFrame::Long(l), used)) if used == bytes.len() => {
            if l.ci == mbus::CI_SELECT {
                match SecondaryAddress::parse(l.data) {
                    Ok(a) => format!("SND_UD select {a}"),
                    Err(_) => "SND_UD select (bad address)".to_owned(),
                }
            } else if mbus::is_rsp_ud(l.control) {
                let more = if mbus::more_records_follow(&l) {
                    ", more records follow"
                } else {
                    ""
                };
                format!(
                    "RSP_UD from {} ({} bytes, CI {:02X}{more})",
                    l.address,
                    bytes.len(),
                    l.ci
                )
            } else {
                format!("long frame C {:02X} to {}", l.control, l.address)
            }
        }
        Ok(_) => "garbled: bytes after a frame (collision?)".to_owned(),
        Err(e) if bytes.is_empty() => format!("nothing ({e})"),
        Err(e) => format!("garbled: {e}"),
    }
}

#[cfg(test)]
#[cfg(feature = "daemon")]
mod tests {
    use super::*;
    use crate::bus::sim::{identity, Fault, SimBus, SimSlave, SimTransport};

    fn slave(primary: Option<u8>, id: u32, telegrams: usize) -> SimSlave {
        let records = (0..telegrams).map(|i| vec![0x01, 0x13, i as u8]).collect();
        SimSlave::new(primary, identity(id, "ABC", 2, 0x07).unwrap(), records)
    }

    fn master(slaves: Vec<SimSlave>) -> Master<SimTransport> {
        Master::new(SimTransport(SimBus::new(slaves)), Timing::standard(2400))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn standard_timing_figures() {
        let t = Timing::standard(2400);
        // 5 bytes × 11 bits = 22.9 ms, 330 bits = 137.5 ms, + 50 ms.
        let window = t.answer_window(5).as_secs_f64() * 1e3;
        assert!((window - 210.42).abs() < 0.01, "{window}");
        assert!((Timing::standard(300).answer_window(0).as_secs_f64() - 1.15).abs() < 1e-9);
        assert_eq!(t.retries, 3);
    }

    #[test]
    fn fcb_toggles_per_telegram_and_restarts_after_nke() {
        let mut m = master(vec![slave(Some(1), 1, 3)]);
        let frames = block_on(m.read(Target::Primary(1))).unwrap();
        // The value byte after each telegram's VIF 0x13: telegrams 0, 1, 2 in order.
        let values: Vec<u8> = frames
            .iter()
            .map(|f| f[f.iter().rposition(|&b| b == 0x13).unwrap() + 1])
            .collect();
        assert_eq!(values, [0, 1, 2]);
        assert_eq!(m.io.0.count(mbus::C_REQ_UD2, 1), 3);
        let frames = block_on(m.read(Target::Primary(1))).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(m.io.0.count(mbus::C_SND_NKE, 1), 2);
    }

    #[test]
    fn errors_name_the_target_and_request() {
        let mut m = master(vec![slave(Some(2), 2, 1).fault(Fault::Dead)]);
        let err = block_on(m.read(Target::Primary(2))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "primary address 2: no answer to SND_NKE after 4 attempt(s)"
        );
        let mut m = master(vec![slave(Some(2), 2, 1), slave(Some(2), 3, 1)]);
        let err = block_on(m.read(Target::Primary(2))).unwrap_err();
        assert!(
            matches!(err, BusError::Damaged { attempts: 4, .. }),
            "{err}"
        );
        // A scan takes silence at once: one SND_NKE per empty address.
        let mut m = master(vec![slave(Some(5), 5, 1)]);
        let (found, failed) = block_on(m.scan_primary(0..=9, |_, _| {})).unwrap();
        assert_eq!((found.len(), failed.len()), (1, 0));
        assert_eq!(found[0].address.id_string(), "00000005");
        assert_eq!(m.io.0.requests.len(), 10 + 1);
    }

    #[test]
    fn a_slave_that_never_ends_is_cut_off() {
        let mut s = slave(Some(4), 4, 1);
        // One telegram announcing more, forever.
        s.telegrams = vec![crate::bus::sim::SimTelegram::Records(vec![0x1F])];
        let mut m = master(vec![s]);
        let err = block_on(m.read(Target::Primary(4))).unwrap_err();
        assert!(matches!(err, BusError::TooManyTelegrams { .. }), "{err}");
    }

    #[test]
    fn describe_names_frames() {
        assert_eq!(
            describe(&MbusShortFrame::snd_nke(5).to_bytes()),
            "SND_NKE to 5"
        );
        assert_eq!(
            describe(&MbusShortFrame::req_ud2(5, false).to_bytes()),
            "REQ_UD2 to 5 (FCB 0)"
        );
        assert_eq!(describe(&[0xE5]), "ACK (E5)");
        assert!(describe(&[0xE5, 0xE5]).starts_with("garbled"));
        assert!(describe(&[]).starts_with("nothing"));
        assert!(describe(&SecondaryAddress::ANY.selection_frame(false))
            .starts_with("SND_UD select FFFFFFFF"));
    }
}
