//! `wmbusd decode -` over 100,000 stdin lines, end to end through the real binary
//! (process start, hex parsing, decoding, JSON output). Target: ≥ 300,000 telegrams/s.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use std::io::Write;
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const LINES: usize = 100_000;
/// A mix of the protocol reference's telegrams: plain, mode 5 (keyed), ELL CTR (keyed).
const TELEGRAMS: [&str; 3] = [
    "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000",
    "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3",
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24",
];

fn input() -> Vec<u8> {
    let mut text = String::with_capacity(LINES * 100);
    for i in 0..LINES {
        text.push_str(TELEGRAMS[i % TELEGRAMS.len()]);
        text.push('\n');
    }
    text.into_bytes()
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bench.toml");
    std::fs::write(
        &path,
        "[gateway]\nid = \"bench\"\n\
         [[meter]]\nid = \"12345678\"\nkey = \"0102030405060708090A0B0C0D0E0F11\"\n\
         [[meter]]\nid = \"76348799\"\nkey = \"28F64A24988064A079AA2C807D6102AE\"\n",
    )
    .expect("bench config");
    path
}

fn decode_stdin(c: &mut Criterion) {
    let input = input();
    let dir = std::env::temp_dir().join(format!("wmbusd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let config = config(&dir);
    let mut group = c.benchmark_group("cli");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES as u64));
    // Output read back by this process: the bench pays for a consumer of ~100 MB too.
    group.bench_function("decode_stdin_100k", |b| {
        b.iter(|| {
            let out = run(&config, &input, Stdio::piped());
            assert!(out.status.success(), "every bench telegram decodes");
            let n = out.stdout.iter().filter(|&&b| b == b'\n').count();
            assert_eq!(n, LINES);
        })
    });
    // Output to /dev/null, as `wmbusd decode - < in > /dev/null` is timed: the tool alone.
    group.bench_function("decode_stdin_100k_to_devnull", |b| {
        b.iter(|| {
            let null = std::fs::File::create("/dev/null").expect("/dev/null");
            let out = run(&config, &input, Stdio::from(null));
            assert!(out.status.success(), "every bench telegram decodes");
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `wmbusd decode --config CONFIG -` on `input`, its output to `stdout`.
fn run(config: &std::path::Path, input: &[u8], stdout: Stdio) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wmbusd"))
        .args(["decode", "--config"])
        .arg(config)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("wmbusd starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("wmbusd runs");
    writer.join().expect("writer").expect("write");
    out
}

criterion_group!(cli, decode_stdin);
criterion_main!(cli);
