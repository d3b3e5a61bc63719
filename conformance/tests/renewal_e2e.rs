//! End-to-end renewals over loopback mutual TLS against sim-ca, with the card in-process:
//! every disposition, transport fault, card failure at each step, and a crash at every
//! journal point followed by `recover`. After each: exactly one valid certificate, no orphan
//! container, the old certificate intact unless the renewal completed; PIN prompts counted.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use conformance::harness::World;
use renewal_client::{
    client::{
        Mode,
        journal::Record,
        processor::{
            CrashPoint, RecoveryOutcome, Renewal, RenewalError, RenewalOutcome, RollbackCause,
            Step, recover, resume,
        },
    },
    token::KeyAlgorithm,
};
use sim_card::{
    FaultPlan, Rule,
    faults::{CommandKind, Fault},
};

fn run(
    world: &World,
    mode: Mode,
    max_polls: u32,
    crash: Option<CrashPoint>,
) -> Result<RenewalOutcome, RenewalError> {
    let mut service = world.service(mode).unwrap();
    let mut journal = world.journal().unwrap();
    Renewal::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(mode, max_polls, crash),
    )
    .run()
}

fn assert_renewed(world: &World, outcome: &RenewalOutcome) {
    let RenewalOutcome::Renewed {
        container,
        certificate,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(container.0, "9a");
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

fn assert_untouched(world: &World) {
    let cert = world.check_invariant().unwrap();
    assert_eq!(cert, world.old_cert, "the old certificate is intact");
}

#[test]
fn issued_in_every_mode_with_one_pin_prompt() {
    for mode in [Mode::FullCmc, Mode::Cmc, Mode::SimpleReenroll] {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        let outcome = run(&world, mode, 0, None).unwrap();
        assert_renewed(&world, &outcome);
        assert_eq!(
            world.pins.count(),
            1,
            "{mode:?}: TLS and card share one login"
        );
    }
}

/// A world's scratch directory (journal, the test server's private key) goes with it.
#[test]
fn a_world_leaves_nothing_in_the_temp_directory() {
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let scratch = world.journal_path.parent().unwrap().to_path_buf();
    assert!(scratch.join("server.key").exists());
    drop(world);
    assert!(!scratch.exists(), "{} left behind", scratch.display());
}

#[test]
fn rsa_card_key_renews_over_tls12() {
    let world = World::new("", KeyAlgorithm::Rsa2048).unwrap();
    let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(world.pins.count(), 1);
}

#[test]
fn denied_and_error_roll_back() {
    for scenario in [
        "[[rule]]\ndisposition = \"deny\"\n",
        "[[rule]]\ndisposition = \"error\"\nhresult = 0x80094006\n",
    ] {
        let world = World::new(scenario, KeyAlgorithm::EcP256).unwrap();
        let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
        assert!(
            matches!(outcome, RenewalOutcome::RolledBack { .. }),
            "{outcome:?}"
        );
        assert_untouched(&world);
        assert_eq!(world.pins.count(), 1);
    }
}

#[test]
fn pending_then_issued_while_polling() {
    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let outcome = run(&world, Mode::FullCmc, 3, None).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(world.pins.count(), 1);
    // Also over EST simplereenroll (202 + Retry-After).
    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"after:60\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let outcome = run(&world, Mode::SimpleReenroll, 3, None).unwrap();
    assert_renewed(&world, &outcome);
}

/// A CA that asks to come back in a day is not waited for in the process, whatever
/// `--max-polls` says: the run ends pending at once (no wait: the CA's clock, which the
/// harness's waits advance, has moved by no more than the run's own time), and the request
/// waits in the journal for `resume`.
#[test]
fn a_long_retry_after_ends_the_run_pending_instead_of_waiting() {
    for mode in [Mode::FullCmc, Mode::SimpleReenroll] {
        let world = World::new(
            "[[rule]]\ndisposition = \"pending\"\nresolve = \"after:86400\"\n",
            KeyAlgorithm::EcP256,
        )
        .unwrap();
        let ca = world.ca.as_ref().unwrap();
        let before = ca.clock().now();
        assert_eq!(
            run(&world, mode, 5, None).unwrap(),
            RenewalOutcome::Pending,
            "{mode:?}"
        );
        let moved = ca.clock().now().duration_since(before).unwrap();
        assert!(
            moved < std::time::Duration::from_secs(60),
            "{mode:?}: waited {moved:?}"
        );
        assert_eq!(
            recover(&world.token, &mut world.journal().unwrap()).unwrap(),
            RecoveryOutcome::Pending,
            "{mode:?}"
        );
    }
}

#[test]
fn pending_survives_a_restart_and_is_collected_with_resume() {
    for (approve, renewed) in [(true, true), (false, false)] {
        let world = World::new(
            "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
            KeyAlgorithm::EcP256,
        )
        .unwrap();
        assert_eq!(
            run(&world, Mode::FullCmc, 1, None).unwrap(),
            RenewalOutcome::Pending
        );
        // The new key waits in a retired slot; the old certificate still works.
        let containers = world.token.lock().unwrap().containers().unwrap();
        assert_eq!(containers.len(), 2);
        assert_eq!(
            recover(&world.token, &mut world.journal().unwrap()).unwrap(),
            RecoveryOutcome::Pending
        );
        let id = world
            .ca
            .as_ref()
            .unwrap()
            .with_store(|s| s.list_pending())
            .unwrap()[0]
            .id;
        world
            .ca
            .as_ref()
            .unwrap()
            .decide_pending(id, approve)
            .unwrap();
        // A "restart": a new connection and the journal read back from disk.
        let mut service = world.service(Mode::FullCmc).unwrap();
        let mut journal = world.journal().unwrap();
        let outcome = resume(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(Mode::FullCmc, 0, None),
        )
        .unwrap();
        if renewed {
            assert_renewed(&world, &outcome);
        } else {
            assert!(
                matches!(outcome, RenewalOutcome::RolledBack { .. }),
                "{outcome:?}"
            );
            assert_untouched(&world);
        }
    }
}

/// A lost answer is re-sent, not rolled back: the same request bytes over a new connection
/// (still one PIN prompt). When the CA had decided — the answer dropped after it read the
/// request, or arriving malformed, truncated or in the wrong content type — the re-send gets
/// the certificate it issued (one certificate, renewed). When the CA is unreachable every
/// time (dropped before it reads, 503 from a proxy), the re-sends run out and the renewal
/// rolls back. A wrong-key certificate or a wrong signer is an answer, refused at once.
#[test]
fn lost_answers_are_resent_and_bad_answers_roll_back() {
    let issued = |world: &World| {
        world
            .ca
            .as_ref()
            .unwrap()
            .counters()
            .iter()
            .find(|(n, _)| n == "issued")
            .map_or(0, |(_, v)| *v)
    };
    for (fault, renews, certificates) in [
        ("drop-after-read", true, 1),
        ("malformed-body", true, 1),
        ("wrong-content-type", true, 1),
        ("truncated", true, 1),
        ("drop-before-read", false, 0),
        ("http:503", false, 0),
        ("wrong-key-certificate", false, 1),
        ("wrong-signer", false, 1),
    ] {
        let world = World::new(
            &format!("[[rule]]\nfault = \"{fault}\"\n"),
            KeyAlgorithm::EcP256,
        )
        .unwrap();
        let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
        if renews {
            assert_renewed(&world, &outcome);
        } else {
            assert!(
                matches!(outcome, RenewalOutcome::RolledBack { .. }),
                "{fault}: {outcome:?}"
            );
            assert_untouched(&world);
        }
        assert_eq!(issued(&world), certificates, "{fault}");
        assert_eq!(world.pins.count(), 1, "{fault}");
    }
}

/// A CA that issues a certificate which is no longer valid on the client's clock (here a
/// template of zero days: valid from five minutes ago until now) is refused before anything is
/// installed, over every protocol: the old certificate, which works, stays; the new key goes.
#[test]
fn a_certificate_already_expired_is_not_installed() {
    let scenario = format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nvalidity_days = 0\n",
        renewal_client::sample::SAMPLE_TEMPLATE_OID
    );
    rolled_back_over_every_protocol(&scenario, ("bad-answer", "has expired"), |mode, world| {
        if mode == Mode::Cmp {
            // Rejected in certConf: the CA revokes what it issued.
            let ca = world.ca.as_ref().unwrap();
            let issued: Vec<String> = ca
                .audit_trail()
                .into_iter()
                .filter(|r| r.outcome == sim_ca::store::AuditOutcome::Issued)
                .filter_map(|r| r.serial)
                .collect();
            assert_eq!(issued.len(), 1, "{issued:?}");
            assert!(ca.with_store(|s| s.is_revoked(&issued[0]).unwrap()));
        }
    });
}

/// Renews under `scenario` over full CMC, RFC 5273, simplereenroll, MS-WSTEP and CMP, each in a
/// world of its own, and asserts each rolled back for a reason that says `why`, the card as it
/// was; `then` checks the rest.
/// `(kind, why)`: the rollback's cause kind (what the agent decides on) and a part of its text.
fn rolled_back_over_every_protocol(
    scenario: &str,
    (kind, why): (&str, &str),
    then: impl Fn(Mode, &World),
) {
    for mode in [
        Mode::FullCmc,
        Mode::Cmc,
        Mode::SimpleReenroll,
        Mode::Wstep,
        Mode::Cmp,
    ] {
        let world = World::new(scenario, KeyAlgorithm::EcP256).unwrap();
        let outcome = run(&world, mode, 0, None).unwrap();
        let RenewalOutcome::RolledBack { reason } = &outcome else {
            panic!("{mode:?}: {outcome:?}");
        };
        assert!(format!("{reason}").contains(why), "{mode:?}: {reason}");
        assert_eq!(reason.kind(), kind, "{mode:?}: {reason}");
        assert_untouched(&world);
        then(mode, &world);
    }
}

/// A CA whose template now gives what it issues other purposes (an administrator added
/// serverAuth) issues a certificate that is not the renewed one: the client refuses it before
/// anything is installed, over every protocol, as a renewal gateway refuses to deliver it. The
/// same purposes in another order are the same set, and renew.
#[test]
fn a_certificate_with_other_purposes_is_not_installed() {
    let scenario = |purposes: &str| {
        format!(
            "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nextended_key_usage = [{purposes}]\n",
            renewal_client::sample::SAMPLE_TEMPLATE_OID
        )
    };
    let added = scenario("\"clientAuth\", \"smartcardLogon\", \"serverAuth\"");
    // Not a renewal, not a bad answer: the CA's template makes it, and would again.
    rolled_back_over_every_protocol(
        &added,
        ("not-a-renewal", "another extendedKeyUsage"),
        |_, _| {},
    );
    let reordered = scenario("\"smartcardLogon\", \"clientAuth\"");
    let world = World::new(&reordered, KeyAlgorithm::EcP256).unwrap();
    assert_renewed(&world, &run(&world, Mode::FullCmc, 0, None).unwrap());
}

#[test]
fn a_delayed_answer_still_renews() {
    let world = World::new("[[rule]]\nfault = \"delay:200\"\n", KeyAlgorithm::EcP256).unwrap();
    assert_renewed(&world, &run(&world, Mode::FullCmc, 0, None).unwrap());
}

#[test]
fn card_failures_at_each_step_leave_one_valid_certificate() {
    // (command kind, occurrence, fault): generate fails, the card is full, a signature fails,
    // the certificate write fails, the card is pulled during generation, before install.
    let cases = [
        (CommandKind::Generate, 1, Fault::Fail(0x6F00)),
        (CommandKind::Generate, 1, Fault::Fail(0x6A84)),
        (CommandKind::Sign, 2, Fault::Fail(0x6A80)),
        (CommandKind::Sign, 3, Fault::Fail(0x6A80)),
        (CommandKind::PutData, 1, Fault::Fail(0x6A84)),
        (CommandKind::Generate, 1, Fault::RemoveAfter),
        (CommandKind::PutData, 1, Fault::RemoveBefore),
        (CommandKind::MoveKey, 2, Fault::RemoveBefore),
    ];
    for (kind, nth, fault) in cases {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        world.set_faults(FaultPlan::new(vec![Rule { kind, nth, fault }]));
        let result = run(&world, Mode::FullCmc, 0, None);
        // Whatever happened, recovery restores the invariant.
        if let Some(Ok(mut card)) = world.card.as_ref().map(|c| c.lock()) {
            if card.is_removed() {
                card.reinsert();
            }
            card.set_faults(FaultPlan::default());
        }
        let recovered = recover(&world.token, &mut world.journal().unwrap()).unwrap();
        let cert = world.check_invariant().unwrap_or_else(|e| {
            panic!("{kind:?} #{nth} {fault:?}: {e} ({result:?}, {recovered:?})")
        });
        match &result {
            Ok(RenewalOutcome::Renewed { .. })
            | Ok(RenewalOutcome::RolledBack { .. })
            | Err(RenewalError::Card { .. }) => {}
            other => panic!("{kind:?} #{nth} {fault:?}: {other:?}"),
        }
        if matches!(result, Ok(RenewalOutcome::RolledBack { .. })) {
            assert_eq!(cert, world.old_cert, "{kind:?} #{nth} {fault:?}");
        }
        assert!(
            world.pins.count() <= 2,
            "{kind:?}: {} prompts",
            world.pins.count()
        );
    }
}

#[test]
fn crash_at_every_journal_point_then_recover() {
    for point in CrashPoint::ALL {
        // RollbackIntent is only reached on a failure path: use a denying CA for it.
        let scenario = if point == CrashPoint::RollbackIntent {
            "[[rule]]\ndisposition = \"deny\"\n"
        } else {
            ""
        };
        let world = World::new(scenario, KeyAlgorithm::EcP256).unwrap();
        match run(&world, Mode::FullCmc, 0, Some(point)) {
            Err(RenewalError::Crashed(p)) => assert_eq!(p, point),
            other => panic!("{point:?}: {other:?}"),
        }
        let outcome = recover(&world.token, &mut world.journal().unwrap()).unwrap();
        let cert = world
            .check_invariant()
            .unwrap_or_else(|e| panic!("{point:?}: {e}"));
        match point {
            CrashPoint::InstallIntent | CrashPoint::Installed | CrashPoint::SupersedeIntent => {
                assert!(
                    matches!(outcome, RecoveryOutcome::Completed { .. }),
                    "{point:?}: {outcome:?}"
                );
                assert_ne!(cert, world.old_cert, "{point:?}: completed forward");
            }
            _ => {
                assert!(
                    matches!(outcome, RecoveryOutcome::RolledBack { .. }),
                    "{point:?}: {outcome:?}"
                );
                assert_eq!(cert, world.old_cert, "{point:?}: rolled back");
            }
        }
        // Recovering twice changes nothing.
        assert_eq!(
            recover(&world.token, &mut world.journal().unwrap()).unwrap(),
            RecoveryOutcome::Clean
        );
        assert!(world.pins.count() <= 1, "{point:?}");
    }
}

#[test]
fn a_certificate_whose_key_type_cannot_be_generated_is_refused_before_anything_happens() {
    use renewal_client::token::ContainerId;
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    // The certificate in 9A certifies an RSA-1024 key (no card renews onto one). Its public
    // half comes from OpenSSL: our key types do not make 1024-bit keys.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sim-ca/tests/fixtures/rsa1024.key"
    );
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in", fixture])
        .output()
        .expect("openssl (Debian package openssl) is needed by this test");
    assert!(out.status.success());
    let rsa1024 = <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(&out.stdout).unwrap();
    let authority = world.ca.as_ref().unwrap().authority();
    let cert = renewal_client::sample::issue_named_user_certificate(
        &authority.issuing.key,
        &authority.issuing.cert,
        &rsa1024,
        std::time::SystemTime::now(),
        "RSA 1024 User",
        "rsa1024",
    )
    .unwrap();
    world
        .token
        .lock()
        .unwrap()
        .install_certificate(&ContainerId("9a".into()), cert.der())
        .unwrap();
    let before = world.token.lock().unwrap().containers().unwrap();
    let error = run(&world, Mode::FullCmc, 0, None).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RenewalError::Precondition(_)) && text.contains("RSA-1024"),
        "{text}"
    );
    assert!(
        text.contains("never renews onto another key type"),
        "{text}"
    );
    let after = world.token.lock().unwrap().containers().unwrap();
    assert_eq!(
        before.iter().map(|c| &c.id).collect::<Vec<_>>(),
        after.iter().map(|c| &c.id).collect::<Vec<_>>(),
        "no key was generated"
    );
    assert!(
        world.journal().unwrap().current().is_empty(),
        "nothing was begun"
    );
}

