//! The server's TLS: its certificate (issued by the CA for localhost on first start) and the
//! rustls configuration that requests a client certificate and verifies it at the backend's
//! time.

use super::*;

/// The server's TLS certificate: issued by our issuing CA for `localhost` / 127.0.0.1, created
/// next to the CA files on first start.
pub fn server_identity(
    ca: &Ca,
    dir: &std::path::Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), crate::Error> {
    let result = (|| -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        use std::str::FromStr;
        let cert_path = dir.join("server.pem");
        let key_path = dir.join("server.key");
        let (cert, key) = if cert_path.exists() && key_path.exists() {
            let cert = crate::authority::certificate_from_pem_or_der(
                &std::fs::read(&cert_path).map_err(|e| e.to_string())?,
            )?;
            let key =
                SoftwareKey::from_pem_or_der(&std::fs::read(&key_path).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            (cert, key)
        } else {
            let key = SoftwareKey::generate_p256().map_err(|e| e.to_string())?;
            let now = ca.clock().now();
            use renewal_codec::x509;
            let localhost = der::asn1::Ia5String::new("localhost").map_err(|e| e.to_string())?;
            let loopback =
                der::asn1::OctetString::new(vec![127, 0, 0, 1]).map_err(|e| e.to_string())?;
            let cert = ca.authority().issue(
                vec![0x5e, 0x41],
                x509_cert::name::Name::from_str("CN=localhost,O=cardrenew sim-ca")
                    .map_err(|e| e.to_string())?,
                key.public_key().clone(),
                now - Duration::from_secs(3600),
                now + Duration::from_secs(10 * 365 * 86400),
                vec![
                    x509::basic_constraints(false, None).map_err(|e| e.to_string())?,
                    x509::ext_key_usage(vec![der::asn1::ObjectIdentifier::new_unwrap(
                        "1.3.6.1.5.5.7.3.1",
                    )])
                    .map_err(|e| e.to_string())?,
                    x509::subject_alt_name(vec![
                        x509_cert::ext::pkix::name::GeneralName::DnsName(localhost),
                        x509_cert::ext::pkix::name::GeneralName::IpAddress(loopback),
                    ])
                    .map_err(|e| e.to_string())?,
                ],
            )?;
            std::fs::write(
                &cert_path,
                der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert.der())
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            std::fs::write(
                &key_path,
                key.to_pkcs8_pem().map_err(|e| e.to_string())?.as_bytes(),
            )
            .map_err(|e| e.to_string())?;
            (cert, key)
        };
        let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
        let (_, pkcs8) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok((
            vec![
                CertificateDer::from(cert.der().to_vec()),
                CertificateDer::from(ca.authority().issuing.cert.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
        ))
    })();
    result.map_err(|reason| crate::Error::Tls { reason })
}

/// rustls server config: TLS 1.2/1.3, aws-lc-rs, client certificate required and verified
/// against our CAs.
pub fn tls_config(
    ca: &Ca,
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> Result<ServerConfig, crate::Error> {
    tls_config_for(
        &[
            ca.authority().root.cert.clone(),
            ca.authority().issuing.cert.clone(),
        ],
        ca.clock(),
        identity,
    )
}

/// rustls server config: TLS 1.2/1.3, aws-lc-rs, a client certificate requested and, when one
/// is presented, verified against `client_cas` at `clock`'s time. It is requested, not
/// required (RFC 7030 §4.1.1: `/cacerts` is for clients that have nothing yet, as strongSwan's
/// `pki --estca` fetches it); every endpoint that needs an identity refuses a connection
/// without one (the request handler in `http/mod.rs`).
pub fn tls_config_for(
    client_cas: &[renewal_codec::cmc::Retained<x509_cert::Certificate>],
    clock: &crate::clock::Clock,
    identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> Result<ServerConfig, crate::Error> {
    let result = (|| -> Result<ServerConfig, String> {
        let provider = Arc::new(provider());
        let mut roots = RootCertStore::empty();
        for cert in client_cas {
            roots
                .add(CertificateDer::from(cert.der().to_vec()))
                .map_err(|e| e.to_string())?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| e.to_string())?;
        // Client certificates are valid or not at the backend's time (advanceable in tests).
        let mut config = ServerConfig::builder_with_details(provider, Arc::new(clock.clone()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.0, identity.1)
            .map_err(|e| e.to_string())?;
        // The server's order of suites, not the client's: see [`provider`].
        config.ignore_client_order = true;
        Ok(config)
    })();
    result.map_err(|reason| crate::Error::Tls { reason })
}

/// aws-lc-rs with the AES-128-GCM/SHA-256 suites first (TLS 1.3's mandatory suite, RFC 8446
/// §9.1), the rest in rustls' order. Clients (rustls' and OpenSSL's among them) list
/// AES-256-GCM/SHA-384 first, and its key schedule runs on SHA-384, which this machine's
/// aws-lc computes without the SHA extensions that SHA-256 uses: 2 % of the CA's CPU per
/// renewal went to it (benches/README §2d). Both are 128-bit-secure or better; no suite is
/// removed, so a client that offers only the others is still served.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
            && suite.suite() != rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            && suite.suite() != rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    });
    provider
}

/// Turns TLS session resumption off (`--tls-resumption off`, `[tls] resumption = false`): no
/// tickets are sent and no session is kept, so every connection costs the client's card a
/// CertificateVerify — nothing the client's TLS stack keeps outside the card (a ticket, a
/// resumption secret) can authenticate in its place. The price: a client that reconnects
/// within one renewal (a retry, a later poll, CMP's certConf) signs again, and a PIN-always key
/// prompts again. Resumption costs the server no measurable CPU either way (benches/README
/// §2c), so this is a choice of policy, not of speed.
pub fn without_resumption(mut config: ServerConfig) -> ServerConfig {
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config
}
