//! Durable state: serials, issued certificates, pending requests, revocations, seen nonces and
//! transaction ids, counters, and the append-only audit trail — in SQLite (WAL; a committed
//! record survives kill -9 and power loss once [`GroupSync::sync_through`] returned for it,
//! see [`crate::durability`]; `:memory:` for in-process tests), or in PostgreSQL
//! (`postgres://...`), which several instances share: each decision's transaction holds one
//! advisory lock, so decisions are serialized across instances as SQLite serializes them.
//!
//! A decision and its audit record are written in one transaction ([`Store::atomically`]): a
//! certificate is never recorded without its audit record, nor the other way round, whatever
//! moment the process is killed at.

use std::{path::Path, sync::Arc};

use rusqlite::Connection;

use crate::durability::GroupSync;

mod audit;
mod confirm;
mod counters;
mod endpoint;
mod pending;
mod pg_tls;
mod schema;
mod secrets;
mod seen;
mod sql;
mod upkeep;

pub use audit::{AuditOutcome, AuditRecord};
pub use confirm::{ConfirmState, Confirmation};
pub use endpoint::{Endpoint, IntoEndpoint, UnknownEndpoint};
pub use pending::{Pending, PendingEnd, PendingStatus, Resolve};
use schema::{ADDED_COLUMNS, INDEXES, POSTGRES_SCHEMA, SCHEMA};
pub use seen::Sighting;

use sql::{Conn, Db, ReadBack, Row};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no (or is unreachable).
    #[error("state database (PostgreSQL): {}", postgres_text(.0))]
    Postgres(#[from] postgres::Error),
    /// A row is not what the schema promises.
    #[error("state database: {0}")]
    Schema(String),
    /// The connection's settings are unusable (a TLS mode without its CA file, ...).
    #[error("state database connection: {0}")]
    Config(String),
}

/// A stored endpoint name as the value it names.
fn endpoint_from(name: &str) -> Result<Endpoint, StoreError> {
    name.parse()
        .map_err(|e: UnknownEndpoint| StoreError::Schema(e.to_string()))
}

/// The server's own words when it sent an error (the driver's `Display` says only "db
/// error"), else the driver's error and its cause.
fn postgres_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// What a CA knows of a renewal's new key ([`Store::key_standing`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum KeyStanding {
    /// Certified already as this very renewal: the answer to give again.
    Renewed {
        /// The certificate's serial (hex).
        serial: String,
        /// The certificate.
        der: Vec<u8>,
    },
    /// Certified before, in another certificate: not a new key.
    Certified,
    /// Never certified here.
    New,
}

/// A certificates row to insert.
struct CertificateRow<'a> {
    serial: &'a str,
    subject: &'a str,
    der: &'a [u8],
    template: Option<&'a str>,
    not_after: i64,
    renewal_of: Option<&'a str>,
    key_fingerprint: &'a str,
    now: i64,
}

/// The database.
pub struct Store {
    db: Db,
    /// Inside [`Store::atomically`]: counters are added to at its end ([`Store::bump`]).
    in_transaction: std::cell::Cell<bool>,
    /// The counters' additions kept for the end of the transaction.
    bumps: std::cell::RefCell<Vec<(String, i64)>>,
    sync: Arc<GroupSync>,
    nonce_key: crate::cmp_nonce::NonceKey,
}

