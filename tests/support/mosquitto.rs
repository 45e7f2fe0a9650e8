//! Starts a real mosquitto broker on a free loopback port for a test, killed on drop.
//!
//! A missing mosquitto binary is a test failure, not a skip: CI installs it.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CANDIDATES: &[&str] = &[
    "/usr/sbin/mosquitto",
    "/usr/bin/mosquitto",
    "/usr/local/sbin/mosquitto",
];

/// Path of the mosquitto binary; panics with install instructions when there is none.
pub fn mosquitto_binary() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("mosquitto");
            if p.is_file() {
                return p;
            }
        }
    }
    for c in CANDIDATES {
        if Path::new(c).is_file() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "mosquitto not found (PATH, /usr/sbin): the MQTT broker tests need a real broker. \
         Install it, e.g. `apt-get install mosquitto`"
    );
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    l.local_addr().expect("local addr").port()
}

pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: String,
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    /// Starts a broker on `port` with persistence in a fresh temporary directory.
    pub fn start_on(port: u16) -> Mosquitto {
        Self::start_with(port, |_| String::new())
    }

    /// Starts a broker on `port` with extra configuration lines appended after the plain
    /// listener. `extra` gets the broker's private directory (for password files, certificates)
    /// and returns the lines. Without an `allow_anonymous` line anonymous access is allowed.
    pub fn start_with(port: u16, extra: impl FnOnce(&Path) -> String) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir for mosquitto");
        let extra = extra(dir.path());
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            extra,
        };
        m.write_config();
        m.launch();
        m
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self) {
        // mosquitto started as root drops to the `mosquitto` user, which could not write the
        // persistence directory in our temp dir; stay root instead.
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let anonymous = if self.extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        let conf = format!(
            "{user}\
             {anonymous}\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             {extra}\n",
            port = self.port,
            dir = self.dir.path().display(),
            user = if root { "user root\n" } else { "" },
            extra = self.extra,
        );
        fs::write(self.dir.path().join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    fn launch(&mut self) {
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("mosquitto exited at start ({status}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on port {} within 10 s; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker gracefully (SIGTERM: it saves its persistence database).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the broker again on the same port with the same persistence.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a helper tool (mosquitto_passwd, openssl) in `dir`; a missing tool fails the test with
/// install instructions.
pub fn run_tool(dir: &Path, tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); install it (mosquitto_passwd: package mosquitto, openssl: package openssl)")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a throw-away CA (`ca.crt`) and a server certificate for `localhost` / 127.0.0.1
/// (`server.crt`, `server.key`) in `dir`.
pub fn make_test_certificates(dir: &Path) {
    run_tool(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=wmbusd-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    run_tool(
        dir,
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    run_tool(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}
