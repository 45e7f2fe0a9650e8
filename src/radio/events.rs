//! What a radio session reports to the daemon, and the sink that sends it.

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::frame::{CrcState, LinkMode, RadioFrame};

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

/// Nobody listens to the session's events any more: the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// Event sink with the session's source name.
pub(crate) struct Reporter {
    pub source: String,
    pub events: mpsc::Sender<RadioEvent>,
}

impl Reporter {
    pub async fn send(&self, ev: RadioEvent) -> Result<(), Closed> {
        self.events.send(ev).await.map_err(|_| Closed)
    }

    pub async fn state(&self, state: RadioState) -> Result<(), Closed> {
        if let RadioState::Lost { reason } = &state {
            tracing::warn!(source = %self.source, %reason, "radio lost");
        }
        self.send(RadioEvent::State {
            source: self.source.clone(),
            state,
        })
        .await
    }

    pub async fn bad(&self, reason: String) -> Result<(), Closed> {
        tracing::debug!(source = %self.source, %reason, "bad frame");
        self.send(RadioEvent::Bad {
            source: self.source.clone(),
            reason,
        })
        .await
    }

    /// A received frame; `crc` is what the receiver says about the DLL CRCs.
    pub fn frame(
        &self,
        bytes: Vec<u8>,
        rssi_dbm: Option<f32>,
        mode: Option<LinkMode>,
        crc: CrcState,
    ) -> RadioFrame {
        RadioFrame {
            bytes,
            rssi_dbm,
            link_mode: mode,
            received_at: Some(SystemTime::now()),
            source: Some(self.source.clone()),
            crc,
            lenient_length: false,
        }
    }
}
