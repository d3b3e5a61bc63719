//! CA-side response builder and client-side parser, against each other and against OpenSSL.
// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use der::asn1::{GeneralizedTime, Int};
use der::{Decode, Encode};
use renewal_codec::{
    cmc::{
        CmcError, DigestAlgorithm, Limits, Outcome, ResponseForm, ResponseParams, StatusStyle,
        build_certs_only, build_full_response, parse_response, status::CmcFailInfo,
    },
    sample::{Sample, issue_user_certificate},
    x509::verify_issued_by,
};

fn issued(sample: &Sample) -> renewal_codec::cmc::Retained<x509_cert::Certificate> {
    use renewal_codec::cmc::Signer;
    issue_user_certificate(
        &sample.ca_key,
        &sample.ca_cert,
        sample.new_key.public_key(),
        renewal_codec::sample::fixed_now(),
    )
    .unwrap()
}

fn params(sample: &Sample, outcome: Outcome, style: StatusStyle) -> ResponseParams {
    let issued = matches!(outcome, Outcome::Issued).then(|| issued(sample));
    ResponseParams {
        outcome,
        status_string: Some("Issued".into()),
        style,
        request_body_part: 1,
        transaction_id: Some(Int::from_der(&77u32.to_der().unwrap()).unwrap()),
        recipient_nonce: Some(vec![5; 16]),
        issued,
        chain: vec![],
        digest: DigestAlgorithm::Sha256,
    }
}

#[test]
fn issued_v2_roundtrips_and_verifies() {
    let sample = Sample::deterministic().unwrap();
    let p = params(&sample, Outcome::Issued, StatusStyle::V2);
    let der = build_full_response(&p, &sample.ca_cert, &sample.ca_key).unwrap();
    let resp = parse_response(&der, &Limits::default()).unwrap();
    assert_eq!(resp.form, ResponseForm::FullPkiResponse);
    assert_eq!(resp.outcome, Outcome::Issued);
    assert_eq!(resp.recipient_nonce.as_deref(), Some(&[5u8; 16][..]));
    assert_eq!(resp.transaction_id.as_ref().unwrap().as_bytes(), &[77]);
    assert_eq!(resp.certificates[0], p.issued.clone().unwrap());
    assert_eq!(resp.certificates[1], sample.ca_cert);
    assert_eq!(resp.verify_signer().unwrap(), &sample.ca_cert);
    verify_issued_by(&resp.certificates[0], sample.ca_cert.value()).unwrap();
    assert!(
        resp.issued_cert_hash.is_none(),
        "V2 style carries no MS hash"
    );
}

#[test]
fn issued_adcs_style_carries_status_v1_and_the_issued_cert_hash() {
    let sample = Sample::deterministic().unwrap();
    let p = params(&sample, Outcome::Issued, StatusStyle::Adcs);
    let der = build_full_response(&p, &sample.ca_cert, &sample.ca_key).unwrap();
    let resp = parse_response(&der, &Limits::default()).unwrap();
    assert_eq!(resp.outcome, Outcome::Issued);
    assert_eq!(resp.status_string.as_deref(), Some("Issued"));
    let hash = DigestAlgorithm::Sha1.digest(p.issued.as_ref().unwrap().der());
    assert_eq!(resp.issued_cert_hash.as_deref(), Some(hash.as_slice()));
    // The body starts like ADCS's: statusInfo v1 at bp 1, add-attributes at bp 2.
    let body = resp.body.unwrap();
    assert_eq!(body.control_sequence[0].body_part_id, 1);
    assert_eq!(
        body.control_sequence[0].attr_type,
        renewal_codec::cmc::oids::ID_CMC_STATUS_INFO
    );
    assert_eq!(
        body.control_sequence[1].attr_type,
        renewal_codec::cmc::oids::MS_CMC_ADD_ATTRIBUTES
    );
}

