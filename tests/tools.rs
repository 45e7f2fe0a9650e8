//! On-site tools as a technician runs them: `decode --explain`, `check-config`,
//! `keys import` / `keys list`. Keys must never appear in any output.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use wmbusd::decode::FailureKind;
use wmbusd::wire::link::{add_crc, FrameFormat};

const BIN: &str = env!("CARGO_BIN_EXE_wmbusd");

/// protocol.md §4.2.1 (mode 5, ELS gas meter 12345678).
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const MODE5_KEY: &str = "0102030405060708090A0B0C0D0E0F11";
/// protocol.md §4.5.3 (ELL I + AFL + mode 7).
const MODE7: &str = "434493157856341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93";
const MODE7_KEY: &str = "000102030405060708090A0B0C0D0E0F";
/// protocol.md §4.3.1 (ELL II, AES-CTR, Kamstrup 76348799).
const ELL: &str =
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
const ELL_KEY: &str = "28F64A24988064A079AA2C807D6102AE";
/// Plain Sontex telegram with two bytes appended that are no complete record (L fixed up).
const PLAIN_TRAILING: &str = "3644EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A0000413";
/// protocol.md §7.4: a compact frame of a Kamstrup meter (its full frame not given).
const KAM_COMPACT: &str = "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B";
/// A key that matches no telegram here.
const WRONG_KEY: &str = "A1B2C3D4E5F60718293A4B5C6D7E8F90";

const ALL_KEYS: [&str; 4] = [MODE5_KEY, MODE7_KEY, ELL_KEY, WRONG_KEY];

fn wmbusd(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("wmbusd runs")
}

fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_key(out: &Output) {
    let text = all_text(out);
    for key in ALL_KEYS {
        for form in [key.to_ascii_uppercase(), key.to_ascii_lowercase()] {
            assert!(!text.contains(&form), "key printed:\n{text}");
        }
    }
}

fn explain(args: &[&str]) -> (String, Output) {
    let mut all = vec!["decode", "--explain"];
    all.extend_from_slice(args);
    let out = wmbusd(&all);
    assert_no_key(&out);
    (String::from_utf8_lossy(&out.stdout).into_owned(), out)
}

fn json_kind(args: &[&str]) -> String {
    let mut all = vec!["decode"];
    all.extend_from_slice(args);
    let out = wmbusd(&all);
    assert_no_key(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    v["error"]["kind"].as_str().unwrap_or("(none)").to_owned()
}

fn assert_contains(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "missing {p:?} in:\n{text}");
    }
}

// ---- decode --explain ---------------------------------------------------------------------

#[test]
fn explains_a_plain_telegram_and_marks_unused_bytes() {
    let (text, out) = explain(&[PLAIN_TRAILING]);
    assert_eq!(out.status.code(), Some(0));
    assert_contains(
        &text,
        &[
            "== link layer (DLL) ==",
            "== transport layer (TPL) ==",
            "== application layer (APL records) ==",
            "manufacturer SON",
            "meter id 27293981",
            "security mode 0",
            "external_temperature = 25.56 C",
            "0053  04 13",
            "unused: 2 bytes after the last record",
            "result: decoded, 8 records",
        ],
    );
}

#[test]
fn explains_a_mode5_telegram() {
    let (text, out) = explain(&[MODE5, "--key", MODE5_KEY]);
    assert_eq!(out.status.code(), Some(0));
    assert_contains(
        &text,
        &[
            "== link layer (DLL) ==",
            "== transport layer (TPL) ==",
            "== security ==",
            "security mode 5, 2 encrypted blocks",
            "decrypted with key fp 108ba301",
            "0017  0C",
            "volume [m3], scale 0.01",
            "volume = 28504.27 m3",
            "datetime = 2008-05-31T23:50",
            "idle filler 2F",
        ],
    );
    assert!(!text.contains("unused"), "{text}");
}

#[test]
fn explains_a_mode7_telegram_with_ell_and_afl() {
    let (text, out) = explain(&[MODE7, "--key", MODE7_KEY]);
    assert_eq!(out.status.code(), Some(0));
    assert_contains(
        &text,
        &[
            "== extended link layer (ELL) ==",
            "== authentication and fragmentation layer (AFL) ==",
            "== transport layer (TPL) ==",
            "== security ==",
            "== application layer (APL records) ==",
            "message counter 2739",
            "AES-CMAC over the TPL, 8 bytes: verifies",
            "security mode 7, 2 encrypted blocks",
            "volume = 28504.27 m3",
        ],
    );
}

