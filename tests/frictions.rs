//! The frictions of issue 17 as a new user meets them, one test each: logs, the systemd
//! unit, key file modes, check-config, keys import, `decode -`, options and defaults.
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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");

/// protocol.md §4.2.1 (mode 5, ELS gas meter 12345678).
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const MODE5_KEY: &str = "0102030405060708090A0B0C0D0E0F11";
const WRONG_KEY: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F90";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn wmbusd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wmbusd runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("wmbusd.toml");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let out = wmbusd(&["demo"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in the log: {log:?}");
}

#[test]
fn systemd_does_not_restart_on_the_config_error_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[gateway]\nid = \"gw\"\nbogus = 1\n");
    let out = wmbusd(&["run", "--config", config.to_str().unwrap()], None);
    let code = out.status.code().expect("exit status");
    assert_ne!(code, 0, "{}", text(&out));
    let unit = std::fs::read_to_string(repo("systemd/wmbusd.service")).unwrap();
    let prevented: Vec<i32> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().filter_map(|s| s.parse().ok()))
        .collect();
    assert!(
        prevented.contains(&code),
        "exit status {code} not in RestartPreventExitStatus {prevented:?}"
    );
}

#[test]
fn key_file_readable_by_the_group_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!("[[key]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = write_config(
        dir.path(),
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n",
    );
    let out = wmbusd(&["check-config", "-c", config.to_str().unwrap()], None);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(78), "{all}");
    assert!(all.contains("0640") && all.contains("owner only"), "{all}");
    assert!(!all.contains(MODE5_KEY), "{all}");
}

#[test]
fn check_config_refuses_n_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[gateway]\nid = \"gw\"\n\n[[radio]]\ndriver = \"im871a\"\ndevice = \"/dev/null\"\n\
         modes = [\"N1\"]\n",
    );
    let out = wmbusd(
        &["check-config", "--config", config.to_str().unwrap()],
        None,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(78), "{all}");
    assert!(
        all.contains("wmbusd.toml:7:10:") && all.contains("N1"),
        "{all}"
    );
}

#[test]
fn check_config_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[gateway]\nid = \"gw\"\n\n[mqtt]\nhost = \"h\"\nmax_inflight = 0\npassword = \"p\"\n\n\
         [health]\nmissing_factor = 0.5\n\n[[meter]]\nid = \"123\"\n",
    );
    let out = wmbusd(&["check-config", "-c", config.to_str().unwrap()], None);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(78), "{all}");
    for problem in [
        "wmbusd.toml:13:6: meter id '123'",
        "max_inflight must be at least 1",
        "a password needs a username",
        "missing_factor must be at least 1.0",
        "4 problems found",
    ] {
        assert!(all.contains(problem), "{problem:?} missing:\n{all}");
    }
}

/// A replay radio over one file: `--listen` tries the configured keys on what it hears.
fn listen_config(dir: &Path, key: &str) -> PathBuf {
    std::fs::write(dir.join("t.txt"), format!("-60;{MODE5}\n")).unwrap();
    write_config(
        dir,
        &format!(
            "[gateway]\nid = \"gw\"\n\n[[radio]]\ndriver = \"replay\"\ndevice = \"t.txt\"\n\n\
             [[meter]]\nid = \"12345678\"\nkey = \"{key}\"\n"
        ),
    )
}

#[test]
fn check_config_listen_exits_non_zero_when_every_key_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    // The replay device is relative to the working directory.
    let run = |key: &str| {
        let config = listen_config(dir.path(), key);
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["check-config", "--listen", "1s", "-c"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let wrong = run(WRONG_KEY);
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("every key is wrong"),
        "{}",
        text(&wrong)
    );
    let right = run(MODE5_KEY);
    assert_eq!(right.status.code(), Some(0), "{}", text(&right));
    assert!(text(&right).contains("decoded ok"), "{}", text(&right));
}

