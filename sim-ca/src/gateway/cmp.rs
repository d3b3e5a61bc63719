//! CMP at the gateway (RFC 4210, the lightweight profile of RFC 9483): the gateway is the RA
//! between a user's CMP client and an upstream CA that speaks CMP.
//!
//! A key update (`kur`) goes through the gateway's one path ([`Gateway::decide`]): the same
//! policy as everywhere (identity = the certificate whose key protected the message, checked
//! against the clients' CAs), the ledger's check and claim by transactionID and nonce, then the
//! user's message **unchanged inside the RA's `nested` message** (RFC 9483 §5.2.2.1), protected
//! by the RA key — so the upstream verifies both the user's protection (who renews) and the
//! RA's (who vouches). The upstream's answer is believed only when its protection is the
//! upstream CA's own, it answers our transaction and nonce, and what it issued certifies the new
//! key and is the renewal of the protecting certificate and nothing more.
//!
//! The user gets the gateway's answer, protected by the RA key (as the CMC answers are signed by
//! it): the gateway answers from its state what it decided before (a re-sent kur, a poll of a
//! collected request) without asking again. Polls and confirmations are forwarded the same way,
//! nested: a `pollReq` for a request pending upstream, a `certConf` for a certificate the
//! gateway delivered in that transaction (the upstream revokes what the user rejects or never
//! confirms; the gateway records it).

use crate::store::Endpoint;
use renewal_codec::cmp::{
    PkiBody, PkiHeader, PkiMessage, PkiStatus, PkiStatusInfo,
    answer::{Answer as CmpAnswer, FailureBit},
    build::{Nesting, nest},
};

use super::*;
use crate::{
    cmp_answer::{
        Answerer, accepted_status, cmp_transaction, fresh_nonce, general_answers, same_kur_key,
    },
    cmp_intake,
    store::ConfirmState,
};

/// How long the gateway notes a delivered certificate as waiting for its `certConf` (the
/// upstream keeps the deadline that counts).
const CONFIRM_NOTE_SECS: i64 = 300;

impl Gateway {
    /// Handles a PKIMessage from a user (`tls_cert` when the client showed one; the message's
    /// protection says who asks).
    pub fn handle_cmp(&self, body: &[u8], tls_cert: &[u8]) -> CmpReply {
        let origin = Origin::new(Endpoint::Cmp, tls_cert, body);
        let message = match cmp_intake::read(self, &origin, body) {
            Ok(m) => m,
            Err(refused) => return *refused,
        };
        match &message.body {
            PkiBody::Kur(_) => self.cmp_renew(origin, &message, &message, body, body),
            PkiBody::PollReq(_) => self.cmp_poll(origin, &message, body),
            PkiBody::CertConf(_) => self.cmp_confirm(origin, &message, body),
            // The upstream CA's certificates are configured here: answered without asking.
            PkiBody::Genm(_) => match general_answers(&message, &self.policy.upstream_cas) {
                Ok(infos) => self.cmp_sign(
                    &message.header,
                    &CmpAnswer::Genp(&infos),
                    "general message answered",
                ),
                Err(r) => cmp_intake::refuse(self, &origin, &message.header, &r),
            },
            _ => cmp_intake::unserved(self, &origin, &message, "this gateway forwards renewals"),
        }
    }

    /// Decides the key update `kur` (`kur_bytes` as received or as pending) and answers
    /// `answering` — the kur itself, or the pollReq asking for it; `forwarded` is what goes up
    /// (the same message the user sent).
    fn cmp_renew(
        &self,
        origin: Origin,
        answering: &PkiMessage,
        kur: &PkiMessage,
        kur_bytes: &[u8],
        forwarded: &[u8],
    ) -> CmpReply {
        let polled = matches!(answering.body, PkiBody::PollReq(_));
        let accepted = match cmp_intake::check_kur(self, kur) {
            Ok(a) => a,
            Err(r) => {
                self.record_refusal(&origin, None, &r);
                let fresh = Delivery {
                    implicit: false,
                    nonce: None,
                };
                return self.cmp_answer(answering, 0, GatewayAnswer::rejected(&r), fresh, polled);
            }
        };
        let origin = origin.renewing(&accepted.renewed);
        let transaction = cmp_transaction(&kur.header);
        let same_request =
            |p: &Pending| same_kur_key(&p.request, &accepted.new_spki, &self.desk.limits);
        let renewal = Renewal::key_update(
            &origin,
            &accepted,
            kur,
            kur_bytes,
            &transaction,
            &same_request,
        );
        let decided = self.decide(&renewal, |_| {
            self.exchange_cmp(
                forwarded,
                &answering.header,
                &accepted.new_key,
                accepted.renewed.value(),
            )
        });
        let answer = match decided {
            Ok(answer) => answer,
            Err(failure) => return CmpReply::unavailable(failure),
        };
        let delivery = match self.note_delivery(&origin, &transaction, &answer) {
            Ok(delivery) => delivery,
            Err(failure) => return CmpReply::unavailable(failure),
        };
        self.cmp_answer(answering, accepted.cert_req_id, answer, delivery, polled)
    }