#[test]
fn explains_an_ell_ctr_telegram() {
    let (text, out) = explain(&[ELL, "--key", ELL_KEY]);
    assert_eq!(out.status.code(), Some(0));
    assert_contains(
        &text,
        &[
            "== extended link layer (ELL) ==",
            "ELL II (with session number)",
            "AES-128-CTR encrypted",
            "payload CRC verifies after AES-CTR decryption",
            "0x78: no TPL header",
            "volume = 6.408 m3",
            "flow_temperature = 127 C",
            "result: decoded, 5 records",
        ],
    );
}

#[test]
fn several_telegrams_and_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    write_private(
        &keys,
        &format!("[[key]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n"),
    );
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n",
    )
    .unwrap();
    let (text, out) = explain(&["--config", config.to_str().unwrap(), MODE5, ELL]);
    // The ELL telegram has no key here: one of two failed.
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &text,
        &[
            "telegram 1: 47 bytes",
            "volume = 28504.27 m3",
            "telegram 2: 43 bytes",
            "diagnosis: no key:",
        ],
    );
}

/// `decode --explain` names the failure as `FailureKind::label()` does, and plain `decode`
/// reports the same class as its JSON `kind`.
fn assert_failure(kind: FailureKind, args: &[&str], extra: &[&str]) {
    let (text, out) = explain(args);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let diagnosis = format!("diagnosis: {}:", kind.label());
    assert_contains(&text, &[&diagnosis]);
    assert_contains(&text, extra);
    assert_eq!(json_kind(args), kind.name());
}

#[test]
fn wrong_key_is_explained() {
    assert_failure(
        FailureKind::WrongKey,
        &[MODE5, "--key", WRONG_KEY],
        &[
            "check the key configured for meter 12345678 (key fp ",
            "not decrypted",
            "== security ==",
        ],
    );
}

#[test]
fn mac_failure_is_explained() {
    assert_failure(
        FailureKind::MacFailure,
        &[MODE7, "--key", WRONG_KEY],
        &["does NOT verify", "meter 12345678 (key fp "],
    );
}

#[test]
fn missing_key_is_explained() {
    assert_failure(
        FailureKind::NoKey,
        &[MODE5],
        &["no key is configured for meter 12345678", "ciphertext"],
    );
}

#[test]
fn link_crc_error_is_explained() {
    let canonical = hex::decode(MODE5).unwrap();
    let mut on_air = add_crc(&canonical, FrameFormat::A).unwrap();
    // A data byte after the first block's CRC: the second block's CRC fails.
    on_air[14] ^= 0x01;
    let hex_frame = hex::encode_upper(&on_air);
    assert_failure(
        FailureKind::Crc,
        &[&hex_frame, "--key", MODE5_KEY],
        &["== link layer (DLL) ==", "meter id 12345678"],
    );
}

#[test]
fn unknown_compact_format_is_explained() {
    assert_failure(
        FailureKind::UnknownCompactFormat,
        &[KAM_COMPACT],
        &["format signature 0x82DD", "which no full frame has shown"],
    );
}

// ---- check-config -------------------------------------------------------------------------

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn check(dir: &Path, config: &str, extra: &[&str]) -> (Output, String) {
    let path = dir.join("wmbusd.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec!["check-config"];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    let out = wmbusd(&args);
    assert_no_key(&out);
    let text = all_text(&out);
    (out, text)
}

#[test]
fn check_config_accepts_a_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    write_private(
        &dir.path().join("keys.toml"),
        &format!("[[key]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n"),
    );
    let (out, text) = check(
        dir.path(),
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n\n[[radio]]\ndriver = \"im871a\"\n\
         device = \"/dev/does-not-exist-wmbusd\"\n\n[[meter]]\nid = \"12345678\"\nname = \"gas\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_contains(
        &text,
        &[
            ": ok",
            "meters      1 (1 with a key)",
            "warning: radio 1 (im871a): device /dev/does-not-exist-wmbusd does not exist",
        ],
    );
}

