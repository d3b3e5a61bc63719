//! Issuing X.509 certificates with any [`Signer`]: the mock CA, the tests' fixtures and the
//! benchmarks share this instead of each growing their own.
//!
//! `x509-cert` 0.3 keeps certificate fields private and its builder wants RustCrypto signer
//! traits; a card- or HSM-backed [`Signer`] fits neither, so the TBSCertificate is assembled here
//! (RFC 5280 §4.1) and parsed back into an `x509_cert::Certificate`.

use std::time::SystemTime;

mod name_text;
pub use name_text::name_text;

use der::{
    Encode, Sequence,
    asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString, UtcTime},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{
    Certificate,
    ext::{
        Extension,
        pkix::{
            AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
            SubjectAltName, SubjectKeyIdentifier, name::GeneralName,
        },
    },
    name::Name,
    serial_number::SerialNumber,
    time::{Time, Validity},
};

use crate::cmc::{
    CmcError, Result, Retained, Signer, crypto::key_identifier, error::DerContext,
    microsoft::CertificateTemplateV2, oids,
};

#[derive(Sequence)]
struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct CertificateOut {
    tbs_certificate: TbsCertificate,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// What goes into a certificate.
#[derive(Clone, Debug)]
pub struct CertificateSpec {
    /// Serial number bytes (positive, ≤ 20 bytes, RFC 5280 §4.1.2.2).
    pub serial: Vec<u8>,
    /// Subject.
    pub subject: Name,
    /// Subject public key.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Extensions, in order.
    pub extensions: Vec<Extension>,
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
pub fn to_time(t: SystemTime) -> Result<Time> {
    let utc_limit = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_524_608_000);
    if t < utc_limit {
        Ok(Time::UtcTime(
            UtcTime::from_system_time(t).encoding("UTCTime")?,
        ))
    } else {
        Ok(Time::GeneralTime(
            GeneralizedTime::from_system_time(t).encoding("GeneralizedTime")?,
        ))
    }
}

/// Signs a certificate for `spec` as `issuer` with `issuer_key`. Self-signed when `issuer` is
/// `spec.subject` and `issuer_key` holds `spec.public_key`.
pub fn issue(
    spec: &CertificateSpec,
    issuer: &Name,
    issuer_key: &dyn Signer,
) -> Result<Retained<Certificate>> {
    let algorithm = issuer_key
        .algorithm()
        .x509_identifier()
        .encoding("signature algorithm")?;
    let tbs = TbsCertificate {
        version: 2,
        serial_number: SerialNumber::new(&spec.serial).encoding("serial number")?,
        signature: algorithm.clone(),
        issuer: issuer.clone(),
        validity: Validity::new(to_time(spec.not_before)?, to_time(spec.not_after)?),
        subject: spec.subject.clone(),
        subject_public_key_info: spec.public_key.clone(),
        extensions: (!spec.extensions.is_empty()).then(|| spec.extensions.clone()),
    };
    let signature = issuer_key.sign(&tbs.to_der().encoding("TBSCertificate")?)?;
    let der = CertificateOut {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).encoding("certificate signature")?,
    }
    .to_der()
    .encoding("certificate")?;
    Retained::from_der(&der).malformed("issued certificate")
}

/// Whether `cert` may sign CMC responses on behalf of the CA that issued it: a CA certificate
/// (basicConstraints cA), or one whose extendedKeyUsage names id-kp-cmcCA or id-kp-cmcRA
/// (RFC 6402 §2.10) — a renewal gateway's RA certificate. An end entity's certificate (a
/// user's, which chains to the same CA) may not. Extensions that do not parse count as absent.
pub fn may_sign_cmc_responses(cert: &Certificate) -> bool {
    use der::Decode;
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .any(|e| match e.extn_id {
            oids::BASIC_CONSTRAINTS => {
                BasicConstraints::from_der(e.extn_value.as_bytes()).is_ok_and(|bc| bc.ca)
            }
            oids::EXT_KEY_USAGE => {
                ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).is_ok_and(|eku| {
                    eku.0
                        .iter()
                        .any(|p| *p == oids::KP_CMC_CA || *p == oids::KP_CMC_RA)
                })
            }
            _ => false,
        })
}

