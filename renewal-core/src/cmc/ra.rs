//! A registration authority's wrapping of a user's request (RFC 5272 §3.2.1.3.3, nested
//! content; the RA behaviour of RFC 7030 §3.3): the RA forwards the user's signed Full PKI
//! Request, unchanged, as the one `cmsSequence` element of its own PKIData, which it signs with
//! its key and certificate. The CA then checks both: the RA's authority (its signature, and a
//! certificate the CA trusts as an RA) and the user's own proof (the inner request, verified as
//! any renewal). The RA impersonates no one and needs no delegation.
//!
//! ```text
//! ContentInfo { id-signedData, SignedData {                    -- signed by the RA
//!   eContent PKIData { controlSequence { transactionId, senderNonce },
//!                      reqSequence { },
//!                      cmsSequence { TaggedContentInfo { bodyPartID, <the user's request> } } } } }
//! ```

use cms::{
    cert::IssuerAndSerialNumber,
    content_info::{CmsVersion, ContentInfo},
    signed_data::SignerIdentifier,
};
use der::{Decode, Encode, asn1::OctetString};
use x509_cert::Certificate;

use super::{
    CmcError, DigestAlgorithm, Limits, Result, Retained, SignedBy, Signer,
    controls::Control,
    error::DerContext,
    oids,
    pki::{PkiData, TaggedContentInfo},
    request::sign_content,
    signed_data::CertificateChoice,
    verify_request::{RequestContent, parse_request},
};

/// Wraps `inner` (the user's request, a ContentInfo in DER) for forwarding, signed by `ra`
/// whose certificate is `ra_cert`, with the RA's own `transaction_id` and `nonce`.
pub fn wrap(
    inner: &[u8],
    ra: &dyn Signer,
    ra_cert: &Retained<Certificate>,
    transaction_id: u64,
    nonce: &[u8],
) -> Result<Vec<u8>> {
    let content_info = ContentInfo::from_der(inner).malformed("the request to forward")?;
    let controls = vec![
        Control::TransactionId(
            der::asn1::Int::new(&transaction_id.to_be_bytes()).encoding("transactionId")?,
        )
        .to_tagged(1)
        .encoding("transactionId")?,
        Control::SenderNonce(OctetString::new(nonce.to_vec()).encoding("senderNonce")?)
            .to_tagged(2)
            .encoding("senderNonce")?,
    ];
    let pki = PkiData {
        control_sequence: controls,
        req_sequence: Vec::new(),
        cms_sequence: vec![TaggedContentInfo {
            body_part_id: 3,
            content_info,
        }],
        other_msg_sequence: Vec::new(),
    };
    let econtent = pki.to_der().encoding("PKIData")?;
    let tbs = ra_cert.value().tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let signed = sign_content(
        oids::ID_CCT_PKI_DATA,
        &econtent,
        DigestAlgorithm::Sha256,
        &[(CmsVersion::V1, sid, ra)],
        vec![CertificateChoice::Certificate(ra_cert.clone())],
    )?;
    signed.to_content_info_der().encoding("SignedData")
}

/// An RA-wrapped request, verified as far as the RA's part goes.
#[derive(Debug)]
pub struct Unwrapped {
    /// The certificate whose key signed the wrapper (one of `trusted`).
    pub ra: Retained<Certificate>,
    /// The user's request, as the RA received it.
    pub inner: Vec<u8>,
}

/// Whether `request` has the shape of an RA wrapper: a PKIData with no request of its own and
/// exactly one nested content.
pub fn is_wrapped(request: &[u8], limits: &Limits) -> bool {
    matches!(
        parse_request(request, limits).map(|p| p.content),
        Ok(RequestContent::Cmc(pki)) if pki.req_sequence.is_empty() && pki.cms_sequence.len() == 1
    )
}

/// Verifies an RA wrapper: every signature verifies, and every signer is a certificate in
/// `trusted` (compared as the same certificate, byte for byte). Returns the RA and the inner
/// request, which the caller verifies as any renewal.
pub fn unwrap(
    request: &[u8],
    limits: &Limits,
    trusted: &[Retained<Certificate>],
) -> Result<Unwrapped> {
    let parsed = parse_request(request, limits)?;
    let RequestContent::Cmc(pki) = &parsed.content else {
        return Err(CmcError::InvalidInput("an RA forwards a PKIData"));
    };
    let [nested] = pki.cms_sequence.as_slice() else {
        return Err(CmcError::InvalidInput(
            "an RA wrapper carries exactly one nested request",
        ));
    };
    if !pki.req_sequence.is_empty() {
        return Err(CmcError::InvalidInput(
            "an RA wrapper carries no request of its own",
        ));
    }
    let reports = parsed.verify_signatures()?;
    let certificates: Vec<&Retained<Certificate>> =
        parsed.signed_data.x509_certificates().collect();
    let mut ra = None;
    for report in &reports {
        let signer = match report.signed_by {
            SignedBy::EmbeddedCertificate(i) => certificates.get(i).copied(),
            _ => None,
        };
        match signer {
            Some(cert) if trusted.contains(cert) => ra = Some(cert.clone()),
            _ => {
                return Err(CmcError::InvalidInput(
                    "the wrapper is signed by a certificate not trusted as an RA",
                ));
            }
        }
    }
    let ra = ra.ok_or(CmcError::NoSigners)?;
    let inner = nested.content_info.to_der().encoding("nested request")?;
    Ok(Unwrapped { ra, inner })
}
