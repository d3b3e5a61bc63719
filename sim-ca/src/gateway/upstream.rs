//! The gateway's client to its upstream CA: HTTPS with the gateway's **own** RA certificate
//! (mutual TLS, no impersonation of the user), kept-alive connections in a small pool, every
//! exchange bounded in time and size. Called from blocking threads: it runs its own runtime.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64ct::{Base64, Encoding};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, StatusCode,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use renewal_codec::cmc::{Retained, SoftwareKey};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName},
};
use x509_cert::Certificate;

use super::ca_backend::{CaBackend, CmcAnswer, Failure};

/// Largest answer read from the upstream.
const MAX_ANSWER: usize = 256 * 1024;

/// Idle connections kept for reuse.
const POOL: usize = 16;

/// Which protocol carries full CMC requests to the upstream.
#[derive(Clone, Copy, Debug, Eq, PartialEq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmcProtocol {
    /// EST `/.well-known/est/fullcmc` (RFC 7030 §4.3), base64 bodies.
    Fullcmc,
    /// CMC over HTTP, `/cmc` (RFC 5273), DER bodies.
    Cmc,
    /// MS-WSTEP: ADCS's Certificate Enrollment Web Service with certificate authentication
    /// (the URL names the CES endpoint, or the server: then `/cardrenew_CES_Certificate/...`).
    /// Pending requests are collected with `QueryTokenStatus` and the upstream's RequestID.
    Ces,
    /// CMP (RFC 4210, the lightweight profile of RFC 9483) at `/.well-known/cmp` (RFC 9811):
    /// users' key updates go up nested under the RA's protection. Only CMP clients are served
    /// then — a full CMC or simplereenroll request cannot become a key update (its proof of
    /// possession is a PKCS#10's). CMP goes to `/.well-known/cmp` whatever this setting says.
    Cmp,
}

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Not reachable: connection refused or reset, TLS failure, dropped before answering.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// No answer within the configured time.
    #[error("upstream timed out")]
    Timeout,
}

/// An HTTP answer from the upstream.
pub struct Exchange {
    /// Its status.
    pub status: StatusCode,
    /// Its content type ("" when none).
    pub content_type: String,
    /// Retry-After, seconds.
    pub retry_after: Option<u64>,
    /// The body, as received.
    pub body: Bytes,
}

impl Exchange {
    /// The body with EST's base64 transfer encoding removed when the upstream used it.
    pub fn der_body(&self) -> Vec<u8> {
        let text: Vec<u8> = self
            .body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        match Base64::decode_vec(&String::from_utf8_lossy(&text)) {
            Ok(der) if self.body.first() != Some(&0x30) => der,
            _ => self.body.to_vec(),
        }
    }
}

