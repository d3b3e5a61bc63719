//! sim-ca's decision, body + TLS certificate → decision, against both deciders: the simulated
//! CA directly, and the renewal gateway in front of it (in process, as its trusted RA), with
//! the deterministic sample PKI as the CA (so `renew sample --deterministic`'s request is a
//! seed that reaches issuance). First byte: bit 0 picks the endpoint (full CMC /
//! simplereenroll), bit 1 whether the TLS certificate is the sample user's or comes from the
//! input, bit 2 the decider (the CA / the gateway), bit 3 the CMP endpoint instead (a
//! PKIMessage: kur, pollReq, certConf, anything).
#![no_main]

use sim_ca::store::Endpoint;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use renewal_codec::{
    cmc::{Retained, SoftwareKey},
    sample::{Sample, fixed_now},
};
use sim_ca::{
    Ca,
    authority::{Authority, CaIdentity},
    clock::Clock,
    gateway::{
        Gateway, Policy, RaCredential,
        ca_backend::SimulatedAuthority,
        credential::{self, Purpose},
    },
    scenario::Scenario,
    store::Store,
    templates::TemplateRegistry,
};
use x509_cert::Certificate;

/// The CA, the gateway in front of it, and the sample user's certificate.
fn deciders() -> &'static (Arc<Ca>, Gateway, Retained<Certificate>) {
    static DECIDERS: OnceLock<(Arc<Ca>, Gateway, Retained<Certificate>)> = OnceLock::new();
    DECIDERS.get_or_init(|| {
        let sample = Sample::deterministic().expect("sample");
        let again = Sample::deterministic().expect("sample");
        let root_key: SoftwareKey = again.ca_key;
        let authority = Authority {
            root: CaIdentity {
                key: root_key,
                cert: sample.ca_cert.clone(),
            },
            issuing: CaIdentity {
                key: sample.ca_key,
                cert: sample.ca_cert.clone(),
            },
        };
        let ra = credential::issue(&authority, "RA", &[], Purpose::Ra, fixed_now()).expect("RA");
        let ca = Ca::new(
            authority,
            Store::in_memory().expect("store"),
            &Scenario::default(),
            Clock::fixed(fixed_now()),
        )
        .expect("CA")
        .with_trusted_ras(vec![ra.chain[0].clone()])
        .expect("RA trusted");
        let ca = Arc::new(ca);
        let gateway = Gateway::new(
            Policy {
                client_cas: vec![sample.ca_cert.clone()],
                upstream_cas: vec![sample.ca_cert.clone()],
                templates: TemplateRegistry::from_configs(&[]).expect("templates"),
                grace: std::time::Duration::ZERO,
                profile: renewal_codec::cmc::Profile::Adcs,
                retry_after: 5,
                max_pending_per_identity: sim_ca::ledger::DEFAULT_PENDING_CAP,
            },
            RaCredential {
                chain: ra.chain.clone(),
                key: ra.key,
            },
            Box::new(SimulatedAuthority::new(
                Arc::clone(&ca),
                ra.chain[0].der().to_vec(),
            )),
            Store::in_memory().expect("store"),
            Clock::fixed(fixed_now()),
        )
        .expect("gateway");
        (ca, gateway, sample.old_cert)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (ca, gateway, user) = deciders();
    let (tls, body): (&[u8], &[u8]) = if mode & 2 == 0 {
        (user.der(), rest)
    } else {
        let split = rest
            .first()
            .map_or(0, |&b| usize::from(b) * 8)
            .min(rest.len());
        rest.split_at(split)
    };
    if mode & 8 != 0 {
        // The gateway forwards CMP nested to the CA behind it (RFC 9483 §5.2.2.1).
        let reply = if mode & 4 == 0 {
            ca.handle_cmp(body, tls)
        } else {
            gateway.handle_cmp(body, tls)
        };
        // Whatever came in, the answer is a PKIMessage the desk signed (never an empty body but
        // for "no decision": the store failed, or the upstream gave no usable answer).
        assert!(!reply.body.is_empty() || reply.upstream.is_some());
        return;
    }
    match (mode & 1 == 0, mode & 4 == 0) {
        (true, true) => drop(ca.handle_cmc(body, tls)),
        (false, true) => drop(ca.handle_simple(body, tls)),
        (true, false) => drop(gateway.handle_cmc_at(Endpoint::FullCmc, body, tls)),
        (false, false) => drop(gateway.handle_simple(body, tls)),
    }
});
