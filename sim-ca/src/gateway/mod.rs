//! The renewal gateway: the seed's server half in front of a real CA. It terminates the user's
//! client-certificate TLS (the HTTPS front ends), applies the same renewal-only policy as the
//! simulated CA ([`crate::policy`]: binding to the presenting certificate, no elevation, key
//! and template rules), keeps the replay, idempotency and pending state and the audit trail in
//! its store, and forwards what passes to an upstream CA under its **own** RA identity:
//!
//! * full CMC (EST `/fullcmc`, RFC 5273 `/cmc`, MS-WSTEP): the user's signed request, unchanged,
//!   inside the RA's signed PKIData (RFC 5272 §3.2.1.3.3 nested content), so the upstream checks
//!   both the user's old-key signature and the RA's authority;
//! * EST simplereenroll: the RA's re-enrollment on the user's behalf — a PKIData carrying the
//!   user's PKCS#10 and, in an `szOID_CMC_ADD_ATTRIBUTES` control bound to it, the
//!   `szOID_RENEWAL_CERTIFICATE` naming the TLS client certificate it renews (RFC 5272 §6.5,
//!   MS-WCCE), so the upstream renews exactly that certificate, never a namesake's.
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

use crate::store::Endpoint;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use renewal_codec::cmc::{
    DigestAlgorithm, Outcome, ParsedResponse, Profile, PublicKey, ResponseForm, ResponseParams,
    Retained, SoftwareKey, StatusStyle, build_certs_only, build_full_response, parse_response,
    verify_request::hex,
};
use x509_cert::Certificate;

use crate::{
    backend::Backend,
    clock::{Clock, unix},
    desk::{Decider, Desk, Next, Renewal},
    error::UpstreamFailure,
    ledger::{Claim, Ledger, Origin},
    policy::{self, Accepted, PolicyContext, Rejection, serial_text},
    service::{CmcReply, CmpReply, LockedStore, SimpleReply, same_cmc_pkcs10, same_simple_pkcs10},
    store::{
        AuditOutcome, AuditRecord, Pending, PendingEnd, PendingStatus, Resolve, Store, StoreError,
    },
    templates::TemplateRegistry,
};

mod answer;
mod cmp;
mod desk;
mod metrics;
mod record;

use answer::{CRYPT_E_REVOKED, NotDelivered, bounded_retry, leading_hresult};
use ca_backend::{CaBackend, CmcAnswer, Failure};
use metrics::Metrics;

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

/// The gateway.
pub struct Gateway {
    policy: Policy,
    ra: RaCredential,
    /// The CA behind: over the network, or the simulated authority in-process.
    upstream: Box<dyn CaBackend>,
    /// The state, the clock, the ledger and the bookkeeping (the same as the CA's).
    desk: Desk,
    metrics: Metrics,
}

/// An answer decided by the gateway (before signing).
pub(crate) struct GatewayAnswer {
    outcome: Outcome,
    status: Option<String>,
    issued: Option<Retained<Certificate>>,
    /// The gateway's own refusal, when it refused (not the upstream).
    refusal: Option<Rejection>,
    /// A CMP upstream's status when it refused (passed on to the CMP client as it was).
    cmp_status: Option<renewal_codec::cmp::PkiStatusInfo>,
    /// Whether a CMP upstream granted implicit confirmation (no certConf follows); `None` when
    /// no CMP upstream answered just now.
    implicit_confirm: Option<bool>,
    /// A CMP upstream's senderNonce: the gateway's answer passes it on, so that the user's
    /// next message (`pollReq`, `certConf`), forwarded unchanged, answers the upstream.
    upstream_nonce: Option<Vec<u8>>,
}

impl GatewayAnswer {
    fn issued(cert: Retained<Certificate>) -> Self {
        Self {
            outcome: Outcome::Issued,
            status: Some("Issued".into()),
            issued: Some(cert),
            refusal: None,
            cmp_status: None,
            implicit_confirm: None,
            upstream_nonce: None,
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
            cmp_status: None,
            implicit_confirm: None,
            upstream_nonce: None,
        }
    }

