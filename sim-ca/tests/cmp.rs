//! CMP at the simulated CA, in-process: a key update (`kur`) renews exactly the certificate
//! whose key protected it, through the same ledger as every other endpoint; confirmations,
//! polls, and every way an attacker might try it — another key's protection, another user's
//! certificate, a revoked one, a replayed transaction, another user's confirmation.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, ca, ca_with, cmp_key_update, now, rand16};
use renewal_codec::cmc::{Limits, Retained, Signer, SoftwareKey};
use renewal_codec::cmp::{
    CertRepMessage, PkiBody, PkiMessage, PkiStatus, PkiStatusInfo,
    build::{cert_confirm, next_header, poll_request},
};
use sim_ca::{Ca, store::AuditOutcome};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode, Header, SliceReader};

fn key_update(client: &Client, ca: &Ca, tid: [u8; 16], implicit: bool) -> Vec<u8> {
    key_update_as(client, &client.old_key, &client.new_key, ca, tid, implicit)
}

/// A kur for `client`'s certificate, protected by `protect` and proving `new`.
fn key_update_as(
    client: &Client,
    protect: &SoftwareKey,
    new: &SoftwareKey,
    ca: &Ca,
    tid: [u8; 16],
    implicit: bool,
) -> Vec<u8> {
    cmp_key_update(ca, &client.old_cert, protect, new, tid, implicit)
}

/// The CA's answer, its protection verified with the issuing certificate.
fn answer(ca: &Ca, request: &[u8], tls: &[u8]) -> PkiMessage {
    let reply = ca.handle_cmp(request, tls);
    let message = PkiMessage::parse(&reply.body, &Limits::default()).unwrap();
    message
        .verify_protection(ca.authority().issuing.cert.value())
        .unwrap();
    assert_eq!(
        message.extra_certs.first(),
        Some(&ca.authority().issuing.cert)
    );
    message
}

fn kup(message: &PkiMessage) -> &CertRepMessage {
    match &message.body {
        PkiBody::Kup(rep) => rep,
        other => panic!("expected kup, got {}: {other:?}", other.name()),
    }
}

/// The failure bit names of a refused answer (kup rejection or error).
fn failures(message: &PkiMessage) -> Vec<&'static str> {
    match &message.body {
        PkiBody::Kup(rep) => {
            assert_eq!(rep.response[0].status.status(), PkiStatus::Rejection);
            rep.response[0].status.failures()
        }
        PkiBody::Error(e) => e.pki_status_info.failures(),
        other => panic!("expected a refusal, got {}", other.name()),
    }
}

/// The length of the DER tag and length that open `bytes`.
fn header_len(bytes: &[u8]) -> usize {
    let header = Header::decode(&mut SliceReader::new(bytes).unwrap()).unwrap();
    usize::try_from(header.encoded_len().unwrap()).unwrap()
}

/// The length of the whole DER TLV that opens `bytes`.
fn tlv_len(bytes: &[u8]) -> usize {
    let header = Header::decode(&mut SliceReader::new(bytes).unwrap()).unwrap();
    usize::try_from((header.encoded_len().unwrap() + header.length()).unwrap()).unwrap()
}

fn issued_count(ca: &Ca) -> usize {
    ca.audit_trail()
        .iter()
        .filter(|r| r.outcome == AuditOutcome::Issued)
        .count()
}

fn serial(cert: &Retained<Certificate>) -> String {
    sim_ca::policy::serial_text(cert.value())
}

fn revoked(ca: &Ca, cert: &Retained<Certificate>) -> bool {
    ca.with_store(|s| s.is_revoked(&serial(cert)).unwrap())
}

fn confirm(
    ca: &Ca,
    client: &Client,
    kur: &[u8],
    reply: &PkiMessage,
    issued: &Retained<Certificate>,
    rejection: Option<&PkiStatusInfo>,
) -> PkiMessage {
    let request = PkiMessage::parse(kur, &Limits::default()).unwrap();
    let header = next_header(&request.header, &reply.header, rand16(), now()).unwrap();
    let conf = cert_confirm(
        &header,
        issued,
        rejection,
        &client.old_key,
        &client.old_cert,
    )
    .unwrap();
    answer(ca, &conf, &[])
}

