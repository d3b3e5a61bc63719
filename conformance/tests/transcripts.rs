//! Transcripts of the canonical scenarios, snapshotted (insta): steps, a folded APDU summary,
//! PIN prompts and HTTP exchanges, in order. Card keys come from the seeded card RNG, so the
//! transcript is deterministic; each scenario is run twice to prove it before comparing.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use conformance::{matrix::default_matrix, runner};

fn transcript(name: &str) -> String {
    let scenario = default_matrix()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap();
    let first = runner::run(&scenario, 1);
    assert!(first.passed(), "{name}: {:?}", first.problem);
    let second = runner::run(&scenario, 1);
    assert_eq!(
        first.transcript, second.transcript,
        "{name}: the transcript is not deterministic"
    );
    format!(
        "scenario {name}: {:?}, {} PIN prompt(s)\n{}",
        first.observed.unwrap(),
        first.prompts,
        first.transcript
    )
}

#[test]
fn renewed_over_est_fullcmc() {
    insta::assert_snapshot!(transcript("ca/issue/fullcmc"));
}

#[test]
fn renewed_over_est_simplereenroll() {
    insta::assert_snapshot!(transcript("ca/issue/simplereenroll"));
}

#[test]
fn denied_and_rolled_back() {
    insta::assert_snapshot!(transcript("ca/deny/cmc"));
}

#[test]
fn pending_then_issued_on_the_second_poll() {
    insta::assert_snapshot!(transcript("ca/pending-poll-issued/fullcmc"));
}

#[test]
fn connection_dropped_after_the_request() {
    insta::assert_snapshot!(transcript("net/drop-after-read/fullcmc"));
}

#[test]
fn card_pulled_after_generating_then_recovered() {
    insta::assert_snapshot!(transcript("card/generate-pulled-after/fullcmc"));
}

#[test]
fn crash_after_install_then_recovered_forward() {
    insta::assert_snapshot!(transcript("crash/Installed/fullcmc"));
}
