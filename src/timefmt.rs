//! RFC 3339 timestamps without a date-time dependency: the gateway only ever prints UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC). Times before 1970 print as the epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's well-known algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Parses what [`rfc3339`] prints (`YYYY-MM-DDTHH:MM:SS[.fff]Z`, UTC only); `None` for
/// anything else. Used to restore times saved in the state file.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let digits = text.get(from..from + len)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let rest = text.get(19..)?;
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(f) => {
            let end = f.find(|c: char| !c.is_ascii_digit())?;
            (f.get(..end)?, f.get(end..)?)
        }
        None => ("", rest),
    };
    if zone != "Z" {
        return None;
    }
    let millis = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(3)
        .collect::<String>()
        .parse::<u64>()
        .ok()?;
    let days = days_from_civil(i64::try_from(y).ok()?, m, d);
    let secs = u64::try_from(days).ok()? * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + std::time::Duration::from_millis(secs.checked_mul(1000)? + millis))
}

/// Parses an RFC 3339 time with `Z` or a numeric offset (`2026-11-30T23:58:00+01:00`,
/// fraction optional), as found first on a replay line; `None` for anything else.
pub fn parse_rfc3339_offset(text: &str) -> Option<SystemTime> {
    if let Some(t) = parse_rfc3339(text) {
        return Some(t);
    }
    // The offset is the last six characters: `+HH:MM` or `-HH:MM`.
    let split = text.len().checked_sub(6)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1i64,
        _ => return None,
    };
    let (hh, mm) = offset.get(1..)?.split_once(':')?;
    if hh.len() != 2 || mm.len() != 2 {
        return None;
    }
    let (hh, mm): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
    if hh > 23 || mm > 59 {
        return None;
    }
    let utc = parse_rfc3339(&format!("{local}Z"))?;
    let shift = std::time::Duration::from_secs(u64::try_from(hh * 3600 + mm * 60).ok()?);
    // Local time = UTC + offset, so UTC = local - offset.
    if sign > 0 {
        utc.checked_sub(shift)
    } else {
        utc.checked_add(shift)
    }
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads a duration as people write them: `500ms`, `60s` (or a bare number of seconds),
/// `2m`, `1.5h`; above zero and at most 24 h.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{t}' is not a duration such as 60s, 2m or 500ms"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err("duration must be above zero and at most 24h".to_owned());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 is a leap day; 951782400 = 2000-02-29T00:00:00Z.
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_309_261);
        assert_eq!(rfc3339(t), "2026-11-22T01:01:01.000Z");
    }

    #[test]
    fn parse_round_trips() {
        for ms in [0u64, 951_782_400_123, 1_795_309_261_000, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(
            parse_rfc3339("2026-11-22T01:01:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_795_309_261))
        );
        assert_eq!(parse_rfc3339("2026-11-22T01:01:01+01:00"), None);
        assert_eq!(parse_rfc3339("2026-13-22T01:01:01Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
        let z = parse_rfc3339("2026-11-22T00:01:01Z");
        assert_eq!(parse_rfc3339_offset("2026-11-22T01:01:01+01:00"), z);
        assert_eq!(parse_rfc3339_offset("2026-11-21T23:01:01-01:00"), z);
        assert_eq!(parse_rfc3339_offset("2026-11-22T00:01:01Z"), z);
        assert_eq!(parse_rfc3339_offset("2026-11-22T00:01:01+1:00"), None);
        assert_eq!(parse_rfc3339_offset("-71.5"), None);
    }
}
