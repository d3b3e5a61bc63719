//! The renewal-only policy for a CMP key update (RFC 4210 §5.3.5, RFC 9483 §4.1.3): the
//! identity is the certificate whose key protected the message — first in `extraCerts`, named
//! by the header's sender, issued by this CA and valid — and the request renews exactly it:
//! `oldCertID` (when present) names it, the template asks for its subject and names (compared
//! as RFC 5280 values), the new key is proven by its signature, allowed by the template and not
//! the old key. What the certificate then carries is the renewed certificate's, whatever else
//! the template asks for.

use renewal_codec::cmp::{CmpError, PkiBody, PkiMessage, answer::FailureBit};
use spki::SubjectPublicKeyInfoOwned;

use super::*;

/// A key update request that passed every stateless check.
#[derive(Debug)]
pub struct KurAccepted {
    /// The certificate it renews: the one whose key protected it.
    pub renewed: Retained<Certificate>,
    /// The request's `certReqId` (echoed in the answer).
    pub cert_req_id: i64,
    /// The template it renews under.
    pub template: Template,
    /// Extensions for the new certificate (the renewed certificate's).
    pub extensions: Vec<Extension>,
    /// The new key, parsed.
    pub new_key: PublicKey,
    /// The new key as the request carries it.
    pub new_spki: SubjectPublicKeyInfoOwned,
}

/// The certificate that protected `message`: present first in `extraCerts`, named by the
/// header's sender, its signature verifying over the received header and body, issued by
/// this CA and within its validity. Revocation is the ledger's (in the decision's
/// transaction).
pub fn protected_by(
    message: &PkiMessage,
    ctx: &PolicyContext<'_>,
) -> Result<Retained<Certificate>, Rejection> {
    let signer = message
        .protecting_certificate()
        .ok_or(Rejection::BadRenewalCertificate(
            "no protecting certificate in extraCerts",
        ))?;
    message
        .verify_protection(signer.value())
        .map_err(from_cmp)?;
    let names_it = match &message.header.sender {
        x509_cert::ext::pkix::name::GeneralName::DirectoryName(name) => {
            renewal_codec::x509::same_name(name, signer.value().tbs_certificate().subject())
        }
        _ => false,
    };
    if !names_it {
        return Err(Rejection::IdentityMismatch);
    }
    check_identity(signer, ctx)?;
    Ok(signer.clone())
}

/// Checks that a `nested` message comes from one of the `trusted` RAs: its first extraCerts
/// entry is one of them (compared as certificates), the header names it as sender and its
/// protection verifies. What the RA vouches for is checked on its own afterwards.
pub fn vouched_by_ra(
    message: &PkiMessage,
    trusted: &[Retained<Certificate>],
) -> Result<(), Rejection> {
    let signer = message
        .protecting_certificate()
        .filter(|c| trusted.contains(c))
        .ok_or_else(|| {
            Rejection::Denied(
                "a nested message is accepted from a trusted RA only: its protecting \
                 certificate is not one"
                    .into(),
            )
        })?;
    message
        .verify_protection(signer.value())
        .map_err(from_cmp)?;
    match &message.header.sender {
        x509_cert::ext::pkix::name::GeneralName::DirectoryName(name)
            if renewal_codec::x509::same_name(name, signer.value().tbs_certificate().subject()) =>
        {
            Ok(())
        }
        _ => Err(Rejection::IdentityMismatch),
    }
}

