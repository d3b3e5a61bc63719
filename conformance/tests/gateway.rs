//! The renewal gateway in the client's path: `renew` → gateway → upstream sim-ca. The default
//! matrix keeps every expected outcome with the dispositions and faults happening at the
//! upstream, and random upstream faults never leave a certificate on a card that the upstream
//! did not record and audit (no silent issuance).
//!
//! Every world in this binary goes through a gateway: each scenario and world says so itself
//! (`Scenario::gateway`, `World::routed`).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use conformance::{
    harness::{GatewayRoute, World},
    matrix::{Scenario, default_matrix_via},
    runner,
};
use proptest::prelude::*;
use renewal_client::{
    client::{
        Mode,
        processor::{CrashPoint, Renewal, RenewalError, RenewalOutcome, recover},
    },
    token::KeyAlgorithm,
};
use sim_ca::{gateway::upstream::CmcProtocol, store::AuditOutcome};
use sim_card::{CardConfig, PivApplet};

fn failures(matrix: &[conformance::matrix::Scenario]) -> Vec<String> {
    matrix
        .iter()
        .map(|s| runner::run(s, 1))
        .filter(|r| !r.passed())
        .map(|r| format!("{}: {}", r.name, r.problem.unwrap_or_default()))
        .collect()
}

/// The whole matrix with EST fullcmc upstream, all four modes, simplereenroll included
/// (forwarded as the RA's re-enrollment in CMC): every scenario as stated.
#[test]
fn the_default_matrix_runs_green_through_a_gateway_to_an_est_fullcmc_upstream() {
    let matrix = default_matrix_via(Some(GatewayRoute::Network(CmcProtocol::Fullcmc)));
    assert!(matrix.len() >= 200);
    assert!(matrix.iter().all(|s| s.gateway.is_some()));
    let failed = failures(&matrix);
    assert!(failed.is_empty(), "fullcmc upstream: {failed:#?}");
}

/// The CA, network and ADCS scenarios of the matrix through the gateway over `route`. One test
/// per route, so that the routes run side by side (each is a minute of scenarios).
fn the_ca_network_and_adcs_scenarios_run_green_via(route: GatewayRoute) {
    let subset: Vec<Scenario> = default_matrix_via(Some(route))
        .into_iter()
        .filter(|s| {
            s.name.starts_with("ca/") || s.name.starts_with("net/") || s.name.starts_with("adcs/")
        })
        .collect();
    assert!(subset.len() >= 60);
    assert!(subset.iter().all(|s| s.gateway.is_some()));
    let failed = failures(&subset);
    assert!(failed.is_empty(), "{route:?}: {failed:#?}");
}

/// RFC 5273 (CMC over HTTP) to the upstream.
#[test]
fn the_ca_network_and_adcs_scenarios_run_green_through_a_gateway_to_an_rfc5273_upstream() {
    the_ca_network_and_adcs_scenarios_run_green_via(GatewayRoute::Network(CmcProtocol::Cmc));
}

/// MS-WSTEP to the upstream's CES, pending requests collected with QueryTokenStatus.
#[test]
fn the_ca_network_and_adcs_scenarios_run_green_through_a_gateway_to_a_ces_upstream() {
    the_ca_network_and_adcs_scenarios_run_green_via(GatewayRoute::Network(CmcProtocol::Ces));
}

/// The simulated authority in-process behind the gateway (no upstream socket).
#[test]
fn the_ca_network_and_adcs_scenarios_run_green_through_a_gateway_to_an_in_process_authority() {
    the_ca_network_and_adcs_scenarios_run_green_via(GatewayRoute::InProcess);
}

