//! Interop mode: the matrix against real systems.
//!
//! - A real token (a PKCS#11 module: SoftHSM2, a vendor module for a smart card or HSM) with
//!   the simulated CA ([`run_pkcs11`]): each scenario provisions a key and a certificate from
//!   the simulated CA and removes what it made.
//! - An external CA ([`run_external`]) with a token that already holds a certificate from it
//!   (the virtual card in a state file, a PIV card through PC/SC, a PKCS#11 token): the
//!   scenarios run one after another on that certificate, each renewing the one the last left.
//!
//! Scenarios that need something the real system cannot do (the virtual card's fault plan,
//! the simulated CA's rules and faults, a card of a chosen capacity, spending PIN tries) are
//! listed as skipped with the reason.

use std::sync::{Arc, Mutex};

use renewal_client::{
    client::Mode,
    token::{ContainerId, KeyAlgorithm, piv::ManagementKey, spec::TokenSpec},
};

use crate::{
    harness::{ExternalCa, World},
    matrix::{Scenario, mode_name},
    runner, trace,
};

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
    if scenario.pin_policy != sim_card::state::PinPolicy::Once {
        return Some("needs a key of another PIN policy (a token's keys are what they are)");
    }
    if scenario.touch != crate::matrix::Touch::Never {
        return Some("needs a key of another touch policy and a sensor the runner can press");
    }
    if scenario.model != sim_card::state::CardModel::YubiKey57 {
        return Some("needs a virtual card of another model");
    }
    if scenario.protected_management_key {
        return Some("needs a virtual card provisioned with a PIN-protected management key");
    }
    if scenario.ca.contains("attestation_roots") {
        return Some(
            "needs a CA trusting the token's attestation root (the simulated cards' vendor root)",
        );
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
    use renewal_client::token::{
        pin::{CountingPinSource, StaticPin},
        pkcs11::Pkcs11Token,
    };

    let TokenSpec::Pkcs11 { module, label } =
        spec.parse::<TokenSpec>().map_err(|e| e.to_string())?
    else {
        return Err(
            "with the simulated CA, --token takes pkcs11:MODULE[:LABEL] only: provisioning \
             would overwrite a card's 9A (give --ca with the card's own CA instead)"
                .into(),
        );
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
            let token = Pkcs11Token::open(&module, label.as_deref(), recording)
                .map_err(|e| e.to_string())?;
            let shared: renewal_client::client::https::SharedToken =
                Arc::new(Mutex::new(Box::new(token)));
            World::with_token(&s.ca, s.key, shared, pins, trace)
        });
        results.push(result);
    }
    Ok(results)
}

/// What an interop run against an external CA needs besides the scenarios.
pub struct ExternalRun {
    /// The CA.
    pub ca: ExternalCa,
    /// The token (`sim:FILE`, `piv-pcsc[:READER]`, `pkcs11:MODULE[:LABEL]`).
    pub token: TokenSpec,
    /// The container holding the certificate to renew.
    pub container: ContainerId,
    /// The protocols the CA speaks (others are skipped).
    pub modes: Vec<Mode>,
    /// The token's user PIN (wiped when the run is dropped).
    pub pin: zeroize::Zeroizing<String>,
    /// PIV management key (virtual card, PIV cards).
    pub management_key: ManagementKey,
}

/// Why a scenario cannot run against an external CA with this token, if it cannot.
pub fn not_applicable_external(
    scenario: &Scenario,
    run: &ExternalRun,
    key: KeyAlgorithm,
) -> Option<String> {
    if !run.modes.contains(&scenario.mode) {
        return Some(format!(
            "the CA is not declared to speak {} (--modes)",
            mode_name(scenario.mode)
        ));
    }
    if !scenario.ca.trim().is_empty() {
        return Some(
            "needs the simulated CA's rules or faults (an external CA decides for itself)".into(),
        );
    }
    if scenario.pin_policy != sim_card::state::PinPolicy::Once {
        // Giving the card's key another policy would change the user's card for good (and
        // every renewal after it: new keys are made like the old one).
        return Some(
            "needs a key of another PIN policy (the card's keys are what they are)".into(),
        );
    }
    if scenario.model != sim_card::state::CardModel::YubiKey57 {
        return Some("needs a virtual card of another model".into());
    }
    if scenario.protected_management_key {
        return Some("needs a card provisioned with a PIN-protected management key".into());
    }
    if scenario.touch != crate::matrix::Touch::Never {
        // Likewise a touch policy: the new key is made like the old one, for good.
        return Some(
            "needs a key of another touch policy (the card's keys are what they are)".into(),
        );
    }
    if scenario.key != key {
        return Some(format!(
            "needs a {:?} certificate; the one on the token is {key:?}",
            scenario.key
        ));
    }
    if run.token.is_sim() {
        if scenario.capacity != 24 {
            return Some("needs a card of a chosen capacity".into());
        }
        if scenario.pin != "123456" || scenario.pin_retries != 3 {
            return Some("would spend the card's PIN tries".into());
        }
        return None;
    }
    not_applicable(scenario).map(str::to_string)
}

