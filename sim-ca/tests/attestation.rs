//! A template that renews only attested keys: the request must carry the card's attestation of
//! its new key (draft-ietf-lamps-csr-attestation's PKCS#10 attribute holding a YubiKey PIV
//! attestation), chaining to the configured vendor root and certifying exactly the request's
//! key — refused otherwise, over full CMC and EST simplereenroll, by every decider.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, desk::Desk, mutated};
use der::{Decode, asn1::Any};
use renewal_codec::cmc::{
    Outcome, SoftwareKey,
    attestation::{AttestationError, ID_AA_ATTESTATION, KeyAttestation},
    request::{build_attested_pkcs10, build_renewal_request},
    status::CmcFailInfo,
};
use sim_ca::store::Endpoint;
use sim_ca::{policy::Rejection, service::SimpleReply};
use sim_card::{
    attestation::{Attested, provision},
    crypto::{self, DetRng},
    state::KeyAlgorithm,
};

/// A key generated on a simulated card (device seed `card`), as software, with the card's
/// attestation of it.
fn card_key(card: u64, key_seed: u64) -> (SoftwareKey, KeyAttestation) {
    let device = provision(card).unwrap();
    let mut counter = 0;
    let key = crypto::generate(
        KeyAlgorithm::EccP256,
        &mut DetRng::new(key_seed, &mut counter),
    )
    .unwrap();
    let statement = sim_card::attestation::attest(
        &device,
        &Attested {
            slot: 0x9a,
            key: &key,
            serial: 12_345_678,
            firmware: [5, 7, 1],
            touch_policy: 1,
        },
    )
    .unwrap();
    (
        SoftwareKey::p256_from_scalar(&key.private.0).unwrap(),
        KeyAttestation {
            statement,
            device_certificate: device.certificate,
        },
    )
}

/// The built-in user template, requiring keys attested under `roots` (PEM).
fn scenario(roots: &str) -> String {
    format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nattestation_roots = \"\"\"\n{roots}\"\"\"\n",
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    )
}

fn vendor_scenario() -> String {
    scenario(&sim_card::attestation::vendor_root_pem().unwrap())
}

/// A CMC renewal of `client`'s certificate onto `key`, carrying `attestation`.
fn cmc(client: &Client, key: &SoftwareKey, attestation: Option<&KeyAttestation>) -> Vec<u8> {
    let mut params = Client::params();
    params.attestation = attestation.cloned();
    build_renewal_request(&client.old_cert, &client.old_key, key, &params)
        .unwrap()
        .der
}

fn simple(
    desk: &Desk,
    client: &Client,
    key: &SoftwareKey,
    attestation: Option<&KeyAttestation>,
) -> SimpleReply {
    let p10 = build_attested_pkcs10(&client.old_cert, key, None, attestation).unwrap();
    desk.simple(p10.der(), client.old_cert.der())
}

#[test]
fn an_attested_new_key_is_renewed_over_cmc_and_simplereenroll() {
    for desk in Desk::all(&vendor_scenario()) {
        let client = Client::new(desk.ca());
        let (key, attestation) = card_key(1, 10);
        let (outcome, text, certs) = desk.cmc(
            Endpoint::FullCmc,
            &cmc(&client, &key, Some(&attestation)),
            client.old_cert.der(),
        );
        assert_eq!(outcome, Outcome::Issued, "{}: {text}", desk.name());
        assert_eq!(
            certs[0].value().tbs_certificate().subject_public_key_info(),
            renewal_codec::cmc::Signer::public_key(&key)
        );
        let other = Client::new(desk.ca());
        let (key, attestation) = card_key(2, 20);
        let reply = simple(&desk, &other, &key, Some(&attestation));
        assert!(
            matches!(reply, SimpleReply::Issued(_)),
            "{}: {reply:?}",
            desk.name()
        );
    }
}

