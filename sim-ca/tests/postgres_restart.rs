//! The shared PostgreSQL store stops (`pg_ctl stop -m immediate`, as a crash) and comes back,
//! and its backend is terminated by an administrator (`pg_terminate_backend`):
//! while it is gone the CA and the gateway answer 503 + Retry-After (nothing decided, nothing
//! half written), and when it returns they reconnect by themselves and the same request is
//! decided — once. The test runs its own throwaway cluster (`scripts/pg-temp.sh`: PostgreSQL
//! from Debian, required under `CI=true`).

#![allow(clippy::unwrap_used)]

mod common;

use std::{path::PathBuf, process::Command};

use common::{Upstream, parse};
use renewal_codec::cmc::Outcome;
use sim_ca::store::{AuditOutcome, Store};

/// A cluster of our own: its directory, its URL; stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    url: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-temp.sh")
}

impl Cluster {
    fn start() -> Option<Self> {
        let out = Command::new(script()).output().ok()?;
        if !out.status.success() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is required under CI=true: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "SKIP: no PostgreSQL server binaries ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (dir, url) = text.split_once(' ')?;
        Some(Self {
            dir: PathBuf::from(dir),
            url: url.to_string(),
        })
    }

    /// `pg_ctl` on this cluster, as its owner.
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        common::pg::run("pg_ctl", &all);
    }

    fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    fn restart(&self) {
        let options = format!(
            "-c listen_addresses= -k {} -c max_connections=200",
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-w", "-o", &options, "start"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

#[test]
fn the_store_stops_and_comes_back_503_meanwhile_then_decided_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    // The simulated CA on the cluster, a gateway in front of it on the same cluster.
    let upstream = Upstream::start("");
    let ca = {
        let clock = sim_ca::clock::Clock::fixed(common::now());
        std::sync::Arc::new(
            sim_ca::Ca::new(
                upstream.ca.authority().duplicate().unwrap(),
                Store::connect(&cluster.url).unwrap(),
                &sim_ca::scenario::Scenario::default(),
                clock,
            )
            .unwrap(),
        )
    };
    let user = upstream.user();
    let first = ca.handle_cmc(&user.request(), user.old_cert.der());
    assert_eq!(parse(&first.body).outcome, Outcome::Issued);

    cluster.crash();
    let request = user.request_for_another_key();
    let reply = ca.handle_cmc(&request, user.old_cert.der());
    let failure = reply.upstream.expect("a 503 while the store is gone");
    assert_eq!((failure.status, failure.retry_after.is_some()), (503, true));
    assert!(reply.body.is_empty());
    // Still gone: still a 503 (no decision cached anywhere).
    assert!(
        ca.handle_cmc(&request, user.old_cert.der())
            .upstream
            .is_some()
    );

    cluster.restart();
    let reply = ca.handle_cmc(&request, user.old_cert.der());
    assert_eq!(
        parse(&reply.body).outcome,
        Outcome::Issued,
        "{:?}",
        reply.upstream
    );
    let again = ca.handle_cmc(&request, user.old_cert.der());
    assert_eq!(
        parse(&again.body).certificates,
        parse(&reply.body).certificates
    );
    let issued = ca
        .counters()
        .iter()
        .find(|(n, _)| n == "issued")
        .map_or(0, |(_, v)| *v);
    assert_eq!(issued, 2, "one certificate per request");
    assert!(
        ca.audit_trail()
            .iter()
            .all(|r| r.outcome != AuditOutcome::Refused)
    );

    // The CA's backend killed by an administrator (`pg_terminate_backend`): the request that
    // finds its connection gone is a 503, the next reconnects and is decided — once.
    let mut admin = postgres::Client::connect(&cluster.url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .unwrap();
    assert!(!killed.is_empty(), "no backend to terminate");
    let request = user.request_for_another_key();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let reply = ca.handle_cmc(&request, user.old_cert.der());
        let done = reply.upstream.is_none();
        answers.push(reply);
        if done {
            break;
        }
    }
    let last = answers.last().unwrap();
    assert_eq!(parse(&last.body).outcome, Outcome::Issued);
    assert!(
        answers[..answers.len() - 1]
            .iter()
            .all(|r| r.upstream.as_ref().is_some_and(|f| f.status == 503)),
        "before the reconnection: 503s only"
    );
    let issued = ca
        .counters()
        .iter()
        .find(|(n, _)| n == "issued")
        .map_or(0, |(_, v)| *v);
    assert_eq!(issued, 3);
}
