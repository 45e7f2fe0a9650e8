//! Application layer: EN 13757-3 data records (protocol.md §5).
//!
//! [`parse`] walks the record area of a decrypted APL and borrows every record's header
//! and data from the input; the only allocation is the record vector (plus LVAR text and
//! plain-text units, which are rare). Each [`DataRecord`] carries its decoded DIB/VIB,
//! its [`Meaning`] (quantity, unit, exact scale) and its exact [`Value`]. Records emit
//! back to the bytes they were parsed from; [`RecordRepr`] builds records from fields.

mod decimal;
mod dib;
mod profile;
mod value;
mod vib;

pub use decimal::{Decimal, ParseDecimalError};
pub use dib::{DataField, Dib, Function, MAX_EXTENSIONS};
pub use profile::{time_point_record, CompactProfile, Increment, Position, ProfileKind, Spacing};
pub use value::{bcd, le_signed, le_unsigned, type_f, type_g, type_i, type_j};
pub use value::{Date, DateTime, Time, Value};

pub use vib::{
    Combinable, Combinables, Kind, Meaning, RecordError, TimeUnit, Vib, VifTable, Vifes, UNKNOWN,
};

use super::{Error, Layer, Result};
use dib::EXTENSION;

/// Idle filler, skipped wherever a DIF is expected.
pub const IDLE_FILLER: u8 = 0x2F;
/// Manufacturer-specific data follows to the end of the APL.
pub const DIF_MANUFACTURER_DATA: u8 = 0x0F;
/// As 0x0F, and more records follow in the next telegram.
pub const DIF_MORE_RECORDS_FOLLOW: u8 = 0x1F;

/// The parsed record area of an APL.
#[derive(Debug, Clone, PartialEq)]
pub struct Apl<'a> {
    pub records: Vec<DataRecord<'a>>,
    /// Bytes after DIF 0x0F/0x1F (possibly empty), `None` without such a DIF.
    pub manufacturer_data: Option<&'a [u8]>,
    /// DIF 0x1F was seen.
    pub more_records_follow: bool,
    /// Set by [`parse_lenient`] when record parsing stopped at bytes it could not read.
    pub unparsed: Option<Unparsed<'a>>,
}

/// Where and why lenient parsing stopped. Real meters sometimes end a telegram with a
/// few bytes that are not a record (seen on several Qundis-family devices); the records
/// before them are still valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Unparsed<'a> {
    /// Offset of the first byte not parsed (the DIF of the failing record).
    pub offset: usize,
    /// The bytes from `offset` to the end of the APL.
    pub bytes: &'a [u8],
    pub error: Error,
}

impl Apl<'_> {
    /// Emits the records (without idle fillers) and the manufacturer-data trailer.
    pub fn emit(&self, out: &mut Vec<u8>) {
        for r in &self.records {
            r.emit(out);
        }
        if let Some(data) = self.manufacturer_data {
            out.push(if self.more_records_follow {
                DIF_MORE_RECORDS_FOLLOW
            } else {
                DIF_MANUFACTURER_DATA
            });
            out.extend_from_slice(data);
        }
        if let Some(u) = &self.unparsed {
            out.extend_from_slice(u.bytes);
        }
    }
}

/// One data record, borrowing its bytes from the APL.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRecord<'a> {
    /// Offset of the DIF inside the APL slice.
    pub offset: usize,
    /// DIF, DIFEs, VIF, VIFEs and plain-text unit bytes, exactly as on air.
    pub header: &'a [u8],
    /// LVAR byte for data field 0xD.
    pub lvar: Option<u8>,
    /// Data field bytes (for LVAR: the bytes after the LVAR byte).
    pub data: &'a [u8],
    pub dib: Dib,
    pub vib: Vib,
    pub value: Value,
    /// Quantity name and unit of [`DataRecord::meaning`], kept from parsing (the value
    /// needs the meaning) for the reading built from the record.
    pub quantity: &'static str,
    pub unit: Option<&'static str>,
}

