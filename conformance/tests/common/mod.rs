//! What the process-level tests share: the workspace's binaries, `sim-ca serve` as a child
//! process, and a virtual card enrolled the way the README shows.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[allow(unused_imports)] // each test binary uses part of it
pub use test_kit::{Served, free_port, run as ok, which, workspace_bin as bin};

/// `sim-ca serve --state STATE [--scenario FILE]` on free loopback ports; its HTTPS port once
/// it accepts connections.
pub fn serve_ca(state: &Path, scenario: Option<&Path>) -> (Served, u16) {
    let (served, port, _) = serve_ca_with_admin(state, scenario);
    (served, port)
}

/// Like [`serve_ca`], also returning the admin port (clock, pending, counters).
#[allow(dead_code)] // not every test binary uses it
pub fn serve_ca_with_admin(state: &Path, scenario: Option<&Path>) -> (Served, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let mut cmd = bin("sim-ca");
    cmd.args(["serve", "--state"]).arg(state);
    if let Some(s) = scenario {
        cmd.arg("--scenario").arg(s);
    }
    let log = state.with_extension("log");
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin",
        &format!("127.0.0.1:{admin}"),
    ])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    (Served::spawn(&mut cmd, port, &log), port, admin)
}

/// The README's enrollment in `dir`: `card.json` with a key in 9A whose request `sim-ca issue`
/// (CA state in `dir/ca`) certifies into `alice.pem`, imported into 9A.
pub fn enroll_virtual_card(dir: &Path) {
    enroll_slot(dir, "9a", None);
}

/// Enrolls `slot` of `dir/card.json` (created if missing): a key, its request certified by
/// `sim-ca issue` for `days` (default: the template's), the certificate imported. 9A's files
/// are `alice.csr` / `alice.pem`, another slot's `SLOT.csr` / `SLOT.pem`.
#[allow(dead_code)] // not every test binary enrolls other slots
pub fn enroll_slot(dir: &Path, slot: &str, days: Option<u32>) {
    let card = dir.join("card.json");
    if !card.exists() {
        ok(bin("sim-card").args(["init", "--state"]).arg(&card));
    }
    let stem = if slot == "9a" { "alice" } else { slot };
    let (csr, pem) = (
        dir.join(format!("{stem}.csr")),
        dir.join(format!("{stem}.pem")),
    );
    ok(bin("sim-card")
        .args(["keygen", "--state"])
        .arg(&card)
        .args([
            "--slot",
            slot,
            "--csr-subject",
            "CN=Alice Example,O=Example",
            "--out",
        ])
        .arg(&csr));
    let mut issue = bin("sim-ca");
    issue
        .args(["issue", "--state"])
        .arg(dir.join("ca"))
        .arg("--csr")
        .arg(&csr)
        .args(["--template", "SmartcardUser"]);
    if let Some(days) = days {
        issue.args(["--days", &days.to_string()]);
    }
    ok(issue.arg("--out").arg(&pem));
    ok(bin("sim-card")
        .args(["import-cert", "--state"])
        .arg(&card)
        .args(["--slot", slot])
        .arg(&pem));
}

/// `sim-ca pending approve` of the first request `sim-ca pending list` shows (CA state in
/// `state`), as an administrator would.
#[allow(dead_code)] // not every test binary approves
pub fn approve_first_pending(state: &Path) {
    let listed = ok(bin("sim-ca")
        .args(["pending", "list", "--state"])
        .arg(state));
    // The first row under the header.
    let id = listed
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap()
        .to_string();
    ok(bin("sim-ca")
        .args(["pending", "approve", "--state"])
        .arg(state)
        .arg(&id));
}

/// Whether pcscd is installed (Debian puts it in /usr/sbin).
#[allow(dead_code)] // the PC/SC tests use it
pub fn pcscd_installed() -> bool {
    ["/usr/sbin/pcscd", "/usr/bin/pcscd"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// Waits until `reader` shows a card (OpenSC's view of PC/SC).
#[allow(dead_code)] // the PC/SC tests use it
pub fn wait_for_card(reader: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("opensc-tool").arg("-l").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text
            .lines()
            .any(|l| l.contains(reader) && l.contains("Yes"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "no card in {reader}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
