//! Data field decoding: integers, BCD, real, dates and LVAR (EN 13757-3 Annex A,
//! protocol.md §5.5, §5.10).

use std::fmt;

use super::decimal::Decimal;
use super::dib::DataField;
use super::vib::{Kind, Meaning};

/// Decoded value of a record, in the unit of its [`Meaning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Data field 0x0 (no data) or 0x8 (readout selection).
    NoData,
    /// The meter marked the value invalid (BCD with hex digits, most negative signed
    /// integer, date IV bit or out-of-range fields, NaN real), or scaling overflowed.
    Invalid,
    /// Exact number: raw value × VIF scale (+ additive correction).
    Number(Decimal),
    /// Bit field (type D), bit 0 = LSB of the first data byte.
    Bits(u64),
    Date(Date),
    Time(Time),
    DateTime(DateTime),
    /// LVAR text, put back in reading order (on air it is last character first).
    /// Bytes map to characters as ISO 8859-1.
    Text(String),
    /// Binary data without numeric meaning here (LVAR binary, type M/K/L, odd date
    /// lengths); the bytes are the record's `data`.
    Binary,
}

impl Value {
    pub fn as_decimal(&self) -> Option<Decimal> {
        match *self {
            Value::Number(d) => Some(d),
            Value::Bits(b) => Some(Decimal::from(b)),
            _ => None,
        }
    }
}

/// Calendar date; `None` fields are "every" (periodic dates such as a yearly set day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    pub year: Option<u16>,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

/// Time of day; `None` fields are "every". `has_seconds` is false for type F (minute
/// resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    pub hour: Option<u8>,
    pub minute: Option<u8>,
    pub second: Option<u8>,
    pub has_seconds: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateTime {
    pub date: Date,
    pub time: Time,
    /// SU bit (type F) / DST bit (type I).
    pub summer_time: bool,
}

/// ISO text assembled on the stack and appended to the `String` in one step: pushing
/// character by character checks the string's capacity at every character, and dates
/// are on the per-telegram hot path.
struct IsoText {
    bytes: [u8; 32],
    len: usize,
}

impl IsoText {
    fn new() -> Self {
        IsoText {
            bytes: [0; 32],
            len: 0,
        }
    }

    /// Appends one ASCII byte. The longest text (`65535-255-255T255:255:255`, every
    /// field at its type's maximum) is 25 bytes, so the buffer never fills.
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Appends `value` with at least `width` digits (zero-padded, as `{:0width$}`), or
    /// `width` `X`s for "every" (ISO 8601-2 unspecified digits).
    fn field(&mut self, value: Option<u16>, width: usize) {
        let Some(mut v) = value else {
            (0..width).for_each(|_| self.push(b'X'));
            return;
        };
        let mut digits = [b'0'; 5];
        let mut n = 0;
        for slot in digits.iter_mut().rev() {
            // `v % 10` < 10: an ASCII digit.
            *slot = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        (n..width).for_each(|_| self.push(b'0'));
        for &d in digits.get(digits.len() - n..).unwrap_or_default() {
            self.push(d);
        }
    }

    fn date(&mut self, d: &Date) {
        self.field(d.year, 4);
        self.push(b'-');
        self.field(d.month.map(u16::from), 2);
        self.push(b'-');
        self.field(d.day.map(u16::from), 2);
    }

    fn time(&mut self, t: &Time) {
        self.field(t.hour.map(u16::from), 2);
        self.push(b':');
        self.field(t.minute.map(u16::from), 2);
        if t.has_seconds {
            self.push(b':');
            self.field(t.second.map(u16::from), 2);
        }
    }

    fn append_to(&self, out: &mut String) {
        // Only ASCII digits, `X`, `-`, `:` and `T` were pushed: always valid UTF-8.
        let text = self.bytes.get(..self.len).unwrap_or_default();
        out.push_str(std::str::from_utf8(text).unwrap_or_default());
    }
}

impl Date {
    /// Appends ISO 8601 `2008-05-31`; "every" fields as `X` digits (`XXXX-01-01`).
    pub fn push_iso(&self, out: &mut String) {
        let mut text = IsoText::new();
        text.date(self);
        text.append_to(out);
    }
}

impl Time {
    /// Appends ISO 8601 `23:50` or `23:50:07`.
    pub fn push_iso(&self, out: &mut String) {
        let mut text = IsoText::new();
        text.time(self);
        text.append_to(out);
    }
}

impl DateTime {
    /// Appends ISO 8601 `2008-05-31T23:50` (local meter time; no zone on air).
    pub fn push_iso(&self, out: &mut String) {
        let mut text = IsoText::new();
        text.date(&self.date);
        text.push(b'T');
        text.time(&self.time);
        text.append_to(out);
    }
}

/// Longest ISO text of a date and time with seconds (`2008-05-31T23:50:07`).
const ISO_CAPACITY: usize = 19;

/// ISO 8601 `2008-05-31`; "every" fields as `X` digits (`XXXX-01-01`).
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(ISO_CAPACITY);
        self.push_iso(&mut s);
        f.write_str(&s)
    }
}

