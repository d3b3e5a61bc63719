//! CMC codec benchmarks: build+sign (P-256, RSA-2048), encode only (signatures precomputed),
//! parse, parse+verify, and parse+verify of a real certenroll request.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use renewal_core::{
    cmc::{
        DigestAlgorithm, Limits, RenewalParams, SignError, SignatureAlgorithm, Signer, SoftwareKey,
        build_renewal_request, parse_request,
    },
    sample::{KeyKind, Sample},
};
use spki::SubjectPublicKeyInfoOwned;

fn params() -> RenewalParams {
    RenewalParams {
        template: None,
        transaction_id: 7,
        sender_nonce: vec![7; 16],
        digest: DigestAlgorithm::Sha256,
    }
}

/// A signer that returns a signature computed once: isolates the encoding cost.
struct Precomputed {
    spki: SubjectPublicKeyInfoOwned,
    algorithm: SignatureAlgorithm,
    signature: Vec<u8>,
}

impl Precomputed {
    fn of(key: &SoftwareKey) -> Self {
        Self {
            spki: key.public_key().clone(),
            algorithm: key.algorithm(),
            signature: key.sign(b"any message").unwrap(),
        }
    }
}

impl Signer for Precomputed {
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.signature.clone())
    }
}

fn bench(c: &mut Criterion) {
    let p256 = Sample::deterministic().unwrap();
    let rsa = Sample::generate(KeyKind::Rsa2048).unwrap();
    let limits = Limits::default();

    let mut group = c.benchmark_group("cmc");
    group.bench_function("build+sign/p256", |b| {
        b.iter(|| {
            build_renewal_request(&p256.old_cert, &p256.old_key, &p256.new_key, &params()).unwrap()
        })
    });
    group.bench_function("build+sign/rsa2048", |b| {
        b.iter(|| {
            build_renewal_request(&rsa.old_cert, &rsa.old_key, &rsa.new_key, &params()).unwrap()
        })
    });
    for (name, sample) in [("p256", &p256), ("rsa2048", &rsa)] {
        let (old, new) = (
            Precomputed::of(&sample.old_key),
            Precomputed::of(&sample.new_key),
        );
        group.bench_function(format!("encode-only/{name}"), |b| {
            b.iter(|| build_renewal_request(&sample.old_cert, &old, &new, &params()).unwrap())
        });
        let der = build_renewal_request(
            &sample.old_cert,
            &sample.old_key,
            &sample.new_key,
            &params(),
        )
        .unwrap()
        .der;
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| parse_request(black_box(&der), &limits).unwrap())
        });
        group.bench_function(format!("parse+verify/{name}"), |b| {
            b.iter(|| {
                parse_request(black_box(&der), &limits)
                    .unwrap()
                    .verify()
                    .unwrap()
            })
        });
    }
    let ms = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../renewal-core/tests/vectors/ms-docs-pkcs7-renewal-request.der"
    ))
    .unwrap();
    group.bench_function(
        "parse+verify/ms-docs-pkcs7-renewal (RSA-1024, SHA-1)",
        |b| {
            b.iter(|| {
                parse_request(black_box(&ms), &limits)
                    .unwrap()
                    .verify()
                    .unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
