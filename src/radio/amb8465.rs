//! Amber / Würth Elektronik AMB8465 (and AMB3665) command-frame codec (protocol.md §6.2).
//!
//! Frames are `FF | CMD | LEN | payload[LEN] | CS` with CS the XOR of every preceding byte
//! including 0xFF; responses carry `CMD | 0x80`. Received telegrams arrive as DATA_IND
//! (`CMD 0x03`) whose payload starts at the C-field; when the module's RSSI_Enable
//! parameter is set, LEN counts one trailing RSSI byte.
//!
//! RSSI: CC1101 convention used by the module, `raw >= 128 ? (raw - 256) / 2 - 74 : raw / 2 - 74`.

use super::stream::{FrameStream, Framing};
use super::{check_canonical, DecoderStats, TelegramError};
use crate::frame::LinkMode;

/// Default serial speed.
pub const BAUD: u32 = 9_600;
/// Start of frame.
pub const SOF: u8 = 0xFF;
/// Bit set in the command byte of every response.
pub const RESPONSE: u8 = 0x80;

pub const CMD_DATA_REQ: u8 = 0x00;
pub const CMD_DATA_IND: u8 = 0x03;
pub const CMD_SET_MODE_REQ: u8 = 0x04;
pub const CMD_RESET_REQ: u8 = 0x05;
pub const CMD_SET_REQ: u8 = 0x09;
pub const CMD_GET_REQ: u8 = 0x0A;
pub const CMD_SERIALNO_REQ: u8 = 0x0B;
pub const CMD_FWV_REQ: u8 = 0x0C;
pub const CMD_RSSI_REQ: u8 = 0x0D;

/// Non-volatile parameter: 1 = telegrams wrapped as DATA_IND command frames.
pub const PARAM_UART_CMD_OUT_ENABLE: u8 = 0x05;
/// Non-volatile parameter: 1 = one RSSI byte appended to each telegram.
pub const PARAM_RSSI_ENABLE: u8 = 0x45;
/// Non-volatile parameter: auto-sleep; non-zero loses telegrams.
pub const PARAM_AUTO_SLEEP: u8 = 0x3F;

/// Commands (without the response bit) this module family defines; anything else after
/// 0xFF is a false start.
const KNOWN_COMMANDS: [u8; 18] = [
    0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x11, 0x30, 0x31, 0x50,
    0x51, 0x52,
];

const HEADER_LEN: usize = 3;

/// One command frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmberFrame {
    pub cmd: u8,
    pub payload: Vec<u8>,
}

fn xor_checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

impl AmberFrame {
    pub fn new(cmd: u8, payload: Vec<u8>) -> Self {
        AmberFrame { cmd, payload }
    }

    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let len = u8::try_from(self.payload.len()).map_err(|_| Error::PayloadTooLong {
            len: self.payload.len(),
        })?;
        let mut out = Vec::with_capacity(self.payload.len() + 4);
        out.extend_from_slice(&[SOF, self.cmd, len]);
        out.extend_from_slice(&self.payload);
        out.push(xor_checksum(&out));
        Ok(out)
    }

    /// Parses one frame at the start of `bytes`; returns it and the bytes it used.
    pub fn parse(bytes: &[u8]) -> Result<(AmberFrame, usize), Error> {
        let Some(&sof) = bytes.first() else {
            return Err(Error::Incomplete {
                needed: HEADER_LEN + 1,
            });
        };
        if sof != SOF {
            return Err(Error::NotStartOfFrame { byte: sof });
        }
        let Some(&cmd) = bytes.get(1) else {
            return Err(Error::Incomplete { needed: 3 });
        };
        if !KNOWN_COMMANDS.contains(&(cmd & !RESPONSE)) {
            return Err(Error::UnknownCommand { cmd });
        }
        let Some(&len) = bytes.get(2) else {
            return Err(Error::Incomplete { needed: 2 });
        };
        let total = HEADER_LEN + usize::from(len) + 1;
        let Some(frame) = bytes.get(..total) else {
            return Err(Error::Incomplete {
                needed: total - bytes.len(),
            });
        };
        let (body, cs) = frame.split_at(total - 1);
        let stored = cs.first().copied().unwrap_or(0);
        let computed = xor_checksum(body);
        if stored != computed {
            return Err(Error::Checksum { stored, computed });
        }
        Ok((
            AmberFrame {
                cmd,
                payload: body.get(HEADER_LEN..).unwrap_or(&[]).to_vec(),
            },
            total,
        ))
    }
}

