//! The renewal gateway in front of an upstream sim-ca over HTTPS (its own RA identity, mutual
//! TLS): a user's renewal goes through over each upstream protocol; what the policy refuses
//! never leaves the gateway; an unreachable upstream is a 503 with Retry-After that loses
//! nothing; a re-sent request is answered from the gateway's state even with the upstream
//! gone; pending at the upstream is pending at the gateway, collected on poll; an upstream
//! answer that does not verify never reaches the client.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Upstream, parse};
use renewal_codec::cmc::{Outcome, PublicKey, Signer, build_renewal_request};
use sim_ca::store::Endpoint;
use sim_ca::{
    gateway::upstream::CmcProtocol,
    service::SimpleReply,
    store::{AuditOutcome, Store},
};

/// A SQLite state file in a fresh directory (two gateway objects can share it).
fn state_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sim-ca-gateway-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("gateway.db")
}

/// A loopback URL where nothing listens.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("https://127.0.0.1:{port}")
}

fn outcomes(audit: &[sim_ca::store::AuditRecord]) -> Vec<&str> {
    audit.iter().map(|r| r.outcome.as_str()).collect()
}

#[test]
fn a_renewal_goes_through_the_gateway_over_each_upstream_protocol() {
    for protocol in [CmcProtocol::Fullcmc, CmcProtocol::Cmc, CmcProtocol::Ces] {
        let upstream = Upstream::start("");
        let gateway = upstream.gateway_at(Store::in_memory().unwrap(), None, protocol);
        let user = upstream.user();
        let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
        assert_eq!(reply.outcome, Outcome::Issued, "{protocol:?}");
        let response = parse(&reply.body);
        // Signed by the gateway's RA key, which chains to the CA the client trusts.
        let signer = response.verify_signer().unwrap();
        assert!(
            signer
                .value()
                .tbs_certificate()
                .subject()
                .to_string()
                .contains("Renewal Gateway RA")
        );
        let issued = response
            .certificates
            .iter()
            .find(|c| {
                PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info()).ok()
                    == PublicKey::from_spki(user.new_key.public_key()).ok()
            })
            .unwrap();
        let serial = sim_ca::policy::serial_text(issued.value());
        // The upstream issued it, for the user (not the RA), and audited it.
        assert_eq!(
            issued.value().tbs_certificate().subject(),
            user.old_cert.value().tbs_certificate().subject()
        );
        assert!(
            upstream
                .ca
                .audit_trail()
                .iter()
                .any(|r| r.outcome == AuditOutcome::Issued
                    && r.serial.as_deref() == Some(serial.as_str()))
        );
        assert!(
            gateway
                .audit_trail()
                .iter()
                .any(|r| r.outcome == AuditOutcome::Issued
                    && r.serial.as_deref() == Some(serial.as_str()))
        );
    }
    // EST simplereenroll: the user's PKCS#10, as the RA's request for the validated subject.
    let upstream = Upstream::start("");
    let gateway = upstream.gateway(Store::in_memory().unwrap());
    let user = upstream.user();
    let built = build_renewal_request(
        &user.old_cert,
        &user.old_key,
        &user.new_key,
        &common::Client::params(),
    )
    .unwrap();
    let reply = gateway.handle_simple(&built.pkcs10_der, user.old_cert.der());
    let SimpleReply::Issued(der) = reply else {
        panic!("{reply:?}")
    };
    let cert = &parse(&der).certificates[0];
    assert_eq!(
        PublicKey::from_spki(cert.value().tbs_certificate().subject_public_key_info()).unwrap(),
        PublicKey::from_spki(user.new_key.public_key()).unwrap()
    );
    // The upstream recorded it as a renewal of the user's certificate.
    let serial = sim_ca::policy::serial_text(cert.value());
    let old_serial = sim_ca::policy::serial_text(user.old_cert.value());
    let key = renewal_codec::cmc::verify_request::hex(
        &PublicKey::from_spki(user.new_key.public_key())
            .unwrap()
            .fingerprint(),
    );
    assert_eq!(
        upstream
            .ca
            .with_store(|s| s.find_renewal(&old_serial, &key))
            .unwrap()
            .map(|r| r.0),
        Some(serial)
    );
}