impl DataRecord<'_> {
    /// Appends the record exactly as it was on air.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.header);
        out.extend(self.lvar);
        out.extend_from_slice(self.data);
    }

    /// Quantity, unit and scale of this record.
    pub fn meaning(&self) -> Meaning {
        self.vib.meaning(self.dib.data_field)
    }

    /// LVAR text read in transmission order, for the vendors that send strings forward
    /// (protocol.md §5.5); `None` unless the data is LVAR text. `value` holds the
    /// standard (reversed) reading.
    pub fn lvar_text_forward(&self) -> Option<String> {
        match self.lvar {
            Some(0x00..=0xBF) => Some(self.data.iter().map(|&b| char::from(b)).collect()),
            _ => None,
        }
    }

    /// Bytes the record occupies on air.
    pub fn encoded_len(&self) -> usize {
        self.header.len() + usize::from(self.lvar.is_some()) + self.data.len()
    }
}

/// Parses the record area of an APL (everything after the TPL header / decryption,
/// `2F 2F` verification bytes included). Any malformed record is an error.
pub fn parse(apl: &[u8]) -> Result<Apl<'_>> {
    let parsed = parse_lenient(apl);
    match parsed.unparsed {
        Some(u) => Err(u.error),
        None => Ok(parsed),
    }
}

/// Like [`parse`], but keeps the records before a malformed one and reports the rest
/// in [`Apl::unparsed`]. Reserved special-function DIFs (0x3F–0x7F, data field 0xF
/// with the extension bit) also stop parsing there.
pub fn parse_lenient(apl: &[u8]) -> Apl<'_> {
    parse_lenient_in(apl, Vec::new())
}

/// [`parse_lenient`] collecting the records in `records` (cleared first), so that a
/// caller parsing telegram after telegram can reuse one vector (see [`recycle`]).
pub fn parse_lenient_in<'a>(apl: &'a [u8], mut records: Vec<DataRecord<'a>>) -> Apl<'a> {
    records.clear();
    // Two bytes per record at least; most records take four to seven.
    records.reserve((apl.len() / 4).min(64));
    let mut parsed = Apl {
        records,
        manufacturer_data: None,
        more_records_follow: false,
        unparsed: None,
    };
    let mut pos = 0;
    loop {
        while apl.get(pos) == Some(&IDLE_FILLER) {
            pos += 1;
        }
        let Some(&dif) = apl.get(pos) else {
            return parsed;
        };
        if dif == DIF_MANUFACTURER_DATA || dif == DIF_MORE_RECORDS_FOLLOW {
            parsed.manufacturer_data = Some(apl.get(pos + 1..).unwrap_or(&[]));
            parsed.more_records_follow = dif == DIF_MORE_RECORDS_FOLLOW;
            return parsed;
        }
        let record = if dif & 0x0F == 0x0F {
            Err(Error::unsupported(Layer::Apl, pos, "special-function DIF"))
        } else {
            parse_record(apl, pos)
        };
        match record {
            Ok((record, next)) => {
                parsed.records.push(record);
                pos = next;
            }
            Err(error) => {
                parsed.unparsed = Some(Unparsed {
                    offset: pos,
                    bytes: apl.get(pos..).unwrap_or(&[]),
                    error,
                });
                return parsed;
            }
        }
    }
}

/// An emptied record vector, with its allocation, for records borrowing other bytes:
/// the records of one telegram cannot outlive its buffer, their vector can. Collecting
/// an emptying iterator into a vector of an equally sized type reuses the allocation.
// `filter` cannot stand in for `filter_map` here: the item type changes (its lifetime).
#[allow(clippy::unnecessary_filter_map)]
pub fn recycle<'b>(records: Vec<DataRecord<'_>>) -> Vec<DataRecord<'b>> {
    records.into_iter().filter_map(|_| None).collect()
}

fn byte(apl: &[u8], pos: usize) -> Result<u8> {
    apl.get(pos)
        .copied()
        .ok_or_else(|| Error::truncated(Layer::Apl, pos, 1))
}

fn slice(apl: &[u8], pos: usize, len: usize) -> Result<&[u8]> {
    apl.get(pos..pos.saturating_add(len)).ok_or_else(|| {
        Error::truncated(
            Layer::Apl,
            pos,
            pos.saturating_add(len) - apl.len().max(pos),
        )
    })
}

