//! Whole decoder, no keys: any bytes must give Ok or Err, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(KeyStore::new());
    // The input is a run of telegrams, each sized by its own L-field (the last one takes
    // whatever is left), decoded by one decoder so that compact frames can meet formats
    // learned from earlier full frames of the same input.
    let mut rest = data;
    while let Some(&l) = rest.first() {
        let take = (usize::from(l) + 1).min(rest.len());
        let (telegram, tail) = rest.split_at(take);
        if let Ok(reading) = decoder.decode(&RadioFrame::new(telegram.to_vec())) {
            let _ = serde_json::to_vec(&reading);
        }
        rest = tail;
    }
});
