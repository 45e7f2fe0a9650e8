//! Labelled byte spans: each layer's `annotate` says which bytes hold which field and what
//! they mean, so `--explain` renders them instead of walking the layers a second time.

use std::ops::Range;

/// A field's bytes, relative to the start of its layer (smoltcp's `wire::field::Field`).
pub type Field = Range<usize>;

/// One field of a parsed layer: its bytes in the frame, its name and its value in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Frame offsets (the layer's `base` added to its [`Field`]).
    pub range: Range<usize>,
    pub label: &'static str,
    pub value: String,
}

impl Annotation {
    /// The field `field` of a layer starting at frame offset `base`.
    pub fn at(base: usize, field: Field, label: &'static str, value: impl Into<String>) -> Self {
        Annotation {
            range: base + field.start..base + field.end,
            label,
            value: value.into(),
        }
    }

    /// `len` bytes at frame offset `at`, for fields whose place depends on the ones before.
    pub fn span(at: usize, len: usize, label: &'static str, value: impl Into<String>) -> Self {
        Self::at(at, 0..len, label, value)
    }
}

/// "a, b" or `empty` when no item is set.
pub(crate) fn flags(items: &[(bool, &'static str)], empty: &str) -> String {
    let set: Vec<&str> = items
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        empty.to_owned()
    } else {
        set.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::Annotation;
    use crate::wire::address::Address;
    use crate::wire::afl::{AflRepr, FragmentControl, KeyInfo, Mac, MessageControl};
    use crate::wire::compact::{CompactRepr, FormatFrameRepr};
    use crate::wire::ell::EllRepr;
    use crate::wire::link::{control, LinkHeader};
    use crate::wire::mbus::MbusLongFrame;
    use crate::wire::tpl::{ConfigField, Status, TplHeader, TplRepr};

    /// The annotations cover `base..base + len` once, in order, without gaps.
    fn assert_tiles(annotations: &[Annotation], base: usize, len: usize) {
        let mut next = base;
        for a in annotations {
            assert_eq!(a.range.start, next, "{a:?} in {annotations:?}");
            assert!(!a.value.is_empty() && !a.label.is_empty(), "{a:?}");
            next = a.range.end;
        }
        assert_eq!(next, base + len, "{annotations:?}");
    }

    fn label_at<'a>(annotations: &'a [Annotation], label: &str) -> &'a Annotation {
        let found = annotations.iter().find(|a| a.label == label);
        found.unwrap_or_else(|| panic!("no {label} in {annotations:?}"))
    }

    #[test]
    fn link_header_names_each_field() {
        let header = LinkHeader {
            length: 0x2E,
            control: control::SND_NR,
            address: Address {
                manufacturer: 0x1593,
                id: [0x78, 0x56, 0x34, 0x12],
                version: 0x33,
                device_type: 0x03,
            },
        };
        let mut out = Vec::new();
        header.emit(&mut out);
        let a = header.annotate();
        assert_tiles(&a, 0, out.len());
        assert_eq!(label_at(&a, "A: id").value, "meter id 12345678");
        assert_eq!(label_at(&a, "A: id").range, 4..8);
        assert!(label_at(&a, "C-field").value.contains("SND_NR"));
    }

    #[test]
    fn ell_variants_tile_their_bytes() {
        for (receiver, session) in [
            (None, None),
            (None, Some(0x0123_4567)),
            (Some((0x1234, [1, 2, 3, 4, 5, 6])), None),
            (Some((0x1234, [1, 2, 3, 4, 5, 6])), Some(7)),
        ] {
            let ell = EllRepr {
                ci: 0,
                communication_control: 0x20,
                access_number: 9,
                receiver,
                session_number: session,
                payload_crc: session.map(|_| 0xBEEF),
            };
            let mut out = Vec::new();
            ell.emit(&mut out);
            let (parsed, used) = EllRepr::parse(&out).unwrap();
            let a = parsed.annotate(12);
            assert_tiles(&a, 12, used);
            assert_eq!(a.iter().any(|a| a.label == "PayloadCRC"), session.is_some());
            assert_eq!(a.iter().any(|a| a.label == "A2"), receiver.is_some());
        }
    }

    #[test]
    fn afl_fields_follow_fcl_and_unknown_bytes_are_unused() {
        let afl = AflRepr {
            fragment_control: FragmentControl(0),
            message_control: Some(MessageControl(0x25)),
            key_info: Some(KeyInfo(0x0102)),
            message_counter: Some(2739),
            mac: Mac::new(&[0xAA; 8]),
            message_length: Some(40),
        };
        let mut out = Vec::new();
        afl.emit(&mut out);
        let (parsed, used) = AflRepr::parse(&out).unwrap();
        let a = parsed.annotate(10, used);
        assert_tiles(&a, 10, out.len());
        assert_eq!(label_at(&a, "MAC").range.len(), 8);
        // Two bytes inside AFLL no field describes.
        out[1] += 2;
        out.extend_from_slice(&[0, 0]);
        let (parsed, used) = AflRepr::parse(&out).unwrap();
        let a = parsed.annotate(0, used);
        assert_tiles(&a, 0, out.len());
        assert_eq!(a.last().map(|a| a.label), Some("unused"));
    }

    #[test]
    fn tpl_long_header_with_mode7_fields() {
        let repr = TplRepr {
            ci: 0x72,
            long_address: Some(Address {
                id: [0x78, 0x56, 0x34, 0x12],
                manufacturer: 0x1593,
                version: 1,
                device_type: 7,
            }),
            header: Some(TplHeader {
                access_number: 5,
                status: Status(0x04),
                // Mode 7, one block, Z (message counter) set; extension bit V: key version.
                config: ConfigField(0x2710),
                config_ext: Some(0x50),
                message_counter: Some(99),
                key_version: Some(3),
            }),
        };
        let mut out = Vec::new();
        repr.emit(&mut out);
        let (parsed, used) = TplRepr::parse(&out).unwrap();
        let a = parsed.annotate(20);
        assert_tiles(&a, 20, used);
        assert_eq!(label_at(&a, "id").range, 21..25);
        assert!(
            label_at(&a, "CF").value.contains("security mode 7"),
            "{a:?}"
        );
        assert!(label_at(&a, "STS").value.contains("power low"), "{a:?}");
        assert_eq!(label_at(&a, "MCR").range, 34..38);
        assert_eq!(label_at(&a, "key version").value, "key version 3");
    }

    #[test]
    fn compact_format_and_wired_frames_tile() {
        let data = [0x11, 0x22, 0x33];
        let compact = CompactRepr {
            signature: 0x1234,
            full_crc: 0x5678,
            data: &data,
        };
        let mut out = Vec::new();
        compact.emit(&mut out);
        assert_tiles(&CompactRepr::parse(&out).unwrap().annotate(3), 3, out.len());

        let headers = [0x04, 0x13, 0x02, 0x5A];
        let format = FormatFrameRepr {
            signature: 0x4321,
            headers: &headers,
        };
        let mut out = Vec::new();
        format.emit(&mut out).unwrap();
        assert_tiles(
            &FormatFrameRepr::parse(&out).unwrap().annotate(0),
            0,
            out.len(),
        );

        let frame = MbusLongFrame {
            control: 0x08,
            address: 5,
            ci: 0x78,
            data: &data,
        };
        let mut out = Vec::new();
        frame.emit(&mut out).unwrap();
        let a = MbusLongFrame::parse(&out).unwrap().0.annotate();
        let (head, tail): (Vec<_>, Vec<_>) = a.into_iter().partition(|a| a.range.start < 6);
        assert_tiles(&head, 0, 6);
        assert_tiles(&tail, out.len() - 2, 2);
        assert_eq!(label_at(&head, "A-field").value, "primary address 5");
    }
}
