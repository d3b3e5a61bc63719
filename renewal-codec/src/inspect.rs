//! `renew inspect`: a readable tree of any CMC request or response, CMS-with-PKCS#10,
//! certs-only PKCS#7, PKCS#10 or certificate, with CMC and Microsoft OIDs named and every
//! signature checked. Think `certutil -dump`, CMC-aware. CMP messages too (`cmp`).

mod cmp;

use cms::content_info::ContentInfo;
use der::{
    Decode, Encode,
    asn1::{Any, Ia5String, ObjectIdentifier, OctetString},
};
use serde_json::{Value, json};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::{Certificate, ext::Extension, request::CertReq};

use crate::cmc::{
    CmcError, Limits, Profile, Result, Retained, Severity,
    controls::Control,
    crypto::key_identifier,
    input::{decode_exact, to_der},
    microsoft::{ClientInfo, CmcAddAttributes, CspProvider, NameValuePair, TemplateRef},
    oids,
    pki::{PkiData, TaggedRequest},
    response::parse_response,
    signed_data::{Attribute, SignedData},
    status::{OtherStatusInfo, OtherStatusInfoV2},
    verify_request::{
        RequestContent, SignedBy, hex, parse_request, parse_signed_data, renewal_certificate,
        verify_pkcs10,
    },
};

/// One line of the tree and what hangs under it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    /// The line.
    pub label: String,
    /// Sub-items.
    pub children: Vec<Node>,
}

impl Node {
    fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            children: vec![],
        }
    }

    fn with(mut self, child: Node) -> Self {
        self.children.push(child);
        self
    }

    fn push(&mut self, child: Node) {
        self.children.push(child);
    }

    /// Renders the tree, two spaces per level.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(0, &mut out);
        out
    }

    fn render_into(&self, depth: usize, out: &mut String) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&self.label);
        out.push('\n');
        for c in &self.children {
            c.render_into(depth + 1, out);
        }
    }

    /// The tree as JSON: `{ "label": .., "children": [..] }`.
    pub fn to_json(&self) -> Value {
        if self.children.is_empty() {
            json!({ "label": self.label })
        } else {
            json!({
                "label": self.label,
                "children": self.children.iter().map(Node::to_json).collect::<Vec<_>>(),
            })
        }
    }
}

/// What `inspect` found: a tree for people and a summary for machines.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// What the input is.
    pub kind: &'static str,
    /// The readable tree.
    pub tree: Node,
    /// Machine-readable facts (signers and whether they verify, template, ...).
    pub summary: Value,
}

impl Inspection {
    /// The `--json` document.
    pub fn to_json(&self) -> Value {
        json!({ "kind": self.kind, "summary": self.summary, "tree": self.tree.to_json() })
    }
}

/// Inspects DER, PEM or base64 input, or an MS-WSTEP SOAP envelope.
pub fn inspect(input: &[u8], limits: &Limits) -> Result<Inspection> {
    if input.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        return inspect_wstep(input, limits);
    }
    let (der, _) = to_der(input, limits)?;
    if let Ok(info) = ContentInfo::from_der(&der) {
        if info.content_type != oids::ID_SIGNED_DATA {
            return Err(CmcError::UnexpectedContentType {
                expected: "id-signedData",
                found: info.content_type,
            });
        }
        let signed = parse_signed_data(&der, limits)?;
        let has_content = signed.encap_content_info.econtent.is_some();
        return match (signed.encap_content_info.econtent_type, has_content) {
            (oids::ID_CCT_PKI_DATA, _) | (oids::ID_DATA, true) => inspect_request(&der, limits),
            _ => inspect_response(&der, limits),
        };
    }
    if let Ok(req) = Retained::<CertReq>::from_der(&der) {
        let node = pkcs10_node("PKCS#10 certification request", &req);
        return Ok(Inspection {
            kind: "pkcs10",
            summary: json!({
                "subject": req.value().info.subject.to_string(),
                "public_key": describe_key(&req.value().info.public_key),
                "proof_of_possession": verify_pkcs10(&req).map(|()| "verified".to_string())
                    .unwrap_or_else(|e| e.to_string()),
            }),
            tree: node,
        });
    }
    if let Ok(msg) = crate::cmp::PkiMessage::parse(&der, limits) {
        return Ok(cmp::inspect_cmp(&msg, der.len()));
    }
    let cert: Retained<Certificate> =
        decode_exact(&der, "certificate, PKCS#10, ContentInfo or CMP PKIMessage")?;
    Ok(Inspection {
        kind: "certificate",
        summary: cert_summary(cert.value()),
        tree: certificate_node("Certificate", &cert),
    })
}

