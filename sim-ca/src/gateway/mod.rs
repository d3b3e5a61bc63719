//! The renewal gateway: the seed's server half in front of a real CA. It terminates the user's
//! client-certificate TLS (the HTTPS front ends), applies the same renewal-only policy as the
//! simulated CA ([`crate::policy`]: binding to the presenting certificate, no elevation, key
//! and template rules), keeps the replay, idempotency and pending state and the audit trail in
//! its store, and forwards what passes to an upstream CA under its **own** RA identity:
//!
//! * full CMC (EST `/fullcmc`, RFC 5273 `/cmc`, MS-WSTEP): the user's signed request, unchanged,
//!   inside the RA's signed PKIData (RFC 5272 §3.2.1.3.3 nested content), so the upstream checks
//!   both the user's old-key signature and the RA's authority;
//! * EST simplereenroll: the user's PKCS#10 as the RA's own request for the subject the gateway
//!   validated (RFC 7030 §3.3).
//!
//! The client gets an answer the gateway signs with its RA key (a CMC response the client
//! verifies like the CA's) carrying the certificate the upstream issued — after the gateway
//! checked that the certificate chains to the upstream CA, certifies the new key and keeps the
//! subject. An upstream that cannot be reached or answers what cannot be verified is a 503 with
//! Retry-After (502 for an unverifiable answer): nothing is recorded as decided, so the same
//! request may come again and is forwarded again (the upstream answers a re-sent request with
//! the certificate it already issued).

pub mod ca_backend;
pub mod config;
pub mod credential;
pub mod upstream;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use renewal_core::cmc::{
    DigestAlgorithm, Limits, Outcome, ParsedResponse, Profile, PublicKey, ResponseForm,
    ResponseParams, Retained, SoftwareKey, StatusStyle, build_certs_only, build_full_response,
    parse_response, verify_request::hex,
};
use x509_cert::Certificate;

use crate::{
    backend::{Backend, UpstreamFailure},
    clock::{Clock, unix},
    durability::GroupSync,
    ledger::{Claim, Ledger, Lookup, Origin, Standing},
    policy::{self, Accepted, PolicyContext, Rejection, serial_text},
    service::{CmcReply, LockedStore, SimpleReply, lock, same_cmc_pkcs10, same_simple_pkcs10},
    store::{AuditOutcome, AuditRecord, Pending, PendingEnd, Resolve, Store, StoreError},
    templates::TemplateRegistry,
};

use ca_backend::{CaBackend, CmcAnswer, Failure};

/// What the gateway checks requests against.
pub struct Policy {
    /// The CA certificates that issue users' certificates (what a renewed certificate must
    /// have been issued by).
    pub client_cas: Vec<Retained<Certificate>>,
    /// The upstream CA's certificates: what issued certificates must chain to, and what the
    /// answers carry.
    pub upstream_cas: Vec<Retained<Certificate>>,
    /// Templates and their key rules.
    pub templates: TemplateRegistry,
    /// How long after expiry a certificate may still be renewed.
    pub grace: Duration,
    /// Which RFC deviations are accepted.
    pub profile: Profile,
    /// Seconds a client is told to wait when the upstream cannot be asked.
    pub retry_after: u64,
    /// Open pending requests one certificate may have ([`crate::ledger::DEFAULT_PENDING_CAP`]).
    pub max_pending_per_identity: u32,
}

/// The gateway's own credential: the RA certificate (first) with its chain, and its key. It
/// authenticates to the upstream and signs the wrappers and the answers to clients.
pub struct RaCredential {
    /// The RA certificate, then its issuers.
    pub chain: Vec<Retained<Certificate>>,
    /// Its key.
    pub key: SoftwareKey,
}