#[test]
fn a_key_update_renews_the_protecting_certificate_onto_the_new_key_and_is_confirmed() {
    let ca = ca();
    let client = Client::new(&ca);
    let tid = rand16();
    let kur = key_update(&client, &ca, tid, false);
    let request = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    // No TLS client certificate: the protection says who asks.
    let reply = answer(&ca, &kur, &[]);
    let rep = kup(&reply);
    assert_eq!(rep.response[0].status.status(), PkiStatus::Accepted);
    assert_eq!(rep.response[0].cert_req_id, 0);
    let issued = rep.response[0].certificate().unwrap();
    let (old, new) = (
        client.old_cert.value().tbs_certificate(),
        issued.value().tbs_certificate(),
    );
    assert_eq!(new.subject(), old.subject());
    assert_eq!(new.subject_public_key_info(), client.new_key.public_key());
    assert!(ca.authority().issued_by_us(&issued));
    // The header answers ours: same transaction, our nonce back, no implicit confirmation.
    assert_eq!(
        reply.header.transaction_id.as_ref().unwrap().as_bytes(),
        tid
    );
    assert_eq!(reply.header.recip_nonce, request.header.sender_nonce);
    assert!(!reply.header.implicit_confirm());
    // Confirmed: pkiConf, audited; a repeated confirmation is acknowledged again.
    for _ in 0..2 {
        let ack = confirm(&ca, &client, &kur, &reply, &issued, None);
        assert!(matches!(ack.body, PkiBody::PkiConf), "{}", ack.body.name());
    }
    assert!(
        ca.audit_trail()
            .iter()
            .any(|r| r.outcome == AuditOutcome::Confirmed
                && r.serial.as_deref() == Some(serial(&issued).as_str()))
    );
    assert!(!revoked(&ca, &issued));
    // Once confirmed, the certificate is not revoked by the deadline passing.
    ca.clock().advance(Duration::from_secs(3600));
    ca.sweep_confirmations();
    assert!(!revoked(&ca, &issued));
}

#[test]
fn implicit_confirmation_is_granted_when_asked_and_nothing_waits_for_a_certconf() {
    let ca = ca();
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), true);
    let reply = answer(&ca, &kur, &[]);
    assert!(reply.header.implicit_confirm());
    let issued = kup(&reply).response[0].certificate().unwrap();
    ca.clock().advance(Duration::from_secs(3600));
    ca.sweep_confirmations();
    assert!(!revoked(&ca, &issued));
    // A certConf nobody waits for is refused.
    let ack = confirm(&ca, &client, &kur, &reply, &issued, None);
    assert_eq!(failures(&ack), ["badCertId"]);
}

#[test]
fn a_certificate_the_client_rejects_or_never_confirms_is_revoked() {
    let ca = ca_with("").with_confirm_wait(Duration::from_secs(60));
    // Rejected in certConf: revoked at once, acknowledged.
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), false);
    let reply = answer(&ca, &kur, &[]);
    let issued = kup(&reply).response[0].certificate().unwrap();
    let rejection =
        PkiStatusInfo::new(PkiStatus::Rejection, None, Some("not the key I asked for")).unwrap();
    let ack = confirm(&ca, &client, &kur, &reply, &issued, Some(&rejection));
    assert!(matches!(ack.body, PkiBody::PkiConf), "{}", ack.body.name());
    assert!(revoked(&ca, &issued));
    // Never confirmed: revoked once the wait is over, not before; a late confirmation is
    // refused.
    let late = Client::new(&ca);
    let kur = key_update(&late, &ca, rand16(), false);
    let reply = answer(&ca, &kur, &[]);
    let unconfirmed = kup(&reply).response[0].certificate().unwrap();
    ca.clock().advance(Duration::from_secs(59));
    ca.sweep_confirmations();
    assert!(!revoked(&ca, &unconfirmed));
    ca.clock().advance(Duration::from_secs(2));
    ca.sweep_confirmations();
    assert!(revoked(&ca, &unconfirmed));
    let ack = confirm(&ca, &late, &kur, &reply, &unconfirmed, None);
    assert_eq!(failures(&ack), ["certRevoked"]);
    let revocations = ca
        .audit_trail()
        .iter()
        .filter(|r| r.outcome == AuditOutcome::Revoked)
        .count();
    assert_eq!(revocations, 2);
}

