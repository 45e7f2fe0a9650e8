//! The security layers: the ELL's AES-CTR, the TPL's modes 5 and 7 (AES-CBC, with the
//! AFL MAC for mode 7), Diehl's scrambled "real data" and the vendor and claimed modes.
//! Each decrypts the canonical bytes in place and says how it verified.

use super::is_vendor_payload;
use super::transport::Transport;
use super::{tail, tail_mut, DecodeError, Decoder, FailureKind, Lower, SecurityOutcome};
use crate::crypto::{self, derivation};
use crate::drivers::steps::{bmeters, diehl};
use crate::keys::Key;
use crate::wire::address::Address;
use crate::wire::ell::{self, EllEncryption, EllRepr};
use crate::wire::link::LinkHeader;
use crate::wire::telegram::REAL_DATA_CI_AT;
use crate::wire::tpl::{KdfSelection, SecurityMode, TplHeader};
use crate::wire::{apl, Layer};

/// Two idle fillers open every correctly decrypted mode 5/7 payload.
const VERIFICATION: [u8; 2] = [0x2F, 0x2F];

impl Decoder {
    /// Parses the ELL at `pos`, decrypts what follows when it is encrypted, and returns
    /// the position of the next layer.
    pub(super) fn open_ell(
        &self,
        buf: &mut [u8],
        pos: usize,
        link: &LinkHeader,
        lower: &mut Lower,
    ) -> Result<usize, DecodeError> {
        let (ell, used) =
            EllRepr::parse(tail(buf, pos)).map_err(|e| DecodeError::from_wire(e, pos))?;
        lower.ell_access_number = Some(ell.access_number);
        let Some(rel) = ell.encrypted_offset() else {
            return Ok(pos + used);
        };
        let crc_at = pos + rel;
        let crc_ok = |buf: &[u8]| ell::check_payload_crc(tail(buf, crc_at), crc_at).is_ok();
        match ell.encryption() {
            EllEncryption::None => {
                ell::check_payload_crc(tail(buf, crc_at), crc_at)
                    .map_err(|e| DecodeError::from_wire(e, 0))?;
            }
            // The CRC already verifies: a receiver upstream decrypted this frame.
            EllEncryption::AesCtr if crc_ok(buf) => {}
            EllEncryption::AesCtr => {
                let meter = &link.address;
                let Some(key) = self.keys.lookup(meter.manufacturer, &meter.id) else {
                    return Err(no_key(&meter.id_string(), "ELL AES-CTR").at(crc_at));
                };
                if let Some(encrypted) = buf.get_mut(crc_at..) {
                    crypto::ctr_apply(&key.cipher(), &ell.ctr_iv(link), encrypted);
                }
                if !crc_ok(buf) {
                    return Err(DecodeError::new(
                        Layer::Security,
                        FailureKind::WrongKey,
                        format!(
                            "ELL payload CRC does not verify after AES-CTR decryption: wrong key for meter {}",
                            meter.id_string()
                        ),
                    )
                    .at(crc_at));
                }
                lower.ell = SecurityOutcome {
                    decrypted: true,
                    verified_by: Some("ell_crc"),
                };
            }
            EllEncryption::Reserved(bits) => {
                return Err(DecodeError::new(
                    Layer::Ell,
                    FailureKind::Unsupported,
                    format!("reserved ELL encryption method {bits}"),
                )
                .at(pos + rel - 1));
            }
        }
        // Every branch that gets here verified the payload CRC.
        lower.payload_verified = true;
        Ok(crc_at + 2)
    }

    /// Diehl "real data" (CFG bit 12 on a Diehl meter's short-header radio frame, see
    /// [`diehl::open_real_data`]): the payload is LFSR-scrambled, not encrypted, and the
    /// CFG high byte that reads as a reserved mode is its checksum. `None` for every
    /// other frame; the descrambled payload in place, or an error naming the check.
    pub(super) fn open_diehl_real_data(
        &self,
        buf: &mut [u8],
        layer: &Transport,
    ) -> Option<Result<SecurityOutcome, DecodeError>> {
        let (meter, start) = (&layer.meter, layer.start);
        let header: [u8; 5] = buf.get(start..start + 5)?.try_into().ok()?;
        let config = layer.tpl.header?.config.0;
        let letters = meter.manufacturer().letters();
        // Radio frames only: C, M, A sit before the TPL.
        if start != REAL_DATA_CI_AT
            || !diehl::is_real_data(letters, layer.link[0], layer.tpl.ci, config)
        {
            return None;
        }
        let key = self.keys.lookup(meter.manufacturer, &meter.id);
        let payload = buf.get_mut(layer.data..)?;
        if diehl::open_real_data(&layer.link, header, key, payload) {
            return Some(Ok(SecurityOutcome {
                decrypted: true,
                verified_by: Some("diehl_checksum"),
            }));
        }
        Some(Err(DecodeError::new(
            Layer::Security,
            FailureKind::WrongKey,
            format!(
                "Diehl real-data payload of meter {}: neither its key nor Diehl's factory keys give the checksum in the CFG byte",
                meter.id_string()
            ),
        )
        .at(layer.data)))
    }

