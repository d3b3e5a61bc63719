//! A full renewal on SoftHSM2 through PKCS#11 with the `renew` binary
//! (`--token pkcs11:MODULE:LABEL`) against sim-ca over loopback mutual TLS: one PIN prompt,
//! then exactly one container left — the old container's id, now holding the new key and its
//! new certificate — and the same `--container` renews twice more (MS-WSTEP, EST fullcmc).
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` at module initialisation; setting the environment in-process
//! is `unsafe` (forbidden here), so this binary (no libtest harness) prepares a private token
//! directory and runs itself again with the variable set.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
};

use conformance::softhsm::{self, MODULE};
use renewal_client::token::{
    ContainerId, KeyAlgorithm, Token,
    pin::{CountingPinSource, StaticPin},
    pkcs11::Pkcs11Token,
};

const LABEL: &str = "cardrenew-e2e";
const CHILD: &str = "CARDRENEW_SOFTHSM_CHILD";

fn main() {
    if test_kit::answered_test_listing("softhsm_renewal") {
        return;
    }
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    if !softhsm::available() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("softhsm2 is required under CI=true (scripts/test.sh installs it)");
        }
        eprintln!("SKIP: softhsm2 not installed");
        return;
    }
    let token = softhsm::PrivateToken::init("softhsm-e2e", LABEL, "123456").unwrap();
    let (dir, conf) = (token.dir, token.conf);
    let status = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.as_os_str())
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the SoftHSM2 renewal failed");
}

fn child() {
    let dir = std::path::PathBuf::from(std::env::var_os(CHILD).unwrap());
    // A CA on loopback (same fixture as the other end-to-end tests, card replaced below).
    let world = conformance::harness::World::new("", KeyAlgorithm::EcP256).unwrap();
    let ca = world.ca.as_ref().unwrap();
    let chain = dir.join("ca-chain.pem");
    let pem =
        |der: &[u8]| der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap();
    std::fs::write(
        &chain,
        pem(ca.authority().issuing.cert.der()) + &pem(ca.authority().root.cert.der()),
    )
    .unwrap();

    // Provision SoftHSM2 as an administrator would: a key on the token, a certificate for it.
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("123456")));
    let (old_id, old_cert) = {
        let mut token = Pkcs11Token::open(Path::new(MODULE), Some(LABEL), pins.clone()).unwrap();
        let key = token.generate(KeyAlgorithm::EcP256).unwrap();
        let cert = renewal_client::sample::issue_user_certificate(
            &ca.authority().issuing.key,
            &ca.authority().issuing.cert,
            key.public_key.as_ref().unwrap(),
            ca.clock().now(),
        )
        .unwrap();
        token.install_certificate(&key.id, cert.der()).unwrap();
        (key.id, cert)
    };

    // The renewal, by the binary a user runs.
    let out = renew_run(&world.base_url, &chain, &old_id, &dir, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "renew run: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"outcome\":\"renewed\""), "{stdout}");
    assert!(
        stdout.contains("\"pin_prompts\":1"),
        "one PIN prompt: {stdout}"
    );

    // Exactly one container, where the old one was (the new key took over its CKA_ID and
    // label): the new key with its new certificate from the CA.
    let token: Arc<Mutex<Pkcs11Token>> = Arc::new(Mutex::new(
        Pkcs11Token::open(Path::new(MODULE), Some(LABEL), pins).unwrap(),
    ));
    let mut previous = old_cert.clone();
    let check = |previous: &renewal_client::cmc::Retained<x509_cert::Certificate>| {
        let containers = token.lock().unwrap().containers().unwrap();
        assert_eq!(containers.len(), 1, "{containers:?}");
        let only = &containers[0];
        assert_eq!(
            only.id, old_id,
            "PKCS#11: the renewed key keeps the container's id"
        );
        let cert = renewal_client::cmc::Retained::<x509_cert::Certificate>::from_der(
            only.certificate.as_deref().unwrap(),
        )
        .unwrap();
        assert!(ca.authority().issued_by_us(&cert));
        assert_eq!(
            Some(cert.value().tbs_certificate().subject_public_key_info()),
            only.public_key.as_ref()
        );
        assert_ne!(&cert, previous);
        assert_eq!(
            cert.value().tbs_certificate().subject(),
            old_cert.value().tbs_certificate().subject()
        );
        cert
    };
    previous = check(&previous);
    println!("SoftHSM2 renewal: ok (container {old_id} renewed in place)");

    // And again, twice, with the same --container: over MS-WSTEP (CES), then EST fullcmc —
    // a renewal repeats (it used to find "container ... is empty": the new key had a new id).
    for (round, extra) in [&["--mode", "wstep"][..], &[][..]].into_iter().enumerate() {
        let out = renew_run(&world.base_url, &chain, &old_id, &dir, extra);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "renewal {} ({extra:?}): {stdout}{}",
            round + 2,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"outcome\":\"renewed\""), "{stdout}");
        assert!(stdout.contains("\"pin_prompts\":1"), "{stdout}");
        previous = check(&previous);
    }
    println!("SoftHSM2: three consecutive renewals of one entry: ok");
}

/// `renew run` on SoftHSM2's `container`, as a user runs it, with `extra` arguments.
fn renew_run(
    ca: &str,
    chain: &Path,
    container: &ContainerId,
    dir: &Path,
    extra: &[&str],
) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let renew = exe.parent().and_then(Path::parent).unwrap().join("renew");
    Command::new(renew)
        .args(["run", "--ca", ca, "--ca-cert"])
        .arg(chain)
        .args(extra)
        .arg("--token")
        .arg(format!("pkcs11:{MODULE}:{LABEL}"))
        .args([
            "--container",
            &container.0,
            "--pin-env",
            "TOKEN_PIN",
            "--json",
            "--journal",
        ])
        .arg(dir.join("journal.jsonl"))
        .env("TOKEN_PIN", "123456")
        .output()
        .unwrap()
}
