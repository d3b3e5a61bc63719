//! The CA's decision logic, callable in-process without a socket: a function of (request,
//! TLS identity, store, scenario). The HTTPS server is a thin shell around it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use der::asn1::GeneralizedTime;
use renewal_codec::cmc::{
    DigestAlgorithm, Limits, Outcome, PublicKey, ResponseParams, Retained, Signer, SoftwareKey,
    StatusStyle, build_certs_only, build_full_response, oids, status::CmcFailInfo,
    verify_request::hex,
};
use x509_cert::{Certificate, ext::Extension, name::Name};

mod cmp;
mod decide;
mod intake;
mod issue;

pub use crate::cmp_answer::CmpReply;
pub use cmp::DEFAULT_CONFIRM_WAIT;
use decide::{Answer, SimpleOutcome};
pub(crate) use decide::{same_cmc_pkcs10, same_simple_pkcs10};
pub use issue::{admin_decide, admin_revoke};

use crate::{
    authority::Authority,
    clock::{Clock, unix},
    durability::GroupSync,
    ledger::{Ledger, Lookup, Origin, Standing},
    policy::{self, Accepted, PolicyContext, Rejection, SimpleAccepted, serial_text},
    scenario::{Disposition, Rule, Scenario, TransportFault},
    store::{
        AuditOutcome, AuditRecord, Pending, PendingEnd, PendingStatus, Resolve, Store, StoreError,
    },
    templates::{Template, TemplateRegistry},
};

/// How long a client should wait before polling a pending request, when nothing says.
pub const DEFAULT_RETRY_SECS: u64 = 5;

/// The CA.
pub struct Ca {
    authority: Authority,
    templates: TemplateRegistry,
    store: Mutex<Store>,
    sync: Arc<GroupSync>,
    rules: Vec<Rule>,
    clock: Clock,
    grace: Duration,
    style: StatusStyle,
    limits: Limits,
    profile: renewal_codec::cmc::Profile,
    /// Registration authorities whose wrapped requests are accepted (`--trust-ra`).
    trusted_ras: Vec<Retained<Certificate>>,
    /// A key that is not the CA's, for the "wrong signer" and "wrong key" faults.
    decoy: SoftwareKey,
    /// The pending cap and the sightings' upkeep.
    ledger: Ledger,
    /// How long a CMP certificate issued without implicit confirmation waits for `certConf`.
    confirm_wait: Duration,
}

/// The answer to a CMC request (EST fullcmc or RFC 5273).
#[derive(Debug)]
pub struct CmcReply {
    /// DER of the Full PKI Response.
    pub body: Vec<u8>,
    /// What it says.
    pub outcome: Outcome,
    /// A fault for the transport to apply.
    pub fault: Option<TransportFault>,
    /// Seconds until a pending request should be polled.
    pub retry_after: Option<u64>,
    /// No decision: the CA behind a gateway could not be asked (the HTTP answer says so,
    /// `body` is empty).
    pub upstream: Option<crate::backend::UpstreamFailure>,
}

impl CmcReply {
    /// No decision: the HTTP answer says why (no CMC body: nothing was decided to sign).
    pub fn unavailable(failure: crate::backend::UpstreamFailure) -> Self {
        Self {
            body: Vec::new(),
            outcome: Outcome::Failed { fail_info: None },
            fault: None,
            retry_after: failure.retry_after,
            upstream: Some(failure),
        }
    }
}

/// The answer to an EST simplereenroll.
#[derive(Debug)]
pub enum SimpleReply {
    /// DER of a certs-only PKCS#7 with the new certificate.
    Issued(Vec<u8>),
    /// Come back after this many seconds.
    Pending(u64),
    /// Refused.
    Rejected(Rejection),
    /// No decision: the CA behind a gateway could not be asked.
    Unavailable(crate::backend::UpstreamFailure),
}

pub(crate) fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions), so the
    // poisoned guard is safe to reuse.
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// The store locked for a decision. Releasing it first unlocks, then waits until everything
/// written under it is on disk (the group commit, [`crate::durability`]), so that no answer
/// computed under the lock can leave before its decision is durable — and the lock is never
/// held across an fsync.
pub(crate) struct LockedStore<'a> {
    pub(crate) store: Option<std::sync::MutexGuard<'a, Store>>,
    pub(crate) sync: &'a GroupSync,
}

impl std::ops::Deref for LockedStore<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        // Only `drop` takes the guard out.
        self.store
            .as_deref()
            .unwrap_or_else(|| unreachable!("store used after release"))
    }
}

impl Drop for LockedStore<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let seq = self.sync.committed();
            drop(store);
            if !std::thread::panicking() {
                self.sync.sync_through(seq);
            }
        }
    }
}

