//! Runs the real `wmbusd` binary for end-to-end tests: a temporary configuration, the
//! child's log (stderr) and readings (stdout, `--stdout`) captured line by line, signals,
//! and a kill on drop so a failing test leaves no daemon behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::{sleep, Instant};

/// Path of the binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");

/// Lines a child wrote, shared with the reader thread.
type Lines = Arc<Mutex<Vec<String>>>;

/// Removes ANSI colour sequences (`ESC [ ... m`) so assertions see plain text.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn collect(stream: impl std::io::Read + Send + 'static, sink: Lines) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(strip_ansi(&line));
        }
    })
}

/// A running `wmbusd run`.
pub struct Daemon {
    child: Option<Child>,
    pub pid: u32,
    stderr: Lines,
    stdout: Lines,
    /// The threads reading stderr and stdout; they end at EOF, after the child exited.
    readers: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// `wmbusd run --config CONFIG --stdout --state-file STATE`.
    pub fn start(config: &Path, state_file: &Path) -> Daemon {
        Self::start_args(&[
            "run".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--stdout".as_ref(),
            "--state-file".as_ref(),
            state_file.as_os_str(),
        ])
    }

    pub fn start_args(args: &[&std::ffi::OsStr]) -> Daemon {
        // WMBUSD_BIN: measure another build (e.g. target/release/wmbusd) with the same harness.
        let bin = std::env::var_os("WMBUSD_BIN").unwrap_or_else(|| BIN.into());
        let mut child = Command::new(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wmbusd");
        let stderr = Lines::default();
        let stdout = Lines::default();
        let readers = vec![
            collect(child.stderr.take().expect("piped stderr"), stderr.clone()),
            collect(child.stdout.take().expect("piped stdout"), stdout.clone()),
        ];
        Daemon {
            pid: child.id(),
            child: Some(child),
            stderr,
            stdout,
            readers,
        }
    }

    /// The log so far, one line per entry.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Log lines containing every one of `parts`.
    pub fn log_lines_with(&self, parts: &[&str]) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
            .collect()
    }

    /// Readings printed on stdout so far (JSON lines).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until a log line contains all of `parts`; panics with the log after `limit`.
    pub async fn wait_log(&mut self, parts: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log_lines_with(parts).into_iter().next() {
                return line;
            }
            self.assert_running(&format!("waiting for log {parts:?}"));
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?} within {limit:?}; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `count` log lines contain all of `parts`.
    pub async fn wait_log_count(&mut self, parts: &[&str], count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.log_lines_with(parts).len() < count {
            self.assert_running(&format!("waiting for {count} x {parts:?}"));
            assert!(
                Instant::now() < deadline,
                "fewer than {count} log lines with {parts:?} within {limit:?}; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` readings were printed on stdout.
    pub async fn wait_stdout(&mut self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.stdout.lock().unwrap().len() < n {
            self.assert_running(&format!("waiting for {n} readings on stdout"));
            assert!(
                Instant::now() < deadline,
                "only {} of {n} readings on stdout within {limit:?}; log:\n{}",
                self.stdout.lock().unwrap().len(),
                self.log()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Panics (with the log) if the daemon has exited.
    pub fn assert_running(&mut self, what: &str) {
        let exited = self
            .child
            .as_mut()
            .map_or(Some(None), |c| c.try_wait().ok().flatten().map(Some));
        if let Some(status) = exited {
            panic!(
                "wmbusd is not running ({what}); exit {status:?}; log:\n{}",
                self.log()
            );
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped (the Child is held).
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid);
    }

    /// Waits for the child to exit on its own within `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("daemon already reaped");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                self.join_readers();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wmbusd did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// SIGKILL: no shutdown code runs, as on a crash or power cut of the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.join_readers();
        }
    }

    /// After exit: waits until everything the child wrote has been collected. The pipes
    /// reach EOF when the child is gone (it spawns no processes that could inherit them).
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    /// `VmRSS` in kB from /proc/PID/status.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// utime + stime in clock ticks from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).expect("utime");
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).expect("stime");
        utime + stime
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("WMBUSD_E2E_LOG").is_some() {
            eprintln!("---- wmbusd log (pid {}) ----\n{}", self.pid, self.log());
        }
        self.kill9();
    }
}

/// Runs `wmbusd ARGS` to completion (bounded); returns status, stdout, stderr.
pub async fn run_to_exit(args: &[&std::ffi::OsStr], limit: Duration) -> (ExitStatus, String) {
    let mut d = Daemon::start_args(args);
    let status = d.wait_exit(limit).await;
    (status, d.log())
}

/// One `[[meter]]` of a test configuration.
#[derive(Clone, Debug)]
pub struct MeterEntry {
    pub id: String,
    pub key: Option<String>,
}

impl MeterEntry {
    pub fn new(id: &str, key: Option<&str>) -> Self {
        MeterEntry {
            id: id.to_owned(),
            key: key.map(str::to_owned),
        }
    }
}

/// A daemon configuration in a temporary directory.
pub struct TestConfig {
    pub gateway: String,
    /// (driver, device) per radio.
    pub radios: Vec<(String, PathBuf)>,
    pub mqtt_port: u16,
    pub meters: Vec<MeterEntry>,
    pub spool_dir: PathBuf,
    /// Lines appended to the `[spool]` section.
    pub spool_extra: String,
    pub dedupe_window_secs: u64,
}

impl TestConfig {
    pub fn new(dir: &Path, gateway: &str, mqtt_port: u16) -> TestConfig {
        TestConfig {
            gateway: gateway.to_owned(),
            radios: Vec::new(),
            mqtt_port,
            meters: Vec::new(),
            spool_dir: dir.join("spool"),
            spool_extra: String::new(),
            dedupe_window_secs: 30,
        }
    }

    pub fn radio(mut self, driver: &str, device: &Path) -> Self {
        self.radios.push((driver.to_owned(), device.to_path_buf()));
        self
    }

    pub fn meter(mut self, id: &str, key: Option<&str>) -> Self {
        self.meters.push(MeterEntry::new(id, key));
        self
    }

    pub fn to_toml(&self) -> String {
        let mut t = format!("[gateway]\nid = \"{}\"\n\n", self.gateway);
        for (driver, device) in &self.radios {
            t.push_str(&format!(
                "[[radio]]\ndriver = \"{driver}\"\ndevice = \"{}\"\nmodes = [\"C1\", \"T1\"]\n\n",
                device.display()
            ));
        }
        t.push_str(&format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\ntopic_prefix = \"wmbus\"\nclient_id = \"wmbusd-{}\"\nkeep_alive_secs = 5\n\n",
            self.mqtt_port, self.gateway
        ));
        t.push_str(&format!(
            "[spool]\ndir = \"{}\"\n{}\n\n",
            self.spool_dir.display(),
            self.spool_extra
        ));
        t.push_str(&format!(
            "[pipeline]\ndedupe_window_secs = {}\n\n",
            self.dedupe_window_secs
        ));
        for m in &self.meters {
            t.push_str(&format!("[[meter]]\nid = \"{}\"\n", m.id));
            if let Some(k) = &m.key {
                t.push_str(&format!("key = \"{k}\"\n"));
            }
            t.push('\n');
        }
        t
    }

    /// Writes the configuration to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).expect("write test config");
    }
}
