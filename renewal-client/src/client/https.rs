//! The transports: EST `/fullcmc`, RFC 5273 CMC, EST `/simplereenroll`, over one kept-alive
//! mutual-TLS connection (tokio + hyper + rustls). The TLS client key lives on the token: a
//! rustls `SigningKey` whose signer calls `Token::sign`, so TLS and card work share one
//! login — one PIN prompt.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64ct::{Base64, Encoding};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, RootCertStore, SignatureScheme,
    client::ResolvesClientCert,
    pki_types::{CertificateDer, ServerName},
    sign::{CertifiedKey, Signer as TlsSigner, SigningKey},
};
use x509_cert::Certificate;

use super::{Mode, RenewalService, ServiceAnswer, ServiceError};
use crate::{
    cmc::{Limits, Retained, parse_response},
    token::{CardRefusal, ContainerId, KeyAlgorithm, Token},
};

/// A token shared by the renewal driver and the TLS stack.
pub type SharedToken = Arc<Mutex<Box<dyn Token + Send>>>;

/// The client key of the TLS connection: on the token.
#[derive(Debug)]
struct TokenKey {
    token: TokenHandle,
    container: ContainerId,
    algorithm: KeyAlgorithm,
    refusal: RefusalSlot,
    /// The token signs raw RSA blocks (a PIV card): RSA-PSS, so TLS 1.3, is possible.
    raw_rsa: bool,
}

/// Where the TLS signer leaves a PIN refusal: rustls reports a failed client signature as
/// text only, and the user must read "wrong PIN, 2 tries left", not a TLS error.
type RefusalSlot = Arc<Mutex<Option<CardRefusal>>>;

#[derive(Clone)]
struct TokenHandle(SharedToken);

impl std::fmt::Debug for TokenHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHandle")
    }
}

impl TokenKey {
    /// The scheme to sign with among those the server offers: ECDSA with the curve's hash;
    /// for RSA, PSS (the only RSA scheme TLS 1.3 allows) when the token signs raw blocks, else
    /// PKCS#1 v1.5 (TLS 1.2).
    fn scheme(&self, offered: &[SignatureScheme]) -> Option<SignatureScheme> {
        let candidates: &[SignatureScheme] = match self.algorithm {
            KeyAlgorithm::EcP256 => &[SignatureScheme::ECDSA_NISTP256_SHA256],
            KeyAlgorithm::EcP384 => &[SignatureScheme::ECDSA_NISTP384_SHA384],
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
                if self.raw_rsa =>
            {
                &[
                    SignatureScheme::RSA_PSS_SHA256,
                    SignatureScheme::RSA_PKCS1_SHA256,
                ]
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &[SignatureScheme::RSA_PKCS1_SHA256]
            }
        };
        candidates.iter().copied().find(|s| offered.contains(s))
    }
}

impl SigningKey for TokenKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn TlsSigner>> {
        self.scheme(offered).map(|scheme| {
            Box::new(TokenSigner {
                token: self.token.clone(),
                container: self.container.clone(),
                algorithm: self.algorithm,
                scheme,
                refusal: Arc::clone(&self.refusal),
            }) as Box<dyn TlsSigner>
        })
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => rustls::SignatureAlgorithm::ECDSA,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                rustls::SignatureAlgorithm::RSA
            }
        }
    }
}

#[derive(Debug)]
struct TokenSigner {
    token: TokenHandle,
    container: ContainerId,
    algorithm: KeyAlgorithm,
    scheme: SignatureScheme,
    refusal: RefusalSlot,
}

