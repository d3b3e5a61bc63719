//! MS-WSTEP (the ADCS Certificate Enrollment Web Service) envelopes: SOAP 1.2 + WS-Addressing
//! around a WS-Trust `RequestSecurityToken`, whose `BinarySecurityToken` (ValueType `#PKCS7`,
//! base64) carries a CMC renewal request; the answer is a
//! `RequestSecurityTokenResponseCollection` (the CMC response as `#PKCS7`, the issued
//! certificate as `#X509v3` in `RequestedSecurityToken`, `DispositionMessage`, `RequestID`) or
//! a SOAP fault whose `CertificateEnrollmentWSDetail` carries the HRESULT as a signed integer.
//! A pending request is collected with RequestType `QueryTokenStatus` and its `RequestID`.
//!
//! ```text
//! <s:Envelope><s:Header><a:Action>…/RST/wstep</a:Action><a:MessageID/>…</s:Header>
//!   <s:Body><RequestSecurityToken xmlns="…/ws-trust/200512">
//!     <TokenType>…#X509v3</TokenType><RequestType>…/Issue</RequestType>
//!     <BinarySecurityToken ValueType="…#PKCS7" EncodingType="…#base64binary">…</BinarySecurityToken>
//!   </RequestSecurityToken></s:Body></s:Envelope>
//! ```
//! (MS-WSTEP §3.1.4.1; the element order follows the protocol's own examples in
//! `../shared/vectors/wstep/`.)

pub mod xml;

use base64ct::{Base64, Encoding};

pub use xml::XmlLimits;
use xml::{Element, escape};

/// SOAP 1.2.
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing 1.0.
pub const ADDRESSING: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Trust 1.3.
pub const TRUST: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
/// WS-Security extensions (BinarySecurityToken).
pub const SECEXT: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// Microsoft's enrollment namespace (RequestID, DispositionMessage, fault detail).
pub const ENROLLMENT: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment";
/// Action of a request.
pub const ACTION_RST: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RST/wstep";
/// Action of an answer.
pub const ACTION_RSTRC: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep";
/// Action of a fault with `CertificateEnrollmentWSDetail`.
pub const ACTION_FAULT: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RequestSecurityTokenCertificateEnrollmentWSDetailFault";
/// The token asked for: an X.509 v3 certificate.
pub const TOKEN_X509V3: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
/// RequestType of a new request (or renewal).
pub const ISSUE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue";
/// RequestType that collects a pending request.
pub const QUERY_TOKEN_STATUS: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/QueryTokenStatus";
/// BinarySecurityToken ValueType of a PKCS #7 / CMC message.
pub const VALUE_PKCS7: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#PKCS7";
/// BinarySecurityToken EncodingType: base64.
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary";
/// The CA name in sim-ca's CES path, and the one the client assumes when the URL names no
/// CES service.
pub const DEFAULT_CA_NAME: &str = "cardrenew";

/// A fresh WS-Addressing MessageID: a random (version 4) UUID as a URN; `None` when the
/// system has no randomness to give.
pub fn random_message_id() -> Option<String> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = crate::cmc::verify_request::hex(&b);
    Some(format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The path ADCS serves CES at for a CA named `ca` with certificate authentication.
pub fn ces_path(ca: &str) -> String {
    format!("/{ca}_CES_Certificate/service.svc/CES")
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WstepError {
    /// Over the size cap.
    #[error("SOAP envelope of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// Not well-formed, or refused (DTD, depth, element count).
    #[error("SOAP envelope: {0}")]
    Xml(String),
    /// Well-formed but not the message expected.
    #[error("SOAP envelope: {0}")]
    Shape(String),
    /// A header block marked `mustUnderstand` that this node does not process (SOAP 1.2 Part 1
    /// §5.2.3): answered with a MustUnderstand fault, the message not processed.
    #[error("SOAP header {{{ns}}}{name} must be understood and is not")]
    NotUnderstood {
        /// Its namespace.
        ns: String,
        /// Its local name.
        name: String,
    },
}

/// What a client asks.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum RequestKind {
    /// Issue (or renew): the CMC request's DER.
    Issue(Vec<u8>),
    /// Collect a pending request.
    QueryTokenStatus(u64),
}

/// A parsed request envelope.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Request {
    /// WS-Addressing MessageID (echoed as RelatesTo).
    pub message_id: Option<String>,
    /// What is asked.
    pub kind: RequestKind,
}

