//! KeyStore: which AES-128 key belongs to which meter.
//!
//! A key keeps its 16 bytes and is expanded when used (a few dozen ns with AES-NI): an
//! expanded AES cipher takes about 1.6 kB, 16 MB for 10,000 configured meters. Their bytes never appear in `Debug` or `Display`
//! output or in error messages; what is printed instead is a fingerprint (key check value):
//! the first four bytes of AES_k(0^16), enough to tell keys apart in logs.

use std::collections::BTreeMap;
use std::fmt;

use crate::crypto::{self, Aes128};
use crate::wire::link::id_string;
use crate::wire::manufacturer::Manufacturer;

/// Why a key or meter id was rejected. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("AES key must be 32 hex digits, got {digits}")]
    KeyLength { digits: usize },
    #[error("AES key: character {position} is not a hex digit")]
    KeyNotHex { position: usize },
    /// The text itself is not echoed: a key pasted into the id column must not end up in logs.
    #[error("meter id must be 8 hex digits (e.g. 12345678), got {chars} character(s)")]
    MeterId { chars: usize },
}

/// One AES-128 key: the raw bytes (expanded on use; needed raw e.g. to program a dongle).
#[derive(Clone)]
pub struct Key {
    raw: [u8; 16],
    check_value: [u8; 4],
}

impl Key {
    pub fn new(raw: &[u8; 16]) -> Key {
        let cipher = crypto::expand_key(raw);
        let block = crypto::encrypt_block(&cipher, &[0u8; 16]);
        let check_value = [block[0], block[1], block[2], block[3]];
        Key {
            raw: *raw,
            check_value,
        }
    }

    /// Parses 32 hex digits (either case; surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        if let Some(position) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
            return Err(KeyError::KeyNotHex { position });
        }
        let mut raw = [0u8; 16];
        hex::decode_to_slice(text, &mut raw)
            .map_err(|_| KeyError::KeyLength { digits: text.len() })?;
        Ok(Key::new(&raw))
    }

    /// The expanded cipher, for [`crate::crypto`] functions (expanded on each call).
    pub fn cipher(&self) -> Aes128 {
        crypto::expand_key(&self.raw)
    }

    /// The raw key bytes. Only for handing the key to hardware; never print them.
    pub fn expose_bytes(&self) -> &[u8; 16] {
        &self.raw
    }

    /// Key check value, 8 lower-case hex digits: first 4 bytes of AES_k(0^16).
    pub fn fingerprint(&self) -> String {
        hex::encode(self.check_value)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(fp {})", self.fingerprint())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key fp {}", self.fingerprint())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Key {}

/// Which meter(s) a key is for: an ID, optionally narrowed to one manufacturer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeterSelector {
    /// M-field with bit 15 cleared; `None` matches any manufacturer.
    pub manufacturer: Option<u16>,
    /// ID in on-air order, as in the frame.
    pub id: [u8; 4],
}

impl MeterSelector {
    /// Parses the printed form of a meter ID ("12345678", 8 hex digits).
    pub fn parse_id(text: &str) -> Result<[u8; 4], KeyError> {
        let text = text.trim();
        let mut printed = [0u8; 4];
        if text.len() != 8 || hex::decode_to_slice(text, &mut printed).is_err() {
            return Err(KeyError::MeterId {
                chars: text.chars().count(),
            });
        }
        printed.reverse();
        Ok(printed)
    }

    pub fn id_string(&self) -> String {
        id_string(&self.id)
    }
}

impl fmt::Display for MeterSelector {
    /// "12345678" or, narrowed to a manufacturer, "KAM:12345678".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.manufacturer {
            Some(m) => write!(f, "{}:{}", Manufacturer(m), self.id_string()),
            None => f.write_str(&self.id_string()),
        }
    }
}

/// Meter keys, plus an optional default key tried for meters without their own.
#[derive(Clone, Default)]
pub struct KeyStore {
    keys: BTreeMap<MeterSelector, Key>,
    default_key: Option<Key>,
}

