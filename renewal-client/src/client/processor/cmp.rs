//! CMP as the renewal speaks it (RFC 4210, the lightweight profile of RFC 9483): the key update
//! request the card signs twice (proof of possession with the new key, protection with the old),
//! the answers read only once their protection, transaction and nonce check out, and the
//! client's follow-ups — `pollReq` while the CA waits, `certConf` once the certificate passed
//! the client's checks (or failed them). Every message the client sends is protected by the
//! old key on the card, inside the session's one login.

use std::time::SystemTime;

use x509_cert::Certificate;

use crate::{
    cmc::{Outcome, ParsedResponse, Retained, SignError, Signer, status::CmcFailInfo},
    cmp::{
        PkiBody, PkiHeader, PkiMessage, PkiStatus, PkiStatusInfo,
        answer::FailureBit,
        build::{
            BuildError, KeyUpdate, cert_confirm, key_update_request, next_header, poll_request,
        },
    },
    x509::{may_sign_cmc_responses, verify_issued_by},
};

/// Seconds to wait when a `kup` says "waiting" (it carries no time; a `pollRep` does).
const DEFAULT_CHECK_AFTER: u64 = 5;

/// What a CMP answer says, once it is known to come from the CA and to answer us.
#[derive(Debug)]
pub(super) enum Answer {
    /// Issued: the certificate (first) and the CA's; whether confirmation was waived.
    Issued {
        response: Box<ParsedResponse>,
        implicit: bool,
    },
    /// Not decided yet: poll after this many seconds.
    Waiting { check_after: u64 },
    /// Refused, with the CMP failure mapped to its CMC counterpart and named in the text.
    Refused {
        fail_info: Option<CmcFailInfo>,
        text: String,
    },
    /// `pkiConf`: the confirmation is acknowledged.
    Acknowledged,
}

/// 128 random bits (RFC 9483 §3.1: transactionID and nonces).
pub(super) fn random128() -> Result<[u8; 16], String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system's random generator failed".to_string())?;
    Ok(bytes)
}

fn random_for_build() -> Result<[u8; 16], BuildError> {
    random128().map_err(|detail| {
        BuildError::Sign(SignError::Backend {
            backend: "system RNG",
            detail,
        })
    })
}

/// The key update request: the new key proven by `new`, protected by `old`.
pub(super) fn key_update(
    old_cert: &Retained<Certificate>,
    old: &dyn Signer,
    new: &dyn Signer,
    implicit_confirm: bool,
) -> Result<Vec<u8>, BuildError> {
    let params = KeyUpdate {
        old: old_cert,
        recipient: old_cert.value().tbs_certificate().issuer().clone(),
        transaction_id: random_for_build()?,
        sender_nonce: random_for_build()?,
        time: SystemTime::now(),
        implicit_confirm,
    };
    key_update_request(&params, old, new)
}

/// The header of the message `sent`.
pub(super) fn header_of(sent: &[u8]) -> Result<PkiHeader, String> {
    PkiMessage::parse(sent, &crate::cmc::Limits::default())
        .map(|m| m.header)
        .map_err(|e| format!("our own CMP message does not parse: {e}"))
}

/// `pollReq` following `request` (the kur's header) after `answer` (the last answer's).
pub(super) fn poll(
    request: &PkiHeader,
    answer: Option<&PkiHeader>,
    old: &dyn Signer,
    old_cert: &Retained<Certificate>,
) -> Result<Vec<u8>, BuildError> {
    poll_request(&follow_up(request, answer)?, old, old_cert)
}

/// `certConf` accepting `issued`, or rejecting it with `rejection`.
pub(super) fn confirm(
    request: &PkiHeader,
    answer: Option<&PkiHeader>,
    issued: &Retained<Certificate>,
    rejection: Option<&str>,
    old: &dyn Signer,
    old_cert: &Retained<Certificate>,
) -> Result<Vec<u8>, BuildError> {
    let status = rejection
        .map(|why| {
            PkiStatusInfo::new(
                PkiStatus::Rejection,
                Some(FailureBit::IncorrectData),
                Some(why),
            )
        })
        .transpose()?;
    cert_confirm(
        &follow_up(request, answer)?,
        issued,
        status.as_ref(),
        old,
        old_cert,
    )
}

fn follow_up(request: &PkiHeader, answer: Option<&PkiHeader>) -> Result<PkiHeader, BuildError> {
    let nonce = random_for_build()?;
    let empty = PkiHeader {
        sender_nonce: None,
        ..request.clone()
    };
    Ok(next_header(
        request,
        answer.unwrap_or(&empty),
        nonce,
        SystemTime::now(),
    )?)
}

