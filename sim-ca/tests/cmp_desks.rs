//! CMP at every desk: the simulated CA asked directly, and the gateway — over HTTPS to an
//! upstream sim-ca, and in process — forwarding the user's key update unchanged inside its own
//! `nested` message (RFC 9483 §5.2.2.1). The same renewal, confirmation, rejection, replay and
//! poll give the same outcome whoever decides; and the CA takes a nested message only from the
//! RA it trusts.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, Upstream, cmp_key_update, desk::Desk, now, rand16};
use renewal_codec::cmc::{Limits, Retained, Signer, SoftwareKey};
use renewal_codec::cmp::{
    ID_IT_CA_CERTS, InfoTypeAndValue, PkiBody, PkiMessage, PkiStatus, PkiStatusInfo,
    build::{
        KeyUpdate, Nesting, cert_confirm, general_message, key_update_request, nest, next_header,
        poll_request,
    },
};
use sim_ca::store::AuditOutcome;
use x509_cert::Certificate;

/// A kur renewing `user`'s certificate onto `new`, in transaction `tid`.
fn key_update(
    upstream: &Upstream,
    user: &Client,
    new: &SoftwareKey,
    tid: [u8; 16],
    implicit: bool,
) -> Vec<u8> {
    cmp_key_update(
        &upstream.ca,
        &user.old_cert,
        &user.old_key,
        new,
        tid,
        implicit,
    )
}

/// The desk's answer to `request`, its protection verified with the desk's own certificate
/// (the issuing CA's, or the gateway's RA certificate), answering `request`'s transaction and
/// nonce.
fn ask(desk: &Desk, request: &[u8]) -> PkiMessage {
    let reply = desk.backend().handle_cmp(request, &[]).unwrap();
    assert!(
        reply.upstream.is_none(),
        "{}: no decision: {:?}",
        desk.name(),
        reply.upstream
    );
    let message = PkiMessage::parse(&reply.body, &Limits::default()).unwrap();
    let signer = Retained::<Certificate>::from_der(&desk.signer()).unwrap();
    assert_eq!(
        message.protecting_certificate(),
        Some(&signer),
        "{}",
        desk.name()
    );
    message.verify_protection(signer.value()).unwrap();
    let sent = PkiMessage::parse(request, &Limits::default()).unwrap();
    assert_eq!(message.header.transaction_id, sent.header.transaction_id);
    assert_eq!(message.header.recip_nonce, sent.header.sender_nonce);
    message
}

fn kup_status(message: &PkiMessage) -> PkiStatus {
    match &message.body {
        PkiBody::Kup(rep) => rep.response[0].status.status(),
        other => panic!("expected kup, got {}", other.name()),
    }
}

fn issued(message: &PkiMessage) -> Retained<Certificate> {
    match &message.body {
        PkiBody::Kup(rep) => rep.response[0].certificate().unwrap(),
        other => panic!("expected kup, got {}", other.name()),
    }
}

fn failures(message: &PkiMessage) -> Vec<&'static str> {
    match &message.body {
        PkiBody::Kup(rep) => rep.response[0].status.failures(),
        PkiBody::Error(e) => e.pki_status_info.failures(),
        other => panic!("expected a refusal, got {}", other.name()),
    }
}

/// The user's `certConf` for `cert`, in the kur's transaction, answering `reply`.
fn confirmation(
    user: &Client,
    kur: &[u8],
    reply: &PkiMessage,
    cert: &Retained<Certificate>,
    rejection: Option<&PkiStatusInfo>,
) -> Vec<u8> {
    let request = PkiMessage::parse(kur, &Limits::default()).unwrap();
    let header = next_header(&request.header, &reply.header, rand16(), now()).unwrap();
    cert_confirm(&header, cert, rejection, &user.old_key, &user.old_cert).unwrap()
}

fn ca_audits(desk: &Desk, outcome: AuditOutcome) -> usize {
    desk.ca()
        .audit_trail()
        .iter()
        .filter(|r| r.outcome == outcome)
        .count()
}

#[test]
fn a_key_update_renews_at_every_desk_and_its_confirmation_reaches_the_ca() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let kur = key_update(&desk.upstream, &user, &new, rand16(), false);
        let reply = ask(&desk, &kur);
        assert_eq!(kup_status(&reply), PkiStatus::Accepted, "{}", desk.name());
        assert!(!reply.header.implicit_confirm(), "{}", desk.name());
        let cert = issued(&reply);
        let tbs = cert.value().tbs_certificate();
        assert_eq!(tbs.subject_public_key_info(), new.public_key());
        assert_eq!(
            tbs.subject(),
            user.old_cert.value().tbs_certificate().subject()
        );
        let conf = confirmation(&user, &kur, &reply, &cert, None);
        let ack = ask(&desk, &conf);
        assert!(matches!(ack.body, PkiBody::PkiConf), "{}", desk.name());
        // The CA itself recorded the confirmation (through the gateway: the nested certConf).
        assert_eq!(
            ca_audits(&desk, AuditOutcome::Confirmed),
            1,
            "{}",
            desk.name()
        );
        assert!(
            desk.audit_trail()
                .iter()
                .any(|r| r.outcome == AuditOutcome::Confirmed),
            "{}: the desk audits the confirmation",
            desk.name()
        );
        assert_eq!(desk.issued(), 1);
    }
}

