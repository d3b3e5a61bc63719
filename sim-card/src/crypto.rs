//! The card's cryptography: a seeded RNG, key generation, the public-key template, signing as a
//! PIV card signs (ECDSA over a hash; RSA over a PKCS#1 v1.5 block the host padded), and the
//! management-key block cipher.

use aws_lc_rs::{
    digest,
    encoding::AsDer,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512},
};
use p256::ecdsa::SigningKey;

use crate::{
    state::{KeyAlgorithm, ManagementAlgorithm, Secret, SlotKey},
    tlv::tlv,
};

/// A deterministic RNG: SHA-256 of (seed, counter). Reproducible runs need it; it is a
/// simulator, not a secure element.
pub struct DetRng<'a> {
    seed: u64,
    counter: &'a mut u64,
}

impl<'a> DetRng<'a> {
    /// An RNG continuing from `counter`.
    pub fn new(seed: u64, counter: &'a mut u64) -> Self {
        Self { seed, counter }
    }

    /// `n` pseudo-random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 32);
        while out.len() < n {
            *self.counter += 1;
            let mut input = self.seed.to_be_bytes().to_vec();
            input.extend_from_slice(&self.counter.to_be_bytes());
            out.extend_from_slice(digest::digest(&digest::SHA256, &input).as_ref());
        }
        out.truncate(n);
        out
    }
}

/// Why the card cannot perform an operation (mapped to a status word by the applet).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum CryptoError {
    /// Input the algorithm cannot take.
    BadInput,
    /// The stored key is unusable.
    BadKey,
}

/// Generates a key. EC keys come from the seeded RNG; RSA keys from the system RNG
/// (aws-lc-rs has no seeded RSA generation), so RSA runs are not byte-reproducible.
pub fn generate(algorithm: KeyAlgorithm, rng: &mut DetRng<'_>) -> Result<SlotKey, CryptoError> {
    let private = match algorithm {
        KeyAlgorithm::EccP256 => loop {
            let scalar = rng.bytes(32);
            if SigningKey::from_slice(&scalar).is_ok() {
                break scalar;
            }
        },
        KeyAlgorithm::EccP384 => loop {
            let scalar = rng.bytes(48);
            if p384::ecdsa::SigningKey::from_slice(&scalar).is_ok() {
                break scalar;
            }
        },
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match algorithm {
                KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                KeyAlgorithm::Rsa4096 => KeySize::Rsa4096,
                _ => KeySize::Rsa2048,
            };
            let key = RsaKeyPair::generate(size).map_err(|_| CryptoError::BadKey)?;
            key.as_der()
                .map_err(|_| CryptoError::BadKey)?
                .as_ref()
                .to_vec()
        }
    };
    Ok(SlotKey {
        algorithm,
        private: Secret::new(private),
        generated: true,
        pin_policy: crate::state::PinPolicy::Once,
        touch_policy: crate::touch::TouchPolicy::Never,
    })
}

/// An EC private key imported from its scalar (YubiKey IMPORT, tag 06): it must be a valid
/// scalar of the curve (non-zero, below the order) of exactly the curve's length.
pub fn import_ec(algorithm: KeyAlgorithm, scalar: &[u8]) -> Result<SlotKey, CryptoError> {
    let valid = match algorithm {
        KeyAlgorithm::EccP256 => scalar.len() == 32 && SigningKey::from_slice(scalar).is_ok(),
        KeyAlgorithm::EccP384 => {
            scalar.len() == 48 && p384::ecdsa::SigningKey::from_slice(scalar).is_ok()
        }
        _ => false,
    };
    if !valid {
        return Err(CryptoError::BadKey);
    }
    Ok(SlotKey {
        algorithm,
        private: Secret::new(scalar.to_vec()),
        generated: false,
        pin_policy: crate::state::PinPolicy::Once,
        touch_policy: crate::touch::TouchPolicy::Never,
    })
}

fn rsa_key(key: &SlotKey) -> Result<RsaKeyPair, CryptoError> {
    RsaKeyPair::from_pkcs8(&key.private.0).map_err(|_| CryptoError::BadKey)
}