/// What the service answered.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Answer {
    /// A `RequestSecurityTokenResponse`: issued, or pending.
    Token {
        /// `DispositionMessage` ("Issued", "Taken Under Submission", ...).
        disposition: String,
        /// The CMC response (DER), when sent.
        pkcs7: Option<Vec<u8>>,
        /// The issued certificate (DER), when issued.
        certificate: Option<Vec<u8>>,
        /// The CA's request number.
        request_id: Option<u64>,
    },
    /// A SOAP fault.
    Fault {
        /// `s:Code/s:Value` (`s:Receiver`, `s:Sender`).
        code: String,
        /// `s:Reason/s:Text` (may be empty, as ADCS sends it).
        reason: String,
        /// `CertificateEnrollmentWSDetail/ErrorCode`: the HRESULT as a signed 32-bit integer.
        error_code: Option<i32>,
        /// `CertificateEnrollmentWSDetail/RequestID`.
        request_id: Option<u64>,
    },
}

impl Answer {
    /// The fault's HRESULT as it is written in winerror.h (`0x80094009`).
    pub fn hresult(&self) -> Option<u32> {
        match self {
            Self::Fault {
                error_code: Some(code),
                ..
            } => Some(*code as u32),
            _ => None,
        }
    }
}

fn base64_decode(text: &str) -> Result<Vec<u8>, WstepError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Base64::decode_vec(&compact).map_err(|e| WstepError::Shape(format!("base64: {e}")))
}

fn header(action: &str, id_line: &str) -> String {
    format!(
        "<s:Envelope xmlns:a=\"{ADDRESSING}\" xmlns:s=\"{SOAP}\"><s:Header>\
         <a:Action s:mustUnderstand=\"1\">{action}</a:Action>{id_line}</s:Header>"
    )
}

/// A request envelope with `message_id` (`urn:uuid:...`).
pub fn build_request(message_id: &str, kind: &RequestKind) -> String {
    let ids = format!(
        "<a:MessageID>{}</a:MessageID><a:ReplyTo><a:Address>\
         http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>",
        escape(message_id)
    );
    let body = match kind {
        // certenroll follows the token with a nil RequestID; so do we.
        RequestKind::Issue(der) => format!(
            "<RequestType>{ISSUE}</RequestType><BinarySecurityToken EncodingType=\"{BASE64_BINARY}\" \
             ValueType=\"{VALUE_PKCS7}\" xmlns=\"{SECEXT}\">{}</BinarySecurityToken>\
             <RequestID xsi:nil=\"true\" xmlns=\"{ENROLLMENT}\"/>",
            Base64::encode_string(der)
        ),
        RequestKind::QueryTokenStatus(id) => format!(
            "<RequestType>{QUERY_TOKEN_STATUS}</RequestType>\
             <RequestID xmlns=\"{ENROLLMENT}\">{id}</RequestID>"
        ),
    };
    format!(
        "{}<s:Body xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><RequestSecurityToken xmlns=\"{TRUST}\">\
         <TokenType>{TOKEN_X509V3}</TokenType>{body}</RequestSecurityToken></s:Body></s:Envelope>",
        header(ACTION_RST, &ids)
    )
}

fn body(root: &Element) -> Result<&Element, WstepError> {
    if root.ns != SOAP || root.name != "Envelope" {
        return Err(WstepError::Shape(format!(
            "the root is {{{}}}{}, not a SOAP 1.2 Envelope",
            root.ns, root.name
        )));
    }
    root.child(SOAP, "Body")
        .ok_or_else(|| WstepError::Shape("no s:Body".into()))
}

fn request_id(e: &Element) -> Result<Option<u64>, WstepError> {
    e.child(ENROLLMENT, "RequestID")
        // `xsi:nil="true"` (certenroll sends it in a new request): no number.
        .filter(|r| !r.text.is_empty())
        .map(|r| {
            r.text
                .parse::<u64>()
                .map_err(|_| WstepError::Shape(format!("RequestID {:?}", r.text)))
        })
        .transpose()
}

