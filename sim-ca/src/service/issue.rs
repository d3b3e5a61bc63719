//! What the simulated authority issues and records: serials, certificates (renewals, the
//! renewal of a pending request, the administrator's initial enrollment), and the
//! administrator's approvals and revocations — each with its audit record.

use super::*;
use crate::store::Endpoint;

/// A certificate's subject with its RFC 4514 text (what the store records and the scenario's
/// rules match), formatted once per renewal: x509-cert names each attribute by a linear search
/// of const-oid's whole database, 1.2 % of a simplereenroll's CPU when it ran twice.
pub(super) struct Subject {
    name: Name,
    text: String,
}

impl Subject {
    pub(super) fn of(name: &Name) -> Self {
        Self {
            name: name.clone(),
            text: renewal_codec::x509::name_text(name),
        }
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }
}

impl Ca {
    /// A fresh serial: 127 random bits (RFC 5280 §4.1.2.2 asks for at most 20 octets, CA/B
    /// Forum for 64 random bits). Not looked up first: the certificates table's primary key
    /// refuses a collision (odds of 2^-127 per pair), the decision's transaction rolls back
    /// and the client is told 503 — retried, with another serial.
    pub(super) fn new_serial() -> Result<Vec<u8>, Rejection> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let mut serial = vec![0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| Rejection::Internal("RNG".into()))?;
        serial[0] = (serial[0] & 0x7F) | 0x01; // positive, no leading zero byte
        Ok(serial)
    }

    /// Issues and records a certificate for `subject` / `key` under `template`. The
    /// certificate carries the CA's canonical encoding of the key, whatever encoding the
    /// request used.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue(
        &self,
        store: &Store,
        subject: Subject,
        key: &PublicKey,
        template: &Template,
        extensions: Vec<Extension>,
        renewal_of: Option<&str>,
        fault: Option<TransportFault>,
        days: Option<u32>,
    ) -> Result<Retained<Certificate>, Rejection> {
        let mut extensions = extensions;
        if let Some(purposes) = &template.purposes {
            extensions.retain(|e| e.extn_id != renewal_codec::cmc::oids::EXT_KEY_USAGE);
            extensions.push(
                renewal_codec::x509::ext_key_usage(purposes.clone())
                    .map_err(|e| Rejection::Internal(e.to_string()))?,
            );
        }
        let spki = if fault == Some(TransportFault::WrongKeyCertificate) {
            self.decoy.public_key().clone()
        } else {
            key.to_spki()
        };
        let now = self.desk.clock.now();
        // An issuing CA whose certificate has expired (or is not yet valid) issues nothing: what
        // it signed would not chain. ADCS does not start with such a certificate.
        let (ca_not_before, ca_not_after) = self.authority.issuing_validity();
        if now < ca_not_before || now >= ca_not_after {
            let validity = self
                .authority
                .issuing
                .cert
                .value()
                .tbs_certificate()
                .validity();
            return Err(Rejection::Internal(format!(
                "the issuing CA's certificate is not valid now (valid from {} to {})",
                validity.not_before, validity.not_after
            )));
        }
        let serial = Self::new_serial()?;
        let not_after =
            now + Duration::from_secs(u64::from(days.unwrap_or(template.validity_days)) * 86400);
        let cert = self
            .authority
            .issue(
                serial.clone(),
                subject.name,
                spki,
                now - Duration::from_secs(300),
                not_after,
                extensions,
            )
            .map_err(|e| Rejection::Internal(e.to_string()))?;
        store.record_certificate(
            &hex(&serial),
            &subject.text,
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
    pub(super) fn issue_renewal(
        &self,
        store: &Store,
        origin: &Origin,
        old: &Retained<Certificate>,
        subject: Subject,
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
            subject,
            key,
            template,
            extensions,
            Some(&old_serial),
            fault,
            None,
        )?;
        let serial = serial_text(cert.value());
        let outcome = if revoked {
            store.revoke(&serial, self.desk.clock.unix())?;
            AuditOutcome::IssuedRevoked
        } else {
            AuditOutcome::Issued
        };
        self.desk.audit(
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

    /// Issues the certificate of a due pending request and records it, in the caller's
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue_pending(
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
            Subject::of(old.value().tbs_certificate().subject()),
            key,
            template,
            extensions,
            Some(&old_serial),
            None,
            None,
        )?;
        let serial = serial_text(cert.value());
        store.finish_pending(pending.id, PendingStatus::Issued, Some(&serial))?;
        self.desk.audit(
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

    /// Admin: approve or deny a pending request. False when it is not pending.
    pub fn decide_pending(&self, id: i64, approve: bool) -> Result<bool, crate::Error> {
        Ok(admin_decide(
            &self.decision(),
            id,
            approve,
            self.desk.clock.unix(),
            Endpoint::Admin,
        )?)
    }

    /// Admin: revoke a serial (hex). False when the serial is unknown (recorded anyway).
    pub fn revoke(&self, serial: &str) -> Result<bool, crate::Error> {
        Ok(admin_revoke(
            &self.decision(),
            &serial.to_ascii_lowercase(),
            self.desk.clock.unix(),
            Endpoint::Admin,
        )?)
    }

    /// The initial enrollment an administrator does: a certificate for a PKCS#10 (PEM or DER)
    /// under `template`, with the template extension, clientAuth + smartcardLogon, and the
    /// requested SAN.
    pub fn issue_initial(
        &self,
        csr: &[u8],
        template: &str,
        days: Option<u32>,
    ) -> Result<Retained<Certificate>, crate::Error> {
        let result = (|| -> Result<Retained<Certificate>, String> {
            let template = self
                .templates
                .by_text(template)
                .ok_or_else(|| format!("unknown template {template:?}"))?
                .clone();
            let (der, _) = renewal_codec::cmc::input::to_der(csr, &self.desk.limits)
                .map_err(|e| e.to_string())?;
            let req: Retained<x509_cert::request::CertReq> =
                renewal_codec::cmc::input::decode_exact(&der, "PKCS#10")
                    .map_err(|e| e.to_string())?;
            renewal_codec::cmc::verify_request::verify_pkcs10(&req).map_err(|e| e.to_string())?;
            let key =
                PublicKey::from_spki(&req.value().info.public_key).map_err(|e| e.to_string())?;
            policy::check_key_allowed(&key, &template).map_err(|e| e.to_string())?;
            use renewal_codec::x509;
            let mut extensions = vec![
                x509::basic_constraints(false, None).map_err(|e| e.to_string())?,
                x509::key_usage(x509_cert::ext::pkix::KeyUsages::DigitalSignature)
                    .map_err(|e| e.to_string())?,
                x509::ext_key_usage(vec![oids::KP_CLIENT_AUTH, oids::KP_SMARTCARD_LOGON])
                    .map_err(|e| e.to_string())?,
                x509::certificate_template(template.oid, 100, 1).map_err(|e| e.to_string())?,
            ];
            let requested = renewal_codec::cmc::verify_request::requested_extensions(req.value())
                .map_err(|e| e.to_string())?;
            extensions.extend(
                requested
                    .into_iter()
                    .filter(|e| e.extn_id == oids::SUBJECT_ALT_NAME),
            );
            let origin = Origin::new(Endpoint::Cli, &[], csr);
            let store = self.decision();
            store
                .atomically(|s| {
                    let cert = self.issue(
                        s,
                        Subject::of(&req.value().info.subject),
                        &key,
                        &template,
                        extensions,
                        None,
                        None,
                        days,
                    )?;
                    self.desk.audit(
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
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "initial enrollment",
            reason,
        })
    }

    /// Records a certificate this CA's key signed outside the service (a test harness that
    /// provisions a card with `sample::issue_user_certificate`, an import): from then on the
    /// CA knows it as its own, as it knows what it issued itself — a trusted RA's
    /// simplereenroll for its subject finds it. Refused when this CA did not issue it.
    pub fn register_issued(&self, cert: &Retained<Certificate>) -> Result<(), crate::Error> {
        let result = (|| -> Result<(), String> {
            if !self.authority.issued_by_us(cert) {
                return Err("not issued by this CA".into());
            }
            let tbs = cert.value().tbs_certificate();
            let key =
                PublicKey::from_spki(tbs.subject_public_key_info()).map_err(|e| e.to_string())?;
            let template = policy::template_of(cert.value(), &self.templates)
                .ok()
                .map(|t| t.name.clone());
            let not_after = unix(
                std::time::SystemTime::UNIX_EPOCH + tbs.validity().not_after.to_unix_duration(),
            );
            let serial = serial_text(cert.value());
            let store = self.decision();
            store
                .atomically(|s| {
                    if s.serial_exists(&serial)? {
                        return Ok(());
                    }
                    s.record_certificate(
                        &serial,
                        &renewal_codec::x509::name_text(tbs.subject()),
                        cert.der(),
                        template.as_deref(),
                        not_after,
                        None,
                        &hex(&key.fingerprint()),
                        self.desk.clock.unix(),
                    )
                })
                .map_err(|e: StoreError| e.to_string())
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "registering a certificate",
            reason,
        })
    }
}

/// Approves or denies a pending request and audits it, in one transaction (the HTTP admin
/// endpoint and `sim-ca pending approve|deny` both come here). False when it is not pending.
pub fn admin_decide(
    store: &Store,
    id: i64,
    approve: bool,
    now: i64,
    via: Endpoint,
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
            endpoint: via,
            tls_fingerprint: String::new(),
            request_hash: String::new(),
            template: None,
            outcome: if approve {
                AuditOutcome::Approved
            } else {
                AuditOutcome::Denied
            },
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
    via: Endpoint,
) -> Result<bool, StoreError> {
    store.atomically(|s| {
        let known = s.revoke(serial, now)?;
        s.append_audit(&AuditRecord {
            id: 0,
            at: now,
            endpoint: via,
            tls_fingerprint: String::new(),
            request_hash: String::new(),
            template: None,
            outcome: AuditOutcome::Revoked,
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
