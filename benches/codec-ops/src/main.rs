//! Runs one codec operation N times on fixed inputs, for instruction counting under
//! `valgrind --tool=callgrind` (`scripts/callgrind.sh` runs it with N = 1 and N = 11 and takes
//! the difference, so set-up cancels out). Keys are fixed (P-256 scalars, the RSA keys in
//! `benches/fixtures/`) so two runs count the same work.
//!
//! Usage: `codec-ops OPERATION N`; `codec-ops list` prints the operations.

use std::{hint::black_box, process::ExitCode};

use renewal_codec::{
    cmc::{
        DigestAlgorithm, Limits, RenewalParams, Signer, SoftwareKey, build_renewal_request,
        parse_request,
    },
    sample::{Sample, fixed_now},
};

/// Every operation, in report order.
const OPERATIONS: [&str; 12] = [
    "sign/p256",
    "verify/p256",
    "build+sign/p256",
    "encode-only/p256",
    "parse/p256",
    "parse+verify/p256",
    "sign/rsa2048",
    "verify/rsa2048",
    "build+sign/rsa2048",
    "encode-only/rsa2048",
    "parse/rsa2048",
    "parse+verify/rsa2048",
];

fn scalar(seed: u8) -> [u8; 32] {
    let mut s = [0x11u8; 32];
    s[31] = seed;
    s
}

fn sample(rsa: bool) -> Result<Sample, Box<dyn std::error::Error>> {
    let ca = SoftwareKey::p256_rfc6979_from_scalar(&scalar(1))?;
    let (old, new) = if rsa {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
        (
            SoftwareKey::from_pem_or_der(&std::fs::read(format!("{dir}/rsa2048-old.key"))?)?,
            SoftwareKey::from_pem_or_der(&std::fs::read(format!("{dir}/rsa2048-new.key"))?)?,
        )
    } else {
        (
            SoftwareKey::p256_from_scalar(&scalar(2))?,
            SoftwareKey::p256_from_scalar(&scalar(3))?,
        )
    };
    Ok(Sample::with_keys(ca, old, new, fixed_now())?)
}

/// A signer whose signature was computed once: encoding without signing.
struct Precomputed {
    spki: spki::SubjectPublicKeyInfoOwned,
    algorithm: renewal_codec::cmc::SignatureAlgorithm,
    signature: Vec<u8>,
}

impl Signer for Precomputed {
    fn public_key(&self) -> &spki::SubjectPublicKeyInfoOwned {
        &self.spki
    }
    fn algorithm(&self) -> renewal_codec::cmc::SignatureAlgorithm {
        self.algorithm
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, renewal_codec::cmc::SignError> {
        Ok(self.signature.clone())
    }
}

fn precomputed(key: &SoftwareKey) -> Result<Precomputed, Box<dyn std::error::Error>> {
    Ok(Precomputed {
        spki: key.public_key().clone(),
        algorithm: key.algorithm(),
        signature: key.sign(b"fixed")?,
    })
}

fn run(op: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (what, alg) = op.split_once('/').ok_or("operation is WHAT/ALG")?;
    let s = sample(alg == "rsa2048")?;
    let params = RenewalParams {
        template: None,
        transaction_id: 7,
        sender_nonce: vec![7; 16],
        digest: DigestAlgorithm::Sha256,
        attestation: None,
    };
    let der = build_renewal_request(&s.old_cert, &s.old_key, &s.new_key, &params)?.der;
    let limits = Limits::default();
    let message = [0x5au8; 256];
    let signature = s.new_key.sign(&message)?;
    let (old, new) = (precomputed(&s.old_key)?, precomputed(&s.new_key)?);
    for _ in 0..n {
        match what {
            "sign" => drop(black_box(s.new_key.sign(black_box(&message))?)),
            "verify" => renewal_codec::cmc::crypto::verify(
                s.new_key.public_key(),
                s.new_key.algorithm(),
                black_box(&message),
                &signature,
            )?,
            "build+sign" => drop(black_box(build_renewal_request(
                &s.old_cert,
                &s.old_key,
                &s.new_key,
                &params,
            )?)),
            "encode-only" => drop(black_box(build_renewal_request(
                &s.old_cert,
                &old,
                &new,
                &params,
            )?)),
            "parse" => drop(black_box(parse_request(black_box(&der), &limits)?)),
            "parse+verify" => drop(black_box(
                parse_request(black_box(&der), &limits)?.verify()?,
            )),
            _ => return Err(format!("unknown operation {op}").into()),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [list] if list == "list" => {
            OPERATIONS.iter().for_each(|op| println!("{op}"));
            ExitCode::SUCCESS
        }
        [op, n] if OPERATIONS.contains(&op.as_str()) => match n.parse() {
            Ok(n) => match run(op, n) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("codec-ops: {op}: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(_) => {
                eprintln!("codec-ops: N must be a number");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: codec-ops OPERATION N   (codec-ops list: the operations)");
            ExitCode::from(2)
        }
    }
}
