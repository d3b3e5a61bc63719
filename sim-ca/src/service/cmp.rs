//! CMP at the CA's desk (RFC 4210, the lightweight profile of RFC 9483): a key update request
//! (`kur`) goes through the same decision as every other renewal — the policy's stateless
//! checks ([`policy::validate_kur`]: identity = the certificate whose key protected the
//! message), then the desk ([`crate::desk::Desk::decide`]): the ledger (revoked, poll, answered before, key
//! reuse, replay of transactionID and senderNonce, per renewed certificate), the scenario's
//! disposition, the record and the audit. What is CMP's own is here: answering in `kup`,
//! `pollRep`, `pkiConf` or `error`, signed by the issuing CA; polls by transactionID; and
//! confirmations — a certificate the client rejects in `certConf`, or does not confirm in
//! time, is revoked (RFC 4210 §5.3.18).

use crate::store::Endpoint;
use renewal_codec::cmp::{
    PkiBody, PkiHeader, PkiMessage, PkiStatus, PkiStatusInfo,
    answer::{Answer as CmpAnswer, FailureBit},
};

use super::decide::{Decided, Verdict};
use super::*;
use crate::desk::Renewal;
use crate::{
    cmp_answer::{
        Answerer, CmpReply, accepted_status, cmp_transaction, general_answers, same_kur_key,
    },
    cmp_intake::{self, CmpDesk as _},
    store::ConfirmState,
};

/// How long a certificate issued without implicit confirmation waits for `certConf` before it
/// is revoked, unless configured otherwise.
pub const DEFAULT_CONFIRM_WAIT: Duration = Duration::from_secs(300);

/// Overdue confirmations revoked per sweep (the rest wait for the next one).
const SWEEP_BATCH: i64 = 64;

impl Ca {
    /// Handles a PKIMessage presented over HTTPS (with `tls_cert`, when the client showed
    /// one: the message's protection, not TLS, says who asks).
    pub fn handle_cmp(&self, body: &[u8], tls_cert: &[u8]) -> CmpReply {
        let origin = Origin::new(Endpoint::Cmp, tls_cert, body);
        let message = match cmp_intake::read(self, &origin, body) {
            Ok(m) => m,
            Err(refused) => return *refused,
        };
        if let PkiBody::Nested(inner) = &message.body {
            return self.cmp_nested(origin, &message, inner, tls_cert);
        }
        self.cmp_dispatch(origin, &message, body)
    }

    /// A message an RA forwards nested under its own protection (RFC 9483 §5.2.2.1): the RA
    /// must be one this CA trusts and its protection must verify; the one message inside is
    /// then decided exactly as if its end entity had sent it directly — its own protection
    /// still says who renews — and answered unnested (the RA relays the answer).
    fn cmp_nested(
        &self,
        origin: Origin,
        outer: &PkiMessage,
        inner: &[Vec<u8>],
        tls_cert: &[u8],
    ) -> CmpReply {
        let unwrapped = policy::vouched_by_ra(outer, &self.trusted_ras).and_then(|()| {
            let [der] = inner else {
                return Err(Rejection::RequestCount(inner.len()));
            };
            let message = PkiMessage::parse(der, &self.desk.limits)
                .map_err(|e| Rejection::Malformed(format!("nested PKIMessage: {e}")))?;
            if matches!(message.body, PkiBody::Nested(_)) {
                return Err(Rejection::Malformed(
                    "a nested message inside a nested message".into(),
                ));
            }
            Ok((message, der))
        });
        match unwrapped {
            Ok((message, der)) => {
                self.cmp_dispatch(Origin::new(Endpoint::Cmp, tls_cert, der), &message, der)
            }
            Err(r) => cmp_intake::refuse(self, &origin, &outer.header, &r),
        }
    }

    /// A message from an end entity (sent directly, or unwrapped from an RA's nesting).
    fn cmp_dispatch(&self, origin: Origin, message: &PkiMessage, body: &[u8]) -> CmpReply {
        match &message.body {
            PkiBody::Kur(_) => self.cmp_renew(origin, message, message, body, false),
            PkiBody::PollReq(_) => self.cmp_poll(origin, message),
            PkiBody::CertConf(_) => self.cmp_confirm(origin, message),
            PkiBody::Genm(_) => {
                let certs = [
                    self.authority.issuing.cert.clone(),
                    self.authority.root.cert.clone(),
                ];
                match general_answers(message, &certs) {
                    Ok(infos) => self.cmp_sign_header(
                        &message.header,
                        &CmpAnswer::Genp(&infos),
                        None,
                        "general message answered",
                    ),
                    Err(r) => cmp_intake::refuse(self, &origin, &message.header, &r),
                }
            }
            _ => cmp_intake::unserved(self, &origin, message, "this CA renews certificates"),
        }
    }

