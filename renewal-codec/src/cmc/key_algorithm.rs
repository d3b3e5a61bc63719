//! The key algorithms a renewal generates on a token, by the names configuration files use.

use super::{DigestAlgorithm, KeyFamily, SignatureAlgorithm};

/// Key algorithms a token can generate: those found on real cards (PIV algorithm
/// identifiers 0x11, 0x14, 0x07, 0x05, 0x16 of NIST SP 800-78-5).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA P-256.
    EcP256,
    /// ECDSA P-384.
    EcP384,
    /// RSA-2048.
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
    /// RSA-4096.
    Rsa4096,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order above.
    pub const ALL: [Self; 5] = [
        Self::EcP256,
        Self::EcP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// The list, for messages.
    pub const SUPPORTED: &'static str = "P-256, P-384, RSA-2048, RSA-3072 or RSA-4096";

    /// The algorithm of a parsed key, when it is one a token generates (RSA: exactly 2048,
    /// 3072 or 4096 bits, counted from the modulus).
    pub fn of(key: &crate::cmc::PublicKey) -> Option<Self> {
        use crate::cmc::public_key::{Curve, PublicKey};
        match key {
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => Some(Self::EcP256),
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => Some(Self::EcP384),
            PublicKey::Rsa { bits: 2048, .. } => Some(Self::Rsa2048),
            PublicKey::Rsa { bits: 3072, .. } => Some(Self::Rsa3072),
            PublicKey::Rsa { bits: 4096, .. } => Some(Self::Rsa4096),
            _ => None,
        }
    }

    /// The signature algorithm renewal uses with this key: SHA-384 with P-384 (the curve's
    /// security level, RFC 5480 §4), SHA-256 with RSA of every size (what ADCS templates
    /// default to).
    pub fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            Self::EcP256 => SignatureAlgorithm::ECDSA_SHA256,
            Self::EcP384 => SignatureAlgorithm {
                family: KeyFamily::Ecdsa,
                digest: DigestAlgorithm::Sha384,
            },
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => SignatureAlgorithm::RSA_PKCS1_SHA256,
        }
    }

    /// The name in configuration files and on command lines (`p256`, `rsa3072`, ...).
    pub fn config_name(self) -> &'static str {
        match self {
            Self::EcP256 => "p256",
            Self::EcP384 => "p384",
            Self::Rsa2048 => "rsa2048",
            Self::Rsa3072 => "rsa3072",
            Self::Rsa4096 => "rsa4096",
        }
    }

    /// RSA modulus size in bits; `None` for EC.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            Self::EcP256 | Self::EcP384 => None,
        }
    }
}

/// The names configuration files and command lines use: `p256`, `p384`, `rsa2048`,
/// `rsa3072`, `rsa4096`.
impl std::str::FromStr for KeyAlgorithm {
    type Err = super::InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.config_name() == s)
            .ok_or_else(|| {
                super::InvalidValue::new("key type", s, "p256, p384, rsa2048, rsa3072 or rsa4096")
            })
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcP256 => "P-256",
            Self::EcP384 => "P-384",
            Self::Rsa2048 => "RSA-2048",
            Self::Rsa3072 => "RSA-3072",
            Self::Rsa4096 => "RSA-4096",
        })
    }
}
