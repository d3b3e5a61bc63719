//! The front of the desk: who is asking (the TLS identity, or the user behind a trusted RA's
//! wrapper), the policy's stateless checks, and the signed CMC answer. What it accepts, it
//! hands to the desk ([`crate::desk::Desk::decide`]), which decides it with this authority as
//! its [`crate::desk::Decider`] ([`super::decide`]).

use super::*;
use crate::store::{Endpoint, IntoEndpoint};

/// What a CMC request turns out to be once its sender is known.
pub(super) enum Intake {
    /// A client's own Full PKI Request and the certificate that presented it: verified in
    /// full by [`policy::validate_cmc`].
    Cmc(Vec<u8>, Retained<Certificate>),
    /// A user's Full PKI Request a trusted RA nested (or this CA stored for one), already
    /// parsed and verified to learn the certificate it renews: the policy takes these facts
    /// ([`policy::accept_cmc`]) instead of verifying its three signatures a second time.
    Forwarded(Vec<u8>, Box<renewal_codec::cmc::RenewalFacts>),
    /// A trusted RA's re-enrollment (a user's simplereenroll): the user's PKCS#10, the
    /// certificate the RA names as the one that authenticated, and what the answer echoes.
    Reenroll {
        pkcs10: Vec<u8>,
        renewed: Retained<Certificate>,
        echo: Echo,
    },
}

/// What a CMC answer echoes of the request it answers (RFC 5272 §6.6, §6.8).
pub(crate) struct Echo {
    body_part: u32,
    transaction_id: Option<der::asn1::Int>,
    nonce: Option<Vec<u8>>,
}

impl Echo {
    fn of(accepted: &Accepted) -> Self {
        Self {
            body_part: accepted.facts.request_body_part.unwrap_or(1),
            transaction_id: accepted.facts.transaction_id.clone(),
            nonce: accepted.facts.sender_nonce.clone(),
        }
    }
}

impl Ca {
    /// What an RA's wrapper forwards, when the TLS client is a trusted RA; `None` for any
    /// other client.
    pub(super) fn unwrap_ra(
        &self,
        request: &[u8],
        tls: &Retained<Certificate>,
    ) -> Option<Result<Intake, Rejection>> {
        if !self.trusted_ras.contains(tls) {
            return None;
        }
        let unwrapped =
            renewal_codec::cmc::ra::unwrap(request, &self.desk.limits, &self.trusted_ras)
                .map_err(|e| Rejection::Malformed(format!("RA wrapper: {e}")));
        Some(unwrapped.and_then(|u| {
            if u.ra != *tls {
                return Err(Rejection::IdentityMismatch);
            }
            match u.forwarded {
                renewal_codec::cmc::ra::Forwarded::Nested(inner) => self.forwarded(inner),
                renewal_codec::cmc::ra::Forwarded::Reenroll { pkcs10, renewed } => {
                    Ok(Intake::Reenroll {
                        pkcs10,
                        renewed: *renewed,
                        echo: Echo {
                            body_part: u.body_part,
                            transaction_id: u.transaction_id,
                            nonce: u.nonce,
                        },
                    })
                }
            }
        }))
    }

    /// A user's request an RA forwarded, with the certificate it renews: the identity is the
    /// certificate the user's own request renews (its old key signed it; the policy checks
    /// that exactly as for a direct client).
    pub(super) fn forwarded(&self, inner: Vec<u8>) -> Result<Intake, Rejection> {
        let facts = renewal_codec::cmc::parse_request(&inner, &self.desk.limits)
            .and_then(|p| p.with_profile(self.profile).verify())
            .map_err(|e| Rejection::Malformed(format!("the forwarded request: {e}")))?;
        Ok(Intake::Forwarded(inner, Box::new(facts)))
    }