#[test]
fn pending_and_failed_outcomes_survive_both_styles() {
    let sample = Sample::deterministic().unwrap();
    let pend_time =
        GeneralizedTime::from_unix_duration(Duration::from_secs(1_767_229_200)).unwrap();
    let outcomes = [
        Outcome::Pending {
            token: b"req-1234".to_vec(),
            retry_at: pend_time,
        },
        Outcome::Failed {
            fail_info: Some(CmcFailInfo::BadIdentity),
        },
        Outcome::Failed { fail_info: None },
    ];
    for style in [StatusStyle::V2, StatusStyle::Adcs] {
        for outcome in &outcomes {
            let p = params(&sample, outcome.clone(), style);
            let der = build_full_response(&p, &sample.ca_cert, &sample.ca_key).unwrap();
            let resp = parse_response(&der, &Limits::default()).unwrap();
            assert_eq!(&resp.outcome, outcome, "{style:?}");
            assert!(resp.certificates.iter().all(|c| c == &sample.ca_cert));
            resp.verify_signer().unwrap();
        }
    }
}

#[test]
fn certs_only_and_bare_certificate() {
    let sample = Sample::deterministic().unwrap();
    let cert = issued(&sample);
    let der = build_certs_only(&[cert.clone(), sample.ca_cert.clone()]).unwrap();
    let resp = parse_response(&der, &Limits::default()).unwrap();
    assert_eq!(resp.form, ResponseForm::CertsOnly);
    assert_eq!(
        resp.certificates,
        vec![cert.clone(), sample.ca_cert.clone()]
    );
    assert!(matches!(resp.verify_signer(), Err(CmcError::NoSigners)));

    // base64, as EST sends it, and PEM.
    let b64 = base64_encode(&der);
    assert_eq!(
        parse_response(b64.as_bytes(), &Limits::default())
            .unwrap()
            .certificates
            .len(),
        2
    );
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert.der()).unwrap();
    let bare = parse_response(pem.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(bare.form, ResponseForm::BareCertificate);
    assert_eq!(bare.certificates, vec![cert]);
}

#[test]
fn response_signed_by_a_wrong_key_is_rejected() {
    let sample = Sample::deterministic().unwrap();
    let other = Sample::generate(renewal_codec::sample::KeyKind::P256).unwrap();
    let p = params(&sample, Outcome::Issued, StatusStyle::V2);
    // Claims to be the sample CA, signed by another key.
    let der = build_full_response(&p, &sample.ca_cert, &other.ca_key).unwrap();
    let resp = parse_response(&der, &Limits::default()).unwrap();
    assert!(matches!(
        resp.verify_signer(),
        Err(CmcError::SignatureInvalid { signer: 0, .. })
    ));
}

#[test]
fn openssl_reads_our_responses() {
    if !test_kit::require_tools(&["openssl"]) {
        return;
    }
    let sample = Sample::deterministic().unwrap();
    let dir = test_kit::temp_dir("resp");
    let full = build_full_response(
        &params(&sample, Outcome::Issued, StatusStyle::Adcs),
        &sample.ca_cert,
        &sample.ca_key,
    )
    .unwrap();
    std::fs::write(dir.join("full.der"), &full).unwrap();
    std::fs::write(
        dir.join("ca.pem"),
        der::pem::encode_string(
            "CERTIFICATE",
            der::pem::LineEnding::LF,
            sample.ca_cert.der(),
        )
        .unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "cms", "-verify", "-inform", "DER", "-binary", "-purpose", "any", "-in",
        ])
        .arg(dir.join("full.der"))
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .arg("-out")
        .arg(dir.join("body.der"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read(dir.join("body.der")).unwrap();
    assert_eq!(
        renewal_codec::cmc::pki::PkiResponse::from_der(&body)
            .unwrap()
            .control_sequence
            .len(),
        4
    );
    let certs_only = build_certs_only(&[issued(&sample), sample.ca_cert.clone()]).unwrap();
    std::fs::write(dir.join("certs.p7"), certs_only).unwrap();
    let printed = test_kit::run_bytes(
        std::process::Command::new("openssl")
            .args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
            .arg(dir.join("certs.p7")),
    );
    let printed = String::from_utf8_lossy(&printed);
    assert_eq!(printed.matches("subject=").count(), 2, "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}