    /// How a certificate delivered in `transaction` goes: without `certConf` or not, as the
    /// upstream granted when it answered now, from the gateway's note when the answer came from
    /// its state; and with which nonce. A certificate that waits for its confirmation is noted
    /// with the upstream's nonce, so that only a `certConf` of a transaction that delivered one
    /// is forwarded, and an answer repeated from the state carries the nonce the upstream will
    /// recognise in that `certConf`.
    fn note_delivery(
        &self,
        origin: &Origin,
        transaction: &str,
        answer: &GatewayAnswer,
    ) -> Result<Delivery, UpstreamFailure> {
        let passed_on = Delivery {
            implicit: false,
            nonce: answer.upstream_nonce.clone(),
        };
        let Some(cert) = answer.issued.as_ref() else {
            return Ok(passed_on);
        };
        let key = origin.transaction_key(transaction);
        let deadline = self.desk.clock.unix() + CONFIRM_NOTE_SECS;
        let result = self
            .decision()
            .atomically(|s| match answer.implicit_confirm {
                Some(true) => Ok(Delivery {
                    implicit: true,
                    ..passed_on
                }),
                Some(false) => {
                    let nonce = answer.upstream_nonce.as_deref();
                    s.await_confirmation(&key, &serial_text(cert.value()), deadline, nonce)?;
                    Ok(passed_on)
                }
                // Answered from the state: a note says a confirmation was asked for.
                None => Ok(match s.confirmation(&key)? {
                    Some(note) => Delivery {
                        implicit: false,
                        nonce: note.nonce,
                    },
                    None => Delivery {
                        implicit: true,
                        nonce: None,
                    },
                }),
            });
        result.map_err(|e: StoreError| UpstreamFailure {
            status: 503,
            retry_after: Some(self.policy.retry_after),
            text: format!("the gateway's state database: {e}"),
        })
    }

    /// A `pollReq`: the kur pending under this transaction (for the certificate that protected
    /// the poll), asked for again — upstream, with the user's poll nested.
    fn cmp_poll(&self, origin: Origin, poll: &PkiMessage, poll_bytes: &[u8]) -> CmpReply {
        let origin = match cmp_intake::sender(self, origin, poll) {
            Ok(origin) => origin,
            Err(refused) => return *refused,
        };
        match cmp_intake::pending_kur(self, &origin, poll) {
            Ok(Some((kur, bytes))) => self.cmp_renew(origin, poll, &kur, &bytes, poll_bytes),
            Ok(None) => cmp_intake::nothing_to_poll(self, &origin, poll),
            Err(failure) => CmpReply::unavailable(failure),
        }
    }

