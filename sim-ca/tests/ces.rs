//! sim-ca's CES face in-process: an issued renewal answered as ADCS answers it, a pending one
//! collected with `QueryTokenStatus` by the client that submitted it (and by no other), a
//! refusal as a SOAP fault with its HRESULT, and hostile envelopes refused with a fault.

// Tests unwrap: a panic with the value is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, ca, ca_with};
use renewal_codec::{
    cmc::{Limits, Outcome, parse_response},
    wstep::{Answer, RequestKind, XmlLimits, build_request, parse_answer},
};
use sim_ca::ces::handle;

fn ask(ca: &sim_ca::Ca, client: &Client, kind: RequestKind) -> (u16, Answer) {
    let envelope = build_request("urn:uuid:0", &kind);
    let reply = handle(
        ca,
        envelope.as_bytes(),
        client.old_cert.der(),
        &Limits::default(),
    );
    let answer = parse_answer(reply.body.as_bytes(), &XmlLimits::default()).unwrap();
    (reply.status, answer)
}

#[test]
fn issued_with_the_cmc_response_and_the_certificate() {
    let ca = ca();
    let client = Client::new(&ca);
    let (status, answer) = ask(&ca, &client, RequestKind::Issue(client.request()));
    assert_eq!(status, 200);
    let Answer::Token {
        disposition,
        pkcs7: Some(pkcs7),
        certificate: Some(certificate),
        ..
    } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(disposition, "Issued");
    let response = parse_response(&pkcs7, &Limits::default()).unwrap();
    assert_eq!(response.outcome, Outcome::Issued);
    assert!(response.certificates.iter().any(|c| c.der() == certificate));
}

#[test]
fn pending_is_collected_with_query_token_status_by_its_submitter_only() {
    let ca = ca_with("[[rule]]\ndisposition = \"pending\"\nresolve = \"poll:1\"\n");
    let client = Client::new(&ca);
    let (status, answer) = ask(&ca, &client, RequestKind::Issue(client.request()));
    assert_eq!(status, 200);
    let Answer::Token {
        disposition,
        request_id: Some(id),
        certificate: None,
        ..
    } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(disposition, "Taken Under Submission");

    // Another user asking for this RequestID gets a fault, not the certificate.
    let other = Client::new(&ca);
    let (status, answer) = ask(&ca, &other, RequestKind::QueryTokenStatus(id));
    assert_eq!(status, 500);
    assert_eq!(answer.hresult(), Some(0x8009_4003), "{answer:?}");

    let (status, answer) = ask(&ca, &client, RequestKind::QueryTokenStatus(id));
    assert_eq!(status, 200, "{answer:?}");
    let Answer::Token {
        disposition,
        certificate: Some(_),
        request_id,
        ..
    } = answer
    else {
        panic!("{answer:?}")
    };
    assert_eq!(disposition, "Issued");
    assert_eq!(request_id, Some(id));
    // An unknown RequestID is a fault too.
    let (_, answer) = ask(&ca, &client, RequestKind::QueryTokenStatus(id + 1000));
    assert_eq!(answer.hresult(), Some(0x8009_4003));
}

