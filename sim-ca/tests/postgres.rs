//! The state on PostgreSQL, shared by instances: the store keeps its promises there (ids,
//! append-only audit, atomic decisions); two gateway instances on one database answer a
//! request replayed to the other idempotently and never issue twice, collect from one what was
//! submitted to the other after the first is gone, and run concurrent renewals side by side;
//! two CA instances on one database never collide on a serial.
//!
//! Needs a PostgreSQL server: `CARDRENEW_POSTGRES_URL` (scripts/test.sh starts a throwaway one
//! with scripts/pg-temp.sh). Each test creates its own database. Under `CI=true` a missing
//! server is a failure; elsewhere the tests say why they skip.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use sim_ca::store::Endpoint;
use std::{sync::Arc, thread};

use common::{Upstream, parse};
use renewal_codec::cmc::Outcome;
use sim_ca::{
    Ca,
    store::{AuditOutcome, AuditRecord, Pending, PendingEnd, Resolve, Sighting, Store, StoreError},
};

/// A fresh database named after the test, or `None` (skip) when no server is configured.
fn database(name: &str) -> Option<String> {
    let Ok(url) = std::env::var("CARDRENEW_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CARDRENEW_POSTGRES_URL is not set: PostgreSQL is required under CI=true"
        );
        eprintln!(
            "SKIP {name}: no PostgreSQL (set CARDRENEW_POSTGRES_URL, see scripts/pg-temp.sh)"
        );
        return None;
    };
    let db = format!("cardrenew_{name}_{}", std::process::id());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    Some(format!("{base}/{db}"))
}

fn record(detail: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: 1,
        endpoint: Endpoint::FullCmc,
        tls_fingerprint: "aa".into(),
        request_hash: "bb".into(),
        template: Some("SmartcardUser".into()),
        outcome: AuditOutcome::Issued,
        serial: None,
        pending_id: Some(3),
        detail: detail.into(),
    }
}

#[test]
fn the_store_keeps_its_promises_on_postgres() {
    let Some(url) = database("store") else { return };
    let store = Store::connect(&url).unwrap();
    assert!(store.is_shared());
    // A second connection (another instance) creates nothing twice.
    let other = Store::connect(&url).unwrap();
    let first = store.append_audit(&record("one")).unwrap();
    let second = other.append_audit(&record("two")).unwrap();
    assert!(second > first);
    let trail = store.audit().unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].template.as_deref(), Some("SmartcardUser"));
    assert_eq!(trail[0].pending_id, Some(3));
    assert_eq!(trail[1].serial, None);
    // Append-only, whoever asks.
    let mut raw = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let update = raw
        .execute("UPDATE audit SET detail = 'rewritten'", &[])
        .unwrap_err();
    assert_eq!(
        update.as_db_error().map(|e| e.message()),
        Some("the audit trail is append-only")
    );
    assert!(raw.execute("DELETE FROM audit", &[]).is_err());
    assert_eq!(store.audit().unwrap().len(), 2);
    // Replay bookkeeping across instances.
    assert!(store.first_sighting(Sighting::Nonce, "01", 5).unwrap());
    assert!(!other.first_sighting(Sighting::Nonce, "01", 6).unwrap());
    assert_eq!(other.sighting_at(Sighting::Nonce, "01").unwrap(), Some(5));
    // A claim released by one instance can be taken by the other.
    other.forget_sighting(Sighting::Nonce, "01").unwrap();
    assert!(store.sighting_at(Sighting::Nonce, "01").unwrap().is_none());
    assert!(other.first_sighting(Sighting::Nonce, "01", 7).unwrap());
    // A claim spent by one instance (decided upstream, not delivered) is seen so by the other.
    assert!(store.first_sighting(Sighting::InFlight, "t:k", 8).unwrap());
    store
        .rename_sighting(Sighting::InFlight, Sighting::Undelivered, "t:k")
        .unwrap();
    assert!(
        other
            .sighting_at(Sighting::InFlight, "t:k")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        other.sighting_at(Sighting::Undelivered, "t:k").unwrap(),
        Some(8)
    );
    // A failed decision leaves nothing.
    let failed: Result<(), StoreError> = store.atomically(|s| {
        s.record_certificate("0a", "CN=x", &[0x30, 0], Some("T"), 99, Some("09"), "fp", 1)?;
        s.bump("issued")?;
        Err(StoreError::Schema("the decision failed".into()))
    });
    assert!(failed.is_err());
    assert!(!other.serial_exists("0a").unwrap());
    assert_eq!(other.counter("issued").unwrap(), 0);
    // What one instance decides, the other reads.
    store
        .atomically(|s| {
            s.record_certificate("0b", "CN=y", &[0x30, 0], None, 99, Some("09"), "fp2", 1)?;
            s.bump("issued")
        })
        .unwrap();
    assert_eq!(
        other.find_renewal("09", "fp2").unwrap(),
        Some(("0b".into(), vec![0x30, 0]))
    );
    assert!(other.key_certified("fp2").unwrap());
    let id = store
        .add_pending(&Pending {
            id: 0,
            tls_fingerprint: "aa".into(),
            transaction: "tx".into(),
            request: vec![1, 2, 3],
            kind: Endpoint::FullCmc,
            created_at: 1,
            polls: 0,
            resolve: Resolve::OnPoll(2),
            end: PendingEnd::Deny,
            status: sim_ca::store::PendingStatus::Pending,
            cert_serial: None,
            upstream_id: None,
        })
        .unwrap();
    let found = other.find_pending("aa", "tx").unwrap().unwrap();
    assert_eq!(
        (found.id, found.request.as_slice(), found.resolve, found.end),
        (id, &[1u8, 2, 3][..], Resolve::OnPoll(2), PendingEnd::Deny)
    );
    assert_eq!(other.count_poll(id).unwrap(), 1);
    assert_eq!(store.count_poll(id).unwrap(), 2);
    assert!(other.decide_pending(id, PendingEnd::Issue).unwrap());
    store
        .finish_pending(id, sim_ca::store::PendingStatus::Issued, Some("0b"))
        .unwrap();
    assert!(!other.decide_pending(id, PendingEnd::Issue).unwrap());
    assert_eq!(
        other.pending(id).unwrap().unwrap().cert_serial.as_deref(),
        Some("0b")
    );
    assert!(store.revoke("0b", 7).unwrap());
    assert!(other.is_revoked("0b").unwrap());
    assert_eq!(other.counters().unwrap(), vec![("issued".to_string(), 1)]);
}

