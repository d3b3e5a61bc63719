//! Hostile and broken requests: each failure is its own typed error, never a panic.
// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use cms::{cert::IssuerAndSerialNumber, content_info::CmsVersion, signed_data::SignerIdentifier};
use der::{
    Decode, Encode,
    asn1::{Any, BitString, OctetString, SetOfVec},
};
use renewal_codec::{
    cmc::{
        CmcError, DigestAlgorithm, Limits, RenewalParams, RequestShape, Retained, Signer,
        build_renewal_request,
        crypto::{VerifyError, key_identifier},
        oids, parse_request,
        pki::{PkiData, TaggedCertificationRequest, TaggedRequest},
        request::sign_content,
        signed_data::{Attribute, CertificateChoice, SignedData},
        verify_request::RequestContent,
    },
    sample::Sample,
};
use x509_cert::{ext::pkix::SubjectKeyIdentifier, request::CertReq};

fn params() -> RenewalParams {
    RenewalParams {
        template: None,
        transaction_id: 42,
        sender_nonce: vec![7; 16],
        digest: DigestAlgorithm::Sha256,
        attestation: None,
    }
}

fn good_request(sample: &Sample) -> Vec<u8> {
    build_renewal_request(
        &sample.old_cert,
        &sample.old_key,
        &sample.new_key,
        &params(),
    )
    .expect("build")
    .der
}

fn signed_data(der: &[u8]) -> SignedData {
    parse_request(der, &Limits::default())
        .expect("parse")
        .signed_data
}

fn verify_err(der: &[u8]) -> CmcError {
    match parse_request(der, &Limits::default()) {
        Err(e) => e,
        Ok(parsed) => parsed.verify().expect_err("must not verify"),
    }
}

/// Re-signs a PKIData with the MS-WCCE signer pair, so structural mutations are the only fault.
fn sign_pki_data(sample: &Sample, pki: &PkiData) -> Vec<u8> {
    let tbs = sample.old_cert.value().tbs_certificate();
    let signers: [(CmsVersion, SignerIdentifier, &dyn Signer); 2] = [
        (
            CmsVersion::V3,
            SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                OctetString::new(key_identifier(sample.new_key.public_key())).unwrap(),
            )),
            &sample.new_key,
        ),
        (
            CmsVersion::V1,
            SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            &sample.old_key,
        ),
    ];
    sign_content(
        oids::ID_CCT_PKI_DATA,
        &pki.to_der().unwrap(),
        DigestAlgorithm::Sha256,
        &signers,
        vec![CertificateChoice::Certificate(sample.old_cert.clone())],
    )
    .unwrap()
    .to_content_info_der()
    .unwrap()
}

fn pki_data_of(der: &[u8]) -> PkiData {
    match parse_request(der, &Limits::default()).unwrap().content {
        RequestContent::Cmc(p) => p,
        RequestContent::Pkcs10(_) => panic!("not CMC"),
    }
}

#[test]
fn the_good_request_verifies_as_a_two_signer_renewal() {
    let sample = Sample::deterministic().unwrap();
    let facts = parse_request(&good_request(&sample), &Limits::default())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(facts.shape, RequestShape::CmcTwoSigners);
    assert!(facts.old_key_signed);
    assert_eq!(facts.renewal_certificate, sample.old_cert);
    assert_eq!(facts.sender_nonce.as_deref(), Some(&[7u8; 16][..]));
    assert_eq!(facts.transaction_id.unwrap().as_bytes(), &[42]);
    assert_eq!(
        facts.pkcs10.value().info.public_key,
        *sample.new_key.public_key()
    );
    assert_eq!(
        facts.template.unwrap().oid.unwrap().to_string(),
        renewal_codec::sample::SAMPLE_TEMPLATE_OID
    );
}

