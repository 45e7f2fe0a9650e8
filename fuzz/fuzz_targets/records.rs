//! Data records (EN 13757-3 DIF/VIF) alone, plus the reading model built from them.
//!
//! Besides "no panic", checks that the lenient parser accounts for every input byte: each
//! record's header, LVAR and data are the input bytes at its offset, and everything
//! between records, and before the manufacturer data or the unparsed tail, is an idle
//! filler (0x2F). No byte is silently dropped or read twice.
//!
//! Re-parsing [`apl::Apl::emit`] output is deliberately not checked: emit drops the idle
//! fillers, and where a plain-text VIF (0xFC) can place its text in two ways a dropped
//! filler can change which placement fits (see fuzz/regressions/records/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::reading::Record;
use wmbusd::wire::apl;

fn only_fillers(bytes: Option<&[u8]>) -> bool {
    bytes.is_some_and(|b| b.iter().all(|&x| x == apl::IDLE_FILLER))
}

fuzz_target!(|data: &[u8]| {
    let parsed = apl::parse_lenient(data);
    let mut pos = 0;
    for record in &parsed.records {
        assert!(record.offset >= pos, "record at {} overlaps", record.offset);
        assert!(only_fillers(data.get(pos..record.offset)));
        let mut on_air = Vec::with_capacity(record.encoded_len());
        record.emit(&mut on_air);
        assert_eq!(on_air.len(), record.encoded_len());
        assert_eq!(
            data.get(record.offset..record.offset + on_air.len()),
            Some(on_air.as_slice()),
            "record at offset {} does not match its APL bytes",
            record.offset
        );
        pos = record.offset + on_air.len();
        let _ = serde_json::to_vec(&Record::from_data_record(record));
    }
    match (&parsed.unparsed, parsed.manufacturer_data) {
        (Some(unparsed), None) => {
            assert!(only_fillers(data.get(pos..unparsed.offset)));
            assert_eq!(data.get(unparsed.offset..), Some(unparsed.bytes));
        }
        (None, Some(manufacturer_data)) => {
            // DIF 0x0F / 0x1F, then the manufacturer data to the end.
            let dif_at = data.len() - manufacturer_data.len() - 1;
            assert!(only_fillers(data.get(pos..dif_at)));
            let expected_dif = if parsed.more_records_follow {
                apl::DIF_MORE_RECORDS_FOLLOW
            } else {
                apl::DIF_MANUFACTURER_DATA
            };
            assert_eq!(data.get(dif_at), Some(&expected_dif));
        }
        (None, None) => assert!(only_fillers(data.get(pos..))),
        (Some(_), Some(_)) => panic!("both an unparsed tail and manufacturer data"),
    }
});
