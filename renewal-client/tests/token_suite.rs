//! One `Token` test suite, run unchanged against the in-process virtual card and against the
//! same card behind pcscd + vpcd (PC/SC). Error paths that need fault injection run in-process.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use renewal_client::{
    cmc::{SignatureAlgorithm, Signer},
    sample::Sample,
    token::{
        ContainerId, KeyAlgorithm, Token, TokenError,
        pin::{CountingPinSource, StaticPin},
        piv::{ManagementKey, PivToken},
        transport::SimTransport,
    },
};
use sim_card::{
    CardConfig, FaultPlan, PivApplet, Rule, SimCard,
    faults::{CommandKind, Fault},
};

fn id(s: &str) -> ContainerId {
    ContainerId(s.into())
}

type Pins = Arc<CountingPinSource<StaticPin>>;

fn sim_token(
    config: CardConfig,
    faults: FaultPlan,
) -> (PivToken<SimTransport>, Arc<Mutex<SimCard>>, Pins) {
    let card = Arc::new(Mutex::new(SimCard::with_faults(
        PivApplet::new(&config).unwrap(),
        faults,
    )));
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let token = PivToken::new(
        SimTransport::new(Arc::clone(&card)),
        pins.clone(),
        ManagementKey::factory_default(),
    );
    (token, card, pins)
}

#[test]
fn suite_on_the_in_process_card() {
    let (mut token, card, pins) = sim_token(CardConfig::default(), FaultPlan::default());
    common::suite::token_suite(&mut token, &|| pins.count(), Some("9a"));
    // RSA key generation took seconds of virtual time, not of real time.
    assert!(card.lock().unwrap().clock().now_ms >= 6_000);
}

#[cfg(feature = "pcsc")]
#[test]
fn suite_on_the_card_behind_pcscd() {
    use renewal_client::token::transport::PcscTransport;
    use sim_card::harness::{Pcscd, ServedCard};
    if !test_kit::require_tools(&["pcscd"]) {
        return;
    }
    let pcscd = Pcscd::start().unwrap();
    let _card = ServedCard::start(PivApplet::new(&CardConfig::default()).unwrap(), None);
    let transport = common::retry(|| PcscTransport::connect(Some(&pcscd.reader())));
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let mut token = PivToken::new(transport, pins.clone(), ManagementKey::factory_default());
    common::suite::token_suite(&mut token, &|| pins.count(), Some("9a"));
    drop(_card);
    drop(pcscd);
}

/// Dropping the PC/SC transport resets the card: the next program (here, the next session)
/// is asked for the PIN again instead of inheriting the verified state.
#[cfg(feature = "pcsc")]
#[test]
fn a_verified_pin_does_not_outlive_the_pcsc_session() {
    use renewal_client::token::transport::PcscTransport;
    use sim_card::harness::{Pcscd, ServedCard};
    if !test_kit::require_tools(&["pcscd"]) {
        return;
    }
    let pcscd = Pcscd::start().unwrap();
    let _card = ServedCard::start(PivApplet::new(&CardConfig::default()).unwrap(), None);
    let reader = pcscd.reader();
    let session = |pins: Arc<CountingPinSource<StaticPin>>| {
        let transport = common::retry(|| PcscTransport::connect(Some(&reader)));
        PivToken::new(transport, pins, ManagementKey::factory_default())
    };
    let first_pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let mut first = session(first_pins.clone());
    let key = first.generate(KeyAlgorithm::EcP256).unwrap();
    first
        .sign(&key.id, SignatureAlgorithm::ECDSA_SHA256, b"first")
        .unwrap();
    assert_eq!(first_pins.count(), 1);
    drop(first);
    let second_pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let mut second = session(second_pins.clone());
    second
        .sign(&key.id, SignatureAlgorithm::ECDSA_SHA256, b"second")
        .unwrap();
    assert_eq!(
        second_pins.count(),
        1,
        "the PIN stayed verified after disconnect"
    );
    drop(second);
    drop(_card);
    drop(pcscd);
}