/// Whether `cert`'s extendedKeyUsage names `purpose` (an extension that does not parse
/// counts as absent).
pub fn has_extended_key_usage(cert: &Certificate, purpose: der::asn1::ObjectIdentifier) -> bool {
    use der::Decode;
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == oids::EXT_KEY_USAGE)
        .any(|e| {
            ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .is_ok_and(|eku| eku.0.contains(&purpose))
        })
}

/// Whether two names are the same name by RFC 5280 §7.1: the same number of RDNs, in order,
/// each with the same set of attribute types, and values that match after the comparison
/// rules of RFC 4518 as RFC 5280 asks for them — a DirectoryString in the string types seen in
/// practice (PrintableString, UTF8String, BMPString, TeletexString read as Latin-1) or an
/// IA5String / VisibleString is compared as text with case folded and insignificant spaces removed (leading,
/// trailing, runs of spaces collapsed to one). Any other value compares as its encoding.
/// So a PrintableString CN equals the same UTF8String CN; an RDN order reversed (as an RFC 4514
/// string round trip produces) is another name.
pub fn same_name(a: &Name, b: &Name) -> bool {
    let (a, b) = (a.as_ref(), b.as_ref());
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().all(|atv| {
                    y.iter()
                        .any(|other| atv.oid == other.oid && same_value(&atv.value, &other.value))
                })
                && y.iter().all(|atv| {
                    x.iter()
                        .any(|other| atv.oid == other.oid && same_value(&atv.value, &other.value))
                })
        })
}

/// Whether two subjectAltName values name the same entities in the same order, each compared
/// as RFC 5280 asks: a dNSName without regard to ASCII case (§7.2), an rfc822Name's domain
/// without regard to case and its local part exactly (§7.5), a directoryName as a name
/// ([`same_name`], §7.1); any other form (URI, IP address, otherName such as a UPN) as its
/// encoding. A request that spells `Alice@EXAMPLE.com` for `Alice@example.com` names the
/// same mailbox; `alice@example.com` is another (a local part is the mail host's to read).
pub fn same_alt_names(a: &[GeneralName], b: &[GeneralName]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_general_name(x, y))
}

/// Whether two subjectAltName extensions, either absent, name the same entities:
/// [`same_alt_names`] on their parsed values. Absent on both sides is the same; a value that
/// does not parse is the same only as the same bytes.
pub fn same_alt_name_extensions(a: Option<&Extension>, b: Option<&Extension>) -> bool {
    use der::Decode;
    let parsed = |e: &Extension| SubjectAltName::from_der(e.extn_value.as_bytes());
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (parsed(a), parsed(b)) {
            (Ok(x), Ok(y)) => same_alt_names(&x.0, &y.0),
            _ => a.extn_value == b.extn_value,
        },
        _ => false,
    }
}

fn same_general_name(a: &GeneralName, b: &GeneralName) -> bool {
    match (a, b) {
        (GeneralName::DnsName(x), GeneralName::DnsName(y)) => {
            x.as_str().eq_ignore_ascii_case(y.as_str())
        }
        (GeneralName::Rfc822Name(x), GeneralName::Rfc822Name(y)) => {
            match (x.as_str().rsplit_once('@'), y.as_str().rsplit_once('@')) {
                (Some((local_x, domain_x)), Some((local_y, domain_y))) => {
                    local_x == local_y && domain_x.eq_ignore_ascii_case(domain_y)
                }
                _ => x == y,
            }
        }
        (GeneralName::DirectoryName(x), GeneralName::DirectoryName(y)) => same_name(x, y),
        _ => a == b,
    }
}

/// An attribute value compared as RFC 5280 §7.1 asks (see [`same_name`]).
fn same_value(a: &der::asn1::Any, b: &der::asn1::Any) -> bool {
    // The same tag and bytes are the same value under any rule; a renewal's names usually
    // are, and need no text prepared.
    if a == b {
        return true;
    }
    match (comparable_text(a), comparable_text(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// A string value's text, prepared for matching: case folded, insignificant spaces removed.
fn comparable_text(value: &der::asn1::Any) -> Option<String> {
    use der::{Tag, Tagged};
    let bytes = value.value();
    let text: String = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            std::str::from_utf8(bytes).ok()?.to_string()
        }
        // T.61 as the common practice reads it: Latin-1.
        Tag::TeletexString => bytes.iter().map(|b| char::from(*b)).collect(),
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()?
        }
        _ => return None,
    };
    Some(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    )
}

