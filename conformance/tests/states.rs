//! The renewal states driven one at a time: the chain a renewal walks, a stop between any two
//! states (as a kill would leave it) recovered to one valid certificate, and a failure in one
//! effect — injected through [`Effects`] — handled by the state that asked for it.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use conformance::harness::World;
use renewal_client::{
    client::{
        Mode, ServiceAnswer, ServiceError,
        journal::Record,
        processor::{
            Driver, Effects, Finished, Next, RecoveryOutcome, RenewalError, RollbackCause, Start,
            State, Step, recover,
        },
    },
    cmc::{SignatureAlgorithm, Signer},
    token::{Container, ContainerId, KeyAlgorithm, TokenError},
};
use spki::SubjectPublicKeyInfoOwned;

/// Runs at most `limit` states; returns the names walked and how it ended (`None`: stopped).
fn walk(
    world: &World,
    mode: Mode,
    max_polls: u32,
    limit: usize,
) -> (Vec<&'static str>, Option<Finished>) {
    let mut service = world.service(mode).unwrap();
    let mut journal = world.journal().unwrap();
    let (context, sleep, crash) = world.config(mode, max_polls, None).into_parts();
    let mut driver = Driver::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        sleep,
        crash,
    );
    let mut names = Vec::new();
    let mut state = State::Start(Start);
    while names.len() < limit {
        names.push(state.name());
        match state.step(&context, &mut driver).unwrap() {
            Next::Continue(next) => state = next,
            Next::Finished(finished) => return (names, Some(finished)),
        }
    }
    (names, None)
}

const ISSUED: [&str; 8] = [
    "Start",
    "Connect",
    "Generate",
    "Build",
    "Submit",
    "Verify",
    "Install",
    "Supersede",
];

#[test]
fn an_issued_renewal_walks_the_chain_in_order() {
    for mode in [Mode::FullCmc, Mode::Cmc, Mode::SimpleReenroll] {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        let (names, finished) = walk(&world, mode, 0, usize::MAX);
        assert_eq!(names, ISSUED, "{mode:?}");
        assert!(
            matches!(finished, Some(Finished::Renewed { .. })),
            "{finished:?}"
        );
        world.check_invariant().unwrap();
    }
}

#[test]
fn a_pending_request_loops_on_submit_and_a_denial_goes_to_rollback() {
    let pending = "[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:2\"\n";
    let world = World::new(pending, KeyAlgorithm::EcP256).unwrap();
    let (names, finished) = walk(&world, Mode::FullCmc, 5, usize::MAX);
    assert_eq!(
        names,
        [
            "Start",
            "Connect",
            "Generate",
            "Build",
            "Submit",
            "Submit",
            "Submit",
            "Verify",
            "Install",
            "Supersede"
        ]
    );
    assert!(
        matches!(finished, Some(Finished::Renewed { .. })),
        "{finished:?}"
    );

    let world = World::new("[[rule]]\ndisposition = \"deny\"\n", KeyAlgorithm::EcP256).unwrap();
    let (names, finished) = walk(&world, Mode::FullCmc, 0, usize::MAX);
    assert_eq!(
        names,
        [
            "Start", "Connect", "Generate", "Build", "Submit", "RollBack"
        ]
    );
    let Some(Finished::RolledBack { deleted, reason }) = finished else {
        panic!("{finished:?}")
    };
    assert_eq!(deleted.len(), 1);
    assert!(
        matches!(reason, RollbackCause::Refused { .. }),
        "{reason:?}"
    );
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
}

/// Stopping after each state (the process killed there: the state is dropped, the journal
/// and the card stay) and recovering always ends with one valid certificate and no orphan:
/// back before the CA's certificate passed the checks, forward after.
#[test]
fn a_stop_between_any_two_states_is_recovered() {
    for stop_after in 1..ISSUED.len() {
        let world = World::new("", KeyAlgorithm::EcP256).unwrap();
        let (names, finished) = walk(&world, Mode::FullCmc, 0, stop_after);
        assert_eq!(names, ISSUED[..stop_after], "stopped after {stop_after}");
        assert!(finished.is_none());
        let outcome = recover(&world.token, &mut world.journal().unwrap()).unwrap();
        let generated = stop_after >= 3;
        let installed = stop_after >= 7;
        match (&outcome, installed) {
            (RecoveryOutcome::Completed { container }, true) => assert_eq!(container.0, "9a"),
            (RecoveryOutcome::RolledBack { deleted }, false) => {
                assert_eq!(
                    deleted.len(),
                    usize::from(generated),
                    "after {}",
                    names.join(",")
                );
            }
            _ => panic!("after {}: {outcome:?}", names.join(",")),
        }
        let cert = world.check_invariant().unwrap();
        assert_eq!(
            cert == world.old_cert,
            !installed,
            "after {}",
            names.join(",")
        );
        // A second recovery finds nothing to do.
        assert_eq!(
            recover(&world.token, &mut world.journal().unwrap()).unwrap(),
            RecoveryOutcome::Clean
        );
    }
}

