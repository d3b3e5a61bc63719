//! The checks the client makes on what the card signed (before it leaves the machine) and on
//! what the CA answered (before anything is installed).

use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::states::Context;
use crate::{
    client::Mode,
    cmc::{
        Limits, ParsedResponse, PublicKey, ResponseForm, Retained, input::decode_exact,
        parse_request, request::certificate_template, verify_request::verify_pkcs10,
    },
    x509::verify_issued_by,
};

/// Checks what the card signed before anything leaves the machine: the proof of possession
/// verifies with the key the card reported at generation and, for full CMC, the whole request
/// verifies as a CA would check it, signed by the old certificate's key. A card (or middleware)
/// that generated one key and signs with another is caught here, not by the CA.
pub(super) fn self_check(
    body: &[u8],
    mode: Mode,
    new_key: &SubjectPublicKeyInfoOwned,
) -> Result<(), String> {
    let pkcs10 = match mode {
        Mode::SimpleReenroll => {
            let req: Retained<x509_cert::request::CertReq> =
                decode_exact(body, "PKCS#10").map_err(|e| e.to_string())?;
            verify_pkcs10(&req).map_err(|e| e.to_string())?;
            req
        }
        Mode::FullCmc | Mode::Cmc | Mode::Wstep => {
            let facts = parse_request(body, &Limits::default())
                .and_then(|p| p.verify())
                .map_err(|e| e.to_string())?;
            if !facts.old_key_signed {
                return Err("the old key's signature is missing".into());
            }
            facts.pkcs10
        }
    };
    let signed_with = PublicKey::from_spki(&pkcs10.value().info.public_key);
    if signed_with.ok() != PublicKey::from_spki(new_key).ok() {
        return Err("the request does not carry the key the card generated".into());
    }
    Ok(())
}

/// The checks before anything is installed: the response is signed by a CA we trust (full
/// responses), the certificate chains to it, certifies the new key, and carries the old
/// subject and template. Returns the certificate to install.
pub(super) fn verify_issued(
    cx: &Context,
    response: &ParsedResponse,
    old: &Certificate,
    new_key: &SubjectPublicKeyInfoOwned,
) -> Result<Retained<Certificate>, String> {
    let anchors = &cx.trust_anchors;
    let trusted = |c: &Retained<Certificate>| {
        anchors
            .iter()
            .any(|a| a == c || verify_issued_by(c, a.value()).is_ok())
    };
    if response.form == ResponseForm::FullPkiResponse {
        let signer = response
            .verify_signer()
            .map_err(|e| format!("response signature: {e}"))?;
        if !trusted(signer) {
            return Err("the response is signed by a certificate we do not trust".into());
        }
    }
    // Keys compare as parsed values: a CA may re-encode the key canonically.
    let new_key = PublicKey::from_spki(new_key).map_err(|e| format!("the new key: {e}"))?;
    let issued = response
        .certificates
        .iter()
        .find(|c| {
            PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info())
                .is_ok_and(|k| k == new_key)
        })
        .ok_or("no certificate in the answer certifies the new key")?;
    let chains = anchors
        .iter()
        .any(|a| verify_issued_by(issued, a.value()).is_ok());
    if !chains {
        return Err("the issued certificate does not chain to the CA".into());
    }
    let tbs = issued.value().tbs_certificate();
    if tbs.subject() != old.tbs_certificate().subject() {
        return Err("the issued certificate has another subject".into());
    }
    let wanted = cx.template.clone().or_else(|| certificate_template(old));
    if let Some(wanted) = wanted {
        let got = certificate_template(issued.value())
            .ok_or("the issued certificate names no template")?;
        if !wanted.matches(&got) {
            return Err(format!(
                "the issued certificate is for template {got}, not {wanted}"
            ));
        }
    }
    Ok(issued.clone())
}