/// The key type of a certificate (DER), as renewal classifies it.
fn key_type(certificate: &[u8]) -> KeyAlgorithm {
    let cert =
        renewal_client::cmc::Retained::<x509_cert::Certificate>::from_der(certificate).unwrap();
    let key = renewal_client::cmc::PublicKey::from_spki(
        cert.value().tbs_certificate().subject_public_key_info(),
    )
    .unwrap();
    KeyAlgorithm::of(&key).unwrap()
}

/// Each key type found on cards renews onto a new key of the same type, in every mode: the
/// card generates it (PIV 0x14, 0x05, 0x16), signs the proof with the curve's hash (SHA-384
/// for P-384) and the CA issues for it. RSA-4096 takes the longest (its blocks need command
/// chaining both ways), so it runs in one mode.
#[test]
fn p384_rsa3072_and_rsa4096_renew_onto_the_same_key_type() {
    let cases = [
        (KeyAlgorithm::EcP384, Mode::FullCmc),
        (KeyAlgorithm::EcP384, Mode::Cmc),
        (KeyAlgorithm::EcP384, Mode::SimpleReenroll),
        (KeyAlgorithm::Rsa3072, Mode::FullCmc),
        (KeyAlgorithm::Rsa3072, Mode::SimpleReenroll),
        (KeyAlgorithm::Rsa4096, Mode::FullCmc),
    ];
    for (key, mode) in cases {
        let world = World::new("", key).unwrap();
        assert_eq!(key_type(world.old_cert.der()), key);
        let outcome = run(&world, mode, 0, None).unwrap();
        assert_renewed(&world, &outcome);
        let RenewalOutcome::Renewed { certificate, .. } = &outcome else {
            unreachable!()
        };
        assert_eq!(key_type(certificate), key, "{key} {mode:?}");
        assert_eq!(world.pins.count(), 1, "{key} {mode:?}");
        // The proof of possession is signed with the key's hash (the request as sent is in
        // the journal).
        let request = world
            .journal()
            .unwrap()
            .current()
            .iter()
            .find_map(|r| match r {
                Record::Submitted { request } => Some(unhex(request)),
                _ => None,
            })
            .unwrap();
        let pkcs10 = match mode {
            Mode::SimpleReenroll => {
                <x509_cert::request::CertReq as der::Decode>::from_der(&request).unwrap()
            }
            _ => renewal_client::cmc::parse_request(&request, &Default::default())
                .unwrap()
                .verify()
                .unwrap()
                .pkcs10
                .value()
                .clone(),
        };
        let expected = match key {
            KeyAlgorithm::EcP384 => renewal_client::cmc::oids::ECDSA_WITH_SHA384,
            _ => renewal_client::cmc::oids::SHA256_WITH_RSA,
        };
        assert_eq!(pkcs10.algorithm.oid, expected, "{key} {mode:?}");
    }
}

