//! Software keys: for interop testing (`renew build-request`), for the simulators' CA key, and
//! for tests. Signing goes through `aws-lc-rs` (several times faster than pure-Rust P-256, and
//! the same library rustls uses): ECDSA with a fresh random nonce, RSA PKCS#1 v1.5 (deterministic
//! by construction). Where the bytes must be reproducible (snapshots, `sample --deterministic`),
//! a P-256 key is created explicitly as RFC 6979 ([`SoftwareKey::p256_rfc6979_from_scalar`]) and
//! signs with `p256`. Key material is zeroized on drop by both crates.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _,
        RSA_PKCS1_SHA256,
    },
};
use der::{
    Decode,
    asn1::{Any, BitString, ObjectIdentifier},
    pem::PemLabel,
};
use p256::ecdsa::{DerSignature, SigningKey};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::{
    crypto::{SignError, SignatureAlgorithm, Signer},
    oids,
};

/// Why a key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM, or a PEM label we do not read.
    #[error("unsupported key encoding: {0} (expected PKCS#8, SEC1 or PKCS#1 PEM/DER)")]
    Encoding(String),
    /// A key type or curve we do not support.
    #[error("unsupported key algorithm {0} (supported: EC P-256 and P-384, RSA)")]
    Algorithm(String),
    /// The key bytes are invalid.
    #[error("invalid key: {0}")]
    Invalid(String),
}

/// A private key held in memory.
pub struct SoftwareKey {
    key: Key,
    spki: SubjectPublicKeyInfoOwned,
}

/// How a software key signs.
enum Key {
    /// ECDSA P-256 through aws-lc-rs, random nonce: the fast path.
    P256(EcdsaKeyPair),
    /// ECDSA P-256 with RFC 6979 nonces (`p256`): reproducible bytes, chosen explicitly.
    P256Rfc6979(SigningKey),
    /// ECDSA P-384 with SHA-384, through aws-lc-rs (CA keys).
    P384(EcdsaKeyPair),
    /// RSA, PKCS#1 v1.5 / SHA-256 signatures.
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SoftwareKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key {
            Key::P256(_) => f.write_str("SoftwareKey::P256(..)"),
            Key::P256Rfc6979(_) => f.write_str("SoftwareKey::P256Rfc6979(..)"),
            Key::P384(_) => f.write_str("SoftwareKey::P384(..)"),
            Key::Rsa(_) => f.write_str("SoftwareKey::Rsa(..)"),
        }
    }
}

fn p256_spki(point: &[u8]) -> Result<SubjectPublicKeyInfoOwned, KeyError> {
    ec_spki(oids::SECP256R1, point)
}

fn ec_spki(curve: ObjectIdentifier, point: &[u8]) -> Result<SubjectPublicKeyInfoOwned, KeyError> {
    let invalid = |e: der::Error| KeyError::Invalid(e.to_string());
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oids::EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve).map_err(invalid)?),
        },
        subject_public_key: BitString::from_bytes(point).map_err(invalid)?,
    })
}

fn rsa_spki(key: &RsaKeyPair) -> Result<SubjectPublicKeyInfoOwned, KeyError> {
    let der = key
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Invalid("RSA public key export failed".into()))?;
    SubjectPublicKeyInfoOwned::from_der(der.as_ref()).map_err(|e| KeyError::Invalid(e.to_string()))
}