    pub(super) fn respond(
        &self,
        outcome: Outcome,
        status_string: Option<String>,
        issued: Option<Retained<Certificate>>,
        echo: Option<&Echo>,
        fault: Option<TransportFault>,
    ) -> CmcReply {
        let retry_after = crate::ledger::retry_after(&outcome, self.desk.clock.now());
        let params = ResponseParams {
            outcome: outcome.clone(),
            status_string,
            style: self.style,
            request_body_part: echo.map_or(1, |e| e.body_part),
            transaction_id: echo.and_then(|e| e.transaction_id.clone()),
            recipient_nonce: echo.and_then(|e| e.nonce.clone()),
            issued,
            chain: vec![
                self.authority.issuing.cert.clone(),
                self.authority.root.cert.clone(),
            ],
            digest: DigestAlgorithm::Sha256,
        };
        let signer: &dyn Signer = if fault == Some(TransportFault::WrongSigner) {
            &self.decoy
        } else {
            &self.authority.issuing.key
        };
        let body =
            build_full_response(&params, &self.authority.issuing.cert, signer).unwrap_or_default();
        CmcReply {
            body,
            outcome,
            fault,
            retry_after,
            upstream: None,
        }
    }

    /// The failed response for `rejection` (nothing recorded here).
    pub(super) fn reject(&self, rejection: &Rejection, echo: Option<&Echo>) -> CmcReply {
        self.respond(
            Outcome::Failed {
                fail_info: Some(rejection.codes().fail_info),
            },
            Some(rejection.status_string()),
            None,
            echo,
            None,
        )
    }

    /// Records a request the HTTP layer refused before the CA could read it (body over the
    /// size limit, or too slow): it is a decision too, and goes into the audit trail.
    /// An endpoint name that is none is recorded as the request's own (EST full CMC).
    pub fn refuse_unread(
        &self,
        endpoint: impl IntoEndpoint,
        tls_cert: &[u8],
        rejection: &Rejection,
    ) {
        let origin = Origin::new(
            endpoint.into_endpoint().unwrap_or(Endpoint::FullCmc),
            tls_cert,
            &[],
        );
        self.desk
            .record_refusal(&self.decision(), &origin, None, rejection, None);
    }

    /// Handles a Full PKI Request presented over TLS with `tls_cert` (DER), as EST `/fullcmc`.
    pub fn handle_cmc(&self, request: &[u8], tls_cert: &[u8]) -> CmcReply {
        self.handle_cmc_at(Endpoint::FullCmc, request, tls_cert)
    }

