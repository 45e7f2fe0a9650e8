//! `[central]`: settings of `wmbusd central` (see [`crate::central`]).

use serde::Deserialize;

/// `[central]` of the configuration (all optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralSection {
    /// Shared subscription group: instances of one group split the frames.
    #[serde(default = "default_group")]
    pub group: String,
    /// Readings go to `<topic>/<meter id>` instead of `<prefix>/<best gateway>/meter/<id>`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Copies of one telegram (same meter and access number) at most this far apart are
    /// one telegram.
    #[serde(default = "default_window")]
    pub dedupe_window_secs: u64,
    /// A reading is published this long after it was stored, once the other gateways'
    /// copies had time to arrive.
    #[serde(default = "default_hold")]
    pub hold_ms: u64,
    /// Frames per store transaction, at most.
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// Frames the broker may have in flight to this instance (MQTT 5 receive maximum).
    #[serde(default = "default_receive_max")]
    pub receive_maximum: u16,
    /// How long the broker keeps this instance's session (and its unacknowledged
    /// frames) after it went away.
    #[serde(default = "default_session_expiry")]
    pub session_expiry_secs: u32,
}

fn default_group() -> String {
    "wmbusd".into()
}
fn default_window() -> u64 {
    30
}
fn default_hold() -> u64 {
    2000
}
fn default_batch() -> usize {
    1000
}
fn default_receive_max() -> u16 {
    2000
}
fn default_session_expiry() -> u32 {
    3600
}

impl Default for CentralSection {
    fn default() -> Self {
        CentralSection {
            group: default_group(),
            topic: None,
            dedupe_window_secs: default_window(),
            hold_ms: default_hold(),
            batch_max: default_batch(),
            receive_maximum: default_receive_max(),
            session_expiry_secs: default_session_expiry(),
        }
    }
}