impl SoftwareKey {
    /// A P-256 key from a 32-byte scalar, signing through aws-lc-rs with random nonces.
    pub fn p256_from_scalar(scalar: &[u8]) -> Result<Self, KeyError> {
        let rfc6979 =
            SigningKey::from_slice(scalar).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let point = rfc6979.verifying_key().to_sec1_point(false);
        let key = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            scalar,
            point.as_bytes(),
        )
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let spki = p256_spki(point.as_bytes())?;
        Ok(Self {
            key: Key::P256(key),
            spki,
        })
    }

    /// A P-256 key from a 32-byte scalar whose signatures are deterministic (RFC 6979): the same
    /// message always gives the same bytes. For snapshots and reproducible samples only; it
    /// signs several times slower than [`SoftwareKey::p256_from_scalar`].
    pub fn p256_rfc6979_from_scalar(scalar: &[u8]) -> Result<Self, KeyError> {
        let key = SigningKey::from_slice(scalar).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let spki = p256_spki(key.verifying_key().to_sec1_point(false).as_bytes())?;
        Ok(Self {
            key: Key::P256Rfc6979(key),
            spki,
        })
    }

    /// Whether signatures are reproducible (RFC 6979 ECDSA or RSA PKCS#1 v1.5).
    pub fn is_deterministic(&self) -> bool {
        !matches!(self.key, Key::P256(_))
    }

    /// A fresh random P-256 key.
    pub fn generate_p256() -> Result<Self, KeyError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| KeyError::Invalid("P-256 key generation failed".into()))?;
        let spki = p256_spki(key.public_key().as_ref())?;
        Ok(Self {
            key: Key::P256(key),
            spki,
        })
    }

    /// A fresh RSA-2048 key.
    pub fn generate_rsa2048() -> Result<Self, KeyError> {
        Self::generate_rsa(2048)
    }

    /// A fresh RSA key of 2048, 3072 or 4096 bits.
    pub fn generate_rsa(bits: u32) -> Result<Self, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(KeyError::Algorithm(format!("RSA-{other}"))),
        };
        let key = RsaKeyPair::generate(size)
            .map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
        Self::rsa(key)
    }

    /// A fresh random P-384 key (signs with SHA-384).
    pub fn generate_p384() -> Result<Self, KeyError> {
        let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING)
            .map_err(|_| KeyError::Invalid("P-384 key generation failed".into()))?;
        Self::p384(key)
    }

    fn p384(key: EcdsaKeyPair) -> Result<Self, KeyError> {
        let spki = ec_spki(oids::SECP384R1, key.public_key().as_ref())?;
        Ok(Self {
            key: Key::P384(key),
            spki,
        })
    }

    fn rsa(key: RsaKeyPair) -> Result<Self, KeyError> {
        let spki = rsa_spki(&key)?;
        Ok(Self {
            key: Key::Rsa(key),
            spki,
        })
    }

    /// Loads a PEM (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`) or DER (PKCS#8, SEC1,
    /// PKCS#1) private key.
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = match std::str::from_utf8(input) {
            Ok(text) if text.contains("-----BEGIN") => {
                let (label, der) = der::pem::decode_vec(text.trim().as_bytes())
                    .map_err(|e| KeyError::Encoding(e.to_string()))?;
                (Some(label.to_owned()), Zeroizing::new(der))
            }
            _ => (None, Zeroizing::new(input.to_vec())),
        };
        match label.as_deref() {
            Some("PRIVATE KEY") => Self::from_pkcs8(&der),
            Some("EC PRIVATE KEY") => Self::from_sec1(&der),
            Some("RSA PRIVATE KEY") => Self::from_pkcs1(&der),
            Some(other) => Err(KeyError::Encoding(format!("PEM label {other:?}"))),
            None => Self::from_pkcs8(&der)
                .or_else(|_| Self::from_sec1(&der))
                .or_else(|_| Self::from_pkcs1(&der)),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(der)
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        match info.algorithm.oid {
            oids::EC_PUBLIC_KEY => {
                let curve: Option<ObjectIdentifier> =
                    info.algorithm.parameters.and_then(|p| p.decode_as().ok());
                match curve {
                    Some(oids::SECP256R1) => Self::from_sec1(info.private_key.as_bytes()),
                    Some(oids::SECP384R1) => Self::p384(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, der)
                            .map_err(|e| KeyError::Invalid(e.to_string()))?,
                    ),
                    _ => Err(KeyError::Algorithm(format!("EC curve {curve:?}"))),
                }
            }
            oids::RSA_ENCRYPTION => Self::rsa(
                RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid(e.to_string()))?,
            ),
            other => Err(KeyError::Algorithm(other.to_string())),
        }
    }

    fn from_sec1(der: &[u8]) -> Result<Self, KeyError> {
        let secret =
            p256::SecretKey::from_sec1_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let scalar = Zeroizing::new(secret.to_bytes());
        Self::p256_from_scalar(scalar.as_slice())
    }

    fn from_pkcs1(der: &[u8]) -> Result<Self, KeyError> {
        Self::rsa(RsaKeyPair::from_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?)
    }

    /// The key as PKCS#8 PEM (`PRIVATE KEY`), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let der: Zeroizing<Vec<u8>> = match &self.key {
            Key::P256(key) | Key::P384(key) => {
                let doc = key
                    .to_pkcs8v1()
                    .map_err(|_| KeyError::Invalid("EC key export failed".into()))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
            Key::P256Rfc6979(key) => {
                use p256::pkcs8::EncodePrivateKey;
                let doc = p256::SecretKey::from(key)
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            Key::Rsa(key) => {
                let doc = key
                    .as_der()
                    .map_err(|_| KeyError::Invalid("RSA export failed".into()))?;
                Zeroizing::new(doc.as_ref().to_vec())
            }
        };
        let pem = der::pem::encode_string(
            pkcs8::PrivateKeyInfoRef::PEM_LABEL,
            der::pem::LineEnding::LF,
            &der,
        )
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Zeroizing::new(pem))
    }
}

