//! Exact decimal numbers: `mantissa × 10^exponent`.
//!
//! Meter values are integers scaled by powers of ten. Multiplying them out in `f64`
//! prints `123.45600000000002`; keeping mantissa and exponent apart and only producing
//! a float from the exact decimal text gives the shortest round-trip form (`123.456`).

use std::fmt::{self, Write as _};
use std::str::FromStr;

/// An exact decimal number `mantissa × 10^exponent`.
///
/// Equality compares numeric values (`1.50 == 1.5`), independent of the representation.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    exponent: i32,
}

/// Largest exponent shift applied at once; beyond it an `i128` overflows anyway.
const MAX_SHIFT: i32 = 38;

impl Decimal {
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        exponent: 0,
    };

    pub const fn new(mantissa: i128, exponent: i32) -> Self {
        Decimal { mantissa, exponent }
    }

    pub const fn from_int(value: i128) -> Self {
        Decimal {
            mantissa: value,
            exponent: 0,
        }
    }

    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// Same value with trailing zeros of the mantissa moved into the exponent.
    pub fn normalized(self) -> Self {
        if self.mantissa == 0 {
            return Decimal::ZERO;
        }
        // Most values fit 64 bits, where division is one instruction, not a library call.
        if let Ok(mut m) = i64::try_from(self.mantissa) {
            let mut e = self.exponent;
            while m % 10 == 0 {
                match e.checked_add(1) {
                    Some(next) => {
                        m /= 10;
                        e = next;
                    }
                    None => break,
                }
            }
            return Decimal {
                mantissa: m.into(),
                exponent: e,
            };
        }
        let mut d = self;
        while d.mantissa % 10 == 0 {
            match d.exponent.checked_add(1) {
                Some(e) => {
                    d.mantissa /= 10;
                    d.exponent = e;
                }
                None => break,
            }
        }
        d
    }

    /// Product of two decimals, `None` on overflow.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            exponent: self.exponent.checked_add(other.exponent)?,
        })
    }

    /// Sum of two decimals (exponents aligned exactly), `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let (hi, lo) = if self.exponent >= other.exponent {
            (self, other)
        } else {
            (other, self)
        };
        let shift = hi.exponent.checked_sub(lo.exponent)?;
        let scaled = hi.mantissa.checked_mul(pow10(shift)?)?;
        Some(Decimal {
            mantissa: scaled.checked_add(lo.mantissa)?,
            exponent: lo.exponent,
        })
    }

    /// Multiplies by 10^`by`.
    pub fn scaled(self, by: i32) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa,
            exponent: self.exponent.checked_add(by)?,
        })
    }

    /// The value as an integer, when it is one and fits.
    pub fn to_i128(self) -> Option<i128> {
        let d = self.normalized();
        if d.exponent < 0 {
            return None;
        }
        d.mantissa.checked_mul(pow10(d.exponent)?)
    }

    /// Nearest `f64`: correctly rounded, as parsing the exact decimal text would give.
    pub fn to_f64(self) -> f64 {
        // Fast path (Clinger): when the mantissa and the power of ten are both exact in
        // an f64, one IEEE multiplication or division rounds correctly. Meter values
        // always take it.
        if self.mantissa.unsigned_abs() <= F64_EXACT_INT {
            let power = usize::try_from(self.exponent.unsigned_abs())
                .ok()
                .and_then(|e| F64_POW10.get(e));
            if let Some(&power) = power {
                let m = self.mantissa as f64;
                return if self.exponent >= 0 {
                    m * power
                } else {
                    m / power
                };
            }
        }
        let mut buf = StackString::new();
        if write!(buf, "{self}").is_err() {
            // Only absurd exponents overflow the buffer; go through the slow path.
            return self.mantissa as f64 * 10f64.powi(self.exponent);
        }
        buf.as_str().parse().unwrap_or(f64::NAN)
    }

    /// Exact decimal form of an `f32` (its shortest round-trip text), `None` for NaN/inf
    /// or values whose digits do not fit.
    pub fn from_f32(value: f32) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        let mut buf = StackString::new();
        write!(buf, "{value}").ok()?;
        buf.as_str().parse().ok()
    }

    /// Exact decimal form of an `f64` (its shortest round-trip text).
    pub fn from_f64(value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        // Scientific form ("4.2535296e38"): the shortest round-trip digits and a power of
        // ten, so huge and tiny values keep a small mantissa instead of overflowing it.
        let text = format!("{value:e}");
        let (digits, exp) = text.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let (sign, digits) = match digits.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, digits),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
        let frac_len = i32::try_from(frac.len()).ok()?;
        Some(Decimal::new(sign * mantissa, exp.checked_sub(frac_len)?))
    }
}

/// Largest integer magnitude up to which every integer is exact in an `f64` (2^53).
const F64_EXACT_INT: u128 = 1 << 53;

