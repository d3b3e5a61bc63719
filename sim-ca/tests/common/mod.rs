//! Fixtures: a CA in memory and a client holding a certificate from it.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::SystemTime;

use renewal_core::{
    cmc::{
        DigestAlgorithm, Limits, ParsedResponse, RenewalParams, Retained, SoftwareKey,
        build_renewal_request, parse_response,
    },
    sample::issue_user_certificate,
};
use sim_ca::{Ca, authority::Authority, clock::Clock, scenario::Scenario, store::Store};
use x509_cert::Certificate;

pub fn now() -> SystemTime {
    renewal_core::sample::fixed_now()
}

pub fn ca_with(scenario: &str) -> Ca {
    let clock = Clock::fixed(now());
    let authority = Authority::generate(clock.now()).unwrap();
    Ca::new(
        authority,
        Store::in_memory().unwrap(),
        &Scenario::from_toml(scenario).unwrap(),
        clock,
    )
    .unwrap()
}

pub fn ca() -> Ca {
    ca_with("")
}

/// A smart-card user with a certificate from `ca` and a fresh key to renew onto.
pub struct Client {
    pub old_key: SoftwareKey,
    pub old_cert: Retained<Certificate>,
    pub new_key: SoftwareKey,
}

impl Client {
    pub fn new(ca: &Ca) -> Self {
        Self::with_keys(
            ca,
            SoftwareKey::generate_p256().unwrap(),
            SoftwareKey::generate_p256().unwrap(),
        )
    }

    pub fn with_keys(ca: &Ca, old_key: SoftwareKey, new_key: SoftwareKey) -> Self {
        use renewal_core::cmc::Signer;
        let old_cert = issue_user_certificate(
            &ca.authority().issuing.key,
            &ca.authority().issuing.cert,
            old_key.public_key(),
            now(),
        )
        .unwrap();
        Self {
            old_key,
            old_cert,
            new_key,
        }
    }

    pub fn params() -> RenewalParams {
        let mut p = RenewalParams::random().unwrap();
        p.digest = DigestAlgorithm::Sha256;
        p
    }

    pub fn request(&self) -> Vec<u8> {
        self.request_with(Self::params())
    }

    pub fn request_with(&self, params: RenewalParams) -> Vec<u8> {
        build_renewal_request(&self.old_cert, &self.old_key, &self.new_key, &params)
            .unwrap()
            .der
    }
}

pub fn parse(body: &[u8]) -> ParsedResponse {
    parse_response(body, &Limits::default()).unwrap()
}