/// ISO 8601 `23:50` or `23:50:07`.
impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(ISO_CAPACITY);
        self.push_iso(&mut s);
        f.write_str(&s)
    }
}

/// ISO 8601 `2008-05-31T23:50` (local meter time; no zone on air).
impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(ISO_CAPACITY);
        self.push_iso(&mut s);
        f.write_str(&s)
    }
}

/// A bounded field: `every` → `None`, in range → `Some`, otherwise invalid (`Err`).
fn bounded(v: u8, min: u8, max: u8, every: u8) -> Result<Option<u8>, ()> {
    if v == every {
        Ok(None)
    } else if (min..=max).contains(&v) {
        Ok(Some(v))
    } else {
        Err(())
    }
}

fn year(yy: u8, hundred_years: Option<u8>) -> Result<Option<u16>, ()> {
    let Some(yy) = bounded(yy, 0, 99, 127)? else {
        return Ok(None);
    };
    let yy = u16::from(yy);
    // EN 13757-3 Table A.5 compatibility rule: HY = 0 and yy ≤ 80 means 20yy.
    Ok(Some(match hundred_years.unwrap_or(0) {
        0 if yy <= 80 => 2000 + yy,
        0 => 1900 + yy,
        hy => 1900 + 100 * u16::from(hy) + yy,
    }))
}

fn date(day: u8, month: u8, yy: u8, hundred_years: Option<u8>) -> Result<Date, ()> {
    Ok(Date {
        year: year(yy, hundred_years)?,
        month: bounded(month, 1, 12, 15)?,
        day: bounded(day, 1, 31, 0)?,
    })
}

/// Type G, 16-bit date.
pub fn type_g(b: [u8; 2]) -> Value {
    if b == [0xFF, 0xFF] {
        return Value::Invalid;
    }
    let yy = (b[0] >> 5) | ((b[1] & 0xF0) >> 1);
    date(b[0] & 0x1F, b[1] & 0x0F, yy, None).map_or(Value::Invalid, Value::Date)
}

/// Type F, 32-bit date and time (minute resolution).
pub fn type_f(b: [u8; 4]) -> Value {
    if b[0] & 0x80 != 0 {
        return Value::Invalid;
    }
    let yy = (b[2] >> 5) | ((b[3] & 0xF0) >> 1);
    let hy = (b[1] >> 5) & 0x03;
    let parsed = (|| {
        Ok::<_, ()>(DateTime {
            date: date(b[2] & 0x1F, b[3] & 0x0F, yy, Some(hy))?,
            time: Time {
                hour: bounded(b[1] & 0x1F, 0, 23, 31)?,
                minute: bounded(b[0] & 0x3F, 0, 59, 63)?,
                second: None,
                has_seconds: false,
            },
            summer_time: b[1] & 0x80 != 0,
        })
    })();
    parsed.map_or(Value::Invalid, Value::DateTime)
}

/// Type I, 48-bit date and time with seconds.
pub fn type_i(b: [u8; 6]) -> Value {
    if b[1] & 0x80 != 0 {
        return Value::Invalid;
    }
    let yy = (b[3] >> 5) | ((b[4] & 0xF0) >> 1);
    let parsed = (|| {
        Ok::<_, ()>(DateTime {
            date: date(b[3] & 0x1F, b[4] & 0x0F, yy, None)?,
            time: Time {
                hour: bounded(b[2] & 0x1F, 0, 23, 31)?,
                minute: bounded(b[1] & 0x3F, 0, 59, 63)?,
                second: bounded(b[0] & 0x3F, 0, 59, 63)?,
                has_seconds: true,
            },
            summer_time: b[0] & 0x40 != 0,
        })
    })();
    parsed.map_or(Value::Invalid, Value::DateTime)
}