/// A card that cannot make the old key's type (a PIV card without RSA-4096, as YubiKeys before
/// firmware 5.7) refuses GENERATE: the renewal ends with nothing changed and says why; it
/// never falls back to another key type.
#[test]
fn a_card_without_the_key_type_refuses_and_nothing_changes() {
    let world = World::new("", KeyAlgorithm::Rsa4096).unwrap();
    world
        .card
        .as_ref()
        .unwrap()
        .lock()
        .unwrap()
        .applet_mut()
        .state_mut()
        .algorithms
        .retain(|a| *a != sim_card::state::KeyAlgorithm::Rsa4096);
    let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
    let RenewalOutcome::RolledBack { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        reason,
        RollbackCause::Card {
            step: Step::GenerateKey,
            detail: "RSA-4096 key generation: not supported by this token: the card cannot \
                     generate keys of this type"
                .into()
        }
    );
    assert_untouched(&world);
    assert!(
        world.ca.as_ref().unwrap().audit_trail().is_empty(),
        "nothing reached the CA"
    );
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// MS-WSTEP end to end: the CMC request in a SOAP envelope to sim-ca's CES path over the same
/// card-authenticated TLS (one PIN prompt); a refusal comes back as a SOAP fault whose HRESULT
/// the client reports and rolls back on; a pending request is collected with
/// `QueryTokenStatus` and its RequestID.
#[test]
fn wstep_renews_refuses_and_collects_pending() {
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let outcome = run(&world, Mode::Wstep, 0, None).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(world.pins.count(), 1);
    let audit = world.ca.as_ref().unwrap().audit_trail();
    assert_eq!(audit.last().unwrap().endpoint, "wstep");

    let world = World::new(
        "[[rule]]\ndisposition = \"deny\"\nreason = \"Denied by Policy Module\"\n",
        KeyAlgorithm::Rsa2048,
    )
    .unwrap();
    let outcome = run(&world, Mode::Wstep, 0, None).unwrap();
    let RenewalOutcome::RolledBack { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        matches!(&reason, RollbackCause::Refused { fail_info: None, text } if text.starts_with("0x80094011")),
        "{reason:?}"
    );
    assert_untouched(&world);

    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let outcome = run(&world, Mode::Wstep, 3, None).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(world.pins.count(), 1);
}

/// MS-WSTEP pending across a restart: the journal keeps the CA's RequestID with the pending
/// request, and `resume` collects with `QueryTokenStatus` under it (a real ADCS would take a
/// re-sent request for a new one). The same collection with another certificate is refused.
#[test]
fn wstep_pending_keeps_its_request_id_across_a_restart() {
    let world = World::new(
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    assert_eq!(
        run(&world, Mode::Wstep, 0, None).unwrap(),
        RenewalOutcome::Pending
    );
    let ca = world.ca.as_ref().unwrap();
    let pending_id = ca.with_store(|s| s.list_pending()).unwrap()[0].id;
    let journal = world.journal().unwrap();
    let recorded = journal.current().iter().find_map(|r| match r {
        Record::Pending { request_id, .. } => *request_id,
        _ => None,
    });
    assert_eq!(recorded, Some(pending_id as u64));
    ca.decide_pending(pending_id, true).unwrap();
    let mut service = world.service(Mode::Wstep).unwrap();
    let mut journal = world.journal().unwrap();
    let outcome = resume(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::Wstep, 1, None),
    )
    .unwrap();
    assert_renewed(&world, &outcome);
    // The collection went through the RequestID (sim-ca audits QueryTokenStatus as
    // `wstep-query`), not as a re-sent request.
    let trail = ca.audit_trail();
    let endpoints: Vec<&str> = trail.iter().map(|a| a.endpoint.as_str()).collect();
    assert!(endpoints.contains(&"wstep-query"), "{trail:#?}");
    assert_eq!(
        endpoints.iter().filter(|e| **e == "wstep").count(),
        1,
        "one submission: {trail:#?}"
    );
}

/// A crash between re-sends: the journal holds the request and its retry, recovery keeps the
/// new key (the CA may have issued), and `resume` sends the same bytes again — the
/// certificate the CA issued for the lost answer is installed, and no second one is issued.
#[test]
fn a_crash_between_resends_resumes_with_the_same_request() {
    let world = World::new(
        "[[rule]]\nrequest = 1\nfault = \"drop-after-read\"\n",
        KeyAlgorithm::EcP256,
    )
    .unwrap();
    let crashed = run(&world, Mode::FullCmc, 0, Some(CrashPoint::Retry));
    assert!(
        matches!(crashed, Err(RenewalError::Crashed(CrashPoint::Retry))),
        "{crashed:?}"
    );
    let mut journal = world.journal().unwrap();
    assert!(matches!(
        journal.current().last(),
        Some(renewal_client::client::journal::Record::Retry { attempt: 1, .. })
    ));
    assert_eq!(
        recover(&world.token, &mut journal).unwrap(),
        RecoveryOutcome::Pending
    );
    let mut service = world.service(Mode::FullCmc).unwrap();
    let outcome = resume(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::FullCmc, 0, None),
    )
    .unwrap();
    assert_renewed(&world, &outcome);
    let issued = world
        .ca
        .as_ref()
        .unwrap()
        .counters()
        .iter()
        .find(|(n, _)| n == "issued")
        .map_or(0, |(_, v)| *v);
    assert_eq!(issued, 1, "one certificate for the request");
    assert_eq!(world.pins.count(), 1);
}

