//! Every rejection path of the renewal-only policy, in-process, with its exact CMC fail info
//! and ADCS HRESULT; and the happy path, checked field by field.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Client, ca, ca_with, parse};
use der::{
    Decode, Encode,
    asn1::{BitString, OctetString, SetOfVec},
};
use renewal_core::cmc::{
    Outcome, Retained, Signer, SoftwareKey,
    microsoft::TemplateRef,
    oids,
    pki::{PkiData, TaggedRequest},
    signed_data::SignedData,
    status::CmcFailInfo,
    verify_request::RequestContent,
};
use sim_ca::Ca;

/// Submits `request` as `client` and returns (fail info, status string).
fn rejected(ca: &Ca, client: &Client, request: &[u8]) -> (Option<CmcFailInfo>, String) {
    let reply = ca.handle_cmc(request, client.old_cert.der());
    let resp = parse(&reply.body);
    resp.verify_signer().unwrap();
    match resp.outcome {
        Outcome::Failed { fail_info } => (fail_info, resp.status_string.unwrap()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn assert_rejected(ca: &Ca, client: &Client, request: &[u8], fail: CmcFailInfo, hresult: &str) {
    let (got, text) = rejected(ca, client, request);
    assert_eq!(got, Some(fail), "{text}");
    assert!(text.starts_with(hresult), "{text}");
}

/// Rebuilds the request after changing its PKCS#10 (re-signed by `pkcs10_key`) and re-signs
/// the CMS layer with the client's keys, so the mutation is the only fault.
fn mutated(
    client: &Client,
    pkcs10_key: &SoftwareKey,
    f: impl FnOnce(&mut x509_cert::request::CertReq),
) -> Vec<u8> {
    mutated_signed_by(client, client, pkcs10_key, f)
}

/// Like `mutated`, with the CMS layer signed by `signers`' keys.
fn mutated_signed_by(
    client: &Client,
    signers: &Client,
    pkcs10_key: &SoftwareKey,
    f: impl FnOnce(&mut x509_cert::request::CertReq),
) -> Vec<u8> {
    let parsed = renewal_core::cmc::parse_request(&client.request(), &Default::default()).unwrap();
    let RequestContent::Cmc(mut pki) = parsed.content else {
        panic!()
    };
    let TaggedRequest::Tcr(tcr) = &mut pki.req_sequence[0] else {
        panic!()
    };
    let mut req = tcr.certification_request.value().clone();
    f(&mut req);
    let sig = pkcs10_key.sign(&req.info.to_der().unwrap()).unwrap();
    req.signature = BitString::from_bytes(&sig).unwrap();
    tcr.certification_request = Retained::from_value(req).unwrap();
    sign(signers, &pki)
}

fn sign(client: &Client, pki: &PkiData) -> Vec<u8> {
    use cms::{
        cert::IssuerAndSerialNumber, content_info::CmsVersion, signed_data::SignerIdentifier,
    };
    let tbs = client.old_cert.value().tbs_certificate();
    let new_sid =
        SignerIdentifier::SubjectKeyIdentifier(x509_cert::ext::pkix::SubjectKeyIdentifier(
            OctetString::new(renewal_core::cmc::crypto::key_identifier(
                client.new_key.public_key(),
            ))
            .unwrap(),
        ));
    let old_sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    renewal_core::cmc::request::sign_content(
        oids::ID_CCT_PKI_DATA,
        &pki.to_der().unwrap(),
        renewal_core::cmc::DigestAlgorithm::Sha256,
        &[
            (CmsVersion::V3, new_sid, &client.new_key),
            (CmsVersion::V1, old_sid, &client.old_key),
        ],
        vec![
            renewal_core::cmc::signed_data::CertificateChoice::Certificate(client.old_cert.clone()),
        ],
    )
    .unwrap()
    .to_content_info_der()
    .unwrap()
}

#[test]
fn a_proper_renewal_is_issued_with_the_old_identity_and_the_new_key() {
    let ca = ca();
    let client = Client::new(&ca);
    let reply = ca.handle_cmc(&client.request(), client.old_cert.der());
    let resp = parse(&reply.body);
    assert_eq!(resp.outcome, Outcome::Issued);
    assert_eq!(resp.verify_signer().unwrap(), &ca.authority().issuing.cert);
    let new = &resp.certificates[0];
    let (old_tbs, new_tbs) = (
        client.old_cert.value().tbs_certificate(),
        new.value().tbs_certificate(),
    );
    assert_eq!(new_tbs.subject(), old_tbs.subject());
    assert_eq!(
        new_tbs.subject_public_key_info(),
        client.new_key.public_key()
    );
    assert_ne!(new_tbs.serial_number(), old_tbs.serial_number());
    assert!(ca.authority().issued_by_us(new));
    let ext = |tbs: &x509_cert::TbsCertificate, oid| {
        tbs.extensions()
            .unwrap()
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.clone())
    };
    for oid in [
        oids::SUBJECT_ALT_NAME,
        oids::MS_CERTIFICATE_TEMPLATE,
        oids::EXT_KEY_USAGE,
        oids::KEY_USAGE,
    ] {
        assert_eq!(ext(new_tbs, oid), ext(old_tbs, oid), "{oid}");
    }
    assert_ne!(
        ext(new_tbs, oids::SUBJECT_KEY_IDENTIFIER),
        ext(old_tbs, oids::SUBJECT_KEY_IDENTIFIER)
    );
    assert!(ca.counters().contains(&("issued".into(), 1)));
}

#[test]
fn tls_identity_must_be_the_certificate_being_renewed() {
    let ca = ca();
    let client = Client::new(&ca);
    let other = Client::new(&ca);
    let reply = ca.handle_cmc(&client.request(), other.old_cert.der());
    let resp = parse(&reply.body);
    assert_eq!(
        resp.outcome,
        Outcome::Failed {
            fail_info: Some(CmcFailInfo::BadIdentity)
        }
    );
    assert!(resp.status_string.unwrap().starts_with("0x80070005"));
}

#[test]
fn certificates_of_another_ca_are_refused() {
    let ca = ca();
    let foreign = renewal_core::sample::Sample::deterministic().unwrap();
    let client = Client {
        old_key: foreign.old_key,
        old_cert: foreign.old_cert,
        new_key: foreign.new_key,
    };
    assert_rejected(
        &ca,
        &client,
        &client.request(),
        CmcFailInfo::BadIdentity,
        "0x800B0109",
    );
}

#[test]
fn expired_certificates_are_refused_unless_within_grace() {
    let ca = ca();
    let client = Client::new(&ca);
    ca.clock().advance(Duration::from_secs(366 * 86400));
    assert_rejected(
        &ca,
        &client,
        &client.request(),
        CmcFailInfo::BadTime,
        "0x800B0101",
    );
    let lenient = ca_with("grace_days = 30");
    let client = Client::new(&lenient);
    lenient.clock().advance(Duration::from_secs(366 * 86400));
    assert_eq!(
        parse(
            &lenient
                .handle_cmc(&client.request(), client.old_cert.der())
                .body
        )
        .outcome,
        Outcome::Issued
    );
}

#[test]
fn revoked_certificates_are_refused() {
    let ca = ca();
    let client = Client::new(&ca);
    let serial = renewal_core::cmc::verify_request::hex(
        client
            .old_cert
            .value()
            .tbs_certificate()
            .serial_number()
            .as_bytes(),
    );
    ca.revoke(&serial).unwrap();
    assert_rejected(
        &ca,
        &client,
        &client.request(),
        CmcFailInfo::BadCertId,
        "0x80092010",
    );
}

#[test]
fn no_elevation_of_subject_or_names() {
    let ca = ca();
    let client = Client::new(&ca);
    let request = mutated(&client, &client.new_key, |req| {
        req.info.subject = std::str::FromStr::from_str("CN=Administrator,O=cardrenew").unwrap();
    });
    assert_rejected(
        &ca,
        &client,
        &request,
        CmcFailInfo::BadRequest,
        "0x80094806",
    );
    let request = mutated(&client, &client.new_key, |req| {
        let attrs: Vec<_> = req
            .info
            .attributes
            .iter()
            .cloned()
            .map(|mut a| {
                if a.oid == oids::ID_EXTENSION_REQUEST {
                    let mut exts: Vec<x509_cert::ext::Extension> =
                        a.values.iter().next().unwrap().decode_as().unwrap();
                    exts.retain(|e| e.extn_id != oids::SUBJECT_ALT_NAME);
                    a.values =
                        SetOfVec::try_from(vec![der::asn1::Any::encode_from(&exts).unwrap()])
                            .unwrap();
                }
                a
            })
            .collect();
        req.info.attributes = SetOfVec::try_from(attrs).unwrap();
    });
    assert_rejected(
        &ca,
        &client,
        &request,
        CmcFailInfo::BadRequest,
        "0x80094806",
    );
}

#[test]
fn the_template_cannot_change() {
    let ca = ca();
    let client = Client::new(&ca);
    let mut params = Client::params();
    params.template = Some(TemplateRef::from_user_text("SmartcardUserApproval"));
    assert_rejected(
        &ca,
        &client,
        &client.request_with(params),
        CmcFailInfo::BadRequest,
        "0x80094012",
    );
    let mut params = Client::params();
    params.template = Some(TemplateRef::from_user_text("WebServer"));
    assert_rejected(
        &ca,
        &client,
        &client.request_with(params),
        CmcFailInfo::BadRequest,
        "0x80094800",
    );
}

#[test]
fn the_new_key_must_be_new_and_allowed() {
    let ca = ca();
    let client = Client::new(&ca);
    // The PKCS#10 asks for the old key, signed by it; the CMS signers are the old key twice.
    let old_spki = client.old_key.public_key().clone();
    let reuse = Client {
        old_key: SoftwareKey::from_pem_or_der(client.old_key.to_pkcs8_pem().unwrap().as_bytes())
            .unwrap(),
        old_cert: client.old_cert.clone(),
        new_key: SoftwareKey::from_pem_or_der(client.old_key.to_pkcs8_pem().unwrap().as_bytes())
            .unwrap(),
    };
    let request = mutated_signed_by(&client, &reuse, &client.old_key, |req| {
        req.info.public_key = old_spki
    });
    assert_rejected(
        &ca,
        &client,
        &request,
        CmcFailInfo::NoKeyReuse,
        "0x80070057",
    );

    let rsa_only = ca_with(&format!(
        "[[template]]\noid = \"{}\"\nname = \"SmartcardUser\"\nallowed_keys = [\"rsa2048\"]\n",
        renewal_core::sample::SAMPLE_TEMPLATE_OID
    ));
    let client = Client::new(&rsa_only);
    assert_rejected(
        &rsa_only,
        &client,
        &client.request(),
        CmcFailInfo::BadAlg,
        "0x80090008",
    );
}

#[test]
fn proof_of_possession_and_signatures() {
    let ca = ca();
    let client = Client::new(&ca);
    let request = mutated(&client, &client.old_key, |_| {});
    assert_rejected(&ca, &client, &request, CmcFailInfo::PopFailed, "0x80090006");
    let mut sd = renewal_core::cmc::parse_request(&client.request(), &Default::default())
        .unwrap()
        .signed_data;
    let mut sig = sd.signer_infos.0[1].signature.as_bytes().to_vec();
    sig[10] ^= 1;
    sd.signer_infos.0[1].signature = OctetString::new(sig).unwrap();
    assert_rejected(
        &ca,
        &client,
        &sd.to_content_info_der().unwrap(),
        CmcFailInfo::BadMessageCheck,
        "0x80090006",
    );
}

#[test]
fn exactly_one_pkcs10_and_a_proper_renewal_attribute() {
    let ca = ca();
    let client = Client::new(&ca);
    let parsed = renewal_core::cmc::parse_request(&client.request(), &Default::default()).unwrap();
    let RequestContent::Cmc(mut pki) = parsed.content else {
        panic!()
    };
    pki.req_sequence.push(pki.req_sequence[0].clone());
    assert_rejected(
        &ca,
        &client,
        &sign(&client, &pki),
        CmcFailInfo::BadRequest,
        "0x8007000D",
    );

    let request = mutated(&client, &client.new_key, |req| {
        let kept: Vec<_> = req
            .info
            .attributes
            .iter()
            .filter(|a| a.oid != oids::MS_RENEWAL_CERTIFICATE)
            .cloned()
            .collect();
        req.info.attributes = SetOfVec::try_from(kept).unwrap();
    });
    assert_rejected(&ca, &client, &request, CmcFailInfo::BadCertId, "0x8009400E");

    // Signed by the new key only (Microsoft's published sample shape): the old key never
    // signed, so the TLS identity is not bound to the request.
    let mut sd: SignedData =
        renewal_core::cmc::parse_request(&client.request(), &Default::default())
            .unwrap()
            .signed_data;
    sd.signer_infos.0.truncate(1);
    assert_rejected(
        &ca,
        &client,
        &sd.to_content_info_der().unwrap(),
        CmcFailInfo::BadCertId,
        "0x8009400E",
    );
}

#[test]
fn replays_are_refused() {
    let ca = ca();
    let client = Client::new(&ca);
    let request = client.request();
    assert_eq!(
        parse(&ca.handle_cmc(&request, client.old_cert.der()).body).outcome,
        Outcome::Issued
    );
    assert_rejected(
        &ca,
        &client,
        &request,
        CmcFailInfo::BadRequest,
        "0x80094003",
    );
    // A fresh transaction id with an old nonce is still a replay.
    let mut params = Client::params();
    let first = Client::params();
    params.sender_nonce = first.sender_nonce.clone();
    let _ = ca.handle_cmc(&client.request_with(first), client.old_cert.der());
    assert_rejected(
        &ca,
        &client,
        &client.request_with(params),
        CmcFailInfo::BadRequest,
        "0x80094003",
    );
}

#[test]
fn malformed_and_oversized_input() {
    let ca = ca();
    let client = Client::new(&ca);
    let mut request = client.request();
    request.truncate(request.len() - 5);
    assert_rejected(
        &ca,
        &client,
        &request,
        CmcFailInfo::BadRequest,
        "0x8007000D",
    );
    assert_rejected(
        &ca,
        &client,
        &vec![0x30; 300 * 1024],
        CmcFailInfo::BadRequest,
        "0x80094007",
    );
    let _ = PkiData::from_der(&[]);
}