/// Whether `issued` is a renewal of `old` and nothing more, as a renewal gateway must check
/// before delivering it: [`same_renewal_identity`], and the same extendedKeyUsage (as a set),
/// keyUsage and certificate template. A CA builds a renewal's names from the renewed certificate (ADCS
/// does; so does sim-ca), so a difference is the CA's doing. `Err` names what differs.
pub fn same_renewal_profile(
    issued: &Certificate,
    old: &Certificate,
) -> std::result::Result<(), &'static str> {
    same_renewal_identity(issued, old)?;
    let purposes = |c: &Certificate| {
        parsed_extension::<ExtendedKeyUsage>(c, oids::EXT_KEY_USAGE).map(|eku| {
            let mut p: Vec<ObjectIdentifier> = eku.map(|e| e.0).unwrap_or_default();
            p.sort();
            p.dedup();
            p
        })
    };
    if !matches!((purposes(issued), purposes(old)), (Ok(a), Ok(b)) if a == b) {
        return Err("extendedKeyUsage");
    }
    // The same uses of the key: one without digitalSignature cannot log on, authenticate TLS
    // or sign the next renewal.
    let usages = |c: &Certificate| {
        parsed_extension::<KeyUsage>(c, oids::KEY_USAGE).map(|ku| ku.map(|ku| ku.0.bits()))
    };
    if !matches!((usages(issued), usages(old)), (Ok(a), Ok(b)) if a == b) {
        return Err("keyUsage");
    }
    let templates = (
        crate::cmc::request::certificate_template(issued),
        crate::cmc::request::certificate_template(old),
    );
    match templates {
        (None, None) => {}
        (Some(a), Some(b)) if a.matches(&b) => {}
        _ => return Err("certificate template"),
    }
    Ok(())
}

/// Whether `issued` names and empowers what `old` did, whatever its template: the same
/// subject, subjectAltName and basicConstraints, no keyUsage to sign certificates or CRLs
/// and no critical extension that `old` did not have, nor a SHA-1 signature where `old` had none — what must hold even when a renewal asks for another template
/// (whose purposes may differ). Each is compared as a parsed value (an extension that does not
/// parse differs from everything). The subject is the renewed one as it was issued — the same
/// RDNs, string types and text — not merely the same name by RFC 5280 §7.1: a relying party
/// that maps names to accounts by their text would see another user in `CN=ALICE`. `Err`
/// names what differs.
pub fn same_renewal_identity(
    issued: &Certificate,
    old: &Certificate,
) -> std::result::Result<(), &'static str> {
    fn same<T: for<'a> der::Decode<'a, Error = der::Error> + PartialEq>(
        issued: &Certificate,
        old: &Certificate,
        oid: ObjectIdentifier,
    ) -> bool {
        matches!(
            (parsed_extension::<T>(issued, oid), parsed_extension::<T>(old, oid)),
            (Ok(a), Ok(b)) if a == b
        )
    }
    if issued.tbs_certificate().subject() != old.tbs_certificate().subject() {
        return Err("subject");
    }
    if !same::<SubjectAltName>(issued, old, oids::SUBJECT_ALT_NAME) {
        return Err("subjectAltName");
    }
    // An absent basicConstraints is an end entity's, as is cA FALSE without a path length.
    let constraints = |c: &Certificate| {
        parsed_extension::<BasicConstraints>(c, oids::BASIC_CONSTRAINTS)
            .map(|bc| bc.map_or((false, None), |bc| (bc.ca, bc.path_len_constraint)))
    };
    if !matches!((constraints(issued), constraints(old)), (Ok(a), Ok(b)) if a == b) {
        return Err("basicConstraints");
    }
    // Nor may it gain the power to sign certificates or CRLs: RFC 5280 validators ignore
    // keyCertSign without cA, but not every relying party is one. No keyUsage restricts
    // nothing (RFC 5280 §4.2.1.3), so dropping it gains every power.
    let signs = |c: &Certificate| {
        parsed_extension::<KeyUsage>(c, oids::KEY_USAGE).map(|ku| {
            ku.is_none_or(|ku| {
                ku.0.contains(KeyUsages::KeyCertSign) || ku.0.contains(KeyUsages::CRLSign)
            })
        })
    };
    match (signs(issued), signs(old)) {
        (Ok(false), Ok(_)) | (Ok(true), Ok(true)) => {}
        _ => return Err("keyUsage"),
    }
    // Nor a critical extension the renewed certificate did not have critical (those compared
    // above aside): a relying party that does not know it must reject the certificate (RFC 5280
    // §4.2), so it could stop working anywhere. A non-critical one added (ADCS adds its SID
    // extension to renewals of older certificates) is ignored where it is not known.
    const COMPARED: [ObjectIdentifier; 4] = [
        oids::BASIC_CONSTRAINTS,
        oids::KEY_USAGE,
        oids::EXT_KEY_USAGE,
        oids::SUBJECT_ALT_NAME,
    ];
    let critical = |c: &Certificate| -> Vec<ObjectIdentifier> {
        c.tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .filter(|e| e.critical && !COMPARED.contains(&e.extn_id))
            .map(|e| e.extn_id)
            .collect()
    };
    let had = critical(old);
    if critical(issued).iter().any(|oid| !had.contains(oid)) {
        return Err("critical extension");
    }
    // Nor signed with a broken hash (SHA-1) when the renewed certificate was not: relying
    // parties that refuse SHA-1 signatures would refuse it, and the old certificate would be
    // gone. One SHA-2 for another is no weakening (a CA that moved from P-384 to RSA signs
    // with SHA-256 after SHA-384). An algorithm either side does not name with its hash is not
    // compared; the chain check decides whether it verifies at all.
    let hash = |c: &Certificate| {
        crate::cmc::SignatureAlgorithm::from_identifier(c.signature_algorithm(), None)
            .map(|a| a.digest)
    };
    if let (Some(issued), Some(renewed)) = (hash(issued), hash(old))
        && !issued.collision_resistant()
        && renewed.collision_resistant()
    {
        return Err("signature hash (SHA-1, where the renewed certificate's was not)");
    }
    Ok(())
}