    /// Decides the key update `kur` (`kur_bytes` as received or as stored with its pending
    /// record) and answers `answering` — the kur itself, or the pollReq that asks for it.
    fn cmp_renew(
        &self,
        origin: Origin,
        answering: &PkiMessage,
        kur: &PkiMessage,
        kur_bytes: &[u8],
        polled: bool,
    ) -> CmpReply {
        let accepted = match cmp_intake::check_kur(self, kur) {
            Ok(a) => a,
            Err(r) => {
                self.desk
                    .record_refusal(&self.decision(), &origin, None, &r, None);
                return self.cmp_cert_rep(answering, 0, &r);
            }
        };
        let origin = origin.renewing(&accepted.renewed);
        let transaction = cmp_transaction(&kur.header);
        let confirm_key = origin.transaction_key(&transaction);
        // The client's certConf or pollReq must answer this answer: its nonce is bound to the
        // transaction ([`crate::cmp_nonce`]).
        let nonce = self.desk.nonces.mint(&confirm_key);
        let nonce = Some(nonce.as_slice());
        let implicit = kur.header.implicit_confirm();
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
        let deadline =
            self.desk.clock.unix() + i64::try_from(self.confirm_wait.as_secs()).unwrap_or(0);
        // A certificate issued without implicit confirmation waits for its certConf: noted
        // with the decision, in its transaction.
        let await_confirmation = |s: &Store, decided: &Decided| {
            if let Verdict::Issued { cert, .. } = &decided.verdict
                && !implicit
            {
                s.await_confirmation(&confirm_key, &serial_text(cert.value()), deadline, None)?;
            }
            Ok(())
        };
        let (outcome, fault) =
            match self
                .desk
                .decide(self, &renewal, await_confirmation, intake::decided_already)
            {
                Ok(decided) => decided.bare(),
                Err(failure) => return CmpReply::unavailable(failure),
            };
        let id = accepted.cert_req_id;
        let mut reply = match outcome {
            SimpleOutcome::Issued(cert) => {
                let status = PkiStatusInfo::new(PkiStatus::Accepted, None, None);
                self.cmp_sign(
                    answering,
                    &CmpAnswer::CertRep {
                        body_tag: 8,
                        cert_req_id: id,
                        status: status.unwrap_or_else(|_| accepted_status()),
                        issued: Some(&cert),
                        implicit_confirm: implicit,
                    },
                    fault,
                    nonce,
                    "issued",
                )
            }
            SimpleOutcome::Pending { resolve, .. } if polled => self.cmp_sign(
                answering,
                &CmpAnswer::PollRep {
                    cert_req_id: id,
                    check_after: i64::try_from(self.retry_secs(resolve)).unwrap_or(1),
                },
                fault,
                nonce,
                "pending",
            ),
            SimpleOutcome::Pending { .. } => {
                let status = PkiStatusInfo::new(PkiStatus::Waiting, None, None)
                    .unwrap_or_else(|_| accepted_status());
                self.cmp_sign(
                    answering,
                    &CmpAnswer::CertRep {
                        body_tag: 8,
                        cert_req_id: id,
                        status,
                        issued: None,
                        implicit_confirm: false,
                    },
                    fault,
                    nonce,
                    "pending",
                )
            }
            SimpleOutcome::Rejected(r) => self.cmp_cert_rep(answering, id, &r),
        };
        reply.fault = fault;
        reply
    }

    /// Whether the follow-up `message` answers one of our answers in its transaction (ledger
    /// key `transaction_key`): its recipNonce is a nonce this desk sent there (RFC 9483 §3.5).
    fn answers_ours(&self, transaction_key: &str, message: &PkiMessage) -> bool {
        let nonce = message.header.recip_nonce.as_ref().map(|n| n.as_bytes());
        self.desk.nonces.vouches(transaction_key, nonce)
    }

    /// A `pollReq`: the kur pending under this transaction (for the certificate that protected
    /// the poll) is decided again as its poll — answered with `pollRep` while it pends, `kup`
    /// once decided.
    fn cmp_poll(&self, origin: Origin, poll: &PkiMessage) -> CmpReply {
        let origin = match cmp_intake::sender(self, origin, poll) {
            Ok(origin) => origin,
            Err(refused) => return *refused,
        };
        let kur = match cmp_intake::pending_kur(self, &origin, poll) {
            Ok(kur) => kur,
            Err(failure) => return CmpReply::unavailable(failure),
        };
        match kur {
            Some(_)
                if !self.answers_ours(
                    &origin.transaction_key(&cmp_transaction(&poll.header)),
                    poll,
                ) =>
            {
                let why = "pollReq: its recipNonce is no nonce this CA sent in the transaction";
                self.desk.record_refusal(
                    &self.decision(),
                    &origin,
                    None,
                    &Rejection::Malformed(why.into()),
                    None,
                );
                self.cmp_failure(&poll.header, FailureBit::BadRecipientNonce, why)
            }
            Some((kur, bytes)) => self.cmp_renew(origin, poll, &kur, &bytes, true),
            None => cmp_intake::nothing_to_poll(self, &origin, poll),
        }
    }