    /// A `certConf` for the certificate the gateway delivered in this transaction: forwarded
    /// (nested) for the upstream to confirm or revoke, recorded here as the upstream
    /// acknowledged it, and acknowledged to the user with the RA's `pkiConf`.
    fn cmp_confirm(&self, origin: Origin, message: &PkiMessage, bytes: &[u8]) -> CmpReply {
        let (origin, statuses, key) = match cmp_intake::certconf(self, origin, message) {
            Ok(read) => read,
            Err(refused) => return *refused,
        };
        let noted = self.desk.lock().confirmation(&key);
        let record = match noted {
            Ok(Some(record)) => record,
            Ok(None) => {
                let why = "certConf: no certificate of this transaction awaits confirmation";
                self.record_refusal(&origin, None, &Rejection::Malformed(why.into()));
                return self.cmp_failure(&message.header, FailureBit::BadCertId, why);
            }
            Err(e) => return CmpReply::unavailable(self.store_unavailable(&e)),
        };
        // The certificate went to the user with the upstream's nonce, noted with it: a certConf
        // that does not answer it is refused here, not forwarded — whether or not the upstream
        // would check it too.
        let recip_nonce = message.header.recip_nonce.as_ref().map(|n| n.as_bytes());
        if let Some(sent) = &record.nonce
            && recip_nonce != Some(sent.as_slice())
        {
            let why =
                "certConf: its recipNonce is not the nonce the certificate was delivered with";
            self.record_refusal(&origin, None, &Rejection::Malformed(why.into()));
            return self.cmp_failure(&message.header, FailureBit::BadRecipientNonce, why);
        }
        let accepted = statuses.iter().all(|s| s.accepted());
        let answer = self
            .forward_cmp(bytes, &message.header)
            .and_then(|der| self.read_upstream_cmp(&der, &message.header));
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                return CmpReply::unavailable(self.upstream_failed(
                    &origin,
                    None,
                    None,
                    None,
                    failure.into(),
                ));
            }
        };
        match answer.body {
            PkiBody::PkiConf => {
                let now = self.desk.clock.unix();
                let serial = Some(record.serial.as_str());
                let recorded = self.decision().atomically(|s| {
                    if record.state != ConfirmState::Waiting {
                        return Ok("confirmation repeated");
                    }
                    if accepted {
                        s.set_confirmation(&key, ConfirmState::Confirmed)?;
                        self.desk.audit(
                            s,
                            &origin,
                            None,
                            AuditOutcome::Confirmed,
                            serial,
                            None,
                            "the client confirmed the certificate (certConf; the upstream \
                             acknowledged it)"
                                .into(),
                        )?;
                        Ok("confirmed")
                    } else {
                        // The upstream revoked it; the next request with it is refused here.
                        s.revoke(&record.serial, now)?;
                        s.set_confirmation(&key, ConfirmState::Rejected)?;
                        self.desk.audit(
                            s,
                            &origin,
                            None,
                            AuditOutcome::Revoked,
                            serial,
                            None,
                            "the client rejected the certificate in certConf: revoked upstream"
                                .into(),
                        )?;
                        Ok("rejected by the client: revoked")
                    }
                });
                match recorded {
                    Ok(what) => self.cmp_sign(&message.header, &CmpAnswer::PkiConf, what),
                    Err(e) => CmpReply::unavailable(self.store_unavailable(&e)),
                }
            }
            PkiBody::Error(error) => {
                let text = format!("refused upstream: {}", error.pki_status_info.text());
                self.record_refusal(&origin, None, &Rejection::Denied(text.clone()));
                self.cmp_sign(
                    &message.header,
                    &CmpAnswer::Error(error.pki_status_info),
                    &text,
                )
            }
            other => CmpReply::unavailable(
                self.upstream_failed(
                    &origin,
                    None,
                    None,
                    None,
                    (
                        502,
                        format!("the upstream answered a certConf with {}", other.name()),
                    )
                        .into(),
                ),
            ),
        }
    }

    /// The user's message (DER, unchanged) nested under the RA's protection and sent upstream;
    /// the upstream's PKIMessage as received.
    fn forward_cmp(&self, message: &[u8], header: &PkiHeader) -> Result<Vec<u8>, (u16, String)> {
        let nesting = Nesting {
            chain: &self.ra.chain,
            sender_nonce: fresh_nonce(),
            time: self.desk.clock.now(),
        };
        let nested = nest(message, header, &nesting, &self.ra.key)
            .map_err(|e| (500, format!("nesting the message: {e}")))?;
        self.timed(|| self.upstream.cmp_message(&nested), |r| r.is_ok())
            .map_err(|failure| match failure {
                Failure::Unavailable(text) => (503, text),
                Failure::BadAnswer(text) => (502, text),
            })
    }

    /// The upstream's answer to the message with `sent` header, believed only when the
    /// upstream CA itself protected it (one of its configured certificates, nothing it merely
    /// issued), in our transaction, carrying the user's nonce back.
    fn read_upstream_cmp(&self, der: &[u8], sent: &PkiHeader) -> Result<PkiMessage, (u16, String)> {
        let message = PkiMessage::parse(der, &self.desk.limits)
            .map_err(|e| (502, format!("upstream CMP answer: {e}")))?;
        let signer = message
            .protecting_certificate()
            .filter(|c| self.policy.upstream_cas.contains(c))
            .ok_or((
                502,
                "upstream CMP answer protected by a certificate we do not trust".to_string(),
            ))?;
        message
            .verify_protection(signer.value())
            .map_err(|e| (502, format!("upstream CMP answer's protection: {e}")))?;
        if message.header.transaction_id != sent.transaction_id
            || message.header.recip_nonce != sent.sender_nonce
        {
            return Err((
                502,
                "upstream CMP answer is for another transaction or nonce".into(),
            ));
        }
        Ok(message)
    }

    /// One exchange for a renewal (a kur, or the pollReq asking for it): forwarded, read and
    /// turned into the gateway's answer — issued (the certificate checked as for CMC), pending,
    /// or refused with the upstream's own status.
    fn exchange_cmp(
        &self,
        message: &[u8],
        header: &PkiHeader,
        new_key: &PublicKey,
        renewed: &Certificate,
    ) -> Result<(GatewayAnswer, Option<u64>), NotDelivered> {
        let der = self.forward_cmp(message, header)?;
        let answer = self.read_upstream_cmp(&der, header)?;
        let pending = |secs: i64| {
            let at = self.desk.clock.now()
                + Duration::from_secs(u64::try_from(secs).unwrap_or(1).clamp(1, 3600));
            der::asn1::GeneralizedTime::from_system_time(at)
                .map(|retry_at| {
                    GatewayAnswer::upstream(
                        Outcome::Pending {
                            token: Vec::new(),
                            retry_at,
                        },
                        Some("waiting upstream".into()),
                    )
                })
                .map_err(|e| (500, e.to_string()))
        };
        let refused = |status: PkiStatusInfo| {
            let mut answer = GatewayAnswer::upstream(
                Outcome::Failed { fail_info: None },
                Some(format!("refused by the CA: {}", status.text())),
            );
            answer.cmp_status = Some(status);
            answer
        };
        let upstream_nonce = answer
            .header
            .sender_nonce
            .as_ref()
            .map(|n| n.as_bytes().to_vec());
        let mut decided = match answer.body {
            PkiBody::Kup(rep) => {
                let [response] = rep.response.as_slice() else {
                    return Err((
                        502,
                        format!(
                            "upstream kup holds {} responses for one request",
                            rep.response.len()
                        ),
                    )
                        .into());
                };
                match response.status.status() {
                    PkiStatus::Accepted | PkiStatus::GrantedWithMods => {
                        let issued = response.certificate().ok_or((
                            502,
                            "upstream kup grants but carries no certificate".into(),
                        ))?;
                        let mut certificates = vec![issued];
                        certificates.extend(answer.extra_certs.iter().cloned());
                        let cert = self.certificate_for(&certificates, new_key, renewed)?;
                        let mut decided = GatewayAnswer::issued(cert);
                        decided.implicit_confirm = Some(answer.header.implicit_confirm());
                        decided
                    }
                    PkiStatus::Waiting => pending(1)?,
                    _ => refused(response.status.clone()),
                }
            }
            PkiBody::PollRep(reps) => pending(reps.first().map_or(1, |r| r.check_after))?,
            PkiBody::Error(error) => refused(error.pki_status_info),
            other => {
                return Err((
                    502,
                    format!("the upstream answered a key update with {}", other.name()),
                )
                    .into());
            }
        };
        decided.upstream_nonce = upstream_nonce;
        Ok((decided, None))
    }

    /// The RA-protected answer to `answering`: `kup` (issued, waiting, refused) or, to a poll
    /// still waiting, `pollRep`.
    fn cmp_answer(
        &self,
        answering: &PkiMessage,
        cert_req_id: i64,
        answer: GatewayAnswer,
        delivery: Delivery,
        polled: bool,
    ) -> CmpReply {
        let nonce = delivery.nonce.as_deref();
        let sign = |answer: &CmpAnswer<'_>, what: &str| {
            self.answer_with(nonce, |a| a.sign(&answering.header, answer, what))
        };
        let rep = |status: PkiStatusInfo, issued, what: &str| {
            sign(
                &CmpAnswer::CertRep {
                    body_tag: 8,
                    cert_req_id,
                    status,
                    issued,
                    implicit_confirm: delivery.implicit,
                },
                what,
            )
        };
        let status = |s, bit, text: &str| {
            PkiStatusInfo::new(s, bit, Some(text).filter(|t| !t.is_empty()))
                .unwrap_or_else(|_| accepted_status())
        };
        match (&answer.outcome, &answer.issued) {
            (Outcome::Issued, Some(cert)) => {
                rep(status(PkiStatus::Accepted, None, ""), Some(cert), "issued")
            }
            (Outcome::Pending { .. }, _) if polled => {
                let secs =
                    crate::ledger::retry_after(&answer.outcome, self.desk.clock.now()).unwrap_or(1);
                sign(
                    &CmpAnswer::PollRep {
                        cert_req_id,
                        check_after: i64::try_from(secs).unwrap_or(1),
                    },
                    "pending",
                )
            }
            (Outcome::Pending { .. }, _) => {
                rep(status(PkiStatus::Waiting, None, ""), None, "pending")
            }
            _ => match (&answer.cmp_status, &answer.refusal) {
                // The gateway's own refusal: as the CA words one.
                (None, Some(r)) => {
                    self.answer_with(None, |a| a.refusal(&answering.header, cert_req_id, r))
                }
                // The upstream's: its status passed on as it was.
                (Some(upstream), _) => rep(upstream.clone(), None, "refused upstream"),
                (None, None) => rep(
                    status(
                        PkiStatus::Rejection,
                        Some(FailureBit::SystemFailure),
                        answer.status.as_deref().unwrap_or("refused by the CA"),
                    ),
                    None,
                    "refused upstream",
                ),
            },
        }
    }

    fn cmp_failure(&self, header: &PkiHeader, bit: FailureBit, text: &str) -> CmpReply {
        self.answer_with(None, |a| a.failure(header, bit, text))
    }

    fn cmp_sign(&self, header: &PkiHeader, answer: &CmpAnswer<'_>, outcome: &str) -> CmpReply {
        self.answer_with(None, |a| a.sign(header, answer, outcome))
    }

    /// An answer protected by the RA key, with `nonce` (the upstream's, passed on) as its
    /// senderNonce or a fresh one; its certificate, its chain and the upstream CA's
    /// certificates go along for the user to verify.
    fn answer_with(
        &self,
        nonce: Option<&[u8]>,
        answer: impl FnOnce(&Answerer<'_>) -> CmpReply,
    ) -> CmpReply {
        let chain: Vec<Retained<Certificate>> = self
            .ra
            .chain
            .iter()
            .chain(&self.policy.upstream_cas)
            .cloned()
            .collect();
        answer(&Answerer {
            cert: self.ra_cert(),
            extra_certs: &chain,
            key: &self.ra.key,
            time: self.desk.clock.now(),
            sender_nonce: nonce,
        })
    }

    fn store_unavailable(&self, e: &StoreError) -> UpstreamFailure {
        UpstreamFailure {
            status: 503,
            retry_after: Some(self.policy.retry_after),
            text: format!("the gateway's state database: {e}"),
        }
    }
}

/// How the gateway delivers its answer to a key update or its poll.
struct Delivery {
    /// Without `certConf` (granted by the upstream).
    implicit: bool,
    /// The upstream's nonce, passed on as the answer's senderNonce (a fresh one when `None`).
    nonce: Option<Vec<u8>>,
}

impl cmp_intake::CmpDesk for Gateway {
    fn desk(&self) -> &crate::desk::Desk {
        &self.desk
    }
    fn policy_context(&self) -> PolicyContext<'_> {
        self.context()
    }
    fn is_ra(&self, signer: &Retained<Certificate>) -> bool {
        self.ra.chain.contains(signer)
    }
    /// `error`, protected by the RA key.
    fn error_answer(&self, header: &PkiHeader, rejection: &Rejection) -> CmpReply {
        self.answer_with(None, |a| a.error(header, rejection))
    }
}
