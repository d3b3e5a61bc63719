//! What a decision writes besides its effect, the same whoever decides — the simulated CA or
//! the gateway: where the request came from, its audit record, the bookkeeping of a refusal,
//! and the certificate a re-sent request already got. One place, so the two audit trails
//! cannot drift apart.

use renewal_core::cmc::{DigestAlgorithm, Retained, verify_request::hex};
use x509_cert::Certificate;

use crate::{
    policy::Rejection,
    store::{AuditOutcome, AuditRecord, Store, StoreError},
};

/// Where a request came from, as every audit record of it says.
pub(crate) struct Origin {
    /// `fullcmc`, `cmc`, `simplereenroll`, `wstep`, `wstep-query`, `cli`.
    pub(crate) endpoint: &'static str,
    /// SHA-256 (hex) of the TLS client certificate, empty when there is none.
    pub(crate) tls_fingerprint: String,
    /// SHA-256 (hex) of the request, empty when there is none.
    pub(crate) request_hash: String,
}

impl Origin {
    pub(crate) fn new(endpoint: &'static str, tls_cert: &[u8], request: &[u8]) -> Self {
        let digest = |b: &[u8]| {
            if b.is_empty() {
                String::new()
            } else {
                hex(&DigestAlgorithm::Sha256.digest(b))
            }
        };
        Self {
            endpoint,
            tls_fingerprint: digest(tls_cert),
            request_hash: digest(request),
        }
    }

    /// Appends one audit record for this request, at Unix time `at`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        outcome: AuditOutcome,
        serial: Option<&str>,
        pending_id: Option<i64>,
        detail: String,
    ) -> Result<(), StoreError> {
        store
            .append_audit(&AuditRecord {
                id: 0,
                at,
                endpoint: self.endpoint.into(),
                tls_fingerprint: self.tls_fingerprint.clone(),
                request_hash: self.request_hash.clone(),
                template: template.map(str::to_string),
                outcome: outcome.as_str().into(),
                serial: serial.map(str::to_string),
                pending_id,
                detail,
            })
            .map(|_| ())
    }

    /// The counter and audit record of a refusal, inside the caller's transaction.
    pub(crate) fn refused(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) -> Result<(), StoreError> {
        store.bump("rejected")?;
        let codes = rejection.codes();
        self.audit(
            store,
            at,
            template,
            AuditOutcome::Refused,
            None,
            pending_id,
            format!(
                "{:?} 0x{:08X} HTTP {}: {rejection}",
                codes.fail_info, codes.hresult, codes.http
            ),
        )
    }

    /// A refusal decided outside any transaction (the request did not pass the checks): the
    /// request counted, and [`Origin::refused`], in a transaction of their own. A store that
    /// fails here is logged; the refusal stands.
    pub(crate) fn record_refusal(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) {
        let result = store.atomically(|s| {
            s.bump("requests")?;
            self.refused(s, at, template, rejection, pending_id)
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a refusal in the state database");
        }
    }

    /// The certificate already issued for this old certificate and this new key, if any —
    /// audited as a replay answered idempotently (`detail` says by whom): a client that lost
    /// the answer gets it again instead of a second certificate.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn answered_before(
        &self,
        store: &Store,
        at: i64,
        template: &str,
        old_serial: &str,
        key_fingerprint: &str,
        detail: &str,
    ) -> Result<Option<Retained<Certificate>>, Rejection> {
        let Some((serial, der)) = store.find_renewal(old_serial, key_fingerprint)? else {
            return Ok(None);
        };
        let cert = Retained::from_der(&der).map_err(|e| Rejection::Internal(e.to_string()))?;
        self.audit(
            store,
            at,
            Some(template),
            AuditOutcome::ReplayAnswered,
            Some(&serial),
            None,
            detail.into(),
        )?;
        Ok(Some(cert))
    }
}

/// Seconds until a pending answer says to poll (at least one), for the Retry-After header;
/// `None` for any other outcome.
pub(crate) fn retry_after(
    outcome: &renewal_core::cmc::Outcome,
    now: std::time::SystemTime,
) -> Option<u64> {
    match outcome {
        renewal_core::cmc::Outcome::Pending { retry_at, .. } => {
            let at = std::time::SystemTime::UNIX_EPOCH + retry_at.to_unix_duration();
            Some(at.duration_since(now).map_or(1, |d| d.as_secs().max(1)))
        }
        _ => None,
    }
}
