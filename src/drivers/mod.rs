//! Manufacturer drivers as data.
//!
//! A driver is a TOML definition, not code. It says which meters it applies to
//! (manufacturer, version bytes, device types), names fields taken from the generic data
//! records (`total_m3` = volume at storage 0), reads manufacturer-specific bytes (offset,
//! length, encoding, scale) and declares the compact-frame formats of its models, so that
//! a compact frame decodes before any full frame of the meter was heard.
//!
//! Definitions are built in (one file per driver in `drivers/` at the repository root,
//! embedded at compile time) and more can be loaded from a directory with
//! [`DriverSet::load_dir`]. A definition that does not parse or validate is rejected with
//! its file, line, column and the reason ([`DefinitionError`]).
//!
//! When no driver matches, the reading carries its generic records only: that is the
//! fallback that always applies.
//!
//! ```toml
//! name = "example"
//! description = "what meters this covers"
//! manufacturer = "KAM"
//! versions = [0x1B]          # empty or absent: any version
//! device_types = [0x16]      # empty or absent: any device type
//! ci = [0x8D]                # CI of the data layer; empty or absent: any
//! compact_formats = ["02FF20 0413 4413"]   # DIF/VIF lists, hex
//!
//! [fields.total_m3]          # name ends in its unit
//! quantity = "volume"        # storage, tariff, subunit default to 0,
//! storage = 0                # function to "instantaneous"
//! # dif_vif = "05FDD9FF01"   # optional: only the record with this exact header
//!
//! [bytes.info_flags]         # manufacturer-specific bytes
//! source = "record:02FF20"   # or "manufacturer_data" (from the CI byte on in proprietary
//!                            # frames), "apl" (the whole application layer after the TPL
//!                            # header or proprietary CI), "step" (the named [step]'s output)
//! offset = 0
//! length = 2
//! encoding = "bits"          # int_le, uint_le, bcd, bits; date_g, datetime_f
//! mask = 0x000F              # bits only
//! scale = "1"                # decimal text, exact
//!
//! [step]                     # optional: a named Rust decoding step (`steps::STEPS`)
//! name = "apator162_registers"
//! source = "manufacturer_data"   # or "record:<dif_vif hex>", "apl"
//! ```
//!
//! Field names end in their unit (`_m3`, `_kwh`, `_c`, ...), in a date suffix (`_date`,
//! `_datetime`, `_time`, optionally followed by a storage index: `set_date_17`) or in a
//! plain suffix for unitless values (`_flags`, `_status`, `_counter`, ...). A name may
//! be defined under both `fields` and `bytes`: the record wins when the telegram has it.
//! `storage` and `function` take one value or a list. Fields whose source is absent from
//! a telegram are left out.

mod extract;
mod model;
mod pick;
pub mod steps;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use model::{BytesDef, Definition, Encoding, FieldDef, FieldKind, OneOrMany, Source, StepDef};

pub use steps::StepError;

use crate::formats::FormatCache;
use crate::keys::Key;
use crate::reading::Reading;
use crate::wire::address::Address;
use crate::wire::apl::DataRecord;
use crate::wire::compact::CompactFormat;
use crate::wire::manufacturer::Manufacturer;

/// The definitions compiled into the binary: (file name, text), every `*.toml` of the
/// repository's `drivers/` directory (see `build.rs`).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_drivers.rs"));

/// A definition rejected while loading: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {reason}")]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// Why loading a set of definitions failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("driver directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("{file}: driver name {name:?} is already defined in {first}")]
    Duplicate {
        file: String,
        name: String,
        first: String,
    },
}

/// What a driver reads of one telegram beyond the decoded reading: header fields, the
/// application layer, its records as parsed and the vendor bytes. All bytes as the
/// frame carries them: nothing the reading shows as hex is turned back into bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameContext<'a> {
    /// CI of the layer carrying the data (TPL CI, or the proprietary CI 0xA0..0xB7).
    pub ci: u8,
    /// Link-layer C, M, A fields as transmitted (9 bytes).
    pub link: [u8; 9],
    /// The meter's configured AES key, for vendor encryption.
    pub key: Option<&'a Key>,
    /// The application layer as received (decrypted): the bytes after the TPL header,
    /// or after a proprietary CI. For vendors whose payload is not data records.
    pub apl: &'a [u8],
    /// The data records as parsed, in transmission order (the reading's records are
    /// these, with compact profiles expanded after theirs); empty without records.
    pub records: &'a [DataRecord<'a>],
    /// The vendor bytes the reading's `manufacturer_data` shows.
    pub manufacturer_data: Option<&'a [u8]>,
}

/// One validated driver.
#[derive(Debug, Clone)]
pub struct Driver {
    pub definition: Definition,
    /// Where the definition came from: `builtin:NAME.toml` or a file path.
    pub source: String,
    /// The definition text as loaded, for `wmbusd drivers show`.
    pub text: String,
    selector: Selector,
    compact_formats: Vec<CompactFormat>,
    rules: extract::Rules,
}