#[test]
fn a_confirmation_after_the_deadline_is_refused_and_revokes_even_without_a_sweep() {
    let ca = ca_with("").with_confirm_wait(Duration::from_secs(60));
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), false);
    let reply = answer(&ca, &kur, &[]);
    let issued = kup(&reply).response[0].certificate().unwrap();
    ca.clock().advance(Duration::from_secs(61));
    let ack = confirm(&ca, &client, &kur, &reply, &issued, None);
    assert_eq!(failures(&ack), ["certRevoked"]);
    assert!(revoked(&ca, &issued));
}

#[test]
fn a_confirmation_must_carry_the_issued_certificates_hash() {
    let ca = ca();
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), false);
    let reply = answer(&ca, &kur, &[]);
    let issued = kup(&reply).response[0].certificate().unwrap();
    let ack = confirm(&ca, &client, &kur, &reply, &client.old_cert, None);
    assert_eq!(failures(&ack), ["badCertId"]);
    assert!(!revoked(&ca, &issued));
}

#[test]
fn another_users_confirmation_or_poll_finds_nothing_of_this_transaction() {
    let ca = ca();
    let (alice, mallory) = (Client::new(&ca), Client::new(&ca));
    let tid = rand16();
    let kur = key_update(&alice, &ca, tid, false);
    let reply = answer(&ca, &kur, &[]);
    let issued = kup(&reply).response[0].certificate().unwrap();
    // Mallory, with Alice's transactionID and the issued certificate's hash, rejects it.
    let theirs = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    let mut header = next_header(&theirs.header, &reply.header, rand16(), now()).unwrap();
    header.sender = x509_cert::ext::pkix::name::GeneralName::DirectoryName(
        mallory.old_cert.value().tbs_certificate().subject().clone(),
    );
    let rejection = PkiStatusInfo::new(PkiStatus::Rejection, None, None).unwrap();
    let conf = cert_confirm(
        &header,
        &issued,
        Some(&rejection),
        &mallory.old_key,
        &mallory.old_cert,
    )
    .unwrap();
    assert_eq!(failures(&answer(&ca, &conf, &[])), ["badCertId"]);
    assert!(!revoked(&ca, &issued));
    let poll = poll_request(&header, &mallory.old_key, &mallory.old_cert).unwrap();
    assert_eq!(failures(&answer(&ca, &poll, &[])), ["badRequest"]);
}

#[test]
fn a_message_protected_by_another_key_than_its_certificates_is_refused() {
    let ca = ca();
    let (alice, mallory) = (Client::new(&ca), Client::new(&ca));
    // Alice's certificate in extraCerts, Mallory's key signing.
    let kur = key_update_as(
        &alice,
        &mallory.old_key,
        &mallory.new_key,
        &ca,
        rand16(),
        true,
    );
    assert_eq!(failures(&answer(&ca, &kur, &[])), ["badMessageCheck"]);
    assert_eq!(issued_count(&ca), 0);
}

#[test]
fn a_revoked_certificate_does_not_renew_over_cmp() {
    let ca = ca();
    let client = Client::new(&ca);
    // Issued outside this CA's records (a fixture), revoked all the same.
    ca.revoke(&serial(&client.old_cert)).unwrap();
    let kur = key_update(&client, &ca, rand16(), true);
    assert_eq!(failures(&answer(&ca, &kur, &[])), ["certRevoked"]);
    assert_eq!(issued_count(&ca), 0);
}

#[test]
fn a_certificate_from_another_ca_does_not_renew() {
    let ca = ca();
    let other = common::ca();
    let stranger = Client::new(&other);
    let kur = key_update(&stranger, &ca, rand16(), true);
    assert_eq!(failures(&answer(&ca, &kur, &[])), ["signerNotTrusted"]);
    assert_eq!(issued_count(&ca), 0);
}