/// The one extension `oid` of `cert`, parsed: `Ok(None)` when absent, `Err` when it does not
/// parse or appears twice (RFC 5280 §4.2 forbids that).
fn parsed_extension<T: for<'a> der::Decode<'a, Error = der::Error>>(
    cert: &Certificate,
    oid: ObjectIdentifier,
) -> std::result::Result<Option<T>, ()> {
    let mut found = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let value = match (found.next(), found.next()) {
        (None, _) => return Ok(None),
        (Some(e), None) => T::from_der(e.extn_value.as_bytes()).map_err(|_| ())?,
        (Some(_), Some(_)) => return Err(()),
    };
    Ok(Some(value))
}

/// The last second X.509 can write: 9999-12-31T23:59:59Z (RFC 5280 §4.1.2.5). Clocks that a
/// number from outside can move stop here rather than overflow.
pub fn latest_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(253_402_300_799)
}

/// How far ahead of a verifier's clock an issued certificate's notBefore may be: CAs backdate
/// by minutes for clock skew (sim-ca by 5, ADCS by 10), and a client's clock may run behind the
/// CA's by as much.
pub const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Why a certificate cannot be used at a given time (see [`usable_at`]). Its text says what is
/// wrong ("has expired (notAfter ...)"); the caller names the certificate.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Unusable {
    /// Its notAfter has passed.
    Expired {
        /// The notAfter, as the certificate writes it.
        not_after: Time,
    },
    /// Its notBefore is more than [`CLOCK_SKEW`] ahead.
    NotYetValid {
        /// The notBefore, as the certificate writes it.
        not_before: Time,
    },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired { not_after } => write!(f, "has expired (notAfter {not_after})"),
            Self::NotYetValid { not_before } => write!(
                f,
                "is not valid yet (notBefore {not_before}; is this clock right?)"
            ),
        }
    }
}

impl std::error::Error for Unusable {}

/// Whether a certificate with `validity` is usable at `now`: not expired, and its notBefore at
/// most [`CLOCK_SKEW`] ahead. A renewal's certificate replaces one that works, so it must work
/// now: the client refuses one that does not (and rolls back), and a gateway never delivers it.
pub fn usable_at(validity: &Validity, now: SystemTime) -> std::result::Result<(), Unusable> {
    let at = |t: &Time| SystemTime::UNIX_EPOCH + t.to_unix_duration();
    if at(&validity.not_after) <= now {
        return Err(Unusable::Expired {
            not_after: validity.not_after,
        });
    }
    if at(&validity.not_before) > now + CLOCK_SKEW {
        return Err(Unusable::NotYetValid {
            not_before: validity.not_before,
        });
    }
    Ok(())
}

