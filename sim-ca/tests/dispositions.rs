//! Scripted dispositions and content faults, in-process: deny, pending resolved by poll
//! count, by virtual time and by the administrator (to issued or denied), error, issued out
//! of band, revoked, rules matched by request number, a certificate for the wrong key, a
//! response signed by the wrong key, ADCS-style responses, EST simplereenroll.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, ca_with, parse};
use renewal_codec::cmc::{CmcError, Outcome, Signer, status::CmcFailInfo};
use sim_ca::{scenario::TransportFault, service::SimpleReply};

fn pending_token(outcome: &Outcome) -> i64 {
    match outcome {
        Outcome::Pending { token, .. } => i64::from_be_bytes(token.as_slice().try_into().unwrap()),
        other => panic!("expected pending, got {other:?}"),
    }
}

#[test]
fn deny_and_error() {
    let ca = ca_with("[[rule]]\ndisposition = \"deny\"\nreason = \"not today\"\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert_eq!(
        resp.outcome,
        Outcome::Failed {
            fail_info: Some(CmcFailInfo::BadRequest)
        }
    );
    assert_eq!(resp.status_string.unwrap(), "0x80094011: denied: not today");

    let ca = ca_with("[[rule]]\ndisposition = \"error\"\nhresult = 0x80094006\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert_eq!(
        resp.outcome,
        Outcome::Failed {
            fail_info: Some(CmcFailInfo::InternalCaError)
        }
    );
    assert!(resp.status_string.unwrap().starts_with("0x80094006"));
}

#[test]
fn pending_resolved_on_the_second_poll() {
    let ca =
        ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\nto = \"issued\"\n");
    let client = Client::new(&ca);
    let request = client.request();
    let first = ca.handle_cmc(&request, client.old_cert.der());
    let id = pending_token(&parse(&first.body).outcome);
    assert!(first.retry_after.is_some());
    // Re-sending the same request polls (it is not a replay).
    let poll1 = parse(&ca.handle_cmc(&request, client.old_cert.der()).body);
    assert_eq!(pending_token(&poll1.outcome), id);
    let poll2 = parse(&ca.handle_cmc(&request, client.old_cert.der()).body);
    assert_eq!(poll2.outcome, Outcome::Issued);
    assert_eq!(
        poll2.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );
    // And again: the same certificate, not a second one.
    let poll3 = parse(&ca.handle_cmc(&request, client.old_cert.der()).body);
    assert_eq!(poll3.certificates[0], poll2.certificates[0]);
    assert!(ca.counters().contains(&("issued".into(), 1)));
}

#[test]
fn pending_resolved_by_virtual_time() {
    let ca = ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"after:3600\"\n");
    let client = Client::new(&ca);
    let request = client.request();
    let first = ca.handle_cmc(&request, client.old_cert.der());
    assert_eq!(first.retry_after, Some(3600));
    pending_token(&parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome);
    ca.clock().advance(Duration::from_secs(3600));
    assert_eq!(
        parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome,
        Outcome::Issued
    );
}

#[test]
fn pending_resolved_by_the_administrator_either_way() {
    for (approve, expected) in [
        (true, Outcome::Issued),
        (
            false,
            Outcome::Failed {
                fail_info: Some(CmcFailInfo::BadRequest),
            },
        ),
    ] {
        // The template's "renewals pend" flag, no rule needed.
        let ca = ca_with(&format!(
            "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nrenewals_pend = true\n",
            renewal_codec::sample::SAMPLE_TEMPLATE_OID
        ));
        let client = Client::new(&ca);
        let request = client.request();
        let id =
            pending_token(&parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome);
        assert_eq!(ca.with_store(|s| s.list_pending()).unwrap().len(), 1);
        pending_token(&parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome);
        assert!(ca.decide_pending(id, approve).unwrap());
        assert!(
            !ca.decide_pending(id + 1, approve).unwrap(),
            "unknown ids are refused"
        );
        assert_eq!(
            parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome,
            expected
        );
        assert!(ca.with_store(|s| s.list_pending()).unwrap().is_empty());
    }
}