#[test]
fn what_the_policy_refuses_never_leaves_the_gateway() {
    let upstream = Upstream::start("");
    let gateway = upstream.gateway(Store::in_memory().unwrap());
    let alice = upstream.user();
    let mallory = upstream.user();
    // Alice's request over Mallory's TLS identity.
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &alice.request(), mallory.old_cert.der());
    assert!(
        matches!(reply.outcome, Outcome::Failed { .. }),
        "{:?}",
        reply.outcome
    );
    parse(&reply.body).verify_signer().unwrap();
    // The same request replayed after it was answered: answered with the same certificate;
    // the same transaction with another key: a replay, refused at the gateway.
    let params = common::Client::params();
    let first = gateway.handle_cmc_at(
        Endpoint::FullCmc,
        &alice.request_with(params.clone()),
        alice.old_cert.der(),
    );
    assert_eq!(first.outcome, Outcome::Issued);
    let upstream_records = upstream.ca.audit_trail().len();
    let other_key = renewal_codec::cmc::SoftwareKey::generate_p256().unwrap();
    let replay = gateway.handle_cmc_at(
        Endpoint::FullCmc,
        &alice.request_for_key(&other_key, params),
        alice.old_cert.der(),
    );
    assert!(matches!(replay.outcome, Outcome::Failed { .. }));
    assert!(
        parse(&replay.body)
            .status_string
            .unwrap()
            .contains("replayed")
    );
    // Nothing of either refusal reached the upstream.
    assert_eq!(upstream.ca.audit_trail().len(), upstream_records);
    assert_eq!(
        outcomes(&gateway.audit_trail()),
        ["refused", "issued", "refused"]
    );
}

#[test]
fn an_unreachable_upstream_is_a_503_with_retry_after_and_loses_nothing() {
    let upstream = Upstream::start("");
    let state = state_file("unreachable");
    let user = upstream.user();
    let request = user.request();
    {
        let down = upstream.gateway_at(
            Store::open(&state).unwrap(),
            Some(&dead_url()),
            CmcProtocol::Fullcmc,
        );
        let reply = down.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        let failure = reply.upstream.unwrap();
        assert_eq!((failure.status, failure.retry_after), (503, Some(7)));
        assert!(reply.body.is_empty());
        assert_eq!(outcomes(&down.audit_trail()), ["upstream-failed"]);
    }
    // The same request, once the upstream is back: not a replay, issued.
    let up = upstream.gateway(Store::open(&state).unwrap());
    let reply = up.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(reply.outcome, Outcome::Issued);
    assert_eq!(outcomes(&up.audit_trail()), ["upstream-failed", "issued"]);
}

