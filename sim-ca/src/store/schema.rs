//! The tables, for SQLite and for PostgreSQL, and the columns added since the first release
//! (an older state directory is upgraded in place).

/// The same tables in PostgreSQL's types (all integers are BIGINT: the code binds i64).
/// One multi-statement query, so one transaction: instances starting together on an empty
/// database wait for each other on the advisory lock, held until the creating one commits.
pub(super) const POSTGRES_SCHEMA: &str = "
SELECT pg_advisory_xact_lock(7262737264);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY, subject TEXT NOT NULL, der BYTEA NOT NULL, template TEXT,
    not_after BIGINT NOT NULL, renewal_of TEXT, issued_at BIGINT NOT NULL, key_fingerprint TEXT);
CREATE TABLE IF NOT EXISTS revocations (serial TEXT PRIMARY KEY, revoked_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id BIGSERIAL PRIMARY KEY, tls_fingerprint TEXT NOT NULL, transaction_id TEXT NOT NULL,
    request BYTEA NOT NULL, kind TEXT NOT NULL, created_at BIGINT NOT NULL, polls BIGINT NOT NULL,
    resolve TEXT NOT NULL, final TEXT NOT NULL, status TEXT NOT NULL, cert_serial TEXT,
    upstream_id BIGINT);
ALTER TABLE pending ADD COLUMN IF NOT EXISTS upstream_id BIGINT;
CREATE TABLE IF NOT EXISTS seen (kind TEXT NOT NULL, value TEXT NOT NULL, seen_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value));
ALTER TABLE seen ADD COLUMN IF NOT EXISTS expires_at BIGINT NOT NULL DEFAULT 9223372036854775807;
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, endpoint TEXT NOT NULL,
    tls_fingerprint TEXT NOT NULL, request_hash TEXT NOT NULL, template TEXT,
    outcome TEXT NOT NULL, serial TEXT, pending_id BIGINT, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS certificates_key ON certificates (key_fingerprint);
DROP INDEX IF EXISTS certificates_renewal;
DROP INDEX IF EXISTS certificates_subject;
CREATE INDEX IF NOT EXISTS pending_lookup ON pending (tls_fingerprint, transaction_id, id);
CREATE TABLE IF NOT EXISTS cmp_confirm (transaction_key TEXT PRIMARY KEY, serial TEXT NOT NULL,
    deadline BIGINT NOT NULL, state TEXT NOT NULL);
ALTER TABLE cmp_confirm ADD COLUMN IF NOT EXISTS nonce BYTEA;
CREATE INDEX IF NOT EXISTS cmp_confirm_due ON cmp_confirm (state, deadline);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
CREATE OR REPLACE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
";

/// The SQLite tables. Every B-tree a decision touches is one more page in the WAL and its
/// fsync: the small tables keyed by text (`seen`, `counters`) are `WITHOUT ROWID`, one B-tree
/// instead of a table and its key's index, and the audit trail's id is a plain rowid
/// (append-only, its rows are never deleted, so an id is never reused without
/// `AUTOINCREMENT`'s sequence row written on every insert). State directories made before keep
/// their tables as they are; the statements are the same.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY, subject TEXT NOT NULL, der BLOB NOT NULL, template TEXT,
    not_after INTEGER NOT NULL, renewal_of TEXT, issued_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (serial TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tls_fingerprint TEXT NOT NULL, transaction_id TEXT NOT NULL,
    request BLOB NOT NULL, kind TEXT NOT NULL, created_at INTEGER NOT NULL, polls INTEGER NOT NULL,
    resolve TEXT NOT NULL, final TEXT NOT NULL, status TEXT NOT NULL, cert_serial TEXT);
CREATE TABLE IF NOT EXISTS seen (kind TEXT NOT NULL, value TEXT NOT NULL, seen_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, endpoint TEXT NOT NULL,
    tls_fingerprint TEXT NOT NULL, request_hash TEXT NOT NULL, template TEXT,
    outcome TEXT NOT NULL, serial TEXT, pending_id INTEGER, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cmp_confirm (transaction_key TEXT PRIMARY KEY, serial TEXT NOT NULL,
    deadline INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cmp_confirm_due ON cmp_confirm (state, deadline);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
";

/// The indexes of the SQLite tables, created after the added columns they cover. Every index is
/// one more B-tree page written to the WAL with each certificate issued, so the certificates
/// have the one their look-ups need: by key fingerprint (a key certified before; a renewal
/// answered before, whose `renewal_of` is checked on the row or two the key has). The indexes
/// by subject (nothing looks a certificate up by name since renewals are bound to the
/// certificate that authenticated) and by (renewal_of, key) of older state directories are
/// dropped.
pub(super) const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS certificates_key ON certificates (key_fingerprint);
DROP INDEX IF EXISTS certificates_renewal;
DROP INDEX IF EXISTS certificates_subject;
CREATE INDEX IF NOT EXISTS pending_lookup ON pending (tls_fingerprint, transaction_id, id);
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
";

/// Columns added after the first release, with their definitions: an older state directory is
/// upgraded in place when it is opened.
pub(super) const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("certificates", "key_fingerprint", "TEXT"),
    ("pending", "upstream_id", "INTEGER"),
    // The nonce a gateway passed on with a certificate that waits for its certConf.
    ("cmp_confirm", "nonce", "BLOB"),
    // When the sighting stops guarding anything (older rows: never).
    (
        "seen",
        "expires_at",
        "INTEGER NOT NULL DEFAULT 9223372036854775807",
    ),
];
