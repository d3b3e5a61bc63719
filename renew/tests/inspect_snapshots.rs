//! `renew inspect` output, snapshotted (insta) for a deterministic request and response and
//! for the Microsoft vectors. Reviewed by hand when accepted: the trees name the CMC and
//! Microsoft OIDs, list the signers and say whether each verifies.
// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use der::{Decode, Encode, asn1::Int};
use renewal_codec::{
    cmc::{
        DigestAlgorithm, Limits, Outcome, RenewalParams, ResponseParams, StatusStyle,
        build_full_response, build_renewal_request,
    },
    inspect::inspect,
    sample::{Sample, fixed_now, issue_user_certificate},
};

fn tree(bytes: &[u8]) -> String {
    inspect(bytes, &Limits::default())
        .expect("inspect")
        .tree
        .render()
}

fn deterministic_request() -> Vec<u8> {
    let sample = Sample::deterministic().unwrap();
    build_renewal_request(
        &sample.old_cert,
        &sample.old_key,
        &sample.new_key,
        &RenewalParams {
            template: None,
            transaction_id: 0x0102_0304,
            sender_nonce: (0u8..16).collect(),
            digest: DigestAlgorithm::Sha256,
            attestation: None,
        },
    )
    .unwrap()
    .der
}

#[test]
fn deterministic_request_is_byte_stable() {
    // Same keys, nonce and transaction id: same bytes (RFC 6979 ECDSA, fixed clock).
    assert_eq!(deterministic_request(), deterministic_request());
    let hash = renewal_codec::cmc::verify_request::hex(
        &DigestAlgorithm::Sha256.digest(&deterministic_request()),
    );
    insta::assert_snapshot!("deterministic_request_sha256", hash);
}

#[test]
fn inspect_deterministic_request() {
    insta::assert_snapshot!(tree(&deterministic_request()));
}

#[test]
fn inspect_deterministic_adcs_response() {
    use renewal_codec::cmc::Signer;
    let sample = Sample::deterministic().unwrap();
    let issued = issue_user_certificate(
        &sample.ca_key,
        &sample.ca_cert,
        sample.new_key.public_key(),
        fixed_now(),
    )
    .unwrap();
    let der = build_full_response(
        &ResponseParams {
            outcome: Outcome::Issued,
            status_string: Some("Issued".into()),
            style: StatusStyle::Adcs,
            request_body_part: 1,
            transaction_id: Some(Int::from_der(&0x0102_0304u32.to_der().unwrap()).unwrap()),
            recipient_nonce: Some((0u8..16).collect()),
            issued: Some(issued),
            chain: vec![],
            digest: DigestAlgorithm::Sha256,
        },
        &sample.ca_cert,
        &sample.ca_key,
    )
    .unwrap();
    insta::assert_snapshot!(tree(&der));
}

#[test]
fn inspect_ms_docs_cmc_renewal_request() {
    insta::assert_snapshot!(tree(&test_kit::vector("ms-docs-cmc-renewal-request.der")));
}

#[test]
fn inspect_ms_wstep_renewal_request_pkcs7() {
    insta::assert_snapshot!(tree(&test_kit::vector(
        "ms-wstep-renewal-request-pkcs7.published.b64"
    )));
}

#[test]
fn inspect_ms_otpce_no_signature_signer() {
    insta::assert_snapshot!(tree(&test_kit::vector("ms-otpce-signed-cmc-request.der")));
}

#[test]
fn inspect_win11_certreq_request() {
    insta::assert_snapshot!(tree(&test_kit::vector(
        "win11-certreq-cmc-request.published.pem"
    )));
}

#[test]
fn inspect_ms_mim_response() {
    insta::assert_snapshot!(tree(&test_kit::vector("ms-mim-cmc-response-issued.der")));
}

