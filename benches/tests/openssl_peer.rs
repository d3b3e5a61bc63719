//! The peer does the same work as ours, checked both ways: what OpenSSL builds, our parser
//! reads and verifies (same signers, same content); what we build, OpenSSL verifies. A peer
//! that did less would make the benchmark comparison meaningless.
#![allow(missing_docs, clippy::unwrap_used)]

use benches::openssl_peer;
use renewal_codec::{
    cmc::{Limits, RenewalParams, SignedBy, build_renewal_request, parse_request},
    sample::{KeyKind, Sample},
};

#[test]
fn our_parser_verifies_what_openssl_builds_with_the_same_signers() {
    for kind in [KeyKind::P256, KeyKind::Rsa2048] {
        let sample = Sample::generate(kind).unwrap();
        let peer = openssl_peer(&sample).unwrap();
        let der = peer.build(7, &[7; 16]).unwrap();
        let parsed = parse_request(&der, &Limits::default()).unwrap();
        let facts = parsed.verify().unwrap();
        assert!(facts.old_key_signed);
        assert_eq!(facts.sender_nonce.as_deref(), Some(&[7u8; 16][..]));
        assert_eq!(
            &facts.pkcs10.value().info.public_key,
            renewal_codec::cmc::Signer::public_key(&sample.new_key)
        );
        let signers: Vec<_> = facts.signers.iter().map(|r| &r.signed_by).collect();
        assert_eq!(
            signers,
            [&SignedBy::RequestKey, &SignedBy::RenewalCertificate],
            "{kind:?}"
        );
        assert!(facts.signers.iter().all(|s| s.outcome.is_ok()));
    }
}

#[test]
fn openssl_verifies_what_we_build_and_refuses_a_flipped_signature() {
    let sample = Sample::generate(KeyKind::P256).unwrap();
    let peer = openssl_peer(&sample).unwrap();
    let built = build_renewal_request(
        &sample.old_cert,
        &sample.old_key,
        &sample.new_key,
        &RenewalParams::random().unwrap(),
    )
    .unwrap();
    peer.verify(&built.der).unwrap();
    peer.verify(&peer.build(1, &[1; 16]).unwrap()).unwrap();

    // The last bytes of the message are the old key's ECDSA signature.
    let mut tampered = built.der.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    assert!(peer.verify(&tampered).is_err());
}
