//! The decision of a checked request, inside the store transaction: the ledger's check (one
//! for every decider, [`crate::ledger`]), the scenario's disposition, polls of pending
//! requests — and every answer audited in the same transaction.

use super::*;

/// What `decide` returns.
pub(super) struct Decision {
    pub(super) disposition: Disposition,
    pub(super) fault: Option<TransportFault>,
}

impl Ca {
    /// The scenario's first rule matching the subject, template and the subject's request
    /// number `n` (rules are evaluated in order, first match wins).
    pub(super) fn first_rule(&self, subject: &str, template: &Template, n: u32) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            rule.subject.as_deref().is_none_or(|s| subject.contains(s))
                && rule.template.as_deref().is_none_or(|t| {
                    t.eq_ignore_ascii_case(&template.name) || t == template.oid.to_string()
                })
                && rule.request.is_none_or(|r| r == n)
        })
    }

    pub(super) fn decide(
        &self,
        store: &Store,
        subject: &str,
        template: &Template,
    ) -> Result<Decision, Rejection> {
        let counter = format!("requests:{subject}");
        store.bump(&counter)?;
        let n = u32::try_from(store.counter(&counter)?).unwrap_or(u32::MAX);
        if let Some(rule) = self.first_rule(subject, template, n) {
            return Ok(Decision {
                disposition: rule.disposition.clone(),
                fault: rule.fault,
            });
        }
        Ok(Decision {
            disposition: if template.renewals_pend {
                Disposition::Pending {
                    resolve: Resolve::Admin,
                    to: PendingEnd::Issue,
                }
            } else {
                Disposition::Issue
            },
            fault: None,
        })
    }

    /// Decides an accepted CMC request, inside the store transaction. Every answer, refusals
    /// included, is audited here; an `Err` rolls everything back (the caller audits it).
    pub(super) fn process_cmc(
        &self,
        store: &Store,
        accepted: &Accepted,
        tls: &Retained<Certificate>,
        origin: &Origin,
        request: &[u8],
    ) -> Result<Answer, Rejection> {
        let template = accepted.template.name.as_str();
        let refuse = |rejection: Rejection, pending: Option<i64>| -> Result<Answer, Rejection> {
            self.desk
                .refused(store, origin, Some(template), &rejection, pending)?;
            Ok(Answer::rejected(&rejection))
        };
        // A request re-sent for a pending transaction is a poll, not a replay.
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, accepted, &self.desk.limits);
        let lookup = Lookup {
            renewed: tls.value(),
            pending_key: &accepted.transaction,
            same_request: &same_request,
            key_fingerprint: &hex(&accepted.new_key.fingerprint()),
            transaction: &accepted.transaction,
            nonce: accepted.facts.sender_nonce.as_deref(),
            hold: false,
            guard_until: crate::ledger::guard_until(tls.value(), self.grace),
        };
        match self
            .desk
            .ledger
            .stand(store, origin, self.desk.clock.unix(), template, &lookup)?
        {
            Standing::Refused(r, pending) => return refuse(r, pending),
            Standing::Poll(pending) => return self.poll_cmc(store, pending, accepted, origin),
            Standing::Answered(cert) => {
                return Ok(Answer::new(
                    Outcome::Issued,
                    Some("Issued".into()),
                    Some(*cert),
                    None,
                ));
            }
            // Decided in this transaction: nothing is ever in flight here.
            Standing::Fresh(_) | Standing::InFlight { .. } => {}
        }
        let old = tls.value().tbs_certificate();
        let decision = self.decide(store, &old.subject().to_string(), &accepted.template)?;
        match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let revoked = decision.disposition == Disposition::Revoked;
                let cert = self.issue_renewal(
                    store,
                    origin,
                    tls,
                    &accepted.new_key,
                    &accepted.template,
                    accepted.extensions.clone(),
                    decision.fault,
                    revoked,
                    &accepted.findings,
                )?;
                let text = if revoked { "Revoked" } else { "Issued" };
                Ok(Answer::new(
                    Outcome::Issued,
                    Some(text.into()),
                    Some(cert),
                    decision.fault,
                ))
            }
            Disposition::Deny(reason) => refuse(Rejection::Denied(reason), None),
            Disposition::Error(hresult) => {
                store.bump("errors")?;
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::NoCertificate,
                    None,
                    None,
                    format!("error disposition 0x{hresult:08X}"),
                )?;
                Ok(Answer::new(
                    Outcome::Failed {
                        fail_info: Some(CmcFailInfo::InternalCaError),
                    },
                    Some(format!(
                        "0x{hresult:08X}: the CA failed to process the request"
                    )),
                    None,
                    decision.fault,
                ))
            }
            Disposition::IssuedOutOfBand => {
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::NoCertificate,
                    None,
                    None,
                    "issued out of band".into(),
                )?;
                Ok(Answer::new(
                    Outcome::Issued,
                    Some("Issued out of band".into()),
                    None,
                    decision.fault,
                ))
            }
            Disposition::Pending { resolve, to } => {
                let (id, resolve) = self.add_pending(
                    store,
                    origin,
                    template,
                    &accepted.transaction,
                    request,
                    resolve,
                    to,
                )?;
                Ok(self.pending_answer(id, resolve, decision.fault))
            }
        }
    }

    /// Stores a request taken under submission, with its audit record; `after:N` becomes
    /// absolute time here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_pending(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        transaction: &str,
        request: &[u8],
        resolve: Resolve,
        end: PendingEnd,
    ) -> Result<(i64, Resolve), Rejection> {
        self.desk.ledger.check_pending_cap(store, origin)?;
        let now = self.desk.clock.unix();
        let resolve = match resolve {
            Resolve::At(secs) => Resolve::At(now + secs),
            other => other,
        };
        let id = store.add_pending(&Pending {
            id: 0,
            tls_fingerprint: origin.identity.clone(),
            transaction: transaction.to_string(),
            request: request.to_vec(),
            kind: origin.endpoint.into(),
            created_at: now,
            polls: 0,
            resolve,
            end,
            status: PendingStatus::Pending,
            cert_serial: None,
            upstream_id: None,
        })?;
        store.bump("pending")?;
        self.desk.audit(
            store,
            origin,
            Some(template),
            AuditOutcome::Pending,
            None,
            Some(id),
            "taken under submission".into(),
        )?;
        Ok((id, resolve))
    }

    /// What a pending answer says: the pendToken and when to poll.
    pub(super) fn pending_answer(
        &self,
        id: i64,
        resolve: Resolve,
        fault: Option<TransportFault>,
    ) -> Answer {
        let now = self.desk.clock.unix();
        let at = match resolve {
            Resolve::At(t) if t > now => t,
            _ => now + DEFAULT_RETRY_SECS as i64,
        };
        match GeneralizedTime::from_unix_duration(Duration::from_secs(
            u64::try_from(at).unwrap_or(0),
        )) {
            Ok(retry_at) => Answer::new(
                Outcome::Pending {
                    token: id.to_be_bytes().to_vec(),
                    retry_at,
                },
                Some(format!("Taken under submission (request {id})")),
                None,
                fault,
            ),
            Err(_) => Answer::rejected(&Rejection::Internal("pending time out of range".into())),
        }
    }

    /// Whether a pending request is due, given its poll count.
    pub(super) fn due(&self, pending: &Pending, polls: u32) -> bool {
        match pending.resolve {
            Resolve::At(t) => self.desk.clock.unix() >= t,
            Resolve::OnPoll(n) => polls >= n,
            Resolve::Admin => false,
        }
    }

    /// Where a poll of a pending request stands, after counting the poll: the stored decision
    /// (issued, denied), still pending, or due now (denied or to be issued by the caller).
    pub(super) fn poll_state(
        &self,
        store: &Store,
        pending: &Pending,
        origin: &Origin,
        template: &str,
    ) -> Result<PollState, Rejection> {
        let polls = store.count_poll(pending.id)?;
        store.bump("polls")?;
        let denied = || Rejection::Denied("the pending request was denied".into());
        match pending.status {
            PendingStatus::Issued => {
                let serial = pending.cert_serial.clone().unwrap_or_default();
                let der = store
                    .certificate(&serial)?
                    .ok_or(Rejection::Internal("issued certificate missing".into()))?;
                let cert =
                    Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::ReplayAnswered,
                    Some(&serial),
                    Some(pending.id),
                    "poll of a request already issued".into(),
                )?;
                return Ok(PollState::Issued(Box::new(cert)));
            }
            PendingStatus::Denied => {
                self.desk
                    .refused(store, origin, Some(template), &denied(), Some(pending.id))?;
                return Ok(PollState::Refused(denied()));
            }
            PendingStatus::Pending => {}
        }
        if !self.due(pending, polls) {
            self.desk.audit(
                store,
                origin,
                Some(template),
                AuditOutcome::StillPending,
                None,
                Some(pending.id),
                format!("poll {polls}"),
            )?;
            return Ok(PollState::StillPending);
        }
        if pending.end == PendingEnd::Deny {
            store.finish_pending(pending.id, PendingStatus::Denied, None)?;
            self.desk.audit(
                store,
                origin,
                Some(template),
                AuditOutcome::Denied,
                None,
                Some(pending.id),
                "the pending request was denied".into(),
            )?;
            return Ok(PollState::Refused(denied()));
        }
        Ok(PollState::Due)
    }

    pub(super) fn poll_cmc(
        &self,
        store: &Store,
        pending: Pending,
        accepted: &Accepted,
        origin: &Origin,
    ) -> Result<Answer, Rejection> {
        let issued = |cert| Answer::new(Outcome::Issued, Some("Issued".into()), Some(cert), None);
        match self.poll_state(store, &pending, origin, &accepted.template.name)? {
            PollState::Issued(cert) => Ok(issued(*cert)),
            PollState::Refused(r) => Ok(Answer::rejected(&r)),
            PollState::StillPending => Ok(self.pending_answer(pending.id, pending.resolve, None)),
            PollState::Due => {
                // What was stored is what is issued: the poll's PKCS#10 was checked to be the
                // stored one (`same_cmc_pkcs10`), so its key is the stored key.
                let cert = self.issue_pending(
                    store,
                    &pending,
                    origin,
                    &accepted.facts.renewal_certificate,
                    &accepted.new_key,
                    &accepted.template,
                    accepted.extensions.clone(),
                )?;
                Ok(issued(cert))
            }
        }
    }

    /// Decides a checked re-enrollment of `renewed` (an EST simplereenroll, or an RA's
    /// re-enrollment wrapper), inside the store transaction; every answer is audited here.
    pub(super) fn process_simple(
        &self,
        store: &Store,
        accepted: &SimpleAccepted,
        renewed: &Retained<Certificate>,
        origin: &Origin,
        body: &[u8],
    ) -> Result<(SimpleOutcome, Option<TransportFault>), Rejection> {
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        let same_request =
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.desk.limits);
        let transaction = format!("key:{key_fingerprint}");
        let renewal = Renewal {
            template: &accepted.template,
            extensions: &accepted.extensions,
            new_key: &accepted.new_key,
            pending_key: &key_fingerprint,
            transaction: &transaction,
            nonce: None,
            same_request: &same_request,
        };
        self.process_renewal(store, &renewal, renewed, origin, body)
    }

    /// Decides a renewal of `renewed` whose request names no more than a new key (EST
    /// simplereenroll, an RA's re-enrollment, a CMP key update), inside the store transaction:
    /// the ledger's check, the scenario's disposition, the record. Every answer is audited
    /// here; `body` is what a pending record stores.
    pub(super) fn process_renewal(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        renewed: &Retained<Certificate>,
        origin: &Origin,
        body: &[u8],
    ) -> Result<(SimpleOutcome, Option<TransportFault>), Rejection> {
        let template = renewal.template.name.as_str();
        let refuse = |r: Rejection, pending: Option<i64>| {
            self.desk
                .refused(store, origin, Some(template), &r, pending)?;
            Ok((SimpleOutcome::Rejected(r), None))
        };
        let key_fingerprint = hex(&renewal.new_key.fingerprint());
        let lookup = Lookup {
            renewed: renewed.value(),
            pending_key: renewal.pending_key,
            same_request: renewal.same_request,
            key_fingerprint: &key_fingerprint,
            transaction: renewal.transaction,
            nonce: renewal.nonce,
            hold: false,
            guard_until: crate::ledger::guard_until(renewed.value(), self.grace),
        };
        match self
            .desk
            .ledger
            .stand(store, origin, self.desk.clock.unix(), template, &lookup)?
        {
            Standing::Refused(r, pending) => return refuse(r, pending),
            Standing::Poll(pending) => {
                let outcome = match self.poll_state(store, &pending, origin, template)? {
                    PollState::Issued(cert) => SimpleOutcome::Issued(cert),
                    PollState::Refused(r) => SimpleOutcome::Rejected(r),
                    PollState::StillPending => SimpleOutcome::Pending {
                        id: pending.id,
                        resolve: pending.resolve,
                    },
                    PollState::Due => SimpleOutcome::Issued(Box::new(self.issue_pending(
                        store,
                        &pending,
                        origin,
                        renewed,
                        renewal.new_key,
                        renewal.template,
                        renewal.extensions.to_vec(),
                    )?)),
                };
                return Ok((outcome, None));
            }
            Standing::Answered(cert) => return Ok((SimpleOutcome::Issued(cert), None)),
            Standing::Fresh(_) | Standing::InFlight { .. } => {}
        }
        let old = renewed.value().tbs_certificate();
        let decision = self.decide(store, &old.subject().to_string(), renewal.template)?;
        match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let cert = self.issue_renewal(
                    store,
                    origin,
                    renewed,
                    renewal.new_key,
                    renewal.template,
                    renewal.extensions.to_vec(),
                    decision.fault,
                    decision.disposition == Disposition::Revoked,
                    &[],
                )?;
                Ok((SimpleOutcome::Issued(Box::new(cert)), decision.fault))
            }
            Disposition::Deny(reason) => refuse(Rejection::Denied(reason), None),
            Disposition::Error(hresult) => {
                refuse(Rejection::Internal(format!("0x{hresult:08X}")), None)
            }
            Disposition::IssuedOutOfBand => {
                refuse(Rejection::Denied("issued out of band".into()), None)
            }
            Disposition::Pending { resolve, to } => {
                let (id, resolve) = self.add_pending(
                    store,
                    origin,
                    template,
                    renewal.pending_key,
                    body,
                    resolve,
                    to,
                )?;
                Ok((SimpleOutcome::Pending { id, resolve }, decision.fault))
            }
        }
    }

    pub(super) fn retry_secs(&self, resolve: Resolve) -> u64 {
        match resolve {
            Resolve::At(t) => u64::try_from(t - self.desk.clock.unix())
                .unwrap_or(0)
                .max(1),
            _ => DEFAULT_RETRY_SECS,
        }
    }
}