impl Store {
    /// Opens (creating) the database at `path`; `:memory:` for a throwaway one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL: commits do not fsync; the WAL is synced by the group commit before any answer
        // (crate::durability), and SQLite still syncs at checkpoints.
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        for (table, column, definition) in ADDED_COLUMNS {
            let present: bool = db.query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                [column],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )?;
            if !present {
                db.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition}"
                ))?;
            }
        }
        db.execute_batch(INDEXES)?;
        let in_memory = path.as_os_str() == ":memory:" || path.as_os_str().is_empty();
        let wal = (!in_memory).then(|| {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            wal.into()
        });
        let db = Db::new(Conn::Sqlite(db));
        Ok(Self {
            nonce_key: secrets::nonce_key(&db)?,
            db,
            in_transaction: Default::default(),
            bumps: Default::default(),
            sync: Arc::new(GroupSync::new(wal)),
        })
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/database`), creating the
    /// tables when they are missing. Commits are durable when PostgreSQL acknowledges them, so
    /// there is no group commit to wait for.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut pg = sql::Postgres::connect(url)?;
        pg.batch(POSTGRES_SCHEMA)?;
        let db = Db::new(Conn::Postgres(Box::new(std::cell::RefCell::new(pg))));
        Ok(Self {
            nonce_key: secrets::nonce_key(&db)?,
            db,
            in_transaction: Default::default(),
            bumps: Default::default(),
            sync: Arc::new(GroupSync::new(None)),
        })
    }

    /// A SQLite file, or PostgreSQL when `location` is a `postgres://` (or `postgresql://`)
    /// URL.
    pub fn open_location(location: &str) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Self::connect(location)
        } else {
            Self::open(Path::new(location))
        }
    }

    /// The key that binds the desk's CMP nonces to their transactions (kept in the database:
    /// shared by every instance on it, the same after a restart).
    pub(crate) fn nonce_key(&self) -> crate::cmp_nonce::NonceKey {
        self.nonce_key.clone()
    }

    /// Whether this store is PostgreSQL (shared by instances).
    pub fn is_shared(&self) -> bool {
        matches!(self.db.conn, Conn::Postgres(_))
    }

    /// Statements run through this connection since it was opened, transaction control
    /// included: what decisions cost the database, for tests and measurements.
    pub fn statements(&self) -> u64 {
        self.db.statements()
    }

    /// Rows changed through this connection since it was opened (SQLite's `total_changes`,
    /// rolled-back changes included; PostgreSQL, which syncs its own commits: 0). Two equal
    /// readings around a use of the store mean it wrote nothing in between.
    pub(crate) fn rows_changed(&self) -> u64 {
        match &self.db.conn {
            Conn::Sqlite(db) => db.total_changes(),
            Conn::Postgres(_) => 0,
        }
    }

    /// The group commit of this database: wait on it, without the store lock, before
    /// answering anything decided under the lock.
    pub fn group_sync(&self) -> Arc<GroupSync> {
        self.sync.clone()
    }

    /// Runs `f` in one transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: serialized with
    /// every instance's decisions): committed when it returns `Ok`, rolled back otherwise. A
    /// SQLite commit is durable once the group commit covered it ([`GroupSync::sync_through`]).
    pub fn atomically<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, E>,
    ) -> Result<T, E> {
        self.db.begin().map_err(E::from)?;
        // Nothing of a transaction that panicked half-way is counted.
        self.bumps.borrow_mut().clear();
        self.in_transaction.set(true);
        let result = f(self);
        self.in_transaction.set(false);
        match result {
            Ok(value) => {
                if let Err(e) = self.flush_bumps().and_then(|()| self.db.commit()) {
                    let _ = self.db.rollback();
                    return Err(E::from(e));
                }
                Ok(value)
            }
            Err(e) => {
                self.bumps.borrow_mut().clear();
                let _ = self.db.rollback();
                Err(e)
            }
        }
    }

    /// Appends an audit record (its `id` is assigned here).
    pub fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        self.db
            .write_then_int(
                "INSERT INTO audit (at, endpoint, tls_fingerprint, request_hash, template, outcome, serial, pending_id, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    r.at.into(),
                    r.endpoint.as_str().into(),
                    (&r.tls_fingerprint).into(),
                    (&r.request_hash).into(),
                    r.template.as_ref().into(),
                    r.outcome.as_str().into(),
                    r.serial.as_ref().into(),
                    r.pending_id.into(),
                    (&r.detail).into(),
                ],
                "RETURNING id",
                ReadBack::NewRowId,
            )
    }

    /// The audit trail, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.db
            .rows(
                "SELECT id, at, endpoint, tls_fingerprint, request_hash, template, outcome, serial, pending_id, detail
                 FROM audit ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.int(0)?,
                    at: r.int(1)?,
                    endpoint: endpoint_from(&r.text(2)?)?,
                    tls_fingerprint: r.text(3)?,
                    request_hash: r.text(4)?,
                    template: r.opt_text(5)?,
                    outcome: r
                        .text(6)?
                        .parse()
                        .map_err(|e: audit::UnknownOutcome| StoreError::Schema(e.to_string()))?,
                    serial: r.opt_text(7)?,
                    pending_id: r.opt_int(8)?,
                    detail: r.text(9)?,
                })
            })
            .collect()
    }

    const KEY_CERTIFICATES: &str =
        "SELECT serial, der, issued_at, renewal_of FROM certificates WHERE key_fingerprint = ?1";

    /// What this CA knows of a new key, for a renewal of the certificate `old_serial`: the
    /// certificate it already issued as that renewal (the earliest: the client lost the
    /// answer and asks again), or that it certified the key before (an older key coming back),
    /// or nothing. One look-up by the key's index: a key has a row or two.
    pub fn key_standing(
        &self,
        old_serial: &str,
        key_fingerprint: &str,
    ) -> Result<KeyStanding, StoreError> {
        // The earliest is chosen here, not by `ORDER BY ... LIMIT 1`: SQLite re-prepares a
        // statement that orders rows picked by bound values on every run (its planner depends
        // on them), which cost more than the look-up.
        let rows = self
            .db
            .rows(Self::KEY_CERTIFICATES, &[key_fingerprint.into()])?;
        let mut earliest: Option<(i64, String, Vec<u8>)> = None;
        for r in &rows {
            if r.opt_text(3)?.as_deref() != Some(old_serial) {
                continue;
            }
            let (at, serial) = (r.int(2)?, r.text(0)?);
            if earliest
                .as_ref()
                .is_none_or(|(a, s, _)| (at, &serial) < (*a, s))
            {
                earliest = Some((at, serial, r.blob(1)?));
            }
        }
        Ok(match earliest {
            Some((_, serial, der)) => KeyStanding::Renewed { serial, der },
            None if !rows.is_empty() => KeyStanding::Certified,
            None => KeyStanding::New,
        })
    }

    /// The certificate already issued as a renewal of `old_serial` for the key with
    /// `key_fingerprint` (see `PublicKey::fingerprint`): (serial, DER).
    pub fn find_renewal(
        &self,
        old_serial: &str,
        key_fingerprint: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(match self.key_standing(old_serial, key_fingerprint)? {
            KeyStanding::Renewed { serial, der } => Some((serial, der)),
            _ => None,
        })
    }

    /// Whether this CA ever certified the key with `key_fingerprint`.
    pub fn key_certified(&self, key_fingerprint: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .row(
                "SELECT 1 FROM certificates WHERE key_fingerprint = ?1 LIMIT 1",
                &[key_fingerprint.into()],
            )?
            .is_some())
    }

    /// An in-memory database.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::open(Path::new(":memory:"))
    }

    /// Whether a serial was ever used.
    pub fn serial_exists(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .row(
                "SELECT 1 FROM certificates WHERE serial = ?1",
                &[serial.into()],
            )?
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
        key_fingerprint: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let row = CertificateRow {
            serial,
            subject,
            der,
            template,
            not_after,
            renewal_of,
            key_fingerprint,
            now,
        };
        self.insert_certificate(&row, false).map(|_| ())
    }

    /// [`Store::record_certificate`] for a certificate that may be recorded already (a
    /// gateway collecting the same upstream answer twice): false, and nothing written, when
    /// its serial is. One statement, not a look-up and an insert.
    #[allow(clippy::too_many_arguments)]
    pub fn record_certificate_once(
        &self,
        serial: &str,
        subject: &str,
        der: &[u8],
        template: Option<&str>,
        not_after: i64,
        renewal_of: Option<&str>,
        key_fingerprint: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let row = CertificateRow {
            serial,
            subject,
            der,
            template,
            not_after,
            renewal_of,
            key_fingerprint,
            now,
        };
        Ok(self.insert_certificate(&row, true)? == 1)
    }

    /// Inserts a certificates row (`once`: unless its serial is recorded); returns the rows
    /// inserted.
    fn insert_certificate(&self, r: &CertificateRow<'_>, once: bool) -> Result<u64, StoreError> {
        self.db.exec(
            if once {
                "INSERT INTO certificates
                 (serial, subject, der, template, not_after, renewal_of, issued_at, key_fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (serial) DO NOTHING"
            } else {
                "INSERT INTO certificates
                 (serial, subject, der, template, not_after, renewal_of, issued_at, key_fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            },
            &[
                r.serial.into(),
                r.subject.into(),
                r.der.into(),
                r.template.into(),
                r.not_after.into(),
                r.renewal_of.into(),
                r.now.into(),
                r.key_fingerprint.into(),
            ],
        )
    }

    /// An issued certificate's DER.
    pub fn certificate(&self, serial: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .row(
                "SELECT der FROM certificates WHERE serial = ?1",
                &[serial.into()],
            )?
            .map(|r| r.blob(0))
            .transpose()
    }

    /// Issued certificates: (serial, subject, not_after), in issue order.
    pub fn certificates(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.db
            .rows(
                "SELECT serial, subject, not_after FROM certificates ORDER BY issued_at, serial",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)))
            .collect()
    }

    /// Revokes a serial (idempotent).
    pub fn revoke(&self, serial: &str, now: i64) -> Result<bool, StoreError> {
        let known = self.serial_exists(serial)?;
        self.db.exec(
            "INSERT INTO revocations (serial, revoked_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            &[serial.into(), now.into()],
        )?;
        Ok(known)
    }

    /// Whether a serial is revoked.
    pub fn is_revoked(&self, serial: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .row(
                "SELECT 1 FROM revocations WHERE serial = ?1",
                &[serial.into()],
            )?
            .is_some())
    }
}

#[cfg(test)]
mod tests;
