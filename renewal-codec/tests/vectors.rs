//! The third-party vector ledger: every file in `tests/vectors` ends Pass, KnownDivergence
//! (with the reason) or Unexpected; only Unexpected fails. Each entry states what the vector
//! must do, so a regression in the codec turns a Pass into Unexpected.
// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use renewal_codec::cmc::{
    CmcError, DigestAlgorithm, Limits, Outcome, RequestShape, ResponseForm, SignedBy,
    parse_request, parse_response, verify_request::parse_signed_data,
};
use test_kit::{vector, vectors_dir};

/// What a request vector must yield.
#[derive(Debug)]
enum RequestExpectation {
    /// A valid renewal of the given shape; `old_key_signed` as stated.
    Renewal {
        shape: RequestShape,
        old_key_signed: bool,
        template: Option<&'static str>,
    },
    /// Signatures verify, but it is not a renewal: no renewal-certificate attribute.
    NewRequest,
    /// Signatures verify; renewal extraction fails on the request count (CRMF or no request).
    NotPkcs10 { pkcs10_count: usize },
}

#[derive(Debug)]
enum Expectation {
    Request {
        signers: &'static [SignedBy],
        digest: DigestAlgorithm,
        then: RequestExpectation,
    },
    Response {
        certificates: usize,
        /// `Some(true)`: the 21.17 hash matches a certificate in the message.
        issued_hash_matches: Option<bool>,
    },
    /// Must fail to parse with a typed "malformed" error, not a panic.
    Corrupt,
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Pass,
    KnownDivergence(&'static str),
    Unexpected(String),
}

use RequestExpectation::*;
use SignedBy::*;

fn ledger() -> Vec<(&'static str, Expectation, Option<&'static str>)> {
    let sha1 = DigestAlgorithm::Sha1;
    let sha256 = DigestAlgorithm::Sha256;
    vec![
        (
            "ms-docs-cmc-renewal-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: Renewal {
                    shape: RequestShape::CmcNewKeyOnly,
                    old_key_signed: false,
                    template: None,
                },
            },
            None,
        ),
        (
            "ms-docs-cmc-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "ms-docs-cmc-eobo-request.der",
            Expectation::Request {
                signers: &[RequestKey, EmbeddedCertificate(0)],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "ms-docs-cmc-key-archival-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "ms-docs-pkcs7-renewal-request.der",
            Expectation::Request {
                signers: &[RenewalCertificate],
                digest: sha1,
                then: Renewal {
                    shape: RequestShape::CmsWithPkcs10,
                    old_key_signed: true,
                    template: None,
                },
            },
            None,
        ),
        (
            "ms-docs-pkcs7-eobo-request.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "ms-wstep-renewal-request-pkcs7.der",
            Expectation::Request {
                signers: &[RenewalCertificate],
                digest: sha1,
                then: Renewal {
                    shape: RequestShape::CmsWithPkcs10,
                    old_key_signed: true,
                    template: Some("User"),
                },
            },
            None,
        ),
        (
            "ms-otpce-signed-cmc-request.der",
            Expectation::Request {
                signers: &[NoSignature, EmbeddedCertificate(0)],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "pyasn1-rfc6402-ms-cmc-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "win11-certreq-cmc-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha256,
                then: NewRequest,
            },
            None,
        ),
        (
            "tamemycerts-mmc-cmc-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        // Signed by an existing certificate but without the 13.1 attribute: by MS-WCCE a new
        // request, which is exactly what we must say.
        (
            "tamemycerts-pkcs7-signed-p10-request.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha256,
                then: NewRequest,
            },
            None,
        ),
        (
            "ejbca-windows-keyarchival-cmc-request.der",
            Expectation::Request {
                signers: &[RequestKey],
                digest: sha1,
                then: NewRequest,
            },
            None,
        ),
        (
            "sunet-python-cmc-request-1.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha256,
                then: NotPkcs10 { pkcs10_count: 0 },
            },
            None,
        ),
        (
            "sunet-python-cmc-request-2.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha256,
                then: NewRequest,
            },
            None,
        ),
        (
            "sunet-python-cmc-request-3.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha256,
                then: NotPkcs10 { pkcs10_count: 0 },
            },
            None,
        ),
        (
            "sunet-python-cmc-request-4.der",
            Expectation::Request {
                signers: &[EmbeddedCertificate(0)],
                digest: sha256,
                then: NotPkcs10 { pkcs10_count: 0 },
            },
            None,
        ),
        (
            "ms-mim-cmc-response-issued.der",
            Expectation::Response {
                certificates: 3,
                issued_hash_matches: Some(true),
            },
            None,
        ),
        // The shared README (§C) says these two MS-WSTEP examples carry a 21.17 hash that is
        // not the SHA-1 of their EE certificate. It is: `openssl x509 -fingerprint -sha1` on the
        // "abby" certificates gives 58acd78e... and 8a205e6c..., the hashes in the messages.
        (
            "ms-wstep-cmc-response-issued.der",
            Expectation::Response {
                certificates: 3,
                issued_hash_matches: Some(true),
            },
            None,
        ),
        (
            "ms-wstep-cmc-response-renewal.repaired.der",
            Expectation::Response {
                certificates: 3,
                issued_hash_matches: Some(true),
            },
            None,
        ),
        (
            "ms-wstep-cmc-response-renewal.published-CORRUPT.b64",
            Expectation::Corrupt,
            None,
        ),
    ]
}