impl KeyStore {
    pub fn new() -> KeyStore {
        KeyStore::default()
    }

    /// Adds (or replaces) the key for meter `id` ("12345678"), any manufacturer.
    pub fn insert(&mut self, id: &str, key: &[u8; 16]) -> Result<(), KeyError> {
        let id = MeterSelector::parse_id(id)?;
        self.keys.insert(
            MeterSelector {
                manufacturer: None,
                id,
            },
            Key::new(key),
        );
        Ok(())
    }

    /// Adds a key for meter `id` of one manufacturer only (IDs are unique per manufacturer).
    pub fn insert_for(
        &mut self,
        manufacturer: u16,
        id: &str,
        key: &[u8; 16],
    ) -> Result<(), KeyError> {
        let id = MeterSelector::parse_id(id)?;
        self.keys.insert(
            MeterSelector {
                manufacturer: Some(Manufacturer(manufacturer).masked()),
                id,
            },
            Key::new(key),
        );
        Ok(())
    }

    /// [`KeyStore::insert`] with the key as 32 hex digits.
    pub fn insert_hex(&mut self, id: &str, key_hex: &str) -> Result<(), KeyError> {
        let key = Key::from_hex(key_hex)?;
        self.insert(id, key.expose_bytes())
    }

    /// The key used for every meter that has no key of its own (`decode --key HEX`).
    pub fn set_default(&mut self, key: &[u8; 16]) {
        self.default_key = Some(Key::new(key));
    }

    pub fn set_default_hex(&mut self, key_hex: &str) -> Result<(), KeyError> {
        self.default_key = Some(Key::from_hex(key_hex)?);
        Ok(())
    }

    pub fn default_key(&self) -> Option<&Key> {
        self.default_key.as_ref()
    }

    /// The key stored for meter `id` ("12345678") without manufacturer; no default fallback.
    pub fn get(&self, id: &str) -> Option<&Key> {
        let id = MeterSelector::parse_id(id).ok()?;
        self.keys.get(&MeterSelector {
            manufacturer: None,
            id,
        })
    }

    /// The key for a meter as identified in a frame: a manufacturer-specific entry first,
    /// then the ID-only entry, then the default key.
    pub fn lookup(&self, manufacturer: u16, id: &[u8; 4]) -> Option<&Key> {
        let specific = MeterSelector {
            manufacturer: Some(Manufacturer(manufacturer).masked()),
            id: *id,
        };
        let any = MeterSelector {
            manufacturer: None,
            id: *id,
        };
        self.keys
            .get(&specific)
            .or_else(|| self.keys.get(&any))
            .or(self.default_key.as_ref())
    }

