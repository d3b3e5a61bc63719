//! The CA behind the gateway, as the gateway sees it: it takes the RA's requests and answers
//! with a decision, or fails to. Two kinds:
//!
//! * [`super::upstream::Upstream`]: a CA reached over the network (EST fullcmc, RFC 5273,
//!   MS-WSTEP, CMP), as the gateway's RA identity;
//! * [`SimulatedAuthority`]: sim-ca's simulated CA in the same process, trusting the gateway's
//!   RA — its dispositions, faults and scenarios unchanged, its transport faults turned into
//!   what the network path makes of them (a dropped connection is unreachable, a garbled body
//!   a bad answer). No socket: a gateway in front of a simulated CA for tests and CI.
//!
//! Whatever the kind, what comes back is checked by the gateway the same way: a CMC response
//! is verified (signer, certificate chain, key, subject, names, usages, template). Every
//! request goes up as full CMC — a user's simplereenroll too, as the RA's re-enrollment naming
//! the certificate it renews ([`renewal_codec::cmc::ra::wrap_reenroll`]).

use crate::store::Endpoint;
use std::sync::Arc;

use crate::{Ca, scenario::TransportFault};

/// The upstream's answer to a full CMC request.
#[derive(Debug)]
pub enum CmcAnswer {
    /// A CMC response (DER), to be verified; with the upstream's request id when it gave one
    /// (MS-WSTEP's RequestID).
    Response {
        /// The Full PKI Response.
        der: Vec<u8>,
        /// The upstream's request id.
        upstream_id: Option<u64>,
    },
    /// A refusal without a CMC response (an MS-WSTEP SOAP fault): its HRESULT and text.
    Refused {
        /// What the upstream said, `0xHRESULT: reason`.
        text: String,
    },
}

/// Why no usable answer came back.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Could not be asked (unreachable, timed out, dropped, overloaded, HTTP 5xx): try again.
    #[error("{0}")]
    Unavailable(String),
    /// Answered something that is not an answer (wrong content type, unreadable, HTTP 4xx).
    #[error("{0}")]
    BadAnswer(String),
}

/// The CA behind the gateway.
pub trait CaBackend: Send + Sync {
    /// A full CMC request (the RA's wrapper), or the collection of the request pending under
    /// `pending` (an upstream's own id, where its protocol has one).
    fn cmc(&self, wrapped: &[u8], pending: Option<u64>) -> Result<CmcAnswer, Failure>;
    /// A CMP message (the RA's `nested` message around a user's), answered with a PKIMessage
    /// to be verified.
    fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, Failure>;
    /// The longest one exchange may take, when it is bounded: a request being forwarded
    /// keeps its claim that long (and a little more) before a copy may take it over.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// sim-ca's simulated CA in this process, deciding the gateway's requests as those of the
/// RA whose certificate is `ra_certificate` (which it must trust: `Ca::with_trusted_ras`).
pub struct SimulatedAuthority {
    ca: Arc<Ca>,
    ra_certificate: Vec<u8>,
}

impl SimulatedAuthority {
    /// The simulated `ca`, asked by the RA with this certificate (DER).
    pub fn new(ca: Arc<Ca>, ra_certificate: Vec<u8>) -> Self {
        Self { ca, ra_certificate }
    }

    /// A fault the simulated CA applies before reading the request, as the network shows it.
    fn before_read(&self) -> Result<(), Failure> {
        match self.ca.fault_before_read(&self.ra_certificate) {
            Some(TransportFault::DropBeforeRead) => {
                Err(Failure::Unavailable("the CA dropped the connection".into()))
            }
            Some(TransportFault::Http(code)) if code >= 500 => {
                Err(Failure::Unavailable(format!("the CA answered HTTP {code}")))
            }
            Some(TransportFault::Http(code)) => {
                Err(Failure::BadAnswer(format!("the CA answered HTTP {code}")))
            }
            _ => Ok(()),
        }
    }
}

/// A fault the simulated CA applies to its answer, as the network path makes of it: `Ok` when
/// the answer arrives as it was built (late, or deliberately wrong inside: the gateway's
/// checks catch those).
fn after_decision(fault: Option<TransportFault>) -> Result<(), Failure> {
    match fault {
        Some(TransportFault::Delay(ms)) => {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        }
        Some(TransportFault::DropAfterRead | TransportFault::DropBeforeRead) => Err(
            Failure::Unavailable("the CA dropped the connection after reading".into()),
        ),
        Some(TransportFault::MalformedBody) => {
            Err(Failure::BadAnswer("the CA's answer does not parse".into()))
        }
        Some(TransportFault::Truncated) => {
            Err(Failure::BadAnswer("the CA's answer is truncated".into()))
        }
        Some(TransportFault::WrongContentType) => Err(Failure::BadAnswer(
            "the CA answered content type \"text/html\"".into(),
        )),
        Some(TransportFault::Http(code)) => {
            Err(Failure::Unavailable(format!("the CA answered HTTP {code}")))
        }
        Some(TransportFault::WrongSigner | TransportFault::WrongKeyCertificate) | None => Ok(()),
    }
}

impl CaBackend for SimulatedAuthority {
    fn cmc(&self, wrapped: &[u8], pending: Option<u64>) -> Result<CmcAnswer, Failure> {
        self.before_read()?;
        let reply = match pending {
            Some(id) => self.ca.query_token_status(id, &self.ra_certificate),
            None => self
                .ca
                .handle_cmc_at(Endpoint::FullCmc, wrapped, &self.ra_certificate),
        };
        after_decision(reply.fault)?;
        Ok(CmcAnswer::Response {
            der: reply.body,
            upstream_id: None,
        })
    }

    fn cmp_message(&self, message: &[u8]) -> Result<Vec<u8>, Failure> {
        self.before_read()?;
        let reply = self.ca.handle_cmp(message, &self.ra_certificate);
        if let Some(failure) = reply.upstream {
            return Err(if failure.status >= 500 {
                Failure::Unavailable(failure.text)
            } else {
                Failure::BadAnswer(failure.text)
            });
        }
        after_decision(reply.fault)?;
        Ok(reply.body)
    }
}
