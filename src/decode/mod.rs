//! The decoder: a received frame in, a normalised [`Reading`] out.
//!
//! Layers are peeled in the order EN 13757-7 stacks them — DLL, ELL (with its AES-CTR
//! encryption), AFL, TPL (with mode 5 or mode 7 AES-CBC), APL records or compact frame —
//! over one working copy of the frame that decryption rewrites in place. The same code
//! path serves the daemon, `wmbusd decode` and the tests.

mod error;
mod profiles;
mod received;
mod security;
mod transport;
mod wired;

pub use crate::formats::{FormatCache, MeterKey, SavedFormat};
pub use error::{DecodeError, FailureKind};
pub use received::Received;

use crate::drivers::DriverSet;
use crate::frame::RadioFrame;
use crate::keys::KeyStore;
use crate::reading::{
    empty_with_capacity, upper_hex, Reading, Record, Security, Status, Unparsed, SCHEMA_VERSION,
};
use crate::wire::address::Address;
use crate::wire::afl::{AflRepr, CI_AFL};
use crate::wire::ell;
use crate::wire::link::LinkHeader;
use crate::wire::telegram::{proprietary_address, tpl_address, Telegram};
use crate::wire::tpl::{self, TplRepr};
use crate::wire::{apl, device_type, Layer};
use transport::Transport;

/// What [`Decoder::decode_traced`] saw besides the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The frame as the decoder's layers left it: CRC-free, with every region whose key
    /// verified replaced by its plaintext (a region that failed verification holds garbage).
    /// Wired frames: from the CI on.
    pub working: Vec<u8>,
    /// Offset of `working[0]` in the frame (0 wireless, 6 for a wired long frame).
    pub base: usize,
    /// The frame as normalised, when its link layer was readable.
    pub telegram: Option<Telegram>,
    /// The canonical bytes as [`Telegram::parse`] wrote them, before any decryption.
    pub received: Vec<u8>,
}

/// Decodes telegrams; keeps the keys and the compact-frame formats learned so far.
#[derive(Debug)]
pub struct Decoder {
    keys: KeyStore,
    formats: FormatCache,
    drivers: DriverSet,
    /// Working copy of the current frame, reused to avoid an allocation per telegram.
    buf: Vec<u8>,
    /// Records of the reading being refilled, set aside by `base_reading` and
    /// refilled in place by `fill_records`.
    spare_records: Vec<Record>,
    /// The parsed telegram of the frame being (or last) decoded.
    last: Option<Telegram>,
    /// `Some` while `decode_traced` runs: the canonical bytes before decryption.
    received: Option<Vec<u8>>,
    /// The message counter of the last telegram whose AFL MAC verified (mode 7).
    verified_counter: Option<u32>,
}

/// What the security layers did to the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SecurityOutcome {
    decrypted: bool,
    verified_by: Option<&'static str>,
}

impl SecurityOutcome {
    const NONE: SecurityOutcome = SecurityOutcome {
        decrypted: false,
        verified_by: None,
    };
}

/// State carried from the lower layers into the transport layer.
struct Lower {
    ell: SecurityOutcome,
    ell_access_number: Option<u8>,
    afl: Option<AflRepr>,
    /// Offset of the AFL MAC in the frame, for error positions.
    afl_offset: usize,
    /// Every byte after the lower layers passed a CRC here (DLL block CRCs, ELL payload
    /// CRC): a compact frame's full-frame CRC then need not match (see
    /// `CompactFormat::expand_covered`).
    payload_verified: bool,
}

impl Decoder {
    /// A decoder with the built-in manufacturer drivers.
    pub fn new(keys: KeyStore) -> Self {
        Decoder::with_drivers(keys, DriverSet::builtin())
    }

    /// A decoder applying `drivers` (an empty set gives generic records only); their
    /// declared compact formats are known from the start.
    pub fn with_drivers(keys: KeyStore, drivers: DriverSet) -> Self {
        let mut formats = FormatCache::new();
        drivers.declare_formats(&mut formats);
        Decoder {
            keys,
            formats,
            drivers,
            buf: Vec::with_capacity(256),
            spare_records: Vec::new(),
            last: None,
            received: None,
            verified_counter: None,
        }
    }