#[test]
fn keys_import_refuses_a_seven_digit_id() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.toml");
    let out = wmbusd(
        &[
            "keys",
            "import",
            "--key-file",
            key_file.to_str().unwrap(),
            "-",
        ],
        Some(&format!("id,key\n1234567,{MODE5_KEY}\n")),
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("7 digits") && all.contains("01234567"),
        "{all}"
    );
    assert!(!key_file.exists(), "a key file was written");
}

#[test]
fn decode_stdin_reads_the_demo_telegram_file_like_the_replay_radio() {
    let telegrams = std::fs::read_to_string(repo("config/demo-telegrams.txt")).unwrap();
    // The demo's keys, from its configuration (placeholders filled in).
    let demo = std::fs::read_to_string(repo("config/demo.toml"))
        .unwrap()
        .replace("@TELEGRAMS@", "\"t\"")
        .replace("@SPOOL@", "\"s\"")
        .replace("@INTERVAL@", "0");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &demo);
    let out = wmbusd(
        &["decode", "-c", config.to_str().unwrap(), "-"],
        Some(&telegrams),
    );
    let expected = wmbusd::radio::replay::parse_text(&telegrams);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len(), "{}", text(&out));
    for (line, telegram) in lines.iter().zip(&expected) {
        let telegram = telegram.as_ref().unwrap();
        if line.get("error").is_some() {
            // Only the meter the demo has no key for.
            assert_eq!(line["error"]["kind"], "no_key", "{line}");
            continue;
        }
        let rssi = line["rssi_dbm"].as_f64().unwrap();
        assert_eq!(Some(rssi as f32), telegram.rssi_dbm, "{line}");
    }
    let failed = lines.iter().filter(|l| l.get("error").is_some()).count();
    assert_eq!(failed, 1, "{}", text(&out));
}

#[test]
fn every_command_that_reads_a_configuration_takes_dash_c() {
    for args in [
        &["run", "--help"][..],
        &["check-config", "--help"],
        &["decode", "--help"],
        &["listen", "--help"],
        &["keys", "list", "--help"],
        &["bus", "read", "--help"],
        &["report", "--help"],
        &["meters", "import", "--help"],
    ] {
        let out = wmbusd(args, None);
        let help = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {help}");
        assert!(help.contains("-c, --config <FILE>"), "{args:?}:\n{help}");
    }
}

#[test]
fn command_line_durations_take_units_and_warn_on_bare_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let config = listen_config(dir.path(), MODE5_KEY);
    let run = |duration: &str| {
        Command::new(BIN)
            .current_dir(dir.path())
            .args(["check-config", "--listen", duration, "-c"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let suffixed = run("500ms");
    assert_eq!(suffixed.status.code(), Some(0), "{}", text(&suffixed));
    assert!(
        !text(&suffixed).contains("deprecated"),
        "{}",
        text(&suffixed)
    );
    let bare = run("1");
    assert_eq!(bare.status.code(), Some(0), "{}", text(&bare));
    assert!(text(&bare).contains("write '1s'"), "{}", text(&bare));
    for args in [&["listen", "--help"][..], &["run", "--help"]] {
        let help = text(&wmbusd(args, None));
        assert!(!help.contains("<SECS>"), "{args:?}:\n{help}");
    }
}

#[test]
fn the_state_file_default_is_documented_once_and_agrees() {
    let example = std::fs::read_to_string(repo("config/wmbusd.toml")).unwrap();
    let commented = example
        .lines()
        .find_map(|l| l.strip_prefix("# state_file = "))
        .expect("state_file in the example");
    let spool = example
        .lines()
        .find_map(|l| l.strip_prefix("dir = "))
        .expect("spool dir in the example");
    let spool = Path::new(spool.trim_matches('"'));
    let default = spool.parent().unwrap().join("state.json");
    assert_eq!(Path::new(commented.trim_matches('"')), default);
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(readme.contains(&default.display().to_string()));
    let help = text(&wmbusd(&["run", "--help"], None));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("`state.json` beside the spool directory"),
        "{help}"
    );
}

#[test]
fn readme_sort_order_matches_the_help() {
    let help = text(&wmbusd(&["listen", "--help"], None));
    assert!(help.contains("Strongest signal first"), "{help}");
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("`--sort rssi` (the default) puts the strongest meters first"),
        "README disagrees with --help"
    );
}