#[test]
fn a_certificate_the_user_rejects_is_revoked_by_the_ca_behind_every_desk() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let kur = key_update(&desk.upstream, &user, &new, rand16(), false);
        let reply = ask(&desk, &kur);
        let cert = issued(&reply);
        let rejection = PkiStatusInfo::new(
            PkiStatus::Rejection,
            None,
            Some("certificate for another key"),
        )
        .unwrap();
        let conf = confirmation(&user, &kur, &reply, &cert, Some(&rejection));
        assert!(matches!(ask(&desk, &conf).body, PkiBody::PkiConf));
        let serial = sim_ca::policy::serial_text(cert.value());
        assert!(
            desk.ca().with_store(|s| s.is_revoked(&serial).unwrap()),
            "{}: the CA revoked what the user rejected",
            desk.name()
        );
    }
}

#[test]
fn a_transaction_is_decided_once_at_every_desk() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let tid = rand16();
        let kur = key_update(&desk.upstream, &user, &new, tid, true);
        let first = ask(&desk, &kur);
        assert_eq!(kup_status(&first), PkiStatus::Accepted);
        assert!(first.header.implicit_confirm(), "{}", desk.name());
        // The same bytes again (a lost answer): the same certificate, and still implicit.
        let again = ask(&desk, &kur);
        assert_eq!(issued(&again), issued(&first), "{}", desk.name());
        assert!(again.header.implicit_confirm(), "{}", desk.name());
        // The same transaction for another new key: refused, nothing more issued.
        let other = SoftwareKey::generate_p256().unwrap();
        let swapped = key_update(&desk.upstream, &user, &other, tid, true);
        assert_eq!(
            failures(&ask(&desk, &swapped)),
            ["transactionIdInUse"],
            "{}",
            desk.name()
        );
        assert_eq!(desk.issued(), 1, "{}", desk.name());
    }
}

#[test]
fn a_pending_key_update_is_collected_by_polling_at_every_desk() {
    for desk in Desk::all("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n") {
        let user = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let kur = key_update(&desk.upstream, &user, &new, rand16(), true);
        let request = PkiMessage::parse(&kur, &Limits::default()).unwrap();
        let mut last = ask(&desk, &kur);
        assert_eq!(kup_status(&last), PkiStatus::Waiting, "{}", desk.name());
        let mut polls = 0;
        while !matches!(last.body, PkiBody::Kup(_)) || kup_status(&last) == PkiStatus::Waiting {
            polls += 1;
            assert!(
                polls <= 3,
                "{}: still pending after {polls} polls",
                desk.name()
            );
            let header = next_header(&request.header, &last.header, rand16(), now()).unwrap();
            let poll = poll_request(&header, &user.old_key, &user.old_cert).unwrap();
            last = ask(&desk, &poll);
            if let PkiBody::PollRep(rep) = &last.body {
                assert!(rep[0].check_after >= 1);
            }
        }
        assert_eq!(
            kup_status(&last),
            PkiStatus::Accepted,
            "{}: {:?}",
            desk.name(),
            failures(&last)
        );
        assert_eq!(
            issued(&last)
                .value()
                .tbs_certificate()
                .subject_public_key_info(),
            new.public_key()
        );
        assert_eq!(desk.issued(), 1);
    }
}

#[test]
fn another_users_poll_or_confirmation_finds_nothing_at_every_desk() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let intruder = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let kur = key_update(&desk.upstream, &user, &new, rand16(), false);
        let reply = ask(&desk, &kur);
        let cert = issued(&reply);
        // The intruder names the user's transaction, protected by its own certificate.
        let request = PkiMessage::parse(&kur, &Limits::default()).unwrap();
        let mut header = next_header(&request.header, &reply.header, rand16(), now()).unwrap();
        header.sender = x509_cert::ext::pkix::name::GeneralName::DirectoryName(
            intruder
                .old_cert
                .value()
                .tbs_certificate()
                .subject()
                .clone(),
        );
        let rejection = PkiStatusInfo::new(PkiStatus::Rejection, None, Some("no")).unwrap();
        let conf = cert_confirm(
            &header,
            &cert,
            Some(&rejection),
            &intruder.old_key,
            &intruder.old_cert,
        )
        .unwrap();
        assert_eq!(
            failures(&ask(&desk, &conf)),
            ["badCertId"],
            "{}",
            desk.name()
        );
        let serial = sim_ca::policy::serial_text(cert.value());
        assert!(!desk.ca().with_store(|s| s.is_revoked(&serial).unwrap()));
        let poll = poll_request(&header, &intruder.old_key, &intruder.old_cert).unwrap();
        assert_eq!(
            failures(&ask(&desk, &poll)),
            ["badRequest"],
            "{}",
            desk.name()
        );
    }
}

