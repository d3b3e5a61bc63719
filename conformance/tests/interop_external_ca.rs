//! Interop mode against an external CA: `sim-ca serve` runs as a separate process (the runner
//! knows only its URL and its `ca-chain.pem`), and `conformance --ca … --ca-cert …` renews a
//! certificate that CA issued, on three kinds of token:
//!
//! 1. the virtual card in a state file (`--token sim:card.json`, enrolled with the `sim-card`
//!    and `sim-ca issue` commands): every applicable scenario, card faults included;
//! 2. SoftHSM2 (`--token pkcs11:…`, `--modes fullcmc,cmc`): the CA scenarios and crash points;
//! 3. the same virtual card behind pcscd and vpcd (`--token piv-pcsc:…`), as a real card.
//!
//! After each run the certificate on the token is a new one that OpenSSL verifies against the
//! CA chain; bad invocations fail with exit 2 and a clear message.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` at module initialisation (setting it in-process is `unsafe`,
//! forbidden here), so this binary (no libtest harness) provisions the token in a copy of
//! itself started with the variable set.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    path::Path,
    process::{Command, Output},
    sync::Arc,
    time::{Duration, Instant},
};

use common::{Served, bin, enroll_virtual_card, ok};

use conformance::softhsm::{self, MODULE};
use renewal_client::token::{
    KeyAlgorithm, Token,
    pin::{CountingPinSource, StaticPin},
    pkcs11::Pkcs11Token,
};

const CHILD: &str = "CARDRENEW_EXTERNAL_CA_CHILD";
const LABEL: &str = "external-ca";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// `sim-ca serve` on its own state directory, as any CA the runner did not start.
fn serve_ca(state: &Path) -> (Served, String) {
    let (served, port) = common::serve_ca(state, None);
    (served, format!("https://localhost:{port}"))
}

/// The report's scenarios: (ran, skipped), asserting every one that ran passed with `prompts`.
fn judge(report_dir: &Path, prompts: Option<u64>) -> (Vec<serde_json::Value>, usize) {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.join("report.json")).unwrap()).unwrap();
    let scenarios = report["scenarios"].as_array().unwrap().clone();
    let (ran, skipped): (Vec<_>, Vec<_>) =
        scenarios.into_iter().partition(|s| s["skipped"].is_null());
    for s in &ran {
        assert_eq!(s["passed"], true, "{s}");
        if let Some(p) = prompts {
            assert_eq!(s["pin_prompts"], p, "{s}");
        }
    }
    (ran, skipped.len())
}

/// The certificate in 9A of the virtual card saved in `state`, read through our PIV backend.
fn card_certificate(state: &Path) -> Vec<u8> {
    let applet = sim_card::PivApplet::from_state(sim_card::CardState::load(state).unwrap());
    let card = Arc::new(std::sync::Mutex::new(sim_card::SimCard::new(applet)));
    let mut piv = renewal_client::token::piv::PivToken::new(
        renewal_client::token::transport::SimTransport::new(card),
        Arc::new(StaticPin::new("123456")),
        renewal_client::token::piv::ManagementKey::factory_default(),
    );
    piv.containers()
        .unwrap()
        .into_iter()
        .find(|c| c.id.0 == "9a")
        .and_then(|c| c.certificate)
        .expect("a certificate in 9a")
}

/// OpenSSL, not us, says the certificate chains to the CA.
fn openssl_verifies(chain: &Path, der: &[u8], dir: &Path) {
    let file = dir.join("check.der");
    std::fs::write(&file, der).unwrap();
    let pem = dir.join("check.pem");
    ok(Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&file)
        .arg("-out")
        .arg(&pem));
    let out = ok(Command::new("openssl")
        .args(["verify", "-partial_chain", "-CAfile"])
        .arg(chain)
        .arg(&pem));
    assert!(out.contains(": OK"), "{out}");
}