/// Data length announced by an LVAR byte (§5.5); `None` for reserved values.
pub fn lvar_len(lvar: u8) -> Option<usize> {
    Some(usize::from(match lvar {
        0x00..=0xBF => lvar,
        0xC0..=0xC9 => lvar - 0xC0,
        0xD0..=0xD9 => lvar - 0xD0,
        0xE0..=0xEF => lvar - 0xE0,
        0xF0..=0xF4 => 4 * (lvar - 0xEC),
        0xF5 => 48,
        0xF6 => 64,
        _ => return None,
    }))
}

/// Where the plain-text unit of VIF 0x7C/0xFC sits (§5.9).
#[derive(Clone, Copy, PartialEq, Eq)]
enum TextPosition {
    /// After the whole VIF/VIFE chain (EN 13757-3 reading, tried first).
    AfterVib,
    /// Directly after the 0xFC byte, VIFEs after the text.
    AfterVif,
}

/// DIB and VIB of one record, without its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub dib: Dib,
    pub vib: Vib,
    /// Header length in bytes (DIF up to the last VIFE or plain-text unit byte).
    pub len: usize,
}

/// Parses the DIB and VIB starting at `bytes[start]` (used for format frames, whose
/// DIF/VIF lists carry no data). A plain-text unit is read after the VIB, falling back
/// to directly after 0xFC when that does not fit.
pub fn parse_header(bytes: &[u8], start: usize) -> Result<RecordHeader> {
    match parse_header_at(bytes, start, TextPosition::AfterVib) {
        Err(e) if vif_is_fc(bytes, start) => {
            parse_header_at(bytes, start, TextPosition::AfterVif).map_err(|_| e)
        }
        other => other,
    }
}

/// Whether the VIF of the record at `start` is 0xFC (plain text with VIFEs), the only
/// case where the plain-text position is ambiguous.
fn vif_is_fc(bytes: &[u8], start: usize) -> bool {
    let mut pos = start;
    loop {
        match bytes.get(pos) {
            Some(&b) if b & EXTENSION != 0 && pos - start < MAX_EXTENSIONS => pos += 1,
            Some(_) => return bytes.get(pos + 1) == Some(&0xFC),
            None => return false,
        }
    }
}

fn parse_record(apl: &[u8], start: usize) -> Result<(DataRecord<'_>, usize)> {
    let first =
        parse_header_at(apl, start, TextPosition::AfterVib).and_then(|h| parse_data(apl, start, h));
    match first {
        Err(e) if vif_is_fc(apl, start) => parse_header_at(apl, start, TextPosition::AfterVif)
            .and_then(|h| parse_data(apl, start, h))
            .map_err(|_| e),
        other => other,
    }
}

fn parse_header_at(apl: &[u8], start: usize, text_at: TextPosition) -> Result<RecordHeader> {
    let mut pos = start + 1;
    let mut last = byte(apl, start)?;
    let mut difes = 0;
    while last & EXTENSION != 0 {
        difes += 1;
        if difes > MAX_EXTENSIONS {
            return Err(Error::invalid(Layer::Apl, pos, "more than 10 DIFEs"));
        }
        last = byte(apl, pos)?;
        pos += 1;
    }
    let dib = slice(apl, start, pos - start)
        .ok()
        .and_then(Dib::decode)
        .ok_or_else(|| Error::invalid(Layer::Apl, start, "DIF"))?;

    let vif_pos = pos;
    let vif = byte(apl, vif_pos)?;
    pos += 1;
    // Bytes after the VIF (extension codes and VIFEs) count against the limit of ten.
    let mut after_vif = 0usize;
    let mut next = |pos: &mut usize| -> Result<u8> {
        after_vif += 1;
        if after_vif > MAX_EXTENSIONS {
            return Err(Error::invalid(Layer::Apl, *pos, "more than 10 VIFEs"));
        }
        let b = byte(apl, *pos)?;
        *pos += 1;
        Ok(b)
    };
    // 0x7B / 0x7D without the extension bit are reserved VIFs: the DIF still gives the
    // record's length, so they read as an unknown record (primary table), not an error.
    let (table, last) = match vif {
        0xFB => (VifTable::Fb, next(&mut pos)?),
        0xFD => {
            let code = next(&mut pos)?;
            if code == 0xFD {
                (VifTable::FdSecondLevel, next(&mut pos)?)
            } else {
                (VifTable::Fd, code)
            }
        }
        0xEF => (VifTable::Ef, next(&mut pos)?),
        0x7C | 0xFC => (VifTable::PlainText, vif),
        0x7F | 0xFF => (VifTable::Manufacturer, vif),
        _ => (VifTable::Primary, vif),
    };
    let mut vib = Vib::new(table, last & 0x7F);

    let read_text = |pos: &mut usize| -> Result<String> {
        let len = usize::from(byte(apl, *pos)?);
        let text = slice(apl, *pos + 1, len)?;
        *pos += 1 + len;
        Ok(text.iter().rev().map(|&b| char::from(b)).collect())
    };
    if table == VifTable::PlainText && text_at == TextPosition::AfterVif {
        vib.plain_text_unit = Some(read_text(&mut pos)?);
    }
    let mut last = last;
    while last & EXTENSION != 0 {
        last = next(&mut pos)?;
        // `next` bounds the count, so the push cannot overflow.
        vib.vifes.push(last & 0x7F);
    }
    if table == VifTable::PlainText && text_at == TextPosition::AfterVib {
        vib.plain_text_unit = Some(read_text(&mut pos)?);
    }
    Ok(RecordHeader {
        dib,
        vib,
        len: pos - start,
    })
}

