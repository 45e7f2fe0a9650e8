//! From received bytes to the canonical wireless frame, exactly once (protocol.md §1.2):
//! which DLL CRC layout the bytes carry, whether every block CRC holds, and where the
//! frame ends by its L-field.
//!
//! The receiver says what it delivered ([`CrcState`]); only hex typed by a person is
//! ambiguous. There a layout is chosen when one of its block CRCs matches, and a frame
//! in which any block CRC of a layout matches *is* of that layout: a failing block is
//! then a CRC error naming the block, never a fallback to "no CRCs". Two more damages
//! are recognised before reading the bytes as CRC-less: an input that verifies once its
//! L-field is taken as its length (a damaged L byte), and a one-block frame whose only
//! CRC fails by the syndrome of a single flipped bit (CRC-16 detects it; its syndromes
//! repeat every 151 bits, so the position is known up to that). Bytes after the frame's
//! end are counted, never parsed.

use super::crc::{crc16_en13757, en13757_single_bit_errors};
use super::link::{FrameFormat, HEADER_LEN};
use super::{Error, ErrorKind, Layer, Result};

const CRC_LEN: usize = 2;
/// Format A: data bytes per block after the 10-byte first block.
const A_BLOCK_LEN: usize = 16;
/// Format B: the first CRC sits at offsets 126..128 and covers bytes 0..126.
const B_FIRST_CRC_AT: usize = 126;
/// Format B: a frame of at most this many bytes (CRC included) has a single CRC.
const B_SINGLE_BLOCK_MAX: usize = 128;
/// Format A with L = 255: the header block and 16 data blocks.
const MAX_BLOCKS: usize = 17;

/// What the receiver says about a frame's DLL CRCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CrcState {
    /// Hex typed by a person, a receiver that does not say: the layout is found from the
    /// bytes (see the module documentation).
    #[default]
    Unknown,
    /// A replayed capture (a replay file): the layout is found from the bytes as for
    /// [`CrcState::Unknown`], but a frame no CRC contradicts is kept as it is. The
    /// single-bit inference (a one-block frame whose last two bytes are one bit away
    /// from its CRC) is left out: it refuses about 0.2 % of genuine CRC-less frames,
    /// which a person at `wmbusd decode` can re-run with `--crc none`, and a replayed
    /// month of readings cannot.
    Recorded,
    /// The receiver verified the DLL CRCs and removed them: the bytes are never searched
    /// for CRCs again (a valid frame may end in two bytes that look like one).
    Checked(Option<FrameFormat>),
    /// The DLL CRCs are still in the bytes, laid out as this format; they are checked here.
    Present(FrameFormat),
    /// The receiver checked the CRCs and reports that they failed (rtl-wmbus `CRC_OK=0`).
    Failed(Option<FrameFormat>),
}

impl CrcState {
    /// The layout is found from the bytes: a wired frame may hide among them too.
    pub fn is_guessed(self) -> bool {
        matches!(self, CrcState::Unknown | CrcState::Recorded)
    }
}

impl CrcState {
    /// Stable name, e.g. in the raw frames published for central decoding: `unknown`,
    /// `recorded`, `checked`, `present_a`, `present_b`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrcState::Unknown => "unknown",
            CrcState::Recorded => "recorded",
            CrcState::Checked(_) => "checked",
            CrcState::Present(FrameFormat::A) => "present_a",
            CrcState::Present(FrameFormat::B) => "present_b",
            CrcState::Failed(_) => "failed",
        }
    }

    /// The inverse of [`CrcState::as_str`] (the format of `checked`/`failed` is not kept).
    pub fn parse(text: &str) -> Option<CrcState> {
        Some(match text {
            "unknown" => CrcState::Unknown,
            "recorded" => CrcState::Recorded,
            "checked" => CrcState::Checked(None),
            "present_a" => CrcState::Present(FrameFormat::A),
            "present_b" => CrcState::Present(FrameFormat::B),
            "failed" => CrcState::Failed(None),
            _ => return None,
        })
    }
}

/// How [`canonicalize`] read a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Canonical {
    /// The CRC layout checked and removed here, if any.
    pub format: Option<FrameFormat>,
    /// The DLL CRCs were verified, here or by the receiver.
    pub crc_verified: bool,
    /// Bytes that arrived after the frame's end as its L-field bounds it.
    pub trailing: usize,
    /// Lenient mode only: the received L-field, rewritten to the length that arrived.
    pub original_length: Option<u8>,
}

