use super::*;
use crate::wire::ErrorKind;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// (header hex, storage, value text) of every record.
fn summary(apl: &Apl<'_>) -> Vec<(String, u64, String)> {
    apl.records
        .iter()
        .map(|r| {
            (
                hex::encode_upper(r.header),
                r.dib.storage,
                r.value.to_string(),
            )
        })
        .collect()
}

#[test]
fn oms_annex_n11_plaintext() {
    let b = hex("2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F");
    let apl = parse(&b).unwrap();
    assert_eq!(
        summary(&apl),
        [
            ("0C14".into(), 0, "28504.27".into()),
            ("046D".into(), 0, "2008-05-31T23:50".into()),
            ("02FD17".into(), 0, "0x0".into()),
        ]
    );
    let volume = &apl.records[0];
    assert_eq!(volume.offset, 2);
    assert_eq!(volume.value, Value::Number(Decimal::new(2850427, -2)));
    assert_eq!(volume.meaning().unit, Some("m3"));
    assert_eq!(volume.dib.data_field, DataField::Bcd(4));
    assert_eq!(apl.records[1].meaning().quantity, "datetime");
    assert_eq!(apl.records[2].meaning().quantity, "error_flags");
    assert_eq!(apl.manufacturer_data, None);
}

#[test]
fn long_header_lvar_text_and_bcd12() {
    let b = hex(
        "2F2F0E13750600000000 0DFD11 2065646F4D20532021 6C75646F6D7473 6554207373656C 657269 77 20 52 45 42 4D 41 2F2F",
    );
    let apl = parse(&b).unwrap();
    assert_eq!(apl.records.len(), 2);
    assert_eq!(apl.records[0].value, Value::Number(Decimal::new(675, -3)));
    let text = &apl.records[1];
    assert_eq!(text.lvar, Some(0x20));
    assert_eq!(text.data.len(), 32);
    assert_eq!(
        text.value,
        Value::Text("AMBER wireless Testmodul! S Mode".into())
    );
    assert_eq!(text.meaning().quantity, "customer");
    assert_eq!(
        text.lvar_text_forward().as_deref(),
        Some("edoM S !ludomtseT sseleriw REBMA")
    );
    assert_eq!(apl.records[0].lvar_text_forward(), None);
}

#[test]
fn sensostar_records() {
    let b = hex("2f2f046d3a2a283c04067d24000004131794140001fd1700426c1f3c4406250b0000840106532300008402064e1f00008403063e1d00008404063e1d00008405063e1d00008406063e1d00008407063e1d0000840806081d0000840906ed1a0000840a0685160000840b064f110000840c06250b0000840d066e050000840e0609010000840f06000000002f2f2f2f2f03fd0c05010002fd0b2111");
    let apl = parse(&b).unwrap();
    let s = summary(&apl);
    assert_eq!(s[0], ("046D".into(), 0, "2025-12-08T10:58".into()));
    assert_eq!(s[1], ("0406".into(), 0, "9341".into()));
    assert_eq!(s[2], ("0413".into(), 0, "1348.631".into()));
    assert_eq!(s[3], ("01FD17".into(), 0, "0x0".into()));
    assert_eq!(s[4], ("426C".into(), 1, "2024-12-31".into()));
    assert_eq!(s[5], ("4406".into(), 1, "2853".into()));
    assert_eq!(s[6], ("840106".into(), 2, "9043".into()));
    let storages: Vec<u64> = apl.records[6..21].iter().map(|r| r.dib.storage).collect();
    assert_eq!(storages, (1..=15).map(|n| 2 * n).collect::<Vec<_>>());
    assert_eq!(s[20], ("840F06".into(), 30, "0".into()));
    assert_eq!(s[21], ("03FD0C".into(), 0, "261".into()));
    assert_eq!(s[22], ("02FD0B".into(), 0, "4385".into()));
    assert_eq!(apl.records.len(), 23);
    assert_eq!(apl.records[21].meaning().quantity, "model_version");
    assert_eq!(apl.records[22].meaning().quantity, "parameter_set");
}

