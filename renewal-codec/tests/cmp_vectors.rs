//! The CMP ledger: every message OpenSSL's `openssl cmp` wrote (tests/vectors/cmp, provenance
//! in its README) parses into what it says, its protection verifies with the key that made it
//! and with no other, a kur's proof of possession verifies with the new key, and a tampered
//! byte is caught.

#![allow(clippy::unwrap_used)]

use der::{DecodePem, Encode};
use renewal_codec::{
    cmc::{DigestAlgorithm, Limits},
    cmp::{CmpError, PkiBody, PkiMessage, PkiStatus, ProofOfPossession},
};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

fn dir() -> std::path::PathBuf {
    test_kit::vectors_dir().join("cmp")
}

fn message(name: &str) -> PkiMessage {
    PkiMessage::parse(
        &std::fs::read(dir().join(name)).unwrap(),
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cert(name: &str) -> Certificate {
    Certificate::from_pem(std::fs::read(dir().join(name)).unwrap()).unwrap()
}

fn public_key(name: &str) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_pem(std::fs::read(dir().join(name)).unwrap()).unwrap()
}

/// A kur: protected by the old key (whose certificate comes first in extraCerts), one request
/// for the new key under the old subject, naming the old certificate, with a proof of
/// possession by the new key.
fn check_kur(name: &str, old: &str, new: &str) -> PkiMessage {
    let msg = message(name);
    let old = cert(old);
    assert_eq!(msg.header.pvno, 2, "{name}");
    assert!(msg.header.transaction_id.is_some() && msg.header.sender_nonce.is_some());
    assert_eq!(
        msg.protecting_certificate().unwrap().value(),
        &old,
        "{name}"
    );
    msg.verify_protection(&old).unwrap();
    // Not with the CA's key.
    assert!(matches!(
        msg.verify_protection(&cert("ca.pem")),
        Err(CmpError::BadProtection(_))
    ));
    let PkiBody::Kur(requests) = &msg.body else {
        panic!("{name}: {:?}", msg.body.name())
    };
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    let template = &request.cert_req.cert_template;
    assert_eq!(template.public_key.as_ref().unwrap(), &public_key(new));
    assert_eq!(
        template.subject.as_ref().unwrap(),
        old.tbs_certificate().subject()
    );
    let old_id = request.cert_req.old_cert_id().unwrap();
    assert_eq!(
        old_id.serial_number.as_bytes(),
        old.tbs_certificate().serial_number().as_bytes()
    );
    assert!(matches!(
        request.popo,
        Some(ProofOfPossession::Signature(_))
    ));
    request.verify_pop().unwrap();
    msg
}

#[test]
fn openssl_key_update_requests_verify_with_the_old_key_and_prove_the_new_one() {
    let p256 = check_kur("kur-p256.der", "old-p256.pem", "new-p256.pub.pem");
    assert!(!p256.header.implicit_confirm());
    check_kur("kur-rsa2048.der", "old-rsa2048.pem", "new-rsa2048.pub.pem");
    let implicit = check_kur("kur-implicit.der", "old-p256.pem", "new-p256.pub.pem");
    assert!(implicit.header.implicit_confirm());
    check_kur("kur-poll.der", "old-p256.pem", "new-p256.pub.pem");
}

#[test]
fn the_answers_are_the_cas_and_bound_to_the_request() {
    let ca = cert("ca.pem");
    for (request, answer, old) in [
        ("kur-p256.der", "kup-p256.der", "old-p256.pem"),
        ("kur-rsa2048.der", "kup-rsa2048.der", "old-rsa2048.pem"),
        ("kur-implicit.der", "kup-implicit.der", "old-p256.pem"),
    ] {
        let (req, rep) = (message(request), message(answer));
        rep.verify_protection(&ca).unwrap();
        assert_eq!(rep.header.transaction_id, req.header.transaction_id);
        assert_eq!(rep.header.recip_nonce, req.header.sender_nonce);
        let PkiBody::Kup(kup) = &rep.body else {
            panic!("{answer}: {}", rep.body.name())
        };
        let response = &kup.response[0];
        assert_eq!(response.status.status(), PkiStatus::Accepted);
        // OpenSSL's mock server answers with the certificate being updated (README).
        assert_eq!(response.certificate().unwrap().value(), &cert(old));
        assert_eq!(response.cert_req_id, 0);
    }
    assert!(message("kup-implicit.der").header.implicit_confirm());
    assert!(!message("kup-p256.der").header.implicit_confirm());
}

#[test]
fn a_rejecting_confirmation_and_its_acknowledgement() {
    let conf = message("certconf-reject.der");
    conf.verify_protection(&cert("old-p256.pem")).unwrap();
    let PkiBody::CertConf(statuses) = &conf.body else {
        panic!("{}", conf.body.name())
    };
    let status = &statuses[0];
    assert!(!status.accepted());
    let info = status.status_info.as_ref().unwrap();
    assert_eq!(info.status(), PkiStatus::Rejection);
    assert_eq!(info.failures(), vec!["incorrectData"]);
    assert!(info.text().contains("does not match"), "{}", info.text());
    // certHash: SHA-256 (the certificate's signature hash) of the certificate it rejects.
    let issued = cert("old-p256.pem").to_der().unwrap();
    assert_eq!(
        status.cert_hash.as_bytes(),
        DigestAlgorithm::Sha256.digest(&issued).as_slice()
    );
    let ack = message("pkiconf.der");
    ack.verify_protection(&cert("ca.pem")).unwrap();
    assert!(matches!(ack.body, PkiBody::PkiConf));
    assert_eq!(ack.header.transaction_id, conf.header.transaction_id);
}

#[test]
fn a_waiting_answer_a_poll_and_the_certificate_after_it() {
    let waiting = message("kup-waiting.der");
    let PkiBody::Kup(kup) = &waiting.body else {
        panic!("{}", waiting.body.name())
    };
    assert_eq!(kup.response[0].status.status(), PkiStatus::Waiting);
    assert!(kup.response[0].certificate().is_none());
    let poll = message("pollreq.der");
    poll.verify_protection(&cert("old-p256.pem")).unwrap();
    let PkiBody::PollReq(entries) = &poll.body else {
        panic!("{}", poll.body.name())
    };
    assert_eq!(entries[0].cert_req_id, 0);
    let after = message("kup-after-poll.der");
    after.verify_protection(&cert("ca.pem")).unwrap();
    assert_eq!(after.header.transaction_id, poll.header.transaction_id);
}

#[test]
fn a_changed_byte_breaks_the_protection_or_the_proof_and_nothing_panics() {
    let bytes = std::fs::read(dir().join("kur-p256.der")).unwrap();
    let old = cert("old-p256.pem");
    let original = PkiMessage::parse(&bytes, &Limits::default()).unwrap();
    // A byte of the transactionID (in the header: protected, not part of the POP), and a byte
    // of the new key's subjectPublicKey (in the request: protected and proven).
    let tid = original.header.transaction_id.as_ref().unwrap().as_bytes();
    let at = bytes.windows(tid.len()).position(|w| w == tid).unwrap();
    let mut changed = bytes.clone();
    changed[at] ^= 0x01;
    let msg = PkiMessage::parse(&changed, &Limits::default()).unwrap();
    assert!(matches!(
        msg.verify_protection(&old),
        Err(CmpError::BadProtection(_))
    ));
    let PkiBody::Kur(requests) = &original.body else {
        unreachable!()
    };
    let key = requests[0]
        .cert_req
        .cert_template
        .public_key
        .as_ref()
        .unwrap()
        .subject_public_key
        .raw_bytes();
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut changed = bytes.clone();
    changed[at + key.len() - 1] ^= 0x01;
    let msg = PkiMessage::parse(&changed, &Limits::default()).unwrap();
    let PkiBody::Kur(requests) = &msg.body else {
        unreachable!()
    };
    assert!(requests[0].verify_pop().is_err());
    assert!(msg.verify_protection(&old).is_err());
    // Every prefix and every single-byte change: a value or an error, never a panic.
    for end in 0..bytes.len() {
        assert!(PkiMessage::parse(&bytes[..end], &Limits::default()).is_err());
    }
    for i in (0..bytes.len()).step_by(7) {
        let mut changed = bytes.clone();
        changed[i] = changed[i].wrapping_add(0x41);
        let _ = PkiMessage::parse(&changed, &Limits::default());
    }
    assert!(PkiMessage::parse(b"not a message", &Limits::default()).is_err());
}

#[test]
fn an_oversized_message_is_refused_before_decoding() {
    let bytes = std::fs::read(dir().join("kur-p256.der")).unwrap();
    let limits = Limits {
        max_bytes: 512,
        ..Limits::default()
    };
    assert!(matches!(
        PkiMessage::parse(&bytes, &limits),
        Err(CmpError::Input(_))
    ));
}
