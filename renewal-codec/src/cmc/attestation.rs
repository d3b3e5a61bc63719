//! Key attestation carried in a PKCS#10, and its verification by a CA.
//!
//! **Carrier.** draft-ietf-lamps-csr-attestation defines a PKCS#10 attribute `id-aa-attestation`
//! (1.2.840.113549.1.9.16.2.59, early-allocated by IANA as `id-aa-evidence`) whose value is
//!
//! ```text
//! AttestationBundle ::= SEQUENCE {
//!    attestations SEQUENCE SIZE (1..MAX) OF AttestationStatement,
//!    certs SEQUENCE SIZE (1..MAX) OF LimitedCertChoices OPTIONAL }
//! AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type }
//! ```
//!
//! The attribute sits inside the PKCS#10, so the new key's proof-of-possession signature covers
//! it: nobody can swap the attestation without the new key.
//!
//! **Statement.** A YubiKey's PIV attestation is an X.509 certificate for the attested key,
//! signed by the card's device attestation key (slot F9), whose certificate the vendor root
//! signed. Yubico registers no statement type for it, so the statement is identified here by
//! Yubico's own PIV-attestation arc, 1.3.6.1.4.1.41482.3 (a stated choice; the draft leaves
//! statement types to their owners): `stmt` is the attestation certificate, `certs` holds the
//! device certificate.
//!
//! **Verification** ([`verify`]): the statement certifies exactly the request's key (compared as
//! parsed keys), was signed by a device certificate from the bundle, which a configured vendor
//! root signed; all three are within their validity. A card attests only keys it generated,
//! so a verified attestation also says the key was never imported.

use std::time::SystemTime;

use der::{Decode, Encode, Sequence, asn1::Any};
use x509_cert::{Certificate, attr::Attribute, request::CertReq};

use super::{PublicKey, Retained, oids};
use crate::x509::{same_name, verify_issued_by};

pub use oids::{ID_AA_ATTESTATION, YUBICO_PIV_ATTESTATION};
const EXT_FIRMWARE: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
const EXT_SERIAL: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
const EXT_POLICY: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");

/// Statements and certificates a bundle may carry before it is refused unread (a CA bounds what
/// it parses).
const MAX_ITEMS: usize = 4;

/// What a card answers when asked to attest a key: the attestation certificate and the
/// device certificate that signed it (DER).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct KeyAttestation {
    /// The attestation certificate for the key.
    pub statement: Vec<u8>,
    /// The card's attestation certificate (YubiKey slot F9), issued by the vendor root.
    pub device_certificate: Vec<u8>,
}

#[derive(Sequence)]
struct AttestationStatement {
    kind: der::asn1::ObjectIdentifier,
    stmt: Any,
}

#[derive(Sequence)]
struct AttestationBundle {
    attestations: Vec<AttestationStatement>,
    #[asn1(optional = "true")]
    certs: Option<Vec<Any>>,
}

/// The PKCS#10 attribute carrying `attestation`.
pub fn attribute(attestation: &KeyAttestation) -> der::Result<Attribute> {
    let bundle = AttestationBundle {
        attestations: vec![AttestationStatement {
            kind: YUBICO_PIV_ATTESTATION,
            stmt: Any::from_der(&attestation.statement)?,
        }],
        certs: Some(vec![Any::from_der(&attestation.device_certificate)?]),
    };
    Ok(Attribute {
        oid: ID_AA_ATTESTATION,
        values: der::asn1::SetOfVec::try_from(vec![Any::from_der(&bundle.to_der()?)?])?,
    })
}

/// What a verified attestation says besides the key.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct AttestedKey {
    /// The card's serial number.
    pub serial: Option<u64>,
    /// The card's firmware version.
    pub firmware: Option<[u8; 3]>,
    /// The key's PIN policy byte (1 never, 2 once, 3 always).
    pub pin_policy: Option<u8>,
    /// The key's touch policy byte (1 never, 2 always, 3 cached).
    pub touch_policy: Option<u8>,
}

/// Why an attestation is not accepted.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// The request carries none.
    #[error("the request carries no key attestation")]
    Missing,
    /// The attribute or its bundle does not parse, or holds more than the bounds allow.
    #[error("malformed key attestation: {0}")]
    Malformed(&'static str),
    /// No statement of a type this CA verifies.
    #[error("no key attestation of a type this CA verifies (YubiKey PIV attestation)")]
    UnknownType,
    /// The statement certifies another key than the request's.
    #[error("the attestation certifies another key than the request's")]
    OtherKey,
    /// No certificate in the bundle signed the statement.
    #[error("no certificate in the attestation bundle signed the attestation")]
    NoDeviceCertificate,
    /// The device certificate does not chain to a configured vendor root.
    #[error("the attestation does not chain to a trusted vendor root")]
    UntrustedRoot,
    /// A certificate on the path is outside its validity.
    #[error("a certificate of the attestation path is outside its validity period")]
    Expired,
}