/// A wrong PIN is a PIN refusal by type, in every mode — the TLS signature is refused before
/// any card work — and says how many tries are left, never a TLS error.
#[test]
fn a_wrong_pin_is_a_typed_pin_refusal_with_the_tries_left() {
    for mode in Mode::ALL {
        let world = World::with(
            "",
            KeyAlgorithm::EcP256,
            sim_card::CardConfig::default(),
            "000000",
        )
        .unwrap();
        let outcome = run(&world, mode, 0, None).unwrap();
        assert_eq!(
            outcome,
            RenewalOutcome::RolledBack {
                reason: RollbackCause::Pin(renewal_client::token::PinRefusal::Wrong {
                    retries_left: 2
                })
            },
            "{mode:?}"
        );
        assert_eq!(
            RollbackCause::Pin(renewal_client::token::PinRefusal::Wrong { retries_left: 2 })
                .to_string(),
            "wrong PIN, 2 tries left"
        );
        assert_untouched(&world);
    }
}

/// A key that needs a touch: the renewal costs a touch per signature ("always": the TLS
/// signature, the new key's PKCS#10 and CMS signatures, the old key's CMS signature), still one
/// PIN prompt, and the new key in 9A keeps the policy. Nobody touching it: the card times out,
/// the attempt rolls back with the cause named, nothing left on the card.
#[test]
fn a_touch_policy_costs_a_touch_per_signature_and_a_missing_touch_rolls_back() {
    use sim_card::touch::{TouchPolicy, TouchSensor};
    let prepare = |policy: TouchPolicy, sensor: TouchSensor, timeout_ms: u64| {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        {
            let mut card = world.card.as_ref().unwrap().lock().unwrap();
            let applet = card.applet_mut();
            applet.set_touch_sensor(sensor);
            applet.state_mut().touch_timeout_ms = timeout_ms;
            applet.state_mut().keys.get_mut("9a").unwrap().touch_policy = policy;
        }
        // A fresh session: what a new `renew` process sees of the card.
        world.token.lock().unwrap().containers().unwrap();
        world
    };
    for (mode, touches) in [(Mode::FullCmc, 4), (Mode::SimpleReenroll, 2)] {
        let sensor = TouchSensor::automatic(std::time::Duration::from_millis(5));
        let world = prepare(TouchPolicy::Always, sensor.clone(), 15_000);
        let outcome = run(&world, mode, 0, None).unwrap();
        assert_renewed(&world, &outcome);
        assert_eq!(sensor.waits(), touches, "{mode:?}");
        assert_eq!(world.pins.count(), 1, "{mode:?}");
        let card = world.card.as_ref().unwrap().lock().unwrap();
        assert_eq!(
            card.state().keys["9a"].touch_policy,
            TouchPolicy::Always,
            "the new key keeps the old one's touch policy"
        );
    }
    let world = prepare(TouchPolicy::Always, TouchSensor::manual(), 200);
    let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
    let RenewalOutcome::RolledBack { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        reason,
        RollbackCause::Card {
            step: Step::Connect,
            detail: "the key in slot 9a was not touched in time".into()
        }
    );
    assert_eq!(
        world.pins.count(),
        1,
        "a missing touch costs no second PIN prompt"
    );
    assert_untouched(&world);
}