fn p256_key(key: &SlotKey) -> Result<SigningKey, CryptoError> {
    SigningKey::from_slice(&key.private.0).map_err(|_| CryptoError::BadKey)
}

fn p384_key(key: &SlotKey) -> Result<p384::ecdsa::SigningKey, CryptoError> {
    p384::ecdsa::SigningKey::from_slice(&key.private.0).map_err(|_| CryptoError::BadKey)
}

/// The uncompressed SEC1 point of an EC slot key.
fn ec_point(key: &SlotKey) -> Result<Vec<u8>, CryptoError> {
    match key.algorithm {
        KeyAlgorithm::EccP256 => Ok(p256_key(key)?
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()),
        KeyAlgorithm::EccP384 => Ok(p384_key(key)?
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()),
        _ => Err(CryptoError::BadKey),
    }
}

/// The public key as the contents of a `7F49` template: `86` point for EC, `81` modulus and
/// `82` exponent for RSA (SP 800-73-4 part 2 §3.3.2).
pub fn public_key_template(key: &SlotKey) -> Result<Vec<u8>, CryptoError> {
    match key.algorithm {
        KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 => Ok(tlv(&[0x86], &ec_point(key)?)),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let pair = rsa_key(key)?;
            let (n, e) = rsa_components(pair.public_key().as_ref()).ok_or(CryptoError::BadKey)?;
            let mut out = tlv(&[0x81], &n);
            out.extend(tlv(&[0x82], &e));
            Ok(out)
        }
    }
}

