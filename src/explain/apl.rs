//! The application layer of the walk: records, compact frames, format frames.

use super::{render, Section, Walk};
use crate::reading::Reading;
use crate::wire::apl::{self, DataRecord, IDLE_FILLER};
use crate::wire::compact::{CompactRepr, FormatFrameRepr};

impl Walk<'_> {
    pub(super) fn application(&mut self, ci: u8, start: usize, reading: Option<&Reading>) {
        match ci {
            0x79 | 0x7B | 0x73 => self.compact(start, reading),
            0x69..=0x6B => self.format_frame(start),
            0x8A | 0x8B => self.unused(Section::Records, start, "after a TPL without data", false),
            _ => self.records(start),
        }
    }

    fn fillers(&mut self, section: Section, from: usize, to: usize) {
        if to > from {
            let len = to - from;
            let after_security = self
                .spans
                .last()
                .is_some_and(|s| s.layer == Section::Security);
            let meaning = if after_security && len >= 2 {
                "idle filler 2F (the first two confirm the decryption)"
            } else {
                "idle filler 2F"
            };
            self.push(section, from, len, "filler", meaning.to_owned());
        }
    }

    fn compact(&mut self, start: usize, reading: Option<&Reading>) {
        let skip = self
            .rest(start)
            .iter()
            .take_while(|&&b| b == IDLE_FILLER)
            .count();
        self.fillers(Section::Compact, start, start + skip);
        let start = start + skip;
        let mut fields = match CompactRepr::parse(self.rest(start)) {
            Ok(c) => c.annotate(start),
            Err(e) => {
                let why = format!("not read: {}", e.kind);
                self.unused(Section::Compact, start, &why, false);
                return;
            }
        };
        let data = super::pop_labelled(&mut fields, "record data");
        let signature = self
            .rest(start)
            .first_chunk::<2>()
            .map_or(0, |s| u16::from_le_bytes(*s));
        self.annotated(Section::Compact, fields);
        let Some(mut data) = data else { return };
        match reading {
            Some(r) => {
                let values: Vec<String> = r.records.iter().map(render::record_summary).collect();
                let n = values.len();
                data.value = format!(
                    "data of {n} records in the learned format: {}",
                    values.join("; ")
                );
                self.annotated(Section::Compact, vec![data]);
            }
            None => {
                let why = format!(
                    "of record data in format 0x{signature:04X}, which no full frame has shown"
                );
                self.unused(Section::Compact, data.range.start, &why, false);
            }
        }
    }

    fn format_frame(&mut self, start: usize) {
        match FormatFrameRepr::parse(self.rest(start)) {
            Ok(f) => {
                let fields = f.annotate(start);
                let after = fields.last().map_or(start, |a| a.range.end);
                self.annotated(Section::Compact, fields);
                self.unused(Section::Compact, after, "after the format", false);
            }
            Err(e) => {
                let why = format!("not read: {}", e.kind);
                self.unused(Section::Compact, start, &why, false);
            }
        }
    }

    fn records(&mut self, start: usize) {
        let data = self.rest(start).to_vec();
        let parsed = apl::parse_lenient(&data);
        let mut cursor = 0usize;
        for r in &parsed.records {
            self.fillers(Section::Records, start + cursor, start + r.offset);
            self.record(start, r);
            cursor = r.offset + r.encoded_len();
        }
        if let Some(vendor) = parsed.manufacturer_data {
            let dif_at = data.len().saturating_sub(vendor.len() + 1);
            self.fillers(Section::Records, start + cursor, start + dif_at);
            let dif = data.get(dif_at).copied().unwrap_or(0);
            let more = if parsed.more_records_follow {
                ", more records in the next telegram"
            } else {
                ""
            };
            let meaning = format!("0x{dif:02X}: manufacturer-specific data follows{more}");
            self.push(Section::Records, start + dif_at, 1, "DIF", meaning);
            if !vendor.is_empty() {
                let meaning = format!("{} bytes in a vendor format (kept as hex)", vendor.len());
                self.push(
                    Section::Records,
                    start + dif_at + 1,
                    vendor.len(),
                    "vendor data",
                    meaning,
                );
            }
            return;
        }
        if let Some(u) = &parsed.unparsed {
            self.fillers(Section::Records, start + cursor, start + u.offset);
            let why = if parsed.records.is_empty() {
                format!("not parsed as records ({})", u.error.kind)
            } else {
                format!("after the last record, not parsed ({})", u.error.kind)
            };
            self.unused(Section::Records, start + u.offset, &why, false);
            return;
        }
        let tail = data.get(cursor..).unwrap_or_default();
        let trailing = tail.iter().take_while(|&&b| b == IDLE_FILLER).count();
        self.fillers(Section::Records, start + cursor, start + cursor + trailing);
        if cursor + trailing < data.len() {
            self.unused(
                Section::Records,
                start + cursor + trailing,
                "after the last record",
                false,
            );
        }
    }

    /// The record's own labels, with VIF and data worded from the decoded value.
    fn record(&mut self, base: usize, r: &DataRecord<'_>) {
        let record = crate::reading::Record::from_data_record(r);
        let mut fields = r.annotate(base);
        for a in &mut fields {
            match a.label {
                "VIF" => a.value = render::vif_text(r, &record),
                "data" => a.value = render::record_summary(&record),
                _ => {}
            }
        }
        self.annotated(Section::Records, fields);
    }
}
