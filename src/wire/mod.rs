//! Pure protocol layers of wireless (EN 13757-4) and wired M-Bus (EN 13757-2/-3).
//!
//! One file per layer, each with a `Repr` that parses from bytes and emits back to bytes,
//! so tests and simulators build telegrams instead of pasting hex. Nothing here does I/O,
//! knows about keys, or depends on other modules of this crate.

mod error;

pub mod address;
pub mod afl;
pub mod annotate;
pub mod apl;
pub mod compact;
pub mod crc;
pub mod device_type;
pub mod dll;
pub mod ell;
pub mod link;
pub mod manufacturer;
pub mod mbus;
mod reader;
pub mod telegram;
pub mod tpl;

pub use error::{Error, ErrorKind, Layer, Result};
