//! The canonical frame handed from a radio driver to the decoder.

use std::time::SystemTime;

/// Radio link mode a telegram was received in (EN 13757-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LinkMode {
    S1,
    T1,
    C1,
    /// Dongle listens to C1 and T1 at once and cannot tell which one it heard.
    C1T1,
    N1,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::S1 => "S1",
            LinkMode::T1 => "T1",
            LinkMode::C1 => "C1",
            LinkMode::C1T1 => "C1+T1",
            LinkMode::N1 => "N1",
        }
    }

    /// Parses "S1", "T1", "C1", "C1+T1" (case-insensitive; "CT" and "C1T1" accepted too).
    pub fn parse(s: &str) -> Option<LinkMode> {
        match s.trim().to_ascii_uppercase().as_str() {
            "S1" | "S" => Some(LinkMode::S1),
            "T1" | "T" => Some(LinkMode::T1),
            "C1" | "C" => Some(LinkMode::C1),
            "C1+T1" | "C1T1" | "CT" | "T1+C1" => Some(LinkMode::C1T1),
            "N1" | "N" => Some(LinkMode::N1),
            _ => None,
        }
    }
}

impl std::fmt::Display for LinkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One received telegram: wM-Bus bytes starting at the L-field, plus what the receiver knows.
///
/// `bytes` may still carry link-layer CRCs (CUL delivers them, hand-typed hex may too);
/// the decoder normalises (see `wire::link::normalize`).
#[derive(Debug, Clone, PartialEq)]
pub struct RadioFrame {
    pub bytes: Vec<u8>,
    pub rssi_dbm: Option<f32>,
    pub link_mode: Option<LinkMode>,
    pub received_at: Option<SystemTime>,
    /// Which receiver heard it (device path or driver name), for diagnostics.
    pub source: Option<String>,
}

impl RadioFrame {
    pub fn new(bytes: Vec<u8>) -> Self {
        RadioFrame {
            bytes,
            rssi_dbm: None,
            link_mode: None,
            received_at: None,
            source: None,
        }
    }
}
