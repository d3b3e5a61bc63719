//! Two `sim-ca serve --mode gateway` processes on one PostgreSQL database, in front of a
//! `sim-ca serve --trust-ra` process: a renewal taken under submission through instance A is
//! collected through instance B after A was killed with SIGKILL — nothing A accepted is lost.
//! Needs PostgreSQL (`CARDRENEW_POSTGRES_URL`, see scripts/pg-temp.sh): required under
//! `CI=true`, skipped with a reason elsewhere.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    path::Path,
    process::Command,
    time::Duration,
};

use renewal_codec::cmc::{
    Limits, Outcome, PublicKey, RenewalParams, Retained, Signer, SoftwareKey,
    build_renewal_request, parse_response,
};
use sim_ca::{
    authority::Authority,
    gateway::{
        ca_backend::CmcAnswer,
        credential,
        upstream::{CmcProtocol, Upstream},
    },
};
use test_kit::{Served, free_port};

/// `sim-ca ARGS` (a CA or a gateway) listening on `port`, its output in `log`.
fn serve(args: &[&str], port: u16, log: &Path) -> Served {
    Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca")).args(args),
        port,
        log,
    )
}

/// A plain-HTTP request to an admin listener; the status line and body.
fn admin(port: u16, method: &str, path: &str) -> String {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_request_pending_at_a_killed_instance_is_collected_from_the_other() {
    let Ok(url) = std::env::var("CARDRENEW_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CARDRENEW_POSTGRES_URL is not set: PostgreSQL is required under CI=true"
        );
        eprintln!("SKIP: no PostgreSQL (set CARDRENEW_POSTGRES_URL, see scripts/pg-temp.sh)");
        return;
    };
    let db = format!("cardrenew_gwproc_{}", std::process::id());
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    pg.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let store = format!("{}/{db}", url.rsplit_once('/').unwrap().0);

    let dir = std::env::temp_dir().join(format!("sim-ca-gwproc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("ca");
    // The CA's keys, made here so the test can issue the user's certificate; the upstream
    // process loads them.
    let now = std::time::SystemTime::now();
    let (authority, _) =
        Authority::load_or_create_with(&state, now, renewal_codec::cmc::KeyAlgorithm::EcP256)
            .unwrap();
    credential::write(
        &credential::issue(
            &authority,
            "Renewal Gateway RA",
            &[],
            credential::Purpose::Ra,
            now,
        )
        .unwrap(),
        &dir.join("ra"),
    )
    .unwrap();
    credential::write(
        &credential::issue(
            &authority,
            "gateway",
            &["localhost"],
            credential::Purpose::TlsServer,
            now,
        )
        .unwrap(),
        &dir.join("tls"),
    )
    .unwrap();
    std::fs::write(
        dir.join("pending.toml"),
        "[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n",
    )
    .unwrap();
    let (ca_port, ca_admin) = (free_port(), free_port());
    let _upstream = serve(
        &[
            "serve",
            "--state",
            state.to_str().unwrap(),
            "--scenario",
            dir.join("pending.toml").to_str().unwrap(),
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
    let mut gateways = Vec::new();
    for name in ["a", "b"] {
        let (port, admin_port) = (free_port(), free_port());
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin_port}\"\nstore = \"{store}\"\n\
                 [tls]\ncertificate = \"tls.pem\"\nkey = \"tls.key\"\nclient_cas = \"ca/ca-chain.pem\"\n\
                 [upstream]\nurl = \"https://localhost:{ca_port}\"\nca = \"ca/ca-chain.pem\"\n\
                 [ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n"
            ),
        )
        .unwrap();
        let served = serve(
            &[
                "serve",
                "--mode",
                "gateway",
                "--config",
                config.to_str().unwrap(),
            ],
            port,
            &dir.join(format!("{name}.log")),
        );
        gateways.push((served, port, admin_port));
    }

    // The user: a certificate from the CA, a new key, a full CMC renewal request.
    let old_key = SoftwareKey::generate_p256().unwrap();
    let new_key = SoftwareKey::generate_p256().unwrap();
    let old_cert = renewal_codec::sample::issue_user_certificate(
        &authority.issuing.key,
        &authority.issuing.cert,
        old_key.public_key(),
        now,
    )
    .unwrap();
    let request = build_renewal_request(
        &old_cert,
        &old_key,
        &new_key,
        &RenewalParams::random().unwrap(),
    )
    .unwrap()
    .der;
    let anchors = [authority.issuing.cert.clone(), authority.root.cert.clone()];
    let user_at = |port: u16| {
        Upstream::new(
            &format!("https://localhost:{port}"),
            CmcProtocol::Fullcmc,
            &anchors,
            &old_key,
            std::slice::from_ref(&old_cert),
            Duration::from_secs(30),
        )
        .unwrap()
    };
    // The user's client: an EST fullcmc client with the old key as its TLS identity.
    let ask = |port: u16| match user_at(port).cmc(&request, None).unwrap() {
        CmcAnswer::Response { der, .. } => parse_response(&der, &Limits::default()).unwrap(),
        other => panic!("{other:?}"),
    };

    let (mut a, a_port, _) = gateways.remove(0);
    let (_b, b_port, b_admin) = gateways.remove(0);
    assert!(matches!(ask(a_port).outcome, Outcome::Pending { .. }));
    a.kill9();

    // The CA's administrator approves; the user polls instance B.
    let approved = admin(ca_admin, "POST", "/admin/pending/1/approve");
    assert!(approved.starts_with("HTTP/1.1 200"), "{approved}");
    let response = ask(b_port);
    assert_eq!(response.outcome, Outcome::Issued);
    let new = PublicKey::from_spki(new_key.public_key()).unwrap();
    let issued: Vec<&Retained<_>> = response
        .certificates
        .iter()
        .filter(|c| {
            PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info()).ok()
                == Some(new.clone())
        })
        .collect();
    assert_eq!(issued.len(), 1);
    // B's view of the shared state: one pending request, issued; one certificate.
    let metrics = admin(b_admin, "GET", "/metrics");
    assert!(
        metrics.contains("gateway_events_total{kind=\"issued\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_pending_requests 0"), "{metrics}");
    assert!(admin(b_admin, "GET", "/health").contains("\r\n\r\nok"));
    let _ = std::fs::remove_dir_all(&dir);
}