#[test]
fn sontex_hca_records() {
    let b = hex("046d1912a62b036e000000426ce1f1436e00000002ff2c00000259d4090265fc0902fd66a000");
    let apl = parse(&b).unwrap();
    assert_eq!(
        summary(&apl),
        [
            ("046D".into(), 0, "2021-11-06T18:25".into()),
            ("036E".into(), 0, "0".into()),
            ("426C".into(), 1, "XXXX-01-01".into()),
            ("436E".into(), 1, "0".into()),
            ("02FF2C".into(), 0, "0".into()),
            ("0259".into(), 0, "25.16".into()),
            ("0265".into(), 0, "25.56".into()),
            ("02FD66".into(), 0, "0xA0".into()),
        ]
    );
    let mfct = &apl.records[4];
    assert_eq!(mfct.vib.table, VifTable::Manufacturer);
    assert_eq!(mfct.vib.vifes.as_slice(), [0x2C]);
    assert_eq!(mfct.meaning().quantity, "manufacturer_specific");
    assert_eq!(apl.records[5].meaning().unit, Some("C"));
    assert_eq!(apl.records[1].meaning().unit, Some("hca"));
}

#[test]
fn negative_bcd_and_invalid_bcd() {
    let bytes1 = hex("0A1623F1 0A16FFFF 0A162A00");
    let apl = parse(&bytes1).unwrap();
    let values: Vec<_> = apl.records.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        values,
        [
            Value::Number(Decimal::from_int(-123)),
            Value::Invalid,
            Value::Invalid
        ]
    );
}

#[test]
fn integer_widths_and_invalid_markers() {
    let bytes = hex(
        "01 16 FE  02 16 00 80  03 16 01 00 80  06 16 01 00 00 00 00 00  07 16 FF FF FF FF FF FF FF FF  04 FD 17 00 00 00 80",
    );
    let apl = parse(&bytes).unwrap();
    let values: Vec<String> = apl.records.iter().map(|r| r.value.to_string()).collect();
    assert_eq!(
        values,
        ["-2", "invalid", "-8388607", "1", "-1", "0x80000000"]
    );
}

#[test]
fn real32_is_exact_decimal() {
    // 0x13 litres, 1.5 → 0.0015 m³.
    let bytes2 = hex("05 13 00 00 C0 3F  05 13 00 00 C0 7F");
    let apl = parse(&bytes2).unwrap();
    assert_eq!(apl.records[0].value, Value::Number(Decimal::new(15, -4)));
    assert_eq!(apl.records[1].value, Value::Invalid);
}

#[test]
fn lvar_bcd_binary_and_reserved() {
    let bytes3 =
        hex("0D16C2 3412  0D16D1 05  0DFD0FE3 010203  0D16F0 00000000000000000000000000000000");
    let apl = parse(&bytes3).unwrap();
    assert_eq!(apl.records[0].value, Value::Number(Decimal::from_int(1234)));
    assert_eq!(apl.records[1].value, Value::Number(Decimal::from_int(-5)));
    assert_eq!(apl.records[2].value, Value::Binary);
    assert_eq!(apl.records[2].data, [1, 2, 3]);
    assert_eq!(apl.records[3].data.len(), 16);
    let bytes4 = hex("0D16F7 00");
    let err = parse(&bytes4).unwrap_err();
    assert_eq!((err.layer, err.offset), (Layer::Apl, 2));
    assert_eq!(err.kind, ErrorKind::Invalid("LVAR"));
}

#[test]
fn storage_tariff_subunit_examples() {
    let bytes5 =
        hex("4413 00000000 84010600000000 840F0600000000 C4000600000000 8410060000000081030600");
    let apl = parse(&bytes5).unwrap();
    let got: Vec<(u64, u32)> = apl
        .records
        .iter()
        .map(|r| (r.dib.storage, r.dib.tariff))
        .collect();
    assert_eq!(got, [(1, 0), (2, 0), (30, 0), (1, 0), (0, 1), (6, 0)]);
}

#[test]
fn plain_text_vif_after_vib() {
    let bytes6 = hex("81037C034C412300");
    let apl = parse(&bytes6).unwrap();
    let r = &apl.records[0];
    assert_eq!(r.dib.storage, 6);
    assert_eq!(r.vib.plain_text_unit.as_deref(), Some("#AL"));
    assert_eq!(r.header, hex("81037C034C4123"));
    assert_eq!(r.value, Value::Number(Decimal::ZERO));
}