fn parse_data(apl: &[u8], start: usize, h: RecordHeader) -> Result<(DataRecord<'_>, usize)> {
    let meaning = h.vib.meaning(h.dib.data_field);
    let header = slice(apl, start, h.len)?;
    let mut pos = start + h.len;
    let (lvar, len) = match h.dib.data_field.data_len() {
        Some(len) => (None, len),
        None => {
            let lvar = byte(apl, pos)?;
            let len = lvar_len(lvar).ok_or_else(|| Error::invalid(Layer::Apl, pos, "LVAR"))?;
            pos += 1;
            (Some(lvar), len)
        }
    };
    let data = slice(apl, pos, len)?;
    let value = value::decode(h.dib.data_field, lvar, data, &meaning);
    Ok((
        DataRecord {
            offset: start,
            header,
            lvar,
            data,
            dib: h.dib,
            vib: h.vib,
            value,
            quantity: meaning.quantity,
            unit: meaning.unit,
        },
        pos + len,
    ))
}

/// An owned record built from fields, for tests and simulators.
///
/// ```
/// use wmbusd::wire::apl::{self, DataField, RecordRepr, Vib};
/// // Volume 10^-3 m³, storage 1, value 6408, 32-bit integer.
/// let r = RecordRepr::integer(DataField::Integer(4), Vib::primary(0x13), 6408)
///     .unwrap()
///     .storage(1);
/// let bytes = r.to_bytes().unwrap();
/// assert_eq!(bytes, [0x44, 0x13, 0x08, 0x19, 0x00, 0x00]);
/// assert_eq!(apl::parse(&bytes).unwrap().records[0].value.to_string(), "6.408");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRepr {
    pub dib: Dib,
    pub vib: Vib,
    /// LVAR byte for data field 0xD (ignored otherwise).
    pub lvar: Option<u8>,
    pub data: Vec<u8>,
}

impl RecordRepr {
    pub fn new(dib: Dib, vib: Vib, lvar: Option<u8>, data: Vec<u8>) -> Self {
        RecordRepr {
            dib,
            vib,
            lvar,
            data,
        }
    }

    /// Integer record (`data_field` must be `Integer(n)`); `None` if `value` fits
    /// neither the signed nor the unsigned range of n bytes.
    pub fn integer(data_field: DataField, vib: Vib, value: i64) -> Option<Self> {
        let DataField::Integer(n @ 1..=8) = data_field else {
            return None;
        };
        if n < 8 {
            let bits = 8 * u32::from(n);
            let min = -(1i64 << (bits - 1));
            let max = (1i64 << bits) - 1;
            if !(min..=max).contains(&value) {
                return None;
            }
        }
        let data = value.to_le_bytes().get(..usize::from(n))?.to_vec();
        Some(RecordRepr::new(Dib::new(data_field), vib, None, data))
    }

