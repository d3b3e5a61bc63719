//! What the HTTPS front ends (EST, RFC 5273 CMC, MS-WSTEP) ask of whatever decides behind
//! them: the simulated CA ([`crate::Ca`], which issues itself) or the renewal gateway
//! ([`crate::gateway::Gateway`], which checks and forwards to an upstream CA). The front ends
//! own TLS termination, body limits and the wire formats; a backend owns the decision.

use crate::store::Endpoint;
use renewal_codec::cmc::Retained;
use x509_cert::Certificate;

use crate::{
    Ca,
    policy::Rejection,
    scenario::TransportFault,
    service::{CmcReply, CmpReply, SimpleReply},
};

pub use crate::error::UpstreamFailure;

/// The decision side of the HTTPS server.
pub trait Backend: Send + Sync + 'static {
    /// Certs-only PKCS#7 of the CA certificates (EST `/cacerts`).
    fn cacerts(&self) -> Result<Vec<u8>, crate::Error>;
    /// The CA certificates an answer carries besides the issued one.
    fn ca_certificates(&self) -> Vec<Retained<Certificate>>;
    /// Whether [`Backend::fault_before_read`] can answer anything but `None` (it needs the
    /// store; the front end skips it when it cannot).
    fn may_fault_before_read(&self) -> bool {
        false
    }
    /// A fault to apply before the request is read (simulation only).
    fn fault_before_read(&self, _tls_cert: &[u8]) -> Option<TransportFault> {
        None
    }
    /// Records a request refused before it could be read (too large, too slow).
    fn refuse_unread(&self, endpoint: Endpoint, tls_cert: &[u8], rejection: &Rejection);
    /// A Full PKI Request that came in at `endpoint` (`fullcmc`, `cmc`, `wstep`).
    fn handle_cmc_at(&self, endpoint: Endpoint, request: &[u8], tls_cert: &[u8]) -> CmcReply;
    /// MS-WSTEP `QueryTokenStatus` for the request pending under `id`.
    fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply;
    /// An EST simplereenroll.
    fn handle_simple(&self, body: &[u8], tls_cert: &[u8]) -> (SimpleReply, Option<TransportFault>);
    /// A CMP PKIMessage (RFC 6712) presented with `tls_cert` (empty without one); `None`
    /// when this backend serves no CMP.
    fn handle_cmp(&self, _body: &[u8], _tls_cert: &[u8]) -> Option<CmpReply> {
        None
    }
    /// The simulated CA, for what only it serves (CEP policy, the admin API's approvals,
    /// revocations and clock).
    fn as_ca(&self) -> Option<&Ca> {
        None
    }
    /// Prometheus text exposition (format 0.0.4) of this backend's metrics.
    fn metrics(&self) -> String;
    /// Whether the backend can decide right now (its state database answers).
    fn health(&self) -> Result<(), crate::Error>;
}

impl Backend for Ca {
    fn cacerts(&self) -> Result<Vec<u8>, crate::Error> {
        Ca::cacerts(self)
    }
    fn ca_certificates(&self) -> Vec<Retained<Certificate>> {
        vec![
            self.authority().issuing.cert.clone(),
            self.authority().root.cert.clone(),
        ]
    }
    fn may_fault_before_read(&self) -> bool {
        Ca::may_fault_before_read(self)
    }
    fn fault_before_read(&self, tls_cert: &[u8]) -> Option<TransportFault> {
        Ca::fault_before_read(self, tls_cert)
    }
    fn refuse_unread(&self, endpoint: Endpoint, tls_cert: &[u8], rejection: &Rejection) {
        Ca::refuse_unread(self, endpoint, tls_cert, rejection);
    }
    fn handle_cmc_at(&self, endpoint: Endpoint, request: &[u8], tls_cert: &[u8]) -> CmcReply {
        Ca::handle_cmc_at(self, endpoint, request, tls_cert)
    }
    fn query_token_status(&self, id: u64, tls_cert: &[u8]) -> CmcReply {
        Ca::query_token_status(self, id, tls_cert)
    }
    fn handle_simple(&self, body: &[u8], tls_cert: &[u8]) -> (SimpleReply, Option<TransportFault>) {
        Ca::handle_simple(self, body, tls_cert)
    }
    fn handle_cmp(&self, body: &[u8], tls_cert: &[u8]) -> Option<CmpReply> {
        Some(Ca::handle_cmp(self, body, tls_cert))
    }
    fn as_ca(&self) -> Option<&Ca> {
        Some(self)
    }
    fn metrics(&self) -> String {
        crate::metrics::ca(self)
    }
    fn health(&self) -> Result<(), crate::Error> {
        Ok(self.with_store(|s| s.counter("requests").map(|_| ()))?)
    }
}