/// The powers of ten that are exact in an `f64` (10^22 is the last).
const F64_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The value as an `i64` when it is an integer that fits, using 64-bit arithmetic only
/// (i128 division is a library call); `None` means "ask the general path".
fn small_integer(d: &Decimal) -> Option<i64> {
    let m = i64::try_from(d.mantissa).ok()?;
    let p = 10i64.checked_pow(d.exponent.unsigned_abs())?;
    if d.exponent >= 0 {
        m.checked_mul(p)
    } else if m % p == 0 {
        Some(m / p)
    } else {
        None
    }
}

fn pow10(exp: i32) -> Option<i128> {
    if !(0..=MAX_SHIFT).contains(&exp) {
        return None;
    }
    10i128.checked_pow(exp as u32)
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let a = self.normalized();
        let b = other.normalized();
        a.mantissa == b.mantissa && a.exponent == b.exponent
    }
}

impl Eq for Decimal {}

impl From<i64> for Decimal {
    fn from(v: i64) -> Self {
        Decimal::from_int(v.into())
    }
}

impl From<u64> for Decimal {
    fn from(v: u64) -> Self {
        Decimal::from_int(v.into())
    }
}

/// Plain decimal notation without exponent and without trailing fraction zeros:
/// `-0.0015`, `28504.27`, `1200`. (Exponents above 40, which no meter produces, are
/// written as `1e41` to keep the output bounded.)
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.mantissa.unsigned_abs();
        let mut buf = StackString::new();
        // u64 formatting is much cheaper than u128 and covers every meter value.
        match u64::try_from(abs) {
            Ok(v) => write!(buf, "{v}")?,
            Err(_) => write!(buf, "{abs}")?,
        }
        let digits = buf.as_str();
        if abs == 0 {
            return f.write_str("0");
        }
        if self.mantissa < 0 {
            f.write_char('-')?;
        }
        if self.exponent >= 0 {
            f.write_str(digits)?;
            if self.exponent > 40 {
                return write!(f, "e{}", self.exponent);
            }
            return (0..self.exponent).try_for_each(|_| f.write_char('0'));
        }
        let frac_len = self.exponent.unsigned_abs() as usize;
        let trailing_zeros = digits.bytes().rev().take_while(|&b| b == b'0').count();
        let cut = trailing_zeros.min(frac_len);
        let digits = digits.get(..digits.len() - cut).unwrap_or(digits);
        let frac_len = frac_len - cut;
        if frac_len == 0 {
            f.write_str(digits)
        } else if digits.len() > frac_len {
            let (int, fraction) = digits.split_at(digits.len() - frac_len);
            write!(f, "{int}.{fraction}")
        } else {
            f.write_str("0.")?;
            (0..frac_len - digits.len()).try_for_each(|_| f.write_char('0'))?;
            f.write_str(digits)
        }
    }
}

/// Error parsing a decimal from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decimal number")]
pub struct ParseDecimalError;

/// Accepts `-?digits(.digits)?`, the output of `Display` (and of Rust's float `Display`).
impl FromStr for Decimal {
    type Err = ParseDecimalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(ParseDecimalError);
        }
        let mut mantissa: i128 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            if !c.is_ascii_digit() {
                return Err(ParseDecimalError);
            }
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(c - b'0')))
                .ok_or(ParseDecimalError)?;
        }
        let exponent = i32::try_from(frac.len())
            .map_err(|_| ParseDecimalError)?
            .checked_neg()
            .ok_or(ParseDecimalError)?;
        Ok(Decimal {
            mantissa: if negative { -mantissa } else { mantissa },
            exponent,
        })
    }
}

/// Serialises as a JSON number: integers as integers, fractions as the `f64` nearest to
/// the exact decimal, which JSON writers print in shortest form (`123.456`).
impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(v) = small_integer(self) {
            return serializer.serialize_i64(v);
        }
        let integer = if self.exponent >= 0 {
            pow10(self.exponent).and_then(|p| self.mantissa.checked_mul(p))
        } else {
            pow10(-self.exponent)
                .filter(|p| self.mantissa % p == 0)
                .map(|p| self.mantissa / p)
        };
        if let Some(v) = integer {
            if let Ok(v) = i64::try_from(v) {
                return serializer.serialize_i64(v);
            }
            if let Ok(v) = u64::try_from(v) {
                return serializer.serialize_u64(v);
            }
        }
        serializer.serialize_f64(self.to_f64())
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// Accepts JSON numbers only: a string stays text in `reading::Value`.
struct DecimalVisitor;

impl serde::de::Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
        Decimal::from_f64(v).ok_or_else(|| E::custom("number out of decimal range"))
    }
}

/// Fixed-capacity text buffer so formatting on the hot path does not allocate.
struct StackString {
    buf: [u8; 128],
    len: usize,
}

