//! The transport layer on: security, then records, a compact frame or a format frame,
//! then the meter's driver.

use super::{fill_records, set_security, status_json, tail, DecodeError, Decoder, FailureKind};
use super::{is_vendor_payload, vendor_only, Lower, MeterKey};
use crate::frame::RadioFrame;
use crate::reading::{upper_hex, Reading};
use crate::wire::address::Address;
use crate::wire::compact::{format_signature, CompactFormat, CompactRepr, FormatFrameRepr};
use crate::wire::tpl::{SecurityMode, TplRepr};
use crate::wire::{apl, Layer};

/// The TPL being decoded: its header, where it and its data start, the meter it names
/// and the link fields (C, M, A as transmitted) vendor steps seed on.
pub(super) struct Transport {
    pub tpl: TplRepr,
    /// Offset of the TPL's CI in the canonical bytes.
    pub start: usize,
    /// Offset of the first byte after the TPL header.
    pub data: usize,
    pub meter: Address,
    pub link: [u8; 9],
}

impl Decoder {
    /// Everything from the TPL header on: security, then records or compact frame.
    pub(super) fn transport(
        &mut self,
        frame: &RadioFrame,
        buf: &mut [u8],
        layer: &Transport,
        lower: &Lower,
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        let tpl = &layer.tpl;
        let mode = tpl.security_mode();
        let outcome = match self.open_diehl_real_data(buf, layer) {
            Some(opened) => opened?,
            None => self.unlock(buf, layer, lower)?,
        };
        if outcome.verified_by == Some("mac") {
            self.verified_counter = tpl
                .header
                .and_then(|h| h.message_counter)
                .or_else(|| lower.afl.as_ref().and_then(|a| a.message_counter));
        }
        let security = if outcome.decrypted || mode != SecurityMode::None {
            outcome
        } else {
            lower.ell
        };
        self.base_reading(frame, &layer.meter, reading);
        reading.access_number = tpl.access_number().or(lower.ell_access_number);
        if let Some(status) = tpl.status() {
            reading.status = status_json(status.0);
        }
        set_security(&mut reading.security, mode.number(), security);
        let verified = lower.payload_verified || security.verified_by == Some("mac");
        let encrypted = security.decrypted || mode != SecurityMode::None;
        self.payload(buf, layer, encrypted, verified, reading)
    }

    /// The application data by the TPL's CI. `encrypted`: it was (or claims to be)
    /// encrypted, so 2F 2F fillers open it; `verified`: a CRC or MAC covered it.
    fn payload(
        &mut self,
        buf: &[u8],
        layer: &Transport,
        encrypted: bool,
        verified: bool,
        reading: &mut Reading,
    ) -> Result<(), DecodeError> {
        let key = meter_key(&layer.meter);
        let data = tail(buf, layer.data);
        match layer.tpl.ci {
            0x79 | 0x7B | 0x73 => {
                // After mode 5/7 decryption the compact body follows the 2F 2F check bytes.
                let skip = if encrypted {
                    data.iter().take_while(|&&b| b == apl::IDLE_FILLER).count()
                } else {
                    0
                };
                let full = self.compact(tail(data, skip), layer.data + skip, &key, verified)?;
                let parsed = apl::parse_lenient(&full);
                fill_records(reading, &parsed, layer.data + skip, &mut self.spare_records);
                self.apply_driver(reading, layer, buf, &parsed);
            }
            0x69..=0x6B => {
                let at = layer.data;
                let ff = FormatFrameRepr::parse(data).map_err(|e| DecodeError::from_wire(e, at))?;
                let format = ff.format().map_err(|e| DecodeError::from_wire(e, at))?;
                self.formats.learn(key, ff.signature, format);
                self.apply_driver(reading, layer, buf, &vendor_only(None));
            }
            // Transport layer without application data.
            0x8A | 0x8B => self.apply_driver(reading, layer, buf, &vendor_only(None)),
            // A vendor payload behind a claimed security mode: kept whole for its driver.
            _ if is_vendor_payload(&layer.meter, &layer.tpl) => {
                reading.manufacturer_data = Some(upper_hex(data));
                self.apply_driver(reading, layer, buf, &vendor_only(Some(data)));
            }
            _ => {
                let parsed = apl::parse_lenient(data);
                let signature = format_signature(&parsed.records);
                if !parsed.records.is_empty() && !self.formats.knows(&key, signature) {
                    self.formats.learn(
                        key,
                        signature,
                        CompactFormat::from_records(&parsed.records),
                    );
                }
                fill_records(reading, &parsed, layer.data, &mut self.spare_records);
                self.apply_driver(reading, layer, buf, &parsed);
            }
        }
        Ok(())
    }

    /// A compact frame at `at`, expanded by the format a full frame of the meter showed
    /// into the data records it abbreviates.
    fn compact(
        &mut self,
        data: &[u8],
        at: usize,
        key: &MeterKey,
        verified: bool,
    ) -> Result<Vec<u8>, DecodeError> {
        let compact = CompactRepr::parse(data).map_err(|e| DecodeError::from_wire(e, at))?;
        let Some(format) = self.formats.lookup(key, compact.signature) else {
            return Err(DecodeError::new(
                Layer::Compact,
                FailureKind::UnknownCompactFormat,
                format!(
                    "compact frame with format signature {:04X} that no full frame of meter {} has shown yet",
                    compact.signature,
                    crate::wire::link::id_string(&key.id)
                ),
            )
            .at(at));
        };
        if verified {
            format.expand_covered(&compact).map(|(full, _)| full)
        } else {
            format.expand_verified(&compact)
        }
        .map_err(|e| DecodeError::from_wire(e, at))
    }

    fn apply_driver(
        &mut self,
        reading: &mut Reading,
        layer: &Transport,
        buf: &[u8],
        parsed: &apl::Apl<'_>,
    ) {
        let apl = tail(buf, layer.data);
        self.run_driver(
            reading,
            &layer.link,
            apl,
            layer.tpl.ci,
            &layer.meter,
            parsed,
        );
    }

    /// Runs the driver matching the meter and CI on the application bytes `apl`, its
    /// records and vendor bytes `parsed`. A failed named step leaves its fields out; the
    /// reading says why in `driver_error`.
    pub(super) fn run_driver(
        &mut self,
        reading: &mut Reading,
        link: &[u8; 9],
        apl: &[u8],
        ci: u8,
        meter: &Address,
        parsed: &apl::Apl<'_>,
    ) {
        let Some(driver) = self.drivers.select_address(meter, ci) else {
            return;
        };
        // Only a named step reads the key (vendor encryption): no lookup otherwise.
        let key = if driver.runs_step() {
            self.keys.lookup(meter.manufacturer, &meter.id)
        } else {
            None
        };
        let frame = crate::drivers::FrameContext {
            ci,
            link: *link,
            key,
            apl,
            records: &parsed.records,
            manufacturer_data: parsed.manufacturer_data,
        };
        if let Err(e) = driver.apply_frame(reading, &frame) {
            reading.driver_error = Some(e.to_string());
        }
    }
}

fn meter_key(meter: &Address) -> MeterKey {
    MeterKey {
        manufacturer: meter.manufacturer,
        id: meter.id,
        version: meter.version,
        device_type: meter.device_type,
    }
}
