//! The raw frame a forwarding gateway publishes on `<prefix>/<gateway>/raw`, and its way
//! back into a [`RadioFrame`] at the central decoder.

use serde::{Deserialize, Serialize};

use crate::frame::{CrcState, FrameFormat, LinkMode, RadioFrame};

/// One forwarded frame (JSON). `crc` and `frame_format` together say what the receiver
/// delivered, so the central decoder never guesses a CRC layout a radio already knew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawFrameMsg {
    pub hex: String,
    pub crc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_format: Option<String>,
    #[serde(default)]
    pub rssi_dbm: Option<f32>,
    #[serde(default)]
    pub link_mode: Option<String>,
    #[serde(default)]
    pub received_at: Option<String>,
    /// The forwarding gateway's id (the topic names it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// Why a forwarded frame cannot be decoded; the message is acknowledged and counted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RawError {
    #[error("raw frame: not JSON of a raw frame: {0}")]
    Json(String),
    #[error("raw frame: hex: {0}")]
    Hex(#[from] crate::frame::HexError),
    #[error("raw frame: unknown crc state '{0}'")]
    Crc(String),
    #[error("raw frame: unknown frame format '{0}'")]
    Format(String),
    #[error("raw frame: received_at '{0}' is not RFC 3339")]
    Time(String),
}

fn format_name(f: FrameFormat) -> &'static str {
    match f {
        FrameFormat::A => "A",
        FrameFormat::B => "B",
    }
}

fn crc_format(crc: CrcState) -> Option<FrameFormat> {
    match crc {
        CrcState::Checked(f) | CrcState::Failed(f) => f,
        CrcState::Present(f) => Some(f),
        CrcState::Unknown | CrcState::Recorded => None,
    }
}

impl RawFrameMsg {
    /// What a gateway forwards for `frame`.
    pub fn of(frame: &RadioFrame, gateway: &str) -> Self {
        RawFrameMsg {
            hex: hex::encode_upper(&frame.bytes),
            crc: frame.crc.as_str().to_owned(),
            frame_format: crc_format(frame.crc).map(|f| format_name(f).to_owned()),
            rssi_dbm: frame.rssi_dbm,
            link_mode: frame.link_mode.map(|m| m.as_str().to_owned()),
            received_at: frame.received_at.map(crate::timefmt::rfc3339),
            gateway: Some(gateway.to_owned()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(payload: &[u8]) -> Result<Self, RawError> {
        serde_json::from_slice(payload).map_err(|e| RawError::Json(e.to_string()))
    }

    /// The frame as the gateway's receiver delivered it; `source` names the gateway.
    pub fn to_frame(&self, gateway: &str) -> Result<RadioFrame, RawError> {
        let bytes = crate::frame::parse_hex(&self.hex)?;
        let format = match self.frame_format.as_deref() {
            None => None,
            Some("A") => Some(FrameFormat::A),
            Some("B") => Some(FrameFormat::B),
            Some(other) => return Err(RawError::Format(other.to_owned())),
        };
        let crc = match CrcState::parse(&self.crc) {
            Some(CrcState::Checked(_)) => CrcState::Checked(format),
            Some(CrcState::Failed(_)) => CrcState::Failed(format),
            Some(other) => other,
            None => return Err(RawError::Crc(self.crc.clone())),
        };
        let received_at = match &self.received_at {
            None => None,
            Some(t) => Some(
                crate::timefmt::parse_rfc3339_offset(t).ok_or_else(|| RawError::Time(t.clone()))?,
            ),
        };
        Ok(RadioFrame {
            bytes,
            rssi_dbm: self.rssi_dbm.filter(|r| r.is_finite()),
            link_mode: self.link_mode.as_deref().and_then(LinkMode::parse),
            received_at,
            source: Some(gateway.to_owned()),
            crc,
            lenient_length: false,
        })
    }
}

/// The gateway segment of `<prefix>/<gateway>/raw`.
pub fn gateway_of_topic<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let gw = rest.strip_suffix("/raw")?;
    (!gw.is_empty() && !gw.contains('/')).then_some(gw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn round_trip_keeps_what_the_receiver_said() {
        let mut frame = RadioFrame::checked(vec![0x0B, 0x44, 0x2D, 0x2C], Some(FrameFormat::B));
        frame.rssi_dbm = Some(-71.5);
        frame.link_mode = Some(LinkMode::C1);
        frame.received_at = Some(UNIX_EPOCH + Duration::from_millis(1_790_000_000_123));
        let msg = RawFrameMsg::of(&frame, "gw-7");
        let back = RawFrameMsg::parse(&msg.to_json()).unwrap();
        assert_eq!(back.frame_format.as_deref(), Some("B"));
        let mut expect = frame.clone();
        expect.source = Some("gw-7".into());
        assert_eq!(back.to_frame("gw-7").unwrap(), expect);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |json: &str| RawFrameMsg::parse(json.as_bytes()).and_then(|m| m.to_frame("g"));
        assert!(matches!(bad("{}"), Err(RawError::Json(_))));
        assert!(matches!(
            bad(r#"{"hex":"0G","crc":"checked"}"#),
            Err(RawError::Hex(_))
        ));
        assert_eq!(
            bad(r#"{"hex":"00","crc":"maybe"}"#),
            Err(RawError::Crc("maybe".into()))
        );
        assert_eq!(
            bad(r#"{"hex":"00","crc":"checked","frame_format":"C"}"#),
            Err(RawError::Format("C".into()))
        );
        assert!(matches!(
            bad(r#"{"hex":"00","crc":"checked","received_at":"yesterday"}"#),
            Err(RawError::Time(_))
        ));
    }

    #[test]
    fn gateway_from_topic() {
        assert_eq!(gateway_of_topic("wmbus", "wmbus/gw-1/raw"), Some("gw-1"));
        assert_eq!(gateway_of_topic("wmbus", "wmbus/a/b/raw"), None);
        assert_eq!(gateway_of_topic("wmbus", "other/gw/raw"), None);
        assert_eq!(gateway_of_topic("wmbus", "wmbus//raw"), None);
    }
}
