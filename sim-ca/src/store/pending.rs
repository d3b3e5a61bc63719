//! Pending requests as stored: when and how each resolves, and where it stands.

/// How a pending request ends.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PendingEnd {
    /// Issue the certificate.
    Issue,
    /// Deny.
    Deny,
}

/// When a pending request resolves on its own.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Resolve {
    /// At this Unix time.
    At(i64),
    /// On this poll (1 = the first poll after submission).
    OnPoll(u32),
    /// Only by an administrator.
    Admin,
}

/// Where a pending request stands.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PendingStatus {
    /// Not decided yet.
    Pending,
    /// Issued: its certificate's serial is recorded with it.
    Issued,
    /// Denied.
    Denied,
}

impl PendingStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issued => "issued",
            Self::Denied => "denied",
        }
    }

    /// From the stored text; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Issued, Self::Denied]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A pending request.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Pending {
    /// Request id (the CMC pendToken, the EST retry handle).
    pub id: i64,
    /// SHA-256 of the TLS client certificate that submitted it.
    pub tls_fingerprint: String,
    /// The client's transaction id (hex), or the PKCS#10 key id for EST simplereenroll.
    pub transaction: String,
    /// The request bytes as received.
    pub request: Vec<u8>,
    /// The endpoint it came through, which says how it is collected.
    pub kind: super::Endpoint,
    /// When it arrived.
    pub created_at: i64,
    /// Polls so far.
    pub polls: u32,
    /// How it resolves.
    pub resolve: Resolve,
    /// What it resolves to.
    pub end: PendingEnd,
    /// Where it stands.
    pub status: PendingStatus,
    /// Serial of the issued certificate, once issued.
    pub cert_serial: Option<String>,
    /// A gateway's: the upstream CA's own id for the request (an MS-WSTEP RequestID, collected
    /// with `QueryTokenStatus`), when it gave one.
    pub upstream_id: Option<i64>,
}

pub(super) fn resolve_text(r: Resolve) -> String {
    match r {
        Resolve::At(t) => format!("at:{t}"),
        Resolve::OnPoll(n) => format!("poll:{n}"),
        Resolve::Admin => "admin".into(),
    }
}

pub(super) fn parse_resolve(text: &str) -> Resolve {
    match text.split_once(':') {
        Some(("at", t)) => t.parse().map(Resolve::At).unwrap_or(Resolve::Admin),
        Some(("poll", n)) => n.parse().map(Resolve::OnPoll).unwrap_or(Resolve::Admin),
        _ => Resolve::Admin,
    }
}