/// What the upstream may do to a forwarded request: a disposition or a transport fault.
fn upstream_rule() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "disposition = \"issue\"",
        "disposition = \"deny\"",
        "disposition = \"error\"\nhresult = 0x80094006",
        "disposition = \"pending\"\nresolve = \"poll:1\"",
        "disposition = \"pending\"\nresolve = \"poll:1\"\nto = \"denied\"",
        "disposition = \"revoked\"",
        "disposition = \"issued-out-of-band\"",
        "fault = \"drop-before-read\"",
        "fault = \"drop-after-read\"",
        "fault = \"http:500\"",
        "fault = \"http:503\"",
        "fault = \"malformed-body\"",
        "fault = \"wrong-content-type\"",
        "fault = \"truncated\"",
        "fault = \"wrong-key-certificate\"",
        "fault = \"wrong-signer\"",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Attempts on one card through the gateway, each request meeting a random upstream rule
    /// (and sometimes a crash and recovery): whatever certificate the card ends with is the
    /// original one or one the upstream recorded and audited as issued; every certificate
    /// the gateway recorded, the upstream recorded too.
    #[test]
    fn upstream_faults_never_issue_silently(
        rules in prop::collection::vec(upstream_rule(), 1..4),
        mode in prop::sample::select(Mode::ALL.to_vec()),
        crash in prop::option::weighted(0.2, prop::sample::select(CrashPoint::ALL.to_vec())),
    ) {
        let ca: String = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| format!("[[rule]]\nrequest = {}\n{rule}\n", i + 1))
            .collect();
        let world =
            World::routed(
                &ca,
                KeyAlgorithm::EcP256,
                PivApplet::new(&CardConfig::default()).unwrap(),
                "123456",
                Some(GatewayRoute::Network(CmcProtocol::Fullcmc)),
            )
            .unwrap();
        let upstream = world.ca.clone().unwrap();
        let gateway = world.gateway.clone().unwrap();
        let original = world.old_cert.clone();
        for attempt in 0..rules.len() {
            let mut service = world.service(mode).unwrap();
            let mut journal = world.journal().unwrap();
            let crash = if attempt == 0 { crash } else { None };
            let run = Renewal::new(
                world.token.clone(),
                &mut service,
                &mut journal,
                world.config(mode, 3, crash),
            )
            .run();
            if matches!(run, Err(RenewalError::Crashed(_) | RenewalError::Card { .. })) {
                recover(&world.token, &mut journal).unwrap();
            }
            let held = world
                .check_invariant()
                .map_err(|e| TestCaseError::fail(format!("{rules:?} {mode:?}: {e}")))?;
            if held != original {
                let serial = sim_ca::policy::serial_text(held.value());
                let recorded = upstream.with_store(|s| s.certificate(&serial)).unwrap();
                prop_assert_eq!(recorded.as_deref(), Some(held.der()), "the card's certificate is not recorded upstream");
                prop_assert!(
                    upstream.audit_trail().iter().any(|r| r.serial.as_deref() == Some(serial.as_str())
                        && matches!(r.outcome, AuditOutcome::Issued | AuditOutcome::IssuedRevoked | AuditOutcome::ReplayAnswered)),
                    "no upstream audit record issues {}", serial
                );
            }
        }
        let at_gateway = gateway.with_store(|s| s.certificates()).unwrap();
        for (serial, _, _) in at_gateway {
            prop_assert!(upstream.with_store(|s| s.certificate(&serial)).unwrap().is_some(),
                "the gateway recorded {} which the upstream did not", serial);
        }
    }
}

/// Through a gateway, a CA whose template now adds a purpose (serverAuth): the gateway does
/// not deliver what it issues (502), the client re-sends the same request, and the gateway
/// tells it the request was decided and its certificate not delivered — a refusal, not one
/// more 502 — without forwarding it again. The attempt ends there (an agent waits as after a
/// refusal instead of retrying by minutes), the card untouched, one certificate issued.
#[test]
fn a_certificate_the_gateway_does_not_deliver_ends_the_attempt_as_a_refusal() {
    let scenario = format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\n\
         extended_key_usage = [\"clientAuth\", \"smartcardLogon\", \"serverAuth\"]\n",
        renewal_client::sample::SAMPLE_TEMPLATE_OID
    );
    for (mode, route) in [
        (Mode::FullCmc, GatewayRoute::InProcess),
        (Mode::FullCmc, GatewayRoute::Network(CmcProtocol::Fullcmc)),
        (
            Mode::SimpleReenroll,
            GatewayRoute::Network(CmcProtocol::Fullcmc),
        ),
    ] {
        let world = World::routed(
            &scenario,
            KeyAlgorithm::EcP256,
            PivApplet::new(&CardConfig::default()).unwrap(),
            "123456",
            Some(route),
        )
        .unwrap();
        let mut service = world.service(mode).unwrap();
        let mut journal = world.journal().unwrap();
        let outcome = Renewal::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(mode, 0, None),
        )
        .run()
        .unwrap();
        let RenewalOutcome::RolledBack { reason } = &outcome else {
            panic!("{mode:?} {route:?}: {outcome:?}");
        };
        assert_eq!(reason.kind(), "refused", "{mode:?} {route:?}: {reason}");
        assert!(
            reason.to_string().contains("not delivered"),
            "{mode:?} {route:?}: {reason}"
        );
        assert_eq!(world.check_invariant().unwrap(), world.old_cert);
        let upstream = world.ca.clone().unwrap();
        let issued = upstream
            .audit_trail()
            .iter()
            .filter(|r| r.outcome == AuditOutcome::Issued)
            .count();
        assert_eq!(issued, 1, "{mode:?} {route:?}");
    }
}
