//! sim-ca as an upstream CA behind a renewal gateway (`--trust-ra`): a trusted registration
//! authority forwards a user's signed request inside its own signed PKIData (RFC 5272 nested
//! content) over its own TLS identity. The CA decides the user's renewal — the user's old key
//! still signs it, the RA only vouches — and refuses wrappers from an untrusted signer, an RA
//! forwarding someone's request with the wrong key, and an RA asking for itself.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, ca, now, parse};
use der::{Decode, Encode};
use renewal_codec::cmc::{
    Outcome, PublicKey, Retained, Signer, SoftwareKey,
    ra::{wrap, wrap_reenroll},
    request::build_attested_pkcs10,
};
use sim_ca::store::Endpoint;
use sim_ca::{Ca, store::AuditOutcome};
use x509_cert::Certificate;

/// An RA key and a certificate for it from `ca` (the TLS layer admits only this CA's
/// certificates).
fn ra_identity(ca: &Ca) -> (SoftwareKey, Retained<Certificate>) {
    let ra = sim_ca::gateway::credential::issue(
        ca.authority(),
        "Renewal Gateway RA",
        &["localhost"],
        sim_ca::gateway::credential::Purpose::Ra,
        now(),
    )
    .unwrap();
    (ra.key, ra.chain[0].clone())
}

fn outcome(ca: &Ca, request: &[u8], tls: &Retained<Certificate>) -> (Outcome, Vec<u8>) {
    let (outcome, issued, _) = answer(ca, request, tls);
    (outcome, issued)
}

/// The outcome, the issued certificate (empty when none) and the status text.
fn answer(ca: &Ca, request: &[u8], tls: &Retained<Certificate>) -> (Outcome, Vec<u8>, String) {
    let reply = ca.handle_cmc_at(Endpoint::FullCmc, request, tls.der());
    let response = parse(&reply.body);
    response.verify_signer().unwrap();
    let text = response.status_string.clone().unwrap_or_default();
    let issued = response
        .certificates
        .iter()
        .find(|c| **c != ca.authority().issuing.cert && **c != ca.authority().root.cert)
        .map(|c| c.der().to_vec())
        .unwrap_or_default();
    (response.outcome, issued, text)
}

/// A CA that trusts one RA, the RA's key and certificate, and a user of the CA.
fn behind_a_trusted_ra() -> (Ca, SoftwareKey, Retained<Certificate>, Client) {
    let base = ca();
    let (ra_key, ra_cert) = ra_identity(&base);
    let ca = base.with_trusted_ras(vec![ra_cert.clone()]).unwrap();
    let user = Client::new(&ca);
    (ca, ra_key, ra_cert, user)
}

fn assert_nothing_issued(ca: &Ca) {
    assert!(
        ca.audit_trail()
            .iter()
            .all(|a| a.outcome != AuditOutcome::Issued),
        "{:#?}",
        ca.audit_trail()
    );
}

#[test]
fn a_trusted_ra_forwards_a_users_renewal() {
    let (ca, ra_key, ra_cert, user) = behind_a_trusted_ra();
    let wrapped = wrap(&user.request(), &ra_key, &ra_cert, 7, b"ra-nonce-1").unwrap();
    let (got, issued) = outcome(&ca, &wrapped, &ra_cert);
    assert_eq!(got, Outcome::Issued);
    let cert = Retained::<Certificate>::from_der(&issued).unwrap();
    let tbs = cert.value().tbs_certificate();
    // The user's renewal: the user's subject and new key, not the RA's.
    assert_eq!(
        tbs.subject(),
        user.old_cert.value().tbs_certificate().subject()
    );
    assert_eq!(
        PublicKey::from_spki(tbs.subject_public_key_info()).unwrap(),
        PublicKey::from_spki(user.new_key.public_key()).unwrap()
    );
    // Forwarded again (a gateway retrying): the same certificate.
    let again = wrap(&user.request(), &ra_key, &ra_cert, 8, b"ra-nonce-2").unwrap();
    let (got, issued_again) = outcome(&ca, &again, &ra_cert);
    assert_eq!(got, Outcome::Issued);
    assert_eq!(issued_again, issued);
}

