//! The gateway's TOML configuration: where it listens, whom it trusts, its upstream, its RA
//! credential, its store and its limits. Relative paths are relative to the file.
//!
//! ```toml
//! listen = "0.0.0.0:8443"
//! admin = "127.0.0.1:8444"
//! store = "gateway.db"                  # or "postgres://gateway@db.internal/renewals"
//!
//! [tls]
//! certificate = "gateway-chain.pem"     # the gateway's TLS server certificate and chain
//! key = "gateway.key"
//! client_cas = "users-ca.pem"           # the CA certificates that issue users' certificates
//! resumption = true                     # false: every connection signed by the card afresh
//!
//! [upstream]
//! url = "https://ca.internal:8443"
//! protocol = "fullcmc"                  # or "cmc" (RFC 5273), "ces" (MS-WSTEP), "cmp" (CMP only)
//! ca = "upstream-ca.pem"                # the upstream CA's certificates
//! timeout_secs = 30
//!
//! [ra]
//! certificate = "ra-chain.pem"          # the gateway's RA certificate (first) and chain
//! key = "ra.key"
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use renewal_codec::cmc::{Profile, Retained, SoftwareKey};
use serde::Deserialize;
use x509_cert::Certificate;

use super::upstream::CmcProtocol;
use crate::templates::TemplateConfig;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// HTTPS address for users.
    pub listen: SocketAddr,
    /// Admin address (plain HTTP: health, metrics; keep it internal).
    pub admin: Option<SocketAddr>,
    /// The state: a SQLite file, or a `postgres://` URL shared by several instances.
    pub store: String,
    /// TLS toward users.
    pub tls: TlsSection,
    /// The CA behind the gateway.
    pub upstream: UpstreamSection,
    /// The gateway's own identity toward the upstream.
    pub ra: RaSection,
    /// Input limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Renewal policy.
    #[serde(default)]
    pub policy: PolicySection,
}

/// `[tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Server certificate chain (PEM).
    pub certificate: PathBuf,
    /// Server key (PKCS#8 PEM or DER).
    pub key: PathBuf,
    /// The CA certificates that issue users' certificates (PEM bundle).
    pub client_cas: PathBuf,
    /// Whether TLS sessions may be resumed (default true; see
    /// [`crate::http::without_resumption`] for what turning it off buys and costs).
    #[serde(default = "yes")]
    pub resumption: bool,
}

fn yes() -> bool {
    true
}

/// `[upstream]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `https://host:port[/prefix]`.
    pub url: String,
    /// How full CMC requests are forwarded.
    #[serde(default = "fullcmc")]
    pub protocol: CmcProtocol,
    /// The upstream CA's certificates (PEM bundle): its TLS server chains to them, and so
    /// must every certificate and signed answer it returns.
    pub ca: PathBuf,
    /// Time for one exchange.
    #[serde(default = "thirty")]
    pub timeout_secs: u64,
}

/// `[ra]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaSection {
    /// RA certificate first, then its chain (PEM).
    pub certificate: PathBuf,
    /// RA key (PKCS#8 PEM or DER).
    pub key: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest request body.
    #[serde(default = "max_body")]
    pub max_body: usize,
    /// Time for the TLS handshake and the request headers.
    #[serde(default = "ten")]
    pub header_timeout_secs: u64,
    /// Time for the request body.
    #[serde(default = "thirty")]
    pub body_timeout_secs: u64,
    /// Time a write may wait for the client to read.
    #[serde(default = "thirty")]
    pub write_timeout_secs: u64,
    /// A connection's whole life; then the request in hand is answered and it is closed.
    #[serde(default = "five_minutes")]
    pub connection_lifetime_secs: u64,
    /// What a client is told to wait when the upstream cannot be asked.
    #[serde(default = "thirty")]
    pub retry_after_secs: u64,
    /// Connections served at once; more wait to be accepted.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// Connections one client address (IPv6: its /64) may hold at once; 0, no such cap.
    #[serde(default)]
    pub max_connections_per_address: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_body: max_body(),
            header_timeout_secs: ten(),
            body_timeout_secs: thirty(),
            write_timeout_secs: thirty(),
            connection_lifetime_secs: five_minutes(),
            retry_after_secs: thirty(),
            max_connections: max_connections(),
            max_connections_per_address: 0,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Days an expired certificate may still be renewed.
    #[serde(default)]
    pub grace_days: u32,
    /// `adcs` (default) or `strict`.
    #[serde(default = "adcs")]
    pub profile: Profile,
    /// Templates (the built-in ones when empty).
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
    /// Open pending requests one certificate may have.
    #[serde(default = "pending_cap")]
    pub max_pending_per_identity: u32,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            grace_days: 0,
            profile: adcs(),
            templates: Vec::new(),
            max_pending_per_identity: pending_cap(),
        }
    }
}

fn pending_cap() -> u32 {
    crate::ledger::DEFAULT_PENDING_CAP
}

fn fullcmc() -> CmcProtocol {
    CmcProtocol::Fullcmc
}
fn five_minutes() -> u64 {
    300
}
fn thirty() -> u64 {
    30
}
fn ten() -> u64 {
    10
}
fn max_connections() -> usize {
    crate::http::DEFAULT_MAX_CONNECTIONS
}
fn max_body() -> usize {
    64 * 1024
}
fn adcs() -> Profile {
    Profile::Adcs
}

