//! `sim-ca` as a process, with clients nobody here wrote: `curl --cert --key` against
//! `/cacerts` and `/simplereenroll`, `openssl s_client` with and without a client certificate,
//! and durability: kill -9 while a request is pending, restart, approve from the command line,
//! collect the certificate.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    path::Path,
    process::{Command, Stdio},
};

use test_kit::{Served, free_port, require_tools as require, run_combined as run};

/// `sim-ca serve` on `port` (HTTPS) and `admin`, logging to `STATE.log` (appended: the test
/// reads every start's lines).
fn serve(state: &Path, scenario: &Path, port: u16, admin: u16) -> Served {
    let log = state.with_extension("log");
    Served::spawn(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .args(["serve", "--state"])
            .arg(state)
            .arg("--scenario")
            .arg(scenario)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin",
                &format!("127.0.0.1:{admin}"),
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            ),
        port,
        &log,
    )
}

fn curl(dir: &Path, port: u16, path: &str, data: Option<&Path>) -> (String, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-D", "-", "--cacert"])
        .arg(dir.join("state/ca-chain.pem"))
        .arg("--cert")
        .arg(dir.join("old.pem"))
        .arg("--key")
        .arg(dir.join("old.key"));
    if let Some(d) = data {
        cmd.arg("--data-binary").arg(format!("@{}", d.display()));
    }
    let out = cmd
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout[..split]).into_owned(),
        out.stdout[split + 4..].to_vec(),
    )
}

/// A new P-256 key `NAME.key` and a DER PKCS#10 for it, base64 in `NAME.csr.b64` (the body
/// EST simplereenroll takes), made with OpenSSL.
fn new_csr(dir: &Path, name: &str) {
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
        .arg(p(".key")));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-subj",
            "/O=cardrenew/CN=Bob Example",
            "-outform",
            "DER",
            "-key",
        ])
        .arg(p(".key"))
        .arg("-out")
        .arg(p(".csr.der")));
    run(Command::new("sh").arg("-c").arg(format!(
        "base64 -w0 {} > {}",
        p(".csr.der").display(),
        p(".csr.b64").display()
    )));
}

/// Bob's first certificate, as an administrator issues it: a new P-256 key `old.key` in
/// `dir`, its PKCS#10 made with OpenSSL, `sim-ca issue` under SmartcardUser into `old.pem`
/// (the CA's state in `state`, created if need be). Returns what `sim-ca issue` printed.
fn enroll(dir: &Path, state: &Path) -> String {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(p("old.key")));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-subj",
            "/O=cardrenew/CN=Bob Example",
            "-key",
        ])
        .arg(p("old.key"))
        .arg("-out")
        .arg(p("old.csr")));
    run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["issue", "--state"])
        .arg(state)
        .arg("--csr")
        .arg(p("old.csr"))
        .args(["--template", "SmartcardUser", "--out"])
        .arg(p("old.pem")))
}

