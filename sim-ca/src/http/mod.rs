//! The HTTPS shell around a [`Backend`]: EST (RFC 7030), CMC over HTTP (RFC 5273) and MS-WSTEP
//! with rustls, client certificates requested and verified against the CA (`http/tls.rs`); a
//! plain-HTTP admin listener for tests on loopback. Inputs are bounded: body size and read time
//! here, connections and their lives in `http/connections.rs`.

use crate::store::Endpoint;
use std::{convert::Infallible, sync::Arc, time::Duration};

use base64ct::{Base64, Encoding};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use renewal_codec::cmc::{Outcome, Signer, SoftwareKey};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;

mod admin;
mod connections;
mod stall;
mod tls;

pub use admin::serve_admin;
pub(crate) use connections::accept;
pub use connections::{DEFAULT_MAX_CONNECTIONS, HttpLimits, run, serve_https};
use stall::WriteDeadline;
pub use tls::{server_identity, tls_config, tls_config_for, without_resumption};

use crate::{
    Ca,
    backend::Backend,
    policy::Rejection,
    scenario::TransportFault,
    service::{CmcReply, SimpleReply},
};

type Body = Full<Bytes>;

fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", message.into())
}

/// Closing the connection without an answer: hyper drops it when the service fails.
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Hangup {}

async fn read_body(req: Request<Incoming>, limits: HttpLimits) -> Result<Bytes, Response<Body>> {
    let limited = Limited::new(req.into_body(), limits.max_body);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} bytes", limits.max_body),
        )),
        Err(_) => Err(text(StatusCode::REQUEST_TIMEOUT, "request body too slow")),
    }
}

const CMC_RESPONSE: &str = "application/pkcs7-mime; smime-type=CMC-response";
const CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
const PKIXCMP: &str = "application/pkixcmp";

/// `/.well-known/cmp`, and below it the profile labels of RFC 9811 (`/.well-known/cmp/p/NAME`);
/// this CA has one profile, renewal, whatever the label says.
fn is_cmp_path(path: &str) -> bool {
    path == "/.well-known/cmp" || path.starts_with("/.well-known/cmp/")
}

/// The scenario's fault before the request is read, for the client with `client` (DER). The
/// look-up reads the store, so it runs on the blocking pool — but only when the scenario has
/// such a fault at all: otherwise the hand-off to another thread and back would cost every
/// request a wake-up for nothing.
async fn early_fault(ca: &Arc<dyn Backend>, client: &[u8]) -> Option<TransportFault> {
    if !ca.may_fault_before_read() {
        return None;
    }
    let (ca, client) = (Arc::clone(ca), client.to_vec());
    tokio::task::spawn_blocking(move || ca.fault_before_read(&client))
        .await
        .unwrap_or(None)
}

