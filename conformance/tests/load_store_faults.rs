//! The shared store fails and comes back under load: `conformance load` through two gateway
//! processes on one PostgreSQL database, the CA's state in the same cluster, while its faults
//! are injected one at a time — a server (the CA or a gateway) killed with SIGKILL and
//! restarted, the cluster crashed (`pg_ctl stop -m immediate`) and started again after an
//! outage, every client backend terminated (`pg_terminate_backend`). The run ends with no
//! violation: no serial twice, no certificate without its audit record or the reverse, every
//! installed certificate recorded, every card holding one valid certificate and no orphan.
//! The test runs its own throwaway cluster (`scripts/pg-temp.sh`; PostgreSQL from Debian,
//! required under `CI=true`). The 10-minute soak's figures are in `benches/README.md`.

#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, process::Command, time::Duration};

use conformance::load::{Cluster, LoadConfig, StoreFaults, run, sim_ca_next_to};
use renewal_client::client::Mode;

/// A cluster of the test's own, stopped and removed on drop.
struct Throwaway(PathBuf);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-temp.sh")
}

impl Throwaway {
    fn start() -> Option<Self> {
        let out = Command::new(script()).output().unwrap();
        if !out.status.success() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required under CI=true: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "SKIP: no PostgreSQL server ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        Some(Self(PathBuf::from(text.split_whitespace().next().unwrap())))
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.0).status();
    }
}

#[test]
fn renewals_through_two_gateways_survive_kills_store_crashes_and_terminated_backends() {
    let Some(throwaway) = Throwaway::start() else {
        return;
    };
    let cluster = Cluster::attach(&throwaway.0).unwrap();
    let config = LoadConfig {
        sim_ca: sim_ca_next_to(&std::env::current_exe().unwrap())
            .expect("sim-ca is not built next to the tests (cargo test --workspace builds it)"),
        clients: 3,
        duration: Duration::from_secs(10),
        kill_every: Some(Duration::from_secs(4)),
        mode: Mode::FullCmc,
        seed: 7,
        min_kills: 1,
        prefill: 0,
        ca_key: renewal_client::token::KeyAlgorithm::EcP256,
        gateways: 2,
        gateway_store: Some(cluster.fresh_database("load_gateways").unwrap()),
        ca_store: Some(cluster.fresh_database("load_ca").unwrap()),
        store_faults: StoreFaults {
            cluster: Some(throwaway.0.clone()),
            restart_every: Some(Duration::from_secs(4)),
            outage: Duration::from_secs(1),
            terminate_every: Some(Duration::from_secs(3)),
        },
        retries: renewal_client::client::processor::RetryPolicy::default().attempts,
    };
    let report = run(&config).unwrap();
    println!("{}", report.render());
    assert!(report.violations.is_empty(), "{}", report.render());
    assert!(report.kills >= 1, "{}", report.render());
    assert!(report.store_restarts >= 1, "{}", report.render());
    assert!(report.store_terminations >= 1, "{}", report.render());
    assert!(report.renewed >= 1, "{}", report.render());
    assert_eq!(
        report.attempts,
        report.renewed + report.rolled_back + report.recovered + report.pending,
        "{}",
        report.render()
    );
    // Every renewal the clients installed is in the CA's PostgreSQL store (checked above as
    // violations); the store holds at least those.
    assert!(report.certificates as u64 >= report.renewed);
    // A crashed cluster's CPU cannot be read: reported as such, not as zero.
    assert!(report.postgres_cpu.is_none());
    assert_eq!(report.footprints.len(), 3, "{}", report.render());
    assert!(cluster.running(), "the cluster was left down");
}
