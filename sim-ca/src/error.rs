//! sim-ca's one public error: every fallible function of its API says what went wrong and
//! about what. (A request the CA refuses is not an error but a decision, answered with its
//! [`Rejection`]; an administrative call the policy refuses carries that same rejection.)

use std::path::PathBuf;

use crate::{authority::AuthorityError, policy::Rejection, store::StoreError};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The state database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy refused (an initial enrollment with a key the template does not allow, a
    /// certificate this CA did not issue, ...).
    #[error("refused: {0}")]
    Refused(#[from] Rejection),
    /// The CA's keys and certificates on disk.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    /// A setting is unusable: a scenario, a template, the gateway's configuration, a
    /// command-line value.
    #[error("{setting}: {reason}")]
    Setting {
        /// Which setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key, request or message does not encode or decode.
    #[error("{what}: {reason}")]
    Encoding {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Key generation, signing or the system's RNG failed.
    #[error("{operation}: {reason}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// The TLS configuration is unusable.
    #[error("TLS: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
}

/// For callers that report errors as text (the command-line tools, test harnesses).
impl From<Error> for String {
    fn from(e: Error) -> Self {
        e.to_string()
    }
}

/// No decision: the state database, or the CA behind a gateway, could not be asked. The client
/// is told over HTTP, with no CMC body (nothing was decided, so nothing can be signed). Kept
/// here, below everything that decides, because the desk, the policy and both deciders answer
/// it; [`crate::backend`] re-exports it for the front ends.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamFailure {
    /// 503 (unreachable, timed out, overloaded: try again) or 502 (an answer the gateway
    /// cannot vouch for).
    pub status: u16,
    /// Seconds before trying again (503).
    pub retry_after: Option<u64>,
    /// What happened, for the client's message.
    pub text: String,
}
