//! Decode-to-JSON throughput: target ≤ 2 µs per telegram (≥ 500,000 telegrams/s on one core).
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use wmbusd::decode::Decoder;
use wmbusd::drivers::DriverSet;
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;

/// Sontex heat cost allocator, unencrypted (protocol reference §1.2 / §5.12).
const PLAIN: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
/// OMS Vol.2 Annex N.1.1, security mode 5 (protocol reference §4.2.1).
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const MODE5_KEY: &str = "0102030405060708090A0B0C0D0E0F11";
/// Kamstrup C1 with ELL AES-128-CTR (protocol reference §4.3.1).
const ELL: &str =
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
const ELL_KEY: &str = "28F64A24988064A079AA2C807D6102AE";
/// Diehl IZAR water meter, proprietary CI 0xA2, scrambled: the `izar-sap` driver runs
/// its named step (PRIOS descrambling) for the fields (corpus meter 21242472).
const IZAR: &str = "1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC";

fn bench_one(c: &mut Criterion, name: &str, hex: &str, key: Option<(&str, &str)>) {
    let mut keys = KeyStore::new();
    if let Some((id, k)) = key {
        keys.insert_hex(id, k).expect("bench key");
    }
    let mut decoder = Decoder::new(keys);
    let frame = RadioFrame::new(parse_hex(hex).expect("bench telegram"));
    // Fail loudly if the bench telegram does not decode: a fast error path proves nothing.
    decoder.decode(&frame).expect("bench telegram decodes");
    let mut out = Vec::with_capacity(2048);
    let mut group = c.benchmark_group("decode_to_json");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            let reading = decoder.decode(black_box(&frame)).expect("decodes");
            serde_json::to_writer(&mut out, &reading).expect("serialises");
            black_box(&out);
        })
    });
    // Decoding into one reusable `Reading`, as `wmbusd decode` does.
    let mut reading = decoder.decode(&frame).expect("decodes");
    group.bench_function(format!("{name}_into_json"), |b| {
        b.iter(|| {
            out.clear();
            decoder
                .decode_into(black_box(&frame), &mut reading)
                .expect("decodes");
            serde_json::to_writer(&mut out, &reading).expect("serialises");
            black_box(&out);
        })
    });
    // The CLI path without manufacturer drivers: the decoder's own share of the cost.
    let mut keys = KeyStore::new();
    if let Some((id, k)) = key {
        keys.insert_hex(id, k).expect("bench key");
    }
    let mut generic = Decoder::with_drivers(keys, DriverSet::empty());
    let mut reading = generic.decode(&frame).expect("decodes");
    group.bench_function(format!("{name}_into_json_no_drivers"), |b| {
        b.iter(|| {
            out.clear();
            generic
                .decode_into(black_box(&frame), &mut reading)
                .expect("decodes");
            serde_json::to_writer(&mut out, &reading).expect("serialises");
            black_box(&out);
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_one(c, "plain_sontex_hca", PLAIN, None);
    bench_one(
        c,
        "mode5_oms_annex_n1",
        MODE5,
        Some(("12345678", MODE5_KEY)),
    );
    bench_one(c, "ell_ctr_kamstrup", ELL, Some(("76348799", ELL_KEY)));
    bench_one(c, "proprietary_izar_step", IZAR, None);
}

criterion_group!(decode, benches);
criterion_main!(decode);