#[test]
fn a_transaction_id_decides_once() {
    let ca = ca();
    let client = Client::new(&ca);
    let tid = rand16();
    let first = answer(&ca, &key_update(&client, &ca, tid, true), &[]);
    assert_eq!(kup(&first).response[0].status.status(), PkiStatus::Accepted);
    // The same transaction for another new key: refused, nothing issued.
    let other_key = SoftwareKey::generate_p256().unwrap();
    let again = key_update_as(&client, &client.old_key, &other_key, &ca, tid, true);
    assert_eq!(failures(&answer(&ca, &again, &[])), ["transactionIdInUse"]);
    assert_eq!(issued_count(&ca), 1);
    // The same key again in a new transaction: the certificate already issued, not another.
    let resent = answer(&ca, &key_update(&client, &ca, rand16(), true), &[]);
    assert_eq!(
        kup(&resent).response[0].certificate(),
        kup(&first).response[0].certificate()
    );
    assert_eq!(issued_count(&ca), 1);
}

#[test]
fn a_pending_key_update_is_collected_by_polling_its_transaction() {
    let ca = ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n");
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), true);
    let request = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    let reply = answer(&ca, &kur, &[]);
    assert_eq!(kup(&reply).response[0].status.status(), PkiStatus::Waiting);
    let mut last = reply;
    let poll = |last: &PkiMessage| {
        let header = next_header(&request.header, &last.header, rand16(), now()).unwrap();
        answer(
            &ca,
            &poll_request(&header, &client.old_key, &client.old_cert).unwrap(),
            &[],
        )
    };
    last = poll(&last);
    let PkiBody::PollRep(rep) = &last.body else {
        panic!("expected pollRep, got {}", last.body.name());
    };
    assert!(rep[0].check_after >= 1);
    last = poll(&last);
    let issued = kup(&last).response[0].certificate().unwrap();
    assert_eq!(
        issued.value().tbs_certificate().subject_public_key_info(),
        client.new_key.public_key()
    );
    // Implicit confirmation asked in the kur holds for the answer to the poll.
    assert!(last.header.implicit_confirm());
}

#[test]
fn what_is_not_a_renewal_is_refused_with_a_cmp_error() {
    let ca = ca();
    let garbage = answer(&ca, b"\x30\x03\x02\x01\x00", &[]);
    assert_eq!(failures(&garbage), ["badDataFormat"]);
    // A kur's body re-tagged as an initialization request (ir): initial enrollment is not
    // served.
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), true);
    let message = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    let mut ir = kur.clone();
    // The body follows the header, found by its length: a byte search for the tag could hit a
    // random nonce first.
    let body_at = header_len(&kur) + tlv_len(&kur[header_len(&kur)..]);
    assert_eq!(ir[body_at], 0xA7, "the kur body tag");
    ir[body_at] = 0xA0;
    let reply = answer(&ca, &ir, &[]);
    assert_eq!(failures(&reply), ["notAuthorized"]);
    assert!(matches!(message.body, PkiBody::Kur(_)));
    assert_eq!(issued_count(&ca), 0);
}

#[test]
fn a_trusted_ra_never_renews_itself_over_cmp() {
    let base = ca();
    let credential = sim_ca::gateway::credential::issue(
        base.authority(),
        "Renewal Gateway RA",
        &["localhost"],
        sim_ca::gateway::credential::Purpose::Ra,
        now(),
    )
    .unwrap();
    let ca = base
        .with_trusted_ras(vec![credential.chain[0].clone()])
        .unwrap();
    let ra = Client {
        old_key: credential.key,
        old_cert: credential.chain[0].clone(),
        new_key: SoftwareKey::generate_p256().unwrap(),
    };
    let kur = key_update(&ra, &ca, rand16(), true);
    assert_eq!(failures(&answer(&ca, &kur, &[])), ["notAuthorized"]);
    assert_eq!(issued_count(&ca), 0);
}

/// `certConf` for `issued` answering `reply`, with its recipNonce replaced by `recip_nonce`.
fn confirm_with_nonce(
    ca: &Ca,
    client: &Client,
    kur: &[u8],
    reply: &PkiMessage,
    issued: &Retained<Certificate>,
    recip_nonce: Option<Vec<u8>>,
) -> PkiMessage {
    let request = PkiMessage::parse(kur, &Limits::default()).unwrap();
    let mut header = next_header(&request.header, &reply.header, rand16(), now()).unwrap();
    header.recip_nonce = recip_nonce.map(|n| der::asn1::OctetString::new(n).unwrap());
    let conf = cert_confirm(&header, issued, None, &client.old_key, &client.old_cert).unwrap();
    answer(ca, &conf, &[])
}

