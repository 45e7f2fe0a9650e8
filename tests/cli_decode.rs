//! `wmbusd decode` as a user runs it: arguments, stdin, exit status, error lines, keys.
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
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const MODE5_KEY: &str = "0102030405060708090A0B0C0D0E0F11";
const SONTEX: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
const KAM_FULL: &str = "5C442D2C06357260190C8D207B70032F21271D7802F9FF15011104061765000004EEFF07BFA8000004EEFF08D24F00000414B1FB000002FD170000026CE919426CFF184406F76400004414E8FA0000043B0B0000000259DB11025D1C0B";
const KAM_COMPACT: &str = "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B";

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wmbusd runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn decodes_an_argument_with_a_key() {
    let out = run(&[MODE5, "--key", MODE5_KEY], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readings = lines(&out);
    assert_eq!(readings.len(), 1);
    let r = &readings[0];
    assert_eq!(r["schema"], 1);
    assert_eq!(r["meter"]["id"], "12345678");
    assert_eq!(r["security"]["verified_by"], "2f2f");
    assert_eq!(r["records"][0]["value"].to_string(), "28504.27");
    assert_eq!(r["records"][0]["unit"], "m3");
}

#[test]
fn stdin_lines_in_order_with_errors_and_exit_status_1() {
    let input = format!("{SONTEX}\nnot hex at all\n\n{MODE5}\n0x2E_44 93|15#78\n");
    let out = run(&["-"], Some(&input));
    assert_eq!(out.status.code(), Some(1));
    let l = lines(&out);
    assert_eq!(
        l.len(),
        4,
        "blank lines are skipped, every other line answers"
    );
    assert_eq!(l[0]["meter"]["id"], "27293981");
    assert_eq!(l[1]["error"]["kind"], "input");
    assert_eq!(l[1]["telegram"], "not hex at all");
    assert_eq!(l[2]["error"]["layer"], "security");
    assert_eq!(l[2]["error"]["kind"], "no_key");
    assert_eq!(l[2]["error"]["offset"], 15);
    assert!(l[2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("12345678"));
    assert_eq!(l[2]["telegram"], MODE5);
    // Separators are accepted; five bytes are a truncated frame, reported at the link layer.
    assert_eq!(l[3]["error"]["layer"], "link");
    assert_eq!(l[3]["error"]["kind"], "truncated");
}

#[test]
fn telegrams_of_one_call_share_compact_formats() {
    let out = run(&[KAM_COMPACT, KAM_FULL, KAM_COMPACT], None);
    let l = lines(&out);
    assert_eq!(l[0]["error"]["kind"], "unknown_compact_format");
    assert!(l[1]["records"].is_array());
    assert_eq!(
        l[2]["records"].as_array().unwrap().len(),
        l[1]["records"].as_array().unwrap().len()
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn keys_never_appear_in_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!("[gateway]\nid = \"t\"\n[[meter]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n"),
    )
    .unwrap();
    let wrong = "00112233445566778899AABBCCDDEEFF";
    for args in [
        vec!["--config", config.to_str().unwrap(), MODE5, "--pretty"],
        vec!["--key", wrong, MODE5],
        vec!["--key", wrong, "-v", "zz"],
    ] {
        let out = run(&args, None);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .to_uppercase();
        assert!(
            !all.contains(MODE5_KEY) && !all.contains(wrong),
            "key in output of {args:?}"
        );
    }
}

#[test]
fn bad_key_and_missing_arguments_are_usage_errors() {
    let out = run(&["--key", "1234", MODE5], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key"));
    let out = run(&[], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_the_command() {
    let out = Command::new(BIN)
        .args(["decode", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("--key") && help.contains("stdin") && help.contains("Exit status"));
}

/// Issue 12: bytes after the L-field are counted, not decoded; `--lenient-length` reads
/// them and says so; a damaged single-CRC format-B frame is an error, declared (`--crc b`)
/// or guessed; a damaged L-field is named.
#[test]
fn trailing_bytes_lenient_length_and_declared_crcs() {
    let long = format!("{SONTEX}DEAD21");
    let out = run(&[&long], None);
    assert!(out.status.success());
    let r = &lines(&out)[0];
    assert_eq!(r["diagnostics"]["trailing_bytes"], 3);
    assert_eq!(r["records"].as_array().unwrap().len(), 8);

    let out = run(&["--lenient-length", &long], None);
    let r = &lines(&out)[0];
    assert_eq!(r["diagnostics"]["lenient_length"], 0x34);
    assert!(r["diagnostics"].get("trailing_bytes").is_none());

    // SONTEX in format B (L counts the CRC), one bit flipped in its only block.
    let mut b = hex::decode(SONTEX).unwrap();
    b[0] += 2;
    let crc = wmbusd::wire::crc::crc16_en13757(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    let good = hex::encode_upper(&b);
    b[20] ^= 1;
    let damaged = hex::encode_upper(&b);
    let out = run(&["--crc", "b", &good], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["--crc", "b", &damaged], None);
    assert_eq!(out.status.code(), Some(1));
    let e = &lines(&out)[0]["error"];
    assert_eq!(e["kind"], "crc");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("CRC error in block 2 of format B"));
    // Without --crc the damaged frame is still an error (its only CRC fails by a
    // single-bit syndrome), whose message names the way out for CRC-less hex.
    let out = run(&[&damaged], None);
    assert_eq!(out.status.code(), Some(1));
    let e = &lines(&out)[0]["error"];
    assert_eq!(e["kind"], "crc");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("CRC error in block 2 of format B (one bit at byte")
            && message.contains("pass --crc none"),
        "{message}"
    );
    // A damaged L-field is named, not read as a shorter frame with trailing bytes.
    let mut short_l = hex::decode(&good).unwrap();
    short_l[0] -= 4;
    let out = run(&[&hex::encode_upper(&short_l)], None);
    assert_eq!(out.status.code(), Some(1));
    let message = lines(&out)[0]["error"]["message"].to_string();
    assert!(
        message.contains(&format!(
            "L-field damaged: 0x{:02X} but the CRCs verify for 0x{:02X}",
            short_l[0],
            short_l[0] + 4
        )),
        "{message}"
    );
    let out = run(&["--crc", "x", &good], None);
    assert_eq!(out.status.code(), Some(2));
}
