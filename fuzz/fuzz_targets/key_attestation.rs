//! A CA's check of a key attestation (`renewal_codec::cmc::attestation::verify`: the bundle
//! parsed, the statement and device certificates parsed and their signatures checked, the key
//! compared) on hostile bytes. The target starts from a genuine attested request — a key
//! generated on a simulated card, its attestation under the simulated vendor root — and the
//! input edits its AttestationBundle: first byte bit 0 clear, bytes from offset `u16(1..3)`
//! are overwritten by the rest (bit 1: and the bundle is cut after them); bit 0 set, the rest
//! is the bundle. Any bytes: a verdict, no panic.
#![no_main]

use std::sync::OnceLock;

use der::{Decode, Encode, asn1::Any};
use libfuzzer_sys::fuzz_target;
use renewal_codec::{
    cmc::{
        Retained, SoftwareKey,
        attestation::{self, ID_AA_ATTESTATION, KeyAttestation},
        request::build_attested_pkcs10,
    },
    sample::Sample,
};
use sim_card::{attestation::Attested, crypto, state::KeyAlgorithm};
use x509_cert::{Certificate, request::CertReq};

struct Fixture {
    request: CertReq,
    bundle: Vec<u8>,
    roots: Vec<Retained<Certificate>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let sample = Sample::deterministic().expect("sample");
        let device = sim_card::attestation::provision(1).expect("device");
        let mut counter = 0;
        let key = crypto::generate(
            KeyAlgorithm::EccP256,
            &mut crypto::DetRng::new(2, &mut counter),
        )
        .expect("key");
        let statement = sim_card::attestation::attest(
            &device,
            &Attested {
                slot: 0x9a,
                key: &key,
                serial: 1,
                firmware: [5, 7, 1],
                touch_policy: 1,
            },
        )
        .expect("attest");
        let new_key = SoftwareKey::p256_from_scalar(&key.private.0).expect("scalar");
        let attestation = KeyAttestation {
            statement,
            device_certificate: device.certificate,
        };
        let request = build_attested_pkcs10(&sample.old_cert, &new_key, None, Some(&attestation))
            .expect("request")
            .value()
            .clone();
        let bundle = attestation::attribute(&attestation)
            .expect("attribute")
            .values
            .get(0)
            .expect("value")
            .to_der()
            .expect("bundle");
        let (_, root) = sim_card::attestation::vendor_root().expect("root");
        let roots = vec![Retained::from_der(&root).expect("root")];
        // The starting point verifies: the edits start from the deepest path.
        attestation::verify(&request, &roots, renewal_codec::sample::fixed_now())
            .expect("the genuine attestation verifies");
        Fixture {
            request,
            bundle,
            roots,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let bundle = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let Some((offset, patch)) = rest.split_first_chunk::<2>() else {
            return;
        };
        let mut bundle = f.bundle.clone();
        let at = usize::from(u16::from_be_bytes(*offset)) % bundle.len();
        let end = (at + patch.len()).min(bundle.len());
        bundle[at..end].copy_from_slice(&patch[..end - at]);
        if mode & 2 == 2 {
            bundle.truncate(end);
        }
        bundle
    };
    let Ok(value) = Any::from_der(&bundle) else {
        return;
    };
    let mut request = f.request.clone();
    let attributes: Vec<_> = request
        .info
        .attributes
        .iter()
        .filter(|a| a.oid != ID_AA_ATTESTATION)
        .cloned()
        .chain(std::iter::once(x509_cert::attr::Attribute {
            oid: ID_AA_ATTESTATION,
            values: der::asn1::SetOfVec::try_from(vec![value]).expect("one value"),
        }))
        .collect();
    let Ok(attributes) = der::asn1::SetOfVec::try_from(attributes) else {
        return;
    };
    request.info.attributes = attributes;
    let _ = attestation::verify(&request, &f.roots, renewal_codec::sample::fixed_now());
});
