//! The card's cryptography: a seeded RNG, key generation, the public-key template, signing as a
//! PIV card signs (ECDSA over a hash; RSA over a PKCS#1 v1.5 block the host padded), and the
//! management-key block cipher.

use aws_lc_rs::{
    digest,
    encoding::AsDer,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::KeyPair as _,
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
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum CryptoError {
    /// Input the algorithm cannot take.
    #[error("input the algorithm cannot take")]
    BadInput,
    /// The stored key is unusable.
    #[error("the stored key is unusable")]
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

/// The private-key operation of GENERAL AUTHENTICATE. ECDSA: `input` is the hash (signed as
/// is, RFC 6979 deterministic), output DER. RSA: the raw operation a PIV card does (RSASP1 /
/// RSADP, RFC 8017 §5.1.2, §5.2.1) on a block of the modulus's length below the modulus —
/// whatever the host padded: a PKCS#1 v1.5 or PSS signature block, or a ciphertext to decrypt.
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
            rsa_raw(key, input)
        }
    }
}

/// `RSAPrivateKey` (RFC 8017 appendix A.1.2): the modulus and private exponent are what the
/// raw operation needs.
#[derive(der::Sequence)]
struct RsaPrivateKey<'a> {
    version: u8,
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
    private_exponent: der::asn1::UintRef<'a>,
    prime1: der::asn1::UintRef<'a>,
    prime2: der::asn1::UintRef<'a>,
    exponent1: der::asn1::UintRef<'a>,
    exponent2: der::asn1::UintRef<'a>,
    coefficient: der::asn1::UintRef<'a>,
}

/// `PrivateKeyInfo` (RFC 5208), as aws-lc-rs writes an RSA key: no attributes.
#[derive(der::Sequence)]
struct PrivateKeyInfo<'a> {
    version: u8,
    algorithm: der::asn1::AnyRef<'a>,
    private_key: &'a der::asn1::OctetStringRef,
}

/// `input^d mod n`, big-endian, `input` of the modulus's length and below it.
fn rsa_raw(key: &SlotKey, input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    use crypto_bigint::{
        BoxedUint, Odd,
        modular::{BoxedMontyForm, BoxedMontyParams},
    };
    use der::Decode;
    let info = PrivateKeyInfo::from_der(&key.private.0).map_err(|_| CryptoError::BadKey)?;
    let rsa =
        RsaPrivateKey::from_der(info.private_key.as_bytes()).map_err(|_| CryptoError::BadKey)?;
    let modulus = rsa.modulus.as_bytes();
    if input.len() != modulus.len() {
        return Err(CryptoError::BadInput);
    }
    let bits = u32::try_from(modulus.len() * 8).map_err(|_| CryptoError::BadKey)?;
    let n = BoxedUint::from_be_slice(modulus, bits).map_err(|_| CryptoError::BadKey)?;
    let d = BoxedUint::from_be_slice(rsa.private_exponent.as_bytes(), bits)
        .map_err(|_| CryptoError::BadKey)?;
    let c = BoxedUint::from_be_slice(input, bits).map_err(|_| CryptoError::BadInput)?;
    if c >= n {
        return Err(CryptoError::BadInput);
    }
    let n = Option::<Odd<BoxedUint>>::from(Odd::new(n)).ok_or(CryptoError::BadKey)?;
    let params = BoxedMontyParams::new(n);
    let m = BoxedMontyForm::new(c, &params).pow(&d).retrieve();
    let bytes = m.to_be_bytes();
    let mut out = vec![0u8; modulus.len()];
    let take = bytes.len().min(out.len());
    out[modulus.len() - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    Ok(out)
}

/// ECDH (GENERAL AUTHENTICATE with `85`, SP 800-73-4 part 2 §3.2.4): the shared secret's
/// x-coordinate with the peer's uncompressed point.
pub fn ecdh(key: &SlotKey, peer_point: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match key.algorithm {
        KeyAlgorithm::EccP256 => {
            let secret =
                p256::SecretKey::from_slice(&key.private.0).map_err(|_| CryptoError::BadKey)?;
            let peer =
                p256::PublicKey::from_sec1_bytes(peer_point).map_err(|_| CryptoError::BadInput)?;
            let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
            Ok(shared.raw_secret_bytes().to_vec())
        }
        KeyAlgorithm::EccP384 => {
            let secret =
                p384::SecretKey::from_slice(&key.private.0).map_err(|_| CryptoError::BadKey)?;
            let peer =
                p384::PublicKey::from_sec1_bytes(peer_point).map_err(|_| CryptoError::BadInput)?;
            let shared = p384::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
            Ok(shared.raw_secret_bytes().to_vec())
        }
        _ => Err(CryptoError::BadInput),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The raw operation on a PKCS#1 v1.5 block is the PKCS#1 v1.5 signature aws-lc-rs makes
    /// itself (an implementation we did not write agrees), and an input at or above the
    /// modulus, or of another length, is refused.
    #[test]
    fn raw_rsa_on_a_pkcs1_block_is_the_pkcs1_signature() {
        let mut counter = 0;
        let key = generate(KeyAlgorithm::Rsa2048, &mut DetRng::new(1, &mut counter)).unwrap();
        let pair = rsa_key(&key).unwrap();
        let message = b"renewal request";
        let mut expected = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message,
            &mut expected,
        )
        .unwrap();
        let digest_info = [
            &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ][..],
            digest::digest(&digest::SHA256, message).as_ref(),
        ]
        .concat();
        let mut block = vec![0x00, 0x01];
        block.resize(256 - digest_info.len() - 1, 0xFF);
        block.push(0x00);
        block.extend_from_slice(&digest_info);
        assert_eq!(sign(&key, &block).unwrap(), expected);
        assert_eq!(sign(&key, &[0xFF; 256]), Err(CryptoError::BadInput));
        assert_eq!(sign(&key, &block[1..]), Err(CryptoError::BadInput));
    }
}