impl StackString {
    fn new() -> Self {
        StackString {
            buf: [0; 128],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the prefix is valid UTF-8.
        self.buf
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Write for StackString {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_f64_keeps_huge_and_tiny_values() {
        let huge = super::Decimal::from_f64(4.2535296e38).unwrap();
        assert_eq!(huge.to_f64(), 4.2535296e38);
        let tiny = super::Decimal::from_f64(-1.5e-40).unwrap();
        assert_eq!(tiny.to_f64(), -1.5e-40);
        assert_eq!(
            super::Decimal::from_f64(123.456).unwrap().to_string(),
            "123.456"
        );
        assert_eq!(super::Decimal::from_f64(f64::NAN), None);
    }

    use super::*;

    #[test]
    fn display_is_exact() {
        assert_eq!(Decimal::new(123456, -3).to_string(), "123.456");
        assert_eq!(Decimal::new(2850427, -2).to_string(), "28504.27");
        assert_eq!(Decimal::new(-15, -4).to_string(), "-0.0015");
        assert_eq!(Decimal::new(12, 2).to_string(), "1200");
        assert_eq!(Decimal::new(1000, -3).to_string(), "1");
        assert_eq!(Decimal::new(0, -3).to_string(), "0");
        assert_eq!(Decimal::new(1, -3).to_string(), "0.001");
        assert_eq!(Decimal::new(120, -1).to_string(), "12");
        assert_eq!(Decimal::new(1200, -3).to_string(), "1.2");
        assert_eq!(
            Decimal::new(i128::MIN, 0).to_string(),
            i128::MIN.to_string()
        );
    }

    #[test]
    fn json_prints_shortest_exact_form() {
        let j = |m, e| serde_json::to_string(&Decimal::new(m, e)).unwrap();
        assert_eq!(j(123456, -3), "123.456");
        assert_eq!(j(2850427, -2), "28504.27");
        assert_eq!(j(1348631, -3), "1348.631");
        assert_eq!(j(9341, 0), "9341");
        assert_eq!(j(1000, -3), "1");
        assert_eq!(j(25, 3), "25000");
        assert_eq!(j(-123, 0), "-123");
        assert_eq!(j(1, -1), "0.1");
    }

    #[test]
    fn fast_float_matches_parsed_text() {
        let mantissas = [
            0i128,
            1,
            -1,
            7,
            2850427,
            -1348631,
            123456789,
            (1 << 53) - 1,
            1 << 53,
        ];
        for m in mantissas {
            for e in -25..=25 {
                let d = Decimal::new(m, e);
                let parsed: f64 = d.to_string().parse().unwrap();
                assert_eq!(d.to_f64().to_bits(), parsed.to_bits(), "{m}e{e}");
            }
        }
    }

    #[test]
    fn small_integer_agrees_with_general_json() {
        let j = |m, e| serde_json::to_string(&Decimal::new(m, e)).unwrap();
        assert_eq!(j(i64::MAX.into(), 0), i64::MAX.to_string());
        assert_eq!(
            j(i128::from(i64::MAX) + 1, 0),
            (i128::from(i64::MAX) + 1).to_string()
        );
        assert_eq!(j(-5_000, -3), "-5");
        assert_eq!(j(9, 18), "9000000000000000000");
        assert_eq!(j(-9, 18), "-9000000000000000000");
    }

    #[test]
    fn equality_is_numeric() {
        assert_eq!(Decimal::new(150, -2), Decimal::new(15, -1));
        assert_ne!(Decimal::new(150, -2), Decimal::new(15, -2));
        assert_eq!(Decimal::new(0, 5), Decimal::ZERO);
    }

    #[test]
    fn parse_and_float_conversions() {
        assert_eq!("28504.27".parse::<Decimal>(), Ok(Decimal::new(2850427, -2)));
        assert_eq!("-0.5".parse::<Decimal>(), Ok(Decimal::new(-5, -1)));
        assert!("1e5".parse::<Decimal>().is_err());
        assert!("".parse::<Decimal>().is_err());
        assert_eq!(Decimal::from_f32(1.1), Some(Decimal::new(11, -1)));
        assert_eq!(Decimal::from_f32(f32::NAN), None);
        assert_eq!(Decimal::new(123456, -3).to_f64(), 123.456);
    }

    #[test]
    fn arithmetic_is_exact() {
        let a = Decimal::new(15, -1);
        let b = Decimal::new(25, -3);
        assert_eq!(a.checked_add(b), Some(Decimal::new(1525, -3)));
        assert_eq!(a.checked_mul(b), Some(Decimal::new(375, -4)));
        assert_eq!(Decimal::new(i128::MAX, 0).checked_mul(a), None);
    }

    #[test]
    fn json_round_trip() {
        for d in [
            Decimal::new(123456, -3),
            Decimal::new(-7, -9),
            Decimal::new(i64::MAX.into(), 0),
            Decimal::new(u64::MAX.into(), 0),
        ] {
            let s = serde_json::to_string(&d).unwrap();
            let back: Decimal = serde_json::from_str(&s).unwrap();
            assert_eq!(back, d, "{s}");
        }
    }
}
