//! The CA's decision logic, callable in-process without a socket: a function of (request,
//! TLS identity, store, scenario). The HTTPS server is a thin shell around it.

use std::{sync::Mutex, time::Duration};

use der::asn1::GeneralizedTime;
use renewal_core::cmc::{
    DigestAlgorithm, Limits, Outcome, ResponseParams, Retained, Signer, SoftwareKey, StatusStyle,
    build_certs_only, build_full_response, crypto::key_identifier, oids, status::CmcFailInfo,
    verify_request::hex,
};
use x509_cert::{Certificate, ext::Extension, name::Name};

use crate::{
    authority::Authority,
    clock::{Clock, unix},
    policy::{self, Accepted, PolicyContext, Rejection, serial_text},
    scenario::{Disposition, Rule, Scenario, TransportFault},
    store::{Pending, PendingEnd, Resolve, Store},
    templates::{Template, TemplateRegistry},
};

/// How long a client should wait before polling a pending request, when nothing says.
pub const DEFAULT_RETRY_SECS: u64 = 5;

/// The CA.
pub struct Ca {
    authority: Authority,
    templates: TemplateRegistry,
    store: Mutex<Store>,
    rules: Vec<Rule>,
    clock: Clock,
    grace: Duration,
    style: StatusStyle,
    limits: Limits,
    /// A key that is not the CA's, for the "wrong signer" and "wrong key" faults.
    decoy: SoftwareKey,
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
}