/// Counters for `/metrics`, since this process started.
#[derive(Default)]
struct Metrics {
    /// Upstream exchanges, and their total time (µs).
    upstream_requests: AtomicU64,
    upstream_micros: AtomicU64,
    /// Upstream exchanges that failed (unreachable, timeout, unverifiable).
    upstream_failures: AtomicU64,
    /// Exchanges by latency bucket (≤ 5, 10, 25, 50, 100, 250, 1000 ms, +Inf).
    upstream_buckets: [AtomicU64; 8],
}

const BUCKETS_MS: [u64; 7] = [5, 10, 25, 50, 100, 250, 1000];

impl Metrics {
    fn observe(&self, took: Duration, failed: bool) {
        self.upstream_requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.upstream_micros.fetch_add(micros, Ordering::Relaxed);
        if failed {
            self.upstream_failures.fetch_add(1, Ordering::Relaxed);
        }
        let ms = micros / 1000;
        let bucket = BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(7);
        self.upstream_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// The gateway.
pub struct Gateway {
    policy: Policy,
    ra: RaCredential,
    /// The CA behind: over the network, or the simulated authority in-process.
    upstream: Box<dyn CaBackend>,
    store: Mutex<Store>,
    sync: Arc<GroupSync>,
    clock: Clock,
    limits: Limits,
    metrics: Metrics,
    ledger: Ledger,
}

/// Where a request stands before it is forwarded.
enum Step {
    /// Answered from the gateway's state.
    Answered(Box<GatewayAnswer>),
    /// A new request, its transaction claimed: forward it.
    Forward(Claim),
    /// A poll of a request pending upstream: forward it again.
    Poll(Pending),
    /// The same request is being forwarded right now (by this instance or another): the
    /// client is told to come back, and gets the answer then.
    InFlight,
}

/// An answer decided by the gateway (before signing).
struct GatewayAnswer {
    outcome: Outcome,
    status: Option<String>,
    issued: Option<Retained<Certificate>>,
    /// The gateway's own refusal, when it refused (not the upstream).
    refusal: Option<Rejection>,
}

impl GatewayAnswer {
    fn issued(cert: Retained<Certificate>) -> Self {
        Self {
            outcome: Outcome::Issued,
            status: Some("Issued".into()),
            issued: Some(cert),
            refusal: None,
        }
    }

    fn rejected(rejection: &Rejection) -> Self {
        Self {
            outcome: Outcome::Failed {
                fail_info: Some(rejection.codes().fail_info),
            },
            status: Some(rejection.status_string()),
            issued: None,
            refusal: Some(rejection.clone()),
        }
    }

    /// An answer decided upstream.
    fn upstream(outcome: Outcome, status: Option<String>) -> Self {
        Self {
            outcome,
            status,
            issued: None,
            refusal: None,
        }
    }
}

impl Gateway {
    /// A gateway with `policy`, its RA credential, the CA behind it and a store.
    pub fn new(
        policy: Policy,
        ra: RaCredential,
        upstream: Box<dyn CaBackend>,
        store: Store,
        clock: Clock,
    ) -> Result<Self, String> {
        let Some(ra_cert) = ra.chain.first() else {
            return Err("the RA credential has no certificate".into());
        };
        // Mistakes that would fail every renewal are refused at start, not per request.
        let certified =
            PublicKey::from_spki(ra_cert.value().tbs_certificate().subject_public_key_info())
                .map_err(|e| format!("the RA certificate's key: {e}"))?;
        let held = PublicKey::from_spki(renewal_core::cmc::Signer::public_key(&ra.key))
            .map_err(|e| format!("the RA key: {e}"))?;
        if certified != held {
            return Err("the RA key is not the RA certificate's key".into());
        }
        if !renewal_core::x509::may_sign_cmc_responses(ra_cert.value()) {
            return Err(
                "the RA certificate carries no id-kp-cmcRA (RFC 6402 §2.10): clients would \
                 refuse every answer it signs"
                    .into(),
            );
        }
        if policy.upstream_cas.is_empty() || policy.client_cas.is_empty() {
            return Err("the gateway needs the upstream's and the clients' CA certificates".into());
        }
        let max_pending = policy.max_pending_per_identity;
        Ok(Self {
            policy,
            ra,
            upstream,
            sync: store.group_sync(),
            store: Mutex::new(store),
            clock,
            limits: Limits::default(),
            metrics: Metrics::default(),
            ledger: Ledger::new(max_pending),
        })
    }

    /// The clock (tests advance it with the upstream's).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `f` with the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.decision())
    }

    /// The audit trail, oldest first.
    pub fn audit_trail(&self) -> Vec<AuditRecord> {
        lock(&self.store).audit().unwrap_or_default()
    }

    fn decision(&self) -> LockedStore<'_> {
        LockedStore {
            store: Some(lock(&self.store)),
            sync: &self.sync,
        }
    }