#[test]
fn issued_out_of_band_and_revoked() {
    let ca = ca_with("[[rule]]\ndisposition = \"issued-out-of-band\"\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert_eq!(
        (resp.outcome, resp.status_string.as_deref()),
        (Outcome::Issued, Some("Issued out of band"))
    );
    assert_eq!(
        resp.certificates.len(),
        2,
        "only the CA chain, no new certificate"
    );

    let ca = ca_with("[[rule]]\ndisposition = \"revoked\"\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert_eq!(resp.status_string.as_deref(), Some("Revoked"));
    let serial = renewal_codec::cmc::verify_request::hex(
        resp.certificates[0]
            .value()
            .tbs_certificate()
            .serial_number()
            .as_bytes(),
    );
    assert!(ca.with_store(|s| s.is_revoked(&serial)).unwrap());
}

#[test]
fn rules_match_in_order_by_subject_and_request_number() {
    let ca = ca_with(
        "[[rule]]\nsubject = \"Mallory\"\ndisposition = \"deny\"\n\n\
         [[rule]]\nsubject = \"Alice\"\nrequest = 2\ndisposition = \"deny\"\nreason = \"second\"\n\n\
         [[rule]]\ndisposition = \"issue\"\n",
    );
    let client = Client::new(&ca);
    let outcomes: Vec<_> = (0..3)
        .map(|_| {
            let request = client.request_for_another_key();
            parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome
        })
        .collect();
    assert_eq!(outcomes[0], Outcome::Issued);
    assert!(matches!(outcomes[1], Outcome::Failed { .. }));
    assert_eq!(outcomes[2], Outcome::Issued);
}

#[test]
fn content_faults_wrong_key_and_wrong_signer() {
    let ca = ca_with("[[rule]]\nfault = \"wrong-key-certificate\"\n");
    let client = Client::new(&ca);
    let reply = ca.handle_cmc(&client.request(), client.old_cert.der());
    assert_eq!(reply.fault, Some(TransportFault::WrongKeyCertificate));
    let resp = parse(&reply.body);
    assert_eq!(resp.outcome, Outcome::Issued);
    assert_ne!(
        resp.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );

    let ca = ca_with("[[rule]]\nfault = \"wrong-signer\"\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert!(matches!(
        resp.verify_signer(),
        Err(CmcError::SignatureInvalid { .. })
    ));
}

#[test]
fn adcs_style_responses() {
    let ca = ca_with("response_style = \"adcs\"\n");
    let client = Client::new(&ca);
    let resp = parse(&ca.handle_cmc(&client.request(), client.old_cert.der()).body);
    assert_eq!(resp.outcome, Outcome::Issued);
    let hash = renewal_codec::cmc::DigestAlgorithm::Sha1.digest(resp.certificates[0].der());
    assert_eq!(resp.issued_cert_hash, Some(hash));
}

#[test]
fn est_simplereenroll_in_process() {
    let ca = ca_with("[[rule]]\nrequest = 2\ndisposition = \"pending\"\nresolve = \"poll:1\"\n");
    let client = Client::new(&ca);
    let built = renewal_codec::cmc::build_renewal_request(
        &client.old_cert,
        &client.old_key,
        &client.new_key,
        &Client::params(),
    )
    .unwrap();
    let (reply, _) = ca.handle_simple(&built.pkcs10_der, client.old_cert.der());
    let SimpleReply::Issued(der) = reply else {
        panic!("{reply:?}")
    };
    let resp = parse(&der);
    assert_eq!(
        resp.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );
    // Second request pends; polling with the same PKCS#10 collects it.
    let other = Client::with_keys(
        &ca,
        renewal_codec::cmc::SoftwareKey::generate_p256().unwrap(),
        renewal_codec::cmc::SoftwareKey::generate_p256().unwrap(),
    );
    let built = renewal_codec::cmc::build_renewal_request(
        &client.old_cert,
        &client.old_key,
        &other.new_key,
        &Client::params(),
    )
    .unwrap();
    assert!(matches!(
        ca.handle_simple(&built.pkcs10_der, client.old_cert.der()).0,
        SimpleReply::Pending(5)
    ));
    assert!(matches!(
        ca.handle_simple(&built.pkcs10_der, client.old_cert.der()).0,
        SimpleReply::Issued(_)
    ));
    // A PKCS#10 for another subject is refused: the TLS identity is the authority.
    use der::Encode;
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: std::str::FromStr::from_str("CN=Mallory").unwrap(),
        public_key: other.new_key.public_key().clone(),
        attributes: Default::default(),
    };
    let signature = other.new_key.sign(&info.to_der().unwrap()).unwrap();
    let csr = x509_cert::request::CertReq {
        info,
        algorithm: other.new_key.algorithm().x509_identifier().unwrap(),
        signature: der::asn1::BitString::from_bytes(&signature).unwrap(),
    };
    let (reply, _) = ca.handle_simple(&csr.to_der().unwrap(), client.old_cert.der());
    match reply {
        SimpleReply::Rejected(r) => assert_eq!(r.codes().http, 400, "{r}"),
        other => panic!("{other:?}"),
    }
}
