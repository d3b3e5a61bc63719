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
use x509_cert::request::CertReq;

use super::{
    CmcError, DigestAlgorithm, Limits, Result, Retained, SignedBy, Signer,
    asn1::SetOf,
    controls::Control,
    error::DerContext,
    microsoft::CmcAddAttributes,
    oids,
    pki::{PkiData, TaggedCertificationRequest, TaggedContentInfo, TaggedRequest},
    request::sign_content,
    signed_data::Attribute,
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
    let pki = PkiData {
        control_sequence: ra_controls(transaction_id, nonce)?,
        req_sequence: Vec::new(),
        cms_sequence: vec![TaggedContentInfo {
            body_part_id: 3,
            content_info,
        }],
        other_msg_sequence: Vec::new(),
    };
    sign_as_ra(&pki, ra, ra_cert)
}

/// Body part of the request in a re-enrollment wrapper.
const REENROLL_BODY_PART: u32 = 1;

/// Wraps a user's EST simplereenroll PKCS#10 (DER) for forwarding, naming `renewed` — the
/// certificate the user authenticated with — as the certificate it renews; signed by `ra`.
pub fn wrap_reenroll(
    pkcs10: &[u8],
    renewed: &Retained<Certificate>,
    ra: &dyn Signer,
    ra_cert: &Retained<Certificate>,
    transaction_id: u64,
    nonce: &[u8],
) -> Result<Vec<u8>> {
    let request = Retained::<CertReq>::from_der(pkcs10).malformed("the PKCS#10 to forward")?;
    let mut controls = ra_controls(transaction_id, nonce)?;
    let renewal =
        Attribute::single(oids::MS_RENEWAL_CERTIFICATE, renewed).encoding("renewal certificate")?;
    controls.push(
        Control::MsAddAttributes(CmcAddAttributes {
            pki_data_reference: 0,
            cert_references: vec![REENROLL_BODY_PART],
            attributes: SetOf(vec![renewal]),
        })
        .to_tagged(3)
        .encoding("CMC add attributes")?,
    );
    let pki = PkiData {
        control_sequence: controls,
        req_sequence: vec![TaggedRequest::Tcr(TaggedCertificationRequest {
            body_part_id: REENROLL_BODY_PART,
            certification_request: request,
        })],
        cms_sequence: Vec::new(),
        other_msg_sequence: Vec::new(),
    };
    sign_as_ra(&pki, ra, ra_cert)
}

/// The RA's own transactionId and senderNonce (body parts 1 and 2).
fn ra_controls(transaction_id: u64, nonce: &[u8]) -> Result<Vec<super::pki::TaggedAttribute>> {
    Ok(vec![
        Control::TransactionId(
            der::asn1::Int::new(&transaction_id.to_be_bytes()).encoding("transactionId")?,
        )
        .to_tagged(1)
        .encoding("transactionId")?,
        Control::SenderNonce(OctetString::new(nonce.to_vec()).encoding("senderNonce")?)
            .to_tagged(2)
            .encoding("senderNonce")?,
    ])
}

/// `pki` as SignedData signed by the RA, carrying the RA certificate.
fn sign_as_ra(pki: &PkiData, ra: &dyn Signer, ra_cert: &Retained<Certificate>) -> Result<Vec<u8>> {
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
    /// What the RA forwards.
    pub forwarded: Forwarded,
    /// The RA's own transactionId, echoed in the answer to the RA.
    pub transaction_id: Option<der::asn1::Int>,
    /// The RA's senderNonce, echoed as the answer's recipientNonce.
    pub nonce: Option<Vec<u8>>,
    /// The body part the answer refers to (the forwarded request's).
    pub body_part: u32,
}

/// What an RA forwards.
#[derive(Debug)]
pub enum Forwarded {
    /// A user's signed Full PKI Request, as the RA received it (DER): the user's own old-key
    /// signature says which certificate it renews.
    Nested(Vec<u8>),
    /// A user's EST simplereenroll: the PKCS#10 (DER, its received bytes) and the certificate
    /// the RA authenticated the user with, which it renews.
    Reenroll {
        /// The user's PKCS#10.
        pkcs10: Vec<u8>,
        /// The certificate being renewed, as the RA names it.
        renewed: Box<Retained<Certificate>>,
    },
}

