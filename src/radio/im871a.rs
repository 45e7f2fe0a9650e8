//! IMST iM871A / iM170A "WM-Bus HCI" codec (protocol.md §6.1).
//!
//! An HCI message is `A5 | flags+endpoint | msg id | N | payload[N] | [timestamp 4 LE]
//! | [RSSI 1] | [CRC-16/X-25 2 LE]`, the optional parts announced by the flag nibble.
//! Received telegrams arrive as RADIOLINK `WMBUSMSG_IND` whose payload starts at the
//! C-field without DLL CRCs; the canonical frame is `[N] + payload`.
//!
//! RSSI: we use IMST's linear approximation as published by the ioBroker driver,
//! `dBm = raw * 8 / 15 - 380 / 3` (raw 0 -> -126.7 dBm, raw 255 -> +9.3 dBm), because it
//! is continuous over the whole byte range; the alternative piecewise formula clamps
//! at raw 230 and disagrees by a few dB.

use super::stream::{FrameStream, Framing};
use super::{check_canonical, DecoderStats, TelegramError};
use crate::frame::LinkMode;
use crate::wire::crc::crc16_x25;

/// Default serial speed.
pub const BAUD: u32 = 57_600;
/// Start of frame.
pub const SOF: u8 = 0xA5;

/// Flag bit: a 4-byte receive timestamp follows the payload.
pub const FLAG_TIMESTAMP: u8 = 0x20;
/// Flag bit: one raw RSSI byte follows the payload (and timestamp).
pub const FLAG_RSSI: u8 = 0x40;
/// Flag bit: CRC-16/X-25 ends the message.
pub const FLAG_CRC: u8 = 0x80;
/// Reserved flag bit, must be zero.
const FLAG_RESERVED: u8 = 0x10;

/// Endpoint: device management.
pub const EP_DEVMGMT: u8 = 0x01;
/// Endpoint: radio link (telegrams).
pub const EP_RADIOLINK: u8 = 0x02;
/// Endpoint: radio link test.
pub const EP_RADIOLINKTEST: u8 = 0x03;
/// Endpoint: hardware test.
pub const EP_HWTEST: u8 = 0x04;

pub const DEVMGMT_PING_REQ: u8 = 0x01;
pub const DEVMGMT_PING_RSP: u8 = 0x02;
pub const DEVMGMT_SET_CONFIG_REQ: u8 = 0x03;
pub const DEVMGMT_SET_CONFIG_RSP: u8 = 0x04;
pub const DEVMGMT_GET_CONFIG_REQ: u8 = 0x05;
pub const DEVMGMT_GET_CONFIG_RSP: u8 = 0x06;
pub const DEVMGMT_GET_DEVICEINFO_REQ: u8 = 0x0F;
pub const DEVMGMT_GET_DEVICEINFO_RSP: u8 = 0x10;
pub const RADIOLINK_WMBUSMSG_IND: u8 = 0x03;

/// Module type byte of the iM871A (868 MHz) in the device info.
pub const MODULE_IM871A: u8 = 0x33;
/// Module type byte of the iM170A (169 MHz).
pub const MODULE_IM170A: u8 = 0x36;

/// Fixed header: SOF, flags+endpoint, message id, payload length.
const HEADER_LEN: usize = 4;
/// Longest possible message: header, 255 payload, timestamp, RSSI, CRC.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + 255 + 4 + 1 + 2;

/// One HCI message as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HciFrame {
    /// Endpoint id (low nibble of byte 1).
    pub endpoint: u8,
    pub msg_id: u8,
    pub payload: Vec<u8>,
    /// Dongle RTC ticks at reception (flag 0x20).
    pub timestamp: Option<u32>,
    /// Raw RSSI byte (flag 0x40).
    pub rssi: Option<u8>,
    /// Whether a CRC is (to be) attached (flag 0x80). On parse it has been verified.
    pub crc: bool,
}

impl HciFrame {
    /// A plain request/response without optional fields.
    pub fn new(endpoint: u8, msg_id: u8, payload: Vec<u8>) -> Self {
        HciFrame {
            endpoint,
            msg_id,
            payload,
            timestamp: None,
            rssi: None,
            crc: false,
        }
    }