/// What a CMC request is answered with, decided under the store lock; the signed response is
/// built from it after the lock is released.
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) status: Option<String>,
    pub(super) issued: Option<Retained<Certificate>>,
    pub(super) fault: Option<TransportFault>,
}

impl Answer {
    pub(super) fn new(
        outcome: Outcome,
        status: Option<String>,
        issued: Option<Retained<Certificate>>,
        fault: Option<TransportFault>,
    ) -> Self {
        Self {
            outcome,
            status,
            issued,
            fault,
        }
    }

    pub(super) fn rejected(rejection: &Rejection) -> Self {
        Self::new(
            Outcome::Failed {
                fail_info: Some(rejection.codes().fail_info),
            },
            Some(rejection.status_string()),
            None,
            None,
        )
    }
}

/// What a renewal that names no more than a new key asks of the decision, whatever its wire
/// form: an EST simplereenroll's PKCS#10, an RA's re-enrollment, a CMP key update.
pub(super) struct Renewal<'a> {
    /// The template it renews under.
    pub(super) template: &'a Template,
    /// The new certificate's extensions.
    pub(super) extensions: &'a [Extension],
    /// The new key.
    pub(super) new_key: &'a PublicKey,
    /// Which pending record would be its poll.
    pub(super) pending_key: &'a str,
    /// The transaction it claims.
    pub(super) transaction: &'a str,
    /// Its nonce, when the protocol has one.
    pub(super) nonce: Option<&'a [u8]>,
    /// Whether a stored pending request is this one.
    pub(super) same_request: &'a dyn Fn(&Pending) -> bool,
}

