//! A self-contained renewal setup — a CA, a certificate with a Microsoft template extension,
//! its key, and a fresh key to renew onto — for the README's demo, tests and benchmarks.
//!
//! [`Sample::deterministic`] uses fixed P-256 scalars and a fixed clock, so what is built from
//! it is byte-for-byte reproducible (snapshots depend on that). Never use these keys for
//! anything real: the scalars are in this file.

use std::{
    str::FromStr,
    time::{Duration, SystemTime},
};

use der::asn1::{Ia5String, ObjectIdentifier};
use x509_cert::{
    Certificate,
    ext::pkix::{KeyUsages, name::GeneralName},
    name::Name,
};

use crate::{
    cmc::{CmcError, Result, Retained, Signer, SoftwareKey, oids, software_key::KeyError},
    x509::{self, CertificateSpec},
};

/// The template OID the sample certificate carries (a made-up enterprise OID under the
/// Microsoft template arc, as ADCS would assign).
pub const SAMPLE_TEMPLATE_OID: &str = "1.3.6.1.4.1.311.21.8.1234567.7654321.1.2.3.4.100";

/// Key type for generated keys.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum KeyKind {
    /// ECDSA P-256.
    P256,
    /// RSA-2048.
    Rsa2048,
}

/// A CA, an issued certificate and the keys around it.
pub struct Sample {
    /// CA key.
    pub ca_key: SoftwareKey,
    /// Self-signed CA certificate.
    pub ca_cert: Retained<Certificate>,
    /// The key of the certificate to renew.
    pub old_key: SoftwareKey,
    /// The certificate to renew.
    pub old_cert: Retained<Certificate>,
    /// The key to renew onto.
    pub new_key: SoftwareKey,
}

fn key_error(_: KeyError) -> CmcError {
    CmcError::InvalidInput("sample key")
}

fn scalar(seed: u8) -> [u8; 32] {
    // Any value in [1, n) is a valid P-256 scalar; these are far below n.
    let mut s = [0u8; 32];
    s[0] = 0x10;
    s[31] = seed;
    s[15] = seed.wrapping_mul(7);
    s
}

/// The fixed "now" of deterministic samples: 2026-01-01T00:00:00Z.
pub fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

impl Sample {
    /// The reproducible sample: P-256 keys from fixed scalars, validity from [`fixed_now`].
    pub fn deterministic() -> Result<Self> {
        let ca_key = SoftwareKey::p256_rfc6979_from_scalar(&scalar(1)).map_err(key_error)?;
        let old_key = SoftwareKey::p256_rfc6979_from_scalar(&scalar(2)).map_err(key_error)?;
        let new_key = SoftwareKey::p256_rfc6979_from_scalar(&scalar(3)).map_err(key_error)?;
        Self::with_keys(ca_key, old_key, new_key, fixed_now())
    }

    /// A fresh sample with random keys of `kind` (the CA always uses P-256), valid from now.
    pub fn generate(kind: KeyKind) -> Result<Self> {
        let ca_key = SoftwareKey::generate_p256().map_err(key_error)?;
        let gen_key = || match kind {
            KeyKind::P256 => SoftwareKey::generate_p256(),
            KeyKind::Rsa2048 => SoftwareKey::generate_rsa2048(),
        };
        let old_key = gen_key().map_err(key_error)?;
        let new_key = gen_key().map_err(key_error)?;
        Self::with_keys(ca_key, old_key, new_key, SystemTime::now())
    }

    /// A sample around the given keys.
    pub fn with_keys(
        ca_key: SoftwareKey,
        old_key: SoftwareKey,
        new_key: SoftwareKey,
        now: SystemTime,
    ) -> Result<Self> {
        let ca_name =
            Name::from_str("CN=cardrenew Sample Issuing CA,O=cardrenew").map_err(|source| {
                CmcError::Encode {
                    what: "CA name",
                    source,
                }
            })?;
        let ca_cert = x509::issue(
            &CertificateSpec {
                serial: vec![0x01],
                subject: ca_name.clone(),
                public_key: ca_key.public_key().clone(),
                not_before: now - Duration::from_secs(3600),
                not_after: now + Duration::from_secs(10 * 365 * 86400),
                extensions: vec![
                    x509::basic_constraints(true, Some(0))?,
                    x509::key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)?,
                    x509::subject_key_identifier(ca_key.public_key())?,
                ],
            },
            &ca_name,
            &ca_key,
        )?;
        let old_cert = issue_user_certificate(&ca_key, &ca_cert, old_key.public_key(), now)?;
        Ok(Self {
            ca_key,
            ca_cert,
            old_key,
            old_cert,
            new_key,
        })
    }
}