/// One CRC-protected block: data `start..crc_at`, its CRC at `crc_at`.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    crc_at: usize,
    block: u8,
}

/// Where the blocks of a frame with a given L-field and format sit on air.
#[derive(Debug, Clone, Copy)]
struct Layout {
    format: FrameFormat,
    spans: [Span; MAX_BLOCKS],
    count: usize,
    on_air: usize,
}

impl Layout {
    fn new(format: FrameFormat, l: u8) -> Option<Layout> {
        let mut layout = Layout {
            format,
            spans: [Span::default(); MAX_BLOCKS],
            count: 0,
            on_air: 0,
        };
        let l = usize::from(l);
        match format {
            FrameFormat::A => {
                let mut rest = l.checked_sub(HEADER_LEN - 1)?;
                layout.push(0, HEADER_LEN);
                let mut at = HEADER_LEN + CRC_LEN;
                while rest > 0 {
                    let n = rest.min(A_BLOCK_LEN);
                    layout.push(at, at + n);
                    at += n + CRC_LEN;
                    rest -= n;
                }
                layout.on_air = at;
            }
            FrameFormat::B => {
                let total = l + 1;
                if total < HEADER_LEN + CRC_LEN {
                    return None;
                }
                if total <= B_SINGLE_BLOCK_MAX {
                    layout.push(0, total - CRC_LEN);
                } else if total > B_SINGLE_BLOCK_MAX + CRC_LEN {
                    layout.push(0, B_FIRST_CRC_AT);
                    layout.push(B_SINGLE_BLOCK_MAX, total - CRC_LEN);
                } else {
                    // 129 or 130 bytes would leave the third block without data.
                    return None;
                }
                layout.on_air = total;
            }
        }
        Some(layout)
    }

    fn push(&mut self, start: usize, crc_at: usize) {
        // Format B's CRCs belong to blocks 2 and 3 (block 1 is the header, unprotected
        // on its own); format A numbers from the header block.
        let first = match self.format {
            FrameFormat::A => 1,
            FrameFormat::B => 2,
        };
        if let Some(slot) = self.spans.get_mut(self.count) {
            *slot = Span {
                start,
                crc_at,
                block: first + self.count as u8,
            };
            self.count += 1;
        }
    }

    fn spans(&self) -> &[Span] {
        self.spans.get(..self.count).unwrap_or_default()
    }

    /// The check of one block, `None` when the bytes end before its CRC does.
    fn check(&self, raw: &[u8], span: &Span) -> Option<Result<()>> {
        let data = raw.get(span.start..span.crc_at)?;
        let stored = raw.get(span.crc_at..span.crc_at + CRC_LEN)?;
        let stored = u16::from_be_bytes([*stored.first()?, *stored.get(1)?]);
        let computed = crc16_en13757(data);
        Some(if stored == computed {
            Ok(())
        } else {
            Err(Error::new(
                Layer::Link,
                span.crc_at,
                ErrorKind::BlockCrc {
                    format: self.format,
                    block: span.block,
                    stored,
                    computed,
                },
            ))
        })
    }

    /// True when the CRC of at least one complete block in `raw` matches.
    fn any_block_matches(&self, raw: &[u8]) -> bool {
        self.spans()
            .iter()
            .any(|s| matches!(self.check(raw, s), Some(Ok(()))))
    }

    /// True when the bytes hold the whole layout and every block CRC matches.
    fn all_blocks_match(&self, raw: &[u8]) -> bool {
        raw.len() >= self.on_air
            && self
                .spans()
                .iter()
                .all(|s| matches!(self.check(raw, s), Some(Ok(()))))
    }

    /// A layout of one block (a format-B frame of at most 128 bytes, a format-A header
    /// block) whose CRC fails by a syndrome that one flipped bit explains. Single-bit
    /// syndromes take only min(8 * n, 151) values, so a genuine CRC-less frame of n bytes
    /// trips this by chance with probability min(8 * n, 151) / 65,536 (at most 0.23 %).
    fn single_bit_damage(&self, raw: &[u8]) -> Option<Error> {
        let [span] = self.spans() else {
            return None;
        };
        let data = raw.get(span.start..span.crc_at)?;
        let stored = raw.get(span.crc_at..span.crc_at + CRC_LEN)?;
        let stored = u16::from_be_bytes([*stored.first()?, *stored.get(1)?]);
        let len = span.crc_at + CRC_LEN - span.start;
        let syndrome = crc16_en13757(data) ^ stored;
        let mut found = en13757_single_bit_errors(syndrome, len);
        let (at, bit) = found.next()?;
        let byte = span.start + at;
        Some(Error::new(
            Layer::Link,
            byte,
            ErrorKind::BlockCrcBit {
                format: self.format,
                block: span.block,
                byte,
                bit,
                others: u8::try_from(found.count()).unwrap_or(u8::MAX),
            },
        ))
    }

