//! Durable state in SQLite (WAL, `synchronous=FULL`: a committed record survives kill -9 and
//! power loss): serials, issued certificates, pending requests, revocations, seen nonces and
//! transaction ids, counters. `:memory:` for in-process tests.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[error("state database: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

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
    /// "fullcmc", "cmc" or "simplereenroll".
    pub kind: String,
    /// When it arrived.
    pub created_at: i64,
    /// Polls so far.
    pub polls: u32,
    /// How it resolves.
    pub resolve: Resolve,
    /// What it resolves to.
    pub end: PendingEnd,
    /// "pending", "issued" or "denied".
    pub status: String,
    /// Serial of the issued certificate, once issued.
    pub cert_serial: Option<String>,
}

/// The database.
pub struct Store {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY, subject TEXT NOT NULL, der BLOB NOT NULL, template TEXT,
    not_after INTEGER NOT NULL, renewal_of TEXT, issued_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (serial TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tls_fingerprint TEXT NOT NULL, transaction_id TEXT NOT NULL,
    request BLOB NOT NULL, kind TEXT NOT NULL, created_at INTEGER NOT NULL, polls INTEGER NOT NULL,
    resolve TEXT NOT NULL, final TEXT NOT NULL, status TEXT NOT NULL, cert_serial TEXT);
CREATE TABLE IF NOT EXISTS seen (kind TEXT NOT NULL, value TEXT NOT NULL, seen_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

fn resolve_text(r: Resolve) -> String {
    match r {
        Resolve::At(t) => format!("at:{t}"),
        Resolve::OnPoll(n) => format!("poll:{n}"),
        Resolve::Admin => "admin".into(),
    }
}

fn parse_resolve(text: &str) -> Resolve {
    match text.split_once(':') {
        Some(("at", t)) => t.parse().map(Resolve::At).unwrap_or(Resolve::Admin),
        Some(("poll", n)) => n.parse().map(Resolve::OnPoll).unwrap_or(Resolve::Admin),
        _ => Resolve::Admin,
    }
}

impl Store {
    /// Opens (creating) the database at `path`; `:memory:` for a throwaway one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db })
    }

    /// An in-memory database.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::open(Path::new(":memory:"))
    }