impl TlsSigner for TokenSigner {
    /// rustls hands us the unhashed message; the token hashes and signs (ECDSA comes back
    /// DER-encoded, as TLS wants it).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let sign = || {
            let mut token = self
                .token
                .0
                .lock()
                .map_err(|_| rustls::Error::General("token lock poisoned".into()))?;
            let signed = if self.scheme == SignatureScheme::RSA_PSS_SHA256 {
                // PSS is padded here and the card does the raw operation on the block.
                use aws_lc_rs::rand::SecureRandom;
                let mut salt = [0u8; 32];
                aws_lc_rs::rand::SystemRandom::new()
                    .fill(&mut salt)
                    .map_err(|_| rustls::Error::General("system RNG failed".into()))?;
                let bits = self.algorithm.rsa_bits().ok_or_else(|| {
                    rustls::Error::General("PSS with a key that is not RSA".into())
                })?;
                let block = crate::cmc::crypto::emsa_pss_sha256(message, bits as usize, &salt)
                    .ok_or_else(|| rustls::Error::General("RSA key too small for PSS".into()))?;
                token.sign_raw_rsa(&self.container, &block)
            } else {
                token.sign(
                    &self.container,
                    self.algorithm.signature_algorithm(),
                    message,
                )
            };
            signed.map_err(|e| {
                if let (Some(refusal), Ok(mut slot)) = (e.card_refusal(), self.refusal.lock()) {
                    *slot = Some(refusal);
                }
                rustls::Error::General(format!("card signature for TLS failed: {e}"))
            })
        };
        // A card operation blocks for a while: keep it off the async workers.
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(sign),
            Err(_) => sign(),
        }
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// How to reach the CA.
#[derive(Clone, Debug)]
pub struct HttpsConfig {
    /// Base URL, e.g. `https://ca.example:8443`.
    pub base_url: String,
    /// Trust anchors for the server (PEM bundle, DER certificates).
    pub trust_anchors: Vec<Vec<u8>>,
    /// Which protocol.
    pub mode: Mode,
    /// Timeout for connecting and for each exchange.
    pub timeout: Duration,
}

/// A mutual-TLS connection to the CA with the client key on the token.
pub struct HttpsService {
    runtime: tokio::runtime::Runtime,
    sender: Option<SendRequest<Full<Bytes>>>,
    config: HttpsConfig,
    host: String,
    port: u16,
    tls: Arc<ClientConfig>,
    /// MS-WSTEP: the request pending at the CA and its RequestID (polls use
    /// `QueryTokenStatus`).
    pending_wstep: Option<(Vec<u8>, u64)>,
    /// A PIN refusal of the TLS signer during the last handshake.
    refusal: RefusalSlot,
    /// Plain HTTP (CMP only: see [`parse_url`]).
    plain: bool,
}

/// Host, port and whether the URL is plain `http://`: allowed for CMP only, whose every message
/// is protected by signature and whose every answer is verified before it counts (RFC 6712 §3.2
/// lets CMP run over plain HTTP; OpenSSL's own CMP server speaks nothing else).
fn parse_url(url: &str, mode: Mode) -> Result<(String, u16, bool), ServiceError> {
    let (rest, plain) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (rest, false),
        (None, Some(rest)) if mode == Mode::Cmp => (rest, true),
        _ => {
            return Err(ServiceError::Config(format!(
                "{url}: only https:// URLs (http:// only with --mode cmp, whose messages are \
                 signed)"
            )));
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let default_port = if plain { 80 } else { 443 };
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse()
                .map_err(|_| ServiceError::Config(format!("{url}: bad port")))?,
            plain,
        )),
        None => Ok((authority.to_string(), default_port, plain)),
    }
}

