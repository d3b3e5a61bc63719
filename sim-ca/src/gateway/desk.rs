//! The gateway at the desk: the forwarder as a [`Decider`] ([`Desk::decide`], the same path
//! as the simulated CA's), the upstream asked without the store held, its verified answer
//! recorded with the claim settled — or the claim released when no answer came — and the
//! endpoints that take it (full CMC, MS-WSTEP's query, EST simplereenroll).

use super::*;
use crate::store::{Endpoint, IntoEndpoint};

/// What the forwarder leaves for after the ledger's transaction: asking its upstream.
pub(crate) struct Forward {
    /// The pending request this polls (collected by the upstream's id, when it has one).
    poll: Option<Pending>,
    /// The transaction a fresh request claimed, held while the upstream is asked.
    claim: Option<Claim>,
}

/// The forwarder as a [`Decider`]: it decides nothing in the ledger's transaction except
/// polls of what it collected already; everything else is asked of its upstream without the
/// store held, the claim kept open meanwhile (the upstream owns the decision, the revocation
/// list and the issuance).
impl Decider for Gateway {
    type Answer = GatewayAnswer;
    type Deferred = Forward;

    fn holds_claims(&self) -> bool {
        true
    }

    fn grace(&self) -> Duration {
        self.policy.grace
    }

    fn retry_after(&self) -> u64 {
        self.policy.retry_after
    }

    fn answered(&self, cert: Retained<Certificate>) -> GatewayAnswer {
        GatewayAnswer::issued(cert)
    }

    fn refused(&self, rejection: &Rejection) -> GatewayAnswer {
        GatewayAnswer::rejected(rejection)
    }

    /// Answered from the state when the request was collected already (by this instance or
    /// another): the upstream need not be asked again; forwarded otherwise.
    fn poll(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        pending: Pending,
    ) -> Result<Next<Self>, Rejection> {
        if pending.status == PendingStatus::Issued
            && let Some(der) = store.certificate(pending.cert_serial.as_deref().unwrap_or(""))?
        {
            let cert = Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
            self.desk.audit(
                store,
                renewal.origin,
                Some(&renewal.template.name),
                AuditOutcome::ReplayAnswered,
                pending.cert_serial.as_deref(),
                Some(pending.id),
                "poll of a request already collected".into(),
            )?;
            return Ok(Next::Answered(GatewayAnswer::issued(cert)));
        }
        Ok(Next::Deferred(Forward {
            poll: Some(pending),
            claim: None,
        }))
    }

    fn fresh(
        &self,
        _store: &Store,
        _renewal: &Renewal<'_>,
        claim: Claim,
    ) -> Result<Next<Self>, Rejection> {
        Ok(Next::Deferred(Forward {
            poll: None,
            claim: Some(claim),
        }))
    }
}

impl Gateway {
    /// The one path of a checked request, whatever its endpoint: the desk's ([`Desk::decide`]:
    /// the ledger's check and claim, one transaction), then `exchange` with the upstream
    /// without the store held, its answer verified and recorded with the claim settled (one
    /// transaction) — or, when no usable answer came, the claim released with the failure
    /// recorded, so the same request can come again; when the upstream issued a certificate
    /// that is not delivered, the claim spent instead, so that it never comes again
    /// ([`NotDelivered::decided`]).
    pub(super) fn decide(
        &self,
        renewal: &Renewal<'_>,
        exchange: impl FnOnce(Option<u64>) -> Result<(GatewayAnswer, Option<u64>), NotDelivered>,
    ) -> Result<GatewayAnswer, UpstreamFailure> {
        self.desk.decide(
            self,
            renewal,
            |_, _| Ok(()),
            |forward| self.ask_upstream(renewal, forward, exchange),
        )
    }

    /// Asks the upstream (without the store) and records its answer.
    fn ask_upstream(
        &self,
        renewal: &Renewal<'_>,
        Forward { poll, claim }: Forward,
        exchange: impl FnOnce(Option<u64>) -> Result<(GatewayAnswer, Option<u64>), NotDelivered>,
    ) -> Result<GatewayAnswer, UpstreamFailure> {
        let template = renewal.template.name.as_str();
        let pending_id = poll.as_ref().map(|p| p.id);
        let upstream_pending = poll
            .as_ref()
            .and_then(|p| p.upstream_id)
            .and_then(|id| u64::try_from(id).ok());
        let (answer, upstream_id) = match exchange(upstream_pending) {
            Ok(answer) => answer,
            Err(failure) => {
                return Err(self.upstream_failed(
                    renewal.origin,
                    Some(template),
                    pending_id,
                    claim.as_ref(),
                    failure,
                ));
            }
        };
        let store = self.decision();
        let recorded = store.atomically(|s| {
            if let Some(claim) = &claim {
                claim.settle(s)?;
            }
            self.record_decision(s, renewal, poll.as_ref(), answer, upstream_id)
        });
        drop(store);
        recorded.or_else(|r| {
            if let Some(failure) = r.unavailable(self.policy.retry_after) {
                return Err(failure);
            }
            self.record_refusal(renewal.origin, Some(template), &r);
            Ok(GatewayAnswer::rejected(&r))
        })
    }

