//! Why a telegram did not decode, in terms a technician can act on.

use std::fmt;

use serde::Serialize;

use crate::wire::address::Address;
use crate::wire::{self, Layer};

/// The class of a decode failure. `name()` is the stable string used in JSON, in the
/// daemon's per-meter counters and in the `listen` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// Input was not a telegram at all (bad hex, empty).
    Input,
    /// The bytes ended before a layer did.
    Truncated,
    /// A link-layer CRC (DLL block CRC) failed: a reception error.
    Crc,
    /// A field value no layer accepts.
    Invalid,
    /// Well-formed, but a feature this decoder does not implement (DES modes, TLS, ...).
    Unsupported,
    /// The telegram is encrypted and no key is configured for the meter.
    NoKey,
    /// A key is configured, but decryption did not verify (2F2F check or ELL CRC).
    WrongKey,
    /// The AFL MAC did not verify (mode 7): almost always a wrong key.
    MacFailure,
    /// A compact frame whose format signature was never seen in a full frame.
    UnknownCompactFormat,
    /// A frame whose C-field carries no meter data (SND_NKE, ACK, REQ_UD2, …): named and
    /// counted, not a failure of the meter.
    ControlFrame,
    /// Decoded and authenticated, but its AFL message counter is not above the last one
    /// accepted from the meter: an old telegram sent again (see `crate::replay`).
    Replay,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Input => "input",
            FailureKind::Truncated => "truncated",
            FailureKind::Crc => "crc",
            FailureKind::Invalid => "invalid",
            FailureKind::Unsupported => "unsupported",
            FailureKind::NoKey => "no_key",
            FailureKind::WrongKey => "wrong_key",
            FailureKind::MacFailure => "mac_failure",
            FailureKind::UnknownCompactFormat => "unknown_compact_format",
            FailureKind::ControlFrame => "control_frame",
            FailureKind::Replay => "replay",
        }
    }

    /// The short label technicians see (`listen` table, logs).
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Input => "bad input",
            FailureKind::Truncated => "truncated",
            FailureKind::Crc => "CRC error",
            FailureKind::Invalid => "invalid frame",
            FailureKind::Unsupported => "unsupported",
            FailureKind::NoKey => "no key",
            FailureKind::WrongKey => "wrong key",
            FailureKind::MacFailure => "MAC failure",
            FailureKind::UnknownCompactFormat => "unknown compact format",
            FailureKind::ControlFrame => "control frame",
            FailureKind::Replay => "replay",
        }
    }
}

impl Serialize for FailureKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed decode: which layer, what class, where in the frame, and a message.
///
/// Serialises as the `"error"` object of `wmbusd decode`:
/// `{"layer":"security","kind":"wrong_key","message":"…","offset":15}`.
/// Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{layer} layer: {message}")]
pub struct DecodeError {
    pub layer: Layer,
    pub kind: FailureKind,
    pub message: String,
    /// Byte offset in the canonical (CRC-free) frame, when one byte is to blame.
    pub offset: Option<usize>,
    /// The meter the telegram came from, when the header was readable (8-digit id).
    #[serde(skip)]
    pub meter: Option<String>,
    /// That meter's whole address (manufacturer, type), from the one parse of the frame.
    #[serde(skip)]
    pub address: Option<Address>,
    /// The layer's own error, when a wire parser failed (its offset relative to the
    /// slice that layer was given; `offset` above is the frame's).
    #[serde(skip)]
    #[source]
    pub source: Option<wire::Error>,
}

impl DecodeError {
    pub fn new(layer: Layer, kind: FailureKind, message: impl Into<String>) -> Self {
        DecodeError {
            layer,
            kind,
            message: message.into(),
            offset: None,
            meter: None,
            address: None,
            source: None,
        }
    }

    /// Input that is not a telegram (e.g. bad hex on a command line).
    pub fn input(message: impl Into<String>) -> Self {
        DecodeError::new(Layer::Link, FailureKind::Input, message)
    }

    pub fn at(mut self, offset: usize) -> Self {
        self.offset = Some(offset);
        self
    }

    pub fn for_meter(mut self, meter: Option<&str>) -> Self {
        if self.meter.is_none() {
            self.meter = meter.map(str::to_owned);
        }
        self
    }

    /// Names the meter by its address (and its id, unless one is named already).
    pub fn for_address(mut self, address: Option<Address>) -> Self {
        if self.address.is_none() {
            self.address = address;
        }
        if self.meter.is_none() {
            self.meter = address.map(|a| a.id_string());
        }
        self
    }

    /// Converts a parse error of a layer that started `base` bytes into the frame.
    pub fn from_wire(e: wire::Error, base: usize) -> Self {
        let kind = match e.kind {
            wire::ErrorKind::Truncated { .. } => FailureKind::Truncated,
            wire::ErrorKind::Crc { .. }
            | wire::ErrorKind::BlockCrc { .. }
            | wire::ErrorKind::Checksum { .. }
            | wire::ErrorKind::ReceiverCrc { .. }
            | wire::ErrorKind::BlockCrcBit { .. }
            | wire::ErrorKind::LengthField { .. } => FailureKind::Crc,
            wire::ErrorKind::Invalid(_) | wire::ErrorKind::Damaged(_) => FailureKind::Invalid,
            wire::ErrorKind::Unsupported(_) => FailureKind::Unsupported,
        };
        let offset = e.offset + base;
        DecodeError {
            layer: e.layer,
            kind,
            message: format!("{} at byte {offset}", e.kind),
            offset: Some(offset),
            meter: None,
            address: None,
            source: Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire error stays the source, its layer and offset intact; the message says
    /// where in the frame.
    #[test]
    fn wire_errors_are_kept_as_the_source() {
        let wire = wire::Error::truncated(Layer::Tpl, 3, 2);
        let e = DecodeError::from_wire(wire.clone(), 10);
        assert_eq!(
            (e.layer, e.kind, e.offset),
            (Layer::Tpl, FailureKind::Truncated, Some(13))
        );
        let source = std::error::Error::source(&e).expect("source");
        assert_eq!(source.to_string(), wire.to_string());
        assert_eq!(e.source.as_ref(), Some(&wire));
        assert!(e.to_string().ends_with("at byte 13"), "{e}");
        assert!(std::error::Error::source(&DecodeError::input("x")).is_none());
    }

    #[test]
    fn an_address_names_the_meter_unless_one_is_named() {
        let address = Address {
            id: [0x78, 0x56, 0x34, 0x12],
            manufacturer: 0x1593,
            version: 1,
            device_type: 7,
        };
        let e = DecodeError::input("x").for_address(Some(address));
        assert_eq!(
            (e.meter.as_deref(), e.address),
            (Some("12345678"), Some(address))
        );
        let named = DecodeError::input("x")
            .for_meter(Some("87654321"))
            .for_address(Some(address));
        assert_eq!(named.meter.as_deref(), Some("87654321"));
    }
}