impl HttpsService {
    /// Prepares the connection (nothing is sent yet). `client_cert` is the certificate in
    /// `container` on `token`.
    pub fn new(
        config: HttpsConfig,
        token: SharedToken,
        container: ContainerId,
        algorithm: KeyAlgorithm,
        client_cert: &Retained<Certificate>,
    ) -> Result<Self, ServiceError> {
        let (host, port, plain) = parse_url(&config.base_url, config.mode)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for der in &config.trust_anchors {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| ServiceError::Config(format!("trust anchor: {e}")))?;
        }
        // TLS 1.3 allows only RSA-PSS for RSA keys: a token that signs raw RSA blocks (a PIV
        // card) does it with PSS padded here; one that signs PKCS#1 v1.5 only (PKCS#11 with
        // CKM_RSA_PKCS) stays on TLS 1.2.
        let raw_rsa = token.lock().map(|t| t.can_sign_raw_rsa()).unwrap_or(false);
        let versions: &[&rustls::SupportedProtocolVersion] = match algorithm {
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 if raw_rsa => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &[&rustls::version::TLS12]
            }
        };
        let refusal = RefusalSlot::default();
        let key = TokenKey {
            token: TokenHandle(token),
            container,
            algorithm,
            refusal: Arc::clone(&refusal),
            raw_rsa,
        };
        let certified = CertifiedKey::new(
            vec![CertificateDer::from(client_cert.der().to_vec())],
            Arc::new(key),
        );
        let tls = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| ServiceError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(ClientCert(Arc::new(certified))));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ServiceError::Config(e.to_string()))?;
        Ok(Self {
            runtime,
            sender: None,
            config,
            host,
            port,
            tls: Arc::new(tls),
            plain,
            pending_wstep: None,
            refusal,
        })
    }

    fn connect(&mut self) -> Result<(), ServiceError> {
        if self.sender.as_ref().is_some_and(|s| !s.is_closed()) {
            return Ok(());
        }
        self.sender = None;
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = None;
        }
        let (host, port, tls, timeout, plain) = (
            self.host.clone(),
            self.port,
            Arc::clone(&self.tls),
            self.config.timeout,
            self.plain,
        );
        let sender = self.runtime.block_on(async move {
            let connect = async {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                if plain {
                    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
                        .await
                        .map_err(std::io::Error::other)?;
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return Ok::<_, std::io::Error>(sender);
                }
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, tcp)
                    .await?;
                let (sender, connection) = http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok::<_, std::io::Error>(sender)
            };
            tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| ServiceError::Timeout)?
                .map_err(|e| ServiceError::Connection(e.to_string()))
        });
        let sender = match sender {
            Ok(sender) => sender,
            // The handshake failed because the card refused the PIN: say that.
            Err(e) => {
                let refusal = self.refusal.lock().ok().and_then(|mut s| s.take());
                return Err(refusal.map_or(e, ServiceError::Card));
            }
        };
        self.sender = Some(sender);
        Ok(())
    }

    /// One HTTP exchange on the kept-alive connection, once hyper can take it. A connection
    /// that closed while idle, or a request that hyper reports as canceled, means nothing was
    /// written, so it is sent again on a fresh connection: the only retry a POST gets.
    fn exchange(
        &mut self,
        build: impl Fn() -> Result<Request<Full<Bytes>>, ServiceError>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), ServiceError> {
        for attempt in 0..2 {
            self.connect()?;
            let timeout = self.config.timeout;
            let mut request = build()?;
            // On a direct connection the request target is the path (origin-form, RFC 9112
            // §3.2.1): servers such as OpenSSL's refuse the absolute form a proxy would get.
            if let Some(target) = request.uri().path_and_query().cloned() {
                *request.uri_mut() = hyper::Uri::from(target);
            }
            let sender = self
                .sender
                .as_mut()
                .ok_or(ServiceError::Connection("not connected".into()))?;
            let result = self.runtime.block_on(async {
                let work = async {
                    // hyper takes the next request only once the connection's task has
                    // finished the previous answer, which may still be under way on the
                    // runtime's worker when the caller already has the body: wait for it. Sent
                    // early, the request is refused as "not ready", and taking that for a closed
                    // connection opened a second one — another handshake, another card
                    // signature, and a CMP transaction lost at a server that binds it to its
                    // connection (OpenSSL's). An error here is a connection closed while idle.
                    if sender.ready().await.is_err() {
                        return Err(None);
                    }
                    let response = match sender.send_request(request).await {
                        Ok(r) => r,
                        Err(e) if e.is_canceled() => return Err(None),
                        Err(e) => return Err(Some(ServiceError::Connection(e.to_string()))),
                    };
                    let (parts, body) = response.into_parts();
                    let limited =
                        http_body_util::Limited::new(body, Limits::default().max_bytes * 2);
                    let bytes = limited
                        .collect()
                        .await
                        .map_err(|e| {
                            Some(ServiceError::Connection(format!("reading the answer: {e}")))
                        })?
                        .to_bytes();
                    Ok((parts.status, parts.headers, bytes))
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| Some(ServiceError::Timeout))?
            });
            match result {
                Ok(answer) => return Ok(answer),
                Err(None) if attempt == 0 => self.sender = None,
                Err(e) => {
                    self.sender = None;
                    return Err(e.unwrap_or(ServiceError::Connection("connection closed".into())));
                }
            }
        }
        Err(ServiceError::Connection("connection closed".into()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url.trim_end_matches('/'), path)
    }
}

