//! The normalized reading: what wmbusd publishes for every decoded telegram.
//!
//! # JSON schema, version 1
//!
//! One JSON object per telegram. The schema changes only together with
//! [`SCHEMA_VERSION`]; consumers should check `"schema"`. Fields marked *optional* are
//! left out when unknown. Within one number, new optional fields may be added (consumers
//! must ignore fields they do not know); no field is removed, renamed or changes its
//! type without a new number.
//!
//! ```json
//! {"schema":1,
//!  "meter":{"id":"12345678","manufacturer":"KAM","version":27,"device_type":"cold_water"},
//!  "received_at":"2026-11-22T22:30:00Z","rssi_dbm":-67.5,"link_mode":"C1",
//!  "access_number":42,
//!  "status":{"byte":0,"flags":[]},
//!  "security":{"mode":5,"decrypted":true,"verified_by":"2f2f"},
//!  "records":[{"quantity":"volume","value":123.456,"unit":"m3","function":"instantaneous",
//!              "storage":0,"tariff":0,"subunit":0,"dif_vif":"0C13"}]}
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `schema` | integer | always 1 for this layout |
//! | `meter.id` | string | 8 BCD digits of the meter address (long TPL header wins over the DLL) |
//! | `meter.manufacturer` | string | three-letter FLAG code, e.g. `KAM` |
//! | `meter.version` | integer | version byte |
//! | `meter.device_type` | string | snake_case device type, e.g. `cold_water`, `heat` |
//! | `meter.name` | string, optional | the meter's `[[meter]] name` in the daemon's configuration (published readings only) |
//! | `gateway` | string, optional | `[gateway] id` of the daemon that received the telegram (published readings only) |
//! | `received_at` | string, optional | receive time, RFC 3339 UTC |
//! | `rssi_dbm` | number, optional | signal strength reported by the receiver |
//! | `link_mode` | string, optional | `S1`, `T1`, `C1`, `C1+T1`, `N1`; `wired` for a meter read over a wired M-Bus |
//! | `access_number` | integer, optional | TPL access number (0–255) |
//! | `status.byte` | integer | TPL status byte |
//! | `status.flags` | array of strings | set bits of the status byte, see below |
//! | `security.mode` | integer | TPL security mode (0 = none, 5, 7, …) |
//! | `security.decrypted` | boolean | the payload was decrypted by wmbusd |
//! | `security.verified_by` | string or null | how the content was checked: `"2f2f"` (decrypted data starts with 2F 2F), `"mac"` (AFL MAC), `"ell_crc"` (ELL payload CRC), null (not verified, e.g. plaintext) |
//! | `security.scheme` | string, optional | the encryption wmbusd removed, when it removed one: `"aes_cbc_mode_5"`, `"aes_cbc_mode_7"` (TPL security modes 5 and 7), `"ell_aes_ctr"` (the extended link layer's AES-128-CTR: the TPL itself then carries no security, so `mode` is 0), `"vendor"` (a manufacturer's scrambling, e.g. Diehl real data) |
//! | `records` | array | data records in telegram order, see below |
//! | `manufacturer_data` | string, optional | uppercase hex of vendor bytes after DIF 0x0F/0x1F, or of a whole proprietary APL |
//! | `unparsed` | object, optional | `{"offset":…,"reason":…,"hex":…}`: record bytes the decoder could not read (a truncated last record, a reserved DIF), kept so that nothing is lost; `offset` is in the CRC-free frame |
//! | `driver` | string, optional | name of the manufacturer driver that matched the meter (see *Driver fields*); absent when none did |
//! | `driver_error` | string, optional | why the driver's named decoding step (descrambling, vendor decryption) failed; that step's fields are then absent |
//! | `fields` | object, optional | named values from that driver, e.g. `{"total_m3":12.345,"target_date":"2026-10-31"}`; absent when empty |
//! | `report` | object, optional | an application error (CI 0x70) or alarm (CI 0x71) report of a wired meter: `{"kind":"application_error"\|"alarm","code":2,"name":"buffer too long, truncated"}`; records that follow the code are in `records` |
//! | `diagnostics` | object, optional | what the frame's checks noticed besides the reading; absent when nothing: `trailing_bytes` (count of bytes that arrived after the frame's end as its L-field, or a wired frame's stop byte, bounds it — never decoded), `lenient_length` (only with `wmbusd decode --lenient-length`: the L-field as received, when the frame was read whole past it; such a reading rests on an unchecked length), `notes` (named remarks, absent when empty: `"claimed_mode_plaintext"` — a wired long header claiming security mode 5 or 7 read as plaintext; see docs/reading-schema.md) |
//! | `receivers` | array, optional | the radios of this gateway that heard the telegram, best RSSI first: `[{"radio":"/dev/serial/by-id/…","rssi_dbm":-61.5},…]`; present when the daemon gathers copies (`[pipeline] gather_ms`, on by default with more than one radio); `rssi_dbm` of the reading is then the best one |
//!
//! Status flags (EN 13757-7 status byte): bits 1..0 give `"busy"` (01), `"error"` (10)
//! or `"alarm"` (11); bit 2 `"power_low"`, bit 3 `"permanent_error"`, bit 4
//! `"temporary_error"`; vendor bits 5–7 appear as `"manufacturer_bit5"` …
//! `"manufacturer_bit7"`. No flag set means the meter reports no problem.
//!
//! Integrity: a reading is only made from bytes every check vouched for — the DLL CRCs
//! (checked by wmbusd or, as the receiver reports, by the dongle), the L-field (bytes
//! beyond it are counted in `diagnostics.trailing_bytes`, not parsed; a frame shorter
//! than its L-field is an error), a wired frame's start and stop bytes, both L-fields and
//! checksum, and the MAC or decryption checks. Frames whose C-field carries no meter data
//! (SND_NKE, ACK, NACK, REQ_UD1/2, CNF_IR, a wired E5, short or control frame) make no
//! reading: they are counted as `control_frame`, not as a failure of the meter.
//!
//! Wired frames without a long header (CI 0x70, 0x71, 0x78) name the meter by its
//! primary address as BCD digits (`"00000005"` for address 5), manufacturer `"0000"`.
//! The fixed data structure (CI 0x73 LSB first, 0x77 MSB first; EN 1434-3 heritage)
//! gives the meter id, access number, status (power low and error bits) and its two
//! counters as records with the quantity and unit of their variable-data equivalent
//! (e.g. `energy` in kWh, storage 1 when the counters are stored at a fixed date or the
//! second unit is "same but historic"); a unit code without an equivalent is kept as an
//! `unknown` record. CI 0x76 (variable data, MSB first) reads like 0x72.
//!
//! ## Driver fields
//!
//! A manufacturer driver (a TOML definition, built in or dropped into a drivers
//! directory; `wmbusd drivers list`) is selected by manufacturer, version, device
//! type and optionally the CI of the frame. It never changes `records`; it adds `driver` and `fields`. Field names end in
//! their unit, with the values in that unit: `_m3`, `_kwh`, `_mwh`, `_mj`, `_gj`,
//! `_m3h`, `_kw`, `_hca`, `_c`, `_k`, `_bar`, `_kg`, `_v`, `_a`, `_h`, `_d`, `_min`,
//! `_s`, and from vendor bytes only `_y` (years), `_m3c` (m3·°C), `_kvarh`, `_kvah`,
//! `_hz`, `_rh` (% relative humidity), `_ppm`; names ending `_date`, `_datetime`, `_time` hold ISO text as in `records`;
//! names ending `_flags`, `_status`, `_counter`, `_version`, `_text`, `_nr` hold
//! unitless numbers or text. Values are exact decimals, converted from the record's
//! unit only by exact factors (m3/min → m3/h × 60, d → h × 24, kWh → MWh × 0.001);
//! where no exact factor exists (MJ → kWh) the field is left out. A field whose record
//! or bytes are absent from the telegram is left out; a present record without a valid
//! value gives null. Telegrams of meters no driver matches carry neither key.
//!
//! ## Records
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `quantity` | string | what is measured (table below) |
//! | `value` | number, string or null | exact decimal number in `unit`; ISO 8601 string for dates and times; text; uppercase hex for binary data; null when the meter marks the value invalid, sends no data, or a record error is set |
//! | `unit` | string or null | unit of a numeric `value` (table below); null for dates, text, binary and unitless values |
//! | `function` | string | `instantaneous`, `maximum`, `minimum`, `error` (value during error state) |
//! | `storage` | integer | storage number: 0 = current, 1 = usually the last billing date, higher = history |
//! | `tariff` | integer | tariff number (0 = total) |
//! | `subunit` | integer | device subunit |
//! | `dif_vif` | string | uppercase hex of the record header (DIF, DIFEs, VIF, VIFEs and plain-text unit) exactly as on air; identifies the record |
//! | `error` | string, optional | record error from a VIFE: `no_data_available`, `data_overflow`, `data_underflow`, `data_error`, `premature_end_of_record`, `storage_not_implemented`, … |
//! | `qualifiers` | array of strings, optional | combinable VIFEs refining the quantity: `per_hour`, `forward_flow`, `backward_flow`, `lower_limit`, `start_date`, `phase_l1`, `average`, `at_base_conditions`, … |
//! | `unit_text` | string, optional | unit sent as text by a plain-text VIF (0x7C/0xFC) |
//! | `raw` | string, optional | uppercase hex of the data of manufacturer-specific records, and of records whose value is withheld for a record error |
//! | `profile` | object, optional | elements of a compact profile (EN 13757-3 Annex F; `value` keeps the record's hex): `{"kind":"inverse_compact_profile","mode":"absolute","spacing":"1 month","unit":"hca","values":[627,395,null],"points":[{"value":627,"date":"2024-01-31"},...]}`. `kind`: `inverse_compact_profile` (newest first, `values[0]` one spacing before the record's time point), `compact_profile` (oldest first, the last value one spacing before it) or `compact_profile_with_register_numbers` (value k is storage number s + k); `mode`: `absolute`, or `increments`/`decrements`/`differences` (changes, signed; decrements negative); `points`: per value its `date` (the time point is the date record of the same storage number, tariff and subunit; absent without one) or its `storage`; `unit` as for `value`. Each value is also published as the ordinary record of its storage number right after the profile record (same quantity, unit, function, tariff, subunit; `dif_vif` the header without the profile VIFE; inverse profile at storage s: value k at s + k + 1; compact profile of n values: value k at s + n − k), followed by the date record of that storage number the profile implies; changes (increment modes) carry the mode as a qualifier; records the telegram sends itself are not repeated |
//!
//! Numbers are exact: raw meter integers scaled by powers of ten are printed as the
//! shortest decimal (`123.456`, never `123.45600000000002`); integers print without a
//! fraction. A numeric value's `unit` is always one of:
//!
//! | unit | used for | conversion from the meter's unit |
//! |---|---|---|
//! | `kWh` | energy (Wh VIFs, MWh table FB) | exact power of ten |
//! | `MJ` | energy (J VIFs, GJ and Mcal in table FB) | power of ten; 1 Mcal = 4.1868 MJ exactly |
//! | `m3` | volume | power of ten; ft³ (× 0.028316846592) and US gallon (× 0.003785411784) exactly |
//! | `kg` | mass | power of ten (t → kg) |
//! | `kW` | power (W VIFs, MW in FB), cumulative max power | power of ten |
//! | `MJ/h` | power (J/h VIFs, GJ/h in FB) | power of ten |
//! | `m3/h`, `m3/min`, `m3/s` | volume flow (gallon flows converted exactly) | power of ten |
//! | `kg/h` | mass flow | power of ten |
//! | `C` | flow, return, external temperature, temperature limit | power of ten |
//! | `K` | temperature difference | power of ten |
//! | `bar` | pressure | power of ten |
//! | `s`, `min`, `h`, `d` | durations (on time, operating time, intervals, periods) | as sent |
//! | `hca` | heat cost allocator units | as sent |
//! | `V`, `A` | voltage, current | power of ten |
//!
//! Quantities whose unit is outside this list carry the unit in their name and have
//! `unit` null: `*_fahrenheit` (°F temperatures are not converted because ×5/9 is not
//! an exact decimal), `relative_humidity_percent`, `reactive_energy_kvarh`,
//! `apparent_energy_kvah`, `reactive_power_kvar`, `apparent_power_kva`, `frequency_hz`,
//! `rf_level_dbm`, `*_months`, `*_years`; `credit`/`debit` are in local currency units.
//!
//! ## Quantities
//!
//! | quantity | unit | source |
//! |---|---|---|
//! | `energy` | kWh / MJ | VIF 0x00–0x0F, FB 0x00–0x01, 0x08–0x09, 0x0C–0x0F |
//! | `volume` | m3 | VIF 0x10–0x17, FB 0x10–0x11, 0x20–0x23 |
//! | `mass` | kg | VIF 0x18–0x1F, FB 0x18–0x19 |
//! | `on_time`, `operating_time` | s/min/h/d | VIF 0x20–0x27 |
//! | `power` | kW / MJ/h | VIF 0x28–0x37, FB 0x28–0x29, 0x30–0x31 |
//! | `volume_flow` | m3/h, m3/min, m3/s | VIF 0x38–0x4F, FB 0x24–0x26 |
//! | `mass_flow` | kg/h | VIF 0x50–0x57 |
//! | `flow_temperature`, `return_temperature`, `external_temperature` | C | VIF 0x58–0x5F, 0x64–0x67 |
//! | `temperature_difference` | K | VIF 0x60–0x63 |
//! | `pressure` | bar | VIF 0x68–0x6B |
//! | `date` | – (ISO date) | VIF 0x6C (type G); VIF 0x6D with 2 bytes |
//! | `datetime` | – (ISO date-time) | VIF 0x6D (type F, I) |
//! | `time` | – (ISO time) | VIF 0x6D with 3 bytes (type J) |
//! | `hca` | hca | VIF 0x6E |
//! | `averaging_duration`, `actuality_duration` | s/min/h/d | VIF 0x70–0x77 |
//! | `fabrication_number`, `enhanced_identification`, `bus_address` | – | VIF 0x78–0x7A |
//! | `any_vif` | – | VIF 0x7E |
//! | `plain_text` | – (see `unit_text`) | VIF 0x7C/0xFC |
//! | `manufacturer_specific` | – (see `raw`) | VIF 0x7F/0xFF |
//! | `temperature_limit` | C | FB 0x74–0x77 |
//! | `cumulative_max_power` | kW | FB 0x78–0x7F |
//! | `resulting_rating_factor`, `thermal_output_rating_factor`, `thermal_coupling_rating_factor_overall`/`_room`/`_heater`, `low_temperature_rating_factor`, `display_output_scaling_factor` | – | FB 0x68–0x6E |
//! | `credit`, `debit` | – | FD 0x00–0x07 |
//! | `access_number`, `device_type`, `manufacturer`, `parameter_set`, `model_version`, `hardware_version`, `firmware_version`, `software_version` | – | FD 0x08–0x0F |
//! | `customer_location`, `customer`, `access_code_user`/`_operator`/`_system_operator`/`_developer`, `password` | – | FD 0x10–0x16 |
//! | `error_flags`, `error_mask`, `digital_output`, `digital_input`, `remote_control`, `control_signal`, `parameter_activation_state` | – (integer bit field) | FD 0x17, 0x18, 0x1A, 0x1B, 0x1F, 0x62, 0x66 |
//! | `security_key`, `baud_rate`, `response_delay_time`, `retry` | – | FD 0x19, 0x1C–0x1E |
//! | `first_storage_number`, `last_storage_number`, `storage_block_size`, `tariff_subunit_descriptor` | – | FD 0x20–0x23 |
//! | `storage_interval`, `duration_since_last_readout`, `tariff_duration`, `tariff_period`, `nominal_transmission_period` | s/min/h/d | FD 0x24–0x27, 0x2C–0x2F, 0x31–0x37, 0x3C–0x3F |
//! | `storage_interval_months`/`_years`, `tariff_period_months`/`_years` | – | FD 0x28, 0x29, 0x38, 0x39 |
//! | `operator_specific_data`, `wmbus_data_container`, `manufacturer_data_container` | – | FD 0x2A, 0x3B, 0x76 |
//! | `time_point_second` | s | FD 0x2B |
//! | `tariff_start`, `battery_change_datetime` | – (ISO) | FD 0x30, 0x70 |
//! | `dimensionless` | – | FD 0x3A |
//! | `voltage` | V | FD 0x40–0x4F |
//! | `current` | A | FD 0x50–0x5F |
//! | `reset_counter`, `cumulation_counter`, `day_of_week`, `week_number`, `day_change_time_point`, `special_supplier_information` | – | FD 0x60–0x61, 0x63–0x65, 0x67 |
//! | `duration_since_last_cumulation`, `battery_operating_time` | h/d (`_months`/`_years`: –) | FD 0x68–0x6F |
//! | `rf_level_dbm` | – | FD 0x71 |
//! | `daylight_saving`, `listening_window_management`, `meter_stop_count` | – | FD 0x72, 0x73, 0x75 |
//! | `remaining_battery_lifetime` | d | FD 0x74 (`_months`/`_years` from `FD FD 02/03`) |
//! | `unknown` | – | a reserved or unassigned VIF/VIFE code (e.g. 0x7B without its extension bit): value as unsigned integer, `dif_vif` and `raw` keep the bytes |
//!
//! Combinable VIFEs that turn a record into a date, duration or count (e.g. `start_date`,
//! `duration_first_upper_limit_exceed`, `upper_limit_exceed_count`) keep the base
//! `quantity`, list the VIFE in `qualifiers`, and change `unit` accordingly (null for
//! dates and counts, s/min/h/d for durations). Multiplicative (0x70–0x77, 0x7D) and
//! additive (0x78–0x7B, read as 10^(nn−3) units of the VIF added to the value)
//! correction VIFEs are already applied to `value`.
//!
//! Dates and times are the meter's local time without zone: `2008-05-31`,
//! `2008-05-31T23:50`, `2021-11-06T18:25:07`, `23:59:59`. Periodic ("every") fields are
//! written as `X` digits (ISO 8601-2 unspecified digits): `XXXX-01-01` = every 1 January.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::wire::apl::{self, push_u64, Combinable, DataRecord, VifTable};
pub use crate::wire::apl::{Decimal, Function};

