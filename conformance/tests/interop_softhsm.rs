//! Interop mode on a real PKCS#11 implementation: `conformance --token pkcs11:…` runs every
//! applicable scenario on SoftHSM2 (a private token directory, given to the child process as
//! `SOFTHSM2_CONF`), lists the others as skipped with the reason, and leaves the token empty.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{path::Path, process::Command};

use conformance::softhsm::{self, MODULE};

#[test]
fn the_matrix_on_softhsm2() {
    if !softhsm::available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "softhsm2 is required under CI=true"
        );
        eprintln!("SKIP: softhsm2 not installed");
        return;
    }
    let token = softhsm::PrivateToken::init("interop", "interop", "654321").unwrap();
    let (dir, conf) = (token.dir, token.conf);
    let exe = std::env::current_exe().unwrap();
    let conformance = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("conformance");
    let out = Command::new(conformance)
        .args([
            "--token",
            &format!("pkcs11:{MODULE}:interop"),
            "--pin-env",
            "TOKEN_PIN",
            "--filter",
            "fullcmc",
            "--report",
        ])
        .arg(dir.join("report"))
        .env("SOFTHSM2_CONF", &conf)
        .env("TOKEN_PIN", "654321")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 unexpected"), "{stdout}");
    assert!(
        stdout.contains("skipped: needs the virtual card's fault plan"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report/report.json")).unwrap()).unwrap();
    let scenarios = report["scenarios"].as_array().unwrap();
    let ran = scenarios.iter().filter(|s| s["skipped"].is_null()).count();
    let skipped = scenarios.len() - ran;
    assert!(ran >= 30 && skipped >= 15, "{ran} ran, {skipped} skipped");
    assert!(
        scenarios
            .iter()
            .filter(|s| s["skipped"].is_null())
            .all(|s| s["passed"] == true && s["pin_prompts"] == 1)
    );
    // Nothing left on the token.
    let listed = Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            "interop",
            "--login",
            "--pin",
            "654321",
            "--list-objects",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("Object;"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
