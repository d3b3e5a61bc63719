//! MS-XCEP (the ADCS Certificate Enrollment Policy service) `GetPolicies`: the request, and
//! the response's subset a renewal client needs — per template its OID, name, schema, validity
//! and renewal period; per CA its certificate and the enrollment service URIs with their
//! authentication type and `renewalOnly` flag (MS-XCEP §3.1.4.1.3). The envelopes share
//! MS-WSTEP's bounded XML reader.
//!
//! ```text
//! GetPoliciesResponse
//!   response / policyID, policyFriendlyName, nextUpdateHours, policies / policy*
//!       policy / policyOIDReference, cAs / cAReference*, attributes / commonName, policySchema,
//!                certificateValidity / validityPeriodSeconds, renewalPeriodSeconds, ...
//!   cAs / cA* / uris / cAURI* (clientAuthentication, uri, priority, renewalOnly),
//!               certificate, enrollPermission, cAReferenceID
//!   oIDs / oID* / value, group, oIDReferenceID, defaultName
//! ```

use base64ct::{Base64, Encoding};

use crate::wstep::{
    ADDRESSING, SOAP, WstepError,
    xml::{self, Element, XmlLimits, escape},
};

/// The MS-XCEP namespace.
pub const POLICY_NS: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy";
/// Action of a `GetPolicies` request.
pub const ACTION_GET_POLICIES: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPolicies";
/// Action of its response.
pub const ACTION_GET_POLICIES_RESPONSE: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPoliciesResponse";
/// `clientAuthentication` values (MS-XCEP §3.1.4.1.3.4): X.509 certificate.
pub const AUTH_CERTIFICATE: u32 = 8;

/// The path ADCS serves CEP at with certificate authentication.
pub fn cep_path(name: &str) -> String {
    format!("/{name}_CEP_Certificate/service.svc/CEP")
}

/// One enrollment service of a CA.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CaUri {
    /// 1 anonymous, 2 Kerberos, 4 user name and password, 8 certificate.
    pub client_authentication: u32,
    /// The CES URL.
    pub uri: String,
    /// Lower is preferred.
    pub priority: u32,
    /// The service only renews (key-based renewal with the certificate to renew).
    pub renewal_only: bool,
}

/// One CA.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CaPolicy {
    /// Its reference id (what templates point at).
    pub reference: u32,
    /// Its enrollment services.
    pub uris: Vec<CaUri>,
    /// Its certificate (DER).
    pub certificate: Vec<u8>,
}

/// One certificate template.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TemplatePolicy {
    /// The template OID.
    pub oid: String,
    /// Its name (`commonName`).
    pub name: String,
    /// Template schema version (1–4).
    pub schema: u32,
    /// Certificate lifetime.
    pub validity_seconds: u64,
    /// How long before expiry renewal starts (ADCS "renewal period").
    pub renewal_seconds: u64,
    /// CAs that issue it (references).
    pub cas: Vec<u32>,
}

/// A `GetPoliciesResponse`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Policies {
    /// `policyID`.
    pub policy_id: String,
    /// `policyFriendlyName`.
    pub friendly_name: String,
    /// `nextUpdateHours`.
    pub next_update_hours: u32,
    /// The templates.
    pub templates: Vec<TemplatePolicy>,
    /// The CAs.
    pub cas: Vec<CaPolicy>,
}

impl Policies {
    /// The template with this OID or name.
    pub fn template(&self, oid_or_name: &str) -> Option<&TemplatePolicy> {
        self.templates
            .iter()
            .find(|t| t.oid == oid_or_name || t.name.eq_ignore_ascii_case(oid_or_name))
    }

    /// The enrollment service to renew `template` at with a certificate: the template's CAs'
    /// URIs with certificate authentication, lowest priority first, renewal-only services
    /// preferred at equal priority.
    pub fn ces_for(&self, template: &TemplatePolicy) -> Option<&CaUri> {
        self.cas
            .iter()
            .filter(|ca| template.cas.contains(&ca.reference))
            .flat_map(|ca| ca.uris.iter())
            .filter(|u| u.client_authentication == AUTH_CERTIFICATE)
            .min_by_key(|u| (u.priority, !u.renewal_only))
    }
}

