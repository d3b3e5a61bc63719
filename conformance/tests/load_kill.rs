//! A small `conformance load`: concurrent renewals against `sim-ca serve` in another process,
//! killed with SIGKILL every ~0.8 s and restarted. Nothing is lost or doubled: every card ends
//! with one valid certificate, every installed certificate is in the CA's database with its
//! audit record, no serial twice, no audit record without its certificate.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use conformance::load::{LoadConfig, run, sim_ca_next_to};
use renewal_core::client::Mode;

fn config(mode: Mode, seed: u64) -> LoadConfig {
    let exe = std::env::current_exe().unwrap();
    LoadConfig {
        sim_ca: sim_ca_next_to(&exe)
            .expect("sim-ca is not built next to the tests (cargo test --workspace builds it)"),
        clients: 3,
        duration: Duration::from_secs(4),
        kill_every: Some(Duration::from_millis(800)),
        mode,
        seed,
        min_kills: 2,
    }
}

#[test]
fn renewals_survive_sigkill_of_the_ca_in_every_mode() {
    for (mode, seed) in [(Mode::FullCmc, 1), (Mode::SimpleReenroll, 2)] {
        let report = run(&config(mode, seed)).unwrap();
        println!("{mode:?}\n{}", report.render());
        assert!(report.violations.is_empty(), "{}", report.render());
        assert!(report.kills >= 2, "{}", report.render());
        assert!(report.renewed >= 1, "{}", report.render());
        // Certificates the CA issued whose answer a kill swallowed are in the database
        // (audited) but on no card: never the other way round.
        assert!(report.certificates as u64 >= report.renewed);
        assert_eq!(
            report.attempts,
            report.renewed + report.rolled_back + report.recovered + report.pending
        );
    }
}
