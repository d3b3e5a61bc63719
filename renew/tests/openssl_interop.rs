//! Independent checks: requests built by `renew build-request` are verified by the OpenSSL CLI,
//! a tool we did not write. `cms -verify` checks both signers (the SKI signer through a
//! throwaway self-signed certificate of the new key, `-noverify`), `req -verify` the PKCS#10
//! proof of possession, `asn1parse` the DER, `verify` the old certificate's chain.
// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{path::Path, process::Command};

use test_kit::{require_tools, run_bytes as run, temp_dir};

fn renew() -> Command {
    Command::new(env!("CARGO_BIN_EXE_renew"))
}

/// Offset of the PKCS#10 inside the PKIData: the SEQUENCE inside the `[0]` tcr.
fn pkcs10_offset(pkidata: &Path) -> String {
    let dump = String::from_utf8(run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(pkidata)))
    .expect("utf8");
    let lines: Vec<&str> = dump.lines().collect();
    let tcr = lines
        .iter()
        .position(|l| l.contains("cont [ 0 ]"))
        .expect("a tcr [0] in PKIData");
    // [0] { INTEGER bodyPartID, SEQUENCE CertificationRequest }
    let seq = lines[tcr + 2];
    assert!(seq.contains("SEQUENCE"), "unexpected layout: {seq}");
    seq.split(':').next().expect("offset").trim().to_string()
}

fn check_kind(kind: &str) {
    if !require_tools(&["openssl"]) {
        return;
    }
    let dir = temp_dir(&format!("openssl-{kind}"));
    run(renew()
        .args(["sample", "--kind", kind, "--out-dir"])
        .arg(&dir));
    // A second request from the CLI's build-request, with PEM output, as a user would do it.
    run(renew()
        .args(["build-request", "--cert"])
        .arg(dir.join("old.pem"))
        .arg("--key")
        .arg(dir.join("old.key"))
        .arg("--new-key")
        .arg(dir.join("new.key"))
        .arg("--out")
        .arg(dir.join("req.der")));
    let req = dir.join("req.der");

    run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&req));
    let verified = run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.pem"))
        .arg(dir.join("old.pem")));
    assert!(String::from_utf8_lossy(&verified).contains(": OK"));

    let throwaway = dir.join("new-selfsigned.pem");
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=throwaway",
            "-key",
        ])
        .arg(dir.join("new.key"))
        .arg("-out")
        .arg(&throwaway));
    let pkidata = dir.join("pkidata.der");
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-binary",
            "-noverify",
            "-purpose",
            "any",
        ])
        .arg("-in")
        .arg(&req)
        .arg("-certfile")
        .arg(&throwaway)
        .arg("-out")
        .arg(&pkidata)
        .output()
        .expect("openssl cms");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Verification successful"));

    let p10 = dir.join("p10.der");
    run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-noout", "-in"])
        .arg(&pkidata)
        .args(["-strparse", &pkcs10_offset(&pkidata), "-out"])
        .arg(&p10));
    let out = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-inform", "DER", "-in"])
        .arg(&p10)
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("verify OK"), "{text}");

    // A tampered request must fail OpenSSL's check too (the check is not vacuous).
    let mut bytes = std::fs::read(&req).expect("req");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = dir.join("tampered.der");
    std::fs::write(&tampered, bytes).expect("write");
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-binary",
            "-noverify",
            "-in",
        ])
        .arg(&tampered)
        .arg("-certfile")
        .arg(&throwaway)
        .arg("-out")
        .arg("/dev/null")
        .output()
        .expect("openssl cms");
    assert!(
        !out.status.success(),
        "OpenSSL accepted a tampered signature"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn p256_request_verifies_with_openssl() {
    check_kind("p256");
}

#[test]
fn rsa2048_request_verifies_with_openssl() {
    check_kind("rsa2048");
}

/// The OpenSSL view agrees with ours on the signer order (MS-WCCE: [0] SKI, [1] issuer+serial).
#[test]
fn openssl_sees_the_ms_wcce_signer_order() {
    if !require_tools(&["openssl"]) {
        return;
    }
    let dir = temp_dir("openssl-order");
    run(renew()
        .args(["sample", "--deterministic", "--out-dir"])
        .arg(&dir));
    let printed = String::from_utf8(run(Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
        .arg(dir.join("request.der"))))
    .expect("utf8");
    let ski = printed.find("subjectKeyIdentifier").expect("SKI signer");
    let isn = printed
        .find("issuerAndSerialNumber")
        .expect("issuer+serial signer");
    assert!(ski < isn, "signer 0 must be the SKI signer");
    assert!(printed.contains("eContentType: id-cct-PKIData"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An attested PKCS#10 (a key generated on the simulated card, its attestation in the
/// `id-aa-attestation` attribute): OpenSSL verifies the proof of possession over it, and
/// verifies the attestation certificate through the card's device certificate to the vendor
/// root — the chain a CA configured with that root walks.
#[test]
fn openssl_verifies_an_attested_request_and_its_attestation_chain() {
    use der::{EncodePem, pem::LineEnding};
    use renewal_codec::cmc::{
        SoftwareKey, attestation::KeyAttestation, request::build_attested_pkcs10,
    };
    use sim_card::{attestation, crypto, state::KeyAlgorithm};
    if !require_tools(&["openssl"]) {
        return;
    }
    let dir = temp_dir("openssl-attested");
    let sample = renewal_codec::sample::Sample::deterministic().unwrap();
    let mut counter = 0;
    let key = crypto::generate(
        KeyAlgorithm::EccP256,
        &mut crypto::DetRng::new(3, &mut counter),
    )
    .unwrap();
    let device = attestation::provision(3).unwrap();
    let statement = attestation::attest(
        &device,
        &attestation::Attested {
            slot: 0x9a,
            key: &key,
            serial: 1,
            firmware: [5, 7, 1],
            touch_policy: 1,
        },
    )
    .unwrap();
    let req = build_attested_pkcs10(
        &sample.old_cert,
        &SoftwareKey::p256_from_scalar(&key.private.0).unwrap(),
        None,
        Some(&KeyAttestation {
            statement: statement.clone(),
            device_certificate: device.certificate.clone(),
        }),
    )
    .unwrap();
    std::fs::write(dir.join("req.der"), req.der()).unwrap();
    // `run` fails the test unless OpenSSL exits 0: the signature over the attribute holds.
    run(Command::new("openssl")
        .args(["req", "-verify", "-noout", "-inform", "DER", "-in"])
        .arg(dir.join("req.der")));
    let dump = String::from_utf8(run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(dir.join("req.der"))))
    .unwrap();
    assert!(
        dump.contains("1.2.840.113549.1.9.16.2.59") && dump.contains("1.3.6.1.4.1.41482.3.7"),
        "{dump}"
    );
    let pem = |der: &[u8]| {
        use der::Decode;
        x509_cert::Certificate::from_der(der)
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(dir.join("statement.pem"), pem(&statement)).unwrap();
    std::fs::write(dir.join("device.pem"), pem(&device.certificate)).unwrap();
    std::fs::write(
        dir.join("root.pem"),
        attestation::vendor_root_pem().unwrap(),
    )
    .unwrap();
    let chain = String::from_utf8(run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("root.pem"))
        .arg("-untrusted")
        .arg(dir.join("device.pem"))
        .arg(dir.join("statement.pem"))))
    .unwrap();
    assert!(chain.contains("statement.pem: OK"), "{chain}");
}
