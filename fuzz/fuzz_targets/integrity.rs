//! Issue 12's promise, fuzzed: a decoded reading implies every check of its bytes passed.
//!
//! Input: a control byte, then a frame body. The body becomes a canonical wireless frame
//! (L set to its length) sent in format A or B with correct CRCs as a receiver declares
//! it, or a wired long frame (`68 L L 68 C A CI data CS 16`). Then one bit, chosen by the
//! control byte and the body, is flipped. The intact frame decodes or not as it likes;
//! the damaged one must never become a reading — for the wired frame as long as it still
//! looks wired (a flipped start byte makes a wireless frame, which has no check of its
//! own when typed by hand).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wmbusd::decode::Decoder;
use wmbusd::frame::{CrcState, FrameFormat, RadioFrame};
use wmbusd::keys::KeyStore;
use wmbusd::wire::link::add_crc;
use wmbusd::wire::mbus::{looks_wired, MbusLongFrame};

fn decodes(bytes: Vec<u8>, crc: CrcState) -> bool {
    let frame = RadioFrame {
        crc,
        ..RadioFrame::new(bytes)
    };
    Decoder::new(KeyStore::new()).decode(&frame).is_ok()
}

fn flip(bytes: &mut [u8], selector: usize) {
    let len = bytes.len();
    if let Some(b) = bytes.get_mut(selector / 8 % len.max(1)) {
        *b ^= 1 << (selector % 8);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let selector = usize::from(control >> 2)
        .wrapping_mul(131)
        .wrapping_add(body.iter().map(|&b| usize::from(b)).sum::<usize>());
    match control & 3 {
        0 | 1 => {
            let format = if control & 1 == 0 { FrameFormat::A } else { FrameFormat::B };
            let mut canonical = vec![0u8];
            canonical.extend_from_slice(body);
            let Ok(l) = u8::try_from(canonical.len() - 1) else {
                return;
            };
            canonical[0] = l;
            let Ok(mut raw) = add_crc(&canonical, format) else {
                return;
            };
            // The intact frame is the CRC-free frame's twin.
            assert_eq!(
                decodes(raw.clone(), CrcState::Present(format)),
                decodes(canonical, CrcState::Checked(None)),
                "format {format:?}: CRCs changed the outcome"
            );
            flip(&mut raw, selector);
            assert!(
                !decodes(raw, CrcState::Present(format)),
                "format {format:?}: a damaged frame decoded"
            );
        }
        _ => {
            let Some((&ci, rest)) = body.split_first() else {
                return;
            };
            let mut raw = Vec::new();
            let long = MbusLongFrame {
                control: 0x08,
                address: control,
                ci,
                data: rest,
            };
            if long.emit(&mut raw).is_err() {
                return;
            }
            flip(&mut raw, selector);
            if looks_wired(&raw) {
                assert!(!decodes(raw, CrcState::Unknown), "a damaged wired frame decoded");
            }
        }
    }
});
