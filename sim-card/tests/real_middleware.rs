//! The virtual card as real middleware sees it: our own foreground pcscd, `sim-card serve`
//! (the binary), then tools nobody here wrote — `opensc-tool`, OpenSC's PKCS#11 module through
//! `pkcs11-tool` (a signature OpenSSL verifies), and `yubico-piv-tool` — and a restart of the
//! served card that keeps its state. Under `CI=true` nothing here may skip.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sim_card::harness::Pcscd;
use test_kit::{Served, run_combined as run};

/// The reader the served card is in (set when pcscd starts: its name depends on who started
/// pcscd).
static READER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn reader() -> &'static str {
    READER
        .get()
        .map_or(sim_card::harness::YUBIKEY_READER, String::as_str)
}

const OPENSC_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

fn require(tools: &[&str]) -> bool {
    let missing: Vec<_> = tools
        .iter()
        .filter(|t| {
            !std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        })
        .collect();
    let module = Path::new(OPENSC_PKCS11).exists();
    if missing.is_empty() && module {
        return true;
    }
    let what = format!(
        "missing {missing:?}{}",
        if module { "" } else { " and opensc-pkcs11.so" }
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}: required under CI=true (scripts/test.sh installs them)");
    }
    eprintln!("SKIP: {what}; run scripts/test.sh to install");
    false
}

fn sim_card() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sim-card"))
}

/// `sim-card serve` as a child process (killed on drop), once pcscd shows the card.
fn serve(state: &Path) -> Served {
    let child = sim_card()
        .args(["serve", "--state"])
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served(child);
    wait_for_card(true);
    served
}

