//! Why a radio session lost its receiver or a probe found nothing. The text of each
//! error is what the daemon reports as the radio's `Lost` reason.

use std::time::Duration;

use super::DriverKind;

/// A codec error kept as the source of a [`RadioError`].
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// Why a session stopped receiving; every variant but [`RadioError::NotSerial`] is healed
/// by reopening.
#[derive(Debug, thiserror::Error)]
pub enum RadioError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {address}: no answer within {timeout:?}")]
    ConnectTimeout { address: String, timeout: Duration },
    #[error("read failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    #[error("device closed (end of file)")]
    EndOfFile,
    #[error("device path {path} vanished")]
    Vanished { path: String },
    /// The dongle did not answer a request within the reply timeout.
    #[error("no answer to {dongle} {request}")]
    NoAnswer {
        dongle: &'static str,
        request: &'static str,
    },
    /// The dongle answered a request with a non-zero status byte.
    #[error("{dongle} rejected {request} (status {status})")]
    Rejected {
        dongle: &'static str,
        request: String,
        status: u8,
    },
    /// A request could not be built (e.g. a link mode the dongle has no setting for).
    #[error("{dongle}: cannot build {request} request: {source}")]
    Request {
        dongle: &'static str,
        request: &'static str,
        source: CodecError,
    },
    /// The dongle answered, but not in a state the session can receive in.
    #[error("{dongle} {problem}")]
    Misconfigured {
        dongle: &'static str,
        problem: &'static str,
    },
    #[error("watchdog: silent for {silent:?} and no answer to a liveness check")]
    Watchdog { silent: Duration },
    #[error("{0} is not a serial driver")]
    NotSerial(DriverKind),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot read replay file {path}: {source}")]
    ReplayFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("child has no stdout")]
    NoStdout,
    #[error("watchdog: no output for {0:?}")]
    Silent(Duration),
    #[error("end of output")]
    EndOfOutput,
    /// The receiver program ended; `status` is how.
    #[error("{reason} ({status})")]
    Exited {
        reason: Box<RadioError>,
        status: std::process::ExitStatus,
    },
}

impl RadioError {
    /// A request builder's error, kept as the source.
    pub fn request<E: std::error::Error + Send + Sync + 'static>(
        dongle: &'static str,
        request: &'static str,
    ) -> impl FnOnce(E) -> RadioError {
        move |e| RadioError::Request {
            dongle,
            request,
            source: Box::new(e),
        }
    }
}

/// Why a probe found nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe {path}: cannot open: {source}")]
    Open {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("probe {path}: I/O error: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("probe {path}: no iM871A, AMB8465 or CUL answered")]
    NoAnswer { path: String },
}