    /// Whether a serial was ever used.
    pub fn serial_exists(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT 1 FROM certificates WHERE serial = ?1",
                [serial],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records an issued certificate.
    #[allow(clippy::too_many_arguments)]
    pub fn record_certificate(
        &self,
        serial: &str,
        subject: &str,
        der: &[u8],
        template: Option<&str>,
        not_after: i64,
        renewal_of: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO certificates (serial, subject, der, template, not_after, renewal_of, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![serial, subject, der, template, not_after, renewal_of, now],
        )?;
        Ok(())
    }

    /// An issued certificate's DER.
    pub fn certificate(&self, serial: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT der FROM certificates WHERE serial = ?1",
                [serial],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Issued certificates: (serial, subject, not_after), in issue order.
    pub fn certificates(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self.db.prepare(
            "SELECT serial, subject, not_after FROM certificates ORDER BY issued_at, serial",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a serial (idempotent).
    pub fn revoke(&self, serial: &str, now: i64) -> Result<bool, StoreError> {
        let known = self.serial_exists(serial)?;
        self.db.execute(
            "INSERT OR IGNORE INTO revocations (serial, revoked_at) VALUES (?1, ?2)",
            params![serial, now],
        )?;
        Ok(known)
    }

    /// Whether a serial is revoked.
    pub fn is_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .query_row(
                "SELECT 1 FROM revocations WHERE serial = ?1",
                [serial],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Records a nonce or transaction id; false when it was seen before (a replay).
    pub fn first_sighting(&self, kind: &str, value: &str, now: i64) -> Result<bool, StoreError> {
        let inserted = self.db.execute(
            "INSERT OR IGNORE INTO seen (kind, value, seen_at) VALUES (?1, ?2, ?3)",
            params![kind, value, now],
        )?;
        Ok(inserted == 1)
    }

    /// Stores a pending request; returns its id.
    pub fn add_pending(&self, p: &Pending) -> Result<i64, StoreError> {
        self.db.execute(
            "INSERT INTO pending (tls_fingerprint, transaction_id, request, kind, created_at, polls, resolve, final, status)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 'pending')",
            params![
                p.tls_fingerprint,
                p.transaction,
                p.request,
                p.kind,
                p.created_at,
                resolve_text(p.resolve),
                if p.end == PendingEnd::Issue { "issue" } else { "deny" }
            ],
        )?;
        Ok(self.db.last_insert_rowid())
    }

    fn pending_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pending> {
        let resolve: String = r.get(7)?;
        let end: String = r.get(8)?;
        Ok(Pending {
            id: r.get(0)?,
            tls_fingerprint: r.get(1)?,
            transaction: r.get(2)?,
            request: r.get(3)?,
            kind: r.get(4)?,
            created_at: r.get(5)?,
            polls: r.get(6)?,
            resolve: parse_resolve(&resolve),
            end: if end == "issue" {
                PendingEnd::Issue
            } else {
                PendingEnd::Deny
            },
            status: r.get(9)?,
            cert_serial: r.get(10)?,
        })
    }

    const PENDING_COLUMNS: &'static str = "id, tls_fingerprint, transaction_id, request, kind, created_at, polls, resolve, final, status, cert_serial";

    /// A pending request by id.
    pub fn pending(&self, id: i64) -> Result<Option<Pending>, StoreError> {
        let sql = format!(
            "SELECT {} FROM pending WHERE id = ?1",
            Self::PENDING_COLUMNS
        );
        Ok(self
            .db
            .query_row(&sql, [id], Self::pending_from_row)
            .optional()?)
    }

    /// The request a client submitted earlier (same TLS identity and transaction).
    pub fn find_pending(
        &self,
        tls_fingerprint: &str,
        transaction: &str,
    ) -> Result<Option<Pending>, StoreError> {
        let sql = format!(
            "SELECT {} FROM pending WHERE tls_fingerprint = ?1 AND transaction_id = ?2 ORDER BY id DESC LIMIT 1",
            Self::PENDING_COLUMNS
        );
        Ok(self
            .db
            .query_row(
                &sql,
                params![tls_fingerprint, transaction],
                Self::pending_from_row,
            )
            .optional()?)
    }

    /// All requests still pending.
    pub fn list_pending(&self) -> Result<Vec<Pending>, StoreError> {
        let sql = format!(
            "SELECT {} FROM pending WHERE status = 'pending' ORDER BY id",
            Self::PENDING_COLUMNS
        );
        let mut stmt = self.db.prepare(&sql)?;
        let rows = stmt.query_map([], Self::pending_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts a poll; returns the new count.
    pub fn count_poll(&self, id: i64) -> Result<u32, StoreError> {
        self.db
            .execute("UPDATE pending SET polls = polls + 1 WHERE id = ?1", [id])?;
        Ok(self
            .db
            .query_row("SELECT polls FROM pending WHERE id = ?1", [id], |r| {
                r.get(0)
            })?)
    }

    /// Ends a pending request.
    pub fn finish_pending(
        &self,
        id: i64,
        status: &str,
        cert_serial: Option<&str>,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE pending SET status = ?2, cert_serial = ?3 WHERE id = ?1",
            params![id, status, cert_serial],
        )?;
        Ok(())
    }

    /// Sets how a pending request ends (admin approve/deny).
    pub fn decide_pending(&self, id: i64, end: PendingEnd) -> Result<bool, StoreError> {
        let n = self.db.execute(
            "UPDATE pending SET resolve = 'at:0', final = ?2 WHERE id = ?1 AND status = 'pending'",
            params![
                id,
                if end == PendingEnd::Issue {
                    "issue"
                } else {
                    "deny"
                }
            ],
        )?;
        Ok(n == 1)
    }

    /// Adds to a named counter.
    pub fn bump(&self, name: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?1, 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [name],
        )?;
        Ok(())
    }

    /// All counters, by name.
    pub fn counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT name, value FROM counters ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