/// Runs the applicable scenarios against an external CA, one after another on the token's
/// certificate in `run.container`. A virtual card's state goes back to its file after every
/// scenario, so the file always holds the certificate the CA last issued.
pub fn run_external(
    scenarios: &[Scenario],
    run: &ExternalRun,
    progress: impl Fn(usize, &str),
) -> Result<Vec<runner::Result>, String> {
    use renewal_client::{
        client::https::SharedToken,
        token::{
            Token,
            pin::{CountingPinSource, StaticPin},
            piv::PivToken,
        },
    };

    let card = match &run.token {
        TokenSpec::Sim(path) => {
            let state =
                sim_card::CardState::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(Arc::new(Mutex::new(sim_card::SimCard::new(
                sim_card::PivApplet::from_state(state),
            ))))
        }
        _ => None,
    };
    // A PIV card keeps the certificate in its slot; a PKCS#11 renewal moves it to the new
    // key's container.
    let fixed_slot = !matches!(run.token, TokenSpec::Pkcs11 { .. });
    let primary = Arc::new(Mutex::new(run.container.clone()));
    // One session per scenario, as a user's client would open: new PIN source, new trace.
    let open = |pins: Arc<CountingPinSource<StaticPin>>,
                trace: &trace::Trace|
     -> Result<SharedToken, String> {
        let recording = Arc::new(trace::RecordingPins {
            inner: pins,
            trace: trace.clone(),
        });
        let token: Box<dyn Token + Send> = match &run.token {
            TokenSpec::Sim(_) => {
                let card = card.as_ref().ok_or("no card")?;
                // A fresh session: the previous scenario's PIN does not carry over.
                {
                    let mut card = card.lock().map_err(|_| "card lock")?;
                    card.remove();
                    card.reinsert();
                }
                Box::new(PivToken::new(
                    trace::RecordingTransport {
                        inner: renewal_client::token::transport::SimTransport::new(Arc::clone(
                            card,
                        )),
                        trace: trace.clone(),
                    },
                    recording,
                    run.management_key.clone(),
                ))
            }
            TokenSpec::PivPcsc(reader) => open_pcsc(reader.as_deref(), recording, trace, run)?,
            TokenSpec::Pkcs11 { module, label } => {
                open_pkcs11(module, label.as_deref(), recording)?
            }
        };
        Ok(Arc::new(Mutex::new(token)))
    };
    // Before any scenario: the container holds a key we renew and a certificate from this CA.
    let key = {
        let token = open(
            Arc::new(CountingPinSource::new(StaticPin::new(&run.pin))),
            &trace::Trace::default(),
        )?;
        let containers = token
            .lock()
            .map_err(|_| "token lock")?
            .containers()
            .map_err(|e| e.to_string())?;
        let (holder, _) =
            crate::harness::certificate_from(&containers, &run.container, &run.ca.anchors)?;
        holder
            .algorithm
            .ok_or_else(|| format!("the key in {} is of no algorithm we renew", run.container))?
    };
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        progress(i, &s.name);
        if let Some(reason) = not_applicable_external(s, run, key) {
            results.push(runner::skipped(s, &reason));
            continue;
        }
        // PKCS#11 lists private objects only after the login: one prompt, always.
        let s = &Scenario {
            prompts: if fixed_slot { s.prompts } else { 1 },
            ..s.clone()
        };
        let result = runner::run_in(s, || {
            let pins = Arc::new(CountingPinSource::new(StaticPin::new(&run.pin)));
            let trace = trace::Trace::default();
            let token = open(pins.clone(), &trace)?;
            World::external(
                &run.ca,
                token,
                card.clone(),
                pins,
                trace,
                Arc::clone(&primary),
                fixed_slot,
            )
        });
        results.push(result);
        if let (Some(card), TokenSpec::Sim(path)) = (&card, &run.token) {
            let card = card.lock().map_err(|_| "card lock")?;
            card.state()
                .save(path)
                .map_err(|e| format!("saving {}: {e}", path.display()))?;
        }
    }
    Ok(results)
}

#[cfg(feature = "pcsc")]
fn open_pcsc(
    reader: Option<&str>,
    pins: Arc<dyn renewal_client::token::PinSource>,
    trace: &trace::Trace,
    run: &ExternalRun,
) -> Result<Box<dyn renewal_client::token::Token + Send>, String> {
    let transport = renewal_client::token::transport::PcscTransport::connect(reader)
        .map_err(|e| e.to_string())?;
    Ok(Box::new(renewal_client::token::piv::PivToken::new(
        trace::RecordingTransport {
            inner: transport,
            trace: trace.clone(),
        },
        pins,
        run.management_key.clone(),
    )))
}

#[cfg(not(feature = "pcsc"))]
fn open_pcsc(
    _: Option<&str>,
    _: Arc<dyn renewal_client::token::PinSource>,
    _: &trace::Trace,
    _: &ExternalRun,
) -> Result<Box<dyn renewal_client::token::Token + Send>, String> {
    Err("this conformance was built without PC/SC support: rebuild with `--features pcsc`".into())
}

#[cfg(feature = "pkcs11")]
fn open_pkcs11(
    module: &std::path::Path,
    label: Option<&str>,
    pins: Arc<dyn renewal_client::token::PinSource>,
) -> Result<Box<dyn renewal_client::token::Token + Send>, String> {
    Ok(Box::new(
        renewal_client::token::pkcs11::Pkcs11Token::open(module, label, pins)
            .map_err(|e| e.to_string())?,
    ))
}

#[cfg(not(feature = "pkcs11"))]
fn open_pkcs11(
    _: &std::path::Path,
    _: Option<&str>,
    _: Arc<dyn renewal_client::token::PinSource>,
) -> Result<Box<dyn renewal_client::token::Token + Send>, String> {
    Err(
        "this conformance was built without PKCS#11 support: rebuild with `--features pkcs11`"
            .into(),
    )
}