#[test]
fn full_card_answers_full() {
    let config = CardConfig {
        capacity: 1,
        ..CardConfig::default()
    };
    let (mut token, _, _) = sim_token(config, FaultPlan::default());
    token.generate(KeyAlgorithm::EcP256).unwrap();
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::Full)
    ));
    assert_eq!(token.containers().unwrap().len(), 1, "nothing half-made");
}

#[test]
fn wrong_pin_then_blocked() {
    let card = Arc::new(Mutex::new(SimCard::new(
        PivApplet::new(&CardConfig::default()).unwrap(),
    )));
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("000000")));
    let mut token = PivToken::new(
        SimTransport::new(Arc::clone(&card)),
        pins.clone(),
        ManagementKey::factory_default(),
    );
    let c = token.generate(KeyAlgorithm::EcP256).unwrap();
    for left in [2u8, 1] {
        match token.sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"m") {
            Err(TokenError::PinIncorrect { retries_left }) => assert_eq!(retries_left, left),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        token.sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"m"),
        Err(TokenError::PinBlocked)
    ));
    // Once blocked the card is not even asked: no further prompt.
    let before = pins.count();
    assert!(matches!(
        token.sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"m"),
        Err(TokenError::PinBlocked)
    ));
    assert_eq!(pins.count(), before);
    assert_eq!(card.lock().unwrap().state().pin.retries_left, 0);
}

#[test]
fn card_removed_before_and_after_a_command() {
    // Pulled before GENERATE reaches the card: no key was made.
    let faults = FaultPlan::new(vec![Rule {
        kind: CommandKind::Generate,
        nth: 1,
        fault: Fault::RemoveBefore,
    }]);
    let (mut token, card, _) = sim_token(CardConfig::default(), faults);
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::Removed(_))
    ));
    card.lock().unwrap().reinsert();
    assert!(token.containers().unwrap().is_empty());

    // Pulled after GENERATE executed: the key exists although the host never saw it. This is
    // the orphan a renewal's recovery must find and delete.
    let faults = FaultPlan::new(vec![Rule {
        kind: CommandKind::Generate,
        nth: 1,
        fault: Fault::RemoveAfter,
    }]);
    let (mut token, card, _) = sim_token(CardConfig::default(), faults);
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::Removed(_))
    ));
    card.lock().unwrap().reinsert();
    let left = token.containers().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, id("82"));
    token.delete(&left[0].id).unwrap();
    assert!(token.containers().unwrap().is_empty());
}