    /// Same message with a CRC attached.
    pub fn with_crc(mut self) -> Self {
        self.crc = true;
        self
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.timestamp.is_some() {
            f |= FLAG_TIMESTAMP;
        }
        if self.rssi.is_some() {
            f |= FLAG_RSSI;
        }
        if self.crc {
            f |= FLAG_CRC;
        }
        f
    }

    /// Serialises the message. Payloads longer than 255 bytes cannot be expressed.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let n = u8::try_from(self.payload.len()).map_err(|_| Error::PayloadTooLong {
            len: self.payload.len(),
        })?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len() + 7);
        out.push(SOF);
        out.push(self.flags() | (self.endpoint & 0x0F));
        out.push(self.msg_id);
        out.push(n);
        out.extend_from_slice(&self.payload);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(&ts.to_le_bytes());
        }
        if let Some(r) = self.rssi {
            out.push(r);
        }
        if self.crc {
            let crc = crc16_x25(out.get(1..).unwrap_or(&[]));
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Ok(out)
    }

    /// Parses one message at the start of `bytes`; returns it and the bytes it used.
    pub fn parse(bytes: &[u8]) -> Result<(HciFrame, usize), Error> {
        let Some(&sof) = bytes.first() else {
            return Err(Error::Incomplete { needed: HEADER_LEN });
        };
        if sof != SOF {
            return Err(Error::NotStartOfFrame { byte: sof });
        }
        let Some(&control) = bytes.get(1) else {
            return Err(Error::Incomplete {
                needed: HEADER_LEN - bytes.len(),
            });
        };
        let flags = control & 0xF0;
        let endpoint = control & 0x0F;
        if flags & FLAG_RESERVED != 0 {
            return Err(Error::ReservedFlag { control });
        }
        let max_id = match endpoint {
            EP_DEVMGMT => 0x27,
            EP_RADIOLINK => 0x05,
            EP_RADIOLINKTEST => 0x07,
            EP_HWTEST => 0x02,
            _ => return Err(Error::UnknownEndpoint { endpoint }),
        };
        let Some(&msg_id) = bytes.get(2) else {
            return Err(Error::Incomplete {
                needed: HEADER_LEN - bytes.len(),
            });
        };
        if msg_id == 0 || msg_id > max_id {
            return Err(Error::UnknownMessage { endpoint, msg_id });
        }
        let Some(&n) = bytes.get(3) else {
            return Err(Error::Incomplete { needed: 1 });
        };
        let n = usize::from(n);
        let ts_len = if flags & FLAG_TIMESTAMP != 0 { 4 } else { 0 };
        let rssi_len = usize::from(flags & FLAG_RSSI != 0);
        let crc_len = if flags & FLAG_CRC != 0 { 2 } else { 0 };
        let total = HEADER_LEN + n + ts_len + rssi_len + crc_len;
        let Some(msg) = bytes.get(..total) else {
            return Err(Error::Incomplete {
                needed: total - bytes.len(),
            });
        };
        let payload_end = HEADER_LEN + n;
        let payload = msg.get(HEADER_LEN..payload_end).unwrap_or(&[]).to_vec();
        let mut pos = payload_end;
        let timestamp = if ts_len == 4 {
            let ts = msg
                .get(pos..pos + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_le_bytes);
            pos += 4;
            ts
        } else {
            None
        };
        let rssi = if rssi_len == 1 {
            let r = msg.get(pos).copied();
            pos += 1;
            r
        } else {
            None
        };
        if crc_len == 2 {
            let stored = msg
                .get(pos..pos + 2)
                .map(|s| {
                    u16::from_le_bytes([
                        s.first().copied().unwrap_or(0),
                        s.get(1).copied().unwrap_or(0),
                    ])
                })
                .unwrap_or(0);
            let computed = crc16_x25(msg.get(1..pos).unwrap_or(&[]));
            if stored != computed {
                return Err(Error::Crc { stored, computed });
            }
        }
        Ok((
            HciFrame {
                endpoint,
                msg_id,
                payload,
                timestamp,
                rssi,
                crc: crc_len == 2,
            },
            total,
        ))
    }
}

