//! Pending requests as stored: when and how each resolves, where it stands, and the queries
//! that add, find, poll and end them.

use super::{ReadBack, Row, StoreError, endpoint_from};

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

impl super::Store {
    /// Pending requests still open for the certificate with fingerprint `identity`.
    pub fn open_pending(&self, identity: &str) -> Result<i64, StoreError> {
        self.db
            .row(
                "SELECT COUNT(*) FROM pending WHERE tls_fingerprint = ?1 AND status = 'pending'",
                &[identity.into()],
            )?
            .map_or(Ok(0), |r| r.int(0))
    }

    /// Stores a pending request; returns its id.
    pub fn add_pending(&self, p: &Pending) -> Result<i64, StoreError> {
        self.db
            .write_then_int(
                "INSERT INTO pending (tls_fingerprint, transaction_id, request, kind, created_at, polls, resolve, final, status, upstream_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 'pending', ?8)",
                &[
                    (&p.tls_fingerprint).into(),
                    (&p.transaction).into(),
                    p.request.as_slice().into(),
                    p.kind.as_str().into(),
                    p.created_at.into(),
                    resolve_text(p.resolve).as_str().into(),
                    if p.end == PendingEnd::Issue { "issue" } else { "deny" }.into(),
                    p.upstream_id.into(),
                ],
                "RETURNING id",
                ReadBack::NewRowId,
            )
    }

    fn pending_from_row(r: &Row) -> Result<Pending, StoreError> {
        Ok(Pending {
            id: r.int(0)?,
            tls_fingerprint: r.text(1)?,
            transaction: r.text(2)?,
            request: r.blob(3)?,
            kind: endpoint_from(&r.text(4)?)?,
            created_at: r.int(5)?,
            polls: u32::try_from(r.int(6)?).unwrap_or(u32::MAX),
            resolve: parse_resolve(&r.text(7)?),
            end: if r.text(8)? == "issue" {
                PendingEnd::Issue
            } else {
                PendingEnd::Deny
            },
            status: PendingStatus::parse(&r.text(9)?)
                .ok_or_else(|| StoreError::Schema("a pending request's status".into()))?,
            cert_serial: r.opt_text(10)?,
            upstream_id: r.opt_int(11)?,
        })
    }

    const PENDING_COLUMNS: &'static str = "id, tls_fingerprint, transaction_id, request, kind, created_at, polls, resolve, final, status, cert_serial, upstream_id";

    /// A pending request by id.
    pub fn pending(&self, id: i64) -> Result<Option<Pending>, StoreError> {
        let sql = format!(
            "SELECT {} FROM pending WHERE id = ?1",
            Self::PENDING_COLUMNS
        );
        self.db
            .row(&sql, &[id.into()])?
            .as_ref()
            .map(Self::pending_from_row)
            .transpose()
    }

    /// The request a client submitted earlier (same TLS identity and transaction).
    pub fn find_pending(
        &self,
        tls_fingerprint: &str,
        transaction: &str,
    ) -> Result<Option<Pending>, StoreError> {
        // The latest is chosen here, not by `ORDER BY id DESC LIMIT 1`, which SQLite would
        // re-prepare on every run (see `key_standing`); a transaction has a row or two.
        let sql = format!(
            "SELECT {} FROM pending WHERE tls_fingerprint = ?1 AND transaction_id = ?2",
            Self::PENDING_COLUMNS
        );
        let rows = self
            .db
            .rows(&sql, &[tls_fingerprint.into(), transaction.into()])?;
        let mut latest: Option<(i64, &Row)> = None;
        for r in &rows {
            let id = r.int(0)?;
            if latest.is_none_or(|(l, _)| id > l) {
                latest = Some((id, r));
            }
        }
        latest.map(|(_, r)| Self::pending_from_row(r)).transpose()
    }

    /// All requests still pending.
    pub fn list_pending(&self) -> Result<Vec<Pending>, StoreError> {
        let sql = format!(
            "SELECT {} FROM pending WHERE status = 'pending' ORDER BY id",
            Self::PENDING_COLUMNS
        );
        self.db
            .rows(&sql, &[])?
            .iter()
            .map(Self::pending_from_row)
            .collect()
    }

    /// Counts a poll; returns the new count.
    pub fn count_poll(&self, id: i64) -> Result<u32, StoreError> {
        let id = [id.into()];
        if self
            .db
            .exec("UPDATE pending SET polls = polls + 1 WHERE id = ?1", &id)?
            == 0
        {
            return Ok(0);
        }
        let polls = self
            .db
            .row("SELECT polls FROM pending WHERE id = ?1", &id)?
            .map_or(Ok(0), |r| r.int(0))?;
        Ok(u32::try_from(polls).unwrap_or(u32::MAX))
    }

    /// Ends a pending request.
    pub fn finish_pending(
        &self,
        id: i64,
        status: PendingStatus,
        cert_serial: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.exec(
            "UPDATE pending SET status = ?2, cert_serial = ?3 WHERE id = ?1",
            &[id.into(), status.as_str().into(), cert_serial.into()],
        )?;
        Ok(())
    }

    /// Sets how a pending request ends (admin approve/deny).
    pub fn decide_pending(&self, id: i64, end: PendingEnd) -> Result<bool, StoreError> {
        let end = if end == PendingEnd::Issue {
            "issue"
        } else {
            "deny"
        };
        let n = self.db.exec(
            "UPDATE pending SET resolve = 'at:0', final = ?2 WHERE id = ?1 AND status = 'pending'",
            &[id.into(), end.into()],
        )?;
        Ok(n == 1)
    }
}