#[test]
fn a_card_error_is_a_typed_error() {
    let faults = FaultPlan::new(vec![Rule {
        kind: CommandKind::PutData,
        nth: 1,
        fault: Fault::Fail(0x6F00),
    }]);
    let (mut token, _, _) = sim_token(CardConfig::default(), faults);
    let c = token.generate(KeyAlgorithm::EcP256).unwrap();
    match token.install_certificate(&c.id, &[0x30, 0x00]) {
        Err(TokenError::Card { sw: 0x6F00, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_management_key_is_refused() {
    let (_, card, pins) = sim_token(CardConfig::default(), FaultPlan::default());
    let mut key = renewal_client::token::piv::FACTORY_KEY.to_vec();
    key[0] ^= 0x80;
    let bad = ManagementKey::Known {
        key: zeroize::Zeroizing::new(key),
        algorithm: None,
    };
    let mut token = PivToken::new(SimTransport::new(card), pins, bad);
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::ManagementKeyRejected)
    ));
}

/// Management keys as cards ship them: the client learns the algorithm from the card (GET
/// METADATA) and authenticates with a key of any of the four; told the wrong algorithm, it is
/// refused; told a key of the wrong length for the card's algorithm, it says so.
#[test]
fn every_management_key_algorithm_as_shipped() {
    use sim_card::state::ManagementAlgorithm as CardAlgorithm;
    for (algorithm, key_len, other) in [
        (CardAlgorithm::Tdes, 24, "aes192"),
        (CardAlgorithm::Aes128, 16, "aes192"),
        (CardAlgorithm::Aes192, 24, "3des"),
        (CardAlgorithm::Aes256, 32, "aes192"),
    ] {
        let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let card_with = || {
            sim_token(
                CardConfig {
                    management_key: (algorithm, key.clone()),
                    ..CardConfig::default()
                },
                FaultPlan::default(),
            )
        };
        let (_, card, pins) = card_with();
        let mut token = PivToken::new(
            SimTransport::new(card),
            pins,
            ManagementKey::parse(&hex).unwrap(),
        );
        let c = token.generate(KeyAlgorithm::EcP256).unwrap();
        assert_eq!(c.id, id("82"), "{algorithm:?}");
        if key_len == 24 {
            let (_, card, pins) = card_with();
            let told = ManagementKey::parse(&format!("{other}:{hex}")).unwrap();
            let mut token = PivToken::new(SimTransport::new(card), pins, told);
            assert!(
                matches!(
                    token.generate(KeyAlgorithm::EcP256),
                    Err(TokenError::ManagementKeyRejected)
                ),
                "{algorithm:?} told {other}"
            );
        }
        let (_, card, pins) = card_with();
        let wrong_length =
            ManagementKey::parse(&"01".repeat(if key_len == 32 { 16 } else { 32 })).unwrap();
        let mut token = PivToken::new(SimTransport::new(card), pins, wrong_length);
        assert!(
            matches!(
                token.generate(KeyAlgorithm::EcP256),
                Err(TokenError::ManagementKeyLength { .. })
            ),
            "{algorithm:?}"
        );
    }
}

/// The factory key: AES-192 on a YubiKey 5.7 (the default card), 3DES before — the same
/// bytes; the client asks the card which.
#[test]
fn the_factory_key_works_as_aes192_and_as_3des() {
    use sim_card::state::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm as CardAlgorithm};
    for algorithm in [CardAlgorithm::Aes192, CardAlgorithm::Tdes] {
        let (mut token, _, _) = sim_token(
            CardConfig {
                management_key: (algorithm, DEFAULT_MANAGEMENT_KEY.to_vec()),
                ..CardConfig::default()
            },
            FaultPlan::default(),
        );
        token.generate(KeyAlgorithm::EcP256).unwrap();
        let (_, card, pins) = sim_token(
            CardConfig {
                management_key: (algorithm, DEFAULT_MANAGEMENT_KEY.to_vec()),
                ..CardConfig::default()
            },
            FaultPlan::default(),
        );
        let mut token = PivToken::new(SimTransport::new(card), pins, ManagementKey::Auto);
        token.generate(KeyAlgorithm::EcP256).unwrap();
    }
}

/// A management key stored on the card under the PIN (ykman's `--protect`): found by itself
/// (`auto`, the default) or asked for (`pin-protected`), read after the one PIN verification a
/// renewal does anyway — generating and signing cost one prompt, as with a known key.
#[test]
fn a_pin_protected_management_key_costs_no_second_prompt() {
    let key: Vec<u8> = (0..24).map(|i| 0xA0 ^ i as u8).collect();
    let protected_card = || {
        let config = CardConfig {
            management_key: (sim_card::state::ManagementAlgorithm::Aes192, key.clone()),
            ..CardConfig::default()
        };
        let (_, card, pins) = sim_token(config, FaultPlan::default());
        card.lock().unwrap().applet_mut().protect_management_key();
        (card, pins)
    };
    for how in [ManagementKey::Auto, ManagementKey::PinProtected] {
        let label = format!("{how:?}");
        let (card, pins) = protected_card();
        let mut token = PivToken::new(SimTransport::new(card), pins.clone(), how);
        let c = token.generate(KeyAlgorithm::EcP256).unwrap();
        let signature = token
            .sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"renewal")
            .unwrap();
        assert!(!signature.is_empty());
        assert_eq!(pins.count(), 1, "{label}: one PIN prompt in all");
    }
    // The factory key does not open a card whose key is protected.
    let (card, pins) = protected_card();
    let mut token = PivToken::new(
        SimTransport::new(card),
        pins,
        ManagementKey::factory_default(),
    );
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::ManagementKeyRejected)
    ));
    // Asked for a protected key a card does not hold: said so, nothing done.
    let (_, card, pins) = sim_token(CardConfig::default(), FaultPlan::default());
    let mut token = PivToken::new(SimTransport::new(card), pins, ManagementKey::PinProtected);
    assert!(matches!(
        token.generate(KeyAlgorithm::EcP256),
        Err(TokenError::NoProtectedManagementKey)
    ));
}

