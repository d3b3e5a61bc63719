//! The MS-WSTEP vector ledger (`tests/vectors/wstep/`, provenance in its README): every
//! envelope parses into what it says — the requests' PKCS #7 parsed and verified by the CMC
//! codec, the issued answers' CMC response and certificate, the faults' HRESULTs — and our own
//! envelopes are compared with them element by element (namespaces, Action URIs, order).

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

use renewal_codec::{
    cmc::{Limits, Outcome, RequestShape, parse_request as parse_cmc, parse_response},
    wstep::{
        self, ACTION_FAULT, ACTION_RST, ACTION_RSTRC, Answer, RequestKind, XmlLimits, build_answer,
        build_request, parse_answer, parse_request,
        xml::{Element, parse},
    },
};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/vectors/wstep/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn limits() -> XmlLimits {
    XmlLimits::default()
}

#[test]
fn the_renewal_request_carries_a_cms_with_pkcs10_renewal_that_verifies() {
    let request = parse_request(&vector("renewal_client_request.xml"), &limits()).unwrap();
    assert_eq!(
        request.message_id.as_deref(),
        Some("urn:uuid:b0a9b388-2581-451d-8c03-270d4ffe2928")
    );
    let RequestKind::Issue(pkcs7) = request.kind else {
        panic!("{:?}", request.kind)
    };
    let facts = parse_cmc(&pkcs7, &Limits::default())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(facts.shape, RequestShape::CmsWithPkcs10);
    assert!(facts.old_key_signed);
}

#[test]
fn the_standard_request_and_the_pending_retrieval_parse() {
    let request = parse_request(
        &vector("standard_certificate_client_request.xml"),
        &limits(),
    )
    .unwrap();
    let RequestKind::Issue(pkcs7) = request.kind else {
        panic!("{:?}", request.kind)
    };
    // KnownDivergence: the token's ValueType says #PKCS7, but certenroll put a bare PKCS #10
    // there for this new-certificate request. It is one, and it is not CMS.
    assert!(parse_cmc(&pkcs7, &Limits::default()).is_err());
    let pkcs10: x509_cert::request::CertReq = der::Decode::from_der(&pkcs7).unwrap();
    assert_eq!(pkcs10.info.version, x509_cert::request::Version::V1);
    let pended = parse_request(
        &vector("retrieve_pended_certificate_request.xml"),
        &limits(),
    )
    .unwrap();
    assert_eq!(pended.kind, RequestKind::QueryTokenStatus(65));
}

fn issued(file: &str) -> (Vec<u8>, Vec<u8>, Option<u64>) {
    let Answer::Token {
        disposition,
        pkcs7,
        certificate,
        request_id,
    } = parse_answer(&vector(file), &limits()).unwrap()
    else {
        panic!("{file}: not a token")
    };
    assert_eq!(disposition, "Issued", "{file}");
    (pkcs7.unwrap(), certificate.unwrap(), request_id)
}

