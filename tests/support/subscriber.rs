//! An MQTT subscriber for end-to-end tests: records every message it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

/// One received message.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// When the subscriber received it (for latency figures).
    pub at: std::time::Instant,
}

pub struct Subscriber {
    seen: Arc<Mutex<Vec<Message>>>,
    task: JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Subscribes to every filter with QoS 1 and a persistent session, so messages
    /// published while the broker restarts are queued for it. Returns after SUBACK.
    pub async fn start(port: u16, client_id: &str, filters: &[&str]) -> Subscriber {
        Self::start_qos(port, client_id, filters, QoS::AtLeastOnce).await
    }

    /// [`Self::start`] with another subscription QoS (benchmarks use QoS 0 so that the
    /// subscriber's own acknowledgements do not limit what is measured).
    pub async fn start_qos(port: u16, client_id: &str, filters: &[&str], qos: QoS) -> Subscriber {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut acks = 0usize;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        for f in &filters {
                            let _ = client.subscribe(f.clone(), qos).await;
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        acks += 1;
                        if acks >= filters.len() {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        sink.lock().unwrap().push(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: std::time::Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("subscriber did not get SUBACK within 10 s")
            .expect("subscriber task ended");
        Subscriber { seen, task }
    }

    /// Everything received so far, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.seen.lock().unwrap().clone()
    }

    /// Messages on topics starting with `prefix`.
    pub fn on(&self, prefix: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.starts_with(prefix))
            .collect()
    }

    /// How many messages arrived on topics starting with `prefix` (without copying them).
    pub fn count_on(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic.starts_with(prefix))
            .count()
    }

    /// Payload of the last message on exactly `topic`.
    pub fn last_on(&self, topic: &str) -> Option<Message> {
        self.messages().into_iter().rev().find(|m| m.topic == topic)
    }

    /// Polls until `cond(messages)` holds; panics with `what` and a summary after `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&[Message]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let msgs = self.messages();
            if cond(&msgs) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; {} message(s) seen, last: {:?}",
                msgs.len(),
                msgs.last().map(|m| (
                    m.topic.clone(),
                    String::from_utf8_lossy(&m.payload).into_owned()
                ))
            );
            sleep(Duration::from_millis(25)).await;
        }
    }
}
