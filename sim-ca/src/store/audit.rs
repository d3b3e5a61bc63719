//! The append-only audit trail's records and the outcomes they name.

/// What the CA decided, as the audit trail names it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum AuditOutcome {
    /// A certificate was issued (serial given).
    Issued,
    /// A certificate was issued and immediately revoked (the `revoked` disposition).
    IssuedRevoked,
    /// An administrator enrolled a certificate (`sim-ca issue`).
    Enrolled,
    /// The request was refused (detail: the rejection and its codes).
    Refused,
    /// The request was taken under submission (pending id given).
    Pending,
    /// A pending request was polled and is still pending.
    StillPending,
    /// An administrator approved a pending request.
    Approved,
    /// A pending request was denied (by an administrator or its scenario).
    Denied,
    /// A certificate was revoked.
    Revoked,
    /// A request the CA had already answered came again; the certificate already issued was
    /// returned (serial given), nothing new was issued.
    ReplayAnswered,
    /// The CA answered with an error disposition or "issued out of band" (no certificate).
    NoCertificate,
    /// A gateway forwarded the request and got no decision it could pass on (upstream
    /// unreachable, timed out, or an answer that does not verify); the client may retry.
    UpstreamFailed,
}

impl AuditOutcome {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::IssuedRevoked => "issued-revoked",
            Self::Enrolled => "enrolled",
            Self::Refused => "refused",
            Self::Pending => "pending",
            Self::StillPending => "still-pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Revoked => "revoked",
            Self::ReplayAnswered => "replay-answered",
            Self::NoCertificate => "no-certificate",
            Self::UpstreamFailed => "upstream-failed",
        }
    }
}

/// One audit record.
#[derive(Clone, Debug, Eq, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    /// Position in the trail (assigned by the store).
    pub id: i64,
    /// Unix time of the decision (the CA's clock).
    pub at: i64,
    /// Where the request came in: `fullcmc`, `cmc`, `simplereenroll`, `wstep` (CES),
    /// `wstep-query` (CES `QueryTokenStatus`), `admin`, `cli`.
    pub endpoint: String,
    /// SHA-256 (hex) of the TLS client certificate, empty for administrative actions.
    pub tls_fingerprint: String,
    /// SHA-256 (hex) of the request body, empty when there is none.
    pub request_hash: String,
    /// Template name, when known.
    pub template: Option<String>,
    /// What was decided (an [`AuditOutcome`] name).
    pub outcome: String,
    /// The certificate concerned, when there is one.
    pub serial: Option<String>,
    /// The pending request concerned, when there is one.
    pub pending_id: Option<i64>,
    /// The rejection with its codes, or other detail. Never a secret.
    pub detail: String,
}