    /// Number of per-meter keys (the default key not counted).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.default_key.is_none()
    }

    /// Meters with a key of their own, in sorted order.
    pub fn ids(&self) -> impl Iterator<Item = &MeterSelector> {
        self.keys.keys()
    }

    /// Meters with their keys (print keys only through their `Display`, a fingerprint).
    pub fn iter(&self) -> impl Iterator<Item = (&MeterSelector, &Key)> {
        self.keys.iter()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (meter, key) in &self.keys {
            map.entry(&format_args!("{meter}"), key);
        }
        if let Some(key) = &self.default_key {
            map.entry(&format_args!("default"), key);
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &str = "0102030405060708090A0B0C0D0E0F11";
    const KEY: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x11];

    #[test]
    fn insert_and_get() {
        let mut store = KeyStore::new();
        store.insert_hex("12345678", KEY_HEX).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("12345678").map(Key::expose_bytes), Some(&KEY));
        assert!(store.get("87654321").is_none());
        assert!(store.get("not an id").is_none());
        assert_eq!(
            store
                .lookup(0x1593, &[0x78, 0x56, 0x34, 0x12])
                .map(Key::expose_bytes),
            Some(&KEY)
        );
        assert!(store.lookup(0x1593, &[0x21, 0x43, 0x65, 0x87]).is_none());
        let ids: Vec<String> = store.ids().map(ToString::to_string).collect();
        assert_eq!(ids, ["12345678"]);
    }

    #[test]
    fn manufacturer_specific_entry_wins_then_default() {
        let mut store = KeyStore::new();
        let other = [0xAA; 16];
        store.insert("12345678", &KEY).unwrap();
        store
            .insert_for(0x1593 | 0x8000, "12345678", &other)
            .unwrap();
        let id = [0x78, 0x56, 0x34, 0x12];
        assert_eq!(
            store.lookup(0x1593, &id).map(Key::expose_bytes),
            Some(&other)
        );
        assert_eq!(store.lookup(0x2C2D, &id).map(Key::expose_bytes), Some(&KEY));
        assert_eq!(
            store.ids().nth(1).map(ToString::to_string).as_deref(),
            Some("ELS:12345678")
        );

        store.set_default(&[0u8; 16]);
        assert_eq!(
            store.lookup(0x2C2D, &[1, 2, 3, 4]).map(Key::expose_bytes),
            Some(&[0u8; 16])
        );
        assert!(store.get("04030201").is_none(), "get() is exact");
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn bad_input_errors_name_the_problem_not_the_key() {
        let mut store = KeyStore::new();
        assert_eq!(
            store.insert_hex("12345678", "0102"),
            Err(KeyError::KeyLength { digits: 4 })
        );
        let err = store
            .insert_hex("12345678", "0102030405060708090A0B0C0D0E0FZZ")
            .unwrap_err();
        assert_eq!(err, KeyError::KeyNotHex { position: 30 });
        assert!(!err.to_string().contains("0102"));
        assert!(matches!(
            store.insert("1234567", &KEY),
            Err(KeyError::MeterId { .. })
        ));
        assert!(matches!(
            store.insert("1234567g", &KEY),
            Err(KeyError::MeterId { .. })
        ));
        assert!(store.is_empty());
    }

    #[test]
    fn fingerprint_is_aes_of_zero_block() {
        // RFC 4493 section 4: AES-128(2B7E…3C, 0^16) = 7DF76B0C 1AB899B3 3E42F047 B91B546F.
        let key = Key::from_hex("2B7E151628AED2A6ABF7158809CF4F3C").unwrap();
        assert_eq!(key.fingerprint(), "7df76b0c");
        assert_eq!(key.to_string(), "key fp 7df76b0c");
        assert_eq!(format!("{key:?}"), "Key(fp 7df76b0c)");
    }

    #[test]
    fn debug_output_never_contains_key_bytes() {
        let mut store = KeyStore::new();
        store.insert_hex("12345678", KEY_HEX).unwrap();
        store.insert_for(0x2C2D, "76348799", &[0x28; 16]).unwrap();
        store
            .set_default_hex("CAFEBABE123456789ABCDEF0CAFEBABE")
            .unwrap();
        let text = format!("{store:?} {store:#?}");
        assert!(text.contains("12345678") && text.contains("KAM:76348799"));
        for secret in [
            KEY_HEX,
            "CAFEBABE123456789ABCDEF0CAFEBABE",
            &"28".repeat(16),
        ] {
            assert!(
                !text.to_ascii_uppercase().contains(secret),
                "{secret} leaked"
            );
            // Not even a recognisable part of the key.
            assert!(!text.to_ascii_uppercase().contains(&secret[..12]));
        }
        assert!(!text.contains("[1, 2, 3"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(id in ".{0,12}", key in ".{0,40}") {
            let mut store = KeyStore::new();
            if store.insert_hex(&id, &key).is_ok() {
                proptest::prop_assert!(store.get(&id).is_some());
            }
            let _ = Key::from_hex(&key).map(|k| k.fingerprint());
        }
    }
}