/// The token signs a CMC renewal request: the card is a `cmc::Signer`-compatible key source.
#[test]
fn card_keys_sign_a_renewal_request_that_verifies() {
    let (mut token, _, pins) = sim_token(CardConfig::default(), FaultPlan::default());
    let ca = Sample::deterministic().unwrap();
    let old = token.generate(KeyAlgorithm::EcP256).unwrap();
    let old_cert = renewal_client::sample::issue_user_certificate(
        &ca.ca_key,
        &ca.ca_cert,
        old.public_key.as_ref().unwrap(),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let new = token.generate(KeyAlgorithm::EcP256).unwrap();
    let token = std::cell::RefCell::new(token);
    struct CardKey<'a, T: Token> {
        token: &'a std::cell::RefCell<T>,
        id: ContainerId,
        spki: spki::SubjectPublicKeyInfoOwned,
    }
    impl<T: Token> Signer for CardKey<'_, T> {
        fn public_key(&self) -> &spki::SubjectPublicKeyInfoOwned {
            &self.spki
        }
        fn algorithm(&self) -> SignatureAlgorithm {
            SignatureAlgorithm::ECDSA_SHA256
        }
        fn sign(&self, m: &[u8]) -> Result<Vec<u8>, renewal_client::cmc::SignError> {
            self.token
                .borrow_mut()
                .sign(&self.id, SignatureAlgorithm::ECDSA_SHA256, m)
                .map_err(|e| renewal_client::cmc::SignError::Backend {
                    backend: "PIV card",
                    detail: e.to_string(),
                })
        }
    }
    let old_key = CardKey {
        token: &token,
        id: old.id.clone(),
        spki: old.public_key.clone().unwrap(),
    };
    let new_key = CardKey {
        token: &token,
        id: new.id.clone(),
        spki: new.public_key.clone().unwrap(),
    };
    let built = renewal_client::cmc::build_renewal_request(
        &old_cert,
        &old_key,
        &new_key,
        &renewal_client::cmc::RenewalParams::random().unwrap(),
    )
    .unwrap();
    let facts = renewal_client::cmc::parse_request(&built.der, &Default::default())
        .unwrap()
        .verify()
        .unwrap();
    assert!(facts.old_key_signed);
    assert_eq!(pins.count(), 1);
}