#[test]
fn issued_answers_carry_the_cmc_response_and_the_certificate() {
    let (pkcs7, certificate, _) = issued("standard_certificate_server_response.xml");
    let response = parse_response(&pkcs7, &Limits::default()).unwrap();
    assert_eq!(response.outcome, Outcome::Issued);
    // The X509v3 token is one of the response's certificates.
    assert!(response.certificates.iter().any(|c| c.der() == certificate));

    // KnownDivergence: the renewal answer's CMC response is the published one that lost a
    // base64 line (see ../vectors/README.md, `ms-wstep-cmc-response-renewal`): it is refused
    // as truncated, exactly as the standalone corrupt vector is, and the repaired DER holds
    // the certificate the envelope's X509v3 token carries.
    let (pkcs7, certificate, request_id) = issued("renewal_server_response.xml");
    assert_eq!(request_id, Some(63));
    let error = parse_response(&pkcs7, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("ContentInfo"), "{error}");
    let repaired = std::fs::read(format!(
        "{}/tests/vectors/ms-wstep-cmc-response-renewal.repaired.der",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let response = parse_response(&repaired, &Limits::default()).unwrap();
    assert_eq!(response.outcome, Outcome::Issued);
    assert!(response.certificates.iter().any(|c| c.der() == certificate));
}

#[test]
fn faults_decode_to_their_hresults() {
    for (file, hresult, reason, id) in [
        (
            "fault_bad_template_version_server_response.xml",
            Some(0x8009_4807u32),
            "Denied by Policy Module",
            Some(368),
        ),
        (
            "fault_restricted_officer_server_response.xml",
            Some(0x8009_4009),
            "",
            Some(28),
        ),
        (
            "fault_address_filter_mismatch_server_response.xml",
            None,
            "The message with To '' cannot be processed at the receiver, due to an AddressFilter \
             mismatch at the EndpointDispatcher.  Check that the sender and receiver's \
             EndpointAddresses agree.",
            None,
        ),
    ] {
        let answer = parse_answer(&vector(file), &limits()).unwrap();
        assert_eq!(answer.hresult(), hresult, "{file}");
        let Answer::Fault {
            reason: got,
            request_id,
            ..
        } = &answer
        else {
            panic!("{file}: not a fault")
        };
        assert_eq!(got, reason, "{file}");
        assert_eq!(*request_id, id, "{file}");
    }
    let Answer::Fault { code, reason, .. } =
        parse_answer(&vector("fault_server_response.xml"), &limits()).unwrap()
    else {
        panic!("not a fault")
    };
    assert_eq!(code, "s:Receiver");
    // Escaped text comes back unescaped.
    assert!(reason.contains("<<serviceDebug>>"), "{reason}");
}

/// The element skeleton of a document: (namespace, local name) paths in document order,
/// without the text, so two envelopes compare by structure.
fn skeleton(e: &Element, prefix: &str, out: &mut Vec<String>) {
    let here = format!("{prefix}/{{{}}}{}", e.ns, e.name);
    out.push(here.clone());
    for c in &e.children {
        skeleton(c, &here, out);
    }
}

fn skeleton_of(xml: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    skeleton(&parse(xml, &limits()).unwrap(), "", &mut out);
    // Diagnostics headers WCF adds are not part of the protocol.
    out.retain(|p| !p.contains("ServiceModel/Diagnostics"));
    out
}

fn action(xml: &[u8]) -> String {
    let root = parse(xml, &limits()).unwrap();
    root.child(wstep::SOAP, "Header")
        .and_then(|h| h.child(wstep::ADDRESSING, "Action"))
        .unwrap()
        .text
        .clone()
}

#[test]
fn our_envelopes_have_the_vectors_shape() {
    // Request: same elements, namespaces and order as certenroll's renewal request.
    let theirs = vector("renewal_client_request.xml");
    let ours = build_request("urn:uuid:1", &RequestKind::Issue(vec![0x30, 0]));
    assert_eq!(skeleton_of(ours.as_bytes()), skeleton_of(&theirs));
    assert_eq!(action(ours.as_bytes()), action(&theirs));
    assert_eq!(action(ours.as_bytes()), ACTION_RST);
    let theirs = vector("retrieve_pended_certificate_request.xml");
    let ours = build_request("urn:uuid:1", &RequestKind::QueryTokenStatus(65));
    assert_eq!(skeleton_of(ours.as_bytes()), skeleton_of(&theirs));

    // Issued answer: as ADCS's, RelatesTo included.
    let theirs = vector("renewal_server_response.xml");
    let ours = build_answer(
        Some("urn:uuid:1"),
        &Answer::Token {
            disposition: "Issued".into(),
            pkcs7: Some(vec![0x30, 0]),
            certificate: Some(vec![0x30, 0]),
            request_id: Some(63),
        },
    );
    assert_eq!(skeleton_of(ours.as_bytes()), skeleton_of(&theirs));
    assert_eq!(action(ours.as_bytes()), ACTION_RSTRC);

    // Fault with detail: ADCS also sends BinaryResponse, which we leave out.
    let theirs = vector("fault_bad_template_version_server_response.xml");
    let ours = build_answer(
        Some("urn:uuid:1"),
        &Answer::Fault {
            code: "s:Receiver".into(),
            reason: "Denied by Policy Module".into(),
            error_code: Some(-2146875385),
            request_id: Some(368),
        },
    );
    let mut expected = skeleton_of(&theirs);
    expected.retain(|p| !p.ends_with("}BinaryResponse"));
    assert_eq!(skeleton_of(ours.as_bytes()), expected);
    assert_eq!(action(ours.as_bytes()), ACTION_FAULT);
    assert_eq!(action(ours.as_bytes()), action(&theirs));
}

/// `renew inspect` reads every envelope and shows what is inside.
#[test]
fn inspect_reads_every_envelope() {
    use renewal_codec::inspect::inspect;
    for (file, kind, inside) in [
        (
            "renewal_client_request.xml",
            "wstep-request",
            "CMS-with-PKCS#10 request",
        ),
        (
            "standard_certificate_client_request.xml",
            "wstep-request",
            "PKCS#10 certification request",
        ),
        (
            "retrieve_pended_certificate_request.xml",
            "wstep-request",
            "QueryTokenStatus for RequestID 65",
        ),
        (
            "standard_certificate_server_response.xml",
            "wstep-response",
            "\"Issued\"",
        ),
        (
            "renewal_server_response.xml",
            "wstep-response",
            "unreadable",
        ),
        (
            "fault_bad_template_version_server_response.xml",
            "wstep-fault",
            "HRESULT 0x80094807, RequestID 368",
        ),
        (
            "fault_restricted_officer_server_response.xml",
            "wstep-fault",
            "HRESULT 0x80094009",
        ),
        (
            "fault_address_filter_mismatch_server_response.xml",
            "wstep-fault",
            "HRESULT (none)",
        ),
        ("fault_server_response.xml", "wstep-fault", "s:Receiver"),
    ] {
        let inspection = inspect(&vector(file), &Limits::default()).unwrap();
        assert_eq!(inspection.kind, kind, "{file}");
        let text = inspection.tree.render();
        assert!(text.contains(inside), "{file}: {text}");
    }
}
