//! The CA's decision logic, callable in-process without a socket: a function of (request,
//! TLS identity, store, scenario). The HTTPS server is a thin shell around it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use der::asn1::GeneralizedTime;
use renewal_core::cmc::{
    DigestAlgorithm, Limits, Outcome, PublicKey, ResponseParams, Retained, Signer, SoftwareKey,
    StatusStyle, build_certs_only, build_full_response, oids, status::CmcFailInfo,
    verify_request::hex,
};
use x509_cert::{Certificate, ext::Extension, name::Name};

use crate::{
    authority::Authority,
    clock::{Clock, unix},
    durability::GroupSync,
    ledger::{Ledger, Lookup, Origin, Standing},
    policy::{self, Accepted, PolicyContext, Rejection, SimpleAccepted, serial_text},
    scenario::{Disposition, Rule, Scenario, TransportFault},
    store::{AuditOutcome, AuditRecord, Pending, PendingEnd, Resolve, Store, StoreError},
    templates::{Template, TemplateRegistry},
};

/// How long a client should wait before polling a pending request, when nothing says.
pub const DEFAULT_RETRY_SECS: u64 = 5;

/// What a CMC request turns out to be once its sender is known.
enum Intake {
    /// A user's Full PKI Request (direct, or nested by a trusted RA) and the certificate it
    /// renews.
    Cmc(Vec<u8>, Retained<Certificate>),
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
    profile: renewal_core::cmc::Profile,
    /// Registration authorities whose wrapped requests are accepted (`--trust-ra`).
    trusted_ras: Vec<Retained<Certificate>>,
    /// A key that is not the CA's, for the "wrong signer" and "wrong key" faults.
    decoy: SoftwareKey,
    /// The pending cap and the sightings' upkeep.
    ledger: Ledger,
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

/// What `decide` returns.
struct Decision {
    disposition: Disposition,
    fault: Option<TransportFault>,
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
    ) -> Result<Self, String> {
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
        })
    }

    /// Trusts `ras` as registration authorities: a request whose TLS client certificate is one
    /// of them must be that RA's wrapper around a user's request (RFC 5272 nested content, or
    /// a re-enrollment naming the certificate it renews), and is decided as the user's
    /// renewal. An RA never renews itself. A certificate without id-kp-cmcRA (RFC 6402 §2.10)
    /// is refused: trusting it as an RA would be an accident of configuration.
    pub fn with_trusted_ras(mut self, ras: Vec<Retained<Certificate>>) -> Result<Self, String> {
        if let Some(ra) = ras
            .iter()
            .find(|ra| !renewal_core::x509::has_extended_key_usage(ra.value(), oids::KP_CMC_RA))
        {
            return Err(format!(
                "{} carries no id-kp-cmcRA (RFC 6402 §2.10): not trusted as an RA",
                ra.value().tbs_certificate().subject()
            ));
        }
        self.trusted_ras = ras;
        Ok(self)
    }

    /// What an RA's wrapper forwards, when the TLS client is a trusted RA; `None` for any
    /// other client.
    fn unwrap_ra(
        &self,
        request: &[u8],
        tls: &Retained<Certificate>,
    ) -> Option<Result<Intake, Rejection>> {
        if !self.trusted_ras.contains(tls) {
            return None;
        }
        let unwrapped = renewal_core::cmc::ra::unwrap(request, &self.limits, &self.trusted_ras)
            .map_err(|e| Rejection::Malformed(format!("RA wrapper: {e}")));
        Some(unwrapped.and_then(|u| {
            if u.ra != *tls {
                return Err(Rejection::IdentityMismatch);
            }
            match u.forwarded {
                renewal_core::cmc::ra::Forwarded::Nested(inner) => self.forwarded(inner),
                renewal_core::cmc::ra::Forwarded::Reenroll { pkcs10, renewed } => {
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
    fn forwarded(&self, inner: Vec<u8>) -> Result<Intake, Rejection> {
        let facts = renewal_core::cmc::parse_request(&inner, &self.limits)
            .and_then(|p| p.with_profile(self.profile).verify())
            .map_err(|e| Rejection::Malformed(format!("the forwarded request: {e}")))?;
        Ok(Intake::Cmc(inner, facts.renewal_certificate))
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
    pub fn cacerts(&self) -> Result<Vec<u8>, String> {
        build_certs_only(&[
            self.authority.issuing.cert.clone(),
            self.authority.root.cert.clone(),
        ])
        .map_err(|e| e.to_string())
    }

    /// The scenario's first rule matching the subject, template and the subject's request
    /// number `n` (rules are evaluated in order, first match wins).
    fn first_rule(&self, subject: &str, template: &Template, n: u32) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            rule.subject.as_deref().is_none_or(|s| subject.contains(s))
                && rule.template.as_deref().is_none_or(|t| {
                    t.eq_ignore_ascii_case(&template.name) || t == template.oid.to_string()
                })
                && rule.request.is_none_or(|r| r == n)
        })
    }

    fn decide(
        &self,
        store: &Store,
        subject: &str,
        template: &Template,
    ) -> Result<Decision, Rejection> {
        let counter = format!("requests:{subject}");
        store.bump(&counter)?;
        let n = u32::try_from(store.counter(&counter)?).unwrap_or(u32::MAX);
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

    /// Faults that act before the request is read (drop the connection, an HTTP error from
    /// a proxy): decided from the TLS identity and the subject's next request number. A match
    /// consumes that request number.
    pub fn fault_before_read(&self, tls_cert: &[u8]) -> Option<TransportFault> {
        if self.rules.iter().all(|r| {
            !matches!(
                r.fault,
                Some(TransportFault::DropBeforeRead | TransportFault::Http(_))
            )
        }) {
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

    fn new_serial(&self, store: &Store) -> Result<Vec<u8>, Rejection> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        loop {
            let mut serial = vec![0u8; 16];
            SystemRandom::new()
                .fill(&mut serial)
                .map_err(|_| Rejection::Internal("RNG".into()))?;
            serial[0] = (serial[0] & 0x7F) | 0x01; // positive, no leading zero byte
            if !store.serial_exists(&hex(&serial))? {
                return Ok(serial);
            }
        }
    }

    /// Issues and records a certificate for `subject` / `key` under `template`. The
    /// certificate carries the CA's canonical encoding of the key, whatever encoding the
    /// request used.
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        store: &Store,
        subject: Name,
        key: &PublicKey,
        template: &Template,
        extensions: Vec<Extension>,
        renewal_of: Option<&str>,
        fault: Option<TransportFault>,
        days: Option<u32>,
    ) -> Result<Retained<Certificate>, Rejection> {
        let spki = if fault == Some(TransportFault::WrongKeyCertificate) {
            self.decoy.public_key().clone()
        } else {
            key.to_spki()
        };
        let now = self.clock.now();
        let serial = self.new_serial(store)?;
        let not_after =
            now + Duration::from_secs(u64::from(days.unwrap_or(template.validity_days)) * 86400);
        let cert = self
            .authority
            .issue(
                serial.clone(),
                subject.clone(),
                spki,
                now - Duration::from_secs(300),
                not_after,
                extensions,
            )
            .map_err(Rejection::Internal)?;
        store.record_certificate(
            &hex(&serial),
            &subject.to_string(),
            cert.der(),
            Some(&template.name),
            unix(not_after),
            renewal_of,
            &hex(&key.fingerprint()),
            unix(now),
        )?;
        store.bump("issued")?;
        Ok(cert)
    }

    /// Issues the renewal of `old` decided by a disposition (revoked at once for the
    /// `revoked` disposition) and audits it, in the caller's transaction.
    #[allow(clippy::too_many_arguments)]
    fn issue_renewal(
        &self,
        store: &Store,
        origin: &Origin,
        old: &Retained<Certificate>,
        key: &PublicKey,
        template: &Template,
        extensions: Vec<Extension>,
        fault: Option<TransportFault>,
        revoked: bool,
        findings: &[String],
    ) -> Result<Retained<Certificate>, Rejection> {
        let old_serial = serial_text(old.value());
        let cert = self.issue(
            store,
            old.value().tbs_certificate().subject().clone(),
            key,
            template,
            extensions,
            Some(&old_serial),
            fault,
            None,
        )?;
        let serial = serial_text(cert.value());
        let outcome = if revoked {
            store.revoke(&serial, self.clock.unix())?;
            AuditOutcome::IssuedRevoked
        } else {
            AuditOutcome::Issued
        };
        self.audit(
            store,
            origin,
            Some(&template.name),
            outcome,
            Some(&serial),
            None,
            with_findings(format!("renewal of {old_serial}"), findings),
        )?;
        Ok(cert)
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

    fn respond(
        &self,
        outcome: Outcome,
        status_string: Option<String>,
        issued: Option<Retained<Certificate>>,
        echo: Option<&Echo>,
        fault: Option<TransportFault>,
    ) -> CmcReply {
        let retry_after = crate::ledger::retry_after(&outcome, self.clock.now());
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
    fn reject(&self, rejection: &Rejection, echo: Option<&Echo>) -> CmcReply {
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
    pub fn refuse_unread(&self, endpoint: &'static str, tls_cert: &[u8], rejection: &Rejection) {
        let origin = Origin::new(endpoint, tls_cert, &[]);
        self.record_refusal(&self.decision(), &origin, None, rejection, None);
    }

    /// Handles a Full PKI Request presented over TLS with `tls_cert` (DER), as EST `/fullcmc`.
    pub fn handle_cmc(&self, request: &[u8], tls_cert: &[u8]) -> CmcReply {
        self.handle_cmc_at("fullcmc", request, tls_cert)
    }

    /// MS-WSTEP `QueryTokenStatus`: the request pending under `id` is collected as a
    /// re-submission of the stored request, when the presenting certificate is the one that
    /// submitted it (another client's RequestID is a poll for another request).
    pub fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        let origin = Origin::new("wstep-query", tls_cert, &[]);
        // Behind an RA, a pending request is keyed by the user's certificate: the RA that
        // forwarded it collects it (the stored request is the user's, decided again in full).
        let by_ra = Retained::<Certificate>::from_der(tls_cert)
            .is_ok_and(|tls| self.trusted_ras.contains(&tls));
        let stored = {
            let store = lock(&self.store);
            let pending = i64::try_from(id)
                .ok()
                .and_then(|id| store.pending(id).ok().flatten());
            match pending {
                Some(p)
                    if (p.tls_fingerprint == origin.tls_fingerprint || by_ra)
                        && p.kind != "simplereenroll" =>
                {
                    Ok(p.request)
                }
                _ => Err(Rejection::PollMismatch(i64::try_from(id).unwrap_or(-1))),
            }
        };
        match stored {
            // Audited as its own endpoint: a collection, not a new submission. What is
            // stored for an RA is the user's request it forwarded, already unwrapped.
            Ok(request) => self.decide_cmc("wstep-query", &request, tls_cert, true),
            Err(r) => {
                let store = self.decision();
                self.record_refusal(&store, &origin, None, &r, None);
                self.reject(&r, None)
            }
        }
    }

    /// Handles a Full PKI Request that came in at `endpoint` (`fullcmc`, `cmc` or `wstep`,
    /// for the audit trail).
    pub fn handle_cmc_at(
        &self,
        endpoint: &'static str,
        request: &[u8],
        tls_cert: &[u8],
    ) -> CmcReply {
        self.decide_cmc(endpoint, request, tls_cert, false)
    }

    /// [`Ca::handle_cmc_at`]; `stored` when `request` is one this CA stored for a pending
    /// decision (for an RA: the forwarded request, no longer in its wrapper).
    fn decide_cmc(
        &self,
        endpoint: &'static str,
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
        let (request, identity) = match intake {
            Ok(Intake::Cmc(request, identity)) => (request, identity),
            Ok(Intake::Reenroll {
                pkcs10,
                renewed,
                echo,
            }) => return self.decide_reenroll(origin, &pkcs10, &renewed, &echo),
            Err(r) => {
                self.record_refusal(&self.decision(), &origin, None, &r, None);
                return self.reject(&r, None);
            }
        };
        let origin = origin.renewing(&identity);
        let checked = policy::validate_cmc(&request, &identity, &self.context())
            .map(|a| (identity, a, request));
        let store = self.decision();
        let (tls, accepted, request) = match checked {
            Ok(ok) => ok,
            Err(r) => {
                self.record_refusal(&store, &origin, None, &r, None);
                return self.reject(&r, None);
            }
        };
        let result = store.atomically(|s| {
            s.bump("requests")?;
            self.process_cmc(s, &accepted, &tls, &origin, &request)
        });
        let answer = match result {
            Ok(answer) => answer,
            Err(r) => {
                self.record_refusal(&store, &origin, Some(&accepted.template.name), &r, None);
                Answer::rejected(&r)
            }
        };
        // The decision is committed: the response is signed without holding the store.
        drop(store);
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
    fn decide_reenroll(
        &self,
        origin: Origin,
        pkcs10: &[u8],
        renewed: &Retained<Certificate>,
        echo: &Echo,
    ) -> CmcReply {
        let origin = origin.renewing(renewed);
        let checked = policy::validate_simple(pkcs10, renewed, &self.context());
        let store = self.decision();
        let accepted = match checked {
            Ok(accepted) => accepted,
            Err(r) => {
                self.record_refusal(&store, &origin, None, &r, None);
                return self.reject(&r, Some(echo));
            }
        };
        let result = store.atomically(|s| {
            s.bump("requests")?;
            self.process_simple(s, &accepted, renewed, &origin, pkcs10)
        });
        let (answer, fault) = match result {
            Ok(answer) => answer,
            Err(r) => {
                self.record_refusal(&store, &origin, Some(&accepted.template.name), &r, None);
                (SimpleOutcome::Rejected(r), None)
            }
        };
        drop(store);
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

    /// Decides an accepted CMC request, inside the store transaction. Every answer, refusals
    /// included, is audited here; an `Err` rolls everything back (the caller audits it).
    fn process_cmc(
        &self,
        store: &Store,
        accepted: &Accepted,
        tls: &Retained<Certificate>,
        origin: &Origin,
        request: &[u8],
    ) -> Result<Answer, Rejection> {
        let template = accepted.template.name.as_str();
        let refuse = |rejection: Rejection, pending: Option<i64>| -> Result<Answer, Rejection> {
            self.refused(store, origin, Some(template), &rejection, pending)?;
            Ok(Answer::rejected(&rejection))
        };
        // A request re-sent for a pending transaction is a poll, not a replay.
        let same_request = |p: &Pending| same_cmc_pkcs10(&p.request, accepted, &self.limits);
        let lookup = Lookup {
            renewed: tls.value(),
            pending_key: &accepted.transaction,
            same_request: &same_request,
            key_fingerprint: &hex(&accepted.new_key.fingerprint()),
            transaction: &accepted.transaction,
            nonce: accepted.facts.sender_nonce.as_deref(),
            hold: false,
            guard_until: crate::ledger::guard_until(tls.value(), self.grace),
        };
        match self
            .ledger
            .stand(store, origin, self.clock.unix(), template, &lookup)?
        {
            Standing::Refused(r, pending) => return refuse(r, pending),
            Standing::Poll(pending) => return self.poll_cmc(store, pending, accepted, origin),
            Standing::Answered(cert) => {
                return Ok(Answer::new(
                    Outcome::Issued,
                    Some("Issued".into()),
                    Some(*cert),
                    None,
                ));
            }
            // Decided in this transaction: nothing is ever in flight here.
            Standing::Fresh(_) | Standing::InFlight => {}
        }
        let old = tls.value().tbs_certificate();
        let decision = self.decide(store, &old.subject().to_string(), &accepted.template)?;
        match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let revoked = decision.disposition == Disposition::Revoked;
                let cert = self.issue_renewal(
                    store,
                    origin,
                    tls,
                    &accepted.new_key,
                    &accepted.template,
                    accepted.extensions.clone(),
                    decision.fault,
                    revoked,
                    &accepted.findings,
                )?;
                let text = if revoked { "Revoked" } else { "Issued" };
                Ok(Answer::new(
                    Outcome::Issued,
                    Some(text.into()),
                    Some(cert),
                    decision.fault,
                ))
            }
            Disposition::Deny(reason) => refuse(Rejection::Denied(reason), None),
            Disposition::Error(hresult) => {
                store.bump("errors")?;
                self.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::NoCertificate,
                    None,
                    None,
                    format!("error disposition 0x{hresult:08X}"),
                )?;
                Ok(Answer::new(
                    Outcome::Failed {
                        fail_info: Some(CmcFailInfo::InternalCaError),
                    },
                    Some(format!(
                        "0x{hresult:08X}: the CA failed to process the request"
                    )),
                    None,
                    decision.fault,
                ))
            }
            Disposition::IssuedOutOfBand => {
                self.audit(
                    store,
                    origin,
                    Some(template),
                    AuditOutcome::NoCertificate,
                    None,
                    None,
                    "issued out of band".into(),
                )?;
                Ok(Answer::new(
                    Outcome::Issued,
                    Some("Issued out of band".into()),
                    None,
                    decision.fault,
                ))
            }
            Disposition::Pending { resolve, to } => {
                let (id, resolve) = self.add_pending(
                    store,
                    origin,
                    template,
                    &accepted.transaction,
                    request,
                    resolve,
                    to,
                )?;
                Ok(self.pending_answer(id, resolve, decision.fault))
            }
        }
    }

    /// Stores a request taken under submission, with its audit record; `after:N` becomes
    /// absolute time here.
    #[allow(clippy::too_many_arguments)]
    fn add_pending(
        &self,
        store: &Store,
        origin: &Origin,
        template: &str,
        transaction: &str,
        request: &[u8],
        resolve: Resolve,
        end: PendingEnd,
    ) -> Result<(i64, Resolve), Rejection> {
        let now = self.clock.unix();
        let resolve = match resolve {
            Resolve::At(secs) => Resolve::At(now + secs),
            other => other,
        };
        let id = store.add_pending(&Pending {
            id: 0,
            tls_fingerprint: origin.identity.clone(),
            transaction: transaction.to_string(),
            request: request.to_vec(),
            kind: origin.endpoint.into(),
            created_at: now,
            polls: 0,
            resolve,
            end,
            status: "pending".into(),
            cert_serial: None,
            upstream_id: None,
        })?;
        store.bump("pending")?;
        self.audit(
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
    fn pending_answer(&self, id: i64, resolve: Resolve, fault: Option<TransportFault>) -> Answer {
        let now = self.clock.unix();
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
    fn due(&self, pending: &Pending, polls: u32) -> bool {
        match pending.resolve {
            Resolve::At(t) => self.clock.unix() >= t,
            Resolve::OnPoll(n) => polls >= n,
            Resolve::Admin => false,
        }
    }

    /// Where a poll of a pending request stands, after counting the poll: the stored decision
    /// (issued, denied), still pending, or due now (denied or to be issued by the caller).
    fn poll_state(
        &self,
        store: &Store,
        pending: &Pending,
        origin: &Origin,
        template: &str,
    ) -> Result<PollState, Rejection> {
        let polls = store.count_poll(pending.id)?;
        store.bump("polls")?;
        let denied = || Rejection::Denied("the pending request was denied".into());
        match pending.status.as_str() {
            "issued" => {
                let serial = pending.cert_serial.clone().unwrap_or_default();
                let der = store
                    .certificate(&serial)?
                    .ok_or(Rejection::Internal("issued certificate missing".into()))?;
                let cert =
                    Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
                self.audit(
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
            "denied" => {
                self.refused(store, origin, Some(template), &denied(), Some(pending.id))?;
                return Ok(PollState::Refused(denied()));
            }
            _ => {}
        }
        if !self.due(pending, polls) {
            self.audit(
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
            store.finish_pending(pending.id, "denied", None)?;
            self.audit(
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

    /// Issues the certificate of a due pending request and records it, in the caller's
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    fn issue_pending(
        &self,
        store: &Store,
        pending: &Pending,
        origin: &Origin,
        old: &Retained<Certificate>,
        key: &PublicKey,
        template: &Template,
        extensions: Vec<Extension>,
    ) -> Result<Retained<Certificate>, Rejection> {
        let old_serial = serial_text(old.value());
        let cert = self.issue(
            store,
            old.value().tbs_certificate().subject().clone(),
            key,
            template,
            extensions,
            Some(&old_serial),
            None,
            None,
        )?;
        let serial = serial_text(cert.value());
        store.finish_pending(pending.id, "issued", Some(&serial))?;
        self.audit(
            store,
            origin,
            Some(&template.name),
            AuditOutcome::Issued,
            Some(&serial),
            Some(pending.id),
            format!("renewal of {old_serial}, pending request {}", pending.id),
        )?;
        Ok(cert)
    }

    fn poll_cmc(
        &self,
        store: &Store,
        pending: Pending,
        accepted: &Accepted,
        origin: &Origin,
    ) -> Result<Answer, Rejection> {
        let issued = |cert| Answer::new(Outcome::Issued, Some("Issued".into()), Some(cert), None);
        match self.poll_state(store, &pending, origin, &accepted.template.name)? {
            PollState::Issued(cert) => Ok(issued(*cert)),
            PollState::Refused(r) => Ok(Answer::rejected(&r)),
            PollState::StillPending => Ok(self.pending_answer(pending.id, pending.resolve, None)),
            PollState::Due => {
                // What was stored is what is issued: the poll's PKCS#10 was checked to be the
                // stored one (`same_cmc_pkcs10`), so its key is the stored key.
                let cert = self.issue_pending(
                    store,
                    &pending,
                    origin,
                    &accepted.facts.renewal_certificate,
                    &accepted.new_key,
                    &accepted.template,
                    accepted.extensions.clone(),
                )?;
                Ok(issued(cert))
            }
        }
    }

    /// Handles an EST simplereenroll (PKCS#10, DER/base64) presented with `tls_cert`. A
    /// trusted RA does not come here: it forwards a re-enrollment as full CMC naming the
    /// certificate it renews ([`renewal_core::cmc::ra::wrap_reenroll`]); its own
    /// simplereenroll would ask the CA to guess whose renewal it is, and is refused.
    pub fn handle_simple(
        &self,
        body: &[u8],
        tls_cert: &[u8],
    ) -> (SimpleReply, Option<TransportFault>) {
        let origin = Origin::new("simplereenroll", tls_cert, body);
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
        let store = self.decision();
        let refuse = |r: Rejection, template: Option<&str>| {
            self.record_refusal(&store, &origin, template, &r, None);
            (SimpleReply::Rejected(r), None)
        };
        let (tls, accepted) = match checked {
            Ok(ok) => ok,
            Err(r) => return refuse(r, None),
        };
        let result = store.atomically(|s| {
            s.bump("requests")?;
            self.process_simple(s, &accepted, &tls, &origin, body)
        });
        let (answer, fault) = match result {
            Ok(answer) => answer,
            Err(r) => return refuse(r, Some(&accepted.template.name)),
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

    /// Decides a checked re-enrollment of `renewed` (an EST simplereenroll, or an RA's
    /// re-enrollment wrapper), inside the store transaction; every answer is audited here.
    fn process_simple(
        &self,
        store: &Store,
        accepted: &SimpleAccepted,
        renewed: &Retained<Certificate>,
        origin: &Origin,
        body: &[u8],
    ) -> Result<(SimpleOutcome, Option<TransportFault>), Rejection> {
        let template = accepted.template.name.as_str();
        let refuse = |r: Rejection, pending: Option<i64>| {
            self.refused(store, origin, Some(template), &r, pending)?;
            Ok((SimpleOutcome::Rejected(r), None))
        };
        let key_fingerprint = hex(&accepted.new_key.fingerprint());
        let same_request =
            |p: &Pending| same_simple_pkcs10(&p.request, &accepted.pkcs10, &self.limits);
        let transaction = format!("key:{key_fingerprint}");
        let lookup = Lookup {
            renewed: renewed.value(),
            pending_key: &key_fingerprint,
            same_request: &same_request,
            key_fingerprint: &key_fingerprint,
            transaction: &transaction,
            nonce: None,
            hold: false,
            guard_until: crate::ledger::guard_until(renewed.value(), self.grace),
        };
        match self
            .ledger
            .stand(store, origin, self.clock.unix(), template, &lookup)?
        {
            Standing::Refused(r, pending) => return refuse(r, pending),
            Standing::Poll(pending) => {
                let outcome = match self.poll_state(store, &pending, origin, template)? {
                    PollState::Issued(cert) => SimpleOutcome::Issued(cert),
                    PollState::Refused(r) => SimpleOutcome::Rejected(r),
                    PollState::StillPending => SimpleOutcome::Pending {
                        id: pending.id,
                        resolve: pending.resolve,
                    },
                    PollState::Due => SimpleOutcome::Issued(Box::new(self.issue_pending(
                        store,
                        &pending,
                        origin,
                        renewed,
                        &accepted.new_key,
                        &accepted.template,
                        accepted.extensions.clone(),
                    )?)),
                };
                return Ok((outcome, None));
            }
            Standing::Answered(cert) => return Ok((SimpleOutcome::Issued(cert), None)),
            Standing::Fresh(_) | Standing::InFlight => {}
        }
        let old = renewed.value().tbs_certificate();
        let decision = self.decide(store, &old.subject().to_string(), &accepted.template)?;
        match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let cert = self.issue_renewal(
                    store,
                    origin,
                    renewed,
                    &accepted.new_key,
                    &accepted.template,
                    accepted.extensions.clone(),
                    decision.fault,
                    decision.disposition == Disposition::Revoked,
                    &[],
                )?;
                Ok((SimpleOutcome::Issued(Box::new(cert)), decision.fault))
            }
            Disposition::Deny(reason) => refuse(Rejection::Denied(reason), None),
            Disposition::Error(hresult) => {
                refuse(Rejection::Internal(format!("0x{hresult:08X}")), None)
            }
            Disposition::IssuedOutOfBand => {
                refuse(Rejection::Denied("issued out of band".into()), None)
            }
            Disposition::Pending { resolve, to } => {
                let (id, resolve) =
                    self.add_pending(store, origin, template, &key_fingerprint, body, resolve, to)?;
                Ok((SimpleOutcome::Pending { id, resolve }, decision.fault))
            }
        }
    }

    fn retry_secs(&self, resolve: Resolve) -> u64 {
        match resolve {
            Resolve::At(t) => u64::try_from(t - self.clock.unix()).unwrap_or(0).max(1),
            _ => DEFAULT_RETRY_SECS,
        }
    }

    /// Admin: approve or deny a pending request. False when it is not pending.
    pub fn decide_pending(&self, id: i64, approve: bool) -> Result<bool, String> {
        admin_decide(&self.decision(), id, approve, self.clock.unix(), "admin")
            .map_err(|e| e.to_string())
    }

    /// Admin: revoke a serial (hex). False when the serial is unknown (recorded anyway).
    pub fn revoke(&self, serial: &str) -> Result<bool, String> {
        admin_revoke(
            &self.decision(),
            &serial.to_ascii_lowercase(),
            self.clock.unix(),
            "admin",
        )
        .map_err(|e| e.to_string())
    }

    /// The initial enrollment an administrator does: a certificate for a PKCS#10 (PEM or DER)
    /// under `template`, with the template extension, clientAuth + smartcardLogon, and the
    /// requested SAN.
    pub fn issue_initial(
        &self,
        csr: &[u8],
        template: &str,
        days: Option<u32>,
    ) -> Result<Retained<Certificate>, String> {
        let template = self
            .templates
            .by_text(template)
            .ok_or_else(|| format!("unknown template {template:?}"))?
            .clone();
        let (der, _) =
            renewal_core::cmc::input::to_der(csr, &self.limits).map_err(|e| e.to_string())?;
        let req: Retained<x509_cert::request::CertReq> =
            renewal_core::cmc::input::decode_exact(&der, "PKCS#10").map_err(|e| e.to_string())?;
        renewal_core::cmc::verify_request::verify_pkcs10(&req).map_err(|e| e.to_string())?;
        let key = PublicKey::from_spki(&req.value().info.public_key).map_err(|e| e.to_string())?;
        policy::check_key_allowed(&key, &template).map_err(|e| e.to_string())?;
        use renewal_core::x509;
        let mut extensions = vec![
            x509::basic_constraints(false, None).map_err(|e| e.to_string())?,
            x509::key_usage(x509_cert::ext::pkix::KeyUsages::DigitalSignature)
                .map_err(|e| e.to_string())?,
            x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_SMARTCARD_LOGON])
                .map_err(|e| e.to_string())?,
            x509::certificate_template(template.oid, 100, 1).map_err(|e| e.to_string())?,
        ];
        let requested = renewal_core::cmc::verify_request::requested_extensions(req.value())
            .map_err(|e| e.to_string())?;
        extensions.extend(
            requested
                .into_iter()
                .filter(|e| e.extn_id == oids::SUBJECT_ALT_NAME),
        );
        let origin = Origin::new("cli", &[], csr);
        let store = self.decision();
        store
            .atomically(|s| {
                let cert = self.issue(
                    s,
                    req.value().info.subject.clone(),
                    &key,
                    &template,
                    extensions,
                    None,
                    None,
                    days,
                )?;
                self.audit(
                    s,
                    &origin,
                    Some(&template.name),
                    AuditOutcome::Enrolled,
                    Some(&serial_text(cert.value())),
                    None,
                    format!("initial enrollment of {}", req.value().info.subject),
                )?;
                Ok(cert)
            })
            .map_err(|e: Rejection| e.to_string())
    }

    /// Records a certificate this CA's key signed outside the service (a test harness that
    /// provisions a card with `sample::issue_user_certificate`, an import): from then on the
    /// CA knows it as its own, as it knows what it issued itself — a trusted RA's
    /// simplereenroll for its subject finds it. Refused when this CA did not issue it.
    pub fn register_issued(&self, cert: &Retained<Certificate>) -> Result<(), String> {
        if !self.authority.issued_by_us(cert) {
            return Err("not issued by this CA".into());
        }
        let tbs = cert.value().tbs_certificate();
        let key = PublicKey::from_spki(tbs.subject_public_key_info()).map_err(|e| e.to_string())?;
        let template = policy::template_of(cert.value(), &self.templates)
            .ok()
            .map(|t| t.name.clone());
        let not_after =
            unix(std::time::SystemTime::UNIX_EPOCH + tbs.validity().not_after.to_unix_duration());
        let serial = serial_text(cert.value());
        let store = self.decision();
        store
            .atomically(|s| {
                if s.serial_exists(&serial)? {
                    return Ok(());
                }
                s.record_certificate(
                    &serial,
                    &tbs.subject().to_string(),
                    cert.der(),
                    template.as_deref(),
                    not_after,
                    None,
                    &hex(&key.fingerprint()),
                    self.clock.unix(),
                )
            })
            .map_err(|e: StoreError| e.to_string())
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

/// What a CMC request is answered with, decided under the store lock; the signed response is
/// built from it after the lock is released.
struct Answer {
    outcome: Outcome,
    status: Option<String>,
    issued: Option<Retained<Certificate>>,
    fault: Option<TransportFault>,
}

impl Answer {
    fn new(
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

    fn rejected(rejection: &Rejection) -> Self {
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

/// What a re-enrollment is answered with, before its wire form (a certs-only PKCS#7 or an
/// HTTP status for EST; a CMC response for an RA).
enum SimpleOutcome {
    /// This certificate.
    Issued(Box<Retained<Certificate>>),
    /// Taken under submission as request `id`.
    Pending { id: i64, resolve: Resolve },
    /// Refused.
    Rejected(Rejection),
}

/// Where a poll of a pending request stands.
enum PollState {
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
    let Ok(parsed) = renewal_core::cmc::parse_request(stored, limits) else {
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
    let Ok((der, _)) = renewal_core::cmc::input::to_der(stored, limits) else {
        return false;
    };
    renewal_core::cmc::input::decode_exact::<x509_cert::request::CertReq>(&der, "PKCS#10")
        .is_ok_and(|stored| stored.info == poll.value().info)
}

/// Approves or denies a pending request and audits it, in one transaction (the HTTP admin
/// endpoint and `sim-ca pending approve|deny` both come here). False when it is not pending.
pub fn admin_decide(
    store: &Store,
    id: i64,
    approve: bool,
    now: i64,
    via: &'static str,
) -> Result<bool, StoreError> {
    let end = if approve {
        PendingEnd::Issue
    } else {
        PendingEnd::Deny
    };
    store.atomically(|s| {
        if !s.decide_pending(id, end)? {
            return Ok(false);
        }
        s.append_audit(&AuditRecord {
            id: 0,
            at: now,
            endpoint: via.into(),
            tls_fingerprint: String::new(),
            request_hash: String::new(),
            template: None,
            outcome: if approve {
                AuditOutcome::Approved
            } else {
                AuditOutcome::Denied
            }
            .as_str()
            .into(),
            serial: None,
            pending_id: Some(id),
            detail: format!(
                "pending request {id} {} by the administrator",
                if approve { "approved" } else { "denied" }
            ),
        })?;
        Ok(true)
    })
}

/// Revokes a serial (hex, lower case) and audits it, in one transaction. False when the
/// serial is unknown (recorded anyway).
pub fn admin_revoke(
    store: &Store,
    serial: &str,
    now: i64,
    via: &'static str,
) -> Result<bool, StoreError> {
    store.atomically(|s| {
        let known = s.revoke(serial, now)?;
        s.append_audit(&AuditRecord {
            id: 0,
            at: now,
            endpoint: via.into(),
            tls_fingerprint: String::new(),
            request_hash: String::new(),
            template: None,
            outcome: AuditOutcome::Revoked.as_str().into(),
            serial: Some(serial.into()),
            pending_id: None,
            detail: if known {
                "revoked by the administrator".into()
            } else {
                "revoked by the administrator (serial not issued by this CA)".into()
            },
        })?;
        Ok(known)
    })
}
