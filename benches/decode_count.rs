//! Deterministic cost per telegram for callgrind (`valgrind --tool=callgrind`), where
//! criterion's timing loop would only add noise: decodes one bench telegram N times.
//!
//! `decode_count CASE PATH N [empty]`: CASE `plain`, `mode5`, `ell` or `izar`; PATH `serde`
//! (decode + serde_json), `direct` (decode + write_json) or `into` (decode_into +
//! JsonWriter); `empty` uses no drivers. Instructions per telegram are the difference
//! of two runs with different N divided by the difference of N.

use std::hint::black_box;

use wmbusd::decode::Decoder;
use wmbusd::drivers::DriverSet;
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::reading::JsonWriter;

const PLAIN: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const ELL: &str =
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` runs every bench binary with `--bench`; nothing to do then.
    if args.len() < 3 {
        return;
    }
    let (hex, key) = match args[0].as_str() {
        "plain" => (PLAIN, None),
        "mode5" => (
            MODE5,
            Some(("12345678", "0102030405060708090A0B0C0D0E0F11")),
        ),
        "ell" => (ELL, Some(("76348799", "28F64A24988064A079AA2C807D6102AE"))),
        "izar" => ("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC", None),
        other => {
            eprintln!("unknown case {other}");
            std::process::exit(2);
        }
    };
    let n: usize = args[2].parse().unwrap_or(1);
    let mut keys = KeyStore::new();
    if let Some((id, k)) = key {
        keys.insert_hex(id, k).expect("bench key");
    }
    let mut decoder = if args.get(3).map(String::as_str) == Some("empty") {
        Decoder::with_drivers(keys, DriverSet::empty())
    } else {
        Decoder::new(keys)
    };
    let frame = RadioFrame::new(parse_hex(hex).expect("bench telegram"));
    let mut out = Vec::with_capacity(2048);
    let mut reading = decoder.decode(&frame).expect("decodes");
    let mut writer = JsonWriter::new();
    for _ in 0..n {
        out.clear();
        match args[1].as_str() {
            "serde" => {
                let r = decoder.decode(black_box(&frame)).expect("decodes");
                serde_json::to_writer(&mut out, &r).expect("serialises");
            }
            "direct" => {
                let r = decoder.decode(black_box(&frame)).expect("decodes");
                r.write_json(&mut out).expect("serialises");
            }
            _ => {
                decoder
                    .decode_into(black_box(&frame), &mut reading)
                    .expect("decodes");
                writer.write(&reading, &mut out).expect("serialises");
            }
        }
        black_box(&out);
    }
}
