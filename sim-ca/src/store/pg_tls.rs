//! TLS to PostgreSQL with the rustls stack the rest of sim-ca uses (aws-lc-rs). The
//! connection URL says how, as libpq's parameters do: `sslmode=verify-full` verifies the
//! server's certificate chain against `sslrootcert` and its name against the host;
//! `sslmode=require` (or `verify-ca`) verifies the chain only (a server reached by another
//! name than its certificate's); both need `sslrootcert` — a connection that verifies nothing
//! is not offered. Without `sslmode` (or `disable` / `prefer`) the connection is plain, for a
//! local socket.

use std::{
    future::Future,
    io,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::{
    ClientConfig, RootCertStore,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::StoreError;

/// How the connection is protected.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum Mode {
    /// No TLS.
    Plain,
    /// TLS; the chain verified against `root`; the host name too when `full`.
    Verified {
        /// The CA file (`sslrootcert`).
        root: PathBuf,
        /// `verify-full`.
        full: bool,
    },
}

/// Splits `url` into the URL the driver reads (without `sslmode` and `sslrootcert`, which it
/// does not understand as libpq does) and the TLS mode they ask for.
pub(crate) fn split(url: &str) -> Result<(String, Mode), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Mode::Plain));
    };
    let (mut mode, mut root, mut rest) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(PathBuf::from(v)),
            _ => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let bad = |why: String| StoreError::Config(format!("PostgreSQL URL: {why}"));
    let mode = match mode.as_deref() {
        None | Some("disable" | "prefer") => Mode::Plain,
        Some(m @ ("require" | "verify-ca" | "verify-full")) => Mode::Verified {
            root: root.ok_or_else(|| bad(format!("sslmode={m} needs sslrootcert=CA-FILE")))?,
            full: m == "verify-full",
        },
        Some(other) => return Err(bad(format!("unknown sslmode {other:?}"))),
    };
    Ok((base, mode))
}

/// The rustls connector for `mode` (`Verified` only).
pub(crate) fn connector(root: &std::path::Path, full: bool) -> Result<Connector, StoreError> {
    let bad = |why: String| StoreError::Config(format!("sslrootcert {}: {why}", root.display()));
    let pem = std::fs::read(root).map_err(|e| bad(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for der in renewal_codec::x509::certificates_in(&pem).map_err(|e| bad(e.to_string()))? {
        roots
            .add(CertificateDer::from(der))
            .map_err(|e| bad(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if full {
        webpki
    } else {
        Arc::new(ChainOnly(webpki))
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Connector(Arc::new(config)))
}

/// `sslmode=require`: the chain must verify, under the name the certificate itself carries
/// (its first subjectAltName) — the host the client dialled is not compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = own_name(end_entity).ok_or(rustls::Error::General(
            "the server certificate names no host".into(),
        ))?;
        self.0
            .verify_server_cert(end_entity, intermediates, &name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The first DNS name or IP address of a certificate's subjectAltName.
fn own_name(der: &CertificateDer<'_>) -> Option<ServerName<'static>> {
    use der::Decode;
    use x509_cert::ext::pkix::{SubjectAltName, name::GeneralName};
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let ext = cert
        .tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id == renewal_codec::cmc::oids::SUBJECT_ALT_NAME)?;
    let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
    san.0.iter().find_map(|name| match name {
        GeneralName::DnsName(dns) => ServerName::try_from(dns.as_str().to_string()).ok(),
        GeneralName::IpAddress(ip) => match ip.as_bytes() {
            [a, b, c, d] => Some(ServerName::IpAddress(
                std::net::IpAddr::from([*a, *b, *c, *d]).into(),
            )),
            bytes => <[u8; 16]>::try_from(bytes)
                .ok()
                .map(|v6| ServerName::IpAddress(std::net::IpAddr::from(v6).into())),
        },
        _ => None,
    })
}

/// Makes a TLS connection per PostgreSQL connection.
#[derive(Clone)]
pub(crate) struct Connector(Arc<ClientConfig>);

impl MakeTlsConnect<postgres::Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, io::Error> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect {
            config: Arc::clone(&self.0),
            name,
        })
    }
}

/// One connection's TLS handshake.
pub(crate) struct Connect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl TlsConnect<postgres::Socket> for Connect {
    type Stream = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn connect(self, socket: postgres::Socket) -> Self::Future {
        Box::pin(async move {
            tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, socket)
                .await
                .map(Stream)
        })
    }
}

/// The encrypted stream.
pub(crate) struct Stream(tokio_rustls::client::TlsStream<postgres::Socket>);

impl TlsStream for Stream {
    /// No channel binding: authentication is the server's `pg_hba.conf` (SCRAM works without
    /// it); the certificate verification above is what binds the connection to the server.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_url_says_how() {
        assert_eq!(
            split("postgresql://u@h/db").unwrap(),
            ("postgresql://u@h/db".into(), Mode::Plain)
        );
        assert_eq!(
            split("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5")
                .unwrap(),
            (
                "postgresql://u@h/db?connect_timeout=5".into(),
                Mode::Verified {
                    root: "/ca.pem".into(),
                    full: true
                }
            )
        );
        assert!(matches!(
            split("postgresql://u@h/db?sslmode=require&sslrootcert=/ca.pem")
                .unwrap()
                .1,
            Mode::Verified { full: false, .. }
        ));
        // Verifying nothing is not offered; a typo is not plain text.
        assert!(split("postgresql://u@h/db?sslmode=require").is_err());
        assert!(split("postgresql://u@h/db?sslmode=verify_full&sslrootcert=/x").is_err());
    }
}