    /// Decrypts and verifies the TPL payload in place according to the security mode.
    pub(super) fn unlock(
        &self,
        buf: &mut [u8],
        layer: &Transport,
        lower: &Lower,
    ) -> Result<SecurityOutcome, DecodeError> {
        let Some(header) = layer.tpl.header else {
            return Ok(SecurityOutcome::NONE);
        };
        match layer.tpl.security_mode() {
            SecurityMode::None => Ok(SecurityOutcome::NONE),
            SecurityMode::Mode5 => self.mode5(buf, layer, &header),
            SecurityMode::Mode7 => self.mode7(buf, layer, &header, lower),
            SecurityMode::Mode13 => Err(DecodeError::new(
                Layer::Security,
                FailureKind::Unsupported,
                "security mode 13 (TLS) needs a bidirectional session; a receiver cannot decrypt it",
            )
            .at(layer.start + 4)),
            SecurityMode::Other(n) => other_mode(buf, layer, &header, n),
        }
    }

    /// Mode 5: AES-CBC with the meter's key (or Diehl's factory key), verified by 2F 2F.
    fn mode5(
        &self,
        buf: &mut [u8],
        layer: &Transport,
        header: &TplHeader,
    ) -> Result<SecurityOutcome, DecodeError> {
        let (meter, at) = (&layer.meter, layer.data);
        let already_plain = tail(buf, at).starts_with(&VERIFICATION);
        let available = buf.len().saturating_sub(at);
        let announced = usize::from(header.config.encrypted_blocks()) * crypto::BLOCK_LEN;
        // N = 0 with mode 5: everything that remains, in whole blocks.
        let len = if announced == 0 {
            available / crypto::BLOCK_LEN * crypto::BLOCK_LEN
        } else {
            announced
        };
        let encrypted = encrypted_region(buf, at, len)?;
        let iv = crypto::mode5_iv(&meter.address_bytes(), header.access_number);
        let own = self.keys.lookup(meter.manufacturer, &meter.id);
        let factory = own
            .is_none()
            .then(|| diehl_factory_key(meter, &iv, encrypted));
        let Some(key) = own.or(factory.as_ref().and_then(Option::as_ref)) else {
            return if already_plain {
                Ok(SecurityOutcome::NONE)
            } else {
                Err(no_key(&meter.id_string(), "security mode 5").at(at))
            };
        };
        if already_plain && !first_block_verifies(&key.cipher(), &iv, encrypted) {
            // Plaintext replay of a mode-5 telegram: the key does not apply.
            return Ok(SecurityOutcome::NONE);
        }
        decrypt_verified(&key.cipher(), &iv, encrypted, meter, at)
    }

    /// Mode 7: the AFL MAC checked with KDF-A's MAC key, then AES-CBC with its
    /// encryption key and a zero IV.
    fn mode7(
        &self,
        buf: &mut [u8],
        layer: &Transport,
        header: &TplHeader,
        lower: &Lower,
    ) -> Result<SecurityOutcome, DecodeError> {
        let (meter, at) = (&layer.meter, layer.data);
        let already_plain = tail(buf, at).starts_with(&VERIFICATION);
        let len = usize::from(header.config.encrypted_blocks()) * crypto::BLOCK_LEN;
        encrypted_region(buf, at, len)?;
        let Some(key) = self.keys.lookup(meter.manufacturer, &meter.id) else {
            return if already_plain {
                Ok(SecurityOutcome::NONE)
            } else {
                Err(no_key(&meter.id_string(), "security mode 7").at(at))
            };
        };
        if let Some(ext) = header.mode7_extension() {
            if ext.kdf() != KdfSelection::KdfA {
                return Err(DecodeError::new(
                    Layer::Security,
                    FailureKind::Unsupported,
                    "mode 7 key derivation other than KDF-A",
                )
                .at(layer.start + 5));
            }
        }
        let afl = lower.afl.as_ref();
        let mac = afl.and_then(|a| a.mac);
        let counter = header
            .message_counter
            .or_else(|| afl.and_then(|a| a.message_counter));
        let (Some(afl), Some(mac), Some(counter)) = (afl, mac, counter) else {
            return if already_plain {
                Ok(SecurityOutcome::NONE)
            } else {
                Err(DecodeError::new(
                    Layer::Afl,
                    FailureKind::Invalid,
                    "mode 7 telegram without AFL message counter and MAC",
                )
                .at(layer.start))
            };
        };
        let derive =
            |from| crypto::expand_key(&crypto::kdf_a(&key.cipher(), from, counter, &meter.id));
        let mut input = afl.mac_input_prefix();
        input.extend_from_slice(tail(buf, layer.start));
        let kmac = derive(derivation::MAC_FROM_METER);
        if !crypto::mac_matches(&crypto::afl_mac(&kmac, &input), mac.as_slice()) {
            if already_plain {
                // Decrypted upstream: the MAC was over the ciphertext.
                return Ok(SecurityOutcome::NONE);
            }
            return Err(DecodeError::new(
                Layer::Security,
                FailureKind::MacFailure,
                format!(
                    "AFL MAC does not verify: wrong key for meter {} (or corrupted telegram)",
                    meter.id_string()
                ),
            )
            .at(lower.afl_offset));
        }
        let kenc = derive(derivation::ENC_FROM_METER);
        let encrypted = encrypted_region(buf, at, len)?;
        let mut outcome = decrypt_verified(&kenc, &[0u8; 16], encrypted, meter, at)?;
        outcome.verified_by = Some("mac");
        Ok(outcome)
    }
}