/// The upstream CA.
pub struct Upstream {
    /// Always `Some` until dropped (taken out to shut down without blocking).
    runtime: Option<tokio::runtime::Runtime>,
    tls: Arc<ClientConfig>,
    host: String,
    port: u16,
    base_path: String,
    timeout: Duration,
    protocol: CmcProtocol,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Upstream {
    /// A client for `base_url` (`https://host:port[/prefix]`) that trusts `anchors` for the
    /// upstream's TLS server and authenticates as `ra_chain[0]` with `ra_key`.
    pub fn new(
        base_url: &str,
        protocol: CmcProtocol,
        anchors: &[Retained<Certificate>],
        ra_key: &SoftwareKey,
        ra_chain: &[Retained<Certificate>],
        timeout: Duration,
    ) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let rest = base_url
                .strip_prefix("https://")
                .ok_or_else(|| format!("upstream {base_url}: only https:// URLs"))?;
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse()
                        .map_err(|_| format!("upstream {base_url}: bad port"))?,
                ),
                None => (authority.to_string(), 443),
            };
            let mut roots = RootCertStore::empty();
            for anchor in anchors {
                roots
                    .add(CertificateDer::from(anchor.der().to_vec()))
                    .map_err(|e| format!("upstream trust anchor: {e}"))?;
            }
            let pem = ra_key.to_pkcs8_pem().map_err(|e| e.to_string())?;
            let (_, pkcs8) = der::pem::decode_vec(pem.as_bytes()).map_err(|e| e.to_string())?;
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let tls = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_client_auth_cert(
                    ra_chain
                        .iter()
                        .map(|c| CertificateDer::from(c.der().to_vec()))
                        .collect(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
                )
                .map_err(|e| format!("RA credential: {e}"))?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("upstream")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Self {
                runtime: Some(runtime),
                tls: Arc::new(tls),
                host,
                port,
                base_path: format!("/{}", path.trim_end_matches('/'))
                    .trim_end_matches('/')
                    .to_string(),
                timeout,
                protocol,
                idle: Mutex::new(Vec::new()),
            })
        })();
        result.map_err(|reason| crate::Error::Setting {
            setting: "upstream",
            reason,
        })
    }

    /// The protocol full CMC requests are forwarded with.
    pub fn protocol(&self) -> CmcProtocol {
        self.protocol
    }

    /// Forwards a full CMC request (the RA's wrapper, DER) — or, over MS-WSTEP, collects the
    /// request pending upstream under `pending` with `QueryTokenStatus`.
    pub fn cmc(&self, der: &[u8], pending: Option<u64>) -> Result<CmcAnswer, Failure> {
        let exchange = match self.protocol {
            CmcProtocol::Fullcmc => self.post(
                "/.well-known/est/fullcmc",
                "application/pkcs7-mime; smime-type=CMC-request",
                Bytes::from(Base64::encode_string(der)),
            ),
            CmcProtocol::Cmc => self.post(
                "/cmc",
                "application/pkcs7-mime; smime-type=CMC-request",
                Bytes::copy_from_slice(der),
            ),
            CmcProtocol::Ces => return self.ces(der, pending),
            CmcProtocol::Cmp => {
                return Err(Failure::BadAnswer(
                    "the upstream speaks CMP only (protocol = \"cmp\"): a CMC or \
                     simplereenroll request cannot be forwarded to it; renew with CMP"
                        .into(),
                ));
            }
        }
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
        match exchange.status.as_u16() {
            200 | 202 if exchange.content_type.starts_with("application/pkcs7-mime") => {
                Ok(CmcAnswer::Response {
                    der: exchange.der_body(),
                    upstream_id: None,
                })
            }
            200 | 202 => Err(Failure::BadAnswer(format!(
                "upstream answered content type {:?}",
                exchange.content_type
            ))),
            s @ 500..=599 => Err(Failure::Unavailable(format!("upstream answered HTTP {s}"))),
            s => Err(Failure::BadAnswer(format!("upstream answered HTTP {s}"))),
        }
    }

    /// One CMP exchange (RFC 6712): the RA's nested message POSTed as `application/pkixcmp` to
    /// the upstream's `/.well-known/cmp` (or to the URL itself when it names a CMP path); the
    /// answer's PKIMessage, unread, when it came as one.
    pub fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, Failure> {
        let path = if self.base_path.contains("/.well-known/cmp") {
            ""
        } else {
            "/.well-known/cmp"
        };
        let exchange = self
            .post(path, "application/pkixcmp", Bytes::copy_from_slice(message))
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        match exchange.status.as_u16() {
            200 if exchange.content_type.starts_with("application/pkixcmp") => {
                Ok(exchange.body.to_vec())
            }
            200 => Err(Failure::BadAnswer(format!(
                "upstream answered content type {:?}",
                exchange.content_type
            ))),
            s @ 500..=599 => Err(Failure::Unavailable(format!("upstream answered HTTP {s}"))),
            s => Err(Failure::BadAnswer(format!("upstream answered HTTP {s}"))),
        }
    }

    /// One MS-WSTEP exchange: `RequestSecurityToken` with the request, or `QueryTokenStatus`.
    /// A SOAP fault is a refusal (HTTP 500 is how SOAP 1.2 sends it); anything that is not SOAP
    /// is judged by its HTTP status.
    fn ces(&self, der: &[u8], pending: Option<u64>) -> Result<CmcAnswer, Failure> {
        use renewal_codec::wstep::{
            Answer, RequestKind, XmlLimits, build_request, parse_answer, random_message_id,
        };
        let kind = match pending {
            Some(id) => RequestKind::QueryTokenStatus(id),
            None => RequestKind::Issue(der.to_vec()),
        };
        let message_id =
            random_message_id().ok_or_else(|| Failure::Unavailable("no randomness".into()))?;
        let path = if self.base_path.contains("/service.svc") {
            String::new()
        } else {
            renewal_codec::wstep::ces_path(renewal_codec::wstep::DEFAULT_CA_NAME)
        };
        let exchange = self
            .post(
                &path,
                "application/soap+xml; charset=utf-8",
                Bytes::from(build_request(&message_id, &kind)),
            )
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        if !exchange.content_type.starts_with("application/soap+xml") {
            return Err(match exchange.status.as_u16() {
                s @ 500..=599 => Failure::Unavailable(format!("upstream answered HTTP {s}")),
                s => Failure::BadAnswer(format!(
                    "upstream answered HTTP {s}, content type {:?}",
                    exchange.content_type
                )),
            });
        }
        let limits = XmlLimits {
            max_bytes: MAX_ANSWER,
            ..XmlLimits::default()
        };
        match parse_answer(&exchange.body, &limits)
            .map_err(|e| Failure::BadAnswer(format!("upstream envelope: {e}")))?
        {
            Answer::Token {
                pkcs7: Some(der),
                request_id,
                ..
            } => Ok(CmcAnswer::Response {
                der,
                upstream_id: request_id,
            }),
            Answer::Token { disposition, .. } => Err(Failure::BadAnswer(format!(
                "upstream token ({disposition:?}) without a CMC response"
            ))),
            fault @ Answer::Fault { .. } => {
                let Answer::Fault { code, reason, .. } = &fault else {
                    unreachable!("matched a fault above")
                };
                Ok(CmcAnswer::Refused {
                    text: match fault.hresult() {
                        Some(hr) if reason.is_empty() => format!("0x{hr:08X}"),
                        Some(hr) => format!("0x{hr:08X}: {reason}"),
                        None => format!("SOAP fault {code}: {reason}"),
                    },
                })
            }
        }
    }

    async fn connect(
        tls: Arc<ClientConfig>,
        host: String,
        port: u16,
    ) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        let unreachable = |e: &dyn std::fmt::Display| UpstreamError::Unreachable(e.to_string());
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host).map_err(|e| unreachable(&e))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// One POST. A request hyper reports as canceled was never written, nor was one whose
    /// pooled connection turned out closed before it was sent, so it goes again on a fresh
    /// connection; once written, a POST
    /// is never re-sent here — the gateway's caller decides (the upstream dedupes anyway).
    fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Exchange, UpstreamError> {
        let uri = format!(
            "https://{}:{}{}{path}",
            self.host, self.port, self.base_path
        );
        let host_header = format!("{}:{}", self.host, self.port);
        for attempt in 0..2 {
            let pooled = self
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .filter(|s| !s.is_closed());
            let request = Request::post(uri.as_str())
                .header(header::HOST, host_header.as_str())
                .header(header::CONTENT_TYPE, content_type)
                .body(Full::new(body.clone()))
                .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let (tls, host, port) = (Arc::clone(&self.tls), self.host.clone(), self.port);
            let Some(runtime) = &self.runtime else {
                return Err(UpstreamError::Unreachable("shut down".into()));
            };
            let from_pool = pooled.is_some();
            let result = runtime.block_on(async {
                let work = async {
                    let mut sender = match pooled {
                        Some(s) => s,
                        None => Self::connect(tls, host, port).await.map_err(Some)?,
                    };
                    // A pooled connection found closed here (after `is_closed` said open) has
                    // written nothing: a fresh one is tried, as for a canceled request.
                    sender.ready().await.map_err(|e| {
                        (!from_pool).then(|| UpstreamError::Unreachable(e.to_string()))
                    })?;
                    let response = match sender.send_request(request).await {
                        Ok(r) => r,
                        Err(e) if e.is_canceled() => return Err(None),
                        Err(e) => return Err(Some(UpstreamError::Unreachable(e.to_string()))),
                    };
                    let (parts, body) = response.into_parts();
                    let body = Limited::new(body, MAX_ANSWER)
                        .collect()
                        .await
                        .map_err(|e| {
                            Some(UpstreamError::Unreachable(format!(
                                "reading the answer: {e}"
                            )))
                        })?
                        .to_bytes();
                    Ok((sender, parts, body))
                };
                tokio::time::timeout(self.timeout, work)
                    .await
                    .map_err(|_| Some(UpstreamError::Timeout))?
            });
            match result {
                Ok((sender, parts, body)) => {
                    let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.len() < POOL {
                        idle.push(sender);
                    }
                    let header_text = |name| {
                        parts
                            .headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    return Ok(Exchange {
                        status: parts.status,
                        content_type: header_text(header::CONTENT_TYPE).unwrap_or_default(),
                        retry_after: header_text(header::RETRY_AFTER)
                            .and_then(|v| v.trim().parse().ok()),
                        body,
                    });
                }
                Err(None) if attempt == 0 => continue,
                Err(e) => {
                    return Err(e.unwrap_or(UpstreamError::Unreachable("connection closed".into())));
                }
            }
        }
        Err(UpstreamError::Unreachable("connection closed".into()))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // The gateway may be dropped from inside the server's runtime: a blocking shutdown
        // there would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl CaBackend for Upstream {
    fn cmc(&self, wrapped: &[u8], pending: Option<u64>) -> Result<CmcAnswer, Failure> {
        Upstream::cmc(self, wrapped, pending)
    }

    fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, Failure> {
        Upstream::cmp_message(self, message)
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}