    /// BCD record (`data_field` must be `Bcd(n)`); negative values use the 0xF top nibble.
    pub fn bcd(data_field: DataField, vib: Vib, value: i64) -> Option<Self> {
        let DataField::Bcd(n) = data_field else {
            return None;
        };
        let data = encode_bcd(value, usize::from(n))?;
        Some(RecordRepr::new(Dib::new(data_field), vib, None, data))
    }

    /// 32-bit real record.
    pub fn real32(vib: Vib, value: f32) -> Self {
        RecordRepr::new(
            Dib::new(DataField::Real32),
            vib,
            None,
            value.to_le_bytes().to_vec(),
        )
    }

    /// LVAR text record (stored last character first); `None` beyond 191 characters
    /// or outside ISO 8859-1.
    pub fn text(vib: Vib, text: &str) -> Option<Self> {
        let bytes: Vec<u8> = text
            .chars()
            .rev()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<_>>()?;
        let lvar = u8::try_from(bytes.len()).ok().filter(|&l| l <= 0xBF)?;
        Some(RecordRepr::new(
            Dib::new(DataField::Variable),
            vib,
            Some(lvar),
            bytes,
        ))
    }

    /// Date record (type G, VIF 0x6C); `None` for a partial date or a year type G
    /// cannot carry (outside 1981–2080).
    pub fn date(date: &Date) -> Option<Self> {
        let (y, m, d) = valid_date(date)?;
        let (yy, 0) = year_code(y)? else {
            return None;
        };
        let data = vec![d | ((yy & 0x07) << 5), m | ((yy >> 3) << 4)];
        let vib = Vib::primary(0x6C);
        Some(RecordRepr::new(
            Dib::new(DataField::Integer(2)),
            vib,
            None,
            data,
        ))
    }

    /// Date-time record (type F, VIF 0x6D, minute resolution); `None` for a partial
    /// value or one with seconds, which type F cannot carry.
    pub fn datetime(dt: &DateTime) -> Option<Self> {
        let (y, m, d) = valid_date(&dt.date)?;
        let (h, min) = (dt.time.hour?, dt.time.minute?);
        if h > 23 || min > 59 || dt.time.second.unwrap_or(0) != 0 {
            return None;
        }
        let (yy, hy) = year_code(y)?;
        let summer = u8::from(dt.summer_time) << 7;
        let data = vec![
            min,
            h | (hy << 5) | summer,
            d | ((yy & 0x07) << 5),
            m | ((yy >> 3) << 4),
        ];
        let vib = Vib::primary(0x6D);
        Some(RecordRepr::new(
            Dib::new(DataField::Integer(4)),
            vib,
            None,
            data,
        ))
    }

    pub fn storage(mut self, storage: u64) -> Self {
        self.dib.storage = storage;
        self
    }

    pub fn tariff(mut self, tariff: u32) -> Self {
        self.dib.tariff = tariff;
        self
    }

    pub fn subunit(mut self, subunit: u32) -> Self {
        self.dib.subunit = subunit;
        self
    }

    pub fn function(mut self, function: Function) -> Self {
        self.dib.function = function;
        self
    }

    /// Owned copy of a parsed record.
    pub fn from_record(record: &DataRecord<'_>) -> Self {
        RecordRepr::new(
            record.dib,
            record.vib.clone(),
            record.lvar,
            record.data.to_vec(),
        )
    }

    /// Appends the record; on error nothing is appended.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<()> {
        let mark = out.len();
        let result = self.emit_unchecked(out);
        if result.is_err() {
            out.truncate(mark);
        }
        result
    }

    fn emit_unchecked(&self, out: &mut Vec<u8>) -> Result<()> {
        let at = out.len();
        let expected = match self.dib.data_field.data_len() {
            Some(len) => len,
            None => self
                .lvar
                .and_then(lvar_len)
                .ok_or_else(|| Error::invalid(Layer::Apl, at, "LVAR"))?,
        };
        if expected != self.data.len() {
            return Err(Error::invalid(Layer::Apl, at, "data length for DIF"));
        }
        if !self.dib.emit(out) {
            return Err(Error::invalid(Layer::Apl, at, "DIB not encodable"));
        }
        if !self.vib.emit(out) {
            return Err(Error::invalid(Layer::Apl, at, "VIB not encodable"));
        }
        if self.dib.data_field == DataField::Variable {
            out.extend(self.lvar);
        }
        out.extend_from_slice(&self.data);
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.emit(&mut out)?;
        Ok(out)
    }
}

