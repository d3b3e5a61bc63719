//! Runs one scenario against the simulators and judges it.

use std::time::Instant;

use renewal_client::client::processor::{
    RecoveryOutcome, Renewal, RenewalError, RenewalOutcome, recover,
};
use sim_card::{CardConfig, FaultPlan, Rule};

use crate::{
    harness::World,
    matrix::{Expected, Scenario},
};

/// What happened.
#[derive(Clone, Debug)]
pub struct Result {
    /// The scenario's name.
    pub name: String,
    /// Expected outcome.
    pub expected: Expected,
    /// Observed outcome (None: the run could not be classified).
    pub observed: Option<Expected>,
    /// PIN prompts.
    pub prompts: usize,
    /// Containers before and after.
    pub containers: (usize, usize),
    /// Wall time in milliseconds (reported, never asserted).
    pub millis: u128,
    /// Why it failed, when it did.
    pub problem: Option<String>,
    /// What happened, in order (folded runs of identical card exchanges).
    pub trace: Vec<(crate::trace::Event, usize)>,
    /// The same as text.
    pub transcript: String,
    /// Why the scenario did not run (interop mode: it needs something the real system
    /// cannot do).
    pub skipped: Option<String>,
}

impl Result {
    /// Whether the scenario behaved as stated.
    pub fn passed(&self) -> bool {
        self.problem.is_none()
    }
}

/// Runs `scenario` against the virtual card with card RNG `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> Result {
    run_in(scenario, || {
        let card = CardConfig {
            capacity: scenario.capacity,
            retries: scenario.pin_retries,
            seed,
            ..CardConfig::default()
        };
        let mut applet = sim_card::PivApplet::new(&card).map_err(|e| e.to_string())?;
        if scenario.protected_management_key {
            // As ykman's `--generate --protect` leaves a card: a management key nobody knows,
            // stored under the PIN. Only a client that reads it there gets past GENERATE.
            let key: Vec<u8> = (0..24u8)
                .map(|i| i.wrapping_mul(37) ^ (seed as u8))
                .collect();
            applet.state_mut().management_key = sim_card::state::Secret::new(key);
            applet.protect_management_key();
        }
        World::routed(
            &scenario.ca,
            scenario.key,
            applet,
            scenario.pin,
            scenario.gateway,
        )
    })
}

/// A scenario recorded as not run, with the reason.
pub fn skipped(scenario: &Scenario, reason: &str) -> Result {
    Result {
        name: scenario.name.clone(),
        expected: scenario.expected,
        observed: None,
        prompts: 0,
        containers: (0, 0),
        millis: 0,
        problem: None,
        trace: Vec::new(),
        transcript: String::new(),
        skipped: Some(reason.to_string()),
    }
}