/// Everything that can be wrong with Amber bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("amb8465: {needed} more byte(s) needed")]
    Incomplete { needed: usize },
    #[error("amb8465: byte 0: expected start of frame 0xFF, got 0x{byte:02X}")]
    NotStartOfFrame { byte: u8 },
    #[error("amb8465: skipped {skipped} byte(s) of garbage before a start of frame")]
    Garbage { skipped: usize },
    #[error("amb8465: byte 1: unknown command 0x{cmd:02X}")]
    UnknownCommand { cmd: u8 },
    #[error("amb8465: checksum mismatch: stored {stored:02X}, computed {computed:02X}")]
    Checksum { stored: u8, computed: u8 },
    #[error(
        "amb8465: frame truncated: {have} of {expected} byte(s) arrived before the line went idle"
    )]
    Truncated { have: usize, expected: usize },
    #[error("amb8465: byte 3: {what} payload of {len} byte(s) is too short")]
    ShortPayload { what: &'static str, len: usize },
    #[error("amb8465: received telegram: {0}")]
    Telegram(TelegramError),
    #[error("amb8465: payload of {len} byte(s) does not fit the length byte")]
    PayloadTooLong { len: usize },
    #[error("amb8465: link mode {0} is not supported by the AMB8465")]
    UnsupportedMode(LinkMode),
}

/// Firmware version from FWV_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firmware {
    pub major: u8,
    pub minor: u8,
    pub patch: u8,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    DataIndication {
        /// Canonical frame: L-field followed by C-field onwards, no CRCs, no RSSI.
        frame: Vec<u8>,
        rssi_raw: Option<u8>,
        rssi_dbm: Option<f32>,
    },
    /// SET_MODE response; status 0 = OK.
    SetModeRsp {
        status: u8,
    },
    /// SET_REQ response; 0 OK, 1 verify failed, 2 bad address/count.
    SetRsp {
        status: u8,
    },
    /// RESET response; status 0 = OK.
    ResetRsp {
        status: u8,
    },
    /// GET_REQ response: parameters starting at `addr`.
    GetRsp {
        addr: u8,
        values: Vec<u8>,
    },
    Firmware(Firmware),
    SerialNumber(Vec<u8>),
    /// Current channel RSSI (raw).
    Rssi {
        raw: u8,
        dbm: f32,
    },
    /// Any other well-formed frame (requests, transmit confirmations, …).
    Other(AmberFrame),
}

/// Raw RSSI byte to dBm (CC1101 convention).
pub fn rssi_to_dbm(raw: u8) -> f32 {
    f32::from(i8::from_ne_bytes([raw])) / 2.0 - 74.0
}

fn single_status(frame: &AmberFrame, what: &'static str) -> Result<u8, Error> {
    frame.payload.first().copied().ok_or(Error::ShortPayload {
        what,
        len: frame.payload.len(),
    })
}

