//! The one seam between encoding and cryptography: digest and signature algorithms, the
//! [`Signer`] trait every key implements (software, card, PKCS#11), and signature verification.
//!
//! Verification uses `aws-lc-rs` (already in the tree through rustls, and several times faster
//! than pure-Rust P-256). Software ECDSA *signing* uses `p256`, because it is deterministic
//! (RFC 6979): the same keys, nonce and transaction id give the same request, byte for byte.

use aws_lc_rs::digest;
use der::{
    Encode,
    asn1::{Any, ObjectIdentifier},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::{
    oids,
    public_key::{PublicKey, PublicKeyError},
};

/// A hash function CMS and PKCS#10 use.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1: still what certenroll used up to Windows 10 1909.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The hash OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::Sha1 => oids::SHA1,
            Self::Sha256 => oids::SHA256,
            Self::Sha384 => oids::SHA384,
            Self::Sha512 => oids::SHA512,
        }
    }

    /// The algorithm for a hash OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha384, Self::Sha512]
            .into_iter()
            .find(|d| d.oid() == *oid)
    }

    /// `AlgorithmIdentifier` with absent parameters (RFC 5754 §2: SHOULD be omitted; receivers
    /// accept NULL too, which Microsoft sends).
    pub fn identifier(self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: None,
        }
    }

    /// Hashes `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// Whether finding two messages with the same hash is still out of reach: not for SHA-1
    /// (chosen-prefix collisions are practical, RFC 9155 §1), which a CA signing a certificate
    /// with it lets a requester forge another under the CA's signature.
    pub fn collision_resistant(self) -> bool {
        self != Self::Sha1
    }

    /// Short name for display.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA-1",
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// The family of a key.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum KeyFamily {
    /// ECDSA (P-256, P-384).
    Ecdsa,
    /// RSA with PKCS#1 v1.5 signatures.
    Rsa,
}

/// A signature algorithm: key family + hash.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub struct SignatureAlgorithm {
    /// Key family.
    pub family: KeyFamily,
    /// Hash the signature is computed over.
    pub digest: DigestAlgorithm,
}

impl SignatureAlgorithm {
    /// ECDSA with SHA-256 (the P-256 default).
    pub const ECDSA_SHA256: Self = Self {
        family: KeyFamily::Ecdsa,
        digest: DigestAlgorithm::Sha256,
    };
    /// RSA PKCS#1 v1.5 with SHA-256.
    pub const RSA_PKCS1_SHA256: Self = Self {
        family: KeyFamily::Rsa,
        digest: DigestAlgorithm::Sha256,
    };

    /// `AlgorithmIdentifier` for an X.509 / PKCS#10 signature (`ecdsa-with-SHA256`,
    /// `sha256WithRSAEncryption` + NULL).
    pub fn x509_identifier(self) -> der::Result<AlgorithmIdentifierOwned> {
        use DigestAlgorithm::*;
        Ok(match self.family {
            KeyFamily::Ecdsa => AlgorithmIdentifierOwned {
                oid: match self.digest {
                    Sha1 => oids::ECDSA_WITH_SHA1,
                    Sha256 => oids::ECDSA_WITH_SHA256,
                    Sha384 => oids::ECDSA_WITH_SHA384,
                    Sha512 => oids::ECDSA_WITH_SHA512,
                },
                parameters: None,
            },
            KeyFamily::Rsa => AlgorithmIdentifierOwned {
                oid: match self.digest {
                    Sha1 => oids::SHA1_WITH_RSA,
                    Sha256 => oids::SHA256_WITH_RSA,
                    Sha384 => oids::SHA384_WITH_RSA,
                    Sha512 => oids::SHA512_WITH_RSA,
                },
                parameters: Some(Any::encode_from(&der::asn1::Null)?),
            },
        })
    }

    /// `AlgorithmIdentifier` for `SignerInfo.signatureAlgorithm`. For RSA this is
    /// `rsaEncryption` + NULL, what certenroll and OpenSSL write (the hash is in
    /// `digestAlgorithm`).
    pub fn cms_identifier(self) -> der::Result<AlgorithmIdentifierOwned> {
        match self.family {
            KeyFamily::Ecdsa => self.x509_identifier(),
            KeyFamily::Rsa => Ok(AlgorithmIdentifierOwned {
                oid: oids::RSA_ENCRYPTION,
                parameters: Some(Any::encode_from(&der::asn1::Null)?),
            }),
        }
    }