#[test]
fn tampered_signature() {
    let sample = Sample::deterministic().unwrap();
    let mut sd = signed_data(&good_request(&sample));
    let mut sig = sd.signer_infos.0[1].signature.as_bytes().to_vec();
    let mid = sig.len() / 2;
    sig[mid] ^= 0x40;
    sd.signer_infos.0[1].signature = OctetString::new(sig).unwrap();
    match verify_err(&sd.to_content_info_der().unwrap()) {
        CmcError::SignatureInvalid {
            signer: 1,
            source: VerifyError::BadSignature,
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn signed_by_a_key_that_is_not_the_old_certificates() {
    let sample = Sample::deterministic().unwrap();
    let other = Sample::generate(renewal_codec::sample::KeyKind::P256).unwrap();
    // The old certificate, but "signed" with an unrelated key.
    let err = build_renewal_request(&sample.old_cert, &other.old_key, &sample.new_key, &params())
        .expect_err("builder refuses a mismatched old key");
    assert!(matches!(err, CmcError::InvalidInput(_)), "{err:?}");
    // Forge one anyway by swapping in a signature made by the wrong key.
    let forged =
        build_renewal_request(&other.old_cert, &other.old_key, &sample.new_key, &params()).unwrap();
    let mut sd = signed_data(&good_request(&sample));
    sd.signer_infos.0[1].signature = signed_data(&forged.der).signer_infos.0[1].signature.clone();
    assert!(matches!(
        verify_err(&sd.to_content_info_der().unwrap()),
        CmcError::SignatureInvalid { signer: 1, .. } | CmcError::MessageDigestMismatch { .. }
    ));
}

#[test]
fn wrong_message_digest() {
    let sample = Sample::deterministic().unwrap();
    let mut sd = signed_data(&good_request(&sample));
    let attrs = sd.signer_infos.0[0].signed_attrs.as_mut().unwrap();
    let md = attrs
        .0
        .iter_mut()
        .find(|a| a.oid == oids::ID_MESSAGE_DIGEST)
        .unwrap();
    *md = Attribute::single(
        oids::ID_MESSAGE_DIGEST,
        &OctetString::new(vec![0u8; 32]).unwrap(),
    )
    .unwrap();
    match verify_err(&sd.to_content_info_der().unwrap()) {
        CmcError::MessageDigestMismatch { signer: 0 } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_content_type() {
    let sample = Sample::deterministic().unwrap();
    // eContentType that is not a request.
    let mut sd = signed_data(&good_request(&sample));
    sd.encap_content_info.econtent_type = oids::ID_CCT_PKI_RESPONSE;
    match verify_err(&sd.to_content_info_der().unwrap()) {
        CmcError::UnexpectedContentType { found, .. } => {
            assert_eq!(found, oids::ID_CCT_PKI_RESPONSE)
        }
        other => panic!("{other:?}"),
    }
    // A contentType signed attribute that disagrees with the eContentType.
    let mut sd = signed_data(&good_request(&sample));
    let attrs = sd.signer_infos.0[1].signed_attrs.as_mut().unwrap();
    let ct = attrs
        .0
        .iter_mut()
        .find(|a| a.oid == oids::ID_CONTENT_TYPE)
        .unwrap();
    *ct = Attribute::single(oids::ID_CONTENT_TYPE, &oids::ID_DATA).unwrap();
    match verify_err(&sd.to_content_info_der().unwrap()) {
        CmcError::ContentTypeMismatch { signer: 1, found } => assert_eq!(found, oids::ID_DATA),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_renewal_attribute() {
    let sample = Sample::deterministic().unwrap();
    let mut pki = pki_data_of(&good_request(&sample));
    let TaggedRequest::Tcr(tcr) = &mut pki.req_sequence[0] else {
        panic!("tcr")
    };
    let mut req: CertReq = tcr.certification_request.value().clone();
    let kept: Vec<_> = req
        .info
        .attributes
        .iter()
        .filter(|a| a.oid != oids::MS_RENEWAL_CERTIFICATE)
        .cloned()
        .collect();
    req.info.attributes = SetOfVec::try_from(kept).unwrap();
    let sig = sample.new_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    tcr.certification_request = Retained::from_value(req).unwrap();
    match verify_err(&sign_pki_data(&sample, &pki)) {
        CmcError::MissingRenewalCertificate => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_pkcs10_requests() {
    let sample = Sample::deterministic().unwrap();
    let mut pki = pki_data_of(&good_request(&sample));
    let TaggedRequest::Tcr(first) = pki.req_sequence[0].clone() else {
        panic!("tcr")
    };
    pki.req_sequence
        .push(TaggedRequest::Tcr(TaggedCertificationRequest {
            body_part_id: 9,
            ..first
        }));
    match verify_err(&sign_pki_data(&sample, &pki)) {
        CmcError::RequestCount { found: 2 } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_proof_of_possession() {
    let sample = Sample::deterministic().unwrap();
    let mut pki = pki_data_of(&good_request(&sample));
    let TaggedRequest::Tcr(tcr) = &mut pki.req_sequence[0] else {
        panic!("tcr")
    };
    let mut req = tcr.certification_request.value().clone();
    // Signed by the old key instead of the key it certifies.
    let sig = sample.old_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    tcr.certification_request = Retained::from_value(req).unwrap();
    match verify_err(&sign_pki_data(&sample, &pki)) {
        CmcError::PopInvalid(VerifyError::BadSignature) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated() {
    let sample = Sample::deterministic().unwrap();
    let der = good_request(&sample);
    match verify_err(&der[..der.len() - 1]) {
        CmcError::Malformed {
            what: "ContentInfo",
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailing_bytes() {
    let sample = Sample::deterministic().unwrap();
    let mut der = good_request(&sample);
    der.extend_from_slice(&[0, 0, 0]);
    match verify_err(&der) {
        CmcError::TrailingData {
            what: "ContentInfo",
            extra: 3,
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversize() {
    let limits = Limits::default();
    let huge = vec![0x30u8; limits.max_bytes + 1];
    match parse_request(&huge, &limits) {
        Err(CmcError::TooLarge { len, max }) => {
            assert_eq!((len, max), (limits.max_bytes + 1, limits.max_bytes))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_signed_data_at_all() {
    let der = Any::new(der::Tag::Sequence, vec![])
        .unwrap()
        .to_der()
        .unwrap();
    assert!(matches!(
        verify_err(&der),
        CmcError::Malformed {
            what: "ContentInfo",
            ..
        }
    ));
    let info = cms::content_info::ContentInfo {
        content_type: oids::ID_DATA,
        content: Any::from_der(&OctetString::new(vec![1]).unwrap().to_der().unwrap()).unwrap(),
    };
    match verify_err(&info.to_der().unwrap()) {
        CmcError::UnexpectedContentType { found, .. } => assert_eq!(found, oids::ID_DATA),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_text_is_an_encoding_error() {
    match parse_request(b"this is not base64 !!", &Limits::default()) {
        Err(CmcError::Encoding(msg)) => assert!(msg.starts_with("base64"), "{msg}"),
        other => panic!("{other:?}"),
    }
}