#[test]
fn plain_text_vif_fallback_to_text_first() {
    // FC, text "LA#" right after it, then VIFE 0x22 (per hour), data 05.
    let bytes7 = hex("01FC034C41232205");
    let apl = parse(&bytes7).unwrap();
    let r = &apl.records[0];
    assert_eq!(r.vib.plain_text_unit.as_deref(), Some("#AL"));
    assert_eq!(r.vib.vifes.as_slice(), [0x22]);
    assert_eq!(r.data, [0x05]);
}

#[test]
fn manufacturer_data_and_more_follows() {
    let bytes8 = hex("2F 0413 01000000 0F AABB");
    let apl = parse(&bytes8).unwrap();
    assert_eq!(apl.records.len(), 1);
    assert_eq!(apl.manufacturer_data, Some(&[0xAA, 0xBB][..]));
    assert!(!apl.more_records_follow);
    let bytes9 = hex("1F");
    let apl = parse(&bytes9).unwrap();
    assert_eq!(apl.manufacturer_data, Some(&[][..]));
    assert!(apl.more_records_follow);
    let bytes10 = hex("3F00");
    let err = parse(&bytes10).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported("special-function DIF"));
}

#[test]
fn record_error_vife_and_corrections() {
    let bytes11 = hex("0493150000 0000  0493 75 10000000  0493 79 10000000");
    let apl = parse(&bytes11).unwrap();
    assert_eq!(
        apl.records[0].vib.record_error().map(RecordError::name),
        Some("no_data_available")
    );
    // 16 × 10^-3 × 10^-1 m³.
    assert_eq!(apl.records[1].value, Value::Number(Decimal::new(16, -4)));
    // 16 l + 10^(1-3) l = 0.016 + 0.00001 m³.
    assert_eq!(apl.records[2].value, Value::Number(Decimal::new(1601, -5)));
}

#[test]
fn extension_tables_parse() {
    let bytes12 = hex("04FB0D0A000000 02FD4805 02FDFD0201 02EF0101 00");
    let apl = parse(&bytes12).unwrap_err();
    // The last DIF 0x00 has no VIF.
    assert_eq!(apl.kind, ErrorKind::Truncated { needed: 1 });
    let bytes13 = hex("04FB0D0A000000 02FD480500 02FDFD020100 02EF010100");
    let apl = parse(&bytes13).unwrap();
    assert_eq!(
        apl.records[0].value,
        Value::Number(Decimal::new(418680, -4))
    );
    assert_eq!(apl.records[1].meaning().quantity, "voltage");
    assert_eq!(apl.records[1].value, Value::Number(Decimal::new(5, -1)));
    assert_eq!(apl.records[2].vib.table, VifTable::FdSecondLevel);
    assert_eq!(
        apl.records[2].meaning().quantity,
        "remaining_battery_lifetime_months"
    );
    assert_eq!(apl.records[3].vib.table, VifTable::Ef);
}

#[test]
fn bounded_extension_counts() {
    let bytes14 = hex("84 80 80 80 80 80 80 80 80 80 80 00 13 00000000");
    let err = parse(&bytes14).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid("more than 10 DIFEs"));
    let bytes15 = hex("04 93 80 80 80 80 80 80 80 80 80 80 00 00000000");
    let err = parse(&bytes15).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid("more than 10 VIFEs"));
    // Exactly ten of each is fine.
    let bytes16 = hex("84 80 80 80 80 80 80 80 80 80 00 93 80 80 80 80 80 80 80 80 80 00 00000000");
    let ok = parse(&bytes16);
    assert!(ok.is_ok());
}

#[test]
fn truncation_reports_offset() {
    let bytes17 = hex("2F 04 13 01 02");
    let err = parse(&bytes17).unwrap_err();
    assert_eq!(err, Error::truncated(Layer::Apl, 3, 2));
    let bytes18 = hex("84");
    let err = parse(&bytes18).unwrap_err();
    assert_eq!(err.offset, 1);
}

