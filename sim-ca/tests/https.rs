//! The HTTPS server over loopback with a real rustls client: EST `/cacerts`, `/fullcmc`,
//! `/simplereenroll`, RFC 5273 `/cmc`; pending → 202 + Retry-After → admin approval; client
//! certificates required; body limit; every transport fault.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::{net::SocketAddr, sync::Arc};

use base64ct::{Base64, Encoding};
use common::{Client, ca_with, parse};
use renewal_codec::cmc::{Outcome, ResponseForm, Signer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sim_ca::{
    http::{self, HttpLimits},
    store::AuditOutcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    https: SocketAddr,
    admin: SocketAddr,
    ca_chain: Vec<CertificateDer<'static>>,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

async fn start(scenario: &str) -> (Server, Arc<sim_ca::Ca>) {
    start_with(scenario, true).await
}

/// [`start`], with TLS session resumption on or off.
async fn start_with(scenario: &str, resumption: bool) -> (Server, Arc<sim_ca::Ca>) {
    let limits = HttpLimits {
        max_body: 16 * 1024,
        ..HttpLimits::default()
    };
    start_limited(scenario, resumption, limits).await
}

/// [`start_with`], with `limits`.
async fn start_limited(
    scenario: &str,
    resumption: bool,
    limits: HttpLimits,
) -> (Server, Arc<sim_ca::Ca>) {
    let ca = Arc::new(ca_with(scenario));
    let dir = std::env::temp_dir().join(format!(
        "sim-ca-https-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let identity = http::server_identity(&ca, &dir).unwrap();
    let config = http::tls_config(&ca, identity).unwrap();
    let config = if resumption {
        config
    } else {
        http::without_resumption(config)
    };
    let https = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server {
        https: https.local_addr().unwrap(),
        admin: admin.local_addr().unwrap(),
        ca_chain: vec![
            CertificateDer::from(ca.authority().issuing.cert.der().to_vec()),
            CertificateDer::from(ca.authority().root.cert.der().to_vec()),
        ],
        _dir: dir,
    };
    tokio::spawn(http::serve_https(
        Arc::clone(&ca) as Arc<dyn sim_ca::backend::Backend>,
        https,
        config,
        limits,
    ));
    tokio::spawn(http::serve_admin(
        Arc::clone(&ca) as Arc<dyn sim_ca::backend::Backend>,
        admin,
    ));
    (server, ca)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_http(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One request over a fresh TLS connection (`Connection: close`), as raw HTTP/1.1.
async fn https(
    server: &Server,
    client: Option<&Client>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    let config = Arc::new(client_config(server, client));
    Ok(https_with(server, config, method, path, body).await?.0)
}

/// The CA certificates a client of `server` trusts.
fn roots(server: &Server) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in &server.ca_chain {
        roots.add(c.clone()).unwrap();
    }
    roots
}

/// A TLS client of `server`, presenting `client`'s certificate when there is one.
fn client_config(server: &Server, client: Option<&Client>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(server));
    match client {
        Some(c) => {
            let pem = c.old_key.to_pkcs8_pem().unwrap();
            let (_, der) = der::pem::decode_vec(pem.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(c.old_cert.der().to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
                )
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// [`https`] with `config` (kept across connections by a caller that wants to resume), and
/// the kind of handshake the connection had.
async fn https_with(
    server: &Server,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(Vec<u8>, Option<rustls::HandshakeKind>)> {
    let tcp = tokio::net::TcpStream::connect(server.https).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let kind = tls.get_ref().1.handshake_kind();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok((out, kind))
}

/// A TLS session over `tcp` with `server`, without a client certificate.
async fn anonymous_tls(
    server: &Server,
    tcp: tokio::net::TcpStream,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tokio_rustls::TlsConnector::from(Arc::new(client_config(server, None)))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

async fn admin(server: &Server, method: &str, path: &str) -> Reply {
    let mut tcp = tokio::net::TcpStream::connect(server.admin).await.unwrap();
    tcp.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    parse_http(&out)
}

fn b64(der: &[u8]) -> Vec<u8> {
    Base64::encode_string(der).into_bytes()
}

#[tokio::test]
async fn est_and_cmc_endpoints() {
    let (server, ca) = start("").await;
    let client = Client::new(&ca);

    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "GET",
            "/.well-known/est/cacerts",
            b"",
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/pkcs7-mime"));
    let cacerts = parse(&reply.body);
    assert_eq!(cacerts.form, ResponseForm::CertsOnly);
    assert_eq!(
        cacerts.certificates,
        vec![
            ca.authority().issuing.cert.clone(),
            ca.authority().root.cert.clone()
        ]
    );

    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "POST",
            "/.well-known/est/fullcmc",
            &b64(&client.request()),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/pkcs7-mime; smime-type=CMC-response")
    );
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);

    // RFC 5273: binary DER both ways.
    let reply = parse_http(
        &https(&server, Some(&client), "POST", "/cmc", &client.request())
            .await
            .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.first(), Some(&0x30));
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);

    let built = renewal_codec::cmc::build_renewal_request(
        &client.old_cert,
        &client.old_key,
        &client.new_key,
        &Client::params(),
    )
    .unwrap();
    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "POST",
            "/.well-known/est/simplereenroll",
            &b64(&built.pkcs10_der),
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/pkcs7-mime; smime-type=certs-only")
    );
    let issued = parse(&reply.body);
    assert_eq!(
        issued.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );

    let reply = parse_http(
        &https(&server, Some(&client), "GET", "/nope", b"")
            .await
            .unwrap(),
    );
    assert_eq!(reply.status, 404);
}

/// TLS session resumption is the server's choice: on (the default), a client keeping its
/// configuration resumes its session without another signature by its card; off
/// (`--tls-resumption off`), every connection proves the card's key afresh.
#[tokio::test]
async fn resumption_is_a_setting_and_off_means_every_connection_signs() {
    for (resumption, second) in [
        (true, rustls::HandshakeKind::Resumed),
        (false, rustls::HandshakeKind::Full),
    ] {
        let (server, ca) = start_with("", resumption).await;
        let client = Client::new(&ca);
        // One client configuration, which resumes the session the first connection got
        // when the server lets it.
        let config = Arc::new(client_config(&server, Some(&client)));
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let (raw, kind) = https_with(
                &server,
                config.clone(),
                "GET",
                "/.well-known/est/cacerts",
                b"",
            )
            .await
            .unwrap();
            assert_eq!(parse_http(&raw).status, 200);
            kinds.push(kind);
        }
        assert_eq!(
            kinds,
            [Some(rustls::HandshakeKind::Full), Some(second)],
            "resumption {resumption}"
        );
    }
}

/// The server orders the suites: a client listing AES-256-GCM/SHA-384 first (rustls' default,
/// as OpenSSL's) gets TLS 1.3's mandatory AES-128-GCM/SHA-256, and a client that offers only
/// AES-256-GCM/SHA-384 is still served with it.
#[tokio::test]
async fn the_server_prefers_aes_128_gcm_sha256_and_serves_the_other_suites() {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    let (server, ca) = start("").await;
    let client = Client::new(&ca);
    let default = client_config(&server, Some(&client));
    assert_eq!(
        default.crypto_provider().cipher_suites[0].suite(),
        TLS13_AES_256_GCM_SHA384,
        "the client lists SHA-384 first"
    );
    let mut only_384 = rustls::crypto::aws_lc_rs::default_provider();
    only_384
        .cipher_suites
        .retain(|s| s.suite() == TLS13_AES_256_GCM_SHA384);
    let only_384 = rustls::ClientConfig::builder_with_provider(Arc::new(only_384))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&server))
        .with_no_client_auth();
    for (config, expected) in [
        (default, TLS13_AES_128_GCM_SHA256),
        (only_384, TLS13_AES_256_GCM_SHA384),
    ] {
        let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let suite = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, expected);
        tls.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.unwrap();
        assert_eq!(parse_http(&out).status, 200);
    }
}

/// RFC 7030 §4.1.1: `/cacerts` answers a client without a certificate; every endpoint that
/// acts for an identity refuses one without (403, nothing decided), and a certificate from
/// another CA does not even complete the handshake.
#[tokio::test]
async fn a_client_certificate_is_required_where_an_identity_is() {
    let (server, ca) = start("").await;
    let reply = parse_http(
        &https(&server, None, "GET", "/.well-known/est/cacerts", b"")
            .await
            .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert!(!reply.body.is_empty());
    let client = Client::new(&ca);
    for path in [
        "/.well-known/est/simplereenroll",
        "/.well-known/est/fullcmc",
        "/cmc",
        "/cardrenew_CES_Certificate/service.svc/CES",
    ] {
        let raw = https(&server, None, "POST", path, &b64(&client.request()))
            .await
            .unwrap();
        let reply = parse_http(&raw);
        assert_eq!(reply.status, 403, "{path}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains("TLS client certificate"),
            "{path}"
        );
    }
    // Initial enrollment: refused with its reason, with or without a certificate, audited.
    for who in [None, Some(&client)] {
        let raw = https(&server, who, "POST", "/.well-known/est/simpleenroll", b"x")
            .await
            .unwrap();
        let reply = parse_http(&raw);
        assert_eq!(reply.status, 403);
        assert!(String::from_utf8_lossy(&reply.body).contains("renews certificates only"));
    }
    let audit = ca.audit_trail();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.endpoint == "simpleenroll" && r.outcome == AuditOutcome::Refused)
            .count(),
        2
    );
    assert!(ca.counters().iter().all(|(n, v)| n != "issued" || *v == 0));
    // A certificate from another CA is refused in the handshake.
    let foreign = renewal_codec::sample::Sample::deterministic().unwrap();
    let stranger = Client {
        old_key: foreign.old_key,
        old_cert: foreign.old_cert,
        new_key: foreign.new_key,
    };
    let result = https(
        &server,
        Some(&stranger),
        "GET",
        "/.well-known/est/cacerts",
        b"",
    )
    .await;
    assert!(
        result.is_err() || result.as_ref().is_ok_and(|r| r.is_empty()),
        "{result:?}"
    );
}

#[tokio::test]
async fn pending_then_approved_by_the_administrator() {
    let (server, ca) = start("[[rule]]\ndisposition = \"pending\"\nresolve = \"admin\"\n").await;
    let client = Client::new(&ca);
    let request = b64(&client.request());
    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "POST",
            "/.well-known/est/fullcmc",
            &request,
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 202);
    assert_eq!(reply.header("retry-after"), Some("5"));
    let id = match parse(&reply.body).outcome {
        Outcome::Pending { token, .. } => i64::from_be_bytes(token.try_into().unwrap()),
        other => panic!("{other:?}"),
    };
    let listed = admin(&server, "GET", "/admin/pending").await;
    assert!(String::from_utf8_lossy(&listed.body).contains(&format!("\"id\":{id}")));
    assert_eq!(
        admin(&server, "POST", &format!("/admin/pending/{id}/approve"))
            .await
            .status,
        200
    );
    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "POST",
            "/.well-known/est/fullcmc",
            &request,
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);
    let counters = admin(&server, "GET", "/admin/counters").await;
    assert!(String::from_utf8_lossy(&counters.body).contains("\"issued\":1"));
    // The same counters for Prometheus on the admin listener, with what is pending.
    let metrics = admin(&server, "GET", "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("# TYPE sim_ca_events_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("sim_ca_events_total{kind=\"issued\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("sim_ca_pending_requests 0\n"), "{text}");
    assert!(text.contains("sim_ca_wal_fsyncs_total "), "{text}");
}