mod shapes;
pub use shapes::JsonWriter;
use shapes::{PrintedNumbers, WriterMemory};

/// Version of the JSON layout documented above.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub schema: u32,
    pub meter: Meter,
    /// `[gateway] id` of the daemon that received it; absent outside the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_number: Option<u8>,
    pub status: Status,
    pub security: Security,
    pub records: Vec<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer_data: Option<String>,
    /// Record bytes the decoder could not read (a malformed or truncated last record,
    /// a reserved DIF), kept so that nothing is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unparsed: Option<Unparsed>,
    /// Name of the manufacturer driver that matched the meter; absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Arc<str>>,
    /// Why the driver's named decoding step failed (e.g. a vendor frame too short); its
    /// fields are then absent. Absent when the step ran or there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_error: Option<String>,
    /// Named values the driver took from the records and vendor bytes.
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub fields: Fields,
    /// An application error (CI 0x70) or alarm (CI 0x71) report, named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    /// What the frame's checks noticed besides the reading: bytes after its end, an
    /// L-field rewritten on request. Absent when there is nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Diagnostics>,
    /// The radios of the gateway that heard this telegram, best RSSI first (only when the
    /// daemon gathers copies: `[pipeline] gather_ms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<Receiver>,
}

/// One radio that heard a telegram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receiver {
    /// The radio's device (as configured in `[[radio]] device`).
    pub radio: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<f32>,
}