impl Message {
    /// Interprets a well-formed frame; `rssi_enabled` says whether DATA_IND ends in RSSI.
    pub fn from_frame(frame: AmberFrame, rssi_enabled: bool) -> Result<Message, Error> {
        match frame.cmd {
            CMD_DATA_IND => {
                let (body, rssi) = if rssi_enabled {
                    match frame.payload.split_last() {
                        Some((&r, body)) => (body, Some(r)),
                        None => (&[][..], None),
                    }
                } else {
                    (frame.payload.as_slice(), None)
                };
                let l = u8::try_from(body.len())
                    .map_err(|_| Error::PayloadTooLong { len: body.len() })?;
                let mut canonical = Vec::with_capacity(body.len() + 1);
                canonical.push(l);
                canonical.extend_from_slice(body);
                check_canonical(&canonical).map_err(Error::Telegram)?;
                Ok(Message::DataIndication {
                    frame: canonical,
                    rssi_raw: rssi,
                    rssi_dbm: rssi.map(rssi_to_dbm),
                })
            }
            c if c == CMD_SET_MODE_REQ | RESPONSE => Ok(Message::SetModeRsp {
                status: single_status(&frame, "SET_MODE response")?,
            }),
            c if c == CMD_SET_REQ | RESPONSE => Ok(Message::SetRsp {
                status: single_status(&frame, "SET response")?,
            }),
            c if c == CMD_RESET_REQ | RESPONSE => Ok(Message::ResetRsp {
                status: single_status(&frame, "RESET response")?,
            }),
            c if c == CMD_GET_REQ | RESPONSE => match frame.payload.as_slice() {
                [addr, count, values @ ..] if values.len() == usize::from(*count) => {
                    Ok(Message::GetRsp {
                        addr: *addr,
                        values: values.to_vec(),
                    })
                }
                p => Err(Error::ShortPayload {
                    what: "GET response",
                    len: p.len(),
                }),
            },
            c if c == CMD_FWV_REQ | RESPONSE => match frame.payload.as_slice() {
                [major, minor, patch, ..] => Ok(Message::Firmware(Firmware {
                    major: *major,
                    minor: *minor,
                    patch: *patch,
                })),
                p => Err(Error::ShortPayload {
                    what: "firmware version",
                    len: p.len(),
                }),
            },
            c if c == CMD_SERIALNO_REQ | RESPONSE => {
                if frame.payload.len() < 4 {
                    return Err(Error::ShortPayload {
                        what: "serial number",
                        len: frame.payload.len(),
                    });
                }
                Ok(Message::SerialNumber(frame.payload))
            }
            c if c == CMD_RSSI_REQ | RESPONSE => {
                let raw = single_status(&frame, "RSSI response")?;
                Ok(Message::Rssi {
                    raw,
                    dbm: rssi_to_dbm(raw),
                })
            }
            _ => Ok(Message::Other(frame)),
        }
    }
}

/// SET_MODE_REQ value for a receive mode (AMB8465, 868 MHz, "other" = collector roles).
pub fn mode_byte(mode: LinkMode) -> Result<u8, Error> {
    match mode {
        // S2 hears S1, S1-m and S2.
        LinkMode::S1 => Ok(0x03),
        // T2-other hears T1 meters.
        LinkMode::T1 => Ok(0x08),
        // C2-other hears C1 meters.
        LinkMode::C1 => Ok(0x0E),
        LinkMode::C1T1 => Ok(0x09),
        LinkMode::N1 | LinkMode::Wired => Err(Error::UnsupportedMode(mode)),
    }
}

/// SET_MODE_REQ (volatile): `FF 04 01 <mode> CS`.
pub fn set_mode(mode: LinkMode) -> Result<AmberFrame, Error> {
    Ok(AmberFrame::new(CMD_SET_MODE_REQ, vec![mode_byte(mode)?]))
}

/// GET_REQ: read `count` non-volatile parameters from `addr`.
pub fn get_params(addr: u8, count: u8) -> AmberFrame {
    AmberFrame::new(CMD_GET_REQ, vec![addr, count])
}

/// SET_REQ: write non-volatile parameters from `addr` (takes effect after a reset).
pub fn set_params(addr: u8, values: &[u8]) -> Result<AmberFrame, Error> {
    let count =
        u8::try_from(values.len()).map_err(|_| Error::PayloadTooLong { len: values.len() })?;
    let mut p = vec![addr, count];
    p.extend_from_slice(values);
    Ok(AmberFrame::new(CMD_SET_REQ, p))
}

