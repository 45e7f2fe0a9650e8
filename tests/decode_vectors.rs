//! The worked vectors of the protocol reference, decoded end to end through the public
//! decoder, and every failure class produced on purpose.
// Tests and benches may unwrap, index and panic: a failure is the report.
// Long test bodies read as one scenario top to bottom.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]

use wmbusd::decode::{Decoder, FailureKind};
use wmbusd::frame::{parse_hex, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::reading::{Reading, Value};
use wmbusd::wire::link::{add_crc, FrameFormat};

/// OMS Vol.2 Annex N.1.1: security mode 5 (protocol reference §4.2.1).
const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
const MODE5_KEY: &str = "0102030405060708090A0B0C0D0E0F11";
/// Long TPL header, mode 5 (§4.2.2).
const LONG_HEADER: &str = "4644A205440000570C377244000057A2050C37A3003005D898C64FD0C9BD2634365084E4DF946736C71A2103E45A190CAA1A49B602E46C9F45FCEE79AFBE34F0C167FD857F659E";
const LONG_HEADER_KEY: &str = "CAFEBABE123456789ABCDEF0CAFEBABE";
/// Kamstrup C1 with ELL AES-128-CTR (§4.3.1).
const ELL: &str =
    "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24";
const ELL_KEY: &str = "28F64A24988064A079AA2C807D6102AE";
/// OMS Vol.2 Annex N.1.3: security mode 7 behind ELL I and AFL (§4.5.3).
const MODE7: &str = "434493157856341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93";
const MODE7_KEY: &str = "000102030405060708090A0B0C0D0E0F";
/// The same payload through a radio adapter: long header, ELL III, C = RSP_UD (§4.5.3, CEN/TR 17167 F.3).
const MODE7_ADAPTER: &str = "530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D972785634129315330375002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93";
/// Engelmann Sensostar: frame format B with CRCs, mode 7, 9 blocks + plaintext tail (§4.5.4).
const SENSOSTAR_B: &str = "C244C5140443054300048C200E900F002C25895E02003B0877D31DA840B17A0E009007100F8FAD4C4E61400DA4F3B1F7E273CC4C5C07F93CD20B237345DB39F9A98F8415E1C4B7A25C86E4C22D05C3352FA7E2E5627031F14643063F1DC8FE2C32459B6F02E4234B447B18E4BFDA8C4DA9B1EDE6CF29D0B2122A3E8B9DEEBEE3E6DBE6617B4E709EC6B595179CB01C2C0BDE6723A345B708652880C114A58DA07C73AD9EB8ACB17FA0A88F19BC84CB1FC56672DE8A9603FD0C05010002FD0B2111F60B";
const SENSOSTAR_KEY: &str = "622B9656991FF0C1574C0950CF9278D1";
/// Kamstrup full frame and the compact frame that abbreviates it (§7.4).
const KAM_FULL: &str = "5C442D2C06357260190C8D207B70032F21271D7802F9FF15011104061765000004EEFF07BFA8000004EEFF08D24F00000414B1FB000002FD17000002 6CE919426CFF184406F76400004414E8FA0000043B0B0000000259DB11025D1C0B";
const KAM_COMPACT: &str = "3F442D2C06357260190C8D207C71032F21255C79DD829283011117650000BFA80000D24F0000B1FB00000000E919FF18F7640000E8FA00000B000000DB111C0B";
/// Sontex HCA, unencrypted (§1.2, §5.12).
const SONTEX: &str = "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000";

fn decoder(keys: &[(&str, &str)]) -> Decoder {
    let mut store = KeyStore::new();
    for (id, key) in keys {
        store.insert_hex(id, key).expect("test key");
    }
    Decoder::new(store)
}

fn frame(hex: &str) -> RadioFrame {
    RadioFrame::new(parse_hex(hex).expect("test hex"))
}

fn numbers(r: &Reading, quantity: &str) -> Vec<(f64, u64)> {
    r.records
        .iter()
        .filter(|x| x.quantity == quantity)
        .filter_map(|x| match &x.value {
            Value::Number(d) => Some((d.to_f64(), x.storage)),
            _ => None,
        })
        .collect()
}

fn text(r: &Reading, quantity: &str) -> Vec<String> {
    r.records
        .iter()
        .filter(|x| x.quantity == quantity)
        .filter_map(|x| match &x.value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn mode5_annex_n1() {
    let r = decoder(&[("12345678", MODE5_KEY)])
        .decode(&frame(MODE5))
        .unwrap();
    assert_eq!(r.meter.id, "12345678");
    assert_eq!(r.meter.manufacturer, "ELS");
    assert_eq!(r.meter.device_type, "gas");
    assert_eq!(r.access_number, Some(0x2A));
    assert_eq!((r.security.mode, r.security.decrypted), (5, true));
    assert_eq!(r.security.verified_by.as_deref(), Some("2f2f"));
    assert_eq!(numbers(&r, "volume"), vec![(28504.27, 0)]);
    assert_eq!(text(&r, "datetime"), vec!["2008-05-31T23:50".to_owned()]);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"value\":28504.27,"), "{json}");
}

#[test]
fn mode5_long_header_uses_the_tpl_address() {
    let r = decoder(&[("57000044", LONG_HEADER_KEY)])
        .decode(&frame(LONG_HEADER))
        .unwrap();
    assert_eq!(r.meter.id, "57000044");
    assert_eq!(r.meter.manufacturer, "AMB");
    assert_eq!(numbers(&r, "volume"), vec![(0.675, 0)]);
    assert_eq!(
        text(&r, "customer"),
        vec!["AMBER wireless Testmodul! S Mode".to_owned()]
    );
}

#[test]
fn ell_aes_ctr_kamstrup() {
    let r = decoder(&[("76348799", ELL_KEY)])
        .decode(&frame(ELL))
        .unwrap();
    assert_eq!(r.security.verified_by.as_deref(), Some("ell_crc"));
    assert!(r.security.decrypted);
    assert_eq!(numbers(&r, "volume"), vec![(6.408, 0), (6.408, 1)]);
    assert!(numbers(&r, "flow_temperature").contains(&(127.0, 1)));
    assert!(numbers(&r, "external_temperature").contains(&(19.0, 1)));
}

#[test]
fn mode7_annex_n3_and_radio_adapter() {
    for hex in [MODE7, MODE7_ADAPTER] {
        let r = decoder(&[("12345678", MODE7_KEY)])
            .decode(&frame(hex))
            .unwrap();
        assert_eq!(r.meter.id, "12345678");
        assert_eq!((r.security.mode, r.security.decrypted), (7, true));
        assert_eq!(r.security.verified_by.as_deref(), Some("mac"));
        assert_eq!(numbers(&r, "volume"), vec![(28504.27, 0)]);
    }
}

#[test]
fn mode7_format_b_with_crcs_and_plain_tail() {
    let r = decoder(&[("43054304", SENSOSTAR_KEY)])
        .decode(&frame(SENSOSTAR_B))
        .unwrap();
    assert_eq!(r.meter.manufacturer, "EFE");
    assert_eq!(numbers(&r, "energy").first(), Some(&(9341.0, 0)));
    assert_eq!(numbers(&r, "volume"), vec![(1348.631, 0)]);
    assert_eq!(text(&r, "datetime"), vec!["2025-12-08T10:58".to_owned()]);
    assert!(text(&r, "date").contains(&"2024-12-31".to_owned()));
    // The 11 unencrypted bytes after the 144 encrypted ones are records too.
    assert!(r.records.iter().any(|x| x.dif_vif == "02FD0B"));
    // History: storage 30 is the last monthly value.
    assert!(numbers(&r, "energy").iter().any(|&(_, s)| s == 30));
}

#[test]
fn compact_frame_after_its_full_frame() {
    let mut d = decoder(&[]);
    let err = d.decode(&frame(KAM_COMPACT)).unwrap_err();
    assert_eq!(err.kind, FailureKind::UnknownCompactFormat);
    assert!(err.message.contains("82DD"), "{}", err.message);
    let full = d.decode(&frame(KAM_FULL)).unwrap();
    let compact = d.decode(&frame(KAM_COMPACT)).unwrap();
    assert_eq!(full.records.len(), compact.records.len());
    // Same layout, values of the later telegram.
    for (f, c) in full.records.iter().zip(&compact.records) {
        assert_eq!(
            (&f.quantity, &f.dif_vif, f.storage),
            (&c.quantity, &c.dif_vif, c.storage)
        );
    }
    assert_eq!(compact.access_number, Some(0x7C)); // ELL access number (no TPL header)
}

#[test]
fn link_crcs_are_optional_in_both_formats() {
    let canonical = parse_hex(SONTEX).unwrap();
    let plain = decoder(&[])
        .decode(&RadioFrame::new(canonical.clone()))
        .unwrap();
    for format in [FrameFormat::A, FrameFormat::B] {
        let with_crc = add_crc(&canonical, format).unwrap();
        let r = decoder(&[]).decode(&RadioFrame::new(with_crc)).unwrap();
        assert_eq!(r, plain, "{format:?}");
    }
    assert_eq!(numbers(&plain, "flow_temperature"), vec![(25.16, 0)]);
    assert_eq!(numbers(&plain, "external_temperature"), vec![(25.56, 0)]);
}

#[test]
fn a_broken_link_crc_is_a_crc_error() {
    let mut raw = add_crc(&parse_hex(SONTEX).unwrap(), FrameFormat::A).unwrap();
    raw[20] ^= 0x01;
    let err = decoder(&[]).decode(&RadioFrame::new(raw)).unwrap_err();
    assert_eq!(err.kind, FailureKind::Crc);
    assert_eq!(err.meter.as_deref(), Some("27293981"));
}

#[test]
fn every_key_failure_has_its_own_class() {
    let wrong = "00112233445566778899AABBCCDDEEFF";
    let cases = [
        (MODE5, None, FailureKind::NoKey),
        (MODE5, Some(("12345678", wrong)), FailureKind::WrongKey),
        (ELL, None, FailureKind::NoKey),
        (ELL, Some(("76348799", wrong)), FailureKind::WrongKey),
        (MODE7, None, FailureKind::NoKey),
        (MODE7, Some(("12345678", wrong)), FailureKind::MacFailure),
    ];
    for (hex, key, kind) in cases {
        let keys: Vec<(&str, &str)> = key.into_iter().collect();
        let err = decoder(&keys).decode(&frame(hex)).unwrap_err();
        assert_eq!(err.kind, kind, "{hex}: {}", err.message);
        let json = serde_json::to_string(&err).unwrap();
        assert!(!json.to_uppercase().contains(wrong), "key leaked: {json}");
        assert!(err.meter.is_some());
    }
}

#[test]
fn a_tampered_mac_fails_even_with_the_right_key() {
    let mut bytes = parse_hex(MODE7).unwrap();
    // MAC byte 5 (protocol reference negative test): 0x2F -> 0x3F.
    let mac_at = 22;
    assert_eq!(bytes[mac_at + 4], 0x2F);
    bytes[mac_at + 4] = 0x3F;
    let err = decoder(&[("12345678", MODE7_KEY)])
        .decode(&RadioFrame::new(bytes))
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::MacFailure);
}