/// A meter's application error or alarm report (EN 13757-3, CI 0x70 / 0x71).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `application_error` or `alarm`.
    pub kind: String,
    /// The code byte the meter sent.
    pub code: u8,
    /// What the code means.
    pub name: String,
}

/// Frame-level remarks of a reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Bytes that arrived after the frame's end as its L-field bounds it; not parsed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trailing_bytes: usize,
    /// Only with `wmbusd decode --lenient-length`: the L-field as received, when the
    /// frame was read whole past it (the reading then rests on an unchecked length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lenient_length: Option<u8>,
    /// Named remarks of the decoder, e.g. [`CLAIMED_MODE_PLAINTEXT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Cow<'static, str>>,
}

/// A wired frame whose configuration field claims security mode 5 or 7 was read as
/// plaintext: its encrypted-block count does not fit the frame, or no key is configured
/// and the data parses as well-formed records to its end.
pub const CLAIMED_MODE_PLAINTEXT: &str = "claimed_mode_plaintext";

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Field names in name order, each with its JSON object key rendered once. A driver
/// builds its table when its definition loads and every reading it fills shares it:
/// a field then costs an index, not a name copy, reference count or escape check.
///
/// No names is `None`, so that an empty (default) reading allocates nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldNames(Option<Arc<Vec<FieldName>>>);

#[derive(Debug, Clone)]
struct FieldName {
    name: Box<str>,
    /// `,"name":` as JSON, escaped as serde_json escapes keys, then zero bytes up to
    /// [`SHORT_KEY`] bytes, or else up to a whole number of [`KEY_CHUNK`]s.
    key: Box<[u8]>,
    key_len: usize,
}

/// Keys are copied in chunks of this fixed size: copies of a constant size compile
/// inline, where one of a length known only at run time is a `memcpy` call.
const KEY_CHUNK: usize = 16;

/// Keys up to this long (names up to 44 characters: all built-in ones) are copied in
/// one piece of this fixed size.
const SHORT_KEY: usize = 48;

impl FieldName {
    fn new(name: &str) -> FieldName {
        // Serialising a `str` cannot fail (no I/O, no map key to check); the fallback
        // only keeps this free of a panic.
        let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""));
        let mut key = Vec::with_capacity(quoted.len() + 2);
        key.push(b',');
        key.extend_from_slice(quoted.as_bytes());
        key.push(b':');
        let key_len = key.len();
        key.resize(key_len.max(SHORT_KEY).next_multiple_of(KEY_CHUNK), 0);
        FieldName {
            name: name.into(),
            key: key.into(),
            key_len,
        }
    }

    /// Appends `,"name":`.
    fn write_key(&self, out: &mut Vec<u8>) {
        let end = out.len() + self.key_len;
        if let Ok(key) = <&[u8; SHORT_KEY]>::try_from(&*self.key) {
            out.extend_from_slice(key);
            out.truncate(end);
            return;
        }
        out.reserve(self.key.len());
        for chunk in self.key.chunks_exact(KEY_CHUNK) {
            if let Ok(chunk) = <&[u8; KEY_CHUNK]>::try_from(chunk) {
                out.extend_from_slice(chunk);
            }
        }
        // Cut the padding off again.
        out.truncate(end);
    }
}

impl FieldNames {
    /// The distinct `names`, in natural order ([`natural_cmp`]).
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> FieldNames {
        let mut names: Vec<&str> = names.into_iter().collect();
        names.sort_unstable_by(|a, b| natural_cmp(a, b));
        names.dedup();
        FieldNames(Some(Arc::new(
            names.into_iter().map(FieldName::new).collect(),
        )))
    }

    fn as_slice(&self) -> &[FieldName] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Shared with `other`: filled by the same driver.
    fn same(&self, other: &FieldNames) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    /// The names in order: the indices [`Fields::refill`] takes.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.as_slice().iter().map(|n| &*n.name)
    }

    fn get(&self, index: usize) -> Option<&FieldName> {
        self.as_slice().get(index)
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.as_slice()
            .binary_search_by(|n| natural_cmp(&n.name, name))
    }

    /// Adds `name` at `index` (where [`FieldNames::position`] says it sorts), copying
    /// the table first when a driver or another reading shares it.
    fn insert(&mut self, index: usize, name: &str) {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default)).insert(index, FieldName::new(name));
    }
}

/// Field names the way people sort them: runs of digits compare as numbers, so
/// `target_2` comes before `target_10` (text order would put `target_10` first). Names
/// equal as numbers (`a01`, `a1`) fall back to text order, keeping the order total.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        let (Some((&c, x_rest)), Some((&d, y_rest))) = (x.split_first(), y.split_first()) else {
            return x.len().cmp(&y.len()).then_with(|| a.cmp(b));
        };
        if c.is_ascii_digit() && d.is_ascii_digit() {
            let (nx, rx) = x.split_at(x.iter().take_while(|b| b.is_ascii_digit()).count());
            let (ny, ry) = y.split_at(y.iter().take_while(|b| b.is_ascii_digit()).count());
            let (tx, ty) = (without_leading_zeros(nx), without_leading_zeros(ny));
            let order = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
            if order != Ordering::Equal {
                return order;
            }
            (x, y) = (rx, ry);
        } else if c != d {
            return c.cmp(&d);
        } else {
            (x, y) = (x_rest, y_rest);
        }
    }
}

fn without_leading_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|&&b| b == b'0').count();
    digits.split_at(zeros).1
}

/// A driver's named values, in natural name order ([`natural_cmp`]). The names are indices into the driver's
/// [`FieldNames`], and the storage is kept between telegrams by
/// `Decoder::decode_into`: filling it costs no allocation and no reference count per
/// field.
#[derive(Clone, Default)]
pub struct Fields {
    names: FieldNames,
    /// In index order, which is name order; the first `len` are the fields. The rest
    /// are spare slots whose text buffers the next [`Fields::refill`] reuses: `clear`
    /// runs for every decoded telegram.
    entries: Vec<FieldSlot>,
    len: usize,
}

/// One field: its name's index into [`FieldNames`] and its value.
#[derive(Debug, Clone)]
struct FieldSlot {
    index: usize,
    value: Value,
    /// The index of the reading's record whose number this is, unchanged: the JSON
    /// writer then copies the text it printed for that record (once it has checked
    /// that the numbers are still equal) instead of searching for it.
    copy_of: Option<usize>,
}

impl FieldSlot {
    fn new(index: usize, value: Value) -> FieldSlot {
        FieldSlot {
            index,
            value,
            copy_of: None,
        }
    }
}