/// Splits a PKCS#1 `RSAPublicKey` into modulus and exponent (unsigned big-endian).
fn rsa_components(pkcs1: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use der::{Decode, Reader};
    let mut reader = der::SliceReader::new(pkcs1).ok()?;
    der::Header::decode(&mut reader).ok()?;
    let n = der::asn1::UintRef::decode(&mut reader).ok()?;
    let e = der::asn1::UintRef::decode(&mut reader).ok()?;
    reader.finish().ok()?;
    Some((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
}

/// DigestInfo prefixes (RFC 8017 §9.2 note 1).
const DIGEST_INFOS: [(
    &[u8],
    &digest::Algorithm,
    &dyn aws_lc_rs::signature::RsaEncoding,
); 3] = [
    (
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        &digest::SHA256,
        &RSA_PKCS1_SHA256,
    ),
    (
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        &digest::SHA384,
        &RSA_PKCS1_SHA384,
    ),
    (
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        &digest::SHA512,
        &RSA_PKCS1_SHA512,
    ),
];

/// Signs as GENERAL AUTHENTICATE does. ECDSA: `input` is the hash (the card signs it as is,
/// RFC 6979 deterministic), output DER. RSA: `input` is a full PKCS#1 v1.5 type-1 block over a
/// SHA-2 DigestInfo, output the raw signature. (A real card does a raw RSA operation on any
/// block; this one accepts the signature blocks renewal and OpenSC produce.)
pub fn sign(key: &SlotKey, input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match key.algorithm {
        KeyAlgorithm::EccP256 => {
            use signature::hazmat::PrehashSigner;
            if input.len() < 16 || input.len() > 64 {
                return Err(CryptoError::BadInput);
            }
            let sig: p256::ecdsa::DerSignature = p256_key(key)?
                .sign_prehash(input)
                .map_err(|_| CryptoError::BadInput)?;
            Ok(sig.as_bytes().to_vec())
        }
        KeyAlgorithm::EccP384 => {
            use signature::hazmat::PrehashSigner;
            if input.len() < 16 || input.len() > 64 {
                return Err(CryptoError::BadInput);
            }
            let sig: p384::ecdsa::DerSignature = p384_key(key)?
                .sign_prehash(input)
                .map_err(|_| CryptoError::BadInput)?;
            Ok(sig.as_bytes().to_vec())
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let pair = rsa_key(key)?;
            if input.len() != pair.public_modulus_len() {
                return Err(CryptoError::BadInput);
            }
            // 00 01 FF..FF 00 DigestInfo
            let body = input
                .strip_prefix(&[0x00, 0x01])
                .ok_or(CryptoError::BadInput)?;
            let pad = body.iter().take_while(|&&b| b == 0xFF).count();
            let rest = body[pad..]
                .strip_prefix(&[0x00])
                .ok_or(CryptoError::BadInput)?;
            if pad < 8 {
                return Err(CryptoError::BadInput);
            }
            let (prefix, alg, encoding) = DIGEST_INFOS
                .iter()
                .find(|(p, ..)| rest.starts_with(p))
                .ok_or(CryptoError::BadInput)?;
            let hash = digest::Digest::import_less_safe(&rest[prefix.len()..], alg)
                .map_err(|_| CryptoError::BadInput)?;
            let mut sig = vec![0u8; pair.public_modulus_len()];
            pair.sign_digest(*encoding, &hash, &mut sig)
                .map_err(|_| CryptoError::BadKey)?;
            Ok(sig)
        }
    }
}

/// Encrypts one block with the management key (ECB: a single block per PIV authentication).
pub fn mgmt_encrypt(alg: ManagementAlgorithm, key: &[u8], block: &[u8]) -> Option<Vec<u8>> {
    cipher_block(alg, key, block, true)
}

/// Decrypts one block with the management key.
pub fn mgmt_decrypt(alg: ManagementAlgorithm, key: &[u8], block: &[u8]) -> Option<Vec<u8>> {
    cipher_block(alg, key, block, false)
}

fn cipher_block(
    alg: ManagementAlgorithm,
    key: &[u8],
    block: &[u8],
    encrypt: bool,
) -> Option<Vec<u8>> {
    use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
    if block.len() != alg.block_len() {
        return None;
    }
    match alg {
        ManagementAlgorithm::Tdes => {
            let mut b8: GenericArray<u8, _> = GenericArray::clone_from_slice(block);
            let c = des::TdesEde3::new_from_slice(key).ok()?;
            if encrypt {
                c.encrypt_block(&mut b8)
            } else {
                c.decrypt_block(&mut b8)
            }
            Some(b8.to_vec())
        }
        ManagementAlgorithm::Aes128 => aes_block::<aes::Aes128>(key, block, encrypt),
        ManagementAlgorithm::Aes192 => aes_block::<aes::Aes192>(key, block, encrypt),
        ManagementAlgorithm::Aes256 => aes_block::<aes::Aes256>(key, block, encrypt),
    }
}

/// One AES block (ECB) with a key of `C`'s length.
fn aes_block<C>(key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>>
where
    C: aes::cipher::BlockEncrypt
        + aes::cipher::BlockDecrypt
        + aes::cipher::KeyInit
        + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let mut b16 = aes::cipher::generic_array::GenericArray::clone_from_slice(block);
    let c = C::new_from_slice(key).ok()?;
    if encrypt {
        c.encrypt_block(&mut b16)
    } else {
        c.decrypt_block(&mut b16)
    }
    Some(b16.to_vec())
}

/// The DER `SubjectPublicKeyInfo` of a slot key.
pub fn spki_der(key: &SlotKey) -> Result<Vec<u8>, CryptoError> {
    match key.algorithm {
        KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 => {
            use der::Encode;
            let ec_public_key = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
            let curve = der::asn1::ObjectIdentifier::new_unwrap(match key.algorithm {
                KeyAlgorithm::EccP384 => "1.3.132.0.34",
                _ => "1.2.840.10045.3.1.7",
            });
            spki::SubjectPublicKeyInfoOwned {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: ec_public_key,
                    parameters: Some(
                        der::asn1::Any::encode_from(&curve).map_err(|_| CryptoError::BadKey)?,
                    ),
                },
                subject_public_key: der::asn1::BitString::from_bytes(&ec_point(key)?)
                    .map_err(|_| CryptoError::BadKey)?,
            }
            .to_der()
            .map_err(|_| CryptoError::BadKey)
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => Ok(rsa_key(key)?
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::BadKey)?
            .as_ref()
            .to_vec()),
    }
}
