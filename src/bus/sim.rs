//! A simulated wired M-Bus for tests: slaves with primary and secondary addresses,
//! answering like real slaves (EN 13757-2), with the faults a real bus shows: colliding
//! answers, slow and dead slaves, damaged checksums, multi-telegram answers.
//!
//! [`SimBus`] is the pure core (request bytes in, answer bytes out); [`SimTransport`] calls
//! it directly for fast unit tests of the master. The integration tests serve it on a
//! pseudo terminal (`tests/support/bus_pty.rs`).
//!
//! Collisions: when several slaves answer, their bits overlap on the bus. The model here
//! ANDs the answers byte by byte (a space, current drawn by any slave, wins) and clears
//! bit 6 of every byte for the bit-time offset between the senders, so two ACKs never
//! look like one: the master sees garbled bytes, as on a real bus.

use std::time::Duration;

use crate::wire::address::Address;
use crate::wire::mbus::{
    self, MbusLongFrame, SecondaryAddress, WiredFrame, ADDRESS_BROADCAST, ADDRESS_BROADCAST_REPLY,
    ADDRESS_SELECTED, CI_SELECT, SINGLE_ACK,
};

/// What a slave answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimTelegram {
    /// Record bytes: the slave sends them in an RSP_UD with its long header (CI 0x72),
    /// its access number counting up, and DIF 0x1F appended when telegrams follow.
    Records(Vec<u8>),
    /// A complete long frame, sent as it is (a real frame of the corpus).
    Frame(Vec<u8>),
}

/// How a slave misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Answers after this delay.
    Slow(Duration),
    /// The first N RSP_UD answers carry a wrong checksum.
    BadChecksum(u32),
    /// Never answers.
    Dead,
}

#[derive(Debug, Clone)]
pub struct SimSlave {
    pub primary: Option<u8>,
    pub address: Address,
    pub telegrams: Vec<SimTelegram>,
    pub fault: Fault,
    selected: bool,
    /// FCB of the last REQ_UD2 with FCV; `Some(false)` after SND_NKE (cleared).
    last_fcb: Option<bool>,
    /// Index of the telegram last sent, `None` before the first.
    current: Option<usize>,
    access: u8,
    damaged_left: u32,
}

impl SimSlave {
    /// A slave sending `telegrams` (record bytes each) from a long header with `address`.
    pub fn new(primary: Option<u8>, address: Address, telegrams: Vec<Vec<u8>>) -> Self {
        Self::with(
            primary,
            address,
            telegrams.into_iter().map(SimTelegram::Records).collect(),
        )
    }

    /// A slave answering with a real long frame: its primary address is the frame's A-field,
    /// its secondary address the frame's long header.
    pub fn from_frame(frame: &[u8]) -> Option<Self> {
        let (long, _) = MbusLongFrame::parse(frame).ok()?;
        let (tpl, _) = long.tpl().ok()?;
        Some(Self::with(
            Some(long.address),
            tpl.long_address?,
            vec![SimTelegram::Frame(frame.to_vec())],
        ))
    }

    fn with(primary: Option<u8>, address: Address, telegrams: Vec<SimTelegram>) -> Self {
        SimSlave {
            primary,
            address,
            telegrams,
            fault: Fault::None,
            selected: false,
            last_fcb: None,
            current: None,
            access: 0,
            damaged_left: 0,
        }
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        if let Fault::BadChecksum(n) = fault {
            self.damaged_left = n;
        }
        self
    }

    fn addressed(&self, address: u8) -> bool {
        match address {
            ADDRESS_SELECTED => self.selected,
            ADDRESS_BROADCAST | ADDRESS_BROADCAST_REPLY => true,
            a => self.primary == Some(a),
        }
    }

    fn reset(&mut self) {
        self.last_fcb = Some(false);
        self.current = None;
    }

    /// The telegram for a REQ_UD2: the next one when the FCB toggled, the same again when
    /// it did not (the master repeats after a lost answer).
    fn respond(&mut self, fcb: Option<bool>) -> Vec<u8> {
        let count = self.telegrams.len().max(1);
        let next = match (self.current, fcb) {
            (None, _) => 0,
            (Some(i), Some(f)) if Some(f) != self.last_fcb => (i + 1) % count,
            (Some(i), _) => i,
        };
        if fcb.is_some() {
            self.last_fcb = fcb;
        }
        self.current = Some(next);
        self.access = self.access.wrapping_add(1);
        let mut frame = self.telegram_bytes(next, count);
        if self.damaged_left > 0 {
            self.damaged_left -= 1;
            let cs = frame.len().saturating_sub(2);
            if let Some(b) = frame.get_mut(cs) {
                *b ^= 0x5A;
            }
        }
        frame
    }

