//! The renewal-only policy. The CA issues nothing but a renewal of the certificate that
//! presents itself: TLS client certificate == CMS old-key signer == certificate being renewed,
//! byte for byte; ours, valid, not revoked; same subject, SANs and template; proof of
//! possession; a new key of an allowed algorithm and size, parsed and checked
//! ([`PublicKey`]), that is not the old key (compared as parsed values, so a re-encoded old
//! key is still the old key); transactionId and senderNonce present; no replay.
//!
//! Every rejection maps, through [`Rejection::codes`] (the one table), to a `CMCFailInfo`,
//! an ADCS-style HRESULT (values from winerror.h) and an HTTP status.

use std::time::{Duration, SystemTime};

use renewal_codec::{
    cmc::KeyAlgorithm,
    cmc::{
        CmcError, KeyFamily, Limits, PublicKey, PublicKeyError, RenewalFacts, Retained, oids,
        parse_request,
        status::CmcFailInfo,
        verify_request::{
            pkcs10_name_value_pairs, request_template_indications, requested_extensions,
            verify_pkcs10,
        },
    },
};
use x509_cert::{Certificate, ext::Extension};

use crate::{
    store::{Store, StoreError},
    templates::{Template, TemplateRegistry},
};

mod cmp;
pub use cmp::{KurAccepted, protected_by, validate_kur, vouched_by_ra};

/// Why a renewal is refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Over the size limit.
    #[error("request too large")]
    TooLarge,
    /// The state database cannot take the decision right now (disk full, database gone):
    /// nothing was decided, the client is told to come back (HTTP 503 + Retry-After).
    #[error("the CA's state database is unavailable ({0}): nothing was decided, try again")]
    Unavailable(String),
    /// The renewed certificate has this many requests pending already.
    #[error("{0} requests of this certificate are pending already: wait until one is decided")]
    PendingLimit(u32),
    /// Not a well-formed request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A CMS signature or messageDigest does not verify.
    #[error("a request signature does not verify: {0}")]
    BadSignature(String),
    /// The PKCS#10 proof of possession does not verify.
    #[error("proof of possession fails")]
    PopFailed,
    /// Not exactly one PKCS#10.
    #[error("the request must hold exactly one PKCS#10 ({0} found)")]
    RequestCount(usize),
    /// No renewal-certificate attribute, or it is not the TLS certificate, or the old key did
    /// not sign.
    #[error("bad renewal certificate attribute: {0}")]
    BadRenewalCertificate(&'static str),
    /// The TLS client certificate is not the certificate being renewed.
    #[error("the TLS client certificate is not the certificate being renewed")]
    IdentityMismatch,
    /// The certificate being renewed was not issued by this CA.
    #[error("the certificate being renewed was not issued by this CA")]
    NotOurs,
    /// Outside its validity (plus grace).
    #[error("the certificate being renewed is not within its validity period")]
    Expired,
    /// Revoked.
    #[error("the certificate being renewed is revoked")]
    Revoked,
    /// Subject differs from the old certificate's.
    #[error("the request asks for a different subject")]
    SubjectChanged,
    /// SANs differ from the old certificate's.
    #[error("the request asks for different subject alternative names")]
    SanChanged,
    /// Template differs from the old certificate's.
    #[error("the request asks for a different template")]
    TemplateChanged,
    /// Template unknown here.
    #[error("unknown certificate template")]
    UnknownTemplate,
    /// New key == old key.
    #[error("the new key is the old key")]
    KeyReuse,
    /// Key algorithm (or curve) not supported, or not allowed by the template.
    #[error("key algorithm not allowed: {0}")]
    KeyAlgorithm(String),
    /// An RSA key whose modulus has a size the template does not allow.
    #[error("RSA key of {0} bits: the template does not allow this key size")]
    KeySize(usize),
    /// The public key is malformed (trailing bytes, a point off the curve, a bad exponent).
    #[error("{0}")]
    BadKey(String),
    /// A control the CA needs is missing.
    #[error(
        "the request carries no {0} control (RFC 5272 §6.6: required here, so that a retry is answered with the certificate already issued)"
    )]
    MissingControl(&'static str),
    /// transactionId or senderNonce seen before.
    #[error("replayed request (transactionId or senderNonce seen before)")]
    Replay,
    /// The same request again, after the upstream decided it and the gateway did not deliver
    /// what it issued (not a renewal of the certificate presented).
    #[error(
        "this request was decided upstream and its certificate was not delivered: it was not a renewal of the certificate presented (the gateway's audit trail says what differs); the same request is not forwarded again"
    )]
    Undelivered,
    /// A poll for a pending request carries another PKCS#10 than the one submitted.
    #[error("pending request {0}: the poll carries a different PKCS#10 than the one submitted")]
    PollMismatch(i64),
    /// The template requires an attested new key and the request's attestation is missing
    /// or does not hold.
    #[error("the template requires an attested key: {0}")]
    Attestation(renewal_codec::cmc::attestation::AttestationError),
    /// A disposition rule denied it.
    #[error("denied: {0}")]
    Denied(String),
    /// The CA failed.
    #[error("internal CA error: {0}")]
    Internal(String),
}