    /// Checks every block and writes the canonical frame (L rewritten to exclude the
    /// CRCs) into `out`; returns the number of trailing bytes.
    fn strip(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        if raw.len() < self.on_air {
            return Err(Error::truncated(
                Layer::Link,
                raw.len(),
                self.on_air - raw.len(),
            ));
        }
        out.clear();
        for span in self.spans() {
            match self.check(raw, span) {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(Error::truncated(Layer::Link, raw.len(), CRC_LEN)),
            }
            out.extend_from_slice(raw.get(span.start..span.crc_at).unwrap_or_default());
        }
        let Ok(l) = u8::try_from(out.len().saturating_sub(1)) else {
            return Err(Error::invalid(Layer::Link, 0, "L-field (frame too long)"));
        };
        if let Some(first) = out.first_mut() {
            *first = l;
        }
        Ok(raw.len() - self.on_air)
    }
}

/// Writes the canonical frame of `raw` (L-field first, no DLL CRCs, exactly `L + 1`
/// bytes) into `out` and says how it was read. `lenient`: a frame without CRCs that is
/// longer than its L-field is kept whole with L rewritten (for hand-pasted hex with a
/// wrong L-field; the result says so).
pub fn canonicalize(
    raw: &[u8],
    state: CrcState,
    lenient: bool,
    out: &mut Vec<u8>,
) -> Result<Canonical> {
    out.clear();
    let Some(&l) = raw.first() else {
        return Err(Error::truncated(Layer::Link, 0, 1));
    };
    match state {
        CrcState::Checked(_) => {
            let mut c = bound(raw, l, lenient, out)?;
            c.crc_verified = true;
            Ok(c)
        }
        CrcState::Failed(format) => Err(Error::new(
            Layer::Link,
            0,
            ErrorKind::ReceiverCrc { format },
        )),
        CrcState::Present(format) => with_crcs(raw, format, l, out),
        CrcState::Unknown => guess(raw, l, lenient, true, out),
        CrcState::Recorded => guess(raw, l, lenient, false, out),
    }
}

/// Typed hex: the CRC layout is found from the bytes (see the module documentation).
fn guess(
    raw: &[u8],
    l: u8,
    lenient: bool,
    single_bits: bool,
    out: &mut Vec<u8>,
) -> Result<Canonical> {
    let layouts = [FrameFormat::A, FrameFormat::B].map(|f| Layout::new(f, l));
    // A layout that takes the whole input comes first: a damaged 16-byte format-A frame
    // (L = 11) must not pass as a 12-byte format-B frame, whose CRC sits where format
    // A's first CRC does, followed by four "trailing" bytes. Among those, one whose
    // every block verifies wins; then one with any matching block (its failing block is
    // the error).
    let whole: Vec<&Layout> = layouts
        .iter()
        .flatten()
        .filter(|layout| layout.on_air == raw.len())
        .collect();
    for layout in &whole {
        if layout.all_blocks_match(raw) {
            return with_crcs(raw, layout.format, l, out);
        }
    }
    for layout in &whole {
        if layout.any_block_matches(raw) {
            return with_crcs(raw, layout.format, l, out);
        }
    }
    // Then a frame followed by trailing bytes, every block verifying.
    for layout in layouts.iter().flatten() {
        if layout.all_blocks_match(raw) {
            return with_crcs(raw, layout.format, l, out);
        }
    }
    if let Some(e) = damaged_length(raw, l) {
        return Err(e);
    }
    for layout in layouts.iter().flatten() {
        // Format B's L counts its CRCs: only the bytes up to L can hold them.
        let window = match layout.format {
            FrameFormat::A => raw,
            FrameFormat::B => raw.get(..layout.on_air).unwrap_or(raw),
        };
        if layout.any_block_matches(window) {
            return with_crcs(raw, layout.format, l, out);
        }
    }
    for layout in layouts.iter().flatten().filter(|_| single_bits) {
        if let Some(e) = layout.single_bit_damage(raw) {
            return Err(e);
        }
    }
    bound(raw, l, lenient, out)
}