#[test]
fn builder_emits_protocol_bytes() {
    let r = RecordRepr::bcd(DataField::Bcd(4), Vib::primary(0x14), 2850427).unwrap();
    assert_eq!(r.to_bytes().unwrap(), hex("0C1427048502"));
    let r = RecordRepr::bcd(DataField::Bcd(2), Vib::primary(0x16), -123).unwrap();
    assert_eq!(r.to_bytes().unwrap(), hex("0A1623F1"));
    assert!(RecordRepr::bcd(DataField::Bcd(1), Vib::primary(0x16), -10).is_none());
    let r = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x06), 2853)
        .unwrap()
        .storage(1);
    assert_eq!(r.to_bytes().unwrap(), hex("4406250B0000"));
    let r = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x06), 9043)
        .unwrap()
        .storage(2);
    assert_eq!(r.to_bytes().unwrap(), hex("84010653230000"));
    let r = RecordRepr::text(Vib::fd(0x11), "AB").unwrap();
    assert_eq!(r.to_bytes().unwrap(), hex("0DFD11024241"));
    assert!(RecordRepr::integer(DataField::Integer(1), Vib::primary(0x13), 256).is_none());
    let mut bad = RecordRepr::integer(DataField::Integer(2), Vib::primary(0x13), 1).unwrap();
    bad.data.push(0);
    let mut out = vec![0xAA];
    assert!(bad.emit(&mut out).is_err());
    assert_eq!(out, [0xAA]);
}

#[test]
fn parsed_records_emit_as_on_air() {
    let b = hex("046d1912a62b036e000000426ce1f1436e00000002ff2c00000259d4090265fc0902fd66a000 0DFD11024241 0F 0102");
    let apl = parse(&b).unwrap();
    let mut out = Vec::new();
    apl.emit(&mut out);
    assert_eq!(out, b);
    for r in &apl.records {
        assert_eq!(RecordRepr::from_record(r).to_bytes().unwrap(), {
            let mut v = Vec::new();
            r.emit(&mut v);
            v
        });
    }
}

fn data_field() -> impl Strategy<Value = DataField> {
    prop_oneof![
        Just(DataField::NoData),
        Just(DataField::Selection),
        Just(DataField::Real32),
        Just(DataField::Variable),
        prop::sample::select(vec![1u8, 2, 3, 4, 6, 8]).prop_map(DataField::Integer),
        prop::sample::select(vec![1u8, 2, 3, 4, 6]).prop_map(DataField::Bcd),
    ]
}

fn vib() -> impl Strategy<Value = Vib> {
    let table = prop_oneof![
        Just(VifTable::Primary),
        Just(VifTable::Fb),
        Just(VifTable::Fd),
        Just(VifTable::FdSecondLevel),
        Just(VifTable::Ef),
        Just(VifTable::PlainText),
        Just(VifTable::Manufacturer),
    ];
    (
        table,
        0u8..0x80,
        prop::collection::vec(0u8..0x80, 0..=8),
        "[ -~]{0,12}",
    )
        .prop_map(|(table, code, vifes, text)| {
            let code = match (table, code) {
                (VifTable::Primary, 0x6F | 0x7B..=0x7D | 0x7F) => 0x13,
                (VifTable::Fd, 0x7D) => 0x17,
                _ => code,
            };
            let mut v = Vib::new(table, code);
            v.vifes = vifes.into_iter().collect();
            if table == VifTable::PlainText {
                v.plain_text_unit = Some(text);
            }
            v
        })
}

fn record() -> impl Strategy<Value = RecordRepr> {
    (
        data_field(),
        vib(),
        0u8..4,
        0u64..(1 << 41),
        0u32..(1 << 20),
        0u32..(1 << 10),
        prop::sample::select(vec![
            0x00u8, 0x05, 0xBF, 0xC0, 0xC3, 0xD2, 0xE0, 0xE7, 0xF0, 0xF4, 0xF5, 0xF6,
        ]),
        prop::collection::vec(any::<u8>(), 191),
    )
        .prop_map(
            |(df, vib, function, storage, tariff, subunit, lvar, bytes)| {
                let mut dib = Dib::new(df);
                dib.function = Function::from_dif(function << 4);
                dib.storage = storage;
                dib.tariff = tariff;
                dib.subunit = subunit;
                let len = df.data_len().or_else(|| lvar_len(lvar)).unwrap_or(0);
                let lvar = (df == DataField::Variable).then_some(lvar);
                RecordRepr::new(dib, vib, lvar, bytes[..len].to_vec())
            },
        )
}

