//! Data records (EN 13757-3 DIF/VIF) alone, plus the reading model built from them.
//!
//! Besides "no panic", checks what the parser promises: every record's header, LVAR and
//! data are the APL bytes at its offset, exactly as on air; and re-parsing what
//! [`apl::Apl::emit`] wrote (the input without idle fillers) gives the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::reading::Record;
use wmbusd::wire::apl;

fuzz_target!(|data: &[u8]| {
    let parsed = apl::parse_lenient(data);
    for record in &parsed.records {
        let mut on_air = Vec::with_capacity(record.encoded_len());
        record.emit(&mut on_air);
        assert_eq!(on_air.len(), record.encoded_len());
        assert_eq!(
            data.get(record.offset..record.offset + on_air.len()),
            Some(on_air.as_slice()),
            "record at offset {} does not match its APL bytes",
            record.offset
        );
        let _ = serde_json::to_vec(&Record::from_data_record(record));
    }
    if let Some(unparsed) = &parsed.unparsed {
        assert_eq!(data.get(unparsed.offset..), Some(unparsed.bytes));
    }
    let mut emitted = Vec::with_capacity(data.len());
    parsed.emit(&mut emitted);
    let reparsed = apl::parse_lenient(&emitted);
    assert_eq!(reparsed.records.len(), parsed.records.len());
    let mut emitted_again = Vec::with_capacity(emitted.len());
    reparsed.emit(&mut emitted_again);
    assert_eq!(emitted_again, emitted);
});