    /// A `certConf`: the certificate issued in this transaction is confirmed, or — rejected by
    /// the client — revoked; either way acknowledged with `pkiConf` (again, when the client
    /// repeats itself).
    fn cmp_confirm(&self, origin: Origin, message: &PkiMessage) -> CmpReply {
        let (origin, statuses, key) = match cmp_intake::certconf(self, origin, message) {
            Ok(read) => read,
            Err(refused) => return *refused,
        };
        let now = self.desk.clock.unix();
        let store = self.decision();
        let result = store.atomically(|s| {
            s.bump("requests")?;
            let refuse = |bit: FailureBit, why: String| -> Result<Confirmed, Rejection> {
                let r = Rejection::Malformed(why.clone());
                self.desk.refused(s, &origin, None, &r, None)?;
                Ok(Confirmed::Refused(bit, why))
            };
            let [status] = statuses else {
                return refuse(
                    FailureBit::BadRequest,
                    format!("certConf: one status expected, {} found", statuses.len()),
                );
            };
            let Some(record) = s.confirmation(&key)? else {
                return refuse(
                    FailureBit::BadCertId,
                    "certConf: no certificate of this transaction awaits confirmation".into(),
                );
            };
            if !self.answers_ours(&key, message) {
                return refuse(
                    FailureBit::BadRecipientNonce,
                    "certConf: its recipNonce is no nonce this CA sent in the transaction".into(),
                );
            }
            let issued = s.certificate(&record.serial)?.unwrap_or_default();
            if status
                .hash_alg
                .as_ref()
                .is_some_and(|a| a.oid != oids::SHA256)
                || status.cert_hash.as_bytes() != DigestAlgorithm::Sha256.digest(&issued)
            {
                return refuse(
                    FailureBit::BadCertId,
                    "certConf: the certHash is not the issued certificate's (SHA-256)".into(),
                );
            }
            let serial = Some(record.serial.as_str());
            let state = if record.state == ConfirmState::Waiting && now > record.deadline {
                // Too late, whether or not a sweep noticed yet: revoked now.
                s.revoke(&record.serial, now)?;
                s.set_confirmation(&key, ConfirmState::Expired)?;
                self.desk.audit(
                    s,
                    &origin,
                    None,
                    AuditOutcome::Revoked,
                    serial,
                    None,
                    "no certConf came by the deadline (RFC 4210 §5.3.18): revoked".into(),
                )?;
                ConfirmState::Expired
            } else {
                record.state
            };
            match (state, status.accepted()) {
                (ConfirmState::Waiting, true) => {
                    s.set_confirmation(&key, ConfirmState::Confirmed)?;
                    self.desk.audit(
                        s,
                        &origin,
                        None,
                        AuditOutcome::Confirmed,
                        serial,
                        None,
                        "the client confirmed the certificate (certConf)".into(),
                    )?;
                    Ok(Confirmed::Acknowledged("confirmed"))
                }
                (ConfirmState::Waiting, false) => {
                    s.revoke(&record.serial, now)?;
                    s.set_confirmation(&key, ConfirmState::Rejected)?;
                    let why = status
                        .status_info
                        .as_ref()
                        .map(|i| i.text())
                        .unwrap_or_default();
                    self.desk.audit(
                        s,
                        &origin,
                        None,
                        AuditOutcome::Revoked,
                        serial,
                        None,
                        format!("the client rejected the certificate in certConf ({why}): revoked"),
                    )?;
                    Ok(Confirmed::Acknowledged("rejected by the client: revoked"))
                }
                (ConfirmState::Confirmed, true) | (ConfirmState::Rejected, false) => {
                    Ok(Confirmed::Acknowledged("confirmation repeated"))
                }
                (ConfirmState::Confirmed, false) => refuse(
                    FailureBit::CertConfirmed,
                    "certConf: the certificate was confirmed already".into(),
                ),
                (ConfirmState::Rejected | ConfirmState::Expired, true) => refuse(
                    FailureBit::CertRevoked,
                    "certConf: the certificate was revoked (rejected, or not confirmed in time)"
                        .into(),
                ),
                (ConfirmState::Expired, false) => Ok(Confirmed::Acknowledged("revoked already")),
            }
        });
        drop(store);
        match result {
            Ok(Confirmed::Acknowledged(what)) => {
                self.cmp_sign_header(&message.header, &CmpAnswer::PkiConf, None, what)
            }
            Ok(Confirmed::Refused(bit, why)) => self.cmp_failure(&message.header, bit, &why),
            Err(r) => match r.unavailable(DEFAULT_RETRY_SECS) {
                Some(failure) => CmpReply::unavailable(failure),
                None => self.error_answer(&message.header, &r),
            },
        }
    }

