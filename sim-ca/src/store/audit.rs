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
    /// The client confirmed the certificate it was issued (CMP `certConf`).
    Confirmed,
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
    /// Every outcome, in declaration order.
    pub const ALL: [Self; 13] = [
        Self::Issued,
        Self::IssuedRevoked,
        Self::Enrolled,
        Self::Refused,
        Self::Pending,
        Self::StillPending,
        Self::Approved,
        Self::Denied,
        Self::Revoked,
        Self::Confirmed,
        Self::ReplayAnswered,
        Self::NoCertificate,
        Self::UpstreamFailed,
    ];

    /// Whether a certificate came into existence with this record (what an operator
    /// reconciles against the certificates table).
    pub fn issues_a_certificate(self) -> bool {
        matches!(self, Self::Issued | Self::IssuedRevoked | Self::Enrolled)
    }

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
            Self::Confirmed => "confirmed",
            Self::ReplayAnswered => "replay-answered",
            Self::NoCertificate => "no-certificate",
            Self::UpstreamFailed => "upstream-failed",
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored outcome name this version does not know (a newer writer, or a tampered row).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UnknownOutcome(pub String);

impl std::fmt::Display for UnknownOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown audit outcome {:?}", self.0)
    }
}

impl std::error::Error for UnknownOutcome {}

impl std::str::FromStr for AuditOutcome {
    type Err = UnknownOutcome;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == name)
            .ok_or_else(|| UnknownOutcome(name.to_string()))
    }
}

impl serde::Serialize for AuditOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One audit record.
#[derive(Clone, Debug, Eq, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    /// Position in the trail (assigned by the store).
    pub id: i64,
    /// Unix time of the decision (the CA's clock).
    pub at: i64,
    /// Where the request came in.
    pub endpoint: super::Endpoint,
    /// SHA-256 (hex) of the TLS client certificate, empty for administrative actions.
    pub tls_fingerprint: String,
    /// SHA-256 (hex) of the request body, empty when there is none.
    pub request_hash: String,
    /// Template name, when known.
    pub template: Option<String>,
    /// What was decided.
    pub outcome: AuditOutcome,
    /// The certificate concerned, when there is one.
    pub serial: Option<String>,
    /// The pending request concerned, when there is one.
    pub pending_id: Option<i64>,
    /// The rejection with its codes, or other detail. Never a secret.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::AuditOutcome;

    #[test]
    fn every_outcome_reads_back_from_its_stored_name() {
        for outcome in AuditOutcome::ALL {
            assert_eq!(outcome.as_str().parse::<AuditOutcome>(), Ok(outcome));
        }
        assert!("issued ".parse::<AuditOutcome>().is_err());
        assert!("Issued".parse::<AuditOutcome>().is_err());
    }
}