/// Runs `scenario` in the world `build` makes (the virtual card, or a real token).
pub fn run_in(
    scenario: &Scenario,
    build: impl FnOnce() -> std::result::Result<World, String>,
) -> Result {
    let started = Instant::now();
    let mut result = Result {
        name: scenario.name.clone(),
        expected: scenario.expected,
        observed: None,
        prompts: 0,
        containers: (0, 0),
        millis: 0,
        problem: None,
        trace: Vec::new(),
        transcript: String::new(),
        skipped: None,
    };
    let mut recorded = None;
    let outcome = (|| -> std::result::Result<(Expected, usize, usize, usize), String> {
        let mut world = build()?;
        world.attest = scenario.attest;
        if scenario.pin_policy != sim_card::state::PinPolicy::Once
            && let Some(card) = &world.card
        {
            let mut card = card.lock().map_err(|_| "card lock")?;
            let key = card
                .applet_mut()
                .state_mut()
                .keys
                .get_mut("9a")
                .ok_or("no key in 9A to give a PIN policy")?;
            key.pin_policy = scenario.pin_policy;
        }
        if scenario.model != sim_card::state::CardModel::YubiKey57
            && let Some(card) = &world.card
        {
            let mut card = card.lock().map_err(|_| "card lock")?;
            card.applet_mut().state_mut().model = scenario.model;
        }
        if scenario.touch != crate::matrix::Touch::Never
            && let Some(card) = &world.card
        {
            use crate::matrix::Touch;
            use sim_card::touch::{TouchPolicy, TouchSensor};
            let mut card = card.lock().map_err(|_| "card lock")?;
            let (policy, sensor, timeout_ms) = match scenario.touch {
                Touch::Given { policy, after_ms } => (
                    policy,
                    TouchSensor::automatic(std::time::Duration::from_millis(after_ms)),
                    sim_card::touch::DEFAULT_TIMEOUT.as_millis() as u64,
                ),
                Touch::NeverComes { timeout_ms } => {
                    (TouchPolicy::Always, TouchSensor::manual(), timeout_ms)
                }
                Touch::Never => (TouchPolicy::Never, TouchSensor::manual(), 0),
            };
            let applet = card.applet_mut();
            applet.set_touch_sensor(sensor);
            let state = applet.state_mut();
            state.touch_timeout_ms = timeout_ms;
            state
                .keys
                .get_mut("9a")
                .ok_or("no key in 9A to give a touch policy")?
                .touch_policy = policy;
        }
        let before = world
            .token
            .lock()
            .map_err(|_| "lock")?
            .containers()
            .map_err(|e| e.to_string())?
            .len();
        world.set_faults(FaultPlan::new(
            scenario
                .card_faults
                .iter()
                .map(|&(kind, nth, fault)| Rule { kind, nth, fault })
                .collect(),
        ));
        recorded = Some(world.trace.clone());
        let mut service = world.traced_service(scenario.mode)?;
        let mut journal = world.journal()?;
        let run = Renewal::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(scenario.mode, 3, scenario.crash),
        )
        .run();
        // The card comes back and faults stop before anything is judged.
        if let Some(Ok(mut card)) = world.card.as_ref().map(|c| c.lock()) {
            if card.is_removed() {
                card.reinsert();
            }
            card.set_faults(FaultPlan::default());
        }
        let observed = match run {
            Ok(RenewalOutcome::Renewed { .. }) => Expected::Renewed,
            Ok(RenewalOutcome::RolledBack { .. }) => Expected::RolledBack,
            Ok(RenewalOutcome::Pending) => Expected::Pending,
            Err(RenewalError::Crashed(_) | RenewalError::Card { .. }) => {
                match recover(&world.token, &mut journal).map_err(|e| e.to_string())? {
                    RecoveryOutcome::Completed { .. } => Expected::RecoveredCompleted,
                    RecoveryOutcome::RolledBack { .. } => Expected::RecoveredRolledBack,
                    other => return Err(format!("recovery ended {other:?}")),
                }
            }
            Err(e) => return Err(e.to_string()),
        };
        let listed = world
            .token
            .lock()
            .map_err(|_| "lock")?
            .containers()
            .map_err(|e| e.to_string())?;
        let after = listed.len();
        // The invariant.
        match observed {
            Expected::Pending => {
                let ours: Vec<_> = listed
                    .into_iter()
                    .filter(|c| !world.baseline.contains(&c.id))
                    .map(|c| c.id)
                    .collect();
                if world.ca.is_none() {
                    // An external CA left the request pending: the new key waits for a journal
                    // that goes with this run. Abandon the request rather than leave an orphan.
                    let primary = world.primary();
                    let mut token = world.token.lock().map_err(|_| "lock")?;
                    for id in ours.iter().filter(|id| **id != primary) {
                        token
                            .delete(id)
                            .map_err(|e| format!("abandoning the pending key {id}: {e}"))?;
                    }
                } else if ours.len() != 2 {
                    return Err(format!(
                        "pending: expected the old and the new container, found {ours:?}"
                    ));
                }
            }
            _ => {
                let cert = world.check_invariant()?;
                let renewed = matches!(observed, Expected::Renewed | Expected::RecoveredCompleted);
                if renewed == (cert == world.old_cert) {
                    return Err(if renewed {
                        "renewed but the old certificate is still in 9a".into()
                    } else {
                        "rolled back but the old certificate is gone".into()
                    });
                }
            }
        }
        let prompts = world.pins.count();
        // A real token is left as it was found: whatever this scenario created goes (unless
        // it is the user's renewed certificate from their own CA).
        if world.disposable {
            let mut token = world.token.lock().map_err(|_| "lock")?;
            let ours: Vec<_> = token
                .containers()
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|c| !world.baseline.contains(&c.id))
                .collect();
            for c in ours {
                token
                    .delete(&c.id)
                    .map_err(|e| format!("cleaning up {}: {e}", c.id))?;
            }
        }
        Ok((observed, before, after, prompts))
    })();
    result.millis = started.elapsed().as_millis();
    if let Some(trace) = recorded {
        result.trace = trace.folded();
        result.transcript = trace.transcript();
    }
    match outcome {
        Ok((observed, before, after, prompts)) => {
            result.observed = Some(observed);
            result.containers = (before, after);
            result.prompts = prompts;
            if observed != scenario.expected {
                result.problem = Some(format!(
                    "expected {}, observed {observed}",
                    scenario.expected
                ));
            } else if prompts != scenario.prompts {
                result.problem = Some(format!(
                    "expected {} PIN prompt(s), counted {prompts}",
                    scenario.prompts
                ));
            }
        }
        Err(e) => result.problem = Some(e),
    }
    result
}
