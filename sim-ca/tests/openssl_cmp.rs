//! OpenSSL's CMP client (`openssl cmp -cmd kur`, Debian's OpenSSL 3) — a client nobody here
//! wrote — renews against `sim-ca serve` over HTTPS without a TLS client certificate: its
//! key update protected by the old key, its new key proven by signature. P-256 confirmed with
//! certConf, RSA-2048 with implicit confirmation, a pending renewal collected by OpenSSL's own
//! polling; a certificate OpenSSL rejects in certConf, and one it never confirms, are revoked.
//! Required under `CI=true`; skipped with the reason elsewhere.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use test_kit::{Served, free_port, run, temp_dir};

/// A user of the CA in `state`: a P-256 key and its certificate (`sim-ca issue`).
fn user(dir: &Path, state: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let (key, csr, cert) = (
        dir.join(format!("{cn}.old.key")),
        dir.join(format!("{cn}.csr")),
        dir.join(format!("{cn}.old.pem")),
    );
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-subj",
            &format!("/O=cardrenew/CN={cn}"),
            "-key",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["issue", "--state"])
        .arg(state)
        .arg("--csr")
        .arg(&csr)
        .args(["--template", "SmartcardUser", "--out"])
        .arg(&cert));
    (cert, key)
}

fn new_key(dir: &Path, name: &str, rsa: bool) -> PathBuf {
    let path = dir.join(format!("{name}.new.key"));
    let mut cmd = Command::new("openssl");
    if rsa {
        cmd.args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ]);
    } else {
        cmd.args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ]);
    }
    run(cmd.arg(&path));
    path
}

/// `openssl cmp -cmd CMD` against the server on `port` over HTTPS at `/.well-known/cmp`,
/// trusting the CA in `state` for TLS and for the answers' protection.
fn openssl_cmp(cmd: &str, port: u16, state: &Path) -> Command {
    let mut command = Command::new("openssl");
    command
        .args(["cmp", "-cmd", cmd, "-server"])
        .arg(format!("localhost:{port}"))
        .args(["-path", "/.well-known/cmp", "-tls_used", "-tls_trusted"])
        .arg(state.join("ca-chain.pem"))
        .arg("-trusted")
        .arg(state.join("root.pem"));
    command
}

/// `openssl cmp -cmd kur` for (`cert`, `key`) onto `new`, with `extra` options: its exit
/// status, its output, and the certificate it saved.
fn kur(
    port: u16,
    state: &Path,
    (cert, key): &(PathBuf, PathBuf),
    new: &Path,
    out: &Path,
    extra: &[&str],
) -> (bool, String) {
    let output = openssl_cmp("kur", port, state)
        .arg("-oldcert")
        .arg(cert)
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-newkey")
        .arg(new)
        .arg("-certout")
        .arg(out)
        .args(["-total_timeout", "60"])
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The issued certificate keeps the old subject, certifies the new key and chains to the CA.
fn check_issued(issued: &Path, old: &Path, new_key: &Path, state: &Path) {
    let openssl = |args: &[&str], file: &Path| run(Command::new("openssl").args(args).arg(file));
    let subject = ["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"];
    assert_eq!(openssl(&subject, issued), openssl(&subject, old));
    assert_eq!(
        openssl(&["x509", "-noout", "-pubkey", "-in"], issued),
        openssl(&["pkey", "-pubout", "-in"], new_key)
    );
    assert!(
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(state.join("ca-chain.pem"))
            .arg(issued))
        .contains(": OK")
    );
}

fn serial(cert: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert));
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// The CA's audit records: (outcome, serial).
fn audit(state: &Path) -> Vec<(String, Option<String>)> {
    let text = run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["audit", "--json", "--state"])
        .arg(state));
    let records: serde_json::Value = serde_json::from_str(&text).unwrap();
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_string(),
                r["serial"].as_str().map(str::to_ascii_lowercase),
            )
        })
        .collect()
}

fn has(audit: &[(String, Option<String>)], outcome: &str, serial: &str) -> bool {
    audit
        .iter()
        .any(|(o, s)| o == outcome && s.as_deref() == Some(serial))
}

