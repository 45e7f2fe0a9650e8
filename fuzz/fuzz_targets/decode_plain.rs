//! Whole decoder, no keys: any bytes must give Ok or Err, never a panic, every reading
//! must serialise, and a driver's fields the decoder filled from the frame must equal a
//! fresh search of the reading.
//!
//! Input: one or more telegrams back to back (see `split.rs`), decoded in order by one
//! decoder. Encrypted telegrams take the "already-decrypted replay" path or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::{CrcState, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::reading::Reading;
use wmbusd::wire::telegram::Telegram;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(KeyStore::new());
    // As `wmbusd decode` runs: one reading decoded into for every telegram.
    let mut reading = Reading::default();
    let mut rest = data;
    while let Some((telegram, tail)) = split::next_telegram(rest) {
        let _ = Telegram::parse(telegram, CrcState::Unknown, false, &mut Vec::new())
            .map(|t| t.meter_id());
        if decoder
            .decode_into(&RadioFrame::new(telegram.to_vec()), &mut reading)
            .is_ok()
        {
            // Serialisation is what the daemon does next; it must not fail either.
            serde_json::to_vec(&reading).expect("reading serialises");
            // Without a named step (which needs the frame) the driver can run again on
            // the reading alone, matching its rules record by record.
            let driver = reading
                .driver
                .as_deref()
                .and_then(|n| decoder.drivers().get(n));
            if let Some(driver) = driver.filter(|d| !d.runs_step()) {
                let mut searched = reading.clone();
                driver.apply(&mut searched);
                assert_eq!(searched.fields, reading.fields, "driver fields differ");
            }
        }
        rest = tail;
    }
});