async fn handle(
    ca: Arc<dyn Backend>,
    client: Option<Vec<u8>>,
    req: Request<Incoming>,
    limits: HttpLimits,
) -> Result<Response<Body>, Hangup> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::GET && path == "/.well-known/est/cacerts" {
        return Ok(match ca.cacerts() {
            Ok(der) => {
                let mut r = response(
                    StatusCode::OK,
                    "application/pkcs7-mime",
                    Base64::encode_string(&der),
                );
                r.headers_mut().insert(
                    "content-transfer-encoding",
                    header::HeaderValue::from_static("base64"),
                );
                r
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
        });
    }
    // Initial enrollment is not this server's business: it renews the certificate that
    // authenticates, nothing else (RFC 7030 §4.2.1 makes simpleenroll optional for a server).
    if path == "/.well-known/est/simpleenroll" {
        let rejection = Rejection::Denied(
            "this server renews certificates only: EST simpleenroll (initial enrollment) is not \
             offered; renew with simplereenroll or fullcmc"
                .into(),
        );
        let tls = client.clone().unwrap_or_default();
        let reason = rejection.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            ca.refuse_unread(Endpoint::SimpleEnroll, &tls, &rejection);
        })
        .await;
        return Ok(text(StatusCode::FORBIDDEN, reason));
    }
    // CMP (RFC 6712, paths of RFC 9811): the message's protection says who asks, so TLS
    // client authentication is optional here.
    if method == Method::POST && is_cmp_path(&path) {
        // The scenario's faults before the request is read, for a client that showed a
        // certificate (scenario rules match on it).
        if let Some(client) = &client {
            match early_fault(&ca, client).await {
                Some(TransportFault::DropBeforeRead) => return Err(Hangup),
                Some(TransportFault::Http(code)) => {
                    return Ok(text(
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        "injected fault",
                    ));
                }
                _ => {}
            }
        }
        let body = match read_body(req, limits).await {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        let started = std::time::Instant::now();
        let tls = client.clone().unwrap_or_default();
        let reply = tokio::task::spawn_blocking(move || ca.handle_cmp(&body, &tls))
            .await
            .unwrap_or(None);
        let Some(reply) = reply else {
            return Ok(text(
                StatusCode::NOT_FOUND,
                "this server has no CMP endpoint (a gateway needs a CMP upstream)",
            ));
        };
        tracing::info!(
            endpoint = "cmp",
            outcome = reply.outcome,
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        if let Some(failure) = &reply.upstream {
            return Ok(upstream_failure(failure));
        }
        let fault = reply.fault;
        return apply_fault(response(StatusCode::OK, PKIXCMP, reply.body), fault).await;
    }
    // Everything else acts for the certificate that authenticated: no certificate, no answer.
    let Some(client) = client else {
        return Ok(text(
            StatusCode::FORBIDDEN,
            "this endpoint needs a TLS client certificate from a CA this server trusts",
        ));
    };
    if method == Method::POST && crate::cep::is_cep_path(&path) && ca.as_ca().is_some() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        let body = match read_body(req, limits).await {
            Ok(b) => b,
            Err(r) => return Ok(r),
        };
        let Some(sim) = ca.as_ca() else {
            return Ok(text(StatusCode::NOT_FOUND, "no such endpoint"));
        };
        let (status, envelope) = crate::cep::handle(sim, &body, &host);
        tracing::info!(endpoint = "cep", status, "request");
        return Ok(response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            "application/soap+xml; charset=utf-8",
            envelope,
        ));
    }
    let route = match (method, path.as_str()) {
        (Method::POST, "/.well-known/est/simplereenroll") => Route::SimpleReenroll,
        (Method::POST, "/.well-known/est/fullcmc") => Route::FullCmc,
        (Method::POST, "/cmc") => Route::Rfc5273,
        (Method::POST, p) if crate::ces::is_ces_path(p) => Route::Ces,
        _ => return Ok(text(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    let started = std::time::Instant::now();
    let log = |outcome: &str| {
        tracing::info!(
            endpoint = route.endpoint().as_str(),
            outcome,
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
    };
    match early_fault(&ca, &client).await {
        Some(TransportFault::DropBeforeRead) => {
            log("fault: dropped before reading");
            return Err(Hangup);
        }
        Some(TransportFault::Http(code)) => {
            log("fault: injected HTTP error");
            return Ok(text(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected fault",
            ));
        }
        _ => {}
    }
    let body = match read_body(req, limits).await {
        Ok(b) => b,
        Err(r) => {
            log(&format!("refused: body ({})", r.status()));
            let rejection = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Rejection::TooLarge
            } else {
                Rejection::Malformed("the request body arrived too slowly".into())
            };
            let name = route.endpoint();
            let _ = tokio::task::spawn_blocking(move || {
                ca.refuse_unread(name, &client, &rejection);
            })
            .await;
            return Ok(r);
        }
    };
    // Card and CA work is blocking (SQLite, signing): keep it off the async workers.
    let (answer, fault, outcome) = tokio::task::spawn_blocking(move || match route {
        Route::SimpleReenroll => {
            let (reply, fault) = ca.handle_simple(&body, &client);
            let outcome = match &reply {
                SimpleReply::Issued(_) => "issued".to_string(),
                SimpleReply::Pending(_) => "pending".to_string(),
                SimpleReply::Rejected(r) => format!("refused: {:?}", r.codes().fail_info),
                SimpleReply::Unavailable(f) => format!("upstream: {} {}", f.status, f.text),
            };
            (simple_response(reply), fault, outcome)
        }
        Route::FullCmc | Route::Rfc5273 => {
            let reply = ca.handle_cmc_at(route.endpoint(), &body, &client);
            let fault = reply.fault;
            let outcome = match &reply.outcome {
                _ if reply.upstream.is_some() => "upstream failure".to_string(),
                Outcome::Issued => "issued".to_string(),
                Outcome::Pending { .. } => "pending".to_string(),
                Outcome::Failed { fail_info } => format!("refused: {fail_info:?}"),
                other => format!("{other:?}"),
            };
            (cmc_response(reply, route), fault, outcome)
        }
        Route::Ces => {
            let reply =
                crate::ces::handle(&*ca, &body, &client, &renewal_codec::cmc::Limits::default());
            let fault = reply.cmc.as_ref().and_then(|r| r.fault);
            let outcome = match reply.cmc.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Issued) => "issued".to_string(),
                Some(Outcome::Pending { .. }) => "pending".to_string(),
                Some(other) => format!("refused: {other:?}"),
                None => "refused: unreadable envelope".to_string(),
            };
            if let Some(failure) = reply.cmc.as_ref().and_then(|c| c.upstream.as_ref()) {
                return (
                    upstream_failure(failure),
                    None,
                    "upstream failure".to_string(),
                );
            }
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            let mut r = response(status, "application/soap+xml; charset=utf-8", reply.body);
            // ADCS sends no Retry-After; sim-ca adds its pending time as on its other
            // endpoints (the client falls back to 5 s without it).
            if let Some(secs) = reply.cmc.as_ref().and_then(|c| c.retry_after)
                && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            (r, fault, outcome)
        }
    })
    .await
    .unwrap_or_else(|_| {
        (
            text(StatusCode::INTERNAL_SERVER_ERROR, "CA task failed"),
            None,
            "internal error".into(),
        )
    });
    log(&match fault {
        Some(f) => format!("{outcome}; fault {f:?}"),
        None => outcome,
    });
    apply_fault(answer, fault).await
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    SimpleReenroll,
    FullCmc,
    Rfc5273,
    /// MS-WSTEP (CES).
    Ces,
}