/// A `GetPolicies` request envelope.
pub fn build_request(message_id: &str, to: &str) -> String {
    format!(
        "<s:Envelope xmlns:a=\"{ADDRESSING}\" xmlns:s=\"{SOAP}\"><s:Header>\
         <a:Action s:mustUnderstand=\"1\">{ACTION_GET_POLICIES}</a:Action>\
         <a:MessageID>{}</a:MessageID><a:ReplyTo><a:Address>\
         http://www.w3.org/2005/08/addressing/anonymous</a:Address></a:ReplyTo>\
         <a:To s:mustUnderstand=\"1\">{}</a:To></s:Header>\
         <s:Body xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><GetPolicies xmlns=\"{POLICY_NS}\">\
         <client><lastUpdate xsi:nil=\"true\"/><preferredLanguage xsi:nil=\"true\"/></client>\
         <requestFilter xsi:nil=\"true\"/></GetPolicies></s:Body></s:Envelope>",
        escape(message_id),
        escape(to)
    )
}

/// Reads a `GetPolicies` request (the server's side): its MessageID.
pub fn parse_request(input: &[u8], limits: &XmlLimits) -> Result<Option<String>, WstepError> {
    let root = xml::parse(input, limits)?;
    let body = envelope_body(&root)?;
    // SOAP's rule before the body's: a block this node must understand and does not stops
    // the message (SOAP 1.2 Part 1 §5.2.3), as at CES.
    if let Some(block) = crate::wstep::not_understood(&root)? {
        return Err(WstepError::NotUnderstood {
            ns: block.ns.clone(),
            name: block.name.clone(),
        });
    }
    body.child(POLICY_NS, "GetPolicies")
        .ok_or_else(|| WstepError::Shape("no GetPolicies".into()))?;
    Ok(root
        .child(SOAP, "Header")
        .and_then(|h| h.child(ADDRESSING, "MessageID"))
        .map(|m| m.text.clone()))
}

fn envelope_body(root: &Element) -> Result<&Element, WstepError> {
    if root.ns != SOAP || root.name != "Envelope" {
        return Err(WstepError::Shape("not a SOAP 1.2 Envelope".into()));
    }
    root.child(SOAP, "Body")
        .ok_or_else(|| WstepError::Shape("no s:Body".into()))
}

/// A `GetPoliciesResponse` envelope relating to `relates_to`.
pub fn build_response(relates_to: Option<&str>, policies: &Policies) -> String {
    let relates = relates_to
        .map(|r| format!("<a:RelatesTo>{}</a:RelatesTo>", escape(r)))
        .unwrap_or_default();
    let mut policy_xml = String::new();
    let mut oids = String::new();
    for (i, t) in policies.templates.iter().enumerate() {
        let cas: String = t
            .cas
            .iter()
            .map(|c| format!("<cAReference>{c}</cAReference>"))
            .collect();
        policy_xml.push_str(&format!(
            "<policy><policyOIDReference>{i}</policyOIDReference><cAs>{cas}</cAs><attributes>\
             <commonName>{}</commonName><policySchema>{}</policySchema><certificateValidity>\
             <validityPeriodSeconds>{}</validityPeriodSeconds><renewalPeriodSeconds>{}\
             </renewalPeriodSeconds></certificateValidity><permission><enroll>true</enroll>\
             <autoEnroll>false</autoEnroll></permission></attributes></policy>",
            escape(&t.name),
            t.schema,
            t.validity_seconds,
            t.renewal_seconds
        ));
        oids.push_str(&format!(
            "<oID><value>{}</value><group>9</group><oIDReferenceID>{i}</oIDReferenceID>\
             <defaultName>{}</defaultName></oID>",
            escape(&t.oid),
            escape(&t.name)
        ));
    }
    let mut cas = String::new();
    for ca in &policies.cas {
        let uris: String = ca
            .uris
            .iter()
            .map(|u| {
                format!(
                    "<cAURI><clientAuthentication>{}</clientAuthentication><uri>{}</uri>\
                     <priority>{}</priority><renewalOnly>{}</renewalOnly></cAURI>",
                    u.client_authentication,
                    escape(&u.uri),
                    u.priority,
                    u.renewal_only
                )
            })
            .collect();
        cas.push_str(&format!(
            "<cA><uris>{uris}</uris><certificate>{}</certificate><enrollPermission>true\
             </enrollPermission><cAReferenceID>{}</cAReferenceID></cA>",
            Base64::encode_string(&ca.certificate),
            ca.reference
        ));
    }
    format!(
        "<s:Envelope xmlns:a=\"{ADDRESSING}\" xmlns:s=\"{SOAP}\"><s:Header>\
         <a:Action s:mustUnderstand=\"1\">{ACTION_GET_POLICIES_RESPONSE}</a:Action>{relates}\
         </s:Header><s:Body xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
         <GetPoliciesResponse xmlns=\"{POLICY_NS}\"><response><policyID>{}</policyID>\
         <policyFriendlyName>{}</policyFriendlyName><nextUpdateHours>{}</nextUpdateHours>\
         <policiesNotChanged xsi:nil=\"true\"/><policies>{policy_xml}</policies></response>\
         <cAs>{cas}</cAs><oIDs>{oids}</oIDs></GetPoliciesResponse></s:Body></s:Envelope>",
        escape(&policies.policy_id),
        escape(&policies.friendly_name),
        policies.next_update_hours
    )
}

