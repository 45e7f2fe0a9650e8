//! The daemon's side of Home Assistant discovery: sends what the
//! [`Announcer`](crate::homeassistant::Announcer) decides on the retained publisher, and
//! keeps its memory in `homeassistant.json` beside the state file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::homeassistant::{Announcer, Context, Message};
use crate::mqtt::{MqttConfig, RetainedPublisher};
use crate::reading::Reading;

/// File name of the announced topics, in the state file's directory.
pub const FILE_NAME: &str = "homeassistant.json";

pub struct Discovery {
    announcer: Announcer,
    retained: RetainedPublisher,
    file: Option<PathBuf>,
    /// The newest memory document; writers take it under the lock, so the last write is
    /// always the newest document whatever order the blocking tasks run in.
    latest: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Discovery {
    /// `None` unless `[homeassistant]` is enabled and MQTT configured. Announcements of
    /// meters that left the configuration while the daemon was stopped are removed now.
    pub fn start(
        config: &Config,
        mqtt: Option<&MqttConfig>,
        state_file: Option<&Path>,
        retained: RetainedPublisher,
    ) -> Option<Discovery> {
        let section = config.homeassistant.clone()?;
        let mqtt = mqtt?;
        let file = state_file.map(|p| p.with_file_name(FILE_NAME));
        if file.is_none() {
            tracing::warn!("homeassistant: no state file, so sensors of meters removed from the configuration while wmbusd is stopped stay in Home Assistant");
        }
        let remembered = file.as_deref().and_then(read_memory);
        let ctx = Context {
            topic_prefix: mqtt.topic_prefix.clone(),
            gateway: config.gateway.id.clone(),
            payload: config.mqtt.as_ref().map(|m| m.payload).unwrap_or_default(),
        };
        let announcer = Announcer::new(section, ctx, &config.meters, remembered.as_ref());
        let mut discovery = Discovery {
            announcer,
            retained,
            file,
            latest: Arc::default(),
        };
        discovery.reload(config);
        Some(discovery)
    }

    pub fn on_reading(&mut self, reading: &Reading) {
        let messages = self.announcer.observe(reading);
        self.send(messages);
    }

    /// A new meter list: sensors of meters no longer in it are removed.
    pub fn reload(&mut self, config: &Config) {
        let messages = self.announcer.reconfigure(&config.meters);
        self.send(messages);
    }

    fn send(&mut self, messages: Vec<Message>) {
        for (topic, payload) in messages {
            tracing::debug!(
                "homeassistant: {} {topic}",
                if payload.is_empty() {
                    "removing"
                } else {
                    "announcing"
                }
            );
            self.retained.publish_retained(topic, payload);
        }
        if let Some(doc) = self.announcer.snapshot() {
            self.persist(doc);
        }
    }

    /// Written off the event loop (a blocking task), via a temporary file and a rename.
    fn persist(&self, doc: serde_json::Value) {
        let Some(path) = self.file.clone() else {
            return;
        };
        if let Ok(mut slot) = self.latest.lock() {
            *slot = Some(doc);
        }
        let latest = Arc::clone(&self.latest);
        tokio::task::spawn_blocking(move || {
            let Ok(slot) = latest.lock() else { return };
            if let Some(doc) = slot.as_ref() {
                if let Err(e) = write_memory(&path, doc) {
                    tracing::error!("homeassistant: cannot write {}: {e}", path.display());
                }
            }
        });
    }
}

fn read_memory(path: &Path) -> Option<serde_json::Value> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("homeassistant: cannot read {}: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::warn!(
                "homeassistant: {} is not valid JSON ({e}); starting with an empty memory",
                path.display()
            );
            None
        }
    }
}

fn write_memory(path: &Path, doc: &serde_json::Value) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, doc.to_string())?;
    std::fs::rename(&tmp, path)
}