#[test]
fn a_request_replayed_to_the_other_instance_is_answered_idempotently() {
    let Some(url) = database("replay") else {
        return;
    };
    let upstream = Upstream::start("");
    let a = upstream.gateway(Store::connect(&url).unwrap());
    let b = upstream.gateway(Store::connect(&url).unwrap());
    let user = upstream.user();
    let params = common::Client::params();
    let request = user.request_with(params.clone());
    let first = a.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(first.outcome, Outcome::Issued);
    let again = b.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(again.outcome, Outcome::Issued);
    assert_eq!(
        parse(&again.body).certificates[0],
        parse(&first.body).certificates[0]
    );
    // The same transaction for another key, at either instance: a replay.
    let other_key = renewal_codec::cmc::SoftwareKey::generate_p256().unwrap();
    let replay = b.handle_cmc_at(
        Endpoint::FullCmc,
        &user.request_for_key(&other_key, params),
        user.old_cert.der(),
    );
    assert!(matches!(replay.outcome, Outcome::Failed { .. }));
    // One issuance upstream, one certificate at the gateways, one shared trail.
    assert_eq!(
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count(),
        1
    );
    assert_eq!(a.with_store(|s| s.certificates()).unwrap().len(), 1);
    let trail: Vec<_> = b.audit_trail().into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        trail,
        [
            AuditOutcome::Issued,
            AuditOutcome::ReplayAnswered,
            AuditOutcome::Refused
        ]
    );
}