#[tokio::test]
async fn bodies_are_bounded() {
    let (server, ca) = start("").await;
    let client = Client::new(&ca);
    let reply = parse_http(
        &https(
            &server,
            Some(&client),
            "POST",
            "/cmc",
            &vec![0x30; 20 * 1024],
        )
        .await
        .unwrap(),
    );
    assert_eq!(reply.status, 413);
    // Refused before the CA read it, and still in the audit trail.
    let trail = ca.audit_trail();
    assert!(
        trail.iter().any(|r| r.outcome == AuditOutcome::Refused
            && r.endpoint == "cmc"
            && r.detail.contains("0x80094007")),
        "{trail:#?}"
    );
}

async fn with_fault(fault: &str) -> (Result<Vec<u8>, std::io::Error>, Client, Arc<sim_ca::Ca>) {
    let (server, ca) = start(&format!("[[rule]]\nfault = \"{fault}\"\n")).await;
    let client = Client::new(&ca);
    let result = https(
        &server,
        Some(&client),
        "POST",
        "/.well-known/est/fullcmc",
        &b64(&client.request()),
    )
    .await;
    (result, client, ca)
}

#[tokio::test]
async fn transport_faults() {
    // Dropped before reading: nothing was processed.
    let (result, _, ca) = with_fault("drop-before-read").await;
    assert!(
        result.is_err() || result.as_ref().is_ok_and(|r| r.is_empty()),
        "{result:?}"
    );
    assert!(!ca.counters().iter().any(|(n, _)| n == "issued"));
    // Dropped after reading: the CA issued, the client never heard.
    let (result, _, ca) = with_fault("drop-after-read").await;
    assert!(
        result.is_err() || result.as_ref().is_ok_and(|r| r.is_empty()),
        "{result:?}"
    );
    assert!(ca.counters().contains(&("issued".into(), 1)));

    let (result, _, _) = with_fault("http:503").await;
    assert_eq!(parse_http(&result.unwrap()).status, 503);
    let (result, _, _) = with_fault("http:500").await;
    assert_eq!(parse_http(&result.unwrap()).status, 500);

    let (result, _, _) = with_fault("malformed-body").await;
    let reply = parse_http(&result.unwrap());
    assert_eq!(reply.status, 200);
    assert!(renewal_codec::cmc::parse_response(&reply.body, &Default::default()).is_err());

    let (result, _, _) = with_fault("wrong-content-type").await;
    let reply = parse_http(&result.unwrap());
    assert_eq!(reply.header("content-type"), Some("text/html"));

    let (result, _, _) = with_fault("truncated").await;
    let reply = parse_http(&result.unwrap());
    assert!(renewal_codec::cmc::parse_response(&reply.body, &Default::default()).is_err());

    // A delayed answer is still the right answer (how long is for benchmarks to say).
    let (result, client, _) = with_fault("delay:50").await;
    let resp = parse(&parse_http(&result.unwrap()).body);
    assert_eq!(
        resp.certificates[0]
            .value()
            .tbs_certificate()
            .subject_public_key_info(),
        client.new_key.public_key()
    );
}

