//! What the card's bytes mean: BER-TLV as PIV uses it, slots and their certificate objects,
//! algorithm identifiers, public-key templates and the DigestInfo a card signs.

use spki::SubjectPublicKeyInfoOwned;

use super::{PRIMARY_SLOTS, RETIRED_SLOTS};
use crate::token::{ContainerId, KeyAlgorithm, TokenError};

pub(super) fn tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    match value.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            out.push(0x82);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// Finds the first `tag` in a BER-TLV sequence (one- or two-byte tags).
pub(super) fn find_tlv<'a>(mut input: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    while !input.is_empty() {
        let tag_len = if input[0] & 0x1f == 0x1f { 2 } else { 1 };
        let t = input.get(..tag_len)?;
        let rest = &input[tag_len..];
        let (len, header) = match *rest.first()? {
            n @ 0..=0x7f => (usize::from(n), 1),
            0x81 => (usize::from(*rest.get(1)?), 2),
            0x82 => (
                usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                3,
            ),
            _ => return None,
        };
        let value = rest.get(header..header + len)?;
        if t == tag {
            return Some(value);
        }
        input = &rest[header + len..];
    }
    None
}

pub(super) fn slot_id(slot: u8) -> ContainerId {
    ContainerId(format!("{slot:02x}"))
}

pub(super) fn parse_slot(id: &ContainerId) -> Result<u8, TokenError> {
    u8::from_str_radix(&id.0, 16)
        .ok()
        .filter(|s| PRIMARY_SLOTS.contains(s) || RETIRED_SLOTS.contains(s))
        .ok_or_else(|| TokenError::NotFound(id.clone()))
}

pub(super) fn certificate_tag(slot: u8) -> [u8; 3] {
    let last = match slot {
        0x9A => 0x05,
        0x9C => 0x0A,
        0x9D => 0x0B,
        0x9E => 0x01,
        s => 0x0D + (s - 0x82),
    };
    [0x5F, 0xC1, last]
}

/// Builds an SPKI from a `7F49` public-key template. The key is parsed and checked (point on
/// the curve, RSA modulus of the size the card claims): a card that answers garbage gets a
/// typed error, never a key that later fails somewhere else.
pub(super) fn spki_from_template(
    algorithm: KeyAlgorithm,
    template: &[u8],
) -> Option<SubjectPublicKeyInfoOwned> {
    use crate::cmc::public_key::{Curve, PublicKey};
    let key = match algorithm {
        KeyAlgorithm::EcP256 => PublicKey::ec(Curve::P256, find_tlv(template, &[0x86])?).ok()?,
        KeyAlgorithm::EcP384 => PublicKey::ec(Curve::P384, find_tlv(template, &[0x86])?).ok()?,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let n = find_tlv(template, &[0x81])?;
            let e = find_tlv(template, &[0x82])?;
            PublicKey::rsa_from_parts(n, e).ok()?
        }
    };
    (KeyAlgorithm::of(&key) == Some(algorithm)).then(|| key.to_spki())
}

pub(super) fn key_algorithm(id: u8) -> Option<KeyAlgorithm> {
    match id {
        0x11 => Some(KeyAlgorithm::EcP256),
        0x14 => Some(KeyAlgorithm::EcP384),
        0x07 => Some(KeyAlgorithm::Rsa2048),
        0x05 => Some(KeyAlgorithm::Rsa3072),
        0x16 => Some(KeyAlgorithm::Rsa4096),
        _ => None,
    }
}

/// PIV algorithm identifiers (NIST SP 800-78-5 Table 6-2; 0x16 is RSA-4096 as YubiKey 5.7
/// firmware assigns it).
pub(super) fn algorithm_id(algorithm: KeyAlgorithm) -> u8 {
    match algorithm {
        KeyAlgorithm::EcP256 => 0x11,
        KeyAlgorithm::EcP384 => 0x14,
        KeyAlgorithm::Rsa2048 => 0x07,
        KeyAlgorithm::Rsa3072 => 0x05,
        KeyAlgorithm::Rsa4096 => 0x16,
    }
}

/// DigestInfo prefixes (RFC 8017 §9.2 note 1) for the PKCS#1 v1.5 block a PIV card signs.
pub(crate) fn digest_info_prefix(digest: crate::cmc::DigestAlgorithm) -> &'static [u8] {
    use crate::cmc::DigestAlgorithm::*;
    match digest {
        Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}
