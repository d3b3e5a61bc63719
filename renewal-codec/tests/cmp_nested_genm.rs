//! The codec's RA and general-message pieces: a `nested` message around a user's kur (RFC 9483
//! §5.2.2.1) keeps the kur byte for byte, so both protections verify; `renew inspect` decodes
//! one level of nesting and no more; malformed nesting is an error, not a panic. A `genm`
//! asking `caCerts` and the `genp` carrying them (RFC 9483 §4.3.1) round-trip.

#![allow(clippy::unwrap_used)]

use renewal_codec::{
    cmc::Limits,
    cmp::{
        CmpError, ID_IT_CA_CERTS, InfoTypeAndValue, PkiBody, PkiMessage,
        answer::{Answer, Responder, respond},
        build::{KeyUpdate, Nesting, general_message, key_update_request, nest},
    },
    inspect::inspect,
    sample::{Sample, fixed_now},
};
use x509_cert::ext::pkix::name::GeneralName;

fn kur(sample: &Sample) -> Vec<u8> {
    let params = KeyUpdate {
        old: &sample.old_cert,
        recipient: sample.ca_cert.value().tbs_certificate().subject().clone(),
        transaction_id: [1; 16],
        sender_nonce: [2; 16],
        time: fixed_now(),
        implicit_confirm: false,
    };
    key_update_request(&params, &sample.old_key, &sample.new_key).unwrap()
}

/// `inner` nested by the sample's CA key as if it were an RA.
fn nested(sample: &Sample, inner: &[u8]) -> Vec<u8> {
    let header = PkiMessage::parse(inner, &Limits::default()).unwrap().header;
    nest(
        inner,
        &header,
        &Nesting {
            chain: std::slice::from_ref(&sample.ca_cert),
            sender_nonce: [9; 16],
            time: fixed_now(),
        },
        &sample.ca_key,
    )
    .unwrap()
}

#[test]
fn a_nested_kur_keeps_its_bytes_and_both_protections_verify() {
    let sample = Sample::deterministic().unwrap();
    let kur = kur(&sample);
    let outer = PkiMessage::parse(&nested(&sample, &kur), &Limits::default()).unwrap();
    let PkiBody::Nested(inner) = &outer.body else {
        panic!("expected nested, got {}", outer.body.name());
    };
    assert_eq!(inner.as_slice(), std::slice::from_ref(&kur));
    outer.verify_protection(sample.ca_cert.value()).unwrap();
    assert!(outer.verify_protection(sample.old_cert.value()).is_err());
    let user = PkiMessage::parse(&inner[0], &Limits::default()).unwrap();
    user.verify_protection(sample.old_cert.value()).unwrap();
    // The RA speaks for itself in the same transaction, with its own nonce.
    assert_eq!(outer.header.transaction_id, user.header.transaction_id);
    assert_eq!(
        outer.header.sender,
        GeneralName::DirectoryName(sample.ca_cert.value().tbs_certificate().subject().clone())
    );
    assert_eq!(outer.header.recipient, user.header.recipient);
    assert_ne!(outer.header.sender_nonce, user.header.sender_nonce);
    assert_eq!(outer.protecting_certificate(), Some(&sample.ca_cert));
}

#[test]
fn inspect_decodes_one_level_of_nesting_and_names_a_deeper_one() {
    let sample = Sample::deterministic().unwrap();
    let once = nested(&sample, &kur(&sample));
    let tree = inspect(&once, &Limits::default()).unwrap().tree.render();
    assert!(tree.contains("nested (1 messages)"), "{tree}");
    assert!(tree.contains("[0] CMP PKIMessage kur"), "{tree}");
    let twice = nested(&sample, &once);
    let tree = inspect(&twice, &Limits::default()).unwrap().tree.render();
    assert!(tree.contains("[0] nested again (not decoded)"), "{tree}");
}

#[test]
fn malformed_nesting_is_an_error() {
    let sample = Sample::deterministic().unwrap();
    let good = nested(&sample, &kur(&sample));
    let message = PkiMessage::parse(&good, &Limits::default()).unwrap();
    // [20] { SEQUENCE {} } and [20] { SEQUENCE { INTEGER 0 } } in place of the body.
    for body in [
        &[0xB4, 0x02, 0x30, 0x00][..],
        &[0xB4, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00][..],
    ] {
        let mut header = der::Encode::to_der(&message.header).unwrap();
        header.extend_from_slice(body);
        let bytes =
            der::Encode::to_der(&der::asn1::Any::new(der::Tag::Sequence, header).unwrap()).unwrap();
        let err = PkiMessage::parse(&bytes, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, CmpError::Malformed { what: "nested", .. }),
            "{err}"
        );
    }
}

#[test]
fn a_general_message_for_the_ca_certificates_round_trips() {
    let sample = Sample::deterministic().unwrap();
    let genm = general_message(
        &sample.old_cert,
        sample.ca_cert.value().tbs_certificate().subject().clone(),
        &[InfoTypeAndValue {
            info_type: ID_IT_CA_CERTS,
            info_value: None,
        }],
        [3; 16],
        [4; 16],
        fixed_now(),
        &sample.old_key,
    )
    .unwrap();
    let asked = PkiMessage::parse(&genm, &Limits::default()).unwrap();
    asked.verify_protection(sample.old_cert.value()).unwrap();
    let PkiBody::Genm(questions) = &asked.body else {
        panic!("expected genm, got {}", asked.body.name());
    };
    assert_eq!(questions[0].info_type, ID_IT_CA_CERTS);
    assert!(questions[0].ca_certificates().is_none(), "no value asked");
    let certs = [sample.ca_cert.clone(), sample.old_cert.clone()];
    let answer = InfoTypeAndValue::ca_certs(&certs).unwrap();
    let genp = respond(
        &Responder {
            cert: &sample.ca_cert,
            extra_certs: std::slice::from_ref(&sample.ca_cert),
            request: &asked.header,
            sender_nonce: &[5; 16],
            time: fixed_now(),
        },
        &Answer::Genp(std::slice::from_ref(&answer)),
        &sample.ca_key,
    )
    .unwrap();
    let answered = PkiMessage::parse(&genp, &Limits::default()).unwrap();
    answered.verify_protection(sample.ca_cert.value()).unwrap();
    assert_eq!(answered.header.recip_nonce, asked.header.sender_nonce);
    let PkiBody::Genp(infos) = &answered.body else {
        panic!("expected genp, got {}", answered.body.name());
    };
    assert_eq!(infos[0].ca_certificates().unwrap().unwrap(), certs);
    // Another info type is not read as CA certificates.
    let other = InfoTypeAndValue {
        info_type: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.3"),
        info_value: answer.info_value.clone(),
    };
    assert!(other.ca_certificates().is_none());
}