impl GatewayConfig {
    /// Reads and checks the file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut config: Self =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            for p in [
                &mut config.tls.certificate,
                &mut config.tls.key,
                &mut config.tls.client_cas,
                &mut config.upstream.ca,
                &mut config.ra.certificate,
                &mut config.ra.key,
            ] {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            if !config.store.starts_with("postgres://")
                && !config.store.starts_with("postgresql://")
                && Path::new(&config.store).is_relative()
            {
                config.store = base.join(&config.store).display().to_string();
            }
            if config.limits.max_connections == 0 {
                return Err(format!(
                    "{}: [limits] max_connections = 0 would serve nobody",
                    path.display()
                ));
            }
            Ok(config)
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "gateway configuration",
            reason,
        })
    }

    /// Time for one upstream exchange.
    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream.timeout_secs.max(1))
    }
}

/// Every certificate in a PEM bundle (or one DER certificate), in order.
pub fn read_certificates(path: &Path) -> Result<Vec<Retained<Certificate>>, crate::Error> {
    let result = (|| -> Result<Vec<Retained<Certificate>>, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let bytes = std::fs::read(path).map_err(|e| at(&e))?;
        let certs = renewal_codec::x509::certificates_in(&bytes)
            .map_err(|e| at(&e))?
            .iter()
            .map(|d| Retained::from_der(d).map_err(|e| at(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", path.display()));
        }
        Ok(certs)
    })();
    result.map_err(|reason| crate::Error::Encoding {
        what: "certificates",
        reason,
    })
}

/// A private key file (PKCS#8, PEM or DER).
pub fn read_key(path: &Path) -> Result<SoftwareKey, crate::Error> {
    let result = (|| -> Result<SoftwareKey, String> {
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        SoftwareKey::from_pem_or_der(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    })();
    result.map_err(|reason| crate::Error::Encoding {
        what: "key",
        reason,
    })
}

/// A TLS identity from files: the certificate chain and its key, as rustls takes them.
pub fn read_identity(
    chain: &Path,
    key: &Path,
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    String,
> {
    let certs = read_certificates(chain)?;
    let key = read_key(key)?;
    let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let (_, pkcs8) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok((
        certs
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec()))
            .collect(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8)),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sim-ca-gwconfig-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const MINIMAL: &str = "listen = \"127.0.0.1:8443\"\nstore = \"gw.db\"\n\
        [tls]\ncertificate = \"tls.pem\"\nkey = \"/etc/gw/tls.key\"\nclient_cas = \"users.pem\"\n\
        [upstream]\nurl = \"https://ca.internal\"\nca = \"ca.pem\"\n\
        [ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n";

    #[test]
    fn relative_paths_are_the_files_and_defaults_are_the_documented_ones() {
        let path = write("minimal", MINIMAL);
        let dir = path.parent().unwrap();
        let c = GatewayConfig::load(&path).unwrap();
        assert_eq!(c.tls.certificate, dir.join("tls.pem"));
        assert_eq!(c.tls.key, PathBuf::from("/etc/gw/tls.key"));
        assert_eq!(c.store, dir.join("gw.db").display().to_string());
        assert_eq!(c.upstream.protocol, CmcProtocol::Fullcmc);
        let cmp = write(
            "cmp",
            &MINIMAL.replace("ca = \"ca.pem\"", "ca = \"ca.pem\"\nprotocol = \"cmp\""),
        );
        assert_eq!(
            GatewayConfig::load(&cmp).unwrap().upstream.protocol,
            CmcProtocol::Cmp
        );
        assert_eq!(c.upstream_timeout(), Duration::from_secs(30));
        assert_eq!((c.limits.max_body, c.limits.retry_after_secs), (65536, 30));
        assert_eq!(c.limits.max_connections, 512);
        // No cap per address unless asked: behind a load balancer every client has one.
        assert_eq!(c.limits.max_connections_per_address, 0);
        let capped = write(
            "per-address",
            &format!("{MINIMAL}[limits]\nmax_connections_per_address = 4\n"),
        );
        assert_eq!(
            GatewayConfig::load(&capped)
                .unwrap()
                .limits
                .max_connections_per_address,
            4
        );
        assert_eq!(c.limits.write_timeout_secs, 30);
        assert_eq!(c.limits.connection_lifetime_secs, 300);
        assert_eq!(c.policy.profile, Profile::Adcs);
        assert!(
            c.tls.resumption,
            "resumption is on unless the file says otherwise"
        );
        assert!(c.admin.is_none());
        // A PostgreSQL URL is not a path.
        let pg = write("pg", &MINIMAL.replace("gw.db", "postgres://gw@db/renewals"));
        assert_eq!(
            GatewayConfig::load(&pg).unwrap().store,
            "postgres://gw@db/renewals"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_file_named() {
        for (name, text, expected) in [
            (
                "typo",
                MINIMAL.replace("[ra]", "[ra]\ncertifcate = \"x\""),
                "certifcate",
            ),
            (
                "protocol",
                MINIMAL.replace("ca = \"ca.pem\"", "ca = \"ca.pem\"\nprotocol = \"scep\""),
                "scep",
            ),
            (
                "missing",
                MINIMAL.replace(
                    "[upstream]\nurl = \"https://ca.internal\"\n",
                    "[upstream]\n",
                ),
                "url",
            ),
            (
                "no-connections",
                format!("{MINIMAL}[limits]\nmax_connections = 0\n"),
                "max_connections = 0",
            ),
        ] {
            let path = write(name, &text);
            let e = GatewayConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(expected), "{name}: {e}");
        }
        let e = GatewayConfig::load(Path::new("/nonexistent/gateway.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/gateway.toml"), "{e}");
    }
}