/// RESET_REQ.
pub fn reset() -> AmberFrame {
    AmberFrame::new(CMD_RESET_REQ, Vec::new())
}

/// FWV_REQ: `FF 0C 00 F3`.
pub fn firmware_version() -> AmberFrame {
    AmberFrame::new(CMD_FWV_REQ, Vec::new())
}

/// SERIALNO_REQ.
pub fn serial_number() -> AmberFrame {
    AmberFrame::new(CMD_SERIALNO_REQ, Vec::new())
}

/// RSSI_REQ.
pub fn rssi() -> AmberFrame {
    AmberFrame::new(CMD_RSSI_REQ, Vec::new())
}

/// Builds a DATA_IND as the module sends it, for simulators and tests.
pub fn data_indication(canonical: &[u8], rssi: Option<u8>) -> Result<AmberFrame, Error> {
    check_canonical(canonical).map_err(Error::Telegram)?;
    let mut payload = canonical.get(1..).unwrap_or(&[]).to_vec();
    if let Some(r) = rssi {
        payload.push(r);
    }
    Ok(AmberFrame::new(CMD_DATA_IND, payload))
}

/// The AMB8465's framing for the shared stream scaffold.
#[derive(Debug)]
pub(crate) struct Amber;

impl Framing for Amber {
    type Frame = AmberFrame;
    type Error = Error;
    const SOF: u8 = SOF;
    fn parse(buf: &[u8]) -> Result<(AmberFrame, usize), Error> {
        AmberFrame::parse(buf)
    }
    fn needs(e: &Error) -> Option<usize> {
        match e {
            Error::Incomplete { needed } => Some(*needed),
            _ => None,
        }
    }
    fn garbage(skipped: usize) -> Error {
        Error::Garbage { skipped }
    }
    fn truncated(have: usize, expected: usize) -> Error {
        Error::Truncated { have, expected }
    }
}

/// Incremental decoder over the serial byte stream; resynchronises on garbage.
#[derive(Debug)]
pub struct Decoder {
    stream: FrameStream<Amber>,
    rssi_enabled: bool,
}

impl Decoder {
    /// `rssi_enabled`: the module's RSSI_Enable parameter (LEN of DATA_IND counts RSSI).
    pub fn new(rssi_enabled: bool) -> Self {
        Decoder {
            stream: FrameStream::default(),
            rssi_enabled,
        }
    }

    pub fn set_rssi_enabled(&mut self, on: bool) {
        self.rssi_enabled = on;
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.stream.push(bytes);
    }

    pub fn stats(&self) -> DecoderStats {
        self.stream.stats()
    }

    pub fn pending(&self) -> usize {
        self.stream.pending()
    }

    /// Next well-formed frame, an error describing skipped bytes, or None if more input
    /// is needed. Call until None after every push.
    pub fn next_frame(&mut self) -> Option<Result<AmberFrame, Error>> {
        self.stream.next_frame()
    }

    /// Next decoded message (see [`Decoder::next_frame`]).
    pub fn next_message(&mut self) -> Option<Result<Message, Error>> {
        let rssi = self.rssi_enabled;
        self.stream
            .next_message(|frame| Message::from_frame(frame, rssi))
    }

    /// The line went idle with a partial frame buffered: give it up as truncated.
    pub fn flush_stale(&mut self) -> Option<Error> {
        self.stream.flush_stale()
    }
}

/// The AMB8465 as a session drives it: its replies, initialisation and probe.
#[cfg(feature = "daemon")]
pub(crate) mod dongle {
    use super::{
        firmware_version, get_params, reset, set_mode, set_params, Decoder, Firmware, Message,
        PARAM_AUTO_SLEEP, PARAM_RSSI_ENABLE, PARAM_UART_CMD_OUT_ENABLE,
    };
    use crate::frame::CrcState;
    use crate::radio::link::{Dongle, Item, Port, Stop};
    use crate::radio::{DongleInfo, DriverKind, RadioError};

