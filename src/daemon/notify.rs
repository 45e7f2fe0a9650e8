//! systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per state
//! change to the socket named in `$NOTIFY_SOCKET`. Outside systemd it does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A handle for READY/WATCHDOG/STOPPING messages; cheap to clone and call from any task.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket_path: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honouring `$WATCHDOG_PID`).
    pub fn from_env() -> Self {
        let socket_path = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        let pid_matches = match std::env::var("WATCHDOG_PID") {
            Ok(pid) => pid.trim() == std::process::id().to_string(),
            Err(_) => true,
        };
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_matches)
            .map(Duration::from_micros);
        Notifier {
            socket_path,
            watchdog,
        }
    }

    /// How often to send WATCHDOG=1: half the interval systemd enforces.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn status(&self, text: &str) {
        // STATUS is one line; a newline would start a new assignment.
        let line: String = text.chars().filter(|c| *c != '\n').collect();
        self.send(&format!("STATUS={line}"));
    }

    fn send(&self, message: &str) {
        let Some(path) = &self.socket_path else {
            return;
        };
        let Ok(sock) = UnixDatagram::unbound() else {
            return;
        };
        // A leading '@' names a socket in the abstract namespace.
        let result = if let Some(name) = path.strip_prefix('@') {
            abstract_addr(name).and_then(|addr| sock.send_to_addr(message.as_bytes(), &addr))
        } else {
            sock.send_to(message.as_bytes(), path)
        };
        if let Err(e) = result {
            tracing::debug!("sd_notify {message:?} failed: {e}");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets are Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier {
            socket_path: Some(path.to_string_lossy().into_owned()),
            watchdog: Some(Duration::from_secs(60)),
        };
        n.ready();
        n.status("decoding\n3 meters");
        let mut buf = [0u8; 128];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=decoding3 meters");
        assert_eq!(n.watchdog_period(), Some(Duration::from_secs(30)));
    }
}