    /// Handles a Full PKI Request from a user.
    /// `endpoint` as [`crate::Ca::handle_cmc_at`] takes it.
    pub fn handle_cmc_at(
        &self,
        endpoint: impl IntoEndpoint,
        request: &[u8],
        tls_cert: &[u8],
    ) -> CmcReply {
        let endpoint = match endpoint.into_endpoint() {
            Ok(endpoint) => endpoint,
            Err(e) => {
                let r = Rejection::Malformed(e.to_string());
                return self.respond(GatewayAnswer::rejected(&r), None);
            }
        };
        let origin = Origin::new(endpoint, tls_cert, request);
        // EST sends base64: what is checked, stored and forwarded is the DER.
        let der = renewal_codec::cmc::input::to_der(request, &self.desk.limits).map(|(der, _)| der);
        let request = der.as_deref().unwrap_or(request);
        let checked = Retained::<Certificate>::from_der(tls_cert)
            .map_err(|_| Rejection::IdentityMismatch)
            .and_then(|tls| policy::validate_cmc(request, &tls, &self.context()).map(|a| (tls, a)));
        let (tls, accepted) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                self.record_refusal(&origin, None, &r);
                return self.respond(GatewayAnswer::rejected(&r), None);
            }
        };
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, &accepted, &self.desk.limits);
        let renewal = Renewal::cmc(&origin, &accepted, &tls, request, &same_request);
        let decided = self.decide(&renewal, |pending| {
            self.exchange_cmc(
                |id, nonce| {
                    renewal_codec::cmc::ra::wrap(request, &self.ra.key, self.ra_cert(), id, nonce)
                },
                pending,
                &accepted.new_key,
                tls.value(),
            )
        });
        match decided {
            Ok(answer) => self.respond(answer, Some(&accepted)),
            Err(failure) => CmcReply::unavailable(failure),
        }
    }

    /// MS-WSTEP `QueryTokenStatus`: the gateway's pending request `id`, collected for the
    /// client that submitted it.
    pub fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        let origin = Origin::new(Endpoint::WstepQuery, tls_cert, &[]);
        let stored = {
            let store = self.desk.lock();
            i64::try_from(id)
                .ok()
                .and_then(|id| store.pending(id).ok().flatten())
                .filter(|p| {
                    p.tls_fingerprint == origin.identity && p.kind != Endpoint::SimpleReenroll
                })
        };
        match stored {
            Some(p) => self.handle_cmc_at(Endpoint::WstepQuery, &p.request, tls_cert),
            None => {
                let r = Rejection::PollMismatch(i64::try_from(id).unwrap_or(-1));
                self.record_refusal(&origin, None, &r);
                self.respond(GatewayAnswer::rejected(&r), None)
            }
        }
    }

    /// Handles an EST simplereenroll from a user: forwarded as the RA's re-enrollment naming
    /// the very certificate the user authenticated with (never a subject for the CA to look
    /// up), through the same path as full CMC.
    pub fn handle_simple(&self, body: &[u8], tls_cert: &[u8]) -> SimpleReply {
        let origin = Origin::new(Endpoint::SimpleReenroll, tls_cert, body);
        let checked = Retained::<Certificate>::from_der(tls_cert)
            .map_err(|_| Rejection::IdentityMismatch)
            .and_then(|tls| policy::validate_simple(body, &tls, &self.context()).map(|a| (tls, a)));
        let (tls, accepted) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                self.record_refusal(&origin, None, &r);
                return SimpleReply::Rejected(r);
            }
        };
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        let transaction = format!("key:{key_fingerprint}");
        let same_request =
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.desk.limits);
        // Polled by re-forwarding: the upstream matches it to its pending request by the
        // renewed certificate and the new key.
        let renewal = Renewal::reenrollment(
            &origin,
            &accepted,
            &tls,
            body,
            (&key_fingerprint, &transaction),
            &same_request,
        );
        let pkcs10 = accepted.pkcs10.der();
        let decided = self.decide(&renewal, |pending| {
            self.exchange_cmc(
                |id, nonce| {
                    renewal_codec::cmc::ra::wrap_reenroll(
                        pkcs10,
                        &tls,
                        &self.ra.key,
                        self.ra_cert(),
                        id,
                        nonce,
                    )
                },
                pending,
                &accepted.new_key,
                tls.value(),
            )
        });
        let answer = match decided {
            Ok(answer) => answer,
            Err(failure) => return SimpleReply::Unavailable(failure),
        };
        match (answer.outcome, answer.issued) {
            (Outcome::Issued, Some(cert)) => match build_certs_only(&[cert]) {
                Ok(der) => SimpleReply::Issued(der),
                Err(e) => SimpleReply::Rejected(Rejection::Internal(e.to_string())),
            },
            (Outcome::Pending { retry_at, .. }, _) => {
                let at = std::time::SystemTime::UNIX_EPOCH + retry_at.to_unix_duration();
                let secs = at
                    .duration_since(self.desk.clock.now())
                    .map_or(1, |d| d.as_secs());
                SimpleReply::Pending(bounded_retry(secs))
            }
            (Outcome::Issued, None) => {
                SimpleReply::Rejected(Rejection::Denied("issued out of band".into()))
            }
            _ => SimpleReply::Rejected(answer.refusal.unwrap_or_else(|| {
                Rejection::Denied(format!(
                    "the CA refused: {}",
                    answer.status.as_deref().unwrap_or("no reason given")
                ))
            })),
        }
    }
}