    pub fn drivers(&self) -> &DriverSet {
        &self.drivers
    }

    /// Replaces the drivers (SIGHUP). Their declared compact formats are added to the
    /// format cache; formats learned from full frames are kept.
    pub fn set_drivers(&mut self, drivers: DriverSet) {
        drivers.declare_formats(&mut self.formats);
        self.drivers = drivers;
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Replaces the keys (configuration reload) and keeps the learned formats.
    pub fn set_keys(&mut self, keys: KeyStore) {
        self.keys = keys;
    }

    pub fn formats(&self) -> &FormatCache {
        &self.formats
    }

    pub fn formats_mut(&mut self) -> &mut FormatCache {
        &mut self.formats
    }

    /// Decodes one frame. Never panics; every failure is a [`DecodeError`] naming the
    /// layer, the class and, where one byte is to blame, its offset.
    pub fn decode(&mut self, frame: &RadioFrame) -> Result<Reading, DecodeError> {
        let mut reading = Reading::default();
        self.decode_into(frame, &mut reading)?;
        Ok(reading)
    }

    /// [`Decoder::decode`] into a caller-owned reading, replacing all its contents; the
    /// result is the same. The strings and record list of the previous contents are
    /// reused, so decoding telegram after telegram into one `Reading` saves most
    /// allocations. On error `reading` is left empty ([`Reading::default`]).
    pub fn decode_into(
        &mut self,
        frame: &RadioFrame,
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        match self.read(frame) {
            Ok(received) => self.decode_received(received, reading),
            Err(e) => {
                self.discard(reading);
                Err(e)
            }
        }
    }

    /// Reads a received frame once ([`Telegram::parse`]: CRCs, L-field bounds, wired
    /// frame checks, headers) into the [`Received`] every later stage takes. A frame
    /// that fails its checks gives the error, naming the meter when its header could
    /// be read.
    pub fn read<'f>(&mut self, frame: &'f RadioFrame) -> Result<Received<'f>, DecodeError> {
        self.last = None;
        let mut bytes = std::mem::take(&mut self.buf);
        match Telegram::parse(&frame.bytes, frame.crc, frame.lenient_length, &mut bytes) {
            Ok(telegram) => Ok(Received {
                frame,
                telegram,
                bytes,
            }),
            Err(rejected) => {
                self.buf = bytes;
                Err(DecodeError::from_wire(rejected.error, 0).for_address(rejected.address))
            }
        }
    }

    /// Decodes a frame [`Decoder::read`] read, into `reading` as [`Decoder::decode_into`]
    /// does; decryption works on the canonical bytes in place.
    pub fn decode_received(
        &mut self,
        received: Received<'_>,
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        // Built in place: a `Reading` is several hundred bytes, and moving it through
        // the layers' return values showed in profiles.
        let Received {
            frame,
            telegram,
            mut bytes,
        } = received;
        self.last = Some(telegram);
        self.verified_counter = None;
        if let Some(copy) = self.received.as_mut() {
            copy.clone_from(&bytes);
        }
        let result = self.decode_telegram(frame, &telegram, &mut bytes, reading);
        self.buf = bytes;
        match result {
            Ok(()) => {
                set_diagnostics(reading, &telegram);
                Ok(())
            }
            Err(e) => {
                self.discard(reading);
                Err(e.for_address(telegram.address))
            }
        }
    }

    /// Takes back the buffer of a frame read but not decoded (a duplicate).
    pub fn recycle(&mut self, received: Received<'_>) {
        self.buf = received.bytes;
    }

    /// Empties `reading` after a failure; its records (unless already set aside by
    /// `base_reading`) are kept for the next telegram.
    fn discard(&mut self, reading: &mut Reading) {
        let records = std::mem::take(reading).records;
        if !records.is_empty() {
            self.spare_records = records;
        }
    }

    /// The parsed telegram of the last frame decoded, when its link layer was readable
    /// (CRCs, L-field bounds, headers): what `--explain` reads.
    pub fn last_telegram(&self) -> Option<&Telegram> {
        self.last.as_ref()
    }

    /// The message counter (AFL MCR, or the TPL's) of the last telegram decoded, when its
    /// MAC verified: only then is the counter the meter's and not a forger's (replay checks).
    pub fn last_verified_counter(&self) -> Option<u32> {
        self.verified_counter
    }

    /// [`Decoder::decode`], also returning the working copy of the frame as the layers
    /// left it: canonical (CRC-free) and decrypted in place where a key verified. Used by
    /// `wmbusd decode --explain` to annotate the plaintext without decrypting twice.
    pub fn decode_traced(&mut self, frame: &RadioFrame) -> (Result<Reading, DecodeError>, Trace) {
        // Cleared first: a frame failing before the layers copy it must not show the last one.
        self.buf.clear();
        self.received = Some(Vec::new());
        let result = self.decode(frame);
        let telegram = self.last;
        let trace = Trace {
            working: self.buf.clone(),
            base: telegram.map_or(0, |t| t.base),
            telegram,
            received: self.received.take().unwrap_or_default(),
        };
        (result, trace)
    }

    /// The layers after the link header of a frame read once.
    fn decode_telegram(
        &mut self,
        frame: &RadioFrame,
        telegram: &Telegram,
        buf: &mut [u8],
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        if let Some(name) = telegram.control_frame() {
            return Err(DecodeError::new(
                Layer::Link,
                FailureKind::ControlFrame,
                format!("control frame: {name} (C-field {:02X})", telegram.control),
            )
            .at(if telegram.is_wired() { 4 } else { 1 })
            .for_meter(telegram.meter_id().as_deref()));
        }
        if telegram.is_wired() {
            return self.decode_wired(frame, telegram, buf, reading);
        }
        let Some(link) = telegram.link else {
            return Err(DecodeError::new(
                Layer::Link,
                FailureKind::Invalid,
                "no link header",
            ));
        };
        let mut lower = Lower {
            ell: SecurityOutcome::NONE,
            ell_access_number: None,
            afl: None,
            afl_offset: 0,
            payload_verified: telegram.dll.crc_verified,
        };
        let pos = self.lower_layers(buf, &link, &mut lower)?;
        let Some(&ci) = buf.get(pos) else {
            // A link header alone (e.g. ACC_NR access telegrams) carries no data.
            self.base_reading(frame, &link.address, reading);
            reading.access_number = lower.ell_access_number;
            set_security(&mut reading.security, 0, SecurityOutcome::NONE);
            return Ok(());
        };
        if tpl::is_manufacturer_specific(ci) {
            let meter = proprietary_address(&link, ci);
            self.base_reading(frame, &meter, reading);
            reading.access_number = lower.ell_access_number;
            set_security(&mut reading.security, 0, lower.ell);
            reading.manufacturer_data = Some(upper_hex(tail(buf, pos)));
            let vendor = vendor_only(Some(tail(buf, pos)));
            let link = link.control_and_address();
            self.run_driver(reading, &link, tail(buf, pos + 1), ci, &meter, &vendor);
            return Ok(());
        }
        let (tpl, used) =
            TplRepr::parse(tail(buf, pos)).map_err(|e| DecodeError::from_wire(e, pos))?;
        let meter = tpl_address(&link, &tpl, pos);
        let layer = Transport {
            tpl,
            start: pos,
            data: pos + used,
            meter,
            link: link.control_and_address(),
        };
        self.transport(frame, buf, &layer, &lower, reading)
            .map_err(|e| e.for_meter(Some(&meter.id_string())))
    }

    /// The ELL and the AFL after the link header, as far as present: returns where the
    /// next layer starts, the ELL's payload decrypted in place.
    fn lower_layers(
        &self,
        buf: &mut [u8],
        link: &LinkHeader,
        lower: &mut Lower,
    ) -> Result<usize, DecodeError> {
        let mut pos = link.buffer_len();
        if buf.get(pos).is_some_and(|&ci| ell::is_ell_ci(ci)) {
            pos = self.open_ell(buf, pos, link, lower)?;
        }
        if buf.get(pos) == Some(&CI_AFL) {
            let (afl, used) =
                AflRepr::parse(tail(buf, pos)).map_err(|e| DecodeError::from_wire(e, pos))?;
            if !afl.fragment_control.is_unfragmented() {
                return Err(DecodeError::new(
                    Layer::Afl,
                    FailureKind::Unsupported,
                    "fragmented message (AFL fragment id set); reassembly is not supported",
                )
                .at(pos + 2));
            }
            lower.afl = Some(afl);
            lower.afl_offset = pos;
            pos += used;
        }
        Ok(pos)
    }

    /// The reading's header fields, written over the previous contents of `reading`
    /// (reusing its strings); its records are set aside for `fill_records`. `security`
    /// is left to the caller, which always sets it (keeping the `verified_by` buffer).
    fn base_reading(&mut self, frame: &RadioFrame, meter: &Address, reading: &mut Reading) {
        let manufacturer = meter.manufacturer();
        reading.schema = SCHEMA_VERSION;
        let m = &mut reading.meter;
        m.id = empty_with_capacity(std::mem::take(&mut m.id), 8);
        push_id_text(&mut m.id, &meter.id);
        // Three letters, or four hex digits for an invalid code.
        m.manufacturer = empty_with_capacity(std::mem::take(&mut m.manufacturer), 4);
        match manufacturer.letters() {
            Some(letters) => m
                .manufacturer
                .extend(letters.iter().map(|&b| char::from(b))),
            None => m
                .manufacturer
                .push_str(&format!("{:04X}", manufacturer.raw())),
        }
        m.version = meter.version;
        let device_type = device_type::name(manufacturer, meter.device_type);
        m.device_type = empty_with_capacity(std::mem::take(&mut m.device_type), device_type.len());
        m.device_type.push_str(&device_type);
        // Labels the daemon adds from its configuration, never the decoder.
        m.name = None;
        reading.gateway = None;
        reading.received_at = frame.received_at.map(crate::timefmt::rfc3339);
        reading.rssi_dbm = frame.rssi_dbm;
        reading.link_mode = frame.link_mode.map(|m| m.as_str().to_owned());
        reading.access_number = None;
        reading.status = status_json(0);
        // Records are refilled from `spare_records` by `fill_records`.
        if !reading.records.is_empty() {
            self.spare_records = std::mem::take(&mut reading.records);
        }
        reading.manufacturer_data = None;
        reading.unparsed = None;
        reading.driver = None;
        reading.driver_error = None;
        reading.fields.clear();
        reading.report = None;
        reading.diagnostics = None;
        reading.receivers.clear();
    }
}

