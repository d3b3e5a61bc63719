//! How a desk answers in CMP, whoever decides (the simulated CA, the gateway as RA): the reply
//! type the HTTP front end sends, the signed answers (`kup` refusals, `error`, anything built by
//! [`renewal_codec::cmp::answer`]) and what both desks read the same way — a transaction's
//! ledger name, whether a stored kur asks for the same key, the answers to a `genm`.

use std::time::SystemTime;

use renewal_codec::{
    cmc::{Limits, Retained, Signer, verify_request::hex},
    cmp::{
        PkiBody, PkiHeader, PkiMessage, PkiStatus, PkiStatusInfo,
        answer::{Answer as CmpAnswer, FailureBit, Responder, respond},
    },
};
use x509_cert::{Certificate, ext::pkix::name::GeneralName, name::Name};

use crate::{policy::Rejection, scenario::TransportFault};

/// The answer to a CMP message: a PKIMessage, whatever it says (RFC 6712 §3.3: HTTP 200).
#[derive(Debug)]
pub struct CmpReply {
    /// DER of the signed PKIMessage (empty when `upstream` says why there is none).
    pub body: Vec<u8>,
    /// What it says, for the log (`issued`, `pending`, `refused: badPOP`, `confirmed`...).
    pub outcome: String,
    /// A fault for the transport to apply.
    pub fault: Option<TransportFault>,
    /// No decision: the state database could not take one (HTTP 503).
    pub upstream: Option<crate::error::UpstreamFailure>,
}

impl CmpReply {
    /// No decision: the HTTP answer says why.
    pub fn unavailable(failure: crate::error::UpstreamFailure) -> Self {
        Self {
            body: Vec::new(),
            outcome: format!("unavailable: {}", failure.text),
            fault: None,
            upstream: Some(failure),
        }
    }
}

/// Who answers: the certificate whose key protects the answers, what goes with it in
/// extraCerts (that certificate first), the key, and the time.
pub(crate) struct Answerer<'a> {
    /// The protecting certificate (its subject is the answers' sender).
    pub(crate) cert: &'a Retained<Certificate>,
    /// extraCerts: `cert`, then what the client needs to verify it and what it was issued.
    pub(crate) extra_certs: &'a [Retained<Certificate>],
    /// The key that signs.
    pub(crate) key: &'a dyn Signer,
    /// The answers' messageTime.
    pub(crate) time: SystemTime,
    /// The answers' senderNonce: one bound to the transaction ([`crate::cmp_nonce`]) or passed
    /// on from the upstream, when the client's next message must answer it; fresh otherwise.
    pub(crate) sender_nonce: Option<&'a [u8]>,
}

impl Answerer<'_> {
    /// The answer to a message with `header` (the same transaction, its nonce back, our
    /// nonce), signed.
    pub(crate) fn sign(
        &self,
        header: &PkiHeader,
        answer: &CmpAnswer<'_>,
        outcome: &str,
    ) -> CmpReply {
        let fresh;
        let sender_nonce = match self.sender_nonce {
            Some(nonce) => nonce,
            None => {
                fresh = fresh_nonce();
                &fresh
            }
        };
        let responder = Responder {
            cert: self.cert,
            extra_certs: self.extra_certs,
            request: header,
            sender_nonce,
            time: self.time,
        };
        let body = respond(&responder, answer, self.key).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not sign a CMP answer");
            Vec::new()
        });
        CmpReply {
            body,
            outcome: outcome.to_string(),
            fault: None,
            upstream: None,
        }
    }

    /// `kup` refusing request `id` with `rejection`'s failure bit and status string.
    pub(crate) fn refusal(&self, header: &PkiHeader, id: i64, rejection: &Rejection) -> CmpReply {
        let bit = rejection.cmp_failure();
        match PkiStatusInfo::new(
            PkiStatus::Rejection,
            Some(bit),
            Some(&rejection.status_string()),
        ) {
            Ok(status) => self.sign(
                header,
                &CmpAnswer::CertRep {
                    body_tag: 8,
                    cert_req_id: id,
                    status,
                    issued: None,
                    implicit_confirm: false,
                },
                &format!("refused: {bit:?}"),
            ),
            Err(_) => self.error(header, rejection),
        }
    }

    /// `error` for `rejection`.
    pub(crate) fn error(&self, header: &PkiHeader, rejection: &Rejection) -> CmpReply {
        self.failure(header, rejection.cmp_failure(), &rejection.status_string())
    }

    /// `error` with failure `bit` and `text`.
    pub(crate) fn failure(&self, header: &PkiHeader, bit: FailureBit, text: &str) -> CmpReply {
        let status = PkiStatusInfo::new(PkiStatus::Rejection, Some(bit), Some(text))
            .unwrap_or_else(|_| accepted_status());
        self.sign(
            header,
            &CmpAnswer::Error(status),
            &format!("refused: {bit:?}"),
        )
    }
}

