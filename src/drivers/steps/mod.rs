//! Named decoding steps: the few proprietary payload shapes a definition table cannot
//! express (scrambling, vendor encryption, checksums, bit-packed dates, register walks).
//!
//! A definition names one step (`[step] name = "…"`); the step turns its input bytes
//! (the manufacturer data or one record's data) into a plain byte string, and the
//! definition's `bytes` fields with `source = "step"` read numbers and dates out of that
//! output by offset, length and encoding, exactly as from any other source. So the Rust
//! side only undoes what the vendor did to the bytes; naming, scaling and units stay in
//! the definition.
//!
//! Steps are pure functions of the frame: no I/O, no state between telegrams.

mod apator;
pub mod bmeters;
pub mod diehl;
mod engelmann;
mod kamstrup;
mod qundis;
mod techem;

use crate::keys::Key;

/// What a step sees of the telegram.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// CI field of the layer the input comes from (e.g. 0xA2 for a Techem frame).
    pub ci: u8,
    /// The link-layer fields as transmitted: C, M (2, little endian), A (ID 4 bytes
    /// little endian, version, device type) — 9 bytes. Some vendors key their
    /// scrambling on these.
    pub link: &'a [u8; 9],
    /// The meter's AES key when one is configured (vendor encryption schemes).
    pub key: Option<&'a Key>,
    /// The step's source bytes (`[step] source`).
    pub data: &'a [u8],
}

impl StepInput<'_> {
    /// Manufacturer field as a number (little endian on air).
    pub fn manufacturer(&self) -> u16 {
        u16::from_le_bytes([self.link[1], self.link[2]])
    }

    /// The 4 identification bytes as transmitted (little endian BCD).
    pub fn id_bytes(&self) -> [u8; 4] {
        [self.link[3], self.link[4], self.link[5], self.link[6]]
    }

    pub fn version(&self) -> u8 {
        self.link[7]
    }

    pub fn device_type(&self) -> u8 {
        self.link[8]
    }

    /// The input byte at `at`, or a [`StepError::TooShort`].
    pub fn byte(&self, step: &'static str, at: usize) -> Result<u8, StepError> {
        Ok(self.array::<1>(step, at)?[0])
    }

    /// The `N` input bytes from `from` on, or a [`StepError::TooShort`].
    pub fn array<const N: usize>(
        &self,
        step: &'static str,
        from: usize,
    ) -> Result<[u8; N], StepError> {
        let bytes = self.bytes(step, from, N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| StepError::TooShort {
            step,
            len: self.data.len(),
            need: from.saturating_add(N),
        })
    }

    /// The input bytes `from..from + len`, or a [`StepError::TooShort`].
    pub fn bytes(&self, step: &'static str, from: usize, len: usize) -> Result<&[u8], StepError> {
        from.checked_add(len)
            .and_then(|end| self.data.get(from..end))
            .ok_or(StepError::TooShort {
                step,
                len: self.data.len(),
                need: from.saturating_add(len),
            })
    }
}

/// EN 13757-3 type G bytes of a date in 2000..=2127, the bit packing only: day in bits
/// 0-4, month in bits 8-11, years since 2000 split over bits 5-7 and 12-15. Each field is
/// masked to its width; range checks and what a step does with an unset or invalid date
/// differ by vendor, so they stay with the caller.
pub(super) fn type_g(years_since_2000: u8, month: u8, day: u8) -> [u8; 2] {
    let y = years_since_2000 & 0x7F;
    [
        (day & 0x1F) | ((y & 0x07) << 5),
        (month & 0x0F) | ((y >> 3) << 4),
    ]
}

/// The step input most unit tests build: a CI, link fields and data, no key.
#[cfg(test)]
fn test_input<'a>(ci: u8, link: &'a [u8; 9], data: &'a [u8]) -> StepInput<'a> {
    StepInput {
        ci,
        link,
        key: None,
        data,
    }
}

/// Why a step could not produce its output; the fields it feeds are left out and the
/// reading says why (`unparsed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("step {step}: input is {len} bytes, needs {need}")]
    TooShort {
        step: &'static str,
        len: usize,
        need: usize,
    },
    #[error("step {step}: needs the meter's AES key, none is configured")]
    NoKey { step: &'static str },
    #[error("step {step}: byte {offset}: {reason}")]
    Invalid {
        step: &'static str,
        offset: usize,
        reason: String,
    },
}

/// A step's signature: input → the bytes `source = "step"` fields read.
pub type StepFn = fn(&StepInput<'_>) -> Result<Vec<u8>, StepError>;

/// One named step.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub name: &'static str,
    /// One line for `wmbusd drivers show` and the docs: what it undoes, what it outputs.
    pub description: &'static str,
    pub run: StepFn,
}