    /// Reads a signature `AlgorithmIdentifier`. `rsaEncryption` names no hash: the CMS
    /// `digestAlgorithm` (passed as `digest_hint`) supplies it.
    pub fn from_identifier(
        alg: &AlgorithmIdentifierOwned,
        digest_hint: Option<DigestAlgorithm>,
    ) -> Option<Self> {
        use DigestAlgorithm::*;
        let (family, digest) = match alg.oid {
            oids::ECDSA_WITH_SHA1 => (KeyFamily::Ecdsa, Sha1),
            oids::ECDSA_WITH_SHA256 => (KeyFamily::Ecdsa, Sha256),
            oids::ECDSA_WITH_SHA384 => (KeyFamily::Ecdsa, Sha384),
            oids::ECDSA_WITH_SHA512 => (KeyFamily::Ecdsa, Sha512),
            oids::SHA1_WITH_RSA => (KeyFamily::Rsa, Sha1),
            oids::SHA256_WITH_RSA => (KeyFamily::Rsa, Sha256),
            oids::SHA384_WITH_RSA => (KeyFamily::Rsa, Sha384),
            oids::SHA512_WITH_RSA => (KeyFamily::Rsa, Sha512),
            oids::RSA_ENCRYPTION => (KeyFamily::Rsa, digest_hint?),
            // CMS signers sometimes put the key OID here too.
            oids::EC_PUBLIC_KEY => (KeyFamily::Ecdsa, digest_hint?),
            _ => return None,
        };
        Some(Self { family, digest })
    }
}

impl std::fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = match self.family {
            KeyFamily::Ecdsa => "ECDSA",
            KeyFamily::Rsa => "RSA PKCS#1 v1.5",
        };
        write!(f, "{family} / {}", self.digest.name())
    }
}

/// Why a signer could not sign.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The software key refused (should not happen with a valid key).
    #[error("software key failed to sign")]
    Software,
    /// A hardware or remote backend failed; `detail` says how (no secrets in it).
    #[error("{backend} failed to sign: {detail}")]
    Backend {
        /// Which backend (e.g. "PIV card", "PKCS#11").
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// A private key that can sign: software, a smart card, a PKCS#11 object.
///
/// `sign` receives the *message* (not a hash): a backend that signs hashes (a card) hashes with
/// `algorithm().digest` itself. ECDSA signatures are returned DER-encoded
/// (`Ecdsa-Sig-Value`), as X.509 and CMS carry them.
pub trait Signer {
    /// The public key, as it goes into a PKCS#10 or certificate.
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;
    /// The algorithm `sign` uses.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

impl<T: Signer + ?Sized> Signer for &T {
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        (**self).public_key()
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        (**self).algorithm()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        (**self).sign(message)
    }
}

/// Why a signature did not verify.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// The key/algorithm combination is not one we verify.
    #[error("unsupported key or signature algorithm: key {key_oid}, {algorithm}")]
    Unsupported {
        /// Key algorithm OID (with curve for EC keys).
        key_oid: String,
        /// Signature algorithm.
        algorithm: SignatureAlgorithm,
    },
    /// The signature is wrong.
    #[error("signature does not verify")]
    BadSignature,
    /// The key itself is malformed or of a kind we do not handle.
    #[error(transparent)]
    BadKey(#[from] PublicKeyError),
}

/// Verifies `signature` over `message` with the key in `spki`. The key is parsed and checked
/// first ([`PublicKey::from_spki`]): a malformed key never reaches the verifier, whose own parser
/// is more lenient (it would take a whole SPKI wrapped in the BIT STRING as the key).
pub fn verify(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    PublicKey::from_spki(spki)
        .map_err(VerifyError::BadKey)?
        .verify(algorithm, message, signature)
}

/// The Microsoft key identifier of a public key: SHA-1 of the `subjectPublicKey` BIT STRING
/// contents (RFC 5280 §4.2.1.2 method 1), used as the SKI signer id of the new key. It hashes
/// the bytes as sent (that is what a signer identifier refers to); for a key's *identity* use
/// [`PublicKey::fingerprint`].
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    DigestAlgorithm::Sha1.digest(spki.subject_public_key.raw_bytes())
}

