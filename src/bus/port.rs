//! The I/O edge of the master: a serial M-Bus level converter (8 data bits, even parity,
//! 1 stop bit, as EN 13757-2 prescribes) or a converter on the network (`tcp://host:port`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

use super::{Timing, Transport};
use crate::wire::mbus;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How long a TCP converter may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer longer than this is not M-Bus (a long frame has at most 261 bytes).
const MAX_ANSWER: usize = 1024;

/// An open bus port.
pub struct Port {
    io: Box<dyn Io>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open serial port {device}: {source}")]
    Serial {
        device: String,
        #[source]
        source: tokio_serial::Error,
    },
    #[error("cannot connect to {address}: {source}")]
    Tcp {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

impl Port {
    /// Opens `device`: a tty path, or `tcp://host:port`.
    pub async fn open(device: &str, baud: u32) -> Result<Port, OpenError> {
        if let Some(address) = device.strip_prefix("tcp://") {
            let tcp = match tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::TcpStream::connect(address),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no connection within 5 s",
                )),
            }
            .map_err(|source| OpenError::Tcp {
                address: address.to_owned(),
                source,
            })?;
            // Requests are a few bytes; send them at once.
            let _ = tcp.set_nodelay(true);
            return Ok(Port { io: Box::new(tcp) });
        }
        let serial = tokio_serial::new(device, baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::Even)
            .stop_bits(tokio_serial::StopBits::One)
            .flow_control(tokio_serial::FlowControl::None)
            .open_native_async()
            .map_err(|source| OpenError::Serial {
                device: device.to_owned(),
                source,
            })?;
        Ok(Port {
            io: Box::new(serial),
        })
    }

    /// Reads and drops what is waiting: a late answer to an earlier request must not be
    /// taken for the answer to the next one. Once stale bytes show up, waits until the line
    /// has been quiet for a character gap, so that the request does not collide with the
    /// rest of that answer.
    async fn discard_stale(&mut self, timing: &Timing) -> std::io::Result<()> {
        let mut buf = [0u8; 256];
        let mut quiet = Duration::from_millis(1);
        loop {
            match tokio::time::timeout(quiet, self.io.read(&mut buf)).await {
                Err(_) => return Ok(()),
                Ok(Ok(0)) => return Err(closed()),
                Ok(Ok(_)) => quiet = timing.gap(),
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the bus port was closed")
}

impl Transport for Port {
    async fn exchange(&mut self, request: &[u8], timing: &Timing) -> std::io::Result<Vec<u8>> {
        self.discard_stale(timing).await?;
        self.io.write_all(request).await?;
        self.io.flush().await?;
        let mut deadline = Instant::now() + timing.answer_window(request.len());
        let mut answer = Vec::new();
        let mut buf = [0u8; 300];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Ok(answer),
                Ok(Ok(0)) => return Err(closed()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e),
            };
            answer.extend_from_slice(buf.get(..n).unwrap_or_default());
            let complete = mbus::frame_len(&answer).is_some_and(|len| answer.len() >= len);
            if complete || answer.len() >= MAX_ANSWER {
                return Ok(answer);
            }
            // The rest of the answer must follow without a long pause.
            deadline = Instant::now() + timing.gap();
        }
    }
}