#[test]
fn check_config_checks_the_drivers_directory() {
    let dir = tempfile::tempdir().unwrap();
    let drivers = dir.path().join("site-drivers");
    std::fs::create_dir(&drivers).unwrap();
    std::fs::write(
        drivers.join("site.toml"),
        "name = \"site\"\nmanufacturer = \"SON\"\n[fields.current_hca]\nquantity = \"hca\"\n",
    )
    .unwrap();
    let config = "[gateway]\nid = \"gw\"\ndrivers_dir = \"site-drivers\"\n";
    let (out, text) = check(dir.path(), config, &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_contains(&text, &["site-drivers)", "drivers     "]);

    std::fs::write(
        drivers.join("site.toml"),
        "name = \"site\"\nmanufacturer = \"SON\"\n[fields.current]\nquantity = \"hca\"\n",
    )
    .unwrap();
    let (out, text) = check(dir.path(), config, &[]);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert_contains(
        &text,
        &["site.toml:3:1: field name \"current\" does not end in a unit"],
    );
}

#[test]
fn check_config_reports_unknown_keys_with_position() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = check(
        dir.path(),
        "[gateway]\nid = \"gw\"\ncolour = \"blue\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    assert_contains(&text, &["wmbusd.toml:3:1: unknown field `colour`"]);
}

#[test]
fn check_config_reports_duplicate_meters_and_malformed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = check(
        dir.path(),
        "[gateway]\nid = \"gw\"\n[[meter]]\nid = \"12345678\"\n[[meter]]\nid = \"12345678\"\n\
         [[meter]]\nid = \"11111111\"\nkey = \"0011ZZ\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    assert_contains(
        &text,
        &[
            "wmbusd.toml:6:6: duplicate meter id '12345678'",
            "wmbusd.toml:9:7: meter 11111111: key must be 32 hex digits",
            "2 problems found",
        ],
    );
    assert!(!text.contains("0011ZZ"), "{text}");
}

#[test]
fn check_config_refuses_a_key_file_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!("[[key]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (out, text) = check(
        dir.path(),
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    assert_contains(&text, &["mode 0644", "chmod 600"]);
}

