//! The CSV rules shared by `keys import` and `meters import`: admin systems and suppliers
//! export with a BOM, `;` or tab separators, quoted fields and header names in every
//! spelling. Each command keeps its own column table; the matching is here.

use crate::keys::{Key, MeterSelector};

/// The rows of a CSV text with their 1-based line numbers: a leading BOM dropped, blank
/// lines and `#` comments skipped.
pub(super) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
}

/// The column of a header field in `table` (pairs of column and its names), compared
/// without case, spaces, '_', '-' and '.' (`"Meter ID"` = `meter_id` = `meterid`).
pub(super) fn match_column<C: Copy>(header: &str, table: &[(C, &[&str])]) -> Option<C> {
    let norm: String = header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    table
        .iter()
        .find(|(_, names)| names.contains(&norm.as_str()))
        .map(|(c, _)| *c)
}

/// Splits one CSV line: `sep`-separated, fields optionally in double quotes with `""`
/// for a quote inside.
pub(super) fn split_csv(line: &str, sep: char) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.trim().is_empty() && !was_quoted {
            field.clear();
            quoted = true;
            was_quoted = true;
        } else if c == sep {
            fields.push(std::mem::take(&mut field));
            was_quoted = false;
        } else {
            field.push(c);
        }
    }
    if quoted {
        return Err("unterminated quoted field");
    }
    fields.push(field);
    Ok(fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

/// The separator used most outside quotes in the first line (',' when none).
pub(super) fn detect_separator(line: &str) -> char {
    let mut counts = [(';', 0usize), (',', 0), ('\t', 0)];
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            for (sep, n) in counts.iter_mut() {
                if c == *sep {
                    *n += 1;
                }
            }
        }
    }
    counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .max_by_key(|(_, n)| *n)
        .map_or(',', |(c, _)| *c)
}

/// A meter id as vendors write it: 8 hex digits, possibly with spaces. A shorter all-decimal
/// id is refused rather than padded: a spreadsheet may have dropped a leading zero, but it
/// may as well be a mistyped digit, and a padded guess would file the key under a stranger.
pub(super) fn parse_csv_id(text: &str) -> Result<String, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !compact.is_empty() && compact.len() < 8 && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "meter id '{compact}' has {} digits, not 8; if a spreadsheet dropped leading \
             zeros, write it in full (e.g. \"{compact:0>8}\") and keep the column as text",
            compact.len()
        ));
    }
    MeterSelector::parse_id(&compact)
        .map(|id| crate::wire::link::id_string(&id))
        .map_err(|e| e.to_string())
}

/// A key as vendors write it: hex with optional spaces, '-', ':' and a 0x prefix.
pub(super) fn parse_csv_key(text: &str) -> Result<Key, String> {
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | ':'))
        .collect();
    if compact.is_empty() {
        return Err("key is empty".to_owned());
    }
    Key::from_hex(&compact).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_in_any_spelling() {
        let table: &[(u8, &[&str])] = &[(1, &["meterid", "id"]), (2, &["name"])];
        assert_eq!(match_column("Meter ID", table), Some(1));
        assert_eq!(match_column("meter_id", table), Some(1));
        assert_eq!(match_column(" NAME ", table), Some(2));
        assert_eq!(match_column("floor", table), None);
        let lines: Vec<_> = numbered_lines("\u{FEFF}a\n\n# c\nb\n").collect();
        assert_eq!(lines, vec![(1, "a"), (4, "b")]);
    }
}
