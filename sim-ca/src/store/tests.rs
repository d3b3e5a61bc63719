//! The store's own tests: upgrades in place and the look-ups' choices.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::store::Endpoint;

fn pending(request: u8) -> Pending {
    Pending {
        id: 0,
        tls_fingerprint: "aa".into(),
        transaction: "tx".into(),
        request: vec![request],
        kind: Endpoint::FullCmc,
        created_at: 1,
        polls: 0,
        resolve: Resolve::Admin,
        end: PendingEnd::Issue,
        status: PendingStatus::Pending,
        cert_serial: None,
        upstream_id: None,
    }
}

/// The look-ups pick their row in code (no `ORDER BY`, which SQLite re-prepares on every
/// run): the earliest renewal of a certificate for a key, the latest request of a
/// transaction — whatever order the rows were written in.
#[test]
fn the_look_ups_pick_the_earliest_renewal_and_the_latest_request() {
    let store = Store::in_memory().unwrap();
    for (serial, issued_at) in [("0c", 7), ("0a", 3), ("0b", 5)] {
        store
            .record_certificate(
                serial,
                "CN=x",
                &[0x30, 0],
                None,
                99,
                Some("09"),
                "fp",
                issued_at,
            )
            .unwrap();
    }
    store
        .record_certificate("0d", "CN=x", &[0x30, 1], None, 99, Some("09"), "other", 1)
        .unwrap();
    assert_eq!(
        store.find_renewal("09", "fp").unwrap(),
        Some(("0a".into(), vec![0x30, 0]))
    );
    assert_eq!(store.find_renewal("08", "fp").unwrap(), None);
    let ids: Vec<i64> = (1..=3)
        .map(|r| store.add_pending(&pending(r)).unwrap())
        .collect();
    let found = store.find_pending("aa", "tx").unwrap().unwrap();
    assert_eq!((found.id, found.request), (ids[2], vec![3]));
    assert!(store.find_pending("aa", "other").unwrap().is_none());
}

/// A decision's look-up runs its prepared statement as it is: SQLite re-prepared the
/// `ORDER BY ... LIMIT 1` form on every run with new values (2.5 % of the CA's CPU).
#[test]
fn the_renewal_look_up_is_not_prepared_again_for_new_values() {
    let store = Store::in_memory().unwrap();
    store
        .record_certificate("0a", "CN=x", &[0x30, 0], None, 99, Some("09"), "fp", 1)
        .unwrap();
    for i in 0..20 {
        store
            .find_renewal(&format!("{i:02x}"), &format!("fp{i}"))
            .unwrap();
    }
    let Conn::Sqlite(db) = &store.db.conn else {
        unreachable!("an in-memory store is SQLite")
    };
    let statement = db.prepare_cached(Store::KEY_CERTIFICATES).unwrap();
    assert_eq!(
        statement.get_status(rusqlite::StatementStatus::RePrepare),
        0
    );
}