/// Every step a definition may name. Keep sorted by name.
pub const STEPS: &[Step] = &[
    apator::APATOR08_VOLUME,
    apator::APATOR162_REGISTERS,
    apator::APATOR172_VOLUME,
    apator::APATOREITN40_DATES,
    apator::APATOREITN_FRAME,
    apator::APATORNA1_DECRYPT,
    Step {
        name: "bfw240radio",
        description: "BFW 240 radio payload (from its 2F 2F): big-endian billing values, 12-bit \
                      packed monthly history and BCD date -> u16 LE values at 0, 2, 4.. and a \
                      type G date at 40",
        run: qundis::bfw240radio,
    },
    Step {
        name: "bmeters_hydroclima",
        description: "B Meters HydroClima block after DIF 0x0F: the RKN0 frame (0x10) as it is, \
                      empty for the history frame",
        run: engelmann::hydroclima,
    },
    Step {
        name: "bmeters_hydroclima2",
        description: "B Meters HydroClima 2 frame 0x11: temperatures, consumption history, total as BCD",
        run: engelmann::hydroclima2,
    },
    Step {
        name: "bmeters_hydrodigit",
        description: "B Meters Hydrodigit content-byte blocks: battery voltage, dates, backflow, month totals",
        run: engelmann::hydrodigit,
    },
    Step {
        name: "bmeters_rfmtx1_datetime",
        description: "B Meters RFM-TX1 (payload after the TPL header): BCD date and time -> type F",
        run: bmeters::rfmtx1_datetime,
    },
    Step {
        name: "diehl_prios",
        description: "Diehl IZAR/PRIOS (CI 0xA0..0xA7): LFSR descrambling with the meter's or \
                      Diehl's factory key; out: period s (u32), 4 clear bytes, descrambled bytes",
        run: diehl::prios,
    },
    Step {
        name: "gwf_status_block",
        description: "GWF water meter block after DIF 0x0F: checks type 0x01, outputs [status, battery/power byte]",
        run: kamstrup::gwf_status_block,
    },
    Step {
        name: "qundis_heat_block",
        description: "Q heat vendor block (0D FF 5F): error, year-end and month-end dates (type G) \
                      at 0, 2, 4; total, year-end, month-end and 12 monthly deltas as 10-digit \
                      BCD in 0.1 kWh from 6 on (FF for joule meters and months without data)",
        run: qundis::qundis_heat_block,
    },
    Step {
        name: "techem_billing_dates",
        description: "Techem FHKV / MK Radio: previous and current billing dates (bit-packed) as type G",
        run: techem::billing_dates,
    },
    Step {
        name: "techem_compact5",
        description: "Techem Compact V: total of the previous and current period energy (u32 LE)",
        run: techem::compact5,
    },
    Step {
        name: "techem_fhkv3",
        description: "Techem FHKV data III: billing dates (type G), both periods' units and the \
                      two temperatures, placed by the layout byte (u16 LE)",
        run: techem::fhkv3,
    },
    Step {
        name: "techem_mkradio3",
        description: "Techem MK Radio 3: previous and current billing dates as type G, total volume (u32 LE)",
        run: techem::mkradio3,
    },
    Step {
        name: "techem_mkradio3a",
        description: "Techem MK Radio 3a: date as type G, current month and January..December volumes (u16 LE)",
        run: techem::mkradio3a,
    },
    Step {
        name: "techem_previous_date",
        description: "Techem: previous billing date (bytes 1..3, bit-packed) as type G",
        run: techem::previous_date_step,
    },
    Step {
        name: "techem_vario451",
        description: "Techem Vario 4.5.1: total mGJ (u32 LE), current, previous, total in micro-kWh (u64 LE)",
        run: techem::vario451,
    },
];

/// The step called `name`.
pub fn lookup(name: &str) -> Option<&'static Step> {
    STEPS.iter().find(|s| s.name == name)
}

/// The names of all steps, for error messages.
pub fn names() -> String {
    if STEPS.is_empty() {
        return "(none)".to_owned();
    }
    STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_sorted_and_unique() {
        for pair in STEPS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn input_bytes_are_bounds_checked() {
        let link = [0x44, 0x68, 0x50, 1, 2, 3, 4, 0x94, 0x80];
        let input = test_input(0xA2, &link, &[1, 2, 3]);
        assert_eq!(input.manufacturer(), 0x5068);
        assert_eq!(input.id_bytes(), [1, 2, 3, 4]);
        assert_eq!((input.version(), input.device_type()), (0x94, 0x80));
        assert_eq!(input.bytes("t", 1, 2), Ok(&[2u8, 3][..]));
        assert_eq!(
            input.bytes("t", 2, 2),
            Err(StepError::TooShort {
                step: "t",
                len: 3,
                need: 4
            })
        );
        assert!(input.bytes("t", usize::MAX, 2).is_err());
    }

    #[test]
    fn type_g_packs_the_fields_the_reader_unpacks() {
        assert_eq!(type_g(24, 12, 31), [0x1F, 0x3C]);
        assert_eq!(
            crate::wire::apl::type_g(type_g(24, 2, 29)).to_string(),
            "2024-02-29"
        );
        // Years 8 and over carry into the high nibble of the second byte.
        assert_eq!(type_g(0x7F, 1, 1), [0xE1, 0xF1]);
        // Out-of-width fields are masked, not spilled into their neighbours.
        assert_eq!(type_g(0xFF, 0xFF, 0xFF), [0xFF, 0xFF]);
    }
}