/// Trailing bytes, a rewritten L-field and the layers' notes, as the reading's diagnostics.
fn set_diagnostics(reading: &mut Reading, telegram: &Telegram) {
    let dll = &telegram.dll;
    // Notes set by this decode's layers (`base_reading` cleared older ones).
    let notes = reading
        .diagnostics
        .take()
        .map(|d| d.notes)
        .unwrap_or_default();
    let noticed = dll.trailing > 0 || dll.original_length.is_some() || !notes.is_empty();
    reading.diagnostics = noticed.then_some(crate::reading::Diagnostics {
        trailing_bytes: dll.trailing,
        lenient_length: dll.original_length,
        notes,
    });
}

fn tail_mut(buf: &mut [u8], from: usize) -> &mut [u8] {
    buf.get_mut(from..).unwrap_or_default()
}

fn tail(buf: &[u8], from: usize) -> &[u8] {
    buf.get(from..).unwrap_or_default()
}

/// The meter id as `link::id_string` prints it (BCD digits, most significant byte
/// first; non-BCD nibbles as lowercase hex), without going through `format!`.
#[cfg(test)]
fn id_text(id: &[u8; 4]) -> String {
    let mut s = String::new();
    push_id_text(&mut s, id);
    s
}

/// Appends the meter id as [`id_text`] writes it.
fn push_id_text(s: &mut String, id: &[u8; 4]) {
    s.reserve(8);
    for &b in id.iter().rev() {
        for nibble in [b >> 4, b & 0x0F] {
            s.extend(char::from_digit(u32::from(nibble), 16));
        }
    }
}

