//! The fault plan (first matching rule wins, counted per command kind, deterministic), the
//! virtual clock, and card state surviving a save/load (a process restart).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use sim_card::{
    CardConfig, CardRemoved, FaultPlan, PivApplet, Rule, SimCard,
    faults::{CommandKind, Fault},
    state::CardState,
};

const SELECT: &[u8] = &[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
const VERIFY_STATUS: &[u8] = &[0x00, 0x20, 0x00, 0x80];
const VERIFY_PIN: &[u8] = &[
    0x00, 0x20, 0x00, 0x80, 0x08, b'1', b'2', b'3', b'4', b'5', b'6', 0xFF, 0xFF,
];

fn sw(resp: &[u8]) -> u16 {
    u16::from_be_bytes([resp[resp.len() - 2], resp[resp.len() - 1]])
}

fn card(rules: Vec<Rule>) -> SimCard {
    SimCard::with_faults(
        PivApplet::new(&CardConfig::default()).unwrap(),
        FaultPlan::new(rules),
    )
}

#[test]
fn nth_command_of_a_kind_fails_with_the_chosen_status() {
    let mut c = card(vec![Rule {
        kind: CommandKind::Verify,
        nth: 2,
        fault: Fault::Fail(0x6F00),
    }]);
    assert_eq!(sw(&c.transmit(SELECT).unwrap()), 0x9000);
    assert_eq!(sw(&c.transmit(VERIFY_STATUS).unwrap()), 0x63C3);
    assert_eq!(
        sw(&c.transmit(VERIFY_PIN).unwrap()),
        0x6F00,
        "second VERIFY fails"
    );
    assert_eq!(
        sw(&c.transmit(VERIFY_STATUS).unwrap()),
        0x63C3,
        "and was not executed"
    );
    assert_eq!(sw(&c.transmit(VERIFY_PIN).unwrap()), 0x9000);
}

#[test]
fn first_matching_rule_wins() {
    let mut c = card(vec![
        Rule {
            kind: CommandKind::Any,
            nth: 2,
            fault: Fault::Fail(0x6A80),
        },
        Rule {
            kind: CommandKind::Verify,
            nth: 1,
            fault: Fault::Fail(0x6F00),
        },
    ]);
    c.transmit(SELECT).unwrap();
    // Second command overall and first VERIFY: the earlier rule decides.
    assert_eq!(sw(&c.transmit(VERIFY_STATUS).unwrap()), 0x6A80);
}

#[test]
fn removal_before_and_after_execution() {
    let mut c = card(vec![Rule {
        kind: CommandKind::Verify,
        nth: 1,
        fault: Fault::RemoveBefore,
    }]);
    c.transmit(SELECT).unwrap();
    assert_eq!(c.transmit(VERIFY_PIN), Err(CardRemoved));
    assert_eq!(
        c.transmit(SELECT),
        Err(CardRemoved),
        "stays out until reinserted"
    );
    c.reinsert();
    c.transmit(SELECT).unwrap();
    assert_eq!(
        sw(&c.transmit(VERIFY_STATUS).unwrap()),
        0x63C3,
        "never verified"
    );

    let mut c = card(vec![Rule {
        kind: CommandKind::Verify,
        nth: 1,
        fault: Fault::RemoveAfter,
    }]);
    c.transmit(SELECT).unwrap();
    let wrong = [
        0x00, 0x20, 0x00, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', 0xFF, 0xFF,
    ];
    assert_eq!(c.transmit(&wrong), Err(CardRemoved));
    c.reinsert();
    c.transmit(SELECT).unwrap();
    // The wrong PIN was counted although the host never saw the answer.
    assert_eq!(sw(&c.transmit(VERIFY_STATUS).unwrap()), 0x63C2);
    assert_eq!(c.log().last().unwrap().sw, Some(0x63C2));
}

#[test]
fn delays_advance_virtual_time_only() {
    let mut c = card(vec![Rule {
        kind: CommandKind::Select,
        nth: 1,
        fault: Fault::Delay(30_000),
    }]);
    let started = std::time::Instant::now();
    c.transmit(SELECT).unwrap();
    assert!(c.clock().now_ms >= 30_000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "no real sleeping"
    );
}

#[test]
fn a_blocked_pin_is_a_state_not_a_fault() {
    let mut c = card(vec![]);
    c.applet_mut().state_mut().pin.retries_left = 0;
    c.transmit(SELECT).unwrap();
    assert_eq!(sw(&c.transmit(VERIFY_PIN).unwrap()), 0x6983);
}

#[test]
fn same_seed_same_card_and_keys() {
    let generate = [
        0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    let run = |seed| {
        let mut c = SimCard::new(
            PivApplet::new(&CardConfig {
                seed,
                ..CardConfig::default()
            })
            .unwrap(),
        );
        c.transmit(SELECT).unwrap();
        authenticate(&mut c);
        let public = c.transmit(&generate).unwrap();
        (c.state().serial, public)
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).1, run(8).1);
}

fn authenticate(c: &mut SimCard) {
    use sim_card::state::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm};
    // The default card's key: the well-known bytes as AES-192 (16-byte blocks).
    let r = c
        .transmit(&[0x00, 0x87, 0x0A, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00])
        .unwrap();
    let witness = &r[4..20];
    let plain = sim_card::crypto::mgmt_decrypt(
        ManagementAlgorithm::Aes192,
        &DEFAULT_MANAGEMENT_KEY,
        witness,
    )
    .unwrap();
    let mut apdu = vec![0x00, 0x87, 0x0A, 0x9B, 0x14, 0x7C, 0x12, 0x80, 0x10];
    apdu.extend(plain);
    assert_eq!(sw(&c.transmit(&apdu).unwrap()), 0x9000);
}