/// What `decide` returns.
struct Decision {
    disposition: Disposition,
    fault: Option<TransportFault>,
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave SQLite inconsistent (transactions), so the
    // poisoned guard is safe to reuse.
    store.lock().unwrap_or_else(|e| e.into_inner())
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
            decoy: SoftwareKey::generate_p256().map_err(|e| e.to_string())?,
        })
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

    /// Runs `f` with the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
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
        let n = store
            .counters()?
            .into_iter()
            .find(|(name, _)| *name == counter)
            .map_or(1, |(_, v)| u32::try_from(v).unwrap_or(u32::MAX));
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
        let tls = Retained::<Certificate>::from_der(tls_cert).ok()?;
        let subject = tls.value().tbs_certificate().subject().to_string();
        let template = policy::template_of(tls.value(), &self.templates).ok()?;
        let store = lock(&self.store);
        let counter = format!("requests:{subject}");
        let next = store
            .counters()
            .ok()?
            .into_iter()
            .find(|(name, _)| *name == counter)
            .map_or(1, |(_, v)| u32::try_from(v + 1).unwrap_or(u32::MAX));
        let rule = self.first_rule(&subject, template, next)?;
        match rule.fault {
            Some(f @ (TransportFault::DropBeforeRead | TransportFault::Http(_))) => {
                let _ = store.bump(&counter);
                Some(f)
            }
            _ => None,
        }
    }

    fn context<'a>(&'a self, store: &'a Store) -> PolicyContext<'a> {
        PolicyContext {
            authority: &self.authority,
            templates: &self.templates,
            store,
            now: self.clock.now(),
            grace: self.grace,
            limits: self.limits,
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

    /// Issues and records a certificate for `subject` / `key` under `template`.
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        store: &Store,
        subject: Name,
        mut key: spki::SubjectPublicKeyInfoOwned,
        template: &Template,
        extensions: Vec<Extension>,
        renewal_of: Option<&str>,
        fault: Option<TransportFault>,
        days: Option<u32>,
    ) -> Result<Retained<Certificate>, Rejection> {
        if fault == Some(TransportFault::WrongKeyCertificate) {
            key = self.decoy.public_key().clone();
        }
        let now = self.clock.now();
        let serial = self.new_serial(store)?;
        let not_after =
            now + Duration::from_secs(u64::from(days.unwrap_or(template.validity_days)) * 86400);
        let cert = self
            .authority
            .issue(
                serial.clone(),
                subject.clone(),
                key,
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
            unix(now),
        )?;
        store.bump("issued")?;
        Ok(cert)
    }

    fn respond(
        &self,
        outcome: Outcome,
        status_string: Option<String>,
        issued: Option<Retained<Certificate>>,
        echo: Option<&Accepted>,
        fault: Option<TransportFault>,
    ) -> CmcReply {
        let retry_after = match &outcome {
            Outcome::Pending { retry_at, .. } => {
                let at = std::time::SystemTime::UNIX_EPOCH + retry_at.to_unix_duration();
                Some(
                    at.duration_since(self.clock.now())
                        .map_or(1, |d| d.as_secs().max(1)),
                )
            }
            _ => None,
        };
        let params = ResponseParams {
            outcome: outcome.clone(),
            status_string,
            style: self.style,
            request_body_part: echo.and_then(|a| a.facts.request_body_part).unwrap_or(1),
            transaction_id: echo.and_then(|a| a.facts.transaction_id.clone()),
            recipient_nonce: echo.and_then(|a| a.facts.sender_nonce.clone()),
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
        }
    }

    fn reject(&self, rejection: &Rejection, echo: Option<&Accepted>) -> CmcReply {
        let _ = lock(&self.store).bump("rejected");
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

    /// Handles a Full PKI Request presented over TLS with `tls_cert` (DER).
    pub fn handle_cmc(&self, request: &[u8], tls_cert: &[u8]) -> CmcReply {
        let tls = match Retained::<Certificate>::from_der(tls_cert) {
            Ok(c) => c,
            Err(_) => return self.reject(&Rejection::IdentityMismatch, None),
        };
        let store = lock(&self.store);
        let _ = store.bump("requests");
        let accepted = match policy::validate_cmc(request, &tls, &self.context(&store)) {
            Ok(a) => a,
            Err(r) => {
                drop(store);
                return self.reject(&r, None);
            }
        };
        let fingerprint = hex(&DigestAlgorithm::Sha256.digest(tls.der()));
        let result = self.process_cmc(&store, &accepted, &tls, &fingerprint, request);
        drop(store);
        match result {
            Ok(reply) => reply,
            Err(r) => self.reject(&r, Some(&accepted)),
        }
    }

    fn process_cmc(
        &self,
        store: &Store,
        accepted: &Accepted,
        tls: &Retained<Certificate>,
        fingerprint: &str,
        request: &[u8],
    ) -> Result<CmcReply, Rejection> {
        // A request re-sent for a pending transaction is a poll, not a replay.
        if !accepted.transaction.is_empty()
            && let Some(pending) = store.find_pending(fingerprint, &accepted.transaction)?
        {
            return self.poll_cmc(store, pending, accepted);
        }
        let now = self.clock.unix();
        if !accepted.transaction.is_empty()
            && !store.first_sighting(
                "transaction",
                &format!("{fingerprint}:{}", accepted.transaction),
                now,
            )?
        {
            return Err(Rejection::Replay);
        }
        if let Some(nonce) = &accepted.facts.sender_nonce
            && !store.first_sighting("nonce", &hex(nonce), now)?
        {
            return Err(Rejection::Replay);
        }
        let old = tls.value().tbs_certificate();
        let decision = self.decide(store, &old.subject().to_string(), &accepted.template)?;
        let old_serial = serial_text(tls.value());
        match decision.disposition {
            Disposition::Issue | Disposition::Revoked => {
                let cert = self.issue(
                    store,
                    old.subject().clone(),
                    accepted.facts.pkcs10.value().info.public_key.clone(),
                    &accepted.template,
                    accepted.extensions.clone(),
                    Some(&old_serial),
                    decision.fault,
                    None,
                )?;
                let text = if decision.disposition == Disposition::Revoked {
                    store.revoke(&serial_text(cert.value()), now)?;
                    "Revoked"
                } else {
                    "Issued"
                };
                Ok(self.respond(
                    Outcome::Issued,
                    Some(text.into()),
                    Some(cert),
                    Some(accepted),
                    decision.fault,
                ))
            }
            Disposition::Deny(reason) => Err(Rejection::Denied(reason)),
            Disposition::Error(hresult) => {
                store.bump("errors")?;
                Ok(self.respond(
                    Outcome::Failed {
                        fail_info: Some(CmcFailInfo::InternalCaError),
                    },
                    Some(format!(
                        "0x{hresult:08X}: the CA failed to process the request"
                    )),
                    None,
                    Some(accepted),
                    decision.fault,
                ))
            }
            Disposition::IssuedOutOfBand => Ok(self.respond(
                Outcome::Issued,
                Some("Issued out of band".into()),
                None,
                Some(accepted),
                decision.fault,
            )),
            Disposition::Pending { resolve, to } => {
                let (id, resolve) = self.add_pending(
                    store,
                    fingerprint,
                    &accepted.transaction,
                    request,
                    "cmc",
                    resolve,
                    to,
                )?;
                Ok(self.pending_reply(id, resolve, Some(accepted), decision.fault))
            }
        }
    }

    /// Stores a request taken under submission; `after:N` becomes absolute time here.
    #[allow(clippy::too_many_arguments)]
    fn add_pending(
        &self,
        store: &Store,
        fingerprint: &str,
        transaction: &str,
        request: &[u8],
        kind: &str,
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
            tls_fingerprint: fingerprint.to_string(),
            transaction: transaction.to_string(),
            request: request.to_vec(),
            kind: kind.into(),
            created_at: now,
            polls: 0,
            resolve,
            end,
            status: "pending".into(),
            cert_serial: None,
        })?;
        store.bump("pending")?;
        Ok((id, resolve))
    }

    fn pending_reply(
        &self,
        id: i64,
        resolve: Resolve,
        echo: Option<&Accepted>,
        fault: Option<TransportFault>,
    ) -> CmcReply {
        let now = self.clock.unix();
        let at = match resolve {
            Resolve::At(t) if t > now => t,
            _ => now + DEFAULT_RETRY_SECS as i64,
        };
        let Ok(retry_at) = GeneralizedTime::from_unix_duration(Duration::from_secs(
            u64::try_from(at).unwrap_or(0),
        )) else {
            return self.reject(
                &Rejection::Internal("pending time out of range".into()),
                echo,
            );
        };
        self.respond(
            Outcome::Pending {
                token: id.to_be_bytes().to_vec(),
                retry_at,
            },
            Some(format!("Taken under submission (request {id})")),
            None,
            echo,
            fault,
        )
    }

    /// Whether a pending request is due, given its poll count.
    fn due(&self, pending: &Pending, polls: u32) -> bool {
        match pending.resolve {
            Resolve::At(t) => self.clock.unix() >= t,
            Resolve::OnPoll(n) => polls >= n,
            Resolve::Admin => false,
        }
    }

    fn poll_cmc(
        &self,
        store: &Store,
        pending: Pending,
        accepted: &Accepted,
    ) -> Result<CmcReply, Rejection> {
        let polls = store.count_poll(pending.id)?;
        store.bump("polls")?;
        match pending.status.as_str() {
            "issued" => {
                let serial = pending.cert_serial.clone().unwrap_or_default();
                let der = store
                    .certificate(&serial)?
                    .ok_or(Rejection::Internal("issued certificate missing".into()))?;
                let cert =
                    Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
                return Ok(self.respond(
                    Outcome::Issued,
                    Some("Issued".into()),
                    Some(cert),
                    Some(accepted),
                    None,
                ));
            }
            "denied" => return Err(Rejection::Denied("the pending request was denied".into())),
            _ => {}
        }
        if !self.due(&pending, polls) {
            return Ok(self.pending_reply(pending.id, pending.resolve, Some(accepted), None));
        }
        if pending.end == PendingEnd::Deny {
            store.finish_pending(pending.id, "denied", None)?;
            return Err(Rejection::Denied("the pending request was denied".into()));
        }
        let old = accepted.facts.renewal_certificate.value().tbs_certificate();
        let cert = self.issue(
            store,
            old.subject().clone(),
            accepted.facts.pkcs10.value().info.public_key.clone(),
            &accepted.template,
            accepted.extensions.clone(),
            Some(&serial_text(accepted.facts.renewal_certificate.value())),
            None,
            None,
        )?;
        store.finish_pending(pending.id, "issued", Some(&serial_text(cert.value())))?;
        Ok(self.respond(
            Outcome::Issued,
            Some("Issued".into()),
            Some(cert),
            Some(accepted),
            None,
        ))
    }

    /// Handles an EST simplereenroll (PKCS#10, DER/base64) presented with `tls_cert`.
    pub fn handle_simple(
        &self,
        body: &[u8],
        tls_cert: &[u8],
    ) -> (SimpleReply, Option<TransportFault>) {
        let Ok(tls) = Retained::<Certificate>::from_der(tls_cert) else {
            return (SimpleReply::Rejected(Rejection::IdentityMismatch), None);
        };
        let store = lock(&self.store);
        let _ = store.bump("requests");
        let result = (|| {
            let (req, template, extensions) =
                policy::validate_simple(body, &tls, &self.context(&store))?;
            let fingerprint = hex(&DigestAlgorithm::Sha256.digest(tls.der()));
            let key = req.value().info.public_key.clone();
            let transaction = hex(&key_identifier(&key));
            let old = tls.value().tbs_certificate();
            let issue = |fault| {
                let cert = self.issue(
                    &store,
                    old.subject().clone(),
                    key.clone(),
                    &template,
                    extensions.clone(),
                    Some(&serial_text(tls.value())),
                    fault,
                    None,
                )?;
                build_certs_only(&[cert])
                    .map_err(|e| Rejection::Internal(e.to_string()))
                    .map(|der| (cert_serial(&der), der))
            };
            if let Some(pending) = store.find_pending(&fingerprint, &transaction)? {
                let polls = store.count_poll(pending.id)?;
                return match pending.status.as_str() {
                    "issued" => {
                        let der = store
                            .certificate(pending.cert_serial.as_deref().unwrap_or_default())?
                            .ok_or(Rejection::Internal("issued certificate missing".into()))?;
                        let cert = Retained::from_der(&der)
                            .map_err(|e| Rejection::Internal(e.to_string()))?;
                        Ok((
                            SimpleReply::Issued(
                                build_certs_only(&[cert])
                                    .map_err(|e| Rejection::Internal(e.to_string()))?,
                            ),
                            None,
                        ))
                    }
                    "denied" => Err(Rejection::Denied("the pending request was denied".into())),
                    _ if !self.due(&pending, polls) => {
                        Ok((SimpleReply::Pending(self.retry_secs(pending.resolve)), None))
                    }
                    _ if pending.end == PendingEnd::Deny => {
                        store.finish_pending(pending.id, "denied", None)?;
                        Err(Rejection::Denied("the pending request was denied".into()))
                    }
                    _ => {
                        let (serial, der) = issue(None)?;
                        store.finish_pending(pending.id, "issued", Some(&serial))?;
                        Ok((SimpleReply::Issued(der), None))
                    }
                };
            }
            let decision = self.decide(&store, &old.subject().to_string(), &template)?;
            match decision.disposition {
                Disposition::Issue | Disposition::Revoked => {
                    let (serial, der) = issue(decision.fault)?;
                    if decision.disposition == Disposition::Revoked {
                        store.revoke(&serial, self.clock.unix())?;
                    }
                    Ok((SimpleReply::Issued(der), decision.fault))
                }
                Disposition::Deny(reason) => Err(Rejection::Denied(reason)),
                Disposition::Error(hresult) => Err(Rejection::Internal(format!("0x{hresult:08X}"))),
                Disposition::IssuedOutOfBand => Err(Rejection::Denied("issued out of band".into())),
                Disposition::Pending { resolve, to } => {
                    let (_, resolve) = self.add_pending(
                        &store,
                        &fingerprint,
                        &transaction,
                        body,
                        "simplereenroll",
                        resolve,
                        to,
                    )?;
                    Ok((
                        SimpleReply::Pending(self.retry_secs(resolve)),
                        decision.fault,
                    ))
                }
            }
        })();
        match result {
            Ok(r) => r,
            Err(rejection) => {
                let _ = store.bump("rejected");
                (SimpleReply::Rejected(rejection), None)
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
        lock(&self.store)
            .decide_pending(
                id,
                if approve {
                    PendingEnd::Issue
                } else {
                    PendingEnd::Deny
                },
            )
            .map_err(|e| e.to_string())
    }

    /// Admin: revoke a serial (hex). False when the serial is unknown (recorded anyway).
    pub fn revoke(&self, serial: &str) -> Result<bool, String> {
        let store = lock(&self.store);
        store
            .revoke(&serial.to_ascii_lowercase(), self.clock.unix())
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
        let key = req.value().info.public_key.clone();
        let algorithm = policy::key_algorithm(&key).ok_or("unsupported key algorithm")?;
        if !template.allowed_keys.contains(&algorithm) {
            return Err(format!(
                "template {} does not allow {algorithm:?} keys",
                template.name
            ));
        }
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
        let store = lock(&self.store);
        self.issue(
            &store,
            req.value().info.subject.clone(),
            key,
            &template,
            extensions,
            None,
            None,
            days,
        )
        .map_err(|e| e.to_string())
    }

    /// Counters, by name.
    pub fn counters(&self) -> Vec<(String, i64)> {
        lock(&self.store).counters().unwrap_or_default()
    }
}

fn cert_serial(certs_only: &[u8]) -> String {
    renewal_core::cmc::parse_response(certs_only, &Limits::default())
        .ok()
        .and_then(|r| r.certificates.first().map(|c| serial_text(c.value())))
        .unwrap_or_default()
}