/// True for a frame whose payload is a vendor layout rather than records although its
/// CI announces records (B Meters RFM-TX1, see [`bmeters`]).
pub(super) fn is_vendor_payload(meter: &Address, tpl: &TplRepr) -> bool {
    let letters = meter.manufacturer().letters();
    tpl.header.is_some_and(|h| {
        crate::drivers::steps::bmeters::is_rfmtx1(
            letters,
            meter.version,
            meter.device_type,
            h.config.0,
        )
    })
}

/// No records, only vendor bytes (if any): what a driver reads of a payload that is
/// not data records.
fn vendor_only(manufacturer_data: Option<&[u8]>) -> apl::Apl<'_> {
    apl::Apl {
        records: Vec::new(),
        manufacturer_data,
        more_records_follow: false,
        unparsed: None,
    }
}

/// Records into the reading; vendor bytes and anything the record parser could not read
/// are kept as hex, so no byte of the telegram is lost.
///
/// The records are written over `spare` (records of an earlier reading, see
/// [`Decoder::decode_into`]) where it has them, keeping their buffers.
fn fill_records(
    reading: &mut Reading,
    parsed: &apl::Apl<'_>,
    base: usize,
    spare: &mut Vec<Record>,
) {
    let mut records = std::mem::take(spare);
    records.truncate(parsed.records.len());
    for (record, r) in records.iter_mut().zip(&parsed.records) {
        record.refill(r);
    }
    // `extend` from a slice iterator builds the new records in place.
    let new = parsed.records.get(records.len()..).unwrap_or_default();
    records.extend(new.iter().map(Record::from_data_record));
    // A compact profile's dates count back from its storage number's date record.
    for (record, r) in records.iter_mut().zip(&parsed.records) {
        if let Some(profile) = &mut record.profile {
            if let Some(anchor) = apl::time_point_record(&parsed.records, r) {
                profile.set_dates(r, &anchor.value);
            }
        }
    }
    profiles::expand(&mut records, &parsed.records);
    reading.records = records;
    if let Some(data) = parsed.manufacturer_data {
        reading.manufacturer_data = Some(upper_hex(data));
    }
    if let Some(rest) = &parsed.unparsed {
        reading.unparsed = Some(Unparsed {
            offset: base + rest.offset,
            reason: rest.error.kind.to_string(),
            hex: upper_hex(rest.bytes),
        });
    }
}