/// Whether `cert` is a link to `issuer` that path validation accepts: signed by its key, and
/// naming it as its issuer (RFC 5280 §6.1.3 (a)(1) and (a)(4), the names compared by §7.1). A
/// certificate signed by the right key under another issuer name verifies here by signature
/// alone, then fails every relying party that builds its path by name: a renewal must not
/// install it, nor a gateway deliver it.
pub fn issued_by(cert: &Retained<Certificate>, issuer: &Certificate) -> bool {
    same_name(
        cert.value().tbs_certificate().issuer(),
        issuer.tbs_certificate().subject(),
    ) && verify_issued_by(cert, issuer).is_ok()
}

/// Verifies that `cert` is signed by the key of `issuer` (signature only; names, validity and
/// constraints are the caller's policy).
pub fn verify_issued_by(cert: &Retained<Certificate>, issuer: &Certificate) -> Result<()> {
    let alg =
        crate::cmc::SignatureAlgorithm::from_identifier(cert.value().signature_algorithm(), None)
            .ok_or(CmcError::UnsupportedAlgorithm {
            what: "certificate signature",
            oid: cert.value().signature_algorithm().oid,
        })?;
    let tbs = crate::cmc::verify_request::tbs_bytes(cert.der()).malformed("certificate")?;
    let sig = cert
        .value()
        .signature()
        .as_bytes()
        .ok_or(CmcError::SignatureInvalid {
            signer: 0,
            source: crate::cmc::crypto::VerifyError::BadSignature,
        })?;
    crate::cmc::crypto::verify(
        issuer.tbs_certificate().subject_public_key_info(),
        alg,
        tbs,
        sig,
    )
    .map_err(|source| CmcError::SignatureInvalid { signer: 0, source })
}

fn ext(oid: ObjectIdentifier, critical: bool, value: &impl Encode) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().encoding("extension")?)
            .encoding("extension")?,
    })
}

/// basicConstraints (critical).
pub fn basic_constraints(ca: bool, path_len: Option<u8>) -> Result<Extension> {
    ext(
        oids::BASIC_CONSTRAINTS,
        true,
        &BasicConstraints {
            ca,
            path_len_constraint: path_len,
        },
    )
}

/// keyUsage (critical).
pub fn key_usage(usages: impl Into<flagset::FlagSet<KeyUsages>>) -> Result<Extension> {
    ext(oids::KEY_USAGE, true, &KeyUsage(usages.into()))
}

/// extKeyUsage.
pub fn ext_key_usage(purposes: Vec<ObjectIdentifier>) -> Result<Extension> {
    ext(oids::EXT_KEY_USAGE, false, &ExtendedKeyUsage(purposes))
}

/// subjectKeyIdentifier = SHA-1 of the key.
pub fn subject_key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Result<Extension> {
    ext(
        oids::SUBJECT_KEY_IDENTIFIER,
        false,
        &SubjectKeyIdentifier(OctetString::new(key_identifier(spki)).encoding("SKI")?),
    )
}

