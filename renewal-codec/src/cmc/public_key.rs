//! Public keys as parsed values, never as encodings.
//!
//! Every key that reaches a decision — the PKCS#10's new key, the old certificate's key, the
//! TLS client certificate's key, a key a card reports — goes through [`PublicKey::from_spki`]
//! first. Comparing SPKI bytes is not enough: the same P-256 point has a compressed and an
//! uncompressed form, an RSA key can carry trailing bytes inside its BIT STRING that make it
//! look longer than its modulus, and a BIT STRING can even wrap a whole second SPKI that a
//! lenient parser accepts as the key. Here:
//!
//! * an EC key names its curve (no explicit parameters); the point is decoded and checked to be
//!   on the curve; P-256 accepts the compressed form and *normalises* it to the uncompressed
//!   one; P-384 accepts the uncompressed form only;
//! * an RSA key is an exact `RSAPublicKey` (no trailing bytes, minimal positive integers), its
//!   size is counted in bits from the modulus, the modulus is odd and 1024–8192 bits, the
//!   exponent odd, at least 3 and at most 33 bits;
//! * the BIT STRING has no unused bits, and nothing follows any structure.
//!
//! Two keys are equal when their parsed values are; [`PublicKey::to_spki`] is the one
//! canonical re-encoding a CA puts in a certificate.

use der::{
    Decode, Encode, Sequence,
    asn1::{Any, BitString, Null, ObjectIdentifier, UintRef},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::{
    crypto::{DigestAlgorithm, KeyFamily, SignatureAlgorithm, VerifyError},
    oids,
};

/// A named curve we can check points on.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl Curve {
    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => oids::SECP256R1,
            Self::P384 => oids::SECP384R1,
        }
    }

    /// Bytes of one coordinate.
    fn field_bytes(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// Size in bits, as a key size is quoted.
    pub fn bits(self) -> usize {
        self.field_bytes() * 8
    }
}

/// Why a public key is refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PublicKeyError {
    /// A key algorithm we do not handle (DSA, Ed25519, ...).
    #[error("unsupported public key algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// An EC key on a curve we do not handle (P-521, secp256k1, brainpool, explicit
    /// parameters).
    #[error("unsupported elliptic curve {0}")]
    UnsupportedCurve(String),
    /// An RSA modulus outside 1024–8192 bits.
    #[error("unsupported RSA key size: {0} bits (1024 to 8192 are accepted)")]
    UnsupportedRsaSize(usize),
    /// The encoding is wrong: trailing bytes, a point off the curve, a bad exponent, ...
    #[error("malformed public key: {0}")]
    Malformed(&'static str),
}

impl PublicKeyError {
    /// True when the key is well-formed but of a kind we do not accept (as opposed to
    /// malformed). A CA answers the first with "bad algorithm", the second with "bad key".
    pub fn is_unsupported(&self) -> bool {
        !matches!(self, Self::Malformed(_))
    }
}

/// `RSAPublicKey` (RFC 8017 A.1.1), borrowed.
#[derive(Sequence)]
struct RsaPublicKeyRef<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// A public key, parsed and checked.
#[derive(Clone, Debug, Eq, PartialEq, Hash)]
pub enum PublicKey {
    /// An EC point on a named curve; `point` is the uncompressed SEC1 form (`04 || X || Y`).
    Ec {
        /// The curve.
        curve: Curve,
        /// Uncompressed point.
        point: Box<[u8]>,
    },
    /// An RSA key; `der` is the canonical `RSAPublicKey` encoding.
    Rsa {
        /// Size of the modulus in bits, counted from its most significant set bit.
        bits: usize,
        /// Canonical `RSAPublicKey` DER.
        der: Box<[u8]>,
    },
}

