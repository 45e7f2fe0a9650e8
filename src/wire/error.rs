//! Errors of the pure protocol layers: which layer, which byte, what was wrong.

use std::fmt;

/// Protocol layer an error belongs to. Serialised in lower case in error JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Wireless data link layer (L, C, M, A, DLL CRCs) or wired M-Bus long frame.
    Link,
    /// Extended link layer (CI 0x8C..0x8F).
    Ell,
    /// Authentication and fragmentation layer (CI 0x90).
    Afl,
    /// Transport layer header (ACC, STS, CF).
    Tpl,
    /// Application layer: DIF/VIF data records.
    Apl,
    /// Compact frames (CI 0x79 and friends).
    Compact,
    /// Decryption and authentication.
    Security,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ell => "ell",
            Layer::Afl => "afl",
            Layer::Tpl => "tpl",
            Layer::Apl => "apl",
            Layer::Compact => "compact",
            Layer::Security => "security",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, independent of where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input ended before the layer did; `needed` more bytes were expected.
    Truncated { needed: usize },
    /// A CRC did not match.
    Crc { stored: u16, computed: u16 },
    /// A field holds a value the layer cannot accept.
    Invalid(&'static str),
    /// Well-formed, but a feature this decoder does not implement.
    Unsupported(&'static str),
    /// A DLL block CRC of a wireless frame did not match; `block` is numbered as
    /// EN 13757-4 numbers them (format A: 1 = header block; format B: 2 and 3).
    BlockCrc {
        format: super::link::FrameFormat,
        block: u8,
        stored: u16,
        computed: u16,
    },
    /// A wired M-Bus frame failed one of its own checks (start, both L bytes, stop
    /// byte, length): a damaged wired frame, never re-read as anything else.
    Damaged(&'static str),
    /// A wired M-Bus frame whose checksum does not match.
    Checksum { stored: u8, computed: u8 },
    /// The receiver checked the DLL CRCs itself and reports that they failed.
    ReceiverCrc {
        format: Option<super::link::FrameFormat>,
    },
    /// Typed hex whose only block CRC fails by a syndrome that one flipped bit explains:
    /// a damaged frame of that format. `byte` and `bit` give the first position that
    /// explains it; `others` more positions (151 bits apart) would explain it as well.
    BlockCrcBit {
        format: super::link::FrameFormat,
        block: u8,
        byte: usize,
        bit: u8,
        others: u8,
    },
    /// Typed hex whose CRCs all verify once the L-field is taken as the input's length:
    /// the L byte itself is damaged.
    LengthField { stored: u8, verified: u8 },
}

impl ErrorKind {
    /// Short machine-readable name used in error JSON (`"kind"`).
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Truncated { .. } => "truncated",
            ErrorKind::Crc { .. } => "crc",
            ErrorKind::Invalid(_) => "invalid",
            ErrorKind::Unsupported(_) => "unsupported",
            ErrorKind::BlockCrc { .. }
            | ErrorKind::Checksum { .. }
            | ErrorKind::ReceiverCrc { .. }
            | ErrorKind::BlockCrcBit { .. }
            | ErrorKind::LengthField { .. } => "crc",
            ErrorKind::Damaged(_) => "invalid",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Truncated { needed } => {
                write!(f, "truncated: {needed} more byte(s) expected")
            }
            ErrorKind::Crc { stored, computed } => {
                write!(
                    f,
                    "CRC mismatch: stored {stored:04X}, computed {computed:04X}"
                )
            }
            ErrorKind::Invalid(what) => write!(f, "invalid {what}"),
            ErrorKind::Unsupported(what) => write!(f, "unsupported {what}"),
            ErrorKind::BlockCrc {
                format,
                block,
                stored,
                computed,
            } => write!(
                f,
                "CRC error in block {block} of format {format:?} (stored {stored:04X}, computed {computed:04X})"
            ),
            ErrorKind::Damaged(what) => write!(f, "damaged wired frame: {what}"),
            ErrorKind::ReceiverCrc { format: Some(format) } => {
                write!(f, "CRC error of format {format:?} reported by the receiver")
            }
            ErrorKind::ReceiverCrc { format: None } => {
                write!(f, "CRC error reported by the receiver")
            }
            ErrorKind::BlockCrcBit {
                format,
                block,
                byte,
                bit,
                others,
            } => {
                write!(
                    f,
                    "CRC error in block {block} of format {format:?} (one bit at byte {byte}, bit {bit}"
                )?;
                if *others > 0 {
                    write!(f, ", or at {others} other place(s) 151 bits apart")?;
                }
                write!(f, "; if this hex truly carries no CRCs, pass --crc none)")
            }
            ErrorKind::LengthField { stored, verified } => write!(
                f,
                "L-field damaged: 0x{stored:02X} but the CRCs verify for 0x{verified:02X}"
            ),
            ErrorKind::Checksum { stored, computed } => write!(
                f,
                "damaged wired frame: checksum {stored:02X} does not match the sum {computed:02X}"
            ),
        }
    }
}

/// A parse error: the layer, the byte offset where it was detected, and the kind.
///
/// Offsets are relative to the slice the layer parser was given; callers that know
/// where that slice starts in the frame shift them with [`Error::shift`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{layer} layer, byte {offset}: {kind}")]
pub struct Error {
    pub layer: Layer,
    pub offset: usize,
    pub kind: ErrorKind,
}

impl Error {
    pub fn new(layer: Layer, offset: usize, kind: ErrorKind) -> Self {
        Error {
            layer,
            offset,
            kind,
        }
    }

    pub fn truncated(layer: Layer, offset: usize, needed: usize) -> Self {
        Error::new(layer, offset, ErrorKind::Truncated { needed })
    }

    pub fn invalid(layer: Layer, offset: usize, what: &'static str) -> Self {
        Error::new(layer, offset, ErrorKind::Invalid(what))
    }

    pub fn unsupported(layer: Layer, offset: usize, what: &'static str) -> Self {
        Error::new(layer, offset, ErrorKind::Unsupported(what))
    }

    /// Re-bases the offset when the failing slice started `base` bytes into the frame.
    pub fn shift(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }
}

pub type Result<T> = core::result::Result<T, Error>;
