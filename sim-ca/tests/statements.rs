//! What one decision costs the state database, counted in statements (issue 21, item 10:
//! "design the ledger's statements per decision for the minimum"). Each statement below is
//! named with why it cannot go; a statement added to every renewal fails this test until it is
//! named here too.

#![allow(clippy::unwrap_used)]

mod common;

use renewal_codec::cmc::{Outcome, SoftwareKey, build_renewal_request};
use sim_ca::{Ca, service::SimpleReply, store::Endpoint};

/// Statements the store ran while `f` did.
fn statements(ca: &Ca, f: impl FnOnce()) -> u64 {
    let before = ca.with_store(|s| s.statements());
    f();
    ca.with_store(|s| s.statements()) - before
}

/// A renewal that issues, on either endpoint: BEGIN; the renewed certificate's revocation; a
/// pending request it would poll; the new key's certificates (answered before, or a key
/// certified already); the transaction's sighting (replay); the certificate; the counters
/// (one statement for all); the audit record; COMMIT. The CMC request's nonce adds its own
/// sighting.
const ISSUED_SIMPLE: u64 = 9;
const ISSUED_CMC: u64 = ISSUED_SIMPLE + 1;

#[test]
fn a_renewal_costs_the_statements_it_needs_and_no_more() {
    let ca = common::ca();
    // A first renewal opens what is opened once (the nonce key, the first sweep of sightings).
    let warm = common::Client::new(&ca);
    let reply = ca.handle_cmc_at(Endpoint::FullCmc, &warm.request(), warm.old_cert.der());
    assert_eq!(common::parse(&reply.body).outcome, Outcome::Issued);

    let cmc_user = common::Client::new(&ca);
    let request = cmc_user.request();
    let cmc = statements(&ca, || {
        let reply = ca.handle_cmc_at(Endpoint::FullCmc, &request, cmc_user.old_cert.der());
        assert_eq!(common::parse(&reply.body).outcome, Outcome::Issued);
    });
    assert_eq!(cmc, ISSUED_CMC, "full CMC");

    let user = common::Client::new(&ca);
    let built = build_renewal_request(
        &user.old_cert,
        &user.old_key,
        &SoftwareKey::generate_p256().unwrap(),
        &common::Client::params(),
    )
    .unwrap();
    let simple = statements(&ca, || {
        let (reply, _) = ca.handle_simple(&built.pkcs10_der, user.old_cert.der());
        assert!(matches!(reply, SimpleReply::Issued(_)), "{reply:?}");
    });
    assert_eq!(simple, ISSUED_SIMPLE, "simplereenroll");

    // The same request again is answered from the ledger: no certificate, no sighting.
    let again = statements(&ca, || {
        let reply = ca.handle_cmc_at(Endpoint::FullCmc, &request, cmc_user.old_cert.der());
        assert_eq!(common::parse(&reply.body).outcome, Outcome::Issued);
    });
    assert!(again < ISSUED_CMC, "a re-sent request: {again} statements");
}

/// A renewal the gateway forwards, on the gateway's own store. The claim, committed before the
/// upstream is asked: BEGIN, the renewed certificate's revocation as the gateway knows it, a
/// pending request it would poll, the new key's certificates, the user's open pending requests
/// (the cap: only the upstream knows whether this one will pend), the transaction's sighting,
/// the nonce's, the claim held while the upstream is asked, the counters, COMMIT. Then the
/// record: BEGIN, the claim released, the certificate (once: the same answer collected twice is
/// recorded once), the audit record, the counters, COMMIT.
const FORWARDED_CMC: u64 = 10 + 6;
#[test]
fn a_forwarded_renewal_costs_the_gateway_the_statements_it_needs() {
    let upstream = common::Upstream::start("");
    let gateway = upstream.gateway_local(sim_ca::store::Store::in_memory().unwrap());
    let warm = upstream.user();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &warm.request(), warm.old_cert.der());
    assert_eq!(common::parse(&reply.body).outcome, Outcome::Issued);
    let user = upstream.user();
    let request = user.request();
    let before = gateway.with_store(|s| s.statements());
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(common::parse(&reply.body).outcome, Outcome::Issued);
    let used = gateway.with_store(|s| s.statements()) - before;
    assert_eq!(used, FORWARDED_CMC, "full CMC through the gateway");
}
