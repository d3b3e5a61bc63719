//! sim-ca's decision function, body + TLS certificate → decision, with the deterministic
//! sample PKI as the CA (so `renew sample --deterministic`'s request is a seed that reaches
//! issuance). First byte: bit 0 picks the endpoint (full CMC / simplereenroll), bit 1 whether
//! the TLS certificate is the sample user's or comes from the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use renewal_core::{
    cmc::{Retained, SoftwareKey},
    sample::{Sample, fixed_now},
};
use sim_ca::{
    Ca,
    authority::{Authority, CaIdentity},
    clock::Clock,
    scenario::Scenario,
    store::Store,
};
use x509_cert::Certificate;

fn ca() -> &'static (Ca, Retained<Certificate>) {
    static CA: OnceLock<(Ca, Retained<Certificate>)> = OnceLock::new();
    CA.get_or_init(|| {
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
                cert: sample.ca_cert,
            },
        };
        let ca = Ca::new(
            authority,
            Store::in_memory().expect("store"),
            &Scenario::default(),
            Clock::fixed(fixed_now()),
        )
        .expect("CA");
        (ca, sample.old_cert)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (ca, user) = ca();
    let (tls, body): (&[u8], &[u8]) = if mode & 2 == 0 {
        (user.der(), rest)
    } else {
        let split = rest.first().map_or(0, |&b| usize::from(b) * 8).min(rest.len());
        rest.split_at(split)
    };
    if mode & 1 == 0 {
        let _ = ca.handle_cmc(body, tls);
    } else {
        let _ = ca.handle_simple(body, tls);
    }
});