impl Ca {
    /// A CA over `authority` and `store`, configured by `scenario`.
    pub fn new(
        authority: Authority,
        store: Store,
        scenario: &Scenario,
        clock: Clock,
    ) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            Ok(Self {
                authority,
                templates: TemplateRegistry::from_configs(&scenario.templates)?,
                sync: store.group_sync(),
                store: Mutex::new(store),
                rules: scenario
                    .rules
                    .iter()
                    .map(|r| r.build())
                    .collect::<Result<_, _>>()?,
                clock,
                grace: Duration::from_secs(u64::from(scenario.grace_days) * 86400),
                style: match scenario.response_style.as_deref() {
                    Some("adcs") => StatusStyle::Adcs,
                    _ => StatusStyle::V2,
                },
                limits: Limits::default(),
                profile: scenario.profile,
                trusted_ras: Vec::new(),
                decoy: SoftwareKey::generate_p256().map_err(|e| e.to_string())?,
                ledger: Ledger::new(scenario.max_pending_per_identity),
                confirm_wait: DEFAULT_CONFIRM_WAIT,
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "CA",
            reason,
        })
    }

    /// Trusts `ras` as registration authorities: a request whose TLS client certificate is one
    /// of them must be that RA's wrapper around a user's request (RFC 5272 nested content, or
    /// a re-enrollment naming the certificate it renews), and is decided as the user's
    /// renewal. An RA never renews itself. A certificate without id-kp-cmcRA (RFC 6402 §2.10)
    /// is refused: trusting it as an RA would be an accident of configuration.
    pub fn with_trusted_ras(
        mut self,
        ras: Vec<Retained<Certificate>>,
    ) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            if let Some(ra) = ras.iter().find(|ra| {
                !renewal_codec::x509::has_extended_key_usage(ra.value(), oids::KP_CMC_RA)
            }) {
                return Err(format!(
                    "{} carries no id-kp-cmcRA (RFC 6402 §2.10): not trusted as an RA",
                    ra.value().tbs_certificate().subject()
                ));
            }
            self.trusted_ras = ras;
            Ok(self)
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "--trust-ra",
            reason,
        })
    }

    /// How long a certificate a CMP key update issued without implicit confirmation waits for
    /// the client's `certConf` before it is revoked (default [`DEFAULT_CONFIRM_WAIT`]).
    pub fn with_confirm_wait(mut self, wait: Duration) -> Self {
        self.confirm_wait = wait;
        self
    }

    /// The CA hierarchy.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The templates.
    pub fn templates(&self) -> &TemplateRegistry {
        &self.templates
    }

    /// The clock (tests advance it).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store, locked for a decision (see [`LockedStore`]).
    fn decision(&self) -> LockedStore<'_> {
        LockedStore {
            store: Some(lock(&self.store)),
            sync: &self.sync,
        }
    }

    /// fsyncs of the state database's WAL so far (group commits).
    pub fn fsyncs(&self) -> u64 {
        self.sync.fsyncs()
    }

    /// Runs `f` with the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.decision())
    }

    /// Certs-only PKCS#7 of the issuing and root CA (EST `/cacerts`).
    pub fn cacerts(&self) -> Result<Vec<u8>, crate::Error> {
        build_certs_only(&[
            self.authority.issuing.cert.clone(),
            self.authority.root.cert.clone(),
        ])
        .map_err(|e| crate::Error::Encoding {
            what: "CA certificates",
            reason: e.to_string(),
        })
    }

    /// Whether a rule of the scenario drops the connection or answers an HTTP error before
    /// the request is read.
    pub fn may_fault_before_read(&self) -> bool {
        self.rules.iter().any(|r| {
            matches!(
                r.fault,
                Some(TransportFault::DropBeforeRead | TransportFault::Http(_))
            )
        })
    }

    /// Faults that act before the request is read (drop the connection, an HTTP error from
    /// a proxy): decided from the TLS identity and the subject's next request number. A match
    /// consumes that request number.
    pub fn fault_before_read(&self, tls_cert: &[u8]) -> Option<TransportFault> {
        if !self.may_fault_before_read() {
            return None;
        }
        let tls = Retained::<Certificate>::from_der(tls_cert).ok()?;
        let subject = tls.value().tbs_certificate().subject().to_string();
        let store = self.decision();
        let counter = format!("requests:{subject}");
        let next = u32::try_from(store.counter(&counter).ok()? + 1).unwrap_or(u32::MAX);
        let rule = if self.trusted_ras.contains(&tls) {
            // A gateway's connection: whose request it carries is not known before reading,
            // so only rules that name no template apply.
            self.rules.iter().find(|rule| {
                rule.subject.as_deref().is_none_or(|s| subject.contains(s))
                    && rule.template.is_none()
                    && rule.request.is_none_or(|r| r == next)
            })?
        } else {
            let template = policy::template_of(tls.value(), &self.templates).ok()?;
            self.first_rule(&subject, template, next)?
        };
        match rule.fault {
            Some(f @ (TransportFault::DropBeforeRead | TransportFault::Http(_))) => {
                let _ = store.bump(&counter);
                Some(f)
            }
            _ => None,
        }
    }

    fn context(&self) -> PolicyContext<'_> {
        PolicyContext {
            issuers: std::slice::from_ref(&self.authority.issuing.cert),
            templates: &self.templates,
            now: self.clock.now(),
            grace: self.grace,
            limits: self.limits,
            profile: self.profile,
        }
    }

    /// Appends one audit record for `origin`, at the CA's time.
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

    /// Records a refusal: the counter and the audit record, in one transaction.
    fn record_refusal(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) {
        origin.record_refusal(store, self.clock.unix(), template, rejection, pending_id);
    }

    /// The counter and audit record of a refusal, inside the caller's transaction.
    fn refused(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) -> Result<(), StoreError> {
        origin.refused(store, self.clock.unix(), template, rejection, pending_id)
    }

    /// The audit trail, oldest first.
    pub fn audit_trail(&self) -> Vec<AuditRecord> {
        lock(&self.store).audit().unwrap_or_default()
    }

    /// Counters, by name.
    pub fn counters(&self) -> Vec<(String, i64)> {
        lock(&self.store).counters().unwrap_or_default()
    }
}

/// An audit detail with the request's findings after it (`; finding: ...`).
pub(crate) fn with_findings(detail: String, findings: &[String]) -> String {
    findings
        .iter()
        .fold(detail, |out, f| format!("{out}; finding: {f}"))
}