fn check(name: &str, expectation: &Expectation) -> Result<(), String> {
    let bytes = vector(name);
    let limits = Limits::default();
    match expectation {
        Expectation::Corrupt => match parse_response(&bytes, &limits) {
            Err(CmcError::Malformed {
                what: "ContentInfo",
                ..
            }) => Ok(()),
            other => Err(format!(
                "expected a Malformed ContentInfo error, got {other:?}"
            )),
        },
        Expectation::Request {
            signers,
            digest,
            then,
        } => {
            let parsed = parse_request(&bytes, &limits).map_err(|e| format!("parse: {e}"))?;
            // Byte-identical re-encoding: nothing lost, order kept.
            let reencoded = parsed
                .signed_data
                .to_content_info_der()
                .map_err(|e| format!("re-encode: {e}"))?;
            if reencoded != bytes {
                return Err("re-encoding differs from the original bytes".into());
            }
            let reports = parsed
                .verify_signatures()
                .map_err(|e| format!("verify: {e}"))?;
            let got: Vec<_> = reports.iter().map(|r| r.signed_by.clone()).collect();
            if got != *signers {
                return Err(format!("signers {got:?}, expected {signers:?}"));
            }
            if reports.iter().any(|r| r.digest != Some(*digest)) {
                return Err(format!("digest is not {digest:?}"));
            }
            match (then, parsed.verify()) {
                (
                    Renewal {
                        shape,
                        old_key_signed,
                        template,
                    },
                    Ok(f),
                ) => {
                    if f.shape != *shape || f.old_key_signed != *old_key_signed {
                        return Err(format!(
                            "renewal {:?}/{}, expected {shape:?}/{old_key_signed}",
                            f.shape, f.old_key_signed
                        ));
                    }
                    let got_template = f.template.as_ref().map(|t| t.to_string());
                    if got_template.as_deref() != *template {
                        return Err(format!("template {got_template:?}, expected {template:?}"));
                    }
                    Ok(())
                }
                (NewRequest, Err(CmcError::MissingRenewalCertificate)) => Ok(()),
                (NotPkcs10 { pkcs10_count }, Err(CmcError::RequestCount { found }))
                    if found == *pkcs10_count =>
                {
                    Ok(())
                }
                (expected, got) => Err(format!("expected {expected:?}, got {got:?}")),
            }
        }
        Expectation::Response {
            certificates,
            issued_hash_matches,
        } => {
            let resp = parse_response(&bytes, &limits).map_err(|e| format!("parse: {e}"))?;
            if resp.form != ResponseForm::FullPkiResponse || resp.outcome != Outcome::Issued {
                return Err(format!("{:?} {:?}", resp.form, resp.outcome));
            }
            if resp.status_string.as_deref() != Some("Issued") {
                return Err(format!("status string {:?}", resp.status_string));
            }
            if resp.certificates.len() != *certificates {
                return Err(format!("{} certificates", resp.certificates.len()));
            }
            resp.verify_signer().map_err(|e| format!("signer: {e}"))?;
            let reencoded = resp
                .signed_data
                .as_ref()
                .ok_or("no SignedData")?
                .to_content_info_der()
                .map_err(|e| e.to_string())?;
            if reencoded != bytes {
                return Err("re-encoding differs".into());
            }
            let matches = resp.issued_cert_hash.as_ref().map(|h| {
                resp.certificates
                    .iter()
                    .any(|c| DigestAlgorithm::Sha1.digest(c.der()) == *h)
            });
            if matches != *issued_hash_matches {
                return Err(format!(
                    "issued-cert hash match {matches:?}, expected {issued_hash_matches:?}"
                ));
            }
            Ok(())
        }
    }
}