/// A reserved or vendor mode: B Meters' scrambled payload, a payload sent in the clear
/// despite the claim, or an error naming the mode.
fn other_mode(
    buf: &mut [u8],
    layer: &Transport,
    header: &TplHeader,
    n: u8,
) -> Result<SecurityOutcome, DecodeError> {
    let at = layer.data;
    let already_plain = tail(buf, at).starts_with(&VERIFICATION);
    if is_vendor_payload(&layer.meter, &layer.tpl)
        && bmeters::descramble_rfmtx1(header.access_number, tail_mut(buf, at))
    {
        // A vendor payload, not records: its driver reads it.
        return Ok(SecurityOutcome {
            decrypted: true,
            verified_by: None,
        });
    }
    if already_plain || reads_as_plain_records(tail(buf, at)) {
        return Ok(SecurityOutcome::NONE);
    }
    let what = match n {
        2 | 3 => "DES, deprecated",
        1 | 15 => "manufacturer specific",
        _ => "reserved or not implemented",
    };
    Err(DecodeError::new(
        Layer::Security,
        FailureKind::Unsupported,
        format!("security mode {n} ({what}) is not supported"),
    )
    .at(layer.start + 4))
}

fn encrypted_region(buf: &mut [u8], start: usize, len: usize) -> Result<&mut [u8], DecodeError> {
    let have = buf.len();
    buf.get_mut(start..start + len).ok_or_else(|| {
        DecodeError::new(
            Layer::Security,
            FailureKind::Truncated,
            format!(
                "configuration field announces {len} encrypted bytes, only {} present",
                have.saturating_sub(start)
            ),
        )
        .at(have)
    })
}

/// True for a payload that reads as data records to its last byte: at least two
/// records, every one of a defined meaning, no manufacturer-specific part. Some meters
/// claim a reserved or vendor security mode in the configuration field and send their
/// records in the clear, without the 2F 2F a decrypted payload starts with; ciphertext
/// almost never parses so, since every DIF and VIF must be valid and the lengths add up
/// to the byte.
fn reads_as_plain_records(data: &[u8]) -> bool {
    let Ok(parsed) = apl::parse(data) else {
        return false;
    };
    parsed.manufacturer_data.is_none()
        && parsed.records.len() >= 2
        && parsed.records.iter().all(|r| {
            // Zero bytes read as records without data: never in a meter's own payload.
            r.dib.data_field != apl::DataField::NoData
                && r.vib.record_error().is_none()
                && !r
                    .vib
                    .meaning(r.dib.data_field)
                    .quantity
                    .starts_with("reserved")
        })
}

/// Diehl's published factory key for OMS mode 5 ([`diehl::OMS_DEFAULT_KEY`]), for a
/// Diehl meter without a configured key, when it opens the first block.
fn diehl_factory_key(meter: &Address, iv: &[u8; 16], encrypted: &[u8]) -> Option<Key> {
    if !diehl::is_diehl(meter.manufacturer().letters()) {
        return None;
    }
    let key = Key::new(&diehl::OMS_DEFAULT_KEY);
    first_block_verifies(&key.cipher(), iv, encrypted).then_some(key)
}

fn first_block_verifies(key: &crypto::Aes128, iv: &[u8; 16], encrypted: &[u8]) -> bool {
    let Some(first) = encrypted.first_chunk::<16>() else {
        return false;
    };
    let mut block = *first;
    crypto::decrypt_cbc_in_place(key, iv, &mut block).is_ok() && block.starts_with(&VERIFICATION)
}

fn decrypt_verified(
    key: &crypto::Aes128,
    iv: &[u8; 16],
    encrypted: &mut [u8],
    meter: &Address,
    at: usize,
) -> Result<SecurityOutcome, DecodeError> {
    crypto::decrypt_cbc_in_place(key, iv, encrypted).map_err(|e| DecodeError::from_wire(e, at))?;
    if encrypted.is_empty() {
        return Ok(SecurityOutcome::NONE);
    }
    if !encrypted.starts_with(&VERIFICATION) {
        return Err(DecodeError::new(
            Layer::Security,
            FailureKind::WrongKey,
            format!(
                "decrypted payload does not start with 2F 2F: wrong key for meter {}",
                meter.id_string()
            ),
        )
        .at(at));
    }
    Ok(SecurityOutcome {
        decrypted: true,
        verified_by: Some("2f2f"),
    })
}

pub(super) fn no_key(meter: &str, what: &str) -> DecodeError {
    DecodeError::new(
        Layer::Security,
        FailureKind::NoKey,
        format!("encrypted ({what}) and no key is configured for meter {meter}"),
    )
}