/// The answers to a general message (`genm`): `caCerts` gets `ca_certs` (RFC 9483 §4.3.1);
/// questions this CA does not know are left out of the `genp` (RFC 4210 §5.3.19 lets a receiver
/// ignore them). CA certificates are public, so anyone may ask; but a message that carries a
/// protection must carry one that verifies with its first extraCerts certificate.
pub(crate) fn general_answers(
    message: &PkiMessage,
    ca_certs: &[Retained<Certificate>],
) -> Result<Vec<renewal_codec::cmp::InfoTypeAndValue>, Rejection> {
    let PkiBody::Genm(questions) = &message.body else {
        return Err(Rejection::Malformed("not a general message".into()));
    };
    if message.protection.is_some() {
        let signer = message
            .protecting_certificate()
            .ok_or(Rejection::BadRenewalCertificate(
                "no protecting certificate in extraCerts",
            ))?;
        message
            .verify_protection(signer.value())
            .map_err(|e| Rejection::BadSignature(e.to_string()))?;
    }
    questions
        .iter()
        .filter(|q| q.info_type == renewal_codec::cmp::ID_IT_CA_CERTS)
        .map(|_| {
            renewal_codec::cmp::InfoTypeAndValue::ca_certs(ca_certs)
                .map_err(|e| Rejection::Internal(e.to_string()))
        })
        .collect()
}

/// Whether the stored kur `stored` asks for the same new key `spki` (the same request,
/// polled or re-sent).
pub(crate) fn same_kur_key(
    stored: &[u8],
    spki: &spki::SubjectPublicKeyInfoOwned,
    limits: &Limits,
) -> bool {
    PkiMessage::parse(stored, limits).is_ok_and(|stored| match &stored.body {
        PkiBody::Kur(r) => {
            r.first()
                .and_then(|r| r.cert_req.cert_template.public_key.as_ref())
                == Some(spki)
        }
        _ => false,
    })
}

/// The ledger's name of a CMP transaction (pending key and claimed transaction alike).
pub(crate) fn cmp_transaction(header: &PkiHeader) -> String {
    let id = header
        .transaction_id
        .as_ref()
        .map_or_else(String::new, |t| hex(t.as_bytes()));
    format!("cmp:{id}")
}

/// The header answered when the message could not be read: no transaction, no nonce.
pub(crate) fn unreadable_header() -> PkiHeader {
    PkiHeader {
        pvno: 2,
        sender: GeneralName::DirectoryName(Name::default()),
        recipient: GeneralName::DirectoryName(Name::default()),
        message_time: None,
        protection_alg: None,
        sender_kid: None,
        recip_kid: None,
        transaction_id: None,
        sender_nonce: None,
        recip_nonce: None,
        free_text: None,
        general_info: None,
    }
}

pub(crate) fn accepted_status() -> PkiStatusInfo {
    PkiStatusInfo {
        status: 0,
        status_string: None,
        fail_info: None,
    }
}

pub(crate) fn fresh_nonce() -> [u8; 16] {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut nonce = [0u8; 16];
    // The system's generator does not fail on Linux; a zero nonce would only weaken the
    // client's replay check, never ours.
    let _ = SystemRandom::new().fill(&mut nonce);
    nonce
}
