//! `renew --mode cmp` against a CMP server nobody here wrote: OpenSSL's `openssl cmp` mock
//! server (plain HTTP, as RFC 6712 allows for signed messages; the one connection kept alive,
//! since OpenSSL 3.0's server forgets a transaction when its connection closes). A virtual card
//! renews: OpenSSL verifies the card's protection (old key) and proof of possession (new key)
//! and answers. Its mock answers a key update with the certificate being updated (`-rsp_cert`
//! can only be a fixed certificate), which certifies the old key, not the new one: the client
//! refuses it, rejects it in certConf — which OpenSSL acknowledges — and rolls back, so nothing
//! on the card changes. Required under `CI=true`; skipped with the reason elsewhere.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use conformance::harness::World;
use renewal_client::{
    client::{
        Mode,
        processor::{Renewal, RenewalOutcome, RollbackCause},
    },
    token::KeyAlgorithm,
};

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

#[test]
fn openssl_verifies_the_cards_key_update_and_its_certconf_and_the_card_is_unchanged() {
    if !test_kit::openssl_cmp_present() {
        return;
    }
    for key in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
        let world = World::new("", key).unwrap();
        let ca = world.ca.as_ref().unwrap();
        let dir = test_kit::temp_dir("renew-openssl-cmp");
        let issuing = &ca.authority().issuing;
        std::fs::write(dir.join("srv.pem"), pem("CERTIFICATE", issuing.cert.der())).unwrap();
        std::fs::write(
            dir.join("srv.key"),
            issuing.key.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        let chain: String = world
            .anchors()
            .iter()
            .map(|c| pem("CERTIFICATE", c.der()))
            .collect();
        std::fs::write(dir.join("chain.pem"), chain).unwrap();
        std::fs::write(
            dir.join("old.pem"),
            pem("CERTIFICATE", world.old_cert.der()),
        )
        .unwrap();
        let port = test_kit::free_port();
        let _server = test_kit::Served(
            Command::new("openssl")
                .args(["cmp", "-port", &port.to_string(), "-max_msgs", "2"])
                .args(["-srv_cert", "srv.pem", "-srv_key", "srv.key"])
                .args(["-srv_trusted", "chain.pem", "-rsp_cert", "old.pem"])
                .args(["-verbosity", "7"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        assert!(
            test_kit::wait_for_port(port, Duration::from_secs(30)),
            "openssl cmp did not listen"
        );
        let log = || std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let mut service = world
            .service_at(&format!("http://127.0.0.1:{port}/pkix/"), Mode::Cmp)
            .unwrap();
        let mut journal = world.journal().unwrap();
        let outcome = Renewal::new(
            world.token.clone(),
            &mut service,
            &mut journal,
            world.config(Mode::Cmp, 0, None),
        )
        .run()
        .unwrap();
        // The certificate OpenSSL sent certifies the old key: refused, the new key deleted.
        let RenewalOutcome::RolledBack {
            reason: RollbackCause::BadAnswer(why),
            ..
        } = &outcome
        else {
            panic!("{key:?}: {outcome:?}\n{}", log());
        };
        assert!(why.contains("new key"), "{why}");
        assert_eq!(world.check_invariant().unwrap(), world.old_cert);
        assert_eq!(world.pins.count(), 1);
        // OpenSSL accepted the kur (protection and POP verified) and the certConf.
        drop(service);
        let log = log();
        assert!(log.contains("received KUR"), "{key:?}: {log}");
        assert!(log.contains("sending KUP"), "{key:?}: {log}");
        assert!(log.contains("received CERTCONF"), "{key:?}: {log}");
        assert!(log.contains("sending PKICONF"), "{key:?}: {log}");
        assert!(!log.contains("error"), "{key:?}: {log}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