#[test]
fn a_pending_request_submitted_to_one_instance_is_collected_from_the_other() {
    let Some(url) = database("pending") else {
        return;
    };
    let upstream = Upstream::start("[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n");
    let user = upstream.user();
    let request = user.request();
    let token = {
        let a = upstream.gateway(Store::connect(&url).unwrap());
        let reply = a.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        let Outcome::Pending { token, .. } = reply.outcome else {
            panic!("{:?}", reply.outcome)
        };
        token
        // Instance A is gone here, connection and all.
    };
    let upstream_id = upstream.ca.with_store(|s| s.list_pending()).unwrap()[0].id;
    assert!(upstream.ca.decide_pending(upstream_id, true).unwrap());
    let b = upstream.gateway(Store::connect(&url).unwrap());
    let collected = b.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(collected.outcome, Outcome::Issued);
    let id = i64::from_be_bytes(token.as_slice().try_into().unwrap());
    assert_eq!(
        b.with_store(|s| s.pending(id)).unwrap().unwrap().status,
        sim_ca::store::PendingStatus::Issued
    );
    // And over MS-WSTEP's QueryTokenStatus with A's RequestID.
    let queried = b.query_token_status(id as u64, user.old_cert.der());
    assert_eq!(queried.outcome, Outcome::Issued);
    assert_eq!(
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count(),
        1
    );
}

#[test]
fn concurrent_renewals_on_two_gateway_instances() {
    let Some(url) = database("gateways") else {
        return;
    };
    let upstream = Upstream::start("");
    let instances = [
        Arc::new(upstream.gateway(Store::connect(&url).unwrap())),
        Arc::new(upstream.gateway(Store::connect(&url).unwrap())),
    ];
    let users: Vec<_> = (0..8).map(|_| Arc::new(upstream.user())).collect();
    // Each user's request goes to both instances at once: one issuance each, the same
    // certificate from both. The copy that arrives while the other is being forwarded is told
    // to come back (503, Retry-After: until the claim expires, at most the exchange's bound of
    // 10 s plus 5 s) and gets the same certificate when it does.
    let handles: Vec<_> = users
        .iter()
        .flat_map(|user| {
            let request = Arc::new(user.request());
            instances.iter().map(move |gateway| {
                let (gateway, user, request) =
                    (Arc::clone(gateway), Arc::clone(user), Arc::clone(&request));
                thread::spawn(move || {
                    for _ in 0..100 {
                        let reply =
                            gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
                        match reply.upstream {
                            Some(busy) => {
                                assert!(
                                    busy.status == 503 && matches!(busy.retry_after, Some(1..=15)),
                                    "{busy:?}"
                                );
                                thread::sleep(std::time::Duration::from_millis(50));
                            }
                            None => {
                                assert_eq!(reply.outcome, Outcome::Issued);
                                return parse(&reply.body).certificates[0].clone();
                            }
                        }
                    }
                    panic!("still being decided after 100 tries")
                })
            })
        })
        .collect();
    let certs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for pair in certs.chunks(2) {
        assert_eq!(pair[0], pair[1]);
    }
    let mut serials: Vec<_> = certs
        .iter()
        .step_by(2)
        .map(|c| sim_ca::policy::serial_text(c.value()))
        .collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), users.len());
    assert_eq!(
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count(),
        users.len()
    );
    assert_eq!(
        instances[0].with_store(|s| s.certificates()).unwrap().len(),
        users.len()
    );
}

#[test]
fn two_ca_instances_on_one_database_never_collide_on_a_serial() {
    let Some(url) = database("cas") else { return };
    let first = common::ca();
    let second = Ca::new(
        first.authority().duplicate().unwrap(),
        Store::connect(&url).unwrap(),
        &sim_ca::scenario::Scenario::default(),
        first.clock().clone(),
    )
    .unwrap();
    let first = Ca::new(
        first.authority().duplicate().unwrap(),
        Store::connect(&url).unwrap(),
        &sim_ca::scenario::Scenario::default(),
        first.clock().clone(),
    )
    .unwrap();
    let cas = [Arc::new(first), Arc::new(second)];
    let users: Vec<_> = (0..12)
        .map(|_| Arc::new(common::Client::new(&cas[0])))
        .collect();
    let handles: Vec<_> = users
        .iter()
        .enumerate()
        .flat_map(|(i, user)| {
            // Every third user sends the same request to both instances at once.
            let targets: Vec<usize> = if i % 3 == 0 { vec![0, 1] } else { vec![i % 2] };
            let request = Arc::new(user.request());
            let cas = cas.clone();
            targets.into_iter().map(move |t| {
                let (ca, user, request) =
                    (Arc::clone(&cas[t]), Arc::clone(user), Arc::clone(&request));
                thread::spawn(move || {
                    let reply = ca.handle_cmc(&request, user.old_cert.der());
                    assert_eq!(reply.outcome, Outcome::Issued);
                    sim_ca::policy::serial_text(parse(&reply.body).certificates[0].value())
                })
            })
        })
        .collect();
    let mut serials: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(
        serials.len(),
        users.len(),
        "one serial per user, none shared"
    );
    let recorded = cas[1].with_store(|s| s.certificates()).unwrap();
    assert_eq!(recorded.len(), users.len());
    assert_eq!(
        cas[0].with_store(|s| s.counter("issued")).unwrap(),
        users.len() as i64
    );
}

