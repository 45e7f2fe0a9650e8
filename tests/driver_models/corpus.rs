//! The reference corpus as the vendor modules use it: find a wireless entry, decode it
//! the way the reference did, and compare named fields with the reference's values.

use serde_json::Value as Json;
use wmbusd::decode::{DecodeError, Decoder};
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::reading::Reading;

const CORPUS: &str = include_str!("../data/wmbusmeters-public.jsonl");

/// Every corpus entry, in file order.
pub fn entries() -> impl Iterator<Item = Json> {
    CORPUS
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).expect("corpus line is JSON"))
}

/// The first wireless corpus entry of this reference driver and meter whose expected
/// output has the name `key` and whose telegram contains the hex `marker` (any case; it
/// tells several telegrams of one meter apart). An empty `key` or `marker` matches any.
pub fn entry(driver: &str, meter: &str, key: &str, marker: &str) -> Json {
    entry_where(driver, meter, key, marker, |_| true)
}

/// As [`entry`], also requiring `extra` of the entry (a CI, say).
pub fn entry_where(
    driver: &str,
    meter: &str,
    key: &str,
    marker: &str,
    extra: impl Fn(&Json) -> bool,
) -> Json {
    let marker = marker.to_uppercase();
    entries()
        .find(|e| {
            e["driver"] == driver
                && e["meter_id"] == meter
                && e["frame"] == "wmbus"
                && (key.is_empty() || e["expected"].get(key).is_some())
                && e["telegram"]
                    .as_str()
                    .is_some_and(|t| t.to_uppercase().contains(&marker))
                && extra(e)
        })
        .unwrap_or_else(|| panic!("no corpus entry {driver} {meter} with {key:?} and {marker:?}"))
}

/// The entry's hex as the corpus README describes it: DLL CRCs removed unless the notes
/// say otherwise, so only genuinely ambiguous hex meets the typed-hex CRC guess.
fn frame(entry: &Json, hex: &str) -> RadioFrame {
    let bytes = parse_hex(hex).unwrap_or_else(|e| panic!("{hex}: {e}"));
    if entry["notes"].to_string().contains("CRC: stripped") {
        RadioFrame::checked(bytes, None)
    } else {
        RadioFrame::new(bytes)
    }
}

fn keys(entry: &Json) -> KeyStore {
    let mut keys = KeyStore::new();
    if let Some(key) = entry["key"].as_str() {
        keys.set_default_hex(key).expect("corpus key");
    }
    keys
}

fn telegram(entry: &Json) -> RadioFrame {
    frame(entry, entry["telegram"].as_str().expect("corpus telegram"))
}

/// Decodes the entry as the reference did: its key (if any) as the default key, its
/// prior telegrams of the meter first.
pub fn decode(entry: &Json) -> Reading {
    let mut decoder = Decoder::new(keys(entry));
    for prior in entry["prior_telegrams"]
        .as_array()
        .expect("prior_telegrams")
    {
        let prior = prior.as_str().expect("prior telegram");
        decoder
            .decode(&frame(entry, prior))
            .unwrap_or_else(|e| panic!("prior {prior}: {e}"));
    }
    decoder
        .decode(&telegram(entry))
        .unwrap_or_else(|e| panic!("{}: {e}", entry["meter_id"]))
}

/// [`decode`], and the reading came from `driver` without a step error.
pub fn decoded_by(entry: &Json, driver: &str) -> Reading {
    let reading = decode(entry);
    assert_driver(&reading, driver);
    reading
}

/// [`decoded_by`], with the named fields equal to the reference's ([`assert_fields`]).
pub fn decoded_with_fields(entry: &Json, driver: &str, names: &[&str]) -> Reading {
    let reading = decoded_by(entry, driver);
    assert_fields(&reading, entry, names);
    reading
}

/// Decodes the entry's telegram alone, with its key but without its prior telegrams:
/// a compact frame must then decode from the formats its driver declares.
pub fn try_decode_alone(entry: &Json) -> Result<Reading, DecodeError> {
    Decoder::new(keys(entry)).decode(&telegram(entry))
}

/// [`try_decode_alone`], which must succeed.
pub fn decode_alone(entry: &Json) -> Reading {
    try_decode_alone(entry).unwrap_or_else(|e| panic!("{}: {e}", entry["meter_id"]))
}

/// Decodes a telegram given as hex with no keys.
pub fn decode_hex(hex: &str) -> Reading {
    Decoder::new(KeyStore::new())
        .decode(&RadioFrame::new(
            parse_hex(hex).unwrap_or_else(|e| panic!("{hex}: {e}")),
        ))
        .unwrap_or_else(|e| panic!("{hex}: {e}"))
}

/// The reading came from `driver` and no driver step failed.
pub fn assert_driver(reading: &Reading, driver: &str) {
    assert_eq!(
        reading.driver.as_deref(),
        Some(driver),
        "{:?}",
        reading.driver_error
    );
    assert_eq!(reading.driver_error, None);
}

/// Each named field is present and equals the reference value of the same name.
pub fn assert_fields(reading: &Reading, entry: &Json, names: &[&str]) {
    for &name in names {
        assert_field(reading, entry, name, name);
    }
}

/// Each (our field, reference field) pair is present on both sides and equal.
pub fn assert_renamed(reading: &Reading, entry: &Json, pairs: &[(&str, &str)]) {
    for &(ours, theirs) in pairs {
        assert_field(reading, entry, ours, theirs);
    }
}

/// Numbers compare exactly as numbers; text compares as text after writing the
/// reference's date-time separator (a space) as ISO 8601's `T`; anything else (null,
/// booleans) as JSON.
fn assert_field(reading: &Reading, entry: &Json, ours: &str, theirs: &str) {
    let got = reading
        .fields
        .get(ours)
        .unwrap_or_else(|| panic!("field {ours} missing: {:?}", reading.fields));
    let got = serde_json::to_value(got).expect("field value as JSON");
    let want = entry["expected"]
        .get(theirs)
        .unwrap_or_else(|| panic!("reference has no {theirs}"));
    match (got.as_f64(), want.as_f64(), got.as_str(), want.as_str()) {
        (Some(g), Some(w), _, _) => assert_eq!(g, w, "{ours} vs reference {theirs}"),
        (_, _, Some(g), Some(w)) => {
            assert_eq!(g, iso_date_time(w), "{ours} vs reference {theirs}")
        }
        _ => assert_eq!(&got, want, "{ours} vs reference {theirs}"),
    }
}

/// `YYYY-MM-DD hh:mm[...]` with `T` for the space; any other text unchanged.
fn iso_date_time(text: &str) -> String {
    let b = text.as_bytes();
    let date = b.len() >= 16
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if date && b[10] == b' ' {
        format!("{}T{}", &text[..10], &text[11..])
    } else {
        text.to_owned()
    }
}

/// A field as JSON text.
pub fn text(reading: &Reading, name: &str) -> String {
    serde_json::to_string(&reading.fields[name]).expect("field value as JSON")
}