/// What selects a driver: manufacturer code and the definition's `versions`,
/// `device_types` and `ci` as sets, checked per telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selector {
    manufacturer: u16,
    versions: ByteSet,
    device_types: ByteSet,
    cis: ByteSet,
}

impl Selector {
    /// The one selection rule: manufacturer code (bit 15 masked), version, device
    /// type, and the CI of the frame when `ci` is given.
    fn applies(&self, manufacturer: u16, version: u8, device_type: u8, ci: Option<u8>) -> bool {
        self.manufacturer == manufacturer
            && self.versions.contains(version)
            && self.device_types.contains(device_type)
            && ci.map_or(true, |ci| self.cis.contains(ci))
    }
}

/// A set of byte values, all of them for an empty list ("any"): membership is one bit
/// test, where a list search is a loop or a `memchr` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn of(list: &[u8]) -> ByteSet {
        if list.is_empty() {
            return ByteSet([u64::MAX; 4]);
        }
        let mut bits = [0u64; 4];
        for &value in list {
            if let Some(word) = bits.get_mut(usize::from(value >> 6)) {
                *word |= 1 << (value & 63);
            }
        }
        ByteSet(bits)
    }

    fn contains(&self, value: u8) -> bool {
        self.0
            .get(usize::from(value >> 6))
            .is_some_and(|word| word >> (value & 63) & 1 == 1)
    }
}

impl Driver {
    /// Parses and validates one definition; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Driver, DefinitionError> {
        let at = |span: Option<Range<usize>>, reason: String| {
            let (line, column) = crate::textpos::line_col(text, span.map_or(0, |s| s.start));
            DefinitionError {
                file: file.to_owned(),
                line,
                column,
                reason,
            }
        };
        let definition: Definition =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
        let manufacturer =
            Manufacturer::from_code(definition.manufacturer.get_ref()).ok_or_else(|| {
                at(
                    Some(definition.manufacturer.span()),
                    format!(
                        "manufacturer {:?} is not a three-letter FLAG code (A-Z)",
                        definition.manufacturer.get_ref()
                    ),
                )
            })?;
        let compact_formats = definition
            .compact_formats
            .iter()
            .map(|f| {
                model::compact_format(f.get_ref()).map_err(|reason| at(Some(f.span()), reason))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !compact_formats.is_empty()
            && (definition.versions.is_empty() || definition.device_types.is_empty())
        {
            // Declared formats are registered per model; "any version" names no model.
            return Err(at(
                definition.compact_formats.first().map(|f| f.span()),
                "compact_formats need explicit `versions` and `device_types`".into(),
            ));
        }
        definition
            .validate()
            .map_err(|(span, reason)| at(Some(span), reason))?;
        let rules = extract::Rules::compile(&definition).map_err(|reason| at(None, reason))?;
        Ok(Driver {
            source: file.to_owned(),
            text: text.to_owned(),
            selector: Selector {
                manufacturer: manufacturer.raw(),
                versions: ByteSet::of(&definition.versions),
                device_types: ByteSet::of(&definition.device_types),
                cis: ByteSet::of(&definition.ci),
            },
            definition,
            compact_formats,
            rules,
        })
    }

    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// True when this driver applies to the meter (any CI).
    pub fn matches(&self, manufacturer: &str, version: u8, device_type: u8) -> bool {
        Manufacturer::from_code(manufacturer)
            .is_some_and(|m| self.selector.applies(m.raw(), version, device_type, None))
    }

    /// True when the driver has a named step (which gets the frame and the meter's key).
    pub fn runs_step(&self) -> bool {
        self.rules.has_step()
    }

    /// The named step this driver runs, if any.
    pub fn step(&self) -> Option<&'static steps::Step> {
        self.definition
            .step
            .as_ref()
            .and_then(|s| steps::lookup(&s.get_ref().name))
    }

    /// Pre-declared compact-frame formats, parsed.
    pub fn compact_formats(&self) -> &[CompactFormat] {
        &self.compact_formats
    }

    /// Fills `reading.driver` and `reading.fields` from its records and vendor bytes
    /// (a reading without its frame: fields from the named step are left out).
    pub fn apply(&self, reading: &mut Reading) {
        // Without a frame no step runs, so there is no step error to report.
        let _ = self.rules.apply(reading, None);
    }

    /// Where each of `reading`'s fields came from (a record, or source bytes with their
    /// encoding), for `decode --explain`.
    pub fn field_sources(&self, reading: &Reading) -> Vec<(String, String)> {
        self.rules.sources(reading)
    }

    /// Fills `reading.driver` and `reading.fields`, running the named step on `frame`.
    /// A step error leaves that step's fields out and is returned for the reading.
    pub fn apply_frame(
        &self,
        reading: &mut Reading,
        frame: &FrameContext<'_>,
    ) -> Result<(), StepError> {
        self.rules.apply(reading, Some(frame))
    }
}