/// Everything that can be wrong with HCI bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("im871a: {needed} more byte(s) needed")]
    Incomplete { needed: usize },
    #[error("im871a: byte 0: expected start of frame 0xA5, got 0x{byte:02X}")]
    NotStartOfFrame { byte: u8 },
    #[error("im871a: skipped {skipped} byte(s) of garbage before a start of frame")]
    Garbage { skipped: usize },
    #[error("im871a: byte 1: reserved flag 0x10 set in control 0x{control:02X}")]
    ReservedFlag { control: u8 },
    #[error("im871a: byte 1: unknown endpoint 0x{endpoint:02X}")]
    UnknownEndpoint { endpoint: u8 },
    #[error("im871a: byte 2: unknown message 0x{msg_id:02X} for endpoint 0x{endpoint:02X}")]
    UnknownMessage { endpoint: u8, msg_id: u8 },
    #[error("im871a: CRC mismatch: stored {stored:04X}, computed {computed:04X}")]
    Crc { stored: u16, computed: u16 },
    #[error(
        "im871a: message truncated: {have} of {expected} byte(s) arrived before the line went idle"
    )]
    Truncated { have: usize, expected: usize },
    #[error("im871a: byte 4: {what} payload of {len} byte(s) is too short")]
    ShortPayload { what: &'static str, len: usize },
    #[error("im871a: received telegram: {0}")]
    Telegram(TelegramError),
    #[error("im871a: payload of {len} byte(s) does not fit the length byte")]
    PayloadTooLong { len: usize },
    #[error("im871a: link mode {0} is not supported by the iM871A")]
    UnsupportedMode(LinkMode),
}

/// Identity reported by GET_DEVICEINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// 0x33 iM871A, 0x36 iM170A.
    pub module_type: u8,
    pub device_mode: u8,
    pub firmware: u8,
    pub hci: u8,
    pub uid: u32,
}

impl DeviceInfo {
    pub fn module_name(&self) -> &'static str {
        match self.module_type {
            MODULE_IM871A => "iM871A",
            MODULE_IM170A => "iM170A",
            _ => "IMST (unknown module)",
        }
    }

    /// "iM871A fw 0x14 hci 0x01": type and firmware for status reports.
    pub fn description(&self) -> String {
        format!(
            "{} fw 0x{:02X} hci 0x{:02X}",
            self.module_name(),
            self.firmware,
            self.hci
        )
    }

    /// The response payload a dongle sends for this info.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut p = vec![self.module_type, self.device_mode, self.firmware, self.hci];
        p.extend_from_slice(&self.uid.to_le_bytes());
        p
    }
}

/// A decoded HCI message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    PingRsp,
    DeviceInfo(DeviceInfo),
    /// SET_CONFIG response; real modules send a status byte (0 = OK), some mocks none.
    SetConfigRsp {
        status: Option<u8>,
    },
    /// GET_CONFIG response payload: `[IIFlag1][fields][IIFlag2][fields]`.
    GetConfigRsp {
        config: Vec<u8>,
    },
    /// A received telegram.
    DataIndication {
        /// Canonical frame: L-field followed by the payload (C-field onwards, no CRCs).
        frame: Vec<u8>,
        rssi_raw: Option<u8>,
        rssi_dbm: Option<f32>,
        timestamp: Option<u32>,
    },
    /// Any other well-formed message (requests, test endpoints, …).
    Other(HciFrame),
}

