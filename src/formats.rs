//! Compact-frame formats learned from full frames (protocol.md §7.5).
//!
//! A compact frame carries only data bytes and a 16-bit signature of the DIF/VIF list it
//! abbreviates. Formats are remembered per meter first (safest: the same signature can
//! stand for different layouts across vendors), then per model (manufacturer, version,
//! device type) for meters of the same firmware that were not heard in full yet.
//!
//! Below both users: the decoder learns formats from full frames, the drivers declare
//! their models' formats; neither imports the other for it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::wire::compact::CompactFormat;

/// Who a format belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterKey {
    pub manufacturer: u16,
    pub id: [u8; 4],
    pub version: u8,
    pub device_type: u8,
}

/// All fields packed into one word and hashed with a single write: the derived hash
/// feeds the hasher field by field (the id with a length prefix), which made the
/// per-telegram "format known?" lookup cost several hundred instructions.
impl std::hash::Hash for MeterKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(
            u64::from(self.manufacturer) << 48
                | u64::from(u32::from_le_bytes(self.id)) << 16
                | u64::from(self.version) << 8
                | u64::from(self.device_type),
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ModelKey {
    manufacturer: u16,
    version: u8,
    device_type: u8,
}

impl std::hash::Hash for ModelKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u32(
            u32::from(self.manufacturer) << 16
                | u32::from(self.version) << 8
                | u32::from(self.device_type),
        );
    }
}

impl MeterKey {
    fn model(&self) -> ModelKey {
        ModelKey {
            manufacturer: self.manufacturer,
            version: self.version,
            device_type: self.device_type,
        }
    }
}

/// One persisted format: whose, which signature, what layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFormat {
    pub meter: MeterKey,
    pub signature: u16,
    pub format: CompactFormat,
}

/// Formats by meter and by model. Bounded so a flood of forged frames cannot grow it
/// without limit.
#[derive(Debug, Default, Clone)]
pub struct FormatCache {
    by_meter: HashMap<(MeterKey, u16), CompactFormat>,
    by_model: HashMap<(ModelKey, u16), CompactFormat>,
}

impl FormatCache {
    /// Formats kept at most; beyond that new ones are not learned (old ones stay valid).
    pub const CAPACITY: usize = 10_000;

    pub fn new() -> Self {
        FormatCache::default()
    }

    pub fn len(&self) -> usize {
        self.by_meter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_meter.is_empty()
    }

    /// True when the format is known for this meter (cheap check before building one).
    pub fn knows(&self, meter: &MeterKey, signature: u16) -> bool {
        self.by_meter.contains_key(&(*meter, signature))
    }

    pub fn learn(&mut self, meter: MeterKey, signature: u16, format: CompactFormat) {
        if self.by_meter.len() >= Self::CAPACITY {
            return;
        }
        self.by_model
            .entry((meter.model(), signature))
            .or_insert_with(|| format.clone());
        self.by_meter.insert((meter, signature), format);
    }

    /// Registers a format for a whole model (manufacturer, version, device type), as a
    /// driver definition declares it, so that compact frames of meters never heard in
    /// full decode. A format learned from a frame of that model stays in place.
    pub fn declare_model(
        &mut self,
        manufacturer: u16,
        version: u8,
        device_type: u8,
        format: CompactFormat,
    ) {
        let model = ModelKey {
            manufacturer,
            version,
            device_type,
        };
        self.by_model
            .entry((model, format.signature()))
            .or_insert(format);
    }

    pub fn lookup(&self, meter: &MeterKey, signature: u16) -> Option<&CompactFormat> {
        self.by_meter
            .get(&(*meter, signature))
            .or_else(|| self.by_model.get(&(meter.model(), signature)))
    }

    /// Everything learned, for persistence across restarts.
    pub fn export(&self) -> Vec<SavedFormat> {
        let mut out: Vec<SavedFormat> = self
            .by_meter
            .iter()
            .map(|((meter, signature), format)| SavedFormat {
                meter: *meter,
                signature: *signature,
                format: format.clone(),
            })
            .collect();
        out.sort_by_key(|s| (s.meter.id, s.signature));
        out
    }

    /// Restores formats saved by [`FormatCache::export`]. Entries whose layout does not
    /// match their signature (a corrupted file) are skipped and counted.
    pub fn import(&mut self, saved: Vec<SavedFormat>) -> usize {
        let mut skipped = 0;
        for s in saved {
            if s.format.signature() == s.signature {
                self.learn(s.meter, s.signature, s.format);
            } else {
                skipped += 1;
            }
        }
        skipped
    }
}
