//! The one `Token` test suite, run unchanged against every backend: the in-process virtual
//! card, the card behind pcscd (PC/SC), SoftHSM2 (PKCS#11).
#![allow(dead_code, clippy::unwrap_used)]

use renewal_client::{
    cmc::{Retained, SignatureAlgorithm, crypto::verify},
    sample::Sample,
    token::{ContainerId, KeyAlgorithm, Token, TokenError},
    x509::{self, CertificateSpec},
};
use x509_cert::Certificate;

fn id(s: &str) -> ContainerId {
    ContainerId(s.into())
}

/// A certificate from the sample CA for a key on the token.
pub fn certify(
    ca: &Sample,
    public_key: &spki::SubjectPublicKeyInfoOwned,
    cn: &str,
) -> Retained<Certificate> {
    use std::str::FromStr;
    let now = std::time::SystemTime::now();
    x509::issue(
        &CertificateSpec {
            serial: vec![0x11, cn.len() as u8],
            subject: x509_cert::name::Name::from_str(&format!("CN={cn}")).unwrap(),
            public_key: public_key.clone(),
            not_before: now,
            not_after: now + std::time::Duration::from_secs(86400),
            extensions: vec![],
        },
        ca.ca_cert.value().tbs_certificate().subject(),
        &ca.ca_key,
    )
    .unwrap()
}

/// The suite. `prompts` counts PIN prompts of the token's PIN source. `primary` is the
/// fixed container middleware looks in (PIV: 9a); tokens without fixed slots (PKCS#11) pass
/// `None` and the new container simply replaces the old one.
pub fn token_suite(token: &mut dyn Token, prompts: &dyn Fn() -> usize, primary: Option<&str>) {
    let ca = Sample::deterministic().unwrap();
    let info = token.info().unwrap();
    assert!(
        !info.serial.is_empty() && info.serial != "unknown",
        "{info:?}"
    );
    assert!(
        token.containers().unwrap().is_empty(),
        "a fresh card is empty"
    );
    let free_at_start = token.capacity().unwrap().free;

    // Provision 9A as an administrator would: generate (lands in a retired slot), certify,
    // install, move into 9A.
    let first = token.generate(KeyAlgorithm::EcP256).unwrap();
    if primary.is_some() {
        assert_eq!(
            first.id,
            id("82"),
            "new keys go to the first free retired slot"
        );
    }
    let first_key = first.public_key.clone().unwrap();
    let first_cert = certify(&ca, &first_key, "first");
    token
        .install_certificate(&first.id, first_cert.der())
        .unwrap();
    let current = match primary {
        Some(p) => {
            assert_eq!(token.supersede(&id(p), &first.id).unwrap(), id(p));
            id(p)
        }
        None => first.id.clone(),
    };
    let containers = token.containers().unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0].id, current);
    assert_eq!(containers[0].public_key.as_ref(), Some(&first_key));
    assert_eq!(containers[0].certificate.as_deref(), Some(first_cert.der()));

    // Signatures from the card verify with the container's public key.
    let message = b"renewal request bytes";
    let sig = token
        .sign(&current, SignatureAlgorithm::ECDSA_SHA256, message)
        .unwrap();
    verify(&first_key, SignatureAlgorithm::ECDSA_SHA256, message, &sig).unwrap();

    // A renewal: new key in a new container, old one untouched until supersede.
    let new = token.generate(KeyAlgorithm::EcP256).unwrap();
    assert_ne!(new.id, current);
    if let Some(free) = free_at_start {
        assert_eq!(new.id, id("82"));
        assert_eq!(token.capacity().unwrap().free, Some(free - 1));
    }
    let new_key = new.public_key.clone().unwrap();
    assert_ne!(new_key, first_key);
    // Key attestation: a PIV card attests the key it generated — the statement certifies
    // exactly that key and is signed by the card's device (F9) certificate; a PKCS#11 token
    // has no attestation and says so.
    match token.attest(&new.id) {
        Ok(attestation) => {
            assert!(primary.is_some(), "only the PIV cards attest");
            let statement = Retained::<Certificate>::from_der(&attestation.statement).unwrap();
            assert_eq!(
                statement
                    .value()
                    .tbs_certificate()
                    .subject_public_key_info(),
                &new_key
            );
            let device =
                Retained::<Certificate>::from_der(&attestation.device_certificate).unwrap();
            x509::verify_issued_by(&statement, device.value()).unwrap();
        }
        Err(TokenError::Unsupported(_)) => {
            assert!(primary.is_none(), "a PIV card attests its keys");
        }
        Err(e) => panic!("attestation: {e}"),
    }
    let sig = token
        .sign(&new.id, SignatureAlgorithm::ECDSA_SHA256, message)
        .unwrap();
    verify(&new_key, SignatureAlgorithm::ECDSA_SHA256, message, &sig).unwrap();
    let new_cert = certify(&ca, &new_key, "second");
    token.install_certificate(&new.id, new_cert.der()).unwrap();
    assert_eq!(token.containers().unwrap().len(), 2);
    let current = token.supersede(&current, &new.id).unwrap();
    if let Some(p) = primary {
        assert_eq!(
            current,
            id(p),
            "the new key and certificate are where middleware looks"
        );
    }
    let containers = token.containers().unwrap();
    assert_eq!(
        containers.len(),
        1,
        "nothing left in the retired slot: {containers:?}"
    );
    assert_eq!(containers[0].public_key.as_ref(), Some(&new_key));
    assert_eq!(containers[0].certificate.as_deref(), Some(new_cert.der()));
    let sig = token
        .sign(&current, SignatureAlgorithm::ECDSA_SHA256, message)
        .unwrap();
    verify(&new_key, SignatureAlgorithm::ECDSA_SHA256, message, &sig).unwrap();

    // Rollback: a generated container is deleted and really gone.
    let aborted = token.generate(KeyAlgorithm::EcP256).unwrap();
    token.delete(&aborted.id).unwrap();
    assert_eq!(token.containers().unwrap().len(), 1);
    assert_eq!(token.capacity().unwrap().free, free_at_start);

    // RSA-2048 on the card, PKCS#1 v1.5 / SHA-256.
    let rsa = token.generate(KeyAlgorithm::Rsa2048).unwrap();
    let rsa_key = rsa.public_key.clone().unwrap();
    let sig = token
        .sign(&rsa.id, SignatureAlgorithm::RSA_PKCS1_SHA256, message)
        .unwrap();
    verify(
        &rsa_key,
        SignatureAlgorithm::RSA_PKCS1_SHA256,
        message,
        &sig,
    )
    .unwrap();
    token.delete(&rsa.id).unwrap();

    // Signing with an empty slot is a typed error.
    assert!(matches!(
        token.sign(&id("ffff"), SignatureAlgorithm::ECDSA_SHA256, message),
        Err(TokenError::NotFound(_))
    ));

    // One login for the whole session.
    assert_eq!(prompts(), 1, "the PIN is asked once per session");
}