/// Year, month and day of a fully given date whose fields fit their bits.
fn valid_date(date: &Date) -> Option<(u16, u8, u8)> {
    let (y, m, d) = (date.year?, date.month?, date.day?);
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Two-digit year and hundred-years code (EN 13757-3 types F/G: hundred-years 0 with
/// yy above 80 is 19yy, up to 80 is 20yy).
fn year_code(year: u16) -> Option<(u8, u8)> {
    let (yy, hy) = match year {
        1981..=1999 => (year - 1900, 0),
        2000..=2080 => (year - 2000, 0),
        2081..=2199 => ((year - 1900) % 100, (year - 1900) / 100),
        _ => return None,
    };
    Some((u8::try_from(yy).ok()?, u8::try_from(hy).ok()?))
}

fn encode_bcd(value: i64, bytes: usize) -> Option<Vec<u8>> {
    let digits = 2 * bytes;
    let mut rest = value.unsigned_abs();
    let mut nibbles = Vec::with_capacity(digits);
    for _ in 0..digits {
        nibbles.push((rest % 10) as u8);
        rest /= 10;
    }
    if rest != 0 {
        return None;
    }
    if value < 0 {
        // The sign replaces the top digit, which therefore must be free.
        let top = nibbles.last_mut()?;
        if *top != 0 {
            return None;
        }
        *top = 0x0F;
    }
    Some(
        nibbles
            .chunks(2)
            .map(|pair| match pair {
                [lo, hi] => lo | (hi << 4),
                _ => 0,
            })
            .collect(),
    )
}

impl DataRecord<'_> {
    /// DIB, VIB, LVAR and data of the record, labelled, for an APL starting at frame offset
    /// `base`. VIB and data carry the wire-level meaning; a reader with the decoded value
    /// (unit chosen, qualifiers, record errors) may word them more fully.
    pub fn annotate(&self, base: usize) -> Vec<crate::wire::annotate::Annotation> {
        use crate::wire::annotate::Annotation;
        use std::fmt::Write as _;
        let at = base + self.offset;
        let dib_len = 1 + usize::from(self.dib.difes);
        let vib_len = self.header.len().saturating_sub(dib_len);
        let mut dib = format!(
            "{}, {}",
            data_field_text(self.dib.data_field),
            self.dib.function.as_str()
        );
        for (n, name) in [
            (self.dib.storage, "storage"),
            (u64::from(self.dib.tariff), "tariff"),
            (u64::from(self.dib.subunit), "subunit"),
        ] {
            if n != 0 {
                let _ = write!(dib, ", {name} {n}");
            }
        }
        let mut out = vec![
            Annotation::span(at, dib_len, "DIF", dib),
            Annotation::span(at + dib_len, vib_len, "VIF", self.quantity),
        ];
        let mut data_at = at + self.header.len();
        if let Some(lvar) = self.lvar {
            out.push(Annotation::span(
                data_at,
                1,
                "LVAR",
                format!("0x{lvar:02X}: {} data bytes follow", self.data.len()),
            ));
            data_at += 1;
        }
        if !self.data.is_empty() {
            out.push(Annotation::span(
                data_at,
                self.data.len(),
                "data",
                format!("{} data bytes", self.data.len()),
            ));
        }
        out
    }
}

fn data_field_text(field: DataField) -> String {
    match field {
        DataField::NoData => "no data".to_owned(),
        DataField::Integer(n) => format!("{n}-byte integer"),
        DataField::Real32 => "32-bit real".to_owned(),
        DataField::Selection => "selection for readout".to_owned(),
        DataField::Bcd(n) => format!("{}-digit BCD", u16::from(n) * 2),
        DataField::Variable => "variable length (LVAR)".to_owned(),
    }
}

#[cfg(test)]
mod tests;