/// What a [`Fields::refill`] filler did with a field's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// The field is absent from this telegram.
    Absent,
    /// The slot holds the field's value.
    Value,
    /// The slot holds the number of the reading's record at this index, unchanged.
    CopyOf(usize),
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        let index = self.names.position(name).ok()?;
        let at = self.entry(index).ok()?;
        self.live().get(at).map(|f| &f.value)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`, keeping the names sorted.
    pub fn insert(&mut self, name: impl AsRef<str>, value: Value) {
        let name = name.as_ref();
        self.entries.truncate(self.len);
        let index = match self.names.position(name) {
            Ok(index) => index,
            Err(index) => {
                self.names.insert(index, name);
                // The names from `index` on moved up by one.
                for field in &mut self.entries {
                    if field.index >= index {
                        field.index += 1;
                    }
                }
                index
            }
        };
        match self.entry(index) {
            Ok(at) => {
                if let Some(slot) = self.entries.get_mut(at) {
                    *slot = FieldSlot::new(index, value);
                }
            }
            Err(at) => self.entries.insert(at, FieldSlot::new(index, value)),
        }
        self.len = self.entries.len();
    }

    /// Replaces every field, name by name of `names` (shared, not copied): `fill`
    /// writes the value of the name at an index into a slot and says whether the
    /// field is present, and whether it is a record's number unchanged. Slots hold
    /// the values of an earlier telegram, so that text can be written into an
    /// existing buffer.
    pub(crate) fn refill(
        &mut self,
        names: &FieldNames,
        mut fill: impl FnMut(usize, &mut Value) -> Fill,
    ) {
        // The same driver as for the last telegram: the table is already shared.
        if !self.names.same(names) {
            self.names = names.clone();
        }
        // A slot per name, so that the loop below needs no growing.
        let names = self.names.len();
        if self.entries.len() < names {
            self.entries
                .resize_with(names, || FieldSlot::new(0, Value::Null));
        }
        let mut len = 0;
        for index in 0..names {
            let Some(slot) = self.entries.get_mut(len) else {
                break;
            };
            slot.index = index;
            slot.copy_of = match fill(index, &mut slot.value) {
                Fill::Absent => continue,
                Fill::Value => None,
                Fill::CopyOf(record) => Some(record),
            };
            len += 1;
        }
        self.len = len;
    }

    /// The fields, without the spare slots.
    fn live(&self) -> &[FieldSlot] {
        self.entries.get(..self.len).unwrap_or(&self.entries)
    }

    fn entry(&self, index: usize) -> Result<usize, usize> {
        self.live().binary_search_by_key(&index, |f| f.index)
    }

    pub fn iter(&self) -> FieldsIter<'_> {
        FieldsIter {
            names: &self.names,
            entries: self.live().iter(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(name, _)| name)
    }

    pub fn len(&self) -> usize {
        self.live().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every field. The names and the slots stay, for the next telegram.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The fields as a JSON object, `{"name":value,...}`, with the keys as rendered
    /// when the names were loaded.
    /// Numbers in `printed` (a field copied from a record) are copied from there.
    fn write_json_object(
        &self,
        out: &mut Vec<u8>,
        printed: Option<&PrintedNumbers>,
        records: &[Record],
    ) -> serde_json::Result<()> {
        // Each key comes with its leading comma; the first key's comma becomes the
        // opening brace.
        let open = out.len();
        for field in self.live() {
            if let Some(name) = self.names.get(field.index) {
                name.write_key(out);
                match printed {
                    Some(printed) => {
                        printed.write_again(&field.value, field.copy_of, records, out)?
                    }
                    None => field.value.write_json(out)?,
                }
            }
        }
        match out.get_mut(open) {
            Some(comma) => *comma = b'{',
            None => out.push(b'{'),
        }
        out.push(b'}');
        Ok(())
    }
}

/// The fields of a [`Fields`] in name order.
#[derive(Debug, Clone)]
pub struct FieldsIter<'a> {
    names: &'a FieldNames,
    entries: std::slice::Iter<'a, FieldSlot>,
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        let names = self.names;
        self.entries
            .by_ref()
            .find_map(|f| Some((&*names.get(f.index)?.name, &f.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.entries.size_hint().1)
    }
}

/// Equal when the same names hold the same values, whatever tables the names are in.
impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = Value;

    /// Panics when `name` is absent, like `BTreeMap`'s index (tests only; code uses `get`).
    fn index(&self, name: &str) -> &Value {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no field {name:?}"),
        }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a Value);
    type IntoIter = FieldsIter<'a>;

    fn into_iter(self) -> FieldsIter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>> FromIterator<(K, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Fields {
        let mut fields = Fields::new();
        for (name, value) in iter {
            fields.insert(name, value);
        }
        fields
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        Ok(map.into_iter().collect())
    }
}

/// The tail of an APL that did not parse as records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unparsed {
    /// Offset of the first unread byte in the canonical frame.
    pub offset: usize,
    /// Why parsing stopped there.
    pub reason: String,
    pub hex: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    /// Eight BCD digits.
    pub id: String,
    /// Three-letter FLAG code.
    pub manufacturer: String,
    pub version: u8,
    /// snake_case device type.
    pub device_type: String,
    /// The configured `[[meter]] name`; set by the daemon, absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub byte: u8,
    pub flags: Vec<Cow<'static, str>>,
}

impl Status {
    /// Flags of a TPL status byte (protocol.md §3.3).
    pub fn from_byte(byte: u8) -> Status {
        let mut flags = Vec::new();
        match byte & 0x03 {
            0x01 => flags.push(Cow::Borrowed("busy")),
            0x02 => flags.push(Cow::Borrowed("error")),
            0x03 => flags.push(Cow::Borrowed("alarm")),
            _ => {}
        }
        const BITS: [(u8, &str); 6] = [
            (0x04, "power_low"),
            (0x08, "permanent_error"),
            (0x10, "temporary_error"),
            (0x20, "manufacturer_bit5"),
            (0x40, "manufacturer_bit6"),
            (0x80, "manufacturer_bit7"),
        ];
        flags.extend(
            BITS.iter()
                .filter(|(mask, _)| byte & mask != 0)
                .map(|&(_, name)| Cow::Borrowed(name)),
        );
        Status { byte, flags }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub mode: u8,
    pub decrypted: bool,
    /// `"2f2f"`, `"mac"`, `"ell_crc"` or null.
    pub verified_by: Option<String>,
    /// Which encryption was removed (see the schema); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Cow<'static, str>>,
}

/// One published data record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub quantity: Cow<'static, str>,
    pub value: Value,
    pub unit: Option<Cow<'static, str>>,
    pub function: Function,
    pub storage: u64,
    pub tariff: u32,
    pub subunit: u32,
    pub dif_vif: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub qualifiers: Vec<Cow<'static, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// History values of a compact profile record in transmission order, and where each
/// lies (see the schema above).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `inverse_compact_profile`, `compact_profile` or `compact_profile_with_register_numbers`.
    pub kind: Cow<'static, str>,
    /// `absolute`, `increments`, `decrements` (published negative) or `differences`.
    pub mode: Cow<'static, str>,
    pub spacing: String,
    pub unit: Option<Cow<'static, str>>,
    pub values: Vec<Value>,
    /// One entry per value: its date (time profiles, when the telegram has the record's
    /// time point) or its storage number (register-number profiles).
    pub points: Vec<ProfilePoint>,
}

/// Where one profile value lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilePoint {
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<u64>,
}

impl Profile {
    fn from_record(r: &DataRecord<'_>, unit: Option<&'static str>) -> Option<Profile> {
        let profile = r.compact_profile()?;
        let values: Vec<Value> = profile.elements.iter().map(Value::from_element).collect();
        let points = values
            .iter()
            .enumerate()
            .map(|(i, value)| ProfilePoint {
                value: value.clone(),
                date: None,
                storage: match profile.position(i, r.dib.storage) {
                    apl::Position::Storage(s) => Some(s),
                    apl::Position::SpacingsBefore(_) => None,
                },
            })
            .collect();
        Some(Profile {
            kind: Cow::Borrowed(profile.kind.as_str()),
            mode: Cow::Borrowed(profile.increment.as_str()),
            spacing: profile.spacing.to_text(),
            unit: unit.map(Cow::Borrowed),
            values,
            points,
        })
    }

    /// Dates the profile implies, counted back from `anchor` (the value of the record
    /// giving its time point).
    pub fn set_dates(&mut self, r: &DataRecord<'_>, anchor: &apl::Value) {
        let Some(profile) = r.compact_profile() else {
            return;
        };
        for (i, point) in self.points.iter_mut().enumerate() {
            point.date = profile.time_point(i, anchor).map(|v| match v {
                apl::Value::Date(d) => d.to_string(),
                apl::Value::DateTime(dt) => dt.to_string(),
                other => other.to_string(),
            });
        }
    }
}

impl Record {
    pub fn from_data_record(r: &DataRecord<'_>) -> Record {
        let mut record = Record {
            quantity: Cow::Borrowed(""),
            value: Value::Null,
            unit: None,
            function: Function::Instantaneous,
            storage: 0,
            tariff: 0,
            subunit: 0,
            dif_vif: String::new(),
            error: None,
            qualifiers: Vec::new(),
            unit_text: None,
            raw: None,
            profile: None,
        };
        record.refill(r);
        record
    }

    /// Overwrites this record with `r` field by field, reusing its string and list
    /// buffers: a decoder refilling the records of the last reading allocates nothing
    /// for them. The result equals [`Record::from_data_record`].
    pub fn refill(&mut self, r: &DataRecord<'_>) {
        // A record error means the data field holds no valid value.
        let record_error = if r.vib.vifes.as_slice().is_empty() {
            None
        } else {
            r.vib.record_error()
        };
        if record_error.is_some() {
            self.value = Value::Null;
        } else {
            match &r.value {
                apl::Value::Binary => self
                    .value
                    .set_text(r.data.len() * 2, |s| push_upper_hex(s, r.data)),
                other => self.value.set_element(other),
            }
        }
        self.unit = match self.value {
            Value::Text(_) => None,
            _ => r.unit.map(Cow::Borrowed),
        };
        self.quantity = Cow::Borrowed(r.quantity);
        self.function = r.dib.function;
        self.storage = r.dib.storage;
        self.tariff = r.dib.tariff;
        self.subunit = r.dib.subunit;
        self.dif_vif.clear();
        push_upper_hex(&mut self.dif_vif, r.header);
        self.error = record_error.map(|e| Cow::Borrowed(e.name()));
        let mut manufacturer_vifes = r.vib.table == VifTable::Manufacturer;
        self.qualifiers.clear();
        // Most records have no VIFEs: nothing to walk then.
        let has_vifes = !r.vib.vifes.as_slice().is_empty();
        if has_vifes {
            for c in r.vib.combinables() {
                if let Combinable::ManufacturerSpecific(_) = c {
                    manufacturer_vifes = true;
                }
                if let Some(name) = c.name() {
                    self.qualifiers.push(Cow::Borrowed(name));
                }
            }
        }
        self.unit_text.clone_from(&r.vib.plain_text_unit);
        // Vendor data, and the data of a record whose value is withheld for a record
        // error (vendors put counters there: Diehl's hours in error), are kept as hex.
        // An unknown (reserved) VIF or VIFE keeps its data as hex too.
        if manufacturer_vifes || record_error.is_some() || r.quantity == apl::UNKNOWN {
            let raw = self.raw.get_or_insert_with(String::new);
            raw.clear();
            push_upper_hex(raw, r.data);
        } else {
            self.raw = None;
        }
        // A compact profile is an LVAR record with a profile VIFE.
        let profile = if has_vifes && r.dib.data_field == apl::DataField::Variable {
            Profile::from_record(r, r.unit)
        } else {
            None
        };
        if profile.is_some() || self.profile.is_some() {
            self.profile = profile;
        }
    }
}

/// Direct JSON output, byte-identical to `serde_json::to_writer(out, &reading)`.
///
/// serde_json escapes every key and string byte by byte through its writer; for a
/// reading that is most of the cost of a decoded telegram. Here keys are literals and
/// strings that need no escaping are copied whole; numbers, and any string that does
/// need escaping, still go through serde_json, so formatting rules cannot drift. The
/// unit tests compare both outputs on every corpus telegram.
impl Reading {
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.write_json_with(out, None)
    }

    /// [`Reading::write_json`], taking the constant text of records and repeated
    /// numbers from what a [`JsonWriter`] remembers.
    fn write_json_with(
        &self,
        out: &mut Vec<u8>,
        memory: Option<&mut WriterMemory>,
    ) -> serde_json::Result<()> {
        let (mut shapes, mut printed, driver_name) = match memory {
            Some(m) => (
                Some(&mut m.shapes),
                Some(&mut m.printed),
                Some(&mut m.driver),
            ),
            None => (None, None, None),
        };
        if let Some(printed) = printed.as_deref_mut() {
            printed.clear();
        }
        // One reservation for the usual size: the pushes below then never reallocate.
        out.reserve(320 + 192 * self.records.len());
        out.extend_from_slice(b"{\"schema\":");
        push_u64(out, u64::from(self.schema));
        out.extend_from_slice(b",\"meter\":{\"id\":");
        string(out, &self.meter.id)?;
        out.extend_from_slice(b",\"manufacturer\":");
        string(out, &self.meter.manufacturer)?;
        out.extend_from_slice(b",\"version\":");
        push_u64(out, u64::from(self.meter.version));
        out.extend_from_slice(b",\"device_type\":");
        string(out, &self.meter.device_type)?;
        if let Some(name) = &self.meter.name {
            out.extend_from_slice(b",\"name\":");
            string(out, name)?;
        }
        out.push(b'}');
        if let Some(gateway) = &self.gateway {
            out.extend_from_slice(b",\"gateway\":");
            string(out, gateway)?;
        }
        if let Some(t) = &self.received_at {
            out.extend_from_slice(b",\"received_at\":");
            string(out, t)?;
        }
        if let Some(rssi) = &self.rssi_dbm {
            out.extend_from_slice(b",\"rssi_dbm\":");
            scalar(out, rssi)?;
        }
        if let Some(mode) = &self.link_mode {
            out.extend_from_slice(b",\"link_mode\":");
            string(out, mode)?;
        }
        if let Some(acc) = self.access_number {
            out.extend_from_slice(b",\"access_number\":");
            push_u64(out, u64::from(acc));
        }
        out.extend_from_slice(b",\"status\":{\"byte\":");
        push_u64(out, u64::from(self.status.byte));
        out.extend_from_slice(b",\"flags\":");
        string_list(out, &self.status.flags)?;
        out.extend_from_slice(b"},\"security\":{\"mode\":");
        push_u64(out, u64::from(self.security.mode));
        out.extend_from_slice(if self.security.decrypted {
            b",\"decrypted\":true,\"verified_by\":"
        } else {
            b",\"decrypted\":false,\"verified_by\":"
        });
        optional_string(out, self.security.verified_by.as_deref())?;
        if let Some(scheme) = &self.security.scheme {
            out.extend_from_slice(b",\"scheme\":");
            string(out, scheme)?;
        }
        out.extend_from_slice(b"},\"records\":[");
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let value = |out: &mut Vec<u8>, printed: Option<&mut PrintedNumbers>| match printed {
                Some(printed) => printed.write(&record.value, out),
                None => record.value.write_json(out),
            };
            match shapes.as_deref_mut().and_then(|s| s.shape(record)) {
                Some(shape) => {
                    out.extend_from_slice(&shape.head);
                    value(out, printed.as_deref_mut())?;
                    out.extend_from_slice(&shape.tail);
                }
                None => {
                    record.write_json_head(out)?;
                    value(out, printed.as_deref_mut())?;
                    record.write_json_tail(out)?;
                }
            }
        }
        out.push(b']');
        if let Some(data) = &self.manufacturer_data {
            out.extend_from_slice(b",\"manufacturer_data\":");
            string(out, data)?;
        }
        if let Some(u) = &self.unparsed {
            out.extend_from_slice(b",\"unparsed\":{\"offset\":");
            push_u64(out, u.offset as u64);
            out.extend_from_slice(b",\"reason\":");
            string(out, &u.reason)?;
            out.extend_from_slice(b",\"hex\":");
            string(out, &u.hex)?;
            out.push(b'}');
        }
        if let Some(driver) = &self.driver {
            out.extend_from_slice(b",\"driver\":");
            match driver_name {
                Some(memo) => memo.write(driver, out)?,
                None => string(out, driver)?,
            }
        }
        if let Some(error) = &self.driver_error {
            out.extend_from_slice(b",\"driver_error\":");
            string(out, error)?;
        }
        if !self.fields.is_empty() {
            out.extend_from_slice(b",\"fields\":");
            self.fields
                .write_json_object(out, printed.as_deref(), &self.records)?;
        }
        if let Some(report) = &self.report {
            out.extend_from_slice(b",\"report\":");
            serde_json::to_writer(&mut *out, report)?;
        }
        if let Some(diagnostics) = &self.diagnostics {
            out.extend_from_slice(b",\"diagnostics\":");
            serde_json::to_writer(&mut *out, diagnostics)?;
        }
        if !self.receivers.is_empty() {
            out.extend_from_slice(b",\"receivers\":");
            serde_json::to_writer(&mut *out, &self.receivers)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl Record {
    /// One record as in [`Reading::write_json`] (which writes the parts itself).
    #[cfg(test)]
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.write_json_head(out)?;
        self.value.write_json(out)?;
        self.write_json_tail(out)
    }

    /// The record's JSON up to its value.
    fn write_json_head(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"quantity\":");
        string(out, &self.quantity)?;
        out.extend_from_slice(b",\"value\":");
        Ok(())
    }

    /// The record's JSON after its value.
    fn write_json_tail(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b",\"unit\":");
        optional_string(out, self.unit.as_deref())?;
        // The function names are fixed and need no escaping.
        out.extend_from_slice(match self.function {
            Function::Instantaneous => b",\"function\":\"instantaneous\",\"storage\":",
            Function::Maximum => b",\"function\":\"maximum\",\"storage\":",
            Function::Minimum => b",\"function\":\"minimum\",\"storage\":",
            Function::Error => b",\"function\":\"error\",\"storage\":",
        });
        if self.storage == 0 && self.tariff == 0 && self.subunit == 0 {
            // Current values of the whole device: most records.
            out.extend_from_slice(b"0,\"tariff\":0,\"subunit\":0,\"dif_vif\":");
        } else {
            push_u64(out, self.storage);
            out.extend_from_slice(b",\"tariff\":");
            push_u64(out, u64::from(self.tariff));
            out.extend_from_slice(b",\"subunit\":");
            push_u64(out, u64::from(self.subunit));
            out.extend_from_slice(b",\"dif_vif\":");
        }
        string(out, &self.dif_vif)?;
        if let Some(e) = &self.error {
            out.extend_from_slice(b",\"error\":");
            string(out, e)?;
        }
        if !self.qualifiers.is_empty() {
            out.extend_from_slice(b",\"qualifiers\":");
            string_list(out, &self.qualifiers)?;
        }
        if let Some(t) = &self.unit_text {
            out.extend_from_slice(b",\"unit_text\":");
            string(out, t)?;
        }
        if let Some(raw) = &self.raw {
            out.extend_from_slice(b",\"raw\":");
            string(out, raw)?;
        }
        if let Some(p) = &self.profile {
            p.write_json(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

impl Profile {
    /// `,"profile":{...}` as serde writes it.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b",\"profile\":{\"kind\":");
        string(out, &self.kind)?;
        out.extend_from_slice(b",\"mode\":");
        string(out, &self.mode)?;
        out.extend_from_slice(b",\"spacing\":");
        string(out, &self.spacing)?;
        out.extend_from_slice(b",\"unit\":");
        optional_string(out, self.unit.as_deref())?;
        out.extend_from_slice(b",\"values\":[");
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            v.write_json(out)?;
        }
        out.extend_from_slice(b"],\"points\":[");
        for (i, p) in self.points.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"value\":");
            p.value.write_json(out)?;
            if let Some(date) = &p.date {
                out.extend_from_slice(b",\"date\":");
                string(out, date)?;
            }
            if let Some(storage) = p.storage {
                out.extend_from_slice(b",\"storage\":");
                out.extend_from_slice(storage.to_string().as_bytes());
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Ok(())
    }
}

impl Value {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Value::Number(d) if d.write_json_exact(out) => Ok(()),
            Value::Number(d) => scalar(out, d),
            Value::Text(s) => string(out, s),
            Value::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
}

/// Numbers not printed by hand (floats, huge decimals): serde_json's own formatting.
fn scalar<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, value)
}

/// A JSON string; copied whole when no byte needs escaping (the usual case: names,
/// hex, ISO dates), otherwise escaped by serde_json.
#[inline]
fn string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    let bytes = s.as_bytes();
    match short_words(bytes) {
        // Most strings here are short: check and copy them as two words.
        Some((low, high)) if escape_bits(low) | escape_bits(high) == 0 => {
            // Quote, the sixteen bytes with the closing quote put right after the
            // string, and a closing quote at the end for a string of exactly sixteen
            // bytes; then cut back to the string's length. One fixed-size append, no
            // variable-length `memcpy` call.
            let len = bytes.len();
            let mut text = u128::from(low) | u128::from(high) << 64;
            if len < 16 {
                let at = 8 * len as u32;
                text = text & !(0xFF << at) | u128::from(b'"') << at;
            }
            let mut chunk = [b'"'; 18];
            chunk[1..17].copy_from_slice(&text.to_le_bytes());
            let end = out.len() + len + 2;
            out.extend_from_slice(&chunk);
            out.truncate(end);
            Ok(())
        }
        _ => long_or_escaped_string(out, s),
    }
}

/// [`string`] for strings longer than 16 bytes or needing escapes; kept out of line so
/// that the short path stays small.
#[inline(never)]
fn long_or_escaped_string(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(&mut *out, s);
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A string of at most 16 bytes as two little-endian words, padded with spaces (which
/// need no escaping); `None` for longer strings.
fn short_words(bytes: &[u8]) -> Option<(u64, u64)> {
    let pad = |part: &[u8]| {
        part.iter()
            .rev()
            .fold(SPACES, |w, &b| w << 8 | u64::from(b))
    };
    if let Some(first) = bytes.first_chunk::<8>() {
        let rest = bytes.get(8..).unwrap_or_default();
        if rest.len() > 8 {
            return None;
        }
        let low = u64::from_le_bytes(*first);
        // The last eight bytes (overlapping `first`) shifted down to start at byte 8,
        // spaces filled in above: one load instead of a byte loop.
        let high = match bytes.last_chunk::<8>() {
            Some(last) if !rest.is_empty() => {
                let gap = 8 * (8 - rest.len() as u32);
                u64::from_le_bytes(*last) >> gap | SPACES.checked_shl(64 - gap).unwrap_or(0)
            }
            _ => SPACES,
        };
        return Some((low, high));
    }
    Some((pad(bytes), SPACES))
}

/// True when `bytes` hold a byte JSON must escape: a control character, `"` or `\\`
/// (serde_json escapes exactly these). Tests eight bytes per step with the classic
/// "has a byte less than n / equal to zero" word tricks, which are exact as yes/no tests.
fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if word_needs_escape(u64::from_le_bytes(word)) {
            return true;
        }
    }
    // The tail shifted into a word of spaces (which need no escaping): copying it into
    // a padded array would cost a variable-length `memcpy` call.
    let rest = chunks.remainder();
    if rest.is_empty() {
        return false;
    }
    let word = rest
        .iter()
        .rev()
        .fold(SPACES, |w, &b| w << 8 | u64::from(b));
    word_needs_escape(word)
}