#[test]
fn a_request_without_attestation_is_refused() {
    for desk in Desk::all(&vendor_scenario()) {
        let client = Client::new(desk.ca());
        desk.assert_rejected(
            &client,
            &client.request(),
            CmcFailInfo::BadRequest,
            "0x8009481A",
        );
        let reply = simple(&desk, &client, &client.new_key, None);
        assert!(
            matches!(
                reply,
                SimpleReply::Rejected(Rejection::Attestation(AttestationError::Missing))
            ),
            "{}: {reply:?}",
            desk.name()
        );
        assert_eq!(desk.issued(), 0, "{}", desk.name());
    }
}

#[test]
fn another_keys_attestation_does_not_vouch_for_the_new_key() {
    // A genuine attestation, of another key the attacker holds on a real card, attached to a
    // request for a key that was never on a card (exported, software).
    for desk in Desk::all(&vendor_scenario()) {
        let client = Client::new(desk.ca());
        let (_, genuine) = card_key(3, 30);
        desk.assert_rejected(
            &client,
            &cmc(&client, &client.new_key, Some(&genuine)),
            CmcFailInfo::BadRequest,
            "0x80094819",
        );
        let reply = simple(&desk, &client, &client.new_key, Some(&genuine));
        assert!(
            matches!(
                reply,
                SimpleReply::Rejected(Rejection::Attestation(AttestationError::OtherKey))
            ),
            "{}: {reply:?}",
            desk.name()
        );
    }
}

#[test]
fn an_attestation_must_be_signed_by_its_device_certificate_and_chain_to_the_vendor_root() {
    for desk in Desk::all(&vendor_scenario()) {
        let client = Client::new(desk.ca());
        // The statement of card 4 presented with card 5's device certificate: no certificate
        // in the bundle signed it.
        let (key, mut attestation) = card_key(4, 40);
        attestation.device_certificate = card_key(5, 50).1.device_certificate;
        desk.assert_rejected(
            &client,
            &cmc(&client, &key, Some(&attestation)),
            CmcFailInfo::BadRequest,
            "0x80094819",
        );
    }
    // A CA trusting another vendor root refuses the simulated cards' attestations.
    let other_root = {
        let desk = Desk::all("").remove(0);
        der::EncodePem::to_pem(
            desk.ca().authority().root.cert.value(),
            der::pem::LineEnding::LF,
        )
        .unwrap()
    };
    for desk in Desk::all(&scenario(&other_root)) {
        let client = Client::new(desk.ca());
        let (key, attestation) = card_key(6, 60);
        let reply = simple(&desk, &client, &key, Some(&attestation));
        assert!(
            matches!(
                reply,
                SimpleReply::Rejected(Rejection::Attestation(AttestationError::UntrustedRoot))
            ),
            "{}: {reply:?}",
            desk.name()
        );
    }
}

#[test]
fn a_malformed_or_doubled_attestation_attribute_is_refused_unread() {
    for desk in Desk::all(&vendor_scenario()) {
        let client = Client::new(desk.ca());
        let garbage = mutated(&client, &client.new_key, |req| {
            req.info
                .attributes
                .insert(x509_cert::attr::Attribute {
                    oid: ID_AA_ATTESTATION,
                    values: der::asn1::SetOfVec::try_from(vec![
                        Any::from_der(&[0x05, 0x00]).unwrap(),
                    ])
                    .unwrap(),
                })
                .unwrap();
        });
        desk.assert_rejected(&client, &garbage, CmcFailInfo::BadRequest, "0x8009481B");
        let (key, attestation) = card_key(7, 70);
        let attribute = renewal_codec::cmc::attestation::attribute(&attestation).unwrap();
        let doubled = {
            let client = Client::with_keys(desk.ca(), SoftwareKey::generate_p256().unwrap(), key);
            let request = mutated(&client, &client.new_key, |req| {
                req.info.attributes.insert(attribute.clone()).unwrap();
                let mut second = attribute.clone();
                second
                    .values
                    .insert(Any::from_der(&[0x30, 0x00]).unwrap())
                    .unwrap();
                req.info.attributes.insert(second).unwrap();
            });
            (client, request)
        };
        desk.assert_rejected(
            &doubled.0,
            &doubled.1,
            CmcFailInfo::BadRequest,
            "0x8009481B",
        );
    }
}
