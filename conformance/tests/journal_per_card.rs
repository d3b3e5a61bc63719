//! A journal belongs to one card. A renewal of card A killed after the new key was generated,
//! then recovery with card B in the reader (the same journal file, as one shared per-user
//! journal was): refused, naming the card it needs, and nothing on B changes; with card A back,
//! recovery deletes A's orphan key — it is not left forever on a card that fills up.

#![allow(clippy::unwrap_used)]

use conformance::harness::World;
use renewal_client::{
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

/// The journal's disk is full: the renewal refuses to start — the journal's first record
/// cannot be written, so no key is generated — and says why. (On a 64 KiB tmpfs the test
/// fills; skipped, with the reason, where this machine refuses a test a mount.)
#[test]
fn a_full_journal_disk_refuses_before_any_key_is_generated() {
    let dir = std::env::temp_dir().join(format!("journal-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("NOTE: no tmpfs here (mount refused): nothing to fill");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(dir.clone());
    let mut journal = Journal::open(&dir.join("journal.jsonl")).unwrap();
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
        while filler.write_all(&[0u8; 1024]).is_ok() {}
    }
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let before = containers(&world);
    let mut service = world.service(Mode::FullCmc).unwrap();
    let refused = Renewal::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::FullCmc, 0, None),
    )
    .run();
    let Err(e @ RenewalError::Journal(_)) = refused else {
        panic!("started on a full disk: {refused:?}")
    };
    assert!(e.to_string().contains("No space left"), "{e}");
    assert_eq!(containers(&world), before, "a key was generated");
    world.check_invariant().unwrap();
}
