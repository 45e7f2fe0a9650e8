//! Deterministic cost per telegram for callgrind (`valgrind --tool=callgrind`), where
//! criterion's timing loop would only add noise: decodes one bench telegram N times.
//!
//! `decode_count CASE PATH N [empty]`: CASE `plain`, `mode5`, `ell` or `izar`; PATH `serde`
//! (decode + serde_json) or `into` (decode_into a reused reading + serde_json); `empty`
//! uses no drivers. Instructions per telegram are the difference
//! of two runs with different N divided by the difference of N.
//!
//! `decode_count CASE paired N`: wall time of the `into` path with and without drivers,
//! in alternating batches of 1,000 telegrams, N batches each; prints the fastest batch
//! of each per telegram. Alternating and taking the fastest cancels most of what a
//! shared machine's neighbours add, which shifts two benchmarks run one after the other.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::hint::black_box;

use wmbusd::decode::Decoder;
use wmbusd::drivers::DriverSet;
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;

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
    if args[1] == "paired" {
        let generic = Decoder::with_drivers(decoder.keys().clone(), DriverSet::empty());
        paired(decoder, generic, &frame, n);
        return;
    }
    let mut out = Vec::with_capacity(2048);
    let mut reading = decoder.decode(&frame).expect("decodes");
    for _ in 0..n {
        out.clear();
        match args[1].as_str() {
            "serde" => {
                let r = decoder.decode(black_box(&frame)).expect("decodes");
                serde_json::to_writer(&mut out, &r).expect("serialises");
            }
            _ => {
                decoder
                    .decode_into(black_box(&frame), &mut reading)
                    .expect("decodes");
                serde_json::to_writer(&mut out, &reading).expect("serialises");
            }
        }
        black_box(&out);
    }
}

/// Times `decode_into` + serde_json of `frame` with both decoders in
/// alternating batches; prints the fastest batch of each, per telegram.
fn paired(mut drivers: Decoder, mut generic: Decoder, frame: &RadioFrame, batches: usize) {
    const BATCH: u32 = 1000;
    let batch =
        |decoder: &mut Decoder, reading: &mut wmbusd::reading::Reading, out: &mut Vec<u8>| {
            let start = std::time::Instant::now();
            for _ in 0..BATCH {
                out.clear();
                decoder
                    .decode_into(black_box(frame), reading)
                    .expect("decodes");
                serde_json::to_writer(&mut *out, reading).expect("serialises");
                black_box(&out);
            }
            start.elapsed() / BATCH
        };
    let (mut r1, mut r2) = (Default::default(), Default::default());
    let mut out = Vec::with_capacity(2048);
    let (mut best_drivers, mut best_generic) = (std::time::Duration::MAX, std::time::Duration::MAX);
    for _ in 0..batches.max(1) {
        best_drivers = best_drivers.min(batch(&mut drivers, &mut r1, &mut out));
        best_generic = best_generic.min(batch(&mut generic, &mut r2, &mut out));
    }
    let ns = |d: std::time::Duration| d.as_secs_f64() * 1e9;
    println!(
        "with drivers {:.1} ns, generic {:.1} ns, {:+.1}%",
        ns(best_drivers),
        ns(best_generic),
        (ns(best_drivers) / ns(best_generic) - 1.0) * 100.0
    );
}