#[test]
fn third_party_clients_and_restart_durability() {
    if !require(&["curl", "openssl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-process");
    let p = |n: &str| dir.join(n);
    let state = p("state");
    // Renewals under the built-in template pend until an administrator decides.
    let scenario = p("scenario.toml");
    std::fs::write(
        &scenario,
        "[[rule]]\nrequest = 2\ndisposition = \"pending\"\nresolve = \"admin\"\n",
    )
    .unwrap();

    // Initial enrollment, as an administrator does it.
    let issued = enroll(&dir, &state);
    assert!(issued.contains("CN=Bob Example"), "{issued}");
    assert!(
        run(Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(state.join("ca-chain.pem"))
            .arg(p("old.pem")))
        .contains(": OK")
    );
    assert!(
        run(Command::new(env!("CARGO_BIN_EXE_sim-ca")).args(["templates"]))
            .contains("SmartcardUser")
    );

    let (port, admin) = (free_port(), free_port());
    let mut served = serve(&state, &scenario, port, admin);

    // openssl s_client: with a client certificate the handshake completes.
    let with_cert = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-brief",
            "-CAfile",
        ])
        .arg(state.join("ca-chain.pem"))
        .arg("-cert")
        .arg(p("old.pem"))
        .arg("-key")
        .arg(p("old.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = with_cert.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CONNECTION ESTABLISHED"), "{text}");
    // Without a client certificate (RFC 7030 §4.1.1): the CA certificates are served, nothing
    // that acts for an identity is, and initial enrollment is refused with its reason.
    let anonymous = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-D", "-", "--cacert"])
            .arg(state.join("ca-chain.pem"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let cacerts = anonymous(&[&url("/.well-known/est/cacerts")]);
    assert!(cacerts.starts_with("HTTP/1.1 200"), "{cacerts}");
    let reenroll = anonymous(&[
        "--data-binary",
        "x",
        &url("/.well-known/est/simplereenroll"),
    ]);
    assert!(reenroll.starts_with("HTTP/1.1 403"), "{reenroll}");
    assert!(
        reenroll.contains("needs a TLS client certificate"),
        "{reenroll}"
    );
    let enroll = anonymous(&["--data-binary", "x", &url("/.well-known/est/simpleenroll")]);
    assert!(enroll.starts_with("HTTP/1.1 403"), "{enroll}");
    assert!(enroll.contains("renews certificates only"), "{enroll}");

    // curl: /cacerts, then /simplereenroll with a new key (request 1 of this subject: issued).
    let (head, body) = curl(&dir, port, "/.well-known/est/cacerts", None);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(p("cacerts.b64"), &body).unwrap();
    let certs = run(Command::new("sh").arg("-c").arg(format!(
        "base64 -d {} | openssl pkcs7 -inform DER -print_certs -noout",
        p("cacerts.b64").display()
    )));
    assert!(
        certs.contains("cardrenew Sim Issuing CA") && certs.contains("cardrenew Sim Root CA"),
        "{certs}"
    );

    new_csr(&dir, "new");
    let (head, body) = curl(
        &dir,
        port,
        "/.well-known/est/simplereenroll",
        Some(&p("new.csr.b64")),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(p("new.p7.b64"), &body).unwrap();
    let renewed = run(Command::new("sh").arg("-c").arg(format!(
        "base64 -d {} | openssl pkcs7 -inform DER -print_certs | openssl x509 -noout -subject -pubkey",
        p("new.p7.b64").display()
    )));
    let new_pub = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(p("new.key")));
    assert!(renewed.contains("CN = Bob Example"), "{renewed}");
    assert!(
        renewed.contains(new_pub.trim()),
        "the certificate is for the new key"
    );

    // Request 2 pends: 202 + Retry-After.
    new_csr(&dir, "newer");
    let (head, _) = curl(
        &dir,
        port,
        "/.well-known/est/simplereenroll",
        Some(&p("newer.csr.b64")),
    );
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );

    // kill -9, restart: the pending request is still there and can be collected.
    served.kill9();
    let listed = run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["pending", "list", "--state"])
        .arg(&state));
    // The first row under the header.
    let id = listed
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(listed.contains("simplereenroll"), "{listed}");
    let _served = serve(&state, &scenario, port, admin);
    let (head, _) = curl(
        &dir,
        port,
        "/.well-known/est/simplereenroll",
        Some(&p("newer.csr.b64")),
    );
    assert!(
        head.starts_with("HTTP/1.1 202"),
        "still pending after the restart: {head}"
    );
    run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["pending", "approve", "--state"])
        .arg(&state)
        .arg(&id));
    let (head, body) = curl(
        &dir,
        port,
        "/.well-known/est/simplereenroll",
        Some(&p("newer.csr.b64")),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(p("newer.p7.b64"), &body).unwrap();
    let collected = run(Command::new("sh").arg("-c").arg(format!(
        "base64 -d {} | openssl pkcs7 -inform DER -print_certs | openssl x509 -noout -pubkey",
        p("newer.p7.b64").display()
    )));
    let newer_pub = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(p("newer.key")));
    assert_eq!(collected.trim(), newer_pub.trim());
    let pending_after = run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["pending", "list", "--state"])
        .arg(&state));
    assert!(
        pending_after.contains("no pending requests"),
        "{pending_after}"
    );

    // The audit trail, through the CLI: every decision in order, across the kill -9.
    let audit: serde_json::Value =
        serde_json::from_str(&run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .args(["audit", "--json", "--state"])
            .arg(&state)))
        .unwrap();
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "enrolled",
            // The anonymous simpleenroll: refused, and audited.
            "refused",
            "issued",
            "pending",
            "still-pending",
            "approved",
            "issued"
        ],
        "{audit:#}"
    );
    let table = run(Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["audit", "--state"])
        .arg(&state));
    assert_eq!(table.lines().count(), 8, "a header and 7 records: {table}");
    assert!(table.starts_with("ID  "), "{table}");
    // One log line per request, with endpoint, outcome and latency; nothing of the request.
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let requests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("endpoint=\"simplereenroll\""))
        .collect();
    assert_eq!(requests.len(), 4, "{log}");
    assert!(
        requests
            .iter()
            .all(|l| l.contains("outcome=") && l.contains("latency_us=")),
        "{log}"
    );
    let csr = std::fs::read_to_string(p("newer.csr.b64")).unwrap();
    assert!(!log.contains(&csr[..40]), "the log holds request bytes");
    assert!(!log.contains("BEGIN"), "the log holds PEM");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sim-ca serve --tls-resumption on|off`, seen by OpenSSL's client: on (the default), a
/// client keeping its session resumes it without a new signature by its key; off, the
/// server sends no ticket, and every connection is a full handshake.
#[test]
fn tls_resumption_is_the_operators_choice() {
    if !require(&["openssl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-resumption");
    let p = |n: &str| dir.join(n);
    let state = p("state");
    enroll(&dir, &state);
    // One request over a connection that saves its session to, or resumes it from, `session`;
    // what OpenSSL says of the handshake ("New, ..." or "Reused, ...").
    let connect = |port: u16, session: &Path, resume: bool| -> String {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-ign_eof",
            ])
            .arg("-CAfile")
            .arg(state.join("ca-chain.pem"))
            .arg("-cert")
            .arg(p("old.pem"))
            .arg("-key")
            .arg(p("old.key"))
            .arg(if resume { "-sess_in" } else { "-sess_out" })
            .arg(session)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin
                .write_all(
                    b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\
                      Connection: close\r\n\r\n",
                )
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find(|l| l.starts_with("New, ") || l.starts_with("Reused, "))
            .map(|l| l.split(',').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| format!("no handshake: {text}"))
    };
    for (setting, resumed) in [("on", true), ("off", false)] {
        let (port, admin) = (free_port(), free_port());
        let log = p(&format!("serve-{setting}.log"));
        let _served = Served::spawn(
            Command::new(env!("CARGO_BIN_EXE_sim-ca"))
                .args(["serve", "--state"])
                .arg(&state)
                .args([
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--admin",
                    &format!("127.0.0.1:{admin}"),
                    "--tls-resumption",
                    setting,
                ])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
            port,
            &log,
        );
        let session = p(&format!("session-{setting}.pem"));
        assert_eq!(connect(port, &session, false), "New", "{setting}");
        if resumed {
            assert_eq!(connect(port, &session, true), "Reused");
        } else {
            // No ticket came, so OpenSSL has no session to keep — or, if it kept one, the
            // server does not resume it.
            assert!(
                !session.exists() || connect(port, &session, true) == "New",
                "resumed with --tls-resumption off"
            );
        }
    }
}

/// `sim-ca serve` with a fresh state in `dir`, at most `max_connections` and `more` arguments,
/// started by `launcher` (`prlimit ...`, or nothing), logging to `dir/serve.log`; its HTTPS
/// port.
fn serve_capped(
    dir: &Path,
    launcher: &[&str],
    max_connections: &str,
    more: &[&str],
) -> (Served, u16, std::path::PathBuf) {
    let (port, admin) = (free_port(), free_port());
    let log = dir.join("serve.log");
    let mut command = match launcher.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_sim-ca"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_sim-ca")),
    };
    command
        .args(["serve", "--state"])
        .arg(dir.join("state"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--max-connections", max_connections])
        .args(more);
    (Served::logged(&mut command, port, &log), port, log)
}

/// `n` connections to `port` that say nothing.
fn idle_connections(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect()
}

/// How many lines of `log` say `what`.
fn logged(log: &Path, what: &str) -> usize {
    std::fs::read_to_string(log).unwrap().matches(what).count()
}

/// Waits (30 s at most) until `log` says the server reached its connection cap; it must say
/// so once.
fn await_cap_logged_once(log: &Path) {
    let said = || logged(log, "at the connection cap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while said() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(said(), 1, "{}", std::fs::read_to_string(log).unwrap());
}

/// The HTTP status of `GET /cacerts` by curl (no client certificate), and curl's errors.
fn cacerts_status(dir: &Path, port: u16) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(dir.join("state/ca-chain.pem"))
        .arg(format!("https://localhost:{port}/.well-known/est/cacerts"))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Out of file descriptors, `accept` fails at once for as long as the descriptors are held: the
/// server says so and pauses between attempts (100 ms) instead of spinning a core on them, and
/// serves again once they are freed.
#[test]
fn out_of_descriptors_the_server_pauses_and_recovers() {
    if !require(&["prlimit", "curl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-descriptors");
    // 64 descriptors and a cap above them: the descriptors run out first.
    let (_server, port, log) = serve_capped(&dir, &["prlimit", "--nofile=64:64"], "1000", &[]);
    let held = idle_connections(port, 100);
    std::thread::sleep(std::time::Duration::from_secs(2));
    drop(held);
    let failures = logged(&log, "accept failed");
    // Two seconds at one attempt per 100 ms is about 20; a loop without the pause logs
    // thousands.
    assert!(
        (1..=60).contains(&failures),
        "{failures} accept failures logged in 2 s"
    );
    // The descriptors back, the server serves.
    let (status, errors) = cacerts_status(&dir, port);
    assert_eq!(status, "200", "{errors}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// At the connection cap the server says so — once, however many more connections wait — and
/// the waiting ones are served when the slots are given back.
#[test]
fn at_the_connection_cap_the_server_says_so_once() {
    if !require(&["curl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-cap");
    let (_server, port, log) = serve_capped(&dir, &[], "2", &[]);
    // Connections that say nothing: two hold the slots, twenty wait.
    let held = idle_connections(port, 22);
    let said = || logged(&log, "at the connection cap");
    await_cap_logged_once(&log);
    drop(held);
    let (status, errors) = cacerts_status(&dir, port);
    assert_eq!(status, "200", "{errors}");
    assert_eq!(said(), 1, "said again within the minute");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The gateway's `[limits] max_connections` holds as the CA's `--max-connections` does: the
/// same listener, reached through the gateway's configuration (its upstream need not answer
/// for `/cacerts`).
#[test]
fn a_gateway_at_its_connection_cap_says_so_and_serves_the_waiting_ones() {
    if !require(&["curl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-gateway-cap");
    for (out, tls) in [("ra", false), ("tls", true)] {
        let mut credential = Command::new(env!("CARGO_BIN_EXE_sim-ca"));
        credential
            .args(["credential", "--state"])
            .arg(dir.join("state"))
            .args(["--name", "localhost", "--out"])
            .arg(dir.join(out));
        if tls {
            credential.arg("--tls-server");
        }
        run(&mut credential);
    }
    let (port, admin, upstream) = (free_port(), free_port(), free_port());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin}\"\nstore = \"gateway.db\"\n\
             [tls]\ncertificate = \"tls.pem\"\nkey = \"tls.key\"\n\
             client_cas = \"state/ca-chain.pem\"\n\
             [upstream]\nurl = \"https://localhost:{upstream}\"\nca = \"state/ca-chain.pem\"\n\
             [ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n\
             [limits]\nmax_connections = 2\n"
        ),
    )
    .unwrap();
    let log = dir.join("gateway.log");
    let _gateway = Served::logged(
        Command::new(env!("CARGO_BIN_EXE_sim-ca"))
            .args(["serve", "--mode", "gateway", "--config"])
            .arg(&config),
        port,
        &log,
    );
    let held = idle_connections(port, 5);
    await_cap_logged_once(&log);
    drop(held);
    let (status, errors) = cacerts_status(&dir, port);
    assert_eq!(status, "200", "{errors}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A connection from 127.0.0.1 that the server holds, saying nothing. One the server closed at
/// once is made again: the connection by which `Served` saw the server up may still count
/// against the address when the first arrives.
fn held_connection(port: u16) -> std::net::TcpStream {
    use std::io::Read;
    for _ in 0..50 {
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        match (&tcp).read(&mut [0u8; 1]) {
            // Nothing to read and not closed: held.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return tcp;
            }
            _ => continue,
        }
    }
    panic!("the server closed 50 connections in a row");
}

/// `--max-connections-per-address` reaches the listener: one connection held from 127.0.0.1,
/// curl from there is closed before its handshake and the cap is logged with the address,
/// while curl from 127.0.0.2 is served.
#[test]
fn a_client_address_at_its_cap_is_closed_and_said() {
    if !require(&["curl"]) {
        return;
    }
    let dir = test_kit::temp_dir("sim-ca-address-cap");
    let (_server, port, log) =
        serve_capped(&dir, &[], "512", &["--max-connections-per-address", "1"]);
    let _held = held_connection(port);
    let from = |source: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["--interface", source, "--cacert"])
            .arg(dir.join("state/ca-chain.pem"))
            .arg(format!("https://localhost:{port}/.well-known/est/cacerts"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(from("127.0.0.1"), "000", "served past the address's cap");
    assert_eq!(logged(&log, "a client address at its connection cap"), 1);
    assert_eq!(logged(&log, "address=127.0.0.1"), 1);
    assert_eq!(from("127.0.0.2"), "200");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CA state whose issuing certificate has expired does not serve (ADCS does not start with
/// one either): `sim-ca serve` exits 1 and says why and what to do, before it listens.
#[test]
fn an_expired_issuing_ca_does_not_serve() {
    let dir = test_kit::temp_dir("expired-ca");
    let state = dir.join("ca");
    // Made 21 years ago: the issuing certificate (20 years) expired a year ago.
    let born = std::time::SystemTime::now() - std::time::Duration::from_secs(21 * 365 * 86400);
    sim_ca::authority::Authority::load_or_create_with(
        &state,
        born,
        renewal_codec::cmc::KeyAlgorithm::EcP256,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sim-ca"))
        .args(["serve", "--state"])
        .arg(&state)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the issuing CA's certificate expired on")
            && stderr.contains("new --state directory"),
        "{stderr}"
    );
}
