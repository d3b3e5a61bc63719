//! `renew inspect` of a CMP `PKIMessage`: the header a transaction is followed by, the body a
//! renewal exchanges, whether the protection and the proof of possession verify, and what RFC
//! 9483 expects that the message lacks (findings).

use serde_json::{Value, json};
use x509_cert::ext::pkix::name::GeneralName;

use super::{Inspection, Node, certificate_node, describe_key};
use crate::{
    cmc::{oids, verify_request::hex},
    cmp::{CertReqMsg, CertResponse, PkiBody, PkiMessage, PkiStatusInfo, ProofOfPossession},
};

/// The tree and summary of a parsed message.
pub(super) fn inspect_cmp(msg: &PkiMessage, size: usize) -> Inspection {
    let mut findings = Vec::new();
    let mut root = Node::new(format!("CMP PKIMessage {} ({size} bytes)", msg.body.name()));
    root.push(header_node(msg, &mut findings));
    let (body, pops) = body_node(&msg.body);
    root.push(body);
    let protection = protection_verdict(msg);
    root.push(Node::new(format!("protection: {protection}")));
    if !msg.extra_certs.is_empty() {
        let mut extra = Node::new(format!("extraCerts ({})", msg.extra_certs.len()));
        for (i, cert) in msg.extra_certs.iter().enumerate() {
            extra.push(certificate_node(&format!("[{i}]"), cert));
        }
        root.push(extra);
    }
    if !findings.is_empty() {
        let mut node = Node::new(format!("findings ({})", findings.len()));
        for f in &findings {
            node.push(Node::new(f.clone()));
        }
        root.push(node);
    }
    Inspection {
        kind: "cmp",
        summary: json!({
            "body": msg.body.name(),
            "pvno": msg.header.pvno,
            "transaction_id": msg.header.transaction_id.as_ref().map(|t| hex(t.as_bytes())),
            "implicit_confirm": msg.header.implicit_confirm(),
            "protection": protection,
            "proof_of_possession": pops,
            "status": statuses(&msg.body),
            "findings": findings,
        }),
        tree: root,
    }
}

fn header_node(msg: &PkiMessage, findings: &mut Vec<String>) -> Node {
    let h = &msg.header;
    let mut n = Node::new(format!("header (pvno {})", h.pvno));
    n.push(Node::new(format!("sender {}", general_name(&h.sender))));
    n.push(Node::new(format!(
        "recipient {}",
        general_name(&h.recipient)
    )));
    if let Some(t) = &h.message_time {
        n.push(Node::new(format!("messageTime {}", t.to_date_time())));
    }
    if let Some(alg) = &h.protection_alg {
        n.push(Node::new(format!(
            "protectionAlg {}",
            oids::describe(&alg.oid)
        )));
    }
    for (name, value) in [
        ("senderKID", &h.sender_kid),
        ("recipKID", &h.recip_kid),
        ("transactionID", &h.transaction_id),
        ("senderNonce", &h.sender_nonce),
        ("recipNonce", &h.recip_nonce),
    ] {
        if let Some(v) = value {
            n.push(Node::new(format!("{name} {}", hex(v.as_bytes()))));
        }
    }
    if h.implicit_confirm() {
        n.push(Node::new("generalInfo: implicitConfirm"));
    }
    if let Some(text) = &h.free_text {
        n.push(Node::new(format!("freeText \"{}\"", text.join("; "))));
    }
    // RFC 9483 §3.1: every message carries these.
    if !matches!(h.pvno, 2 | 3) {
        findings.push(format!(
            "pvno {} (RFC 9483 §3.1: 2, or 3 for cmp2021)",
            h.pvno
        ));
    }
    for (name, present) in [
        ("transactionID", h.transaction_id.is_some()),
        ("senderNonce", h.sender_nonce.is_some()),
        ("messageTime", h.message_time.is_some()),
    ] {
        if !present {
            findings.push(format!("no {name} (RFC 9483 §3.1 requires it)"));
        }
    }
    n
}