/// authorityKeyIdentifier = SHA-1 of the issuer's key.
pub fn authority_key_identifier(issuer_spki: &SubjectPublicKeyInfoOwned) -> Result<Extension> {
    ext(
        oids::AUTHORITY_KEY_IDENTIFIER,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(key_identifier(issuer_spki)).encoding("AKI")?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

/// subjectAltName.
pub fn subject_alt_name(names: Vec<GeneralName>) -> Result<Extension> {
    ext(oids::SUBJECT_ALT_NAME, false, &SubjectAltName(names))
}

/// Microsoft template extension v2 (1.3.6.1.4.1.311.21.7).
pub fn certificate_template(
    template: ObjectIdentifier,
    major: u32,
    minor: u32,
) -> Result<Extension> {
    ext(
        oids::MS_CERTIFICATE_TEMPLATE,
        false,
        &CertificateTemplateV2 {
            template_id: template,
            major_version: Some(major),
            minor_version: Some(minor),
        },
    )
}

#[cfg(test)]
mod name_tests {
    #![allow(clippy::unwrap_used)]

    use der::{Decode, Encode, asn1::Any};
    use x509_cert::name::Name;

    use x509_cert::ext::pkix::name::GeneralName;

    use super::{same_alt_names, same_name};

    /// A name from (type, tag, value) RDNs, one attribute each, in the order given.
    fn name(rdns: &[(&str, der::Tag, &[u8])]) -> Name {
        let mut der = Vec::new();
        for (oid, tag, value) in rdns {
            let oid: der::asn1::ObjectIdentifier = oid.parse().unwrap();
            let atv = [
                oid.to_der().unwrap(),
                Any::new(*tag, *value).unwrap().to_der().unwrap(),
            ]
            .concat();
            let seq = [vec![0x30, atv.len() as u8], atv].concat();
            der.extend([vec![0x31, seq.len() as u8], seq].concat());
        }
        Name::from_der(&[vec![0x30, der.len() as u8], der].concat()).unwrap()
    }

    const CN: &str = "2.5.4.3";
    const O: &str = "2.5.4.10";

    #[test]
    fn string_types_case_and_spaces_do_not_make_another_name() {
        use der::Tag::*;
        let utf8 = name(&[(O, Utf8String, b"cardrenew"), (CN, Utf8String, b"Sam Swan")]);
        let printable = name(&[
            (O, PrintableString, b"cardrenew"),
            (CN, PrintableString, b"Sam Swan"),
        ]);
        let spaced = name(&[
            (O, Utf8String, b"CardRenew "),
            (CN, Utf8String, b" sam  swan"),
        ]);
        let bmp = name(&[
            (O, Utf8String, b"cardrenew"),
            (CN, BmpString, b"\0S\0a\0m\0 \0S\0w\0a\0n"),
        ]);
        for other in [&printable, &spaced, &bmp] {
            assert!(same_name(&utf8, other), "{other}");
        }
    }

    #[test]
    fn another_order_another_value_or_another_type_is_another_name() {
        use der::Tag::*;
        let utf8 = name(&[(O, Utf8String, b"cardrenew"), (CN, Utf8String, b"Sam Swan")]);
        let reversed = name(&[(CN, Utf8String, b"Sam Swan"), (O, Utf8String, b"cardrenew")]);
        let other = name(&[
            (O, Utf8String, b"cardrenew"),
            (CN, Utf8String, b"Sam Swann"),
        ]);
        let shorter = name(&[(CN, Utf8String, b"Sam Swan")]);
        let ou = name(&[
            ("2.5.4.11", Utf8String, b"cardrenew"),
            (CN, Utf8String, b"Sam Swan"),
        ]);
        // Not a string: compared as encoded, so an OCTET STRING "Sam Swan" is not the name.
        let octets = name(&[
            (O, Utf8String, b"cardrenew"),
            (CN, OctetString, b"Sam Swan"),
        ]);
        for other in [&reversed, &other, &shorter, &ou, &octets] {
            assert!(!same_name(&utf8, other), "{other}");
        }
    }

    #[test]
    fn alt_names_compare_as_rfc_5280_asks() {
        use der::{Tag::*, asn1::Ia5String};
        let dns = |s: &str| GeneralName::DnsName(Ia5String::new(s).unwrap());
        let mail = |s: &str| GeneralName::Rfc822Name(Ia5String::new(s).unwrap());
        let dir = |cn: &[u8]| GeneralName::DirectoryName(name(&[(CN, Utf8String, cn)]));
        let printable_dir = GeneralName::DirectoryName(name(&[(CN, PrintableString, b"Sam")]));
        let renewed = [
            dns("host.example.com"),
            mail("Sam@example.com"),
            dir(b"Sam"),
        ];
        let same = [
            dns("HOST.Example.com"),
            mail("Sam@EXAMPLE.com"),
            printable_dir.clone(),
        ];
        assert!(same_alt_names(&renewed, &same));
        for other in [
            vec![
                dns("host.example.org"),
                mail("Sam@example.com"),
                dir(b"Sam"),
            ],
            // The local part is the mail host's to read: another mailbox.
            vec![
                dns("host.example.com"),
                mail("sam@example.com"),
                dir(b"Sam"),
            ],
            vec![
                dns("host.example.com"),
                mail("Sam@example.com"),
                dir(b"Pat"),
            ],
            // Another order, one name fewer, one more.
            vec![
                mail("Sam@example.com"),
                dns("host.example.com"),
                dir(b"Sam"),
            ],
            vec![dns("host.example.com"), mail("Sam@example.com")],
            vec![
                dns("host.example.com"),
                mail("Sam@example.com"),
                dir(b"Sam"),
                dns("admin.example.com"),
            ],
            // Another form for the same text.
            vec![dns("Sam@example.com"), mail("Sam@example.com"), dir(b"Sam")],
        ] {
            assert!(!same_alt_names(&renewed, &other), "{other:?}");
        }
    }
}

/// The DER certificates of a PEM bundle, in order, or the input itself when it is not PEM (one
/// DER certificate). Only `CERTIFICATE` blocks count: a bundle that also holds keys or CRLs
/// yields its certificates; one without any is an error, never an empty trust list.
pub fn certificates_in(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN") {
        return Ok(vec![bytes.to_vec()]);
    }
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let end = rest[start..]
            .find(END)
            .ok_or_else(|| CmcError::Encoding("unterminated PEM certificate".into()))?;
        let block = &rest[start..start + end + END.len()];
        let (_, der) = der::pem::decode_vec(block.as_bytes())
            .map_err(|e| CmcError::Encoding(format!("PEM certificate: {e}")))?;
        out.push(der);
        rest = &rest[start + end + END.len()..];
    }
    if out.is_empty() {
        return Err(CmcError::Encoding("no certificate in the PEM input".into()));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod pem_tests {
    use super::certificates_in;

    #[test]
    fn a_bundle_yields_its_certificates_in_order_and_nothing_else() {
        let block =
            |b64: &str| format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        // Base64 of the bytes 30 00 and 30 01 00: not certificates, only their order matters.
        let bundle = format!(
            "junk\n{}-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n{}",
            block("MAA="),
            block("MAEA")
        );
        let certs = certificates_in(bundle.as_bytes()).unwrap();
        assert_eq!(certs, vec![vec![0x30, 0x00], vec![0x30, 0x01, 0x00]]);
    }

    #[test]
    fn der_passes_through_and_a_bundle_without_certificates_is_refused() {
        assert_eq!(
            certificates_in(&[0x30, 0x00]).unwrap(),
            vec![vec![0x30, 0x00]]
        );
        let keys_only = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        let err = certificates_in(keys_only.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no certificate"), "{err}");
        let cut = "-----BEGIN CERTIFICATE-----\nMAA=\n";
        let err = certificates_in(cut.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("unterminated"), "{err}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod validity_tests {
    use std::time::{Duration, SystemTime};

    use der::asn1::{GeneralizedTime, UtcTime};
    use x509_cert::time::{Time, Validity};

    use super::{CLOCK_SKEW, Unusable, usable_at};

    /// The dates are compared as instants, whatever their encoding: UTCTime, GeneralizedTime
    /// (after 2049, as RFC 5280 §4.1.2.5 asks), and a GeneralizedTime before 2050 — what a CA
    /// that ignores that rule writes, meaning the same instant as the UTCTime.
    #[test]
    fn validity_is_judged_as_instants_in_every_encoding() {
        let utc = |t: SystemTime| Time::UtcTime(UtcTime::from_system_time(t).unwrap());
        let general =
            |t: SystemTime| Time::GeneralTime(GeneralizedTime::from_system_time(t).unwrap());
        let day = Duration::from_secs(86_400);
        for (now, encode) in [
            (crate::sample::fixed_now(), utc as fn(SystemTime) -> Time),
            (crate::sample::fixed_now(), general),
            (
                SystemTime::UNIX_EPOCH + Duration::from_secs(2_600_000_000),
                general,
            ),
        ] {
            let validity = Validity::new(encode(now - Duration::from_secs(60)), encode(now + day));
            assert_eq!(usable_at(&validity, now), Ok(()));
            assert_eq!(
                usable_at(&validity, now + day - Duration::from_secs(1)),
                Ok(())
            );
            let late = usable_at(&validity, now + day).unwrap_err();
            assert!(matches!(late, Unusable::Expired { .. }), "{late}");
            assert!(late.to_string().starts_with("has expired"), "{late}");
            let behind = now - Duration::from_secs(60) - CLOCK_SKEW;
            assert_eq!(usable_at(&validity, behind), Ok(()));
            let early = usable_at(&validity, behind - Duration::from_secs(1)).unwrap_err();
            assert!(matches!(early, Unusable::NotYetValid { .. }), "{early}");
            assert!(early.to_string().starts_with("is not valid yet"), "{early}");
        }
    }
}