impl Message {
    /// Interprets a well-formed frame.
    pub fn from_frame(frame: HciFrame) -> Result<Message, Error> {
        match (frame.endpoint, frame.msg_id) {
            (EP_DEVMGMT, DEVMGMT_PING_RSP) => Ok(Message::PingRsp),
            (EP_DEVMGMT, DEVMGMT_GET_DEVICEINFO_RSP) => {
                let p = &frame.payload;
                match (p.get(0..4), p.get(4..8)) {
                    (Some(&[module_type, device_mode, firmware, hci]), Some(uid)) => {
                        let uid = <[u8; 4]>::try_from(uid)
                            .map(u32::from_le_bytes)
                            .unwrap_or(0);
                        Ok(Message::DeviceInfo(DeviceInfo {
                            module_type,
                            device_mode,
                            firmware,
                            hci,
                            uid,
                        }))
                    }
                    _ => Err(Error::ShortPayload {
                        what: "device info",
                        len: p.len(),
                    }),
                }
            }
            (EP_DEVMGMT, DEVMGMT_SET_CONFIG_RSP) => Ok(Message::SetConfigRsp {
                status: frame.payload.first().copied(),
            }),
            (EP_DEVMGMT, DEVMGMT_GET_CONFIG_RSP) => Ok(Message::GetConfigRsp {
                config: frame.payload,
            }),
            (EP_RADIOLINK, RADIOLINK_WMBUSMSG_IND) => {
                let n = u8::try_from(frame.payload.len()).map_err(|_| Error::PayloadTooLong {
                    len: frame.payload.len(),
                })?;
                let mut canonical = Vec::with_capacity(frame.payload.len() + 1);
                canonical.push(n);
                canonical.extend_from_slice(&frame.payload);
                check_canonical(&canonical).map_err(Error::Telegram)?;
                Ok(Message::DataIndication {
                    frame: canonical,
                    rssi_raw: frame.rssi,
                    rssi_dbm: frame.rssi.map(rssi_to_dbm),
                    timestamp: frame.timestamp,
                })
            }
            _ => Ok(Message::Other(frame)),
        }
    }
}

/// Raw RSSI byte to dBm (linear IMST approximation, see module docs).
pub fn rssi_to_dbm(raw: u8) -> f32 {
    f32::from(raw) * 8.0 / 15.0 - 380.0 / 3.0
}

/// Builds a DataIndication as the dongle sends it, for simulators and tests.
///
/// `canonical` is an L-prefixed CRC-free frame; the L byte becomes the HCI length.
pub fn data_indication(
    canonical: &[u8],
    rssi: Option<u8>,
    timestamp: Option<u32>,
    crc: bool,
) -> Result<HciFrame, Error> {
    check_canonical(canonical).map_err(Error::Telegram)?;
    Ok(HciFrame {
        endpoint: EP_RADIOLINK,
        msg_id: RADIOLINK_WMBUSMSG_IND,
        payload: canonical.get(1..).unwrap_or(&[]).to_vec(),
        timestamp,
        rssi,
        crc,
    })
}

/// PING request `A5 01 01 00`.
pub fn ping() -> HciFrame {
    HciFrame::new(EP_DEVMGMT, DEVMGMT_PING_REQ, Vec::new())
}

/// GET_DEVICEINFO request `A5 01 0F 00`.
pub fn get_device_info() -> HciFrame {
    HciFrame::new(EP_DEVMGMT, DEVMGMT_GET_DEVICEINFO_REQ, Vec::new())
}

/// Link-mode byte of SET_CONFIG for a receive mode.
///
/// C1 uses 0x07 ("C1, telegram format B"), which is what the most widely deployed
/// open-source collector sends to receive C1 meters.
pub fn link_mode_byte(mode: LinkMode) -> Result<u8, Error> {
    match mode {
        LinkMode::S1 => Ok(0x00),
        LinkMode::T1 => Ok(0x03),
        LinkMode::C1 => Ok(0x07),
        LinkMode::C1T1 => Ok(0x0A),
        LinkMode::N1 | LinkMode::Wired => Err(Error::UnsupportedMode(mode)),
    }
}

/// SET_CONFIG, volatile only: link mode, RSSI attachment on, timestamp attachment off.
///
/// `A5 01 03 06 00 02 <mode> 30 01 00` (NVM 0, IIFlag1 0x02 link mode, IIFlag2 0x30
/// RSSI + timestamp fields, RSSI 1, timestamp 0). Volatile, so the module's flash is not
/// worn by every reconnect.
pub fn set_link_mode(mode: LinkMode) -> Result<HciFrame, Error> {
    let m = link_mode_byte(mode)?;
    Ok(HciFrame::new(
        EP_DEVMGMT,
        DEVMGMT_SET_CONFIG_REQ,
        vec![0x00, 0x02, m, 0x30, 0x01, 0x00],
    ))
}

/// The iM871A's framing for the shared stream scaffold.
#[derive(Debug)]
pub(crate) struct Hci;