/// A subject's request number is kept only while a rule numbers requests, and never becomes a
/// metrics series: one per user would grow with the users and carry their names.
#[tokio::test]
async fn requests_are_numbered_only_for_a_rule_and_no_user_is_a_metrics_series() {
    for (scenario, numbered) in [
        ("", false),
        (
            "[[rule]]\nrequest = 3\ndisposition = \"deny\"\nreason = \"third\"\n",
            true,
        ),
    ] {
        let (server, ca) = start(scenario).await;
        let client = Client::new(&ca);
        let reply = parse_http(
            &https(
                &server,
                Some(&client),
                "POST",
                "/.well-known/est/fullcmc",
                &b64(&client.request()),
            )
            .await
            .unwrap(),
        );
        assert_eq!(reply.status, 200, "{scenario}");
        assert_eq!(parse(&reply.body).outcome, Outcome::Issued, "{scenario}");
        let per_subject: Vec<_> = ca
            .counters()
            .into_iter()
            .filter(|(kind, _)| kind.starts_with("requests:"))
            .collect();
        assert_eq!(per_subject.len(), usize::from(numbered), "{per_subject:?}");
        if numbered {
            assert_eq!(per_subject[0].1, 1, "{per_subject:?}");
        }
        let metrics = admin(&server, "GET", "/metrics").await;
        let text = String::from_utf8_lossy(&metrics.body);
        assert!(
            text.contains("sim_ca_events_total{kind=\"issued\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("requests:"), "{text}");
    }
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_for_one_to_end() {
    let limits = HttpLimits {
        max_connections: 2,
        // The connections that hold the slots never start their handshake: they would be
        // dropped after this, and must not be during the test.
        header_timeout: std::time::Duration::from_secs(120),
        ..HttpLimits::default()
    };
    let (server, _ca) = start_limited("", true, limits).await;
    // Served below the cap.
    let first = https(&server, None, "GET", "/.well-known/est/cacerts", b"")
        .await
        .unwrap();
    assert_eq!(parse_http(&first).status, 200);
    // Two connections that say nothing hold both slots.
    let holder = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let _other = tokio::net::TcpStream::connect(server.https).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let config = Arc::new(client_config(&server, None));
    let address = server.https;
    let mut third = tokio::spawn(cacerts_from(address, config, std::net::Ipv4Addr::LOCALHOST));
    // The kernel completed its TCP handshake; the server has not accepted it, so its TLS
    // handshake gets no answer while both slots are held.
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), &mut third).await;
    assert!(waited.is_err(), "served past the cap");
    // One connection ends: the waiting one is accepted and served.
    drop(holder);
    let raw = tokio::time::timeout(std::time::Duration::from_secs(60), third)
        .await
        .expect("still waiting after a slot was freed")
        .unwrap()
        .unwrap();
    assert_eq!(parse_http(&raw).status, 200);
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answers_is_dropped() {
    let limits = HttpLimits {
        write_timeout: std::time::Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let (server, _ca) = start_limited("", true, limits).await;
    // A small receive buffer, so the answers back up at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.https).await.unwrap();
    let tls = anonymous_tls(&server, tcp).await;
    let (_reader, mut writer) = tokio::io::split(tls);
    // Requests pipelined for as long as the server takes them, no certificate needed, no
    // answer (~2.5 KB each) ever read. The server stops reading requests once it cannot write
    // answers: a server that waits for the reader then leaves this write waiting forever; one
    // that drops the connection makes it fail.
    let one = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(100);
    let flood = async {
        let mut sent = 0usize;
        loop {
            if let Err(e) = writer.write_all(&one).await {
                return (sent, e);
            }
            sent += 100;
        }
    };
    let (sent, error) = tokio::time::timeout(std::time::Duration::from_secs(60), flood)
        .await
        .expect("the server still holds a connection whose answers nobody reads");
    assert!(sent > 0, "{error}");
}

#[tokio::test]
async fn a_connection_ends_after_its_lifetime_with_every_answer_whole() {
    let limits = HttpLimits {
        connection_lifetime: std::time::Duration::from_secs(2),
        ..HttpLimits::default()
    };
    let (server, _ca) = start_limited("", true, limits).await;
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let tls = anonymous_tls(&server, tcp).await;
    let mut tls = tokio::io::BufReader::new(tls);
    // Busy the whole time (a request every 100 ms, each answer read at once), so neither the
    // idle nor the write timeout ends it: only its lifetime can.
    let mut answered = 0;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let request = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n";
            if tls.get_mut().write_all(request).await.is_err() {
                return;
            }
            // The head, then exactly the body it announces; the end of the stream instead of
            // a head is the server closing between answers.
            let mut head = String::new();
            loop {
                let mut line = String::new();
                match tokio::io::AsyncBufReadExt::read_line(&mut tls, &mut line).await {
                    Ok(0) | Err(_) if head.is_empty() => return,
                    Ok(0) | Err(_) => panic!("an answer cut inside its head: {head:?}"),
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => head.push_str(&line),
                }
            }
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a length")
                .trim()
                .parse()
                .unwrap();
            let mut body = vec![0; length];
            tls.read_exact(&mut body)
                .await
                .expect("an answer cut inside its body");
            answered += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection outlived its lifetime by 29 s"
    );
    assert!(answered >= 2, "{answered} answers before the end");
}

/// `GET /cacerts` on a connection from `source` (a loopback address: any of 127.0.0.0/8 reaches
/// the server at `address`), trusting what `config` trusts; the raw answer.
async fn cacerts_from(
    address: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    source: std::net::Ipv4Addr,
) -> std::io::Result<Vec<u8>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let tcp = socket.connect(address).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(
        b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(out)
}

/// With a cap per client address, one host holding its share of connections cannot hold the
/// rest: its next connection is closed before its handshake, another address is served, and
/// the host is served again once one of its connections ends.
#[tokio::test]
async fn a_client_address_at_its_cap_is_closed_and_others_are_served() {
    let limits = HttpLimits {
        max_connections_per_address: 2,
        // The holders never start their handshake and must not be dropped for it.
        header_timeout: std::time::Duration::from_secs(120),
        ..HttpLimits::default()
    };
    let (server, _ca) = start_limited("", true, limits).await;
    let local = std::net::Ipv4Addr::LOCALHOST;
    let holder = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let _other = tokio::net::TcpStream::connect(server.https).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        cacerts_from(server.https, Arc::new(client_config(&server, None)), local),
    )
    .await
    .expect("neither closed nor served");
    assert!(refused.is_err(), "served past the address's cap");
    let elsewhere = cacerts_from(
        server.https,
        Arc::new(client_config(&server, None)),
        std::net::Ipv4Addr::new(127, 0, 0, 2),
    )
    .await
    .unwrap();
    assert_eq!(parse_http(&elsewhere).status, 200);
    drop(holder);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = cacerts_from(server.https, Arc::new(client_config(&server, None)), local)
        .await
        .unwrap();
    assert_eq!(parse_http(&again).status, 200);
}