/// An MS-WSTEP envelope: what it is, its RequestID / disposition / fault with the HRESULT,
/// and the PKCS #7 inside inspected as any other.
fn inspect_wstep(input: &[u8], limits: &Limits) -> Result<Inspection> {
    use crate::wstep::{Answer, RequestKind, XmlLimits, parse_answer, parse_request};
    let xml_limits = XmlLimits {
        max_bytes: limits.max_bytes * 2,
        ..XmlLimits::default()
    };
    let encoding = |e: crate::wstep::WstepError| CmcError::Encoding(e.to_string());
    let inner = |der: &[u8], title: &str, root: &mut Node| -> Value {
        // A token holds DER; XML inside XML is not followed (no recursion on hostile input).
        let inspected = if der.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
            Err(CmcError::Encoding("XML where DER belongs".into()))
        } else {
            inspect(der, limits)
        };
        match inspected {
            Ok(i) => {
                root.push(Node::new(title.to_string()).with(i.tree));
                json!({ "kind": i.kind, "summary": i.summary })
            }
            Err(e) => {
                root.push(Node::new(format!("{title}: unreadable: {e}")));
                json!({ "error": e.to_string() })
            }
        }
    };
    if let Ok(request) = parse_request(input, &xml_limits) {
        let mut root = Node::new(format!(
            "MS-WSTEP RequestSecurityToken ({} bytes), MessageID {}",
            input.len(),
            request.message_id.as_deref().unwrap_or("(none)")
        ));
        let summary = match &request.kind {
            RequestKind::Issue(der) => {
                let inside = inner(der, "BinarySecurityToken (#PKCS7)", &mut root);
                json!({ "request_type": "Issue", "pkcs7": inside })
            }
            RequestKind::QueryTokenStatus(id) => {
                root.push(Node::new(format!("QueryTokenStatus for RequestID {id}")));
                json!({ "request_type": "QueryTokenStatus", "request_id": id })
            }
        };
        return Ok(Inspection {
            kind: "wstep-request",
            tree: root,
            summary,
        });
    }
    let answer = parse_answer(input, &xml_limits).map_err(encoding)?;
    let hresult = answer.hresult();
    let (kind, tree, summary) = match answer {
        Answer::Token {
            disposition,
            pkcs7,
            certificate,
            request_id,
        } => {
            let mut root = Node::new(format!(
                "MS-WSTEP RequestSecurityTokenResponse ({} bytes): {disposition:?}, RequestID {}",
                input.len(),
                request_id.map_or("(none)".to_string(), |i| i.to_string())
            ));
            let inside = pkcs7
                .as_deref()
                .map(|der| inner(der, "BinarySecurityToken (#PKCS7)", &mut root));
            let issued = certificate
                .as_deref()
                .map(|der| inner(der, "RequestedSecurityToken (#X509v3)", &mut root));
            (
                "wstep-response",
                root,
                json!({ "disposition": disposition, "request_id": request_id,
                        "pkcs7": inside, "certificate": issued }),
            )
        }
        Answer::Fault {
            code,
            reason,
            request_id,
            ..
        } => {
            let hr = hresult.map(|h| format!("0x{h:08X}"));
            let root = Node::new(format!(
                "MS-WSTEP SOAP fault ({} bytes): {code}, HRESULT {}, RequestID {}: {reason:?}",
                input.len(),
                hr.as_deref().unwrap_or("(none)"),
                request_id.map_or("(none)".to_string(), |i| i.to_string())
            ));
            (
                "wstep-fault",
                root,
                json!({ "code": code, "reason": reason, "hresult": hr, "request_id": request_id }),
            )
        }
    };
    Ok(Inspection {
        kind,
        tree,
        summary,
    })
}

