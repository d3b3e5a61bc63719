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
    ledger::Origin,
    policy::{self, Accepted, PolicyContext, Rejection, serial_text},
    service::{CmcReply, LockedStore, SimpleReply, lock, same_cmc_pkcs10, same_simple_pkcs10},
    store::{AuditOutcome, AuditRecord, Pending, PendingEnd, Resolve, Store, StoreError},
    templates::TemplateRegistry,
};

use ca_backend::{CaBackend, CmcAnswer, Failure, SimpleAnswer};

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
}

/// Where a request stands before it is forwarded.
enum Step {
    /// Answered from the gateway's state.
    Answered(Box<GatewayAnswer>),
    /// A new request: forward it.
    Forward,
    /// A poll of a request pending upstream: forward it again.
    Poll(Pending),
}

/// An answer decided by the gateway (before signing).
struct GatewayAnswer {
    outcome: Outcome,
    status: Option<String>,
    issued: Option<Retained<Certificate>>,
}

impl GatewayAnswer {
    fn issued(cert: Retained<Certificate>) -> Self {
        Self {
            outcome: Outcome::Issued,
            status: Some("Issued".into()),
            issued: Some(cert),
        }
    }

    fn rejected(rejection: &Rejection) -> Self {
        Self {
            outcome: Outcome::Failed {
                fail_info: Some(rejection.codes().fail_info),
            },
            status: Some(rejection.status_string()),
            issued: None,
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
        Ok(Self {
            policy,
            ra,
            upstream,
            sync: store.group_sync(),
            store: Mutex::new(store),
            clock,
            limits: Limits::default(),
            metrics: Metrics::default(),
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
    fn upstream_failed(
        &self,
        origin: &Origin,
        template: Option<&str>,
        pending_id: Option<i64>,
        status: u16,
        text: String,
    ) -> UpstreamFailure {
        let store = self.decision();
        let result = store.atomically(|s| {
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

    /// The certificate already answered for this old certificate and this new key.
    fn answered_before(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        old_serial: &str,
        key_fingerprint: &str,
    ) -> Result<Option<Retained<Certificate>>, Rejection> {
        origin.answered_before(
            store,
            self.clock.unix(),
            template,
            old_serial,
            key_fingerprint,
            "re-sent request answered with the certificate the upstream issued",
        )
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
        let refuse = |rejection: Rejection| -> Result<Step, Rejection> {
            origin.refused(store, self.clock.unix(), Some(template), &rejection, None)?;
            Ok(Step::Answered(Box::new(GatewayAnswer::rejected(
                &rejection,
            ))))
        };
        store.bump("requests")?;
        if let Some(pending) = store.find_pending(&origin.tls_fingerprint, &accepted.transaction)? {
            if !same_cmc_pkcs10(&pending.request, accepted, &self.limits) {
                return refuse(Rejection::PollMismatch(pending.id));
            }
            // Collected already (by this instance or another): the certificate is here, the
            // upstream need not be asked again.
            if pending.status == "issued"
                && let Some(der) =
                    store.certificate(pending.cert_serial.as_deref().unwrap_or(""))?
            {
                let cert =
                    Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
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
            return Ok(Step::Poll(pending));
        }
        let old_serial = serial_text(tls.value());
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        if let Some(cert) =
            self.answered_before(store, origin, template, &old_serial, &key_fingerprint)?
        {
            return Ok(Step::Answered(Box::new(GatewayAnswer::issued(cert))));
        }
        if store.key_certified(&key_fingerprint)? {
            return refuse(Rejection::KeyReuse);
        }
        let transaction_key = format!("{}:{}", origin.tls_fingerprint, accepted.transaction);
        if store.seen("transaction", &transaction_key)? {
            return refuse(Rejection::Replay);
        }
        if let Some(nonce) = &accepted.facts.sender_nonce
            && store.seen("nonce", &hex(nonce))?
        {
            return refuse(Rejection::Replay);
        }
        Ok(Step::Forward)
    }

    /// Wraps the user's request in the RA's signed PKIData and sends it upstream (over
    /// MS-WSTEP, a request pending upstream under `pending` is collected by its id instead).
    fn forward_cmc(
        &self,
        request: &[u8],
        pending: Option<u64>,
    ) -> Result<Result<CmcAnswer, Failure>, String> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let mut nonce = [0u8; 16];
        let mut id = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .and_then(|()| SystemRandom::new().fill(&mut id))
            .map_err(|_| "RNG".to_string())?;
        let wrapped = renewal_core::cmc::ra::wrap(
            request,
            &self.ra.key,
            self.ra_cert(),
            u64::from_be_bytes(id) >> 1,
            &nonce,
        )
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
    /// upstream CA and keeps the old subject (names and keys compared as parsed values).
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
        if issued.value().tbs_certificate().subject() != old.tbs_certificate().subject() {
            return Err("the upstream's certificate has another subject".into());
        }
        Ok(issued.clone())
    }

    /// Reads the upstream's answer to a forwarded CMC request: HTTP errors and answers that do
    /// not verify become failures; a verified response becomes the client's answer.
    fn read_cmc_answer(
        &self,
        answer: Result<CmcAnswer, Failure>,
        accepted: &Accepted,
    ) -> Result<(GatewayAnswer, Option<u64>), (u16, String)> {
        let (der, upstream_id) = match answer {
            Err(Failure::Unavailable(text)) => return Err((503, text)),
            Err(Failure::BadAnswer(text)) => return Err((502, text)),
            Ok(CmcAnswer::Refused { text }) => {
                return Ok((
                    GatewayAnswer {
                        outcome: Outcome::Failed { fail_info: None },
                        status: Some(format!("refused by the CA: {text}")),
                        issued: None,
                    },
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
                    return Ok((
                        GatewayAnswer {
                            outcome: Outcome::Issued,
                            status,
                            issued: None,
                        },
                        None,
                    ));
                }
                let cert = self
                    .certificate_for(
                        &response.certificates,
                        &accepted.new_key,
                        accepted.facts.renewal_certificate.value(),
                    )
                    .map_err(|e| (502, e))?;
                Ok((GatewayAnswer::issued(cert), upstream_id))
            }
            Outcome::Pending { token, retry_at } => Ok((
                GatewayAnswer {
                    outcome: Outcome::Pending {
                        token: token.clone(),
                        retry_at: *retry_at,
                    },
                    status,
                    issued: None,
                },
                upstream_id,
            )),
            Outcome::Failed { fail_info } => Ok((
                GatewayAnswer {
                    outcome: Outcome::Failed {
                        fail_info: *fail_info,
                    },
                    status,
                    issued: None,
                },
                upstream_id,
            )),
            other => Err((502, format!("upstream answered {other:?}"))),
        }
    }

    /// Records what the upstream decided for a CMC request, in one transaction, and returns
    /// the client's answer (a pending answer carries the gateway's own request id).
    #[allow(clippy::too_many_arguments)]
    fn record_cmc_decision(
        &self,
        store: &Store,
        origin: &Origin,
        accepted: &Accepted,
        request: &[u8],
        poll: Option<&Pending>,
        answer: GatewayAnswer,
        upstream_token: Option<String>,
        upstream_id: Option<u64>,
    ) -> Result<GatewayAnswer, Rejection> {
        let template = accepted.template.name.as_str();
        let now = self.clock.unix();
        let transaction_key = format!("{}:{}", origin.tls_fingerprint, accepted.transaction);
        store.first_sighting("transaction", &transaction_key, now)?;
        if let Some(nonce) = &accepted.facts.sender_nonce {
            store.first_sighting("nonce", &hex(nonce), now)?;
        }
        let old = &accepted.facts.renewal_certificate;
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
                self.record_issued(store, cert, template, old, &accepted.new_key)?;
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
                    format!("renewal of {} issued upstream", serial_text(old.value())),
                )?;
                Ok(answer)
            }
            Outcome::Pending { retry_at, .. } => {
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
                            &accepted.transaction,
                            request,
                            upstream_id,
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
                                upstream_token.unwrap_or_default()
                            ),
                        )?;
                        id
                    }
                };
                Ok(GatewayAnswer {
                    outcome: Outcome::Pending {
                        token: id.to_be_bytes().to_vec(),
                        retry_at: *retry_at,
                    },
                    status: Some(format!("Taken under submission (request {id})")),
                    issued: None,
                })
            }
            _ => {
                store.bump("rejected")?;
                if let Some(p) = poll {
                    store.finish_pending(p.id, "denied", None)?;
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
            tls_fingerprint: origin.tls_fingerprint.clone(),
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
        let template = accepted.template.name.clone();
        let step = {
            let store = self.decision();
            store.atomically(|s| self.cmc_step(s, &accepted, &tls, &origin))
        };
        let poll = match step {
            Ok(Step::Answered(answer)) => return self.respond(*answer, Some(&accepted)),
            Ok(Step::Forward) => None,
            Ok(Step::Poll(pending)) => Some(pending),
            Err(r) => {
                self.record_refusal(&origin, Some(&template), &r);
                return self.respond(GatewayAnswer::rejected(&r), Some(&accepted));
            }
        };
        // The network exchange happens without the store: other users' requests go on.
        let upstream_pending = poll
            .as_ref()
            .and_then(|p| p.upstream_id)
            .and_then(|id| u64::try_from(id).ok());
        let exchange = match self.forward_cmc(request, upstream_pending) {
            Ok(exchange) => exchange,
            Err(e) => {
                let r = Rejection::Internal(e);
                self.record_refusal(&origin, Some(&template), &r);
                return self.respond(GatewayAnswer::rejected(&r), Some(&accepted));
            }
        };
        let (answer, upstream_id) = match self.read_cmc_answer(exchange, &accepted) {
            Ok(answer) => answer,
            Err((status, text)) => {
                let failure = self.upstream_failed(
                    &origin,
                    Some(&template),
                    poll.as_ref().map(|p| p.id),
                    status,
                    text,
                );
                return Self::failure_reply(failure);
            }
        };
        let upstream_token = match &answer.outcome {
            Outcome::Pending { token, .. } => Some(hex(token)),
            _ => None,
        };
        let store = self.decision();
        let recorded = store.atomically(|s| {
            self.record_cmc_decision(
                s,
                &origin,
                &accepted,
                request,
                poll.as_ref(),
                answer,
                upstream_token,
                upstream_id,
            )
        });
        drop(store);
        match recorded {
            Ok(answer) => self.respond(answer, Some(&accepted)),
            Err(r) => {
                self.record_refusal(&origin, Some(&template), &r);
                self.respond(GatewayAnswer::rejected(&r), Some(&accepted))
            }
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
                .filter(|p| {
                    p.tls_fingerprint == origin.tls_fingerprint && p.kind != "simplereenroll"
                })
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

    /// Handles an EST simplereenroll from a user.
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
        let template = accepted.template.name.clone();
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        let old_serial = serial_text(tls.value());
        let certs_only = |cert: Retained<Certificate>| match build_certs_only(&[cert]) {
            Ok(der) => SimpleReply::Issued(der),
            Err(e) => SimpleReply::Rejected(Rejection::Internal(e.to_string())),
        };
        // The gateway's state first: a poll, an answer given before, a key seen before.
        let step = {
            let store = self.decision();
            store.atomically(
                |s| -> Result<Result<Option<Pending>, SimpleReply>, Rejection> {
                    s.bump("requests")?;
                    if let Some(p) = s.find_pending(&origin.tls_fingerprint, &key_fingerprint)? {
                        if !same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.limits) {
                            return Err(Rejection::PollMismatch(p.id));
                        }
                        return Ok(Ok(Some(p)));
                    }
                    if let Some(cert) =
                        self.answered_before(s, &origin, &template, &old_serial, &key_fingerprint)?
                    {
                        return Ok(Err(certs_only(cert)));
                    }
                    if s.key_certified(&key_fingerprint)? {
                        return Err(Rejection::KeyReuse);
                    }
                    Ok(Ok(None))
                },
            )
        };
        let poll = match step {
            Ok(Ok(poll)) => poll,
            Ok(Err(answer)) => return answer,
            Err(r) => {
                self.record_refusal(&origin, Some(&template), &r);
                return SimpleReply::Rejected(r);
            }
        };
        let pkcs10 = accepted.pkcs10.der().to_vec();
        let answer = self.timed(|| self.upstream.simple(&pkcs10), |r| r.is_ok());
        let pending_id = poll.as_ref().map(|p| p.id);
        let fail = |status: u16, text: String| {
            SimpleReply::Unavailable(self.upstream_failed(
                &origin,
                Some(&template),
                pending_id,
                status,
                text,
            ))
        };
        enum Decided {
            Issued(Box<Retained<Certificate>>),
            Pending(u64),
            Refused(u16, String),
        }
        let decided = match answer {
            Err(Failure::Unavailable(text)) => return fail(503, text),
            Err(Failure::BadAnswer(text)) => return fail(502, text),
            Ok(SimpleAnswer::Issued(der)) => {
                let certificates = parse_response(&der, &self.limits)
                    .map(|r| r.certificates)
                    .map_err(|e| format!("upstream answer: {e}"));
                match certificates
                    .and_then(|c| self.certificate_for(&c, &accepted.new_key, tls.value()))
                {
                    Ok(cert) => Decided::Issued(Box::new(cert)),
                    Err(e) => return fail(502, e),
                }
            }
            Ok(SimpleAnswer::Pending(secs)) => {
                Decided::Pending(bounded_retry(secs.unwrap_or(self.policy.retry_after)))
            }
            Ok(SimpleAnswer::Refused { status, text }) => Decided::Refused(status, text),
        };
        let store = self.decision();
        let recorded = store.atomically(|s| -> Result<SimpleReply, Rejection> {
            match decided {
                Decided::Issued(cert) => {
                    let serial = serial_text(cert.value());
                    self.record_issued(s, &cert, &template, &tls, &accepted.new_key)?;
                    if let Some(id) = pending_id {
                        s.finish_pending(id, "issued", Some(&serial))?;
                    }
                    self.audit(
                        s,
                        &origin,
                        Some(&template),
                        AuditOutcome::Issued,
                        Some(&serial),
                        pending_id,
                        format!("renewal of {old_serial} issued upstream"),
                    )?;
                    Ok(certs_only(*cert))
                }
                Decided::Pending(secs) => {
                    let id = match pending_id {
                        Some(id) => {
                            s.count_poll(id)?;
                            id
                        }
                        None => self.add_pending(s, &origin, &key_fingerprint, body, None)?,
                    };
                    let outcome = if pending_id.is_some() {
                        AuditOutcome::StillPending
                    } else {
                        AuditOutcome::Pending
                    };
                    self.audit(
                        s,
                        &origin,
                        Some(&template),
                        outcome,
                        None,
                        Some(id),
                        "pending upstream".into(),
                    )?;
                    Ok(SimpleReply::Pending(secs))
                }
                Decided::Refused(status, text) => {
                    s.bump("rejected")?;
                    if let Some(id) = pending_id {
                        s.finish_pending(id, "denied", None)?;
                    }
                    self.audit(
                        s,
                        &origin,
                        Some(&template),
                        AuditOutcome::Refused,
                        None,
                        pending_id,
                        format!("refused upstream: HTTP {status}: {text}"),
                    )?;
                    Ok(SimpleReply::Rejected(Rejection::Denied(format!(
                        "the CA refused: {text}"
                    ))))
                }
            }
        });
        match recorded {
            Ok(reply) => reply,
            Err(r) => {
                drop(store);
                self.record_refusal(&origin, Some(&template), &r);
                SimpleReply::Rejected(r)
            }
        }
    }
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

/// Bounds a Retry-After the upstream asks for: at least a second, at most an hour.
fn bounded_retry(secs: u64) -> u64 {
    secs.clamp(1, 3600)
}
