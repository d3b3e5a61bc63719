//! The Certificate Enrollment Web Service face (MS-WSTEP, certificate authentication), served
//! at ADCS's path `/<CA>_CES_Certificate/service.svc/CES`: the envelope is read (bounded, no
//! DTD), its CMC request decided exactly as on `/fullcmc`, and the answer written as ADCS
//! writes it — `RequestSecurityTokenResponseCollection` with the CMC response, the issued
//! certificate and the RequestID, "Taken Under Submission" for a pending request, and a SOAP
//! fault whose `CertificateEnrollmentWSDetail` carries the HRESULT for a refusal.

use crate::store::Endpoint;
use renewal_codec::{
    cmc::{Limits, Outcome, parse_response},
    wstep::{Answer, RequestKind, XmlLimits, build_answer, parse_request},
};

use crate::{backend::Backend, service::CmcReply};

/// Whether `path` is a CES endpoint (`/<CA>_CES_Certificate/service.svc/CES`).
pub fn is_ces_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_suffix("_CES_Certificate/service.svc/CES"))
        .is_some_and(|ca| !ca.is_empty() && !ca.contains('/'))
}

/// An answer: the HTTP status (SOAP 1.2 faults travel with 500), the envelope, and the CMC
/// reply it came from (for transport faults and logs), if the request got that far.
pub struct CesReply {
    /// 200 or 500.
    pub status: u16,
    /// The SOAP envelope.
    pub body: String,
    /// The CMC decision behind it.
    pub cmc: Option<CmcReply>,
}

/// The HRESULT a refusal's status string starts with (`0x8007000D: ...`).
fn hresult_of(text: &str) -> Option<i32> {
    let hex = text.strip_prefix("0x")?.get(..8)?;
    u32::from_str_radix(hex, 16).ok().map(|v| v as i32)
}

/// Handles one CES request presented over TLS with `tls_cert`.
pub fn handle(ca: &dyn Backend, envelope: &[u8], tls_cert: &[u8], limits: &Limits) -> CesReply {
    let xml_limits = XmlLimits {
        max_bytes: limits.max_bytes * 2,
        ..XmlLimits::default()
    };
    let request = match parse_request(envelope, &xml_limits) {
        Ok(r) => r,
        Err(e) => {
            let code = match e {
                renewal_codec::wstep::WstepError::NotUnderstood { .. } => "s:MustUnderstand",
                _ => "s:Sender",
            };
            let fault = Answer::Fault {
                code: code.into(),
                reason: e.to_string(),
                error_code: Some(0x8007_000Du32 as i32),
                request_id: None,
            };
            return CesReply {
                status: 500,
                body: build_answer(None, &fault),
                cmc: None,
            };
        }
    };
    let reply = match &request.kind {
        RequestKind::Issue(der) => ca.handle_cmc_at(Endpoint::Wstep, der, tls_cert),
        RequestKind::QueryTokenStatus(id) => ca.query_token_status(*id, tls_cert),
    };
    let queried = match request.kind {
        RequestKind::QueryTokenStatus(id) => Some(id),
        RequestKind::Issue(_) => None,
    };
    let (status, answer) = match &reply.outcome {
        Outcome::Issued => {
            // The X509v3 token: the certificate of the response that is not the CA's.
            let certificate = parse_response(&reply.body, limits).ok().and_then(|r| {
                r.certificates
                    .iter()
                    .find(|c| !ca.ca_certificates().contains(c))
                    .map(|c| c.der().to_vec())
            });
            (
                200,
                Answer::Token {
                    disposition: "Issued".into(),
                    pkcs7: Some(reply.body.clone()),
                    certificate,
                    request_id: queried,
                },
            )
        }
        Outcome::Pending { token, .. } => (
            200,
            Answer::Token {
                disposition: "Taken Under Submission".into(),
                pkcs7: Some(reply.body.clone()),
                certificate: None,
                request_id: <[u8; 8]>::try_from(token.as_slice())
                    .ok()
                    .map(i64::from_be_bytes)
                    .and_then(|id| u64::try_from(id).ok()),
            },
        ),
        Outcome::Failed { .. } | Outcome::Other(_) => {
            let text = parse_response(&reply.body, limits)
                .ok()
                .and_then(|r| r.status_string)
                .unwrap_or_default();
            (
                500,
                Answer::Fault {
                    code: "s:Receiver".into(),
                    error_code: hresult_of(&text),
                    reason: text,
                    request_id: queried,
                },
            )
        }
    };
    CesReply {
        status,
        body: build_answer(request.message_id.as_deref(), &answer),
        cmc: Some(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ces_paths_and_hresults() {
        assert!(is_ces_path("/cardrenew_CES_Certificate/service.svc/CES"));
        assert!(is_ces_path("/FB_EntSubCA_CES_Certificate/service.svc/CES"));
        assert!(!is_ces_path("/_CES_Certificate/service.svc/CES"));
        assert!(!is_ces_path("/a/b_CES_Certificate/service.svc/CES"));
        assert!(!is_ces_path("/cmc"));
        assert_eq!(hresult_of("0x80094009: denied"), Some(-2146877431));
        assert_eq!(hresult_of("denied"), None);
    }
}
