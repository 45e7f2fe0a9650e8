//! The spool's writer thread: group commit for the daemon.
//!
//! Readings are handed over through a bounded channel (the sender waits when the writer is
//! behind, which slows the radios down instead of growing memory). The thread takes
//! everything waiting, up to [`MAX_BATCH`] records, writes it in one `write(2)` and makes it
//! durable with one `fdatasync` (policy `always`) before the MQTT task may publish it and
//! before it is echoed on stdout. Readings that arrive during an fsync form the next batch,
//! so the cost of an fsync is shared by everything that arrived during the previous one.
//!
//! A record may come with a commit it must follow ([`SpoolWriter::submit_after`]: the
//! reading store's). Its batch waits for that commit before it is written, so a spooled
//! (acknowledged) reading is always in the store as well, even after a kill -9, while
//! neither the async loop nor the store waits per reading.

use std::io::Write;

use tokio::sync::{mpsc, oneshot};

use super::SpoolHandle;

/// Records per batch, at most.
pub const MAX_BATCH: usize = 1024;
/// Readings waiting for the writer, at most.
const QUEUE: usize = 4096;

/// One record to spool.
#[derive(Debug)]
pub struct Accepted {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Printed on stdout (plus a newline) once the record is committed.
    pub echo: Option<Vec<u8>>,
}

/// A record and the commit elsewhere it must follow.
#[derive(Debug)]
struct Queued {
    record: Accepted,
    after: Option<oneshot::Receiver<()>>,
}

/// The sending side; dropping or [`SpoolWriter::close`] ends the thread after it wrote
/// everything queued.
#[derive(Debug)]
pub struct SpoolWriter {
    tx: Option<mpsc::Sender<Queued>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpoolWriter {
    pub fn start(spool: SpoolHandle) -> std::io::Result<SpoolWriter> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || run(spool, rx))?;
        Ok(SpoolWriter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a record; waits while the queue is full.
    pub async fn submit(&self, record: Accepted) {
        self.submit_after(record, None).await;
    }

    /// Queues a record that is written only once `after` resolved (or was dropped: the
    /// other commit failed, and the record is spooled anyway, as without it).
    pub async fn submit_after(&self, record: Accepted, after: Option<oneshot::Receiver<()>>) {
        if let Some(tx) = &self.tx {
            if tx.send(Queued { record, after }).await.is_err() {
                tracing::error!("spool: writer thread gone; reading not stored");
            }
        }
    }

    /// Writes everything queued and stops the thread.
    pub async fn close(mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn run(spool: SpoolHandle, mut rx: mpsc::Receiver<Queued>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut items: Vec<(String, Vec<u8>)> = Vec::with_capacity(MAX_BATCH);
    let mut echo = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for q in batch.drain(..) {
            if let Some(after) = q.after {
                // The store commits in order: usually only the batch's first wait blocks.
                let _ = after.blocking_recv();
            }
            let r = q.record;
            if let Some(line) = r.echo {
                echo.extend_from_slice(&line);
                echo.push(b'\n');
            }
            items.push((r.topic, r.payload));
        }
        spool.commit_batch(&items);
        items.clear();
        if !echo.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&echo).and_then(|_| out.flush());
            echo.clear();
        }
    }
}