impl Route {
    /// The endpoint the logs and the audit trail name.
    fn endpoint(self) -> Endpoint {
        match self {
            Self::SimpleReenroll => Endpoint::SimpleReenroll,
            Self::FullCmc => Endpoint::FullCmc,
            Self::Rfc5273 => Endpoint::Cmc,
            Self::Ces => Endpoint::Wstep,
        }
    }
}

/// The HTTP answer when a gateway got no decision from its upstream: the status, the reason,
/// and when to come back.
fn upstream_failure(failure: &crate::error::UpstreamFailure) -> Response<Body> {
    let mut r = text(
        StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY),
        failure.text.clone(),
    );
    if let Some(secs) = failure.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn cmc_response(reply: CmcReply, route: Route) -> Response<Body> {
    if let Some(failure) = &reply.upstream {
        return upstream_failure(failure);
    }
    let est = route == Route::FullCmc;
    let status = match (&reply.outcome, est) {
        (Outcome::Pending { .. }, true) => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    let body = if est {
        Bytes::from(Base64::encode_string(&reply.body))
    } else {
        Bytes::from(reply.body)
    };
    let mut r = response(status, CMC_RESPONSE, body);
    if est {
        r.headers_mut().insert(
            "content-transfer-encoding",
            header::HeaderValue::from_static("base64"),
        );
    }
    if let Some(secs) = reply.retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn simple_response(reply: SimpleReply) -> Response<Body> {
    match reply {
        SimpleReply::Issued(der) => {
            let mut r = response(StatusCode::OK, CERTS_ONLY, Base64::encode_string(&der));
            r.headers_mut().insert(
                "content-transfer-encoding",
                header::HeaderValue::from_static("base64"),
            );
            r
        }
        SimpleReply::Pending(secs) => {
            let mut r = text(StatusCode::ACCEPTED, "request pending");
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        SimpleReply::Unavailable(failure) => upstream_failure(&failure),
        SimpleReply::Rejected(rejection) => {
            let codes = rejection.codes();
            text(
                StatusCode::from_u16(codes.http).unwrap_or(StatusCode::BAD_REQUEST),
                rejection.status_string(),
            )
        }
    }
}

async fn apply_fault(
    answer: Response<Body>,
    fault: Option<TransportFault>,
) -> Result<Response<Body>, Hangup> {
    match fault {
        Some(TransportFault::Delay(ms)) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(answer)
        }
        Some(TransportFault::DropAfterRead) => Err(Hangup),
        Some(TransportFault::MalformedBody) => {
            let (parts, _) = answer.into_parts();
            Ok(Response::from_parts(
                parts,
                Full::new(Bytes::from_static(b"MIIBogus==")),
            ))
        }
        Some(TransportFault::WrongContentType) => {
            let (mut parts, body) = answer.into_parts();
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html"),
            );
            Ok(Response::from_parts(parts, body))
        }
        Some(TransportFault::Truncated) => {
            let (mut parts, body) = answer.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            parts.headers.remove(header::CONTENT_LENGTH);
            Ok(Response::from_parts(
                parts,
                Full::new(bytes.slice(..bytes.len() / 2)),
            ))
        }
        _ => Ok(answer),
    }
}