/// The first header block of `root` that must be understood and is not: a block targeted at
/// this node (no role, `next` or `ultimateReceiver`; a block for another role or `none` is not
/// ours to process, SOAP 1.2 Part 1 §5.2.2) with `mustUnderstand` true, in any namespace but
/// WS-Addressing's (what MS-WSTEP's messages carry). Both attributes are XML Schema values
/// whose white space collapses (`" 1 "` is true); a `mustUnderstand` that is no boolean makes
/// the envelope malformed rather than the block ignored.
pub(crate) fn not_understood(root: &Element) -> Result<Option<&Element>, WstepError> {
    const OURS: [&str; 2] = [
        "http://www.w3.org/2003/05/soap-envelope/role/next",
        "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver",
    ];
    let must_understand = format!("{{{SOAP}}}mustUnderstand");
    let role = format!("{{{SOAP}}}role");
    let Some(header) = root.child(SOAP, "Header") else {
        return Ok(None);
    };
    for block in &header.children {
        let targeted = block
            .attribute(&role)
            .map(|r| r.trim_matches(XML_SPACE))
            .is_none_or(|r| r.is_empty() || OURS.contains(&r));
        let marked = match block
            .attribute(&must_understand)
            .map(|v| v.trim_matches(XML_SPACE))
        {
            None | Some("0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(WstepError::Shape(format!(
                    "mustUnderstand {other:?} on {} (not a boolean)",
                    block.name
                )));
            }
        };
        if marked && targeted && block.ns != ADDRESSING {
            return Ok(Some(block));
        }
    }
    Ok(None)
}

/// XML's white space (XML 1.0 §2.3 `S`), what an XML Schema value's `collapse` strips.
const XML_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// Parses a request envelope (the server's side).
pub fn parse_request(input: &[u8], limits: &XmlLimits) -> Result<Request, WstepError> {
    let root = xml::parse(input, limits)?;
    let body = body(&root)?;
    if let Some(block) = not_understood(&root)? {
        return Err(WstepError::NotUnderstood {
            ns: block.ns.clone(),
            name: block.name.clone(),
        });
    }
    let message_id = root
        .child(SOAP, "Header")
        .and_then(|h| h.child(ADDRESSING, "MessageID"))
        .map(|m| m.text.clone());
    let rst = body
        .child(TRUST, "RequestSecurityToken")
        .ok_or_else(|| WstepError::Shape("no RequestSecurityToken".into()))?;
    let request_type = rst
        .child(TRUST, "RequestType")
        .map(|t| t.text.as_str())
        .ok_or_else(|| WstepError::Shape("no RequestType".into()))?;
    let kind = match request_type {
        ISSUE => {
            let token = rst
                .child(SECEXT, "BinarySecurityToken")
                .ok_or_else(|| WstepError::Shape("no BinarySecurityToken".into()))?;
            if token
                .attribute("ValueType")
                .is_some_and(|v| v != VALUE_PKCS7)
            {
                return Err(WstepError::Shape(format!(
                    "BinarySecurityToken ValueType {:?} (expected #PKCS7)",
                    token.attribute("ValueType").unwrap_or_default()
                )));
            }
            RequestKind::Issue(base64_decode(&token.text)?)
        }
        QUERY_TOKEN_STATUS => RequestKind::QueryTokenStatus(
            request_id(rst)?
                .ok_or_else(|| WstepError::Shape("QueryTokenStatus without RequestID".into()))?,
        ),
        other => {
            return Err(WstepError::Shape(format!("RequestType {other:?}")));
        }
    };
    Ok(Request { message_id, kind })
}

