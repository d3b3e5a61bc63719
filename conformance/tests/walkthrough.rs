//! The README's walk-through, command by command, with the real binaries: provision a virtual
//! card (`sim-card init`, `keygen`), enroll it (`sim-ca issue`, `sim-card import-cert`), serve
//! the CA, `renew run`; then a pending renewal: exit code 3, administrator approval,
//! `renew resume`; `renew status` and `renew recover`.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// The workspace's binaries sit next to this test's `deps` directory.
fn bin(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test --workspace builds it)",
        path.display()
    );
    Command::new(path)
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve_ca(dir: &Path, scenario: Option<&Path>) -> (Served, u16) {
    let (port, admin) = (free_port(), free_port());
    let mut cmd = bin("sim-ca");
    cmd.args(["serve", "--state"]).arg(dir.join("ca"));
    if let Some(s) = scenario {
        cmd.arg("--scenario").arg(s);
    }
    let child = cmd
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sim-ca did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Served(child), port)
}

fn provision(dir: &Path) {
    let card = dir.join("card.json");
    ok(bin("sim-card").args(["init", "--state"]).arg(&card));
    ok(bin("sim-card")
        .args(["keygen", "--state"])
        .arg(&card)
        .args([
            "--slot",
            "9a",
            "--csr-subject",
            "CN=Alice Example,O=Example",
            "--out",
        ])
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
    provision(&dir);
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
        status.starts_with("9a  EcP256  CN=Alice Example,O=Example"),
        "{status}"
    );
    assert!(status.contains("journal: Done"), "{status}");
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
    provision(&dir);
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
    let listed = ok(bin("sim-ca")
        .args(["pending", "list", "--state"])
        .arg(dir.join("ca")));
    let id = listed.split_whitespace().next().unwrap().to_string();
    ok(bin("sim-ca")
        .args(["pending", "approve", "--state"])
        .arg(dir.join("ca"))
        .arg(&id));
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
    assert!(ok(&mut renew(&dir, &["status"])).contains("journal: Done"));
    let _ = std::fs::remove_dir_all(&dir);
}