    fn context(&self) -> PolicyContext<'_> {
        PolicyContext {
            issuers: &self.policy.client_cas,
            templates: &self.policy.templates,
            now: self.clock.now(),
            grace: self.policy.grace,
            limits: self.limits,
            profile: self.policy.profile,
        }
    }

    fn ra_cert(&self) -> &Retained<Certificate> {
        &self.ra.chain[0]
    }

    /// Appends one audit record for `origin`, at the gateway's time.
    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        outcome: AuditOutcome,
        serial: Option<&str>,
        pending_id: Option<i64>,
        detail: String,
    ) -> Result<(), StoreError> {
        origin.audit(
            store,
            self.clock.unix(),
            template,
            outcome,
            serial,
            pending_id,
            detail,
        )
    }

    /// Records a refusal (counter and audit record) in its own transaction.
    fn record_refusal(&self, origin: &Origin, template: Option<&str>, rejection: &Rejection) {
        origin.record_refusal(
            &self.decision(),
            self.clock.unix(),
            template,
            rejection,
            None,
        );
    }

    /// Records that the upstream gave no usable decision, and builds the HTTP failure.
    /// A claim the request held is released in the same transaction: nothing was decided, so
    /// the same request may come again and is forwarded again.
    fn upstream_failed(
        &self,
        origin: &Origin,
        template: Option<&str>,
        pending_id: Option<i64>,
        claim: Option<&Claim>,
        status: u16,
        text: String,
    ) -> UpstreamFailure {
        let store = self.decision();
        let result = store.atomically(|s| {
            if let Some(claim) = claim {
                claim.release(s)?;
            }
            s.bump("upstream_failures")?;
            self.audit(
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

    /// The gateway's CMC response, signed with the RA key, echoing the client's controls.
    fn respond(&self, answer: GatewayAnswer, echo: Option<&Accepted>) -> CmcReply {
        let retry_after = crate::ledger::retry_after(&answer.outcome, self.clock.now());
        let params = ResponseParams {
            outcome: answer.outcome.clone(),
            status_string: answer.status,
            style: StatusStyle::V2,
            request_body_part: echo.and_then(|a| a.facts.request_body_part).unwrap_or(1),
            transaction_id: echo.and_then(|a| a.facts.transaction_id.clone()),
            recipient_nonce: echo.and_then(|a| a.facts.sender_nonce.clone()),
            issued: answer.issued,
            chain: self
                .ra
                .chain
                .iter()
                .chain(&self.policy.upstream_cas)
                .cloned()
                .collect(),
            digest: DigestAlgorithm::Sha256,
        };
        let body = build_full_response(&params, self.ra_cert(), &self.ra.key).unwrap_or_default();
        CmcReply {
            body,
            outcome: answer.outcome,
            fault: None,
            retry_after,
            upstream: None,
        }
    }

    fn failure_reply(failure: UpstreamFailure) -> CmcReply {
        CmcReply {
            body: Vec::new(),
            outcome: Outcome::Failed { fail_info: None },
            fault: None,
            retry_after: failure.retry_after,
            upstream: Some(failure),
        }
    }

    /// Where a checked CMC request stands, from the gateway's state (in one transaction).
    fn cmc_step(
        &self,
        store: &Store,
        accepted: &Accepted,
        tls: &Retained<Certificate>,
        origin: &Origin,
    ) -> Result<Step, Rejection> {
        let template = accepted.template.name.as_str();
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, accepted, &self.limits);
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
    fn step(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        lookup: &Lookup<'_>,
    ) -> Result<Step, Rejection> {
        match self
            .ledger
            .stand(store, origin, self.clock.unix(), template, lookup)?
        {
            Standing::Refused(rejection, pending) => {
                origin.refused(
                    store,
                    self.clock.unix(),
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
            Standing::InFlight => Ok(Step::InFlight),
        }
    }

    /// A poll: answered from the state when the request was collected already (by this
    /// instance or another) — the upstream need not be asked again; forwarded otherwise.
    fn collected(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        pending: Pending,
    ) -> Result<Step, Rejection> {
        if pending.status == "issued"
            && let Some(der) = store.certificate(pending.cert_serial.as_deref().unwrap_or(""))?
        {
            let cert = Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
            self.audit(
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

    /// Wraps what the user sent in the RA's signed PKIData (`wrap` builds it, given the RA's
    /// fresh transactionId and nonce) and sends it upstream (over MS-WSTEP, a request pending
    /// upstream under `pending` is collected by its id instead).
    fn forward(
        &self,
        wrap: impl FnOnce(u64, &[u8]) -> renewal_core::cmc::Result<Vec<u8>>,
        pending: Option<u64>,
    ) -> Result<Result<CmcAnswer, Failure>, String> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let mut nonce = [0u8; 16];
        let mut id = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .and_then(|()| SystemRandom::new().fill(&mut id))
            .map_err(|_| "RNG".to_string())?;
        let wrapped = wrap(u64::from_be_bytes(id) >> 1, &nonce)
            .map_err(|e| format!("wrapping the request: {e}"))?;
        Ok(self.timed(|| self.upstream.cmc(&wrapped, pending), |r| r.is_ok()))
    }

    /// Runs one upstream exchange, counted and timed for `/metrics` and the log.
    fn timed<T, E: std::fmt::Display>(
        &self,
        call: impl FnOnce() -> Result<T, E>,
        usable: impl Fn(&Result<T, E>) -> bool,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call();
        let failed = !usable(&result);
        let took = started.elapsed();
        self.metrics.observe(took, failed);
        match &result {
            Ok(_) => tracing::info!(latency_us = took.as_micros() as u64, failed, "upstream"),
            Err(e) => tracing::warn!(error = %e, latency_us = took.as_micros() as u64, "upstream"),
        }
        result
    }

    /// The certificate in an upstream answer that certifies `key`, provided it chains to the
    /// upstream CA and is the renewal of `old` and nothing more: the same subject, names,
    /// extended key usages, basic constraints and template (each compared as parsed values),
    /// as strictly as the client checks it. Anything added or changed is a 502: the gateway
    /// never delivers a certificate it would not have asked for.
    fn certificate_for(
        &self,
        certificates: &[Retained<Certificate>],
        key: &PublicKey,
        old: &Certificate,
    ) -> Result<Retained<Certificate>, String> {
        let issued = certificates
            .iter()
            .find(|c| {
                PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info())
                    .is_ok_and(|k| k == *key)
            })
            .ok_or("the upstream's certificate does not certify the new key")?;
        if !self
            .policy
            .upstream_cas
            .iter()
            .any(|ca| renewal_core::x509::verify_issued_by(issued, ca.value()).is_ok())
        {
            return Err("the upstream's certificate does not chain to the upstream CA".into());
        }
        renewal_core::x509::same_renewal_profile(issued.value(), old)
            .map_err(|what| format!("the upstream's certificate has another {what}"))?;
        Ok(issued.clone())
    }

    /// Reads the upstream's answer to a forwarded CMC request: HTTP errors and answers that do
    /// not verify become failures; a verified response becomes the client's answer.
    fn read_cmc_answer(
        &self,
        answer: Result<CmcAnswer, Failure>,
        new_key: &PublicKey,
        renewed: &Certificate,
    ) -> Result<(GatewayAnswer, Option<u64>), (u16, String)> {
        let (der, upstream_id) = match answer {
            Err(Failure::Unavailable(text)) => return Err((503, text)),
            Err(Failure::BadAnswer(text)) => return Err((502, text)),
            Ok(CmcAnswer::Refused { text }) => {
                return Ok((
                    GatewayAnswer::upstream(
                        Outcome::Failed { fail_info: None },
                        Some(format!("refused by the CA: {text}")),
                    ),
                    None,
                ));
            }
            Ok(CmcAnswer::Response { der, upstream_id }) => (der, upstream_id),
        };
        let response: ParsedResponse = parse_response(&der, &self.limits)
            .map_err(|e| (502, format!("upstream answer: {e}")))?;
        if response.form != ResponseForm::FullPkiResponse {
            return Err((502, "upstream answer is not a full PKI response".into()));
        }
        let signer = response
            .verify_signer()
            .map_err(|e| (502, format!("upstream answer signature: {e}")))?;
        // Signed by the upstream CA itself: one of its configured certificates, nothing it
        // merely issued (a user's certificate chains to it too).
        if !self.policy.upstream_cas.contains(signer) {
            return Err((
                502,
                "upstream answer signed by a certificate we do not trust".into(),
            ));
        }
        let status = response.status_string.clone();
        match &response.outcome {
            Outcome::Issued => {
                if response
                    .certificates
                    .iter()
                    .all(|c| self.policy.upstream_cas.contains(c))
                {
                    // "Issued out of band": nothing to deliver, passed on as such.
                    return Ok((GatewayAnswer::upstream(Outcome::Issued, status), None));
                }
                let cert = self
                    .certificate_for(&response.certificates, new_key, renewed)
                    .map_err(|e| (502, e))?;
                Ok((GatewayAnswer::issued(cert), upstream_id))
            }
            Outcome::Pending { token, retry_at } => Ok((
                GatewayAnswer::upstream(
                    Outcome::Pending {
                        token: token.clone(),
                        retry_at: *retry_at,
                    },
                    status,
                ),
                upstream_id,
            )),
            Outcome::Failed { fail_info } => Ok((
                GatewayAnswer::upstream(
                    Outcome::Failed {
                        fail_info: *fail_info,
                    },
                    status,
                ),
                upstream_id,
            )),
            other => Err((502, format!("upstream answered {other:?}"))),
        }
    }

    /// Records what the upstream decided, in the caller's transaction, and returns the
    /// client's answer (a pending answer carries the gateway's own request id).
    fn record_decision(
        &self,
        store: &Store,
        origin: &Origin,
        item: &Forwardable<'_>,
        poll: Option<&Pending>,
        answer: GatewayAnswer,
        upstream_id: Option<u64>,
    ) -> Result<GatewayAnswer, Rejection> {
        let template = item.template;
        let old = item.renewed;
        match &answer.outcome {
            Outcome::Issued => {
                let pending_id = poll.map(|p| p.id);
                let Some(cert) = &answer.issued else {
                    self.audit(
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
                    store.finish_pending(id, "issued", Some(&serial))?;
                }
                self.audit(
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
                        self.audit(
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
                            upstream_id.filter(|_| item.collect_by_upstream_id),
                        )?;
                        self.audit(
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
                Ok(GatewayAnswer::upstream(
                    Outcome::Pending {
                        token: id.to_be_bytes().to_vec(),
                        retry_at: *retry_at,
                    },
                    Some(format!("Taken under submission (request {id})")),
                ))
            }
            _ => {
                store.bump("rejected")?;
                if let Some(p) = poll {
                    store.finish_pending(p.id, "denied", None)?;
                }
                // The upstream owns the revocation list; what it says of the renewed
                // certificate, the gateway keeps: the next request with it is refused here,
                // on every endpoint, without asking.
                if answer.status.as_deref().and_then(leading_hresult) == Some(CRYPT_E_REVOKED) {
                    store.revoke(&serial_text(old.value()), self.clock.unix())?;
                }
                self.audit(
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

    fn add_pending(
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
            kind: origin.endpoint.into(),
            created_at: self.clock.unix(),
            polls: 0,
            // Decided upstream: the gateway only waits for it.
            resolve: Resolve::Admin,
            end: PendingEnd::Issue,
            status: "pending".into(),
            cert_serial: None,
            upstream_id: upstream_id.and_then(|id| i64::try_from(id).ok()),
        })
    }

    /// Records a certificate the upstream issued (the idempotency record: the same old
    /// certificate and new key get it again). A certificate already recorded (the same answer
    /// collected twice, by two instances) is not recorded again.
    fn record_issued(
        &self,
        store: &Store,
        cert: &Retained<Certificate>,
        template: &str,
        old: &Retained<Certificate>,
        key: &PublicKey,
    ) -> Result<(), StoreError> {
        let serial = serial_text(cert.value());
        if store.serial_exists(&serial)? {
            return Ok(());
        }
        let tbs = cert.value().tbs_certificate();
        store.bump("issued")?;
        store.record_certificate(
            &serial,
            &tbs.subject().to_string(),
            cert.der(),
            Some(template),
            unix(std::time::SystemTime::UNIX_EPOCH + tbs.validity().not_after.to_unix_duration()),
            Some(&serial_text(old.value())),
            &hex(&key.fingerprint()),
            self.clock.unix(),
        )
    }

    /// The one path of a checked request, whatever its endpoint: the ledger's check and
    /// claim (one transaction), the upstream asked without the store held, its answer verified
    /// and recorded with the claim settled (one transaction) — or, when no answer came, the
    /// claim released with the failure recorded, so the same request can come again.
    fn decide(
        &self,
        origin: &Origin,
        item: &Forwardable<'_>,
        step: impl FnOnce(&Store) -> Result<Step, Rejection>,
        wrap: impl FnOnce(u64, &[u8]) -> renewal_core::cmc::Result<Vec<u8>>,
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
            Ok(Step::InFlight) => {
                return Err(UpstreamFailure {
                    status: 503,
                    retry_after: Some(1),
                    text: "the same request is being decided: try again".into(),
                });
            }
            Err(r) => {
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
        let answer = match self.forward(wrap, upstream_pending) {
            Ok(exchange) => self.read_cmc_answer(exchange, item.new_key, item.renewed.value()),
            // Nothing left the gateway (the wrapper could not be built).
            Err(text) => Err((500, text)),
        };
        let (answer, upstream_id) = match answer {
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
        let der = renewal_core::cmc::input::to_der(request, &self.limits).map(|(der, _)| der);
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
            |id, nonce| {
                renewal_core::cmc::ra::wrap(request, &self.ra.key, self.ra_cert(), id, nonce)
            },
        );
        match decided {
            Ok(answer) => self.respond(answer, Some(&accepted)),
            Err(failure) => Self::failure_reply(failure),
        }
    }

    /// MS-WSTEP `QueryTokenStatus`: the gateway's pending request `id`, collected for the
    /// client that submitted it.
    pub fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        let origin = Origin::new("wstep-query", tls_cert, &[]);
        let stored = {
            let store = lock(&self.store);
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
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.limits);
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
        let decided = self.decide(&origin, &item, step, |id, nonce| {
            renewal_core::cmc::ra::wrap_reenroll(
                pkcs10,
                &tls,
                &self.ra.key,
                self.ra_cert(),
                id,
                nonce,
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
                    .duration_since(self.clock.now())
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
struct Forwardable<'a> {
    /// Its template's name.
    template: &'a str,
    /// The certificate it renews: the one the user authenticated with.
    renewed: &'a Retained<Certificate>,
    /// The new key.
    new_key: &'a PublicKey,
    /// What its pending record is found by (transactionId, or the new key).
    pending_key: &'a str,
    /// What a pending record keeps of it (the user's request).
    stored: &'a [u8],
    /// Whether a pending answer is collected by the upstream's own request id.
    collect_by_upstream_id: bool,
    /// What the request asks that the certificate will not say (recorded with the decision).
    findings: &'a [String],
}

impl Backend for Gateway {
    fn cacerts(&self) -> Result<Vec<u8>, String> {
        build_certs_only(&self.policy.upstream_cas).map_err(|e| e.to_string())
    }
    fn ca_certificates(&self) -> Vec<Retained<Certificate>> {
        self.ra
            .chain
            .iter()
            .chain(&self.policy.upstream_cas)
            .cloned()
            .collect()
    }
    fn refuse_unread(&self, endpoint: &'static str, tls_cert: &[u8], rejection: &Rejection) {
        self.record_refusal(&Origin::new(endpoint, tls_cert, &[]), None, rejection);
    }
    fn handle_cmc_at(&self, endpoint: &'static str, request: &[u8], tls_cert: &[u8]) -> CmcReply {
        Gateway::handle_cmc_at(self, endpoint, request, tls_cert)
    }
    fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        Gateway::query_token_status(self, id, tls_cert)
    }
    fn handle_simple(
        &self,
        body: &[u8],
        tls_cert: &[u8],
    ) -> (SimpleReply, Option<crate::scenario::TransportFault>) {
        (Gateway::handle_simple(self, body, tls_cert), None)
    }
    fn metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = String::from(
            "# HELP gateway_events_total Requests and decisions by kind, in the shared state.\n\
             # TYPE gateway_events_total counter\n",
        );
        for (kind, value) in self.with_store(|s| s.counters()).unwrap_or_default() {
            if kind.contains(':') {
                continue;
            }
            out.push_str(&format!(
                "gateway_events_total{{kind=\"{}\"}} {value}\n",
                crate::metrics::label(&kind)
            ));
        }
        out.push_str(
            "# HELP gateway_upstream_seconds Time of exchanges with the upstream CA, this process.\n\
             # TYPE gateway_upstream_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (i, bucket) in m.upstream_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1000.0));
            out.push_str(&format!(
                "gateway_upstream_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "gateway_upstream_seconds_sum {}\ngateway_upstream_seconds_count {}\n\
             # HELP gateway_upstream_failures_total Upstream exchanges that gave no usable answer.\n\
             # TYPE gateway_upstream_failures_total counter\ngateway_upstream_failures_total {}\n",
            m.upstream_micros.load(Ordering::Relaxed) as f64 / 1e6,
            m.upstream_requests.load(Ordering::Relaxed),
            m.upstream_failures.load(Ordering::Relaxed),
        ));
        let pending = self
            .with_store(|s| s.list_pending())
            .map(|l| l.len())
            .unwrap_or(0);
        out.push_str(&format!(
            "# HELP gateway_pending_requests Requests pending upstream.\n\
             # TYPE gateway_pending_requests gauge\ngateway_pending_requests {pending}\n"
        ));
        out
    }
    fn health(&self) -> Result<(), String> {
        self.with_store(|s| s.counter("requests").map(|_| ()))
            .map_err(|e| e.to_string())
    }
}

/// CRYPT_E_REVOKED: what a CA answers for a revoked certificate (ADCS; sim-ca's table).
const CRYPT_E_REVOKED: u32 = 0x8009_2010;

/// The HRESULT an ADCS-style status string starts with (`0x80092010: ...`), parsed.
fn leading_hresult(status: &str) -> Option<u32> {
    let digits = status.strip_prefix("0x")?.get(..8)?;
    u32::from_str_radix(digits, 16).ok()
}

/// Bounds a Retry-After the upstream asks for: at least a second, at most an hour.
fn bounded_retry(secs: u64) -> u64 {
    secs.clamp(1, 3600)
}