/// Checks a `kur` (the stateless half; the ledger decides the rest).
pub fn validate_kur(
    message: &PkiMessage,
    ctx: &PolicyContext<'_>,
) -> Result<KurAccepted, Rejection> {
    let PkiBody::Kur(requests) = &message.body else {
        return Err(Rejection::Malformed(format!(
            "expected a key update request, got {}",
            message.body.name()
        )));
    };
    let [request] = requests.as_slice() else {
        return Err(Rejection::RequestCount(requests.len()));
    };
    if message.header.transaction_id.is_none() || message.header.sender_nonce.is_none() {
        return Err(Rejection::Malformed(
            "a key update request needs a transactionID and a senderNonce (RFC 9483 §3.1)".into(),
        ));
    }
    let renewed = protected_by(message, ctx)?;
    request.verify_pop().map_err(from_cmp)?;
    let old = renewed.value().tbs_certificate();
    if let Some(id) = request.cert_req.old_cert_id() {
        let issuer_matches = matches!(&id.issuer,
            x509_cert::ext::pkix::name::GeneralName::DirectoryName(n)
                if renewal_codec::x509::same_name(n, old.issuer()));
        if !issuer_matches || id.serial_number.as_bytes() != old.serial_number().as_bytes() {
            return Err(Rejection::BadRenewalCertificate(
                "oldCertID names another certificate than the one that protects the request",
            ));
        }
    }
    let asked = &request.cert_req.cert_template;
    if let Some(subject) = &asked.subject
        && !renewal_codec::x509::same_name(subject, old.subject())
    {
        return Err(Rejection::SubjectChanged);
    }
    let asked_san = asked
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oids::SUBJECT_ALT_NAME);
    // Asking for no names keeps the renewed certificate's; asking for others is not a renewal.
    if asked_san.is_some()
        && !renewal_codec::x509::same_alt_name_extensions(
            asked_san,
            extension(renewed.value(), oids::SUBJECT_ALT_NAME),
        )
    {
        return Err(Rejection::SanChanged);
    }
    let template = template_of(renewed.value(), ctx.templates)?;
    let new_spki = asked
        .public_key
        .clone()
        .ok_or_else(|| Rejection::Malformed("the certificate template names no key".into()))?;
    let new_key = PublicKey::from_spki(&new_spki).map_err(|e| key_rejection(&e))?;
    let old_key = PublicKey::from_spki(old.subject_public_key_info())
        .map_err(|_| Rejection::BadRenewalCertificate("its public key does not parse"))?;
    if new_key == old_key {
        return Err(Rejection::KeyReuse);
    }
    check_key_allowed(&new_key, template)?;
    if !template.attestation_roots.is_empty() {
        // A CMP request has no place for a PIV attestation: a template that demands one is
        // renewed over CMC or EST.
        return Err(Rejection::Attestation(
            renewal_codec::cmc::attestation::AttestationError::Missing,
        ));
    }
    Ok(KurAccepted {
        extensions: inherited_extensions(renewed.value()),
        renewed,
        cert_req_id: request.cert_req.cert_req_id,
        template: template.clone(),
        new_key,
        new_spki,
    })
}

fn from_cmp(e: CmpError) -> Rejection {
    match e {
        CmpError::Input(e) => from_codec(e),
        CmpError::BadProofOfPossession(_) | CmpError::NoProofOfPossession => Rejection::PopFailed,
        CmpError::NoPublicKey => {
            Rejection::Malformed("the certificate template names no key".into())
        }
        e @ (CmpError::Unprotected | CmpError::BadProtection(_)) => {
            Rejection::BadSignature(e.to_string())
        }
        e @ CmpError::UnsupportedAlgorithm { .. } => Rejection::KeyAlgorithm(e.to_string()),
        e => Rejection::Malformed(e.to_string()),
    }
}

impl Rejection {
    /// The `PKIFailureInfo` bit a CMP answer reports this rejection with (RFC 4210 §5.2.3;
    /// the CMC, HRESULT and HTTP columns are [`Rejection::codes`]).
    pub fn cmp_failure(&self) -> FailureBit {
        use FailureBit::*;
        match self {
            Self::TooLarge | Self::Malformed(_) => BadDataFormat,
            Self::PendingLimit(_) | Self::RequestCount(_) | Self::MissingControl(_) => BadRequest,
            Self::PollMismatch(_) => BadRequest,
            Self::Unavailable(_) => SystemUnavail,
            Self::BadSignature(_) => BadMessageCheck,
            Self::PopFailed | Self::Attestation(_) => BadPop,
            Self::BadRenewalCertificate(_) => BadCertId,
            Self::IdentityMismatch | Self::Denied(_) => NotAuthorized,
            Self::NotOurs | Self::Expired => SignerNotTrusted,
            Self::Revoked => CertRevoked,
            Self::SubjectChanged | Self::SanChanged | Self::KeyReuse => BadCertTemplate,
            Self::TemplateChanged | Self::UnknownTemplate => UnacceptedPolicy,
            Self::KeyAlgorithm(_) | Self::KeySize(_) | Self::BadKey(_) => BadAlg,
            Self::Replay => TransactionIdInUse,
            Self::Internal(_) | Self::Undelivered => SystemFailure,
        }
    }
}
