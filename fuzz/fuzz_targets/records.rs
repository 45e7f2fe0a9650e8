//! Data records (EN 13757-3 DIF/VIF) alone, plus the reading model built from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::reading::Record;
use wmbusd::wire::apl;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = apl::parse(data) {
        for record in &parsed.records {
            let _ = serde_json::to_vec(&Record::from_data_record(record));
        }
    }
});