/// What OpenSC's PIV driver does through PKCS#11, as a ledger: each operation of the suite
/// ends Pass or KnownUnsupported(reason); an operation that behaves otherwise fails the test
/// (a ledger entry that starts passing must be updated, not silently ignored).
#[cfg(all(feature = "pkcs11", feature = "pcsc"))]
#[test]
fn opensc_pkcs11_on_the_card_behind_pcscd_ledger() {
    use renewal_client::{
        cmc::crypto::verify,
        token::{ContainerId, pkcs11::Pkcs11Token},
    };
    use sim_card::harness::{Pcscd, ServedCard};
    const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
    if !test_kit::require_tools(&["pcscd"]) {
        return;
    }
    if !std::path::Path::new(OPENSC).exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "OpenSC is required under CI=true"
        );
        eprintln!("SKIP: {OPENSC} not installed");
        return;
    }
    // A card with a P-256 key and certificate in 9A, provisioned through our PIV backend.
    let (mut piv, card, _) = sim_token(CardConfig::default(), FaultPlan::default());
    let ca = Sample::deterministic().unwrap();
    let first = piv.generate(KeyAlgorithm::EcP256).unwrap();
    let cert = common::suite::certify(&ca, first.public_key.as_ref().unwrap(), "opensc");
    piv.install_certificate(&first.id, cert.der()).unwrap();
    piv.supersede(&ContainerId("9a".into()), &first.id).unwrap();
    let state = card.lock().unwrap().state().clone();
    let pcscd = Pcscd::start().unwrap();
    let _served = ServedCard::start(PivApplet::from_state(state), None);
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let mut token =
        common::retry(|| Pkcs11Token::open(std::path::Path::new(OPENSC), None, pins.clone()));

    #[derive(Debug, PartialEq)]
    enum Verdict {
        Pass,
        KnownUnsupported(&'static str),
    }
    let mut ledger: Vec<(&str, Verdict)> = Vec::new();

    let info = token.info().unwrap();
    assert!(info.description.contains("PKCS#11"), "{info:?}");
    ledger.push(("info", Verdict::Pass));

    let containers = token.containers().unwrap();
    let auth = containers
        .iter()
        .find(|c| c.certificate.as_deref() == Some(cert.der()))
        .unwrap_or_else(|| panic!("9A's certificate not listed: {containers:?}"));
    assert_eq!(auth.public_key.as_ref(), first.public_key.as_ref());
    ledger.push(("containers", Verdict::Pass));

    let message = b"signed through OpenSC";
    let sig = token
        .sign(&auth.id, SignatureAlgorithm::ECDSA_SHA256, message)
        .unwrap();
    verify(
        first.public_key.as_ref().unwrap(),
        SignatureAlgorithm::ECDSA_SHA256,
        message,
        &sig,
    )
    .unwrap();
    ledger.push(("sign (ECDSA P-256)", Verdict::Pass));

    match token.generate(KeyAlgorithm::EcP256) {
        Err(TokenError::Unsupported(_) | TokenError::Backend { .. }) => ledger.push((
            "generate",
            Verdict::KnownUnsupported("OpenSC's PIV emulation has no C_GenerateKeyPair (keys are generated with APDUs: our PIV backend or yubico-piv-tool)"),
        )),
        other => panic!("ledger says generate is unsupported through OpenSC PIV, got {other:?}"),
    }
    match token.install_certificate(&auth.id, cert.der()) {
        Err(TokenError::Unsupported(_) | TokenError::Backend { .. }) => ledger.push((
            "install_certificate",
            Verdict::KnownUnsupported("OpenSC's PIV emulation is read-only for objects (writing needs the management key, which PKCS#11 has no way to present)"),
        )),
        other => panic!("ledger says install is unsupported through OpenSC PIV, got {other:?}"),
    }
    match token.delete(&auth.id) {
        Err(TokenError::Unsupported(_) | TokenError::Backend { .. } | TokenError::DeleteNotEffective(_)) => ledger.push((
            "delete",
            Verdict::KnownUnsupported("OpenSC's PIV emulation cannot destroy objects; a reported success would still be caught by the re-check"),
        )),
        other => panic!("ledger says delete is unsupported through OpenSC PIV, got {other:?}"),
    }
    assert_eq!(
        token.containers().unwrap().len(),
        containers.len(),
        "nothing changed on the card"
    );
    assert_eq!(pins.count(), 1, "one login for the session");
    for (operation, verdict) in &ledger {
        println!("OpenSC PKCS#11 on the virtual card: {operation:22} {verdict:?}");
    }
    assert_eq!(
        ledger.iter().filter(|(_, v)| *v == Verdict::Pass).count(),
        3
    );
    drop(_served);
    drop(pcscd);
}

/// A key whose PIN policy is "always" (a YubiKey's 9C): every signature needs a fresh VERIFY,
/// so each one costs a prompt — the client asks again instead of failing, and the count says
/// what it cost. A "once" key signs twice on one prompt.
#[test]
fn a_pin_always_key_costs_a_prompt_per_signature() {
    use sim_card::state::PinPolicy;
    let (mut token, card, pins) = sim_token(CardConfig::default(), FaultPlan::default());
    let c = token.generate(KeyAlgorithm::EcP256).unwrap();
    for _ in 0..2 {
        token
            .sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"once")
            .unwrap();
    }
    assert_eq!(
        pins.count(),
        1,
        "policy once: one prompt for two signatures"
    );
    card.lock()
        .unwrap()
        .applet_mut()
        .state_mut()
        .keys
        .get_mut("82")
        .unwrap()
        .pin_policy = PinPolicy::Always;
    for n in 2..=3 {
        token
            .sign(&c.id, SignatureAlgorithm::ECDSA_SHA256, b"always")
            .unwrap();
        assert_eq!(pins.count(), n, "policy always: a prompt per signature");
    }
}

