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
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    /// Starts a broker on `port` with persistence in a fresh temporary directory.
    pub fn start_on(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir for mosquitto");
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.write_config();
        m.launch();
        m
    }

    fn write_config(&self) {
        // mosquitto started as root drops to the `mosquitto` user, which could not write the
        // persistence directory in our temp dir; stay root instead.
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let conf = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence true\n\
             persistence_location {dir}/\n\
             autosave_interval 1\n\
             max_queued_messages 100000\n\
             log_dest file {dir}/mosquitto.log\n\
             log_type all\n\
             {user}",
            port = self.port,
            dir = self.dir.path().display(),
            user = if root { "user root\n" } else { "" },
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
