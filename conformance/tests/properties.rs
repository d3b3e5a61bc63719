//! Properties over sequences of renewal attempts with random CA dispositions, card faults and
//! crashes on one card: after every attempt (and its recovery) the card never exceeds its
//! capacity, keeps no orphan container, never loses its only valid certificate, and the PIN
//! is asked at most once per card session (a pulled card starts a new session).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use conformance::harness::World;
use proptest::prelude::*;
use renewal_client::{
    client::{
        Mode,
        processor::{CrashPoint, Renewal, RenewalError, RenewalOutcome, recover},
    },
    token::KeyAlgorithm,
};
use sim_card::{
    CardConfig, FaultPlan, Rule,
    faults::{CommandKind, Fault},
};

#[derive(Clone, Debug)]
struct Attempt {
    mode: Mode,
    deny: bool,
    fault: Option<(CommandKind, u32, Fault)>,
    crash: Option<CrashPoint>,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    let mode = prop::sample::select(vec![Mode::FullCmc, Mode::Cmc, Mode::SimpleReenroll]);
    let kind = prop::sample::select(vec![
        CommandKind::Generate,
        CommandKind::Sign,
        CommandKind::PutData,
        CommandKind::MoveKey,
        CommandKind::GetData,
    ]);
    let fault = prop::sample::select(vec![
        Fault::Fail(0x6F00),
        Fault::Fail(0x6A84),
        Fault::RemoveBefore,
        Fault::RemoveAfter,
    ]);
    let crash = prop::sample::select(CrashPoint::ALL.to_vec());
    (
        mode,
        any::<bool>(),
        prop::option::weighted(0.5, (kind, 1u32..4, fault)),
        prop::option::weighted(0.25, crash),
    )
        .prop_map(|(mode, deny, fault, crash)| Attempt {
            mode,
            deny,
            fault,
            crash,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/properties.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn attempts_never_break_the_card(attempts in prop::collection::vec(attempt(), 1..5), capacity in 2usize..4) {
        // Denials come from rules on the n-th request the CA sees.
        let ca: String = attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.deny)
            .map(|(i, _)| format!("[[rule]]\nrequest = {}\ndisposition = \"deny\"\n", i + 1))
            .collect();
        let world = World::with(&ca, KeyAlgorithm::EcP256, CardConfig { capacity, ..CardConfig::default() }, "123456").unwrap();
        let mut sessions = 1;
        for a in &attempts {
            world.set_faults(FaultPlan::new(a.fault.iter().map(|&(kind, nth, fault)| Rule { kind, nth, fault }).collect()));
            let mut service = world.service(a.mode).unwrap();
            let mut journal = world.journal().unwrap();
            let run = Renewal::new(world.token.clone(), &mut service, &mut journal, world.config(a.mode, 0, a.crash)).run();
            {
                let mut card = world.card.as_ref().unwrap().lock().unwrap();
                if card.is_removed() {
                    card.reinsert();
                    sessions += 1;
                }
                card.set_faults(FaultPlan::default());
                // Never over capacity, at any point.
                prop_assert!(card.state().keys.len() <= capacity, "{} keys on a card of {capacity}", card.state().keys.len());
            }
            if matches!(run, Err(RenewalError::Crashed(_) | RenewalError::Card { .. })) {
                recover(&world.token, &mut journal).unwrap();
            }
            prop_assert!(!matches!(run, Ok(RenewalOutcome::Pending)), "no pending disposition was scripted");
            // The invariant: one valid certificate, in 9A, for the key in 9A; no orphan.
            if let Err(e) = world.check_invariant() {
                return Err(TestCaseError::fail(format!("{a:?} -> {run:?}: {e}")));
            }
            prop_assert!(world.pins.count() <= sessions, "{} prompts for {sessions} card sessions", world.pins.count());
        }
    }
}