/// Effects that pass through to the real driver, except one failure: the container listing
/// before key generation fails once (a transient card error).
struct FailListing<'a> {
    inner: Driver<'a>,
    listings: u32,
}

impl Effects for FailListing<'_> {
    fn containers(&mut self, step: Step) -> Result<Vec<Container>, RenewalError> {
        self.listings += 1;
        if step == Step::GenerateKey && self.listings == 2 {
            return Err(RenewalError::Card {
                step,
                source: TokenError::Card {
                    operation: "GET DATA",
                    sw: 0x6F00,
                },
            });
        }
        self.inner.containers(step)
    }
    fn generate(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &renewal_client::token::ContainerId,
    ) -> Result<Container, RenewalError> {
        self.inner.generate(algorithm, like)
    }
    fn attest(
        &mut self,
        id: &ContainerId,
    ) -> Result<renewal_client::cmc::attestation::KeyAttestation, RenewalError> {
        self.inner.attest(id)
    }
    fn signer(
        &self,
        id: &ContainerId,
        spki: SubjectPublicKeyInfoOwned,
        algorithm: SignatureAlgorithm,
    ) -> Box<dyn Signer + '_> {
        self.inner.signer(id, spki, algorithm)
    }
    fn install(&mut self, id: &ContainerId, certificate: &[u8]) -> Result<(), RenewalError> {
        self.inner.install(id, certificate)
    }
    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, RenewalError> {
        self.inner.supersede(old, new)
    }
    fn delete(&mut self, step: Step, id: &ContainerId) -> Result<(), RenewalError> {
        self.inner.delete(step, id)
    }
    fn warm_up(&mut self) -> Result<(), ServiceError> {
        self.inner.warm_up()
    }
    fn submit(&mut self, request: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        self.inner.submit(request)
    }
    fn pending_id(&self) -> Option<u64> {
        self.inner.pending_id()
    }
    fn resume_pending(&mut self, request: &[u8], id: u64) {
        self.inner.resume_pending(request, id)
    }
    fn record(&mut self, record: Record) -> Result<(), RenewalError> {
        self.inner.record(record)
    }
    fn wait(&mut self, duration: Duration) {
        self.inner.wait(duration)
    }
}

/// Without the listing before GENERATE nothing tells the card's own containers from a key it
/// made: the attempt ends with nothing deleted (the flow before the state machine treated
/// every container as new here, the old one included).
#[test]
fn a_failed_listing_before_generation_deletes_nothing() {
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let mut service = world.service(Mode::FullCmc).unwrap();
    let mut journal = world.journal().unwrap();
    let (context, sleep, crash) = world.config(Mode::FullCmc, 0, None).into_parts();
    let mut effects = FailListing {
        inner: Driver::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            sleep,
            crash,
        ),
        listings: 0,
    };
    let finished =
        renewal_client::client::processor::drive(State::Start(Start), &context, &mut effects)
            .unwrap();
    assert_eq!(
        finished,
        Finished::RolledBack {
            reason: RollbackCause::Card {
                step: Step::GenerateKey,
                detail: "card error during GET DATA: status 6F00".into()
            },
            deleted: vec![],
        }
    );
    drop(effects);
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
    assert!(matches!(journal.last(), Some(Record::RolledBack)));
}

/// A journal that says "install" while the card no longer has the new key (a card that lost
/// a write) is not reported as a completed renewal: recovery keeps the old certificate and
/// says nothing was completed.
#[test]
fn recovery_does_not_claim_a_renewal_whose_key_is_gone() {
    use renewal_client::client::processor::{CrashPoint, Renewal};
    let world = World::new("", KeyAlgorithm::EcP256).unwrap();
    let mut service = world.service(Mode::FullCmc).unwrap();
    let mut journal = world.journal().unwrap();
    let crashed = Renewal::new(
        world.token.clone(),
        &mut service,
        &mut journal,
        world.config(Mode::FullCmc, 0, Some(CrashPoint::InstallIntent)),
    )
    .run();
    assert!(matches!(
        crashed,
        Err(RenewalError::Crashed(CrashPoint::InstallIntent))
    ));
    let new = journal
        .current()
        .iter()
        .find_map(|r| match r {
            Record::Generated { container } => Some(ContainerId(container.clone())),
            _ => None,
        })
        .unwrap();
    world.token.lock().unwrap().delete(&new).unwrap();
    let outcome = recover(&world.token, &mut journal).unwrap();
    assert_eq!(outcome, RecoveryOutcome::RolledBack { deleted: vec![] });
    assert_eq!(world.check_invariant().unwrap(), world.old_cert);
}
