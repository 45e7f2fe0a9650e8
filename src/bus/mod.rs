//! Wired M-Bus master (EN 13757-2): polls wired meters and hands their RSP_UD long frames to
//! the same decoder, drivers, spool, MQTT and health as radio telegrams.
//!
//! * [`master`]: the link layer: SND_NKE, REQ_UD2 with the frame count bit (FCB) toggled
//!   per successful exchange and kept on a retry (the slave then repeats its telegram),
//!   multi-telegram responses (DIF 0x1F), secondary addressing (SND_UD CI 0x52, address
//!   253), timeouts (330 bit times + 50 ms) and retries. Generic over a [`Transport`], so the
//!   protocol logic does no I/O of its own.
//! * [`search`]: the secondary-address search, a pure state machine narrowing wildcard
//!   masks digit by digit where answers collide.
//! * With the `daemon` feature: [`port`] (serial 8E1 or `tcp://host:port`), [`task`] (the
//!   daemon's poll loop and per-meter health), [`config`] (the `[[bus]]` section) and
//!   [`sim`] (a simulated bus of slaves for tests; `tests/support/bus_pty.rs` serves it on a
//!   pseudo terminal).
//!
//! Frames themselves (emit and parse) live in [`crate::wire::mbus`].

pub mod master;
pub mod search;

#[cfg(feature = "daemon")]
pub mod config;
#[cfg(feature = "daemon")]
pub mod port;
#[cfg(feature = "daemon")]
pub mod sim;
#[cfg(feature = "daemon")]
pub mod task;

pub use master::{BusError, Exchange, Found, Master, Target, Timing, Transport};

/// A long frame read from a bus as the decoder takes it: link mode `wired`, the bus (or
/// device) as source, received now.
pub fn wired_frame(bytes: Vec<u8>, source: &str) -> crate::frame::RadioFrame {
    crate::frame::RadioFrame {
        link_mode: Some(crate::frame::LinkMode::Wired),
        received_at: Some(std::time::SystemTime::now()),
        source: Some(source.to_owned()),
        ..crate::frame::RadioFrame::new(bytes)
    }
}