#[test]
fn already_decrypted_replays_decode_without_a_key() {
    // The Annex N.1.1 telegram with its plaintext put back in place of the ciphertext:
    // the header still says mode 5, the payload starts with 2F 2F.
    let mut bytes = parse_hex(MODE5).unwrap();
    let plain =
        parse_hex("2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F").unwrap();
    bytes.truncate(15);
    bytes.extend_from_slice(&plain);
    let r = decoder(&[]).decode(&RadioFrame::new(bytes)).unwrap();
    assert_eq!(r.security.mode, 5);
    assert!(!r.security.decrypted);
    assert_eq!(numbers(&r, "volume"), vec![(28504.27, 0)]);
}

#[test]
fn truncated_and_garbage_frames_are_errors_not_panics() {
    let full = parse_hex(MODE5).unwrap();
    let mut d = decoder(&[("12345678", MODE5_KEY)]);
    for len in 0..full.len() {
        let err = d
            .decode(&RadioFrame::new(full[..len].to_vec()))
            .unwrap_err();
        assert!(
            matches!(err.kind, FailureKind::Truncated | FailureKind::Invalid),
            "len {len}: {err:?}"
        );
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn keyed() -> Decoder {
        let mut keys = KeyStore::new();
        keys.set_default_hex(MODE7_KEY).unwrap();
        keys.insert_hex("12345678", MODE5_KEY).unwrap();
        keys.insert_hex("76348799", ELL_KEY).unwrap();
        Decoder::new(keys)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any byte string gives Ok or Err, with and without keys.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let frame = RadioFrame::new(bytes);
            let _ = decoder(&[]).decode(&frame);
            let _ = keyed().decode(&frame);
        }

        /// Real telegrams with a few bytes changed reach deep into every layer.
        #[test]
        fn mutated_real_telegrams(
            which in 0usize..6,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let base = [MODE5, LONG_HEADER, ELL, MODE7, SENSOSTAR_B, KAM_FULL][which];
            let mut bytes = parse_hex(base).unwrap();
            for (at, value) in edits {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            let keep = bytes.len() - cut % (bytes.len() / 4 + 1);
            bytes.truncate(keep);
            let mut d = keyed();
            let _ = d.decode(&frame(KAM_FULL));
            if let Ok(reading) = d.decode(&RadioFrame::new(bytes)) {
                prop_assert!(serde_json::to_string(&reading).is_ok());
            }
        }
    }
}
