//! Building a CA's answers in a key update: `kup` (issued, refused or waiting), `pollRep`,
//! `pkiConf`, `genp` and `error`, each protected by the CA's signature with its chain in `extraCerts`
//! and a header that answers the request's (RFC 4210 §5.1.1, RFC 9483 §3.1: the same
//! transactionID, the request's senderNonce as recipNonce, a fresh senderNonce).

use std::time::SystemTime;

use der::{
    Encode,
    asn1::{BitString, GeneralizedTime, Null, OctetString},
};
use x509_cert::{Certificate, ext::pkix::name::GeneralName, name::Name};

use super::{
    CertRepMessage, CertResponse, DerContext, ID_IT_IMPLICIT_CONFIRM, InfoTypeAndValue, PkiHeader,
    PkiStatus, PkiStatusInfo, PollRep, Result,
    body::CertifiedKeyPair,
    build::{BuildError, identifier, protect, sequence, subject_key_id, tagged},
};
use crate::cmc::{Retained, Signer};

/// `PKIFailureInfo` bits (RFC 4210 §5.2.3) an answer sets, by bit number.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u8)]
pub enum FailureBit {
    /// Unrecognized or unsupported algorithm.
    BadAlg = 0,
    /// Integrity check (protection) failed.
    BadMessageCheck = 1,
    /// Transaction not permitted or supported.
    BadRequest = 2,
    /// messageTime not sufficiently close to the system time.
    BadTime = 3,
    /// No certificate could be found matching the criteria.
    BadCertId = 4,
    /// The data submitted has the wrong format.
    BadDataFormat = 5,
    /// The authority indicated in the request is different from this one.
    WrongAuthority = 6,
    /// The requester's data is incorrect.
    IncorrectData = 7,
    /// The proof of possession failed.
    BadPop = 9,
    /// The certificate has already been revoked.
    CertRevoked = 10,
    /// The certificate has already been confirmed.
    CertConfirmed = 11,
    /// The recipNonce is not the one expected.
    BadRecipientNonce = 13,
    /// Policy not accepted.
    UnacceptedPolicy = 15,
    /// An extension the CA does not accept.
    UnacceptedExtension = 16,
    /// The senderNonce is missing or was seen before.
    BadSenderNonce = 18,
    /// The certificate template is not acceptable.
    BadCertTemplate = 19,
    /// The signer is not trusted.
    SignerNotTrusted = 20,
    /// The transactionID is in use already.
    TransactionIdInUse = 21,
    /// Not authorized.
    NotAuthorized = 23,
    /// The system is not available.
    SystemUnavail = 24,
    /// The request cannot be handled due to a system failure.
    SystemFailure = 25,
    /// The certificate was requested before (a duplicate).
    DuplicateCertReq = 26,
}

impl PkiStatusInfo {
    /// A status with optional failure bit and text.
    pub fn new(status: PkiStatus, failure: Option<FailureBit>, text: Option<&str>) -> Result<Self> {
        let status = match status {
            PkiStatus::Accepted => 0,
            PkiStatus::GrantedWithMods => 1,
            PkiStatus::Rejection => 2,
            PkiStatus::Waiting => 3,
            PkiStatus::RevocationWarning => 4,
            PkiStatus::RevocationNotification => 5,
            PkiStatus::KeyUpdateWarning => 6,
            PkiStatus::Unknown(v) => v,
        };
        let fail_info = failure
            .map(|bit| {
                // A named BIT STRING in DER ends at its last set bit (X.690 §11.2.2).
                let n = bit as usize;
                let mut bytes = vec![0u8; n / 8 + 1];
                bytes[n / 8] = 0x80 >> (n % 8);
                BitString::new(u8::try_from(7 - n % 8).unwrap_or(0), bytes)
                    .malformed("PKIFailureInfo")
            })
            .transpose()?;
        Ok(Self {
            status,
            status_string: text.map(|t| vec![t.to_string()]),
            fail_info,
        })
    }
}

/// Who answers, and what it answers.
pub struct Responder<'a> {
    /// The CA's certificate (its subject is the header's sender, its key signs).
    pub cert: &'a Retained<Certificate>,
    /// The certificates the client needs to verify the protection (the CA's first).
    pub extra_certs: &'a [Retained<Certificate>],
    /// The header of the message answered.
    pub request: &'a PkiHeader,
    /// This answer's nonce: fresh, at least 128 random bits (RFC 9483 §3.1); a responder
    /// may bind it to its transaction so that it can tell the client's next message answers
    /// one of its own.
    pub sender_nonce: &'a [u8],
    /// When the answer is made.
    pub time: SystemTime,
}