#[test]
fn check_config_listen_reports_each_meter() {
    let dir = tempfile::tempdir().unwrap();
    let telegrams = dir.path().join("heard.txt");
    std::fs::write(&telegrams, format!("{MODE5}\n{ELL}\n{MODE7}\n")).unwrap();
    write_private(
        &dir.path().join("keys.toml"),
        &format!(
            "[[key]]\nid = \"12345678\"\nkey = \"{WRONG_KEY}\"\n\n\
             [[key]]\nid = \"76348799\"\nkey = \"{ELL_KEY}\"\n"
        ),
    );
    let config = format!(
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n\n[[radio]]\ndriver = \"replay\"\n\
         device = \"{}\"\n\n[[meter]]\nid = \"12345678\"\nname = \"gas\"\n\n\
         [[meter]]\nid = \"99999999\"\nname = \"cellar\"\n",
        telegrams.display()
    );
    let (out, text) = check(dir.path(), &config, &["--listen", "2s"]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    // Mode 5 with the wrong key, and mode 7 whose MAC fails with it: the majority decides.
    let gas = row("12345678");
    assert!(
        gas.ends_with(FailureKind::WrongKey.label())
            || gas.ends_with(FailureKind::MacFailure.label()),
        "{text}"
    );
    assert!(gas.contains("     2     0"), "{text}");
    assert!(row("76348799").ends_with("decoded ok"), "{text}");
    assert!(row("99999999").ends_with("not heard"), "{text}");
}

// ---- keys import / list -------------------------------------------------------------------

#[test]
fn keys_import_vendor_csv_then_list_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    let spaced: String = MODE5_KEY
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &csv,
        format!(
            "\u{FEFF}\"Meter ID\";\"AES Key\";Mfct;Label\n\
             12345678;\"{spaced}\";ELS;\"Flat 3; gas\"\n\
             76348799;0x{};kam;cold water\n",
            ELL_KEY.to_ascii_lowercase()
        ),
    )
    .unwrap();
    let key_file = dir.path().join("keys.toml");
    let kf = key_file.to_str().unwrap();
    let out = wmbusd(&["keys", "import", csv.to_str().unwrap(), "--key-file", kf]);
    assert_no_key(&out);
    assert_eq!(out.status.code(), Some(0), "{}", all_text(&out));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    let out = wmbusd(&["keys", "list", "--key-file", kf]);
    assert_no_key(&out);
    let text = all_text(&out);
    assert_contains(
        &text,
        &[
            "12345678  ELS   Flat 3; gas  108ba301",
            "76348799  KAM   cold water   20527509",
        ],
    );

    // The daemon's own loader accepts the result and gets the same keys.
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n",
    )
    .unwrap();
    let (text, out) = explain(&["--config", config.to_str().unwrap(), MODE5, ELL]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let out = wmbusd(&["keys", "list", "--config", config.to_str().unwrap()]);
    assert_no_key(&out);
    assert_contains(&all_text(&out), &["108ba301", "20527509"]);

    // A different key for a known meter is refused without --replace, kept with it.
    std::fs::write(&csv, format!("id,key\n12345678,{WRONG_KEY}\n")).unwrap();
    let out = wmbusd(&["keys", "import", csv.to_str().unwrap(), "--key-file", kf]);
    assert_no_key(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_contains(&all_text(&out), &["--replace", "nothing written"]);
    let out = wmbusd(&[
        "keys",
        "import",
        "--replace",
        csv.to_str().unwrap(),
        "--key-file",
        kf,
    ]);
    assert_no_key(&out);
    assert_eq!(out.status.code(), Some(0));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn keys_import_reports_bad_rows_by_line_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        format!(
            "id,key,name\n12345678,{MODE5_KEY},ok\n1234567X,{MODE7_KEY},bad id\n\
             76348799,{}ZZ,bad key\n",
            &ELL_KEY[..30]
        ),
    )
    .unwrap();
    let key_file = dir.path().join("keys.toml");
    let out = wmbusd(&[
        "keys",
        "import",
        csv.to_str().unwrap(),
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_no_key(&out);
    let text = all_text(&out);
    assert!(!text.contains(&ELL_KEY[..30]), "{text}");
    assert_eq!(out.status.code(), Some(1));
    assert_contains(
        &text,
        &[
            "bad.csv:3: ",
            "bad.csv:4: meter 76348799",
            "nothing written",
        ],
    );
    assert!(!key_file.exists());
}

#[test]
fn help_of_every_new_command_has_examples_and_exit_codes() {
    for args in [
        vec!["decode", "--help"],
        vec!["check-config", "--help"],
        vec!["keys", "import", "--help"],
        vec!["keys", "list", "--help"],
    ] {
        let out = wmbusd(&args);
        let text = all_text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_contains(&text, &["Examples:", "Exit status"]);
    }
}

/// `--listen` through the real serial session against the simulated iM871A on a pty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_listen_on_a_simulated_im871a() {
    use support::sim::{self, Im871aSim, Pty, SimInput};

    let dir = tempfile::tempdir().unwrap();
    let pty = Pty::open().expect("pty");
    let device = pty.slave_path().to_path_buf();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let sim_task = tokio::spawn(sim::run_im871a_sim(pty, rx, Im871aSim::default()));
    // Held back by the simulator until the session has configured a link mode.
    for telegram in [MODE5, ELL] {
        tx.send(SimInput::Telegram {
            frame: hex::decode(telegram).unwrap(),
            rssi_raw: 0x9D,
        })
        .await
        .unwrap();
    }
    write_private(
        &dir.path().join("keys.toml"),
        &format!(
            "[[key]]\nid = \"12345678\"\nkey = \"{MODE5_KEY}\"\n\n\
             [[key]]\nid = \"76348799\"\nkey = \"{WRONG_KEY}\"\n"
        ),
    );
    let config = dir.path().join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw\"\nkey_file = \"keys.toml\"\n\n[[radio]]\ndriver = \"im871a\"\n\
             device = \"{}\"\nmodes = [\"C1\", \"T1\"]\n\n[[meter]]\nid = \"12345678\"\n",
            device.display()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["check-config", "--listen", "2s", config.to_str().unwrap()])
        .output()
        .await
        .expect("wmbusd runs");
    drop(tx);
    sim_task.abort();
    assert_no_key(&out);
    let text = all_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("12345678").ends_with("decoded ok"), "{text}");
    assert!(
        row("76348799").ends_with(FailureKind::WrongKey.label()),
        "{text}"
    );
}

#[test]
fn check_config_listen_without_a_working_radio_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = check(
        dir.path(),
        "[gateway]\nid = \"gw\"\n\n[[radio]]\ndriver = \"im871a\"\n\
         device = \"/dev/does-not-exist-wmbusd\"\n\n[[meter]]\nid = \"12345678\"\n",
        &["--listen", "500ms"],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_contains(&text, &["not heard", "no radio became ready"]);
}