/// Names the PKCS#10 spells otherwise than the certificate it renews (compared by RFC 5280
/// §7.1: another string type or case is the same name): ADCS issues a renewal with the renewed
/// certificate's names whatever the request says; a strict CA refuses it.
fn name_findings(
    req: &x509_cert::request::CertReq,
    renewed: &x509_cert::Certificate,
) -> Vec<crate::cmc::verify_request::Finding> {
    use crate::cmc::verify_request::Finding;
    let mut out = Vec::new();
    let subject = renewed.tbs_certificate().subject();
    if !crate::x509::same_name(&req.info.subject, subject) {
        out.push(Finding {
            severity: Severity::Warning,
            clause: "RFC 5280 §7.1; MS-WCCE renewal",
            message: format!(
                "the PKCS#10 spells the subject \"{}\"; the certificate being renewed is \"{subject}\" \
                 (ADCS issues the renewed certificate's names)",
                req.info.subject
            ),
        });
    }
    let san = |exts: Option<&[x509_cert::ext::Extension]>| {
        exts.unwrap_or_default()
            .iter()
            .find(|e| e.extn_id == oids::SUBJECT_ALT_NAME)
            .cloned()
    };
    let asked = crate::cmc::verify_request::requested_extensions(req).ok();
    // By RFC 5280 §7.2–7.5, as the CA compares them: a DNS name or mail domain in capitals is
    // the same name.
    if !crate::x509::same_alt_name_extensions(
        san(asked.as_deref()).as_ref(),
        san(renewed.tbs_certificate().extensions().map(Vec::as_slice)).as_ref(),
    ) {
        out.push(Finding {
            severity: Severity::Warning,
            clause: "RFC 5280 §7.2–7.5; MS-WCCE renewal",
            message: "the PKCS#10 asks for other subjectAltNames than the certificate being \
                      renewed has (ADCS issues the renewed certificate's)"
                .into(),
        });
    }
    out
}