/// Type J, 24-bit time of day.
pub fn type_j(b: [u8; 3]) -> Value {
    let parsed = (|| {
        Ok::<_, ()>(Time {
            hour: bounded(b[2] & 0x1F, 0, 23, 31)?,
            minute: bounded(b[1] & 0x3F, 0, 59, 63)?,
            second: bounded(b[0] & 0x3F, 0, 59, 63)?,
            has_seconds: true,
        })
    })();
    parsed.map_or(Value::Invalid, Value::Time)
}

/// Little-endian unsigned integer of up to 8 bytes.
pub fn le_unsigned(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Little-endian two's-complement integer of 1..=8 bytes; `None` for the most
/// negative value, which marks an invalid reading (Annex A).
pub fn le_signed(data: &[u8]) -> Option<i64> {
    let len = data.len().clamp(1, 8) as u32;
    let shift = 64 - 8 * len;
    let value = ((le_unsigned(data) << shift) as i64) >> shift;
    let min = i64::MIN >> shift;
    (value != min).then_some(value)
}

/// Type A BCD, least significant digit pair first. A top nibble 0xF makes the value
/// negative; any other non-decimal nibble makes it invalid (`None`).
pub fn bcd(data: &[u8]) -> Option<i128> {
    let mut value: i128 = 0;
    let mut negative = false;
    for (i, &byte) in data.iter().rev().enumerate() {
        for (j, nibble) in [byte >> 4, byte & 0x0F].into_iter().enumerate() {
            let digit = if nibble <= 9 {
                nibble
            } else if nibble == 0x0F && i == 0 && j == 0 {
                negative = true;
                0
            } else {
                return None;
            };
            value = value.checked_mul(10)?.checked_add(i128::from(digit))?;
        }
    }
    Some(if negative { -value } else { value })
}

fn scaled(raw: Decimal, meaning: &Meaning) -> Value {
    let value = raw
        .checked_mul(meaning.scale)
        .and_then(|v| match meaning.offset {
            Some(offset) => v.checked_add(offset),
            None => Some(v),
        });
    value.map_or(Value::Invalid, Value::Number)
}

fn date_by_length(data: &[u8]) -> Value {
    if let Ok(b) = <[u8; 2]>::try_from(data) {
        type_g(b)
    } else if let Ok(b) = <[u8; 3]>::try_from(data) {
        type_j(b)
    } else if let Ok(b) = <[u8; 4]>::try_from(data) {
        type_f(b)
    } else if let Ok(b) = <[u8; 6]>::try_from(data) {
        type_i(b)
    } else {
        Value::Binary
    }
}

/// Decodes a record's data field. `data` excludes the LVAR byte, which is `lvar`.
pub fn decode(data_field: DataField, lvar: Option<u8>, data: &[u8], meaning: &Meaning) -> Value {
    match data_field {
        DataField::NoData | DataField::Selection => Value::NoData,
        _ if meaning.kind == Kind::Binary => Value::Binary,
        DataField::Integer(_) => match meaning.kind {
            Kind::DateTime => date_by_length(data),
            Kind::Bits => Value::Bits(le_unsigned(data)),
            Kind::Unsigned | Kind::Binary => scaled(Decimal::from(le_unsigned(data)), meaning),
            Kind::Signed => match le_signed(data) {
                Some(v) => scaled(Decimal::from(v), meaning),
                None => Value::Invalid,
            },
        },
        DataField::Real32 => {
            let Ok(bytes) = <[u8; 4]>::try_from(data) else {
                return Value::Invalid;
            };
            match Decimal::from_f32(f32::from_le_bytes(bytes)) {
                Some(d) => scaled(d, meaning),
                None => Value::Invalid,
            }
        }
        DataField::Bcd(_) => match bcd(data) {
            Some(v) => scaled(Decimal::from_int(v), meaning),
            None => Value::Invalid,
        },
        DataField::Variable => match lvar {
            Some(0x00..=0xBF) => Value::Text(data.iter().rev().map(|&b| char::from(b)).collect()),
            Some(0xC0..=0xC9) => {
                bcd(data).map_or(Value::Invalid, |v| scaled(Decimal::from_int(v), meaning))
            }
            Some(0xD0..=0xD9) => {
                bcd(data).map_or(Value::Invalid, |v| scaled(Decimal::from_int(-v), meaning))
            }
            _ => Value::Binary,
        },
    }
}

impl fmt::Display for Value {
    /// Human-readable form used by tests and `--explain`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::NoData => f.write_str("no data"),
            Value::Invalid => f.write_str("invalid"),
            Value::Number(d) => write!(f, "{d}"),
            Value::Bits(b) => write!(f, "0x{b:X}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::DateTime(dt) => write!(f, "{dt}"),
            Value::Text(s) => f.write_str(s),
            Value::Binary => f.write_str("binary"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_fields_pad_and_overflow_like_format_width() {
        let d = |year| Date {
            year: Some(year),
            month: Some(3),
            day: None,
        };
        assert_eq!(d(5).to_string(), format!("{:04}-03-XX", 5));
        assert_eq!(d(12345).to_string(), format!("{:04}-03-XX", 12345));
        let t = Time {
            hour: Some(7),
            minute: None,
            second: Some(9),
            has_seconds: true,
        };
        assert_eq!(t.to_string(), "07:XX:09");
    }

    #[test]
    fn type_f_vectors() {
        assert_eq!(
            type_f([0x32, 0x37, 0x1F, 0x15]).to_string(),
            "2008-05-31T23:50"
        );
        assert_eq!(
            type_f([0x19, 0x12, 0xA6, 0x2B]).to_string(),
            "2021-11-06T18:25"
        );
        assert_eq!(
            type_f([0x3A, 0x2A, 0x28, 0x3C]).to_string(),
            "2025-12-08T10:58"
        );
        // IV bit set.
        assert_eq!(type_f([0xB2, 0x37, 0x1F, 0x15]), Value::Invalid);
        // Minute 60 is out of range.
        assert_eq!(type_f([0x3C, 0x37, 0x1F, 0x15]), Value::Invalid);
    }

    #[test]
    fn year_rules() {
        // HY 0, yy 81 → 1981; HY 0, yy 80 → 2080.
        let g = |yy: u8| type_g([((yy & 7) << 5) | 1, ((yy >> 3) << 4) | 1]);
        assert_eq!(g(81).to_string(), "1981-01-01");
        assert_eq!(g(80).to_string(), "2080-01-01");
        assert_eq!(g(127).to_string(), "XXXX-01-01");
        assert_eq!(g(100), Value::Invalid);
        // Type F with HY 2 and yy 5 → 2105.
        let f = type_f([0x00, 0x40, 0xA1, 0x01]);
        assert_eq!(f.to_string(), "2105-01-01T00:00");
    }

    #[test]
    fn type_g_vectors() {
        assert_eq!(type_g([0x1F, 0x3C]).to_string(), "2024-12-31");
        assert_eq!(type_g([0xE1, 0xF1]).to_string(), "XXXX-01-01");
        assert_eq!(type_g([0xFF, 0xFF]), Value::Invalid);
        assert_eq!(type_g([0x01, 0x0D]), Value::Invalid);
    }

    #[test]
    fn type_i_and_j() {
        // 2021-11-06 18:25:07: sec 7, min 25, hour 18 (weekday bits set), day 6 yl 5, month 11 yh 2.
        assert_eq!(
            type_i([0x07, 0x19, 0xD2, 0xA6, 0x2B, 0x00]).to_string(),
            "2021-11-06T18:25:07"
        );
        assert_eq!(type_i([0x07, 0x99, 0x12, 0xA6, 0x2B, 0x00]), Value::Invalid);
        assert_eq!(type_j([0x3B, 0x3B, 0x17]).to_string(), "23:59:59");
        assert_eq!(type_j([0x3F, 0x3F, 0x1F]).to_string(), "XX:XX:XX");
        assert_eq!(type_j([0x3C, 0x00, 0x00]), Value::Invalid);
    }

    #[test]
    fn bcd_rules() {
        assert_eq!(bcd(&[0x23, 0xF1]), Some(-123));
        assert_eq!(bcd(&[0x27, 0x04, 0x85, 0x02]), Some(2850427));
        assert_eq!(bcd(&[0xFF, 0xFF]), None);
        assert_eq!(bcd(&[0x2A, 0x01]), None);
        assert_eq!(bcd(&[0xF1, 0x01]), None);
        assert_eq!(bcd(&[0x75, 0x06, 0, 0, 0, 0]), Some(675));
    }

    #[test]
    fn signed_integers() {
        assert_eq!(le_signed(&[0xFF]), Some(-1));
        assert_eq!(le_signed(&[0x80]), None);
        assert_eq!(le_signed(&[0x00, 0x80]), None);
        assert_eq!(le_signed(&[0x01, 0x80]), Some(-32767));
        assert_eq!(le_signed(&[0xFF, 0xFF, 0x7F]), Some(0x7FFFFF));
        assert_eq!(le_signed(&[0, 0, 0, 0, 0, 0, 0, 0x80]), None);
        assert_eq!(le_unsigned(&[0x05, 0x01, 0x00]), 0x105);
    }
}
