//! What the gateway keeps of the upstream's decisions: issued certificates (the idempotency
//! record), pending requests under its own ids, refusals, the revocation the upstream
//! answered, the upstream's failures — each with its audit record, in one transaction.

use super::*;

impl Gateway {
    /// Records that nothing the upstream answered is delivered, and builds the HTTP failure.
    /// A claim the request held ends in the same transaction: released when nothing was
    /// decided (the same request may come again and is forwarded again), spent when the
    /// upstream issued a certificate that is not delivered (a re-send is told so, and the
    /// transaction never reaches the upstream twice).
    pub(super) fn upstream_failed(
        &self,
        origin: &Origin,
        template: Option<&str>,
        pending_id: Option<i64>,
        claim: Option<&Claim>,
        failure: NotDelivered,
    ) -> UpstreamFailure {
        let NotDelivered {
            status,
            text,
            decided,
        } = failure;
        let store = self.decision();
        let result = store.atomically(|s| {
            match claim {
                Some(claim) if decided => claim.spend(s)?,
                Some(claim) => claim.release(s)?,
                None => {}
            }
            s.bump("upstream_failures")?;
            self.desk.audit(
                s,
                origin,
                template,
                AuditOutcome::UpstreamFailed,
                None,
                pending_id,
                text.clone(),
            )
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record an upstream failure");
        }
        tracing::warn!(status, detail = %text, "upstream gave no decision");
        UpstreamFailure {
            status,
            retry_after: (status == 503).then_some(self.policy.retry_after),
            text,
        }
    }

    /// Records what the upstream decided, in the caller's transaction, and returns the
    /// client's answer (a pending answer carries the gateway's own request id).
    pub(super) fn record_decision(
        &self,
        store: &Store,
        item: &Renewal<'_>,
        poll: Option<&Pending>,
        answer: GatewayAnswer,
        upstream_id: Option<u64>,
    ) -> Result<GatewayAnswer, Rejection> {
        let origin = item.origin;
        let template = item.template.name.as_str();
        let old = item.renewed;
        match &answer.outcome {
            Outcome::Issued => {
                let pending_id = poll.map(|p| p.id);
                let Some(cert) = &answer.issued else {
                    self.desk.audit(
                        store,
                        origin,
                        Some(template),
                        AuditOutcome::NoCertificate,
                        None,
                        pending_id,
                        "the upstream issued out of band".into(),
                    )?;
                    return Ok(answer);
                };
                let serial = serial_text(cert.value());
                self.record_issued(store, cert, template, old, item.new_key)?;
                if let Some(id) = pending_id {
                    store.finish_pending(id, PendingStatus::Issued, Some(&serial))?;
                }
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::Issued,
                    Some(&serial),
                    pending_id,
                    crate::service::with_findings(
                        format!("renewal of {} issued upstream", serial_text(old.value())),
                        item.findings,
                    ),
                )?;
                Ok(answer)
            }
            Outcome::Pending { token, retry_at } => {
                let id = match poll {
                    Some(p) => {
                        store.count_poll(p.id)?;
                        self.desk.audit(
                            store,
                            origin,
                            Some(template),
                            AuditOutcome::StillPending,
                            None,
                            Some(p.id),
                            "still pending upstream".into(),
                        )?;
                        p.id
                    }
                    None => {
                        let id = self.add_pending(
                            store,
                            origin,
                            item.pending_key,
                            item.stored,
                            upstream_id.filter(|_| item.polls_by_token),
                        )?;
                        self.desk.audit(
                            store,
                            origin,
                            Some(template),
                            AuditOutcome::Pending,
                            None,
                            Some(id),
                            format!(
                                "taken under submission upstream (upstream request {})",
                                hex(token)
                            ),
                        )?;
                        id
                    }
                };
                let mut pending = GatewayAnswer::upstream(
                    Outcome::Pending {
                        token: id.to_be_bytes().to_vec(),
                        retry_at: *retry_at,
                    },
                    Some(format!("Taken under submission (request {id})")),
                );
                pending.upstream_nonce = answer.upstream_nonce;
                Ok(pending)
            }
            _ => {
                store.bump("rejected")?;
                if let Some(p) = poll {
                    store.finish_pending(p.id, PendingStatus::Denied, None)?;
                }
                // The upstream owns the revocation list; what it says of the renewed
                // certificate, the gateway keeps: the next request with it is refused here,
                // on every endpoint, without asking.
                if answer.status.as_deref().and_then(leading_hresult) == Some(CRYPT_E_REVOKED) {
                    store.revoke(&serial_text(old.value()), self.desk.clock.unix())?;
                }
                self.desk.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::Refused,
                    None,
                    poll.map(|p| p.id),
                    format!(
                        "refused upstream: {}",
                        answer.status.as_deref().unwrap_or("no status text")
                    ),
                )?;
                Ok(answer)
            }
        }
    }

    pub(super) fn add_pending(
        &self,
        store: &Store,
        origin: &Origin,
        transaction: &str,
        request: &[u8],
        upstream_id: Option<u64>,
    ) -> Result<i64, StoreError> {
        store.bump("pending")?;
        store.add_pending(&Pending {
            id: 0,
            tls_fingerprint: origin.identity.clone(),
            transaction: transaction.to_string(),
            request: request.to_vec(),
            kind: origin.endpoint,
            created_at: self.desk.clock.unix(),
            polls: 0,
            // Decided upstream: the gateway only waits for it.
            resolve: Resolve::Admin,
            end: PendingEnd::Issue,
            status: PendingStatus::Pending,
            cert_serial: None,
            upstream_id: upstream_id.and_then(|id| i64::try_from(id).ok()),
        })
    }

    /// Records a certificate the upstream issued (the idempotency record: the same old
    /// certificate and new key get it again). A certificate already recorded (the same answer
    /// collected twice, by two instances) is not recorded again.
    pub(super) fn record_issued(
        &self,
        store: &Store,
        cert: &Retained<Certificate>,
        template: &str,
        old: &Retained<Certificate>,
        key: &PublicKey,
    ) -> Result<(), StoreError> {
        let serial = serial_text(cert.value());
        let tbs = cert.value().tbs_certificate();
        let recorded = store.record_certificate_once(
            &serial,
            &renewal_codec::x509::name_text(tbs.subject()),
            cert.der(),
            Some(template),
            unix(std::time::SystemTime::UNIX_EPOCH + tbs.validity().not_after.to_unix_duration()),
            Some(&serial_text(old.value())),
            &hex(&key.fingerprint()),
            self.desk.clock.unix(),
        )?;
        if recorded {
            store.bump("issued")?;
        }
        Ok(())
    }
}
