//! A key that needs a touch, through real middleware and the real binaries: `sim-card serve
//! --touch-socket` behind pcscd and vpcd (a card whose management key is PIN-protected, as
//! ykman's `--protect` leaves it), `renew run --token piv-pcsc:…` against `sim-ca serve`. Every time `renew` says "touch your key", the test touches it (`sim-card touch`), as
//! a user would: renewed, one PIN. Then nobody touches: the card gives up after its real
//! timeout (15 s, as a YubiKey), `renew` names the missing touch and the card is as before.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::Stdio,
    time::Duration,
};

use common::{Served, bin, ok, pcscd_installed, serve_ca, wait_for_card};
use sim_card::harness::Pcscd;

/// `renew run` on the served card; `touch` answers each "touch your key". Returns the exit
/// code, stderr, and how many touches were asked for.
fn renew(
    dir: &Path,
    port: u16,
    reader: &str,
    touch: Option<&Path>,
) -> (Option<i32>, String, usize) {
    let mut child = bin("renew")
        .args([
            "run",
            "--ca",
            &format!("https://localhost:{port}"),
            "--ca-cert",
        ])
        .arg(dir.join("ca/ca-chain.pem"))
        .args(["--token", &format!("piv-pcsc:{reader}")])
        .args(["--pin-env", "CARD_PIN", "--journal"])
        .arg(dir.join("journal.jsonl"))
        .env("CARD_PIN", "123456")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let mut asked = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("touch your key") {
            asked += 1;
            if let Some(socket) = touch {
                // The card starts waiting right after the prompt; a real finger takes longer.
                std::thread::sleep(Duration::from_millis(200));
                ok(bin("sim-card").args(["touch", "--socket"]).arg(socket));
            }
        }
        text.push_str(&line);
        text.push('\n');
    }
    (child.wait().unwrap().code(), text, asked)
}

#[test]
fn a_touch_key_is_renewed_when_touched_and_rolled_back_when_not() {
    if !pcscd_installed() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pcscd is missing (apt-get install pcscd vsmartcard-vpcd opensc)"
        );
        println!("SKIP: pcscd is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cardrenew-touch-pcsc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let card = dir.join("card.json");
    // The card as an enterprise leaves it: a random management key stored under the PIN
    // (ykman's --protect); `renew` finds and uses it after its one PIN verification.
    ok(bin("sim-card")
        .args(["init", "--protect-management-key", "--state"])
        .arg(&card));
    ok(bin("sim-card")
        .args(["keygen", "--state"])
        .arg(&card)
        .args(["--slot", "9a", "--touch-policy", "always"])
        .args(["--csr-subject", "CN=Touch Example,O=Example", "--out"])
        .arg(dir.join("alice.csr")));
    ok(bin("sim-ca")
        .args(["issue", "--state"])
        .arg(dir.join("ca"))
        .arg("--csr")
        .arg(dir.join("alice.csr"))
        .args(["--template", "SmartcardUser", "--out"])
        .arg(dir.join("alice.pem")));
    ok(bin("sim-card")
        .args(["import-cert", "--state"])
        .arg(&card)
        .args(["--slot", "9a"])
        .arg(dir.join("alice.pem")));
    let (_ca, port) = serve_ca(&dir.join("ca"), None);

    let pcscd = Pcscd::start().unwrap();
    let reader = pcscd.reader();
    let socket = dir.join("touch.sock");
    let served = Served(
        bin("sim-card")
            .args(["serve", "--state"])
            .arg(&card)
            .arg("--touch-socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_card(&reader);
    let before = ok(bin("sim-card").args(["show", "--state"]).arg(&card));

    // Touched each time: renewed. Full CMC signs four times with "always" keys (TLS, the new
    // key's PKCS#10 and CMS signatures, the old key's CMS signature).
    let (code, text, asked) = renew(&dir, port, &reader, Some(&socket));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(asked, 4, "{text}");
    let renewed = ok(bin("sim-card").args(["show", "--state"]).arg(&card));
    assert_ne!(renewed, before, "the card holds the new certificate");

    // Nobody touches: after the card's 15 s the attempt rolls back, the missing touch named
    // (the TLS signature is the first to wait: nothing was made on the card).
    let (code, text, asked) = renew(&dir, port, &reader, None);
    assert_eq!(code, Some(4), "{text}");
    assert_eq!(asked, 1, "{text}");
    assert!(text.contains("was not touched in time"), "{text}");
    drop(served);
    drop(pcscd);
    let after = ok(bin("sim-card").args(["show", "--state"]).arg(&card));
    assert_eq!(after, renewed, "nothing changed on the card");
    let _ = std::fs::remove_dir_all(&dir);
}