/// The CLI's `--json` carries the same verdicts for machines.
#[test]
fn cli_json_reports_signers() {
    let out = test_kit::run_bytes(
        std::process::Command::new(env!("CARGO_BIN_EXE_renew"))
            .args(["inspect", "--json"])
            .arg(test_kit::vectors_dir().join("ms-docs-cmc-eobo-request.der")),
    );
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["kind"], "cmc-request");
    let signers = json["summary"]["signers"].as_array().unwrap();
    assert_eq!(signers.len(), 2);
    assert_eq!(signers[0]["signed_by"], "RequestKey");
    assert_eq!(signers[1]["signed_by"], "EmbeddedCertificate(0)");
    assert!(signers.iter().all(|s| s["verified"] == true));
    assert_eq!(json["summary"]["renewal"]["valid"], false);
}

/// stdin works and an unreadable input exits 1 with the reason.
#[test]
fn cli_reads_stdin_and_fails_cleanly() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_renew"))
        .args(["inspect", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\x30\x03\x02\x01")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("renew: -: malformed"), "{err}");
}

/// The lines of `tree` from the attestation attribute to the next attribute-level line.
fn attestation_lines(tree: &str) -> String {
    let mut out = Vec::new();
    let mut depth = None;
    for line in tree.lines() {
        let indent = line.len() - line.trim_start().len();
        match depth {
            None if line.trim_start().starts_with("id-aa-attestation") => {
                depth = Some(indent);
                out.push(line.trim_start().to_string());
            }
            Some(d) if indent > d => out.push(line[d..].to_string()),
            Some(_) => break,
            None => {}
        }
    }
    out.join("\n")
}

/// A PKCS#10 for a key generated on a simulated card (seeded: the same bytes every run),
/// carrying that card's attestation of `attested` (the request's own key, or another).
fn attested_pkcs10(attest_another_key: bool, swap_device: bool) -> Vec<u8> {
    use renewal_codec::cmc::{
        SoftwareKey, attestation::KeyAttestation, request::build_attested_pkcs10,
    };
    use sim_card::{attestation, crypto, state::KeyAlgorithm};
    let sample = Sample::deterministic().unwrap();
    let key = |seed| {
        let mut counter = 0;
        crypto::generate(
            KeyAlgorithm::EccP256,
            &mut crypto::DetRng::new(seed, &mut counter),
        )
        .unwrap()
    };
    let (requested, attested) = (key(1), key(if attest_another_key { 2 } else { 1 }));
    let device = attestation::provision(7).unwrap();
    let statement = attestation::attest(
        &device,
        &attestation::Attested {
            slot: 0x82,
            key: &attested,
            serial: 12_345_678,
            firmware: [5, 7, 1],
            touch_policy: 1,
        },
    )
    .unwrap();
    let device_certificate = if swap_device {
        attestation::provision(8).unwrap().certificate
    } else {
        device.certificate
    };
    build_attested_pkcs10(
        &sample.old_cert,
        &SoftwareKey::p256_rfc6979_from_scalar(&requested.private.0).unwrap(),
        None,
        Some(&KeyAttestation {
            statement,
            device_certificate,
        }),
    )
    .unwrap()
    .der()
    .to_vec()
}

#[test]
fn inspect_shows_what_a_key_attestation_says_and_what_does_not_hold() {
    let genuine = attestation_lines(&tree(&attested_pkcs10(false, false)));
    insta::assert_snapshot!("attested_pkcs10", genuine);
    let other_key = attestation_lines(&tree(&attested_pkcs10(true, false)));
    assert!(other_key.contains("certifies ANOTHER key"), "{other_key}");
    let swapped = attestation_lines(&tree(&attested_pkcs10(false, true)));
    assert!(
        swapped.contains("signed by NO certificate of the bundle"),
        "{swapped}"
    );
}

/// A CMP key update request written by OpenSSL's `openssl cmp` (vectors/cmp/README.md): the
/// header, the request with its proof of possession verified, the protection verified with the
/// old certificate it carries.
#[test]
fn inspect_openssl_cmp_key_update_request() {
    insta::assert_snapshot!(tree(&test_kit::vector("cmp/kur-p256.der")));
}

/// OpenSSL's certConf rejecting what its mock server issued: status, failInfo, text, hash.
#[test]
fn inspect_openssl_cmp_rejecting_confirmation() {
    insta::assert_snapshot!(tree(&test_kit::vector("cmp/certconf-reject.der")));
}