impl Framing for Hci {
    type Frame = HciFrame;
    type Error = Error;
    const SOF: u8 = SOF;
    fn parse(buf: &[u8]) -> Result<(HciFrame, usize), Error> {
        HciFrame::parse(buf)
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
#[derive(Debug, Default)]
pub struct Decoder {
    stream: FrameStream<Hci>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.stream.push(bytes);
    }

    pub fn stats(&self) -> DecoderStats {
        self.stream.stats()
    }

    /// Bytes waiting for the rest of a message.
    pub fn pending(&self) -> usize {
        self.stream.pending()
    }

    /// Next well-formed frame, an error describing skipped bytes, or None if more input
    /// is needed. Call until None after every push.
    pub fn next_frame(&mut self) -> Option<Result<HciFrame, Error>> {
        self.stream.next_frame()
    }

    /// Next decoded message (see [`Decoder::next_frame`]).
    pub fn next_message(&mut self) -> Option<Result<Message, Error>> {
        self.stream.next_message(Message::from_frame)
    }

    /// The line went idle with a partial message buffered: give it up as truncated.
    ///
    /// Drops the start byte and returns the error; call `next_message` afterwards,
    /// since a real frame may start later in the buffered bytes.
    pub fn flush_stale(&mut self) -> Option<Error> {
        self.stream.flush_stale()
    }
}

/// The iM871A as a session drives it: its replies, initialisation and probe.
#[cfg(feature = "daemon")]
pub(crate) mod dongle {
    use super::{get_device_info, ping, set_link_mode, Decoder, DeviceInfo, Message};
    use crate::frame::CrcState;
    use crate::radio::link::{Dongle, Item, Port, Stop};
    use crate::radio::{DongleInfo, DriverKind, RadioError};

    const NAME: &str = "iM871A";

    /// The answers the session waits for.
    pub(crate) enum Reply {
        Ping,
        DeviceInfo(DeviceInfo),
        SetConfig(Option<u8>),
    }

    impl Dongle for Decoder {
        type Reply = Reply;

        fn fresh() -> Self {
            Decoder::new()
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
                    Ok(Message::PingRsp) => Item::Reply(Reply::Ping),
                    Ok(Message::DeviceInfo(i)) => Item::Reply(Reply::DeviceInfo(i)),
                    Ok(Message::SetConfigRsp { status }) => Item::Reply(Reply::SetConfig(status)),
                    Ok(other) => {
                        tracing::debug!(?other, "iM871A message ignored");
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
            ping().encode().unwrap_or_default()
        }

        fn probe_request() -> Vec<u8> {
            get_device_info().encode().unwrap_or_default()
        }

        fn identify(reply: &Reply) -> Option<DongleInfo> {
            let Reply::DeviceInfo(i) = reply else {
                return None;
            };
            Some(DongleInfo {
                driver: DriverKind::Im871a,
                description: i.description(),
                id: Some(format!("{:08X}", i.uid)),
            })
        }

        /// Ping, device info, link mode.
        async fn initialise(port: &mut Port<'_, Self>) -> Result<String, Stop> {
            let mode = port.mode();
            let req = ping().encode().map_err(RadioError::request(NAME, "ping"))?;
            port.transact(&req, (NAME, "ping"), |r| {
                matches!(r, Reply::Ping).then_some(())
            })
            .await?;
            let req = get_device_info()
                .encode()
                .map_err(RadioError::request(NAME, "device info"))?;
            let info = port
                .transact(&req, (NAME, "device info"), |r| match r {
                    Reply::DeviceInfo(i) => Some(*i),
                    _ => None,
                })
                .await?;
            let req = set_link_mode(mode)
                .and_then(|f| f.encode())
                .map_err(RadioError::request(NAME, "set link mode"))?;
            let status = port
                .transact(&req, (NAME, "set link mode"), |r| match r {
                    Reply::SetConfig(s) => Some(*s),
                    _ => None,
                })
                .await?;
            if let Some(status @ 1..) = status {
                return Err(RadioError::Rejected {
                    dongle: NAME,
                    request: format!("link mode {mode}"),
                    status,
                }
                .into());
            }
            Ok(info.description())
        }
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
        super::super::decode_hex(&s).unwrap_or_default()
    }

    #[test]
    fn crc_x25_check_value() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
        assert_eq!(crc16_x25(&hex("81 03 06 00 03 00 06 08 00")), 0xEF05);
        assert_eq!(crc16_x25(&hex("81 04 00")), 0xF79C);
    }