/// The input verifies as a whole frame of either format once its L-field is taken as
/// the input's length: only the L byte is wrong (a damaged L, not a shorter frame
/// followed by trailing bytes).
fn damaged_length(raw: &[u8], l: u8) -> Option<Error> {
    let mut fixed = Vec::new();
    for format in [FrameFormat::A, FrameFormat::B] {
        // The closed form first: building 510 layouts cost 30% of the daemon's CPU per
        // CRC-less replayed frame.
        for candidate in
            (0..=u8::MAX).filter(|&c| c != l && on_air_len(format, c) == Some(raw.len()))
        {
            let Some(layout) = Layout::new(format, candidate) else {
                continue;
            };
            if fixed.is_empty() {
                fixed = raw.to_vec();
            }
            *fixed.first_mut()? = candidate;
            if layout.all_blocks_match(&fixed) {
                return Some(Error::new(
                    Layer::Link,
                    0,
                    ErrorKind::LengthField {
                        stored: l,
                        verified: candidate,
                    },
                ));
            }
        }
    }
    None
}

/// [`Layout::new`]`(format, l).on_air` without building the layout.
fn on_air_len(format: FrameFormat, l: u8) -> Option<usize> {
    let l = usize::from(l);
    match format {
        FrameFormat::A => {
            let rest = l.checked_sub(HEADER_LEN - 1)?;
            Some(HEADER_LEN + CRC_LEN + rest + rest.div_ceil(A_BLOCK_LEN) * CRC_LEN)
        }
        FrameFormat::B => {
            let total = l + 1;
            let short = total < HEADER_LEN + CRC_LEN;
            let no_third_data = total > B_SINGLE_BLOCK_MAX && total <= B_SINGLE_BLOCK_MAX + CRC_LEN;
            (!short && !no_third_data).then_some(total)
        }
    }
}

fn with_crcs(raw: &[u8], format: FrameFormat, l: u8, out: &mut Vec<u8>) -> Result<Canonical> {
    let Some(layout) = Layout::new(format, l) else {
        return Err(Error::invalid(
            Layer::Link,
            0,
            "L-field (no block layout of this frame format has that length)",
        ));
    };
    let trailing = layout.strip(raw, out)?;
    Ok(Canonical {
        format: Some(format),
        crc_verified: true,
        trailing,
        original_length: None,
    })
}

