//! A small `conformance load`: concurrent renewals against `sim-ca serve` in another process,
//! killed with SIGKILL every ~0.8 s and restarted. Nothing is lost or doubled: every card ends
//! with one valid certificate, every installed certificate is in the CA's database with its
//! audit record, no serial twice, no audit record without its certificate.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use conformance::load::{LoadConfig, run, sim_ca_next_to};
use renewal_client::client::Mode;

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
        prefill: 0,
        ca_key: renewal_client::token::KeyAlgorithm::Rsa2048,
        gateways: 0,
        gateway_store: None,
        ca_store: None,
        store_faults: Default::default(),
        retries: renewal_client::client::processor::RetryPolicy::default().attempts,
    }
}

#[test]
fn a_run_without_kills_reports_latency_cpu_and_fsyncs_over_a_prefilled_store() {
    let mut config = config(Mode::FullCmc, 3);
    config.kill_every = None;
    config.duration = Duration::from_secs(2);
    config.prefill = 2_000;
    let report = run(&config).unwrap();
    println!("{}", report.render());
    assert!(report.violations.is_empty(), "{}", report.render());
    assert!(report.renewed >= 1, "{}", report.render());
    // The prefilled certificates are in the store beside the renewals, each with its record.
    assert!(report.certificates as u64 >= 2_000 + report.renewed);
    assert!(report.audit_records as u64 >= 2_000 + report.renewed);
    assert_eq!(report.latencies_us.len() as u64, report.renewed);
    let (p50, p99) = (report.latency(0.5).unwrap(), report.latency(0.99).unwrap());
    assert!(p50 <= p99 && !p50.is_zero());
    // Every renewal's decision was made durable: at least one fsync, never more than one per
    // write-locked request (here, at most a few per renewal).
    let fsyncs = report.fsyncs.expect("the server's metrics were read");
    assert!(fsyncs >= 1, "{}", report.render());
    assert!(fsyncs <= report.attempts * 4, "{}", report.render());
    assert!(!report.server_cpu.is_zero() && !report.client_cpu.is_zero());
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

/// The load through two gateway processes on one PostgreSQL database (through one on SQLite
/// without PostgreSQL outside CI): every renewal's certificate is in the CA's database with
/// its record, and the gateways' and the database's CPU are reported.
#[test]
fn a_run_through_gateways_keeps_every_invariant() {
    let mut config = config(Mode::FullCmc, 5);
    config.kill_every = None;
    config.duration = Duration::from_secs(2);
    match std::env::var("CARDRENEW_POSTGRES_URL") {
        Ok(url) => {
            let db = format!("cardrenew_load_{}", std::process::id());
            let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            pg.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
                .unwrap();
            pg.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
            config.gateways = 2;
            config.gateway_store = Some(format!("{}/{db}", url.rsplit_once('/').unwrap().0));
        }
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CARDRENEW_POSTGRES_URL is not set: PostgreSQL is required under CI=true"
            );
            eprintln!("no PostgreSQL (CARDRENEW_POSTGRES_URL): one gateway on SQLite");
            config.gateways = 1;
        }
    }
    let report = run(&config).unwrap();
    println!("{}", report.render());
    assert!(report.violations.is_empty(), "{}", report.render());
    assert!(report.renewed >= 1, "{}", report.render());
    assert_eq!(report.gateways, config.gateways);
    assert!(!report.gateway_cpu.is_zero(), "{}", report.render());
    assert_eq!(
        report.postgres_cpu.is_some(),
        config.gateway_store.is_some()
    );
    assert!(report.render().contains("gateways"));
    // Every server's footprint, warm and at the end: reported, and no descriptor piling up
    // beyond what the clients' concurrent connections hold (the long soak's figures are in
    // benches/README.md).
    assert_eq!(
        report.footprints.len(),
        1 + config.gateways,
        "{}",
        report.render()
    );
    for f in &report.footprints {
        assert!(f.warm.rss_kib > 0 && f.warm.fds > 0, "{}", f.name);
        assert!(
            f.peak.rss_kib >= f.end.rss_kib && f.peak.fds >= f.warm.fds,
            "{f:?}"
        );
        assert!(
            f.end.fds <= f.warm.fds + 4 * config.clients,
            "{}: {} -> {} descriptors",
            f.name,
            f.warm.fds,
            f.end.fds
        );
    }
}