    const NAME: &str = "AMB8465";

    /// The answers the session waits for.
    pub(crate) enum Reply {
        Firmware(Firmware),
        SetMode(u8),
        Get { addr: u8, values: Vec<u8> },
        Set(u8),
        Reset,
    }

    impl Dongle for Decoder {
        type Reply = Reply;

        fn fresh() -> Self {
            Decoder::new(true)
        }

        fn push(&mut self, bytes: &[u8]) {
            Decoder::push(self, bytes);
        }

        fn next_item(&mut self) -> Option<Item<Reply>> {
            loop {
                return Some(match self.next_message()? {
                    Ok(Message::DataIndication {
                        frame, rssi_dbm, ..
                    }) => Item::Frame {
                        bytes: frame,
                        rssi_dbm,
                        crc: CrcState::Checked(None),
                    },
                    Ok(Message::Firmware(f)) => Item::Reply(Reply::Firmware(f)),
                    Ok(Message::SetModeRsp { status }) => Item::Reply(Reply::SetMode(status)),
                    Ok(Message::GetRsp { addr, values }) => {
                        Item::Reply(Reply::Get { addr, values })
                    }
                    Ok(Message::SetRsp { status }) => Item::Reply(Reply::Set(status)),
                    Ok(Message::ResetRsp { .. }) => Item::Reply(Reply::Reset),
                    Ok(other) => {
                        tracing::debug!(?other, "AMB8465 message ignored");
                        continue;
                    }
                    Err(e) => Item::Bad(e.to_string()),
                });
            }
        }

        fn flush_stale(&mut self) -> Option<String> {
            Decoder::flush_stale(self).map(|e| e.to_string())
        }

        fn liveness_request(&self) -> Vec<u8> {
            firmware_version().encode().unwrap_or_default()
        }

        fn probe_request() -> Vec<u8> {
            firmware_version().encode().unwrap_or_default()
        }

        fn identify(reply: &Reply) -> Option<DongleInfo> {
            let Reply::Firmware(f) = reply else {
                return None;
            };
            Some(DongleInfo {
                driver: DriverKind::Amb8465,
                description: format!("AMB8465 fw {f}"),
                id: None,
            })
        }

        /// Firmware version, command output and RSSI on, auto-sleep check, mode.
        async fn initialise(port: &mut Port<'_, Self>) -> Result<String, Stop> {
            let mode = port.mode();
            let req = firmware_version()
                .encode()
                .map_err(RadioError::request(NAME, "firmware version"))?;
            let fw = port
                .transact(&req, (NAME, "firmware version"), |r| match r {
                    Reply::Firmware(f) => Some(*f),
                    _ => None,
                })
                .await?;
            enable_output_and_rssi(port).await?;
            port.codec.set_rssi_enabled(true);
            let sleep = get_param(port, PARAM_AUTO_SLEEP, "GET auto-sleep").await?;
            if sleep != 0 {
                tracing::warn!(source = %port.source(), value = sleep, "AMB8465 auto-sleep is enabled; telegrams may be lost");
            }
            let req = set_mode(mode)
                .and_then(|f| f.encode())
                .map_err(RadioError::request(NAME, "set mode"))?;
            let status = port
                .transact(&req, (NAME, "set mode"), |r| match r {
                    Reply::SetMode(s) => Some(*s),
                    _ => None,
                })
                .await?;
            check_status(status, || format!("mode {mode}"))?;
            Ok(format!("AMB8465 fw {fw}"))
        }
    }

    fn check_status(status: u8, request: impl FnOnce() -> String) -> Result<(), Stop> {
        if status == 0 {
            return Ok(());
        }
        Err(RadioError::Rejected {
            dongle: NAME,
            request: request(),
            status,
        }
        .into())
    }