    /// MS-WSTEP `QueryTokenStatus`: the request pending under `id` is collected as a
    /// re-submission of the stored request, when the presenting certificate is the one that
    /// submitted it (another client's RequestID is a poll for another request).
    pub fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        let origin = Origin::new(Endpoint::WstepQuery, tls_cert, &[]);
        // Behind an RA, a pending request is keyed by the user's certificate: the RA that
        // forwarded it collects it (the stored request is the user's, decided again in full).
        let by_ra = Retained::<Certificate>::from_der(tls_cert)
            .is_ok_and(|tls| self.trusted_ras.contains(&tls));
        let stored = {
            let store = self.desk.lock();
            let pending = i64::try_from(id)
                .ok()
                .and_then(|id| store.pending(id).ok().flatten());
            match pending {
                Some(p)
                    if (p.tls_fingerprint == origin.tls_fingerprint || by_ra)
                        && p.kind != Endpoint::SimpleReenroll =>
                {
                    Ok(p.request)
                }
                _ => Err(Rejection::PollMismatch(i64::try_from(id).unwrap_or(-1))),
            }
        };
        match stored {
            // Audited as its own endpoint: a collection, not a new submission. What is
            // stored for an RA is the user's request it forwarded, already unwrapped.
            Ok(request) => self.decide_cmc(Endpoint::WstepQuery, &request, tls_cert, true),
            Err(r) => {
                let store = self.decision();
                self.desk.record_refusal(&store, &origin, None, &r, None);
                self.reject(&r, None)
            }
        }
    }

    /// Handles a Full PKI Request that came in at `endpoint` (`fullcmc`, `cmc` or `wstep`,
    /// for the audit trail; a name that is no endpoint's is refused as malformed).
    pub fn handle_cmc_at(
        &self,
        endpoint: impl IntoEndpoint,
        request: &[u8],
        tls_cert: &[u8],
    ) -> CmcReply {
        match endpoint.into_endpoint() {
            Ok(endpoint) => self.decide_cmc(endpoint, request, tls_cert, false),
            Err(e) => self.reject(&Rejection::Malformed(e.to_string()), None),
        }
    }

    /// [`Ca::handle_cmc_at`]; `stored` when `request` is one this CA stored for a pending
    /// decision (for an RA: the forwarded request, no longer in its wrapper).
    pub(super) fn decide_cmc(
        &self,
        endpoint: Endpoint,
        request: &[u8],
        tls_cert: &[u8],
        stored: bool,
    ) -> CmcReply {
        let origin = Origin::new(endpoint, tls_cert, request);
        // Parsing and every signature verification happen before the store lock. A trusted RA
        // presents a wrapper: what it forwards is decided, for the certificate it renews.
        let intake = Retained::<Certificate>::from_der(tls_cert)
            .map_err(|_| Rejection::IdentityMismatch)
            .and_then(|tls| {
                if stored && self.trusted_ras.contains(&tls) {
                    return self.forwarded(request.to_vec());
                }
                self.unwrap_ra(request, &tls)
                    .unwrap_or_else(|| Ok(Intake::Cmc(request.to_vec(), tls)))
            });
        let (request, identity, verified) = match intake {
            Ok(Intake::Cmc(request, identity)) => (request, identity, None),
            Ok(Intake::Forwarded(request, facts)) => {
                (request, facts.renewal_certificate.clone(), Some(facts))
            }
            Ok(Intake::Reenroll {
                pkcs10,
                renewed,
                echo,
            }) => return self.decide_reenroll(origin, &pkcs10, &renewed, &echo),
            Err(r) => {
                self.desk
                    .record_refusal(&self.decision(), &origin, None, &r, None);
                return self.reject(&r, None);
            }
        };
        let origin = origin.renewing(&identity);
        let validated = match verified {
            Some(facts) => policy::accept_cmc(*facts, &identity, &self.context()),
            None => policy::validate_cmc(&request, &identity, &self.context()),
        };
        let (tls, accepted) = match validated {
            Ok(accepted) => (identity, accepted),
            Err(r) => {
                self.desk
                    .record_refusal(&self.decision(), &origin, None, &r, None);
                return self.reject(&r, None);
            }
        };
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, &accepted, &self.desk.limits);
        let renewal = Renewal::cmc(&origin, &accepted, &tls, &request, &same_request);
        // The decision is committed when `decide` returns: the response is signed without
        // holding the store.
        let answer = match self.desk.decide(self, &renewal, no_record, decided_already) {
            Ok(decided) => self.cmc_answer(decided),
            Err(failure) => return CmcReply::unavailable(failure),
        };
        self.respond(
            answer.outcome,
            answer.status,
            answer.issued,
            Some(&Echo::of(&accepted)),
            answer.fault,
        )
    }

    /// A trusted RA's re-enrollment: the user's PKCS#10 decided as an EST simplereenroll of
    /// exactly the certificate the RA names — revocation, pending, idempotency and key reuse
    /// as for the user directly — answered to the RA in CMC.
    pub(super) fn decide_reenroll(
        &self,
        origin: Origin,
        pkcs10: &[u8],
        renewed: &Retained<Certificate>,
        echo: &Echo,
    ) -> CmcReply {
        let origin = origin.renewing(renewed);
        let accepted = match policy::validate_simple(pkcs10, renewed, &self.context()) {
            Ok(accepted) => accepted,
            Err(r) => {
                self.desk
                    .record_refusal(&self.decision(), &origin, None, &r, None);
                return self.reject(&r, Some(echo));
            }
        };
        let (answer, fault) = match self.decide_simple(&origin, &accepted, renewed, pkcs10) {
            Ok(decided) => decided.bare(),
            Err(failure) => return CmcReply::unavailable(failure),
        };
        let answer = match answer {
            SimpleOutcome::Issued(cert) => {
                Answer::new(Outcome::Issued, Some("Issued".into()), Some(*cert), fault)
            }
            SimpleOutcome::Pending { id, resolve } => self.pending_answer(id, resolve, fault),
            SimpleOutcome::Rejected(r) => Answer::rejected(&r),
        };
        self.respond(
            answer.outcome,
            answer.status,
            answer.issued,
            Some(echo),
            answer.fault,
        )
    }

    /// Decides a checked re-enrollment of `renewed` (an EST simplereenroll, or an RA's
    /// re-enrollment wrapper): its transaction is its new key; `body` is what a pending
    /// record keeps.
    fn decide_simple(
        &self,
        origin: &Origin,
        accepted: &SimpleAccepted,
        renewed: &Retained<Certificate>,
        body: &[u8],
    ) -> Result<super::decide::Decided, crate::error::UpstreamFailure> {
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        let transaction = format!("key:{key_fingerprint}");
        let same_request =
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.desk.limits);
        let renewal = Renewal::reenrollment(
            origin,
            accepted,
            renewed,
            body,
            (&key_fingerprint, &transaction),
            &same_request,
        );
        self.desk.decide(self, &renewal, no_record, decided_already)
    }

    /// Handles an EST simplereenroll (PKCS#10, DER/base64) presented with `tls_cert`. A
    /// trusted RA does not come here: it forwards a re-enrollment as full CMC naming the
    /// certificate it renews ([`renewal_codec::cmc::ra::wrap_reenroll`]); its own
    /// simplereenroll would ask the CA to guess whose renewal it is, and is refused.
    pub fn handle_simple(
        &self,
        body: &[u8],
        tls_cert: &[u8],
    ) -> (SimpleReply, Option<TransportFault>) {
        let origin = Origin::new(Endpoint::SimpleReenroll, tls_cert, body);
        let checked = Retained::<Certificate>::from_der(tls_cert)
            .map_err(|_| Rejection::IdentityMismatch)
            .and_then(|tls| {
                if self.trusted_ras.contains(&tls) {
                    Err(Rejection::IdentityMismatch)
                } else {
                    Ok(tls)
                }
            })
            .and_then(|tls| policy::validate_simple(body, &tls, &self.context()).map(|a| (tls, a)));
        let (tls, accepted) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                self.desk
                    .record_refusal(&self.decision(), &origin, None, &r, None);
                return (SimpleReply::Rejected(r), None);
            }
        };
        let (answer, fault) = match self.decide_simple(&origin, &accepted, &tls, body) {
            Ok(decided) => decided.bare(),
            Err(failure) => return (SimpleReply::Unavailable(failure), None),
        };
        let reply = match answer {
            SimpleOutcome::Issued(cert) => match build_certs_only(&[*cert]) {
                Ok(der) => SimpleReply::Issued(der),
                Err(e) => SimpleReply::Rejected(Rejection::Internal(e.to_string())),
            },
            SimpleOutcome::Pending { resolve, .. } => {
                SimpleReply::Pending(self.retry_secs(resolve))
            }
            SimpleOutcome::Rejected(r) => SimpleReply::Rejected(r),
        };
        (reply, fault)
    }
}

/// Nothing recorded with the answer besides the decision itself.
pub(super) fn no_record(_: &Store, _: &super::decide::Decided) -> Result<(), Rejection> {
    Ok(())
}

/// The authority defers nothing ([`crate::desk::Decider::Deferred`] is uninhabited).
pub(super) fn decided_already(
    never: std::convert::Infallible,
) -> Result<super::decide::Decided, crate::error::UpstreamFailure> {
    match never {}
}