proptest! {
    #[test]
    fn emit_parse_round_trip(r in record()) {
        let bytes = r.to_bytes().unwrap();
        let apl = parse(&bytes).unwrap();
        prop_assert_eq!(apl.records.len(), 1);
        let parsed = &apl.records[0];
        prop_assert_eq!(parsed.encoded_len(), bytes.len());
        let mut expected = r.clone();
        expected.dib.difes = parsed.dib.difes;
        prop_assert_eq!(RecordRepr::from_record(parsed), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(apl) = parse(&bytes) {
            let mut out = Vec::new();
            apl.emit(&mut out);
            let again = parse(&out).unwrap();
            prop_assert_eq!(again.records.len(), apl.records.len());
            for (a, b) in again.records.iter().zip(&apl.records) {
                prop_assert_eq!((a.header, a.data, &a.value), (b.header, b.data, &b.value));
            }
        }
    }
}

/// APLs of the corpus telegrams that need no decryption and no ELL/AFL handling:
/// (telegram index, APL bytes).
fn corpus_plain_apls() -> Vec<(usize, String, Vec<u8>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/wmbusmeters-public.jsonl"
    ))
    .unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = hex::decode(v["telegram"].as_str().unwrap().replace('_', "")).unwrap();
        let notes = v["notes"].to_string();
        if notes.contains("CRC: present") {
            continue;
        }
        let driver = v["driver"].as_str().unwrap_or("").to_string();
        let apl = match (v["frame"].as_str().unwrap(), v["ci"].as_str().unwrap()) {
            // 68 L L 68 C A CI(72) + 12-byte long header … CS 16
            ("wired_mbus_long_frame", "72") => t.get(19..t.len() - 2),
            ("wmbus", "78") => t.get(11..),
            ("wmbus", "7A") => t.get(15..),
            ("wmbus", "72") => t.get(23..),
            _ => None,
        };
        let Some(apl) = apl else { continue };
        let cf_mode = match v["ci"].as_str().unwrap() {
            "7A" if v["frame"] == "wmbus" => t.get(14).map(|b| b & 0x1F),
            "72" if v["frame"] == "wmbus" => t.get(22).map(|b| b & 0x1F),
            _ => Some(0),
        };
        if cf_mode != Some(0) && !apl.starts_with(&[0x2F, 0x2F]) {
            continue;
        }
        out.push((i, driver, apl.to_vec()));
    }
    out
}