#[test]
fn refusals_and_hostile_envelopes_are_faults() {
    let ca = ca_with("[[rule]]\ndisposition = \"deny\"\nreason = \"no\"\n");
    let client = Client::new(&ca);
    let (status, answer) = ask(&ca, &client, RequestKind::Issue(client.request()));
    assert_eq!(status, 500);
    assert_eq!(answer.hresult(), Some(0x8009_4011), "{answer:?}");

    for hostile in [
        br#"<!DOCTYPE x [<!ENTITY a "a">]><x>&a;</x>"#.to_vec(),
        b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>".to_vec(),
        "<a>".repeat(100).into_bytes(),
        b"not xml at all".to_vec(),
    ] {
        let reply = handle(&ca, &hostile, client.old_cert.der(), &Limits::default());
        assert_eq!(reply.status, 500);
        assert!(reply.cmc.is_none(), "nothing was decided");
        let answer = parse_answer(reply.body.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(answer.hresult(), Some(0x8007_000D), "{answer:?}");
    }
}

/// SOAP 1.2 Part 1 §5.2.3: a header block marked mustUnderstand that the CA does not process
/// is a MustUnderstand fault and the message is not processed; the same block without the
/// mark, or marked in another namespace, is ignored. One envelope per message: anything after
/// it but white space and comments is refused, nothing decided.
#[test]
fn headers_that_must_be_understood_and_content_after_the_envelope() {
    let ca = ca();
    let client = Client::new(&ca);
    let with_header = |block: &str| {
        build_request("urn:uuid:1", &RequestKind::Issue(client.request())).replacen(
            "</s:Header>",
            &format!("{block}</s:Header>"),
            1,
        )
    };
    let decide = |envelope: &str| {
        handle(
            &ca,
            envelope.as_bytes(),
            client.old_cert.der(),
            &Limits::default(),
        )
    };
    let unknown = r#"<x:Trace xmlns:x="urn:example:trace" s:mustUnderstand="true">1</x:Trace>"#;
    let reply = decide(&with_header(unknown));
    assert_eq!(reply.status, 500);
    assert!(reply.cmc.is_none(), "the message was processed");
    assert!(reply.body.contains("s:MustUnderstand"), "{}", reply.body);
    let Answer::Fault { code, .. } =
        parse_answer(reply.body.as_bytes(), &XmlLimits::default()).unwrap()
    else {
        panic!("not a fault")
    };
    assert!(code.ends_with("MustUnderstand"), "{code}");
    for ignorable in [
        r#"<x:Trace xmlns:x="urn:example:trace">1</x:Trace>"#,
        r#"<x:Trace xmlns:x="urn:example:trace" s:mustUnderstand="0">1</x:Trace>"#,
        r#"<x:Trace xmlns:x="urn:example:trace" x:mustUnderstand="1">1</x:Trace>"#,
    ] {
        let reply = decide(&with_header(ignorable));
        assert_eq!(reply.status, 200, "{ignorable}: {}", reply.body);
    }
    let envelope = build_request("urn:uuid:2", &RequestKind::Issue(client.request()));
    for trailing in ["<x/>", "text", &envelope] {
        let reply = decide(&format!("{envelope}{trailing}"));
        assert_eq!(reply.status, 500, "{trailing}");
        assert!(reply.cmc.is_none(), "{trailing}: decided");
    }
    let reply = decide(&format!("{envelope}\n  <!-- done -->\n"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The policy face (MS-XCEP) is SOAP too: a header block it must understand and does not is
/// a MustUnderstand fault and no policy is sent; the same block for another role is ignored.
#[test]
fn the_policy_face_faults_on_what_it_must_understand() {
    let ca = ca();
    let request = renewal_codec::xcep::build_request(
        "urn:uuid:1",
        "https://localhost/ADPolicyProvider_CEP_Certificate/service.svc/CEP",
    );
    let with = |block: &str| request.replacen("</s:Header>", &format!("{block}</s:Header>"), 1);
    let unknown = r#"<x:Trace xmlns:x="urn:example:trace" s:mustUnderstand="true">1</x:Trace>"#;
    let (status, body) = sim_ca::cep::handle(&ca, with(unknown).as_bytes(), "localhost");
    assert_eq!(status, 500);
    let Answer::Fault { code, .. } = parse_answer(body.as_bytes(), &XmlLimits::default()).unwrap()
    else {
        panic!("not a fault: {body}")
    };
    assert!(code.ends_with("MustUnderstand"), "{code}");
    assert!(!body.contains("GetPoliciesResponse"), "{body}");
    let elsewhere = r#"<x:Trace xmlns:x="urn:example:trace" s:mustUnderstand="1" s:role="urn:example:proxy">1</x:Trace>"#;
    let (status, body) = sim_ca::cep::handle(&ca, with(elsewhere).as_bytes(), "localhost");
    assert_eq!(status, 200, "{body}");
    let policies =
        renewal_codec::xcep::parse_response(body.as_bytes(), &XmlLimits::default()).unwrap();
    assert!(!policies.templates.is_empty());
}