/// DER of an SPKI (for comparisons and display).
pub fn spki_der(spki: &SubjectPublicKeyInfoOwned) -> der::Result<Vec<u8>> {
    spki.to_der()
}

/// An ECDSA signature as PKCS#11 `CKM_ECDSA` returns it (r ‖ s, each the curve's size) in the
/// DER form CMS and X.509 carry (`ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`,
/// RFC 5480 §2.2 / RFC 3279 §2.2.3). `None` for an odd length or a zero half, which no valid
/// signature has.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    use der::{Encode, asn1::UintRef};
    if raw.is_empty() || !raw.len().is_multiple_of(2) || raw.len() > 2 * 66 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    if r.iter().all(|b| *b == 0) || s.iter().all(|b| *b == 0) {
        return None;
    }
    let r = UintRef::new(r).ok()?;
    let s = UintRef::new(s).ok()?;
    let body = [r.to_der().ok()?, s.to_der().ok()?].concat();
    let mut out = der::Header::new(der::Tag::Sequence, der::Length::try_from(body.len()).ok()?)
        .to_der()
        .ok()?;
    out.extend(body);
    Some(out)
}

/// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) of `message` with SHA-256, MGF1 over SHA-256 and a
/// 32-byte salt — TLS 1.3's `rsa_pss_rsae_sha256` (RFC 8446 §4.2.3) — as the block a card's
/// raw RSA operation signs: the encoded message, left-padded with zeros to the modulus's
/// length. `modulus_bits` is the key's size (2048 for RSA-2048).
pub fn emsa_pss_sha256(message: &[u8], modulus_bits: usize, salt: &[u8; 32]) -> Option<Vec<u8>> {
    const H_LEN: usize = 32;
    let em_bits = modulus_bits.checked_sub(1)?;
    let em_len = em_bits.div_ceil(8);
    if em_len < H_LEN + salt.len() + 2 {
        return None;
    }
    let m_hash = DigestAlgorithm::Sha256.digest(message);
    let m_prime = [&[0u8; 8][..], &m_hash, salt].concat();
    let h = DigestAlgorithm::Sha256.digest(&m_prime);
    // DB = PS (zeros) || 0x01 || salt, masked with MGF1(H).
    let db_len = em_len - H_LEN - 1;
    let mut db = vec![0u8; db_len - salt.len() - 1];
    db.push(0x01);
    db.extend_from_slice(salt);
    let mut mask = Vec::with_capacity(db_len + H_LEN);
    let mut counter = 0u32;
    while mask.len() < db_len {
        mask.extend(DigestAlgorithm::Sha256.digest(&[&h[..], &counter.to_be_bytes()].concat()));
        counter += 1;
    }
    for (d, m) in db.iter_mut().zip(&mask) {
        *d ^= m;
    }
    // The leftmost 8·emLen − emBits bits are zero, so the block is below the modulus.
    db[0] &= 0xFF >> (8 * em_len - em_bits);
    let mut block = vec![0u8; modulus_bits.div_ceil(8) - em_len];
    block.extend(db);
    block.extend(h);
    block.push(0xBC);
    Some(block)
}

#[cfg(test)]
mod ecdsa_der_tests {
    use super::ecdsa_raw_to_der;

    #[test]
    fn raw_signatures_become_der_with_minimal_integers() {
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1 (leading zeros dropped)
        raw[32] = 0x80; // s has its top bit set: a 0x00 sign byte is added
        let der = ecdsa_raw_to_der(&raw).expect("a valid raw signature");
        assert_eq!(&der[..5], &[0x30, 0x26, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 0x21, 0x00]);
        assert_eq!(der.len(), 2 + 3 + 35);
        // The same through p256's own encoder.
        let sig = p256::ecdsa::Signature::from_slice(&raw).expect("r and s in range");
        assert_eq!(der, sig.to_der().as_bytes());
    }

    #[test]
    fn malformed_raw_signatures_are_refused() {
        assert_eq!(ecdsa_raw_to_der(&[]), None);
        assert_eq!(ecdsa_raw_to_der(&[1, 2, 3]), None);
        assert_eq!(ecdsa_raw_to_der(&[0u8; 96]), None);
        assert!(ecdsa_raw_to_der(&[0x11; 96]).is_some());
    }
}