/// How a rejection is reported.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Codes {
    /// CMC fail info (RFC 5272 §6.1.4).
    pub fail_info: CmcFailInfo,
    /// ADCS HRESULT.
    pub hresult: u32,
    /// HTTP status for EST simplereenroll (full CMC failures travel in a 200).
    pub http: u16,
}

impl Rejection {
    /// The one table.
    pub fn codes(&self) -> Codes {
        use CmcFailInfo::*;
        let (fail_info, hresult, http) = match self {
            Self::TooLarge => (BadRequest, 0x8009_4007, 413), // CERTSRV_E_ENCODING_LENGTH
            Self::PendingLimit(_) => (BadRequest, 0x8009_4011, 429), // CERTSRV_E_ENROLL_DENIED
            Self::Unavailable(_) => (InternalCaError, 0x8007_06BA, 503), // RPC_S_SERVER_UNAVAILABLE
            Self::Malformed(_) => (BadRequest, 0x8007_000D, 400), // ERROR_INVALID_DATA
            Self::BadSignature(_) => (BadMessageCheck, 0x8009_0006, 400), // NTE_BAD_SIGNATURE
            Self::PopFailed => (PopFailed, 0x8009_0006, 400), // NTE_BAD_SIGNATURE
            Self::RequestCount(_) => (BadRequest, 0x8007_000D, 400), // ERROR_INVALID_DATA
            Self::BadRenewalCertificate(_) => (BadCertId, 0x8009_400E, 400), // CERTSRV_E_BAD_RENEWAL_CERT_ATTRIBUTE
            Self::IdentityMismatch => (BadIdentity, 0x8007_0005, 403),       // E_ACCESSDENIED
            Self::NotOurs => (BadIdentity, 0x800B_0109, 403),                // CERT_E_UNTRUSTEDROOT
            Self::Expired => (BadTime, 0x800B_0101, 403),                    // CERT_E_EXPIRED
            Self::Revoked => (BadCertId, 0x8009_2010, 403),                  // CRYPT_E_REVOKED
            Self::SubjectChanged | Self::SanChanged => (BadRequest, 0x8009_4806, 400), // CERTSRV_E_BAD_RENEWAL_SUBJECT
            Self::TemplateChanged => (BadRequest, 0x8009_4012, 400), // CERTSRV_E_TEMPLATE_DENIED
            Self::UnknownTemplate => (BadRequest, 0x8009_4800, 400), // CERTSRV_E_UNSUPPORTED_CERT_TYPE
            Self::KeyReuse => (NoKeyReuse, 0x8007_0057, 400),        // E_INVALIDARG
            Self::KeyAlgorithm(_) => (BadAlg, 0x8009_0008, 400),     // NTE_BAD_ALGID
            Self::KeySize(_) => (BadAlg, 0x8009_4811, 400),          // CERTSRV_E_KEY_LENGTH
            Self::BadKey(_) => (BadAlg, 0x8009_0015, 400),           // NTE_BAD_PUBLIC_KEY
            Self::MissingControl(_) => (BadRequest, 0x8007_000D, 400), // ERROR_INVALID_DATA
            Self::Replay => (BadRequest, 0x8009_4003, 409),          // CERTSRV_E_BAD_REQUESTSTATUS
            Self::Undelivered => (InternalCaError, 0x8009_4003, 409), // CERTSRV_E_BAD_REQUESTSTATUS
            Self::PollMismatch(_) => (BadRequest, 0x8009_4003, 409), // CERTSRV_E_BAD_REQUESTSTATUS
            Self::Attestation(e) => attestation_codes(e),
            Self::Denied(_) => (BadRequest, 0x8009_4011, 403), // CERTSRV_E_ENROLL_DENIED
            Self::Internal(_) => (InternalCaError, 0x8000_4005, 500), // E_FAIL
        };
        Codes {
            fail_info,
            hresult,
            http,
        }
    }