fn general_name(name: &GeneralName) -> String {
    match name {
        GeneralName::DirectoryName(dn) => format!("\"{dn}\""),
        GeneralName::DnsName(dns) => format!("dns:{}", dns.as_str()),
        GeneralName::Rfc822Name(mail) => format!("email:{}", mail.as_str()),
        GeneralName::UniformResourceIdentifier(uri) => format!("uri:{}", uri.as_str()),
        _ => "(another kind of name)".to_string(),
    }
}

/// The body's tree, and each request's proof-of-possession verdict.
fn body_node(body: &PkiBody) -> (Node, Vec<String>) {
    let mut pops = Vec::new();
    let node = match body {
        PkiBody::Ir(reqs) | PkiBody::Cr(reqs) | PkiBody::Kur(reqs) => {
            let mut n = Node::new(format!("{} ({} request(s))", body.name(), reqs.len()));
            for r in reqs {
                let (node, pop) = request_node(r);
                pops.push(pop);
                n.push(node);
            }
            n
        }
        PkiBody::Ip(rep) | PkiBody::Cp(rep) | PkiBody::Kup(rep) => {
            let mut n = Node::new(format!(
                "{} ({} response(s))",
                body.name(),
                rep.response.len()
            ));
            for r in &rep.response {
                n.push(response_node(r));
            }
            n
        }
        PkiBody::CertConf(statuses) => {
            let mut n = Node::new(format!("certConf ({})", statuses.len()));
            for s in statuses {
                let mut c = Node::new(format!(
                    "certReqId {}: {}",
                    s.cert_req_id,
                    if s.accepted() { "accepted" } else { "rejected" }
                ));
                c.push(Node::new(format!(
                    "certHash {}",
                    hex(s.cert_hash.as_bytes())
                )));
                if let Some(info) = &s.status_info {
                    c.push(status_node(info));
                }
                n.push(c);
            }
            n
        }
        PkiBody::PollReq(entries) => Node::new(format!(
            "pollReq for certReqId {}",
            entries
                .iter()
                .map(|e| e.cert_req_id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        PkiBody::PollRep(entries) => {
            let mut n = Node::new("pollRep");
            for e in entries {
                n.push(Node::new(format!(
                    "certReqId {}: check after {} s{}",
                    e.cert_req_id,
                    e.check_after,
                    e.reason
                        .as_ref()
                        .map(|r| format!(" ({})", r.join("; ")))
                        .unwrap_or_default()
                )));
            }
            n
        }
        PkiBody::Error(e) => {
            let mut n = Node::new("error");
            n.push(status_node(&e.pki_status_info));
            if let Some(code) = e.error_code {
                n.push(Node::new(format!("errorCode {code}")));
            }
            if let Some(details) = &e.error_details {
                n.push(Node::new(format!(
                    "errorDetails \"{}\"",
                    details.join("; ")
                )));
            }
            n
        }
        PkiBody::PkiConf => Node::new("pkiconf"),
        PkiBody::Nested(inner) => {
            let mut n = Node::new(format!("nested ({} messages)", inner.len()));
            for (i, der) in inner.iter().enumerate() {
                // One level: a nested message inside a nested one is named, not decoded (no
                // recursion an input could deepen).
                n.push(
                    match PkiMessage::parse(der, &crate::cmc::Limits::default()) {
                        Ok(m) if matches!(m.body, PkiBody::Nested(_)) => {
                            Node::new(format!("[{i}] nested again (not decoded)"))
                        }
                        Ok(m) => {
                            let mut tree = inspect_cmp(&m, der.len()).tree;
                            tree.label = format!("[{i}] {}", tree.label);
                            tree
                        }
                        Err(e) => Node::new(format!("[{i}] unreadable: {e}")),
                    },
                );
            }
            n
        }
        PkiBody::Genm(items) | PkiBody::Genp(items) => {
            let mut n = Node::new(format!("{} ({})", body.name(), items.len()));
            for i in items {
                n.push(Node::new(oids::describe(&i.info_type)));
            }
            n
        }
        PkiBody::Other(tag) => Node::new(format!("body [{tag}] (not decoded)")),
    };
    (node, pops)
}

fn request_node(r: &CertReqMsg) -> (Node, String) {
    let t = &r.cert_req.cert_template;
    let mut n = Node::new(format!("certReqId {}", r.cert_req.cert_req_id));
    if let Some(subject) = &t.subject {
        n.push(Node::new(format!("subject \"{subject}\"")));
    }
    if let Some(key) = &t.public_key {
        n.push(Node::new(format!("publicKey {}", describe_key(key))));
    }
    if let Some(exts) = &t.extensions {
        n.push(Node::new(format!("extensions ({})", exts.len())));
    }
    if let Some(old) = r.cert_req.old_cert_id() {
        n.push(Node::new(format!(
            "oldCertID issuer {} serial {}",
            general_name(&old.issuer),
            hex(old.serial_number.as_bytes())
        )));
    }
    let verdict = match (&r.popo, r.verify_pop()) {
        (None, _) => "none".to_string(),
        (Some(ProofOfPossession::RaVerified), _) => "raVerified (an RA vouches)".to_string(),
        (Some(ProofOfPossession::Other(tag)), _) => format!("[{tag}] (not a signature)"),
        (Some(ProofOfPossession::Signature(_)), Ok(())) => {
            "signature by the requested key: verified".to_string()
        }
        (Some(ProofOfPossession::Signature(_)), Err(e)) => format!("signature: {e}"),
    };
    n.push(Node::new(format!("popo {verdict}")));
    (n, verdict)
}

fn response_node(r: &CertResponse) -> Node {
    let mut n = Node::new(format!("certReqId {}", r.cert_req_id));
    n.push(status_node(&r.status));
    if let Some(cert) = r.certificate() {
        n.push(certificate_node("certificate", &cert));
    }
    n
}

fn status_node(info: &PkiStatusInfo) -> Node {
    let mut n = Node::new(format!("status {}", info.status().name()));
    let failures = info.failures();
    if !failures.is_empty() {
        n.push(Node::new(format!("failInfo {}", failures.join(", "))));
    }
    let text = info.text();
    if !text.is_empty() {
        n.push(Node::new(format!("statusString \"{text}\"")));
    }
    n
}

fn statuses(body: &PkiBody) -> Value {
    let describe = |info: &PkiStatusInfo| json!({"status": info.status().name(), "fail_info": info.failures(), "text": info.text()});
    match body {
        PkiBody::Ip(rep) | PkiBody::Cp(rep) | PkiBody::Kup(rep) => {
            rep.response.iter().map(|r| describe(&r.status)).collect()
        }
        PkiBody::CertConf(statuses) => statuses
            .iter()
            .map(|s| {
                s.status_info
                    .as_ref()
                    .map_or(json!({"status": "accepted"}), describe)
            })
            .collect(),
        PkiBody::Error(e) => json!([describe(&e.pki_status_info)]),
        _ => json!([]),
    }
}

/// With signature protection, the first extraCert is the signer's (RFC 9483 §3.3): whether
/// the protection verifies with it. A MAC (PBM) needs the shared secret and is only named.
fn protection_verdict(msg: &PkiMessage) -> String {
    let Some(alg) = &msg.header.protection_alg else {
        return "none (unprotected)".to_string();
    };
    let Some(signer) = msg.protecting_certificate() else {
        return format!(
            "{} with no certificate in extraCerts to verify it",
            oids::describe(&alg.oid)
        );
    };
    match msg.verify_protection(signer.value()) {
        Ok(()) => format!(
            "{}, verified with extraCerts[0] \"{}\"",
            oids::describe(&alg.oid),
            signer.value().tbs_certificate().subject()
        ),
        Err(e) => format!("{}: {e}", oids::describe(&alg.oid)),
    }
}
