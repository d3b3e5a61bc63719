//! The CA's decision logic, callable in-process without a socket: a function of (request,
//! TLS identity, store, scenario). The HTTPS server is a thin shell around it.

use std::time::Duration;

use der::asn1::GeneralizedTime;
use renewal_codec::cmc::{
    DigestAlgorithm, Limits, Outcome, PublicKey, ResponseParams, Retained, Signer, SoftwareKey,
    StatusStyle, build_certs_only, build_full_response, oids, status::CmcFailInfo,
    verify_request::hex,
};
use x509_cert::{Certificate, ext::Extension, name::Name};

use crate::desk::Desk;
pub(crate) use crate::desk::LockedStore;

mod cmp;
mod decide;
mod intake;
mod issue;

pub use crate::cmp_answer::CmpReply;
use crate::desk::Renewal;
pub use cmp::DEFAULT_CONFIRM_WAIT;
use decide::{Answer, SimpleOutcome};
pub(crate) use decide::{same_cmc_pkcs10, same_simple_pkcs10};
use issue::Subject;
pub use issue::{admin_decide, admin_revoke};

use crate::{
    authority::Authority,
    clock::{Clock, unix},
    ledger::{Ledger, Origin},
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
    /// The state, the clock, the ledger and the bookkeeping (the same as the gateway's).
    desk: Desk,
    rules: Vec<Rule>,
    grace: Duration,
    style: StatusStyle,
    profile: renewal_codec::cmc::Profile,
    /// Registration authorities whose wrapped requests are accepted (`--trust-ra`).
    trusted_ras: Vec<Retained<Certificate>>,
    /// A key that is not the CA's, for the "wrong signer" and "wrong key" faults.
    decoy: SoftwareKey,
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
    pub upstream: Option<crate::error::UpstreamFailure>,
}

impl CmcReply {
    /// No decision: the HTTP answer says why (no CMC body: nothing was decided to sign).
    pub fn unavailable(failure: crate::error::UpstreamFailure) -> Self {
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
    Unavailable(crate::error::UpstreamFailure),
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
                desk: Desk::new(store, clock, Ledger::new(scenario.max_pending_per_identity)),
                rules: scenario
                    .rules
                    .iter()
                    .map(|r| r.build())
                    .collect::<Result<_, _>>()?,
                grace: Duration::from_secs(u64::from(scenario.grace_days) * 86400),
                style: match scenario.response_style.as_deref() {
                    Some("adcs") => StatusStyle::Adcs,
                    _ => StatusStyle::V2,
                },
                profile: scenario.profile,
                trusted_ras: Vec::new(),
                decoy: SoftwareKey::generate_p256().map_err(|e| e.to_string())?,
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
        &self.desk.clock
    }

    /// The store, locked for a decision (see [`LockedStore`]).
    fn decision(&self) -> LockedStore<'_> {
        self.desk.decision()
    }

    /// fsyncs of the state database's WAL so far (group commits).
    pub fn fsyncs(&self) -> u64 {
        self.desk.fsyncs()
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
        let subject = renewal_codec::x509::name_text(tls.value().tbs_certificate().subject());
        let store = self.decision();
        let counter = format!("requests:{subject}");
        let next = if self.numbers_requests() {
            u32::try_from(store.counter(&counter).ok()? + 1).unwrap_or(u32::MAX)
        } else {
            0
        };
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
                if self.numbers_requests() {
                    let _ = store.bump(&counter);
                }
                Some(f)
            }
            _ => None,
        }
    }

    fn context(&self) -> PolicyContext<'_> {
        PolicyContext {
            issuers: std::slice::from_ref(&self.authority.issuing.cert),
            templates: &self.templates,
            now: self.desk.clock.now(),
            grace: self.grace,
            limits: self.desk.limits,
            profile: self.profile,
        }
    }

    /// The audit trail, oldest first.
    pub fn audit_trail(&self) -> Vec<AuditRecord> {
        self.desk.audit_trail()
    }

    /// Counters, by name.
    pub fn counters(&self) -> Vec<(String, i64)> {
        self.desk.counters()
    }
}

/// An audit detail with the request's findings after it (`; finding: ...`).
pub(crate) fn with_findings(detail: String, findings: &[String]) -> String {
    findings
        .iter()
        .fold(detail, |out, f| format!("{out}; finding: {f}"))
}