/// Issues the sample smart-card user certificate ("CN=Alice Example", UPN-style e-mail SAN,
/// clientAuth + smartcardLogon, template extension v2) for `key`.
pub fn issue_user_certificate(
    ca_key: &dyn Signer,
    ca_cert: &Retained<Certificate>,
    key: &spki::SubjectPublicKeyInfoOwned,
    now: SystemTime,
) -> Result<Retained<Certificate>> {
    issue_named_user_certificate(ca_key, ca_cert, key, now, "Alice Example", "alice")
}

/// The same certificate for another user: `CN=<common_name>`, e-mail `<mailbox>@example.test`
/// (load runs enroll many distinct users).
pub fn issue_named_user_certificate(
    ca_key: &dyn Signer,
    ca_cert: &Retained<Certificate>,
    key: &spki::SubjectPublicKeyInfoOwned,
    now: SystemTime,
    common_name: &str,
    mailbox: &str,
) -> Result<Retained<Certificate>> {
    let subject = Name::from_str(&format!("CN={common_name},OU=Smart Card Users,O=cardrenew"))
        .map_err(|source| CmcError::Encode {
            what: "subject",
            source,
        })?;
    let email =
        Ia5String::new(&format!("{mailbox}@example.test")).map_err(|source| CmcError::Encode {
            what: "SAN",
            source,
        })?;
    let template = ObjectIdentifier::from_str(SAMPLE_TEMPLATE_OID)
        .map_err(|_| CmcError::InvalidInput("template OID"))?;
    x509::issue(
        &CertificateSpec {
            // Distinct keys get distinct serials; the leading 0x4a keeps the INTEGER positive.
            serial: std::iter::once(0x4a)
                .chain(crate::cmc::crypto::key_identifier(key).into_iter().take(7))
                .collect(),
            subject,
            public_key: key.clone(),
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(365 * 86400),
            extensions: vec![
                x509::basic_constraints(false, None)?,
                x509::key_usage(KeyUsages::DigitalSignature)?,
                x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_SMARTCARD_LOGON])?,
                x509::subject_alt_name(vec![GeneralName::Rfc822Name(email)])?,
                x509::certificate_template(template, 100, 4)?,
                x509::subject_key_identifier(key)?,
                x509::authority_key_identifier(
                    ca_cert.value().tbs_certificate().subject_public_key_info(),
                )?,
            ],
        },
        ca_cert.value().tbs_certificate().subject(),
        ca_key,
    )
}

/// A P-256 key signing ECDSA with SHA-1, as CAs once signed certificates: for tests of what a
/// renewal must not be (a SHA-1 certificate where the renewed one was signed with SHA-2).
/// Nothing in the library signs with SHA-1 by itself.
pub struct Sha1EcdsaSigner {
    key: p256::ecdsa::SigningKey,
    public_key: spki::SubjectPublicKeyInfoOwned,
}

impl Sha1EcdsaSigner {
    /// `key`'s private key, signing with SHA-1; `None` when `key` is not a P-256 key.
    pub fn new(key: &SoftwareKey) -> Option<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let pem = key.to_pkcs8_pem().ok()?;
        Some(Self {
            key: p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).ok()?,
            public_key: key.public_key().clone(),
        })
    }
}

impl Signer for Sha1EcdsaSigner {
    fn public_key(&self) -> &spki::SubjectPublicKeyInfoOwned {
        &self.public_key
    }

    fn algorithm(&self) -> crate::cmc::SignatureAlgorithm {
        crate::cmc::SignatureAlgorithm {
            family: crate::cmc::KeyFamily::Ecdsa,
            digest: crate::cmc::DigestAlgorithm::Sha1,
        }
    }

    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, crate::cmc::SignError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let digest = crate::cmc::DigestAlgorithm::Sha1.digest(message);
        let signature: p256::ecdsa::Signature = self
            .key
            .sign_prehash(&digest)
            .map_err(|_| crate::cmc::SignError::Software)?;
        Ok(signature.to_der().as_bytes().to_vec())
    }
}