    #[test]
    fn requests_byte_for_byte() {
        assert_eq!(ping().encode(), Ok(hex("A5 01 01 00")));
        assert_eq!(get_device_info().encode(), Ok(hex("A5 01 0F 00")));
        let t1 = set_link_mode(LinkMode::T1).unwrap_or_else(|_| ping());
        assert_eq!(t1.encode(), Ok(hex("A5 01 03 06 00 02 03 30 01 00")));
        assert_eq!(
            t1.with_crc().encode(),
            Ok(hex("A5 81 03 06 00 02 03 30 01 00 E3 46"))
        );
        // Recorded IOB request (device mode + link mode, auto power saving off).
        let iob =
            HciFrame::new(EP_DEVMGMT, DEVMGMT_SET_CONFIG_REQ, hex("00 03 00 06 08 00")).with_crc();
        assert_eq!(iob.encode(), Ok(hex("A5 81 03 06 00 03 00 06 08 00 05 EF")));
        let iob_t1 =
            HciFrame::new(EP_DEVMGMT, DEVMGMT_SET_CONFIG_REQ, hex("00 03 00 03 08 00")).with_crc();
        assert_eq!(
            iob_t1.encode(),
            Ok(hex("A5 81 03 06 00 03 00 03 08 00 B8 D6"))
        );
        assert_eq!(
            set_link_mode(LinkMode::N1),
            Err(Error::UnsupportedMode(LinkMode::N1))
        );
        assert_eq!(link_mode_byte(LinkMode::C1T1), Ok(0x0A));
        assert_eq!(link_mode_byte(LinkMode::S1), Ok(0x00));
    }

    #[test]
    fn recorded_set_config_response() {
        let (f, used) = HciFrame::parse(&hex("A5 81 04 00 9C F7")).unwrap_or((ping(), 0));
        assert_eq!(used, 6);
        assert!(f.crc);
        assert_eq!(
            Message::from_frame(f),
            Ok(Message::SetConfigRsp { status: None })
        );
    }

