//! Whole decoder with a default key for every meter, so that the mode 5, mode 7 (KDF,
//! MAC) and ELL AES-CTR paths run on arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::RadioFrame;
use wmbusd::keys::KeyStore;

fuzz_target!(|data: &[u8]| {
    let mut keys = KeyStore::new();
    let _ = keys.set_default_hex("000102030405060708090A0B0C0D0E0F");
    let mut decoder = Decoder::new(keys);
    if let Ok(reading) = decoder.decode(&RadioFrame::new(data.to_vec())) {
        let _ = serde_json::to_vec(&reading);
    }
});
