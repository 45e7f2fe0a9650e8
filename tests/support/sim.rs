//! Dongle simulators on pseudo terminals, for integration tests.
//!
//! A [`Pty`] is a master/slave pair; the code under test opens the slave path like a
//! serial device while a simulator speaks the dongle's real wire protocol on the master.
//!
//! The simulator keeps its own slave descriptor open. On Linux, once every slave
//! descriptor is closed, reads on the master fail with EIO until someone opens the slave
//! again; holding one keeps the master usable while the daemon closes and reopens the
//! port, just as a USB dongle stays present when a program closes its tty. Dropping the
//! `Pty` closes both ends, which the daemon sees as an unplug (EOF/EIO on its descriptor).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use wmbusd::frame::LinkMode;
use wmbusd::radio::{amb8465, im871a};

/// A pseudo-terminal pair with a non-blocking, async master.
#[derive(Debug)]
pub struct Pty {
    /// Visible to the test crates for `tests/radio_pty.rs`'s close-on-exec check.
    pub(crate) master: AsyncFd<OwnedFd>,
    /// Held open on purpose, see the module docs.
    pub(crate) _slave: OwnedFd,
    slave_path: PathBuf,
}

fn set_raw(fd: RawFd) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it before use and both calls only
    // read/write the struct we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Pty {
    /// Opens a new pair; the slave is put in raw mode so nothing is echoed or translated.
    pub fn open() -> io::Result<Pty> {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        // SAFETY: openpty writes two descriptors into the provided ints; the name, termios
        // and winsize pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: openpty succeeded, so both are fresh descriptors owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // openpty does not set close-on-exec; without it every process the test spawns
        // later (the daemon under test, a broker) inherits the master, keeps it open and the
        // daemon never sees the unplug when the simulator drops it.
        for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
            // SAFETY: fcntl on descriptors we own.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        set_raw(slave.as_raw_fd())?;
        let mut name = [0u8; 256];
        // SAFETY: the buffer is valid for its length; ttyname_r NUL-terminates on success.
        let rc = unsafe {
            libc::ttyname_r(
                slave.as_raw_fd(),
                name.as_mut_ptr().cast::<libc::c_char>(),
                name.len(),
            )
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let slave_path =
            PathBuf::from(String::from_utf8_lossy(name.get(..end).unwrap_or(&[])).into_owned());
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            if flags < 0
                || libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open, the same descriptor,
        // until the AsyncFd is dropped.
        let master = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
        Ok(Pty {
            master,
            _slave: slave,
            slave_path,
        })
    }

    /// Path of the slave side (`/dev/pts/N`), what the daemon opens.
    pub fn slave_path(&self) -> &Path {
        &self.slave_path
    }

    /// Reads what the daemon wrote.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: buf is valid for buf.len() bytes.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(usize::try_from(n).unwrap_or(0))
                }
            });
            match res {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends bytes to the daemon as if the dongle emitted them.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut guard = self.master.writable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: bytes is valid for bytes.len() bytes.
                let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(usize::try_from(n).unwrap_or(0))
                }
            });
            match res {
                Ok(Ok(n)) => bytes = bytes.get(n..).unwrap_or(&[]),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

/// Points `link` at `target` atomically (like udev's /dev/serial/by-id links), replacing
/// any previous link; used to simulate replugging a dongle under the same path.
pub fn point_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let tmp = link.with_extension("new-link");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// What a test feeds into a simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimInput {
    /// A canonical telegram the dongle "receives" over the air, with its raw RSSI byte.
    Telegram { frame: Vec<u8>, rssi_raw: u8 },
    /// Bytes written to the host verbatim (garbage, truncated frames, …).
    Raw(Vec<u8>),
    /// `true`: the module hangs — it stays connected but answers nothing and loses
    /// telegrams; `false`: it works again.
    Hang(bool),
}

/// Behaviour of the simulated iM871A.
#[derive(Debug, Clone)]
pub struct Im871aSim {
    pub info: im871a::DeviceInfo,
    /// Attach CRC-16 to everything the module sends.
    pub crc: bool,
}

impl Default for Im871aSim {
    fn default() -> Self {
        Im871aSim {
            info: im871a::DeviceInfo {
                module_type: im871a::MODULE_IM871A,
                device_mode: 0,
                firmware: 0x14,
                hci: 0x01,
                uid: 0x1234_5678,
            },
            crc: true,
        }
    }
}

async fn send_im871a(pty: &Pty, frame: im871a::HciFrame, crc: bool) -> io::Result<()> {
    let mut frame = frame;
    frame.crc = crc;
    let bytes = frame
        .encode()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    pty.write_all(&bytes).await
}

