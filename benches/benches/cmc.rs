//! CMC codec benchmarks, with the floor and the peer in the same run:
//! * `floor/*`: one signature and one verification alone (aws-lc-rs, the library ours uses;
//!   OpenSSL, the library the peer uses). A renewal request holds three signatures (PKCS#10 by
//!   the new key; CMS signers: new key, old key), so its floor is three of each.
//! * `ours/*`: build+sign, encode only (signatures precomputed), parse, parse+verify.
//! * `openssl/*`: the same build+sign and parse+verify done by OpenSSL (`benches::openssl_peer`).
//! * `ours/cmp-*`: the CMP key update a renewal sends instead (`--mode cmp`): build+protect (two
//!   signatures: proof of possession by the new key, protection by the old), and the CA's
//!   parse+verify of it (both signatures).
//!
//! `scripts/bench-report.sh` turns the medians into the ratio table of `benches/README.md`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
    },
};
use criterion::{Criterion, criterion_group, criterion_main};
use renewal_codec::{
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
        attestation: None,
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

/// The request our builder makes for `sample` (what both parsers are given).
fn request_der(sample: &Sample) -> Vec<u8> {
    build_renewal_request(
        &sample.old_cert,
        &sample.old_key,
        &sample.new_key,
        &params(),
    )
    .unwrap()
    .der
}

/// A message the size of what a renewal's signatures cover (signed attributes, PKCS#10 info).
const MESSAGE: [u8; 256] = [0x5a; 256];

fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    group.measurement_time(Duration::from_secs(3));
    let rng = SystemRandom::new();

    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let ec_sig = ec.sign(&rng, &MESSAGE).unwrap();
    let ec_pub = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ec.public_key().as_ref().to_vec());
    group.bench_function("aws-lc/p256/sign", |b| {
        b.iter(|| ec.sign(&rng, black_box(&MESSAGE)).unwrap())
    });
    group.bench_function("aws-lc/p256/verify", |b| {
        b.iter(|| ec_pub.verify(black_box(&MESSAGE), ec_sig.as_ref()).unwrap())
    });

    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let mut rsa_sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(&RSA_PKCS1_SHA256, &rng, &MESSAGE, &mut rsa_sig)
        .unwrap();
    let rsa_pub = UnparsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        rsa.public_key().as_ref().to_vec(),
    );
    group.bench_function("aws-lc/rsa2048/sign", |b| {
        let mut out = vec![0; rsa.public_modulus_len()];
        b.iter(|| {
            rsa.sign(&RSA_PKCS1_SHA256, &rng, black_box(&MESSAGE), &mut out)
                .unwrap()
        })
    });
    group.bench_function("aws-lc/rsa2048/verify", |b| {
        b.iter(|| rsa_pub.verify(black_box(&MESSAGE), &rsa_sig).unwrap())
    });

    use openssl::{
        ec::{EcGroup, EcKey},
        hash::MessageDigest,
        nid::Nid,
        pkey::PKey,
        rsa::Rsa,
        sign::{Signer as OsslSigner, Verifier},
    };
    let keys = [
        (
            "p256",
            PKey::from_ec_key(
                EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
            )
            .unwrap(),
        ),
        (
            "rsa2048",
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        ),
    ];
    for (name, key) in &keys {
        let sign = || {
            let mut s = OsslSigner::new(MessageDigest::sha256(), key).unwrap();
            s.sign_oneshot_to_vec(black_box(&MESSAGE)).unwrap()
        };
        let sig = sign();
        group.bench_function(format!("openssl/{name}/sign"), |b| b.iter(sign));
        group.bench_function(format!("openssl/{name}/verify"), |b| {
            b.iter(|| {
                let mut v = Verifier::new(MessageDigest::sha256(), key).unwrap();
                assert!(v.verify_oneshot(&sig, black_box(&MESSAGE)).unwrap())
            })
        });
    }
    group.finish();
}

fn ours_and_peer(c: &mut Criterion) {
    let p256 = Sample::generate(KeyKind::P256).unwrap();
    let p256_rfc6979 = Sample::deterministic().unwrap();
    let rsa = Sample::generate(KeyKind::Rsa2048).unwrap();
    let limits = Limits::default();

    let mut group = c.benchmark_group("ours");
    group.measurement_time(Duration::from_secs(3));
    for (name, sample) in [
        ("p256", &p256),
        ("p256-rfc6979", &p256_rfc6979),
        ("rsa2048", &rsa),
    ] {
        group.bench_function(format!("build+sign/{name}"), |b| {
            b.iter(|| {
                build_renewal_request(
                    &sample.old_cert,
                    &sample.old_key,
                    &sample.new_key,
                    &params(),
                )
                .unwrap()
            })
        });
    }
    for (name, sample) in [("p256", &p256), ("rsa2048", &rsa)] {
        let (old, new) = (
            Precomputed::of(&sample.old_key),
            Precomputed::of(&sample.new_key),
        );
        group.bench_function(format!("encode-only/{name}"), |b| {
            b.iter(|| build_renewal_request(&sample.old_cert, &old, &new, &params()).unwrap())
        });
        let der = request_der(sample);
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
    for (name, sample) in [("p256", &p256), ("rsa2048", &rsa)] {
        let kur = || {
            renewal_codec::cmp::build::key_update_request(
                &renewal_codec::cmp::build::KeyUpdate {
                    old: &sample.old_cert,
                    recipient: sample.ca_cert.value().tbs_certificate().subject().clone(),
                    transaction_id: [7; 16],
                    sender_nonce: [7; 16],
                    time: std::time::SystemTime::now(),
                    implicit_confirm: false,
                },
                &sample.old_key,
                &sample.new_key,
            )
            .unwrap()
        };
        group.bench_function(format!("cmp-build+protect/{name}"), |b| b.iter(kur));
        let der = kur();
        group.bench_function(format!("cmp-parse+verify/{name}"), |b| {
            b.iter(|| {
                let message =
                    renewal_codec::cmp::PkiMessage::parse(black_box(&der), &limits).unwrap();
                let signer = message.protecting_certificate().unwrap();
                message.verify_protection(signer.value()).unwrap();
                let renewal_codec::cmp::PkiBody::Kur(requests) = &message.body else {
                    unreachable!()
                };
                requests[0].verify_pop().unwrap();
            })
        });
    }
    let ms = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../renewal-codec/tests/vectors/ms-docs-pkcs7-renewal-request.der"
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

    let mut group = c.benchmark_group("openssl");
    group.measurement_time(Duration::from_secs(3));
    for (name, sample) in [("p256", &p256), ("rsa2048", &rsa)] {
        let peer = benches::openssl_peer(sample).unwrap();
        group.bench_function(format!("build+sign/{name}"), |b| {
            b.iter(|| peer.build(7, &[7; 16]).unwrap())
        });
        let der = request_der(sample);
        group.bench_function(format!("parse+verify/{name}"), |b| {
            b.iter(|| peer.verify(black_box(&der)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, floor, ours_and_peer);
criterion_main!(benches);