#[test]
fn every_desk_answers_a_general_message_with_its_ca_certificates() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let ca = desk.ca().authority();
        let ask_for = |key: &SoftwareKey| {
            general_message(
                &user.old_cert,
                ca.issuing.cert.value().tbs_certificate().subject().clone(),
                &[
                    InfoTypeAndValue {
                        info_type: ID_IT_CA_CERTS,
                        info_value: None,
                    },
                    // A question nobody here knows (id-it-signKeyPairTypes): left out.
                    InfoTypeAndValue {
                        info_type: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.3"),
                        info_value: None,
                    },
                ],
                rand16(),
                rand16(),
                now(),
                key,
            )
            .unwrap()
        };
        let reply = ask(&desk, &ask_for(&user.old_key));
        let PkiBody::Genp(answers) = &reply.body else {
            panic!("{}: expected genp, got {}", desk.name(), reply.body.name());
        };
        assert_eq!(answers.len(), 1, "{}", desk.name());
        let certs = answers[0].ca_certificates().unwrap().unwrap();
        assert_eq!(
            certs,
            [ca.issuing.cert.clone(), ca.root.cert.clone()],
            "{}",
            desk.name()
        );
        // A protection that does not verify with the certificate it names: refused.
        let forged = ask(&desk, &ask_for(&SoftwareKey::generate_p256().unwrap()));
        assert_eq!(failures(&forged), ["badMessageCheck"], "{}", desk.name());
    }
}

/// A nested message as an RA would send it, protected by `key` with `chain`.
fn nested_by(inner: &[u8], chain: &[Retained<Certificate>], key: &SoftwareKey) -> Vec<u8> {
    let header = PkiMessage::parse(inner, &Limits::default()).unwrap().header;
    let nesting = Nesting {
        chain,
        sender_nonce: rand16(),
        time: now(),
    };
    nest(inner, &header, &nesting, key).unwrap()
}

#[test]
fn the_ca_takes_a_nested_message_only_from_the_ra_it_trusts() {
    let upstream = Upstream::start("");
    let user = upstream.user();
    let new = SoftwareKey::generate_p256().unwrap();
    let kur = key_update(&upstream, &user, &new, rand16(), true);
    let refused = |message: &[u8]| {
        let reply = upstream.ca.handle_cmp(message, &[]);
        let answer = PkiMessage::parse(&reply.body, &Limits::default()).unwrap();
        assert_eq!(kup_or_error_status(&answer), PkiStatus::Rejection);
        failures(&answer)
    };
    // A user pretending to be an RA: its own certificate protects the nesting.
    let by_user = nested_by(&kur, std::slice::from_ref(&user.old_cert), &user.old_key);
    assert_eq!(refused(&by_user), ["notAuthorized"]);
    // The trusted RA's certificate, protected by another key.
    let ra = Retained::<Certificate>::from_der(&upstream.ra_certificate()).unwrap();
    let forged = nested_by(
        &kur,
        std::slice::from_ref(&ra),
        &SoftwareKey::generate_p256().unwrap(),
    );
    assert_eq!(refused(&forged), ["badMessageCheck"]);
    assert_eq!(
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count(),
        0
    );
    // Nesting does not launder the user's message: a kur naming one user's certificate,
    // protected by another user's key, is refused inside the genuine RA's nesting too.
    let (ra_chain, ra_key) = upstream.ra_credential();
    let other = upstream.user();
    let params = KeyUpdate {
        old: &other.old_cert,
        recipient: ra.value().tbs_certificate().issuer().clone(),
        transaction_id: rand16(),
        sender_nonce: rand16(),
        time: now(),
        implicit_confirm: true,
    };
    let mislabelled = key_update_request(&params, &user.old_key, &new).unwrap();
    assert_eq!(
        refused(&nested_by(&mislabelled, &ra_chain, &ra_key)),
        ["badMessageCheck"]
    );
    // A nested message inside a nested one is not unwrapped twice.
    let twice = nested_by(&nested_by(&kur, &ra_chain, &ra_key), &ra_chain, &ra_key);
    assert_eq!(refused(&twice), ["badDataFormat"]);
    let issued = |ca: &sim_ca::Ca| {
        ca.audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count()
    };
    assert_eq!(issued(&upstream.ca), 0);
    // The genuine RA around the user's own kur: renewed.
    let reply = upstream
        .ca
        .handle_cmp(&nested_by(&kur, &ra_chain, &ra_key), &[]);
    let answer = PkiMessage::parse(&reply.body, &Limits::default()).unwrap();
    assert_eq!(kup_status(&answer), PkiStatus::Accepted);
    assert_eq!(issued(&upstream.ca), 1);
}