/// The drivers a decoder selects from. Drivers loaded from a directory come before the
/// built-ins, so a dropped-in definition overrides a built-in one for the same meters.
#[derive(Debug, Clone, Default)]
pub struct DriverSet {
    /// Shared: every decoder (one per CLI call, test or fuzz input) holds the set.
    drivers: Vec<Arc<Driver>>,
    /// Each driver's selector and index into `drivers`, sorted by manufacturer code, in
    /// set order within a code: selection per telegram looks at that manufacturer's few
    /// drivers only, found by binary search (cheaper than hashing the code), and reads
    /// one array.
    by_manufacturer: Arc<[(Selector, usize)]>,
}

impl DriverSet {
    /// No drivers: every reading keeps its generic records only.
    pub fn empty() -> DriverSet {
        DriverSet::default()
    }

    /// The built-in definitions. They are checked by the test suite; one that failed to
    /// load anyway is left out rather than taking the decoder down.
    pub fn builtin() -> DriverSet {
        static BUILT: OnceLock<DriverSet> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let mut set = DriverSet {
                    drivers: builtin_results()
                        .filter_map(Result::ok)
                        .map(Arc::new)
                        .collect(),
                    by_manufacturer: Arc::default(),
                };
                set.reindex();
                set
            })
            .clone()
    }

    /// Adds every `*.toml` of `dir` (sorted by file name) ahead of the drivers already
    /// in the set. A definition whose name is already taken by a built-in replaces it.
    pub fn load_dir(&mut self, dir: &Path) -> Result<usize, LoadError> {
        let io = |source| LoadError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut loaded: Vec<Arc<Driver>> = Vec::new();
        for path in paths {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                path: file.clone(),
                source,
            })?;
            let driver = Driver::parse(&file, &text)?;
            if let Some(first) = loaded.iter().find(|d| d.name() == driver.name()) {
                return Err(LoadError::Duplicate {
                    file,
                    name: driver.name().to_owned(),
                    first: first.source.clone(),
                });
            }
            loaded.push(Arc::new(driver));
        }
        let count = loaded.len();
        let names: BTreeSet<String> = loaded.iter().map(|d| d.name().to_owned()).collect();
        self.drivers.retain(|d| !names.contains(d.name()));
        loaded.append(&mut self.drivers);
        self.drivers = loaded;
        self.reindex();
        Ok(count)
    }

    fn reindex(&mut self) {
        let mut index: Vec<(Selector, usize)> = self
            .drivers
            .iter()
            .enumerate()
            .map(|(i, driver)| (driver.selector, i))
            .collect();
        // Stable: drivers of one manufacturer stay in set order.
        index.sort_by_key(|(selector, _)| selector.manufacturer);
        self.by_manufacturer = index.into();
    }

    /// The first driver that applies to the meter, whatever the CI; `None` = generic
    /// records only.
    pub fn select(&self, manufacturer: &str, version: u8, device_type: u8) -> Option<&Driver> {
        self.iter()
            .find(|d| d.matches(manufacturer, version, device_type))
    }

    /// The first driver that applies to the meter's frames with this CI, looked up
    /// through the manufacturer index.
    pub fn select_address(&self, meter: &Address, ci: u8) -> Option<&Driver> {
        self.select_index(meter, ci)
            .and_then(|i| self.drivers.get(i))
            .map(|d| &**d)
    }

    fn select_index(&self, meter: &Address, ci: u8) -> Option<usize> {
        let manufacturer = meter.manufacturer().masked();
        let first = self
            .by_manufacturer
            .partition_point(|(s, _)| s.manufacturer < manufacturer);
        let (_, i) = self
            .by_manufacturer
            .get(first..)?
            .iter()
            .take_while(|(s, _)| s.manufacturer == manufacturer)
            .find(|(s, _)| s.applies(manufacturer, meter.version, meter.device_type, Some(ci)))?;
        Some(*i)
    }

    pub fn get(&self, name: &str) -> Option<&Driver> {
        self.iter().find(|d| d.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Driver> {
        self.drivers.iter().map(|d| &**d)
    }

    pub fn len(&self) -> usize {
        self.drivers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.drivers.is_empty()
    }

    /// Registers every declared compact format for each model (manufacturer, version,
    /// device type) its driver names.
    pub fn declare_formats(&self, cache: &mut FormatCache) {
        for driver in self.iter() {
            for &version in &driver.definition.versions {
                for &device_type in &driver.definition.device_types {
                    for format in &driver.compact_formats {
                        cache.declare_model(
                            driver.selector.manufacturer,
                            version,
                            device_type,
                            format.clone(),
                        );
                    }
                }
            }
        }
    }
}

/// Every built-in definition, loaded, with its file name (for tests and `drivers list`).
pub fn builtin_results() -> impl Iterator<Item = Result<Driver, DefinitionError>> {
    BUILTIN
        .iter()
        .map(|(file, text)| Driver::parse(&format!("builtin:{file}"), text))
}

#[cfg(test)]
mod tests;
