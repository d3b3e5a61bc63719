//! The `adcs` and `strict` acceptance profiles. A renewal shaped as certipy-ad 5.1.0 encodes
//! it (`create_csr` with the renewal-certificate attribute, then `create_renewal`: the PKCS#10
//! in id-data content, SignedData version 3 over a version-1 structure, one
//! issuerAndSerialNumber signer — the old certificate — whose signed attributes hold a
//! messageDigest and no contentType, signatureAlgorithm sha256WithRSAEncryption), built here
//! from that description, is issued under `adcs` (sim-ca's default, as ADCS issues it) and
//! refused under `strict`; the findings name both deviations with their clauses. The
//! tolerances go no further: the same deviations in a CMC request, the opposite version
//! error, or a wrong signer are refused under `adcs` too.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use cms::{
    cert::IssuerAndSerialNumber,
    content_info::CmsVersion,
    signed_data::{EncapsulatedContentInfo, SignerIdentifier},
};
use common::{Client, ca_with, parse};
use der::{Any, Encode, asn1::OctetString};
use renewal_codec::cmc::{
    DigestAlgorithm, Limits, Outcome, Profile, Severity, SignatureAlgorithm, Signer, SoftwareKey,
    asn1::SetOf,
    oids, parse_request,
    request::build_renewal_pkcs10,
    signed_data::{Attribute, CertificateChoice, SignedData, SignerInfo},
};

/// How the request deviates (each a knob so one test can turn exactly one on).
#[derive(Clone, Copy)]
struct Shape {
    signed_data_version: CmsVersion,
    content_type_attribute: bool,
    /// Sign the CMS layer with the new key instead of the old one.
    wrong_signer: bool,
}

const CERTIPY: Shape = Shape {
    signed_data_version: CmsVersion::V3,
    content_type_attribute: false,
    wrong_signer: false,
};

fn rsa_client(ca: &sim_ca::Ca) -> Client {
    Client::with_keys(
        ca,
        SoftwareKey::generate_rsa2048().unwrap(),
        SoftwareKey::generate_rsa2048().unwrap(),
    )
}

/// A "CMS with PKCS #10" renewal (MS-WCCE §3.2.1.4.2.1.4.2.1) shaped as described above.
fn cms_with_pkcs10(client: &Client, shape: Shape) -> Vec<u8> {
    let pkcs10 = build_renewal_pkcs10(&client.old_cert, &client.new_key, None).unwrap();
    let content = pkcs10.der().to_vec();
    let digest = DigestAlgorithm::Sha256.digest(&content);
    let mut attrs = vec![
        Attribute::single(oids::ID_MESSAGE_DIGEST, &OctetString::new(digest).unwrap()).unwrap(),
    ];
    if shape.content_type_attribute {
        // DER order: contentType (…9.3) sorts before messageDigest (…9.4).
        attrs.insert(
            0,
            Attribute::single(oids::ID_CONTENT_TYPE, &oids::ID_DATA).unwrap(),
        );
    }
    let signed_attrs = SetOf(attrs);
    let signer: &SoftwareKey = if shape.wrong_signer {
        &client.new_key
    } else {
        &client.old_key
    };
    let signature = signer.sign(&signed_attrs.to_der().unwrap()).unwrap();
    let tbs = client.old_cert.value().tbs_certificate();
    let signed_data = SignedData {
        version: shape.signed_data_version,
        digest_algorithms: SetOf(vec![DigestAlgorithm::Sha256.identifier()]),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: Some(Any::encode_from(&OctetString::new(content).unwrap()).unwrap()),
        },
        certificates: Some(SetOf(vec![CertificateChoice::Certificate(
            client.old_cert.clone(),
        )])),
        crls: None,
        signer_infos: SetOf(vec![SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: DigestAlgorithm::Sha256.identifier(),
            signed_attrs: Some(signed_attrs),
            // sha256WithRSAEncryption, not rsaEncryption: allowed by RFC 5754 §3.2.
            signature_algorithm: SignatureAlgorithm::RSA_PKCS1_SHA256
                .x509_identifier()
                .unwrap(),
            signature: OctetString::new(signature).unwrap(),
            unsigned_attrs: None,
        }]),
    };
    signed_data.to_content_info_der().unwrap()
}

fn outcome(ca: &sim_ca::Ca, client: &Client, request: &[u8]) -> (Outcome, String) {
    let reply = ca.handle_cmc(request, client.old_cert.der());
    let response = parse(&reply.body);
    response.verify_signer().unwrap();
    (
        response.outcome.clone(),
        response.status_string.clone().unwrap_or_default(),
    )
}

const STRICT: &str = "profile = \"strict\"\n";

