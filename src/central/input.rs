//! The central decoder's input: an MQTT 5 shared subscription with manual acknowledgements.
//!
//! Every `wmbusd central` of a group subscribes to `$share/<group>/<prefix>/+/raw`; the
//! broker hands each raw frame to one of them. A frame is acknowledged only after the
//! batch holding it is committed to the store ([`Input::ack`]), so frames of an instance
//! that dies are delivered again (to it after a restart, or to another instance, as the
//! broker implements it). The session is persistent (clean start off, session expiry
//! `session_expiry_secs`) so that a restart under the same client id gets them back.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mqtt::MqttConfig;

/// A raw frame and the connection it arrived on (acks go only to that connection).
#[derive(Debug)]
pub struct Delivery {
    pub publish: Publish,
    pub connection: u64,
}

/// What the input task reports.
#[derive(Debug)]
pub enum InputEvent {
    Frame(Box<Delivery>),
    /// A (re)connection was established: deliveries of earlier connections are not acked
    /// (the broker sends them again).
    Connected(u64),
}

/// Subscription settings.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub mqtt: MqttConfig,
    pub group: String,
    pub receive_maximum: u16,
    pub session_expiry_secs: u32,
}

impl InputConfig {
    pub fn filter(&self) -> String {
        format!("$share/{}/{}/+/raw", self.group, self.mqtt.topic_prefix)
    }
}

/// The running subscription.
pub struct Input {
    client: AsyncClient,
    task: JoinHandle<()>,
    connection: u64,
}

fn options(cfg: &InputConfig) -> MqttOptions {
    let m = &cfg.mqtt;
    let mut o = MqttOptions::new(format!("{}-in", m.client_id), m.host.clone(), m.port);
    o.set_keep_alive(m.keep_alive.max(Duration::from_secs(5)))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(cfg.session_expiry_secs))
        .set_manual_acks(true)
        .set_receive_maximum(Some(cfg.receive_maximum))
        .set_max_packet_size(Some(256 * 1024));
    if let Some(user) = &m.username {
        o.set_credentials(user.clone(), m.password.clone().unwrap_or_default());
    }
    o
}

impl Input {
    /// Connects (retrying in the background) and forwards frames to `tx`. Unbounded: the
    /// event loop must never wait for the decoder, or the acknowledgements the decoder
    /// queues (which the event loop sends) would wait for it in turn. The broker bounds
    /// what is in flight (receive maximum).
    pub fn start(cfg: &InputConfig, tx: mpsc::UnboundedSender<InputEvent>) -> Input {
        let cap = usize::from(cfg.receive_maximum) * 2 + 16;
        let (client, eventloop) = AsyncClient::new(options(cfg), cap);
        let task = tokio::spawn(poll(eventloop, client.clone(), cfg.clone(), tx));
        Input {
            client,
            task,
            connection: 0,
        }
    }

    pub fn set_connection(&mut self, connection: u64) {
        self.connection = connection;
    }

    /// Acknowledges a frame whose reading is durable. Frames of an earlier connection are
    /// left to the broker's redelivery.
    pub async fn ack(&self, d: &Delivery) {
        if d.connection != self.connection {
            return;
        }
        if let Err(e) = self.client.ack(&d.publish).await {
            tracing::warn!("central: acknowledgement not sent: {e}");
        }
    }

    /// Disconnects cleanly; unacknowledged frames stay with the broker.
    pub async fn stop(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    cfg: InputConfig,
    tx: mpsc::UnboundedSender<InputEvent>,
) {
    let mut connection = 0u64;
    let mut backoff = cfg.mqtt.reconnect_min;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connection += 1;
                backoff = cfg.mqtt.reconnect_min;
                tracing::info!(
                    "central: subscribed side connected to {}:{} (session present: {}), {}",
                    cfg.mqtt.host,
                    cfg.mqtt.port,
                    ack.session_present,
                    cfg.filter()
                );
                if let Err(e) = client.try_subscribe(cfg.filter(), QoS::AtLeastOnce) {
                    tracing::error!("central: cannot subscribe: {e}");
                }
                if tx.send(InputEvent::Connected(connection)).is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let d = Delivery {
                    publish,
                    connection,
                };
                if tx.send(InputEvent::Frame(Box::new(d))).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                if tx.is_closed() {
                    return;
                }
                tracing::warn!(
                    "central: broker {}:{} unreachable: {e}; retrying in {} s",
                    cfg.mqtt.host,
                    cfg.mqtt.port,
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = crate::mqtt::next_backoff(backoff, cfg.mqtt.reconnect_max);
            }
        }
    }
}
