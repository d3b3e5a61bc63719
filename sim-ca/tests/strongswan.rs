//! strongSwan's `pki` — an EST client nobody here wrote (Debian `strongswan-pki`, with the curl
//! fetcher of `libstrongswan-extra-plugins`) — against `sim-ca serve` directly and through a
//! `sim-ca serve --mode gateway` process: the CA certificates fetched without a client
//! certificate (`pki --estca`), a re-enrollment (`pki --est` with the old certificate and key),
//! and a pending one collected by strongSwan's own polling. Its PKCS#10 spells the subject in
//! PrintableString where the certificate (from `openssl req`) has UTF8String: the same name by
//! RFC 5280 §7.1. Required under `CI=true`; skipped with the reason elsewhere.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use test_kit::{Served, free_port, run};

const CURL_PLUGIN: &str = "/usr/lib/ipsec/plugins/libstrongswan-curl.so";

/// Whether strongSwan's `pki` and its curl fetcher are here (a failure under `CI=true`).
fn strongswan_present() -> bool {
    let pki = Command::new("pki").arg("--help").output().is_ok();
    let present = pki && Path::new(CURL_PLUGIN).exists() && test_kit::which("openssl").is_some();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "strongSwan pki with its curl plugin is required under CI=true \
             (Debian strongswan-pki libstrongswan-extra-plugins)"
        );
        eprintln!("SKIP: strongSwan pki or its curl plugin ({CURL_PLUGIN}) is missing");
    }
    present
}

/// `sim-ca ARGS` (a CA or a gateway) listening on `port`, its output in `log`.
fn serve(args: &[&str], port: u16, log: &Path) -> Served {
    Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca")).args(args),
        port,
        log,
    )
}

/// A user: an old key and certificate issued by the CA in `state` (subject from `openssl req`,
/// UTF8String), and a new key with strongSwan's PKCS#10 for it (PrintableString).
struct User {
    old_cert: PathBuf,
    old_key: PathBuf,
    request: PathBuf,
    new_key: PathBuf,
}

fn user(dir: &Path, state: &Path, cn: &str, name: &str) -> User {
    let p = |suffix: &str| dir.join(format!("{name}{suffix}"));
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(p(".old.key")));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-subj",
            &format!("/O=cardrenew/CN={cn}"),
            "-key",
        ])
        .arg(p(".old.key"))
        .arg("-out")
        .arg(p(".csr")));
    run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["issue", "--state"])
        .arg(state)
        .arg("--csr")
        .arg(p(".csr"))
        .args(["--template", "SmartcardUser", "--out"])
        .arg(p(".old.pem")));
    new_request(dir, name, cn, p(".old.pem"), p(".old.key"), 1)
}

/// Another new key for the same user, and strongSwan's PKCS#10 for it.
fn new_request(
    dir: &Path,
    name: &str,
    cn: &str,
    old_cert: PathBuf,
    old_key: PathBuf,
    n: u32,
) -> User {
    let new_key = dir.join(format!("{name}.new{n}.key"));
    let request = dir.join(format!("{name}.new{n}.p10"));
    let out = Command::new("pki")
        .args([
            "--gen",
            "--type",
            "ecdsa",
            "--size",
            "256",
            "--outform",
            "pem",
        ])
        .output()
        .unwrap();
    std::fs::write(&new_key, &out.stdout).unwrap();
    let out = Command::new("pki")
        .args(["--req", "--type", "priv", "--in"])
        .arg(&new_key)
        .args(["--dn", &format!("O=cardrenew, CN={cn}"), "--outform", "der"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&request, &out.stdout).unwrap();
    let asn1 = run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&request));
    assert!(asn1.contains("PRINTABLESTRING"), "{asn1}");
    User {
        old_cert,
        old_key,
        request,
        new_key,
    }
}

/// `pki --est` against `url` for `user`: the certificate it wrote (PEM).
fn reenroll(url: &str, cacerts: &[PathBuf], user: &User, dir: &Path) -> String {
    let mut cmd = Command::new("pki");
    cmd.current_dir(dir).args([
        "--est",
        "--url",
        url,
        "--interval",
        "1",
        "--maxpolltime",
        "60",
    ]);
    for ca in cacerts {
        cmd.arg("--cacert").arg(ca);
    }
    cmd.arg("--cert")
        .arg(&user.old_cert)
        .arg("--key")
        .arg(&user.old_key)
        .arg("--in")
        .arg(&user.request)
        .args(["--outform", "pem"]);
    let issued = run(&mut cmd);
    assert!(issued.contains("BEGIN CERTIFICATE"), "{issued}");
    issued
}