/// A frame without DLL CRCs, bounded by its L-field.
fn bound(raw: &[u8], l: u8, lenient: bool, out: &mut Vec<u8>) -> Result<Canonical> {
    let announced = usize::from(l) + 1;
    let Some(frame) = raw.get(..announced) else {
        return Err(Error::truncated(
            Layer::Link,
            raw.len(),
            announced - raw.len(),
        ));
    };
    let extra = raw.len() - announced;
    if lenient && extra > 0 {
        let Ok(new_l) = u8::try_from(raw.len() - 1) else {
            return Err(Error::invalid(Layer::Link, 0, "L-field (frame too long)"));
        };
        out.extend_from_slice(raw);
        if let Some(first) = out.first_mut() {
            *first = new_l;
        }
        return Ok(Canonical {
            original_length: Some(l),
            ..Canonical::default()
        });
    }
    out.extend_from_slice(frame);
    Ok(Canonical {
        trailing: extra,
        ..Canonical::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::link::add_crc;
    use proptest::prelude::*;

    fn canonical(len: usize, seed: u8) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        f[0] = (len - 1) as u8;
        f[1] = 0x44;
        f
    }

    fn run(raw: &[u8], state: CrcState) -> Result<(Canonical, Vec<u8>)> {
        let mut out = Vec::new();
        canonicalize(raw, state, false, &mut out).map(|c| (c, out))
    }

    #[test]
    fn on_air_len_is_the_layouts() {
        for format in [FrameFormat::A, FrameFormat::B] {
            for l in 0..=u8::MAX {
                assert_eq!(
                    on_air_len(format, l),
                    Layout::new(format, l).map(|x| x.on_air),
                    "{format:?} L={l}"
                );
            }
        }
    }

    #[test]
    fn block_numbers_name_the_failing_block() {
        let canon = canonical(200, 7);
        let b = add_crc(&canon, FrameFormat::B).unwrap();
        let mut bad = b.clone();
        bad[150] ^= 0x10;
        let err = run(&bad, CrcState::Unknown).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::BlockCrc {
                    format: FrameFormat::B,
                    block: 3,
                    ..
                }
            ),
            "{err}"
        );
        let mut bad = b;
        bad[5] ^= 0x01;
        let err = run(&bad, CrcState::Unknown).unwrap_err();
        assert_eq!(
            err.kind.to_string().split(" (").next(),
            Some("CRC error in block 2 of format B")
        );

        let a = add_crc(&canon, FrameFormat::A).unwrap();
        let mut bad = a.clone();
        bad[30] ^= 0x01; // block 3: data 30..46 on air
        let err = run(&bad, CrcState::Unknown).unwrap_err();
        assert!(matches!(
            err.kind,
            ErrorKind::BlockCrc {
                format: FrameFormat::A,
                block: 3,
                ..
            }
        ));
        assert_eq!(err.offset, 46);
    }

    #[test]
    fn a_damaged_single_crc_is_located_not_read_as_crc_free() {
        let canon = canonical(47, 5);
        let b = add_crc(&canon, FrameFormat::B).unwrap();
        assert_eq!(b.len(), 49);
        for (at, bit) in [(1usize, 0u8), (20, 7), (46, 3), (47, 1), (48, 6)] {
            let mut bad = b.clone();
            bad[at] ^= 1 << bit;
            let err = run(&bad, CrcState::Unknown).unwrap_err();
            let ErrorKind::BlockCrcBit {
                format: FrameFormat::B,
                block: 2,
                byte,
                bit: first_bit,
                others,
            } = err.kind
            else {
                panic!("{err}");
            };
            // 49 bytes = 392 bits: the flip and up to two more positions 151 bits apart.
            let bits = |byte: usize, bit: u8| byte * 8 + 7 - usize::from(bit);
            let distance = bits(at, bit) - bits(byte, first_bit);
            assert_eq!(distance % 151, 0, "{err}");
            assert!(
                usize::from(others) >= distance / 151 && others <= 2,
                "{err}"
            );
            assert_eq!(err.offset, byte);
            let text = err.kind.to_string();
            assert!(text.starts_with("CRC error in block 2 of format B (one bit at byte"));
            assert!(text.contains("--crc none"), "{text}");
            // Declared CRC-less, the same bytes are a frame (the technician's way out).
            assert!(run(&bad, CrcState::Checked(None)).is_ok());
        }
        // Two flipped bits are not a single-bit syndrome: then nothing vouches for CRCs.
        let mut two = b.clone();
        two[10] ^= 0x01;
        two[30] ^= 0x80;
        let guessed = run(&two, CrcState::Unknown);
        assert!(guessed.is_err() || guessed.unwrap().0.format.is_none());
    }

    #[test]
    fn a_shrunk_l_field_is_a_damaged_l_not_trailing_bytes() {
        for format in [FrameFormat::A, FrameFormat::B] {
            let canon = canonical(60, 2);
            let raw = add_crc(&canon, format).unwrap();
            let mut bad = raw.clone();
            bad[0] ^= 0x04; // L shrinks by 4
            let err = run(&bad, CrcState::Unknown).unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::LengthField {
                    stored: raw[0] ^ 0x04,
                    verified: raw[0]
                },
                "{format:?}"
            );
            assert_eq!(
                err.kind.to_string(),
                format!(
                    "L-field damaged: 0x{:02X} but the CRCs verify for 0x{:02X}",
                    raw[0] ^ 0x04,
                    raw[0]
                )
            );
            // A grown L-field is named the same way (not only "truncated").
            let mut grown = raw.clone();
            grown[0] ^= 0x10;
            assert!(matches!(
                run(&grown, CrcState::Unknown).unwrap_err().kind,
                ErrorKind::LengthField { .. }
            ));
        }
        // A correct frame followed by bytes keeps its reading with the bytes counted.
        let canon = canonical(40, 8);
        let mut long = add_crc(&canon, FrameFormat::B).unwrap();
        long.extend_from_slice(&[1, 2, 3]);
        assert_eq!(run(&long, CrcState::Unknown).unwrap().0.trailing, 3);
    }

    #[test]
    fn checked_frames_are_never_stripped_again() {
        // A CRC-free frame whose last two bytes are a valid format-B CRC over the rest.
        let mut lookalike = canonical(40, 3);
        lookalike.truncate(38);
        lookalike[0] = 39;
        let crc = crc16_en13757(&lookalike);
        lookalike.extend_from_slice(&crc.to_be_bytes());
        let (c, out) = run(&lookalike, CrcState::Checked(None)).unwrap();
        assert_eq!((c.format, c.trailing, c.crc_verified), (None, 0, true));
        assert_eq!(out, lookalike);
        // Typed by hand, the same bytes are ambiguous and read as format B.
        let (c, out) = run(&lookalike, CrcState::Unknown).unwrap();
        assert_eq!(c.format, Some(FrameFormat::B));
        assert_eq!(out.len(), 38);
    }

    #[test]
    fn trailing_bytes_are_counted_not_kept() {
        let canon = canonical(47, 1);
        for (state, raw) in [
            (CrcState::Unknown, canon.clone()),
            (CrcState::Checked(None), canon.clone()),
            (
                CrcState::Present(FrameFormat::A),
                add_crc(&canon, FrameFormat::A).unwrap(),
            ),
            (
                CrcState::Present(FrameFormat::B),
                add_crc(&canon, FrameFormat::B).unwrap(),
            ),
        ] {
            let mut long = raw.clone();
            long.extend_from_slice(&[0xDE, 0x21, 0xFE]);
            let (c, out) = run(&long, state).unwrap();
            assert_eq!(c.trailing, 3, "{state:?}");
            assert_eq!(out, canon, "{state:?}");
            assert!(run(&raw[..raw.len() - 1], state).is_err(), "{state:?}");
        }
        let mut long = canon.clone();
        long.extend_from_slice(&[0xDE, 0x21, 0xFE]);
        let mut out = Vec::new();
        let c = canonicalize(&long, CrcState::Unknown, true, &mut out).unwrap();
        assert_eq!((c.original_length, c.trailing), (Some(46), 0));
        assert_eq!(out[0], 49);
        assert_eq!(out[1..], long[1..]);
    }

    #[test]
    fn crc_state_names_round_trip() {
        for state in [
            CrcState::Unknown,
            CrcState::Checked(None),
            CrcState::Present(FrameFormat::A),
            CrcState::Present(FrameFormat::B),
            CrcState::Failed(None),
        ] {
            assert_eq!(CrcState::parse(state.as_str()), Some(state));
        }
        assert_eq!(CrcState::parse("x"), None);
    }

    #[test]
    fn receiver_verdicts_are_final() {
        let canon = canonical(30, 9);
        let err = run(&canon, CrcState::Failed(Some(FrameFormat::A))).unwrap_err();
        assert_eq!(err.kind.name(), "crc");
        let a = add_crc(&canon, FrameFormat::A).unwrap();
        // Declared format B: the format-A CRCs do not fit, an error, not a guess.
        assert!(run(&a, CrcState::Present(FrameFormat::B)).is_err());
    }

    proptest! {
        /// One flipped bit anywhere in a CRC-protected frame is an error in both the
        /// declared and the guessed reading, never a frame.
        #[test]
        fn any_single_bit_damage_is_an_error(len in 12usize..=240, seed in any::<u8>(),
                                             b in any::<bool>(), at in any::<usize>(), bit in 0u8..8) {
            let canon = canonical(len, seed);
            let format = if b { FrameFormat::B } else { FrameFormat::A };
            let Ok(raw) = add_crc(&canon, format) else { return Ok(()) };
            let (c, out) = run(&raw, CrcState::Present(format)).unwrap();
            prop_assert_eq!(out, canon.clone());
            prop_assert_eq!(c.trailing, 0);
            let mut bad = raw.clone();
            let i = at % bad.len();
            bad[i] ^= 1 << bit;
            prop_assert!(run(&bad, CrcState::Present(format)).is_err());
            // Guessing: a frame whose other blocks still match keeps its format; a
            // one-block frame's failing CRC is located; a damaged L-field is named.
            let guessed = run(&bad, CrcState::Unknown);
            prop_assert!(guessed.is_err(), "{:?}", guessed);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), lenient in any::<bool>()) {
            let mut out = Vec::new();
            for state in [CrcState::Unknown, CrcState::Checked(None), CrcState::Present(FrameFormat::A),
                          CrcState::Present(FrameFormat::B), CrcState::Failed(None)] {
                let _ = canonicalize(&bytes, state, lenient, &mut out);
            }
        }
    }
}
