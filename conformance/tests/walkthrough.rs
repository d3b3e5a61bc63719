//! The README's walk-through, command by command, with the real binaries: provision a virtual
//! card (`sim-card init`, `keygen`), enroll it (`sim-ca issue`, `sim-card import-cert`), serve
//! the CA, `renew run`; then a pending renewal: exit code 3, administrator approval,
//! `renew resume`; `renew status` and `renew recover`.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{Served, bin, enroll_virtual_card, ok};

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn serve_ca(dir: &Path, scenario: Option<&Path>) -> (Served, u16) {
    common::serve_ca(&dir.join("ca"), scenario)
}

fn renew(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = bin("renew");
    cmd.args(args)
        .arg("--token")
        .arg(format!("sim:{}", dir.join("card.json").display()))
        .args(["--pin-env", "CARD_PIN", "--journal"])
        .arg(dir.join("journal.jsonl"))
        .env("CARD_PIN", "123456");
    cmd
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cardrenew-walk-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn readme_walkthrough_renews_the_virtual_card() {
    let dir = temp("run");
    enroll_virtual_card(&dir);
    let (_ca, port) = serve_ca(&dir, None);
    let url = format!("https://localhost:{port}");
    let chain = dir.join("ca/ca-chain.pem");
    let out = ok(&mut renew(
        &dir,
        &[
            "run",
            "--ca",
            &url,
            "--ca-cert",
            chain.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(out.contains("\"outcome\":\"renewed\""), "{out}");
    let status = ok(&mut renew(&dir, &["status"]));
    assert!(
        status.starts_with("9a  p256  CN=Alice Example,O=Example"),
        "{status}"
    );
    assert!(status.contains("journal: done"), "{status}");
    assert_eq!(status.lines().count(), 2, "one container only: {status}");
    let shown = ok(bin("sim-card")
        .args(["show", "--state"])
        .arg(dir.join("card.json")));
    let old_serial = ok(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(dir.join("alice.pem")));
    let old_serial = old_serial.trim().trim_start_matches("serial=");
    assert!(
        !shown.replace(':', "").contains(old_serial),
        "the old certificate is gone: {shown}"
    );
    assert!(ok(&mut renew(&dir, &["recover"])).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pending_renewal_exit_code_then_resume_after_approval() {
    let dir = temp("pending");
    enroll_virtual_card(&dir);
    let scenario = dir.join("scenario.toml");
    std::fs::write(
        &scenario,
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
    )
    .unwrap();
    let (_ca, port) = serve_ca(&dir, Some(&scenario));
    let url = format!("https://localhost:{port}");
    let chain = dir.join("ca/ca-chain.pem");
    let out = output(&mut renew(
        &dir,
        &[
            "run",
            "--ca",
            &url,
            "--ca-cert",
            chain.to_str().unwrap(),
            "--max-polls",
            "0",
        ],
    ));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second run refuses to start over an unfinished renewal.
    let again = output(&mut renew(
        &dir,
        &["run", "--ca", &url, "--ca-cert", chain.to_str().unwrap()],
    ));
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        output(&mut renew(&dir, &["recover"])).status.code(),
        Some(3)
    );
    common::approve_first_pending(&dir.join("ca"));
    let out = ok(&mut renew(
        &dir,
        &[
            "resume",
            "--ca",
            &url,
            "--ca-cert",
            chain.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(out.contains("\"outcome\":\"renewed\""), "{out}");
    assert!(ok(&mut renew(&dir, &["status"])).contains("journal: done"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// ADCS's own web protocols with the real binaries: `renew policy --cep` reads sim-ca's
/// MS-XCEP policy (templates with validity and renewal period, the CES URI with certificate
/// authentication, renewal only) over the card's TLS; `renew run --cep` finds the CES URI and
/// the template there and renews over MS-WSTEP; `renew run --mode wstep --ca` likewise.
#[test]
fn renewal_through_cep_and_ces() {
    let dir = temp("cep");
    enroll_virtual_card(&dir);
    let (_ca, port) = serve_ca(&dir, None);
    let cep = format!("https://localhost:{port}/ADPolicyProvider_CEP_Certificate/service.svc/CEP");
    let chain = dir.join("ca/ca-chain.pem");
    let shown = ok(&mut renew(
        &dir,
        &[
            "policy",
            "--cep",
            &cep,
            "--ca-cert",
            chain.to_str().unwrap(),
        ],
    ));
    assert!(
        shown.contains(
            "template SmartcardUser (1.3.6.1.4.1.311.21.8.1234567.7654321.1.2.3.4.100), schema 2, \
             validity 365 d, renewal period 42 d"
        ),
        "{shown}"
    );
    let ces = format!("https://localhost:{port}/cardrenew_CES_Certificate/service.svc/CES");
    assert!(
        shown.contains(&format!(
            "CA 0: {ces} (certificate, priority 1, renewal only)"
        )),
        "{shown}"
    );

    let before = std::fs::read(dir.join("card.json")).unwrap();
    let out = output(&mut renew(
        &dir,
        &[
            "run",
            "--cep",
            &cep,
            "--ca-cert",
            chain.to_str().unwrap(),
            "--json",
        ],
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("enrollment service {ces}")),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["outcome"], "renewed", "{json}");
    assert_eq!(
        json["pin_prompts"], 1,
        "one PIN prompt for CEP and CES together: {json}"
    );
    assert_ne!(std::fs::read(dir.join("card.json")).unwrap(), before);

    let url = format!("https://localhost:{port}");
    let out = output(&mut renew(
        &dir,
        &[
            "run",
            "--mode",
            "wstep",
            "--ca",
            &url,
            "--ca-cert",
            chain.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
