//! Whole decoder with a key: the first 16 input bytes are the default key for every
//! meter, the rest is a run of telegrams as in `decode_plain`. Seeding with the corpus
//! telegrams and their real keys lets the fuzzer start from frames that decrypt and
//! verify (mode 5 CBC, mode 7 KDF + AFL MAC, ELL CTR + payload CRC) and mutate from there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;

#[path = "split.rs"]
mod split;

fuzz_target!(|data: &[u8]| {
    let Some((key, telegrams)) = data.split_first_chunk::<16>() else {
        return;
    };
    let mut keys = KeyStore::new();
    keys.set_default(key);
    let mut decoder = Decoder::new(keys);
    let mut rest = telegrams;
    while let Some((telegram, tail)) = split::next_telegram(rest) {
        if let Ok(reading) = decoder.decode(&RadioFrame::new(telegram.to_vec())) {
            let _ = serde_json::to_vec(&reading);
        }
        rest = tail;
    }
});
