//! Publishing from the store: readings held for `hold_ms` (so that every gateway's copy
//! is merged) are claimed, written to the durable spool with their receivers, and only
//! then marked published (see [`PgStore::publish_due`]).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::spool::SpoolHandle;
use crate::store::postgres::{Due, PgStore};

use super::CentralSection;

/// Where a reading goes and what it says.
#[derive(Debug, Clone)]
struct Route {
    prefix: String,
    topic: Option<String>,
}

impl Route {
    fn topic(&self, due: &Due) -> String {
        match &self.topic {
            Some(t) => format!("{t}/{}", due.meter_id),
            None => {
                let best = due.receivers.first().map_or("central", |(g, _)| g.as_str());
                crate::mqtt::topic_meter(&self.prefix, best, &due.meter_id)
            }
        }
    }
}

/// The reading's JSON with `"receivers":[{"gateway":…,"rssi_dbm":…},…]` appended, best
/// first. The reading's own bytes are kept as the decoder wrote them.
pub fn with_receivers(reading: &str, receivers: &[(String, Option<f32>)]) -> String {
    let list: Vec<serde_json::Value> = receivers
        .iter()
        .map(|(g, r)| match r {
            Some(r) => serde_json::json!({"gateway": g, "rssi_dbm": r}),
            None => serde_json::json!({"gateway": g}),
        })
        .collect();
    let list = serde_json::Value::Array(list).to_string();
    match reading.trim_end().strip_suffix('}') {
        Some(body) if body.trim_end().ends_with('{') => format!("{body}\"receivers\":{list}}}"),
        Some(body) => format!("{body},\"receivers\":{list}}}"),
        None => reading.to_owned(),
    }
}

pub struct Outbox {
    stop: ShutdownTrigger,
    task: JoinHandle<u64>,
}

impl Outbox {
    pub fn start(store: PgStore, spool: SpoolHandle, cfg: &CentralSection, prefix: &str) -> Self {
        let route = Route {
            prefix: prefix.to_owned(),
            topic: cfg.topic.clone(),
        };
        let hold = cfg.hold_ms as f64 / 1000.0;
        let stop = ShutdownTrigger::new();
        let task = tokio::spawn(run(store, spool, route, hold, stop.subscribe()));
        Outbox { stop, task }
    }

    /// Publishes what is due now, then stops; returns how many readings it published.
    pub async fn stop(self) -> u64 {
        self.stop.fire();
        self.task.await.unwrap_or(0)
    }
}

const ROUND: i64 = 2000;

async fn run(
    mut store: PgStore,
    spool: SpoolHandle,
    route: Route,
    hold: f64,
    mut stop: Shutdown,
) -> u64 {
    let mut published = 0u64;
    loop {
        let stopping = stop.is_shutdown();
        let spool = spool.clone();
        let route = route.clone();
        let deliver = move |due: Vec<Due>| {
            let items: Vec<(String, Vec<u8>)> = due
                .iter()
                .map(|d| {
                    (
                        route.topic(d),
                        with_receivers(&d.reading, &d.receivers).into_bytes(),
                    )
                })
                .collect();
            spool.commit_batch(&items) == items.len()
        };
        let n = match store.publish_due(hold, ROUND, deliver).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!("central: publishing from the store: {e}");
                0
            }
        };
        published += n as u64;
        if stopping {
            return published;
        }
        if n < ROUND as usize {
            stop.sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_appended_to_the_reading() {
        let r = vec![("gw-2".to_owned(), Some(-60.5)), ("gw-1".to_owned(), None)];
        assert_eq!(
            with_receivers(r#"{"schema":1}"#, &r),
            r#"{"schema":1,"receivers":[{"gateway":"gw-2","rssi_dbm":-60.5},{"gateway":"gw-1"}]}"#
        );
        assert_eq!(with_receivers("{}", &[]), r#"{"receivers":[]}"#);
    }

    #[test]
    fn topic_of_the_best_receiver_or_the_central_topic() {
        let due = Due {
            meter_id: "12345678".into(),
            reading: "{}".into(),
            receivers: vec![("gw-3".into(), Some(-50.0)), ("gw-1".into(), Some(-80.0))],
        };
        let mut route = Route {
            prefix: "wmbus".into(),
            topic: None,
        };
        assert_eq!(route.topic(&due), "wmbus/gw-3/meter/12345678");
        route.topic = Some("site/readings".into());
        assert_eq!(route.topic(&due), "site/readings/12345678");
    }
}