    /// The status string sent to the client: HRESULT and reason.
    pub fn status_string(&self) -> String {
        format!("0x{:08X}: {self}", self.codes().hresult)
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl Rejection {
    /// Not a decision: the state database could not take one (see [`Rejection::Unavailable`]).
    /// The answer is an HTTP 503 with Retry-After, never a signed refusal the client would
    /// roll back on.
    pub fn unavailable(&self, retry_after: u64) -> Option<crate::error::UpstreamFailure> {
        match self {
            Self::Unavailable(why) => {
                tracing::error!(error = %why, "the state database refused the decision: answering 503");
                Some(crate::error::UpstreamFailure {
                    status: 503,
                    retry_after: Some(retry_after),
                    text: self.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// ADCS's key-attestation HRESULTs: none carried, one that does not parse, one that does not
/// verify.
fn attestation_codes(
    e: &renewal_codec::cmc::attestation::AttestationError,
) -> (CmcFailInfo, u32, u16) {
    use renewal_codec::cmc::attestation::AttestationError as E;
    match e {
        E::Missing => (CmcFailInfo::BadRequest, 0x8009_481A, 403), // CERTSRV_E_KEY_ATTESTATION
        E::Malformed(_) => (CmcFailInfo::BadRequest, 0x8009_481B, 400), // CERTSRV_E_CORRUPT_KEY_ATTESTATION
        _ => (CmcFailInfo::BadRequest, 0x8009_4819, 403), // CERTSRV_E_INVALID_ATTESTATION
    }
}

fn from_codec(e: CmcError) -> Rejection {
    match e {
        CmcError::TooLarge { .. } => Rejection::TooLarge,
        CmcError::RequestCount { found } => Rejection::RequestCount(found),
        CmcError::MissingRenewalCertificate => Rejection::BadRenewalCertificate("absent"),
        CmcError::BadRenewalCertificate(_) | CmcError::RenewalCertificateMismatch => {
            Rejection::BadRenewalCertificate("malformed or inconsistent")
        }
        CmcError::BadPublicKey(e) => key_rejection(&e),
        CmcError::PopInvalid(_) => Rejection::PopFailed,
        e @ (CmcError::SignatureInvalid { .. }
        | CmcError::MessageDigestMismatch { .. }
        | CmcError::ContentTypeMismatch { .. }
        | CmcError::MissingSignedAttribute { .. }
        | CmcError::UnknownSigner { .. }
        | CmcError::NoSigners) => Rejection::BadSignature(e.to_string()),
        other => Rejection::Malformed(other.to_string()),
    }
}

/// A key that does not parse: unsupported kinds are "bad algorithm", malformed ones "bad key".
fn key_rejection(e: &PublicKeyError) -> Rejection {
    match e {
        PublicKeyError::UnsupportedRsaSize(bits) => Rejection::KeySize(*bits),
        e if e.is_unsupported() => Rejection::KeyAlgorithm(e.to_string()),
        e => Rejection::BadKey(e.to_string()),
    }
}

/// What the policy needs besides the request.
pub struct PolicyContext<'a> {
    /// The CA certificates that issue the certificates being renewed (the simulated CA's
    /// issuing certificate; a gateway's configured client CAs).
    pub issuers: &'a [Retained<Certificate>],
    /// Templates.
    pub templates: &'a TemplateRegistry,
    /// Now.
    pub now: SystemTime,
    /// How long after expiry a certificate may still be renewed.
    pub grace: Duration,
    /// Input limits.
    pub limits: Limits,
    /// Which RFC deviations are accepted.
    pub profile: renewal_codec::cmc::Profile,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Accepted {
    /// What the request says.
    pub facts: RenewalFacts,
    /// The template it renews under.
    pub template: Template,
    /// Extensions for the new certificate (the old certificate's, minus instance-bound ones).
    pub extensions: Vec<Extension>,
    /// transactionId (hex), for pending matching.
    pub transaction: String,
    /// The new key, parsed: what the certificate certifies, in the CA's canonical encoding.
    pub new_key: PublicKey,
    /// What the request asks that the certificate will not say (names spelled otherwise, under
    /// [`NameRule::FromRenewed`]): recorded with the decision.
    pub findings: Vec<String>,
}

/// An EST simplereenroll request that passed every check.
#[derive(Debug)]
pub struct SimpleAccepted {
    /// The PKCS#10.
    pub pkcs10: Retained<x509_cert::request::CertReq>,
    /// The template it renews under.
    pub template: Template,
    /// Extensions for the new certificate.
    pub extensions: Vec<Extension>,
    /// The new key, parsed.
    pub new_key: PublicKey,
}

/// Serial number text, as the store keys it.
pub fn serial_text(cert: &Certificate) -> String {
    renewal_codec::cmc::verify_request::hex(cert.tbs_certificate().serial_number().as_bytes())
}

fn extension(cert: &Certificate, oid: der::asn1::ObjectIdentifier) -> Option<&Extension> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == oid)
}

/// Checks the identity half shared by CMC and EST: the TLS certificate is ours and valid.
/// Stateless, so it runs outside the store lock; revocation is checked inside the decision's
/// transaction ([`check_not_revoked`]).
pub fn check_identity(
    tls_cert: &Retained<Certificate>,
    ctx: &PolicyContext<'_>,
) -> Result<(), Rejection> {
    if !ctx.issuers.iter().any(|issuer| {
        tls_cert.value().tbs_certificate().issuer() == issuer.value().tbs_certificate().subject()
            && renewal_codec::x509::verify_issued_by(tls_cert, issuer.value()).is_ok()
    }) {
        return Err(Rejection::NotOurs);
    }
    let validity = tls_cert.value().tbs_certificate().validity();
    let not_before = SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration();
    let not_after = SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration() + ctx.grace;
    if ctx.now < not_before || ctx.now > not_after {
        return Err(Rejection::Expired);
    }
    Ok(())
}

/// The certificate being renewed is not revoked (read in the decision's transaction, so a
/// revocation committed before it is seen).
pub fn check_not_revoked(tls_cert: &Certificate, store: &Store) -> Result<(), Rejection> {
    if store.is_revoked(&serial_text(tls_cert))? {
        return Err(Rejection::Revoked);
    }
    Ok(())
}

/// The template a certificate was issued under, from our registry.
pub fn template_of<'a>(
    cert: &Certificate,
    templates: &'a TemplateRegistry,
) -> Result<&'a Template, Rejection> {
    let reference = renewal_codec::cmc::request::certificate_template(cert)
        .ok_or(Rejection::UnknownTemplate)?;
    templates.find(&reference).ok_or(Rejection::UnknownTemplate)
}

/// How the names a request spells are held against the renewed certificate's.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum NameRule {
    /// The same names by RFC 5280 §7.1 (another string type, case or spacing is the same
    /// name; another RDN order, value or name is not) — or refused. EST simplereenroll
    /// (RFC 7030 §4.2.2, "identical"), and full CMC under the `strict` profile.
    Rfc5280,
    /// ADCS's: a renewal's names are the renewed certificate's whatever the request spells;
    /// a difference is a finding, recorded with the decision, never a name in the certificate.
    FromRenewed,
}

/// Checks the request half shared by CMC and EST: subject, SANs, template, key. Returns the
/// template, the new key, parsed, and the findings (names the request spells otherwise, under
/// [`NameRule::FromRenewed`]).
fn check_pkcs10(
    old: &Certificate,
    req: &x509_cert::request::CertReq,
    pairs: &[(String, String)],
    templates: &TemplateRegistry,
    names: NameRule,
    now: SystemTime,
) -> Result<(Template, PublicKey, Vec<String>), Rejection> {
    let mut findings = Vec::new();
    let renewed_subject = old.tbs_certificate().subject();
    if !renewal_codec::x509::same_name(&req.info.subject, renewed_subject) {
        match names {
            NameRule::Rfc5280 => return Err(Rejection::SubjectChanged),
            NameRule::FromRenewed => findings.push(format!(
                "the request spells the subject \"{}\"; the certificate keeps \"{renewed_subject}\"",
                req.info.subject
            )),
        }
    }
    let requested = requested_extensions(req).map_err(from_codec)?;
    let asked = requested
        .iter()
        .find(|e| e.extn_id == oids::SUBJECT_ALT_NAME);
    if !renewal_codec::x509::same_alt_name_extensions(asked, extension(old, oids::SUBJECT_ALT_NAME))
    {
        match names {
            NameRule::Rfc5280 => return Err(Rejection::SanChanged),
            NameRule::FromRenewed => findings.push(
                "the request asks for other subjectAltNames; the certificate keeps the renewed \
                 certificate's"
                    .into(),
            ),
        }
    }
    // A "SAN" pair is how ADCS (with EDITF_ATTRIBUTESUBJECTALTNAME2) takes names from the
    // requester (the ESC6 pattern): a renewal asks for no names at all.
    if pairs
        .iter()
        .any(|(n, _)| n.trim().eq_ignore_ascii_case("san"))
    {
        return Err(Rejection::SanChanged);
    }
    let template = template_of(old, templates)?;
    for asked in request_template_indications(req, pairs).map_err(from_codec)? {
        if !template.matches(&asked) {
            return Err(if templates.find(&asked).is_some() {
                Rejection::TemplateChanged
            } else {
                Rejection::UnknownTemplate
            });
        }
    }
    let new_key = PublicKey::from_spki(&req.info.public_key).map_err(|e| key_rejection(&e))?;
    let old_key = PublicKey::from_spki(old.tbs_certificate().subject_public_key_info())
        .map_err(|_| Rejection::BadRenewalCertificate("its public key does not parse"))?;
    if new_key == old_key {
        return Err(Rejection::KeyReuse);
    }
    check_key_allowed(&new_key, template)?;
    if !template.attestation_roots.is_empty() {
        renewal_codec::cmc::attestation::verify(req, &template.attestation_roots, now)
            .map_err(Rejection::Attestation)?;
    }
    Ok((template.clone(), new_key, findings))
}

/// Whether `template` allows `key`: its algorithm, and for RSA its size counted from the
/// modulus.
pub fn check_key_allowed(key: &PublicKey, template: &Template) -> Result<(), Rejection> {
    match KeyAlgorithm::of(key) {
        Some(algorithm) if template.allowed_keys.contains(&algorithm) => Ok(()),
        _ if key.family() == KeyFamily::Rsa => Err(Rejection::KeySize(key.bits())),
        _ => Err(Rejection::KeyAlgorithm(format!(
            "{key} keys are not allowed by template {}",
            template.name
        ))),
    }
}

/// The key algorithm of an SPKI, when it is one a template can allow (parsed: RSA size from
/// the modulus).
pub fn key_algorithm(spki: &spki::SubjectPublicKeyInfoOwned) -> Option<KeyAlgorithm> {
    KeyAlgorithm::of(&PublicKey::from_spki(spki).ok()?)
}

/// Extensions for the renewed certificate: the old certificate's, minus those bound to its
/// key or its publication (they are recomputed by the issuer).
pub fn inherited_extensions(old: &Certificate) -> Vec<Extension> {
    const DROP: [der::asn1::ObjectIdentifier; 5] = [
        oids::AUTHORITY_KEY_IDENTIFIER,
        oids::SUBJECT_KEY_IDENTIFIER,
        oids::CRL_DISTRIBUTION_POINTS,
        oids::AUTHORITY_INFO_ACCESS,
        oids::CT_SCT_LIST,
    ];
    old.tbs_certificate()
        .extensions()
        .map(|e| {
            e.iter()
                .filter(|x| !DROP.contains(&x.extn_id))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Validates a CMC renewal request presented over TLS with `tls_cert`: everything that needs
/// no state (parsing, every signature, identity, names, template, key), so it runs outside the
/// store lock and both cores verify at once. Revocation and replay bookkeeping are the
/// caller's, in the decision's transaction (a re-sent pending request is a poll, not a replay).
pub fn validate_cmc(
    request: &[u8],
    tls_cert: &Retained<Certificate>,
    ctx: &PolicyContext<'_>,
) -> Result<Accepted, Rejection> {
    let facts = parse_request(request, &ctx.limits)
        .map_err(from_codec)?
        .with_profile(ctx.profile)
        .verify()
        .map_err(from_codec)?;
    accept_cmc(facts, tls_cert, ctx)
}

/// [`validate_cmc`] for a request whose parsing and signatures were already verified under
/// `ctx`'s limits and profile (an RA's nested request, verified to learn whose it is): the
/// rest of the checks, without verifying its three signatures a second time. Not public:
/// `RenewalFacts` can be built by hand, and only this crate's intake knows that its facts come
/// from the codec's verification.
pub(crate) fn accept_cmc(
    facts: RenewalFacts,
    tls_cert: &Retained<Certificate>,
    ctx: &PolicyContext<'_>,
) -> Result<Accepted, Rejection> {
    if !facts.old_key_signed {
        return Err(Rejection::BadRenewalCertificate(
            "not signed with the old certificate's key",
        ));
    }
    if facts.renewal_certificate != *tls_cert {
        return Err(Rejection::IdentityMismatch);
    }
    // The old-key signer's certificate must be that same certificate, byte for byte: the
    // codec already rejects a different copy under its issuer and serial, and resolves the
    // signer to it (`SignedBy::RenewalCertificate`).
    check_identity(tls_cert, ctx)?;
    let old = tls_cert.value();
    let names = match ctx.profile {
        renewal_codec::cmc::Profile::Strict => NameRule::Rfc5280,
        _ => NameRule::FromRenewed,
    };
    let (template, new_key, findings) = check_pkcs10(
        old,
        facts.pkcs10.value(),
        &facts.name_value_pairs,
        ctx.templates,
        names,
        ctx.now,
    )?;
    let transaction = if facts.shape == renewal_codec::cmc::RequestShape::CmsWithPkcs10 {
        // "CMS with PKCS #10" (MS-WCCE, MS-WSTEP, certipy) is not CMC: it has no controls.
        // Its transaction is its new key — a re-sent request is the same key again, answered
        // by the (old certificate, new key) idempotency or matched to its pending request;
        // another key is another request.
        format!(
            "key:{}",
            renewal_codec::cmc::verify_request::hex(&new_key.fingerprint())
        )
    } else {
        let transaction = facts
            .transaction_id
            .as_ref()
            .map(|t| renewal_codec::cmc::verify_request::hex(t.as_bytes()))
            .ok_or(Rejection::MissingControl("transactionId"))?;
        if facts.sender_nonce.is_none() {
            return Err(Rejection::MissingControl("senderNonce"));
        }
        transaction
    };
    Ok(Accepted {
        extensions: inherited_extensions(old),
        facts,
        template,
        transaction,
        new_key,
        findings,
    })
}

/// Validates an EST simplereenroll PKCS#10 (RFC 7030 §4.2.2: the TLS client certificate is the
/// authority; the request must repeat its subject and SANs). Every template indication of the
/// PKCS#10 — its `CertificateTemplate` name/value pairs and template extensions — is checked,
/// as for full CMC.
pub fn validate_simple(
    pkcs10: &[u8],
    tls_cert: &Retained<Certificate>,
    ctx: &PolicyContext<'_>,
) -> Result<SimpleAccepted, Rejection> {
    let (der, _) = renewal_codec::cmc::input::to_der(pkcs10, &ctx.limits).map_err(from_codec)?;
    let req: Retained<x509_cert::request::CertReq> =
        renewal_codec::cmc::input::decode_exact(&der, "PKCS#10").map_err(from_codec)?;
    verify_pkcs10(&req).map_err(from_codec)?;
    check_identity(tls_cert, ctx)?;
    let pairs = pkcs10_name_value_pairs(req.value()).map_err(from_codec)?;
    let (template, new_key, _) = check_pkcs10(
        tls_cert.value(),
        req.value(),
        &pairs,
        ctx.templates,
        NameRule::Rfc5280,
        ctx.now,
    )?;
    Ok(SimpleAccepted {
        pkcs10: req,
        template,
        extensions: inherited_extensions(tls_cert.value()),
        new_key,
    })
}
