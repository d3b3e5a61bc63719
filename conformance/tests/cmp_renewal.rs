//! `--mode cmp` end to end: a virtual card renews over CMP (a key update protected by the old
//! key on the card, its new key proven by the card) against sim-ca over HTTPS — issued and
//! confirmed with certConf in one PIN prompt, pending and collected by pollReq, left pending
//! and collected by `resume` after a restart, refused with its CMP failure, and an answer the
//! client cannot trust rolled back (and the certificate it would have had revoked by the CA
//! when no confirmation comes).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use conformance::harness::{GatewayRoute, World};
use renewal_client::{
    client::{
        Mode, RenewalService, ServiceAnswer, ServiceError,
        journal::Record,
        processor::{Renewal, RenewalError, RenewalOutcome, RollbackCause, resume},
    },
    cmc::{Limits, Retained, status::CmcFailInfo},
    cmp::{PkiHeader, PkiMessage},
    token::KeyAlgorithm,
};
use sim_ca::store::AuditOutcome;
use sim_card::{CardConfig, PivApplet};
use x509_cert::Certificate;

fn run(world: &World, max_polls: u32) -> Result<RenewalOutcome, RenewalError> {
    let mut service = world.service(Mode::Cmp).unwrap();
    let mut journal = world.journal().unwrap();
    Renewal::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::Cmp, max_polls, None),
    )
    .run()
}

fn assert_renewed(world: &World, outcome: &RenewalOutcome) {
    let RenewalOutcome::Renewed { certificate, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let cert = world.check_invariant().unwrap();
    assert_eq!(cert.der(), certificate.as_slice());
    assert_ne!(cert, world.old_cert, "the old certificate is gone");
    assert_eq!(
        cert.value().tbs_certificate().subject(),
        world.old_cert.value().tbs_certificate().subject()
    );
    assert!(matches!(
        world.journal().unwrap().last(),
        Some(Record::Done { .. })
    ));
}

fn outcomes(world: &World) -> Vec<AuditOutcome> {
    world
        .ca
        .as_ref()
        .unwrap()
        .audit_trail()
        .iter()
        .map(|r| r.outcome)
        .collect()
}

#[test]
fn a_card_renews_over_cmp_and_confirms_in_one_pin_prompt() {
    for key in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
        let world = World::new("", key).unwrap();
        let outcome = run(&world, 0).unwrap();
        assert_renewed(&world, &outcome);
        assert_eq!(
            world.pins.count(),
            1,
            "{key:?}: one login for TLS, kur and certConf"
        );
        let trail = outcomes(&world);
        assert_eq!(
            trail.iter().filter(|o| **o == AuditOutcome::Issued).count(),
            1,
            "{trail:?}"
        );
        assert!(trail.contains(&AuditOutcome::Confirmed), "{trail:?}");
        // Confirmed: the deadline passing revokes nothing.
        let ca = world.ca.as_ref().unwrap();
        ca.clock().advance(Duration::from_secs(3600));
        ca.sweep_confirmations();
        assert!(!outcomes(&world).contains(&AuditOutcome::Revoked));
    }
}

#[test]
fn implicit_confirmation_asked_and_granted_ends_with_the_certificate_direct_and_through_a_gateway()
{
    for route in [None, Some(GatewayRoute::InProcess)] {
        let mut world = World::routed(
            "",
            KeyAlgorithm::EcP256,
            PivApplet::new(&CardConfig::default()).unwrap(),
            "123456",
            route,
        )
        .unwrap();
        world.implicit_confirm = true;
        let outcome = run(&world, 0).unwrap();
        assert_renewed(&world, &outcome);
        assert_eq!(world.pins.count(), 1, "{route:?}");
        let trail = outcomes(&world);
        assert!(
            trail.contains(&AuditOutcome::Issued),
            "{route:?}: {trail:?}"
        );
        assert!(
            !trail.contains(&AuditOutcome::Confirmed),
            "{route:?}: no certConf was sent: {trail:?}"
        );
        // Granted: nothing waits for a confirmation, so the deadline passing revokes nothing.
        let ca = world.ca.as_ref().unwrap();
        ca.clock().advance(Duration::from_secs(3600));
        ca.sweep_confirmations();
        assert!(
            !outcomes(&world).contains(&AuditOutcome::Revoked),
            "{route:?}"
        );
    }
}