/// What a re-enrollment is answered with, before its wire form (a certs-only PKCS#7 or an
/// HTTP status for EST; a CMC response for an RA).
pub(super) enum SimpleOutcome {
    /// This certificate.
    Issued(Box<Retained<Certificate>>),
    /// Taken under submission as request `id`.
    Pending { id: i64, resolve: Resolve },
    /// Refused.
    Rejected(Rejection),
}

/// Where a poll of a pending request stands.
pub(super) enum PollState {
    /// Issued earlier: this certificate.
    Issued(Box<Retained<Certificate>>),
    /// Denied (now or earlier).
    Refused(Rejection),
    /// Not yet decided.
    StillPending,
    /// Decided for issuance now: the caller issues.
    Due,
}

/// Whether a CMC poll carries the PKCS#10 that was stored with its pending request, compared
/// as parsed values (the signature may differ: ECDSA signs with a fresh nonce each time).
pub(crate) fn same_cmc_pkcs10(stored: &[u8], poll: &Accepted, limits: &Limits) -> bool {
    let Ok(parsed) = renewal_codec::cmc::parse_request(stored, limits) else {
        return false;
    };
    let pkcs10s = parsed.pkcs10s();
    matches!(pkcs10s.as_slice(), [(_, stored)] if stored.value().info == poll.facts.pkcs10.value().info)
}

/// The same for an EST simplereenroll poll.
pub(crate) fn same_simple_pkcs10(
    stored: &[u8],
    poll: &Retained<x509_cert::request::CertReq>,
    limits: &Limits,
) -> bool {
    let Ok((der, _)) = renewal_codec::cmc::input::to_der(stored, limits) else {
        return false;
    };
    renewal_codec::cmc::input::decode_exact::<x509_cert::request::CertReq>(&der, "PKCS#10")
        .is_ok_and(|stored| stored.info == poll.value().info)
}