    /// Revokes what waited for a confirmation past its deadline, and audits it (`serve` runs
    /// it every second; a confirmation that comes late is refused whether or not a sweep ran).
    pub fn sweep_confirmations(&self) {
        let now = self.desk.clock.unix();
        // A read first, under the plain lock: nothing overdue (the usual case) costs no
        // transaction and no fsync.
        let due = self
            .desk
            .lock()
            .overdue_confirmations(now, 1)
            .map(|d| !d.is_empty());
        if !matches!(due, Ok(true)) {
            return;
        }
        let store = self.decision();
        let result = store.atomically(|s| {
            for overdue in s.overdue_confirmations(now, SWEEP_BATCH)? {
                s.revoke(&overdue.serial, now)?;
                s.set_confirmation(&overdue.transaction_key, ConfirmState::Expired)?;
                s.append_audit(&AuditRecord {
                    id: 0,
                    at: now,
                    endpoint: Endpoint::Cmp,
                    tls_fingerprint: String::new(),
                    request_hash: String::new(),
                    template: None,
                    outcome: AuditOutcome::Revoked,
                    serial: Some(overdue.serial.clone()),
                    pending_id: None,
                    detail: "no certConf came by the deadline (RFC 4210 §5.3.18): revoked".into(),
                })?;
            }
            Ok::<_, StoreError>(())
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "could not sweep unconfirmed CMP certificates");
        }
    }

    /// `kup` refusing request `id` with `rejection`'s failure bit and status string.
    fn cmp_cert_rep(&self, answering: &PkiMessage, id: i64, rejection: &Rejection) -> CmpReply {
        self.answer_with(None, None, |a| a.refusal(&answering.header, id, rejection))
    }

    fn cmp_failure(&self, header: &PkiHeader, bit: FailureBit, text: &str) -> CmpReply {
        self.answer_with(None, None, |a| a.failure(header, bit, text))
    }

    /// `answer` to `answering`, with `nonce` (bound to the transaction) as its senderNonce.
    fn cmp_sign(
        &self,
        answering: &PkiMessage,
        answer: &CmpAnswer<'_>,
        fault: Option<TransportFault>,
        nonce: Option<&[u8]>,
        outcome: &str,
    ) -> CmpReply {
        self.answer_with(fault, nonce, |a| a.sign(&answering.header, answer, outcome))
    }

    /// `answer` to the message with `header`, expecting no follow-up (a fresh nonce).
    fn cmp_sign_header(
        &self,
        header: &PkiHeader,
        answer: &CmpAnswer<'_>,
        fault: Option<TransportFault>,
        outcome: &str,
    ) -> CmpReply {
        self.answer_with(fault, None, |a| a.sign(header, answer, outcome))
    }

    /// An answer signed by the issuing CA with its chain (by the decoy key under the
    /// `wrong-signer` fault), with `nonce` as its senderNonce (a fresh one when `None`),
    /// carrying the fault for the transport.
    fn answer_with(
        &self,
        fault: Option<TransportFault>,
        nonce: Option<&[u8]>,
        answer: impl FnOnce(&Answerer<'_>) -> CmpReply,
    ) -> CmpReply {
        let chain = [
            self.authority.issuing.cert.clone(),
            self.authority.root.cert.clone(),
        ];
        let key: &dyn Signer = if fault == Some(TransportFault::WrongSigner) {
            &self.decoy
        } else {
            &self.authority.issuing.key
        };
        let mut reply = answer(&Answerer {
            cert: &self.authority.issuing.cert,
            extra_certs: &chain,
            key,
            time: self.desk.clock.now(),
            sender_nonce: nonce,
        });
        reply.fault = fault;
        reply
    }
}

impl cmp_intake::CmpDesk for Ca {
    fn desk(&self) -> &crate::desk::Desk {
        &self.desk
    }
    fn policy_context(&self) -> PolicyContext<'_> {
        self.context()
    }
    fn is_ra(&self, signer: &Retained<Certificate>) -> bool {
        self.trusted_ras.contains(signer)
    }
    /// `error`, signed by the issuing CA.
    fn error_answer(&self, header: &PkiHeader, rejection: &Rejection) -> CmpReply {
        self.answer_with(None, None, |a| a.error(header, rejection))
    }
}

/// What a `certConf` came to, decided in the transaction.
enum Confirmed {
    /// Acknowledged with `pkiConf` (what happened, for the log).
    Acknowledged(&'static str),
    /// Refused with `error`.
    Refused(FailureBit, String),
}