#[test]
fn a_pending_key_update_is_collected_by_polling() {
    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let outcome = run(&world, 3).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(world.pins.count(), 1);
    assert!(outcomes(&world).contains(&AuditOutcome::Confirmed));
}

/// The service, every message sent and every CMP answer received kept.
struct Recording<S> {
    inner: S,
    sent: Vec<Vec<u8>>,
    answers: Vec<Vec<u8>>,
}

impl<S: RenewalService> RenewalService for Recording<S> {
    fn warm_up(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError> {
        self.inner.warm_up()
    }
    fn submit(&mut self, body: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        self.sent.push(body.to_vec());
        let answer = self.inner.submit(body);
        if let Ok(ServiceAnswer::Cmp { message }) = &answer {
            self.answers.push(message.clone());
        }
        answer
    }
}

fn header(der: &[u8]) -> PkiHeader {
    PkiMessage::parse(der, &Limits::default()).unwrap().header
}

#[test]
fn a_pending_key_update_survives_a_restart_and_is_collected_with_resume() {
    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let mut before = Recording {
        inner: world.service(Mode::Cmp).unwrap(),
        sent: Vec::new(),
        answers: Vec::new(),
    };
    let outcome = Renewal::new(
        world.token.clone(),
        &mut before,
        &mut world.journal().unwrap(),
        world.config(Mode::Cmp, 1, None),
    )
    .run()
    .unwrap();
    assert_eq!(outcome, RenewalOutcome::Pending);
    // kur → waiting, pollReq → pollRep: the last answer's nonce is what comes back next.
    assert_eq!(before.answers.len(), 2);
    let last_nonce = header(before.answers.last().unwrap()).sender_nonce;
    assert!(last_nonce.is_some());
    let ca = world.ca.as_ref().unwrap();
    let id = ca.with_store(|s| s.list_pending()).unwrap()[0].id;
    ca.decide_pending(id, true).unwrap();
    // A restart: a new process knows only the journal.
    let mut after = Recording {
        inner: world.service(Mode::Cmp).unwrap(),
        sent: Vec::new(),
        answers: Vec::new(),
    };
    let outcome = resume(
        world.token.clone(),
        &mut after,
        &mut world.journal().unwrap(),
        world.config(Mode::Cmp, 0, None),
    )
    .unwrap();
    assert_renewed(&world, &outcome);
    // The pollReq after the restart carries the CA's last nonce back (RFC 9483 §3.1), from
    // the journal, and the transaction of the journaled kur.
    let poll = header(&after.sent[0]);
    assert_eq!(poll.recip_nonce, last_nonce);
    assert_eq!(poll.transaction_id, header(&before.sent[0]).transaction_id);
}

#[test]
fn a_refusal_rolls_back_with_its_cmp_failure() {
    let world = World::new("[[rule]]\ndisposition = \"deny\"\n", KeyAlgorithm::EcP256).unwrap();
    let outcome = run(&world, 0).unwrap();
    let RenewalOutcome::RolledBack {
        reason: RollbackCause::Refused { fail_info, text },
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*fail_info, Some(CmcFailInfo::BadIdentity), "{text}");
    assert!(text.contains("notAuthorized"), "{text}");
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
}

#[test]
fn an_answer_signed_by_another_key_rolls_back_and_the_unconfirmed_certificate_is_revoked() {
    let world = World::new(
        "[[rule]]\ndisposition = \"issue\"\nfault = \"wrong-signer\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let outcome = run(&world, 0).unwrap();
    assert!(
        matches!(
            &outcome,
            RenewalOutcome::RolledBack {
                reason: RollbackCause::BadAnswer(_),
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
    let ca = world.ca.as_ref().unwrap();
    assert!(!outcomes(&world).contains(&AuditOutcome::Revoked));
    ca.clock()
        .advance(sim_ca::service::DEFAULT_CONFIRM_WAIT + Duration::from_secs(1));
    ca.sweep_confirmations();
    assert!(outcomes(&world).contains(&AuditOutcome::Revoked));
}
