//! An attested renewal through real middleware: `sim-ca serve` with a template that renews only
//! keys attested under the simulated vendor root, the virtual card behind pcscd and vpcd, and
//! the real `renew` binary. Without `--attest` the CA refuses and the new key goes (nothing left
//! on the card); with it, the card's attestation of the new key rides in the PKCS#10, the CA
//! renews, still one PIN prompt's worth of PIN (from the environment).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{bin, enroll_virtual_card, ok, pcscd_installed, serve_ca, wait_for_card};
use sim_card::harness::{Pcscd, ServedCard};

#[test]
fn a_ca_requiring_attested_keys_renews_the_card_only_with_its_attestation() {
    if !pcscd_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pcscd is missing (apt-get install pcscd vsmartcard-vpcd opensc)"
        );
        println!("SKIP: pcscd is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cardrenew-attest-pcsc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    enroll_virtual_card(&dir);
    let root = ok(bin("sim-card").arg("attestation-root"));
    let scenario = dir.join("attested.toml");
    std::fs::write(
        &scenario,
        format!(
            "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nattestation_roots = \"\"\"\n{root}\"\"\"\n",
            renewal_client::sample::SAMPLE_TEMPLATE_OID
        ),
    )
    .unwrap();
    let (_ca, port) = serve_ca(&dir.join("ca"), Some(&scenario));

    let pcscd = Pcscd::start().unwrap();
    let reader = pcscd.reader();
    let served_state = dir.join("served.json");
    std::fs::copy(dir.join("card.json"), &served_state).unwrap();
    let applet = sim_card::PivApplet::from_state(sim_card::CardState::load(&served_state).unwrap());
    let served = ServedCard::start(applet, Some(served_state.clone()));
    wait_for_card(&reader);

    let renew = |attest: bool, journal: &str| {
        let mut cmd = bin("renew");
        cmd.args([
            "run",
            "--ca",
            &format!("https://localhost:{port}"),
            "--ca-cert",
        ])
        .arg(dir.join("ca/ca-chain.pem"))
        .args(["--token", &format!("piv-pcsc:{reader}")])
        .args(["--pin-env", "CARD_PIN", "--journal"])
        .arg(dir.join(journal))
        .env("CARD_PIN", "123456");
        if attest {
            cmd.arg("--attest");
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let containers = || {
        let out = ok(bin("renew")
            .args(["status", "--json", "--token", &format!("piv-pcsc:{reader}")])
            .args(["--pin-env", "CARD_PIN"])
            .env("CARD_PIN", "123456"));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["containers"]
            .as_array()
            .unwrap()
            .len()
    };

    let (code, text) = renew(false, "plain.jsonl");
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("attested key"), "{text}");
    assert_eq!(containers(), 1, "the refused attempt's new key is gone");

    let (code, text) = renew(true, "attested.jsonl");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("renewed"), "{text}");
    assert_eq!(containers(), 1, "the old key and certificate are gone");
    drop(served);
    drop(pcscd);
    let _ = std::fs::remove_dir_all(&dir);
}