/// The attestation bundle of `req`, verified against `roots` at `now`: the claims of the first
/// statement that holds. The most telling refusal otherwise.
pub fn verify(
    req: &CertReq,
    roots: &[Retained<Certificate>],
    now: SystemTime,
) -> Result<AttestedKey, AttestationError> {
    let bundle = bundle_of(req)?;
    let devices: Vec<Retained<Certificate>> = bundle
        .certs
        .iter()
        .flatten()
        .filter_map(|any| Retained::from_der(&any.to_der().ok()?).ok())
        .collect();
    let key = PublicKey::from_spki(&req.info.public_key).map_err(|_| AttestationError::OtherKey)?;
    let mut refusal = AttestationError::UnknownType;
    for statement in bundle
        .attestations
        .iter()
        .filter(|s| s.kind == YUBICO_PIV_ATTESTATION)
    {
        match verify_statement(&statement.stmt, &key, &devices, roots, now) {
            Ok(claims) => return Ok(claims),
            Err(e) => refusal = e,
        }
    }
    Err(refusal)
}

fn bundle_of(req: &CertReq) -> Result<AttestationBundle, AttestationError> {
    let mut attributes = req
        .info
        .attributes
        .iter()
        .filter(|a| a.oid == ID_AA_ATTESTATION);
    let attribute = attributes.next().ok_or(AttestationError::Missing)?;
    if attributes.next().is_some() || attribute.values.len() != 1 {
        return Err(AttestationError::Malformed(
            "more than one attestation attribute or value",
        ));
    }
    let value = attribute
        .values
        .get(0)
        .ok_or(AttestationError::Malformed("empty attribute"))?;
    let bundle = value
        .decode_as::<AttestationBundle>()
        .map_err(|_| AttestationError::Malformed("AttestationBundle"))?;
    if bundle.attestations.is_empty()
        || bundle.attestations.len() > MAX_ITEMS
        || bundle.certs.as_ref().is_some_and(|c| c.len() > MAX_ITEMS)
    {
        return Err(AttestationError::Malformed(
            "an attestation bundle holds 1 to 4 statements and at most 4 certificates",
        ));
    }
    Ok(bundle)
}

fn verify_statement(
    stmt: &Any,
    key: &PublicKey,
    devices: &[Retained<Certificate>],
    roots: &[Retained<Certificate>],
    now: SystemTime,
) -> Result<AttestedKey, AttestationError> {
    let statement: Retained<Certificate> = stmt
        .to_der()
        .ok()
        .and_then(|der| Retained::from_der(&der).ok())
        .ok_or(AttestationError::Malformed("attestation certificate"))?;
    let tbs = statement.value().tbs_certificate();
    let attested = PublicKey::from_spki(tbs.subject_public_key_info())
        .map_err(|_| AttestationError::OtherKey)?;
    if attested != *key {
        return Err(AttestationError::OtherKey);
    }
    let device = devices
        .iter()
        .find(|d| {
            same_name(d.value().tbs_certificate().subject(), tbs.issuer())
                && verify_issued_by(&statement, d.value()).is_ok()
        })
        .ok_or(AttestationError::NoDeviceCertificate)?;
    let root = roots
        .iter()
        .find(|r| {
            same_name(
                r.value().tbs_certificate().subject(),
                device.value().tbs_certificate().issuer(),
            ) && verify_issued_by(device, r.value()).is_ok()
        })
        .ok_or(AttestationError::UntrustedRoot)?;
    for cert in [&statement, device, root] {
        let validity = cert.value().tbs_certificate().validity();
        let at = |t: x509_cert::time::Time| SystemTime::UNIX_EPOCH + t.to_unix_duration();
        if now < at(validity.not_before) || now > at(validity.not_after) {
            return Err(AttestationError::Expired);
        }
    }
    Ok(claims(statement.value()))
}

/// A request's attestation bundle as read, before any trust decision (`renew inspect`).
pub struct BundleView {
    /// Each statement: its type, and its certificate when it is one.
    pub statements: Vec<(der::asn1::ObjectIdentifier, Option<Retained<Certificate>>)>,
    /// The bundle's certificates that parse.
    pub certificates: Vec<Retained<Certificate>>,
}

/// The attestation bundle `req` carries, read but not judged.
pub fn read(req: &CertReq) -> Result<BundleView, AttestationError> {
    let bundle = bundle_of(req)?;
    let certificate = |any: &Any| {
        any.to_der()
            .ok()
            .and_then(|der| Retained::<Certificate>::from_der(&der).ok())
    };
    Ok(BundleView {
        statements: bundle
            .attestations
            .iter()
            .map(|s| (s.kind, certificate(&s.stmt)))
            .collect(),
        certificates: bundle
            .certs
            .iter()
            .flatten()
            .filter_map(certificate)
            .collect(),
    })
}

/// What a YubiKey attestation certificate says about its key (Yubico's extensions).
pub fn claims(statement: &Certificate) -> AttestedKey {
    let extension = |oid| {
        statement
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    };
    let policy = extension(EXT_POLICY).filter(|p| p.len() == 2);
    AttestedKey {
        serial: extension(EXT_SERIAL)
            .and_then(|der| der::asn1::Uint::from_der(der).ok())
            .and_then(|u| {
                let bytes = u.as_bytes();
                (bytes.len() <= 8)
                    .then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            }),
        firmware: extension(EXT_FIRMWARE).and_then(|f| f.try_into().ok()),
        pin_policy: policy.map(|p| p[0]),
        touch_policy: policy.map(|p| p[1]),
    }
}