fn inspect_request(der: &[u8], limits: &Limits) -> Result<Inspection> {
    let strict = parse_request(der, limits)?;
    let findings = strict.findings();
    // Judged as RFC 5652 says; when that fails only on deviations ADCS accepts, the
    // signatures are shown as ADCS checks them and the verdict says which profile holds.
    let strict_facts = strict.verify();
    let (parsed, profile) = match (&strict_facts, findings.is_empty()) {
        (Err(_), false) => (strict.with_profile(Profile::Adcs), Profile::Adcs),
        _ => (strict, Profile::Strict),
    };
    let reports = parsed.signer_reports();
    let (kind, title) = match parsed.content {
        RequestContent::Cmc(_) => ("cmc-request", "CMC Full PKI Request"),
        RequestContent::Pkcs10(_) => ("cms-pkcs10-request", "CMS-with-PKCS#10 request"),
    };
    let mut root = Node::new(format!("{title} ({} bytes)", der.len()));
    let mut sd = signed_data_node(&parsed.signed_data);
    let mut signers = Node::new(format!("signerInfos ({})", reports.len()));
    for (report, si) in reports.iter().zip(parsed.signed_data.signer_infos.iter()) {
        let who = match &report.signed_by {
            SignedBy::RequestKey => "new key (the PKCS#10's key)".to_string(),
            SignedBy::RenewalCertificate => "the certificate being renewed".to_string(),
            SignedBy::EmbeddedCertificate(i) => format!("certificates[{i}]"),
            SignedBy::NoSignature => "No-Signature (id-alg-noSignature)".to_string(),
            SignedBy::Unknown => "unknown key".to_string(),
        };
        let verdict = match &report.outcome {
            Ok(()) => "signature OK".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        let mut n = Node::new(format!(
            "[{}] v{} {} -> {who}: {verdict}",
            report.index,
            cms_version(si.version),
            report.sid
        ));
        n.push(Node::new(format!(
            "digest {}, signature {}",
            oids::describe(&si.digest_alg.oid),
            oids::describe(&si.signature_algorithm.oid)
        )));
        if let Some(attrs) = &si.signed_attrs {
            n.push(attributes_node("signedAttrs", attrs.iter()));
        }
        if let Some(attrs) = &si.unsigned_attrs {
            n.push(attributes_node("unsignedAttrs", attrs.iter()));
        }
        signers.push(n);
    }
    sd.push(signers);
    root.push(sd);
    match &parsed.content {
        RequestContent::Cmc(pki) => root.push(pki_data_node(pki)),
        RequestContent::Pkcs10(req) => root.push(pkcs10_node("eContent: PKCS#10", req)),
    }
    let facts = match profile {
        Profile::Strict => strict_facts,
        Profile::Adcs => parsed.verify(),
    };
    let mut findings = findings;
    if let Ok(f) = &facts {
        findings.extend(name_findings(
            f.pkcs10.value(),
            f.renewal_certificate.value(),
        ));
    }
    if !findings.is_empty() {
        let mut n = Node::new(format!("Findings ({})", findings.len()));
        for f in &findings {
            let severity = match f.severity {
                Severity::Warning => "warning (ADCS accepts it; the strict profile refuses it)",
                Severity::Error => "error (refused under every profile)",
            };
            n.push(Node::new(format!(
                "{}: {} — {severity}",
                f.clause, f.message
            )));
        }
        root.push(n);
    }

    let valid_under = match (&facts, profile) {
        (Ok(_), Profile::Strict) => "verified",
        (Ok(_), Profile::Adcs) => "verified under the adcs profile only",
        (Err(_), _) => "",
    };
    let renewal = match &facts {
        Ok(f) => {
            let mut n = Node::new(format!(
                "Renewal: {valid_under} ({:?}); old key signed: {}",
                f.shape,
                if f.old_key_signed { "yes" } else { "no" }
            ));
            let tbs = f.renewal_certificate.value().tbs_certificate();
            n.push(Node::new(format!(
                "renews serial {} issued by \"{}\"",
                tbs.serial_number(),
                tbs.issuer()
            )));
            if let Some(t) = &f.template {
                n.push(Node::new(format!("template: {t}")));
            }
            n
        }
        Err(e) => Node::new(format!("Renewal: not a valid renewal: {e}")),
    };
    root.push(renewal);
    let summary = json!({
        "signers": reports.iter().map(|r| json!({
            "index": r.index,
            "sid": r.sid.to_string(),
            "signed_by": format!("{:?}", r.signed_by),
            "algorithm": r.algorithm.map(|a| a.to_string()),
            "verified": r.outcome.is_ok(),
            "error": r.outcome.as_ref().err().map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
        "findings": findings,
        "renewal": match &facts {
            Ok(f) => json!({
                "valid": true,
                "profile": profile,
                "shape": format!("{:?}", f.shape),
                "old_key_signed": f.old_key_signed,
                "renewed_serial": f.renewal_certificate.value().tbs_certificate().serial_number().to_string(),
                "template": f.template.as_ref().map(|t| t.to_string()),
                "name_value_pairs": f.name_value_pairs,
                "transaction_id": f.transaction_id.as_ref().map(|t| hex(t.as_bytes())),
                "sender_nonce": f.sender_nonce.as_ref().map(|n| hex(n)),
            }),
            Err(e) => json!({ "valid": false, "error": e.to_string() }),
        },
    });
    Ok(Inspection {
        kind,
        tree: root,
        summary,
    })
}

fn inspect_response(der: &[u8], limits: &Limits) -> Result<Inspection> {
    let resp = parse_response(der, limits)?;
    let (kind, title) = match resp.form {
        crate::cmc::ResponseForm::FullPkiResponse => ("cmc-response", "CMC Full PKI Response"),
        crate::cmc::ResponseForm::CertsOnly => ("certs-only", "Certs-only PKCS#7"),
        crate::cmc::ResponseForm::BareCertificate => ("certificate", "Certificate"),
        // parse_response never yields it: CMP messages are inspected as PKIMessages.
        crate::cmc::ResponseForm::Cmp => ("cmp", "CMP answer"),
    };
    let mut root = Node::new(format!("{title} ({} bytes)", der.len()));
    let signer = resp.verify_signer();
    if let Some(sd) = &resp.signed_data {
        let mut n = signed_data_node(sd);
        if resp.form == crate::cmc::ResponseForm::FullPkiResponse {
            n.push(Node::new(match &signer {
                Ok(c) => format!(
                    "signer: \"{}\": signature OK",
                    c.value().tbs_certificate().subject()
                ),
                Err(e) => format!("signer: FAILED: {e}"),
            }));
        }
        root.push(n);
    }
    if let Some(body) = &resp.body {
        let mut n = Node::new("PKIResponse");
        n.push(controls_node(&body.control_sequence));
        n.push(Node::new(format!(
            "cmsSequence ({})",
            body.cms_sequence.len()
        )));
        n.push(Node::new(format!(
            "otherMsgSequence ({})",
            body.other_msg_sequence.len()
        )));
        root.push(n);
    }
    let issued_hash_matches = resp.issued_cert_hash.as_ref().map(|h| {
        resp.certificates
            .iter()
            .any(|c| crate::cmc::DigestAlgorithm::Sha1.digest(c.der()) == *h)
    });
    root.push(Node::new(format!("Outcome: {:?}", resp.outcome)));
    if let Some(m) = issued_hash_matches {
        root.push(Node::new(format!(
            "issued-cert hash {} a certificate in the message",
            if m { "matches" } else { "does NOT match" }
        )));
    }
    let summary = json!({
        "outcome": format!("{:?}", resp.outcome),
        "status_string": resp.status_string,
        "certificates": resp.certificates.iter().map(|c| c.value().tbs_certificate().subject().to_string()).collect::<Vec<_>>(),
        "signer_verified": signer.is_ok(),
        "issued_cert_hash_matches": issued_hash_matches,
    });
    Ok(Inspection {
        kind,
        tree: root,
        summary,
    })
}

fn cms_version(v: cms::content_info::CmsVersion) -> u8 {
    v as u8
}

fn signed_data_node(sd: &SignedData) -> Node {
    let mut n = Node::new(format!("SignedData v{}", cms_version(sd.version)));
    let digests: Vec<String> = sd
        .digest_algorithms
        .iter()
        .map(|a| oids::describe(&a.oid))
        .collect();
    n.push(Node::new(format!(
        "digestAlgorithms: {}",
        digests.join(", ")
    )));
    n.push(Node::new(format!(
        "encapContentInfo: {}{}",
        oids::describe(&sd.encap_content_info.econtent_type),
        if sd.encap_content_info.econtent.is_none() {
            " (no content)"
        } else {
            ""
        }
    )));
    let certs: Vec<_> = sd.x509_certificates().collect();
    if sd.certificates.is_some() {
        let mut c = Node::new(format!("certificates ({})", certs.len()));
        for (i, cert) in certs.iter().enumerate() {
            c.push(certificate_node(&format!("[{i}]"), cert));
        }
        n.push(c);
    }
    n
}

fn certificate_node(title: &str, cert: &Retained<Certificate>) -> Node {
    let tbs = cert.value().tbs_certificate();
    let mut n = Node::new(format!("{title} subject \"{}\"", tbs.subject()));
    n.push(Node::new(format!("issuer \"{}\"", tbs.issuer())));
    n.push(Node::new(format!("serial {}", tbs.serial_number())));
    n.push(Node::new(format!(
        "validity {} .. {}",
        tbs.validity().not_before,
        tbs.validity().not_after
    )));
    n.push(Node::new(format!(
        "key {}",
        describe_key(tbs.subject_public_key_info())
    )));
    n.push(Node::new(format!(
        "SHA-1 {}",
        hex(&crate::cmc::DigestAlgorithm::Sha1.digest(cert.der()))
    )));
    if let Some(exts) = tbs.extensions() {
        n.push(extensions_node(exts));
    }
    n
}

fn cert_summary(cert: &Certificate) -> Value {
    let tbs = cert.tbs_certificate();
    json!({
        "subject": tbs.subject().to_string(),
        "issuer": tbs.issuer().to_string(),
        "serial": tbs.serial_number().to_string(),
        "public_key": describe_key(tbs.subject_public_key_info()),
        "template": crate::cmc::request::certificate_template(cert).map(|t| t.to_string()),
    })
}

/// "ECDSA P-256", "RSA 2048" and the key identifier.
pub fn describe_key(spki: &SubjectPublicKeyInfoOwned) -> String {
    use crate::cmc::public_key::{Curve, PublicKey};
    let ki = hex(&key_identifier(spki));
    // The same parser the CA and the client decide with: a key it refuses says why here.
    match PublicKey::from_spki(spki) {
        Ok(PublicKey::Ec { curve, .. }) => {
            let curve = match curve {
                Curve::P256 => "P-256",
                Curve::P384 => "P-384",
            };
            format!("ECDSA {curve} (key id {ki})")
        }
        Ok(PublicKey::Rsa { bits, .. }) => format!("RSA {bits} (key id {ki})"),
        Err(e) => format!("{} (key id {ki}): {e}", oids::describe(&spki.algorithm.oid)),
    }
}

fn pki_data_node(pki: &PkiData) -> Node {
    let mut n = Node::new("PKIData");
    n.push(controls_node(&pki.control_sequence));
    let mut reqs = Node::new(format!("reqSequence ({})", pki.req_sequence.len()));
    for r in &pki.req_sequence {
        reqs.push(match r {
            TaggedRequest::Tcr(t) => pkcs10_node(
                &format!("[bp {}] tcr PKCS#10", t.body_part_id),
                &t.certification_request,
            ),
            TaggedRequest::Crm(c) => {
                Node::new(format!("crm CRMF CertReqMsg ({} bytes)", c.0.len()))
            }
            TaggedRequest::Orm(o) => Node::new(format!(
                "[bp {}] orm {}",
                o.body_part_id,
                oids::describe(&o.request_message_type)
            )),
        });
    }
    n.push(reqs);
    n.push(Node::new(format!(
        "cmsSequence ({})",
        pki.cms_sequence.len()
    )));
    n.push(Node::new(format!(
        "otherMsgSequence ({})",
        pki.other_msg_sequence.len()
    )));
    n
}

fn controls_node(controls: &[crate::cmc::pki::TaggedAttribute]) -> Node {
    let mut n = Node::new(format!("controlSequence ({})", controls.len()));
    for c in controls {
        let head = format!("[bp {}] {}", c.body_part_id, oids::describe(&c.attr_type));
        n.push(match Control::from_tagged(c) {
            Err(e) => Node::new(format!("{head}: MALFORMED: {e}")),
            Ok(control) => control_node(head, &control),
        });
    }
    n
}

fn control_node(head: String, control: &Control) -> Node {
    match control {
        Control::TransactionId(t) => Node::new(format!("{head}: 0x{}", hex(t.as_bytes()))),
        Control::SenderNonce(o)
        | Control::RecipientNonce(o)
        | Control::QueryPending(o)
        | Control::ResponseInfo(o) => Node::new(format!("{head}: {}", hex(o.as_bytes()))),
        Control::RegInfo(o) => Node::new(format!(
            "{head}: {:?}",
            String::from_utf8_lossy(o.as_bytes())
        )),
        Control::StatusInfo(s) => {
            let other = match &s.other_info {
                Some(OtherStatusInfo::FailInfo(f)) => format!(", failInfo {f:?}"),
                Some(OtherStatusInfo::PendInfo(p)) => format!(
                    ", pendToken {}, pendTime {}",
                    hex(p.pend_token.as_bytes()),
                    p.pend_time.to_date_time()
                ),
                None => String::new(),
            };
            Node::new(format!(
                "{head}: {:?}, bodyList {:?}{}{other}",
                s.status,
                s.body_list,
                s.status_string
                    .as_ref()
                    .map(|t| format!(", {t:?}"))
                    .unwrap_or_default()
            ))
        }
        Control::StatusInfoV2(s) => {
            let other = match &s.other_info {
                Some(OtherStatusInfoV2::FailInfo(f)) => format!(", failInfo {f:?}"),
                Some(OtherStatusInfoV2::PendInfo(p)) => format!(
                    ", pendToken {}, pendTime {}",
                    hex(p.pend_token.as_bytes()),
                    p.pend_time.to_date_time()
                ),
                Some(OtherStatusInfoV2::ExtendedFailInfo(e, form)) => format!(
                    ", extendedFailInfo {} ({form:?})",
                    oids::describe(&e.fail_info_oid)
                ),
                None => String::new(),
            };
            Node::new(format!(
                "{head}: {:?}, bodyList {:?}{}{other}",
                s.status,
                s.body_list,
                s.status_string
                    .as_ref()
                    .map(|t| format!(", {t:?}"))
                    .unwrap_or_default()
            ))
        }
        Control::MsAddAttributes(CmcAddAttributes {
            pki_data_reference,
            cert_references,
            attributes,
        }) => Node::new(format!(
            "{head}: pkiDataReference {pki_data_reference}, certReferences {cert_references:?}"
        ))
        .with(attributes_node("attributes", attributes.iter())),
        Control::GetCert(g) => Node::new(format!(
            "{head}: serial {}",
            hex(g.serial_number.as_bytes())
        )),
        Control::AddExtensions(a) => Node::new(format!(
            "{head}: pkiDataReference {}, certReferences {:?}",
            a.pki_data_reference, a.cert_references
        ))
        .with(extensions_node(&a.extensions)),
        Control::Other { value, .. } => Node::new(format!(
            "{head}: {} bytes",
            value.to_der().map(|d| d.len()).unwrap_or(0)
        )),
    }
}

fn pkcs10_node(title: &str, req: &Retained<CertReq>) -> Node {
    let info = &req.value().info;
    let mut n = Node::new(title.to_string());
    n.push(Node::new(format!("subject \"{}\"", info.subject)));
    n.push(Node::new(format!("key {}", describe_key(&info.public_key))));
    n.push(Node::new(format!(
        "signature {}: proof of possession {}",
        oids::describe(&req.value().algorithm.oid),
        match verify_pkcs10(req) {
            Ok(()) => "OK".to_string(),
            Err(e) => format!("FAILED: {e}"),
        }
    )));
    let mut attrs = Node::new(format!("attributes ({})", info.attributes.len()));
    for a in info.attributes.iter() {
        if a.oid == oids::ID_AA_ATTESTATION {
            attrs.push(attestation_node(req.value()));
        } else {
            attrs.push(attribute_node(a.oid, a.values.iter()));
        }
    }
    n.push(attrs);
    if let Ok(Some(old)) = renewal_certificate(req.value()) {
        n.push(certificate_node("certificate being renewed:", &old));
    }
    n
}

/// A key attestation as read: each statement, whether it certifies the request's key and which
/// bundle certificate signed it, the card's facts. Whether the vendor root is trusted is the
/// verifier's decision (a CA's `attestation_roots`), not shown here.
fn attestation_node(req: &CertReq) -> Node {
    use crate::cmc::{PublicKey, attestation};
    let mut n = Node::new(oids::describe(&oids::ID_AA_ATTESTATION));
    let view = match attestation::read(req) {
        Ok(view) => view,
        Err(e) => return n.with(Node::new(format!("FAILED: {e}"))),
    };
    let request_key = PublicKey::from_spki(&req.info.public_key).ok();
    for (i, (kind, statement)) in view.statements.iter().enumerate() {
        let mut s = Node::new(format!("[{i}] statement {}", oids::describe(kind)));
        match statement {
            Some(cert) if *kind == oids::YUBICO_PIV_ATTESTATION => {
                let tbs = cert.value().tbs_certificate();
                s.push(Node::new(format!(
                    "certificate \"{}\" issued by \"{}\"",
                    tbs.subject(),
                    tbs.issuer()
                )));
                let same = PublicKey::from_spki(tbs.subject_public_key_info()).ok();
                s.push(Node::new(if same.is_some() && same == request_key {
                    "certifies the PKCS#10's key".to_string()
                } else {
                    "certifies ANOTHER key than the PKCS#10's".to_string()
                }));
                s.push(Node::new(
                    match view
                        .certificates
                        .iter()
                        .find(|d| crate::x509::verify_issued_by(cert, d.value()).is_ok())
                    {
                        Some(d) => format!(
                            "signed by the bundle's \"{}\"",
                            d.value().tbs_certificate().subject()
                        ),
                        None => "signed by NO certificate of the bundle".to_string(),
                    },
                ));
                let c = attestation::claims(cert.value());
                let policy = |p: Option<u8>, names: [&'static str; 3]| match p {
                    Some(b @ 1..=3) => names[usize::from(b - 1)],
                    _ => "?",
                };
                s.push(Node::new(format!(
                    "card serial {}, firmware {}, PIN policy {}, touch policy {}",
                    c.serial.map_or("?".to_string(), |v| v.to_string()),
                    c.firmware
                        .map_or("?".to_string(), |f| format!("{}.{}.{}", f[0], f[1], f[2])),
                    policy(c.pin_policy, ["never", "once", "always"]),
                    policy(c.touch_policy, ["never", "always", "cached"]),
                )));
            }
            Some(_) => s.push(Node::new("(a type this tool does not read)")),
            None => s.push(Node::new("not a certificate")),
        }
        n.push(s);
    }
    for cert in &view.certificates {
        let tbs = cert.value().tbs_certificate();
        n.push(Node::new(format!(
            "bundle certificate \"{}\" issued by \"{}\"",
            tbs.subject(),
            tbs.issuer()
        )));
    }
    n
}

fn attributes_node<'a>(title: &str, attrs: impl Iterator<Item = &'a Attribute>) -> Node {
    let mut n = Node::new(title.to_string());
    for a in attrs {
        n.push(attribute_node(a.oid, a.values.iter()));
    }
    n
}

fn attribute_node<'a>(oid: ObjectIdentifier, values: impl Iterator<Item = &'a Any>) -> Node {
    let head = oids::describe(&oid);
    let mut n = Node::new(head);
    for v in values {
        let text = match oid {
            oids::ID_CONTENT_TYPE => v
                .decode_as::<ObjectIdentifier>()
                .map(|o| oids::describe(&o))
                .ok(),
            oids::ID_MESSAGE_DIGEST | oids::MS_ISSUED_CERT_HASH | oids::MS_ENCRYPTED_KEY_HASH => {
                v.decode_as::<OctetString>().map(|o| hex(o.as_bytes())).ok()
            }
            oids::MS_ENROLLMENT_NAME_VALUE_PAIR => v.decode_as::<NameValuePair>().ok().map(|p| {
                let (name, value) = p.to_strings();
                format!("{name} = {value}")
            }),
            oids::MS_OS_VERSION => v.decode_as::<Ia5String>().ok().map(|s| s.to_string()),
            oids::MS_REQUEST_CLIENT_INFO => v.decode_as::<ClientInfo>().ok().map(|c| {
                format!(
                    "clientId {}, machine {:?}, user {:?}, process {:?}",
                    c.client_id, c.machine, c.user, c.process
                )
            }),
            oids::MS_ENROLLMENT_CSP_PROVIDER => v
                .decode_as::<CspProvider>()
                .ok()
                .map(|c| format!("keySpec {}, {:?}", c.key_spec, c.csp_name.to_string())),
            oids::MS_RENEWAL_CERTIFICATE => v
                .to_der()
                .ok()
                .and_then(|d| Retained::<Certificate>::from_der(&d).ok())
                .map(|c| {
                    let tbs = c.value().tbs_certificate();
                    format!(
                        "certificate serial {} issued by \"{}\"",
                        tbs.serial_number(),
                        tbs.issuer()
                    )
                }),
            oids::ID_EXTENSION_REQUEST | oids::MS_EXTENSION_REQUEST => {
                if let Ok(exts) = v.decode_as::<Vec<Extension>>() {
                    n.push(extensions_node(&exts));
                    continue;
                }
                None
            }
            _ => None,
        };
        n.push(Node::new(text.unwrap_or_else(|| {
            format!(
                "{} bytes: {}",
                v.value().len(),
                hex(&v.value()[..v.value().len().min(32)])
            )
        })));
    }
    n
}

fn extensions_node(exts: &[Extension]) -> Node {
    let mut n = Node::new(format!("extensions ({})", exts.len()));
    for e in exts {
        let crit = if e.critical { " (critical)" } else { "" };
        let value = e.extn_value.as_bytes();
        let detail = if let Some(t) = TemplateRef::from_extension(e.extn_id, value) {
            format!(": template {t}")
        } else if e.extn_id == oids::EXT_KEY_USAGE {
            Vec::<ObjectIdentifier>::from_der(value)
                .map(|v| {
                    format!(
                        ": {}",
                        v.iter().map(oids::describe).collect::<Vec<_>>().join(", ")
                    )
                })
                .unwrap_or_default()
        } else if e.extn_id == oids::SUBJECT_KEY_IDENTIFIER {
            OctetString::from_der(value)
                .map(|o| format!(": {}", hex(o.as_bytes())))
                .unwrap_or_default()
        } else {
            format!(": {} bytes", value.len())
        };
        n.push(Node::new(format!(
            "{}{crit}{detail}",
            oids::describe(&e.extn_id)
        )));
    }
    n
}