fn kup_or_error_status(message: &PkiMessage) -> PkiStatus {
    match &message.body {
        PkiBody::Kup(rep) => rep.response[0].status.status(),
        PkiBody::Error(e) => e.pki_status_info.status(),
        other => panic!("unexpected {}", other.name()),
    }
}

/// The nonces chain end to end at every desk (RFC 9483 §3.1, §3.5): a certConf whose
/// recipNonce the CA never sent is refused with badRecipientNonce (through the gateway: by the
/// CA, the gateway passing its answer on); the answer to a re-sent kur — from the gateway's
/// state, without asking the CA — carries a nonce the CA recognises, so the certConf that
/// answers it confirms; and an earlier answer's nonce still serves (a lost answer).
#[test]
fn a_confirmation_answers_a_nonce_of_the_ca_at_every_desk() {
    for desk in Desk::all("") {
        let user = desk.upstream.user();
        let new = SoftwareKey::generate_p256().unwrap();
        let kur = key_update(&desk.upstream, &user, &new, rand16(), false);
        let first = ask(&desk, &kur);
        let again = ask(&desk, &kur);
        let cert = issued(&again);
        assert_eq!(cert, issued(&first), "{}", desk.name());
        let mut forged = again.clone();
        forged.header.sender_nonce = Some(der::asn1::OctetString::new(rand16()).unwrap());
        let refused = ask(&desk, &confirmation(&user, &kur, &forged, &cert, None));
        assert_eq!(failures(&refused), ["badRecipientNonce"], "{}", desk.name());
        // A gateway refuses it itself (it noted the nonce it delivered the certificate with):
        // the CA never sees it.
        let seen_by_ca = desk
            .ca()
            .audit_trail()
            .iter()
            .any(|r| r.detail.contains("recipNonce"));
        assert_eq!(
            seen_by_ca,
            desk.name() == "the simulated CA",
            "{}",
            desk.name()
        );
        assert_eq!(
            ca_audits(&desk, AuditOutcome::Confirmed),
            0,
            "{}",
            desk.name()
        );
        let ack = ask(&desk, &confirmation(&user, &kur, &again, &cert, None));
        assert!(
            matches!(ack.body, PkiBody::PkiConf),
            "{}: {}",
            desk.name(),
            ack.body.name()
        );
        assert_eq!(
            ca_audits(&desk, AuditOutcome::Confirmed),
            1,
            "{}",
            desk.name()
        );
        let repeated = ask(&desk, &confirmation(&user, &kur, &first, &cert, None));
        assert!(
            matches!(repeated.body, PkiBody::PkiConf),
            "{}: {}",
            desk.name(),
            repeated.body.name()
        );
    }
}

/// The RA's nesting does not launder a follow-up either: a certConf forwarded by the genuine
/// RA whose recipNonce the CA never sent is refused by the CA itself (whatever the gateway in
/// front checked), and the same certConf answering the CA's nonce confirms.
#[test]
fn a_nested_confirmation_must_answer_the_ca_too() {
    let upstream = Upstream::start("");
    let user = upstream.user();
    let new = SoftwareKey::generate_p256().unwrap();
    let kur = key_update(&upstream, &user, &new, rand16(), false);
    let (ra_chain, ra_key) = upstream.ra_credential();
    let read = |message: &[u8]| {
        let reply = upstream.ca.handle_cmp(message, &[]);
        PkiMessage::parse(&reply.body, &Limits::default()).unwrap()
    };
    let answer = read(&nested_by(&kur, &ra_chain, &ra_key));
    let cert = issued(&answer);
    let mut forged = answer.clone();
    forged.header.sender_nonce = Some(der::asn1::OctetString::new(rand16()).unwrap());
    let refused = read(&nested_by(
        &confirmation(&user, &kur, &forged, &cert, None),
        &ra_chain,
        &ra_key,
    ));
    assert_eq!(failures(&refused), ["badRecipientNonce"]);
    assert_eq!(
        upstream
            .ca
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Confirmed)
            .count(),
        0
    );
    let ack = read(&nested_by(
        &confirmation(&user, &kur, &answer, &cert, None),
        &ra_chain,
        &ra_key,
    ));
    assert!(matches!(ack.body, PkiBody::PkiConf), "{}", ack.body.name());
}