fn main() {
    if test_kit::answered_test_listing("interop_external_ca") {
        return;
    }
    if let Some(dir) = std::env::var_os(CHILD) {
        pkcs11_child(Path::new(&dir));
        return;
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let missing: Vec<_> = ["openssl", "pcscd", "softhsm2-util"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() || !softhsm::available() {
        assert!(
            !ci,
            "missing {missing:?} / SoftHSM2: required under CI=true (scripts/test.sh installs them)"
        );
        eprintln!("SKIP: missing {missing:?} or SoftHSM2; run scripts/test.sh to install");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cardrenew-extca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("ca");
    let card = dir.join("card.json");

    // The user's enrollment, with the commands the README shows.
    enroll_virtual_card(&dir);
    let (_ca, url) = serve_ca(&state);
    let chain = state.join("ca-chain.pem");
    let conformance = || {
        let mut cmd = bin("conformance");
        cmd.args(["--ca", &url, "--ca-cert"]).arg(&chain);
        cmd
    };

    bad_invocations(&conformance, &dir, &card);
    let before = card_certificate(&card);
    virtual_card(&conformance, &dir, &card);
    let after = card_certificate(&card);
    assert_ne!(before, after, "the card's certificate was renewed");
    openssl_verifies(&chain, &after, &dir);

    pending_is_abandoned(&dir, &state, &card);

    // SoftHSM2, provisioned and run in a copy of this binary with SOFTHSM2_CONF set.
    let token = softhsm::PrivateToken::init("extca-softhsm", LABEL, "654321").unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .env("SOFTHSM2_CONF", &token.conf)
        .env(CHILD, &dir)
        .env("CARDRENEW_CA_URL", &url)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&token.dir);
    assert!(
        status.success(),
        "the SoftHSM2 run against the external CA failed"
    );

    piv_pcsc(&conformance, &dir, &card, &chain);
    let _ = std::fs::remove_dir_all(&dir);
    println!("interop against an external CA: ok");
}

/// Arguments that cannot work are refused before anything touches the token.
fn bad_invocations(conformance: &dyn Fn() -> Command, dir: &Path, card: &Path) {
    let refused = |cmd: &mut Command, says: &str| {
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(says),
            "expected {says:?} in: {}",
            text(&out)
        );
    };
    refused(&mut conformance(), "give the token holding one");
    refused(
        conformance().args(["--token", "pkcs11:/nonexistent.so"]),
        "--container ID",
    );
    refused(
        conformance()
            .arg("--token")
            .arg(format!("sim:{}", card.display()))
            .args(["--modes", "fullcmc,soap"]),
        "--modes",
    );
    // A CA bundle that did not issue the card's certificate.
    let other = dir.join("other-ca");
    let (_served, _) = serve_ca(&other);
    refused(
        bin("conformance")
            .args(["--ca", "https://localhost:1", "--ca-cert"])
            .arg(other.join("ca-chain.pem"))
            .arg("--token")
            .arg(format!("sim:{}", card.display())),
        "not issued by a CA in --ca-cert",
    );
    refused(
        bin("conformance").args(["--token", "piv-pcsc"]),
        "would overwrite a card's 9A",
    );
}

/// Every applicable scenario on the virtual card's state file.
fn virtual_card(conformance: &dyn Fn() -> Command, dir: &Path, card: &Path) {
    let report = dir.join("report-sim");
    let out = conformance()
        .arg("--token")
        .arg(format!("sim:{}", card.display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 unexpected"), "{stdout}");
    assert!(
        stdout.contains("skipped: needs the simulated CA's rules or faults"),
        "{stdout}"
    );
    let (ran, skipped) = judge(&report, None);
    // Per mode: ca/issue, 15 card faults, 7 crash points = 23.
    assert_eq!(ran.len(), 69, "{ran:?}");
    assert_eq!(
        ran.len() + skipped,
        conformance::matrix::default_matrix().len()
    );
    for area in ["ca/issue/", "card/", "crash/"] {
        assert!(
            ran.iter()
                .any(|s| s["name"].as_str().unwrap().starts_with(area)),
            "nothing of {area} ran"
        );
    }
}

/// A CA that leaves the renewal pending: the scenario is unexpected (exit 1), and the new key
/// is deleted rather than left waiting for a journal that goes with the run.
fn pending_is_abandoned(dir: &Path, state: &Path, card: &Path) {
    let scenario = dir.join("pends.toml");
    std::fs::write(
        &scenario,
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
    )
    .unwrap();
    let (_pending_ca, port) = common::serve_ca(state, Some(&scenario));
    let before = card_certificate(card);
    let out = bin("conformance")
        .args(["--ca", &format!("https://localhost:{port}"), "--ca-cert"])
        .arg(state.join("ca-chain.pem"))
        .arg("--token")
        .arg(format!("sim:{}", card.display()))
        .args(["--filter", "ca/issue/fullcmc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("expected renewed, observed pending"),
        "{}",
        text(&out)
    );
    let keys = sim_card::CardState::load(card).unwrap().keys.len();
    assert_eq!(keys, 1, "the pending key was abandoned");
    assert_eq!(card_certificate(card), before);
}

/// The same card behind pcscd: the runner sees a PIV card in a PC/SC reader.
fn piv_pcsc(conformance: &dyn Fn() -> Command, dir: &Path, card: &Path, chain: &Path) {
    use sim_card::harness::{Pcscd, ServedCard};
    let served_state = dir.join("served.json");
    std::fs::copy(card, &served_state).unwrap();
    let before = card_certificate(&served_state);
    let pcscd = Pcscd::start().unwrap();
    let applet = sim_card::PivApplet::from_state(sim_card::CardState::load(&served_state).unwrap());
    let served = ServedCard::start(applet, Some(served_state.clone()));
    // vpcd shows the card a moment after the serving thread connects.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) =
        renewal_client::token::transport::PcscTransport::connect(Some(&pcscd.reader()))
    {
        assert!(
            Instant::now() < deadline,
            "the served card never appeared: {e}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = dir.join("report-pcsc");
    let out = conformance()
        .arg("--token")
        .arg(format!("piv-pcsc:{}", pcscd.reader()))
        .args(["--filter", "ca/issue/", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    drop(served);
    drop(pcscd);
    assert!(out.status.success(), "{}", text(&out));
    let (ran, _) = judge(&report, Some(1));
    assert_eq!(ran.len(), 3, "ca/issue in the three modes: {ran:?}");
    let after = card_certificate(&served_state);
    assert_ne!(before, after, "the card behind pcscd was renewed");
    openssl_verifies(chain, &after, dir);
}

/// In the copy of this binary with `SOFTHSM2_CONF` set: a key on the token and a certificate
/// for it from the CA's own keys (the administrator's enrollment), then the runner.
fn pkcs11_child(dir: &Path) {
    let url = std::env::var("CARDRENEW_CA_URL").unwrap();
    let state = dir.join("ca");
    let (authority, created) =
        sim_ca::authority::Authority::load_or_create(&state, std::time::SystemTime::now()).unwrap();
    assert!(!created, "the CA's keys exist");
    let pins = Arc::new(CountingPinSource::new(StaticPin::new("654321")));
    let (id, first) = {
        let mut token = Pkcs11Token::open(Path::new(MODULE), Some(LABEL), pins.clone()).unwrap();
        let key = token.generate(KeyAlgorithm::EcP256).unwrap();
        let cert = renewal_client::sample::issue_user_certificate(
            &authority.issuing.key,
            &authority.issuing.cert,
            key.public_key.as_ref().unwrap(),
            std::time::SystemTime::now(),
        )
        .unwrap();
        token.install_certificate(&key.id, cert.der()).unwrap();
        (key.id, cert)
    };
    let report = dir.join("report-pkcs11");
    let out = bin("conformance")
        .args(["--ca", &url, "--ca-cert"])
        .arg(state.join("ca-chain.pem"))
        .arg("--token")
        .arg(format!("pkcs11:{MODULE}:{LABEL}"))
        .args([
            "--container",
            &id.0,
            "--modes",
            "fullcmc,cmc",
            "--pin-env",
            "TOKEN_PIN",
            "--report",
        ])
        .arg(&report)
        .env("TOKEN_PIN", "654321")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("is not declared to speak simplereenroll"),
        "{stdout}"
    );
    let (ran, _) = judge(&report, Some(1));
    // Per mode: ca/issue and 7 crash points (card faults need the virtual card).
    assert_eq!(ran.len(), 16, "{ran:?}");
    let containers = Pkcs11Token::open(Path::new(MODULE), Some(LABEL), pins)
        .unwrap()
        .containers()
        .unwrap();
    let [only] = containers.as_slice() else {
        panic!("one container expected: {containers:?}");
    };
    let der = only.certificate.clone().unwrap();
    assert_ne!(der, first.der(), "renewed");
    openssl_verifies(&state.join("ca-chain.pem"), &der, dir);
    println!(
        "SoftHSM2 against the external CA: ok ({} renewals in a row)",
        ran.len()
    );
}