/// [`needs_escape`] for the eight bytes of a little-endian word.
fn word_needs_escape(x: u64) -> bool {
    escape_bits(x) != 0
}

/// Nonzero when a byte of the word needs escaping. The three tests are or-ed rather
/// than short-circuited: straight-line code is cheaper than three branches.
fn escape_bits(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let equal = |x: u64, b: u8| below(x ^ (ONES * u64::from(b)), 1);
    below(x, 0x20) | equal(x, b'"') | equal(x, b'\\')
}

/// Eight ASCII spaces.
const SPACES: u64 = 0x2020_2020_2020_2020;

fn optional_string(out: &mut Vec<u8>, s: Option<&str>) -> serde_json::Result<()> {
    match s {
        Some(s) => string(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn string_list(out: &mut Vec<u8>, items: &[Cow<'static, str>]) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, item)?;
    }
    out.push(b']');
    Ok(())
}

/// Uppercase hex of `bytes`, as `hex::encode_upper` writes it, with one exact-size
/// allocation (the `hex` crate collects chars one by one, which shows in profiles).
pub fn upper_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_upper_hex(&mut s, bytes);
    s
}

/// `s` emptied, with room for `len` bytes: its own buffer when that is big enough,
/// else a new exact-size one (cheaper than growing through `reserve`).
pub(crate) fn empty_with_capacity(mut s: String, len: usize) -> String {
    if s.capacity() < len {
        return String::with_capacity(len);
    }
    s.clear();
    s
}

/// Appends the uppercase hex of `bytes` to `s`.
fn push_upper_hex(s: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    s.reserve(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
}

/// Records of a parsed APL, in order.
pub fn records_from_apl(apl: &apl::Apl<'_>) -> Vec<Record> {
    apl.records.iter().map(Record::from_data_record).collect()
}

/// A record value as published: a JSON number, string or null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Number(Decimal),
    Text(String),
    Null,
}

impl Value {
    /// A decoded value that stands alone (a compact profile element, or a record value
    /// other than binary): binary data has no bytes of its own here and publishes as null.
    fn from_element(v: &apl::Value) -> Value {
        let mut value = Value::Null;
        value.set_element(v);
        value
    }

    /// Sets this value to [`Value::from_element`] of `v`, writing text into the
    /// existing text buffer when there is one.
    fn set_element(&mut self, v: &apl::Value) {
        match v {
            apl::Value::NoData | apl::Value::Invalid | apl::Value::Binary => *self = Value::Null,
            apl::Value::Number(d) => *self = Value::Number(*d),
            apl::Value::Bits(b) => *self = Value::Number(Decimal::from(*b)),
            // 19 bytes: the longest ISO form.
            apl::Value::Date(d) => self.set_text(19, |s| d.push_iso(s)),
            apl::Value::Time(t) => self.set_text(19, |s| t.push_iso(s)),
            apl::Value::DateTime(dt) => self.set_text(19, |s| dt.push_iso(s)),
            apl::Value::Text(text) => self.set_text(text.len(), |s| s.push_str(text)),
        }
    }

    /// Makes this a text value written by `push`, reusing the buffer of a text value.
    fn set_text(&mut self, len: usize, push: impl FnOnce(&mut String)) {
        match self {
            Value::Text(s) => s.clear(),
            _ => *self = Value::Text(String::with_capacity(len)),
        }
        if let Value::Text(s) = self {
            push(s);
        }
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Number(d) => d.serialize(serializer),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Null => serializer.serialize_none(),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, a string or null")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(Decimal::from(v)))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(Decimal::from(v)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Decimal::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of decimal range"))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn records(s: &str) -> Vec<Record> {
        let bytes = hex(s);
        records_from_apl(&apl::parse(&bytes).unwrap())
    }

    fn json(r: &Record) -> String {
        serde_json::to_string(r).unwrap()
    }

    /// `Reading::write_json` must print exactly what serde_json prints for the derive.
    fn assert_same_json(reading: &Reading) {
        let mut direct = Vec::new();
        reading.write_json(&mut direct).unwrap();
        let via_serde = serde_json::to_vec(reading).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&direct),
            String::from_utf8_lossy(&via_serde)
        );
    }

    fn number(n: i128) -> Value {
        Value::Number(Decimal::new(n, 0))
    }

    #[test]
    fn fields_refill_from_shared_names_and_reuse_slots() {
        let names = FieldNames::new(["b_m3", "a_date", "c_flags", "b_m3"]);
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            ["a_date", "b_m3", "c_flags"]
        );
        let mut fields = Fields::new();
        fields.refill(&names, |i, slot| {
            *slot = match i {
                0 => Value::Text("2026-10-31".to_owned()),
                1 => number(7),
                _ => return Fill::Absent,
            };
            Fill::Value
        });
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a_date", "b_m3"]);
        assert_eq!(fields["b_m3"], number(7));
        fields.clear();
        assert!(fields.is_empty() && fields.get("a_date").is_none());
        // The next telegram finds the last one's values in its slots (text buffers
        // kept) and may leave fields out.
        let mut first_slot = None;
        fields.refill(&names, |i, slot| {
            if i == 0 {
                first_slot = Some(slot.clone());
            }
            if i == 2 {
                *slot = Value::Null;
                return Fill::Value;
            }
            Fill::Absent
        });
        assert_eq!(first_slot, Some(Value::Text("2026-10-31".to_owned())));
        assert_eq!(
            fields.iter().collect::<Vec<_>>(),
            [("c_flags", &Value::Null)]
        );
        assert_eq!(fields.len(), 1);
    }

    #[test]
    fn fields_insert_copies_shared_names_and_compares_by_name() {
        let names = FieldNames::new(["b_m3", "d_m3"]);
        let mut fields = Fields::new();
        fields.refill(&names, |i, slot| {
            *slot = number(i as i128);
            Fill::Value
        });
        fields.insert("c_flags", number(9));
        fields.insert("e_flags", number(10));
        fields.insert("b_m3", number(5));
        // The driver's table is unchanged; the reading has its own copy now.
        assert_eq!(names.iter().collect::<Vec<_>>(), ["b_m3", "d_m3"]);
        let expected: Fields = [
            ("e_flags", number(10)),
            ("b_m3", number(5)),
            ("d_m3", number(1)),
            ("c_flags", number(9)),
        ]
        .into_iter()
        .collect();
        assert_eq!(fields, expected);
        assert_eq!(
            serde_json::to_string(&fields).unwrap(),
            r#"{"b_m3":5,"c_flags":9,"d_m3":1,"e_flags":10}"#
        );
        let mut out = Vec::new();
        fields.write_json_object(&mut out, None, &[]).unwrap();
        assert_eq!(out, serde_json::to_vec(&fields).unwrap());
        out.clear();
        Fields::new()
            .write_json_object(&mut out, None, &[])
            .unwrap();
        assert_eq!(out, b"{}");
    }

    #[test]
    fn field_keys_of_every_length_copy_exactly() {
        for len in 1..=40 {
            let name = format!("{}\"", "x".repeat(len));
            let fields: Fields = [(name.as_str(), Value::Null)].into_iter().collect();
            let mut out = b"prefix".to_vec();
            fields.write_json_object(&mut out, None, &[]).unwrap();
            let expected = format!("prefix{}", serde_json::to_string(&fields).unwrap());
            assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }

    #[test]
    fn direct_json_matches_serde_on_corpus() {
        use crate::decode::Decoder;
        use crate::frame::{parse_hex, LinkMode, RadioFrame};
        use crate::keys::KeyStore;

        let corpus = include_str!("../tests/data/wmbusmeters-public.jsonl");
        let entries: Vec<serde_json::Value> = corpus
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut compared = 0;
        // One writer over the whole corpus, each reading written twice: the second
        // time every record shape comes from its table.
        let mut writer = JsonWriter::new();
        for (n, entry) in entries.iter().enumerate() {
            let mut keys = KeyStore::new();
            if let Some(key) = entry["key"].as_str() {
                keys.set_default_hex(key).unwrap();
            }
            let mut decoder = Decoder::new(keys);
            // Earlier telegrams of the same meter first, so compact frames find formats.
            let earlier = entries[..n]
                .iter()
                .filter(|e| e["meter_id"] == entry["meter_id"])
                .filter_map(|e| e["telegram"].as_str());
            let priors = entry["prior_telegrams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str());
            for hex in earlier.chain(priors) {
                let _ = decoder.decode(&RadioFrame::new(parse_hex(hex).unwrap()));
            }
            let mut frame =
                RadioFrame::new(parse_hex(entry["telegram"].as_str().unwrap()).unwrap());
            if n % 2 == 0 {
                frame.rssi_dbm = Some(-67.5 - n as f32 / 7.0);
                frame.link_mode = Some(LinkMode::C1);
                frame.received_at = Some(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(1_795_000_000 + n as u64),
                );
            }
            if let Ok(reading) = decoder.decode(&frame) {
                assert_same_json(&reading);
                for _ in 0..2 {
                    let (mut direct, mut remembered) = (Vec::new(), Vec::new());
                    reading.write_json(&mut direct).unwrap();
                    writer.write(&reading, &mut remembered).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&remembered),
                        String::from_utf8_lossy(&direct)
                    );
                }
                compared += 1;
            }
        }
        assert!(compared > 200, "only {compared} corpus telegrams decoded");
    }

    #[test]
    fn direct_json_matches_serde_on_rare_fields() {
        let record = Record {
            quantity: Cow::Owned("odd \"name\"\\ \u{1}\u{7f} ü".to_owned()),
            value: Value::Number(Decimal::new(-15, -4)),
            unit: None,
            function: Function::Error,
            storage: u64::MAX,
            tariff: 3,
            subunit: 1,
            dif_vif: "8C14".to_owned(),
            error: Some(Cow::Borrowed("data_error")),
            qualifiers: vec![Cow::Borrowed("per_hour"), Cow::Borrowed("start_date")],
            unit_text: Some("l/\n".to_owned()),
            raw: Some("00FF".to_owned()),
            profile: Some(Profile {
                kind: Cow::Borrowed("compact_profile_with_register_numbers"),
                mode: Cow::Borrowed("absolute"),
                spacing: "1 month".to_owned(),
                unit: Some(Cow::Borrowed("hca")),
                values: vec![
                    Value::Number(Decimal::new(627, 0)),
                    Value::Null,
                    Value::Text("x".to_owned()),
                    Value::Number(Decimal::new(i128::MAX, 3)),
                ],
                points: vec![
                    ProfilePoint {
                        value: Value::Number(Decimal::new(627, 0)),
                        date: Some("2024-01-31".to_owned()),
                        storage: None,
                    },
                    ProfilePoint {
                        value: Value::Null,
                        date: None,
                        storage: Some(u64::MAX),
                    },
                ],
            }),
        };
        let reading = Reading {
            schema: SCHEMA_VERSION,
            meter: Meter {
                id: "76348799".to_owned(),
                manufacturer: "KAM".to_owned(),
                version: 27,
                device_type: "cold_water".to_owned(),
                name: Some("flat \"3b\"".to_owned()),
            },
            gateway: Some("gw-1".to_owned()),
            received_at: Some("2026-11-22T22:30:00Z".to_owned()),
            rssi_dbm: Some(f32::NAN),
            link_mode: Some("C1+T1".to_owned()),
            access_number: Some(255),
            status: Status::from_byte(0xFF),
            security: Security {
                mode: 7,
                decrypted: true,
                verified_by: Some("mac".to_owned()),
                scheme: Some("aes_cbc_mode_7".into()),
            },
            records: vec![record.clone(), record],
            manufacturer_data: Some("ABCD".to_owned()),
            unparsed: Some(Unparsed {
                offset: 40,
                reason: "truncated \"record\"".to_owned(),
                hex: "0C".to_owned(),
            }),
            driver: Some("multical21".into()),
            driver_error: None,
            fields: [
                ("total_m3".to_owned(), Value::Number(Decimal::new(6408, -3))),
                ("note\"s".to_owned(), Value::Text("a\nb".to_owned())),
                ("target_date".to_owned(), Value::Null),
            ]
            .into_iter()
            .collect(),
            report: None,
            diagnostics: None,
            receivers: vec![
                Receiver {
                    radio: "/dev/serial/by-id/usb-\"x\"".to_owned(),
                    rssi_dbm: Some(-55.5),
                },
                Receiver {
                    radio: "replay".to_owned(),
                    rssi_dbm: None,
                },
            ],
        };
        assert_same_json(&reading);
        let empty = Reading {
            receivers: Vec::new(),
            records: Vec::new(),
            rssi_dbm: Some(-80.25),
            gateway: None,
            security: Security {
                verified_by: None,
                scheme: None,
                ..reading.security.clone()
            },
            ..reading
        };
        assert_same_json(&empty);
    }

    #[test]
    fn escape_check_agrees_with_bytewise_rule() {
        let bytewise = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        let mut samples: Vec<Vec<u8>> = vec![b"".to_vec(), "äöü €".as_bytes().to_vec()];
        for len in 0..20 {
            for special in [
                0x00, 0x1F, 0x20, b'"', b'\\', 0x7F, 0x80, 0xFF, b'!', b'#', b']',
            ] {
                for at in 0..len {
                    let mut s = vec![b'x'; len];
                    s[at] = special;
                    samples.push(s);
                }
            }
        }
        for s in samples {
            assert_eq!(needs_escape(&s), bytewise(&s), "{s:?}");
        }
    }

    #[test]
    fn short_strings_copy_exactly() {
        for len in 0..=20 {
            for special in [b'a', b'"', b'\\', 0x1F, 0x7F, 0xC3] {
                for at in 0..len {
                    let mut bytes: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
                    bytes[at] = special;
                    let Ok(s) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    let mut out = b"x".to_vec();
                    string(&mut out, s).unwrap();
                    let mut expected = b"x".to_vec();
                    serde_json::to_writer(&mut expected, s).unwrap();
                    assert_eq!(out, expected, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn upper_hex_matches_hex_crate() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(upper_hex(&all), hex::encode_upper(&all));
        assert_eq!(upper_hex(&[]), "");
    }

    #[test]
    fn inverse_compact_profile_publishes_its_history() {
        // ZRI heat cost allocator 80081812 (corpus): the reference reads the consumption
        // of the four months before the storage-8 date as 627, 395, 176 and 7 units.
        let r = records("8D 04 EE 13 0E 3B FE 27 06 00 95 03 00 76 01 00 07 00 00");
        assert_eq!(r.len(), 1);
        assert_eq!(
            json(&r[0]),
            r#"{"quantity":"hca","value":"3BFE270600950300760100070000","unit":null,"function":"instantaneous","storage":8,"tariff":0,"subunit":0,"dif_vif":"8D04EE13","qualifiers":["inverse_compact_profile"],"profile":{"kind":"inverse_compact_profile","mode":"absolute","spacing":"1 month","unit":"hca","values":[627,395,176,7],"points":[{"value":627},{"value":395},{"value":176},{"value":7}]}}"#
        );
        let back: Record = serde_json::from_str(&json(&r[0])).unwrap();
        assert_eq!(back, r[0]);
        // Other records carry no profile.
        assert_eq!(records("04 13 01 00 00 00")[0].profile, None);
    }

    #[test]
    fn example_reading_json_is_exact() {
        let reading = Reading {
            schema: SCHEMA_VERSION,
            meter: Meter {
                id: "12345678".into(),
                manufacturer: "KAM".into(),
                version: 27,
                device_type: "cold_water".into(),
                name: None,
            },
            gateway: None,
            received_at: None,
            rssi_dbm: None,
            link_mode: None,
            access_number: Some(42),
            status: Status::from_byte(0),
            security: Security {
                mode: 5,
                decrypted: true,
                verified_by: Some("2f2f".into()),
                scheme: None,
            },
            records: records("0C13 56341200"),
            manufacturer_data: None,
            unparsed: None,
            driver: None,
            driver_error: None,
            fields: Fields::new(),
            report: None,
            diagnostics: None,
            receivers: Vec::new(),
        };
        let text = serde_json::to_string(&reading).unwrap();
        assert_eq!(
            text,
            r#"{"schema":1,"meter":{"id":"12345678","manufacturer":"KAM","version":27,"device_type":"cold_water"},"access_number":42,"status":{"byte":0,"flags":[]},"security":{"mode":5,"decrypted":true,"verified_by":"2f2f"},"records":[{"quantity":"volume","value":123.456,"unit":"m3","function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"0C13"}]}"#
        );
        let back: Reading = serde_json::from_str(&text).unwrap();
        assert_eq!(back, reading);
    }

    #[test]
    fn optional_fields_round_trip() {
        let reading = Reading {
            schema: SCHEMA_VERSION,
            meter: Meter {
                id: "43054304".into(),
                manufacturer: "EFE".into(),
                version: 0,
                device_type: "heat".into(),
                name: None,
            },
            gateway: None,
            received_at: Some("2026-11-22T22:30:00Z".into()),
            rssi_dbm: Some(-67.5),
            link_mode: Some("C1".into()),
            access_number: None,
            status: Status::from_byte(0x85),
            security: Security {
                mode: 0,
                decrypted: false,
                verified_by: None,
                scheme: None,
            },
            records: records("0DFD11 02 4241 02FF2C 0100 0493 15 00000000 81037C034C412300"),
            manufacturer_data: Some("AABB".into()),
            unparsed: None,
            driver: Some("example".into()),
            driver_error: None,
            fields: [
                (
                    "total_m3".to_owned(),
                    Value::Number(Decimal::new(12345, -3)),
                ),
                ("target_date".to_owned(), Value::Text("2026-10-31".into())),
            ]
            .into_iter()
            .collect(),
            report: None,
            diagnostics: None,
            receivers: Vec::new(),
        };
        let text = serde_json::to_string(&reading).unwrap();
        assert!(text.contains(r#""flags":["busy","power_low","manufacturer_bit7"]"#));
        assert!(text.contains(r#""verified_by":null"#));
        assert!(text.contains(r#""rssi_dbm":-67.5"#));
        assert!(text.ends_with(
            r#""driver":"example","fields":{"target_date":"2026-10-31","total_m3":12.345}}"#
        ));
        let back: Reading = serde_json::from_str(&text).unwrap();
        assert_eq!(back, reading);
    }

    #[test]
    fn exact_values() {
        let r = records("04 13 40E20100  0C 14 27048502  04 13 17941400  02 59 D409");
        assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "123.456");
        assert_eq!(serde_json::to_string(&r[1].value).unwrap(), "28504.27");
        assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "1348.631");
        assert_eq!(serde_json::to_string(&r[3].value).unwrap(), "25.16");
        assert_eq!(r[3].unit.as_deref(), Some("C"));
    }

    #[test]
    fn oms_plaintext_records() {
        let r = records("2F2F0C1427048502046D32371F1502FD1700002F2F2F");
        assert_eq!(
            json(&r[0]),
            r#"{"quantity":"volume","value":28504.27,"unit":"m3","function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"0C14"}"#
        );
        assert_eq!(
            json(&r[1]),
            r#"{"quantity":"datetime","value":"2008-05-31T23:50","unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"046D"}"#
        );
        assert_eq!(
            json(&r[2]),
            r#"{"quantity":"error_flags","value":0,"unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"02FD17"}"#
        );
    }

    #[test]
    fn lvar_text_bcd12_and_negative_bcd() {
        let r = records(
            "0E13750600000000 0DFD11 2065646F4D20532021 6C75646F6D7473 6554207373656C 657269 7720 5245424D41 0A1623F1",
        );
        assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "0.675");
        assert_eq!(r[1].quantity, "customer");
        assert_eq!(
            r[1].value,
            Value::Text("AMBER wireless Testmodul! S Mode".into())
        );
        assert_eq!(r[1].unit, None);
        assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "-123");
    }

    #[test]
    fn sontex_hca_records() {
        let r =
            records("046d1912a62b036e000000426ce1f1436e00000002ff2c00000259d4090265fc0902fd66a000");
        assert_eq!(r[0].value, Value::Text("2021-11-06T18:25".into()));
        assert_eq!(
            (r[1].quantity.as_ref(), r[1].unit.as_deref()),
            ("hca", Some("hca"))
        );
        assert_eq!(
            (r[2].storage, &r[2].value),
            (1, &Value::Text("XXXX-01-01".into()))
        );
        assert_eq!(
            json(&r[4]),
            r#"{"quantity":"manufacturer_specific","value":0,"unit":null,"function":"instantaneous","storage":0,"tariff":0,"subunit":0,"dif_vif":"02FF2C","raw":"0000"}"#
        );
        assert_eq!(r[6].quantity, "external_temperature");
        assert_eq!(serde_json::to_string(&r[6].value).unwrap(), "25.56");
        assert_eq!(r[7].quantity, "parameter_activation_state");
        assert_eq!(serde_json::to_string(&r[7].value).unwrap(), "160");
    }

    #[test]
    fn sensostar_energy_and_storage() {
        let r = records("04067D240000 4406250B0000 84010653230000 840F0600000000 03FD0C050100");
        assert_eq!(
            (r[0].quantity.as_ref(), r[0].unit.as_deref()),
            ("energy", Some("kWh"))
        );
        assert_eq!(serde_json::to_string(&r[0].value).unwrap(), "9341");
        assert_eq!((r[1].storage, r[2].storage, r[3].storage), (1, 2, 30));
        assert_eq!(r[4].quantity, "model_version");
    }

    #[test]
    fn record_errors_qualifiers_and_plain_text() {
        let r = records("0493150000 0000 04933B 10000000 81037C034C412300 01FD9700 02");
        assert_eq!(r[0].value, Value::Null);
        assert_eq!(r[0].error.as_deref(), Some("no_data_available"));
        assert_eq!(r[1].qualifiers, ["forward_flow"]);
        assert_eq!(serde_json::to_string(&r[1].value).unwrap(), "0.016");
        assert_eq!(r[2].quantity, "plain_text");
        assert_eq!(r[2].unit_text.as_deref(), Some("#AL"));
        assert_eq!(r[2].storage, 6);
        // FD 17 + VIFE 0x00 ("no error") keeps the value.
        assert_eq!(r[3].error, None);
        assert_eq!(r[3].value, Value::Number(Decimal::from(2u64)));
    }

    #[test]
    fn function_and_tariff_serialise() {
        let r = records("94 10 13 01000000  2A 59 0000");
        assert!(json(&r[0]).contains(r#""function":"maximum","storage":0,"tariff":1"#));
        assert!(json(&r[1]).contains(r#""function":"minimum""#));
    }

    #[test]
    fn status_flags() {
        assert!(Status::from_byte(0).flags.is_empty());
        assert_eq!(Status::from_byte(0x02).flags, ["error"]);
        assert_eq!(
            Status::from_byte(0x1B).flags,
            ["alarm", "permanent_error", "temporary_error"]
        );
        assert_eq!(
            Status::from_byte(0x60).flags,
            ["manufacturer_bit5", "manufacturer_bit6"]
        );
    }

    #[test]
    fn invalid_value_is_null_and_units_follow_table() {
        let r = records("02 16 0080  04 2B 01000000  04 FB 00 01000000  02 FD 48 0100");
        assert_eq!(r[0].value, Value::Null);
        assert_eq!(r[0].unit.as_deref(), Some("m3"));
        assert_eq!(
            (
                r[1].unit.as_deref(),
                json(&r[1]).contains(r#""value":0.001"#)
            ),
            (Some("kW"), true)
        );
        assert_eq!(serde_json::to_string(&r[2].value).unwrap(), "100");
        assert_eq!(r[2].unit.as_deref(), Some("kWh"));
        assert_eq!(r[3].unit.as_deref(), Some("V"));
        assert_eq!(serde_json::to_string(&r[3].value).unwrap(), "0.1");
    }

    proptest! {
        #[test]
        fn decimal_values_round_trip(m in -999_999_999_999i128..1_000_000_000_000, e in -9i32..=6) {
            // Meter-sized values: up to 12 digits, exponents of VIF tables. These parse
            // exactly in serde_json's float fast path.
            let v = Value::Number(Decimal::new(m, e));
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn any_apl_converts(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(apl) = apl::parse(&bytes) {
                for r in records_from_apl(&apl) {
                    let text = serde_json::to_string(&r).unwrap();
                    let back: Record = serde_json::from_str(&text).unwrap();
                    prop_assert_eq!(&back.dif_vif, &r.dif_vif);
                    prop_assert_eq!(&back.quantity, &r.quantity);
                    match (&back.value, &r.value) {
                        // Extreme real32 exponents leave serde_json's exact float path;
                        // allow its last-digit error there.
                        (Value::Number(a), Value::Number(b)) => {
                            let (a, b) = (a.to_f64(), b.to_f64());
                            prop_assert!((a - b).abs() <= b.abs() * 1e-15, "{} vs {}", a, b);
                        }
                        (a, b) => prop_assert_eq!(a, b),
                    }
                }
            }
        }
    }
}
