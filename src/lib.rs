//! wmbusd: a wireless M-Bus / OMS gateway.
//!
//! Data flows one way through the layers of this crate:
//!
//! ```text
//! radio (dongle codecs + sessions) -> frame::RadioFrame -> decode (wire + crypto + keys)
//!     -> reading::Reading -> pipeline (dedupe, filter, health) -> spool -> mqtt / stdout
//! ```
//!
//! The decoder core (`wire`, `crypto`, `keys`, `decode`, `reading`, `frame`) is pure and
//! builds without the `daemon` feature; everything doing I/O sits behind that feature.

#[cfg(feature = "daemon")]
pub mod billing;
pub mod bus;
#[cfg(feature = "daemon")]
pub mod central;
#[cfg(feature = "daemon")]
pub mod cli;
#[cfg(feature = "daemon")]
pub mod config;
pub mod crypto;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod decode;
pub mod drivers;
pub mod explain;
pub mod formats;
pub mod frame;
pub mod gather;
pub mod health;
#[cfg(feature = "daemon")]
pub mod homeassistant;
pub mod keys;
#[cfg(feature = "daemon")]
pub mod mqtt;
pub mod pipeline;
pub mod radio;
pub mod reading;
pub mod replay;
#[cfg(feature = "daemon")]
pub mod shutdown;
#[cfg(feature = "daemon")]
pub mod spool;
#[cfg(feature = "daemon")]
pub mod store;
pub mod textpos;
pub mod timefmt;
pub mod wire;