/// Instances started together on an empty database: each creates the tables or waits for the
/// one creating them, none fails (found by starting two gateways at once).
#[test]
fn instances_starting_together_on_an_empty_database_all_start() {
    let Some(url) = database("startup") else {
        return;
    };
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || Store::connect(&url).map(|_| ()).map_err(|e| e.to_string()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
}

/// The same transactionId — the same bytes, or two new keys — sent at the same instant to two
/// gateway instances on one PostgreSQL database, against an upstream that issues whatever it
/// gets: it is reached once per transaction, every round (the claim is taken in the checking
/// transaction, under the decisions' advisory lock).
#[test]
fn one_transaction_reaches_the_upstream_once_across_instances_on_postgres() {
    use std::sync::atomic::AtomicUsize;
    let Some(url) = database("race") else { return };
    let upstream = Upstream::start("");
    let forwards = Arc::new(AtomicUsize::new(0));
    let gateway = || {
        upstream.gateway_over(
            Store::connect(&url).unwrap(),
            Box::new(common::IssuesWhatever::new(
                &upstream,
                Arc::clone(&forwards),
                std::time::Duration::from_millis(80),
            )),
        )
    };
    let (one, two) = (gateway(), gateway());
    for same_bytes in [true, false] {
        let per_round =
            common::same_transaction_at_once(&upstream, [&one, &two], &forwards, same_bytes, 8);
        assert!(
            per_round.iter().all(|n| *n == 1),
            "same bytes {same_bytes}: upstream reached {per_round:?} times"
        );
    }
}

/// Two CA instances on one database share the key of their CMP nonces: a key update answered
/// by one is confirmed at the other (the certConf answers the first one's nonce), and a
/// made-up nonce is refused by both.
#[test]
fn a_cmp_confirmation_answers_one_instance_at_the_other() {
    use renewal_codec::cmc::Limits;
    use renewal_codec::cmp::{
        PkiBody, PkiMessage,
        build::{cert_confirm, next_header},
    };
    let Some(url) = database("cmp_nonce") else {
        return;
    };
    let base = common::ca();
    let instance = || {
        Ca::new(
            base.authority().duplicate().unwrap(),
            Store::connect(&url).unwrap(),
            &sim_ca::scenario::Scenario::default(),
            base.clock().clone(),
        )
        .unwrap()
    };
    let (a, b) = (instance(), instance());
    let user = common::Client::new(&a);
    let kur = common::cmp_key_update(
        &a,
        &user.old_cert,
        &user.old_key,
        &user.new_key,
        common::rand16(),
        false,
    );
    let read = |body: &[u8]| PkiMessage::parse(body, &Limits::default()).unwrap();
    let reply = read(&a.handle_cmp(&kur, &[]).body);
    let PkiBody::Kup(rep) = &reply.body else {
        panic!("{}", reply.body.name())
    };
    let issued = rep.response[0].certificate().unwrap();
    let request = read(&kur);
    let confirm = |answered: &PkiMessage| {
        let header = next_header(
            &request.header,
            &answered.header,
            common::rand16(),
            common::now(),
        )
        .unwrap();
        cert_confirm(&header, &issued, None, &user.old_key, &user.old_cert).unwrap()
    };
    let mut forged = reply.clone();
    forged.header.sender_nonce = Some(der::asn1::OctetString::new([9u8; 32]).unwrap());
    for ca in [&a, &b] {
        let refused = read(&ca.handle_cmp(&confirm(&forged), &[]).body);
        assert!(
            matches!(refused.body, PkiBody::Error(_)),
            "{}",
            refused.body.name()
        );
    }
    let ack = read(&b.handle_cmp(&confirm(&reply), &[]).body);
    assert!(matches!(ack.body, PkiBody::PkiConf), "{}", ack.body.name());
}
