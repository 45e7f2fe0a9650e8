//! The simulated wired M-Bus ([`wmbusd::bus::sim::SimBus`]) served on a pseudo terminal,
//! for the integration tests that run the real serial port against it.

use std::sync::{Arc, Mutex};

use wmbusd::bus::sim::SimBus;
use wmbusd::wire::mbus;

use super::sim::Pty;

/// Serves `bus` on `pty` until the pty fails: reads request frames, answers each after its
/// delay. Bytes that start no frame are dropped, as a slave's UART would.
pub async fn run_bus_sim(pty: Pty, bus: Arc<Mutex<SimBus>>) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = pty.read(&mut buf).await?;
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        while let Some(&first) = pending.first() {
            let Some(len) = mbus::frame_len(&pending) else {
                if first != mbus::START {
                    pending.remove(0);
                    continue;
                }
                break;
            };
            if pending.len() < len {
                break;
            }
            let request: Vec<u8> = pending.drain(..len).collect();
            let answer = match bus.lock() {
                Ok(mut bus) => bus.answer(&request),
                Err(_) => return Ok(()),
            };
            if !answer.bytes.is_empty() {
                tokio::time::sleep(answer.delay).await;
                pty.write_all(&answer.bytes).await?;
            }
        }
    }
}