#[test]
fn the_certipy_shaped_renewal_is_issued_under_adcs_and_refused_under_strict() {
    let ca = ca_with("");
    let client = rsa_client(&ca);
    let request = cms_with_pkcs10(&client, CERTIPY);

    let (got, text) = outcome(&ca, &client, &request);
    assert_eq!(got, Outcome::Issued, "{text}");

    let strict = ca_with(STRICT);
    let client = rsa_client(&strict);
    let request = cms_with_pkcs10(&client, CERTIPY);
    let (got, text) = outcome(&strict, &client, &request);
    assert!(matches!(got, Outcome::Failed { .. }), "{got:?}");
    assert_eq!(
        text,
        "0x8007000D: malformed request: SignedData: version 3 is inconsistent with the \
         structure (expected 1)"
    );
    // With the version right, strict still refuses the missing contentType.
    let request = cms_with_pkcs10(
        &client,
        Shape {
            signed_data_version: CmsVersion::V1,
            ..CERTIPY
        },
    );
    let (got, text) = outcome(&strict, &client, &request);
    assert!(matches!(got, Outcome::Failed { .. }), "{got:?}");
    assert!(text.contains("contentType"), "{text}");
    // And the RFC-clean form of the same request is issued under strict.
    let request = cms_with_pkcs10(
        &client,
        Shape {
            signed_data_version: CmsVersion::V1,
            content_type_attribute: true,
            ..CERTIPY
        },
    );
    let (got, text) = outcome(&strict, &client, &request);
    assert_eq!(got, Outcome::Issued, "{text}");
}

#[test]
fn findings_name_each_deviation_with_its_clause() {
    let ca = ca_with("");
    let client = rsa_client(&ca);
    let parsed = parse_request(&cms_with_pkcs10(&client, CERTIPY), &Limits::default()).unwrap();
    let findings: Vec<_> = parsed
        .findings()
        .into_iter()
        .map(|f| (f.severity, f.clause, f.message))
        .collect();
    assert_eq!(
        findings,
        [
            (
                Severity::Warning,
                "RFC 5652 §5.3, §11.1",
                "SignerInfo 0: signed attributes without the contentType attribute".to_string()
            ),
            (
                Severity::Warning,
                "RFC 5652 §5.1",
                "SignedData: version 3 is inconsistent with the structure (expected 1)".to_string()
            ),
        ]
    );
    // The same bytes verify under adcs and not under strict.
    assert!(parsed.verify().is_err());
    assert!(parsed.with_profile(Profile::Adcs).verify().is_ok());
    // Our own requests have no findings.
    let ours = parse_request(&client.request(), &Limits::default()).unwrap();
    assert_eq!(ours.findings(), []);
}

#[test]
fn the_adcs_tolerances_go_no_further() {
    let ca = ca_with("");
    let client = rsa_client(&ca);
    // Signed by the new key instead of the certificate being renewed.
    let request = cms_with_pkcs10(
        &client,
        Shape {
            wrong_signer: true,
            ..CERTIPY
        },
    );
    let (got, text) = outcome(&ca, &client, &request);
    assert!(matches!(got, Outcome::Failed { .. }), "{text}");

    // A CMC (PKIData) request stays under RFC 5652: a SignedData version 1 where 3 is due
    // is refused, as is a version 3 id-data request whose signer is identified by key id.
    let cmc = client.request();
    let mut parsed = parse_request(&cmc, &Limits::default()).unwrap();
    parsed.signed_data.version = CmsVersion::V1;
    let lowered = parsed.signed_data.to_content_info_der().unwrap();
    let (got, text) = outcome(&ca, &client, &lowered);
    assert!(matches!(got, Outcome::Failed { .. }), "{got:?}");
    assert!(
        text.contains("SignedData: version 1 is inconsistent with the structure (expected 3)"),
        "{text}"
    );
    let findings = parse_request(&lowered, &Limits::default())
        .unwrap()
        .findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Error);

    // A CMC request whose signers dropped contentType: refused under adcs.
    let mut parsed = parse_request(&cmc, &Limits::default()).unwrap();
    for si in parsed.signed_data.signer_infos.0.iter_mut() {
        if let Some(attrs) = si.signed_attrs.as_mut() {
            attrs.0.retain(|a| a.oid != oids::ID_CONTENT_TYPE);
        }
    }
    let stripped = parsed.signed_data.to_content_info_der().unwrap();
    let (got, text) = outcome(&ca, &client, &stripped);
    assert!(matches!(got, Outcome::Failed { .. }), "{got:?}");
    assert!(text.contains("contentType"), "{text}");
}

/// `renew inspect` shows the deviations as a linter would and says which profile holds.
#[test]
fn inspect_reports_the_findings_and_the_profile() {
    let ca = ca_with("");
    let client = rsa_client(&ca);
    let inspection =
        renewal_codec::inspect::inspect(&cms_with_pkcs10(&client, CERTIPY), &Limits::default())
            .unwrap();
    let text = inspection.tree.render();
    assert!(text.contains("Findings (2)"), "{text}");
    assert!(
        text.contains(
            "RFC 5652 §5.1: SignedData: version 3 is inconsistent with the structure (expected \
             1) — warning (ADCS accepts it; the strict profile refuses it)"
        ),
        "{text}"
    );
    assert!(
        text.contains("Renewal: verified under the adcs profile only (CmsWithPkcs10)"),
        "{text}"
    );
    assert!(
        text.contains("-> the certificate being renewed: signature OK"),
        "{text}"
    );
    assert_eq!(inspection.summary["renewal"]["profile"], "adcs");
    assert_eq!(inspection.summary["findings"][1]["clause"], "RFC 5652 §5.1");
    assert_eq!(inspection.summary["findings"][1]["severity"], "warning");
}