#[test]
fn a_resent_request_is_answered_from_the_gateways_state_with_the_upstream_gone() {
    let upstream = Upstream::start("");
    let state = state_file("resent");
    let user = upstream.user();
    let request = user.request();
    let issued = {
        let up = upstream.gateway(Store::open(&state).unwrap());
        let reply = up.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        assert_eq!(reply.outcome, Outcome::Issued);
        parse(&reply.body).certificates[0].clone()
    };
    let down = upstream.gateway_at(
        Store::open(&state).unwrap(),
        Some(&dead_url()),
        CmcProtocol::Fullcmc,
    );
    let again = down.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(again.outcome, Outcome::Issued);
    assert_eq!(parse(&again.body).certificates[0], issued);
    assert_eq!(outcomes(&down.audit_trail()), ["issued", "replay-answered"]);
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

/// The gateway's `gateway_wal_fsyncs_total` now.
fn wal_fsyncs(gateway: &sim_ca::gateway::Gateway) -> u64 {
    use sim_ca::backend::Backend;
    let metrics = gateway.metrics();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_wal_fsyncs_total "))
        .unwrap_or_else(|| panic!("no fsync count in {metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn a_forwarded_renewal_waits_for_one_fsync_not_for_its_claims() {
    // The claim is committed before the upstream is asked, but no answer leaves on it: the
    // record of the upstream's answer is synced, and its fsync covers the claim (one WAL).
    let upstream = Upstream::start("");
    let gateway = upstream.gateway(Store::open(&state_file("fsyncs")).unwrap());
    let user = upstream.user();
    let before = wal_fsyncs(&gateway);
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
    assert_eq!(reply.outcome, Outcome::Issued);
    assert_eq!(wal_fsyncs(&gateway) - before, 1);
    // A request answered from the gateway's own state is one transaction, synced.
    let again = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
    assert_eq!(again.outcome, Outcome::Issued);
    assert_eq!(wal_fsyncs(&gateway) - before, 2);
}

#[test]
fn pending_upstream_is_pending_at_the_gateway_and_collected_on_poll() {
    for protocol in [CmcProtocol::Fullcmc, CmcProtocol::Ces] {
        let upstream =
            Upstream::start("[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n");
        let gateway = upstream.gateway_at(Store::in_memory().unwrap(), None, protocol);
        let user = upstream.user();
        let request = user.request();
        let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        let Outcome::Pending { token, .. } = &reply.outcome else {
            panic!("{protocol:?}: {:?}", reply.outcome)
        };
        // The token is the gateway's own request id, not the upstream's.
        let gateway_id = i64::from_be_bytes(token.as_slice().try_into().unwrap());
        let pending = gateway
            .with_store(|s| s.pending(gateway_id))
            .unwrap()
            .unwrap();
        assert_eq!(pending.status, sim_ca::store::PendingStatus::Pending);
        assert!(reply.retry_after.is_some());
        let upstream_id = upstream.ca.with_store(|s| s.list_pending()).unwrap()[0].id;
        // Over MS-WSTEP the upstream's RequestID is kept, for QueryTokenStatus.
        assert_eq!(
            pending.upstream_id,
            (protocol == CmcProtocol::Ces).then_some(upstream_id),
            "{protocol:?}"
        );
        // Still pending upstream: still pending here.
        let again = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        assert!(
            matches!(again.outcome, Outcome::Pending { .. }),
            "{protocol:?}"
        );
        // The CA's administrator approves; the next poll collects the certificate.
        assert!(upstream.ca.decide_pending(upstream_id, true).unwrap());
        let collected = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
        assert_eq!(collected.outcome, Outcome::Issued, "{protocol:?}");
        let pending = gateway
            .with_store(|s| s.pending(gateway_id))
            .unwrap()
            .unwrap();
        assert_eq!(pending.status, sim_ca::store::PendingStatus::Issued);
        // MS-WSTEP QueryTokenStatus on the gateway's id, by the same client: the same answer.
        let queried = gateway.query_token_status(gateway_id as u64, user.old_cert.der());
        assert_eq!(queried.outcome, Outcome::Issued);
        // The upstream saw the collection as such.
        let endpoints: Vec<_> = upstream
            .ca
            .audit_trail()
            .into_iter()
            .map(|r| r.endpoint)
            .collect();
        if protocol == CmcProtocol::Ces {
            assert!(
                endpoints.iter().any(|e| e == "wstep-query"),
                "{endpoints:?}"
            );
        }
    }
}

#[test]
fn an_upstream_answer_that_does_not_verify_never_reaches_the_client() {
    for fault in [
        "wrong-signer",
        "wrong-key-certificate",
        "malformed-body",
        "truncated",
    ] {
        let upstream = Upstream::start(&format!("[[rule]]\nfault = \"{fault}\"\n"));
        let gateway = upstream.gateway(Store::in_memory().unwrap());
        let user = upstream.user();
        let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
        let failure = reply.upstream.expect(fault);
        assert_eq!(failure.status, 502, "{fault}: {failure:?}");
        assert!(reply.body.is_empty(), "{fault}");
        assert_eq!(
            outcomes(&gateway.audit_trail()),
            ["upstream-failed"],
            "{fault}"
        );
        // Nothing recorded as delivered.
        assert!(gateway.with_store(|s| s.certificates()).unwrap().is_empty());
    }
}

/// Two people with the same subject name: a simplereenroll through the gateway renews the
/// requester's own certificate (its names), never the other one's — whichever is newer.
#[test]
fn a_forwarded_simplereenroll_renews_the_requesters_certificate_not_a_namesakes() {
    let upstream = Upstream::start("");
    let gateway = upstream.gateway(Store::in_memory().unwrap());
    let user = |mailbox: &str| {
        let old_key = renewal_codec::cmc::SoftwareKey::generate_p256().unwrap();
        let old_cert = renewal_codec::sample::issue_named_user_certificate(
            &upstream.ca.authority().issuing.key,
            &upstream.ca.authority().issuing.cert,
            old_key.public_key(),
            common::now(),
            "Alice Example",
            mailbox,
        )
        .unwrap();
        upstream.ca.register_issued(&old_cert).unwrap();
        common::Client {
            old_key,
            old_cert,
            new_key: renewal_codec::cmc::SoftwareKey::generate_p256().unwrap(),
        }
    };
    let alice = user("alice");
    // The namesake's certificate is the newer one.
    upstream
        .ca
        .clock()
        .advance(std::time::Duration::from_secs(60));
    let namesake = user("alice.other");
    assert_eq!(
        alice.old_cert.value().tbs_certificate().subject(),
        namesake.old_cert.value().tbs_certificate().subject()
    );
    let san = |cert: &renewal_codec::cmc::Retained<x509_cert::Certificate>| {
        cert.value()
            .tbs_certificate()
            .extensions()
            .unwrap()
            .iter()
            .find(|e| e.extn_id == renewal_codec::cmc::oids::SUBJECT_ALT_NAME)
            .unwrap()
            .extn_value
            .clone()
    };
    assert_ne!(san(&alice.old_cert), san(&namesake.old_cert));
    let built = build_renewal_request(
        &alice.old_cert,
        &alice.old_key,
        &alice.new_key,
        &common::Client::params(),
    )
    .unwrap();
    let reply = gateway.handle_simple(&built.pkcs10_der, alice.old_cert.der());
    let SimpleReply::Issued(der) = reply else {
        panic!("{reply:?}")
    };
    let cert = parse(&der).certificates[0].clone();
    assert_eq!(san(&cert), san(&alice.old_cert));
    let renewed = upstream
        .ca
        .audit_trail()
        .into_iter()
        .find(|r| r.outcome == AuditOutcome::Issued)
        .unwrap();
    assert!(
        renewed
            .detail
            .contains(&sim_ca::policy::serial_text(alice.old_cert.value())),
        "{renewed:?}"
    );
}

/// An upstream slower than the gateway's timeout: 503 + Retry-After, and the same request
/// later gets the certificate the upstream issued meanwhile — once; a poll after that is
/// answered from the gateway's state.
#[test]
fn an_upstream_timeout_is_a_503_and_the_retry_gets_the_certificate_issued_meanwhile() {
    let upstream = Upstream::start("[[rule]]\nrequest = 1\nfault = \"delay:2500\"\n");
    let gateway = upstream.gateway_with_timeout(
        Store::in_memory().unwrap(),
        None,
        CmcProtocol::Fullcmc,
        std::time::Duration::from_millis(500),
    );
    let user = upstream.user();
    let request = user.request();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    let failure = reply.upstream.unwrap();
    assert_eq!(
        (failure.status, failure.retry_after),
        (503, Some(7)),
        "{failure:?}"
    );
    assert!(failure.text.contains("timed out"), "{failure:?}");
    // The upstream decided (its answer was only late). A deadline, not a timing check.
    let issued_upstream = || {
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while issued_upstream() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(issued_upstream(), 1);
    let retry = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(retry.outcome, Outcome::Issued);
    assert_eq!(
        issued_upstream(),
        1,
        "the retry is answered, not issued again"
    );
    assert_eq!(
        outcomes(&gateway.audit_trail()),
        ["upstream-failed", "issued"]
    );
}

/// Credentials that would fail every renewal are refused when the gateway starts: an RA key
/// that is not the certificate's, an RA certificate clients would not accept as a signer.
#[test]
fn a_gateway_with_a_credential_that_cannot_work_does_not_start() {
    use sim_ca::gateway::{
        Gateway, Policy, RaCredential, ca_backend::SimulatedAuthority, credential,
    };
    let upstream = Upstream::start("");
    let authority = upstream.ca.authority();
    let policy = || Policy {
        client_cas: vec![authority.issuing.cert.clone()],
        upstream_cas: vec![authority.issuing.cert.clone(), authority.root.cert.clone()],
        templates: sim_ca::templates::TemplateRegistry::from_configs(&[]).unwrap(),
        grace: std::time::Duration::ZERO,
        profile: renewal_codec::cmc::Profile::Adcs,
        retry_after: 5,
        max_pending_per_identity: sim_ca::ledger::DEFAULT_PENDING_CAP,
    };
    let start = |ra: RaCredential| {
        let backend = SimulatedAuthority::new(upstream.ca.clone(), ra.chain[0].der().to_vec());
        Gateway::new(
            policy(),
            ra,
            Box::new(backend),
            Store::in_memory().unwrap(),
            upstream.ca.clock().clone(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let ra = |purpose| credential::issue(authority, "RA", &[], purpose, common::now()).unwrap();
    assert_eq!(start(ra(credential::Purpose::Ra)), Ok(()));
    let mut swapped = ra(credential::Purpose::Ra);
    swapped.key = renewal_codec::cmc::SoftwareKey::generate_p256().unwrap();
    assert_eq!(
        start(swapped),
        Err("gateway: the RA key is not the RA certificate's key".into())
    );
    let e = start(ra(credential::Purpose::TlsServer)).unwrap_err();
    assert!(e.contains("id-kp-cmcRA"), "{e}");
}