#[test]
fn driver_fields_are_in_natural_order() {
    use wmbusd::reading::{Fields, Value};
    let mut fields = Fields::default();
    for name in [
        "target_10_m3",
        "target_2_m3",
        "target_1_m3",
        "total_m3",
        "target_12_m3",
    ] {
        fields.insert(name, Value::Null);
    }
    let json = serde_json::to_string(&fields).unwrap();
    let order: Vec<&str> = json
        .trim_matches(['{', '}'])
        .split(',')
        .map(|kv| kv.split(':').next().unwrap().trim_matches('"'))
        .collect();
    assert_eq!(
        order,
        [
            "target_1_m3",
            "target_2_m3",
            "target_10_m3",
            "target_12_m3",
            "total_m3"
        ]
    );
    // Lookups follow the same order.
    assert_eq!(fields.get("target_10_m3"), Some(&Value::Null));
    assert!(fields.get("target_3_m3").is_none());
}

#[test]
fn health_intervals_carry_no_clock_noise() {
    use std::time::{Duration, Instant, SystemTime};
    use wmbusd::decode::Decoder;
    use wmbusd::frame::RadioFrame;
    use wmbusd::keys::KeyStore;
    use wmbusd::pipeline::{Pipeline, PipelineConfig};
    let mut decoder = Decoder::new(KeyStore::new());
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let start = SystemTime::now();
    let now = Instant::now();
    for (i, gap) in [0.0, 16.123_456_789, 32.246_913_578].iter().enumerate() {
        let frame = RadioFrame {
            received_at: Some(start + Duration::from_secs_f64(*gap)),
            ..RadioFrame::new(hex::decode(MODE5).unwrap())
        };
        // Far apart for the dedupe window too.
        pipeline.process(
            &mut decoder,
            &frame,
            now + Duration::from_secs(3600 * i as u64),
        );
    }
    let stats = pipeline.meter("12345678").expect("meter counted");
    let json = serde_json::to_value(stats).unwrap();
    assert_eq!(json["interval_s"].to_string(), "16.1", "{json}");
}

#[test]
fn an_ell_aes_ctr_reading_names_its_encryption() {
    // protocol.md §4.3.1 (ELL II, AES-CTR, Kamstrup 76348799).
    const ELL: &str =
        "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
    let out = wmbusd(
        &[
            "decode",
            "--key",
            "28F64A24988064A079AA2C807D6102AE",
            ELL,
            MODE5,
        ],
        None,
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ell = &lines[0]["security"];
    assert_eq!(ell["decrypted"], true, "{ell}");
    assert_eq!(ell["scheme"], "ell_aes_ctr", "{ell}");
    assert_eq!(ell["verified_by"], "ell_crc", "{ell}");
    // Mode 5 with the wrong key fails; with its own key it names mode 5.
    let out = wmbusd(&["decode", "--key", MODE5_KEY, MODE5], None);
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["security"]["scheme"], "aes_cbc_mode_5", "{line}");
    // A plaintext reading names none.
    let sontex = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";
    let out = wmbusd(&["decode", sontex], None);
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(line["security"].get("scheme").is_none(), "{line}");
}

#[test]
fn published_readings_carry_the_gateway_and_the_meter_name() {
    let out = wmbusd(&["demo"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 5, "{}", text(&out));
    for line in &lines {
        assert_eq!(line["gateway"], "demo", "{line}");
        let id = line["meter"]["id"].as_str().unwrap();
        let name = line["meter"]["name"].as_str().unwrap_or("(none)");
        let block = format!("id = \"{id}\"\nname = \"{name}\"");
        assert!(demo.contains(&block), "{id}: name {name} not configured");
    }
}
