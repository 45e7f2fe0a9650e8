//! `--explain` on telegrams with known keys and on damaged frames.

use super::*;

fn frame(hex_text: &str) -> RadioFrame {
    RadioFrame::new(hex::decode(hex_text).unwrap_or_default())
}

const MODE5: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";

/// (telegram, meter id, key) from protocol.md §4.2.1, §4.5.3 and §4.3.1.
const VECTORS: [(&str, &str, &str); 3] = [
    (MODE5, "12345678", "0102030405060708090A0B0C0D0E0F11"),
    (
        "434493157856341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC91DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93",
        "12345678",
        "000102030405060708090A0B0C0D0E0F",
    ),
    (
        "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24",
        "76348799",
        "28F64A24988064A079AA2C807D6102AE",
    ),
];

#[test]
fn spans_cover_every_byte_once_in_order() {
    for (telegram, id, key) in VECTORS {
        let mut keys = KeyStore::new();
        assert!(keys.insert_hex(id, key).is_ok());
        let mut decoder = Decoder::new(keys);
        let e = explain(&mut decoder, &frame(telegram));
        assert!(
            matches!(e.outcome, Outcome::Decoded { .. }),
            "{}",
            e.render()
        );
        let mut next = 0;
        for s in e.lines.iter().filter(|s| s.len > 0) {
            assert_eq!(s.offset, next, "{s:?}");
            next += s.len;
        }
        assert_eq!(next, telegram.len() / 2, "{}", e.render());
        assert!(!e.render().contains(key), "key printed");
    }
}

#[test]
fn decrypted_values_are_shown() {
    let mut keys = KeyStore::new();
    assert!(keys
        .insert_hex("12345678", "0102030405060708090A0B0C0D0E0F11")
        .is_ok());
    let mut decoder = Decoder::new(keys);
    let text = explain(&mut decoder, &frame(MODE5)).render();
    assert!(text.contains("volume = 28504.27 m3"), "{text}");
    assert!(text.contains("8-digit BCD"), "{text}");
}

#[test]
fn missing_key_is_diagnosed_and_ciphertext_marked() {
    let mut decoder = Decoder::new(KeyStore::new());
    let e = explain(&mut decoder, &frame(MODE5));
    let Outcome::Failed {
        kind, diagnosis, ..
    } = &e.outcome
    else {
        panic!("decoded without a key");
    };
    assert_eq!(*kind, FailureKind::NoKey);
    assert!(diagnosis.starts_with("no key:"), "{diagnosis}");
    assert!(e.lines.iter().any(|s| s.field == "ciphertext"));
}

/// Each integrity class of issue 12 is named in one line of `--explain`.
#[test]
fn integrity_classes_are_named_in_one_line() {
    use crate::frame::{CrcState, FrameFormat};
    use crate::wire::link::add_crc;
    let sontex = hex::decode(
        "3444EE4D8139292716087A51000000046D1912A62B036E000000426CE1F1436E00000002FF2C00000259D4090265FC0902FD66A000",
    )
    .unwrap();
    let mut b = add_crc(&sontex, FrameFormat::B).unwrap();
    b[20] ^= 1;
    let mut long = sontex.clone();
    long.extend_from_slice(&[0xDE, 0xAD, 0x21]);
    let mut a = add_crc(&sontex, FrameFormat::A).unwrap();
    a[40] ^= 0x80;
    let cases = [
        (
            b,
            CrcState::Present(FrameFormat::B),
            "error: CRC error in block 2 of format B",
        ),
        (
            a,
            CrcState::Unknown,
            "error: CRC error in block 3 of format A",
        ),
        (
            long,
            CrcState::Unknown,
            "note: 3 bytes after the frame's end (L-field 0x34)",
        ),
        (
            hex::decode("680303680801515B16").unwrap(),
            CrcState::Unknown,
            "error: damaged wired frame: checksum",
        ),
        (
            hex::decode("680303680801515A").unwrap(),
            CrcState::Unknown,
            "error: damaged wired frame: no stop byte",
        ),
        (
            hex::decode("1040014116").unwrap(),
            CrcState::Unknown,
            "error: control frame: SND_NKE",
        ),
    ];
    for (bytes, crc, line) in cases {
        let frame = RadioFrame {
            crc,
            ..RadioFrame::new(bytes)
        };
        let text = explain(&mut Decoder::new(KeyStore::new()), &frame).render();
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}\n{text}");
    }
}
