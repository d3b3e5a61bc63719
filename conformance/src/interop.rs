//! Interop mode: the matrix against a real token (a PKCS#11 module: SoftHSM2, a vendor module
//! for a smart card or HSM) with the simulated CA. Scenarios that need the virtual card's fault
//! plan, or that would spend the real token's PIN tries, are listed as skipped with the reason.

use crate::matrix::Scenario;

/// Why a scenario cannot run against a real token, if it cannot.
pub fn not_applicable(scenario: &Scenario) -> Option<&'static str> {
    if !scenario.card_faults.is_empty() {
        return Some("needs the virtual card's fault plan (a real token cannot be told to fail)");
    }
    if scenario.capacity != 24 {
        return Some("needs a card of a chosen capacity");
    }
    if scenario.pin != "123456" || scenario.pin_retries != 3 {
        return Some("would spend the real token's PIN tries");
    }
    None
}

/// Runs the applicable scenarios on the PKCS#11 token `spec` (`pkcs11:MODULE[:LABEL]`)
/// whose user PIN is `pin`.
#[cfg(feature = "pkcs11")]
pub fn run_pkcs11(
    scenarios: &[Scenario],
    spec: &str,
    pin: &str,
    progress: impl Fn(usize, &str),
) -> Result<Vec<crate::runner::Result>, String> {
    use std::sync::{Arc, Mutex};

    use renewal_core::token::{
        pin::{CountingPinSource, StaticPin},
        pkcs11::Pkcs11Token,
    };

    use crate::{harness::World, runner, trace};

    let rest = spec
        .strip_prefix("pkcs11:")
        .ok_or("--token: expected pkcs11:MODULE[:LABEL]")?;
    let (module, label) = match rest.split_once(':') {
        Some((m, l)) => (m.to_string(), Some(l.to_string())),
        None => (rest.to_string(), None),
    };
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        progress(i, &s.name);
        if let Some(reason) = not_applicable(s) {
            results.push(runner::skipped(s, reason));
            continue;
        }
        // A PKCS#11 token needs the login to list private objects, and provisioning the
        // world already logged in: every scenario costs exactly that one prompt (on a PIV card
        // a crash right after `Begin` costs none).
        let s = &Scenario {
            prompts: 1,
            ..s.clone()
        };
        let result = runner::run_in(s, || {
            let pins = Arc::new(CountingPinSource::new(StaticPin::new(pin)));
            let trace = trace::Trace::default();
            let recording = Arc::new(trace::RecordingPins {
                inner: pins.clone(),
                trace: trace.clone(),
            });
            let token =
                Pkcs11Token::open(std::path::Path::new(&module), label.as_deref(), recording)
                    .map_err(|e| e.to_string())?;
            let shared: renewal_core::client::https::SharedToken =
                Arc::new(Mutex::new(Box::new(token)));
            World::with_token(&s.ca, s.key, shared, pins, trace)
        });
        results.push(result);
    }
    Ok(results)
}