impl Signer for SoftwareKey {
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key {
            Key::P256(_) | Key::P256Rfc6979(_) => SignatureAlgorithm::ECDSA_SHA256,
            Key::P384(_) => SignatureAlgorithm {
                family: super::crypto::KeyFamily::Ecdsa,
                digest: super::crypto::DigestAlgorithm::Sha384,
            },
            Key::Rsa(_) => SignatureAlgorithm::RSA_PKCS1_SHA256,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            Key::P256(key) | Key::P384(key) => key
                .sign(&SystemRandom::new(), message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| SignError::Software),
            Key::P256Rfc6979(key) => {
                let sig: DerSignature =
                    signature::Signer::try_sign(key, message).map_err(|_| SignError::Software)?;
                Ok(sig.to_bytes().to_vec())
            }
            Key::Rsa(key) => {
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| SignError::Software)?;
                Ok(sig)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmc::crypto::verify;

    fn scalar() -> [u8; 32] {
        let mut s = [0u8; 32];
        s[31] = 9;
        s
    }

    #[test]
    fn ca_key_types_sign_verifiably_and_survive_pkcs8() {
        for key in [
            SoftwareKey::generate_p384().unwrap(),
            SoftwareKey::generate_rsa(3072).unwrap(),
        ] {
            let sig = key.sign(b"message").unwrap();
            verify(key.public_key(), key.algorithm(), b"message", &sig).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let back = SoftwareKey::from_pem_or_der(pem.as_bytes()).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert_eq!(back.algorithm(), key.algorithm());
        }
        assert!(SoftwareKey::generate_rsa(1024).is_err());
    }

    #[test]
    fn fast_and_rfc6979_keys_from_one_scalar_are_the_same_key() {
        let fast = SoftwareKey::p256_from_scalar(&scalar()).unwrap();
        let det = SoftwareKey::p256_rfc6979_from_scalar(&scalar()).unwrap();
        assert_eq!(fast.public_key(), det.public_key());
        for key in [&fast, &det] {
            let sig = key.sign(b"message").unwrap();
            verify(key.public_key(), key.algorithm(), b"message", &sig).unwrap();
        }
    }

    #[test]
    fn only_the_rfc6979_key_repeats_its_signature() {
        let fast = SoftwareKey::p256_from_scalar(&scalar()).unwrap();
        let det = SoftwareKey::p256_rfc6979_from_scalar(&scalar()).unwrap();
        assert!(!fast.is_deterministic() && det.is_deterministic());
        assert_ne!(fast.sign(b"m").unwrap(), fast.sign(b"m").unwrap());
        assert_eq!(det.sign(b"m").unwrap(), det.sign(b"m").unwrap());
    }

    #[test]
    fn a_generated_key_survives_pkcs8_export_and_import() {
        for key in [
            SoftwareKey::generate_p256().unwrap(),
            SoftwareKey::p256_rfc6979_from_scalar(&scalar()).unwrap(),
        ] {
            let pem = key.to_pkcs8_pem().unwrap();
            let back = SoftwareKey::from_pem_or_der(pem.as_bytes()).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let sig = back.sign(b"x").unwrap();
            verify(key.public_key(), key.algorithm(), b"x", &sig).unwrap();
        }
    }
}
