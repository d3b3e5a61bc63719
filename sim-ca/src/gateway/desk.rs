//! The gateway's one path for every endpoint: a checked request, the ledger's check and claim
//! ([`crate::ledger`], the same as the simulated CA's), the upstream asked without the store
//! held, its verified answer recorded with the claim settled — or the claim released when no
//! answer came.

use super::*;

impl Gateway {
    /// Where a checked CMC request stands, from the gateway's state (in one transaction).
    pub(super) fn cmc_step(
        &self,
        store: &Store,
        accepted: &Accepted,
        tls: &Retained<Certificate>,
        origin: &Origin,
    ) -> Result<Step, Rejection> {
        let template = accepted.template.name.as_str();
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, accepted, &self.desk.limits);
        let lookup = Lookup {
            renewed: tls.value(),
            pending_key: &accepted.transaction,
            same_request: &same_request,
            key_fingerprint: &hex(&accepted.new_key.fingerprint()),
            transaction: &accepted.transaction,
            nonce: accepted.facts.sender_nonce.as_deref(),
            hold: true,
            guard_until: crate::ledger::guard_until(tls.value(), self.policy.grace),
        };
        self.step(store, origin, template, &lookup)
    }

    /// Where a checked request stands, from the ledger (in the caller's transaction).
    pub(super) fn step(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        lookup: &Lookup<'_>,
    ) -> Result<Step, Rejection> {
        match self
            .desk
            .ledger
            .stand(store, origin, self.desk.clock.unix(), template, lookup)?
        {
            Standing::Refused(rejection, pending) => {
                origin.refused(
                    store,
                    self.desk.clock.unix(),
                    Some(template),
                    &rejection,
                    pending,
                )?;
                Ok(Step::Answered(Box::new(GatewayAnswer::rejected(
                    &rejection,
                ))))
            }
            Standing::Poll(pending) => self.collected(store, origin, template, pending),
            Standing::Answered(cert) => Ok(Step::Answered(Box::new(GatewayAnswer::issued(*cert)))),
            Standing::Fresh(claim) => Ok(Step::Forward(claim)),
            Standing::InFlight { retry_after } => Ok(Step::InFlight { retry_after }),
        }
    }

    /// A poll: answered from the state when the request was collected already (by this
    /// instance or another) — the upstream need not be asked again; forwarded otherwise.
    pub(super) fn collected(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        pending: Pending,
    ) -> Result<Step, Rejection> {
        if pending.status == PendingStatus::Issued
            && let Some(der) = store.certificate(pending.cert_serial.as_deref().unwrap_or(""))?
        {
            let cert = Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
            self.desk.audit(
                store,
                origin,
                Some(template),
                AuditOutcome::ReplayAnswered,
                pending.cert_serial.as_deref(),
                Some(pending.id),
                "poll of a request already collected".into(),
            )?;
            return Ok(Step::Answered(Box::new(GatewayAnswer::issued(cert))));
        }
        Ok(Step::Poll(pending))
    }

    /// The one path of a checked request, whatever its endpoint: the ledger's check and
    /// claim (one transaction), the upstream asked without the store held, its answer verified
    /// and recorded with the claim settled (one transaction) — or, when no answer came, the
    /// claim released with the failure recorded, so the same request can come again.
    pub(super) fn decide(
        &self,
        origin: &Origin,
        item: &Forwardable<'_>,
        step: impl FnOnce(&Store) -> Result<Step, Rejection>,
        exchange: impl FnOnce(Option<u64>) -> Result<(GatewayAnswer, Option<u64>), (u16, String)>,
    ) -> Result<GatewayAnswer, UpstreamFailure> {
        let step = {
            let store = self.decision();
            store.atomically(|s| {
                s.bump("requests")?;
                step(s)
            })
        };
        let (poll, claim) = match step {
            Ok(Step::Answered(answer)) => return Ok(*answer),
            Ok(Step::Forward(claim)) => (None, Some(claim)),
            Ok(Step::Poll(pending)) => (Some(pending), None),
            Ok(Step::InFlight { retry_after }) => {
                return Err(UpstreamFailure {
                    status: 503,
                    retry_after: Some(retry_after),
                    text: "the same request is being decided: try again".into(),
                });
            }
            Err(r) => {
                if let Some(failure) = r.unavailable(self.policy.retry_after) {
                    return Err(failure);
                }
                self.record_refusal(origin, Some(item.template), &r);
                return Ok(GatewayAnswer::rejected(&r));
            }
        };
        let pending_id = poll.as_ref().map(|p| p.id);
        // The network exchange happens without the store: other users' requests go on.
        let upstream_pending = poll
            .as_ref()
            .and_then(|p| p.upstream_id)
            .and_then(|id| u64::try_from(id).ok());
        let (answer, upstream_id) = match exchange(upstream_pending) {
            Ok(answer) => answer,
            Err((status, text)) => {
                return Err(self.upstream_failed(
                    origin,
                    Some(item.template),
                    pending_id,
                    claim.as_ref(),
                    status,
                    text,
                ));
            }
        };
        let store = self.decision();
        let recorded = store.atomically(|s| {
            if let Some(claim) = &claim {
                claim.settle(s)?;
            }
            self.record_decision(s, origin, item, poll.as_ref(), answer, upstream_id)
        });
        drop(store);
        recorded.or_else(|r| {
            if let Some(failure) = r.unavailable(self.policy.retry_after) {
                return Err(failure);
            }
            self.record_refusal(origin, Some(item.template), &r);
            Ok(GatewayAnswer::rejected(&r))
        })
    }

    /// Handles a Full PKI Request from a user.
    pub fn handle_cmc_at(
        &self,
        endpoint: &'static str,
        request: &[u8],
        tls_cert: &[u8],
    ) -> CmcReply {
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
        let item = Forwardable {
            template: &accepted.template.name,
            renewed: &tls,
            new_key: &accepted.new_key,
            pending_key: &accepted.transaction,
            stored: request,
            collect_by_upstream_id: true,
            findings: &accepted.findings,
        };
        let decided = self.decide(
            &origin,
            &item,
            |s| self.cmc_step(s, &accepted, &tls, &origin),
            |pending| {
                self.exchange_cmc(
                    |id, nonce| {
                        renewal_codec::cmc::ra::wrap(
                            request,
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
            },
        );
        match decided {
            Ok(answer) => self.respond(answer, Some(&accepted)),
            Err(failure) => CmcReply::unavailable(failure),
        }
    }

    /// MS-WSTEP `QueryTokenStatus`: the gateway's pending request `id`, collected for the
    /// client that submitted it.
    pub fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        let origin = Origin::new("wstep-query", tls_cert, &[]);
        let stored = {
            let store = self.desk.lock();
            i64::try_from(id)
                .ok()
                .and_then(|id| store.pending(id).ok().flatten())
                .filter(|p| p.tls_fingerprint == origin.identity && p.kind != "simplereenroll")
        };
        match stored {
            Some(p) => self.handle_cmc_at("wstep-query", &p.request, tls_cert),
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
        let origin = Origin::new("simplereenroll", tls_cert, body);
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
        let item = Forwardable {
            template: &accepted.template.name,
            renewed: &tls,
            new_key: &accepted.new_key,
            pending_key: &key_fingerprint,
            stored: body,
            // Polled by re-forwarding: the upstream matches it to its pending request by the
            // renewed certificate and the new key.
            collect_by_upstream_id: false,
            findings: &[],
        };
        let same_request =
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.desk.limits);
        let step = |s: &Store| {
            let lookup = Lookup {
                renewed: tls.value(),
                pending_key: &key_fingerprint,
                same_request: &same_request,
                key_fingerprint: &key_fingerprint,
                transaction: &transaction,
                nonce: None,
                hold: true,
                guard_until: crate::ledger::guard_until(tls.value(), self.policy.grace),
            };
            self.step(s, &origin, item.template, &lookup)
        };
        let pkcs10 = accepted.pkcs10.der();
        let decided = self.decide(&origin, &item, step, |pending| {
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

/// A checked request as the gateway forwards and records it, whatever its endpoint.
pub(super) struct Forwardable<'a> {
    /// Its template's name.
    pub(super) template: &'a str,
    /// The certificate it renews: the one the user authenticated with.
    pub(super) renewed: &'a Retained<Certificate>,
    /// The new key.
    pub(super) new_key: &'a PublicKey,
    /// What its pending record is found by (transactionId, or the new key).
    pub(super) pending_key: &'a str,
    /// What a pending record keeps of it (the user's request).
    pub(super) stored: &'a [u8],
    /// Whether a pending answer is collected by the upstream's own request id.
    pub(super) collect_by_upstream_id: bool,
    /// What the request asks that the certificate will not say (recorded with the decision).
    pub(super) findings: &'a [String],
}