#[test]
fn corpus_plain_apls_parse() {
    let apls = corpus_plain_apls();
    assert!(apls.len() > 150, "{}", apls.len());
    let mut failures = Vec::new();
    for (i, driver, apl) in &apls {
        // Vendor-defined payload behind a standard CI; not DIF/VIF records.
        if driver == "bfw240radio" {
            continue;
        }
        let parsed = parse_lenient(apl);
        match &parsed.unparsed {
            None => assert!(parse(apl).is_ok()),
            // Two trailing junk bytes after valid records (evo868, whe5x, qcaloric,
            // qwaterv2, qwater in the corpus).
            Some(u) if u.bytes.len() <= 2 && !parsed.records.is_empty() => {}
            Some(u) => failures.push(format!(
                "#{i} {driver}: {} in {}",
                u.error,
                hex::encode_upper(apl)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lenient_parse_keeps_records_before_junk() {
    let bytes = hex("0B6E040300 046D1416B921 DD2F");
    assert!(parse(&bytes).is_err());
    let apl = parse_lenient(&bytes);
    assert_eq!(apl.records.len(), 2);
    let u = apl.unparsed.as_ref().unwrap();
    assert_eq!((u.offset, u.bytes), (11, &[0xDD, 0x2F][..]));
    assert_eq!(u.error, Error::truncated(Layer::Apl, 13, 1));
    let mut out = Vec::new();
    apl.emit(&mut out);
    assert_eq!(out, bytes);
    let bytes = hex("0413 01000000 FFFF");
    let apl = parse_lenient(&bytes);
    assert_eq!(apl.records.len(), 1);
    assert_eq!(
        apl.unparsed.unwrap().error.kind,
        ErrorKind::Unsupported("special-function DIF")
    );
}

#[test]
fn opaque_records_stay_binary() {
    // Vendor LVAR (qwater-style) and a compact profile with register numbers.
    let bytes = hex("0DFF5F 03 414243  8D0493 1E 02 3A3C  02FF2C 0100");
    let apl = parse(&bytes).unwrap();
    assert_eq!(apl.records[0].value, Value::Binary);
    assert_eq!(apl.records[1].value, Value::Binary);
    assert_eq!(apl.records[1].dib.storage, 8);
    assert_eq!(apl.records[2].value, Value::Number(Decimal::from_int(1)));
}

#[test]
fn type_f_hundred_year_bits_follow_the_standard() {
    // From a corpus telegram (uiws) whose meter sets HY = 2: EN 13757-3 reads 2126;
    // wmbusmeters ignores HY and reports 2026.
    let bytes = hex("046D22484136");
    let apl = parse(&bytes).unwrap();
    assert_eq!(apl.records[0].value.to_string(), "2126-06-01T08:34");
}

#[test]
fn recycled_record_vector_keeps_its_allocation() {
    let first = [0x04, 0x13, 0x01, 0x00, 0x00, 0x00, 0x02, 0x59, 0xD4, 0x09];
    let parsed = parse_lenient_in(&first, Vec::new());
    assert_eq!(parsed.records.len(), 2);
    let capacity = parsed.records.capacity();
    let spare = recycle(parsed.records);
    assert!(spare.is_empty());
    assert_eq!(spare.capacity(), capacity);
    let second = [0x02, 0x59, 0xD4, 0x09];
    let again = parse_lenient_in(&second, spare);
    assert_eq!(again, parse_lenient(&second));
}

/// Issue 12: a record whose DIF gives its length never ends the telegram. A reserved VIF
/// (0x7B or 0x7D without the extension bit) or a reserved VIFE makes an `unknown`
/// record, and decoding goes on; integers are two's complement for every VIF.
#[test]
fn unknown_vifs_are_kept_and_decoding_goes_on() {
    // 04 7B: 4-byte integer, reserved VIF; 02 7D: 2-byte, reserved; 04 93 44: volume
    // with reserved VIFE 0x44; then volume 6.408 m³; then a manufacturer-specific -2.
    let bytes = hex("047B 01020304  027D 0500  049344 01000000  0413 08190000  027F FEFF");
    let apl = parse_lenient(&bytes);
    assert!(apl.unparsed.is_none(), "{:?}", apl.unparsed);
    let quantities: Vec<&str> = apl.records.iter().map(|r| r.quantity).collect();
    assert_eq!(
        quantities,
        [
            "unknown",
            "unknown",
            "unknown",
            "volume",
            "manufacturer_specific"
        ]
    );
    assert_eq!(apl.records[0].value.to_string(), "67305985");
    assert_eq!(apl.records[3].value.to_string(), "6.408");
    assert_eq!(apl.records[4].value.to_string(), "-2");
    let record = crate::reading::Record::from_data_record(&apl.records[0]);
    assert_eq!(
        (record.dif_vif.as_str(), record.raw.as_deref()),
        ("047B", Some("01020304"))
    );
}

#[test]
fn date_and_datetime_emitters_round_trip() {
    let date = |y, m, d| Date {
        year: Some(y),
        month: Some(m),
        day: Some(d),
    };
    for (y, m, d) in [(1990, 7, 4), (2024, 2, 29), (2080, 12, 31)] {
        let bytes = RecordRepr::date(&date(y, m, d))
            .unwrap()
            .to_bytes()
            .unwrap();
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.records[0].value, Value::Date(date(y, m, d)));
    }
    // Type G holds no hundred-years code; partial or impossible dates are refused.
    assert_eq!(RecordRepr::date(&date(2100, 1, 1)), None);
    assert_eq!(RecordRepr::date(&date(2024, 13, 1)), None);
    for y in [1999, 2024, 2150] {
        let dt = DateTime {
            date: date(y, 3, 1),
            time: Time {
                hour: Some(23),
                minute: Some(45),
                second: None,
                has_seconds: false,
            },
            summer_time: true,
        };
        let bytes = RecordRepr::datetime(&dt).unwrap().to_bytes().unwrap();
        assert_eq!(parse(&bytes).unwrap().records[0].value, Value::DateTime(dt));
        let with_seconds = DateTime {
            time: Time {
                second: Some(7),
                ..dt.time
            },
            ..dt
        };
        assert_eq!(RecordRepr::datetime(&with_seconds), None);
    }
}
