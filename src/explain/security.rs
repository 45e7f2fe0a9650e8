//! The encrypted region after the TPL header: decrypted with which key, or left as
//! ciphertext when the key is missing or wrong.

use super::{Section, Walk};
use crate::wire::tpl::{SecurityMode, TplRepr};

impl Walk<'_> {
    /// Explains the encrypted region; false when it stays ciphertext.
    pub(super) fn security(&mut self, repr: &TplRepr, data_start: usize) -> bool {
        let mode = repr.security_mode();
        let Some(header) = repr.header else {
            return true;
        };
        let available = self.end.saturating_sub(data_start);
        let blocks = usize::from(header.config.encrypted_blocks());
        let len = match mode {
            SecurityMode::None => return true,
            SecurityMode::Mode5 if blocks == 0 => available / 16 * 16,
            _ => blocks * 16,
        };
        let len = len.min(available);
        let what = match mode {
            SecurityMode::Mode5 => "security mode 5: AES-128-CBC, IV from address and ACC",
            SecurityMode::Mode7 => "security mode 7: AES-128-CBC, zero IV, keys derived by KDF-A",
            _ => "a security mode this decoder does not decrypt",
        };
        if self.security_failed() {
            let meaning = format!("{what}; not decrypted");
            self.push_from(
                Section::Security,
                data_start,
                len,
                "ciphertext",
                meaning,
                true,
            );
            let why = "after the encrypted region, not read";
            self.unused(Section::Security, data_start + len, why, true);
            return false;
        }
        let region = data_start..data_start + len;
        let state = if self.plain.get(region.clone()) != self.received.get(region) {
            let fp = match self.meter {
                Some(m) => self.key_fingerprint_for(m.manufacturer, m.id),
                None => "the configured key".to_owned(),
            };
            let check = if mode == SecurityMode::Mode7 {
                "AFL MAC and 2F 2F check"
            } else {
                "2F 2F check"
            };
            format!("{len} bytes decrypted with {fp}, verified by the {check}")
        } else {
            format!("{len} bytes, already plaintext (decrypted upstream)")
        };
        // A zero-length span: the decrypted bytes themselves are shown record by record.
        let meaning = format!("{what}; {state}; shown decrypted below");
        self.push(Section::Security, data_start, 0, "encryption", meaning);
        true
    }
}