#[test]
fn every_vector_is_in_the_ledger_with_no_unexpected_outcome() {
    let ledger = ledger();
    let mut on_disk: Vec<String> = std::fs::read_dir(vectors_dir())
        .expect("vectors dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".der") || n.contains("CORRUPT"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = ledger.iter().map(|(n, ..)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every vector must have a ledger entry");

    let mut table = Vec::new();
    for (name, expectation, divergence) in &ledger {
        let verdict = match (check(name, expectation), divergence) {
            (Ok(()), None) => Verdict::Pass,
            (Err(_), Some(reason)) => Verdict::KnownDivergence(reason),
            (Ok(()), Some(_)) => Verdict::Unexpected(
                "passes but is marked KnownDivergence: update the ledger".into(),
            ),
            (Err(e), None) => Verdict::Unexpected(e),
        };
        println!("{name:55} {verdict:?}");
        table.push((name, verdict));
    }
    let unexpected: Vec<_> = table
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Unexpected(_)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected outcomes: {unexpected:#?}"
    );
    let passes = table.iter().filter(|(_, v)| *v == Verdict::Pass).count();
    assert_eq!(passes, 21, "all 21 vectors pass");
}

/// The `.der` files are what their provenance README says (SHA-256 list).
#[test]
fn vector_files_match_their_published_hashes() {
    let readme = std::fs::read_to_string(vectors_dir().join("README.md")).expect("README");
    let mut checked = 0;
    for line in readme.lines() {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if hash.len() != 64 || !name.ends_with(".der") {
            continue;
        }
        let got =
            renewal_codec::cmc::verify_request::hex(&DigestAlgorithm::Sha256.digest(&vector(name)));
        assert_eq!(got, hash, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 20);
}

/// Where the publisher gave base64 or PEM, it decodes to the same DER.
#[test]
fn published_text_forms_decode_to_the_der() {
    let mut checked = 0;
    for entry in std::fs::read_dir(vectors_dir()).expect("dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name
            .strip_suffix(".published.b64")
            .or_else(|| name.strip_suffix(".published.pem"))
        else {
            continue;
        };
        let (der, _) =
            renewal_codec::cmc::input::to_der(&vector(&name), &Limits::default()).expect(&name);
        assert_eq!(der, vector(&format!("{stem}.der")), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 13);
}

/// The SignedData of every vector survives the limits it should, and tight limits bite with
/// a typed error.
#[test]
fn limits_are_enforced_with_typed_errors() {
    let bytes = vector("ms-mim-cmc-response-issued.der");
    let tight = Limits {
        max_certificates: 2,
        ..Limits::default()
    };
    match parse_signed_data(&bytes, &tight) {
        Err(CmcError::TooMany {
            what: "certificates",
            count: 3,
            max: 2,
        }) => {}
        other => panic!("{other:?}"),
    }
    let eobo = vector("ms-docs-cmc-eobo-request.der");
    let one_signer = Limits {
        max_signers: 1,
        ..Limits::default()
    };
    match parse_request(&eobo, &one_signer) {
        Err(CmcError::TooMany {
            what: "signers",
            count: 2,
            max: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
}