#[test]
fn openssl_renews_over_cmp_confirmed_implicitly_pending_and_rejected() {
    if !test_kit::openssl_cmp_present() {
        return;
    }
    let dir = temp_dir("openssl-cmp");
    let state = dir.join("ca");
    let olive = user(&dir, &state, "Olive Open");
    let rita = user(&dir, &state, "Rita Rsa");
    let pat = user(&dir, &state, "Pat Pending");
    let rory = user(&dir, &state, "Rory Reject");
    let quinn = user(&dir, &state, "Quinn Quiet");
    std::fs::write(
        dir.join("scenario.toml"),
        "[[rule]]\nsubject = \"Pat Pending\"\ndisposition = \"pending\"\nresolve = \"after:1\"\n",
    )
    .unwrap();
    let (port, admin) = (free_port(), free_port());
    let _ca = Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .arg("serve")
            .arg("--state")
            .arg(&state)
            .arg("--scenario")
            .arg(dir.join("scenario.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--cmp-confirm-wait", "2"]),
        port,
        &dir.join("ca.log"),
    );
    let log = || std::fs::read_to_string(dir.join("ca.log")).unwrap_or_default();

    // P-256, confirmed with certConf.
    let key = new_key(&dir, "olive", false);
    let out = dir.join("olive.pem");
    let (ok, text) = kur(port, &state, &olive, &key, &out, &[]);
    assert!(ok, "{text}\n{}", log());
    assert!(
        text.contains("sending CERTCONF") && text.contains("received PKICONF"),
        "{text}"
    );
    check_issued(&out, &olive.0, &key, &state);
    let olive_serial = serial(&out);

    // RSA-2048, implicit confirmation granted: no certConf.
    let key = new_key(&dir, "rita", true);
    let out = dir.join("rita.pem");
    let (ok, text) = kur(port, &state, &rita, &key, &out, &["-implicit_confirm"]);
    assert!(ok, "{text}\n{}", log());
    assert!(!text.contains("sending CERTCONF"), "{text}");
    check_issued(&out, &rita.0, &key, &state);
    let rita_serial = serial(&out);

    // Pending: OpenSSL polls until it is issued.
    let key = new_key(&dir, "pat", false);
    let out = dir.join("pat.pem");
    let (ok, text) = kur(port, &state, &pat, &key, &out, &[]);
    assert!(ok, "{text}\n{}", log());
    assert!(
        text.contains("POLLREQ") || text.contains("pollReq") || text.contains("POLL"),
        "{text}"
    );
    check_issued(&out, &pat.0, &key, &state);

    // OpenSSL rejects what does not verify against -out_trusted (here: a root that is not
    // the CA's) and says so in certConf: the CA revokes it.
    let stranger = dir.join("stranger");
    let _ = std::fs::create_dir_all(&stranger);
    let (_, _) = user(&stranger, &stranger.join("ca"), "Somebody Else");
    let key = new_key(&dir, "rory", false);
    let out = dir.join("rory.pem");
    let (ok, text) = kur(
        port,
        &state,
        &rory,
        &key,
        &out,
        &[
            "-out_trusted",
            stranger.join("ca").join("root.pem").to_str().unwrap(),
        ],
    );
    assert!(
        !ok,
        "OpenSSL accepted a certificate it cannot verify: {text}"
    );
    assert!(text.contains("sending CERTCONF"), "{text}");

    // Never confirmed: revoked once the 2-second wait is over.
    let key = new_key(&dir, "quinn", false);
    let out = dir.join("quinn.pem");
    let (ok, text) = kur(port, &state, &quinn, &key, &out, &["-disable_confirm"]);
    assert!(ok, "{text}\n{}", log());
    assert!(!text.contains("sending CERTCONF"), "{text}");
    let quinn_serial = serial(&out);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !has(&audit(&state), "revoked", &quinn_serial) {
        assert!(
            std::time::Instant::now() < deadline,
            "the unconfirmed certificate was not revoked: {:?}\n{}",
            audit(&state),
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    let trail = audit(&state);
    assert!(has(&trail, "confirmed", &olive_serial), "{trail:?}");
    assert!(!has(&trail, "revoked", &olive_serial), "{trail:?}");
    assert!(!has(&trail, "revoked", &rita_serial), "{trail:?}");
    assert!(!has(&trail, "confirmed", &rita_serial), "{trail:?}");
    let issued = trail.iter().filter(|(o, _)| o == "issued").count();
    let revoked = trail.iter().filter(|(o, _)| o == "revoked").count();
    assert_eq!((issued, revoked), (5, 2), "{trail:?}");
    assert!(trail.iter().any(|(o, _)| o == "pending"), "{trail:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn openssl_gets_the_ca_certificates_with_a_general_message() {
    if !test_kit::openssl_cmp_present() {
        return;
    }
    let dir = temp_dir("openssl-genm");
    let state = dir.join("ca");
    let (cert, key) = user(&dir, &state, "Gina Genm");
    let (port, admin) = (free_port(), free_port());
    let _ca = Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .arg("serve")
            .arg("--state")
            .arg(&state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")]),
        port,
        &dir.join("ca.log"),
    );
    // RFC 9483 §4.3.1: genm with id-it-caCerts; OpenSSL verifies the genp's protection
    // against the root it trusts and names what it holds.
    let output = openssl_cmp("genm", port, &state)
        .args(["-infotype", "caCerts"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("received GENP") && text.contains("ITAV of type: id-it-caCerts"),
        "{text}"
    );
}

/// OpenSSL's CMP client → `sim-ca serve --mode gateway` (upstream `protocol = "cmp"`) → a
/// `sim-ca serve --trust-ra` CA: the gateway checks the kur and forwards it nested under its RA
/// protection; OpenSSL accepts the RA-protected answer (the RA's chain to the root it trusts),
/// confirms with certConf — forwarded to the CA, which records the confirmation — and, asked
/// for implicit confirmation, gets it.
#[test]
fn openssl_renews_over_cmp_through_the_gateway() {
    if !test_kit::openssl_cmp_present() {
        return;
    }
    let dir = temp_dir("openssl-cmp-gateway");
    let state = dir.join("ca");
    let olive = user(&dir, &state, "Olive Gateway");
    let ivy = user(&dir, &state, "Ivy Implicit");
    let sim_ca = |args: &[&str]| run(Command::new(env!("CARGO_BIN_EXE_sim-ca")).args(args));
    let state_arg = state.to_str().unwrap();
    sim_ca(&[
        "credential",
        "--state",
        state_arg,
        "--out",
        dir.join("ra").to_str().unwrap(),
    ]);
    sim_ca(&[
        "credential",
        "--state",
        state_arg,
        "--tls-server",
        "--cn",
        "gateway",
        "--name",
        "localhost",
        "--out",
        dir.join("tls").to_str().unwrap(),
    ]);
    let (ca_port, ca_admin) = (free_port(), free_port());
    let _ca = Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .args(["serve", "--state", state_arg])
            .args(["--listen", &format!("127.0.0.1:{ca_port}")])
            .args(["--admin", &format!("127.0.0.1:{ca_admin}")])
            .arg("--trust-ra")
            .arg(dir.join("ra.pem")),
        ca_port,
        &dir.join("ca.log"),
    );
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"\nstore = \"gw.db\"\n\
             [tls]\ncertificate = \"tls.pem\"\nkey = \"tls.key\"\nclient_cas = \"ca/ca-chain.pem\"\n\
             [upstream]\nurl = \"https://localhost:{ca_port}\"\nprotocol = \"cmp\"\n\
             ca = \"ca/ca-chain.pem\"\n[ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n"
        ),
    )
    .unwrap();
    let _gateway = Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .args(["serve", "--mode", "gateway", "--config"])
            .arg(&config),
        port,
        &dir.join("gateway.log"),
    );
    let logs = || {
        format!(
            "gateway:\n{}\nca:\n{}",
            std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("ca.log")).unwrap_or_default()
        )
    };

    let key = new_key(&dir, "olive", false);
    let out = dir.join("olive.pem");
    let (ok, text) = kur(port, &state, &olive, &key, &out, &[]);
    assert!(ok, "{text}\n{}", logs());
    assert!(
        text.contains("sending CERTCONF") && text.contains("received PKICONF"),
        "{text}"
    );
    check_issued(&out, &olive.0, &key, &state);
    let issued = serial(&out);
    let trail = audit(&state);
    assert!(has(&trail, "issued", &issued), "{trail:?}");
    assert!(
        has(&trail, "confirmed", &issued),
        "the CA recorded the certConf the gateway forwarded: {trail:?}"
    );

    let key = new_key(&dir, "ivy", true);
    let out = dir.join("ivy.pem");
    let (ok, text) = kur(port, &state, &ivy, &key, &out, &["-implicit_confirm"]);
    assert!(ok, "{text}\n{}", logs());
    assert!(!text.contains("sending CERTCONF"), "{text}");
    check_issued(&out, &ivy.0, &key, &state);
}