fn sender_nonce(message: &PkiMessage) -> Vec<u8> {
    message
        .header
        .sender_nonce
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// RFC 9483 §3.5: a certConf whose recipNonce is not a nonce the CA sent in that transaction
/// (none, made up, altered, another transaction's) is refused with badRecipientNonce and
/// changes nothing; the one that answers the CA's answer confirms.
#[test]
fn a_confirmation_must_answer_a_nonce_the_ca_sent_in_its_transaction() {
    let ca = ca();
    let (alice, bob) = (Client::new(&ca), Client::new(&ca));
    let kur = key_update(&alice, &ca, rand16(), false);
    let reply = answer(&ca, &kur, &[]);
    let issued = kup(&reply).response[0].certificate().unwrap();
    // Bob's answer in his own transaction, and Alice's in another of hers.
    let bobs = answer(&ca, &key_update(&bob, &ca, rand16(), false), &[]);
    let another_key = SoftwareKey::generate_p256().unwrap();
    let elsewhere = key_update_as(&alice, &alice.old_key, &another_key, &ca, rand16(), false);
    let elsewhere = answer(&ca, &elsewhere, &[]);
    assert_eq!(
        kup(&elsewhere).response[0].status.status(),
        PkiStatus::Accepted
    );
    let mut altered = sender_nonce(&reply);
    *altered.last_mut().unwrap() ^= 1;
    for (what, nonce) in [
        ("none", None),
        ("made up", Some(rand16().to_vec())),
        ("altered", Some(altered)),
        ("another user's transaction", Some(sender_nonce(&bobs))),
        ("another transaction", Some(sender_nonce(&elsewhere))),
    ] {
        let refused = confirm_with_nonce(&ca, &alice, &kur, &reply, &issued, nonce);
        assert_eq!(failures(&refused), ["badRecipientNonce"], "{what}");
    }
    let refusals = ca
        .audit_trail()
        .iter()
        .filter(|r| r.detail.contains("recipNonce"))
        .count();
    assert_eq!(refusals, 5, "every refusal is audited");
    assert!(
        !ca.audit_trail()
            .iter()
            .any(|r| r.outcome == AuditOutcome::Confirmed),
        "nothing was confirmed"
    );
    assert!(!revoked(&ca, &issued));
    let ack = confirm_with_nonce(
        &ca,
        &alice,
        &kur,
        &reply,
        &issued,
        Some(sender_nonce(&reply)),
    );
    assert!(matches!(ack.body, PkiBody::PkiConf), "{}", ack.body.name());
}

/// A pollReq must answer a nonce of its transaction too; a refused one is not counted as a
/// poll. A client whose last answer was lost retries with the nonce it did receive.
#[test]
fn a_poll_must_answer_a_nonce_of_its_transaction_and_survives_a_lost_answer() {
    let ca = ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n");
    let client = Client::new(&ca);
    let kur = key_update(&client, &ca, rand16(), true);
    let request = PkiMessage::parse(&kur, &Limits::default()).unwrap();
    let waiting = answer(&ca, &kur, &[]);
    assert_eq!(
        kup(&waiting).response[0].status.status(),
        PkiStatus::Waiting
    );
    let poll = |recip_nonce: Vec<u8>| {
        let mut header = next_header(&request.header, &waiting.header, rand16(), now()).unwrap();
        header.recip_nonce = Some(der::asn1::OctetString::new(recip_nonce).unwrap());
        answer(
            &ca,
            &poll_request(&header, &client.old_key, &client.old_cert).unwrap(),
            &[],
        )
    };
    let forged = poll(rand16().to_vec());
    assert_eq!(failures(&forged), ["badRecipientNonce"]);
    // The first poll that answers the CA is the first counted: still pending.
    let first = poll(sender_nonce(&waiting));
    assert!(
        matches!(first.body, PkiBody::PollRep(_)),
        "{}",
        first.body.name()
    );
    // Its pollRep is lost: the client polls again answering the answer it has.
    let second = poll(sender_nonce(&waiting));
    assert_eq!(
        kup(&second).response[0]
            .certificate()
            .unwrap()
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );
}
