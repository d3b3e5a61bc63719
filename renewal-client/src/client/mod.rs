//! The renewal client: the server as the client sees it ([`RenewalService`], with the HTTPS
//! transports in [`https`]), the crash-safe [`journal`], and the [`processor`] that runs the
//! flow step by step with rollback, pending and recovery.

pub mod https;
pub mod journal;
pub mod processor;

use x509_cert::Certificate;

use crate::cmc::{ParsedResponse, Retained};

/// Which protocol talks to the CA.
#[derive(Clone, Copy, Debug, Eq, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// EST `/fullcmc` (RFC 7030 §4.3), base64 CMC.
    FullCmc,
    /// CMC over HTTP (RFC 5273), binary DER.
    Cmc,
    /// EST `/simplereenroll` (RFC 7030 §4.2.2): PKCS#10 only, the TLS identity is the authority.
    SimpleReenroll,
    /// MS-WSTEP (ADCS Certificate Enrollment Web Service, certificate authentication): the
    /// CMC request in a SOAP `RequestSecurityToken`, pending requests collected with
    /// `QueryTokenStatus`.
    Wstep,
    /// CMP (RFC 4210, the lightweight profile of RFC 9483) over HTTPS (RFC 6712): a key update
    /// request protected by the old key, confirmed with `certConf` unless the CA grants
    /// implicit confirmation; pending requests polled with `pollReq`.
    Cmp,
}

impl Mode {
    /// Every mode, in the order the matrix runs them.
    pub const ALL: [Self; 4] = [Self::FullCmc, Self::Cmc, Self::SimpleReenroll, Self::Wstep];

    /// Whether the request is a full CMC request signed by both keys (not a bare PKCS#10).
    pub fn sends_cmc(self) -> bool {
        !matches!(self, Self::SimpleReenroll | Self::Cmp)
    }
}

impl std::str::FromStr for Mode {
    type Err = crate::cmc::InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fullcmc" => Ok(Self::FullCmc),
            "cmc" => Ok(Self::Cmc),
            "simplereenroll" => Ok(Self::SimpleReenroll),
            "wstep" => Ok(Self::Wstep),
            "cmp" => Ok(Self::Cmp),
            other => Err(crate::cmc::InvalidValue::new(
                "mode",
                other,
                "fullcmc, cmc, simplereenroll, wstep or cmp",
            )),
        }
    }
}

/// What the server answered.
#[derive(Debug)]
pub enum ServiceAnswer {
    /// A CMC response or certs-only PKCS#7.
    Response {
        /// The parsed answer (signature not yet judged).
        response: Box<ParsedResponse>,
        /// `Retry-After`, when sent.
        retry_after: Option<u64>,
    },
    /// HTTP 202 without a CMC body (EST simplereenroll): ask again later.
    Pending {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A CMP PKIMessage (`application/pkixcmp`), as received: the renewal reads it, checking
    /// its protection against the exchange it belongs to.
    Cmp {
        /// DER.
        message: Vec<u8>,
    },
    /// The CA refused in the transport's own terms (an MS-WSTEP SOAP fault): `text` starts
    /// with the HRESULT when one was sent.
    Refused {
        /// What the CA said.
        text: String,
    },
}

/// Why talking to the CA failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Bad configuration (URL, trust anchors).
    #[error("configuration: {0}")]
    Config(String),
    /// The CA certificates to trust could not be read.
    #[error("{}: {source}", path.display())]
    TrustFile {
        /// The file `--ca-cert` or `ca_cert` names.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file holds no certificate we can use as a trust anchor.
    #[error("{}: {source}", path.display())]
    TrustAnchors {
        /// The file `--ca-cert` or `ca_cert` names.
        path: std::path::PathBuf,
        /// What is wrong with its content.
        source: Box<crate::cmc::CmcError>,
    },
    /// Could not connect, or the connection broke (TLS refused, dropped).
    #[error("connection to the CA failed: {0}")]
    Connection(String),
    /// No answer in time.
    #[error("the CA did not answer in time")]
    Timeout,
    /// An HTTP error status.
    #[error("the CA answered HTTP {status}: {text}")]
    Http {
        /// Status code.
        status: u16,
        /// Start of the body.
        text: String,
        /// Seconds the server asked to wait (`Retry-After`), when it said.
        retry_after: Option<u64>,
    },
    /// An answer we cannot read.
    #[error("unreadable answer from the CA: {0}")]
    BadAnswer(String),
    /// The card refused the TLS client signature: the PIN (or none could be had), or a
    /// touch that never came.
    #[error(transparent)]
    Card(crate::token::CardRefusal),
}

impl ServiceError {
    /// Whether the answer to a sent request was lost rather than given: the connection
    /// dropped or timed out, the body came truncated or unreadable, or a server or proxy
    /// answered 5xx. The CA may have decided; re-sending the same bytes gets its decision
    /// (it answers a re-sent request idempotently). A 4xx or a readable refusal is an answer.
    pub fn lost_answer(&self) -> bool {
        match self {
            Self::Connection(_) | Self::Timeout | Self::BadAnswer(_) => true,
            Self::Http { status, .. } => *status >= 500,
            Self::Config(_)
            | Self::TrustFile { .. }
            | Self::TrustAnchors { .. }
            | Self::Card(_) => false,
        }
    }

    /// The card's refusal that stopped the exchange, if that is what did.
    pub fn card_refusal(&self) -> Option<crate::token::CardRefusal> {
        match self {
            Self::Card(refusal) => Some(refusal.clone()),
            _ => None,
        }
    }

    /// The wait the server asked for, when it did.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The server as the client sees it.
pub trait RenewalService {
    /// A cheap call that establishes the TLS session before any card work (so the TLS
    /// signature and the card share one login); returns the CA certificates.
    fn warm_up(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError>;
    /// Sends a request (CMC DER, or PKCS#10 DER for simplereenroll). Re-sending the same bytes
    /// polls a pending request.
    fn submit(&mut self, body: &[u8]) -> Result<ServiceAnswer, ServiceError>;
    /// The CA's handle for the request now pending, when the protocol has one (MS-WSTEP
    /// RequestID), for the journal.
    fn pending_id(&self) -> Option<u64> {
        None
    }
    /// After a restart: `request` is pending under `id`; polls use the handle.
    fn resume_pending(&mut self, request: &[u8], id: u64) {
        let _ = (request, id);
    }
}