#[test]
fn a_state_directory_from_before_the_audit_trail_is_upgraded_in_place() {
    let dir = std::env::temp_dir().join(format!("sim-ca-store-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.db");
    let _ = std::fs::remove_file(&path);
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE certificates (serial TEXT PRIMARY KEY, subject TEXT NOT NULL,
             der BLOB NOT NULL, template TEXT, not_after INTEGER NOT NULL, renewal_of TEXT,
             issued_at INTEGER NOT NULL);
             INSERT INTO certificates VALUES ('01', 'CN=x', x'30', NULL, 0, NULL, 0);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.serial_exists("01").unwrap());
    store
        .record_certificate("02", "CN=y", &[0x30], None, 0, Some("01"), "ab", 0)
        .unwrap();
    assert_eq!(store.find_renewal("01", "ab").unwrap().unwrap().0, "02");
    assert!(store.audit().unwrap().is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate issued writes one index besides its row: the look-ups by key (key reuse,
/// a renewal answered before) use it, and the indexes an older state directory has by subject
/// and by (renewal_of, key) are dropped when it is opened.
#[test]
fn certificates_carry_the_one_index_their_look_ups_use() {
    let dir = std::env::temp_dir().join(format!("sim-ca-store-indexes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.db");
    let _ = std::fs::remove_file(&path);
    {
        let old = Store::open(&path).unwrap();
        let Conn::Sqlite(db) = &old.db.conn else {
            unreachable!("a file store is SQLite")
        };
        db.execute_batch(
            "CREATE INDEX certificates_renewal ON certificates (renewal_of, key_fingerprint);
             CREATE INDEX certificates_subject ON certificates (subject);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let Conn::Sqlite(db) = &store.db.conn else {
        unreachable!("a file store is SQLite")
    };
    let indexes: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'certificates'
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, ["certificates_key"]);
    for look_up in [
        Store::KEY_CERTIFICATES,
        "SELECT 1 FROM certificates WHERE key_fingerprint = ?1 LIMIT 1",
    ] {
        let plan: String = db
            .query_row(
                &format!("EXPLAIN QUERY PLAN {look_up}"),
                rusqlite::params!["01", "ab"][..look_up.matches('?').count()].as_ref(),
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("INDEX certificates_key "), "{plan}");
    }
    store
        .record_certificate("02", "CN=y", &[0x30], None, 0, Some("01"), "ab", 0)
        .unwrap();
    assert_eq!(store.find_renewal("01", "ab").unwrap().unwrap().0, "02");
    assert!(store.find_renewal("03", "ab").unwrap().is_none());
    assert!(store.key_certified("ab").unwrap());
    assert_eq!(
        store.key_standing("03", "ab").unwrap(),
        crate::store::KeyStanding::Certified
    );
    assert_eq!(
        store.key_standing("03", "cd").unwrap(),
        crate::store::KeyStanding::New
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `count` adds one and answers the new value, as `bump` then `counter` did in two statements.
#[test]
fn a_count_adds_one_and_reads_the_new_value() {
    let store = Store::in_memory().unwrap();
    assert_eq!(store.count("requests:CN=a").unwrap(), 1);
    assert_eq!(store.count("requests:CN=a").unwrap(), 2);
    store.bump("requests:CN=a").unwrap();
    assert_eq!(store.count("requests:CN=a").unwrap(), 4);
    assert_eq!(store.count("requests:CN=b").unwrap(), 1);
    assert_eq!(store.counter("requests:CN=a").unwrap(), 4);
}

#[test]
fn a_failed_transaction_leaves_nothing() {
    let store = Store::in_memory().unwrap();
    let result: Result<(), StoreError> = store.atomically(|s| {
        s.record_certificate("01", "CN=x", &[0x30], None, 0, None, "ab", 0)?;
        s.bump("issued")?;
        Err(StoreError::Schema("test failure".into()))
    });
    assert!(result.is_err());
    assert!(!store.serial_exists("01").unwrap());
    assert_eq!(store.counter("issued").unwrap(), 0);
}

/// The key of the CMP nonces is the database's: the same after the state directory is opened
/// again (a restart), so a certConf answering a nonce sent before the restart is recognised.
/// An older state directory gets the `secrets` table and the confirmations' nonce column.
#[test]
fn the_cmp_nonce_key_survives_a_restart_and_older_confirmations_are_upgraded() {
    let dir = std::env::temp_dir().join(format!("sim-ca-store-nonce-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ca.db");
    let _ = std::fs::remove_file(&path);
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE cmp_confirm (transaction_key TEXT PRIMARY KEY, serial TEXT NOT NULL,
             deadline INTEGER NOT NULL, state TEXT NOT NULL);
             INSERT INTO cmp_confirm VALUES ('t1', '01', 5, 'waiting');",
        )
        .unwrap();
    }
    let nonce = {
        let store = Store::open(&path).unwrap();
        let old = store.confirmation("t1").unwrap().unwrap();
        assert_eq!((old.serial.as_str(), old.nonce), ("01", None));
        store
            .await_confirmation("t2", "02", 9, Some(&[7; 32]))
            .unwrap();
        store.nonce_key().mint("t2")
    };
    let store = Store::open(&path).unwrap();
    assert!(store.nonce_key().vouches("t2", Some(&nonce)));
    assert!(
        !Store::in_memory()
            .unwrap()
            .nonce_key()
            .vouches("t2", Some(&nonce))
    );
    assert_eq!(
        store.confirmation("t2").unwrap().unwrap().nonce,
        Some(vec![7; 32])
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serials are not looked up before they are used: the table refuses one used before, and
/// the decision's transaction rolls back with the certificates as they were.
#[test]
fn a_serial_used_before_is_refused_by_the_table() {
    let store = Store::in_memory().unwrap();
    store
        .record_certificate("0a", "CN=x", &[0x30, 0], None, 99, None, "fp1", 1)
        .unwrap();
    let again = store.atomically(|s| {
        s.bump("issued")?;
        s.record_certificate("0a", "CN=y", &[0x30, 0], None, 99, None, "fp2", 2)
    });
    assert!(again.is_err());
    assert!(!store.key_certified("fp2").unwrap());
    assert_eq!(
        store.counter("issued").unwrap(),
        0,
        "the count rolled back too"
    );
}

/// A transaction's counters are written once, at its end, with every addition.
#[test]
fn a_transactions_counters_are_written_together() {
    let store = Store::in_memory().unwrap();
    let before = store.statements();
    store
        .atomically(|s| {
            s.bump("requests")?;
            s.bump("issued")?;
            s.bump("requests")?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(
        store.statements() - before,
        3,
        "BEGIN, the counters, COMMIT"
    );
    assert_eq!(store.counter("requests").unwrap(), 2);
    assert_eq!(store.counter("issued").unwrap(), 1);
    // Read inside the transaction, a counter includes what it added.
    let inside = store
        .atomically(|s| {
            s.bump("issued")?;
            s.counter("issued")
        })
        .unwrap();
    assert_eq!(inside, 2);
    assert_eq!(store.counter("issued").unwrap(), 2);
}

/// A gateway records an upstream's certificate once, however often it collects it.
#[test]
fn a_certificate_recorded_once_is_not_recorded_again() {
    let store = Store::in_memory().unwrap();
    let record = |subject: &str| {
        store
            .record_certificate_once("0b", subject, &[0x30, 0], None, 99, Some("0a"), "fp", 1)
            .unwrap()
    };
    assert!(record("CN=first"));
    assert!(!record("CN=second"));
    assert_eq!(store.find_renewal("0a", "fp").unwrap().unwrap().0, "0b");
    assert_eq!(store.certificate("0b").unwrap().unwrap(), vec![0x30, 0]);
}