    fn telegram_bytes(&self, index: usize, count: usize) -> Vec<u8> {
        let records = match self.telegrams.get(index) {
            Some(SimTelegram::Frame(bytes)) => return bytes.clone(),
            Some(SimTelegram::Records(r)) => r.as_slice(),
            None => &[],
        };
        let mut data = Vec::with_capacity(12 + records.len() + 1);
        self.address.emit(&mut data);
        // ACC, STS (no error), signature 00 00 (no encryption).
        data.extend_from_slice(&[self.access, 0x00, 0x00, 0x00]);
        data.extend_from_slice(records);
        if index + 1 < count {
            data.push(crate::wire::apl::DIF_MORE_RECORDS_FOLLOW);
        }
        let mut out = Vec::new();
        let frame = MbusLongFrame {
            control: mbus::C_RSP_UD,
            address: self.primary.unwrap_or(0),
            ci: 0x72,
            data: &data,
        };
        // Records of a test slave are short; a too long one is sent as nothing.
        if frame.emit(&mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// An answer and when to send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub delay: Duration,
}

/// The slaves of one bus and what the master sent them.
#[derive(Debug, Clone, Default)]
pub struct SimBus {
    pub slaves: Vec<SimSlave>,
    /// Every frame the master sent, in order.
    pub requests: Vec<Vec<u8>>,
}

impl SimBus {
    pub fn new(slaves: Vec<SimSlave>) -> Self {
        SimBus {
            slaves,
            requests: Vec::new(),
        }
    }

    /// Requests sent to primary address `address` with C-field `control` (any FCB).
    pub fn count(&self, control: u8, address: u8) -> usize {
        let mask = !(mbus::FCB | mbus::FCV);
        self.requests
            .iter()
            .filter(|r| {
                matches!(WiredFrame::parse(r), Ok((WiredFrame::Short(s), _))
                    if s.address == address && s.control & mask == control & mask)
            })
            .count()
    }

    /// What the slaves answer to one request frame.
    pub fn answer(&mut self, request: &[u8]) -> Answer {
        self.requests.push(request.to_vec());
        let mut answers: Vec<(Vec<u8>, Duration)> = Vec::new();
        match WiredFrame::parse(request) {
            Ok((WiredFrame::Short(s), _)) => {
                for slave in &mut self.slaves {
                    if let Some(a) = short_request(slave, s) {
                        answers.push(a);
                    }
                }
            }
            Ok((WiredFrame::Long(l), _)) if l.address == ADDRESS_SELECTED && l.ci == CI_SELECT => {
                let Ok(mask) = SecondaryAddress::parse(l.data) else {
                    return Answer::default();
                };
                for slave in &mut self.slaves {
                    let matches =
                        mask.matches(&SecondaryAddress::from_long_address(&slave.address));
                    slave.selected = matches;
                    if matches && slave.fault != Fault::Dead {
                        slave.reset();
                        answers.push((vec![SINGLE_ACK], delay_of(slave.fault)));
                    }
                }
            }
            _ => {}
        }
        collide(answers)
    }
}

fn delay_of(fault: Fault) -> Duration {
    match fault {
        Fault::Slow(d) => d,
        _ => Duration::ZERO,
    }
}

/// A slave's answer to SND_NKE or REQ_UD2.
fn short_request(slave: &mut SimSlave, s: mbus::MbusShortFrame) -> Option<(Vec<u8>, Duration)> {
    if !slave.addressed(s.address) || slave.fault == Fault::Dead {
        return None;
    }
    let delay = delay_of(slave.fault);
    match s.control & !(mbus::FCB | mbus::FCV) {
        mbus::C_SND_NKE => {
            slave.reset();
            if s.address == ADDRESS_SELECTED {
                slave.selected = false;
            }
            (s.address != ADDRESS_BROADCAST).then(|| (vec![SINGLE_ACK], delay))
        }
        0x4B if s.address != ADDRESS_BROADCAST => Some((slave.respond(s.fcb()), delay)),
        _ => None,
    }
}

/// One slave's answer as it is, several overlapping as garbled bytes (see the module docs).
fn collide(mut answers: Vec<(Vec<u8>, Duration)>) -> Answer {
    match answers.len() {
        0 => Answer::default(),
        1 => {
            let (bytes, delay) = answers.remove(0);
            Answer { bytes, delay }
        }
        _ => {
            let len = answers.iter().map(|(b, _)| b.len()).max().unwrap_or(0);
            let delay = answers.iter().map(|(_, d)| *d).min().unwrap_or_default();
            let bytes = (0..len)
                .map(|i| {
                    answers
                        .iter()
                        .fold(0xFF, |acc, (b, _)| acc & b.get(i).copied().unwrap_or(0xFF))
                        & 0xBF
                })
                .collect();
            Answer { bytes, delay }
        }
    }
}

/// A [`super::Transport`] that hands requests straight to a [`SimBus`]: no timing, no
/// pty, for unit tests of the master's logic.
pub struct SimTransport(pub SimBus);

impl super::Transport for SimTransport {
    async fn exchange(
        &mut self,
        request: &[u8],
        _timing: &super::Timing,
    ) -> std::io::Result<Vec<u8>> {
        Ok(self.0.answer(request).bytes)
    }
}

/// A long header identity for test slaves: id (8 digits), manufacturer code, version,
/// medium.
pub fn identity(id: u32, manufacturer: &str, version: u8, medium: u8) -> Option<Address> {
    let digits = SecondaryAddress::from_id(id)?;
    let mut bytes = Vec::new();
    SecondaryAddress {
        manufacturer: crate::wire::manufacturer::Manufacturer::from_code(manufacturer)?.0,
        version,
        medium,
        ..digits
    }
    .emit(&mut bytes);
    Address::parse(&bytes).ok().map(|(a, _)| a)
}
