//! The link to a serial dongle (a serial port, or `tcp://host:port` to ser2net or an
//! Ethernet-serial converter carrying the same protocol) and what every dongle codec
//! provides to it ([`Dongle`]): turning bytes into items, its initialisation, its
//! liveness request and how it answers a probe.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

use super::events::{Closed, RadioEvent, Reporter};
use super::{DongleInfo, RadioError};
use crate::frame::{CrcState, LinkMode};
use crate::shutdown::Shutdown;

/// How long to wait for the answer to one request.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read poll interval; also how long a partial binary frame may sit before it is
/// declared truncated (a full 266-byte HCI frame takes 46 ms at 57600 baud).
pub(crate) const TICK: Duration = Duration::from_millis(200);
/// How long a network converter may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing a dongle's byte stream yielded.
pub(crate) enum Item<R> {
    /// A telegram; `crc` is what the dongle says about the DLL CRCs.
    Frame {
        bytes: Vec<u8>,
        rssi_dbm: Option<f32>,
        crc: CrcState,
    },
    /// Bytes that were no usable message.
    Bad(String),
    /// The answer to a request.
    Reply(R),
}

/// A dongle family's codec as a session drives it.
pub(crate) trait Dongle: Sized + Send + Sync {
    /// The answers to requests this dongle sends.
    type Reply: Send;

    /// A codec in the state right after opening the port.
    fn fresh() -> Self;
    fn push(&mut self, bytes: &[u8]);
    /// The next decoded item; None when more bytes are needed.
    fn next_item(&mut self) -> Option<Item<Self::Reply>>;
    /// The line went idle: a partial binary frame can no longer complete.
    fn flush_stale(&mut self) -> Option<String>;
    /// A harmless request whose answer shows the dongle is alive.
    fn liveness_request(&self) -> Vec<u8>;
    /// What a probe sends, and how the answer identifies the dongle.
    fn probe_request() -> Vec<u8>;
    fn identify(reply: &Self::Reply) -> Option<DongleInfo>;
    /// Brings the dongle into receive mode; returns its description.
    fn initialise(port: &mut Port<'_, Self>) -> impl Future<Output = Result<String, Stop>> + Send;
}

/// Why a session's receive loop ended.
#[derive(Debug)]
pub(crate) enum Stop {
    Shutdown,
    Lost(RadioError),
    /// Nobody listens to the events any more.
    Closed,
}

impl From<Closed> for Stop {
    fn from(_: Closed) -> Self {
        Stop::Closed
    }
}

impl From<RadioError> for Stop {
    fn from(e: RadioError) -> Self {
        Stop::Lost(e)
    }
}

/// What a session reads and writes.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// The TCP address of a `tcp://host:port` device, None for a serial path.
pub fn tcp_address(device: &str) -> Option<&str> {
    device.strip_prefix("tcp://")
}

pub(crate) async fn open_io(path: &str, baud: u32) -> Result<Box<dyn Io>, RadioError> {
    let Some(address) = tcp_address(path) else {
        let serial = tokio_serial::new(path, baud)
            .open_native_async()
            .map_err(|source| RadioError::Open {
                path: path.to_owned(),
                source,
            })?;
        return Ok(Box::new(serial));
    };
    let connect = tokio::net::TcpStream::connect(address);
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(source)) => {
            return Err(RadioError::Connect {
                address: address.to_owned(),
                source,
            })
        }
        Err(_) => {
            return Err(RadioError::ConnectTimeout {
                address: address.to_owned(),
                timeout: CONNECT_TIMEOUT,
            })
        }
    };
    // Dongle commands are a few bytes; send them at once.
    let _ = tcp.set_nodelay(true);
    Ok(Box::new(tcp))
}

/// An open port with its codec, forwarding telegrams while waiting for replies.
pub(crate) struct Port<'a, D> {
    stream: Box<dyn Io>,
    pub codec: D,
    mode: LinkMode,
    buf: Vec<u8>,
    pub last_rx: Instant,
    /// A telegram arrived (used to reset the backoff).
    pub healthy: bool,
    rep: &'a Reporter,
    shutdown: Shutdown,
}

impl<'a, D: Dongle> Port<'a, D> {
    pub async fn open(
        path: &str,
        baud: u32,
        mode: LinkMode,
        rep: &'a Reporter,
        shutdown: Shutdown,
    ) -> Result<Port<'a, D>, RadioError> {
        Ok(Port {
            stream: open_io(path, baud).await?,
            codec: D::fresh(),
            mode,
            buf: vec![0u8; 1024],
            last_rx: Instant::now(),
            healthy: false,
            rep,
            shutdown,
        })
    }

    pub fn mode(&self) -> LinkMode {
        self.mode
    }

    pub fn source(&self) -> &str {
        &self.rep.source
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(RadioError::Write)?;
        self.stream.flush().await.map_err(RadioError::Write)?;
        Ok(())
    }

    /// Reads once (at most one TICK), forwards frames and bad reports; returns the replies.
    pub async fn poll(&mut self) -> Result<Vec<D::Reply>, Stop> {
        let read = tokio::select! {
            r = tokio::time::timeout(TICK, self.stream.read(&mut self.buf)) => r,
            _ = self.shutdown.recv() => return Err(Stop::Shutdown),
        };
        match read {
            Ok(Ok(0)) => return Err(RadioError::EndOfFile.into()),
            Ok(Ok(n)) => {
                self.last_rx = Instant::now();
                self.codec.push(self.buf.get(..n).unwrap_or(&[]));
            }
            Ok(Err(e)) => return Err(RadioError::Read(e).into()),
            Err(_idle) => {
                let mut replies = Vec::new();
                while let Some(reason) = self.codec.flush_stale() {
                    self.rep.bad(reason).await?;
                    replies.extend(self.dispatch().await?);
                }
                return Ok(replies);
            }
        }
        self.dispatch().await
    }

    /// Everything the codec has decoded: frames and bad reports go on, replies come back.
    async fn dispatch(&mut self) -> Result<Vec<D::Reply>, Stop> {
        let mut replies = Vec::new();
        while let Some(item) = self.codec.next_item() {
            match item {
                Item::Frame {
                    bytes,
                    rssi_dbm,
                    crc,
                } => {
                    self.healthy = true;
                    let frame = self.rep.frame(bytes, rssi_dbm, Some(self.mode), crc);
                    self.rep.send(RadioEvent::Frame(frame)).await?;
                }
                Item::Bad(reason) => self.rep.bad(reason).await?,
                Item::Reply(r) => replies.push(r),
            }
        }
        Ok(replies)
    }

    /// Sends `request` and waits for the first reply `accept` maps to Some.
    pub async fn transact<T>(
        &mut self,
        request: &[u8],
        (dongle, what): (&'static str, &'static str),
        accept: impl Fn(&D::Reply) -> Option<T> + Send,
    ) -> Result<T, Stop> {
        self.write(request).await?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while Instant::now() < deadline {
            for r in self.poll().await? {
                if let Some(t) = accept(&r) {
                    return Ok(t);
                }
            }
        }
        Err(RadioError::NoAnswer {
            dongle,
            request: what,
        }
        .into())
    }
}
