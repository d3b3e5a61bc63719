//! The simulated authority as a [`Decider`]: what the desk ([`crate::desk::Desk::decide`])
//! leaves to it — a fresh request decided by the scenario's disposition, a poll of a pending
//! request — decided and audited in the ledger's transaction. Nothing is deferred: the
//! authority issues itself.

use super::*;
use crate::{
    desk::{Decider, Next, Renewal},
    ledger::Claim,
};

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

    /// Whether a rule names a request number. Only then are a subject's requests counted
    /// (a row per subject, written by every decision): no other rule depends on the count.
    pub(super) fn numbers_requests(&self) -> bool {
        self.rules.iter().any(|rule| rule.request.is_some())
    }

    /// The scenario's disposition for the subject's next request (counted here when a rule
    /// numbers requests).
    pub(super) fn disposition(
        &self,
        store: &Store,
        subject: &str,
        template: &Template,
    ) -> Result<Decision, Rejection> {
        let n = if self.numbers_requests() {
            let counter = format!("requests:{subject}");
            u32::try_from(store.count(&counter)?).unwrap_or(u32::MAX)
        } else {
            0
        };
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
            kind: origin.endpoint,
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

    pub(super) fn retry_secs(&self, resolve: Resolve) -> u64 {
        match resolve {
            Resolve::At(t) => u64::try_from(t - self.desk.clock.unix())
                .unwrap_or(0)
                .max(1),
            _ => DEFAULT_RETRY_SECS,
        }
    }
}

impl Decider for Ca {
    type Answer = Decided;
    /// The authority decides in the ledger's transaction: nothing is left for later.
    type Deferred = std::convert::Infallible;

    fn holds_claims(&self) -> bool {
        false
    }

    fn grace(&self) -> Duration {
        self.grace
    }

    fn retry_after(&self) -> u64 {
        DEFAULT_RETRY_SECS
    }

    fn answered(&self, cert: Retained<Certificate>) -> Decided {
        Decided::new(
            Verdict::Issued {
                cert: Box::new(cert),
                revoked: false,
            },
            None,
        )
    }

    fn refused(&self, rejection: &Rejection) -> Decided {
        Decided::new(Verdict::Refused(rejection.clone()), None)
    }

    fn poll(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        pending: Pending,
    ) -> Result<Next<Self>, Rejection> {
        let template = renewal.template.name.as_str();
        let verdict = match self.poll_state(store, &pending, renewal.origin, template)? {
            PollState::Issued(cert) => Verdict::Issued {
                cert,
                revoked: false,
            },
            PollState::Refused(r) => Verdict::Refused(r),
            PollState::StillPending => Verdict::Pending {
                id: pending.id,
                resolve: pending.resolve,
            },
            // What was stored is what is issued: the poll was checked to be the stored
            // request (`Renewal::same_request`), so its key is the stored key.
            PollState::Due => Verdict::Issued {
                cert: Box::new(self.issue_pending(
                    store,
                    &pending,
                    renewal.origin,
                    renewal.renewed,
                    renewal.new_key,
                    renewal.template,
                    renewal.extensions.to_vec(),
                )?),
                revoked: false,
            },
        };
        Ok(Next::Answered(Decided::new(verdict, None)))
    }

