//! A journal belongs to one card. A renewal of card A killed after the new key was generated,
//! then recovery with card B in the reader (the same journal file, as one shared per-user
//! journal was): refused, naming the card it needs, and nothing on B changes; with card A back,
//! recovery deletes A's orphan key — it is not left forever on a card that fills up.

#![allow(clippy::unwrap_used)]

use conformance::harness::World;
use renewal_core::{
    client::{
        Mode,
        journal::{Journal, Record},
        processor::{CrashPoint, RecoveryOutcome, Renewal, RenewalError, recover},
    },
    token::KeyAlgorithm,
};

fn containers(world: &World) -> Vec<String> {
    let mut token = world.token.lock().unwrap();
    token
        .containers()
        .unwrap()
        .into_iter()
        .map(|c| c.id.0)
        .collect()
}

#[test]
fn recovery_acts_on_the_journals_card_only() {
    let a = World::new("", KeyAlgorithm::EcP256).unwrap();
    // Another card: another serial and other keys (a card's RNG seed makes both).
    let b = World::with(
        "",
        KeyAlgorithm::EcP256,
        sim_card::CardConfig {
            seed: 2,
            ..Default::default()
        },
        "123456",
    )
    .unwrap();
    let (a_before, b_before) = (containers(&a), containers(&b));
    let mut service = a.service(Mode::FullCmc).unwrap();
    let mut journal = a.journal().unwrap();
    let crashed = Renewal::new(
        a.token.clone(),
        &mut service,
        &mut journal,
        a.config(Mode::FullCmc, 0, Some(CrashPoint::Generated)),
    )
    .run();
    assert!(
        matches!(crashed, Err(RenewalError::Crashed(_))),
        "{crashed:?}"
    );
    let orphaned = containers(&a);
    assert_eq!(orphaned.len(), a_before.len() + 1, "no key was generated");
    // The journal names the card.
    let begin = journal.current().first().cloned().unwrap();
    let Record::Begin {
        token: Some(card), ..
    } = &begin
    else {
        panic!("{begin:?}")
    };
    assert!(card.contains('#'), "{card}");

    // Card B in the reader, A's journal: refused, nothing changed on B, the journal kept.
    let mut shared = Journal::open(&a.journal_path).unwrap();
    let refused = recover(&b.token, &mut shared);
    let Err(e @ RenewalError::OtherCard { .. }) = refused else {
        panic!("recovered against another card: {refused:?}")
    };
    let message = e.to_string();
    assert!(message.contains("insert card"), "{message}");
    assert!(message.contains("9a"), "{message}");
    assert_eq!(containers(&b), b_before);
    assert!(
        !Journal::open(&a.journal_path).unwrap().current().is_empty(),
        "the unfinished renewal was marked handled"
    );

    // Card A back: its orphan key goes.
    let mut journal = Journal::open(&a.journal_path).unwrap();
    let outcome = recover(&a.token, &mut journal).unwrap();
    assert!(
        matches!(&outcome, RecoveryOutcome::RolledBack { deleted } if deleted.len() == 1),
        "{outcome:?}"
    );
    assert_eq!(containers(&a), a_before);
    a.check_invariant().unwrap();
}