/// A renewal's new key is made like the key it replaces: a PIN-always key's successor needs
/// the PIN before every use too (a renewal must not weaken the card's policy).
#[test]
fn a_new_key_is_made_with_the_pin_policy_of_the_key_it_replaces() {
    use sim_card::state::PinPolicy;
    let (mut token, card, _) = sim_token(CardConfig::default(), FaultPlan::default());
    let old = token.generate(KeyAlgorithm::EcP256).unwrap();
    let policy_of = |slot: &str| card.lock().unwrap().state().keys[slot].pin_policy;
    let like = token.generate_like(KeyAlgorithm::EcP256, &old.id).unwrap();
    assert_eq!(policy_of(&like.id.0), PinPolicy::Once);
    card.lock()
        .unwrap()
        .applet_mut()
        .state_mut()
        .keys
        .get_mut(&old.id.0)
        .unwrap()
        .pin_policy = PinPolicy::Always;
    // The card changed behind this session's back (a policy is set when a key is made): what
    // the next session (the next `renew`) sees.
    token.reset_session();
    let like = token.generate_like(KeyAlgorithm::EcP256, &old.id).unwrap();
    assert_eq!(policy_of(&like.id.0), PinPolicy::Always);
}

/// TLS 1.3 allows only RSA-PSS: the block is padded on the host (EMSA-PSS, SHA-256, 32-byte
/// salt) and the card does the raw RSA operation on it, as a real PIV card does. aws-lc-rs —
/// an implementation we did not write — verifies the result as `rsa_pss_rsae_sha256`.
#[test]
fn a_piv_card_signs_rsa_pss_through_its_raw_rsa_operation() {
    use renewal_client::cmc::crypto::emsa_pss_sha256;
    let (mut token, _card, _) = sim_token(CardConfig::default(), FaultPlan::default());
    assert!(token.can_sign_raw_rsa());
    let key = token.generate(KeyAlgorithm::Rsa2048).unwrap();
    let spki = key.public_key.unwrap();
    let message = b"TLS 1.3 CertificateVerify content";
    let block = emsa_pss_sha256(message, 2048, &[7u8; 32]).unwrap();
    assert_eq!(block.len(), 256);
    assert_eq!(block.last(), Some(&0xBC));
    let signature = token.sign_raw_rsa(&key.id, &block).unwrap();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
        spki.subject_public_key.raw_bytes(),
    )
    .verify(message, &signature)
    .unwrap();
    // A block of another length, or an EC key, is refused before the card is asked.
    assert!(token.sign_raw_rsa(&key.id, &block[1..]).is_err());
    let ec = token.generate(KeyAlgorithm::EcP256).unwrap();
    assert!(token.sign_raw_rsa(&ec.id, &block).is_err());
}

/// A certificate larger than the card's object (3,052 bytes on a YubiKey) is refused by the
/// card and named as such — not "the card is full" — and nothing is stored.
#[test]
fn a_certificate_too_large_for_the_card_is_named_so() {
    let (mut token, _card, _) = sim_token(CardConfig::default(), FaultPlan::default());
    let key = token.generate(KeyAlgorithm::EcP256).unwrap();
    let oversized = vec![0x30; 4800];
    let err = token.install_certificate(&key.id, &oversized).unwrap_err();
    assert!(
        matches!(err, TokenError::ObjectTooLarge { bytes } if bytes > 4800),
        "{err:?}"
    );
    let listed = token.containers().unwrap();
    assert!(listed.iter().all(|c| c.certificate.is_none()), "{listed:?}");
}