    fn fresh(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        claim: Claim,
    ) -> Result<Next<Self>, Rejection> {
        // Decided in this very transaction: the claim is settled with the decision.
        claim.settle(store)?;
        let template = renewal.template.name.as_str();
        let origin = renewal.origin;
        let refuse = |rejection: Rejection| -> Result<Next<Self>, Rejection> {
            self.desk
                .refused(store, origin, Some(template), &rejection, None)?;
            Ok(Next::Answered(Decided::new(
                Verdict::Refused(rejection),
                None,
            )))
        };
        let old = renewal.renewed.value().tbs_certificate();
        let subject = Subject::of(old.subject());
        let decision = self.disposition(store, subject.text(), renewal.template)?;
        let verdict = match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let revoked = decision.disposition == Disposition::Revoked;
                let cert = self.issue_renewal(
                    store,
                    origin,
                    renewal.renewed,
                    subject,
                    renewal.new_key,
                    renewal.template,
                    renewal.extensions.to_vec(),
                    decision.fault,
                    revoked,
                    renewal.findings,
                )?;
                Verdict::Issued {
                    cert: Box::new(cert),
                    revoked,
                }
            }
            Disposition::Deny(reason) => return refuse(Rejection::Denied(reason)),
            Disposition::Error(hresult) if renewal.full_status => {
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
                Verdict::Failed(hresult)
            }
            Disposition::Error(hresult) => {
                return refuse(Rejection::Internal(format!("0x{hresult:08X}")));
            }
            Disposition::IssuedOutOfBand if renewal.full_status => {
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::NoCertificate,
                    None,
                    None,
                    "issued out of band".into(),
                )?;
                Verdict::OutOfBand
            }
            Disposition::IssuedOutOfBand => {
                return refuse(Rejection::Denied("issued out of band".into()));
            }
            Disposition::Pending { resolve, to } => {
                let (id, resolve) = self.add_pending(
                    store,
                    origin,
                    template,
                    renewal.pending_key,
                    renewal.stored,
                    resolve,
                    to,
                )?;
                Verdict::Pending { id, resolve }
            }
        };
        Ok(Next::Answered(Decided::new(verdict, decision.fault)))
    }
}

impl Ca {
    /// The decision as a CMC answer (full status: failed and out of band can be said).
    pub(super) fn cmc_answer(&self, decided: Decided) -> Answer {
        let fault = decided.fault;
        match decided.verdict {
            Verdict::Issued { cert, revoked } => Answer::new(
                Outcome::Issued,
                Some(if revoked { "Revoked" } else { "Issued" }.into()),
                Some(*cert),
                fault,
            ),
            Verdict::Pending { id, resolve } => self.pending_answer(id, resolve, fault),
            Verdict::Refused(r) => Answer::rejected(&r),
            Verdict::Failed(hresult) => Answer::new(
                Outcome::Failed {
                    fail_info: Some(CmcFailInfo::InternalCaError),
                },
                Some(format!(
                    "0x{hresult:08X}: the CA failed to process the request"
                )),
                None,
                fault,
            ),
            Verdict::OutOfBand => Answer::new(
                Outcome::Issued,
                Some("Issued out of band".into()),
                None,
                fault,
            ),
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

/// What the simulated authority decided, before the endpoint's wire form.
pub(crate) struct Decided {
    pub(super) verdict: Verdict,
    /// A fault for the transport to apply (the scenario's).
    pub(super) fault: Option<TransportFault>,
}

/// The decision itself.
pub(super) enum Verdict {
    /// This certificate (issued revoked, when the scenario says so).
    Issued {
        cert: Box<Retained<Certificate>>,
        revoked: bool,
    },
    /// Taken under submission as request `id`.
    Pending { id: i64, resolve: Resolve },
    /// Refused (audited).
    Refused(Rejection),
    /// The scenario's error disposition, an HRESULT: said only in a CMC status.
    Failed(u32),
    /// Issued out of band: said only in a CMC status.
    OutOfBand,
}

impl Decided {
    fn new(verdict: Verdict, fault: Option<TransportFault>) -> Self {
        Self { verdict, fault }
    }

    /// The decision as an answer that only issues, pends or refuses (EST simplereenroll, an
    /// RA's re-enrollment, CMP). The desk never decides "failed" or "out of band" for such a
    /// request ([`Renewal::full_status`]); were it to, it is a refusal.
    pub(super) fn bare(self) -> (SimpleOutcome, Option<TransportFault>) {
        let outcome = match self.verdict {
            Verdict::Issued { cert, .. } => SimpleOutcome::Issued(cert),
            Verdict::Pending { id, resolve } => SimpleOutcome::Pending { id, resolve },
            Verdict::Refused(r) => SimpleOutcome::Rejected(r),
            Verdict::Failed(hresult) => {
                SimpleOutcome::Rejected(Rejection::Internal(format!("0x{hresult:08X}")))
            }
            Verdict::OutOfBand => {
                SimpleOutcome::Rejected(Rejection::Denied("issued out of band".into()))
            }
        };
        (outcome, self.fault)
    }
}

/// What a re-enrollment is answered with, before its wire form (a certs-only PKCS#7 or an
/// HTTP status for EST; a CMC response for an RA; a CMP reply).
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
