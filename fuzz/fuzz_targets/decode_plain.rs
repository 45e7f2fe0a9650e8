//! Whole decoder, no keys: any bytes must give Ok or Err, never a panic.
//!
//! Input: one or more telegrams back to back (see `split.rs`), decoded in order by one
//! decoder. Encrypted telegrams take the "already-decrypted replay" path or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(KeyStore::new());
    let mut rest = data;
    while let Some((telegram, tail)) = split::next_telegram(rest) {
        if let Ok(reading) = decoder.decode(&RadioFrame::new(telegram.to_vec())) {
            // Serialisation is what the daemon does next; it must not fail either.
            let _ = serde_json::to_vec(&reading);
        }
        rest = tail;
    }
});