/// Reads an answer to the message whose header is `sent`: protected by a certificate that is a
/// trust anchor or that an anchor issued to sign for it (a CA's, an RA's — never a user's), in
/// the same transaction, carrying our nonce back. Returns the answer and its header (for the
/// next message's recipNonce).
pub(super) fn read(
    message: &[u8],
    sent: &PkiHeader,
    anchors: &[Retained<Certificate>],
) -> Result<(Answer, PkiHeader), String> {
    let message = PkiMessage::parse(message, &crate::cmc::Limits::default())
        .map_err(|e| format!("unreadable CMP answer: {e}"))?;
    let signer = message
        .protecting_certificate()
        .ok_or("the CMP answer carries no protecting certificate")?;
    let trusted = anchors.contains(signer)
        || (may_sign_cmc_responses(signer.value())
            && anchors
                .iter()
                .any(|a| verify_issued_by(signer, a.value()).is_ok()));
    if !trusted {
        return Err("the CMP answer is protected by a certificate we do not trust".into());
    }
    message
        .verify_protection(signer.value())
        .map_err(|e| format!("the CMP answer's protection: {e}"))?;
    if message.header.transaction_id != sent.transaction_id {
        return Err("the CMP answer is for another transaction".into());
    }
    if message.header.recip_nonce != sent.sender_nonce {
        return Err("the CMP answer does not carry our nonce back (a replayed answer?)".into());
    }
    let answer = match &message.body {
        PkiBody::Kup(rep) | PkiBody::Ip(rep) | PkiBody::Cp(rep) => {
            let [response] = rep.response.as_slice() else {
                return Err(format!(
                    "the CMP answer holds {} responses for our one request",
                    rep.response.len()
                ));
            };
            match response.status.status() {
                PkiStatus::Accepted | PkiStatus::GrantedWithMods => {
                    let issued = response
                        .certificate()
                        .ok_or("the CMP answer grants the request but carries no certificate")?;
                    let mut certificates = vec![issued];
                    certificates.extend(message.extra_certs.iter().cloned());
                    Answer::Issued {
                        response: Box::new(ParsedResponse::from_cmp(
                            Outcome::Issued,
                            Some(response.status.text()).filter(|t| !t.is_empty()),
                            certificates,
                        )),
                        implicit: message.header.implicit_confirm(),
                    }
                }
                PkiStatus::Waiting => Answer::Waiting {
                    check_after: DEFAULT_CHECK_AFTER,
                },
                _ => refused(&response.status),
            }
        }
        PkiBody::PollRep(reps) => Answer::Waiting {
            check_after: reps
                .first()
                .and_then(|r| u64::try_from(r.check_after).ok())
                .unwrap_or(DEFAULT_CHECK_AFTER)
                .max(1),
        },
        PkiBody::Error(error) => refused(&error.pki_status_info),
        PkiBody::PkiConf => Answer::Acknowledged,
        other => return Err(format!("the CA answered a CMP {}", other.name())),
    };
    Ok((answer, message.header))
}

/// A refusal: the first failure bit as its CMC counterpart, every bit by name in the text.
fn refused(status: &PkiStatusInfo) -> Answer {
    let failures = status.failures();
    let fail_info = failures.first().map(|name| match *name {
        "badAlg" => CmcFailInfo::BadAlg,
        "badMessageCheck" | "wrongIntegrity" => CmcFailInfo::BadMessageCheck,
        "badTime" => CmcFailInfo::BadTime,
        "badCertId" | "certRevoked" => CmcFailInfo::BadCertId,
        "badPOP" => CmcFailInfo::PopFailed,
        "unacceptedExtension" => CmcFailInfo::UnsupportedExt,
        "signerNotTrusted" | "notAuthorized" | "wrongAuthority" => CmcFailInfo::BadIdentity,
        "systemUnavail" => CmcFailInfo::TryLater,
        "systemFailure" => CmcFailInfo::InternalCaError,
        _ => CmcFailInfo::BadRequest,
    });
    let text = format!(
        "CMP {} ({}){}",
        status.status().name(),
        if failures.is_empty() {
            "no failure info".to_string()
        } else {
            failures.join(", ")
        },
        match status.text() {
            t if t.is_empty() => String::new(),
            t => format!(": {t}"),
        }
    );
    Answer::Refused { fail_info, text }
}