/// Runs a simulated iM871A on `pty` until `inputs` is closed or the pty fails.
///
/// Answers PING, GET_DEVICEINFO and SET_CONFIG like the module; telegrams are emitted as
/// WMBUSMSG_IND once a link mode has been configured (a module in the wrong mode would
/// not hear them), with RSSI when the host enabled RSSI attachment. Telegrams fed before
/// that are held back.
pub async fn run_im871a_sim(
    pty: Pty,
    mut inputs: mpsc::Receiver<SimInput>,
    sim: Im871aSim,
) -> io::Result<()> {
    let mut decoder = im871a::Decoder::new();
    let mut mode: Option<u8> = None;
    let mut rssi_on = false;
    let mut held: Vec<SimInput> = Vec::new();
    let mut hung = false;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            n = pty.read(&mut buf) => {
                let n = n?;
                if hung {
                    continue;
                }
                decoder.push(buf.get(..n).unwrap_or(&[]));
                while let Some(item) = decoder.next_frame() {
                    let Ok(req) = item else { continue };
                    if req.endpoint != im871a::EP_DEVMGMT {
                        continue;
                    }
                    match req.msg_id {
                        im871a::DEVMGMT_PING_REQ => {
                            send_im871a(&pty, im871a::HciFrame::new(im871a::EP_DEVMGMT, im871a::DEVMGMT_PING_RSP, Vec::new()), sim.crc).await?;
                        }
                        im871a::DEVMGMT_GET_DEVICEINFO_REQ => {
                            send_im871a(&pty, im871a::HciFrame::new(im871a::EP_DEVMGMT, im871a::DEVMGMT_GET_DEVICEINFO_RSP, sim.info.to_payload()), sim.crc).await?;
                        }
                        im871a::DEVMGMT_SET_CONFIG_REQ => {
                            let (m, r, status) = apply_set_config(&req.payload);
                            if status == 0 {
                                mode = m.or(mode);
                                rssi_on = r.unwrap_or(rssi_on);
                            }
                            send_im871a(&pty, im871a::HciFrame::new(im871a::EP_DEVMGMT, im871a::DEVMGMT_SET_CONFIG_RSP, vec![status]), sim.crc).await?;
                            if mode.is_some() {
                                for input in std::mem::take(&mut held) {
                                    emit_im871a(&pty, input, rssi_on, sim.crc).await?;
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            input = inputs.recv() => {
                let Some(input) = input else { return Ok(()) };
                match input {
                    SimInput::Hang(h) => hung = h,
                    _ if hung => {}
                    SimInput::Telegram { .. } if mode.is_none() => held.push(input),
                    _ => emit_im871a(&pty, input, rssi_on, sim.crc).await?,
                }
            }
        }
    }
}

/// Reads link mode and RSSI attachment from a SET_CONFIG payload; status 0 OK, 1 malformed.
pub(crate) fn apply_set_config(p: &[u8]) -> (Option<u8>, Option<bool>, u8) {
    let mut it = p.iter().copied();
    let (Some(_nvm), Some(flag1)) = (it.next(), it.next()) else {
        return (None, None, 1);
    };
    let mut mode = None;
    // Field sizes for IIFlag1 bits 0x01..0x80 (M-field 2, ID 4).
    for (bit, size) in [
        (0x01, 1),
        (0x02, 1),
        (0x04, 1),
        (0x08, 2),
        (0x10, 4),
        (0x20, 1),
        (0x40, 1),
        (0x80, 1),
    ] {
        if flag1 & bit != 0 {
            let mut last = None;
            for _ in 0..size {
                last = it.next();
                if last.is_none() {
                    return (None, None, 1);
                }
            }
            if bit == 0x02 {
                mode = last;
            }
        }
    }
    let Some(flag2) = it.next() else {
        return (mode, None, 0);
    };
    let mut rssi = None;
    for bit in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
        if flag2 & bit != 0 {
            let Some(v) = it.next() else {
                return (None, None, 1);
            };
            if bit == 0x10 {
                rssi = Some(v != 0);
            }
        }
    }
    (mode, rssi, 0)
}

async fn emit_im871a(pty: &Pty, input: SimInput, rssi_on: bool, crc: bool) -> io::Result<()> {
    match input {
        SimInput::Hang(_) => Ok(()),
        SimInput::Raw(bytes) => pty.write_all(&bytes).await,
        SimInput::Telegram { frame, rssi_raw } => {
            let ind = im871a::data_indication(&frame, rssi_on.then_some(rssi_raw), None, crc)
                .and_then(|f| f.encode())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            pty.write_all(&ind).await
        }
    }
}

/// Behaviour of the simulated AMB8465.
#[derive(Debug, Clone)]
pub struct Amb8465Sim {
    pub firmware: amb8465::Firmware,
    pub serial: [u8; 4],
    /// Initial non-volatile parameters (address, value); others read as 0.
    pub params: Vec<(u8, u8)>,
}

impl Default for Amb8465Sim {
    fn default() -> Self {
        Amb8465Sim {
            firmware: amb8465::Firmware {
                major: 1,
                minor: 2,
                patch: 3,
            },
            serial: [0x11, 0x22, 0x33, 0x44],
            params: vec![
                (amb8465::PARAM_UART_CMD_OUT_ENABLE, 1),
                (amb8465::PARAM_RSSI_ENABLE, 1),
                (amb8465::PARAM_AUTO_SLEEP, 0),
            ],
        }
    }
}

async fn send_amber(pty: &Pty, frame: amb8465::AmberFrame) -> io::Result<()> {
    let bytes = frame
        .encode()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    pty.write_all(&bytes).await
}

/// Runs a simulated AMB8465 on `pty` until `inputs` is closed or the pty fails.
///
/// Answers FWV, SERIALNO, SET_MODE, GET, SET and RESET from a 256-byte parameter memory.
/// Parameter writes take effect at the next RESET, as on the module. Telegrams are sent
/// as DATA_IND after SET_MODE (held back before), with RSSI when parameter 0x45 is 1.
pub async fn run_amb8465_sim(
    pty: Pty,
    mut inputs: mpsc::Receiver<SimInput>,
    sim: Amb8465Sim,
) -> io::Result<()> {
    let mut nvm = [0u8; 256];
    for (addr, v) in &sim.params {
        if let Some(slot) = nvm.get_mut(usize::from(*addr)) {
            *slot = *v;
        }
    }
    let mut active = nvm;
    let mut decoder = amb8465::Decoder::new(false);
    let mut mode: Option<u8> = None;
    let mut held: Vec<SimInput> = Vec::new();
    let mut hung = false;
    let mut buf = [0u8; 512];
    let resp =
        |cmd: u8, payload: Vec<u8>| amb8465::AmberFrame::new(cmd | amb8465::RESPONSE, payload);
    loop {
        tokio::select! {
            n = pty.read(&mut buf) => {
                let n = n?;
                if hung {
                    continue;
                }
                decoder.push(buf.get(..n).unwrap_or(&[]));
                while let Some(item) = decoder.next_frame() {
                    let Ok(req) = item else { continue };
                    let reply = match (req.cmd, req.payload.as_slice()) {
                        (amb8465::CMD_FWV_REQ, _) => Some(resp(req.cmd, vec![sim.firmware.major, sim.firmware.minor, sim.firmware.patch])),
                        (amb8465::CMD_SERIALNO_REQ, _) => Some(resp(req.cmd, sim.serial.to_vec())),
                        (amb8465::CMD_SET_MODE_REQ, [m]) => {
                            mode = Some(*m);
                            Some(resp(req.cmd, vec![0]))
                        }
                        (amb8465::CMD_GET_REQ, [addr, count]) => {
                            let start = usize::from(*addr);
                            match nvm.get(start..start + usize::from(*count)) {
                                Some(values) => {
                                    let mut p = vec![*addr, *count];
                                    p.extend_from_slice(values);
                                    Some(resp(req.cmd, p))
                                }
                                None => Some(resp(req.cmd, vec![*addr, 0])),
                            }
                        }
                        (amb8465::CMD_SET_REQ, [addr, count, values @ ..]) if values.len() == usize::from(*count) => {
                            let start = usize::from(*addr);
                            match nvm.get_mut(start..start + values.len()) {
                                Some(slots) => {
                                    slots.copy_from_slice(values);
                                    Some(resp(req.cmd, vec![0]))
                                }
                                None => Some(resp(req.cmd, vec![2])),
                            }
                        }
                        (amb8465::CMD_RESET_REQ, _) => {
                            active = nvm;
                            mode = None;
                            Some(resp(req.cmd, vec![0]))
                        }
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        send_amber(&pty, reply).await?;
                    }
                    if mode.is_some() {
                        for input in std::mem::take(&mut held) {
                            emit_amber(&pty, input, &active).await?;
                        }
                    }
                }
            }
            input = inputs.recv() => {
                let Some(input) = input else { return Ok(()) };
                match input {
                    SimInput::Hang(h) => hung = h,
                    _ if hung => {}
                    SimInput::Telegram { .. } if mode.is_none() => held.push(input),
                    _ => emit_amber(&pty, input, &active).await?,
                }
            }
        }
    }
}

async fn emit_amber(pty: &Pty, input: SimInput, active: &[u8; 256]) -> io::Result<()> {
    match input {
        SimInput::Hang(_) => Ok(()),
        SimInput::Raw(bytes) => pty.write_all(&bytes).await,
        SimInput::Telegram { frame, rssi_raw } => {
            let rssi_on = active.get(usize::from(amb8465::PARAM_RSSI_ENABLE)) == Some(&1);
            let cmd_out = active.get(usize::from(amb8465::PARAM_UART_CMD_OUT_ENABLE)) == Some(&1);
            let bytes = if cmd_out {
                amb8465::data_indication(&frame, rssi_on.then_some(rssi_raw))
                    .and_then(|f| f.encode())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            } else {
                // Transparent mode: the bare L-prefixed frame.
                let mut b = frame;
                if rssi_on {
                    b.push(rssi_raw);
                }
                b
            };
            pty.write_all(&bytes).await
        }
    }
}

/// The link mode an iM871A SET_CONFIG link-mode byte stands for (for test assertions).
pub fn im871a_mode_of(byte: u8) -> Option<LinkMode> {
    [LinkMode::S1, LinkMode::T1, LinkMode::C1, LinkMode::C1T1]
        .into_iter()
        .find(|m| im871a::link_mode_byte(*m) == Ok(byte))
}