#[test]
fn state_survives_save_and_load() {
    let dir = std::env::temp_dir().join(format!("sim-card-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.json");
    let mut c = card(vec![]);
    c.transmit(SELECT).unwrap();
    authenticate(&mut c);
    let generate = [
        0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    c.transmit(&generate).unwrap();
    let wrong = [
        0x00, 0x20, 0x00, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', 0xFF, 0xFF,
    ];
    c.transmit(&wrong).unwrap();
    c.state().save(&path).unwrap();

    let loaded = CardState::load(&path).unwrap();
    assert_eq!(loaded.serial, c.state().serial);
    assert_eq!(loaded.pin.retries_left, 2);
    assert_eq!(loaded.keys.keys().collect::<Vec<_>>(), vec!["9a"]);
    assert_eq!(loaded.keys["9a"].private.0, c.state().keys["9a"].private.0);
    // The reloaded card continues the RNG where it stopped: its next key differs.
    let mut again = SimCard::new(PivApplet::from_state(loaded));
    again.transmit(SELECT).unwrap();
    authenticate(&mut again);
    let g9c = [
        0x00, 0x47, 0x00, 0x9C, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    again.transmit(&g9c).unwrap();
    assert_ne!(
        again.state().keys["9c"].private.0,
        again.state().keys["9a"].private.0
    );
    // The file holds no debug-printable secret in memory dumps of the state type.
    assert!(!format!("{:?}", again.state().pin).contains("31323334"));
    let garbage = dir.join("bad.json");
    std::fs::write(&garbage, b"{ not json").unwrap();
    assert!(
        CardState::load(&garbage)
            .unwrap_err()
            .to_string()
            .contains("is not valid")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A card model without some algorithms answers GENERATE for them with 6A81 (function not
/// supported) and keeps the list across a save/load; a state saved before the list existed
/// loads with every algorithm.
#[test]
fn a_card_without_an_algorithm_refuses_to_generate_it() {
    use sim_card::state::KeyAlgorithm;
    let config = CardConfig {
        algorithms: vec![KeyAlgorithm::EccP256, KeyAlgorithm::Rsa2048],
        ..CardConfig::default()
    };
    let mut c = SimCard::new(PivApplet::new(&config).unwrap());
    c.transmit(SELECT).unwrap();
    authenticate(&mut c);
    let generate = |alg: u8| {
        [
            0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, alg, 0x00,
        ]
    };
    assert_eq!(sw(&c.transmit(&generate(0x14)).unwrap()), 0x6A81, "P-384");
    assert_eq!(
        sw(&c.transmit(&generate(0x16)).unwrap()),
        0x6A81,
        "RSA-4096"
    );
    assert_eq!(sw(&c.transmit(&generate(0x11)).unwrap()), 0x9000, "P-256");

    let dir = std::env::temp_dir().join(format!("sim-card-algs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("card.json");
    c.state().save(&path).unwrap();
    assert_eq!(
        CardState::load(&path).unwrap().algorithms,
        vec![KeyAlgorithm::EccP256, KeyAlgorithm::Rsa2048]
    );
    // Without the field (a file from before it existed): every algorithm.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("algorithms");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(
        CardState::load(&path).unwrap().algorithms,
        KeyAlgorithm::ALL.to_vec()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A YubiKey's PIV reset (PIN and PUK blocked first) clears the application — keys, objects,
/// PIN, PUK, a changed management key — but the serial is the device's and stays.
#[test]
fn a_reset_clears_the_application_and_keeps_the_serial() {
    let mut c = card(vec![]);
    c.transmit(SELECT).unwrap();
    authenticate(&mut c);
    let generate = [
        0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    assert_eq!(sw(&c.transmit(&generate).unwrap()), 0x9000);
    let serial = c.state().serial;
    let wrong_pin = [
        0x00, 0x20, 0x00, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', 0xFF, 0xFF,
    ];
    let mut wrong_puk = vec![0x00, 0x2C, 0x00, 0x80, 0x10];
    wrong_puk.extend(b"00000000123456\xFF\xFF");
    let reset = [0x00, 0xFB, 0x00, 0x00];
    assert_eq!(
        sw(&c.transmit(&reset).unwrap()),
        0x6985,
        "not while the PIN works"
    );
    for _ in 0..3 {
        c.transmit(&wrong_pin).unwrap();
        c.transmit(&wrong_puk).unwrap();
    }
    assert_eq!(sw(&c.transmit(&reset).unwrap()), 0x9000);
    assert_eq!(c.state().serial, serial, "the serial survives a reset");
    assert!(c.state().keys.is_empty());
    assert_eq!(sw(&c.transmit(VERIFY_PIN).unwrap()), 0x9000);
    // The factory management key again (AES-192, a YubiKey 5.7's).
    authenticate(&mut c);
}

/// Sends `apdu` and collects a chained answer (61xx, GET RESPONSE) into data + final SW.
fn transmit_all(c: &mut SimCard, apdu: &[u8]) -> (Vec<u8>, u16) {
    let mut r = c.transmit(apdu).unwrap();
    let mut data = Vec::new();
    loop {
        let status = sw(&r);
        data.extend_from_slice(&r[..r.len() - 2]);
        if status >> 8 != 0x61 {
            return (data, status);
        }
        r = c.transmit(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
    }
}

#[test]
fn attestation_is_for_generated_keys_only_and_survives_a_reset() {
    use der::{Decode, Encode};
    use x509_cert::Certificate;
    let mut c = card(vec![]);
    c.transmit(SELECT).unwrap();
    let attest = |slot: u8| [0x00, 0xF9, slot, 0x00, 0x00];
    assert_eq!(transmit_all(&mut c, &attest(0x9A)).1, 0x6A88, "empty slot");
    assert_eq!(
        transmit_all(&mut c, &attest(0xF9)).1,
        0x6A86,
        "not a key slot"
    );
    authenticate(&mut c);
    let generate = [
        0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, 0x11, 0x00,
    ];
    let (public, status) = transmit_all(&mut c, &generate);
    assert_eq!(status, 0x9000);
    let (der, status) = transmit_all(&mut c, &attest(0x9A));
    assert_eq!(status, 0x9000);
    let cert = Certificate::from_der(&der).unwrap();
    // The attested key is the generated one: its EC point is in GENERATE's answer (`86`).
    let point = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    assert!(
        public.windows(point.len()).any(|w| w == point.as_slice()),
        "the attestation certifies another key"
    );
    // Its issuer is the device certificate in 5FFF01 (readable without the PIN).
    let (object, status) = transmit_all(
        &mut c,
        &[
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xFF, 0x01, 0x00,
        ],
    );
    assert_eq!(status, 0x9000);
    let content = sim_card::tlv::find(&object, &[0x53]).unwrap();
    let device = Certificate::from_der(sim_card::tlv::find(content, &[0x70]).unwrap()).unwrap();
    assert_eq!(
        cert.tbs_certificate().issuer().to_der().unwrap(),
        device.tbs_certificate().subject().to_der().unwrap()
    );
    // An imported key has no attestation: the card cannot vouch it never left it.
    let mut import = vec![0x00, 0xFE, 0x11, 0x9D, 0x22, 0x06, 0x20];
    import.extend([0x11; 32]);
    assert_eq!(transmit_all(&mut c, &import).1, 0x9000);
    assert_eq!(transmit_all(&mut c, &attest(0x9D)).1, 0x6A80);
    // A factory reset clears the keys, not the device's attestation key.
    let device_key = c.state().attestation_key.clone().unwrap();
    let wrong_pin = [
        0x00, 0x20, 0x00, 0x80, 0x08, b'0', b'0', b'0', b'0', b'0', b'0', 0xFF, 0xFF,
    ];
    let mut wrong_puk = vec![0x00, 0x2C, 0x00, 0x80, 0x10];
    wrong_puk.extend(b"00000000123456\xFF\xFF");
    for _ in 0..3 {
        c.transmit(&wrong_pin).unwrap();
        c.transmit(&wrong_puk).unwrap();
    }
    assert_eq!(sw(&c.transmit(&[0x00, 0xFB, 0x00, 0x00]).unwrap()), 0x9000);
    assert_eq!(
        c.state().attestation_key.as_ref().unwrap().private.0,
        device_key.private.0
    );
    authenticate(&mut c);
    assert_eq!(transmit_all(&mut c, &generate).1, 0x9000);
    assert_eq!(transmit_all(&mut c, &attest(0x9A)).1, 0x9000);
}

/// 3DES management-key authentication with the well-known key (a 5.4's or a PIV card's).
fn authenticate_3des(c: &mut SimCard) {
    use sim_card::state::{DEFAULT_MANAGEMENT_KEY, ManagementAlgorithm};
    let r = c
        .transmit(&[0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02, 0x80, 0x00, 0x00])
        .unwrap();
    let witness = &r[4..12];
    let plain =
        sim_card::crypto::mgmt_decrypt(ManagementAlgorithm::Tdes, &DEFAULT_MANAGEMENT_KEY, witness)
            .unwrap();
    let mut apdu = vec![0x00, 0x87, 0x03, 0x9B, 0x0C, 0x7C, 0x0A, 0x80, 0x08];
    apdu.extend(plain);
    assert_eq!(sw(&c.transmit(&apdu).unwrap()), 0x9000);
}

#[test]
fn each_card_model_answers_as_that_card_does() {
    use sim_card::state::CardModel;
    let generate = |alg: u8| {
        [
            0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC, 0x03, 0x80, 0x01, alg, 0x00,
        ]
    };
    let get_version = [0x00, 0xFD, 0x00, 0x00, 0x00];
    let move_key = [0x00, 0xF6, 0x9C, 0x9A];
    let metadata = [0x00, 0xF7, 0x00, 0x9A, 0x00];
    let card = |model| SimCard::new(PivApplet::new(&CardConfig::of_model(model)).unwrap());

    // A YubiKey 5.4: its firmware, 3DES factory key, no MOVE KEY, no RSA-3072.
    let mut c = card(CardModel::YubiKey54);
    c.transmit(SELECT).unwrap();
    assert_eq!(c.transmit(&get_version).unwrap(), [5, 4, 3, 0x90, 0x00]);
    authenticate_3des(&mut c);
    assert_eq!(sw(&c.transmit(&generate(0x11)).unwrap()), 0x9000);
    assert_eq!(sw(&c.transmit(&generate(0x05)).unwrap()), 0x6A81);
    assert_eq!(sw(&c.transmit(&metadata).unwrap()), 0x9000);
    assert_eq!(sw(&c.transmit(&move_key).unwrap()), 0x6D00);

    // A plain PIV card: none of Yubico's instructions, no key policies in GENERATE.
    let mut c = card(CardModel::Piv);
    c.transmit(SELECT).unwrap();
    for apdu in [
        &get_version[..],
        &[0x00, 0xF8, 0x00, 0x00, 0x00],
        &metadata,
        &[0x00, 0xF9, 0x9A, 0x00, 0x00],
        &move_key,
    ] {
        assert_eq!(sw(&c.transmit(apdu).unwrap()), 0x6D00, "{apdu:02X?}");
    }
    authenticate_3des(&mut c);
    let with_policy = [
        0x00, 0x47, 0x00, 0x9A, 0x08, 0xAC, 0x06, 0x80, 0x01, 0x11, 0xAA, 0x01, 0x03, 0x00,
    ];
    assert_eq!(sw(&c.transmit(&with_policy).unwrap()), 0x6A80);
    assert_eq!(sw(&c.transmit(&generate(0x11)).unwrap()), 0x9000);
    assert!(c.state().attestation_key.is_none());

    // The default is a YubiKey 5.7.
    let mut c = card(CardModel::YubiKey57);
    c.transmit(SELECT).unwrap();
    assert_eq!(c.transmit(&get_version).unwrap(), [5, 7, 1, 0x90, 0x00]);
}

/// A YubiKey stores objects up to 3,052 bytes: a certificate that makes PUT DATA's data larger
/// is refused with 6A84 (not enough memory) and nothing is stored; one that fits is.
#[test]
fn an_object_over_3052_bytes_does_not_fit() {
    let mut c = card(vec![]);
    c.transmit(SELECT).unwrap();
    authenticate(&mut c);
    let put = |len: usize| {
        // 5C 03 5FC105, 53 82 LL LL { 70 82 LL LL cert }
        let cert = vec![0x30; len];
        let mut inner = vec![0x70, 0x82];
        inner.extend((len as u16).to_be_bytes());
        inner.extend(cert);
        let mut data = vec![0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82];
        data.extend((inner.len() as u16).to_be_bytes());
        data.extend(inner);
        data
    };
    let send = |c: &mut SimCard, data: Vec<u8>| {
        let chunks: Vec<&[u8]> = data.chunks(255).collect();
        let mut last = 0;
        for (i, chunk) in chunks.iter().enumerate() {
            let cla = if i + 1 < chunks.len() { 0x10 } else { 0x00 };
            let mut apdu = vec![cla, 0xDB, 0x3F, 0xFF, chunk.len() as u8];
            apdu.extend_from_slice(chunk);
            last = sw(&c.transmit(&apdu).unwrap());
        }
        last
    };
    // 3,052 bytes of data field in all: 9 of tags and lengths, 4 of 70's header.
    assert_eq!(send(&mut c, put(3052 - 13)), 0x9000);
    assert_eq!(send(&mut c, put(3052 - 12)), 0x6A84);
    assert_eq!(
        c.state().objects["5fc105"].0.len(),
        3052 - 9,
        "the one that fit is what the card holds"
    );
}