impl PublicKey {
    /// Parses an SPKI from DER, refusing trailing bytes.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, PublicKeyError> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|_| PublicKeyError::Malformed("not a DER SubjectPublicKeyInfo"))?;
        Self::from_spki(&spki)
    }

    /// Parses and checks an SPKI.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, PublicKeyError> {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(PublicKeyError::Malformed(
                "the key's BIT STRING has unused bits",
            ))?;
        match spki.algorithm.oid {
            oids::EC_PUBLIC_KEY => {
                let params =
                    spki.algorithm
                        .parameters
                        .as_ref()
                        .ok_or(PublicKeyError::Malformed(
                            "an EC key without curve parameters",
                        ))?;
                let curve_oid = params.decode_as::<ObjectIdentifier>().map_err(|_| {
                    PublicKeyError::UnsupportedCurve("given as explicit parameters".into())
                })?;
                let curve = match curve_oid {
                    oids::SECP256R1 => Curve::P256,
                    oids::SECP384R1 => Curve::P384,
                    other => return Err(PublicKeyError::UnsupportedCurve(oid_text(&other))),
                };
                Self::ec(curve, bits)
            }
            oids::RSA_ENCRYPTION => {
                match &spki.algorithm.parameters {
                    None => {}
                    Some(p) if p.decode_as::<Null>().is_ok() => {}
                    Some(_) => {
                        return Err(PublicKeyError::Malformed(
                            "rsaEncryption parameters not NULL",
                        ));
                    }
                }
                Self::rsa(bits)
            }
            other => Err(PublicKeyError::UnsupportedAlgorithm(oid_text(&other))),
        }
    }

    /// An EC key from a SEC1 point on `curve` (compressed P-256 points are normalised).
    pub fn ec(curve: Curve, sec1: &[u8]) -> Result<Self, PublicKeyError> {
        let n = curve.field_bytes();
        let point: Box<[u8]> = match (curve, sec1.first(), sec1.len()) {
            (Curve::P256, Some(0x04), len) if len == 1 + 2 * n => {
                p256::PublicKey::from_sec1_bytes(sec1)
                    .map_err(|_| PublicKeyError::Malformed("the EC point is not on P-256"))?;
                sec1.into()
            }
            (Curve::P256, Some(0x02 | 0x03), len) if len == 1 + n => {
                let key = p256::PublicKey::from_sec1_bytes(sec1).map_err(|_| {
                    PublicKeyError::Malformed("the compressed EC point is not on P-256")
                })?;
                use p256::elliptic_curve::sec1::ToSec1Point;
                key.to_sec1_point(false).as_bytes().into()
            }
            (Curve::P384, Some(0x04), len) if len == 1 + 2 * n => {
                aws_lc_rs::signature::ParsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1,
                    sec1,
                )
                .map_err(|_| PublicKeyError::Malformed("the EC point is not on P-384"))?;
                sec1.into()
            }
            (Curve::P384, Some(0x02 | 0x03), len) if len == 1 + n => {
                return Err(PublicKeyError::Malformed(
                    "compressed P-384 points are not accepted (send the uncompressed form)",
                ));
            }
            _ => {
                return Err(PublicKeyError::Malformed(
                    "the EC point has the wrong form or length",
                ));
            }
        };
        Ok(Self::Ec { curve, point })
    }

    /// An RSA key from `RSAPublicKey` DER (exactly one structure, nothing after it).
    pub fn rsa(der: &[u8]) -> Result<Self, PublicKeyError> {
        let key = RsaPublicKeyRef::from_der(der).map_err(|e| match e.kind() {
            der::ErrorKind::TrailingData { .. } => {
                PublicKeyError::Malformed("trailing bytes after the RSA public key")
            }
            _ => PublicKeyError::Malformed("not a DER RSAPublicKey with positive minimal integers"),
        })?;
        Self::rsa_from_parts(key.modulus.as_bytes(), key.public_exponent.as_bytes())
    }

    /// An RSA key from its modulus and exponent (big-endian, leading zeros allowed: a card
    /// reports them as it likes). Re-encoded canonically.
    pub fn rsa_from_parts(modulus: &[u8], exponent: &[u8]) -> Result<Self, PublicKeyError> {
        let strip = |b: &[u8]| -> Vec<u8> {
            let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            b[start..].to_vec()
        };
        let (n, e) = (strip(modulus), strip(exponent));
        let bits = bit_length(&n);
        if !(1024..=8192).contains(&bits) {
            return Err(PublicKeyError::UnsupportedRsaSize(bits));
        }
        if n.last().is_none_or(|b| b & 1 == 0) {
            return Err(PublicKeyError::Malformed("the RSA modulus is even"));
        }
        let e_bits = bit_length(&e);
        if e.last().is_none_or(|b| b & 1 == 0) || !(2..=33).contains(&e_bits) {
            return Err(PublicKeyError::Malformed(
                "the RSA public exponent must be odd, at least 3 and at most 33 bits",
            ));
        }
        let der = RsaPublicKeyRef {
            modulus: UintRef::new(&n).map_err(|_| PublicKeyError::Malformed("RSA modulus"))?,
            public_exponent: UintRef::new(&e)
                .map_err(|_| PublicKeyError::Malformed("RSA exponent"))?,
        }
        .to_der()
        .map_err(|_| PublicKeyError::Malformed("RSA key cannot be re-encoded"))?;
        Ok(Self::Rsa {
            bits,
            der: der.into(),
        })
    }

    /// Key size in bits (modulus bits for RSA, curve size for EC).
    pub fn bits(&self) -> usize {
        match self {
            Self::Ec { curve, .. } => curve.bits(),
            Self::Rsa { bits, .. } => *bits,
        }
    }

    /// The signature family this key signs with.
    pub fn family(&self) -> KeyFamily {
        match self {
            Self::Ec { .. } => KeyFamily::Ecdsa,
            Self::Rsa { .. } => KeyFamily::Rsa,
        }
    }

    /// The canonical `subjectPublicKey` BIT STRING contents.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::Ec { point, .. } => point,
            Self::Rsa { der, .. } => der,
        }
    }

    /// The canonical SPKI: named curve and uncompressed point, or `rsaEncryption` + NULL and
    /// a minimal `RSAPublicKey`.
    pub fn to_spki(&self) -> SubjectPublicKeyInfoOwned {
        let parameters = match self {
            Self::Ec { curve, .. } => Any::encode_from(&curve.oid()),
            Self::Rsa { .. } => Any::encode_from(&Null),
        }
        .ok();
        let oid = match self {
            Self::Ec { .. } => oids::EC_PUBLIC_KEY,
            Self::Rsa { .. } => oids::RSA_ENCRYPTION,
        };
        SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned { oid, parameters },
            subject_public_key: BitString::new(0, self.raw().to_vec())
                .expect("a BIT STRING with no unused bits holds any byte string"),
        }
    }

    /// SHA-256 of the canonical SPKI DER: the key's identity for bookkeeping (the same key in
    /// any accepted encoding has the same fingerprint).
    pub fn fingerprint(&self) -> Vec<u8> {
        let der = self.to_spki().to_der().unwrap_or_default();
        DigestAlgorithm::Sha256.digest(&der)
    }

    /// Short description: "P-256", "RSA-2048".
    pub fn describe(&self) -> String {
        match self {
            Self::Ec {
                curve: Curve::P256, ..
            } => "P-256".into(),
            Self::Ec {
                curve: Curve::P384, ..
            } => "P-384".into(),
            Self::Rsa { bits, .. } => format!("RSA-{bits}"),
        }
    }

    /// Verifies `signature` over `message` with this key.
    pub fn verify(
        &self,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        use DigestAlgorithm::*;
        use aws_lc_rs::signature as lc;
        let params: &dyn lc::VerificationAlgorithm = match (self, algorithm.family) {
            (Self::Rsa { .. }, KeyFamily::Rsa) => match algorithm.digest {
                Sha1 => &lc::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
                Sha256 => &lc::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
                Sha512 => &lc::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            },
            (Self::Ec { curve, .. }, KeyFamily::Ecdsa) => match (curve, algorithm.digest) {
                (Curve::P256, Sha1) => &lc::ECDSA_P256_SHA1_ASN1,
                (Curve::P256, Sha256) => &lc::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, Sha384) => &lc::ECDSA_P256_SHA384_ASN1,
                (Curve::P256, Sha512) => &lc::ECDSA_P256_SHA512_ASN1,
                (Curve::P384, Sha256) => &lc::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, Sha384) => &lc::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, Sha512) => &lc::ECDSA_P384_SHA512_ASN1,
                (Curve::P384, Sha1) => return Err(self.unsupported(algorithm)),
            },
            _ => return Err(self.unsupported(algorithm)),
        };
        lc::UnparsedPublicKey::new(params, self.raw())
            .verify(message, signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    fn unsupported(&self, algorithm: SignatureAlgorithm) -> VerifyError {
        VerifyError::Unsupported {
            key_oid: self.describe(),
            algorithm,
        }
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.iter().position(|&b| b != 0) {
        Some(i) => (big_endian.len() - i - 1) * 8 + (8 - big_endian[i].leading_zeros() as usize),
        None => 0,
    }
}

fn oid_text(oid: &ObjectIdentifier) -> String {
    // Curves people actually try, named even where the OID database has no name.
    const CURVES: [(&str, &str); 4] = [
        ("1.3.132.0.10", "secp256k1"),
        ("1.3.132.0.35", "secp521r1"),
        ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
        ("1.3.101.112", "Ed25519"),
    ];
    let dotted = oid.to_string();
    if let Some((_, name)) = CURVES.iter().find(|(o, _)| *o == dotted) {
        return format!("{oid} ({name})");
    }
    match const_oid::db::DB.by_oid(oid) {
        Some(name) => format!("{oid} ({name})"),
        None => oid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_counts_from_the_top_set_bit() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x7F, 0xFF]), 15);
    }

    #[test]
    fn exponent_rules() {
        let n = {
            let mut n = vec![0xC5u8; 256];
            n[255] |= 1;
            n
        };
        assert!(PublicKey::rsa_from_parts(&n, &[1, 0, 1]).is_ok());
        assert!(PublicKey::rsa_from_parts(&n, &[3]).is_ok());
        for bad in [&[1][..], &[2], &[1, 0, 0], &[0x03, 0, 0, 0, 0, 1], &[]] {
            assert!(
                matches!(
                    PublicKey::rsa_from_parts(&n, bad),
                    Err(PublicKeyError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        let mut even = n.clone();
        even[255] &= 0xFE;
        assert!(PublicKey::rsa_from_parts(&even, &[3]).is_err());
        assert_eq!(
            PublicKey::rsa_from_parts(&n[..64], &[3]),
            Err(PublicKeyError::UnsupportedRsaSize(512))
        );
    }
}
