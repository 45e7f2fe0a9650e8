//! Serial ports on this system and which of them hold a wM-Bus dongle (`wmbusd probe`,
//! `wmbusd listen --driver auto`).
//!
//! Probing means writing a query, and a query written to a modem, a GPS receiver or a
//! microcontroller board can disturb it. So a port is only probed when the user named it,
//! or when its USB vendor/product id or its `/dev/serial/by-id` name belongs to an adapter
//! that wM-Bus dongles are built on. Every other port is reported "unknown, not probed"
//! and never opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

use super::{im871a, DongleInfo, DriverKind, ProbeError};

/// A serial port found on the system or named by the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialPort {
    /// The device node (symlinks resolved).
    pub path: PathBuf,
    /// Its `/dev/serial/by-id` name, when udev made one.
    pub by_id: Option<String>,
    /// USB vendor and product id (`0403:6001`), from sysfs.
    pub usb_id: Option<String>,
    /// Named on the command line: probed whatever it is.
    pub explicit: bool,
}

/// USB vendor:product ids of the serial adapters wM-Bus dongles are built on.
const DONGLE_USB_IDS: [&str; 4] = ["0403:6001", "0403:6015", "10c4:ea60", "03eb:204b"];
/// Words in a by-id name that identify a dongle (compared case-insensitively).
const DONGLE_NAME_HINTS: [&str; 7] = [
    "imst", "im871a", "im170a", "amb8465", "amber", "cul", "busware",
];

impl SerialPort {
    /// Whether the probe may write to this port (see the module docs).
    pub fn may_probe(&self) -> bool {
        if self.explicit {
            return true;
        }
        let known_usb = self
            .usb_id
            .as_deref()
            .is_some_and(|id| DONGLE_USB_IDS.contains(&id));
        let known_name = self.by_id.as_deref().is_some_and(|n| {
            let n = n.to_ascii_lowercase();
            DONGLE_NAME_HINTS.iter().any(|h| n.contains(h))
        });
        known_usb || known_name
    }
}

/// What `probe` found on one port.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    #[serde(flatten)]
    pub port: SerialPort,
    /// `identified`, `no answer`, `error` or `unknown, not probed`.
    pub status: String,
    pub driver: Option<String>,
    pub firmware: Option<String>,
    /// Link mode the dongle is set to, where it can tell (iM871A GET_CONFIG).
    pub mode: Option<String>,
    pub id: Option<String>,
    pub error: Option<String>,
}

/// Serial ports on this system: ttyUSB*, ttyACM* and the by-id links, deduplicated by the
/// device node they resolve to.
pub fn system_ports(by_id_dir: &Path) -> Vec<SerialPort> {
    let mut ports: BTreeMap<PathBuf, SerialPort> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/dev") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("ttyUSB") || name.starts_with("ttyACM") {
                let path = entry.path();
                ports.insert(path.clone(), port_at(path, None, false));
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir(by_id_dir) {
        for entry in dir.flatten() {
            let Ok(real) = std::fs::canonicalize(entry.path()) else {
                continue;
            };
            let by_id = entry.file_name().to_string_lossy().into_owned();
            ports
                .entry(real.clone())
                .and_modify(|p| p.by_id = Some(by_id.clone()))
                .or_insert_with(|| port_at(real, Some(by_id), false));
        }
    }
    ports.into_values().collect()
}