    /// An answer decided upstream.
    fn upstream(outcome: Outcome, status: Option<String>) -> Self {
        Self {
            outcome,
            status,
            issued: None,
            refusal: None,
            cmp_status: None,
            implicit_confirm: None,
            upstream_nonce: None,
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
    ) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let Some(ra_cert) = ra.chain.first() else {
                return Err("the RA credential has no certificate".into());
            };
            // Mistakes that would fail every renewal are refused at start, not per request.
            let certified =
                PublicKey::from_spki(ra_cert.value().tbs_certificate().subject_public_key_info())
                    .map_err(|e| format!("the RA certificate's key: {e}"))?;
            let held = PublicKey::from_spki(renewal_codec::cmc::Signer::public_key(&ra.key))
                .map_err(|e| format!("the RA key: {e}"))?;
            if certified != held {
                return Err("the RA key is not the RA certificate's key".into());
            }
            if !renewal_codec::x509::may_sign_cmc_responses(ra_cert.value()) {
                return Err(
                    "the RA certificate carries no id-kp-cmcRA (RFC 6402 §2.10): clients would \
                     refuse every answer it signs"
                        .into(),
                );
            }
            if policy.upstream_cas.is_empty() || policy.client_cas.is_empty() {
                return Err(
                    "the gateway needs the upstream's and the clients' CA certificates".into(),
                );
            }
            let max_pending = policy.max_pending_per_identity;
            let upstream_bound = upstream.timeout();
            Ok(Self {
                policy,
                ra,
                upstream,
                desk: Desk::new(
                    store,
                    clock,
                    Ledger::new(max_pending).with_exchange_bound(upstream_bound),
                ),
                metrics: Metrics::default(),
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "gateway",
            reason,
        })
    }

    /// The clock (tests advance it with the upstream's).
    pub fn clock(&self) -> &Clock {
        &self.desk.clock
    }

    /// Runs `f` with the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.decision())
    }

    /// The audit trail, oldest first.
    pub fn audit_trail(&self) -> Vec<AuditRecord> {
        self.desk.audit_trail()
    }

    fn decision(&self) -> LockedStore<'_> {
        self.desk.decision()
    }

    fn context(&self) -> PolicyContext<'_> {
        PolicyContext {
            issuers: &self.policy.client_cas,
            templates: &self.policy.templates,
            now: self.desk.clock.now(),
            grace: self.policy.grace,
            limits: self.desk.limits,
            profile: self.policy.profile,
        }
    }

    fn ra_cert(&self) -> &Retained<Certificate> {
        &self.ra.chain[0]
    }

    /// Records a refusal (counter and audit record) in its own transaction.
    fn record_refusal(&self, origin: &Origin, template: Option<&str>, rejection: &Rejection) {
        self.desk
            .record_refusal(&self.decision(), origin, template, rejection, None);
    }

    /// The gateway's CMC response, signed with the RA key, echoing the client's controls.
    fn respond(&self, answer: GatewayAnswer, echo: Option<&Accepted>) -> CmcReply {
        let retry_after = crate::ledger::retry_after(&answer.outcome, self.desk.clock.now());
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
}

impl Backend for Gateway {
    fn cacerts(&self) -> Result<Vec<u8>, crate::Error> {
        build_certs_only(&self.policy.upstream_cas).map_err(|e| crate::Error::Encoding {
            what: "CA certificates",
            reason: e.to_string(),
        })
    }
    fn ca_certificates(&self) -> Vec<Retained<Certificate>> {
        self.ra
            .chain
            .iter()
            .chain(&self.policy.upstream_cas)
            .cloned()
            .collect()
    }
    fn refuse_unread(&self, endpoint: Endpoint, tls_cert: &[u8], rejection: &Rejection) {
        self.record_refusal(&Origin::new(endpoint, tls_cert, &[]), None, rejection);
    }
    fn handle_cmc_at(&self, endpoint: Endpoint, request: &[u8], tls_cert: &[u8]) -> CmcReply {
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
    fn handle_cmp(&self, body: &[u8], tls_cert: &[u8]) -> Option<CmpReply> {
        Some(Gateway::handle_cmp(self, body, tls_cert))
    }
    fn metrics(&self) -> String {
        self.render_metrics()
    }
    fn health(&self) -> Result<(), crate::Error> {
        Ok(self.with_store(|s| s.counter("requests").map(|_| ()))?)
    }
}