/// Whether `request` has the shape of an RA wrapper: a PKIData with no request of its own and
/// exactly one nested content, or a re-enrollment wrapper (one PKCS#10 and the control that
/// names the certificate it renews).
pub fn is_wrapped(request: &[u8], limits: &Limits) -> bool {
    match parse_request(request, limits).map(|p| p.content) {
        Ok(RequestContent::Cmc(pki)) => forwarded(&pki).is_ok(),
        _ => false,
    }
}

/// What a wrapper's PKIData forwards, from its shape alone (no signature checked here).
fn forwarded(pki: &PkiData) -> Result<Forwarded> {
    match (pki.req_sequence.as_slice(), pki.cms_sequence.as_slice()) {
        ([], [nested]) => Ok(Forwarded::Nested(
            nested.content_info.to_der().encoding("nested request")?,
        )),
        ([TaggedRequest::Tcr(tcr)], []) => Ok(Forwarded::Reenroll {
            pkcs10: tcr.certification_request.der().to_vec(),
            renewed: Box::new(renewed_certificate(pki, tcr.body_part_id)?),
        }),
        _ => Err(CmcError::InvalidInput(
            "an RA wrapper carries exactly one nested request, or exactly one PKCS#10",
        )),
    }
}

/// The certificate a re-enrollment wrapper renews: the one `szOID_RENEWAL_CERTIFICATE`
/// attribute of the one `szOID_CMC_ADD_ATTRIBUTES` control, bound to `body_part` of this
/// PKIData. Anything else (none, two, another reference) is refused: the CA must never guess.
fn renewed_certificate(pki: &PkiData, body_part: u32) -> Result<Retained<Certificate>> {
    let mut named = Vec::new();
    for attr in &pki.control_sequence {
        if attr.attr_type != oids::MS_CMC_ADD_ATTRIBUTES {
            continue;
        }
        let Ok(Control::MsAddAttributes(add)) = Control::from_tagged(attr) else {
            return Err(CmcError::InvalidInput(
                "a malformed CMC add-attributes control",
            ));
        };
        if add.pki_data_reference != 0 || add.cert_references != [body_part] {
            return Err(CmcError::InvalidInput(
                "the renewal certificate is not bound to the forwarded request",
            ));
        }
        for a in add.attributes.iter() {
            if a.oid == oids::MS_RENEWAL_CERTIFICATE {
                let [value] = a.values.0.as_slice() else {
                    return Err(CmcError::InvalidInput(
                        "the renewal certificate attribute has not exactly one value",
                    ));
                };
                let der = value.to_der().encoding("renewal certificate")?;
                named.push(
                    Retained::<Certificate>::from_der(&der).malformed("renewal certificate")?,
                );
            }
        }
    }
    match <[_; 1]>::try_from(named) {
        Ok([cert]) => Ok(cert),
        Err(_) => Err(CmcError::InvalidInput(
            "a re-enrollment wrapper names exactly one renewal certificate",
        )),
    }
}

/// Verifies an RA wrapper: every signer's signature verifies, and every signer is a
/// certificate in `trusted` (compared as the same certificate, byte for byte). Returns the RA
/// and what it forwards, which the caller verifies as any renewal: the nested request's
/// signatures, or the re-enrollment PKCS#10's proof of possession, are not checked here.
pub fn unwrap(
    request: &[u8],
    limits: &Limits,
    trusted: &[Retained<Certificate>],
) -> Result<Unwrapped> {
    let parsed = parse_request(request, limits)?;
    let RequestContent::Cmc(pki) = &parsed.content else {
        return Err(CmcError::InvalidInput("an RA forwards a PKIData"));
    };
    let forwarded = forwarded(pki)?;
    let reports = parsed.verify_signers()?;
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
    let (mut transaction_id, mut nonce) = (None, None);
    for attr in &pki.control_sequence {
        match Control::from_tagged(attr) {
            Ok(Control::TransactionId(t)) => transaction_id = Some(t),
            Ok(Control::SenderNonce(n)) => nonce = Some(n.as_bytes().to_vec()),
            _ => {}
        }
    }
    let body_part = match (pki.req_sequence.as_slice(), pki.cms_sequence.as_slice()) {
        ([TaggedRequest::Tcr(tcr)], _) => tcr.body_part_id,
        (_, [nested]) => nested.body_part_id,
        _ => 1,
    };
    Ok(Unwrapped {
        ra,
        forwarded,
        transaction_id,
        nonce,
        body_part,
    })
}