/// Describes a port the user named: symlinks resolved, by-id name kept when given one.
pub fn named_port(path: &Path) -> SerialPort {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let by_id = path
        .parent()
        .filter(|dir| dir.ends_with("serial/by-id"))
        .and_then(|_| path.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    port_at(real, by_id, true)
}

fn port_at(path: PathBuf, by_id: Option<String>, explicit: bool) -> SerialPort {
    let usb_id = path
        .file_name()
        .and_then(|n| usb_id_of(&n.to_string_lossy()));
    SerialPort {
        path,
        by_id,
        usb_id,
        explicit,
    }
}

/// `vvvv:pppp` of the USB device behind `/sys/class/tty/<tty>`: the interface's
/// `device` link points into the USB tree; idVendor/idProduct sit a level or two up.
fn usb_id_of(tty: &str) -> Option<String> {
    let device =
        std::fs::canonicalize(Path::new("/sys/class/tty").join(tty).join("device")).ok()?;
    let read = |dir: &Path, file: &str| -> Option<String> {
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        Some(text.trim().to_ascii_lowercase())
    };
    device.ancestors().take(4).find_map(|dir| {
        Some(format!(
            "{}:{}",
            read(dir, "idVendor")?,
            read(dir, "idProduct")?
        ))
    })
}

/// Probes the ports that may be probed; the others are reported untouched.
pub async fn probe_ports(ports: Vec<SerialPort>, timeout: Duration) -> Vec<ProbeResult> {
    let mut out = Vec::with_capacity(ports.len());
    for port in ports {
        let mut result = ProbeResult {
            port,
            status: String::new(),
            driver: None,
            firmware: None,
            mode: None,
            id: None,
            error: None,
        };
        if !result.port.may_probe() {
            result.status = "unknown, not probed".into();
            out.push(result);
            continue;
        }
        let path = result.port.path.to_string_lossy().into_owned();
        match super::probe(&path, timeout).await {
            Ok(DongleInfo {
                driver,
                description,
                id,
            }) => {
                result.status = "identified".into();
                result.driver = Some(driver.as_str().to_owned());
                result.firmware = Some(description);
                result.id = id;
                if driver == DriverKind::Im871a {
                    result.mode = im871a_link_mode(&path, timeout).await;
                }
            }
            Err(ProbeError::NoAnswer { .. }) => result.status = "no answer".into(),
            Err(e) => {
                result.status = "error".into();
                result.error = Some(e.to_string());
            }
        }
        out.push(result);
    }
    out
}

/// Asks an identified iM871A for its configuration (GET_CONFIG, a read-only query) and
/// names the link mode it is set to. `None` when it does not answer in time.
async fn im871a_link_mode(path: &str, timeout: Duration) -> Option<String> {
    let request = im871a::HciFrame::new(
        im871a::EP_DEVMGMT,
        im871a::DEVMGMT_GET_CONFIG_REQ,
        Vec::new(),
    )
    .encode()
    .ok()?;
    let mut port = tokio_serial::new(path, im871a::BAUD)
        .open_native_async()
        .ok()?;
    port.write_all(&request).await.ok()?;
    let mut decoder = im871a::Decoder::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 256];
    loop {
        let n = match tokio::time::timeout_at(deadline, port.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        decoder.push(buf.get(..n).unwrap_or(&[]));
        while let Some(frame) = decoder.next_frame() {
            let Ok(frame) = frame else { continue };
            if frame.endpoint == im871a::EP_DEVMGMT
                && frame.msg_id == im871a::DEVMGMT_GET_CONFIG_RSP
            {
                return config_link_mode(&frame.payload).map(im871a_mode_name);
            }
        }
    }
}

/// The link-mode byte of a GET_CONFIG response payload: `[IIFlag1][fields…][IIFlag2]…`,
/// fields in bit order, the device mode (flag 0x01, 1 byte) before the link mode (0x02).
fn config_link_mode(payload: &[u8]) -> Option<u8> {
    let flag1 = *payload.first()?;
    if flag1 & 0x02 == 0 {
        return None;
    }
    let at = 1 + usize::from(flag1 & 0x01 != 0);
    payload.get(at).copied()
}

/// iM871A link-mode byte values (protocol.md §6.1).
fn im871a_mode_name(byte: u8) -> String {
    match byte {
        0x00 => "S1",
        0x01 => "S1-m",
        0x02 => "S2",
        0x03 => "T1",
        0x04 => "T2",
        0x05 => "R2",
        0x06 => "C1 (format A)",
        0x07 => "C1 (format B)",
        0x08 => "C2 (format A)",
        0x09 => "C2 (format B)",
        0x0A => "C1+T1",
        other => return format!("0x{other:02X}"),
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(usb: Option<&str>, by_id: Option<&str>, explicit: bool) -> SerialPort {
        SerialPort {
            path: PathBuf::from("/dev/ttyUSB0"),
            by_id: by_id.map(str::to_owned),
            usb_id: usb.map(str::to_owned),
            explicit,
        }
    }

    #[test]
    fn only_known_adapters_or_named_ports_are_probed() {
        assert!(port(Some("0403:6001"), None, false).may_probe());
        assert!(port(
            None,
            Some("usb-IMST_GmbH_iM871A-USB_00000001-if00-port0"),
            false
        )
        .may_probe());
        assert!(!port(
            Some("1546:01a7"),
            Some("usb-u-blox_GNSS_receiver-if00"),
            false
        )
        .may_probe());
        assert!(!port(None, None, false).may_probe());
        assert!(port(None, None, true).may_probe());
    }

    #[test]
    fn get_config_link_mode() {
        // IIFlag1 0x03: device mode 0 (other), link mode 0x03 (T1); IIFlag2 0x10: RSSI on.
        assert_eq!(
            config_link_mode(&[0x03, 0x00, 0x03, 0x10, 0x01]),
            Some(0x03)
        );
        assert_eq!(config_link_mode(&[0x02, 0x0A, 0x00]), Some(0x0A));
        assert_eq!(config_link_mode(&[0x01, 0x00, 0x00]), None);
        assert_eq!(config_link_mode(&[0x03, 0x00]), None);
        assert_eq!(config_link_mode(&[]), None);
        assert_eq!(im871a_mode_name(0x0A), "C1+T1");
        assert_eq!(im871a_mode_name(0x06), "C1 (format A)");
        assert_eq!(im871a_mode_name(0x42), "0x42");
    }

    #[tokio::test]
    async fn unknown_ports_are_not_opened() {
        // A path that does not exist would fail to open; not probing means no error.
        let p = SerialPort {
            path: PathBuf::from("/nonexistent/ttyUSB9"),
            by_id: None,
            usb_id: None,
            explicit: false,
        };
        let r = probe_ports(vec![p], Duration::from_millis(10)).await;
        assert_eq!(r[0].status, "unknown, not probed");
        assert!(r[0].error.is_none());
    }
}