/// The card as the client sees it, counting the raw RSA operations (the PSS signatures of TLS
/// 1.3) and the PKCS#1 v1.5 ones.
struct CountingToken {
    inner: renewal_client::client::https::SharedToken,
    raw: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pkcs1: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl renewal_client::token::Token for CountingToken {
    fn info(
        &mut self,
    ) -> Result<renewal_client::token::TokenInfo, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().info()
    }
    fn containers(
        &mut self,
    ) -> Result<Vec<renewal_client::token::Container>, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().containers()
    }
    fn capacity(
        &mut self,
    ) -> Result<renewal_client::token::Capacity, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().capacity()
    }
    fn generate(
        &mut self,
        algorithm: KeyAlgorithm,
    ) -> Result<renewal_client::token::Container, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().generate(algorithm)
    }
    fn generate_like(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &renewal_client::token::ContainerId,
    ) -> Result<renewal_client::token::Container, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().generate_like(algorithm, like)
    }
    fn can_sign_raw_rsa(&self) -> bool {
        self.inner.lock().unwrap().can_sign_raw_rsa()
    }
    fn sign_raw_rsa(
        &mut self,
        id: &renewal_client::token::ContainerId,
        block: &[u8],
    ) -> Result<Vec<u8>, renewal_client::token::TokenError> {
        self.raw.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.lock().unwrap().sign_raw_rsa(id, block)
    }
    fn sign(
        &mut self,
        id: &renewal_client::token::ContainerId,
        algorithm: renewal_client::cmc::SignatureAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, renewal_client::token::TokenError> {
        self.pkcs1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.lock().unwrap().sign(id, algorithm, message)
    }
    fn install_certificate(
        &mut self,
        id: &renewal_client::token::ContainerId,
        certificate: &[u8],
    ) -> Result<(), renewal_client::token::TokenError> {
        self.inner
            .lock()
            .unwrap()
            .install_certificate(id, certificate)
    }
    fn delete(
        &mut self,
        id: &renewal_client::token::ContainerId,
    ) -> Result<(), renewal_client::token::TokenError> {
        self.inner.lock().unwrap().delete(id)
    }
    fn supersede(
        &mut self,
        old: &renewal_client::token::ContainerId,
        new: &renewal_client::token::ContainerId,
    ) -> Result<renewal_client::token::ContainerId, renewal_client::token::TokenError> {
        self.inner.lock().unwrap().supersede(old, new)
    }
}