/// Waits until the first vpcd reader shows a card (or none).
fn wait_for_card(present: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("opensc-tool").arg("-l").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let shown = text
            .lines()
            .any(|l| l.contains(reader()) && l.contains("Yes"));
        if shown == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "card presence never became {present}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn real_middleware_on_the_virtual_card() {
    if !require(&[
        "pcscd",
        "opensc-tool",
        "pkcs11-tool",
        "yubico-piv-tool",
        "openssl",
    ]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-card-mw");
    let state = dir.join("card.json");
    let p = |name: &str| dir.join(name);

    // Provision as a newcomer would: a card, a key in 9A with a request signed on the card,
    // a certificate from a CA (OpenSSL here), imported into 9A.
    // A 3DES management key: Debian 12's yubico-piv-tool (2.2) speaks no AES, as on a real
    // YubiKey 5.7 with its factory AES-192 key it would fail "authentication with the
    // application" too.
    run(sim_card()
        .args(["init", "--management-key-algorithm", "3des", "--state"])
        .arg(&state));
    run(sim_card()
        .args(["keygen", "--state"])
        .arg(&state)
        .args([
            "--slot",
            "9a",
            "--csr-subject",
            "CN=Alice Example,O=cardrenew",
            "--out",
        ])
        .arg(p("req.pem")));
    assert!(
        run(Command::new("openssl")
            .args(["req", "-verify", "-noout", "-in"])
            .arg(p("req.pem")))
        .contains("verify OK")
    );
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test CA",
            "-keyout",
        ])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-set_serial", "7", "-in"])
        .arg(p("req.pem"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("alice.pem")));
    run(sim_card()
        .args(["import-cert", "--state"])
        .arg(&state)
        .args(["--slot", "9a"])
        .arg(p("alice.pem")));
    assert!(
        run(sim_card().args(["show", "--state"]).arg(&state))
            .contains("subject \"CN=Alice Example,O=cardrenew\"")
    );

    let _pcscd = Pcscd::start().unwrap();
    let _ = READER.set(_pcscd.reader());
    let served = serve(&state);

    // opensc-tool sees the reader and the card.
    let readers = run(Command::new("opensc-tool").arg("--list-readers"));
    assert!(readers.contains(reader()), "{readers}");

    // OpenSC's PKCS#11 module shows the certificate in 9A (PIV Authentication, ID 01).
    let objects = run(Command::new("pkcs11-tool").args([
        "--module",
        OPENSC_PKCS11,
        "--slot-index",
        "0",
        "--list-objects",
    ]));
    assert!(
        objects.contains("Certificate for PIV Authentication"),
        "{objects}"
    );
    assert!(objects.contains("CN=Alice Example"), "{objects}");

    // A signature made through PKCS#11 verifies with OpenSSL against the certificate's key.
    std::fs::write(p("msg.txt"), b"renew me over the internet").unwrap();
    run(Command::new("pkcs11-tool")
        .args([
            "--module",
            OPENSC_PKCS11,
            "--slot-index",
            "0",
            "--login",
            "--pin",
            "123456",
            "--sign",
            "--mechanism",
            "ECDSA-SHA256",
            "--signature-format",
            "openssl",
            "--id",
            "01",
            "-i",
        ])
        .arg(p("msg.txt"))
        .arg("-o")
        .arg(p("sig.der")));
    run(Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(p("alice.pem"))
        .arg("-out")
        .arg(p("alice.pub")));
    let verified = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(p("alice.pub"))
        .arg("-signature")
        .arg(p("sig.der"))
        .arg(p("msg.txt")));
    assert!(verified.contains("Verified OK"), "{verified}");

    // yubico-piv-tool: generate a key in 9A, import a certificate for it, print the status.
    let yk = |args: &[&str]| {
        let mut c = Command::new("yubico-piv-tool");
        c.args(["-r", reader()]).args(args);
        c
    };
    run(yk(&["-a", "generate", "-s", "9a", "-A", "ECCP256", "-o"]).arg(p("yk.pub")));
    run(Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=yk", "-key"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("dummy.csr")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-set_serial", "8", "-in"])
        .arg(p("dummy.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-force_pubkey")
        .arg(p("yk.pub"))
        .args(["-subj", "/CN=Generated by yubico-piv-tool", "-out"])
        .arg(p("yk.pem")));
    run(yk(&["-a", "import-certificate", "-s", "9a", "-i"]).arg(p("yk.pem")));
    let status = run(&mut yk(&["-a", "status"]));
    assert!(status.contains("Slot 9a"), "{status}");
    assert!(
        status.contains("CN=Generated by yubico-piv-tool"),
        "{status}"
    );
    assert!(status.contains("PIN tries left:\t3"), "{status}");

    // yubico-piv-tool imports a P-256 key made by OpenSSL into 9C and a certificate for it;
    // its signature test signs on the card and verifies against the certificate.
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(p("import.key")));
    run(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(p("import.key"))
        .arg("-out")
        .arg(p("import.pub")));
    run(yk(&["-a", "import-key", "-s", "9c", "-i"]).arg(p("import.key")));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-set_serial", "9", "-in"])
        .arg(p("dummy.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-force_pubkey")
        .arg(p("import.pub"))
        .args(["-subj", "/CN=Imported by yubico-piv-tool", "-out"])
        .arg(p("import.pem")));
    run(yk(&["-a", "import-certificate", "-s", "9c", "-i"]).arg(p("import.pem")));
    let tested = run(yk(&["-a", "verify-pin", "-P", "123456"])
        .args(["-a", "test-signature", "-s", "9c", "-i"])
        .arg(p("import.pem")));
    assert!(tested.contains("Successful"), "{tested}");

    // yubico-piv-tool sets the PIN tries (after the PIN): PIN and PUK back to their defaults.
    run(
        yk(&["-a", "verify-pin", "-P", "123456", "-a", "pin-retries"]).args([
            "--pin-retries",
            "5",
            "--puk-retries",
            "4",
        ]),
    );
    let status = run(&mut yk(&["-a", "status"]));
    assert!(status.contains("PIN tries left:\t5"), "{status}");

    // The served card saved every change: after a restart it is the same card.
    drop(served);
    wait_for_card(false);
    let shown = run(sim_card().args(["show", "--state"]).arg(&state));
    assert!(shown.contains("CN=Generated by yubico-piv-tool"), "{shown}");
    let served = serve(&state);
    let status = run(&mut yk(&["-a", "status"]));
    assert!(
        status.contains("CN=Generated by yubico-piv-tool"),
        "{status}"
    );
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
