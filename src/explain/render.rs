//! The text form of an [`Explanation`]: a heading per layer, one aligned line per span,
//! then the outcome.

use std::fmt::Write as _;

use super::{Explanation, Outcome};
use crate::reading::Record;
use crate::wire::apl::{self, DataRecord};

impl Explanation {
    /// Aligned text: a heading per layer, then `offset  hex  field  meaning` per span.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let hex_width = self
            .lines
            .iter()
            .map(|s| s.bytes_hex.len().min(HEX_COLUMN_MAX))
            .max()
            .unwrap_or(2);
        let field_width = self.lines.iter().map(|s| s.field.len()).max().unwrap_or(5);
        let mut section = None;
        for span in &self.lines {
            if section != Some(span.layer) {
                let _ = writeln!(out, "== {} ==", span.layer.heading());
                section = Some(span.layer);
            }
            let mut chunks = wrap_hex(&span.bytes_hex);
            let first = chunks.next().unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:04}  {:<hex_width$}  {:<field_width$}  {}",
                span.offset, first, span.field, span.meaning
            );
            for more in chunks {
                let _ = writeln!(out, "  {:4}  {more}", "");
            }
        }
        match &self.outcome {
            Outcome::Decoded { records, driver } => {
                match driver {
                    Some((name, fields)) => {
                        let _ = writeln!(out, "driver: {name}");
                        for field in fields {
                            let _ = writeln!(out, "  {field}");
                        }
                    }
                    None => {
                        let _ = writeln!(out, "driver: none matched (generic records only)");
                    }
                }
                let _ = writeln!(out, "result: decoded, {records} record{}", plural(*records));
            }
            Outcome::Failed {
                kind,
                layer,
                offset,
                diagnosis,
                message,
            } => {
                let at = offset.map(|o| format!(" at byte {o}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "result: failed in the {layer} layer{at} ({})",
                    kind.name()
                );
                // The class in one line: "CRC error in block 2 of format B …",
                // "damaged wired frame: no stop byte", "control frame: SND_NKE".
                let _ = writeln!(out, "error: {message}");
                let _ = writeln!(out, "diagnosis: {diagnosis}");
            }
        }
        out
    }
}

/// Long runs (ciphertext, vendor data) wrap at 16 bytes per line.
const HEX_COLUMN_MAX: usize = 16 * 3 - 1;

fn wrap_hex(hex: &str) -> impl Iterator<Item = &str> {
    let mut rest = hex;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = if rest.len() > HEX_COLUMN_MAX {
            HEX_COLUMN_MAX + 1
        } else {
            rest.len()
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head.trim_end())
    })
}

/// "volume = 28504.27 m3".
pub(super) fn record_summary(r: &Record) -> String {
    let value = match serde_json::to_value(&r.value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => "?".to_owned(),
    };
    match &r.unit {
        Some(unit) => format!("{} = {value} {unit}", r.quantity),
        None => format!("{} = {value}", r.quantity),
    }
}

/// "volume [m3] (at_base_conditions), scale 0.001": the VIF as the reading names it.
pub(super) fn vif_text(r: &DataRecord<'_>, record: &Record) -> String {
    let mut vib = record.quantity.to_string();
    if let Some(unit) = &record.unit {
        let _ = write!(vib, " [{unit}]");
    }
    if !record.qualifiers.is_empty() {
        let _ = write!(vib, " ({})", record.qualifiers.join(", "));
    }
    if let Some(e) = &record.error {
        let _ = write!(vib, ", record error: {e}");
    }
    let scale = r.meaning().scale;
    if scale != apl::Decimal::new(1, 0) {
        let _ = write!(vib, ", scale {scale}");
    }
    vib
}

pub(super) fn spaced_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