    /// One byte of the module's parameter memory.
    async fn get_param(
        port: &mut Port<'_, Decoder>,
        addr: u8,
        what: &'static str,
    ) -> Result<u8, Stop> {
        let req = get_params(addr, 1)
            .encode()
            .map_err(RadioError::request(NAME, what))?;
        port.transact(&req, (NAME, what), move |r| match r {
            Reply::Get { addr: a, values } if *a == addr => values.first().copied(),
            _ => None,
        })
        .await
    }

    /// UART_CMD_Out_Enable and RSSI_Enable must be 1. Both live in non-volatile memory and
    /// apply after a reset; this write happens once per module, not on every reconnect.
    async fn enable_output_and_rssi(port: &mut Port<'_, Decoder>) -> Result<(), Stop> {
        for attempt in 0..2 {
            let cmd_out =
                get_param(port, PARAM_UART_CMD_OUT_ENABLE, "GET UART_CMD_Out_Enable").await?;
            let rssi = get_param(port, PARAM_RSSI_ENABLE, "GET RSSI_Enable").await?;
            if cmd_out == 1 && rssi == 1 {
                return Ok(());
            }
            if attempt > 0 {
                break;
            }
            for addr in [PARAM_UART_CMD_OUT_ENABLE, PARAM_RSSI_ENABLE] {
                let req = set_params(addr, &[1])
                    .and_then(|f| f.encode())
                    .map_err(RadioError::request(NAME, "SET"))?;
                let status = port
                    .transact(&req, (NAME, "SET"), |r| match r {
                        Reply::Set(s) => Some(*s),
                        _ => None,
                    })
                    .await?;
                check_status(status, || format!("SET of parameter 0x{addr:02X}"))?;
            }
            let req = reset()
                .encode()
                .map_err(RadioError::request(NAME, "reset"))?;
            port.transact(&req, (NAME, "reset"), |r| {
                matches!(r, Reply::Reset).then_some(())
            })
            .await?;
        }
        Err(RadioError::Misconfigured {
            dongle: NAME,
            problem: "did not keep UART_CMD_Out_Enable/RSSI_Enable after reset",
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE_A: [u8; 47] = [
        0x2E, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, 0x7A, 0x2A, 0x00, 0x20, 0x25,
        0x59, 0x23, 0xC9, 0x5A, 0xAA, 0x26, 0xD1, 0xB2, 0xE7, 0x49, 0x3B, 0x01, 0x3E, 0xC4, 0xA6,
        0xF6, 0xD3, 0x52, 0x9B, 0x52, 0x0E, 0xDF, 0xF0, 0xEA, 0x6D, 0xEF, 0xC9, 0x9D, 0x6D, 0x69,
        0xEB, 0xF3,
    ];

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        super::super::decode_hex(&s).unwrap()
    }

    fn decode_all(d: &mut Decoder) -> Vec<Result<Message, Error>> {
        std::iter::from_fn(|| d.next_message()).collect()
    }

    #[test]
    fn recorded_init_requests() {
        assert_eq!(firmware_version().encode(), Ok(hex("FF 0C 00 F3")));
        assert_eq!(
            set_mode(LinkMode::T1).unwrap().encode(),
            Ok(hex("FF 04 01 08 F2"))
        );
        assert_eq!(
            set_mode(LinkMode::C1).unwrap().encode(),
            Ok(hex("FF 04 01 0E F4"))
        );
        assert_eq!(
            set_mode(LinkMode::C1T1).unwrap().encode(),
            Ok(hex("FF 04 01 09 F3"))
        );
        assert_eq!(
            set_mode(LinkMode::S1).unwrap().encode(),
            Ok(hex("FF 04 01 03 F9"))
        );
        assert_eq!(get_params(0x05, 1).encode(), Ok(hex("FF 0A 02 05 01 F3")));
        assert_eq!(get_params(0x45, 1).encode(), Ok(hex("FF 0A 02 45 01 B3")));
        assert_eq!(get_params(0x3F, 1).encode(), Ok(hex("FF 0A 02 3F 01 C9")));
        assert_eq!(
            get_params(0x00, 0x80).encode(),
            Ok(hex("FF 0A 02 00 80 77"))
        );
        assert_eq!(
            set_mode(LinkMode::N1),
            Err(Error::UnsupportedMode(LinkMode::N1))
        );
    }

    #[test]
    fn recorded_init_responses() {
        let mut d = Decoder::new(true);
        d.push(&hex(
            "FF 8C 03 01 02 03 70  FF 84 01 00 7A  FF 8A 03 05 01 01 73
             FF 8A 03 45 01 01 33  FF 8A 03 3F 01 00 48",
        ));
        assert_eq!(
            decode_all(&mut d),
            vec![
                Ok(Message::Firmware(Firmware {
                    major: 1,
                    minor: 2,
                    patch: 3
                })),
                Ok(Message::SetModeRsp { status: 0 }),
                Ok(Message::GetRsp {
                    addr: 0x05,
                    values: vec![1]
                }),
                Ok(Message::GetRsp {
                    addr: 0x45,
                    values: vec![1]
                }),
                Ok(Message::GetRsp {
                    addr: 0x3F,
                    values: vec![0]
                }),
            ]
        );
        assert_eq!(d.stats().messages, 5);
    }

    #[test]
    fn synthesised_data_indication() {
        let ind = data_indication(&PROFILE_A, Some(0xD6))
            .unwrap()
            .encode()
            .unwrap();
        assert_eq!(
            ind.get(..12),
            Some(&hex("FF 03 2F 44 93 15 78 56 34 12 33 03")[..])
        );
        assert_eq!(ind.get(ind.len() - 5..), Some(&hex("69 EB F3 D6 DB")[..]));
        assert_eq!(ind.len(), 3 + 47 + 1);
        let mut d = Decoder::new(true);
        d.push(&ind);
        assert_eq!(
            decode_all(&mut d),
            vec![Ok(Message::DataIndication {
                frame: PROFILE_A.to_vec(),
                rssi_raw: Some(0xD6),
                rssi_dbm: Some(-95.0),
            })]
        );
        // Without RSSI the LEN equals L.
        let plain = data_indication(&PROFILE_A, None).unwrap().encode().unwrap();
        assert_eq!(plain.get(2), Some(&0x2E));
        let mut d = Decoder::new(false);
        d.push(&plain);
        assert!(matches!(
            d.next_message(),
            Some(Ok(Message::DataIndication { rssi_raw: None, .. }))
        ));
    }

    #[test]
    fn rssi_formula() {
        assert_eq!(rssi_to_dbm(0xD6), -95.0);
        assert_eq!(rssi_to_dbm(0x00), -74.0);
        assert_eq!(rssi_to_dbm(0x7F), -10.5);
        assert_eq!(rssi_to_dbm(0x80), -138.0);
    }

    #[test]
    fn resync_and_bad_frames() {
        let good = data_indication(&PROFILE_A, Some(0xD6))
            .unwrap()
            .encode()
            .unwrap();
        let mut bad_cs = good.clone();
        if let Some(last) = bad_cs.last_mut() {
            *last ^= 0x01;
        }
        let mut stream = hex("00 12 FF 7F");
        stream.extend_from_slice(&bad_cs);
        stream.extend_from_slice(&good);
        let mut d = Decoder::new(true);
        let mut frames = Vec::new();
        let mut errors = Vec::new();
        for chunk in stream.chunks(7) {
            d.push(chunk);
            while let Some(item) = d.next_message() {
                match item {
                    Ok(Message::DataIndication { frame, .. }) => frames.push(frame),
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(e) => errors.push(e),
                }
            }
        }
        assert_eq!(frames, vec![PROFILE_A.to_vec()]);
        assert_eq!(errors.first(), Some(&Error::Garbage { skipped: 2 }));
        assert!(errors.contains(&Error::UnknownCommand { cmd: 0x7F }));
        assert!(errors.iter().any(|e| matches!(e, Error::Checksum { .. })));
        assert_eq!(d.stats().bad_frames, 2);
    }

    #[test]
    fn truncated_and_short_frames() {
        let good = data_indication(&PROFILE_A, Some(0xD6))
            .unwrap()
            .encode()
            .unwrap();
        let mut d = Decoder::new(true);
        d.push(good.get(..10).unwrap());
        assert!(d.next_message().is_none());
        assert_eq!(
            d.flush_stale(),
            Some(Error::Truncated {
                have: 10,
                expected: good.len()
            })
        );
        // DATA_IND too short for a wM-Bus header.
        d = Decoder::new(true);
        d.push(
            &AmberFrame::new(CMD_DATA_IND, vec![0x44, 0x93, 0xD6])
                .encode()
                .unwrap(),
        );
        assert_eq!(
            d.next_message(),
            Some(Err(Error::Telegram(TelegramError::TooShort { len: 3 })))
        );
        d.push(
            &AmberFrame::new(CMD_FWV_REQ | RESPONSE, vec![1])
                .encode()
                .unwrap(),
        );
        assert!(matches!(
            d.next_message(),
            Some(Err(Error::ShortPayload { .. }))
        ));
        d.push(
            &AmberFrame::new(CMD_GET_REQ | RESPONSE, vec![5, 2, 1])
                .encode()
                .unwrap(),
        );
        assert!(matches!(
            d.next_message(),
            Some(Err(Error::ShortPayload { .. }))
        ));
    }

    #[test]
    fn other_responses() {
        let mut d = Decoder::new(true);
        d.push(
            &AmberFrame::new(CMD_SERIALNO_REQ | RESPONSE, vec![1, 2, 3, 4])
                .encode()
                .unwrap(),
        );
        d.push(
            &AmberFrame::new(CMD_RSSI_REQ | RESPONSE, vec![0xD6])
                .encode()
                .unwrap(),
        );
        d.push(
            &set_params(PARAM_RSSI_ENABLE, &[1])
                .unwrap()
                .encode()
                .unwrap(),
        );
        assert_eq!(
            decode_all(&mut d),
            vec![
                Ok(Message::SerialNumber(vec![1, 2, 3, 4])),
                Ok(Message::Rssi {
                    raw: 0xD6,
                    dbm: -95.0
                }),
                Ok(Message::Other(AmberFrame::new(
                    CMD_SET_REQ,
                    vec![0x45, 1, 1]
                ))),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..8),
                        rssi in proptest::prelude::any::<bool>()) {
            let mut d = Decoder::new(rssi);
            for c in &chunks {
                d.push(c);
                let mut guard = 0;
                while d.next_message().is_some() {
                    guard += 1;
                    proptest::prop_assert!(guard < 10_000);
                }
                let _ = d.flush_stale();
            }
        }

        #[test]
        fn data_indication_round_trips(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 10..254usize),
                                       rssi in proptest::option::of(proptest::prelude::any::<u8>())) {
            let mut canonical = vec![body.len() as u8];
            canonical.extend_from_slice(&body);
            let bytes = data_indication(&canonical, rssi).and_then(|f| f.encode());
            proptest::prop_assert!(bytes.is_ok());
            let mut d = Decoder::new(rssi.is_some());
            d.push(&bytes.unwrap_or_default());
            match d.next_message() {
                Some(Ok(Message::DataIndication { frame, rssi_raw, .. })) => {
                    proptest::prop_assert_eq!(frame, canonical);
                    proptest::prop_assert_eq!(rssi_raw, rssi);
                }
                other => proptest::prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