/// Sets `security` from a mode and outcome, reusing its `verified_by` buffer.
fn set_security(security: &mut Security, mode: u8, outcome: SecurityOutcome) {
    security.mode = mode;
    security.decrypted = outcome.decrypted;
    // Named so that an ELL-decrypted reading does not read as "mode 0: not encrypted".
    security.scheme = outcome.decrypted.then_some({
        std::borrow::Cow::Borrowed(match (outcome.verified_by, mode) {
            (Some("ell_crc"), _) => "ell_aes_ctr",
            (Some("diehl_checksum"), _) => "vendor",
            (_, 5) => "aes_cbc_mode_5",
            (_, 7) => "aes_cbc_mode_7",
            _ => "vendor",
        })
    });
    match outcome.verified_by {
        Some(how) => {
            let text =
                empty_with_capacity(security.verified_by.take().unwrap_or_default(), how.len());
            security.verified_by.insert(text).push_str(how);
        }
        None => security.verified_by = None,
    }
}

fn status_json(byte: u8) -> Status {
    Status::from_byte(byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The meter id of the one parse of a frame ([`Telegram::meter_id`], as dedupe and
    /// the failure counters name it) is the decoded reading's id, Diehl IZAR frames
    /// included, with and without link-layer CRCs.
    #[test]
    fn telegram_meter_id_is_the_decoded_one_across_the_corpus() {
        use crate::frame::{parse_hex, CrcState};

        let header_id = |bytes: &[u8]| {
            Telegram::parse(bytes, CrcState::Unknown, false, &mut Vec::new())
                .map_or_else(|r| r.address.map(|a| a.id_string()), |t| t.meter_id())
        };
        let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
        let mut decoder = Decoder::new(KeyStore::new());
        let mut compared = 0;
        for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let bytes = parse_hex(entry["telegram"].as_str().unwrap()).unwrap();
            // Without keys many fail later on; the header still names the meter.
            let id = match decoder.decode(&RadioFrame::new(bytes.clone())) {
                Ok(reading) => reading.meter.id,
                Err(e) => match e.meter {
                    Some(id) => id,
                    None => continue,
                },
            };
            assert_eq!(header_id(&bytes).as_deref(), Some(id.as_str()), "{line}");
            // The same frame with format-A CRCs names the same meter.
            let mut canonical = Vec::new();
            let dll =
                crate::wire::dll::canonicalize(&bytes, CrcState::Unknown, false, &mut canonical);
            let with_crcs =
                crate::wire::link::add_crc(&canonical, crate::wire::link::FrameFormat::A);
            if let (false, Ok(_), Ok(with_crcs)) =
                (crate::wire::mbus::looks_wired(&bytes), dll, with_crcs)
            {
                assert_eq!(header_id(&with_crcs).as_deref(), Some(id.as_str()));
            }
            compared += 1;
        }
        assert!(compared > 250, "{compared}");
    }

    /// `decode_into` gives what `decode` gives, whatever the reading held before: one
    /// reading is carried through the whole corpus (more, fewer, other records; text
    /// values where numbers were; failures in between).
    #[test]
    fn decode_into_matches_decode_on_corpus() {
        use crate::frame::{parse_hex, LinkMode};

        let corpus = include_str!("../../tests/data/wmbusmeters-public.jsonl");
        let entries: Vec<serde_json::Value> = corpus
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut reused = Reading::default();
        let mut compared = 0;
        for (n, entry) in entries.iter().enumerate() {
            let mut keys = KeyStore::new();
            if let Some(key) = entry["key"].as_str() {
                keys.set_default_hex(key).unwrap();
            }
            let mut fresh = Decoder::new(keys.clone());
            let mut reusing = Decoder::new(keys);
            let priors = entry["prior_telegrams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str());
            for hex in priors {
                let frame = RadioFrame::new(parse_hex(hex).unwrap());
                let _ = fresh.decode(&frame);
                let _ = reusing.decode_into(&frame, &mut reused);
            }
            let mut frame =
                RadioFrame::new(parse_hex(entry["telegram"].as_str().unwrap()).unwrap());
            if n % 3 == 0 {
                frame.rssi_dbm = Some(-70.0);
                frame.link_mode = Some(LinkMode::T1);
                frame.received_at = Some(std::time::UNIX_EPOCH);
            }
            match (
                fresh.decode(&frame),
                reusing.decode_into(&frame, &mut reused),
            ) {
                (Ok(expected), Ok(())) => {
                    assert_eq!(reused, expected, "telegram {n}");
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    expected.write_json(&mut a).unwrap();
                    reused.write_json(&mut b).unwrap();
                    assert_eq!(a, b, "telegram {n}");
                    compared += 1;
                }
                (Err(expected), Err(err)) => {
                    assert_eq!(err.to_string(), expected.to_string(), "telegram {n}");
                    assert_eq!(reused, Reading::default(), "telegram {n}");
                }
                (a, b) => panic!("telegram {n}: decode {a:?}, decode_into {b:?}"),
            }
        }
        assert!(compared > 200, "only {compared} corpus telegrams decoded");
        // Keeps the failure branch exercised: a broken frame between good ones.
        let broken = RadioFrame::new(vec![0x05, 0x44, 0x2D]);
        let mut decoder = Decoder::new(KeyStore::new());
        assert!(decoder.decode_into(&broken, &mut reused).is_err());
        assert_eq!(reused, Reading::default());
    }

    #[test]
    fn id_text_matches_link_id_string() {
        for id in [
            [0x99, 0x87, 0x34, 0x76],
            [0x0A, 0xBC, 0x00, 0xF1],
            [0xFF; 4],
            [0; 4],
        ] {
            assert_eq!(id_text(&id), crate::wire::link::id_string(&id));
        }
    }
}