    #[test]
    fn synthesised_data_indication() {
        let wire = hex(
            "A5 C2 03 2E 44 93 15 78 56 34 12 33 03 7A 2A 00 20 25 59 23 C9 5A AA 26 D1 B2 E7 49 3B 01
             3E C4 A6 F6 D3 52 9B 52 0E DF F0 EA 6D EF C9 9D 6D 69 EB F3 9D F4 8C",
        );
        let mut d = Decoder::new();
        d.push(&wire);
        match d.next_message() {
            Some(Ok(Message::DataIndication {
                frame,
                rssi_raw,
                rssi_dbm,
                timestamp,
            })) => {
                assert_eq!(frame, PROFILE_A.to_vec());
                assert_eq!(rssi_raw, Some(0x9D));
                let dbm = rssi_dbm.unwrap_or(0.0);
                assert!((dbm - -42.933).abs() < 0.01, "{dbm}");
                assert_eq!(timestamp, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(d.next_message().is_none());
        // And the emitter produces the same bytes.
        let built = data_indication(&PROFILE_A, Some(0x9D), None, true).map(|f| f.encode());
        assert_eq!(built, Ok(Ok(wire)));
    }

    #[test]
    fn device_info_round_trip() {
        let info = DeviceInfo {
            module_type: MODULE_IM871A,
            device_mode: 0,
            firmware: 0x14,
            hci: 0x01,
            uid: 0x1234_5678,
        };
        let f = HciFrame::new(EP_DEVMGMT, DEVMGMT_GET_DEVICEINFO_RSP, info.to_payload());
        let bytes = f.encode().unwrap_or_default();
        assert_eq!(bytes, hex("A5 01 10 08 33 00 14 01 78 56 34 12"));
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(d.next_message(), Some(Ok(Message::DeviceInfo(info))));
        assert_eq!(info.description(), "iM871A fw 0x14 hci 0x01");
        let short = HciFrame::new(EP_DEVMGMT, DEVMGMT_GET_DEVICEINFO_RSP, vec![0x33]);
        assert_eq!(
            Message::from_frame(short),
            Err(Error::ShortPayload {
                what: "device info",
                len: 1
            })
        );
    }

    #[test]
    fn timestamp_and_rssi_order() {
        let f = data_indication(&PROFILE_A, Some(0x80), Some(0x0102_0304), true)
            .unwrap_or_else(|_| ping());
        let bytes = f.encode().unwrap_or_default();
        assert_eq!(bytes.get(1), Some(&0xE2));
        assert_eq!(
            bytes.get(4 + 46..4 + 46 + 5),
            Some(&[0x04, 0x03, 0x02, 0x01, 0x80][..])
        );
        assert_eq!(HciFrame::parse(&bytes), Ok((f, bytes.len())));
    }

    #[test]
    fn resync_over_garbage_split_input_and_bad_crc() {
        let good = data_indication(&PROFILE_A, Some(0x9D), None, true)
            .and_then(|f| f.encode())
            .unwrap_or_default();
        let mut corrupt = good.clone();
        if let Some(b) = corrupt.get_mut(20) {
            *b ^= 0xFF;
        }
        let mut stream = vec![0x00, 0x13, 0x37];
        stream.extend_from_slice(&corrupt);
        stream.extend_from_slice(&[0xA5, 0x0F]); // false start: endpoint 0x0F
        stream.extend_from_slice(&good);
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        let mut errors = Vec::new();
        // Feed one byte at a time to exercise reassembly.
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(item) = d.next_message() {
                match item {
                    Ok(Message::DataIndication { frame, .. }) => frames.push(frame),
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(e) => errors.push(e),
                }
            }
        }
        assert_eq!(frames, vec![PROFILE_A.to_vec()]);
        assert!(matches!(errors.first(), Some(Error::Garbage { .. })));
        assert!(d.stats().garbage_bytes >= 3);
        assert!(errors.iter().any(|e| matches!(e, Error::Crc { .. })));
        assert!(errors
            .iter()
            .any(|e| matches!(e, Error::UnknownEndpoint { endpoint: 0x0F })));
        assert_eq!(d.stats().messages, 1);
        assert_eq!(d.stats().bad_frames, 2);
    }

    #[test]
    fn truncated_frame_flushed_on_idle() {
        let good = data_indication(&PROFILE_A, Some(0x9D), None, false)
            .and_then(|f| f.encode())
            .unwrap_or_default();
        let mut d = Decoder::new();
        d.push(good.get(..20).unwrap_or(&[]));
        assert!(d.next_message().is_none());
        assert_eq!(
            d.flush_stale(),
            Some(Error::Truncated {
                have: 20,
                expected: good.len()
            })
        );
        // The rest of the partial frame is garbage now; then a full frame decodes.
        d.push(&good);
        let mut got = None;
        while let Some(item) = d.next_message() {
            if let Ok(Message::DataIndication { frame, .. }) = item {
                got = Some(frame);
            }
        }
        assert_eq!(got, Some(PROFILE_A.to_vec()));
    }

    #[test]
    fn short_telegram_is_reported() {
        let f = HciFrame::new(EP_RADIOLINK, RADIOLINK_WMBUSMSG_IND, vec![0x44, 0x93]);
        assert_eq!(
            Message::from_frame(f),
            Err(Error::Telegram(TelegramError::TooShort { len: 3 }))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0..8)) {
            let mut d = Decoder::new();
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
        fn data_indication_round_trips(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 10..255usize),
                                       rssi in proptest::option::of(proptest::prelude::any::<u8>()),
                                       ts in proptest::option::of(proptest::prelude::any::<u32>()),
                                       crc in proptest::prelude::any::<bool>()) {
            let mut canonical = vec![body.len() as u8];
            canonical.extend_from_slice(&body);
            let bytes = data_indication(&canonical, rssi, ts, crc).and_then(|f| f.encode());
            proptest::prop_assert!(bytes.is_ok());
            let mut d = Decoder::new();
            d.push(&bytes.unwrap_or_default());
            match d.next_message() {
                Some(Ok(Message::DataIndication { frame, rssi_raw, timestamp, .. })) => {
                    proptest::prop_assert_eq!(frame, canonical);
                    proptest::prop_assert_eq!(rssi_raw, rssi);
                    proptest::prop_assert_eq!(timestamp, ts);
                }
                other => proptest::prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
