//! The state database's disk fills. A decision that cannot be written is not a decision: the
//! CA and the gateway answer 503 with Retry-After (never a signed refusal the client would roll
//! back on), write nothing half, and decide the same request once there is room again. Two
//! ways to fill the disk: the database's size quota (`Store::limit_size`, SQLite's
//! max_page_count — always), and a real filesystem that fills: a 1 MiB tmpfs mounted by the
//! test, when this machine lets a test mount one.

#![allow(clippy::unwrap_used)]

mod common;

use sim_ca::store::Endpoint;
use std::process::Command;

use common::{Upstream, parse};
use renewal_codec::cmc::Outcome;
use sim_ca::{Ca, service::SimpleReply, store::Store};

/// Caps the store at its size and fills what is left of its pages, as a full disk does.
fn fill_to_the_cap(store: &Store) {
    store.limit_size(Some(store.size().unwrap())).unwrap();
    let mut i = 0u64;
    while store
        .first_sighting(sim_ca::store::Sighting::Nonce, &format!("{i:0>64}"), 0)
        .is_ok()
    {
        i += 1;
        assert!(i < 1_000_000, "the quota does not bite");
    }
}

fn issued(ca: &Ca) -> i64 {
    ca.counters()
        .iter()
        .find(|(n, _)| n == "issued")
        .map_or(0, |(_, v)| *v)
}

/// The same request is refused with 503 + Retry-After while the store is full, and renews
/// once it is not; nothing is issued meanwhile and the database stays intact.
fn full_then_freed(ca: &Ca, fill: impl FnOnce(), free: impl FnOnce()) {
    let user = common::Client::new(ca);
    let before = issued(ca);
    fill();
    let request = user.request();
    let reply = ca.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    let failure = reply.upstream.expect("a 503, not a decision");
    assert_eq!((failure.status, failure.retry_after.is_some()), (503, true));
    assert!(reply.body.is_empty(), "nothing signed");
    assert!(failure.text.contains("full"), "{}", failure.text);
    let built = renewal_codec::cmc::build_renewal_request(
        &user.old_cert,
        &user.old_key,
        &renewal_codec::cmc::SoftwareKey::generate_p256().unwrap(),
        &common::Client::params(),
    )
    .unwrap();
    let (reply, _) = ca.handle_simple(&built.pkcs10_der, user.old_cert.der());
    assert!(
        matches!(&reply, SimpleReply::Unavailable(f) if f.status == 503),
        "{reply:?}"
    );
    assert_eq!(issued(ca), before, "issued while full");
    free();
    assert!(
        ca.with_store(|s| s.intact()).unwrap(),
        "the database is damaged"
    );
    let reply = ca.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);
    assert_eq!(issued(ca), before + 1);
}

#[test]
fn a_full_quota_is_a_503_and_the_same_request_renews_once_there_is_room() {
    let ca = common::ca();
    // Warm the database up (tables, a first renewal) so the quota bites on the decision.
    let first = common::Client::new(&ca);
    ca.handle_cmc(&first.request(), first.old_cert.der());
    full_then_freed(
        &ca,
        || ca.with_store(fill_to_the_cap),
        || ca.with_store(|s| s.limit_size(None)).unwrap(),
    );
}

#[test]
fn through_the_gateway_its_full_store_is_a_503_too() {
    let upstream = Upstream::start("");
    let store = Store::in_memory().unwrap();
    let gateway = upstream.gateway_local(store);
    let user = upstream.user();
    let warm = gateway.handle_cmc_at(Endpoint::FullCmc, &user.request(), user.old_cert.der());
    assert_eq!(parse(&warm.body).outcome, Outcome::Issued);
    gateway.with_store(fill_to_the_cap);
    let request = user.request_for_another_key();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    let failure = reply
        .upstream
        .unwrap_or_else(|| panic!("a 503, got {:?}", parse(&reply.body).status_string));
    assert_eq!(failure.status, 503, "{}", failure.text);
    gateway.with_store(|s| s.limit_size(None)).unwrap();
    let reply = gateway.handle_cmc_at(Endpoint::FullCmc, &request, user.old_cert.der());
    assert_eq!(parse(&reply.body).outcome, Outcome::Issued);
}

/// A real filesystem that fills: the CA's database on a 1 MiB tmpfs, the rest taken by a
/// file; deleting the file frees it.
#[test]
fn a_full_filesystem_is_a_503_and_the_same_request_renews_once_freed() {
    let dir = std::env::temp_dir().join(format!("sim-ca-disk-full-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        // Mounting needs privileges a sandbox may not grant; the quota test above fills the
        // database the same way SQLite sees a full disk.
        eprintln!("NOTE: no tmpfs here (mount refused): the quota test stands for this one");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(dir.clone());
    let clock = sim_ca::clock::Clock::fixed(common::now());
    let ca = Ca::new(
        sim_ca::authority::Authority::generate_with(
            clock.now(),
            renewal_codec::cmc::KeyAlgorithm::EcP256,
        )
        .unwrap(),
        Store::open(&dir.join("ca.db")).unwrap(),
        &sim_ca::scenario::Scenario::default(),
        clock,
    )
    .unwrap();
    let first = common::Client::new(&ca);
    ca.handle_cmc(&first.request(), first.old_cert.der());
    let filler = dir.join("filler");
    full_then_freed(
        &ca,
        || {
            // Fill what is left (the write stops at ENOSPC).
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 4096];
            while f.write_all(&chunk).is_ok() {}
            let _ = f.sync_all();
        },
        || std::fs::remove_file(&filler).unwrap(),
    );
}
