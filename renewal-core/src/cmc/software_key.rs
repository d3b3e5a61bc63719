//! Software keys: for interop testing (`renew build-request`), for the simulators' CA key, and
//! for tests. ECDSA P-256 signing is deterministic (RFC 6979, `p256`); RSA PKCS#1 v1.5 is
//! deterministic by construction (`aws-lc-rs`). Key material is zeroized on drop by both crates.

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{KeyPair as _, RSA_PKCS1_SHA256},
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
    #[error("unsupported key algorithm {0} (supported: EC P-256, RSA)")]
    Algorithm(String),
    /// The key bytes are invalid.
    #[error("invalid key: {0}")]
    Invalid(String),
}

/// A private key held in memory.
pub enum SoftwareKey {
    /// ECDSA P-256.
    P256 {
        /// The key.
        key: SigningKey,
        /// Its SPKI.
        spki: SubjectPublicKeyInfoOwned,
    },
    /// RSA (PKCS#1 v1.5 / SHA-256 signatures).
    Rsa {
        /// The key.
        key: RsaKeyPair,
        /// Its SPKI.
        spki: SubjectPublicKeyInfoOwned,
    },
}

impl std::fmt::Debug for SoftwareKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::P256 { .. } => f.write_str("SoftwareKey::P256(..)"),
            Self::Rsa { .. } => f.write_str("SoftwareKey::Rsa(..)"),
        }
    }
}

fn p256_spki(key: &SigningKey) -> Result<SubjectPublicKeyInfoOwned, KeyError> {
    let point = key.verifying_key().to_sec1_point(false);
    let invalid = |e: der::Error| KeyError::Invalid(e.to_string());
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: oids::EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&oids::SECP256R1).map_err(invalid)?),
        },
        subject_public_key: BitString::from_bytes(point.as_bytes()).map_err(invalid)?,
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
    /// A P-256 key from a 32-byte scalar (tests and benchmarks use fixed scalars).
    pub fn p256_from_scalar(scalar: &[u8]) -> Result<Self, KeyError> {
        let key = SigningKey::from_slice(scalar).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let spki = p256_spki(&key)?;
        Ok(Self::P256 { key, spki })
    }

    /// A fresh random P-256 key.
    pub fn generate_p256() -> Result<Self, KeyError> {
        use aws_lc_rs::rand::SecureRandom;
        let rng = SystemRandom::new();
        loop {
            let mut scalar = Zeroizing::new([0u8; 32]);
            rng.fill(scalar.as_mut())
                .map_err(|_| KeyError::Invalid("system RNG failed".into()))?;
            // Out-of-range scalars (probability ~2^-32) are retried.
            if let Ok(key) = Self::p256_from_scalar(scalar.as_ref()) {
                return Ok(key);
            }
        }
    }

    /// A fresh RSA-2048 key.
    pub fn generate_rsa2048() -> Result<Self, KeyError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
        let spki = rsa_spki(&key)?;
        Ok(Self::Rsa { key, spki })
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
                if curve != Some(oids::SECP256R1) {
                    return Err(KeyError::Algorithm(format!("EC curve {curve:?}")));
                }
                Self::from_sec1(info.private_key.as_bytes())
            }
            oids::RSA_ENCRYPTION => {
                let key =
                    RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
                let spki = rsa_spki(&key)?;
                Ok(Self::Rsa { key, spki })
            }
            other => Err(KeyError::Algorithm(other.to_string())),
        }
    }

    fn from_sec1(der: &[u8]) -> Result<Self, KeyError> {
        let secret =
            p256::SecretKey::from_sec1_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let key = SigningKey::from(&secret);
        let spki = p256_spki(&key)?;
        Ok(Self::P256 { key, spki })
    }

    fn from_pkcs1(der: &[u8]) -> Result<Self, KeyError> {
        let key = RsaKeyPair::from_der(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let spki = rsa_spki(&key)?;
        Ok(Self::Rsa { key, spki })
    }

    /// The key as PKCS#8 PEM (`PRIVATE KEY`), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let der: Zeroizing<Vec<u8>> = match self {
            Self::P256 { key, .. } => {
                use p256::pkcs8::EncodePrivateKey;
                let doc = p256::SecretKey::from(key)
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::Invalid(e.to_string()))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
            Self::Rsa { key, .. } => {
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
        match self {
            Self::P256 { spki, .. } | Self::Rsa { spki, .. } => spki,
        }
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::P256 { .. } => SignatureAlgorithm::ECDSA_SHA256,
            Self::Rsa { .. } => SignatureAlgorithm::RSA_PKCS1_SHA256,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Self::P256 { key, .. } => {
                let sig: DerSignature =
                    signature::Signer::try_sign(key, message).map_err(|_| SignError::Software)?;
                Ok(sig.to_bytes().to_vec())
            }
            Self::Rsa { key, .. } => {
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| SignError::Software)?;
                Ok(sig)
            }
        }
    }
}