/// An answer envelope relating to `relates_to` (the request's MessageID).
pub fn build_answer(relates_to: Option<&str>, answer: &Answer) -> String {
    let relates = relates_to
        .map(|r| format!("<a:RelatesTo>{}</a:RelatesTo>", escape(r)))
        .unwrap_or_default();
    match answer {
        Answer::Token {
            disposition,
            pkcs7,
            certificate,
            request_id,
        } => {
            let pkcs7 = pkcs7
                .as_ref()
                .map(|der| {
                    format!(
                        "<BinarySecurityToken ValueType=\"{VALUE_PKCS7}\" EncodingType=\"{BASE64_BINARY}\" \
                         xmlns=\"{SECEXT}\">{}</BinarySecurityToken>",
                        Base64::encode_string(der)
                    )
                })
                .unwrap_or_default();
            let certificate = certificate
                .as_ref()
                .map(|der| {
                    format!(
                        "<RequestedSecurityToken><BinarySecurityToken ValueType=\"{TOKEN_X509V3}\" \
                         EncodingType=\"{BASE64_BINARY}\" xmlns=\"{SECEXT}\">{}</BinarySecurityToken>\
                         </RequestedSecurityToken>",
                        Base64::encode_string(der)
                    )
                })
                .unwrap_or_default();
            let id = request_id
                .map(|id| format!("<RequestID xmlns=\"{ENROLLMENT}\">{id}</RequestID>"))
                .unwrap_or_default();
            format!(
                "{}<s:Body><RequestSecurityTokenResponseCollection xmlns=\"{TRUST}\">\
                 <RequestSecurityTokenResponse><TokenType>{TOKEN_X509V3}</TokenType>\
                 <DispositionMessage xml:lang=\"en-US\" xmlns=\"{ENROLLMENT}\">{}</DispositionMessage>\
                 {pkcs7}{certificate}{id}</RequestSecurityTokenResponse>\
                 </RequestSecurityTokenResponseCollection></s:Body></s:Envelope>",
                header(ACTION_RSTRC, &relates),
                escape(disposition)
            )
        }
        Answer::Fault {
            code,
            reason,
            error_code,
            request_id,
        } => {
            let detail = error_code
                .map(|code| {
                    format!(
                        "<s:Detail><CertificateEnrollmentWSDetail xmlns=\"{ENROLLMENT}\">\
                         <ErrorCode>{code}</ErrorCode><InvalidRequest>true</InvalidRequest>{}\
                         </CertificateEnrollmentWSDetail></s:Detail>",
                        request_id
                            .map(|id| format!("<RequestID>{id}</RequestID>"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            format!(
                "{}<s:Body><s:Fault><s:Code><s:Value>{}</s:Value></s:Code><s:Reason>\
                 <s:Text xml:lang=\"en-US\">{}</s:Text></s:Reason>{detail}</s:Fault></s:Body>\
                 </s:Envelope>",
                header(ACTION_FAULT, &relates),
                escape(code),
                escape(reason)
            )
        }
    }
}

/// Parses an answer envelope (the client's side).
pub fn parse_answer(input: &[u8], limits: &XmlLimits) -> Result<Answer, WstepError> {
    let root = xml::parse(input, limits)?;
    let body = body(&root)?;
    if let Some(fault) = body.child(SOAP, "Fault") {
        let code = fault
            .child(SOAP, "Code")
            .and_then(|c| c.child(SOAP, "Value"))
            .map(|v| v.text.clone())
            .unwrap_or_default();
        let reason = fault
            .child(SOAP, "Reason")
            .and_then(|r| r.child(SOAP, "Text"))
            .map(|t| t.text.clone())
            .unwrap_or_default();
        let detail = fault
            .child(SOAP, "Detail")
            .and_then(|d| d.child(ENROLLMENT, "CertificateEnrollmentWSDetail"));
        let error_code = detail
            .and_then(|d| d.child(ENROLLMENT, "ErrorCode"))
            .map(|e| {
                e.text
                    .parse::<i32>()
                    .map_err(|_| WstepError::Shape(format!("ErrorCode {:?}", e.text)))
            })
            .transpose()?;
        let request_id = detail.map(request_id).transpose()?.flatten();
        return Ok(Answer::Fault {
            code,
            reason,
            error_code,
            request_id,
        });
    }
    let rstr = body
        .child(TRUST, "RequestSecurityTokenResponseCollection")
        .and_then(|c| c.child(TRUST, "RequestSecurityTokenResponse"))
        .ok_or_else(|| {
            WstepError::Shape("neither a fault nor a RequestSecurityTokenResponse".into())
        })?;
    let disposition = rstr
        .child(ENROLLMENT, "DispositionMessage")
        .map(|d| d.text.clone())
        .unwrap_or_default();
    let pkcs7 = rstr
        .child(SECEXT, "BinarySecurityToken")
        .map(|t| base64_decode(&t.text))
        .transpose()?;
    let certificate = rstr
        .child(TRUST, "RequestedSecurityToken")
        .and_then(|t| t.child(SECEXT, "BinarySecurityToken"))
        .map(|t| base64_decode(&t.text))
        .transpose()?;
    Ok(Answer::Token {
        disposition,
        pkcs7,
        certificate,
        request_id: request_id(rstr)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip() {
        let limits = XmlLimits::default();
        for kind in [
            RequestKind::Issue(vec![0x30, 0x03, 0x02, 0x01, 0x05]),
            RequestKind::QueryTokenStatus(65),
        ] {
            let xml = build_request("urn:uuid:1", &kind);
            let back = parse_request(xml.as_bytes(), &limits).unwrap();
            assert_eq!(back.kind, kind);
            assert_eq!(back.message_id.as_deref(), Some("urn:uuid:1"));
        }
        for answer in [
            Answer::Token {
                disposition: "Issued".into(),
                pkcs7: Some(vec![1, 2, 3]),
                certificate: Some(vec![4, 5]),
                request_id: Some(63),
            },
            Answer::Token {
                disposition: "Taken Under Submission".into(),
                pkcs7: Some(vec![1]),
                certificate: None,
                request_id: Some(7),
            },
            Answer::Fault {
                code: "s:Receiver".into(),
                reason: "Denied by Policy Module <&>".into(),
                error_code: Some(-2146877431),
                request_id: Some(28),
            },
        ] {
            let xml = build_answer(Some("urn:uuid:1"), &answer);
            assert_eq!(parse_answer(xml.as_bytes(), &limits).unwrap(), answer);
        }
    }

    /// SOAP 1.2 Part 1 §5.2.2–5.2.3: which header blocks this node must understand. The block
    /// is one no MS-WSTEP node processes, with the attributes as a sender may spell them.
    #[test]
    fn a_block_must_be_understood_when_marked_true_and_targeted_here() {
        let envelope = |attributes: &str| {
            build_request("urn:uuid:1", &RequestKind::QueryTokenStatus(1)).replacen(
                "</s:Header>",
                &format!(r#"<x:T xmlns:x="urn:example" {attributes}>1</x:T></s:Header>"#),
                1,
            )
        };
        let parse = |attributes: &str| {
            parse_request(envelope(attributes).as_bytes(), &XmlLimits::default())
        };
        let role = |r: &str| format!("http://www.w3.org/2003/05/soap-envelope/role/{r}");
        for marked in [
            r#"s:mustUnderstand="1""#.to_string(),
            r#"s:mustUnderstand="true""#.into(),
            r#"s:mustUnderstand=" 1 ""#.into(),
            "s:mustUnderstand=\"true\n\"".into(),
            format!(r#"s:mustUnderstand="1" s:role="{}""#, role("next")),
            format!(
                r#"s:mustUnderstand="1" s:role=" {} ""#,
                role("ultimateReceiver")
            ),
        ] {
            assert!(
                matches!(parse(&marked), Err(WstepError::NotUnderstood { .. })),
                "{marked}: {:?}",
                parse(&marked)
            );
        }
        for ignored in [
            String::new(),
            r#"s:mustUnderstand="0""#.into(),
            r#"s:mustUnderstand=" false ""#.into(),
            r#"x:mustUnderstand="1""#.into(),
            format!(r#"s:mustUnderstand="1" s:role="{}""#, role("none")),
            r#"s:mustUnderstand="1" s:role="urn:example:another-node""#.into(),
        ] {
            assert!(parse(&ignored).is_ok(), "{ignored}: {:?}", parse(&ignored));
        }
        for malformed in [r#"s:mustUnderstand="yes""#, r#"s:mustUnderstand="""#] {
            assert!(
                matches!(parse(malformed), Err(WstepError::Shape(_))),
                "{malformed}: {:?}",
                parse(malformed)
            );
        }
    }

    #[test]
    fn truncations_fail() {
        let xml = build_answer(
            None,
            &Answer::Token {
                disposition: "Issued".into(),
                pkcs7: Some(vec![1, 2, 3]),
                certificate: None,
                request_id: Some(1),
            },
        );
        for cut in (0..xml.len()).step_by(7) {
            assert!(
                parse_answer(&xml.as_bytes()[..cut], &XmlLimits::default()).is_err(),
                "prefix of {cut} bytes parsed"
            );
        }
    }
}
