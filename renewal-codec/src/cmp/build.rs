//! Building the client's messages of a key update: the `kur` (its request proven by the new
//! key, the whole message protected by the old one) and the `certConf` that accepts or rejects
//! what came back. Both keys sign through [`Signer`], so a smart card signs them as it signs a
//! CMC request.

use std::time::SystemTime;

use der::{
    Encode, Sequence,
    asn1::{AnyRef, BitString, GeneralizedTime, OctetString},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{Certificate, ext::pkix::name::GeneralName, name::Name};

use super::{
    CmpError, DerContext, ID_IT_IMPLICIT_CONFIRM, ID_REG_CTRL_OLD_CERT_ID, InfoTypeAndValue,
    PkiHeader, PkiStatusInfo, Result,
    crmf::{AttributeTypeAndValue, CertId, CertRequest, CertTemplate},
};
use crate::cmc::{
    DigestAlgorithm, Retained, SignError, Signer, crypto::key_identifier,
    oids::SUBJECT_KEY_IDENTIFIER,
};

/// What a key update request says.
#[derive(Clone, Debug)]
pub struct KeyUpdate<'a> {
    /// The certificate being renewed (it protects the message and goes first in extraCerts).
    pub old: &'a Retained<Certificate>,
    /// The CA's name (the header's recipient).
    pub recipient: Name,
    /// The exchange's transaction (RFC 9483 §3.1: 128 random bits).
    pub transaction_id: [u8; 16],
    /// This message's nonce (128 random bits).
    pub sender_nonce: [u8; 16],
    /// When the message is made.
    pub time: SystemTime,
    /// Ask the CA to skip certConf.
    pub implicit_confirm: bool,
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A key refused to sign (a card's PIN, a pulled card...).
    #[error("signing failed: {0}")]
    Sign(#[from] SignError),
    /// An encoding failed.
    #[error(transparent)]
    Encoding(#[from] CmpError),
}

/// `kur` for `new`'s key under the old certificate's subject: `certReqId` 0, the `oldCertID`
/// control, a proof of possession signed by `new` over the DER of the `CertRequest`, the whole
/// protected by `old` (signature protection, RFC 4210 §5.1.3.3) with the old certificate in
/// `extraCerts`.
pub fn key_update_request(
    params: &KeyUpdate<'_>,
    old: &dyn Signer,
    new: &dyn Signer,
) -> std::result::Result<Vec<u8>, BuildError> {
    let tbs = params.old.value().tbs_certificate();
    let cert_req = CertRequest {
        cert_req_id: 0,
        cert_template: CertTemplate {
            subject: Some(tbs.subject().clone()),
            public_key: Some(new.public_key().clone()),
            ..CertTemplate::default()
        },
        controls: Some(vec![AttributeTypeAndValue {
            kind: ID_REG_CTRL_OLD_CERT_ID,
            value: der::asn1::Any::encode_from(&CertId {
                issuer: GeneralName::DirectoryName(tbs.issuer().clone()),
                serial_number: der::asn1::Int::new(tbs.serial_number().as_bytes())
                    .malformed("oldCertID")?,
            })
            .malformed("oldCertID")?,
        }]),
    };
    let cert_req_der = cert_req.to_der().malformed("CertRequest")?;
    let pop = PopoSigningKeyOut {
        algorithm_identifier: identifier(new)?,
        signature: BitString::from_bytes(&new.sign(&cert_req_der)?).malformed("POP")?,
    };
    // CertReqMsg ::= SEQUENCE { certReq, popo [1] IMPLICIT POPOSigningKey }.
    let pop_der = pop.to_der().malformed("POPOSigningKey")?;
    let pop_any = AnyRef::from_der(&pop_der).malformed("POPOSigningKey")?;
    let popo = tagged(1, pop_any.value(), "popo")?;
    let cert_req_msg = sequence(&[&cert_req_der, &popo], "CertReqMsg")?;
    let body = tagged(7, &sequence(&[&cert_req_msg], "CertReqMessages")?, "kur")?;
    let header = PkiHeader {
        pvno: 2,
        sender: GeneralName::DirectoryName(tbs.subject().clone()),
        recipient: GeneralName::DirectoryName(params.recipient.clone()),
        message_time: Some(
            GeneralizedTime::from_system_time(params.time).malformed("messageTime")?,
        ),
        protection_alg: Some(identifier(old)?),
        sender_kid: Some(
            OctetString::new(subject_key_id(params.old.value(), old.public_key()))
                .malformed("senderKID")?,
        ),
        recip_kid: None,
        transaction_id: Some(OctetString::new(params.transaction_id).malformed("tid")?),
        sender_nonce: Some(OctetString::new(params.sender_nonce).malformed("nonce")?),
        recip_nonce: None,
        free_text: None,
        general_info: params.implicit_confirm.then(|| {
            vec![InfoTypeAndValue {
                info_type: ID_IT_IMPLICIT_CONFIRM,
                info_value: Some(der::asn1::Any::from(der::asn1::Null)),
            }]
        }),
    };
    protect(&header, &body, old, std::slice::from_ref(params.old))
}

/// `certConf` for the certificate issued in answer to request 0: accepted (`rejection: None`)
/// or rejected with the status the client reports. The hash is SHA-256 (the certificate's
/// signature hash for every algorithm this project issues with).
pub fn cert_confirm(
    header: &PkiHeader,
    issued: &Retained<Certificate>,
    rejection: Option<&PkiStatusInfo>,
    old: &dyn Signer,
    old_cert: &Retained<Certificate>,
) -> std::result::Result<Vec<u8>, BuildError> {
    let hash = DigestAlgorithm::Sha256.digest(issued.der());
    let mut fields = vec![
        OctetString::new(hash)
            .malformed("certHash")?
            .to_der()
            .malformed("certHash")?,
        0u8.to_der().malformed("certReqId")?,
    ];
    if let Some(status) = rejection {
        fields.push(status.to_der().malformed("statusInfo")?);
    }
    let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let status = sequence(&refs, "CertStatus")?;
    let body = tagged(24, &sequence(&[&status], "CertConfirmContent")?, "certConf")?;
    protect(header, &body, old, std::slice::from_ref(old_cert))
}

/// The header of the client's next message in an exchange (`certConf`, `pollReq`): the
/// request's, with a fresh nonce, the time, the CA's nonce as recipNonce and no `generalInfo`
/// (RFC 9483 §3.1: the transaction stays, nonces chain).
pub fn next_header(
    request: &PkiHeader,
    answer: &PkiHeader,
    sender_nonce: [u8; 16],
    time: SystemTime,
) -> Result<PkiHeader> {
    let mut header = request.clone();
    header.message_time = Some(GeneralizedTime::from_system_time(time).malformed("messageTime")?);
    header.sender_nonce = Some(OctetString::new(sender_nonce).malformed("senderNonce")?);
    header.recip_nonce = answer.sender_nonce.clone();
    header.general_info = None;
    Ok(header)
}

/// `pollReq` for request 0, protected by `old`.
pub fn poll_request(
    header: &PkiHeader,
    old: &dyn Signer,
    old_cert: &Retained<Certificate>,
) -> std::result::Result<Vec<u8>, BuildError> {
    let entry = sequence(&[&0u8.to_der().malformed("certReqId")?], "PollReq")?;
    let body = tagged(25, &sequence(&[&entry], "PollReqContent")?, "pollReq")?;
    protect(header, &body, old, std::slice::from_ref(old_cert))
}

/// A general message (`genm`, RFC 4210 §5.3.19) asking `questions` (e.g. `caCerts` without a
/// value, RFC 9483 §4.3.1) in a fresh transaction, protected by `signer` with `cert` in
/// extraCerts (RFC 9483 §3.2: signature-protected like every request).
pub fn general_message(
    cert: &Retained<Certificate>,
    recipient: Name,
    questions: &[InfoTypeAndValue],
    transaction_id: [u8; 16],
    sender_nonce: [u8; 16],
    time: SystemTime,
    signer: &dyn Signer,
) -> std::result::Result<Vec<u8>, BuildError> {
    let encoded = questions
        .iter()
        .map(|q| q.to_der().malformed("InfoTypeAndValue"))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let body = tagged(21, &sequence(&refs, "GenMsgContent")?, "genm")?;
    let tbs = cert.value().tbs_certificate();
    let header = PkiHeader {
        pvno: 2,
        sender: GeneralName::DirectoryName(tbs.subject().clone()),
        recipient: GeneralName::DirectoryName(recipient),
        message_time: Some(GeneralizedTime::from_system_time(time).malformed("messageTime")?),
        protection_alg: Some(identifier(signer)?),
        sender_kid: Some(
            OctetString::new(subject_key_id(cert.value(), signer.public_key()))
                .malformed("senderKID")?,
        ),
        recip_kid: None,
        transaction_id: Some(OctetString::new(transaction_id).malformed("tid")?),
        sender_nonce: Some(OctetString::new(sender_nonce).malformed("nonce")?),
        recip_nonce: None,
        free_text: None,
        general_info: None,
    };
    protect(&header, &body, signer, std::slice::from_ref(cert))
}

/// What an RA says when it forwards a message under its own protection.
#[derive(Clone, Debug)]
pub struct Nesting<'a> {
    /// The RA's certificate, then its chain (the first protects the nested message).
    pub chain: &'a [Retained<Certificate>],
    /// This message's nonce (128 random bits).
    pub sender_nonce: [u8; 16],
    /// When the message is made.
    pub time: SystemTime,
}

/// The RA's `nested` message around `inner` (a PKIMessage, DER, unchanged), protected by
/// `signer` (RFC 9483 §5.2.2.1): the header keeps the inner message's recipient and
/// transactionID, names the RA as sender and carries the RA's own nonce; the inner message's
/// protection stays the end entity's, so the CA checks both who asks and who vouches.
pub fn nest(
    inner: &[u8],
    inner_header: &PkiHeader,
    nesting: &Nesting<'_>,
    signer: &dyn Signer,
) -> std::result::Result<Vec<u8>, BuildError> {
    let ra = nesting
        .chain
        .first()
        .ok_or(CmpError::Unprotected)?
        .value()
        .tbs_certificate();
    let header = PkiHeader {
        pvno: inner_header.pvno,
        sender: GeneralName::DirectoryName(ra.subject().clone()),
        recipient: inner_header.recipient.clone(),
        message_time: Some(
            GeneralizedTime::from_system_time(nesting.time).malformed("messageTime")?,
        ),
        protection_alg: Some(identifier(signer)?),
        sender_kid: Some(
            OctetString::new(subject_key_id(
                nesting.chain[0].value(),
                signer.public_key(),
            ))
            .malformed("senderKID")?,
        ),
        recip_kid: inner_header.recip_kid.clone(),
        transaction_id: inner_header.transaction_id.clone(),
        sender_nonce: Some(OctetString::new(nesting.sender_nonce).malformed("senderNonce")?),
        recip_nonce: None,
        free_text: None,
        general_info: None,
    };
    let body = tagged(20, &sequence(&[inner], "NestedMessageContent")?, "nested")?;
    protect(&header, &body, signer, nesting.chain)
}

/// Signs `SEQUENCE { header, body }` with `signer` and assembles the message.
pub fn protect(
    header: &PkiHeader,
    body: &[u8],
    signer: &dyn Signer,
    extra_certs: &[Retained<Certificate>],
) -> std::result::Result<Vec<u8>, BuildError> {
    let header = header.to_der().malformed("PKIHeader")?;
    let protected = sequence(&[&header, body], "ProtectedPart")?;
    let signature = signer.sign(&protected)?;
    let protection = tagged(
        0,
        &BitString::from_bytes(&signature)
            .malformed("protection")?
            .to_der()
            .malformed("protection")?,
        "protection",
    )?;
    let mut parts: Vec<&[u8]> = vec![&header, body, &protection];
    let extra;
    if !extra_certs.is_empty() {
        let certs: Vec<&[u8]> = extra_certs.iter().map(Retained::der).collect();
        extra = tagged(1, &sequence(&certs, "extraCerts")?, "extraCerts")?;
        parts.push(&extra);
    }
    Ok(sequence(&parts, "PKIMessage")?)
}

/// `POPOSigningKey` without `poposkInput`, for encoding.
#[derive(Sequence)]
struct PopoSigningKeyOut {
    algorithm_identifier: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// The signer's algorithm as X.509 names it (parameters absent for ECDSA, NULL for RSA).
pub(super) fn identifier(signer: &dyn Signer) -> Result<AlgorithmIdentifierOwned> {
    signer
        .algorithm()
        .x509_identifier()
        .malformed("AlgorithmIdentifier")
}

/// The old certificate's subjectKeyIdentifier, or the key identifier of its key (RFC 5280
/// §4.2.1.2 method 1) when it has none: what the header's senderKID names.
pub(super) fn subject_key_id(cert: &Certificate, key: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .find(|e| e.extn_id == SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
        .map(|o| o.as_bytes().to_vec())
        .unwrap_or_else(|| key_identifier(key))
}

/// `SEQUENCE { parts... }` from encoded parts.
pub(super) fn sequence(parts: &[&[u8]], what: &'static str) -> Result<Vec<u8>> {
    wrap(der::Tag::Sequence, &parts.concat(), what)
}

/// `[number]` constructed around `content` (EXPLICIT around one encoding, or IMPLICIT around
/// a SEQUENCE's contents).
pub(super) fn tagged(number: u8, content: &[u8], what: &'static str) -> Result<Vec<u8>> {
    wrap(
        der::Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(number.into()),
        },
        content,
        what,
    )
}

fn wrap(tag: der::Tag, content: &[u8], what: &'static str) -> Result<Vec<u8>> {
    AnyRef::new(tag, content)
        .and_then(|a| a.to_der())
        .malformed(what)
}

use der::Decode as _;