/// An RSA card key authenticates TLS 1.3 with RSA-PSS (the card's raw RSA operation on a
/// block padded by `renew`; the server — sim-ca's rustls, TLS 1.2 and 1.3 — picks 1.3): the
/// TLS signature is the one raw operation, the request's signatures stay PKCS#1 v1.5. Renewed,
/// one PIN prompt.
#[test]
fn an_rsa_card_key_authenticates_tls_1_3_with_pss() {
    use std::sync::{Arc, Mutex, atomic::AtomicUsize, atomic::Ordering};
    let mut world = World::new("", KeyAlgorithm::Rsa2048).unwrap();
    let (raw, pkcs1) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    world.token = Arc::new(Mutex::new(Box::new(CountingToken {
        inner: world.token.clone(),
        raw: Arc::clone(&raw),
        pkcs1: Arc::clone(&pkcs1),
    })));
    let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
    assert_renewed(&world, &outcome);
    assert_eq!(
        raw.load(Ordering::SeqCst),
        1,
        "the TLS 1.3 CertificateVerify"
    );
    assert_eq!(
        pkcs1.load(Ordering::SeqCst),
        3,
        "the PKCS#10 and the two CMS signers"
    );
    assert_eq!(world.pins.count(), 1);
}

/// A card that cannot move or delete keys (a YubiKey 5.4, a plain PIV card): the renewal is
/// refused before anything is generated — the cause says why —, the card as it was.
#[test]
fn a_card_without_move_and_delete_is_not_renewed_and_says_why() {
    use sim_card::state::CardModel;
    for (model, card) in [
        (CardModel::YubiKey54, "a YubiKey with firmware 5.4.3"),
        (CardModel::Piv, "a PIV card without Yubico's extensions"),
    ] {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        world
            .card
            .as_ref()
            .unwrap()
            .lock()
            .unwrap()
            .applet_mut()
            .state_mut()
            .model = model;
        let outcome = run(&world, Mode::FullCmc, 0, None).unwrap();
        let RenewalOutcome::RolledBack { reason } = outcome else {
            panic!("{model:?}: {outcome:?}")
        };
        let RollbackCause::Card { step, detail } = &reason else {
            panic!("{model:?}: {reason:?}")
        };
        assert_eq!(*step, Step::GenerateKey);
        assert!(
            detail.contains(&format!("{card} cannot move or delete keys")),
            "{detail}"
        );
        assert_untouched(&world);
        assert!(world.ca.as_ref().unwrap().audit_trail().is_empty());
    }
}

/// `--template` names the template as the user knows it — its name or its OID — and the
/// renewal is the same whichever: the CA's certificate carries the OID (a v2 template
/// extension), and a name must not read as another template.
#[test]
fn a_template_asked_for_by_name_or_oid_renews() {
    for asked in ["SmartcardUser", renewal_client::sample::SAMPLE_TEMPLATE_OID] {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        let mut service = world.service(Mode::FullCmc).unwrap();
        let mut journal = world.journal().unwrap();
        let mut config = world.config(Mode::FullCmc, 0, None);
        config.template = Some(renewal_client::cmc::microsoft::TemplateRef::from_user_text(
            asked,
        ));
        let outcome = Renewal::new(world.token.clone(), &mut service, &mut journal, config)
            .run()
            .unwrap();
        assert_renewed(&world, &outcome);
    }
}