/// The certificate's subject and public key, and the new key's public key, by openssl.
fn check_issued(issued: &str, user: &User, dir: &Path, state: &Path) {
    let pem = dir.join("issued.pem");
    std::fs::write(&pem, issued).unwrap();
    let subject = |cert: &Path| {
        run(Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(cert))
    };
    assert_eq!(subject(&pem), subject(&user.old_cert));
    let public = |args: &[&str], file: &Path| run(Command::new("openssl").args(args).arg(file));
    assert_eq!(
        public(&["x509", "-noout", "-pubkey", "-in"], &pem),
        public(&["pkey", "-pubout", "-in"], &user.new_key)
    );
    assert!(
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(state.join("ca-chain.pem"))
            .arg(&pem))
        .contains(": OK")
    );
}

#[test]
fn strongswan_renews_directly_and_through_the_gateway_and_collects_a_pending_renewal() {
    if !strongswan_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sim-ca-strongswan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("ca");
    let sam = user(&dir, &state, "Sam Swan", "sam");
    let pat = user(&dir, &state, "Pat Pending", "pat");
    // strongSwan reads one certificate per --cacert file.
    let chain = std::fs::read_to_string(state.join("ca-chain.pem")).unwrap();
    let cacerts: Vec<PathBuf> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .enumerate()
        .map(|(i, pem)| {
            let path = dir.join(format!("tls-ca{i}.pem"));
            std::fs::write(&path, pem).unwrap();
            path
        })
        .collect();
    assert_eq!(cacerts.len(), 2);
    for (prefix, tls) in [("ra", false), ("tls", true)] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sim-ca"));
        cmd.args(["credential", "--state"])
            .arg(&state)
            .args(["--name", "localhost", "--out"])
            .arg(dir.join(prefix));
        if tls {
            cmd.arg("--tls-server");
        }
        run(&mut cmd);
    }
    std::fs::write(
        dir.join("scenario.toml"),
        "[[rule]]\nsubject = \"Pat Pending\"\ndisposition = \"pending\"\nresolve = \"poll:1\"\n",
    )
    .unwrap();
    let (ca_port, ca_admin) = (free_port(), free_port());
    let _ca = serve(
        &[
            "serve",
            "--state",
            state.to_str().unwrap(),
            "--scenario",
            dir.join("scenario.toml").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{ca_port}"),
            "--admin",
            &format!("127.0.0.1:{ca_admin}"),
            "--trust-ra",
            dir.join("ra.pem").to_str().unwrap(),
        ],
        ca_port,
        &dir.join("ca.log"),
    );
    let (gw_port, gw_admin) = (free_port(), free_port());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{gw_port}\"\nadmin = \"127.0.0.1:{gw_admin}\"\n\
             store = \"gateway.db\"\n\
             [tls]\ncertificate = \"tls.pem\"\nkey = \"tls.key\"\nclient_cas = \"ca/ca-chain.pem\"\n\
             [upstream]\nurl = \"https://localhost:{ca_port}\"\nca = \"ca/ca-chain.pem\"\n\
             [ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n"
        ),
    )
    .unwrap();
    let _gateway = serve(
        &[
            "serve",
            "--mode",
            "gateway",
            "--config",
            config.to_str().unwrap(),
        ],
        gw_port,
        &dir.join("gateway.log"),
    );
    let ca_url = format!("https://localhost:{ca_port}");
    let gw_url = format!("https://localhost:{gw_port}");

    // The CA certificates, from both, without a client certificate.
    for url in [&ca_url, &gw_url] {
        let mut cmd = Command::new("pki");
        cmd.current_dir(&dir).args(["--estca", "--url", url]);
        for ca in &cacerts {
            cmd.arg("--cacert").arg(ca);
        }
        let out = cmd
            .args(["--caout", "estca", "--outform", "pem", "--force"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{url}: {text}");
        assert!(text.contains("written to"), "{url}: {text}");
    }

    // Re-enrollment, directly, then through the gateway with another new key.
    check_issued(&reenroll(&ca_url, &cacerts, &sam, &dir), &sam, &dir, &state);
    let sam2 = new_request(
        &dir,
        "sam",
        "Sam Swan",
        sam.old_cert.clone(),
        sam.old_key.clone(),
        2,
    );
    check_issued(
        &reenroll(&gw_url, &cacerts, &sam2, &dir),
        &sam2,
        &dir,
        &state,
    );
    // A pending renewal, collected by strongSwan's polling: directly and through the gateway.
    check_issued(&reenroll(&ca_url, &cacerts, &pat, &dir), &pat, &dir, &state);
    let pat2 = new_request(
        &dir,
        "pat",
        "Pat Pending",
        pat.old_cert.clone(),
        pat.old_key.clone(),
        2,
    );
    check_issued(
        &reenroll(&gw_url, &cacerts, &pat2, &dir),
        &pat2,
        &dir,
        &state,
    );

    // The CA's audit trail: the two pending requests, each issued after its poll.
    let audit = run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["audit", "--json", "--state"])
        .arg(&state));
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .filter(|o| *o != "enrolled")
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "issued").count(),
        4,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "pending").count(),
        2,
        "{outcomes:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
