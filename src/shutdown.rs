//! Shutdown signalling for the daemon's tasks, in the style of tokio's mini-redis: one
//! [`ShutdownTrigger`] fires once, every task holds a [`Shutdown`] and `select!`s on
//! [`Shutdown::recv`].

use std::time::Duration;

use tokio::sync::watch;

/// Fires the shutdown of every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A task's view of the shutdown: cheap to clone, `recv` resolves once it fired (at once
/// for every later call).
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    pub fn new() -> ShutdownTrigger {
        ShutdownTrigger {
            tx: watch::channel(false).0,
        }
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }

    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

impl Default for ShutdownTrigger {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once the shutdown fired, or when the trigger is gone (nobody can ask for a
    /// graceful stop any more).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|fired| *fired).await;
    }

    /// Sleeps `d`; false when the shutdown came first.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.recv() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_for_every_subscriber() {
        let trigger = ShutdownTrigger::new();
        let mut a = trigger.subscribe();
        let mut b = a.clone();
        assert!(!a.is_shutdown());
        trigger.fire();
        a.recv().await;
        b.recv().await;
        // Later calls return at once.
        a.recv().await;
        assert!(a.is_shutdown() && b.is_shutdown());
        assert!(!a.sleep(Duration::from_secs(60)).await);
    }

    #[tokio::test]
    async fn sleep_runs_out_without_a_shutdown() {
        let trigger = ShutdownTrigger::new();
        let mut s = trigger.subscribe();
        assert!(s.sleep(Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn a_dropped_trigger_ends_the_wait() {
        let trigger = ShutdownTrigger::new();
        let mut s = trigger.subscribe();
        drop(trigger);
        s.recv().await;
    }
}
