//! A whole renewal over loopback mutual TLS — virtual PIV card in-process, sim-ca, EST
//! fullcmc — and, in the same run, the peer: OpenSSL verifying the same kind of CMC request
//! (`openssl cms -verify`, one process per verification, so its startup is included).
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;

use conformance::{harness::World, matrix::default_matrix, runner};
use criterion::{Criterion, criterion_group, criterion_main};
use renewal_codec::{
    cmc::KeyAlgorithm,
    cmc::{RenewalParams, build_renewal_request},
    sample::Sample,
};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("renewal");
    group.sample_size(20);
    let scenario = default_matrix()
        .into_iter()
        .find(|s| s.name == "ca/issue/fullcmc")
        .unwrap();
    group.bench_function("whole renewal, EST fullcmc, P-256, loopback mTLS", |b| {
        b.iter(|| {
            let r = runner::run(&scenario, 1);
            assert!(r.passed());
        })
    });
    // Setting up the world (CA keys, TLS server, card provisioning) alone, to subtract.
    group.bench_function("world setup only", |b| {
        b.iter(|| World::new("", KeyAlgorithm::EcP256).unwrap())
    });

    // The peer: OpenSSL verifies both CMS signers of a request built by us.
    let dir = std::env::temp_dir().join(format!("cardrenew-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = Sample::deterministic().unwrap();
    let built = build_renewal_request(
        &sample.old_cert,
        &sample.old_key,
        &sample.new_key,
        &RenewalParams::random().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("req.der"), &built.der).unwrap();
    std::fs::write(
        dir.join("new.key"),
        sample.new_key.to_pkcs8_pem().unwrap().as_bytes(),
    )
    .unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-x509",
            "-days",
            "1",
            "-subj",
            "/CN=throwaway",
            "-key",
        ])
        .arg(dir.join("new.key"))
        .arg("-out")
        .arg(dir.join("new.pem"))
        .status();
    if made.is_ok_and(|s| s.success()) {
        group.bench_function("peer: openssl cms -verify (process incl. startup)", |b| {
            b.iter(|| {
                let ok = Command::new("openssl")
                    .args([
                        "cms",
                        "-verify",
                        "-inform",
                        "DER",
                        "-binary",
                        "-noverify",
                        "-out",
                        "/dev/null",
                        "-in",
                    ])
                    .arg(dir.join("req.der"))
                    .arg("-certfile")
                    .arg(dir.join("new.pem"))
                    .output()
                    .unwrap();
                assert!(ok.status.success());
            })
        });
        group.bench_function("peer: openssl version (process startup alone)", |b| {
            b.iter(|| Command::new("openssl").arg("version").output().unwrap())
        });
    }
    group.bench_function("ours: parse + verify the same request", |b| {
        b.iter(|| {
            renewal_codec::cmc::parse_request(&built.der, &Default::default())
                .unwrap()
                .verify()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
