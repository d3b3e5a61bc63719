//! Who decides: the simulated CA asked directly, the gateway forwarding over HTTPS to an
//! upstream sim-ca, and the gateway in front of the simulated authority in process. Tests that
//! judge a decision run it against all three, so the copies cannot drift apart again.

use renewal_codec::cmc::{Outcome, Retained, status::CmcFailInfo};
use sim_ca::store::Endpoint;
use sim_ca::{
    Ca,
    backend::Backend,
    service::{CmcReply, SimpleReply},
    store::Store,
};
use x509_cert::Certificate;

use super::{Client, Upstream, parse};

/// Who decides.
pub enum Decider {
    /// The simulated CA, asked directly.
    Direct,
    /// The gateway, forwarding over HTTPS to an upstream sim-ca.
    GatewayNetwork(sim_ca::gateway::Gateway),
    /// The gateway in front of the simulated authority, in process.
    GatewayLocal(sim_ca::gateway::Gateway),
}

/// A CA and who decides in front of it.
pub struct Desk {
    pub upstream: Upstream,
    pub decider: Decider,
}

impl Desk {
    /// The three deciders, each over a fresh CA configured by `scenario`.
    pub fn all(scenario: &str) -> Vec<Desk> {
        let direct = Upstream::start(scenario);
        let network = Upstream::start(scenario);
        let local = Upstream::start(scenario);
        vec![
            Desk {
                decider: Decider::Direct,
                upstream: direct,
            },
            Desk {
                decider: Decider::GatewayNetwork(network.gateway(Store::in_memory().unwrap())),
                upstream: network,
            },
            Desk {
                decider: Decider::GatewayLocal(local.gateway_local(Store::in_memory().unwrap())),
                upstream: local,
            },
        ]
    }

    pub fn name(&self) -> &'static str {
        match self.decider {
            Decider::Direct => "the simulated CA",
            Decider::GatewayNetwork(_) => "the gateway over HTTPS",
            Decider::GatewayLocal(_) => "the gateway in process",
        }
    }

    pub fn ca(&self) -> &Ca {
        &self.upstream.ca
    }

    /// The decider, as the HTTPS front ends see it.
    pub fn backend(&self) -> &dyn Backend {
        match &self.decider {
            Decider::Direct => self.ca(),
            Decider::GatewayNetwork(g) | Decider::GatewayLocal(g) => g,
        }
    }

    /// The raw answer to a full CMC request at EST `/fullcmc`; the decision must not have
    /// failed upstream (every decider answers with a signed CMC response).
    pub fn handle_cmc(&self, request: &[u8], tls: &[u8]) -> CmcReply {
        self.handle_cmc_at(Endpoint::FullCmc, request, tls)
    }

    /// The raw answer to a full CMC request at `endpoint`.
    pub fn handle_cmc_at(&self, endpoint: Endpoint, request: &[u8], tls: &[u8]) -> CmcReply {
        let reply = self.backend().handle_cmc_at(endpoint, request, tls);
        assert!(
            reply.upstream.is_none(),
            "{}: {:?}",
            self.name(),
            reply.upstream
        );
        reply
    }

    /// A full CMC request at `endpoint`: the outcome, the status text, the certificates.
    pub fn cmc(
        &self,
        endpoint: Endpoint,
        request: &[u8],
        tls: &[u8],
    ) -> (Outcome, String, Vec<Retained<Certificate>>) {
        let response = parse(&self.handle_cmc_at(endpoint, request, tls).body);
        response.verify_signer().unwrap();
        (
            response.outcome,
            response.status_string.unwrap_or_default(),
            response.certificates,
        )
    }

    /// Submits `request` as `client` and returns (fail info, status string) of its refusal.
    pub fn rejected(&self, client: &Client, request: &[u8]) -> (Option<CmcFailInfo>, String) {
        match self.cmc(Endpoint::FullCmc, request, client.old_cert.der()) {
            (Outcome::Failed { fail_info }, text, _) => (fail_info, text),
            (other, text, _) => panic!("{}: expected a failure, got {other:?} {text}", self.name()),
        }
    }

    /// Asserts the refusal (fail info and HRESULT) and that nothing was issued for it.
    pub fn assert_rejected(
        &self,
        client: &Client,
        request: &[u8],
        fail: CmcFailInfo,
        hresult: &str,
    ) {
        let before = self.issued();
        let (got, text) = self.rejected(client, request);
        assert_eq!(got, Some(fail), "{}: {text}", self.name());
        assert!(text.starts_with(hresult), "{}: {text}", self.name());
        assert_eq!(
            self.issued(),
            before,
            "{}: a certificate was issued",
            self.name()
        );
    }

    /// An EST simplereenroll.
    pub fn simple(&self, body: &[u8], tls: &[u8]) -> SimpleReply {
        self.backend().handle_simple(body, tls).0
    }

    /// The certificate that signs the decider's answers (DER): the issuing CA's, or the
    /// gateway's RA certificate (the gateway answers in its own name, RFC 5272 §3.2.1).
    pub fn signer(&self) -> Vec<u8> {
        match &self.decider {
            Decider::Direct => self.ca().authority().issuing.cert.der().to_vec(),
            Decider::GatewayNetwork(_) | Decider::GatewayLocal(_) => self.upstream.ra_certificate(),
        }
    }

    /// The decider's own audit trail (the gateway keeps its own; the CA behind it records
    /// the RA's forwarded requests).
    pub fn audit_trail(&self) -> Vec<sim_ca::store::AuditRecord> {
        match &self.decider {
            Decider::Direct => self.ca().audit_trail(),
            Decider::GatewayNetwork(g) | Decider::GatewayLocal(g) => g.audit_trail(),
        }
    }

    /// Certificates the CA behind the decider has issued.
    pub fn issued(&self) -> i64 {
        self.ca()
            .counters()
            .iter()
            .find(|(n, _)| n == "issued")
            .map_or(0, |(_, v)| *v)
    }
}
