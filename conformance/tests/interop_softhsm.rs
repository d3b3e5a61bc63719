//! Interop mode on a real PKCS#11 implementation: `conformance --token pkcs11:…` runs every
//! applicable scenario on SoftHSM2 (a private token directory, given to the child process as
//! `SOFTHSM2_CONF`), lists the others as skipped with the reason, and leaves the token empty.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{path::Path, process::Command};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[test]
fn the_matrix_on_softhsm2() {
    let present = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("softhsm2-util").is_file()));
    if !present || !Path::new(MODULE).exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "softhsm2 is required under CI=true"
        );
        eprintln!("SKIP: softhsm2 not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cardrenew-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/tokens/\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            "interop",
            "--so-pin",
            "12345678",
            "--pin",
            "654321",
        ])
        .output()
        .unwrap();
    assert!(init.status.success());
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