/// An HTTP error answer: its status and the start of its body (never the whole of a hostile
/// server's output).
fn http_error(status: StatusCode, headers: &hyper::HeaderMap, body: &[u8]) -> ServiceError {
    ServiceError::Http {
        status: status.as_u16(),
        text: String::from_utf8_lossy(body).chars().take(200).collect(),
        retry_after: retry_after(headers),
    }
}

fn retry_after(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl HttpsService {
    /// The Host header: the host, and the port when it is not 443 (RFC 9110 §7.2), so that a
    /// server can name its own URLs (CEP names the CES URI).
    fn host_header(&self) -> String {
        if self.port == 443 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the base URL names a path beyond `/`.
    fn has_path(&self) -> bool {
        let rest = self
            .config
            .base_url
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        rest.split_once('/')
            .is_some_and(|(_, path)| !path.is_empty())
    }

    /// Where CES is: the base URL itself when it names a CES service (`.../service.svc/CES`,
    /// as ADCS publishes it), else sim-ca's default path under it.
    fn ces_url(&self) -> String {
        if self.config.base_url.contains("/service.svc") {
            self.config.base_url.clone()
        } else {
            self.url(&crate::wstep::ces_path(crate::wstep::DEFAULT_CA_NAME))
        }
    }

    /// POSTs a SOAP 1.2 envelope to `url` (CES, CEP).
    fn post_soap(
        &mut self,
        url: &str,
        payload: Bytes,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), ServiceError> {
        let host = self.host_header();
        let build = || {
            Request::post(url)
                .header(header::HOST, host.as_str())
                .header(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")
                .body(Full::new(payload.clone()))
                .map_err(|e| ServiceError::Config(e.to_string()))
        };
        self.exchange(build)
    }

    /// CES serves no EST `cacerts`: the warm-up is a GET of the service URL, and any HTTP
    /// answer means the TLS session (the card's one login) exists.
    fn warm_up_wstep(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError> {
        let url = self.ces_url();
        let host = self.host_header();
        let build = || {
            Request::get(url.as_str())
                .header(header::HOST, host.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| ServiceError::Config(e.to_string()))
        };
        self.exchange(build)?;
        Ok(Vec::new())
    }

    /// One MS-WSTEP exchange: `Issue` with the request, or `QueryTokenStatus` when the same
    /// request is pending under a RequestID this session learnt.
    fn submit_wstep(&mut self, body: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        use crate::wstep::{Answer, RequestKind, XmlLimits, build_request, parse_answer};
        let kind = match &self.pending_wstep {
            Some((pending, id)) if pending.as_slice() == body => RequestKind::QueryTokenStatus(*id),
            _ => RequestKind::Issue(body.to_vec()),
        };
        let message_id = message_id()?;
        let payload = Bytes::from(build_request(&message_id, &kind));
        let url = self.ces_url();
        let (status, headers, answer) = self.post_soap(&url, payload)?;
        let soap = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/soap+xml"));
        // SOAP faults come with HTTP 500; anything else that is not SOAP is an HTTP error —
        // or, with a success status, an answer that cannot be read.
        if !soap {
            if status.is_success() {
                return Err(ServiceError::BadAnswer(format!(
                    "HTTP {status} without a SOAP envelope"
                )));
            }
            return Err(http_error(status, &headers, &answer));
        }
        let parsed = parse_answer(&answer, &XmlLimits::default())
            .map_err(|e| ServiceError::BadAnswer(e.to_string()))?;
        match parsed {
            Answer::Token {
                pkcs7: Some(pkcs7),
                request_id,
                ..
            } => {
                let response = parse_response(&pkcs7, &Limits::default())
                    .map_err(|e| ServiceError::BadAnswer(e.to_string()))?;
                self.pending_wstep = match (&response.outcome, request_id) {
                    (crate::cmc::Outcome::Pending { .. }, Some(id)) => Some((body.to_vec(), id)),
                    _ => None,
                };
                Ok(ServiceAnswer::Response {
                    response: Box::new(response),
                    retry_after: retry_after(&headers),
                })
            }
            Answer::Token { disposition, .. } => Err(ServiceError::BadAnswer(format!(
                "a RequestSecurityTokenResponse ({disposition:?}) without the CMC response"
            ))),
            fault @ Answer::Fault { .. } => {
                self.pending_wstep = None;
                let Answer::Fault { code, reason, .. } = &fault else {
                    unreachable!("matched a fault above")
                };
                let text = match fault.hresult() {
                    Some(hr) if reason.is_empty() => format!("0x{hr:08X}"),
                    Some(hr) => format!("0x{hr:08X}: {reason}"),
                    None => format!("SOAP fault {code}: {reason}"),
                };
                Ok(ServiceAnswer::Refused { text })
            }
        }
    }
}

impl HttpsService {
    /// MS-XCEP `GetPolicies` at the configured URL (the CEP endpoint itself).
    pub fn get_policies(&mut self) -> Result<crate::xcep::Policies, ServiceError> {
        let url = self.config.base_url.clone();
        let payload = Bytes::from(crate::xcep::build_request(&message_id()?, &url));
        let (status, headers, body) = self.post_soap(&url, payload)?;
        if status != StatusCode::OK {
            return Err(http_error(status, &headers, &body));
        }
        crate::xcep::parse_response(&body, &crate::wstep::XmlLimits::default())
            .map_err(|e| ServiceError::BadAnswer(e.to_string()))
    }
}

/// A WS-Addressing MessageID: `urn:uuid:` and a random (version 4) UUID.
/// Where CMP messages go (RFC 9811 §3: the well-known path, no profile label).
const CMP_PATH: &str = "/.well-known/cmp";
/// RFC 6712 §3.4.
const PKIXCMP: &str = "application/pkixcmp";

fn message_id() -> Result<String, ServiceError> {
    crate::wstep::random_message_id()
        .ok_or_else(|| ServiceError::Config("no randomness for a MessageID".into()))
}

impl RenewalService for HttpsService {
    fn pending_id(&self) -> Option<u64> {
        self.pending_wstep.as_ref().map(|(_, id)| *id)
    }

    fn resume_pending(&mut self, request: &[u8], id: u64) {
        if self.config.mode == Mode::Wstep {
            self.pending_wstep = Some((request.to_vec(), id));
        }
    }

    fn warm_up(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError> {
        // No retry here: a failed handshake may be the card refusing the PIN, and every
        // attempt would cost a prompt and a PIN try. (A request that was never written is
        // resent by `exchange`.)
        if self.config.mode == Mode::Wstep {
            return self.warm_up_wstep();
        }
        if self.config.mode == Mode::Cmp {
            // A CMP server need not serve EST: the handshake alone opens the session (the
            // CA certificates come with its answers).
            self.connect()?;
            return Ok(Vec::new());
        }
        let url = self.url("/.well-known/est/cacerts");
        let host = self.host_header();
        let build = || {
            Request::get(url.as_str())
                .header(header::HOST, host.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| ServiceError::Config(e.to_string()))
        };
        match self.exchange(build)? {
            (StatusCode::OK, _, body) => {
                let parsed = parse_response(&body, &Limits::default())
                    .map_err(|e| ServiceError::BadAnswer(e.to_string()))?;
                Ok(parsed.certificates)
            }
            (status, headers, body) => Err(http_error(status, &headers, &body)),
        }
    }

    fn submit(&mut self, body: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        let (path, content_type, payload) = match self.config.mode {
            Mode::Wstep => return self.submit_wstep(body),
            Mode::FullCmc => (
                "/.well-known/est/fullcmc",
                "application/pkcs7-mime; smime-type=CMC-request",
                Bytes::from(Base64::encode_string(body)),
            ),
            Mode::Cmc => (
                "/cmc",
                "application/pkcs7-mime; smime-type=CMC-request",
                Bytes::copy_from_slice(body),
            ),
            Mode::SimpleReenroll => (
                "/.well-known/est/simplereenroll",
                "application/pkcs10",
                Bytes::from(Base64::encode_string(body)),
            ),
            Mode::Cmp => (CMP_PATH, PKIXCMP, Bytes::copy_from_slice(body)),
        };
        let url = match self.config.mode {
            // A CMP URL with a path of its own is the endpoint (`/pkix/`, a profile label);
            // a bare host gets the well-known path.
            Mode::Cmp if self.has_path() => self.config.base_url.clone(),
            _ => self.url(path),
        };
        let host = self.host_header();
        let build = || {
            Request::post(url.as_str())
                .header(header::HOST, host.as_str())
                .header(header::CONTENT_TYPE, content_type)
                .body(Full::new(payload.clone()))
                .map_err(|e| ServiceError::Config(e.to_string()))
        };
        // Not retried once sent: a POST may have been acted on (the CA dedupes re-sends of a
        // pending transaction, and refuses replays of others).
        let (status, headers, body) = self.exchange(build)?;
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match status {
            StatusCode::OK
                if self.config.mode == Mode::Cmp && content_type.starts_with(PKIXCMP) =>
            {
                // A message that does not even parse was damaged on the way (a lost answer,
                // re-sent); one that parses is judged by the renewal.
                crate::cmp::PkiMessage::parse(&body, &Limits::default())
                    .map_err(|e| ServiceError::BadAnswer(format!("CMP answer: {e}")))?;
                Ok(ServiceAnswer::Cmp {
                    message: body.to_vec(),
                })
            }
            StatusCode::OK | StatusCode::ACCEPTED
                if content_type.starts_with("application/pkcs7-mime") =>
            {
                let response = parse_response(&body, &Limits::default())
                    .map_err(|e| ServiceError::BadAnswer(e.to_string()))?;
                Ok(ServiceAnswer::Response {
                    response: Box::new(response),
                    retry_after: retry_after(&headers),
                })
            }
            StatusCode::ACCEPTED => Ok(ServiceAnswer::Pending {
                retry_after: retry_after(&headers).unwrap_or(5),
            }),
            StatusCode::OK => Err(ServiceError::BadAnswer(format!(
                "unexpected content type {content_type:?}"
            ))),
            status if self.config.mode == Mode::SimpleReenroll && est_refusal(status) => {
                Ok(ServiceAnswer::Refused {
                    text: format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                            .trim()
                    ),
                })
            }
            status => Err(http_error(status, &headers, &body)),
        }
    }
}

/// Whether an EST re-enrollment's HTTP status is the CA's refusal: a server that rejects the
/// request answers 4xx (RFC 7030 §4.2.3), which is its decision — the agent waits long, as
/// after a CMC refusal — unless the status asks to come back (408, 425, 429) or says the
/// request did not reach a service that could decide (401 and 407: no credentials; 404: not
/// this URL).
fn est_refusal(status: StatusCode) -> bool {
    status.is_client_error() && ![401, 404, 407, 408, 425, 429].contains(&status.as_u16())
}

/// Reads a trust-anchor file (`--ca-cert`: a PEM bundle or one DER certificate) into parsed
/// certificates; errors name the file.
pub fn read_trust_anchors(
    path: &std::path::Path,
) -> Result<Vec<crate::cmc::Retained<x509_cert::Certificate>>, ServiceError> {
    let bytes = std::fs::read(path).map_err(|source| ServiceError::TrustFile {
        path: path.to_path_buf(),
        source,
    })?;
    let anchors = |source| ServiceError::TrustAnchors {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    crate::x509::certificates_in(&bytes)
        .map_err(anchors)?
        .iter()
        .map(|d| {
            crate::cmc::Retained::from_der(d).map_err(|e| {
                anchors(crate::cmc::CmcError::Malformed {
                    what: "trust anchor certificate",
                    source: e,
                })
            })
        })
        .collect()
}

/// Parses a PEM bundle (or one DER certificate) into DER certificates.
pub fn load_trust_anchors(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ServiceError> {
    crate::x509::certificates_in(bytes).map_err(|e| ServiceError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A re-enrollment the CA refused (revoked, malformed, replayed, too large) ends as a
    /// refusal; a status that asks to come back, or that never reached a deciding service,
    /// does not; nor does a server error (a lost answer, re-sent).
    #[test]
    fn an_est_refusal_is_a_4xx_that_is_a_decision() {
        let refusal = |code: u16| est_refusal(StatusCode::from_u16(code).expect("a status"));
        for decided in [400, 403, 409, 413] {
            assert!(refusal(decided), "{decided}");
        }
        for not in [200, 202, 401, 404, 407, 408, 425, 429, 500, 502, 503] {
            assert!(!refusal(not), "{not}");
        }
    }
}