/// What the CA answers.
pub enum Answer<'a> {
    /// `kup` (or `ip`/`cp`: `body_tag` 1/3/8) for request `cert_req_id`: the status and, when
    /// issued, the certificate; `implicit_confirm` grants the client's request to skip
    /// `certConf`.
    CertRep {
        /// 1 (`ip`), 3 (`cp`) or 8 (`kup`).
        body_tag: u8,
        /// The request answered.
        cert_req_id: i64,
        /// accepted, rejection or waiting.
        status: PkiStatusInfo,
        /// The issued certificate.
        issued: Option<&'a Retained<Certificate>>,
        /// Whether the answer grants implicit confirmation.
        implicit_confirm: bool,
    },
    /// `pollRep`: not decided yet, ask again after `check_after` seconds.
    PollRep {
        /// The request polled for.
        cert_req_id: i64,
        /// Seconds.
        check_after: i64,
    },
    /// `pkiConf`: the confirmation is acknowledged.
    PkiConf,
    /// `error`.
    Error(PkiStatusInfo),
    /// `genp`: the answers to a general message's questions (e.g. `caCerts`).
    Genp(&'a [InfoTypeAndValue]),
}

/// The signed answer.
pub fn respond(
    responder: &Responder<'_>,
    answer: &Answer<'_>,
    signer: &dyn Signer,
) -> std::result::Result<Vec<u8>, BuildError> {
    let mut implicit = false;
    let body = match answer {
        Answer::CertRep {
            body_tag,
            cert_req_id,
            status,
            issued,
            implicit_confirm,
        } => {
            implicit = *implicit_confirm && issued.is_some();
            let certified_key_pair = issued
                .map(|cert| {
                    der::asn1::Any::new(
                        der::Tag::ContextSpecific {
                            constructed: true,
                            number: der::TagNumber(0),
                        },
                        cert.der(),
                    )
                    .map(|raw| CertifiedKeyPair {
                        cert_or_enc_cert_raw: raw,
                        private_key: None,
                        publication_info: None,
                    })
                    .malformed("CertifiedKeyPair")
                })
                .transpose()?;
            let rep = CertRepMessage {
                ca_pubs: None,
                response: vec![CertResponse {
                    cert_req_id: *cert_req_id,
                    status: status.clone(),
                    certified_key_pair,
                    rsp_info: None,
                }],
            };
            tagged(*body_tag, &rep.to_der().malformed("CertRepMessage")?, "kup")?
        }
        Answer::PollRep {
            cert_req_id,
            check_after,
        } => {
            let rep = PollRep {
                cert_req_id: *cert_req_id,
                check_after: *check_after,
                reason: None,
            };
            let rep = rep.to_der().malformed("PollRepContent")?;
            tagged(26, &sequence(&[&rep], "PollRepContent")?, "pollRep")?
        }
        Answer::PkiConf => tagged(19, &Null.to_der().malformed("pkiconf")?, "pkiconf")?,
        Answer::Genp(infos) => {
            let encoded = infos
                .iter()
                .map(|i| i.to_der().malformed("InfoTypeAndValue"))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            tagged(22, &sequence(&refs, "GenRepContent")?, "genp")?
        }
        Answer::Error(status) => {
            let content = sequence(&[&status.to_der().malformed("ErrorMsgContent")?], "error")?;
            tagged(23, &content, "error")?
        }
    };
    let header = header(responder, signer, implicit)?;
    protect(&header, &body, signer, responder.extra_certs)
}

/// The answer's header: the CA as sender, the requester as recipient.
fn header(responder: &Responder<'_>, signer: &dyn Signer, implicit: bool) -> Result<PkiHeader> {
    let request = responder.request;
    let ca = responder.cert.value();
    Ok(PkiHeader {
        // RFC 9480 §2.20: answer in the version the client spoke, as far as this CA speaks it.
        pvno: request.pvno.clamp(2, 3),
        sender: GeneralName::DirectoryName(ca.tbs_certificate().subject().clone()),
        recipient: match &request.sender {
            GeneralName::DirectoryName(name) => GeneralName::DirectoryName(name.clone()),
            _ => GeneralName::DirectoryName(Name::default()),
        },
        message_time: Some(
            GeneralizedTime::from_system_time(responder.time).malformed("messageTime")?,
        ),
        protection_alg: Some(identifier(signer)?),
        sender_kid: Some(
            OctetString::new(subject_key_id(ca, signer.public_key())).malformed("senderKID")?,
        ),
        recip_kid: request.sender_kid.clone(),
        transaction_id: request.transaction_id.clone(),
        sender_nonce: Some(OctetString::new(responder.sender_nonce).malformed("senderNonce")?),
        recip_nonce: request.sender_nonce.clone(),
        free_text: None,
        general_info: implicit.then(|| {
            vec![InfoTypeAndValue {
                info_type: ID_IT_IMPLICIT_CONFIRM,
                info_value: Some(der::asn1::Any::from(Null)),
            }]
        }),
    })
}