fn text<'a>(e: &'a Element, name: &str) -> Result<&'a str, WstepError> {
    e.child(POLICY_NS, name)
        .map(|c| c.text.as_str())
        .ok_or_else(|| WstepError::Shape(format!("no {name} in {}", e.name)))
}

fn number<T: std::str::FromStr>(e: &Element, name: &str) -> Result<T, WstepError> {
    let t = text(e, name)?;
    t.parse()
        .map_err(|_| WstepError::Shape(format!("{name} {t:?} is not a number")))
}

fn children<'a>(e: &'a Element, name: &'a str) -> impl Iterator<Item = &'a Element> {
    e.children
        .iter()
        .filter(move |c| c.ns == POLICY_NS && c.name == name)
}

/// Parses a `GetPoliciesResponse` (the client's side).
pub fn parse_response(input: &[u8], limits: &XmlLimits) -> Result<Policies, WstepError> {
    let root = xml::parse(input, limits)?;
    let body = envelope_body(&root)?;
    if let Some(fault) = body.child(SOAP, "Fault") {
        let reason = fault
            .find(SOAP, "Text")
            .map(|t| t.text.clone())
            .unwrap_or_default();
        return Err(WstepError::Shape(format!("SOAP fault: {reason}")));
    }
    let gpr = body
        .child(POLICY_NS, "GetPoliciesResponse")
        .ok_or_else(|| WstepError::Shape("no GetPoliciesResponse".into()))?;
    let response = gpr
        .child(POLICY_NS, "response")
        .ok_or_else(|| WstepError::Shape("no response".into()))?;
    let oids: Vec<(u32, String)> = gpr
        .child(POLICY_NS, "oIDs")
        .map(|o| {
            children(o, "oID")
                .map(|oid| {
                    Ok((
                        number(oid, "oIDReferenceID")?,
                        text(oid, "value")?.to_string(),
                    ))
                })
                .collect::<Result<_, WstepError>>()
        })
        .transpose()?
        .unwrap_or_default();
    let mut templates = Vec::new();
    if let Some(policies) = response.child(POLICY_NS, "policies") {
        for policy in children(policies, "policy") {
            let reference: u32 = number(policy, "policyOIDReference")?;
            let oid = oids
                .iter()
                .find(|(r, _)| *r == reference)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    WstepError::Shape(format!("policyOIDReference {reference} names no oID"))
                })?;
            let attributes = policy
                .child(POLICY_NS, "attributes")
                .ok_or_else(|| WstepError::Shape("policy without attributes".into()))?;
            let validity = attributes
                .child(POLICY_NS, "certificateValidity")
                .ok_or_else(|| WstepError::Shape("no certificateValidity".into()))?;
            templates.push(TemplatePolicy {
                oid,
                name: text(attributes, "commonName")?.to_string(),
                schema: number(attributes, "policySchema")?,
                validity_seconds: number(validity, "validityPeriodSeconds")?,
                renewal_seconds: number(validity, "renewalPeriodSeconds")?,
                cas: policy
                    .child(POLICY_NS, "cAs")
                    .map(|c| {
                        children(c, "cAReference")
                            .map(|r| {
                                r.text.parse().map_err(|_| {
                                    WstepError::Shape(format!("cAReference {:?}", r.text))
                                })
                            })
                            .collect::<Result<Vec<u32>, _>>()
                    })
                    .transpose()?
                    .unwrap_or_default(),
            });
        }
    }
    let mut cas = Vec::new();
    if let Some(list) = gpr.child(POLICY_NS, "cAs") {
        for ca in children(list, "cA") {
            let uris = ca
                .child(POLICY_NS, "uris")
                .map(|u| {
                    children(u, "cAURI")
                        .map(|uri| {
                            Ok(CaUri {
                                client_authentication: number(uri, "clientAuthentication")?,
                                uri: text(uri, "uri")?.to_string(),
                                priority: number(uri, "priority").unwrap_or(0),
                                renewal_only: text(uri, "renewalOnly").is_ok_and(|t| t == "true"),
                            })
                        })
                        .collect::<Result<Vec<_>, WstepError>>()
                })
                .transpose()?
                .unwrap_or_default();
            let certificate: String = text(ca, "certificate")?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            cas.push(CaPolicy {
                reference: number(ca, "cAReferenceID")?,
                uris,
                certificate: Base64::decode_vec(&certificate)
                    .map_err(|e| WstepError::Shape(format!("CA certificate: {e}")))?,
            });
        }
    }
    Ok(Policies {
        policy_id: text(response, "policyID")?.to_string(),
        friendly_name: text(response, "policyFriendlyName")
            .unwrap_or_default()
            .to_string(),
        next_update_hours: number(response, "nextUpdateHours").unwrap_or(8),
        templates,
        cas,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Policies {
        Policies {
            policy_id: "{6A1A2C4B-0000-4000-8000-000000000001}".into(),
            friendly_name: "cardrenew sim-ca".into(),
            next_update_hours: 8,
            templates: vec![TemplatePolicy {
                oid: "1.3.6.1.4.1.311.21.8.1.2".into(),
                name: "SmartcardUser".into(),
                schema: 2,
                validity_seconds: 365 * 86400,
                renewal_seconds: 42 * 86400,
                cas: vec![0],
            }],
            cas: vec![CaPolicy {
                reference: 0,
                uris: vec![
                    CaUri {
                        client_authentication: 2,
                        uri: "https://ca/k_CES_Kerberos/service.svc/CES".into(),
                        priority: 1,
                        renewal_only: false,
                    },
                    CaUri {
                        client_authentication: AUTH_CERTIFICATE,
                        uri: "https://ca/x_CES_Certificate/service.svc/CES".into(),
                        priority: 1,
                        renewal_only: true,
                    },
                ],
                certificate: vec![0x30, 0x00],
            }],
        }
    }

    #[test]
    fn policies_round_trip_and_pick_the_certificate_service() {
        let policies = sample();
        let xml = build_response(Some("urn:uuid:1"), &policies);
        let back = parse_response(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(back, policies);
        let template = back.template("SmartcardUser").unwrap();
        assert_eq!(
            back.ces_for(template).unwrap().uri,
            "https://ca/x_CES_Certificate/service.svc/CES"
        );
        assert!(back.template("1.3.6.1.4.1.311.21.8.1.2").is_some());
        let request = build_request("urn:uuid:2", "https://ca/p_CEP_Certificate/service.svc/CEP");
        assert_eq!(
            parse_request(request.as_bytes(), &XmlLimits::default()).unwrap(),
            Some("urn:uuid:2".into())
        );
    }
}