#[test]
fn wrappers_are_refused_unless_a_trusted_ra_signed_them() {
    let base = ca();
    let (ra_key, ra_cert) = ra_identity(&base);
    let (other_key, other_cert) = ra_identity(&base);
    let ca = base.with_trusted_ras(vec![ra_cert.clone()]).unwrap();
    let user = Client::new(&ca);
    let request = user.request();

    let refused = |request: &[u8], tls: &Retained<Certificate>, why: &str| {
        let (got, _, text) = answer(&ca, request, tls);
        assert!(matches!(got, Outcome::Failed { .. }), "{why}: {got:?}");
        assert!(text.contains(why), "{why}: {text}");
    };
    // Signed by a certificate the CA does not trust as an RA, presented by the trusted RA.
    let forged = wrap(&request, &other_key, &other_cert, 1, b"n1").unwrap();
    refused(&forged, &ra_cert, "not trusted as an RA");
    // A genuine wrapper over a TLS identity that is not a trusted RA: not unwrapped, and the
    // wrapper itself is no renewal (it holds no PKCS#10).
    let genuine = wrap(&request, &ra_key, &ra_cert, 2, b"n2").unwrap();
    refused(&genuine, &other_cert, "0x8007000D");
    // The RA forwarding a request whose CMS layer another user's key signed.
    let mallory = Client::new(&ca);
    let stolen = common::mutated_signed_by(&user, &mallory, &user.new_key, |_| {});
    let wrapped = wrap(&stolen, &ra_key, &ra_cert, 3, b"n3").unwrap();
    refused(&wrapped, &ra_cert, "the forwarded request");
    // The RA asking for a renewal of its own certificate, unwrapped: an RA never renews itself.
    let ra_as_user = Client {
        old_key: ra_key,
        old_cert: ra_cert.clone(),
        new_key: SoftwareKey::generate_p256().unwrap(),
    };
    refused(&ra_as_user.request(), &ra_cert, "RA wrapper");
    // Nothing was issued.
    assert_nothing_issued(&ca);
}

/// A re-enrollment wrapper's PKCS#10 is the user's request: the RA's signature over it vouches
/// for who authenticated, not for the new key. Its proof of possession is checked where the
/// re-enrollment is decided (once: the wrapper's check leaves it there), so a genuine RA
/// forwarding a PKCS#10 whose signature does not verify gets nothing.
#[test]
fn a_reenrollment_forwarded_by_a_trusted_ra_must_prove_the_new_key() {
    let (ca, ra_key, ra_cert, user) = behind_a_trusted_ra();
    let pkcs10 = build_attested_pkcs10(&user.old_cert, &user.new_key, None, None)
        .unwrap()
        .der()
        .to_vec();
    // The last byte of a PKCS#10 is the last byte of its signature.
    let mut flipped = pkcs10.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    // A well-formed signature, by another key over another request, in its place.
    let other = Client::new(&ca);
    let other_pkcs10 = build_attested_pkcs10(&other.old_cert, &other.new_key, None, None)
        .unwrap()
        .der()
        .to_vec();
    let mut spliced = Vec::<der::asn1::Any>::from_der(&pkcs10).unwrap();
    spliced[2] = Vec::<der::asn1::Any>::from_der(&other_pkcs10).unwrap()[2].clone();
    let spliced = spliced.to_der().unwrap();
    for (n, forged) in [flipped, spliced].iter().enumerate() {
        let id = u64::try_from(n).unwrap() + 1;
        let wrapped = wrap_reenroll(forged, &user.old_cert, &ra_key, &ra_cert, id, b"n1").unwrap();
        let (got, issued, text) = answer(&ca, &wrapped, &ra_cert);
        assert!(matches!(got, Outcome::Failed { .. }), "{got:?}: {text}");
        assert!(issued.is_empty());
    }
    assert_nothing_issued(&ca);
    // The same wrapper around the intact PKCS#10 renews: the refusal was the proof's.
    let wrapped = wrap_reenroll(&pkcs10, &user.old_cert, &ra_key, &ra_cert, 3, b"n2").unwrap();
    let (got, issued, text) = answer(&ca, &wrapped, &ra_cert);
    assert_eq!(got, Outcome::Issued, "{text}");
    let cert = Retained::<Certificate>::from_der(&issued).unwrap();
    assert_eq!(
        PublicKey::from_spki(cert.value().tbs_certificate().subject_public_key_info()).unwrap(),
        PublicKey::from_spki(user.new_key.public_key()).unwrap()
    );
}
